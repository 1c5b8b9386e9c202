/*
 * policy/json: policy_to_json has the YAML's shape with defaults filled in, and feeding
 * its output back to the parser (JSON is YAML) gives the same policy.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

static const char *data_path(const char *file)
{
	static char buf[2048];
	const char *root = getenv("GG_ROOT");
	snprintf(buf, sizeof(buf), "%s/tests/data/policy/%s", root ? root : ".", file);
	return buf;
}

static struct policy *load(const char *yaml)
{
	struct policy *p = NULL;
	struct policy_diag d;
	ck_assert_msg(policy_parse_buffer("t.yaml", yaml, strlen(yaml), &p, &d) == 0, "%s", d.text);
	return p;
}

START_TEST(test_all_fields)
{
	struct policy *p = NULL;
	struct policy_diag d;
	json_error_t err;
	json_t *want, *got;

	ck_assert_msg(policy_parse_file(data_path("all_fields.yaml"), &p, &d) == 0, "%s", d.text);
	want = json_load_file(data_path("all_fields.json"), 0, &err);
	ck_assert_msg(want != NULL, "%s", err.text);
	got = policy_to_json(p);
	ck_assert_ptr_nonnull(got);
	if (!json_equal(want, got)) {
		char *s = json_dumps(got, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		ck_abort_msg("policy_to_json differs from all_fields.json; got:\n%s", s);
		free(s);
	}
	json_decref(want);
	json_decref(got);
	policy_unref(p);
}
END_TEST

START_TEST(test_empty)
{
	struct policy *p = policy_new_empty();
	json_t *got = policy_to_json(p);
	json_t *want =
	    json_pack("{s:s, s:s, s:[], s:[], s:[]}", "apiVersion", "grpcguard.io/v1", "kind",
		      "Policy", "faults", "authorization", "requestAuthentication");
	ck_assert(json_equal(got, want));
	json_decref(got);
	got = policy_to_json(NULL);
	ck_assert(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	policy_unref(p);
}
END_TEST

START_TEST(test_tiny_percent_round_trip)
{
	struct policy *p = load("faults: [{abort: {grpcStatus: 14, percent: 0.00001}}]\n");
	json_t *j = policy_to_json(p);
	char *text = json_dumps(j, JSON_COMPACT);
	struct policy *p2 = load(text); /* jansson prints 1.0000000000000001e-05 */
	json_t *j2 = policy_to_json(p2);
	ck_assert(json_equal(j, j2));
	free(text);
	json_decref(j);
	json_decref(j2);
	policy_unref(p);
	policy_unref(p2);
}
END_TEST

START_TEST(test_durations_and_percents)
{
	static const struct {
		const char *in, *out;
	} t[] = {{"250ms", "250ms"}, {"1000ms", "1s"}, {"1.5s", "1.5s"}, {"1005ms", "1.005s"},
		 {"1.25s", "1.25s"}, {"90s", "90s"},   {"120s", "2m"},	 {"1h", "1h"},
		 {"0s", "0s"},	     {"1h30m", "90m"}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char yaml[256];
		snprintf(yaml, sizeof(yaml), "faults: [{delay: {fixed: %s, percent: 0.5}}]\n",
			 t[i].in);
		struct policy *p = load(yaml);
		json_t *j = policy_to_json(p);
		json_t *delay =
		    json_object_get(json_array_get(json_object_get(j, "faults"), 0), "delay");
		ck_assert_str_eq(json_string_value(json_object_get(delay, "fixed")), t[i].out);
		ck_assert(json_is_real(json_object_get(delay, "percent")));
		ck_assert(json_real_value(json_object_get(delay, "percent")) == 0.5);
		json_decref(j);
		policy_unref(p);
	}
}
END_TEST

/* JSON output, parsed again as YAML, prints the same JSON: nothing lost or renamed. */
START_TEST(test_round_trip)
{
	char dir[2048];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s", data_path(""));
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		struct policy *p = NULL, *p2;
		struct policy_diag diag;
		if (len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		ck_assert_msg(policy_parse_file(data_path(e->d_name), &p, &diag) == 0, "%s",
			      diag.text);
		json_t *j1 = policy_to_json(p);
		char *text = json_dumps(j1, JSON_COMPACT);
		ck_assert_ptr_nonnull(text);
		p2 = load(text);
		json_t *j2 = policy_to_json(p2);
		ck_assert_msg(json_equal(j1, j2), "%s does not round-trip", e->d_name);
		free(text);
		json_decref(j1);
		json_decref(j2);
		policy_unref(p);
		policy_unref(p2);
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 3);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"shape", test_all_fields},
	    {"shape", test_empty},
	    {"shape", test_durations_and_percents},
	    {"round_trip", test_round_trip},
	    {"round_trip", test_tiny_percent_round_trip},
	};
	return UT_RUN("policy/json", tests, .timeout_s = 10);
}
