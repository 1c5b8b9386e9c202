/*
 * POST /v1/certify: a workload's proxy sends a CSR with its projected ServiceAccount token
 * (audience grpcguard) and gets a short-lived certificate for the token's identity
 * (docs/identity.md). Order of checks, cheapest and least trusting first: per-source rate
 * limit (429), bearer token present (401), body {"csr": PEM} and the CSR itself (400),
 * TokenReview (503 when too many are in flight; 401 invalid/expired/wrong audience, 403
 * not a ServiceAccount, 503 API server unreachable), per-identity rate limit (429), signing (200).
 * Answers are JSON; errors {"error": "..."}. Counts grpcguard_certificates_issued_total and
 * grpcguard_certify_failures_total{reason}; logs one line per answer, never the token.
 * Thread-safe after wh_certify_new (the rate limiters lock; the CA is read-only).
 */
#ifndef GRPCGUARD_WH_CERTIFY_H
#define GRPCGUARD_WH_CERTIFY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/metrics.h"
#include "webhook/config.h"
#include "webhook/tokenreview.h"

#define WH_CERTIFY_PATH "/v1/certify"
#define WH_CERTIFY_MAX_BODY_BYTES (64 * 1024)
#define WH_TOKEN_AUDIENCE "grpcguard"
#define WH_MAX_TOKEN_BYTES (16 * 1024)

struct wh_certify;

/* Who the token belongs to: WH_TR_OK and *id, or another result with err (tests swap it). */
typedef enum wh_tr_result (*wh_token_reviewer)(void *arg, const char *token, struct wh_identity *id,
					       char *err, size_t errlen);

/*
 * New issuer from the identity settings of cfg (borrowed, must outlive it): loads the CA
 * (NULL with where/what/fix in err when it cannot) and registers its metrics in m.
 * TokenReview goes to the API server as configured.
 */
struct wh_certify *wh_certify_new(const struct wh_config *cfg, struct metrics_registry *m,
				  char *err, size_t errlen);
void wh_certify_free(struct wh_certify *c); /* NULL ok */

/*
 * At most n TokenReview calls at once (each blocks a server thread for up to
 * identity.tokenReview.timeoutMs); more get 503 "busy" at once. 0 (the default): no cap.
 * The server sets its thread count minus one, at least one.
 */
void wh_certify_set_max_reviews(struct wh_certify *c, unsigned n);

/* Replace the TokenReview call (unit tests, fuzz). */
void wh_certify_set_reviewer(struct wh_certify *c, wh_token_reviewer fn, void *arg);

struct wh_certify_request {
	const char *authorization; /* the Authorization header or NULL */
	const char *peer;	   /* source IP as text ("" unknown) */
	const char *body;	   /* NUL-terminated, len bytes */
	size_t len;
	uint64_t now_mono_ms;
	time_t now; /* wall clock for certificate times */
};

/*
 * Judge one request. Returns the HTTP status (200, 400, 401, 403, 429, 500, 503) and
 * *resp, a new JSON string (NULL only on out of memory: answer 500 then).
 */
int wh_certify_handle(struct wh_certify *c, const struct wh_certify_request *rq, char **resp);

/*
 * The request body: {"csr": "<PEM>"} and nothing else (no other or duplicate key). Returns
 * the PEM, borrowed from *root (new, json_decref it, also on failure), or NULL with the
 * reason in err.
 */
const char *wh_certify_body_csr(const char *body, size_t len, json_t **root, char *err,
				size_t errlen);

/* Count a refusal the server made before the body reached us (413). */
void wh_certify_count_failure(struct wh_certify *c, const char *reason);

#endif
