/*
 * The admin port's routes, without I/O: /healthz, /readyz (a flag), /metrics (a registry)
 * and the paths a program registers (admin_route(), admin_route_local()), turned into
 * complete HTTP responses for requests that common/admin_http.c parsed. common/admin.c
 * serves them on a socket; any other server (a test, a fuzz target) can use them as well,
 * so there is one implementation of what the admin port answers.
 *
 * Thread-safety: routes may be added and the ready flag set from any thread while another
 * thread answers requests (a mutex guards the list, the flag is atomic). Routes are never
 * removed before admin_routes_free().
 */
#ifndef GRPCGUARD_ADMIN_ROUTES_H
#define GRPCGUARD_ADMIN_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "common/admin.h"

struct admin_http;
struct admin_routes;

/* A new table serving metrics (borrowed, may be NULL: /metrics is then empty); not ready.
 * Returns 0 or -ENOMEM. */
int admin_routes_new(struct metrics_registry *metrics, struct admin_routes **out);
void admin_routes_free(struct admin_routes *rt); /* NULL ok */

/*
 * Register GET path (local_only: loopback peers only, 403 to others). Returns 0, -EINVAL
 * (path not starting with '/', longer than 256 bytes, or a built-in path), -EEXIST or
 * -ENOMEM; the table is unchanged on failure.
 */
int admin_routes_add(struct admin_routes *rt, const char *path, admin_route_fn fn, void *ctx,
		     bool local_only);
void admin_routes_set_ready(struct admin_routes *rt, bool ready);

/*
 * The response to what h returned last: ADMIN_HTTP_BAD gets its 400/414/431, a request
 * its route's answer (405 for methods other than GET and HEAD, 404 for unknown paths, 403
 * for a local route and a peer that is not loopback). Route handlers run on the calling
 * thread. Returns 0 and new response bytes in *out (*outlen), or -ENOMEM.
 */
int admin_routes_answer(struct admin_routes *rt, const struct admin_http *h, bool peer_loopback,
			char **out, size_t *outlen);

#endif
