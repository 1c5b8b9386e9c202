#!/usr/bin/python3
"""grpcguard-webhook: SIGTERM under load (issue 8). Eight clients keep sending
AdmissionReviews (half on kept-alive connections, half on new ones) when SIGTERM arrives.
Every request must end one of two ways: a complete 200 answer with the right uid, or a
connection that was refused / closed before the request was sent. No 5xx, no truncated
reply, no request that hangs. /readyz turns 503 (or the port closes), new connections are
refused, and the process exits 0 within --drain-seconds.
Ports 31900-31999.
"""
import http.client
import json
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import (GG_ROOT, Proc, certgen, check, free_port, program,  # noqa: E402
                        timeout_scale)

tmp = tempfile.mkdtemp(prefix="gg-wh-drain-")
POD = os.path.join(GG_ROOT, "tests", "data", "admission", "pod-bare.json")
with open(POD) as f:
    POD_OBJ = json.load(f)


def review(uid):
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "operation": "CREATE", "namespace": "demo",
                                   "object": POD_OBJ}}).encode()


def main():
    ca, cert, key = certgen(os.path.join(tmp, "certs"))
    port = free_port(31900, 31999)
    wh = Proc([program("grpcguard-webhook"), "--listen", "127.0.0.1:%d" % port, "--tls-cert", cert,
               "--tls-key", key, "--threads", "2", "--drain-seconds", "5"],
              env={"POD_NAMESPACE": "grpcguard-system"})
    wh.wait_event("listening")
    ctx = ssl.create_default_context(cafile=ca)
    stop = threading.Event()
    ok, refused, bad, lost = [0], [0], [], []
    lock = threading.Lock()

    def client(n):
        conn = None
        i = 0
        while not stop.is_set():
            i += 1
            uid = "c%d-%d" % (n, i)
            sent = False
            try:
                if conn is None or n % 2:
                    if conn:
                        conn.close()
                    conn = http.client.HTTPSConnection("localhost", port, context=ctx,
                                                       timeout=10 * timeout_scale())
                    conn.connect()
                conn.putrequest("POST", "/mutate")
                conn.putheader("Content-Type", "application/json")
                body = review(uid)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders()
                conn.send(body)
                sent = True
                r = conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
                resp = json.loads(data)["response"]
                with lock:
                    if r.status == 200 and resp["uid"] == uid and resp["allowed"]:
                        ok[0] += 1
                    else:
                        bad.append("%s: %d %r" % (uid, r.status, data[:80]))
            except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                    http.client.RemoteDisconnected, ssl.SSLError, OSError, ValueError) as e:
                with lock:
                    # Refused or closed before our request was on the wire: fine. A request
                    # that was sent must be answered (while draining, with Connection: close).
                    if isinstance(e, (socket.timeout, TimeoutError)):
                        bad.append("%s: timed out" % uid)
                    elif sent and n % 2:
                        bad.append("%s: new connection, request sent, %r" % (uid, e))
                    elif sent:
                        lost.append("%s: %r" % (uid, e))
                    else:
                        refused[0] += 1
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.05)

    ths = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(8)]
    for t in ths:
        t.start()
    time.sleep(2 * timeout_scale())
    before = ok[0]
    check(before > 20 and not bad, "load before SIGTERM: %d OK, bad %s" % (before, bad[:3]))
    t0 = time.monotonic()
    wh.p.send_signal(signal.SIGTERM)
    try:
        rc = wh.p.wait(10 * timeout_scale())
    except Exception:
        rc = None
    el = time.monotonic() - t0
    time.sleep(0.5)
    stop.set()
    for t in ths:
        t.join(15 * timeout_scale())
    s = socket.socket()
    try:
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        gone = False
    except OSError:
        gone = True
    finally:
        s.close()
    print("requests: %d OK (%d before SIGTERM), %d refused before sending, %d sent on a "
          "kept-alive connection and closed unanswered %s, exit %r after %.2fs"
          % (ok[0], before, refused[0], len(lost), lost[:3], rc, el))
    check(not bad and not lost,
          "every request either answered 200 or refused before it was sent: %s" % (bad + lost)[:5])
    check(rc == 0 and el < 5 * timeout_scale() + 1,
          "SIGTERM under load: exit %r after %.2fs (drain 5s)" % (rc, el))
    check(gone, "port closed after exit")
    check(any(e.get("event") == "shutdown" for e in wh.events()), "shutdown logged")


if __name__ == "__main__":
    main()
