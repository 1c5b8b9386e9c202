#!/usr/bin/python3
"""Issue 16, the policy side, through the real binaries: `grpcguard-sidecar check` knows
`from.principals/notPrincipals/namespaces/notNamespaces` and `mtls: {mode}` (summary and
file:line:column errors), the sidecar's /policy shows them, and a caller without a
verified workload identity (here: a plain h2c grpcio client, as every caller is until the
connection is mutual TLS) is judged as docs/policy.md says: `principals`/`namespaces` never
match it, an ALLOW never admits it through `notPrincipals`/`notNamespaces`, a DENY with
`notPrincipals: ["*"]` refuses it, a DENY naming principals does not. A forged
x-grpcguard-peer header claiming the allowed identity changes nothing. Health checks stay
open. Denied calls never reach the app. Ports 34600-34699.
"""
import os
import subprocess

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import BIN, Sidecar, calls_of, channel, check, main, metric, start_shapes
from test_sidecar_policy import code_of, policy_json, wait_generation, write

BASE = 24500  # below the ephemeral range (32768-60999)
HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
CLIENT = "cluster.local/ns/demo/sa/client"

P_ALLOW_PRINCIPAL = HEAD + """
mtls: {mode: PERMISSIVE}
authorization:
  - name: only-client
    action: ALLOW
    rules:
      - from: [{principals: ["%s"], namespaces: [demo]}]
""" % CLIENT

P_ALLOW_NOT_NS = HEAD + """
authorization:
  - name: not-from-foo
    action: ALLOW
    rules:
      - from: [{notNamespaces: [foo]}]
"""

P_DENY_ANON = HEAD + """
authorization:
  - name: require-identity
    action: DENY
    rules:
      - from: [{notPrincipals: ["*"]}]
        to: [{methods: ["/shapes.Shapes/Unary"]}]
"""

P_DENY_NAMED = HEAD + """
authorization:
  - name: deny-intruder
    action: DENY
    rules:
      - from: [{principals: ["cluster.local/ns/demo/sa/intruder"]}, {namespaces: ["*"]}]
"""

BAD = HEAD + """
authorization:
  - name: typo
    rules:
      - from: [{principals: [frontend]}]
"""


def unary(stub, tag, md=()):
    return code_of(lambda: stub.Unary(pb.Msg(tag=tag), timeout=5, metadata=md))


def test(tmp):
    sidecar = os.path.join(BIN, "grpcguard-sidecar")

    # ---- check ---------------------------------------------------------------------------
    good = os.path.join(tmp, "good.yaml")
    write(good, P_ALLOW_PRINCIPAL.replace("PERMISSIVE", "STRICT"))
    r = subprocess.run([sidecar, "check", good], capture_output=True, text=True)
    check(r.returncode == 0 and "1 authorization policy" in r.stdout and "mtls STRICT" in r.stdout,
          "check: identity policy valid, summary names mtls STRICT (%s)" % r.stdout.strip())
    write(good, P_DENY_ANON)
    r = subprocess.run([sidecar, "check", good], capture_output=True, text=True)
    check(r.returncode == 0 and "mtls PERMISSIVE by default" in r.stdout,
          "check: no mtls key -> PERMISSIVE by default (%s)" % r.stdout.strip())
    bad = os.path.join(tmp, "bad.yaml")
    write(bad, BAD)
    r = subprocess.run([sidecar, "check", bad], capture_output=True, text=True)
    check(r.returncode == 1 and
          "bad.yaml:7:30: authorization[0].rules[0].from[0].principals[0]: \"frontend\" is not a "
          "principal" in r.stderr,
          "check: a bare service account name -> exit 1, file:line:column (%s)" % r.stderr.strip())
    write(bad, HEAD + "mtls: {mode: STRICT, selector: {matchLabels: {app: x}}}\n")
    r = subprocess.run([sidecar, "check", bad], capture_output=True, text=True)
    check(r.returncode == 1 and "bad.yaml:3:22: mtls.selector:" in r.stderr,
          "check: mtls with a selector -> exit 1 with the reason (%s)" % r.stderr.strip())

    # ---- the sidecar: plaintext callers under identity rules --------------------------------
    srv = start_shapes(BASE + 1, tmp)
    pdir = os.path.join(tmp, "policy")
    os.makedirs(pdir)
    pfile = os.path.join(pdir, "policy.yaml")
    write(pfile, P_ALLOW_PRINCIPAL)
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2, ["--policy", pfile])
    ch = channel(BASE)
    stub = pbg.ShapesStub(ch)

    j = policy_json(sc)
    src = j["policy"]["authorization"][0]["rules"][0]["from"][0]
    check(j["policy"].get("mtls") == {"mode": "PERMISSIVE"} and src.get("principals") == [CLIENT]
          and src.get("namespaces") == ["demo"], "/policy shows mtls and the identity fields (%s)" % j)

    seen = len(calls_of(srv))
    c, d = unary(stub, "anon-1")
    check(c == grpc.StatusCode.PERMISSION_DENIED and d == "RBAC: access denied",
          "ALLOW principals: a plaintext caller is denied (%s %s)" % (c, d))
    c, _ = unary(stub, "forged", (("x-grpcguard-peer", "ns=demo;wl=client;sa=client"),))
    check(c == grpc.StatusCode.PERMISSION_DENIED,
          "ALLOW principals: a forged x-grpcguard-peer naming the client changes nothing (%s)" % c)
    check(len(calls_of(srv)) == seen, "denied calls never reached the app")
    hc = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                        response_deserializer=lambda b: b)
    c, _ = code_of(lambda: hc(b"", timeout=5))
    check(c == grpc.StatusCode.UNIMPLEMENTED,
          "health checks stay open under an identity-only ALLOW (reach the app: %s)" % c)

    gen = j["generation"]
    write(pfile, P_ALLOW_NOT_NS)
    gen += 1
    check(wait_generation(sc, gen)["generation"] >= gen, "reloaded: ALLOW notNamespaces")
    c, _ = unary(stub, "anon-2")
    check(c == grpc.StatusCode.PERMISSION_DENIED,
          "ALLOW notNamespaces: [foo]: a plaintext caller is not let in (%s)" % c)

    write(pfile, P_DENY_ANON)
    gen += 1
    check(wait_generation(sc, gen)["generation"] >= gen, "reloaded: DENY notPrincipals *")
    before = metric(sc.metrics(), "grpcguard_authz_denied_total", policy="require-identity")
    c, _ = unary(stub, "anon-3")
    check(c == grpc.StatusCode.PERMISSION_DENIED,
          "DENY notPrincipals: [\"*\"]: a plaintext caller is denied (%s)" % c)
    check(metric(sc.metrics(), "grpcguard_authz_denied_total", policy="require-identity")
          == before + 1, "the denial is counted under the DENY's name")
    check(list(stub.ServerStream(pb.Msg(count=1, tag="stream-ok"), timeout=5)) is not None,
          "DENY notPrincipals limited to Unary: other methods pass")

    write(pfile, P_DENY_NAMED)
    gen += 1
    check(wait_generation(sc, gen)["generation"] >= gen, "reloaded: DENY principals")
    c, _ = unary(stub, "anon-4")
    check(c == grpc.StatusCode.OK,
          "DENY principals/namespaces: a plaintext caller is not the one named (%s)" % c)
    check(any("anon-4" in l for l in calls_of(srv)), "the allowed call reached the app")

    ch.close()
    check(sc.stop() == 0, "sidecar exits 0 (no leak/sanitizer error)")
    srv.stop()


if __name__ == "__main__":
    main(test)
