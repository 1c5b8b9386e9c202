/*
 * graph/model: Prometheus query answers (JSON) -> nodes and edges. Which reporter an edge
 * takes, how nodes are named, rates, error %, mTLS share, p99, health colours, the order
 * of the output, the PromQL asked, and every way an answer can be refused.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/model.h"
#include "tests/unit/runner.h"

/* A growing JSON text for one answer. */
struct ans {
	char *s;
	size_t len;
	int n;
};

static void add(struct ans *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct ans *a, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	a->s = realloc(a->s, a->len + (size_t)n + 1);
	ck_assert_ptr_nonnull(a->s);
	va_start(ap, fmt);
	vsnprintf(a->s + a->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	a->len += (size_t)n;
}

static void begin(struct ans *a)
{
	memset(a, 0, sizeof(*a));
	add(a, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[");
}

/* One series of the requests query (code NULL: a p99 series, without grpc_code). */
static void series(struct ans *a, const char *rep, const char *sns, const char *swl,
		   const char *dns, const char *dwl, const char *dsvc, const char *code,
		   const char *csp, const char *value)
{
	add(a,
	    "%s{\"metric\":{\"reporter\":\"%s\",\"source_namespace\":\"%s\","
	    "\"source_workload\":\"%s\",\"destination_namespace\":\"%s\","
	    "\"destination_workload\":\"%s\",\"destination_service\":\"%s\"",
	    a->n++ ? "," : "", rep, sns, swl, dns, dwl, dsvc);
	if (code)
		add(a, ",\"grpc_code\":\"%s\"", code);
	if (csp)
		add(a, ",\"connection_security_policy\":\"%s\"", csp);
	add(a, "},\"value\":[1700000000.123,\"%s\"]}", value);
}

static const char *end(struct ans *a)
{
	add(a, "]}}");
	return a->s;
}

static char err[512];

static void feed_requests(struct gr_model *m, struct ans *a)
{
	const char *b = end(a);
	ck_assert_msg(gr_model_add_requests(m, b, strlen(b), err, sizeof(err)) == GR_OK, "%s", err);
	free(a->s);
}

static void feed_p99(struct gr_model *m, struct ans *a)
{
	const char *b = end(a);
	ck_assert_msg(gr_model_add_p99(m, b, strlen(b), err, sizeof(err)) == GR_OK, "%s", err);
	free(a->s);
}

static const char *src_of(const struct gr_model *m, size_t i)
{
	return gr_model_node(m, gr_model_edge(m, i)->src)->name;
}

static const char *dst_of(const struct gr_model *m, size_t i)
{
	return gr_model_node(m, gr_model_edge(m, i)->dst)->name;
}

static const struct gr_node *node_named(const struct gr_model *m, const char *name)
{
	for (size_t i = 0; i < gr_model_nnodes(m); i++)
		if (strcmp(gr_model_node(m, i)->name, name) == 0)
			return gr_model_node(m, i);
	ck_abort_msg("no node %s", name);
	return NULL;
}

START_TEST(destination_preferred)
{
	struct gr_model *m = gr_model_new();
	struct ans a;

	begin(&a);
	/* The server's sidecar: 4 OK + 1 UNAVAILABLE per second. */
	series(&a, "destination", "demo", "client", "demo", "server", "server", "OK", "none", "4");
	series(&a, "destination", "demo", "client", "demo", "server", "server", "UNAVAILABLE",
	       "none", "1");
	/* The client's own view of the same calls also counts its deadline expiries. */
	series(&a, "source", "demo", "client", "demo", "server", "server", "OK", "none", "4");
	series(&a, "source", "demo", "client", "demo", "server", "server", "UNAVAILABLE", "none",
	       "1");
	series(&a, "source", "demo", "client", "demo", "server", "server", "DEADLINE_EXCEEDED",
	       "none", "1");
	feed_requests(m, &a);
	gr_model_finish(m);
	ck_assert_uint_eq(gr_model_nedges(m), 1);
	ck_assert_str_eq(src_of(m, 0), "demo/client");
	ck_assert_str_eq(dst_of(m, 0), "demo/server");
	ck_assert_int_eq(gr_model_edge(m, 0)->reporter, GR_REP_DESTINATION);
	ck_assert_double_eq_tol(gr_model_edge(m, 0)->rps, 5.0, 1e-9);
	ck_assert_double_eq_tol(gr_model_edge(m, 0)->err_rps, 1.0, 1e-9);
	ck_assert_double_eq_tol(gr_err_pct(gr_model_edge(m, 0)->rps, gr_model_edge(m, 0)->err_rps),
				20.0, 1e-9);
	ck_assert(isnan(gr_model_edge(m, 0)->p99_s));
	gr_model_free(m);
}
END_TEST

START_TEST(source_fallback_and_node_names)
{
	struct gr_model *m = gr_model_new();
	struct ans a;

	begin(&a);
	/* A destination without a sidecar: named by its host. */
	series(&a, "source", "demo", "client", "unknown", "unknown", "api.example.com", "OK",
	       "none", "2");
	/* A caller without a sidecar, seen by the server's. */
	series(&a, "destination", "unknown", "unknown", "demo", "server", "server", "OK", "none",
	       "1");
	/* Neither side known: the host is unknown too. */
	series(&a, "source", "demo", "client", "unknown", "unknown", "unknown", "OK", "none",
	       "0.5");
	/* A destination whose sidecar reports nothing (not scraped): the caller's report. */
	series(&a, "source", "demo", "client", "other", "store", "store", "OK", "none", "3");
	feed_requests(m, &a);
	gr_model_finish(m);
	ck_assert_uint_eq(gr_model_nedges(m), 4);
	/* Sorted by source then destination name. */
	ck_assert_str_eq(src_of(m, 0), "demo/client");
	ck_assert_str_eq(dst_of(m, 0), "api.example.com");
	ck_assert_str_eq(dst_of(m, 1), "other/store");
	ck_assert_str_eq(dst_of(m, 2), "unknown");
	ck_assert_str_eq(src_of(m, 3), "unknown");
	ck_assert_str_eq(dst_of(m, 3), "demo/server");
	ck_assert_int_eq(gr_model_edge(m, 0)->reporter, GR_REP_SOURCE);
	ck_assert_int_eq(gr_model_edge(m, 1)->reporter, GR_REP_SOURCE);
	ck_assert_int_eq(gr_model_edge(m, 3)->reporter, GR_REP_DESTINATION);
	ck_assert_int_eq(node_named(m, "api.example.com")->kind, GR_NODE_SERVICE);
	ck_assert_int_eq(node_named(m, "unknown")->kind, GR_NODE_UNKNOWN);
	ck_assert_int_eq(node_named(m, "demo/client")->kind, GR_NODE_WORKLOAD);
	ck_assert_int_eq(node_named(m, "other/store")->kind, GR_NODE_WORKLOAD);
	/* Nodes sorted by name, unique. */
	ck_assert_uint_eq(gr_model_nnodes(m), 5);
	for (size_t i = 1; i < gr_model_nnodes(m); i++)
		ck_assert_int_lt(strcmp(gr_model_node(m, i - 1)->name, gr_model_node(m, i)->name),
				 0);
	gr_model_free(m);
}
END_TEST

START_TEST(rates_mtls_p99)
{
	struct gr_model *m = gr_model_new();
	struct ans a;

	begin(&a);
	series(&a, "destination", "demo", "client", "demo", "server", "server", "OK", "mutual_tls",
	       "3");
	series(&a, "destination", "demo", "client", "demo", "server", "server", "OK", "none", "1");
	/* The same workload reached by another of its names: one edge. */
	series(&a, "destination", "demo", "client", "demo", "server",
	       "server.demo.svc.cluster.local", "INTERNAL", "mutual_tls", "1");
	series(&a, "destination", "demo", "batch", "demo", "server", "server", "OK", "mutual_tls",
	       "2");
	/* Traffic-less and non-numbers carry nothing; an edge of zero is no edge. */
	series(&a, "destination", "demo", "idle", "demo", "server", "server", "OK", "none", "0");
	series(&a, "destination", "demo", "nan", "demo", "server", "server", "OK", "none", "NaN");
	series(&a, "destination", "demo", "neg", "demo", "server", "server", "OK", "none", "-1");
	series(&a, "destination", "demo", "inf", "demo", "server", "server", "OK", "none", "+Inf");
	/* Found by fuzzing: two huge rates summed to +Inf. */
	series(&a, "destination", "demo", "huge", "demo", "server", "server", "OK", "none",
	       "1e308");
	series(&a, "destination", "demo", "huge", "demo", "server", "server", "CANCELLED", "none",
	       "1e308");
	feed_requests(m, &a);

	begin(&a);
	series(&a, "destination", "demo", "client", "demo", "server", "server", NULL, NULL,
	       "0.0123");
	series(&a, "destination", "demo", "client", "demo", "server",
	       "server.demo.svc.cluster.local", NULL, NULL, "0.02");
	series(&a, "destination", "demo", "batch", "demo", "server", "server", NULL, NULL, "NaN");
	/* p99 for an edge with no requests, or the other reporter: ignored. */
	series(&a, "destination", "demo", "ghost", "demo", "server", "server", NULL, NULL, "9");
	series(&a, "source", "demo", "client", "demo", "server", "server", NULL, NULL, "7");
	feed_p99(m, &a);
	gr_model_finish(m);

	ck_assert_uint_eq(gr_model_nedges(m), 2);
	ck_assert_str_eq(src_of(m, 0), "demo/batch");
	ck_assert_double_eq_tol(gr_model_edge(m, 0)->rps, 2.0, 1e-9);
	ck_assert_double_eq_tol(gr_model_edge(m, 0)->mtls_rps, 2.0, 1e-9);
	ck_assert(isnan(gr_model_edge(m, 0)->p99_s));
	ck_assert_str_eq(src_of(m, 1), "demo/client");
	ck_assert_double_eq_tol(gr_model_edge(m, 1)->rps, 5.0, 1e-9);
	ck_assert_double_eq_tol(gr_model_edge(m, 1)->err_rps, 1.0, 1e-9);
	ck_assert_double_eq_tol(gr_model_edge(m, 1)->mtls_rps, 4.0, 1e-9);
	ck_assert_double_eq_tol(gr_model_edge(m, 1)->p99_s, 0.02, 1e-12); /* the highest */
	/* Node totals. */
	ck_assert_double_eq_tol(node_named(m, "demo/server")->in_rps, 7.0, 1e-9);
	ck_assert_double_eq_tol(node_named(m, "demo/server")->in_err_rps, 1.0, 1e-9);
	ck_assert_double_eq_tol(node_named(m, "demo/client")->out_rps, 5.0, 1e-9);
	ck_assert_double_eq_tol(node_named(m, "demo/client")->in_rps, 0.0, 1e-9);
	gr_model_free(m);
}
END_TEST

START_TEST(labels_made_safe)
{
	struct gr_model *m = gr_model_new();
	char longname[600];
	struct ans a;

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	begin(&a);
	/* Control bytes, a quote and non-ASCII from a peer's identity header. */
	series(&a, "destination", "demo", "evil\\n\\u0007\\\"x\\u00e9", "demo", "server", "server",
	       "OK", NULL, "1");
	series(&a, "source", "demo", "client", "unknown", "unknown", longname, "OK", NULL, "1");
	/* Missing labels read as unknown; a reporter that is neither side is skipped. */
	add(&a, ",{\"metric\":{\"reporter\":\"destination\",\"destination_workload\":\"db\","
		"\"destination_namespace\":\"demo\",\"grpc_code\":\"OK\"},\"value\":[1,\"1\"]}");
	series(&a, "proxy", "demo", "a", "demo", "b", "b", "OK", NULL, "1");
	feed_requests(m, &a);
	gr_model_finish(m);
	ck_assert_uint_eq(gr_model_nedges(m), 3);
	ck_assert_str_eq(src_of(m, 0), "demo/client");
	ck_assert_uint_eq(strlen(dst_of(m, 0)), GR_MAX_NAME - 1);
	ck_assert_str_eq(src_of(m, 1), "demo/evil??\"x??");
	ck_assert_str_eq(src_of(m, 2), "unknown");
	ck_assert_str_eq(dst_of(m, 2), "demo/db");
	gr_model_free(m);
}
END_TEST

START_TEST(empty_result)
{
	struct gr_model *m = gr_model_new();
	struct ans a;

	begin(&a);
	feed_requests(m, &a);
	gr_model_finish(m);
	ck_assert_uint_eq(gr_model_nedges(m), 0);
	ck_assert_uint_eq(gr_model_nnodes(m), 0);
	ck_assert_ptr_null(gr_model_edge(m, 0));
	gr_model_free(m);
}
END_TEST

static int refuse(const char *body,
		  int (*fn)(struct gr_model *, const char *, size_t, char *, size_t))
{
	struct gr_model *m = gr_model_new();
	int rc = fn(m, body, strlen(body), err, sizeof(err));

	gr_model_free(m);
	return rc;
}

START_TEST(refused_answers)
{
	static const struct {
		const char *body;
		int rc;
		const char *msg;
	} cases[] = {
	    {"", GR_EJSON, "not JSON"},
	    {"<html>", GR_EJSON, "not JSON"},
	    {"[]", GR_EJSON, "no \"status\""},
	    {"{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse error\"}", GR_EAPI,
	     "bad_data: parse error"},
	    {"{\"status\":\"error\"}", GR_EAPI, "error: (no message)"},
	    {"{\"status\":\"weird\"}", GR_EJSON, "unexpected status \"weird\""},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":[]}}",
	     GR_EJSON, "found \"matrix\""},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\"}}", GR_EJSON,
	     "result array"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[1]}}",
	     GR_EJSON, "result[0]"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
	     "[{\"metric\":{},\"value\":[1,2]}]}}",
	     GR_EJSON, "result[0]"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
	     "[{\"metric\":{},\"value\":[1,\"1x\"]}]}}",
	     GR_EJSON, "result[0]"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
	     "[{\"metric\":{},\"value\":[1,\" 1\"]}]}}",
	     GR_EJSON, "result[0]"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
	     "[{\"metric\":{},\"value\":[\"1\",\"1\"]}]}}",
	     GR_EJSON, "result[0]"},
	    {"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
	     "[{\"metric\":{},\"value\":[1,\"0x10\"]}]}}",
	     GR_EJSON, "result[0]"},
	    {"{\"status\":\"success\",\"status\":\"error\"}", GR_EJSON, "duplicate"},
	};

	for (size_t i = 0; i < UT_COUNT(cases); i++) {
		int rc = refuse(cases[i].body, gr_model_add_requests);
		ck_assert_msg(rc == cases[i].rc, "%s: rc %d", cases[i].body, rc);
		ck_assert_msg(strstr(err, cases[i].msg), "%s: message \"%s\" lacks \"%s\"",
			      cases[i].body, err, cases[i].msg);
		ck_assert_int_eq(refuse(cases[i].body, gr_model_add_p99), cases[i].rc);
	}
}
END_TEST

START_TEST(too_many_edges)
{
	struct gr_model *m = gr_model_new();
	char wl[32];
	struct ans a;
	const char *b;

	begin(&a);
	for (int i = 0; i < GR_MAX_EDGES; i++) {
		snprintf(wl, sizeof(wl), "c%d", i);
		series(&a, "destination", "demo", wl, "demo", "server", "server", "OK", NULL, "1");
	}
	/* An edge it holds already still counts when full. */
	series(&a, "destination", "demo", "c0", "demo", "server", "server", "INTERNAL", NULL, "1");
	feed_requests(m, &a);
	begin(&a);
	series(&a, "destination", "demo", "one-more", "demo", "server", "server", "OK", NULL, "1");
	b = end(&a);
	ck_assert_int_eq(gr_model_add_requests(m, b, strlen(b), err, sizeof(err)), GR_ETOOMANY);
	ck_assert_str_eq(err, "more than 2000 edges: narrow the graph with --namespace");
	free(a.s);
	gr_model_finish(m);
	ck_assert_uint_eq(gr_model_nedges(m), GR_MAX_EDGES);
	ck_assert_uint_eq(gr_model_nnodes(m), GR_MAX_EDGES + 1);
	ck_assert_double_eq_tol(node_named(m, "demo/c0")->out_err_rps, 1.0, 1e-9);
	gr_model_free(m);
}
END_TEST

START_TEST(health)
{
	struct gr_node client = {.out_rps = 10, .out_err_rps = 5};
	struct gr_node server = {.in_rps = 100, .in_err_rps = 2, .out_rps = 1, .out_err_rps = 1};

	ck_assert_int_eq(gr_health_of(0, 0), GR_IDLE);
	ck_assert_int_eq(gr_health_of(100, 0), GR_GREEN);
	ck_assert_int_eq(gr_health_of(100, 0.99), GR_GREEN);
	ck_assert_int_eq(gr_health_of(100, 1), GR_ORANGE);
	ck_assert_int_eq(gr_health_of(100, 9.99), GR_ORANGE);
	ck_assert_int_eq(gr_health_of(100, 10), GR_RED);
	ck_assert_int_eq(gr_health_of(2, 2), GR_RED);
	ck_assert_double_eq(gr_err_pct(0, 0), 0.0);
	/* A node is judged by what it received; a pure caller by what it sent. */
	ck_assert_int_eq(gr_node_health(&server), GR_ORANGE);
	ck_assert_int_eq(gr_node_health(&client), GR_RED);
	ck_assert_str_eq(gr_health_color(GR_GREEN), "#2e7d32");
	ck_assert_str_eq(gr_health_color(GR_ORANGE), "#ef6c00");
	ck_assert_str_eq(gr_health_color(GR_RED), "#c62828");
	ck_assert_str_eq(gr_health_color(GR_IDLE), "#9e9e9e");
	ck_assert_str_eq(gr_health_name(GR_RED), "red");
}
END_TEST

START_TEST(queries)
{
	char q[2048];

	ck_assert_int_eq(gr_model_query_requests("5m", NULL, q, sizeof(q)), 0);
	ck_assert_str_eq(q, "sum by (reporter, source_workload, source_namespace, "
			    "destination_workload, destination_namespace, destination_service, "
			    "grpc_code, connection_security_policy) "
			    "(rate(grpcguard_requests_total[5m]))");
	ck_assert_int_eq(gr_model_query_p99("30s", NULL, q, sizeof(q)), 0);
	ck_assert_str_eq(q, "histogram_quantile(0.99, sum by (le, reporter, source_workload, "
			    "source_namespace, destination_workload, destination_namespace, "
			    "destination_service) "
			    "(rate(grpcguard_request_duration_seconds_bucket[30s])))");
	ck_assert_int_eq(gr_model_query_requests("1h", "demo", q, sizeof(q)), 0);
	ck_assert_ptr_nonnull(strstr(q, "(rate(grpcguard_requests_total{source_namespace=\"demo\"}"
					"[1h])) or sum by ("));
	ck_assert_ptr_nonnull(
	    strstr(q, "(rate(grpcguard_requests_total{destination_namespace=\"demo\"}[1h]))"));
	ck_assert_int_eq(gr_model_query_p99("1h", "demo", q, sizeof(q)), 0);
	ck_assert_ptr_nonnull(strstr(q, "histogram_quantile(0.99, sum by (le, "));
	ck_assert_ptr_nonnull(strstr(q, "{destination_namespace=\"demo\"}[1h])))"));
	/* Too small a buffer is refused, never truncated silently. */
	ck_assert_int_eq(gr_model_query_requests("5m", "demo", q, 100), -1);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"reporter", destination_preferred},
	    {"reporter", source_fallback_and_node_names},
	    {"figures", rates_mtls_p99},
	    {"labels", labels_made_safe},
	    {"empty", empty_result},
	    {"refused", refused_answers},
	    {"bounds", too_many_edges},
	    {"health", health},
	    {"queries", queries},
	};
	return UT_RUN("graph/model", cases, .timeout_s = 30);
}
