/*
 * One RPC through the proxy: the decision when its request headers are complete
 * (request authentication, authorization, faults), the delay timer, local trailers-only
 * replies, submitting it upstream, and the data providers that move buffered bytes from
 * one session to the other and only then return flow-control credit to the sender.
 *
 * A stream is freed once both its downstream and (if it was forwarded) upstream halves
 * are closed; it keeps a reference to the policy snapshot it was decided with, so a
 * reload in the middle of a held RPC cannot pull strings from under it. A held RPC whose
 * policy changed while it was held is judged again at release (rejudge_held).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "sidecar/peercache.h"
#include "sidecar/proxy.h"

static const char *const grpc_unavailable_msg =
    "upstream connect error or disconnect/reset before headers";

/* Spare stream objects kept per worker (steady traffic then allocates none): 256 cover
 * 8 connections x 16 streams in flight twice over; at most 256 x ~800 B stay. */
#if defined(__SANITIZE_ADDRESS__)
static const size_t stream_pool_max = 0; /* ASan: every stream is freed, stale pointers caught */
#else
static const size_t stream_pool_max = 256;
#endif

struct sc_stream *sc_stream_new(struct sc_conn *c, int32_t down_id)
{
	struct sc_worker *w = c->w;
	struct sc_stream *s = w->free_streams;

	if (s) {
		w->free_streams = s->next;
		w->nfree_streams--;
		memset(s, 0, sizeof(*s));
	} else if (!(s = calloc(1, sizeof(*s)))) {
		return NULL;
	}
	sc_hdrs_init(&s->req_hdrs, s->inl_req, sizeof(s->inl_req) / sizeof(s->inl_req[0]));
	sc_hdrs_init(&s->resp_hdrs, s->inl_resp, sizeof(s->inl_resp) / sizeof(s->inl_resp[0]));
	sc_hdrs_init(&s->resp_trailers, s->inl_trl, sizeof(s->inl_trl) / sizeof(s->inl_trl[0]));
	sc_hdrs_init(&s->req_trailers, NULL, 0);
	s->c = c;
	s->down_id = down_id;
	s->up_id = -1;
	s->grpc_status = -1;
	s->start_ms = uv_now(&c->w->loop);
	s->next = c->streams;
	if (c->streams)
		c->streams->prev = s;
	c->streams = s;
	c->nstreams++;
	metrics_add(sc_stats.active_streams, 1);
	return s;
}

static void timer_free_cb(uv_handle_t *h)
{
	free(h);
}

static void release_delay(struct sc_stream *s)
{
	if (!s->counted_delay)
		return;
	s->counted_delay = false;
	atomic_fetch_sub(&s->c->w->px->ndelayed, 1);
	metrics_add(sc_stats.delayed_streams, -1);
}

static void stop_timer(struct sc_stream *s)
{
	if (!s->timer)
		return;
	s->timer->data = NULL;
	uv_close((uv_handle_t *)s->timer, timer_free_cb);
	s->timer = NULL;
	release_delay(s);
}

/*
 * A stream reset (by the client, or dropped by us with its connection) before any status:
 * DEADLINE_EXCEEDED when its grpc-timeout has elapsed (that is what the client saw; a
 * gRPC client resets the stream at its deadline), else CANCELLED (sc_grpc_reset_code).
 */
int sc_stream_reset_status(const struct sc_stream *s, uint64_t now)
{
	return sc_grpc_reset_code(s->deadline_ms, s->timeout_ms, now);
}

static void check_peer(struct sc_stream *s);

/*
 * Outbound: the destination's identity for an RPC's source-side labels. A response that
 * named the destination's sidecar teaches sc_peercache the address the app called, and
 * one without the header (no sidecar there) makes it forget it, once per connection; an
 * RPC that ended before any response (held by the destination's delay and abandoned at
 * the caller's deadline, reset, refused) takes the identity last learned for the address,
 * so it is counted on the same edge as the calls that were answered.
 */
static void outbound_peer(struct sc_stream *s, struct sc_rpc_labels *l, struct sc_peer_id *peer,
			  uint64_t now)
{
	struct sc_conn *c = s->c;

	if (l->peer) {
		if (!c->peer_cached)
			sc_peercache_learn(&c->updst, l->peer, now);
		c->peer_cached = true;
	} else if (s->resp_hdrs.n > 0) {
		if (!c->peer_cached && !s->npeer_hdr)
			sc_peercache_forget(&c->updst);
		c->peer_cached = true;
	} else if (sc_peercache_find(&c->updst, now, peer)) {
		l->peer = peer;
	}
}

/*
 * requests_total and the duration of a finished RPC: reporter destination on the inbound
 * path (the peer is the caller's claim), source on the outbound path (the peer is the
 * destination sidecar's answer, decoded here, else the last one on this connection; none
 * from a destination without sidecar).
 */
static void count_rpc(struct sc_stream *s, double secs)
{
	struct sc_worker *w = s->c->w;
	const struct sc_snap *snap = s->snap ? s->snap : w->snap;
	nghttp2_vec p = nghttp2_rcbuf_get_buf(s->path);
	struct sc_peer_id peer;
	struct sc_rpc_labels l = {.reporter =
				      s->c->outbound ? SC_REPORTER_SOURCE : SC_REPORTER_DESTINATION,
				  .self = snap ? &snap->self.id : NULL,
				  .path = (const char *)p.base,
				  .path_len = p.len};

	char spiffe[SC_PRINCIPAL_MAX + 16];

	if (s->c->outbound)
		check_peer(s);
	l.mtls = s->c->mtls;
	if (s->c->outbound && s->c->mtls) {
		l.source_principal = s->c->out_self_id;
		l.destination_principal = s->c->out_peer_id;
	} else if (s->c->mtls) {
		snprintf(spiffe, sizeof(spiffe), "spiffe://%s", sc_tls_peer_principal(s->c->tls));
		l.source_principal = spiffe;
		l.destination_principal = sc_tls_gen(s->c->tls)->spiffe_id;
	}
	if (s->peer_ok) {
		nghttp2_vec v = nghttp2_rcbuf_get_buf(s->peer_hdr);
		if (sc_peer_decode(v.base, v.len, &peer) == SC_PEER_OK)
			l.peer = &peer;
	}
	if (s->c->outbound)
		outbound_peer(s, &l, &peer, uv_now(&w->loop));
	for (uint32_t i = 0; i < s->req_hdrs.n; i++) {
		nghttp2_vec k = nghttp2_rcbuf_get_buf(s->req_hdrs.v[i].name);
		if (k.len == 10 && memcmp(k.base, ":authority", 10) == 0) {
			nghttp2_vec v = nghttp2_rcbuf_get_buf(s->req_hdrs.v[i].value);
			l.authority = (const char *)v.base;
			l.authority_len = v.len;
			break;
		}
	}
	sc_stats_rpc_done(&w->mcache, &l, s->grpc_status < 0 ? 2 : s->grpc_status, secs);
}

size_t sc_stream_peer_nv(const struct sc_stream *s, nghttp2_nv *nv)
{
	return s->peer_ok && s->snap ? sc_peer_self_nv(&s->snap->self, nv) : 0;
}

/*
 * The peer's SC_PEER_HEADER (kept aside by h2conn.c): inbound the caller's, decoded once
 * at the decision, so a bad one is counted once, and peer_ok then lets the response name
 * us back (Istio answers only a peer that takes part in the exchange); outbound the
 * destination sidecar's answer, decoded when the RPC is counted. Telemetry only: never
 * fed to the policy.
 */
static void check_peer(struct sc_stream *s)
{
	struct sc_peer_id id;
	nghttp2_vec v;
	int err;

	if (!s->npeer_hdr)
		return;
	v = nghttp2_rcbuf_get_buf(s->peer_hdr);
	err = s->npeer_hdr > 1 ? SC_PEER_E_REPEATED : sc_peer_decode(v.base, v.len, &id);
	if (err == SC_PEER_OK && !s->c->outbound && s->c->mtls) {
		/* Over mTLS the claim is authenticated only as far as the certificate goes:
		 * its namespace and service account must be the certificate's. */
		const char *ns, *sa;
		size_t nsl, sal;
		if (sc_principal_split(sc_tls_peer_principal(s->c->tls), &ns, &nsl, &sa, &sal) !=
			0 ||
		    strlen(id.ns) != nsl || memcmp(id.ns, ns, nsl) != 0 || strlen(id.sa) != sal ||
		    memcmp(id.sa, sa, sal) != 0)
			err = SC_PEER_E_MISMATCH;
	}
	if (err == SC_PEER_OK) {
		s->peer_ok = true;
		return;
	}
	sc_stats_peer_invalid(err);
	log_debug("peer_metadata_invalid", "ignored a peer's " SC_PEER_HEADER " header",
		  "{s:s, s:I}", "reason", sc_peer_strerror(err), "bytes", (json_int_t)v.len);
}

void sc_stream_maybe_free(struct sc_stream *s)
{
	struct sc_conn *c = s->c;
	struct sc_worker *w = c->w;

	if (!s->down_closed || (s->up && !s->up_closed))
		return;
	if (s->path && s->state != SS_HEADERS && !s->counted) {
		double secs = (double)(uv_now(&w->loop) - s->start_ms) / 1000.0;
		s->counted = true;
		count_rpc(s, secs);
	}
	if (s->peer_hdr)
		nghttp2_rcbuf_decref(s->peer_hdr);
	stop_timer(s);
	sc_hdrs_clear(&s->req_hdrs);
	sc_hdrs_clear(&s->req_trailers);
	sc_hdrs_clear(&s->resp_hdrs);
	sc_hdrs_clear(&s->resp_trailers);
	if (s->path)
		nghttp2_rcbuf_decref(s->path);
	sc_stream_drop_req(s);
	sc_stream_drop_resp(s);
	sc_snap_unref(s->snap);
	if (c->dcache == s)
		c->dcache = NULL;
	if (s->up && s->up->cache == s)
		s->up->cache = NULL;
	c->resp_grown -= s->resp_grown;
	if (s->prev)
		s->prev->next = s->next;
	else
		c->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	c->nstreams--;
	metrics_add(sc_stats.active_streams, -1);
	if (w->nfree_streams < stream_pool_max) {
		s->next = w->free_streams;
		w->free_streams = s;
		w->nfree_streams++;
	} else {
		free(s);
	}
}

void sc_stream_pool_cleanup(struct sc_worker *w)
{
	while (w->free_streams) {
		struct sc_stream *s = w->free_streams;
		w->free_streams = s->next;
		free(s);
	}
	w->nfree_streams = 0;
}

/*
 * Request bytes kept for a retry (s->sent): at most REPLAY_MAX_BYTES per stream (a
 * quarter of its window when that is smaller) and half the connection window
 * (2 x max_pending_bytes) for all of a connection's streams together, so what waits for
 * an answer never starves the client of credit. Kept bytes are credited to the client
 * only when the app answers or the stream ends: memory stays within the windows.
 */
#define REPLAY_MAX_BYTES 16384

void sc_stream_replay_release(struct sc_stream *s)
{
	struct sc_conn *c = s->c;

	s->no_replay = true;
	if (!s->sent.bytes)
		return;
	c->replay_bytes -= s->sent.bytes;
	if (c->ds) {
		nghttp2_session_consume(c->ds, s->down_id, s->sent.bytes);
		sc_conn_dirty(c);
	}
	sc_chunkq_clear(&s->sent, &c->w->pool);
}

/* Keep n bytes just sent upstream for a retry; false: not kept (credit them now). */
static bool keep_sent(struct sc_stream *s, const uint8_t *d, size_t n)
{
	struct sc_conn *c = s->c;
	size_t window = c->w->px->cfg->max_pending_bytes, before = s->sent.bytes;
	size_t max = window / 4 < REPLAY_MAX_BYTES ? window / 4 : REPLAY_MAX_BYTES;

	if (s->no_replay)
		return false;
	if (before + n > max || c->replay_bytes + n > window / 2 ||
	    sc_chunkq_append(&s->sent, &c->w->pool, d, n) != 0) {
		c->replay_bytes += s->sent.bytes - before; /* a failed append may keep a part */
		sc_stream_replay_release(s);
		return false;
	}
	c->replay_bytes += n;
	return true;
}

static bool rejudge_held(struct sc_stream *s);

bool sc_stream_retry(struct sc_stream *s)
{
	struct sc_conn *c = s->c;

	if (s->state != SS_FORWARDED || s->down_closed || s->resp_started || s->resp_hdrs.n ||
	    s->no_replay || s->tries >= SC_MAX_TRIES || c->mode != CM_H2)
		return false;
	s->tries++;
	/* What was sent goes first again; its client credit is still withheld. */
	if (s->sent.head) {
		s->sent.tail->next = s->req.head;
		if (!s->req.tail)
			s->req.tail = s->sent.tail;
		s->req.head = s->sent.head;
		s->req.bytes += s->sent.bytes;
		c->replay_bytes -= s->sent.bytes;
		s->sent = (struct sc_chunkq){0};
	}
	/* The old connection's stream, if it still exists, no longer leads here. */
	if (s->up && s->up->s)
		nghttp2_session_set_stream_user_data(s->up->s, s->up_id, NULL);
	if (s->up && s->up->cache == s)
		s->up->cache = NULL;
	c->resp_grown -= s->resp_grown; /* the new stream starts with the initial window */
	s->resp_grown = 0;
	s->up = NULL;
	s->up_id = -1;
	s->up_closed = false;
	/*
	 * The app never processed it, so the app gets it now: judged again when the policy
	 * changed since it was judged, as a held request is at release (a DENY pushed while
	 * the first try waited on a slow or restarting app must stop the second try too).
	 * Denied: answered here, nothing more goes upstream.
	 */
	if (!c->outbound && !rejudge_held(s))
		return true;
	metrics_inc(sc_stats.upstream_retries);
	log_debug("upstream_retry", "the app did not process this request; sending it again",
		  "{s:i}", "attempt", (int)s->tries + 1);
	sc_stream_forward(s);
	sc_conn_dirty(c);
	return true;
}

void sc_stream_drop_req(struct sc_stream *s)
{
	struct sc_conn *c = s->c;

	sc_stream_replay_release(s);
	if (s->req.bytes && c->ds) {
		nghttp2_session_consume(c->ds, s->down_id, s->req.bytes);
		sc_conn_dirty(c);
	}
	sc_chunkq_clear(&s->req, &c->w->pool);
}

/*
 * Bytes the app sent count against the upstream connection window until they are
 * consumed; dropping them without that (the app reset the stream while a slow client
 * had not taken them) would shrink that window for good, and after a few such streams
 * every call on the connection would hang. nghttp2 credits the connection even when the
 * stream is gone. Call before s->up is cleared.
 */
void sc_stream_drop_resp(struct sc_stream *s)
{
	struct sc_conn *c = s->c;

	if (s->resp.bytes && s->up && s->up->s) {
		nghttp2_session_consume(s->up->s, s->up_id, s->resp.bytes);
		sc_conn_dirty(c);
	}
	c->resp_bytes -= s->resp.bytes;
	sc_chunkq_clear(&s->resp, &c->w->pool);
}

/*
 * Per-client response flow control (proxy.h, SC_UP_STREAM_WINDOW): the app's response
 * DATA for s arrived. Once the response outgrew half its initial window (a unary reply
 * never does: no extra frame), its upstream stream window grows from
 * SC_UP_STREAM_WINDOW to --max-pending-bytes (one WINDOW_UPDATE) when the growth fits
 * the client's budget (2 x max_pending_bytes of grown windows) and the client keeps up
 * (under max_pending_bytes buffered for all its streams), so a long download runs at
 * full speed while a client that reads nothing keeps at most its streams' initial
 * windows plus that budget. The growth is given back when s is freed or sent again.
 */
void sc_stream_resp_window(struct sc_stream *s)
{
	struct sc_conn *c = s->c;
	const struct sc_config *cfg = c->w->px->cfg;
	uint32_t base = sc_up_stream_window(cfg), grow = cfg->max_pending_bytes - base;

	/* Only a response that outgrows half the initial window (not a unary reply). */
	if (s->resp_grown || !grow || s->resp_in < base / 2 || !s->up || !s->up->s ||
	    s->up_closed || c->resp_bytes >= cfg->max_pending_bytes ||
	    c->resp_grown + grow > 2 * (size_t)cfg->max_pending_bytes)
		return;
	if (nghttp2_session_set_local_window_size(s->up->s, NGHTTP2_FLAG_NONE, s->up_id,
						  (int32_t)cfg->max_pending_bytes) != 0)
		return;
	s->resp_grown = grow;
	c->resp_grown += grow;
}

/*
 * Header list -> nghttp2_nv array (borrowing the rcbufs), skipping `skip` if not NULL and
 * giving grpc-timeout the value `timeout` if not NULL (nghttp2 copies that one).
 *
 * No copy: nghttp2 reads these bytes only when it serializes the frame, so they must
 * live until then. They do: the list stays in the stream until the stream is freed,
 * which happens only after both sessions closed the stream, and nghttp2 drops (without
 * reading) a queued HEADERS frame of a stream that closed or a session that was deleted.
 */
#define NV_NO_COPY (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)

/*
 * Fields that carry credentials or identity. The HPACK dynamic table of an upstream
 * connection is shared by every client of the pool: a field we let the encoder index
 * would let a co-tenant probe it (send guesses and watch the sizes, CRIME-style, e.g.
 * on an outbound connection whose TLS record lengths are visible). These go as
 * "literal never indexed" (NGHTTP2_NV_FLAG_NO_INDEX), which intermediaries keep too.
 */
static bool sensitive(const uint8_t *k, size_t n)
{
	/* By length first: this runs for every field of every request. */
	switch (n) {
	case 6:
		return memcmp(k, "cookie", 6) == 0;
	case 9:
		return memcmp(k, "x-api-key", 9) == 0;
	case 12:
		return memcmp(k, "x-auth-token", 12) == 0;
	case 13:
		return memcmp(k, "authorization", 13) == 0;
	case SC_PEER_HEADER_LEN:
		return memcmp(k, SC_PEER_HEADER, SC_PEER_HEADER_LEN) == 0;
	case 19:
		return memcmp(k, "proxy-authorization", 19) == 0;
	default:
		return false;
	}
}

static size_t to_nva(const struct sc_hdrs *h, nghttp2_nv *nv, const char *skip, const char *timeout)
{
	size_t n = 0, skiplen = skip ? strlen(skip) : 0;

	for (uint32_t i = 0; i < h->n; i++) {
		nghttp2_vec k = nghttp2_rcbuf_get_buf(h->v[i].name);
		nghttp2_vec v = nghttp2_rcbuf_get_buf(h->v[i].value);
		if (skip && k.len == skiplen && memcmp(k.base, skip, skiplen) == 0)
			continue;
		nv[n] = (nghttp2_nv){k.base, v.base, k.len, v.len, NV_NO_COPY};
		if (sensitive(k.base, k.len))
			nv[n].flags |= NGHTTP2_NV_FLAG_NO_INDEX;
		if (timeout && k.len == 12 && memcmp(k.base, "grpc-timeout", 12) == 0) {
			nv[n].value = (uint8_t *)(uintptr_t)timeout;
			nv[n].valuelen = strlen(timeout);
			nv[n].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME;
		}
		n++;
	}
	return n;
}

/*
 * The header list size an upstream connection's peer accepts
 * (SETTINGS_MAX_HEADER_LIST_SIZE; nghttp2 reports no limit until its SETTINGS arrive, so
 * a new connection to the app is held to what the app announced last on another one).
 * An upstream connection is shared by every client of the worker, and an app may treat a
 * header block over its limit as a connection error (python3-h2 does: GOAWAY): one
 * client's oversize request or trailers would end every other client's calls on it, and
 * the requests refused by that GOAWAY (the oversize one too) would be sent again.
 */
static uint32_t up_hdr_max(const struct sc_up *up)
{
	if (!up->settings_seen && !up->outbound && up->w && up->w->app_hdr_max)
		return up->w->app_hdr_max;
	return nghttp2_session_get_remote_settings(up->s, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
}

/* Whether n fields fit max, counted as SETTINGS_MAX_HEADER_LIST_SIZE counts. */
static bool nv_fits(uint32_t max, const nghttp2_nv *nv, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += nv[i].namelen + nv[i].valuelen + 32;
	return sum <= max;
}

/* Trailers h on stream id of sess, whose peer accepts max bytes of header list. */
static void submit_trailers(nghttp2_session *sess, int32_t id, const struct sc_hdrs *h,
			    uint32_t max)
{
	nghttp2_nv stack[16], *nv = h->n <= 16 ? stack : malloc(h->n * sizeof(*nv));
	size_t n;

	if (!nv) {
		nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	n = to_nva(h, nv, NULL, NULL);
	if (!nv_fits(max, nv, n)) {
		/* Over the peer's limit: the stream fails, the connection stays. */
		metrics_inc(sc_stats.lim_headers);
		nghttp2_submit_rst_stream(sess, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
	} else {
		nghttp2_submit_trailer(sess, id, nv, n);
	}
	if (nv != stack)
		free(nv);
}

void sc_stream_reply(struct sc_stream *s, int grpc_status, const char *msg)
{
	struct sc_conn *c = s->c;
	char enc[512], st[8];
	size_t n;
	/* Literals need no copy; the two values on the stack do. */
	nghttp2_nv nv[5] = {
	    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NV_NO_COPY},
	    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NV_NO_COPY},
	    {(uint8_t *)"grpc-status", (uint8_t *)st, 11, 0, NGHTTP2_NV_FLAG_NO_COPY_NAME},
	    {(uint8_t *)"grpc-message", (uint8_t *)enc, 12, 0, NGHTTP2_NV_FLAG_NO_COPY_NAME},
	};

	if (s->down_closed || !c->ds)
		return;
	s->state = SS_REPLIED;
	stop_timer(s);
	if (s->resp_started) {
		/* Too late for a status: the response is under way. */
		nghttp2_submit_rst_stream(c->ds, NGHTTP2_FLAG_NONE, s->down_id,
					  NGHTTP2_INTERNAL_ERROR);
	} else {
		nv[2].valuelen = (size_t)snprintf(st, sizeof(st), "%d", grpc_status);
		nv[3].valuelen = sc_grpc_message_encode(msg ? msg : "", enc, sizeof(enc));
		n = nv[3].valuelen ? 4 : 3;
		n += sc_stream_peer_nv(s, &nv[n]);
		nghttp2_submit_response(c->ds, s->down_id, nv, n, NULL);
		s->resp_started = s->resp_eof = true;
		s->grpc_status = grpc_status;
	}
	sc_stream_drop_req(s);
	sc_up_cancel(s, NGHTTP2_CANCEL);
	sc_conn_dirty(c);
}

void sc_stream_up_failed(struct sc_stream *s, uint32_t h2_error)
{
	struct sc_conn *c = s->c;

	s->up_closed = true;
	sc_stream_drop_resp(s);
	if (s->up && s->up->cache == s)
		s->up->cache = NULL;
	s->up = NULL;
	if (s->down_closed) {
		sc_stream_maybe_free(s);
		return;
	}
	if (!s->resp_started) {
		sc_stream_reply(s, 14, grpc_unavailable_msg);
		return;
	}
	if (!s->resp_eof) {
		s->state = SS_REPLIED;
		sc_stream_drop_req(s);
		nghttp2_submit_rst_stream(c->ds, NGHTTP2_FLAG_NONE, s->down_id, h2_error);
		sc_conn_dirty(c);
	}
}

/* Upstream DATA source: the client's buffered request bytes. */
static ssize_t req_read(nghttp2_session *us, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *ud)
{
	struct sc_stream *s = src->ptr;
	struct sc_conn *c = s->c;
	size_t n = sc_chunkq_read(&s->req, &c->w->pool, buf, len);
	(void)ud;

	if (n && !keep_sent(s, buf, n) && c->ds) {
		nghttp2_session_consume(c->ds, s->down_id, n);
		sc_conn_dirty(c);
	}
	if (s->req.bytes == 0 && s->req_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (s->req_trailers.n) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			submit_trailers(us, id, &s->req_trailers,
					s->up ? up_hdr_max(s->up) : UINT32_MAX);
		}
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

/* Downstream DATA source: the app's buffered response bytes, then its trailers. */
static ssize_t resp_read(nghttp2_session *ds, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct sc_stream *s = src->ptr;
	struct sc_conn *c = ud;
	size_t n = sc_chunkq_read(&s->resp, &c->w->pool, buf, len);

	c->resp_bytes -= n;
	if (n && s->up && s->up->s) {
		nghttp2_session_consume(s->up->s, s->up_id, n);
		sc_conn_dirty(c);
	}
	if (s->resp.bytes == 0 && s->resp_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (s->resp_trailers.n) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			submit_trailers(ds, id, &s->resp_trailers,
					nghttp2_session_get_remote_settings(
					    ds, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE));
		}
		return (ssize_t)n;
	}
	return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
}

const nghttp2_data_provider sc_req_provider = {.read_callback = req_read};
const nghttp2_data_provider sc_resp_provider = {.read_callback = resp_read};

void sc_stream_forward(struct sc_stream *s)
{
	struct sc_conn *c = s->c;
	nghttp2_nv stack[32], *nv;
	nghttp2_data_provider prov = sc_req_provider;
	struct sc_up *up;
	char tmo[16] = "";
	size_t n;
	int32_t id;

	up = sc_up_get(c);
	if (!up) {
		sc_stream_reply(s, 14, grpc_unavailable_msg);
		return;
	}
	nv = s->req_hdrs.n < 32 ? stack : malloc((s->req_hdrs.n + 1) * sizeof(*nv));
	if (!nv) {
		sc_stream_reply(s, 8, "out of memory");
		return;
	}
	if (s->deadline_ms && s->timer_was_set) {
		/* Held by a delay: the app gets what is left of the client's deadline. */
		uint64_t now = uv_now(&c->w->loop),
			 left = s->deadline_ms > now ? s->deadline_ms - now : 1;
		snprintf(tmo, sizeof(tmo), "%llum",
			 (unsigned long long)(left > 99999999 ? 99999999 : left));
	}
	n = to_nva(&s->req_hdrs, nv, s->strip_header, tmo[0] ? tmo : NULL);
	if (c->outbound && s->snap && sc_peer_self_nv(&s->snap->self, &nv[n])) {
		/* The caller's sidecar names its workload (peer.h); never indexed (above). */
		nv[n++].flags |= NGHTTP2_NV_FLAG_NO_INDEX;
	}
	if (!nv_fits(up_hdr_max(up), nv, n)) {
		if (nv != stack)
			free(nv);
		if (!up->nstreams && !up->idle_ms)
			up->idle_ms = uv_now(&c->w->loop) ? uv_now(&c->w->loop) : 1;
		metrics_inc(sc_stats.lim_headers);
		sc_stream_reply(s, 8,
				"request header list larger than the app accepts (its "
				"SETTINGS_MAX_HEADER_LIST_SIZE)");
		return;
	}
	prov.source.ptr = s;
	/*
	 * Keep the client's framing: END_STREAM on HEADERS only if the client put it there;
	 * a client that ended with a (possibly empty) DATA frame while we held the request
	 * gets one forwarded too (gRPC servers wait for it: PROTOCOL-HTTP2).
	 */
	id = nghttp2_submit_request(up->s, NULL, nv, n, s->req_eof_hdrs ? NULL : &prov, s);
	if (nv != stack)
		free(nv);
	if (id < 0) {
		sc_stream_reply(s, 14, grpc_unavailable_msg);
		return;
	}
	s->up = up;
	s->up_id = id;
	s->state = SS_FORWARDED;
	up->nstreams++;
	up->idle_ms = 0;
	if (c->outbound)
		sc_outbound_learn(c, up);
	sc_conn_dirty(c);
}

/* ---- the decision -------------------------------------------------------------------- */

static void refresh_policy(struct sc_worker *w)
{
	uint64_t gen = sc_state_generation();
	char *err = NULL;

	if (w->snap && w->snap->generation == gen)
		return;
	sc_snap_unref(w->snap);
	w->snap = sc_state_current();
	sc_authn_free(w->authn);
	w->authn = NULL;
	if (sc_authn_new(w->snap->policy, &w->authn, &err) != 0)
		log_error("authn_init", "cannot set up request authentication", NULL);
	if (err) {
		if (w->index == 0)
			log_warn("jwks_error", err, NULL);
		free(err);
	}
}

static struct policy_header *policy_headers(struct sc_worker *w, const struct sc_hdrs *h)
{
	if (w->scratch_cap < h->n) {
		struct policy_header *nh = realloc(w->scratch_hdrs, h->n * sizeof(*nh));
		if (!nh)
			return NULL;
		w->scratch_hdrs = nh;
		w->scratch_cap = h->n;
	}
	for (uint32_t i = 0; i < h->n; i++) {
		nghttp2_vec k = nghttp2_rcbuf_get_buf(h->v[i].name);
		nghttp2_vec v = nghttp2_rcbuf_get_buf(h->v[i].value);
		w->scratch_hdrs[i] = (struct policy_header){(const char *)k.base, k.len,
							    (const char *)v.base, v.len};
	}
	return w->scratch_hdrs;
}

static void peer_str(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	out[0] = '\0';
	if (ss->ss_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)ss, out, outlen);
	else if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ss, out, outlen);
}

/*
 * The judgement of one inbound request with the snapshot in s->snap, in order: fail
 * closed without a usable policy, the request form (gate.c), the request token (JWT),
 * the policy. A refused or denied request is answered here (trailers-only) and false is
 * returned; true means allowed, with the decision in *d and the policy's header view in
 * *hdp (the worker's scratch array, valid until the next judgement on this worker).
 * held: the request is being released from a delay and judged again (no audit log: it
 * was audited on arrival).
 */
static bool judge(struct sc_stream *s, bool held, struct policy_decision *d,
		  struct policy_header **hdp)
{
	struct sc_conn *c = s->c;
	struct sc_worker *w = c->w;
	struct sc_authn_result ar = {0};
	struct policy_request rq = {0};
	struct policy_header *hd;
	nghttp2_vec path = nghttp2_rcbuf_get_buf(s->path);

	if (s->snap->no_policy) {
		/* Fail closed: the policy file at start was unusable (reload.h). */
		char msg[512];
		snprintf(msg, sizeof(msg), "grpcguard: no valid policy loaded: %s",
			 s->snap->no_policy);
		sc_stream_reply(s, 14, msg);
		return false;
	}
	hd = policy_headers(w, &s->req_hdrs);
	if (!hd) {
		sc_stream_reply(s, 8, "out of memory");
		return false;
	}
	if (!sc_gate_admit_stream(s, hd, s->req_hdrs.n))
		return false; /* not in gRPC form under an authorization policy: refused (gate.c) */
	if (!w->authn && policy_authn_count(s->snap->policy) > 0) {
		/* Fail closed: the policy wants tokens checked and this worker could not set up
		 * their verification (refresh_policy: out of memory). Judging the request as
		 * one without a token would let a forged token pass rules that only exclude
		 * "no token". */
		sc_stream_reply(s, 14, "grpcguard: request authentication is unavailable");
		return false;
	}
	if (w->authn) {
		sc_authn_check(w->authn, hd, s->req_hdrs.n, (int64_t)time(NULL), uv_now(&w->loop),
			       &ar);
		if (ar.verdict == SC_AUTHN_FAIL) {
			metrics_inc(sc_stats.authn_failed);
			log_debug("authn_failed", "request token rejected", "{s:s, s:s}", "method",
				  (const char *)path.base, "reason", ar.reason ? ar.reason : "");
			sc_authn_result_cleanup(&ar);
			sc_stream_reply(s, 16, "Jwt verification fails");
			return false;
		}
	}
	rq.method = (const char *)path.base;
	rq.method_len = path.len;
	rq.headers = hd;
	rq.nheaders = s->req_hdrs.n;
	rq.peer = (const struct sockaddr *)&c->peer;
	rq.labels = s->snap->labels;
	rq.principal = ar.verdict == SC_AUTHN_OK ? ar.principal : NULL;
	if (c->mtls) {
		/* The caller's identity comes from its verified certificate only (tls.c). */
		rq.peer_principal = sc_tls_peer_principal(c->tls);
		rq.peer_principal_len = strlen(rq.peer_principal);
		rq.mtls = true;
	}
	rq.claims = ar.verdict == SC_AUTHN_OK ? ar.claims : NULL;
	policy_evaluate(s->snap->policy, &rq, sc_rng_percent, &w->rng, d);
	s->strip_header = ar.strip_header;
	if (held && !d->allowed) {
		log_debug("rbac_denied", "held or refused RPC denied at release by the new policy",
			  "{s:s?, s:s}", "policy", d->deciding_policy, "method",
			  (const char *)path.base);
	} else if (!held && (d->audit_policy || !d->allowed)) {
		char peer[64];
		peer_str(&c->peer, peer, sizeof(peer));
		if (d->audit_policy)
			log_info("rbac_audit",
				 d->allowed ? "RPC allowed (audited)" : "RPC denied (audited)",
				 "{s:s, s:s, s:s, s:b, s:s?}", "policy", d->audit_policy, "method",
				 (const char *)path.base, "peer", peer, "allowed", d->allowed,
				 "principal", rq.principal);
		else
			log_debug("rbac_denied", "RPC denied", "{s:s?, s:s, s:s}", "policy",
				  d->deciding_policy, "method", (const char *)path.base, "peer",
				  peer);
	}
	sc_authn_result_cleanup(&ar);
	if (!d->allowed) {
		sc_stats_denied(d->deciding_policy);
		sc_stream_reply(s, 7, "RBAC: access denied");
		return false;
	}
	*hdp = hd;
	return true;
}

/*
 * A request held by a delay (or sent again after the app refused it unprocessed:
 * sc_stream_retry) is judged again when it is released if the policy changed
 * while it was held (Istio applies a delay in the caller's proxy, so the server's RBAC
 * judges the request after the delay, with the policy in force then; a DENY pushed to
 * stop an attack must stop held requests too): judge() with the current snapshot, which
 * the stream takes; only the verdict counts, the fault was drawn at arrival. Returns true
 * when the request may be forwarded; otherwise it was answered.
 */
static bool rejudge_held(struct sc_stream *s)
{
	struct sc_worker *w = s->c->w;
	struct policy_decision d = {0};
	struct policy_header *hd;

	if (s->snap->generation == sc_state_generation())
		return true;
	refresh_policy(w);
	if (w->snap->generation == s->snap->generation)
		return true;
	/* The old snapshot's strings (fault name, abort message, strip_header) are not
	 * used past this point; strip_header is set afresh by judge(). */
	sc_snap_unref(s->snap);
	s->snap = sc_snap_ref(w->snap);
	s->fault_name = s->abort_message = NULL;
	s->strip_header = NULL;
	return judge(s, true, &d, &hd);
}

static void delay_cb(uv_timer_t *t)
{
	struct sc_stream *s = t->data;
	struct sc_conn *c;

	if (!s)
		return;
	c = s->c;
	stop_timer(s);
	if (s->deadline_ms && uv_now(&c->w->loop) >= s->deadline_ms) {
		/* The client's deadline passed while held: it has given up; so do we. */
		sc_stream_reply(s, 4, "Deadline Exceeded");
	} else if (s->state == SS_HELD && s->abort_status > 0) {
		sc_stats_fault("abort", s->fault_name);
		sc_stream_reply(s, s->abort_status, s->abort_message);
	} else if (s->state == SS_HELD && (s->c->outbound || rejudge_held(s))) {
		/* Outbound never authorizes: only an inbound RPC is judged again. */
		sc_stream_forward(s);
	}
	sc_conn_flush(c);
}

/*
 * What the decision says besides "allowed", for both directions: hold the RPC for the
 * delay (then abort, or forward: delay_cb), abort it now, or forward it now. d is
 * borrowed; its strings live in s->snap's policy, which the stream references.
 */
void sc_stream_apply_faults(struct sc_stream *s, const struct policy_decision *d)
{
	struct sc_worker *w = s->c->w;
	struct sc_proxy *px = w->px;

	if (d->delay_ms > 0) {
		uint64_t wait = d->delay_ms;

		if (atomic_fetch_add(&px->ndelayed, 1) >= px->cfg->max_delayed) {
			atomic_fetch_sub(&px->ndelayed, 1);
			metrics_inc(sc_stats.lim_delayed);
			sc_stream_reply(s, 8, "too many delayed requests (max-delayed)");
			return;
		}
		s->counted_delay = true;
		metrics_add(sc_stats.delayed_streams, 1);
		sc_stats_fault("delay", d->fault_name);
		s->timer = malloc(sizeof(*s->timer));
		if (!s->timer) {
			release_delay(s);
			sc_stream_reply(s, 8, "out of memory");
			return;
		}
		uv_timer_init(&w->loop, s->timer);
		s->timer->data = s;
		s->timer_was_set = true;
		s->state = SS_HELD;
		/*
		 * The timer counts from the loop's cached time, taken when this loop turn
		 * began; on a busy loop that is milliseconds ago and the RPC would be held
		 * that much less than configured. One clock read per delayed RPC. The
		 * client's deadline, though, is absolute: the timer must fire at it (not
		 * that late), so we answer DEADLINE_EXCEEDED before the client gives up.
		 */
		uv_update_time(&w->loop);
		if (s->deadline_ms) {
			uint64_t fresh = uv_now(&w->loop),
				 left = s->deadline_ms > fresh ? s->deadline_ms - fresh : 0;
			if (left < wait)
				wait = left;
		}
		uv_timer_start(s->timer, delay_cb, wait, 0);
		if (d->abort) {
			/* Istio order: the delay, then the abort. Decided now, replied then. */
			s->abort_status = d->abort_grpc_status;
			s->abort_message = d->abort_message;
			s->fault_name = d->fault_name;
		}
		return;
	}
	if (d->abort) {
		sc_stats_fault("abort", d->fault_name);
		sc_stream_reply(s, d->abort_grpc_status, d->abort_message);
		return;
	}
	sc_stream_forward(s);
}

void sc_stream_headers_done(struct sc_stream *s)
{
	struct sc_conn *c = s->c;
	struct sc_worker *w = c->w;
	struct policy_decision d = {0};
	struct policy_header *hd;
	uint64_t now = uv_now(&w->loop);

	if (c->outbound) {
		sc_outbound_headers_done(s); /* the caller's side: no authorization */
		return;
	}
	if (s->hdr_too_big) {
		metrics_inc(sc_stats.lim_headers);
		s->state = SS_REPLIED;
		sc_stream_reply(s, 8, "request header list too large (max-header-list-bytes)");
		return;
	}
	if (!s->path) {
		sc_stream_reply(s, 13, "missing :path");
		return;
	}
	refresh_policy(w);
	s->snap = sc_snap_ref(w->snap);
	check_peer(s);
	if (!judge(s, false, &d, &hd))
		return;
	for (uint32_t i = 0; i < s->req_hdrs.n; i++) {
		if (hd[i].name_len == 12 && memcmp(hd[i].name, "grpc-timeout", 12) == 0) {
			uint64_t t;
			if (sc_grpc_timeout_parse(hd[i].value, hd[i].value_len, &t) == 0) {
				s->deadline_ms = now + t;
				s->timeout_ms = t;
			}
		}
	}
	sc_stream_apply_faults(s, &d);
}
