/*
 * Traffic interception: the `init` subcommand (iptables REDIRECT of inbound TCP to the
 * proxy port, in a chain of our own, IPv4 and IPv6) and the original destination of a
 * redirected connection (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
 */
#ifndef GRPCGUARD_SC_INTERCEPT_H
#define GRPCGUARD_SC_INTERCEPT_H

#include <sys/socket.h>

/* `grpcguard-sidecar init ...` (argv[0] is "init"). Returns the process exit code. */
int sc_init_main(int argc, char **argv);

/*
 * The destination the client originally connected to, before REDIRECT, for an accepted
 * socket fd (IPv4 or IPv6). Returns 0 and fills *out, or -errno (-ENOENT when the
 * connection was not redirected).
 */
int sc_original_dst(int fd, struct sockaddr_storage *out);

#endif
