#!/usr/bin/python3
"""Failure behaviour of the sidecar around shutdown and a failing app (issue 8), through the
real binary with real gRPC clients and app:

- SIGTERM under load (4 client connections, 32 unary calls, 2 server streams and one RPC
  held by a delay fault in flight): every in-flight RPC completes OK, /readyz turns 503,
  new connections are refused at once, an RPC started on an old connection after the
  GOAWAY fails fast and never reaches the app, and the process exits 0 soon after the
  last RPC, well within --drain-time;
- SIGTERM with an RPC longer than --drain-time: the process still exits 0 at about
  --drain-time (drain_timeout logged), and the client gets an error, not a hang;
- the app killed (SIGKILL) with a unary call and a server stream in flight: both fail
  within a second (UNAVAILABLE before the response started, INTERNAL after), the sidecar
  keeps running, calls succeed again once the app is back;
- the app accepting no connection (listen backlog full): UNAVAILABLE after
  --upstream-connect-timeout, counted in upstream_connect_failures_total.
Ports 31100-31199.
"""
import os
import signal
import socket
import threading
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import (SLOW, Sidecar, calls_of, channel, check, log, main, metric,
                          start_shapes, wait_port)

BASE = 31100
HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
P_HOLD = HEAD + """faults:
  - name: hold
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-hold: "1"}
    delay: {fixed: 2s, percent: 100}
"""


def code_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def refused(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()


def sigterm_under_load(tmp, srv):
    pfile = os.path.join(tmp, "hold.yaml")
    with open(pfile, "w") as f:
        f.write(P_HOLD)
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--policy", pfile, "--drain-time", "8s"], name="sidecar-load")
    chans = [channel(BASE) for _ in range(4)]
    stubs = [pbg.ShapesStub(c) for c in chans]
    for i, st in enumerate(stubs):
        check(st.Unary(pb.Msg(payload=b"w", tag="warm%d" % i), timeout=5).payload == b"w",
              "client connection %d up" % i)
    futs = []
    for i, st in enumerate(stubs):
        for k in range(8):
            tag = "load-%d-%d" % (i, k)
            futs.append((tag, st.Unary.future(pb.Msg(payload=tag.encode(), sleep_ms=3000 + 50 * k,
                                                     tag=tag), timeout=30)))
    streams, got = [], [[], []]
    for j in range(2):
        it = stubs[j].ServerStream(pb.Msg(count=12, sleep_ms=250, tag="st%d" % j), timeout=30)
        th = threading.Thread(target=lambda it=it, j=j: got[j].extend(
            m.count for m in it), daemon=True)
        th.start()
        streams.append((it, th))
    end = time.monotonic() + 10 * SLOW
    while time.monotonic() < end:
        seen = calls_of(srv)
        if sum(1 for l in seen if l.startswith("Unary load-")) == 32 and \
                sum(1 for l in seen if l.startswith("ServerStream st")) == 2:
            break
        time.sleep(0.05)
    held = stubs[3].Unary.future(pb.Msg(payload=b"held", tag="held"), timeout=30,
                                 metadata=(("x-hold", "1"),))
    end = time.monotonic() + 5 * SLOW
    while time.monotonic() < end and \
            metric(sc.metrics(), "grpcguard_sidecar_delayed_streams") != 1:
        time.sleep(0.02)
    m = sc.metrics()
    check(metric(m, "grpcguard_sidecar_delayed_streams") == 1,
          "one RPC held by the delay (%s)" % {k: v for k, v in m.items() if "delay" in k})
    check(sc.status("/readyz") == 200, "/readyz 200 before SIGTERM")
    t_term = time.monotonic()
    sc.p.send_signal(signal.SIGTERM)
    end = time.monotonic() + 2 * SLOW
    while time.monotonic() < end and not refused(BASE):
        time.sleep(0.02)
    check(refused(BASE), "SIGTERM: new connections refused (%.0f ms)" % ((time.monotonic() - t_term) * 1000))
    check(sc.status("/readyz") == 503, "SIGTERM: /readyz 503 while draining")

    bad = []
    for tag, f in futs:
        try:
            if f.result().payload != tag.encode():
                bad.append(tag + ": bad payload")
        except grpc.RpcError as e:
            bad.append("%s: %s" % (tag, e.code().name))
    check(not bad, "SIGTERM: all 32 in-flight unary calls complete OK (%s)" % bad[:4])
    for it, th in streams:
        th.join(30)
    check(got[0] == list(range(12)) and got[1] == list(range(12)),
          "SIGTERM: both in-flight server streams deliver all 12 messages")
    try:
        r = held.result()
        held_ok = r.payload == b"held"
    except grpc.RpcError as e:
        held_ok = False
        log("held RPC: %s %s" % (e.code(), e.details()))
    check(held_ok, "SIGTERM: the RPC held by a delay fault is forwarded and completes")
    t_last = time.monotonic()

    # an RPC started after the GOAWAY on an old connection: fails fast, never reaches the app
    t0 = time.monotonic()
    c = code_of(lambda: stubs[0].Unary(pb.Msg(tag="after-term"), timeout=5))
    el = time.monotonic() - t0
    check(c == grpc.StatusCode.UNAVAILABLE and el < 2 * SLOW,
          "new RPC after SIGTERM: %s in %.2fs" % (c.name, el))
    try:
        rc = sc.p.wait(timeout=10 * SLOW)
    except Exception:
        rc = None
    t_exit = time.monotonic()
    check(rc == 0, "SIGTERM under load: exit 0 (got %r)" % rc)
    check(t_exit - t_term < 8 * SLOW and t_exit - t_last < 2.5 * SLOW,
          "exit %.2fs after SIGTERM, %.2fs after the last RPC (drain time 8s)" %
          (t_exit - t_term, t_exit - t_last))
    check("Unary after-term" not in calls_of(srv), "the RPC after SIGTERM never reached the app")
    check('"event":"drain_timeout"' not in sc.log_text(), "no drain_timeout when everything finished")
    sc.stop()
    for c in chans:
        c.close()


def drain_timeout(tmp):
    sc = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 1), BASE + 12,
                 ["--policy", os.path.join(tmp, "none.yaml"), "--drain-time", "1s"],
                 name="sidecar-dt")
    ch = channel(BASE + 10)
    stub = pbg.ShapesStub(ch)
    fut = stub.Unary.future(pb.Msg(sleep_ms=6000, tag="too-long"), timeout=30)
    time.sleep(0.5)
    t0 = time.monotonic()
    sc.p.send_signal(signal.SIGTERM)
    try:
        rc = sc.p.wait(timeout=10 * SLOW)
    except Exception:
        rc = None
    el = time.monotonic() - t0
    check(rc == 0 and 0.9 <= el < 2.5 * SLOW,
          "RPC longer than --drain-time 1s: exit %r after %.2fs" % (rc, el))
    check('"event":"drain_timeout"' in sc.log_text(), "drain_timeout logged")
    t1 = time.monotonic()
    c = code_of(fut.result)
    check(c != grpc.StatusCode.OK and time.monotonic() - t1 < 2,
          "the cut RPC fails at once (%s), no hang" % c.name)
    sc.stop()
    ch.close()


def app_crash(tmp):
    srv = start_shapes(BASE + 21, tmp, "shapes-crash")
    sc = Sidecar(tmp, BASE + 20, "127.0.0.1:%d" % (BASE + 21), BASE + 22,
                 ["--policy", os.path.join(tmp, "none.yaml")], name="sidecar-crash")
    ch = channel(BASE + 20)
    stub = pbg.ShapesStub(ch)
    check(stub.Unary(pb.Msg(payload=b"a"), timeout=5).payload == b"a", "app up: call OK")
    una = stub.Unary.future(pb.Msg(sleep_ms=10000, tag="crash-unary"), timeout=30)
    it = stub.ServerStream(pb.Msg(count=100, sleep_ms=100, tag="crash-stream"), timeout=30)
    first = next(it)
    check(first.count == 0, "server stream started")
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.stop(signal.SIGKILL)
    cu = code_of(una.result)
    el_u = time.monotonic() - t0
    cs = code_of(lambda: list(it))
    el_s = time.monotonic() - t0
    check(cu == grpc.StatusCode.UNAVAILABLE and el_u < 1.0 * SLOW,
          "app killed: in-flight unary (no response yet) -> %s in %.2fs" % (cu.name, el_u))
    check(cs in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE) and el_s < 1.0 * SLOW,
          "app killed: started server stream -> %s in %.2fs" % (cs.name, el_s))
    t0 = time.monotonic()
    c = code_of(lambda: stub.Unary(pb.Msg(tag="while-down"), timeout=5))
    check(c == grpc.StatusCode.UNAVAILABLE and time.monotonic() - t0 < 1.0 * SLOW,
          "app down: a new call -> UNAVAILABLE fast")
    check(sc.p.poll() is None, "the sidecar survives the app crash")
    srv = start_shapes(BASE + 21, tmp, "shapes-crash2")
    check(stub.Unary(pb.Msg(payload=b"back"), timeout=5).payload == b"back",
          "app back: calls succeed again on the same client connection")
    ch.close()
    check(sc.stop() == 0, "sidecar-crash exits 0")
    srv.stop()


def connect_timeout(tmp):
    # An app whose accept queue is full: SYNs are dropped, connect() hangs.
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", BASE + 31))
    lst.listen(0)
    fillers = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", BASE + 31))
        fillers.append(c)
    time.sleep(0.2)
    sc = Sidecar(tmp, BASE + 30, "127.0.0.1:%d" % (BASE + 31), BASE + 32,
                 ["--policy", os.path.join(tmp, "none.yaml"), "--upstream-connect-timeout",
                  "500ms"], name="sidecar-ct")
    ch = channel(BASE + 30)
    stub = pbg.ShapesStub(ch)
    t0 = time.monotonic()
    try:
        stub.Unary(pb.Msg(tag="blackhole"), timeout=10)
        c, d = grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        c, d = e.code(), e.details()
    el = time.monotonic() - t0
    check(c == grpc.StatusCode.UNAVAILABLE and "upstream connect error" in d and
          0.4 <= el < 2.0 * SLOW,
          "app never accepts: UNAVAILABLE after --upstream-connect-timeout 500ms (%.2fs, %r)" % (el, d))
    check(metric(sc.metrics(), "grpcguard_sidecar_upstream_connect_failures_total") >= 1,
          "metrics: the connect timeout counted")
    check(sc.status("/readyz") == 503, "/readyz 503 while the app does not accept")
    ch.close()
    # The app goes away for good (its next SYN retransmission is refused), then SIGTERM.
    # SIGTERM while the readiness probe's connect still hangs: test_failure_probe.py.
    for c in fillers:
        c.close()
    lst.close()
    check(sc.stop() == 0, "sidecar-ct exits 0")


def test(tmp):
    srv = start_shapes(BASE + 1, tmp, extra=["--workers", "64"])
    sigterm_under_load(tmp, srv)
    drain_timeout(tmp)
    srv.stop()
    app_crash(tmp)
    connect_timeout(tmp)


if __name__ == "__main__":
    main(test)
