/*
 * The outbound capture rules of `init` (see outrules.h). For IPv4 with the defaults:
 *
 *     -A GRPCGUARD_OUTBOUND -m owner --uid-owner 1337 -j RETURN
 *     -A GRPCGUARD_OUTBOUND -o lo -j RETURN
 *     -A GRPCGUARD_OUTBOUND -d 127.0.0.0/8 -j RETURN
 *     -A GRPCGUARD_OUTBOUND -p tcp --dport 53 -j RETURN
 *     -A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT --to-ports 15001
 *     -A OUTPUT -p tcp -j GRPCGUARD_OUTBOUND
 *
 * The uid rule comes first: every connection the sidecar opens itself (its upstreams,
 * inbound and outbound) leaves untouched, so it can never capture itself. `-o lo` keeps
 * connections that stay inside the pod (to 127.0.0.1, ::1 or the pod's own IP) away from
 * the proxy; the 127.0.0.0/8 and ::1 rules say the same for readers of iptables-save.
 * DNS over TCP is excluded (UDP is never captured: only -p tcp jumps here).
 *
 * What it does not do: run anything, or capture UDP.
 */
#include "sidecar/outrules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void sc_outrules_init(struct sc_outrules *o)
{
	memset(o, 0, sizeof(*o));
	o->enabled = true;
	o->port = SC_OUT_DEFAULT_PORT;
	o->uid = 1337;
}

int sc_outrules_parse_cidrs(struct sc_outrules *o, const char *list, char *err, size_t errlen)
{
	const char *s = list;
	char item[64];

	while (*s) {
		size_t n;

		s += strspn(s, " ");
		n = strcspn(s, ",");
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n == 0 && s[strspn(s, " ")] == '\0')
			break;
		if (n == 0 || n >= sizeof(item)) {
			snprintf(err, errlen,
				 "--exclude-outbound-cidrs: empty or overlong entry in \"%.100s\" "
				 "(use e.g. 10.0.0.0/8,fd00::/8)",
				 list);
			return -EINVAL;
		}
		memcpy(item, s, n);
		item[n] = '\0';
		if (o->ncidrs == SC_OUT_MAX_CIDRS) {
			snprintf(err, errlen,
				 "--exclude-outbound-cidrs: more than %d entries; merge them into "
				 "wider blocks",
				 SC_OUT_MAX_CIDRS);
			return -EINVAL;
		}
		if (policy_parse_cidr(item, &o->cidrs[o->ncidrs]) != 0) {
			snprintf(err, errlen,
				 "--exclude-outbound-cidrs: \"%s\" is not an IP address or CIDR "
				 "block (use 10.0.0.0/8, 192.168.1.7 or fd00::/8)",
				 item);
			return -EINVAL;
		}
		o->ncidrs++;
		s += strcspn(s, ",");
		if (*s == ',') {
			s++;
			if (s[strspn(s, " ")] == '\0') {
				snprintf(err, errlen, "--exclude-outbound-cidrs: trailing comma");
				return -EINVAL;
			}
		}
	}
	return 0;
}

void sc_outrules_render(const struct sc_outrules *o, bool ipv6, bool with_jump, FILE *t)
{
	const char *c = SC_OUT_CHAIN;

	if (!o->enabled)
		return;
	fprintf(t, "-A %s -m owner --uid-owner %u -j RETURN\n", c, o->uid);
	fprintf(t, "-A %s -o lo -j RETURN\n", c);
	fprintf(t, "-A %s -d %s -j RETURN\n", c, ipv6 ? "::1/128" : "127.0.0.0/8");
	fprintf(t, "-A %s -p tcp --dport 53 -j RETURN\n", c);
	for (unsigned p = 1; p <= 65535; p++) {
		if (p != 53 && (o->exclude_ports[p / 8] & (1u << (p % 8))))
			fprintf(t, "-A %s -p tcp --dport %u -j RETURN\n", c, p);
	}
	for (size_t i = 0; i < o->ncidrs; i++) {
		const struct policy_cidr *k = &o->cidrs[i];
		char addr[INET6_ADDRSTRLEN];

		if ((k->family == AF_INET6) != ipv6)
			continue;
		if (!inet_ntop(k->family, k->addr, addr, sizeof(addr)))
			continue;
		fprintf(t, "-A %s -d %s/%u -j RETURN\n", c, addr, k->prefix_len);
	}
	fprintf(t, "-A %s -p tcp -j REDIRECT --to-ports %u\n", c, o->port);
	if (with_jump)
		fprintf(t, "-A OUTPUT -p tcp -j %s\n", c);
}
