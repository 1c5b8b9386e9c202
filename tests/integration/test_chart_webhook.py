#!/usr/bin/python3
"""The Helm chart and the real webhook agree.

The chart is rendered by the real Helm (tests/chart/helmtool.py) twice with non-default values; each time the
rendered webhook.yaml ConfigMap is handed to the real grpcguard-webhook (--config) with
the certificates the chart's mode provides, and the webhook is then used the way the API
server would use the rendered configuration:
- TLS: the client trusts only the caBundle of the rendered MutatingWebhookConfiguration and
  checks the Service DNS name the API server dials (<svc>.<ns>.svc);
  variant A: the chart's generated Secret (genCA/genSignedCert, RSA) serves;
  variant B: existingSecret mode, certificate from grpcguard-certgen (ECDSA), the caBundle
  from existingSecretCABundle;
- the Deployment's probe paths answer 200;
- a pod AdmissionReview to the MutatingWebhookConfiguration's path gets a JSONPatch whose
  containers carry the chart's image, ports, uid, log level, resources, annotations,
  policy ConfigMap name, native-sidecar and intercept mode settings;
- namespaces the chart's selector excludes are also refused by the webhook;
- Service and policy ConfigMap reviews to the ValidatingWebhookConfiguration's path
  follow validation.mode, and the chart's default policy ConfigMap is accepted by the real
  policy parser (as is the policy example of NOTES.txt, through `grpcguard-sidecar check`).
"""
import atexit
import base64
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib", "py"))
sys.path.insert(0, os.path.join(HERE, "..", "chart"))
from gg_testlib import (GG_BIN, Proc, certgen, check, free_port, program,  # noqa: E402
                        record_patched, run, skip, validate_patched)

try:
    import jsonpatch
except ImportError:
    skip("python3-jsonpatch is not installed")
import helmtool as helm  # noqa: E402

NS = "grpcguard-system"
SVC_HOST = "grpcguard-webhook.%s.svc" % NS
tmp = tempfile.mkdtemp(prefix="gg-chart-wh.")
atexit.register(shutil.rmtree, tmp, True)
WEBHOOK = program("grpcguard-webhook")
program("grpcguard-certgen")

POLICY = {
    "apiVersion": "grpcguard.io/v1", "kind": "Policy",
    "faults": [{"name": "slow-hello", "match": {"methods": ["/helloworld.Greeter/SayHello"]},
                "delay": {"fixed": "250ms", "percent": 50}}],
    "authorization": [{"name": "deny-admin", "action": "DENY",
                       "rules": [{"to": [{"methods": ["/admin.Admin/*"]}]}]}],
}


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def rendered_parts(r):
    cfg = r.one("ConfigMap", "grpcguard-webhook-config")["data"]["webhook.yaml"]
    mwc = r.one("MutatingWebhookConfiguration")["webhooks"][0]
    vwc = r.one("ValidatingWebhookConfiguration")["webhooks"][0]
    dep = r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    return cfg, mwc, vwc, dep


class _ServiceConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 that verifies the certificate for the Service's DNS name (and
    sends it as Host), as the API server does for clientConfig.service."""

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=SVC_HOST)


class Webhook:
    """The real webhook serving the rendered config; requests as the API server makes them."""

    def __init__(self, name, cfg_text, cert, key, ca_bundle_b64, dep):
        self.port = free_port(28000, 28099)
        cfg = write(name + "-webhook.yaml", cfg_text)
        # The Deployment's args with the listen address and file paths of this machine.
        args = list(dep["args"])
        subst = {"--listen": "127.0.0.1:%d" % self.port, "--tls-cert": cert,
                 "--tls-key": key, "--config": cfg}
        for i, a in enumerate(args[:-1]):
            if a in subst:
                args[i + 1] = subst.pop(a)
        check(not subst, "Deployment args lack %s" % sorted(subst))
        self.proc = Proc([WEBHOOK] + args + ["--threads", "2", "--drain-seconds", "1"],
                         env={"POD_NAMESPACE": "wrong-namespace-config-wins"})
        self.proc.wait_event("listening")
        ca = write(name + "-cabundle.crt", base64.b64decode(ca_bundle_b64).decode())
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.check_hostname = True

    def request(self, method, path, body=None):
        conn = _ServiceConnection(SVC_HOST, self.port, timeout=20, context=self.ctx)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        out = r.status, r.read()
        conn.close()
        return out

    def review(self, path, obj, kind, ns):
        plural = {"Pod": "pods", "Service": "services", "ConfigMap": "configmaps"}[kind]
        rev = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
               "request": {"uid": "chart-%s-%s" % (kind, ns),
                           "kind": {"group": "", "version": "v1", "kind": kind},
                           "resource": {"group": "", "version": "v1", "resource": plural},
                           "operation": "CREATE", "namespace": ns, "name": obj["metadata"]["name"],
                           "userInfo": {"username": "test"}, "object": obj, "dryRun": False}}
        status, body = self.request("POST", path, json.dumps(rev).encode())
        check(status == 200, "%s: HTTP %d %s" % (path, status, body[:300]))
        resp = json.loads(body)["response"]
        check(resp["uid"] == rev["request"]["uid"], "uid not echoed")
        return resp

    def stop(self):
        rc = self.proc.stop()
        check(rc == 0, "webhook exited %s on SIGTERM:\n%s" % (rc, self.proc.log_text()[-2000:]))


def pod(name="server", labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": labels or {"app": "server"}},
            "spec": {"containers": [{"name": "app", "image": "greeter:1",
                                     "ports": [{"name": "grpc", "containerPort": 50051}]}]}}


def injected(wh, mwc, ns="demo"):
    resp = wh.review(mwc["clientConfig"]["service"]["path"], pod(), "Pod", ns)
    check(resp["allowed"], "pod denied: %r" % resp)
    if "patch" not in resp:
        return None
    ops = json.loads(base64.b64decode(resp["patch"]))
    return record_patched(jsonpatch.apply_patch(pod(), ops), "chart-" + ns)


def by_name(items, name):
    found = [c for c in items or [] if c.get("name") == name]
    return found[0] if found else None


def probes(wh, dep):
    for probe in ("readinessProbe", "livenessProbe"):
        g = dep[probe]["httpGet"]
        check(g["scheme"] == "HTTPS", probe + " scheme")
        status, body = wh.request("GET", g["path"])
        check(status == 200, "%s %s: HTTP %d %s" % (probe, g["path"], status, body[:200]))


def variant_a():
    """Generated certificates, native sidecar + init container, enforce mode."""
    r = helm.template(namespace=NS, values={
        "injection": {"image": {"repository": "registry.example/gg/sidecar", "tag": "1.2.3"},
                      "imagePullPolicy": "Always", "proxyPort": 16006, "adminPort": 16020,
                      "proxyUID": 2000, "logLevel": "debug", "policyConfigMap": "chaos",
                      "extraAnnotations": {"team": "blue"},
                      "resources": {"requests": {"cpu": "20m", "memory": "24Mi"},
                                    "limits": {"cpu": "2", "memory": "96Mi"}}},
        "webhook": {"excludeNamespaces": ["legacy"]},
        "limits": {"maxBodyBytes": 262144},
        "metrics": {"podMonitor": {"enabled": True}},
        "defaultPolicy": {"namespaces": ["demo"], "policy": POLICY}})
    cfg, mwc, vwc, dep = rendered_parts(r)
    secret = r.one("Secret")["data"]
    cert = write("a-tls.crt", base64.b64decode(secret["tls.crt"]).decode())
    key = write("a-tls.key", base64.b64decode(secret["tls.key"]).decode())
    check(mwc["clientConfig"]["caBundle"] == vwc["clientConfig"]["caBundle"], "caBundles differ")
    wh = Webhook("a", cfg, cert, key, mwc["clientConfig"]["caBundle"], dep)
    probes(wh, dep)

    p = injected(wh, mwc)
    check(p is not None, "no patch for a pod in an enabled namespace")
    proxy = by_name(p["spec"].get("initContainers"), "grpcguard-proxy")
    check(proxy is not None, "nativeSidecar: grpcguard-proxy must be an init container: %r" % p["spec"])
    check(proxy.get("restartPolicy") == "Always", "native sidecar restartPolicy: %r" % proxy)
    check(proxy["image"] == "registry.example/gg/sidecar:1.2.3", "proxy image %r" % proxy["image"])
    check(proxy["imagePullPolicy"] == "Always", "pull policy %r" % proxy["imagePullPolicy"])
    check("command" not in proxy, "the image's ENTRYPOINT must run (no command)")
    a = proxy["args"]
    check(a[0] == "run", "proxy args %r" % a)
    for flag, val in (("--listen", "[::]:16006"), ("--admin", "[::]:16020"),
                      ("--log-level", "debug"), ("--upstream", "original-dst")):
        check(flag in a and a[a.index(flag) + 1] == val, "proxy %s %s missing: %r" % (flag, val, a))
    check(proxy["securityContext"]["runAsUser"] == 2000, "proxy uid %r" % proxy["securityContext"])
    check(proxy["resources"] == {"requests": {"cpu": "20m", "memory": "24Mi"},
                                 "limits": {"cpu": "2", "memory": "96Mi"}},
          "proxy resources %r" % proxy.get("resources"))
    # The chart's PodMonitor scrapes the admin port by the name the injector gives it.
    (ep,) = r.one("PodMonitor")["spec"]["podMetricsEndpoints"]
    admin = [pt for pt in proxy.get("ports", []) if pt.get("name") == ep["port"]]
    check(admin and admin[0]["containerPort"] == 16020,
          "PodMonitor port %r is not the proxy's admin port: %r" % (ep["port"], proxy.get("ports")))
    init = by_name(p["spec"]["initContainers"], "grpcguard-init")
    check(init is not None, "interceptMode init: grpcguard-init missing")
    check(init["image"] == proxy["image"], "init image")
    ia = init["args"]
    check(ia[0] == "init" and ia[ia.index("--proxy-port") + 1] == "16006"
          and ia[ia.index("--proxy-uid") + 1] == "2000", "init args %r" % ia)
    ann = p["metadata"]["annotations"]
    check(ann.get("team") == "blue", "extraAnnotations missing: %r" % ann)
    check("grpcguard.io/status" in ann, "status annotation missing")
    vols = p["spec"]["volumes"]
    check(any(v.get("configMap", {}).get("name") == "chaos" for v in vols),
          "policy ConfigMap name from the chart not used: %r" % vols)

    # Namespaces the chart's namespaceSelector excludes are refused by the webhook too.
    for ns in ("legacy", NS, "kube-system"):
        check(injected(wh, mwc, ns) is None, "pod in %s was injected" % ns)

    # Validation: enforce mode denies a misnamed Service; the chart's default policy passes.
    vpath = vwc["clientConfig"]["service"]["path"]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server", "namespace": "demo"},
           "spec": {"ports": [{"port": 8080}]}}
    resp = wh.review(vpath, svc, "Service", "demo")
    check(resp["allowed"] is False, "enforce: unnamed port allowed: %r" % resp)
    (cm,) = [c for c in r.find("ConfigMap") if c["metadata"]["namespace"] == "demo"]
    resp = wh.review(vpath, cm, "ConfigMap", "demo")
    check(resp["allowed"] is True and not resp.get("warnings"),
          "the chart's default policy ConfigMap is rejected by the webhook: %r" % resp)
    bad = json.loads(json.dumps(cm))
    bad["data"]["policy.yaml"] = "apiVersion: grpcguard.io/v1\nkind: Policy\nfaults: [{delay: {fixed: soon}}]\n"
    resp = wh.review(vpath, bad, "ConfigMap", "demo")
    check(resp["allowed"] is False, "a broken policy ConfigMap was allowed: %r" % resp)

    # The body limit from the chart reaches the server (262144 bytes).
    big = pod()
    big["metadata"]["annotations"] = {"filler": "x" * 300000}
    body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "big", "object": big}}).encode()
    # Declare the size and send only the headers: the server answers 413 from Content-Length
    # at once (sending the body too races the server's early answer and close: EPIPE/EOF).
    conn = _ServiceConnection(SVC_HOST, wh.port, timeout=20, context=wh.ctx)
    conn.putrequest("POST", mwc["clientConfig"]["service"]["path"])
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    check(status == 413, "limits.maxBodyBytes not applied: HTTP %d" % status)
    wh.stop()
    return r


def variant_b():
    """existingSecret from grpcguard-certgen, plain container, CNI mode, warn mode."""
    ca, cert, key = certgen(os.path.join(tmp, "certs"), service="grpcguard-webhook",
                            namespace=NS, extra=())
    r = helm.template(namespace=NS, set=[
        "existingSecret=grpcguard-webhook-tls", "validation.mode=warn",
        "injection.nativeSidecar=false", "injection.interceptMode=cni"],
        set_file=["existingSecretCABundle=" + ca])
    check(r.find("Secret") == [], "existingSecret mode rendered a Secret")
    cfg, mwc, vwc, dep = rendered_parts(r)
    wh = Webhook("b", cfg, cert, key, mwc["clientConfig"]["caBundle"], dep)
    probes(wh, dep)
    p = injected(wh, mwc)
    check(p is not None, "no patch in variant b")
    proxy = by_name(p["spec"]["containers"], "grpcguard-proxy")
    check(proxy is not None and "restartPolicy" not in proxy,
          "nativeSidecar=false: proxy must be a plain container: %r" % p["spec"])
    check(proxy["image"] == "grpcguard/grpcguard-sidecar:0.1.0", "default image %r" % proxy["image"])
    check(by_name(p["spec"].get("initContainers"), "grpcguard-init") is None,
          "interceptMode cni: no grpcguard-init expected")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "server", "namespace": "demo"},
           "spec": {"ports": [{"port": 8080}]}}
    resp = wh.review(vwc["clientConfig"]["service"]["path"], svc, "Service", "demo")
    check(resp["allowed"] is True and resp.get("warnings"),
          "warn mode: expected allowed with warnings: %r" % resp)
    wh.stop()


def sidecar_checks(r_notes):
    side = os.path.join(GG_BIN, "grpcguard-sidecar")
    if not os.access(side, os.X_OK):
        print("grpcguard-sidecar not built: policy checks skipped")
        return
    default_policy = helm.template(set=["defaultPolicy.namespaces={demo}"]).find("ConfigMap", "grpcguard-policy")[0]
    notes = r_notes.notes or ""
    start = notes.index("cat <<'POLICY' > policy.yaml\n") + len("cat <<'POLICY' > policy.yaml\n")
    example = textwrap.dedent(notes[start:notes.index("     POLICY\n", start)])
    for name, text in (("default-policy.yaml", default_policy["data"]["policy.yaml"]),
                       ("notes-policy.yaml", example)):
        rc, out, err = run([side, "check", write(name, text)])
        check(rc == 0, "grpcguard-sidecar check rejects the chart's %s:\n%s%s\n%s" % (name, out, err, text))


def main():
    variant_a()
    variant_b()
    sidecar_checks(helm.template(namespace=NS, notes=True))
    # The pods the chart-configured webhook patched are valid Kubernetes Pods (native
    # sidecar restartPolicy included).
    validate_patched(minimum=2)
    print("chart and webhook agree (config, certificates, probes, injection, validation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
