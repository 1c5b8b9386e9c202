#!/usr/bin/env bash
# Issue 16's "done when", end to end with the REAL issuer: certificates come from
# grpcguard-webhook's POST /v1/certify (identity CA from `grpcguard-certgen --identity-ca`),
# the sidecars' mTLS and the server's identity-based policy decide who may call.
#
#   client-pod ----veth---- server-pod ----veth---- intruder-a-pod
#   init + sidecar          init + sidecar           init + sidecar
#   (sa client)             (sa server)              (sa intruder)
#                           greeter :8080
#                           grpcguard-webhook :9443
#                           TokenReview STAND-IN     ----veth---- intruder-b-pod
#                                                                 (no sidecar)
#
# No kube-apiserver can run here, so the webhook's TokenReview goes to a STAND-IN that
# replaces it: tests/lib/py/tokenreview_standin.py, the same minimal server that
# test_webhook_certify.py uses. It mints one token per pod (audience grpcguard; client:
# system:serviceaccount:demo:client, server: ...:demo:server, intruder A:
# ...:demo:intruder) and answers TokenReview only for those. Everything else is real:
# the webhook's HTTPS and issuer, OpenSSL, the sidecars' key, CSR and client, mTLS.
#
# Server policy: ALLOW only cluster.local/ns/demo/sa/client on /helloworld.Greeter/*.
# Checked: each sidecar's /policy names the SPIFFE ID of its token; the webhook issued
# exactly three certificates (one per sidecar), each for the identity the stand-in
# vouched for; the client's calls are OK and the server counts them with the client's
# source_principal over mutual_tls, and a byte capture on their veth sees no gRPC in clear
# (while one on intruder B's veth does see its plaintext call); intruder A (mTLS, sa
# intruder) gets PERMISSION_DENIED; intruder B (plaintext) gets PERMISSION_DENIED, also
# when it forges x-grpcguard-peer claiming sa=client; after `mtls: {mode: STRICT}` arrives by an atomic rename of the
# policy file (no restart), intruder B is refused at the connection (UNAVAILABLE,
# counted reason="plaintext"), forged header or not, while the client still works.
# Everything created is removed on exit, by PID and netns name.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

die() {
	echo "FAIL: $*"
	for f in "${tmp:-/nonexistent}"/sidecar-*.log "${tmp:-/nonexistent}"/webhook.log \
		"${tmp:-/nonexistent}"/standin.log; do
		[ -f "$f" ] && { echo "--- $f (last 15 lines)"; tail -n 15 "$f"; }
	done
	exit 1
}

netns_need_tools ip iptables-save setpriv curl openssl
"$PYTHON" -c 'import grpc' 2>/dev/null || skip "python3 grpcio missing"
for p in grpcguard-sidecar grpcguard-webhook grpcguard-certgen; do
	[ -x "$GG_BIN/$p" ] || die "$GG_BIN/$p is not built"
done

id=$$
NS_C=ggid-$id-cli NS_S=ggid-$id-srv NS_A=ggid-$id-ina NS_B=ggid-$id-inb
V_CS=ggi${id}a V_SC=ggi${id}b # client <-> server
V_AS=ggi${id}c V_SA=ggi${id}d # intruder A <-> server
V_BS=ggi${id}e V_SB=ggi${id}f # intruder B <-> server
IP_S=10.234.1.1 IP_C=10.234.1.2
IP_SA=10.234.2.1 IP_A=10.234.2.2
IP_SB=10.234.3.1 IP_B=10.234.3.2
tmp=$(mktemp -d /tmp/gg-ide2e.XXXXXX)
chmod 755 "$tmp"
pids=()
sc_c= sc_s= sc_a= wh=

cleanup() {
	local pid
	for pid in "$sc_c" "$sc_s" "$sc_a" "$wh" "${pids[@]}"; do stop_pid "$pid"; done
	netns_teardown "$NS_C" "$NS_S" "$NS_A" "$NS_B"
	ip link del "$V_CS" 2>/dev/null
	ip link del "$V_AS" 2>/dev/null
	ip link del "$V_BS" 2>/dev/null
	rm -rf "/etc/netns/$NS_C" "/etc/netns/$NS_A" "/etc/netns/$NS_B" "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }
in_a() { ip netns exec "$NS_A" "$@"; }

# ---- four pods -------------------------------------------------------------------------
netns_add "$NS_C" "$NS_S" "$NS_A" "$NS_B"
netns_link "$NS_C" "$NS_S" "$V_CS" "$V_SC" "$IP_C" "$IP_S"
netns_link "$NS_A" "$NS_S" "$V_AS" "$V_SA" "$IP_A" "$IP_SA"
netns_link "$NS_B" "$NS_S" "$V_BS" "$V_SB" "$IP_B" "$IP_SB"
netns_need_nat "$NS_C"
for pair in "$NS_C:$IP_S" "$NS_A:$IP_SA" "$NS_B:$IP_SB"; do
	mkdir -p "/etc/netns/${pair%%:*}"
	printf '127.0.0.1 localhost\n%s server server.demo.svc.cluster.local\n' "${pair#*:}" \
		>"/etc/netns/${pair%%:*}/hosts"
done

greeter_stubs "$root/tests/lib/py"
export GRPC_DNS_RESOLVER=native

# ---- helpers -----------------------------------------------------------------------------
call() { call_code "$@"; }          # NS TARGET NAME [client args]: prints the code
expect_call() { expect_code "$@"; } # CODE NS TARGET NAME [args]
smetrics() { ns_metrics "$NS_S"; }
whmetrics() { in_s curl -sS --max-time 5 --cacert "$tmp/serving/ca.crt" https://127.0.0.1:9443/metrics; }
sum() { series_sum "$1"; }
is_ready() { [ "$(readyz "$1")" = 200 ]; }
san_env=()
[ "${GG_SANITIZE:-0}" = 1 ] && san_env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1)

# ---- the issuer: identity CA, TokenReview stand-in, grpcguard-webhook ---------------------
"$GG_BIN/grpcguard-certgen" --identity-ca --out "$tmp/idca" --ca-days 2 >"$tmp/certgen.log" 2>&1 ||
	die "certgen --identity-ca: $(cat "$tmp/certgen.log")"
"$GG_BIN/grpcguard-certgen" --service grpcguard-webhook --namespace grpcguard-system \
	--out "$tmp/serving" --days 1 --ca-days 2 --extra-san 127.0.0.1 --extra-san "$IP_S" \
	--extra-san "$IP_SA" >>"$tmp/certgen.log" 2>&1 || die "certgen (serving): $(cat "$tmp/certgen.log")"
"$GG_BIN/grpcguard-certgen" --service kubernetes --namespace default --out "$tmp/apiserver" \
	--days 1 --ca-days 2 --extra-san 127.0.0.1 >>"$tmp/certgen.log" 2>&1 ||
	die "certgen (stand-in API server): $(cat "$tmp/certgen.log")"
chmod 644 "$tmp/serving/ca.crt"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/webhook-sa-token"
mkdir -m 755 "$tmp/c" "$tmp/s" "$tmp/i"
bg "$NS_S" standin "$PYTHON" "$root/tests/lib/py/tokenreview_standin.py" --listen 127.0.0.1:0 \
	--tls-cert "$tmp/apiserver/tls.crt" --tls-key "$tmp/apiserver/tls.key" \
	--webhook-token-file "$tmp/webhook-sa-token" \
	--mint "system:serviceaccount:demo:client=$tmp/c/token" \
	--mint "system:serviceaccount:demo:server=$tmp/s/token" \
	--mint "system:serviceaccount:demo:intruder=$tmp/i/token"
wait_until 15 grep -q '^ready port=' "$tmp/standin.log" || die "the TokenReview stand-in did not start"
api_port=$(sed -n 's/^ready port=//p' "$tmp/standin.log")
cat >"$tmp/webhook.yaml" <<EOF
identity:
  enabled: true
  ca:
    certFile: $tmp/idca/tls.crt
    keyFile: $tmp/idca/tls.key
  tokenReview:
    url: https://127.0.0.1:$api_port/apis/authentication.k8s.io/v1/tokenreviews
    caFile: $tmp/apiserver/ca.crt
    tokenFile: $tmp/webhook-sa-token
    timeoutMs: 3000
EOF
ip netns exec "$NS_S" env "${san_env[@]}" "$GG_BIN/grpcguard-webhook" --listen 0.0.0.0:9443 \
	--tls-cert "$tmp/serving/tls.crt" --tls-key "$tmp/serving/tls.key" \
	--config "$tmp/webhook.yaml" --threads 2 >"$tmp/webhook.log" 2>&1 &
wh=$!
wait_until 20 grep -q '"listening"' "$tmp/webhook.log" || die "grpcguard-webhook did not start"
echo "== issuer: grpcguard-webhook with the identity CA, TokenReview by the stand-in"

# ---- the apps, init, three sidecars ---------------------------------------------------------
bg "$NS_S" server "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/server.calls" --name server-pod
wait_until 15 port_open "$NS_S" 127.0.0.1 8080 || die "server greeter did not start"
in_s "$GG_BIN/grpcguard-sidecar" init --ports 8080 >"$tmp/init-s.log" 2>&1 || die "server init: $(cat "$tmp/init-s.log")"
in_c "$GG_BIN/grpcguard-sidecar" init --ports 9999 >"$tmp/init-c.log" 2>&1 || die "client init: $(cat "$tmp/init-c.log")"
in_a "$GG_BIN/grpcguard-sidecar" init --ports 9999 >"$tmp/init-a.log" 2>&1 || die "intruder A init: $(cat "$tmp/init-a.log")"
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"

# The server's policy, in a directory of its own so it can be swapped by rename.
mkdir -m 755 "$tmp/policy"
write_policy() { # EXTRA-TOP-LEVEL-YAML: written beside, then renamed over policy.yaml
	{
		printf 'apiVersion: grpcguard.io/v1\nkind: Policy\n%s' "$1"
		cat <<'EOF'
authorization:
  - name: only-client
    action: ALLOW
    rules:
      - from: [{principals: ["cluster.local/ns/demo/sa/client"]}]
        to: [{methods: ["/helloworld.Greeter/*"]}]
EOF
	} >"$tmp/policy/.policy.yaml.new"
	chmod 644 "$tmp/policy/.policy.yaml.new"
	mv -f "$tmp/policy/.policy.yaml.new" "$tmp/policy/policy.yaml"
}
write_policy ""

sidecar() { # NS SA POLICY CA-ADDRESS: starts a sidecar as uid 1337; prints nothing, sets $!
	local ns=$1 sa=$2 pol=$3 ca=$4
	ip netns exec "$ns" env "${san_env[@]}" POD_NAMESPACE=demo POD_NAME="$sa-6b7c9d8f5x-k2m4q" \
		SERVICE_ACCOUNT="$sa" setpriv --reuid 1337 --regid 1337 --clear-groups \
		"$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 --outbound-listen '[::]:15001' \
		--admin 127.0.0.1:15020 --policy "$pol" --log-level "${GG_LOG_LEVEL:-info}" \
		--ca-address "$ca" --ca-cert "$tmp/serving/ca.crt" \
		--identity-token "$tmp/${sa:0:1}/token" >>"$tmp/sidecar-$sa.log" 2>&1 &
}
sidecar "$NS_S" server "$tmp/policy/policy.yaml" https://127.0.0.1:9443
sc_s=$!
sidecar "$NS_C" client "$tmp/nopolicy.yaml" "https://$IP_S:9443"
sc_c=$!
sidecar "$NS_A" intruder "$tmp/nopolicy.yaml" "https://$IP_SA:9443"
sc_a=$!
for pair in "$NS_S:server" "$NS_C:client" "$NS_A:intruder"; do
	wait_until 30 is_ready "${pair%%:*}" ||
		die "the ${pair#*:} sidecar is not ready (no certificate?): $(tail -5 "$tmp/sidecar-${pair#*:}.log")"
done

echo "== each sidecar holds a certificate for its token's identity"
for pair in "$NS_S:server" "$NS_C:client" "$NS_A:intruder"; do
	ip netns exec "${pair%%:*}" curl -sS --max-time 5 http://127.0.0.1:15020/policy |
		"$PYTHON" -c '
import json, sys
w = json.load(sys.stdin)["workloadIdentity"]
want = "spiffe://cluster.local/ns/demo/sa/" + sys.argv[1]
assert w["spiffeId"] == want, (w, want)
assert w["issuer"].startswith("https://"), w
assert w["lastError"] in (None, ""), w
print("  %-8s %s until %s" % (sys.argv[1], w["spiffeId"], w["notAfter"]))' "${pair#*:}" ||
		die "/policy of the ${pair#*:} sidecar does not show its token's identity"
done
wm=$(whmetrics) || die "webhook /metrics"
[ "$(sum '^grpcguard_certificates_issued_total$' <<<"$wm")" = 3 ] ||
	die "the webhook issued $(sum '^grpcguard_certificates_issued_total$' <<<"$wm") certificates, want 3 (one per sidecar)"
# With --threads 2 the webhook lets one TokenReview run at a time (docs/identity.md); a
# sidecar that arrives meanwhile gets 503 busy and retries after about a second. That is
# the only refusal allowed here.
busy=$(sum '^grpcguard_certify_failures_total\{reason="busy"\}' <<<"$wm")
[ "$(sum '^grpcguard_certify_failures_total' <<<"$wm")" = "$busy" ] ||
	die "certify failures: $(grep '^grpcguard_certify_failures_total' <<<"$wm")"
issued=$(grep '"certificate_issued"' "$tmp/webhook.log" | grep -o 'spiffe://[^"]*' | sort | tr '\n' ' ')
[ "$issued" = "spiffe://cluster.local/ns/demo/sa/client spiffe://cluster.local/ns/demo/sa/intruder spiffe://cluster.local/ns/demo/sa/server " ] ||
	die "certificate_issued log lines name: $issued"
[ "$(grep -c '^review user=system:serviceaccount:demo:[a-z]* authenticated=true$' "$tmp/standin.log")" = 3 ] ||
	die "the stand-in did not review exactly the three tokens: $(cat "$tmp/standin.log")"
for t in "$tmp"/[csi]/token; do
	! grep -qF "$(cat "$t")" "$tmp/webhook.log" "$tmp"/sidecar-*.log || die "a token appears in a log"
done
echo "  webhook: 3 issued (client, intruder, server), $busy refused busy and retried; stand-in: 3 tokens reviewed"

echo "== PERMISSIVE: only the client's identity is allowed"
# A byte capture on the client-server veth (must see no gRPC in clear) and, as the control
# that the capture works, on intruder B's veth (must see its plaintext call).
in_s "$PYTHON" "$root/tests/lib/capture.py" "$V_SC" 4 from-client >"$tmp/cap-cs.txt" 2>&1 &
cap1=$!
pids+=($cap1)
in_s "$PYTHON" "$root/tests/lib/capture.py" "$V_SB" 4 from-intruder-b >"$tmp/cap-bs.txt" 2>&1 &
cap2=$!
pids+=($cap2)
wait_until 5 grep -q ready "$tmp/cap-cs.txt" && wait_until 5 grep -q ready "$tmp/cap-bs.txt" ||
	die "capture did not start"
for i in 1 2 3; do expect_call OK "$NS_C" server:8080 from-client-$i; done
[ "$(logged server from-client-3)" = 1 ] || die "the client's call did not reach the server app"
edge='source_principal="spiffe://cluster.local/ns/demo/sa/client",.*destination_principal="spiffe://cluster.local/ns/demo/sa/server",.*connection_security_policy="mutual_tls",grpc_code="OK"'
[ "$(smetrics | sum "^grpcguard_requests_total\\{reporter=\"destination\",.*$edge")" = 3 ] ||
	die "server: want 3 OK mutual_tls calls from the client's principal: $(smetrics | grep '^grpcguard_requests_total')"
expect_call PERMISSION_DENIED "$NS_A" server:8080 from-intruder-a
[ "$(smetrics | sum '^grpcguard_requests_total\{reporter="destination",.*source_principal="spiffe://cluster.local/ns/demo/sa/intruder",.*connection_security_policy="mutual_tls",grpc_code="PERMISSION_DENIED"')" = 1 ] ||
	die "server: intruder A's call is not counted as a denied mTLS call from sa intruder: $(smetrics | grep '^grpcguard_requests_total')"
expect_call PERMISSION_DENIED "$NS_B" "$IP_SB:8080" from-intruder-b
expect_call PERMISSION_DENIED "$NS_B" "$IP_SB:8080" forged-b \
	--metadata 'x-grpcguard-peer=ns=demo;wl=client;sa=client'
[ "$(smetrics | sum '^grpcguard_requests_total\{reporter="destination",.*source_principal="unknown",.*connection_security_policy="none",grpc_code="PERMISSION_DENIED"')" = 2 ] ||
	die "server: intruder B's calls are not counted as denied plaintext calls without principal: $(smetrics | grep '^grpcguard_requests_total')"
for n in from-intruder-a from-intruder-b forged-b; do
	[ "$(logged server $n)" = 0 ] || die "the denied call $n reached the server app"
done
wait "$cap1" "$cap2"
read -r hits frames < <(tail -n 1 "$tmp/cap-cs.txt")
[ "$frames" -gt 10 ] || die "the capture between client and server saw only $frames frames"
[ "$hits" = 0 ] || die "$hits frames between the two sidecars carried plaintext gRPC"
read -r bhits bframes < <(tail -n 1 "$tmp/cap-bs.txt")
[ "$bhits" -ge 1 ] || die "the capture did not see intruder B's plaintext call ($bframes frames): the check proves nothing"
echo "  wire client<->server: $frames frames, no plaintext gRPC; intruder B's veth: $bhits frames in clear"
echo "  client OK over mutual_tls; intruder A (sa intruder, mTLS) and B (plaintext, forged claim or not) denied"

echo "== STRICT by an atomic rename of the policy file (no restart)"
r0=$(smetrics | sum '^grpcguard_policy_reloads_total\{result="success"\}')
p0=$(smetrics | sum '^grpcguard_connections_refused_total\{reason="plaintext"\}')
write_policy 'mtls: {mode: STRICT}
'
strict() { in_s curl -s --max-time 2 http://127.0.0.1:15020/policy | grep -q '"mtlsMode": "STRICT"'; }
wait_until 10 strict || die "the server sidecar did not take up STRICT: $(in_s curl -s http://127.0.0.1:15020/policy)"
[ "$(smetrics | sum '^grpcguard_policy_reloads_total\{result="success"\}')" -gt "$r0" ] || die "reload not counted"
kill -0 "$sc_s" 2>/dev/null || die "the server sidecar is gone"
expect_call UNAVAILABLE "$NS_B" "$IP_SB:8080" strict-b
expect_call UNAVAILABLE "$NS_B" "$IP_SB:8080" strict-forged-b \
	--metadata 'x-grpcguard-peer=ns=demo;wl=client;sa=client'
p1=$(smetrics | sum '^grpcguard_connections_refused_total\{reason="plaintext"\}')
[ "$p1" -ge $((p0 + 2)) ] || die "plaintext refusals $p0 -> $p1, want +2 or more"
expect_call OK "$NS_C" server:8080 strict-client
expect_call PERMISSION_DENIED "$NS_A" server:8080 strict-intruder-a
for n in strict-b strict-forged-b strict-intruder-a; do
	[ "$(logged server $n)" = 0 ] || die "the refused call $n reached the server app"
done
[ "$(smetrics | sum "^grpcguard_requests_total\\{reporter=\"destination\",.*$edge")" = 4 ] ||
	die "server: the client's call under STRICT is not an OK mutual_tls call from its principal"
echo "  intruder B refused at the connection (counted reason=plaintext, +$((p1 - p0))); client OK; intruder A denied"

# ---- shutdown ------------------------------------------------------------------------------
for p in "$sc_c" "$sc_s" "$sc_a" "$wh"; do
	kill -TERM "$p"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	wait "$p"
	rc=$?
	[ "$rc" = 0 ] || die "a sidecar or the webhook exited $rc"
done
sc_c= sc_s= sc_a= wh=
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp"/sidecar-*.log "$tmp/webhook.log"; then
	cat "$tmp"/sidecar-*.log "$tmp/webhook.log"
	die "sanitizer report"
fi
echo "PASS: certificates from grpcguard-webhook, identity-based ALLOW, intruders denied, STRICT"
exit 0
