/*
 * The sidecar's Prometheus metrics: the families of DESIGN.md plus gauges for active
 * connections and streams and counters for each limit. Families are registered once at
 * start; per-RPC series go through a small per-worker cache so a finished RPC normally
 * costs no registry lookup and no lock.
 *
 * Per-RPC labels (Istio's standard metrics): reporter (destination: the inbound path,
 * this pod serves the call; source: the outbound path, this pod makes it),
 * source_workload, source_namespace, destination_workload, destination_namespace (this
 * pod's identity on its side; on the other, the peer's exchanged claim or "unknown"),
 * destination_service (the :authority host, sc_peer_service_from_authority), grpc_service,
 * grpc_method, and grpc_code on requests_total. Issue 16: source_principal and
 * destination_principal (SPIFFE IDs verified by mTLS on that connection, else "unknown":
 * inbound the caller's certificate and ours, outbound ours and the destination
 * sidecar's, as Istio reports them) and connection_security_policy (mutual_tls | none). Cardinality
 * is bounded: each of the two families holds at most SC_STATS_MAX_SERIES series; an RPC that would
 * need a new series beyond SC_STATS_MAX_SERIES - SC_STATS_FOLD_RESERVE is counted with the value
 * "other" for every label but reporter and grpc_code, and in
 * grpcguard_metrics_series_overflow_total.
 */
#ifndef GRPCGUARD_SC_STATS_H
#define GRPCGUARD_SC_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/metrics.h"
#include "sidecar/peer.h"

struct sc_stats {
	struct metrics_registry *reg;
	struct metrics_family *requests; /* reporter .. grpc_method, grpc_code (stats.h top) */
	struct metrics_family *duration; /* the same less grpc_code */
	struct metrics_family *faults;	 /* type, fault */
	struct metrics_family *denied;	 /* policy */
	struct metrics_family *reloads;	 /* result */
	struct metrics_family *limits;	 /* limit */
	struct metrics_series *active_conns, *active_streams, *delayed_streams;
	struct metrics_series *reload_ok, *reload_fail;
	struct metrics_series *lim_conns, *lim_delayed, *lim_headers, *lim_flood, *lim_rapid_reset;
	struct metrics_series *authn_failed, *upstream_connect_failed, *passthrough_conns;
	struct metrics_series *upstream_retries;
	/* gate.c: grpcguard_requests_refused_total{reason}, ..._connections_refused_total */
	struct metrics_series *refused_path, *refused_method, *refused_scheme;
	struct metrics_series *refused_authority;
	struct metrics_series *conns_refused_not_http2, *conns_refused_plaintext;
	/* grpcguard_tls_handshakes_total{direction, result}: inbound/outbound x success,
	 * failure, and outbound no_sidecar (the destination answered in plaintext). */
	struct metrics_series *tls_in_ok, *tls_in_fail, *tls_out_ok, *tls_out_fail, *tls_out_plain;
	struct metrics_series *loopback_dst_refused;
	struct metrics_series *foreign_dst_refused;
	struct metrics_series *peer_malformed, *peer_oversized, *peer_repeated, *peer_mismatch;
	struct metrics_series *series_overflow;
};

extern struct sc_stats sc_stats;

int sc_stats_init(void); /* 0 or -ENOMEM */
void sc_stats_free(void);

#define SC_STATS_MAX_SERIES 4096
#define SC_STATS_FOLD_RESERVE 64 /* room for the folded series: 2 reporters x 17 codes */
#define SC_STATS_OTHER "other"

enum sc_reporter { SC_REPORTER_DESTINATION = 0, SC_REPORTER_SOURCE = 1 };

/* What one finished RPC is counted under; every pointer borrowed for the call only. */
struct sc_rpc_labels {
	enum sc_reporter reporter;
	const struct sc_peer_id *self; /* this pod (NULL: unknown) */
	const struct sc_peer_id *peer; /* the other end's exchanged claim (NULL: unknown) */
	const char *authority;	       /* :authority as received, may be NULL */
	size_t authority_len;
	const char *path; /* :path as received */
	size_t path_len;
	/* mTLS (issue 16): SPIFFE IDs verified on this connection, NULL: "unknown". */
	const char *source_principal, *destination_principal;
	bool mtls; /* connection_security_policy mutual_tls, else none */
};

#define SC_MCACHE_SLOTS 128
#define SC_MCACHE_KEY 360
struct sc_mcache_ent {
	uint64_t hash;
	unsigned klen;
	bool folded; /* these series are the "other" ones: count the overflow per RPC */
	char key[SC_MCACHE_KEY];
	struct metrics_series *dur;
	struct metrics_series *codes[17];
};
struct sc_mcache {
	struct sc_mcache_ent e[SC_MCACHE_SLOTS];
};

/*
 * Count one finished RPC: requests_total{...,grpc_code}++ and its duration. mc is the
 * worker's cache (NULL: no cache); grpc_code outside 0..16 counts as UNKNOWN.
 */
void sc_stats_rpc_done(struct sc_mcache *mc, const struct sc_rpc_labels *l, int grpc_code,
		       double seconds);
/* A received SC_PEER_HEADER that was not used (err: enum sc_peer_err). */
void sc_stats_peer_invalid(int err);
void sc_stats_fault(const char *type, const char *fault);
void sc_stats_denied(const char *policy);

#endif
