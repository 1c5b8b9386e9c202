#!/usr/bin/python3
"""Helpers of bench/run.sh: parse h2load / wrk output and write bench/RESULTS.md.

  report.py h2load OUT        -> "rps n ok"   (ok = "ok" or "ERR(<why>)")
  report.py lat LOG           -> "mean_us p99_us" from h2load --log-file (3rd column, us)
  report.py ttfb OUT          -> "ttfb_us": h2load's mean "time to 1st byte" over its clients
                                 (connect + any proxy-to-proxy handshake + the first reply)
  report.py wrk OUT           -> "rps mean_us p99_us ok"
  report.py report RAW META WEBHOOK POLICY   -> RESULTS.md on stdout

Always prints something parseable ("0 ..." on failure) so the shell never stalls.
"""
import re
import statistics
import sys

PEERS = ("nghttpx", "haproxy-h2")
CONFIG_ORDER = ("direct", "gg-nopolicy", "gg-policy", "gg-w2", "nghttpx", "haproxy-h2", "haproxy-tcp")
CONFIG_DESC = {
    "direct": "direct (no proxy)",
    "gg-nopolicy": "grpcguard, no policy",
    "gg-policy": "grpcguard, realistic policy",
    "gg-w2": "grpcguard, no policy, --workers 2 (both CPUs)",
    "nghttpx": "nghttpx --workers=1",
    "haproxy-h2": "haproxy HTTP h2 (nbthread 1)",
    "haproxy-tcp": "haproxy TCP (L4 floor)",
}
NS_ORDER = ("ns-direct", "ns-gg1", "ns-gg2", "ns-mtls")
NS_DESC = {
    "ns-direct": "direct (no sidecar)",
    "ns-gg1": "one sidecar (the server's, inbound)",
    "ns-gg2": "two sidecars (caller's outbound, then server's inbound)",
    "ns-mtls": "two sidecars, mutual TLS between them",
}
MIX_DESC = {
    "1x1": "1 connection x 1 stream (latency)",
    "8x16": "8 connections x 16 streams (throughput)",
    "100x1": "100 connections x 1 stream",
}
BACKEND_DESC = {
    "nghttpd": "nghttpd serving a canned gRPC reply (the proxy is the bottleneck)",
    "greeter": "C++ gRPC greeter (libgrpc++ callback server), a realistic app",
}


def cmd_h2load(path):
    try:
        text = open(path, errors="replace").read()
    except OSError:
        print("0 0 ERR(no-output)")
        return
    m = re.search(r"finished in [^,]+, ([0-9.]+) req/s", text)
    r = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text)
    s = re.search(r"status codes: (\d+) 2xx", text)
    if not m or not r:
        print("0 0 ERR(h2load)")
        return
    total, succ, failed, errored, tmo = (int(x) for x in r.groups())
    ok = "ok"
    if succ != total or failed or errored or tmo:
        ok = "ERR(%d/%d-succeeded)" % (succ, total)
    elif s and int(s.group(1)) != total:
        ok = "ERR(%s/%d-2xx)" % (s.group(1), total)
    print("%.0f %d %s" % (float(m.group(1)), total, ok))


def percentile(sorted_vals, q):
    if not sorted_vals:
        return 0.0
    k = max(0, min(len(sorted_vals) - 1, int(round(q / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def cmd_lat(path):
    vals = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split("\t")
                if len(parts) >= 3:
                    vals.append(int(parts[2]))
    except OSError:
        pass
    if not vals:
        print("0 0")
        return
    vals.sort()
    print("%.0f %.0f" % (statistics.fmean(vals), percentile(vals, 99)))


def cmd_ttfb(path):
    try:
        text = open(path, errors="replace").read()
    except OSError:
        text = ""
    m = re.search(r"time to 1st byte:\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)\s+([0-9.]+)(us|ms|s)", text)
    print("%.0f" % to_us(m.group(5), m.group(6)) if m else "0")


def to_us(num, unit):
    return float(num) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[unit]


def cmd_wrk(path):
    try:
        text = open(path, errors="replace").read()
    except OSError:
        text = ""
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    mean = re.search(r"Latency\s+([0-9.]+)(us|ms|s)\b", text)
    p99 = re.search(r"\s99%\s+([0-9.]+)(us|ms|s)\b", text)
    if not rps or not mean or not p99:
        print("0 0 0 ERR(wrk)")
        return
    ok = "ok"
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        ok = "ERR(%s-non-2xx)" % non2xx.group(1)
    elif errs and any(int(x) for x in errs.groups()):
        ok = "ERR(socket:%s)" % "/".join(errs.groups())
    print("%.0f %.0f %.0f %s" % (float(rps.group(1)), to_us(*mean.groups()), to_us(*p99.groups()), ok))


def fmt_ratio(v, best):
    if not best or not v:
        return "-"
    return "%.2fx" % (v / best)


def mib(kb):
    return kb / 1024.0


def instr_section(w, tsv_path, txt_path):
    """Instructions per request (bench/instr.sh rows: config mix n ir per_req ok)."""
    rows = [l.rstrip("\n").split("\t") for l in open(tsv_path)] if tsv_path else []
    rows = [r for r in rows if len(r) == 6]
    w("")
    w("## Instructions per request (callgrind, nghttpd backend)")
    w("")
    if not rows:
        w("Not measured (valgrind missing, BENCH_SKIP_INSTR=1, or bench/instr.sh failed).")
        return
    w("User-space instructions the proxy process executed per request (valgrind")
    w("--tool=callgrind, counting switched on after an uncounted warm-up; kernel time is not")
    w("in it). Independent of machine load, so it shows hot-path changes that req/s hides.")
    w("")
    ref = {r[1]: float(r[4]) for r in rows if r[0] == "nghttpx" and r[5] == "ok"}
    w("| configuration | mix | requests | instructions per request | ×nghttpx | status |")
    w("|---|---|---:|---:|---:|---|")
    for config, mix, n, ir, per, ok in rows:
        ratio = "%.2f" % (float(per) / ref[mix]) if ref.get(mix) and ok == "ok" else "-"
        w("| %s | %s | %s | %s | %s | %s |" % (CONFIG_DESC.get(config, config), mix, n,
                                                 "{:,}".format(int(float(per))), ratio, ok))
    txt = open(txt_path).read().strip() if txt_path else ""
    parts = txt.split("\n== ")
    if len(parts) > 1:
        w("")
        w("Where the instructions and the CPU time go (bench/instr.sh; libnghttp2 has no")
        w("symbols without its debug package, hence the addresses):")
        w("")
        w("```")
        w("== " + "\n== ".join(p.strip() for p in parts[1:]))
        w("```")


def med_range(vals, fmt="%.0f", unit=""):
    """'median [min–max]' of a list of numbers, or '-'; unit follows the median only
    ("1.52× [1.40–1.61]")."""
    if not vals:
        return "-"
    mid = fmt % statistics.median(vals) + unit
    if len(vals) == 1:
        return mid
    return "%s [%s–%s]" % (mid, fmt % min(vals), fmt % max(vals))


def per_round(rows, backend, mix, config, key):
    """{round: float(row[key])} of the good runs of one backend/mix/config."""
    return {r["round"]: float(r.get(key) or 0) for r in rows
            if r["backend"] == backend and r["mix"] == mix and r["config"] == config
            and r.get("ok") == "ok"}


def paired(rows, backend, mix, a, b, key, op):
    """op(a's figure, b's figure) for every round in which both ran (interleaved pairs)."""
    ra, rb = per_round(rows, backend, mix, a, key), per_round(rows, backend, mix, b, key)
    return [op(ra[k], rb[k]) for k in sorted(ra) if k in rb and (op is not ratio or rb[k] > 0)]


def ratio(x, y):
    return x / y


def diff(x, y):
    return x - y



# ---- the loopback rows: per-mix tables, issue 17's targets, the README summary ----------

TARGET_CORE = 1.5     # req/s per proxy core >= 1.5x the best peer's
TARGET_CPU = 0.67     # CPU per request <= 0.67x nghttpx's
TARGET_IDLE_MIB = 4.0
TARGET_HWM_MIB = 6.0
MIXES = ("1x1", "8x16", "100x1")


def prep_rows(rows):
    """Adds the derived per-run figures: cpu100k (CPU s per 100k requests), core (requests
    per CPU second of the proxy), busy (share of one CPU the proxy used), idle_kb (0 when
    not measured: older raw files have no such column)."""
    for r in rows:
        n = float(r.get("n") or 0)
        cpu = float(r.get("cpu_s") or 0)
        rps = float(r.get("rps") or 0)
        r["cpu100k"] = cpu / n * 1e5 if n > 0 else 0.0
        r["core"] = n / cpu if cpu > 0 else 0.0
        r["busy"] = cpu * rps / n if n > 0 else 0.0
        r["idle_kb"] = r.get("idle_kb") or "0"
    return rows


def good(rows, backend, mix, config):
    return [r for r in rows if r["backend"] == backend and r["mix"] == mix
            and r["config"] == config and r.get("ok") == "ok"]


def col(rows, key, scale=1.0):
    """The positive values of key (times scale) of rows."""
    return [float(r.get(key) or 0) * scale for r in rows if float(r.get(key) or 0) > 0]


def med(vals):
    return statistics.median(vals) if vals else None


def vs_best(rows, backend, mix, config, key, hi):
    """Per round: config's figure over the best peer's figure of that same round (hi: the
    highest is best, else the lowest). Rounds where config or every peer failed are left out."""
    mine = per_round(rows, backend, mix, config, key)
    peers = [per_round(rows, backend, mix, p, key) for p in PEERS]
    out = []
    for rd in sorted(mine, key=int):
        vals = [p[rd] for p in peers if p.get(rd, 0) > 0]
        if mine[rd] <= 0 or not vals:
            continue
        out.append(mine[rd] / (max(vals) if hi else min(vals)))
    return out


def mix_table(w, rows, backend, mix):
    w("| configuration | req/s | ×peer | req/s per core | ×peer | mean µs | added µs | p99 µs "
      "| added p99 µs | CPU s/100k | ×nghttpx | CPU busy | idle RSS MiB | peak RSS MiB | anon MiB |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in CONFIG_ORDER:
        cr = good(rows, backend, mix, c)
        if not cr:
            continue
        px = c != "direct"

        def m(vals, fmt="%.2f×"):
            v = med(vals)
            return fmt % v if v is not None else "-"
        w("| %s |" % CONFIG_DESC[c] + " %s |" * 14 % (
            med_range(col(cr, "rps")),
            m(vs_best(rows, backend, mix, c, "rps", True)),
            med_range(col(cr, "core")) if px else "-",
            m(vs_best(rows, backend, mix, c, "core", True)) if px else "-",
            med_range(col(cr, "mean_us")),
            med_range(paired(rows, backend, mix, c, "direct", "mean_us", diff), "%+.0f") if px else "-",
            med_range(col(cr, "p99_us")),
            med_range(paired(rows, backend, mix, c, "direct", "p99_us", diff), "%+.0f") if px else "-",
            med_range(col(cr, "cpu100k"), "%.2f") if px else "-",
            m(paired(rows, backend, mix, c, "nghttpx", "cpu100k", ratio)) if px else "-",
            m(col(cr, "busy", 100), "%.0f%%") if px else "-",
            med_range(col(cr, "idle_kb", 1 / 1024), "%.1f") if px else "-",
            med_range(col(cr, "hwm_kb", 1 / 1024), "%.1f") if px else "-",
            m(col(cr, "anon_kb", 1 / 1024), "%.1f") if px else "-"))


def verdict_cell(text, met):
    """A target cell: the figure, then yes / **no** (None: information, no verdict)."""
    if met is None:
        return text
    return "%s %s" % (text, "yes" if met else "**no**")


def latency_cell(rows, backend, mix, key):
    """Added latency (key: mean_us or p99_us over the direct row, per round) of the sidecar
    against every peer's: met when the sidecar's median is below each peer's."""
    mine = paired(rows, backend, mix, GG, "direct", key, diff)
    if not mine:
        return "-"
    theirs = [(p, paired(rows, backend, mix, p, "direct", key, diff)) for p in PEERS]
    theirs = [(p, v) for p, v in theirs if v]
    if not theirs:
        return verdict_cell(med_range(mine, "%+.0f") + " (no peer ran)", None)
    met = all(med(mine) < med(v) for _, v in theirs)
    return verdict_cell("%s vs %s" % (med_range(mine, "%+.0f"), ", ".join(
        "%s %+.0f" % (p, med(v)) for p, v in theirs)), met)


GG = "gg-nopolicy"   # "the sidecar" of the targets


def targets_17(rows, instr_rows):
    """The rows of the "Targets of issue 17" table: (target, backend, {mix: cell})."""
    out = []
    backends = [b for b in ("nghttpd", "greeter") if any(
        r["backend"] == b and r["config"] == GG and r.get("ok") == "ok" for r in rows)]
    for b in backends:
        cells = {}
        for mix in MIXES:
            v = vs_best(rows, b, mix, GG, "core", True)
            if v:
                cells[mix] = verdict_cell(med_range(v, "%.2f", "×"), med(v) >= TARGET_CORE)
        out.append(("req/s per proxy core ≥ %.1f× the best peer's" % TARGET_CORE, b, cells))
    for b in backends:
        cells = {}
        for mix in MIXES:
            v = paired(rows, b, mix, GG, "nghttpx", "cpu100k", ratio)
            if v:
                cells[mix] = verdict_cell(med_range(v, "%.2f", "×"), med(v) <= TARGET_CPU)
        out.append(("CPU per request ≤ %.2f× nghttpx's" % TARGET_CPU, b, cells))
    for key, what in (("mean_us", "mean"), ("p99_us", "p99")):
        for b in backends:
            out.append(("added %s µs (over direct) below every peer's" % what, b,
                        {mix: latency_cell(rows, b, mix, key) for mix in MIXES
                         if good(rows, b, mix, GG)}))
    for b in backends:
        v = col(good(rows, b, "8x16", GG), "idle_kb", 1 / 1024)
        if v:
            out.append(("idle RSS < %.0f MiB" % TARGET_IDLE_MIB, b,
                        {"8x16": verdict_cell(med_range(v, "%.1f", " MiB"), med(v) < TARGET_IDLE_MIB)}))
    for b in backends:
        cells = {}
        for mix in MIXES:
            v = col(good(rows, b, mix, GG), "hwm_kb", 1 / 1024)
            if v:
                cells[mix] = verdict_cell(med_range(v, "%.1f", " MiB"),
                                          med(v) < TARGET_HWM_MIB if mix == "8x16" else None)
        out.append(("peak RSS < %.0f MiB at 8x16 (other mixes: information)" % TARGET_HWM_MIB, b, cells))
    # Information, no target: raw req/s, capped by the load generator and backend.
    for b in backends:
        cells = {}
        for mix in MIXES:
            v = vs_best(rows, b, mix, GG, "rps", True)
            d = vs_best(rows, b, mix, "direct", "rps", True)
            if v:
                cells[mix] = med_range(v, "%.2f", "×") + (" (direct: %.2f×)" % med(d) if d else "")
        out.append(("information: req/s × the best peer's (direct: the cap)", b, cells))
    ref = {r[1]: float(r[4]) for r in instr_rows if r[0] == "nghttpx" and r[5] == "ok"}
    cells = {}
    for config, mix, n, ir, per, ok in instr_rows:
        if config == GG and ok == "ok" and ref.get(mix):
            cells[mix] = "{:,} vs {:,}: {:.2f}×".format(int(float(per)), int(ref[mix]),
                                                       float(per) / ref[mix])
    if cells:
        out.append(("information: instructions per request (callgrind), sidecar vs nghttpx",
                    "nghttpd", cells))
    return out


def targets_table(w, trows):
    w("| target | backend | 1x1 | 8x16 | 100x1 |")
    w("|---|---|---:|---:|---:|")
    for name, b, cells in trows:
        w("| %s | %s | %s |" % (name, b, " | ".join(cells.get(m, "-") for m in MIXES)))


def readme_table(w, rows, backend):
    """One compact table per backend, medians only (ranges: the per-mix tables): what the
    README's performance table shows, so that it can be copied from here as it is."""
    w("| %s backend (medians) | 1x1 added mean µs | 1x1 added p99 µs | 8x16 req/s "
      "| 8x16 req/s per core | 8x16 CPU s/100k | 100x1 req/s | 100x1 req/s per core "
      "| 100x1 CPU s/100k | idle RSS MiB | 8x16 peak RSS MiB |" % backend)
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in CONFIG_ORDER:
        if not any(good(rows, backend, m, c) for m in MIXES):
            continue
        px = c != "direct"

        def f(vals, fmt, direct_too=False):
            v = med(vals)
            return fmt.format(v) if v is not None and (px or direct_too) else "-"
        w("| %s |" % CONFIG_DESC[c] + " %s |" * 10 % (
            f(paired(rows, backend, "1x1", c, "direct", "mean_us", diff), "{:+.0f}"),
            f(paired(rows, backend, "1x1", c, "direct", "p99_us", diff), "{:+.0f}"),
            f(col(good(rows, backend, "8x16", c), "rps"), "{:,.0f}", True),
            f(col(good(rows, backend, "8x16", c), "core"), "{:,.0f}"),
            f(col(good(rows, backend, "8x16", c), "cpu100k"), "{:.2f}"),
            f(col(good(rows, backend, "100x1", c), "rps"), "{:,.0f}", True),
            f(col(good(rows, backend, "100x1", c), "core"), "{:,.0f}"),
            f(col(good(rows, backend, "100x1", c), "cpu100k"), "{:.2f}"),
            f(col(good(rows, backend, "8x16", c), "idle_kb", 1 / 1024), "{:.1f}"),
            f(col(good(rows, backend, "8x16", c), "hwm_kb", 1 / 1024), "{:.1f}")))


def ns_report(w, rows, meta):
    """The two-pod section: direct vs one sidecar vs two sidecars (vs mTLS)."""
    nsrows = [r for r in rows if r["config"].startswith("ns-")]
    w("")
    w("## Both ends of a call: two pods in network namespaces (issues 15 and 16)")
    w("")
    if meta.get("have_ns") != "1":
        w("Not measured: %s." % (meta.get("ns_note") or "no ns-* configuration was asked for"))
        return
    w("A client pod and a server pod, two network namespaces joined by a veth, each set up")
    w("with `grpcguard-sidecar init` as the injector does, every sidecar as uid 1337 with")
    w("`--upstream original-dst` (%s). h2load runs in the client pod;" % meta.get("ns_note", ""))
    w("the three paths differ only in the server address it dials: **two sidecars** = captured")
    w("by the client pod's OUTPUT redirect into the caller's sidecar (:15001), which calls the")
    w("server pod, whose PREROUTING redirect hands the call to the server's sidecar (:15006),")
    w("then the app; **one sidecar** = an address excluded from capture")
    w("(`--exclude-outbound-cidrs`), so only the server's sidecar; **direct** = excluded, and")
    w("not redirected in the server pod either. Same CPU placement as above (h2load and the")
    w("backend on CPU 0; every sidecar on CPU 1, so two sidecars share one core: their")
    w("req/s is the whole proxy cost of a call on one core). CPU s/100k and RSS are summed")
    w("over the sidecars of the row. Every run is checked to have taken its path: the")
    w("caller's sidecar counted the calls as reporter source, the server's as reporter")
    w("destination (with mTLS: as connection_security_policy mutual_tls); a run that did not")
    w("is excluded. Figures: median over rounds, [min–max] in brackets; ratios and added")
    w("latency are taken per round (the configurations of a round ran back to back) and then")
    w("summarised the same way. TTFB = h2load's mean time to first byte per connection:")
    w("connect, any handshake between the sidecars, and the first reply.")
    w("")
    w("```")
    w("# load, in the client pod")
    w(meta.get("ns_load_cmd", ""))
    for k in ("ns-server0", "ns-client0", "ns-server1", "ns-client1"):
        if "cmd." + k in meta:
            w(meta["cmd." + k])
    w("```")
    if not nsrows:
        w("")
        w("No ns-* run completed.")
        return
    summary = []
    mtls = []
    for backend in ("nghttpd", "greeter"):
        if not any(r["backend"] == backend for r in nsrows):
            continue
        w("")
        w("### Backend: %s" % BACKEND_DESC.get(backend, backend))
        for mix in ("1x1", "8x16", "100x1"):
            mrows = [r for r in nsrows if r["backend"] == backend and r["mix"] == mix]
            if not mrows:
                continue
            w("")
            w("#### %s" % MIX_DESC[mix])
            w("")
            w("| path | req/s | ×direct | ×one sidecar | mean µs | added µs | p99 µs | TTFB µs | CPU s/100k | RSS MiB |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for c in NS_ORDER:
                cr = [r for r in mrows if r["config"] == c and r.get("ok") == "ok"]
                if not cr:
                    continue
                proxied = c != "ns-direct"
                w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    NS_DESC[c],
                    med_range([float(r["rps"]) for r in cr]),
                    med_range(paired(rows, backend, mix, c, "ns-direct", "rps", ratio), "%.2fx") if proxied else "-",
                    med_range(paired(rows, backend, mix, c, "ns-gg1", "rps", ratio), "%.2fx") if c not in ("ns-direct", "ns-gg1") else "-",
                    med_range([float(r["mean_us"]) for r in cr]),
                    med_range(paired(rows, backend, mix, c, "ns-direct", "mean_us", diff), "%+.0f") if proxied else "-",
                    med_range([float(r["p99_us"]) for r in cr]),
                    med_range([float(r.get("ttfb_us") or 0) for r in cr]),
                    med_range([float(r["cpu_s"]) / float(r["n"]) * 1e5 for r in cr], "%.2f") if proxied else "-",
                    "%.1f" % mib(max(float(r["hwm_kb"]) for r in cr)) if proxied else "-"))
            if mix == "1x1":
                one = paired(rows, backend, mix, "ns-gg1", "ns-direct", "mean_us", diff)
                two = paired(rows, backend, mix, "ns-gg2", "ns-direct", "mean_us", diff)
                caller = paired(rows, backend, mix, "ns-gg2", "ns-gg1", "mean_us", diff)
                if two:
                    summary.append((backend, "added latency, 1x1 (mean µs over direct)",
                                    med_range(one, "%+.0f"), med_range(two, "%+.0f"),
                                    "%s µs" % med_range(caller, "%+.0f")))
            cpu1 = [float(r["cpu_s"]) / float(r["n"]) * 1e5 for r in mrows
                    if r["config"] == "ns-gg1" and r.get("ok") == "ok"]
            cpu2 = [float(r["cpu_s"]) / float(r["n"]) * 1e5 for r in mrows
                    if r["config"] == "ns-gg2" and r.get("ok") == "ok"]
            if cpu2:
                summary.append((backend, "sidecar CPU s per 100k calls, %s (steadiest on a busy machine)" % mix,
                                med_range(cpu1, "%.2f"), med_range(cpu2, "%.2f"),
                                med_range(paired(rows, backend, mix, "ns-gg2", "ns-gg1", "cpu_s", ratio), "%.2fx")))
            if mix != "1x1":
                one = paired(rows, backend, mix, "ns-gg1", "ns-direct", "rps", ratio)
                two = paired(rows, backend, mix, "ns-gg2", "ns-direct", "rps", ratio)
                caller = paired(rows, backend, mix, "ns-gg2", "ns-gg1", "rps", ratio)
                if two:
                    summary.append((backend, "req/s, %s (× direct)" % mix, med_range(one, "%.2fx"),
                                    med_range(two, "%.2fx"), med_range(caller, "%.2fx")))
            if any(r["config"] == "ns-mtls" for r in mrows):
                hs = paired(rows, backend, mix, "ns-mtls", "ns-gg2", "ttfb_us", diff)
                lat = paired(rows, backend, mix, "ns-mtls", "ns-gg2", "mean_us", diff)
                thr = paired(rows, backend, mix, "ns-mtls", "ns-gg2", "rps", ratio)
                cpu = paired(rows, backend, mix, "ns-mtls", "ns-gg2", "cpu_s", ratio)
                mtls.append((backend, mix, med_range(hs, "%+.0f"), med_range(lat, "%+.0f"),
                             med_range(thr, "%.2fx"), med_range(cpu, "%.2fx")))
    if summary:
        w("")
        w("### The caller's sidecar: what a call pays for each end")
        w("")
        w("| backend | figure | one sidecar (server's) | two sidecars | two vs one (the caller's sidecar) |")
        w("|---|---|---:|---:|---:|")
        for row in summary:
            w("| %s | %s | %s | %s | %s |" % row)
    w("")
    w("### Mutual TLS between the sidecars")
    w("")
    if meta.get("have_mtls") != "1" or not mtls:
        w("Not measured: %s." % (meta.get("mtls_note") or "no ns-mtls run completed"))
        return
    note = meta.get("mtls_note", "")
    w("%s. Against the same two sidecars in plaintext (ns-gg2), per round:" % (note[:1].upper() + note[1:]))
    w("handshake = extra time to first byte of a new connection (1x1: one connection alone;")
    w("100x1: 100 connections opened at once); per call = extra mean latency, req/s and")
    w("CPU per request (both sidecars) relative to plaintext.")
    w("")
    w("| backend | mix | handshake: TTFB µs added | per call: mean µs added | req/s × plaintext | CPU/request × plaintext |")
    w("|---|---|---:|---:|---:|---:|")
    for row in mtls:
        w("| %s | %s | %s | %s | %s | %s |" % row)


def cmd_report(raw_path, meta_path, wh_path, pol_path, jwt_path=None, instr_path=None,
               instr_txt=None):
    meta = {}
    for line in open(meta_path):
        if "=" in line:
            k, v = line.rstrip("\n").split("=", 1)
            meta[k] = v
    rows = []
    with open(raw_path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    prep_rows(rows)
    instr_rows = [l.rstrip("\n").split("\t") for l in open(instr_path)] if instr_path else []
    instr_rows = [r for r in instr_rows if len(r) == 6]
    scaling = []

    out = []
    w = out.append
    w("# grpcguard benchmark results")
    w("")
    w("Written by `make bench` (bench/run.sh); how to run and read it: docs/bench.md.")
    w("Every configuration ran in the same session, interleaved in rounds; figures are the")
    w("median over %s rounds, [min–max] in brackets. Loopback only, and two network" % meta.get("rounds", "?"))
    w("namespaces the script creates for the two-pod (ns-*) rows.")
    if meta.get("rounds") != meta.get("rounds_planned"):
        w("%s rounds were planned; the time budget stopped the run after %s." % (
            meta.get("rounds_planned", "?"), meta.get("rounds", "?")))
    w("")
    w("## Machine and versions")
    w("")
    for k in ("date", "cpu", "mem", "kernel", "commit", "built_from", "loadavg", "h2load", "nghttpx",
              "haproxy", "grpc", "wrk"):
        if k in meta:
            w("- %s: %s" % (k, meta[k]))
    w("- CPU placement: %s. The machine is shared (other jobs may run on it), so compare" % meta.get("pin", "?"))
    w("  rows of one table with each other, not with another run.")
    try:
        busy = float(meta.get("load1", "0")) > float(meta.get("nproc", "1"))
    except ValueError:
        busy = False
    if busy:
        w("- **The machine was busy** (load average %s on %s CPUs when the proxy section started):"
          % (meta.get("load1"), meta.get("nproc")))
        w("  every process waited for CPU. Latency (1x1 especially, and all p99s) is then dominated")
        w("  by scheduling, not by the proxies; req/s and CPU per request are the steadier figures.")
    w("- request counts: %s" % meta.get("counts", "?"))
    w("- proxy section took %s s" % meta.get("seconds", "?"))
    if "seconds_total" in meta:
        w("- the whole run took %s s: build %s s, proxy rounds %s s, callgrind %s s, the rest "
          "(webhook, policy, JWT, report) %s s" % (meta["seconds_total"], meta.get("seconds_build", "?"),
                                                  meta.get("seconds", "?"), meta.get("seconds_instr", "?"),
                                                  meta.get("seconds_other", "?")))
    trows = targets_17(rows, instr_rows)
    if trows:
        w("")
        w("## Targets of issue 17")
        w("")
        w("The sidecar (grpcguard, one worker, no policy) against nghttpx and haproxy-h2, one")
        w("worker each, every figure the median over the rounds with [min–max]. Ratios and")
        w("added latencies are taken per round (the configurations of a round ran back to back)")
        w("and then summarised; the best peer is the better of nghttpx and haproxy-h2 in that")
        w("round. A target is met (yes) when its median is on the right side of the bound.")
        w("req/s per core = requests per CPU second of the proxy process: the issue's \"1.5× the")
        w("best peer's req/s per core\". Raw req/s is no target: at 8x16 h2load and the backend")
        w("share CPU 0 and cap every row (the direct row, no proxy at all, shows that cap), so")
        w("it is given for information only. Idle RSS = VmRSS of the fresh proxy before its")
        w("8x16 run (the sidecar after one /readyz and one /metrics), peak RSS = VmHWM after")
        w("the run.")
        w("")
        targets_table(w, trows)
        verdicts = [c for _, _, cells in trows for c in cells.values()
                    if c.endswith(" yes") or c.endswith(" **no**")]
        w("")
        w("Met: %d of %d." % (sum(1 for c in verdicts if c.endswith(" yes")), len(verdicts)))
        w("")
        w("## Summary for the README")
        w("")
        w("Medians only (the ranges are in the tables below). The README's performance table")
        w("is the first of these, copied as it is.")
        for backend in ("nghttpd", "greeter"):
            if any(r["backend"] == backend and r["config"] in CONFIG_ORDER for r in rows):
                w("")
                readme_table(w, rows, backend)
    w("")
    w("## Commands")
    w("")
    w("```")
    w("# load (mix flags: 1x1 = -c 1 -m 1, 8x16 = -c 8 -m 16, 100x1 = -c 100 -m 1; -n per mix)")
    w(meta.get("load_cmd", ""))
    for c in CONFIG_ORDER:
        if "cmd." + c in meta:
            w("# %s" % c)
            w(meta["cmd." + c])
    if "webhook_cmd" in meta:
        w("# webhook")
        w(meta["webhook_cmd"])
    w("```")
    w("$WORK is a temporary directory; the realistic policy is bench/policy-realistic.yaml,")
    w("the haproxy configurations are written by bench/run.sh (nbthread 1, `proto h2` both sides).")
    checks = ["%s %s" % (k[5:], v) for k, v in sorted(meta.items()) if k.startswith("grpc.")]
    if checks:
        w("")
        w("A real grpcio SayHello through each configuration (grpc-status 0 expected): " +
          ", ".join(checks) + ".")
    if meta.get("have_sidecar") != "1":
        w("")
        w("**grpcguard-sidecar did not build, so the gg-* rows are missing.**")
    w("")
    w("Columns of the per-mix tables (figures: median over the rounds, [min–max] in brackets):")
    w("req/s; ×peer = the row's figure over the best peer's (nghttpx or haproxy-h2, whichever")
    w("was better in that round), taken per round and then the median; req/s per core =")
    w("requests per CPU second of the proxy process (1 / CPU per request: what one core of")
    w("that proxy can serve, independent of whether the load generator kept it busy); added =")
    w("mean (p99) latency minus the direct row's of the same round; CPU = CPU seconds")
    w("(user+system, summed over /proc/PID/task/*/schedstat) of the proxy process per 100k")
    w("requests, ×nghttpx per round; CPU busy = the share of one CPU the proxy used during the")
    w("run (well under 100%: the proxy was not the bottleneck of that row, the load generator")
    w("and backend sharing CPU 0 or the round trips were); idle RSS = VmRSS of the fresh proxy")
    w("before any load (the sidecar after one /readyz and one /metrics), measured before each")
    w("8x16 run; peak RSS = VmHWM after the run (warm-up + measured requests), which counts")
    w("shared-library pages too; anon = anonymous (heap, stacks) resident memory (RssAnon) at")
    w("the end of the run, the part that grows with load.")

    for backend in ("nghttpd", "greeter"):
        brows = [r for r in rows if r["backend"] == backend]
        if not brows:
            continue
        w("")
        w("## Backend: %s" % BACKEND_DESC.get(backend, backend))
        for mix in ("1x1", "8x16", "100x1"):
            if any(r["mix"] == mix and r["config"] in CONFIG_ORDER for r in brows):
                w("")
                w("### %s" % MIX_DESC[mix])
                w("")
                mix_table(w, rows, backend, mix)
        gg = good(rows, backend, "8x16", "gg-nopolicy")
        w2 = good(rows, backend, "8x16", "gg-w2")
        if gg and w2:
            scaling.append("8x16, %s backend: --workers 2 gives %s the req/s of one worker, "
                           "sharing its two CPUs with h2load and the backend"
                           % (backend, med_range(paired(rows, backend, "8x16", "gg-w2", "gg-nopolicy",
                                                       "rps", ratio), "%.2f", "×")))

    if scaling:
        w("")
        w("Multi-core: " + "; ".join(scaling) + ".")

    bad = [r for r in rows if r.get("ok") != "ok"]
    if meta.get("note"):
        out.insert(3, "")
        out.insert(4, "**%s**" % meta["note"])
        out.insert(5, "")

    ns_report(w, rows, meta)

    wh = [l.rstrip("\n").split("\t") for l in open(wh_path) if l.strip()]
    w("")
    w("## Webhook: pod admission (POST /mutate, bench/admission-pod.json, TLS)")
    w("")
    if wh:
        w("| mode | admissions/s | mean ms | p99 ms | status |")
        w("|---|---:|---:|---:|---|")
        for mode, rps, mean, p99, ok, check in wh:
            w("| %s | %.0f | %.2f | %.2f | %s, response check %s |" % (
                mode, float(rps), float(mean) / 1e3, float(p99) / 1e3, ok, check))
        if "webhook_hwm_kb" in meta:
            w("")
            w("Webhook peak RSS (VmHWM) after both runs: %.1f MiB." % mib(float(meta["webhook_hwm_kb"])))
        w("")
        ka = [x for x in wh if x[0].startswith("keep-alive")]
        if ka:
            rps, p99 = float(ka[0][1]), float(ka[0][3]) / 1e3
            met = rps > 5000 and p99 < 2
            w("Target of issue 7: over 5,000 admissions/s with keep-alive and p99 under 2 ms: "
              "%s (%.0f/s, p99 %.2f ms)." % ("met" if met else "**not met**", rps, p99))
    else:
        w("Not measured: %s." % ("skipped (BENCH_SKIP_WEBHOOK=1)" if meta.get("skip_webhook") == "1"
                                 else "the webhook did not start" if meta.get("have_webhook") == "1"
                                 else "grpcguard-webhook does not build yet"))

    w("")
    w("## Policy evaluation (bench/policy_bench.c, one thread)")
    w("")
    pol = [l.rstrip("\n") for l in open(pol_path) if l.strip()]
    if pol:
        w("| policy | rules | ns per policy_evaluate |")
        w("|---|---:|---:|")
        for l in pol:
            parts = l.split("\t")
            if len(parts) == 3:
                w("| %s | %s | %s |" % tuple(parts))
    else:
        w("Not measured: %s." % ("skipped (BENCH_SKIP_POLICY=1)" if meta.get("skip_policy") == "1"
                                 else "policy_bench failed" if meta.get("have_policy_lib") == "1"
                                 else "libgrpcguard-policy does not build yet"))

    jwt = [l.rstrip("\n").split("\t") for l in open(jwt_path)] if jwt_path else []
    jwt = [x for x in jwt if len(x) == 4]
    if len(jwt) > 1:
        w("")
        w("## JWT verification per RPC (bench/jwt_bench.c, thread CPU time, cached keys)")
        w("")
        w("| algorithm | OpenSSL verify floor µs | sc_jwt decode+verify µs | sc_authn_check µs |")
        w("|---|---:|---:|---:|")
        for x in jwt[1:]:
            w("| %s | %s | %s | %s |" % tuple(x))

    instr_section(w, instr_path, instr_txt)

    if bad:
        w("")
        w("## Runs excluded (errors)")
        w("")
        for r in bad:
            w("- %s %s %s round %s: %s" % (r["backend"], r["mix"], r["config"], r["round"], r["ok"]))
    w("")
    w("Raw per-run figures: %s." % meta.get("raw_name", "bench/RESULTS-raw.tsv"))
    print("\n".join(out))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "h2load":
        cmd_h2load(sys.argv[2])
    elif cmd == "lat":
        cmd_lat(sys.argv[2])
    elif cmd == "ttfb":
        cmd_ttfb(sys.argv[2])
    elif cmd == "wrk":
        cmd_wrk(sys.argv[2])
    elif cmd == "report":
        cmd_report(*sys.argv[2:9])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
