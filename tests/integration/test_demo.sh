#!/usr/bin/env bash
# `make demo` in its CI mode (DEMO_FAST=1): runs demo/demo.sh for real and checks the lines
# that tell the story, then that it left nothing behind (processes, network namespaces,
# veth, work directory). Three runs:
#   1. network-namespace mode (when this machine allows it), to the end
#   2. loopback mode, to the end
#   3. network-namespace mode again, interrupted with Ctrl-C (SIGINT to its process group)
#      in the middle of the delay fault: it must still clean up and exit 130
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
export GG_BIN=${GG_BIN:-$root/build} PYTHON=${PYTHON:-/usr/bin/python3}
if [ "${GG_VALGRIND:-0}" = 1 ]; then
	echo "the demo's timed phases do not hold under valgrind; its programs are covered by the other tests"
	exit 77
fi
tmp=$(mktemp -d /tmp/gg-test-demo.XXXXXX)
demo_pid=
fail=0
finish() {
	# If a demo is still running (test failed or timed out), interrupt it so it cleans up.
	if [ -n "$demo_pid" ] && kill -0 "$demo_pid" 2>/dev/null; then
		kill -TERM "$demo_pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$demo_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$demo_pid" 2>/dev/null
	fi
	rm -rf "$tmp"
}
trap finish EXIT
trap 'exit 1' INT TERM

bad() { echo "FAIL: $*"; fail=1; }
# expect FILE REGEX WHAT
expect() { grep -qE -- "$2" "$1" || bad "$3 (no line matching /$2/)"; }

# leftovers FILE: everything the demo said it started is gone.
leftovers() {
	local out=$1 pid ns w
	# Every "pid N" the demo printed as it started things, and its own list at the end.
	for pid in $({ grep -oE '(^|[^a-z])pid [0-9]+' "$out"; grep -oE 'stopped pids [0-9 ]+' "$out"; } |
		grep -oE '[0-9]+' | sort -u); do
		if [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"; then
			bad "process $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-80)) survived the demo"
		fi
	done
	for ns in $(grep -oE 'ggdemo-[0-9]+-(server|client)' "$out" | sort -u); do
		ip netns list 2>/dev/null | grep -qw "$ns" && bad "network namespace $ns left behind"
	done
	w=$(grep -oE 'work directory /tmp/ggdemo\.[A-Za-z0-9]+' "$out" | head -n 1 | cut -d' ' -f3)
	[ -n "$w" ] || bad "the demo did not say its work directory"
	[ -n "$w" ] && [ -e "$w" ] && bad "work directory $w left behind"
	ip -o link show 2>/dev/null | grep -qE 'ggd[0-9]+[cs]' && bad "a demo veth is left in the host namespace"
	return 0
}

# story FILE: the key lines of a complete run.
story() {
	local out=$1
	expect "$out" '-> denied \(code [0-9]+\): .*port 8080' "unnamed gRPC port denied with a message naming the port"
	expect "$out" '-> allowed' "Service with name: grpc allowed"
	expect "$out" '\+ (init container|container) +grpcguard-proxy ' "patch summary shows the sidecar"
	expect "$out" '\+ init container +grpcguard-init +.*NET_ADMIN' "patch summary shows the init container"
	expect "$out" '\$ init --ports \*' "the init container intercepts every port of the pod"
	expect "$out" '\$ run --listen \[::\]:15006 --upstream original-dst' "the proxy's command line"
	expect "$out" '\+ volume ' "patch summary shows added volumes"
	expect "$out" '\+ annotation +grpcguard.io/status = ' "patch summary shows the status annotation"
	expect "$out" 'reinvoked with the patched pod: patch: none' "reinvocation gives an empty patch"
	expect "$out" 'the sidecar counted [1-9][0-9]* of them' "baseline calls went through the sidecar"
	expect "$out" 'client \| call [0-9]+: DEADLINE_EXCEEDED' "delay fault makes calls miss their deadline"
	expect "$out" '=> DEADLINE_EXCEEDED' "delay phase reached"
	grep -B1 -E '=> (DEADLINE_EXCEEDED|PERMISSION_DENIED)' "$out" | grep -q 'the app received 0 call' ||
		bad "held or denied calls reached the app (its calls log)"
	expect "$out" 'client \| call [0-9]+: PERMISSION_DENIED [0-9.]+ ms "RBAC: access denied"' "DENY gives PERMISSION_DENIED"
	expect "$out" '-> denied \(code [0-9]+\): configmap "grpcguard-policy": policy.yaml:7:20: ' "webhook refuses a broken policy ConfigMap with line:column"
	expect "$out" 'sidecar rejected it [0-9]+ ms after the swap: .*policy.yaml:7:20: ' "sidecar rejects the broken policy with line:column"
	expect "$out" 'sidecar reloaded it [0-9]+ ms after the swap \(policy generation [0-9]+\)' "reload seen in the sidecar's log and /policy"
	expect "$out" 'and keeps the last good policy' "sidecar keeps the last good policy"
	expect "$out" '=> PERMISSION_DENIED: the DENY rule is still in force' "calls still denied after the broken policy"
	expect "$out" 'SayHelloAgain, which the ALLOW names, still works' "ALLOW rule lets its method through"
	expect "$out" 'OK again: calls reach the app' "calls succeed again after the empty policy"
	# The last client line of the run is an OK one that came after the denials.
	last_denied=$(grep -nE 'client \| call [0-9]+: PERMISSION_DENIED' "$out" | tail -n 1 | cut -d: -f1)
	last_ok=$(grep -nE 'client \| call [0-9]+: OK ' "$out" | tail -n 1 | cut -d: -f1)
	[ -n "$last_ok" ] && [ -n "$last_denied" ] && [ "$last_ok" -gt "$last_denied" ] ||
		bad "no OK call after the last PERMISSION_DENIED"
	expect "$out" '^ +metric +labels +value' "metrics table header"
	expect "$out" '^ +requests +helloworld.Greeter/SayHello +OK +[1-9]' "metrics: OK requests counted"
	expect "$out" '^ +requests +.*PERMISSION_DENIED +[1-9]' "metrics: denied requests counted"
	expect "$out" '^ +faults injected +delay' "metrics: delay faults counted"
	expect "$out" '^ +authz denied +policy ' "metrics: denials counted"
	expect "$out" '^ +policy reloads +' "metrics: reloads counted"
	expect "$out" 'exit statuses on SIGTERM: webhook 0, sidecar 0' "webhook and sidecar exit 0 on SIGTERM"
	expect "$out" 'stopped pids [0-9]' "cleanup reported"
	grep -q '!!' "$out" && bad "the demo marked a problem: $(grep '!!' "$out" | head -n 3)"
	expect "$out" 'demo complete' "demo completed"
}

# A port base (29010..29090, step 10) whose ports are all free, so that this test does not
# collide with a `make demo` (29000) or another run of this test on the same machine.
free_base() {
	local b p busy
	for b in $(shuf -i 1-9 | sed 's/$/0/;s/^/290/'); do
		busy=0
		for p in $b $((b + 6)) $((b + 7)) $((b + 8)); do
			(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && { busy=1; break; }
		done
		[ $busy = 0 ] && { echo "$b"; return 0; }
	done
	echo 29000
}

run_demo() { # run_demo NAME [ENV...]: runs the demo to the end, output in $tmp/NAME.out
	local name=$1 rc t0
	shift
	t0=$(date +%s)
	env DEMO_FAST=1 DEMO_PORT_BASE="$(free_base)" "$@" timeout -s TERM 150 bash "$root/demo/demo.sh" \
		>"$tmp/$name.out" 2>&1
	rc=$?
	echo "== $name: exit $rc in $(($(date +%s) - t0)) s"
	[ $rc -eq 0 ] || bad "$name: demo exited $rc"
	story "$tmp/$name.out"
	leftovers "$tmp/$name.out"
	[ $fail -eq 0 ] || { echo "---- $name output:"; cat "$tmp/$name.out"; }
}

netns_ok=0
if [ "$(id -u)" = 0 ] && ip netns add "gg-test-demo-$$" 2>/dev/null; then
	ip netns exec "gg-test-demo-$$" iptables -t nat -S >/dev/null 2>&1 && netns_ok=1
	ip netns del "gg-test-demo-$$"
fi

if [ $netns_ok = 1 ]; then
	run_demo netns DEMO_MODE=netns
	expect "$tmp/netns.out" 'mode netns' "netns mode used"
	expect "$tmp/netns.out" 'iptables: .*REDIRECT' "init's REDIRECT rule shown"
	expect "$tmp/netns.out" 'uid 1337' "sidecar runs as uid 1337"
else
	echo "network namespaces unavailable here: only the loopback mode is exercised"
fi
run_demo loopback DEMO_MODE=loopback
expect "$tmp/loopback.out" 'mode loopback' "loopback mode used"

# Ctrl-C in the middle: its own process group (job control), SIGINT to the whole group as a
# terminal would send it.
mode=loopback
[ $netns_ok = 1 ] && mode=netns
out="$tmp/interrupt.out"
set -m
DEMO_FAST=1 DEMO_MODE=$mode DEMO_PORT_BASE="$(free_base)" bash "$root/demo/demo.sh" >"$out" 2>&1 &
demo_pid=$!
set +m
for _ in $(seq 600); do
	grep -q 'DEADLINE_EXCEEDED' "$out" 2>/dev/null && break
	kill -0 "$demo_pid" 2>/dev/null || break
	sleep 0.1
done
grep -q 'client | call [0-9]*: DEADLINE_EXCEEDED' "$out" || bad "interrupt run: never reached the delay phase"
kill -INT -- "-$demo_pid" 2>/dev/null
rc=
for _ in $(seq 100); do
	kill -0 "$demo_pid" 2>/dev/null || { wait "$demo_pid"; rc=$?; break; }
	sleep 0.1
done
echo "== interrupt ($mode): exit ${rc:-still running after 10 s}"
[ "$rc" = 130 ] || bad "interrupted demo exited ${rc:-(still running)}, expected 130"
expect "$out" 'interrupted: cleaning up' "interrupt acknowledged"
expect "$out" 'stopped pids [0-9]' "cleanup after Ctrl-C"
leftovers "$out"
[ $fail -eq 0 ] || { echo "---- interrupt output:"; cat "$out"; }
demo_pid=

[ $fail -eq 0 ] && echo "demo: all checks passed"
exit $fail
