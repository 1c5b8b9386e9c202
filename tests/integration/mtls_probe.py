#!/usr/bin/python3
"""Test helper for test_mtls.sh: one TLS 1.3 + ALPN h2 connection to a sidecar's inbound
port with a given client certificate (or none), the HTTP/2 preface and an empty SETTINGS;
prints "served" when the sidecar answers with an HTTP/2 SETTINGS frame inside TLS, else
"refused <reason>". Also mints certificates for the negative cases (another CA, expired).

  mtls_probe.py connect HOST PORT CA_PEM [CERT KEY]
  mtls_probe.py call HOST PORT CA_PEM CERT KEY PEER_HEADER NAME
      one SayHello over mTLS with x-grpcguard-peer: PEER_HEADER (what a sidecar sends);
      prints the grpc-status
  mtls_probe.py mint CA_CERT CA_KEY URI NOT_BEFORE_OFFSET_S LIFETIME_S OUT_CERT OUT_KEY
"""
import datetime
import socket
import ssl
import sys


def connect(host, port, ca, cert=None, key=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False  # sidecars carry only a SPIFFE URI SAN
    ctx.load_verify_locations(ca)
    ctx.set_alpn_protocols(["grpcguard-mtls", "h2"])  # as a sidecar offers (tls.h)
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                d = s.recv(9)
                if len(d) == 9 and d[3] == 4:
                    print("served")
                    return 0
                print("refused no-settings")
    except (ssl.SSLError, OSError) as e:
        print("refused %s" % (getattr(e, "reason", None) or type(e).__name__))
    return 0


def call(host, port, ca, cert, key, peer, name):
    import h2.connection
    import h2.config
    import h2.events
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(ca)
    ctx.set_alpn_protocols(["grpcguard-mtls", "h2"])  # as a sidecar offers (tls.h)
    ctx.load_cert_chain(cert, key)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            c.initiate_connection()
            c.send_headers(1, [(":method", "POST"), (":scheme", "http"),
                               (":path", "/helloworld.Greeter/SayHello"),
                               (":authority", "server:8080"), ("content-type", "application/grpc"),
                               ("te", "trailers"), ("x-grpcguard-peer", peer)])
            msg = b"\x0a" + bytes([len(name)]) + name.encode()
            c.send_data(1, b"\x00" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
            s.sendall(c.data_to_send())
            status = "none"
            while True:
                d = s.recv(65535)
                if not d:
                    break
                for ev in c.receive_data(d):
                    if isinstance(ev, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                        for k, v in ev.headers:
                            if k in (b"grpc-status", "grpc-status"):
                                status = v.decode() if isinstance(v, bytes) else v
                    if isinstance(ev, h2.events.StreamEnded):
                        print(status)
                        return 0
                    if isinstance(ev, h2.events.DataReceived):
                        c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                s.sendall(c.data_to_send())
            print(status)
    return 0


def mint(ca_cert, ca_key, uri, nb_off, life, out_cert, out_key):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID
    ca = x509.load_pem_x509_certificate(open(ca_cert, "rb").read())
    cak = serialization.load_pem_private_key(open(ca_key, "rb").read(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=int(nb_off))
    c = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca.subject)
         .public_key(k.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(seconds=int(life)))
         .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), True)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                               ExtendedKeyUsageOID.CLIENT_AUTH]), False)
         .sign(cak, hashes.SHA256()))
    open(out_cert, "wb").write(c.public_bytes(serialization.Encoding.PEM))
    open(out_key, "wb").write(k.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "connect":
        sys.exit(connect(*sys.argv[2:]))
    if sys.argv[1] == "call":
        sys.exit(call(*sys.argv[2:]))
    sys.exit(mint(*sys.argv[2:]))
