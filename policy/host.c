/*
 * Destination hosts of client-side fault entries (`match.destinations`): the syntax check
 * the parser applies to each entry, and the match of an entry against an outbound call's
 * `:authority`.
 *
 * Matching follows what Istio does with a VirtualService's `hosts` inside the cluster: a
 * short name means the Kubernetes Service of that name in the caller's own namespace, so
 * `server`, `server.demo`, `server.demo.svc` and `server.demo.svc.cluster.local` are one
 * destination for a caller in namespace `demo`. Both sides are brought to their fully
 * qualified form and compared:
 *
 *   no dot            name        -> name.<caller ns>.svc.cluster.local (when ns is known)
 *   one dot           name.ns     -> name.ns.svc.cluster.local
 *   "<a>.<b>.svc"                 -> <a>.<b>.svc.cluster.local
 *   anything else                 -> itself (api.example.com)
 *
 * plus `*` (every host) and `*.suffix` (hosts ending in ".suffix", as written). The port
 * of the authority is ignored, case is ignored, a trailing dot is dropped. Only the
 * cluster domain `cluster.local` is known. Pure: no I/O, no allocation.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

#define CLUSTER_SUFFIX ".svc.cluster.local"
#define HOST_MAX 253

int policy_host_check(const char *s, size_t len, const char **why)
{
	size_t start = 0;

	if (len == 0) {
		*why = "an empty host";
		return -1;
	}
	if (len > HOST_MAX) {
		*why = "longer than 253 characters";
		return -1;
	}
	if (len == 1 && s[0] == '*')
		return 0;
	if (len > 2 && s[0] == '*' && s[1] == '.')
		start = 2;
	for (size_t i = start; i < len; i++) {
		char ch = s[i];
		if (ch == ':' && !memchr(s, '/', len)) {
			*why =
			    "give the host without a port (e.g. \"server\", not \"server:8080\")";
			return -1;
		}
		if (ch == '*') {
			*why = "a '*' only works alone or as \"*.suffix\"";
			return -1;
		}
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.')) {
			*why = "not a host name (letters, digits, '-' and '.', e.g. \"server\", "
			       "\"server.demo.svc.cluster.local\" or \"api.example.com\")";
			return -1;
		}
		if (ch == '.' && (i == start || s[i - 1] == '.')) {
			*why = "an empty label (\"..\" or a leading '.')";
			return -1;
		}
	}
	return 0;
}

/* The host part of an authority: no port, no trailing dot; IPv6 literals keep brackets. */
static void host_of(const char *a, size_t len, size_t *hlen)
{
	if (len > 0 && a[0] == '[') {
		const char *end = memchr(a, ']', len);
		*hlen = end ? (size_t)(end - a) + 1 : len;
		return;
	}
	const char *colon = memchr(a, ':', len);
	if (colon && !memchr(colon + 1, ':', len - (size_t)(colon - a) - 1))
		len = (size_t)(colon - a);
	if (len > 0 && a[len - 1] == '.')
		len--;
	*hlen = len;
}

/* The fully qualified form of h[0..len) (see the top of the file) into out; its length. */
static size_t canon(const char *h, size_t len, const char *ns, char *out, size_t outlen)
{
	size_t dots = 0;
	int n;

	for (size_t i = 0; i < len; i++)
		dots += h[i] == '.';
	if (dots == 0 && ns && *ns)
		n = snprintf(out, outlen, "%.*s.%s" CLUSTER_SUFFIX, (int)len, h, ns);
	else if (dots == 1)
		n = snprintf(out, outlen, "%.*s" CLUSTER_SUFFIX, (int)len, h);
	else if (dots == 2 && len > 4 && strncasecmp(h + len - 4, ".svc", 4) == 0)
		n = snprintf(out, outlen, "%.*s.cluster.local", (int)len, h);
	else
		n = snprintf(out, outlen, "%.*s", (int)len, h);
	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

bool policy_host_match(const char *pattern, const char *authority, size_t authority_len,
		       const char *ns)
{
	size_t plen = strlen(pattern), hlen;
	char cp[HOST_MAX + 128], ch[HOST_MAX + 128];
	size_t cplen, chlen;

	if (!authority)
		return false;
	if (plen > 1 && pattern[plen - 1] == '.')
		plen--; /* an absolute name, "server.demo.svc.cluster.local." */
	host_of(authority, authority_len, &hlen);
	if (hlen == 0)
		return false;
	if (plen == 1 && pattern[0] == '*')
		return true;
	if (plen > 2 && pattern[0] == '*' && pattern[1] == '.')
		return hlen > plen - 1 &&
		       strncasecmp(authority + hlen - (plen - 1), pattern + 1, plen - 1) == 0;
	if (hlen == plen && strncasecmp(authority, pattern, plen) == 0)
		return true;
	if (hlen > HOST_MAX || authority[0] == '[')
		return false;
	cplen = canon(pattern, plen, ns, cp, sizeof(cp));
	chlen = canon(authority, hlen, ns, ch, sizeof(ch));
	return cplen && cplen == chlen && strncasecmp(cp, ch, cplen) == 0;
}
