#!/usr/bin/env bash
# Runs every integration test: tests/integration/test_*.sh and test_*.py.
# Each test is a program: exit 0 = pass, 77 = skipped (it prints why), anything else = fail.
# Environment given to tests:
#   GG_BIN      directory holding the built programs (build/ or build/sanitize/)
#   PYTHON      Debian's python3 (with grpcio, protobuf, jsonpatch, yaml)
#   GG_VALGRIND 1 when the programs should run under valgrind (tests use tests/lib/run-prog)
#   GG_SANITIZE 1 in the sanitizer build
# Select tests with TESTS="name1 name2" (file names without directory).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export GG_BIN=${GG_BIN:-$root/build} PYTHON=${PYTHON:-/usr/bin/python3} GG_ROOT=$root
export PYTHONPATH="$root/tests/lib/py:$root/tests/greeter:$root/build/py${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
pass=0 fail=0 skip=0 failed=()
tests=()
if [ -n "${TESTS:-}" ]; then
  for t in $TESTS; do tests+=("$here/$t"); done
else
  for t in "$here"/test_*.sh "$here"/test_*.py; do [ -e "$t" ] && tests+=("$t"); done
fi
for t in "${tests[@]}"; do
  name=$(basename "$t")
  log=$(mktemp /tmp/gg-it.XXXXXX)
  start=$(date +%s)
  case "$t" in
    *.py) timeout 600 "$PYTHON" "$t" >"$log" 2>&1; rc=$? ;;
    *)    timeout 600 bash "$t" >"$log" 2>&1; rc=$? ;;
  esac
  secs=$(( $(date +%s) - start ))
  if [ $rc -eq 0 ]; then
    pass=$((pass+1)); echo "PASS  $name (${secs}s)"
  elif [ $rc -eq 77 ]; then
    skip=$((skip+1)); echo "SKIP  $name: $(tail -n 1 "$log")"
  else
    fail=$((fail+1)); failed+=("$name"); echo "FAIL  $name (exit $rc, ${secs}s)"
    sed 's/^/    | /' "$log" | tail -n 60
  fi
  rm -f "$log"
done
echo "integration: ${pass} passed, ${fail} failed, ${skip} skipped"
[ $fail -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
