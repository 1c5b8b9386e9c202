/*
 * webhook/ratelimit: token buckets per key: the burst, the refill rate, keys independent,
 * no credit beyond the burst, a full table forgetting the least recently used key, and 0
 * per minute meaning no limit.
 */
#include <check.h>
#include <stdio.h>

#include "webhook/ratelimit.h"
#include "tests/unit/runner.h"

START_TEST(burst_then_refill)
{
	struct wh_ratelimit *rl = wh_ratelimit_new(60, 3, 16); /* one a second */
	uint64_t t = 1000000;

	ck_assert(wh_ratelimit_take(rl, "10.0.0.1", t));
	ck_assert(wh_ratelimit_take(rl, "10.0.0.1", t));
	ck_assert(wh_ratelimit_take(rl, "10.0.0.1", t));
	ck_assert(!wh_ratelimit_take(rl, "10.0.0.1", t));
	ck_assert(!wh_ratelimit_take(rl, "10.0.0.1", t + 999));
	/* Refused takes cost nothing: at t + 1000 one token has been earned in all. */
	ck_assert(wh_ratelimit_take(rl, "10.0.0.1", t + 1000));
	ck_assert(!wh_ratelimit_take(rl, "10.0.0.1", t + 1000));
	/* Another key has its own bucket. */
	ck_assert(wh_ratelimit_take(rl, "10.0.0.2", t + 1000));
	/* A long pause earns at most the burst. */
	t += 3600 * 1000;
	for (int i = 0; i < 3; i++)
		ck_assert(wh_ratelimit_take(rl, "10.0.0.1", t));
	ck_assert(!wh_ratelimit_take(rl, "10.0.0.1", t));
	/* A clock going backwards earns nothing and breaks nothing. */
	ck_assert(!wh_ratelimit_take(rl, "10.0.0.1", t - 5000));
	wh_ratelimit_free(rl);
}
END_TEST

START_TEST(slow_rate)
{
	/* 1 a minute: 59.999 s is not enough, 60 s is. */
	struct wh_ratelimit *rl = wh_ratelimit_new(1, 1, 4);

	ck_assert(wh_ratelimit_take(rl, "k", 0));
	ck_assert(!wh_ratelimit_take(rl, "k", 59999));
	ck_assert(wh_ratelimit_take(rl, "k", 60000));
	wh_ratelimit_free(rl);
}
END_TEST

START_TEST(eviction)
{
	struct wh_ratelimit *rl = wh_ratelimit_new(1, 1, 4);
	char key[16];

	for (int i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert(wh_ratelimit_take(rl, key, (uint64_t)i));
	}
	/* k1..k3 stay remembered (and empty) while a fifth key evicts k0, the oldest. */
	ck_assert(wh_ratelimit_take(rl, "k4", 10));
	ck_assert(!wh_ratelimit_take(rl, "k3", 11));
	ck_assert(!wh_ratelimit_take(rl, "k4", 12));
	ck_assert(wh_ratelimit_take(rl, "k0", 13)); /* forgotten: a fresh bucket */
	wh_ratelimit_free(rl);
}
END_TEST

START_TEST(disabled_and_long_keys)
{
	struct wh_ratelimit *off = wh_ratelimit_new(0, 1, 4), *rl = wh_ratelimit_new(1, 1, 4);
	char a[600], b[600];

	for (int i = 0; i < 100; i++)
		ck_assert(wh_ratelimit_take(off, "k", 0));
	memset(a, 'a', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 2] = 'b'; /* differs only past the stored length: the same bucket */
	ck_assert(wh_ratelimit_take(rl, a, 0));
	ck_assert(!wh_ratelimit_take(rl, b, 0));
	wh_ratelimit_free(off);
	wh_ratelimit_free(rl);
	wh_ratelimit_free(NULL);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"burst_then_refill", burst_then_refill},
	    {"slow_rate", slow_rate},
	    {"eviction", eviction},
	    {"disabled_and_long_keys", disabled_and_long_keys},
	};
	return UT_RUN("webhook/ratelimit", tests, .timeout_s = 10);
}
