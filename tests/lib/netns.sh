# shellcheck shell=bash
# Shared pieces of the network-namespace integration tests (tests/integration/test_*.sh).
# Source it after setting root, GG_BIN and PYTHON:
#
#   . "$root/tests/lib/netns.sh"
#
# Beside the defaults below (GG_BIN, PYTHON, no .pyc files) it defines only functions. A test
# may redefine any of them after sourcing (test_mtls.sh's die, for one, prints the logs first).

GG_BIN=${GG_BIN:-$root/build}
PYTHON=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAIL: $*"; exit 1; }

# netns_need_tools TOOL...: skip (77) unless we are root and every TOOL is on PATH.
netns_need_tools() {
	local tool
	[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces and iptables rules"
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
	done
}
# netns_require TOOL...: netns_need_tools, then fail when the sidecar is not built.
netns_require() {
	netns_need_tools "$@"
	[ -x "$GG_BIN/grpcguard-sidecar" ] || die "$GG_BIN/grpcguard-sidecar is not built"
}

stop_pid() { # PID: TERM, then KILL after 5 s
	local pid=$1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 0
}

# netns_teardown NS...: for the cleanup trap. Anything still inside our namespaces was
# started by this test (they are ours alone, named after our pid): stop it by pid, then
# delete the namespaces (which takes their veth ends with them).
netns_teardown() {
	local ns pid
	for ns in "$@"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for ns in "$@"; do
		ip netns del "$ns" 2>/dev/null
	done
	return 0
}

# netns_pair NS_A NS_B VETH_A VETH_B IP4_A IP4_B: two new namespaces joined by a veth pair,
# lo up in both, IP4_A/24 and IP4_B/24 on the veth ends. The links are left down so that a
# test can add IPv6 addresses (nodad) first; netns_pair_up brings them up. Skips (77) when
# the machine forbids network namespaces; fails on any later step.
netns_pair() {
	local err
	err=$(ip netns add "$1" 2>&1) || skip "cannot create a network namespace: $err"
	ip netns add "$2" || die "ip netns add $2"
	ip link add "$3" type veth peer name "$4" || die "cannot create a veth pair"
	ip link set "$3" netns "$1" && ip link set "$4" netns "$2" || die "veth move"
	ip netns exec "$1" ip link set lo up && ip netns exec "$2" ip link set lo up || die "lo up"
	ip netns exec "$1" ip addr add "$5/24" dev "$3" &&
		ip netns exec "$2" ip addr add "$6/24" dev "$4" || die "IPv4 addresses"
}
netns_pair_up() { # NS_A NS_B VETH_A VETH_B
	ip netns exec "$1" ip link set "$3" up && ip netns exec "$2" ip link set "$4" up ||
		die "veth up"
}

# netns_need_nat NS: skip (77) unless iptables' nat table works inside NS.
netns_need_nat() {
	local err
	err=$(ip netns exec "$1" iptables-save -t nat 2>&1) ||
		skip "iptables does not work in a network namespace here: $err"
}

# greeter_stubs [DIR...]: PYTHONPATH for the greeter stubs (after the DIRs), from build/py
# (`make py`) or generated into $tmp/py.
greeter_stubs() {
	local dir pre=
	for dir in "$@"; do pre+="$dir:"; done
	export PYTHONPATH="$pre$root/tests/greeter:$root/build/py${PYTHONPATH:+:$PYTHONPATH}"
	if ! "$PYTHON" -c 'import helloworld_pb2_grpc' 2>/dev/null; then
		mkdir -p "$tmp/py"
		"$PYTHON" -m grpc_tools.protoc -I"$root/tests/greeter" --python_out="$tmp/py" \
			--grpc_python_out="$tmp/py" "$root/tests/greeter/helloworld.proto" || die "protoc"
		export PYTHONPATH="$tmp/py:$PYTHONPATH"
	fi
}

port_open() { # NS HOST PORT: a TCP connect from NS succeeds
	ip netns exec "$1" bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null
}
wait_until() { # SECONDS CMD...: poll every 0.2 s
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ $SECONDS -lt $end ] || return 1
		sleep 0.2
	done
}

ns_metrics() { # NS: the sidecar's Prometheus text from inside NS
	ip netns exec "$1" curl -sS --max-time 5 http://127.0.0.1:15020/metrics
}
# series_sum REGEX < metrics: the sum of every sample whose name{labels} matches REGEX.
series_sum() {
	awk -v re="$1" '!/^#/ && $1 ~ re { s += $NF } END { printf "%d\n", s }'
}

# bg NS LOGNAME CMD...: start CMD in NS with its output in $tmp/LOGNAME.log; its pid is
# appended to the test's array pids (the cleanup trap stops each with stop_pid). A function
# run with & would fork a subshell; `ip netns exec` execs, so $! is the program's pid.
bg() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$ns" "$@" >"$tmp/$log.log" 2>&1 &
	pids+=($!)
}
logged() { grep -c " $2\$" "$tmp/$1.calls" 2>/dev/null || true; } # POD NAME: calls the app logged
readyz() { # NS: the HTTP status of the sidecar's /readyz inside NS
	ip netns exec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 2 http://127.0.0.1:15020/readyz
}

# netns_add NS...: new namespaces with lo up. Skips (77) when the machine forbids network
# namespaces (the first one fails), fails on a later one.
netns_add() {
	local err ns
	err=$(ip netns add "$1" 2>&1) || skip "cannot create a network namespace: $err"
	for ns in "${@:2}"; do ip netns add "$ns" || die "ip netns add $ns"; done
	for ns in "$@"; do ip netns exec "$ns" ip link set lo up || die "lo up in $ns"; done
}
# netns_link NS_A NS_B VETH_A VETH_B IP4_A IP4_B: a veth pair between two existing
# namespaces, IP4_A/24 and IP4_B/24 on its ends, both up.
netns_link() {
	ip link add "$3" type veth peer name "$4" || die "cannot create a veth pair $3-$4"
	ip link set "$3" netns "$1" && ip link set "$4" netns "$2" || die "veth move $3-$4"
	ip -n "$1" addr add "$5/24" dev "$3" && ip -n "$2" addr add "$6/24" dev "$4" ||
		die "addresses on $3-$4"
	ip -n "$1" link set "$3" up && ip -n "$2" link set "$4" up || die "veth up $3-$4"
}

# term_wait PID [TENTHS]: SIGTERM, up to TENTHS tenths of a second (default 100) for PID to
# exit, then `wait` for it; returns its exit status.
term_wait() {
	local pid=$1 n=${2:-100}
	kill -TERM "$pid"
	for _ in $(seq "$n"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	wait "$pid"
}
# sanitizer_clean: fail when a log in $tmp holds an ASan/UBSan report (GG_SANITIZE=1 builds).
sanitizer_clean() {
	local bad
	bad=$(grep -l -E 'Sanitizer|runtime error:' "$tmp"/*.log 2>/dev/null)
	[ -z "$bad" ] || die "sanitizer reports in: $bad: $(grep -h -A5 -E 'Sanitizer|runtime error:' $bad | head -n 20)"
}

# call_code NS TARGET NAME [client args]: one SayHello (5 s deadline) from NS; prints its
# status code name, or NO_REPLY. The client's output is kept in $tmp/last_call.
call_code() {
	local ns=$1 target=$2 name=$3
	shift 3
	ip netns exec "$ns" "$PYTHON" "$root/tests/greeter/greeter_client.py" --target "$target" \
		--deadline 5 --name "$name" --json "$@" 2>&1 | tee "$tmp/last_call" | tail -n 1 |
		"$PYTHON" -c 'import json,sys
try: print(json.loads(sys.stdin.read())["code"])
except Exception: print("NO_REPLY")'
}
expect_code() { # CODE NS TARGET NAME [args]: call_code, failing the test on another code
	local want=$1 got
	shift
	got=$(call_code "$@")
	[ "$got" = "$want" ] || die "call $3 from $1 to $2: got $got, want $want: $(tail -c 600 "$tmp/last_call")"
	echo "  call $3 -> $got"
}

# netns_hosts NS LINE...: /etc/netns/NS/hosts (what `ip netns exec NS` shows as /etc/hosts):
# localhost, then each LINE. The test's cleanup removes /etc/netns/NS.
netns_hosts() {
	local ns=$1
	shift
	mkdir -p "/etc/netns/$ns" || die "mkdir /etc/netns/$ns"
	printf '%s\n' "127.0.0.1 localhost" "$@" >"/etc/netns/$ns/hosts" || die "/etc/netns/$ns/hosts"
}
# wait_ready NS PID LOG: up to 15 s for the sidecar PID in NS to answer /readyz with 200;
# fails the test, with the end of LOG, when it exits or the time is up.
wait_ready() {
	local end=$((SECONDS + 15))
	until [ "$(readyz "$1")" = 200 ]; do
		kill -0 "$2" 2>/dev/null && [ $SECONDS -lt $end ] ||
			die "the sidecar did not become ready: $(tail -n 20 "$3")"
		sleep 0.2
	done
}

# call_ms NS TARGET DEADLINE NAME [client args]: one SayHello from NS. Prints "CODE MS", or
# "NO_REPLY 0 <the client's last line>".
call_ms() {
	local ns=$1 target=$2 deadline=$3 name=$4 out
	shift 4
	out=$(ip netns exec "$ns" "$PYTHON" "$root/tests/greeter/greeter_client.py" --target "$target" \
		--deadline "$deadline" --name "$name" --json "$@" 2>&1 | tail -n 1)
	"$PYTHON" -c 'import json,sys
try:
    d = json.loads(sys.argv[1]); print(d["code"], int(d["ms"]))
except Exception:
    print("NO_REPLY 0", sys.argv[1][:200].replace("\n", " "))' "$out"
}
