/*
 * JWT (compact JWS) decoding and verification, and JWKS parsing, with OpenSSL 3 and
 * jansson. See jwt.h for the contract; this file holds no state besides the immutable
 * algorithm table.
 *
 * Keys are turned into EVP_PKEYs once, when a JWKS is parsed; verifying a token then costs
 * two base64url decodes (done in sc_jwt_decode), two small JSON parses and one
 * EVP_DigestVerify per candidate key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "sidecar/jwt.h"

#define MIN_RSA_BITS 2048

enum kty { KTY_RSA = 1, KTY_EC };

struct alg_info {
	const char *name;
	enum kty kty;
	const char *md;	    /* OpenSSL digest name */
	bool pss;	    /* RSASSA-PSS, salt length = digest length */
	size_t coord_bytes; /* EC: size of r, s, x and y; 0 for RSA */
	const char *group;  /* EC: OpenSSL group name */
	const char *crv;    /* EC: JWK "crv" */
};

static const struct alg_info algs[] = {
    {"RS256", KTY_RSA, "SHA256", false, 0, NULL, NULL},
    {"RS384", KTY_RSA, "SHA384", false, 0, NULL, NULL},
    {"RS512", KTY_RSA, "SHA512", false, 0, NULL, NULL},
    {"PS256", KTY_RSA, "SHA256", true, 0, NULL, NULL},
    {"PS384", KTY_RSA, "SHA384", true, 0, NULL, NULL},
    {"PS512", KTY_RSA, "SHA512", true, 0, NULL, NULL},
    {"ES256", KTY_EC, "SHA256", false, 32, "prime256v1", "P-256"},
    {"ES384", KTY_EC, "SHA384", false, 48, "secp384r1", "P-384"},
};

static const struct alg_info *alg_find(const char *name)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strcmp(algs[i].name, name) == 0)
			return &algs[i];
	return NULL;
}

const char *sc_jwt_strerror(int err)
{
	switch (err) {
	case SC_JWT_OK:
		return "ok";
	case SC_JWT_ERR_NOMEM:
		return "out of memory";
	case SC_JWT_ERR_TOOBIG:
		return "too large";
	case SC_JWT_ERR_MALFORMED:
		return "malformed token";
	case SC_JWT_ERR_ALG:
		return "algorithm not allowed";
	case SC_JWT_ERR_NOKEY:
		return "no matching key";
	case SC_JWT_ERR_SIGNATURE:
		return "bad signature";
	case SC_JWT_ERR_EXPIRED:
		return "expired";
	case SC_JWT_ERR_NOTYET:
		return "not yet valid";
	case SC_JWT_ERR_ISSUER:
		return "issuer mismatch";
	case SC_JWT_ERR_AUDIENCE:
		return "audience not allowed";
	case SC_JWT_ERR_CLAIMS:
		return "bad claim type";
	case SC_JWT_ERR_JWKS:
		return "bad JWKS";
	default:
		return "unknown error";
	}
}

/* ---- base64url ------------------------------------------------------------------- */

/* Value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * OpenSSL decodes standard base64 only, so the input is checked here (alphabet, length,
 * and that the unused bits of the last character are zero, which makes the encoding
 * canonical), translated to the standard alphabet, padded, and handed to EVP_DecodeBlock.
 */
int sc_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	size_t rem = len % 4, padded = len + (rem ? 4 - rem : 0);
	char *std = NULL;
	unsigned char *buf = NULL;
	int n, ret = SC_JWT_ERR_MALFORMED;

	*out = NULL;
	*out_len = 0;
	if (rem == 1 || len > SC_JWKS_MAX_BYTES)
		goto out;
	for (size_t i = 0; i < len; i++)
		if (b64url_value((unsigned char)in[i]) < 0)
			goto out;
	if (rem == 2 && (b64url_value((unsigned char)in[len - 1]) & 0x0f))
		goto out;
	if (rem == 3 && (b64url_value((unsigned char)in[len - 1]) & 0x03))
		goto out;

	ret = SC_JWT_ERR_NOMEM;
	std = malloc(padded + 1);
	buf = malloc(padded / 4 * 3 + 1);
	if (!std || !buf)
		goto out;
	for (size_t i = 0; i < len; i++)
		std[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	memset(std + len, '=', padded - len);
	std[padded] = '\0';

	ret = SC_JWT_ERR_MALFORMED;
	n = padded ? EVP_DecodeBlock(buf, (const unsigned char *)std, (int)padded) : 0;
	if (n < 0)
		goto out;
	/* EVP_DecodeBlock counts the bytes the padding stands for; take them off. */
	*out_len = (size_t)n - (padded - len);
	buf[*out_len] = '\0';
	*out = buf;
	buf = NULL;
	ret = 0;
out:
	free(std);
	free(buf);
	return ret;
}

/* Decode base64url text into a BIGNUM (new) or return NULL. */
static BIGNUM *b64url_bn(const char *s)
{
	unsigned char *raw = NULL;
	size_t n;
	BIGNUM *bn = NULL;

	if (sc_b64url_decode(s, strlen(s), &raw, &n) != 0 || n == 0)
		goto out;
	bn = BN_bin2bn(raw, (int)n, NULL);
out:
	free(raw);
	return bn;
}

/* ---- key sets -------------------------------------------------------------------- */

struct jwk {
	char *kid;		    /* NULL when the key has none */
	const struct alg_info *alg; /* NULL when the key does not restrict its alg */
	enum kty kty;
	size_t coord_bytes; /* EC only */
	EVP_PKEY *pkey;
};

struct sc_jwks {
	size_t n;
	struct jwk keys[];
};

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* An RSA public key from the JWK's n and e, or NULL with *why set. */
static EVP_PKEY *rsa_from_jwk(json_t *k, const char **why)
{
	const char *n_s = json_string_value(json_object_get(k, "n"));
	const char *e_s = json_string_value(json_object_get(k, "e"));
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	*why = "\"n\" and \"e\" must be base64url strings";
	if (!n_s || !e_s || !(n = b64url_bn(n_s)) || !(e = b64url_bn(e_s)))
		goto out;
	/* An even or tiny exponent is no RSA key anyone would publish; e = 1 would make
	 * "signature" and padded digest the same bytes. */
	*why = "\"e\" must be an odd exponent of at least 3";
	if (!BN_is_odd(e) || BN_num_bits(e) < 2)
		goto out;
	*why = "out of memory";
	if (!(bld = OSSL_PARAM_BLD_new()) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		goto out;
	*why = "not a valid RSA public key";
	if (!(pkey = pkey_fromdata("RSA", bld)))
		goto out;
	if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS) {
		*why = "RSA key shorter than 2048 bits";
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

/* An EC public key from crv, x, y (the point is checked to be on the curve). */
static EVP_PKEY *ec_from_jwk(json_t *k, const struct alg_info *curve, const char **why)
{
	const char *x_s = json_string_value(json_object_get(k, "x"));
	const char *y_s = json_string_value(json_object_get(k, "y"));
	unsigned char *x = NULL, *y = NULL, pub[1 + 2 * 66];
	size_t xn = 0, yn = 0, c = curve->coord_bytes;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	*why = "\"x\" and \"y\" must be base64url strings of the curve's coordinate size";
	if (!x_s || !y_s || sc_b64url_decode(x_s, strlen(x_s), &x, &xn) != 0 ||
	    sc_b64url_decode(y_s, strlen(y_s), &y, &yn) != 0 || xn != c || yn != c)
		goto out;
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, c);
	memcpy(pub + 1 + c, y, c);
	*why = "out of memory";
	if (!(bld = OSSL_PARAM_BLD_new()) ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve->group, 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * c))
		goto out;
	*why = "not a point on the curve";
	pkey = pkey_fromdata("EC", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/*
 * Fill *key from one JWK object. Returns 0, 1 when the key is to be skipped (*why says
 * why), or SC_JWT_ERR_NOMEM.
 */
static int jwk_load(json_t *k, struct jwk *key, const char **why)
{
	const char *kty, *use, *alg, *crv, *kid;
	const struct alg_info *curve = NULL;

	memset(key, 0, sizeof(*key));
	*why = "not an object";
	if (!json_is_object(k))
		return 1;
	kty = json_string_value(json_object_get(k, "kty"));
	use = json_string_value(json_object_get(k, "use"));
	alg = json_string_value(json_object_get(k, "alg"));
	kid = json_string_value(json_object_get(k, "kid"));
	*why = "\"kty\" must be \"RSA\" or \"EC\"";
	if (!kty)
		return 1;
	if (strcmp(kty, "RSA") == 0)
		key->kty = KTY_RSA;
	else if (strcmp(kty, "EC") == 0)
		key->kty = KTY_EC;
	else
		return 1;
	*why = "\"use\" is not \"sig\"";
	if (json_object_get(k, "use") && (!use || strcmp(use, "sig") != 0))
		return 1;
	*why = "\"kid\" is not a string";
	if (json_object_get(k, "kid") && !kid)
		return 1;
	if (json_object_get(k, "alg")) {
		*why = "\"alg\" is not a supported algorithm for this key type";
		if (!alg || !(key->alg = alg_find(alg)) || key->alg->kty != key->kty)
			return 1;
	}
	if (key->kty == KTY_EC) {
		crv = json_string_value(json_object_get(k, "crv"));
		*why = "\"crv\" must be \"P-256\" or \"P-384\"";
		for (size_t i = 0; crv && i < sizeof(algs) / sizeof(algs[0]); i++)
			if (algs[i].crv && strcmp(algs[i].crv, crv) == 0)
				curve = &algs[i];
		if (!curve)
			return 1;
		*why = "\"alg\" does not fit \"crv\"";
		if (key->alg && key->alg != curve)
			return 1;
		key->coord_bytes = curve->coord_bytes;
		key->pkey = ec_from_jwk(k, curve, why);
	} else {
		key->pkey = rsa_from_jwk(k, why);
	}
	if (!key->pkey)
		return 1;
	if (kid && !(key->kid = strdup(kid))) {
		EVP_PKEY_free(key->pkey);
		key->pkey = NULL;
		return SC_JWT_ERR_NOMEM;
	}
	return 0;
}

int sc_jwks_parse(const char *json, size_t len, struct sc_jwks **out, char *diag, size_t diag_len)
{
	json_t *root = NULL, *keys;
	json_error_t jerr;
	struct sc_jwks *ks = NULL;
	size_t nkeys;
	int ret = SC_JWT_ERR_JWKS;
	char dummy[1];

	*out = NULL;
	if (!diag || !diag_len) {
		diag = dummy;
		diag_len = sizeof(dummy);
	}
	diag[0] = '\0';
	if (len > SC_JWKS_MAX_BYTES) {
		snprintf(diag, diag_len, "JWKS is %zu bytes, over the limit of %d", len,
			 SC_JWKS_MAX_BYTES);
		ret = SC_JWT_ERR_TOOBIG;
		goto out;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(diag, diag_len, "JWKS is not JSON: %d:%d: %s", jerr.line, jerr.column,
			 jerr.text);
		goto out;
	}
	keys = json_object_get(root, "keys");
	if (!json_is_array(keys)) {
		snprintf(diag, diag_len, "JWKS must be an object with a \"keys\" array");
		goto out;
	}
	nkeys = json_array_size(keys);
	if (nkeys > SC_JWKS_MAX_KEYS) {
		snprintf(diag, diag_len, "JWKS has %zu keys, over the limit of %d", nkeys,
			 SC_JWKS_MAX_KEYS);
		ret = SC_JWT_ERR_TOOBIG;
		goto out;
	}
	ret = SC_JWT_ERR_NOMEM;
	if (!(ks = calloc(1, sizeof(*ks) + nkeys * sizeof(ks->keys[0]))))
		goto out;
	for (size_t i = 0; i < nkeys; i++) {
		const char *why = NULL;
		int r = jwk_load(json_array_get(keys, i), &ks->keys[ks->n], &why);
		if (r < 0)
			goto out;
		if (r == 0)
			ks->n++;
		else if (!diag[0])
			snprintf(diag, diag_len, "keys[%zu] skipped: %s", i, why);
	}
	if (ks->n == 0) {
		if (!diag[0])
			snprintf(diag, diag_len, "JWKS has no keys");
		else
			snprintf(diag + strlen(diag), diag_len - strlen(diag),
				 "; no usable key left");
		ret = SC_JWT_ERR_JWKS;
		goto out;
	}
	*out = ks;
	ks = NULL;
	ret = 0;
out:
	sc_jwks_free(ks);
	json_decref(root);
	return ret;
}

void sc_jwks_free(struct sc_jwks *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		free(ks->keys[i].kid);
		EVP_PKEY_free(ks->keys[i].pkey);
	}
	free(ks);
}

size_t sc_jwks_count(const struct sc_jwks *ks)
{
	return ks ? ks->n : 0;
}

/* ---- tokens ---------------------------------------------------------------------- */

struct sc_jwt {
	json_t *header;
	json_t *payload;
	const struct alg_info *alg;
	const char *kid;   /* borrowed from header, or NULL */
	char *signed_part; /* "<header>.<payload>" as received */
	size_t signed_len;
	unsigned char *sig;
	size_t sig_len;
};

void sc_jwt_free(struct sc_jwt *t)
{
	if (!t)
		return;
	json_decref(t->header);
	json_decref(t->payload);
	free(t->signed_part);
	free(t->sig);
	free(t);
}

/* base64url-decoded JSON object (new reference) or NULL. */
static json_t *b64url_json(const char *s, size_t len)
{
	unsigned char *raw = NULL;
	size_t n;
	json_t *j = NULL;

	if (len == 0 || sc_b64url_decode(s, len, &raw, &n) != 0)
		return NULL;
	j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (j && !json_is_object(j)) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

/* Registered claims must have their RFC 7519 types when present. */
static bool claims_well_typed(json_t *p)
{
	json_t *v, *aud = json_object_get(p, "aud");
	size_t i;

	if ((v = json_object_get(p, "iss")) && !json_is_string(v))
		return false;
	if ((v = json_object_get(p, "sub")) && !json_is_string(v))
		return false;
	if ((v = json_object_get(p, "exp")) && !json_is_number(v))
		return false;
	if ((v = json_object_get(p, "nbf")) && !json_is_number(v))
		return false;
	if ((v = json_object_get(p, "iat")) && !json_is_number(v))
		return false;
	if (aud && json_is_array(aud)) {
		json_array_foreach(aud, i, v) if (!json_is_string(v)) return false;
	} else if (aud && !json_is_string(aud)) {
		return false;
	}
	return true;
}

int sc_jwt_decode(const char *tok, size_t len, struct sc_jwt **out)
{
	const char *dot1, *dot2;
	const char *alg;
	json_t *kid;
	struct sc_jwt *t = NULL;
	int ret = SC_JWT_ERR_TOOBIG;

	*out = NULL;
	if (len > SC_JWT_MAX_TOKEN_BYTES)
		goto out;
	ret = SC_JWT_ERR_MALFORMED;
	if (!(dot1 = memchr(tok, '.', len)) ||
	    !(dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok))) ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)))
		goto out;
	ret = SC_JWT_ERR_NOMEM;
	if (!(t = calloc(1, sizeof(*t))))
		goto out;
	ret = SC_JWT_ERR_MALFORMED;
	if (!(t->header = b64url_json(tok, (size_t)(dot1 - tok))))
		goto out;
	ret = SC_JWT_ERR_ALG;
	alg = json_string_value(json_object_get(t->header, "alg"));
	if (!alg || !(t->alg = alg_find(alg)) || json_object_get(t->header, "crit"))
		goto out;
	ret = SC_JWT_ERR_MALFORMED;
	kid = json_object_get(t->header, "kid");
	if (kid && !json_is_string(kid))
		goto out;
	t->kid = json_string_value(kid);
	if (!(t->payload = b64url_json(dot1 + 1, (size_t)(dot2 - dot1 - 1))))
		goto out;
	if (sc_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - tok), &t->sig, &t->sig_len) != 0 ||
	    t->sig_len == 0)
		goto out;
	ret = SC_JWT_ERR_CLAIMS;
	if (!claims_well_typed(t->payload))
		goto out;
	ret = SC_JWT_ERR_NOMEM;
	t->signed_len = (size_t)(dot2 - tok);
	if (!(t->signed_part = malloc(t->signed_len + 1)))
		goto out;
	memcpy(t->signed_part, tok, t->signed_len);
	t->signed_part[t->signed_len] = '\0';
	*out = t;
	t = NULL;
	ret = 0;
out:
	sc_jwt_free(t);
	return ret;
}

const char *sc_jwt_issuer(const struct sc_jwt *t)
{
	return json_string_value(json_object_get(t->payload, "iss"));
}

const char *sc_jwt_subject(const struct sc_jwt *t)
{
	return json_string_value(json_object_get(t->payload, "sub"));
}

json_t *sc_jwt_claims(const struct sc_jwt *t)
{
	return t->payload;
}

/*
 * JWS ECDSA signatures are r||s, each left-padded to the coordinate size; OpenSSL wants
 * a DER ECDSA-Sig-Value. Returns the DER length and a new buffer in *der, or 0.
 */
static size_t ecdsa_raw_to_der(const unsigned char *sig, size_t coord, unsigned char **der)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)coord, NULL);
	BIGNUM *s = BN_bin2bn(sig + coord, (int)coord, NULL);
	int n = 0;

	*der = NULL;
	if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
		BN_free(r);
		BN_free(s);
		goto out;
	}
	n = i2d_ECDSA_SIG(es, der);
out:
	ECDSA_SIG_free(es);
	return n > 0 ? (size_t)n : 0;
}

/* 1 when key verifies t's signature, 0 when it does not, SC_JWT_ERR_NOMEM. */
static int verify_with(const struct sc_jwt *t, const struct jwk *key)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = t->sig;
	size_t sig_len = t->sig_len;
	int ret = SC_JWT_ERR_NOMEM;

	if (!md)
		goto out;
	if (key->kty == KTY_EC) {
		ret = 0;
		if (sig_len != 2 * key->coord_bytes)
			goto out;
		ret = SC_JWT_ERR_NOMEM;
		if (!(sig_len = ecdsa_raw_to_der(t->sig, key->coord_bytes, &der)))
			goto out;
		sig = der;
	}
	ret = 0;
	if (EVP_DigestVerifyInit_ex(md, &pctx, t->alg->md, NULL, NULL, key->pkey, NULL) <= 0)
		goto out;
	if (t->alg->pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
			    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
		goto out;
	ret = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)t->signed_part,
			       t->signed_len) == 1;
out:
	free(der);
	EVP_MD_CTX_free(md);
	return ret;
}

static bool key_fits(const struct jwk *key, const struct sc_jwt *t)
{
	if (t->kid && (!key->kid || strcmp(t->kid, key->kid) != 0))
		return false;
	if (key->kty != t->alg->kty)
		return false;
	if (key->kty == KTY_EC && key->coord_bytes != t->alg->coord_bytes)
		return false;
	return !key->alg || key->alg == t->alg;
}

static bool audience_ok(json_t *aud, const struct sc_jwt_expect *x)
{
	json_t *v;
	size_t i;

	for (size_t k = 0; k < x->naudiences; k++) {
		if (json_is_string(aud) && strcmp(json_string_value(aud), x->audiences[k]) == 0)
			return true;
		json_array_foreach(aud, i, v) if (strcmp(json_string_value(v), x->audiences[k]) ==
						  0) return true;
	}
	return false;
}

int sc_jwt_check_times(const json_t *claims, int64_t now_unix_s)
{
	json_t *exp = json_object_get(claims, "exp");
	json_t *nbf = json_object_get(claims, "nbf");
	double now = (double)now_unix_s;

	if (exp && now > json_number_value(exp) + SC_JWT_CLOCK_SKEW_S)
		return SC_JWT_ERR_EXPIRED;
	if (nbf && now + SC_JWT_CLOCK_SKEW_S < json_number_value(nbf))
		return SC_JWT_ERR_NOTYET;
	return 0;
}

int sc_jwt_verify(const struct sc_jwt *t, const struct sc_jwks *ks, const struct sc_jwt_expect *x)
{
	const char *iss = sc_jwt_issuer(t);
	bool tried = false, good = false;
	int r;

	for (size_t i = 0; ks && i < ks->n && !good; i++) {
		if (!key_fits(&ks->keys[i], t))
			continue;
		tried = true;
		r = verify_with(t, &ks->keys[i]);
		if (r < 0)
			return r;
		good = r == 1;
	}
	if (!tried)
		return SC_JWT_ERR_NOKEY;
	if (!good)
		return SC_JWT_ERR_SIGNATURE;
	if ((r = sc_jwt_check_times(t->payload, x->now_unix_s)) != 0)
		return r;
	if (!iss || !x->issuer || strcmp(iss, x->issuer) != 0)
		return SC_JWT_ERR_ISSUER;
	if (x->naudiences && !audience_ok(json_object_get(t->payload, "aud"), x))
		return SC_JWT_ERR_AUDIENCE;
	return 0;
}
