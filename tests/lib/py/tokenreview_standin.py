#!/usr/bin/python3
"""A minimal STAND-IN for the kube-apiserver's TokenReview API, for tests only.

No kube-apiserver can run on the test machines, so the tests of grpcguard-webhook's
POST /v1/certify point `identity.tokenReview` at this server instead. It answers only
POST /apis/authentication.k8s.io/v1/tokenreviews, only for a caller presenting the
webhook's own ServiceAccount token, and only about tokens it minted itself, the way the
API server does: unknown, expired or other-audience tokens get `authenticated: false`;
known ones get the user and the audiences they were minted for. Nothing else of
Kubernetes is imitated.

Used two ways:
  - imported (tests/integration/test_webhook_certify.py): StandIn + make_handler;
  - as a program (tests/integration/test_identity_e2e.sh):
      tokenreview_standin.py --listen 127.0.0.1:0 --tls-cert C --tls-key K \
          --webhook-token-file F --mint system:serviceaccount:demo:client=/path/token ...
    mints one token per --mint into its file (mode 0644), then prints
    `ready port=<port>` and serves until killed. Each review is logged on stdout as
    `review user=<username or -> authenticated=<true|false>` (never the token).
"""
import argparse
import base64
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import time

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


class StandIn:
    """Mints tokens and answers TokenReview for them (nothing else)."""

    def __init__(self):
        self.tokens = {}   # token -> (username, audiences, exp, honour_audiences)
        self.reviews = []  # spec of every review received
        self.bad_callers = 0
        self.lock = threading.Lock()

    def mint(self, user, audiences=("grpcguard",), ttl=3600, honour_audiences=True):
        tok = "eyJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(
            secrets.token_bytes(24)).decode().rstrip("=") + ".sig" + secrets.token_hex(8)
        with self.lock:
            self.tokens[tok] = (user, list(audiences), time.time() + ttl, honour_audiences)
        return tok

    def review(self, spec):
        with self.lock:
            self.reviews.append(spec)
            entry = self.tokens.get(spec.get("token"))
        want = spec.get("audiences") or []
        if entry is None:
            return {"authenticated": False, "error": "invalid bearer token"}
        user, auds, exp, honour = entry
        if time.time() > exp:
            return {"authenticated": False, "error": "token has expired"}
        if honour:
            both = [a for a in auds if a in want]
            if want and not both:
                return {"authenticated": False,
                        "error": "token audiences %s is invalid for the target audiences %s"
                        % (auds, want)}
            got = both or auds
        else:
            got = auds  # an API server that ignores spec.audiences
        return {"authenticated": True, "audiences": got,
                "user": {"username": user, "uid": "u-1", "groups": ["system:serviceaccounts"]}}


def make_handler(standin, webhook_token, on_review=None):
    """The request handler class: TokenReview for callers with `webhook_token`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if self.path == "/slow":
                time.sleep(2)  # an API server that hangs; then 404
            if self.path != REVIEW_PATH:
                self.send_response(404)
                self.end_headers()
                return
            if self.headers.get("Authorization") != "Bearer " + webhook_token:
                with standin.lock:
                    standin.bad_callers += 1
                self.send_response(401)
                self.end_headers()
                return
            req = json.loads(body)
            status = standin.review(req.get("spec", {}))
            if on_review:
                on_review(status)
            out = json.dumps({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                              "spec": req.get("spec", {}), "status": status}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    return Handler


def serve(standin, webhook_token, host, port, cert, key, on_review=None):
    """An HTTPS server on (host, port) in a daemon thread; returns it."""
    srv = http.server.ThreadingHTTPServer((host, port),
                                          make_handler(standin, webhook_token, on_review))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def main():
    ap = argparse.ArgumentParser(description="stand-in TokenReview server (tests only)")
    ap.add_argument("--listen", required=True, help="HOST:PORT (port 0: any)")
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--webhook-token-file", required=True,
                    help="the webhook's own ServiceAccount token, required of callers")
    ap.add_argument("--mint", action="append", default=[], metavar="USERNAME=FILE",
                    help="mint a token (audience grpcguard) for USERNAME into FILE")
    ap.add_argument("--ttl", type=int, default=3600)
    a = ap.parse_args()

    with open(a.webhook_token_file) as f:
        webhook_token = f.read().strip()
    standin = StandIn()
    for m in a.mint:
        user, sep, path = m.partition("=")
        if not sep or not user or not path:
            sys.exit("--mint %r: want USERNAME=FILE" % m)
        with open(path, "w") as f:
            f.write(standin.mint(user, ttl=a.ttl) + "\n")
        os.chmod(path, 0o644)

    def log(status):
        print("review user=%s authenticated=%s" % (
            status.get("user", {}).get("username", "-"),
            "true" if status.get("authenticated") else "false"), flush=True)

    host, _, port = a.listen.rpartition(":")
    srv = serve(standin, webhook_token, host.strip("[]"), int(port), a.tls_cert, a.tls_key, log)
    print("ready port=%d" % srv.server_address[1], flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
