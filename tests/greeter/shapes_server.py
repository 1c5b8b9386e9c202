#!/usr/bin/python3
"""The shapes.Shapes test server (tests/greeter/shapes.proto): every gRPC call shape.

Appends one line per call to --calls-log: "<method> <tag>" when the call starts, and
"cancelled <method> <tag>" when the client cancels it (so a test can prove both that a
call never reached the app and that a cancellation did). Request metadata whose name
starts with "x-echo" is sent back as initial metadata; a call whose tag starts with
"md-" also logs "metadata <tag> <name,name,...>" (every request metadata name it got);
"md-forge" calls answer with an x-grpcguard-peer header and trailer of their own (an app
trying to name itself, which the sidecar must drop); "x-trailer: v" and
"x-trailer-bin" come back as trailing metadata.
"""
import argparse
import threading
import time
from concurrent import futures

import grpc

import serving
import shapes_pb2
import shapes_pb2_grpc


class Shapes(shapes_pb2_grpc.ShapesServicer):
    def __init__(self, calls_log):
        self.calls_log = calls_log
        self.lock = threading.Lock()

    def _record(self, line):
        if self.calls_log:
            with self.lock, open(self.calls_log, "a") as f:
                f.write(line + "\n")

    def _start(self, method, tag, context):
        self._record("%s %s" % (method, tag))
        if tag.startswith("md-"):
            names = sorted(k for k, _ in context.invocation_metadata())
            self._record("metadata %s %s" % (tag, ",".join(names)))
        if tag.startswith("tr-") and context.time_remaining() is not None:
            self._record("time_remaining %s %.3f" % (tag, context.time_remaining()))
        echo = [(k, v) for k, v in context.invocation_metadata() if k.startswith("x-echo")]
        forged = (("x-grpcguard-peer", "ns=evil;wl=app;sa=evil"),) if tag.startswith("md-forge") else ()
        if echo or forged:
            context.send_initial_metadata(tuple(echo) + forged)
        context.set_trailing_metadata((("x-trailer", "t-" + tag), ("x-trailer-bin", b"\x00\xffbin")) + forged)

    def _sleep(self, ms, method, tag, context):
        end = time.monotonic() + ms / 1000.0
        while time.monotonic() < end:
            if not context.is_active():
                self._record("cancelled %s %s" % (method, tag))
                return False
            time.sleep(0.01)
        return True

    def _finish(self, req, context):
        if req.status:
            context.abort(grpc.StatusCode(_code(req.status)), req.message)

    def _reply(self, req):
        if req.reply_size:
            return shapes_pb2.Msg(payload=b"r" * req.reply_size, tag=req.tag)
        return shapes_pb2.Msg(payload=req.payload, tag=req.tag)

    def Unary(self, req, context):
        self._start("Unary", req.tag, context)
        if req.sleep_ms and not self._sleep(req.sleep_ms, "Unary", req.tag, context):
            return shapes_pb2.Msg()
        self._finish(req, context)
        return self._reply(req)

    def ServerStream(self, req, context):
        self._start("ServerStream", req.tag, context)
        for i in range(req.count):
            if req.sleep_ms and not self._sleep(req.sleep_ms, "ServerStream", req.tag, context):
                return
            yield shapes_pb2.Msg(payload=(b"s" * req.reply_size) if req.reply_size else b"%d" % i,
                                 count=i, tag=req.tag)
        self._finish(req, context)

    def ClientStream(self, it, context):
        first = None
        total, n = 0, 0
        for req in it:
            if first is None:
                first = req
                self._start("ClientStream", req.tag, context)
            total += len(req.payload)
            n += 1
            if first.sleep_ms:  # a slow reader of the request stream
                time.sleep(first.sleep_ms / 1000.0)
        if first is None:
            self._start("ClientStream", "", context)
            return shapes_pb2.Msg(count=0)
        self._finish(first, context)
        return shapes_pb2.Msg(count=n, payload=b"%d" % total, tag=first.tag)

    def Bidi(self, it, context):
        started = False
        for req in it:
            if not started:
                started = True
                self._start("Bidi", req.tag, context)
            if req.sleep_ms and not self._sleep(req.sleep_ms, "Bidi", req.tag, context):
                return
            if req.status:
                self._finish(req, context)
            yield self._reply(req)


def _code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c.value
    return grpc.StatusCode.UNKNOWN.value


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--calls-log", default=None)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--max-connection-age-ms", type=int, default=0,
                    help="send GOAWAY on connections this old (gRPC MAX_CONNECTION_AGE)")
    args = ap.parse_args()

    opts = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
    if args.max_connection_age_ms:
        opts += [("grpc.max_connection_age_ms", args.max_connection_age_ms),
                 ("grpc.max_connection_age_grace_ms", 10000)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers), options=opts)
    shapes_pb2_grpc.add_ShapesServicer_to_server(Shapes(args.calls_log), server)
    addr = "%s:%d" % (args.host, args.port)
    serving.serve_until_signal(server, addr, "shapes_server", 0.5)


if __name__ == "__main__":
    main()
