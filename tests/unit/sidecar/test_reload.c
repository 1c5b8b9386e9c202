/* sidecar/reload: the snapshot swap on file changes, last-good on errors, empty/missing
 * files ignored, labels parsed into each snapshot, /policy JSON. Uses a temp directory. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "sidecar/reload.h"
#include "sidecar/stats.h"
#include "tests/unit/runner.h"

static char dir[64], pol[128], lab[128];

static void setup(void)
{
	strcpy(dir, "/tmp/gg-reload-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pol, sizeof(pol), "%s/policy.yaml", dir);
	snprintf(lab, sizeof(lab), "%s/labels", dir);
	ck_assert_int_eq(sc_stats_init(), 0);
}

static void teardown(void)
{
	unlink(pol);
	unlink(lab);
	rmdir(dir);
	sc_stats_free();
}

static json_t *policy_view(void)
{
	char *body = NULL;
	size_t len = 0;
	const char *ctype;
	json_t *j;
	ck_assert_int_eq(sc_reload_policy_route(NULL, &body, &len, &ctype), 200);
	j = json_loadb(body, len, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(j);
	return j;
}

#define HEAD "apiVersion: grpcguard.io/v1\nkind: Policy\n"
#define ONE_FAULT                                                                                  \
	HEAD "faults:\n  - name: f\n    match: {methods: [\"*\"]}\n    abort: {grpcStatus: 14, "   \
	     "percent: 100}\n"

START_TEST(lifecycle)
{
	uv_loop_t loop;
	struct sc_snap *s;
	json_t *j;
	uint64_t gen;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	/* The workload identity: from the env, then from the labels once they come. */
	setenv("POD_NAME", "api-7d4b9c8f5-x2k9p", 1);
	setenv("POD_NAMESPACE", "demo", 1);
	unsetenv("SERVICE_ACCOUNT");
	/* Missing file: an empty policy, generation 1. */
	ck_assert_int_eq(sc_reload_init(&loop, pol, lab), 0);
	s = sc_state_current();
	ck_assert_uint_eq(s->generation, 1);
	ck_assert_uint_eq(policy_fault_count(s->policy), 0);
	ck_assert_ptr_null(s->labels);
	ck_assert_str_eq(s->self.value, "ns=demo;wl=api;sa=unknown");
	gen = s->generation;
	sc_snap_unref(s);

	/* The file appears; labels too. */
	ut_replace_file(pol, ONE_FAULT);
	ut_replace_file(lab, "app=\"server\"\n");
	sc_reload_check();
	s = sc_state_current();
	ck_assert_uint_gt(s->generation, gen);
	ck_assert_uint_eq(policy_fault_count(s->policy), 1);
	ck_assert_ptr_nonnull(s->labels);
	ck_assert_str_eq(policy_labels_get(s->labels, "app"), "server");
	ck_assert_str_eq(s->self.id.workload, "server");
	gen = s->generation;
	sc_snap_unref(s);

	/* Unchanged content: no new generation. */
	ut_replace_file(pol, ONE_FAULT);
	sc_reload_check();
	ck_assert_uint_eq(sc_state_generation(), gen);

	/* A bad file: last good stays, the error is visible. */
	ut_replace_file(pol, HEAD "faults: [{name: x, delay: {fixed: soon}}]\n");
	sc_reload_check();
	ck_assert_uint_eq(sc_state_generation(), gen);
	j = policy_view();
	ck_assert(json_is_string(json_object_get(j, "last_error")));
	ck_assert(strstr(json_string_value(json_object_get(j, "last_error")), "policy.yaml:3:"));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "generation")), (json_int_t)gen);
	json_decref(j);
	ck_assert_uint_eq((unsigned)metrics_value(sc_stats.reload_fail), 1);

	/* Empty file and deleted file: ignored. */
	ut_replace_file(pol, "");
	sc_reload_check();
	ck_assert_uint_eq(sc_state_generation(), gen);
	unlink(pol);
	sc_reload_check();
	ck_assert_uint_eq(sc_state_generation(), gen);
	s = sc_state_current();
	ck_assert_uint_eq(policy_fault_count(s->policy), 1);

	/* A good file again: swapped, error cleared; the old snapshot stays valid for its holder.
	 */
	ut_replace_file(
	    pol, HEAD "authorization:\n  - name: a\n    action: DENY\n    rules: [{to: [{methods: "
		      "[\"*\"]}]}]\n");
	sc_reload_check();
	ck_assert_uint_gt(sc_state_generation(), gen);
	ck_assert_uint_eq(policy_fault_count(s->policy), 1); /* still readable */
	sc_snap_unref(s);
	j = policy_view();
	ck_assert(json_is_null(json_object_get(j, "last_error")));
	ck_assert_int_eq(
	    json_array_size(json_object_get(json_object_get(j, "policy"), "authorization")), 1);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "identity"), "workload")),
	    "server");
	json_decref(j);
	ck_assert_uint_eq((unsigned)metrics_value(sc_stats.reload_ok), 2);

	sc_reload_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	sc_reload_free();
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* A policy present at start is the first snapshot: generation 1, not 2. */
START_TEST(first_generation)
{
	uv_loop_t loop;
	json_t *j;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ut_replace_file(pol, ONE_FAULT);
	ut_replace_file(lab, "app=\"server\"\n");
	ck_assert_int_eq(sc_reload_init(&loop, pol, lab), 0);
	ck_assert_uint_eq(sc_state_generation(), 1);
	j = policy_view();
	ck_assert_int_eq(json_integer_value(json_object_get(j, "generation")), 1);
	json_decref(j);
	ut_replace_file(pol, HEAD);
	sc_reload_check();
	ck_assert_uint_eq(sc_state_generation(), 2);
	sc_reload_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	sc_reload_free();
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* A directory where the file should be: reported once (until it changes), not per poll. */
START_TEST(directory_once)
{
	uv_loop_t loop;
	char sub[160];
	json_t *j;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_int_eq(mkdir(pol, 0700), 0);
	ck_assert_int_eq(sc_reload_init(&loop, pol, NULL), 0);
	sc_reload_check();
	sc_reload_check();
	ck_assert_uint_eq((unsigned)metrics_value(sc_stats.reload_fail), 1);
	j = policy_view();
	ck_assert(strstr(json_string_value(json_object_get(j, "last_error")), "Is a directory"));
	json_decref(j);
	/* It changes (an entry appears): examined, and reported, again. */
	snprintf(sub, sizeof(sub), "%.150s/x", pol);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	sc_reload_check();
	ck_assert_uint_eq((unsigned)metrics_value(sc_stats.reload_fail), 2);
	ck_assert_int_eq(rmdir(sub), 0);
	ck_assert_int_eq(rmdir(pol), 0);
	ut_replace_file(pol, ONE_FAULT);
	sc_reload_check();
	ck_assert_uint_eq(sc_state_generation(), 2);
	ck_assert_uint_eq((unsigned)metrics_value(sc_stats.reload_ok), 1);
	sc_reload_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	sc_reload_free();
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static int notified;
static void on_swap(void *ctx)
{
	(void)ctx;
	notified++;
}

/* An invalid file at start: fail closed (labels changes too) until a good file arrives. */
START_TEST(first_invalid_fails_closed)
{
	uv_loop_t loop;
	struct sc_snap *s;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ut_replace_file(pol, HEAD "faults: [{name: x, delay: {fixed: soon}}]\n");
	ck_assert_int_eq(sc_reload_init(&loop, pol, lab), 0);
	sc_reload_set_notify(on_swap, NULL);
	s = sc_state_current();
	ck_assert_uint_eq(s->generation, 1);
	ck_assert_ptr_nonnull(s->no_policy);
	ck_assert(strstr(s->no_policy, "policy.yaml:3:"));
	ck_assert(!sc_reload_policy_ok());
	sc_snap_unref(s);
	ut_replace_file(lab, "app=\"server\"\n");
	sc_reload_check();
	s = sc_state_current();
	ck_assert_ptr_nonnull(s->labels);
	ck_assert_ptr_nonnull(s->no_policy);
	sc_snap_unref(s);
	ck_assert_int_eq(notified, 1);
	ut_replace_file(pol, ONE_FAULT);
	sc_reload_check();
	ck_assert(sc_reload_policy_ok());
	ck_assert_int_eq(notified, 2);
	s = sc_state_current();
	ck_assert_ptr_null(s->no_policy);
	ck_assert_uint_eq(policy_fault_count(s->policy), 1);
	sc_snap_unref(s);
	/* Later bad files keep the good one, never closed again. */
	ut_replace_file(pol, HEAD "bogus: 1\n");
	sc_reload_check();
	ck_assert(sc_reload_policy_ok());
	sc_reload_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	sc_reload_free();
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"lifecycle", lifecycle},
	    {"lifecycle", first_generation},
	    {"lifecycle", directory_once},
	    {"lifecycle", first_invalid_fails_closed},
	};
	return UT_RUN("sidecar/reload", tests, .timeout_s = 10, .setup = setup,
		      .teardown = teardown);
}
