# bench/lib.sh: shell pieces the benchmark scripts share. Sourced (". bench/lib.sh") by a
# script that has run `set -euo pipefail`; runs nothing by itself.
#
#   bench_init NAME       work=$(mktemp -d /tmp/NAME.XXXXXX) and pids=(); on exit every PID
#                         in pids is killed and waited for and $work removed; INT/TERM exit 130
#   wait_port PORT PID    0 once 127.0.0.1:PORT accepts, 1 when PID has died or after 10 s
#   port_busy PORT        0 (and a message on stderr) when something already accepts on
#                         127.0.0.1:PORT: call it before starting a server there, or
#                         wait_port would take another program (another bench script
#                         running at the same time) for it
#   canned_inputs         $work/req.bin: a gRPC-framed HelloRequest (h2load's body), and
#                         $work/htdocs: the canned SayHello reply nghttpd serves
#   canned_backend PORT [WRAPPER...]
#                         canned_inputs, then nghttpd (run under WRAPPER, e.g. taskset -c 0)
#                         serving the canned reply with grpc-status 0 on 127.0.0.1:PORT, its
#                         output in $work/nghttpd.log; bpid is its PID (also in pids); the
#                         status of wait_port (1 without starting it when PORT is busy)
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

port_busy() {
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		echo "bench: 127.0.0.1:$1 is already in use by another program (another benchmark running?): not measuring against it" >&2
		return 0
	fi
	return 1
}

# The request: a 5-byte prefix (uncompressed, length 7) + HelloRequest{name: "world"}.
# The reply: prefix + HelloReply{message: "Hello world"}; grpc-status 0 comes from nghttpd's
# --trailer. nghttpd derives content-type from a file extension and a gRPC path has none,
# so the reply carries no content-type (h2load and the proxies do not care; the C++
# greeter backend is the fully faithful one).
canned_inputs() {
	printf '\x00\x00\x00\x00\x07\x0a\x05world' >"$work/req.bin"
	mkdir -p "$work/htdocs/helloworld.Greeter"
	printf '\x00\x00\x00\x00\x0d\x0a\x0bHello world' >"$work/htdocs/helloworld.Greeter/SayHello"
}

canned_backend() {
	local port=$1
	shift
	canned_inputs
	! port_busy "$port" || return 1
	"$@" nghttpd --no-tls -a 127.0.0.1 -d "$work/htdocs" --trailer 'grpc-status: 0' \
		"$port" >"$work/nghttpd.log" 2>&1 &
	bpid=$!
	pids+=("$bpid")
	wait_port "$port" "$bpid"
}
