#!/usr/bin/python3
"""STAND-IN ISSUER for the sidecar's mTLS tests (issue 16), not the product.

grpcguard-webhook's real POST /v1/certify (wt-issuer) verifies the projected token with
TokenReview; until it lands, this minimal stand-in honours the same contract (DESIGN.md,
briefs/id-common.md) so the sidecar's client is tested against it:

  POST /v1/certify over HTTPS, Authorization: Bearer <token>, body {"csr": "<PEM>"}
  200 {"certificateChain", "caBundle", "expiresAt"}; errors 400/401/403/413 {"error"}.

Tokens are looked up in a JSON file {"<token>": {"ns": ..., "sa": ...}} that the test
writes (a stand-in for TokenReview). The identity comes from the token, never from the
CSR. Leaf: ECDSA key of the CSR, only the URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, EKU
serverAuth+clientAuth, not a CA, lifetime --lifetime seconds (second precision, so it is
signed with python's cryptography, i.e. OpenSSL, rather than the openssl CLI's -days).

  mtls_issuer.py --listen 127.0.0.1:9443 --tls-cert C --tls-key K --ca-cert CA --ca-key CAK
                 --tokens tokens.json --lifetime 86400 [--bundle EXTRA_CA_PEM] [--fail-file F]
While --fail-file exists, every request gets 503 (to test renewal failure).
"""
import argparse
import datetime
import http.server
import json
import os
import ssl
import sys
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--ca-cert", required=True)
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--lifetime", type=int, default=86400)
    ap.add_argument("--backdate", type=int, default=0,
                    help="notBefore/notAfter shifted this many seconds into the past")
    ap.add_argument("--trust-domain", default="cluster.local")
    ap.add_argument("--bundle", help="extra PEM appended to caBundle")
    ap.add_argument("--fail-file")
    ap.add_argument("--log")
    a = ap.parse_args()

    ca_pem = open(a.ca_cert, "rb").read()
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(open(a.ca_key, "rb").read(), None)
    bundle = ca_pem + (open(a.bundle, "rb").read() if a.bundle else b"")
    lock = threading.Lock()
    count = {"n": 0}

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, code, obj):
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b)

        def do_POST(self):
            with lock:
                count["n"] += 1
                if a.log:
                    with open(a.log, "a") as f:
                        f.write("request %d\n" % count["n"])
            if self.path != "/v1/certify":
                return self.reply(404, {"error": "not found"})
            if a.fail_file and os.path.exists(a.fail_file):
                return self.reply(503, {"error": "stand-in told to fail"})
            n = int(self.headers.get("Content-Length", "0"))
            if n > 65536:
                return self.reply(413, {"error": "body too large"})
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return self.reply(401, {"error": "missing bearer token"})
            tokens = json.load(open(a.tokens))
            who = tokens.get(auth[7:])
            if not who:
                return self.reply(401, {"error": "token refused"})
            try:
                body = json.loads(self.rfile.read(n))
                csr = x509.load_pem_x509_csr(body["csr"].encode())
                if not csr.is_signature_valid:
                    raise ValueError("bad CSR signature")
                pub = csr.public_key()
                if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
                    raise ValueError("CSR key is not ECDSA P-256")
            except Exception as e:  # noqa: BLE001 - a stand-in: any bad input is a 400
                return self.reply(400, {"error": "bad CSR: %s" % e})
            now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=a.backdate)
            uri = "spiffe://%s/ns/%s/sa/%s" % (a.trust_domain, who["ns"], who["sa"])
            cert = (x509.CertificateBuilder()
                    .subject_name(x509.Name([]))
                    .issuer_name(ca_cert.subject)
                    .public_key(pub)
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - datetime.timedelta(seconds=1))
                    .not_valid_after(now + datetime.timedelta(seconds=a.lifetime))
                    .add_extension(x509.SubjectAlternativeName(
                        [x509.UniformResourceIdentifier(uri)]), critical=True)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                    .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                                 False, False), critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                          ExtendedKeyUsageOID.CLIENT_AUTH]),
                                   critical=False)
                    .sign(ca_key, hashes.SHA256()))
            exp = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
            self.reply(200, {
                "certificateChain": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "caBundle": bundle.decode(),
                "expiresAt": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            })

    host, port = a.listen.rsplit(":", 1)
    srv = http.server.ThreadingHTTPServer((host.strip("[]"), int(port)), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.tls_cert, a.tls_key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("stand-in issuer on %s" % a.listen, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
