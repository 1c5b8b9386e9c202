/*
 * The sidecar's Prometheus metrics: the families of DESIGN.md plus gauges for active
 * connections and streams and counters for each limit. Families are registered once at
 * start; per-RPC series (service, method, code) go through a small per-worker cache so a
 * finished RPC normally costs no registry lookup and no lock.
 */
#ifndef GRPCGUARD_SC_STATS_H
#define GRPCGUARD_SC_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"

struct sc_stats {
	struct metrics_registry *reg;
	struct metrics_family *requests; /* grpc_service, grpc_method, grpc_code */
	struct metrics_family *duration; /* grpc_service, grpc_method */
	struct metrics_family *faults;	 /* type, fault */
	struct metrics_family *denied;	 /* policy */
	struct metrics_family *reloads;	 /* result */
	struct metrics_family *limits;	 /* limit */
	struct metrics_series *active_conns, *active_streams, *delayed_streams;
	struct metrics_series *reload_ok, *reload_fail;
	struct metrics_series *lim_conns, *lim_delayed, *lim_headers, *lim_flood, *lim_rapid_reset;
	struct metrics_series *authn_failed, *upstream_connect_failed, *passthrough_conns;
	/* gate.c: grpcguard_requests_refused_total{reason}, ..._connections_refused_total */
	struct metrics_series *refused_path, *refused_method, *refused_scheme;
	struct metrics_series *refused_authority;
	struct metrics_series *conns_refused_not_http2;
};

extern struct sc_stats sc_stats;

int sc_stats_init(void); /* 0 or -ENOMEM */
void sc_stats_free(void);

#define SC_MCACHE_SLOTS 64
#define SC_MCACHE_PATH 96
struct sc_mcache_ent {
	uint64_t hash;
	unsigned plen;
	char path[SC_MCACHE_PATH];
	struct metrics_series *dur;
	struct metrics_series *codes[17];
};
struct sc_mcache {
	struct sc_mcache_ent e[SC_MCACHE_SLOTS];
};

/* Count one finished RPC: requests_total{svc,method,code}++ and its duration. */
void sc_stats_rpc_done(struct sc_mcache *mc, const char *path, size_t plen, int grpc_code,
		       double seconds);
void sc_stats_fault(const char *type, const char *fault);
void sc_stats_denied(const char *policy);

#endif
