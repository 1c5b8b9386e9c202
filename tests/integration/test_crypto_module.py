"""OpenSSL only when it is used (issue 17): the sidecar binary does not link libssl or
libcrypto; they come with grpcguard-sidecar-crypto.so, loaded when identity or a JWT rule
needs them (sidecar/crypto.h).

Covers, with the real sidecar and a grpcio greeter behind it:
- the binary has no libssl/libcrypto NEEDED entry, the module has;
- a sidecar with a policy without requestAuthentication serves RPCs and maps neither
  libcrypto nor the module (/proc/PID/maps);
- a live reload that adds a requestAuthentication entry (and an ALLOW on its principal)
  loads the module (crypto_module_loaded, libcrypto now mapped) and enforces JWT: a good
  token passes, a forged one gets UNAUTHENTICATED, none gets PERMISSION_DENIED;
- with the module missing (GRPCGUARD_CRYPTO_MODULE names a file that is not there): that
  reload is rejected, /policy's last_error names the path, the reload failure is counted,
  the old policy stays in force (calls without a token still pass) and libcrypto is still
  not mapped; `check` on the JWT policy exits 1 naming the path; `run --ca-address` (identity)
  exits 1 naming the path; a file that is not a grpcguard module is refused by name too,
  and so is a module whose API list differs with the same ABI number and sizes.
"""
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import (GG_BIN, Proc, check, fail, free_port, program, run, skip,  # noqa: E402
                        timeout_scale)

try:
    import grpc
    import helloworld_pb2
    import helloworld_pb2_grpc
except ImportError as e:
    skip("grpcio or the greeter stubs are missing (make py): %s" % e)
try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
except ImportError:
    skip("python3-cryptography is not installed")

MODULE = "grpcguard-sidecar-crypto.so"
ISS = "https://issuer.example.com"
PLAIN_POLICY = """apiVersion: grpcguard.io/v1
kind: Policy
faults: []
"""


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_policy(jwks):
    return """apiVersion: grpcguard.io/v1
kind: Policy
requestAuthentication:
  - issuer: %s
    jwks: '%s'
authorization:
  - name: only-alice
    action: ALLOW
    rules:
      - from: [{requestPrincipals: ["%s/alice"]}]
""" % (ISS, jwks, ISS)


def sign(key, sub):
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    claims = {"iss": ISS, "sub": sub, "iat": now, "exp": now + 600}
    signing_input = (b64u(json.dumps(header).encode()) + "." +
                     b64u(json.dumps(claims).encode())).encode()
    sig = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return signing_input.decode() + "." + b64u(sig)


def jwks_of(key):
    pub = key.public_key().public_numbers()
    n = pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")
    e = pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big")
    return json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig",
                                 "n": b64u(n), "e": b64u(e)}]})


def needed(path):
    out = subprocess.run(["readelf", "-d", path], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def mapped(pid):
    """The file names mapped into pid (basename set)."""
    with open("/proc/%d/maps" % pid) as f:
        return {os.path.basename(l.split()[-1]) for l in f if len(l.split()) >= 6}


def has_crypto(names):
    return any(n.startswith("libcrypto.so") or n.startswith("libssl.so") or n == MODULE
               for n in names)


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def SayHello(self, request, context):
        return helloworld_pb2.HelloReply(message="Hello, " + request.name)


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read().decode())


def metric(admin, name, label):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name) and label in line:
                return float(line.split()[-1])
    return 0.0


def start_sidecar(sidecar_bin, app_port, policy_path, env=None):
    port = free_port(29400, 29499)
    admin = free_port(29500, 29599)
    sc = Proc([sidecar_bin, "run", "--listen", "127.0.0.1:%d" % port,
               "--upstream", "127.0.0.1:%d" % app_port, "--admin", "127.0.0.1:%d" % admin,
               "--policy", policy_path], env=env)
    sc.wait_event("listening")
    chan = grpc.insecure_channel("127.0.0.1:%d" % port)
    grpc.channel_ready_future(chan).result(timeout=10 * timeout_scale())
    stub = helloworld_pb2_grpc.GreeterStub(chan)

    def call(name, token=None):
        md = [("authorization", "Bearer " + token)] if token else []
        try:
            stub.SayHello(helloworld_pb2.HelloRequest(name=name), metadata=md,
                          timeout=10 * timeout_scale())
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()
    return sc, admin, chan, call


def wait_policy(admin, pred, what):
    deadline = time.monotonic() + 10 * timeout_scale()
    while True:
        pol = get_json("http://127.0.0.1:%d/policy" % admin)
        if pred(pol):
            return pol
        if time.monotonic() > deadline:
            fail("%s: /policy never showed it: %s" % (what, json.dumps(pol)[:1500]))
        time.sleep(0.1)


def main():
    sidecar_bin = program("grpcguard-sidecar")
    module = os.path.join(GG_BIN, MODULE)
    check(os.path.exists(module), "%s was not built beside grpcguard-sidecar" % module)
    libs = needed(sidecar_bin)
    check(not [l for l in libs if l.startswith(("libssl", "libcrypto"))],
          "grpcguard-sidecar still links OpenSSL: NEEDED %s" % libs)
    check([l for l in needed(module) if l.startswith("libcrypto")],
          "the module does not link libcrypto: NEEDED %s" % needed(module))

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tmp = tempfile.mkdtemp(prefix="gg-crypto-")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    app_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        # ---- 1. no identity, no JWT: no OpenSSL in the process -------------------------
        policy_path = os.path.join(tmp, "policy.yaml")
        write_atomic(policy_path, PLAIN_POLICY)
        sc, admin, chan, call = start_sidecar(sidecar_bin, app_port, policy_path)
        check(call("before") == grpc.StatusCode.OK, "a call through the idle sidecar failed")
        names = mapped(sc.pid) if not os.environ.get("GG_VALGRIND") == "1" else set()
        check(not has_crypto(names),
              "the sidecar without identity or JWT maps OpenSSL or the module: %s"
              % sorted(n for n in names if "ssl" in n or "crypto" in n))
        gen0 = get_json("http://127.0.0.1:%d/policy" % admin)["generation"]

        # ---- 2. a reload adds a JWT rule: the module is loaded and JWT enforced --------
        write_atomic(policy_path, jwt_policy(jwks_of(key)))
        wait_policy(admin, lambda p: p["generation"] > gen0 and not p.get("last_error"),
                    "the JWT policy")
        ev = sc.wait_event("crypto_module_loaded")
        check(ev.get("for") == "requestAuthentication" and ev.get("path", "").endswith(MODULE),
              "crypto_module_loaded: %s" % ev)
        if os.environ.get("GG_VALGRIND") != "1":
            names = mapped(sc.pid)
            check(any(n.startswith("libcrypto.so") for n in names) and MODULE in names,
                  "after the JWT reload libcrypto or the module is not mapped")
        code = call("alice", sign(key, "alice"))
        check(code == grpc.StatusCode.OK, "a good token after the reload: %s" % code)
        code = call("forged", sign(forger, "alice"))
        check(code == grpc.StatusCode.UNAUTHENTICATED, "a forged token: %s" % code)
        code = call("anon")
        check(code == grpc.StatusCode.PERMISSION_DENIED, "no token under ALLOW alice: %s" % code)
        code = call("bob", sign(key, "bob"))
        check(code == grpc.StatusCode.PERMISSION_DENIED, "bob's token: %s" % code)
        chan.close()
        rc = sc.stop()
        check(rc == 0, "the sidecar exited %s on SIGTERM" % rc)

        # ---- 3. the module missing: the JWT reload is rejected, the old policy stays ---
        missing = os.path.join(tmp, "nowhere", MODULE)
        env = {"GRPCGUARD_CRYPTO_MODULE": missing}
        write_atomic(policy_path, PLAIN_POLICY)
        sc, admin, chan, call = start_sidecar(sidecar_bin, app_port, policy_path, env)
        gen0 = get_json("http://127.0.0.1:%d/policy" % admin)["generation"]
        fails0 = metric(admin, "grpcguard_policy_reloads_total", 'result="failure"')
        write_atomic(policy_path, jwt_policy(jwks_of(key)))
        pol = wait_policy(admin, lambda p: p.get("last_error"), "the rejected JWT policy")
        check(missing in pol["last_error"] and "requestAuthentication" in pol["last_error"],
              "last_error does not name the module path: %r" % pol["last_error"])
        check(pol["generation"] == gen0, "the rejected policy was installed anyway")
        ev = sc.wait_event("policy_rejected")
        check(missing in ev.get("msg", ""), "policy_rejected does not name the path: %s" % ev)
        fails1 = metric(admin, "grpcguard_policy_reloads_total", 'result="failure"')
        check(fails1 == fails0 + 1, "reload failures %s -> %s, want +1" % (fails0, fails1))
        check(call("still-open") == grpc.StatusCode.OK,
              "the old policy (no JWT) should stay in force")
        if os.environ.get("GG_VALGRIND") != "1":
            check(not has_crypto(mapped(sc.pid)), "OpenSSL mapped after a failed load")
        chan.close()
        check(sc.stop() == 0, "the sidecar did not exit 0 on SIGTERM")

        # `check` on the JWT policy: exit 1, the path named.
        rc, out, err = run([sidecar_bin, "check", policy_path], env=env)
        check(rc == 1 and missing in err, "check without the module: %d %r" % (rc, err))
        rc, out, err = run([sidecar_bin, "check", policy_path])
        check(rc == 0, "check with the module: %d %r" % (rc, err))

        # identity configured: startup fails naming the path.
        rc, out, err = run([sidecar_bin, "run", "--listen", "127.0.0.1:0",
                            "--upstream", "127.0.0.1:%d" % app_port, "--admin", "127.0.0.1:0",
                            "--ca-address", "https://127.0.0.1:9", "--ca-cert", "/dev/null",
                            "--identity-token", "/dev/null"], env=env, timeout=30)
        check(rc == 1 and missing in err and "crypto_module" in err,
              "run --ca-address without the module: rc %d, %r" % (rc, err[-800:]))

        # A file that is not our module (a real shared library without the table).
        bogus = os.path.join(tmp, "bogus.so")
        lib = subprocess.run(["gcc", "-print-file-name=libpthread.so.0"], stdout=subprocess.PIPE,
                             text=True).stdout.strip()
        if os.path.isabs(lib) and os.path.exists(lib):
            os.symlink(lib, bogus)
            rc, out, err = run([sidecar_bin, "check", policy_path],
                               env={"GRPCGUARD_CRYPTO_MODULE": bogus})
            check(rc == 1 and "not a grpcguard crypto module" in err and bogus in err,
                  "check with a foreign .so: %d %r" % (rc, err))

        # A module from another build whose API list differs while its ABI number and
        # sizes match (SC_CRYPTO_ABI not raised): refused by its signature, never called.
        root = os.environ.get("GG_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))
        other_c, other = os.path.join(tmp, "other.c"), os.path.join(tmp, "other.so")
        with open(other_c, "w") as f:
            f.write('#include "sidecar/crypto.h"\n'
                    'const struct sc_crypto_api sc_crypto_module = {\n'
                    '    .abi = SC_CRYPTO_ABI, .size = sizeof(struct sc_crypto_api),\n'
                    '    .idgen_size = sizeof(struct sc_idgen),\n'
                    '    .opts_size = sizeof(struct sc_identity_opts),\n'
                    '    .sig = "bool sc_tls_established (struct sc_tls * t);"};\n')
        cc = subprocess.run(["gcc", "-shared", "-fPIC", "-D_GNU_SOURCE", "-I", root,
                             "-o", other, other_c], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
        check(cc.returncode == 0, "build a module of another API list: %s" % cc.stdout)
        rc, out, err = run([sidecar_bin, "check", policy_path],
                           env={"GRPCGUARD_CRYPTO_MODULE": other})
        check(rc == 1 and "from another build" in err and other in err,
              "check with a module of another API list: %d %r" % (rc, err))
    finally:
        server.stop(0)
    print("crypto module: not mapped at idle, loaded by a JWT reload and enforced; "
          "missing module rejected by path (reload, check, identity)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
