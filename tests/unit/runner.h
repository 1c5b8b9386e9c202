/*
 * The check boilerplate every unit test shares: a Suite built from a table of cases, run
 * with CK_NORMAL output (check's summary lines), exiting non-zero when a test failed.
 *
 *     int main(void)
 *     {
 *             const struct ut_case cases[] = {
 *                 {"defaults", defaults}, {"errors", errors}, {"errors", more_errors},
 *             };
 *             return UT_RUN("webhook/config", cases, .timeout_s = 10);
 *     }
 *
 * A row is one test in the TCase of its name; consecutive rows with the same name share
 * one TCase (a behaviour with several tests). Every TCase gets the timeout and checked
 * fixture of the options it was added with; a file that needs two sets of options builds
 * the Suite with ut_suite() and a second ut_add_cases(); loop tests go into a TCase from
 * ut_tcase() with check's tcase_add_loop_test(). The table is a local of main():
 * START_TEST names are pointer variables, not constants a static table could hold.
 * Header-only (static inline).
 */
#ifndef GRPCGUARD_TESTS_UNIT_RUNNER_H
#define GRPCGUARD_TESTS_UNIT_RUNNER_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct ut_case {
	const char *name; /* the TCase's */
	const TTest *fn;
};

struct ut_opts {
	int timeout_s; /* 0: check's default (CK_DEFAULT_TIMEOUT) */
	SFun setup;    /* checked fixture, both optional */
	SFun teardown;
};

#define UT_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A new TCase called name in s, with o's fixture and timeout; add tests to it. */
static inline TCase *ut_tcase(Suite *s, const char *name, struct ut_opts o)
{
	TCase *tc = tcase_create(name);

	if (o.setup || o.teardown)
		tcase_add_checked_fixture(tc, o.setup, o.teardown);
	if (o.timeout_s)
		tcase_set_timeout(tc, o.timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

/* Add cases[0..n) to s as described above. */
static inline void ut_add_cases(Suite *s, const struct ut_case *cases, size_t n, struct ut_opts o)
{
	TCase *tc = NULL;

	for (size_t i = 0; i < n; i++) {
		if (!tc || strcmp(cases[i].name, cases[i - 1].name) != 0)
			tc = ut_tcase(s, cases[i].name, o);
		tcase_add_test(tc, cases[i].fn);
	}
}

/* A new Suite called name with cases[0..n). */
static inline Suite *ut_suite(const char *name, const struct ut_case *cases, size_t n,
			      struct ut_opts o)
{
	Suite *s = suite_create(name);

	ut_add_cases(s, cases, n, o);
	return s;
}

/* Run s (taking it) with CK_NORMAL; EXIT_FAILURE if any test failed, else EXIT_SUCCESS. */
static inline int ut_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/*
 * For tests that read back what the code under test wrote to stderr: fd 2 goes to a new
 * temporary file (*f) until ut_stderr_restore(). Call from a fixture's setup/teardown.
 */
static inline void ut_stderr_capture(FILE **f, int *saved_fd)
{
	*f = tmpfile();
	ck_assert_ptr_nonnull(*f);
	*saved_fd = dup(STDERR_FILENO);
	ck_assert_int_ge(*saved_fd, 0);
	ck_assert_int_eq(dup2(fileno(*f), STDERR_FILENO), STDERR_FILENO);
}

static inline void ut_stderr_restore(FILE *f, int saved_fd)
{
	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
	fclose(f);
}

/*
 * Replace path's content with text atomically, with a new inode, as a Kubernetes volume
 * update does: write path.tmp, then rename it over path. Call from inside a test.
 */
static inline void ut_replace_file(const char *path, const char *text)
{
	char tmp[512];
	FILE *f;

	ck_assert_int_lt(snprintf(tmp, sizeof(tmp), "%s.tmp", path), (int)sizeof(tmp));
	f = fopen(tmp, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(rename(tmp, path), 0);
}

/* ut_run() of a Suite made of one table: UT_RUN("dir/module", cases, .timeout_s = 10, ...). */
#define UT_RUN(suite_name, cases, ...)                                                             \
	ut_run(ut_suite(suite_name, cases, UT_COUNT(cases), (struct ut_opts){__VA_ARGS__}))

#endif
