/*
 * The checked fixture the webhook tests that need a default configuration share: cfg is
 * wh_config_init()'s defaults, with POD_NAMESPACE unset so the environment the tests run
 * in cannot change them. Include it in one test file, then pass cfg_setup/cfg_teardown
 * as the fixture: UT_RUN(..., .setup = cfg_setup, .teardown = cfg_teardown).
 * Header-only; each including file gets its own cfg.
 */
#ifndef GRPCGUARD_TESTS_UNIT_WEBHOOK_FIXTURES_H
#define GRPCGUARD_TESTS_UNIT_WEBHOOK_FIXTURES_H

#include <check.h>
#include <stdlib.h>

#include "webhook/config.h"

static struct wh_config cfg;

static inline void cfg_setup(void)
{
	unsetenv("POD_NAMESPACE");
	ck_assert_int_eq(wh_config_init(&cfg), 0);
}

static inline void cfg_teardown(void)
{
	wh_config_cleanup(&cfg);
}

#endif
