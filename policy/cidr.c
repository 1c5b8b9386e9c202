/*
 * CIDR blocks for `ipBlocks` / `notIpBlocks`: parsing and containment. IPv4-mapped IPv6
 * peers (::ffff:a.b.c.d, what a dual-stack socket reports) are compared as IPv4, and an
 * IPv4 peer is also inside IPv6 blocks that cover its mapped form. Evaluation normalises
 * the peer once (peer_addr_init) and then tests each block with a mask and a compare.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "policy/internal.h"

/*
 * Accepts "a.b.c.d/N" (N 0..32), "x:y::z/N" (N 0..128) or a bare address (/32, /128).
 * Bits beyond the prefix are cleared (Istio accepts "10.0.0.1/8" as 10.0.0.0/8).
 * Returns 0 and *out, or -1 (*out untouched).
 */
int policy_parse_cidr(const char *s, struct policy_cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	struct policy_cidr c;
	const char *slash;
	size_t alen;
	unsigned max;

	if (!s)
		return -1;
	memset(&c, 0, sizeof(c));
	slash = strchr(s, '/');
	alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -1;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (inet_pton(AF_INET, buf, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	c.prefix_len = max;
	if (slash) {
		const char *d = slash + 1;
		unsigned v = 0;
		size_t n = strlen(d);
		if (n == 0 || n > 3 || (n > 1 && d[0] == '0'))
			return -1;
		for (size_t i = 0; i < n; i++) {
			if (d[i] < '0' || d[i] > '9')
				return -1;
			v = v * 10 + (unsigned)(d[i] - '0');
		}
		if (v > max)
			return -1;
		c.prefix_len = v;
	}
	for (unsigned bit = c.prefix_len; bit < max; bit++)
		c.addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
	*out = c;
	return 0;
}

static uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t load_be64(const uint8_t *p)
{
	return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

/* The top `bits` bits of a 64-bit word set (bits may exceed 64 or be 0). */
static inline uint64_t mask64(unsigned bits)
{
	return bits >= 64 ? ~(uint64_t)0 : bits == 0 ? 0 : ~(uint64_t)0 << (64 - bits);
}

void peer_addr_init(struct peer_addr *pa, const struct sockaddr *addr)
{
	memset(pa, 0, sizeof(*pa));
	if (!addr)
		return;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
		pa->v4 = ntohl(sin->sin_addr.s_addr);
		pa->v6[0] = 0;
		pa->v6[1] = (uint64_t)0xffff << 32 | pa->v4;
		pa->has_v4 = pa->has_v6 = true;
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
		const uint8_t *b = sin6->sin6_addr.s6_addr;
		pa->v6[0] = load_be64(b);
		pa->v6[1] = load_be64(b + 8);
		pa->has_v6 = true;
		if (pa->v6[0] == 0 && pa->v6[1] >> 32 == 0xffff) {
			pa->v4 = (uint32_t)pa->v6[1];
			pa->has_v4 = true;
		}
	}
}

/* A mask and a compare; the CIDR's own bits past the prefix are masked too, so a
 * hand-built policy_cidr behaves like a parsed one. */
bool cidr_contains_peer(const struct policy_cidr *c, const struct peer_addr *pa)
{
	if (c->family == AF_INET) {
		unsigned bits = c->prefix_len > 32 ? 32 : c->prefix_len;
		uint32_t mask = bits == 0 ? 0 : ~(uint32_t)0 << (32 - bits);
		return pa->has_v4 && (pa->v4 & mask) == (load_be32(c->addr) & mask);
	}
	if (c->family == AF_INET6) {
		unsigned bits = c->prefix_len > 128 ? 128 : c->prefix_len;
		uint64_t m0 = mask64(bits), m1 = mask64(bits > 64 ? bits - 64 : 0);
		return pa->has_v6 && (pa->v6[0] & m0) == (load_be64(c->addr) & m0) &&
		       (pa->v6[1] & m1) == (load_be64(c->addr + 8) & m1);
	}
	return false;
}

/* False for NULL or a family other than AF_INET/AF_INET6. */
bool policy_cidr_contains(const struct policy_cidr *c, const struct sockaddr *addr)
{
	struct peer_addr pa;

	if (!c)
		return false;
	peer_addr_init(&pa, addr);
	return cidr_contains_peer(c, &pa);
}
