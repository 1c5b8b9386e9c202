/*
 * policy/match: method and value patterns (exact, prefix*, *suffix, *).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

static const struct {
	const char *pattern, *method;
	bool match;
} cases[] = {
    {"/helloworld.Greeter/SayHello", "/helloworld.Greeter/SayHello", true},
    {"/helloworld.Greeter/SayHello", "/helloworld.Greeter/SayHell", false},
    {"/helloworld.Greeter/SayHello", "/helloworld.Greeter/SayHelloX", false},
    {"/helloworld.Greeter/SayHello", "/helloworld.greeter/SayHello", false}, /* case matters */
    {"/helloworld.Greeter/*", "/helloworld.Greeter/SayHello", true},
    {"/helloworld.Greeter/*", "/helloworld.Greeter/", true},
    {"/helloworld.Greeter/*", "/helloworld.Greeter", false},
    {"/helloworld.Greeter/*", "/helloworld.GreeterX/SayHello", false},
    {"*", "/a.B/C", true},
    {"*", "", true},
    {"*Hello", "/helloworld.Greeter/SayHello", true},
    {"*Hello", "/helloworld.Greeter/SayBye", false},
    {"", "", true},
    {"", "/a", false},
};

START_TEST(test_patterns)
{
	const char *m = cases[_i].method;
	ck_assert_msg(policy_method_match(cases[_i].pattern, m, strlen(m)) == cases[_i].match,
		      "%s vs %s", cases[_i].pattern, m);
}
END_TEST

START_TEST(test_length_bounded)
{
	/* The method is not NUL-terminated at method_len. */
	ck_assert(policy_method_match("/a.B/C", "/a.B/CD", 6));
	ck_assert(!policy_method_match("/a.B/CD", "/a.B/CD", 6));
	ck_assert(!policy_method_match(NULL, "/a", 2));
	ck_assert(!policy_method_match("*", NULL, 0));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy/match");
	TCase *tc = ut_tcase(s, "patterns", (struct ut_opts){.timeout_s = 10});

	tcase_add_loop_test(tc, test_patterns, 0, (int)UT_COUNT(cases));
	tcase_add_test(tc, test_length_bounded);
	return ut_run(s);
}
