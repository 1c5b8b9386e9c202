/*
 * common/metrics: counters, gauges, histograms (cumulative buckets, sum, count), label
 * and HELP escaping, the series cap, duplicate names, concurrent updates, and the exact
 * text exposition format.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "tests/unit/runner.h"

static char *render(struct metrics_registry *r)
{
	char *out = NULL;
	size_t len = 0;
	ck_assert_int_eq(metrics_render(r, &out, &len), 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(strlen(out), len);
	return out;
}

START_TEST(test_counter_gauge)
{
	struct metrics_registry *r = metrics_registry_new();
	const char *ln[] = {"grpc_service", "grpc_method", "grpc_code"};
	const char *ok[] = {"helloworld.Greeter", "SayHello", "OK"};
	const char *denied[] = {"helloworld.Greeter", "SayHello", "PERMISSION_DENIED"};
	struct metrics_family *c =
	    metrics_counter(r, "grpcguard_requests_total", "Requests handled.", 3, ln);
	struct metrics_family *g = metrics_gauge(r, "grpcguard_open_streams", "Open.", 0, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(g);
	struct metrics_series *s1 = metrics_series(c, ok);
	ck_assert_ptr_eq(metrics_series(c, ok), s1); /* same labels, same series */
	metrics_inc(s1);
	metrics_inc(s1);
	metrics_add(s1, 0.5);
	ck_assert_double_eq(metrics_value(s1), 2.5);
	metrics_inc(metrics_series(c, denied));
	struct metrics_series *gs = metrics_series(g, NULL);
	metrics_set(gs, 5);
	metrics_add(gs, -7);
	ck_assert_double_eq(metrics_value(gs), -2);

	char *text = render(r);
	ck_assert_str_eq(text, "# HELP grpcguard_requests_total Requests handled.\n"
			       "# TYPE grpcguard_requests_total counter\n"
			       "grpcguard_requests_total{grpc_service=\"helloworld.Greeter\","
			       "grpc_method=\"SayHello\",grpc_code=\"OK\"} 2.5\n"
			       "grpcguard_requests_total{grpc_service=\"helloworld.Greeter\","
			       "grpc_method=\"SayHello\",grpc_code=\"PERMISSION_DENIED\"} 1\n"
			       "# HELP grpcguard_open_streams Open.\n"
			       "# TYPE grpcguard_open_streams gauge\n"
			       "grpcguard_open_streams -2\n");
	free(text);
	/* Updates through NULL (a dropped series) are no-ops. */
	metrics_inc(NULL);
	metrics_set(NULL, 1);
	metrics_observe(NULL, 1);
	ck_assert_double_eq(metrics_value(NULL), 0);
	ck_assert_ptr_null(metrics_series(NULL, ok));
	metrics_registry_free(r);
	metrics_registry_free(NULL);
}
END_TEST

START_TEST(test_histogram_cumulative)
{
	struct metrics_registry *r = metrics_registry_new();
	const double b[] = {0.1, 0.5, 1};
	const char *ln[] = {"m"};
	const char *v[] = {"x"};
	struct metrics_family *h =
	    metrics_histogram(r, "grpcguard_request_duration_seconds", "Latency.", 1, ln, b, 3);
	struct metrics_series *s = metrics_series(h, v);
	/* Bounds are inclusive (le): 0.1 lands in the first bucket. */
	metrics_observe(s, 0.05);
	metrics_observe(s, 0.1);
	metrics_observe(s, 0.3);
	metrics_observe(s, 1);
	metrics_observe(s, 7);
	char *text = render(r);
	ck_assert_str_eq(text, "# HELP grpcguard_request_duration_seconds Latency.\n"
			       "# TYPE grpcguard_request_duration_seconds histogram\n"
			       "grpcguard_request_duration_seconds_bucket{m=\"x\",le=\"0.1\"} 2\n"
			       "grpcguard_request_duration_seconds_bucket{m=\"x\",le=\"0.5\"} 3\n"
			       "grpcguard_request_duration_seconds_bucket{m=\"x\",le=\"1\"} 4\n"
			       "grpcguard_request_duration_seconds_bucket{m=\"x\",le=\"+Inf\"} 5\n"
			       "grpcguard_request_duration_seconds_sum{m=\"x\"} 8.45\n"
			       "grpcguard_request_duration_seconds_count{m=\"x\"} 5\n");
	free(text);
	metrics_registry_free(r);
}
END_TEST

START_TEST(test_default_buckets)
{
	struct metrics_registry *r = metrics_registry_new();
	struct metrics_family *h = metrics_histogram(
	    r, "d_seconds", "", 0, NULL, metrics_latency_buckets, METRICS_LATENCY_NBUCKETS);
	for (size_t i = 1; i < METRICS_LATENCY_NBUCKETS; i++)
		ck_assert(metrics_latency_buckets[i] > metrics_latency_buckets[i - 1]);
	metrics_observe(metrics_series(h, NULL), 0.0002);
	char *text = render(r);
	ck_assert_ptr_nonnull(strstr(text, "d_seconds_bucket{le=\"0.0005\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "d_seconds_bucket{le=\"30\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "d_seconds_bucket{le=\"+Inf\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "d_seconds_count 1\n"));
	free(text);
	metrics_registry_free(r);
}
END_TEST

START_TEST(test_escaping)
{
	struct metrics_registry *r = metrics_registry_new();
	const char *ln[] = {"policy"};
	const char *v[] = {"a\"b\\c\nd"};
	struct metrics_family *c = metrics_counter(r, "grpcguard_authz_denied_total",
						   "Denied \\ by\npolicy \"x\".", 1, ln);
	metrics_inc(metrics_series(c, v));
	struct metrics_family *g = metrics_gauge(r, "g", "special values", 1, ln);
	const char *nan_l[] = {"nan"}, *inf_l[] = {"inf"};
	metrics_set(metrics_series(g, nan_l), NAN);
	metrics_set(metrics_series(g, inf_l), -INFINITY);
	const char *prec_l[] = {"precise"}, *big_l[] = {"big"};
	metrics_set(metrics_series(g, prec_l), 123456.789012345);
	metrics_set(metrics_series(g, big_l), 1e300);
	char *text = render(r);
	/* HELP escapes \ and newline only; label values also escape the double quote. */
	ck_assert_ptr_nonnull(
	    strstr(text, "# HELP grpcguard_authz_denied_total Denied \\\\ by\\npolicy \"x\".\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "grpcguard_authz_denied_total{policy=\"a\\\"b\\\\c\\nd\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "g{policy=\"nan\"} NaN\n"));
	ck_assert_ptr_nonnull(strstr(text, "g{policy=\"inf\"} -Inf\n"));
	/* Values keep every significant digit (they read back as the same double). */
	ck_assert_ptr_nonnull(strstr(text, "g{policy=\"precise\"} 123456.789012345\n"));
	ck_assert_ptr_nonnull(strstr(text, "g{policy=\"big\"} 1e+300\n"));
	free(text);
	metrics_registry_free(r);
}
END_TEST

START_TEST(test_series_cap_and_duplicates)
{
	struct metrics_registry *r = metrics_registry_new();
	const char *ln[] = {"k"};
	struct metrics_family *c = metrics_counter(r, "c_total", "h", 1, ln);
	char val[32];
	const char *v[] = {val};

	ck_assert_ptr_null(metrics_counter(r, "c_total", "again", 0, NULL));
	ck_assert_ptr_null(metrics_gauge(r, "c_total", "again", 0, NULL));
	for (int i = 0; i < METRICS_MAX_SERIES; i++) {
		snprintf(val, sizeof(val), "v%d", i);
		ck_assert_ptr_nonnull(metrics_series(c, v));
	}
	snprintf(val, sizeof(val), "one-too-many");
	ck_assert_ptr_null(metrics_series(c, v));
	metrics_inc(metrics_series(c, v)); /* dropped, no crash */
	snprintf(val, sizeof(val), "v0");
	ck_assert_ptr_nonnull(metrics_series(c, v)); /* existing series still found */
	char *text = render(r);
	ck_assert_ptr_null(strstr(text, "one-too-many"));
	size_t lines = 0;
	for (const char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	ck_assert_uint_eq(lines, METRICS_MAX_SERIES + 2);
	free(text);
	metrics_registry_free(r);
}
END_TEST

START_TEST(test_empty_registry)
{
	struct metrics_registry *r = metrics_registry_new();
	char *text = render(r);
	ck_assert_str_eq(text, "");
	free(text);
	/* A family with no series yet still renders HELP and TYPE. */
	metrics_counter(r, "x_total", "", 0, NULL);
	text = render(r);
	ck_assert_str_eq(text, "# HELP x_total \n# TYPE x_total counter\n");
	free(text);
	metrics_registry_free(r);
}
END_TEST

#define NTHREADS 4
#define NINC 20000
static struct metrics_family *shared_c, *shared_h;

static void *incrementer(void *arg)
{
	(void)arg;
	const char *v[] = {"same"};
	for (int i = 0; i < NINC; i++) {
		metrics_inc(metrics_series(shared_c, v));
		metrics_observe(metrics_series(shared_h, NULL), 0.25);
	}
	return NULL;
}

START_TEST(test_concurrent_updates)
{
	struct metrics_registry *r = metrics_registry_new();
	const char *ln[] = {"k"};
	const double b[] = {0.5};
	pthread_t t[NTHREADS];
	shared_c = metrics_counter(r, "c_total", "h", 1, ln);
	shared_h = metrics_histogram(r, "h_seconds", "h", 0, NULL, b, 1);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, incrementer, NULL), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	const char *v[] = {"same"};
	ck_assert_double_eq(metrics_value(metrics_series(shared_c, v)), NTHREADS * NINC);
	char *text = render(r);
	char want[128];
	snprintf(want, sizeof(want), "h_seconds_count %d\n", NTHREADS * NINC);
	ck_assert_ptr_nonnull(strstr(text, want));
	snprintf(want, sizeof(want), "h_seconds_sum %d\n", NTHREADS * NINC / 4);
	ck_assert_ptr_nonnull(strstr(text, want));
	free(text);
	metrics_registry_free(r);
}
END_TEST

/*
 * The hash index: series past METRICS_MAX_SERIES with metrics_series_bounded(), each
 * found again as the same object whichever order it is asked for in, label sets that
 * differ only in where a value splits kept apart, and rendered in creation order.
 */
START_TEST(test_series_index)
{
	struct metrics_registry *r = metrics_registry_new();
	const char *ln[] = {"a", "b"};
	struct metrics_family *c = metrics_counter(r, "c_total", "h", 2, ln);
	enum { N = 5000 };
	struct metrics_series **got = calloc(N, sizeof(*got));
	char va[32], vb[32];
	const char *v[] = {va, vb};

	for (int i = 0; i < N; i++) {
		snprintf(va, sizeof(va), "x%d", i);
		snprintf(vb, sizeof(vb), "y%d", i % 7);
		got[i] = metrics_series_bounded(c, v, N);
		ck_assert_ptr_nonnull(got[i]);
	}
	snprintf(va, sizeof(va), "full");
	ck_assert_ptr_null(metrics_series_bounded(c, v, N));
	for (int i = N - 1; i >= 0; i--) {
		snprintf(va, sizeof(va), "x%d", i);
		snprintf(vb, sizeof(vb), "y%d", i % 7);
		ck_assert_ptr_eq(metrics_series_bounded(c, v, N), got[i]);
		metrics_inc(got[i]);
	}
	/* ("x1", "y1") exists; ("x1y", "1") and ("x", "1y1") are others. */
	snprintf(va, sizeof(va), "x1y");
	snprintf(vb, sizeof(vb), "1");
	ck_assert_ptr_null(metrics_series_bounded(c, v, N)); /* new, and the family is full */
	ck_assert_ptr_nonnull(metrics_series_bounded(c, v, N + 1));
	ck_assert_ptr_ne(metrics_series_bounded(c, v, N + 1), got[1]);
	char *text = render(r);
	const char *p0 = strstr(text, "c_total{a=\"x0\",b=\"y0\"} 1\n");
	const char *p1 = strstr(text, "c_total{a=\"x4999\",b=\"y1\"} 1\n");
	ck_assert_ptr_nonnull(p0);
	ck_assert_ptr_nonnull(p1);
	ck_assert(p0 < p1);
	free(text);
	free(got);
	metrics_registry_free(r);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"counter_gauge", test_counter_gauge},
	    {"histogram_cumulative", test_histogram_cumulative},
	    {"default_buckets", test_default_buckets},
	    {"escaping", test_escaping},
	    {"series_cap", test_series_cap_and_duplicates},
	    {"empty", test_empty_registry},
	    {"concurrent", test_concurrent_updates},
	    {"index", test_series_index},
	};
	return UT_RUN("common/metrics", tests, .timeout_s = 30);
}
