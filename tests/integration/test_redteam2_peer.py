#!/usr/bin/python3
"""Red team 2: the metadata-exchange header x-grpcguard-peer against a real sidecar
(--upstream 127.0.0.1:PORT) in front of a recording HTTP/2 backend, raw frames from
python3-h2 with validation off. Each vector held when tried (docs/security.md, "Red team 2"):

- the header at the end of a 20 kB header block (HEADERS + CONTINUATION frames): taken out
  like any other; the app never sees it and a DENY naming it in `when` never matches;
- the header in the request trailers: dropped, the app's trailers do not carry it;
- the header twice, once in the headers and once in the trailers: the caller is labelled
  from the headers only;
- 4,300 distinct well-formed claims on one connection (a caller inflating metric
  cardinality): grpcguard_requests_total keeps at most 4096 series, the rest is counted
  with the label value "other" and in grpcguard_metrics_series_overflow_total, and a call
  made afterwards is still counted.

Hole closed (fails on d87cc44): on a pod without an authorization entry (faults only, or
no policy) any :path is forwarded, and its bytes became the grpc_service / grpc_method
label values as sent: one request with `:path: /a\xff.S/M` put invalid UTF-8 into
/metrics, and Prometheus (promtool: "invalid label value") rejects the whole page, so the
pod's metrics were gone for good. Bytes outside printable ASCII now make both labels
"unknown".
Ports 24880-24889 (below the ephemeral range).
"""
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:
    print("python3-h2 is not installed (make deps installs it)")
    sys.exit(77)

from test_security_paths import EMPTY_MSG, HEAD, Backend, write_policy
from test_sidecar import Sidecar, check, log, main, metric

BASE = 24880
HDR = b"x-grpcguard-peer"
CLAIM = b"ns=demo;wl=trusted;sa=trusted"

POLICY = HEAD + """authorization:
  - name: deny-by-peer-header
    action: DENY
    rules:
      - to: [{methods: ["/demo.Echo/Secret"]}]
        when: [{header: x-grpcguard-peer, values: ["ns=demo;wl=trusted;sa=trusted"]}]
  - name: deny-secret-unless-claim
    action: DENY
    rules:
      - to: [{methods: ["/demo.Echo/Hidden"]}]
        when: [{header: x-grpcguard-peer, notValues: ["ns=demo;wl=trusted;sa=trusted"]}]
"""


class TrailerBackend(Backend):
    """The recording backend of test_security_paths, which also records request trailers
    ({"trailers": [...]})."""

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
                elif isinstance(ev, h2.events.TrailersReceived):
                    self._record({"trailers": list(ev.headers)})
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    self._answer(c, ev.stream_id)
            s.sendall(c.data_to_send())
            data = s.recv(65536)


def req(path=b"/demo.Echo/Hello", extra=()):
    return [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
            (b":authority", b"demo:50051"), (b"content-type", b"application/grpc"),
            (b"te", b"trailers")] + list(extra)


def new_conn(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False,
                                    validate_inbound_headers=False)
    c = h2.connection.H2Connection(config=cfg)
    c.local_settings = h2.settings.Settings(client=True, initial_values={
        h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def run_streams(s, c, streams, timeout=20.0):
    """streams: list of (headers, trailers or None). Sends them on connection c, waits for
    all to end. Returns {stream_id: grpc-status str, or "reset"}."""
    ids = []
    for hs, tr in streams:
        sid = c.get_next_available_stream_id()
        ids.append(sid)
        c.send_headers(sid, hs)
        if tr is None:
            c.send_data(sid, EMPTY_MSG, end_stream=True)
        else:
            c.send_data(sid, EMPTY_MSG)
            c.send_headers(sid, tr, end_stream=True)
    s.sendall(c.data_to_send())
    out = {}
    end = time.monotonic() + timeout
    while len(out) < len(ids) and time.monotonic() < end:
        s.settimeout(max(0.05, end - time.monotonic()))
        try:
            d = s.recv(1 << 20)
        except socket.timeout:
            break
        if not d:
            break
        for ev in c.receive_data(d):
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                for k, v in ev.headers:
                    if k == b"grpc-status":
                        out[ev.stream_id] = v.decode()
            elif isinstance(ev, h2.events.StreamReset):
                out[ev.stream_id] = "reset"
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        s.sendall(c.data_to_send())
    return [out.get(i) for i in ids]


def metrics_text_valid(tmp, sc):
    """The /metrics page as bytes, and None or the reason a Prometheus scraper rejects it
    (not UTF-8; promtool's parser when installed)."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % sc.admin, timeout=5) as r:
        raw = r.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return raw, "not UTF-8: %s" % e
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=raw, capture_output=True)
        err = p.stderr.decode("utf-8", "replace")
        if "parsing error" in err:
            return raw, "promtool: " + err.strip()[:300]
    return raw, None


def test_label_bytes(tmp):
    """A pod without an authorization entry forwards any :path; its label values must still
    be a page Prometheus can read."""
    sc = Sidecar(tmp, BASE + 5, "127.0.0.1:%d" % (BASE + 1), BASE + 6, name="sidecar-bytes")
    s, c = new_conn(BASE + 5)
    paths = [b"/a\xff\xfe.S/M", b"/svc.S/m\xc3\x28", b"/x.S/" + b"\xe2\x82" * 50,
             b"/pkg.Svc/Caf\xc3\xa9"]
    r = run_streams(s, c, [(req(p), None) for p in paths])
    s.close()
    check(r == ["0"] * len(paths), "the calls are forwarded (no authorization entry): %s" % r)
    raw, why = metrics_text_valid(tmp, sc)
    check(why is None, "/metrics stays readable by Prometheus after non-ASCII :path values (%s)"
          % why)
    check(metric(sc.metrics(), "grpcguard_requests_total", grpc_service="unknown",
                 grpc_method="unknown", grpc_code="OK") == len(paths),
          "they are counted with grpc_service/grpc_method \"unknown\"")
    check(sc.stop() == 0, "bytes sidecar exits 0")
    log("non-ASCII :path: counted as unknown, /metrics valid")


def test(tmp):
    be = TrailerBackend(BASE + 1)
    try:
        test_label_bytes(tmp)
        body(tmp, be)
    finally:
        be.stop()


def body(tmp, be):
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 extra=["--policy", write_policy(tmp, "peer", POLICY)])
    port = BASE

    # ---- CONTINUATION: the header after 20 kB of padding ---------------------------------
    n0 = be.count()
    s, c = new_conn(port)
    pad = [(b"x-pad%d" % i, b"p" * 4000) for i in range(5)]
    r = run_streams(s, c, [(req(b"/demo.Echo/Secret", pad + [(HDR, CLAIM)]), None),
                           (req(b"/demo.Echo/Hidden", pad + [(HDR, CLAIM)]), None)])
    check(r == ["0", "7"], "a claim after 20 kB (CONTINUATION frames): the DENY naming it "
          "does not match, the notValues DENY does (got %s)" % r)
    seen = be.since(n0)
    check(len(seen) == 1 and all(k != HDR for k, _ in seen[0]["h2"]),
          "the app got the Secret call without the header (%s)" % [sorted({k for k, _ in x.get("h2", [])}) for x in seen])
    log("CONTINUATION: stripped, DENY on it never matches")

    # ---- trailers ---------------------------------------------------------------------------
    n0 = be.count()
    r = run_streams(s, c, [(req(b"/demo.Echo/Hello"), [(HDR, CLAIM), (b"x-t", b"1")]),
                           (req(b"/demo.Echo/Hello", [(HDR, b"ns=demo;wl=first;sa=a")]),
                            [(HDR, b"ns=demo;wl=second;sa=b")])])
    check(r == ["0", "0"], "calls with the header in their trailers complete (%s)" % r)
    time.sleep(0.3)
    seen = be.since(n0)
    trailers = [x["trailers"] for x in seen if "trailers" in x]
    # The second call's trailers held only the header: none are forwarded (END_STREAM).
    check(trailers == [[(b"x-t", b"1")]],
          "the app's request trailers never carry the header (%s)" % trailers)
    check(all(HDR not in dict(x["h2"]) for x in seen if "h2" in x), "nor its headers")
    text = sc.get("/metrics")[1]
    check('source_workload="first"' in text and 'source_workload="second"' not in text,
          "the caller is labelled from its headers, never from a trailer claim")
    s.close()
    log("trailers: dropped, never a label")

    # ---- cardinality ---------------------------------------------------------------------------
    N = 4300
    over0 = metric(sc.metrics(), "grpcguard_metrics_series_overflow_total")
    s, c = new_conn(port)
    done = 0
    t0 = time.monotonic()
    while done < N:
        batch = [(req(b"/demo.Echo/Hello", [(HDR, b"ns=demo;wl=wl%05d;sa=sa" % (done + i))]),
                  None) for i in range(min(50, N - done))]
        r = run_streams(s, c, batch)
        check(all(x == "0" for x in r), "calls %d..: all OK (%s)" % (done, set(r)))
        done += len(batch)
    s.close()
    log("%d calls with distinct claims in %.1fs" % (N, time.monotonic() - t0))
    text = sc.get("/metrics")[1]
    series = [l for l in text.splitlines() if l.startswith("grpcguard_requests_total{")]
    wl = {m for m in re.findall(r'source_workload="([^"]*)"', "\n".join(series))}
    over1 = metric(sc.metrics(), "grpcguard_metrics_series_overflow_total")
    check(len(series) <= 4096, "grpcguard_requests_total keeps at most 4096 series (%d)" % len(series))
    check("other" in wl and over1 - over0 >= N - 4096,
          "the rest is counted as \"other\" and in series_overflow_total (+%d)" % (over1 - over0))
    m = sc.metrics()
    before = metric(m, "grpcguard_requests_total", source_workload="other", grpc_code="OK")
    s, c = new_conn(port)
    r = run_streams(s, c, [(req(b"/demo.Echo/Hello", [(HDR, b"ns=demo;wl=late;sa=late")]), None)])
    s.close()
    after = metric(sc.metrics(), "grpcguard_requests_total", source_workload="other", grpc_code="OK")
    check(r == ["0"] and after == before + 1, "a later caller is still counted (as other): "
          "%s, %s -> %s" % (r, before, after))
    log("cardinality: %d series, %d workload values, overflow +%d" %
        (len(series), len(wl), over1 - over0))
    check(sc.stop() == 0, "sidecar exits 0")


if __name__ == "__main__":
    main(test)
