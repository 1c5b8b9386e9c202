/*
 * policy/cidr: parsing (forms, masking, rejections) and containment edges.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

static const struct sockaddr *addr(struct sockaddr_storage *ss, const char *ip)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

static bool contains(const char *cidr, const char *ip)
{
	struct policy_cidr c;
	struct sockaddr_storage ss;
	ck_assert_msg(policy_parse_cidr(cidr, &c) == 0, "%s", cidr);
	return policy_cidr_contains(&c, addr(&ss, ip));
}

START_TEST(test_parse_forms)
{
	struct policy_cidr c;
	ck_assert_int_eq(policy_parse_cidr("10.0.0.0/8", &c), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix_len, 8);
	ck_assert_int_eq(policy_parse_cidr("192.168.1.7", &c), 0);
	ck_assert_uint_eq(c.prefix_len, 32);
	ck_assert_int_eq(policy_parse_cidr("2001:db8::/32", &c), 0);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix_len, 32);
	ck_assert_int_eq(policy_parse_cidr("::1", &c), 0);
	ck_assert_uint_eq(c.prefix_len, 128);
	ck_assert_int_eq(policy_parse_cidr("0.0.0.0/0", &c), 0);
	ck_assert_uint_eq(c.prefix_len, 0);
	ck_assert_int_eq(policy_parse_cidr("::/0", &c), 0);
	/* Host bits are cleared, as Istio does. */
	ck_assert_int_eq(policy_parse_cidr("10.1.2.3/8", &c), 0);
	ck_assert_uint_eq(c.addr[0], 10);
	ck_assert_uint_eq(c.addr[1], 0);
	ck_assert_uint_eq(c.addr[3], 0);
	ck_assert_int_eq(policy_parse_cidr("10.1.2.255/25", &c), 0);
	ck_assert_uint_eq(c.addr[3], 128);
}
END_TEST

static const char *const bad[] = {
    "",
    "/8",
    "10.0.0.0/",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "10.0.0.0/08",
    "10.0.0.0/8/8",
    "10.0.0/8",
    "10.0.0.256",
    "2001:db8::/129",
    "2001:db8:::/32",
    "host.example",
    "10.0.0.0 /8",
    "10.0.0.0/ 8",
    "10.0.0.0/8a",
    "::ffff:1.2.3.4.5",
    "1111:2222:3333:4444:5555:6666:7777:8888:9999",
};

START_TEST(test_parse_bad)
{
	struct policy_cidr c = {.family = 99};
	ck_assert_msg(policy_parse_cidr(bad[_i], &c) < 0, "%s accepted", bad[_i]);
	ck_assert_int_eq(c.family, 99); /* untouched */
}
END_TEST

START_TEST(test_contains_v4)
{
	ck_assert(contains("0.0.0.0/0", "0.0.0.0"));
	ck_assert(contains("0.0.0.0/0", "255.255.255.255"));
	ck_assert(contains("10.0.0.0/8", "10.255.255.255"));
	ck_assert(!contains("10.0.0.0/8", "11.0.0.0"));
	ck_assert(!contains("10.0.0.0/8", "9.255.255.255"));
	ck_assert(contains("10.1.2.3/32", "10.1.2.3"));
	ck_assert(!contains("10.1.2.3/32", "10.1.2.2"));
	ck_assert(contains("10.1.2.3/31", "10.1.2.2"));
	ck_assert(!contains("10.1.2.3/31", "10.1.2.4"));
	/* IPv4-mapped IPv6 peers count as IPv4. */
	ck_assert(contains("10.0.0.0/8", "::ffff:10.1.1.1"));
	ck_assert(!contains("10.0.0.0/8", "::ffff:11.1.1.1"));
	/* Other IPv6 never matches an IPv4 block, not even /0. */
	ck_assert(!contains("0.0.0.0/0", "::1"));
	ck_assert(!contains("0.0.0.0/0", "::a01:101")); /* IPv4-compatible, not mapped */
}
END_TEST

START_TEST(test_contains_v6)
{
	ck_assert(contains("::/0", "::"));
	ck_assert(contains("::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
	ck_assert(contains("::/0", "1.2.3.4")); /* as ::ffff:1.2.3.4 */
	ck_assert(contains("2001:db8::1/128", "2001:db8::1"));
	ck_assert(!contains("2001:db8::1/128", "2001:db8::"));
	ck_assert(contains("2001:db8::/33", "2001:db8:7fff::1"));
	ck_assert(!contains("2001:db8::/33", "2001:db8:8000::1"));
	ck_assert(contains("::ffff:0:0/96", "8.8.8.8"));
	ck_assert(contains("fe80::/10", "febf::1"));
	ck_assert(!contains("fe80::/10", "fec0::1"));
}
END_TEST

START_TEST(test_contains_null_and_family)
{
	struct policy_cidr c;
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert_int_eq(policy_parse_cidr("0.0.0.0/0", &c), 0);
	ck_assert(!policy_cidr_contains(&c, NULL));
	ck_assert(!policy_cidr_contains(NULL, addr(&ss, "1.2.3.4")));
	ss.ss_family = AF_UNIX;
	ck_assert(!policy_cidr_contains(&c, (const struct sockaddr *)&ss));
}
END_TEST

int main(void)
{
	const struct ut_opts o = {.timeout_s = 10};
	Suite *s = suite_create("policy/cidr");
	TCase *tc = ut_tcase(s, "parse", o);
	const struct ut_case tests[] = {
	    {"contains", test_contains_v4},
	    {"contains", test_contains_v6},
	    {"contains", test_contains_null_and_family},
	};

	tcase_add_test(tc, test_parse_forms);
	tcase_add_loop_test(tc, test_parse_bad, 0, (int)UT_COUNT(bad));
	ut_add_cases(s, tests, UT_COUNT(tests), o);
	return ut_run(s);
}
