/* sidecar/config: flag parsing, defaults, and the one-line reasons for bad flags. */
#include <check.h>
#include <string.h>

#include "sidecar/config.h"
#include "tests/unit/runner.h"

static int parse(struct sc_config *c, char *err, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"run";
	while (*args)
		argv[argc++] = (char *)*args++;
	sc_config_defaults(c);
	return sc_config_parse(argc, argv, c, err, 256);
}

START_TEST(defaults)
{
	struct sc_config c;
	char err[256];
	const char *const a[] = {NULL};
	ck_assert_int_eq(parse(&c, err, a), 0);
	ck_assert_str_eq(c.listen, "[::]:15006");
	ck_assert(c.original_dst);
	ck_assert_str_eq(c.admin, "127.0.0.1:15020");
	ck_assert_str_eq(c.policy, "/etc/grpcguard/policy/policy.yaml");
	ck_assert_uint_eq(c.workers, 1);
	ck_assert_uint_eq(c.max_connections, 1024);
	ck_assert_uint_eq(c.max_concurrent_streams, 256);
	ck_assert_uint_eq(c.max_header_list_bytes, 65536);
	ck_assert_uint_eq(c.max_pending_bytes, 1048576);
	ck_assert_uint_eq(c.max_delayed, 1000);
	ck_assert_uint_eq(c.idle_timeout_ms, 300000);
	ck_assert_uint_eq(c.drain_time_ms, 10000);
	ck_assert_uint_eq(c.upstream_connect_timeout_ms, 1000);
	ck_assert(!c.have_seed);
	ck_assert_ptr_null(c.outbound_listen); /* off unless asked (the injector asks) */
}
END_TEST

START_TEST(outbound_listen)
{
	struct sc_config c;
	char err[256];
	const char *const on[] = {"--outbound-listen", "[::]:15001", NULL};
	const char *const off[] = {"--outbound-listen=off", NULL};
	const char *const empty[] = {"--outbound-listen=", NULL};
	const char *const missing[] = {"--outbound-listen", NULL};

	ck_assert_int_eq(parse(&c, err, on), 0);
	ck_assert_str_eq(c.outbound_listen, "[::]:15001");
	ck_assert_int_eq(parse(&c, err, off), 0);
	ck_assert_ptr_null(c.outbound_listen);
	ck_assert_int_eq(parse(&c, err, empty), -1);
	ck_assert_str_eq(err, "--outbound-listen: empty value");
	ck_assert_int_eq(parse(&c, err, missing), -1);
	ck_assert_str_eq(err, "--outbound-listen needs a value");
}
END_TEST

START_TEST(values)
{
	struct sc_config c;
	char err[256];
	const char *const a[] = {"--listen",
				 "127.0.0.1:1",
				 "--upstream=127.0.0.1:2",
				 "--workers",
				 "4",
				 "--seed",
				 "18446744073709551615",
				 "--idle-timeout",
				 "2m",
				 "--drain-time",
				 "1.5s",
				 "--admin",
				 "off",
				 "--log-level",
				 "debug",
				 "--max-delayed",
				 "0",
				 NULL};
	ck_assert_int_eq(parse(&c, err, a), 0);
	ck_assert_str_eq(c.listen, "127.0.0.1:1");
	ck_assert_str_eq(c.upstream, "127.0.0.1:2");
	ck_assert(!c.original_dst);
	ck_assert_uint_eq(c.workers, 4);
	ck_assert(c.have_seed);
	ck_assert_uint_eq(c.seed, UINT64_MAX);
	ck_assert_uint_eq(c.idle_timeout_ms, 120000);
	ck_assert_uint_eq(c.drain_time_ms, 1500);
	ck_assert_ptr_null(c.admin);
	ck_assert_int_eq(c.log_level, LOGL_DEBUG);
	ck_assert_uint_eq(c.max_delayed, 0);
}
END_TEST

START_TEST(errors)
{
	struct sc_config c;
	char err[256];
	const char *const a1[] = {"--nope", NULL};
	const char *const a2[] = {"--workers", "0", NULL};
	const char *const a3[] = {"--workers", NULL};
	const char *const a4[] = {"--idle-timeout", "soon", NULL};
	const char *const a5[] = {"--log-level", "loud", NULL};
	const char *const a6[] = {"stray", NULL};
	const char *const a7[] = {"--max-pending-bytes", "100", NULL};
	const char *const a8[] = {"--workers", "3x", NULL};
	ck_assert_int_eq(parse(&c, err, a1), -1);
	ck_assert(strstr(err, "--nope"));
	ck_assert_int_eq(parse(&c, err, a2), -1);
	ck_assert(strstr(err, "between 1 and 64"));
	ck_assert_int_eq(parse(&c, err, a3), -1);
	ck_assert(strstr(err, "needs a value"));
	ck_assert_int_eq(parse(&c, err, a4), -1);
	ck_assert(strstr(err, "duration"));
	ck_assert_int_eq(parse(&c, err, a5), -1);
	ck_assert_int_eq(parse(&c, err, a6), -1);
	ck_assert_int_eq(parse(&c, err, a7), -1);
	ck_assert_int_eq(parse(&c, err, a8), -1);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"defaults", defaults},
	    {"outbound_listen", outbound_listen},
	    {"values", values},
	    {"errors", errors},
	};
	return UT_RUN("sidecar/config", tests, .timeout_s = 10);
}
