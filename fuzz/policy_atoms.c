/*
 * Fuzz target: the policy library's small parsers. The first byte picks one: duration,
 * CIDR (plus containment of a few addresses), method pattern (pattern and method split at
 * the first newline), gRPC status, downward-API labels, destination host (pattern and
 * authority split at the first newline), SPIFFE ID to principal (and the principal's
 * namespace). Deterministic, opens nothing,
 * frees everything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s;
	size_t n;
	char *z;

	if (size == 0)
		return 0;
	s = (const char *)data + 1;
	n = size - 1;
	/* A NUL-terminated copy for the parsers that take C strings. */
	z = malloc(n + 1);
	if (!z)
		return 0;
	memcpy(z, s, n);
	z[n] = '\0';
	switch (data[0] % 7) {
	case 0: {
		uint64_t ms = 0;
		if (policy_parse_duration(s, n, &ms) == 0 && ms > 30ull * 24 * 3600 * 1000)
			abort();
		break;
	}
	case 1: {
		struct policy_cidr c;
		if (policy_parse_cidr(z, &c) == 0) {
			struct sockaddr_in v4 = {.sin_family = AF_INET};
			struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
			if ((c.family != AF_INET && c.family != AF_INET6) ||
			    c.prefix_len > (c.family == AF_INET ? 32u : 128u))
				abort();
			memcpy(&v4.sin_addr, c.addr, 4);
			memcpy(&v6.sin6_addr, c.addr, 16);
			/* The block's own base address is inside it. */
			if (!policy_cidr_contains(&c, c.family == AF_INET
							  ? (const struct sockaddr *)&v4
							  : (const struct sockaddr *)&v6))
				abort();
		}
		break;
	}
	case 2: {
		char *nl = strchr(z, '\n');
		if (nl) {
			*nl = '\0';
			policy_method_match(z, nl + 1, strlen(nl + 1));
		} else if (!policy_method_match(z, z, strlen(z)) && !strchr(z, '*')) {
			abort(); /* a pattern without '*' matches itself */
		}
		break;
	}
	case 3: {
		int code = policy_grpc_status_parse(z);
		if (code >= 0 && policy_grpc_status_parse(policy_grpc_status_name(code)) != code)
			abort();
		break;
	}
	case 4: {
		struct policy_labels *l = NULL;
		struct policy_diag diag;
		if (policy_labels_parse(s, n, &l, &diag) == 0) {
			policy_labels_get(l, "app");
			policy_labels_get(l, "");
		}
		policy_labels_free(l);
		break;
	}
	case 5: {
		const char *why = NULL;
		char *nl = strchr(z, '\n');
		if (nl) {
			*nl = '\0';
			if (policy_host_check(z, strlen(z), &why) == 0)
				policy_host_match(z, nl + 1, strlen(nl + 1), "demo");
		} else if (policy_host_check(z, n, &why) == 0 && strlen(z) == n) {
			/* A checked host matches itself, with or without a port. */
			char *ap = malloc(n + 8);
			if (!ap)
				break;
			memcpy(ap, z, n);
			memcpy(ap + n, ":8080", 6);
			if (!strchr(z, '*') && (!policy_host_match(z, z, n, "demo") ||
						!policy_host_match(z, ap, n + 5, NULL)))
				abort();
			free(ap);
		} else if (policy_host_check(s, n, &why) != 0 && !why) {
			abort(); /* a rejection always says why */
		}
		break;
	}
	case 6: {
		/* The principal is the URI without "spiffe://", and needs exactly that room. */
		char out[2100];
		const char *ns = NULL;
		size_t ns_len = 0;
		int rc = policy_principal_from_spiffe(s, n, out, sizeof(out));
		if (rc == 0) {
			if (n < 10 || memcmp(out, s + 9, n - 9) != 0 || out[n - 9] != '\0' ||
			    policy_principal_from_spiffe(s, n, out, n - 9) != -ENOSPC)
				abort();
			s = out;
			n = n - 9;
		} else if (rc != -EINVAL) {
			abort();
		}
		if (policy_principal_namespace(s, n, &ns, &ns_len) == 0 &&
		    (ns < s || ns + ns_len > s + n || ns_len == 0 || ns_len > 63))
			abort();
		break;
	}
	}
	free(z);
	return 0;
}
