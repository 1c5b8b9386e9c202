/*
 * The webhook's HTTPS server: libmicrohttpd with its GnuTLS backend (TLS 1.2+), a thread
 * pool, POST /validate and /mutate (review.c), GET /healthz, /readyz and /metrics on the
 * same port, request limits (body size -> 413, content type -> 415, connections, a
 * deadline for receiving each whole request (deadline.h) besides the idle timeout),
 * per-admission JSON logs and Prometheus metrics.
 *
 * Certificate rotation without a restart: wh_server_tick() notices changed cert/key files,
 * checks the new pair (parses, key matches), starts a second daemon with it on the same
 * listening socket, quiesces the old one (it stops accepting, finishes what it has, and
 * answers with "Connection: close") and stops it once its connections are gone. Garbage
 * files are logged and the old pair keeps serving. Not thread-safe: one thread (main)
 * calls start, tick and stop.
 */
#ifndef GRPCGUARD_WH_SERVER_H
#define GRPCGUARD_WH_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "webhook/config.h"

struct wh_server;

struct wh_server_options {
	const char *listen;		/* "HOST:PORT", "[v6]:PORT" or ":PORT" */
	const char *cert_path;		/* PEM certificate (chain) */
	const char *key_path;		/* PEM private key */
	unsigned threads;		/* thread pool size, >= 1 */
	const struct wh_config *config; /* borrowed; must outlive the server */
};

/*
 * Load the certificate pair, bind, and serve. Returns 0 and a new server, or negative
 * with a message in err: -ENOENT/-EACCES/-EINVAL for a missing/unreadable/bad
 * certificate or key, -EADDRINUSE etc. for the socket.
 */
int wh_server_start(const struct wh_server_options *o, struct wh_server **out, char *err,
		    size_t errlen);

/*
 * Periodic work, call about every 250 ms with a monotonic clock: shuts down connections
 * whose request did not arrive within limits.connectionTimeoutSeconds; checks the
 * certificate files once a second and rotates on change; stops quiesced daemons that
 * have drained.
 */
void wh_server_tick(struct wh_server *s, uint64_t now_mono_ms);

/* Make the next tick re-read the certificate files even if they look unchanged (SIGHUP). */
void wh_server_recheck(struct wh_server *s);

/* The port actually bound (useful with port 0). */
unsigned wh_server_port(const struct wh_server *s);

/*
 * Graceful stop: readiness goes false, no new connections are accepted, requests in
 * flight finish (up to drain_ms), then everything is freed. NULL is a no-op.
 */
void wh_server_stop(struct wh_server *s, unsigned drain_ms);

#endif
