#!/usr/bin/python3
"""Issue 14, red team: ways around the authorization that the request-form gate alone did
not close, each tried with a real peer against a real sidecar (--upstream 127.0.0.1:PORT)
in front of the recording backend of test_security_paths.

Holes (fail on bacf9d2 and on the gate commit 4eefb4b, pass now):
- a TCP passthrough pipe opened while the policy had no authorization entry (faults only)
  kept carrying bytes to the app after a reload added one: an HTTP/1.1
  `POST /demo.Echo/Secret` sent on it after the reload reached the app unjudged. Now the
  pipe is closed when the policy changes (grpcguard_connections_refused_total counts it);
- a DENY `when: [{header: host, values: [admin*]}]` was stepped around by naming the host
  in `:authority` only (what grpc-go and net/http route on), or by a `host` field that
  differs from `:authority`. Now `host` and `:authority` read the request's authority
  (`:authority`, else Host) and a Host that differs from `:authority` is refused
  (grpc-status 12, grpcguard_requests_refused_total{reason="authority"});
- a request held by a delay fault was judged once, on arrival: a reload to a DENY of its
  method while it was held did not stop it. Now it is judged again at release when the
  policy changed (grpc-status 7).

Vectors that hold (kept here so they stay held): `:path` in request trailers, a header
name in uppercase, a value with surrounding whitespace, a header block split over
CONTINUATION frames, health-service look-alikes under an ALLOW list, an IPv4-mapped IPv6
peer (and x-forwarded-for) against an IPv4 ipBlocks DENY. docs/security.md ("Red team") lists
every vector tried.
Ports 29600-29649 (below the ephemeral range).
"""
import json
import os
import socket
import sys
import threading
import time

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:
    print("python3-h2 is not installed (make deps installs it)")
    sys.exit(77)

from test_security_paths import (EMPTY_MSG, HEAD, Backend, gate_of, raw_call, req,
                                 write_policy)
from test_sidecar import Failure, Sidecar, check, log, main, metric

BASE = 29600

P_FAULTS = HEAD + """faults:
  - name: slow-other
    match: {methods: ["/other.Svc/*"]}
    delay: {fixed: 1s, percent: 100}
"""
P_DENY = HEAD + """authorization:
  - name: no-secret
    action: DENY
    rules: [{to: [{methods: ["/demo.Echo/Secret"]}]}]
"""
P_HOST = HEAD + """authorization:
  - name: no-admin-host
    action: DENY
    rules:
      - when: [{header: host, values: ["admin*"]}]
  - name: no-red
    action: DENY
    rules:
      - to: [{methods: ["/demo.Echo/Red"]}]
        when: [{header: x-tenant, values: [red]}]
"""
P_ALLOW = HEAD + """authorization:
  - name: only-hello
    action: ALLOW
    rules: [{to: [{methods: ["/demo.Echo/Hello"]}]}]
"""
P_NOLOCAL = HEAD + """authorization:
  - name: no-local
    action: DENY
    rules: [{from: [{ipBlocks: ["127.0.0.1/32"]}]}]
"""


def replace_policy(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


def h2_exchange(sock, build, timeout=3.0):
    """Send what build(conn) queues on a fresh client connection over sock; return the
    grpc-status seen (str or None), the RST_STREAM code (or None), whether it closed."""
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False,
                                    validate_inbound_headers=False)
    c = h2.connection.H2Connection(config=cfg)
    c.initiate_connection()
    build(c)
    sock.sendall(c.data_to_send())
    out = {"grpc_status": None, "reset": None, "closed": False}
    end = time.monotonic() + timeout
    while time.monotonic() < end and out["grpc_status"] is None and out["reset"] is None:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            out["closed"] = True
            break
        for ev in c.receive_data(d):
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for k, v in ev.headers:
                    if k == b"grpc-status":
                        out["grpc_status"] = v.decode()
            elif isinstance(ev, h2.events.StreamReset):
                out["reset"] = int(ev.error_code)
        sock.sendall(c.data_to_send())
    return out


def hdrs(path=b"/demo.Echo/Hello", authority=None, host=None, extra=()):
    h = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path)]
    if authority is not None:
        h.append((b":authority", authority))
    if host is not None:
        h.append((b"host", host))
    return h + [(b"content-type", b"application/grpc"), (b"te", b"trailers")] + list(extra)


def test_passthrough_reload(tmp, be, up):
    """A pipe admitted under a faults-only policy is closed by a reload to authorization."""
    path = write_policy(tmp, "pt", P_FAULTS)
    sc = Sidecar(tmp, BASE, up, BASE + 2, name="sidecar-pt", extra=["--policy", path])
    check(gate_of(sc).get("passthrough") == "allow", "faults only: passthrough allow")
    n0 = be.count()
    s = socket.create_connection(("127.0.0.1", BASE), timeout=5)
    s.sendall(b"POST ")  # not the HTTP/2 preface: the sidecar opens the TCP pipe
    end = time.monotonic() + 5
    while (metric(sc.metrics(), "grpcguard_sidecar_passthrough_connections_total") < 1 and
           time.monotonic() < end):
        time.sleep(0.05)
    check(metric(sc.metrics(), "grpcguard_sidecar_passthrough_connections_total") == 1,
          "the HTTP/1.1 connection is passed through under the faults-only policy")
    refused0 = metric(sc.metrics(), "grpcguard_connections_refused_total", reason="not_http2")
    replace_policy(path, P_DENY)
    end = time.monotonic() + 10
    while gate_of(sc).get("passthrough") != "deny" and time.monotonic() < end:
        time.sleep(0.05)
    check(gate_of(sc).get("passthrough") == "deny", "the reload to a DENY policy is in force")
    time.sleep(0.3)  # the workers were woken by the reload; the sweep is the 1 s fallback
    got = b""
    try:
        s.sendall(b"/demo.Echo/Secret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        s.settimeout(3)
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    time.sleep(0.3)
    # The backend saw "POST " (sent while passthrough was allowed), never the method.
    check(not any(b"Secret" in r.get("h1", b"") for r in be.since(n0)),
          "after the reload, the old pipe carries nothing more to the app (%s)" % be.since(n0))
    check(not got.startswith(b"HTTP/1.1 200"), "no answer from the app (%r)" % got[:40])
    check(metric(sc.metrics(), "grpcguard_connections_refused_total", reason="not_http2")
          == refused0 + 1, "the closed pipe is counted as refused")
    check('"reason":"policy_changed"' in sc.log_text(), "and logged with reason policy_changed")
    # A reload that keeps passthrough allowed leaves a pipe alone.
    replace_policy(path, P_FAULTS)
    end = time.monotonic() + 10
    while gate_of(sc).get("passthrough") != "allow" and time.monotonic() < end:
        time.sleep(0.05)
    s = socket.create_connection(("127.0.0.1", BASE), timeout=5)
    s.sendall(b"POST ")
    time.sleep(0.3)
    replace_policy(path, P_FAULTS + "# a comment: a new generation, same meaning\n")
    time.sleep(1.5)
    s.sendall(b"/x HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5)
    got = s.recv(100)
    s.close()
    check(got.startswith(b"HTTP/1.1 200"),
          "a reload that still allows passthrough keeps the pipe (%r)" % got[:40])
    check(sc.stop() == 0, "passthrough sidecar exits 0")


def test_authority(tmp, be, up):
    """A rule on host reads the authority the app routes on; a differing Host is refused."""
    sc = Sidecar(tmp, BASE + 10, up, BASE + 12, name="sidecar-host",
                 extra=["--policy", write_policy(tmp, "host", P_HOST)])
    port = BASE + 10
    cases = [
        (":authority admin, no host", hdrs(authority=b"admin.internal"), "7"),
        ("host admin, no :authority", hdrs(host=b"admin.internal"), "7"),
        (":authority ok + host admin", hdrs(authority=b"ok", host=b"admin.internal"), "12"),
        (":authority admin + host ok", hdrs(authority=b"admin.internal", host=b"ok"), "12"),
        (":authority ok + host ok + host admin",
         hdrs(authority=b"ok", host=b"ok", extra=[(b"host", b"admin")]), "12"),
    ]
    n0 = be.count()
    gated = 0
    for label, hs, want in cases:
        r = raw_call(port, hs)
        # nghttp2 itself resets a request with two host fields; either way it is refused.
        check(r["grpc_status"] == want or (want == "12" and r["reset"] is not None),
              "host rule, %s: grpc-status %s (%s)" % (label, want, r))
        gated += r["grpc_status"] == "12"
    check(be.count() == n0, "none of them reached the app (%s)" % be.since(n0))
    r = raw_call(port, hdrs(authority=b"ok.internal", host=b"ok.internal"))
    check(r["grpc_status"] == "0" and be.count() == n0 + 1,
          "a host equal to :authority, not admin, is allowed (%s)" % r)
    m = sc.metrics()
    check(gated >= 2 and metric(m, "grpcguard_requests_refused_total", reason="authority") == gated,
          "grpcguard_requests_refused_total{reason=authority} = %d" % gated)
    # Vectors that hold: nghttp2 refuses what the policy would read differently.
    n0 = be.count()
    for label, hs in [
            ("uppercase name X-Tenant", hdrs(b"/demo.Echo/Red", b"x", extra=[(b"X-Tenant", b"red")])),
            ("value 'red ' (trailing space)", hdrs(b"/demo.Echo/Red", b"x", extra=[(b"x-tenant", b"red ")])),
            ("value ' red' (leading space)", hdrs(b"/demo.Echo/Red", b"x", extra=[(b"x-tenant", b" red")])),
            ("value with NUL", hdrs(b"/demo.Echo/Red", b"x", extra=[(b"x-tenant", b"red\x00")])),
            ("pseudo-header after a regular one",
             [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
              (b"x-a", b"1"), (b":path", b"/demo.Echo/Red")])]:
        r = raw_call(port, hs)
        check(r["reset"] is not None or r["grpc_status"] in ("7", "12"),
              "%s: refused (%s)" % (label, r))
    check(be.count() == n0, "none reached the app (%s)" % be.since(n0))

    # A header block split over HEADERS + CONTINUATION frames is judged whole.
    n0 = be.count()
    r = raw_call(port, hdrs(b"/demo.Echo/Red", b"x",
                            extra=[(b"x-pad", b"p" * 20000), (b"x-tenant", b"red")]))
    check(r["grpc_status"] == "7" and be.count() == n0,
          "x-tenant: red after 20 kB of padding (CONTINUATION frames): denied (%s)" % r)

    def trailer_path(c):
        c.send_headers(1, hdrs(b"/demo.Echo/Hello", b"x"))
        c.send_data(1, EMPTY_MSG)
        c.send_headers(1, [(b":path", b"/demo.Echo/Red")], end_stream=True)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    r = h2_exchange(s, trailer_path)
    s.close()
    check(r["reset"] is not None and r["grpc_status"] != "0",
          ":path in the request trailers: the stream is reset (%s)" % r)
    check(sc.stop() == 0, "host sidecar exits 0")


def test_allow_list_and_families(tmp, be, up):
    sc = Sidecar(tmp, BASE + 20, up, BASE + 22, name="sidecar-allow",
                 extra=["--policy", write_policy(tmp, "allow", P_ALLOW)])
    n0 = be.count()
    for p, want in [(b"/demo.Echo/Hello", "0"), (b"/demo.Echo/Secret", "7"),
                    (b"/grpc.health.v1.Health/Check", "0"),
                    (b"/grpc.health.v1.HealthX/Check", "7"),
                    (b"/grpc.health.v1.Health.Evil/Check", "7"),
                    (b"/grpc.health.v1/Health", "7"),
                    (b"/grpc.health.v1.Health/../demo.Echo/Secret", "12")]:
        r = raw_call(BASE + 20, hdrs(p, b"x"))
        check(r["grpc_status"] == want, "ALLOW only Hello: %s -> %s (%s)" % (p.decode(), want, r))
    check(be.count() == n0 + 2, "only Hello and the real health check reached the app")
    check(sc.stop() == 0, "allow-list sidecar exits 0")

    # An IPv4 client of a dual-stack listener shows up as ::ffff:127.0.0.1.
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::", 0))
        probe.close()
    except OSError:
        log("no IPv6 here: dual-stack check skipped")
        return
    sc = Sidecar(tmp, BASE + 30, up, BASE + 32, name="sidecar-v6", wait=False,
                 extra=["--listen", "[::]:%d" % (BASE + 33),
                        "--policy", write_policy(tmp, "v6", P_NOLOCAL)])
    if not sc.wait_admin(10):
        raise Failure("v6 sidecar admin did not start: " + sc.log_text())
    end = time.monotonic() + 5
    for fam, addr in [(socket.AF_INET6, "::ffff:127.0.0.1"), (socket.AF_INET, "127.0.0.1")]:
        while True:
            s = socket.socket(fam)
            s.settimeout(3)
            try:
                s.connect((addr, BASE + 33))
                break
            except OSError:
                s.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        n0 = be.count()
        # x-forwarded-for does not change the peer ipBlocks sees.
        r = h2_exchange(s, lambda c: c.send_headers(
            1, hdrs(authority=b"x", extra=[(b"x-forwarded-for", b"10.1.2.3")]), end_stream=True))
        s.close()
        check(r["grpc_status"] == "7" and be.count() == n0,
              "dual-stack listener, peer %s (x-forwarded-for 10.1.2.3): ipBlocks 127.0.0.1/32 "
              "DENY applies (%s)" % (addr, r))
    check(sc.stop() == 0, "v6 sidecar exits 0")


P_HELD = HEAD + """faults:
  - name: hold
    match: {methods: ["/demo.Echo/*"]}
    delay: {fixed: 2s, percent: 100}
"""
P_HELD_DENY = P_HELD + """authorization:
  - name: no-held
    action: DENY
    rules: [{to: [{methods: ["/demo.Echo/Held"]}]}]
"""


def test_held_reload(tmp, be, up):
    """A request held by a delay is judged again at release when the policy changed."""
    path = write_policy(tmp, "held", P_HELD)
    sc = Sidecar(tmp, BASE + 40, up, BASE + 42, name="sidecar-held", extra=["--policy", path])

    def held_call(new_policy):
        res = {}
        t = threading.Thread(target=lambda: res.update(
            raw_call(BASE + 40, hdrs(b"/demo.Echo/Held", b"x"), timeout=8)))
        gen = gen_of(sc)
        n0 = be.count()
        t.start()
        end = time.monotonic() + 5
        while metric(sc.metrics(), "grpcguard_sidecar_delayed_streams") < 1:
            if time.monotonic() > end:
                raise Failure("the request was not held")
            time.sleep(0.02)
        replace_policy(path, new_policy)
        end = time.monotonic() + 5
        while gen_of(sc) == gen and time.monotonic() < end:
            time.sleep(0.02)
        check(gen_of(sc) > gen, "the reload happened while the request was held")
        t.join(10)
        return res, be.since(n0)

    r, got = held_call(P_HELD_DENY)
    check(r.get("grpc_status") == "7" and not got,
          "held by a delay, then a reload to DENY: denied at release, nothing reached the "
          "app (%s, %s)" % (r, got))
    check(metric(sc.metrics(), "grpcguard_authz_denied_total", policy="no-held") == 1,
          "counted in grpcguard_authz_denied_total{policy=no-held}")
    gen = gen_of(sc)
    replace_policy(path, P_HELD)
    end = time.monotonic() + 5
    while gen_of(sc) == gen and time.monotonic() < end:
        time.sleep(0.02)
    r, got = held_call(P_HELD + "# same meaning, new generation\n")
    check(r.get("grpc_status") == "0" and len(got) == 1,
          "held, then a reload that still allows it: forwarded (%s)" % r)
    check(sc.stop() == 0, "held sidecar exits 0")


def gen_of(sc):
    return json.loads(sc.get("/policy")[1]).get("generation", 0)


def test(tmp):
    be = Backend(BASE + 1)
    up = "127.0.0.1:%d" % (BASE + 1)
    try:
        test_passthrough_reload(tmp, be, up)
        test_authority(tmp, be, up)
        test_allow_list_and_families(tmp, be, up)
        test_held_reload(tmp, be, up)
    finally:
        be.stop()
    log("done")


if __name__ == "__main__":
    main(test)
