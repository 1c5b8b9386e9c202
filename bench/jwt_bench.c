/*
 * JWT verification micro-benchmark (issue 10): the per-RPC cost of request authentication
 * with a cached key, for RS256, PS256, ES256 and ES384.
 *
 * For each algorithm, three figures in microseconds per token:
 *   openssl  the floor: EVP_DigestVerifyInit + EVP_DigestVerify of the same signing input
 *            with the same key (for ES*, the DER signature prepared in advance). This is
 *            what any JWT library on OpenSSL pays at least.
 *   jwt      sc_jwt_decode + sc_jwt_verify: base64url, two JSON parses, key selection,
 *            signature, exp/nbf/iss/aud.
 *   authn    sc_authn_check on a request's headers, as the proxy calls it per RPC, with
 *            its token cache off: header lookup, the above, principal string and claims
 *            reference. The cost of a token the sidecar has not seen before.
 *   cached   the same with the token cache on (the default) and the same token each time,
 *            as a gRPC client sends it on every RPC of a channel: a hash, a compare, the
 *            exp/nbf check and the principal copy.
 * Keys are made at start (RSA 2048, P-256, P-384); the key set is parsed once, as the
 * sidecar does per policy generation. Each figure is the best of 3 timed batches of at
 * least 0.2 s of this thread's CPU time. Not a test: it asserts nothing about speed; it
 * exits 1 only when a token fails to verify.
 *
 * Build (bench/run.sh or by hand, after `make`):
 *   gcc -std=c17 -O2 -g -D_GNU_SOURCE -I. -o build/jwt_bench bench/jwt_bench.c \
 *       sidecar/jwt.c sidecar/authn.c sidecar/filestat.c \
 *       build/libgrpcguard-policy.a build/libgrpcguard-common.a \
 *       $(pkg-config --cflags --libs jansson openssl yaml-0.1 libmicrohttpd) -lm -lpthread
 * Output: a header line (alg, openssl_us, jwt_us, authn_us), then two tab-separated lines
 * per algorithm, four fields each (bench/report.py reads them as a table): "RS256" with
 * the three uncached figures, and "RS256 same token (cache)" with "-", "-" and the cached
 * figure in the authn column.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "policy/policy.h"
#include "sidecar/authn.h"
#include "sidecar/jwt.h"
#include "tests/data/jwt/testkit.h"

#define ISS "https://issuer.example.com"
#define NOW 1700000000LL

/*
 * CPU time of this thread, not wall time: the figures are meant to be comparable between
 * runs on a machine shared with other work, where wall time mostly measures the others.
 */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef int (*op_fn)(void *ctx);

/* Best of 3 batches of at least 0.2 s: microseconds per call. -1 if op ever failed. */
static double measure(op_fn op, void *ctx)
{
	double best = 1e9;

	for (int round = 0; round < 3; round++) {
		double t0 = now_s(), t;
		long n = 0;
		do {
			for (int i = 0; i < 50; i++, n++)
				if (op(ctx) != 0)
					return -1;
			t = now_s() - t0;
		} while (t < 0.2);
		if (t / (double)n * 1e6 < best)
			best = t / (double)n * 1e6;
	}
	return best;
}

struct bench {
	const char *alg;
	EVP_PKEY *key;
	char *token;
	struct sc_jwks *jwks;
	struct sc_authn *authn;
	struct policy_header hdr[4];
	/* the openssl floor */
	unsigned char *sig;
	size_t sig_len;
	size_t signed_len;
};

static int op_openssl(void *ctx)
{
	struct bench *b = ctx;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok = EVP_DigestVerifyInit_ex(md, &pctx, tk_md(b->alg), NULL, NULL, b->key, NULL) > 0;

	if (ok && b->alg[0] == 'P')
		ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
	ok = ok && EVP_DigestVerify(md, b->sig, b->sig_len, (unsigned char *)b->token,
				    b->signed_len) == 1;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

static int op_jwt(void *ctx)
{
	struct bench *b = ctx;
	static const char *const auds[] = {"greeter"};
	struct sc_jwt_expect x = {ISS, auds, 1, NOW};
	struct sc_jwt *t = NULL;
	int r = sc_jwt_decode(b->token, strlen(b->token), &t);

	if (r == 0)
		r = sc_jwt_verify(t, b->jwks, &x);
	sc_jwt_free(t);
	return r;
}

/* The sidecar's whole JWT step; "authn" or "cached" by the token cache setting. */
static int op_authn(void *ctx)
{
	struct bench *b = ctx;
	struct sc_authn_result r;
	int ret;

	sc_authn_check(b->authn, b->hdr, 4, NOW, 0, &r);
	ret = r.verdict == SC_AUTHN_OK ? 0 : -1;
	sc_authn_result_cleanup(&r);
	return ret;
}

/* The DER signature of the token, for the floor measurement. */
static int prepare_floor(struct bench *b)
{
	const char *dot = strrchr(b->token, '.');
	unsigned char *raw = NULL;
	size_t n;

	b->signed_len = (size_t)(dot - b->token);
	if (sc_b64url_decode(dot + 1, strlen(dot + 1), &raw, &n) != 0)
		return -1;
	if (b->alg[0] != 'E') {
		b->sig = raw;
		b->sig_len = n;
		return 0;
	}
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(raw, (int)n / 2, NULL),
		       BN_bin2bn(raw + n / 2, (int)n / 2, NULL));
	b->sig = NULL;
	b->sig_len = (size_t)i2d_ECDSA_SIG(es, &b->sig);
	ECDSA_SIG_free(es);
	free(raw);
	return 0;
}

static int setup(struct bench *b)
{
	json_t *c = tk_claims(ISS, "alice", "greeter", NOW, 3600);
	char *jwks_text = tk_jwks_text(tk_jwk(b->key, "k1", NULL), NULL);
	char yaml[8192], *bearer = NULL;
	struct policy *p = NULL;
	struct policy_diag diag;
	char *err = NULL;
	int ret = -1;

	json_object_set_new(c, "groups", json_pack("[s, s]", "admins", "dev"));
	b->token = tk_token(b->key, b->alg, "k1", c);
	if (!b->token || sc_jwks_parse(jwks_text, strlen(jwks_text), &b->jwks, NULL, 0) != 0)
		goto out;
	snprintf(yaml, sizeof(yaml),
		 "requestAuthentication:\n  - issuer: " ISS "\n    audiences: [greeter]\n"
		 "    jwks: '%s'\n",
		 jwks_text);
	if (policy_parse_buffer("bench.yaml", yaml, strlen(yaml), &p, &diag) != 0) {
		fprintf(stderr, "jwt_bench: %s\n", diag.text);
		goto out;
	}
	if (sc_authn_new(p, &b->authn, &err) != 0 || err)
		goto out;
	if (asprintf(&bearer, "Bearer %s", b->token) < 0)
		goto out;
	/* What a grpc client sends, token last. */
	static const char *const names[] = {"content-type", "te", "user-agent", "authorization"};
	const char *values[] = {"application/grpc", "trailers", "grpc-python/1.51", bearer};
	for (int i = 0; i < 4; i++)
		b->hdr[i] = (struct policy_header){names[i], strlen(names[i]), values[i],
						   strlen(values[i])};
	bearer = NULL; /* kept in hdr[3] until exit */
	ret = prepare_floor(b);
out:
	free(bearer);
	free(err);
	free(jwks_text);
	policy_unref(p);
	json_decref(c);
	return ret;
}

int main(void)
{
	EVP_PKEY *rsa = tk_rsa_new(2048), *p256 = tk_ec_new("P-256"), *p384 = tk_ec_new("P-384");
	struct bench benches[] = {
	    {.alg = "RS256", .key = rsa},
	    {.alg = "PS256", .key = rsa},
	    {.alg = "ES256", .key = p256},
	    {.alg = "ES384", .key = p384},
	};
	int status = 0;

	log_init("jwt_bench", LOGL_WARN);
	printf("alg\topenssl_us\tjwt_us\tauthn_us\n");
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
		struct bench *b = &benches[i];
		double f, j, a, c;

		if (!b->key || setup(b) != 0) {
			fprintf(stderr, "jwt_bench: %s: setup failed\n", b->alg);
			status = 1;
			continue;
		}
		f = measure(op_openssl, b);
		j = measure(op_jwt, b);
		sc_authn_set_token_cache(b->authn, false);
		a = measure(op_authn, b);
		sc_authn_set_token_cache(b->authn, true);
		c = measure(op_authn, b); /* the same token each time: hits */
		if (f < 0 || j < 0 || a < 0 || c < 0)
			status = 1;
		printf("%s\t%.1f\t%.1f\t%.1f\n", b->alg, f, j, a);
		printf("%s same token (cache)\t-\t-\t%.2f\n", b->alg, c);
		fflush(stdout);
	}
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
		free(benches[i].token);
		free(benches[i].sig);
		free((char *)benches[i].hdr[3].value);
		sc_jwks_free(benches[i].jwks);
		sc_authn_free(benches[i].authn);
	}
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(p384);
	return status;
}
