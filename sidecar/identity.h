/*
 * The sidecar's workload identity (issue 16): an ECDSA P-256 key made in memory at start
 * (never written, never sent), a CSR, the certificate from the issuer's POST /v1/certify
 * (DESIGN.md), renewal at half-life with exponential backoff and jitter, and the TLS
 * contexts built from it.
 *
 * Threading: one background thread talks to the issuer (blocking OpenSSL over a socket
 * with timeouts), so no event loop ever waits for it. Each certificate it gets becomes a
 * generation (struct sc_idgen): the server and client SSL_CTX, the peer trust store (the
 * issuer's caBundle), our SPIFFE ID and notAfter. Generations are refcounted: a new
 * connection takes a reference to the current one (sc_identity_current) and keeps it for
 * its life, so a swap never disturbs a handshake in progress.
 *
 * What it does not do: TLS on connections (tls.c), decide anything about an RPC (gate.c,
 * stream.c), or issue certificates (the webhook does).
 */
#ifndef GRPCGUARD_SC_IDENTITY_H
#define GRPCGUARD_SC_IDENTITY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <openssl/ssl.h>

/* "cluster.local/ns/<ns>/sa/<sa>": trust domain and names are bounded (DNS label sizes). */
#define SC_PRINCIPAL_MAX 320

struct sc_idgen {
	_Atomic unsigned refs;
	SSL_CTX *server; /* TLS 1.3, ALPN h2, client certificate required and verified */
	SSL_CTX *client; /* TLS 1.3, ALPN h2, our certificate, server verified */
	char spiffe_id[SC_PRINCIPAL_MAX + 16];
	char principal[SC_PRINCIPAL_MAX]; /* spiffe_id less "spiffe://" */
	char trust_domain[256];
	int64_t not_before, not_after; /* wall clock, seconds */
	uint64_t serial;	       /* generation number, 1.. */
};

struct sc_idgen *sc_idgen_ref(struct sc_idgen *g);
void sc_idgen_unref(struct sc_idgen *g); /* NULL ok; frees with the last reference */

/* Where the issuer is and how we prove who we are (flags --ca-address etc.). */
struct sc_identity_opts {
	const char *ca_address; /* "https://host[:port]", NULL: identity (and mTLS) off */
	const char *ca_cert;	/* PEM bundle that verifies the issuer's TLS certificate */
	const char *token_path; /* projected ServiceAccount token */
	uint64_t min_backoff_ms, max_backoff_ms;
};

/*
 * Start the background thread. notify(ctx) is called from that thread whenever a
 * certificate is installed or the current one expires (the caller re-evaluates /readyz:
 * use uv_async_send). Returns 0, -EINVAL when the address is not https://host[:port], or
 * -ENOMEM / -errno.
 */
int sc_identity_start(const struct sc_identity_opts *o, void (*notify)(void *), void *ctx);
/* Stop the thread and drop the current generation (idempotent). */
void sc_identity_stop(void);
/* Whether identity is configured at all (sc_identity_start succeeded). */
bool sc_identity_enabled(void);
/* The current generation (new reference) or NULL when none is held yet or it expired. */
struct sc_idgen *sc_identity_current(void);
/* Held and not expired at wall time now_s. */
bool sc_identity_ready(int64_t now_s);
/* For /policy: {"spiffeId", "notAfter" (RFC 3339), "serial", "issuer"} or {"enabled":false}.
 * New reference, NULL on ENOMEM. */
json_t *sc_identity_json(void);

/* ---- pure helpers (unit-tested) ---------------------------------------------------- */
/*
 * Parse a SPIFFE ID "spiffe://<td>/ns/<ns>/sa/<sa>" (len bytes, not NUL-terminated).
 * td: lowercase letters, digits, '.', '-', '_' (1..255); ns and sa: letters, digits, '.',
 * '-', '_' (1..253), nothing after sa. On success writes the principal "<td>/ns/<ns>/sa/<sa>"
 * into principal (cap bytes, NUL-terminated) and the trust domain into td (tdcap), and
 * returns 0; -1 otherwise (outputs untouched).
 */
int sc_spiffe_parse(const char *uri, size_t len, char *principal, size_t cap, char *td,
		    size_t tdcap);
/*
 * The SPIFFE ID of cert: its URI SAN, exactly one, parsed as above. 0 with the principal
 * and trust domain written, or -1 (no URI SAN, two, or one that is not a SPIFFE ID).
 */
int sc_cert_spiffe(X509 *cert, char *principal, size_t cap, char *td, size_t tdcap);
/* Split a principal "<td>/ns/<ns>/sa/<sa>" into borrowed pointers; 0 or -1. */
int sc_principal_split(const char *p, const char **ns, size_t *nslen, const char **sa,
		       size_t *salen);
/* When to renew a certificate valid [not_before, not_after): at half-life. */
int64_t sc_identity_renew_at(int64_t not_before, int64_t not_after);
/*
 * The wait before retry number attempt (0-based) after a failed fetch: min_ms doubled per
 * attempt, capped at max_ms, then jittered to [75%, 100%] with r01 in [0, 1). Pure.
 */
uint64_t sc_identity_backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms, double r01);

#endif
