/*
 * Request authentication (issue 10): the sidecar's JWT step, built from a policy's
 * `requestAuthentication` entries.
 *
 * An sc_authn holds, for one policy generation, the parsed key sets (JWKS) of every entry.
 * It reloads a `jwksFile` when the file changes (checked at most once per second, by
 * stat, on the calling thread). One instance per event loop: not thread-safe.
 *
 * What it does not do: decide authorization (the policy library does that with the
 * principal and claims this step yields) or touch the network.
 */
#ifndef GRPCGUARD_SC_AUTHN_H
#define GRPCGUARD_SC_AUTHN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "policy/policy.h"

struct sc_authn;

/*
 * Build the authentication state for policy p (borrowed; sc_authn takes its own ref).
 * Returns 0 and a new object (also when p has no requestAuthentication entries: then every
 * check yields SC_AUTHN_NONE). A JWKS that cannot be read or parsed is not fatal: it is
 * reported in *err_msg (new malloc'd string, or NULL when all keys loaded) and tokens that
 * need it fail verification. Negative (-ENOMEM) only on allocation failure.
 */
int sc_authn_new(struct policy *p, struct sc_authn **out, char **err_msg);
void sc_authn_free(struct sc_authn *a); /* NULL ok */
/* How many entries have no usable key set (their issuer's tokens all fail). */
size_t sc_authn_unusable(const struct sc_authn *a);

enum sc_authn_verdict {
	SC_AUTHN_NONE = 0, /* no token in any configured header: no principal, not rejected */
	SC_AUTHN_OK,	   /* a token verified: principal and claims are set */
	SC_AUTHN_FAIL,	   /* a token was present and failed: reply UNAUTHENTICATED */
};

struct sc_authn_result {
	enum sc_authn_verdict verdict;
	char *principal;    /* new, "<iss>/<sub>", when OK */
	json_t *claims;	    /* new reference to the payload object, when OK */
	const char *reason; /* static text for logs when FAIL ("expired", "bad signature"...) */
	/* Lowercase name of a header that must not be forwarded to the app
	 * (forwardOriginalToken: false), borrowed from the policy, or NULL. */
	const char *strip_header;
};

/*
 * Examine one request's headers (lowercase names). now_unix_s is wall-clock seconds (JWT
 * exp/nbf are wall-clock by definition); now_mono_ms paces the JWKS file re-stat.
 * Fills *out (call sc_authn_result_cleanup after). Never fails otherwise.
 */
void sc_authn_check(struct sc_authn *a, const struct policy_header *hdrs, size_t nhdrs,
		    int64_t now_unix_s, uint64_t now_mono_ms, struct sc_authn_result *out);
void sc_authn_result_cleanup(struct sc_authn_result *r);

/*
 * Verified tokens are cached per sc_authn (64 slots, keyed by the exact token bytes, for
 * the key set they were verified with), so a client that sends the same token on every
 * RPC pays for one signature check; exp and nbf are checked on every use. On by default;
 * off empties the cache (benchmarks measure the uncached path with it).
 */
void sc_authn_set_token_cache(struct sc_authn *a, bool on);

#endif
