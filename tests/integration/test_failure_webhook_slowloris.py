#!/usr/bin/python3
"""Regression test: a slowloris that trickles bytes must not hold grpcguard-webhook's
connections (issue 8: "per-connection timeout (slowloris)").

An idle timeout alone (libmicrohttpd's MHD_OPTION_CONNECTION_TIMEOUT) is defeated by a
client that sends one byte of its request headers, or of a declared body, more often than
the timeout; limits.maxConnections such clients then hold every slot and the API server's
admission requests wait in the listen backlog (with failurePolicy Fail, no pod can be
created). Since 677a998 limits.connectionTimeoutSeconds is also a deadline for the whole
request.

Checked: 4 trickling connections, 2 through the headers and 2 through a body, each sending
one byte every 0.5 s with connectionTimeoutSeconds 2 and maxConnections 4; after 6 s
(three idle timeouts) a real AdmissionReview must still be answered within 3 s.
Ports 31800-31899.
"""
import http.client
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib", "py"))
from gg_testlib import GG_ROOT, Proc, certgen, check, free_port, program  # noqa: E402

tmp = tempfile.mkdtemp(prefix="gg-wh-slow-")
POD = os.path.join(GG_ROOT, "tests", "data", "admission", "pod-bare.json")


def review():
    with open(POD) as f:
        pod = json.load(f)
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                       "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                   "operation": "CREATE", "namespace": "demo",
                                   "object": pod}}).encode()


def main():
    ca, cert, key = certgen(os.path.join(tmp, "certs"))
    cfg = os.path.join(tmp, "webhook.yaml")
    with open(cfg, "w") as f:
        f.write("limits:\n  maxConnections: 4\n  connectionTimeoutSeconds: 2\n")
    port = free_port(31800, 31899)
    wh = Proc([program("grpcguard-webhook"), "--listen", "127.0.0.1:%d" % port, "--tls-cert", cert,
               "--tls-key", key, "--threads", "2", "--config", cfg],
              env={"POD_NAMESPACE": "grpcguard-system"})
    wh.wait_event("listening")
    ctx = ssl.create_default_context(cafile=ca)

    stop = threading.Event()
    alive = []

    def trickle(i):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                            server_hostname="localhost")
        if i % 2:  # through a declared body
            s.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n")
            data = b"{" + b" " * 99999
        else:      # through the request headers
            data = b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 10000
        n = 0
        try:
            while not stop.is_set() and n < len(data):
                s.sendall(data[n:n + 1])
                n += 1
                stop.wait(0.5)
            alive.append(i)
        except OSError:
            pass
        finally:
            s.close()

    ths = [threading.Thread(target=trickle, args=(i,), daemon=True) for i in range(4)]
    for t in ths:
        t.start()
    time.sleep(6)
    t0 = time.monotonic()
    try:
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=3)
        conn.request("POST", "/mutate", body=review(), headers={"Content-Type": "application/json"})
        status = conn.getresponse().status
        conn.close()
    except OSError as e:
        status = repr(e)
    el = time.monotonic() - t0
    stop.set()
    for t in ths:
        t.join(5)
    print("trickling connections still open after 6 s: %d of 4" % len(alive))
    check(status == 200,
          "admission request while 4 connections trickle 1 byte / 0.5 s "
          "(connectionTimeoutSeconds 2, maxConnections 4): %r after %.1fs, want 200" % (status, el))
    check(wh.stop() == 0, "webhook exit code")


if __name__ == "__main__":
    main()
