/*
 * Fuzz target: the sidecar's JWT step on a request's headers (sc_authn_check): header and
 * prefix matching, token extraction, issuer selection, several tokens, the token cache.
 * Input: header lines "name: value" separated by '\n' (the proxy hands lowercase names;
 * here they are as given). The same input is checked twice so the second pass goes
 * through the cache. Policy and keys are fixed (fuzz/jwt_keys.h); everything is
 * built and freed per input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/jwt_keys.h"
#include "policy/policy.h"
#include "sidecar/authn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
