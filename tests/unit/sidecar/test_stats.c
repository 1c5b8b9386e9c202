/* sidecar/stats: per-RPC labels at both reporters, the series cache, the cardinality cap. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/stats.h"
#include "tests/unit/runner.h"

static void setup(void)
{
	ck_assert_int_eq(sc_stats_init(), 0);
}

static void teardown(void)
{
	sc_stats_free();
}

static char *render(void)
{
	char *out = NULL;
	size_t len = 0;
	ck_assert_int_eq(metrics_render(sc_stats.reg, &out, &len), 0);
	return out;
}

/* The number on the line that starts with `line` (line up to the value). */
static double value_of(const char *text, const char *line)
{
	const char *p = text;
	size_t n = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p += n;
	}
	return -1;
}

static const struct sc_peer_id me = {"demo", "server", "server-sa"};
static const struct sc_peer_id caller = {"demo", "client", "client-sa"};

static struct sc_rpc_labels rpc(enum sc_reporter r, const struct sc_peer_id *peer,
				const char *authority, const char *path)
{
	return (struct sc_rpc_labels){
	    r,	  &me,		peer, authority, authority ? strlen(authority) : 0,
	    path, strlen(path), NULL, NULL,	 false};
}

START_TEST(both_reporters)
{
	struct sc_mcache *mc = calloc(1, sizeof(*mc));
	struct sc_rpc_labels in = rpc(SC_REPORTER_DESTINATION, &caller, "server.demo:50051",
				      "/helloworld.Greeter/SayHello");
	struct sc_rpc_labels out =
	    rpc(SC_REPORTER_SOURCE, NULL, "10.0.0.9:50051", "/helloworld.Greeter/SayHello");
	char *m;

	sc_stats_rpc_done(mc, &in, 0, 0.01);
	sc_stats_rpc_done(mc, &in, 0, 0.02);
	sc_stats_rpc_done(mc, &in, 7, 0.001);
	sc_stats_rpc_done(NULL, &in, 0, 0.01); /* no cache: the same series */
	sc_stats_rpc_done(mc, &out, 4, 1.0);
	m = render();
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"demo\",source_principal=\"unknown\",destination_workload="
		     "\"server\","
		     "destination_namespace=\"demo\",destination_principal=\"unknown\",destination_"
		     "service=\"server.demo\","
		     "grpc_service=\"helloworld.Greeter\",grpc_method=\"SayHello\","
		     "connection_security_policy=\"none\",grpc_code=\"OK\"}"),
	    3);
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"demo\",source_principal=\"unknown\",destination_workload="
		     "\"server\","
		     "destination_namespace=\"demo\",destination_principal=\"unknown\",destination_"
		     "service=\"server.demo\","
		     "grpc_service=\"helloworld.Greeter\",grpc_method=\"SayHello\","
		     "connection_security_policy=\"none\",grpc_code=\"PERMISSION_DENIED\"}"),
	    1);
	/* Source side: this pod is the source; an IP authority and no answer: unknown. */
	ck_assert_double_eq(
	    value_of(m, "grpcguard_requests_total{reporter=\"source\",source_workload=\"server\","
			"source_namespace=\"demo\",source_principal=\"unknown\",destination_"
			"workload=\"unknown\","
			"destination_namespace=\"unknown\",destination_principal=\"unknown\","
			"destination_service=\"unknown\","
			"grpc_service=\"helloworld.Greeter\",grpc_method=\"SayHello\","
			"connection_security_policy=\"none\",grpc_code=\"DEADLINE_EXCEEDED\"}"),
	    1);
	ck_assert_double_eq(
	    value_of(m, "grpcguard_request_duration_seconds_count{reporter=\"destination\","
			"source_workload=\"client\",source_namespace=\"demo\","
			"source_principal=\"unknown\",destination_workload=\"server\",destination_"
			"namespace=\"demo\","
			"destination_principal=\"unknown\",destination_service=\"server.demo\","
			"grpc_service=\"helloworld.Greeter\","
			"grpc_method=\"SayHello\",connection_security_policy=\"none\"}"),
	    4);
	ck_assert_double_eq(value_of(m, "grpcguard_metrics_series_overflow_total"), 0);
	free(m);
	free(mc);
}
END_TEST

/* mTLS: verified SPIFFE IDs and mutual_tls are their own series, apart from plaintext. */
START_TEST(mtls_labels)
{
	struct sc_mcache *mc = calloc(1, sizeof(*mc));
	struct sc_rpc_labels l = rpc(SC_REPORTER_DESTINATION, &caller, "svc", "/s.S/M");
	char *m;

	sc_stats_rpc_done(mc, &l, 0, 0.001); /* plaintext */
	l.source_principal = "spiffe://cluster.local/ns/demo/sa/client";
	l.destination_principal = "spiffe://cluster.local/ns/demo/sa/server";
	l.mtls = true;
	sc_stats_rpc_done(mc, &l, 0, 0.001);
	sc_stats_rpc_done(mc, &l, 0, 0.001);
	m = render();
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"demo\",source_principal=\"spiffe://cluster.local/ns/"
		     "demo/sa/client\",destination_workload=\"server\",destination_namespace="
		     "\"demo\",destination_principal=\"spiffe://cluster.local/ns/demo/sa/server\","
		     "destination_service=\"svc\",grpc_service=\"s.S\",grpc_method=\"M\","
		     "connection_security_policy=\"mutual_tls\",grpc_code=\"OK\"}"),
	    2);
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"demo\",source_principal=\"unknown\",destination_workload="
		     "\"server\",destination_namespace=\"demo\",destination_principal=\"unknown\","
		     "destination_service=\"svc\",grpc_service=\"s.S\",grpc_method=\"M\","
		     "connection_security_policy=\"none\",grpc_code=\"OK\"}"),
	    1);
	free(m);
	free(mc);
}
END_TEST

/* Cache entries that collide on a slot, or share a path with another caller, stay apart. */
START_TEST(cache_keys_apart)
{
	struct sc_mcache *mc = calloc(1, sizeof(*mc));
	struct sc_peer_id other = {"prod", "client", "x"};
	char path[64], *m;

	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 300; i++) {
			struct sc_rpc_labels l;
			snprintf(path, sizeof(path), "/s.S/M%d", i);
			l = rpc(SC_REPORTER_DESTINATION, i % 2 ? &caller : &other, "svc", path);
			sc_stats_rpc_done(mc, &l, 0, 0.001);
		}
	}
	m = render();
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"prod\",source_principal=\"unknown\",destination_workload="
		     "\"server\","
		     "destination_namespace=\"demo\",destination_principal=\"unknown\",destination_"
		     "service=\"svc\","
		     "grpc_service=\"s.S\",grpc_method=\"M298\",connection_security_policy="
		     "\"none\",grpc_code=\"OK\"}"),
	    3);
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"demo\",source_principal=\"unknown\",destination_workload="
		     "\"server\","
		     "destination_namespace=\"demo\",destination_principal=\"unknown\",destination_"
		     "service=\"svc\","
		     "grpc_service=\"s.S\",grpc_method=\"M299\",connection_security_policy="
		     "\"none\",grpc_code=\"OK\"}"),
	    3);
	free(m);
	free(mc);
}
END_TEST

/*
 * Past the cap, new label sets are counted under "other" (and in the overflow counter);
 * series that exist keep counting; the family never holds more than SC_STATS_MAX_SERIES.
 */
START_TEST(cardinality_cap)
{
	struct sc_mcache *mc = calloc(1, sizeof(*mc));
	const int normal = SC_STATS_MAX_SERIES - SC_STATS_FOLD_RESERVE;
	char path[64], *m, *p;
	size_t nreq = 0;

	for (int i = 0; i < normal + 500; i++) {
		struct sc_rpc_labels l;
		snprintf(path, sizeof(path), "/attack.S/M%d", i);
		l = rpc(SC_REPORTER_DESTINATION, &caller, "svc", path);
		sc_stats_rpc_done(mc, &l, i % 2 ? 0 : 5, 0.001);
	}
	/* An early series still counts as itself. */
	{
		struct sc_rpc_labels l =
		    rpc(SC_REPORTER_DESTINATION, &caller, "svc", "/attack.S/M1");
		sc_stats_rpc_done(mc, &l, 0, 0.001);
	}
	m = render();
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"client\","
		     "source_namespace=\"demo\",source_principal=\"unknown\",destination_workload="
		     "\"server\","
		     "destination_namespace=\"demo\",destination_principal=\"unknown\",destination_"
		     "service=\"svc\","
		     "grpc_service=\"attack.S\",grpc_method=\"M1\",connection_security_policy="
		     "\"none\",grpc_code=\"OK\"}"),
	    2);
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"other\","
		     "source_namespace=\"other\",source_principal=\"other\",destination_workload="
		     "\"other\","
		     "destination_namespace=\"other\",destination_principal=\"other\",destination_"
		     "service=\"other\","
		     "grpc_service=\"other\",grpc_method=\"other\",connection_security_policy="
		     "\"other\",grpc_code=\"OK\"}"),
	    250);
	ck_assert_double_eq(
	    value_of(m,
		     "grpcguard_requests_total{reporter=\"destination\",source_workload=\"other\","
		     "source_namespace=\"other\",source_principal=\"other\",destination_workload="
		     "\"other\","
		     "destination_namespace=\"other\",destination_principal=\"other\",destination_"
		     "service=\"other\","
		     "grpc_service=\"other\",grpc_method=\"other\",connection_security_policy="
		     "\"other\",grpc_code=\"NOT_FOUND\"}"),
	    250);
	ck_assert_double_eq(value_of(m, "grpcguard_metrics_series_overflow_total"), 500);
	/* A hand walk: ASan's strstr measures the whole (20 MB) haystack on every call. */
	for (p = m; *p; p++) {
		if (strncmp(p, "grpcguard_requests_total{", 25) == 0)
			nreq++;
		while (*p && *p != '\n')
			p++;
		if (!*p)
			break;
	}
	ck_assert_uint_le(nreq, SC_STATS_MAX_SERIES);
	ck_assert_uint_eq(nreq, (size_t)normal + 2);
	free(m);
	free(mc);
}
END_TEST

START_TEST(peer_invalid_counted)
{
	char *m;

	sc_stats_peer_invalid(SC_PEER_E_MALFORMED);
	sc_stats_peer_invalid(SC_PEER_E_MALFORMED);
	sc_stats_peer_invalid(SC_PEER_E_OVERSIZED);
	sc_stats_peer_invalid(SC_PEER_E_REPEATED);
	sc_stats_peer_invalid(SC_PEER_OK);
	m = render();
	ck_assert_double_eq(
	    value_of(m, "grpcguard_peer_metadata_invalid_total{reason=\"malformed\"}"), 2);
	ck_assert_double_eq(
	    value_of(m, "grpcguard_peer_metadata_invalid_total{reason=\"oversized\"}"), 1);
	ck_assert_double_eq(
	    value_of(m, "grpcguard_peer_metadata_invalid_total{reason=\"repeated\"}"), 1);
	free(m);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"labels", both_reporters},	       {"labels", mtls_labels},
	    {"cache", cache_keys_apart},       {"cap", cardinality_cap},
	    {"invalid", peer_invalid_counted},
	};
	return UT_RUN("sidecar/stats", cases, .timeout_s = 60, .setup = setup,
		      .teardown = teardown);
}
