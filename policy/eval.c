/*
 * Evaluate one RPC against a parsed policy: the authorization verdict (Istio semantics)
 * and the fault to inject. Runs on every RPC: no allocation, no locks, no I/O; everything
 * it compares was precomputed by parse.c.
 *
 * Semantics, in the order applied:
 *  - A policy entry applies to this pod when it has no selector, or when every
 *    matchLabels entry is among the pod's labels (no labels known: a non-empty selector
 *    never applies).
 *  - A policy matches when any rule matches; a rule matches when each of its from, to and
 *    when lists matches (a list matches when any element does; a condition list when all
 *    conditions do); no rules means it never matches; `rules: [{}]` matches everything.
 *  - Any matching DENY denies. Otherwise, when an ALLOW applies to the pod, one must
 *    match. AUDIT only records the first AUDIT that matched.
 *  - Health checks (/grpc.health.v1.Health/...) are allowed unless a DENY rule names the
 *    health service explicitly in to.methods (a bare "*" does not count), so kubelet
 *    probes keep working under a default-deny policy.
 *  - Faults: the first entry that applies and matches; its delay and abort are each drawn
 *    separately. Faults reach health checks only when the entry's methods name them.
 *  - Headers (when conditions and fault match.headers) are matched on the joined value:
 *    repeated fields of one name joined with "," in order ("; " for cookie), as Envoy.
 *    `host` and `:authority` both read the request's authority (header_view).
 *  - The caller's workload identity (issue 16): `principals` and `namespaces` match only a
 *    caller with a verified identity (req->mtls and req->peer_principal; the namespace
 *    comes from the principal's strict form). For a caller without one (plaintext, or a
 *    principal of another shape for the namespace fields) `notPrincipals` and
 *    `notNamespaces` are judged the cautious way: unsatisfied in an ALLOW, so
 *    `ALLOW notNamespaces: [foo]` never admits an anonymous caller (the hole of Istio's
 *    ISTIO-SECURITY-2021-004), satisfied in a DENY or AUDIT, so `DENY notPrincipals: ["*"]`
 *    refuses every caller without a verified identity (as in Istio). The `when` keys
 *    source.principal and source.namespace follow the same rules.
 *  - The method is whatever the caller passes; the sidecar passes only the canonical
 *    /<service>/<method> form when an authorization entry applies (sidecar/gate.c).
 */
#include <string.h>

#include "policy/internal.h"

static bool is_health(const struct policy_request *req)
{
	const size_t n = sizeof(HEALTH_PREFIX) - 1;
	return req->method && req->method_len >= n && memcmp(req->method, HEALTH_PREFIX, n) == 0;
}

static bool selector_applies(const struct selector *sel, const struct policy_labels *labels)
{
	if (!sel->present || sel->nlabels == 0)
		return true;
	if (!labels)
		return false;
	for (size_t i = 0; i < sel->nlabels; i++) {
		size_t vlen = 0;
		const char *v =
		    labels_get_n(labels, sel->labels[i].key, sel->labels[i].key_len, &vlen);
		if (!v || vlen != sel->labels[i].value_len ||
		    memcmp(v, sel->labels[i].value, vlen) != 0)
			return false;
	}
	return true;
}

static bool cidrs_contain(const struct policy_cidr *v, size_t n, const struct peer_addr *peer)
{
	for (size_t i = 0; i < n; i++)
		if (cidr_contains_peer(&v[i], peer))
			return true;
	return false;
}

/*
 * The caller's verified workload identity, worked out once per evaluation. principal NULL:
 * none (plaintext, unverified, or not mutual TLS). ns NULL: unknown (no principal, or one
 * that is not <td>/ns/<ns>/sa/<sa>).
 */
struct ident {
	const char *principal;
	size_t len;
	const char *ns;
	size_t ns_len;
};

static void ident_init(struct ident *id, const struct policy_request *req)
{
	memset(id, 0, sizeof(*id));
	if (!req->mtls || !req->peer_principal || req->peer_principal_len == 0)
		return;
	id->principal = req->peer_principal;
	id->len = req->peer_principal_len;
	if (policy_principal_namespace(id->principal, id->len, &id->ns, &id->ns_len) != 0)
		id->ns = NULL;
}

/*
 * One identity field pair (principals/notPrincipals or namespaces/notNamespaces) against
 * the caller's value v[0..len) (NULL: unknown). `cautious_not`: how an unknown value
 * meets the not-form (see the file comment): true in DENY and AUDIT, false in ALLOW.
 */
static bool ident_matches(const struct pmatch_list *in, const struct pmatch_list *not_in,
			  const char *v, size_t len, bool cautious_not)
{
	if (in->present && (!v || !pmatch_list_match(in, v, len)))
		return false;
	if (not_in->present) {
		if (!v)
			return cautious_not;
		if (pmatch_list_match(not_in, v, len))
			return false;
	}
	return true;
}

static bool source_matches(const struct source *s, const struct policy_request *req,
			   const struct peer_addr *peer, const struct ident *id, bool cautious_not)
{
	if (s->has_ip_blocks && !cidrs_contain(s->ip_blocks, s->nip_blocks, peer))
		return false;
	if (s->has_not_ip_blocks && cidrs_contain(s->not_ip_blocks, s->nnot_ip_blocks, peer))
		return false;
	if (s->principals.present) {
		/* A request without a verified token has no principal and never matches. */
		if (!req->principal ||
		    !pmatch_list_match(&s->principals, req->principal, strlen(req->principal)))
			return false;
	}
	if (s->not_principals.present && req->principal &&
	    pmatch_list_match(&s->not_principals, req->principal, strlen(req->principal)))
		return false;
	if (!ident_matches(&s->peer_principals, &s->not_peer_principals, id->principal, id->len,
			   cautious_not))
		return false;
	if (!ident_matches(&s->namespaces, &s->not_namespaces, id->ns, id->ns_len, cautious_not))
		return false;
	return true;
}

/*
 * For a health check, only methods patterns that name the health service count; a
 * to-element without such a pattern does not match it.
 */
static bool operation_matches(const struct operation *o, const struct policy_request *req,
			      bool health)
{
	const char *m = req->method ? req->method : "";
	size_t mlen = req->method ? req->method_len : 0;

	if (o->methods.present) {
		bool hit = false;
		for (size_t i = 0; i < o->methods.n && !hit; i++) {
			const struct pmatch *pm = &o->methods.v[i];
			hit = (!health || pm->names_health) && pmatch_match(pm, m, mlen);
		}
		if (!hit)
			return false;
	} else if (health) {
		return false;
	}
	if (o->not_methods.present && pmatch_list_match(&o->not_methods, m, mlen))
		return false;
	return true;
}

static bool names_authority(const char *name, size_t len)
{
	return (len == 4 && memcmp(name, "host", 4) == 0) ||
	       (len == 10 && memcmp(name, ":authority", 10) == 0);
}

/*
 * The fields a header condition reads. `host` and `:authority` name one thing, the
 * authority the app routes on: `:authority` when the request has one (grpc-go and Go's
 * net/http read it first and ignore Host then), else Host. So a rule on `host` cannot be
 * stepped around by sending the name in `:authority` only (issue 14, red team).
 */
static void header_view(struct joined *j, const struct policy_request *req, const char *name,
			size_t len)
{
	if (names_authority(name, len)) {
		joined_init(j, req->headers, req->nheaders, ":authority", 10);
		if (j->count)
			return;
		joined_init(j, req->headers, req->nheaders, "host", 4);
		return;
	}
	joined_init(j, req->headers, req->nheaders, name, len);
}

/*
 * values: the value matches one of the patterns; notValues: it matches none of them. A
 * header's value is all its fields joined (struct joined); a claim that is a list is
 * any-of per element (Istio). A missing value fails `values` and passes `notValues`.
 */
struct values_acc {
	bool any_value, hit_values, hit_not_values;
};

static void acc_value(struct values_acc *acc, const struct condition *c, const char *v, size_t len)
{
	acc->any_value = true;
	if (c->values.present && !acc->hit_values && pmatch_list_match(&c->values, v, len))
		acc->hit_values = true;
	if (c->not_values.present && !acc->hit_not_values &&
	    pmatch_list_match(&c->not_values, v, len))
		acc->hit_not_values = true;
}

static void acc_json(struct values_acc *acc, const struct condition *c, const json_t *j)
{
	if (json_is_string(j)) {
		acc_value(acc, c, json_string_value(j), json_string_length(j));
	} else if (json_is_array(j)) {
		size_t i;
		const json_t *e;
		json_array_foreach(j, i, e) if (json_is_string(e))
		    acc_value(acc, c, json_string_value(e), json_string_length(e));
	}
}

static bool condition_matches(const struct condition *c, const struct policy_request *req,
			      const struct ident *id, bool cautious_not)
{
	struct values_acc acc = {false, false, false};

	switch (c->kind) {
	case COND_HEADER: {
		/* One value per name: repeated fields are joined (Envoy), never any-of, so
		 * `x-t: red` + `x-t: blue` is "red,blue" and is not "blue". */
		struct joined j;
		header_view(&j, req, c->header, c->header_len);
		if (j.count) {
			acc.any_value = true;
			acc.hit_values = c->values.present && joined_list_match(&j, &c->values);
			acc.hit_not_values =
			    c->not_values.present && joined_list_match(&j, &c->not_values);
		}
		break;
	}
	case COND_PRINCIPAL:
		if (req->principal)
			acc_value(&acc, c, req->principal, strlen(req->principal));
		break;
	case COND_SOURCE_PRINCIPAL:
		/* The from.principals rules, so an unknown identity meets notValues cautiously. */
		return ident_matches(&c->values, &c->not_values, id->principal, id->len,
				     cautious_not);
	case COND_SOURCE_NAMESPACE:
		return ident_matches(&c->values, &c->not_values, id->ns, id->ns_len, cautious_not);
	case COND_AUDIENCES:
		if (req->claims)
			acc_json(&acc, c, json_object_get(req->claims, "aud"));
		break;
	case COND_CLAIM: {
		const json_t *j = req->claims;
		for (size_t i = 0; j && i < c->nclaim_path; i++)
			j = json_is_object(j) ? json_object_get(j, c->claim_path[i]) : NULL;
		if (j)
			acc_json(&acc, c, j);
		break;
	}
	}
	if (c->values.present && !acc.hit_values)
		return false;
	if (c->not_values.present && acc.hit_not_values)
		return false;
	return true;
}

static bool rule_matches(const struct rule *r, const struct policy_request *req,
			 const struct peer_addr *peer, const struct ident *id, bool cautious_not,
			 bool health)
{
	bool ok;

	if (health && r->nto == 0)
		return false;
	ok = r->nfrom == 0;
	for (size_t i = 0; i < r->nfrom && !ok; i++)
		ok = source_matches(&r->from[i], req, peer, id, cautious_not);
	if (!ok)
		return false;
	ok = r->nto == 0;
	for (size_t i = 0; i < r->nto && !ok; i++)
		ok = operation_matches(&r->to[i], req, health);
	if (!ok)
		return false;
	for (size_t i = 0; i < r->nwhen; i++)
		if (!condition_matches(&r->when[i], req, id, cautious_not))
			return false;
	return true;
}

/* `health` restricts matching to rules that name the health service (DENY only). */
static bool authz_matches(const struct authz *z, const struct policy_request *req,
			  const struct peer_addr *peer, const struct ident *id, bool health)
{
	bool cautious_not = z->action != POLICY_ACTION_ALLOW;

	for (size_t i = 0; i < z->nrules; i++)
		if (rule_matches(&z->rules[i], req, peer, id, cautious_not, health))
			return true;
	return false;
}

static bool fault_matches(const struct fault *f, const struct policy_request *req, bool health)
{
	const char *m = req->method ? req->method : "";
	size_t mlen = req->method ? req->method_len : 0;

	if (!selector_applies(&f->sel, req->labels))
		return false;
	/* Entries with destinations belong to the caller's sidecar, the others to the server's. */
	if ((f->ndestinations > 0) != (req->direction == POLICY_OUTBOUND))
		return false;
	if (f->ndestinations > 0) {
		bool hit = false;
		for (size_t i = 0; i < f->ndestinations && !hit; i++)
			hit = policy_host_match(f->destinations[i], req->authority,
						req->authority_len, req->local_namespace);
		if (!hit)
			return false;
	}
	if (f->methods.present) {
		bool hit = false;
		for (size_t i = 0; i < f->methods.n && !hit; i++) {
			const struct pmatch *pm = &f->methods.v[i];
			hit = (!health || pm->names_health) && pmatch_match(pm, m, mlen);
		}
		if (!hit)
			return false;
	} else if (health) {
		return false;
	}
	for (size_t i = 0; i < f->nheaders; i++) {
		const struct kv *want = &f->headers[i];
		struct joined j;
		header_view(&j, req, want->key, want->key_len);
		if (!joined_equals(&j, want->value, want->value_len))
			return false;
	}
	return true;
}

/* percent 100 applies without a draw, 0 never; otherwise one draw. */
static bool draw(double percent, policy_rand_fn rnd, void *ctx)
{
	if (percent >= 100)
		return true;
	if (percent <= 0)
		return false;
	return (rnd ? rnd(ctx) : 0.0) < percent;
}

void policy_evaluate(const struct policy *p, const struct policy_request *req, policy_rand_fn rnd,
		     void *rnd_ctx, struct policy_decision *out)
{
	bool health, denied = false, allow_applies = false;
	const char *allow_match = NULL;
	struct peer_addr peer;
	struct ident id;

	memset(out, 0, sizeof(*out));
	out->allowed = true;
	if (!p || !req)
		return;
	health = is_health(req);
	peer_addr_init(&peer, req->peer); /* once, not per CIDR */
	ident_init(&id, req);		  /* once, not per rule */
	/* The caller's sidecar never authorizes: that is the server's sidecar's job. */
	for (size_t i = 0; req->direction == POLICY_INBOUND && i < p->nauthz; i++) {
		const struct authz *z = &p->authz[i];
		if (!selector_applies(&z->sel, req->labels))
			continue;
		switch (z->action) {
		case POLICY_ACTION_DENY:
			if (!denied && authz_matches(z, req, &peer, &id, health)) {
				denied = true;
				out->deciding_policy = z->name;
			}
			break;
		case POLICY_ACTION_ALLOW:
			if (health)
				break;
			allow_applies = true;
			if (!allow_match && authz_matches(z, req, &peer, &id, false))
				allow_match = z->name;
			break;
		case POLICY_ACTION_AUDIT:
			if (!out->audit_policy && authz_matches(z, req, &peer, &id, false))
				out->audit_policy = z->name;
			break;
		}
	}
	if (denied) {
		out->allowed = false;
		return;
	}
	if (allow_applies) {
		out->allowed = allow_match != NULL;
		out->deciding_policy = allow_match;
		if (!out->allowed)
			return;
	}
	for (size_t i = 0; i < p->nfaults; i++) {
		const struct fault *f = &p->faults[i];
		if (!fault_matches(f, req, health))
			continue;
		out->fault_name = f->name;
		if (f->has_delay && draw(f->delay_percent, rnd, rnd_ctx))
			out->delay_ms = f->delay_ms;
		if (f->has_abort && draw(f->abort_percent, rnd, rnd_ctx)) {
			out->abort = true;
			out->abort_grpc_status = f->abort_status;
			out->abort_message = f->abort_message;
		}
		break;
	}
}

bool policy_authz_applies(const struct policy *p, const struct policy_labels *labels)
{
	for (size_t i = 0; p && i < p->nauthz; i++)
		if (selector_applies(&p->authz[i].sel, labels))
			return true;
	return false;
}

enum policy_passthrough policy_passthrough_given(const struct policy *p)
{
	return p ? p->passthrough : POLICY_PASSTHROUGH_UNSET;
}

enum policy_passthrough policy_passthrough_mode(const struct policy *p,
						const struct policy_labels *labels)
{
	if (p && p->passthrough != POLICY_PASSTHROUGH_UNSET)
		return p->passthrough;
	return policy_authz_applies(p, labels) ? POLICY_PASSTHROUGH_DENY : POLICY_PASSTHROUGH_ALLOW;
}

const char *policy_passthrough_name(enum policy_passthrough m)
{
	switch (m) {
	case POLICY_PASSTHROUGH_ALLOW:
		return "allow";
	case POLICY_PASSTHROUGH_DENY:
		return "deny";
	case POLICY_PASSTHROUGH_UNSET:
		break;
	}
	return "unset";
}

enum policy_mtls policy_mtls_given(const struct policy *p)
{
	return p ? p->mtls : POLICY_MTLS_UNSET;
}

enum policy_mtls policy_mtls_mode(const struct policy *p, const struct policy_labels *labels)
{
	(void)labels; /* one mode per file (policy.h) */
	if (p && p->mtls != POLICY_MTLS_UNSET)
		return p->mtls;
	return POLICY_MTLS_PERMISSIVE;
}

const char *policy_mtls_name(enum policy_mtls m)
{
	switch (m) {
	case POLICY_MTLS_PERMISSIVE:
		return "PERMISSIVE";
	case POLICY_MTLS_STRICT:
		return "STRICT";
	case POLICY_MTLS_UNSET:
		break;
	}
	return "UNSET";
}
