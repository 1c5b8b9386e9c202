/*
 * The admin HTTP server (plain HTTP/1.1 on a libuv loop in a thread of its own, requests
 * parsed by http-parser): /healthz, /readyz, /metrics, and extra GET routes a program
 * registers (the sidecar's /policy). Used by the sidecar on --admin 127.0.0.1:15020.
 * Readiness is a flag the program flips. The webhook does not use it (its HTTPS server,
 * webhook/server.c, serves its own probes), so no program that links this links
 * libmicrohttpd or GnuTLS.
 */
#ifndef GRPCGUARD_ADMIN_H
#define GRPCGUARD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct metrics_registry;
struct admin_server;

/*
 * A route handler: returns an HTTP status, and a new malloc'd body in *body (NUL-terminated,
 * length *len) with its content type in *ctype (static string). Called on the admin thread.
 */
typedef int (*admin_route_fn)(void *ctx, char **body, size_t *len, const char **ctype);

/*
 * Start serving on "HOST:PORT" ("[::1]:15020" for IPv6). metrics is borrowed and must
 * outlive the server. Returns 0 and a new server, or negative errno (e.g. -EADDRINUSE).
 */
int admin_start(const char *listen, struct metrics_registry *metrics, struct admin_server **out);
/* Register GET <path> before or after start. Returns 0, -EINVAL, -EEXIST or -ENOMEM. */
int admin_route(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx);
/* The same, but only loopback peers are served; others get 403 (for what must not leave
 * the pod through the pod IP, like a dump of the policy in force). */
int admin_route_local(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx);
void admin_set_ready(struct admin_server *a, bool ready);
/* The bound port (useful after listening on port 0). */
unsigned admin_port(const struct admin_server *a);
void admin_stop(struct admin_server *a); /* stops and frees; NULL ok */

/* "host:port" / "[v6]:port" / ":port" -> host (NUL-terminated, may be "") and port. */
int admin_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port);

#endif
