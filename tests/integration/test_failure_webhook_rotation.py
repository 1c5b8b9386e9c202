#!/usr/bin/python3
"""grpcguard-webhook: certificate rotations and SIGTERM while clients keep connecting.

Regression test for a libmicrohttpd abort seen in CI: with its epoll back end,
MHD_quiesce_daemon() (called on every rotation and at SIGTERM) and a busy worker thread
both remove the listening socket from the worker's epoll set, unlocked, and the loser's
ENOENT is an MHD_PANIC ("Failed to remove listen FD from epoll set") that kills the
process. The window is a few hundred nanoseconds, so the test widens it: a small
LD_PRELOAD shim makes every EPOLL_CTL_DEL issued by the main thread (where quiescing
runs) wait 5 ms. A webhook using epoll for its listening socket aborts within a few
rotations; ours must survive 25 rotations under load, serve throughout and exit 0.
With six clients over a maxConnections of four, no connection may be refused at a
rotation either (the limit counts the accepting daemon's connections, not the retired one's).
Ports 32000-32099.
"""
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import Proc, certgen, check, free_port, program, skip  # noqa: E402

tmp = tempfile.mkdtemp(prefix="gg-wh-rot-")

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	static int (*real)(int, int, int, struct epoll_event *);
	if (!real)
		real = (int (*)(int, int, int, struct epoll_event *))dlsym(RTLD_NEXT, "epoll_ctl");
	if (op == EPOLL_CTL_DEL && gettid() == getpid()) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return real(epfd, op, fd, ev);
}
"""


def build_shim():
    src = os.path.join(tmp, "slow_epoll_del.c")
    so = os.path.join(tmp, "slow_epoll_del.so")
    with open(src, "w") as f:
        f.write(SHIM)
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip("cannot build the epoll_ctl shim: " + r.stderr.strip()[:200])
    return so


def main():
    shim = build_shim()
    ca, cert, key = certgen(os.path.join(tmp, "certs"))
    port = free_port(32000, 32099)
    # Six clients over a cap of four: the cap is reached at every rotation, and the retired
    # daemon's last connections must not make the new one refuse connections.
    cfg = os.path.join(tmp, "webhook.yaml")
    with open(cfg, "w") as f:
        f.write("limits:\n  maxConnections: 4\n")
    # verify_asan_link_order=0: in the sanitizer build the shim comes before the ASan runtime.
    wh = Proc([program("grpcguard-webhook"), "--listen", "127.0.0.1:%d" % port, "--tls-cert", cert,
               "--tls-key", key, "--threads", "2", "--drain-seconds", "5", "--config", cfg],
              env={"LD_PRELOAD": shim, "POD_NAMESPACE": "grpcguard-system",
                   "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"})
    wh.wait_event("listening")
    ctx = ssl.create_default_context(cafile=ca)
    stop = threading.Event()
    ok, errors = [0], []
    lock = threading.Lock()

    def client():
        while not stop.is_set():
            try:
                s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                    server_hostname="localhost")
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while True:
                    part = s.recv(4096)
                    if not part:
                        break
                    got += part
                s.close()
                with lock:
                    if got.startswith(b"HTTP/1.1 200"):
                        ok[0] += 1
                    else:
                        errors.append(got[:60])
            except OSError as e:
                with lock:
                    errors.append(repr(e)[:80])
                if wh.p.poll() is not None:
                    return

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    rotations = 0
    for _ in range(25):
        if wh.p.poll() is not None:
            break
        seen = len(wh.events())
        wh.p.send_signal(signal.SIGHUP)
        try:
            wh.wait_event("cert_reloaded", after=seen, timeout=5)
        except SystemExit:
            break
        rotations += 1
        time.sleep(0.1)
    alive = wh.p.poll() is None
    with lock:
        served_before, errors_before = ok[0], list(errors)
    # SIGTERM while the clients are still connecting: the drain quiesces too.
    rc = wh.stop()
    stop.set()
    for t in threads:
        t.join(30)
    log = wh.log_text()
    print("rotations %d, served %d before SIGTERM, %d errors before it %r, exit %r" %
          (rotations, served_before, len(errors_before), errors_before[:3], rc))
    check(alive and rotations == 25,
          "the webhook died during rotation %d (exit %r):\n%s" % (rotations + 1, wh.p.returncode,
                                                                  log[-1500:]))
    check("Fatal error" not in log, "libmicrohttpd panicked:\n" + log[-1500:])
    check(served_before >= 100, "only %d requests served across the rotations" % served_before)
    check(not errors_before, "requests failed across the rotations: %r" % errors_before[:5])
    check(rc == 0, "exit code %r after SIGTERM:\n%s" % (rc, log[-1500:]))
    print("PASS")


if __name__ == "__main__":
    main()
