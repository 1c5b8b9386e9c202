#!/usr/bin/env bash
# The Helm chart, rendered like `helm template` (tests/chart/render.go, built with Debian's
# golang-go + sprig) and checked by tests/chart/test_chart.py: documents, labels,
# selectors, certificates (openssl), the three certificate modes, the webhook config file,
# values.schema.json, and deploy/ matching `make manifests`.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
PYTHON=${PYTHON:-/usr/bin/python3}
command -v go >/dev/null || { echo "FAIL: go is not installed (make deps installs golang-go)"; exit 1; }
unformatted=$(gofmt -l "$root/tests/chart/render.go")
[ -z "$unformatted" ] || { echo "FAIL: gofmt -w tests/chart/render.go"; exit 1; }
exec timeout 500 "$PYTHON" "$root/tests/chart/test_chart.py"
