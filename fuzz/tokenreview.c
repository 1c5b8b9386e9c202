/*
 * Fuzz target: a TokenReview answer as the API server (or anything in between) might send
 * it, through wh_tokenreview_parse(). Invariants: an identity is accepted only with a
 * valid namespace (DNS label) and ServiceAccount name (DNS subdomain), its SPIFFE ID
 * holds no character that could smuggle a second SAN or path segment, and a refusal
 * leaves the identity untouched. Deterministic, opens nothing, frees everything.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "webhook/tokenreview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void name_ok(const char *s, size_t max, const char *extra)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '-' || s[n - 1] == '-')
		__builtin_trap();
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      (*extra && *s == *extra)))
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wh_identity id;
	char err[512], spiffe[600];
	enum wh_tr_result r;

	memset(&id, 0x7f, sizeof(id));
	r = wh_tokenreview_parse((const char *)data, size, "grpcguard", &id, err, sizeof(err));
	if (r != WH_TR_OK) {
		if ((unsigned char)id.ns[0] != 0x7f || !err[0])
			__builtin_trap();
		return 0;
	}
	name_ok(id.ns, WH_TR_NS_MAX, "");
	name_ok(id.sa, WH_TR_SA_MAX, ".");
	if (wh_spiffe_id("cluster.local", &id, spiffe, sizeof(spiffe)) < 0 ||
	    strpbrk(spiffe + strlen("spiffe://"), ",:@?#% \n\\") || strstr(spiffe, "/../") ||
	    strstr(spiffe, "//ns"))
		__builtin_trap();
	return 0;
}
