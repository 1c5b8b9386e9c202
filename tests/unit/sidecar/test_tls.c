/* sidecar/tls: the negative cache of destinations without a sidecar. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "sidecar/tls.h"
#include "tests/unit/runner.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, ip, &in->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &in6->sin6_addr);
	return ss;
}

static struct sc_negcache nc;

START_TEST(remember_and_expire)
{
	struct sockaddr_storage a = v4("10.0.0.1", 8080), b = v4("10.0.0.1", 8081),
				c = v6("fd00::1", 8080);

	memset(&nc, 0, sizeof(nc));
	ck_assert(!sc_negcache_has(&nc, &a, 1000));
	sc_negcache_add(&nc, &a, 1000);
	ck_assert(sc_negcache_has(&nc, &a, 1000));
	ck_assert(sc_negcache_has(&nc, &a, 1000 + SC_NEGCACHE_TTL_MS - 1));
	ck_assert(!sc_negcache_has(&nc, &a, 1000 + SC_NEGCACHE_TTL_MS));
	/* Per ip:port and family. */
	ck_assert(!sc_negcache_has(&nc, &b, 1000));
	ck_assert(!sc_negcache_has(&nc, &c, 1000));
	sc_negcache_add(&nc, &c, 2000);
	ck_assert(sc_negcache_has(&nc, &c, 2000));
	/* Adding again refreshes, without a second entry. */
	sc_negcache_add(&nc, &a, 50000);
	ck_assert(sc_negcache_has(&nc, &a, 50000 + SC_NEGCACHE_TTL_MS - 1));
	/* Not an IP address: never remembered. */
	struct sockaddr_storage u;
	memset(&u, 0, sizeof(u));
	u.ss_family = AF_UNIX;
	sc_negcache_add(&nc, &u, 1000);
	ck_assert(!sc_negcache_has(&nc, &u, 1000));
}
END_TEST

START_TEST(bounded)
{
	/* Many more destinations than slots: memory stays fixed, recent ones are kept
	 * (each probe window replaces the entry that expires first), nothing crashes. */
	char ip[32];
	unsigned kept = 0;

	memset(&nc, 0, sizeof(nc));
	for (unsigned i = 0; i < 10 * SC_NEGCACHE_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		struct sockaddr_storage a = v4(ip, 80);
		sc_negcache_add(&nc, &a, 1000 + i);
		ck_assert(sc_negcache_has(&nc, &a, 1000 + i));
	}
	for (unsigned i = 9 * SC_NEGCACHE_SLOTS; i < 10 * SC_NEGCACHE_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		struct sockaddr_storage a = v4(ip, 80);
		kept += sc_negcache_has(&nc, &a, 1000 + 10 * SC_NEGCACHE_SLOTS);
	}
	ck_assert_uint_ge(kept, SC_NEGCACHE_SLOTS / 2);
	ck_assert_uint_le(kept, SC_NEGCACHE_SLOTS);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"negcache", remember_and_expire},
	    {"negcache", bounded},
	};
	return UT_RUN("sidecar/tls", cases, .timeout_s = 10);
}
