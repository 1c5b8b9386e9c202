"""grpcguard-webhook's certificate endpoint (POST /v1/certify, issue 16), end to end:
the real webhook over HTTPS, real CSRs made by `openssl req`, certificates checked with
`openssl verify` and `openssl x509`.

No kube-apiserver runs here, so TokenReview goes to a STAND-IN: a minimal HTTPS server
(tests/lib/py/tokenreview_standin.py, shared with test_identity_e2e.sh; http.server over
TLS with a certificate from grpcguard-certgen) that answers
POST /apis/authentication.k8s.io/v1/tokenreviews for tokens it minted itself, the way the
API server does: unknown, expired or other-audience tokens get authenticated: false;
known ones get the user and the audiences they were minted for. It also insists on the
webhook's own bearer token, as the API server would. Everything else is real.

Checked: a good CSR -> 200, a leaf that verifies against caBundle with exactly the token's
SPIFFE URI SAN, CA:FALSE and serverAuth+clientAuth; a CSR asking for another identity
(and CA:TRUE) still gets the token's identity and CA:FALSE; missing / malformed / unknown /
expired / wrong-audience tokens -> 401; a non-ServiceAccount user -> 403; a body over
64 KiB -> 413 (declared and chunked); garbage, a bad CSR signature, RSA-1024 -> 400;
a burst per identity and per source -> 429; TokenReview unreachable -> 503; metrics
count it all; no token ever appears in the logs."""
import base64
import http.client
import http.server
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import (GG_ROOT, Proc, certgen, check, fail, free_port, program,  # noqa: E402
                        timeout_scale)
from tokenreview_standin import StandIn, serve  # noqa: E402

tmp = tempfile.mkdtemp(prefix="gg-certify-")
WEBHOOK_SA_TOKEN = "webhook-sa-" + secrets.token_hex(8)


# ---- the stand-in TokenReview server (tests/lib/py/tokenreview_standin.py) --------------

standin = StandIn()


def start_standin():
    d = os.path.join(tmp, "apiserver")
    os.makedirs(d)
    ca, cert, key = certgen(d, service="kubernetes", namespace="default")
    return serve(standin, WEBHOOK_SA_TOKEN, "127.0.0.1", 0, cert, key), ca


# ---- keys, CSRs, the identity CA -------------------------------------------------------

def sh(argv, **kw):
    r = subprocess.run(argv, capture_output=True, **kw)
    if r.returncode != 0:
        fail("%s: %s" % (" ".join(argv), r.stderr.decode()))
    return r.stdout.decode()


def identity_ca():
    """The identity CA as the chart's generated mode makes it: grpcguard-certgen --identity-ca."""
    d = os.path.join(tmp, "identity-ca")
    sh([program("grpcguard-certgen"), "--identity-ca", "--out", d, "--ca-days", "30"])
    text = sh(["openssl", "x509", "-noout", "-text", "-in", os.path.join(d, "tls.crt")])
    check(re.search(r"CA:TRUE, pathlen:0", text), "certgen --identity-ca: a CA:\n" + text)
    return os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")


def make_csr(name, newkey=("ec", "ec_paramgen_curve:P-256"), subj="/CN=whatever", ext=()):
    key = os.path.join(tmp, name + ".key")
    argv = ["openssl", "req", "-new", "-newkey", newkey[0]]
    if newkey[1]:
        argv += ["-pkeyopt", newkey[1]]
    argv += ["-nodes", "-keyout", key, "-subj", subj]
    for e in ext:
        argv += ["-addext", e]
    return sh(argv)


# ---- the client -----------------------------------------------------------------------

class Client:
    def __init__(self, port, cafile, source="127.0.0.1"):
        self.port, self.source = port, source
        self.ctx = ssl.create_default_context(cafile=cafile)

    def post(self, body, token=None, auth=None, chunked=False):
        c = http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=30,
                                        source_address=(self.source, 0))
        h = {"Content-Type": "application/json"}
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if auth is not None:
            h["Authorization"] = auth
        try:
            if chunked:
                def gen():
                    for _ in range(40):
                        yield b"x" * 4096
                c.request("POST", "/v1/certify", body=gen(), headers=h, encode_chunked=True)
            else:
                c.request("POST", "/v1/certify", body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data[:1] == b"{" else data)
        finally:
            c.close()

    def declare_length(self, length, token):
        """Only headers announcing a body of `length` bytes; the answer comes first."""
        c = http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=30)
        try:
            c.putrequest("POST", "/v1/certify")
            c.putheader("Content-Type", "application/json")
            c.putheader("Authorization", "Bearer " + token)
            c.putheader("Content-Length", str(length))
            c.endheaders()
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def certify(self, csr, token, **kw):
        return self.post(json.dumps({"csr": csr}).encode(), token=token, **kw)

    def get(self, path):
        c = http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=30)
        try:
            c.request("GET", path)
            return c.getresponse().read().decode()
        finally:
            c.close()


def cert_text(pem):
    return sh(["openssl", "x509", "-noout", "-text"], input=pem.encode())


def expect_leaf(body, bundle_path, want_id):
    chain = body["certificateChain"]
    check(chain.count("BEGIN CERTIFICATE") == 1, "a root CA: the chain is the leaf only")
    leaf = os.path.join(tmp, "leaf.pem")
    with open(leaf, "w") as f:
        f.write(chain)
    bundle = os.path.join(tmp, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(body["caBundle"])
    # The returned bundle is the CA we configured, and the leaf verifies against it for
    # both uses a workload puts it to.
    check(open(bundle).read().strip() == open(bundle_path).read().strip(),
          "caBundle is the identity CA")
    for purpose in ("sslserver", "sslclient"):
        sh(["openssl", "verify", "-purpose", purpose, "-CAfile", bundle, leaf])
    text = cert_text(chain)
    uris = re.findall(r"URI:(\S+?)(?:,|\s|$)", text)
    check(uris == [want_id], "URI SANs %s, want exactly %s" % (uris, want_id))
    check("DNS:" not in text and "IP Address:" not in text and "email:" not in text,
          "no other SAN:\n" + text)
    check(re.search(r"Basic Constraints: critical\s+CA:FALSE", text), "CA:FALSE:\n" + text)
    check("TLS Web Server Authentication, TLS Web Client Authentication" in text,
          "EKU serverAuth+clientAuth:\n" + text)
    check(re.search(r"Key Usage: critical\s+Digital Signature, Key Agreement", text),
          "keyUsage:\n" + text)
    check("Certificate Sign" not in text, "the leaf may not sign certificates")
    exp = time.mktime(time.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    check(abs(exp - (time.time() + 86400)) < 120, "expiresAt %s is not now + 24 h" %
          body["expiresAt"])
    return text


def metric(text, name, labels=""):
    for line in text.splitlines():
        if line.startswith(name + labels + " ") or (not labels and line.startswith(name + " ")):
            return float(line.split()[-1])
    return None


def main():
    wh_bin = program("grpcguard-webhook")
    srv, api_ca = start_standin()
    api_port = srv.server_address[1]
    sa_token_file = os.path.join(tmp, "sa-token")
    with open(sa_token_file, "w") as f:
        f.write(WEBHOOK_SA_TOKEN + "\n")
    ca_crt, ca_key = identity_ca()
    serving = os.path.join(tmp, "serving")
    os.makedirs(serving)
    serving_ca, cert, key = certgen(serving)

    def start_webhook(name, tr_url, extra=""):
        """tr_url None: the in-cluster address from KUBERNETES_SERVICE_HOST/PORT."""
        cfg = os.path.join(tmp, name + ".yaml")
        with open(cfg, "w") as f:
            f.write("""identity:
  enabled: true
  ca:
    certFile: %s
    keyFile: %s
  tokenReview:
    %s
    caFile: %s
    tokenFile: %s
    timeoutMs: 2000
%s""" % (ca_crt, ca_key, "url: " + tr_url if tr_url else "# url: in-cluster", api_ca,
          sa_token_file, extra))
        port = free_port({"main": 18600, "dead": 18700, "slow": 18750}[name], 18799)
        env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api_port)}
        wh = Proc([wh_bin, "--listen", "127.0.0.1:%d" % port, "--tls-cert", cert, "--tls-key",
                   key, "--config", cfg, "--threads", "2"], env=env)
        wh.wait_event("listening")
        return wh, port

    # The main webhook finds the stand-in the in-cluster way (KUBERNETES_SERVICE_HOST/PORT).
    wh, port = start_webhook("main", None, """  rateLimit:
    perSourcePerMinute: 1
    perSourceBurst: 1000
    perIdentityPerMinute: 1
    perIdentityBurst: 3
""")
    cl = Client(port, serving_ca)
    tokens = []

    # Good: 200 and the token's identity.
    tok = standin.mint("system:serviceaccount:demo:client")
    tokens.append(tok)
    st, body = cl.certify(make_csr("good"), tok)
    check(st == 200, "good CSR: %s %s" % (st, body))
    expect_leaf(body, ca_crt, "spiffe://cluster.local/ns/demo/sa/client")
    check(standin.reviews[-1].get("audiences") == ["grpcguard"],
          "TokenReview asked for audience grpcguard: %s" % standin.reviews[-1])
    check(standin.bad_callers == 0, "the webhook presented its own SA token to the API")

    # A CSR that asks for another identity, a CA certificate and other SANs: ignored.
    tok2 = standin.mint("system:serviceaccount:payments:worker")
    tokens.append(tok2)
    csr = make_csr("evil", subj="/CN=admin/O=system:masters",
                   ext=("subjectAltName=URI:spiffe://cluster.local/ns/kube-system/sa/admin,"
                        "DNS:kubernetes.default.svc,IP:10.0.0.1",
                        "basicConstraints=critical,CA:TRUE",
                        "keyUsage=critical,keyCertSign"))
    st, body = cl.certify(csr, tok2)
    check(st == 200, "other-identity CSR: %s %s" % (st, body))
    text = expect_leaf(body, ca_crt, "spiffe://cluster.local/ns/payments/sa/worker")
    check("admin" not in text and "system:masters" not in text,
          "nothing of the CSR's subject or SANs is copied:\n" + text)

    good_csr = make_csr("good2")
    # 401: no token, not a bearer token, unknown, expired, wrong audience (both kinds).
    st, body = cl.certify(good_csr, None)
    check(st == 401 and "Bearer" in body.get("error", ""), "no token: %s %s" % (st, body))
    st, body = cl.certify(good_csr, None, auth="Basic dXNlcjpwYXNz")
    check(st == 401, "Basic auth: %s %s" % (st, body))
    st, body = cl.certify(good_csr, "not-a-token-we-minted")
    check(st == 401 and "invalid bearer token" in body["error"], "unknown token: %s %s" %
          (st, body))
    expired = standin.mint("system:serviceaccount:demo:client", ttl=-10)
    tokens.append(expired)
    st, body = cl.certify(good_csr, expired)
    check(st == 401 and "expired" in body["error"], "expired token: %s %s" % (st, body))
    other_aud = standin.mint("system:serviceaccount:demo:client", audiences=("api",))
    tokens.append(other_aud)
    st, body = cl.certify(good_csr, other_aud)
    check(st == 401, "token for another audience: %s %s" % (st, body))
    legacy = standin.mint("system:serviceaccount:demo:client", audiences=("api",),
                          honour_audiences=False)
    tokens.append(legacy)
    st, body = cl.certify(good_csr, legacy)
    check(st == 401 and "audience" in body["error"],
          "authenticated but for another audience: %s %s" % (st, body))
    # 403: a user, not a ServiceAccount.
    user = standin.mint("alice@example.com")
    tokens.append(user)
    st, body = cl.certify(good_csr, user)
    check(st == 403 and "ServiceAccount" in body["error"], "user token: %s %s" % (st, body))

    # 413: declared and chunked.
    st, body = cl.declare_length(70 * 1024, tok)
    check(st == 413 and "65536" in body["error"], "70 KiB declared: %s %s" % (st, body))
    st, body = cl.post(None, token=tok, chunked=True)
    check(st == 413, "chunked 160 KiB body: %s %s" % (st, body))

    # 400: garbage of every kind.
    nreviews = len(standin.reviews)
    for garbage in (b"", b"not json", b"[]", b'{"csr": 5}', b'{"csr": "x", "extra": 1}',
                    b'{"csr": "-----BEGIN CERTIFICATE REQUEST-----\\nAAAA\\n'
                    b'-----END CERTIFICATE REQUEST-----\\n"}'):
        st, body = cl.post(garbage, token=tok)
        check(st == 400 and "error" in body, "garbage %r: %s %s" % (garbage[:40], st, body))
    st, body = cl.certify(make_csr("rsa1024", newkey=("rsa:1024", None)), tok)
    check(st == 400 and "RSA-1024" in body["error"], "RSA-1024: %s %s" % (st, body))
    st, body = cl.certify(make_csr("p384", newkey=("ec", "ec_paramgen_curve:P-384")), tok)
    check(st == 400 and "P-256" in body["error"], "P-384: %s %s" % (st, body))
    # A valid CSR whose signature no longer matches: flip a byte of the signature.
    der = base64.b64decode("".join(good_csr.strip().splitlines()[1:-1]))
    der = der[:-3] + bytes([der[-3] ^ 0x01]) + der[-2:]
    tampered = ("-----BEGIN CERTIFICATE REQUEST-----\n" +
                base64.encodebytes(der).decode() + "-----END CERTIFICATE REQUEST-----\n")
    st, body = cl.certify(tampered, tok)
    check(st == 400 and "proof of possession" in body["error"], "bad signature: %s %s" %
          (st, body))
    check(len(standin.reviews) == nreviews, "bad bodies never reach TokenReview")

    # 429 per identity: burst 3, then refused (a different key each time).
    burst_tok = standin.mint("system:serviceaccount:demo:burst")
    tokens.append(burst_tok)
    codes = [cl.certify(good_csr, burst_tok)[0] for _ in range(5)]
    check(codes == [200, 200, 200, 429, 429], "identity burst: %s" % codes)
    # ... and another identity from the same source is not affected.
    st, body = cl.certify(good_csr, tok2)
    check(st == 200, "another identity after a burst: %s %s" % (st, body))

    # Metrics.
    m = cl.get("/metrics")
    check(metric(m, "grpcguard_certificates_issued_total") == 6.0,
          "issued_total: %s" % metric(m, "grpcguard_certificates_issued_total"))
    for reason, n in (("missing_token", 2), ("invalid_token", 3), ("wrong_audience", 1),
                      ("not_service_account", 1), ("body_too_large", 2),
                      ("bad_request", 5), ("bad_csr", 4), ("rate_limited_identity", 2)):
        got = metric(m, "grpcguard_certify_failures_total", '{reason="%s"}' % reason)
        check(got == n, "failures{reason=%s} = %s, want %d" % (reason, got, n))

    # Logs: one line per issued certificate; never a token.
    issued = [e for e in wh.events() if e.get("event") == "certificate_issued"]
    check(len(issued) == 6 and issued[0]["spiffe_id"] ==
          "spiffe://cluster.local/ns/demo/sa/client", "issued log lines: %s" % issued[:2])
    log = wh.log_text()
    for t in tokens + [WEBHOOK_SA_TOKEN]:
        check(t not in log, "a token appears in the webhook's log")
    check(wh.stop() == 0, "webhook exit status")

    # A second webhook: the API server unreachable -> 503; per-source burst -> 429.
    dead = free_port(18800, 18899)
    wh2, port2 = start_webhook("dead", "https://127.0.0.1:%d/apis/x" % dead, """  rateLimit:
    perSourcePerMinute: 1
    perSourceBurst: 3
""")
    cl2 = Client(port2, serving_ca, source="127.0.0.2")
    codes, errs = [], []
    for _ in range(5):
        st, body = cl2.certify(good_csr, tok)
        codes.append(st)
        errs.append(body.get("error", ""))
    check(codes == [503, 503, 503, 429, 429], "unreachable API then source burst: %s %s" %
          (codes, errs))
    check("TokenReview" in errs[0], "503 says what failed: %s" % errs[0])
    # Another source address has its own bucket.
    st, body = Client(port2, serving_ca, source="127.0.0.3").certify(good_csr, tok)
    check(st == 503, "another source: %s %s" % (st, body))
    check(wh2.stop() == 0, "webhook 2 exit status")

    # A slow API server must not stall admission: with 2 threads at most one TokenReview
    # is in flight; the others are refused at once and a review still gets its answer.
    wh3, port3 = start_webhook("slow", "https://127.0.0.1:%d/slow" % api_port)
    results = {}

    def certify_from(i):
        t0 = time.monotonic()
        st, body = Client(port3, serving_ca, source="127.0.1.%d" % i).certify(good_csr, tok)
        results[i] = (st, body.get("error", ""), time.monotonic() - t0)
    threads = [threading.Thread(target=certify_from, args=(i,)) for i in range(1, 4)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    with open(os.path.join(GG_ROOT, "tests", "data", "admission", "pod-bare.json")) as f:
        pod = json.load(f)
    review = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                         "request": {"uid": "u1", "kind": {"group": "", "version": "v1",
                                                           "kind": "Pod"},
                                     "operation": "CREATE", "namespace": "demo",
                                     "object": pod}}).encode()
    t0 = time.monotonic()
    c = http.client.HTTPSConnection("localhost", port3, context=cl.ctx, timeout=30)
    c.request("POST", "/mutate", body=review, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    admit_s = time.monotonic() - t0
    for t in threads:
        t.join()
    check(r.status == 200 and admit_s < 1.0 * timeout_scale(),
          "admission during slow TokenReviews: %d in %.2fs" % (r.status, admit_s))
    busy = [v for v in results.values() if "busy" in v[1]]
    slow = [v for v in results.values() if "TokenReview" in v[1]]
    check(len(slow) == 1 and slow[0][0] == 503 and len(busy) == 2 and
          all(v[0] == 503 and v[2] < 1.5 for v in busy), "slow API: %s" % results)
    check(wh3.stop() == 0, "webhook 3 exit status")
    srv.shutdown()
    print("certify: ok")


if __name__ == "__main__":
    main()
