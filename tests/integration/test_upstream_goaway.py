#!/usr/bin/python3
"""Apps that end their connections on purpose cost the clients nothing (issue 17).

- A raw HTTP/2 app (python3-h2) sends a one-phase GOAWAY every 40 requests on a
  connection (last-stream-id = the last request it answered, no 2^31-1 notice), answers
  nothing above it, and closes; it also refuses every 13th request with RST_STREAM
  REFUSED_STREAM. Under a steady load of 3,000 unary calls (12 in flight) through the
  sidecar: zero failed calls, and the app saw several connections and refused streams
  (RFC 9113 sections 6.8 and 8.7: such requests were not processed, so the sidecar
  retries them on a new connection).
- An app that closes a connection after 100 ms without a stream, with a plain FIN or
  after a GOAWAY NO_ERROR: the next call, 300 ms later, succeeds (each time on a new
  connection).
- A request the app already received when its connection dies (no GOAWAY) is not
  retried: the client gets UNAVAILABLE and the app saw it exactly once.
- A grpcio app with grpc.max_connection_age_ms = 30 under load: zero failures.
Ports 28700-28749 (below the ephemeral range: the test opens hundreds of connections).
"""
import os
import random
import socket
import struct
import time

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from gg_testlib import AcceptLoop
from test_sidecar import Sidecar, channel, check, log, main, start_shapes

BASE = 28700


def grpc_msg(b):
    return b"\x00" + struct.pack(">I", len(b)) + b


class RawApp(AcceptLoop):
    """A gRPC-shaped HTTP/2 server written with h2 that ends connections on purpose.

    goaway_every: after this many answered requests on a connection, GOAWAY with
    last-stream-id = the last answered stream, finish the open streams at or below it,
    then shut the socket down. refuse_every: every n-th request (all connections) gets
    RST_STREAM REFUSED_STREAM instead of an answer. idle_close_ms: close a connection
    that has had no stream for this long (idle_goaway: GOAWAY NO_ERROR first). Requests
    to /test.Raw/Drop make the app close that connection at once, unanswered.
    """

    def __init__(self, port, goaway_every=0, refuse_every=0, idle_close_ms=0, idle_goaway=False):
        super().__init__(port)
        self.goaway_every, self.refuse_every = goaway_every, refuse_every
        self.idle_close_ms, self.idle_goaway = idle_close_ms, idle_goaway
        self.answered = self.refused = self.goaways = self.drops = self.seen = 0
        self.seen_ended = 0

    def count(self, what):
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            return getattr(self, what)

    def serve(self, s):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                    validate_inbound_headers=False))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        answered, last, closing = 0, 0, False
        open_streams, paths = set(), {}
        s.settimeout(self.idle_close_ms / 1000.0 if self.idle_close_ms else 10.0)
        try:
            while True:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    if self.idle_close_ms and not open_streams:
                        if self.idle_goaway:
                            conn.close_connection(0, last_stream_id=last)
                            s.sendall(conn.data_to_send())
                        return
                    continue
                if not data:
                    return
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        open_streams.add(ev.stream_id)
                        paths[ev.stream_id] = dict(ev.headers).get(b":path", b"")
                        self.count("seen")
                    elif isinstance(ev, h2.events.StreamEnded):
                        sid = ev.stream_id
                        if paths.get(sid) == b"/test.Raw/Drop":
                            self.count("drops")
                            return
                        if closing and sid > last:
                            open_streams.discard(sid)
                            continue  # above our GOAWAY: never processed
                        if self.refuse_every and self.count("seen_ended") % self.refuse_every == 0:
                            conn.reset_stream(sid, error_code=7)  # REFUSED_STREAM
                            self.count("refused")
                            open_streams.discard(sid)
                            continue
                        conn.send_headers(sid, [(":status", "200"),
                                                ("content-type", "application/grpc")])
                        conn.send_data(sid, grpc_msg(b"ok"))
                        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
                        open_streams.discard(sid)
                        self.count("answered")
                        answered += 1
                        last = max(last, sid)
                        if self.goaway_every and not closing and answered >= self.goaway_every:
                            closing = True
                            conn.close_connection(0, last_stream_id=last)
                            self.count("goaways")
                    elif isinstance(ev, h2.events.StreamReset):
                        open_streams.discard(ev.stream_id)
                out = conn.data_to_send()
                if out:
                    s.sendall(out)
                if closing and not any(x <= last for x in open_streams):
                    # One-phase GOAWAY done: stop writing, read until the peer closes.
                    s.shutdown(socket.SHUT_WR)
                    s.settimeout(5.0)
                    while s.recv(65536):
                        pass
                    return
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            s.close()


def unary(ch, path="/test.Raw/Unary"):
    return ch.unary_unary(path, request_serializer=None, response_deserializer=None)


def load(call, n, inflight, timeout=10):
    """n calls with at most `inflight` at once; returns the list of errors (code, details)."""
    errors, futs = [], []
    for i in range(n):
        futs.append(call(i))
        if len(futs) >= inflight:
            f = futs.pop(0)
            try:
                f.result(timeout=timeout)
            except grpc.RpcError as e:
                errors.append((e.code(), e.details()))
    for f in futs:
        try:
            f.result(timeout=timeout)
        except grpc.RpcError as e:
            errors.append((e.code(), e.details()))
    return errors


def one_phase_goaway(tmp):
    app = RawApp(BASE + 1, goaway_every=40, refuse_every=13)
    app.start()
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--policy", os.path.join(tmp, "none.yaml")], name="sidecar-goaway")
    ch = channel(BASE)
    u = unary(ch)
    n = 3000
    t0 = time.monotonic()
    errors = load(lambda i: u.future(b"x%d" % i, timeout=10), n, 12)
    log("one-phase GOAWAY: %d calls in %.1fs, %d failed; app: %d connections, %d GOAWAYs, "
        "%d refused, %d answered" % (n, time.monotonic() - t0, len(errors), app.conns,
                                     app.goaways, app.refused, app.answered))
    check(not errors, "no call fails while the app sends one-phase GOAWAYs and refuses "
          "streams (first errors: %r)" % errors[:3])
    check(app.goaways >= 20 and app.conns >= 20, "the app rotated its connections "
          "(%d GOAWAYs, %d connections)" % (app.goaways, app.conns))
    check(app.refused >= 100, "the app refused streams (%d)" % app.refused)
    check(app.answered == n, "every call was answered exactly once (%d)" % app.answered)
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0")
    app.stop()


def idle_close(tmp, goaway, port):
    app = RawApp(port + 1, idle_close_ms=100, idle_goaway=goaway)
    app.start()
    sc = Sidecar(tmp, port, "127.0.0.1:%d" % (port + 1), port + 2,
                 ["--policy", os.path.join(tmp, "none.yaml")], name="sidecar-idle%d" % goaway)
    ch = channel(port)
    u = unary(ch)
    what = "GOAWAY NO_ERROR + FIN" if goaway else "FIN"
    for i in range(5):
        try:
            u(b"hi", timeout=5)
        except grpc.RpcError as e:
            check(False, "call %d after the app closed an idle connection (%s) succeeds: %s %s"
                  % (i, what, e.code(), e.details()))
        time.sleep(0.3)
    check(app.conns >= 5, "the app closed idle connections (%s): %d connections for 5 calls"
          % (what, app.conns))
    log("idle close (%s): 5 calls 300 ms apart, all succeeded over %d connections"
        % (what, app.conns))
    if goaway:
        # Calls about as far apart as the app's idle limit: its GOAWAY and our next
        # request cross on the wire. The GOAWAY names the last stream it processed, so a
        # request above it is sent again; none fails.
        rnd = random.Random(17)
        fails = []
        for i in range(30):
            try:
                u(b"race", timeout=5)
            except grpc.RpcError as e:
                fails.append((e.code(), e.details()))
            time.sleep(0.09 + rnd.random() * 0.02)
        log("idle close race: 30 calls 90-110 ms apart, %d failed, %d connections"
            % (len(fails), app.conns))
        check(not fails, "no call fails when the app's idle GOAWAY crosses it (%r)" % fails[:3])
    # A request the app received before its connection died is not retried.
    try:
        unary(ch, "/test.Raw/Drop")(b"x", timeout=5)
        check(False, "a call whose connection died under it fails")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.UNAVAILABLE, "it fails UNAVAILABLE (%s)" % e.code())
    time.sleep(0.2)
    check(app.drops == 1, "the app saw the dropped request once, not retried (%d)" % app.drops)
    u(b"after", timeout=5)
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0")
    app.stop()


def max_connection_age(tmp):
    srv = start_shapes(BASE + 31, tmp, name="shapes-age", extra=["--max-connection-age-ms", "30"])
    sc = Sidecar(tmp, BASE + 30, "127.0.0.1:%d" % (BASE + 31), BASE + 32,
                 ["--policy", os.path.join(tmp, "none.yaml")], name="sidecar-age")
    ch = channel(BASE + 30)
    stub = pbg.ShapesStub(ch)
    n = 1500
    t0 = time.monotonic()
    errors = load(lambda i: stub.Unary.future(pb.Msg(payload=b"a", tag="age%d" % i), timeout=10),
                  n, 12)
    log("max_connection_age_ms=30: %d calls in %.1fs, %d failed"
        % (n, time.monotonic() - t0, len(errors)))
    check(not errors, "no call fails while the app rotates connections every 30 ms "
          "(first errors: %r)" % errors[:3])
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0")
    srv.stop()


def test(tmp):
    one_phase_goaway(tmp)
    idle_close(tmp, False, BASE + 10)
    idle_close(tmp, True, BASE + 20)
    max_connection_age(tmp)
    log("PASS test_upstream_goaway")


if __name__ == "__main__":
    main(test)
