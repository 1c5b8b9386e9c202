/*
 * A Prometheus HTTP API client for one thing: an instant query (POST /api/v1/query),
 * over libcurl, with a cap on the response body and a deadline on the whole exchange.
 *
 * It fetches bytes and tells transport failures (nothing answered) from answers that are
 * errors (an HTTP status other than 200, with Prometheus' own error message when the body
 * carries one). It does not read a successful answer: graph/model.c does. No logging.
 * Call curl_global_init() once before using it.
 */
#ifndef GRPCGUARD_GR_PROM_H
#define GRPCGUARD_GR_PROM_H

#include <stddef.h>

#define GR_PROM_MAX_BODY_BYTES (16u << 20) /* default response cap: 16 MiB */

struct gr_prom_opts {
	const char *base_url;  /* "http://host:9090" or with a path prefix; no trailing '/' */
	long timeout_ms;       /* the whole request; connecting gets at most 5 s of it */
	size_t max_body_bytes; /* responses larger than this fail with GR_PROM_ETOOBIG */
};

enum gr_prom_err {
	GR_PROM_OK = 0,
	GR_PROM_EUNREACHABLE = -1, /* could not connect, resolve, or no answer in time */
	GR_PROM_EHTTP = -2,	   /* an answer, but not HTTP 200 */
	GR_PROM_ETOOBIG = -3,	   /* the answer was larger than max_body_bytes */
	GR_PROM_ENOMEM = -4,
};

/*
 * Run promql as an instant query "now". On GR_PROM_OK, *body is a new malloc'd buffer of
 * *len bytes (NUL-terminated too) holding the HTTP 200 answer: the caller frees it.
 * Otherwise *body is NULL and err (errsz bytes) holds one line saying what failed, e.g.
 * "Connection refused" or "HTTP 400: bad_data: 1:5: parse error: ...".
 */
int gr_prom_query(const struct gr_prom_opts *o, const char *promql, char **body, size_t *len,
		  char *err, size_t errsz);

#endif
