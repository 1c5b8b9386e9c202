"""capture.py IFNAME SECONDS NEEDLE: raw capture on one interface (run inside its netns).

Prints "ready" once the socket is bound, then "<hits> <frames>": how many frames carried
NEEDLE or the gRPC service name (the mTLS tests use it to show nothing readable is on the
wire).
"""
import socket, sys, time
ifname, secs, needle = sys.argv[1], float(sys.argv[2]), sys.argv[3].encode()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((ifname, 0))
s.settimeout(0.2)
end, hits, frames = time.time() + secs, 0, 0
print("ready", flush=True)
while time.time() < end:
    try:
        d = s.recv(65535)
    except socket.timeout:
        continue
    frames += 1
    hits += needle in d or b"helloworld.Greeter" in d
print(hits, frames, flush=True)
