#!/usr/bin/env bash
# make bench: grpcguard-sidecar side by side with nghttpx and haproxy, plus the webhook and
# the policy evaluation micro-benchmark. Writes bench/RESULTS.md. See docs/bench.md.
#
# Bounded in time (fixed request counts; every h2load run under `timeout`), loopback only
# (ports 35000-35099) plus, for the ns-* rows, two network namespaces it creates (and
# deletes), and every process it starts is killed by PID on exit, also on error
# or Ctrl-C. Nothing here asserts a speed: it measures and writes a table.
#
# Knobs (environment):
#   BENCH_ROUNDS=7        rounds; configurations are interleaved inside each round
#   BENCH_MIN_ROUNDS=5    the time budget never stops the run before this many rounds
#   BENCH_N_LAT=4000      requests of the 1x1 (latency) mix
#   BENCH_N_THR=50000     requests of the 8 connections x 16 streams (throughput) mix
#   BENCH_N_CONN=15000    requests of the 100 connections x 1 stream mix
#   BENCH_BACKENDS="nghttpd greeter"   which backends to run
#   BENCH_CONFIGS="direct gg-nopolicy gg-policy gg-w2 nghttpx haproxy-h2 haproxy-tcp
#                  ns-direct ns-gg1 ns-gg2 ns-mtls"   (ns-*: two pods in netns, as root)
#   BENCH_MIXES="1x1 8x16 100x1"
#   BENCH_PIN=1           pin load generator + backend to CPU 0 and the proxy to CPU 1
#   BENCH_OUT=bench/RESULTS.md
#   BENCH_SRC=head        build the programs from the last commit (head) or the working tree (tree)
#   BENCH_REV=HEAD        with BENCH_SRC=head: the revision to build
#   BENCH_BUDGET_S=780    proxy section: no new round (past BENCH_MIN_ROUNDS) once this many
#                         seconds would be exceeded. On a quiet 2-core machine a round takes
#                         about 80-100 s and the whole run 12-15 minutes (docs/bench.md)
#   BENCH_N_INSTR=20000   requests per proxy and mix under callgrind (bench/instr.sh)
#   BENCH_INSTR_MIXES="8x16 100x1"   mixes measured under callgrind
#   BENCH_SKIP_WEBHOOK=1 / BENCH_SKIP_POLICY=1 / BENCH_SKIP_JWT=1 / BENCH_SKIP_INSTR=1   skip those sections
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

t_begin=$(date +%s)
ROUNDS=${BENCH_ROUNDS:-7}
MIN_ROUNDS=${BENCH_MIN_ROUNDS:-5}
N_LAT=${BENCH_N_LAT:-4000}
N_THR=${BENCH_N_THR:-50000}
N_CONN=${BENCH_N_CONN:-15000}
BACKENDS=${BENCH_BACKENDS:-nghttpd greeter}
CONFIGS=${BENCH_CONFIGS:-direct gg-nopolicy gg-policy gg-w2 nghttpx haproxy-h2 haproxy-tcp ns-direct ns-gg1 ns-gg2 ns-mtls}
MIXES=${BENCH_MIXES:-1x1 8x16 100x1}
OUT=${BENCH_OUT:-$root/bench/RESULTS.md}
PIN=${BENCH_PIN:-1}
PY=${PYTHON:-/usr/bin/python3}
B=$root/build/bench             # our own build dir (other builds may be half-done)

P_NGHTTPD=35001 P_GREETER=35002 P_PROXY=35010 P_ADMIN=35011 P_WEBHOOK=35020

# shellcheck source=bench/lib.sh
. "$root/bench/lib.sh"
bench_init gg-bench

say() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# CPU sets: load generator and backend share CPU 0, the proxy under test gets CPU 1.
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then
	CPU_LOAD="taskset -c 0" CPU_PROXY="taskset -c 1"
	PIN_NOTE="h2load and the backend pinned to CPU 0 (taskset -c 0), the proxy to CPU 1 (taskset -c 1)"
else
	CPU_LOAD="" CPU_PROXY=""
	PIN_NOTE="no CPU pinning"
fi

forget_pid() { # remove $1 from pids
	local keep=() p
	for p in "${pids[@]:-}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]:-}")
}
stop_pid() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	forget_pid "$1"
}
# CPU time (user+system) of a process in ns: the sum over its threads of the first field
# of /proc/PID/task/TID/schedstat (ns resolution); /proc/PID/stat (10 ms ticks) where the
# kernel has no schedstat.
TCK=$(getconf CLK_TCK)
cpu_ns() {
	local v
	if [ -r "/proc/$1/schedstat" ]; then
		v=$(cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}') || true
	else
		v=$(awk -v t="$TCK" '{printf "%.0f", ($14 + $15) * 1e9 / t}' "/proc/$1/stat" 2>/dev/null) || true
	fi
	echo "${v:-0}"
}
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---- build what we need, each piece optional -------------------------------------------
# By default the programs are built from the last commit (BENCH_SRC=head: `git archive HEAD`
# into build/bench/src), so the figures belong to a known commit even while the working
# tree is being edited; BENCH_SRC=tree builds the working tree as it is.
have_sidecar=0 have_webhook=0 have_certgen=0 have_greeter=0 have_policy_lib=0 have_jwt=0
build_log=$work/build.log
: >"$build_log"
SRC=$root
REV=${BENCH_REV:-HEAD}
if [ "${BENCH_SRC:-head}" = head ] && git rev-parse -q --verify "$REV^{commit}" >/dev/null 2>&1; then
	SRC=$B/src
	head_id=$(git rev-parse "$REV^{commit}")
	if [ "$(cat "$SRC/.commit" 2>/dev/null)" != "$head_id" ]; then
		rm -rf "$SRC" && mkdir -p "$SRC"
		# --touch: sources newer than any object built from an older commit.
		git archive --format=tar "$head_id" | tar -x -m -C "$SRC"
		echo "$head_id" >"$SRC/.commit"
	fi
	BUILT_FROM="commit $(git rev-parse --short "$head_id") (git archive $REV)"
else
	BUILT_FROM="working tree at $(git rev-parse --short HEAD 2>/dev/null || echo '?') with local changes"
fi
B=$B/bin
# A program that fails to build must not be measured in an older version left from before.
rm -f "$B/grpcguard-sidecar" "$B/grpcguard-webhook" "$B/grpcguard-certgen" "$B/policy_bench" \
	"$B/jwt_bench"
mk() { make --no-print-directory -C "$SRC" BUILD="$B" "$@" >>"$build_log" 2>&1; }
say "building into $B from $BUILT_FROM"
if mk "$B/grpcguard-sidecar" "$B/grpcguard-sidecar-crypto.so"; then
	have_sidecar=1
else
	say "sidecar does not build: gg-* configurations skipped (tail of the build log:)"
	tail -n 5 "$build_log" >&2 || true
fi
mk "$B/grpcguard-webhook" && have_webhook=1
mk "$B/grpcguard-certgen" && have_certgen=1
# shellcheck disable=SC2046 # pkg-config output is meant to be split into flags
if mk "$B/libgrpcguard-policy.a" &&
	gcc -std=c17 -O2 -g -Wall -Wextra -Werror -Wshadow -Wvla -Wmissing-prototypes -Wformat=2 \
		-D_GNU_SOURCE -I"$SRC" -o "$B/policy_bench" bench/policy_bench.c \
		"$B/libgrpcguard-policy.a" $(pkg-config --libs jansson yaml-0.1 libcrypto) -lm \
		>>"$build_log" 2>&1; then
	have_policy_lib=1
fi
# bench/jwt_bench.c belongs to the JWT part (issue 10); built and run here when present.
# shellcheck disable=SC2046
if [ -f "$SRC/bench/jwt_bench.c" ] && mk "$B/libgrpcguard-common.a" &&
	gcc -std=c17 -O2 -g -D_GNU_SOURCE -I"$SRC" -o "$B/jwt_bench" "$SRC/bench/jwt_bench.c" \
		"$SRC/sidecar/jwt.c" "$SRC/sidecar/authn.c" "$SRC/sidecar/filestat.c" \
		"$B/libgrpcguard-policy.a" "$B/libgrpcguard-common.a" \
		$(pkg-config --cflags --libs jansson openssl yaml-0.1 libmicrohttpd) -lm -lpthread \
		>>"$build_log" 2>&1; then
	have_jwt=1
fi
if bash bench/greeter_cpp/build.sh "$root/build/bench/greeter_cpp" >>"$build_log" 2>&1; then
	have_greeter=1
fi

# ---- inputs -----------------------------------------------------------------------------
# The gRPC request h2load sends ($work/req.bin) and nghttpd's canned reply: see bench/lib.sh.
canned_inputs
: >"$work/empty-policy.yaml"
cp bench/policy-realistic.yaml "$work/policy.yaml"

cat >"$work/haproxy-h2.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$P_PROXY proto h2
    default_backend be
backend be
    server app 127.0.0.1:BACKEND_PORT proto h2
EOF
cat >"$work/haproxy-tcp.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$P_PROXY
    default_backend be
backend be
    server app 127.0.0.1:BACKEND_PORT
EOF

declare -A CMD # configuration -> command line (for RESULTS.md)
proxy_cmd() { # config backend_port -> prints the command
	local c=$1 bp=$2
	case $c in
	gg-nopolicy) echo "$B/grpcguard-sidecar run --listen 127.0.0.1:$P_PROXY --upstream 127.0.0.1:$bp --admin 127.0.0.1:$P_ADMIN --policy $work/empty-policy.yaml" ;;
	gg-policy) echo "$B/grpcguard-sidecar run --listen 127.0.0.1:$P_PROXY --upstream 127.0.0.1:$bp --admin 127.0.0.1:$P_ADMIN --policy $work/policy.yaml" ;;
	gg-w2) echo "$B/grpcguard-sidecar run --workers 2 --listen 127.0.0.1:$P_PROXY --upstream 127.0.0.1:$bp --admin 127.0.0.1:$P_ADMIN --policy $work/empty-policy.yaml" ;;
	nghttpx) echo "nghttpx --single-process --workers=1 --conf=/dev/null -f127.0.0.1,$P_PROXY;no-tls -b127.0.0.1,$bp;;proto=h2 --log-level=WARN" ;;
	haproxy-h2) sed "s/BACKEND_PORT/$bp/" "$work/haproxy-h2.cfg" >"$work/haproxy-h2-$bp.cfg"
		echo "haproxy -db -f $work/haproxy-h2-$bp.cfg" ;;
	haproxy-tcp) sed "s/BACKEND_PORT/$bp/" "$work/haproxy-tcp.cfg" >"$work/haproxy-tcp-$bp.cfg"
		echo "haproxy -db -f $work/haproxy-tcp-$bp.cfg" ;;
	esac
}

PROXY_PID=
start_proxy() { # config backend_port
	local cmd
	cmd=$(proxy_cmd "$1" "$2")
	CMD[$1]=$cmd
	local cpu=$CPU_PROXY
	! port_busy "$P_PROXY" || return 1
	# Two workers get both CPUs (shared with the load generator): the scaling figure.
	[ "$1" = gg-w2 ] && [ -n "$cpu" ] && cpu="taskset -c 0,1"
	# shellcheck disable=SC2086
	$cpu $cmd >>"$work/proxy-$1.log" 2>&1 &
	PROXY_PID=$!
	pids+=("$PROXY_PID")
	if ! wait_port "$P_PROXY" "$PROXY_PID"; then
		say "$1 did not start listening; log:"
		tail -n 5 "$work/proxy-$1.log" >&2 || true
		stop_pid "$PROXY_PID"
		PROXY_PID=
		return 1
	fi
}

# ---- the caller's half (issue 15) and mTLS (issue 16): two pods in network namespaces -----
# ns-* configurations run in two network namespaces joined by a veth, set up as the
# injector sets up pods: `grpcguard-sidecar init` in each, every sidecar as uid 1337.
#
#   client pod (h2load)                      server pod (nghttpd :8080, greeter :8081)
#   init --ports 9999 (outbound capture on,  init --ports 8080,8081 (inbound redirect)
#     --exclude-outbound-cidrs S1,S0)
#   caller's sidecar :15001 (ns-gg2/mtls)    server's sidecar :15006 (ns-gg1/gg2/mtls)
#
# The server pod has three addresses, so the three paths differ only in the destination
# h2load dials, never in the load itself:
#   ns-gg2   -> NS_IP_S:PORT   captured by the client's OUTPUT redirect -> caller's sidecar
#               -> (PREROUTING redirect) server's sidecar -> the app
#   ns-gg1   -> NS_IP_S1:PORT  excluded from capture (init's --exclude-outbound-cidrs) ->
#               server's sidecar -> the app: one sidecar, inbound only
#   ns-direct-> NS_IP_S0:PORT  excluded from capture, and a RETURN ahead of the server's
#               redirect for that address: straight to the app
#   ns-mtls  -> NS_IP_S:PORT   as ns-gg2, both sidecars with --ca-address: mutual TLS
#               between them (only when the sidecar has mTLS: `run --help` names --ca-address)
# CPU placement as for the loopback rows: h2load and the backend on CPU 0, every sidecar
# on CPU 1 (with two sidecars they share it: the row then shows the whole proxy cost of
# a call on one core). Traffic never leaves the two namespaces.
NS_ID=$$
NS_C=ggbench-$NS_ID-cli NS_S=ggbench-$NS_ID-srv
NS_VC=ggb${NS_ID}c NS_VS=ggb${NS_ID}s
NS_IP_C=10.237.1.2 NS_IP_S=10.237.1.1 NS_IP_S1=10.237.1.3 NS_IP_S0=10.237.1.4
declare -A NS_BPORT=([nghttpd]=8080 [greeter]=8081)
have_ns=0 have_mtls=0 ns_note="" mtls_note=""
ns_pids=()
ns_cleanup() {
	local p ns
	for p in "${ns_pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	# Whatever else runs in our namespaces (named after our PID) was started by us.
	for ns in "$NS_C" "$NS_S"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
	done
	for p in "${ns_pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	for ns in "$NS_C" "$NS_S"; do ip netns del "$ns" 2>/dev/null || true; done
	ip link del "$NS_VC" 2>/dev/null || true
}
trap 'ns_cleanup; bench_cleanup' EXIT
# For a program started in the background use `ip netns exec` itself, not these functions:
# $! must be the program (ip netns exec execs it), not a subshell.
in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }
ns_wait_port() { # NS HOST PORT PID
	local i
	for ((i = 0; i < 200; i++)); do
		ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null && return 0
		kill -0 "$4" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
ns_ready() { # NS PID: the sidecar's /readyz answers 200 (with mTLS: a certificate is held)
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(ip netns exec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
			http://127.0.0.1:15020/readyz 2>/dev/null)" = 200 ] && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
ns_metric() { # NS REGEX: the sum of the sidecar's matching samples
	ip netns exec "$1" curl -s --max-time 5 http://127.0.0.1:15020/metrics 2>/dev/null |
		awk -v re="$2" '!/^#/ && $1 ~ re { s += $NF } END { printf "%d\n", s }'
}
ns_setup() {
	local want=0 c err
	for c in $CONFIGS; do case $c in ns-*) want=1 ;; esac; done
	[ "$want" = 1 ] || return 1
	if [ "$(id -u)" != 0 ]; then ns_note="needs root (network namespaces, iptables)"; return 1; fi
	if [ "$have_sidecar" != 1 ]; then ns_note="the sidecar did not build"; return 1; fi
	for c in ip iptables-save setpriv curl; do
		command -v "$c" >/dev/null 2>&1 || { ns_note="$c is not installed"; return 1; }
	done
	err=$(ip netns add "$NS_C" 2>&1) || { ns_note="cannot create a network namespace: $err"; return 1; }
	ip netns add "$NS_S" && ip link add "$NS_VC" type veth peer name "$NS_VS" &&
		ip link set "$NS_VC" netns "$NS_C" && ip link set "$NS_VS" netns "$NS_S" &&
		in_c ip link set lo up && in_s ip link set lo up &&
		in_c ip addr add "$NS_IP_C/24" dev "$NS_VC" &&
		in_s ip addr add "$NS_IP_S/24" dev "$NS_VS" &&
		in_s ip addr add "$NS_IP_S1/24" dev "$NS_VS" &&
		in_s ip addr add "$NS_IP_S0/24" dev "$NS_VS" &&
		in_c ip link set "$NS_VC" up && in_s ip link set "$NS_VS" up ||
		{ ns_note="veth/address setup failed"; return 1; }
	err=$(in_c iptables-save -t nat 2>&1) || { ns_note="no iptables nat table in a netns: $err"; return 1; }
	in_s "$B/grpcguard-sidecar" init --ports 8080,8081 >"$work/ns-init-s.log" 2>&1 &&
		in_c "$B/grpcguard-sidecar" init --ports 9999 \
			--exclude-outbound-cidrs "$NS_IP_S1/32,$NS_IP_S0/32" >"$work/ns-init-c.log" 2>&1 ||
		{ ns_note="grpcguard-sidecar init failed: $(tail -n 2 "$work"/ns-init-*.log | tr '\n' ' ')"; return 1; }
	# ns-direct: that address is never redirected to the server's sidecar.
	in_s iptables -t nat -I GRPCGUARD_INBOUND 1 -d "$NS_IP_S0/32" -j RETURN ||
		{ ns_note="iptables RETURN rule failed"; return 1; }
	# The sidecars run as uid 1337: their binary, policy and certificates must be readable.
	mkdir -p "$work/ns" && chmod 755 "$work" "$work/ns"
	cp "$B/grpcguard-sidecar" "$work/ns/grpcguard-sidecar"
	# OpenSSL (the mTLS rows) comes with the module beside the binary (sidecar/crypto.h).
	[ ! -e "$B/grpcguard-sidecar-crypto.so" ] || install -m 644 "$B/grpcguard-sidecar-crypto.so" "$work/ns/"
	: >"$work/ns/empty-policy.yaml"
	chmod 755 "$work/ns/grpcguard-sidecar" && chmod 644 "$work/ns/empty-policy.yaml"
	# The backends, in the server pod, listening on every address (the server's sidecar
	# connects to the original destination, the pod's address).
	# shellcheck disable=SC2086
	ip netns exec "$NS_S" $CPU_LOAD nghttpd --no-tls -a 0.0.0.0 -d "$work/htdocs" --trailer 'grpc-status: 0' \
		"${NS_BPORT[nghttpd]}" >"$work/ns-nghttpd.log" 2>&1 &
	ns_pids+=($!)
	ns_wait_port "$NS_S" 127.0.0.1 "${NS_BPORT[nghttpd]}" $! || { ns_note="nghttpd did not start in the server pod"; return 1; }
	if [ "$have_greeter" = 1 ]; then
		# shellcheck disable=SC2086
		ip netns exec "$NS_S" $CPU_LOAD "$root/build/bench/greeter_cpp/greeter_server" "${NS_BPORT[greeter]}" 0.0.0.0 \
			>"$work/ns-greeter.log" 2>&1 &
		ns_pids+=($!)
		ns_wait_port "$NS_S" 127.0.0.1 "${NS_BPORT[greeter]}" $! || { ns_note="the greeter did not start in the server pod"; return 1; }
	fi
	ns_note="client pod $NS_IP_C, server pod $NS_IP_S (two sidecars) / $NS_IP_S1 (one) / $NS_IP_S0 (direct)"
	return 0
}
# mTLS: only when the sidecar has it. The certificates come from the real
# grpcguard-webhook's POST /v1/certify, which asks a TokenReview STAND-IN
# (bench/tokenreview_standin.py: no kube-apiserver runs here) about the pods' tokens; where
# the webhook did not build, from the mTLS test's issuer stand-in
# (tests/integration/mtls_issuer.py) when the tree has it. Issuance is not what is
# measured: the handshakes and calls between the two sidecars are.
mtls_setup() {
	if ! "$B/grpcguard-sidecar" run --help 2>&1 | grep -q -- --ca-address; then
		mtls_note="not available in this build (grpcguard-sidecar run --help has no --ca-address)"
		return 1
	fi
	local d=$work/ns/pki issuer=$SRC/tests/integration/mtls_issuer.py
	mkdir -p "$d" && chmod 755 "$d"
	mkca() {
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$1" \
			-keyout "$d/$1.key" -out "$d/$1.crt" -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1
	}
	# servca signs the issuer's serving certificate (what the sidecars' --ca-cert trusts)
	# and the TokenReview stand-in's; idca is the workload identity CA.
	mkca idca && mkca servca &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=issuer \
			-keyout "$d/iss.key" -out "$d/iss.csr" >/dev/null 2>&1 &&
		openssl x509 -req -in "$d/iss.csr" -CA "$d/servca.crt" -CAkey "$d/servca.key" \
			-CAcreateserial -days 1 -out "$d/iss.crt" \
			-extfile <(printf 'subjectAltName=IP:%s,IP:127.0.0.1\n' "$NS_IP_S") >/dev/null 2>&1 ||
		{ mtls_note="openssl could not make the test PKI"; return 1; }
	echo tok-client >"$d/client.token" && echo tok-server >"$d/server.token"
	chmod 644 "$d"/*.crt "$d"/*.token
	local why=""
	if [ "$have_webhook" = 1 ] && mtls_webhook "$d"; then return 0; fi
	[ "$have_webhook" = 1 ] && why="grpcguard-webhook could not be the issuer: $mtls_note"
	[ -f "$issuer" ] || issuer=$root/tests/integration/mtls_issuer.py
	[ -f "$issuer" ] || { mtls_note="${why:-grpcguard-webhook did not build}, and the tree has no issuer stand-in"; return 1; }
	"$PY" -c 'import cryptography' 2>/dev/null ||
		{ mtls_note="${why:-grpcguard-webhook did not build}, and the issuer stand-in needs python3-cryptography"; return 1; }
	printf '{"tok-client": {"ns": "bench", "sa": "client"}, "tok-server": {"ns": "bench", "sa": "server"}}\n' >"$d/tokens.json"
	ip netns exec "$NS_S" "$PY" "$issuer" --listen 0.0.0.0:9443 --tls-cert "$d/iss.crt" --tls-key "$d/iss.key" \
		--ca-cert "$d/idca.crt" --ca-key "$d/idca.key" --tokens "$d/tokens.json" \
		--lifetime 86400 >"$work/ns-issuer.log" 2>&1 &
	ns_pids+=($!)
	ns_wait_port "$NS_S" 127.0.0.1 9443 $! || { mtls_note="the issuer stand-in did not start: $(tail -n 2 "$work/ns-issuer.log")"; return 1; }
	mtls_note="both sidecars with --ca-address: certificates (24 h) from the issuer stand-in of the mTLS test, tests/integration/mtls_issuer.py (${why:-grpcguard-webhook did not build})"
	return 0
}
# The real issuer: grpcguard-webhook with identity enabled, in the server pod on :9443, its
# TokenReview answered by bench/tokenreview_standin.py on the pod's loopback :9444.
mtls_webhook() { # pki dir
	local d=$1 p
	printf '{"tok-client": "bench/client", "tok-server": "bench/server"}\n' >"$d/tr-tokens.json"
	echo "webhook-sa-$NS_ID-$RANDOM" >"$d/webhook-sa.token"
	ip netns exec "$NS_S" "$PY" "$root/bench/tokenreview_standin.py" --listen 127.0.0.1:9444 \
		--tls-cert "$d/iss.crt" --tls-key "$d/iss.key" --tokens "$d/tr-tokens.json" \
		--caller-token "$(cat "$d/webhook-sa.token")" >"$work/ns-tokenreview.log" 2>&1 &
	p=$!
	ns_pids+=("$p")
	ns_wait_port "$NS_S" 127.0.0.1 9444 "$p" ||
		{ mtls_note="the TokenReview stand-in did not start: $(tail -n 2 "$work/ns-tokenreview.log")"; return 1; }
	cat >"$d/webhook.yaml" <<-EOF
	identity:
	  enabled: true
	  certificateLifetimeSeconds: 86400
	  ca:
	    certFile: $d/idca.crt
	    keyFile: $d/idca.key
	  tokenReview:
	    url: https://127.0.0.1:9444/apis/authentication.k8s.io/v1/tokenreviews
	    caFile: $d/servca.crt
	    tokenFile: $d/webhook-sa.token
	    timeoutMs: 5000
	  rateLimit:
	    perSourcePerMinute: 0
	    perIdentityPerMinute: 0
	EOF
	ip netns exec "$NS_S" "$B/grpcguard-webhook" --listen 0.0.0.0:9443 --tls-cert "$d/iss.crt" \
		--tls-key "$d/iss.key" --config "$d/webhook.yaml" >"$work/ns-issuer.log" 2>&1 &
	ns_pids+=($!)
	if ! ns_wait_port "$NS_S" 127.0.0.1 9443 $!; then
		mtls_note="it did not start: $(grep -o '"msg":"[^"]*"' "$work/ns-issuer.log" | tail -n 1)"
		kill "$p" 2>/dev/null || true
		return 1
	fi
	mtls_note="both sidecars with --ca-address: certificates (24 h) from grpcguard-webhook's POST /v1/certify, its TokenReview answered by a stand-in (bench/tokenreview_standin.py)"
	return 0
}
# Start the sidecars of one ns-* configuration; sets NS_SC_PIDS (empty for ns-direct).
NS_SC_PIDS=()
ns_sidecar() { # pod(client|server) mtls(0|1) -> starts one sidecar, appends its PID
	local pod=$1 ns=$NS_S mt=() ip=$NS_IP_S out=()
	[ "$pod" = client ] && ns=$NS_C ip=$NS_IP_C out=(--outbound-listen '[::]:15001')
	[ "$2" = 1 ] && mt=(--ca-address "https://$NS_IP_S:9443" --ca-cert "$work/ns/pki/servca.crt"
		--identity-token "$work/ns/pki/$pod.token")
	local cmd=(run --listen 0.0.0.0:15006 --upstream original-dst "${out[@]}"
		--admin 127.0.0.1:15020 --policy "$work/ns/empty-policy.yaml" "${mt[@]}")
	CMD[ns-$pod$2]="ip netns exec <$pod pod> env POD_NAMESPACE=bench POD_NAME=$pod-0 SERVICE_ACCOUNT=$pod $CPU_PROXY setpriv --reuid 1337 --regid 1337 --clear-groups grpcguard-sidecar ${cmd[*]}"
	# shellcheck disable=SC2086
	ip netns exec "$ns" env POD_NAMESPACE=bench POD_NAME="$pod-0" POD_IP="$ip" SERVICE_ACCOUNT="$pod" \
		$CPU_PROXY setpriv --reuid 1337 --regid 1337 --clear-groups \
		"$work/ns/grpcguard-sidecar" "${cmd[@]}" >>"$work/ns-sidecar-$pod.log" 2>&1 &
	local pid=$!
	ns_pids+=("$pid")
	NS_SC_PIDS+=("$pid")
	if ! ns_ready "$ns" "$pid"; then
		say "the $pod pod's sidecar did not become ready; log:"
		tail -n 5 "$work/ns-sidecar-$pod.log" >&2 || true
		return 1
	fi
}
ns_stop() {
	local p keep=() q
	for p in "${NS_SC_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${NS_SC_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	for q in "${ns_pids[@]:-}"; do
		for p in "${NS_SC_PIDS[@]:-}"; do [ "$q" = "$p" ] && continue 2; done
		keep+=("$q")
	done
	ns_pids=("${keep[@]:-}")
	NS_SC_PIDS=()
}
ns_start() { # config -> starts its sidecars; prints the address h2load dials
	NS_SC_PIDS=()
	case $1 in
	ns-direct) NS_TARGET=$NS_IP_S0 ;;
	ns-gg1) NS_TARGET=$NS_IP_S1; ns_sidecar server 0 || return 1 ;;
	ns-gg2) NS_TARGET=$NS_IP_S; ns_sidecar server 0 && ns_sidecar client 0 || return 1 ;;
	ns-mtls) NS_TARGET=$NS_IP_S; ns_sidecar server 1 && ns_sidecar client 1 || return 1 ;;
	*) return 1 ;;
	esac
}
# The calls really took the path the row is named after: counted by the caller's sidecar
# as reporter source and by the server's as reporter destination (ns-gg1: only the
# latter, and the client pod has no sidecar); with mTLS, the server's sidecar counted them
# as connection_security_policy="mutual_tls". Prints "ok" or "ERR(path:...)".
ns_path_check() { # config requests
	local c=$1 n=$2 src dst mt
	[ "$c" = ns-direct ] && { echo ok; return; }
	dst=$(ns_metric "$NS_S" '^grpcguard_requests_total\{reporter="destination"')
	[ "$dst" -ge "$n" ] || { echo "ERR(path:server-sidecar-counted-$dst/$n)"; return; }
	if [ "$c" != ns-gg1 ]; then
		src=$(ns_metric "$NS_C" '^grpcguard_requests_total\{reporter="source"')
		[ "$src" -ge "$n" ] || { echo "ERR(path:caller-sidecar-counted-$src/$n)"; return; }
	fi
	if [ "$c" = ns-mtls ]; then
		mt=$(ns_metric "$NS_S" '^grpcguard_requests_total\{.*connection_security_policy="mutual_tls"')
		[ "$mt" -ge "$n" ] || { echo "ERR(path:mutual_tls-counted-$mt/$n)"; return; }
	fi
	echo ok
}

h2args() { # mix -> h2load connection/stream/count flags
	case $1 in
	1x1) echo "-c 1 -m 1 -n $N_LAT" ;;
	8x16) echo "-c 8 -m 16 -n $N_THR" ;;
	100x1) echo "-c 100 -m 1 -n $N_CONN" ;;
	esac
}
H2LOAD_BASE="h2load -t 1 -d $work/req.bin -H content-type:application/grpc -H te:trailers"
GRPC_PATH=/helloworld.Greeter/SayHello

# One measured run: leaves the h2load output in $work/h2.out. LOAD_HOST (default
# 127.0.0.1) is the address dialled; LOAD_NS ("ip netns exec <client pod>" for the ns-*
# rows) what h2load runs under.
LOAD_HOST=127.0.0.1 LOAD_NS=""
run_load() { # port mix [logfile]
	local port=$1 mix=$2 log=${3:-}
	local la=()
	[ -n "$log" ] && la=(--log-file="$log")
	# shellcheck disable=SC2046,SC2086
	timeout 120 $LOAD_NS $CPU_LOAD $H2LOAD_BASE $(h2args "$mix") "${la[@]}" \
		"http://$LOAD_HOST:$port$GRPC_PATH" >"$work/h2.out" 2>&1 || true
}

raw=$work/raw.tsv
printf 'backend\tmix\tconfig\tround\tn\trps\tmean_us\tp99_us\tcpu_s\thwm_kb\tanon_kb\tok\tttfb_us\tidle_kb\n' >"$raw"

start_backend() { # name -> sets BACKEND_PID BACKEND_PORT
	case $1 in
	nghttpd)
		BACKEND_PORT=$P_NGHTTPD
		# shellcheck disable=SC2086 # CPU_LOAD is a command prefix, empty without pinning
		canned_backend "$BACKEND_PORT" $CPU_LOAD && BACKEND_PID=$bpid
		return
		;;
	greeter)
		# The ports are in the kernel's ephemeral range: one left in TIME_WAIT by an earlier
		# connection cannot be bound by the greeter (gRPC's listener does not reuse it), so
		# the next free one of 35002-35009 is taken.
		for ((BACKEND_PORT = P_GREETER; BACKEND_PORT < P_GREETER + 8; BACKEND_PORT++)); do
			$CPU_LOAD "$root/build/bench/greeter_cpp/greeter_server" "$BACKEND_PORT" \
				>"$work/greeter.log" 2>&1 &
			BACKEND_PID=$!
			pids+=("$BACKEND_PID")
			wait_port "$BACKEND_PORT" "$BACKEND_PID" && return 0
			stop_pid "$BACKEND_PID"
			grep -q 'in use' "$work/greeter.log" || return 1
		done
		return 1
		;;
	*) return 1 ;;
	esac
}

# A gRPC call through the proxy must really succeed (grpc-status 0 in the trailers) before
# its numbers mean anything: check it once per configuration with the real grpcio client.
grpc_ok() { # port (dialled as LOAD_HOST:port under LOAD_NS, as the load is)
	# shellcheck disable=SC2086
	PYTHONPATH="$root/build/py:$root/tests/greeter" timeout 20 $LOAD_NS "$PY" - "$LOAD_HOST" "$1" <<'EOF' >/dev/null 2>&1
import sys, grpc, helloworld_pb2, helloworld_pb2_grpc
ch = grpc.insecure_channel("%s:%s" % (sys.argv[1], sys.argv[2]))
r = helloworld_pb2_grpc.GreeterStub(ch).SayHello(helloworld_pb2.HelloRequest(name="bench"), timeout=5)
sys.exit(0 if r.message.startswith("Hello") else 1)
EOF
}

declare -A GRPC_CHECK BPORT BPID
t_start=$(date +%s)
t_build=$((t_start - t_begin))
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# Both backends run for the whole section (an idle one costs nothing); rounds are the
# outer loop so that, if the time budget runs out, whole rounds are dropped, never a
# backend or a configuration.
for backend in $BACKENDS; do
	if [ "$backend" = greeter ] && [ "$have_greeter" != 1 ]; then
		say "C++ greeter did not build: backend skipped"; continue
	fi
	if start_backend "$backend"; then
		BPORT[$backend]=$BACKEND_PORT
		BPID[$backend]=$BACKEND_PID
		say "backend $backend on :$BACKEND_PORT (pid $BACKEND_PID)"
	else
		say "backend $backend did not start"
	fi
done
if ns_setup; then
	have_ns=1
	say "netns pods: $ns_note"
	if mtls_setup; then have_mtls=1; fi
	say "mTLS: $mtls_note"
elif [ -n "$ns_note" ]; then
	say "ns-* configurations skipped: $ns_note"
fi
BUDGET=${BENCH_BUDGET_S:-780}
rounds_done=0
for ((round = 1; round <= ROUNDS; round++)); do
	t_round=$(date +%s)
	for backend in $BACKENDS; do
		[ -n "${BPORT[$backend]:-}" ] || continue
		bport=${BPORT[$backend]}
		for config in $CONFIGS; do
			case $config in
			gg-*) [ "$have_sidecar" = 1 ] || continue ;;
			ns-mtls) [ "$have_mtls" = 1 ] || continue ;;
			ns-*) [ "$have_ns" = 1 ] || continue ;;
			esac
			for mix in $MIXES; do
				port=$P_PROXY pid='' mpids=() LOAD_HOST=127.0.0.1 LOAD_NS=""
				if [ "$config" = direct ]; then
					port=$bport
				elif [[ $config == ns-* ]]; then
					[ -n "${NS_BPORT[$backend]:-}" ] || continue
					if ! ns_start "$config"; then ns_stop; continue; fi
					port=${NS_BPORT[$backend]} LOAD_HOST=$NS_TARGET LOAD_NS="ip netns exec $NS_C"
					mpids=("${NS_SC_PIDS[@]:-}")
				else
					start_proxy "$config" "$bport" || continue
					pid=$PROXY_PID
					mpids=("$pid")
				fi
				if [ "$backend" = greeter ] && [ -z "${GRPC_CHECK[$config]:-}" ]; then
					if grpc_ok "$port"; then GRPC_CHECK[$config]=ok; else GRPC_CHECK[$config]=FAILED; fi
				fi
				# Idle memory, as bench/rss.sh measures it: VmRSS of the fresh proxy before any
				# load, after (for the sidecar) one /readyz and one /metrics on its admin port.
				# Once per configuration, backend and round: before the 8x16 run, whose VmHWM is
				# the "at 8x16" figure.
				idle=0
				if [ "$mix" = 8x16 ] && [ -n "$pid" ]; then
					if [[ $config == gg-* ]]; then
						curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$P_ADMIN/readyz" || true
						curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$P_ADMIN/metrics" || true
					fi
					sleep 0.2
					idle=$(rss_kb "$pid")
				fi
				# Warm-up (connections, allocator, caches), then the measured run.
				N_LAT=500 N_THR=5000 N_CONN=2000 run_load "$port" "$mix"
				# CPU and memory: of the proxy process, summed over both sidecars for ns-gg2/ns-mtls.
				c0=0 c1=0 hwm=0 anon=0
				for p in "${mpids[@]:-}"; do [ -z "$p" ] || c0=$((c0 + $(cpu_ns "$p"))); done
				run_load "$port" "$mix" "$work/lat.log"
				for p in "${mpids[@]:-}"; do
					[ -n "$p" ] || continue
					c1=$((c1 + $(cpu_ns "$p")))
					hwm=$((hwm + $(hwm_kb "$p")))
					anon=$((anon + $(anon_kb "$p")))
				done
				read -r rps n ok < <("$PY" bench/report.py h2load "$work/h2.out" || echo "0 0 ERR(report)")
				read -r mean p99 < <("$PY" bench/report.py lat "$work/lat.log" || echo "0 0")
				ttfb=$("$PY" bench/report.py ttfb "$work/h2.out" || echo 0)
				for p in "${mpids[@]:-}"; do
					if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then
						ok="ERR(proxy-exited)"
						say "$config exited during the run; log tail:"
						tail -n 3 "$work/proxy-$config.log" "$work"/ns-sidecar-*.log >&2 2>/dev/null || true
					fi
				done
				if [ "$ok" = ok ] && [[ $config == ns-* ]]; then ok=$(ns_path_check "$config" "$n"); fi
				cpu=$(awk -v a="${c0:-0}" -v b="${c1:-0}" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
				printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$mix" \
					"$config" "$round" "$n" "$rps" "$mean" "$p99" "$cpu" "${hwm:-0}" "${anon:-0}" \
					"$ok" "${ttfb:-0}" "${idle:-0}" >>"$raw"
				say "$backend r$round $config $mix: $rps req/s, mean ${mean}us, p99 ${p99}us, ttfb ${ttfb}us, cpu ${cpu}s, hwm ${hwm:-0}kB, idle ${idle:-0}kB $ok"
				rm -f "$work/lat.log"
				[ -z "$pid" ] || stop_pid "$pid"
				[[ $config != ns-* ]] || ns_stop
			done
		done
	done
	rounds_done=$round
	now=$(date +%s)
	say "round $round of $ROUNDS took $((now - t_round))s"
	if ((round < ROUNDS && round >= MIN_ROUNDS && now - t_start + (now - t_round) > BUDGET)); then
		say "time budget (${BUDGET}s) would be exceeded: stopping after $round of $ROUNDS rounds"
		break
	fi
done
for backend in "${!BPID[@]}"; do stop_pid "${BPID[$backend]}"; done
t_proxies=$(($(date +%s) - t_start))

# ---- webhook: admissions/s over TLS ----------------------------------------------------------
wh=$work/webhook.tsv
: >"$wh"
WEBHOOK_CMD=
if [ "${BENCH_SKIP_WEBHOOK:-0}" != 1 ] && [ "$have_webhook" = 1 ]; then
	mkdir -p "$work/certs"
	if [ "$have_certgen" = 1 ] &&
		"$B/grpcguard-certgen" --service grpcguard-webhook --namespace grpcguard-system \
			--out "$work/certs" >"$work/certgen.log" 2>&1 &&
		[ -f "$work/certs/tls.crt" ]; then
		:
	else
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
			-subj /CN=localhost -keyout "$work/certs/tls.key" -out "$work/certs/tls.crt" \
			>/dev/null 2>&1
	fi
	# A port of the range that is free: one left in TIME_WAIT by an earlier run cannot be
	# bound again by a server that does not set SO_REUSEADDR.
	whpid='' started=0
	for ((P_WEBHOOK = 35020; P_WEBHOOK < 35030; P_WEBHOOK++)); do
		WEBHOOK_CMD="$B/grpcguard-webhook --listen 127.0.0.1:$P_WEBHOOK --tls-cert $work/certs/tls.crt --tls-key $work/certs/tls.key"
		# shellcheck disable=SC2086
		$CPU_PROXY $WEBHOOK_CMD >"$work/webhook.log" 2>&1 &
		whpid=$!
		pids+=("$whpid")
		if wait_port "$P_WEBHOOK" "$whpid"; then started=1; break; fi
		stop_pid "$whpid"
		grep -q 'in use' "$work/webhook.log" || break
	done
	if [ "$started" = 1 ]; then
		url=https://127.0.0.1:$P_WEBHOOK/mutate
		code=$(curl -sk -o "$work/wh-resp.json" -w '%{http_code}' -X POST \
			-H 'content-type: application/json' --data-binary @bench/admission-pod.json "$url" || true)
		wh_check=FAILED
		if [ "$code" = 200 ] && grep -q '"patch"' "$work/wh-resp.json"; then wh_check=ok; fi
		# keep-alive: h2load over HTTP/1.1 with TLS, 8 connections, fixed count
		timeout 120 $CPU_LOAD h2load --h1 -t 1 -c 8 -n 20000 -d bench/admission-pod.json \
			-H content-type:application/json --log-file="$work/whlat.log" "$url" \
			>"$work/h2.out" 2>&1 || true
		read -r rps n ok < <("$PY" bench/report.py h2load "$work/h2.out")
		read -r mean p99 < <("$PY" bench/report.py lat "$work/whlat.log")
		printf 'keep-alive (h2load --h1 -c 8 -n 20000)\t%s\t%s\t%s\t%s\t%s\n' "$rps" "$mean" "$p99" "$ok" "$wh_check" >>"$wh"
		say "webhook keep-alive: $rps adm/s mean ${mean}us p99 ${p99}us $ok"
		# new connection (TLS handshake) per request: wrk with Connection: close
		timeout 60 $CPU_LOAD wrk -t 1 -c 8 -d 5s --latency -s bench/wrk-admission.lua "$url" \
			>"$work/wrk.out" 2>&1 || true
		read -r rps mean p99 ok < <("$PY" bench/report.py wrk "$work/wrk.out")
		printf 'new connection per request (wrk -c 8 -d 5s, Connection: close)\t%s\t%s\t%s\t%s\t%s\n' "$rps" "$mean" "$p99" "$ok" "$wh_check" >>"$wh"
		say "webhook new-conn: $rps adm/s mean ${mean}us p99 ${p99}us $ok"
		echo "$(hwm_kb "$whpid")" >"$work/webhook-hwm"
	else
		say "webhook did not start; log:"; tail -n 5 "$work/webhook.log" >&2 || true
	fi
	stop_pid "$whpid"
fi

# ---- policy evaluation micro-benchmark --------------------------------------------------------
pol=$work/policy.txt
: >"$pol"
if [ "${BENCH_SKIP_POLICY:-0}" != 1 ] && [ "$have_policy_lib" = 1 ]; then
	$CPU_PROXY "$B/policy_bench" bench/policy-realistic.yaml >"$pol" 2>"$work/policy_bench.err" ||
		{ say "policy_bench failed"; cat "$work/policy_bench.err" >&2; : >"$pol"; }
fi

jwt=$work/jwt.tsv
: >"$jwt"
if [ "${BENCH_SKIP_JWT:-0}" != 1 ] && [ "$have_jwt" = 1 ]; then
	timeout 120 $CPU_PROXY "$B/jwt_bench" >"$jwt" 2>"$work/jwt_bench.err" ||
		{ say "jwt_bench failed"; cat "$work/jwt_bench.err" >&2; : >"$jwt"; }
fi

# ---- instructions per request (callgrind), where they go (bench/instr.sh) ----------------------
instr=$work/instr.tsv instr_txt=$work/instr.txt
: >"$instr"
: >"$instr_txt"
INSTR_MIXES=${BENCH_INSTR_MIXES:-8x16 100x1}
t_instr=$(date +%s)
if [ "${BENCH_SKIP_INSTR:-0}" != 1 ] && [ "$have_sidecar" = 1 ] && command -v valgrind >/dev/null; then
	say "callgrind: instructions per request (${BENCH_N_INSTR:-20000} requests per proxy and mix: $INSTR_MIXES)"
	INSTR_N=${BENCH_N_INSTR:-20000} INSTR_MIX=$INSTR_MIXES INSTR_TSV=$instr bash bench/instr.sh "$B/grpcguard-sidecar" \
		>"$instr_txt" 2>"$work/instr.err" || { say "bench/instr.sh failed"; tail -n 5 "$work/instr.err" >&2; }
fi
t_instr=$(($(date +%s) - t_instr))

# ---- RESULTS.md ------------------------------------------------------------------------------
meta=$work/meta.txt
{
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) x $(nproc)"
	echo "nproc=$(nproc)"
	echo "load1=${load_start%% *}"
	echo "mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel=$(uname -r)"
	echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "h2load=$(h2load --version 2>&1 | head -n1)"
	echo "nghttpx=$(nghttpx --version 2>&1 | head -n1)"
	echo "haproxy=$(haproxy -v 2>&1 | head -n1)"
	echo "grpc=libgrpc++ $(pkg-config --modversion grpc++ 2>/dev/null || echo '?')"
	echo "wrk=$(wrk -v 2>&1 | head -n1)"
	echo "pin=$PIN_NOTE"
	echo "rounds=$rounds_done"
	echo "rounds_planned=$ROUNDS"
	echo "built_from=$BUILT_FROM"
	echo "loadavg=$load_start at the start of the proxy section, $(cut -d' ' -f1-3 /proc/loadavg) at the end of the run"
	echo "counts=1x1: $N_LAT requests; 8x16: $N_THR; 100x1: $N_CONN (each after a short warm-up run)"
	echo "seconds=$t_proxies"
	echo "seconds_build=$t_build"
	echo "seconds_instr=$t_instr"
	echo "seconds_other=$(($(date +%s) - t_begin - t_build - t_proxies - t_instr))"
	echo "seconds_total=$(($(date +%s) - t_begin))"
	echo "instr_mixes=$INSTR_MIXES"
	for c in "${!CMD[@]}"; do echo "cmd.$c=${CMD[$c]//$work/\$WORK}"; done
	echo "note=${BENCH_NOTE:-}"
	echo "raw_name=$(basename "${OUT%.md}-raw.tsv")"
	echo "skip_webhook=${BENCH_SKIP_WEBHOOK:-0}"
	echo "skip_policy=${BENCH_SKIP_POLICY:-0}"
	echo "have_ns=$have_ns"
	echo "ns_note=$ns_note"
	echo "have_mtls=$have_mtls"
	echo "mtls_note=$mtls_note"
	echo "ns_load_cmd=ip netns exec <client pod> $CPU_LOAD ${H2LOAD_BASE//$work/\$WORK} <mix flags> http://<server pod address>:<8080 nghttpd | 8081 greeter>$GRPC_PATH"
	for c in "${!GRPC_CHECK[@]}"; do echo "grpc.$c=${GRPC_CHECK[$c]}"; done
	echo "load_cmd=$CPU_LOAD ${H2LOAD_BASE//$work/\$WORK} <mix flags> --log-file=\$WORK/lat.log http://127.0.0.1:PORT$GRPC_PATH"
	[ -n "$WEBHOOK_CMD" ] && echo "webhook_cmd=${WEBHOOK_CMD//$work/\$WORK}"
	[ -f "$work/webhook-hwm" ] && echo "webhook_hwm_kb=$(cat "$work/webhook-hwm")"
	echo "have_sidecar=$have_sidecar"
	echo "have_webhook=$have_webhook"
	echo "have_policy_lib=$have_policy_lib"
} >"$meta"
"$PY" bench/report.py report "$raw" "$meta" "$wh" "$pol" "$jwt" "$instr" "$instr_txt" >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cp "$raw" "${OUT%.md}-raw.tsv"
say "wrote $OUT in $(($(date +%s) - t_begin))s (build ${t_build}s, proxy rounds ${t_proxies}s, callgrind ${t_instr}s)"
