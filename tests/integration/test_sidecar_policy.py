#!/usr/bin/python3
"""grpcguard-sidecar enforcing a policy, through the real binary: delay (short deadline ->
DEADLINE_EXCEEDED and the app never sees the call; long deadline -> success after the
delay), abort, seeded percent draws, header-matched faults, pod-label selectors,
DENY/ALLOW/AUDIT by method, CIDR and header, health checks, live reload by rewrite and by
ConfigMap `..data` symlink swap, a bad file keeping the last good policy (and /policy
showing the error), a policy directory that appears late, max-delayed, metrics, and
`check` exit codes. Ports 25200-25299.
"""
import os
import subprocess
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import (BIN, SLOW, Sidecar, calls_of, channel, check, log, main, metric,
                          start_shapes)

BASE = 25200

HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
BURST = 40  # concurrent delayed calls in the burst check

P_FAULTS = HEAD + """
faults:
  - name: slow-unary
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-chaos: delay}
    delay: {fixed: 1s, percent: 100}
  - name: broken
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-chaos: abort}
    abort: {grpcStatus: UNAVAILABLE, message: "injected fault", percent: 100}
  - name: flaky
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-chaos: flaky}
    abort: {grpcStatus: 13, message: "flaky 30%", percent: 30}
  - name: other-pod
    selector: {matchLabels: {app: not-this-pod}}
    match: {methods: ["*"], headers: {x-chaos: other}}
    abort: {grpcStatus: INTERNAL, message: "wrong pod", percent: 100}
  - name: this-pod
    selector: {matchLabels: {app: server}}
    match: {methods: ["*"], headers: {x-chaos: mine}}
    abort: {grpcStatus: DATA_LOSS, message: "this pod", percent: 100}
"""

P_AUTHZ = HEAD + """
authorization:
  - name: no-bidi
    action: DENY
    rules:
      - to: [{methods: ["/shapes.Shapes/Bidi"]}]
  - name: no-red-tenant
    action: DENY
    rules:
      - when: [{header: x-tenant, values: ["red"]}]
  - name: deny-local-when-asked
    action: DENY
    rules:
      - from: [{ipBlocks: ["127.0.0.0/8"]}]
        when: [{header: x-deny-local, values: ["yes"]}]
  - name: deny-remote
    action: DENY
    rules:
      - from: [{notIpBlocks: ["127.0.0.0/8", "::1/128"]}]
  - name: local-only
    action: ALLOW
    rules:
      - from: [{ipBlocks: ["127.0.0.0/8"], notIpBlocks: ["127.0.0.2/32"]}]
  - name: watch
    action: AUDIT
    rules:
      - to: [{methods: ["/shapes.Shapes/ServerStream"]}]
"""

P_ALLOW_NONE = HEAD + """
authorization:
  - name: only-tenant-blue
    action: ALLOW
    rules:
      - when: [{header: x-tenant, values: ["blue"]}]
"""

P_DELAY_ALL = HEAD + """
faults:
  - name: hold
    match: {methods: ["/shapes.Shapes/Unary"]}
    delay: {fixed: 1500ms, percent: 100}
"""


def code_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def wait_generation(sc, gen, timeout=5.0):
    import json
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        j = json.loads(sc.get("/policy")[1])
        if j["generation"] >= gen:
            return j
        time.sleep(0.05)
    return json.loads(sc.get("/policy")[1])


def policy_json(sc):
    import json
    return json.loads(sc.get("/policy")[1])


def test(tmp):
    srv = start_shapes(BASE + 1, tmp)

    # ---- check ---------------------------------------------------------------------------
    good = os.path.join(tmp, "good.yaml")
    bad = os.path.join(tmp, "bad.yaml")
    write(good, P_FAULTS)
    write(bad, HEAD + "faults:\n  - name: x\n    delay: {fixed: tenseconds}\n")
    sidecar = os.path.join(BIN, "grpcguard-sidecar")
    r = subprocess.run([sidecar, "check", good], capture_output=True, text=True)
    check(r.returncode == 0 and "5 fault" in r.stdout, "check: valid file -> exit 0 and a summary")
    r = subprocess.run([sidecar, "check", bad], capture_output=True, text=True)
    check(r.returncode == 1 and "bad.yaml:5:" in r.stderr,
          "check: invalid file -> exit 1, file:line:column on stderr (%s)" % r.stderr.strip())
    r = subprocess.run([sidecar, "check"], capture_output=True, text=True)
    check(r.returncode == 2, "check: no file -> exit 2")
    r = subprocess.run([sidecar, "run", "--bogus"], capture_output=True, text=True)
    check(r.returncode == 2 and "--bogus" in r.stderr, "run: bad flag -> exit 2 with the reason")

    # ---- faults ----------------------------------------------------------------------------
    # A ConfigMap-like directory: policy.yaml -> ..data/policy.yaml, ..data -> ..v1
    pdir = os.path.join(tmp, "policy")
    os.makedirs(os.path.join(pdir, "..v1"))
    write(os.path.join(pdir, "..v1", "policy.yaml"), P_FAULTS)
    os.symlink("..v1", os.path.join(pdir, "..data"))
    os.symlink("..data/policy.yaml", os.path.join(pdir, "policy.yaml"))
    labels = os.path.join(tmp, "labels")
    write(labels, 'app="server"\npod-template-hash="abc"\n')
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--policy", os.path.join(pdir, "policy.yaml"), "--pod-labels", labels,
                  "--seed", "42", "--log-level", "debug"])
    ch = channel(BASE)
    stub = pbg.ShapesStub(ch)
    check(stub.Unary(pb.Msg(payload=b"p", tag="plain"), timeout=5).payload == b"p",
          "no matching fault -> call passes")

    t0 = time.monotonic()
    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="held-short"), timeout=0.3,
                                      metadata=(("x-chaos", "delay"),)))
    check(c == grpc.StatusCode.DEADLINE_EXCEEDED, "delay 1s, deadline 0.3s -> DEADLINE_EXCEEDED")
    t0 = time.monotonic()
    r = stub.Unary(pb.Msg(payload=b"late", tag="held-long"), timeout=5,
                   metadata=(("x-chaos", "delay"),))
    el = time.monotonic() - t0
    check(r.payload == b"late" and el >= 1.0, "delay 1s, deadline 5s -> OK after %.2fs" % el)
    r = stub.Unary(pb.Msg(tag="tr-held"), timeout=5, metadata=(("x-chaos", "delay"),))
    rem = [float(l.split()[2]) for l in calls_of(srv) if l.startswith("time_remaining tr-held ")]
    check(rem and rem[0] < 4.3,
          "after a 1s delay the app's deadline is what is left of the client's 5s (%s)" % rem)
    time.sleep(1.2)
    seen = calls_of(srv)
    check("Unary held-short" not in seen and "Unary held-long" in seen,
          "the held call whose deadline passed never reached the app")

    # A burst of held calls: each is held the full second from when the sidecar read its
    # HEADERS, however long the loop turn that read them all (a timer armed on the loop's
    # cached clock fires early by the time the turn had already taken).
    starts, done, futs = {}, {}, []
    for i in range(BURST):
        starts[i] = time.monotonic()
        f = stub.Unary.future(pb.Msg(tag="burst%d" % i), timeout=10 * SLOW,
                              metadata=(("x-chaos", "delay"),))
        f.add_done_callback(lambda _f, i=i: done.__setitem__(i, time.monotonic()))
        futs.append(f)
    codes = [code_of(f.result)[0] for f in futs]
    time.sleep(0.05)
    held = [done[i] - starts[i] for i in range(BURST) if i in done]
    check(all(c == grpc.StatusCode.OK for c in codes) and len(held) == BURST and
          min(held) >= 0.999,
          "a burst of %d delayed calls: each held at least 1s (shortest %.3fs)" %
          (BURST, min(held) if held else -1))

    c, d = code_of(lambda: stub.Unary(pb.Msg(tag="ab"), timeout=5, metadata=(("x-chaos", "abort"),)))
    check(c == grpc.StatusCode.UNAVAILABLE and d == "injected fault",
          "abort -> UNAVAILABLE \"injected fault\"")
    check("Unary ab" not in calls_of(srv), "aborted call never reached the app")

    n_abort = 0
    for i in range(200):
        c, d = code_of(lambda: stub.Unary(pb.Msg(tag="fl"), timeout=5,
                                          metadata=(("x-chaos", "flaky"),)))
        if c == grpc.StatusCode.INTERNAL and d == "flaky 30%":
            n_abort += 1
        elif c != grpc.StatusCode.OK:
            raise AssertionError("flaky: unexpected %s %s" % (c, d))
    # Binomial(200, 0.3): mean 60, sd 6.5; +-4 sd.
    check(34 <= n_abort <= 86, "abort percent 30 over 200 calls: %d aborted" % n_abort)

    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="o"), timeout=5, metadata=(("x-chaos", "other"),)))
    check(c == grpc.StatusCode.OK, "fault selecting another pod's labels does not apply")
    c, d = code_of(lambda: stub.Unary(pb.Msg(tag="m"), timeout=5, metadata=(("x-chaos", "mine"),)))
    check(c == grpc.StatusCode.DATA_LOSS, "fault selecting this pod's labels applies")
    write(labels, 'app="other"\n')
    end = time.monotonic() + 5 * SLOW
    while time.monotonic() < end:
        c, d = code_of(lambda: stub.Unary(pb.Msg(tag="m2"), timeout=5,
                                          metadata=(("x-chaos", "mine"),)))
        if c == grpc.StatusCode.OK:
            break
        time.sleep(0.1)
    check(c == grpc.StatusCode.OK, "pod labels file change is picked up")

    m = sc.metrics()
    check(metric(m, "grpcguard_faults_injected_total", type="delay", fault="slow-unary") ==
          3 + BURST, "metrics: %d delays injected" % (3 + BURST))
    check(metric(m, "grpcguard_faults_injected_total", type="abort", fault="flaky") == n_abort,
          "metrics: flaky aborts counted exactly")
    check(metric(m, "grpcguard_requests_total", grpc_method="Unary", grpc_code="UNAVAILABLE") == 1,
          "metrics: the abort counted as UNAVAILABLE")

    # ---- reload: ..data symlink swap to an authorization policy ---------------------------
    gen = policy_json(sc)["generation"]
    os.makedirs(os.path.join(pdir, "..v2"))
    write(os.path.join(pdir, "..v2", "policy.yaml"), P_AUTHZ)
    os.symlink("..v2", os.path.join(pdir, "..data_tmp"))
    os.rename(os.path.join(pdir, "..data_tmp"), os.path.join(pdir, "..data"))
    j = wait_generation(sc, gen + 1)
    check(j["generation"] > gen and j["policy"]["authorization"] and not j["last_error"],
          "..data symlink swap reloads the policy (generation %d -> %d)" % (gen, j["generation"]))

    c, d = code_of(lambda: list(stub.Bidi(iter([pb.Msg(tag="bidi-denied")]), timeout=5)))
    check(c == grpc.StatusCode.PERMISSION_DENIED and d == "RBAC: access denied",
          "DENY by method -> PERMISSION_DENIED \"RBAC: access denied\"")
    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="red"), timeout=5, metadata=(("x-tenant", "red"),)))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "DENY by header")
    check(stub.Unary(pb.Msg(payload=b"ok", tag="local"), timeout=5).payload == b"ok",
          "ALLOW by CIDR (127.0.0.0/8) lets 127.0.0.1 through")
    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="loc"), timeout=5,
                                      metadata=(("x-deny-local", "yes"),)))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "DENY by CIDR (127.0.0.0/8) and header together")
    list(stub.ServerStream(pb.Msg(count=1, tag="audited"), timeout=5))
    time.sleep(0.2)
    check('"event":"rbac_audit"' in sc.log_text() and "audited" in calls_of(srv)[-1],
          "AUDIT: logged, and the call still reaches the app")
    m = sc.metrics()
    check(metric(m, "grpcguard_authz_denied_total", policy="no-bidi") == 1 and
          metric(m, "grpcguard_authz_denied_total", policy="no-red-tenant") == 1,
          "metrics: denials by policy")
    check("Bidi bidi-denied" not in calls_of(srv) and "Unary red" not in calls_of(srv),
          "denied calls never reached the app")

    # health checks are allowed unless a DENY names them, even under a non-matching ALLOW
    gen = policy_json(sc)["generation"]
    write(os.path.join(pdir, "..v2", "policy.yaml"), P_ALLOW_NONE)
    wait_generation(sc, gen + 1)
    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="nobody"), timeout=5))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "reload by rewrite: ALLOW exists, none matches -> denied")
    hc = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=lambda b: b,
                        response_deserializer=lambda b: b)
    c, _ = code_of(lambda: hc(b"", timeout=5))
    check(c == grpc.StatusCode.UNIMPLEMENTED, "health check reaches the app despite ALLOW (app: UNIMPLEMENTED)")
    check(stub.Unary(pb.Msg(payload=b"b", tag="blue"), timeout=5,
                     metadata=(("x-tenant", "blue"),)).payload == b"b", "ALLOW by header")

    # bad file: last good stays, /policy shows the error, counted
    gen = policy_json(sc)["generation"]
    fails = metric(sc.metrics(), "grpcguard_policy_reloads_total", result="failure")
    write(os.path.join(pdir, "..v2", "policy.yaml"), HEAD + "authorization:\n  - name: x\n    action: MAYBE\n")
    end = time.monotonic() + 5 * SLOW
    while time.monotonic() < end and not policy_json(sc)["last_error"]:
        time.sleep(0.05)
    j = policy_json(sc)
    check(j["last_error"] and "policy.yaml:5:" in j["last_error"] and j["generation"] == gen,
          "bad file rejected with file:line:column, generation unchanged (%s)" % j["last_error"])
    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="nobody2"), timeout=5))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "the last good policy is still enforced")
    check(metric(sc.metrics(), "grpcguard_policy_reloads_total", result="failure") == fails + 1,
          "metrics: the failed reload counted")
    check('"event":"policy_rejected"' in sc.log_text(), "the rejection is logged")
    # deleted file: last good stays
    os.unlink(os.path.join(pdir, "..v2", "policy.yaml"))
    time.sleep(1.5)
    c, _ = code_of(lambda: stub.Unary(pb.Msg(tag="nobody3"), timeout=5))
    check(c == grpc.StatusCode.PERMISSION_DENIED, "policy file deleted -> the last good policy stays")
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0 (no leak/sanitizer error)")

    # ---- a policy directory that appears after start; max-delayed ---------------------------
    late = os.path.join(tmp, "late")
    sc = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 1), BASE + 12,
                 ["--policy", os.path.join(late, "policy.yaml"), "--max-delayed", "2"],
                 name="sidecar-late")
    ch = channel(BASE + 10)
    stub = pbg.ShapesStub(ch)
    check(stub.Unary(pb.Msg(tag="before"), timeout=5) is not None, "no policy dir: calls pass")
    os.makedirs(late)
    write(os.path.join(late, "policy.yaml"), P_DELAY_ALL)
    wait_generation(sc, 2)
    check(policy_json(sc)["loaded"], "policy directory created later is picked up")
    futs = [stub.Unary.future(pb.Msg(tag="cap%d" % i), timeout=10) for i in range(5)]
    codes = [code_of(f.result)[0] for f in futs]
    ok = codes.count(grpc.StatusCode.OK)
    ex = codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    check(ok == 2 and ex == 3, "max-delayed 2: 2 held and served, 3 RESOURCE_EXHAUSTED (%s)" % codes)
    check(metric(sc.metrics(), "grpcguard_sidecar_limit_rejections_total", limit="max_delayed") == 3,
          "metrics: max_delayed rejections counted")
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0")
    srv.stop()


if __name__ == "__main__":
    main(test)
