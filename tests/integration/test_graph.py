"""grpcguard-graph against a REAL Prometheus (Debian's `prometheus` binary, temp config and
storage, loopback port, 1 s scrapes).

What Prometheus scrapes is a STATIC EXPORTER served from this test, not sidecars: it
writes grpcguard_requests_total and grpcguard_request_duration_seconds with the labels
DESIGN.md gives the sidecars (reporter, source_/destination_ workload and namespace,
destination_service, grpc_*; connection_security_policy on one edge), counters growing
at fixed rates, so the expected req/s, error % and p99 are known:

  demo/server's sidecar (reporter=destination):
    demo/client -> demo/server   OK 4/s + UNAVAILABLE 1/s, mutual_tls   (20 %: red)
    unknown     -> demo/server   OK 1/s                                 (a caller with no sidecar)
    other/frontend -> demo/server OK 0.5/s
  other/store's sidecar: other/batch -> other/store OK 1/s
  demo/client's sidecar (reporter=source):
    demo/client -> demo/server   OK 4/s + UNAVAILABLE 1/s + DEADLINE_EXCEEDED 1/s
                                 (must lose to the destination's report: 5 req/s, not 6)
    demo/client -> api.example.com (destination_workload unknown: no sidecar there)
                                 OK 2/s + DEADLINE_EXCEEDED 0.1/s       (4.8 %: orange)

Checks: the edge set and figures of --format text (all namespaces, --namespace demo,
--namespace other), the edge set and colours of --format dot, that --format svg parses
as XML with the node names, that png starts with the PNG magic; and the failures, each
one line on stderr, nothing on stdout, no --out file left: Prometheus unreachable (3),
no answer within --timeout (3), an HTTP error (4), an API error (4), an answer that is
not JSON (4), an answer over the 16 MiB cap (4), an empty namespace (5), bad flags (2).
Prometheus and the exporter are stopped by PID at the end, also on failure.
Ports 33500-33599.
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
import gg_testlib  # noqa: E402
from gg_testlib import (SANITIZE, VALGRIND, check, fail, free_port, program, skip,  # noqa: E402
                        timeout_scale)

GRAPH = program("grpcguard-graph")
PROMETHEUS = shutil.which("prometheus")
if not PROMETHEUS:
    skip("prometheus is not installed (make deps installs Debian's prometheus)")

START = time.time()
BUCKETS = ["0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
           "0.5", "1", "2.5", "5", "10", "30", "+Inf"]
RED, ORANGE, GREEN = "#c62828", "#ef6c00", "#2e7d32"

# (reporter, src ns, src wl, dst ns, dst wl, dst service, {code: req/s}, latency bucket, csp)
SERIES = [
    ("destination", "demo", "client", "demo", "server", "server",
     {"OK": 4.0, "UNAVAILABLE": 1.0}, "0.025", "mutual_tls"),
    ("destination", "unknown", "unknown", "demo", "server", "server",
     {"OK": 1.0}, "0.01", "none"),
    ("destination", "other", "frontend", "demo", "server", "server.demo.svc.cluster.local",
     {"OK": 0.5}, "0.01", "none"),
    ("destination", "other", "batch", "other", "store", "store",
     {"OK": 1.0}, "0.005", "none"),
    ("source", "demo", "client", "demo", "server", "server",
     {"OK": 4.0, "UNAVAILABLE": 1.0, "DEADLINE_EXCEEDED": 1.0}, "0.05", "mutual_tls"),
    ("source", "demo", "client", "unknown", "unknown", "api.example.com",
     {"OK": 2.0, "DEADLINE_EXCEEDED": 0.1}, "0.25", "none"),
]
# (source node, destination node) -> (req/s, error %, p99 upper bound in ms, mTLS, colour)
ALL_EDGES = {
    ("demo/client", "demo/server"): (5.0, 20.0, 25.0, True, RED),
    ("unknown", "demo/server"): (1.0, 0.0, 10.0, False, GREEN),
    ("other/frontend", "demo/server"): (0.5, 0.0, 10.0, False, GREEN),
    ("other/batch", "other/store"): (1.0, 0.0, 5.0, False, GREEN),
    ("demo/client", "api.example.com"): (2.1, 100 * 0.1 / 2.1, 250.0, False, ORANGE),
}
BIG = b'{"status":"success","data":{"resultType":"vector","result":[' + b" " * (17 << 20) + b"]}}"


def exposition():
    """The exporter's /metrics now: counters = rate * seconds since start."""
    t = time.time() - START + 100.0
    out = ["# TYPE grpcguard_requests_total counter",
           "# TYPE grpcguard_request_duration_seconds histogram"]
    for rep, sns, swl, dns, dwl, dsvc, codes, le, csp in SERIES:
        base = ('reporter="%s",source_workload="%s",source_namespace="%s",'
                'destination_workload="%s",destination_namespace="%s",destination_service="%s",'
                'grpc_service="helloworld.Greeter",grpc_method="SayHello"'
                % (rep, swl, sns, dwl, dns, dsvc))
        total = 0.0
        for code, r in codes.items():
            out.append('grpcguard_requests_total{%s,grpc_code="%s",connection_security_policy="%s"} %.3f'
                       % (base, code, csp, r * t))
            total += r * t
        # Every call takes between the bucket below `le` and `le`.
        for b in BUCKETS:
            n = total if float(b) >= float(le) else 0.0
            out.append('grpcguard_request_duration_seconds_bucket{%s,connection_security_policy="%s",le="%s"} %.3f'
                       % (base, csp, b, n))
        out.append('grpcguard_request_duration_seconds_sum{%s,connection_security_policy="%s"} %.3f'
                   % (base, csp, total * float(le)))
        out.append('grpcguard_request_duration_seconds_count{%s,connection_security_policy="%s"} %.3f'
                   % (base, csp, total))
    return ("\n".join(out) + "\n").encode()


class Exporter(BaseHTTPRequestHandler):
    """/metrics for Prometheus; fake Prometheus APIs that fail, for the error cases."""

    def log_message(self, *a):
        pass

    def reply(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        if self.path == "/metrics":
            self.reply(200, exposition(), "text/plain; version=0.0.4")
        else:
            self.reply(404, b"404 page not found\n", "text/plain")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        if self.path == "/slow/api/v1/query":
            time.sleep(4)
            self.reply(200, b'{"status":"success","data":{"resultType":"vector","result":[]}}')
        elif self.path == "/apierr/api/v1/query":
            self.reply(400, b'{"status":"error","errorType":"bad_data",'
                            b'"error":"invalid parameter \\"query\\": 1:1: parse error"}')
        elif self.path == "/garbage/api/v1/query":
            self.reply(200, b"<html>not prometheus</html>", "text/html")
        elif self.path == "/big/api/v1/query":
            self.reply(200, BIG)
        else:
            self.reply(404, b"404 page not found\n", "text/plain")


class Prometheus:
    """The real Prometheus, never under valgrind (it is a Go program, not ours): stopped by
    PID at the end, also when the test fails or is signalled (gg_testlib's cleanup list)."""

    def __init__(self, argv, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.p.pid
        gg_testlib._procs.append(self)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode

    cleanup = stop


def prom_query(base, q):
    data = urllib.parse.urlencode({"query": q}).encode()
    with urllib.request.urlopen(base + "/api/v1/query", data=data, timeout=5) as r:
        return json.load(r)


SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib")


def graph(*args):
    """Run grpcguard-graph: (rc, stdout, stderr). Under the sanitizers and valgrind, the
    few process-lifetime allocations of Graphviz and fontconfig are suppressed by name
    (tests/lib/graphviz.*.supp); everything else still counts."""
    argv = [GRAPH] + list(args)
    env = dict(os.environ)
    if SANITIZE:
        env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % os.path.join(
            SUPP, "graphviz.lsan.supp")
        # Graphviz is built without frame pointers: unwind fully so a leak's stack shows
        # the function the suppression names.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "fast_unwind_on_malloc=0"]))
    if VALGRIND:
        argv = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect",
                "--suppressions=" + os.path.join(SUPP, "graphviz.valgrind.supp")] + argv
    r = subprocess.run(argv, capture_output=True, env=env, timeout=60 * timeout_scale())
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


EDGE_LINE = re.compile(r"^(\S+) -> (\S+)  ([0-9.]+) req/s  ([0-9.]+)% errors  p99 (-|[0-9.]+ ms)(  mTLS)?$")


def text_edges(out):
    """{(src, dst): (req/s, err %, p99 ms or None, mtls)} from --format text, in order."""
    edges, order = {}, []
    for line in out.splitlines():
        m = EDGE_LINE.match(line)
        check(m, "text line has the documented form: %r" % line)
        p99 = None if m.group(5) == "-" else float(m.group(5).split()[0])
        edges[(m.group(1), m.group(2))] = (float(m.group(3)), float(m.group(4)), p99,
                                           bool(m.group(6)))
        order.append((m.group(1), m.group(2)))
    check(order == sorted(order), "text edges are in a stable (sorted) order: %s" % order)
    return edges


def check_figures(edges, expected, what):
    check(set(edges) == set(expected), "%s: edge set %s, expected %s"
          % (what, sorted(edges), sorted(expected)))
    for k, (rps, err, p99_max, mtls, _) in expected.items():
        g_rps, g_err, g_p99, g_mtls = edges[k]
        check(abs(g_rps - rps) <= 0.2 * rps, "%s %s: %.2f req/s, expected %.2f" % (what, k, g_rps, rps))
        check(abs(g_err - err) <= 2.0 + 0.2 * err, "%s %s: %.1f%% errors, expected %.1f" % (what, k, g_err, err))
        check(g_p99 is not None and p99_max / 2.5 <= g_p99 <= p99_max + 0.01,
              "%s %s: p99 %s ms, expected in (%.1f, %.1f]" % (what, k, g_p99, p99_max / 2.5, p99_max))
        check(g_mtls == mtls, "%s %s: mTLS %s, expected %s" % (what, k, g_mtls, mtls))


DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "charts",
                         "grpcguard", "dashboards", "grpcguard.json")


def grafana_expr(expr):
    """A dashboard expression as Grafana would send it here: all namespaces, 10 s ranges."""
    for var, val in (("$namespace", ".*"), ("$__range", "10s"), ("$__rate_interval", "10s")):
        expr = expr.replace(var, val)
    return expr


def check_dashboard(base):
    """The chart's node-graph panel, asked of the same Prometheus, gives the same edges
    (ids "src -> dst", req/s and error %); the outgoing-duration panel gives the caller's
    p50/p90/p99 per destination host."""
    with open(DASHBOARD) as f:
        panels = json.load(f)["panels"]
    ng = [p for p in panels if p["type"] == "nodeGraph"]
    check(len(ng) == 1, "dashboard: one nodeGraph panel")
    t = {x["refId"]: x for x in ng[0]["targets"]}
    check(set(t) == {"edges", "errors"} and all(x["instant"] and x["format"] == "table"
                                                 for x in t.values()),
          "dashboard node graph: instant table queries 'edges' and 'errors'")
    got = {}
    for ref in ("edges", "errors"):
        r = prom_query(base, grafana_expr(t[ref]["expr"]))
        check(r["status"] == "success", "dashboard %s query runs: %s" % (ref, json.dumps(r)[:300]))
        for s in r["data"]["result"]:
            m = s["metric"]
            check(m["id"] == "%s -> %s" % (m["source"], m["target"]), "dashboard id: %s" % m)
            got.setdefault((m["source"], m["target"]), {})[ref] = float(s["value"][1])
    check(set(got) == set(ALL_EDGES), "dashboard node graph edges %s" % sorted(got))
    for k, (rps, err, _, _, _) in ALL_EDGES.items():
        check(abs(got[k]["edges"] - rps) <= 0.2 * rps and abs(got[k]["errors"] - err) <= 2 + 0.2 * err,
              "dashboard %s: %.2f req/s %.1f%% errors, expected %.2f and %.1f"
              % (k, got[k]["edges"], got[k]["errors"], rps, err))
    od = [p for p in panels if p["title"] == "Outgoing request duration"]
    check(len(od) == 1 and len(od[0]["targets"]) == 3, "dashboard: Outgoing request duration p50/p90/p99")
    r = prom_query(base, grafana_expr(od[0]["targets"][2]["expr"]))
    p99 = {s["metric"]["destination_service"]: float(s["value"][1]) for s in r["data"]["result"]}
    check(set(p99) == {"server", "api.example.com"} and 0.025 < p99["server"] <= 0.05
          and 0.1 < p99["api.example.com"] <= 0.25,
          "dashboard outgoing p99 by destination_service (caller side): %s" % p99)
    print("ok   dashboard: node graph edges and figures, outgoing p99 per destination (real Prometheus)")


def one_line_failure(args, code, needle, what, out_file=None):
    rc, out, err = graph(*args)
    lines = [l for l in err.splitlines() if l.strip()]
    check(rc == code, "%s: exit %d (expected %d); stderr: %s" % (what, rc, code, err.strip()))
    check(len(lines) == 1, "%s: exactly one line on stderr, got %d: %s" % (what, len(lines), err))
    check(out == "", "%s: nothing on stdout" % what)
    check(needle.lower() in lines[0].lower(), "%s: the line says %r: %s" % (what, needle, lines[0]))
    if lines[0].startswith("{"):
        ev = json.loads(lines[0])
        check(ev.get("level") == "error" and ev.get("comp") == "graph" and ev.get("msg"),
              "%s: a JSON log line with level, comp and msg: %s" % (what, lines[0]))
    if out_file:
        check(not os.path.exists(out_file), "%s: no --out file left behind" % what)
    print("ok   %s: exit %d, %s" % (what, rc, lines[0][:200]))


def main():
    tmp = tempfile.mkdtemp(prefix="gg-graph-")
    exporter = None
    try:
        exp_port = free_port(33500, 33549)
        exporter = ThreadingHTTPServer(("127.0.0.1", exp_port), Exporter)
        exporter.daemon_threads = True
        threading.Thread(target=exporter.serve_forever, daemon=True).start()

        prom_port = free_port(33550, 33599)
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: grpcguard-static-exporter\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % exp_port)
        prom = Prometheus([PROMETHEUS, "--config.file=" + cfg,
                           "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                           "--web.listen-address=127.0.0.1:%d" % prom_port,
                           "--log.level=warn"], os.path.join(tmp, "prometheus.log"))
        base = "http://127.0.0.1:%d" % prom_port
        deadline = time.monotonic() + 30
        ready = False
        while time.monotonic() < deadline and not ready:
            if prom.p.poll() is not None:
                skip("prometheus could not start here (exit %s): %s"
                     % (prom.p.returncode, prom.log_text().strip().splitlines()[-1:]))
            try:
                with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                    ready = r.status == 200
            except OSError:
                time.sleep(0.2)
        if not ready:
            skip("prometheus did not become ready within 30 s: %s" % prom.log_text()[-500:])
        print("ok   prometheus (pid %d) ready on %s" % (prom.pid, base))

        # Wait until every series has at least 12 samples in the last 15 s, so a 10 s
        # window holds 10 scrapes.
        deadline = time.monotonic() + 60
        while True:
            r = prom_query(base, "min(count_over_time(grpcguard_requests_total[15s])) >= 12 "
                                 "and count(grpcguard_requests_total) == %d"
                           % sum(len(s[6]) for s in SERIES))
            if r["data"]["result"]:
                break
            if time.monotonic() > deadline:
                fail("prometheus never had 12 s of the exporter's series: %s" % json.dumps(r)[:500])
            time.sleep(0.5)
        print("ok   prometheus holds 12+ s of the exporter's series")

        common = ["--prometheus", base + "/", "--window", "10s"]

        # --format text, all namespaces and each namespace.
        rc, out, err = graph(*common, "--format", "text")
        check(rc == 0, "text: exit 0 (got %d): %s" % (rc, err))
        print(out, end="")
        check_figures(text_edges(out), ALL_EDGES, "text")
        check(json.loads(err.splitlines()[-1]).get("event") == "graph_written",
              "text: a graph_written log line on stderr")
        demo = {k: v for k, v in ALL_EDGES.items() if k != ("other/batch", "other/store")}
        rc, out, err = graph(*common, "--namespace", "demo", "--format", "text")
        check(rc == 0, "text --namespace demo: exit 0 (got %d): %s" % (rc, err))
        check_figures(text_edges(out), demo, "text --namespace demo")
        other = {k: v for k, v in ALL_EDGES.items() if k[0].startswith("other/")}
        rc, out, err = graph(*common, "--namespace", "other", "--format", "text")
        check(rc == 0, "text --namespace other: exit 0 (got %d): %s" % (rc, err))
        check_figures(text_edges(out), other, "text --namespace other")
        print("ok   text: edge sets and figures, all namespaces, demo, other")

        # --format dot: the same edges, coloured by error rate; mTLS edges doubled.
        rc, out, err = graph(*common, "--format", "dot")
        check(rc == 0 and out.lstrip().startswith("digraph"), "dot: exit 0 and a digraph: %s" % err)
        ident = r'("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.]+)'
        dot_edges = {}
        for m in re.finditer(ident + r"\s*->\s*" + ident + r"\s*\[([^\]]*)\]", out, re.S):
            a, b = (x.strip('"') for x in (m.group(1), m.group(2)))
            dot_edges[(a, b)] = m.group(3)
        check(set(dot_edges) == set(ALL_EDGES), "dot: edge set %s" % sorted(dot_edges))
        for k, (_, _, _, mtls, colour) in ALL_EDGES.items():
            want = ("%s:invis:%s" % (colour, colour)) if mtls else colour
            check('color="%s"' % want in dot_edges[k], "dot %s: color=%s in [%s]" % (k, want, dot_edges[k]))
        print("ok   dot: edge set, colours (red/orange/green) and the mTLS double line")

        # --format svg --out: well-formed XML naming every node and edge.
        svg = os.path.join(tmp, "graph.svg")
        rc, out, err = graph(*common, "--format", "svg", "--out", svg)
        check(rc == 0 and out == "", "svg --out: exit 0, nothing on stdout: %s" % err)
        root = ET.parse(svg).getroot()
        ns = "{http://www.w3.org/2000/svg}"
        check(root.tag == ns + "svg", "svg: the root element is <svg>")
        titles = {}
        for g in root.iter(ns + "g"):
            t = g.find(ns + "title")
            if t is not None and g.get("class") in ("node", "edge"):
                titles.setdefault(g.get("class"), set()).add(t.text)
        nodes = {n for k in ALL_EDGES for n in k}
        check(titles.get("node") == nodes, "svg: node titles %s" % sorted(titles.get("node", ())))
        check(titles.get("edge") == {"%s->%s" % k for k in ALL_EDGES},
              "svg: edge titles %s" % sorted(titles.get("edge", ())))
        check(not [f for f in os.listdir(tmp) if f.startswith("graph.svg.")],
              "svg --out: no temporary file left")
        print("ok   svg: parses as XML with every node and edge")

        # --format png, to a file and to stdout.
        png = os.path.join(tmp, "graph.png")
        rc, out, err = graph(*common, "--format", "png", "--out", png)
        check(rc == 0, "png --out: exit 0: %s" % err)
        with open(png, "rb") as f:
            head = f.read(24)
        check(head[:8] == b"\x89PNG\r\n\x1a\n", "png: starts with the PNG magic")
        w, h = struct.unpack(">II", head[16:24])
        check(w > 100 and h > 100, "png: a real picture (%dx%d)" % (w, h))
        print("ok   png: PNG magic, %dx%d" % (w, h))
        keep = os.environ.get("GG_GRAPH_KEEP")  # a directory to keep the pictures in
        if keep:
            os.makedirs(keep, exist_ok=True)
            for f in (svg, png):
                shutil.copy(f, keep)

        check_dashboard(base)

        # Failures: one line each, nothing on stdout, no --out file left.
        closed = free_port(33500, 33549)
        outf = os.path.join(tmp, "fail.svg")
        one_line_failure(["--prometheus", "http://127.0.0.1:%d" % closed, "--format", "svg",
                          "--out", outf], 3, "cannot reach Prometheus", "unreachable", outf)
        one_line_failure(["--prometheus", "http://127.0.0.1:%d/slow" % exp_port, "--timeout", "1s",
                          "--format", "text"], 3, "timed out", "no answer within --timeout")
        one_line_failure(["--prometheus", base + "/no/such/prefix", "--format", "text"], 4,
                         "HTTP 404", "HTTP error from the real Prometheus")
        one_line_failure(["--prometheus", "http://127.0.0.1:%d/apierr" % exp_port, "--format", "text"],
                         4, "bad_data", "API error")
        one_line_failure(["--prometheus", "http://127.0.0.1:%d/garbage" % exp_port, "--format", "text"],
                         4, "not JSON", "not a Prometheus answer")
        one_line_failure(["--prometheus", "http://127.0.0.1:%d/big" % exp_port, "--format", "text"],
                         4, "larger than", "an answer over the body cap")
        one_line_failure(common + ["--namespace", "nosuchns", "--format", "png", "--out", outf], 5,
                         "no gRPC calls", "empty namespace", outf)
        one_line_failure(common + ["--format", "jpeg"], 2, "expected svg, png, dot or text", "bad --format")
        one_line_failure(common + ["--format", "text", "--window", "5 m"], 2, "--window", "bad --window")
        one_line_failure(common + ["--format", "text", "--namespace", 'a"} or vector(1) or {'], 2,
                         "--namespace", "namespace that would inject PromQL")
        one_line_failure(["--prometheus", "file:///etc/passwd", "--format", "text"], 2,
                         "--prometheus", "non-HTTP URL")
        one_line_failure(["--format", "text"], 2, "required", "no --prometheus")
        check(prom.p.poll() is None, "prometheus still running")
        rc = prom.stop()
        check(rc == 0, "prometheus stopped by PID (SIGTERM), exit %s" % rc)
        print("ok   prometheus stopped by PID (exit 0)")
    finally:
        if exporter:
            exporter.shutdown()
            exporter.server_close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")


if __name__ == "__main__":
    main()
