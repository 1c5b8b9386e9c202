#!/usr/bin/env bash
# The Helm chart, rendered by the real Helm 3.17.1 (build/tools/bin/helm, fetched by
# make deps) and checked by tests/chart/test_chart.py: `helm lint --strict` and
# `helm template` for every values combination, documents, labels, selectors,
# certificates (openssl), the three certificate modes, lookup on upgrade (a fake API
# server), immutable fields across renders, the webhook config file, values.schema.json,
# and deploy/ matching `make manifests`. Then every rendered object and deploy/*.yaml is
# validated against the Kubernetes schemas (tests/schema/validate.mjs, kubernetes-models).
set -u
root=${GG_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
PYTHON=${PYTHON:-/usr/bin/python3}
helm=${GG_HELM:-$root/build/tools/bin/helm}
[ -x "$helm" ] || { echo "FAIL: $helm is missing (make deps runs scripts/tools.sh)"; exit 1; }
command -v node >/dev/null || { echo "FAIL: node is missing (make deps installs nodejs)"; exit 1; }
echo "$("$helm" version --short) $("$root/build/tools/bin/kubectl" version --client 2>/dev/null | head -n 1)"
work=$(mktemp -d /tmp/gg-chart.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/renders"
GG_SCHEMA_DIR=$work/renders timeout 900 "$PYTHON" "$root/tests/chart/test_chart.py" || exit 1
n=$(ls "$work/renders" | wc -l)
[ "$n" -ge 48 ] || { echo "FAIL: only $n renders were written for the schema check"; exit 1; }
# deploy/grpcguard.yaml as a kubectl user applies it: the CA placeholder filled in.
ca=$(printf '%s\n' "-----BEGIN CERTIFICATE-----" "MIIB" "-----END CERTIFICATE-----" | base64 -w0)
sed "s/\${GRPCGUARD_CA_BUNDLE}/$ca/" "$root/deploy/grpcguard.yaml" >"$work/renders/deploy-grpcguard.yaml"
cp "$root/deploy/grpcguard-cert-manager.yaml" "$work/renders/deploy-grpcguard-cert-manager.yaml"
node "$root/tests/schema/validate.mjs" "$work/renders" || { echo "FAIL: schema validation"; exit 1; }
# The schema check can fail: a rendered Deployment made invalid is caught, with its path.
"$PYTHON" - "$work/renders/deploy-grpcguard.yaml" "$work/bad.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
dep = [d for d in docs if d["kind"] == "Deployment"][0]
dep["spec"]["template"]["spec"]["containers"][0]["restartPolicy"] = "Always"
dep["spec"]["replicas"] = "two"
dep["spec"]["template"]["spec"]["initContainers"] = [{"name": "grpcguard-proxy", "image": "x",
                                                     "restartPolicy": "Never"}]
dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
yaml.safe_dump(dep, open(sys.argv[2], "w"))
PY
out=$(node "$root/tests/schema/validate.mjs" "$work/bad.yaml")
for want in ".spec.replicas: must be integer" \
	".spec.template.spec.containers[0].restartPolicy: Forbidden" \
	".spec.template.spec.initContainers[0].restartPolicy: Unsupported value: \"Never\"" \
	".spec.template.spec.containers[0].imagePullPolicyy: unknown field"; do
	case "$out" in
	*"Deployment grpcguard-system/grpcguard-webhook $want"*) ;;
	*) echo "FAIL: the validator missed '$want':"; echo "$out"; exit 1 ;;
	esac
done
echo "schema: a broken Deployment is rejected with its JSON paths (type, native-sidecar rules, unknown field)"
