#!/usr/bin/env bash
# Idle memory of one or more grpcguard-sidecar binaries, interleaved: each run starts the
# sidecar (1 worker, bench/policy-realistic.yaml, a fixed upstream that accepts), waits,
# asks /readyz and /metrics once, waits again, then prints VmRSS, RssAnon and RssFile (KiB)
# from /proc/PID/status; with SMAPS_DIR set, also the resident KiB per mapping (>= 40 KiB).
#   bash bench/idle_rss.sh [ROUNDS] BINARY...      e.g. bash bench/idle_rss.sh 5 old/sidecar build/grpcguard-sidecar
# Loopback only; everything it starts is stopped by PID, also on failure.
set -u
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
[ $# -ge 1 ] || set -- build/grpcguard-sidecar
base=${IDLE_RSS_PORT:-38550}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; }
trap cleanup EXIT
/usr/bin/python3 -c 'import socket,sys,time
s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(("127.0.0.1",int(sys.argv[1])));s.listen(8);time.sleep(3600)' $((base + 1)) &
pids+=($!)
sleep 0.3
printf '%-40s %6s %8s %8s %8s\n' binary round VmRSS RssAnon RssFile
for r in $(seq 1 "$rounds"); do
  for bin in "$@"; do
    "$bin" run --listen 127.0.0.1:$base --upstream 127.0.0.1:$((base + 1)) \
      --admin 127.0.0.1:$((base + 2)) --policy bench/policy-realistic.yaml --workers 1 \
      --log-level warn 2>/dev/null &
    pid=$!
    pids+=($pid)
    sleep 1.5
    curl -s -o /dev/null "http://127.0.0.1:$((base + 2))/readyz"
    curl -s -o /dev/null "http://127.0.0.1:$((base + 2))/metrics"
    sleep 1
    awk -v b="$bin" -v r="$r" '/^VmRSS|^RssAnon|^RssFile/{v[$1]=$2}
      END{printf "%-40s %6s %8s %8s %8s\n", b, r, v["VmRSS:"], v["RssAnon:"], v["RssFile:"]}' \
      /proc/$pid/status
    if [ -n "${SMAPS_DIR:-}" ] && [ "$r" = 1 ]; then
      mkdir -p "$SMAPS_DIR"
      awk '/^[0-9a-f]+-/{f=$6} /^Rss:/{k[f]+=$2} END{for(m in k) if(k[m]>=40) printf "%6d %s\n", k[m], m}' \
        /proc/$pid/smaps | sort -rn >"$SMAPS_DIR/$(echo "$bin" | tr / _).txt"
    fi
    kill $pid; wait $pid 2>/dev/null
  done
done
