#!/usr/bin/python3
"""Failure behaviour of the sidecar's policy file (issue 8), through the real binary with a
real gRPC client and app. The policy in force is checked twice each time: by behaviour (an
abort fault whose message names the policy version) and by /policy (generation, loaded,
last_error).

- policy directory missing at start: no policy, calls pass; the directory and file
  appearing later are picked up;
- file truncated to zero bytes (an O_TRUNC write caught half way): ignored, last good stays;
- file truncated mid-write so it does not parse: rejected (file:line:column in /policy,
  counted as a failed reload), last good stays; the completed write is then picked up;
- binary garbage and a file over the 1 MiB limit: rejected, last good stays;
- file replaced by a directory: last good stays, logged once (not at every poll);
- file deleted: last good stays (logged once), a new file is picked up;
- the whole directory deleted and re-created later (a volume remounted): last good stays
  meanwhile, the new file is picked up;
- the very first file invalid (or a directory): fail closed, every RPC UNAVAILABLE
  "grpcguard: no valid policy loaded: <file:line:column ...>", nothing reaches the app,
  /readyz 503, the error in /policy; the fixed file is picked up and the sidecar is ready;
- the sidecar exits 0 on SIGTERM (and, under GG_VALGRIND/GG_SANITIZE, without errors).
Ports 31000-31099.
"""
import json
import os
import shutil
import time

import grpc

import shapes_pb2 as pb
import shapes_pb2_grpc as pbg
from test_sidecar import SLOW, Sidecar, channel, check, main, metric, start_shapes

BASE = 31000
HEAD = "apiVersion: grpcguard.io/v1\nkind: Policy\n"


def policy(version):
    """A policy whose one fault aborts Unary calls carrying x-v: on with message `version`."""
    return HEAD + """faults:
  - name: fault-%s
    match:
      methods: ["/shapes.Shapes/Unary"]
      headers: {x-v: "on"}
    abort: {grpcStatus: ABORTED, message: "%s", percent: 100}
""" % (version, version)


def atomic_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def in_force(stub):
    """The version named by the fault in force, "none" when the call passes, "closed" when
    the sidecar fails closed (no valid policy)."""
    try:
        stub.Unary(pb.Msg(tag="probe"), timeout=5, metadata=(("x-v", "on"),))
        return "none"
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNAVAILABLE and e.details().startswith("grpcguard: no valid"):
            return "closed"
        if e.code() != grpc.StatusCode.ABORTED:
            raise
        return e.details()


def pol(sc):
    return json.loads(sc.get("/policy")[1])


def wait_for(pred, timeout):
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def settle():
    """Long enough for the 1 s poll (and the 100 ms debounce) to have looked twice."""
    time.sleep(2.2 * SLOW)


def test(tmp):
    srv = start_shapes(BASE + 1, tmp)
    pdir = os.path.join(tmp, "policy")
    path = os.path.join(pdir, "policy.yaml")
    sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                 ["--policy", path, "--log-level", "debug"])
    ch = channel(BASE)
    stub = pbg.ShapesStub(ch)

    # ---- directory missing at start ---------------------------------------------------
    j = pol(sc)
    check(not j["loaded"] and j["last_error"] is None and in_force(stub) == "none",
          "policy directory missing at start: no policy, calls pass")
    check('"event":"no_policy"' in sc.log_text(), "missing policy logged (no_policy)")
    os.makedirs(pdir)
    atomic_write(path, policy("v1"))
    check(wait_for(lambda: pol(sc)["loaded"], 5), "directory and file created later: loaded")
    check(in_force(stub) == "v1", "the late policy is enforced")
    gen = pol(sc)["generation"]

    # ---- truncated to zero bytes (a non-atomic rewrite caught between open and write) --
    with open(path, "w"):
        pass
    settle()
    j = pol(sc)
    check(j["generation"] == gen and j["last_error"] is None and
          j["policy"]["faults"][0]["name"] == "fault-v1",
          "empty file: ignored, /policy unchanged (generation %d -> %d)" % (gen, j["generation"]))
    check(in_force(stub) == "v1", "empty file: the last good policy is still enforced")
    # the writer finishes: the new content is picked up
    with open(path, "w") as f:
        f.write(policy("v2"))
    check(wait_for(lambda: in_force(stub) == "v2", 5), "the completed write is picked up (v2)")
    gen = pol(sc)["generation"]

    # ---- truncated mid-write: the first half does not parse --------------------------------
    fails = metric(sc.metrics(), "grpcguard_policy_reloads_total", result="failure")
    full = policy("v3")
    cut = full.index('message: "v3"') + len('message: "v')  # inside a quoted scalar
    f = open(path, "w")
    f.write(full[:cut])
    f.flush()
    check(wait_for(lambda: pol(sc)["last_error"], 5), "half-written file rejected")
    j = pol(sc)
    check(j["generation"] == gen and "policy.yaml:" in j["last_error"] and
          j["policy"]["faults"][0]["name"] == "fault-v2",
          "half-written file: generation unchanged, last_error has file:line (%s)" % j["last_error"])
    check(in_force(stub) == "v2", "half-written file: the last good policy is still enforced")
    check(metric(sc.metrics(), "grpcguard_policy_reloads_total", result="failure") == fails + 1,
          "half-written file: one failed reload counted")
    check(any(e.get("event") == "policy_rejected" and e.get("kept_last_good") is True
              for e in log_events(sc)), "policy_rejected logged with kept_last_good")
    f.write(full[cut:])
    f.close()
    check(wait_for(lambda: in_force(stub) == "v3", 5), "the rest of the write arrives: v3 in force")
    check(wait_for(lambda: pol(sc)["last_error"] is None, 2), "last_error cleared after a good reload")
    gen = pol(sc)["generation"]

    # ---- garbage and oversized files ------------------------------------------------------
    with open(path + ".tmp", "wb") as f:
        f.write(bytes(range(256)) * 64)
    os.rename(path + ".tmp", path)
    check(wait_for(lambda: pol(sc)["last_error"], 5), "binary garbage rejected")
    check(pol(sc)["generation"] == gen and in_force(stub) == "v3",
          "binary garbage: last good policy stays")
    big = policy("v4") + "# " + "x" * (1100 * 1024) + "\n"
    atomic_write(path, big)
    check(wait_for(lambda: "limit" in (pol(sc)["last_error"] or ""), 5),
          "file over 1 MiB rejected (%s)" % pol(sc)["last_error"])
    check(pol(sc)["generation"] == gen and in_force(stub) == "v3",
          "oversized file: last good policy stays")

    # ---- the file replaced by a directory ----------------------------------------------------
    os.unlink(path)
    os.makedirs(path)
    settle()
    check(pol(sc)["generation"] == gen and in_force(stub) == "v3" and sc.p.poll() is None,
          "policy path is a directory: last good policy stays")
    n_dir = sum(1 for e in log_events(sc) if e.get("event") == "policy_read_failed")
    check(n_dir == 1 and "Is a directory" in (pol(sc)["last_error"] or ""),
          "policy path is a directory: logged once over several polls (%d), in last_error" % n_dir)
    os.rmdir(path)

    # ---- deleted, then a new file -------------------------------------------------------------
    atomic_write(path, policy("v5"))
    check(wait_for(lambda: in_force(stub) == "v5", 5), "v5 in force")
    gen = pol(sc)["generation"]
    n_missing = sum(1 for e in log_events(sc) if e.get("event") == "policy_file_missing")
    os.unlink(path)
    settle()
    j = pol(sc)
    check(j["generation"] == gen and j["policy"]["faults"][0]["name"] == "fault-v5" and
          in_force(stub) == "v5", "file deleted: last good policy stays, /policy unchanged")
    check(sum(1 for e in log_events(sc) if e.get("event") == "policy_file_missing") == n_missing + 1,
          "file deleted: policy_file_missing logged once")
    atomic_write(path, policy("v6"))
    check(wait_for(lambda: in_force(stub) == "v6", 5), "new file after the delete is picked up")

    # ---- the whole directory deleted, re-created later ------------------------------------------
    gen = pol(sc)["generation"]
    shutil.rmtree(pdir)
    settle()
    check(pol(sc)["generation"] == gen and in_force(stub) == "v6",
          "directory deleted: last good policy stays")
    os.makedirs(pdir)
    atomic_write(path, policy("v7"))
    check(wait_for(lambda: in_force(stub) == "v7", 5), "directory re-created: new policy picked up")
    # and the watch works again (not only the poll): a rewrite lands well under a second
    t0 = time.monotonic()
    atomic_write(path, policy("v8"))
    check(wait_for(lambda: in_force(stub) == "v8", 5),
          "rewrite after the re-created directory picked up (%.2fs)" % (time.monotonic() - t0))

    check(sc.p.poll() is None, "sidecar still running")
    ch.close()
    check(sc.stop() == 0, "sidecar exits 0 (no leak/sanitizer error)")

    # ---- the very first file is invalid: no policy (allow all), said so; fixed later --------
    bad = os.path.join(tmp, "bad", "policy.yaml")
    os.makedirs(os.path.dirname(bad))
    atomic_write(bad, policy("v9").replace("ABORTED", "NOT_A_STATUS"))
    sc = Sidecar(tmp, BASE + 10, "127.0.0.1:%d" % (BASE + 1), BASE + 12, ["--policy", bad],
                 name="sidecar-bad")
    ch = channel(BASE + 10)
    stub = pbg.ShapesStub(ch)
    j = pol(sc)
    check(not j["loaded"] and "policy.yaml:8:" in (j["last_error"] or "") and
          "policy.yaml:8:" in (j["no_policy"] or ""),
          "first file invalid: nothing loaded, file:line:column in /policy (%s)" % j["last_error"])
    calls_before = len(srv_calls(srv))
    codes = []
    for _ in range(3):
        try:
            stub.Unary(pb.Msg(tag="closed"), timeout=5)
            codes.append(("OK", ""))
        except grpc.RpcError as e:
            codes.append((e.code(), e.details()))
    check(all(c == grpc.StatusCode.UNAVAILABLE and
              d.startswith("grpcguard: no valid policy loaded: ") and "policy.yaml:8:" in d
              for c, d in codes), "first file invalid: every RPC UNAVAILABLE, fail closed (%s)" % codes[0:1])
    check(len(srv_calls(srv)) == calls_before, "first file invalid: nothing reached the app")
    check(metric(sc.metrics(), "grpcguard_requests_total", grpc_service="shapes.Shapes",
                 grpc_method="Unary", grpc_code="UNAVAILABLE") == 3,
          "first file invalid: the refused RPCs counted as UNAVAILABLE")
    time.sleep(0.5 * SLOW)  # the readiness probe has reached the app by now
    check(sc.status("/readyz") == 503, "first file invalid: /readyz 503")
    ev = log_events(sc)
    check(any(e.get("event") == "policy_rejected" and e.get("kept_last_good") is False and
              e.get("line") == 8 for e in ev), "first file invalid: policy_rejected with line, column")
    check(any(e.get("event") == "no_valid_policy" for e in ev), "first file invalid: no_valid_policy logged")
    atomic_write(bad, policy("v9"))
    check(wait_for(lambda: in_force(stub) == "v9", 5), "first file fixed: picked up, calls served")
    j = pol(sc)
    check(j["generation"] == 2 and j["no_policy"] is None and j["last_error"] is None,
          "first file fixed: generation 2, no longer failing closed")
    check(wait_for(lambda: sc.status("/readyz") == 200, 3), "first file fixed: /readyz 200")
    ch.close()
    check(sc.stop() == 0, "sidecar-bad exits 0")

    # ---- a directory at start fails closed as well; a missing file does not ---------------
    os.makedirs(os.path.join(tmp, "dirpol", "policy.yaml"))
    sc = Sidecar(tmp, BASE + 20, "127.0.0.1:%d" % (BASE + 1), BASE + 22,
                 ["--policy", os.path.join(tmp, "dirpol", "policy.yaml")], name="sidecar-dir")
    ch = channel(BASE + 20)
    stub = pbg.ShapesStub(ch)
    try:
        stub.Unary(pb.Msg(tag="dir"), timeout=5)
        c = grpc.StatusCode.OK
    except grpc.RpcError as e:
        c = e.code()
    check(c == grpc.StatusCode.UNAVAILABLE and sc.status("/readyz") == 503,
          "policy path a directory at start: fail closed (%s)" % c)
    ch.close()
    check(sc.stop() == 0, "sidecar-dir exits 0")
    srv.stop()


def srv_calls(srv):
    with open(srv.calls) as f:
        return [l for l in f if l.strip()]


def log_events(sc):
    out = []
    for line in sc.log_text().splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


if __name__ == "__main__":
    main(test)
