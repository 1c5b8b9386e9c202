/*
 * Token buckets (see ratelimit.h). Tokens are kept in thousandths so refill needs no
 * floating point: per_minute tokens a minute is per_minute milli-tokens per 60 ms. A
 * linear scan of a small table is fine at the request rates the issuer sees (a pod asks
 * once at start and then at half-life).
 */
#include "webhook/ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bucket {
	char key[WH_RL_KEY_MAX + 1];
	uint64_t milli;	  /* tokens x 1000 */
	uint64_t last_ms; /* last refill */
	uint64_t used_ms; /* last take, for eviction */
	bool used;
};

struct wh_ratelimit {
	pthread_mutex_t mu;
	unsigned per_minute, burst;
	size_t nslots;
	struct bucket *slots;
};

struct wh_ratelimit *wh_ratelimit_new(unsigned per_minute, unsigned burst, size_t slots)
{
	struct wh_ratelimit *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return NULL;
	rl->slots = calloc(slots ? slots : 1, sizeof(*rl->slots));
	if (!rl->slots) {
		free(rl);
		return NULL;
	}
	pthread_mutex_init(&rl->mu, NULL);
	rl->per_minute = per_minute;
	rl->burst = burst ? burst : 1;
	rl->nslots = slots ? slots : 1;
	return rl;
}

void wh_ratelimit_free(struct wh_ratelimit *rl)
{
	if (!rl)
		return;
	pthread_mutex_destroy(&rl->mu);
	free(rl->slots);
	free(rl);
}

static void refill(const struct wh_ratelimit *rl, struct bucket *b, uint64_t now)
{
	uint64_t cap = (uint64_t)rl->burst * 1000;

	uint64_t earned;

	/* A clock that went backwards (it should not: monotonic) earns nothing. */
	if (now <= b->last_ms)
		return;
	earned = (now - b->last_ms) * rl->per_minute / 60;
	if (b->milli + earned >= cap) {
		b->milli = cap;
		b->last_ms = now;
		return;
	}
	/* Advance the clock only by the time the whole milli-tokens took, so frequent calls
	 * do not lose the fractions. */
	b->milli += earned;
	b->last_ms += earned * 60 / rl->per_minute;
}

bool wh_ratelimit_take(struct wh_ratelimit *rl, const char *key, uint64_t now_mono_ms)
{
	struct bucket *b = NULL, *victim;
	char k[WH_RL_KEY_MAX + 1];
	bool ok;

	if (!rl || rl->per_minute == 0)
		return true;
	/* Compare on the same cut the table stores. */
	strncpy(k, key, WH_RL_KEY_MAX);
	k[WH_RL_KEY_MAX] = '\0';
	pthread_mutex_lock(&rl->mu);
	victim = &rl->slots[0]; /* nslots >= 1 */
	for (size_t i = 0; i < rl->nslots; i++) {
		struct bucket *s = &rl->slots[i];
		if (s->used && strcmp(s->key, k) == 0) {
			b = s;
			break;
		}
		if (victim->used && (!s->used || s->used_ms < victim->used_ms))
			victim = s;
	}
	if (!b) {
		b = victim;
		memcpy(b->key, k, sizeof(k));
		b->used = true;
		b->milli = (uint64_t)rl->burst * 1000;
		b->last_ms = now_mono_ms;
	}
	refill(rl, b, now_mono_ms);
	b->used_ms = now_mono_ms;
	ok = b->milli >= 1000;
	if (ok)
		b->milli -= 1000;
	pthread_mutex_unlock(&rl->mu);
	return ok;
}
