#!/usr/bin/python3
"""HTTP/2-level robustness and conformance of the real sidecar, each with a real peer
(issue 14, part C):

- burst: one grpcio channel sends 2,500 unary calls held by a 10 s delay fault, each with
  a 1 s deadline. Every call ends DEADLINE_EXCEEDED (none UNAVAILABLE), the sidecar logs
  no "flood" and counts no limit, and the same channel then completes a normal call. (The
  resets at the deadline used to count as a flood, and grpcio's RST_STREAM for calls whose
  HEADERS never went out was a PROTOCOL_ERROR for the whole connection.)
- credit: an app (python3-h2) answers ~60 KB and then resets the stream, to a client
  (python3-h2) whose stream windows are 0, 20 times; a normal call on the same client
  connection then completes. (The dropped bytes were never credited to the upstream
  connection window: after two such streams every later response hung.)
- framing: the four RPC shapes, incl. client-stream and bidi calls that half-close with
  zero messages, under a 200 ms delay on "*": grpcio client and server, grpcio client and
  grpc-go server, grpc-go client and server (tests/interop/shapes, built here). (A held
  zero-message call was forwarded with END_STREAM on HEADERS, and a grpc-go server never
  saw the end of its input.)
- conformance: PRIORITY on stream 0 gets GOAWAY PROTOCOL_ERROR (RFC 9113 section 6.3);
  a PING sent after our last GOAWAY (idle timeout, and SIGTERM drain) gets its ACK.
- the sidecars exit 0 (no leak under GG_SANITIZE / GG_VALGRIND).

H2_PARTS="burst credit framing conformance" selects parts; H2_SKIP=priority leaves out the
PRIORITY checks (to see the PING ones fail on an old build). Ports 27400-27499.
"""
import collections
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.settings

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import (ROOT, SLOW, Proc, Sidecar, channel, check, log, main,
                          metric, start_shapes, wait_port)

BASE = 27400
PARTS = os.environ.get("H2_PARTS", "burst credit framing conformance").split()
HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
P_HOLD10 = HEAD + """faults:
  - name: hold
    match: {methods: ["/shapes.Shapes/Unary"], headers: {x-hold: "1"}}
    delay: {fixed: 10s, percent: 100}
"""
P_DELAY_ALL = HEAD + """faults:
  - name: hold-all
    match: {methods: ["*"]}
    delay: {fixed: 200ms, percent: 100}
"""


def write(tmp, name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def outcomes(futs):
    codes = collections.Counter()
    for f in futs:
        try:
            f.result()
            codes["OK"] += 1
        except grpc.RpcError as e:
            codes[e.code().name] += 1
    return codes


# ---- 1. a burst of calls that all time out -------------------------------------------
def burst(tmp):
    n = 2500
    srv = start_shapes(BASE + 1, tmp, name="shapes-burst")
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--policy", write(tmp, "hold10.yaml", P_HOLD10), "--max-delayed", "5000"],
                 name="sidecar-burst")
    ch = channel(BASE)
    stub = pbg.ShapesStub(ch)
    check(stub.Unary(pb.Msg(payload=b"w"), timeout=10).payload == b"w", "burst: warm-up call")
    t0 = time.monotonic()
    futs = [stub.Unary.future(pb.Msg(payload=b"%d" % i, tag="burst"), timeout=1,
                              metadata=[("x-hold", "1")]) for i in range(n)]
    codes = outcomes(futs)
    el = time.monotonic() - t0
    log("burst: %d calls ended in %.2fs: %s" % (n, el, dict(codes)))
    check(el < 10 * SLOW, "burst: over in %.1fs, long before the 10 s delay" % el)
    check(codes.get("UNAVAILABLE", 0) == 0,
          "burst: no call UNAVAILABLE (%d)" % codes.get("UNAVAILABLE", 0))
    check(codes.get("DEADLINE_EXCEEDED", 0) == n,
          "burst: all %d calls DEADLINE_EXCEEDED (%s)" % (n, dict(codes)))
    text = sc.log_text()
    check('"event":"flood"' not in text, "burst: no flood in the sidecar log")
    m = sc.metrics()
    lim = metric(m, "grpcguard_sidecar_limit_rejections_total", limit="flood") + \
        metric(m, "grpcguard_sidecar_limit_rejections_total", limit="rapid_reset")
    check(lim == 0, "burst: no flood or rapid_reset limit counted (%d)" % lim)
    check(stub.Unary(pb.Msg(payload=b"after"), timeout=10).payload == b"after",
          "burst: the same channel completes a normal call afterwards")
    ch.close()
    check(sc.stop() == 0, "burst: sidecar exits 0")
    srv.stop()


# ---- 2. flow-control credit when the app resets a stream with bytes buffered ----------
BIG = 60000
UP_STREAM_WINDOW = 16384  # sidecar/proxy.h SC_UP_STREAM_WINDOW


def grpc_frame(b):
    return b"\x00" + struct.pack(">I", len(b)) + b


class ResetApp:
    """An HTTP/2 app: /t.T/Big gets response headers, up to BIG bytes (what its window
    allows) and then RST_STREAM CANCEL; anything else a normal gRPC answer "ok"."""

    def __init__(self, port):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(8)
        self.sent_big = []  # bytes sent on each Big stream before the reset
        self.stop_ev = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        self.ls.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def serve(self, s):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding=None))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        paths, pending = {}, {}
        s.settimeout(0.2)
        while not self.stop_ev.is_set():
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            for ev in conn.receive_data(d):
                if isinstance(ev, h2.events.RequestReceived):
                    paths[ev.stream_id] = dict(ev.headers).get(b":path")
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    sid = ev.stream_id
                    conn.send_headers(sid, [(b":status", b"200"),
                                            (b"content-type", b"application/grpc")])
                    if paths.get(sid) == b"/t.T/Big":
                        n = min(BIG, conn.local_flow_control_window(sid))
                        off = 0
                        while off < n:
                            k = min(n - off, conn.max_outbound_frame_size)
                            conn.send_data(sid, b"x" * k)
                            off += k
                        self.sent_big.append(n)
                        conn.reset_stream(sid, error_code=8)
                    else:
                        pending[sid] = grpc_frame(b"ok")
            for sid in list(pending):
                body = pending[sid]
                if conn.local_flow_control_window(sid) >= len(body):
                    conn.send_data(sid, body)
                    conn.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)
                    del pending[sid]
            out = conn.data_to_send()
            if out:
                s.sendall(out)
        s.close()

    def stop(self):
        self.stop_ev.set()
        self.ls.close()


class H2Client:
    """A raw HTTP/2 client (python3-h2) whose stream windows start at 0."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        self.flush()
        self.events = collections.defaultdict(list)
        self.data = collections.defaultdict(bytes)

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.s.sendall(out)

    def call(self, path, window=0):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(b":method", b"POST"), (b":scheme", b"http"),
                                     (b":path", path), (b":authority", b"app"),
                                     (b"content-type", b"application/grpc"),
                                     (b"te", b"trailers")])
        self.conn.send_data(sid, grpc_frame(b"q"), end_stream=True)
        if window:
            self.conn.increment_flow_control_window(window, stream_id=sid)
        self.flush()
        return sid

    def wait(self, sid, kinds, timeout):
        """Read until an event of one of kinds arrives on sid; returns it or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for ev in self.events[sid]:
                if isinstance(ev, kinds):
                    return ev
            self.s.settimeout(max(0.05, min(0.5, end - time.monotonic())))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                return None
            for ev in self.conn.receive_data(d):
                sid_ev = getattr(ev, "stream_id", 0)
                self.events[sid_ev].append(ev)
                if isinstance(ev, h2.events.DataReceived):
                    self.data[sid_ev] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, sid_ev)
            self.flush()
        return None

    def close(self):
        self.s.close()


def credit(tmp):
    app = ResetApp(BASE + 11)
    sc = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 11), BASE + 12,
                 ["--policy", os.path.join(tmp, "none.yaml"), "--max-pending-bytes", "65536"],
                 name="sidecar-credit")
    cl = H2Client(BASE + 10)
    resets = 0
    for _ in range(20):
        sid = cl.call(b"/t.T/Big")
        if cl.wait(sid, (h2.events.StreamReset,), 5 * SLOW):
            resets += 1
    log("credit: the app sent %d bytes on 20 streams before resetting them" % sum(app.sent_big))
    check(resets == 20, "credit: 20 streams answered with data, then reset by the app, reach "
          "the zero-window client as RST_STREAM (%d)" % resets)
    sid = cl.call(b"/t.T/Normal", window=65535)
    ended = cl.wait(sid, (h2.events.StreamEnded, h2.events.StreamReset), 5 * SLOW)
    trailers = [e for e in cl.events[sid] if isinstance(e, h2.events.TrailersReceived)]
    check(isinstance(ended, h2.events.StreamEnded) and cl.data[sid] == grpc_frame(b"ok") and
          trailers and dict(trailers[0].headers).get(b"grpc-status") == b"0",
          "credit: a normal call on the same client connection then completes (%r, %r)" %
          (ended, cl.data[sid]))
    # Each new upstream stream starts with a 16 KiB window (the pooled connection's
    # per-client flow control, docs/sidecar.md), so the app sends that much of BIG.
    first = min(BIG, UP_STREAM_WINDOW)
    check(sum(app.sent_big) >= 20 * first,
          "credit: the app could send the first %d bytes of every reset stream (%d): their "
          "credit came back" % (first, sum(app.sent_big)))
    cl.close()
    app.stop()
    check(sc.stop() == 0, "credit: sidecar exits 0")


# ---- 3. the four shapes under a delay, grpcio and grpc-go ------------------------------
def grpcio_shapes(port, what):
    ch = channel(port)
    stub = pbg.ShapesStub(ch)
    t = 10 * SLOW
    check(stub.Unary(pb.Msg(payload=b"u", tag="u"), timeout=t).payload == b"u",
          "%s: unary" % what)
    got = [m.payload for m in stub.ServerStream(pb.Msg(count=3, tag="ss"), timeout=t)]
    check(got == [b"0", b"1", b"2"], "%s: server-stream (3 replies) %r" % (what, got))
    for k in (0, 3):
        r = stub.ClientStream(iter([pb.Msg(payload=b"abc", tag="cs")] * k), timeout=t)
        check(r.count == k and r.payload == (b"%d" % (3 * k) if k else b""),
              "%s: client-stream with %d messages (count %d)" % (what, k, r.count))
    for k in (0, 2):
        got = [m.payload for m in
               stub.Bidi(iter([pb.Msg(payload=b"b%d" % i) for i in range(k)]), timeout=t)]
        check(got == [b"b%d" % i for i in range(k)],
              "%s: bidi with %d messages %r" % (what, k, got))
    ch.close()


def build_go(tmp):
    gopath = "/usr/share/gocode"
    if not os.path.isdir(os.path.join(gopath, "src/google.golang.org/grpc")):
        check(False, "grpc-go sources in %s (install golang-google-grpc-dev: scripts/deps.sh)"
              % gopath)
    out = os.path.join(tmp, "shapes-go")
    env = dict(os.environ, GO111MODULE="off", GOPATH=gopath, GOFLAGS="",
               GOCACHE=os.path.join(tmp, "gocache"))
    r = subprocess.run(["go", "build", "-o", out, "./tests/interop/shapes"], cwd=ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    check(r.returncode == 0, "grpc-go shapes program builds (%s)" %
          r.stdout.decode(errors="replace")[-500:])
    return out


def framing(tmp):
    pol = write(tmp, "delay-all.yaml", P_DELAY_ALL)
    srv = start_shapes(BASE + 21, tmp, name="shapes-framing")
    sc = Sidecar(tmp, BASE + 20, "127.0.0.1:%d" % (BASE + 21), BASE + 22, ["--policy", pol],
                 name="sidecar-framing")
    grpcio_shapes(BASE + 20, "grpcio -> sidecar (200 ms delay) -> grpcio")

    gobin = build_go(tmp)
    gsrv = Proc([gobin, "server", "--port", str(BASE + 31)], os.path.join(tmp, "shapes-go.log"))
    check(wait_port(BASE + 31, 10), "grpc-go shapes server listening")
    gsc = Sidecar(tmp, BASE + 30, "127.0.0.1:%d" % (BASE + 31), BASE + 32, ["--policy", pol],
                  name="sidecar-framing-go")
    grpcio_shapes(BASE + 30, "grpcio -> sidecar (200 ms delay) -> grpc-go")
    r = subprocess.run([gobin, "client", "--target", "127.0.0.1:%d" % (BASE + 30), "--timeout",
                        "%ds" % int(5 * SLOW)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    text = r.stdout.decode(errors="replace")
    log(text.rstrip())
    check(r.returncode == 0 and text.count("ok   ") == 6,
          "grpc-go -> sidecar (200 ms delay) -> grpc-go: all six shape checks pass")
    m = gsc.metrics()
    held = metric(m, "grpcguard_faults_injected_total", type="delay")
    check(held >= 12, "framing: the calls to the grpc-go app were held by the delay (%d)" % held)
    check(gsc.stop() == 0, "framing: sidecar (grpc-go app) exits 0")
    check(sc.stop() == 0, "framing: sidecar (grpcio app) exits 0")
    gsrv.stop()
    srv.stop()


# ---- 4. RFC 9113: PRIORITY on stream 0, PING after GOAWAY ------------------------------
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, GOAWAY = 0, 1, 2, 3, 4, 6, 7
ACK = 0x1
PROTOCOL_ERROR = 1


def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + \
        payload


class Raw:
    """A raw HTTP/2 connection; frames() collects what the server sends."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.got = []  # (type, flags, stream, payload)
        self.closed = False
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, b):
        try:
            self.s.sendall(b)
            return True
        except OSError:
            return False

    def read(self, timeout, until):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.closed:
            if until(self):
                return True
            self.s.settimeout(max(0.02, min(0.2, end - time.monotonic())))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                d = b""
            if not d:
                self.closed = True
                break
            self.buf += d
            while len(self.buf) >= 9:
                ln = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + ln:
                    break
                sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
                self.got.append((self.buf[3], self.buf[4], sid, self.buf[9:9 + ln]))
                self.buf = self.buf[9 + ln:]
        return until(self)

    def goaways(self):
        return [(int.from_bytes(p[:4], "big") & 0x7fffffff, int.from_bytes(p[4:8], "big"))
                for t, _, _, p in self.got if t == GOAWAY]

    def ping_acks(self):
        return [p for t, f, _, p in self.got if t == PING and f & ACK]

    def close(self):
        self.s.close()


def settled(port):
    """A raw connection past the SETTINGS exchange."""
    r = Raw(port)
    r.read(2 * SLOW, lambda x: any(t == SETTINGS and not f & ACK for t, f, _, _ in x.got))
    r.send(frame(SETTINGS, ACK, 0))
    return r


def ping_after_last_goaway(r, what, timeout):
    """Wait for our last GOAWAY (after the 2^31-1 notice), send a PING: it gets its ACK."""
    final = lambda x: any(last != 0x7fffffff for last, _ in x.goaways())
    check(r.read(timeout, final), "%s: the sidecar sends its last GOAWAY (%r)" %
          (what, r.goaways()))
    opaque = b"gg-ping!"
    sent = r.send(frame(PING, 0, 0, opaque))
    r.read(3 * SLOW, lambda x: opaque in x.ping_acks())
    check(sent and opaque in r.ping_acks(),
          "%s: a PING sent after our last GOAWAY gets its ACK (acks %r, closed %s)" %
          (what, r.ping_acks(), r.closed))


def conformance(tmp):
    srv = start_shapes(BASE + 41, tmp, name="shapes-conf")
    none = os.path.join(tmp, "none.yaml")
    sc = Sidecar(tmp, BASE + 40, "127.0.0.1:%d" % (BASE + 41), BASE + 42,
                 ["--policy", none, "--idle-timeout", "1s"], name="sidecar-conf")
    if "priority" in os.environ.get("H2_SKIP", ""):
        log("(PRIORITY checks skipped: H2_SKIP)")
    else:
        priority(BASE + 40)
    goaway_ping(sc)
    check(sc.stop() == 0, "conformance: sidecar drains and exits 0")
    srv.stop()


def priority(port):
    r = settled(port)
    r.send(frame(PRIORITY, 0, 0, struct.pack(">IB", 3, 16)))
    r.read(3 * SLOW, lambda x: x.goaways())
    check(r.goaways() and r.goaways()[0][1] == PROTOCOL_ERROR,
          "PRIORITY on stream 0: GOAWAY PROTOCOL_ERROR (%r)" % r.goaways())
    r.close()
    # PRIORITY on a stream (not 0) stays harmless, and so does the connection.
    r = settled(port)
    r.send(frame(PRIORITY, 0, 5, struct.pack(">IB", 0, 16)) + frame(PING, 0, 0, b"12345678"))
    r.read(2 * SLOW, lambda x: b"12345678" in x.ping_acks())
    check(not r.goaways() and b"12345678" in r.ping_acks(),
          "PRIORITY on stream 5: ignored, the connection answers PING (%r)" % r.goaways())
    r.close()


def goaway_ping(sc):
    r = settled(sc.port)
    ping_after_last_goaway(r, "idle timeout", 8 * SLOW)
    r.close()

    ch = channel(sc.port)
    stub = pbg.ShapesStub(ch)
    check(stub.Unary(pb.Msg(payload=b"x"), timeout=10).payload == b"x",
          "a gRPC call works on a fresh connection")
    ch.close()

    r = settled(sc.port)
    sc.p.send_signal(signal.SIGTERM)
    ping_after_last_goaway(r, "SIGTERM drain", 8 * SLOW)
    r.close()
    sc.p.wait(15)


def test(tmp):
    for name, fn in (("burst", burst), ("credit", credit), ("framing", framing),
                     ("conformance", conformance)):
        if name in PARTS:
            log("---- %s" % name)
            fn(tmp)
    log("done")


if __name__ == "__main__":
    main(test)
