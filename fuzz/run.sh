#!/usr/bin/env bash
# Build every libFuzzer target (fuzz/*.c except replay_main.c) with clang and run each for
# SECONDS seconds. Usage: fuzz/run.sh [SECONDS] [TARGET...]   (make fuzz FUZZ_SECONDS=N)
#
# Each target is linked with the policy and common libraries and with every source of the
# webhook and the sidecar except their main.c, so any part's target builds the same way;
# graph/model.c (jansson only) too, for grpcguard-graph's target.
# Work happens in build/fuzz/: objects, binaries, a writable corpus per target (seeded
# from fuzz/corpus/<target>/, which is never written), crash artifacts in
# build/fuzz/crashes/. A dictionary fuzz/<target>.dict is used when present.
# Exit status: 0 when every target built and ran clean, 1 otherwise.
set -u
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
out=build/fuzz
CC=${FUZZ_CC:-clang}
PKGS="libmicrohttpd jansson yaml-0.1 openssl libnghttp2 libuv"
FLAGS="-std=c17 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -DGG_TESTING -I. $(pkg-config --cflags $PKGS)"
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
LIBS="$(pkg-config --libs $PKGS libcurl) -l:libhttp_parser.a -lpthread -lm"

if ! command -v "$CC" >/dev/null; then
  echo "fuzz: $CC not found (make deps installs clang)" >&2
  exit 1
fi
mkdir -p "$out/obj" "$out/crashes"

# Library and program sources, compiled once with coverage instrumentation
# (-fsanitize=fuzzer-no-link) so every target links the same objects.
srcs=()
for f in policy/*.c common/*.c webhook/*.c sidecar/*.c graph/model.c; do
  [ -e "$f" ] || continue
  case "$f" in */main.c) continue ;; esac
  srcs+=("$f")
done
objs=()
fail=0
for f in "${srcs[@]}"; do
  o="$out/obj/${f%.c}.o"
  mkdir -p "$(dirname "$o")"
  if [ ! -e "$o" ] || [ "$f" -nt "$o" ] || [ -n "$(find policy common webhook sidecar graph -name '*.h' -newer "$o" 2>/dev/null | head -n1)" ]; then
    if ! $CC $FLAGS -fsanitize=fuzzer-no-link,address,undefined -c "$f" -o "$o"; then
      echo "fuzz: cannot compile $f; targets needing it will not link" >&2
      rm -f "$o"
      continue
    fi
  fi
  objs+=("$o")
done

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/*.c; do
    n=$(basename "$f" .c)
    [ "$n" = replay_main ] && continue
    targets+=("$n")
  done
fi

printf '%-16s %10s %8s %8s %8s  %s\n' target execs exec/s cov ft result
for n in "${targets[@]}"; do
  bin="$out/$n"
  if ! $CC $FLAGS $SAN "fuzz/$n.c" "${objs[@]}" $LIBS -o "$bin" 2>"$out/$n.build.log"; then
    echo "fuzz: $n does not build:" >&2
    tail -n 20 "$out/$n.build.log" >&2
    fail=1
    continue
  fi
  mkdir -p "$out/corpus/$n"
  seeds=()
  [ -d "fuzz/corpus/$n" ] && seeds+=("fuzz/corpus/$n")
  dict=()
  [ -f "fuzz/$n.dict" ] && dict=(-dict="fuzz/$n.dict")
  log="$out/$n.log"
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$n-" "${dict[@]}" "$out/corpus/$n" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
  if [ $rc -eq 0 ]; then result=ok; else result="FAILED (exit $rc, see $log)"; fail=1; fi
  printf '%-16s %10s %8s %8s %8s  %s\n' "$n" "${execs:--}" "${rate:--}" "${cov:--}" "${ft:--}" "$result"
  if [ $rc -ne 0 ]; then
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 5 | sed 's/^/    /'
  fi
done
exit $fail
