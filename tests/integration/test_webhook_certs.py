"""grpcguard-webhook certificates and process behaviour, against the real binary:
- rotation the way a Kubernetes Secret volume does it (an atomic "..data" symlink swap):
  the next handshake presents the new certificate (checked with `openssl s_client`) and a
  request in flight during the swap completes;
- garbage certificate files: logged, the previous certificate keeps serving, and a later
  good pair is picked up;
- missing / garbage / mismatched certificates at start: a clear error and exit 1;
- SIGHUP re-reads the pair at once;
- SIGTERM with a request in flight: it completes, then exit 0;
- --help exits 0, a bad flag exits 2 with a one-line reason."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import (GG_ROOT, Proc, certgen, check, fail, free_port, program, run,  # noqa: E402
                        timeout_scale)

tmp = tempfile.mkdtemp(prefix="gg-webhook-certs-")
POD = os.path.join(GG_ROOT, "tests", "data", "admission", "pod-bare.json")


def review_body(uid):
    with open(POD) as f:
        pod = json.load(f)
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "operation": "CREATE", "namespace": "demo", "object": pod}}).encode()


def fingerprint_file(path):
    out = subprocess.run(["openssl", "x509", "-in", path, "-noout", "-fingerprint", "-sha256"],
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("=", 1)[1]


def served_fingerprint(port):
    """The certificate a fresh TLS handshake presents, via openssl s_client."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost"], input=b"", capture_output=True, timeout=20)
    pem = r.stdout.decode("utf-8", "replace")
    if "-----BEGIN CERTIFICATE-----" not in pem:
        return None
    x = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                       input=pem.encode(), capture_output=True)
    return x.stdout.decode().strip().split("=", 1)[1] if x.returncode == 0 else None


def tls_version(port, version):
    """True when a handshake pinned to `version` succeeds (the client allows old ones)."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, version,
                        "-cipher", "DEFAULT:@SECLEVEL=0"],
                       input=b"", capture_output=True, timeout=20)
    return b"BEGIN CERTIFICATE" in r.stdout


class SecretDir:
    """A directory laid out like a mounted Secret: tls.crt -> ..data/tls.crt etc."""

    def __init__(self, path):
        self.path = path
        self.n = 0
        os.makedirs(path)

    def publish(self, src_dir=None, garbage=False):
        self.n += 1
        ver = os.path.join(self.path, "..v%d" % self.n)
        os.makedirs(ver)
        if garbage:
            for name in ("tls.crt", "tls.key"):
                with open(os.path.join(ver, name), "w") as f:
                    f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n")
        else:
            for name in ("ca.crt", "tls.crt", "tls.key"):
                shutil.copy(os.path.join(src_dir, name), os.path.join(ver, name))
        tmp_link = os.path.join(self.path, "..data_tmp")
        os.symlink("..v%d" % self.n, tmp_link)
        os.rename(tmp_link, os.path.join(self.path, "..data"))  # atomic, like kubelet
        for name in ("ca.crt", "tls.crt", "tls.key"):
            link = os.path.join(self.path, name)
            if not os.path.islink(link):
                os.symlink(os.path.join("..data", name), link)


class SlowRequest:
    """A POST whose body is sent in two parts, so it is in flight across an event."""

    def __init__(self, port, cafile, uid):
        ctx = ssl.create_default_context(cafile=cafile)
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.body = review_body(uid)
        head = ("POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                "Content-Length: %d\r\n\r\n" % len(self.body)).encode()
        self.sock.sendall(head + self.body[:200])

    def finish(self):
        self.sock.sendall(self.body[200:])
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if ":" in x)}
        want = int(headers.get("content-length", "0"))
        while len(rest) < want:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        self.sock.close()
        return int(lines[0].split()[1]), headers, rest


def https_get(port, cafile, path):
    ctx = ssl.create_default_context(cafile=cafile)
    import urllib.request
    with urllib.request.urlopen("https://localhost:%d%s" % (port, path), context=ctx,
                                timeout=20) as r:
        return r.status, r.read().decode()


def wait_for(pred, what, timeout=10.0):
    deadline = time.monotonic() + timeout * timeout_scale()
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    fail("timed out waiting for " + what)


def main():
    wh_bin = program("grpcguard-webhook")
    gen = [os.path.join(tmp, "gen%d" % i) for i in range(3)]
    for g in gen:
        certgen(g)
    secret = SecretDir(os.path.join(tmp, "secret"))
    secret.publish(gen[0])
    cert, key = os.path.join(secret.path, "tls.crt"), os.path.join(secret.path, "tls.key")
    port = free_port(18440, 18459)
    wh = Proc([wh_bin, "--listen", "127.0.0.1:%d" % port, "--tls-cert", cert, "--tls-key", key,
               "--threads", "2"])
    wh.wait_event("listening")
    fp0, fp1, fp2 = (fingerprint_file(os.path.join(g, "tls.crt")) for g in gen)
    check(served_fingerprint(port) == fp0, "initial certificate not served")
    check(tls_version(port, "-tls1_2") and tls_version(port, "-tls1_3"), "TLS 1.2/1.3 refused")
    check(not tls_version(port, "-tls1_1"), "TLS 1.1 accepted")

    # Rotate while a request is in flight and while clients keep sending reviews on new
    # and kept-alive connections (trusting both CAs, as the API server does while its
    # caBundle is updated): not one request may fail.
    bundle = os.path.join(tmp, "bundle.crt")
    with open(bundle, "w") as out:
        for g in gen:
            with open(os.path.join(g, "ca.crt")) as f:
                out.write(f.read())
    stop = threading.Event()
    results = []

    def client(n):
        ctx = ssl.create_default_context(cafile=bundle)
        i = 0
        conn = None
        while not stop.is_set():
            i += 1
            uid = "bulk-%d-%d" % (n, i)
            try:
                if conn is None or i % 3 == 0:  # a mix of new and reused connections
                    if conn:
                        conn.close()
                    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=20)
                conn.request("POST", "/mutate", review_body(uid), {"Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200 and json.loads(body)["response"]["uid"] == uid
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                results.append((ok, uid, r.status))
            except (OSError, http.client.HTTPException) as e:
                if conn:
                    conn.close()
                conn = None
                results.append((False, uid, repr(e)))
        if conn:
            conn.close()

    workers = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    time.sleep(1.0)
    slow = SlowRequest(port, os.path.join(gen[0], "ca.crt"), "in-flight-1")
    seen = len(wh.events())
    secret.publish(gen[1])
    wh.wait_event("cert_reloaded", after=seen)
    time.sleep(1.5)
    stop.set()
    for w in workers:
        w.join(60)
    failed = [r for r in results if not r[0]]
    print("bulk reviews across the rotation: %d, failed %d" % (len(results), len(failed)))
    check(len(results) >= 20 and not failed, "requests failed across the rotation: %r" % failed[:5])
    check(wait_for(lambda: served_fingerprint(port) == fp1, "the new certificate"), "rotation")
    status, headers, body = slow.finish()
    check(status == 200 and json.loads(body)["response"]["uid"] == "in-flight-1",
          "in-flight request across the swap: %d %r" % (status, body[:200]))
    check(headers.get("connection", "").lower() == "close",
          "the old server should close its connections after draining: %r" % headers)
    check(https_get(port, os.path.join(gen[1], "ca.crt"), "/healthz")[0] == 200, "new CA")
    try:
        https_get(port, os.path.join(gen[0], "ca.crt"), "/healthz")
        fail("the old certificate is still served to new connections")
    except ssl.SSLError:
        pass
    except OSError as e:
        check("CERTIFICATE_VERIFY_FAILED" in str(e), "unexpected error %r" % e)

    # Garbage: logged, the current certificate keeps serving; a good pair later is used.
    seen = len(wh.events())
    secret.publish(garbage=True)
    err = wh.wait_event("cert_reload_failed", after=seen)
    print("garbage rejected:", err.get("error"))
    check(served_fingerprint(port) == fp1, "garbage replaced the certificate")
    check(https_get(port, os.path.join(gen[1], "ca.crt"), "/readyz")[0] == 200, "serving after garbage")
    time.sleep(1.5)  # one more poll: one bad write is logged once
    check(sum(1 for e in wh.events()[seen:] if e.get("event") == "cert_reload_failed") == 1,
          "garbage logged more than once")
    seen = len(wh.events())
    secret.publish(gen[2])
    wh.wait_event("cert_reloaded", after=seen)
    check(wait_for(lambda: served_fingerprint(port) == fp2, "recovery"), "recovery")
    _, metrics = https_get(port, os.path.join(gen[2], "ca.crt"), "/metrics")
    check('grpcguard_webhook_cert_reloads_total{result="success"} 2' in metrics and
          'grpcguard_webhook_cert_reloads_total{result="failure"} 1' in metrics,
          "reload metrics:\n" + metrics)

    # SIGHUP: re-read now, even though nothing changed.
    seen = len(wh.events())
    wh.p.send_signal(signal.SIGHUP)
    wh.wait_event("cert_reloaded", after=seen)
    check(served_fingerprint(port) == fp2, "certificate after SIGHUP")

    # SIGTERM with a request in flight: it completes, then a clean exit.
    slow = SlowRequest(port, os.path.join(gen[2], "ca.crt"), "in-flight-2")
    time.sleep(0.3)
    wh.p.send_signal(signal.SIGTERM)
    wh.wait_event("shutdown")
    deadline = time.monotonic() + 2 * timeout_scale()
    while True:  # the log line comes just before the socket closes
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        except ConnectionRefusedError:
            break
        check(time.monotonic() < deadline, "new connections still accepted while draining")
        time.sleep(0.05)
    status, headers, body = slow.finish()
    check(status == 200 and b"in-flight-2" in body, "request during shutdown: %d" % status)
    rc = wh.stop()
    check(rc == 0, "exit code after SIGTERM: %r\n%s" % (rc, wh.log_text()[-2000:]))

    # Start-up errors: exit 1 with the reason.
    missing = os.path.join(tmp, "nope", "tls.crt")
    rc, out, err = run([wh_bin, "--listen", "127.0.0.1:0", "--tls-cert", missing, "--tls-key", key])
    check(rc == 1 and "cannot open" in err and missing in err, "missing cert: %d %s" % (rc, err))
    garbage = os.path.join(tmp, "garbage.crt")
    with open(garbage, "w") as f:
        f.write("hello\n")
    rc, out, err = run([wh_bin, "--listen", "127.0.0.1:0", "--tls-cert", garbage, "--tls-key", key])
    check(rc == 1 and "no PEM certificate" in err, "garbage cert: %d %s" % (rc, err))
    rc, out, err = run([wh_bin, "--listen", "127.0.0.1:0", "--tls-cert",
                        os.path.join(gen[0], "tls.crt"), "--tls-key", os.path.join(gen[1], "tls.key")])
    check(rc == 1 and "does not match" in err, "mismatched key: %d %s" % (rc, err))

    # Flags.
    rc, out, err = run([wh_bin, "--help"])
    check(rc == 0 and "--tls-cert" in out and "--config" in out, "--help: %d" % rc)
    for argv, needle in (([wh_bin, "--bogus"], "--bogus"),
                         ([wh_bin, "--tls-cert", cert], "required"),
                         ([wh_bin, "--tls-cert", cert, "--tls-key", key, "--threads", "0"], "--threads"),
                         ([wh_bin, "--tls-cert", cert, "--tls-key", key, "--log-level", "loud"], "loud")):
        rc, out, err = run(argv)
        check(rc == 2 and needle in err and err.count("\n") == 1,
              "%r: rc %d, stderr %r" % (argv[1:], rc, err))
    print("ok")


try:
    main()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
