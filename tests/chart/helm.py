#!/usr/bin/python3
"""`helm template` for machines without Helm: tests/chart/render.go plus schema validation.

render.go (Go text/template + Debian's sprig, built here in GOPATH mode with no download)
renders the chart the way Helm's engine does and writes the final values; this module
validates those values against the chart's values.schema.json with jsonschema (draft 7,
as Helm does before rendering) and splits the output into documents.

Library use (tests/chart/test_chart.py):
    r = helm.template(set=["replicaCount=3"], namespace="gg")
    r.docs      # parsed documents, in Helm's install order
    r.text      # the rendered YAML stream with "# Source:" headers
    r.values    # the values the templates saw
Errors raise helm.SchemaError (values rejected by the schema) or helm.RenderError.

Command line (scripts/manifests.sh):
    helm.py build OUT        build the renderer once; GG_RENDER_BIN=OUT makes later runs use it
    helm.py template RELEASE [CHART] [-n NS] [-f FILE]... [--set K=V]... [--set-string K=V]...
            [--set-file K=PATH]... [--is-upgrade] [--lookup FILE] [--kube-version vX.Y.Z]
            [--api-versions G/V]... [--show-only templates/x.yaml]... [--notes]
"""
import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CHART = os.path.join(ROOT, "charts", "grpcguard")
GOPATH_SYSTEM = "/usr/share/gocode"

_bin = None


class RenderError(Exception):
    """The renderer failed (template error, `fail`, `required`, bad flag)."""


class SchemaError(RenderError):
    """The values do not meet values.schema.json; .errors lists "path: message"."""

    def __init__(self, chart_name, errors):
        self.errors = errors
        super().__init__(
            "values don't meet the specifications of the schema(s) in the following chart(s):\n"
            + chart_name + ":\n" + "".join("- %s\n" % e for e in errors))


def build(out=None):
    """Build render.go once per process into a temporary GOPATH; returns the binary path.
    GG_RENDER_BIN names an already built renderer (scripts/manifests.sh builds once and
    renders several times); `out` copies the binary there."""
    global _bin
    if not _bin and os.environ.get("GG_RENDER_BIN"):
        _bin = os.environ["GG_RENDER_BIN"]
    if _bin:
        if out:
            shutil.copy(_bin, out)
        return _bin
    if not shutil.which("go"):
        raise RenderError("go is not installed (make deps installs golang-go and "
                          "golang-github-masterminds-sprig-dev)")
    if not os.path.isdir(os.path.join(GOPATH_SYSTEM, "src/github.com/Masterminds/sprig")):
        raise RenderError("sprig is missing from %s (apt-get install "
                          "golang-github-masterminds-sprig-dev)" % GOPATH_SYSTEM)
    tmp = tempfile.mkdtemp(prefix="gg-render.")
    atexit.register(shutil.rmtree, tmp, True)
    src = os.path.join(tmp, "src", "grpcguard-render")
    os.makedirs(src)
    shutil.copy(os.path.join(HERE, "render.go"), os.path.join(src, "main.go"))
    env = dict(os.environ, GO111MODULE="off", GOPATH=tmp + ":" + GOPATH_SYSTEM,
               GOCACHE=os.environ.get("GG_GOCACHE") or os.path.join(tmp, "cache"),
               GOFLAGS="", CGO_ENABLED="0", GOTOOLCHAIN="local")
    binary = os.path.join(tmp, "render")
    p = subprocess.run(["go", "build", "-o", binary, "."], cwd=src, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    if p.returncode != 0:
        raise RenderError("building tests/chart/render.go failed:\n" + p.stdout)
    _bin = binary
    if out:
        shutil.copy(_bin, out)
    return _bin


def schema_errors(values, chart=CHART):
    """values.schema.json's complaints about `values`, as sorted "path: message" lines."""
    path = os.path.join(chart, "values.schema.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        schema = json.load(f)
    v = jsonschema.Draft7Validator(schema)
    out = []
    for e in v.iter_errors(values):
        where = ".".join(str(p) for p in e.absolute_path) or "(root)"
        out.append("%s: %s" % (where, e.message))
    return sorted(out)


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(_Base):
    """YAML loader that rejects duplicate mapping keys, as the API server and Helm do
    (PyYAML alone keeps the last one silently)."""

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
    def __init__(self, text, values, notes):
        self.text = text
        self.values = values
        self.notes = notes
        self.docs = [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]
        # Source header of each document, in the same order as docs.
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


def template(chart=CHART, name="grpcguard", namespace="grpcguard-system", values=None,
             value_files=(), set=(), set_string=(), set_file=(), upgrade=False, lookup=None,
             kube_version=None, api_versions=(), show_only=(), notes=False):
    """Render the chart; `values` (a dict) is passed as one more -f file, `lookup` (a list
    of objects) is the cluster state lookup sees. Returns a Rendered."""
    binary = build()
    with tempfile.TemporaryDirectory(prefix="gg-helm.") as tmp:
        args = [binary, "--name", name, "--namespace", namespace,
                "--values-out", os.path.join(tmp, "values.json")]
        for f in value_files:
            args += ["-f", f]
        if values is not None:
            vf = os.path.join(tmp, "values.yaml")
            with open(vf, "w") as f:
                yaml.safe_dump(values, f)
            args += ["-f", vf]
        for flag, items in (("--set", set), ("--set-string", set_string),
                            ("--set-file", set_file), ("--api-versions", api_versions),
                            ("--show-only", show_only)):
            for item in items:
                args += [flag, item]
        if upgrade:
            args.append("--is-upgrade")
        if lookup is not None:
            lf = os.path.join(tmp, "cluster.yaml")
            with open(lf, "w") as f:
                yaml.safe_dump_all(lookup, f)
            args += ["--lookup", lf]
        if kube_version:
            args += ["--kube-version", kube_version]
        if notes:
            args.append("--notes")
        args.append(chart)
        # As helm install: the values are checked against the schema before rendering.
        p = subprocess.run(args[:1] + ["--values-only"] + args[1:], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=120)
        if p.returncode != 0:
            raise RenderError(p.stderr.strip().removeprefix("Error: "))
        with open(os.path.join(tmp, "values.json")) as f:
            vals = json.load(f)
        errs = schema_errors(vals, chart)
        if errs:
            raise SchemaError(os.path.basename(os.path.normpath(chart)), errs)
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=120)
        if p.returncode != 0:
            raise RenderError(p.stderr.strip().removeprefix("Error: "))
    text, notes_text = p.stdout, None
    if notes and "\nNOTES:\n" in text:
        text, notes_text = text.split("\nNOTES:\n", 1)
    return Rendered(text, vals, notes_text)


def main(argv):
    ap = argparse.ArgumentParser(prog="helm.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the renderer into OUT (for GG_RENDER_BIN)")
    b.add_argument("out")
    t = sub.add_parser("template", help="render the chart like `helm template`")
    t.add_argument("release")
    t.add_argument("chart", nargs="?", default=CHART)
    t.add_argument("-n", "--namespace", default="default")
    t.add_argument("-f", "--values", action="append", default=[])
    for flag in ("--set", "--set-string", "--set-file", "--api-versions", "--show-only"):
        t.add_argument(flag, action="append", default=[])
    t.add_argument("--is-upgrade", action="store_true")
    t.add_argument("--lookup")
    t.add_argument("--kube-version")
    t.add_argument("--notes", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "build":
        try:
            build(a.out)
        except RenderError as e:
            print("Error: %s" % e, file=sys.stderr)
            return 1
        return 0
    lookup = None
    if a.lookup:
        with open(a.lookup) as f:
            lookup = [d for d in yaml.safe_load_all(f) if d]
    try:
        r = template(chart=a.chart, name=a.release, namespace=a.namespace,
                     value_files=a.values, set=a.set, set_string=a.set_string,
                     set_file=a.set_file, upgrade=a.is_upgrade, lookup=lookup,
                     kube_version=a.kube_version, api_versions=a.api_versions,
                     show_only=a.show_only, notes=a.notes)
    except RenderError as e:
        print("Error: %s" % e, file=sys.stderr)
        return 1
    sys.stdout.write(r.text)
    if r.notes:
        sys.stdout.write("\nNOTES:\n" + r.notes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
