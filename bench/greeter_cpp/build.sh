#!/usr/bin/env bash
# Build the C++ greeter (bench backend) into $1 (default build/bench/greeter_cpp).
# Uses Debian's protoc, grpc_cpp_plugin and libgrpc++; rebuilds only when a source changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/build/bench/greeter_cpp}
mkdir -p "$out"
bin=$out/greeter_server
src=$root/bench/greeter_cpp/greeter_server.cc
proto=$root/tests/greeter/helloworld.proto
if [ -x "$bin" ] && [ "$bin" -nt "$src" ] && [ "$bin" -nt "$proto" ]; then exit 0; fi
protoc -I"$root/tests/greeter" --cpp_out="$out" --grpc_out="$out" \
  --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" "$proto"
# shellcheck disable=SC2046
g++ -std=c++17 -O2 -g -I"$out" -o "$bin.tmp" "$src" "$out/helloworld.pb.cc" \
  "$out/helloworld.grpc.pb.cc" $(pkg-config --cflags --libs grpc++ protobuf) -lpthread
mv "$bin.tmp" "$bin"
