#!/usr/bin/python3
"""Red team 3 (issue 17): the upstream connection pool and the reload paths around it,
with real sidecars, raw python3-h2 clients and apps (validation off) and live reloads.
docs/security.md "Red team 3" lists what was tried.

Holes (each fails on 2100ce2, passes now):
- test: a request judged and forwarded under one policy, which the app then refused
  unprocessed (RST_STREAM REFUSED_STREAM, or GOAWAY with last-stream-id 0) after a reload
  to a DENY of its method, was sent again without a second judgement (grpc-status 0, the
  app saw it twice). Now judged again like a held request: grpc-status 7, seen once. Held:
  after a reload that still allows it, the retry is sent and answered.
- test_header_list: a header block over the app's SETTINGS_MAX_HEADER_LIST_SIZE (8192;
  h2 ends the whole connection on one) was forwarded: another client's call in flight on
  the shared connection got UNAVAILABLE, and the GOAWAY made the oversize request a
  refused one, sent again on new connections (6 ended). Now grpc-status 8 from the sidecar.
- test_header_trailers: the same with request trailers: now that call only fails.
- test_header_list_new_conn: the same on a new pooled connection (first flight, before the
  app's SETTINGS): now held to the limit the app announced on the first connection.
- test_strict_reload: a plaintext HTTP/2 connection and a passthrough pipe opened under
  PERMISSIVE kept reaching the app after a reload to mtls STRICT. Now refused.
Ports 29700-29749 (below the ephemeral range).
"""
import socket
import sys
import threading
import time

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
except ImportError:
    print("python3-h2 is not installed (make deps installs it)")
    sys.exit(77)

from test_security_paths import EMPTY_MSG, HEAD, Backend, raw_call, write_policy
from test_security_redteam import gen_of, hdrs, replace_policy
from gg_testlib import AcceptLoop
from test_sidecar import Failure, Sidecar, check, log, main, metric

BASE = 29700

P_OPEN = HEAD + """authorization:
  - name: no-secret
    action: DENY
    rules: [{to: [{methods: ["/demo.Echo/Secret"]}]}]
"""
P_DENY_RETRY = P_OPEN + """  - name: no-retry
    action: DENY
    rules: [{to: [{methods: ["/demo.Echo/Retry"]}]}]
"""


class RefusingApp(AcceptLoop):
    """HTTP/2 app (h2, no validation). The first /demo.Echo/Retry request after arm() is
    held unanswered until release() and then refused: how="rst" with RST_STREAM
    REFUSED_STREAM, how="goaway" with GOAWAY(last-stream-id 0) and a close. Every other
    request is answered with an empty message and grpc-status 0. seen counts the
    /demo.Echo/Retry requests that reached it (each HEADERS), answered those answered."""

    def __init__(self, port):
        super().__init__(port, 16)
        self.seen = self.answered = 0
        self.armed = False
        self.how = "rst"
        self.release_ev = threading.Event()

    def arm(self, how):
        with self.lock:
            self.how, self.armed = how, True
            self.seen = self.answered = 0
            self.release_ev.clear()

    def release(self):
        self.release_ev.set()

    def answer(self, conn, sid):
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(sid, EMPTY_MSG)
        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)

    def serve(self, s):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, validate_inbound_headers=False, header_encoding=None))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        held, paths = None, {}
        s.settimeout(0.02)
        try:
            while not self.stopping:
                if held is not None and self.release_ev.is_set():
                    if self.how == "goaway":
                        conn.close_connection(0, last_stream_id=0)
                        s.sendall(conn.data_to_send())
                        return
                    conn.reset_stream(held, error_code=7)  # REFUSED_STREAM
                    held = None
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    data = None
                if data == b"":
                    return
                for ev in conn.receive_data(data) if data else ():
                    if isinstance(ev, h2.events.RequestReceived):
                        paths[ev.stream_id] = dict(ev.headers).get(b":path", b"")
                        if paths[ev.stream_id] == b"/demo.Echo/Retry":
                            with self.lock:
                                self.seen += 1
                    elif isinstance(ev, h2.events.StreamEnded):
                        sid = ev.stream_id
                        if paths.get(sid) == b"/demo.Echo/Retry":
                            with self.lock:
                                hold, self.armed = self.armed, False
                            if hold:
                                held = sid
                                continue
                            with self.lock:
                                self.answered += 1
                        self.answer(conn, sid)
                out = conn.data_to_send()
                if out:
                    s.sendall(out)
        except (OSError, h2.exceptions.ProtocolError):
            return
        finally:
            s.close()


class SmallHeadersApp(AcceptLoop):
    """HTTP/2 app (h2) that announces and enforces SETTINGS_MAX_HEADER_LIST_SIZE = LIMIT
    (h2 ends the whole connection, GOAWAY, on a header block over it). /demo.Echo/Slow is
    answered after 1 s, anything else at once. conns counts connections, errors the
    connections it ended on a protocol error."""

    LIMIT = 8192

    def __init__(self, port, max_streams=100):
        super().__init__(port, 16)
        self.max_streams = max_streams
        self.errors = 0

    def serve(self, s):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, validate_inbound_headers=False, header_encoding=None))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.LIMIT})
        conn.decoder.max_header_list_size = self.LIMIT
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        paths, due = {}, {}
        s.settimeout(0.02)
        try:
            while not self.stopping:
                now = time.monotonic()
                for sid in [k for k, t in due.items() if t <= now]:
                    del due[sid]
                    RefusingApp.answer(None, conn, sid)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    data = None
                if data == b"":
                    return
                try:
                    events = conn.receive_data(data) if data else ()
                except h2.exceptions.ProtocolError:
                    with self.lock:
                        self.errors += 1
                    s.sendall(conn.data_to_send())  # h2's GOAWAY
                    return
                for ev in events:
                    if isinstance(ev, h2.events.RequestReceived):
                        paths[ev.stream_id] = dict(ev.headers).get(b":path", b"")
                    elif isinstance(ev, h2.events.StreamEnded):
                        if paths.get(ev.stream_id) == b"/demo.Echo/Slow":
                            due[ev.stream_id] = time.monotonic() + 1.0
                        else:
                            RefusingApp.answer(None, conn, ev.stream_id)
                out = conn.data_to_send()
                if out:
                    s.sendall(out)
        except OSError:
            return
        finally:
            s.close()


def test_header_list(tmp):
    """One client's header block over the app's SETTINGS_MAX_HEADER_LIST_SIZE must not end
    the shared upstream connection under another client's call."""
    app = SmallHeadersApp(BASE + 11)
    app.start()
    sc = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 11), BASE + 12, name="sidecar-hdr",
                 extra=["--policy", write_policy(tmp, "hdr", P_OPEN)])
    try:
        r = raw_call(BASE + 10, hdrs(b"/demo.Echo/Hello", b"x"))
        check(r.get("grpc_status") == "0", "a first call is answered (%r)" % r)
        res = {}
        t = threading.Thread(target=lambda: res.update(
            raw_call(BASE + 10, hdrs(b"/demo.Echo/Slow", b"x"), timeout=5)))
        t.start()
        time.sleep(0.3)  # the slow call is with the app now
        big = raw_call(BASE + 10, hdrs(b"/demo.Echo/Hello", b"x",
                                       extra=[(b"x-big", b"a" * 10000)]))
        t.join(8)
        log("oversize client: %r; the other client's call: %r; app: %d connections, %d "
            "ended on an error" % (big, res, app.conns, app.errors))
        check(big.get("grpc_status") == "8", "a request over the app's header list limit is "
              "answered RESOURCE_EXHAUSTED by the sidecar (%r)" % big)
        check(res.get("grpc_status") == "0" and app.errors == 0,
              "another client's call in flight on the shared connection is answered; the "
              "app never saw the oversize block (%r, %d errors)" % (res, app.errors))
        check(metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total",
                     limit="max_header_list_bytes") >= 1, "counted as a header list limit hit")
        check(sc.stop() == 0, "sidecar exits 0")
    finally:
        app.stop()


def test_header_trailers(tmp):
    """Request trailers over the app's header list limit fail that call only. Before, they
    went to the app, which ended the shared connection under another client's call."""
    app = SmallHeadersApp(BASE + 41)
    app.start()
    sc = Sidecar(tmp, BASE + 40, "127.0.0.1:%d" % (BASE + 41), BASE + 42, name="sidecar-trl",
                 extra=["--policy", write_policy(tmp, "trl", P_OPEN)])
    try:
        r = raw_call(BASE + 40, hdrs(b"/demo.Echo/Hello", b"x"))
        check(r.get("grpc_status") == "0", "a first call is answered (%r)" % r)
        res = {}
        t = threading.Thread(target=lambda: res.update(
            raw_call(BASE + 40, hdrs(b"/demo.Echo/Slow", b"x"), timeout=5)))
        t.start()
        time.sleep(0.3)
        cl = RawClient(BASE + 40)
        st = cl.call(hdrs(b"/demo.Echo/Hello", b"x"), trailers=[(b"x-big", b"a" * 10000)])
        cl.close()
        t.join(8)
        log("oversize trailers: %r; the other client's call: %r; app: %d ended on an error" %
            (st, res, app.errors))
        check(st not in ("0", None) and res.get("grpc_status") == "0" and app.errors == 0,
              "request trailers over the app's limit fail that call only (%r), another "
              "client's call is answered (%r, %d app errors)" % (st, res, app.errors))
        check(sc.stop() == 0, "sidecar exits 0")
    finally:
        app.stop()


def test_header_list_new_conn(tmp):
    """The same on a connection the pool opens while the first is full (the app takes 2
    streams): its first flight leaves before the app's SETTINGS, so the limit the app
    announced on the first connection applies. Before, the oversize request went out on
    the new connection, which the app ended; the GOAWAY made it a refused request, sent
    again on another new connection, up to 5 times."""
    app = SmallHeadersApp(BASE + 21, max_streams=2)
    app.start()
    sc = Sidecar(tmp, BASE + 20, "127.0.0.1:%d" % (BASE + 21), BASE + 22, name="sidecar-hdr2",
                 extra=["--policy", write_policy(tmp, "hdr2", P_OPEN)])
    try:
        r = raw_call(BASE + 20, hdrs(b"/demo.Echo/Hello", b"x"))
        check(r.get("grpc_status") == "0", "a first call is answered (%r)" % r)
        res = [{}, {}]
        ts = [threading.Thread(target=lambda i=i: res[i].update(
            raw_call(BASE + 20, hdrs(b"/demo.Echo/Slow", b"x"), timeout=5))) for i in range(2)]
        for t in ts:
            t.start()
        time.sleep(0.3)  # both slow calls hold the first connection's 2 streams
        big = raw_call(BASE + 20, hdrs(b"/demo.Echo/Hello", b"x",
                                       extra=[(b"x-big", b"a" * 10000)]))
        for t in ts:
            t.join(8)
        log("new connection: oversize client %r; slow calls %r; app: %d connections, %d "
            "ended on an error" % (big, res, app.conns, app.errors))
        check(big.get("grpc_status") == "8" and app.errors == 0,
              "an oversize request on a new pooled connection is refused by the sidecar "
              "(RESOURCE_EXHAUSTED); the app never ends a connection (%r, %d errors)"
              % (big, app.errors))
        check(all(x.get("grpc_status") == "0" for x in res), "the slow calls are answered "
              "(%r)" % res)
        check(sc.stop() == 0, "sidecar exits 0")
    finally:
        app.stop()


class RawClient:
    """One HTTP/2 client connection (h2, no validation) for several requests."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.c = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_inbound_headers=False))
        self.c.initiate_connection()
        self.s.sendall(self.c.data_to_send())

    def call(self, headers, timeout=3.0, trailers=None):
        """One request (ending with trailers if given); the grpc-status (str),
        "reset:CODE", "closed" or None (timeout)."""
        sid = self.c.get_next_available_stream_id()
        self.c.send_headers(sid, headers)
        self.c.send_data(sid, EMPTY_MSG, end_stream=not trailers)
        if trailers:
            self.c.send_headers(sid, trailers, end_stream=True)
        self.s.sendall(self.c.data_to_send())
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.s.settimeout(max(0.05, end - time.monotonic()))
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            if not d:
                return "closed"
            for ev in self.c.receive_data(d):
                if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)) \
                        and ev.stream_id == sid:
                    st = dict(ev.headers).get(b"grpc-status")
                    if st is not None:
                        return st.decode()
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    return "reset:%d" % ev.error_code
            self.s.sendall(self.c.data_to_send())
        return None

    def close(self):
        self.s.close()


def test_strict_reload(tmp):
    """mtls STRICT must keep plaintext out also on a connection opened before the reload
    that set it. Before: the connection door judged a connection once, at accept, and a
    plaintext HTTP/2 connection kept carrying requests to the app after the reload
    (grpc-status 0)."""
    be = Backend(BASE + 31)
    path = write_policy(tmp, "strict", P_OPEN + "passthrough: allow\n")
    sc = Sidecar(tmp, BASE + 30, "127.0.0.1:%d" % (BASE + 31), BASE + 32,
                 name="sidecar-strict", extra=["--policy", path])
    try:
        cl = RawClient(BASE + 30)
        st = cl.call(hdrs(b"/demo.Echo/Hello", b"x"))
        check(st == "0", "PERMISSIVE: a plaintext call is answered (%r)" % st)
        pipe = socket.create_connection(("127.0.0.1", BASE + 30), timeout=5)
        pipe.sendall(b"POST ")  # not HTTP/2: a passthrough pipe (passthrough: allow)
        end = time.monotonic() + 5
        while (metric(sc.metrics(), "grpcguard_sidecar_passthrough_connections_total") < 1
               and time.monotonic() < end):
            time.sleep(0.05)
        set_policy(sc, path, P_OPEN + "passthrough: allow\nmtls: {mode: STRICT}\n")
        n0 = be.count()
        st = cl.call(hdrs(b"/demo.Echo/Hello", b"x"))
        time.sleep(0.3)  # the workers were woken by the reload; the sweep is the fallback
        try:
            pipe.sendall(b"/demo.Echo/Secret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            pipe.settimeout(3)
            while pipe.recv(4096):
                pass
        except OSError:
            pass
        pipe.close()
        time.sleep(0.2)
        got = be.since(n0)
        check(not any(b"Secret" in r.get("h1", b"") for r in got),
              "after a reload to STRICT, a plaintext passthrough pipe opened before carries "
              "nothing more to the app (%r)" % got)
        check(st == "16" and not got, "after a reload to STRICT, a request on the plaintext "
              "connection opened before is refused (grpc-status 16) and never reaches the "
              "app (%r, %d reached it)" % (st, len(got)))
        cl.close()
        r = raw_call(BASE + 30, hdrs(b"/demo.Echo/Hello", b"x"))
        check(r.get("grpc_status") is None and not be.since(n0),
              "a new plaintext connection is refused at the door (%r)" % r)
        check(sc.stop() == 0, "sidecar exits 0")
    finally:
        be.stop()


def set_policy(sc, path, text):
    """Replace the policy file and wait until the sidecar has loaded it."""
    gen = gen_of(sc)
    replace_policy(path, text)
    end = time.monotonic() + 5
    while gen_of(sc) == gen and time.monotonic() < end:
        time.sleep(0.02)
    check(gen_of(sc) > gen, "the sidecar loaded the new policy")


def refused_after_reload(sc, app, path, how, new_policy):
    """One /demo.Echo/Retry call: the app holds it, the policy file becomes new_policy (the
    test waits for the new generation), then the app refuses it. Returns raw_call's dict."""
    res = {}
    app.arm(how)
    t = threading.Thread(target=lambda: res.update(
        raw_call(BASE, hdrs(b"/demo.Echo/Retry", b"x"), timeout=8)))
    gen = gen_of(sc)
    t.start()
    end = time.monotonic() + 5
    while app.seen < 1:
        if time.monotonic() > end:
            raise Failure("the request did not reach the app")
        time.sleep(0.02)
    replace_policy(path, new_policy)
    end = time.monotonic() + 5
    while gen_of(sc) == gen and time.monotonic() < end:
        time.sleep(0.02)
    check(gen_of(sc) > gen, "the reload happened while the app held the request")
    app.release()
    t.join(10)
    return res


def test(tmp):
    app = RefusingApp(BASE + 1)
    app.start()
    path = write_policy(tmp, "retry", P_OPEN)
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2, name="sidecar-retry",
                 extra=["--policy", path])
    try:
        denied = 0
        for how in ("rst", "goaway"):
            set_policy(sc, path, P_OPEN + "# %s: allowed again\n" % how)
            r = refused_after_reload(sc, app, path, how, P_DENY_RETRY)
            log("%s after a reload to DENY: %r, app saw %d, answered %d" %
                (how, r, app.seen, app.answered))
            check(r.get("grpc_status") == "7" and app.seen == 1 and app.answered == 0,
                  "refused by the app (%s) after a reload to DENY: the retry is judged by "
                  "the new policy, denied (grpc-status 7), the app saw it once (%r, seen %d)"
                  % (how, r, app.seen))
            denied += 1
            check(metric(sc.metrics(), "grpcguard_authz_denied_total", policy="no-retry") ==
                  denied, "counted in grpcguard_authz_denied_total{policy=no-retry}")
            # Held: a reload that still allows it leaves the retry alone.
            set_policy(sc, path, P_OPEN + "# %s: allowed again, once more\n" % how)
            r = refused_after_reload(sc, app, path, how,
                                     P_OPEN + "# %s: a new generation, same meaning\n" % how)
            log("%s after a reload that allows: %r, app saw %d, answered %d" %
                (how, r, app.seen, app.answered))
            check(r.get("grpc_status") == "0" and app.seen == 2 and app.answered == 1,
                  "refused by the app (%s) after a reload that still allows: sent again and "
                  "answered (%r, seen %d)" % (how, r, app.seen))
        check(metric(sc.metrics(), "grpcguard_sidecar_upstream_retries_total") >= 2,
              "the allowed retries are counted")
        check(sc.stop() == 0, "sidecar exits 0")
    finally:
        app.stop()
    test_header_list(tmp)
    test_header_trailers(tmp)
    test_header_list_new_conn(tmp)
    test_strict_reload(tmp)
    log("done")


if __name__ == "__main__":
    main(test)
