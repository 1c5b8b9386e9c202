/*
 * The caller's side of the proxy: connections the app opened and init's nat OUTPUT rule
 * redirected to --outbound-listen (15001).
 *
 * Each one is sent to its original destination (SO_ORIGINAL_DST), whatever it carries:
 * prior-knowledge HTTP/2 (gRPC) goes through the same two nghttp2 sessions as inbound
 * traffic, one RPC at a time, so each call is counted on this side and client-side
 * faults (policy entries with match.destinations) apply to it; anything else (TLS,
 * HTTP/1.1, a database protocol) is relayed byte for byte. A connection that says nothing
 * for SC_OUT_PEEK_MS (server-speaks-first protocols: MySQL, SMTP, SSH) is relayed too.
 *
 * What it never does: authorize (that is the destination's sidecar's job, and a bad
 * policy file does not stop the app's outgoing calls either), authenticate tokens, refuse
 * a non-HTTP/2 connection, or accept a connection that was not redirected to it or whose
 * original destination is this listener itself (a loop).
 *
 * Designed so that issue 16's mTLS can be added here without touching the rest: the
 * upstream address is chosen per connection in sc_outbound_target(), and the upstream
 * session is created by sc_up_get() from c->updst; originating TLS 1.3 + ALPN h2 to a
 * destination known to run a sidecar is a transport under that session.
 */
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sidecar/identity.h"
#include "sidecar/intercept.h"
#include "sidecar/proxy.h"

#define SC_OUT_PEEK_MS 200

static struct {
	struct metrics_family *conns; /* result */
	struct metrics_series *accepted, *not_redirected, *loop, *silent;
	const char *ns; /* POD_NAMESPACE, or NULL */
} O;

int sc_outbound_init(const struct sc_config *cfg)
{
	static const char *const lb[] = {"result"};
	const char *v[1];
	(void)cfg;

	O.conns = metrics_counter(sc_stats.reg, "grpcguard_sidecar_outbound_connections_total",
				  "connections from the app to the outbound listener, by what "
				  "became of them (accepted, not_redirected, loop); silent: "
				  "accepted ones relayed as TCP because they sent nothing first",
				  1, lb);
	if (!O.conns)
		return -ENOMEM;
	v[0] = "accepted";
	O.accepted = metrics_series(O.conns, v);
	v[0] = "not_redirected";
	O.not_redirected = metrics_series(O.conns, v);
	v[0] = "loop";
	O.loop = metrics_series(O.conns, v);
	v[0] = "silent";
	O.silent = metrics_series(O.conns, v);
	O.ns = getenv("POD_NAMESPACE");
	if (O.ns && !*O.ns)
		O.ns = NULL;
	return 0;
}

/* Whether a is loopback, unspecified or one of this network namespace's addresses. */
static bool is_local(const struct sockaddr_storage *a)
{
	struct ifaddrs *ifs = NULL;
	bool local = false;

	if (a->ss_family == AF_INET) {
		uint32_t ip = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
		if ((ip >> 24) == 127 || ip == 0)
			return true;
	} else if (a->ss_family == AF_INET6) {
		const struct in6_addr *ip = &((const struct sockaddr_in6 *)a)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(ip) || IN6_IS_ADDR_UNSPECIFIED(ip))
			return true;
	}
	if (getifaddrs(&ifs) != 0)
		return true; /* cannot tell: assume the worst, refuse */
	for (struct ifaddrs *i = ifs; i && !local; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;
		if (!sa || sa->sa_family != a->ss_family)
			continue;
		if (sa->sa_family == AF_INET)
			local = ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
				((const struct sockaddr_in *)a)->sin_addr.s_addr;
		else
			local = memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
				       &((const struct sockaddr_in6 *)a)->sin6_addr,
				       sizeof(struct in6_addr)) == 0;
	}
	freeifaddrs(ifs);
	return local;
}

/*
 * Where an accepted outbound connection goes. Refuses (-1, counted) one that was not
 * redirected (someone connected to the port directly: there is no destination to relay
 * to) and one whose original destination is this listener (it would loop forever).
 */
int sc_outbound_target(struct sc_conn *c, int fd)
{
	struct sockaddr_storage od;
	uint16_t port;
	int r;

	r = sc_original_dst(fd, &od);
	if (r != 0) {
		metrics_inc(O.not_redirected);
		log_debug("outbound_not_redirected",
			  "a connection to the outbound port was not redirected by init's OUTPUT "
			  "rule; closing it",
			  "{s:s}", "error", strerror(-r));
		return -1;
	}
	port = ntohs(od.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&od)->sin6_port
					      : ((struct sockaddr_in *)&od)->sin_port);
	if (port == c->w->px->outbound_port && is_local(&od)) {
		metrics_inc(O.loop);
		log_warn("outbound_loop",
			 "a connection's original destination is the outbound listener itself; "
			 "closing it (check that init excludes the proxy's uid)",
			 "{s:i}", "port", (int)port);
		return -1;
	}
	memcpy(&c->updst, &od, sizeof(od));
	c->updst_len =
	    od.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	metrics_inc(O.accepted);
	return 0;
}

void sc_outbound_reset(struct sc_conn *c)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	uv_os_fd_t fd;

	/* SO_LINGER 0: close() sends RST, as the refusing destination did. */
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	sc_conn_close(c);
}

/*
 * Every 100 ms per worker: relay as TCP the outbound connections that have sent nothing
 * for SC_OUT_PEEK_MS, and reset the relayed ones whose destination did not accept within
 * --upstream-connect-timeout (the kernel would keep retrying the SYN for minutes while the
 * app, already connected to us, waits).
 */
void sc_outbound_peek_sweep(struct sc_worker *w, uint64_t now)
{
	uint64_t connect_ms = w->px->cfg->upstream_connect_timeout_ms;

	for (struct sc_conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		if (!c->outbound)
			continue;
		if (c->mode == CM_PEEK && now - c->accepted_ms >= SC_OUT_PEEK_MS) {
			metrics_inc(O.silent);
			sc_conn_passthrough(c);
		} else if (c->mode == CM_PASS && !c->pconnected &&
			   now - c->pass_start_ms >= connect_ms) {
			metrics_inc(sc_stats.upstream_connect_failed);
			sc_outbound_reset(c);
		}
	}
}

/* ---- one outbound RPC ---------------------------------------------------------------- */

/* The value of request header `name` (borrowed from the stream), or NULL. */
static const uint8_t *req_header(const struct sc_stream *s, const char *name, size_t *len)
{
	size_t nlen = strlen(name);

	for (uint32_t i = 0; i < s->req_hdrs.n; i++) {
		nghttp2_vec k = nghttp2_rcbuf_get_buf(s->req_hdrs.v[i].name);
		if (k.len == nlen && memcmp(k.base, name, nlen) == 0) {
			nghttp2_vec v = nghttp2_rcbuf_get_buf(s->req_hdrs.v[i].value);
			*len = v.len;
			return v.base;
		}
	}
	return NULL;
}

/*
 * Request headers complete on an outbound connection. No authorization, no tokens: only
 * the client-side faults whose destinations match :authority (policy_evaluate with
 * POLICY_OUTBOUND), with the inbound side's delay/abort semantics: held before it is
 * forwarded, dropped when the caller resets (its deadline), abort after the delay.
 */
void sc_outbound_headers_done(struct sc_stream *s)
{
	struct sc_conn *c = s->c;
	struct sc_worker *w = c->w;
	struct policy_decision d = {0};
	struct policy_request rq = {0};
	const uint8_t *v;
	size_t vlen = 0;
	uint64_t now = uv_now(&w->loop), t;

	if (s->hdr_too_big) {
		metrics_inc(sc_stats.lim_headers);
		sc_stream_reply(s, 8, "request header list too large (max-header-list-bytes)");
		return;
	}
	if (!s->path) {
		sc_stream_reply(s, 13, "missing :path");
		return;
	}
	if ((v = req_header(s, "grpc-timeout", &vlen)) &&
	    sc_grpc_timeout_parse((const char *)v, vlen, &t) == 0) {
		s->deadline_ms = now + t;
		s->timeout_ms = t;
	}
	s->snap = sc_state_current();
	if (!s->snap->no_policy) {
		nghttp2_vec path = nghttp2_rcbuf_get_buf(s->path);

		rq.direction = POLICY_OUTBOUND;
		rq.method = (const char *)path.base;
		rq.method_len = path.len;
		rq.peer = (const struct sockaddr *)&c->peer;
		rq.labels = s->snap->labels;
		rq.local_namespace = O.ns;
		rq.authority = (const char *)req_header(s, ":authority", &rq.authority_len);
		if (!rq.authority)
			rq.authority = (const char *)req_header(s, "host", &rq.authority_len);
		/* Headers for match.headers; the scratch array is the worker's (one loop). */
		if (w->scratch_cap < s->req_hdrs.n) {
			struct policy_header *nh =
			    realloc(w->scratch_hdrs, s->req_hdrs.n * sizeof(*nh));
			if (!nh) {
				sc_stream_reply(s, 8, "out of memory");
				return;
			}
			w->scratch_hdrs = nh;
			w->scratch_cap = s->req_hdrs.n;
		}
		for (uint32_t i = 0; i < s->req_hdrs.n; i++) {
			nghttp2_vec k = nghttp2_rcbuf_get_buf(s->req_hdrs.v[i].name);
			nghttp2_vec hv = nghttp2_rcbuf_get_buf(s->req_hdrs.v[i].value);
			w->scratch_hdrs[i] = (struct policy_header){(const char *)k.base, k.len,
								    (const char *)hv.base, hv.len};
		}
		rq.headers = w->scratch_hdrs;
		rq.nheaders = s->req_hdrs.n;
		policy_evaluate(s->snap->policy, &rq, sc_rng_percent, &w->rng, &d);
	}
	sc_stream_apply_faults(s, &d); /* the same hold/abort/forward as inbound */
}

/* ---- mTLS origination (issue 16; docs/identity.md "How a caller finds a sidecar") -------- */

bool sc_outbound_tls_start(struct sc_up *up)
{
	struct sc_worker *w = up->w;
	struct sc_idgen *g;
	int r;

	if (sc_negcache_has(&w->negcache, &up->dst, uv_now(&w->loop)))
		return false; /* answered in plaintext less than a minute ago: no sidecar */
	g = sc_identity_current();
	if (!g)
		return false; /* no certificate held: we cannot prove who we are */
	up->tls = sc_tls_new(g, false);
	sc_idgen_unref(g);
	if (!up->tls)
		return false;
	r = sc_tls_handshake(up->tls); /* produces the ClientHello */
	if ((r != SC_TLS_AGAIN && r != SC_TLS_OK) ||
	    sc_tls_flush_raw(w, (uv_stream_t *)&up->tcp, up->tls, &up->out, sc_up_write_cb) < 0) {
		metrics_inc(sc_stats.tls_out_fail);
		sc_up_detach(up, "TLS start failed");
		sc_worker_flush(w);
		return true;
	}
	return true;
}

static void tls_out_failed(struct sc_up *up, const char *reason, const char *detail)
{
	struct sc_worker *w = up->w;
	char dst[64];

	metrics_inc(sc_stats.tls_out_fail);
	if (uv_ip_name((const struct sockaddr *)&up->dst, dst, sizeof(dst)))
		snprintf(dst, sizeof(dst), "?");
	/* Never a plaintext retry: a destination that speaks TLS but fails it is an error. */
	log_warn("tls_handshake_failed",
		 "outbound mTLS to the destination's sidecar failed; its RPCs get UNAVAILABLE",
		 "{s:s, s:s, s:s}", "reason", reason, "detail", detail, "destination", dst);
	sc_up_detach(up, "TLS handshake with the destination failed");
	sc_worker_flush(w);
}

void sc_outbound_learn(struct sc_conn *c, struct sc_up *up)
{
	const char *p;
	size_t pl;

	if (c->out_peer_id || !up->tls || up->state != UP_READY)
		return;
	p = sc_tls_peer_principal(up->tls);
	pl = strlen(p) + 10;
	c->mtls = true;
	c->out_peer_id = malloc(pl);
	c->out_self_id = strdup(sc_tls_gen(up->tls)->spiffe_id);
	if (c->out_peer_id)
		snprintf(c->out_peer_id, pl, "spiffe://%s", p);
}

/*
 * Bytes (or EOF / an error, n < 0) from the destination while TLS is set up or running.
 * Before the handshake completes, the first byte tells: 0x16 (handshake) or 0x15 (alert)
 * is a TLS server, a sidecar; anything else, or a close before any byte, is a server
 * without a sidecar that read our ClientHello as a bad HTTP/2 preface (it answers
 * SETTINGS / GOAWAY, or closes). Only then, and only before a byte of the app's was sent
 * (the session sends nothing until UP_READY), the session moves to a plaintext
 * connection and the destination is remembered for SC_NEGCACHE_TTL_MS.
 */
void sc_outbound_tls_in(struct sc_up *up, const uint8_t *d, ssize_t n)
{
	struct sc_worker *w = up->w;
	int r;

	if (!sc_tls_established(up->tls)) {
		bool plain = n < 0 ? !up->seen && (n == UV_EOF || n == UV_ECONNRESET)
				   : !up->seen && d[0] != 0x16 && d[0] != 0x15;
		if (plain) {
			metrics_inc(sc_stats.tls_out_plain);
			sc_negcache_add(&w->negcache, &up->dst, uv_now(&w->loop));
			log_debug("tls_no_sidecar",
				  "the destination answered TLS in plaintext: no sidecar there, "
				  "plaintext for 60 s",
				  NULL);
			sc_up_restart_plain(up);
			sc_worker_flush(w);
			return;
		}
		if (n < 0) {
			tls_out_failed(up, "closed",
				       n == UV_EOF ? "the destination closed"
						   : uv_strerror((int)n));
			return;
		}
		up->seen = true;
		if (sc_tls_feed(up->tls, d, (size_t)n) != 0) {
			tls_out_failed(up, "nomem", "");
			return;
		}
		r = sc_tls_handshake(up->tls);
		if (sc_tls_flush_raw(w, (uv_stream_t *)&up->tcp, up->tls, &up->out,
				     sc_up_write_cb) < 0) {
			tls_out_failed(up, "write", "");
			return;
		}
		if (r == SC_TLS_AGAIN)
			return;
		if (r < 0) {
			tls_out_failed(up, sc_tls_strerror(r), sc_tls_detail(up->tls));
			return;
		}
		metrics_inc(sc_stats.tls_out_ok);
		uv_timer_stop(&up->timer);
		up->state = UP_READY;
		/* Every client with an RPC waiting on this connection is labelled with it. */
		for (struct sc_conn *c = w->conns; c; c = c->next)
			for (struct sc_stream *s = c->streams; s; s = s->next)
				if (s->up == up)
					sc_outbound_learn(c, up);
	} else if (n < 0) {
		sc_up_detach(up, n == UV_EOF ? "the destination closed the connection"
					     : uv_strerror((int)n));
		sc_worker_flush(w);
		return;
	} else if (sc_tls_feed(up->tls, d, (size_t)n) != 0) {
		sc_up_detach(up, "out of memory");
		sc_worker_flush(w);
		return;
	}
	while (up->w && up->state == UP_READY) {
		ssize_t m = sc_tls_read(up->tls, w->rbuf, sizeof(w->rbuf));
		if (m == 0)
			break;
		if (m < 0) {
			sc_up_detach(up, "TLS from the destination ended");
			break;
		}
		sc_up_feed(up, w->rbuf, (size_t)m);
	}
	sc_worker_flush(w);
}
