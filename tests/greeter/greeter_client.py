#!/usr/bin/python3
"""A helloworld.Greeter client: calls SayHello (or --method) and prints one line per call.

    call 3: OK 2.1 ms "Hello, demo (from server)"
    call 4: DEADLINE_EXCEEDED 5001.3 ms "Deadline Exceeded"

--count 0 calls forever (every --interval seconds). --json prints one JSON object per
call instead ({"n", "code", "ms", "message"}). Exit status: 0 when every call ended with
--expect (default OK), 1 otherwise.
"""
import argparse
import json
import sys
import time

import grpc

import helloworld_pb2
import helloworld_pb2_grpc


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--target", default="127.0.0.1:8080")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--deadline", type=float, default=5.0, help="seconds")
    ap.add_argument("--name", default="world")
    ap.add_argument("--method", default="SayHello", choices=["SayHello", "SayHelloAgain"])
    ap.add_argument("--metadata", action="append", default=[], help="key=value")
    ap.add_argument("--expect", default="OK")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    md = [tuple(kv.split("=", 1)) for kv in args.metadata]
    channel = grpc.insecure_channel(args.target)
    stub = helloworld_pb2_grpc.GreeterStub(channel)
    rpc = getattr(stub, args.method)
    all_expected = True
    n = 0
    try:
        while args.count == 0 or n < args.count:
            n += 1
            t0 = time.monotonic()
            try:
                reply = rpc(helloworld_pb2.HelloRequest(name=args.name), timeout=args.deadline,
                            metadata=md or None)
                code, msg = "OK", reply.message
            except grpc.RpcError as e:
                code, msg = e.code().name, e.details() or ""
            ms = (time.monotonic() - t0) * 1000.0
            if args.json:
                print(json.dumps({"n": n, "code": code, "ms": round(ms, 2), "message": msg}),
                      flush=True)
            else:
                print('call %d: %s %.1f ms "%s"' % (n, code, ms, msg), flush=True)
            all_expected &= code == args.expect
            if args.interval and (args.count == 0 or n < args.count):
                time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        channel.close()
    sys.exit(0 if all_expected else 1)


if __name__ == "__main__":
    main()
