/*
 * common/admin_http and common/admin_routes without sockets: requests fed in pieces,
 * pipelined, too large, malformed, with bodies; the routes' answers as bytes.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin_http.h"
#include "common/admin_routes.h"
#include "common/metrics.h"
#include "tests/unit/runner.h"

/* Feed all of s in chunks of step bytes; returns the first non-MORE event (or MORE). */
static enum admin_http_event feed_steps(struct admin_http *h, const char *s, size_t len,
					size_t step, size_t *total_used)
{
	size_t off = 0;

	*total_used = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used = 0;
		enum admin_http_event ev = admin_http_feed(h, s + off, n, &used);
		ck_assert_uint_le(used, n);
		off += used;
		*total_used = off;
		if (ev != ADMIN_HTTP_MORE)
			return ev;
		ck_assert_uint_eq(used, n);
	}
	return ADMIN_HTTP_MORE;
}

START_TEST(split_anywhere)
{
	static const char req[] = "GET /metrics?name=x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n";
	const size_t len = sizeof(req) - 1;

	/* Every chunk size, down to one byte per read, gives the same request. */
	for (size_t step = 1; step <= len; step++) {
		struct admin_http h;
		size_t used;

		admin_http_init(&h);
		ck_assert_int_eq(feed_steps(&h, req, len, step, &used), ADMIN_HTTP_REQUEST);
		ck_assert_uint_eq(used, len);
		ck_assert_str_eq(h.path, "/metrics");
		ck_assert(h.get_or_head && !h.head && h.keep_alive && !h.http10);
	}
}
END_TEST

START_TEST(pipelined)
{
	static const char reqs[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
				   "HEAD /readyz HTTP/1.1\r\nHost: a\r\n\r\n"
				   "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	const char *want[] = {"/healthz", "/readyz", "/x"};
	struct admin_http h;
	size_t off = 0, len = sizeof(reqs) - 1;

	admin_http_init(&h);
	for (int i = 0; i < 3; i++) {
		size_t used = 0;
		ck_assert_int_eq(admin_http_feed(&h, reqs + off, len - off, &used),
				 ADMIN_HTTP_REQUEST);
		off += used;
		ck_assert_str_eq(h.path, want[i]);
		ck_assert_int_eq(h.head, i == 1);
		ck_assert_int_eq(h.keep_alive, i != 2);
		/* Without admin_http_next() the same request stays returned, nothing is eaten. */
		ck_assert_int_eq(admin_http_feed(&h, reqs + off, len - off, &used),
				 ADMIN_HTTP_REQUEST);
		ck_assert_uint_eq(used, 0);
		admin_http_next(&h);
	}
	ck_assert_uint_eq(off, len);
}
END_TEST

START_TEST(http10)
{
	struct admin_http h;
	size_t used;
	const char *r1 = "GET /healthz HTTP/1.0\r\n\r\n";
	const char *r2 = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";

	admin_http_init(&h);
	ck_assert_int_eq(admin_http_feed(&h, r1, strlen(r1), &used), ADMIN_HTTP_REQUEST);
	ck_assert(h.http10 && !h.keep_alive);
	admin_http_init(&h);
	ck_assert_int_eq(admin_http_feed(&h, r2, strlen(r2), &used), ADMIN_HTTP_REQUEST);
	ck_assert(h.http10 && h.keep_alive);
}
END_TEST

/* A body is never read: the request ends at its headers and the connection must close. */
START_TEST(body_not_read)
{
	const char *cases[] = {
	    "GET /healthz HTTP/1.1\r\nContent-Length: 26\r\n\r\nGET /policy HTTP/1.1\r\n\r\n",
	    "POST /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	};

	for (size_t i = 0; i < UT_COUNT(cases); i++) {
		struct admin_http h;
		size_t used;

		admin_http_init(&h);
		ck_assert_int_eq(admin_http_feed(&h, cases[i], strlen(cases[i]), &used),
				 ADMIN_HTTP_REQUEST);
		ck_assert_ptr_nonnull(strstr(cases[i], "\r\n\r\n"));
		ck_assert_uint_eq(used, (size_t)(strstr(cases[i], "\r\n\r\n") + 4 - cases[i]));
		ck_assert(!h.keep_alive);
		ck_assert_int_eq(h.get_or_head, i == 0);
	}
}
END_TEST

START_TEST(bad_input)
{
	static const struct {
		const char *req;
		unsigned status;
	} cases[] = {
	    {"\x01\x02 garbage\r\n\r\n", 400},
	    {"GET /healthz XTTP/1.1\r\n\r\n", 400},
	    {"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", 400},
	    {"GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
	    {"GET /healthz HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
	    {"GET /a b HTTP/1.1\r\n\r\n", 400},
	};

	for (size_t i = 0; i < UT_COUNT(cases); i++) {
		struct admin_http h;
		size_t used;

		admin_http_init(&h);
		ck_assert_msg(admin_http_feed(&h, cases[i].req, strlen(cases[i].req), &used) ==
				  ADMIN_HTTP_BAD,
			      "case %zu", i);
		ck_assert_uint_eq(h.bad_status, cases[i].status);
		/* Stays failed. */
		ck_assert_int_eq(admin_http_feed(&h, "GET / HTTP/1.1\r\n\r\n", 18, &used),
				 ADMIN_HTTP_BAD);
		ck_assert_uint_eq(used, 0);
	}
}
END_TEST

START_TEST(limits)
{
	struct admin_http h;
	char *big = malloc(3 * ADMIN_HTTP_MAX_HEADER_BYTES);
	size_t used, n;
	enum admin_http_event ev;

	ck_assert_ptr_nonnull(big);
	/* Headers just under the limit are fine, over it 431, fed in 100-byte reads. */
	for (int over = 0; over < 2; over++) {
		size_t fill = ADMIN_HTTP_MAX_HEADER_BYTES - 64 + (over ? 128 : 0);
		n = (size_t)snprintf(big, 64, "GET /healthz HTTP/1.1\r\nX: ");
		memset(big + n, 'a', fill - n);
		n = fill;
		memcpy(big + n, "\r\n\r\n", 4);
		n += 4;
		admin_http_init(&h);
		ev = feed_steps(&h, big, n, 100, &used);
		if (over) {
			ck_assert_int_eq(ev, ADMIN_HTTP_BAD);
			ck_assert_uint_eq(h.bad_status, 431);
			ck_assert_uint_le(used, ADMIN_HTTP_MAX_HEADER_BYTES + 100);
		} else {
			ck_assert_int_eq(ev, ADMIN_HTTP_REQUEST);
		}
	}
	/* An endless header line is cut off at the limit, not buffered. */
	memset(big, 'a', 3 * ADMIN_HTTP_MAX_HEADER_BYTES);
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	admin_http_init(&h);
	ck_assert_int_eq(feed_steps(&h, big, 3 * ADMIN_HTTP_MAX_HEADER_BYTES, 512, &used),
			 ADMIN_HTTP_BAD);
	ck_assert_uint_eq(h.bad_status, 431);
	/* A target longer than ADMIN_HTTP_MAX_URL: 414. */
	n = (size_t)snprintf(big, 16, "GET /");
	memset(big + n, 'p', ADMIN_HTTP_MAX_URL);
	n += ADMIN_HTTP_MAX_URL;
	memcpy(big + n, " HTTP/1.1\r\n\r\n", 13);
	n += 13;
	admin_http_init(&h);
	ck_assert_int_eq(feed_steps(&h, big, n, 7, &used), ADMIN_HTTP_BAD);
	ck_assert_uint_eq(h.bad_status, 414);
	free(big);
}
END_TEST

START_TEST(response_bytes)
{
	char *out = NULL;
	size_t len = 0;

	ck_assert_int_eq(
	    admin_http_response(200, "text/plain", "ok\n", 3, false, true, false, &out, &len), 0);
	ck_assert_str_eq(out, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
			      "3\r\nCache-Control: no-store\r\nX-Content-Type-Options: "
			      "nosniff\r\n\r\nok\n");
	ck_assert_uint_eq(len, strlen(out));
	free(out);
	/* HEAD: the length of the body it would have, no body; 405 says what is allowed. */
	ck_assert_int_eq(
	    admin_http_response(405, "text/plain", "no\n", 3, true, false, false, &out, &len), 0);
	ck_assert_ptr_nonnull(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Content-Length: 3\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Allow: GET, HEAD\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "Connection: close\r\n"));
	ck_assert_str_eq(out + len - 4, "\r\n\r\n");
	free(out);
	ck_assert_int_eq(admin_http_response(200, "t", "", 0, false, true, true, &out, &len), 0);
	ck_assert_ptr_nonnull(strstr(out, "Connection: keep-alive\r\n"));
	free(out);
	out = NULL;
	ck_assert_int_eq(admin_http_response(42, "t", "", 0, false, true, false, &out, &len),
			 -EINVAL);
	ck_assert_ptr_null(out);
}
END_TEST

static int route_echo(void *ctx, char **body, size_t *len, const char **ctype)
{
	*body = strdup((const char *)ctx);
	*len = strlen(*body);
	*ctype = "application/json";
	return 200;
}

/* Parse req and answer it with rt; returns the response (caller frees). */
static char *answer(struct admin_routes *rt, const char *req, bool loopback)
{
	struct admin_http h;
	size_t used, len;
	char *out = NULL;

	admin_http_init(&h);
	ck_assert_int_ne(admin_http_feed(&h, req, strlen(req), &used), ADMIN_HTTP_MORE);
	ck_assert_int_eq(admin_routes_answer(rt, &h, loopback, &out, &len), 0);
	return out;
}

START_TEST(routes_answer)
{
	struct metrics_registry *reg = metrics_registry_new();
	struct admin_routes *rt = NULL;
	const char *labels[] = {"x"}, *vals[] = {"y"};
	char *r;

	ck_assert_ptr_nonnull(reg);
	metrics_inc(
	    metrics_series(metrics_counter(reg, "grpcguard_t_total", "T.", 1, labels), vals));
	ck_assert_int_eq(admin_routes_new(reg, &rt), 0);
	ck_assert_int_eq(admin_routes_add(rt, "/policy", route_echo, "{}", true), 0);
	ck_assert_int_eq(admin_routes_add(rt, "/readyz", route_echo, "{}", false), -EINVAL);

	r = answer(rt, "GET /readyz HTTP/1.1\r\n\r\n", true);
	ck_assert_ptr_nonnull(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
	free(r);
	admin_routes_set_ready(rt, true);
	r = answer(rt, "GET /readyz HTTP/1.1\r\n\r\n", true);
	ck_assert_ptr_nonnull(strstr(r, "\r\n\r\nready\n"));
	free(r);
	r = answer(rt, "GET /metrics HTTP/1.1\r\n\r\n", false);
	ck_assert_ptr_nonnull(strstr(r, "grpcguard_t_total{x=\"y\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(r, "version=0.0.4"));
	free(r);
	r = answer(rt, "GET /policy HTTP/1.1\r\n\r\n", false);
	ck_assert_ptr_nonnull(strstr(r, "HTTP/1.1 403 Forbidden\r\n"));
	free(r);
	r = answer(rt, "GET /policy HTTP/1.1\r\n\r\n", true);
	ck_assert_ptr_nonnull(strstr(r, "\r\n\r\n{}"));
	free(r);
	r = answer(rt, "HEAD /policy HTTP/1.1\r\n\r\n", true);
	ck_assert_str_eq(r + strlen(r) - 4, "\r\n\r\n");
	ck_assert_ptr_nonnull(strstr(r, "Content-Length: 2\r\n"));
	free(r);
	r = answer(rt, "GET /p%6flicy HTTP/1.1\r\n\r\n", false); /* no unescaping: 404 */
	ck_assert_ptr_nonnull(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
	free(r);
	r = answer(rt, "OPTIONS * HTTP/1.1\r\n\r\n", true);
	ck_assert_ptr_nonnull(strstr(r, "HTTP/1.1 405 "));
	free(r);
	r = answer(rt, "BREW /healthz HTTP/1.1\r\n\r\n", true);
	ck_assert_ptr_nonnull(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
	ck_assert_ptr_nonnull(strstr(r, "Connection: close\r\n"));
	free(r);
	admin_routes_free(rt);
	metrics_registry_free(reg);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"split_anywhere", split_anywhere},
	    {"pipelined", pipelined},
	    {"http10", http10},
	    {"body_not_read", body_not_read},
	    {"bad_input", bad_input},
	    {"limits", limits},
	    {"response_bytes", response_bytes},
	    {"routes_answer", routes_answer},
	};
	return UT_RUN("common/admin_http", cases, .timeout_s = 10);
}
