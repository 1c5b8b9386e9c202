#!/usr/bin/env bash
# Issue 5: a pod's inbound traffic path, built from real network namespaces.
#
#   client-pod netns  --veth-->  server-pod netns
#                                  greeter (grpcio) on :8080   plain HTTP on :8081
#                                  grpcguard-sidecar init --ports 8080   (iptables REDIRECT)
#                                  grpcguard-sidecar run ... --upstream original-dst, uid 1337
#
# From the client: gRPC to server:8080 goes through the sidecar (an allow-all policy lets
# it through and the sidecar counts it; a DENY policy denies it; a delay fault delays it
# or runs it into its deadline, and nothing reaches the app); HTTP to 8081 bypasses the
# sidecar (its metrics do not move); with the sidecar stopped calls fail, restarted they
# work; a second `init` leaves exactly one set of rules; with `--ports *` plain HTTP on 8081
# passes through the sidecar as TCP. IPv4 always, IPv6 too when the
# kernel has it. Everything created (namespaces, veth, processes, files) is removed on
# exit, also on failure. Skips (77) only when the machine forbids netns or iptables.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

netns_require ip iptables-restore iptables-save setpriv curl

id=$$
NS_S=ggnet-$id-srv
NS_C=ggnet-$id-cli
VETH_S=ggv${id}s # IFNAMSIZ is 16: "ggv" + pid (<= 7 digits) + 1
VETH_C=ggv${id}c
IP4_S=10.231.0.1 IP4_C=10.231.0.2
IP6_S=fd00:231::1 IP6_C=fd00:231::2
tmp=$(mktemp -d /tmp/gg-netns.XXXXXX)
chmod 755 "$tmp"
sc_pid= greeter_pid= http_pid=
sidecar_runs=0

# ---- cleanup, whatever happens -------------------------------------------------------
cleanup() {
	stop_pid "$sc_pid"
	stop_pid "$greeter_pid"
	stop_pid "$http_pid"
	netns_teardown "$NS_S" "$NS_C" # takes the veth pair with it
	ip link del "$VETH_S" 2>/dev/null # only if it never left the host namespace
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# Foreground only: a function run with & would fork a subshell and $! would not be the
# program's pid. Background programs are started with `ip netns exec` directly (it execs).
in_s() { ip netns exec "$NS_S" "$@"; }
in_c() { ip netns exec "$NS_C" "$@"; }

# ---- the two pods --------------------------------------------------------------------
netns_pair "$NS_S" "$NS_C" "$VETH_S" "$VETH_C" "$IP4_S" "$IP4_C"
v6=1
{ in_s ip -6 addr add "$IP6_S/64" dev "$VETH_S" nodad &&
	in_c ip -6 addr add "$IP6_C/64" dev "$VETH_C" nodad; } 2>/dev/null || v6=0
netns_pair_up "$NS_S" "$NS_C" "$VETH_S" "$VETH_C"
netns_need_nat "$NS_S"
if [ $v6 = 1 ] && ! in_s ip6tables-save -t nat >/dev/null 2>&1; then
	echo "note: no ip6tables nat table: IPv6 part skipped"
	v6=0
fi
echo "pods: $NS_S ($IP4_S$([ $v6 = 1 ] && echo ", $IP6_S")) <- $NS_C ($IP4_C)"

greeter_stubs # build/py from `make py`, or generated here

# ---- helpers --------------------------------------------------------------------------
call() { call_ms "$NS_C" "$@"; } # TARGET DEADLINE NAME [client args]: from the client pod; "CODE MS"
expect_call() { # CODE TARGET DEADLINE NAME [args]: fails the test on another code
	local want=$1 got
	shift
	got=$(call "$@")
	[ "${got%% *}" = "$want" ] || die "call $3 to $1: got \"$got\", want $want"
	echo "  call $3 -> $got"
}
wait_code() { # CODE TARGET NAME: until the policy in force gives CODE (reload is async)
	local end=$((SECONDS + 15)) got
	while :; do
		got=$(call "$2" 5 "$3")
		[ "${got%% *}" = "$1" ] && return 0
		[ $SECONDS -lt $end ] || die "policy not applied within 15 s: $3 got \"$got\", want $1"
		sleep 0.3
	done
}
metrics() { ns_metrics "$NS_S"; }
msum() { metrics | series_sum "$1"; } # REGEX: the sum of every sample whose name{labels} matches
calls_logged() { # NAME: how many calls with this name reached the app
	grep -c " $1\$" "$tmp/calls.log" 2>/dev/null || true
}
set_policy() { # stdin -> policy.yaml, atomically (rename), like a ConfigMap update
	cat >"$tmp/policy/.policy.yaml.new" && chmod 644 "$tmp/policy/.policy.yaml.new" &&
		mv -f "$tmp/policy/.policy.yaml.new" "$tmp/policy/policy.yaml"
}

vg=()
if [ "${GG_VALGRIND:-0}" = 1 ]; then
	command -v valgrind >/dev/null || die "GG_VALGRIND=1 but valgrind is not installed"
	mkdir -m 777 "$tmp/vg"
	vg=(valgrind --error-exitcode=99 --leak-check=full --log-file="$tmp/vg/%p.log")
fi
ready_secs=15
[ ${#vg[@]} -gt 0 ] && ready_secs=60

# The sidecar runs as uid 1337: give it its own readable copy of the binary and policy.
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
mkdir -m 755 "$tmp/policy"
printf 'apiVersion: grpcguard.io/v1\nkind: Policy\n' | set_policy

# Run 1 listens dual-stack, so redirected IPv6 connections find the proxy too; with the
# issue's 0.0.0.0:15006 they are refused (IPv6 rules redirect to a port nobody listens on
# for IPv6). Run 2 uses the issue's exact command line and is checked over IPv4 only.
listen=0.0.0.0:15006
[ $v6 = 1 ] && listen='[::]:15006'
# The admin port listens on every address, as injected into a pod (Prometheus and the
# kubelet reach it on the pod IP).
admin=0.0.0.0:15020
[ $v6 = 1 ] && admin='[::]:15020'

start_sidecar() {
	sidecar_runs=$((sidecar_runs + 1))
	ip netns exec "$NS_S" setpriv --reuid 1337 --regid 1337 --clear-groups "${vg[@]}" \
		"$tmp/grpcguard-sidecar" run --listen "$listen" --upstream original-dst \
		--admin "$admin" --policy "$tmp/policy/policy.yaml" \
		>"$tmp/sidecar.$sidecar_runs.log" 2>&1 &
	sc_pid=$!
	local end=$((SECONDS + ready_secs))
	until [ "$(in_s curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
		http://127.0.0.1:15020/readyz)" = 200 ]; do
		if ! kill -0 "$sc_pid" 2>/dev/null || [ $SECONDS -ge $end ]; then
			tail -n 20 "$tmp/sidecar.$sidecar_runs.log"
			die "the sidecar did not become ready (run $sidecar_runs)"
		fi
		sleep 0.2
	done
	local uid
	uid=$(ps -o uid= -p "$sc_pid" | tr -d ' ')
	[ "$uid" = 1337 ] || die "the sidecar runs as uid \"$uid\", want 1337"
	echo "sidecar run $sidecar_runs ready (pid $sc_pid, uid $uid)"
}
stop_sidecar() { # SIGTERM; the sidecar must exit 0 (99 = valgrind found errors)
	local rc
	kill -TERM "$sc_pid"
	for _ in $(seq 100); do kill -0 "$sc_pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$sc_pid" 2>/dev/null && die "the sidecar ignored SIGTERM for 10 s"
	wait "$sc_pid"
	rc=$?
	sc_pid=
	if [ $rc -ne 0 ]; then
		tail -n 30 "$tmp/sidecar.$sidecar_runs.log"
		[ ${#vg[@]} -gt 0 ] && cat "$tmp"/vg/*.log
		die "the sidecar exited with $rc after SIGTERM"
	fi
}
count_rules() { # TOOL: "<jumps> <8080 rules> <chain rules>"
	in_s "$1" -t nat | awk '
		$0 == "-A PREROUTING -p tcp -j GRPCGUARD_INBOUND" { j++ }
		/^-A GRPCGUARD_INBOUND/ { c++ }
		/^-A GRPCGUARD_INBOUND .*--dport 8080 -j REDIRECT --to-ports 15006$/ { r++ }
		END { printf "%d %d %d\n", j, r, c }'
}

# ---- the app -----------------------------------------------------------------------------
app_host=0.0.0.0
[ $v6 = 1 ] && app_host=::
ip netns exec "$NS_S" "$PYTHON" "$root/tests/greeter/greeter_server.py" --host "$app_host" --port 8080 \
	--calls-log "$tmp/calls.log" --name server-pod >"$tmp/greeter.log" 2>&1 &
greeter_pid=$!
mkdir -p "$tmp/www" && echo "plain http" >"$tmp/www/hello.txt"
ip netns exec "$NS_S" "$PYTHON" -m http.server 8081 --bind 0.0.0.0 --directory "$tmp/www" \
	>"$tmp/http.log" 2>&1 &
http_pid=$!
wait_until 15 port_open "$NS_S" 127.0.0.1 8080 || die "greeter did not start: $(cat "$tmp/greeter.log")"
wait_until 15 port_open "$NS_S" 127.0.0.1 8081 || die "http.server did not start"

# Before init the app is reached directly (proves the network itself works).
T4=$IP4_S:8080
T6="[$IP6_S]:8080"
expect_call OK "$T4" 5 direct-before-init

# ---- init ----------------------------------------------------------------------------
echo "== init --ports 8080"
in_s "${vg[@]}" "$GG_BIN/grpcguard-sidecar" init --ports 8080 >"$tmp/init1.log" 2>&1 ||
	die "init failed: $(cat "$tmp/init1.log")"
read -r j r c < <(count_rules iptables-save)
[ "$j $r $c" = "1 1 1" ] || die "IPv4 rules after init: $j jumps, $r 8080 rules, $c chain rules"
if [ $v6 = 1 ]; then
	read -r j r c < <(count_rules ip6tables-save)
	[ "$j $r $c" = "1 1 1" ] || die "IPv6 rules after init: $j jumps, $r 8080 rules, $c chain rules"
fi

# Redirected, with nothing listening on 15006 yet: gRPC to 8080 fails, HTTP to 8081 works.
expect_call UNAVAILABLE "$T4" 3 no-sidecar-yet
[ "$(calls_logged no-sidecar-yet)" = 0 ] || die "a call reached the app around the redirect"
[ "$(in_c curl -sS --max-time 5 "http://$IP4_S:8081/hello.txt")" = "plain http" ] ||
	die "HTTP to 8081 does not bypass the redirect"

# ---- through the sidecar -----------------------------------------------------------------
echo "== sidecar, allow-all policy"
start_sidecar
ok_before=$(msum '^grpcguard_requests_total.*grpc_code="OK"')
expect_call OK "$T4" 5 via-sidecar
[ "$(calls_logged via-sidecar)" = 1 ] || die "the allowed call did not reach the app once"
ok_after=$(msum '^grpcguard_requests_total.*grpc_code="OK"')
[ "$ok_after" = $((ok_before + 1)) ] ||
	die "the sidecar did not count the call: requests_total OK $ok_before -> $ok_after"

echo "== the admin port seen from another pod: probes and metrics, not the policy"
http_code() { "$@" -s -o /dev/null -w '%{http_code}' --max-time 5; }
for path in /readyz /metrics; do
	[ "$(http_code in_c curl "http://$IP4_S:15020$path")" = 200 ] || die "$path not served on the pod IP"
done
[ "$(http_code in_c curl "http://$IP4_S:15020/policy")" = 403 ] ||
	die "/policy is served to another pod (want 403)"
[ "$(http_code in_s curl http://127.0.0.1:15020/policy)" = 200 ] || die "/policy not served on loopback"
if [ $v6 = 1 ]; then
	[ "$(http_code in_c curl -g "http://[$IP6_S]:15020/policy")" = 403 ] ||
		die "/policy is served to another pod over IPv6 (want 403)"
	[ "$(http_code in_s curl -g 'http://[::1]:15020/policy')" = 200 ] ||
		die "/policy not served on ::1"
fi
echo "  /readyz and /metrics 200 from the client pod, /policy 403 there and 200 on loopback"

echo "== HTTP to 8081 bypasses the sidecar"
snap() {
	metrics | grep -E '^grpcguard_(requests_total|request_duration_seconds_count|sidecar_passthrough_connections_total)'
}
before=$(snap)
for i in 1 2 3; do
	[ "$(in_c curl -sS --max-time 5 "http://$IP4_S:8081/hello.txt")" = "plain http" ] ||
		die "HTTP to 8081 failed"
done
[ "$(snap)" = "$before" ] || die "the sidecar's metrics moved for traffic to 8081"
echo "  3 HTTP requests to 8081, sidecar metrics unchanged"

echo "== DENY policy"
set_policy <<'EOF'
apiVersion: grpcguard.io/v1
kind: Policy
authorization:
  - name: deny-hello
    action: DENY
    rules:
      - to: [{methods: ["/helloworld.Greeter/SayHello"]}]
EOF
wait_code PERMISSION_DENIED "$T4" deny-probe
denied_before=$(msum '^grpcguard_authz_denied_total.*policy="deny-hello"')
expect_call PERMISSION_DENIED "$T4" 5 denied-v4
[ "$(calls_logged denied-v4)" = 0 ] || die "a denied call reached the app"
denied_after=$(msum '^grpcguard_authz_denied_total.*policy="deny-hello"')
[ "$denied_after" = $((denied_before + 1)) ] ||
	die "authz_denied_total{policy=deny-hello}: $denied_before -> $denied_after, want +1"
expect_call OK "$T4" 5 again-v4 --method SayHelloAgain # the DENY names one method only
if [ $v6 = 1 ]; then
	echo "== IPv6 through the sidecar (IP6T_SO_ORIGINAL_DST)"
	expect_call PERMISSION_DENIED "$T6" 5 denied-v6
	expect_call OK "$T6" 5 again-v6 --method SayHelloAgain
	[ "$(calls_logged denied-v6)" = 0 ] || die "a denied IPv6 call reached the app"
	[ "$(calls_logged again-v6)" = 1 ] || die "the allowed IPv6 call did not reach the app"
fi

echo "== delay fault"
set_policy <<'EOF'
apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: slow-hello
    match:
      methods: ["/helloworld.Greeter/SayHello"]
    delay: {fixed: 1500ms, percent: 100}
EOF
end=$((SECONDS + 15))
while :; do # until the new policy is in force: a call takes >= 1.4 s
	got=$(call "$T4" 5 delay-probe)
	[ "${got%% *}" = OK ] && [ "${got##* }" -ge 1400 ] && break
	[ $SECONDS -lt $end ] || die "delay policy not applied within 15 s (last: $got)"
	sleep 0.3
done
faults_before=$(msum '^grpcguard_faults_injected_total.*type="delay"')
got=$(call "$T4" 5 delayed)
[ "${got%% *}" = OK ] && [ "${got##* }" -ge 1400 ] || die "delayed call: \"$got\", want OK after >= 1.4 s"
echo "  call delayed -> $got"
expect_call DEADLINE_EXCEEDED "$T4" 0.5 cancelled
sleep 2 # past the delay: the held stream must have been dropped, not forwarded
[ "$(calls_logged cancelled)" = 0 ] || die "a call whose deadline expired during the delay reached the app"
faults_after=$(msum '^grpcguard_faults_injected_total.*type="delay"')
[ "$faults_after" -ge $((faults_before + 2)) ] ||
	die "faults_injected_total{type=delay}: $faults_before -> $faults_after, want >= +2"

echo "== sidecar stopped: calls fail; restarted: calls work"
printf 'apiVersion: grpcguard.io/v1\nkind: Policy\n' | set_policy
[ $v6 = 1 ] && expect_call OK "$T6" 5 before-stop-v6
stop_sidecar
expect_call UNAVAILABLE "$T4" 3 sidecar-down
[ "$(calls_logged sidecar-down)" = 0 ] || die "a call reached the app with the sidecar down"
listen=0.0.0.0:15006
start_sidecar
expect_call OK "$T4" 5 sidecar-back

echo "== init again: one set of rules"
in_s "${vg[@]}" "$GG_BIN/grpcguard-sidecar" init --ports 8080 >"$tmp/init2.log" 2>&1 ||
	die "second init failed: $(cat "$tmp/init2.log")"
read -r j r c < <(count_rules iptables-save)
[ "$j $r $c" = "1 1 1" ] || die "IPv4 rules after two inits: $j jumps, $r 8080 rules, $c chain rules"
if [ $v6 = 1 ]; then
	read -r j r c < <(count_rules ip6tables-save)
	[ "$j $r $c" = "1 1 1" ] || die "IPv6 rules after two inits: $j jumps, $r 8080 rules, $c chain rules"
fi
expect_call OK "$T4" 5 after-reinit
echo "  iptables-save: 1 PREROUTING jump, 1 REDIRECT rule (IPv4$([ $v6 = 1 ] && echo ' and IPv6'))"

echo "== init --ports '*': every port but the sidecar's own"
in_s "${vg[@]}" "$GG_BIN/grpcguard-sidecar" init --ports '*' >"$tmp/init3.log" 2>&1 ||
	die "init --ports '*' failed: $(cat "$tmp/init3.log")"
chain=$(in_s iptables-save -t nat | grep -c '^-A GRPCGUARD_INBOUND')
[ "$chain" = 3 ] || die "init --ports '*': $chain rules in the chain, want 3 (2 RETURN, 1 REDIRECT)"
ok_before=$(msum '^grpcguard_requests_total.*grpc_code="OK"')
expect_call OK "$T4" 5 all-ports
[ "$(msum '^grpcguard_requests_total.*grpc_code="OK"')" = $((ok_before + 1)) ] ||
	die "with --ports '*' the call did not go through the sidecar"
# 8081 is intercepted now too: plain HTTP/1.1 goes through the sidecar as TCP.
pt_before=$(msum '^grpcguard_sidecar_passthrough_connections_total')
[ "$(in_c curl -sS --max-time 5 "http://$IP4_S:8081/hello.txt")" = "plain http" ] ||
	die "with --ports '*' HTTP to 8081 no longer works (the sidecar should pass it through)"
pt_after=$(msum '^grpcguard_sidecar_passthrough_connections_total')
[ "$pt_after" = $((pt_before + 1)) ] ||
	die "HTTP to 8081 did not pass through the sidecar: passthrough connections $pt_before -> $pt_after"
echo "  gRPC and plain HTTP both through the sidecar"

stop_sidecar
if [ ${#vg[@]} -gt 0 ]; then
	n=$(grep -l 'ERROR SUMMARY: 0 errors' "$tmp"/vg/*.log 2>/dev/null | wc -l)
	# Two sidecar runs and three inits, each a clean valgrind log.
	[ "$n" -ge 5 ] || { cat "$tmp"/vg/*.log; die "expected 5 clean valgrind logs, found $n"; }
	echo "valgrind: $n clean logs (sidecar x2, init x3)"
fi
echo "PASS: netns interception (IPv4$([ $v6 = 1 ] && echo ' + IPv6'))"
exit 0
