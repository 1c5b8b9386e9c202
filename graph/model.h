/*
 * The service graph's model: workloads as nodes, calls as edges, built from Prometheus
 * /api/v1/query responses over grpcguard's Istio-style metrics (DESIGN.md, Telemetry).
 *
 * Pure: bytes of JSON in, edges out. No I/O, no logging, no clock; what to ask Prometheus
 * (gr_model_query_*) is built here too, so the PromQL and its reading stay side by side.
 *
 * Which series make an edge: a destination sidecar's own report (reporter="destination")
 * when there is one; a caller's report (reporter="source") only for edges that have no
 * destination report, e.g. a destination without a sidecar (destination_workload
 * "unknown": the node is then named by destination_service, the :authority host).
 * Node names: "<namespace>/<workload>" for workloads, the host for sidecar-less
 * destinations, "unknown" for callers without a sidecar.
 */
#ifndef GRPCGUARD_GR_MODEL_H
#define GRPCGUARD_GR_MODEL_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds on what a response may make us hold; past them gr_model_add_* fail. */
#define GR_MAX_EDGES 2000
#define GR_MAX_NAME 254 /* bytes of a node name, NUL included */

/* Health thresholds on the error percentage (grpc_code != OK / all requests). */
#define GR_ERR_ORANGE_PCT 1.0 /* from 1 % of requests failing: orange */
#define GR_ERR_RED_PCT 10.0   /* from 10 %: red */

enum gr_health { GR_GREEN = 0, GR_ORANGE, GR_RED, GR_IDLE };

enum gr_node_kind {
	GR_NODE_WORKLOAD = 0, /* has a sidecar: namespace/workload */
	GR_NODE_SERVICE,      /* a destination without a sidecar, named by its host */
	GR_NODE_UNKNOWN,      /* a caller without a sidecar */
};

enum gr_reporter { GR_REP_DESTINATION = 0, GR_REP_SOURCE };

struct gr_node {
	char name[GR_MAX_NAME];
	enum gr_node_kind kind;
	double in_rps, in_err_rps;   /* requests it received (edges ending here) */
	double out_rps, out_err_rps; /* requests it sent */
};

struct gr_edge {
	size_t src, dst;	   /* indexes into the node array */
	enum gr_reporter reporter; /* whose series this edge's figures come from */
	double rps;		   /* requests per second over the window */
	double err_rps;		   /* of which grpc_code != OK */
	double mtls_rps;	   /* of which connection_security_policy="mutual_tls" */
	double p99_s;		   /* NAN when Prometheus had no latency for it */
};

enum gr_model_err {
	GR_OK = 0,
	GR_EJSON = -1,	  /* not JSON, or not the shape of a query response */
	GR_EAPI = -2,	  /* Prometheus answered status "error" */
	GR_ETOOMANY = -3, /* more than GR_MAX_EDGES edges */
	GR_ENOMEM = -4,
};

struct gr_model;

struct gr_model *gr_model_new(void);	/* NULL on ENOMEM */
void gr_model_free(struct gr_model *m); /* NULL ok */

/*
 * The PromQL for the three queries, over window (a Prometheus duration such as "5m",
 * already validated by the caller) and restricted to calls from or to namespace ns when
 * ns is not NULL (a DNS label, validated by the caller). Writes a NUL-terminated query
 * into buf and returns 0, or -1 when bufsz is too small (buf then holds garbage).
 *   requests: rate of grpcguard_requests_total by reporter, the four workload labels,
 *             destination_service, grpc_code and connection_security_policy;
 *   p99:      histogram_quantile(0.99) of grpcguard_request_duration_seconds by the same
 *             labels less grpc_code and connection_security_policy.
 */
int gr_model_query_requests(const char *window, const char *ns, char *buf, size_t bufsz);
int gr_model_query_p99(const char *window, const char *ns, char *buf, size_t bufsz);

/*
 * Read one /api/v1/query response body (len bytes, need not be NUL-terminated) of the
 * requests query / of the p99 query into m. A p99 series adds latency to an edge the
 * requests query made (an edge's p99 is the highest of its series); a p99 series for no
 * known edge is ignored, so add requests first.
 * Returns GR_OK, or a gr_model_err with a one-line reason in err (errsz bytes, always
 * NUL-terminated): for GR_EAPI Prometheus' own "errorType: error". On failure m keeps
 * what earlier calls added and may hold part of this response's series.
 */
int gr_model_add_requests(struct gr_model *m, const char *body, size_t len, char *err,
			  size_t errsz);
int gr_model_add_p99(struct gr_model *m, const char *body, size_t len, char *err, size_t errsz);

/*
 * Settle the model for reading: pick each edge's reporter, drop edges without traffic
 * in the window, total the nodes and sort (edges by source then destination name, nodes
 * by name) so every output is in a stable order. Call once, after the last add.
 */
void gr_model_finish(struct gr_model *m);

/* Read access after gr_model_finish(); pointers are borrowed from m. */
size_t gr_model_nnodes(const struct gr_model *m);
size_t gr_model_nedges(const struct gr_model *m);
const struct gr_node *gr_model_node(const struct gr_model *m, size_t i);
const struct gr_edge *gr_model_edge(const struct gr_model *m, size_t i);

/* Error percentage (0..100) of rps requests of which err_rps failed; 0 when rps is 0. */
double gr_err_pct(double rps, double err_rps);
/* Colour class of a request rate and its error rate; GR_IDLE when rps is 0. */
enum gr_health gr_health_of(double rps, double err_rps);
/* A node's: of what it received, or of what it sent when it received nothing. */
enum gr_health gr_node_health(const struct gr_node *n);
/* "#RRGGBB" for a health class; "green", "orange", "red", "idle" for its name. */
const char *gr_health_color(enum gr_health h);
const char *gr_health_name(enum gr_health h);

#endif
