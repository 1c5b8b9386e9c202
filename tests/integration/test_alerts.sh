#!/usr/bin/env bash
# Prometheus' own promtool on what the chart ships: the alerting rules
# (charts/grpcguard/alerts/grpcguard.rules.yaml) pass `promtool check rules` and their unit
# tests (tests/alerts/grpcguard.rules.test.yaml, one per alert) pass `promtool test rules`;
# every PromQL expression of the Grafana dashboard parses (tests/alerts/dashboard_promql.py
# turns them into recording rules for `promtool check rules`), and the parse can fail.
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
PYTHON=${PYTHON:-/usr/bin/python3}
command -v promtool >/dev/null || { echo "FAIL: promtool is missing (make deps installs Debian's prometheus)"; exit 1; }
work=$(mktemp -d /tmp/gg-alerts.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
step() { # NAME CMD...
	local name=$1
	shift
	if "$@" >"$work/out" 2>&1; then
		echo "ok   $name"
	else
		echo "FAIL $name:"
		sed 's/^/    /' "$work/out"
		fail=1
	fi
}
rules=$root/charts/grpcguard/alerts/grpcguard.rules.yaml
step "promtool check rules (alerts)" promtool check rules "$rules"
step "promtool test rules (one test per alert)" promtool test rules "$root/tests/alerts/grpcguard.rules.test.yaml"
# Each alert of the rules file has a test that expects it to fire.
for a in $(sed -n 's/^ *- alert: *//p' "$rules"); do
	grep -q "alertname: $a\$" "$root/tests/alerts/grpcguard.rules.test.yaml" &&
		awk -v a="$a" '$0 ~ "alertname: "a"$" {s=1; next} s && /exp_alerts: *\[\]/ {s=0} s && /exp_labels/ {f=1} END {exit !f}' \
			"$root/tests/alerts/grpcguard.rules.test.yaml" ||
		{ echo "FAIL alert $a has no promtool test where it fires"; fail=1; }
done
dash=$root/charts/grpcguard/dashboards/grpcguard.json
step "dashboard expressions extracted" "$PYTHON" "$root/tests/alerts/dashboard_promql.py" "$dash" "$work/dashboard.rules.yaml"
step "promtool parses every dashboard expression" promtool check rules "$work/dashboard.rules.yaml"
# The parse check can fail: a broken expression is caught.
"$PYTHON" - "$dash" "$work/broken.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
def first(node):
    for p in node.get("panels", []):
        for t in p.get("targets", []):
            if t.get("expr"):
                return t
        r = first(p)
        if r:
            return r
first(d)["expr"] += " by (("
json.dump(d, open(sys.argv[2], "w"))
PY
"$PYTHON" "$root/tests/alerts/dashboard_promql.py" "$work/broken.json" "$work/broken.rules.yaml" >/dev/null
if promtool check rules "$work/broken.rules.yaml" >/dev/null 2>&1; then
	echo "FAIL promtool accepted a broken dashboard expression"
	fail=1
else
	echo "ok   a broken dashboard expression is rejected"
fi
exit $fail
