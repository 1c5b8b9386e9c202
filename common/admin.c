/*
 * The admin HTTP server. See admin.h.
 *
 * libmicrohttpd serves plain HTTP/1.1 on its own thread (epoll, one internal polling
 * thread). We create, bind and listen on the socket ourselves so a failure comes back as
 * a precise -errno (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL) instead of MHD's bare NULL,
 * and so a caller (tests) can listen on port 0 and learn the port with admin_port().
 *
 * Routes: GET (and HEAD) only. /healthz -> 200 "ok"; /readyz -> 200 "ready" or 503
 * "not ready"; /metrics -> the registry in Prometheus text format; registered paths ->
 * their handler; anything else 404; any other method 405. Connections are bounded
 * (ADMIN_MAX_CONNECTIONS, ADMIN_MAX_PER_IP per client address, ADMIN_TIMEOUT_S idle
 * timeout) and request bodies are never read.
 *
 * What it does not do: TLS, authentication, POST endpoints. It is meant to listen on
 * loopback or on the pod IP for Prometheus, never on the internet. Routes registered with
 * admin_route_local() (the sidecar's /policy: the whole policy in force) answer 403 to
 * anyone but a loopback peer, so the pod IP exposes probes and metrics only.
 */
#include "common/admin.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/metrics.h"

/*
 * Bounds: 128 connections in all, at most 8 from one address, so a peer that opens idle
 * connections (the port listens on the pod IP) cannot starve the kubelet's probes or
 * Prometheus, which connect from other addresses. Each connection costs up to 32 KiB.
 */
#define ADMIN_MAX_CONNECTIONS 128
#define ADMIN_MAX_PER_IP 8
#define ADMIN_TIMEOUT_S 10
#define ADMIN_BACKLOG 64
#define ADMIN_MAX_PATH 256

#define CTYPE_TEXT "text/plain; charset=utf-8"
#define CTYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct admin_route {
	struct admin_route *next;
	char *path;
	admin_route_fn fn;
	void *ctx;
	bool local_only; /* admin_route_local(): loopback peers only */
};

struct admin_server {
	struct MHD_Daemon *daemon;
	struct metrics_registry *metrics; /* borrowed */
	atomic_bool ready;
	unsigned port;		     /* the bound port (useful with port 0) */
	pthread_mutex_t routes_lock; /* admin_route() may run on another thread */
	struct admin_route *routes;  /* never removed before admin_stop() */
};

/* Exported for tests and for callers that listen on port 0 (not in admin.h yet). */

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
 * and the bound port in *bound, or -errno.
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

/*
 * MHD's diagnostics become JSON log lines instead of raw text on stderr. They are mostly
 * about one misbehaving peer (malformed request, timeout), so they are debug level: a
 * scanner must not be able to flood the log. Start-up failures reach the caller as errno.
 */
__attribute__((format(printf, 2, 0))) static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("admin_http", msg, NULL);
}

/*
 * Queue a response. body is stolen when must_free, else it must be static. Returns
 * MHD's result.
 */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
			     const char *ctype, bool must_free)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(
	    len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!resp) {
		if (must_free)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result reply_static(struct MHD_Connection *conn, unsigned status, const char *text)
{
	/* MHD_RESPMEM_PERSISTENT never writes to the buffer; the cast only drops const. */
	return reply(conn, status, (char *)(uintptr_t)text, strlen(text), CTYPE_TEXT, false);
}

static enum MHD_Result serve_metrics(struct admin_server *a, struct MHD_Connection *conn)
{
	char *body = NULL;
	size_t len = 0;

	if (!a->metrics)
		return reply(conn, MHD_HTTP_OK, (char *)"", 0, CTYPE_METRICS, false);
	if (metrics_render(a->metrics, &body, &len) < 0)
		return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(conn, MHD_HTTP_OK, body, len, CTYPE_METRICS, true);
}

/* Looks the route up under the lock; routes are never freed while the server runs. */
static struct admin_route *find_route(struct admin_server *a, const char *path)
{
	struct admin_route *r;

	pthread_mutex_lock(&a->routes_lock);
	for (r = a->routes; r; r = r->next) {
		if (strcmp(r->path, path) == 0)
			break;
	}
	pthread_mutex_unlock(&a->routes_lock);
	return r;
}

static enum MHD_Result serve_route(struct admin_route *r, struct MHD_Connection *conn)
{
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	int status;

	status = r->fn(r->ctx, &body, &len, &ctype);
	if (status < 100 || status > 599) {
		free(body);
		log_error("admin_route_error", "admin route handler returned a bad status",
			  "{s:s, s:i}", "path", r->path, "status", status);
		return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
	}
	if (!body)
		return reply(conn, (unsigned)status, (char *)"", 0, ctype ? ctype : CTYPE_TEXT,
			     false);
	return reply(conn, (unsigned)status, body, len, ctype ? ctype : CTYPE_TEXT, true);
}

/* 127.0.0.0/8, ::1, or ::ffff:127.x.y.z (an IPv4 peer on a dual-stack socket). */
static bool peer_is_loopback(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	if (!sa)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a6) ||
		       (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	}
	return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct admin_server *a = cls;
	struct admin_route *r;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	/*
	 * Answer on the first call, before any body is read: a non-GET request gets 405
	 * and MHD closes the connection instead of buffering what the client sends.
	 */
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return reply_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (strcmp(url, "/healthz") == 0)
		return reply_static(conn, MHD_HTTP_OK, "ok\n");
	if (strcmp(url, "/readyz") == 0) {
		if (atomic_load(&a->ready))
			return reply_static(conn, MHD_HTTP_OK, "ready\n");
		return reply_static(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
	}
	if (strcmp(url, "/metrics") == 0)
		return serve_metrics(a, conn);
	r = find_route(a, url);
	if (r && r->local_only && !peer_is_loopback(conn))
		return reply_static(conn, MHD_HTTP_FORBIDDEN,
				    "forbidden: served to loopback only (from inside the pod, or "
				    "kubectl port-forward)\n");
	if (r)
		return serve_route(r, conn);
	return reply_static(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

static void routes_free(struct admin_route *r)
{
	struct admin_route *next;

	for (; r; r = next) {
		next = r->next;
		free(r->path);
		free(r);
	}
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
	pthread_mutex_init(&a->routes_lock, NULL);
	a->metrics = metrics;
	atomic_init(&a->ready, false);
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
	/*
	 * The MHD thread inherits our signal mask: block everything while it is created so
	 * SIGTERM/SIGCHLD/SIGHUP are delivered to the program's own loop, never to it.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	errno = 0;
	a->daemon = MHD_start_daemon(
	    MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, a,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_CONNECTIONS,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)ADMIN_MAX_PER_IP,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_END);
	rc = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!a->daemon) {
		rc = rc ? -rc : -EIO;
		goto out;
	}
	fd = -1; /* owned by the daemon now: MHD_stop_daemon() closes it */
	*out = a;
	a = NULL;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (a) {
		pthread_mutex_destroy(&a->routes_lock);
		free(a);
	}
	return rc;
}

/*
 * Register GET path. Returns 0, -EINVAL (path not starting with '/', too long, or a
 * built-in path), -EEXIST (already registered) or -ENOMEM; the server is unchanged on
 * failure.
 */
static int add_route(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx,
		     bool local_only)
{
	struct admin_route *r, **tail;
	int rc = 0;

	if (!a || !path || !fn || path[0] != '/' || strlen(path) > ADMIN_MAX_PATH ||
	    strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
	    strcmp(path, "/metrics") == 0)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->path = strdup(path);
	if (!r->path) {
		free(r);
		return -ENOMEM;
	}
	r->fn = fn;
	r->ctx = ctx;
	r->local_only = local_only;
	pthread_mutex_lock(&a->routes_lock);
	for (tail = &a->routes; *tail; tail = &(*tail)->next) {
		if (strcmp((*tail)->path, path) == 0) {
			rc = -EEXIST;
			break;
		}
	}
	if (rc == 0)
		*tail = r; /* published last, fully built */
	pthread_mutex_unlock(&a->routes_lock);
	if (rc < 0)
		routes_free(r);
	return rc;
}

int admin_route(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx)
{
	return add_route(a, path, fn, ctx, false);
}

int admin_route_local(struct admin_server *a, const char *path, admin_route_fn fn, void *ctx)
{
	return add_route(a, path, fn, ctx, true);
}

void admin_set_ready(struct admin_server *a, bool ready)
{
	if (a)
		atomic_store(&a->ready, ready);
}

unsigned admin_port(const struct admin_server *a)
{
	return a ? a->port : 0;
}

void admin_stop(struct admin_server *a)
{
	if (!a)
		return;
	/* Joins the MHD thread and closes the listening socket and every connection. */
	MHD_stop_daemon(a->daemon);
	routes_free(a->routes);
	pthread_mutex_destroy(&a->routes_lock);
	free(a);
}
