/*
 * TokenReview (see tokenreview.h): the request body, the answer's interpretation and one
 * blocking libcurl call. The answer is read into a buffer capped at
 * WH_TR_MAX_RESPONSE_BYTES; the webhook's own token is read per call because the kubelet
 * rotates projected tokens.
 */
#include "webhook/tokenreview.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/fileio.h"

#define SA_PREFIX "system:serviceaccount:"
#define MAX_OWN_TOKEN_BYTES (64 * 1024)

const char *wh_tr_result_name(enum wh_tr_result r)
{
	switch (r) {
	case WH_TR_OK:
		return "ok";
	case WH_TR_UNAUTHENTICATED:
		return "invalid_token";
	case WH_TR_AUDIENCE:
		return "wrong_audience";
	case WH_TR_NOT_SA:
		return "not_service_account";
	case WH_TR_BAD_RESPONSE:
		return "review_bad_response";
	case WH_TR_UNAVAILABLE:
		return "review_unavailable";
	case WH_TR_NOMEM:
		break;
	}
	return "internal";
}

char *wh_tokenreview_body(const char *token, const char *audience)
{
	json_t *req =
	    json_pack("{s:s, s:s, s:{s:s, s:[s]}}", "apiVersion", "authentication.k8s.io/v1",
		      "kind", "TokenReview", "spec", "token", token, "audiences", audience);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;

	json_decref(req);
	return text;
}

/* Lowercase RFC 1123 label (namespace): 1..63 of [a-z0-9-], no '-' at either end. */
static bool dns_label(const char *s, size_t n)
{
	if (n == 0 || n > WH_TR_NS_MAX || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
			return false;
	}
	return true;
}

/* Lowercase RFC 1123 subdomain (ServiceAccount name): labels joined by '.', 1..253. */
static bool dns_subdomain(const char *s, size_t n)
{
	size_t start = 0;

	if (n == 0 || n > WH_TR_SA_MAX)
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!dns_label(s + start, i - start))
				return false;
			start = i + 1;
		}
	}
	return true;
}

enum wh_tr_result wh_tokenreview_parse(const char *body, size_t len, const char *audience,
				       struct wh_identity *id, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	json_t *status, *auds, *a;
	const char *user, *ns, *colon, *tr_err;
	bool aud_ok = false;
	enum wh_tr_result r = WH_TR_BAD_RESPONSE;
	size_t i;

	if (!root || !json_is_object(root)) {
		snprintf(err, errlen, "TokenReview answer is not a JSON object");
		goto out;
	}
	status = json_object_get(root, "status");
	if (!json_is_object(status)) {
		snprintf(err, errlen, "TokenReview answer has no status object");
		goto out;
	}
	tr_err = json_string_value(json_object_get(status, "error"));
	if (!json_is_true(json_object_get(status, "authenticated"))) {
		snprintf(err, errlen, "token not authenticated%s%.200s%s",
			 tr_err && *tr_err ? " (" : "", tr_err ? tr_err : "",
			 tr_err && *tr_err ? ")" : "");
		r = WH_TR_UNAUTHENTICATED;
		goto out;
	}
	auds = json_object_get(status, "audiences");
	json_array_foreach(auds, i, a)
	{
		if (json_is_string(a) && strcmp(json_string_value(a), audience) == 0)
			aud_ok = true;
	}
	if (!aud_ok) {
		snprintf(err, errlen,
			 "token is not for audience \"%s\" (project it with audience: %s)",
			 audience, audience);
		r = WH_TR_AUDIENCE;
		goto out;
	}
	user = json_string_value(json_object_get(json_object_get(status, "user"), "username"));
	if (!user) {
		snprintf(err, errlen, "TokenReview answer has no status.user.username");
		goto out;
	}
	if (strncmp(user, SA_PREFIX, sizeof(SA_PREFIX) - 1) != 0) {
		snprintf(err, errlen,
			 "token belongs to \"%.100s\", not to a ServiceAccount "
			 "(system:serviceaccount:<namespace>:<name>)",
			 user);
		r = WH_TR_NOT_SA;
		goto out;
	}
	ns = user + sizeof(SA_PREFIX) - 1;
	colon = strchr(ns, ':');
	if (!colon || !dns_label(ns, (size_t)(colon - ns)) ||
	    !dns_subdomain(colon + 1, strlen(colon + 1))) {
		snprintf(err, errlen,
			 "token user \"%.100s\" is not system:serviceaccount:<namespace>:<name> "
			 "with valid names",
			 user);
		r = WH_TR_NOT_SA;
		goto out;
	}
	memcpy(id->ns, ns, (size_t)(colon - ns));
	id->ns[colon - ns] = '\0';
	snprintf(id->sa, sizeof(id->sa), "%s", colon + 1);
	err[0] = '\0';
	r = WH_TR_OK;
out:
	json_decref(root);
	return r;
}

int wh_spiffe_id(const char *trust_domain, const struct wh_identity *id, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "spiffe://%s/ns/%s/sa/%s", trust_domain, id->ns, id->sa);

	if (n < 0 || (size_t)n >= outlen) {
		if (outlen)
			out[0] = '\0';
		return -1;
	}
	return n;
}

/* ---- the call ------------------------------------------------------------------------ */

struct sink {
	char *buf;
	size_t len;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;

	if (s->len + n > WH_TR_MAX_RESPONSE_BYTES) {
		s->too_big = true;
		return 0; /* aborts the transfer */
	}
	char *nb = realloc(s->buf, s->len + n + 1);
	if (!nb)
		return 0;
	memcpy(nb + s->len, p, n);
	s->buf = nb;
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

/* The in-cluster tokenreviews URL, new string, or NULL (err says why). */
static char *incluster_url(char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *url = NULL;

	if (!host || !*host || !port || !*port) {
		snprintf(err, errlen,
			 "no in-cluster config: KUBERNETES_SERVICE_HOST/PORT are not set "
			 "(set identity.tokenReviewURL outside a cluster)");
		return NULL;
	}
	if (asprintf(&url, "https://%s%s%s:%s/apis/authentication.k8s.io/v1/tokenreviews",
		     strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port) < 0)
		url = NULL;
	return url;
}

enum wh_tr_result wh_tokenreview_call(const struct wh_tokenreview_client *c, const char *token,
				      const char *audience, struct wh_identity *id, char *err,
				      size_t errlen)
{
	CURL *h = NULL;
	struct curl_slist *hdrs = NULL;
	struct sink sink = {0};
	char *own = NULL, *auth = NULL, *body = NULL, *url = NULL, ferr[256];
	char curl_err[CURL_ERROR_SIZE] = "";
	size_t own_len = 0, auth_len = 0;
	long code = 0;
	CURLcode cc;
	enum wh_tr_result r = WH_TR_UNAVAILABLE;

	url = c->url ? strdup(c->url) : incluster_url(err, errlen);
	if (!url)
		goto out;
	if (fileio_read_bounded(c->token_file, MAX_OWN_TOKEN_BYTES, &own, &own_len, ferr,
				sizeof(ferr)) != 0) {
		snprintf(err, errlen, "the webhook's own ServiceAccount token: %s", ferr);
		goto out;
	}
	while (own_len &&
	       (own[own_len - 1] == '\n' || own[own_len - 1] == '\r' || own[own_len - 1] == ' '))
		own[--own_len] = '\0';
	if (asprintf(&auth, "Authorization: Bearer %s", own) < 0) {
		auth = NULL;
		r = WH_TR_NOMEM;
		goto out;
	}
	auth_len = strlen(auth);
	body = wh_tokenreview_body(token, audience);
	h = curl_easy_init();
	hdrs = curl_slist_append(NULL, auth);
	if (hdrs)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (hdrs)
		hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (!body || !h || !hdrs) {
		r = WH_TR_NOMEM;
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->timeout_ms < 2000 ? c->timeout_ms : 2000);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "TokenReview request to %s failed: %s", url,
			 sink.too_big  ? "answer larger than 64 KiB"
			 : curl_err[0] ? curl_err
				       : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		snprintf(err, errlen, "TokenReview request to %s answered HTTP %ld%s", url, code,
			 code == 401 || code == 403
			     ? " (the webhook's ServiceAccount needs \"create tokenreviews\": "
			       "see the chart's ClusterRole)"
			     : "");
		goto out;
	}
	r = wh_tokenreview_parse(sink.buf ? sink.buf : "", sink.len, audience, id, err, errlen);
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	if (own)
		explicit_bzero(own, own_len);
	if (auth)
		explicit_bzero(auth, auth_len);
	if (body)
		explicit_bzero(body, strlen(body));
	free(own);
	free(auth);
	free(body);
	free(url);
	free(sink.buf);
	return r;
}
