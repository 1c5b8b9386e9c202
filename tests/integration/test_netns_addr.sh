#!/usr/bin/env bash
# Issue 14: addresses and IP families on a pod's inbound path, in real network namespaces.
#
#   client-pod netns  --veth-->  server-pod netns (10.232.0.1, fd00:232::1)
#                                  peer_server: 0.0.0.0:8080        (public, IPv4)
#                                               [fd00:232::1]:8082  (public, IPv6 only)
#                                               127.0.0.1:8090      (private: loopback only)
#                                               [::1]:8091          (private: loopback only)
#                                  http.server 0.0.0.0:8081          (plain HTTP/1.1)
#                                  grpcguard-sidecar init --ports '*'; run as uid 1337
#
# Checks, each failing on the code before issue 14 (which forwarded to 127.0.0.1:<port>):
# - a server bound only to 127.0.0.1 / ::1 in the pod stays unreachable from the client
#   pod with every port intercepted (the sidecar connects to the original destination, the
#   pod IP, where nothing listens);
# - the public servers are reached through the sidecar, and see the pod IP as the peer
#   (gRPC over IPv4, HTTP/1.1 passthrough, gRPC over IPv6 to a v6-only listener);
# - the sidecar's own upstream connection is not redirected back to it: the REDIRECT rule
#   counts exactly the client's connections (the proxy's connection to the pod IP is
#   locally generated: nat OUTPUT, not PREROUTING), and the app gets the call once;
# - a redirected connection whose original destination is loopback is refused and counted;
# - init exits 1 when the pod has a global IPv6 address and ip6tables-restore is missing or
#   its nat table fails, 0 with --ipv4-only, and 0 (a warning) in a pod without one.
# Everything created is removed on exit. Skips (77) only when the machine forbids netns,
# iptables or IPv6.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

netns_require ip iptables iptables-restore iptables-save ip6tables ip6tables-restore setpriv curl

id=$$
NS_S=ggaddr-$id-srv
NS_C=ggaddr-$id-cli
NS_X=ggaddr-$id-v4 # a pod with no global IPv6 address
VETH_S=gga${id}s
VETH_C=gga${id}c
IP4_S=10.232.0.1 IP4_C=10.232.0.2
IP6_S=fd00:232::1 IP6_C=fd00:232::2
tmp=$(mktemp -d /tmp/gg-netns-addr.XXXXXX)
chmod 755 "$tmp"
sc_pid= app_pid= http_pid=

cleanup() {
	stop_pid "$sc_pid"
	stop_pid "$app_pid"
	stop_pid "$http_pid"
	netns_teardown "$NS_S" "$NS_C" "$NS_X"
	ip link del "$VETH_S" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_s() { ip netns exec "$NS_S" "$@"; }
in_c() { ip netns exec "$NS_C" "$@"; }

# ---- the two pods, dual-stack ------------------------------------------------------------
netns_pair "$NS_S" "$NS_C" "$VETH_S" "$VETH_C" "$IP4_S" "$IP4_C"
ip netns add "$NS_X" || die "ip netns add $NS_X"
ip netns exec "$NS_X" ip link set lo up || die "lo up"
{ in_s ip -6 addr add "$IP6_S/64" dev "$VETH_S" nodad &&
	in_c ip -6 addr add "$IP6_C/64" dev "$VETH_C" nodad; } 2>/dev/null ||
	skip "IPv6 addresses cannot be added here"
netns_pair_up "$NS_S" "$NS_C" "$VETH_S" "$VETH_C"
netns_need_nat "$NS_S"
err=$(in_s ip6tables-save -t nat 2>&1) || skip "no ip6tables nat table here: $err"
echo "pods: $NS_S ($IP4_S, $IP6_S) <- $NS_C ($IP4_C, $IP6_C); $NS_X (lo only)"

greeter_stubs

# ---- helpers --------------------------------------------------------------------------
call_in() { # NS TARGET NAME: one SayHello, 3 s deadline. Prints the status code name.
	local out
	out=$(ip netns exec "$1" "$PYTHON" "$root/tests/greeter/greeter_client.py" --target "$2" \
		--deadline 3 --name "$3" --json 2>&1 | tail -n 1)
	"$PYTHON" -c 'import json,sys
try:
    print(json.loads(sys.argv[1])["code"])
except Exception:
    print("NO_REPLY", sys.argv[1][:200].replace("\n", " "))' "$out"
}
expect_in() { # WANT NS TARGET NAME
	local got
	got=$(call_in "$2" "$3" "$4")
	[ "${got%% *}" = "$1" ] || die "call $4 to $3: got \"$got\", want $1"
	echo "  call $4 -> $got"
}
peers_of() { # NAME: the peers the app saw for calls with this name, one per line
	awk -v n="$1" '$2 == n { print $1 }' "$tmp/calls.log" 2>/dev/null | sed 's/%5B/[/g; s/%5D/]/g'
}
metrics() { ns_metrics "$NS_S"; }
msum() { metrics | series_sum "$1"; }
redirect_pkts() { # FAMILY-TOOL: packets (= new connections) the catch-all REDIRECT rule took
	in_s "$1" -w 5 -t nat -L GRPCGUARD_INBOUND -v -n -x |
		awk '/REDIRECT/ && !/dpt:/ { s += $1 } END { printf "%d\n", s }'
}

# (The OUTPUT rule below exempts uid 1337 as outbound capture does, so the old code would
# have reached the loopback listener.)
# ---- init must fail closed for IPv6 (before the real init) ------------------------------
echo "== init: IPv6 fails closed"
mkdir -p "$tmp/nov6" "$tmp/badv6"
for t in iptables iptables-restore iptables-save; do
	ln -s "$(command -v $t)" "$tmp/nov6/$t"
	ln -s "$(command -v $t)" "$tmp/badv6/$t"
done
ln -s "$(command -v ip6tables)" "$tmp/badv6/ip6tables"
cat >"$tmp/badv6/ip6tables-restore" <<'EOF'
#!/bin/sh
while read -r _; do :; done # drain the rules (no cat: PATH is this directory)
echo "ip6tables-restore v1.8.9 (nf_tables): can't initialize ip6tables table \`nat': Table does not exist (do you need to insmod?)" >&2
exit 1
EOF
chmod 755 "$tmp/badv6/ip6tables-restore"
init_rc() { # NS PATH LOG ARGS...: init's exit status
	local ns=$1 path=$2 log=$3
	shift 3
	ip netns exec "$ns" env PATH="$path" "$GG_BIN/grpcguard-sidecar" init "$@" >"$log" 2>&1
	echo $?
}
rc=$(init_rc "$NS_S" "$tmp/nov6" "$tmp/init-nov6.log" --ports '*')
[ "$rc" = 1 ] || die "init without ip6tables-restore on a pod with $IP6_S: exit $rc, want 1: $(cat "$tmp/init-nov6.log")"
grep -q '"event":"init_failed"' "$tmp/init-nov6.log" && grep -q -- '--ipv4-only' "$tmp/init-nov6.log" &&
	grep -q 'ip6tables-restore is not in PATH' "$tmp/init-nov6.log" ||
	die "init's error does not say what is missing and name --ipv4-only: $(cat "$tmp/init-nov6.log")"
echo "  no ip6tables-restore: exit 1, $(grep -o '"ipv6_address":"[^"]*"' "$tmp/init-nov6.log")"
rc=$(init_rc "$NS_S" "$tmp/badv6" "$tmp/init-badv6.log" --ports '*')
[ "$rc" = 1 ] || die "init with a failing IPv6 nat table: exit $rc, want 1: $(cat "$tmp/init-badv6.log")"
grep -q 'IPv6 nat table cannot be used' "$tmp/init-badv6.log" ||
	die "init's error does not say the IPv6 nat table failed: $(cat "$tmp/init-badv6.log")"
echo "  IPv6 nat table unusable: exit 1"
for d in nov6 badv6; do
	rc=$(init_rc "$NS_S" "$tmp/$d" "$tmp/init-$d-opt.log" --ports '*' --ipv4-only)
	[ "$rc" = 0 ] || die "init --ipv4-only ($d): exit $rc, want 0: $(cat "$tmp/init-$d-opt.log")"
	grep -q '"event":"init_ipv6_unavailable"' "$tmp/init-$d-opt.log" ||
		die "init --ipv4-only ($d) does not warn that IPv6 is not intercepted"
done
echo "  --ipv4-only: exit 0 with a warning"
rc=$(init_rc "$NS_X" "$tmp/nov6" "$tmp/init-x.log" --ports '*')
[ "$rc" = 0 ] || die "init in a pod without a global IPv6 address: exit $rc, want 0: $(cat "$tmp/init-x.log")"
grep -q '"event":"init_ipv6_unavailable"' "$tmp/init-x.log" || die "no warning without ip6tables"
echo "  pod without a global IPv6 address: exit 0 with a warning"
# Those runs installed the IPv4 rules before IPv6 failed: remove them, so the apps can be
# checked without the sidecar first.
in_s iptables -w 5 -t nat -D PREROUTING -p tcp -j GRPCGUARD_INBOUND &&
	in_s iptables -w 5 -t nat -F GRPCGUARD_INBOUND && in_s iptables -w 5 -t nat -X GRPCGUARD_INBOUND ||
	die "cannot remove the IPv4 rules of the failed inits"

# ---- the apps ----------------------------------------------------------------------------
cat >"$tmp/peer_server.py" <<'EOF'
# A Greeter that logs "<peer> <name>" per call, listening on every address given.
import signal, sys, threading
from concurrent import futures
import grpc, helloworld_pb2, helloworld_pb2_grpc
log = sys.argv[1]
lock = threading.Lock()
class G(helloworld_pb2_grpc.GreeterServicer):
    def SayHello(self, req, ctx):
        with lock, open(log, "a") as f:
            f.write("%s %s\n" % (ctx.peer(), req.name))
        return helloworld_pb2.HelloReply(message="hello " + req.name)
s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
helloworld_pb2_grpc.add_GreeterServicer_to_server(G(), s)
for a in sys.argv[2:]:
    if s.add_insecure_port(a) == 0:
        sys.exit("cannot listen on " + a)
s.start()
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: done.set())
done.wait()
s.stop(0)
EOF
ip netns exec "$NS_S" "$PYTHON" "$tmp/peer_server.py" "$tmp/calls.log" 0.0.0.0:8080 \
	"[$IP6_S]:8082" 127.0.0.1:8090 "[::1]:8091" >"$tmp/app.log" 2>&1 &
app_pid=$!
mkdir -p "$tmp/www" && echo "plain http" >"$tmp/www/hello.txt"
ip netns exec "$NS_S" "$PYTHON" -m http.server 8081 --bind 0.0.0.0 --directory "$tmp/www" \
	>"$tmp/http.log" 2>&1 &
http_pid=$!
wait_until 15 port_open "$NS_S" 127.0.0.1 8090 || die "peer_server did not start: $(cat "$tmp/app.log")"
wait_until 15 port_open "$NS_S" "$IP6_S" 8082 || die "peer_server did not listen on [$IP6_S]:8082"
wait_until 15 port_open "$NS_S" 127.0.0.1 8081 || die "http.server did not start"

echo "== before init: the loopback listeners are private, the public ones reachable"
expect_in OK "$NS_C" "$IP4_S:8080" direct-public
expect_in UNAVAILABLE "$NS_C" "$IP4_S:8090" direct-private
expect_in OK "$NS_S" "127.0.0.1:8090" local-private # the pod itself may use it

# ---- init --ports '*' and the sidecar ----------------------------------------------------
echo "== init --ports '*' (IPv4 and IPv6), sidecar as uid 1337"
in_s "$GG_BIN/grpcguard-sidecar" init --ports '*' >"$tmp/init.log" 2>&1 ||
	die "init failed: $(cat "$tmp/init.log")"
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
ip netns exec "$NS_S" env GRPCGUARD_INBOUND_PORTS='*' GRPCGUARD_EXCLUDE_INBOUND_PORTS=9999 \
	GRPCGUARD_PROBE_PORTS=9999 setpriv --reuid 1337 --regid 1337 --clear-groups \
	"$tmp/grpcguard-sidecar" run --listen '[::]:15006' --upstream original-dst \
	--admin '[::]:15020' --log-level debug >"$tmp/sidecar.log" 2>&1 &
sc_pid=$!
wait_ready "$NS_S" "$sc_pid" "$tmp/sidecar.log"

echo "== /policy shows which ports are judged and which are excluded, and why"
pol=$(in_s curl -sS --max-time 5 http://127.0.0.1:15020/policy)
"$PYTHON" - "$pol" <<'EOF' || die "/policy inbound_ports: $pol"
import json, sys
p = json.loads(sys.argv[1])["inbound_ports"]
assert p["intercepted"] == "*", p
ex = {e["port"]: e["reason"] for e in p["excluded"]}
assert ex == {15006: "sidecar", 15020: "sidecar", 9999: "probe"}, ex
EOF
echo "  intercepted \"*\", excluded 15006/15020 (sidecar), 9999 (probe)"

echo "== loopback-only listeners stay private with every port intercepted"
expect_in UNAVAILABLE "$NS_C" "$IP4_S:8090" private-v4
expect_in UNAVAILABLE "$NS_C" "[$IP6_S]:8091" private-v6
[ -z "$(peers_of private-v4)$(peers_of private-v6)" ] ||
	die "a call from another pod reached a loopback-only listener through the sidecar"

echo "== public listeners: through the sidecar, the app sees the pod IP"
in_s iptables -w 5 -t nat -Z GRPCGUARD_INBOUND || die "iptables -Z"
ok_before=$(msum '^grpcguard_requests_total.*grpc_code="OK"')
expect_in OK "$NS_C" "$IP4_S:8080" public-v4
[ "$(peers_of public-v4)" = "ipv4:$IP4_S" ] || [[ "$(peers_of public-v4)" == "ipv4:$IP4_S:"* ]] ||
	die "the app saw the call from \"$(peers_of public-v4)\", want the pod IP $IP4_S"
[ "$(peers_of public-v4 | wc -l)" = 1 ] || die "the call reached the app $(peers_of public-v4 | wc -l) times"
[ "$(msum '^grpcguard_requests_total.*grpc_code="OK"')" = $((ok_before + 1)) ] ||
	die "the sidecar did not count exactly one call"
# One client connection redirected; the sidecar's own connection to $IP4_S:8080 is not.
pk=$(redirect_pkts iptables)
[ "$pk" = 1 ] || die "the REDIRECT rule took $pk connections for one call, want 1 (the proxy's own upstream connection must not be redirected)"
echo "  app peer $(peers_of public-v4); REDIRECT rule: 1 connection (the client's)"

[ "$(in_c curl -sS --max-time 5 "http://$IP4_S:8081/hello.txt")" = "plain http" ] ||
	die "plain HTTP to 8081 through the sidecar failed"
grep -q "^$IP4_S - - .*GET /hello.txt" "$tmp/http.log" ||
	die "http.server did not see the pod IP as the client: $(tail -n 2 "$tmp/http.log")"
echo "  HTTP/1.1 passthrough: http.server saw $IP4_S"

in_s ip6tables -w 5 -t nat -Z GRPCGUARD_INBOUND || die "ip6tables -Z"
expect_in OK "$NS_C" "[$IP6_S]:8082" public-v6
[[ "$(peers_of public-v6)" == "ipv6:[$IP6_S]:"* ]] ||
	die "the IPv6 call reached the app from \"$(peers_of public-v6)\", want [$IP6_S]"
pk=$(redirect_pkts ip6tables)
[ "$pk" = 1 ] || die "the IPv6 REDIRECT rule took $pk connections for one call, want 1"
echo "  IPv6: forwarded to [$IP6_S]:8082 (a v6-only listener), peer $(peers_of public-v6)"

echo "== a redirected connection to a loopback address is refused and counted"
in_s iptables -w 5 -t nat -I OUTPUT -p tcp -d 127.0.0.1 --dport 8090 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15006 ||
	die "cannot add the OUTPUT rule"
lb_before=$(msum '^grpcguard_connections_refused_total.*loopback_dst')
expect_in UNAVAILABLE "$NS_S" "127.0.0.1:8090" redirected-loopback
in_s iptables -w 5 -t nat -D OUTPUT -p tcp -d 127.0.0.1 --dport 8090 -m owner ! --uid-owner 1337 -j REDIRECT --to-ports 15006
[ -z "$(peers_of redirected-loopback)" ] || die "a redirected loopback connection reached the app"
lb_after=$(msum '^grpcguard_connections_refused_total.*loopback_dst')
[ "$lb_after" -gt "$lb_before" ] ||
	die "connections_refused_total{reason=loopback_dst} did not move ($lb_before -> $lb_after)"
grep -q '"event":"loopback_original_dst"' "$tmp/sidecar.log" || die "no loopback_original_dst debug log"
echo "  refused, loopback_dst_refused_total $lb_before -> $lb_after"

term_wait "$sc_pid"
rc=$?
sc_pid=
[ $rc = 0 ] || die "the sidecar exited with $rc after SIGTERM: $(tail -n 20 "$tmp/sidecar.log")"
# Sanitizer builds (GG_SANITIZE=1): init and the sidecar must have reported nothing (an
# ASan leak report exits 1, which the expected-failure inits above would hide).
sanitizer_clean
echo "PASS: netns addresses (pod IP forwarding, loopback privacy, IPv6 fail-closed)"
exit 0
