#!/usr/bin/env bash
# Memory of one or more grpcguard-sidecar binaries, interleaved round by round. Each run
# starts the sidecar (1 worker, bench/policy-realistic.yaml) in front of nghttpd serving the
# canned SayHello reply (bench/lib.sh), asks /readyz and /metrics once and then, with
# RSS_LOAD=1, sends 100,000 requests over 8 connections x 16 streams with h2load; it prints
# VmHWM, VmRSS, RssAnon and RssFile (KiB) from /proc/PID/status. With SMAPS_DIR set, the
# first round also writes the resident KiB per mapping (>= 40 KiB) there.
#   bash bench/rss.sh [ROUNDS] BINARY...       e.g. bash bench/rss.sh 5 old/grpcguard-sidecar build/grpcguard-sidecar
#   RSS_LOAD=1 bash bench/rss.sh 3 A B
#   RSS_IDENTITY=1 bash bench/rss.sh 5 A B   each sidecar with --ca-address: a workload
#                         certificate from tests/integration/mtls_issuer.py on loopback
#                         (openssl-made CAs), measured once /readyz says it holds one
#   RSS_LOAD=1 RSS_MIX=100x1 bash bench/rss.sh 3 A B     100 connections x 1 stream instead
# Loopback only, bounded (h2load under timeout); everything is stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-5}
shift || true
[ $# -ge 1 ] || set -- build/grpcguard-sidecar
port=${RSS_PORT:-38570}
bench_init grpcguard-rss
canned_backend $((port + 1)) || { echo "rss: nghttpd did not start" >&2; exit 1; }
id_args=()
if [ "${RSS_IDENTITY:-0}" = 1 ]; then
	for ca in idca servca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
			-subj "/CN=$ca" -keyout "$work/$ca.key" -out "$work/$ca.crt" \
			-addext basicConstraints=critical,CA:TRUE >/dev/null 2>&1
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=issuer \
		-keyout "$work/iss.key" -out "$work/iss.csr" >/dev/null 2>&1
	openssl x509 -req -in "$work/iss.csr" -CA "$work/servca.crt" -CAkey "$work/servca.key" \
		-CAcreateserial -days 1 -out "$work/iss.crt" \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1\n') >/dev/null 2>&1
	printf '{"tok": {"ns": "bench", "sa": "rss"}}\n' >"$work/tokens.json"
	echo tok >"$work/token"
	/usr/bin/python3 tests/integration/mtls_issuer.py --listen 127.0.0.1:$((port + 3)) \
		--tls-cert "$work/iss.crt" --tls-key "$work/iss.key" --ca-cert "$work/idca.crt" \
		--ca-key "$work/idca.key" --tokens "$work/tokens.json" --lifetime 3600 \
		>"$work/issuer.log" 2>&1 &
	pids+=("$!")
	wait_port $((port + 3)) "$!" || { echo "rss: the stand-in issuer did not start" >&2; exit 1; }
	id_args=(--ca-address "https://127.0.0.1:$((port + 3))" --ca-cert "$work/servca.crt"
		--identity-token "$work/token")
fi
printf '%-40s %5s %7s %7s %7s %7s  %s\n' binary round VmHWM VmRSS RssAnon RssFile load
for r in $(seq 1 "$rounds"); do
	for bin in "$@"; do
		"$bin" run --listen 127.0.0.1:$port --upstream 127.0.0.1:$((port + 1)) \
			--admin 127.0.0.1:$((port + 2)) --policy bench/policy-realistic.yaml \
			--workers 1 --log-level warn "${id_args[@]}" 2>/dev/null &
		pid=$!
		pids+=("$pid")
		wait_port $port $pid || { echo "rss: $bin did not start" >&2; exit 1; }
		sleep 1
		if [ ${#id_args[@]} -gt 0 ]; then # ready = a certificate is held
			for _ in $(seq 1 100); do
				[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((port + 2))/readyz")" = 200 ] && break
				sleep 0.1
			done
		fi
		curl -s -o /dev/null "http://127.0.0.1:$((port + 2))/readyz"
		curl -s -o /dev/null "http://127.0.0.1:$((port + 2))/metrics"
		load=idle
		if [ "${RSS_LOAD:-0}" = 1 ]; then
			case ${RSS_MIX:-8x16} in
			100x1) mix=(-c 100 -m 1) ;;
			*) mix=(-c 8 -m 16) ;;
			esac
			timeout 120 h2load -t 1 -n 100000 "${mix[@]}" -d "$work/req.bin" \
				-H content-type:application/grpc -H te:trailers \
				"http://127.0.0.1:$port/helloworld.Greeter/SayHello" >"$work/h2.out" 2>&1 || true
			load="${RSS_MIX:-8x16} $(grep -o '[0-9]* succeeded' "$work/h2.out" | head -n1)"
		fi
		sleep 1
		awk -v b="$bin" -v r="$r" -v l="$load" '/^VmHWM|^VmRSS|^RssAnon|^RssFile/{v[$1]=$2}
		  END{printf "%-40s %5s %7s %7s %7s %7s  %s\n", b, r, v["VmHWM:"], v["VmRSS:"], v["RssAnon:"], v["RssFile:"], l}' \
			/proc/$pid/status
		if [ -n "${SMAPS_DIR:-}" ] && [ "$r" = 1 ]; then
			mkdir -p "$SMAPS_DIR"
			awk '/^[0-9a-f]+-/{f=$6} /^Rss:/{k[f]+=$2} END{for(m in k) if(k[m]>=40) printf "%6d %s\n", k[m], m}' \
				/proc/$pid/smaps | sort -rn >"$SMAPS_DIR/$(echo "$bin" | tr / _).txt"
		fi
		kill "$pid"
		wait "$pid" 2>/dev/null || true
	done
done
