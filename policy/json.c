/*
 * The policy in force as JSON, in the shape of the YAML it came from (for the sidecar's
 * /policy endpoint and for `check`). Defaults are shown filled in (names, percent 100,
 * action, the default token header), durations as strings ("10s", "1.5s", "250ms"),
 * gRPC statuses by name. Returns NULL only on allocation failure.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>

#include "policy/internal.h"

/* Set key to value, stealing value; false (and no leak) on failure. */
static bool put(json_t *obj, const char *key, json_t *value)
{
	return value && json_object_set_new(obj, key, value) == 0;
}

static bool append(json_t *arr, json_t *value)
{
	return value && json_array_append_new(arr, value) == 0;
}

static json_t *duration_json(uint64_t ms)
{
	char buf[40];

	if (ms == 0)
		snprintf(buf, sizeof(buf), "0s");
	else if (ms % 3600000 == 0)
		snprintf(buf, sizeof(buf), "%" PRIu64 "h", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(buf, sizeof(buf), "%" PRIu64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(buf, sizeof(buf), "%" PRIu64 "s", ms / 1000);
	else if (ms > 1000) {
		/* "1.5s", "2.25s": trim trailing zeros of the millisecond part. */
		unsigned frac = (unsigned)(ms % 1000);
		int digits = 3;
		while (frac % 10 == 0) {
			frac /= 10;
			digits--;
		}
		snprintf(buf, sizeof(buf), "%" PRIu64 ".%0*us", ms / 1000, digits, frac);
	} else
		snprintf(buf, sizeof(buf), "%" PRIu64 "ms", ms);
	return json_string(buf);
}

static json_t *percent_json(double v)
{
	if (v == floor(v))
		return json_integer((json_int_t)v);
	return json_real(v);
}

static json_t *patterns_json(const struct pmatch_list *l)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < l->n; i++) {
		if (!append(arr, json_string(l->v[i].text))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *strings_json(const char *const *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		if (!append(arr, json_string(v[i]))) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *kv_json(const struct kv *v, size_t n)
{
	json_t *obj = json_object();

	for (size_t i = 0; obj && i < n; i++) {
		if (!put(obj, v[i].key, json_stringn(v[i].value, v[i].value_len))) {
			json_decref(obj);
			return NULL;
		}
	}
	return obj;
}

static bool put_selector(json_t *obj, const struct selector *sel)
{
	json_t *s;

	if (!sel->present)
		return true;
	s = json_object();
	if (!put(obj, "selector", s))
		return false;
	return put(s, "matchLabels", kv_json(sel->labels, sel->nlabels));
}

static json_t *fault_json(const struct fault *f)
{
	json_t *o = json_object(), *m = NULL, *d, *a;

	if (!o || !put(o, "name", json_string(f->name)) || !put_selector(o, &f->sel))
		goto fail;
	if (f->methods.present || f->nheaders || f->ndestinations) {
		m = json_object();
		if (!put(o, "match", m))
			goto fail;
		if (f->methods.present && !put(m, "methods", patterns_json(&f->methods)))
			goto fail;
		if (f->nheaders && !put(m, "headers", kv_json(f->headers, f->nheaders)))
			goto fail;
		if (f->ndestinations &&
		    !put(m, "destinations", strings_json(f->destinations, f->ndestinations)))
			goto fail;
	}
	if (f->has_delay) {
		d = json_object();
		if (!put(o, "delay", d) || !put(d, "fixed", duration_json(f->delay_ms)) ||
		    !put(d, "percent", percent_json(f->delay_percent)))
			goto fail;
	}
	if (f->has_abort) {
		a = json_object();
		if (!put(o, "abort", a) ||
		    !put(a, "grpcStatus", json_string(policy_grpc_status_name(f->abort_status))) ||
		    !put(a, "message", json_string(f->abort_message)) ||
		    !put(a, "percent", percent_json(f->abort_percent)))
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *source_json(const struct source *s)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (s->has_ip_blocks && !put(o, "ipBlocks", strings_json(s->ip_texts, s->nip_blocks)))
		goto fail;
	if (s->has_not_ip_blocks &&
	    !put(o, "notIpBlocks", strings_json(s->not_ip_texts, s->nnot_ip_blocks)))
		goto fail;
	if (s->principals.present && !put(o, "requestPrincipals", patterns_json(&s->principals)))
		goto fail;
	if (s->not_principals.present &&
	    !put(o, "notRequestPrincipals", patterns_json(&s->not_principals)))
		goto fail;
	if (s->peer_principals.present && !put(o, "principals", patterns_json(&s->peer_principals)))
		goto fail;
	if (s->not_peer_principals.present &&
	    !put(o, "notPrincipals", patterns_json(&s->not_peer_principals)))
		goto fail;
	if (s->namespaces.present && !put(o, "namespaces", patterns_json(&s->namespaces)))
		goto fail;
	if (s->not_namespaces.present &&
	    !put(o, "notNamespaces", patterns_json(&s->not_namespaces)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *operation_json(const struct operation *op)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (op->methods.present && !put(o, "methods", patterns_json(&op->methods)))
		goto fail;
	if (op->not_methods.present && !put(o, "notMethods", patterns_json(&op->not_methods)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *condition_json(const struct condition *c)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	if (!put(o, c->by_key ? "key" : "header", json_string(c->key_text)))
		goto fail;
	if (c->values.present && !put(o, "values", patterns_json(&c->values)))
		goto fail;
	if (c->not_values.present && !put(o, "notValues", patterns_json(&c->not_values)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *rule_json(const struct rule *r)
{
	json_t *o = json_object(), *arr;

	if (!o)
		return NULL;
	if (r->nfrom) {
		arr = json_array();
		if (!put(o, "from", arr))
			goto fail;
		for (size_t i = 0; i < r->nfrom; i++)
			if (!append(arr, source_json(&r->from[i])))
				goto fail;
	}
	if (r->nto) {
		arr = json_array();
		if (!put(o, "to", arr))
			goto fail;
		for (size_t i = 0; i < r->nto; i++)
			if (!append(arr, operation_json(&r->to[i])))
				goto fail;
	}
	if (r->nwhen) {
		arr = json_array();
		if (!put(o, "when", arr))
			goto fail;
		for (size_t i = 0; i < r->nwhen; i++)
			if (!append(arr, condition_json(&r->when[i])))
				goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *authz_json(const struct authz *z)
{
	json_t *o = json_object(), *rules;

	if (!o || !put(o, "name", json_string(z->name)) || !put_selector(o, &z->sel) ||
	    !put(o, "action", json_string(policy_action_name(z->action))))
		goto fail;
	rules = json_array();
	if (!put(o, "rules", rules))
		goto fail;
	for (size_t i = 0; i < z->nrules; i++)
		if (!append(rules, rule_json(&z->rules[i])))
			goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *authn_json(const struct policy_authn *an)
{
	json_t *o = json_object(), *hs;

	if (!o || !put(o, "issuer", json_string(an->issuer)))
		goto fail;
	if (an->naudiences && !put(o, "audiences", strings_json(an->audiences, an->naudiences)))
		goto fail;
	if (an->jwks_file && !put(o, "jwksFile", json_string(an->jwks_file)))
		goto fail;
	if (an->jwks_inline && !put(o, "jwks", json_string(an->jwks_inline)))
		goto fail;
	hs = json_array();
	if (!put(o, "fromHeaders", hs))
		goto fail;
	for (size_t i = 0; i < an->nfrom_headers; i++) {
		json_t *h = json_object();
		if (!append(hs, h) || !put(h, "name", json_string(an->from_headers[i].name)) ||
		    !put(h, "prefix", json_string(an->from_headers[i].prefix)))
			goto fail;
	}
	if (!put(o, "forwardOriginalToken", json_boolean(an->forward_original_token)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *policy_to_json(const struct policy *p)
{
	json_t *o = json_object(), *faults, *authz, *authn;

	if (!o || !put(o, "apiVersion", json_string("grpcguard.io/v1")) ||
	    !put(o, "kind", json_string("Policy")))
		goto fail;
	faults = json_array();
	authz = json_array();
	authn = json_array();
	/* put() steals even on failure paths below, so attach all three first. */
	if (!put(o, "faults", faults)) {
		json_decref(authz);
		json_decref(authn);
		goto fail;
	}
	if (!put(o, "authorization", authz)) {
		json_decref(authn);
		goto fail;
	}
	if (!put(o, "requestAuthentication", authn))
		goto fail;
	/* Only when the file gave it, so the JSON parses back to the same policy. */
	if (p && p->passthrough != POLICY_PASSTHROUGH_UNSET &&
	    !put(o, "passthrough", json_string(policy_passthrough_name(p->passthrough))))
		goto fail;
	if (p && p->mtls != POLICY_MTLS_UNSET) {
		json_t *m = json_object();
		if (!put(o, "mtls", m) || !put(m, "mode", json_string(policy_mtls_name(p->mtls))))
			goto fail;
	}
	for (size_t i = 0; p && i < p->nfaults; i++)
		if (!append(faults, fault_json(&p->faults[i])))
			goto fail;
	for (size_t i = 0; p && i < p->nauthz; i++)
		if (!append(authz, authz_json(&p->authz[i])))
			goto fail;
	for (size_t i = 0; p && i < p->nauthn; i++)
		if (!append(authn, authn_json(&p->authn[i])))
			goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}
