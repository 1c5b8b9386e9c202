/*
 * sidecar/authn: the JWT step as the proxy calls it, built from real policy YAML
 * (policy_parse_buffer): token lookup in the configured headers, issuer -> entry, verdicts,
 * principal and claims, forwardOriginalToken, and the JWKS file reload.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"
#include "sidecar/authn.h"
#include "tests/data/jwt/testkit.h"
#include "tests/unit/runner.h"

#define ISS_A "https://a.example.com"
#define ISS_B "https://b.example.com"
#define NOW 1700000000LL

static EVP_PKEY *rsa_a, *rsa_b, *ec_a;

static char *jwk_text(EVP_PKEY *k, const char *kid)
{
	return tk_jwks_text(tk_jwk(k, kid, NULL), NULL);
}

/* A policy from YAML (printf-style), which must parse. */
static struct policy *policy_from(const char *fmt, ...)
{
	char buf[16384];
	struct policy *p = NULL;
	struct policy_diag diag;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ck_assert_msg(policy_parse_buffer("test.yaml", buf, strlen(buf), &p, &diag) == 0,
		      "policy does not parse: %s\n%s", diag.text, buf);
	return p;
}

/* An authn for the policy; err_msg must be NULL unless want_err. */
static struct sc_authn *authn_from(struct policy *p, bool want_err)
{
	struct sc_authn *a = NULL;
	char *err = NULL;

	ck_assert_int_eq(sc_authn_new(p, &a, &err), 0);
	ck_assert_ptr_nonnull(a);
	if (want_err)
		ck_assert_ptr_nonnull(err);
	else
		ck_assert_msg(err == NULL, "unexpected: %s", err);
	free(err);
	policy_unref(p); /* the authn keeps its own reference */
	return a;
}

/* One check with headers given as name, value, name, value, ..., NULL. */
static enum sc_authn_verdict run(struct sc_authn *a, uint64_t mono_ms, struct sc_authn_result *res,
				 ...)
{
	struct policy_header h[8];
	size_t n = 0;
	va_list ap;
	const char *name;

	va_start(ap, res);
	while ((name = va_arg(ap, const char *)) && n < 8) {
		const char *value = va_arg(ap, const char *);
		h[n++] = (struct policy_header){name, strlen(name), value, strlen(value)};
	}
	va_end(ap);
	sc_authn_check(a, h, n, NOW, mono_ms, res);
	return res->verdict;
}

static char *token(EVP_PKEY *k, const char *alg, const char *kid, const char *iss, const char *sub,
		   long long exp_in)
{
	json_t *c = tk_claims(iss, sub, "greeter", NOW, exp_in);
	char *t;

	json_object_set_new(c, "groups", json_pack("[s, s]", "admins", "dev"));
	t = tk_token(k, alg, kid, c);
	json_decref(c);
	return t;
}

static char *bearer(const char *tok)
{
	char *s = NULL;

	ck_assert_int_gt(asprintf(&s, "Bearer %s", tok), 0);
	return s;
}

START_TEST(no_authn_entries)
{
	struct sc_authn *a =
	    authn_from(policy_from("apiVersion: grpcguard.io/v1\nkind: Policy\n"), false);
	struct sc_authn_result r;

	ck_assert_int_eq(run(a, 0, &r, "authorization", "Bearer garbage", NULL), SC_AUTHN_NONE);
	ck_assert_ptr_null(r.principal);
	sc_authn_result_cleanup(&r);
	sc_authn_free(a);
	sc_authn_free(NULL);
	sc_authn_result_cleanup(NULL);
}
END_TEST

START_TEST(good_token_gives_principal_and_claims)
{
	char *jwks = jwk_text(rsa_a, "k1");
	struct sc_authn *a = authn_from(policy_from("requestAuthentication:\n"
						    "  - issuer: " ISS_A "\n"
						    "    audiences: [greeter]\n"
						    "    jwks: '%s'\n",
						    jwks),
					false);
	struct sc_authn_result r;
	char *tok = token(rsa_a, "RS256", "k1", ISS_A, "alice", 600), *b = bearer(tok);

	ck_assert_int_eq(run(a, 0, &r, ":path", "/x", "authorization", b, NULL), SC_AUTHN_OK);
	ck_assert_str_eq(r.principal, ISS_A "/alice");
	ck_assert_ptr_nonnull(r.claims);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r.claims, "groups"), 0)),
			 "admins");
	ck_assert_ptr_null(r.strip_header);
	sc_authn_result_cleanup(&r);
	ck_assert_ptr_null(r.claims);

	/* The scheme is case-insensitive, spaces around the token are ignored. */
	char *lower = NULL;
	ck_assert_int_gt(asprintf(&lower, "bearer   %s  ", tok), 0);
	ck_assert_int_eq(run(a, 0, &r, "authorization", lower, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	free(lower);

	/* No token, or another scheme: no principal, not rejected. */
	ck_assert_int_eq(run(a, 0, &r, ":path", "/x", NULL), SC_AUTHN_NONE);
	ck_assert_int_eq(run(a, 0, &r, "authorization", "Basic YWxpY2U6cHc=", NULL), SC_AUTHN_NONE);
	ck_assert_int_eq(run(a, 0, &r, "x-token", b, NULL), SC_AUTHN_NONE);
	/* The scheme with nothing after it is a present, broken token. */
	ck_assert_int_eq(run(a, 0, &r, "authorization", "Bearer ", NULL), SC_AUTHN_FAIL);
	sc_authn_result_cleanup(&r);

	/* A token without sub: principal "<iss>/". */
	json_t *c = json_pack("{s:s, s:s}", "iss", ISS_A, "aud", "greeter");
	char *t2 = tk_token(rsa_a, "RS256", "k1", c), *b2 = bearer(t2);
	ck_assert_int_eq(run(a, 0, &r, "authorization", b2, NULL), SC_AUTHN_OK);
	ck_assert_str_eq(r.principal, ISS_A "/");
	sc_authn_result_cleanup(&r);
	json_decref(c);
	free(t2);
	free(b2);

	sc_authn_free(a);
	free(jwks);
	free(tok);
	free(b);
}
END_TEST

START_TEST(bad_tokens_fail)
{
	char *jwks = jwk_text(ec_a, "e1");
	struct sc_authn *a = authn_from(policy_from("requestAuthentication:\n"
						    "  - issuer: " ISS_A "\n"
						    "    audiences: [greeter, other]\n"
						    "    jwks: '%s'\n",
						    jwks),
					false);
	struct sc_authn_result r;
	struct {
		char *tok;
		const char *reason;
	} cases[] = {
	    {token(ec_a, "ES256", "e1", ISS_A, "alice", -3600), "expired"},
	    {token(rsa_a, "RS256", "e1", ISS_A, "alice", 600), "no matching key"},
	    {token(ec_a, "ES256", "e1", ISS_B, "alice", 600), "issuer not configured"},
	    {strdup("not.a.token"), "malformed token"},
	    {strdup("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2EuZXhhbXBsZS5jb20ifQ."),
	     "algorithm not allowed"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *b = bearer(cases[i].tok);
		ck_assert_int_eq(run(a, 0, &r, "authorization", b, NULL), SC_AUTHN_FAIL);
		ck_assert_ptr_nonnull(r.reason);
		ck_assert_msg(strcmp(r.reason, cases[i].reason) == 0, "case %zu: %s, want %s", i,
			      r.reason, cases[i].reason);
		ck_assert_ptr_null(r.principal);
		ck_assert_ptr_null(r.claims);
		sc_authn_result_cleanup(&r);
		free(b);
		free(cases[i].tok);
	}

	/* A good and a bad token in two authorization headers: the request fails. */
	char *good = token(ec_a, "ES256", "e1", ISS_A, "alice", 600), *bg = bearer(good);
	ck_assert_int_eq(run(a, 0, &r, "authorization", bg, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 0, &r, "authorization", bg, "authorization", "Bearer x.y.z", NULL),
			 SC_AUTHN_FAIL);
	ck_assert_ptr_null(r.principal);
	sc_authn_result_cleanup(&r);
	/* Wrong audience. */
	json_t *c = tk_claims(ISS_A, "alice", "payments", NOW, 600);
	char *t = tk_token(ec_a, "ES256", "e1", c), *bt = bearer(t);
	ck_assert_int_eq(run(a, 0, &r, "authorization", bt, NULL), SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "audience not allowed");
	sc_authn_result_cleanup(&r);
	json_decref(c);
	free(t);
	free(bt);
	free(good);
	free(bg);
	sc_authn_free(a);
	free(jwks);
}
END_TEST

START_TEST(issuers_and_headers)
{
	char *ja = jwk_text(rsa_a, "ka"), *jb = jwk_text(ec_a, "kb");
	struct sc_authn *a = authn_from(
	    policy_from(
		"requestAuthentication:\n"
		"  - issuer: " ISS_A "\n"
		"    jwks: '%s'\n"
		"  - issuer: " ISS_B "\n"
		"    jwks: '%s'\n"
		"    fromHeaders: [{name: x-jwt}, {name: authorization, prefix: \"Bearer \"}]\n"
		"    forwardOriginalToken: false\n",
		ja, jb),
	    false);
	struct sc_authn_result r;
	char *ta = token(rsa_a, "RS256", "ka", ISS_A, "alice", 600), *ba = bearer(ta);
	char *tb = token(ec_a, "ES256", "kb", ISS_B, "bob", 600), *bb = bearer(tb);
	char *forged = token(rsa_a, "RS256", "ka", ISS_B, "mallory", 600), *bf = bearer(forged);

	ck_assert_int_eq(run(a, 0, &r, "authorization", ba, NULL), SC_AUTHN_OK);
	ck_assert_str_eq(r.principal, ISS_A "/alice");
	ck_assert_ptr_null(r.strip_header);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 0, &r, "authorization", bb, NULL), SC_AUTHN_OK);
	ck_assert_str_eq(r.principal, ISS_B "/bob");
	ck_assert_str_eq(r.strip_header, "authorization");
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 0, &r, "x-jwt", tb, NULL), SC_AUTHN_OK);
	ck_assert_str_eq(r.principal, ISS_B "/bob");
	ck_assert_str_eq(r.strip_header, "x-jwt");
	sc_authn_result_cleanup(&r);
	/* Issuer A reads only authorization: its token in x-jwt matches no entry. */
	ck_assert_int_eq(run(a, 0, &r, "x-jwt", ta, NULL), SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "issuer not configured");
	sc_authn_result_cleanup(&r);
	/* B's issuer, signed with A's key (kid of A): B's keys do not have it. */
	ck_assert_int_eq(run(a, 0, &r, "authorization", bf, NULL), SC_AUTHN_FAIL);
	sc_authn_result_cleanup(&r);
	/* Both tokens: both verify; the first found gives the principal. */
	ck_assert_int_eq(run(a, 0, &r, "x-jwt", tb, "authorization", ba, NULL), SC_AUTHN_OK);
	ck_assert_str_eq(r.principal, ISS_A "/alice");
	sc_authn_result_cleanup(&r);

	sc_authn_free(a);
	free(ja);
	free(jb);
	free(ta);
	free(ba);
	free(tb);
	free(bb);
	free(forged);
	free(bf);
}
END_TEST

uint64_t sc_authn_cache_hits(const struct sc_authn *a); /* authn.c, GG_TESTING */

START_TEST(token_cache)
{
	char *jwks = jwk_text(ec_a, "e1");
	struct sc_authn *a =
	    authn_from(policy_from("requestAuthentication:\n"
				   "  - issuer: " ISS_A "\n"
				   "    jwks: '%s'\n"
				   "    fromHeaders: [{name: authorization, prefix: \"Bearer \"}]\n"
				   "  - issuer: " ISS_B "\n"
				   "    jwks: '%s'\n"
				   "    fromHeaders: [{name: x-b}]\n",
				   jwks, jwks),
		       false);
	struct sc_authn_result r;
	json_t *c = tk_claims(ISS_A, "alice", "greeter", NOW, 600);
	char *tok, *b;

	json_object_set_new(c, "nbf", json_integer(NOW + 30));
	tok = tk_token(ec_a, "ES256", "e1", c);
	b = bearer(tok);
	ck_assert_int_eq(run(a, 0, &r, "authorization", b, NULL), SC_AUTHN_OK);
	ck_assert_uint_eq(sc_authn_cache_hits(a), 0);
	sc_authn_result_cleanup(&r);
	/* Again: answered by the cache, with the same identity. */
	ck_assert_int_eq(run(a, 0, &r, "authorization", b, NULL), SC_AUTHN_OK);
	ck_assert_uint_eq(sc_authn_cache_hits(a), 1);
	ck_assert_str_eq(r.principal, ISS_A "/alice");
	ck_assert_str_eq(json_string_value(json_object_get(r.claims, "sub")), "alice");
	sc_authn_result_cleanup(&r);
	/* The time claims are checked on every use. */
	struct policy_header h = {"authorization", 13, b, strlen(b)};
	sc_authn_check(a, &h, 1, NOW + 661, 0, &r);
	ck_assert_int_eq(r.verdict, SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "expired");
	sc_authn_result_cleanup(&r);
	sc_authn_check(a, &h, 1, NOW - 31, 0, &r);
	ck_assert_int_eq(r.verdict, SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "not yet valid");
	sc_authn_result_cleanup(&r);
	ck_assert_uint_eq(sc_authn_cache_hits(a), 3);
	/* The same bytes from a header the issuer's entry does not read: no hit, and fails. */
	ck_assert_int_eq(run(a, 0, &r, "x-b", tok, NULL), SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "issuer not configured");
	sc_authn_result_cleanup(&r);
	ck_assert_uint_eq(sc_authn_cache_hits(a), 3);
	/* One byte different: verified in full (and fails). */
	tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
	free(b);
	b = bearer(tok);
	ck_assert_int_eq(run(a, 0, &r, "authorization", b, NULL), SC_AUTHN_FAIL);
	sc_authn_result_cleanup(&r);
	ck_assert_uint_eq(sc_authn_cache_hits(a), 3);
	/* Cache off: still correct, no hits. */
	sc_authn_set_token_cache(a, false);
	free(tok);
	free(b);
	tok = tk_token(ec_a, "ES256", "e1", c);
	b = bearer(tok);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(run(a, 0, &r, "authorization", b, NULL), SC_AUTHN_OK);
		sc_authn_result_cleanup(&r);
	}
	ck_assert_uint_eq(sc_authn_cache_hits(a), 3);
	sc_authn_free(a);
	json_decref(c);
	free(tok);
	free(b);
	free(jwks);
}
END_TEST

/*
 * Rewrite path in place with text of its current length and put its mtime back, so only
 * the ctime tells the change: what a watcher comparing inode, size and mtime misses.
 */
static void rewrite_keep_mtime(const char *path, const char *text)
{
	struct stat before, after;
	struct timespec times[2];
	FILE *f;

	ck_assert_int_eq(stat(path, &before), 0);
	ck_assert_uint_eq((size_t)before.st_size, strlen(text));
	f = fopen(path, "r+");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	times[0] = before.st_atim;
	times[1] = before.st_mtim;
	/* The kernel stamps ctime from a coarse clock: set the times until it moved on. */
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(utimensat(AT_FDCWD, path, times, 0), 0);
		ck_assert_int_eq(stat(path, &after), 0);
		if (after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
		    after.st_ctim.tv_nsec != before.st_ctim.tv_nsec)
			break;
		usleep(1000);
	}
	ck_assert(after.st_ino == before.st_ino && after.st_size == before.st_size);
	ck_assert(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
		  after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	ck_assert(after.st_ctim.tv_sec != before.st_ctim.tv_sec ||
		  after.st_ctim.tv_nsec != before.st_ctim.tv_nsec);
}

START_TEST(jwks_file_reload)
{
	char dir[] = "/tmp/gg-authn-XXXXXX", path[512];
	char *j1 = jwk_text(rsa_a, "k1"), *j2 = jwk_text(rsa_b, "k2");
	char *t1 = token(rsa_a, "RS256", "k1", ISS_A, "alice", 600), *b1 = bearer(t1);
	char *t2 = token(rsa_b, "RS256", "k2", ISS_A, "alice", 600), *b2 = bearer(t2);
	struct sc_authn_result r;
	struct sc_authn *a;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/jwks.json", dir);

	/* The file does not exist yet: reported, tokens of the issuer fail. */
	a = authn_from(policy_from("requestAuthentication:\n"
				   "  - issuer: " ISS_A "\n"
				   "    jwksFile: %s\n",
				   path),
		       true);
	ck_assert_int_eq(run(a, 0, &r, "authorization", b1, NULL), SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "no JWKS for the issuer");
	sc_authn_result_cleanup(&r);

	/* It appears: read at the next check that is due (1 s after the last stat). */
	ut_replace_file(path, j1);
	ck_assert_int_eq(run(a, 500, &r, "authorization", b1, NULL), SC_AUTHN_FAIL);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 1000, &r, "authorization", b1, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);

	/* Key rotation: the new key (kid k2) replaces k1. */
	ut_replace_file(path, j2);
	ck_assert_int_eq(run(a, 1500, &r, "authorization", b2, NULL), SC_AUTHN_FAIL);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 2000, &r, "authorization", b2, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 2001, &r, "authorization", b1, NULL), SC_AUTHN_FAIL);
	ck_assert_str_eq(r.reason, "no matching key");
	sc_authn_result_cleanup(&r);

	/* A broken file, then a vanished one: the last good keys stay. */
	ut_replace_file(path, "{\"keys\": [");
	ck_assert_int_eq(run(a, 3000, &r, "authorization", b2, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(run(a, 4000, &r, "authorization", b2, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	/* Back with both keys. */
	char *both = tk_jwks_text(tk_jwk(rsa_a, "k1", NULL), tk_jwk(rsa_b, "k2", NULL), NULL);
	ut_replace_file(path, both);
	ck_assert_int_eq(run(a, 5000, &r, "authorization", b1, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	ck_assert_int_eq(run(a, 5001, &r, "authorization", b2, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	/*
	 * Same inode, size and mtime, other content (the two keys swap their kids): the
	 * changed ctime alone makes it re-read, so kid k1 now names the other key.
	 */
	char *swapped = tk_jwks_text(tk_jwk(rsa_a, "k2", NULL), tk_jwk(rsa_b, "k1", NULL), NULL);
	rewrite_keep_mtime(path, swapped);
	ck_assert_int_eq(run(a, 6000, &r, "authorization", b1, NULL), SC_AUTHN_FAIL);
	sc_authn_result_cleanup(&r);
	ut_replace_file(path, both);
	sc_authn_free(a);

	/* A new authn (next policy generation) reads the file at once, with no error. */
	a = authn_from(policy_from("requestAuthentication:\n"
				   "  - issuer: " ISS_A "\n"
				   "    jwksFile: %s\n",
				   path),
		       false);
	ck_assert_int_eq(run(a, 0, &r, "authorization", b1, NULL), SC_AUTHN_OK);
	sc_authn_result_cleanup(&r);
	sc_authn_free(a);

	/* A JWKS whose only key is unusable is reported by sc_authn_new. */
	ut_replace_file(path, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}");
	a = authn_from(policy_from("requestAuthentication:\n"
				   "  - issuer: " ISS_A "\n"
				   "    jwksFile: %s\n",
				   path),
		       true);
	sc_authn_free(a);

	/* A directory is no JWKS file; two failing entries are both reported. */
	char *msg = NULL;
	struct policy *p = policy_from("requestAuthentication:\n"
				       "  - issuer: " ISS_A "\n"
				       "    jwksFile: %s\n"
				       "  - issuer: " ISS_B "\n"
				       "    jwksFile: %s/missing.json\n",
				       dir, dir);
	ck_assert_int_eq(sc_authn_new(p, &a, &msg), 0);
	ck_assert_ptr_nonnull(msg);
	ck_assert_ptr_nonnull(strstr(msg, "requestAuthentication[0] (issuer " ISS_A "): "));
	ck_assert_ptr_nonnull(strstr(msg, "not a regular file"));
	ck_assert_ptr_nonnull(strstr(msg, "; requestAuthentication[1] (issuer " ISS_B "): "));
	ck_assert_ptr_nonnull(strstr(msg, "cannot open"));
	free(msg);
	sc_authn_free(a);
	ck_assert_int_eq(sc_authn_new(p, &a, NULL), 0); /* err_msg may be NULL */
	sc_authn_free(a);
	policy_unref(p);

	unlink(path);
	rmdir(dir);
	free(both);
	free(swapped);
	free(j1);
	free(j2);
	free(t1);
	free(b1);
	free(t2);
	free(b2);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"no_entries", no_authn_entries},
	    {"good_token", good_token_gives_principal_and_claims},
	    {"bad_tokens", bad_tokens_fail},
	    {"issuers_headers", issuers_and_headers},
	    {"jwks_reload", jwks_file_reload},
	    {"token_cache", token_cache},
	};
	int rc;

	rsa_a = tk_rsa_new(2048);
	rsa_b = tk_rsa_new(2048);
	ec_a = tk_ec_new("P-256");
	if (!rsa_a || !rsa_b || !ec_a)
		return 2;
	rc = UT_RUN("sidecar/authn", tests, .timeout_s = 20);
	EVP_PKEY_free(rsa_a);
	EVP_PKEY_free(rsa_b);
	EVP_PKEY_free(ec_a);
	return rc;
}
