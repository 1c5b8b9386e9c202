/*
 * The policy in force and its live reload.
 *
 * One process-wide "snapshot": the parsed policy plus the pod's labels, immutable and
 * reference counted, swapped atomically when the policy file or the labels file changes.
 * Workers take a reference per RPC; the reloader runs on the main loop only. The watch
 * is an inotify watch (uv_fs_event) on the policy's directory, so a ConfigMap's `..data`
 * symlink swap is seen, debounced, plus a 1 s stat poll that also covers a directory that
 * does not exist yet. A file that fails to parse is logged with file:line:column, counted
 * and remembered for /policy; the last good policy stays. A missing or empty file never
 * replaces a good policy.
 *
 * Fail closed: when the policy file exists at start but cannot be used (it does not parse,
 * or cannot be read), there is no last good policy to keep; the snapshots then carry the
 * reason in `no_policy`, every RPC is refused (UNAVAILABLE) and the process is not ready,
 * until a good file arrives through the reload. A file missing at start is not an error:
 * no faults, every RPC allowed.
 *
 * What it does not do: evaluate requests (the policy library does) or JWT (sc_authn).
 */
#ifndef GRPCGUARD_SC_RELOAD_H
#define GRPCGUARD_SC_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "policy/policy.h"
#include "sidecar/peer.h"

struct sc_snap {
	_Atomic unsigned refs;
	struct policy *policy;	      /* never NULL */
	struct policy_labels *labels; /* NULL when no labels file */
	uint64_t generation;	      /* 1 for the first snapshot, +1 per change */
	char *no_policy;	      /* NULL, or why every RPC is refused (fail closed) */
	struct sc_peer_self self;     /* this pod's identity (env and these labels) */
};

struct sc_snap *sc_snap_ref(struct sc_snap *s);
void sc_snap_unref(struct sc_snap *s); /* NULL ok */

/* The snapshot in force: a new reference (never NULL after sc_reload_init succeeded). */
struct sc_snap *sc_state_current(void);
/* Its generation, cheap (an atomic load) so workers notice a swap between RPCs. */
uint64_t sc_state_generation(void);

/*
 * Load the initial policy and labels (synchronously, logging what happened) and prepare
 * the watch on `loop`. policy_path / labels_path may be NULL. Returns 0 or -ENOMEM.
 */
int sc_reload_init(uv_loop_t *loop, const char *policy_path, const char *labels_path);
/* Close the watch handles (they finish in the loop) and drop the snapshot. */
void sc_reload_stop(void);
void sc_reload_free(void);

/* Install p (stolen) as the policy in force, as a good reload would (tests, fuzzing).
 * Returns 0 or -ENOMEM (p released). */
int sc_reload_set_policy(struct policy *p);

/* Force a check now (tests, SIGHUP). */
void sc_reload_check(void);

/*
 * fn(ctx) is called on the reload's loop after every snapshot swap (the listener
 * recomputes readiness). One callback; NULL removes it.
 */
void sc_reload_set_notify(void (*fn)(void *ctx), void *ctx);
/* Whether the snapshot in force has a usable policy (false: failing closed). */
bool sc_reload_policy_ok(void);

/* The admin /policy route: JSON with generation, file, policy, last_error, and ctx (a
 * json_t *, borrowed, or NULL) as "inbound_ports". */
int sc_reload_policy_route(void *ctx, char **body, size_t *len, const char **ctype);

#endif
