#!/usr/bin/env bash
# `make demo` in its CI mode (DEMO_FAST=1): runs demo/demo.sh for real and checks the lines
# that tell the story, then that it left nothing behind (processes, network namespaces,
# veth, /etc/netns entry, work directory). Three runs:
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
	for ns in $(grep -oE 'ggdemo-[0-9]+-(server|client|node|other)' "$out" | sort -u); do
		ip netns list 2>/dev/null | grep -qw "$ns" && bad "network namespace $ns left behind"
		[ -e "/etc/netns/$ns" ] && bad "/etc/netns/$ns (the client pod's hosts file) left behind"
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
	expect "$out" 'exit statuses on SIGTERM: webhook 0, (issuer-webhook 0, )?sidecar 0' "webhook and sidecar exit 0 on SIGTERM"
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
	env DEMO_FAST=1 DEMO_PORT_BASE="$(free_base)" DEMO_OUT="$tmp/$name-graph" "$@" timeout -s TERM 150 bash "$root/demo/demo.sh" \
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
	# Issue 15: the caller's side. The client pod's own sidecar, outbound capture in its
	# init, calls that go client app -> client sidecar -> server sidecar -> app.
	out="$tmp/netns.out"
	expect "$out" 'iptables: -A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT --to-ports 15001' "the client pod's outbound capture shown"
	expect "$out" "client's sidecar: .*app=client" "the client pod runs its own sidecar"
	expect "$out" '^ +pid [0-9]+, uid 1337, pod client-[bcdfghjklmnpqrstvwxz2456789]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$' "client's sidecar as uid 1337 with a Deployment pod name"
	expect "$out" "the client's sidecar reloaded it [0-9]+ ms after the swap" "the client's sidecar reads the same policy"
	expect "$out" 'exit statuses on SIGTERM: webhook 0, issuer-webhook 0, sidecar 0, client-sidecar 0, other-sidecar 0' "the webhooks and all three sidecars exit 0 on SIGTERM"
	# Issue 16: workload identity. Certificates from the real /v1/certify (TokenReview by a
	# stand-in, said so), each sidecar's SPIFFE ID, an ALLOW by principal: the client's calls
	# OK over mTLS, the other pod's call (sa other, its own sidecar) PERMISSION_DENIED.
	expect "$out" 'no kube-apiserver runs here: a STAND-IN answers TokenReview' "the demo says TokenReview is a stand-in"
	expect "$out" 'grpcguard-webhook --config \(identity.enabled: true\), pid [0-9]+' "the webhook serves /v1/certify"
	for sa in server client other; do
		expect "$out" "^ +identity $sa: spiffe://cluster.local/ns/demo/sa/$sa, certificate until 20[0-9-]+T" "the $sa sidecar's workload certificate"
	done
	expect "$out" '=> OK: the client.s calls carry spiffe://cluster.local/ns/demo/sa/client' "ALLOW by principal lets the client through"
	expect "$out" 'other pod \(SayHello, one call\) \| call 1: PERMISSION_DENIED .*"RBAC: access denied"' "the other pod's call is denied"
	expect "$out" '=> the other pod \(sa other, also over mutual TLS\) is denied' "identity phase verdict"
	expect "$out" '^ +spiffe://cluster.local/ns/demo/sa/client +mutual_tls +OK +[1-9]' "server saw the client's principal over mTLS"
	expect "$out" '^ +spiffe://cluster.local/ns/demo/sa/other +mutual_tls +PERMISSION_DENIED +[1-9]' "server saw the other principal, denied"
	expect "$out" "=> DEADLINE_EXCEEDED: held [0-9]+s by the client's own sidecar" "client-side (destinations) delay fault"
	expect "$out" "the server's sidecar received none of them" "a client-side fault never reaches the server's sidecar"
	expect "$out" "faults injected +delay slow-server-from-client +[1-9]" "the client's sidecar counted its fault"
	# Each table shows one reporter: the server's only destination, the client's only source.
	expect "$out" 'the server.s sidecar, reporter="destination":' "server table filtered by reporter"
	expect "$out" 'the client.s sidecar, reporter="source"' "client table filtered by reporter"
	if command -v prometheus >/dev/null; then
		expect "$out" 'prometheus: pid [0-9]+, in ggdemo-[0-9]+-node on http://127\.0\.0\.1:[0-9]+, scraping 10\.99\.9\.1:15020 and 10\.99\.9\.2:15020 every 1s' "Prometheus started, scraping both sidecars"
		expect "$out" 'prometheus, the client.s sidecar \(reporter="source"\): [1-9][0-9]* call\(s\) client -> server ended DEADLINE_EXCEEDED' "client-side DEADLINE_EXCEEDED from Prometheus"
		expect "$out" "mean 0\.[789][0-9] s over [1-9][0-9]* call\(s\): the client's 0\.8s deadline; p50 0\.[5-9][0-9] s, p99 (0\.[5-9][0-9]|1\.00) s \(interpolated inside the 0\.5-1 s bucket\)" "outgoing request duration = the client's deadline"
		expect "$out" '^ +demo/client -> demo/server  [0-9.]+ req/s  [0-9.]+% errors  p99 .*mTLS$' "edge client -> server in the text graph, marked mTLS"
		grep -qE '^ +demo/client -> server ' "$out" &&
			bad "the held calls drawn to a second server node without a sidecar (caller's labels unknown)"
		for f in svg png; do
			expect "$out" "wrote $tmp/netns-graph/service-graph\\.$f \\([1-9][0-9]* bytes\\)" "the demo says where the $f is"
		done
		svg="$tmp/netns-graph/service-graph.svg"
		if [ -s "$svg" ]; then
			"$PYTHON" - "$svg" <<'PY' || bad "service-graph.svg does not parse as XML with both workloads"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
text = " ".join(t for t in root.itertext())
assert root.tag.endswith("svg"), root.tag
assert "demo/client" in text and "demo/server" in text, text[:300]
PY
		else
			bad "no SVG at $svg"
		fi
		[ "$(head -c 8 "$tmp/netns-graph/service-graph.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
			bad "service-graph.png is not a PNG"
	else
		expect "$out" 'prometheus is not installed .*going on without' "the demo says Prometheus is missing"
	fi
else
	echo "network namespaces unavailable here: only the loopback mode is exercised"
fi
run_demo loopback DEMO_MODE=loopback
expect "$tmp/loopback.out" 'mode loopback' "loopback mode used"
expect "$tmp/loopback.out" 'one sidecar only: no caller.s sidecar, no Prometheus, no service graph' "loopback mode says what it leaves out"
expect "$tmp/loopback.out" 'skipped in loopback mode' "loopback mode skips the graph"
expect "$tmp/loopback.out" 'workload identity .* skipped in loopback mode' "loopback mode says it skips identity"

# The metrics table shows one reporter: a call between two sidecars is counted by both.
printf '%s\n' 'grpcguard_requests_total{reporter="source",grpc_service="helloworld.Greeter",grpc_method="SayHello",grpc_code="OK"} 3' \
	'grpcguard_requests_total{reporter="destination",grpc_service="helloworld.Greeter",grpc_method="SayHello",grpc_code="OK"} 5' \
	'grpcguard_request_duration_seconds_count{reporter="source"} 3' 'grpcguard_request_duration_seconds_sum{reporter="source"} 3' \
	'grpcguard_request_duration_seconds_count{reporter="destination"} 5' 'grpcguard_request_duration_seconds_sum{reporter="destination"} 0.005' \
	>"$tmp/two-reporters.txt"
table=$("$PYTHON" "$root/demo/ggdemo.py" metrics-table "$tmp/two-reporters.txt" --reporter destination)
grep -qE '^requests +helloworld.Greeter/SayHello +OK +5$' <<<"$table" &&
	grep -qE 'mean over 5 requests +1\.0 ms$' <<<"$table" ||
	bad "metrics-table --reporter destination double counts or mixes reporters: $table"

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
