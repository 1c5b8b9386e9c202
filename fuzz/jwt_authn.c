/*
 * Fuzz target: the sidecar's JWT step on a request's headers (sc_authn_check): header and
 * prefix matching, token extraction, issuer selection, several tokens, the token cache.
 * Input: header lines "name: value" separated by '\n' (the proxy hands lowercase names;
 * here they are as given). The same input is checked twice so the second pass goes
 * through the cache. Policy and keys are fixed (the keys of fuzz/jwt.c); everything is
 * built and freed per input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "sidecar/authn.h"

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

#define MAX_HEADERS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char yaml[4096];
	struct policy_header h[MAX_HEADERS];
	struct sc_authn_result r;
	struct policy *p = NULL;
	struct sc_authn *a = NULL;
	struct policy_diag diag;
	char *err = NULL;
	size_t n = 0, pos = 0;
	const char *in = (const char *)data;

	snprintf(yaml, sizeof(yaml),
		 "requestAuthentication:\n"
		 "  - issuer: https://issuer.example.com\n"
		 "    audiences: [greeter]\n"
		 "    jwks: '%s'\n"
		 "  - issuer: https://other.example.com\n"
		 "    jwks: '%s'\n"
		 "    fromHeaders: [{name: x-jwt}, {name: authorization, prefix: \"Bearer \"}]\n"
		 "    forwardOriginalToken: false\n",
		 jwks, jwks);
	if (policy_parse_buffer("fuzz.yaml", yaml, strlen(yaml), &p, &diag) != 0)
		__builtin_trap(); /* the fixed policy must parse */
	if (sc_authn_new(p, &a, &err) != 0)
		goto out;
	while (pos < size && n < MAX_HEADERS) {
		const char *line = in + pos, *nl = memchr(line, '\n', size - pos);
		size_t len = nl ? (size_t)(nl - line) : size - pos;
		const char *colon = memchr(line, ':', len);

		pos += len + 1;
		if (!colon)
			continue;
		const char *v = colon + 1;
		size_t vl = len - (size_t)(v - line);
		if (vl && *v == ' ')
			v++, vl--;
		h[n++] = (struct policy_header){line, (size_t)(colon - line), v, vl};
	}
	for (int pass = 0; pass < 2; pass++) {
		sc_authn_check(a, h, n, 1700000000, (uint64_t)pass * 2000, &r);
		if (r.verdict == SC_AUTHN_OK && (!r.principal || !r.claims))
			__builtin_trap();
		if (r.verdict == SC_AUTHN_FAIL && !r.reason)
			__builtin_trap();
		sc_authn_result_cleanup(&r);
	}
out:
	free(err);
	sc_authn_free(a);
	policy_unref(p);
	return 0;
}
