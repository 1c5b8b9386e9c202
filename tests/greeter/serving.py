"""What the test servers share once their services are added: listen, say so, serve until
SIGTERM or SIGINT, then stop with a grace period. Imported by greeter_server.py and
shapes_server.py from this directory."""
import signal
import sys
import threading


def serve_until_signal(server, addr, name, grace_s):
    """Listen on addr ("host:port"), print "<name>: listening on <addr>", serve until
    SIGTERM/SIGINT, stop with grace_s. Exits 1 with a message when addr cannot be bound."""
    if server.add_insecure_port(addr) == 0:
        print("%s: cannot listen on %s" % (name, addr), file=sys.stderr)
        sys.exit(1)
    server.start()
    print("%s: listening on %s" % (name, addr), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop(grace_s)
