/*
 * common/admin: the admin HTTP server answered over real TCP sockets (IPv4 and IPv6
 * loopback, ephemeral ports): routes, limits, keep-alive and pipelining, requests split
 * across reads, bad and oversized requests, the slowloris timeout, clients that do not
 * read; and admin_split_hostport().
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <time.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/admin.h"
#include "common/metrics.h"
#include "tests/unit/runner.h"

struct http_reply {
	int status;
	char head[2048];
	char body[8192];
};

/* IPv4 source address for the next requests (NULL: the kernel's choice, 127.0.0.1). */
static const char *src4;
/* IPv4 destination for the next requests (NULL: 127.0.0.1). */
static const char *dst4;

/* A TCP connection to 127.0.0.1:port from address src (any 127.x.y.z works on Linux). */
static int connect_from(const char *src, unsigned port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in b = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	if (src) {
		ck_assert_int_eq(inet_pton(AF_INET, src, &b.sin_addr), 1);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&b, sizeof(b)), 0);
	}
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Send raw request text to [host]:port, read the whole reply (Connection: close). */
static int http_raw(int family, unsigned port, const char *req, struct http_reply *out)
{
	struct sockaddr_storage ss = {0};
	socklen_t sslen;
	struct timeval tv = {.tv_sec = 5};
	char buf[16384];
	size_t got = 0;
	int fd;

	memset(out, 0, sizeof(*out));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_loopback;
		sslen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (dst4 && inet_pton(AF_INET, dst4, &s4->sin_addr) != 1)
			return -EINVAL;
		sslen = sizeof(*s4);
	}
	fd = socket(family, SOCK_STREAM, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET && src4) {
		struct sockaddr_in b = {.sin_family = AF_INET};
		if (inet_pton(AF_INET, src4, &b.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
			close(fd);
			return -EINVAL;
		}
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, sslen) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		close(fd);
		return -EIO;
	}
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1)
		return -EPROTO;
	char *sep = strstr(buf, "\r\n\r\n");
	if (!sep)
		return -EPROTO;
	size_t hl = (size_t)(sep - buf);
	if (hl >= sizeof(out->head))
		hl = sizeof(out->head) - 1;
	memcpy(out->head, buf, hl);
	snprintf(out->body, sizeof(out->body), "%s", sep + 4);
	return 0;
}

static int http_get(int family, unsigned port, const char *method, const char *path,
		    struct http_reply *out)
{
	char req[512];
	snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", method,
		 path);
	return http_raw(family, port, req, out);
}

static struct metrics_registry *reg;
static struct admin_server *srv;
static unsigned port;

static void setup(void)
{
	const char *labels[] = {"grpc_code"};
	const char *vals[] = {"OK"};

	reg = metrics_registry_new();
	ck_assert_ptr_nonnull(reg);
	struct metrics_family *f =
	    metrics_counter(reg, "grpcguard_requests_total", "Requests.", 1, labels);
	metrics_add(metrics_series(f, vals), 3);
	ck_assert_int_eq(admin_start("127.0.0.1:0", reg, &srv), 0);
	port = admin_port(srv);
	ck_assert_uint_gt(port, 0);
}

static void teardown(void)
{
	admin_stop(srv);
	srv = NULL;
	metrics_registry_free(reg);
	reg = NULL;
}

START_TEST(test_healthz)
{
	struct http_reply r;
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ok\n");
	ck_assert_ptr_nonnull(strcasestr(r.head, "content-type: text/plain"));
	/* HEAD: same status, no body. */
	ck_assert_int_eq(http_get(AF_INET, port, "HEAD", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "");
}
END_TEST

START_TEST(test_readyz_flag)
{
	struct http_reply r;
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/readyz", &r), 0);
	ck_assert_int_eq(r.status, 503);
	ck_assert_str_eq(r.body, "not ready\n");
	admin_set_ready(srv, true);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/readyz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ready\n");
	admin_set_ready(srv, false);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/readyz", &r), 0);
	ck_assert_int_eq(r.status, 503);
}
END_TEST

START_TEST(test_metrics)
{
	struct http_reply r;
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/metrics?x=1", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(
	    strcasestr(r.head, "content-type: text/plain; version=0.0.4; charset=utf-8"));
	ck_assert_ptr_nonnull(strstr(r.body, "# TYPE grpcguard_requests_total counter\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "grpcguard_requests_total{grpc_code=\"OK\"} 3\n"));
}
END_TEST

static int route_json(void *ctx, char **body, size_t *len, const char **ctype)
{
	*body = strdup((const char *)ctx);
	*len = strlen(*body);
	*ctype = "application/json";
	return 200;
}

static int route_bad(void *ctx, char **body, size_t *len, const char **ctype)
{
	(void)ctx;
	(void)ctype;
	*body = strdup("leaked?");
	*len = 7;
	return 42;
}

START_TEST(test_routes)
{
	struct http_reply r;
	ck_assert_int_eq(admin_route(srv, "/policy", route_json, "{\"generation\":1}"), 0);
	ck_assert_int_eq(admin_route(srv, "/policy", route_json, "x"), -EEXIST);
	ck_assert_int_eq(admin_route(srv, "/healthz", route_json, "x"), -EINVAL);
	ck_assert_int_eq(admin_route(srv, "nope", route_json, "x"), -EINVAL);
	ck_assert_int_eq(admin_route(srv, "/bad", route_bad, NULL), 0);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/policy", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "{\"generation\":1}");
	ck_assert_ptr_nonnull(strcasestr(r.head, "content-type: application/json"));
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/bad", &r), 0);
	ck_assert_int_eq(r.status, 500);
}
END_TEST

/* A non-loopback IPv4 address of this host, or "" when it has none. */
static void local_non_loopback4(char *out, size_t len)
{
	struct ifaddrs *ifs = NULL;

	out[0] = '\0';
	if (getifaddrs(&ifs) != 0)
		return;
	for (struct ifaddrs *i = ifs; i && !out[0]; i = i->ifa_next) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
		if (!a || a->sin_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
		    (ntohl(a->sin_addr.s_addr) >> 24) == 127)
			continue;
		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)len);
	}
	freeifaddrs(ifs);
}

/* admin_route_local(): loopback peers (127/8, ::1, v4-mapped 127/8) only; others 403. */
START_TEST(test_local_route)
{
	struct admin_server *any = NULL;
	struct http_reply r;
	char ip[INET_ADDRSTRLEN];

	ck_assert_int_eq(admin_route_local(srv, "/local", route_json, "{\"in\":1}"), 0);
	ck_assert_int_eq(admin_route_local(srv, "/local", route_json, "x"), -EEXIST);
	ck_assert_int_eq(admin_route_local(srv, "/metrics", route_json, "x"), -EINVAL);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/local", &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "{\"in\":1}");
	src4 = "127.0.3.4"; /* all of 127/8 is loopback */
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/local", &r), 0);
	src4 = NULL;
	ck_assert_int_eq(r.status, 200);

	/* Every address, dual-stack when the host has IPv6: an IPv4 loopback peer arrives
	 * as ::ffff:127.0.0.1 and is still loopback. */
	if (admin_start("[::]:0", NULL, &any) != 0)
		ck_assert_int_eq(admin_start("0.0.0.0:0", NULL, &any), 0);
	ck_assert_int_eq(admin_route_local(any, "/local", route_json, "{}"), 0);
	ck_assert_int_eq(http_get(AF_INET, admin_port(any), "GET", "/local", &r), 0);
	ck_assert_int_eq(r.status, 200);
	if (http_get(AF_INET6, admin_port(any), "GET", "/local", &r) == 0)
		ck_assert_int_eq(r.status, 200);
	local_non_loopback4(ip, sizeof(ip));
	if (ip[0]) {
		/* To our own non-loopback address: the peer is that address, not loopback. */
		dst4 = ip;
		ck_assert_int_eq(http_get(AF_INET, admin_port(any), "GET", "/local", &r), 0);
		ck_assert_int_eq(r.status, 403);
		ck_assert_ptr_nonnull(strstr(r.body, "loopback only"));
		ck_assert_int_eq(http_get(AF_INET, admin_port(any), "GET", "/metrics", &r), 0);
		ck_assert_int_eq(r.status, 200);
		dst4 = NULL;
	} else {
		fprintf(stderr, "no non-loopback IPv4 address here: the 403 part is left to "
				"test_netns.sh\n");
	}
	admin_stop(any);
}
END_TEST

START_TEST(test_404_405)
{
	struct http_reply r;
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/nothing", &r), 0);
	ck_assert_int_eq(r.status, 404);
	ck_assert_int_eq(http_get(AF_INET, port, "DELETE", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 405);
	ck_assert_ptr_nonnull(strcasestr(r.head, "allow: GET, HEAD"));
	ck_assert_int_eq(http_raw(AF_INET, port,
				  "POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
				  "Connection: close\r\n\r\nhello",
				  &r),
			 0);
	ck_assert_int_eq(r.status, 405);
	/* Garbage is answered (400) or dropped, and the server keeps serving. */
	(void)http_raw(AF_INET, port, "\x01\x02 garbage\r\n\r\n", &r);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
}
END_TEST

START_TEST(test_ipv6_and_errors)
{
	struct admin_server *a6 = NULL, *dup = NULL;
	struct http_reply r;
	char addr[64];

	if (admin_start("[::1]:0", NULL, &a6) == 0) {
		ck_assert_int_eq(http_get(AF_INET6, admin_port(a6), "GET", "/metrics", &r), 0);
		ck_assert_int_eq(r.status, 200);
		ck_assert_str_eq(r.body, "");
		admin_stop(a6);
	} else {
		fprintf(stderr, "no IPv6 loopback here: IPv6 part skipped\n");
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	ck_assert_int_eq(admin_start(addr, NULL, &dup), -EADDRINUSE);
	ck_assert_ptr_null(dup);
	ck_assert_int_eq(admin_start("127.0.0.1", NULL, &dup), -EINVAL);
	ck_assert_int_eq(admin_start("127.0.0.1:70000", NULL, &dup), -EINVAL);
	ck_assert_int_lt(admin_start("203.0.113.7:0", NULL, &dup), 0); /* not our address */
	admin_stop(NULL);
}
END_TEST

START_TEST(test_stop_releases_port)
{
	struct admin_server *again = NULL;
	char addr[64];
	struct http_reply r;

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
	admin_stop(srv);
	srv = NULL;
	ck_assert_int_ne(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(admin_start(addr, NULL, &again), 0);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	srv = again; /* teardown stops it */
}
END_TEST

START_TEST(test_split_hostport)
{
	char host[64];
	unsigned p = 7;

	ck_assert_int_eq(admin_split_hostport("127.0.0.1:15020", host, sizeof(host), &p), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_uint_eq(p, 15020);
	ck_assert_int_eq(admin_split_hostport("[::1]:80", host, sizeof(host), &p), 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_uint_eq(p, 80);
	ck_assert_int_eq(admin_split_hostport(":9", host, sizeof(host), &p), 0);
	ck_assert_str_eq(host, "");
	ck_assert_uint_eq(p, 9);
	ck_assert_int_eq(admin_split_hostport("localhost:0", host, sizeof(host), &p), 0);
	ck_assert_str_eq(host, "localhost");
	ck_assert_uint_eq(p, 0);
	p = 7;
	ck_assert_int_eq(admin_split_hostport("::1:80", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("[::1]80", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("[::1", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("h:", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("h:-1", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("h:+1", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("h:65536", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("h:80x", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("noport", host, sizeof(host), &p), -EINVAL);
	ck_assert_int_eq(admin_split_hostport("averylonghostname:1", host, 4, &p), -ENAMETOOLONG);
	ck_assert_uint_eq(p, 7);
}
END_TEST

START_TEST(test_connection_limit)
{
	struct http_reply r;
	int idle[40], n;

	/*
	 * One address's idle clients take its 8 slots: its next request is refused, not
	 * queued forever, while a client from another address (the kubelet) is still served.
	 */
	for (n = 0; n < 40; n++)
		idle[n] = connect_from("127.0.0.1", port);
	usleep(200 * 1000); /* let the admin thread accept them */
	src4 = "127.0.0.1";
	ck_assert_int_ne(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	src4 = "127.0.0.2";
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	src4 = NULL;
	for (int i = 0; i < n; i++)
		close(idle[i]);
	usleep(200 * 1000);
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
}
END_TEST

START_TEST(test_connection_limit_total)
{
	struct http_reply r;
	int idle[16 * 8];
	char src[32];

	/* 16 addresses x 8 idle connections fill all 128 slots: nobody else gets in. */
	for (int i = 0; i < 16 * 8; i++) {
		snprintf(src, sizeof(src), "127.0.1.%d", 1 + i / 8);
		idle[i] = connect_from(src, port);
	}
	usleep(300 * 1000);
	src4 = "127.0.2.1";
	ck_assert_int_ne(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	src4 = NULL;
	for (int i = 0; i < 16 * 8; i++)
		close(idle[i]);
	/* The slots come back as the admin thread reaps the closed connections. */
	int rc = -1;
	for (int tries = 0; tries < 50 && rc != 0; tries++) {
		usleep(100 * 1000);
		rc = http_get(AF_INET, port, "GET", "/healthz", &r);
	}
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(r.status, 200);
}
END_TEST

/* ---- one connection, raw bytes ---------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Write all of req (may be NULL) while reading what comes back, until the server closes
 * (returns the byte count, *eof true) or timeout_ms pass (*eof false). Interleaving
 * reads and writes lets a test pipeline more than the socket buffers hold.
 */
static size_t exchange(int fd, const char *req, size_t reqlen, char *buf, size_t cap,
		       int timeout_ms, bool *eof)
{
	size_t sent = 0, got = 0;
	long long end = now_ms() + timeout_ms;

	*eof = false;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN | (sent < reqlen ? POLLOUT : 0)};
		long long left = end - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if ((p.revents & POLLOUT) && sent < reqlen) {
			ssize_t n =
			    send(fd, req + sent, reqlen - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				*eof = true;
				break;
			}
			if (n > 0)
				got += (size_t)n;
			if (got == cap - 1)
				break;
		}
	}
	buf[got] = '\0';
	return got;
}

/* Non-overlapping occurrences; one pass (strstr in a loop is quadratic under ASan, whose
 * interceptor measures the whole haystack on every call). */
static int count_of(const char *hay, const char *needle)
{
	size_t nl = strlen(needle);
	int n = 0;

	for (const char *p = hay; *p; p++) {
		if (*p == needle[0] && strncmp(p, needle, nl) == 0) {
			n++;
			p += nl - 1;
		}
	}
	return n;
}

/* Pipelined requests on one connection: answered in order; "close" ends it. */
START_TEST(test_pipelined)
{
	static const char reqs[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
				   "HEAD /readyz HTTP/1.1\r\nHost: t\r\n\r\n"
				   "GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
				   "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	char buf[4096];
	bool eof;
	int fd = connect_from(NULL, port);
	const char *a, *b, *c;

	exchange(fd, reqs, sizeof(reqs) - 1, buf, sizeof(buf), 5000, &eof);
	close(fd);
	ck_assert(eof);
	ck_assert_int_eq(count_of(buf, "HTTP/1.1 "), 3); /* nothing after "close" */
	a = strstr(buf, "HTTP/1.1 200 OK\r\n");
	b = strstr(buf, "HTTP/1.1 503 Service Unavailable\r\n");
	c = strstr(buf, "HTTP/1.1 404 Not Found\r\n");
	ck_assert(a && b && c && a < b && b < c);
	ck_assert_ptr_nonnull(strstr(a, "\r\n\r\nok\n"));
	ck_assert_ptr_nonnull(strstr(b, "Content-Length: 10\r\n")); /* HEAD: no body */
	ck_assert_ptr_eq(strstr(b, "\r\n\r\n") + 4, c);
}
END_TEST

/* Keep-alive: a second request on the same connection after the first answer. */
START_TEST(test_keepalive)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	char buf[2048];
	bool eof;
	int fd = connect_from(NULL, port);

	for (int i = 0; i < 3; i++) {
		exchange(fd, req, sizeof(req) - 1, buf, sizeof(buf), 300, &eof);
		ck_assert(!eof);
		ck_assert_int_eq(count_of(buf, "HTTP/1.1 200 OK\r\n"), 1);
		ck_assert_ptr_null(strcasestr(buf, "connection: close"));
	}
	close(fd);
}
END_TEST

/* A request written a few bytes at a time (separate TCP segments) is one request. */
START_TEST(test_split_reads)
{
	static const char req[] =
	    "GET /metrics HTTP/1.1\r\nHost: t\r\nUser-Agent: split\r\nConnection: close\r\n\r\n";
	char buf[8192];
	bool eof;
	int fd = connect_from(NULL, port), one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (size_t off = 0; off < sizeof(req) - 1; off += 3) {
		size_t n = sizeof(req) - 1 - off < 3 ? sizeof(req) - 1 - off : 3;
		ck_assert_int_eq(send(fd, req + off, n, MSG_NOSIGNAL), (ssize_t)n);
		usleep(2000);
	}
	exchange(fd, NULL, 0, buf, sizeof(buf), 5000, &eof);
	close(fd);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "grpcguard_requests_total{grpc_code=\"OK\"} 3\n"));
}
END_TEST

/* Oversized headers get 431, garbage 400, and both connections close after the answer. */
START_TEST(test_bad_requests_close)
{
	char *big = malloc(20000), buf[4096];
	bool eof;
	int fd;

	ck_assert_ptr_nonnull(big);
	strcpy(big, "GET /healthz HTTP/1.1\r\nX-Big: ");
	memset(big + strlen(big), 'a', 16000);
	strcpy(big + strlen("GET /healthz HTTP/1.1\r\nX-Big: ") + 16000, "\r\n\r\n");
	fd = connect_from(NULL, port);
	exchange(fd, big, strlen(big), buf, sizeof(buf), 5000, &eof);
	close(fd);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
	ck_assert_int_eq(count_of(buf, "HTTP/1.1 "), 1);

	fd = connect_from(NULL, port);
	exchange(fd, "\x16\x03\x01\x02\x00garbage\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", 41, buf,
		 sizeof(buf), 5000, &eof);
	close(fd);
	ck_assert(eof);
	ck_assert_ptr_nonnull(strstr(buf, "HTTP/1.1 400 Bad Request\r\n"));
	ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
	ck_assert_int_eq(count_of(buf, "HTTP/1.1 "), 1);
	free(big);
}
END_TEST

/* A request body is never read, so it cannot smuggle a second request (here: /local
 * from a peer the route is not for would be 403 anyway; the point is that it is not
 * parsed at all). */
START_TEST(test_body_not_parsed)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 35\r\n\r\n"
				  "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	char buf[4096];
	bool eof;
	int fd = connect_from(NULL, port);

	exchange(fd, req, sizeof(req) - 1, buf, sizeof(buf), 5000, &eof);
	close(fd);
	ck_assert(eof);
	ck_assert_int_eq(count_of(buf, "HTTP/1.1 200 OK\r\n"), 1);
	ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
}
END_TEST

/*
 * A client that pipelines thousands of requests without reading: the server stops
 * reading while ~16 KiB of answers wait, and resumes as the client reads; every request
 * is answered, in order, and the server answers others meanwhile.
 */
START_TEST(test_pipelined_backpressure)
{
	static const char one[] = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
	static const char last[] = "GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	const int n = 20000;
	size_t len = (size_t)n * (sizeof(one) - 1) + sizeof(last) - 1, cap = 4u << 20;
	char *reqs = malloc(len + 1), *buf = malloc(cap);
	struct http_reply r;
	bool eof;
	int fd;

	ck_assert(reqs && buf);
	for (int i = 0; i < n; i++)
		memcpy(reqs + (size_t)i * (sizeof(one) - 1), one, sizeof(one) - 1);
	memcpy(reqs + (size_t)n * (sizeof(one) - 1), last, sizeof(last));
	/* Send without reading until the socket buffers are full (the server has stopped
	 * reading); another client is still served meanwhile. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	int small = 4096;
	struct sockaddr_in to = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	/* Small client buffers (before connect) so the stall comes early. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	size_t sent = 0;
	for (int stalls = 0; stalls < 20 && sent < len;) {
		ssize_t k = send(fd, reqs + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			sent += (size_t)k;
			continue;
		}
		stalls++;
		usleep(20 * 1000);
	}
	ck_assert_uint_lt(sent, len); /* it did stall */
	ck_assert_int_eq(http_get(AF_INET, port, "GET", "/healthz", &r), 0);
	ck_assert_int_eq(r.status, 200);
	close(fd);

	fd = connect_from(NULL, port);
	exchange(fd, reqs, len, buf, cap, 15000, &eof);
	close(fd);
	ck_assert(eof);
	ck_assert_int_eq(count_of(buf, "HTTP/1.1 200 OK\r\n"), n);
	ck_assert_int_eq(count_of(buf, "HTTP/1.1 503 "), 1);
	ck_assert_ptr_null(strstr(strstr(buf, "HTTP/1.1 503 "), "HTTP/1.1 200")); /* last */
	free(reqs);
	free(buf);
}
END_TEST

/*
 * Slowloris: a header dribbled one line per second never completes a request, and the
 * bytes do not reset the timer: the server closes the connection about 10 s after it
 * was opened (ADMIN_TIMEOUT_MS), without an answer.
 */
START_TEST(test_slowloris)
{
	char buf[512];
	bool eof = false;
	long long t0 = now_ms(), closed_at = -1;
	int fd = connect_from(NULL, port);

	ck_assert_int_gt(send(fd, "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL), 0);
	while (now_ms() - t0 < 14000) {
		if (send(fd, "X: y\r\n", 6, MSG_NOSIGNAL) < 0) {
			closed_at = now_ms();
			break;
		}
		exchange(fd, NULL, 0, buf, sizeof(buf), 1000, &eof);
		if (eof) {
			closed_at = now_ms();
			break;
		}
		ck_assert_str_eq(buf, ""); /* no answer to a request that never completes */
	}
	close(fd);
	ck_assert_int_ge(closed_at, 0);
	ck_assert_int_ge(closed_at - t0, 9000);
	ck_assert_int_le(closed_at - t0, 12500);
}
END_TEST

int main(void)
{
	Suite *s;
	const struct ut_case tests[] = {
	    {"healthz", test_healthz},
	    {"readyz", test_readyz_flag},
	    {"metrics", test_metrics},
	    {"routes", test_routes},
	    {"local_route", test_local_route},
	    {"404_405", test_404_405},
	    {"ipv6_and_errors", test_ipv6_and_errors},
	    {"stop", test_stop_releases_port},
	    {"connection_limit", test_connection_limit},
	    {"connection_limit_total", test_connection_limit_total},
	    {"pipelined", test_pipelined},
	    {"keepalive", test_keepalive},
	    {"split_reads", test_split_reads},
	    {"bad_requests_close", test_bad_requests_close},
	    {"body_not_parsed", test_body_not_parsed},
	    {"pipelined_backpressure", test_pipelined_backpressure},
	    {"slowloris", test_slowloris},
	};
	const struct ut_case pure[] = {{"split_hostport", test_split_hostport}};

	s = ut_suite("common/admin", tests, UT_COUNT(tests),
		     (struct ut_opts){.timeout_s = 20, .setup = setup, .teardown = teardown});
	ut_add_cases(s, pure, UT_COUNT(pure), (struct ut_opts){.timeout_s = 5});
	return ut_run(s);
}
