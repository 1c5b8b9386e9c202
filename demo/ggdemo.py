#!/usr/bin/python3
"""Small formatting helpers for demo/demo.sh: they turn what the real programs answered into
the few lines a person reads. They never invent a result: every line is derived from the
webhook's AdmissionReview responses or the sidecar's /metrics and /policy output.

    ggdemo.py verdict RESPONSE.json
    ggdemo.py patch-summary REVIEW.json RESPONSE.json [--reinvoke OUT.json]
    ggdemo.py metrics-table METRICS.txt [--reporter source|destination]
    ggdemo.py prom-value PROMETHEUS_URL QUERY
    ggdemo.py client-view PROMETHEUS_URL SINCE_EPOCH_S DEADLINE_S MIN_CALLS WAIT_S
    ggdemo.py policy-field POLICY.json FIELD
    ggdemo.py configmap-policy REVIEW.json
    ggdemo.py log-delay LOG EVENT SINCE_EPOCH_MS
    ggdemo.py principals METRICS.txt METHOD
    ggdemo.py tokenreview --listen HOST:PORT --cert C --key K --tokens TOKENS.json --caller-token F

`tokenreview` is the demo's one STAND-IN: no kube-apiserver runs here, so it answers the
webhook's TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews, over HTTPS) for the
tokens the demo minted ({"<token>": "system:serviceaccount:<ns>:<sa>"}), and only when the
caller presents the webhook's own ServiceAccount token. Everything else on the identity path
(the webhook's /v1/certify, the CA, the sidecars' TLS) is the real product.
"""
import base64
import copy
import json
import re
import sys

GRPC_CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
              "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
              "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
              "UNAUTHENTICATED"]


def load_json(path):
    with open(path) as f:
        return json.load(f)


def short(s, n=72):
    s = str(s)
    return s if len(s) <= n else s[: n - 3] + "..."


def verdict(args):
    """Prints "allowed" or "denied (HTTP-ish code): message", then any warnings."""
    resp = load_json(args[0]).get("response")
    if not isinstance(resp, dict):
        print("no AdmissionReview response in the webhook's answer")
        return 1
    status = resp.get("status") or {}
    if resp.get("allowed") is True:
        print("allowed")
    else:
        print("denied (code %s): %s" % (status.get("code", "?"), status.get("message", "")))
    for w in resp.get("warnings") or []:
        print("warning: %s" % w)
    return 0


def describe_container(c):
    """(one-line summary, its command line or "")."""
    bits = []
    cmd = " ".join(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
    ports = [str(p.get("containerPort")) for p in c.get("ports") or []]
    if ports:
        bits.append("ports " + ",".join(ports))
    sc = c.get("securityContext") or {}
    if "runAsUser" in sc:
        bits.append("uid %s" % sc["runAsUser"])
    caps = sc.get("capabilities") or {}
    if caps.get("add"):
        bits.append("caps +" + ",".join(caps["add"]))
    if caps.get("drop"):
        bits.append("-" + ",".join(caps["drop"]))
    if c.get("restartPolicy") == "Always":
        bits.insert(0, "native sidecar (restartPolicy: Always)")
    return "; ".join(bits), cmd


def describe_volume(v):
    if "configMap" in v:
        cm = v["configMap"]
        return "configMap %s%s" % (cm.get("name"), ", optional" if cm.get("optional") else "")
    if "downwardAPI" in v:
        items = [i.get("path") for i in v["downwardAPI"].get("items") or []]
        return "downwardAPI (%s)" % ", ".join(str(i) for i in items)
    if "emptyDir" in v:
        return "emptyDir"
    if "projected" in v:
        return "projected"
    return ",".join(k for k in v if k != "name")


def describe_annotation(v):
    """A JSON-object value (the status annotation) as key=value pairs, lists joined by
    commas; other values as they are, shortened."""
    try:
        obj = json.loads(v)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return short(v, 70)
    parts = []
    for key, val in obj.items():
        if isinstance(val, list):
            val = ",".join(str(x) for x in val) or "-"
        parts.append("%s=%s" % (key, val))
    return "{" + " ".join(parts) + "}"


def patch_summary(args):
    """Applies the webhook's JSONPatch to the pod with python3-jsonpatch and prints what it
    added. With --reinvoke OUT, also writes the same AdmissionReview carrying the patched pod
    (what the API server sends on reinvocation)."""
    import jsonpatch  # Debian's python3-jsonpatch

    review = load_json(args[0])
    resp = load_json(args[1]).get("response") or {}
    pod = review["request"]["object"]
    if not resp.get("allowed"):
        print("the webhook did not allow the pod: %s" % (resp.get("status") or {}).get("message"))
        return 1
    if not resp.get("patch"):
        print("patch: none (the webhook left the pod unchanged)")
        return 0
    if resp.get("patchType") != "JSONPatch":
        print("unexpected patchType %r" % resp.get("patchType"))
        return 1
    ops = json.loads(base64.b64decode(resp["patch"]))
    kinds = {}
    for op in ops:
        kinds[op.get("op")] = kinds.get(op.get("op"), 0) + 1
    try:
        new = jsonpatch.apply_patch(pod, ops)
    except Exception as e:  # a patch the API server would reject too
        print("patch does not apply: %s" % e)
        return 1
    print("patch: %d operations (%s), applied with python3-jsonpatch"
          % (len(ops), ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items()))))

    def names(obj, key):
        return [c.get("name") for c in (obj.get("spec", {}).get(key) or [])]

    for key, label in (("initContainers", "init container"), ("containers", "container")):
        before = set(names(pod, key))
        for c in new["spec"].get(key) or []:
            if c.get("name") not in before:
                what, cmd = describe_container(c)
                print("+ %-15s %-16s %s" % (label, c.get("name"), what))
                if cmd:
                    print("  %-15s %-16s $ %s" % ("", "", cmd))
    order = names(new, "initContainers")
    if order:
        print("  init order: %s" % " -> ".join(order))
    before = set(v.get("name") for v in pod["spec"].get("volumes") or [])
    for v in new["spec"].get("volumes") or []:
        if v.get("name") not in before:
            print("+ %-15s %-16s %s" % ("volume", v.get("name"), describe_volume(v)))
    old_ann = pod.get("metadata", {}).get("annotations") or {}
    for k, v in sorted((new.get("metadata", {}).get("annotations") or {}).items()):
        if k not in old_ann:
            print("+ %-15s %s = %s" % ("annotation", k, describe_annotation(v)))
    kept = [n for n in names(pod, "containers") if n in names(new, "containers")]
    print("  unchanged: app container(s) %s, volume(s) %s" % (
        ", ".join(kept) or "-", ", ".join(sorted(before)) or "-"))
    if "--reinvoke" in args:
        out = args[args.index("--reinvoke") + 1]
        again = copy.deepcopy(review)
        again["request"]["uid"] = again["request"]["uid"][:-2] + "99"
        again["request"]["object"] = new
        with open(out, "w") as f:
            json.dump(again, f)
    return 0


METRIC_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC_RE.match(line)
        if not m:
            continue
        labels = dict(LABEL_RE.findall(m.group(2) or ""))
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out.append((m.group(1), labels, value))
    return out


def code_name(c):
    if c.isdigit() and int(c) < len(GRPC_CODES):
        return GRPC_CODES[int(c)]
    return c


def metrics_table(args):
    """The requests and durations one sidecar reported (only those of --reporter R when
    given: a call between two sidecars is reported by both, as source and as
    destination), then its faults, denials and reloads."""
    with open(args[0]) as f:
        samples = parse_metrics(f.read())
    if "--reporter" in args:
        want = args[args.index("--reporter") + 1]
        samples = [(n, l, v) for n, l, v in samples
                   if not n.startswith("grpcguard_request") or l.get("reporter") == want]
    rows = []
    req = {}
    for name, labels, value in samples:
        if name == "grpcguard_requests_total":
            svc, meth = labels.get("grpc_service", ""), labels.get("grpc_method", "")
            key = ("%s/%s" % (svc, meth) if svc else meth, code_name(labels.get("grpc_code", "?")))
            req[key] = req.get(key, 0) + value
    for (meth, code), v in sorted(req.items()):
        rows.append(("requests", "%-32s %s" % (meth, code), v))
    for name, labels, value in samples:
        if name == "grpcguard_faults_injected_total":
            rows.append(("faults injected", "%s %s" % (labels.get("type", "?"),
                                                       labels.get("fault", "")), value))
    for name, labels, value in samples:
        if name == "grpcguard_authz_denied_total":
            rows.append(("authz denied", "policy %s" % labels.get("policy", "?"), value))
    for name, labels, value in samples:
        if name == "grpcguard_policy_reloads_total":
            rows.append(("policy reloads", labels.get("result", "?"), value))
    hist_count = sum(v for n, l, v in samples if n == "grpcguard_request_duration_seconds_count")
    hist_sum = sum(v for n, l, v in samples if n == "grpcguard_request_duration_seconds_sum")
    if hist_count:
        rows.append(("request duration", "mean over %d requests" % hist_count,
                     "%.1f ms" % (1000.0 * hist_sum / hist_count)))
    if not rows:
        print("(no grpcguard_ metrics in the sidecar's /metrics)")
        return 1
    print("%-17s %-50s %8s" % ("metric", "labels", "value"))
    print("%-17s %-50s %8s" % ("-" * 17, "-" * 50, "-" * 8))
    for what, detail, v in rows:
        val = v if isinstance(v, str) else ("%d" % v if float(v).is_integer() else "%.3f" % v)
        print("%-17s %-50s %8s" % (what, short(detail, 50), val))
    return 0


def prom_query(base, query, at=None):
    """One instant query (POST /api/v1/query): the result vector, [] when empty."""
    import urllib.parse
    import urllib.request
    form = {"query": query}
    if at is not None:
        form["time"] = "%.3f" % at
    req = urllib.request.Request(base.rstrip("/") + "/api/v1/query",
                                 data=urllib.parse.urlencode(form).encode())
    with urllib.request.urlopen(req, timeout=5) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        raise ValueError("prometheus: %s" % doc.get("error"))
    return doc["data"]["result"]


def prom_scalar(base, query):
    """The single value of QUERY, or None when the result is empty or not a number."""
    res = prom_query(base, query)
    if not res:
        return None
    v = float(res[0]["value"][1])
    return None if v != v else v  # NaN: no data (e.g. histogram_quantile of nothing)


def prom_value(args):
    """Prints the single value of a PromQL query (PROMETHEUS_URL QUERY); exit 1 when the
    result is empty or Prometheus did not answer."""
    try:
        v = prom_scalar(args[0], args[1])
    except (OSError, ValueError):
        return 1
    if v is None:
        return 1
    print("%g" % v)
    return 0


def client_view(args):
    """The caller's view of a delay phase, from Prometheus: the calls the client's sidecar
    (reporter="source") counted as DEADLINE_EXCEEDED since SINCE (an epoch time, "@"
    modifier) and the duration of the calls it measured since then, which should be the
    client's deadline. Waits up to WAIT_S seconds for at least MIN_CALLS to be scraped.
    Exit 1 when they do not show up or the durations are not the deadline."""
    import time
    base, since, deadline, want, wait = args[0], float(args[1]), float(args[2]), int(args[3]), float(args[4])
    src = 'reporter="source",source_workload="client"'

    def since_then(metric, sel, by=""):
        # now minus then; a series that did not exist then counts from 0
        cur = "sum%s(%s{%s})" % (by, metric, sel)
        old = "sum%s(%s{%s} @ %.3f)" % (by, metric, sel, since)
        return "%s - (%s or %s * 0)" % (cur, old, cur)

    de_q = since_then("grpcguard_requests_total", src + ',grpc_code="DEADLINE_EXCEEDED"')
    dst_q = since_then("grpcguard_requests_total",
                       'reporter="destination",source_workload="client",grpc_code="DEADLINE_EXCEEDED"')
    end = time.monotonic() + wait
    n = dst = None
    while True:
        try:
            n, dst = prom_scalar(base, de_q), prom_scalar(base, dst_q)
        except (OSError, ValueError) as e:
            print("prometheus did not answer: %s" % e)
            return 1
        # The server's sidecar counts a held call when its hold ends: wait for both.
        if ((n or 0) >= want and (dst or 0) >= want) or time.monotonic() > end:
            break
        time.sleep(0.5)
    print('prometheus, the client\'s sidecar (reporter="source"): %d call(s) client -> server '
          'ended DEADLINE_EXCEEDED' % (n or 0))
    if (n or 0) < want:
        print("(expected at least %d within %.0f s)" % (want, wait))
        return 1
    cnt = prom_scalar(base, since_then("grpcguard_request_duration_seconds_count", src))
    tot = prom_scalar(base, since_then("grpcguard_request_duration_seconds_sum", src))
    buckets = since_then("grpcguard_request_duration_seconds_bucket", src, " by (le)")
    p50 = prom_scalar(base, "histogram_quantile(0.5, %s)" % buckets)
    p99 = prom_scalar(base, "histogram_quantile(0.99, %s)" % buckets)
    mean = tot / cnt if cnt else None

    def sec(v):
        return "-" if v is None else "%.2f s" % v

    # The bucket holding the median: histogram_quantile interpolates inside it.
    rows = sorted((float(r["metric"]["le"]), float(r["value"][1]))
                  for r in prom_query(base, buckets) if "le" in r["metric"])
    lo, where = 0.0, ""
    for le, n_le in rows:
        if cnt and n_le >= cnt / 2.0:
            where = "%g-%g s" % (lo, le)
            break
        lo = le
    print("  outgoing request duration, grpcguard_request_duration_seconds{reporter=\"source\"}:")
    print("  mean %s over %d call(s): the client's %gs deadline; p50 %s, p99 %s (interpolated "
          "inside the %s bucket)" % (sec(mean), cnt or 0, deadline, sec(p50), sec(p99), where or "?"))
    print('  the server\'s sidecar (reporter="destination") counted %d DEADLINE_EXCEEDED from the '
          'client meanwhile' % (dst or 0))
    if mean is None or not 0.8 * deadline <= mean <= 1.5 * deadline:
        print("(the mean duration is not the client's deadline)")
        return 1
    return 0


def policy_field(args):
    """Prints one top-level field of the sidecar's /policy JSON ("generation", "last_error");
    exit 1 when the field is missing or null."""
    try:
        doc = load_json(args[0])
    except (OSError, ValueError):
        return 1
    v = doc.get(args[1]) if isinstance(doc, dict) else None
    if v is None:
        return 1
    print(v)
    return 0


def configmap_policy(args):
    """Prints data["policy.yaml"] of the ConfigMap inside an AdmissionReview."""
    print(load_json(args[0])["request"]["object"]["data"]["policy.yaml"], end="")
    return 0


def log_delay(args):
    """Prints how many ms after SINCE_EPOCH_MS the first JSON log line with "event": EVENT
    was written (its own "ts"); exit 1 when there is none."""
    import datetime
    since = int(args[2])
    with open(args[0], errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
                if rec.get("event") != args[1]:
                    continue
                ts = datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            ms = int(ts.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
            if ms >= since - 1:  # the log has ms resolution
                print(max(0, ms - since))
                return 0
    return 1


def principals(args):
    """Who the server's sidecar saw calling METHOD (reporter="destination"): one line per
    source_principal (verified over mTLS only, "unknown" otherwise), the connection's
    security policy and the gRPC code, with the count."""
    with open(args[0]) as f:
        rows = {}
        for name, labels, value in parse_metrics(f.read()):
            if name != "grpcguard_requests_total" or labels.get("reporter") != "destination":
                continue
            if "/%s/%s" % (labels.get("grpc_service"), labels.get("grpc_method")) != args[1]:
                continue
            k = (labels.get("source_principal", "?"), labels.get("connection_security_policy", "?"),
                 code_name(labels.get("grpc_code", "?")))
            rows[k] = rows.get(k, 0) + value
    if not rows:
        return 1
    print("%-42s %-16s %-18s %s" % ("source_principal", "security policy", "code", "calls"))
    for (p, sec, code), n in sorted(rows.items()):
        print("%-42s %-16s %-18s %d" % (p, sec, code, n))
    return 0


def tokenreview(args):
    """The stand-in TokenReview server (see the top of this file); runs until killed."""
    import argparse
    import http.server
    import ssl
    ap = argparse.ArgumentParser(prog="ggdemo.py tokenreview")
    for a in ("--listen", "--cert", "--key", "--tokens", "--caller-token"):
        ap.add_argument(a, required=True)
    a = ap.parse_args(args)
    tokens = load_json(a.tokens)
    with open(a.caller_token) as f:
        caller = f.read().strip()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self, code, obj):
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            if n > 65536:
                return self.answer(413, {"kind": "Status", "message": "too large"})
            body = self.rfile.read(n)
            if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
                return self.answer(404, {"kind": "Status", "message": "not found"})
            if self.headers.get("Authorization") != "Bearer " + caller:
                return self.answer(401, {"kind": "Status", "message": "Unauthorized"})
            try:
                spec = json.loads(body).get("spec", {})
            except (ValueError, AttributeError):
                return self.answer(400, {"kind": "Status", "message": "not JSON"})
            user = tokens.get(spec.get("token"))
            want = spec.get("audiences") or []
            if user and "grpcguard" in want:
                status = {"authenticated": True, "audiences": ["grpcguard"],
                          "user": {"username": user, "groups": ["system:serviceaccounts"]}}
            else:
                status = {"authenticated": False, "error": "invalid bearer token"}
            self.answer(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                              "spec": spec, "status": status})

    host, port = a.listen.rsplit(":", 1)
    srv = http.server.ThreadingHTTPServer((host, int(port)), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("stand-in TokenReview listening on %s" % a.listen, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def main():
    cmds = {"principals": principals, "tokenreview": tokenreview,
            "verdict": verdict, "patch-summary": patch_summary, "metrics-table": metrics_table,
            "policy-field": policy_field, "client-view": client_view,
            "prom-value": prom_value, "configmap-policy": configmap_policy,
            "log-delay": log_delay}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
