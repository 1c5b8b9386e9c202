/*
 * Test kit for the JWT tests, the benchmark and the fuzz seeds: makes keys with OpenSSL,
 * exports their public halves as JWKs, and signs tokens. Header-only (static functions)
 * because every user is a single-file program in the Makefile's scheme.
 *
 * Not production code: no error recovery beyond returning NULL, and it signs, which the
 * sidecar never does. Strings returned are malloc'd; the caller frees them.
 */
#ifndef GRPCGUARD_TEST_JWT_TESTKIT_H
#define GRPCGUARD_TEST_JWT_TESTKIT_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

static inline EVP_PKEY *tk_rsa_new(unsigned bits)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

/* group: "P-256" or "P-384" */
static inline EVP_PKEY *tk_ec_new(const char *group)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
}

/* base64url without padding of data[0..len). */
static inline char *tk_b64url(const unsigned char *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n;

	if (!out)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

static inline char *tk_b64url_str(const char *s)
{
	return tk_b64url((const unsigned char *)s, strlen(s));
}

static inline char *tk_b64url_bn(const BIGNUM *bn, int pad_to)
{
	int n = pad_to ? pad_to : BN_num_bytes(bn);
	unsigned char *buf = malloc((size_t)n);
	char *out = NULL;

	if (buf && BN_bn2binpad(bn, buf, n) == n)
		out = tk_b64url(buf, (size_t)n);
	free(buf);
	return out;
}

/* The public JWK of k as a new jansson object; kid and alg are optional. */
static inline json_t *tk_jwk(EVP_PKEY *k, const char *kid, const char *alg)
{
	json_t *j = json_object();
	BIGNUM *a = NULL, *b = NULL;
	char *sa = NULL, *sb = NULL;

	if (EVP_PKEY_is_a(k, "RSA")) {
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &a);
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &b);
		sa = tk_b64url_bn(a, 0);
		sb = tk_b64url_bn(b, 0);
		json_object_set_new(j, "kty", json_string("RSA"));
		json_object_set_new(j, "n", json_string(sa));
		json_object_set_new(j, "e", json_string(sb));
	} else {
		int bits = EVP_PKEY_get_bits(k);
		int c = (bits + 7) / 8;
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &a);
		EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &b);
		sa = tk_b64url_bn(a, c);
		sb = tk_b64url_bn(b, c);
		json_object_set_new(j, "kty", json_string("EC"));
		json_object_set_new(j, "crv", json_string(bits == 256 ? "P-256" : "P-384"));
		json_object_set_new(j, "x", json_string(sa));
		json_object_set_new(j, "y", json_string(sb));
	}
	json_object_set_new(j, "use", json_string("sig"));
	if (kid)
		json_object_set_new(j, "kid", json_string(kid));
	if (alg)
		json_object_set_new(j, "alg", json_string(alg));
	BN_free(a);
	BN_free(b);
	free(sa);
	free(sb);
	return j;
}

/* {"keys": [jwk...]} as text; steals the references of the NULL-terminated list. */
static inline char *tk_jwks_text(json_t *first, ...)
{
	json_t *root = json_object(), *arr = json_array();
	va_list ap;
	char *s;

	va_start(ap, first);
	for (json_t *k = first; k; k = va_arg(ap, json_t *))
		json_array_append_new(arr, k);
	va_end(ap);
	json_object_set_new(root, "keys", arr);
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

static inline const char *tk_md(const char *alg)
{
	return strstr(alg, "256") ? "SHA256" : strstr(alg, "384") ? "SHA384" : "SHA512";
}

/*
 * "<b64(header)>.<b64(payload)>.<b64(sig)>" signed with k as alg ("RS256", "PS256",
 * "ES256", ...). header and payload are JSON text used verbatim.
 */
static inline char *tk_sign_raw(EVP_PKEY *k, const char *alg, const char *header,
				const char *payload)
{
	char *h = tk_b64url_str(header), *p = tk_b64url_str(payload), *s = NULL, *tok = NULL;
	char *input = malloc(strlen(h) + strlen(p) + 2);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;

	sprintf(input, "%s.%s", h, p);
	if (EVP_DigestSignInit_ex(md, &pctx, tk_md(alg), NULL, NULL, k, NULL) <= 0)
		goto out;
	if (alg[0] == 'P') {
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
		EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
	}
	if (EVP_DigestSign(md, NULL, &sig_len, (unsigned char *)input, strlen(input)) <= 0)
		goto out;
	sig = malloc(sig_len);
	if (EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, strlen(input)) <= 0)
		goto out;
	if (alg[0] == 'E') {
		/* DER -> r||s, each padded to the coordinate size. */
		int c = (EVP_PKEY_get_bits(k) + 7) / 8;
		const unsigned char *pp = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &pp, (long)sig_len);
		unsigned char raw[2 * 66];
		BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, c);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + c, c);
		ECDSA_SIG_free(es);
		s = tk_b64url(raw, 2 * (size_t)c);
	} else {
		s = tk_b64url(sig, sig_len);
	}
	tok = malloc(strlen(input) + strlen(s) + 2);
	sprintf(tok, "%s.%s", input, s);
out:
	EVP_MD_CTX_free(md);
	free(sig);
	free(input);
	free(h);
	free(p);
	free(s);
	return tok;
}

/* A token with header {"alg":alg,"typ":"JWT"[,"kid":kid]} and the claims object (borrowed). */
static inline char *tk_token(EVP_PKEY *k, const char *alg, const char *kid, json_t *claims)
{
	json_t *hdr = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
	char *h, *p, *tok;

	if (kid)
		json_object_set_new(hdr, "kid", json_string(kid));
	h = json_dumps(hdr, JSON_COMPACT);
	p = json_dumps(claims, JSON_COMPACT);
	tok = tk_sign_raw(k, alg, h, p);
	json_decref(hdr);
	free(h);
	free(p);
	return tok;
}

/* Standard claims: iss, sub, aud (string), exp = now + exp_in_s, iat = now. New object. */
static inline json_t *tk_claims(const char *iss, const char *sub, const char *aud, long long now,
				long long exp_in_s)
{
	json_t *c = json_pack("{s:s, s:s, s:I, s:I}", "iss", iss, "sub", sub, "iat",
			      (json_int_t)now, "exp", (json_int_t)(now + exp_in_s));
	if (aud)
		json_object_set_new(c, "aud", json_string(aud));
	return c;
}

#endif
