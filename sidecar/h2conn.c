/*
 * One downstream connection: the client preface check, the nghttp2 server session, the
 * worker's pool of upstream nghttp2 client sessions (TCP connections to the app shared by
 * the worker's client connections, per destination and direction), socket reads and
 * batched writes (per worker: reads only feed nghttp2; sc_worker_flush, run by the
 * worker's check handle after every ready socket of the loop turn was read, writes each
 * shared upstream and each dirty client once per turn), and the plain TCP passthrough
 * for clients that do not speak HTTP/2 prior knowledge.
 *
 * Writes: frames from nghttp2_session_mem_send() are gathered in the worker's assembly
 * buffer and handed to uv_try_write(); only what the kernel does not take is copied into
 * a per-connection buffer for a uv_write(), and nothing more is produced for that socket
 * until it completes, so a slow reader stalls its own flow-control windows, not memory.
 *
 * What it does not do: decide anything about an RPC (stream.c does).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "common/log.h"
#include "sidecar/gate.h"
#include "sidecar/identity.h"
#include "sidecar/intercept.h"
#include "sidecar/proxy.h"

#define FLUSH_BYTES 32768
#define FLOOD_FRAMES_PER_SEC 2000
#define FLOOD_FRAMES_PER_STREAM 2
/*
 * Premature resets, as Envoy's overload.premature_reset_* (rapid reset, CVE-2023-44487):
 * a client reset of a stream that lived less than PREMATURE_LIFETIME_MS, unless it came
 * at its own deadline (at least half of its grpc-timeout had passed: a gRPC client resets
 * a call at its deadline), after we answered it, or while a delay fault held it. A held
 * stream has cost the app nothing (the attack's harm is the backend work a reset leaves
 * behind), and a client whose calls a delay holds past their deadlines resets exactly
 * those: when we read a burst late (a busy or instrumented sidecar), their lifetime as we
 * measure it can be well under half their grpc-timeout. nghttp2's RST_STREAM rate limit
 * (RESET_BURST, RESET_PER_SEC) still bounds resets of held streams. Once PREMATURE_MIN_STREAMS
 * streams have closed on a connection, it is cut off (GOAWAY ENHANCE_YOUR_CALM) when at least half
 * of them were reset prematurely. Both counts are halved every PREMATURE_WINDOW streams, so the
 * share is that of the recent streams, not of the connection's life.
 */
#define PREMATURE_LIFETIME_MS 1000
#define PREMATURE_MIN_STREAMS 500
#define PREMATURE_WINDOW 10000
/* nghttp2's own limit on RST_STREAM frames (all of them, also for closed streams): a
 * backstop well above what a client whose calls all time out sends (burst, per second). */
#define RESET_BURST 10000
#define RESET_PER_SEC 1000
/* After our last GOAWAY, PINGs are still answered for this long (or until the client
 * closes), so a client's keepalive in flight does not meet a reset connection. */
#define LINGER_MS 1000

static void conn_close_cb(uv_handle_t *h);
static void up_detach(struct sc_up *up, const char *why);

/*
 * Peers can make us log (floods, an app that is down): at most 10 such warnings per
 * second per worker; the counters in /metrics still count every event.
 */
static bool warn_allowed(struct sc_worker *w)
{
	uint64_t now = uv_now(&w->loop);

	if (now - w->warn_window_ms >= 1000) {
		w->warn_window_ms = now;
		w->warn_count = 0;
	}
	return ++w->warn_count <= 10;
}

/* ---- writing ---------------------------------------------------------------------- */

/*
 * Grow the worker's buffer *buf (capacity *cap, first allocation `first` bytes, doubling)
 * to hold need bytes. Returns 0 or -ENOMEM (the buffer unchanged).
 */
static int buf_reserve(uint8_t **buf, size_t *cap, size_t need, size_t first)
{
	uint8_t *nb;
	size_t ncap;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap : first;
	while (ncap < need)
		ncap *= 2;
	nb = realloc(*buf, ncap);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = ncap;
	return 0;
}

/* The assembly buffer for outgoing frames, and the one for their TLS records. */
static int obuf_reserve(struct sc_worker *w, size_t need)
{
	return buf_reserve(&w->obuf, &w->obuf_cap, need, 65536);
}

static int tbuf_reserve(struct sc_worker *w, size_t need)
{
	return buf_reserve(&w->tbuf, &w->tbuf_cap, need, 16384);
}

/*
 * Send what session s (NULL: none, only what tls holds) has queued on stream h, unless a
 * write is already pending there; through tls when it is set (the frames are encrypted
 * FLUSH_BYTES at a time, so the TLS output stays bounded too). Returns 0 (also when it
 * had to leave bytes to a pending uv_write), or negative (nghttp2, TLS or libuv error:
 * the caller closes that side). *wrote is set when bytes were produced.
 */
static int session_send(struct sc_worker *w, uv_stream_t *h, nghttp2_session *s,
			struct sc_outbuf *o, uv_write_cb cb, bool *wrote, struct sc_tls *tls)
{
	if (o->pending)
		return 0;
	for (;;) {
		size_t len = 0;
		const uint8_t *p;
		uv_buf_t b;
		int r;

		while (s && len < FLUSH_BYTES) {
			const uint8_t *d;
			ssize_t n = nghttp2_session_mem_send(s, &d);
			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			if (obuf_reserve(w, len + (size_t)n) != 0)
				return -ENOMEM;
			memcpy(w->obuf + len, d, (size_t)n);
			len += (size_t)n;
		}
		p = w->obuf; /* only now: obuf_reserve may have moved it */
		if (tls) {
			if (len && sc_tls_write(tls, w->obuf, len) != 0)
				return -EPROTO;
			len = sc_tls_pending(tls);
			if (tbuf_reserve(w, len) != 0)
				return -ENOMEM;
			len = sc_tls_take(tls, w->tbuf, len);
			p = w->tbuf;
		}
		if (len == 0)
			return 0;
		*wrote = true;
		if (w->test_write) {
			w->test_write(w, o, p, len);
			continue;
		}
		b = uv_buf_init((char *)(uintptr_t)p, (unsigned)len);
		r = uv_try_write(h, &b, 1);
		if (r == UV_EAGAIN || r == UV_ENOSYS)
			r = 0;
		if (r < 0)
			return r;
		if ((size_t)r == len)
			continue;
		o->len = len - (size_t)r;
		o->buf = malloc(o->len);
		if (!o->buf)
			return -ENOMEM;
		memcpy(o->buf, p + r, o->len);
		b = uv_buf_init((char *)o->buf, (unsigned)o->len);
		o->pending = true;
		r = uv_write(&o->req, h, &b, 1, cb);
		if (r < 0) {
			free(o->buf);
			o->buf = NULL;
			o->pending = false;
			return r;
		}
		return 0;
	}
}

static void down_write_cb(uv_write_t *req, int status);

int sc_tls_flush_raw(struct sc_worker *w, uv_stream_t *h, struct sc_tls *t, struct sc_outbuf *o,
		     uv_write_cb cb)
{
	bool wrote = false;
	return session_send(w, h, NULL, o, cb, &wrote, t);
}

static void down_write_cb(uv_write_t *req, int status)
{
	struct sc_conn *c = req->data;

	free(c->out.buf);
	c->out.buf = NULL;
	c->out.pending = false;
	if (status == UV_ECANCELED || c->mode == CM_CLOSING)
		return;
	if (status < 0) {
		sc_conn_close(c);
		return;
	}
	if (c->tls && c->mode != CM_H2) {
		/* Still in the handshake (or the preface): send what TLS has left. */
		if (sc_tls_flush_raw(c->w, (uv_stream_t *)&c->tcp, c->tls, &c->out, down_write_cb) <
		    0)
			sc_conn_close(c);
		return;
	}
	sc_conn_flush(c);
}

void sc_up_write_cb(uv_write_t *req, int status)
{
	struct sc_up *up = req->data;
	struct sc_worker *w = up->w;

	free(up->out.buf);
	up->out.buf = NULL;
	up->out.pending = false;
	if (status == UV_ECANCELED || !w)
		return;
	if (status < 0) {
		up_detach(up, "write to the app failed");
		sc_worker_flush(w);
		return;
	}
	if (up->state == UP_CONNECTING) {
		if (up->tls && sc_tls_flush_raw(w, (uv_stream_t *)&up->tcp, up->tls, &up->out,
						sc_up_write_cb) < 0) {
			up_detach(up, "TLS write failed");
			sc_worker_flush(w);
		}
		return;
	}
	sc_worker_flush(w);
}

void sc_conn_dirty(struct sc_conn *c)
{
	if (c->dirty || c->mode != CM_H2)
		return;
	c->dirty = true;
	c->dirty_next = c->w->dirty;
	c->w->dirty = c;
}

/* After a flush: close c if its session is over (or start lingering after our GOAWAY). */
static void conn_maybe_done(struct sc_conn *c)
{
	struct sc_worker *w = c->w;

	if (c->mode != CM_H2 || nghttp2_session_want_read(c->ds) ||
	    nghttp2_session_want_write(c->ds) || c->out.pending)
		return;
	if (!c->goaway_sent || w->test_write) {
		sc_conn_close(c);
	} else if (!c->linger_ms) {
		/* Our GOAWAY is out: PINGs in flight still get an ACK (frames_walk). */
		c->linger_ms = uv_now(&w->loop) ? uv_now(&w->loop) : 1;
	}
}

void sc_conn_flush(struct sc_conn *c)
{
	sc_conn_dirty(c);
	sc_worker_flush(c->w);
}

/*
 * From a read callback: flush at the end of this loop turn, after every ready socket has
 * been read (the check phase follows the poll phase in libuv's loop), so the requests of
 * many clients go to a shared upstream in one write and the responses of several
 * upstream reads to a client in one write, instead of one write per read. Nothing waits
 * longer than the loop turn: the idle handle keeps the turn's poll from blocking when
 * the flush was asked for outside the poll phase. Tests (test_write) flush at once.
 */
static void flush_idle_cb(uv_idle_t *h)
{
	(void)h;
}

static void flush_check_cb(uv_check_t *h)
{
	struct sc_worker *w = h->data;

	if (!w->flush_due)
		return;
	w->flush_due = false;
	uv_idle_stop(&w->flush_idle);
	sc_worker_flush(w);
}

void sc_worker_flush_soon(struct sc_worker *w)
{
	if (w->test_write || !w->flush_check.data) {
		sc_worker_flush(w);
		return;
	}
	if (w->flush_due)
		return;
	w->flush_due = true;
	uv_idle_start(&w->flush_idle, flush_idle_cb);
}

int sc_worker_flush_handles_init(struct sc_worker *w)
{
	int r;

	if ((r = uv_check_init(&w->loop, &w->flush_check)) != 0 ||
	    (r = uv_idle_init(&w->loop, &w->flush_idle)) != 0 ||
	    (r = uv_check_start(&w->flush_check, flush_check_cb)) != 0)
		return r;
	w->flush_check.data = w;
	uv_unref((uv_handle_t *)&w->flush_check); /* never what keeps the loop alive */
	return 0;
}

void sc_worker_flush_handles_close(struct sc_worker *w)
{
	if (!w->flush_check.data || uv_is_closing((uv_handle_t *)&w->flush_check))
		return;
	if (w->flush_due) {
		w->flush_due = false;
		sc_worker_flush(w);
	}
	uv_close((uv_handle_t *)&w->flush_check, NULL);
	uv_close((uv_handle_t *)&w->flush_idle, NULL);
}

/*
 * Flush the worker's sessions until none has anything more to say (sending DATA on one
 * side consumes bytes of the other, which may open a window there): every pooled
 * upstream, and every client connection marked dirty. Then close what is done. Called
 * only from top-level event callbacks, never from inside an nghttp2 callback. Bounded:
 * a socket whose kernel buffer is full leaves a pending uv_write and gets nothing more
 * until it drains, and a round that wrote nothing and dirtied nobody ends the loop.
 */
void sc_worker_flush(struct sc_worker *w)
{
	struct sc_conn *done = NULL;
	bool wrote;

	if (w->flushing)
		return;
	w->flushing = true;
	do {
		wrote = false;
		w->kick = false;
		for (struct sc_up *up = w->ups, *un; up; up = un) {
			un = up->next; /* up_detach unlinks up */
			if (up->state != UP_READY)
				continue;
			if (session_send(w, (uv_stream_t *)&up->tcp, up->s, &up->out,
					 sc_up_write_cb, &wrote, up->tls) < 0)
				up_detach(up, "sending to the app failed");
		}
		while (w->dirty) {
			struct sc_conn *c = w->dirty;
			w->dirty = c->dirty_next;
			c->dirty = false;
			if (c->mode != CM_H2)
				continue;
			if (session_send(w, (uv_stream_t *)&c->tcp, c->ds, &c->out, down_write_cb,
					 &wrote, c->tls) < 0) {
				sc_conn_close(c);
				continue;
			}
			/* Checked once the loop is quiet (a conn may be flushed again). */
			if (!c->in_done) {
				c->in_done = true;
				c->done_next = done;
				done = c;
			}
		}
	} while (w->dirty || wrote || w->kick);
	w->flushing = false;
	for (struct sc_up *up = w->ups, *un; up; up = un) {
		un = up->next;
		if (up->state == UP_READY && !nghttp2_session_want_read(up->s) &&
		    !nghttp2_session_want_write(up->s))
			up_detach(up, NULL); /* after a GOAWAY, nothing left in flight */
	}
	/*
	 * A conn on the done list may have been closed meanwhile (CM_CLOSING: its memory
	 * lives until its handle's close callback, later than this); each is checked once.
	 */
	while (done) {
		struct sc_conn *c = done;
		done = c->done_next;
		c->done_next = NULL;
		c->in_done = false;
		conn_maybe_done(c);
	}
}

/* ---- upstream: the worker's pool ---------------------------------------------------- */

static void up_close_cb(uv_handle_t *h)
{
	struct sc_up *up = h->data;

	if (--up->nhandles == 0) {
		free(up->out.buf);
		sc_tls_free(up->tls);
		free(up);
	}
}

/* Forget up in w->ups (if it is there). */
static void ups_remove(struct sc_worker *w, struct sc_up *up)
{
	for (struct sc_up **pp = &w->ups; *pp; pp = &(*pp)->next) {
		if (*pp == up) {
			*pp = up->next;
			up->next = NULL;
			return;
		}
	}
}

/*
 * The upstream connection is done (why == NULL: cleanly, after a GOAWAY with nothing in
 * flight). A stream whose request never left (the connection, once up, died before its
 * turn) goes to a new connection; other streams still on it fail (UNAVAILABLE before
 * the response started, RST_STREAM after): the app may have processed them. The pool
 * forgets it; its handles close and free it later. Not from inside up's own callbacks.
 */
void sc_up_detach(struct sc_up *up, const char *why)
{
	up_detach(up, why);
}

static void up_detach(struct sc_up *up, const char *why)
{
	struct sc_worker *w = up->w;
	bool was_ready = up->state == UP_READY;

	if (up->state == UP_DEAD)
		return;
	up->state = UP_DEAD;
	if (w) {
		ups_remove(w, up);
		if (why)
			log_debug("upstream_closed", why, "{s:i}", "streams", (int)up->nstreams);
		for (struct sc_conn *c = w->conns; c; c = c->next) {
			for (struct sc_stream *s = c->streams, *n; s; s = n) {
				n = s->next;
				if (s->up != up)
					continue;
				if (s->up_closed) {
					s->up = NULL; /* finished upstream; its response may
							 still be draining */
					continue;
				}
				sc_up_stream_done(up);
				if (!(was_ready &&
				      !nghttp2_session_get_stream_user_data(up->s, s->up_id) &&
				      sc_stream_retry(s)))
					sc_stream_up_failed(s, NGHTTP2_INTERNAL_ERROR);
				sc_conn_dirty(c);
			}
		}
	}
	up->w = NULL;
	up->cache = NULL;
	nghttp2_session_del(up->s);
	up->s = NULL;
	uv_close((uv_handle_t *)&up->tcp, up_close_cb);
	uv_close((uv_handle_t *)&up->timer, up_close_cb);
}

static void up_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct sc_up *up = h->data;
	(void)hint;
	if (up->w)
		*b = uv_buf_init((char *)up->w->rbuf, sizeof(up->w->rbuf));
	else
		*b = uv_buf_init(NULL, 0);
}

static void up_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
	struct sc_up *up = h->data;
	struct sc_worker *w = up->w;

	if (!w || nread == 0)
		return;
	if (up->tls) {
		sc_outbound_tls_in(up, (const uint8_t *)b->base, nread); /* outbound.c */
		return;
	}
	if (nread < 0) {
		up_detach(up, nread == UV_EOF ? "the app closed the connection"
					      : uv_strerror((int)nread));
		sc_worker_flush(w);
		return;
	}
	sc_up_feed(up, (const uint8_t *)b->base, (size_t)nread);
}

void sc_up_feed(struct sc_up *up, const uint8_t *d, size_t n)
{
	struct sc_worker *w = up->w;
	ssize_t rv;

	if (!w || up->state != UP_READY)
		return;
	rv = nghttp2_session_mem_recv(up->s, d, n);
	if (rv < 0)
		up_detach(up, nghttp2_strerror((int)rv));
	sc_worker_flush_soon(w);
}

static void up_timeout_cb(uv_timer_t *t);

static void up_connect_cb(uv_connect_t *req, int status)
{
	struct sc_up *up = req->data;
	struct sc_worker *w = up->w;

	if (status == UV_ECANCELED || !w)
		return;
	uv_timer_stop(&up->timer);
	if (status < 0) {
		metrics_inc(sc_stats.upstream_connect_failed);
		if (warn_allowed(w))
			log_warn("upstream_connect_failed", "cannot connect to the app", "{s:s}",
				 "error", uv_strerror(status));
		up_detach(up, "connect failed");
		sc_worker_flush(w);
		return;
	}
	uv_tcp_nodelay(&up->tcp, 1);
	if (uv_read_start((uv_stream_t *)&up->tcp, up_alloc_cb, up_read_cb) < 0) {
		up_detach(up, "read start failed");
		sc_worker_flush(w);
		return;
	}
	if (up->outbound && !up->plain && sc_outbound_tls_start(up)) {
		/* The handshake runs under the connect timeout's budget again. */
		uv_timer_start(&up->timer, up_timeout_cb, w->px->cfg->upstream_connect_timeout_ms,
			       0);
		return;
	}
	up->state = UP_READY;
	sc_worker_flush(w);
}

static void up_timeout_cb(uv_timer_t *t)
{
	struct sc_up *up = t->data;
	struct sc_worker *w = up->w;

	if (!w)
		return;
	metrics_inc(sc_stats.upstream_connect_failed);
	if (warn_allowed(w))
		log_warn("upstream_connect_failed",
			 up->tls ? "TLS handshake with the destination's sidecar timed out"
				 : "connect to the app timed out",
			 NULL);
	up_detach(up, "connect timeout");
	sc_worker_flush(w);
}

/* Connect up (its session set, in w->ups) to up->dst; NULL on failure (up detached). */
static struct sc_up *up_connect(struct sc_worker *w, struct sc_up *up)
{
	int r;

	up->w = w;
	up->state = UP_CONNECTING;
	uv_tcp_init(&w->loop, &up->tcp);
	uv_timer_init(&w->loop, &up->timer);
	up->tcp.data = up->timer.data = up->creq.data = up->out.req.data = up;
	up->nhandles = 2;
	if (w->test_write) {
		up->state = UP_READY; /* tests and fuzzing: no socket, bytes go to the hook */
		return up;
	}
	r = uv_tcp_connect(&up->creq, &up->tcp, (const struct sockaddr *)&up->dst, up_connect_cb);
	if (r < 0) {
		metrics_inc(sc_stats.upstream_connect_failed);
		up_detach(up, "connect failed");
		return NULL;
	}
	uv_timer_start(&up->timer, up_timeout_cb, w->px->cfg->upstream_connect_timeout_ms, 0);
	return up;
}

/*
 * The destination answered our ClientHello like a server without a sidecar (outbound.c
 * decided): move up's HTTP/2 session, which has not sent a byte yet (an upstream sends
 * only once UP_READY), with its streams (of any client) to a new plaintext connection,
 * which takes up's place in the pool; up closes.
 */
void sc_up_restart_plain(struct sc_up *up)
{
	struct sc_worker *w = up->w;
	struct sc_up *nu = w ? calloc(1, sizeof(*nu)) : NULL;

	if (!nu) {
		up_detach(up, "out of memory");
		return;
	}
	nu->s = up->s;
	up->s = NULL;
	nghttp2_session_set_user_data(nu->s, nu);
	nu->plain = true;
	nu->dst = up->dst;
	nu->outbound = up->outbound;
	nu->nstreams = up->nstreams;
	nu->idle_ms = up->idle_ms;
	for (struct sc_conn *c = w->conns; c; c = c->next)
		for (struct sc_stream *s = c->streams; s; s = s->next)
			if (s->up == up)
				s->up = nu;
	for (struct sc_up **pp = &w->ups; *pp; pp = &(*pp)->next) {
		if (*pp == up) {
			nu->next = up->next;
			*pp = nu;
			up->next = NULL;
			break;
		}
	}
	up->cache = NULL;
	up->w = NULL;
	up->state = UP_DEAD;
	uv_close((uv_handle_t *)&up->tcp, up_close_cb);
	uv_close((uv_handle_t *)&up->timer, up_close_cb);
	up_connect(w, nu);
}

static bool same_dst(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
		       x->sin6_scope_id == y->sin6_scope_id;
	}
	return a->ss_family == AF_UNSPEC; /* tests and fuzzing: no address at all */
}

/*
 * A pooled connection to c's destination (c->updst, and the same direction) that takes
 * another stream: connecting or ready, no GOAWAY from the app, under its
 * SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrive: up_opt); else a new one, first in
 * the pool. A connection the app sent GOAWAY on keeps its streams until they finish, then closes
 * (sc_worker_flush): never here, since this may run inside one of its callbacks (a retry of a
 * stream it refused). Returns the connection (borrowed from the pool) or NULL (out of memory,
 * connect failed).
 */
struct sc_up *sc_up_get(struct sc_conn *c)
{
	struct sc_worker *w = c->w;
	const struct sc_config *cfg = w->px->cfg;
	nghttp2_settings_entry iv[4];
	struct sc_up *up;

	for (up = w->ups; up; up = up->next) {
		uint32_t max;

		if (up->state == UP_DEAD || up->outbound != c->outbound ||
		    !same_dst(&up->dst, &c->updst) || !nghttp2_session_check_request_allowed(up->s))
			continue;
		max = nghttp2_session_get_remote_settings(up->s,
							  NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
		if (up->nstreams < max)
			return up;
	}
	up = calloc(1, sizeof(*up));
	if (!up)
		return NULL;
	if (nghttp2_session_client_new3(&up->s, w->up_cbs, up, w->up_opt, &w->small.mem) != 0) {
		free(up);
		return NULL;
	}
	iv[0] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
	/* Each stream starts small; stream.c grows it within its client's budget. */
	iv[1] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
					 sc_up_stream_window(cfg)};
	iv[2] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 1u << 20};
	/* No RFC 7540 priority tree: nothing to prioritize in a relay, and it is work. */
	iv[3] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
	nghttp2_submit_settings(up->s, NGHTTP2_FLAG_NONE, iv, 4);
	/*
	 * Flow control per stream only: the connection window is the maximum, so a client
	 * that reads nothing stalls its own streams, never the others sharing this
	 * connection. What a client can make us buffer is bounded by its streams' windows
	 * (stream.c: SC_UP_STREAM_WINDOW each, grown only within the client's budget).
	 */
	nghttp2_session_set_local_window_size(up->s, NGHTTP2_FLAG_NONE, 0, 0x7fffffff);
	up->dst = c->updst;
	up->outbound = c->outbound;
	up->next = w->ups;
	w->ups = up;
	return up_connect(w, up);
}

void sc_up_cancel(struct sc_stream *s, uint32_t err)
{
	struct sc_up *up = s->up;
	bool sent;

	if (!up || !up->s || s->up_closed)
		return;
	sent = nghttp2_session_find_stream(up->s, s->up_id) != NULL;
	nghttp2_submit_rst_stream(up->s, NGHTTP2_FLAG_NONE, s->up_id, err);
	if (sent)
		return; /* RST_STREAM goes out; up_stream_close follows */
	nghttp2_session_set_stream_user_data(up->s, s->up_id, NULL);
	if (up->cache == s)
		up->cache = NULL;
	s->up_closed = true;
	sc_up_stream_done(up);
}

void sc_up_stream_done(struct sc_up *up)
{
	if (up->nstreams && --up->nstreams == 0 && up->w)
		up->idle_ms = uv_now(&up->w->loop) ? uv_now(&up->w->loop) : 1;
}

/*
 * Every sweep: a pooled connection without streams for --idle-timeout gets GOAWAY and
 * closes once it is out (sc_worker_flush). all (the worker ends): every one closes now.
 */
void sc_ups_sweep(struct sc_worker *w, uint64_t now, bool all)
{
	uint64_t idle = w->px->cfg->idle_timeout_ms;
	bool said = false;

	for (struct sc_up *up = w->ups, *un; up; up = un) {
		un = up->next;
		if (all) {
			up_detach(up, NULL);
			continue;
		}
		if (up->state != UP_READY)
			continue;
		if (up->nstreams == 0 && up->idle_ms && now - up->idle_ms >= idle &&
		    nghttp2_session_check_request_allowed(up->s)) {
			nghttp2_session_terminate_session(up->s, NGHTTP2_NO_ERROR);
			said = true;
		}
	}
	if (said)
		sc_worker_flush(w);
}

/* ---- nghttp2 callbacks: downstream (server) ------------------------------------------ */

/*
 * nghttp2_session_get_stream_user_data() is a hash lookup, and a request's header
 * fields, DATA and END_STREAM arrive as a run of callbacks for one stream: the last
 * stream found is remembered per connection and direction. A hit is checked against the
 * stream's own ids and state; stream.c forgets a stream here before freeing it.
 */
static struct sc_stream *down_stream(struct sc_conn *c, nghttp2_session *ds, int32_t id)
{
	struct sc_stream *s = c->dcache;

	if (s && s->down_id == id && !s->down_closed)
		return s;
	s = nghttp2_session_get_stream_user_data(ds, id);
	if (s)
		c->dcache = s;
	return s;
}

static struct sc_stream *up_stream(struct sc_up *up, nghttp2_session *us, int32_t id)
{
	struct sc_stream *s = up->cache;

	if (s && s->up == up && s->up_id == id && !s->up_closed)
		return s;
	s = nghttp2_session_get_stream_user_data(us, id);
	/* A stream sent again (sc_stream_retry) or failed no longer belongs to this one. */
	if (!s || s->up != up || s->up_id != id)
		return NULL;
	up->cache = s;
	return s;
}

static void flood_window(struct sc_conn *c, uint64_t now)
{
	if (now - c->flood_window_ms >= 1000) {
		c->flood_window_ms = now;
		c->flood_count = 0;
		c->flood_streams = 0;
	}
}

static int down_begin_headers(nghttp2_session *ds, const nghttp2_frame *f, void *ud)
{
	struct sc_conn *c = ud;
	struct sc_stream *s;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	s = sc_stream_new(c, f->hd.stream_id);
	if (!s)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	flood_window(c, s->start_ms);
	c->flood_streams++;
	nghttp2_session_set_stream_user_data(ds, f->hd.stream_id, s);
	return 0;
}

static int down_header(nghttp2_session *ds, const nghttp2_frame *f, nghttp2_rcbuf *name,
		       nghttp2_rcbuf *value, uint8_t flags, void *ud)
{
	struct sc_conn *c = ud;
	struct sc_stream *s = down_stream(c, ds, f->hd.stream_id);
	struct sc_hdrs *h;
	(void)flags;

	if (!s || f->hd.type != NGHTTP2_HEADERS || s->hdr_too_big)
		return 0;
	h = f->headers.cat == NGHTTP2_HCAT_REQUEST ? &s->req_hdrs : &s->req_trailers;
	if (h->bytes + nghttp2_rcbuf_get_buf(name).len + nghttp2_rcbuf_get_buf(value).len + 32 >
	    c->w->px->cfg->max_header_list_bytes) {
		s->hdr_too_big = true;
		return 0;
	}
	if (sc_peer_is_header(nghttp2_rcbuf_get_buf(name).base, nghttp2_rcbuf_get_buf(name).len)) {
		/* Metadata exchange: kept aside, never forwarded nor seen by the policy (in
		 * trailers: dropped). It still counts against the header list limit. */
		h->bytes += nghttp2_rcbuf_get_buf(name).len + nghttp2_rcbuf_get_buf(value).len + 32;
		/* Outbound, the app's own claim is dropped: only this sidecar names the pod. */
		if (f->headers.cat != NGHTTP2_HCAT_REQUEST || c->outbound)
			return 0;
		if (s->npeer_hdr < UINT8_MAX)
			s->npeer_hdr++;
		if (!s->peer_hdr) {
			nghttp2_rcbuf_incref(value);
			s->peer_hdr = value;
		}
		return 0;
	}
	if (sc_hdrs_add(h, name, value) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	if (!s->path && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		nghttp2_vec n = nghttp2_rcbuf_get_buf(name);
		if (n.len == 5 && memcmp(n.base, ":path", 5) == 0) {
			nghttp2_rcbuf_incref(value);
			s->path = value;
		}
	}
	return 0;
}

/*
 * Control frames (PING, SETTINGS, WINDOW_UPDATE, empty DATA): at most
 * FLOOD_FRAMES_PER_SEC per second, plus FLOOD_FRAMES_PER_STREAM for each stream the client
 * opened in that second (a gRPC client announces a stream's receive window with a
 * WINDOW_UPDATE per call: a burst of 2,500 calls is not a flood).
 */
static bool flood_check(struct sc_conn *c)
{
	uint64_t now = uv_now(&c->w->loop);

	flood_window(c, now);
	if (++c->flood_count <= FLOOD_FRAMES_PER_SEC + FLOOD_FRAMES_PER_STREAM * c->flood_streams)
		return false;
	if (!c->limit_counted) {
		metrics_inc(sc_stats.lim_flood);
		c->limit_counted = true;
		if (warn_allowed(c->w))
			log_warn("flood",
				 "client sends too many control frames, closing its connection",
				 "{s:i, s:i}", "per_second_limit", FLOOD_FRAMES_PER_SEC,
				 "per_stream_opened", FLOOD_FRAMES_PER_STREAM);
	}
	nghttp2_session_terminate_session(c->ds, NGHTTP2_ENHANCE_YOUR_CALM);
	return true;
}

/*
 * Whether the client's reset of s (its RST_STREAM just arrived, s is not closed yet) is
 * premature: see PREMATURE_LIFETIME_MS.
 */
static bool premature(const struct sc_stream *s, uint64_t now)
{
	uint64_t life = now - s->start_ms;

	if (s->state == SS_HEADERS)
		return true; /* before the request was even decided */
	if (s->state == SS_REPLIED || s->state == SS_HELD || s->resp_eof ||
	    life >= PREMATURE_LIFETIME_MS)
		return false;
	return !(s->timeout_ms && life * 2 >= s->timeout_ms);
}

/* RST_STREAM from the client on stream id: count it, cut the connection off if need be. */
static void reset_check(struct sc_conn *c, nghttp2_session *ds, int32_t id)
{
	struct sc_stream *s = down_stream(c, ds, id);
	uint32_t closed;

	if (!s || s->down_closed || !premature(s, uv_now(&c->w->loop)))
		return;
	c->npremature++;
	closed = c->nclosed + 1; /* this one closes right after this callback */
	if (closed < PREMATURE_MIN_STREAMS || (uint64_t)c->npremature * 2 < closed ||
	    c->limit_counted)
		return;
	c->limit_counted = true;
	metrics_inc(sc_stats.lim_rapid_reset);
	if (warn_allowed(c->w))
		log_warn("flood",
			 "client resets most of its streams right after opening them (rapid "
			 "reset), closing its connection",
			 "{s:i, s:i}", "premature_resets", (int)c->npremature, "streams",
			 (int)closed);
	nghttp2_session_terminate_session(ds, NGHTTP2_ENHANCE_YOUR_CALM);
}

static int down_frame_recv(nghttp2_session *ds, const nghttp2_frame *f, void *ud)
{
	struct sc_conn *c = ud;
	struct sc_stream *s;

	switch (f->hd.type) {
	case NGHTTP2_PING:
	case NGHTTP2_SETTINGS:
		if (!(f->hd.flags & NGHTTP2_FLAG_ACK))
			flood_check(c);
		return 0;
	case NGHTTP2_RST_STREAM:
		reset_check(c, ds, f->hd.stream_id);
		return 0;
	case NGHTTP2_PRIORITY:
	case NGHTTP2_WINDOW_UPDATE:
		flood_check(c);
		return 0;
	case NGHTTP2_HEADERS:
	case NGHTTP2_DATA:
		break;
	default:
		return 0;
	}
	s = down_stream(c, ds, f->hd.stream_id);
	if (!s)
		return 0;
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
		s->req_eof = true;
		s->req_eof_hdrs =
		    f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST;
	}
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		sc_stream_headers_done(s);
		return 0;
	}
	if (f->hd.type == NGHTTP2_DATA && f->hd.length == 0 &&
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		flood_check(c); /* empty DATA frames cost us work and the client nothing */
	if (s->req_eof && s->state == SS_FORWARDED && s->up && !s->up_closed)
		nghttp2_session_resume_data(s->up->s, s->up_id);
	return 0;
}

static int down_data_chunk(nghttp2_session *ds, uint8_t flags, int32_t id, const uint8_t *d,
			   size_t len, void *ud)
{
	struct sc_conn *c = ud;
	struct sc_stream *s = down_stream(c, ds, id);
	size_t before;
	(void)flags;

	if (!s || s->state == SS_REPLIED || s->up_closed) {
		nghttp2_session_consume(ds, id, len);
		return 0;
	}
	before = s->req.bytes;
	if (sc_chunkq_append(&s->req, &c->w->pool, d, len) != 0) {
		/* Part may be queued: drop_req credits that, we credit the rest. */
		nghttp2_session_consume(ds, id, len - (s->req.bytes - before));
		sc_stream_drop_req(s);
		nghttp2_submit_rst_stream(ds, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
		return 0;
	}
	if (s->state == SS_FORWARDED && s->up)
		nghttp2_session_resume_data(s->up->s, s->up_id);
	return 0;
}

static int down_stream_close(nghttp2_session *ds, int32_t id, uint32_t err, void *ud)
{
	struct sc_conn *c = ud;
	struct sc_stream *s = down_stream(c, ds, id);

	if (!s)
		return 0;
	s->down_closed = true;
	if (++c->nclosed >= PREMATURE_WINDOW) {
		c->nclosed /= 2;
		c->npremature /= 2;
	}
	if (s->grpc_status < 0 && err != NGHTTP2_NO_ERROR) /* the client went away */
		s->grpc_status = sc_stream_reset_status(s, uv_now(&c->w->loop));
	if (s->up && !s->up_closed) {
		sc_stream_drop_resp(s); /* before a cancel closes it: credits the connection */
		sc_up_cancel(s, err == NGHTTP2_NO_ERROR ? NGHTTP2_CANCEL : err);
		sc_conn_dirty(c);
	}
	sc_stream_drop_req(s);
	sc_stream_drop_resp(s);
	if (s->timer && s->state == SS_HELD)
		log_debug("delay_dropped", "client went away while its RPC was held", NULL);
	sc_stream_maybe_free(s);
	return 0;
}

/* ---- nghttp2 callbacks: upstream (client) -------------------------------------------- */

static int up_header(nghttp2_session *us, const nghttp2_frame *f, nghttp2_rcbuf *name,
		     nghttp2_rcbuf *value, uint8_t flags, void *ud)
{
	struct sc_stream *s = up_stream(ud, us, f->hd.stream_id);
	struct sc_hdrs *h;
	nghttp2_vec n;
	(void)flags;

	if (!s || f->hd.type != NGHTTP2_HEADERS || s->down_closed)
		return 0;
	h = f->headers.cat == NGHTTP2_HCAT_HEADERS && s->resp_started ? &s->resp_trailers
								      : &s->resp_hdrs;
	if (sc_peer_is_header(nghttp2_rcbuf_get_buf(name).base, nghttp2_rcbuf_get_buf(name).len)) {
		/*
		 * Inbound: the app's claim is dropped (only this sidecar names this pod).
		 * Outbound: the destination sidecar's answer in the response headers is kept
		 * aside for the source-side labels and never reaches the app.
		 */
		if (s->c->outbound && h == &s->resp_hdrs) {
			if (s->npeer_hdr < UINT8_MAX)
				s->npeer_hdr++;
			if (!s->peer_hdr) {
				nghttp2_rcbuf_incref(value);
				s->peer_hdr = value;
			}
		}
		return 0;
	}
	if (sc_hdrs_add(h, name, value) != 0)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	n = nghttp2_rcbuf_get_buf(name);
	if (n.len == 11 && memcmp(n.base, "grpc-status", 11) == 0) {
		nghttp2_vec v = nghttp2_rcbuf_get_buf(value);
		int code = 0;
		for (size_t i = 0; i < v.len && i < 3; i++)
			code = code * 10 +
			       (v.base[i] >= '0' && v.base[i] <= '9' ? v.base[i] - '0' : 0);
		s->grpc_status = code > 16 ? 2 : code;
	}
	return 0;
}

static void nva_from(const struct sc_hdrs *h, nghttp2_nv *nv)
{
	for (uint32_t i = 0; i < h->n; i++) {
		nghttp2_vec n = nghttp2_rcbuf_get_buf(h->v[i].name);
		nghttp2_vec v = nghttp2_rcbuf_get_buf(h->v[i].value);
		/* No copy: resp_hdrs stays in the stream until it is freed (see to_nva). */
		nv[i] = (nghttp2_nv){n.base, v.base, n.len, v.len,
				     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
	}
}

static int up_frame_recv(nghttp2_session *us, const nghttp2_frame *f, void *ud)
{
	struct sc_up *up = ud;
	struct sc_conn *c;
	struct sc_stream *s;

	if (up->w && f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
		/* Applied by now. The app's limit also bounds a new connection's first
		 * flight, sent before its SETTINGS arrive (stream.c up_hdr_max). */
		up->settings_seen = true;
		if (!up->outbound)
			up->w->app_hdr_max = nghttp2_session_get_remote_settings(
			    us, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE);
		return 0;
	}
	if (!up->w || (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA))
		return 0;
	s = up_stream(up, us, f->hd.stream_id);
	if (!s || s->down_closed)
		return 0;
	c = s->c;
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		s->resp_eof = true;
	if (f->hd.type == NGHTTP2_HEADERS && !s->no_replay)
		sc_stream_replay_release(s); /* the app took the request: no retry now */
	if (f->hd.type == NGHTTP2_HEADERS && !s->resp_started) {
		nghttp2_nv stack[32], *nv;
		nghttp2_vec st;

		if (s->resp_hdrs.n == 0)
			return 0;
		st = nghttp2_rcbuf_get_buf(s->resp_hdrs.v[0].value);
		if (st.len == 3 && st.base[0] == '1') {
			sc_hdrs_clear(&s->resp_hdrs); /* 1xx: informational, not forwarded */
			return 0;
		}
		nv = s->resp_hdrs.n < 32 ? stack : malloc((s->resp_hdrs.n + 1) * sizeof(*nv));
		if (!nv)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		nghttp2_data_provider prov = sc_resp_provider;
		prov.source.ptr = s;
		nva_from(&s->resp_hdrs, nv);
		nghttp2_submit_response(c->ds, s->down_id, nv,
					s->resp_hdrs.n + sc_stream_peer_nv(s, &nv[s->resp_hdrs.n]),
					s->resp_eof ? NULL : &prov);
		if (nv != stack)
			free(nv);
		s->resp_started = true;
		sc_conn_dirty(c);
		return 0;
	}
	if (s->resp_eof && s->resp_started) {
		nghttp2_session_resume_data(c->ds, s->down_id);
		sc_conn_dirty(c);
	}
	return 0;
}

static int up_data_chunk(nghttp2_session *us, uint8_t flags, int32_t id, const uint8_t *d,
			 size_t len, void *ud)
{
	struct sc_up *up = ud;
	struct sc_stream *s = up_stream(up, us, id);
	struct sc_conn *c;
	size_t before;
	int r;
	(void)flags;

	if (!up->w || !s || s->down_closed || !s->resp_started) {
		nghttp2_session_consume(us, id, len);
		return 0;
	}
	c = s->c;
	before = s->resp.bytes;
	r = sc_chunkq_append(&s->resp, &c->w->pool, d, len);
	c->resp_bytes += s->resp.bytes - before; /* what did fit, also on failure */
	s->resp_in = len > UINT32_MAX - s->resp_in ? UINT32_MAX : s->resp_in + (uint32_t)len;
	if (r != 0) {
		/* What did fit is queued (credited when dropped); the rest is credited now. */
		nghttp2_session_consume(us, id, len - (s->resp.bytes - before));
		nghttp2_submit_rst_stream(us, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
		nghttp2_submit_rst_stream(c->ds, NGHTTP2_FLAG_NONE, s->down_id,
					  NGHTTP2_INTERNAL_ERROR);
		sc_conn_dirty(c);
		return 0;
	}
	sc_stream_resp_window(s);
	nghttp2_session_resume_data(c->ds, s->down_id);
	sc_conn_dirty(c);
	return 0;
}

/*
 * REFUSED_STREAM: the app reset the stream unprocessed, or it was above the
 * last-stream-id of the app's GOAWAY, or nghttp2 could not send its HEADERS because a
 * GOAWAY came first (nghttp2 closes both of those with that code; RFC 9113 sections 6.8,
 * 8.7): safe to send again, which sc_stream_retry does (on a new connection when this
 * one is going away). A stream is never freed here before nghttp2 closes it, since its
 * nghttp2 stream still points to it.
 */
static int up_stream_close(nghttp2_session *us, int32_t id, uint32_t err, void *ud)
{
	struct sc_up *up = ud;
	struct sc_stream *s = up_stream(up, us, id);

	if (!s)
		return 0;
	sc_up_stream_done(up);
	sc_conn_dirty(s->c);
	if (err == NGHTTP2_REFUSED_STREAM && sc_stream_retry(s))
		return 0;
	s->up_closed = true;
	if (!s->resp_eof && !s->down_closed) {
		sc_stream_up_failed(s, err == NGHTTP2_NO_ERROR ? NGHTTP2_INTERNAL_ERROR : err);
		return 0;
	}
	sc_stream_drop_req(s);
	sc_stream_maybe_free(s);
	return 0;
}

/*
 * nghttp2 ends a session itself when a client trips one of its own protections: the
 * stream reset rate limit ("rapid reset", CVE-2023-44487) queues GOAWAY INTERNAL_ERROR
 * without debug data; too many SETTINGS entries and similar floods queue GOAWAY
 * ENHANCE_YOUR_CALM. mem_recv reports neither, so they are counted when the GOAWAY goes
 * out. Our own GOAWAYs are NO_ERROR (drain, idle) or our flood limit, counted already.
 */
static int down_frame_send(nghttp2_session *ds, const nghttp2_frame *f, void *ud)
{
	struct sc_conn *c = ud;
	(void)ds;

	if (f->hd.type == NGHTTP2_GOAWAY)
		log_debug("goaway_sent", "GOAWAY to the client", "{s:i, s:i, s:i}", "error_code",
			  (int)f->goaway.error_code, "last_stream_id",
			  (int)f->goaway.last_stream_id, "streams", (int)c->nstreams);
	if (f->hd.type != NGHTTP2_GOAWAY || c->limit_counted)
		return 0;
	if (f->goaway.error_code == NGHTTP2_INTERNAL_ERROR && f->goaway.opaque_data_len == 0) {
		c->limit_counted = true;
		metrics_inc(sc_stats.lim_rapid_reset);
		if (warn_allowed(c->w))
			log_warn("flood",
				 "client resets streams too fast (rapid reset), closing "
				 "its connection",
				 NULL);
	} else if (f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM) {
		c->limit_counted = true;
		metrics_inc(sc_stats.lim_flood);
		if (warn_allowed(c->w))
			log_warn("flood",
				 "client trips an HTTP/2 flood limit, closing its connection",
				 NULL);
	}
	return 0;
}

/* nghttp2 says why it ends a session or drops a frame (connection errors, bad frames). */
static int down_error(nghttp2_session *ds, int code, const char *msg, size_t len, void *ud)
{
	(void)ds;
	(void)ud;
	log_debug("h2_error", "the client's HTTP/2 is not valid", "{s:s%, s:i}", "error", msg, len,
		  "code", code);
	return 0;
}

static int down_invalid_frame(nghttp2_session *ds, const nghttp2_frame *f, int err, void *ud)
{
	(void)ds;
	(void)ud;
	log_debug("h2_invalid_frame", "the client sent a frame that breaks HTTP/2",
		  "{s:i, s:i, s:s}", "type", (int)f->hd.type, "stream", (int)f->hd.stream_id,
		  "error", nghttp2_strerror(err));
	return 0;
}

/* ---- session setup -------------------------------------------------------------------- */

int sc_worker_callbacks_init(struct sc_worker *w)
{
	const struct sc_config *cfg = w->px->cfg;
	nghttp2_session_callbacks *cb;

	sc_small_init(&w->small);
	if (nghttp2_session_callbacks_new(&w->down_cbs) ||
	    nghttp2_session_callbacks_new(&w->up_cbs) || nghttp2_option_new(&w->down_opt) ||
	    nghttp2_option_new(&w->up_opt))
		return -ENOMEM;
	cb = w->down_cbs;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, down_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback2(cb, down_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, down_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, down_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, down_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, down_frame_send);
	nghttp2_session_callbacks_set_error_callback2(cb, down_error);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, down_invalid_frame);
	cb = w->up_cbs;
	nghttp2_session_callbacks_set_on_header_callback2(cb, up_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, up_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, up_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, up_stream_close);

	nghttp2_option_set_no_auto_window_update(w->down_opt, 1);
	nghttp2_option_set_max_send_header_block_length(w->down_opt, 1u << 20);
	nghttp2_option_set_max_outbound_ack(w->down_opt, 1000);
	nghttp2_option_set_max_settings(w->down_opt, 32);
	nghttp2_option_set_stream_reset_rate_limit(w->down_opt, RESET_BURST, RESET_PER_SEC);
	nghttp2_option_set_max_continuations(w->down_opt, 8);
	nghttp2_option_set_no_auto_window_update(w->up_opt, 1);
	/*
	 * Until the app's SETTINGS arrive, at most 100 streams on a connection (RFC 9113's
	 * recommended minimum; nghttp2 queues the rest): the pool shares a new connection
	 * among clients, and a burst above an app's limit before its SETTINGS came would
	 * make a strict app end the connection for every client on it.
	 */
	nghttp2_option_set_peer_max_concurrent_streams(w->up_opt, 100);
	(void)cfg;
	return 0;
}

void sc_worker_callbacks_free(struct sc_worker *w)
{
	nghttp2_session_callbacks_del(w->down_cbs);
	nghttp2_session_callbacks_del(w->up_cbs);
	nghttp2_option_del(w->down_opt);
	nghttp2_option_del(w->up_opt);
}

static int down_session_start(struct sc_conn *c)
{
	const struct sc_config *cfg = c->w->px->cfg;
	nghttp2_settings_entry iv[4];
	int32_t conn_window =
	    (int32_t)(cfg->max_pending_bytes * 2 > 0x7fffffffu ? 0x7fffffff
							       : cfg->max_pending_bytes * 2);

	if (nghttp2_session_server_new3(&c->ds, c->w->down_cbs, c, c->w->down_opt,
					&c->w->small.mem) != 0)
		return -ENOMEM;
	iv[0] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
					 cfg->max_concurrent_streams};
	iv[1] =
	    (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->max_pending_bytes};
	iv[2] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
					 cfg->max_header_list_bytes};
	iv[3] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1};
	if (nghttp2_submit_settings(c->ds, NGHTTP2_FLAG_NONE, iv, 4) != 0 ||
	    nghttp2_session_set_local_window_size(c->ds, NGHTTP2_FLAG_NONE, 0, conn_window) != 0)
		return -ENOMEM;
	return 0;
}

/* ---- passthrough ---------------------------------------------------------------------- */

static void pass_read_down(uv_stream_t *h, ssize_t nread, const uv_buf_t *b);
static void pass_read_up(uv_stream_t *h, ssize_t nread, const uv_buf_t *b);
static void pass_start(struct sc_conn *c);

static void pass_alloc_down(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct sc_conn *c = h->data;
	(void)hint;
	*b = uv_buf_init((char *)c->pipe_du->buf, sizeof(c->pipe_du->buf));
}

static void pass_alloc_up(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct sc_conn *c = h->data;
	(void)hint;
	*b = uv_buf_init((char *)c->pipe_ud->buf, sizeof(c->pipe_ud->buf));
}

static void pass_maybe_done(struct sc_conn *c)
{
	if (c->pipe_du->shut && c->pipe_ud->shut)
		sc_conn_close(c);
}

static void pass_shut_cb(uv_shutdown_t *req, int status)
{
	struct sc_conn *c = req->data;
	(void)status;
	if (c->mode == CM_PASS)
		pass_maybe_done(c);
}

static void pass_write_cb(uv_write_t *req, int status)
{
	struct sc_conn *c = req->data;
	bool du = req == &c->pipe_du->req;
	struct sc_pipe *p = du ? c->pipe_du : c->pipe_ud;

	if (status == UV_ECANCELED || c->mode != CM_PASS)
		return;
	if (status < 0) {
		sc_conn_close(c);
		return;
	}
	p->len = 0;
	c->last_active_ms = uv_now(&c->w->loop);
	if (du)
		uv_read_start((uv_stream_t *)&c->tcp, pass_alloc_down, pass_read_down);
	else
		uv_read_start((uv_stream_t *)c->ptcp, pass_alloc_up, pass_read_up);
}

/* Forward what one side read to the other; on EOF, half-close the other side. */
static void pass_forward(struct sc_conn *c, bool du, ssize_t nread)
{
	struct sc_pipe *p = du ? c->pipe_du : c->pipe_ud;
	uv_stream_t *from = du ? (uv_stream_t *)&c->tcp : (uv_stream_t *)c->ptcp;
	uv_stream_t *to = du ? (uv_stream_t *)c->ptcp : (uv_stream_t *)&c->tcp;

	if (nread == 0 || c->mode != CM_PASS)
		return;
	if (nread < 0) {
		uv_read_stop(from);
		if (nread != UV_EOF) {
			sc_conn_close(c);
			return;
		}
		p->eof = true;
		p->sreq.data = c;
		if (uv_shutdown(&p->sreq, to, pass_shut_cb) < 0) {
			sc_conn_close(c);
			return;
		}
		p->shut = true;
		return;
	}
	uv_buf_t b = uv_buf_init((char *)p->buf, (unsigned)nread);
	p->len = (size_t)nread;
	p->req.data = c;
	uv_read_stop(from);
	if (uv_write(&p->req, to, &b, 1, pass_write_cb) < 0)
		sc_conn_close(c);
}

static void pass_read_down(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
	(void)b;
	pass_forward(h->data, true, nread);
}

static void pass_read_up(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
	(void)b;
	pass_forward(h->data, false, nread);
}

static void pass_connect_cb(uv_connect_t *req, int status)
{
	struct sc_conn *c = req->data;
	uv_buf_t b;

	if (status == UV_ECANCELED || c->mode != CM_PASS)
		return;
	if (status < 0) {
		metrics_inc(sc_stats.upstream_connect_failed);
		if (c->outbound)
			sc_outbound_reset(c); /* the app sees a reset, not an empty reply */
		else
			sc_conn_close(c);
		return;
	}
	c->pconnected = true;
	uv_tcp_nodelay(c->ptcp, 1);
	uv_read_start((uv_stream_t *)c->ptcp, pass_alloc_up, pass_read_up);
	/* The bytes peeked while looking for the preface go first. */
	b = uv_buf_init((char *)c->pipe_du->buf, (unsigned)c->pipe_du->len);
	c->pipe_du->req.data = c;
	if (uv_write(&c->pipe_du->req, (uv_stream_t *)c->ptcp, &b, 1, pass_write_cb) < 0)
		sc_conn_close(c);
}

void sc_conn_passthrough(struct sc_conn *c)
{
	if (c->mode == CM_PEEK)
		pass_start(c);
}

static void pass_start(struct sc_conn *c)
{
	if (c->tls) {
		/* Sidecars speak only HTTP/2 inside mTLS (ALPN h2): anything else is closed. */
		log_debug("tls_not_h2", "no HTTP/2 preface inside TLS, closing", NULL);
		sc_conn_close(c);
		return;
	}
	/* Outbound never refuses: authorization is the destination's sidecar's job. */
	if (!c->outbound && !sc_gate_admit_passthrough(c))
		return; /* refused: gate.c answered or closed it */
	c->mode = CM_PASS;
	c->pass_start_ms = uv_now(&c->w->loop);
	metrics_inc(sc_stats.passthrough_conns);
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->pipe_du = calloc(1, sizeof(*c->pipe_du));
	c->pipe_ud = calloc(1, sizeof(*c->pipe_ud));
	c->ptcp = calloc(1, sizeof(*c->ptcp));
	if (!c->pipe_du || !c->pipe_ud || !c->ptcp) {
		sc_conn_close(c);
		return;
	}
	if (c->hello) { /* the app's own TLS: its ClientHello so far goes first */
		memcpy(c->pipe_du->buf, c->hello, c->nhello);
		c->pipe_du->len = c->nhello;
		free(c->hello);
		c->hello = NULL;
	} else {
		memcpy(c->pipe_du->buf, c->peek, c->npeek);
		c->pipe_du->len = c->npeek;
	}
	uv_tcp_init(&c->w->loop, c->ptcp);
	c->ptcp->data = c;
	c->nhandles++;
	c->pcreq.data = c;
	if (uv_tcp_connect(&c->pcreq, c->ptcp, (const struct sockaddr *)&c->updst,
			   pass_connect_cb) < 0)
		sc_conn_close(c);
}

/* ---- downstream socket ------------------------------------------------------------------ */

static void down_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct sc_conn *c = h->data;
	(void)hint;
	if (c->hello)
		*b =
		    uv_buf_init((char *)c->hello + c->nhello, (unsigned)(SC_HELLO_MAX - c->nhello));
	else if (c->mode == CM_PEEK && !c->tls)
		*b = uv_buf_init((char *)c->peek + c->npeek,
				 (unsigned)(SC_H2_PREFACE_LEN - c->npeek));
	else
		*b = uv_buf_init((char *)c->w->rbuf, sizeof(c->w->rbuf));
}

/*
 * Inbound mTLS: decrypt what the client sent and hand the plaintext to sc_conn_feed, as
 * if it had come from the socket. The handshake's own bytes go out at once; a failed
 * handshake (no client certificate, another CA, expired, no SPIFFE ID of our trust
 * domain, no ALPN h2) closes the connection after the alert, counted and logged.
 */
static void tls_down_pump(struct sc_conn *c)
{
	struct sc_worker *w = c->w;
	int r;

	if (!sc_tls_established(c->tls)) {
		r = sc_tls_handshake(c->tls);
		if (sc_tls_flush_raw(w, (uv_stream_t *)&c->tcp, c->tls, &c->out, down_write_cb) <
		    0) {
			sc_conn_close(c);
			return;
		}
		if (r == SC_TLS_AGAIN)
			return;
		if (r < 0) {
			metrics_inc(sc_stats.tls_in_fail);
			if (warn_allowed(w)) {
				char peer[64];
				if (uv_ip_name((const struct sockaddr *)&c->peer, peer,
					       sizeof(peer)))
					snprintf(peer, sizeof(peer), "?");
				log_warn("tls_handshake_failed",
					 "inbound mTLS handshake failed, closing",
					 "{s:s, s:s, s:s}", "reason", sc_tls_strerror(r), "detail",
					 sc_tls_detail(c->tls), "peer", peer);
			}
			sc_conn_close(c);
			return;
		}
		c->mtls = true;
		metrics_inc(sc_stats.tls_in_ok);
	}
	for (;;) {
		ssize_t n = sc_tls_read(c->tls, w->rbuf, sizeof(w->rbuf));
		if (n == 0)
			return;
		if (n < 0) {
			sc_conn_close(c);
			return;
		}
		sc_conn_feed(c, w->rbuf, (size_t)n);
		if (c->mode == CM_CLOSING || c->mode == CM_REFUSED)
			return;
	}
}

static void tls_down_start(struct sc_conn *c)
{
	struct sc_idgen *g = sc_identity_current();

	if (!g) {
		/*
		 * No certificate (yet, or expired): nothing to terminate TLS with. A fatal
		 * internal_error alert record tells the caller's sidecar this is a TLS peer
		 * that failed (UNAVAILABLE), not a server without sidecar (plaintext).
		 */
		static const uint8_t alert[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50};
		uv_buf_t b = uv_buf_init((char *)(uintptr_t)alert, sizeof(alert));
		if (!c->w->test_write)
			(void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		metrics_inc(sc_stats.tls_in_fail);
		log_debug("tls_no_certificate", "a TLS client came before we hold a certificate",
			  NULL);
		sc_conn_close(c);
		return;
	}
	c->tls = sc_tls_new(g, true);
	sc_idgen_unref(g);
	if (!c->tls || sc_tls_feed(c->tls, c->hello, c->nhello) != 0) {
		sc_conn_close(c);
		return;
	}
	free(c->hello);
	c->hello = NULL;
	c->npeek = 0;
	tls_down_pump(c);
}

/*
 * An inbound connection that starts with a TLS record: a sidecar's ClientHello (ALPN
 * mark, tls.h) is terminated here; any other TLS client is the app's own TLS and goes on
 * as a connection that is not HTTP/2 (STRICT refuses it, else the passthrough rules).
 */
static void hello_decide(struct sc_conn *c)
{
	enum sc_hello h = sc_tls_hello_classify(c->hello, c->nhello, SC_HELLO_MAX);

	if (h == SC_HELLO_MORE)
		return;
	if (h == SC_HELLO_OURS) {
		tls_down_start(c);
		return;
	}
	if (!sc_gate_admit_plaintext(c))
		return;
	pass_start(c);
}

static void tls_down_in(struct sc_conn *c, const uint8_t *d, size_t n)
{
	if (sc_tls_feed(c->tls, d, n) != 0) {
		sc_conn_close(c);
		return;
	}
	tls_down_pump(c);
}

static void down_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
	struct sc_conn *c = h->data;
	const uint8_t *data = (const uint8_t *)b->base;

	if (nread == 0 || c->mode == CM_CLOSING)
		return;
	if (nread < 0) {
		sc_conn_close(c);
		return;
	}
	if (c->tls) {
		tls_down_in(c, data, (size_t)nread);
		return;
	}
	if (c->hello) {
		c->nhello += (size_t)nread;
		hello_decide(c);
		return;
	}
	if (c->mode == CM_PEEK) {
		bool first = c->npeek == 0;
		c->npeek += (size_t)nread;
		if (first && !c->outbound) {
			/* A TLS record starts with 0x16 (handshake): maybe mTLS from a sidecar. */
			if (c->peek[0] == 0x16 && sc_identity_enabled()) {
				c->hello = malloc(SC_HELLO_MAX);
				if (!c->hello) {
					sc_conn_close(c);
					return;
				}
				memcpy(c->hello, c->peek, c->npeek);
				c->nhello = c->npeek;
				hello_decide(c);
				return;
			}
			if (!sc_gate_admit_plaintext(c))
				return; /* STRICT: refused (gate.c) */
		}
		sc_conn_feed(c, NULL, 0);
		return;
	}
	sc_conn_feed(c, data, (size_t)nread);
}

/*
 * Walk the client's frames (headers only, payloads skipped) alongside nghttp2, for what
 * it does not do for us:
 * - A PRIORITY frame on stream 0 is a connection error (RFC 9113 section 6.3), but with
 *   SETTINGS_NO_RFC7540_PRIORITIES nghttp2 skips PRIORITY frames unchecked.
 * - Once our last GOAWAY is out and no stream is left, nghttp2 reads nothing more, yet a
 *   PING must still get its ACK: while lingering (c->linger_ms) the bytes go only through
 *   here, and a complete PING is answered.
 * - grpcio, when a call's deadline passes before its HEADERS went out, may send
 *   RST_STREAM for that stream id, never opened. RFC 9113 section 6.4 makes that a
 *   connection error, which would fail every other call on the connection: the frame is
 *   dropped instead (grpc-go's server ignores it too). It costs us nothing.
 * Goes through d[0..n) up to the first such event; returns how many bytes it went
 * through, of which the first *feed go to nghttp2 (the rest are dropped). *bad: a
 * PRIORITY on stream 0 starts at d + *feed (the connection ends there).
 */
static size_t frames_walk(struct sc_conn *c, const uint8_t *d, size_t n, size_t *feed, bool *bad)
{
	size_t i = 0;

	*bad = false;
	if (c->fdrop) {
		size_t take = c->fleft < n ? c->fleft : n;
		c->fleft -= (uint32_t)take;
		c->fdrop = c->fleft > 0;
		*feed = 0;
		return take;
	}
	while (i < n) {
		uint32_t sid;

		if (c->fleft) {
			size_t take = c->fleft < n - i ? c->fleft : n - i;
			bool ping = c->fh[3] == NGHTTP2_PING && !(c->fh[4] & NGHTTP2_FLAG_ACK) &&
				    c->fh[0] == 0 && c->fh[1] == 0 && c->fh[2] == 8;

			if (ping)
				memcpy(c->ping + 8 - c->fleft, d + i, take);
			c->fleft -= (uint32_t)take;
			i += take;
			if (ping && c->fleft == 0 && c->linger_ms)
				nghttp2_submit_ping(c->ds, NGHTTP2_FLAG_ACK, c->ping);
			continue;
		}
		c->fh[c->nfh++] = d[i++];
		if (c->nfh < sizeof(c->fh))
			continue;
		c->nfh = 0;
		c->fleft = (uint32_t)c->fh[0] << 16 | (uint32_t)c->fh[1] << 8 | c->fh[2];
		sid = ((uint32_t)c->fh[5] & 0x7f) << 24 | (uint32_t)c->fh[6] << 16 |
		      (uint32_t)c->fh[7] << 8 | c->fh[8];
		if (c->fh[3] == NGHTTP2_HEADERS && sid > c->max_sid)
			c->max_sid = sid;
		if (c->fh[3] == NGHTTP2_PRIORITY && sid == 0) {
			*feed = i >= sizeof(c->fh) ? i - sizeof(c->fh) : 0;
			*bad = true;
			return n;
		}
		if (c->fh[3] == NGHTTP2_RST_STREAM && sid > c->max_sid && (sid & 1) &&
		    c->fleft == 4 && i >= sizeof(c->fh) && !c->linger_ms) {
			*feed = i - sizeof(c->fh);
			c->fdrop = true;
			return i;
		}
	}
	*feed = n;
	return n;
}

/*
 * Bytes from the client. In CM_PEEK the socket reads straight into c->peek (then d is
 * NULL); other callers' bytes are copied there first. Decides between HTTP/2 and
 * passthrough once the preface is complete or has been contradicted.
 */
void sc_conn_feed(struct sc_conn *c, const uint8_t *d, size_t n)
{
	ssize_t rv;
	bool bad;

	if (c->mode == CM_CLOSING || c->mode == CM_PASS || c->mode == CM_REFUSED)
		return;
	c->last_active_ms = uv_now(&c->w->loop);
	if (c->mode == CM_PEEK) {
		size_t take = 0;
		int m;

		if (d) {
			take = n < SC_H2_PREFACE_LEN - c->npeek ? n : SC_H2_PREFACE_LEN - c->npeek;
			memcpy(c->peek + c->npeek, d, take);
			c->npeek += take;
		}
		m = sc_h2_preface_check(c->peek, c->npeek);
		if (m < 0) {
			pass_start(c);
			return;
		}
		if (m == 0)
			return;
		if (down_session_start(c) != 0) {
			sc_conn_close(c);
			return;
		}
		c->mode = CM_H2;
		rv = nghttp2_session_mem_recv(c->ds, c->peek, c->npeek);
		if (rv < 0 || !d || take == n) {
			n = 0;
		} else {
			d += take;
			n -= take;
		}
	} else {
		rv = 0;
	}
	while (rv >= 0 && n) {
		size_t feed, went = frames_walk(c, d, n, &feed, &bad);

		if (feed && !c->linger_ms)
			rv = nghttp2_session_mem_recv(c->ds, d, feed);
		if (rv >= 0 && bad) {
			log_debug("h2_error",
				  "PRIORITY frame on stream 0 (RFC 9113 section 6.3), "
				  "closing with PROTOCOL_ERROR",
				  NULL);
			nghttp2_session_terminate_session(c->ds, NGHTTP2_PROTOCOL_ERROR);
			break;
		}
		d += went;
		n -= went;
	}
	if ((rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) &&
	    !c->limit_counted) {
		c->limit_counted = true;
		metrics_inc(sc_stats.lim_flood);
		if (warn_allowed(c->w))
			log_warn("flood", "client floods frames (ACKs, CONTINUATIONs), closing it",
				 NULL);
	}
	if (rv < 0) {
		log_debug("h2_error", "bad HTTP/2 from the client, closing", "{s:s}", "error",
			  nghttp2_strerror((int)rv));
		sc_conn_close(c);
		return;
	}
	sc_conn_dirty(c);
	sc_worker_flush_soon(c->w);
}

struct sc_conn *sc_conn_new(struct sc_worker *w)
{
	struct sc_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->w = w;
	c->mode = CM_PEEK;
	uv_tcp_init(&w->loop, &c->tcp);
	c->tcp.data = c;
	c->out.req.data = c;
	c->nhandles = 1;
	c->prev = NULL;
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	atomic_fetch_add(&w->px->nconns, 1);
	metrics_add(sc_stats.active_conns, 1);
	c->last_active_ms = uv_now(&w->loop);
	return c;
}

void sc_conn_accept(struct sc_worker *w, uv_stream_t *server)
{
	struct sc_proxy *px = w->px;
	struct sc_conn *c = sc_conn_new(w);
	int namelen = sizeof(c->peer);
	uv_os_fd_t fd;

	if (!c)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		sc_conn_close(c);
		return;
	}
	if (atomic_load(&px->nconns) > px->cfg->max_connections || w->draining) {
		if (!w->draining)
			metrics_inc(sc_stats.lim_conns);
		sc_conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &namelen);
	c->accepted_ms = uv_now(&w->loop);
	if (server == (uv_stream_t *)&w->olistener) {
		c->outbound = true;
		if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || sc_outbound_target(c, fd) != 0) {
			sc_conn_close(c);
			return;
		}
	} else if (px->cfg->original_dst) {
		/*
		 * Connect to the address the client asked for (the pod IP, either family), not
		 * to loopback: what the app binds to 127.0.0.1 / ::1 only stays private.
		 */
		if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
		    sc_original_dst(fd, &c->updst) != 0) {
			log_debug("no_original_dst", "connection was not redirected, closing",
				  NULL);
			sc_conn_close(c);
			return;
		}
		if (sc_addr_is_loopback(&c->updst)) {
			metrics_inc(sc_stats.loopback_dst_refused);
			log_debug("loopback_original_dst",
				  "the redirected connection was going to a loopback address; "
				  "refused so loopback-only listeners stay private",
				  NULL);
			sc_conn_close(c);
			return;
		}
		if (!sc_addr_is_own(fd, &c->updst)) {
			metrics_inc(sc_stats.foreign_dst_refused);
			log_debug("foreign_original_dst",
				  "the redirected connection was going to an address that is not "
				  "this pod's; refused so the proxy is no relay",
				  NULL);
			sc_conn_close(c);
			return;
		}
		c->updst_len = c->updst.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							      : sizeof(struct sockaddr_in);
	} else {
		memcpy(&c->updst, &px->upstream, px->upstream_len);
		c->updst_len = px->upstream_len;
	}
	c->last_active_ms = uv_now(&w->loop);
	if (uv_read_start((uv_stream_t *)&c->tcp, down_alloc_cb, down_read_cb) != 0)
		sc_conn_close(c);
}

/* ---- closing ----------------------------------------------------------------------------- */

static void conn_close_cb(uv_handle_t *h)
{
	struct sc_conn *c = h->data;

	if (--c->nhandles > 0)
		return;
	free(c->out.buf);
	sc_tls_free(c->tls);
	free(c->hello);
	free(c->out_self_id);
	free(c->out_peer_id);
	free(c->pipe_du);
	free(c->pipe_ud);
	free(c->ptcp);
	free(c);
}

/*
 * Tear the connection down now: fail the upstream, free every stream, close the sockets.
 * Idempotent. The memory goes in the close callbacks.
 */
void sc_conn_close(struct sc_conn *c)
{
	struct sc_worker *w = c->w;

	if (c->mode == CM_CLOSING)
		return;
	c->mode = CM_CLOSING;
	/*
	 * Streams are freed below; the shared upstreams forget them first: a stream still
	 * open there is reset (the app sees the cancellation) and no longer points here.
	 */
	bool kick = false;

	for (struct sc_stream *s = c->streams; s; s = s->next) {
		struct sc_up *up = s->up;
		if (up && up->s && !s->up_closed) {
			kick = true;
			sc_stream_drop_resp(s); /* credits the shared connection */
			sc_up_cancel(s, NGHTTP2_CANCEL);
			if (!s->up_closed) {
				nghttp2_session_set_stream_user_data(up->s, s->up_id, NULL);
				sc_up_stream_done(up);
			}
		}
		if (up && up->cache == s)
			up->cache = NULL;
		s->up = NULL;
	}
	if (c->dirty) {
		for (struct sc_conn **pp = &w->dirty; *pp; pp = &(*pp)->dirty_next) {
			if (*pp == c) {
				*pp = c->dirty_next;
				break;
			}
		}
		c->dirty = false;
	}
	/* The resets go out with the next flush: now if one runs, else in the next turn. */
	if (kick && w->flushing)
		w->kick = true;
	else if (kick && !w->test_write && !uv_is_closing((uv_handle_t *)&w->wake))
		uv_async_send(&w->wake);
	while (c->streams) {
		struct sc_stream *s = c->streams;
		s->down_closed = s->up_closed = true;
		if (s->grpc_status < 0)
			s->grpc_status = sc_stream_reset_status(s, uv_now(&c->w->loop));
		sc_stream_maybe_free(s);
	}
	nghttp2_session_del(c->ds);
	c->ds = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	atomic_fetch_sub(&w->px->nconns, 1);
	metrics_add(sc_stats.active_conns, -1);
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	if (c->ptcp)
		uv_close((uv_handle_t *)c->ptcp, conn_close_cb);
}

/*
 * Graceful GOAWAY in two steps, as RFC 9113 section 6.8 suggests: first a notice
 * (last-stream-id 2^31-1), so a request already on the wire is still served; a second
 * later the real GOAWAY, after which the session ends once its streams are done.
 */
#define GOAWAY_GRACE_MS 1000

static void goaway_step(struct sc_conn *c, uint64_t now)
{
	if (c->mode != CM_H2 || c->goaway_sent)
		return;
	if (!c->notice_ms) {
		nghttp2_submit_shutdown_notice(c->ds);
		c->notice_ms = now ? now : 1;
	} else if (now - c->notice_ms >= GOAWAY_GRACE_MS) {
		nghttp2_submit_goaway(c->ds, NGHTTP2_FLAG_NONE,
				      nghttp2_session_get_last_proc_stream_id(c->ds),
				      NGHTTP2_NO_ERROR, NULL, 0);
		c->goaway_sent = true;
	} else {
		return;
	}
	sc_conn_flush(c);
}

/* SIGTERM: tell the client to open no new streams; in-flight ones finish. */
void sc_conn_drain(struct sc_conn *c)
{
	if (c->mode == CM_PEEK)
		sc_conn_close(c);
	else
		goaway_step(c, uv_now(&c->w->loop));
}

/* Called every sweep: the idle timeout, and the second GOAWAY step of a drain. */
void sc_conn_idle_check(struct sc_conn *c, uint64_t now)
{
	uint64_t idle = c->w->px->cfg->idle_timeout_ms;

	if (c->mode == CM_CLOSING)
		return;
	if (c->mode == CM_REFUSED && now - c->last_active_ms >= SC_GATE_LINGER_MS) {
		sc_conn_close(c);
		return;
	}
	if (c->linger_ms) {
		if (now - c->linger_ms >= LINGER_MS)
			sc_conn_close(c);
		return;
	}
	if (c->mode == CM_PASS) {
		sc_gate_recheck_passthrough(c); /* may close it */
		if (c->mode == CM_CLOSING)
			return;
	}
	if (c->w->draining) {
		goaway_step(c, now);
		return;
	}
	if (c->nstreams > 0 || now - c->last_active_ms < idle)
		return;
	if (c->mode == CM_H2)
		goaway_step(c, now);
	else
		sc_conn_close(c);
}
