/*
 * webhook/certify: the endpoint's decisions with the TokenReview call replaced by a table
 * (the real CA from tests/data/identity): the status for each kind of token answer, the
 * certificate always naming the token's identity, bad bodies refused before any
 * TokenReview, the per-source and per-identity buckets, and the failure counters.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/fileio.h"
#include "webhook/certify.h"
#include "tests/unit/runner.h"

#define DATA "tests/data/identity/"

static struct wh_config cfg;
static struct metrics_registry *reg;
static struct wh_certify *cf;
static int reviews;
static int nested_status;
static char nested_error[512];

/* The stand-in: the token's text says what the API server would answer. */
static enum wh_tr_result fake_review(void *arg, const char *token, struct wh_identity *id,
				     char *err, size_t errlen)
{
	reviews++;
	snprintf(err, errlen, "fake: %s", token);
	if (!strncmp(token, "sa.", 3)) {
		/* sa.<ns>.<name> */
		const char *dot = strchr(token + 3, '.');
		snprintf(id->ns, sizeof(id->ns), "%.*s", (int)(dot - token - 3), token + 3);
		snprintf(id->sa, sizeof(id->sa), "%s", dot + 1);
		return WH_TR_OK;
	}
	if (!strcmp(token, "expired"))
		return WH_TR_UNAUTHENTICATED;
	if (!strcmp(token, "audience"))
		return WH_TR_AUDIENCE;
	if (!strcmp(token, "user"))
		return WH_TR_NOT_SA;
	if (!strcmp(token, "nested")) {
		/* While this review is in flight, another request comes in. */
		char *resp = NULL;
		struct wh_certify_request rq = {.authorization = "Bearer sa.a.b",
						.peer = "10.9.9.9",
						.body = arg, /* the CSR body */
						.len = strlen(arg),
						.now_mono_ms = 1000,
						.now = time(NULL)};
		nested_status = wh_certify_handle(cf, &rq, &resp);
		snprintf(nested_error, sizeof(nested_error), "%s", resp ? resp : "");
		free(resp);
		return WH_TR_UNAVAILABLE;
	}
	return WH_TR_UNAVAILABLE;
}

static void setup(void)
{
	char err[512];

	ck_assert_int_eq(wh_config_init(&cfg), 0);
	free(cfg.ca_cert_file);
	free(cfg.ca_key_file);
	cfg.ca_cert_file = strdup(DATA "ca.crt");
	cfg.ca_key_file = strdup(DATA "ca.key");
	cfg.identity_enabled = true;
	cfg.rl_source_per_minute = 1;
	cfg.rl_source_burst = 50;
	cfg.rl_identity_per_minute = 1;
	cfg.rl_identity_burst = 2;
	reg = metrics_registry_new();
	cf = wh_certify_new(&cfg, reg, err, sizeof(err));
	ck_assert_msg(cf != NULL, "%s", err);
	wh_certify_set_reviewer(cf, fake_review, NULL);
	reviews = 0;
}

static void teardown(void)
{
	wh_certify_free(cf);
	metrics_registry_free(reg);
	wh_config_cleanup(&cfg);
}

static char *csr_body(const char *file)
{
	char *pem = NULL, err[256], *out;
	size_t n;
	json_t *o;

	ck_assert_int_eq(fileio_read_bounded(file, 65536, &pem, &n, err, sizeof(err)), 0);
	o = json_pack("{s:s}", "csr", pem);
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(pem);
	return out;
}

/* POST body with Authorization auth from peer; the status, and the answer in *j (new). */
static int post(const char *auth, const char *peer, const char *body, json_t **j)
{
	struct wh_certify_request rq = {.authorization = auth,
					.peer = peer,
					.body = body,
					.len = strlen(body),
					.now_mono_ms = 1000,
					.now = time(NULL)};
	char *resp = NULL;
	json_error_t e;
	int st = wh_certify_handle(cf, &rq, &resp);

	ck_assert_ptr_nonnull(resp);
	*j = json_loads(resp, 0, &e);
	ck_assert_msg(*j != NULL, "not JSON: %s", resp);
	free(resp);
	return st;
}

static int post_status(const char *auth, const char *peer, const char *body, const char *needle)
{
	json_t *j;
	int st = post(auth, peer, body, &j);

	if (st != 200) {
		const char *e = json_string_value(json_object_get(j, "error"));
		ck_assert_ptr_nonnull(e);
		if (needle)
			ck_assert_msg(strstr(e, needle), "error \"%s\" lacks \"%s\"", e, needle);
	}
	json_decref(j);
	return st;
}

/* The URI SANs of the leaf in a 200 answer, joined by ' '. */
static void leaf_uris(json_t *j, char *out, size_t outlen)
{
	const char *chain = json_string_value(json_object_get(j, "certificateChain"));
	BIO *b = BIO_new_mem_buf(chain, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	GENERAL_NAMES *g;

	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_check_ca(x), 0);
	g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	out[0] = '\0';
	for (int i = 0; g && i < sk_GENERAL_NAME_num(g); i++) {
		GENERAL_NAME *n = sk_GENERAL_NAME_value(g, i);
		snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i ? " " : "",
			 n->type == GEN_URI
			     ? (const char *)ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)
			     : "(not a URI)");
	}
	GENERAL_NAMES_free(g);
	X509_free(x);
	BIO_free(b);
}

START_TEST(issues_token_identity)
{
	char *good = csr_body(DATA "csr-good.pem"), *evil = csr_body(DATA "csr-other-identity.pem");
	char uris[1024];
	json_t *j;

	ck_assert_int_eq(post("Bearer sa.demo.client", "10.0.0.1", good, &j), 200);
	leaf_uris(j, uris, sizeof(uris));
	ck_assert_str_eq(uris, "spiffe://cluster.local/ns/demo/sa/client");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(j, "caBundle")), "BEGIN CERTIFICATE"));
	ck_assert_int_eq(strlen(json_string_value(json_object_get(j, "expiresAt"))), 20);
	json_decref(j);
	/* The CSR asks for kube-system/admin and CA:TRUE: the token's identity, not a CA. */
	ck_assert_int_eq(post("bearer sa.payments.worker", "10.0.0.1", evil, &j), 200);
	leaf_uris(j, uris, sizeof(uris));
	ck_assert_str_eq(uris, "spiffe://cluster.local/ns/payments/sa/worker");
	json_decref(j);
	/* Another trust domain from the configuration. */
	free(cfg.trust_domain);
	cfg.trust_domain = strdup("prod.example");
	ck_assert_int_eq(post("Bearer sa.demo.other", "10.0.0.1", good, &j), 200);
	leaf_uris(j, uris, sizeof(uris));
	ck_assert_str_eq(uris, "spiffe://prod.example/ns/demo/sa/other");
	json_decref(j);
	free(good);
	free(evil);
}
END_TEST

START_TEST(token_answers)
{
	char *good = csr_body(DATA "csr-good.pem");

	ck_assert_int_eq(post_status(NULL, "p", good, "Bearer"), 401);
	ck_assert_int_eq(post_status("Basic YTpi", "p", good, "Bearer"), 401);
	ck_assert_int_eq(post_status("Bearer ", "p", good, NULL), 401);
	ck_assert_int_eq(post_status("Bearer a b", "p", good, NULL), 401);
	ck_assert_int_eq(post_status("Bearer tok\"en", "p", good, NULL), 401);
	ck_assert_int_eq(reviews, 0); /* malformed tokens never reach the API server */
	ck_assert_int_eq(post_status("Bearer expired", "p", good, NULL), 401);
	ck_assert_int_eq(post_status("Bearer audience", "p", good, NULL), 401);
	ck_assert_int_eq(post_status("Bearer user", "p", good, NULL), 403);
	ck_assert_int_eq(post_status("Bearer down", "p", good, NULL), 503);
	free(good);
}
END_TEST

START_TEST(bad_bodies)
{
	static const char *const bodies[] = {
	    "",
	    "x",
	    "[]",
	    "{}",
	    "{\"csr\": 1}",
	    "{\"csr\": \"a\", \"x\": 1}",
	    "{\"csr\": \"a\", \"csr\": \"b\"}",
	    "{\"csr\": \"not a pem\"}",
	};
	for (size_t i = 0; i < UT_COUNT(bodies); i++)
		ck_assert_msg(post_status("Bearer sa.a.b", "p", bodies[i], NULL) == 400, "%s",
			      bodies[i]);
	ck_assert_int_eq(reviews, 0);
}
END_TEST

START_TEST(rate_limits)
{
	char *good = csr_body(DATA "csr-good.pem");

	/* Per identity: a burst of 2. */
	ck_assert_int_eq(post_status("Bearer sa.demo.a", "10.0.0.1", good, NULL), 200);
	ck_assert_int_eq(post_status("Bearer sa.demo.a", "10.0.0.2", good, NULL), 200);
	ck_assert_int_eq(post_status("Bearer sa.demo.a", "10.0.0.3", good, "this identity"), 429);
	ck_assert_int_eq(post_status("Bearer sa.demo.b", "10.0.0.3", good, NULL), 200);
	/* Per source: a burst of 50 for everything from one address, before TokenReview. */
	for (int i = 0; i < 47; i++)
		post_status(NULL, "10.0.0.9", good, NULL);
	reviews = 0;
	ck_assert_int_eq(post_status("Bearer sa.demo.c", "10.0.0.9", good, NULL), 200);
	ck_assert_int_eq(post_status("Bearer sa.demo.c", "10.0.0.9", good, NULL), 200);
	ck_assert_int_eq(post_status("Bearer sa.demo.c", "10.0.0.9", good, NULL), 429);
	ck_assert_int_eq(post_status("Bearer sa.demo.d", "10.0.0.9", good, "this address"), 429);
	ck_assert_int_eq(reviews, 3);
	/* IPv6: one bucket per /64, so a host cannot rotate through its addresses. */
	for (int i = 0; i < 50; i++) {
		char peer[64];
		snprintf(peer, sizeof(peer), "2001:db8:1:2::%x", i + 1);
		post_status(NULL, peer, good, NULL);
	}
	ck_assert_int_eq(post_status(NULL, "2001:db8:1:2:ffff::1", good, "this address"), 429);
	ck_assert_int_eq(post_status(NULL, "2001:db8:1:3::1", good, "Bearer"), 401);
	/* An IPv4-mapped address is still its IPv4 address's own bucket. */
	ck_assert_int_eq(post_status(NULL, "::ffff:10.0.0.77", good, "Bearer"), 401);
	free(good);
}
END_TEST

START_TEST(busy)
{
	char *good = csr_body(DATA "csr-good.pem");
	json_t *j;

	/* One review at a time: a second request while one waits gets 503 busy at once. */
	wh_certify_set_reviewer(cf, fake_review, good);
	wh_certify_set_max_reviews(cf, 1);
	ck_assert_int_eq(post("Bearer nested", "10.0.0.1", good, &j), 503);
	json_decref(j);
	ck_assert_int_eq(nested_status, 503);
	ck_assert_msg(strstr(nested_error, "busy"), "%s", nested_error);
	/* With room for two, the nested one gets through (to its own answer). */
	wh_certify_set_max_reviews(cf, 2);
	ck_assert_int_eq(post("Bearer nested", "10.0.0.1", good, &j), 503);
	json_decref(j);
	ck_assert_int_eq(nested_status, 200);
	/* And the count went back down: a plain request passes with a cap of 1. */
	wh_certify_set_max_reviews(cf, 1);
	ck_assert_int_eq(post_status("Bearer sa.demo.z", "10.0.0.1", good, NULL), 200);
	free(good);
}
END_TEST

START_TEST(metrics_counted)
{
	char *good = csr_body(DATA "csr-good.pem"), *text = NULL;
	size_t len;

	post_status("Bearer sa.demo.a", "p", good, NULL);
	post_status(NULL, "p", good, NULL);
	post_status("Bearer expired", "p", good, NULL);
	post_status("Bearer sa.demo.a", "p", "junk", NULL);
	wh_certify_count_failure(cf, "body_too_large");
	ck_assert_int_eq(metrics_render(reg, &text, &len), 0);
	ck_assert_ptr_nonnull(strstr(text, "grpcguard_certificates_issued_total 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "grpcguard_certify_failures_total{reason=\"missing_token\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "grpcguard_certify_failures_total{reason=\"invalid_token\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "grpcguard_certify_failures_total{reason=\"bad_request\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "grpcguard_certify_failures_total{reason=\"body_too_large\"} 1\n"));
	ck_assert_ptr_nonnull(
	    strstr(text, "grpcguard_certify_failures_total{reason=\"wrong_audience\"} 0\n"));
	free(text);
	free(good);
}
END_TEST

START_TEST(missing_ca)
{
	struct wh_config c;
	struct metrics_registry *r = metrics_registry_new();
	char err[512];

	ck_assert_int_eq(wh_config_init(&c), 0);
	free(c.ca_cert_file);
	c.ca_cert_file = strdup("/nonexistent/tls.crt");
	ck_assert_ptr_null(wh_certify_new(&c, r, err, sizeof(err)));
	ck_assert_msg(strstr(err, "/nonexistent/tls.crt"), "%s", err);
	free(c.ca_cert_file);
	c.ca_cert_file = strdup(DATA "csr-good.pem");
	free(c.ca_key_file);
	c.ca_key_file = strdup(DATA "ca.key");
	ck_assert_ptr_null(wh_certify_new(&c, r, err, sizeof(err)));
	ck_assert_msg(strstr(err, "identity CA") && strstr(err, "no PEM certificate"), "%s", err);
	wh_config_cleanup(&c);
	metrics_registry_free(r);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"issues_token_identity", issues_token_identity},
	    {"token_answers", token_answers},
	    {"bad_bodies", bad_bodies},
	    {"rate_limits", rate_limits},
	    {"busy", busy},
	    {"metrics", metrics_counted},
	};
	const struct ut_case plain[] = {{"missing_ca", missing_ca}};
	Suite *s =
	    ut_suite("webhook/certify", tests, UT_COUNT(tests),
		     (struct ut_opts){.timeout_s = 30, .setup = setup, .teardown = teardown});
	ut_add_cases(s, plain, UT_COUNT(plain), (struct ut_opts){.timeout_s = 10});
	return ut_run(s);
}
