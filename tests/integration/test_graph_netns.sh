#!/usr/bin/env bash
# Issue 15 "done when": both ends of every call, seen THROUGH A REAL PROMETHEUS that scrapes
# the sidecars of network-namespace pods, and drawn by grpcguard-graph.
#
#   node netns: a Linux bridge (the node's pod network, 10.244.1.0/24), one veth per pod
#     client-pod  .2   grpcguard-sidecar init (inbound 9999, outbound on) and its sidecar
#                      as uid 1337 (inbound 15006, outbound 15001, admin [::]:15020)
#     server-pod  .3   greeter :8080, init (inbound 8080) and its sidecar as uid 1337 with a
#                      server-side delay (5 s) for calls that carry x-chaos: on
#     backend-pod .4   greeter :8080, no sidecar
#     prom-pod    .10  Debian's prometheus (temp dir, scrape_interval 1s) scraping each
#                      sidecar's admin port at its pod IP, as a pod-scraping Prometheus
#                      does (target labels namespace and pod); grpcguard-graph runs here
#
# The client pod names the others through /etc/netns/<ns>/hosts (server, backend and
# their .demo.svc.cluster.local forms); the sidecars get POD_NAMESPACE=demo and a
# Deployment-style POD_NAME, as injected, so the workloads are demo/client, demo/server.
#
# Traffic from the client pod (grpcio, greeter_client.py, one channel per run):
#   A  6 calls to server:8080, OK;
#   B  2 calls to server:8080 with x-chaos: on and a 1 s deadline: held 5 s by the server's
#      sidecar, so DEADLINE_EXCEEDED at the client's deadline;
#   C  a client-side fault (the client's policy: destinations [backend.demo.svc.cluster.local],
#      delay 1500ms): 3 calls to backend:8080 with a 5 s deadline, OK and delayed, then two
#      with a 1 s deadline, DEADLINE_EXCEEDED and never reaching the backend.
# Asserted through Prometheus' HTTP API (/api/v1/query), never the sidecars' /metrics:
#   - both sidecars are up as scrape targets;
#   - the client->server edge with the right counts at both reporters (source at the
#     client's sidecar, destination at the server's): OK 6, DEADLINE_EXCEEDED 2;
#   - B on the source side: the duration histogram puts the 6 OK calls under 0.5 s and the
#     2 DEADLINE_EXCEEDED ones in (0.5 s, 2.5 s] (the server holds them 5 s), and the
#     histogram's sum grew by 2 x ~1 s: the client's deadline, the "outgoing request
#     duration";
#   - C on the source side only (reporter source, destination_workload unknown,
#     destination_service backend: the host the client used): OK 3 all in (1 s, 2.5 s],
#     DEADLINE_EXCEEDED 2, faults_injected_total{fault="slow-backend"} 5; no destination
#     report for the backend (it has no sidecar);
#   - no capture loop: the client's sidecar accepted one outbound connection per client
#     run and saw no loop.
# Then grpcguard-graph --format text and dot give the edge set {demo/client -> demo/server,
# demo/client -> backend}, both with errors and the second with a p99 above 1 s, and
# --format svg parses as XML with those nodes and edges. (Calls that fail are spread over
# more than one scrape: Prometheus' rate() sees no increase in a series' first sample.) Everything is removed on exit (also on failure): processes by PID, then
# whatever is left in our namespaces, then the namespaces.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

netns_need_tools ip iptables-restore iptables-save setpriv curl
PROMETHEUS=$(command -v prometheus) || skip "prometheus is not installed (make deps installs Debian's prometheus)"
for prog in grpcguard-sidecar grpcguard-graph; do
	[ -x "$GG_BIN/$prog" ] || die "$GG_BIN/$prog is not built"
done

id=$$
NS_N=gggn-$id-node
NS_C=gggn-$id-cli
NS_S=gggn-$id-srv
NS_B=gggn-$id-bck
NS_P=gggn-$id-prom
NET=10.244.1
IP_C=$NET.2 IP_S=$NET.3 IP_B=$NET.4 IP_P=$NET.10
PROM_URL=http://127.0.0.1:9090 # inside the prom pod
tmp=$(mktemp -d /tmp/gg-graph-netns.XXXXXX)
chmod 755 "$tmp"
pids=()
sc_c= sc_s= prom_pid=

cleanup() {
	local pid
	stop_pid "$prom_pid"
	stop_pid "$sc_c"
	stop_pid "$sc_s"
	for pid in "${pids[@]}"; do stop_pid "$pid"; done
	# Deleting a namespace deletes its interfaces: the veths and the node's bridge.
	netns_teardown "$NS_C" "$NS_S" "$NS_B" "$NS_P" "$NS_N"
	rm -rf "/etc/netns/$NS_C" "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_c() { ip netns exec "$NS_C" "$@"; }
in_s() { ip netns exec "$NS_S" "$@"; }
in_p() { ip netns exec "$NS_P" "$@"; }

# ---- the node and four pods ------------------------------------------------------------------
err=$(ip netns add "$NS_N" 2>&1) || skip "cannot create a network namespace: $err"
for ns in "$NS_C" "$NS_S" "$NS_B" "$NS_P"; do ip netns add "$ns" || die "ip netns add $ns"; done
err=$(ip -n "$NS_N" link add br0 type bridge 2>&1) || skip "cannot create a bridge: $err"
ip -n "$NS_N" link set br0 up || die "bridge up"
pod_net() { # NS IP N: a veth from the node's bridge into pod NS as eth0
	ip -n "$NS_N" link add "veth$3" type veth peer name eth0 netns "$1" &&
		ip -n "$NS_N" link set "veth$3" master br0 &&
		ip -n "$NS_N" link set "veth$3" up &&
		ip -n "$1" addr add "$2/24" dev eth0 &&
		ip -n "$1" link set eth0 up &&
		ip -n "$1" link set lo up
}
pod_net "$NS_C" "$IP_C" 1 && pod_net "$NS_S" "$IP_S" 2 && pod_net "$NS_B" "$IP_B" 3 &&
	pod_net "$NS_P" "$IP_P" 4 || die "cannot wire the pods to the node's bridge"
netns_need_nat "$NS_C"
netns_hosts "$NS_C" "$IP_S server server.demo server.demo.svc.cluster.local" \
	"$IP_B backend backend.demo backend.demo.svc.cluster.local"
echo "pods on $NET.0/24: client $IP_C, server $IP_S, backend $IP_B (no sidecar), prometheus $IP_P"

greeter_stubs
export GRPC_DNS_RESOLVER=native # getaddrinfo: reads the pod's /etc/hosts

# ---- helpers -----------------------------------------------------------------------------
runs=0 # client runs that went through the outbound capture (one connection each)
calls() { # WANT COUNT NAME TARGET DEADLINE [client args]: COUNT calls in one client run
	local want=$1 count=$2 name=$3 target=$4 deadline=$5
	shift 5
	in_c "$PYTHON" "$root/tests/greeter/greeter_client.py" --target "$target" \
		--deadline "$deadline" --name "$name" --count "$count" --json "$@" \
		>"$tmp/$name.out" 2>&1
	runs=$((runs + 1))
	"$PYTHON" - "$tmp/$name.out" "$want" "$count" <<'EOF' || die "calls $name to $target: $(tail -n 5 "$tmp/$name.out")"
import json, sys
path, want, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
got = []
for line in open(path):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    got.append((d["code"], d["ms"]))
print("  %s" % " ".join("%s/%dms" % g for g in got))
sys.exit(0 if len(got) == count and all(c == want for c, _ in got) else 1)
EOF
	# The calls' durations, for the callers' own bounds.
	last_ms=$("$PYTHON" -c 'import json,sys
print(" ".join(str(int(json.loads(l)["ms"])) for l in open(sys.argv[1]) if l.startswith("{")))' "$tmp/$name.out")
}
# One PromQL query to the real Prometheus' HTTP API; prints the value of a one-element
# vector or scalar ("%g"), "none" for an empty vector, "many" for more than one element.
promq() {
	in_p curl -sS --max-time 5 --data-urlencode "query=$1" "$PROM_URL/api/v1/query" 2>&1 |
		"$PYTHON" -c 'import json, sys
raw = sys.stdin.read()
try:
    d = json.loads(raw)
    assert d["status"] == "success", d
    r = d["data"]["result"]
except Exception:
    print("error:", raw[:300].replace("\n", " "))
    sys.exit(0)
if d["data"]["resultType"] == "scalar":
    r = [{"value": r}]
print("none" if not r else "many" if len(r) > 1 else "%g" % float(r[0]["value"][1]))'
}
expect_prom() { # WANT WHAT QUERY: poll until the query gives WANT (scrapes are 1 s apart)
	local want=$1 what=$2 q=$3 got end=$((SECONDS + 20))
	while :; do
		got=$(promq "$q")
		[ "$got" = "$want" ] && break
		[ $SECONDS -lt $end ] || {
			echo "the requests Prometheus holds:"
			in_p curl -sS --max-time 5 --data-urlencode 'query=grpcguard_requests_total' \
				"$PROM_URL/api/v1/query" | "$PYTHON" -c 'import json, sys
for s in json.load(sys.stdin)["data"]["result"]:
    print("  ", s["metric"], s["value"][1])'
			die "$what: Prometheus says \"$got\", want \"$want\" for: $q"
		}
		sleep 0.5
	done
	echo "  prometheus: $what = $got"
}
set_policy() { # DIR < YAML: replace DIR/policy.yaml atomically, as a ConfigMap update does
	cat >"$1/.p.new" && chmod 644 "$1/.p.new" && mv -f "$1/.p.new" "$1/policy.yaml"
}

# ---- the apps ----------------------------------------------------------------------------
bg "$NS_S" server "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/server.calls" --name server-pod
bg "$NS_B" backend "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/backend.calls" --name backend-pod
wait_until 15 port_open "$NS_S" 127.0.0.1 8080 || die "server greeter did not start: $(cat "$tmp/server.log")"
wait_until 15 port_open "$NS_B" 127.0.0.1 8080 || die "backend greeter did not start: $(cat "$tmp/backend.log")"

# ---- init (outbound on) and the two sidecars, as uid 1337 -----------------------------------
in_c "$GG_BIN/grpcguard-sidecar" init --ports 9999 >"$tmp/init-cli.log" 2>&1 ||
	die "client init failed: $(cat "$tmp/init-cli.log")"
in_s "$GG_BIN/grpcguard-sidecar" init --ports 8080 >"$tmp/init-srv.log" 2>&1 ||
	die "server init failed: $(cat "$tmp/init-srv.log")"
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
mkdir -m 755 "$tmp/cpolicy" "$tmp/spolicy"
printf 'apiVersion: grpcguard.io/v1\nkind: Policy\n' | set_policy "$tmp/cpolicy"
set_policy "$tmp/spolicy" <<'EOF'
apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: server-side-delay
    match: {headers: {x-chaos: "on"}}
    delay: {fixed: 5s}
EOF
sidecar() { # NS POD_NAME SA POLICY_DIR LOG
	ip netns exec "$1" env POD_NAMESPACE=demo POD_NAME="$2" SERVICE_ACCOUNT="$3" \
		setpriv --reuid 1337 --regid 1337 --clear-groups \
		"$tmp/grpcguard-sidecar" run --listen 0.0.0.0:15006 --outbound-listen '[::]:15001' \
		--admin '[::]:15020' --policy "$4/policy.yaml" --upstream-connect-timeout 1s \
		>"$tmp/$5.log" 2>&1 &
}
sidecar "$NS_C" client-7d9f8b6c5d-x2x4z client "$tmp/cpolicy" sidecar-cli
sc_c=$!
sidecar "$NS_S" server-6b7c9d8f5x-k2m4q server "$tmp/spolicy" sidecar-srv
sc_s=$!
for pod in cli srv; do
	ns=$NS_C pid=$sc_c
	[ $pod = srv ] && ns=$NS_S pid=$sc_s
	end=$((SECONDS + 20))
	until [ "$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15020/readyz)" = 200 ]; do
		kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ] || {
			tail -n 20 "$tmp/sidecar-$pod.log"
			die "the $pod sidecar did not become ready"
		}
		sleep 0.2
	done
	[ "$(ps -o uid= -p "$pid" | tr -d ' ')" = 1337 ] || die "the $pod sidecar does not run as uid 1337"
done
echo "sidecars ready: client (pid $sc_c), server (pid $sc_s), uid 1337"

# ---- Prometheus, in its own pod, scraping the sidecars at their pod IPs ---------------------------
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: grpcguard-sidecars
    static_configs:
      - targets: ['$IP_C:15020']
        labels: {namespace: demo, pod: client-7d9f8b6c5d-x2x4z}
      - targets: ['$IP_S:15020']
        labels: {namespace: demo, pod: server-6b7c9d8f5x-k2m4q}
EOF
ip netns exec "$NS_P" "$PROMETHEUS" --config.file="$tmp/prometheus.yml" \
	--storage.tsdb.path="$tmp/prom-data" --web.listen-address=127.0.0.1:9090 \
	--log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
end=$((SECONDS + 30))
until [ "$(in_p curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$PROM_URL/-/ready")" = 200 ]; do
	kill -0 "$prom_pid" 2>/dev/null || skip "prometheus could not start here: $(tail -n 3 "$tmp/prometheus.log")"
	[ $SECONDS -lt $end ] || skip "prometheus did not become ready within 30 s: $(tail -n 3 "$tmp/prometheus.log")"
	sleep 0.3
done
echo "prometheus ready (pid $prom_pid) in the prom pod"
expect_prom 2 "sidecar targets up" 'sum(up{job="grpcguard-sidecars"})'

# ---- A, B: the client -> server edge ----------------------------------------------------------
SRC='source_workload="client",source_namespace="demo"'
CS="$SRC,destination_workload=\"server\",destination_namespace=\"demo\",destination_service=\"server\""
CB="$SRC,destination_workload=\"unknown\",destination_service=\"backend\""
req() { echo "sum(grpcguard_requests_total{$1})"; }
dur() { echo "sum(grpcguard_request_duration_seconds_$1{$2})"; }

echo "== A: 6 OK calls client -> server"
calls OK 6 edge-ok server:8080 5 --interval 0.3
[ "$(logged server edge-ok)" = 6 ] || die "the server app did not get the 6 calls"
expect_prom 6 "source OK client->server" "$(req "reporter=\"source\",$CS,grpc_code=\"OK\"")"
expect_prom 6 "destination OK client->server" "$(req "reporter=\"destination\",$CS,grpc_code=\"OK\"")"
expect_prom 6 "source duration count client->server" "$(dur count "reporter=\"source\",$CS")"
sum_a=$(promq "$(dur sum "reporter=\"source\",$CS")")

echo "== B: a server-side delay (5 s) run into the client's 1 s deadline"
calls DEADLINE_EXCEEDED 2 server-held server:8080 1 --metadata x-chaos=on --interval 1.2
for ms in $last_ms; do
	[ "$ms" -lt 1500 ] || die "DEADLINE_EXCEEDED after $ms ms, want the client's 1 s"
done
expect_prom 2 "source DEADLINE_EXCEEDED client->server" \
	"$(req "reporter=\"source\",$CS,grpc_code=\"DEADLINE_EXCEEDED\"")"
expect_prom 2 "destination DEADLINE_EXCEEDED client->server" \
	"$(req "reporter=\"destination\",$CS,grpc_code=\"DEADLINE_EXCEEDED\"")"
expect_prom 8 "source requests client->server, all codes" "$(req "reporter=\"source\",$CS")"
expect_prom 8 "destination requests client->server, all codes" "$(req "reporter=\"destination\",$CS")"
# Outgoing request duration: the OK calls are fast, the held ones last the client's
# deadline (a call that ran the server's 5 s delay would land above 2.5 s).
expect_prom 8 "source duration count client->server" "$(dur count "reporter=\"source\",$CS")"
expect_prom 6 "source calls client->server under 0.5 s" \
	"$(dur bucket "reporter=\"source\",$CS,le=\"0.5\"")"
expect_prom 8 "source calls client->server under 2.5 s" \
	"$(dur bucket "reporter=\"source\",$CS,le=\"2.5\"")"
sum_b=$(promq "$(dur sum "reporter=\"source\",$CS")")
"$PYTHON" -c 'import sys
a, b = float(sys.argv[1]), float(sys.argv[2])
each = (b - a) / 2
print("  prometheus: source duration of each held call: %.3f s" % each)
sys.exit(0 if 0.8 <= each <= 1.3 else 1)' "$sum_a" "$sum_b" ||
	die "the held calls' source-side duration (sum $sum_a -> $sum_b) is not the client's 1 s deadline"
[ "$(logged server server-held)" = 0 ] || die "a call held by the server's sidecar reached the app"
expect_prom none "reporter source at the server's sidecar" \
	'sum(grpcguard_requests_total{reporter="source",pod="server-6b7c9d8f5x-k2m4q"})'

# ---- C: a client-side fault in front of a pod without a sidecar ----------------------------------
echo "== C: client-side delay toward the backend (no sidecar)"
set_policy "$tmp/cpolicy" <<'EOF'
apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: slow-backend
    match:
      destinations: [backend.demo.svc.cluster.local]
    delay: {fixed: 1500ms, percent: 100}
EOF
wait_until 15 bash -c "ip netns exec $NS_C curl -s --max-time 2 http://127.0.0.1:15020/policy | grep -q slow-backend" ||
	die "the client's sidecar did not load the client-side fault: $(tail -n 5 "$tmp/sidecar-cli.log")"
calls OK 3 delayed backend:8080 5 --interval 0.3
for ms in $last_ms; do
	[ "$ms" -ge 1400 ] || die "a call to backend:8080 took $ms ms, want the 1500 ms fault"
done
[ "$(logged backend delayed)" = 3 ] || die "the backend did not get the 3 delayed calls"
expect_prom 3 "source OK client->backend" "$(req "reporter=\"source\",$CB,grpc_code=\"OK\"")"
expect_prom 0 "source calls client->backend under 1 s" "$(dur bucket "reporter=\"source\",$CB,le=\"1\"")"
expect_prom 3 "source calls client->backend under 2.5 s" "$(dur bucket "reporter=\"source\",$CB,le=\"2.5\"")"
calls DEADLINE_EXCEEDED 2 backend-deadline backend:8080 1 --interval 1.2
sleep 1 # past the delay: the held call must have been dropped, not forwarded
[ "$(logged backend backend-deadline)" = 0 ] || die "a call whose deadline expired while held reached the backend"
expect_prom 2 "source DEADLINE_EXCEEDED client->backend" \
	"$(req "reporter=\"source\",$CB,grpc_code=\"DEADLINE_EXCEEDED\"")"
expect_prom 5 "faults injected (slow-backend) at the client's sidecar" \
	'sum(grpcguard_faults_injected_total{fault="slow-backend",type="delay",pod="client-7d9f8b6c5d-x2x4z"})'
expect_prom none "destination reports about the backend" \
	'sum(grpcguard_requests_total{reporter="destination",destination_service="backend"})'
# Calls to the server are not delayed by the backend's fault.
calls OK 1 not-delayed server:8080 5
[ "$last_ms" -lt 1000 ] || die "a call to server:8080 took $last_ms ms: the fault is for the backend only"
expect_prom 7 "destination OK client->server" "$(req "reporter=\"destination\",$CS,grpc_code=\"OK\"")"

echo "== no capture loop"
expect_prom "$runs" "outbound connections accepted by the client's sidecar (one per client run)" \
	'sum(grpcguard_sidecar_outbound_connections_total{result="accepted",pod="client-7d9f8b6c5d-x2x4z"})'
got=$(promq 'sum(grpcguard_sidecar_outbound_connections_total{result="loop"})')
[ "$got" = none ] || [ "$got" = 0 ] || die "the sidecars saw a capture loop: $got"

# ---- grpcguard-graph against the same Prometheus ------------------------------------------------
echo "== grpcguard-graph"
graph() { # ARGS...: run grpcguard-graph in the prom pod, stdout to $tmp/graph.out
	local env=()
	if [ "${GG_SANITIZE:-0}" = 1 ]; then
		# Graphviz's process-lifetime allocations, by name (see test_graph.py).
		env=(LSAN_OPTIONS="suppressions=$root/tests/lib/graphviz.lsan.supp:print_suppressions=0"
			ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0")
	fi
	in_p env "${env[@]}" "$GG_BIN/grpcguard-graph" --prometheus "$PROM_URL" --window 5m "$@" \
		>"$tmp/graph.out" 2>"$tmp/graph.err"
}
graph --format text || die "grpcguard-graph --format text: exit $?: $(cat "$tmp/graph.err")"
sed 's/^/  /' "$tmp/graph.out"
"$PYTHON" - "$tmp/graph.out" <<'EOF' || die "grpcguard-graph --format text: wrong edges"
import re, sys
want = {("demo/client", "demo/server"), ("demo/client", "backend")}
line = re.compile(r"^(\S+) -> (\S+)  ([0-9.]+) req/s  ([0-9.]+)% errors  p99 (-|[0-9.]+ ms)(  mTLS)?$")
edges = {}
for l in open(sys.argv[1]).read().splitlines():
    m = line.match(l)
    if not m:
        sys.exit("not an edge line: %r" % l)
    edges[(m.group(1), m.group(2))] = (float(m.group(3)), float(m.group(4)), m.group(5))
if set(edges) != want:
    sys.exit("edge set %s, want %s" % (sorted(edges), sorted(want)))
rps, err, p99 = edges[("demo/client", "demo/server")]
# 2 of 9 calls failed; rates over the window are extrapolated per series, so loosely.
if not (rps > 0 and 5 <= err <= 60 and p99 != "-"):
    sys.exit("client -> server: %s req/s, %s%% errors, p99 %s" % (rps, err, p99))
rps, err, p99 = edges[("demo/client", "backend")]
if not (rps > 0 and 5 <= err <= 80 and p99 != "-" and float(p99.split()[0]) >= 1000):
    sys.exit("client -> backend: %s req/s, %s%% errors, p99 %s (the 1.5 s fault)" % (rps, err, p99))
print("  text: edge set and figures as expected")
EOF
graph --format dot || die "grpcguard-graph --format dot: exit $?: $(cat "$tmp/graph.err")"
"$PYTHON" - "$tmp/graph.out" <<'EOF' || die "grpcguard-graph --format dot: wrong edges"
import re, sys
out = open(sys.argv[1]).read()
if not out.lstrip().startswith("digraph"):
    sys.exit("not a digraph: %r" % out[:200])
ident = r'("(?:[^"\\]|\\.)*"|[A-Za-z0-9_.]+)'
edges = {tuple(x.strip('"') for x in m.groups()[:2])
         for m in re.finditer(ident + r"\s*->\s*" + ident + r"\s*\[", out)}
want = {("demo/client", "demo/server"), ("demo/client", "backend")}
if edges != want:
    sys.exit("dot edge set %s, want %s" % (sorted(edges), sorted(want)))
print("  dot: edge set as expected")
EOF
graph --format svg --out "$tmp/graph.svg" || die "grpcguard-graph --format svg: exit $?: $(cat "$tmp/graph.err")"
"$PYTHON" - "$tmp/graph.svg" <<'EOF' || die "grpcguard-graph --format svg: not the graph"
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
if root.tag != ns + "svg":
    sys.exit("root element %s" % root.tag)
titles = {}
for g in root.iter(ns + "g"):
    t = g.find(ns + "title")
    if t is not None and g.get("class") in ("node", "edge"):
        titles.setdefault(g.get("class"), set()).add(t.text)
if titles.get("node") != {"demo/client", "demo/server", "backend"} or \
        titles.get("edge") != {"demo/client->demo/server", "demo/client->backend"}:
    sys.exit("svg nodes %s, edges %s" % (titles.get("node"), titles.get("edge")))
print("  svg: parses as XML, nodes and edges as expected")
EOF
if [ -n "${GG_GRAPH_KEEP:-}" ]; then # a directory to keep the picture in
	mkdir -p "$GG_GRAPH_KEEP" && cp "$tmp/graph.svg" "$GG_GRAPH_KEEP/"
fi

# ---- stop: the sidecars exit 0 on SIGTERM (and, sanitized, report nothing) ----------------------
for pod in cli srv; do
	pid=$sc_c
	[ $pod = srv ] && pid=$sc_s
	kill -TERM "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	wait "$pid"
	rc=$?
	[ $pod = cli ] && sc_c= || sc_s=
	[ $rc = 0 ] || { tail -n 30 "$tmp/sidecar-$pod.log"; die "the $pod sidecar exited with $rc after SIGTERM"; }
	if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error' "$tmp/sidecar-$pod.log"; then
		cat "$tmp/sidecar-$pod.log"
		die "sanitizer report from the $pod sidecar"
	fi
done
if grep -q 'ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error' "$tmp/graph.err"; then
	cat "$tmp/graph.err"
	die "sanitizer report from grpcguard-graph"
fi
stop_pid "$prom_pid"
prom_pid=
echo "PASS: client -> server and client -> backend through a real Prometheus and grpcguard-graph"
exit 0
