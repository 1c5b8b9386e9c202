#!/usr/bin/python3
"""The helloworld.Greeter server used by the tests, the demo and the benchmarks.

A real grpcio server (Debian's python3-grpcio). Every call it receives is appended as one
line "<method> <name>" to --calls-log (if given), so a test can prove that a call denied
or held by the sidecar never reached the app. Also serves grpc.health.v1.Health.
"""
import argparse
import threading
from concurrent import futures

import grpc

import serving
import helloworld_pb2
import helloworld_pb2_grpc

try:
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # optional package
except ImportError:  # pragma: no cover
    health = None


class Greeter(helloworld_pb2_grpc.GreeterServicer):
    def __init__(self, calls_log, who):
        self.calls_log = calls_log
        self.who = who
        self.lock = threading.Lock()

    def _record(self, method, name):
        if self.calls_log:
            with self.lock, open(self.calls_log, "a") as f:
                f.write("%s %s\n" % (method, name))

    def SayHello(self, request, context):
        self._record("SayHello", request.name)
        return helloworld_pb2.HelloReply(message="Hello, %s (from %s)" % (request.name, self.who))

    def SayHelloAgain(self, request, context):
        self._record("SayHelloAgain", request.name)
        return helloworld_pb2.HelloReply(message="Hello again, %s" % request.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--calls-log", default=None)
    ap.add_argument("--name", default="server")
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    helloworld_pb2_grpc.add_GreeterServicer_to_server(Greeter(args.calls_log, args.name), server)
    if health is not None:
        hs = health.HealthServicer()
        hs.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    addr = "%s:%d" % (("[%s]" % args.host) if ":" in args.host else args.host, args.port)
    serving.serve_until_signal(server, addr, "greeter_server", 1)


if __name__ == "__main__":
    main()
