/*
 * The policy schema: walks the YAML tree (ytree.c) and builds a struct policy, checking
 * every field. Errors name the file, line and column, the field's path, what was found,
 * what is expected and the fix. Unknown and duplicate keys are errors. A failed parse
 * leaves no policy and frees everything (all allocations come from the policy's arena).
 *
 * What it does not do: read clocks, log, or look at JWKS key material beyond checking
 * that inline `jwks` is a JSON object with a "keys" list (the sidecar verifies tokens).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/internal.h"
#include "policy/ytree.h"

#define API_VERSION "grpcguard.io/v1"
#define KIND "Policy"
#define MAX_MAP_ENTRIES 256 /* user-keyed maps (labels, headers): duplicate check is O(n^2) */
#define MAX_CLAIM_DEPTH 16

struct pctx {
	const char *name; /* file name for diagnostics */
	struct policy_diag *diag;
	struct arena *a;
	char path[512];
	size_t plen;
};

/* ---- diagnostics and the field path --------------------------------------------- */

static int fail(struct pctx *c, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct pctx *c, const struct ynode *n, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return diag_set(c->diag, POLICY_ERR_SCHEMA, c->name, n ? n->line : 0, n ? n->col : 0,
			c->path, "%s", msg);
}

static int nomem(struct pctx *c)
{
	return diag_set(c->diag, POLICY_ERR_NOMEM, c->name, 0, 0, NULL, "out of memory");
}

/* Append ".key" (or "key" at the top) / "[i]" to the path; returns the length to restore. */
static size_t push_key(struct pctx *c, const char *key)
{
	size_t saved = c->plen;
	int n =
	    snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s%s", c->plen ? "." : "", key);
	if (n > 0)
		c->plen = c->plen + (size_t)n < sizeof(c->path) ? c->plen + (size_t)n
								: sizeof(c->path) - 1;
	return saved;
}

static size_t push_index(struct pctx *c, size_t i)
{
	size_t saved = c->plen;
	int n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%zu]", i);
	if (n > 0)
		c->plen = c->plen + (size_t)n < sizeof(c->path) ? c->plen + (size_t)n
								: sizeof(c->path) - 1;
	return saved;
}

static void pop(struct pctx *c, size_t saved)
{
	c->plen = saved;
	c->path[saved] = '\0';
}

/* A scalar quoted for a message, shortened so one bad value cannot fill the diagnostic. */
static const char *shown(const struct ynode *n, char *buf, size_t size)
{
	if (n->type != YN_SCALAR)
		return ynode_type_name(n);
	if (n->len > 64)
		snprintf(buf, size, "\"%.60s...\"", n->val);
	else
		snprintf(buf, size, "\"%s\"", n->val);
	return buf;
}

/* ---- mappings with a fixed set of keys ------------------------------------------ */

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[32], cur[32];

	if (la >= 31 || lb >= 31)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + ((a[i - 1] | 0x20) != (b[j - 1] | 0x20));
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(prev));
	}
	return prev[lb];
}

/* Istio spellings users bring along, and what to write instead. */
static const char *istio_hint(const char *key)
{
	static const struct {
		const char *key, *hint;
	} hints[] = {
	    {"source", "write the source's fields directly: from: [{ipBlocks: [...]}]"},
	    {"operation", "write the operation's fields directly: to: [{methods: [...]}]"},
	    {"paths",
	     "grpcguard matches gRPC methods with \"methods\", e.g. methods: [\"/pkg.Svc/*\"]"},
	    {"notPaths", "use \"notMethods\""},
	    {"principals", "the caller's identity belongs in from: [{principals: [...]}]"},
	    {"notPrincipals", "the caller's identity belongs in from: [{notPrincipals: [...]}]"},
	    {"namespaces", "the caller's namespace belongs in from: [{namespaces: [...]}]"},
	    {"notNamespaces", "the caller's namespace belongs in from: [{notNamespaces: [...]}]"},
	    {"peers", "mutual TLS is one top-level key: mtls: {mode: STRICT}"},
	    {"remoteIpBlocks", "use ipBlocks (the sidecar sees the peer address directly)"},
	    {"notRemoteIpBlocks", "use notIpBlocks"},
	    {"httpStatus", "gRPC faults abort with grpcStatus, e.g. grpcStatus: UNAVAILABLE"},
	    {"fixedDelay", "use fixed, e.g. delay: {fixed: 2s}"},
	    {"percentage", "use percent: a number from 0 to 100"},
	    {"jwksUri", "grpcguard does not fetch keys: mount the JWKS and use jwksFile"},
	    {"fromParams", "gRPC carries tokens in metadata: use fromHeaders"},
	    {"spec", "a policy file has no spec: put faults/authorization at the top level"},
	    {"metadata", "a policy file has no metadata: name each entry with name:"},
	};
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (strcmp(key, hints[i].key) == 0)
			return hints[i].hint;
	return NULL;
}

/*
 * Check that `n` is a mapping whose keys are all in keys[0..nkeys) and unique, and store
 * each value in vals[i] (NULL when absent or null). A null `n` counts as an empty
 * mapping. `what` describes the mapping for the type error ("a fault entry").
 */
static int map_fields(struct pctx *c, const struct ynode *n, const char *what,
		      const char *const *keys, size_t nkeys, const struct ynode **vals)
{
	const struct ynode *seen[16] = {0};

	for (size_t i = 0; i < nkeys; i++)
		vals[i] = NULL;
	if (!n || ynode_is_null(n))
		return 0;
	if (n->type != YN_MAP)
		return fail(c, n, "expected %s (a mapping), found %s", what, ynode_type_name(n));
	for (size_t k = 0; k + 1 < n->nkids; k += 2) {
		const struct ynode *key = n->kids[k];
		size_t i;
		char buf[96];

		if (key->type != YN_SCALAR)
			return fail(c, key, "a key must be a plain name, found %s",
				    ynode_type_name(key));
		for (i = 0; i < nkeys; i++)
			if (strcmp(key->val, keys[i]) == 0)
				break;
		if (i == nkeys) {
			const char *hint = istio_hint(key->val), *best = NULL;
			size_t best_d = 3;
			char list[256] = "";
			for (size_t j = 0; j < nkeys; j++) {
				size_t d = edit_distance(key->val, keys[j]);
				if (d < best_d) {
					best_d = d;
					best = keys[j];
				}
				size_t used = strlen(list);
				snprintf(list + used, sizeof(list) - used, "%s%s", j ? ", " : "",
					 keys[j]);
			}
			if (hint)
				return fail(c, key, "unknown key %s (%s)",
					    shown(key, buf, sizeof(buf)), hint);
			if (best)
				return fail(c, key,
					    "unknown key %s (did you mean \"%s\"? known keys: %s)",
					    shown(key, buf, sizeof(buf)), best, list);
			return fail(c, key, "unknown key %s (known keys: %s)",
				    shown(key, buf, sizeof(buf)), list);
		}
		if (seen[i])
			return fail(c, key, "duplicate key \"%s\" (first given at line %u)",
				    keys[i], seen[i]->line);
		seen[i] = key;
		vals[i] = ynode_is_null(n->kids[k + 1]) ? NULL : n->kids[k + 1];
	}
	return 0;
}

/* ---- scalars --------------------------------------------------------------------- */

/* A string scalar copied into the arena (lowercased if asked); `empty_ok` allows "". */
static int get_string(struct pctx *c, const struct ynode *n, bool empty_ok, bool lower,
		      const char **out, size_t *out_len)
{
	if (n->type != YN_SCALAR)
		return fail(c, n, "expected a string, found %s", ynode_type_name(n));
	if (!empty_ok && n->len == 0)
		return fail(c, n, "must not be empty");
	char *s = arena_strndup(c->a, n->val, n->len, lower);
	if (!s)
		return nomem(c);
	*out = s;
	if (out_len)
		*out_len = n->len;
	return 0;
}

static int get_bool(struct pctx *c, const struct ynode *n, bool *out)
{
	char buf[96];

	if (n->type == YN_SCALAR) {
		const char *s = n->val;
		if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
			*out = true;
			return 0;
		}
		if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
			*out = false;
			return 0;
		}
	}
	return fail(c, n, "%s is not a boolean (use true or false)", shown(n, buf, sizeof(buf)));
}

static int get_percent(struct pctx *c, const struct ynode *n, double *out)
{
	char buf[96], *end = NULL;
	bool ok = n->type == YN_SCALAR && n->len > 0 && n->len < 32;
	double v = 0;

	/* Decimal only, no sign in front (no "-1", "0x10", "inf", "nan"); an exponent is
	 * accepted because that is how policy_to_json prints tiny fractions. */
	if (ok)
		ok = (n->val[0] >= '0' && n->val[0] <= '9') || n->val[0] == '.';
	for (size_t i = 0; ok && i < n->len; i++)
		ok = (n->val[i] >= '0' && n->val[i] <= '9') || strchr(".eE+-", n->val[i]);
	if (ok) {
		errno = 0;
		v = strtod(n->val, &end);
		ok = errno == 0 && end == n->val + n->len && isfinite(v);
	}
	if (!ok)
		return fail(c, n,
			    "%s is not a percentage (use a number from 0 to 100, e.g. 50 or 12.5)",
			    shown(n, buf, sizeof(buf)));
	if (v > 100)
		return fail(c, n, "%s is over 100 (use a number from 0 to 100)",
			    shown(n, buf, sizeof(buf)));
	*out = v;
	return 0;
}

static int get_duration(struct pctx *c, const struct ynode *n, uint64_t *out_ms)
{
	char buf[96];

	if (n->type != YN_SCALAR || policy_parse_duration(n->val, n->len, out_ms) != 0)
		return fail(c, n, "%s is not a duration (use 250ms, 1.5s, 10s)",
			    shown(n, buf, sizeof(buf)));
	return 0;
}

/* ---- lists --------------------------------------------------------------------- */

static int expect_list(struct pctx *c, const struct ynode *n, const char *of, bool empty_ok)
{
	if (n->type != YN_SEQ)
		return fail(c, n, "expected a list of %s, found %s", of, ynode_type_name(n));
	if (!empty_ok && n->nkids == 0)
		return fail(c, n, "an empty list matches nothing (remove the key, or list %s)", of);
	return 0;
}

enum pattern_kind { PAT_VALUE, PAT_METHOD, PAT_PRINCIPAL, PAT_NAMESPACE };

static const char *pattern_of(enum pattern_kind kind)
{
	switch (kind) {
	case PAT_METHOD:
		return "methods";
	case PAT_PRINCIPAL:
		return "principals";
	case PAT_NAMESPACE:
		return "namespaces";
	case PAT_VALUE:
		break;
	}
	return "values";
}

/*
 * A list of Istio string patterns: exact, "prefix*", "*suffix" or "*". Methods must look
 * like methods; principals and namespaces must be identities (identity_pattern_check) and
 * are never empty.
 */
static int get_patterns(struct pctx *c, const struct ynode *n, enum pattern_kind kind,
			struct pmatch_list *out)
{
	char buf[96];
	int rc = expect_list(c, n, pattern_of(kind), false);

	if (rc)
		return rc;
	out->v = arena_alloc(c->a, n->nkids * sizeof(*out->v));
	if (!out->v)
		return nomem(c);
	for (size_t i = 0; i < n->nkids; i++) {
		const struct ynode *item = n->kids[i];
		size_t saved = push_index(c, i);
		const char *s;
		size_t len;

		if ((kind == PAT_PRINCIPAL || kind == PAT_NAMESPACE) && item->type == YN_SCALAR &&
		    item->len == 0)
			return fail(c, item,
				    "an empty string names no caller (e.g. %s, or \"*\" for any "
				    "verified caller)",
				    kind == PAT_PRINCIPAL ? "\"cluster.local/ns/demo/sa/frontend\""
							  : "\"demo\"");
		rc = get_string(c, item, kind == PAT_VALUE, false, &s, &len);
		if (rc)
			return rc;
		const char *star = memchr(s, '*', len);
		if (star && star != s && star != s + len - 1)
			return fail(c, item,
				    "%s: a '*' only works alone, at the start or at the end (e.g. "
				    "\"%s\")",
				    shown(item, buf, sizeof(buf)),
				    kind == PAT_PRINCIPAL   ? "cluster.local/ns/demo/*"
				    : kind == PAT_NAMESPACE ? "team-*"
							    : "/pkg.Svc/*");
		if (len > 1 && s[0] == '*' && s[len - 1] == '*')
			return fail(c, item, "%s: use a '*' at the start or at the end, not both",
				    shown(item, buf, sizeof(buf)));
		if (kind == PAT_METHOD && s[0] != '/' && s[0] != '*')
			return fail(c, item,
				    "%s is not a gRPC method (use \"/package.Service/Method\", "
				    "\"/package.Service/*\" or \"*\")",
				    shown(item, buf, sizeof(buf)));
		pmatch_init(&out->v[i], s, len);
		if (kind == PAT_PRINCIPAL || kind == PAT_NAMESPACE) {
			const char *why = NULL;
			if (identity_pattern_check(&out->v[i], kind == PAT_PRINCIPAL, &why) != 0)
				return fail(c, item, "%s %s", shown(item, buf, sizeof(buf)), why);
		}
		pop(c, saved);
	}
	out->n = n->nkids;
	out->present = true;
	return 0;
}

static int get_cidrs(struct pctx *c, const struct ynode *n, struct policy_cidr **out,
		     const char ***texts, size_t *count)
{
	char buf[96];
	int rc = expect_list(c, n, "CIDR blocks", false);

	if (rc)
		return rc;
	*out = arena_alloc(c->a, n->nkids * sizeof(**out));
	*texts = arena_alloc(c->a, n->nkids * sizeof(**texts));
	if (!*out || !*texts)
		return nomem(c);
	for (size_t i = 0; i < n->nkids; i++) {
		const struct ynode *item = n->kids[i];
		size_t saved = push_index(c, i);

		if (item->type != YN_SCALAR || policy_parse_cidr(item->val, &(*out)[i]) != 0)
			return fail(c, item,
				    "%s is not an IP address or CIDR block (use 10.0.0.0/8, "
				    "192.168.1.7 or 2001:db8::/32)",
				    shown(item, buf, sizeof(buf)));
		rc = get_string(c, item, false, false, &(*texts)[i], NULL);
		if (rc)
			return rc;
		pop(c, saved);
	}
	*count = n->nkids;
	return 0;
}

/* A mapping of user-chosen keys to string values (matchLabels, match.headers). */
static int get_string_map(struct pctx *c, const struct ynode *n, bool lower_keys, struct kv **out,
			  size_t *count)
{
	char buf[96];

	if (n->type != YN_MAP)
		return fail(c, n, "expected a mapping of names to strings, found %s",
			    ynode_type_name(n));
	size_t m = n->nkids / 2;
	if (m > MAX_MAP_ENTRIES)
		return fail(c, n, "more than %d entries", MAX_MAP_ENTRIES);
	*out = arena_alloc(c->a, (m ? m : 1) * sizeof(**out));
	if (!*out)
		return nomem(c);
	for (size_t i = 0; i < m; i++) {
		const struct ynode *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
		struct kv *e = &(*out)[i];
		int rc;

		if (k->type != YN_SCALAR || k->len == 0)
			return fail(c, k, "a key must be a non-empty name, found %s",
				    shown(k, buf, sizeof(buf)));
		size_t saved = push_key(c, k->val);
		for (size_t j = 0; j < i; j++) {
			const struct ynode *pk = n->kids[2 * j];
			bool same = pk->len == k->len &&
				    (lower_keys ? strncasecmp(pk->val, k->val, k->len) == 0
						: memcmp(pk->val, k->val, k->len) == 0);
			if (same)
				return fail(c, k, "duplicate key (first given at line %u)",
					    pk->line);
		}
		if (v->type != YN_SCALAR)
			return fail(c, v, "expected a string value, found %s (quote it: \"...\")",
				    ynode_type_name(v));
		rc = get_string(c, k, false, lower_keys, &e->key, &e->key_len);
		if (!rc)
			rc = get_string(c, v, true, false, &e->value, &e->value_len);
		if (rc)
			return rc;
		pop(c, saved);
	}
	*count = m;
	return 0;
}

/* ---- shared sections ------------------------------------------------------------ */

static int parse_selector(struct pctx *c, const struct ynode *n, struct selector *sel)
{
	static const char *const keys[] = {"matchLabels"};
	const struct ynode *v[1];
	int rc = map_fields(c, n, "a selector", keys, 1, v);

	if (rc)
		return rc;
	sel->present = true;
	if (v[0]) {
		size_t saved = push_key(c, "matchLabels");
		rc = get_string_map(c, v[0], false, &sel->labels, &sel->nlabels);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

/* A default name "<prefix>-<i>" for an entry that has none. */
static int default_name(struct pctx *c, const char *prefix, size_t i, const char **out)
{
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "%s-%zu", prefix, i);
	char *s = arena_strndup(c->a, buf, n > 0 ? (size_t)n : 0, false);

	if (!s)
		return nomem(c);
	*out = s;
	return 0;
}

/* ---- faults ------------------------------------------------------------------------ */

static int parse_delay(struct pctx *c, const struct ynode *n, struct fault *f)
{
	static const char *const keys[] = {"fixed", "percent"};
	const struct ynode *v[2];
	size_t saved;
	int rc = map_fields(c, n, "a delay", keys, 2, v);

	if (rc)
		return rc;
	if (!v[0])
		return fail(c, n, "missing \"fixed\" (e.g. delay: {fixed: 2s, percent: 50})");
	saved = push_key(c, "fixed");
	rc = get_duration(c, v[0], &f->delay_ms);
	if (rc)
		return rc;
	pop(c, saved);
	f->delay_percent = 100;
	if (v[1]) {
		saved = push_key(c, "percent");
		rc = get_percent(c, v[1], &f->delay_percent);
		if (rc)
			return rc;
		pop(c, saved);
	}
	f->has_delay = true;
	return 0;
}

static int parse_abort(struct pctx *c, const struct ynode *n, struct fault *f)
{
	static const char *const keys[] = {"grpcStatus", "message", "percent"};
	const struct ynode *v[3];
	char buf[96];
	size_t saved;
	int rc = map_fields(c, n, "an abort", keys, 3, v);

	if (rc)
		return rc;
	if (!v[0])
		return fail(c, n, "missing \"grpcStatus\" (e.g. abort: {grpcStatus: UNAVAILABLE})");
	saved = push_key(c, "grpcStatus");
	int code = v[0]->type == YN_SCALAR ? policy_grpc_status_parse(v[0]->val) : -1;
	if (code < 0)
		return fail(c, v[0],
			    "%s is not a gRPC status (use a name like UNAVAILABLE or a number from "
			    "1 to 16)",
			    shown(v[0], buf, sizeof(buf)));
	if (code == 0)
		return fail(
		    c, v[0],
		    "%s is success, not an abort (use a status from 1 to 16, e.g. UNAVAILABLE)",
		    shown(v[0], buf, sizeof(buf)));
	f->abort_status = code;
	pop(c, saved);
	f->abort_message = "fault filter abort";
	if (v[1]) {
		saved = push_key(c, "message");
		rc = get_string(c, v[1], true, false, &f->abort_message, NULL);
		if (rc)
			return rc;
		pop(c, saved);
	}
	f->abort_percent = 100;
	if (v[2]) {
		saved = push_key(c, "percent");
		rc = get_percent(c, v[2], &f->abort_percent);
		if (rc)
			return rc;
		pop(c, saved);
	}
	f->has_abort = true;
	return 0;
}

/* match.destinations: a non-empty list of host patterns (policy_host_check), lowercased. */
static int get_destinations(struct pctx *c, const struct ynode *n, struct fault *f)
{
	char buf[96];
	int rc = expect_list(c, n, "destination hosts", false);

	if (rc)
		return rc;
	f->destinations = arena_alloc(c->a, n->nkids * sizeof(*f->destinations));
	if (!f->destinations)
		return nomem(c);
	for (size_t i = 0; i < n->nkids; i++) {
		const struct ynode *item = n->kids[i];
		size_t saved = push_index(c, i);
		const char *why = NULL;

		if (item->type == YN_SCALAR && policy_host_check(item->val, item->len, &why) != 0)
			return fail(c, item, "%s: %s", shown(item, buf, sizeof(buf)), why);
		rc = get_string(c, item, false, true, &f->destinations[i], NULL);
		if (rc)
			return rc;
		pop(c, saved);
	}
	f->ndestinations = n->nkids;
	return 0;
}

static int parse_fault_match(struct pctx *c, const struct ynode *n, struct fault *f)
{
	static const char *const keys[] = {"methods", "headers", "destinations"};
	const struct ynode *v[3];
	size_t saved;
	int rc = map_fields(c, n, "a match", keys, 3, v);

	if (rc)
		return rc;
	if (v[0]) {
		saved = push_key(c, "methods");
		rc = get_patterns(c, v[0], PAT_METHOD, &f->methods);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (v[1]) {
		saved = push_key(c, "headers");
		rc = get_string_map(c, v[1], true, &f->headers, &f->nheaders);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (v[2]) {
		saved = push_key(c, "destinations");
		rc = get_destinations(c, v[2], f);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

static int parse_fault(struct pctx *c, const struct ynode *n, size_t idx, struct fault *f)
{
	static const char *const keys[] = {"name", "selector", "match", "delay", "abort"};
	const struct ynode *v[5];
	size_t saved;
	int rc;

	if (!n || ynode_is_null(n) || (n->type == YN_MAP && n->nkids == 0))
		return fail(c, n, "an empty fault entry (give it a delay or an abort)");
	rc = map_fields(c, n, "a fault entry", keys, 5, v);
	if (rc)
		return rc;
	if (v[0]) {
		saved = push_key(c, "name");
		rc = get_string(c, v[0], false, false, &f->name, NULL);
		if (rc)
			return rc;
		pop(c, saved);
	} else if ((rc = default_name(c, "fault", idx, &f->name)) != 0) {
		return rc;
	}
	if (v[1]) {
		saved = push_key(c, "selector");
		rc = parse_selector(c, v[1], &f->sel);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (v[2]) {
		saved = push_key(c, "match");
		rc = parse_fault_match(c, v[2], f);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (v[3]) {
		saved = push_key(c, "delay");
		rc = parse_delay(c, v[3], f);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (v[4]) {
		saved = push_key(c, "abort");
		rc = parse_abort(c, v[4], f);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (!f->has_delay && !f->has_abort)
		return fail(c, n,
			    "neither delay nor abort given (add delay: {fixed: 1s} or abort: "
			    "{grpcStatus: UNAVAILABLE})");
	return 0;
}

/* ---- authorization -------------------------------------------------------------- */

static int parse_source(struct pctx *c, const struct ynode *n, struct source *s)
{
	static const char *const keys[] = {
	    "ipBlocks",	  "notIpBlocks",   "requestPrincipals", "notRequestPrincipals",
	    "principals", "notPrincipals", "namespaces",	"notNamespaces"};
	const struct ynode *v[8];
	size_t saved;
	int rc = map_fields(c, n, "a source", keys, 8, v);

	if (rc)
		return rc;
	if (!v[0] && !v[1] && !v[2] && !v[3] && !v[4] && !v[5] && !v[6] && !v[7])
		return fail(c, n,
			    "an empty source (give ipBlocks, notIpBlocks, requestPrincipals, "
			    "notRequestPrincipals, principals, notPrincipals, namespaces or "
			    "notNamespaces, or drop it)");
	if (v[0]) {
		saved = push_key(c, keys[0]);
		rc = get_cidrs(c, v[0], &s->ip_blocks, &s->ip_texts, &s->nip_blocks);
		if (rc)
			return rc;
		s->has_ip_blocks = true;
		pop(c, saved);
	}
	if (v[1]) {
		saved = push_key(c, keys[1]);
		rc = get_cidrs(c, v[1], &s->not_ip_blocks, &s->not_ip_texts, &s->nnot_ip_blocks);
		if (rc)
			return rc;
		s->has_not_ip_blocks = true;
		pop(c, saved);
	}
	for (int i = 2; i < 4; i++) {
		if (!v[i])
			continue;
		saved = push_key(c, keys[i]);
		rc = get_patterns(c, v[i], PAT_VALUE, i == 2 ? &s->principals : &s->not_principals);
		if (rc)
			return rc;
		pop(c, saved);
	}
	/* Issue 16: the peer's workload identity, from its verified certificate. */
	struct pmatch_list *ident[4] = {&s->peer_principals, &s->not_peer_principals,
					&s->namespaces, &s->not_namespaces};
	for (int i = 4; i < 8; i++) {
		if (!v[i])
			continue;
		saved = push_key(c, keys[i]);
		rc = get_patterns(c, v[i], i < 6 ? PAT_PRINCIPAL : PAT_NAMESPACE, ident[i - 4]);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

static int parse_operation(struct pctx *c, const struct ynode *n, struct operation *o)
{
	static const char *const keys[] = {"methods", "notMethods"};
	const struct ynode *v[2];
	size_t saved;
	int rc = map_fields(c, n, "an operation", keys, 2, v);

	if (rc)
		return rc;
	if (!v[0] && !v[1])
		return fail(c, n, "an empty operation (give methods or notMethods, or drop it)");
	for (int i = 0; i < 2; i++) {
		if (!v[i])
			continue;
		saved = push_key(c, keys[i]);
		rc = get_patterns(c, v[i], PAT_METHOD, i == 0 ? &o->methods : &o->not_methods);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

#define CLAIMS_PREFIX "request.auth.claims["
#define HEADERS_PREFIX "request.headers["

/* Parse "[a][b]..." (after the prefix's '[') into the claim path. */
static int parse_claim_path(struct pctx *c, const struct ynode *kn, const char *s,
			    struct condition *cond)
{
	const char *names[MAX_CLAIM_DEPTH];
	size_t lens[MAX_CLAIM_DEPTH], n = 0;
	char buf[96];

	/* s points just after "request.auth.claims[". */
	for (;;) {
		const char *close = strchr(s, ']');
		if (!close || close == s || memchr(s, '[', (size_t)(close - s)))
			goto bad;
		if (n == MAX_CLAIM_DEPTH)
			return fail(c, kn, "claims nested deeper than %d levels", MAX_CLAIM_DEPTH);
		names[n] = s;
		lens[n++] = (size_t)(close - s);
		s = close + 1;
		if (*s == '\0')
			break;
		if (*s != '[')
			goto bad;
		s++;
	}
	cond->claim_path = arena_alloc(c->a, n * sizeof(*cond->claim_path));
	if (!cond->claim_path)
		return nomem(c);
	for (size_t i = 0; i < n; i++)
		if (!(cond->claim_path[i] = arena_strndup(c->a, names[i], lens[i], false)))
			return nomem(c);
	cond->nclaim_path = n;
	cond->kind = COND_CLAIM;
	return 0;
bad:
	return fail(c, kn,
		    "%s is not a claim reference (use request.auth.claims[NAME] or "
		    "request.auth.claims[a][b])",
		    shown(kn, buf, sizeof(buf)));
}

static int parse_condition(struct pctx *c, const struct ynode *n, struct condition *cond)
{
	static const char *const keys[] = {"header", "key", "values", "notValues"};
	const struct ynode *v[4];
	char buf[96];
	size_t saved;
	int rc = map_fields(c, n, "a condition", keys, 4, v);

	if (rc)
		return rc;
	if (!v[0] == !v[1])
		return fail(
		    c, n,
		    v[0] ? "give either header or key, not both"
			 : "missing header or key (e.g. {header: x-tenant, values: [blue]})");
	if (!v[2] && !v[3])
		return fail(c, n, "missing values or notValues (e.g. values: [\"blue\"])");
	if (v[0]) {
		saved = push_key(c, "header");
		rc = get_string(c, v[0], false, true, &cond->header, &cond->header_len);
		if (rc)
			return rc;
		cond->kind = COND_HEADER;
		cond->key_text = cond->header;
		pop(c, saved);
	} else {
		const struct ynode *kn = v[1];
		saved = push_key(c, "key");
		rc = get_string(c, kn, false, false, &cond->key_text, NULL);
		if (rc)
			return rc;
		cond->by_key = true;
		const char *k = cond->key_text;
		size_t klen = strlen(k);
		if (strncmp(k, CLAIMS_PREFIX, strlen(CLAIMS_PREFIX)) == 0) {
			rc = parse_claim_path(c, kn, k + strlen(CLAIMS_PREFIX), cond);
			if (rc)
				return rc;
		} else if (strncmp(k, HEADERS_PREFIX, strlen(HEADERS_PREFIX)) == 0 &&
			   klen > strlen(HEADERS_PREFIX) + 1 && k[klen - 1] == ']' &&
			   !memchr(k + strlen(HEADERS_PREFIX), ']',
				   klen - strlen(HEADERS_PREFIX) - 1)) {
			cond->header_len = klen - strlen(HEADERS_PREFIX) - 1;
			cond->header =
			    arena_strndup(c->a, k + strlen(HEADERS_PREFIX), cond->header_len, true);
			if (!cond->header)
				return nomem(c);
			cond->kind = COND_HEADER;
		} else if (strcmp(k, "request.auth.audiences") == 0) {
			cond->kind = COND_AUDIENCES;
		} else if (strcmp(k, "request.auth.principal") == 0) {
			cond->kind = COND_PRINCIPAL;
		} else if (strcmp(k, "source.principal") == 0) {
			cond->kind = COND_SOURCE_PRINCIPAL;
		} else if (strcmp(k, "source.namespace") == 0) {
			cond->kind = COND_SOURCE_NAMESPACE;
		} else {
			return fail(c, kn,
				    "%s is not a supported key (use request.headers[NAME], "
				    "request.auth.claims[NAME], request.auth.principal, "
				    "request.auth.audiences, source.principal or source.namespace)",
				    shown(kn, buf, sizeof(buf)));
		}
		pop(c, saved);
	}
	/* The identity keys take the patterns of from.principals / from.namespaces. */
	enum pattern_kind pk = cond->kind == COND_SOURCE_PRINCIPAL   ? PAT_PRINCIPAL
			       : cond->kind == COND_SOURCE_NAMESPACE ? PAT_NAMESPACE
								     : PAT_VALUE;
	if (v[2]) {
		saved = push_key(c, "values");
		rc = get_patterns(c, v[2], pk, &cond->values);
		if (rc)
			return rc;
		pop(c, saved);
	}
	if (v[3]) {
		saved = push_key(c, "notValues");
		rc = get_patterns(c, v[3], pk, &cond->not_values);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

/* Parse a list of mappings with `fn` into a new array of `size`-byte elements. */
typedef int (*elem_fn)(struct pctx *c, const struct ynode *n, void *elem);

static int parse_list(struct pctx *c, const struct ynode *n, const char *key, const char *of,
		      size_t size, elem_fn fn, void **out, size_t *count)
{
	size_t saved = push_key(c, key);
	int rc = expect_list(c, n, of, true);

	if (rc)
		return rc;
	if (n->nkids) {
		*out = arena_alloc(c->a, n->nkids * size);
		if (!*out)
			return nomem(c);
	}
	for (size_t i = 0; i < n->nkids; i++) {
		size_t s2 = push_index(c, i);
		rc = fn(c, n->kids[i], (char *)*out + i * size);
		if (rc)
			return rc;
		pop(c, s2);
	}
	*count = n->nkids;
	pop(c, saved);
	return 0;
}

static int source_fn(struct pctx *c, const struct ynode *n, void *e)
{
	return parse_source(c, n, e);
}
static int operation_fn(struct pctx *c, const struct ynode *n, void *e)
{
	return parse_operation(c, n, e);
}
static int condition_fn(struct pctx *c, const struct ynode *n, void *e)
{
	return parse_condition(c, n, e);
}

static int parse_rule(struct pctx *c, const struct ynode *n, void *elem)
{
	static const char *const keys[] = {"from", "to", "when"};
	struct rule *r = elem;
	const struct ynode *v[3];
	int rc = map_fields(c, n, "a rule", keys, 3, v);

	if (rc)
		return rc;
	if (v[0] && (rc = parse_list(c, v[0], "from", "sources", sizeof(*r->from), source_fn,
				     (void **)&r->from, &r->nfrom)) != 0)
		return rc;
	if (v[1] && (rc = parse_list(c, v[1], "to", "operations", sizeof(*r->to), operation_fn,
				     (void **)&r->to, &r->nto)) != 0)
		return rc;
	if (v[2] && (rc = parse_list(c, v[2], "when", "conditions", sizeof(*r->when), condition_fn,
				     (void **)&r->when, &r->nwhen)) != 0)
		return rc;
	return 0;
}

static int parse_authz(struct pctx *c, const struct ynode *n, size_t idx, struct authz *z)
{
	static const char *const keys[] = {"name", "selector", "action", "rules"};
	const struct ynode *v[4];
	char buf[96];
	size_t saved;
	int rc = map_fields(c, n, "an authorization policy", keys, 4, v);

	if (rc)
		return rc;
	if (v[0]) {
		saved = push_key(c, "name");
		rc = get_string(c, v[0], false, false, &z->name, NULL);
		if (rc)
			return rc;
		pop(c, saved);
	} else if ((rc = default_name(c, "authorization", idx, &z->name)) != 0) {
		return rc;
	}
	if (v[1]) {
		saved = push_key(c, "selector");
		rc = parse_selector(c, v[1], &z->sel);
		if (rc)
			return rc;
		pop(c, saved);
	}
	z->action = POLICY_ACTION_ALLOW; /* Istio's default */
	if (v[2]) {
		const char *a = v[2]->type == YN_SCALAR ? v[2]->val : "";
		saved = push_key(c, "action");
		if (!strcmp(a, "ALLOW"))
			z->action = POLICY_ACTION_ALLOW;
		else if (!strcmp(a, "DENY"))
			z->action = POLICY_ACTION_DENY;
		else if (!strcmp(a, "AUDIT"))
			z->action = POLICY_ACTION_AUDIT;
		else if (!strcmp(a, "CUSTOM"))
			return fail(c, v[2],
				    "\"CUSTOM\" (external authorizers) is not supported (use "
				    "ALLOW, DENY or AUDIT)");
		else
			return fail(c, v[2], "%s is not an action (use ALLOW, DENY or AUDIT)",
				    shown(v[2], buf, sizeof(buf)));
		pop(c, saved);
	}
	if (v[3] && (rc = parse_list(c, v[3], "rules", "rules", sizeof(*z->rules), parse_rule,
				     (void **)&z->rules, &z->nrules)) != 0)
		return rc;
	return 0;
}

/* ---- requestAuthentication (issue 10) ----------------------------------------------- */

static int parse_jwt_header(struct pctx *c, const struct ynode *n, void *elem)
{
	static const char *const keys[] = {"name", "prefix"};
	struct policy_jwt_header *h = elem;
	const struct ynode *v[2];
	size_t saved;
	int rc = map_fields(c, n, "a header", keys, 2, v);

	if (rc)
		return rc;
	if (!v[0])
		return fail(c, n,
			    "missing \"name\" (e.g. {name: authorization, prefix: \"Bearer \"})");
	saved = push_key(c, "name");
	rc = get_string(c, v[0], false, true, &h->name, NULL);
	if (rc)
		return rc;
	pop(c, saved);
	h->prefix = "";
	if (v[1]) {
		saved = push_key(c, "prefix");
		rc = get_string(c, v[1], true, false, &h->prefix, NULL);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

static int parse_authn(struct pctx *c, const struct ynode *n, struct policy_authn *an)
{
	static const char *const keys[] = {"issuer", "audiences",   "jwksFile",
					   "jwks",   "fromHeaders", "forwardOriginalToken"};
	const struct ynode *v[6];
	size_t saved;
	int rc = map_fields(c, n, "a requestAuthentication entry", keys, 6, v);

	if (rc)
		return rc;
	if (!v[0])
		return fail(c, n, "missing \"issuer\" (e.g. issuer: https://issuer.example.com)");
	saved = push_key(c, "issuer");
	rc = get_string(c, v[0], false, false, &an->issuer, NULL);
	if (rc)
		return rc;
	pop(c, saved);
	if (v[1]) {
		saved = push_key(c, "audiences");
		rc = expect_list(c, v[1], "audiences", true);
		if (rc)
			return rc;
		const char **auds =
		    arena_alloc(c->a, (v[1]->nkids ? v[1]->nkids : 1) * sizeof(*auds));
		if (!auds)
			return nomem(c);
		for (size_t i = 0; i < v[1]->nkids; i++) {
			size_t s2 = push_index(c, i);
			rc = get_string(c, v[1]->kids[i], false, false, &auds[i], NULL);
			if (rc)
				return rc;
			pop(c, s2);
		}
		an->audiences = auds;
		an->naudiences = v[1]->nkids;
		pop(c, saved);
	}
	if (!v[2] == !v[3])
		return fail(c, v[2] ? v[3] : n,
			    v[2] ? "give either jwksFile or jwks, not both"
				 : "missing jwksFile or jwks (e.g. jwksFile: "
				   "/etc/grpcguard/jwks/jwks.json)");
	if (v[2]) {
		saved = push_key(c, "jwksFile");
		rc = get_string(c, v[2], false, false, &an->jwks_file, NULL);
		if (rc)
			return rc;
		pop(c, saved);
	} else {
		json_error_t jerr;
		json_t *doc;
		saved = push_key(c, "jwks");
		rc = get_string(c, v[3], false, false, &an->jwks_inline, NULL);
		if (rc)
			return rc;
		doc = json_loads(an->jwks_inline, JSON_REJECT_DUPLICATES, &jerr);
		bool ok = doc && json_is_array(json_object_get(doc, "keys"));
		json_decref(doc);
		if (!ok)
			return fail(c, v[3],
				    "not a JWKS: expected a JSON object with a \"keys\" list (%s)",
				    doc ? "no \"keys\" list" : jerr.text);
		pop(c, saved);
	}
	if (v[4]) {
		struct policy_jwt_header *hs = NULL;
		rc = parse_list(c, v[4], "fromHeaders", "headers", sizeof(*hs), parse_jwt_header,
				(void **)&hs, &an->nfrom_headers);
		if (rc)
			return rc;
		if (an->nfrom_headers == 0) {
			saved = push_key(c, "fromHeaders");
			rc = fail(c, v[4],
				  "an empty list: no token could ever be found (remove the key for "
				  "the default authorization: Bearer)");
			return rc;
		}
		an->from_headers = hs;
	} else {
		struct policy_jwt_header *h = arena_alloc(c->a, sizeof(*h));
		if (!h)
			return nomem(c);
		h->name = "authorization";
		h->prefix = "Bearer ";
		an->from_headers = h;
		an->nfrom_headers = 1;
	}
	an->forward_original_token = true;
	if (v[5]) {
		saved = push_key(c, "forwardOriginalToken");
		rc = get_bool(c, v[5], &an->forward_original_token);
		if (rc)
			return rc;
		pop(c, saved);
	}
	return 0;
}

/* ---- mtls (issue 16) ---------------------------------------------------------------- */

/* `mtls: {mode: PERMISSIVE|STRICT}`, Istio's PeerAuthentication spec.mtls. */
static int parse_mtls(struct pctx *c, const struct ynode *n, struct policy *p)
{
	static const char *const keys[] = {"mode"};
	const struct ynode *v[1];
	char buf[96];
	size_t saved;
	int rc;

	if (n->type != YN_MAP)
		return fail(c, n, "expected a mapping like mtls: {mode: STRICT}, found %s",
			    ynode_type_name(n));
	/* Istio's PeerAuthentication keys that have no meaning here, with the reason. */
	for (size_t k = 0; k + 1 < n->nkids; k += 2) {
		const struct ynode *key = n->kids[k];
		if (key->type != YN_SCALAR)
			continue;
		if (strcmp(key->val, "selector") == 0) {
			push_key(c, "selector");
			return fail(c, key,
				    "mtls applies to every pod this file reaches, it takes no "
				    "selector (give the pods that need another mode their own "
				    "policy ConfigMap with the grpcguard.io/policy-configmap "
				    "annotation)");
		}
		if (strcmp(key->val, "portLevelMtls") == 0) {
			push_key(c, "portLevelMtls");
			return fail(c, key,
				    "per-port modes are not supported: the mode applies to every "
				    "port the sidecar intercepts");
		}
	}
	if ((rc = map_fields(c, n, "an mtls setting", keys, 1, v)) != 0)
		return rc;
	if (!v[0])
		return fail(c, n, "missing \"mode\" (e.g. mtls: {mode: STRICT})");
	saved = push_key(c, "mode");
	const char *m = v[0]->type == YN_SCALAR ? v[0]->val : "";
	if (strcmp(m, "PERMISSIVE") == 0)
		p->mtls = POLICY_MTLS_PERMISSIVE;
	else if (strcmp(m, "STRICT") == 0)
		p->mtls = POLICY_MTLS_STRICT;
	else if (strcmp(m, "DISABLE") == 0 || strcmp(m, "UNSET") == 0)
		return fail(c, v[0],
			    "%s is not supported (use PERMISSIVE to accept plaintext and mutual "
			    "TLS, or STRICT to accept mutual TLS only)",
			    shown(v[0], buf, sizeof(buf)));
	else
		return fail(c, v[0], "%s is not an mtls mode (use PERMISSIVE or STRICT)",
			    shown(v[0], buf, sizeof(buf)));
	pop(c, saved);
	return 0;
}

/* ---- the document ---------------------------------------------------------------- */

static int check_unique_names(struct pctx *c, const struct ynode *list, const char *key,
			      const char *const *names, size_t n, size_t stride_unused)
{
	(void)stride_unused;
	if (n > 4096) /* O(n^2) below; more entries than that is not a real policy */
		return fail(c, list, "%s: more than 4096 entries", key);
	for (size_t i = 1; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (strcmp(names[i], names[j]) == 0) {
				size_t saved = push_key(c, key);
				push_index(c, i);
				int rc = fail(c, list->kids[i],
					      "duplicate name \"%s\" (also %s[%zu]; names label "
					      "metrics, make them unique)",
					      names[i], key, j);
				pop(c, saved);
				return rc;
			}
		}
	}
	return 0;
}

static int parse_document(struct pctx *c, const struct ynode *root, struct policy *p)
{
	static const char *const keys[] = {
	    "apiVersion",  "kind", "faults", "authorization", "requestAuthentication",
	    "passthrough", "mtls"};
	const struct ynode *v[7];
	char buf[96];
	int rc;

	if (!root || ynode_is_null(root))
		return 0;
	if (root->type != YN_MAP)
		return fail(c, root,
			    "expected a policy (a mapping with apiVersion, kind, faults, "
			    "authorization, requestAuthentication, passthrough, mtls), found %s",
			    ynode_type_name(root));
	rc = map_fields(c, root, "a policy", keys, 7, v);
	if (rc)
		return rc;
	if (v[0]) {
		size_t saved = push_key(c, "apiVersion");
		if (v[0]->type != YN_SCALAR || strcmp(v[0]->val, API_VERSION) != 0)
			return fail(c, v[0],
				    "%s is not supported (use apiVersion: " API_VERSION ")",
				    shown(v[0], buf, sizeof(buf)));
		pop(c, saved);
	}
	if (v[1]) {
		size_t saved = push_key(c, "kind");
		if (v[1]->type != YN_SCALAR || strcmp(v[1]->val, KIND) != 0)
			return fail(c, v[1], "%s is not supported (use kind: " KIND ")",
				    shown(v[1], buf, sizeof(buf)));
		pop(c, saved);
	}
	p->has_api_version = v[0] && v[1];
	if (v[5]) {
		/* Exactly "allow" or "deny" (docs/policy.md); anything else is an error. */
		size_t saved = push_key(c, "passthrough");
		if (v[5]->type == YN_SCALAR && strcmp(v[5]->val, "allow") == 0)
			p->passthrough = POLICY_PASSTHROUGH_ALLOW;
		else if (v[5]->type == YN_SCALAR && strcmp(v[5]->val, "deny") == 0)
			p->passthrough = POLICY_PASSTHROUGH_DENY;
		else
			return fail(
			    c, v[5],
			    "%s is not a passthrough mode (use allow or deny: what happens "
			    "to connections that are not HTTP/2; without the key, deny when "
			    "an authorization entry selects the pod, else allow)",
			    shown(v[5], buf, sizeof(buf)));
		pop(c, saved);
	}
	if (v[6]) {
		size_t saved = push_key(c, "mtls");
		if ((rc = parse_mtls(c, v[6], p)) != 0)
			return rc;
		pop(c, saved);
	}
	if (v[2]) {
		size_t saved = push_key(c, "faults");
		if ((rc = expect_list(c, v[2], "fault entries", true)) != 0)
			return rc;
		if (v[2]->nkids &&
		    !(p->faults = arena_alloc(c->a, v[2]->nkids * sizeof(*p->faults))))
			return nomem(c);
		for (size_t i = 0; i < v[2]->nkids; i++) {
			size_t s2 = push_index(c, i);
			if ((rc = parse_fault(c, v[2]->kids[i], i, &p->faults[i])) != 0)
				return rc;
			pop(c, s2);
		}
		p->nfaults = v[2]->nkids;
		pop(c, saved);
		const char **names = arena_alloc(c->a, (p->nfaults + 1) * sizeof(*names));
		if (!names)
			return nomem(c);
		for (size_t i = 0; i < p->nfaults; i++)
			names[i] = p->faults[i].name;
		if ((rc = check_unique_names(c, v[2], "faults", names, p->nfaults, 0)) != 0)
			return rc;
	}
	if (v[3]) {
		size_t saved = push_key(c, "authorization");
		if ((rc = expect_list(c, v[3], "authorization policies", true)) != 0)
			return rc;
		if (v[3]->nkids && !(p->authz = arena_alloc(c->a, v[3]->nkids * sizeof(*p->authz))))
			return nomem(c);
		for (size_t i = 0; i < v[3]->nkids; i++) {
			size_t s2 = push_index(c, i);
			if ((rc = parse_authz(c, v[3]->kids[i], i, &p->authz[i])) != 0)
				return rc;
			pop(c, s2);
		}
		p->nauthz = v[3]->nkids;
		pop(c, saved);
		const char **names = arena_alloc(c->a, (p->nauthz + 1) * sizeof(*names));
		if (!names)
			return nomem(c);
		for (size_t i = 0; i < p->nauthz; i++)
			names[i] = p->authz[i].name;
		if ((rc = check_unique_names(c, v[3], "authorization", names, p->nauthz, 0)) != 0)
			return rc;
	}
	if (v[4]) {
		size_t saved = push_key(c, "requestAuthentication");
		if ((rc = expect_list(c, v[4], "requestAuthentication entries", true)) != 0)
			return rc;
		if (v[4]->nkids && !(p->authn = arena_alloc(c->a, v[4]->nkids * sizeof(*p->authn))))
			return nomem(c);
		for (size_t i = 0; i < v[4]->nkids; i++) {
			size_t s2 = push_index(c, i);
			if ((rc = parse_authn(c, v[4]->kids[i], &p->authn[i])) != 0)
				return rc;
			pop(c, s2);
		}
		p->nauthn = v[4]->nkids;
		pop(c, saved);
	}
	return 0;
}

int policy_parse_buffer(const char *name, const char *buf, size_t len, struct policy **out,
			struct policy_diag *diag)
{
	struct ytree tree;
	struct policy *p = NULL;
	struct pctx c;
	int rc;

	*out = NULL;
	if (diag)
		memset(diag, 0, sizeof(*diag));
	if (!name)
		name = "policy";
	if (len > POLICY_MAX_FILE_BYTES)
		return diag_set(diag, POLICY_ERR_TOOBIG, name, 0, 0, NULL,
				"%zu bytes is over the %d byte limit for a policy", len,
				POLICY_MAX_FILE_BYTES);
	if (!buf && len)
		return diag_set(diag, POLICY_ERR_IO, name, 0, 0, NULL, "no input");
	rc = ytree_load(&tree, name, buf ? buf : "", len, diag);
	if (rc)
		goto out;
	p = policy_alloc();
	if (!p) {
		rc = diag_set(diag, POLICY_ERR_NOMEM, name, 0, 0, NULL, "out of memory");
		goto out;
	}
	memset(&c, 0, sizeof(c));
	c.name = name;
	c.diag = diag;
	c.a = &p->arena;
	rc = parse_document(&c, tree.root, p);
	if (rc)
		goto out;
	*out = p;
	p = NULL;
out:
	policy_unref(p);
	ytree_cleanup(&tree);
	return rc;
}

int policy_parse_file(const char *path, struct policy **out, struct policy_diag *diag)
{
	char *buf = NULL;
	size_t len = 0;
	int fd = -1, rc;

	*out = NULL;
	if (diag)
		memset(diag, 0, sizeof(*diag));
	if (!path)
		return diag_set(diag, POLICY_ERR_IO, "policy", 0, 0, NULL, "no file name");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = diag_set(diag, POLICY_ERR_IO, path, 0, 0, NULL, "cannot open: %s",
			      strerror(errno));
		goto out;
	}
	/* Read up to one byte past the limit, whatever stat says (ConfigMap files are
	 * symlinks; /proc-like files report size 0). */
	buf = malloc(POLICY_MAX_FILE_BYTES + 1);
	if (!buf) {
		rc = diag_set(diag, POLICY_ERR_NOMEM, path, 0, 0, NULL, "out of memory");
		goto out;
	}
	while (len <= POLICY_MAX_FILE_BYTES) {
		ssize_t n = read(fd, buf + len, POLICY_MAX_FILE_BYTES + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = diag_set(diag, POLICY_ERR_IO, path, 0, 0, NULL, "cannot read: %s",
				      strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > POLICY_MAX_FILE_BYTES) {
		rc = diag_set(diag, POLICY_ERR_TOOBIG, path, 0, 0, NULL,
			      "over the %d byte limit for a policy", POLICY_MAX_FILE_BYTES);
		goto out;
	}
	rc = policy_parse_buffer(path, buf, len, out, diag);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}
