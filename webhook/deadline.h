/*
 * Whole-request deadlines for the webhook's connections (the slowloris defence).
 *
 * libmicrohttpd's connection timeout is an idle timeout: any byte resets it, so a client
 * that trickles its headers or body one byte at a time keeps its connection forever. This
 * registry gives every connection a deadline by which the request in progress must have
 * arrived completely: it starts when the connection is accepted (so it covers the TLS
 * handshake) and again when a response has been sent (the next request on a keep-alive
 * connection), and stops when the request has been received. wh_deadlines_expire() shuts
 * down (shutdown(2), SHUT_RDWR) the socket of every connection past its deadline;
 * libmicrohttpd then reads EOF and closes the connection itself, so this module never
 * closes or frees anything the library owns.
 *
 * Thread-safe: one mutex guards the registry. libmicrohttpd's threads add, mark and
 * remove entries; the main thread expires them. An entry must be removed before its
 * socket is closed (libmicrohttpd's CLOSED notification comes before close()), so a
 * shutdown() under the mutex never reaches a reused descriptor. It does no logging and
 * keeps no clock: "now" is passed in.
 */
#ifndef GRPCGUARD_WH_DEADLINE_H
#define GRPCGUARD_WH_DEADLINE_H

#include <stdint.h>

struct wh_deadlines;
struct wh_conn_deadline;

/* Called once per connection that missed its deadline, under the registry's mutex:
 * keep it short (count, rate-limited log) and do not call back into the registry. */
typedef void (*wh_deadline_cb)(void *arg, const char *peer, uint64_t elapsed_ms);

/* A new empty registry with this per-request time limit, or NULL (out of memory). */
struct wh_deadlines *wh_deadlines_new(uint64_t timeout_ms);

/* Free the registry and any entries still in it (their sockets are not touched). NULL ok. */
void wh_deadlines_free(struct wh_deadlines *r);

/*
 * Register connection socket `fd` (borrowed), accepted at now_ms; its first request must
 * arrive by now_ms + timeout. `peer` (copied, may be NULL) names it in the callback.
 * Returns the new entry, or NULL when out of memory (the connection then has no deadline).
 */
struct wh_conn_deadline *wh_deadlines_add(struct wh_deadlines *r, int fd, const char *peer,
					  uint64_t now_ms);

/* Unregister and free the entry; call before the socket is closed. NULL is a no-op. */
void wh_deadlines_remove(struct wh_deadlines *r, struct wh_conn_deadline *e);

/* The request in progress has been received completely: stop its clock. NULL ok. */
void wh_deadlines_received(struct wh_deadlines *r, struct wh_conn_deadline *e);

/* A request is finished; the next one on this connection must arrive by now_ms + timeout.
 * NULL ok. */
void wh_deadlines_rearm(struct wh_deadlines *r, struct wh_conn_deadline *e, uint64_t now_ms);

/*
 * Shut down the socket of every armed entry whose deadline is at or before now_ms and
 * that has not been shut down yet, calling cb (may be NULL) for each. Returns how many.
 */
unsigned wh_deadlines_expire(struct wh_deadlines *r, uint64_t now_ms, wh_deadline_cb cb, void *arg);

/* Entries registered (connections known), for tests and metrics. */
unsigned wh_deadlines_count(struct wh_deadlines *r);

#endif
