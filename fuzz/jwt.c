/*
 * Fuzz target: a JWT (compact JWS) token, decoded and verified against a fixed JWKS
 * (fuzz/jwt_keys.h; fuzz/corpus/jwt holds tokens signed by its private halves). Deterministic:
 * "now" is fixed. The key set is parsed per input so that everything is freed.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz/jwt_keys.h"
#include "sidecar/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const audiences[] = {"greeter", "other"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sc_jwks *ks = NULL;
	struct sc_jwt *t = NULL;
	struct sc_jwt_expect x = {"https://issuer.example.com", audiences, 2, 1700000000};

	if (sc_jwks_parse(jwks, strlen(jwks), &ks, NULL, 0) != 0)
		__builtin_trap(); /* the fixed key set must always parse */
	if (sc_jwt_decode((const char *)data, size, &t) == 0) {
		(void)sc_jwt_issuer(t);
		(void)sc_jwt_subject(t);
		(void)sc_jwt_verify(t, ks, &x);
	}
	sc_jwt_free(t);
	sc_jwks_free(ks);
	return 0;
}
