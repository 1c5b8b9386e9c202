#!/usr/bin/python3
"""A delayed (held) RPC whose client deadline passes while it is held, through the real
binary with a real gRPC client and app: the client sees DEADLINE_EXCEEDED, the app never
sees the call, and the sidecar counts it as grpc_code="DEADLINE_EXCEEDED" (it used to be
counted as CANCELLED: the client's RST_STREAM at its deadline raced our own timer, which
fired late). A plain HTTP/2 client (nghttp) whose grpc-timeout (in several units) expires
while held gets the trailers-only grpc-status 4 from the sidecar itself, at the deadline,
before the delay ends; a raw client that resets a held stream before its deadline is
counted as CANCELLED. Ports 32100-32199.
"""
import collections
import os
import re
import socket
import subprocess
import struct
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import (SLOW, VALGRIND, Sidecar, calls_of, channel, check, main, metric,
                          start_shapes)

BASE = 24600  # below the ephemeral range (32768-60999)


def outcomes(futs):
    """The status code name each grpcio future ended with, in order."""
    codes = []
    for f in futs:
        try:
            f.result()
            codes.append("OK")
        except grpc.RpcError as e:
            codes.append(e.code().name)
    return codes


def check_counted(dl, cancelled, n, what):
    """n held RPCs reset at their deadline: counted DEADLINE_EXCEEDED, none CANCELLED.
    Under valgrind the sidecar reads a request's headers tens of ms after the client
    stamped grpc-timeout, so its deadline ends that much after the client's and the
    client's reset looks early: there only the total is checked (the run is for memory
    errors and leaks, not timing)."""
    if VALGRIND:
        check(dl + cancelled == n, "%s: %d reset streams counted (valgrind: DEADLINE_EXCEEDED "
              "%d, CANCELLED %d)" % (what, n, dl, cancelled))
    else:
        check(dl == n and cancelled == 0, "%s: every held RPC past its deadline counted "
              "DEADLINE_EXCEEDED (%d of %d), none CANCELLED (%d)" % (what, dl, n, cancelled))
HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
P_HOLD = HEAD + """faults:
  - name: hold
    match: {methods: ["/shapes.Shapes/Unary"]}
    delay: {fixed: 3s, percent: 100}
"""

# ---- a minimal HTTP/2 client (literal headers, no Huffman) -----------------------------
DATA, HEADERS, RST, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, END_HEADERS, ACK = 1, 4, 1
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def hstr(b):
    assert len(b) < 127
    return bytes([len(b)]) + b


def hblock(timeout):
    fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/shapes.Shapes/Unary"),
              (b":authority", b"x"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
              (b"grpc-timeout", timeout)]
    return b"".join(b"\x00" + hstr(k) + hstr(v) for k, v in fields)


class Raw:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))
        self.buf = b""

    def send(self, b):
        self.s.sendall(b)

    def frames(self, timeout):
        """Frames read until the socket is quiet for `timeout` seconds (ACKs our SETTINGS)."""
        out = []
        self.s.settimeout(timeout)
        while True:
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return out
            if not d:
                return out
            self.buf += d
            while len(self.buf) >= 9:
                n = struct.unpack(">I", b"\x00" + self.buf[:3])[0]
                if len(self.buf) < 9 + n:
                    break
                t, fl, sid = self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7fffffff
                out.append((t, fl, sid, self.buf[9:9 + n], time.monotonic()))
                if t == SETTINGS and not fl & ACK:
                    self.send(frame(SETTINGS, ACK, 0))
                self.buf = self.buf[9 + n:]

    def close(self):
        self.s.close()


def test(tmp):
    srv = start_shapes(BASE + 1, tmp)
    pfile = os.path.join(tmp, "hold.yaml")
    with open(pfile, "w") as f:
        f.write(P_HOLD)
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2, ["--policy", pfile])
    ch = channel(BASE)
    stub = pbg.ShapesStub(ch)
    grpc.channel_ready_future(ch).result(timeout=10 * SLOW)

    # ---- grpcio clients: deadline 0.4 s, delay 3 s ---------------------------------------
    N = 8
    futs = [stub.Unary.future(pb.Msg(tag="held%d" % i), timeout=0.4) for i in range(N)]
    codes = outcomes(futs)
    check(codes == ["DEADLINE_EXCEEDED"] * N, "client sees DEADLINE_EXCEEDED (%s)" % codes)
    time.sleep(0.5)
    m = sc.metrics()
    dl = metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="DEADLINE_EXCEEDED")
    cancelled = metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="CANCELLED")
    check_counted(dl, cancelled, N, "grpcio deadline 0.4 s")
    check(not calls_of(srv), "the app saw none of them (%s)" % calls_of(srv)[:3])
    check(metric(m, "grpcguard_sidecar_delayed_streams") == 0, "no RPC left held")

    # A burst, as a load test or a busy client makes: grpcio's reset at its deadline reaches
    # us up to ~20 ms before our own deadline (its clock started earlier, and grpc-timeout
    # is rounded up), and used to be counted CANCELLED for about 6% of them.
    B = 120
    futs = []
    for i in range(B):
        futs.append(stub.Unary.future(pb.Msg(tag="burst%d" % i), timeout=2.0))
        time.sleep(0.01)
    codes = dict(collections.Counter(outcomes(futs)))
    check(codes == {"DEADLINE_EXCEEDED": B}, "burst: the client sees DEADLINE_EXCEEDED (%s)" % codes)
    time.sleep(0.5)
    m = sc.metrics()
    dl = metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="DEADLINE_EXCEEDED")
    cancelled = metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="CANCELLED")
    check_counted(dl, cancelled, N + B, "a burst of %d after them" % B)
    check(not calls_of(srv), "the app saw none of the burst")
    N += B
    ch.close()

    # ---- nghttp (a plain HTTP/2 client): the sidecar itself answers at grpc-timeout -----
    body = os.path.join(tmp, "empty.msg")
    with open(body, "wb") as f:
        f.write(b"\x00\x00\x00\x00\x00")
    procs = []
    for tmo, want_s in (("300m", 0.3), ("300000u", 0.3), ("99999999n", 0.1), ("1S", 1.0)):
        procs.append((tmo, want_s, subprocess.Popen(
            ["nghttp", "-v", "-H", "content-type: application/grpc", "-H", "te: trailers",
             "-H", "grpc-timeout: " + tmo, "-d", body,
             "http://127.0.0.1:%d/shapes.Shapes/Unary" % BASE],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for tmo, want_s, p in procs:
        out = p.communicate(timeout=10 * SLOW)[0]
        m = re.search(r"\[\s*([0-9.]+)\] recv \(stream_id=\d+\) grpc-status: (\d+)", out)
        st, el = (int(m.group(2)), float(m.group(1))) if m else (None, -1.0)
        check(st == 4 and want_s - 0.02 <= el < 2.5 * SLOW,
              "grpc-timeout %s: trailers-only grpc-status 4 from the sidecar at the deadline, "
              "not after the 3s delay (%r at %.3fs)" % (tmo, st, el))

    # ---- a raw client resets a held stream before its (1 minute) deadline: CANCELLED ------
    r = Raw(BASE)
    r.frames(0.3)
    r.send(frame(HEADERS, END_HEADERS, 1, hblock(b"1M")))
    time.sleep(0.1)
    r.send(frame(RST, 0, 1, struct.pack(">I", 8)))
    r.frames(0.3)
    r.close()
    time.sleep(0.3)
    m = sc.metrics()
    dl = metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="DEADLINE_EXCEEDED")
    cancelled = metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="CANCELLED")
    if VALGRIND:
        check(dl + cancelled == N + 5, "every stream counted once (valgrind: %d + %d)"
              % (dl, cancelled))
    else:
        check(dl == N + 4, "the nghttp deadlines counted too")
        check(cancelled == 1, "a held stream reset before its deadline: CANCELLED")
    check(not calls_of(srv), "the app saw none of the raw ones either")
    check(sc.stop() == 0, "sidecar exits 0 (no leak/sanitizer error)")
    srv.stop()


if __name__ == "__main__":
    main(test)
