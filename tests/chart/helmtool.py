#!/usr/bin/python3
"""Run the real Helm (build/tools/bin/helm, v3.17.1, fetched by scripts/tools.sh) on a chart.

Library use (tests/chart/test_chart.py, tests/integration/test_chart_webhook.py):
    r = helmtool.template(set=["replicaCount=3"], namespace="gg")
    r.docs      # parsed documents, in Helm's install order (duplicate keys rejected)
    r.text      # the rendered YAML stream with "# Source:" headers, as helm prints it
    r.sources   # the "# Source:" of each document
    r.notes     # NOTES.txt rendered (notes=True; see render_notes)
    helmtool.lint(set=[...])   # `helm lint --strict`; returns its output, raises LintError
Errors raise helmtool.SchemaError (values.schema.json rejected the values: Helm's own check)
or helmtool.RenderError (template error, `fail`, `required`, bad flag).

`lookup` (a list of objects) is the cluster state the chart's `lookup` calls see: Helm runs
with --dry-run=server against a small fake API server on loopback (FakeCluster) that serves
discovery for the core group and GETs of those objects, so the chart's reuse of its
certificates on upgrade is tested through Helm's real lookup.
Environment: GG_HELM names another helm binary.
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "charts", "grpcguard")
HELM = os.environ.get("GG_HELM") or os.path.join(ROOT, "build", "tools", "bin", "helm")
HELM_VERSION = "v3.17.1"


class RenderError(Exception):
    """helm failed (template error, `fail`, `required`, bad flag)."""


class SchemaError(RenderError):
    """Helm found that the values do not meet values.schema.json; .errors lists
    "path: message" as Helm printed them."""

    def __init__(self, message, errors):
        self.errors = errors
        super().__init__(message)


class LintError(Exception):
    """`helm lint --strict` reported a problem; the message is its output."""


def binary():
    """The helm binary, or RenderError saying how to get it."""
    if not os.access(HELM, os.X_OK):
        raise RenderError("%s is missing: run make deps (scripts/tools.sh fetches Helm %s)"
                          % (HELM, HELM_VERSION))
    return HELM


def version():
    p = subprocess.run([binary(), "version", "--short"], stdout=subprocess.PIPE, text=True,
                       check=True)
    return p.stdout.strip()


def schema_errors(values, chart=CHART):
    """values.schema.json's complaints about `values` (jsonschema, draft 7), as sorted
    "path: message" lines. For checking values.yaml itself; rendering uses Helm's check."""
    path = os.path.join(chart, "values.schema.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        schema = json.load(f)
    out = []
    for e in jsonschema.Draft7Validator(schema).iter_errors(values):
        where = ".".join(str(p) for p in e.absolute_path) or "(root)"
        out.append("%s: %s" % (where, e.message))
    return sorted(out)


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(_Base):
    """YAML loader that rejects duplicate mapping keys, as the API server does (PyYAML
    alone keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    "found duplicate key %r" % (key,), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                             lambda loader, node: loader.construct_mapping(node))


class Rendered:
    def __init__(self, text, notes=None):
        self.text = text
        self.notes = notes
        self.docs = [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
        self.sources = [line[len("# Source: "):] for line in text.splitlines()
                        if line.startswith("# Source: ")]

    def find(self, kind, name=None):
        """Documents of this kind (and name)."""
        return [d for d in self.docs if d.get("kind") == kind and
                (name is None or d.get("metadata", {}).get("name") == name)]

    def one(self, kind, name=None):
        found = self.find(kind, name)
        if len(found) != 1:
            raise AssertionError("expected one %s%s, found %d" %
                                 (kind, " " + name if name else "", len(found)))
        return found[0]


class FakeCluster:
    """Just enough of a Kubernetes API server on 127.0.0.1 for Helm's `lookup`: discovery
    of the core group (v1) listing the kinds of `objects`, GET of one object (404 Status
    when absent) and of a namespace's list. Use as a context manager; .kubeconfig is the
    path of a kubeconfig pointing at it."""

    def __init__(self, objects, tmpdir):
        self.objects = [o for o in objects if o]
        kinds = {o["kind"] for o in self.objects} | {"Secret", "ConfigMap"}
        self.resources = {k.lower() + "s": k for k in kinds}
        cluster = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def send(self, code, obj):
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                code, obj = cluster.answer(self.path.split("?", 1)[0])
                self.send(code, obj)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.kubeconfig = os.path.join(tmpdir, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "fake",
                "clusters": [{"name": "fake", "cluster": {
                    "server": "http://127.0.0.1:%d" % self.server.server_address[1]}}],
                "users": [{"name": "fake", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            }, f)

    def answer(self, path):
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": []}
        if path == "/apis":
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        if path == "/version":
            return 200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
        if path == "/api/v1":
            return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": r, "singularName": k.lower(), "namespaced": True, "kind": k,
                 "verbs": ["get", "list"]} for r, k in sorted(self.resources.items())]}
        m = re.fullmatch(r"/api/v1/namespaces/([^/]+)/([^/]+)(?:/([^/]+))?", path)
        if m and m.group(2) in self.resources:
            ns, kind, name = m.group(1), self.resources[m.group(2)], m.group(3)
            hits = [o for o in self.objects if o["kind"] == kind and
                    o["metadata"].get("namespace") == ns and
                    (name is None or o["metadata"]["name"] == name)]
            if name is None:
                return 200, {"kind": kind + "List", "apiVersion": "v1",
                             "metadata": {}, "items": hits}
            if hits:
                return 200, hits[0]
            return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                         "reason": "NotFound", "code": 404,
                         "message": '%s "%s" not found' % (m.group(2), name)}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "reason": "NotFound", "code": 404, "message": "not served: " + path}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def value_args(tmp, values=None, value_files=(), set=(), set_string=(), set_file=()):
    """helm's -f/--set* flags; `values` (a dict) becomes one more -f file."""
    args = []
    for f in value_files:
        args += ["-f", f]
    if values is not None:
        vf = os.path.join(tmp, "values.yaml")
        with open(vf, "w") as f:
            yaml.safe_dump(values, f)
        args += ["-f", vf]
    for flag, items in (("--set", set), ("--set-string", set_string),
                        ("--set-file", set_file)):
        for item in items:
            args += [flag, item]
    return args


def _error(stderr):
    msg = stderr.strip()
    msg = msg[len("Error: "):] if msg.startswith("Error: ") else msg
    if "don't meet the specifications of the schema" in msg:
        errs = sorted(line[2:] for line in msg.splitlines() if line.startswith("- "))
        return SchemaError(msg, errs)
    return RenderError(msg)


def template(chart=CHART, name="grpcguard", namespace="grpcguard-system", values=None,
             value_files=(), set=(), set_string=(), set_file=(), upgrade=False, lookup=None,
             kube_version=None, api_versions=(), show_only=(), notes=False):
    """`helm template` of the chart (Helm validates the values against values.schema.json
    first, as on install). `lookup` runs Helm against FakeCluster(lookup). `notes` also
    renders NOTES.txt (render_notes). Returns a Rendered."""
    helm = binary()
    with tempfile.TemporaryDirectory(prefix="gg-helm.") as tmp:
        common = value_args(tmp, values, value_files, set, set_string, set_file)
        if kube_version:
            common += ["--kube-version", kube_version]
        for a in api_versions:
            common += ["--api-versions", a]
        args = [helm, "template", name, chart, "-n", namespace] + common
        for s in show_only:
            args += ["--show-only", s]
        if upgrade:
            args.append("--is-upgrade")
        env = dict(os.environ, HELM_CACHE_HOME=os.path.join(tmp, "cache"),
                   HELM_CONFIG_HOME=os.path.join(tmp, "config"),
                   HELM_DATA_HOME=os.path.join(tmp, "data"))
        env.pop("KUBECONFIG", None)
        if lookup is not None:
            with FakeCluster(lookup, tmp) as cluster:
                p = subprocess.run(args + ["--dry-run=server", "--kubeconfig", cluster.kubeconfig],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   timeout=120, env=env)
        else:
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=120, env=env)
        if p.returncode != 0:
            raise _error(p.stderr)
        notes_text = render_notes(chart, tmp, args, env) if notes else None
    return Rendered(p.stdout, notes_text)


def render_notes(chart, tmp, args, env):
    """NOTES.txt as Helm renders it after an install: `helm install --dry-run` needs a
    cluster, so a copy of the chart gets a template that renders NOTES.txt with Helm's own
    `tpl` (same values, release and helpers) into one document, shown alone."""
    copy = os.path.join(tmp, "notes-chart", os.path.basename(os.path.normpath(chart)))
    shutil.copytree(chart, copy)
    notes_path = os.path.join(copy, "templates", "NOTES.txt")
    if not os.path.exists(notes_path):
        return None
    shutil.move(notes_path, os.path.join(copy, "gg-notes.txt"))
    with open(os.path.join(copy, "templates", "gg-notes.yaml"), "w") as f:
        f.write('kind: GGNotes\nnotes: {{ tpl (.Files.Get "gg-notes.txt") . | toJson }}\n')
    argv = [copy if a == chart else a for a in args] + ["--show-only", "templates/gg-notes.yaml"]
    argv = [a for a in argv if not a.startswith("--dry-run")]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=120, env=env)
    if p.returncode != 0:
        raise _error(p.stderr)
    return yaml.safe_load(p.stdout.split("\n", 2)[2])["notes"]


def lint(chart=CHART, values=None, value_files=(), set=(), set_string=(), set_file=(),
         kube_version=None, namespace="grpcguard-system"):
    """`helm lint --strict` with these values; returns the output, raises LintError."""
    helm = binary()
    with tempfile.TemporaryDirectory(prefix="gg-helm.") as tmp:
        args = [helm, "lint", "--strict", chart, "-n", namespace] + value_args(
            tmp, values, value_files, set, set_string, set_file)
        if kube_version:
            args += ["--kube-version", kube_version]
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
    if p.returncode != 0:
        raise LintError(p.stdout)
    return p.stdout
