/*
 * graph/render: the text format line by line, the DOT a model becomes (nodes, edges,
 * colours by error rate, the mTLS double line, shapes by node kind), and format names.
 * (SVG and PNG go through Graphviz's plugins: tests/integration/test_graph.py.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/model.h"
#include "graph/render.h"
#include "tests/unit/runner.h"

#define ANS(series)                                                                                \
	"{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[" series "]}}"
#define S(rep, sns, swl, dns, dwl, dsvc, extra, v)                                                 \
	"{\"metric\":{\"reporter\":\"" rep "\",\"source_namespace\":\"" sns                        \
	"\",\"source_workload\":\"" swl "\",\"destination_namespace\":\"" dns                      \
	"\",\"destination_workload\":\"" dwl "\",\"destination_service\":\"" dsvc "\"" extra       \
	"},\"value\":[1,\"" v "\"]}"

static const char requests[] =
    ANS(S("destination", "demo", "client", "demo", "server", "server",
	  ",\"grpc_code\":\"OK\",\"connection_security_policy\":\"mutual_tls\"",
	  "4") "," S("destination", "demo", "client", "demo", "server", "server",
		     ",\"grpc_code\":\"UNAVAILABLE\",\"connection_security_policy\":\"mutual_tls\"",
		     "1") "," S("source", "demo", "client", "unknown", "unknown", "api.example.com",
				",\"grpc_code\":\"OK\",\"connection_security_policy\":\"none\"",
				"1.96") "," S("source", "demo", "client", "unknown", "unknown",
					      "api.example.com",
					      ",\"grpc_code\":\"DEADLINE_EXCEEDED\",\"connection_"
					      "security_policy\":\"none\"",
					      "0.04") "," S("destination", "unknown", "unknown",
							    "demo", "server", "server",
							    ",\"grpc_code\":\"OK\",\"connection_"
							    "security_policy\":\"mutual_tls\"",
							    "0.6") "," S("destination", "unknown",
									 "unknown", "demo",
									 "server", "server",
									 ",\"grpc_code\":\"OK\","
									 "\"connection_security_"
									 "policy\":\"none\"",
									 "0.4"));
static const char p99[] =
    ANS(S("destination", "demo", "client", "demo", "server", "server", "", "0.0123") "," S(
	"source", "demo", "client", "unknown", "unknown", "api.example.com", "", "0.2485"));

static struct gr_model *model(void)
{
	struct gr_model *m = gr_model_new();
	char err[256];

	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(gr_model_add_requests(m, requests, strlen(requests), err, sizeof(err)), 0);
	ck_assert_int_eq(gr_model_add_p99(m, p99, strlen(p99), err, sizeof(err)), 0);
	gr_model_finish(m);
	return m;
}

/* What fn wrote, as a new string. */
static char *render(struct gr_model *m, enum gr_format fmt)
{
	char err[256] = "", *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	ck_assert_msg(gr_render(m, fmt, "a title", f, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

START_TEST(text)
{
	struct gr_model *m = model();
	char *out = render(m, GR_FMT_TEXT);

	ck_assert_str_eq(out,
			 "demo/client -> api.example.com  2.00 req/s  2.0% errors  p99 248.5 ms\n"
			 "demo/client -> demo/server  5.00 req/s  20.0% errors  p99 12.3 ms  mTLS\n"
			 "unknown -> demo/server  1.00 req/s  0.0% errors  p99 -  mTLS 60%\n");
	free(out);
	gr_model_free(m);
}
END_TEST

START_TEST(dot)
{
	struct gr_model *m = model();
	char *out = render(m, GR_FMT_DOT);

	ck_assert_ptr_nonnull(strstr(out, "digraph grpcguard {"));
	ck_assert_ptr_nonnull(strstr(out, "rankdir=LR"));
	ck_assert_ptr_nonnull(strstr(out, "label=\"a title\""));
	/* Edges, coloured by error rate: 20 % red and over mTLS (double), 2 % orange, 0 green. */
	ck_assert_ptr_nonnull(strstr(out, "\"demo/client\" -> \"demo/server\""));
	ck_assert_ptr_nonnull(strstr(out, "color=\"#c62828:invis:#c62828\""));
	ck_assert_ptr_nonnull(strstr(out, "\"demo/client\" -> \"api.example.com\""));
	ck_assert_ptr_nonnull(strstr(out, "color=\"#ef6c00\""));
	ck_assert_ptr_nonnull(strstr(out, "unknown -> \"demo/server\""));
	ck_assert_ptr_nonnull(strstr(out, "color=\"#2e7d32\""));
	ck_assert_ptr_nonnull(
	    strstr(out, "label=\"5.00 req/s\\n20.0% errors\\np99 12.3 ms\\nmTLS\""));
	/* Node kinds: a workload's label puts its namespace under it; no-sidecar and unknown. */
	ck_assert_ptr_nonnull(strstr(out, "label=\"server\\ndemo\""));
	ck_assert_ptr_nonnull(strstr(out, "label=\"api.example.com\\n(no sidecar)\""));
	ck_assert_ptr_nonnull(strstr(out, "style=dashed"));
	free(out);
	gr_model_free(m);
}
END_TEST

/* A host from a peer's :authority with Graphviz escapes in it is drawn as written. */
START_TEST(label_escapes)
{
	static const char body[] = ANS(S("source", "demo", "client", "unknown", "unknown",
					 "a\\\\N\\\\l<b>", ",\"grpc_code\":\"OK\"", "1"));
	struct gr_model *m = gr_model_new();
	char err[256], *out;

	ck_assert_int_eq(gr_model_add_requests(m, body, strlen(body), err, sizeof(err)), 0);
	gr_model_finish(m);
	ck_assert_str_eq(gr_model_node(m, 0)->name, "a\\N\\l<b>");
	out = render(m, GR_FMT_DOT);
	ck_assert_msg(strstr(out, "label=\"a\\\\N\\\\l<b>\\n(no sidecar)\""), "%s", out);
	free(out);
	gr_model_free(m);
}
END_TEST

START_TEST(formats)
{
	enum gr_format f = GR_FMT_PNG;

	ck_assert_int_eq(gr_format_parse("text", &f), 0);
	ck_assert_int_eq(f, GR_FMT_TEXT);
	ck_assert_int_eq(gr_format_parse("dot", &f), 0);
	ck_assert_int_eq(f, GR_FMT_DOT);
	ck_assert_int_eq(gr_format_parse("svg", &f), 0);
	ck_assert_int_eq(f, GR_FMT_SVG);
	ck_assert_int_eq(gr_format_parse("png", &f), 0);
	ck_assert_int_eq(f, GR_FMT_PNG);
	ck_assert_int_eq(gr_format_parse("SVG", &f), -1);
	ck_assert_int_eq(gr_format_parse("jpeg", &f), -1);
	ck_assert_int_eq(gr_format_parse("", &f), -1);
	ck_assert_int_eq(f, GR_FMT_PNG);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"text", text},
	    {"dot", dot},
	    {"dot", label_escapes},
	    {"formats", formats},
	};
	return UT_RUN("graph/render", cases, .timeout_s = 30);
}
