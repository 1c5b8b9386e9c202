#!/usr/bin/python3
"""Hostile HTTP/2 clients against the real sidecar while a well-behaved gRPC client keeps
calling on its own connection (issue 8). Frames are written by hand (struct), so the
attacks are exactly what a malicious peer can send:

- garbage after the preface, a rapid-reset flood (HEADERS + RST_STREAM), PING, SETTINGS,
  WINDOW_UPDATE, PRIORITY and empty-DATA floods, a CONTINUATION flood: each attacking
  connection gets GOAWAY (or is closed) and the good client's calls, running in a thread
  the whole time, never fail;
- a client that connects and says nothing, or half a preface: closed at --idle-timeout;
- 40 idle connections to the admin port from one address: /readyz from another address
  (the kubelet) is still answered;
- the SETTINGS we advertise are the configured limits (MAX_CONCURRENT_STREAMS,
  INITIAL_WINDOW_SIZE = --max-pending-bytes, MAX_HEADER_LIST_SIZE) and the connection
  window is twice the stream window;
- --max-concurrent-streams: a gRPC client with more calls than the limit queues them (all
  succeed, never more open at once); a raw client opening more before acknowledging our
  SETTINGS gets RST_STREAM REFUSED_STREAM, after acknowledging them GOAWAY PROTOCOL_ERROR;
- a client ignoring flow control on a stream held by a delay fault (64 MiB pushed past a
  64 KiB window) is cut off with FLOW_CONTROL_ERROR and the sidecar's RSS stays flat;
- the sidecar exits 0 at the end (no leak under GG_VALGRIND / GG_SANITIZE).
Ports 31400-31499.
"""
import os
import socket
import struct
import threading
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import (MEASURE_RSS, SLOW, Sidecar, calls_of, channel, check, log, main,
                          metric, start_shapes)

BASE = 31400
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = \
    0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM = \
    1, 2, 3, 7, 11
# An ACK flood fills nghttp2's outbound queue (1000 ACKs): the connection is closed at
# once, without a GOAWAY (code None), or with ENHANCE_YOUR_CALM from our frame counter.
FLOODED = (None, ENHANCE_YOUR_CALM)
S_MAX_CONCURRENT, S_INITIAL_WINDOW, S_MAX_HEADER_LIST = 3, 4, 6

HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
P_HOLD = HEAD + """faults:
  - name: hold
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-hold: "1"}
    delay: {fixed: 20s, percent: 100}
"""


def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload


def hstr(b):
    # HPACK string literal, no Huffman; lengths < 127 only (enough here)
    assert len(b) < 127
    return bytes([len(b)]) + b


def hblock(path=b"/shapes.Shapes/Unary", extra=()):
    hs = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"t"),
          (b"content-type", b"application/grpc"), (b"te", b"trailers")] + list(extra)
    return b"".join(b"\x00" + hstr(k) + hstr(v) for k, v in hs)


class Raw:
    """A raw HTTP/2 client connection; read() parses what the server sends."""

    def __init__(self, port, preface=True):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False
        self.goaway = None        # error code of the GOAWAY received
        self.rst = {}             # stream id -> error code
        self.settings = None      # the server's first SETTINGS, as a dict
        self.window_updates = []  # (stream id, increment)
        if preface:
            self.send(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, b):
        try:
            self.s.sendall(b)
            return True
        except OSError:
            return False

    def read(self, timeout, until=None):
        """Read frames for up to timeout seconds, or until until(self) is true or the
        server closes. Returns True if the server closed the connection."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and not self.closed:
            if until and until(self):
                return False
            self.s.settimeout(max(0.02, min(0.2, end - time.monotonic())))
            try:
                d = self.s.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                self.closed = True
                break
            if not d:
                self.closed = True
                break
            self.buf += d
            while len(self.buf) >= 9:
                ln = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + ln:
                    break
                typ, flags = self.buf[3], self.buf[4]
                sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
                pl = self.buf[9:9 + ln]
                self.buf = self.buf[9 + ln:]
                if typ == GOAWAY and len(pl) >= 8:
                    self.goaway = int.from_bytes(pl[4:8], "big")
                elif typ == RST and len(pl) == 4:
                    self.rst[sid] = int.from_bytes(pl, "big")
                elif typ == SETTINGS and not flags & ACK and self.settings is None:
                    self.settings = {int.from_bytes(pl[i:i + 2], "big"):
                                     int.from_bytes(pl[i + 2:i + 6], "big")
                                     for i in range(0, len(pl) - 5, 6)}
                elif typ == WINDOW_UPDATE and len(pl) == 4:
                    self.window_updates.append((sid, int.from_bytes(pl, "big") & 0x7fffffff))
        return self.closed

    def cut_off(self, timeout):
        """GOAWAY received or the connection closed within timeout."""
        self.read(timeout, until=lambda r: r.goaway is not None)
        return self.goaway is not None or self.closed

    def close(self):
        self.s.close()


def cpu_s(sc):
    with open("/proc/%d/stat" % sc.p.pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


class GoodClient:
    """Unary calls in a loop on their own connection; every failure is recorded."""

    def __init__(self, port):
        self.ch = channel(port)
        self.stub = pbg.ShapesStub(self.ch)
        self.ok, self.failed = 0, []
        self.stop_ev = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        i = 0
        while not self.stop_ev.is_set():
            i += 1
            p = b"g%d" % i
            try:
                if self.stub.Unary(pb.Msg(payload=p, tag="good"), timeout=10).payload == p:
                    self.ok += 1
                else:
                    self.failed.append("bad payload")
            except grpc.RpcError as e:
                self.failed.append(e.code().name)
            time.sleep(0.01)

    def stop(self):
        self.stop_ev.set()
        self.th.join(15)
        self.ch.close()


def attack(port, name, payload, good, want_code=None, timeout=5.0):
    """Send payload on a fresh connection; it must be cut off; the good client unharmed."""
    before = good.ok
    r = Raw(port)
    r.read(0.3, until=lambda x: x.settings is not None)
    r.send(payload)
    cut = r.cut_off(timeout * SLOW)
    code = r.goaway
    r.close()
    if isinstance(want_code, int):
        want_code = (want_code,)
    check(cut and (want_code is None or code in want_code),
          "%s: connection cut off (GOAWAY code %r)" % (name, code))
    time.sleep(0.3)
    check(not good.failed and good.ok > before,
          "%s: the other client's calls all succeed (%d more, failures %s)" %
          (name, good.ok - before, good.failed[:3]))


def floods(tmp):
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--policy", os.path.join(tmp, "none.yaml"), "--idle-timeout", "2s"])
    good = GoodClient(BASE)
    time.sleep(0.5)
    check(good.ok > 0 and not good.failed, "good client running")

    attack(BASE, "garbage after the preface", os.urandom(4096), good)
    attack(BASE, "rapid reset (3000 x HEADERS+RST_STREAM)",
           b"".join(frame(HEADERS, END_HEADERS, sid, hblock()) + frame(RST, 0, sid, struct.pack(">I", 8))
                    for sid in range(1, 6000, 2)), good,
           (INTERNAL_ERROR, ENHANCE_YOUR_CALM))  # nghttp2's reset rate limit says INTERNAL_ERROR
    n = metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total", limit="rapid_reset")
    check(n == 1, "metrics: nghttp2's rapid-reset GOAWAY counted (limit=\"rapid_reset\" = %d)" % n)
    attack(BASE, "PING flood (10000)",
           b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(10000)), good,
           FLOODED)
    attack(BASE, "SETTINGS flood (10000)",
           b"".join(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)) for _ in range(10000)),
           good, FLOODED)
    attack(BASE, "WINDOW_UPDATE flood (10000 on stream 0)",
           b"".join(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) for _ in range(10000)), good,
           ENHANCE_YOUR_CALM)
    # PRIORITY: we advertise SETTINGS_NO_RFC7540_PRIORITIES, so nghttp2 drops these frames
    # unparsed; they cost what reading their bytes costs and are not counted as a flood.
    before, cpu0 = good.ok, cpu_s(sc)
    r = Raw(BASE)
    r.send(b"".join(frame(PRIORITY, 0, sid, struct.pack(">IB", 0, 16))
                    for sid in range(1, 200000, 2)))
    r.read(0.5)
    cpu = cpu_s(sc) - cpu0
    r.close()
    time.sleep(0.3)
    check(not good.failed and good.ok > before,
          "PRIORITY flood (100000 frames, 1.4 MB): the other client's calls all succeed "
          "(sidecar CPU %.2fs)" % cpu)
    attack(BASE, "empty DATA flood (10000 on an open stream)",
           frame(HEADERS, END_HEADERS, 1, hblock()) +
           b"".join(frame(DATA, 0, 1) for _ in range(10000)), good, ENHANCE_YOUR_CALM)
    blk = hblock(extra=[(b"x-pad", b"p" * 100)])
    attack(BASE, "CONTINUATION flood (HEADERS + 200 CONTINUATIONs)",
           frame(HEADERS, 0, 1, blk[:20]) +
           b"".join(frame(CONTINUATION, 0, 1, b"\x00" + hstr(b"x-c%d" % i) + hstr(b"v" * 60))
                    for i in range(200)), good)
    # PING, SETTINGS, WINDOW_UPDATE, empty DATA and the CONTINUATION cut-off (nghttp2's own
    # limit) are floods; the rapid reset has its own label (above).
    n = metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total", limit="flood")
    check(n >= 5, "metrics: the floods counted (limit=\"flood\" = %d)" % n)
    n = metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total", limit="rapid_reset")
    check(n == 1, "metrics: no other attack counted as rapid_reset (%d)" % n)

    # silent and half-preface clients: closed at the idle timeout (2s)
    for name, pre in (("a client that sends nothing", b""), ("half a preface", PREFACE[:10])):
        r = Raw(BASE, preface=False)
        if pre:
            r.send(pre)
        t0 = time.monotonic()
        closed = r.read(8 * SLOW)
        el = time.monotonic() - t0
        r.close()
        check(closed and 1.5 <= el <= 5 * SLOW, "%s: closed after %.1fs (--idle-timeout 2s)" % (name, el))

    # the admin port (15020 listens on the pod IP): one peer's idle connections must not
    # starve the kubelet's probes, which come from another address
    idle = [socket.create_connection(("127.0.0.1", BASE + 2), timeout=5) for _ in range(40)]
    time.sleep(0.3)
    try:
        probe = socket.create_connection(("127.0.0.1", BASE + 2), timeout=5,
                                         source_address=("127.0.0.2", 0))
        probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = probe.recv(1024)
        probe.close()
    except OSError as e:
        reply = ("%r (sidecar %s)" % (e, "running" if sc.p.poll() is None else
                                      "exited %r" % sc.p.returncode)).encode()
    for x in idle:
        x.close()
    check(reply.startswith(b"HTTP/1.1 200"),
          "admin: 40 idle connections from one address, /readyz from another still served (%r)"
          % reply[:40])

    good.stop()
    check(not good.failed and good.ok > 20,
          "good client: %d calls, none failed, during all attacks" % good.ok)
    check(sc.stop() == 0, "sidecar exits 0 (no leak/sanitizer error)")


def stream_limits(tmp, srv):
    pfile = os.path.join(tmp, "hold.yaml")
    with open(pfile, "w") as f:
        f.write(P_HOLD)
    sc = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 1), BASE + 12,
                 ["--policy", pfile, "--max-concurrent-streams", "4", "--max-pending-bytes",
                  "65536", "--max-header-list-bytes", "8192"], name="sidecar-streams")

    r = Raw(BASE + 10)
    r.read(2 * SLOW, until=lambda x: x.settings is not None and x.window_updates)
    s = r.settings or {}
    check(s.get(S_MAX_CONCURRENT) == 4 and s.get(S_INITIAL_WINDOW) == 65536 and
          s.get(S_MAX_HEADER_LIST) == 8192,
          "SETTINGS advertise the limits (%s)" % s)
    conn_inc = sum(inc for sid, inc in r.window_updates if sid == 0)
    check(65535 + conn_inc == 2 * 65536,
          "connection window is twice the stream window (65535 + %d)" % conn_inc)
    # more streams than allowed before acknowledging our SETTINGS: REFUSED_STREAM
    r.send(b"".join(frame(HEADERS, END_HEADERS, sid, hblock(extra=[(b"x-hold", b"1")]))
                    for sid in (1, 3, 5, 7, 9, 11)))
    r.read(2 * SLOW, until=lambda x: len(x.rst) >= 2)
    refused = [sid for sid, code in r.rst.items() if code == REFUSED_STREAM]
    check(sorted(refused) == [9, 11] and r.goaway is None,
          "before our SETTINGS are acknowledged, streams 5 and 6 get REFUSED_STREAM (%s)" % r.rst)
    r.close()
    r = Raw(BASE + 10)
    r.read(2 * SLOW, until=lambda x: x.settings is not None)
    r.send(frame(SETTINGS, ACK, 0) +
           b"".join(frame(HEADERS, END_HEADERS, sid, hblock(extra=[(b"x-hold", b"1")]))
                    for sid in (1, 3, 5, 7, 9)))
    check(r.cut_off(3 * SLOW) and r.goaway == PROTOCOL_ERROR,
          "after the ACK, a fifth stream gets GOAWAY PROTOCOL_ERROR (%r)" % r.goaway)
    r.close()

    # a gRPC client with 16 calls at once: queued by the client, all succeed
    ch = channel(BASE + 10)
    stub = pbg.ShapesStub(ch)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], metric(sc.metrics(), "grpcguard_sidecar_active_streams"))
            except OSError:
                pass
            time.sleep(0.02)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    futs = [stub.Unary.future(pb.Msg(payload=b"%d" % i, sleep_ms=300, tag="mcs"), timeout=30)
            for i in range(16)]
    ok = sum(1 for i, f in enumerate(futs) if f.result().payload == b"%d" % i)
    stop.set()
    th.join()
    check(ok == 16 and 1 <= peak[0] <= 4,
          "max-concurrent-streams 4: 16 calls all OK, at most %d open at once" % peak[0])

    # ignoring flow control on a held stream: cut off, memory flat
    rss0 = sc.rss_kib()["VmRSS"]
    r = Raw(BASE + 10)
    r.read(1, until=lambda x: x.settings is not None)
    r.send(frame(SETTINGS, ACK, 0) +
           frame(HEADERS, END_HEADERS, 1, hblock(extra=[(b"x-hold", b"1")])))
    chunk = b"".join(frame(DATA, 0, 1, b"d" * 16384) for _ in range(64))  # 1 MiB
    sent = 0
    for _ in range(64):
        if not r.send(chunk):
            break
        sent += 1
    r.read(3 * SLOW, until=lambda x: x.goaway is not None or 1 in x.rst)
    code = r.goaway if r.goaway is not None else r.rst.get(1)
    check(code == FLOW_CONTROL_ERROR,
          "DATA past the 64 KiB window of a held stream: FLOW_CONTROL_ERROR (GOAWAY %r, "
          "RST_STREAM %r, %d MiB written)" % (r.goaway, r.rst, sent))
    r.close()
    time.sleep(0.2)
    rss1 = sc.rss_kib()["VmRSS"]
    if MEASURE_RSS:
        check(rss1 - rss0 < 4 * 1024, "flow-control violator: RSS %d -> %d KiB" % (rss0, rss1))
    check("Unary hold" not in " ".join(calls_of(srv)), "held streams never reached the app")
    check(stub.Unary(pb.Msg(payload=b"after"), timeout=5).payload == b"after",
          "the gRPC client still works")
    ch.close()
    check(sc.stop() == 0, "sidecar-streams exits 0")


def test(tmp):
    srv = start_shapes(BASE + 1, tmp, extra=["--workers", "32"])
    floods(tmp)
    stream_limits(tmp, srv)
    srv.stop()
    log("done")


if __name__ == "__main__":
    main(test)
