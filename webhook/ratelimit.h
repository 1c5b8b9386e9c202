/*
 * Token buckets keyed by a short string (a source IP, a SPIFFE ID), for the certificate
 * endpoint: each key may spend `burst` tokens at once and earns `per_minute` tokens a
 * minute back. A fixed table (no growth with the number of callers): when it is full, the
 * least recently used key is forgotten, which only ever gives that caller a fresh bucket.
 * Thread-safe (one mutex); the clock is an argument so tests drive it.
 */
#ifndef GRPCGUARD_WH_RATELIMIT_H
#define GRPCGUARD_WH_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WH_RL_KEY_MAX 255 /* longer keys are cut (still distinct up to here) */

struct wh_ratelimit;

/*
 * New limiter remembering up to `slots` keys. per_minute 0 disables it (every take
 * succeeds). Returns NULL on out of memory.
 */
struct wh_ratelimit *wh_ratelimit_new(unsigned per_minute, unsigned burst, size_t slots);
void wh_ratelimit_free(struct wh_ratelimit *rl); /* NULL ok */

/*
 * Take one token from key's bucket at now_mono_ms. True when there was one; false means
 * "too many requests" (the bucket is left empty, not negative).
 */
bool wh_ratelimit_take(struct wh_ratelimit *rl, const char *key, uint64_t now_mono_ms);

#endif
