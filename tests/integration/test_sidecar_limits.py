#!/usr/bin/python3
"""grpcguard-sidecar under hostile or careless clients (issue 8), with raw HTTP/2 frames
written by hand: garbage after the preface, a rapid-reset flood, PING and SETTINGS
floods, a client that never reads a 64 MiB response (RSS must stay flat), the
connection cap, the header-list cap, the idle timeout. Each time a well-behaved gRPC
client on another connection must keep working. Ports 25300-25399.
"""
import os
import socket
import struct
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import (MEASURE_RSS, SLOW, Sidecar, calls_of, channel, check, main, metric,
                          start_shapes)

BASE = 25300
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8


def frame(typ, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([typ, flags]) + struct.pack(">I", sid) + payload


def hstr(b):
    n, out = len(b), bytearray()
    if n < 127:
        out.append(n)
    else:
        out.append(127)
        n -= 127
        while n >= 128:
            out.append((n & 127) | 128)
            n >>= 7
        out.append(n)
    return bytes(out) + b


def hblock(path, extra=()):
    hs = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path), (b":authority", b"t"),
          (b"content-type", b"application/grpc"), (b"te", b"trailers")] + list(extra)
    return b"".join(b"\x00" + hstr(k) + hstr(v) for k, v in hs)


def grpc_msg(m):
    b = m.SerializeToString()
    return b"\x00" + struct.pack(">I", len(b)) + b


class Raw:
    def __init__(self, port, settings=b""):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, b):
        self.s.sendall(b)

    def cut_off(self, timeout):
        """True if the server sends GOAWAY or closes within timeout (reading everything)."""
        end = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < end:
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                return True
            if not d:
                return True
            buf += d
            while len(buf) >= 9:
                ln = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + ln:
                    break
                if buf[3] == GOAWAY:
                    return True
                buf = buf[9 + ln:]
        return False

    def close(self):
        self.s.close()


def healthy(stub, tag):
    return stub.Unary(pb.Msg(payload=tag.encode(), tag=tag), timeout=5).payload == tag.encode()


def test(tmp):
    srv = start_shapes(BASE + 1, tmp)
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--max-connections", "8", "--max-header-list-bytes", "4096",
                  "--idle-timeout", "2s"])
    ch = channel(BASE)
    stub = pbg.ShapesStub(ch)
    check(healthy(stub, "h0"), "baseline call")

    r = Raw(BASE)
    r.send(os.urandom(4000))
    check(r.cut_off(3 * SLOW), "garbage after the preface: connection cut off")
    r.close()
    check(healthy(stub, "h1"), "other connection unaffected by the garbage")

    r = Raw(BASE)
    path = b"/shapes.Shapes/Unary"
    burst = b"".join(frame(HEADERS, 0x4, sid, hblock(path)) + frame(RST, 0, sid, struct.pack(">I", 8))
                     for sid in range(1, 2 * 3000, 2))
    try:
        r.send(burst)
    except OSError:
        pass
    check(r.cut_off(5 * SLOW), "rapid reset flood (3000 HEADERS+RST_STREAM): connection cut off")
    r.close()
    check(healthy(stub, "h2"), "other connection unaffected by the rapid reset flood")

    r = Raw(BASE)
    try:
        r.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(10000)))
    except OSError:
        pass
    check(r.cut_off(5 * SLOW), "PING flood: connection cut off")
    r.close()
    r = Raw(BASE)
    try:
        r.send(b"".join(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)) for _ in range(10000)))
    except OSError:
        pass
    check(r.cut_off(5 * SLOW), "SETTINGS flood: connection cut off")
    r.close()
    check(healthy(stub, "h3"), "other connection unaffected by PING/SETTINGS floods")
    check(metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total", limit="flood") >= 1,
          "metrics: flood cut-offs counted")

    # header list over --max-header-list-bytes: refused, never reaches the app
    try:
        stub.Unary(pb.Msg(tag="bighdr"), timeout=5, metadata=(("x-big", "v" * 8000),))
        ok = False
    except grpc.RpcError as e:
        ok = e.code() != grpc.StatusCode.OK
    check(ok and "Unary bighdr" not in calls_of(srv), "header list over the cap is refused")
    check(healthy(stub, "h4"), "connection still usable after an oversized header list")

    # a client that never reads: the app streams 64 MiB; the sidecar's RSS stays flat
    if MEASURE_RSS:
        rss0 = sc.rss_kib()["VmRSS"]
        r = Raw(BASE)
        r.send(frame(HEADERS, 0x4, 1, hblock(b"/shapes.Shapes/ServerStream")) +
               frame(DATA, 0x1, 1, grpc_msg(pb.Msg(count=64, reply_size=1 << 20, tag="noread"))))
        time.sleep(3)
        rss1 = sc.rss_kib()["VmRSS"]
        check(rss1 - rss0 < 8 * 1024,
              "non-reading client of a 64 MiB stream: RSS %d -> %d KiB (< 8 MiB growth)" % (rss0, rss1))
        check(healthy(stub, "h5"), "other connection unaffected by the stalled one")
        r.close()

    # the connection cap: 8 in total; the gRPC channel holds one
    check(healthy(stub, "h5b"), "gRPC channel connected")
    time.sleep(0.3)
    raws = [Raw(BASE) for _ in range(7)]
    time.sleep(0.2)
    extra = Raw(BASE)
    check(extra.cut_off(2 * SLOW), "connection over --max-connections is closed")
    extra.close()
    check(metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total", limit="max_connections") >= 1,
          "metrics: max_connections rejections counted")
    for x in raws:
        x.close()
    time.sleep(0.3)
    check(healthy(stub, "h6"), "connections accepted again below the cap")

    # idle timeout
    r = Raw(BASE)
    t0 = time.monotonic()
    check(r.cut_off(6 * SLOW) and time.monotonic() - t0 >= 1.5,
          "idle connection closed after --idle-timeout (%.1fs)" % (time.monotonic() - t0))
    r.close()
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0 (no leak/sanitizer error)")
    srv.stop()


if __name__ == "__main__":
    main(test)
