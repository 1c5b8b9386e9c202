#!/usr/bin/env bash
# bench/instr.sh: user-space instructions per request (valgrind --tool=callgrind) of the
# sidecar and of nghttpx under the same h2load load against the nghttpd canned backend,
# and where the sidecar's go (the top functions by self cost); with perf, also a perf
# top-10 of the sidecar running natively (kernel included). Instruction counts do not
# depend on how busy the machine is, so a change on the hot path shows up here when the
# req/s figures are lost in noise.
#
# Each proxy runs under callgrind with instrumentation off; after an uninstrumented
# warm-up (INSTR_WARM requests) `callgrind_control -i on` starts counting, h2load sends
# INSTR_N requests, `callgrind_control -d` dumps the counts. Ir / INSTR_N is the figure.
#
#   bench/instr.sh [SIDECAR_BIN]    default: the working tree built into build/bench
# Knobs (environment):
#   INSTR_N=20000                   measured requests per configuration
#   INSTR_WARM=2000                 warm-up requests (not counted)
#   INSTR_MIX=8x16                  h2load shapes, one or more (space-separated): 1x1, 8x16,
#                                   100x1; each configuration is measured at each (make bench:
#                                   "8x16 100x1")
#   INSTR_CONFIGS="gg-nopolicy gg-policy nghttpx"
#   INSTR_TOP=10                    functions listed per configuration (0: none)
#   INSTR_PERF=1                    perf top-10 of the sidecar (gg-nopolicy), if perf works
#   INSTR_PERF_N=200000             requests under perf (natively: a few seconds)
#   INSTR_TSV=FILE                  also write "config mix n ir ir_per_req ok" rows there
#   INSTR_DIR=build/bench/instr     the callgrind output files are kept there
# Loopback ports 35400-35419; every process it starts is killed by PID on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${INSTR_N:-20000}
WARM=${INSTR_WARM:-2000}
MIXES=${INSTR_MIX:-8x16}
CONFIGS=${INSTR_CONFIGS:-gg-nopolicy gg-policy nghttpx}
TOP=${INSTR_TOP:-10}
PERF_N=${INSTR_PERF_N:-200000}
DIR=${INSTR_DIR:-$root/build/bench/instr}
P_BACKEND=35401 P_PROXY=35410 P_ADMIN=35411
mkdir -p "$DIR"
# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_init gg-instr

for t in valgrind callgrind_control callgrind_annotate h2load nghttpd; do
	command -v "$t" >/dev/null || { echo "instr: $t not installed (make deps)" >&2; exit 77; }
done
SC_BIN=${1:-}
if [ -z "$SC_BIN" ]; then
	make --no-print-directory BUILD="$root/build/bench" "$root/build/bench/grpcguard-sidecar" >&2
	SC_BIN=$root/build/bench/grpcguard-sidecar
fi
mix_args() { # mix -> MIXARGS
	case $1 in
	1x1) MIXARGS=(-c 1 -m 1) ;;
	8x16) MIXARGS=(-c 8 -m 16) ;;
	100x1) MIXARGS=(-c 100 -m 1) ;;
	*) return 1 ;;
	esac
}
for MIX in $MIXES; do
	mix_args "$MIX" || { echo "instr: INSTR_MIX takes 1x1, 8x16 and 100x1 (got $MIX)" >&2; exit 2; }
done

canned_backend "$P_BACKEND" || { echo "instr: nghttpd did not start" >&2; exit 1; }
: >"$work/empty-policy.yaml"
load_argv() { # mix -> LOAD, the h2load command line of that mix (request count appended)
	mix_args "$1"
	LOAD=(h2load -t 1 "${MIXARGS[@]}" -d "$work/req.bin" -H content-type:application/grpc
		-H te:trailers "http://127.0.0.1:$P_PROXY/helloworld.Greeter/SayHello")
}

proxy_argv() { # config -> PROXY array
	case $1 in
	gg-nopolicy) PROXY=("$SC_BIN" run --listen "127.0.0.1:$P_PROXY" --upstream "127.0.0.1:$P_BACKEND"
		--admin "127.0.0.1:$P_ADMIN" --policy "$work/empty-policy.yaml") ;;
	gg-policy) PROXY=("$SC_BIN" run --listen "127.0.0.1:$P_PROXY" --upstream "127.0.0.1:$P_BACKEND"
		--admin "127.0.0.1:$P_ADMIN" --policy "$root/bench/policy-realistic.yaml") ;;
	nghttpx) PROXY=(nghttpx --single-process --workers=1 --conf=/dev/null
		"-f127.0.0.1,$P_PROXY;no-tls" "-b127.0.0.1,$P_BACKEND;;proto=h2" --log-level=WARN) ;;
	*) return 1 ;;
	esac
}

# "ok" when h2load's summary says every request succeeded (2xx), else what it said.
load_ok() { # h2load output file, expected count
	local line
	line=$(grep -E '^requests:' "$1" || true)
	if echo "$line" | grep -qE "^requests: $2 total, $2 started, $2 done, $2 succeeded"; then
		echo ok
	else
		echo "ERR(${line:-no h2load summary})"
	fi
}

printf '%-12s %-6s %8s %16s %14s  %s\n' config mix requests instructions "per request" status
# A fresh proxy process per mix and configuration, as in bench/run.sh.
for MIX in $MIXES; do
	load_argv "$MIX"
	for config in $CONFIGS; do
		proxy_argv "$config" || { echo "instr: unknown configuration $config" >&2; continue; }
		out=$DIR/callgrind.$config.$MIX.out
		rm -f "$out" "$out".*
		! port_busy "$P_PROXY" || exit 1
		valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" \
			"${PROXY[@]}" >"$work/proxy-$config.log" 2>&1 &
		vpid=$!
		pids+=("$vpid")
		if ! wait_port "$P_PROXY" "$vpid"; then
			echo "instr: $config did not start; log tail:" >&2
			tail -n 5 "$work/proxy-$config.log" >&2
			continue
		fi
		timeout 300 "${LOAD[@]}" -n "$WARM" >"$work/warm.out" 2>&1 || true
		callgrind_control -i on "$vpid" >/dev/null
		timeout 600 "${LOAD[@]}" -n "$N" >"$work/h2.out" 2>&1 || true
		callgrind_control -d "$vpid" >/dev/null
		callgrind_control -i off "$vpid" >/dev/null || true
		kill "$vpid" 2>/dev/null || true
		wait "$vpid" 2>/dev/null || true
		# The dump made by -d is the one with the most instructions (the one at exit holds
		# only what came after it, with instrumentation off).
		ir=0 dump=
		for f in "$out" "$out".*; do
			[ -f "$f" ] || continue
			v=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
			# (a dump with instrumentation off can carry a wrapped, negative-looking total)
			if awk -v v="${v:-0}" -v m="$ir" 'BEGIN {exit !(v < 1e15 && v > m)}'; then
				ir=$v dump=$f
			fi
		done
		ok=$(load_ok "$work/h2.out" "$N")
		per=$(awk -v a="$ir" -v n="$N" 'BEGIN {printf "%.0f", a / n}')
		printf '%-12s %-6s %8s %16s %14s  %s\n' "$config" "$MIX" "$N" "$ir" "$per" "$ok"
		[ -n "${INSTR_TSV:-}" ] && printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$config" "$MIX" "$N" "$ir" "$per" "$ok" >>"$INSTR_TSV"
		rm -f "$DIR/$config.$MIX.callgrind"
		[ -n "$dump" ] && cp "$dump" "$DIR/$config.$MIX.callgrind"
	done
done

if [ "$TOP" -gt 0 ]; then
	for MIX in $MIXES; do
		for config in $CONFIGS; do
			f=$DIR/$config.$MIX.callgrind
			[ -f "$f" ] || continue
			echo
			echo "== callgrind: $config, top $TOP functions by self instructions ($N requests, $MIX)"
			callgrind_annotate --inclusive=no --threshold=100 "$f" 2>/dev/null |
				awk '/^-+$/ {s++; next} s >= 3 && NF' | grep -vE '^Ir|^ *$' |
				sed -n "1,$((TOP + 1))p" |
				awk -v n="$N" '{gsub(",", "", $1); $1 = sprintf("%8.0f/req", $1 / n); print}'
		done
	done
fi

if [ "${INSTR_PERF:-1}" = 1 ] && [[ " $CONFIGS " == *" gg-nopolicy "* ]] &&
	perf record -q -o "$work/probe.data" -- true >/dev/null 2>&1; then
	MIX=${MIXES%% *}
	load_argv "$MIX"
	proxy_argv gg-nopolicy
	"${PROXY[@]}" >"$work/proxy-perf.log" 2>&1 &
	spid=$!
	pids+=("$spid")
	if wait_port "$P_PROXY" "$spid"; then
		timeout 120 "${LOAD[@]}" -n "$WARM" >/dev/null 2>&1 || true
		perf record -q -F 999 -o "$DIR/perf.data" -p "$spid" >"$work/perf.log" 2>&1 &
		ppid=$!
		pids+=("$ppid")
		sleep 0.3
		timeout 300 "${LOAD[@]}" -n "$PERF_N" >/dev/null 2>&1 || true
		kill -INT "$ppid" 2>/dev/null || true
		wait "$ppid" 2>/dev/null || true
		echo
		echo "== perf: gg-nopolicy natively, top 10 by self time ($PERF_N requests, $MIX; kernel included)"
		perf report -i "$DIR/perf.data" --no-children --stdio --sort dso,symbol -g none 2>/dev/null |
			grep -E '^ +[0-9.]+%' | sed -e 's/[ -]*$//' | sed -n '1,10p'
	fi
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
fi
