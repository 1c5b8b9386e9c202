/*
 * The gate: what may reach the app, decided in one place (STYLE.md "Security decisions
 * live in one place"; docs/security.md names this module).
 *
 * Two doors lead to the app, and both are judged here:
 *  - a request on an HTTP/2 connection: before the policy is asked, the request must have
 *    the one form every gRPC server routes the same way. When an authorization entry
 *    applies to this pod, `:method` must be POST, `:scheme` http or https, and `:path`
 *    exactly /<service>/<method> (sc_gate_path_canonical). Anything else is refused, never
 *    normalised, so the method the policy judged is the method the app runs;
 *  - a connection that is not HTTP/2 prior knowledge (HTTP/1.1, an h2c upgrade, TLS,
 *    anything): passed through as TCP only when the policy's effective `passthrough` is
 *    allow; otherwise refused (HTTP/1.x gets a 403, anything else is closed).
 * Pods without an authorization entry keep the old behaviour: any HTTP/2 request goes to
 * the policy as sent, non-HTTP/2 connections pass through.
 *
 * What it does not do: evaluate the policy (policy/), verify tokens (authn.c), or parse
 * HTTP/2 (nghttp2 does; its own checks run before this one).
 */
#ifndef GRPCGUARD_SC_GATE_H
#define GRPCGUARD_SC_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "policy/policy.h"

struct sc_stream;
struct sc_conn;
struct sc_snap;

/* Why a request was refused; also the `reason` label of grpcguard_requests_refused_total. */
enum sc_gate_reason {
	SC_GATE_OK = 0,
	SC_GATE_PATH,	   /* :path missing or not /<service>/<method> */
	SC_GATE_METHOD,	   /* :method missing or not POST */
	SC_GATE_SCHEME,	   /* :scheme missing or not http/https */
	SC_GATE_AUTHORITY, /* a host field that differs from :authority (RFC 9113 8.3.1) */
	SC_GATE_NREASONS,
};
/* "ok", "path", "method", "scheme". */
const char *sc_gate_reason_name(enum sc_gate_reason r);

/*
 * Whether p[0..len) is a canonical gRPC path: "/" service "/" method, both non-empty,
 * only ASCII letters, digits, '.', '_' and '-' (protobuf full names and identifiers, plus
 * the '-' non-protobuf services use), and neither part "." nor "..". So no query, no
 * fragment, no '%' escape, no "//", no dot segments, no control characters, spaces or
 * non-ASCII. Pure.
 */
bool sc_gate_path_canonical(const char *p, size_t len);

/*
 * The request form check on a request's header list (pseudo-headers included, as
 * received): SC_GATE_OK, or the first reason it is refused (path, then method, then
 * scheme, then authority: a host field that differs from :authority). A pseudo-header
 * given twice counts as malformed. Pure.
 */
enum sc_gate_reason sc_gate_check_request(const struct policy_header *h, size_t n);

/*
 * For stream.c, once the request headers are complete and s->snap is set: when an
 * authorization entry applies to this pod, runs sc_gate_check_request and, if the
 * request is refused, answers it (trailers-only, grpc-status 12 UNIMPLEMENTED, as
 * grpc-go answers a malformed method name), counts and logs it. Returns true when the
 * request may go on to authentication and the policy; false when it was answered.
 */
bool sc_gate_admit_stream(struct sc_stream *s, const struct policy_header *h, size_t n);

/*
 * Whether buf[0..len) can be the start of an HTTP/1.x request line: 1 to 20 uppercase
 * letters (the method) followed by a space, or a shorter prefix of that. Pure.
 */
bool sc_gate_looks_like_http1(const uint8_t *buf, size_t len);

/*
 * For h2conn.c, where a connection that is not HTTP/2 prior knowledge would start its
 * TCP passthrough (c->peek holds what was read). Returns true when passthrough is allowed
 * (effective mode allow). Otherwise refuses the connection and returns false: bytes that
 * look like HTTP/1.x get "HTTP/1.1 403 Forbidden" with Connection: close, then our side
 * is shut down and what the client still sends is read and dropped until it closes
 * (lingering close, so the 403 is not lost to a TCP reset); anything else is closed at
 * once. Counted in grpcguard_connections_refused_total{reason="not_http2"}.
 * A snapshot without a usable policy (reload.h, fail closed) refuses too.
 */
bool sc_gate_admit_passthrough(struct sc_conn *c);

/*
 * For a connection in TCP passthrough (CM_PASS): when the policy changed since it was
 * admitted and passthrough is no longer allowed (an authorization entry now applies, or
 * the policy says `passthrough: deny`, or no usable policy), close it at once, so bytes
 * the client sends after the reload never reach the app unjudged. Counted in
 * grpcguard_connections_refused_total{reason="not_http2"} and logged
 * (`connection_refused`, reason `policy_changed`). Only pipes that sc_gate_admit_passthrough
 * admitted (c->pass_gen != 0) are checked; a relay that never met the inbound door (the
 * outbound listener's) is left alone. Cheap when nothing changed (one atomic load); the
 * worker calls it on every policy change and every sweep.
 */
void sc_gate_recheck_passthrough(struct sc_conn *c);

/*
 * For h2conn.c, on an inbound connection's first bytes when they are not TLS: true when
 * plaintext is accepted (mtls mode PERMISSIVE, the default). Under STRICT refuses the
 * connection like sc_gate_admit_passthrough (HTTP/1.x gets a 403 naming STRICT, anything
 * else is closed), counted in grpcguard_connections_refused_total{reason="plaintext"},
 * and returns false.
 */
bool sc_gate_admit_plaintext(struct sc_conn *c);
/* Whether the policy in force asks for STRICT mTLS on this pod (for /policy too). */
bool sc_gate_mtls_strict(void);

/* A refused connection lingers at most this long (h2conn.c's sweep closes it). */
#define SC_GATE_LINGER_MS 2000

/*
 * What the gate does for this snapshot, for the admin /policy: {"passthrough": "allow" |
 * "deny", "passthroughFrom": "policy" | "default", "requestForm": "strict" | "any"}.
 * New reference, NULL on ENOMEM.
 */
json_t *sc_gate_json(const struct sc_snap *s);

#endif
