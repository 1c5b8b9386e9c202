/*
 * policy/labels: the downward API labels file.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

static struct policy_labels *ok(const char *text)
{
	struct policy_labels *l = NULL;
	struct policy_diag d;
	ck_assert_msg(policy_labels_parse(text, strlen(text), &l, &d) == 0, "%s", d.text);
	ck_assert_ptr_nonnull(l);
	return l;
}

START_TEST(test_downward_api_format)
{
	struct policy_labels *l = ok("app=\"server\"\n"
				     "app.kubernetes.io/name=\"greeter\"\r\n"
				     "\n"
				     "pod-template-hash=\"7d9f8c\"\n"
				     "empty=\"\"\n"
				     "esc=\"a\\\"b\\\\c\\n\\x41\"");
	ck_assert_str_eq(policy_labels_get(l, "app"), "server");
	ck_assert_str_eq(policy_labels_get(l, "app.kubernetes.io/name"), "greeter");
	ck_assert_str_eq(policy_labels_get(l, "pod-template-hash"), "7d9f8c");
	ck_assert_str_eq(policy_labels_get(l, "empty"), "");
	ck_assert_str_eq(policy_labels_get(l, "esc"), "a\"b\\c\nA");
	ck_assert_ptr_null(policy_labels_get(l, "missing"));
	ck_assert_ptr_null(policy_labels_get(l, "ap"));
	ck_assert_ptr_null(policy_labels_get(l, NULL));
	ck_assert_ptr_null(policy_labels_get(NULL, "app"));
	policy_labels_free(l);
	policy_labels_free(NULL);
	l = ok("");
	ck_assert_ptr_null(policy_labels_get(l, "app"));
	policy_labels_free(l);
}
END_TEST

static const struct {
	const char *text, *diag;
} bad[] = {
    {"app", "labels:1:1: expected key=\"value\""},
    {"a=\"b\"\n=\"x\"", "labels:2:1: expected key=\"value\""},
    {"app=server", "labels:1:5: value of \"app\" is not a quoted string (expected key=\"value\")"},
    {"app=\"server",
     "labels:1:5: value of \"app\" is not a quoted string (expected key=\"value\")"},
    {"app=\"a\"b\"",
     "labels:1:7: value of \"app\" is not a quoted string (expected key=\"value\")"},
    {"app=\"a\\q\"",
     "labels:1:7: value of \"app\" is not a quoted string (expected key=\"value\")"},
    {"app=\"\\x4\"",
     "labels:1:6: value of \"app\" is not a quoted string (expected key=\"value\")"},
    {"app=\"a\"\napp=\"b\"", "labels:2:1: duplicate label \"app\""},
};

START_TEST(test_bad)
{
	struct policy_labels *l = (struct policy_labels *)0x1;
	struct policy_diag d;
	ck_assert_int_lt(policy_labels_parse(bad[_i].text, strlen(bad[_i].text), &l, &d), 0);
	ck_assert_ptr_null(l);
	ck_assert_str_eq(d.text, bad[_i].diag);
}
END_TEST

START_TEST(test_nul_byte)
{
	struct policy_labels *l = NULL;
	struct policy_diag d;
	ck_assert_int_lt(policy_labels_parse("a=\"b\0\"", 6, &l, &d), 0);
	ck_assert_str_eq(d.text, "labels:1:1: NUL byte in line");
}
END_TEST

int main(void)
{
	const struct ut_opts o = {.timeout_s = 10};
	Suite *s = suite_create("policy/labels");
	TCase *tc;

	tcase_add_test(ut_tcase(s, "parse", o), test_downward_api_format);
	tc = ut_tcase(s, "errors", o);
	tcase_add_loop_test(tc, test_bad, 0, (int)UT_COUNT(bad));
	tcase_add_test(tc, test_nul_byte);
	return ut_run(s);
}
