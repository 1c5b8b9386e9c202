#!/usr/bin/python3
"""grpcguard-sidecar as a plain proxy (no policy): every gRPC call shape through the real
binary between a real grpcio client and server, large messages, metadata, every status,
cancellation, deadlines, upstream down and recovery, TCP passthrough, metrics, a slow
reader's effect on RSS, and the SIGTERM drain.

Also the harness the other test_sidecar_*.py files import (Sidecar, start_shapes ...).
Ports 25100-25199 (this file); each test file owns its own hundred.
"""
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg

ROOT = os.environ.get("GG_ROOT", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
BIN = os.environ.get("GG_BIN", os.path.join(ROOT, "build"))
PY = os.environ.get("PYTHON", "/usr/bin/python3")
VALGRIND = os.environ.get("GG_VALGRIND") == "1"
SLOW = 4.0 if VALGRIND else 1.0  # timing slack factor under valgrind
# RSS figures mean nothing under valgrind or ASan (its quarantine holds freed memory).
MEASURE_RSS = not VALGRIND and os.environ.get("GG_SANITIZE") != "1"
PROCS = []


def log(*a):
    print(*a, flush=True)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    log("ok   " + what)


def wait_port(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Proc:
    def __init__(self, argv, logpath, env=None):
        self.logpath = logpath
        self.logf = open(logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        PROCS.append(self)

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        if self in PROCS:
            PROCS.remove(self)
        return self.p.returncode

    def log_text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")


def start_shapes(port, tmp, name="shapes", extra=()):
    calls = os.path.join(tmp, name + ".calls")
    open(calls, "w").close()
    env = dict(os.environ)
    p = Proc([PY, os.path.join(ROOT, "tests/greeter/shapes_server.py"), "--port", str(port),
              "--calls-log", calls] + list(extra), os.path.join(tmp, name + ".log"), env)
    if not wait_port(port, 15):
        raise Failure("shapes server did not start: " + p.log_text())
    p.calls = calls
    return p


def calls_of(server):
    with open(server.calls) as f:
        return [l.strip() for l in f if l.strip()]


class Sidecar(Proc):
    def __init__(self, tmp, listen, upstream, admin, extra=(), name="sidecar", wait=True):
        argv = [os.path.join(BIN, "grpcguard-sidecar"), "run", "--listen", "127.0.0.1:%d" % listen,
                "--upstream", upstream, "--admin", "127.0.0.1:%d" % admin] + list(extra)
        if VALGRIND:
            argv = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite,indirect"] + argv
        self.port, self.admin = listen, admin
        super().__init__(argv, os.path.join(tmp, name + ".log"))
        if wait and not wait_port(listen, 30 if VALGRIND else 10):
            raise Failure("sidecar did not start: " + self.log_text())
        if wait and not self.wait_admin(30 if VALGRIND else 10):
            raise Failure("sidecar admin did not start: " + self.log_text())

    def wait_admin(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                self.get("/healthz")
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path), timeout=5) as r:
            return r.status, r.read().decode()

    def status(self, path):
        try:
            return self.get(path)[0]
        except urllib.error.HTTPError as e:
            return e.code

    def metrics(self):
        out = {}
        for line in self.get("/metrics")[1].splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            s = f.read()
        return {k: int(re.search(k + r":\s+(\d+)", s).group(1)) for k in ("VmRSS", "VmHWM")}


def metric(m, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    total = 0.0
    for k, v in m.items():
        n, _, l = k.partition("{")
        if n != name:
            continue
        got = ",".join(sorted(x for x in l.rstrip("}").split(",") if x)) if l else ""
        if all(('%s="%s"' % kv) in got for kv in labels.items()):
            total += v
    return total


def channel(port):
    return grpc.insecure_channel("127.0.0.1:%d" % port, options=[
        ("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20),
        ("grpc.enable_retries", 0), ("grpc.use_local_subchannel_pool", 1)])


def cleanup():
    for p in list(PROCS):
        p.stop(signal.SIGKILL, 5)


def main(body):
    tmp = tempfile.mkdtemp(prefix="gg-sc-")
    rc = 1
    try:
        body(tmp)
        rc = 0
    except Failure as e:
        log("FAIL " + str(e))
    except Exception as e:  # a crash of the test itself is a failure too
        import traceback
        traceback.print_exc()
        log("FAIL " + repr(e))
    finally:
        for p in list(PROCS):
            if isinstance(p, Sidecar) and p.p.poll() is None and rc != 0:
                log("---- sidecar log tail ----\n" + p.log_text()[-3000:])
        cleanup()
    sys.exit(rc)


# ---------------------------------------------------------------------------------------
BASE = 25100


def shapes_suite(tmp, sc, srv, stub):
    # unary + metadata both ways, including -bin
    md = (("x-echo-a", "hello"), ("x-echo-bin", b"\x00\x01\xfe\xff"))
    resp, call = stub.Unary.with_call(pb.Msg(payload=b"abc", tag="u1"), metadata=md, timeout=10)
    check(resp.payload == b"abc", "unary echo")
    initial = dict(call.initial_metadata())
    trailing = dict(call.trailing_metadata())
    check(initial.get("x-echo-a") == "hello" and initial.get("x-echo-bin") == b"\x00\x01\xfe\xff",
          "request metadata (text and -bin) reaches the app and comes back")
    check(trailing.get("x-trailer") == "t-u1" and trailing.get("x-trailer-bin") == b"\x00\xffbin",
          "response trailers (text and -bin) pass through")

    # server streaming
    got = list(stub.ServerStream(pb.Msg(count=50, tag="ss"), timeout=20))
    check(len(got) == 50 and got[49].count == 49, "server streaming: 50 messages in order")

    # client streaming
    resp = stub.ClientStream(iter([pb.Msg(payload=b"x" * 1000, tag="cs") for _ in range(100)]),
                             timeout=20)
    check(resp.count == 100 and resp.payload == b"100000", "client streaming: 100 messages")

    # bidi, interleaved
    def gen():
        for i in range(20):
            yield pb.Msg(payload=b"%d" % i, tag="bd")
    got = [m.payload for m in stub.Bidi(gen(), timeout=20)]
    check(got == [b"%d" % i for i in range(20)], "bidi streaming: 20 round trips")

    # 16 MiB each way
    big = os.urandom(16 << 20)
    t0 = time.monotonic()
    resp = stub.Unary(pb.Msg(payload=big, tag="big"), timeout=60 * SLOW)
    check(resp.payload == big, "16 MiB request and 16 MiB response intact (%.2fs)" % (time.monotonic() - t0))

    # every status code passes through, with a message needing percent-encoding
    for code in grpc.StatusCode:
        n = code.value[0]
        if n == 0:
            continue
        try:
            stub.Unary(pb.Msg(status=n, message="boom %d: h\u00e9llo 100%%" % n, tag="st"), timeout=10)
            check(False, "status %s passes through" % code.name)
        except grpc.RpcError as e:
            if e.code() != code or e.details() != "boom %d: h\u00e9llo 100%%" % n:
                raise Failure("status %s: got %s %r" % (code.name, e.code(), e.details()))
    log("ok   every status code 1..16 and its message pass through")

    # server streaming that ends with an error after some messages
    it = stub.ServerStream(pb.Msg(count=3, status=9, message="late", tag="sse"), timeout=10)
    seen = []
    try:
        for m in it:
            seen.append(m)
        check(False, "server stream error after messages")
    except grpc.RpcError as e:
        check(len(seen) == 3 and e.code() == grpc.StatusCode.FAILED_PRECONDITION,
              "server stream: 3 messages then FAILED_PRECONDITION")

    # client cancellation reaches the app
    fut = stub.Unary.future(pb.Msg(sleep_ms=5000, tag="cancel1"), timeout=20)
    time.sleep(0.5 * SLOW)
    fut.cancel()
    end = time.monotonic() + 3 * SLOW
    while time.monotonic() < end and "cancelled Unary cancel1" not in calls_of(srv):
        time.sleep(0.05)
    check("cancelled Unary cancel1" in calls_of(srv), "client cancel -> the app sees the cancellation")

    # deadline
    t0 = time.monotonic()
    try:
        stub.Unary(pb.Msg(sleep_ms=3000, tag="dl1"), timeout=0.5)
        check(False, "deadline exceeded")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and time.monotonic() - t0 < 2.5 * SLOW,
              "short deadline -> DEADLINE_EXCEEDED on time")
    end = time.monotonic() + 3 * SLOW
    while time.monotonic() < end and "cancelled Unary dl1" not in calls_of(srv):
        time.sleep(0.05)
    check("cancelled Unary dl1" in calls_of(srv), "deadline -> the app sees the cancellation")

    # many concurrent streams on one connection
    futs = [stub.Unary.future(pb.Msg(payload=b"%d" % i, sleep_ms=100, tag="conc"), timeout=20)
            for i in range(64)]
    ok = sum(1 for i, f in enumerate(futs) if f.result().payload == b"%d" % i)
    check(ok == 64, "64 concurrent RPCs on one connection")


def test(tmp):
    srv_port, sc_port, adm = BASE + 1, BASE, BASE + 2
    srv = start_shapes(srv_port, tmp)
    sc = Sidecar(tmp, sc_port, "127.0.0.1:%d" % srv_port, adm,
                 ["--policy", os.path.join(tmp, "nope", "policy.yaml"), "--log-level", "debug"])
    end = time.monotonic() + 10 * SLOW
    while time.monotonic() < end and sc.status("/readyz") != 200:
        time.sleep(0.05)
    check(sc.status("/readyz") == 200, "/readyz 200 once listening and the app is reachable")
    check("no_policy" in sc.log_text(), "missing policy file is logged (no faults, all allowed)")
    with open("/proc/%d/maps" % sc.p.pid) as f:
        maps = f.read()
    check("gnutls" not in maps and "microhttpd" not in maps,
          "no GnuTLS or libmicrohttpd mapped: the admin port runs on libuv")
    ch = channel(sc_port)
    stub = pbg.ShapesStub(ch)
    shapes_suite(tmp, sc, srv, stub)

    m = sc.metrics()
    check(metric(m, "grpcguard_requests_total", grpc_service="shapes.Shapes", grpc_method="Unary",
                 grpc_code="NOT_FOUND") == 1, "metrics: requests_total counts a NOT_FOUND once")
    check(metric(m, "grpcguard_requests_total", grpc_method="ServerStream", grpc_code="OK") == 1,
          "metrics: one OK ServerStream")
    check(metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="OK") >= 66,
          "metrics: OK unary calls counted")
    check(metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="CANCELLED") >= 1,
          "metrics: the cancelled call counted as CANCELLED")
    check(metric(m, "grpcguard_sidecar_active_streams") == 0, "metrics: no active streams left")

    # upstream down -> UNAVAILABLE fast, then recovery on the same client connection
    srv.stop()
    t0 = time.monotonic()
    try:
        stub.Unary(pb.Msg(tag="down"), timeout=5)
        check(False, "upstream down -> UNAVAILABLE")
    except grpc.RpcError as e:
        el = time.monotonic() - t0
        check(e.code() == grpc.StatusCode.UNAVAILABLE and el < 1.0 * SLOW,
              "app down -> UNAVAILABLE in %.0f ms" % (el * 1000))
    srv = start_shapes(srv_port, tmp, "shapes2")
    check(stub.Unary(pb.Msg(payload=b"back", tag="rec"), timeout=5).payload == b"back",
          "app back -> calls succeed again on the same client connection")
    ch.close()

    # TCP passthrough of a client that does not speak HTTP/2 (HTTP/1.1 to an HTTP/1 app)
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"plain http/1 " + self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", BASE + 11), H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    sc2 = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 11), BASE + 12, name="sidecar-pass")
    with urllib.request.urlopen("http://127.0.0.1:%d/hello" % (BASE + 10), timeout=5) as r:
        body = r.read()
    check(body == b"plain http/1 /hello", "HTTP/1 client is passed through as TCP")
    check(metric(sc2.metrics(), "grpcguard_sidecar_passthrough_connections_total") == 1,
          "metrics: passthrough connection counted")
    check(sc2.stop() == 0, "passthrough sidecar exits 0")
    httpd.shutdown()

    # slow reader: the app streams 64 MiB, the client reads slowly; sidecar RSS stays bounded
    ch = channel(sc_port)
    stub = pbg.ShapesStub(ch)
    if not VALGRIND:
        base = sc.rss_kib()["VmRSS"]
        it = stub.ServerStream(pb.Msg(count=64, reply_size=1 << 20, tag="slow"), timeout=60)
        n, peak = 0, 0
        for _ in it:
            n += 1
            time.sleep(0.03)
            peak = max(peak, sc.rss_kib()["VmRSS"])
        check(n == 64, "slow reader receives all 64 x 1 MiB")
        if MEASURE_RSS:
            check(peak - base < 12 * 1024,
                  "slow reader: sidecar RSS grew %d KiB (< 12 MiB) while 64 MiB passed" % (peak - base))
        log("info idle-ish RSS %d KiB, peak %d KiB" % (base, peak))

        # and the other way: the client uploads 64 MiB as fast as it can, the app reads
        # 1 MiB every 30 ms; flow control, not the sidecar's memory, absorbs the difference
        base = sc.rss_kib()["VmRSS"]
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], sc.rss_kib()["VmRSS"])
                time.sleep(0.02)
        th = threading.Thread(target=sample)
        th.start()
        chunk = b"u" * (1 << 20)
        resp = stub.ClientStream(iter([pb.Msg(payload=chunk, sleep_ms=30, tag="up")] +
                                      [pb.Msg(payload=chunk) for _ in range(63)]), timeout=60)
        stop.set()
        th.join()
        check(resp.count == 64 and resp.payload == b"%d" % (64 << 20), "slow app reader receives 64 x 1 MiB")
        if MEASURE_RSS:
            check(peak[0] - base < 12 * 1024,
                  "slow app reader: sidecar RSS grew %d KiB (< 12 MiB) while 64 MiB passed"
                  % (peak[0] - base))

    # SIGTERM drain: an in-flight call completes, new connections are refused, exit 0
    fut = stub.Unary.future(pb.Msg(sleep_ms=1500, payload=b"drain", tag="drain"), timeout=20)
    time.sleep(0.5)
    sc.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = not wait_port(sc_port, 0.3)
    check(fut.result().payload == b"drain", "SIGTERM: in-flight call completes")
    check(refused, "SIGTERM: new connections refused")
    rc = sc.p.wait(timeout=15 * SLOW)
    sc.stop()
    check(rc == 0, "SIGTERM: exit 0 after the drain (and no leak/sanitizer error)")
    ch.close()
    srv.stop()

    # readiness follows the app; --workers 2 spreads connections over two loops
    sc3 = Sidecar(tmp, BASE + 20, "127.0.0.1:%d" % (BASE + 21), BASE + 22,
                  ["--workers", "2", "--policy", os.path.join(tmp, "none.yaml")], name="sidecar-w2")
    time.sleep(0.5)
    check(sc3.status("/readyz") == 503, "/readyz 503 while the app is not reachable")
    srv = start_shapes(BASE + 21, tmp, "shapes3")
    end = time.monotonic() + 5 * SLOW
    while time.monotonic() < end and sc3.status("/readyz") != 200:
        time.sleep(0.05)
    check(sc3.status("/readyz") == 200, "/readyz 200 once the app is reachable")
    chans = [channel(BASE + 20) for _ in range(8)]
    errors = []

    def worker(c, i):
        st = pbg.ShapesStub(c)
        for k in range(20):
            try:
                if st.Unary(pb.Msg(payload=b"%d-%d" % (i, k)), timeout=10).payload != b"%d-%d" % (i, k):
                    errors.append("bad payload")
            except grpc.RpcError as e:
                errors.append(str(e.code()))
    ths = [threading.Thread(target=worker, args=(c, i)) for i, c in enumerate(chans)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    check(not errors, "--workers 2: 8 connections x 20 calls all OK (%s)" % errors[:3])
    m = sc3.metrics()
    check(metric(m, "grpcguard_requests_total", grpc_code="OK") == 160,
          "--workers 2: metrics count all 160 calls")
    check(metric(m, "grpcguard_sidecar_active_connections") == 8,
          "--workers 2: 8 client connections")
    for c in chans:
        c.close()
    check(sc3.stop() == 0, "--workers 2: SIGTERM exit 0")
    srv.stop()

    # the app sends GOAWAY every 300 ms (max connection age): a long stream finishes on
    # the old connection while new RPCs go to a new one; nothing fails
    srv = start_shapes(BASE + 31, tmp, "shapes-age", ["--max-connection-age-ms", "300"])
    sc4 = Sidecar(tmp, BASE + 30, "127.0.0.1:%d" % (BASE + 31), BASE + 32,
                  ["--policy", os.path.join(tmp, "none.yaml")], name="sidecar-age")
    ch = channel(BASE + 30)
    stub = pbg.ShapesStub(ch)
    it = stub.ServerStream(pb.Msg(count=15, sleep_ms=100, tag="age"), timeout=30)
    got = []
    t = threading.Thread(target=lambda: got.extend(it))
    t.start()
    fails = []
    for i in range(30):
        try:
            stub.Unary(pb.Msg(payload=b"a%d" % i), timeout=10)
        except grpc.RpcError as e:
            fails.append(e.code().name)
        time.sleep(0.05)
    t.join(30)
    check(len(got) == 15 and not fails,
          "app GOAWAYs (max connection age): stream of 15 and 30 unary calls all OK (%s)" % fails[:3])
    ch.close()
    check(sc4.stop() == 0, "sidecar-age exits 0")
    srv.stop()


if __name__ == "__main__":
    main(test)
