/* sidecar/identity: SPIFFE ID parsing, principals, the renewal schedule and backoff. */
#include <check.h>
#include <string.h>

#include "sidecar/identity.h"
#include "tests/unit/runner.h"

int parse_address(const char *a, char *host, size_t hcap, char *port, size_t pcap);

static int parse(const char *uri, char *p, char *td)
{
	return sc_spiffe_parse(uri, strlen(uri), p, SC_PRINCIPAL_MAX, td, 256);
}

START_TEST(spiffe_good)
{
	char p[SC_PRINCIPAL_MAX], td[256];

	ck_assert_int_eq(parse("spiffe://cluster.local/ns/demo/sa/client", p, td), 0);
	ck_assert_str_eq(p, "cluster.local/ns/demo/sa/client");
	ck_assert_str_eq(td, "cluster.local");
	ck_assert_int_eq(parse("spiffe://example.org/ns/kube-system/sa/default", p, td), 0);
	ck_assert_str_eq(p, "example.org/ns/kube-system/sa/default");
	ck_assert_str_eq(td, "example.org");
	/* Not NUL-terminated input: only len bytes count. */
	ck_assert_int_eq(sc_spiffe_parse("spiffe://td/ns/a/sa/bXXX", 21, p, sizeof(p), td, 256), 0);
	ck_assert_str_eq(p, "td/ns/a/sa/b");
}
END_TEST

START_TEST(spiffe_bad)
{
	char p[SC_PRINCIPAL_MAX] = "untouched", td[256] = "untouched";
	static const char *const bad[] = {
	    "",
	    "spiffe://",
	    "https://cluster.local/ns/demo/sa/client",
	    "SPIFFE://cluster.local/ns/demo/sa/client",
	    "spiffe://Cluster.Local/ns/demo/sa/client", /* the trust domain is lowercase */
	    "spiffe:///ns/demo/sa/client",
	    "spiffe://cluster.local/ns//sa/client",
	    "spiffe://cluster.local/ns/demo/sa/",
	    "spiffe://cluster.local/ns/demo/sa/client/extra",
	    "spiffe://cluster.local/ns/demo/sa/client?x=1",
	    "spiffe://cluster.local/ns/demo/sa/cli%65nt",
	    "spiffe://cluster.local/ns/demo",
	    "spiffe://cluster.local/sa/client/ns/demo",
	    "spiffe://cluster.local:8443/ns/demo/sa/client",
	    "spiffe://user@cluster.local/ns/demo/sa/client",
	    "spiffe://cluster.local/ns/de mo/sa/client",
	    "spiffe://cluster.local/ns/demo/sa/client\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], p, td) == -1, "accepted %s", bad[i]);
	ck_assert_str_eq(p, "untouched");
	ck_assert_str_eq(td, "untouched");
	/* An embedded NUL inside len is not a name character. */
	ck_assert_int_eq(sc_spiffe_parse("spiffe://td/ns/a/sa/b\0c", 23, p, sizeof(p), td, 256),
			 -1);
	/* Output too small. */
	ck_assert_int_eq(sc_spiffe_parse("spiffe://td/ns/a/sa/b", 21, p, 12, td, 256), -1);
	ck_assert_int_eq(sc_spiffe_parse("spiffe://td/ns/a/sa/b", 21, p, 13, td, 2), -1);
}
END_TEST

START_TEST(spiffe_lengths)
{
	char uri[700], p[SC_PRINCIPAL_MAX], td[256], ns[300];

	memset(ns, 'a', 253);
	ns[253] = '\0';
	snprintf(uri, sizeof(uri), "spiffe://td/ns/%s/sa/x", ns);
	ck_assert_int_eq(parse(uri, p, td), 0);
	ns[253] = 'a';
	ns[254] = '\0';
	snprintf(uri, sizeof(uri), "spiffe://td/ns/%s/sa/x", ns);
	ck_assert_int_eq(parse(uri, p, td), -1);
}
END_TEST

START_TEST(principal_split)
{
	const char *ns, *sa;
	size_t nl, sl;

	ck_assert_int_eq(sc_principal_split("cluster.local/ns/demo/sa/client", &ns, &nl, &sa, &sl),
			 0);
	ck_assert_int_eq((int)nl, 4);
	ck_assert(memcmp(ns, "demo", 4) == 0);
	ck_assert_str_eq(sa, "client");
	ck_assert_int_eq(sc_principal_split("cluster.local/ns//sa/client", &ns, &nl, &sa, &sl), -1);
	ck_assert_int_eq(sc_principal_split("cluster.local/ns/demo/sa/", &ns, &nl, &sa, &sl), -1);
	ck_assert_int_eq(sc_principal_split("cluster.local", &ns, &nl, &sa, &sl), -1);
}
END_TEST

START_TEST(renewal_schedule)
{
	/* Half-life: a 24 h certificate renews after 12 h, a 20 s one after 10 s. */
	ck_assert_int_eq(sc_identity_renew_at(1000, 1000 + 86400), 1000 + 43200);
	ck_assert_int_eq(sc_identity_renew_at(1000, 1020), 1010);
	ck_assert_int_eq(sc_identity_renew_at(1000, 1001), 1000);
	/* An empty or inverted validity period: renew at once. */
	ck_assert_int_eq(sc_identity_renew_at(1000, 1000), 1000);
	ck_assert_int_eq(sc_identity_renew_at(1000, 900), 1000);
}
END_TEST

START_TEST(backoff)
{
	/* Doubling from min, capped at max; jitter takes off at most 25 %. */
	ck_assert_uint_eq(sc_identity_backoff_ms(0, 1000, 60000, 0.0), 1000);
	ck_assert_uint_eq(sc_identity_backoff_ms(1, 1000, 60000, 0.0), 2000);
	ck_assert_uint_eq(sc_identity_backoff_ms(5, 1000, 60000, 0.0), 32000);
	ck_assert_uint_eq(sc_identity_backoff_ms(6, 1000, 60000, 0.0), 60000);
	ck_assert_uint_eq(sc_identity_backoff_ms(1000, 1000, 60000, 0.0), 60000);
	ck_assert_uint_eq(sc_identity_backoff_ms(0, 1000, 60000, 0.5), 875);
	ck_assert_uint_eq(sc_identity_backoff_ms(6, 1000, 60000, 0.999), 45015);
	for (unsigned a = 0; a < 40; a++) {
		uint64_t d = sc_identity_backoff_ms(a, 1000, 60000, 0.7);
		ck_assert(d >= 750 && d <= 60000);
	}
	/* Out-of-range jitter input is treated as none; min 0 counts as 1 ms. */
	ck_assert_uint_eq(sc_identity_backoff_ms(0, 1000, 60000, 1.5), 1000);
	ck_assert_uint_eq(sc_identity_backoff_ms(0, 0, 60000, 0.0), 1);
}
END_TEST

START_TEST(issuer_address)
{
	char h[256], p[8];

	ck_assert_int_eq(parse_address("https://grpcguard-webhook.grpcguard-system.svc:443", h,
				       sizeof(h), p, sizeof(p)),
			 0);
	ck_assert_str_eq(h, "grpcguard-webhook.grpcguard-system.svc");
	ck_assert_str_eq(p, "443");
	ck_assert_int_eq(parse_address("https://10.0.0.1", h, sizeof(h), p, sizeof(p)), 0);
	ck_assert_str_eq(p, "443");
	ck_assert_int_eq(parse_address("https://[fd00::1]:9443/", h, sizeof(h), p, sizeof(p)), 0);
	ck_assert_str_eq(h, "fd00::1");
	ck_assert_str_eq(p, "9443");
	ck_assert_int_eq(parse_address("http://x:443", h, sizeof(h), p, sizeof(p)), -1);
	ck_assert_int_eq(parse_address("https://x:0", h, sizeof(h), p, sizeof(p)), -1);
	ck_assert_int_eq(parse_address("https://x:70000", h, sizeof(h), p, sizeof(p)), -1);
	ck_assert_int_eq(parse_address("https://x:44a", h, sizeof(h), p, sizeof(p)), -1);
	ck_assert_int_eq(parse_address("https://:443", h, sizeof(h), p, sizeof(p)), -1);
	ck_assert_int_eq(parse_address("https://x/v1/certify", h, sizeof(h), p, sizeof(p)), -1);
	ck_assert_int_eq(parse_address("https://[fd00::1", h, sizeof(h), p, sizeof(p)), -1);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"spiffe", spiffe_good},	   {"spiffe", spiffe_bad},
	    {"spiffe", spiffe_lengths},	   {"principal", principal_split},
	    {"renewal", renewal_schedule}, {"renewal", backoff},
	    {"address", issuer_address},
	};
	return UT_RUN("sidecar/identity", cases, .timeout_s = 10);
}
