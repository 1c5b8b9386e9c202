/*
 * sidecar/jwt: base64url, JWKS parsing, token decoding and verification. Keys are made
 * once in main() (forked tests inherit them); tokens are signed in each test, against a
 * fixed "now" so the time edges are exact.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/jwt.h"
#include "tests/data/jwt/testkit.h"
#include "tests/unit/runner.h"

#define ISS "https://issuer.example.com"
#define NOW 1700000000LL

static EVP_PKEY *rsa_a, *rsa_b, *ec256, *ec384, *rsa_short;

static const char *const aud_greeter[] = {"greeter"};
static const char *const aud_two[] = {"other", "greeter"};

/* Decode and verify tok against jwks text; returns the first error or 0. */
static int check_token(const char *tok, const char *jwks, const char *const *auds, size_t naud,
		       long long now)
{
	struct sc_jwks *ks = NULL;
	struct sc_jwt *t = NULL;
	char diag[256];
	int r;

	ck_assert_int_eq(sc_jwks_parse(jwks, strlen(jwks), &ks, diag, sizeof(diag)), 0);
	r = sc_jwt_decode(tok, strlen(tok), &t);
	if (r == 0) {
		struct sc_jwt_expect x = {ISS, auds, naud, now};
		r = sc_jwt_verify(t, ks, &x);
	}
	sc_jwt_free(t);
	sc_jwks_free(ks);
	return r;
}

/* A token signed by k with standard claims, checked against a JWKS holding only k. */
static int simple(EVP_PKEY *k, const char *alg, const char *kid, json_t *claims, long long now)
{
	char *tok = tk_token(k, alg, kid, claims);
	char *jwks = tk_jwks_text(tk_jwk(k, kid, NULL), NULL);
	int r = check_token(tok, jwks, aud_greeter, 1, now);

	free(tok);
	free(jwks);
	return r;
}

/* ---- base64url ---------------------------------------------------------------- */
static void b64(const char *in, const char *want)
{
	unsigned char *out = NULL;
	size_t n = 0;
	int r = sc_b64url_decode(in, strlen(in), &out, &n);

	if (want) {
		ck_assert_msg(r == 0, "\"%s\" should decode", in);
		ck_assert_uint_eq(n, strlen(want));
		ck_assert_mem_eq(out, want, n);
	} else {
		ck_assert_msg(r == SC_JWT_ERR_MALFORMED, "\"%s\" should be refused", in);
		ck_assert_ptr_null(out);
	}
	free(out);
}

START_TEST(b64url_vectors)
{
	b64("", "");
	b64("Zg", "f");
	b64("Zm8", "fo");
	b64("Zm9v", "foo");
	b64("Zm9vYg", "foob");
	b64("_-8", "\xff\xef");
	b64("Zg==", NULL);  /* padding is not base64url */
	b64("Z", NULL);	    /* impossible length */
	b64("Zh", NULL);    /* non-canonical: unused bits set */
	b64("Zm9", NULL);   /* non-canonical */
	b64("a+b/", NULL);  /* standard alphabet */
	b64("Zm 9v", NULL); /* whitespace */
	b64("Zm9v\n", NULL);
}
END_TEST

/* ---- good tokens, every algorithm ------------------------------------------------ */
static const struct {
	const char *alg;
	int key; /* 0 rsa, 1 ec256, 2 ec384 */
} good_algs[] = {
    {"RS256", 0}, {"RS384", 0}, {"RS512", 0}, {"PS256", 0},
    {"PS384", 0}, {"PS512", 0}, {"ES256", 1}, {"ES384", 2},
};

START_TEST(good_token_per_alg)
{
	EVP_PKEY *k = good_algs[_i].key == 0 ? rsa_a : good_algs[_i].key == 1 ? ec256 : ec384;
	json_t *c = tk_claims(ISS, "alice", "greeter", NOW, 3600);
	struct sc_jwks *ks = NULL;
	struct sc_jwt *t = NULL;
	char *tok = tk_token(k, good_algs[_i].alg, "k1", c);
	char *jwks = tk_jwks_text(tk_jwk(k, "k1", good_algs[_i].alg), NULL);
	struct sc_jwt_expect x = {ISS, aud_greeter, 1, NOW};

	ck_assert_ptr_nonnull(tok);
	ck_assert_int_eq(sc_jwks_parse(jwks, strlen(jwks), &ks, NULL, 0), 0);
	ck_assert_int_eq(sc_jwt_decode(tok, strlen(tok), &t), 0);
	ck_assert_int_eq(sc_jwt_verify(t, ks, &x), 0);
	ck_assert_str_eq(sc_jwt_issuer(t), ISS);
	ck_assert_str_eq(sc_jwt_subject(t), "alice");
	ck_assert_str_eq(json_string_value(json_object_get(sc_jwt_claims(t), "aud")), "greeter");
	/* Also without kid in token or key: the key is found by type. */
	ck_assert_int_eq(simple(k, good_algs[_i].alg, NULL, c, NOW), 0);
	sc_jwt_free(t);
	sc_jwks_free(ks);
	free(tok);
	free(jwks);
	json_decref(c);
}
END_TEST

/* ---- signatures ------------------------------------------------------------------ */
START_TEST(wrong_signature)
{
	json_t *c = tk_claims(ISS, "alice", "greeter", NOW, 3600);
	char *jwks = tk_jwks_text(tk_jwk(rsa_a, "k1", NULL), tk_jwk(ec256, "e1", NULL), NULL);
	char *tok, *bad;

	/* Signed by another key that claims the published kid. */
	tok = tk_token(rsa_b, "RS256", "k1", c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_SIGNATURE);
	free(tok);

	/* A good token with one payload byte changed. */
	tok = tk_token(rsa_a, "RS256", "k1", c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), 0);
	bad = strdup(tok);
	bad[strchr(bad, '.') - bad + 5] ^= 1;
	ck_assert_int_ne(check_token(bad, jwks, aud_greeter, 1, NOW), 0);
	free(bad);
	/* Signature 3 bytes short (4 characters cut before the last 2, which stay canonical). */
	bad = strdup(tok);
	memmove(bad + strlen(bad) - 6, bad + strlen(bad) - 2, 3);
	ck_assert_int_eq(check_token(bad, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_SIGNATURE);
	free(bad);
	free(tok);

	/* ES256: flipped signature bit, and a signature of the wrong length. */
	tok = tk_token(ec256, "ES256", "e1", c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), 0);
	bad = strdup(tok);
	bad[strlen(bad) - 10] = bad[strlen(bad) - 10] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(check_token(bad, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_SIGNATURE);
	free(bad);
	bad = strdup(tok);
	memmove(bad + strlen(bad) - 6, bad + strlen(bad) - 2, 3);
	ck_assert_int_eq(check_token(bad, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_SIGNATURE);
	free(bad);
	free(tok);

	/* An RS256 token whose signature is an ES256 one: no match either way. */
	json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", "k1");
	char *hs = json_dumps(h, JSON_COMPACT);
	tok = tk_sign_raw(ec256, "ES256", hs, "{\"iss\":\"" ISS "\"}");
	ck_assert_int_eq(check_token(tok, jwks, NULL, 0, NOW), SC_JWT_ERR_NOKEY);
	free(tok);
	free(hs);
	json_decref(h);
	free(jwks);
	json_decref(c);
}
END_TEST

/* ---- time ---------------------------------------------------------------------------- */
START_TEST(expiry_and_skew)
{
	json_t *c = tk_claims(ISS, "alice", "greeter", NOW, 0); /* exp == NOW */

	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW), 0);
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW + 60), 0); /* inside the skew */
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW + 61), SC_JWT_ERR_EXPIRED);
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW + 86400), SC_JWT_ERR_EXPIRED);

	json_object_del(c, "exp"); /* no exp: valid forever, as Envoy's default */
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW + 86400 * 365), 0);

	json_object_set_new(c, "nbf", json_integer(NOW));
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW), 0);
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW - 60), 0);
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW - 61), SC_JWT_ERR_NOTYET);

	json_object_set_new(c, "exp", json_real((double)NOW + 0.5)); /* real numbers are fine */
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW + 60), 0);
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW + 61), SC_JWT_ERR_EXPIRED);

	json_object_set_new(c, "exp", json_string("tomorrow"));
	ck_assert_int_eq(simple(ec256, "ES256", "e", c, NOW), SC_JWT_ERR_CLAIMS);
	json_decref(c);
}
END_TEST

/* ---- issuer and audience ---------------------------------------------------------- */
START_TEST(issuer_and_audience)
{
	json_t *c = tk_claims("https://evil.example.com", "alice", "greeter", NOW, 60);
	char *tok, *jwks = tk_jwks_text(tk_jwk(ec256, NULL, NULL), NULL);

	ck_assert_int_eq(simple(ec256, "ES256", NULL, c, NOW), SC_JWT_ERR_ISSUER);
	json_object_del(c, "iss");
	ck_assert_int_eq(simple(ec256, "ES256", NULL, c, NOW), SC_JWT_ERR_ISSUER);
	json_object_set_new(c, "iss", json_integer(5));
	ck_assert_int_eq(simple(ec256, "ES256", NULL, c, NOW), SC_JWT_ERR_CLAIMS);
	json_object_set_new(c, "iss", json_string(ISS));
	ck_assert_int_eq(simple(ec256, "ES256", NULL, c, NOW), 0);

	json_object_set_new(c, "aud", json_string("payments"));
	tok = tk_token(ec256, "ES256", NULL, c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_AUDIENCE);
	ck_assert_int_eq(check_token(tok, jwks, NULL, 0, NOW), 0); /* no audiences configured */
	free(tok);

	json_object_set_new(c, "aud", json_pack("[s, s]", "payments", "greeter"));
	tok = tk_token(ec256, "ES256", NULL, c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), 0);
	ck_assert_int_eq(check_token(tok, jwks, aud_two, 2, NOW), 0);
	free(tok);

	json_object_set_new(c, "aud", json_pack("[s]", "other"));
	tok = tk_token(ec256, "ES256", NULL, c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_AUDIENCE);
	ck_assert_int_eq(check_token(tok, jwks, aud_two, 2, NOW), 0);
	free(tok);

	json_object_del(c, "aud");
	tok = tk_token(ec256, "ES256", NULL, c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_AUDIENCE);
	free(tok);

	json_object_set_new(c, "aud", json_pack("[s, i]", "greeter", 3));
	ck_assert_int_eq(simple(ec256, "ES256", NULL, c, NOW), SC_JWT_ERR_CLAIMS);
	free(jwks);
	json_decref(c);
}
END_TEST

/* ---- refused algorithms ------------------------------------------------------------- */
static int decode_only(const char *header, const char *payload, const char *sig)
{
	char *h = tk_b64url_str(header), *p = tk_b64url_str(payload);
	char tok[2048];
	struct sc_jwt *t = NULL;
	int r;

	snprintf(tok, sizeof(tok), "%s.%s.%s", h, p, sig);
	r = sc_jwt_decode(tok, strlen(tok), &t);
	if (r != 0)
		ck_assert_ptr_null(t);
	sc_jwt_free(t);
	free(h);
	free(p);
	return r;
}

START_TEST(refused_algorithms)
{
	const char *pl = "{\"iss\":\"" ISS "\",\"sub\":\"alice\"}";

	ck_assert_int_eq(decode_only("{\"alg\":\"none\"}", pl, ""), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":\"none\"}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":\"HS256\"}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":\"HS512\"}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":\"ES512\"}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":\"rs256\"}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"typ\":\"JWT\"}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":5}", pl, "c2ln"), SC_JWT_ERR_ALG);
	ck_assert_int_eq(
	    decode_only("{\"alg\":\"RS256\",\"crit\":[\"b64\"],\"b64\":false}", pl, "c2ln"),
	    SC_JWT_ERR_ALG);
	ck_assert_int_eq(decode_only("{\"alg\":\"RS256\"}", pl, "c2ln"), 0);

	/* HS256 signed with the RSA public key as the secret (the classic confusion): the
	 * header alone gets it refused, before any key is looked at. */
	char *h = tk_b64url_str("{\"alg\":\"HS256\",\"kid\":\"k1\"}");
	char *p = tk_b64url_str(pl), tok[512];
	snprintf(tok, sizeof(tok), "%s.%s.AAAA", h, p);
	char *jwks = tk_jwks_text(tk_jwk(rsa_a, "k1", NULL), NULL);
	ck_assert_int_eq(check_token(tok, jwks, NULL, 0, NOW), SC_JWT_ERR_ALG);
	free(jwks);
	free(h);
	free(p);
}
END_TEST

/* ---- malformed input ---------------------------------------------------------------- */
START_TEST(malformed_tokens)
{
	const char *hd = "{\"alg\":\"RS256\"}", *pl = "{\"iss\":\"x\"}";
	struct sc_jwt *t = NULL;
	char *big;

	ck_assert_int_eq(decode_only("not json", pl, "c2ln"), SC_JWT_ERR_MALFORMED);
	ck_assert_int_eq(decode_only("[1,2]", pl, "c2ln"), SC_JWT_ERR_MALFORMED);
	ck_assert_int_eq(decode_only("{\"alg\":\"RS256\",\"alg\":\"RS256\"}", pl, "c2ln"),
			 SC_JWT_ERR_MALFORMED); /* duplicate keys */
	ck_assert_int_eq(decode_only(hd, "{\"iss\":", "c2ln"), SC_JWT_ERR_MALFORMED);
	ck_assert_int_eq(decode_only(hd, "\"a string\"", "c2ln"), SC_JWT_ERR_MALFORMED);
	ck_assert_int_eq(decode_only(hd, "", "c2ln"), SC_JWT_ERR_MALFORMED);
	ck_assert_int_eq(decode_only(hd, pl, ""), SC_JWT_ERR_MALFORMED);       /* no signature */
	ck_assert_int_eq(decode_only(hd, pl, "c2l+"), SC_JWT_ERR_MALFORMED);   /* bad base64url */
	ck_assert_int_eq(decode_only(hd, pl, "c2ln.x"), SC_JWT_ERR_MALFORMED); /* four parts */
	ck_assert_int_eq(decode_only("{\"alg\":\"RS256\",\"kid\":7}", pl, "c2ln"),
			 SC_JWT_ERR_MALFORMED);
	ck_assert_int_eq(decode_only(hd, "{\"sub\":[\"a\"]}", "c2ln"), SC_JWT_ERR_CLAIMS);
	ck_assert_int_eq(decode_only(hd, "{\"nbf\":\"1\"}", "c2ln"), SC_JWT_ERR_CLAIMS);
	ck_assert_int_eq(decode_only(hd, "{\"iat\":true}", "c2ln"), SC_JWT_ERR_CLAIMS);
	ck_assert_int_eq(decode_only(hd, "{\"aud\":{\"a\":1}}", "c2ln"), SC_JWT_ERR_CLAIMS);

	static const char *const raw[] = {"",	     ".",   "..",      "...",
					  "abc",     "a.b", "a.b.c.d", "eyJhbGciOiJSUzI1NiJ9..c2ln",
					  "!!.!!.!!"};
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		ck_assert_int_eq(sc_jwt_decode(raw[i], strlen(raw[i]), &t), SC_JWT_ERR_MALFORMED);
		ck_assert_ptr_null(t);
	}
	/* Embedded NUL in the header JSON. */
	char *h = tk_b64url((const unsigned char *)"{\"alg\":\"RS256\"\0}", 16);
	char *p = tk_b64url_str(pl), tok[256];
	snprintf(tok, sizeof(tok), "%s.%s.c2ln", h, p);
	ck_assert_int_eq(sc_jwt_decode(tok, strlen(tok), &t), SC_JWT_ERR_MALFORMED);
	free(h);
	free(p);

	big = malloc(SC_JWT_MAX_TOKEN_BYTES + 2);
	memset(big, 'A', SC_JWT_MAX_TOKEN_BYTES + 1);
	big[10] = big[20] = '.';
	ck_assert_int_eq(sc_jwt_decode(big, SC_JWT_MAX_TOKEN_BYTES + 1, &t), SC_JWT_ERR_TOOBIG);
	free(big);
	ck_assert_str_eq(sc_jwt_strerror(SC_JWT_ERR_EXPIRED), "expired");
	ck_assert_str_eq(sc_jwt_strerror(12345), "unknown error");
}
END_TEST

/* ---- key selection ----------------------------------------------------------------- */
START_TEST(kid_selection_and_rotation)
{
	json_t *c = tk_claims(ISS, "alice", "greeter", NOW, 600);
	/* Both RSA keys published: the old one (k1) and the new one (k2). */
	char *jwks = tk_jwks_text(tk_jwk(rsa_a, "k1", "RS256"), tk_jwk(rsa_b, "k2", "RS256"),
				  tk_jwk(ec256, "e1", NULL), NULL);
	char *old_only = tk_jwks_text(tk_jwk(rsa_a, "k1", "RS256"), NULL);
	char *tok;

	tok = tk_token(rsa_b, "RS256", "k2", c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), 0);
	ck_assert_int_eq(check_token(tok, old_only, aud_greeter, 1, NOW), SC_JWT_ERR_NOKEY);
	free(tok);
	tok = tk_token(rsa_b, "RS256", "k1", c); /* right signer, wrong kid */
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_SIGNATURE);
	free(tok);
	tok = tk_token(rsa_b, "RS256", NULL, c); /* no kid: every RSA key is tried */
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), 0);
	ck_assert_int_eq(check_token(tok, old_only, aud_greeter, 1, NOW), SC_JWT_ERR_SIGNATURE);
	free(tok);
	tok = tk_token(rsa_a, "RS384", "k1", c); /* the key says RS256 only */
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_NOKEY);
	free(tok);
	tok = tk_token(rsa_a, "RS256", "nope", c);
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_NOKEY);
	free(tok);
	tok = tk_token(ec384, "ES384", NULL, c); /* only a P-256 key published */
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_NOKEY);
	free(tok);
	tok = tk_token(ec256, "ES256", "k1", c); /* kid of an RSA key */
	ck_assert_int_eq(check_token(tok, jwks, aud_greeter, 1, NOW), SC_JWT_ERR_NOKEY);
	free(tok);
	free(jwks);
	free(old_only);
	json_decref(c);
}
END_TEST

/* ---- JWKS parsing ------------------------------------------------------------------- */
static int parse(const char *text, char *diag, size_t n)
{
	struct sc_jwks *ks = NULL;
	int r = sc_jwks_parse(text, strlen(text), &ks, diag, n);

	if (r == 0) {
		ck_assert_ptr_nonnull(ks);
		r = (int)sc_jwks_count(ks);
	} else {
		ck_assert_ptr_null(ks);
	}
	sc_jwks_free(ks);
	return r;
}

START_TEST(jwks_parsing)
{
	char diag[256], *s;
	json_t *bad;

	ck_assert_int_eq(parse("not json", diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "not JSON"));
	ck_assert_int_eq(parse("{\"keys\":{}}", diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "\"keys\" array"));
	ck_assert_int_eq(parse("{\"keys\":[]}", diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_int_eq(
	    parse("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}", diag, sizeof(diag)),
	    SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "keys[0] skipped"));

	/* One good key among unusable ones: parsed, with a note on the first skipped. */
	s = tk_jwks_text(json_pack("{s:s}", "kty", "oct"), tk_jwk(rsa_a, "k1", NULL),
			 tk_jwk(rsa_short, "short", NULL), NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), 1);
	ck_assert_ptr_nonnull(strstr(diag, "keys[0] skipped"));
	free(s);
	s = tk_jwks_text(tk_jwk(rsa_short, "short", NULL), NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "2048"));
	free(s);

	/* Encryption keys, alg/kty mismatch, unknown curve, point off the curve. */
	bad = tk_jwk(ec256, "x", NULL);
	json_object_set_new(bad, "use", json_string("enc"));
	s = tk_jwks_text(bad, NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	free(s);
	s = tk_jwks_text(tk_jwk(ec256, "x", "RS256"), NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	free(s);
	s = tk_jwks_text(tk_jwk(ec256, "x", "ES384"), NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	free(s);
	bad = tk_jwk(ec256, "x", NULL);
	json_object_set_new(bad, "crv", json_string("P-521"));
	s = tk_jwks_text(bad, NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	free(s);
	bad = tk_jwk(ec256, "x", NULL);
	json_object_set(bad, "y", json_object_get(bad, "x")); /* (x, x) is not on P-256 */
	s = tk_jwks_text(bad, NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "curve"));
	free(s);
	bad = tk_jwk(rsa_a, "x", NULL);
	json_object_set_new(bad, "e", json_string("AQ")); /* e = 1 */
	s = tk_jwks_text(bad, NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "exponent"));
	free(s);
	bad = tk_jwk(rsa_a, "x", NULL);
	json_object_set_new(bad, "n", json_string("not+base64url"));
	s = tk_jwks_text(bad, NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	free(s);

	/* Keys that are not objects, lack kty, or have a kid that is not a string. */
	ck_assert_int_eq(parse("{\"keys\":[5, {\"n\":\"AQAB\"}]}", diag, sizeof(diag)),
			 SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "keys[0] skipped: not an object"));
	bad = tk_jwk(rsa_a, "x", NULL);
	json_object_set_new(bad, "kid", json_integer(1));
	s = tk_jwks_text(bad, NULL);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_nonnull(strstr(diag, "kid"));
	free(s);

	/* Every supported kind at once; a NULL diag is allowed. */
	s = tk_jwks_text(tk_jwk(rsa_a, "a", NULL), tk_jwk(ec256, "b", "ES256"),
			 tk_jwk(ec384, "c", NULL), NULL);
	ck_assert_int_eq(parse(s, NULL, 0), 3);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), 3);
	ck_assert_str_eq(diag, "");
	free(s);

	/* Limits. */
	json_t *root = json_object(), *arr = json_array();
	for (int i = 0; i < SC_JWKS_MAX_KEYS + 1; i++)
		json_array_append_new(arr, json_pack("{s:s}", "kty", "oct"));
	json_object_set_new(root, "keys", arr);
	s = json_dumps(root, JSON_COMPACT);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_TOOBIG);
	free(s);
	json_decref(root);
	s = calloc(1, SC_JWKS_MAX_BYTES + 2);
	memset(s, ' ', SC_JWKS_MAX_BYTES + 1);
	ck_assert_int_eq(parse(s, diag, sizeof(diag)), SC_JWT_ERR_TOOBIG);
	free(s);
}
END_TEST

int main(void)
{
	const struct ut_opts o = {.timeout_s = 20};
	const struct ut_case tests[] = {
	    {"b64url", b64url_vectors},		 {"signatures", wrong_signature},
	    {"time", expiry_and_skew},		 {"issuer_audience", issuer_and_audience},
	    {"refused_alg", refused_algorithms}, {"malformed", malformed_tokens},
	    {"kid", kid_selection_and_rotation}, {"jwks", jwks_parsing},
	};
	Suite *s;
	int rc;

	rsa_a = tk_rsa_new(2048);
	rsa_b = tk_rsa_new(2048);
	rsa_short = tk_rsa_new(1024);
	ec256 = tk_ec_new("P-256");
	ec384 = tk_ec_new("P-384");
	if (!rsa_a || !rsa_b || !rsa_short || !ec256 || !ec384)
		return 2;
	s = suite_create("sidecar/jwt");
	tcase_add_loop_test(ut_tcase(s, "good_per_alg", o), good_token_per_alg, 0,
			    UT_COUNT(good_algs));
	ut_add_cases(s, tests, UT_COUNT(tests), o);
	rc = ut_run(s);
	EVP_PKEY_free(rsa_a);
	EVP_PKEY_free(rsa_b);
	EVP_PKEY_free(rsa_short);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec384);
	return rc;
}
