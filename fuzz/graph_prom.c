/*
 * Fuzz target: grpcguard-graph's reading of Prometheus /api/v1/query answers
 * (graph/model.c). The first byte picks how the rest is fed: as the requests answer, as
 * the p99 answer, or split at the first NUL into one of each. Then the model is finished
 * and its invariants checked: every edge has traffic, its errors and mTLS share are within
 * its rate, its ends are nodes, node names are printable and bounded, and the order is
 * sorted. Deterministic, opens nothing, frees everything.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_model(const struct gr_model *m)
{
	size_t nn = gr_model_nnodes(m);

	for (size_t i = 0; i < nn; i++) {
		const char *name = gr_model_node(m, i)->name;
		size_t len = strnlen(name, GR_MAX_NAME);
		if (len == 0 || len >= GR_MAX_NAME)
			abort();
		for (size_t j = 0; j < len; j++)
			if ((unsigned char)name[j] <= 0x20 || (unsigned char)name[j] >= 0x7f)
				abort();
		if (i && strcmp(gr_model_node(m, i - 1)->name, name) >= 0)
			abort();
	}
	for (size_t i = 0; i < gr_model_nedges(m); i++) {
		const struct gr_edge *e = gr_model_edge(m, i);
		if (e->src >= nn || e->dst >= nn || !(e->rps > 0) || !isfinite(e->rps) ||
		    e->err_rps < 0 || e->err_rps > e->rps * (1 + 1e-9) || e->mtls_rps < 0 ||
		    e->mtls_rps > e->rps * (1 + 1e-9) || (!isnan(e->p99_s) && e->p99_s < 0))
			abort();
		if (gr_health_of(e->rps, e->err_rps) == GR_IDLE)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gr_model *m;
	const char *body;
	char err[256];
	size_t n;

	if (size == 0)
		return 0;
	body = (const char *)data + 1;
	n = size - 1;
	m = gr_model_new();
	if (!m)
		return 0;
	switch (data[0] % 3) {
	case 0:
		gr_model_add_requests(m, body, n, err, sizeof(err));
		break;
	case 1:
		gr_model_add_p99(m, body, n, err, sizeof(err));
		break;
	default: {
		const char *nul = memchr(body, '\0', n);
		size_t first = nul ? (size_t)(nul - body) : n;
		gr_model_add_requests(m, body, first, err, sizeof(err));
		if (nul)
			gr_model_add_p99(m, nul + 1, n - first - 1, err, sizeof(err));
	}
	}
	if (strnlen(err, sizeof(err)) >= sizeof(err))
		abort();
	gr_model_finish(m);
	check_model(m);
	gr_model_free(m);
	return 0;
}
