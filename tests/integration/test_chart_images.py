#!/usr/bin/python3
"""The Dockerfiles, checked without a Docker engine (there is none on our machines).

For webhook/Dockerfile and sidecar/Dockerfile:
- the build stage is replayed here: only the paths it COPYs are copied into an empty
  directory and its `make` command runs there, so a missing COPY or target fails;
- every shared library the built programs need (their NEEDED entries, mapped to Debian
  packages with dpkg -S) is installed by the runtime stage, and the runtime stage installs
  no -dev package;
- the runtime stage is slim Debian, runs as the non-root uid the chart expects (webhook:
  podSecurityContext.runAsUser; sidecar: injection.proxyUID) and its ENTRYPOINT is the
  program the chart (Deployment args) and the webhook (injected args) rely on; the sidecar
  image carries iptables for `init`.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.environ.get("GG_ROOT") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "chart"))
import yaml  # noqa: E402

IMAGES = {
    "webhook/Dockerfile": {"programs": ["grpcguard-webhook", "grpcguard-certgen"],
                           "entrypoint": "grpcguard-webhook"},
    "sidecar/Dockerfile": {"programs": ["grpcguard-sidecar"],
                           "modules": ["grpcguard-sidecar-crypto.so"],
                           "entrypoint": "grpcguard-sidecar", "extra": ["iptables"]},
}

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)
    return cond


def stages(path):
    """[(from_line, [instructions])] with continuation lines joined, comments dropped."""
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    text = re.sub(r"\\\n", " ", text)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word = line.split(None, 1)[0].upper()
        if word == "FROM":
            out.append((line, []))
        elif out:
            out[-1][1].append(line)
    return out


def apt_packages(instrs):
    pkgs = set()
    for i in instrs:
        for m in re.finditer(r"apt-get install ([^&]*)", i):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-")}
    return pkgs


def needed_packages(binary):
    """Debian packages providing the binary's direct NEEDED libraries."""
    dyn = subprocess.run(["readelf", "-d", binary], stdout=subprocess.PIPE, text=True,
                         check=True).stdout
    libs = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn)
    ldd = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, text=True).stdout
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    pkgs = {}
    for lib in libs:
        path = where.get(lib)
        if not check(path, "%s: %s not found by ldd" % (binary, lib)):
            continue
        real = os.path.realpath(path)
        for cand in (path, "/usr" + path, real):
            p = subprocess.run(["dpkg", "-S", cand], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            if p.returncode == 0:
                pkgs[lib] = p.stdout.split(":", 1)[0]
                break
        else:
            check(False, "%s: no Debian package owns %s" % (binary, path))
    return pkgs


def replay_build(path, instrs, outdir):
    """Copy only what the build stage COPYs, run its make; returns the built dir."""
    ctx = os.path.join(outdir, "ctx")
    os.makedirs(ctx)
    for i in instrs:
        if i.upper().startswith("COPY ") and "--from" not in i:
            args = shlex.split(i)[1:]
            for src in args[:-1]:
                s = os.path.join(ROOT, src.rstrip("/"))
                d = os.path.join(ctx, src.rstrip("/"))
                if os.path.isdir(s):
                    shutil.copytree(s, d, ignore=shutil.ignore_patterns("*.o", "*.d"))
                else:
                    shutil.copy(s, d)
    (run,) = [i for i in instrs if re.match(r"RUN\s+make\s", i)]
    cmd = run[4:].replace("/out", os.path.join(outdir, "out"))
    cmd = cmd.replace('-j"$(nproc)"', "-j2")
    print("replaying %s build stage: %s" % (path, cmd))
    # As in a fresh container: no make flags inherited from a surrounding `make test`.
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "CFLAGS",
                        "LDFLAGS", "CC", "SAN", "BUILD")}
    p = subprocess.run(["bash", "-c", "set -e; " + cmd], cwd=ctx, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=500)
    check(p.returncode == 0, "%s: build stage failed in a context holding only its COPYs:\n%s"
          % (path, p.stdout[-3000:]))
    return os.path.join(outdir, "out")


def main():
    with open(os.path.join(ROOT, "charts", "grpcguard", "values.yaml")) as f:
        values = yaml.safe_load(f)
    expect_uid = {"webhook/Dockerfile": values["podSecurityContext"]["runAsUser"],
                  "sidecar/Dockerfile": values["injection"]["proxyUID"]}
    for path, spec in IMAGES.items():
        st = stages(path)
        if not check(len(st) == 2, "%s: expected a build and a runtime stage" % path):
            continue
        (build_from, build), (run_from, runtime) = st
        check(re.search(r"FROM debian:\S+ AS build", build_from, re.I), path + ": build stage")
        check(re.match(r"FROM debian:\S*-slim$", run_from), path + ": runtime is not slim Debian")
        pkgs = apt_packages(runtime)
        check(not [p for p in pkgs if p.endswith("-dev")], "%s: -dev packages at runtime" % path)
        for extra in spec.get("extra", []):
            check(extra in pkgs, "%s: runtime lacks %s" % (path, extra))
        users = [i.split()[1] for i in runtime if i.upper().startswith("USER ")]
        check(users and users[-1].split(":")[0] == str(expect_uid[path]),
              "%s: USER %s, the chart expects uid %s" % (path, users, expect_uid[path]))
        ep = [i for i in runtime if i.upper().startswith("ENTRYPOINT ")]
        check(ep and ep[-1].endswith('["/usr/local/bin/%s"]' % spec["entrypoint"]),
              "%s: ENTRYPOINT %s" % (path, ep))
        # Runtime packages must exist in this Debian release (this machine is one).
        for p in sorted(pkgs):
            r = subprocess.run(["apt-cache", "show", p], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            r2 = subprocess.run(["dpkg-query", "-W", p], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
            check(r.returncode == 0 or r2.returncode == 0, "%s: no Debian package %s" % (path, p))
        with tempfile.TemporaryDirectory(prefix="gg-img.") as tmp:
            out = replay_build(path, build, tmp)
            for prog in spec["programs"]:
                b = os.path.join(out, prog)
                if not check(os.access(b, os.X_OK), "%s: %s not built" % (path, prog)):
                    continue
                check(subprocess.run([b, "--help"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, timeout=20).returncode == 0,
                      "%s --help failed" % prog)
                for lib, pkg in sorted(needed_packages(b).items()):
                    if pkg == "libc6":
                        continue  # in every Debian image
                    check(pkg in pkgs, "%s: %s needs %s (package %s), not installed at runtime"
                          % (path, prog, lib, pkg))
                copies = " ".join(i for i in runtime if i.upper().startswith("COPY"))
                check("/" + prog in copies, "%s: %s is not copied into the runtime" % (path, prog))
            # Shared objects the programs dlopen from their own directory (the sidecar's
            # crypto module): built, copied beside them, their libraries installed.
            for mod in spec.get("modules", []):
                m = os.path.join(out, mod)
                if not check(os.path.exists(m), "%s: %s not built" % (path, mod)):
                    continue
                for lib, pkg in sorted(needed_packages(m).items()):
                    if pkg == "libc6":
                        continue
                    check(pkg in pkgs, "%s: %s needs %s (package %s), not installed at runtime"
                          % (path, mod, lib, pkg))
                copies = [i for i in runtime if i.upper().startswith("COPY")]
                check([c for c in copies if "/" + mod in c and
                       "/usr/local/bin" in c.split()[-1]],
                      "%s: %s is not copied beside the programs (/usr/local/bin)" % (path, mod))
    # The chart runs the webhook through ENTRYPOINT (args only, no command).
    with open(os.path.join(ROOT, "charts", "grpcguard", "templates", "deployment.yaml")) as f:
        dep = f.read()
    check("command:" not in dep and "args:" in dep, "deployment.yaml must set args, not command")
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    print("Dockerfiles: build stages replayed, runtime libraries and users match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
