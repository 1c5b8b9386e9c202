/*
 * JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515), and JSON Web Key Sets
 * (RFC 7517), verified with OpenSSL 3.
 *
 * Pure: bytes and the current time in, a verdict out. No I/O, no clock, no logging, so the
 * same code serves the sidecar, the unit tests, the fuzz target and the benchmark.
 *
 * Supported: RS256 RS384 RS512 PS256 PS384 PS512 (RSA keys of 2048 bits or more), ES256
 * (P-256) and ES384 (P-384). Refused: "none", every HMAC algorithm (HS*: a public JWKS
 * must never be usable as a shared secret), anything else, and any token with a "crit"
 * header (we implement no JWS extension).
 *
 * What it does not do: read files, pick which policy entry applies to a token, or decide
 * authorization. sidecar/authn.c does the first two, the policy library the last.
 */
#ifndef GRPCGUARD_SC_JWT_H
#define GRPCGUARD_SC_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Limits on input we parse: a token longer than this is refused before any decoding. */
#define SC_JWT_MAX_TOKEN_BYTES (8 * 1024)
#define SC_JWKS_MAX_BYTES (256 * 1024)
#define SC_JWKS_MAX_KEYS 64
/* exp and nbf are compared with this much tolerance for clocks that disagree. */
#define SC_JWT_CLOCK_SKEW_S 60

enum sc_jwt_err {
	SC_JWT_OK = 0,
	SC_JWT_ERR_NOMEM = -1,
	SC_JWT_ERR_TOOBIG = -2,	   /* token or JWKS over its size limit */
	SC_JWT_ERR_MALFORMED = -3, /* not three base64url parts, bad base64url or JSON */
	SC_JWT_ERR_ALG = -4,	   /* alg missing, "none", HS*, unknown, or "crit" present */
	SC_JWT_ERR_NOKEY = -5,	   /* no key of the set matches kid / alg / curve */
	SC_JWT_ERR_SIGNATURE = -6, /* no candidate key verified the signature */
	SC_JWT_ERR_EXPIRED = -7,   /* now > exp + skew */
	SC_JWT_ERR_NOTYET = -8,	   /* now + skew < nbf */
	SC_JWT_ERR_ISSUER = -9,	   /* iss missing or not the expected issuer */
	SC_JWT_ERR_AUDIENCE = -10, /* none of the expected audiences appears in aud */
	SC_JWT_ERR_CLAIMS = -11,   /* exp/nbf/iat not numbers, iss/sub not strings, aud bad */
	SC_JWT_ERR_JWKS = -12,	   /* the key set is not valid JSON or has no usable key */
};
/* Static text, short enough for a log field: "expired", "bad signature", ... */
const char *sc_jwt_strerror(int err);

/* ---- key sets --------------------------------------------------------------------- */
struct sc_jwks; /* immutable once parsed; owns one EVP_PKEY per usable key */

/*
 * Parse a JWKS ({"keys": [...]}) from json[0..len). Keys that cannot be used (another
 * kty, "use" other than "sig", an unsupported crv or alg, bad or short key material) are
 * skipped; a description of the first one skipped is written to diag (if not NULL), and
 * diag is "" when every key was usable. Returns 0 and a new set holding at least one key,
 * or SC_JWT_ERR_TOOBIG / _JWKS / _NOMEM with diag describing the problem; *out is then NULL.
 */
int sc_jwks_parse(const char *json, size_t len, struct sc_jwks **out, char *diag, size_t diag_len);
void sc_jwks_free(struct sc_jwks *ks); /* NULL ok */
size_t sc_jwks_count(const struct sc_jwks *ks);

/* ---- tokens ----------------------------------------------------------------------- */
struct sc_jwt; /* a decoded token, signature not yet checked */

/*
 * Split and decode a compact JWS token (tok[0..len), no surrounding whitespace). Checks
 * structure only: three base64url parts, header and payload JSON objects, a supported alg,
 * no "crit", and the types of the registered claims (iss, sub strings; exp, nbf, iat
 * numbers; aud string or array of strings). Returns 0 and a new token, or a negative
 * sc_jwt_err leaving *out NULL.
 */
int sc_jwt_decode(const char *tok, size_t len, struct sc_jwt **out);
void sc_jwt_free(struct sc_jwt *t); /* NULL ok */

/* Borrowed from the token: "iss" / "sub" claims (NULL when absent), and the payload. */
const char *sc_jwt_issuer(const struct sc_jwt *t);
const char *sc_jwt_subject(const struct sc_jwt *t);
json_t *sc_jwt_claims(const struct sc_jwt *t);

/* What a token must satisfy, besides its signature. */
struct sc_jwt_expect {
	const char *issuer;	      /* required: iss must equal it */
	const char *const *audiences; /* if naudiences > 0, one of them must appear in aud */
	size_t naudiences;
	int64_t now_unix_s; /* wall-clock seconds, for exp and nbf */
};

/*
 * Verify t against the key set and the expectations. The key is chosen by kid when the
 * token has one (only keys with that kid), else every key whose type, curve and (if the
 * key states one) alg fit the token's alg is tried. The signature is checked first, the
 * claims (exp, nbf, iss, aud) only for a token whose signature verifies, so nobody learns
 * what we expect by sending unsigned tokens.
 * Returns 0 or a negative sc_jwt_err. Neither argument is modified.
 */
int sc_jwt_verify(const struct sc_jwt *t, const struct sc_jwks *ks, const struct sc_jwt_expect *x);

/*
 * The time claims alone: SC_JWT_ERR_EXPIRED when now > exp + skew, SC_JWT_ERR_NOTYET when
 * now + skew < nbf, else 0 (absent claims pass). claims is a decoded payload, whose
 * types sc_jwt_decode checked. For re-checking a token verified earlier (authn's cache).
 */
int sc_jwt_check_times(const json_t *claims, int64_t now_unix_s);

/* ---- building blocks, exposed for the tests ----------------------------------------- */
/*
 * Strict base64url (RFC 4648 §5, no padding, no whitespace) into a new buffer (NUL
 * terminated for convenience, *out_len excludes the NUL). 0, or SC_JWT_ERR_MALFORMED /
 * _NOMEM with *out NULL.
 */
int sc_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
