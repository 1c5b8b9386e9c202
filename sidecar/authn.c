/*
 * Request authentication (issue 10): placeholder so the sidecar links while the real JWT
 * step is written. Every request yields SC_AUTHN_NONE (no principal, not rejected).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/authn.h"

struct sc_authn {
	struct policy *policy;
};

int sc_authn_new(struct policy *p, struct sc_authn **out, char **err_msg)
{
	struct sc_authn *a = calloc(1, sizeof(*a));

	*out = NULL;
	if (err_msg)
		*err_msg = NULL;
	if (!a)
		return -ENOMEM;
	a->policy = p ? policy_ref(p) : NULL;
	*out = a;
	return 0;
}

void sc_authn_free(struct sc_authn *a)
{
	if (!a)
		return;
	policy_unref(a->policy);
	free(a);
}

void sc_authn_check(struct sc_authn *a, const struct policy_header *hdrs, size_t nhdrs,
		    int64_t now_unix_s, uint64_t now_mono_ms, struct sc_authn_result *out)
{
	(void)a;
	(void)hdrs;
	(void)nhdrs;
	(void)now_unix_s;
	(void)now_mono_ms;
	memset(out, 0, sizeof(*out));
	out->verdict = SC_AUTHN_NONE;
}

void sc_authn_result_cleanup(struct sc_authn_result *r)
{
	if (!r)
		return;
	free(r->principal);
	json_decref(r->claims);
	memset(r, 0, sizeof(*r));
}
