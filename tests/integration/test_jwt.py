"""Request authentication (issue 10) end to end: a grpcio client sends
`authorization: Bearer <JWT>` through the real grpcguard-sidecar to a greeter server that
records every call it receives and the metadata it saw. Tokens are signed here with
python3-cryptography (RSA 2048 RS256 and EC P-256 ES256), keys published as a JWKS file
and an inline JWKS.

Covers: allowed by requestPrincipals, allowed by a claim, denied by a claim (DENY policy and
no matching ALLOW: PERMISSION_DENIED), no token with ALLOW on principals (denied), bad tokens
(bad signature, expired, unknown issuer, alg none, garbage: UNAUTHENTICATED "Jwt verification
fails", and the server never sees them), forwardOriginalToken false (the app does not get the
header), the failure counter in /metrics, `check` on the policy, and JWKS file rotation
(a new kid works after the file changes, the removed key stops working).
"""
import base64
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import Proc, check, fail, free_port, program, run, skip, timeout_scale  # noqa: E402

try:
    import grpc
    import helloworld_pb2
    import helloworld_pb2_grpc
except ImportError as e:
    skip("grpcio or the greeter stubs are missing (make py): %s" % e)
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
except ImportError:
    skip("python3-cryptography is not installed")

ISS = "https://issuer.example.com"
ISS2 = "https://strip.example.com"
NOW = int(time.time())


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def int_b64u(n, size=None):
    size = size or (n.bit_length() + 7) // 8
    return b64u(n.to_bytes(size, "big"))


def jwk(key, kid):
    pub = key.public_key().public_numbers()
    if isinstance(key, rsa.RSAPrivateKey):
        return {"kty": "RSA", "kid": kid, "use": "sig", "n": int_b64u(pub.n), "e": int_b64u(pub.e)}
    return {"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256",
            "x": int_b64u(pub.x, 32), "y": int_b64u(pub.y, 32)}


def sign(key, kid, claims, alg=None):
    alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
    header = {"alg": alg, "typ": "JWT", "kid": kid}
    signing_input = (b64u(json.dumps(header).encode()) + "." +
                     b64u(json.dumps(claims).encode())).encode()
    if alg == "RS256":
        sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return signing_input.decode() + "." + b64u(sig)


def claims(sub, groups, iss=ISS, aud="greeter", exp_in=600):
    return {"iss": iss, "sub": sub, "aud": aud, "iat": NOW, "exp": NOW + exp_in,
            "groups": groups}


class Recorder(helloworld_pb2_grpc.GreeterServicer):
    """The app: remembers each call's name and whether it saw an authorization header."""

    def __init__(self):
        self.lock = threading.Lock()
        self.calls = []

    def SayHello(self, request, context):
        md = dict(context.invocation_metadata())
        with self.lock:
            self.calls.append((request.name, "authorization" in md))
        return helloworld_pb2.HelloReply(message="Hello, " + request.name)

    def seen(self, name):
        with self.lock:
            return [c for c in self.calls if c[0] == name]


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main():
    sidecar_bin = program("grpcguard-sidecar")
    tmp = tempfile.mkdtemp(prefix="gg-jwt-")
    server = None
    try:
        rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec1 = ec.generate_private_key(ec.SECP256R1())
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks_path = os.path.join(tmp, "jwks.json")
        write_atomic(jwks_path, json.dumps({"keys": [jwk(rsa1, "k1")]}))
        inline = json.dumps({"keys": [jwk(ec1, "e1")]})
        policy_path = os.path.join(tmp, "policy.yaml")
        with open(policy_path, "w") as f:
            f.write("""apiVersion: grpcguard.io/v1
kind: Policy
requestAuthentication:
  - issuer: %s
    audiences: [greeter]
    jwksFile: %s
  - issuer: %s
    jwks: '%s'
    forwardOriginalToken: false
authorization:
  - name: no-interns
    action: DENY
    rules:
      - when: [{key: "request.auth.claims[groups]", values: ["interns"]}]
  - name: alice-or-admins
    action: ALLOW
    rules:
      - from: [{requestPrincipals: ["%s/alice", "%s/*"]}]
      - when: [{key: "request.auth.claims[groups]", values: ["admins"]}]
""" % (ISS, jwks_path, ISS2, inline, ISS, ISS2))

        rc, out, err = run([sidecar_bin, "check", policy_path])
        check(rc == 0, "check refused the policy (%d): %s %s" % (rc, out, err))
        rc, out, err = run([sidecar_bin, "check", "--policy", policy_path])
        check(rc == 0 and "valid" in out, "check --policy accepted the policy (%d): %s %s" % (rc, out, err))

        # check builds the JWKS as `run` does: an unusable jwksFile is an error (exit 1).
        with open(policy_path) as f:
            good_text = f.read()
        bad_jwks = os.path.join(tmp, "bad-jwks.json")
        for what, content in (("missing", None), ("not JSON", "{nope"),
                              ("no usable key", json.dumps({"keys": [{"kty": "RSA", "kid": "x"}]}))):
            if content is not None:
                write_atomic(bad_jwks, content)
            elif os.path.exists(bad_jwks):
                os.unlink(bad_jwks)
            bad_policy = os.path.join(tmp, "bad-policy.yaml")
            write_atomic(bad_policy, good_text.replace(jwks_path, bad_jwks))
            rc, out, err = run([sidecar_bin, "check", "--policy", bad_policy])
            check(rc == 1 and "bad-jwks.json" in err and "requestAuthentication[0]" in err,
                  "check: jwksFile %s -> exit 1 with the reason (%d): %s" % (what, rc, err.strip()))

        app = Recorder()
        app_port = free_port(26100, 26199)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        helloworld_pb2_grpc.add_GreeterServicer_to_server(app, server)
        server.add_insecure_port("127.0.0.1:%d" % app_port)
        server.start()

        port = free_port(26200, 26299)
        admin = free_port(26300, 26399)
        sc = Proc([sidecar_bin, "run", "--listen", "127.0.0.1:%d" % port,
                   "--upstream", "127.0.0.1:%d" % app_port, "--admin", "127.0.0.1:%d" % admin,
                   "--policy", policy_path, "--log-level", "debug",
                   "--upstream-connect-timeout", "%ds" % int(5 * timeout_scale())])
        sc.wait_event("listening")
        chan = grpc.insecure_channel("127.0.0.1:%d" % port)
        grpc.channel_ready_future(chan).result(timeout=10 * timeout_scale())
        stub = helloworld_pb2_grpc.GreeterStub(chan)

        def call(name, token=None, raw_auth=None):
            md = []
            if token is not None:
                md.append(("authorization", "Bearer " + token))
            if raw_auth is not None:
                md.append(("authorization", raw_auth))
            try:
                stub.SayHello(helloworld_pb2.HelloRequest(name=name), metadata=md,
                              timeout=10 * timeout_scale())
                return grpc.StatusCode.OK, ""
            except grpc.RpcError as e:
                return e.code(), e.details()

        def expect(name, want, token=None, raw_auth=None, reaches=None):
            code, details = call(name, token, raw_auth)
            check(code == want, "%s: got %s %r, want %s" % (name, code, details, want))
            if want == grpc.StatusCode.UNAUTHENTICATED:
                check(details == "Jwt verification fails", "%s: message %r" % (name, details))
            if want == grpc.StatusCode.PERMISSION_DENIED:
                check(details == "RBAC: access denied", "%s: message %r" % (name, details))
            seen = app.seen(name)
            if reaches is None:
                reaches = want == grpc.StatusCode.OK
            check(len(seen) == (1 if reaches else 0),
                  "%s: the app saw %d calls, want %d" % (name, len(seen), 1 if reaches else 0))
            return seen

        # Allowed: by principal (alice), by claim (bob, an admin), by issuer wildcard.
        seen = expect("alice", grpc.StatusCode.OK, sign(rsa1, "k1", claims("alice", ["dev"])))
        check(seen[0][1], "forwardOriginalToken defaults to true: the app should see the token")
        expect("bob", grpc.StatusCode.OK, sign(rsa1, "k1", claims("bob", ["admins"])))
        # forwardOriginalToken: false strips the header before the app.
        seen = expect("erin", grpc.StatusCode.OK,
                      sign(ec1, "e1", claims("erin", [], iss=ISS2, aud="anything")))
        check(not seen[0][1], "forwardOriginalToken false: the app still saw the token")

        # Denied by claims: not an admin and not alice; an admin who is also an intern.
        expect("carol", grpc.StatusCode.PERMISSION_DENIED,
               sign(rsa1, "k1", claims("carol", ["dev"])))
        expect("dave", grpc.StatusCode.PERMISSION_DENIED,
               sign(rsa1, "k1", claims("dave", ["admins", "interns"])))
        # No token: not rejected by authentication, but no principal for the ALLOW.
        expect("anon", grpc.StatusCode.PERMISSION_DENIED)
        expect("basic", grpc.StatusCode.PERMISSION_DENIED, raw_auth="Basic YWxpY2U6cHc=")

        # Bad tokens: UNAUTHENTICATED, never reach the app.
        bad = {
            "forged": sign(other, "k1", claims("alice", ["admins"])),
            "expired": sign(rsa1, "k1", claims("alice", ["dev"], exp_in=-3600)),
            "wrongaud": sign(rsa1, "k1", claims("alice", ["dev"], aud="payments")),
            "stranger": sign(rsa1, "k1", claims("alice", ["dev"], iss="https://evil.example.com")),
            "unsigned": b64u(b'{"alg":"none"}') + "." + b64u(json.dumps(claims("alice", [])).encode()) + ".",
            "garbage": "not-a-jwt",
        }
        for name, tok in bad.items():
            expect(name, grpc.StatusCode.UNAUTHENTICATED, tok)

        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as r:
            metrics = r.read().decode()
        line = [l for l in metrics.splitlines() if l.startswith("grpcguard_authn_failed_total")]
        check(line and float(line[0].split()[-1]) == len(bad),
              "grpcguard_authn_failed_total: %s, want %d" % (line, len(bad)))

        # Key rotation through the JWKS file: publish k2 only.
        t2 = sign(rsa2, "k2", claims("alice", ["dev"]))
        expect("rot-before", grpc.StatusCode.UNAUTHENTICATED, t2)
        write_atomic(jwks_path, json.dumps({"keys": [jwk(rsa2, "k2")]}))
        deadline = time.monotonic() + 10 * timeout_scale()
        while True:
            code, details = call("rot-wait", t2)
            if code == grpc.StatusCode.OK:
                break
            check(code == grpc.StatusCode.UNAUTHENTICATED, "rotation: got %s %r" % (code, details))
            if time.monotonic() > deadline:
                fail("the new key k2 was not picked up within 10 s")
            time.sleep(0.2)
        sc.wait_event("jwks_reload")
        expect("rot-old", grpc.StatusCode.UNAUTHENTICATED,
               sign(rsa1, "k1", claims("alice", ["dev"])))
        # A broken file keeps the last good keys. The file is looked at when a token of
        # its issuer arrives (at most once a second), so keep calling until it was.
        write_atomic(jwks_path, '{"keys": [')
        deadline = time.monotonic() + 10 * timeout_scale()
        while not [e for e in sc.events() if e.get("event") == "jwks_reload_failed"]:
            code, details = call("rot-broken", t2)
            check(code == grpc.StatusCode.OK, "broken JWKS file: got %s %r" % (code, details))
            if time.monotonic() > deadline:
                fail("the broken JWKS file was not noticed within 10 s")
            time.sleep(0.2)
        code, details = call("rot-broken", t2)
        check(code == grpc.StatusCode.OK, "after the broken file: got %s %r" % (code, details))

        chan.close()
        rc = sc.stop()
        check(rc == 0, "sidecar exited with %s:\n%s" % (rc, sc.log_text()[-3000:]))
        print("ok: %d calls reached the app" % len(app.calls))
    finally:
        if server is not None:
            server.stop(0)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
