#!/usr/bin/env bash
# grpcguard in about a minute, on one machine, no cluster: the story a mesh tutorial tells.
#
#   1. certificates (grpcguard-certgen) and the real admission webhook over TLS
#   2. Service validation: an unnamed gRPC port is denied, `name: grpc` is allowed
#   3. sidecar injection: the JSONPatch for a Deployment-made pod, applied and summarised
#   4. a "server pod" and a "client pod" as network namespaces on a bridge in a third
#      ("node") namespace: the greeter app, `grpcguard-sidecar init` in both pods (inbound
#      REDIRECT, outbound capture), a sidecar in each as uid 1337 with the env and labels
#      the injector gives it, Prometheus on the node scraping both, and a client calling
#      SayHello on server:8080 every 2 s with a 4 s deadline, through both sidecars
#      Workload identity: an identity CA, the webhook's /v1/certify (a second replica on the
#      node, identity.enabled, TokenReview answered by a stand-in), a third pod "other"
#      (sa other, a sidecar too); each sidecar gets its certificate before /readyz
#   5. policy changes the way a ConfigMap update reaches a pod (`..data` symlink swap):
#      delay fault -> DEADLINE_EXCEEDED, and the caller's view of it from Prometheus
#      (reporter="source", duration = the deadline); a client-side delay (destinations)
#      that never reaches the server's sidecar; DENY -> PERMISSION_DENIED, a broken policy
#      (the webhook refuses it, the sidecars keep the last good one), ALLOW naming another
#      method -> PERMISSION_DENIED, an ALLOW naming only cluster.local/ns/demo/sa/client ->
#      the client OK over mTLS, the other pod PERMISSION_DENIED (with the principals the
#      server's sidecar counted), empty policy -> OK again
#   6. each sidecar's metrics as a table, one reporter each (no call counted twice)
#   7. the service graph from Prometheus (grpcguard-graph: text, SVG, PNG), then
#      everything started here is stopped
#   Loopback mode (not root, or no netns/iptables) keeps one sidecar and skips the
#   caller's sidecar, workload identity, Prometheus and the graph, and says so.
#
# Environment: GG_BIN (programs, default build/), PYTHON (default /usr/bin/python3),
# DEMO_FAST=1 (short waits, for CI), DEMO_MODE=netns|loopback (default: netns when this
# machine allows it), DEMO_PORT_BASE (host ports, default 29000: the webhook on base+0;
# in loopback mode the sidecar on base+6, its admin on base+7, the app on base+8),
# DEMO_KEEP=1 (keep the work directory for inspection), DEMO_OUT (where the service graph
# goes, default build/demo).
# Exit status: 0 when every step showed what it should, 1 otherwise, 130 on Ctrl-C.
set -u -o pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GG_BIN:-$ROOT/build}
PYTHON=${PYTHON:-/usr/bin/python3}
FAST=${DEMO_FAST:-0}
PORT_BASE=${DEMO_PORT_BASE:-29000}
HELPER="$ROOT/demo/ggdemo.py"
export PYTHONPATH="$ROOT/tests/greeter:$ROOT/build/py${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
# The demo talks to local addresses only; a proxy from the environment would intercept them.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY grpc_proxy no_grpc_proxy

if [ "$FAST" = 1 ]; then
	INTERVAL=0.5 DEADLINE=0.8 DELAY=2s PHASE_TIMEOUT=15
else
	INTERVAL=2 DEADLINE=4 DELAY=10s PHASE_TIMEOUT=40
fi

WH_HOST=grpcguard-webhook.grpcguard-system.svc
WH_PORT=$PORT_BASE
TAG="ggdemo-$$"
NS_SRV="$TAG-server" NS_CLI="$TAG-client" NS_NODE="$TAG-node" NS_OTH="$TAG-other"
ETC_NETNS= # /etc/netns/<pod ns> directories (the pods' /etc/hosts), space-separated
W= # work directory
PIDS=() NETNS=() FAILED=0 CLEANED=0 INTERRUPTED=0 CLIENT_PID=
declare -A NAME_OF=()
started() { PIDS+=("$2"); NAME_OF[$2]=$1; } # started NAME PID

# ---- output -------------------------------------------------------------------------
if [ -t 1 ]; then B=$'\e[1m' R=$'\e[31m' G=$'\e[32m' N=$'\e[0m'; else B='' R='' G='' N=''; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
indent() { sed -u "s/^/   ${1:-}/"; }
good() { printf '   %s%s%s\n' "$G" "$*" "$N"; }
bad() { printf '   %s!! %s%s\n' "$R" "$*" "$N"; FAILED=1; }
die() {
	bad "$*"
	exit 1 # the EXIT trap cleans up and shows the programs' last log lines
}
# On failure: the last lines of every log, the sidecar's whole log (its JSON events and, in
# a sanitizer build, the sanitizer's report), which is also kept in /tmp after the work
# directory is removed.
dump_logs() {
	[ -n "$W" ] && [ -d "$W/logs" ] || return 0
	local f keep
	for f in "$W"/logs/*.log; do
		[ -s "$f" ] || continue
		case "${f##*/}" in sidecar.log) continue ;; esac
		say "--- last lines of ${f##*/}:"
		tail -n 8 "$f" | indent '| '
	done
	f="$W/logs/sidecar.log"
	[ -s "$f" ] || return 0
	keep="/tmp/ggdemo-$$-sidecar.log"
	cp "$f" "$keep" 2>/dev/null && say "--- the sidecar's log (kept in $keep):" ||
		say "--- the sidecar's log:"
	tail -n 200 "$f" | indent '| '
}

# ---- cleanup: everything started here, by PID and by name, also on Ctrl-C ------------
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
cleanup() {
	[ "$CLEANED" = 1 ] && return 0
	CLEANED=1
	[ ${#PIDS[@]} -eq 0 ] && [ ${#NETNS[@]} -eq 0 ] && [ -z "$W" ] && return 0 # nothing started
	trap '' INT TERM
	local pid ns rc stopped=() statuses=()
	declare -A termed=()
	for pid in "${PIDS[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null && termed[$pid]=1; done
	for _ in $(seq 30); do
		local left=0
		for pid in "${PIDS[@]}"; do alive "$pid" && left=1; done
		[ $left = 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do
		alive "$pid" && kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=$?
		stopped+=("$pid")
		# Our own programs must shut down cleanly on SIGTERM (sanitizer builds exit
		# non-zero when they find a leak or an error). After Ctrl-C they may have
		# stopped on their own SIGINT, or been caught before their handlers were set.
		[ "$INTERRUPTED" = 1 ] && continue
		case "${NAME_OF[$pid]:-}" in webhook | issuer-webhook | sidecar | client-sidecar | other-sidecar)
			if [ -z "${termed[$pid]:-}" ]; then
				bad "${NAME_OF[$pid]} (pid $pid) had exited before the end, status $rc"
			else
				statuses+=("${NAME_OF[$pid]} $rc")
				[ "$rc" = 0 ] || bad "${NAME_OF[$pid]} (pid $pid) exited with status $rc on SIGTERM"
			fi ;;
		esac
	done
	for ns in "${NETNS[@]}"; do
		# Anything still inside a namespace we made was started by us (a child of a child).
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	# shellcheck disable=SC2086 # a list of /etc/netns/ggdemo-* paths without spaces
	[ -n "$ETC_NETNS" ] && rm -rf $ETC_NETNS
	[ "$FAILED" = 1 ] && dump_logs
	if [ -n "$W" ] && [ -d "$W" ]; then
		if [ "${DEMO_KEEP:-0}" = 1 ]; then
			say "kept the work directory $W (DEMO_KEEP=1)"
		else
			rm -rf "$W"
		fi
	fi
	say "stopped pids ${stopped[*]:-none}; deleted netns ${NETNS[*]:-none}; removed ${W:-nothing}"
	[ ${#statuses[@]} -gt 0 ] && say "exit statuses on SIGTERM: $(printf '%s, ' "${statuses[@]}" | sed 's/, $//')"
	return 0
}
on_signal() {
	printf '\n'
	say "interrupted: cleaning up"
	INTERRUPTED=1
	cleanup
	exit 130
}
trap on_signal INT TERM
trap cleanup EXIT

# Runs a command until it succeeds or `secs` pass. Returns its last status.
wait_until() {
	local secs=$1 t0
	shift
	t0=$(date +%s%N)
	until "$@"; do
		[ $(($(date +%s%N) - t0)) -gt $((secs * 1000000000)) ] && return 1
		sleep 0.1
	done
}
# Waits for a program we started to be ready; gives up at once if it exits.
# up NAME PID SECS CMD...
up() {
	local name=$1 pid=$2 secs=$3
	shift 3
	wait_until "$secs" ready_or_dead "$pid" "$@" || die "$name did not become ready within ${secs}s"
	alive "$pid" || die "$name exited at start-up (its log is below; a port in use? set DEMO_PORT_BASE)"
}
ready_or_dead() { local pid=$1; shift; ! alive "$pid" || "$@"; }

# ---- 0. preflight -------------------------------------------------------------------
for p in grpcguard-webhook grpcguard-sidecar grpcguard-certgen; do
	[ -x "$BIN/$p" ] || { echo "demo: $BIN/$p is missing: run \`make demo\` (it builds first)" >&2; exit 1; }
done
[ -f "$ROOT/build/py/helloworld_pb2.py" ] ||
	{ echo "demo: greeter stubs missing in build/py: run \`make demo\` (or \`make py\`)" >&2; exit 1; }
for t in curl openssl; do
	command -v $t >/dev/null || { echo "demo: $t is required (make deps installs it)" >&2; exit 1; }
done

MODE=${DEMO_MODE:-}
case "$MODE" in "" | netns | loopback) ;; *) echo "demo: DEMO_MODE is netns or loopback, not \"$MODE\"" >&2; exit 2 ;; esac
if [ -z "$MODE" ]; then
	MODE=loopback
	if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v iptables >/dev/null &&
		command -v setpriv >/dev/null && ip netns add "$TAG-probe" 2>/dev/null; then
		ip netns exec "$TAG-probe" iptables -t nat -S >/dev/null 2>&1 && MODE=netns
		ip netns del "$TAG-probe"
	fi
fi

W=$(mktemp -d /tmp/ggdemo.XXXXXX) || exit 1
chmod 755 "$W" # the sidecar runs as uid 1337 and reads the policy below
mkdir -p "$W/logs" "$W/certs" "$W/policy" "$W/podinfo" "$W/reviews"

printf '%sgrpcguard demo%s: fault injection and gRPC authorization without a mesh.\n' "$B" "$N"
say "work directory $W, mode $MODE$([ "$FAST" = 1 ] && echo ', fast (DEMO_FAST=1)')"

# ---- 1. certificates and the webhook ------------------------------------------------
step "1/7  Certificates and the admission webhook over TLS"
say "programs: $(cd "$BIN" && ls grpcguard-webhook grpcguard-sidecar grpcguard-certgen | tr '\n' ' ')(in ${BIN#"$ROOT"/})"
say "\$ grpcguard-certgen --service grpcguard-webhook --namespace grpcguard-system --out \$W/certs"
"$BIN/grpcguard-certgen" --service grpcguard-webhook --namespace grpcguard-system \
	--out "$W/certs" >"$W/logs/certgen.log" 2>&1 || die "grpcguard-certgen failed"
for f in ca.crt tls.crt tls.key; do [ -s "$W/certs/$f" ] || die "certgen wrote no $f"; done
say "wrote $(cd "$W/certs" && ls | paste -sd' ')"
sans=$(openssl x509 -in "$W/certs/tls.crt" -noout -ext subjectAltName 2>/dev/null | sed -n '2p' |
	tr -d ' ' | tr ',' '\n' | sed 's/^[A-Za-z ]*://')
certtext=$(openssl x509 -in "$W/certs/tls.crt" -noout -text 2>/dev/null)
keytype=$(grep -oE 'NIST CURVE: P-[0-9]+' <<<"$certtext" | sed 's/NIST CURVE: /ECDSA /')
[ -n "$keytype" ] || keytype=$(grep -oE 'Public-Key: \([0-9]+ bit\)' <<<"$certtext")
say "serving cert: ${keytype:-?}, valid until $(openssl x509 -in "$W/certs/tls.crt" -noout -enddate | cut -d= -f2)"
say "  for $(printf '%s\n' "$sans" | sed -n '1p;$p' | paste -sd' ' | sed 's/ / ... /') ($(printf '%s\n' "$sans" | grep -c .) names)"
openssl verify -CAfile "$W/certs/ca.crt" "$W/certs/tls.crt" >/dev/null 2>&1 &&
	say "it chains to ca.crt (the caBundle the chart puts in the webhook configuration)" ||
	bad "tls.crt does not verify against ca.crt"

"$BIN/grpcguard-webhook" --listen "127.0.0.1:$WH_PORT" --tls-cert "$W/certs/tls.crt" \
	--tls-key "$W/certs/tls.key" >"$W/logs/webhook.log" 2>&1 &
WH_PID=$!
started webhook "$WH_PID"
# curl reaches it by its in-cluster name, as the API server would, and checks the CA.
CURL=(curl -sS --max-time 5 --cacert "$W/certs/ca.crt" --resolve "$WH_HOST:$WH_PORT:127.0.0.1")
WH_URL="https://$WH_HOST:$WH_PORT"
up "the webhook (/healthz over TLS)" "$WH_PID" 10 "${CURL[@]}" -fo /dev/null "$WH_URL/healthz" 2>/dev/null
say "grpcguard-webhook listening on 127.0.0.1:$WH_PORT (pid $WH_PID); TLS verified against ca.crt as $WH_HOST"

# ---- 2. Service validation ----------------------------------------------------------
step "2/7  A Service must name its gRPC port (POST /validate)"
review() { # review ENDPOINT NAME: posts demo/admission/NAME.json, answer in $W/reviews/NAME.out
	"${CURL[@]}" -H 'Content-Type: application/json' --data-binary "@$ROOT/demo/admission/$2.json" \
		-o "$W/reviews/$2.out" -w '%{http_code}' "$WH_URL/$1" 2>"$W/reviews/$2.err"
}
say "\$ curl --cacert ca.crt $WH_URL/validate -d @service-unnamed.json   # ports: [{port: 8080}]"
code=$(review validate service-unnamed) || die "POST /validate failed: $(cat "$W/reviews/service-unnamed.err")"
[ "$code" = 200 ] || die "POST /validate answered HTTP $code: $(head -c 300 "$W/reviews/service-unnamed.out")"
v=$("$PYTHON" "$HELPER" verdict "$W/reviews/service-unnamed.out")
printf '%s\n' "$v" | indent '-> '
case "$v" in denied*) ;; *) bad "expected the unnamed port to be denied" ;; esac
say "\$ curl ... -d @service-named.json   # ports: [{name: grpc, port: 8080}]"
code=$(review validate service-named) || die "POST /validate failed: $(cat "$W/reviews/service-named.err")"
v=$("$PYTHON" "$HELPER" verdict "$W/reviews/service-named.out")
printf '%s\n' "$v" | indent '-> '
case "$v" in allowed*) ;; *) bad "expected the named port to be allowed" ;; esac

# ---- 3. Pod injection ---------------------------------------------------------------
step "3/7  A Deployment's pod gets the sidecar (POST /mutate)"
say "pod generateName server-6b8f9d7c54-, container server (port grpc 8080), projected SA token volume"
code=$(review mutate pod-from-deployment) || die "POST /mutate failed: $(cat "$W/reviews/pod-from-deployment.err")"
[ "$code" = 200 ] || die "POST /mutate answered HTTP $code: $(head -c 300 "$W/reviews/pod-from-deployment.out")"
"$PYTHON" "$HELPER" patch-summary "$ROOT/demo/admission/pod-from-deployment.json" \
	"$W/reviews/pod-from-deployment.out" --reinvoke "$W/reviews/pod-again.json" >"$W/reviews/summary.txt" 2>&1 ||
	bad "the patch could not be applied"
indent <"$W/reviews/summary.txt"
if [ -s "$W/reviews/pod-again.json" ]; then
	# Reinvocation: the API server may call the webhook again with the already patched pod.
	"${CURL[@]}" -H 'Content-Type: application/json' --data-binary "@$W/reviews/pod-again.json" \
		-o "$W/reviews/pod-again.out" "$WH_URL/mutate" 2>/dev/null
	again=$("$PYTHON" "$HELPER" patch-summary "$W/reviews/pod-again.json" "$W/reviews/pod-again.out" | head -n 1)
	say "reinvoked with the patched pod: $again"
fi

# ---- 4. two pods on one machine -----------------------------------------------------
if [ "$MODE" = netns ]; then
	step "4/7  A server pod, a client pod and an \"other\" pod, each with its sidecar and workload certificate"
	SRV=(ip netns exec "$NS_SRV") CLI=(ip netns exec "$NS_CLI") NODE=(ip netns exec "$NS_NODE")
	APP_PORT=8080 PROXY_LISTEN='[::]:15006' UPSTREAM=original-dst ADMIN=127.0.0.1:15020
	TARGET=server:8080
	for ns in "$NS_NODE" "$NS_SRV" "$NS_CLI" "$NS_OTH"; do
		ip netns add "$ns" || die "ip netns add $ns failed"
		NETNS+=("$ns")
	done
	# The node: a bridge (like a CNI's cni0) with both pods on it, and Prometheus. The veth
	# pairs are made inside the namespaces, so nothing of the demo appears on this host's
	# own network.
	ip -n "$NS_NODE" link add br0 type bridge &&
		ip -n "$NS_NODE" link add vcli type veth peer name eth0 netns "$NS_CLI" &&
		ip -n "$NS_NODE" link add vsrv type veth peer name eth0 netns "$NS_SRV" &&
		ip -n "$NS_NODE" link add voth type veth peer name eth0 netns "$NS_OTH" &&
		ip -n "$NS_NODE" link set vcli master br0 && ip -n "$NS_NODE" link set vsrv master br0 &&
		ip -n "$NS_NODE" link set voth master br0 ||
		die "cannot create the bridge and veth pairs"
	ip -n "$NS_NODE" addr add 10.99.9.254/24 dev br0 &&
		ip -n "$NS_CLI" addr add 10.99.9.1/24 dev eth0 && ip -n "$NS_SRV" addr add 10.99.9.2/24 dev eth0 &&
		ip -n "$NS_NODE" link set lo up && ip -n "$NS_SRV" link set lo up &&
		ip -n "$NS_CLI" link set lo up && ip -n "$NS_NODE" link set br0 up && ip -n "$NS_NODE" link set vcli up &&
		ip -n "$NS_NODE" link set vsrv up && ip -n "$NS_CLI" link set eth0 up &&
		ip -n "$NS_SRV" link set eth0 up || die "network setup failed"
	# The third pod, "other": same namespace, another service account, a sidecar too.
	ip -n "$NS_OTH" addr add 10.99.9.3/24 dev eth0 && ip -n "$NS_OTH" link set lo up &&
		ip -n "$NS_OTH" link set eth0 up && ip -n "$NS_NODE" link set voth up ||
		die "network setup of the other pod failed"
	# The client pod resolves the Service name the way a pod does (ip netns exec mounts
	# /etc/netns/<ns>/hosts over /etc/hosts): its calls carry :authority server:8080.
	# Every pod also finds the webhook's Service (its second replica, on the node: identity).
	# The node resolves the stand-in API server's name (the webhook's TokenReview).
	ETC_NETNS+=" /etc/netns/$NS_NODE"
	mkdir -p "/etc/netns/$NS_NODE" &&
		printf '127.0.0.1 localhost kubernetes.default.svc\n' >"/etc/netns/$NS_NODE/hosts" ||
		die "cannot write /etc/netns/$NS_NODE/hosts"
	for ns in "$NS_CLI" "$NS_SRV" "$NS_OTH"; do
		ETC_NETNS+=" /etc/netns/$ns"
		mkdir -p "/etc/netns/$ns" &&
			printf '127.0.0.1 localhost\n10.99.9.2 server server.demo server.demo.svc server.demo.svc.cluster.local\n10.99.9.254 %s\n' \
				"$WH_HOST" >"/etc/netns/$ns/hosts" || die "cannot write /etc/netns/$ns/hosts"
	done
	say "netns $NS_SRV (10.99.9.2), $NS_CLI (10.99.9.1) and $NS_OTH (10.99.9.3), namespace demo, on a bridge in $NS_NODE (10.99.9.254)"
else
	step "4/7  A server pod with its sidecar, called from this machine"
	SRV=() CLI=() NODE=()
	APP_PORT=$((PORT_BASE + 8)) PROXY_LISTEN=127.0.0.1:$((PORT_BASE + 6))
	UPSTREAM=127.0.0.1:$APP_PORT ADMIN=127.0.0.1:$((PORT_BASE + 7)) TARGET=$PROXY_LISTEN
	if [ -n "${DEMO_MODE:-}" ]; then
		say "loopback mode (DEMO_MODE=loopback):"
	else
		say "loopback mode (network namespaces need root, iproute2 and iptables here):"
	fi
	say "the client calls the sidecar on $PROXY_LISTEN, which forwards to the app on $UPSTREAM"
	say "one sidecar only: no caller's sidecar, no Prometheus, no service graph (they need netns mode)"
fi

# The policy volume, laid out the way the kubelet lays out a ConfigMap volume.
printf 'app="server"\npod-template-hash="6b8f9d7c54"\n' >"$W/podinfo/labels"
chmod 644 "$W/podinfo/labels"
write_policy() { # stdin -> $W/policy/..<ts>/policy.yaml, then atomically repoint ..data
	local ts old
	ts="..$(date -u +%Y_%m_%d_%H_%M_%S.%N)" # the kubelet's naming
	mkdir "$W/policy/$ts" && cat >"$W/policy/$ts/policy.yaml" || return 1
	chmod 755 "$W/policy/$ts" && chmod 644 "$W/policy/$ts/policy.yaml"
	old=$(readlink "$W/policy/..data" 2>/dev/null)
	SWAP_MS=$(date +%s%3N)
	ln -s "$ts" "$W/policy/..data_tmp" && mv -T "$W/policy/..data_tmp" "$W/policy/..data" || return 1
	[ -L "$W/policy/policy.yaml" ] || ln -s ..data/policy.yaml "$W/policy/policy.yaml"
	[ -n "$old" ] && rm -rf "${W:?}/policy/$old"
	return 0
}
EMPTY_POLICY=$'apiVersion: grpcguard.io/v1\nkind: Policy\n'
write_policy <<<"$EMPTY_POLICY" || die "cannot write the policy volume"

"${SRV[@]}" env "$PYTHON" -u "$ROOT/tests/greeter/greeter_server.py" --host 0.0.0.0 --port "$APP_PORT" \
	--calls-log "$W/calls.log" --name server-pod >"$W/logs/app.log" 2>&1 &
APP_PID=$!
started app "$APP_PID"
up "the greeter server" "$APP_PID" 15 grep -q listening "$W/logs/app.log"
say "app: greeter server on :$APP_PORT (pid $APP_PID, python grpcio)"

# Workload identity (netns mode): an identity CA, the webhook's /v1/certify (a second
# replica of the same webhook, on the node where the pods reach its Service name), the
# pods' projected ServiceAccount tokens, and a stand-in for the API server's TokenReview.
ID_ARGS=()
if [ "$MODE" = netns ]; then
	say "workload identity: an identity CA and the webhook's POST /v1/certify for the pods"
	say "\$ grpcguard-certgen --identity-ca --out \$W/identity-ca"
	"$BIN/grpcguard-certgen" --identity-ca --out "$W/identity-ca" >>"$W/logs/certgen.log" 2>&1 ||
		die "grpcguard-certgen --identity-ca failed"
	"$BIN/grpcguard-certgen" --service kubernetes --namespace default --out "$W/apiserver" \
		>>"$W/logs/certgen.log" 2>&1 || die "grpcguard-certgen for the stand-in API server failed"
	# Tokens as the kubelet projects them (audience grpcguard), one per service account,
	# readable by uid 1337; the webhook's own ServiceAccount token authenticates its reviews.
	mkdir -p "$W/tokens" && chmod 755 "$W/tokens"
	printf '{' >"$W/tokens.json"
	for sa in server client other webhook; do
		tok="eyJhbGciOiJSUzI1NiJ9.$(openssl rand -hex 24).$(openssl rand -hex 16)"
		mkdir -p "$W/tokens/$sa" && printf '%s\n' "$tok" >"$W/tokens/$sa/token" &&
			chmod 755 "$W/tokens/$sa" && chmod 644 "$W/tokens/$sa/token" || die "cannot write the $sa token"
		[ $sa = webhook ] || printf '"%s": "system:serviceaccount:demo:%s",' "$tok" "$sa" >>"$W/tokens.json"
	done
	sed -i 's/,$/}/' "$W/tokens.json"
	say "no kube-apiserver runs here: a STAND-IN answers TokenReview for the tokens the demo minted (sa server, client, other)"
	"${NODE[@]}" "$PYTHON" -u "$HELPER" tokenreview --listen 127.0.0.1:6443 --cert "$W/apiserver/tls.crt" \
		--key "$W/apiserver/tls.key" --tokens "$W/tokens.json" --caller-token "$W/tokens/webhook/token" \
		>"$W/logs/tokenreview.log" 2>&1 &
	started tokenreview $!
	up "the stand-in TokenReview" "$!" 10 grep -q listening "$W/logs/tokenreview.log"
	cat >"$W/webhook-identity.yaml" <<IDCFG
identity:
  enabled: true
  ca:
    certFile: $W/identity-ca/tls.crt
    keyFile: $W/identity-ca/tls.key
  tokenReview:
    url: https://kubernetes.default.svc:6443/apis/authentication.k8s.io/v1/tokenreviews
    caFile: $W/apiserver/ca.crt
    tokenFile: $W/tokens/webhook/token
IDCFG
	"${NODE[@]}" "$BIN/grpcguard-webhook" \
		--listen 10.99.9.254:443 --tls-cert "$W/certs/tls.crt" --tls-key "$W/certs/tls.key" \
		--config "$W/webhook-identity.yaml" >"$W/logs/issuer-webhook.log" 2>&1 &
	ISS_PID=$!
	started issuer-webhook "$ISS_PID"
	up "the webhook's /v1/certify on the node" "$ISS_PID" 10 "${NODE[@]}" curl -sf --max-time 2 -o /dev/null \
		--cacert "$W/certs/ca.crt" --resolve "$WH_HOST:443:10.99.9.254" "https://$WH_HOST/healthz"
	say "grpcguard-webhook --config (identity.enabled: true), pid $ISS_PID, in $NS_NODE on https://$WH_HOST:443 (10.99.9.254)"
	ID_ARGS=(--ca-address "https://$WH_HOST:443" --ca-cert "$W/certs/ca.crt")
fi

# pod_name OWNER: a Deployment pod's name, <owner>-<ReplicaSet hash>-<5>, in Kubernetes'
# alphabet for generated names.
pod_name() {
	local a=bcdfghjklmnpqrstvwxz2456789 h='' s=''
	while [ ${#h} -lt 10 ]; do h+=${a:$((RANDOM % 27)):1}; done
	while [ ${#s} -lt 5 ]; do s+=${a:$((RANDOM % 27)):1}; done
	echo "$1-$h-$s"
}
if [ "$MODE" = netns ]; then
	say "\$ grpcguard-sidecar init --ports '*'      # in $NS_SRV, as the init container would"
	"${SRV[@]}" "$BIN/grpcguard-sidecar" init --ports '*' >"$W/logs/init.log" 2>&1 ||
		die "grpcguard-sidecar init failed: $(tail -n 3 "$W/logs/init.log")"
	"${SRV[@]}" iptables-save -t nat 2>/dev/null | grep -E '^-A (PREROUTING|GRPCGUARD_INBOUND) ' |
		grep -iE 'grpcguard|REDIRECT' | head -n 6 | indent 'iptables: '
	say "(and the outbound rules below, as in the client pod)"
fi

# The sidecar, as the injector runs it: uid 1337, the pod's name, namespace and service
# account in its env (downward API), the pod's labels file. Both pods mount the same
# policy ConfigMap (one per namespace): faults with `destinations` are applied by the
# caller's sidecar, the rest by the server's.
SIDECAR_ARGS=(run --listen "$PROXY_LISTEN" --upstream "$UPSTREAM" --admin "$ADMIN"
	--policy "$W/policy/policy.yaml" --pod-labels "$W/podinfo/labels")
if [ "$MODE" = netns ]; then
	SIDECAR_ARGS=(run --listen "$PROXY_LISTEN" --upstream original-dst --outbound-listen '[::]:15001'
		--admin '[::]:15020' --policy "$W/policy/policy.yaml")
fi
SRV_POD=$(pod_name server | sed 's/^server-[a-z0-9]*-/server-6b8f9d7c54-/')
CLI_POD=$(pod_name client)
AS_PROXY=()
if [ "$(id -u)" = 0 ]; then AS_PROXY=(setpriv --reuid 1337 --regid 1337 --clear-groups); fi
POD_ENV=(env POD_NAMESPACE=demo POD_NAME="$SRV_POD" SERVICE_ACCOUNT=server)
# In netns mode each sidecar also gets --ca-address --ca-cert --identity-token <its pod's token>.
id_args() { [ ${#ID_ARGS[@]} -gt 0 ] && printf '%s\n' "${ID_ARGS[@]}" --identity-token "$W/tokens/$1/token"; }
mapfile -t SRV_ID < <(id_args server)
"${SRV[@]}" "${POD_ENV[@]}" "${AS_PROXY[@]}" "$BIN/grpcguard-sidecar" "${SIDECAR_ARGS[@]}" \
	--pod-labels "$W/podinfo/labels" "${SRV_ID[@]}" >"$W/logs/sidecar.log" 2>&1 &
SC_PID=$!
started sidecar "$SC_PID"
# admin_get PATH OUT [POD]: GET from a sidecar's admin port (the server's, or the client's
# with POD=client). A failure is logged in $W/logs/admin-get.log (curl's message and exit
# status, whether the sidecar is alive) so that a run that fails later can tell "the
# sidecar died" from "the port did not answer".
admin_get() {
	local rc in=("${SRV[@]}") pid=$SC_PID
	[ "${3:-}" = client ] && in=("${CLI[@]}") pid=$CSC_PID
	"${in[@]}" curl -fsS --max-time 3 -o "$2" "http://$ADMIN$1" 2>"$W/logs/admin-get.err" && return 0
	rc=$?
	printf '%s GET %s: curl exit %s: %s; %s sidecar pid %s %s\n' "$(date -u +%H:%M:%S.%3N)" "$1" "$rc" \
		"$(tr '\n' ' ' <"$W/logs/admin-get.err")" "${3:-server}" "$pid" \
		"$(alive "$pid" && echo alive || echo 'has EXITED')" >>"$W/logs/admin-get.log"
	return $rc
}
up "the sidecar (admin $ADMIN/readyz)" "$SC_PID" 10 admin_get /readyz /dev/null
say "sidecar: grpcguard-sidecar ${SIDECAR_ARGS[*]} --pod-labels \$W/podinfo/labels" | sed "s#$W#\$W#g"
say "         pid $SC_PID, uid $(awk '/^Uid:/{print $2}' "/proc/$SC_PID/status" 2>/dev/null), ready on $ADMIN$(
	[ "$MODE" = netns ] && echo ", pod $SRV_POD")"
# identity_line POD ADMIN_IN...: the workload certificate a sidecar got before /readyz, from
# its /policy (workloadIdentity).
identity_line() {
	local pod=$1 out="$W/policy-$1.json"
	shift
	"$@" curl -sS --max-time 3 -o "$out" "http://$ADMIN/policy" 2>/dev/null &&
		"$PYTHON" -c 'import json, sys
w = json.load(open(sys.argv[1])).get("workloadIdentity") or {}
print("%s, certificate until %s" % (w["spiffeId"], w["notAfter"]))' "$out" 2>/dev/null |
		sed "s/^/         identity $pod: /" | grep . || bad "the $pod's sidecar shows no workload identity in /policy"
}
[ "$MODE" = netns ] && identity_line server "${SRV[@]}"

CSC_PID='' OSC_PID=''
PROM_URL='' PROM_PID=''
if [ "$MODE" = netns ]; then
	# The client pod: injected too. Its init captures the app's outgoing TCP (nat OUTPUT ->
	# 15001) except uid 1337's, loopback and port 53; its sidecar proxies gRPC to the
	# original destination and reports each call as reporter="source".
	printf 'app="client"\npod-template-hash="%s"\n' "$(cut -d- -f2 <<<"$CLI_POD")" >"$W/podinfo/client-labels"
	chmod 644 "$W/podinfo/client-labels"
	say "\$ grpcguard-sidecar init --ports '*'      # in $NS_CLI: outbound capture on (the default)"
	"${CLI[@]}" "$BIN/grpcguard-sidecar" init --ports '*' >"$W/logs/init-client.log" 2>&1 ||
		die "grpcguard-sidecar init failed in the client pod: $(tail -n 3 "$W/logs/init-client.log")"
	"${CLI[@]}" iptables-save -t nat 2>/dev/null | grep -E '^-A (OUTPUT|GRPCGUARD_OUTBOUND) ' | head -n 8 |
		indent 'iptables: '
	POD_ENV=(env POD_NAMESPACE=demo POD_NAME="$CLI_POD" SERVICE_ACCOUNT=client)
	mapfile -t CLI_ID < <(id_args client)
	"${CLI[@]}" "${POD_ENV[@]}" "${AS_PROXY[@]}" "$BIN/grpcguard-sidecar" "${SIDECAR_ARGS[@]}" \
		--pod-labels "$W/podinfo/client-labels" "${CLI_ID[@]}" >"$W/logs/client-sidecar.log" 2>&1 &
	CSC_PID=$!
	started client-sidecar "$CSC_PID"
	up "the client's sidecar (admin $ADMIN/readyz)" "$CSC_PID" 10 admin_get /readyz /dev/null client
	say "client's sidecar: the same command line, --pod-labels \$W/podinfo/client-labels (app=client)"
	say "         pid $CSC_PID, uid $(awk '/^Uid:/{print $2}' "/proc/$CSC_PID/status" 2>/dev/null), pod $CLI_POD"
	identity_line client "${CLI[@]}"

	# The third pod, "other": injected the same way, under service account "other". Its app
	# calls the server once, later, to show an identity-based ALLOW.
	OTH=(ip netns exec "$NS_OTH") OTH_POD=$(pod_name other)
	printf 'app="other"\npod-template-hash="%s"\n' "$(cut -d- -f2 <<<"$OTH_POD")" >"$W/podinfo/other-labels"
	chmod 644 "$W/podinfo/other-labels"
	"${OTH[@]}" "$BIN/grpcguard-sidecar" init --ports '*' >"$W/logs/init-other.log" 2>&1 ||
		die "grpcguard-sidecar init failed in the other pod: $(tail -n 3 "$W/logs/init-other.log")"
	mapfile -t OTH_ID < <(id_args other)
	"${OTH[@]}" env POD_NAMESPACE=demo POD_NAME="$OTH_POD" SERVICE_ACCOUNT=other "${AS_PROXY[@]}" \
		"$BIN/grpcguard-sidecar" "${SIDECAR_ARGS[@]}" --pod-labels "$W/podinfo/other-labels" "${OTH_ID[@]}" \
		>"$W/logs/other-sidecar.log" 2>&1 &
	OSC_PID=$!
	started other-sidecar "$OSC_PID"
	up "the other pod's sidecar (admin $ADMIN/readyz)" "$OSC_PID" 10 \
		"${OTH[@]}" curl -sf --max-time 3 -o /dev/null "http://$ADMIN/readyz"
	say "other pod ($NS_OTH, 10.99.9.3): init and the same sidecar, service account other, pid $OSC_PID, pod $OTH_POD"
	identity_line other "${OTH[@]}"

	# Prometheus on the node, scraping both sidecars' admin ports every second.
	if command -v prometheus >/dev/null; then
		mkdir -p "$W/prometheus"
		cat >"$W/prometheus/prometheus.yml" <<PROM
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: grpcguard-sidecars
    static_configs:
      - targets: ['10.99.9.1:15020', '10.99.9.2:15020']
PROM
		# A port nothing listens on in the node's fresh namespace (9090 unless taken).
		prom_port=9090
		while "${NODE[@]}" bash -c "exec 3<>/dev/tcp/127.0.0.1/$prom_port" 2>/dev/null; do
			prom_port=$((prom_port + 1))
		done
		"${NODE[@]}" prometheus --config.file="$W/prometheus/prometheus.yml" \
			--storage.tsdb.path="$W/prometheus/data" --web.listen-address="127.0.0.1:$prom_port" \
			--log.level=warn >"$W/logs/prometheus.log" 2>&1 &
		PROM_PID=$!
		started prometheus "$PROM_PID"
		prom_ready() { "${NODE[@]}" curl -sf --max-time 1 -o /dev/null "http://127.0.0.1:$prom_port/-/ready"; }
		if wait_until 30 ready_or_dead "$PROM_PID" prom_ready && alive "$PROM_PID"; then
			PROM_URL=http://127.0.0.1:$prom_port
			say "prometheus: pid $PROM_PID, in $NS_NODE on $PROM_URL, scraping 10.99.9.1:15020 and 10.99.9.2:15020 every 1s"
			# Both targets scraped once before the first call, so that every later
			# instant has a sample to compare with.
			targets_up() { [ "$("${NODE[@]}" "$PYTHON" "$HELPER" prom-value "$PROM_URL" 'count(up == 1)' 2>/dev/null)" = 2 ]; }
			wait_until 10 targets_up || bad "Prometheus did not scrape both sidecars within 10 s (up: $(
				"${NODE[@]}" "$PYTHON" "$HELPER" prom-value "$PROM_URL" 'count(up == 1)' || echo none))"
		else
			say "prometheus could not start ($(tail -n 1 "$W/logs/prometheus.log" | cut -c1-120)): going on without the Prometheus views and the service graph"
		fi
	else
		say "prometheus is not installed (make deps installs it): going on without the Prometheus views and the service graph"
	fi
fi

"${CLI[@]}" env GRPC_DNS_RESOLVER=native "$PYTHON" -u "$ROOT/tests/greeter/greeter_client.py" \
	--target "$TARGET" --count 0 --interval "$INTERVAL" --deadline "$DEADLINE" --name demo \
	>"$W/logs/client.log" 2>&1 &
CLIENT_PID=$!
started client "$CLIENT_PID"
if [ "$MODE" = netns ]; then
	say "client: SayHello to $TARGET (10.99.9.2) every ${INTERVAL}s, deadline ${DEADLINE}s (pid $CLIENT_PID)"
	say "        app -> client's sidecar (outbound :15001) -> server's sidecar (inbound :15006) -> app"
else
	say "client: SayHello to $TARGET every ${INTERVAL}s, deadline ${DEADLINE}s (pid $CLIENT_PID)"
fi

# count_code CODE FROM_LINE: calls with that result from line FROM_LINE+1 on.
client_lines() { wc -l <"$W/logs/client.log"; }
count_code() { tail -n +"$(($2 + 1))" "$W/logs/client.log" | grep -c "^call [0-9]*: $1 " ; }
enough() { [ "$(count_code "$1" "$2")" -ge 2 ]; }
app_calls() { [ -f "$W/calls.log" ] && wc -l <"$W/calls.log" || echo 0; }
# phase EXPECTED_CODE MARK APP_MARK [NOTE]: waits for 2 calls with EXPECTED_CODE after MARK, prints
# the client lines since MARK and how many calls the app itself received meanwhile.
# Returns 1 (and marks the run failed) when the calls did not end that way.
phase() {
	local want=$1 mark=$2 app_mark=$3 note=${4:+: $4} seen
	if wait_until "$PHASE_TIMEOUT" enough "$want" "$mark"; then
		seen=ok
	else
		seen=
	fi
	# Long phases (a slow reload) are shortened to their first and last calls.
	tail -n +"$((mark + 1))" "$W/logs/client.log" |
		awk '{ l[NR] = $0 } END { for (i = 1; i <= NR; i++) if (NR <= 9 || i <= 4 || i > NR - 3) print l[i];
			else if (i == 5) printf "... %d more calls ...\n", NR - 7 }' | indent 'client | '
	say "the app received $(($(app_calls) - app_mark)) call(s) meanwhile (its own calls log)"
	alive "$CLIENT_PID" || die "the client exited"
	if [ -n "$seen" ]; then good "=> $want$note"; else
		bad "expected $want within ${PHASE_TIMEOUT}s$(alive "$SC_PID" || echo ' (the sidecar has exited: see its log below)')"
		return 1
	fi
}

mark=0 app_mark=0
say "before any policy (empty ConfigMap):"
phase OK "$mark" "$app_mark"
# The client dialled the app's port; the sidecar's own counter proves the calls went through it.
if admin_get /metrics "$W/metrics.now"; then
	n=$(awk '/^grpcguard_requests_total\{/{s+=$2} END{print s+0}' "$W/metrics.now")
	if [ "$n" -gt 0 ]; then
		say "the sidecar counted $n of them (grpcguard_requests_total): the calls to $TARGET went through it"
	else
		bad "the sidecar counted no requests: the calls to $TARGET did not go through it"
	fi
fi

# ---- 5. policy changes ----------------------------------------------------------------
step "5/7  Policy changes, delivered like a ConfigMap update (..data symlink swap)"
policy_gen() {
	admin_get /policy "$W/policy.json" && "$PYTHON" "$HELPER" policy-field "$W/policy.json" generation 2>/dev/null
}
# reload_state: "policy generation N" from /policy; prints nothing and fails when the admin
# port did not answer, so that an unanswered GET is never taken for a change (it used to
# fall back to /metrics and print "successful reloads: N", or "successful reloads: " with
# no number when that failed too, which always differed from the state before the swap:
# one slow or failed GET made the demo report a reload that had not happened).
reload_state() {
	local g
	g=$(policy_gen) && [ -n "$g" ] && { echo "policy generation $g"; return 0; }
	return 1
}
# The sidecar logged EVENT (policy_loaded, policy_rejected) after the last swap: its own
# log, which needs no admin port.
logged_since_swap() { "$PYTHON" "$HELPER" log-delay "$W/logs/sidecar.log" "$1" "$SWAP_MS" >/dev/null 2>&1; }
# changed BEFORE: the reload is in the sidecar's log, or /policy shows another generation.
changed() {
	local now
	logged_since_swap policy_loaded && return 0
	now=$(reload_state) && [ "$now" != "$1" ]
}
# settled CMD...: CMD's output, retried for up to 10 s while the admin port does not answer
# (a sanitizer build on a busy machine can stall the sidecar for several seconds; each
# GET gives up after 3).
settled() {
	local s t0
	t0=$(date +%s)
	until s=$("$@"); do
		[ $(($(date +%s) - t0)) -ge 10 ] && return 1
		sleep 0.2
	done
	echo "$s"
}
settled_state() { settled reload_state; }
# The sidecar must still run; if it exited, say so (its log is printed at the end).
sidecar_alive() { alive "$SC_PID" || die "the sidecar (pid $SC_PID) exited: see its log below"; }
# How long after the swap the sidecar logged EVENT (its own timestamp, not our polling).
took() { # EVENT [LOG NAME]
	local ms
	ms=$("$PYTHON" "$HELPER" log-delay "$W/logs/${2:-sidecar}.log" "$1" "$SWAP_MS") && echo "$ms ms" || echo "?"
}
client_reloaded() { "$PYTHON" "$HELPER" log-delay "$W/logs/client-sidecar.log" policy_loaded "$SWAP_MS" >/dev/null 2>&1; }
# apply_policy TITLE: stdin is the policy; swaps it in and waits until the sidecar reports it.
apply_policy() {
	local before text
	text=$(cat)
	echo
	say "$B$1$N"
	printf '%s\n' "$text" | grep -vE '^(apiVersion|kind):' | indent '  | '
	sidecar_alive
	before=$(settled_state) || die "the sidecar's admin port $ADMIN did not answer /policy for 10 s (see admin-get.log below)"
	write_policy <<<"$text" || die "cannot swap the policy"
	if wait_until 5 changed "$before"; then
		say "sidecar reloaded it $(took policy_loaded) after the swap ($(settled_state))"
	else
		sidecar_alive
		bad "the sidecar did not report a reload within 5 s (/policy: $(reload_state || echo 'admin port not answering'))"
	fi
	# The client's sidecar reads the same ConfigMap: its reload, from its own log.
	if [ -n "$CSC_PID" ]; then
		if wait_until 5 client_reloaded; then
			say "the client's sidecar reloaded it $(took policy_loaded client-sidecar) after the swap"
		else
			bad "the client's sidecar did not log a reload within 5 s"
		fi
	fi
	# Calls from here on were decided by the new policy (or were already in flight).
	mark=$(client_lines) app_mark=$(app_calls) MARK_EPOCH=$(date +%s.%N)
}

apply_policy "a ${DELAY} delay on SayHello (fault injection):" <<EOF
apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: slow-hello
    selector: {matchLabels: {app: server}}
    match:
      methods: ["/helloworld.Greeter/SayHello"]
    delay: {fixed: ${DELAY}, percent: 100}
EOF
phase DEADLINE_EXCEEDED "$mark" "$app_mark" "held ${DELAY} by the sidecar, the client gave up after ${DEADLINE}s"
# The caller's side of it, from Prometheus: what the client's sidecar measured since one
# scrape after the policy took effect (so that no earlier OK call is counted).
if [ -n "$PROM_URL" ]; then
	"${NODE[@]}" "$PYTHON" "$HELPER" client-view "$PROM_URL" "$(awk -v t="$MARK_EPOCH" 'BEGIN{printf "%.3f", t + 1}')" \
		"$DEADLINE" 2 10 >"$W/client-view.txt" 2>&1 ||
		bad "Prometheus did not show the client's view of the delay (reporter=\"source\")"
	indent <"$W/client-view.txt"
fi

# A client-side fault (Istio's VirtualService fault): the entry names the destination, so
# the caller's sidecar applies it to its outbound calls and the server never sees them.
if [ -n "$CSC_PID" ]; then
	srv_requests() { admin_get /metrics "$W/metrics.now" &&
		awk '/^grpcguard_requests_total\{/{s+=$2} END{print s+0}' "$W/metrics.now"; }
	apply_policy "a ${DELAY} delay on calls to the server, applied by the client's sidecar (destinations):" <<EOF2
apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: slow-server-from-client
    selector: {matchLabels: {app: client}}
    match:
      destinations: [server]
    delay: {fixed: ${DELAY}, percent: 100}
EOF2
	# A call the server's sidecar still holds from the previous phase is counted there when
	# its hold ends: let it end, then start counting.
	srv_idle() { admin_get /metrics "$W/metrics.now" &&
		awk '/^grpcguard_sidecar_delayed_streams / { h = $2 > 0 } END { exit h }' "$W/metrics.now"; }
	wait_until "$PHASE_TIMEOUT" srv_idle || bad "the server's sidecar still holds calls after ${PHASE_TIMEOUT}s"
	mark=$(client_lines) app_mark=$(app_calls)
	srv_before=$(settled srv_requests)
	phase DEADLINE_EXCEEDED "$mark" "$app_mark" "held ${DELAY} by the client's own sidecar"
	srv_after=$(settled srv_requests)
	if [ -n "$srv_before" ] && [ "$srv_after" = "$srv_before" ]; then
		say "the server's sidecar received none of them (its grpcguard_requests_total stayed at $srv_after)"
	else
		bad "the server's sidecar counted requests during the client-side delay ($srv_before -> $srv_after)"
	fi
fi

apply_policy "a DENY rule for SayHello:" <<EOF
apiVersion: grpcguard.io/v1
kind: Policy
authorization:
  - name: deny-hello
    selector: {matchLabels: {app: server}}
    action: DENY
    rules:
      - to: [{methods: ["/helloworld.Greeter/SayHello"]}]
EOF
phase PERMISSION_DENIED "$mark" "$app_mark"

# A broken policy: the webhook refuses the ConfigMap; should it reach the pod anyway (webhook
# down, failurePolicy: Ignore), the sidecar rejects it and keeps the last good one.
echo
say "${B}a broken policy (a typo in a duration):$N"
"$PYTHON" "$HELPER" configmap-policy "$ROOT/demo/admission/configmap-broken-policy.json" >"$W/broken.yaml"
grep -n 'tenseconds' "$W/broken.yaml" | indent '  | line '
say "\$ curl ... $WH_URL/validate -d @configmap-broken-policy.json   # kubectl apply of the ConfigMap"
code=$(review validate configmap-broken-policy) || die "POST /validate failed"
v=$("$PYTHON" "$HELPER" verdict "$W/reviews/configmap-broken-policy.out")
printf '%s\n' "$v" | indent '-> '
case "$v" in denied*) ;; *) bad "expected the broken policy ConfigMap to be denied" ;; esac
say "if it reaches the pod anyway (webhook down, failurePolicy: Ignore):"
last_error() { admin_get /policy "$W/policy.json" && "$PYTHON" "$HELPER" policy-field "$W/policy.json" last_error; }
sidecar_alive
before=$(settled_state) || die "the sidecar's admin port $ADMIN did not answer /policy for 10 s (see admin-get.log below)"
write_policy <"$W/broken.yaml" || die "cannot swap the policy"
rejected() { logged_since_swap policy_rejected || last_error >/dev/null; }
if wait_until 5 rejected; then
	say "sidecar rejected it $(took policy_rejected) after the swap: $(settled last_error | sed "s#$W/##")"
	[ "$(settled_state || echo 'admin port not answering')" = "$before" ] && say "and keeps the last good policy ($before)" ||
		bad "the policy generation changed: $(reload_state)"
else
	bad "the sidecar did not report the broken policy within 5 s (/policy last_error)"
fi
mark=$(client_lines) app_mark=$(app_calls)
phase PERMISSION_DENIED "$mark" "$app_mark" "the DENY rule is still in force"

apply_policy "an ALLOW rule that names only SayHelloAgain:" <<EOF
apiVersion: grpcguard.io/v1
kind: Policy
authorization:
  - name: only-hello-again
    action: ALLOW
    rules:
      - to: [{methods: ["/helloworld.Greeter/SayHelloAgain"]}]
EOF
phase PERMISSION_DENIED "$mark" "$app_mark" "an ALLOW exists and SayHello matches none"
again=$("${CLI[@]}" env "$PYTHON" "$ROOT/tests/greeter/greeter_client.py" --target "$TARGET" \
	--method SayHelloAgain --count 1 --deadline "$DEADLINE" --name demo 2>&1)
printf '%s\n' "$again" | indent 'client (SayHelloAgain, one call) | '
case "$again" in *": OK "*) good "=> SayHelloAgain, which the ALLOW names, still works" ;;
*) bad "expected SayHelloAgain to be allowed" ;; esac

# Workload identity: an ALLOW that names the caller by service account. The client's
# sidecar presents its certificate (mutual TLS between the sidecars); the other pod's sidecar
# presents one too, but for sa other.
if [ -n "$OSC_PID" ]; then
	apply_policy "an ALLOW rule that names only the client's service account (mutual TLS identity):" <<EOF
apiVersion: grpcguard.io/v1
kind: Policy
authorization:
  - name: only-the-client
    selector: {matchLabels: {app: server}}
    action: ALLOW
    rules:
      - from: [{principals: ["cluster.local/ns/demo/sa/client"]}]
EOF
	phase OK "$mark" "$app_mark" "the client's calls carry spiffe://cluster.local/ns/demo/sa/client"
	other=$("${OTH[@]}" env GRPC_DNS_RESOLVER=native "$PYTHON" "$ROOT/tests/greeter/greeter_client.py" \
		--target "$TARGET" --count 1 --deadline "$DEADLINE" --name other 2>&1)
	printf '%s\n' "$other" | indent 'other pod (SayHello, one call) | '
	case "$other" in *": PERMISSION_DENIED "*) good "=> the other pod (sa other, also over mutual TLS) is denied" ;;
	*) bad "expected the other pod's call to be PERMISSION_DENIED" ;; esac
	say "who the server's sidecar saw calling SayHello (its /metrics, reporter=\"destination\"):"
	if admin_get /metrics "$W/metrics.now"; then
		"$PYTHON" "$HELPER" principals "$W/metrics.now" /helloworld.Greeter/SayHello >"$W/principals.txt" ||
			bad "no SayHello requests in the server's metrics"
		indent <"$W/principals.txt"
		grep -qE '^spiffe://cluster.local/ns/demo/sa/client +mutual_tls +OK +[1-9]' "$W/principals.txt" ||
			bad "the server's sidecar counted no OK call from sa client over mutual TLS"
		grep -qE '^spiffe://cluster.local/ns/demo/sa/other +mutual_tls +PERMISSION_DENIED +[1-9]' "$W/principals.txt" ||
			bad "the server's sidecar did not count the other pod's call, over mutual TLS, as denied"
	else
		bad "GET /metrics failed"
	fi
elif [ "$MODE" = loopback ]; then
	echo
	say "workload identity (mTLS between sidecars, an ALLOW by service account) skipped in loopback mode: it needs the pods of netns mode"
fi

apply_policy "an empty policy (the ConfigMap emptied):" <<<"$EMPTY_POLICY"
phase OK "$mark" "$app_mark" && say "OK again: calls reach the app"

# ---- 6. metrics --------------------------------------------------------------------------
kill -TERM "$CLIENT_PID" 2>/dev/null
if [ -n "$CSC_PID" ]; then
	step "6/7  What the sidecars counted (GET $ADMIN/metrics in each pod)"
	say "every call was counted twice, once by each sidecar: each table shows one reporter"
	say "the server's sidecar, reporter=\"destination\":"
else
	step "6/7  What the sidecar counted (GET $ADMIN/metrics)"
fi
if admin_get /metrics "$W/metrics.txt"; then
	"$PYTHON" "$HELPER" metrics-table "$W/metrics.txt" --reporter destination | indent || bad "no grpcguard metrics"
else
	bad "GET /metrics failed"
fi
if [ -n "$CSC_PID" ]; then
	say "the client's sidecar, reporter=\"source\" (it applies no authorization and no server-side fault):"
	if admin_get /metrics "$W/client-metrics.txt" client; then
		"$PYTHON" "$HELPER" metrics-table "$W/client-metrics.txt" --reporter source | indent ||
			bad "no grpcguard metrics from the client's sidecar"
	else
		bad "GET /metrics failed on the client's sidecar"
	fi
fi

# ---- 7. the service graph ------------------------------------------------------------------
step "7/7  The service graph (grpcguard-graph, from Prometheus)"
if [ -z "$PROM_URL" ]; then
	if [ "$MODE" = netns ]; then
		say "skipped: Prometheus is not running (see above)"
	else
		say "skipped in loopback mode (one sidecar, no Prometheus)"
	fi
elif [ ! -x "$BIN/grpcguard-graph" ]; then
	bad "$BIN/grpcguard-graph is missing: run \`make demo\` (it builds first)"
else
	OUT=${DEMO_OUT:-$ROOT/build/demo}
	mkdir -p "$OUT" || die "cannot create $OUT (DEMO_OUT)"
	# Graphviz and fontconfig keep a few allocations for the life of the process: in a
	# sanitizer build they are suppressed by name, as in the tests.
	GRAPH=("${NODE[@]}" env "LSAN_OPTIONS=suppressions=$ROOT/tests/lib/graphviz.lsan.supp:print_suppressions=0"
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0" "$BIN/grpcguard-graph" --prometheus "$PROM_URL" --namespace demo --window 1m)
	# The last calls are in Prometheus after its next scrape.
	sleep 1.5
	say "\$ grpcguard-graph --prometheus $PROM_URL --namespace demo --window 1m --format text"
	if "${GRAPH[@]}" --format text >"$W/graph.txt" 2>"$W/logs/graph.log"; then
		indent <"$W/graph.txt"
		grep -q '^demo/client -> demo/server ' "$W/graph.txt" || bad "no edge demo/client -> demo/server in the graph"
		# Calls the server never answered (held, then abandoned) are named from the earlier
		# answers on the same connection: one edge, not a second "server (no sidecar)".
		grep -q '^demo/client -> server ' "$W/graph.txt" &&
			bad "calls to the server drawn to a node without a sidecar (unanswered calls not named)"
	else
		bad "grpcguard-graph --format text failed: $(grep -v '"level":"info"' "$W/logs/graph.log" | grep -m 1 .)"
	fi
	for fmt in svg png; do
		if "${GRAPH[@]}" --format "$fmt" --out "$OUT/service-graph.$fmt" 2>"$W/logs/graph-$fmt.log"; then
			say "wrote $OUT/service-graph.$fmt ($(wc -c <"$OUT/service-graph.$fmt") bytes)"
		else
			bad "grpcguard-graph --format $fmt failed: $(grep -v '"level":"info"' "$W/logs/graph-$fmt.log" | grep -m 1 .)"
		fi
	done
	say "open them in a browser or an image viewer; DEMO_OUT chooses the directory"
fi

echo
say "stopping everything this demo started:"
cleanup
trap - EXIT
if [ "$FAILED" = 0 ]; then
	if [ -n "$PROM_URL" ]; then
		printf '\n%sdemo complete%s: denial, injection, delays at both ends, deny, allow-list, an ALLOW by workload identity over mTLS, recovery, the caller'"'"'s view and the service graph all shown.\n' "$G" "$N"
	else
		printf '\n%sdemo complete%s: denial, injection, delay, deny, allow-list and recovery all shown.\n' "$G" "$N"
	fi
	exit 0
fi
printf '\n%sdemo finished with problems (marked !! above)%s\n' "$R" "$N"
exit 1
