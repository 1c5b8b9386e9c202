/*
 * webhook/review: AdmissionReview decoding and encoding without sockets.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "webhook/review.h"
#include "webhook/verdict.h"
#include "tests/unit/runner.h"
#include "tests/unit/webhook/fixtures.h"

struct answer {
	int status;
	json_t *json; /* the response object of a review, or NULL */
	char *text;
	struct wh_review_info info;
};

static struct answer call(enum wh_route route, const char *body)
{
	struct answer a = {0};
	size_t len = 0;
	bool is_json = false;

	a.status =
	    wh_review_handle(&cfg, route, body, strlen(body), &a.text, &len, &is_json, &a.info);
	ck_assert_ptr_nonnull(a.text);
	ck_assert_uint_eq(strlen(a.text), len);
	if (is_json) {
		json_t *root = json_loads(a.text, 0, NULL);
		ck_assert_ptr_nonnull(root);
		a.json = json_incref(json_object_get(root, "response"));
		ck_assert_str_eq(json_string_value(json_object_get(root, "kind")),
				 "AdmissionReview");
		json_decref(root);
	}
	return a;
}

static void done(struct answer *a)
{
	json_decref(a->json);
	free(a->text);
}

#define POD_REVIEW(api, op, obj)                                                                   \
	"{\"apiVersion\": \"" api "\", \"kind\": \"AdmissionReview\", \"request\": {\"uid\": "     \
	"\"u-1\", \"kind\": {\"group\": \"\", \"version\": \"v1\", \"kind\": \"Pod\"}, "           \
	"\"operation\": \"" op "\", \"namespace\": \"demo\", \"object\": " obj "}}"
#define POD                                                                                        \
	"{\"metadata\": {\"generateName\": \"web-\"}, \"spec\": {\"containers\": [{\"name\": "     \
	"\"a\"}]}}"

START_TEST(mutate_v1_and_v1beta1)
{
	static const char *const bodies[] = {POD_REVIEW("admission.k8s.io/v1", "CREATE", POD),
					     POD_REVIEW("admission.k8s.io/v1beta1", "CREATE", POD)};
	for (size_t i = 0; i < 2; i++) {
		struct answer a = call(WH_ROUTE_MUTATE, bodies[i]);
		const char *b64;
		unsigned char patch[65536];
		int n;

		ck_assert_int_eq(a.status, 200);
		ck_assert(strstr(a.text, i ? "\"admission.k8s.io/v1beta1\""
					   : "\"admission.k8s.io/v1\"") != NULL);
		ck_assert_str_eq(json_string_value(json_object_get(a.json, "uid")), "u-1");
		ck_assert(json_is_true(json_object_get(a.json, "allowed")));
		ck_assert_str_eq(json_string_value(json_object_get(a.json, "patchType")),
				 "JSONPatch");
		b64 = json_string_value(json_object_get(a.json, "patch"));
		n = EVP_DecodeBlock(patch, (const unsigned char *)b64, (int)strlen(b64));
		ck_assert_int_gt(n, 0);
		ck_assert(memcmp(patch, "[{\"op\":\"add\"", 12) == 0);
		ck_assert_str_eq(a.info.name, "web-*");
		ck_assert_str_eq(a.info.ns, "demo");
		ck_assert(a.info.patched && a.info.reviewed);
		done(&a);
	}
}
END_TEST

START_TEST(operations)
{
	struct answer a =
	    call(WH_ROUTE_MUTATE, POD_REVIEW("admission.k8s.io/v1", "DELETE", "null"));
	ck_assert_int_eq(a.status, 200);
	ck_assert(json_is_true(json_object_get(a.json, "allowed")));
	ck_assert_ptr_null(json_object_get(a.json, "patch"));
	done(&a);
	a = call(WH_ROUTE_MUTATE, POD_REVIEW("admission.k8s.io/v1", "UPDATE", POD));
	ck_assert(json_is_true(json_object_get(a.json, "allowed")));
	ck_assert_ptr_null(json_object_get(a.json, "patch"));
	ck_assert_str_eq(a.info.reason, "update-not-injected");
	done(&a);
	a = call(WH_ROUTE_MUTATE, POD_REVIEW("admission.k8s.io/v1", "CREATE", "null"));
	ck_assert(json_is_false(json_object_get(a.json, "allowed")));
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_object_get(a.json, "status"), "code")), 400);
	done(&a);
	a = call(WH_ROUTE_MUTATE, POD_REVIEW("admission.k8s.io/v1", "PATCH", POD));
	ck_assert(json_is_false(json_object_get(a.json, "allowed")));
	done(&a);
	/* A Pod on /validate is not ours to judge. */
	a = call(WH_ROUTE_VALIDATE, POD_REVIEW("admission.k8s.io/v1", "CREATE", POD));
	ck_assert(json_is_true(json_object_get(a.json, "allowed")));
	done(&a);
}
END_TEST

START_TEST(bad_requests)
{
	static const struct {
		const char *body, *needle;
	} cases[] = {
	    {"", "malformed JSON"},
	    {"{", "malformed JSON"},
	    {"[]", "apiVersion"},
	    {"{\"apiVersion\": \"v1\", \"kind\": \"AdmissionReview\"}", "apiVersion"},
	    {"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"Pod\"}", "kind must be"},
	    {"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\"}",
	     "no request"},
	    {"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", "
	     "\"request\": {}}",
	     "no uid"},
	    {"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", "
	     "\"request\": {\"uid\": 5}}",
	     "no uid"},
	    {"{\"a\": 1, \"a\": 2}", "malformed JSON"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct answer a = call(WH_ROUTE_MUTATE, cases[i].body);
		ck_assert_msg(a.status == 400, "case %zu: %d", i, a.status);
		ck_assert_ptr_null(a.json);
		ck_assert_msg(strstr(a.text, cases[i].needle) != NULL, "case %zu: %s", i, a.text);
		ck_assert(!a.info.reviewed);
		done(&a);
	}
}
END_TEST

START_TEST(missing_kind_is_denied)
{
	struct answer a =
	    call(WH_ROUTE_VALIDATE,
		 "{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", "
		 "\"request\": {\"uid\": \"x\", \"operation\": \"CREATE\", \"object\": {}}}");
	ck_assert_int_eq(a.status, 200);
	ck_assert(json_is_false(json_object_get(a.json, "allowed")));
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(json_object_get(a.json, "status"), "message")),
		   "request.kind.kind"));
	done(&a);
}
END_TEST

START_TEST(utf8_cut_by_truncation)
{
	/* A long multibyte annotation is quoted with "%.200s" into the denial: the review
	 * must still be answered (200), with valid UTF-8. */
	char body[8192], *p = body;
	struct answer a;

	p += sprintf(p,
		     "{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", "
		     "\"request\": {\"uid\": \"u\", \"kind\": {\"kind\": \"Pod\"}, \"operation\": "
		     "\"CREATE\", \"namespace\": \"d\", \"object\": {\"metadata\": {\"name\": \"");
	for (int i = 0; i < 150; i++)
		p += sprintf(p, "\xc3\xa9");
	/* "x" first, so the 200-byte cut lands inside a character. */
	p += sprintf(p, "\", \"annotations\": {\"grpcguard.io/inbound-ports\": \"x");
	for (int i = 0; i < 301; i++)
		p += sprintf(p, "\xc3\xa9");
	sprintf(p, "\"}}, \"spec\": {\"containers\": [{\"name\": \"a\"}]}}}}");
	a = call(WH_ROUTE_MUTATE, body);
	ck_assert_int_eq(a.status, 200);
	ck_assert(json_is_false(json_object_get(a.json, "allowed")));
	/* jansson accepts only valid UTF-8: the truncated copies must be valid. */
	for (int i = 0; i < 2; i++) {
		json_t *j = json_string(i ? a.info.message : a.info.name);
		ck_assert_ptr_nonnull(j);
		json_decref(j);
	}
	done(&a);
}
END_TEST

START_TEST(utf8_sanitize)
{
	char s[] = "ok \xc3\xa9 \xc3 \xff \xed\xa0\x80 \xf0\x9f\x98\x80 end\xe2\x82";
	wh_utf8_sanitize(s);
	ck_assert_str_eq(s, "ok \xc3\xa9 ? ? ??? \xf0\x9f\x98\x80 end??");
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"mutate_v1_and_v1beta1", mutate_v1_and_v1beta1},
	    {"operations", operations},
	    {"bad_requests", bad_requests},
	    {"missing_kind_is_denied", missing_kind_is_denied},
	    {"utf8_cut_by_truncation", utf8_cut_by_truncation},
	    {"utf8_sanitize", utf8_sanitize},
	};
	return UT_RUN("webhook/review", tests, .timeout_s = 10, .setup = cfg_setup,
		      .teardown = cfg_teardown);
}
