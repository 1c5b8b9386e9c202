/*
 * Traffic interception: the `init` subcommand (iptables REDIRECT of inbound TCP to the
 * proxy port, in a chain of our own, IPv4 and IPv6) and the original destination of a
 * redirected connection (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
 */
#ifndef GRPCGUARD_SC_INTERCEPT_H
#define GRPCGUARD_SC_INTERCEPT_H

#include <stdbool.h>
#include <sys/socket.h>

#include <jansson.h>

/* `grpcguard-sidecar init ...` (argv[0] is "init"). Returns the process exit code. */
int sc_init_main(int argc, char **argv);

/*
 * The destination the client originally connected to, before REDIRECT, for an accepted
 * socket fd (IPv4 or IPv6). Returns 0 and fills *out, or -errno (-ENOENT when the
 * connection was not redirected).
 */
int sc_original_dst(int fd, struct sockaddr_storage *out);

/*
 * Whether a is an IPv4 127.0.0.0/8, ::1 or v4-mapped 127/8 address: an original
 * destination the proxy refuses (a redirected connection must never reach what the app
 * keeps on loopback).
 */
bool sc_addr_is_loopback(const struct sockaddr_storage *a);

/*
 * Whether a (an original destination, AF_INET or AF_INET6) is an address of this network
 * namespace: the local address of the accepted socket fd (the pod IP a REDIRECT lands on:
 * one getsockname, the common case), else any interface's address (getifaddrs). The
 * inbound proxy forwards only to these: an attacker on the pod's link can send a SYN for
 * any address to the pod's interface, PREROUTING's REDIRECT makes it local, and
 * forwarding it to its original destination would make the proxy an open relay with the
 * pod's address. Ports are not compared. fd < 0 skips the fast path. False when it cannot
 * tell (getifaddrs fails): refuse.
 */
bool sc_addr_is_own(int fd, const struct sockaddr_storage *a);

/*
 * For /policy: which inbound ports the pod's redirect covers, as the injector told the
 * proxy (env GRPCGUARD_INBOUND_PORTS "*" or "8080,9090", GRPCGUARD_EXCLUDE_INBOUND_PORTS,
 * GRPCGUARD_PROBE_PORTS): {"intercepted": "*"|"8080,9090"|null, "not_intercepted": text,
 * "excluded": [{"port": N, "reason": "sidecar"|"probe"|"annotation"}], "source": text}.
 * listen_port / admin_port are the proxy's own. Returns a new reference, NULL on ENOMEM.
 */
json_t *sc_intercept_ports_json(unsigned listen_port, unsigned admin_port);

#endif
