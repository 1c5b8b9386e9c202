/*
 * The admin HTTP server. See admin.h.
 *
 * A thread of its own runs a libuv loop of its own: the listening socket, its
 * connections and a stop signal. Its own thread, not the program's main loop, so that
 * /healthz, /readyz and /metrics answer while the main loop parses a large policy or the
 * workers are saturated, and so that route handlers keep running on one thread (the
 * admin thread) as they did under libmicrohttpd. The thread costs a stack's few touched
 * pages; libmicrohttpd cost ~2.4 MiB of GnuTLS pages the plain-HTTP port never used.
 *
 * Requests are parsed by common/admin_http.c (http-parser) and answered by
 * common/admin_routes.c; this file only moves bytes and enforces the bounds:
 *   - ADMIN_MAX_CONNECTIONS in all and ADMIN_MAX_PER_IP per client address (more are
 *     accepted and closed at once), so idle connections from one peer on the pod IP
 *     cannot starve the kubelet's probes or Prometheus, which come from other addresses;
 *   - a connection must complete each request within ADMIN_TIMEOUT_MS of the previous
 *     answer (or of connecting): the timer is not reset by partial bytes, so a slowloris
 *     client dribbling a header is closed like an idle one;
 *   - reading stops while ADMIN_MAX_PENDING_WRITE bytes of answers (or one larger answer,
 *     such as a big /metrics) wait for a client that pipelines requests without reading
 *     the answers;
 *   - each connection holds at most ADMIN_READ_BYTES of unparsed input, and its socket
 *     at most ADMIN_SNDBUF_BYTES (doubled by the kernel) of unsent answers.
 * A connection that must close after its answer (an error, a request with a body, "close")
 * first sends its answer, then a FIN, and discards what the client still sends until it
 * closes too or the timeout passes, so that the client reads the answer rather than a
 * reset.
 *
 * What it does not do: TLS, authentication, POST endpoints. It is meant to listen on
 * loopback or on the pod IP for Prometheus, never on the internet. Routes registered with
 * admin_route_local() (the sidecar's /policy: the whole policy in force) answer 403 to
 * anyone but a loopback peer, so the pod IP exposes probes and metrics only.
 */
#include "common/admin.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "common/admin_http.h"
#include "common/admin_routes.h"
#include "common/log.h"

#define ADMIN_MAX_CONNECTIONS 128
#define ADMIN_MAX_PER_IP 8
#define ADMIN_TIMEOUT_MS 10000
#define ADMIN_BACKLOG 64
#define ADMIN_READ_BYTES 4096
#define ADMIN_MAX_PENDING_WRITE (16 * 1024)
#define ADMIN_SNDBUF_BYTES (64 * 1024)

enum conn_state {
	CONN_ACTIVE,   /* parsing and answering requests */
	CONN_DRAINING, /* the last answer is queued; input is discarded until EOF/timeout */
	CONN_CLOSING,  /* uv_close() called; freed when both handles are closed */
};

struct admin_conn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	struct admin_server *a;
	struct admin_conn *prev, *next; /* a->conns, for the per-address count and stop */
	enum conn_state state;
	int open_handles;
	bool listed;	  /* counted in a->conns / a->nconns */
	bool loopback;	  /* the peer is 127/8, ::1 or ::ffff:127/104 */
	bool reading;	  /* uv_read_start() in effect */
	bool read_paused; /* reading stopped: too many answer bytes waiting */
	bool shutdown_sent;
	unsigned char addr[16]; /* the peer's address, v4-mapped as IPv4, for ADMIN_MAX_PER_IP */
	size_t addr_len;
	size_t wpending;   /* answer bytes queued, not yet written */
	size_t rlen, roff; /* unparsed input in rbuf (kept only while reading is paused) */
	struct admin_http http;
	char rbuf[ADMIN_READ_BYTES];
};

struct admin_write {
	uv_write_t req;
	struct admin_conn *c;
	char *data;
	size_t len;
};

struct admin_server {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_async_t stop;
	uv_thread_t thread;
	bool loop_ready, listener_ready, stop_ready, thread_started;
	unsigned port;		     /* the bound port (useful with port 0) */
	struct admin_routes *routes; /* shared with the program's threads (locked inside) */
	struct admin_conn *conns;    /* admin thread only */
	unsigned nconns;
};

/*
 * Parse "host:port", "[v6]:port" or ":port". The host is copied into host (NUL-terminated,
 * "" for ":port"); a bare IPv6 address without brackets is rejected because its last
 * colon is ambiguous. Returns 0, or -EINVAL (syntax, port > 65535) / -ENAMETOOLONG (host
 * does not fit in hostlen). Leaves *port untouched on failure.
 */
int admin_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
	const char *h, *hend, *p;
	size_t hlen;
	unsigned long v;
	char *end;

	if (!s || !host || hostlen == 0 || !port)
		return -EINVAL;
	if (s[0] == '[') {
		h = s + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		p = hend + 2;
	} else {
		h = s;
		hend = strrchr(s, ':');
		if (!hend)
			return -EINVAL;
		if (memchr(s, ':', (size_t)(hend - s)))
			return -EINVAL; /* "::1:80": use "[::1]:80" */
		p = hend + 1;
	}
	hlen = (size_t)(hend - h);
	if (*p < '0' || *p > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno || *end != '\0' || v > 65535)
		return -EINVAL;
	if (hlen + 1 > hostlen)
		return -ENAMETOOLONG;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (unsigned)v;
	return 0;
}

/*
 * Create a listening TCP socket for "HOST:PORT". An empty host means every IPv4 address.
 * Numeric addresses are used as is; names are resolved (first result). Returns the fd
 * and the bound port in *bound, or -errno. We bind ourselves so that a failure comes back
 * as a precise -errno (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL).
 */
static int listen_socket(const char *listen_addr, unsigned *bound)
{
	char host[256], portstr[8];
	unsigned port;
	struct addrinfo hints = {0}, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	int fd = -1, one = 1, rc;

	rc = admin_split_hostport(listen_addr, host, sizeof(host), &port);
	if (rc < 0)
		return rc;
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
	rc = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
	if (rc != 0 || !res) {
		rc = rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
		goto out;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* Restarting the sidecar must not wait for TIME_WAIT to expire. */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6) {
		/* "[::]" serves IPv4 too (as v4-mapped addresses), whatever the sysctl says. */
		int zero = 0;
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, ADMIN_BACKLOG) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
		rc = -errno;
		goto out;
	}
	if (ss.ss_family == AF_INET6)
		*bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	rc = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return rc;
}

/* ---- connections (admin thread) -------------------------------------------------------- */

static void process(struct admin_conn *c);

static void conn_closed(uv_handle_t *h)
{
	struct admin_conn *c = h->data;

	if (--c->open_handles == 0)
		free(c);
}

/* Close both handles; pending writes and the shutdown get UV_ECANCELED first. */
static void conn_close(struct admin_conn *c)
{
	struct admin_server *a = c->a;

	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->listed) {
		if (c->prev)
			c->prev->next = c->next;
		else
			a->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		a->nconns--;
		c->listed = false;
	}
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
	uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* Start reading unless already reading; closes the connection on failure. */
static void start_reading(struct admin_conn *c)
{
	if (c->reading)
		return;
	if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read) != 0) {
		conn_close(c);
		return;
	}
	c->reading = true;
}

static void stop_reading(struct admin_conn *c)
{
	if (c->reading)
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = false;
}

static void on_timeout(uv_timer_t *t)
{
	struct admin_conn *c = t->data;

	log_debug("admin_timeout", "admin connection closed: no complete request in time", "{s:i}",
		  "timeout_ms", ADMIN_TIMEOUT_MS);
	conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct admin_conn *c = h->data;

	(void)suggested;
	/* rlen is 0 whenever reading is on (see process()). */
	*buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof(c->rbuf) - c->rlen));
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct admin_conn *c = req->data;

	if (status < 0 && c->state != CONN_CLOSING)
		conn_close(c);
}

/* The last answer is queued or written: when it is written, FIN (then wait for the peer). */
static void maybe_finish(struct admin_conn *c)
{
	if (c->state != CONN_DRAINING || c->wpending > 0 || c->shutdown_sent)
		return;
	c->shutdown_sent = true;
	c->shutdown_req.data = c;
	if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
		conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct admin_conn *c = s->data;

	(void)buf;
	if (c->state == CONN_CLOSING)
		return;
	if (nread < 0) {
		/* EOF or error. Answers still queued are written first (a client may
		 * half-close after its last request), then we close. */
		stop_reading(c);
		if (nread != UV_EOF || c->wpending == 0) {
			conn_close(c);
			return;
		}
		c->state = CONN_DRAINING;
		c->shutdown_sent = true; /* the peer is gone: no FIN dance, close when written */
		return;
	}
	if (nread == 0)
		return;
	if (c->state == CONN_DRAINING)
		return; /* discarded: the connection ends once the answer is written */
	c->rlen = (size_t)nread;
	c->roff = 0;
	process(c);
}

static void on_written(uv_write_t *req, int status)
{
	struct admin_write *w = req->data;
	struct admin_conn *c = w->c;

	c->wpending -= w->len;
	free(w->data);
	free(w);
	if (c->state == CONN_CLOSING)
		return;
	if (status < 0) {
		conn_close(c);
		return;
	}
	if (c->state == CONN_DRAINING) {
		if (c->wpending == 0 && c->shutdown_sent && !uv_is_readable((uv_stream_t *)&c->tcp))
			conn_close(c); /* the peer half-closed before: nothing to wait for */
		else
			maybe_finish(c);
		return;
	}
	if (c->read_paused && c->wpending < ADMIN_MAX_PENDING_WRITE) {
		c->read_paused = false;
		process(c); /* the input left over, then reading again */
	}
}

/* Queue data (stolen) for writing. Returns 0 or a libuv error (data is freed). */
static int queue_write(struct admin_conn *c, char *data, size_t len)
{
	struct admin_write *w = malloc(sizeof(*w));
	uv_buf_t b = uv_buf_init(data, (unsigned)len);
	int r;

	if (!w) {
		free(data);
		return UV_ENOMEM;
	}
	w->c = c;
	w->data = data;
	w->len = len;
	w->req.data = w;
	r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (r != 0) {
		free(data);
		free(w);
		return r;
	}
	c->wpending += len;
	return 0;
}

/* Answer what the parser returned; the connection ends after it when the answer says so. */
static void answer(struct admin_conn *c)
{
	char *out = NULL;
	size_t outlen = 0;
	bool last = c->http.failed || !c->http.keep_alive;

	if (c->http.failed)
		log_debug("admin_bad_request", "admin request rejected", "{s:i}", "status",
			  (int)c->http.bad_status);
	if (admin_routes_answer(c->a->routes, &c->http, c->loopback, &out, &outlen) != 0 ||
	    queue_write(c, out, outlen) != 0) {
		conn_close(c);
		return;
	}
	if (last) {
		c->state = CONN_DRAINING;
		c->rlen = c->roff = 0;
		/* Keep reading (and discarding) so the client's unread bytes do not make our
		 * close a reset that destroys the answer; the timer bounds the wait. */
		uv_timer_start(&c->timer, on_timeout, ADMIN_TIMEOUT_MS, 0);
		start_reading(c);
		return;
	}
	admin_http_next(&c->http);
	uv_timer_start(&c->timer, on_timeout, ADMIN_TIMEOUT_MS, 0); /* the next request's time */
}

/*
 * Parse and answer the input in rbuf, one request at a time, until it is used up (then
 * read more) or too many answer bytes wait for the client (then stop reading and keep the
 * rest for on_written()).
 */
static void process(struct admin_conn *c)
{
	while (c->state == CONN_ACTIVE && c->roff < c->rlen) {
		size_t used = 0;
		enum admin_http_event ev;

		if (c->wpending >= ADMIN_MAX_PENDING_WRITE) {
			memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
			c->rlen -= c->roff;
			c->roff = 0;
			c->read_paused = true;
			stop_reading(c);
			return;
		}
		ev = admin_http_feed(&c->http, c->rbuf + c->roff, c->rlen - c->roff, &used);
		c->roff += used;
		if (ev != ADMIN_HTTP_MORE)
			answer(c);
	}
	if (c->state != CONN_ACTIVE)
		return;
	c->rlen = c->roff = 0;
	start_reading(c);
}

/* The peer's address as bytes (v4-mapped IPv6 as IPv4) and whether it is loopback. */
static void peer_identity(struct admin_conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	c->addr_len = 0;
	c->loopback = false;
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		memcpy(c->addr, &s4->sin_addr, 4);
		c->addr_len = 4;
	} else if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			memcpy(c->addr, a6->s6_addr + 12, 4);
			c->addr_len = 4;
		} else {
			memcpy(c->addr, a6->s6_addr, 16);
			c->addr_len = 16;
			c->loopback = IN6_IS_ADDR_LOOPBACK(a6);
			return;
		}
	}
	if (c->addr_len == 4)
		c->loopback = c->addr[0] == 127;
}

static unsigned same_peer_count(const struct admin_server *a, const struct admin_conn *c)
{
	unsigned n = 0;

	for (const struct admin_conn *o = a->conns; o; o = o->next) {
		if (o->addr_len == c->addr_len && memcmp(o->addr, c->addr, c->addr_len) == 0)
			n++;
	}
	return n;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct admin_server *a = server->data;
	struct admin_conn *c;

	if (status < 0) {
		log_warn("admin_accept_failed", "admin port: accept failed", "{s:s}", "error",
			 uv_strerror(status));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		log_warn("admin_accept_failed", "admin port: out of memory for a connection", NULL);
		return;
	}
	c->a = a;
	c->tcp.data = c;
	c->timer.data = c;
	uv_tcp_init(&a->loop, &c->tcp);
	uv_timer_init(&a->loop, &c->timer);
	c->open_handles = 2;
	c->state = CONN_ACTIVE;
	admin_http_init(&c->http);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	peer_identity(c);
	if (a->nconns >= ADMIN_MAX_CONNECTIONS || same_peer_count(a, c) >= ADMIN_MAX_PER_IP) {
		log_debug("admin_refused", "admin port: connection limit reached; closed",
			  "{s:i, s:i}", "connections", (int)a->nconns, "per_ip_max",
			  ADMIN_MAX_PER_IP);
		conn_close(c);
		return;
	}
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->nconns++;
	c->listed = true;
	/* The kernel's share of a client that does not read is bounded too: without this,
	 * send-buffer autotuning lets each connection hold megabytes of answers. */
	(void)uv_send_buffer_size((uv_handle_t *)&c->tcp, &(int){ADMIN_SNDBUF_BYTES});
	uv_timer_start(&c->timer, on_timeout, ADMIN_TIMEOUT_MS, 0);
	start_reading(c);
}

/* ---- the server ----------------------------------------------------------------------- */

static void noop_close(uv_handle_t *h)
{
	(void)h;
}

/* Close the server's own handles and every connection; the loop then ends. */
static void close_all(struct admin_server *a)
{
	if (a->listener_ready && !uv_is_closing((uv_handle_t *)&a->listener))
		uv_close((uv_handle_t *)&a->listener, noop_close);
	if (a->stop_ready && !uv_is_closing((uv_handle_t *)&a->stop))
		uv_close((uv_handle_t *)&a->stop, noop_close);
	while (a->conns)
		conn_close(a->conns);
}

static void on_stop(uv_async_t *h)
{
	close_all(h->data);
}

static void admin_thread(void *arg)
{
	struct admin_server *a = arg;

	uv_run(&a->loop, UV_RUN_DEFAULT);
}

/* Frees a server whose thread is not running (never started, or joined). */
static void server_free(struct admin_server *a)
{
	if (a->loop_ready) {
		close_all(a);
		uv_run(&a->loop, UV_RUN_DEFAULT);
		uv_loop_close(&a->loop);
	}
	admin_routes_free(a->routes);
	free(a);
}

int admin_start(const char *listen_addr, struct metrics_registry *metrics,
		struct admin_server **out)
{
	struct admin_server *a = NULL;
	sigset_t all, old;
	int fd = -1, rc;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	rc = admin_routes_new(metrics, &a->routes);
	if (rc < 0)
		goto out;
	fd = listen_socket(listen_addr, &a->port);
	if ((fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL) &&
	    strncmp(listen_addr, "[::]:", 5) == 0) {
		/* A node without IPv6: the dual-stack address degrades to every IPv4 address. */
		char v4[32];
		snprintf(v4, sizeof(v4), "0.0.0.0:%s", listen_addr + 5);
		fd = listen_socket(v4, &a->port);
	}
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if ((rc = uv_loop_init(&a->loop)) != 0)
		goto out;
	a->loop_ready = true;
	uv_tcp_init(&a->loop, &a->listener);
	a->listener_ready = true;
	a->listener.data = a;
	if ((rc = uv_tcp_open(&a->listener, fd)) != 0)
		goto out;
	fd = -1; /* the handle owns it now */
	if ((rc = uv_listen((uv_stream_t *)&a->listener, ADMIN_BACKLOG, on_connection)) != 0 ||
	    (rc = uv_async_init(&a->loop, &a->stop, on_stop)) != 0)
		goto out;
	a->stop_ready = true;
	a->stop.data = a;
	/*
	 * The admin thread inherits our signal mask: block everything while it is created so
	 * SIGTERM/SIGCHLD/SIGHUP are delivered to the program's own loop, never to it.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = uv_thread_create(&a->thread, admin_thread, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		goto out;
	a->thread_started = true;
	*out = a;
	a = NULL;
out:
	if (fd >= 0)
		close(fd);
	if (a)
		server_free(a);
	return rc;
}

int admin_route(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx)
{
	return a ? admin_routes_add(a->routes, path, fn, ctx, false) : -EINVAL;
}

int admin_route_local(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx)
{
	return a ? admin_routes_add(a->routes, path, fn, ctx, true) : -EINVAL;
}

void admin_set_ready(struct admin_server *a, bool ready)
{
	if (a)
		admin_routes_set_ready(a->routes, ready);
}

unsigned admin_port(const struct admin_server *a)
{
	return a ? a->port : 0;
}

void admin_stop(struct admin_server *a)
{
	if (!a)
		return;
	if (a->thread_started) {
		/* The loop closes the listener and every connection, then returns. */
		uv_async_send(&a->stop);
		uv_thread_join(&a->thread);
	}
	server_free(a);
}
