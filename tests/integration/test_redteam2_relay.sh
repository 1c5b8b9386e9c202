#!/usr/bin/env bash
# Red team 2: the inbound path as a relay, in real network namespaces.
#
#   attacker netns  --veth-->  pod netns (10.235.0.1, fd00:235::1)  --veth-->  victim netns
#   (10.235.0.2,               grpcguard-sidecar init --ports '*'           (10.236.0.2,
#    fd00:235::2)              (inbound + outbound capture), run as uid      fd00:236::2)
#   routes 10.236.0.0/24 and   1337 with --outbound-listen; ip_forward 0     http.server :8081
#   fd00:236::/64 via the pod  http.server 0.0.0.0:8081 (the app)
#
# The attacker sends a SYN whose destination is not the pod (the victim, an address the
# attacker cannot reach itself: the pod does not forward) to the pod's interface, as a
# neighbour on a shared bridge can. PREROUTING's catch-all REDIRECT makes it local and the
# sidecar's --upstream original-dst used to connect to the victim on the attacker's behalf
# (an open relay with the pod's address, past NetworkPolicies and outbound capture). Now an
# original destination that is not one of the pod's own addresses is refused and counted
# (grpcguard_connections_refused_total{reason="foreign_dst"}).
#
# Also checked (held before and after): a connection from the attacker to <pod IP>:15001 is
# intercepted by '*', reaches the outbound listener through the sidecar's own connection
# and is closed there (not redirected); direct connections to 15006 are closed; /policy on
# 15020 answers 403 to the attacker on the pod IP, v4 and v6, also pipelined, HEAD or in
# absolute form; from inside the pod, 15001 and 15006 on the pod IP, 127.0.0.1, 0.0.0.0,
# the v4-mapped pod IP, ::1 and the v6 pod IP are closed without a relay or a loop.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

netns_require ip iptables iptables-restore ip6tables ip6tables-restore setpriv curl

id=$$
NS_A=ggrly-$id-att
NS_P=ggrly-$id-pod
NS_V=ggrly-$id-vic
VA=ggr${id}a VP=ggr${id}p VQ=ggr${id}q VV=ggr${id}v
IP4_P=10.235.0.1 IP4_A=10.235.0.2 IP4_PV=10.236.0.1 IP4_V=10.236.0.2
IP6_P=fd00:235::1 IP6_A=fd00:235::2 IP6_PV=fd00:236::1 IP6_V=fd00:236::2
tmp=$(mktemp -d /tmp/gg-relay.XXXXXX)
chmod 755 "$tmp"
sc_pid= app_pid= vic_pid=

cleanup() {
	stop_pid "$sc_pid"
	stop_pid "$app_pid"
	stop_pid "$vic_pid"
	netns_teardown "$NS_A" "$NS_P" "$NS_V"
	ip link del "$VA" 2>/dev/null
	ip link del "$VV" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_a() { ip netns exec "$NS_A" "$@"; }
in_p() { ip netns exec "$NS_P" "$@"; }
in_v() { ip netns exec "$NS_V" "$@"; }

# ---- three namespaces: attacker - pod - victim ------------------------------------------
netns_add "$NS_P" "$NS_A" "$NS_V"
netns_link "$NS_A" "$NS_P" "$VA" "$VP" "$IP4_A" "$IP4_P"
netns_link "$NS_V" "$NS_P" "$VV" "$VQ" "$IP4_V" "$IP4_PV"
{ in_a ip -6 addr add "$IP6_A/64" dev "$VA" nodad && in_p ip -6 addr add "$IP6_P/64" dev "$VP" nodad &&
	in_p ip -6 addr add "$IP6_PV/64" dev "$VQ" nodad && in_v ip -6 addr add "$IP6_V/64" dev "$VV" nodad; } 2>/dev/null ||
	skip "IPv6 addresses cannot be added here"
# The pod is no router; the attacker sends the victim's subnet to the pod's interface.
in_p sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 || die "sysctl forwarding"
in_a ip route add 10.236.0.0/24 via "$IP4_P" && in_a ip -6 route add fd00:236::/64 via "$IP6_P" ||
	die "attacker routes"
netns_need_nat "$NS_P"
err=$(in_p ip6tables-save -t nat 2>&1) || skip "no ip6tables nat table here: $err"

metrics() { ns_metrics "$NS_P"; }
msum() { metrics | series_sum "$1"; }
get() { # NS URL: the body, or "ERR <curl exit>"
	local out rc
	out=$(ip netns exec "$1" curl -sS --max-time 4 -g "$2" 2>/dev/null)
	rc=$?
	[ $rc = 0 ] && echo "$out" || echo "ERR $rc"
}

mkdir -p "$tmp/app" "$tmp/vic"
echo "app" >"$tmp/app/who.txt"
echo "victim secret" >"$tmp/vic/who.txt"
ip netns exec "$NS_P" "$PYTHON" -m http.server 8081 --bind :: --directory "$tmp/app" \
	>"$tmp/app.log" 2>&1 &
app_pid=$!
ip netns exec "$NS_V" "$PYTHON" -m http.server 8081 --bind :: --directory "$tmp/vic" \
	>"$tmp/vic.log" 2>&1 &
vic_pid=$!
wait_until 15 port_open "$NS_P" 127.0.0.1 8081 || die "the app did not start"
wait_until 15 port_open "$NS_V" 127.0.0.1 8081 || die "the victim did not start"

echo "== without the sidecar: the attacker cannot reach the victim (the pod does not route)"
[ "$(get "$NS_P" "http://$IP4_V:8081/who.txt")" = "victim secret" ] || die "the pod cannot reach the victim"
[ "$(get "$NS_A" "http://$IP4_P:8081/who.txt")" = "app" ] || die "the attacker cannot reach the app"
r=$(get "$NS_A" "http://$IP4_V:8081/who.txt")
[ "${r%% *}" = ERR ] || die "the attacker reached the victim without the sidecar: $r"
echo "  attacker -> $IP4_V:8081: $r"

echo "== init --ports '*' (inbound and outbound capture), sidecar as uid 1337"
in_p "$GG_BIN/grpcguard-sidecar" init --ports '*' >"$tmp/init.log" 2>&1 ||
	die "init failed: $(cat "$tmp/init.log")"
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
ip netns exec "$NS_P" env GRPCGUARD_INBOUND_PORTS='*' setpriv --reuid 1337 --regid 1337 \
	--clear-groups "$tmp/grpcguard-sidecar" run --listen '[::]:15006' \
	--outbound-listen '[::]:15001' --upstream original-dst --admin '[::]:15020' \
	--upstream-connect-timeout 1s --log-level debug >"$tmp/sidecar.log" 2>&1 &
sc_pid=$!
wait_ready "$NS_P" "$sc_pid" "$tmp/sidecar.log"

echo "== the app is still reached through the sidecar (v4 and v6)"
[ "$(get "$NS_A" "http://$IP4_P:8081/who.txt")" = "app" ] || die "the app is not reached on $IP4_P"
[ "$(get "$NS_A" "http://[$IP6_P]:8081/who.txt")" = "app" ] || die "the app is not reached on [$IP6_P]"
echo "  ok"

echo "== the sidecar is no relay to an address that is not the pod's"
f0=$(msum '^grpcguard_connections_refused_total.*reason="foreign_dst"')
for url in "http://$IP4_V:8081/who.txt" "http://[$IP6_V]:8081/who.txt"; do
	r=$(get "$NS_A" "$url")
	[ "$r" != "victim secret" ] || die "the sidecar relayed the attacker to the victim: $url answered \"$r\""
	echo "  attacker -> $url: $r"
done
n=$(grep -c "GET /who.txt" "$tmp/vic.log")
[ "$n" = 1 ] || die "the victim served $n requests, want 1 (the pod's own before init): $(cat "$tmp/vic.log")"
f1=$(msum '^grpcguard_connections_refused_total.*reason="foreign_dst"')
[ "$f1" -ge $((f0 + 2)) ] || die "connections_refused_total{reason=foreign_dst}: $f0 -> $f1, want +2"
grep -q '"event":"foreign_original_dst"' "$tmp/sidecar.log" || die "no foreign_original_dst log"
echo "  refused and counted: foreign_dst $f0 -> $f1"

echo "== <pod IP>:15001 from the attacker: intercepted, then closed by the outbound listener"
nr0=$(msum 'result="not_redirected"')
acc0=$(msum 'grpcguard_sidecar_outbound_connections_total.*result="accepted"')
for url in "http://$IP4_P:15001/who.txt" "http://[$IP6_P]:15001/who.txt"; do
	r=$(get "$NS_A" "$url")
	[ "${r%% *}" = ERR ] || die "$url answered: $r"
	echo "  attacker -> $url: $r"
done
nr1=$(msum 'result="not_redirected"')
acc1=$(msum 'grpcguard_sidecar_outbound_connections_total.*result="accepted"')
[ "$nr1" -ge $((nr0 + 2)) ] || die "outbound not_redirected $nr0 -> $nr1, want +2"
[ "$acc1" = "$acc0" ] || die "the outbound listener accepted a connection from the attacker ($acc0 -> $acc1)"
echo "  outbound not_redirected $nr0 -> $nr1, accepted unchanged ($acc1)"

echo "== 15006 directly, /policy on the pod IP"
for h in "$IP4_P" "[$IP6_P]"; do
	r=$(get "$NS_A" "http://$h:15006/who.txt")
	[ "${r%% *}" = ERR ] || die "direct $h:15006 answered: $r"
	code=$(in_a curl -sS -g -o /dev/null -w '%{http_code}' --max-time 4 "http://$h:15020/policy")
	[ "$code" = 403 ] || die "/policy on $h:15020 from the attacker: $code, want 403"
	echo "  $h:15006 closed ($r), $h:15020/policy 403"
done

echo "== from inside the pod (the app's uid): 15001/15006 on every local address"
acc0=$(msum 'grpcguard_sidecar_outbound_connections_total.*result="accepted"')
for h in "$IP4_P" 127.0.0.1 0.0.0.0 "[::ffff:$IP4_P]" "[::1]" "[$IP6_P]"; do
	for p in 15001 15006; do
		r=$(get "$NS_P" "http://$h:$p/who.txt")
		[ "${r%% *}" = ERR ] || die "in-pod $h:$p answered: $r"
	done
done
acc1=$(msum 'grpcguard_sidecar_outbound_connections_total.*result="accepted"')
[ "$acc1" = "$acc0" ] || die "the outbound listener accepted an in-pod connection to a local address ($acc0 -> $acc1)"
echo "  closed (not captured: loopback and the pod's own addresses go out on lo); accepted $acc1, loop $(msum 'result="loop"')"

echo "== the admin port from the attacker: pipelining, HEAD, absolute form, X-Forwarded-For"
cat >"$tmp/admin_probe.py" <<'EOF'
# Raw HTTP/1.1 to the admin port from another pod; prints each status line received.
import re, socket, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
reqs = {
    "pipeline": b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /policy HTTP/1.1\r\nHost: x\r\n\r\n",
    "head": b"HEAD /policy HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute": b"GET http://127.0.0.1:15020/policy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "xff": b"GET /policy HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n",
}[mode][:-2] + b"Connection: close\r\n\r\n"  # the last request closes
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(3)
s.connect((host, port))
s.sendall(reqs)
data = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
except socket.timeout:
    pass
print(" ".join(m.decode() for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)))
if b"apiVersion" in data or b'"inbound_ports"' in data:
    print("LEAK")
EOF
for h in "$IP4_P" "$IP6_P"; do
	for mode in pipeline head absolute xff; do
		r=$(in_a "$PYTHON" "$tmp/admin_probe.py" "$h" 15020 "$mode" 2>&1)
		case "$mode:$r" in
		*LEAK*) die "/policy leaked to the attacker ($h, $mode): $r" ;;
		pipeline:"200 403" | head:403 | absolute:404 | xff:403) echo "  $h $mode: $r" ;;
		*) die "admin $h $mode: got \"$r\"" ;;
		esac
	done
done

term_wait "$sc_pid"
rc=$?
sc_pid=
[ $rc = 0 ] || die "the sidecar exited with $rc after SIGTERM: $(tail -n 20 "$tmp/sidecar.log")"
sanitizer_clean
echo "PASS: the inbound path is no relay; 15001/15006/15020 from another pod hold"
exit 0
