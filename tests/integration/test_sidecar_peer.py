#!/usr/bin/python3
"""Metadata exchange through the real sidecar (inbound, reporter destination): a grpcio
client sends x-grpcguard-peer by hand, as a caller's sidecar would. The app (shapes server)
never receives the header; the response names the server's workload; /metrics counts the
call with the caller's source_* labels, the server's destination_* labels and the
:authority host as destination_service. A garbage, oversized or repeated header is
ignored (labels "unknown"), counted in grpcguard_peer_metadata_invalid_total, and never
reaches a label. The header cannot influence authorization or faults: a DENY, an ALLOW and
a fault that name it in `when` / `match.headers` never match it (the sidecar strips it
before the policy sees the request). Ports 25700-25799.
"""
import os
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import Sidecar, calls_of, check, log, main, metric, start_shapes

BASE = 25700
HDR = "x-grpcguard-peer"
CLIENT = "ns=demo;wl=client;sa=client-sa"
AUTHORITY = "shapes.prod.svc.cluster.local:50051"

POLICY = """apiVersion: grpcguard.io/v1
kind: Policy
faults:
  - name: forged-chaos
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-grpcguard-peer: "ns=demo;wl=client;sa=client-sa"}
    abort: {grpcStatus: DATA_LOSS, message: "peer header reached the fault matcher", percent: 100}
authorization:
  - name: deny-by-peer-header
    action: DENY
    rules:
      - to: [{methods: ["/shapes.Shapes/Unary"]}]
        when: [{header: x-grpcguard-peer, values: ["ns=demo;wl=client;sa=client-sa"]}]
  - name: allow
    action: ALLOW
    rules:
      - to: [{methods: ["/shapes.Shapes/Unary", "/grpc.health.v1.Health/*"]}]
      - to: [{methods: ["/shapes.Shapes/ServerStream"]}]
        when: [{header: x-grpcguard-peer, values: ["ns=demo;wl=trusted;sa=trusted"]}]
"""


def unary(stub, tag, md):
    """One Unary call; returns (code, response metadata as a list of pairs)."""
    try:
        _, call = stub.Unary.with_call(pb.Msg(tag=tag), timeout=5, metadata=md)
        return grpc.StatusCode.OK, list(call.initial_metadata()) + list(call.trailing_metadata())
    except grpc.RpcError as e:
        return e.code(), list(e.initial_metadata() or []) + list(e.trailing_metadata() or [])


def seen_metadata(srv, tag):
    for line in calls_of(srv):
        parts = line.split(" ")
        if parts[0] == "metadata" and parts[1] == tag:
            return parts[2].split(",") if len(parts) > 2 else []
    return None


def test(tmp):
    # The identity the injector gives the server pod (env) and its downward-API labels.
    os.environ.update({"POD_NAME": "shapes-7d4b9c8f5-x2k9p", "POD_NAMESPACE": "prod",
                       "SERVICE_ACCOUNT": "shapes-sa"})
    labels = os.path.join(tmp, "labels")
    with open(labels, "w") as f:
        f.write('app="greeter"\npod-template-hash="7d4b9c8f5"\n')
    pol = os.path.join(tmp, "policy.yaml")
    with open(pol, "w") as f:
        f.write(POLICY)
    srv = start_shapes(BASE + 1, tmp)
    sc = Sidecar(tmp, BASE + 2, "127.0.0.1:%d" % (BASE + 1), BASE + 3,
                 extra=["--policy", pol, "--pod-labels", labels])
    ch = grpc.insecure_channel("127.0.0.1:%d" % (BASE + 2), options=[
        ("grpc.default_authority", AUTHORITY), ("grpc.enable_retries", 0),
        ("grpc.use_local_subchannel_pool", 1)])
    stub = pbg.ShapesStub(ch)
    me = (HDR, "ns=prod;wl=greeter;sa=shapes-sa")
    import json
    ident = json.loads(sc.get("/policy")[1]).get("identity")
    check(ident == {"namespace": "prod", "workload": "greeter", "serviceAccount": "shapes-sa"},
          "/policy shows the workload identity: %r" % (ident,))

    # ---- a valid claim ------------------------------------------------------------------
    for i in range(3):
        code, md = unary(stub, "md-ok%d" % i, ((HDR, CLIENT), ("x-other", "kept")))
        check(code == grpc.StatusCode.OK,
              "call %d with the peer header is neither denied nor aborted by the policy "
              "that names the header (got %s)" % (i, code))
        check(md.count(me) == 1, "the response names the server: %r" % (md,))
    seen = seen_metadata(srv, "md-ok0")
    check(seen is not None and "x-other" in seen, "the app got the call and its metadata: %r" % seen)
    check(HDR not in seen, "the app never sees %s: %r" % (HDR, seen))

    # ALLOW naming the header: a forged claim cannot satisfy it.
    try:
        list(stub.ServerStream(pb.Msg(tag="md-ss", count=1), timeout=5,
                               metadata=((HDR, "ns=demo;wl=trusted;sa=trusted"),)))
        c, md = grpc.StatusCode.OK, []
    except grpc.RpcError as e:
        c, md = e.code(), list(e.initial_metadata() or []) + list(e.trailing_metadata() or [])
    check(c == grpc.StatusCode.PERMISSION_DENIED,
          "an ALLOW matching %s in `when` is not satisfiable by the header (got %s)" % (HDR, c))
    check(me in md, "the sidecar's own (trailers-only) denial names the server too: %r" % (md,))
    check(seen_metadata(srv, "md-ss") is None, "the denied call never reached the app")

    # The app cannot name itself: its own x-grpcguard-peer (headers, trailers) is dropped.
    code, md = unary(stub, "md-forge", ((HDR, CLIENT),))
    check(code == grpc.StatusCode.OK and [kv for kv in md if kv[0] == HDR] == [me],
          "the app's own %s is dropped, only the sidecar's is sent: %r" % (HDR, md))

    # ---- no claim: nothing said back, source unknown -----------------------------------
    code, md = unary(stub, "md-none", ())
    check(code == grpc.StatusCode.OK and not [kv for kv in md if kv[0] == HDR],
          "a caller without the header gets no identity back: %r" % (md,))

    # ---- garbage, oversized, repeated -------------------------------------------------------
    bad = {"malformed": ((HDR, 'ns=demo;wl=cli"ent}{x="1;sa=a\\b'),),
           "oversized": ((HDR, "ns=demo;wl=" + "w" * 600 + ";sa=a"),),
           "repeated": ((HDR, CLIENT), (HDR, "ns=demo;wl=evil;sa=evil"))}
    for reason, md_in in bad.items():
        code, md = unary(stub, "md-" + reason, md_in)
        check(code == grpc.StatusCode.OK, "%s header: the call still works (%s)" % (reason, code))
        check(not [kv for kv in md if kv[0] == HDR], "%s header: no identity back" % reason)
        seen = seen_metadata(srv, "md-" + reason)
        check(seen is not None and HDR not in seen, "%s header: stripped before the app" % reason)

    # ---- metrics --------------------------------------------------------------------------
    time.sleep(0.2)
    text = sc.get("/metrics")[1]
    m = sc.metrics()
    want = dict(reporter="destination", source_workload="client", source_namespace="demo",
                destination_workload="greeter", destination_namespace="prod",
                destination_service="shapes.prod.svc.cluster.local",
                grpc_service="shapes.Shapes", grpc_method="Unary")
    check(metric(m, "grpcguard_requests_total", grpc_code="OK", **want) == 4,
          "requests_total counts the 4 calls with the caller's and the server's labels")
    check(metric(m, "grpcguard_request_duration_seconds_count", **want) == 4,
          "request_duration_seconds has the same labels")
    unknown = dict(want, source_workload="unknown", source_namespace="unknown")
    check(metric(m, "grpcguard_requests_total", grpc_code="OK", **unknown) == 4,
          "no header, garbage, oversized, repeated: 4 calls from source unknown")
    check(metric(m, "grpcguard_requests_total", grpc_method="ServerStream",
                 grpc_code="PERMISSION_DENIED", source_workload="trusted") == 1,
          "the denied call is counted, with its (well-formed) claim as source: telemetry "
          "labels only")
    for reason in bad:
        check(metric(m, "grpcguard_peer_metadata_invalid_total", reason=reason) == 1,
              "grpcguard_peer_metadata_invalid_total{reason=\"%s\"} == 1" % reason)
    check("evil" not in text and 'cli\\"ent' not in text and "wwww" not in text,
          "no byte of an ignored header reaches /metrics")
    check("evil" not in text, "nor of the app's forged one")
    check(metric(m, "grpcguard_authz_denied_total", policy="deny-by-peer-header") == 0,
          "the DENY naming the header never matched")
    check(metric(m, "grpcguard_faults_injected_total", fault="forged-chaos") == 0,
          "the fault matching the header never fired")
    log("metrics sample: " + next(l for l in text.splitlines()
                                  if l.startswith("grpcguard_requests_total{") and "client" in l))
    ch.close()
    rc = sc.stop()
    check(rc == 0, "sidecar exits 0 on SIGTERM (got %s)" % rc)
    srv.stop()


if __name__ == "__main__":
    main(test)
