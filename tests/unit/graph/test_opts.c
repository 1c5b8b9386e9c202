/*
 * graph/opts: the checks that stand between a flag value and the PromQL and URL it goes
 * into: durations, namespace names, Prometheus URLs.
 */
#include <string.h>

#include "graph/opts.h"
#include "tests/unit/runner.h"

START_TEST(durations)
{
	static const struct {
		const char *s;
		unsigned long secs;
	} ok[] = {{"1s", 1}, {"30s", 30}, {"5m", 300}, {"1h", 3600}, {"2d", 172800}, {"007m", 420}};
	static const char *const bad[] = {
	    "",	   "5",	   "m",	  "5x", "5 m", " 5m", "5m ", "-5m",
	    "+5m", "1.5m", "5ms", "1w", "0s",  "31d", "5mm", "99999999999999999999s"};
	unsigned long v;

	for (size_t i = 0; i < UT_COUNT(ok); i++) {
		v = 0;
		ck_assert_msg(gr_parse_duration(ok[i].s, 1, 30 * 86400, &v) == 0, "%s", ok[i].s);
		ck_assert_uint_eq(v, ok[i].secs);
	}
	for (size_t i = 0; i < UT_COUNT(bad); i++) {
		v = 42;
		ck_assert_msg(gr_parse_duration(bad[i], 1, 30 * 86400, &v) == -1, "\"%s\" accepted",
			      bad[i]);
		ck_assert_uint_eq(v, 42);
	}
	ck_assert_int_eq(gr_parse_duration("300s", 1, 300, &v), 0);
	ck_assert_int_eq(gr_parse_duration("301s", 1, 300, &v), -1);
	ck_assert_int_eq(gr_parse_duration("6m", 1, 300, &v), -1);
}
END_TEST

START_TEST(namespaces)
{
	static const char *const ok[] = {"demo", "a", "kube-system", "a1-b2", "0"};
	static const char *const bad[] = {"",	   "Demo", "-demo", "demo-", "de mo",	   "de_mo",
					  "de.mo", "a\"}", "a\\",   "x{y}",  "d\xc3\xa9mo"};
	char longest[65];

	for (size_t i = 0; i < UT_COUNT(ok); i++)
		ck_assert_msg(gr_valid_namespace(ok[i]), "%s", ok[i]);
	for (size_t i = 0; i < UT_COUNT(bad); i++)
		ck_assert_msg(!gr_valid_namespace(bad[i]), "\"%s\" accepted", bad[i]);
	memset(longest, 'a', 63);
	longest[63] = '\0';
	ck_assert(gr_valid_namespace(longest));
	longest[63] = 'a';
	longest[64] = '\0';
	ck_assert(!gr_valid_namespace(longest));
}
END_TEST

START_TEST(urls)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"http://127.0.0.1:9090", "http://127.0.0.1:9090"},
	    {"http://127.0.0.1:9090/", "http://127.0.0.1:9090"},
	    {"https://prom.example.com/prometheus//", "https://prom.example.com/prometheus"},
	    {"http://[::1]:9090", "http://[::1]:9090"},
	};
	static const char *const bad[] = {
	    "",		 "127.0.0.1:9090", "ftp://x",	  "file:///etc/passwd", "http://",
	    "http:///x", "http://a b",	   "http://a\tb", "http://a\nb",	"HTTP://x"};
	char dst[64], big[1100];

	for (size_t i = 0; i < UT_COUNT(ok); i++) {
		ck_assert_int_eq(gr_normalize_url(ok[i].in, dst, sizeof(dst)), 0);
		ck_assert_str_eq(dst, ok[i].out);
	}
	for (size_t i = 0; i < UT_COUNT(bad); i++) {
		strcpy(dst, "untouched");
		ck_assert_msg(gr_normalize_url(bad[i], dst, sizeof(dst)) == -1, "\"%s\" accepted",
			      bad[i]);
		ck_assert_str_eq(dst, "untouched");
	}
	memcpy(big, "http://", 7);
	memset(big + 7, 'a', sizeof(big) - 8);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(gr_normalize_url(big, dst, sizeof(dst)), -1);
	/* Fits the rules but not the caller's buffer. */
	ck_assert_int_eq(gr_normalize_url("http://0123456789.example.com", dst, 10), -1);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"durations", durations},
	    {"namespaces", namespaces},
	    {"urls", urls},
	};
	return UT_RUN("graph/opts", cases, .timeout_s = 10);
}
