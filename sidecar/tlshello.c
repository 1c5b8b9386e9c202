/*
 * ClientHello classification and the negative cache (see tlshello.h). Kept out of tls.c
 * so that a sidecar without identity never needs the crypto module for them: every
 * outbound connection consults the cache, every inbound TLS record the classifier.
 */
#include "sidecar/tlshello.h"

#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

/* ---- ClientHello classification ------------------------------------------------------ */

static uint32_t be(const uint8_t *p, int n)
{
	uint32_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

enum sc_hello sc_tls_hello_classify(const uint8_t *d, size_t n, size_t max)
{
	static const char mark[] = SC_TLS_ALPN_MARK;
	const size_t ml = sizeof(mark) - 1;
	size_t rl, hl, p, end, el;

	if (n < 5)
		return n == 0 || d[0] == 0x16 ? SC_HELLO_MORE : SC_HELLO_OTHER;
	if (d[0] != 0x16 || d[1] != 0x03)
		return SC_HELLO_OTHER;
	rl = be(d + 3, 2);
	if (5 + rl > max || rl < 4)
		return SC_HELLO_OTHER;
	if (n < 5 + rl)
		return SC_HELLO_MORE;
	d += 5;
	if (d[0] != 1) /* client_hello */
		return SC_HELLO_OTHER;
	hl = be(d + 1, 3);
	if (4 + hl > rl)
		return SC_HELLO_OTHER; /* spans records: not ours (ours is ~300 bytes) */
	end = 4 + hl;
	p = 4 + 2 + 32; /* version, random */
	if (p + 1 > end)
		return SC_HELLO_OTHER;
	p += 1 + d[p]; /* session id */
	if (p + 2 > end)
		return SC_HELLO_OTHER;
	p += 2 + be(d + p, 2); /* cipher suites */
	if (p + 1 > end)
		return SC_HELLO_OTHER;
	p += 1 + d[p]; /* compression methods */
	if (p + 2 > end)
		return SC_HELLO_OTHER;
	el = be(d + p, 2);
	p += 2;
	if (p + el > end)
		return SC_HELLO_OTHER;
	end = p + el;
	while (p + 4 <= end) {
		uint32_t type = be(d + p, 2), len = be(d + p + 2, 2);
		size_t q, qe;
		p += 4;
		if (p + len > end)
			return SC_HELLO_OTHER;
		if (type != 16) { /* application_layer_protocol_negotiation */
			p += len;
			continue;
		}
		if (len < 2 || be(d + p, 2) != len - 2)
			return SC_HELLO_OTHER;
		for (q = p + 2, qe = p + len; q < qe;) {
			size_t l = d[q];
			if (q + 1 + l > qe)
				return SC_HELLO_OTHER;
			if (l == ml && memcmp(d + q + 1, mark, ml) == 0)
				return SC_HELLO_OURS;
			q += 1 + l;
		}
		return SC_HELLO_OTHER;
	}
	return SC_HELLO_OTHER;
}

/* ---- negative cache -------------------------------------------------------------------- */

static int key_of(const struct sockaddr_storage *dst, uint8_t addr[16], uint16_t *port)
{
	memset(addr, 0, 16);
	if (dst->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)dst;
		memcpy(addr, &in->sin_addr, 4);
		*port = in->sin_port;
		return AF_INET;
	}
	if (dst->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)dst;
		memcpy(addr, &in6->sin6_addr, 16);
		*port = in6->sin6_port;
		return AF_INET6;
	}
	return 0;
}

static size_t slot_of(const uint8_t addr[16], uint16_t port)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	h = (h ^ port) * 16777619u;
	return h % SC_NEGCACHE_SLOTS;
}

/* Open addressing over 8 probes; the probe window is where an entry may live. */
#define PROBES 8

void sc_negcache_add(struct sc_negcache *nc, const struct sockaddr_storage *dst, uint64_t now_ms)
{
	uint8_t addr[16];
	uint16_t port;
	int fam = key_of(dst, addr, &port);
	size_t base, victim;

	if (!fam)
		return;
	base = slot_of(addr, port);
	victim = base;
	for (size_t i = 0; i < PROBES; i++) {
		struct sc_negcache_ent *e = &nc->e[(base + i) % SC_NEGCACHE_SLOTS];
		if (e->family == fam && e->port == port && memcmp(e->addr, addr, 16) == 0) {
			victim = (base + i) % SC_NEGCACHE_SLOTS;
			break;
		}
		if (!e->family || e->until_ms <= now_ms) {
			victim = (base + i) % SC_NEGCACHE_SLOTS;
			break;
		}
		if (e->until_ms < nc->e[victim].until_ms)
			victim = (base + i) % SC_NEGCACHE_SLOTS;
	}
	nc->e[victim].family = (uint8_t)fam;
	nc->e[victim].port = port;
	memcpy(nc->e[victim].addr, addr, 16);
	nc->e[victim].until_ms = now_ms + SC_NEGCACHE_TTL_MS;
}

bool sc_negcache_has(const struct sc_negcache *nc, const struct sockaddr_storage *dst,
		     uint64_t now_ms)
{
	uint8_t addr[16];
	uint16_t port;
	int fam = key_of(dst, addr, &port);
	size_t base;

	if (!fam)
		return false;
	base = slot_of(addr, port);
	for (size_t i = 0; i < PROBES; i++) {
		const struct sc_negcache_ent *e = &nc->e[(base + i) % SC_NEGCACHE_SLOTS];
		if (e->family == fam && e->port == port && memcmp(e->addr, addr, 16) == 0)
			return e->until_ms > now_ms;
	}
	return false;
}
