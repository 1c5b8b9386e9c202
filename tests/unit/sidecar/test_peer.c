/* sidecar/peer: workload identity, the x-grpcguard-peer header, destination_service. */
#include <check.h>
#include <string.h>

#include "sidecar/peer.h"
#include "tests/unit/runner.h"

static const char *owner(const char *pod)
{
	static char out[SC_PEER_NAME_MAX + 1];
	sc_peer_workload_from_pod(pod, out, sizeof(out));
	return out;
}

START_TEST(workload_from_pod_name)
{
	/* Deployment: <name>-<pod-template-hash>-<5>. */
	ck_assert_str_eq(owner("server-7d4b9c8f5-x2k9p"), "server");
	ck_assert_str_eq(owner("my-api-v2-5f6d7b8c9d-q7wzt"), "my-api-v2");
	ck_assert_str_eq(owner("web-6fb5c7b-2x8kq"), "web");
	/* StatefulSet: <name>-<ordinal>. */
	ck_assert_str_eq(owner("db-0"), "db");
	ck_assert_str_eq(owner("redis-cluster-12"), "redis-cluster");
	/* DaemonSet / Job: <name>-<5>. */
	ck_assert_str_eq(owner("fluentd-x7z2q"), "fluentd");
	ck_assert_str_eq(owner("migrate-schema-bq5tn"), "migrate-schema");
	/* CronJob: <name>-<schedule minutes>-<5>. */
	ck_assert_str_eq(owner("backup-28374651-kx9wz"), "backup");
	/* Bare pods keep their name: a last segment that is a word, not a random suffix. */
	ck_assert_str_eq(owner("client"), "client");
	ck_assert_str_eq(owner("my-service"), "my-service");
	ck_assert_str_eq(owner("tools-debug"), "tools-debug"); /* 5 chars, vowels: a word */
	/* A 5-digit last segment is not generateName's (never all digits in practice). */
	ck_assert_str_eq(owner("job-24567"), "job");
	/* Not a pod name: nothing. */
	ck_assert_str_eq(owner(""), "");
	ck_assert_str_eq(owner("Bad_Name"), "");
	ck_assert_str_eq(owner("-x"), "");
	ck_assert_uint_eq(sc_peer_workload_from_pod(NULL, (char[8]){0}, 8), 0);
}
END_TEST

START_TEST(workload_from_long_pod_name)
{
	char pod[300], out[SC_PEER_NAME_MAX + 1];

	/* A 70-character owner name is cut to 63 and ends on an alphanumeric. */
	memset(pod, 'a', 62);
	pod[62] = '-';
	memset(pod + 63, 'b', 7);
	strcpy(pod + 70, "-7d4b9c8f5-x2k9p");
	ck_assert_uint_eq(sc_peer_workload_from_pod(pod, out, sizeof(out)), 62);
	ck_assert_uint_eq(strlen(out), 62);
	ck_assert_int_eq(out[61], 'a');
	/* Too small an output: nothing. */
	ck_assert_uint_eq(sc_peer_workload_from_pod("server", out, 4), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

static struct policy_labels *labels(const char *text)
{
	struct policy_labels *l = NULL;
	struct policy_diag d;
	ck_assert_int_eq(policy_labels_parse(text, strlen(text), &l, &d), 0);
	return l;
}

START_TEST(self_identity)
{
	struct sc_peer_self me;
	struct policy_labels *l;

	/* app.kubernetes.io/name first, then app, then the owner from the pod name. */
	l = labels("app=\"other\"\napp.kubernetes.io/name=\"frontend\"\n");
	sc_peer_self_derive("frontend-7d4b9c8f5-x2k9p", "demo", "web-sa", l, &me);
	policy_labels_free(l);
	ck_assert_str_eq(me.id.workload, "frontend");
	ck_assert_str_eq(me.id.ns, "demo");
	ck_assert_str_eq(me.id.sa, "web-sa");
	ck_assert_str_eq(me.value, "ns=demo;wl=frontend;sa=web-sa");
	ck_assert_uint_eq(me.value_len, strlen(me.value));

	l = labels("app=\"Server_v1.2\"\n");
	sc_peer_self_derive("x-0", "demo", NULL, l, &me);
	policy_labels_free(l);
	ck_assert_str_eq(me.id.workload, "Server_v1.2");
	ck_assert_str_eq(me.id.sa, "unknown");

	/* A label value that is not a valid workload falls through to the next source. */
	l = labels("app.kubernetes.io/name=\"-bad\"\n");
	sc_peer_self_derive("server-7d4b9c8f5-x2k9p", "demo", "default", l, &me);
	policy_labels_free(l);
	ck_assert_str_eq(me.id.workload, "server");

	{
		nghttp2_nv nv;
		struct sc_peer_self none = {0};
		ck_assert_uint_eq(sc_peer_self_nv(&me, &nv), 1);
		ck_assert_uint_eq(nv.namelen, 16);
		ck_assert_int_eq(memcmp(nv.name, "x-grpcguard-peer", 16), 0);
		ck_assert_ptr_eq(nv.value, (uint8_t *)me.value);
		ck_assert_uint_eq(nv.valuelen, me.value_len);
		ck_assert_uint_eq(sc_peer_self_nv(&none, &nv), 0);
		ck_assert_uint_eq(sc_peer_self_nv(NULL, &nv), 0);
	}
	/* Nothing known: unknown everywhere, still a valid header value. */
	sc_peer_self_derive(NULL, NULL, NULL, NULL, &me);
	ck_assert_str_eq(me.value, "ns=unknown;wl=unknown;sa=unknown");
	/* Env values outside the charset are not trusted either. */
	sc_peer_self_derive("p", "Demo;x", "a\"b", NULL, &me);
	ck_assert_str_eq(me.value, "ns=unknown;wl=p;sa=unknown");
}
END_TEST

static int dec(const char *v, struct sc_peer_id *id)
{
	return sc_peer_decode((const uint8_t *)v, strlen(v), id);
}

START_TEST(decode_good)
{
	struct sc_peer_id id;
	char sa[SC_PEER_SA_MAX + 1], buf[SC_PEER_VALUE_MAX + 16];

	ck_assert_int_eq(dec("ns=demo;wl=client;sa=default", &id), SC_PEER_OK);
	ck_assert_str_eq(id.ns, "demo");
	ck_assert_str_eq(id.workload, "client");
	ck_assert_str_eq(id.sa, "default");
	ck_assert_int_eq(dec("ns=a;wl=B.c_d-E;sa=x.y-z", &id), SC_PEER_OK);
	ck_assert_str_eq(id.workload, "B.c_d-E");
	/* Round trip at the maximum lengths. */
	memset(&id, 0, sizeof(id));
	memset(id.ns, 'n', SC_PEER_NAME_MAX);
	memset(id.workload, 'w', SC_PEER_NAME_MAX);
	memset(sa, 's', SC_PEER_SA_MAX);
	sa[SC_PEER_SA_MAX] = '\0';
	memcpy(id.sa, sa, sizeof(sa));
	ck_assert_uint_eq(sc_peer_encode(&id, buf, sizeof(buf)), SC_PEER_VALUE_MAX);
	memset(&id, 0, sizeof(id));
	ck_assert_int_eq(dec(buf, &id), SC_PEER_OK);
	ck_assert_str_eq(id.sa, sa);
	/* Encode refuses an output too small, and invalid parts. */
	ck_assert_uint_eq(sc_peer_encode(&id, buf, SC_PEER_VALUE_MAX), 0);
	ck_assert_str_eq(buf, "");
	strcpy(id.ns, "has space");
	ck_assert_uint_eq(sc_peer_encode(&id, buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(decode_garbage)
{
	static const char *const bad[] = {
	    "",
	    "garbage",
	    "ns=demo;wl=client",		   /* missing sa */
	    "ns=demo;wl=client;sa=default;",	   /* trailing separator */
	    "ns=demo;wl=client;sa=default;x=1",	   /* extra field */
	    "wl=client;ns=demo;sa=default",	   /* wrong order */
	    "ns=;wl=client;sa=default",		   /* empty */
	    "ns=Demo;wl=client;sa=default",	   /* namespace is lowercase */
	    "ns=demo;wl=cli\"ent;sa=default",	   /* quote: never reaches a label */
	    "ns=demo;wl=cli\\ent;sa=default",	   /* backslash */
	    "ns=demo;wl=client\n;sa=default",	   /* newline */
	    "ns=demo;wl=client;sa=de fault",	   /* space */
	    "ns=demo;wl=-client;sa=default",	   /* must start alphanumeric */
	    "ns=demo;wl=client.;sa=default",	   /* must end alphanumeric */
	    "ns=demo;wl=client;sa=Default",	   /* service account is lowercase */
	    "ns=demo;wl=client;sa=default=x",	   /* '=' in a value */
	    "ns=demo;;wl=client;sa=default",	   /* empty field */
	    " ns=demo;wl=client;sa=default",	   /* leading space */
	    "ns=d\xc3\xa9mo;wl=client;sa=default", /* non-ASCII */
	};
	struct sc_peer_id id;

	for (size_t i = 0; i < UT_COUNT(bad); i++) {
		memset(&id, 'X', sizeof(id));
		ck_assert_msg(dec(bad[i], &id) == SC_PEER_E_MALFORMED, "accepted \"%s\"", bad[i]);
		ck_assert_str_eq(id.ns, "unknown");
		ck_assert_str_eq(id.workload, "unknown");
		ck_assert_str_eq(id.sa, "unknown");
	}
	/* An embedded NUL is not the end of the value. */
	ck_assert_int_eq(sc_peer_decode((const uint8_t *)"ns=demo;wl=c\0x;sa=default", 25, &id),
			 SC_PEER_E_MALFORMED);
	ck_assert_str_eq(sc_peer_strerror(SC_PEER_E_MALFORMED), "malformed");
}
END_TEST

START_TEST(decode_oversized)
{
	char big[SC_PEER_VALUE_MAX + 64];
	struct sc_peer_id id;

	/* 64 characters: over the namespace cap of 63. */
	strcpy(big, "ns=");
	memset(big + 3, 'a', 64);
	strcpy(big + 67, ";wl=client;sa=default");
	ck_assert_int_eq(dec(big, &id), SC_PEER_E_MALFORMED);
	/* Over the whole-value cap: refused before parsing. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(dec(big, &id), SC_PEER_E_OVERSIZED);
	ck_assert_str_eq(id.workload, "unknown");
	ck_assert_str_eq(sc_peer_strerror(SC_PEER_E_OVERSIZED), "oversized");
}
END_TEST

#define NV(n, v)                                                                                   \
	{                                                                                          \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, 0                    \
	}

START_TEST(strip_and_repeated)
{
	nghttp2_nv nv[] = {
	    NV(":status", "200"),
	    NV("x-grpcguard-peer", "ns=a;wl=b;sa=c"),
	    NV("content-type", "application/grpc"),
	    NV("x-grpcguard-peer", "ns=x;wl=y;sa=z"),
	    NV("x-grpcguard-peers", "kept"),
	};
	const nghttp2_nv *first = NULL;
	struct sc_peer_id id;
	size_t removed = 9, n;
	bool present;

	n = sc_peer_strip_nv(nv, UT_COUNT(nv), &first, &removed);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(removed, 2);
	ck_assert_int_eq(memcmp(nv[0].name, ":status", 7), 0);
	ck_assert_int_eq(memcmp(nv[1].name, "content-type", 12), 0);
	ck_assert_int_eq(memcmp(nv[2].name, "x-grpcguard-peers", 17), 0);
	ck_assert_ptr_nonnull(first);
	ck_assert_int_eq(memcmp(first->value, "ns=a;wl=b;sa=c", 14), 0);
	/* Two fields: repeated, unknown, whatever they say. */
	ck_assert_int_eq(sc_peer_from_fields(first->value, first->valuelen, removed, &id, &present),
			 SC_PEER_E_REPEATED);
	ck_assert(present);
	ck_assert_str_eq(id.workload, "unknown");
	ck_assert_int_eq(sc_peer_from_fields(first->value, first->valuelen, 1, &id, &present),
			 SC_PEER_OK);
	ck_assert_str_eq(id.workload, "b");
	ck_assert_int_eq(sc_peer_from_fields(NULL, 0, 0, &id, &present), SC_PEER_OK);
	ck_assert(!present);
	ck_assert_str_eq(id.ns, "unknown");
	/* None to strip. */
	n = sc_peer_strip_nv(nv, 3, &first, &removed);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(removed, 0);
	ck_assert_ptr_null(first);
	ck_assert(sc_peer_is_header((const uint8_t *)"x-grpcguard-peer", 16));
	ck_assert(!sc_peer_is_header((const uint8_t *)"X-Grpcguard-Peer", 16));
	ck_assert(!sc_peer_is_header((const uint8_t *)"x-grpcguard-pee", 15));
}
END_TEST

static const char *svc(const char *a)
{
	static char out[SC_PEER_SERVICE_MAX + 1];
	sc_peer_service_from_authority(a, a ? strlen(a) : 0, out, sizeof(out));
	return out;
}

START_TEST(destination_service)
{
	char big[400];

	ck_assert_str_eq(svc("server:50051"), "server");
	ck_assert_str_eq(svc("Server.Demo.svc.cluster.local:8080"),
			 "server.demo.svc.cluster.local");
	ck_assert_str_eq(svc("server.demo.svc.cluster.local."), "server.demo.svc.cluster.local");
	ck_assert_str_eq(svc("api.example.com"), "api.example.com");
	/* IPs are never labels. */
	ck_assert_str_eq(svc("10.1.2.3:50051"), "unknown");
	ck_assert_str_eq(svc("127.0.0.1"), "unknown");
	ck_assert_str_eq(svc("[::1]:50051"), "unknown");
	/* Garbage. */
	ck_assert_str_eq(svc(NULL), "unknown");
	ck_assert_str_eq(svc(""), "unknown");
	ck_assert_str_eq(svc(":50051"), "unknown");
	ck_assert_str_eq(svc("server:port"), "unknown");
	ck_assert_str_eq(svc("server:123456"), "unknown");
	ck_assert_str_eq(svc("se\"rver"), "unknown");
	ck_assert_str_eq(svc("a..b"), "unknown");
	ck_assert_str_eq(svc(".a"), "unknown");
	ck_assert_str_eq(svc("a-"), "unknown");
	ck_assert_str_eq(svc("user@server"), "unknown");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_str_eq(svc(big), "unknown");
	big[SC_PEER_SERVICE_MAX] = '\0';
	ck_assert_uint_eq(strlen(svc(big)), SC_PEER_SERVICE_MAX);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"workload", workload_from_pod_name}, {"workload", workload_from_long_pod_name},
	    {"identity", self_identity},	  {"decode", decode_good},
	    {"decode", decode_garbage},		  {"decode", decode_oversized},
	    {"strip", strip_and_repeated},	  {"service", destination_service},
	};
	return UT_RUN("sidecar/peer", cases, .timeout_s = 10);
}
