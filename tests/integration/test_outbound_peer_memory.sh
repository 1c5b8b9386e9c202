#!/usr/bin/env bash
# Issue 15, the caller's labels of a call the destination never answered: two injected
# pods (network namespaces on a veth pair), each with init (outbound capture on) and its
# sidecar as uid 1337. The server's policy delays calls that carry x-chaos: on by 3 s.
#
# From the client pod, ONE grpcio channel (one connection, one original destination):
#   call 1 OK: the server's sidecar names itself in its answer (x-grpcguard-peer);
#   call 2 x-chaos: on: held by the server's sidecar and cancelled by the client after 1 s
#          (no grpc-timeout, so the server's sidecar has no deadline to answer at): no
#          answer at all. The caller's sidecar must still report it as reporter="source",
#          destination_workload="server" (the last answer from that address), CANCELLED,
#          not as a call to an "unknown" workload (a call abandoned at its deadline is the
#          same case, when the client's reset wins the race with the server's sidecar); the
#          service graph otherwise draws the server twice, once as "(no sidecar)".
# Then a NEW channel (a new connection to the same address) whose first call is held and
# cancelled: the caller's sidecar remembers per destination address who answered there
# (sidecar/peercache.c), so it is still reported to "server". A destination that never
# answered stays "unknown" (test_graph_netns.sh: the backend without a sidecar).
# Everything created is removed on exit, by PID and netns name.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$root/tests/lib/netns.sh"

netns_require ip iptables-save setpriv curl

id=$$
NS_C=ggpm-$id-cli NS_S=ggpm-$id-srv
V_C=ggpm${id}c V_S=ggpm${id}s
tmp=$(mktemp -d /tmp/gg-peer-memory.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	netns_teardown "$NS_C" "$NS_S"
	ip link del "$V_C" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

netns_pair "$NS_C" "$NS_S" "$V_C" "$V_S" 10.233.1.2 10.233.1.1
netns_pair_up "$NS_C" "$NS_S" "$V_C" "$V_S"
netns_need_nat "$NS_C"

export PYTHONPATH="$root/tests/greeter:$root/build/py${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -c 'import helloworld_pb2_grpc' 2>/dev/null || die "greeter stubs missing: run make py"

ip netns exec "$NS_S" "$PYTHON" "$root/tests/greeter/greeter_server.py" --host 0.0.0.0 --port 8080 \
	--calls-log "$tmp/server.calls" --name server-pod >"$tmp/server.log" 2>&1 &
pids+=($!)
cp "$GG_BIN/grpcguard-sidecar" "$tmp/grpcguard-sidecar" && chmod 755 "$tmp/grpcguard-sidecar"
# OpenSSL (identity, mTLS, JWT) comes with the module beside the binary (sidecar/crypto.h).
[ ! -e "$GG_BIN/grpcguard-sidecar-crypto.so" ] || install -m 644 "$GG_BIN/grpcguard-sidecar-crypto.so" "$tmp/"
printf 'faults:\n  - name: chaos\n    match: {headers: {x-chaos: "on"}}\n    delay: {fixed: 3s}\n' \
	>"$tmp/policy.yaml"
chmod 644 "$tmp/policy.yaml"
sidecar() { # NS POD_NAME SA LOG
	ip netns exec "$1" "$GG_BIN/grpcguard-sidecar" init --ports '*' >"$tmp/init-$4.log" 2>&1 ||
		die "init in $1: $(cat "$tmp/init-$4.log")"
	ip netns exec "$1" env POD_NAMESPACE=demo POD_NAME="$2" SERVICE_ACCOUNT="$3" \
		setpriv --reuid 1337 --regid 1337 --clear-groups "$tmp/grpcguard-sidecar" run \
		--listen '[::]:15006' --upstream original-dst --outbound-listen '[::]:15001' \
		--admin 127.0.0.1:15020 --policy "$tmp/policy.yaml" >"$tmp/$4.log" 2>&1 &
	pids+=($!)
	sc_pids+=($!)
}
sc_pids=()
sidecar "$NS_S" server-6b7c9d8f5x-k2m4q server server-sidecar
sidecar "$NS_C" client-7d9f8b6c5d-x2x4z client client-sidecar
for ns in "$NS_S" "$NS_C"; do
	end=$((SECONDS + 20))
	until [ "$(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15020/readyz)" = 200 ]; do
		[ $SECONDS -lt $end ] || die "the sidecar in $ns did not become ready: $(tail -n 5 "$tmp"/*sidecar.log)"
		sleep 0.2
	done
done
end=$((SECONDS + 15))
until ip netns exec "$NS_S" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080' 2>/dev/null; do
	[ $SECONDS -lt $end ] || die "the greeter server did not start"
	sleep 0.2
done

# calls.py KINDS: one channel, the calls in order ("ok", "held"); prints each result. A
# held call is cancelled by the client after 1 s and sends no grpc-timeout, so the
# server's sidecar has no deadline of its own to answer at: it never answers.
cat >"$tmp/calls.py" <<'EOF'
import sys, time, grpc, helloworld_pb2 as pb, helloworld_pb2_grpc as pbg
ch = grpc.insecure_channel("10.233.1.1:8080")
stub = pbg.GreeterStub(ch)
for kind in sys.argv[1].split(","):
    if kind == "ok":
        stub.SayHello(pb.HelloRequest(name=kind), timeout=5.0)
        print(kind, "OK")
        continue
    fut = stub.SayHello.future(pb.HelloRequest(name=kind), metadata=[("x-chaos", "on")])
    time.sleep(1.0)
    fut.cancel()
    try:
        fut.result()
        print(kind, "OK")
    except grpc.FutureCancelledError:
        print(kind, "CANCELLED")
    except grpc.RpcError as e:
        print(kind, e.code().name)
ch.close()
EOF
metrics() { ns_metrics "$NS_C"; }
# requests_to DST_WORKLOAD CODE: the caller's reporter="source" requests to that workload
requests_to() {
	metrics | awk -v w="destination_workload=\"$1\"" -v c="grpc_code=\"$2\"" \
		'/^grpcguard_requests_total\{reporter="source"/ && index($0, w) && index($0, c) { s += $NF }
		 END { printf "%d\n", s }'
}

# settle WORKLOAD CODE WANT: waits up to 5 s for the caller's sidecar to count the calls
# (it counts one when both of its ends have closed).
settle() {
	local end=$((SECONDS + 5))
	until [ "$(requests_to "$1" "$2")" -ge "$3" ]; do
		[ $SECONDS -lt $end ] || return 0
		sleep 0.2
	done
}

echo "== one connection: an answered call, then a held one the client cancels"
out=$(ip netns exec "$NS_C" "$PYTHON" "$tmp/calls.py" ok,held 2>&1)
[ "$out" = $'ok OK\nheld CANCELLED' ] || die "calls on one channel: $out"
settle server OK 1
end=$((SECONDS + 5))
while [ "$(requests_to server CANCELLED)$(requests_to unknown CANCELLED)" = 00 ] && [ $SECONDS -lt $end ]; do
	sleep 0.2
done
[ "$(requests_to server OK)" = 1 ] || die "the answered call is not reported to destination_workload=server: $(metrics | grep '^grpcguard_requests_total')"
got=$(requests_to server CANCELLED)
[ "$got" = 1 ] || die "the held call on the same connection is not reported to destination_workload=server (got $got; unknown: $(requests_to unknown CANCELLED))"
[ "$(requests_to unknown CANCELLED)" = 0 ] || die "the held call was reported to an unknown workload"
echo "  reporter=source, destination_workload=server: OK 1, CANCELLED 1"

echo "== a new connection whose first call is never answered: named from the address's last answer"
out=$(ip netns exec "$NS_C" "$PYTHON" "$tmp/calls.py" held 2>&1)
[ "$out" = "held CANCELLED" ] || die "held call on a new channel: $out"
settle server CANCELLED 2
[ "$(requests_to server CANCELLED)" = 2 ] || die "the unanswered call on a new connection to the same address was not reported to destination_workload=server: $(metrics | grep "^grpcguard_requests_total")"
[ "$(requests_to unknown CANCELLED)" = 0 ] || die "an unanswered call to an address that answered before was reported as unknown"
echo "  reporter=source, destination_workload=server: CANCELLED 2"

[ -s "$tmp/server.calls" ] && [ "$(wc -l <"$tmp/server.calls")" = 1 ] || die "the app did not receive exactly the one answered call"
# Both sidecars drain and exit 0 on SIGTERM (a sanitizer build exits non-zero on a leak,
# e.g. of a connection's remembered answer).
for pid in "${sc_pids[@]}"; do
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	[ $rc = 0 ] || die "sidecar pid $pid exited $rc on SIGTERM: $(tail -n 20 "$tmp"/*sidecar.log)"
done
echo "outbound peer memory: all checks passed"
