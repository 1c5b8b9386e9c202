/*
 * Fuzz target: a raw AdmissionReview body into the webhook's review handler, exactly as
 * the HTTPS server would pass it (no sockets). The first byte picks the route and the
 * configuration: bit 0 /mutate (else /validate), bit 1 warn mode, bit 2 plain-container
 * proxy, bit 3 CNI mode. Deterministic, opens nothing, frees everything.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/config.h"
#include "webhook/review.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct wh_config configs[16];
static int ready;

static void init_configs(void)
{
	for (int i = 0; i < 16; i++) {
		if (wh_config_init(&configs[i]) != 0)
			abort();
		configs[i].validation_mode = (i & 2) ? WH_MODE_WARN : WH_MODE_ENFORCE;
		configs[i].native_sidecar = !(i & 4);
		configs[i].intercept_cni = (i & 8) != 0;
	}
	ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wh_review_info info;
	const struct wh_config *c;
	char *resp = NULL;
	size_t resp_len = 0;
	bool is_json = false;
	int status;

	if (!ready)
		init_configs();
	if (size < 1)
		return 0;
	c = &configs[data[0] & 15];
	status =
	    wh_review_handle(c, (data[0] & 1) ? WH_ROUTE_MUTATE : WH_ROUTE_VALIDATE,
			     (const char *)data + 1, size - 1, &resp, &resp_len, &is_json, &info);
	/* Invariants: every body gets an answer, a review exactly when the status is 200;
	 * 500 means out of memory, which a fuzzing run does not reach, so it is a bug here. */
	if (status != 200 && status != 400)
		abort();
	if (!resp || strlen(resp) != resp_len)
		abort();
	if (is_json != (status == 200) || info.reviewed != (status == 200))
		abort();
	free(resp);
	return 0;
}
