#!/usr/bin/python3
"""Issue 14, the request form and the protocol gate: under an authorization policy, the app
never receives a request in a form that names a method the policy did not judge.

A real sidecar (--upstream 127.0.0.1:PORT) in front of a backend that records every request
it receives, HTTP/2 or HTTP/1.x, whatever its form (python3-h2 with validation off, so it
would record what a lenient server such as grpc-go or net/http would run). Policy: DENY
/demo.Echo/Secret, and DENY /demo.Echo/Tenant unless x-tenant is blue.

- raw HTTP/2 (python3-h2, validation off): `:scheme grpc` + `demo.Echo/Secret`, a query, a
  `%53` escape, `//`, a fragment, dot segments, control characters, non-ASCII, `:method GET`:
  the client gets grpc-status 12 (or nghttp2's own stream error), the backend gets nothing,
  grpcguard_requests_refused_total counts them by reason;
- a grpcio client: an allowed method works, the DENY still denies;
- `x-tenant: red` + `x-tenant: blue` as two fields is "red,blue" (Envoy) and is denied;
- curl --http1.1 POST and curl --http2 (h2c upgrade): 403, Connection: close, nothing at the
  backend, grpcguard_connections_refused_total{reason="not_http2"}; TLS-like bytes: closed;
- a faults-only policy keeps the old behaviour: HTTP/1.1 passes through, any HTTP/2 form is
  forwarded; a reload to an authorization policy closes both doors for the next request;
  `passthrough: allow` under an authorization policy passes HTTP/1.1 through;
- /policy shows the effective passthrough mode and the request form; sidecars exit 0.
Ports 33400-33499.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error

import grpc

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:
    print("python3-h2 is not installed (make deps installs it)")
    sys.exit(77)

from test_sidecar import Failure, Sidecar, check, log, main, metric

BASE = 24400  # below the ephemeral range (32768-60999): no client socket holds these
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_MSG = b"\x00\x00\x00\x00\x00"

HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
P_AUTHZ = HEAD + """authorization:
  - name: no-secret
    action: DENY
    rules: [{to: [{methods: ["/demo.Echo/Secret"]}]}]
  - name: blue-only
    action: DENY
    rules:
      - to: [{methods: ["/demo.Echo/Tenant"]}]
        when: [{header: x-tenant, notValues: [blue]}]
"""
P_FAULTS = HEAD + """faults:
  - name: slow-other
    match: {methods: ["/other.Svc/*"]}
    delay: {fixed: 1s, percent: 100}
"""
P_AUTHZ_PASS = P_AUTHZ + "passthrough: allow\n"


class Backend:
    """Records every request that reaches it. HTTP/2 prior knowledge: each request's
    headers as (name, value) bytes, answered with an empty gRPC message and status 0.
    Anything else is read as HTTP/1.x: the request line is recorded, 200 is answered."""

    def __init__(self, port):
        self.reqs = []
        self.lock = threading.Lock()
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(64)
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _record(self, r):
        with self.lock:
            self.reqs.append(r)

    def _serve(self, s):
        s.settimeout(10)
        try:
            first = b""
            while len(first) < len(PREFACE) and PREFACE.startswith(first):
                d = s.recv(4096)
                if not d:
                    return
                first += d
            if first.startswith(PREFACE):
                self._h2(s, first)
            else:
                self._h1(s, first)
        except OSError:
            pass
        finally:
            s.close()

    def _h1(self, s, buf):
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        self._record({"h1": buf.split(b"\r\n", 1)[0]})
        body = b"backend-ok"
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (len(body), body))

    def _h2(self, s, data):
        cfg = h2.config.H2Configuration(client_side=False, header_encoding=None,
                                        validate_inbound_headers=False,
                                        normalize_inbound_headers=False,
                                        validate_outbound_headers=False)
        c = h2.connection.H2Connection(config=cfg)
        c.initiate_connection()
        s.sendall(c.data_to_send())
        while data:
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    self._record({"h2": list(ev.headers)})
                    if ev.stream_ended:
                        self._answer(c, ev.stream_id)
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self._answer(c, ev.stream_id)
            s.sendall(c.data_to_send())
            data = s.recv(65536)

    @staticmethod
    def _answer(c, sid):
        c.send_headers(sid, [(b":status", b"200"), (b"content-type", b"application/grpc")])
        c.send_data(sid, EMPTY_MSG)
        c.send_headers(sid, [(b"grpc-status", b"0")], end_stream=True)

    def count(self):
        with self.lock:
            return len(self.reqs)

    def since(self, n):
        with self.lock:
            return list(self.reqs[n:])

    def stop(self):
        self.stopped = True
        self.ls.close()


def raw_call(port, headers, timeout=3.0):
    """One HTTP/2 request on its own connection, headers sent exactly as given (no
    validation, no normalisation), an empty gRPC message as body. Returns a dict:
    grpc_status (str or None), reset (RST_STREAM code or None), goaway (code or None),
    closed (the server closed the connection)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False,
                                    validate_inbound_headers=False)
    c = h2.connection.H2Connection(config=cfg)
    c.initiate_connection()
    c.send_headers(1, headers)
    c.send_data(1, EMPTY_MSG, end_stream=True)
    s.sendall(c.data_to_send())
    out = {"grpc_status": None, "reset": None, "goaway": None, "closed": False}
    end = time.monotonic() + timeout
    done = False
    try:
        while not done and time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                d = s.recv(65536)
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
                    done |= ev.stream_ended is not None
                elif isinstance(ev, h2.events.StreamEnded):
                    done = True
                elif isinstance(ev, h2.events.StreamReset):
                    out["reset"] = int(ev.error_code)
                    done = True
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    out["goaway"] = int(ev.error_code)
                    done = True
            s.sendall(c.data_to_send())
    except OSError:
        out["closed"] = True
    finally:
        s.close()
    return out


def req(path, method=b"POST", scheme=b"http", extra=()):
    return [(b":method", method), (b":scheme", scheme), (b":path", path),
            (b":authority", b"demo:50051"), (b"content-type", b"application/grpc"),
            (b"te", b"trailers")] + list(extra)


def curl(port, *args):
    """HTTP status code and body of a curl request to the sidecar."""
    r = subprocess.run(["curl", "-sS", "-m", "5", "-o", "-", "-w", "\n%{http_code}"] + list(args)
                       + ["http://127.0.0.1:%d/demo.Echo/Secret" % port],
                       capture_output=True, timeout=15)
    out = r.stdout.decode("utf-8", "replace")
    body, _, code = out.rpartition("\n")
    return code, body


def gate_of(sc):
    """The "gate" object of the sidecar's /policy (the route may be added a moment after
    /healthz answers)."""
    end = time.monotonic() + 5
    while True:
        try:
            return json.loads(sc.get("/policy")[1]).get("gate") or {}
        except urllib.error.HTTPError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def write_policy(tmp, name, text):
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "policy.yaml")
    with open(p, "w") as f:
        f.write(text)
    return p


# Every form that a server or router could run as /demo.Echo/Secret, or that is no gRPC
# request at all. (label, headers, gate reason)
BENT = [
    ("scheme grpc + no leading slash", req(b"demo.Echo/Secret", scheme=b"grpc"), "path"),
    ("query", req(b"/demo.Echo/Secret?x=1"), "path"),
    ("percent escape", req(b"/demo.Echo/%53ecret"), "path"),
    ("percent-escaped dot", req(b"/demo%2EEcho/Secret"), "path"),
    ("double slash", req(b"//demo.Echo/Secret"), "path"),
    ("fragment", req(b"/demo.Echo/Secret#x"), "path"),
    ("dot segments", req(b"/x/../demo.Echo/Secret"), "path"),
    ("trailing slash", req(b"/demo.Echo/Secret/"), "path"),
    ("semicolon parameter", req(b"/demo.Echo/Secret;x"), "path"),
    ("GET", req(b"/demo.Echo/Secret", method=b"GET"), "method"),
    ("scheme grpc", req(b"/demo.Echo/Hello", scheme=b"grpc"), "scheme"),
]
# Forms nghttp2 may already refuse itself (stream or connection error) before the gate.
CONTROL = [
    ("tab", req(b"/demo.Echo/Secret\t")),
    ("DEL", req(b"/demo.Echo/Sec\x7fret")),
    ("control char", req(b"/demo.Echo/Secret\x01")),
    ("space", req(b"/demo.Echo/Secret x")),
    ("non-ASCII", req(b"/demo.Echo/Secr\xc3\xa9t")),
    ("backslash", req(b"/demo.Echo\\Secret")),
]


def test(tmp):
    be = Backend(BASE + 1)
    up = "127.0.0.1:%d" % (BASE + 1)
    sc = Sidecar(tmp, BASE, up, BASE + 2,
                 extra=["--policy", write_policy(tmp, "authz", P_AUTHZ), "--log-level", "debug"])

    gate = gate_of(sc)
    check(gate == {"passthrough": "deny", "passthroughFrom": "default", "requestForm": "strict"},
          "/policy shows the gate: passthrough deny by default, strict request form (%s)" % gate)

    # ---- a well-behaved gRPC client ------------------------------------------------------
    ch = grpc.insecure_channel("127.0.0.1:%d" % BASE)
    hello = ch.unary_unary("/demo.Echo/Hello")
    secret = ch.unary_unary("/demo.Echo/Secret")
    n0 = be.count()
    check(hello(b"", timeout=5) == b"", "grpcio: an allowed method works")
    check(be.count() == n0 + 1, "grpcio: the allowed call reached the backend")
    try:
        secret(b"", timeout=5)
        raise Failure("grpcio: /demo.Echo/Secret was allowed")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.PERMISSION_DENIED, "grpcio: the DENY denies (%s)" % e.code())
    check(be.count() == n0 + 1, "grpcio: the denied call did not reach the backend")

    # ---- bent request forms ----------------------------------------------------------------
    n0 = be.count()
    want = {"path": 0, "method": 0, "scheme": 0}
    for label, hs, reason in BENT:
        r = raw_call(BASE, hs)
        check(r["grpc_status"] == "12" and r["reset"] is None,
              "%s: refused with grpc-status 12 UNIMPLEMENTED (%s)" % (label, r))
        check(be.count() == n0, "%s: nothing reached the backend (%s)" % (label, be.since(n0)))
        want[reason] += 1
    refused_by_gate = 0
    for label, hs in CONTROL:
        r = raw_call(BASE, hs)
        gated = r["grpc_status"] == "12"
        check(gated or r["reset"] is not None or r["goaway"] is not None,
              "%s: refused (%s)" % (label, "grpc-status 12" if gated else "nghttp2: %s" % r))
        check(be.count() == n0, "%s: nothing reached the backend (%s)" % (label, be.since(n0)))
        refused_by_gate += gated
    want["path"] += refused_by_gate
    m = sc.metrics()
    for reason, n in want.items():
        got = metric(m, "grpcguard_requests_refused_total", reason=reason)
        check(got == n, "grpcguard_requests_refused_total{reason=%s} = %d (%g)" % (reason, n, got))
    check(not any(k.startswith("grpcguard_requests_total") and "Secret?" in k for k in m),
          "refused requests add no grpcguard_requests_total series with their raw path")
    r = raw_call(BASE, req(b"/demo.Echo/Hello"))
    check(r["grpc_status"] == "0" and be.count() == n0 + 1,
          "raw HTTP/2 in gRPC form still reaches the backend (%s)" % r)

    # ---- repeated header fields join (Envoy) ---------------------------------------------
    n0 = be.count()
    r = raw_call(BASE, req(b"/demo.Echo/Tenant", extra=[(b"x-tenant", b"blue")]))
    check(r["grpc_status"] == "0" and be.count() == n0 + 1, "x-tenant: blue is allowed (%s)" % r)
    r = raw_call(BASE, req(b"/demo.Echo/Tenant",
                           extra=[(b"x-tenant", b"red"), (b"x-tenant", b"blue")]))
    check(r["grpc_status"] == "7", "x-tenant: red + x-tenant: blue is \"red,blue\": denied (%s)" % r)
    r = raw_call(BASE, req(b"/demo.Echo/Tenant",
                           extra=[(b"x-tenant", b"blue"), (b"x-tenant", b"blue")]))
    check(r["grpc_status"] == "7", "x-tenant: blue twice is \"blue,blue\": denied (%s)" % r)
    check(be.count() == n0 + 1, "the denied repeated-header calls did not reach the backend")

    # ---- not HTTP/2: refused under an authorization policy ---------------------------------
    n0 = be.count()
    code, body = curl(BASE, "--http1.1", "-X", "POST", "--data", "x",
                      "-H", "content-type: application/grpc")
    check(code == "403" and "grpcguard" in body,
          "curl --http1.1 POST: 403 from the sidecar (%s %r)" % (code, body[:80]))
    code, body = curl(BASE, "--http2")
    check(code == "403", "curl --http2 (h2c upgrade): 403 (%s %r)" % (code, body[:80]))
    s = socket.create_connection(("127.0.0.1", BASE), timeout=5)
    s.sendall(b"\x16\x03\x01\x00\x2a" + b"\x01" * 42)  # a TLS record header and junk
    try:
        got = s.recv(100)
    except OSError:
        got = b""
    s.close()
    check(got == b"", "TLS-like bytes: closed without an answer (%r)" % got[:20])
    # A client that reads the 403 but never closes: our side is gone within the linger.
    conns = metric(sc.metrics(), "grpcguard_sidecar_active_connections")  # the grpcio one
    s = socket.create_connection(("127.0.0.1", BASE), timeout=5)
    s.sendall(b"GET /demo.Echo/Secret HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    check(got.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"Connection: close" in got,
          "raw HTTP/1.1: 403 with Connection: close, then EOF")
    check(metric(sc.metrics(), "grpcguard_sidecar_active_connections") == conns + 1,
          "the refused connection lingers while the client keeps it open")
    end = time.monotonic() + 5
    while (time.monotonic() < end and
           metric(sc.metrics(), "grpcguard_sidecar_active_connections") > conns):
        time.sleep(0.1)
    check(metric(sc.metrics(), "grpcguard_sidecar_active_connections") == conns,
          "...and is closed after the linger (2 s)")
    s.close()
    time.sleep(0.2)
    check(be.count() == n0, "nothing reached the backend (%s)" % be.since(n0))
    m = sc.metrics()
    check(metric(m, "grpcguard_connections_refused_total", reason="not_http2") == 4,
          "grpcguard_connections_refused_total{reason=not_http2} = 4")
    check(metric(m, "grpcguard_sidecar_passthrough_connections_total") == 0,
          "no connection was passed through")
    check('"event":"connection_refused"' in sc.log_text(), "the refusal is logged")
    check(hello(b"", timeout=5) == b"", "gRPC still works after the refusals")
    ch.close()
    check(sc.stop() == 0, "authz sidecar exits 0")

    # ---- faults only: passthrough and any form, as before ----------------------------------
    faults_path = write_policy(tmp, "faults", P_FAULTS)
    sc2 = Sidecar(tmp, BASE + 10, up, BASE + 12, name="sidecar-faults",
                  extra=["--policy", faults_path])
    gate = gate_of(sc2)
    check(gate == {"passthrough": "allow", "passthroughFrom": "default", "requestForm": "any"},
          "faults-only /policy: passthrough allow, any request form (%s)" % gate)
    n0 = be.count()
    code, body = curl(BASE + 10, "--http1.1", "-X", "POST", "--data", "x")
    check(code == "200" and body == "backend-ok",
          "faults only: HTTP/1.1 passes through to the app (%s %r)" % (code, body[:80]))
    r = raw_call(BASE + 10, req(b"/demo.Echo/Secret?x=1"))
    check(r["grpc_status"] == "0", "faults only: any HTTP/2 form is forwarded (%s)" % r)
    check(be.count() == n0 + 2, "faults only: both reached the backend (%s)" % be.since(n0))
    check(metric(sc2.metrics(), "grpcguard_sidecar_passthrough_connections_total") == 1,
          "faults only: the passthrough is counted")
    # A reload that adds an authorization entry closes the door for the next connection.
    with open(faults_path + ".new", "w") as f:
        f.write(P_AUTHZ)
    os.rename(faults_path + ".new", faults_path)
    end = time.monotonic() + 10
    while gate_of(sc2).get("passthrough") != "deny" and time.monotonic() < end:
        time.sleep(0.1)
    n0 = be.count()
    code, body = curl(BASE + 10, "--http1.1", "-X", "POST", "--data", "x")
    check(code == "403" and be.count() == n0,
          "after a reload to an authorization policy: HTTP/1.1 refused (%s)" % code)
    r = raw_call(BASE + 10, req(b"/demo.Echo/Secret?x=1"))
    check(r["grpc_status"] == "12" and be.count() == n0,
          "after the reload: bent forms refused (%s)" % r)
    check(sc2.stop() == 0, "faults-only sidecar exits 0")

    # ---- passthrough: allow, explicitly, under an authorization policy --------------------
    sc3 = Sidecar(tmp, BASE + 20, up, BASE + 22, name="sidecar-allow",
                  extra=["--policy", write_policy(tmp, "allow", P_AUTHZ_PASS)])
    gate = gate_of(sc3)
    check(gate == {"passthrough": "allow", "passthroughFrom": "policy", "requestForm": "strict"},
          "passthrough: allow in /policy (%s)" % gate)
    n0 = be.count()
    code, body = curl(BASE + 20, "--http1.1", "-X", "POST", "--data", "x")
    check(code == "200" and body == "backend-ok",
          "passthrough: allow: HTTP/1.1 passes through (%s %r)" % (code, body[:80]))
    r = raw_call(BASE + 20, req(b"/demo.Echo/Secret?x=1"))
    check(r["grpc_status"] == "12", "passthrough: allow keeps the strict HTTP/2 form (%s)" % r)
    check(be.count() == n0 + 1, "only the HTTP/1.1 request reached the backend")
    check(sc3.stop() == 0, "passthrough-allow sidecar exits 0")
    be.stop()
    log("done")


if __name__ == "__main__":
    main(test)
