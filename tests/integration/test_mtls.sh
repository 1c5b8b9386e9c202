#!/usr/bin/env bash
# Issue 16 (the sidecar's half): workload identity and mTLS between sidecars, built from
# real network namespaces, each sidecar as uid 1337 after init, real grpcio apps.
#
#   client-pod  --veth--  server-pod  --veth--  intruder-pod (no sidecar)
#   init + sidecar        init + sidecar         grpcio only
#   (outbound on,         greeter :8080,
#    sa client)           STAND-IN issuer :9443 (sa server)
#        \--veth--  backend-pod (greeter :8080, no sidecar)
#
# The certificates come from tests/integration/mtls_issuer.py, a STAND-IN for
# grpcguard-webhook's POST /v1/certify (wt-issuer builds the real one; the lead switches
# this test to it at merge): same contract, tokens looked up in a file instead of
# TokenReview, leaf lifetime 20 s so both sidecars renew every 10 s during the test.
#
# Checked: both sidecars get a certificate before /readyz (and not before: an issuer that
# fails keeps them unready); client -> server calls go over mTLS (a raw capture on the
# client-server veth sees no plaintext request bytes, while the same capture on the
# intruder's veth does see the intruder's plaintext call: the capture works), and both
# ends report connection_security_policy="mutual_tls" with the SPIFFE IDs; a destination
# without sidecar (backend) is still reached, in plaintext, after one failed ClientHello,
# remembered; the intruder is served in PERMISSIVE and refused under STRICT (counted
# reason="plaintext"), while mTLS calls still pass; a client certificate from another CA,
# an expired one and none at all fail the handshake; rotation under steady load
# (one long-lived channel and a new connection every 0.3 s across several renewals) loses
# no call; renewal failing keeps serving until expiry, then /readyz fails, and recovers;
# the app's own TLS on an intercepted port passes through (no ALPN mark); x-grpcguard-peer
# over mTLS naming another service account is dropped; a destination sidecar with a
# certificate from another CA makes the call UNAVAILABLE, never a plaintext retry.
# Everything created is removed on exit, by PID and netns name.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

die() {
	echo "FAIL: $*"
	for f in "${tmp:-/nonexistent}"/sidecar-[cs].log; do
		[ -f "$f" ] && { echo "--- $f (last 15 lines)"; tail -n 15 "$f"; }
	done
	exit 1
}

netns_need_tools ip iptables-save setpriv curl openssl
"$PYTHON" -c 'import cryptography, grpc' 2>/dev/null || skip "python3 cryptography/grpcio missing"
[ -x "$GG_BIN/grpcguard-sidecar" ] || die "$GG_BIN/grpcguard-sidecar is not built"

id=$$
NS_C=ggmt-$id-cli NS_S=ggmt-$id-srv NS_I=ggmt-$id-int NS_B=ggmt-$id-bck
V_CS=ggm${id}a V_SC=ggm${id}b # client <-> server
V_IS=ggm${id}c V_SI=ggm${id}d # intruder <-> server
V_CB=ggm${id}e V_BC=ggm${id}f # client <-> backend
IP_S=10.233.1.1 IP_C=10.233.1.2
IP_SI=10.233.2.1 IP_I=10.233.2.2
IP_B=10.233.3.1 IP_CB=10.233.3.2
tmp=$(mktemp -d /tmp/gg-mtls.XXXXXX)
chmod 755 "$tmp"
pids=()
sc_c= sc_s=

cleanup() {
	local pid
	stop_pid "$sc_c"
	stop_pid "$sc_s"
	for pid in "${pids[@]}"; do stop_pid "$pid"; done
	netns_teardown "$NS_C" "$NS_S" "$NS_I" "$NS_B"
	ip link del "$V_CS" 2>/dev/null
	ip link del "$V_IS" 2>/dev/null
	ip link del "$V_CB" 2>/dev/null
	rm -rf "/etc/netns/$NS_C" "/etc/netns/$NS_I" "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }
in_i() { ip netns exec "$NS_I" "$@"; }

# ---- four pods -------------------------------------------------------------------------
netns_add "$NS_C" "$NS_S" "$NS_I" "$NS_B"
netns_link "$NS_C" "$NS_S" "$V_CS" "$V_SC" "$IP_C" "$IP_S"
netns_link "$NS_I" "$NS_S" "$V_IS" "$V_SI" "$IP_I" "$IP_SI"
netns_link "$NS_C" "$NS_B" "$V_CB" "$V_BC" "$IP_CB" "$IP_B"
netns_need_nat "$NS_C"
for ns in "$NS_C" "$NS_I"; do
	mkdir -p "/etc/netns/$ns"
	printf '127.0.0.1 localhost\n%s server server.demo.svc.cluster.local\n%s backend\n' \
		"$([ $ns = "$NS_C" ] && echo $IP_S || echo $IP_SI)" "$IP_B" >"/etc/netns/$ns/hosts"
done

greeter_stubs
export GRPC_DNS_RESOLVER=native

# ---- helpers -----------------------------------------------------------------------------
call() { call_code "$@"; }          # NS TARGET NAME [client args]: prints the code
expect_call() { expect_code "$@"; } # CODE NS TARGET NAME [args]
cmetrics() { ns_metrics "$NS_C"; }
smetrics() { ns_metrics "$NS_S"; }
sum() { series_sum "$1"; }

# ---- CAs, the stand-in issuer, the apps ----------------------------------------------------
mkca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$1" \
		-keyout "$tmp/$1.key" -out "$tmp/$1.crt" -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 || die "openssl CA $1"
}
mkca idca      # workload identity CA (the issuer signs with it)
mkca servca    # the issuer's serving CA (what --ca-cert trusts)
mkca otherca   # an unrelated CA
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=issuer \
	-keyout "$tmp/iss.key" -out "$tmp/iss.csr" >/dev/null 2>&1 &&
	openssl x509 -req -in "$tmp/iss.csr" -CA "$tmp/servca.crt" -CAkey "$tmp/servca.key" \
		-CAcreateserial -days 1 -out "$tmp/iss.crt" \
		-extfile <(printf 'subjectAltName=IP:%s,IP:127.0.0.1\n' "$IP_S") >/dev/null 2>&1 ||
	die "issuer serving certificate"
printf '{"tok-client": {"ns": "demo", "sa": "client"}, "tok-server": {"ns": "demo", "sa": "server"}}\n' \
	>"$tmp/tokens.json"
mkdir -m 755 "$tmp/c" "$tmp/s"
echo tok-client >"$tmp/c/token" && echo tok-server >"$tmp/s/token"
chmod 644 "$tmp"/*.crt "$tmp/c/token" "$tmp/s/token"
bg "$NS_S" issuer "$PYTHON" "$root/tests/integration/mtls_issuer.py" --listen 0.0.0.0:9443 \
	--tls-cert "$tmp/iss.crt" --tls-key "$tmp/iss.key" --ca-cert "$tmp/idca.crt" \
	--ca-key "$tmp/idca.key" --tokens "$tmp/tokens.json" --lifetime 20 \
	--fail-file "$tmp/issuer-fail"
bg "$NS_S" server "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/server.calls" --name server-pod
bg "$NS_B" backend "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/backend.calls" --name backend-pod
# The app's own TLS on an intercepted port (not a sidecar's ClientHello): passed through.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=app-tls -keyout "$tmp/app.key" \
	-out "$tmp/app.crt" >/dev/null 2>&1 || die "openssl req"
bg "$NS_S" apptls openssl s_server -accept 8443 -cert "$tmp/app.crt" -key "$tmp/app.key" -www -quiet
wait_until 15 port_open "$NS_S" 127.0.0.1 8080 || die "server greeter did not start"
wait_until 15 port_open "$NS_S" 127.0.0.1 8443 || die "openssl s_server did not start"
wait_until 15 port_open "$NS_S" 127.0.0.1 9443 || die "stand-in issuer did not start: $(cat "$tmp/issuer.log")"
wait_until 15 port_open "$NS_B" 127.0.0.1 8080 || die "backend greeter did not start"

# ---- init and the two sidecars --------------------------------------------------------------
in_s "$GG_BIN/grpcguard-sidecar" init --ports 8080,8443 >"$tmp/init-s.log" 2>&1 || die "server init: $(cat "$tmp/init-s.log")"
in_c "$GG_BIN/grpcguard-sidecar" init --ports 9999 >"$tmp/init-c.log" 2>&1 || die "client init: $(cat "$tmp/init-c.log")"
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
san_env=()
[ "${GG_SANITIZE:-0}" = 1 ] && san_env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1)
start_server_sidecar() { # [env...]: the server's sidecar, with the policy file $spol
	ip netns exec "$NS_S" env "${san_env[@]}" POD_NAMESPACE=demo POD_NAME=server-6b7c9d8f5x-k2m4q SERVICE_ACCOUNT=server "$@" \
		setpriv --reuid 1337 --regid 1337 --clear-groups \
		"$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 --outbound-listen '[::]:15001' \
		--admin 127.0.0.1:15020 --policy "$spol" --log-level "${GG_LOG_LEVEL:-info}" \
		--ca-address https://127.0.0.1:9443 --ca-cert "$tmp/servca.crt" \
		--identity-token "$tmp/s/token" >>"$tmp/sidecar-s.log" 2>&1 &
	sc_s=$!
}
spol=$tmp/nopolicy.yaml # no file: allow all
# The issuer fails at first: the sidecars must stay unready without a certificate.
touch "$tmp/issuer-fail"
start_server_sidecar
ip netns exec "$NS_C" env "${san_env[@]}" POD_NAMESPACE=demo POD_NAME=client-7d9f8b6c5d-x2x4z SERVICE_ACCOUNT=client \
	setpriv --reuid 1337 --regid 1337 --clear-groups \
	"$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 --outbound-listen '[::]:15001' \
	--admin 127.0.0.1:15020 --policy "$tmp/nopolicy.yaml" --log-level "${GG_LOG_LEVEL:-info}" \
	--ca-address "https://$IP_S:9443" --ca-cert "$tmp/servca.crt" \
	--identity-token "$tmp/c/token" >"$tmp/sidecar-c.log" 2>&1 &
sc_c=$!
sleep 2
[ "$(readyz "$NS_S")" = 503 ] && [ "$(readyz "$NS_C")" = 503 ] ||
	die "a sidecar is ready without a certificate: $(readyz "$NS_S") $(readyz "$NS_C")"
[ "$(cmetrics | sum '^grpcguard_identity_renewals_total\{result="failure"\}')" -ge 1 ] ||
	die "the failed fetch was not counted"
grep -q '"identity_fetch_failed".*503' "$tmp/sidecar-c.log" || die "the failed fetch was not logged"
echo "== without a certificate: not ready, failure counted and logged"
rm -f "$tmp/issuer-fail"
wait_until 20 bash -c "[ \"\$(ip netns exec $NS_S curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/readyz)\" = 200 ]" ||
	die "server sidecar not ready: $(tail -5 "$tmp/sidecar-s.log")"
wait_until 20 bash -c "[ \"\$(ip netns exec $NS_C curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/readyz)\" = 200 ]" ||
	die "client sidecar not ready: $(tail -5 "$tmp/sidecar-c.log")"
[ "$(ps -o uid= -p "$sc_c" | tr -d ' ')" = 1337 ] || die "the client sidecar does not run as uid 1337"
in_c curl -s http://127.0.0.1:15020/policy | "$PYTHON" -c '
import json, sys
w = json.load(sys.stdin)["workloadIdentity"]
assert w["spiffeId"] == "spiffe://cluster.local/ns/demo/sa/client", w
assert w["notAfter"].endswith("Z"), w' || die "/policy does not show the client identity"
exp=$(cmetrics | sum '^grpcguard_identity_cert_expiry_timestamp_seconds')
now=$(date +%s)
[ "$exp" -gt "$now" ] && [ "$exp" -le $((now + 21)) ] || die "expiry gauge $exp, now $now"
echo "== both sidecars ready with a certificate (client: spiffe://cluster.local/ns/demo/sa/client)"

# ---- client -> server over mTLS; nothing readable on the wire -------------------------------
ip netns exec "$NS_S" "$PYTHON" "$root/tests/lib/capture.py" "$V_SC" 6 SECRETNAME-client >"$tmp/cap-cs.txt" 2>&1 &
cap1=$!
pids+=($cap1)
ip netns exec "$NS_S" "$PYTHON" "$root/tests/lib/capture.py" "$V_SI" 6 SECRETNAME-intruder >"$tmp/cap-is.txt" 2>&1 &
cap2=$!
pids+=($cap2)
wait_until 5 grep -q ready "$tmp/cap-cs.txt" && wait_until 5 grep -q ready "$tmp/cap-is.txt" || die "capture did not start"
echo "== client -> server over mTLS, intruder in plaintext (PERMISSIVE)"
for i in 1 2 3; do expect_call OK "$NS_C" server:8080 SECRETNAME-client-$i; done
expect_call OK "$NS_I" server:8080 SECRETNAME-intruder
wait "$cap1" "$cap2"
read -r hits frames < <(tail -n 1 "$tmp/cap-cs.txt")
[ "$frames" -gt 10 ] || die "the capture between the sidecars saw only $frames frames"
[ "$hits" = 0 ] || die "$hits frames between the two sidecars carried plaintext gRPC"
read -r ihits iframes < <(tail -n 1 "$tmp/cap-is.txt")
[ "$ihits" -ge 1 ] || die "the capture did not see the intruder's plaintext call ($iframes frames): the check proves nothing"
echo "  wire client<->server: $frames frames, no plaintext; intruder's veth: $ihits frames with plaintext gRPC"
[ "$(logged server SECRETNAME-client-3)" = 1 ] || die "the call did not reach the server app"
edge='source_principal="spiffe://cluster.local/ns/demo/sa/client",.*destination_principal="spiffe://cluster.local/ns/demo/sa/server",.*connection_security_policy="mutual_tls",grpc_code="OK"'
[ "$(smetrics | sum "^grpcguard_requests_total\\{reporter=\"destination\",.*$edge")" = 3 ] ||
	die "server: want 3 mutual_tls calls from the client's principal: $(smetrics | grep '^grpcguard_requests_total')"
[ "$(cmetrics | sum "^grpcguard_requests_total\\{reporter=\"source\",.*$edge")" = 3 ] ||
	die "client: want 3 mutual_tls calls to the server's principal: $(cmetrics | grep '^grpcguard_requests_total')"
[ "$(smetrics | sum '^grpcguard_requests_total\{.*source_principal="unknown",.*connection_security_policy="none",grpc_code="OK"')" = 1 ] ||
	die "server: the intruder's plaintext call is not counted as none/unknown"
echo "  both ends: connection_security_policy=mutual_tls with both SPIFFE IDs; intruder: none"

echo "== the app's own TLS on an intercepted port is not taken for a sidecar's"
p0=$(smetrics | sum '^grpcguard_sidecar_passthrough_connections_total')
in_i curl -sk --max-time 5 "https://$IP_SI:8443/" | grep -q 's_server' ||
	die "HTTPS to the app's own TLS server through the sidecar failed"
[ "$(smetrics | sum '^grpcguard_sidecar_passthrough_connections_total')" = $((p0 + 1)) ] ||
	die "the app's TLS did not go through the sidecar's passthrough"
echo "  curl https to openssl s_server in the server pod: passed through byte for byte"

echo "== a destination without sidecar: one ClientHello answered in plaintext, then plaintext"
expect_call OK "$NS_C" backend:8080 to-backend-1
expect_call OK "$NS_C" backend:8080 to-backend-2
[ "$(cmetrics | sum '^grpcguard_tls_handshakes_total\{direction="outbound",result="no_sidecar"\}')" = 1 ] ||
	die "want exactly one no_sidecar attempt (the negative cache remembers): $(cmetrics | grep tls_handshakes)"
[ "$(cmetrics | sum '^grpcguard_requests_total\{reporter="source",.*destination_service="backend",.*connection_security_policy="none",grpc_code="OK"')" = 2 ] ||
	die "calls to the backend are not counted as plaintext"
echo "  backend reached in plaintext, negative cache hit on the second call"

"$PYTHON" "$root/tests/integration/mtls_probe.py" mint "$tmp/idca.crt" "$tmp/idca.key" \
	spiffe://cluster.local/ns/demo/sa/client -5 300 "$tmp/good.crt" "$tmp/good.key" || die mint
"$PYTHON" "$root/tests/integration/mtls_probe.py" mint "$tmp/otherca.crt" "$tmp/otherca.key" \
	spiffe://cluster.local/ns/demo/sa/client -5 300 "$tmp/other.crt" "$tmp/other.key" || die mint
"$PYTHON" "$root/tests/integration/mtls_probe.py" mint "$tmp/idca.crt" "$tmp/idca.key" \
	spiffe://cluster.local/ns/demo/sa/client -400 300 "$tmp/expired.crt" "$tmp/expired.key" || die mint
"$PYTHON" "$root/tests/integration/mtls_probe.py" mint "$tmp/idca.crt" "$tmp/idca.key" \
	spiffe://evil.example/ns/demo/sa/client -5 300 "$tmp/td.crt" "$tmp/td.key" || die mint
probe() { in_i "$PYTHON" "$root/tests/integration/mtls_probe.py" connect "$IP_SI" 8080 "$tmp/idca.crt" "$@"; }

echo "== handshakes: good served; another CA, expired, other trust domain, none refused"
f0=$(smetrics | sum '^grpcguard_tls_handshakes_total\{direction="inbound",result="failure"\}')
[ "$(probe "$tmp/good.crt" "$tmp/good.key")" = served ] || die "a valid client certificate was not served"
r=$(probe "$tmp/other.crt" "$tmp/other.key"); [ "${r%% *}" = refused ] || die "another CA: $r"
echo "  another CA: $r"
r=$(probe "$tmp/expired.crt" "$tmp/expired.key"); [ "${r%% *}" = refused ] || die "expired: $r"
echo "  expired: $r"
r=$(probe "$tmp/td.crt" "$tmp/td.key"); [ "${r%% *}" = refused ] || die "other trust domain: $r"
echo "  other trust domain: $r"
r=$(probe); [ "${r%% *}" = refused ] || die "no client certificate: $r"
echo "  no client certificate: $r"
f1=$(smetrics | sum '^grpcguard_tls_handshakes_total\{direction="inbound",result="failure"\}')
[ "$f1" = $((f0 + 4)) ] || die "inbound handshake failures $f0 -> $f1, want +4"
grep -q '"tls_handshake_failed".*"certificate has expired"' "$tmp/sidecar-s.log" || die "expiry not logged"

echo "== x-grpcguard-peer over mTLS: used only when it names the certificate's ns and sa"
# A lying sidecar: certificate for sa client, claim for sa admin.
mm0=$(smetrics | sum '^grpcguard_peer_metadata_invalid_total\{reason="mismatch"\}')
r=$(in_i "$PYTHON" "$root/tests/integration/mtls_probe.py" call "$IP_SI" 8080 "$tmp/idca.crt" \
	"$tmp/good.crt" "$tmp/good.key" "ns=demo;wl=admin-tool;sa=admin" claim-admin)
[ "$r" = 0 ] || die "the call with a mismatching claim: grpc-status $r, want 0"
r=$(in_i "$PYTHON" "$root/tests/integration/mtls_probe.py" call "$IP_SI" 8080 "$tmp/idca.crt" \
	"$tmp/good.crt" "$tmp/good.key" "ns=demo;wl=probe-wl;sa=client" claim-ok)
[ "$r" = 0 ] || die "the call with a matching claim: grpc-status $r, want 0"
[ "$(smetrics | sum '^grpcguard_peer_metadata_invalid_total\{reason="mismatch"\}')" = $((mm0 + 1)) ] ||
	die "the mismatching claim was not counted"
[ "$(smetrics | sum '^grpcguard_requests_total\{.*source_workload="admin-tool"')" = 0 ] ||
	die "a claim for another service account labelled the call"
[ "$(smetrics | sum '^grpcguard_requests_total\{.*source_workload="probe-wl",.*source_principal="spiffe://cluster.local/ns/demo/sa/client",.*mutual_tls')" = 1 ] ||
	die "the matching claim was not used: $(smetrics | grep '^grpcguard_requests_total')"
echo "  sa=admin claim over a sa=client certificate dropped (mismatch counted); sa=client claim used"

echo "== rotation under steady load (20 s certificates, renewal at half-life) loses no call"
r0=$(cmetrics | sum '^grpcguard_identity_renewals_total\{result="success"\}')
s0=$(smetrics | sum '^grpcguard_identity_renewals_total\{result="success"\}')
# One long-lived channel, ~20 s of calls (a bounded count: SIGINT is ignored by
# background jobs of a script, so it could not be interrupted).
ip netns exec "$NS_C" "$PYTHON" "$root/tests/greeter/greeter_client.py" --target server:8080 --count 400 \
	--interval 0.05 --name steady --json >"$tmp/steady.log" 2>&1 &
steady=$!
pids+=($steady)
fresh_bad=0 fresh_n=0
end=$((SECONDS + 24))
while [ $SECONDS -lt $end ]; do
	c=$(call "$NS_C" server:8080 fresh)
	fresh_n=$((fresh_n + 1))
	[ "$c" = OK ] || { fresh_bad=$((fresh_bad + 1)); echo "  fresh call: $c"; }
	sleep 0.3
done
wait "$steady"
r1=$(cmetrics | sum '^grpcguard_identity_renewals_total\{result="success"\}')
s1=$(smetrics | sum '^grpcguard_identity_renewals_total\{result="success"\}')
n_ok=$(grep -c '"code": "OK"' "$tmp/steady.log")
n_all=$(grep -c '"code"' "$tmp/steady.log")
[ $((r1 - r0)) -ge 2 ] && [ $((s1 - s0)) -ge 2 ] || die "renewals during the load: client +$((r1 - r0)), server +$((s1 - s0)), want >= 2 each"
[ "$n_all" -gt 100 ] && [ "$n_ok" = "$n_all" ] || die "steady load: $n_ok of $n_all OK"
[ "$fresh_bad" = 0 ] || die "$fresh_bad of $fresh_n calls on new connections failed during rotation"
echo "  renewals: client +$((r1 - r0)), server +$((s1 - s0)); steady $n_ok/$n_all OK, new connections $fresh_n/$fresh_n OK"

echo "== renewal failing: keep serving on the current certificate, unready only at expiry"
touch "$tmp/issuer-fail"
exp=$(smetrics | sum '^grpcguard_identity_cert_expiry_timestamp_seconds')
# Renewal is due at half-life (about exp - 10 s) and fails; 4 s before expiry we still serve.
wait_until 25 bash -c "[ \$(date +%s) -ge $((exp - 4)) ]"
[ "$(readyz "$NS_S")" = 200 ] || die "unready before the certificate expired"
expect_call OK "$NS_C" server:8080 during-failing-renewal
[ "$(smetrics | sum '^grpcguard_identity_renewals_total\{result="failure"\}')" -ge 1 ] || die "renewal failure not counted"
wait_until 25 bash -c "[ \$(date +%s) -ge $((exp + 2)) ]"
[ "$(readyz "$NS_S")" = 503 ] || die "still ready after the certificate expired"
echo "  ready until notAfter, 503 after"
rm -f "$tmp/issuer-fail"
wait_until 40 bash -c "[ \"\$(ip netns exec $NS_S curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/readyz)\" = 200 ]" ||
	die "the server sidecar did not recover once the issuer answered again"
wait_until 40 bash -c "[ \"\$(ip netns exec $NS_C curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/readyz)\" = 200 ]" ||
	die "the client sidecar did not recover"
expect_call OK "$NS_C" server:8080 after-recovery
echo "  recovered with a new certificate"

echo "== STRICT: plaintext refused, mTLS still served"
# Istio's PeerAuthentication STRICT, as the policy file says it.
mkdir -m 755 "$tmp/strict"
printf 'apiVersion: grpcguard.io/v1\nkind: Policy\nmtls: {mode: STRICT}\n' >"$tmp/strict/policy.yaml"
chmod 644 "$tmp/strict/policy.yaml"
stop_pid "$sc_s"
spol=$tmp/strict/policy.yaml
start_server_sidecar
wait_until 20 bash -c "[ \"\$(ip netns exec $NS_S curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/readyz)\" = 200 ]" ||
	die "server sidecar (STRICT) not ready"
expect_call UNAVAILABLE "$NS_I" server:8080 intruder-strict
[ "$(logged server intruder-strict)" = 0 ] || die "the plaintext call reached the app under STRICT"
code=$(in_i curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$IP_SI:8080/")
[ "$code" = 403 ] || die "HTTP/1.1 under STRICT: got $code, want 403"
[ "$(smetrics | sum '^grpcguard_connections_refused_total\{reason="plaintext"\}')" -ge 2 ] ||
	die "plaintext refusals not counted"
expect_call OK "$NS_C" server:8080 client-strict
in_s curl -s http://127.0.0.1:15020/policy | grep -q '"mtlsMode": "STRICT"' || die "/policy does not show STRICT"
echo "  intruder refused (gRPC UNAVAILABLE, HTTP/1.1 403), counted; the client's mTLS call served"

echo "== a destination sidecar with a certificate from another CA: UNAVAILABLE, never plaintext"
bg "$NS_S" issuer2 "$PYTHON" "$root/tests/integration/mtls_issuer.py" --listen 127.0.0.1:9444 \
	--tls-cert "$tmp/iss.crt" --tls-key "$tmp/iss.key" --ca-cert "$tmp/otherca.crt" \
	--ca-key "$tmp/otherca.key" --tokens "$tmp/tokens.json" --lifetime 600
wait_until 15 port_open "$NS_S" 127.0.0.1 9444 || die "second stand-in issuer did not start"
stop_pid "$sc_s"
ip netns exec "$NS_S" env "${san_env[@]}" POD_NAMESPACE=demo POD_NAME=server-6b7c9d8f5x-k2m4q SERVICE_ACCOUNT=server \
	setpriv --reuid 1337 --regid 1337 --clear-groups \
	"$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 --outbound-listen '[::]:15001' \
	--admin 127.0.0.1:15020 --policy "$tmp/nopolicy.yaml" \
	--ca-address https://127.0.0.1:9444 --ca-cert "$tmp/servca.crt" \
	--identity-token "$tmp/s/token" >>"$tmp/sidecar-s.log" 2>&1 &
sc_s=$!
wait_until 20 bash -c "[ \"\$(ip netns exec $NS_S curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15020/readyz)\" = 200 ]" ||
	die "server sidecar (other CA) not ready"
of0=$(cmetrics | sum '^grpcguard_tls_handshakes_total\{direction="outbound",result="failure"\}')
ns0=$(cmetrics | sum '^grpcguard_tls_handshakes_total\{direction="outbound",result="no_sidecar"\}')
expect_call UNAVAILABLE "$NS_C" server:8080 to-other-ca
[ "$(logged server to-other-ca)" = 0 ] || die "the call reached the app despite the failed handshake"
[ "$(cmetrics | sum '^grpcguard_tls_handshakes_total\{direction="outbound",result="failure"\}')" -gt "$of0" ] ||
	die "the outbound handshake failure was not counted"
[ "$(cmetrics | sum '^grpcguard_tls_handshakes_total\{direction="outbound",result="no_sidecar"\}')" = "$ns0" ] ||
	die "a TLS failure was taken for a destination without sidecar (plaintext downgrade)"
grep -q '"tls_handshake_failed".*outbound mTLS' "$tmp/sidecar-c.log" || die "the outbound failure was not logged"
echo "  handshake failed both ways, RPC UNAVAILABLE, no plaintext retry"

# ---- shutdown ------------------------------------------------------------------------------
for p in "$sc_c" "$sc_s"; do
	kill -TERM "$p"
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	wait "$p"
	rc=$?
	[ "$rc" = 0 ] || { tail -n 30 "$tmp/sidecar-c.log" "$tmp/sidecar-s.log"; die "a sidecar exited $rc"; }
done
sc_c= sc_s=
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp/sidecar-c.log" "$tmp/sidecar-s.log"; then
	cat "$tmp/sidecar-c.log" "$tmp/sidecar-s.log"
	die "sanitizer report"
fi
echo "PASS: workload identity, mTLS between sidecars, PERMISSIVE/STRICT, rotation"
exit 0
