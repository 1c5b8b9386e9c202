#!/usr/bin/env bash
# bench/ab.sh: before/after figures of one sidecar optimisation.
#
#   bash bench/ab.sh REV_BEFORE REV_AFTER [ROUNDS]      e.g. bash bench/ab.sh HEAD~1 HEAD
#
# Builds grpcguard-sidecar at both revisions (git archive into build/bench/ab/<commit>/),
# starts nghttpd with the canned gRPC reply, then for ROUNDS rounds (default 5) runs each
# build in turn, interleaved, with the realistic policy: a warm-up, the 8x16 mix (AB_N_THR
# requests, default 50000) and the 1x1 mix (AB_N_LAT, default 2000). Prints, per revision,
# the medians of req/s (8x16), CPU seconds per 100k requests (8x16), mean and p99 latency
# (1x1) and the peak RSS, and the after/before ratio. Same pinning and ports policy as
# bench/run.sh (ports 35300-35319, everything killed by PID on exit). Measures, asserts
# nothing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ $# -ge 2 ] || { echo "usage: bash bench/ab.sh REV_BEFORE REV_AFTER [ROUNDS]" >&2; exit 2; }
ROUNDS=${3:-5}
N_THR=${AB_N_THR:-50000}
N_LAT=${AB_N_LAT:-2000}
PY=${PYTHON:-/usr/bin/python3}
P_BACKEND=35301 P_PROXY=35310 P_ADMIN=35311
. "$root/bench/lib.sh"
bench_init gg-ab
say() { printf '[ab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cpu_ns() {
	local v
	v=$(cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}') || true
	echo "${v:-0}"
}
if [ "$(nproc)" -ge 2 ]; then CPU_LOAD="taskset -c 0" CPU_PROXY="taskset -c 1"; else CPU_LOAD="" CPU_PROXY=""; fi

declare -A BIN
revs=()
for rev in "$1" "$2"; do
	id=$(git rev-parse --verify "$rev^{commit}")
	short=$(git rev-parse --short "$id")
	dir=$root/build/bench/ab/$short
	if [ ! -x "$dir/bin/grpcguard-sidecar" ]; then
		say "building $rev ($short)"
		rm -rf "$dir/src" && mkdir -p "$dir/src"
		git archive --format=tar "$id" | tar -x -m -C "$dir/src"
		make --no-print-directory -C "$dir/src" BUILD="$dir/bin" "$dir/bin/grpcguard-sidecar" \
			>"$work/build-$short.log" 2>&1 || { tail -n 5 "$work/build-$short.log" >&2; exit 1; }
	fi
	BIN[$short]=$dir/bin/grpcguard-sidecar
	revs+=("$short")
done

canned_backend "$P_BACKEND" $CPU_LOAD # unquoted: empty on one CPU

load() { # n c m [logfile]
	local la=()
	[ -n "${4:-}" ] && la=(--log-file="$4")
	timeout 120 $CPU_LOAD h2load -t 1 -n "$1" -c "$2" -m "$3" -d "$work/req.bin" \
		-H content-type:application/grpc -H te:trailers "${la[@]}" \
		"http://127.0.0.1:$P_PROXY/helloworld.Greeter/SayHello" >"$work/h2.out" 2>&1 || true
}
raw=$work/ab.tsv
: >"$raw"
for ((round = 1; round <= ROUNDS; round++)); do
	for r in "${revs[@]}"; do
		$CPU_PROXY "${BIN[$r]}" run --listen 127.0.0.1:$P_PROXY --upstream 127.0.0.1:$P_BACKEND \
			--admin 127.0.0.1:$P_ADMIN --policy "$root/bench/policy-realistic.yaml" \
			>"$work/sidecar-$r.log" 2>&1 &
		spid=$!
		pids+=("$spid")
		wait_port "$P_PROXY" "$spid" || { tail -n 5 "$work/sidecar-$r.log" >&2; exit 1; }
		load 5000 8 16
		c0=$(cpu_ns "$spid")
		load "$N_THR" 8 16
		c1=$(cpu_ns "$spid")
		read -r rps _ ok < <("$PY" bench/report.py h2load "$work/h2.out" || echo "0 0 ERR")
		load "$N_LAT" 1 1 "$work/lat.log"
		read -r mean p99 < <("$PY" bench/report.py lat "$work/lat.log" || echo "0 0")
		read -r _ _ lok < <("$PY" bench/report.py h2load "$work/h2.out" || echo "0 0 ERR")
		hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$spid/status" 2>/dev/null || echo 0)
		kill -0 "$spid" 2>/dev/null || ok="ERR(exited)"
		kill "$spid" 2>/dev/null || true
		wait "$spid" 2>/dev/null || true
		rm -f "$work/lat.log"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$rps" \
			"$(awk -v a="$c0" -v b="$c1" -v n="$N_THR" 'BEGIN {printf "%.3f", (b - a) / 1e9 / n * 1e5}')" \
			"$mean" "$p99" "${hwm:-0}" "$ok/$lok" >>"$raw"
		say "r$round $r: $rps req/s, 1x1 mean ${mean}us p99 ${p99}us, hwm ${hwm}kB $ok/$lok"
	done
done

"$PY" - "$raw" "${revs[0]}" "${revs[1]}" "$1" "$2" "$ROUNDS" <<'EOF'
import statistics, sys
raw, a, b, ra, rb, rounds = sys.argv[1:7]
rows = [l.rstrip("\n").split("\t") for l in open(raw) if l.strip()]
def med(rev, i, agg=statistics.median):
    v = [float(r[i]) for r in rows if r[0] == rev and r[6] == "ok/ok"]
    return agg(v) if v else float("nan")
print("sidecar %s (%s) -> %s (%s), realistic policy, nghttpd backend, median of %s rounds" % (ra, a, rb, b, rounds))
print("| figure | before | after | after/before |")
print("|---|---:|---:|---:|")
for name, i, agg, fmt in (("req/s, 8x16", 1, statistics.median, "%.0f"),
                          ("CPU s per 100k requests, 8x16", 2, statistics.median, "%.3f"),
                          ("mean latency µs, 1x1", 3, statistics.median, "%.0f"),
                          ("p99 latency µs, 1x1", 4, statistics.median, "%.0f"),
                          ("peak RSS KiB", 5, max, "%.0f")):
    x, y = med(a, i, agg), med(b, i, agg)
    print("| %s | %s | %s | %s |" % (name, fmt % x, fmt % y, ("%.2fx" % (y / x)) if x else "-"))
bad = [r for r in rows if r[6] != "ok/ok"]
if bad:
    print("excluded runs: " + ", ".join("%s %s" % (r[0], r[6]) for r in bad))
EOF
