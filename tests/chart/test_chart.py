#!/usr/bin/python3
"""Checks on the rendered Helm chart charts/grpcguard (run by tests/integration/test_chart.sh).

The chart is rendered with the real Helm 3.17.1 (tests/chart/helmtool.py; Helm checks
values.schema.json itself); the documents are then checked as Kubernetes and the API
server would see them: names and labels, selectors evaluated against example namespaces
and pods, certificates checked with openssl, each certificate mode, the webhook config
file, the schema's verdict on good and bad values, and deploy/ being up to date.
"""
import atexit
import base64
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helmtool as helm  # noqa: E402

NS = "grpcguard-system"
SVC = "grpcguard-webhook"
CLUSTER_SCOPED = {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                  "ClusterRole", "ClusterRoleBinding", "Namespace"}
STANDARD_LABELS = ("helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                   "app.kubernetes.io/part-of")
# The webhook config file contract (issue 6 / docs/helm.md): every key the chart writes.
CONFIG_KEYS = {
    "namespace": None,
    "validation": {"mode"},
    "injection": {"image", "imagePullPolicy", "nativeSidecar", "interceptMode", "ipv4Only",
                  "proxyPort",
                  "adminPort", "proxyUID", "policyConfigMap", "logLevel", "excludeNamespaces",
                  "extraAnnotations", "resources"},
    "limits": {"maxBodyBytes", "maxConnections", "connectionTimeoutSeconds"},
}

_default = None


def default():
    global _default
    if _default is None:
        _default = helm.template(namespace=NS, notes=True)
    return _default


def selects(selector, labels):
    """A Kubernetes LabelSelector evaluated against a label map."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(k) not in vals:
            return False
        if op == "NotIn" and k in labels and labels[k] in vals:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def ns_labels(name, enabled=True):
    labels = {"kubernetes.io/metadata.name": name}
    if enabled:
        labels["grpcguard-injection"] = "enabled"
    return labels


def webhook_config_file(r):
    cm = r.one("ConfigMap", SVC + "-config")
    return yaml.safe_load(cm["data"]["webhook.yaml"])


def openssl(*args, data=None):
    p = subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    return p.returncode, p.stdout


class Render(unittest.TestCase):
    def test_documents_have_kind_name_labels_namespace(self):
        r = default()
        self.assertGreater(len(r.docs), 5)
        self.assertEqual(len(r.docs), len(r.sources))
        for d, src in zip(r.docs, r.sources):
            where = "%s (%s)" % (d.get("kind"), src)
            self.assertIsInstance(d, dict, where)
            for key in ("apiVersion", "kind"):
                self.assertTrue(d.get(key), "%s: no %s" % (where, key))
            md = d.get("metadata") or {}
            self.assertRegex(md.get("name", ""), r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", where)
            self.assertLessEqual(len(md["name"]), 63, where)
            labels = md.get("labels") or {}
            for lab in STANDARD_LABELS:
                self.assertIn(lab, labels, "%s: label %s missing" % (where, lab))
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm")
            self.assertEqual(labels["app.kubernetes.io/instance"], "grpcguard")
            if d["kind"] in CLUSTER_SCOPED:
                self.assertNotIn("namespace", md, where)
            else:
                self.assertEqual(md.get("namespace"), NS, where)

    def test_default_objects(self):
        kinds = sorted(d["kind"] for d in default().docs)
        self.assertEqual(kinds, sorted([
            "ConfigMap", "Deployment", "MutatingWebhookConfiguration", "PodDisruptionBudget",
            "Secret", "Service", "ServiceAccount", "ValidatingWebhookConfiguration"]))

    def test_install_order(self):
        # Helm's order: the Secret and ConfigMap exist before the Deployment mounts them,
        # and the webhook configurations come last.
        kinds = [d["kind"] for d in default().docs]
        self.assertLess(kinds.index("Secret"), kinds.index("Deployment"))
        self.assertLess(kinds.index("ConfigMap"), kinds.index("Deployment"))
        self.assertGreater(kinds.index("MutatingWebhookConfiguration"), kinds.index("Deployment"))

    def test_notes(self):
        notes = default().notes or ""
        self.assertIn("kubectl label namespace", notes)
        self.assertIn("grpcguard-injection=enabled", notes)
        self.assertIn("kind: Policy", notes)
        self.assertIn("grpcguard-policy", notes)
        self.assertIn("rollout status deployment/%s" % SVC, notes)

    def test_user_labels_never_duplicate_or_override_ours(self):
        # A duplicate key makes the API server (and Helm) reject the object; a changed
        # selector label would orphan the webhook pods.
        clash = {"app.kubernetes.io/component": "x", "app.kubernetes.io/instance": "x",
                 "app.kubernetes.io/managed-by": "x", "helm.sh/chart": "x", "team": "blue"}
        r = helm.template(namespace=NS, values={
            "commonLabels": clash, "podLabels": clash,
            "podAnnotations": {"checksum/config": "x", "prometheus.io/port": "9999"},
            "grafanaDashboard": {"enabled": True, "labels": dict(clash, grafana_dashboard="1")},
            "metrics": {"podMonitor": {"enabled": True, "labels": clash},
                        "serviceMonitor": {"enabled": True, "labels": clash}},
            "defaultPolicy": {"namespaces": ["demo"]}})
        for d in r.docs:
            labels = d["metadata"]["labels"]
            self.assertEqual(labels["team"], "blue", d["kind"])
            self.assertEqual(labels["app.kubernetes.io/instance"], "grpcguard", d["kind"])
            self.assertEqual(labels["app.kubernetes.io/managed-by"], "Helm", d["kind"])
            self.assertNotEqual(labels["app.kubernetes.io/component"], "x", d["kind"])
        self.assertEqual(r.one("ConfigMap", "grpcguard-dashboard")["metadata"]["labels"][
            "grafana_dashboard"], "1")
        pod = r.one("Deployment")["spec"]["template"]["metadata"]
        self.assertEqual(pod["labels"]["app.kubernetes.io/component"], "webhook")
        self.assertEqual(pod["labels"]["team"], "blue")
        self.assertRegex(pod["annotations"]["checksum/config"], "^[0-9a-f]{64}$")
        self.assertEqual(pod["annotations"]["prometheus.io/port"], "9999")
        # The strict loader the checks use does reject duplicates (the check can fail).
        with self.assertRaises(yaml.YAMLError):
            list(yaml.load_all("metadata:\n  labels: {a: 1, a: 2}\n", Loader=helm.StrictLoader))

    def test_names_follow_release(self):
        r = helm.template(name="gg", namespace="prod")
        self.assertEqual(r.one("Deployment")["metadata"]["name"], "gg-grpcguard-webhook")
        self.assertEqual(r.one("MutatingWebhookConfiguration")["metadata"]["name"], "gg-grpcguard")
        r = helm.template(name="grpcguard-canary", namespace="prod")
        self.assertEqual(r.one("Service")["metadata"]["name"], "grpcguard-canary-webhook")
        r = helm.template(name="x", set=["fullnameOverride=guard"])
        self.assertEqual(r.one("Service")["metadata"]["name"], "guard-webhook")
        self.assertEqual(r.one("Secret")["metadata"]["name"], "guard-webhook-tls")


class Deployment(unittest.TestCase):
    def test_pod_spec(self):
        r = default()
        dep = r.one("Deployment", SVC)
        self.assertEqual(dep["spec"]["replicas"], 2)
        self.assertEqual(dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        pod = dep["spec"]["template"]
        self.assertTrue(selects(dep["spec"]["selector"], pod["metadata"]["labels"]))
        spec = pod["spec"]
        self.assertEqual(spec["serviceAccountName"], r.one("ServiceAccount")["metadata"]["name"])
        self.assertIs(spec["automountServiceAccountToken"], False)
        psc = spec["securityContext"]
        self.assertIs(psc["runAsNonRoot"], True)
        self.assertNotEqual(psc["runAsUser"], 0)
        self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
        (c,) = spec["containers"]
        self.assertEqual(c["image"], "grpcguard/grpcguard-webhook:0.1.0")
        self.assertEqual(c["args"], [
            "--listen", "0.0.0.0:8443", "--tls-cert", "/etc/grpcguard/tls/tls.crt",
            "--tls-key", "/etc/grpcguard/tls/tls.key",
            "--config", "/etc/grpcguard/config/webhook.yaml", "--log-level", "info"])
        sc = c["securityContext"]
        self.assertIs(sc["readOnlyRootFilesystem"], True)
        self.assertIs(sc["allowPrivilegeEscalation"], False)
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
        self.assertTrue(c["resources"]["requests"]["memory"])
        self.assertTrue(c["resources"]["limits"]["memory"])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"https": 8443})
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            g = c[probe]["httpGet"]
            self.assertEqual((g["path"], g["port"], g["scheme"]), (path, "https", "HTTPS"))
        # Volumes: the mounted paths hold what the args name, from the objects rendered.
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        self.assertEqual(mounts, {"config": "/etc/grpcguard/config", "tls": "/etc/grpcguard/tls"})
        vols = {v["name"]: v for v in spec["volumes"]}
        cm = r.one("ConfigMap", vols["config"]["configMap"]["name"])
        self.assertIn("webhook.yaml", cm["data"])
        secret = r.one("Secret", vols["tls"]["secret"]["secretName"])
        self.assertEqual(secret["type"], "kubernetes.io/tls")
        self.assertEqual(set(secret["data"]), {"ca.crt", "tls.crt", "tls.key"})
        self.assertEqual(vols["tls"]["secret"]["defaultMode"], 0o440)
        self.assertEqual(psc["fsGroup"], psc["runAsGroup"])
        # Anti-affinity spreads the replicas over nodes.
        term = spec["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
        self.assertTrue(selects(term["labelSelector"], pod["metadata"]["labels"]))

    def test_service_and_pdb_select_the_pods(self):
        r = default()
        pod_labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        svc = r.one("Service", SVC)
        self.assertTrue(selects({"matchLabels": svc["spec"]["selector"]}, pod_labels))
        (port,) = svc["spec"]["ports"]
        self.assertEqual((port["port"], port["targetPort"]), (443, "https"))
        pdb = r.one("PodDisruptionBudget")
        self.assertTrue(selects(pdb["spec"]["selector"], pod_labels))
        self.assertEqual(pdb["spec"]["minAvailable"], 1)
        # Another release's pods are not selected.
        other = dict(pod_labels, **{"app.kubernetes.io/instance": "other"})
        self.assertFalse(selects({"matchLabels": svc["spec"]["selector"]}, other))

    def test_config_change_rolls_pods(self):
        a = default().one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        b = helm.template(namespace=NS, set=["validation.mode=warn"]).one("Deployment")
        b = b["spec"]["template"]["metadata"]["annotations"]
        self.assertRegex(a["checksum/config"], "^[0-9a-f]{64}$")
        self.assertNotEqual(a["checksum/config"], b["checksum/config"])

    def test_overrides(self):
        r = helm.template(namespace=NS, set=[
            "replicaCount=3", "podAntiAffinity=hard", "containerPort=9443",
            "image.digest=sha256:" + "a" * 64, "priorityClassName=system-cluster-critical",
            "imagePullSecrets[0].name=regcred", "service.port=8443", "hostNetwork=true",
            "listenHost=[::]"])
        dep = r.one("Deployment")
        spec = dep["spec"]["template"]["spec"]
        self.assertEqual(dep["spec"]["replicas"], 3)
        self.assertIn("requiredDuringSchedulingIgnoredDuringExecution",
                      spec["affinity"]["podAntiAffinity"])
        c = spec["containers"][0]
        self.assertEqual(c["image"], "grpcguard/grpcguard-webhook@sha256:" + "a" * 64)
        self.assertIn("[::]:9443", c["args"])
        self.assertEqual(c["ports"][0]["containerPort"], 9443)
        self.assertEqual(spec["priorityClassName"], "system-cluster-critical")
        self.assertEqual(spec["imagePullSecrets"], [{"name": "regcred"}])
        self.assertEqual((spec["hostNetwork"], spec["dnsPolicy"]), (True, "ClusterFirstWithHostNet"))
        self.assertNotIn("hostNetwork", default().one("Deployment")["spec"]["template"]["spec"])
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            self.assertEqual(r.one(kind)["webhooks"][0]["clientConfig"]["service"]["port"], 8443)

    def test_network_policy(self):
        self.assertEqual(default().find("NetworkPolicy"), [])
        r = helm.template(namespace=NS, values={"networkPolicy": {
            "enabled": True, "ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}})
        np = r.one("NetworkPolicy")["spec"]
        pod_labels = r.one("Deployment")["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects(np["podSelector"], pod_labels))
        self.assertEqual(sorted(np["policyTypes"]), ["Egress", "Ingress"])
        self.assertEqual(np["egress"], [])
        (rule,) = np["ingress"]
        self.assertEqual(rule["ports"], [{"port": 8443, "protocol": "TCP"}])
        self.assertEqual(rule["from"], [{"ipBlock": {"cidr": "10.0.0.0/8"}}])
        r = helm.template(set=["networkPolicy.enabled=true"])
        self.assertNotIn("from", r.one("NetworkPolicy")["spec"]["ingress"][0])

    def test_single_replica_has_no_pdb(self):
        r = helm.template(set=["replicaCount=1"])
        self.assertEqual(r.find("PodDisruptionBudget"), [])
        with self.assertRaisesRegex(helm.RenderError, "minAvailable"):
            helm.template(set=["podDisruptionBudget.minAvailable=2"])

    def test_optional_objects_off(self):
        r = helm.template(set=["injection.enabled=false", "validation.enabled=false",
                               "serviceAccount.create=false"])
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
                     "ServiceAccount"):
            self.assertEqual(r.find(kind), [], kind)
        self.assertEqual(r.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"],
                         "default")


class WebhookConfigurations(unittest.TestCase):
    def hooks(self, r):
        (m,) = r.one("MutatingWebhookConfiguration")["webhooks"]
        (v,) = r.one("ValidatingWebhookConfiguration")["webhooks"]
        return m, v

    def test_fields(self):
        r = default()
        m, v = self.hooks(r)
        svc = r.one("Service")
        for h, path in ((m, "/mutate"), (v, "/validate")):
            ref = h["clientConfig"]["service"]
            self.assertEqual(ref, {"name": svc["metadata"]["name"], "namespace": NS,
                                   "path": path, "port": svc["spec"]["ports"][0]["port"]})
            self.assertEqual(h["admissionReviewVersions"], ["v1"])
            self.assertEqual(h["sideEffects"], "None")
            self.assertEqual(h["failurePolicy"], "Fail")
            self.assertTrue(1 <= h["timeoutSeconds"] <= 30)
            self.assertRegex(h["name"], r"^[a-z0-9-]+(\.[a-z0-9-]+){2,}$")
        self.assertEqual(m["reinvocationPolicy"], "IfNeeded")
        (rule,) = m["rules"]
        self.assertEqual((rule["operations"], rule["apiGroups"], rule["resources"]),
                         (["CREATE"], [""], ["pods"]))
        (rule,) = v["rules"]
        self.assertEqual((sorted(rule["operations"]), rule["apiGroups"], sorted(rule["resources"])),
                         (["CREATE", "UPDATE"], [""], ["configmaps", "services"]))
        self.assertNotIn("objectSelector", v)

    def test_configmap_match_conditions(self):
        # Kubernetes 1.28+: only policy ConfigMaps reach the webhook (CEL matchConditions).
        r = helm.template(namespace=NS, set=["injection.policyConfigMap=chaos"])
        _, v = self.hooks(r)
        (cond,) = v["matchConditions"]
        e = cond["expression"]
        self.assertIn("request.resource.resource != 'configmaps'", e)
        self.assertIn("object.metadata.name == 'chaos'", e)
        self.assertIn("object.metadata.labels['grpcguard.io/policy'] == 'true'", e)
        self.assertEqual(e.count("("), e.count(")"))
        # Older clusters have no matchConditions: every ConfigMap is sent (and allowed).
        r = helm.template(kube_version="v1.27.4", set=["injection.nativeSidecar=false"])
        self.assertNotIn("matchConditions", self.hooks(r)[1])

    def test_selectors(self):
        m, v = self.hooks(default())
        for h in (m, v):
            sel = h["namespaceSelector"]
            self.assertTrue(selects(sel, ns_labels("demo")))
            self.assertFalse(selects(sel, ns_labels("demo", enabled=False)))
            self.assertFalse(selects(sel, {"grpcguard-injection": "disabled"}))
            for ns in (NS, "kube-system", "kube-public", "kube-node-lease"):
                self.assertFalse(selects(sel, ns_labels(ns)), ns)
        obj = m["objectSelector"]
        self.assertTrue(selects(obj, {"app": "server"}))
        self.assertTrue(selects(obj, {"grpcguard.io/inject": "true"}))
        self.assertFalse(selects(obj, {"app": "server", "grpcguard.io/inject": "false"}))
        self.assertEqual(m["namespaceSelector"], v["namespaceSelector"])

    def test_values(self):
        r = helm.template(namespace="mesh", set=[
            "injection.failurePolicy=Ignore", "validation.failurePolicy=Ignore",
            "webhook.timeoutSeconds=5", "webhook.excludeNamespaces={legacy,batch}"])
        m, v = self.hooks(r)
        self.assertEqual((m["failurePolicy"], v["failurePolicy"]), ("Ignore", "Ignore"))
        self.assertEqual(m["timeoutSeconds"], 5)
        for ns in ("legacy", "batch", "mesh"):
            self.assertFalse(selects(m["namespaceSelector"], ns_labels(ns)), ns)
        self.assertTrue(selects(m["namespaceSelector"], ns_labels(NS)))
        self.assertEqual(webhook_config_file(r)["injection"]["excludeNamespaces"],
                         ["legacy", "batch"])


class Certificates(unittest.TestCase):
    def pem(self, r):
        s = r.one("Secret")["data"]
        return {k: base64.b64decode(s[k]).decode() for k in s}

    def test_ca_bundle_is_the_secrets_ca_and_verifies_the_cert(self):
        r = default()
        pem = self.pem(r)
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            bundle = r.one(kind)["webhooks"][0]["clientConfig"]["caBundle"]
            self.assertEqual(base64.b64decode(bundle).decode(), pem["ca.crt"], kind)
        with tempfile.TemporaryDirectory() as d:
            for k, v in pem.items():
                with open(os.path.join(d, k), "w") as f:
                    f.write(v)
            ca, crt, key = (os.path.join(d, k) for k in ("ca.crt", "tls.crt", "tls.key"))
            # The API server dials <svc>.<ns>.svc and checks the name against the SANs.
            for host in ("%s.%s.svc" % (SVC, NS), "%s.%s.svc.cluster.local" % (SVC, NS)):
                rc, out = openssl("verify", "-CAfile", ca, "-purpose", "sslserver",
                                  "-verify_hostname", host, crt)
                self.assertEqual(rc, 0, out)
            rc, out = openssl("verify", "-CAfile", ca, "-verify_hostname",
                              "%s.other-ns.svc" % SVC, crt)
            self.assertNotEqual(rc, 0, "cert must not be valid for another namespace")
            # The key belongs to the certificate.
            _, pub1 = openssl("x509", "-in", crt, "-noout", "-pubkey")
            _, pub2 = openssl("pkey", "-in", key, "-pubout")
            self.assertEqual(pub1, pub2)
            # A foreign CA does not verify it (the check can fail).
            other = helm.template(namespace=NS)
            with open(ca, "w") as f:
                f.write(self.pem(other)["ca.crt"])
            rc, out = openssl("verify", "-CAfile", ca, crt)
            self.assertNotEqual(rc, 0)

    def test_reused_on_upgrade(self):
        first = helm.template(namespace=NS)
        secret = first.one("Secret")
        again = helm.template(namespace=NS, upgrade=True, lookup=[secret])
        self.assertEqual(again.one("Secret")["data"], secret["data"])
        self.assertEqual(
            again.one("MutatingWebhookConfiguration")["webhooks"][0]["clientConfig"]["caBundle"],
            secret["data"]["ca.crt"])
        # Without the Secret in the cluster (helm template, first install) new ones are made.
        fresh = helm.template(namespace=NS, upgrade=True, lookup=[])
        self.assertNotEqual(fresh.one("Secret")["data"]["ca.crt"], secret["data"]["ca.crt"])
        # A Secret of the same name elsewhere is not reused.
        moved = dict(secret, metadata=dict(secret["metadata"], namespace="elsewhere"))
        other = helm.template(namespace=NS, upgrade=True, lookup=[moved])
        self.assertNotEqual(other.one("Secret")["data"]["ca.crt"], secret["data"]["ca.crt"])

    def test_validity_days(self):
        r = helm.template(namespace=NS, set=["certValidityDays=30"])
        with tempfile.NamedTemporaryFile("w", suffix=".crt") as f:
            f.write(self.pem(r)["tls.crt"])
            f.flush()
            rc, _ = openssl("x509", "-in", f.name, "-noout", "-checkend", str(29 * 86400))
            self.assertEqual(rc, 0)
            rc, _ = openssl("x509", "-in", f.name, "-noout", "-checkend", str(31 * 86400))
            self.assertNotEqual(rc, 0)

    def test_cert_manager(self):
        r = helm.template(namespace=NS, set=["certManager.enabled=true"])
        self.assertEqual(r.find("Secret"), [])
        # Nothing is generated at render time (genCA output would differ between renders).
        self.assertEqual(r.text, helm.template(namespace=NS, set=["certManager.enabled=true"]).text)
        self.assertNotIn("PRIVATE KEY", r.text)
        dep = r.one("Deployment")
        secret_name = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}[
            "tls"]["secret"]["secretName"]
        certs = {c["metadata"]["name"]: c for c in r.find("Certificate")}
        issuers = {i["metadata"]["name"]: i for i in r.find("Issuer")}
        self.assertEqual(set(certs), {"grpcguard-ca", SVC})
        serving = certs[SVC]["spec"]
        self.assertEqual(serving["secretName"], secret_name)
        self.assertIn("%s.%s.svc" % (SVC, NS), serving["dnsNames"])
        # Chain: self-signed issuer -> CA certificate -> CA issuer -> serving certificate.
        ca = certs["grpcguard-ca"]["spec"]
        self.assertTrue(ca["isCA"])
        self.assertIn("selfSigned", issuers[ca["issuerRef"]["name"]]["spec"])
        self.assertEqual(issuers[serving["issuerRef"]["name"]]["spec"]["ca"]["secretName"],
                         ca["secretName"])
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            obj = r.one(kind)
            self.assertEqual(obj["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
                             "%s/%s" % (NS, SVC))
            self.assertNotIn("caBundle", obj["webhooks"][0]["clientConfig"])
        # With an existing issuer the chart creates no issuer of its own.
        r = helm.template(namespace=NS, set=["certManager.enabled=true",
                                             "certManager.issuerRef.name=corp-ca",
                                             "certManager.issuerRef.kind=ClusterIssuer"])
        self.assertEqual(r.find("Issuer"), [])
        (cert,) = r.find("Certificate")
        self.assertEqual(cert["spec"]["issuerRef"], {"name": "corp-ca", "kind": "ClusterIssuer"})

    def test_existing_secret(self):
        ca_pem = self.pem(default())["ca.crt"]
        for given in (ca_pem, base64.b64encode(ca_pem.encode()).decode()):
            with tempfile.NamedTemporaryFile("w", suffix=".crt") as f:
                f.write(given)
                f.flush()
                r = helm.template(namespace=NS, set=["existingSecret=my-tls"],
                                  set_file=["existingSecretCABundle=" + f.name])
            self.assertEqual(r.find("Secret"), [])
            self.assertNotIn("PRIVATE KEY", r.text)
            self.assertEqual(r.find("Certificate"), [])
            self.assertEqual(r.find("Issuer"), [])
            vols = r.one("Deployment")["spec"]["template"]["spec"]["volumes"]
            self.assertIn({"name": "tls", "secret": {"secretName": "my-tls", "defaultMode": 0o440}},
                          vols)
            for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
                bundle = r.one(kind)["webhooks"][0]["clientConfig"]["caBundle"]
                self.assertEqual(base64.b64decode(bundle).decode(), ca_pem)
                self.assertNotIn("annotations", r.one(kind)["metadata"])
        with self.assertRaisesRegex(helm.RenderError, "existingSecretCABundle"):
            helm.template(set=["existingSecret=my-tls"])
        with self.assertRaisesRegex(helm.RenderError, "exclusive"):
            helm.template(set=["existingSecret=my-tls", "existingSecretCABundle=eA==",
                               "certManager.enabled=true"])


class Identity(unittest.TestCase):
    """identity.enabled: the identity CA in three modes, the one RBAC rule, the mounts and
    the webhook.yaml identity section (issue 16, docs/identity.md)."""
    ON = ["identity.enabled=true"]

    def ca_secret(self, r):
        return r.one("Secret", "grpcguard-identity-ca")

    def test_off_by_default(self):
        r = default()
        self.assertEqual(r.find("ClusterRole"), [])
        self.assertEqual(r.find("ClusterRoleBinding"), [])
        self.assertNotIn("identity", webhook_config_file(r))
        self.assertFalse(r.one("Deployment")["spec"]["template"]["spec"][
            "automountServiceAccountToken"])

    def test_generated_ca_rbac_and_mounts(self):
        r = helm.template(namespace=NS, set=self.ON)
        data = self.ca_secret(r)["data"]
        crt = base64.b64decode(data["tls.crt"]).decode()
        rc, out = openssl("x509", "-noout", "-text", data=crt)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"CA:TRUE")
        self.assertIn("Certificate Sign", out)
        _, pub1 = openssl("x509", "-noout", "-pubkey", data=crt)
        _, pub2 = openssl("pkey", "-pubout", data=base64.b64decode(data["tls.key"]).decode())
        self.assertEqual(pub1, pub2)
        # Not the serving CA.
        self.assertNotEqual(data["tls.crt"], r.one("Secret", SVC + "-tls")["data"]["ca.crt"])
        role = r.one("ClusterRole")
        self.assertEqual(role["rules"], [{"apiGroups": ["authentication.k8s.io"],
                                          "resources": ["tokenreviews"], "verbs": ["create"]}])
        binding = r.one("ClusterRoleBinding")
        self.assertEqual(binding["roleRef"]["name"], role["metadata"]["name"])
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": SVC,
                                                "namespace": NS}])
        pod = r.one("Deployment")["spec"]["template"]["spec"]
        self.assertTrue(pod["automountServiceAccountToken"])
        vols = {v["name"]: v for v in pod["volumes"]}
        self.assertEqual(vols["identity-ca"]["secret"]["secretName"], "grpcguard-identity-ca")
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        self.assertEqual(mounts["identity-ca"]["mountPath"], "/etc/grpcguard/identity-ca")
        cfg = webhook_config_file(r)["identity"]
        self.assertEqual(cfg["ca"], {"certFile": "/etc/grpcguard/identity-ca/tls.crt",
                                     "keyFile": "/etc/grpcguard/identity-ca/tls.key"})
        self.assertEqual(cfg["caAddress"], "https://%s.%s.svc:443" % (SVC, NS))
        self.assertEqual(cfg["trustDomain"], "cluster.local")
        self.assertEqual(cfg["certificateLifetimeSeconds"], 86400)
        self.assertTrue(cfg["enabled"])
        # Kept across upgrades.
        again = helm.template(namespace=NS, set=self.ON, upgrade=True,
                              lookup=[self.ca_secret(r)])
        self.assertEqual(self.ca_secret(again)["data"]["tls.crt"], data["tls.crt"])
        self.assertEqual(self.ca_secret(again)["data"]["tls.key"], data["tls.key"])
        fresh = helm.template(namespace=NS, set=self.ON, upgrade=True, lookup=[])
        self.assertNotEqual(self.ca_secret(fresh)["data"]["tls.key"], data["tls.key"])

    def test_other_modes(self):
        r = helm.template(namespace=NS, set=self.ON + ["identity.ca.mode=certManager"])
        self.assertEqual([s["metadata"]["name"] for s in r.find("Secret")], [SVC + "-tls"])
        cert = r.one("Certificate", "grpcguard-identity-ca")
        self.assertTrue(cert["spec"]["isCA"])
        self.assertEqual(cert["spec"]["secretName"], "grpcguard-identity-ca")
        self.assertIn("selfSigned", r.one("Issuer", cert["spec"]["issuerRef"]["name"])["spec"])
        r = helm.template(namespace=NS, set=self.ON + ["identity.ca.mode=existingSecret",
                                                       "identity.ca.existingSecret=my-ca"])
        self.assertEqual(r.find("Secret", "grpcguard-identity-ca"), [])
        vols = {v["name"]: v for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"]}
        self.assertEqual(vols["identity-ca"]["secret"]["secretName"], "my-ca")
        with self.assertRaisesRegex(helm.RenderError, "identity.ca.existingSecret"):
            helm.template(set=self.ON + ["identity.ca.mode=existingSecret"])
        with self.assertRaises(helm.SchemaError):
            helm.template(set=self.ON + ["identity.ca.mode=vault"])

    def test_ca_bundle_configmaps(self):
        r = helm.template(namespace=NS, set=self.ON + ["identity.namespaces={demo,shop}"])
        serving_ca = base64.b64decode(r.one("Secret", SVC + "-tls")["data"]["ca.crt"]).decode()
        cms = [c for c in r.find("ConfigMap") if c["metadata"]["name"] == "grpcguard-ca"]
        self.assertEqual(sorted(c["metadata"]["namespace"] for c in cms), ["demo", "shop"])
        for c in cms:
            self.assertEqual(c["data"]["ca.crt"], serving_ca)


class ConfigFile(unittest.TestCase):
    def test_defaults_match_the_contract(self):
        cfg = webhook_config_file(default())
        self.assertEqual(set(cfg), set(CONFIG_KEYS))
        for k, sub in CONFIG_KEYS.items():
            if sub:
                self.assertEqual(set(cfg[k]), sub, k)
        self.assertEqual(cfg["namespace"], NS)
        self.assertEqual(cfg["validation"], {"mode": "enforce"})
        self.assertEqual(cfg["injection"], {
            "image": "grpcguard/grpcguard-sidecar:0.1.0",
            "imagePullPolicy": "IfNotPresent", "nativeSidecar": True, "interceptMode": "init",
            "ipv4Only": False,
            "proxyPort": 15006, "adminPort": 15020, "proxyUID": 1337,
            "policyConfigMap": "grpcguard-policy", "logLevel": "info",
            "excludeNamespaces": [], "extraAnnotations": {},
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                          "limits": {"cpu": "1", "memory": "64Mi"}}})
        # Numbers stay integers (Helm reads values as float64: 3670016 must not become 3.67e+06).
        self.assertEqual(cfg["limits"], {"maxBodyBytes": 3670016, "maxConnections": 1024,
                                         "connectionTimeoutSeconds": 10})

    def test_values_reach_the_config(self):
        r = helm.template(namespace="gg", values={
            "validation": {"mode": "warn"},
            "injection": {"image": {"repository": "registry.example/gg/sidecar", "tag": "9.9.9"},
                          "imagePullPolicy": "Always", "nativeSidecar": False,
                          "interceptMode": "cni", "ipv4Only": True,
                          "proxyPort": 16006, "adminPort": 16020,
                          "proxyUID": 2000, "policyConfigMap": "chaos", "logLevel": "debug",
                          "extraAnnotations": {"team": "blue", "sidecar.istio.io/inject": "false"},
                          "resources": {"requests": {"cpu": "50m"}, "limits": {"memory": "1Gi"}}},
            "webhook": {"excludeNamespaces": ["legacy"]},
            "limits": {"maxBodyBytes": 10485760, "maxConnections": 64,
                       "connectionTimeoutSeconds": 3}})
        cfg = webhook_config_file(r)
        self.assertEqual(cfg["namespace"], "gg")
        self.assertEqual(cfg["validation"]["mode"], "warn")
        inj = cfg["injection"]
        self.assertEqual(inj["image"], "registry.example/gg/sidecar:9.9.9")
        self.assertEqual((inj["imagePullPolicy"], inj["nativeSidecar"], inj["interceptMode"],
                          inj["ipv4Only"]), ("Always", False, "cni", True))
        self.assertEqual((inj["proxyPort"], inj["adminPort"], inj["proxyUID"]), (16006, 16020, 2000))
        self.assertEqual((inj["policyConfigMap"], inj["logLevel"]), ("chaos", "debug"))
        self.assertEqual(inj["extraAnnotations"], {"team": "blue", "sidecar.istio.io/inject": "false"})
        self.assertEqual(inj["excludeNamespaces"], ["legacy"])
        # Maps merge with the defaults, as in Helm.
        self.assertEqual(inj["resources"], {"requests": {"cpu": "50m", "memory": "16Mi"},
                                            "limits": {"cpu": "1", "memory": "1Gi"}})
        self.assertEqual(cfg["limits"], {"maxBodyBytes": 10485760, "maxConnections": 64,
                                         "connectionTimeoutSeconds": 3})
        r = helm.template(set=["injection.image.digest=sha256:" + "b" * 64])
        self.assertEqual(webhook_config_file(r)["injection"]["image"],
                         "grpcguard/grpcguard-sidecar@sha256:" + "b" * 64)

    def test_native_sidecar_needs_129(self):
        # auto (the default) follows the Kubernetes version Helm sees.
        for kv, want in (("v1.28.3", False), ("v1.29.0", True), ("v1.31.2-eks-1234", True)):
            r = helm.template(kube_version=kv)
            self.assertIs(webhook_config_file(r)["injection"]["nativeSidecar"], want, kv)
        # An explicit true on an older cluster is refused with the fix in the message.
        with self.assertRaisesRegex(helm.RenderError, "nativeSidecar=false"):
            helm.template(kube_version="v1.28.3", set=["injection.nativeSidecar=true"])
        r = helm.template(kube_version="v1.28.3", set=["injection.nativeSidecar=false"])
        self.assertIs(webhook_config_file(r)["injection"]["nativeSidecar"], False)
        r = helm.template(kube_version="v1.30.0", set=["injection.nativeSidecar=false"])
        self.assertIs(webhook_config_file(r)["injection"]["nativeSidecar"], False)
        with self.assertRaisesRegex(helm.RenderError, "kubeVersion"):
            helm.template(kube_version="v1.24.0")


class Schema(unittest.TestCase):
    def test_values_yaml_is_valid(self):
        with open(os.path.join(helm.CHART, "values.yaml")) as f:
            self.assertEqual(helm.schema_errors(yaml.safe_load(f)), [])

    def test_every_value_is_commented(self):
        # A key needs a comment line right above it, unless it is a section header (its
        # children are checked instead) or sits inside a documented block (resources...).
        with open(os.path.join(helm.CHART, "values.yaml")) as f:
            lines = f.read().splitlines()
        stack = []  # (indent, documented) of the enclosing keys
        for i, line in enumerate(lines):
            m = re.match(r"^( *)([A-Za-z_][A-Za-z0-9_.-]*):(.*)$", line)
            if not m:
                continue
            indent, rest = len(m.group(1)), m.group(3).strip()
            while stack and stack[-1][0] >= indent:
                stack.pop()
            if stack and stack[-1][1]:
                stack.append((indent, True))
                continue
            commented = i > 0 and lines[i - 1].strip().startswith("#")
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            section = rest == "" and len(nxt) - len(nxt.lstrip()) > indent
            self.assertTrue(commented or section,
                            "values.yaml:%d: %s has no comment" % (i + 1, line.strip()))
            stack.append((indent, commented))

    def test_every_value_is_documented(self):
        # docs/helm.md lists every leaf value of values.yaml (maps like resources count as one).
        with open(os.path.join(helm.ROOT, "docs", "helm.md")) as f:
            doc = f.read()
        with open(os.path.join(helm.CHART, "values.yaml")) as f:
            values = yaml.safe_load(f)
        opaque = {"podSecurityContext", "securityContext", "resources", "readinessProbe",
                  "livenessProbe", "injection.resources", "defaultPolicy.policy",
                  "grafanaDashboard.labels", "affinity", "nodeSelector", "commonLabels",
                  "podAnnotations", "podLabels"}

        def leaves(v, prefix=""):
            for k, x in v.items():
                path = prefix + k
                if isinstance(x, dict) and x and path not in opaque:
                    yield from leaves(x, path + ".")
                else:
                    yield path
        missing = [p for p in leaves(values) if "`%s`" % p not in doc]
        self.assertEqual(missing, [], "values missing from docs/helm.md")

    def test_bad_values_are_rejected(self):
        bad = [
            dict(set_string=["replicaCount=two"]),
            dict(set=["injection.failurePolicy=Maybe"]),
            dict(set=["validation.failurePolicy=Sometimes"]),
            dict(set=["validation.mode=block"]),
            dict(set=["unknownKey=1"]),
            dict(set=["injection.unknown=1"]),
            dict(set=["injection.proxyPort=70000"]),
            dict(set=["injection.interceptMode=ebpf"]),
            dict(set=["injection.nativeSidecar=maybe"]),
            dict(set=["injection.logLevel=verbose"]),
            dict(set=["webhook.logLevel=trace"]),
            dict(set=["webhook.timeoutSeconds=60"]),
            dict(set=["image.digest=latest"]),
            dict(set=["podAntiAffinity=sometimes"]),
            dict(set=["listenHost=example.com"]),
            dict(set=["certManager.issuerRef.kind=Vault"]),
            dict(set=["injection.resources.limits.memory=lots"]),
            dict(set=["defaultPolicy.policy.apiVersion=v2"]),
            dict(set=["existingSecret=mine"]),
        ]
        for b in bad:
            with self.subTest(**b):
                with self.assertRaises(helm.SchemaError) as cm:
                    helm.template(**b)
                self.assertTrue(cm.exception.errors)
        # The schema's message names the value.
        with self.assertRaises(helm.SchemaError) as cm:
            helm.template(set_string=["replicaCount=two"])
        self.assertIn("replicaCount", str(cm.exception))

    def test_good_overrides_pass(self):
        helm.template(set=["replicaCount=5", "podDisruptionBudget.minAvailable=50%",
                           "global.imageRegistry=x", "commonLabels.team=blue",
                           "injection.resources.limits.cpu=2"])


class Extras(unittest.TestCase):
    def test_default_policy(self):
        r = helm.template(namespace=NS, set=["defaultPolicy.namespaces={demo,shop}"])
        cms = [c for c in r.find("ConfigMap") if c["metadata"]["name"] == "grpcguard-policy"]
        self.assertEqual(sorted(c["metadata"]["namespace"] for c in cms), ["demo", "shop"])
        for c in cms:
            pol = yaml.safe_load(c["data"]["policy.yaml"])
            self.assertEqual((pol["apiVersion"], pol["kind"]), ("grpcguard.io/v1", "Policy"))
        # A policy given in values arrives intact, under the configured ConfigMap name.
        policy = {"apiVersion": "grpcguard.io/v1", "kind": "Policy",
                  "faults": [{"name": "slow", "match": {"methods": ["*"]},
                              "delay": {"fixed": "250ms", "percent": 10}}]}
        r = helm.template(values={"defaultPolicy": {"namespaces": ["demo"], "policy": policy},
                                  "injection": {"policyConfigMap": "chaos"}})
        (c,) = [c for c in r.find("ConfigMap") if c["metadata"]["namespace"] == "demo"]
        self.assertEqual(c["metadata"]["name"], "chaos")
        self.assertEqual(yaml.safe_load(c["data"]["policy.yaml"]), dict(policy, authorization=[]))
        self.assertEqual(default().find("ConfigMap", "grpcguard-policy"), [])

    def test_grafana_dashboard(self):
        r = helm.template(namespace=NS, set=["grafanaDashboard.enabled=true",
                                             "grafanaDashboard.namespace=monitoring"])
        cm = r.one("ConfigMap", "grpcguard-dashboard")
        self.assertEqual(cm["metadata"]["namespace"], "monitoring")
        self.assertEqual(cm["metadata"]["labels"]["grafana_dashboard"], "1")
        dash = json.loads(cm["data"]["grpcguard.json"])
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        joined = "\n".join(exprs)
        for needle in ("grpcguard_requests_total", "by (grpc_code)",
                       "histogram_quantile(0.5,", "histogram_quantile(0.9,",
                       "histogram_quantile(0.99,", "grpcguard_request_duration_seconds_bucket",
                       "grpcguard_faults_injected_total", "grpcguard_authz_denied_total",
                       "grpc_method"):
            self.assertIn(needle, joined)
        # Both sidecars of a call count it (reporter source and destination): every selector
        # picks one reporter, or every call between two sidecars counts twice. The
        # per-service panels chart the server's view; the caller's view ("outgoing request
        # duration", the graph's edges to destinations without a sidecar) is reporter source.
        for e in exprs:
            if "grpcguard_requests_total" in e or "grpcguard_request_duration_seconds" in e:
                self.assertEqual(e.count('reporter="destination"') + e.count('reporter="source"'),
                                 e.count("grpcguard_request"), e)
        self.assertTrue(any('reporter="source"' in e and "duration_seconds_bucket" in e
                            for e in exprs), "no outgoing request duration panel")
        # Every metric charted is one a program registers (sidecar/ or webhook/ sources).
        registered = set()
        for d in ("sidecar", "webhook", "common"):
            p = os.path.join(helm.ROOT, d)
            for f in os.listdir(p) if os.path.isdir(p) else []:
                if f.endswith(".c"):
                    with open(os.path.join(p, f), errors="replace") as fh:
                        registered |= set(re.findall(r'"(grpcguard_[a-z_]+)"', fh.read()))
        for name in set(re.findall(r"\b(grpcguard_[a-z_]+)", joined)):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base == "grpcguard_webhook_admissions_total" and not os.path.exists(
                    os.path.join(helm.ROOT, "webhook", "main.c")):
                continue  # the webhook program is not in this tree yet
            self.assertIn(base, registered, "dashboard charts %s, which nothing exports" % name)
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(default().find("ConfigMap", "grpcguard-dashboard"), [])


class Monitors(unittest.TestCase):
    def test_pod_and_service_monitors(self):
        self.assertEqual(default().find("PodMonitor") + default().find("ServiceMonitor"), [])
        r = helm.template(namespace=NS, set=[
            "metrics.podMonitor.enabled=true", "metrics.podMonitor.labels.release=prom",
            "metrics.podMonitor.interval=15s", "metrics.serviceMonitor.enabled=true"])
        pm = r.one("PodMonitor")
        self.assertEqual(pm["metadata"]["labels"]["release"], "prom")
        self.assertEqual(pm["spec"]["namespaceSelector"], {"any": True})
        (ep,) = pm["spec"]["podMetricsEndpoints"]
        # The injector names the sidecar's admin port http-gg-admin (checked against the
        # real webhook in test_chart_webhook.py).
        self.assertEqual((ep["port"], ep["path"], ep["interval"]), ("http-gg-admin", "/metrics", "15s"))
        sm = r.one("ServiceMonitor")
        svc = r.one("Service")
        self.assertTrue(selects(sm["spec"]["selector"], svc["metadata"]["labels"]))
        (ep,) = sm["spec"]["endpoints"]
        self.assertIn(ep["port"], [p["name"] for p in svc["spec"]["ports"]])
        self.assertEqual(ep["scheme"], "https")
        tls = ep["tlsConfig"]
        self.assertEqual(tls["serverName"], "%s.%s.svc" % (SVC, NS))
        secret = r.one("Secret", tls["ca"]["secret"]["name"])
        self.assertIn(tls["ca"]["secret"]["key"], secret["data"])
        # existingSecret: the CA comes from a ConfigMap made of existingSecretCABundle.
        pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        r = helm.template(namespace=NS, values={"existingSecret": "mine",
                                                "existingSecretCABundle": pem,
                                                "metrics": {"serviceMonitor": {"enabled": True}}})
        ca = r.one("ServiceMonitor")["spec"]["endpoints"][0]["tlsConfig"]["ca"]["configMap"]
        self.assertEqual(r.one("ConfigMap", ca["name"])["data"][ca["key"]], pem)
        with self.assertRaises(helm.SchemaError):
            helm.template(set=["metrics.podMonitor.interval=often"])


# The values combinations the chart supports (issue 18): the cartesian product of the axes
# users choose between, then every other toggle of values.yaml turned on (or off) once.
CERT_MODES = {
    "generated": [],
    "certmanager": ["certManager.enabled=true"],
    "existingsecret": ["existingSecret=grpcguard-webhook-tls"],
}
AXES = [
    ("validation", {"enforce": [], "warn": ["validation.mode=warn"]}),
    ("sidecar", {"native": ["injection.nativeSidecar=true"],
                 "plain": ["injection.nativeSidecar=false"]}),
    ("policy", {"nopolicy": [], "defaultpolicy": ["defaultPolicy.namespaces={demo,shop}"]}),
    ("dashboard", {"nodash": [], "dashboard": ["grafanaDashboard.enabled=true"]}),
]
TOGGLES = {
    "sidecar-auto": ["injection.nativeSidecar=auto"],
    "cni": ["injection.interceptMode=cni"],
    "monitors": ["metrics.podMonitor.enabled=true", "metrics.serviceMonitor.enabled=true",
                 "metrics.podMonitor.interval=15s", "metrics.serviceMonitor.interval=30s",
                 "metrics.podAnnotations=false"],
    "alerts": ["metrics.prometheusRule.enabled=true"],
    "networkpolicy": ["networkPolicy.enabled=true"],
    "single-replica": ["replicaCount=1"],
    "no-pdb": ["podDisruptionBudget.enabled=false"],
    "no-injection": ["injection.enabled=false"],
    "no-validation": ["validation.enabled=false"],
    "validation-ignore": ["validation.failurePolicy=Ignore", "injection.failurePolicy=Ignore"],
    "hostnetwork": ["hostNetwork=true", "containerPort=9443"],
    "no-serviceaccount": ["serviceAccount.create=false", "serviceAccount.name=default"],
    "anti-affinity-hard": ["podAntiAffinity=hard"],
    "anti-affinity-off": ["podAntiAffinity=none"],
    "digests": ["image.digest=sha256:" + "a" * 64, "injection.image.digest=sha256:" + "b" * 64],
    "overrides": ["fullnameOverride=guard", "global.imageRegistry=registry.example",
                  "commonLabels.team=blue", "imagePullSecrets[0].name=pull"],
}


def combinations():
    """(name, --set list, --set-file list) for every combination make test renders."""
    out = []
    for cert, cert_set in CERT_MODES.items():
        combos = [([cert], list(cert_set))]
        for _, choices in AXES:
            combos = [(n + [c], s + cs) for n, s in combos for c, cs in choices.items()]
        out += [("-".join(n), s) for n, s in combos]
    out += [("toggle-" + n, s) for n, s in TOGGLES.items()]
    return out


_ca_file = []


def existing_ca():
    """A CA bundle file for existingSecret mode (the content is only base64-checked),
    made once per run and removed at exit."""
    if not _ca_file:
        fd, path = tempfile.mkstemp(prefix="gg-chart-ca.", suffix=".crt")
        with os.fdopen(fd, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
        atexit.register(os.unlink, path)
        _ca_file.append(path)
    return _ca_file[0]


class Combinations(unittest.TestCase):
    """Real `helm lint --strict` and `helm template` for every combination; the renders go
    to $GG_SCHEMA_DIR for tests/schema/validate.mjs (Kubernetes schemas)."""

    @staticmethod
    def run_one(combo):
        """(lint output or LintError, Rendered or RenderError) of one combination."""
        name, sets = combo
        files = ["existingSecretCABundle=" + existing_ca()] \
            if any(x.startswith("existingSecret=") for x in sets) else []
        try:
            lint = helm.lint(set=sets, set_file=files)
        except helm.LintError as e:
            lint = e
        try:
            r = helm.template(namespace=NS, set=sets, set_file=files)
        except helm.RenderError as e:
            r = e
        return lint, r

    def test_each_combination_lints_and_renders(self):
        out_dir = os.environ.get("GG_SCHEMA_DIR")
        names = set()
        combos = combinations()
        # Two helm processes at a time (the machines have two cores).
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(self.run_one, combos))
        for (name, sets), (lint, r) in zip(combos, results):
            with self.subTest(combination=name):
                self.assertNotIn(name, names)
                names.add(name)
                self.assertIsInstance(lint, str, "helm lint --strict %s:\n%s" % (sets, lint))
                self.assertIn("1 chart(s) linted, 0 chart(s) failed", lint)
                if isinstance(r, Exception):
                    self.fail("helm template %s: %s" % (sets, r))
                self.assertTrue(r.find("Deployment"), name)
                for d in r.docs:
                    self.assertTrue(d.get("kind") and d.get("metadata", {}).get("name"),
                                    "%s: a document without kind or name" % name)
                if out_dir:
                    with open(os.path.join(out_dir, "render-%s.yaml" % name), "w") as f:
                        f.write(r.text)
        # The issue's axes are all there: 3 certificate modes x 2^4.
        self.assertEqual(len([n for n in names if not n.startswith("toggle-")]), 48)

    def test_lint_strict_catches_problems(self):
        # The lint step can fail: a chart whose template renders invalid YAML.
        with tempfile.TemporaryDirectory() as d:
            chart = os.path.join(d, "grpcguard")
            subprocess.run(["cp", "-r", helm.CHART, chart], check=True)
            with open(os.path.join(chart, "templates", "broken.yaml"), "w") as f:
                f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n")
            with self.assertRaises(helm.LintError) as cm:
                helm.lint(chart=chart)
            self.assertIn("broken.yaml", str(cm.exception))


class Upgrades(unittest.TestCase):
    """`helm upgrade` fails when a field the API server keeps immutable changes: two renders
    with different --set values must agree on all of them."""

    @staticmethod
    def immutable(r):
        dep = r.one("Deployment")
        svc = r.one("Service")
        spec = svc["spec"]
        out = {
            "deployment": (dep["metadata"]["name"], dep["spec"]["selector"]),
            "service": (svc["metadata"]["name"], spec.get("type", "ClusterIP"),
                        spec.get("clusterIP"), spec.get("clusterIPs"),
                        spec.get("ipFamilies"), spec.get("ipFamilyPolicy")),
            "webhooks": sorted((d["kind"], d["metadata"]["name"],
                                tuple(w["name"] for w in d["webhooks"]))
                               for d in r.docs if d["kind"].endswith("WebhookConfiguration")),
            "secrets": sorted((d["metadata"]["name"], d.get("type")) for d in r.find("Secret")),
            "pdb": [(d["metadata"]["name"], d["spec"]["selector"])
                    for d in r.find("PodDisruptionBudget")],
        }
        return out

    def test_immutable_fields_survive_set_changes(self):
        base = self.immutable(helm.template(namespace=NS))
        self.assertTrue(base["webhooks"] and base["deployment"][1])
        variants = [
            ["replicaCount=3", "image.tag=9.9.9", "validation.mode=warn",
             "injection.nativeSidecar=false", "injection.interceptMode=cni",
             "injection.proxyPort=16006", "webhook.logLevel=debug"],
            ["podLabels.extra=yes", "commonLabels.team=blue", "service.port=8443",
             "defaultPolicy.namespaces={demo}", "grafanaDashboard.enabled=true",
             "metrics.serviceMonitor.enabled=true", "metrics.prometheusRule.enabled=true"],
            ["validation.failurePolicy=Ignore", "injection.failurePolicy=Ignore",
             "webhook.excludeNamespaces={a,b}", "networkPolicy.enabled=true"],
        ]
        for sets in variants:
            with self.subTest(set=sets):
                r = helm.template(namespace=NS, set=sets, upgrade=True)
                self.assertEqual(self.immutable(r), base)
        # Switching certificate mode keeps the Deployment, Service and webhooks (the
        # generated Secret goes away, which is a delete, not an immutable-field change).
        cm = self.immutable(helm.template(namespace=NS, set=["certManager.enabled=true"]))
        for k in ("deployment", "service", "webhooks", "pdb"):
            self.assertEqual(cm[k], base[k], k)
        # The comparison can fail: a different release name changes the selector.
        other = self.immutable(helm.template(name="other", namespace=NS))
        self.assertNotEqual(other["deployment"], base["deployment"])


class Alerts(unittest.TestCase):
    def test_prometheus_rule_is_the_rules_file(self):
        self.assertEqual(default().find("PrometheusRule"), [])
        r = helm.template(namespace=NS, set=["metrics.prometheusRule.enabled=true",
                                             "metrics.prometheusRule.labels.release=kps"])
        rule = r.one("PrometheusRule", "grpcguard-alerts")
        self.assertEqual(rule["metadata"]["namespace"], NS)
        self.assertEqual(rule["metadata"]["labels"]["release"], "kps")
        with open(os.path.join(helm.CHART, "alerts", "grpcguard.rules.yaml")) as f:
            self.assertEqual(rule["spec"]["groups"], yaml.safe_load(f)["groups"])
        alerts = [x["alert"] for g in rule["spec"]["groups"] for x in g["rules"]]
        for want in ("GrpcguardWebhookDown", "GrpcguardWebhookErrors",
                     "GrpcguardWebhookCertificateExpiring", "GrpcguardPolicyReloadFailing",
                     "GrpcguardAuthzDenialsSpiking"):
            self.assertIn(want, alerts)
        # Helm passes the rules' own {{ $labels }} through untouched.
        self.assertIn("{{ $labels.namespace }}", json.dumps(rule))


class PlainManifests(unittest.TestCase):
    def test_deploy_is_up_to_date(self):
        # deploy/ is what `make manifests` writes; it must match the chart.
        deploy = os.path.join(helm.ROOT, "deploy")
        if not os.path.isdir(deploy):
            self.skipTest("deploy/ not generated yet")
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run(["bash", os.path.join(helm.ROOT, "scripts", "manifests.sh"), d],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout)
            for f in sorted(os.listdir(d)):
                with open(os.path.join(d, f)) as a, open(os.path.join(deploy, f)) as b:
                    self.assertEqual(a.read(), b.read(),
                                     "deploy/%s is stale: run make manifests" % f)
            self.assertEqual(sorted(os.listdir(d)),
                             sorted(f for f in os.listdir(deploy) if f.endswith(".yaml")))

    def test_plain_manifests_install(self):
        # What a kubectl user applies: the Namespace first, no generated key material, and
        # after the documented substitution both webhook configurations carry the CA.
        path = os.path.join(helm.ROOT, "deploy", "grpcguard.yaml")
        if not os.path.exists(path):
            self.skipTest("deploy/ not generated yet")
        with open(path) as f:
            text = f.read()
        self.assertNotIn("PRIVATE KEY", text)
        self.assertEqual(text.count("caBundle: ${GRPCGUARD_CA_BUNDLE}\n"), 2)
        ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()
        docs = [d for d in yaml.safe_load_all(text.replace("${GRPCGUARD_CA_BUNDLE}", ca)) if d]
        self.assertEqual(docs[0]["kind"], "Namespace")
        self.assertEqual(docs[0]["metadata"]["name"], NS)
        self.assertEqual([d for d in docs if d["kind"] == "Secret"], [])
        hooks = [d for d in docs if d["kind"].endswith("WebhookConfiguration")]
        self.assertEqual(len(hooks), 2)
        for h in hooks:
            self.assertEqual(h["webhooks"][0]["clientConfig"]["caBundle"], ca)
        vols = [d for d in docs if d["kind"] == "Deployment"][0]["spec"]["template"]["spec"]["volumes"]
        self.assertIn("grpcguard-webhook-tls", json.dumps(vols))
        with open(os.path.join(helm.ROOT, "deploy", "grpcguard-cert-manager.yaml")) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        self.assertIn("Certificate", [d["kind"] for d in docs])
        self.assertNotIn("Secret", [d["kind"] for d in docs])


if __name__ == "__main__":
    unittest.main(verbosity=2)
