"""bench/report.py, the part of `make bench` that turns raw runs into RESULTS.md: the
medians with [min–max], the per-round ratios to the best peer and the "Targets of issue
17" verdicts, on a small hand-made raw TSV whose expected figures are worked out below.
No program is measured; report.py runs as make bench runs it (`report.py report RAW META
WEBHOOK POLICY JWT INSTR INSTR_TXT`, Debian's python3).

One backend (nghttpd), 8x16, three rounds, n = 1000 requests per run:

  round  config       req/s    mean  p99   cpu_s   -> req per CPU s  hwm kB  idle kB
  1      direct       200000   500   900   0
  1      gg-nopolicy  100000   600   1000  0.005   200000            5000    4000
  1      nghttpx      100000   700   1050  0.010   100000            15000   12000
  1      haproxy-h2    80000   900   1300  0.020    50000            18000   15000
  2      direct       200000   500   900
  2      gg-nopolicy  120000   620   1100  0.004   250000            5100    4096
  2      nghttpx      100000   650   1050  0.008   125000
  2      haproxy-h2    90000   900   1300  0.020    50000
  3      direct       300000   500   900
  3      gg-nopolicy  110000   640   1200  0.005   200000            5200    4200
  3      nghttpx      FAILED (h2load errors): left out of every figure and listed
  3      haproxy-h2    60000   900   1300  0.0125   80000

Expected, per round then median [min–max]:
  req/s per core over the best peer of the round: 2.0, 2.0, 2.5 (round 3: haproxy-h2 is
    the only peer) -> "2.00× [2.00–2.50] yes"; the ratio of the medians would be 1.76
  CPU per request over nghttpx's: rounds 1, 2 only: 0.5, 0.5 -> "0.50× [0.50–0.50] yes"
  added mean: +100 +120 +140 -> +120 [+100–+140]; nghttpx +200 +150 -> +175;
    haproxy-h2 +400 -> yes
  added p99: +100 +200 +300 -> +200; nghttpx +150 -> **no**
  idle RSS: 3.9 4.0 4.1 MiB -> "4.0 MiB [3.9–4.1] **no**" (4.0 is not under 4)
  peak RSS: 4.9 5.0 5.1 MiB -> "5.0 MiB [4.9–5.1] yes"
  req/s over the best peer: 1.00 1.20 1.83 -> "1.20× [1.00–1.83]"; direct 2.00
  callgrind: 30,000 vs 45,000 instructions per request -> 0.67×
A second report from the same file without the idle_kb column (raw files of older runs)
must work and leave the idle row out.
"""
import os
import subprocess
import sys
import tempfile

ROOT = os.environ.get("GG_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
REPORT = os.path.join(ROOT, "bench", "report.py")
PY = os.environ.get("PYTHON", "/usr/bin/python3")

HEADER = ["backend", "mix", "config", "round", "n", "rps", "mean_us", "p99_us", "cpu_s",
          "hwm_kb", "anon_kb", "ok", "ttfb_us", "idle_kb"]
RUNS = [
    # round, config, rps, mean, p99, cpu_s, hwm, idle, ok
    (1, "direct", 200000, 500, 900, 0, 0, 0, "ok"),
    (1, "gg-nopolicy", 100000, 600, 1000, 0.005, 5000, 4000, "ok"),
    (1, "nghttpx", 100000, 700, 1050, 0.010, 15000, 12000, "ok"),
    (1, "haproxy-h2", 80000, 900, 1300, 0.020, 18000, 15000, "ok"),
    (2, "direct", 200000, 500, 900, 0, 0, 0, "ok"),
    (2, "gg-nopolicy", 120000, 620, 1100, 0.004, 5100, 4096, "ok"),
    (2, "nghttpx", 100000, 650, 1050, 0.008, 15000, 12000, "ok"),
    (2, "haproxy-h2", 90000, 900, 1300, 0.020, 18000, 15000, "ok"),
    (3, "direct", 300000, 500, 900, 0, 0, 0, "ok"),
    (3, "gg-nopolicy", 110000, 640, 1200, 0.005, 5200, 4200, "ok"),
    (3, "nghttpx", 1, 1, 1, 0.001, 15000, 12000, "ERR(990/1000-succeeded)"),
    (3, "haproxy-h2", 60000, 900, 1300, 0.0125, 18000, 15000, "ok"),
]

failures = []


def check(cond, what):
    print("%s  %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)


def row_of(text, *starts, after=None):
    """The first markdown table row that begins with the given cells (after the line
    `after`, when given)."""
    prefix = "| " + " | ".join(starts) + " |"
    lines = text.splitlines()
    if after is not None:
        lines = lines[lines.index(after):] if after in lines else []
    for line in lines:
        if line.startswith(prefix):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    return None


def report(d, with_idle):
    cols = HEADER if with_idle else HEADER[:-1]
    raw = os.path.join(d, "raw-%d.tsv" % with_idle)
    with open(raw, "w") as f:
        f.write("\t".join(cols) + "\n")
        for rd, config, rps, mean, p99, cpu, hwm, idle, ok in RUNS:
            vals = ["nghttpd", "8x16", config, str(rd), "1000", str(rps), str(mean), str(p99),
                    "%.4f" % cpu, str(hwm), "1000", ok, "0", str(idle)]
            f.write("\t".join(vals[:len(cols)]) + "\n")
    meta = os.path.join(d, "meta")
    with open(meta, "w") as f:
        f.write("rounds=3\nrounds_planned=3\nhave_sidecar=1\nseconds=10\n")
    empty = os.path.join(d, "empty")
    open(empty, "w").close()
    instr = os.path.join(d, "instr.tsv")
    with open(instr, "w") as f:
        f.write("gg-nopolicy\t8x16\t1000\t30000000\t30000\tok\n")
        f.write("nghttpx\t8x16\t1000\t45000000\t45000\tok\n")
    p = subprocess.run([PY, REPORT, "report", raw, meta, empty, empty, empty, instr, empty],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    check(p.returncode == 0, "report.py report exits 0 (with_idle=%s): %s" % (with_idle, p.stderr[-500:]))
    return p.stdout


def main():
    d = tempfile.mkdtemp(prefix="gg-bench-report.")
    try:
        out = report(d, True)
        t = "req/s per proxy core ≥ 1.5× the best peer's"
        r = row_of(out, t, "nghttpd")
        check(r is not None and r[3] == "2.00× [2.00–2.50] yes",
              "per core over the best peer, per round (round 3: haproxy-h2): %s" % r)
        r = row_of(out, "CPU per request ≤ 0.67× nghttpx's", "nghttpd")
        check(r is not None and r[3] == "0.50× [0.50–0.50] yes",
              "CPU per request over nghttpx, only rounds where both ran: %s" % r)
        r = row_of(out, "added mean µs (over direct) below every peer's", "nghttpd")
        check(r is not None and r[3] == "+120 [+100–+140] vs nghttpx +175, haproxy-h2 +400 yes",
              "added mean latency against every peer: %s" % r)
        r = row_of(out, "added p99 µs (over direct) below every peer's", "nghttpd")
        check(r is not None and r[3] == "+200 [+100–+300] vs nghttpx +150, haproxy-h2 +400 **no**",
              "added p99 latency, not below nghttpx's: %s" % r)
        r = row_of(out, "idle RSS < 4 MiB", "nghttpd")
        check(r is not None and r[3].startswith("4.0 MiB [3.9–4.1]") and r[3].endswith("**no**"),
              "idle RSS median 4.0 MiB is not under 4: %s" % r)
        r = row_of(out, "peak RSS < 6 MiB at 8x16 (other mixes: information)", "nghttpd")
        check(r is not None and r[3].startswith("5.0 MiB [4.9–5.1]") and r[3].endswith(" yes"),
              "peak RSS at 8x16: %s" % r)
        r = row_of(out, "information: req/s × the best peer's (direct: the cap)", "nghttpd")
        check(r is not None and r[3] == "1.20× [1.00–1.83] (direct: 2.00×)" and r[2] == "-",
              "raw req/s over the best peer, no verdict; 1x1 not run: %s" % r)
        r = row_of(out, "information: instructions per request (callgrind), sidecar vs nghttpx", "nghttpd")
        check(r is not None and r[3] == "30,000 vs 45,000: 0.67×", "callgrind ratio: %s" % r)
        check("Met: 4 of 6." in out, "verdict count (4 of 6)")
        # The per-mix table: medians over the good runs only, [min–max].
        mix = "### 8 connections x 16 streams (throughput)"
        r = row_of(out, "nghttpx --workers=1", after=mix)
        check(r is not None and r[1] == "100000 [100000–100000]" and r[3] == "112500 [100000–125000]",
              "nghttpx's failed round is out of its medians: %s" % r)
        r = row_of(out, "grpcguard, no policy", after=mix)
        check(r is not None and r[1] == "110000 [100000–120000]" and r[2] == "1.20×"
              and r[4] == "2.00×" and r[10] == "0.50×" and r[12] == "4.0 [3.9–4.1]",
              "per-mix table row of the sidecar: %s" % r)
        check("- nghttpd 8x16 nghttpx round 3: ERR(990/1000-succeeded)" in out,
              "the failed run is listed as excluded")
        r = row_of(out, "grpcguard, no policy", "-", "-", "110,000")
        check(r is not None and r[4] == "200,000" and r[5] == "0.50" and r[6] == "-"
              and r[9] == "4.0" and r[10] == "5.0",
              "README summary row (medians): %s" % r)

        out = report(d, False)
        check("idle RSS <" not in out and "| req/s per proxy core" in out,
              "a raw file without idle_kb: report without the idle row")
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
