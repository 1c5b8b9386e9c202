#!/usr/bin/env bash
# Issue 15 (caller's half): outbound capture, caller-side accounting and client-side
# faults, built from real network namespaces.
#
#   server-pod netns  <--veth--  client-pod netns  --veth-->  backend-pod netns (no sidecar)
#   greeter :8080, init +         grpcguard-sidecar init        greeter :8080, TLS :8443,
#   its own sidecar (uid 1337)
#                                 (inbound 9999, outbound on)   HTTP :8081, DNS echo :53,
#                                 grpcguard-sidecar run as      banner-first TCP :2525,
#                                 uid 1337 --outbound-listen    nothing on :9, :8099 dropped
#
# The client pod's names come from /etc/netns/<ns>/hosts (ip netns exec mounts it over
# /etc/hosts): server, backend and their <name>.demo.svc.cluster.local forms; the sidecar
# runs with POD_NAMESPACE=demo, as injected.
#
# From the client pod: grpcio calls to server:8080 go through the outbound listener (the
# sidecar counts them and its outbound connections) and the server's sidecar, and succeed,
# counted at both ends; a server-side delay (the server's policy) run into the client's
# 1 s deadline is DEADLINE_EXCEEDED at both sidecars; a client-side delay fault
# with destinations [backend.demo.svc.cluster.local] delays calls to backend:8080 (not to
# server:8080), and a 1 s deadline gives DEADLINE_EXCEEDED at the client without the call
# reaching the backend; TLS (openssl s_server, certificate checked byte for byte) and
# HTTP/1.1 (curl) to the backend pass through unchanged; a server-speaks-first protocol
# passes too; DNS (UDP and TCP 53) is not captured; there is no capture loop (the sidecar's
# own upstream connections, uid 1337, are not redirected: one accepted outbound connection
# per app connection); a refused port gives UNAVAILABLE quickly and a silent one after the
# upstream connect timeout, both counted by the caller's sidecar (plain TCP to them gets a
# reset); re-running init leaves
# one set of rules. Everything created is removed on exit, by PID and netns name.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

netns_require ip iptables-restore iptables-save setpriv curl openssl

id=$$
NS_C=ggout-$id-cli
NS_S=ggout-$id-srv
NS_B=ggout-$id-bck
VS_C=ggo${id}a VS_S=ggo${id}b # client <-> server (IFNAMSIZ 16)
VB_C=ggo${id}c VB_B=ggo${id}d # client <-> backend
IP_S=10.232.1.1 IP_CS=10.232.1.2
IP_B=10.232.2.1 IP_CB=10.232.2.2
IP6_B=fd00:232:2::1 IP6_CB=fd00:232:2::2
tmp=$(mktemp -d /tmp/gg-outbound.XXXXXX)
chmod 755 "$tmp"
pids=()
sc_pid=

cleanup() {
	local pid
	stop_pid "$sc_pid"
	for pid in "${pids[@]}"; do stop_pid "$pid"; done
	netns_teardown "$NS_C" "$NS_S" "$NS_B"
	ip link del "$VS_C" 2>/dev/null
	ip link del "$VB_C" 2>/dev/null
	rm -rf "/etc/netns/$NS_C" "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_c() { ip netns exec "$NS_C" "$@"; }
in_b() { ip netns exec "$NS_B" "$@"; }

# ---- three pods ------------------------------------------------------------------------
netns_add "$NS_C" "$NS_S" "$NS_B"
netns_link "$NS_C" "$NS_S" "$VS_C" "$VS_S" "$IP_CS" "$IP_S"
netns_link "$NS_C" "$NS_B" "$VB_C" "$VB_B" "$IP_CB" "$IP_B"
netns_need_nat "$NS_C"
v6=1
{ in_c ip -6 addr add "$IP6_CB/64" dev "$VB_C" nodad &&
	in_b ip -6 addr add "$IP6_B/64" dev "$VB_B" nodad; } 2>/dev/null || v6=0
if [ $v6 = 1 ] && ! in_c ip6tables-save -t nat >/dev/null 2>&1; then
	echo "note: no ip6tables nat table: IPv6 part skipped"
	v6=0
fi
netns_hosts "$NS_C" "$IP_S server server.demo server.demo.svc.cluster.local" \
	"$IP_B backend backend.demo backend.demo.svc.cluster.local"
echo "pods: client $NS_C -> server $NS_S ($IP_S), backend $NS_B ($IP_B, no sidecar)"

greeter_stubs
export GRPC_DNS_RESOLVER=native # getaddrinfo: reads the pod's /etc/hosts

# ---- helpers -----------------------------------------------------------------------------
call() { call_ms "$NS_C" "$@"; } # TARGET DEADLINE NAME [client args]: from the client pod; "CODE MS"
expect_call() { # CODE TARGET DEADLINE NAME
	local want=$1 got
	shift
	got=$(call "$@")
	[ "${got%% *}" = "$want" ] || die "call $3 to $1: got \"$got\", want $want"
	echo "  call $3 to $1 -> $got"
	last_ms=${got##* }
}
metrics() { ns_metrics "$NS_C"; }
msum() { metrics | series_sum "$1"; }
smsum() { ns_metrics "$NS_S" | series_sum "$1"; } # the server's sidecar
accepted() { msum '^grpcguard_sidecar_outbound_connections_total\{result="accepted"\}'; }
set_policy() {
	cat >"$tmp/policy/.p.new" && chmod 644 "$tmp/policy/.p.new" &&
		mv -f "$tmp/policy/.p.new" "$tmp/policy/policy.yaml"
}
count_rules() { # [TOOL]: "<OUTPUT jumps> <uid rules> <REDIRECT 15001> <chain rules>"
	in_c "${1:-iptables-save}" -t nat | awk '
		$0 == "-A OUTPUT -p tcp -j GRPCGUARD_OUTBOUND" { j++ }
		/^-A GRPCGUARD_OUTBOUND .*--uid-owner 1337 -j RETURN$/ { u++ }
		/^-A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT --to-ports 15001$/ { r++ }
		/^-A GRPCGUARD_OUTBOUND/ { c++ }
		END { printf "%d %d %d %d\n", j, u, r, c }'
}

# ---- the apps ----------------------------------------------------------------------------
bg "$NS_S" server "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/server.calls" --name server-pod
bhost=0.0.0.0
[ $v6 = 1 ] && bhost=::
bg "$NS_B" backend "$PYTHON" "$root/tests/greeter/greeter_server.py" --host "$bhost" --port 8080 \
	--calls-log "$tmp/backend.calls" --name backend-pod
mkdir -p "$tmp/www" && echo "plain http from the backend" >"$tmp/www/hello.txt"
bg "$NS_B" http "$PYTHON" -m http.server 8081 --bind 0.0.0.0 --directory "$tmp/www"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=backend -keyout "$tmp/tls.key" \
	-out "$tmp/tls.crt" >/dev/null 2>&1 || die "openssl req"
bg "$NS_B" tls openssl s_server -accept 8443 -cert "$tmp/tls.crt" -key "$tmp/tls.key" -www -quiet
cat >"$tmp/misc_servers.py" <<'EOF'
# DNS-port echo (UDP and TCP 53) and a server-speaks-first banner on 2525.
import socket, threading
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 53))
    while True:
        d, a = s.recvfrom(512)
        s.sendto(b"udp53:" + d, a)
def tcp(port, first):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(16)
    while True:
        c, a = s.accept()
        if first:
            c.sendall(b"220 banner-first\n")
        else:
            c.sendall(b"tcp53:" + c.recv(512))
        c.close()
threading.Thread(target=udp, daemon=True).start()
threading.Thread(target=tcp, args=(2525, True), daemon=True).start()
tcp(53, False)
EOF
bg "$NS_B" misc "$PYTHON" "$tmp/misc_servers.py"
# A destination that never answers: its SYNs are dropped.
in_b iptables -A INPUT -p tcp --dport 8099 -j DROP || die "iptables DROP in the backend pod"
wait_until 15 port_open "$NS_S" 127.0.0.1 8080 || die "server greeter did not start: $(cat "$tmp/server.log")"
for p in 8080 8081 8443 53 2525; do
	wait_until 15 port_open "$NS_B" 127.0.0.1 $p || die "backend port $p did not open"
done

expect_call OK server:8080 5 direct-before-init
[ "$(logged server direct-before-init)" = 1 ] || die "the direct call did not reach the server"

# ---- init with outbound capture ------------------------------------------------------------
echo "== init (inbound 9999, outbound on)"
in_c "$GG_BIN/grpcguard-sidecar" init --ports 9999 >"$tmp/init1.log" 2>&1 ||
	die "init failed: $(cat "$tmp/init1.log")"
read -r j u r c < <(count_rules)
[ "$j $u $r" = "1 1 1" ] || die "rules after init: $j OUTPUT jumps, $u uid rules, $r REDIRECT rules"
first_chain=$c
if [ $v6 = 1 ]; then
	read -r j u r c6 < <(count_rules ip6tables-save)
	[ "$j $u $r" = "1 1 1" ] || die "IPv6 rules after init: $j OUTPUT jumps, $u uid rules, $r REDIRECT rules"
fi
# Captured, with nothing on 15001 yet: the app's calls cannot get out.
expect_call UNAVAILABLE server:8080 3 captured-no-sidecar
[ "$(logged server captured-no-sidecar)" = 0 ] || die "a call got out around the capture"

# ---- the caller's sidecar -------------------------------------------------------------------
vg=()
slow=1 # time bounds scale under valgrind
if [ "${GG_VALGRIND:-0}" = 1 ]; then
	command -v valgrind >/dev/null || die "GG_VALGRIND=1 but valgrind is not installed"
	mkdir -m 777 "$tmp/vg"
	vg=(valgrind --error-exitcode=99 --leak-check=full --log-file="$tmp/vg/%p.log")
	slow=4
fi
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
mkdir -m 755 "$tmp/policy"
printf 'apiVersion: grpcguard.io/v1\nkind: Policy\n' | set_policy
ip netns exec "$NS_C" env POD_NAMESPACE=demo POD_NAME=client-7d9f8b6c5d-x2x4z SERVICE_ACCOUNT=client setpriv --reuid 1337 --regid 1337 --clear-groups \
	"${vg[@]}" "$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 \
	--outbound-listen '[::]:15001' --admin 127.0.0.1:15020 --policy "$tmp/policy/policy.yaml" \
	--upstream-connect-timeout 1s >"$tmp/sidecar.log" 2>&1 &
sc_pid=$!
# The server pod: init (inbound 8080) and its own sidecar, with a server-side fault for
# calls that carry x-chaos: on.
in_s() { ip netns exec "$NS_S" "$@"; }
in_s "$GG_BIN/grpcguard-sidecar" init --ports 8080 >"$tmp/init-srv.log" 2>&1 ||
	die "server init failed: $(cat "$tmp/init-srv.log")"
mkdir -m 755 "$tmp/spolicy"
cat >"$tmp/spolicy/policy.yaml" <<'EOF2'
faults:
  - name: server-side-delay
    match: {headers: {x-chaos: "on"}}
    delay: {fixed: 2s}
EOF2
chmod 644 "$tmp/spolicy/policy.yaml"
ip netns exec "$NS_S" env POD_NAMESPACE=demo POD_NAME=server-6b7c9d8f5x-k2m4q SERVICE_ACCOUNT=server setpriv --reuid 1337 --regid 1337 --clear-groups \
	"$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 --outbound-listen '[::]:15001' \
	--admin 127.0.0.1:15020 --policy "$tmp/spolicy/policy.yaml" >"$tmp/sidecar-srv.log" 2>&1 &
pids+=($!)
end=$((SECONDS + 15 * slow))
until [ "$(in_s curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15020/readyz)" = 200 ]; do
	[ $SECONDS -lt $end ] || { tail -n 20 "$tmp/sidecar-srv.log"; die "the server's sidecar did not become ready"; }
	sleep 0.2
done
end=$((SECONDS + 15 * slow))
until [ "$(in_c curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15020/readyz)" = 200 ]; do
	kill -0 "$sc_pid" 2>/dev/null && [ $SECONDS -lt $end ] || {
		tail -n 20 "$tmp/sidecar.log"
		die "the sidecar did not become ready"
	}
	sleep 0.2
done
[ "$(ps -o uid= -p "$sc_pid" | tr -d ' ')" = 1337 ] || die "the sidecar does not run as uid 1337"
[ ${#vg[@]} -gt 0 ] && sleep 2 # let valgrind settle before timing calls
echo "sidecar ready (pid $sc_pid, uid 1337)"

echo "== gRPC to the server goes through the outbound listener, counted by the caller"
ok0=$(msum '^grpcguard_requests_total.*grpc_code="OK"')
acc0=$(accepted)
for i in 1 2 3; do expect_call OK server:8080 5 via-outbound-$i; done
[ "$(logged server via-outbound-1)$(logged server via-outbound-3)" = 11 ] ||
	die "the calls did not reach the server once each"
ok1=$(msum '^grpcguard_requests_total.*grpc_code="OK"')
[ "$ok1" = $((ok0 + 3)) ] || die "caller-side requests_total OK $ok0 -> $ok1, want +3"
[ "$(smsum '^grpcguard_requests_total.*grpc_code="OK"')" -ge 3 ] ||
	die "the server's sidecar did not count the calls (they bypassed it?)"
acc1=$(accepted)
# No loop: one accepted connection per app connection (grpcio: one per call here); had
# the sidecar's own upstream connection been captured, each call would count two.
[ "$acc1" = $((acc0 + 3)) ] || die "outbound connections accepted $acc0 -> $acc1, want +3 (a loop?)"
[ "$(msum 'result="loop"')" = 0 ] || die "the sidecar saw a capture loop"
echo "  requests_total OK +3, outbound connections +3, no loop"
# Both ends name each other (x-grpcguard-peer, exchanged by the two sidecars): the caller
# reports source with the server's workload, the server reports destination with the
# caller's; one edge client -> server, seen from each end.
edge='source_workload="client",source_namespace="demo",.*destination_workload="server",destination_namespace="demo",.*destination_service="server"'
[ "$(msum "^grpcguard_requests_total\\{reporter=\"source\",$edge,.*grpc_code=\"OK\"")" = 3 ] ||
	die "the caller's sidecar did not report 3 OK calls client -> server as reporter source: $(metrics | grep '^grpcguard_requests_total')"
[ "$(smsum "^grpcguard_requests_total\\{reporter=\"destination\",$edge,.*grpc_code=\"OK\"")" = 3 ] ||
	die "the server's sidecar did not report 3 OK calls client -> server as reporter destination"
[ "$(smsum '^grpcguard_requests_total.*reporter="source"')" = 0 ] ||
	die "the server's sidecar reported outbound calls it never made"
echo "  edge client -> server reported by both ends (reporter source and destination)"

echo "== a server-side delay run into the client's deadline: DEADLINE_EXCEEDED at both ends"
de0=$(msum '^grpcguard_requests_total.*grpc_code="DEADLINE_EXCEEDED"')
sde0=$(smsum '^grpcguard_requests_total.*grpc_code="DEADLINE_EXCEEDED"')
expect_call DEADLINE_EXCEEDED server:8080 1 server-held --metadata x-chaos=on
[ "$last_ms" -lt 1400 ] || die "DEADLINE_EXCEEDED after $last_ms ms, want the client's 1 s"
sleep 0.5
[ "$(logged server server-held)" = 0 ] || die "a call held by the server's sidecar reached the app"
[ "$(msum '^grpcguard_requests_total.*grpc_code="DEADLINE_EXCEEDED"')" = $((de0 + 1)) ] ||
	die "the caller's sidecar did not count DEADLINE_EXCEEDED"
[ "$(smsum '^grpcguard_requests_total.*grpc_code="DEADLINE_EXCEEDED"')" = $((sde0 + 1)) ] ||
	die "the server's sidecar did not count DEADLINE_EXCEEDED"

if [ $v6 = 1 ]; then
	echo "== IPv6: captured by the ip6tables rules, relayed to the IPv6 original destination"
	acc0=$(accepted)
	expect_call OK "[$IP6_B]:8080" 5 via-outbound-v6
	[ "$(logged backend via-outbound-v6)" = 1 ] || die "the IPv6 call did not reach the backend"
	[ "$(accepted)" = $((acc0 + 1)) ] || die "the IPv6 call did not go through the outbound listener"
fi

echo "== client-side delay fault on the backend (a pod without a sidecar)"
set_policy <<'EOF'
apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: slow-backend
    match:
      destinations: [backend.demo.svc.cluster.local]
    delay: {fixed: 1500ms, percent: 100}
  - name: server-side-only
    delay: {fixed: 3s}
EOF
end=$((SECONDS + 15))
while :; do
	got=$(call backend:8080 5 delay-probe)
	[ "${got%% *}" = OK ] && [ "${got##* }" -ge 1400 ] && break
	[ $SECONDS -lt $end ] || die "the client-side fault was not applied within 15 s (last: $got)"
	sleep 0.3
done
expect_call OK backend:8080 5 delayed
[ "$last_ms" -ge 1400 ] || die "a call to backend:8080 took $last_ms ms, want >= 1400"
expect_call OK server:8080 5 not-delayed
[ "$last_ms" -lt $((1000 * slow)) ] || die "a call to server:8080 took $last_ms ms: the fault is not for it, and the server-side entry must not apply to outbound calls"
de0=$(msum '^grpcguard_requests_total.*grpc_code="DEADLINE_EXCEEDED"')
expect_call DEADLINE_EXCEEDED backend:8080 1 deadline
[ "$last_ms" -lt 1400 ] || die "DEADLINE_EXCEEDED came after $last_ms ms, want the client's 1 s"
sleep 1 # past the delay: the held call must have been dropped, not forwarded
[ "$(logged backend deadline)" = 0 ] || die "a call whose deadline expired while held reached the backend"
de1=$(msum '^grpcguard_requests_total.*grpc_code="DEADLINE_EXCEEDED"')
[ "$de1" = $((de0 + 1)) ] || die "caller-side DEADLINE_EXCEEDED $de0 -> $de1, want +1"
[ "$(msum '^grpcguard_faults_injected_total.*fault="slow-backend"')" -ge 3 ] ||
	die "faults_injected_total{fault=slow-backend} did not count the delays"
printf 'apiVersion: grpcguard.io/v1\nkind: Policy\n' | set_policy

echo "== TLS and HTTP/1.1 to the backend pass through unchanged"
acc0=$(accepted)
want_fp=$(openssl x509 -in "$tmp/tls.crt" -noout -fingerprint -sha256)
got_fp=$(in_c openssl s_client -connect backend:8443 -servername backend </dev/null 2>/dev/null |
	openssl x509 -noout -fingerprint -sha256)
[ -n "$got_fp" ] && [ "$got_fp" = "$want_fp" ] || die "TLS through the sidecar: certificate \"$got_fp\", want \"$want_fp\""
body=$(in_c curl -sS -k --max-time 5 https://backend:8443/)
case "$body" in *s_server*) ;; *) die "TLS request through the sidecar failed: ${body:0:200}" ;; esac
[ "$(in_c curl -sS --max-time 5 http://backend:8081/hello.txt)" = "plain http from the backend" ] ||
	die "HTTP/1.1 through the sidecar failed"
banner=$(in_c timeout 5 bash -c 'exec 3<>/dev/tcp/backend/2525; head -n 1 <&3')
[ "$banner" = "220 banner-first" ] || die "a server-speaks-first protocol did not pass: \"$banner\""
acc1=$(accepted)
[ "$acc1" -ge $((acc0 + 4)) ] || die "TLS/HTTP/banner did not go through the outbound listener ($acc0 -> $acc1)"
[ "$(msum 'result="silent"')" -ge 1 ] || die "the banner-first connection was not relayed as silent"
echo "  TLS certificate identical, HTTPS and HTTP bodies intact, banner-first protocol relayed"

echo "== DNS (UDP and TCP 53) is not captured"
acc0=$(accepted)
u=$(in_c "$PYTHON" -c '
import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b"q", ("'$IP_B'", 53)); print(s.recvfrom(64)[0].decode())')
t=$(in_c "$PYTHON" -c '
import socket; s = socket.create_connection(("'$IP_B'", 53), 3); s.sendall(b"q")
print(s.recv(64).decode())')
[ "$u $t" = "udp53:q tcp53:q" ] || die "DNS port echo: \"$u\" \"$t\""
[ "$(accepted)" = "$acc0" ] || die "a connection to port 53 went through the outbound listener"
echo "  UDP and TCP 53 answered directly, outbound connections unchanged"

echo "== a destination that refuses or never answers: UNAVAILABLE, counted by the caller"
un0=$(msum '^grpcguard_requests_total.*grpc_code="UNAVAILABLE"')
expect_call UNAVAILABLE backend:9 5 refused
[ "$last_ms" -lt $((1000 * slow)) ] || die "a refused port took $last_ms ms to fail"
expect_call UNAVAILABLE backend:8099 5 blackholed
[ "$last_ms" -lt $((2500 * slow)) ] || die "a silent port took $last_ms ms to fail (connect timeout 1 s)"
un1=$(msum '^grpcguard_requests_total.*grpc_code="UNAVAILABLE"')
[ "$un1" = $((un0 + 2)) ] || die "caller-side UNAVAILABLE $un0 -> $un1, want +2"
# Plain TCP (relayed): the app sees a reset, as from the refusing destination, not an
# empty reply; a silent destination is given up after the connect timeout too.
for port in 9 8099; do
	t0=$(date +%s%3N)
	in_c curl -sS --max-time 10 "http://backend:$port/" >/dev/null 2>"$tmp/curl.err"
	rc=$?
	ms=$(($(date +%s%3N) - t0))
	[ $rc = 56 ] && grep -q "reset by peer" "$tmp/curl.err" ||
		die "HTTP to refused/silent port $port: curl exit $rc ($(cat "$tmp/curl.err")), want a reset (56)"
	[ $ms -lt $((2500 * slow)) ] || die "HTTP to port $port took $ms ms to fail"
	echo "  HTTP to backend:$port -> connection reset after $ms ms"
done

echo "== a connection to the outbound port that was not redirected is refused"
nr0=$(msum 'result="not_redirected"')
in_c "$PYTHON" -c '
import socket
s = socket.create_connection(("'$IP_CS'", 15001), 3)
s.settimeout(3)
print(repr(s.recv(16)))' >"$tmp/direct.out" 2>&1
nr1=$(msum 'result="not_redirected"')
[ "$nr1" = $((nr0 + 1)) ] || die "direct connection to 15001: not_redirected $nr0 -> $nr1 ($(cat "$tmp/direct.out"))"
# From another pod: the outbound listener is no open relay.
ip netns exec "$NS_S" "$PYTHON" -c '
import socket
s = socket.create_connection(("'$IP_CS'", 15001), 3)
s.settimeout(3)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
d = s.recv(64)
assert d == b"", d' >"$tmp/relay.out" 2>&1 || true
grep -q "AssertionError" "$tmp/relay.out" && die "the outbound listener answered another pod: $(cat "$tmp/relay.out")"
nr2=$(msum 'result="not_redirected"')
[ "$nr2" = $((nr1 + 1)) ] || die "connection from another pod to 15001: not_redirected $nr1 -> $nr2 ($(cat "$tmp/relay.out"))"
echo "  connections to 15001 not redirected by init (same pod, another pod) are closed"

echo "== init again: one set of rules"
in_c "$GG_BIN/grpcguard-sidecar" init --ports 9999 >"$tmp/init2.log" 2>&1 ||
	die "second init failed: $(cat "$tmp/init2.log")"
read -r j u r c < <(count_rules)
[ "$j $u $r $c" = "1 1 1 $first_chain" ] ||
	die "rules after two inits: $j OUTPUT jumps, $u uid rules, $r REDIRECT rules, $c chain rules (want 1 1 1 $first_chain)"
if [ $v6 = 1 ]; then
	read -r j u r c < <(count_rules ip6tables-save)
	[ "$j $u $r $c" = "1 1 1 $c6" ] || die "IPv6 rules after two inits: $j $u $r $c (want 1 1 1 $c6)"
fi
expect_call OK server:8080 5 after-reinit

term_wait "$sc_pid" $((100 * slow))
rc=$?
sc_pid=
[ $rc = 0 ] || {
	tail -n 30 "$tmp/sidecar.log"
	[ ${#vg[@]} -gt 0 ] && cat "$tmp"/vg/*.log
	die "the sidecar exited with $rc after SIGTERM (99: valgrind found errors)"
}
if [ ${#vg[@]} -gt 0 ]; then
	grep -q 'ERROR SUMMARY: 0 errors' "$tmp"/vg/*.log || { cat "$tmp"/vg/*.log; die "valgrind"; }
	echo "valgrind: clean"
fi
if [ "${GG_SANITIZE:-0}" = 1 ] && grep -q 'ERROR: AddressSanitizer\|runtime error' "$tmp/sidecar.log"; then
	cat "$tmp/sidecar.log"
	die "sanitizer report"
fi
echo "PASS: outbound capture, client-side faults, passthrough"
exit 0
