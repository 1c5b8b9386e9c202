/*
 * sidecar/gate: the canonical request form (path, method, scheme) that pods under an
 * authorization policy require, and the HTTP/1.x sniff of the connection door (issue 14).
 */
#include <check.h>
#include <string.h>

#include "sidecar/gate.h"
#include "tests/unit/runner.h"

static bool canon(const char *p)
{
	return sc_gate_path_canonical(p, strlen(p));
}

/* What real gRPC stacks send: accepted. */
START_TEST(path_accepts)
{
	static const char *const ok[] = {
	    "/helloworld.Greeter/SayHello",
	    "/demo.Echo/Secret",
	    "/grpc.health.v1.Health/Check",
	    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	    "/Svc/M",
	    "/a/b",
	    "/my_pkg.v2.My_Service/Do_It2",
	    "/non-proto-service/some-method", /* grpc-go generic handlers, other codecs */
	    "/.a/b",			      /* odd, but a name, not a path trick */
	    "/a.../b",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		ck_assert_msg(canon(ok[i]), "refused %s", ok[i]);
}
END_TEST

/* Every form a server or router could read as another method: refused. */
START_TEST(path_refuses)
{
	static const char *const bad[] = {
	    "",
	    "/",
	    "//",
	    "demo.Echo/Secret", /* no leading slash (:scheme grpc lets nghttp2 pass it) */
	    "/demo.Echo/Secret?x=1",
	    "/demo.Echo/Secret?",
	    "/demo.Echo/Secret#x",
	    "/demo.Echo/%53ecret",
	    "/demo%2EEcho/Secret",
	    "//demo.Echo/Secret",
	    "/demo.Echo//Secret",
	    "/demo.Echo/Secret/",
	    "/demo.Echo/Secret/x",
	    "/x/../demo.Echo/Secret",
	    "/./Secret",
	    "/../Secret",
	    "/demo.Echo/.",
	    "/demo.Echo/..",
	    "/demo.Echo",
	    "/demo.Echo/",
	    "/demo.Echo/Sec ret",
	    "/demo.Echo/Secret\t",
	    "/demo.Echo/Sec\x7fret",
	    "/demo.Echo/Secret\r",
	    "/demo.Echo/Secr\xc3\xa9t",
	    "/demo.Echo/Secret;x",
	    "/demo.Echo\\Secret",
	    "/demo.Echo/Secret+",
	    "/demo.Echo/Secret$",
	    "*",
	    "/*/*",
	    "http://h/demo.Echo/Secret",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!canon(bad[i]), "accepted %s", bad[i]);
	/* An embedded NUL: the length counts, not the C string. */
	ck_assert(!sc_gate_path_canonical("/a/b\0c", 6));
	ck_assert(sc_gate_path_canonical("/a/b\0c", 4));
	ck_assert(!sc_gate_path_canonical(NULL, 0));
}
END_TEST

struct hl {
	struct policy_header h[8];
	size_t n;
};

static void add(struct hl *l, const char *name, const char *value)
{
	ck_assert_uint_lt(l->n, 8);
	l->h[l->n++] = (struct policy_header){name, strlen(name), value, strlen(value)};
}

static struct hl grpc_req(const char *method, const char *scheme, const char *path)
{
	struct hl l = {.n = 0};
	if (method)
		add(&l, ":method", method);
	if (scheme)
		add(&l, ":scheme", scheme);
	if (path)
		add(&l, ":path", path);
	add(&l, ":authority", "svc:50051");
	add(&l, "content-type", "application/grpc");
	add(&l, "te", "trailers");
	return l;
}

static enum sc_gate_reason check(struct hl l)
{
	return sc_gate_check_request(l.h, l.n);
}

START_TEST(request_form)
{
	struct hl l;

	ck_assert_int_eq(check(grpc_req("POST", "http", "/demo.Echo/Hello")), SC_GATE_OK);
	ck_assert_int_eq(check(grpc_req("POST", "https", "/demo.Echo/Hello")), SC_GATE_OK);
	/* The bypass of issue 14: :scheme grpc with a path without its slash. */
	ck_assert_int_eq(check(grpc_req("POST", "grpc", "demo.Echo/Secret")), SC_GATE_PATH);
	ck_assert_int_eq(check(grpc_req("POST", "grpc", "/demo.Echo/Secret")), SC_GATE_SCHEME);
	ck_assert_int_eq(check(grpc_req("POST", "HTTP", "/demo.Echo/Secret")), SC_GATE_SCHEME);
	ck_assert_int_eq(check(grpc_req("POST", NULL, "/demo.Echo/Secret")), SC_GATE_SCHEME);
	ck_assert_int_eq(check(grpc_req("GET", "http", "/demo.Echo/Secret")), SC_GATE_METHOD);
	ck_assert_int_eq(check(grpc_req("post", "http", "/demo.Echo/Secret")), SC_GATE_METHOD);
	ck_assert_int_eq(check(grpc_req("CONNECT", NULL, NULL)), SC_GATE_PATH);
	ck_assert_int_eq(check(grpc_req(NULL, "http", "/demo.Echo/Secret")), SC_GATE_METHOD);
	ck_assert_int_eq(check(grpc_req("POST", "http", NULL)), SC_GATE_PATH);
	ck_assert_int_eq(check(grpc_req("POST", "http", "/demo.Echo/Secret?x=1")), SC_GATE_PATH);
	/* A pseudo-header twice, whichever copy is good. */
	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, ":path", "/demo.Echo/Secret");
	ck_assert_int_eq(check(l), SC_GATE_PATH);
	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, ":method", "POST");
	ck_assert_int_eq(check(l), SC_GATE_PATH);
	/* Regular headers named like the path do not count. */
	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, "path", "/x?y");
	add(&l, "x-path", "//");
	ck_assert_int_eq(check(l), SC_GATE_OK);
	ck_assert_str_eq(sc_gate_reason_name(SC_GATE_PATH), "path");
	ck_assert_str_eq(sc_gate_reason_name(SC_GATE_METHOD), "method");
	ck_assert_str_eq(sc_gate_reason_name(SC_GATE_SCHEME), "scheme");
	ck_assert_str_eq(sc_gate_reason_name(SC_GATE_AUTHORITY), "authority");
}
END_TEST

/* Red team: a Host that names another authority than :authority is refused. */
START_TEST(request_authority)
{
	struct hl l;

	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, "host", "svc:50051");
	ck_assert_int_eq(check(l), SC_GATE_OK); /* the same authority twice is fine */
	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, "host", "admin");
	ck_assert_int_eq(check(l), SC_GATE_AUTHORITY);
	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, "host", "svc:50051");
	add(&l, "host", "admin");
	ck_assert_int_eq(check(l), SC_GATE_AUTHORITY); /* any differing copy */
	l = grpc_req("POST", "http", "/demo.Echo/Hello");
	add(&l, "host", "SVC:50051");
	ck_assert_int_eq(check(l), SC_GATE_AUTHORITY); /* byte for byte, as the policy reads */
	/* No :authority: Host alone is the authority (the policy reads it as one). */
	l = (struct hl){.n = 0};
	add(&l, ":method", "POST");
	add(&l, ":scheme", "http");
	add(&l, ":path", "/demo.Echo/Hello");
	add(&l, "host", "admin");
	ck_assert_int_eq(check(l), SC_GATE_OK);
	/* The path is judged first. */
	l = grpc_req("POST", "http", "/demo.Echo/Hello?x");
	add(&l, "host", "admin");
	ck_assert_int_eq(check(l), SC_GATE_PATH);
}
END_TEST

static bool h1(const char *s)
{
	return sc_gate_looks_like_http1((const uint8_t *)s, strlen(s));
}

START_TEST(http1_sniff)
{
	ck_assert(h1("POST /demo.Echo/Secret HTTP/1.1\r\n"));
	ck_assert(h1("GET / HTTP/1.1\r\nUpgrade: h2c\r\n"));
	ck_assert(h1("OPTIONS * HTTP/1.1"));
	ck_assert(h1("PO")); /* the preface check gave up at the second byte */
	ck_assert(h1("P"));
	ck_assert(!h1(""));
	ck_assert(!h1("\x16\x03\x01\x02\x00")); /* a TLS ClientHello */
	ck_assert(!h1("SSH-2.0-OpenSSH"));
	ck_assert(!h1(" GET"));
	ck_assert(!h1("get / HTTP/1.1"));
	ck_assert(!h1("ABCDEFGHIJKLMNOPQRSTUVWXYZ /")); /* no method is that long */
	ck_assert(!sc_gate_looks_like_http1((const uint8_t *)"GET\0", 4));
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"path", path_accepts},	    {"path", path_refuses},
	    {"request_form", request_form}, {"request_authority", request_authority},
	    {"http1_sniff", http1_sniff},
	};
	return UT_RUN("sidecar/gate", tests, .timeout_s = 10);
}
