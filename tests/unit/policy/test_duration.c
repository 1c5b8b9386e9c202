/*
 * policy/duration: the accepted forms and every rejection.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

static const struct {
	const char *s;
	uint64_t ms;
} good[] = {
    {"250ms", 250},
    {"1.5s", 1500},
    {"10s", 10000},
    {"2m", 120000},
    {"1h", 3600000},
    {"0s", 0},
    {"0", 0},
    {"1m30s", 90000},
    {"1h2m3s4ms", 3723004},
    {"0.5ms", 0},
    {"1500us", 1},
    {".5s", 500},
    {"5.s", 5000},
    {"0.0001s", 0},
    {"720h", 2592000000ull},
    {"1.123456789123s", 1123},
};

static const char *const bad[] = {
    "",	    "10",    "s",   "ms",   "1.5",    "-1s", "+1s",  "1 s",  " 1s",
    "1s ",  "1d",    "1S",  "1sec", "1.2.3s", "..s", "1ms5", "721h", "99999999999999999999s",
    "1e3s", "0x10s", "1hh",
};

START_TEST(test_good)
{
	uint64_t ms = 77;
	const char *s = good[_i].s;
	ck_assert_msg(policy_parse_duration(s, strlen(s), &ms) == 0, "%s", s);
	ck_assert_msg(ms == good[_i].ms, "%s: %llu", s, (unsigned long long)ms);
}
END_TEST

START_TEST(test_bad)
{
	uint64_t ms = 77;
	const char *s = bad[_i];
	ck_assert_msg(policy_parse_duration(s, strlen(s), &ms) < 0, "%s accepted", s);
	ck_assert_uint_eq(ms, 77); /* untouched */
}
END_TEST

START_TEST(test_not_nul_terminated)
{
	uint64_t ms = 0;
	ck_assert_int_eq(policy_parse_duration("10s0", 3, &ms), 0);
	ck_assert_uint_eq(ms, 10000);
	ck_assert_int_lt(policy_parse_duration(NULL, 3, &ms), 0);
}
END_TEST

int main(void)
{
	const struct ut_opts o = {.timeout_s = 10};
	Suite *s = suite_create("policy/duration");
	TCase *tc = ut_tcase(s, "accepted", o);

	tcase_add_loop_test(tc, test_good, 0, (int)UT_COUNT(good));
	tcase_add_test(tc, test_not_nul_terminated);
	tcase_add_loop_test(ut_tcase(s, "rejected", o), test_bad, 0, (int)UT_COUNT(bad));
	return ut_run(s);
}
