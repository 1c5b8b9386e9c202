/*
 * The admin server's HTTP/1.1 request side, without I/O: bytes in, one parsed request (or
 * an error status) out, and the response bytes for it. The parsing is Debian's
 * libhttp-parser (nodejs http-parser 2.9, linked statically); this module adds the bounds
 * and the decisions the admin port needs:
 *
 *   - at most ADMIN_HTTP_MAX_HEADER_BYTES of request line and headers (431 otherwise),
 *     ADMIN_HTTP_MAX_URL bytes of request target (414 otherwise);
 *   - a request body is never read: a request that announces one (Content-Length > 0 or
 *     chunked) is answered and the connection then closes, so the body's bytes are never
 *     taken for another request;
 *   - one request at a time: feeding stops at the end of each request, so pipelined
 *     requests are answered in order and the caller can stop reading while its writes
 *     are backed up.
 *
 * What it does not do: route (common/admin.c does), read or write sockets, unescape
 * %-encoded paths (a route matches the path byte for byte; the query is cut off).
 */
#ifndef GRPCGUARD_ADMIN_HTTP_H
#define GRPCGUARD_ADMIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <http_parser.h>

#define ADMIN_HTTP_MAX_HEADER_BYTES 8192
#define ADMIN_HTTP_MAX_URL 1024

/* What admin_http_feed() found. */
enum admin_http_event {
	ADMIN_HTTP_MORE = 0,	/* everything consumed, no complete request yet */
	ADMIN_HTTP_REQUEST = 1, /* a request is complete: see method, path, keep_alive */
	ADMIN_HTTP_BAD = 2,	/* unusable input: answer bad_status, then close */
};

/* One connection's request parser. Storage the caller owns (embedded in its connection). */
struct admin_http {
	http_parser parser;
	bool paused; /* a request was returned and admin_http_next() not called yet */
	bool failed; /* ADMIN_HTTP_BAD was returned: the connection is done */
	bool url_overflow;
	size_t url_len;
	char url[ADMIN_HTTP_MAX_URL + 1];

	/* Valid after ADMIN_HTTP_REQUEST, until admin_http_next(): */
	bool head;	  /* HEAD: the response carries no body */
	bool get_or_head; /* otherwise the answer is 405 */
	bool keep_alive;  /* false: close after the response */
	bool http10;	  /* an HTTP/1.0 request (keep-alive must be said explicitly) */
	const char *path; /* the target up to '?' or '#', NUL-terminated, in url[] */
	/* Valid after ADMIN_HTTP_BAD: 400, 414 or 431. */
	unsigned bad_status;
};

void admin_http_init(struct admin_http *h);

/*
 * Parse up to len bytes of what the client sent. Stops after the first complete request
 * (ADMIN_HTTP_REQUEST; *used tells how many bytes it took, the rest belongs to the next
 * request) or at the first error (ADMIN_HTTP_BAD). Returns ADMIN_HTTP_MORE when all len
 * bytes were consumed without completing a request. Must not be called again after
 * ADMIN_HTTP_REQUEST until admin_http_next(), nor at all after ADMIN_HTTP_BAD.
 */
enum admin_http_event admin_http_feed(struct admin_http *h, const char *data, size_t len,
				      size_t *used);

/* The request returned by admin_http_feed() was answered: parse the next one. */
void admin_http_next(struct admin_http *h);

/*
 * Build a complete response: status line, Content-Type, Content-Length, Cache-Control:
 * no-store, X-Content-Type-Options: nosniff, Allow for 405, Connection: close (or
 * keep-alive for an HTTP/1.0 client that asked for it), then body unless head. body is
 * borrowed. Returns 0 and a new malloc'd buffer in *out (length *outlen), or -ENOMEM /
 * -EINVAL (status outside 100..599); *out is untouched on failure.
 */
int admin_http_response(unsigned status, const char *ctype, const char *body, size_t len, bool head,
			bool keep_alive, bool http10, char **out, size_t *outlen);

#endif
