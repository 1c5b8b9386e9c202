/*
 * The certificate endpoint's logic (see certify.h): everything between "a POST to
 * /v1/certify arrived whole" and "this status with this JSON". The HTTP plumbing (body
 * cap, TLS, threads) stays in server.c.
 */
#include "webhook/certify.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <jansson.h>

#include "common/log.h"
#include "webhook/ca.h"
#include "webhook/ratelimit.h"

#define RL_SLOTS 4096
#define LOGS_PER_SEC 10

static const char *const reasons[] = {
    "rate_limited_source", "missing_token",
    "bad_request",	   "bad_csr",
    "invalid_token",	   "wrong_audience",
    "not_service_account", "review_unavailable",
    "review_bad_response", "rate_limited_identity",
    "ca_expired",	   "internal",
    "body_too_large",	   "busy",
};
#define NREASONS (sizeof(reasons) / sizeof(reasons[0]))

struct wh_certify {
	const struct wh_config *cfg;
	struct wh_ca *ca;
	struct wh_ratelimit *rl_source, *rl_identity;
	struct wh_tokenreview_client tr;
	wh_token_reviewer review;
	void *review_arg;
	struct metrics_series *issued;
	struct metrics_series *failures[NREASONS];
	/* TokenReview calls block a server thread: at most this many at once (0: no cap). */
	unsigned max_reviews;
	atomic_uint reviews;
	atomic_uint_fast64_t log_window_s;
	atomic_uint log_count;
};

static enum wh_tr_result api_review(void *arg, const char *token, struct wh_identity *id, char *err,
				    size_t errlen)
{
	const struct wh_certify *c = arg;
	return wh_tokenreview_call(&c->tr, token, WH_TOKEN_AUDIENCE, id, err, errlen);
}

void wh_certify_free(struct wh_certify *c)
{
	if (!c)
		return;
	wh_ca_free(c->ca);
	wh_ratelimit_free(c->rl_source);
	wh_ratelimit_free(c->rl_identity);
	free(c);
}

struct wh_certify *wh_certify_new(const struct wh_config *cfg, struct metrics_registry *m,
				  char *err, size_t errlen)
{
	static const char *const reason_label[] = {"reason"};
	struct wh_certify *c = calloc(1, sizeof(*c));
	struct metrics_family *fi, *ff;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->cfg = cfg;
	c->ca = wh_ca_load(cfg->ca_cert_file, cfg->ca_key_file, cfg->ca_bundle_file, err, errlen);
	if (!c->ca)
		goto fail;
	c->rl_source = wh_ratelimit_new(cfg->rl_source_per_minute, cfg->rl_source_burst, RL_SLOTS);
	c->rl_identity =
	    wh_ratelimit_new(cfg->rl_identity_per_minute, cfg->rl_identity_burst, RL_SLOTS);
	fi = metrics_counter(m, "grpcguard_certificates_issued_total",
			     "Workload certificates signed by POST /v1/certify.", 0, NULL);
	ff = metrics_counter(m, "grpcguard_certify_failures_total",
			     "POST /v1/certify requests refused, by reason.", 1, reason_label);
	if (!c->rl_source || !c->rl_identity || !fi || !ff) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	c->issued = metrics_series(fi, NULL);
	for (size_t i = 0; i < NREASONS; i++) {
		const char *lv[1] = {reasons[i]};
		c->failures[i] = metrics_series(ff, lv);
	}
	c->tr.url = cfg->token_review_url;
	c->tr.ca_file = cfg->token_review_ca_file;
	c->tr.token_file = cfg->token_review_token_file;
	c->tr.timeout_ms = (long)cfg->token_review_timeout_ms;
	c->review = api_review;
	c->review_arg = c;
	atomic_init(&c->log_window_s, 0);
	atomic_init(&c->log_count, 0);
	atomic_init(&c->reviews, 0);
	return c;
fail:
	wh_certify_free(c);
	return NULL;
}

void wh_certify_set_reviewer(struct wh_certify *c, wh_token_reviewer fn, void *arg)
{
	c->review = fn;
	c->review_arg = arg;
}

void wh_certify_set_max_reviews(struct wh_certify *c, unsigned n)
{
	c->max_reviews = n;
}

void wh_certify_count_failure(struct wh_certify *c, const char *reason)
{
	for (size_t i = 0; c && i < NREASONS; i++) {
		if (strcmp(reasons[i], reason) == 0)
			metrics_inc(c->failures[i]);
	}
}

static bool log_budget(struct wh_certify *c, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000;
	uint64_t w = atomic_load(&c->log_window_s);

	if (w != now_s && atomic_compare_exchange_strong(&c->log_window_s, &w, now_s))
		atomic_store(&c->log_count, 0);
	return atomic_fetch_add(&c->log_count, 1) < LOGS_PER_SEC;
}

/* A refusal: count, log (bounded), and the JSON error body. Returns status. */
static int refuse(struct wh_certify *c, const struct wh_certify_request *rq, int status,
		  const char *reason, const struct wh_identity *id, const char *msg, char **resp)
{
	json_t *o;

	wh_certify_count_failure(c, reason);
	if (log_budget(c, rq->now_mono_ms))
		log_warn("certify_refused", msg, "{s:s, s:i, s:s, s:s*, s:s*}", "reason", reason,
			 "status", status, "peer", rq->peer ? rq->peer : "", "namespace",
			 id ? id->ns : NULL, "service_account", id ? id->sa : NULL);
	o = json_pack("{s:s}", "error", msg);
	*resp = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return status;
}

/*
 * The token of "Bearer <token>" into a new string: base64url/JWT characters only, at most
 * WH_MAX_TOKEN_BYTES. NULL when absent or malformed.
 */
static char *bearer_token(const char *h)
{
	static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789-._~+/=";
	size_t n;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	n = strspn(h, chars);
	if (n == 0 || n > WH_MAX_TOKEN_BYTES || h[n] != '\0')
		return NULL;
	return strndup(h, n);
}

const char *wh_certify_body_csr(const char *body, size_t len, json_t **root, char *err,
				size_t errlen)
{
	json_error_t je;
	json_t *v;

	*root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!*root || !json_is_object(*root)) {
		snprintf(err, errlen, "body must be a JSON object {\"csr\": \"<PEM>\"}%s%.80s",
			 *root ? "" : ": ", *root ? "" : je.text);
		return NULL;
	}
	if (json_object_size(*root) != 1 || !(v = json_object_get(*root, "csr")) ||
	    !json_is_string(v)) {
		snprintf(err, errlen, "body must hold exactly one key, \"csr\", a PEM string");
		return NULL;
	}
	return json_string_value(v);
}

static void rfc3339(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/*
 * The per-source bucket's key: the IPv4 address, or the /64 of an IPv6 one (a host
 * usually owns a whole /64 and could otherwise take a fresh bucket per address).
 */
static void source_key(const char *peer, char *out, size_t outlen)
{
	struct in6_addr a6;

	if (peer && strchr(peer, ':') && inet_pton(AF_INET6, peer, &a6) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&a6)) {
		char text[INET6_ADDRSTRLEN];
		memset(a6.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a6, text, sizeof(text));
		snprintf(out, outlen, "%s/64", text);
		return;
	}
	snprintf(out, outlen, "%s", peer ? peer : "");
}

int wh_certify_handle(struct wh_certify *c, const struct wh_certify_request *rq, char **resp)
{
	char err[512] = "", spiffe[512], exp[32], src[INET6_ADDRSTRLEN + 8];
	char *token = NULL, *chain = NULL;
	json_t *root = NULL, *o = NULL;
	const char *csr;
	struct wh_identity id;
	enum wh_tr_result tr;
	time_t not_after = 0;
	int status, rc;

	*resp = NULL;
	memset(&id, 0, sizeof(id));
	source_key(rq->peer, src, sizeof(src));
	if (!wh_ratelimit_take(c->rl_source, src, rq->now_mono_ms)) {
		status =
		    refuse(c, rq, 429, "rate_limited_source", NULL,
			   "too many certificate requests from this address; retry later", resp);
		goto out;
	}
	token = bearer_token(rq->authorization);
	if (!token) {
		status = refuse(c, rq, 401, "missing_token", NULL,
				rq->authorization
				    ? "Authorization is not \"Bearer <token>\" with a JWT"
				    : "no Authorization: Bearer <token> (the pod's projected "
				      "ServiceAccount token, audience grpcguard)",
				resp);
		goto out;
	}
	csr = wh_certify_body_csr(rq->body, rq->len, &root, err, sizeof(err));
	if (!csr) {
		status = refuse(c, rq, 400, "bad_request", NULL, err, resp);
		goto out;
	}
	/* The CSR is checked again when signing; checking first spares the API server. */
	rc = wh_ca_check_csr(csr, strlen(csr), err, sizeof(err));
	if (rc) {
		status = refuse(c, rq, rc == -EINVAL ? 400 : 500,
				rc == -EINVAL ? "bad_csr" : "internal", NULL, err, resp);
		goto out;
	}
	/*
	 * Admission shares the server's threads: TokenReview calls (up to timeoutMs each) may
	 * hold only some of them, so a flood of well-formed requests cannot stall pod creation.
	 */
	if (atomic_fetch_add(&c->reviews, 1) >= c->max_reviews && c->max_reviews) {
		atomic_fetch_sub(&c->reviews, 1);
		status = refuse(c, rq, 503, "busy", NULL,
				"the issuer is busy with other token reviews; retry shortly", resp);
		goto out;
	}
	tr = c->review(c->review_arg, token, &id, err, sizeof(err));
	atomic_fetch_sub(&c->reviews, 1);
	switch (tr) {
	case WH_TR_OK:
		break;
	case WH_TR_UNAUTHENTICATED:
	case WH_TR_AUDIENCE:
		status = refuse(c, rq, 401, wh_tr_result_name(tr), NULL, err, resp);
		goto out;
	case WH_TR_NOT_SA:
		status = refuse(c, rq, 403, wh_tr_result_name(tr), NULL, err, resp);
		goto out;
	case WH_TR_BAD_RESPONSE:
	case WH_TR_UNAVAILABLE:
		status = refuse(c, rq, 503, wh_tr_result_name(tr), NULL, err, resp);
		goto out;
	default:
		status = refuse(c, rq, 500, "internal", NULL, "out of memory", resp);
		goto out;
	}
	if (wh_spiffe_id(c->cfg->trust_domain, &id, spiffe, sizeof(spiffe)) < 0) {
		status = refuse(c, rq, 500, "internal", &id, "SPIFFE ID too long", resp);
		goto out;
	}
	if (!wh_ratelimit_take(c->rl_identity, spiffe, rq->now_mono_ms)) {
		status =
		    refuse(c, rq, 429, "rate_limited_identity", &id,
			   "too many certificate requests for this identity; retry later", resp);
		goto out;
	}
	rc = wh_ca_sign(c->ca, csr, strlen(csr), spiffe, c->cfg->cert_lifetime_s, rq->now, &chain,
			&not_after, err, sizeof(err));
	if (rc) {
		status = refuse(c, rq,
				rc == -EINVAL	? 400
				: rc == -ESTALE ? 503
						: 500,
				rc == -EINVAL	? "bad_csr"
				: rc == -ESTALE ? "ca_expired"
						: "internal",
				&id, err, resp);
		goto out;
	}
	rfc3339(not_after, exp, sizeof(exp));
	o = json_pack("{s:s, s:s, s:s}", "certificateChain", chain, "caBundle", wh_ca_bundle(c->ca),
		      "expiresAt", exp);
	*resp = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (!*resp) {
		status = 500;
		goto out;
	}
	metrics_inc(c->issued);
	log_info("certificate_issued", "workload certificate signed", "{s:s, s:s, s:s, s:s, s:s}",
		 "spiffe_id", spiffe, "namespace", id.ns, "service_account", id.sa, "expires_at",
		 exp, "peer", rq->peer ? rq->peer : "");
	status = 200;
out:
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	json_decref(root);
	json_decref(o);
	free(chain);
	return status;
}
