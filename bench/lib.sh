# bench/lib.sh: shell pieces the benchmark scripts share. Sourced (". bench/lib.sh") by a
# script that has run `set -euo pipefail`; runs nothing by itself.
#
#   bench_init NAME       work=$(mktemp -d /tmp/NAME.XXXXXX) and pids=(); on exit every PID
#                         in pids is killed and waited for and $work removed; INT/TERM exit 130
#   wait_port PORT PID    0 once 127.0.0.1:PORT accepts, 1 when PID has died or after 10 s
#   canned_backend PORT [WRAPPER...]
#                         $work/req.bin: a gRPC-framed HelloRequest; nghttpd (run under
#                         WRAPPER, e.g. taskset -c 0) serving the canned SayHello reply with
#                         grpc-status 0 on 127.0.0.1:PORT; bpid is its PID (also in pids)
# shellcheck shell=bash

bench_cleanup() {
	local p
	for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}

bench_init() {
	work=$(mktemp -d "/tmp/$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

wait_port() {
	local i
	for ((i = 0; i < 200; i++)); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

canned_backend() {
	local port=$1
	shift
	printf '\x00\x00\x00\x00\x07\x0a\x05world' >"$work/req.bin"
	mkdir -p "$work/htdocs/helloworld.Greeter"
	printf '\x00\x00\x00\x00\x0d\x0a\x0bHello world' >"$work/htdocs/helloworld.Greeter/SayHello"
	"$@" nghttpd --no-tls -a 127.0.0.1 -d "$work/htdocs" --trailer 'grpc-status: 0' \
		"$port" >/dev/null 2>&1 &
	bpid=$!
	pids+=("$bpid")
	wait_port "$port" "$bpid"
}
