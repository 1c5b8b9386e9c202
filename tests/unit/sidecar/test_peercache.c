/* sidecar/peercache: the destination identity learned per original destination address. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "sidecar/peercache.h"
#include "tests/unit/runner.h"

static struct sockaddr_storage addr(const char *ip, unsigned port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		ck_assert_int_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
	}
	return ss;
}

static struct sc_peer_id id(const char *ns, const char *wl)
{
	struct sc_peer_id p;

	memset(&p, 0, sizeof(p));
	snprintf(p.ns, sizeof(p.ns), "%s", ns);
	snprintf(p.workload, sizeof(p.workload), "%s", wl);
	snprintf(p.sa, sizeof(p.sa), "%s", wl);
	return p;
}

static void setup(void)
{
	sc_peercache_clear();
}

START_TEST(learn_and_find)
{
	struct sockaddr_storage srv = addr("10.244.1.3", 8080);
	struct sockaddr_storage srv9090 = addr("10.244.1.3", 9090);
	struct sockaddr_storage other = addr("10.244.1.4", 8080);
	struct sockaddr_storage srv6 = addr("fd00::3", 8080);
	struct sc_peer_id s = id("demo", "server"), got = id("x", "untouched");

	ck_assert(!sc_peercache_find(&srv, 1000, &got));
	ck_assert_str_eq(got.workload, "untouched");
	sc_peercache_learn(&srv, &s, 1000);
	ck_assert(sc_peercache_find(&srv, 1500, &got));
	ck_assert_str_eq(got.ns, "demo");
	ck_assert_str_eq(got.workload, "server");
	ck_assert_str_eq(got.sa, "server");
	/* Another port, another address, another family: not the same destination. */
	got = id("x", "untouched");
	ck_assert(!sc_peercache_find(&srv9090, 1500, &got));
	ck_assert(!sc_peercache_find(&other, 1500, &got));
	ck_assert(!sc_peercache_find(&srv6, 1500, &got));
	ck_assert_str_eq(got.workload, "untouched");
	/* A later answer replaces the earlier one (a pod IP reused by another workload). */
	s = id("shop", "cart");
	sc_peercache_learn(&srv, &s, 2000);
	ck_assert(sc_peercache_find(&srv, 2000, &got));
	ck_assert_str_eq(got.workload, "cart");
	/* IPv6 works alike. */
	sc_peercache_learn(&srv6, &s, 2000);
	ck_assert(sc_peercache_find(&srv6, 2000, &got));
	/* Families other than IPv4/IPv6, and NULLs, are ignored. */
	struct sockaddr_storage unix_ss = {.ss_family = AF_UNIX};
	sc_peercache_learn(&unix_ss, &s, 1);
	ck_assert(!sc_peercache_find(&unix_ss, 1, &got));
	sc_peercache_learn(NULL, &s, 1);
	sc_peercache_learn(&srv, NULL, 1);
	ck_assert(!sc_peercache_find(NULL, 1, &got));
	ck_assert(!sc_peercache_find(&srv, 2000, NULL));
}
END_TEST

START_TEST(forget_and_expire)
{
	struct sockaddr_storage srv = addr("10.244.1.3", 8080);
	struct sc_peer_id s = id("demo", "server"), got;

	sc_peercache_learn(&srv, &s, 1000);
	sc_peercache_forget(&srv);
	ck_assert(!sc_peercache_find(&srv, 1000, &got));
	sc_peercache_forget(&srv); /* twice: nothing */
	sc_peercache_learn(&srv, &s, 1000);
	ck_assert(sc_peercache_find(&srv, 1000 + SC_PEERCACHE_TTL_MS - 1, &got));
	ck_assert(!sc_peercache_find(&srv, 1000 + SC_PEERCACHE_TTL_MS, &got));
	/* A clock before the learning time (another worker's loop read "now" earlier): fresh. */
	ck_assert(sc_peercache_find(&srv, 999, &got));
	/* Learned again: fresh. */
	sc_peercache_learn(&srv, &s, 1000 + SC_PEERCACHE_TTL_MS);
	ck_assert(sc_peercache_find(&srv, 1000 + SC_PEERCACHE_TTL_MS, &got));
}
END_TEST

START_TEST(bounded)
{
	struct sc_peer_id s = id("demo", "w"), got;
	char ip[32];

	/* One more address than slots: the one learned longest ago (the first) goes. */
	for (unsigned i = 0; i <= SC_PEERCACHE_SLOTS; i++) {
		struct sockaddr_storage a;
		snprintf(ip, sizeof(ip), "10.1.%u.%u", i / 256, i % 256);
		a = addr(ip, 8080);
		snprintf(s.workload, sizeof(s.workload), "w%u", i);
		sc_peercache_learn(&a, &s, 100 + i);
	}
	struct sockaddr_storage first = addr("10.1.0.0", 8080), second = addr("10.1.0.1", 8080);
	snprintf(ip, sizeof(ip), "10.1.%u.%u", SC_PEERCACHE_SLOTS / 256, SC_PEERCACHE_SLOTS % 256);
	struct sockaddr_storage last = addr(ip, 8080);
	ck_assert(!sc_peercache_find(&first, 500, &got));
	ck_assert(sc_peercache_find(&second, 500, &got));
	ck_assert_str_eq(got.workload, "w1");
	ck_assert(sc_peercache_find(&last, 500, &got));
	ck_assert_str_eq(got.workload, "w256");
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"learn", learn_and_find}, {"forget", forget_and_expire}, {"bounded", bounded}};
	return UT_RUN("sidecar/peercache", cases, .timeout_s = 10, .setup = setup);
}
