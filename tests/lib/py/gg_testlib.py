"""Shared helpers for grpcguard's Python integration tests.

Process management that cleans up (by PID, also when a test fails), JSON-log waiting,
program paths, and the valgrind/sanitizer wrappers the runner asks for through the
environment (GG_BIN, GG_VALGRIND, GG_SANITIZE). Standard library only.
"""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

GG_ROOT = os.environ.get("GG_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
GG_BIN = os.environ.get("GG_BIN") or os.path.join(GG_ROOT, "build")
VALGRIND = os.environ.get("GG_VALGRIND") == "1"
SANITIZE = os.environ.get("GG_SANITIZE") == "1"

_procs = []


def skip(reason):
    """Exit with the runner's "skipped" code; the last line says why."""
    print(reason)
    sys.exit(77)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def program(name):
    path = os.path.join(GG_BIN, name)
    if not os.access(path, os.X_OK):
        skip("%s not built (GG_BIN=%s)" % (name, GG_BIN))
    return path


def wrap(argv):
    """The command line with valgrind in front when GG_VALGRIND=1."""
    if VALGRIND:
        return ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite,indirect"] + argv
    return argv


def timeout_scale():
    return 10.0 if VALGRIND else (2.0 if SANITIZE else 1.0)


class Proc:
    """A program under test: stderr goes to a file we can search; killed at exit."""

    def __init__(self, argv, env=None, workdir=None):
        self.log_path = tempfile.mktemp(prefix="gg-proc-", suffix=".log")
        self.log_file = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.argv = wrap(argv)
        self.p = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                  env=full_env, cwd=workdir)
        _procs.append(self)

    @property
    def pid(self):
        return self.p.pid

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def events(self):
        """Every JSON log line as a dict (other lines skipped)."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def wait_event(self, event, timeout=10.0, pred=None, after=0):
        """The first log line with this event (and pred(line)) after `after` lines seen."""
        deadline = time.monotonic() + timeout * timeout_scale()
        while time.monotonic() < deadline:
            evs = self.events()
            for e in evs[after:]:
                if e.get("event") == event and (pred is None or pred(e)):
                    return e
            if self.p.poll() is not None:
                evs = self.events()
                for e in evs[after:]:
                    if e.get("event") == event and (pred is None or pred(e)):
                        return e
                fail("%s exited (%s) before logging %r:\n%s" %
                     (self.argv[0], self.p.returncode, event, self.log_text()[-3000:]))
            time.sleep(0.05)
        fail("no %r log event within %.0fs:\n%s" % (event, timeout, self.log_text()[-3000:]))

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal and wait; returns the exit code (kills hard after timeout)."""
        if self.p.poll() is None:
            try:
                self.p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout * timeout_scale())
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log_file.close()
        return self.p.returncode

    def cleanup(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        if not self.log_file.closed:
            self.log_file.close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


def _cleanup_all():
    for p in _procs:
        try:
            p.cleanup()
        except Exception:
            pass


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def run(argv, timeout=60.0, env=None):
    """Run a program to completion (under valgrind if asked): (rc, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run(wrap(argv), capture_output=True, env=full_env,
                       timeout=timeout * timeout_scale())
    return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")


def free_port(lo, hi):
    """A TCP port in [lo, hi] nobody listens on right now (within this helper's range)."""
    for port in range(lo, hi + 1):
        s = socket.socket()
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    fail("no free port in %d-%d" % (lo, hi))


def certgen(out_dir, service="grpcguard-webhook", namespace="grpcguard-system",
            extra=("localhost", "127.0.0.1")):
    """Run grpcguard-certgen into out_dir; returns (ca, cert, key) paths."""
    argv = [program("grpcguard-certgen"), "--service", service, "--namespace", namespace,
            "--out", out_dir]
    for e in extra:
        argv += ["--extra-san", e]
    rc, out, err = run(argv)
    check(rc == 0, "certgen failed (%d): %s" % (rc, err))
    return (os.path.join(out_dir, "ca.crt"), os.path.join(out_dir, "tls.crt"),
            os.path.join(out_dir, "tls.key"))


# ---- Kubernetes schema validation of what the webhook's patches produce ---------------
_patched = {"dir": None, "n": 0}


def patched_pods_dir():
    """Where this test keeps the pods it built by applying the webhook's JSONPatch:
    $GG_PATCHED_PODS/<test> or build/patched-pods/<test> (kept for inspection)."""
    if _patched["dir"] is None:
        test = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        base = os.environ.get("GG_PATCHED_PODS") or os.path.join(GG_ROOT, "build", "patched-pods")
        d = os.path.join(base, test)
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            if f.endswith(".json"):
                os.unlink(os.path.join(d, f))
        _patched["dir"] = d
    return _patched["dir"]


def record_patched(obj, label="pod"):
    """Keep one patched object for validate_patched(); returns it unchanged."""
    _patched["n"] += 1
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]
    path = os.path.join(patched_pods_dir(), "%04d-%s.json" % (_patched["n"], safe))
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
    return obj


def validate_patched(minimum=1):
    """Validate every recorded object against the Kubernetes schemas (kubernetes-models
    through tests/schema/validate.mjs, which names the object and JSON path of each
    problem); fail the test when one is invalid or fewer than `minimum` were recorded."""
    d = patched_pods_dir()
    check(_patched["n"] >= minimum, "only %d patched objects recorded in %s (expected %d)"
          % (_patched["n"], d, minimum))
    try:
        p = subprocess.run(["node", os.path.join(GG_ROOT, "tests", "schema", "validate.mjs"), d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
    except FileNotFoundError:
        fail("node is missing: make deps installs nodejs (needed for the schema check)")
    print(p.stdout.strip().splitlines()[-1] if p.stdout.strip() else "(validator said nothing)")
    check(p.returncode == 0, "patched pods fail the Kubernetes schemas (kept in %s):\n%s"
          % (d, p.stdout))


class AcceptLoop(threading.Thread):
    """A test server on 127.0.0.1:port (the raw HTTP/2 apps of the upstream tests): run()
    accepts until stop() and serves each connection in a thread of its own with
    self.serve(sock), which the subclass defines; conns counts the connections, lock
    guards the subclass's counters too."""

    def __init__(self, port, backlog=64):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.conns = 0
        self.stopping = False
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(backlog)

    def run(self):
        while not self.stopping:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
            threading.Thread(target=self.serve, args=(s,), daemon=True).start()

    def stop(self):
        self.stopping = True
        self.ls.close()

    def serve(self, s):
        raise NotImplementedError
