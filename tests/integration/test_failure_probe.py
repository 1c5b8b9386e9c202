#!/usr/bin/python3
"""Regression test: SIGTERM while the sidecar's readiness probe is connecting to an app
that never answers (its accept queue is full, so the kernel drops the SYNs) must still exit
0 within --drain-time. Before cccf13f the probe's pending uv_tcp_t connect kept the main
loop alive until the kernel gave up on the connect (about 2 minutes with the default
tcp_syn_retries), long past the pod's termination grace period.
Ports 31300-31399.
"""
import os
import signal
import socket
import time

from test_sidecar import SLOW, Sidecar, check, main

BASE = 31300


def test(tmp):
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind(("127.0.0.1", BASE + 1))
    lst.listen(0)
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", BASE + 1))
            fillers.append(c)
        time.sleep(0.2)
        sc = Sidecar(tmp, BASE, "127.0.0.1:%d" % (BASE + 1), BASE + 2,
                     ["--policy", os.path.join(tmp, "none.yaml"), "--drain-time", "2s"])
        time.sleep(0.5)
        check(sc.status("/readyz") == 503, "/readyz 503: the app does not accept")
        t0 = time.monotonic()
        sc.p.send_signal(signal.SIGTERM)
        try:
            rc = sc.p.wait(timeout=5 * SLOW)
        except Exception:
            rc = None
        check(rc == 0, "SIGTERM with the readiness probe's connect pending: exit %r after %.1fs "
              "(want 0 within the 2s drain time)" % (rc, time.monotonic() - t0))
        sc.stop()
    finally:
        for c in fillers:
            c.close()
        lst.close()


if __name__ == "__main__":
    main(test)
