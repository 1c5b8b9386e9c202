"""grpcguard-webhook end to end: the real binary over real TLS (certificates from
grpcguard-certgen), AdmissionReviews from tests/data/admission, every returned JSONPatch
applied with an independent RFC 6902 implementation (python3-jsonpatch) and the resulting
pod checked. Covers injection (Deployment-made pods, bare pods, port selection, opt-outs,
hostNetwork, excluded namespaces, reinvocation), v1beta1, Service and policy ConfigMap
validation, warn mode and config options, every bad input, metrics and logs."""
import base64
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import (GG_ROOT, Proc, certgen, check, fail, free_port, program,  # noqa: E402
                        record_patched, run, timeout_scale, validate_patched)

try:
    import jsonpatch
except ImportError:
    from gg_testlib import skip
    skip("python3-jsonpatch is not installed")

DATA = os.path.join(GG_ROOT, "tests", "data", "admission")
tmp = tempfile.mkdtemp(prefix="gg-webhook-adm-")
procs = []


def load(name):
    with open(os.path.join(DATA, name)) as f:
        return json.load(f)


def raw(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


class Webhook:
    def __init__(self, port, ca, cert, key, config=None, env=None):
        argv = [program("grpcguard-webhook"), "--listen", "127.0.0.1:%d" % port,
                "--tls-cert", cert, "--tls-key", key, "--threads", "2"]
        if config:
            argv += ["--config", config]
        self.proc = Proc(argv, env=env or {"POD_NAMESPACE": "grpcguard-system"})
        self.proc.wait_event("listening")
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.base = "https://localhost:%d" % port

    def request(self, method, path, body=None, ctype="application/json", headers=None):
        h = {"Content-Type": ctype} if ctype else {}
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def declare_length(self, path, length):
        """Send only headers announcing a body of `length` bytes; the answer comes first."""
        conn = http.client.HTTPSConnection("localhost", self.port, context=self.ctx, timeout=20)
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        r = conn.getresponse()
        out = (r.status, r.read())
        conn.close()
        return out

    def admit(self, path, rev):
        status, body, headers = self.request("POST", path, json.dumps(rev).encode())
        check(status == 200, "%s: HTTP %d: %s" % (path, status, body[:300]))
        check(headers.get("Content-Type", "").startswith("application/json"),
              "review content type %r" % headers.get("Content-Type"))
        out = json.loads(body)
        check(out.get("apiVersion") == rev["apiVersion"], "apiVersion not echoed: %r" % out)
        check(out.get("kind") == "AdmissionReview", "kind: %r" % out)
        resp = out["response"]
        check(resp.get("uid") == rev["request"]["uid"], "uid not echoed: %r" % resp)
        return resp


UID = [0]


def review(obj, kind, op="CREATE", ns="demo", api="admission.k8s.io/v1"):
    UID[0] += 1
    plural = {"Pod": "pods", "Service": "services", "ConfigMap": "configmaps"}.get(kind, "x")
    req = {"uid": "test-uid-%04d" % UID[0],
           "kind": {"group": "", "version": "v1", "kind": kind},
           "resource": {"group": "", "version": "v1", "resource": plural},
           "operation": op, "namespace": ns,
           "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
           "object": obj, "oldObject": None, "dryRun": False}
    if obj is not None and obj.get("metadata", {}).get("name"):
        req["name"] = obj["metadata"]["name"]
    return {"apiVersion": api, "kind": "AdmissionReview", "request": req}


def patch_of(resp):
    if "patch" not in resp:
        return None
    check(resp.get("patchType") == "JSONPatch", "patchType: %r" % resp.get("patchType"))
    return json.loads(base64.b64decode(resp["patch"]))


def apply(pod, resp):
    ops = patch_of(resp)
    check(ops is not None, "expected a patch, got %r" % resp)
    for op in ops:
        check(op["op"] == "add", "only add operations expected: %r" % op)
    return record_patched(jsonpatch.apply_patch(pod, ops), pod.get("metadata", {}).get("name") or "unnamed")


def names(lst):
    return [c["name"] for c in lst or []]


def check_injected(orig, pod, ports, configmap="grpcguard-policy", native=True, init=True,
                   exclude="", probes="", ipv4_only=False, init_extra=()):
    """Structural checks of a patched pod against the original."""
    spec, ospec = pod["spec"], orig["spec"]
    inits = spec.get("initContainers", [])
    expect_front = (["grpcguard-init"] if init else []) + (["grpcguard-proxy"] if native else [])
    check(names(inits) == expect_front + names(ospec.get("initContainers")),
          "initContainers order: %r" % names(inits))
    check(inits[len(expect_front):] == ospec.get("initContainers", []),
          "the pod's own init containers changed")
    if native:
        check(spec["containers"] == ospec["containers"], "app containers changed")
        proxy = inits[len(expect_front) - 1]
        check(proxy.get("restartPolicy") == "Always", "native proxy needs restartPolicy Always")
    else:
        check(names(spec["containers"]) == names(ospec["containers"]) + ["grpcguard-proxy"],
              "proxy container not appended: %r" % names(spec["containers"]))
        proxy = spec["containers"][-1]
        check("restartPolicy" not in proxy, "plain container must not set restartPolicy")
    sc = proxy["securityContext"]
    check(sc["runAsUser"] == 1337 and sc["runAsNonRoot"] is True, "proxy user: %r" % sc)
    check(sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False,
          "proxy fs/escalation: %r" % sc)
    check(sc["capabilities"] == {"drop": ["ALL"]}, "proxy capabilities: %r" % sc)
    check(sc["seccompProfile"] == {"type": "RuntimeDefault"}, "proxy seccomp: %r" % sc)
    args = proxy["args"]
    check(args[:2] == ["run", "--listen"] and "original-dst" in args and
          "/etc/grpcguard/policy/policy.yaml" in args and
          "/etc/grpcguard/podinfo/labels" in args, "proxy args: %r" % args)
    check(proxy["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 15020},
          "readiness probe: %r" % proxy.get("readinessProbe"))
    check("startupProbe" in proxy, "no startup probe")
    check(sorted(p["containerPort"] for p in proxy["ports"]) == [15001, 15006, 15020],
          "proxy ports")
    check(args[args.index("--outbound-listen") + 1] == "[::]:15001" if "--outbound-listen" in args
          else False, "proxy args lack --outbound-listen [::]:15001: %r" % args)
    check(all(len(p["name"]) <= 15 for p in proxy["ports"]), "port names over 15 chars")
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in proxy["env"]
           if "valueFrom" in e}
    check(env == {"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace",
                  "POD_IP": "status.podIP",
                  "SERVICE_ACCOUNT": "spec.serviceAccountName"}, "proxy env: %r" % env)
    # What the redirect covers, told to the proxy for its /policy.
    env = {e["name"]: e["value"] for e in proxy["env"] if "valueFrom" not in e}
    check(env == {"GRPCGUARD_INBOUND_PORTS": ports, "GRPCGUARD_EXCLUDE_INBOUND_PORTS": exclude,
                  "GRPCGUARD_PROBE_PORTS": probes}, "proxy ports env: %r" % env)
    if init:
        ic = inits[0]
        want = ["init", "--ports", ports, "--proxy-port", "15006", "--proxy-uid", "1337"]
        want += ["--exclude-inbound-ports", exclude] if exclude else []
        want += ["--ipv4-only"] if ipv4_only else []
        want += list(init_extra)  # outbound flags from the annotations, last
        check(ic["args"] == want, "init args %r, want %r" % (ic["args"], want))
        isc = ic["securityContext"]
        check(isc["runAsUser"] == 0 and isc["runAsNonRoot"] is False, "init user: %r" % isc)
        check(isc["capabilities"] == {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
              "init capabilities: %r" % isc)
    else:
        check("grpcguard-init" not in names(inits), "cni mode must not add grpcguard-init")
    # Volumes: the pod's own, then ours; every mount refers to a volume.
    vols = spec["volumes"]
    check(vols[:len(ospec.get("volumes") or [])] == (ospec.get("volumes") or []),
          "the pod's volumes changed")
    byname = {v["name"]: v for v in vols}
    check(len(byname) == len(vols), "duplicate volume names: %r" % names(vols))
    check(byname["grpcguard-policy"]["configMap"] == {"name": configmap, "optional": True},
          "policy volume: %r" % byname.get("grpcguard-policy"))
    check(byname["grpcguard-podinfo"]["downwardAPI"]["items"] ==
          [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}], "podinfo volume")
    for c in spec["containers"] + inits:
        for m in c.get("volumeMounts", []):
            check(m["name"] in byname, "mount %r of %s has no volume" % (m["name"], c["name"]))
    allnames = names(spec["containers"]) + names(inits)
    check(len(set(allnames)) == len(allnames), "duplicate container names %r" % allnames)
    # Annotations: the pod's own kept, ours added.
    ann = pod["metadata"]["annotations"]
    for k, v in (orig["metadata"].get("annotations") or {}).items():
        check(ann.get(k) == v, "annotation %r lost or changed" % k)
    status = json.loads(ann["grpcguard.io/status"])
    check(status["version"] and "grpcguard-policy" in status["volumes"], "status %r" % status)
    check(set(status["initContainers"] + status["containers"]) == {"grpcguard-proxy"} |
          ({"grpcguard-init"} if init else set()), "status containers %r" % status)
    check(ann["kubectl.kubernetes.io/default-container"] == ospec["containers"][0]["name"],
          "default-container: %r" % ann.get("kubectl.kubernetes.io/default-container"))
    check(ann["prometheus.io/port"] == "15020" and ann["prometheus.io/scrape"] == "true" and
          ann["prometheus.io/path"] == "/metrics", "prometheus annotations")
    check(pod["metadata"].get("labels") == orig["metadata"].get("labels"), "labels changed")


def no_patch(resp, what):
    check(resp["allowed"] is True, "%s: expected allowed: %r" % (what, resp))
    check("patch" not in resp, "%s: expected no patch: %r" % (what, resp))


def denied(resp, *needles):
    check(resp["allowed"] is False, "expected denied: %r" % resp)
    msg = resp.get("status", {}).get("message", "")
    for n in needles:
        check(n in msg, "message %r lacks %r" % (msg, n))
    return msg


def main():
    ca, cert, key = certgen(os.path.join(tmp, "certs"))
    wh = Webhook(free_port(18410, 18429), ca, cert, key)

    # ---- injection -----------------------------------------------------------------
    dep = load("pod-deployment.json")
    resp = wh.admit("/mutate", review(dep, "Pod"))
    check(resp["allowed"] is True, "deployment pod: %r" % resp)
    pod = apply(copy.deepcopy(dep), resp)
    # Every port (issue 14), but the kubelet's httpGet liveness probe port 9090; the gRPC
    # readiness probe's port 8080 stays intercepted.
    check_injected(dep, pod, ports="*", exclude="9090", probes="9090")
    # Keys with "/" and "~" survive (JSON Pointer escaping was right).
    check(pod["metadata"]["annotations"]["weird~key/with~both"] == "x", "escaped key lost")
    # Reinvocation: the injected pod gets no second sidecar.
    no_patch(wh.admit("/mutate", review(pod, "Pod")), "reinvocation")

    bare = load("pod-bare.json")
    resp = wh.admit("/mutate", review(bare, "Pod"))
    pod = apply(copy.deepcopy(bare), resp)
    check_injected(bare, pod, ports="*")
    no_patch(wh.admit("/mutate", review(pod, "Pod")), "reinvocation (bare)")

    ann = load("pod-ports-annotation.json")
    pod = apply(copy.deepcopy(ann), wh.admit("/mutate", review(ann, "Pod")))
    check_injected(ann, pod, ports="8080,9090", configmap="team-policy")

    unnamed = load("pod-unnamed-ports.json")
    pod = apply(copy.deepcopy(unnamed), wh.admit("/mutate", review(unnamed, "Pod")))
    check_injected(unnamed, pod, ports="*")

    # Exclusions by annotation add to the probe ports; the IPv4-only opt-out reaches init.
    excl = copy.deepcopy(dep)
    excl["metadata"]["annotations"].update({"grpcguard.io/exclude-inbound-ports": "7070, 9090",
                                            "grpcguard.io/ipv4-only": "true"})
    pod = apply(copy.deepcopy(excl), wh.admit("/mutate", review(excl, "Pod")))
    check_injected(excl, pod, ports="*", exclude="9090,7070", probes="9090", ipv4_only=True)
    excl["metadata"]["annotations"]["grpcguard.io/exclude-inbound-ports"] = "*"
    denied(wh.admit("/mutate", review(excl, "Pod")), "grpcguard.io/exclude-inbound-ports",
           'grpcguard.io/inject: "false"')

    # v1beta1: answered in v1beta1, same patch semantics.
    resp = wh.admit("/mutate", review(copy.deepcopy(dep), "Pod", api="admission.k8s.io/v1beta1"))
    check_injected(dep, apply(copy.deepcopy(dep), resp), ports="*", exclude="9090", probes="9090")

    for name in ("pod-optout-annotation.json", "pod-optout-label.json",
                 "pod-hostnetwork.json", "pod-already-has-proxy.json"):
        no_patch(wh.admit("/mutate", review(load(name), "Pod")), name)
    for ns in ("kube-system", "kube-public", "kube-node-lease", "grpcguard-system"):
        no_patch(wh.admit("/mutate", review(load("pod-bare.json"), "Pod", ns=ns)), "ns " + ns)
    denied(wh.admit("/mutate", review(load("pod-bad-ports.json"), "Pod")),
           "grpcguard.io/inbound-ports", "8080,http")
    # Outbound capture annotations become init flags (issue 15); bad values are denied.
    for name, want in (("pod-outbound-annotations.json",
                        ["--exclude-outbound-ports", "3306,5432",
                         "--exclude-outbound-cidrs", "10.96.0.0/12,fd00::/8"]),
                       ("pod-outbound-off.json", ["--no-outbound"]),
                       ("pod-bare.json", [])):
        opod = load(name)
        injected = apply(copy.deepcopy(opod), wh.admit("/mutate", review(opod, "Pod")))
        check_injected(opod, injected, ports="*", init_extra=want)
        iargs = injected["spec"]["initContainers"][0]["args"]
        check(iargs[7:] == want, "%s: init args %r, want %r after the ports" % (name, iargs, want))
    denied(wh.admit("/mutate", review(load("pod-bad-outbound.json"), "Pod")),
           "grpcguard.io/exclude-outbound-ip-ranges", "\"10.0.0.0/33\"")
    no_patch(wh.admit("/mutate", review(load("pod-bare.json"), "Pod", op="UPDATE")), "UPDATE")
    no_patch(wh.admit("/mutate", review(None, "Pod", op="DELETE")), "DELETE")
    no_patch(wh.admit("/mutate", review(load("service-good.json"), "Service")), "Service on /mutate")

    # ---- Service validation ------------------------------------------------------------
    check(wh.admit("/validate", review(load("service-good.json"), "Service"))["allowed"],
          "good service denied")
    check(wh.admit("/validate", review(load("service-external.json"), "Service"))["allowed"],
          "ExternalName service denied")
    denied(wh.admit("/validate", review(load("service-unnamed-grpc.json"), "Service")),
           'service "server" port 50051: name it "grpc" or "grpc-<suffix>", or set appProtocol: grpc')
    denied(wh.admit("/validate", review(load("service-misnamed.json"), "Service")),
           'service "server" port 8080', '"my-grpc"', "appProtocol: grpc")
    denied(wh.admit("/validate", review(load("service-unknown-prefix.json"), "Service")),
           'service "web" port 80', '"web"', "grpc-web")
    denied(wh.admit("/validate", review(load("service-unnamed.json"), "Service")),
           'service "web" port 8080', "no name")
    denied(wh.admit("/validate", review(load("service-conflict.json"), "Service")),
           'service "server" port 8080', "appProtocol", '"http"')
    denied(wh.admit("/validate", review(load("service-misnamed.json"), "Service", op="UPDATE")),
           "my-grpc")
    check(wh.admit("/validate", review(None, "Service", op="DELETE"))["allowed"], "DELETE denied")
    check(wh.admit("/validate", review(load("service-misnamed.json"), "Service",
                                       ns="kube-system"))["allowed"], "kube-system validated")

    # ---- policy ConfigMaps -----------------------------------------------------------------
    check(wh.admit("/validate", review(load("configmap-policy-good.json"), "ConfigMap"))["allowed"],
          "good policy denied")
    msg = denied(wh.admit("/validate", review(load("configmap-policy-bad.json"), "ConfigMap")),
                 'configmap "team"', "policy.yaml:5:")
    print("policy denial:", msg)
    # Client-side faults (match.destinations): a good one passes, a host with a port is denied.
    cm = load("configmap-policy-bad.json")
    cm["data"]["policy.yaml"] = ("faults:\n  - name: slow-backend\n    match: {destinations: "
                                 "[backend, backend.demo.svc.cluster.local]}\n"
                                 "    delay: {fixed: 2s}\n")
    check(wh.admit("/validate", review(cm, "ConfigMap"))["allowed"], "destinations policy denied")
    cm["data"]["policy.yaml"] = ("faults:\n  - name: slow-backend\n    match: {destinations: "
                                 "['backend:8080']}\n    delay: {fixed: 2s}\n")
    denied(wh.admit("/validate", review(cm, "ConfigMap")), 'configmap "team"',
           "policy.yaml:3:28: faults[0].match.destinations[0]", "without a port")
    # Issue 16: caller identity and mtls are known; a bad principal is denied with its position.
    cm["data"]["policy.yaml"] = ("mtls: {mode: STRICT}\nauthorization:\n  - rules:\n      - from: "
                                 "[{principals: [cluster.local/ns/demo/sa/frontend], "
                                 "notNamespaces: [test]}]\n")
    check(wh.admit("/validate", review(cm, "ConfigMap"))["allowed"], "identity policy denied")
    cm["data"]["policy.yaml"] = ("authorization:\n  - rules:\n      - from: "
                                 "[{principals: ['cluster.local/ns/*/sa/x']}]\n")
    denied(wh.admit("/validate", review(cm, "ConfigMap")), 'configmap "team"',
           "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]", "only works alone")
    check(wh.admit("/validate", review(load("configmap-other.json"), "ConfigMap"))["allowed"],
          "unrelated ConfigMap denied")

    # ---- bad input: clear 4xx or a denied review, and the server keeps serving ----------------
    for name, want in (("review-malformed.json", b"malformed JSON"),
                       ("review-no-request.json", b"no request"),
                       ("review-no-uid.json", b"no uid"),
                       ("review-wrong-kind.json", b"kind must be AdmissionReview"),
                       ("review-wrong-version.json", b"apiVersion")):
        for path in ("/mutate", "/validate"):
            status, body, _ = wh.request("POST", path, raw(name))
            check(status == 400 and want in body, "%s %s: %d %r" % (name, path, status, body))
    resp = wh.admit("/mutate", json.loads(raw("review-null-object.json")))
    denied(resp, "request.object")
    check(resp["status"]["code"] == 400, "null object code %r" % resp["status"])
    denied(wh.admit("/mutate", json.loads(raw("review-pod-bad-containers.json"))),
           "spec.containers")
    for body in (b"", b"null", b"[]", b"\"x\"", b"{}", b"\xff\xfe", b"{" * 5000):
        status, out, _ = wh.request("POST", "/mutate", body)
        check(status == 400, "body %r: %d %r" % (body[:20], status, out))
    status, out, _ = wh.request("POST", "/mutate", raw("review-null-object.json"), ctype="text/plain")
    check(status == 415 and b"application/json" in out, "415: %d %r" % (status, out))
    status, out, _ = wh.request("POST", "/mutate", raw("review-null-object.json"), ctype=None)
    check(status == 415, "no content type: %d" % status)
    status, out, _ = wh.request("GET", "/mutate", None)
    check(status == 405, "GET /mutate: %d" % status)
    status, out, _ = wh.request("GET", "/nope", None)
    check(status == 404, "GET /nope: %d" % status)
    status, out = wh.declare_length("/mutate", 3670016 + 1)
    check(status == 413 and b"over the limit" in out, "413 by Content-Length: %d %r" % (status, out))
    check(wh.declare_length("/validate", 10 ** 12)[0] == 413, "413 for a huge Content-Length")
    # Chunked, so the limit is found while streaming.
    conn = http.client.HTTPSConnection("localhost", wh.port, context=wh.ctx, timeout=20)
    conn.putrequest("POST", "/validate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    chunk = b" " * 65536
    try:
        for _ in range(3670016 // 65536 + 2):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        check(r.status == 413, "413 while streaming: %d" % r.status)
    except (BrokenPipeError, ConnectionResetError):
        fail("connection dropped instead of a 413")
    conn.close()
    # A big but legal object is fine: a pod with 3 MB of annotations.
    fat = load("pod-bare.json")
    fat["metadata"]["annotations"] = {"example.com/blob": "x" * (3 * 1024 * 1024 - 4096)}
    resp = wh.admit("/mutate", review(fat, "Pod"))
    check(resp["allowed"] and patch_of(resp), "large legal pod not injected")

    status, out, _ = wh.request("GET", "/healthz", None)
    check(status == 200, "healthz after bad input: %d" % status)
    status, out, _ = wh.request("GET", "/readyz", None)
    check(status == 200, "readyz: %d" % status)
    check(wh.admit("/mutate", review(load("pod-bare.json"), "Pod"))["allowed"], "next review")

    # ---- metrics and logs ----------------------------------------------------------------------
    status, text, _ = wh.request("GET", "/metrics", None)
    text = text.decode()
    check(status == 200, "metrics: %d" % status)

    def value(prefix):
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.rsplit(" ", 1)[1])
        fail("metric %s missing:\n%s" % (prefix, text))
    check(value('grpcguard_webhook_admissions_total{kind="Pod",operation="CREATE",allowed="true"}') >= 10,
          "pod admissions counter")
    check(value('grpcguard_webhook_admissions_total{kind="Service",operation="CREATE",allowed="false"}') >= 5,
          "service denials counter")
    check(value('grpcguard_webhook_admission_duration_seconds_count{route="mutate"}') >= 10,
          "duration histogram")
    check(value('grpcguard_webhook_rejected_requests_total{path="/mutate",code="413"}') >= 1,
          "413 counter")
    adm = [e for e in wh.proc.events() if e.get("event") == "admission"]
    inj = [e for e in adm if e.get("reason") == "injected" and e.get("name") == "server-7d9f8b6c5d-*"]
    check(inj and inj[0]["namespace"] == "demo" and inj[0]["kind"] == "Pod" and
          inj[0]["operation"] == "CREATE" and inj[0]["allowed"] is True and
          inj[0]["uid"].startswith("test-uid-"), "admission log line: %r" % (inj[:1],))
    den = [e for e in adm if e.get("allowed") is False and e.get("kind") == "Service"]
    check(den and "port 50051" in " ".join(e.get("detail", "") for e in den), "denial log")
    check(wh.proc.stop() == 0, "webhook exit code %r:\n%s" % (wh.proc.p.returncode,
                                                              wh.proc.log_text()[-2000:]))

    # ---- a config file: warn mode, plain-container proxy, CNI, extras ---------------------------
    cfg = os.path.join(tmp, "webhook.yaml")
    with open(cfg, "w") as f:
        f.write("""namespace: mesh-system
validation:
  mode: warn
injection:
  image: registry.example/grpcguard-sidecar:test
  imagePullPolicy: Always
  nativeSidecar: false
  interceptMode: cni
  policyConfigMap: ns-policy
  logLevel: debug
  excludeNamespaces: [skipme]
  extraAnnotations:
    example.com/injected-by: grpcguard
  resources:
    requests: {cpu: 5m, memory: 8Mi}
    limits: {memory: 32Mi}
limits:
  maxBodyBytes: 65536
  maxConnections: 16
  connectionTimeoutSeconds: 2
""")
    wh2 = Webhook(free_port(18430, 18439), ca, cert, key, config=cfg, env={"POD_NAMESPACE": "ignored"})
    resp = wh2.admit("/validate", review(load("service-misnamed.json"), "Service"))
    check(resp["allowed"] is True and any("my-grpc" in w for w in resp.get("warnings", [])),
          "warn mode: %r" % resp)
    dep = load("pod-deployment.json")
    pod = apply(copy.deepcopy(dep), wh2.admit("/mutate", review(dep, "Pod")))
    check_injected(dep, pod, ports="*", configmap="ns-policy", native=False, init=False,
                   exclude="9090", probes="9090")
    proxy = pod["spec"]["containers"][-1]
    check(proxy["image"] == "registry.example/grpcguard-sidecar:test" and
          proxy["imagePullPolicy"] == "Always", "image from config")
    check(proxy["resources"] == {"requests": {"cpu": "5m", "memory": "8Mi"},
                                 "limits": {"memory": "32Mi"}}, "resources %r" % proxy["resources"])
    check(proxy["args"][-2:] == ["--log-level", "debug"], "log level arg")
    check(pod["metadata"]["annotations"]["example.com/injected-by"] == "grpcguard", "extra annotation")
    for ns in ("skipme", "mesh-system"):
        no_patch(wh2.admit("/mutate", review(load("pod-bare.json"), "Pod", ns=ns)), "ns " + ns)
    check(wh2.admit("/mutate", review(load("pod-bare.json"), "Pod",
                                      ns="grpcguard-system"))["allowed"], "own ns from config")
    status, _ = wh2.declare_length("/mutate", 65537)
    check(status == 413, "maxBodyBytes from config: %d" % status)
    # Slowloris: half a request line, then silence -> closed after connectionTimeoutSeconds.
    raw_sock = socket.create_connection(("127.0.0.1", wh2.port), timeout=15)
    slow = wh2.ctx.wrap_socket(raw_sock, server_hostname="localhost")
    slow.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Le")
    t0 = time.monotonic()
    try:
        got = slow.recv(1024)
    except (ConnectionResetError, ssl.SSLError):
        got = b""
    waited = time.monotonic() - t0
    check(got == b"" and 1.5 <= waited <= 10, "idle connection: %r after %.1fs" % (got, waited))
    slow.close()
    # Whole-request deadline (issue 8): one byte every 0.3 s is never idle for
    # connectionTimeoutSeconds (2 s), yet the request must be in within 2 s of its start.
    def tls_conn():
        return wh2.ctx.wrap_socket(socket.create_connection(("127.0.0.1", wh2.port), timeout=15),
                                   server_hostname="localhost")

    def trickle(sock, data, what):
        """Send data a byte at a time; seconds until the server hung up (fails if it never does)."""
        t_start = time.monotonic()
        sock.settimeout(0.3)
        for i in range(len(data)):
            try:
                sock.sendall(data[i:i + 1])
                got_ = sock.recv(1024)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                got_ = b""
            check(got_ == b"" or b"408" in got_ or b"400" in got_,
                  "%s: unexpected answer %r" % (what, got_[:80]))
            return time.monotonic() - t_start
        fail("%s: still open after trickling %d bytes over %.1fs" %
             (what, len(data), time.monotonic() - t_start))

    scale = timeout_scale()
    c = tls_conn()
    el = trickle(c, b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 60,
                 "trickled headers")
    c.close()
    print("deadline: trickled headers cut after %.1fs" % el)
    check(1.5 <= el <= 4 * scale, "trickled headers cut after %.1fs, want about 2s" % el)
    c = tls_conn()
    c.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n{")
    el = trickle(c, b" " * 60, "trickled body")
    c.close()
    print("deadline: trickled body cut after %.1fs" % el)
    check(el <= 4 * scale, "trickled body cut after %.1fs, want about 2s" % el)
    # Keep-alive: each request gets its own deadline, so three quick requests 1.2 s apart
    # (3.6 s on one connection) are all served; then a trickled fourth one is cut.
    c = tls_conn()
    for i in range(3):
        if i:
            time.sleep(1.2)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while not got.endswith(b"\r\n\r\nok\n"):  # headers and body may come apart
            part = c.recv(1024)
            if not part:
                break
            got += part
        check(got.startswith(b"HTTP/1.1 200") and got.endswith(b"ok\n"),
              "keep-alive request %d: %r" % (i + 1, got[:60]))
    el = trickle(c, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60,
                 "trickled request after keep-alive")
    c.close()
    print("deadline: trickled keep-alive request cut after %.1fs" % el)
    check(el <= 4 * scale, "trickled keep-alive request cut after %.1fs" % el)
    # Across a certificate rotation (SIGHUP): the trickling connection stays with the retired
    # daemon and is still cut at its deadline, well before that daemon's drain time (4 s).
    c = tls_conn()
    c.sendall(b"POST /mutate HTTP/1.1\r\n")
    seen = len(wh2.proc.events())
    wh2.proc.p.send_signal(signal.SIGHUP)
    wh2.proc.wait_event("cert_reloaded", after=seen)
    el = trickle(c, b"Host: localhost\r\nX-Slow: " + b"a" * 60, "trickled across a rotation")
    c.close()
    print("deadline: trickled request across a rotation cut after %.1fs" % el)
    check(el <= 3 * scale, "trickled request across a rotation cut after %.1fs" % el)
    st, metrics_text, _ = wh2.request("GET", "/metrics", None)
    m = re.search(rb'grpcguard_webhook_rejected_requests_total\{path="/",code="request-timeout"\} (\d+)',
                  metrics_text)
    check(st == 200 and m is not None and int(m.group(1)) >= 3,
          "request-timeout counter: %r" % (m.group(0) if m else metrics_text[-600:]))
    ev = wh2.proc.wait_event("request_timeout")
    check(ev.get("peer") == "127.0.0.1" and ev.get("level") in ("warn", "warning"),
          "request_timeout log line: %r" % ev)
    # maxConnections: with 16 open, the next connection is not accepted (it waits in the
    # listen backlog) until one closes; then it is served.
    held = []
    for _ in range(16):
        c = wh2.ctx.wrap_socket(socket.create_connection(("127.0.0.1", wh2.port), timeout=15),
                                server_hostname="localhost")
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        check(c.recv(1024).startswith(b"HTTP/1.1 200"), "held connection not served")
        held.append(c)
    waiting = socket.create_connection(("127.0.0.1", wh2.port), timeout=1.0)
    try:
        wh2.ctx.wrap_socket(waiting, server_hostname="localhost")
        fail("connection 17 was accepted over maxConnections 16")
    except (socket.timeout, ssl.SSLError, OSError) as e:
        check("timed out" in str(e), "connection 17: %r" % e)
    waiting.close()
    for c in held:
        c.close()
    time.sleep(0.5)
    check(wh2.request("GET", "/healthz", None)[0] == 200, "serving after the connection cap")
    t_stop = time.monotonic()
    rc2 = wh2.proc.stop()
    check(rc2 == 0, "webhook 2 exit code %r after %.1fs:\n%s" % (rc2, time.monotonic() - t_stop,
                                                               wh2.proc.log_text()[-3000:]))

    # ---- config errors: file:line:column, exit 1 ---------------------------------------------------
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("injection:\n  proxyPort: 15006\n  nativeSidecars: true\n")
    rc, out, err = run([program("grpcguard-webhook"), "--listen", "127.0.0.1:0", "--tls-cert",
                        cert, "--tls-key", key, "--config", bad])
    check(rc == 1 and "bad.yaml:3:3: injection.nativeSidecars: unknown key" in err,
          "bad config: %d %s" % (rc, err))
    with open(bad, "w") as f:
        f.write("limits:\n  maxBodyBytes: lots\n")
    rc, out, err = run([program("grpcguard-webhook"), "--listen", "127.0.0.1:0", "--tls-cert",
                        cert, "--tls-key", key, "--config", bad])
    check(rc == 1 and "bad.yaml:2:17: limits.maxBodyBytes" in err, "bad value: %d %s" % (rc, err))
    # Every pod built from a patch above is a valid Kubernetes Pod (schemas + API rules).
    validate_patched(minimum=5)
    print("ok")


try:
    main()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
