/*
 * sidecar/h2conn: what the frame walk next to nghttp2 does with a client's bytes, through
 * the real sessions and callbacks with the sockets stubbed (the worker's test_write hook
 * keeps what would go to the client; upstream connects succeed at once):
 * PRIORITY on stream 0 ends the connection with GOAWAY PROTOCOL_ERROR (also when its
 * header is split across reads), PRIORITY elsewhere and RST_STREAM for a stream never
 * opened are no connection error, and streams reset right after opening are cut off as a
 * rapid reset (GOAWAY ENHANCE_YOUR_CALM) once 500 have closed, not before, unless a delay
 * fault held them. The worker's upstream pool: GOAWAY and REFUSED_STREAM retries move a
 * stream to a new pooled connection; a stream reset before its HEADERS left sends
 * nothing to the app (what the hook keeps for the app is checked too).
 */
#include <check.h>
#include <string.h>

#include "common/log.h"
#include "policy/policy.h"
#include "sidecar/proxy.h"
#include "tests/unit/runner.h"

static struct sc_config cfg;
static struct sc_proxy px;
static struct sc_worker w;
static uint8_t out[1 << 20]; /* bytes for the client */
static size_t nout;
static uint8_t upout[1 << 16]; /* bytes for the app (every upstream connection) */
static size_t nupout;

/* Linked with -Wl,--wrap=sc_authn_new (Makefile): authn_enomem makes it fail as on ENOMEM. */
static bool authn_enomem;
int __real_sc_authn_new(struct policy *p, struct sc_authn **res, char **err_msg);
int __wrap_sc_authn_new(struct policy *p, struct sc_authn **res, char **err_msg);
int __wrap_sc_authn_new(struct policy *p, struct sc_authn **res, char **err_msg)
{
	if (!authn_enomem)
		return __real_sc_authn_new(p, res, err_msg);
	*res = NULL;
	if (err_msg)
		*err_msg = NULL;
	return -1;
}

static const char policy_yaml[] = "apiVersion: grpcguard.io/v1\nkind: Policy\n";

static void sink(struct sc_worker *wk, const struct sc_outbuf *o, const uint8_t *d, size_t n)
{
	(void)wk;
	if (wk->conns && o == &wk->conns->out && nout + n <= sizeof(out)) {
		memcpy(out + nout, d, n);
		nout += n;
	} else if (wk->ups && o == &wk->ups->out && nupout + n <= sizeof(upout)) {
		memcpy(upout + nupout, d, n);
		nupout += n;
	}
}

static void setup(void)
{
	struct policy *p = NULL;
	struct policy_diag diag;

	log_init("test", LOGL_ERROR);
	sc_config_defaults(&cfg);
	cfg.upstream = "127.0.0.1:1";
	cfg.original_dst = false;
	px.cfg = &cfg;
	w.px = &px;
	w.pool.max_free = 8;
	w.test_write = sink;
	ck_assert(sc_stats_init() == 0 && uv_loop_init(&w.loop) == 0 &&
		  sc_worker_callbacks_init(&w) == 0 && sc_reload_init(&w.loop, NULL, NULL) == 0);
	ck_assert_int_eq(
	    policy_parse_buffer("t.yaml", policy_yaml, sizeof(policy_yaml) - 1, &p, &diag), 0);
	ck_assert_int_eq(sc_reload_set_policy(p), 0);
	nout = nupout = 0;
}

static size_t frame(uint8_t *b, uint8_t type, uint8_t flags, uint32_t sid, const void *pl,
		    size_t len)
{
	b[0] = (uint8_t)(len >> 16);
	b[1] = (uint8_t)(len >> 8);
	b[2] = (uint8_t)len;
	b[3] = type;
	b[4] = flags;
	b[5] = (uint8_t)(sid >> 24);
	b[6] = (uint8_t)(sid >> 16);
	b[7] = (uint8_t)(sid >> 8);
	b[8] = (uint8_t)sid;
	if (len)
		memcpy(b + 9, pl, len);
	return 9 + len;
}

/* A connection past the preface and SETTINGS exchange. */
static struct sc_conn *conn(void)
{
	struct sc_conn *c = sc_conn_new(&w);
	uint8_t b[32];
	size_t n;

	ck_assert_ptr_nonnull(c);
	sc_conn_feed(c, (const uint8_t *)SC_H2_PREFACE, SC_H2_PREFACE_LEN);
	n = frame(b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
	n += frame(b + n, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, NULL, 0);
	sc_conn_feed(c, b, n);
	ck_assert_int_eq(c->mode, CM_H2);
	return c;
}

static void done(struct sc_conn *c)
{
	sc_conn_close(c);
	sc_ups_sweep(&w, 0, true);
	uv_run(&w.loop, UV_RUN_DEFAULT);
}

/* The error code of the first GOAWAY sent to the client, or -1. */
static long goaway_code(void)
{
	for (size_t i = 0; i + 9 <= nout;) {
		size_t len = (size_t)out[i] << 16 | (size_t)out[i + 1] << 8 | out[i + 2];
		if (out[i + 3] == NGHTTP2_GOAWAY && len >= 8 && i + 9 + len <= nout)
			return (long)((uint32_t)out[i + 13] << 24 | (uint32_t)out[i + 14] << 16 |
				      (uint32_t)out[i + 15] << 8 | out[i + 16]);
		i += 9 + len;
	}
	return -1;
}

static bool ping_ack(const uint8_t opaque[8])
{
	for (size_t i = 0; i + 9 <= nout;) {
		size_t len = (size_t)out[i] << 16 | (size_t)out[i + 1] << 8 | out[i + 2];
		if (out[i + 3] == NGHTTP2_PING && (out[i + 4] & NGHTTP2_FLAG_ACK) && len == 8 &&
		    i + 17 <= nout && memcmp(out + i + 9, opaque, 8) == 0)
			return true;
		i += 9 + len;
	}
	return false;
}

START_TEST(priority_stream0)
{
	static const uint8_t pri[5] = {0, 0, 0, 3, 16};
	struct sc_conn *c = conn();
	uint8_t b[64];
	size_t n = frame(b, NGHTTP2_PRIORITY, 0, 0, pri, sizeof(pri));

	/* Split inside the frame header: the walk keeps its place across reads. */
	sc_conn_feed(c, b, 4);
	ck_assert_int_eq(goaway_code(), -1);
	sc_conn_feed(c, b + 4, n - 4);
	ck_assert_int_eq(goaway_code(), NGHTTP2_PROTOCOL_ERROR);
	done(c);
}
END_TEST

START_TEST(priority_other_stream_and_stray_reset)
{
	static const uint8_t pri[5] = {0, 0, 0, 0, 16};
	static const uint8_t cancel[4] = {0, 0, 0, NGHTTP2_CANCEL};
	static const uint8_t opaque[8] = "pingpong";
	struct sc_conn *c = conn();
	uint8_t b[128];
	size_t n = frame(b, NGHTTP2_PRIORITY, 0, 5, pri, sizeof(pri));

	/* RST_STREAM for stream 7, never opened: dropped (nghttp2 would end the connection). */
	n += frame(b + n, NGHTTP2_RST_STREAM, 0, 7, cancel, sizeof(cancel));
	n += frame(b + n, NGHTTP2_PING, 0, 0, opaque, sizeof(opaque));
	sc_conn_feed(c, b, n);
	ck_assert_int_eq(goaway_code(), -1);
	ck_assert(ping_ack(opaque));
	ck_assert_int_eq(c->mode, CM_H2);
	done(c);
}
END_TEST

/* An HPACK block of literal fields (no Huffman, no indexing): a gRPC request. */
static size_t request_block(uint8_t *b)
{
	static const char *const f[][2] = {
	    {":method", "POST"}, {":scheme", "http"}, {":path", "/a.B/C"},
	    {":authority", "t"}, {"te", "trailers"},  {"content-type", "application/grpc"},
	};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		b[n++] = 0;
		for (int k = 0; k < 2; k++) {
			size_t l = strlen(f[i][k]);
			b[n++] = (uint8_t)l;
			memcpy(b + n, f[i][k], l);
			n += l;
		}
	}
	return n;
}

/* count streams opened and reset at once, one batch per read; GOAWAY code after. */
static long rapid_resets(unsigned count)
{
	static const uint8_t cancel[4] = {0, 0, 0, NGHTTP2_CANCEL};
	struct sc_conn *c = conn();
	uint8_t blk[256], b[512];
	size_t nblk = request_block(blk);
	long code;

	for (unsigned i = 0; i < count && c->mode == CM_H2; i++) {
		uint32_t sid = 1 + 2 * i;
		size_t n = frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, sid, blk, nblk);
		n += frame(b + n, NGHTTP2_RST_STREAM, 0, sid, cancel, sizeof(cancel));
		sc_conn_feed(c, b, n);
	}
	code = goaway_code();
	done(c);
	return code;
}

START_TEST(premature_resets)
{
	ck_assert_int_eq(rapid_resets(498), -1);
	nout = 0;
	ck_assert_int_eq(rapid_resets(600), NGHTTP2_ENHANCE_YOUR_CALM);
}
END_TEST

/*
 * Streams a delay fault holds, reset at once (what a client whose calls all time out
 * does, seen by a sidecar that reads the burst late): not premature, never cut off.
 */
START_TEST(held_resets_are_not_premature)
{
	static const char held[] = "apiVersion: grpcguard.io/v1\nkind: Policy\nfaults:\n"
				   "  - name: hold\n    match: {methods: [\"*\"]}\n"
				   "    delay: {fixed: 10s}\n";
	struct policy *p = NULL;
	struct policy_diag diag;

	ck_assert_int_eq(policy_parse_buffer("h.yaml", held, sizeof(held) - 1, &p, &diag), 0);
	ck_assert_int_eq(sc_reload_set_policy(p), 0);
	ck_assert_int_eq(rapid_resets(600), -1);
}
END_TEST

/* The error code of the first RST_STREAM sent to the client on stream sid, or -1. */
static long rst_code(uint32_t sid)
{
	for (size_t i = 0; i + 9 <= nout;) {
		size_t len = (size_t)out[i] << 16 | (size_t)out[i + 1] << 8 | out[i + 2];
		uint32_t id = (uint32_t)(out[i + 5] & 0x7f) << 24 | (uint32_t)out[i + 6] << 16 |
			      (uint32_t)out[i + 7] << 8 | out[i + 8];
		if (out[i + 3] == NGHTTP2_RST_STREAM && id == sid && len == 4 && i + 13 <= nout)
			return (long)((uint32_t)out[i + 9] << 24 | (uint32_t)out[i + 10] << 16 |
				      (uint32_t)out[i + 11] << 8 | out[i + 12]);
		i += 9 + len;
	}
	return -1;
}

static struct sc_stream *stream_of(struct sc_conn *c, int32_t down_id)
{
	for (struct sc_stream *s = c->streams; s; s = s->next)
		if (s->down_id == down_id)
			return s;
	return NULL;
}

/*
 * Issue 17: the app's GOAWAY names stream 1 as the last it processed, so the request
 * on stream 3 goes to a new upstream connection (stream 1 finishes on the old one); that
 * one refuses it (RST_STREAM REFUSED_STREAM): sent again there under a new id. Once the
 * response has started, a reset is not retried.
 */
START_TEST(upstream_goaway_retry)
{
	static const uint8_t goaway[8] = {0, 0, 0, 1, 0, 0, 0, NGHTTP2_NO_ERROR};
	static const uint8_t refused[4] = {0, 0, 0, NGHTTP2_REFUSED_STREAM};
	static const uint8_t resp[] = {0x88}; /* :status 200, static table index 8 */
	struct sc_conn *c = conn();
	uint8_t blk[256], b[512];
	size_t nblk = request_block(blk), n;
	struct sc_up *first, *second;
	struct sc_stream *s1, *s3;
	int32_t id;

	n = frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, blk,
		  nblk);
	n += frame(b + n, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3,
		   blk, nblk);
	sc_conn_feed(c, b, n);
	s1 = stream_of(c, 1);
	s3 = stream_of(c, 3);
	ck_assert(s1 && s3);
	first = s1->up;
	ck_assert(first && s3->up == first && w.ups == first);
	ck_assert_int_eq(s1->up_id, 1);
	ck_assert_int_eq(s3->up_id, 3);

	n = frame(b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
	n += frame(b + n, NGHTTP2_GOAWAY, 0, 0, goaway, sizeof(goaway));
	sc_up_feed(first, b, n);
	second = s3->up;
	/* The pool: the new connection first, the one going away after it. */
	ck_assert(second && second != first && w.ups == second && second->next == first);
	ck_assert(s1->up == first && s1->tries == 0);
	ck_assert(s3->up == second && s3->tries == 1 && s3->state == SS_FORWARDED);
	ck_assert(!s3->resp_started);

	id = s3->up_id;
	n = frame(b, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
	n += frame(b + n, NGHTTP2_RST_STREAM, 0, (uint32_t)id, refused, sizeof(refused));
	sc_up_feed(second, b, n);
	ck_assert(w.ups == second && s3->up == second && s3->tries == 2);
	ck_assert_int_gt(s3->up_id, id);
	ck_assert(s3->state == SS_FORWARDED && !s3->resp_started);

	id = s3->up_id;
	n = frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, (uint32_t)id, resp, sizeof(resp));
	n += frame(b + n, NGHTTP2_RST_STREAM, 0, (uint32_t)id, refused, sizeof(refused));
	sc_up_feed(second, b, n);
	/* Not retried: the client's stream was reset and is gone (s3 is freed). */
	ck_assert_ptr_null(stream_of(c, 3));
	ck_assert_int_eq(rst_code(3), NGHTTP2_REFUSED_STREAM);
	ck_assert_ptr_nonnull(stream_of(c, 1));
	done(c);
}
END_TEST

/*
 * Issue 17, the shared upstream: a client opens a stream and resets it in the same read,
 * then closes, all before the upstream connection could send anything (it is still
 * connecting: here no flush runs in between). The request's HEADERS never left (nghttp2
 * cancels the queued frame), so no RST_STREAM may go to the app for it: nghttp2 sends a
 * second reset of such a stream as an RST_STREAM on an idle stream, a connection error
 * (RFC 9113 section 5.1) that would end every other client's streams on the connection.
 * The pooled connection's stream count is back to zero (else the pool would think it
 * full).
 */
START_TEST(cancel_before_headers_sent)
{
	static const uint8_t cancel[4] = {0, 0, 0, NGHTTP2_CANCEL};
	struct sc_conn *c = conn();
	uint8_t blk[256], b[512];
	size_t nblk = request_block(blk), n, i;
	struct sc_up *up;

	n = frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, blk, nblk);
	n += frame(b + n, NGHTTP2_RST_STREAM, 0, 1, cancel, sizeof(cancel));
	w.flushing = true; /* nothing goes out yet, as while the upstream connects */
	sc_conn_feed(c, b, n);
	up = w.ups;
	ck_assert_ptr_nonnull(up);
	sc_conn_close(c);
	w.flushing = false;
	sc_worker_flush(&w);
	ck_assert_uint_eq(up->nstreams, 0);
	ck_assert_uint_ge(nupout, 24);
	ck_assert(memcmp(upout, SC_H2_PREFACE, 24) == 0);
	for (i = 24; i + 9 <= nupout;) {
		size_t len = (size_t)upout[i] << 16 | (size_t)upout[i + 1] << 8 | upout[i + 2];
		ck_assert_msg(upout[i + 3] != NGHTTP2_HEADERS && upout[i + 3] != NGHTTP2_RST_STREAM,
			      "frame type %d went to the app for a stream it never saw",
			      upout[i + 3]);
		i += 9 + len;
	}
	sc_ups_sweep(&w, 0, true);
	uv_run(&w.loop, UV_RUN_DEFAULT);
}
END_TEST

/*
 * Red team 3: a policy with requestAuthentication on a worker that could not set up
 * token verification (out of memory) refuses the request instead of judging it as one
 * without a token (a forged token would pass rules that only exclude "no token").
 * Nothing goes upstream.
 */
START_TEST(authn_setup_failure_fails_closed)
{
	static const char jwt[] = "apiVersion: grpcguard.io/v1\nkind: Policy\n"
				  "requestAuthentication:\n  - issuer: https://issuer.example\n"
				  "    jwks: '{\"keys\": []}'\n";
	struct policy *p = NULL;
	struct policy_diag diag;
	struct sc_conn *c;
	struct sc_stream *s;
	uint8_t blk[256], b[512];
	size_t nblk = request_block(blk), n;

	ck_assert_int_eq(policy_parse_buffer("j.yaml", jwt, sizeof(jwt) - 1, &p, &diag), 0);
	ck_assert_uint_gt(policy_authn_count(p), 0);
	ck_assert_int_eq(sc_reload_set_policy(p), 0);
	authn_enomem = true;
	c = conn();
	n = frame(b, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, blk,
		  nblk);
	sc_conn_feed(c, b, n);
	authn_enomem = false;
	ck_assert_ptr_null(w.authn);
	s = stream_of(c, 1);
	ck_assert_msg(!s || (s->state == SS_REPLIED && !s->up),
		      "the request was forwarded without its token checked");
	ck_assert_ptr_null(w.ups);
	ck_assert_uint_eq(nupout, 0);
	done(c);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"priority", priority_stream0},
	    {"priority", priority_other_stream_and_stray_reset},
	    {"premature_resets", premature_resets},
	    {"premature_resets", held_resets_are_not_premature},
	    {"upstream_goaway", upstream_goaway_retry},
	    {"upstream_pool", cancel_before_headers_sent},
	    {"authn", authn_setup_failure_fails_closed},
	};
	return UT_RUN("sidecar/h2conn", tests, .timeout_s = 30, .setup = setup);
}
