/*
 * The destination identity cache; see peercache.h. A linear scan of a small fixed table:
 * it is touched once per outbound connection and per RPC that got no response, never on
 * the per-RPC fast path.
 */
#include "sidecar/peercache.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>

struct key {
	sa_family_t family;
	in_port_t port;
	uint8_t addr[16];
};

struct ent {
	bool used;
	struct key k;
	uint64_t learned_ms;
	struct sc_peer_id id;
};

static struct {
	pthread_mutex_t lock;
	struct ent e[SC_PEERCACHE_SLOTS];
} pc = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* dst as a key; false for a family other than IPv4 and IPv6. */
static bool key_of(const struct sockaddr_storage *dst, struct key *k)
{
	memset(k, 0, sizeof(*k));
	if (!dst)
		return false;
	if (dst->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)dst;
		k->port = a->sin_port;
		memcpy(k->addr, &a->sin_addr, 4);
	} else if (dst->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)dst;
		k->port = a->sin6_port;
		memcpy(k->addr, &a->sin6_addr, 16);
	} else {
		return false;
	}
	k->family = dst->ss_family;
	return true;
}

static struct ent *find(const struct key *k)
{
	for (size_t i = 0; i < SC_PEERCACHE_SLOTS; i++)
		if (pc.e[i].used && memcmp(&pc.e[i].k, k, sizeof(*k)) == 0)
			return &pc.e[i];
	return NULL;
}

void sc_peercache_learn(const struct sockaddr_storage *dst, const struct sc_peer_id *id,
			uint64_t now_ms)
{
	struct key k;
	struct ent *e;

	if (!id || !key_of(dst, &k))
		return;
	pthread_mutex_lock(&pc.lock);
	e = find(&k);
	for (size_t i = 0; !e && i < SC_PEERCACHE_SLOTS; i++)
		if (!pc.e[i].used)
			e = &pc.e[i];
	if (!e) {
		/* Full: replace the entry learned longest ago. */
		e = &pc.e[0];
		for (size_t i = 1; i < SC_PEERCACHE_SLOTS; i++)
			if (pc.e[i].learned_ms < e->learned_ms)
				e = &pc.e[i];
	}
	e->used = true;
	e->k = k;
	e->learned_ms = now_ms;
	e->id = *id;
	pthread_mutex_unlock(&pc.lock);
}

void sc_peercache_forget(const struct sockaddr_storage *dst)
{
	struct key k;
	struct ent *e;

	if (!key_of(dst, &k))
		return;
	pthread_mutex_lock(&pc.lock);
	e = find(&k);
	if (e)
		memset(e, 0, sizeof(*e));
	pthread_mutex_unlock(&pc.lock);
}

bool sc_peercache_find(const struct sockaddr_storage *dst, uint64_t now_ms, struct sc_peer_id *out)
{
	struct key k;
	struct ent *e;
	bool ok = false;

	if (!out || !key_of(dst, &k))
		return false;
	pthread_mutex_lock(&pc.lock);
	e = find(&k);
	/* Each worker reads "now" once per loop turn: another's may lag the learner's a little. */
	if (e && (now_ms <= e->learned_ms || now_ms - e->learned_ms < SC_PEERCACHE_TTL_MS)) {
		*out = e->id;
		ok = true;
	}
	pthread_mutex_unlock(&pc.lock);
	return ok;
}

void sc_peercache_clear(void)
{
	pthread_mutex_lock(&pc.lock);
	memset(pc.e, 0, sizeof(pc.e));
	pthread_mutex_unlock(&pc.lock);
}
