/*
 * Policy lifecycle (allocation, reference counting), counts and the read-only
 * requestAuthentication view. Parsing is in parse.c, evaluation in eval.c.
 */
#include <stdlib.h>

#include "policy/internal.h"

const char *policy_strerror(int err)
{
	switch (err) {
	case POLICY_OK:
		return "success";
	case POLICY_ERR_IO:
		return "cannot read the policy file";
	case POLICY_ERR_SYNTAX:
		return "not valid YAML";
	case POLICY_ERR_SCHEMA:
		return "not a valid grpcguard policy";
	case POLICY_ERR_NOMEM:
		return "out of memory";
	case POLICY_ERR_TOOBIG:
		return "policy file too big";
	default:
		return "unknown policy error";
	}
}

struct policy *policy_alloc(void)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	atomic_init(&p->refs, 1);
	return p;
}

struct policy *policy_new_empty(void)
{
	return policy_alloc();
}

struct policy *policy_ref(struct policy *p)
{
	if (p)
		atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
	return p;
}

void policy_unref(struct policy *p)
{
	if (!p)
		return;
	/* acq_rel: the last owner must see every write made before the other unrefs. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	arena_cleanup(&p->arena);
	free(p);
}

size_t policy_fault_count(const struct policy *p)
{
	return p ? p->nfaults : 0;
}

size_t policy_authz_count(const struct policy *p)
{
	return p ? p->nauthz : 0;
}

size_t policy_authn_count(const struct policy *p)
{
	return p ? p->nauthn : 0;
}

const struct policy_authn *policy_authn_get(const struct policy *p, size_t i)
{
	if (!p || i >= p->nauthn)
		return NULL;
	return &p->authn[i];
}

const char *policy_action_name(enum policy_action a)
{
	switch (a) {
	case POLICY_ACTION_DENY:
		return "DENY";
	case POLICY_ACTION_AUDIT:
		return "AUDIT";
	case POLICY_ACTION_ALLOW:
	default:
		return "ALLOW";
	}
}
