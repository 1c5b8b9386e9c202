/*
 * Fuzz target: the sidecar's downstream HTTP/2 handling with the real nghttp2 callbacks,
 * the real per-RPC decision (a fixed policy with a delay, an abort, a DENY and an AUDIT,
 * and client-side entries with destinations) on an inbound and then on an outbound
 * connection (outbound.c's decision, :authority against the destinations)
 * and the upstream stubbed at the socket boundary (the worker's test_write hook swallows
 * what would be written; upstream connects succeed at once).
 *
 * Input: segments separated by the 4 bytes FE ED FA CE, alternately bytes from the
 * client (the first one after the client preface, which is always sent first) and bytes
 * from the app (the first one after an empty SETTINGS frame). Deterministic: no clock
 * reads matter (timers never fire: the loop is only run to finish close callbacks), no
 * socket or file is opened per input, everything is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "policy/policy.h"
#include "sidecar/proxy.h"

static struct sc_config cfg;
static struct sc_proxy px;
static struct sc_worker w;

static const char policy_yaml[] =
    "apiVersion: grpcguard.io/v1\n"
    "kind: Policy\n"
    "faults:\n"
    "  - name: d\n"
    "    match: {methods: [\"/a.B/Delay\"]}\n"
    "    delay: {fixed: 10ms, percent: 100}\n"
    "  - name: a\n"
    "    match: {methods: [\"/a.B/*\"], headers: {x-abort: \"1\"}}\n"
    "    abort: {grpcStatus: UNAVAILABLE, message: \"x%y\\n\", percent: 50}\n"
    "  - name: od\n"
    "    match: {destinations: [a, \"*.example.com\"], methods: [\"/a.B/Delay\"]}\n"
    "    delay: {fixed: 10ms, percent: 100}\n"
    "  - name: oa\n"
    "    match: {destinations: [\"*\"], headers: {x-abort: \"1\"}}\n"
    "    abort: {grpcStatus: UNAVAILABLE, percent: 50}\n"
    "authorization:\n"
    "  - name: deny\n"
    "    action: DENY\n"
    "    rules: [{to: [{methods: [\"/a.B/Deny\"]}]}]\n"
    "  - name: audit\n"
    "    action: AUDIT\n"
    "    rules: [{to: [{methods: [\"/a.B/Audit\"]}]}]\n";

static void sink(struct sc_worker *wk, const struct sc_outbuf *o, const uint8_t *d, size_t n)
{
	(void)wk;
	(void)o;
	(void)d;
	(void)n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct policy *p = NULL;
	struct policy_diag diag;
	(void)argc;
	(void)argv;

	log_init("fuzz", LOGL_ERROR);
	sc_config_defaults(&cfg);
	cfg.upstream = "127.0.0.1:1";
	cfg.original_dst = false;
	cfg.max_delayed = 4;
	cfg.max_header_list_bytes = 4096;
	px.cfg = &cfg;
	w.px = &px;
	w.pool.max_free = 8;
	w.test_write = sink;
	if (sc_stats_init() != 0 || uv_loop_init(&w.loop) != 0 ||
	    sc_worker_callbacks_init(&w) != 0 || sc_reload_init(&w.loop, NULL, NULL) != 0 ||
	    policy_parse_buffer("fuzz.yaml", policy_yaml, sizeof(policy_yaml) - 1, &p, &diag) !=
		0 ||
	    sc_reload_set_policy(p) != 0)
		abort();
	sc_rng_seed(&w.rng, 1);
	return 0;
}

static const uint8_t sep[4] = {0xfe, 0xed, 0xfa, 0xce};
static const uint8_t empty_settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};

/* One connection fed the whole input; outbound: as accepted on the outbound listener. */
static void run_conn(const uint8_t *data, size_t size, bool outbound)
{
	struct sc_conn *c = sc_conn_new(&w);
	struct sockaddr_in *peer;
	bool down = true, first_up = true;

	if (!c)
		return;
	c->outbound = outbound;
	peer = (struct sockaddr_in *)&c->peer;
	peer->sin_family = AF_INET;
	peer->sin_addr.s_addr = htonl(0x0a010203);
	sc_conn_feed(c, (const uint8_t *)SC_H2_PREFACE, SC_H2_PREFACE_LEN);
	while (c->mode != CM_CLOSING) {
		const uint8_t *end = size >= 4 ? memmem(data, size, sep, 4) : NULL;
		size_t n = end ? (size_t)(end - data) : size;

		if (down) {
			sc_conn_feed(c, data, n);
		} else if (w.ups) {
			/* The worker's pool: the newest upstream connection (one destination). */
			struct sc_up *up = w.ups;
			if (first_up)
				sc_up_feed(up, empty_settings, sizeof(empty_settings));
			first_up = false;
			if (w.ups == up)
				sc_up_feed(up, data, n);
		}
		if (!end)
			break;
		data = end + 4;
		size -= n + 4;
		down = !down;
	}
	sc_conn_close(c);
	sc_ups_sweep(&w, 0, true); /* the worker's upstream pool */
	uv_run(&w.loop, UV_RUN_DEFAULT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run_conn(data, size, false);
	run_conn(data, size, true);
	return 0;
}
