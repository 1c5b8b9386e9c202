/*
 * Fuzz target: a JWT (compact JWS) token, decoded and verified against a fixed JWKS (one
 * RSA-2048, one P-256 and one P-384 key; fuzz/corpus/jwt holds tokens signed by their
 * private halves, which were not kept). Deterministic: "now" is fixed. The key set is
 * parsed per input so that everything is freed.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sidecar/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"z9yAuuYIYrIQ77PGUDJy6hVjvDYyv08YV9CGRRnJpLlbeo5eNvBQS"
    "awmL1Vz1N7NQuv5BKTOXvIHF6VrVPGo7bFiPw9DtF6CCS7oxDKOYWZx_atjRjyzvc55MrzKFYUyRNRi4"
    "pqmG6CM4uwCixvF16HfIAoeqslN4zFzUkPvADmHZl5O0U_d_1e7lAiTiAHh1pJxtFoBqiKBmDXFhIsrb"
    "NGOcCOba0VAkNL7XQQXRDTyo8hL35VMFCZ4Zb7utHGTOCXlF-F21uMvCp5UxQNZyflHfCEROW0KshSfG"
    "Ly_ynIbw4Zfv0bGnWR3lVKjj2sZMdgUxui2iNRk_C5ITv_oLw\",\"e\":\"AQAB\",\"use\":\"sig\",\"kid\":"
    "\"rsa1\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"xqk_xyERRUjnU-pYQv0OWsbAVHcTP3McayuqeBj8N"
    "-A\",\"y\":\"YbjUqWoGbXYOyfhCTCrbo6XmpqSZqrW8FGXeK27SROQ\",\"use\":\"sig\",\"kid\":\"ec1\",\"a"
    "lg\":\"ES256\"},{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"CiDldGp7AwWYMDIJ8Ys2d4Oj-fnsSXbxHE1d"
    "fR6o2yeioOyp6ZLyBbs0ggxkEjmw\",\"y\":\"B0gnNiFt202BbGrAstWqGRbwVF2CZmud5aAeVLJo2JdS1"
    "sldwz3VPE8zfE2144tb\",\"use\":\"sig\",\"kid\":\"ec2\"}]}";

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
