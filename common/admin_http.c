/*
 * The admin server's HTTP/1.1 request parsing and response formatting. See admin_http.h.
 *
 * http-parser calls us back as it goes; we only copy the request target (bounded) and, at
 * the end of each request, pause the parser so that admin_http_feed() returns after
 * exactly one request. The header limit is the parser's own (HPE_HEADER_OVERFLOW counts
 * the request line and every header byte); we set it once per process, which is safe
 * because the library is linked statically and nothing else in the program uses it.
 */
#include "common/admin_http.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t limits_once = PTHREAD_ONCE_INIT;

static void set_limits(void)
{
	http_parser_set_max_header_size(ADMIN_HTTP_MAX_HEADER_BYTES);
}

static int on_message_begin(http_parser *p)
{
	struct admin_http *h = p->data;

	h->url_len = 0;
	h->url[0] = '\0';
	h->url_overflow = false;
	return 0;
}

/* The target may arrive in pieces (one per read); a longer one than we keep is an error. */
static int on_url(http_parser *p, const char *at, size_t len)
{
	struct admin_http *h = p->data;

	if (len > ADMIN_HTTP_MAX_URL - h->url_len) {
		h->url_overflow = true;
		return 1; /* stops the parser: HPE_CB_url */
	}
	memcpy(h->url + h->url_len, at, len);
	h->url_len += len;
	h->url[h->url_len] = '\0';
	return 0;
}

/*
 * A request with a body is answered without reading it: 1 tells the parser there is no
 * body to expect, and the connection closes after the answer (keep_alive is false), so
 * the body's bytes are never parsed as a request of their own.
 */
static int on_headers_complete(http_parser *p)
{
	bool has_body =
	    (p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != UINT64_MAX);

	return has_body ? 1 : 0;
}

static int on_message_complete(http_parser *p)
{
	struct admin_http *h = p->data;
	bool skipped_body = (p->flags & F_SKIPBODY) != 0;
	size_t n;

	h->head = p->method == HTTP_HEAD;
	h->get_or_head = p->method == HTTP_GET || p->method == HTTP_HEAD;
	h->http10 = p->http_major == 1 && p->http_minor == 0;
	h->keep_alive = http_should_keep_alive(p) && !skipped_body && !p->upgrade && h->get_or_head;
	/* The path is the target up to its query or fragment. */
	n = strcspn(h->url, "?#");
	h->url[n] = '\0';
	h->path = h->url;
	h->paused = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

void admin_http_init(struct admin_http *h)
{
	pthread_once(&limits_once, set_limits);
	memset(h, 0, sizeof(*h));
	http_parser_init(&h->parser, HTTP_REQUEST);
	h->parser.data = h;
	h->path = h->url;
}

enum admin_http_event admin_http_feed(struct admin_http *h, const char *data, size_t len,
				      size_t *used)
{
	enum http_errno err;
	size_t n;

	*used = 0;
	if (h->failed || h->paused)
		return h->failed ? ADMIN_HTTP_BAD : ADMIN_HTTP_REQUEST;
	if (len == 0)
		return ADMIN_HTTP_MORE; /* 0 bytes would tell the parser the stream ended */
	n = http_parser_execute(&h->parser, &settings, data, len);
	*used = n;
	err = HTTP_PARSER_ERRNO(&h->parser);
	if (err == HPE_PAUSED && h->paused)
		return ADMIN_HTTP_REQUEST;
	if (err == HPE_OK && !h->parser.upgrade && n == len)
		return ADMIN_HTTP_MORE;
	h->failed = true;
	if (err == HPE_HEADER_OVERFLOW)
		h->bad_status = 431;
	else if (h->url_overflow)
		h->bad_status = 414;
	else
		h->bad_status = 400;
	return ADMIN_HTTP_BAD;
}

void admin_http_next(struct admin_http *h)
{
	if (!h->paused)
		return;
	h->paused = false;
	h->url_len = 0;
	h->url[0] = '\0';
	http_parser_pause(&h->parser, 0);
}

int admin_http_response(unsigned status, const char *ctype, const char *body, size_t len, bool head,
			bool keep_alive, bool http10, char **out, size_t *outlen)
{
	const char *conn = !keep_alive ? "Connection: close\r\n"
			   : http10    ? "Connection: keep-alive\r\n"
				       : "";
	const char *allow = status == 405 ? "Allow: GET, HEAD\r\n" : "";
	const char *reason;
	char *buf;
	int hl;
	size_t blen = head ? 0 : len;

	if (status < 100 || status > 599 || !ctype || (len && !body))
		return -EINVAL;
	reason = http_status_str((enum http_status)status);
#define HEAD_FMT                                                                                   \
	"HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: "             \
	"no-store\r\nX-Content-Type-Options: nosniff\r\n%s%s\r\n"
	hl = snprintf(NULL, 0, HEAD_FMT, status, reason, ctype, len, allow, conn);
	if (hl < 0 || (size_t)hl > SIZE_MAX - blen - 1)
		return -EINVAL;
	buf = malloc((size_t)hl + blen + 1);
	if (!buf)
		return -ENOMEM;
	snprintf(buf, (size_t)hl + 1, HEAD_FMT, status, reason, ctype, len, allow, conn);
#undef HEAD_FMT
	if (blen)
		memcpy(buf + hl, body, blen);
	buf[(size_t)hl + blen] = '\0';
	*out = buf;
	*outlen = (size_t)hl + blen;
	return 0;
}
