/*
 * Fuzz target: the admin port's request path without sockets, as common/admin.c drives it
 * on a connection: bytes fed to admin_http_feed() in reads of a size the first input byte
 * chooses (1..127 bytes, or everything at once), each complete request (or parse error)
 * answered by admin_routes_answer() with a metrics registry and two registered routes
 * (one loopback-only; the first byte's top bit says whether the peer is loopback).
 * Checks that feeding never claims more bytes than given and that every answer is a
 * complete HTTP/1.1 response. Deterministic; everything is freed per input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin_http.h"
#include "common/admin_routes.h"
#include "common/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int route_text(void *ctx, char **body, size_t *len, const char **ctype)
{
	*body = strdup((const char *)ctx);
	if (!*body)
		return 500;
	*len = strlen(*body);
	*ctype = "application/json";
	return 200;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *labels[] = {"grpc_code"}, *vals[] = {"OK"};
	struct metrics_registry *reg = NULL;
	struct admin_routes *rt = NULL;
	struct admin_http h;
	size_t step, off = 0, fed_to = 0;
	bool loopback;

	if (size < 1)
		return 0;
	step = data[0] & 0x7f ? (size_t)(data[0] & 0x7f) : size;
	loopback = data[0] & 0x80;
	data++;
	size--;
	reg = metrics_registry_new();
	if (!reg || admin_routes_new(reg, &rt) != 0)
		goto out;
	metrics_inc(metrics_series(
	    metrics_counter(reg, "grpcguard_requests_total", "R.", 1, labels), vals));
	if (admin_routes_add(rt, "/policy", route_text, "{\"generation\":1}", true) != 0 ||
	    admin_routes_add(rt, "/info", route_text, "{}", false) != 0)
		__builtin_trap();
	admin_http_init(&h);
	/* Like a connection: the next read is offered once everything before it is used. */
	while (off < size) {
		size_t used = 0, avail;
		enum admin_http_event ev;

		if (fed_to <= off)
			fed_to = off + step < size ? off + step : size;
		avail = fed_to - off;
		ev = admin_http_feed(&h, (const char *)data + off, avail, &used);
		if (used > avail)
			__builtin_trap();
		off += used;
		if (ev == ADMIN_HTTP_MORE) {
			if (used != avail)
				__builtin_trap();
			continue;
		}
		char *out = NULL;
		size_t outlen = 0;
		if (admin_routes_answer(rt, &h, loopback, &out, &outlen) == 0) {
			const char *end = memmem(out, outlen, "\r\n\r\n", 4);
			if (outlen < 17 || memcmp(out, "HTTP/1.1 ", 9) != 0 || !end)
				__builtin_trap();
			free(out);
		}
		if (ev == ADMIN_HTTP_BAD || !h.keep_alive)
			break; /* the connection closes */
		admin_http_next(&h);
	}
out:
	admin_routes_free(rt);
	metrics_registry_free(reg);
	return 0;
}
