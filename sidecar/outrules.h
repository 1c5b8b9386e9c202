/*
 * The outbound half of `grpcguard-sidecar init`: the options of the nat OUTPUT capture
 * and the iptables-restore lines of the GRPCGUARD_OUTBOUND chain, for one family.
 * Pure: parses strings and renders text; intercept.c runs the commands, in the same
 * iptables-restore transaction as the inbound rules.
 */
#ifndef GRPCGUARD_SC_OUTRULES_H
#define GRPCGUARD_SC_OUTRULES_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define SC_OUT_CHAIN "GRPCGUARD_OUTBOUND"
#define SC_OUT_DEFAULT_PORT 15001
#define SC_OUT_MAX_CIDRS 64

struct sc_outrules {
	bool enabled;			  /* false with --no-outbound: no chain, no jump */
	unsigned port;			  /* REDIRECT target, --outbound-port */
	unsigned uid;			  /* the proxy's uid, never captured */
	uint8_t exclude_ports[65536 / 8]; /* bitmap, --exclude-outbound-ports */
	struct policy_cidr cidrs[SC_OUT_MAX_CIDRS]; /* --exclude-outbound-cidrs */
	size_t ncidrs;
};

/* Defaults: enabled, port 15001, uid 1337, nothing excluded. */
void sc_outrules_init(struct sc_outrules *o);

/*
 * "10.0.0.0/8, fd00::/8" (addresses or CIDR blocks, IPv4 and IPv6 mixed; an empty list is
 * allowed) appended to o->cidrs. Returns 0, or -EINVAL with a one-line reason in err naming
 * the bad entry.
 */
int sc_outrules_parse_cidrs(struct sc_outrules *o, const char *list, char *err, size_t errlen);

/*
 * The lines for one family, to put between the chain declarations and COMMIT (declare
 * SC_OUT_CHAIN with the others): RETURN for the proxy's uid, loopback (-o lo and
 * 127.0.0.0/8 or ::1), TCP port 53, the excluded ports and this family's excluded CIDRs,
 * then REDIRECT to o->port; with_jump adds "-A OUTPUT -p tcp -j GRPCGUARD_OUTBOUND".
 * Written to t (nothing when disabled); a write error shows in ferror(t).
 */
void sc_outrules_render(const struct sc_outrules *o, bool ipv6, bool with_jump, FILE *t);

#endif
