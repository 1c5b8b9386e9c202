/*
 * Prometheus instant queries over libcurl; see prom.h. Only http and https, no redirects
 * (a Prometheus behind a path prefix is given with that prefix), no signals (the
 * deadline is curl's own timer), body capped while it arrives.
 */
#include "graph/prom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

struct sink {
	char *buf;
	size_t len, cap, max;
	int toobig;
};

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
	struct sink *s = userdata;
	size_t add = size * n;

	if (add > s->max - s->len) {
		s->toobig = 1;
		return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
	}
	if (s->len + add + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 16384;
		char *nb;
		while (cap < s->len + add + 1)
			cap *= 2;
		if (!(nb = realloc(s->buf, cap)))
			return 0;
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, add);
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

/* The first line of an error body, printable and short, for a message. */
static void excerpt(const char *b, size_t n, char *out, size_t outsz)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 1 < outsz && j < 120; i++) {
		unsigned char c = (unsigned char)b[i];
		if (c == '\n' || c == '\r')
			break;
		out[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	out[j] = '\0';
}

/* Why an HTTP answer other than 200 failed: Prometheus' "errorType: error" when the body
 * is its JSON error object, else the body's first line. */
static void http_error(long status, const char *b, size_t n, char *err, size_t errsz)
{
	json_t *root = b ? json_loadb(b, n, 0, NULL) : NULL;
	const char *et = json_string_value(json_object_get(root, "errorType"));
	const char *msg = json_string_value(json_object_get(root, "error"));
	char ex[128];

	if (msg) {
		excerpt(msg, strlen(msg), ex, sizeof(ex));
		snprintf(err, errsz, "HTTP %ld: %s: %s", status, et ? et : "error", ex);
	} else {
		excerpt(b ? b : "", b ? n : 0, ex, sizeof(ex));
		snprintf(err, errsz, "HTTP %ld%s%s", status, ex[0] ? ": " : "", ex);
	}
	json_decref(root);
}

int gr_prom_query(const struct gr_prom_opts *o, const char *promql, char **body, size_t *len,
		  char *err, size_t errsz)
{
	struct sink s = {.max = o->max_body_bytes};
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	char *url = NULL, *esc = NULL, *form = NULL;
	CURL *c = NULL;
	CURLcode cc;
	long status = 0;
	size_t n;
	int rc = GR_PROM_ENOMEM;

	*body = NULL;
	*len = 0;
	snprintf(err, errsz, "out of memory");
	n = strlen(o->base_url) + sizeof("/api/v1/query");
	if (!(c = curl_easy_init()) || !(url = malloc(n)) ||
	    !(esc = curl_easy_escape(c, promql, 0)) ||
	    !(form = malloc(strlen(esc) + sizeof("query="))))
		goto out;
	snprintf(url, n, "%s/api/v1/query", o->base_url);
	sprintf(form, "query=%s", esc);
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (!hdrs)
		goto out;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "grpcguard-graph");
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 o->timeout_ms < 5000 ? o->timeout_ms : 5000L);
	curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING,
			 ""); /* what curl can decode; cap applies after */
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body_bytes);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);

	cc = curl_easy_perform(c);
	if (s.toobig || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errsz, "the answer is larger than %zu bytes", o->max_body_bytes);
		rc = GR_PROM_ETOOBIG;
		goto out;
	}
	if (cc == CURLE_WRITE_ERROR) /* on_data could not grow the buffer */
		goto out;
	if (cc != CURLE_OK) {
		snprintf(err, errsz, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
		rc = GR_PROM_EUNREACHABLE;
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		http_error(status, s.buf, s.len, err, errsz);
		rc = GR_PROM_EHTTP;
		goto out;
	}
	if (!s.buf && !(s.buf = calloc(1, 1))) /* an empty 200: "" for the reader to reject */
		goto out;
	*body = s.buf;
	*len = s.len;
	s.buf = NULL;
	err[0] = '\0';
	rc = GR_PROM_OK;
out:
	free(s.buf);
	free(form);
	curl_free(esc);
	free(url);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return rc;
}
