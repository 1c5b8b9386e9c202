#!/usr/bin/env bash
# make images: build the two container images the Helm chart refers to.
#
#   scripts/images.sh            build REGISTRY/grpcguard-webhook:TAG and REGISTRY/grpcguard-sidecar:TAG
#   PUSH=1 scripts/images.sh     and push them
#
# Environment: REGISTRY (default grpcguard, the chart's default), TAG (default the
# chart's appVersion), DOCKER (default docker; podman works too), PLATFORM (e.g.
# linux/amd64,linux/arm64, needs buildx).
#
# Where no container engine answers (our build machines have none), it says so and exits 1:
# nothing was built, and a pipeline that expects images must notice.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
REGISTRY=${REGISTRY:-grpcguard}
TAG=${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$root/charts/grpcguard/Chart.yaml")}
DOCKER=${DOCKER:-docker}

if ! command -v "$DOCKER" >/dev/null 2>&1; then
	echo "images: $DOCKER is not installed: no images built." >&2
	echo "images: build on a machine with a container engine: make images (or DOCKER=podman make images)" >&2
	exit 1
fi
if ! why=$(timeout 20 "$DOCKER" info 2>&1 >/dev/null); then
	echo "images: no container engine reachable through '$DOCKER' ($(echo "$why" | tail -n 1)): no images built." >&2
	echo "images: the Dockerfiles are webhook/Dockerfile and sidecar/Dockerfile (context: the repository root)." >&2
	exit 1
fi

build() { # NAME DOCKERFILE
	local image=$REGISTRY/$1:$TAG
	echo "images: building $image from $2"
	if [ -n "${PLATFORM:-}" ]; then
		"$DOCKER" buildx build --platform "$PLATFORM" -f "$root/$2" -t "$image" \
			${PUSH:+--push} "$root"
	else
		"$DOCKER" build -f "$root/$2" -t "$image" "$root"
		if [ -n "${PUSH:-}" ]; then "$DOCKER" push "$image"; fi
	fi
}
build grpcguard-webhook webhook/Dockerfile
build grpcguard-sidecar sidecar/Dockerfile
echo "images: done ($REGISTRY/grpcguard-{webhook,sidecar}:$TAG)"
