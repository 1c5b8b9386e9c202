/*
 * String and method patterns, Istio style: "*" matches any value (but a missing value
 * matches nothing), "prefix*", "*suffix", anything else exactly. A '*' elsewhere is
 * rejected by the parser, not here.
 */
#include <string.h>

#include "policy/internal.h"

void pmatch_init(struct pmatch *pm, const char *text, size_t len)
{
	pm->text = text;
	if (len == 1 && text[0] == '*') {
		pm->kind = PM_ANY;
		pm->lit = text + 1;
		pm->len = 0;
	} else if (len > 0 && text[len - 1] == '*') {
		pm->kind = PM_PREFIX;
		pm->lit = text;
		pm->len = len - 1;
	} else if (len > 0 && text[0] == '*') {
		pm->kind = PM_SUFFIX;
		pm->lit = text + 1;
		pm->len = len - 1;
	} else {
		pm->kind = PM_EXACT;
		pm->lit = text;
		pm->len = len;
	}
	/* An exact health method, or a prefix pattern that starts with the health service's
	 * full name: these name the health service explicitly; "*" or "/grpc.*" do not. */
	const size_t svc_len = sizeof(HEALTH_PREFIX) - 2; /* without the trailing '/' */
	pm->names_health = (pm->kind == PM_EXACT || pm->kind == PM_PREFIX) && pm->len >= svc_len &&
			   memcmp(pm->lit, HEALTH_PREFIX, svc_len) == 0;
}

bool pmatch_match(const struct pmatch *pm, const char *s, size_t len)
{
	switch (pm->kind) {
	case PM_ANY:
		return true;
	case PM_EXACT:
		return len == pm->len && memcmp(s, pm->lit, len) == 0;
	case PM_PREFIX:
		return len >= pm->len && memcmp(s, pm->lit, pm->len) == 0;
	case PM_SUFFIX:
		return len >= pm->len && memcmp(s + len - pm->len, pm->lit, pm->len) == 0;
	}
	return false;
}

bool pmatch_list_match(const struct pmatch_list *l, const char *s, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (pmatch_match(&l->v[i], s, len))
			return true;
	return false;
}

/* The runtime form of the same rule, for callers holding a pattern string. */
bool policy_method_match(const char *pattern, const char *method, size_t method_len)
{
	struct pmatch pm;

	if (!pattern || !method)
		return false;
	pmatch_init(&pm, pattern, strlen(pattern));
	return pmatch_match(&pm, method, method_len);
}
