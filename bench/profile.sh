#!/usr/bin/env bash
# bench/profile.sh: where does grpcguard-sidecar spend its time under the 8x16 load?
#
# Starts nghttpd (canned gRPC reply) and the sidecar (PROFILE_POLICY, default the realistic
# policy), then while h2load pushes PROFILE_N requests (-c 8 -m 16) through it:
#   - perf record (user+kernel if allowed, DWARF call graphs) of the sidecar process, then
#     `perf report` of the top self-time symbols and the top inclusive (children) entries;
#   - syscalls per request (perf stat -e raw_syscalls:sys_enter) and the split by syscall
#     (strace -c, a separate short run since strace slows the process down);
#   - where perf cannot record, valgrind --tool=callgrind with PROFILE_N_CALLGRIND requests.
# Output on stdout; raw files kept in PROFILE_DIR (default build/bench/profile).
# Loopback ports 35200-35219; processes killed by PID on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
B=$root/build/bench
N=${PROFILE_N:-300000}
NCG=${PROFILE_N_CALLGRIND:-20000}
POLICY=${PROFILE_POLICY:-$root/bench/policy-realistic.yaml}
DIR=${PROFILE_DIR:-$B/profile}
P_BACKEND=35201 P_PROXY=35210 P_ADMIN=35211
mkdir -p "$DIR"
. "$root/bench/lib.sh"
bench_init gg-prof
# PROFILE_BIN: a sidecar binary to profile (e.g. build/bench/bin/grpcguard-sidecar, built by
# run.sh from the last commit); by default the working tree is built into build/bench.
SC_BIN=${PROFILE_BIN:-}
if [ -z "$SC_BIN" ]; then
	make --no-print-directory BUILD="$B" "$B/grpcguard-sidecar" >&2
	SC_BIN=$B/grpcguard-sidecar
fi

canned_backend "$P_BACKEND" taskset -c 0

SIDECAR=("$SC_BIN" run --listen "127.0.0.1:$P_PROXY" --upstream "127.0.0.1:$P_BACKEND"
	--admin "127.0.0.1:$P_ADMIN" --policy "$POLICY")
LOAD=(taskset -c 0 h2load -t 1 -c 8 -m 16 -d "$work/req.bin" -H content-type:application/grpc
	-H te:trailers "http://127.0.0.1:$P_PROXY/helloworld.Greeter/SayHello")

start_sidecar() { # [wrapper...]
	"$@" "${SIDECAR[@]}" >"$work/sidecar.log" 2>&1 &
	spid=$!
	pids+=("$spid")
	wait_port "$P_PROXY" "$spid" || { tail -n 5 "$work/sidecar.log" >&2; exit 1; }
}
stop_sidecar() { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }

start_sidecar taskset -c 1
"${LOAD[@]}" -n 5000 >/dev/null 2>&1 # warm-up
if perf record -q -F 1999 --call-graph dwarf,16384 -o "$DIR/perf.data" -p "$spid" \
	-- sleep 0.2 >/dev/null 2>&1; then
	perf record -q -F 1999 --call-graph dwarf,16384 -o "$DIR/perf.data" -p "$spid" >"$work/perf.log" 2>&1 &
	ppid=$!
	pids+=("$ppid")
	sleep 0.5
	"${LOAD[@]}" -n "$N" | grep -E 'finished|requests:'
	kill -INT "$ppid"
	wait "$ppid" || true
	echo
	echo "== perf: self time by object (sidecar, $N requests at 8x16)"
	perf report -i "$DIR/perf.data" --no-children --stdio --sort dso -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' | sed -n '1,12p'
	echo
	echo "== perf: top self time by symbol"
	perf report -i "$DIR/perf.data" --no-children --stdio --sort dso,symbol -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' | sed -n '1,30p'
	echo
	echo "== perf: top inclusive time (children)"
	perf report -i "$DIR/perf.data" --children --stdio --sort symbol -g none 2>/dev/null |
		grep -E '^ +[0-9.]+%' | sed -n '1,30p'
	echo
	echo "== perf: call chains into malloc/free/write/writev/sendmsg"
	perf report -i "$DIR/perf.data" --no-children --stdio --sort symbol -g caller,0.5,callee \
		--symbols=malloc,free,__libc_malloc,__libc_free,_int_malloc,_int_free,__GI___writev,writev,__libc_write,write,__libc_sendmsg 2>/dev/null |
		grep -v '^#' | grep -v '^$' | sed -n '1,60p'
	echo
	echo "== syscalls per request"
	if perf stat -e raw_syscalls:sys_enter -p "$spid" -o "$work/stat.txt" -- sleep 0.1 >/dev/null 2>&1; then
		perf stat -e raw_syscalls:sys_enter -p "$spid" -o "$work/stat.txt" &
		ppid=$!
		pids+=("$ppid")
		sleep 0.3
		"${LOAD[@]}" -n 50000 >/dev/null
		kill -INT "$ppid"
		wait "$ppid" || true
		awk '/raw_syscalls:sys_enter/ {gsub(",", "", $1); printf "%s syscalls for 50000 requests: %.2f per request\n", $1, $1 / 50000}' "$work/stat.txt"
	else
		echo "perf stat cannot count syscalls here"
	fi
	stop_sidecar
	if command -v strace >/dev/null; then
		start_sidecar taskset -c 1
		strace -c -f -o "$work/strace.txt" -p "$spid" &
		ppid=$!
		pids+=("$ppid")
		sleep 0.5
		"${LOAD[@]}" -n 20000 >/dev/null
		kill -INT "$ppid"
		wait "$ppid" || true
		echo "== strace -c (20000 requests)"
		head -n 20 "$work/strace.txt"
		stop_sidecar
	fi
else
	stop_sidecar
	echo "== perf unavailable: callgrind with $NCG requests"
	start_sidecar valgrind --tool=callgrind --callgrind-out-file="$DIR/callgrind.out"
	"${LOAD[@]}" -n "$NCG" | grep -E 'finished|requests:'
	stop_sidecar
	callgrind_annotate --inclusive=no "$DIR/callgrind.out" 2>/dev/null | sed -n '1,40p'
fi
