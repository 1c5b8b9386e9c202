/*
 * CIDR blocks for `ipBlocks` / `notIpBlocks`: parsing and containment. IPv4-mapped IPv6
 * peers (::ffff:a.b.c.d, what a dual-stack socket reports) are compared as IPv4, and an
 * IPv4 peer is also inside IPv6 blocks that cover its mapped form.
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

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rem = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rem == 0)
		return true;
	uint8_t mask = (uint8_t)(0xffu << (8 - rem));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* False for NULL or a family other than AF_INET/AF_INET6. */
bool policy_cidr_contains(const struct policy_cidr *c, const struct sockaddr *addr)
{
	uint8_t v4[4], v6[16];
	bool have_v4 = false;

	if (!c || !addr)
		return false;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)addr;
		memcpy(v4, &sin->sin_addr, 4);
		memcpy(v6, v4mapped, 12);
		memcpy(v6 + 12, v4, 4);
		have_v4 = true;
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)addr;
		memcpy(v6, &sin6->sin6_addr, 16);
		if (memcmp(v6, v4mapped, 12) == 0) {
			memcpy(v4, v6 + 12, 4);
			have_v4 = true;
		}
	} else {
		return false;
	}
	if (c->family == AF_INET)
		return have_v4 && prefix_equal(c->addr, v4, c->prefix_len);
	if (c->family == AF_INET6)
		return prefix_equal(c->addr, v6, c->prefix_len);
	return false;
}
