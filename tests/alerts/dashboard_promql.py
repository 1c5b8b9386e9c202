#!/usr/bin/python3
"""Every PromQL expression of a Grafana dashboard, parsed by Prometheus' own parser.

    dashboard_promql.py DASHBOARD.json OUT.rules.yaml

Collects each panel target's "expr" (nested rows included) and the selector inside each
query variable's label_values(...), replaces Grafana's variables by what Grafana sends
($__rate_interval and friends by a duration, a multi-value variable by the regex ".*",
$__all likewise), and writes them as recording rules (record: gg_dashboard_<panel id>_<ref>)
to OUT for `promtool check rules`, which parses every one. Exit 1 with the panel's title
when a target has no expression or a variable is unknown (the parser would then see
"$name" and fail with a less helpful message).
"""
import json
import re
import sys

import yaml

DURATIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
             "${__rate_interval}": "5m", "${__interval}": "1m", "${__range}": "1h"}
# label_values(metric{...}, label) / label_values(label): the selector is PromQL.
LABEL_VALUES = re.compile(r"^label_values\((?:(.*),\s*)?([A-Za-z_][A-Za-z0-9_]*)\)$")


def panels(node):
    for p in node.get("panels", []) or []:
        yield p
        yield from panels(p)
    for row in node.get("rows", []) or []:
        yield from panels(row)


def substitute(expr, variables):
    for k, v in DURATIONS.items():
        expr = expr.replace(k, v)
    for name in variables:
        expr = expr.replace("${%s}" % name, ".*").replace("$" + name, ".*")
    left = re.findall(r"\$\{?[A-Za-z_]\w*", expr)
    return expr, left


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        dash = json.load(f)
    variables = [v["name"] for v in (dash.get("templating") or {}).get("list", [])]
    rules, errors = [], []
    for v in (dash.get("templating") or {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = LABEL_VALUES.match((q or "").strip())
        if not m:
            errors.append("variable %s: query %r is not label_values(...)" % (v["name"], q))
            continue
        if m.group(1):
            expr, left = substitute(m.group(1), variables)
            if left:
                errors.append("variable %s: unknown variable %s" % (v["name"], ", ".join(left)))
            rules.append({"record": "gg_dashboard_variable_%s" % v["name"], "expr": expr})
    count = 0
    for p in panels(dash):
        for t in p.get("targets", []) or []:
            where = "panel %r (id %s) target %s" % (p.get("title"), p.get("id"), t.get("refId"))
            expr = t.get("expr")
            if not expr or not expr.strip():
                errors.append(where + ": no expr")
                continue
            expr, left = substitute(expr, variables)
            if left:
                errors.append("%s: unknown variable %s" % (where, ", ".join(left)))
            rules.append({"record": "gg_dashboard_%s_%s" % (p.get("id"), t.get("refId", count)),
                          "expr": expr})
            count += 1
    if count == 0:
        errors.append("no panel target with an expr: is this a Grafana dashboard?")
    for e in errors:
        print("FAIL %s: %s" % (argv[1], e))
    with open(argv[2], "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f, width=1000)
    print("dashboard: %d panel expressions, %d variable selectors written to %s"
          % (count, len(rules) - count, argv[2]))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
