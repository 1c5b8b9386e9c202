"""Red team 2: POST /v1/certify (grpcguard-webhook, issue 16) against odd encodings and
HTTP tricks, with the real webhook over HTTPS and the stand-in TokenReview server of
test_webhook_certify.py.

Hole closed (fails on d87cc44): a request with both Content-Length and Transfer-Encoding
was read by its chunked body and the connection kept for the bytes after it, so a second
request hidden where a Content-Length-trusting proxy saw body was served too (two
certificates from one "request"). RFC 9112 6.1 says to close after such a request; the
webhook now refuses it with 400 and closes (/v1/certify and the admission routes).

The other vectors held when tried (docs/security.md, "Red team 2"):

- JSON: duplicate "csr" keys, an extra key, a NUL escape, a CSR that is not a string -> 400;
- PEM: two CERTIFICATE REQUEST blocks -> 400; a DER body relabelled or base64 damaged ->
  400; text before and after one block -> 200, only that block's key is used;
- 300 DNS/URI/IP SANs in the CSR -> the leaf carries only the token's SPIFFE URI SAN;
- a token whose user names a ServiceAccount in another namespace -> that SA's identity
  (the token decides, never the CSR or the caller's address); users that are not
  `system:serviceaccount:<ns>:<name>` with valid names (extra segments, upper case, empty
  parts) -> 403;
- a body trickled byte by byte: cut by the connection timeout, no certificate.
"""
import json
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_webhook_certify as wc  # noqa: E402
from gg_testlib import Proc, certgen, check, free_port, program  # noqa: E402


def raw_tls(port, cafile, data, timeout=5.0):
    """Send data on one TLS connection; return everything read until close or timeout."""
    ctx = ssl.create_default_context(cafile=cafile)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=timeout),
                        server_hostname="localhost")
    s.sendall(data)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    s.close()
    return out


def main():
    srv, api_ca = wc.start_standin()
    api_port = srv.server_address[1]
    sa_token_file = os.path.join(wc.tmp, "sa-token")
    with open(sa_token_file, "w") as f:
        f.write(wc.WEBHOOK_SA_TOKEN + "\n")
    ca_crt, ca_key = wc.identity_ca()
    serving = os.path.join(wc.tmp, "serving")
    os.makedirs(serving)
    serving_ca, cert, key = certgen(serving)
    cfg = os.path.join(wc.tmp, "rt2.yaml")
    with open(cfg, "w") as f:
        f.write("""identity:
  enabled: true
  ca:
    certFile: %s
    keyFile: %s
  tokenReview:
    # url: in-cluster (KUBERNETES_SERVICE_HOST/PORT)
    caFile: %s
    tokenFile: %s
    timeoutMs: 2000
  rateLimit:
    perSourcePerMinute: 600
    perSourceBurst: 1000
    perIdentityPerMinute: 600
    perIdentityBurst: 1000
limits:
  connectionTimeoutSeconds: 3
""" % (ca_crt, ca_key, api_ca, sa_token_file))
    port = free_port(18800, 18899)
    wh = Proc([program("grpcguard-webhook"), "--listen", "127.0.0.1:%d" % port, "--tls-cert",
               cert, "--tls-key", key, "--config", cfg, "--threads", "2"],
              env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api_port)})
    wh.wait_event("listening")
    cl = wc.Client(port, serving_ca)
    tok = wc.standin.mint("system:serviceaccount:demo:client")
    csr = wc.make_csr("rt2")
    issued0 = wc.metric(cl.get("/metrics"), "grpcguard_certificates_issued_total") or 0

    # ---- JSON -------------------------------------------------------------------------
    for label, body in [
            ("duplicate csr keys", '{"csr": %s, "csr": %s}' % (json.dumps(csr), json.dumps(csr))),
            ("duplicate keys, second not a string", '{"csr": %s, "csr": 1}' % json.dumps(csr)),
            ("an extra key", '{"csr": %s, "spiffe": "spiffe://cluster.local/ns/kube-system/sa/x"}'
             % json.dumps(csr)),
            ("a NUL escape", '{"csr": %s}' % json.dumps(csr + "\u0000junk")),
            ("csr not a string", '{"csr": {"pem": %s}}' % json.dumps(csr)),
            ("top-level array", '[%s]' % json.dumps(csr))]:
        st, b = cl.post(body.encode(), token=tok)
        check(st == 400, "%s: %s %s" % (label, st, b))
    print("json: duplicate keys, extra keys, NUL, wrong types -> 400")

    # ---- PEM ----------------------------------------------------------------------------
    other = wc.make_csr("rt2-other")
    st, b = cl.certify(csr + other, tok)
    check(st == 400 and "more than one" in b.get("error", ""), "two PEM blocks: %s %s" % (st, b))
    lines = csr.strip().splitlines()
    damaged = "\n".join(lines[:2] + [lines[2][::-1]] + lines[3:]) + "\n"
    st, b = cl.certify(damaged, tok)
    check(st == 400, "damaged base64: %s %s" % (st, b))
    relabelled = csr.replace("CERTIFICATE REQUEST", "CERTIFICATE")
    st, b = cl.certify(relabelled, tok)
    check(st == 400, "relabelled as CERTIFICATE: %s %s" % (st, b))
    st, b = cl.certify("garbage before\n" + csr + "trailing garbage\n\x01\x02", tok)
    check(st == 200, "text around one block: %s %s" % (st, b))
    wc.expect_leaf(b, ca_crt, "spiffe://cluster.local/ns/demo/sa/client")
    print("pem: two blocks / damaged / relabelled -> 400; text around one block -> 200")

    # ---- many SANs ----------------------------------------------------------------------
    sans = ",".join(["DNS:h%d.evil" % i for i in range(100)] +
                    ["URI:spiffe://cluster.local/ns/kube-system/sa/s%d" % i for i in range(100)] +
                    ["IP:10.0.%d.%d" % (i // 250, i % 250) for i in range(100)])
    big = wc.make_csr("rt2-sans", ext=("subjectAltName=" + sans,))
    check(len(big) < 60000, "the CSR fits the body cap (%d bytes)" % len(big))
    st, b = cl.certify(big, tok)
    check(st == 200, "300 SANs: %s %s" % (st, str(b)[:200]))
    wc.expect_leaf(b, ca_crt, "spiffe://cluster.local/ns/demo/sa/client")
    print("300 SANs in the CSR: the leaf has only the token's URI SAN")

    # ---- whose token ---------------------------------------------------------------------
    t_other = wc.standin.mint("system:serviceaccount:payments:worker")
    st, b = cl.certify(csr, t_other)
    check(st == 200, "a token of another namespace: %s %s" % (st, b))
    wc.expect_leaf(b, ca_crt, "spiffe://cluster.local/ns/payments/sa/worker")
    for user in ["system:serviceaccount:demo:client:extra", "system:serviceaccount:Demo:client",
                 "system:serviceaccount::client", "system:serviceaccount:demo:",
                 "system:serviceaccount:demo/../kube-system:client",
                 "system:serviceaccount:demo:cli%65nt", "system:serviceaccounts:demo",
                 "System:serviceaccount:demo:client"]:
        st, b = cl.certify(csr, wc.standin.mint(user))
        check(st == 403, "user %r: %s %s" % (user, st, b))
    print("tokens: another namespace's SA gets that SA's identity; odd users -> 403")

    # ---- Content-Length + Transfer-Encoding -------------------------------------------------
    issued1 = wc.metric(cl.get("/metrics"), "grpcguard_certificates_issued_total") or 0
    body = json.dumps({"csr": csr}).encode()
    smuggled = (b"POST /v1/certify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                tok.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: " +
                str(len(body)).encode() + b"\r\n\r\n" + body)
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for label, req in [
            ("CL+TE, smuggled request after the chunked body",
             b"POST /v1/certify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode() +
             b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(chunk)).encode() +
             b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + smuggled),
            ("TE+CL, CL covering a smuggled request",
             b"POST /v1/certify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode() +
             b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
             b"Content-Length: 4\r\n\r\n" + chunk + smuggled),
            ("Transfer-Encoding: identity, chunked",
             b"POST /v1/certify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode() +
             b"\r\nTransfer-Encoding: identity, chunked\r\nContent-Length: 5\r\n\r\n" + chunk)]:
        before = wc.metric(cl.get("/metrics"), "grpcguard_certificates_issued_total") or 0
        out = raw_tls(port, serving_ca, req)
        after = wc.metric(cl.get("/metrics"), "grpcguard_certificates_issued_total") or 0
        codes = re.findall(rb"HTTP/1\.[01] (\d{3})", out)
        print("  %s: answers %s, certificates +%d" % (label, [c.decode() for c in codes],
                                                        after - before))
        check(codes == [b"400"] and after == before,
              "%s: refused with 400 and the connection closed, nothing signed (%s, +%d)" %
              (label, codes, after - before))
    # The admission routes refuse both framings as well.
    review = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}'
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(review), review)
    out = raw_tls(port, serving_ca,
                  b"POST /mutate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk +
                  b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    codes = re.findall(rb"HTTP/1\.[01] (\d{3})", out)
    check(codes == [b"400"], "/mutate with both framings: 400 and closed (%s)" % codes)
    print("smuggling: both framings -> 400 and close (certify and /mutate)")

    # ---- a body trickled byte by byte ------------------------------------------------------
    ctx = ssl.create_default_context(cafile=serving_ca)
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="localhost")
    s.sendall(b"POST /v1/certify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode() +
              b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    t0 = time.monotonic()
    cut = None
    for i in range(len(body)):
        try:
            s.sendall(body[i:i + 1])
        except OSError:
            cut = time.monotonic() - t0
            break
        time.sleep(4 if i == 0 else 0)  # one pause longer than the 3 s connection timeout
        if i > 2:
            break
    if cut is None:
        try:
            s.settimeout(5)
            d = s.recv(100)
            cut = time.monotonic() - t0 if not d or b" 200 " not in d else None
        except (OSError, ssl.SSLError):
            cut = time.monotonic() - t0
    s.close()
    check(cut is not None, "a stalled body is cut by the connection timeout")
    print("slow body: cut after %.1fs" % cut)
    check(wh.stop() == 0, "the webhook exits 0 on SIGTERM (and, sanitized, reports nothing)")
    srv.shutdown()
    print("redteam2 certify: ok (issued before the smuggling part: %d)" % (issued1 - issued0))


if __name__ == "__main__":
    main()
