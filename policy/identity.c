/*
 * Workload identities (issue 16): the SPIFFE ID in a peer's certificate, the principal
 * form policies name (Istio's source.principal: the SPIFFE ID without "spiffe://"), the
 * namespace inside a principal, and the syntax checks the parser applies to
 * `principals` / `namespaces` patterns.
 *
 * Strict on purpose: a principal is `<trustDomain>/ns/<namespace>/sa/<serviceaccount>`
 * with Kubernetes' own name rules for the namespace (a DNS-1123 label) and the service
 * account (a DNS-1123 subdomain), so a certificate whose identity has any other shape has
 * no namespace a policy could match. What it does not do: verify certificates or look at
 * X.509 at all (the sidecar does, and hands the verified URI SAN here). Pure: no I/O, no
 * allocation.
 */
#include <errno.h>
#include <string.h>

#include "policy/internal.h"

#define SPIFFE_SCHEME "spiffe://"
#define SPIFFE_MAX_BYTES 2048 /* the SPIFFE ID's maximum length (SPIFFE-ID spec 2.3) */
#define TRUST_DOMAIN_MAX 255
#define LABEL_MAX 63	  /* a namespace: DNS-1123 label */
#define SUBDOMAIN_MAX 253 /* a service account: DNS-1123 subdomain */

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* SPIFFE-ID spec: trust domain characters are lowercase letters, digits, '.', '-', '_'. */
static bool trust_domain_ok(const char *s, size_t len)
{
	if (len == 0 || len > TRUST_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* SPIFFE-ID spec: path segment characters are letters, digits, '.', '-', '_'; a segment
 * is never empty, "." or "..". */
static bool segment_ok(const char *s, size_t len)
{
	if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (!is_lower_alnum(ch) && !(ch >= 'A' && ch <= 'Z') && ch != '.' && ch != '-' &&
		    ch != '_')
			return false;
	}
	return true;
}

/* A Kubernetes namespace name: 1-63 of [a-z0-9-], starting and ending alphanumeric. */
static bool dns_label_ok(const char *s, size_t len)
{
	if (len == 0 || len > LABEL_MAX || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	return true;
}

/* A service account name: a DNS-1123 subdomain (labels joined by '.', 253 at most). */
static bool dns_subdomain_ok(const char *s, size_t len)
{
	size_t start = 0;

	if (len == 0 || len > SUBDOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (!dns_label_ok(s + start, i - start))
			return false;
		start = i + 1;
	}
	return true;
}

int policy_principal_from_spiffe(const char *uri, size_t len, char *out, size_t outlen)
{
	const size_t scheme_len = sizeof(SPIFFE_SCHEME) - 1;
	const char *td, *path, *end;

	if (!uri || len <= scheme_len || len > SPIFFE_MAX_BYTES ||
	    memcmp(uri, SPIFFE_SCHEME, scheme_len) != 0)
		return -EINVAL;
	td = uri + scheme_len;
	end = uri + len;
	path = memchr(td, '/', (size_t)(end - td));
	/* A workload ID has a path: "spiffe://cluster.local" alone names a trust domain. */
	if (!path || !trust_domain_ok(td, (size_t)(path - td)))
		return -EINVAL;
	while (path < end) {
		const char *seg = path + 1, *next = memchr(seg, '/', (size_t)(end - seg));
		if (!next)
			next = end;
		if (!segment_ok(seg, (size_t)(next - seg)))
			return -EINVAL;
		path = next;
	}
	if (!out || outlen < len - scheme_len + 1)
		return -ENOSPC;
	memcpy(out, td, len - scheme_len);
	out[len - scheme_len] = '\0';
	return 0;
}

int policy_principal_namespace(const char *principal, size_t len, const char **ns, size_t *ns_len)
{
	const char *seg[5], *end = principal + len, *p = principal;
	size_t seglen[5], n = 0;

	if (!principal || len == 0 || len > SPIFFE_MAX_BYTES)
		return -EINVAL;
	/* Exactly five segments: <td> / ns / <ns> / sa / <sa>. */
	while (n < 5) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		seg[n] = p;
		seglen[n++] = (size_t)((slash ? slash : end) - p);
		if (!slash)
			break;
		p = slash + 1;
	}
	if (n != 5 || seg[4] + seglen[4] != end)
		return -EINVAL;
	if (!trust_domain_ok(seg[0], seglen[0]) || seglen[1] != 2 || memcmp(seg[1], "ns", 2) != 0 ||
	    !dns_label_ok(seg[2], seglen[2]) || seglen[3] != 2 || memcmp(seg[3], "sa", 2) != 0 ||
	    !dns_subdomain_ok(seg[4], seglen[4]))
		return -EINVAL;
	if (ns)
		*ns = seg[2];
	if (ns_len)
		*ns_len = seglen[2];
	return 0;
}

/*
 * The parser's checks on one pattern of `principals`/`notPrincipals` (principal true) or
 * `namespaces`/`notNamespaces`: 0, or -1 and a static reason in *why. The '*' placement
 * (alone, first or last) and emptiness were checked already. An exact pattern must be a
 * whole identity in the strict form; a prefix or suffix pattern may only use the
 * characters an identity can contain, so a pattern that could never match is an error.
 */
int identity_pattern_check(const struct pmatch *pm, bool principal, const char **why)
{
	if (pm->kind == PM_ANY)
		return 0;
	if (principal) {
		if (pm->len >= 7 && memcmp(pm->lit, "spiffe:", 7) == 0) {
			*why = "is a SPIFFE URI: write the principal without \"spiffe://\" "
			       "(e.g. \"cluster.local/ns/demo/sa/frontend\")";
			return -1;
		}
		if (pm->kind == PM_EXACT) {
			if (policy_principal_namespace(pm->lit, pm->len, NULL, NULL) == 0)
				return 0;
			*why = "is not a principal (use <trustDomain>/ns/<namespace>/sa/"
			       "<serviceaccount>, e.g. \"cluster.local/ns/demo/sa/frontend\", or "
			       "put a '*' at the start or end, e.g. \"cluster.local/ns/demo/*\")";
			return -1;
		}
		for (size_t i = 0; i < pm->len; i++) {
			char ch = pm->lit[i];
			if (!is_lower_alnum(ch) && !(ch >= 'A' && ch <= 'Z') && ch != '.' &&
			    ch != '-' && ch != '_' && ch != '/') {
				*why = "has a character no principal contains (principals use "
				       "letters, digits, '.', '-', '_' and '/')";
				return -1;
			}
		}
		return 0;
	}
	if (pm->kind == PM_EXACT) {
		if (dns_label_ok(pm->lit, pm->len))
			return 0;
		*why = "is not a namespace name (lowercase letters, digits and '-', at most 63, "
		       "starting and ending with a letter or digit; e.g. \"demo\" or \"team-*\")";
		return -1;
	}
	if (pm->len > LABEL_MAX) {
		*why = "is longer than a namespace name can be (63)";
		return -1;
	}
	for (size_t i = 0; i < pm->len; i++) {
		if (!is_lower_alnum(pm->lit[i]) && pm->lit[i] != '-') {
			*why = "has a character no namespace name contains (lowercase letters, "
			       "digits and '-')";
			return -1;
		}
	}
	return 0;
}
