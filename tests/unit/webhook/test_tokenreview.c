/*
 * webhook/tokenreview: what a TokenReview answer means (only an authenticated
 * ServiceAccount token for our audience is an identity), the SPIFFE ID derived from it,
 * and the request body we send.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "webhook/tokenreview.h"
#include "tests/unit/runner.h"

static enum wh_tr_result parse(const char *status_json, struct wh_identity *id, char *err,
			       size_t errlen)
{
	char doc[4096];

	snprintf(doc, sizeof(doc),
		 "{\"apiVersion\": \"authentication.k8s.io/v1\", \"kind\": \"TokenReview\", "
		 "\"status\": %s}",
		 status_json);
	memset(id, 0x5a, sizeof(*id));
	return wh_tokenreview_parse(doc, strlen(doc), "grpcguard", id, err, errlen);
}

static void expect_result(const char *status_json, enum wh_tr_result want, const char *needle)
{
	struct wh_identity id;
	char err[512] = "";
	enum wh_tr_result r = parse(status_json, &id, err, sizeof(err));

	ck_assert_msg(r == want, "%s: result %s, want %s (%s)", status_json, wh_tr_result_name(r),
		      wh_tr_result_name(want), err);
	if (needle)
		ck_assert_msg(strstr(err, needle), "%s: error \"%s\" lacks \"%s\"", status_json,
			      err, needle);
	if (want != WH_TR_OK)
		ck_assert_int_eq((unsigned char)id.ns[0], 0x5a); /* untouched */
}

START_TEST(identity)
{
	struct wh_identity id;
	char err[256], spiffe[600];

	ck_assert_int_eq(parse("{\"authenticated\": true, \"audiences\": [\"grpcguard\"], "
			       "\"user\": {\"username\": \"system:serviceaccount:demo:client\", "
			       "\"groups\": [\"system:serviceaccounts\"]}}",
			       &id, err, sizeof(err)),
			 WH_TR_OK);
	ck_assert_str_eq(id.ns, "demo");
	ck_assert_str_eq(id.sa, "client");
	ck_assert_int_gt(wh_spiffe_id("cluster.local", &id, spiffe, sizeof(spiffe)), 0);
	ck_assert_str_eq(spiffe, "spiffe://cluster.local/ns/demo/sa/client");
	ck_assert_int_gt(wh_spiffe_id("prod.example", &id, spiffe, sizeof(spiffe)), 0);
	ck_assert_str_eq(spiffe, "spiffe://prod.example/ns/demo/sa/client");
	/* Too small a buffer: -1 and "", never a cut identity. */
	ck_assert_int_eq(wh_spiffe_id("cluster.local", &id, spiffe, 20), -1);
	ck_assert_str_eq(spiffe, "");

	/* A dotted ServiceAccount name and several audiences. */
	ck_assert_int_eq(parse("{\"authenticated\": true, \"audiences\": [\"api\", "
			       "\"grpcguard\"], \"user\": {\"username\": "
			       "\"system:serviceaccount:kube-x:a.b-c\"}}",
			       &id, err, sizeof(err)),
			 WH_TR_OK);
	ck_assert_str_eq(id.ns, "kube-x");
	ck_assert_str_eq(id.sa, "a.b-c");
}
END_TEST

START_TEST(refused)
{
	expect_result("{\"authenticated\": false, \"error\": \"token has expired\"}",
		      WH_TR_UNAUTHENTICATED, "token has expired");
	expect_result("{\"authenticated\": false}", WH_TR_UNAUTHENTICATED, "not authenticated");
	expect_result("{\"user\": {\"username\": \"system:serviceaccount:a:b\"}, "
		      "\"audiences\": [\"grpcguard\"]}",
		      WH_TR_UNAUTHENTICATED, NULL); /* no authenticated: not true */
	expect_result("{\"authenticated\": \"true\", \"audiences\": [\"grpcguard\"], \"user\": "
		      "{\"username\": \"system:serviceaccount:a:b\"}}",
		      WH_TR_UNAUTHENTICATED, NULL); /* a string is not true */
	/* Audience: missing, empty, other, wrong type. */
	expect_result("{\"authenticated\": true, \"user\": {\"username\": "
		      "\"system:serviceaccount:a:b\"}}",
		      WH_TR_AUDIENCE, "audience \"grpcguard\"");
	expect_result("{\"authenticated\": true, \"audiences\": [], \"user\": {\"username\": "
		      "\"system:serviceaccount:a:b\"}}",
		      WH_TR_AUDIENCE, NULL);
	expect_result("{\"authenticated\": true, \"audiences\": [\"https://kubernetes.default."
		      "svc\"], \"user\": {\"username\": \"system:serviceaccount:a:b\"}}",
		      WH_TR_AUDIENCE, NULL);
	expect_result("{\"authenticated\": true, \"audiences\": \"grpcguard\", \"user\": "
		      "{\"username\": \"system:serviceaccount:a:b\"}}",
		      WH_TR_AUDIENCE, NULL);
	expect_result("{\"authenticated\": true, \"audiences\": [\"grpcguardx\"], \"user\": "
		      "{\"username\": \"system:serviceaccount:a:b\"}}",
		      WH_TR_AUDIENCE, NULL);
	/* Not a ServiceAccount, or one with names that cannot be. */
	static const char *const users[] = {
	    "alice",
	    "system:node:worker-1",
	    "system:serviceaccount:demo",
	    "system:serviceaccount::client",
	    "system:serviceaccount:demo:",
	    "system:serviceaccount:Demo:client",
	    "system:serviceaccount:demo:cli/ent",
	    "system:serviceaccount:demo:client:extra",
	    "system:serviceaccount:demo:a..b",
	    "system:serviceaccount:-demo:client",
	    "system:serviceaccount:demo:client\n",
	    "system:serviceaccount:this-namespace-name-is-far-too-long-for-a-dns-label-"
	    "0123456789abcdef:a",
	};
	for (size_t i = 0; i < UT_COUNT(users); i++) {
		char doc[512];
		json_t *u = json_string(users[i]);
		char *q = json_dumps(u, JSON_ENCODE_ANY);
		snprintf(doc, sizeof(doc),
			 "{\"authenticated\": true, \"audiences\": [\"grpcguard\"], \"user\": "
			 "{\"username\": %s}}",
			 q);
		expect_result(doc, WH_TR_NOT_SA, NULL);
		free(q);
		json_decref(u);
	}
	/* Not a TokenReview at all. */
	{
		struct wh_identity id;
		char err[256];
		ck_assert_int_eq(wh_tokenreview_parse("", 0, "grpcguard", &id, err, sizeof(err)),
				 WH_TR_BAD_RESPONSE);
		ck_assert_int_eq(wh_tokenreview_parse("[1]", 3, "grpcguard", &id, err, sizeof(err)),
				 WH_TR_BAD_RESPONSE);
		ck_assert_int_eq(wh_tokenreview_parse("{\"kind\":\"Status\"}", 17, "grpcguard", &id,
						      err, sizeof(err)),
				 WH_TR_BAD_RESPONSE);
	}
	expect_result("{\"authenticated\": true, \"audiences\": [\"grpcguard\"]}",
		      WH_TR_BAD_RESPONSE, "username");
	/* Duplicate keys could hide a second "authenticated": refused. */
	expect_result("{\"authenticated\": false, \"authenticated\": true, \"audiences\": "
		      "[\"grpcguard\"], \"user\": {\"username\": \"system:serviceaccount:a:b\"}}",
		      WH_TR_BAD_RESPONSE, NULL);
}
END_TEST

START_TEST(request_body)
{
	char *body = wh_tokenreview_body("tok\"en", "grpcguard");
	json_error_t e;
	json_t *j;

	ck_assert_ptr_nonnull(body);
	j = json_loads(body, 0, &e);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(json_string_value(json_object_get(j, "kind")), "TokenReview");
	ck_assert_str_eq(json_string_value(json_object_get(j, "apiVersion")),
			 "authentication.k8s.io/v1");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "spec"), "token")),
			 "tok\"en");
	ck_assert_str_eq(json_string_value(json_array_get(
			     json_object_get(json_object_get(j, "spec"), "audiences"), 0)),
			 "grpcguard");
	json_decref(j);
	free(body);
}
END_TEST

START_TEST(no_incluster_config)
{
	struct wh_tokenreview_client c = {.url = NULL,
					  .ca_file = "/nonexistent/ca.crt",
					  .token_file = "/nonexistent/token",
					  .timeout_ms = 500};
	struct wh_identity id;
	char err[512];

	unsetenv("KUBERNETES_SERVICE_HOST");
	ck_assert_int_eq(wh_tokenreview_call(&c, "t", "grpcguard", &id, err, sizeof(err)),
			 WH_TR_UNAVAILABLE);
	ck_assert_msg(strstr(err, "KUBERNETES_SERVICE_HOST"), "%s", err);
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "1", 1);
	ck_assert_int_eq(wh_tokenreview_call(&c, "t", "grpcguard", &id, err, sizeof(err)),
			 WH_TR_UNAVAILABLE);
	ck_assert_msg(strstr(err, "own ServiceAccount token"), "%s", err);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"identity", identity},
	    {"refused", refused},
	    {"request_body", request_body},
	    {"no_incluster_config", no_incluster_config},
	};
	return UT_RUN("webhook/tokenreview", tests, .timeout_s = 10);
}
