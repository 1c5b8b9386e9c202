#!/usr/bin/python3
"""A STAND-IN for the Kubernetes API server's TokenReview, for bench/run.sh's ns-mtls rows.

No kube-apiserver runs on a bench machine, so grpcguard-webhook's POST /v1/certify (real)
asks this minimal HTTPS server instead. It answers only
POST /apis/authentication.k8s.io/v1/tokenreviews, only for the webhook's own bearer token,
and authenticates only the tokens listed in --tokens (JSON {"<token>": "<namespace>/<sa>"}),
as system:serviceaccount:<namespace>:<sa> with audience grpcguard; anything else is
authenticated: false. Certificate issuance is not what the bench measures.

  tokenreview_standin.py --listen 127.0.0.1:9444 --tls-cert C --tls-key K \\
                         --tokens tokens.json --caller-token WEBHOOK_TOKEN
"""
import argparse
import http.server
import json
import ssl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--caller-token", required=True)
    a = ap.parse_args()
    tokens = json.load(open(a.tokens))

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, obj=None):
            b = json.dumps(obj).encode() if obj is not None else b""
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0") or 0)
            if n < 0 or n > 65536:
                return self.reply(413)
            body = self.rfile.read(n)
            if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                return self.reply(404)
            if self.headers.get("Authorization") != "Bearer " + a.caller_token:
                return self.reply(401)
            try:
                spec = json.loads(body).get("spec", {})
            except (ValueError, AttributeError):
                return self.reply(400)
            who = tokens.get(spec.get("token", ""))
            if who and "/" in who:
                ns, sa = who.split("/", 1)
                status = {"authenticated": True, "audiences": ["grpcguard"],
                          "user": {"username": "system:serviceaccount:%s:%s" % (ns, sa),
                                   "groups": ["system:serviceaccounts"]}}
            else:
                status = {"authenticated": False, "error": "unknown token"}
            self.reply(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                             "spec": spec, "status": status})

    host, port = a.listen.rsplit(":", 1)
    srv = http.server.ThreadingHTTPServer((host, int(port)), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.tls_cert, a.tls_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
