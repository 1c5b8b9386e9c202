/*
 * Metrics registration and the per-worker RPC series cache; see stats.h.
 */
#include "sidecar/stats.h"

#include <errno.h>
#include <string.h>

#include "policy/policy.h"
#include "sidecar/grpcwire.h"

struct sc_stats sc_stats;

static struct metrics_series *one(struct metrics_family *f, const char *v)
{
	const char *vals[1] = {v};
	return f ? metrics_series(f, vals) : NULL;
}

int sc_stats_init(void)
{
	static const char *const rq[] = {"grpc_service", "grpc_method", "grpc_code"};
	static const char *const du[] = {"grpc_service", "grpc_method"};
	static const char *const fa[] = {"type", "fault"};
	static const char *const de[] = {"policy"};
	static const char *const re[] = {"result"};
	static const char *const li[] = {"limit"};
	static const char *const li_reason[] = {"reason"};
	struct sc_stats *s = &sc_stats;
	struct metrics_family *g;

	memset(s, 0, sizeof(*s));
	s->reg = metrics_registry_new();
	if (!s->reg)
		return -ENOMEM;
	s->requests = metrics_counter(s->reg, "grpcguard_requests_total",
				      "gRPC requests seen by the sidecar, by final status", 3, rq);
	s->duration = metrics_histogram(s->reg, "grpcguard_request_duration_seconds",
					"Time from request headers to the end of the response", 2,
					du, metrics_latency_buckets, METRICS_LATENCY_NBUCKETS);
	s->faults =
	    metrics_counter(s->reg, "grpcguard_faults_injected_total",
			    "Faults injected (type delay or abort), by fault entry name", 2, fa);
	s->denied = metrics_counter(s->reg, "grpcguard_authz_denied_total",
				    "RPCs denied by authorization, by deciding policy", 1, de);
	s->reloads = metrics_counter(s->reg, "grpcguard_policy_reloads_total",
				     "Policy (and pod labels) reloads by result", 1, re);
	s->limits = metrics_counter(s->reg, "grpcguard_sidecar_limit_rejections_total",
				    "Connections or RPCs refused because a limit was hit", 1, li);
	g = metrics_gauge(s->reg, "grpcguard_sidecar_active_connections",
			  "Open downstream connections", 0, NULL);
	s->active_conns = g ? metrics_series(g, NULL) : NULL;
	g = metrics_gauge(s->reg, "grpcguard_sidecar_active_streams", "RPCs in flight", 0, NULL);
	s->active_streams = g ? metrics_series(g, NULL) : NULL;
	g = metrics_gauge(s->reg, "grpcguard_sidecar_delayed_streams",
			  "RPCs currently held by a delay fault", 0, NULL);
	s->delayed_streams = g ? metrics_series(g, NULL) : NULL;
	g = metrics_counter(s->reg, "grpcguard_authn_failed_total",
			    "RPCs rejected because a JWT failed verification", 0, NULL);
	s->authn_failed = g ? metrics_series(g, NULL) : NULL;
	g = metrics_counter(s->reg, "grpcguard_sidecar_upstream_connect_failures_total",
			    "Failed connection attempts to the app", 0, NULL);
	s->upstream_connect_failed = g ? metrics_series(g, NULL) : NULL;
	g = metrics_counter(s->reg, "grpcguard_sidecar_passthrough_connections_total",
			    "Connections that did not speak HTTP/2 and were passed through as TCP",
			    0, NULL);
	s->passthrough_conns = g ? metrics_series(g, NULL) : NULL;
	g = metrics_counter(s->reg, "grpcguard_requests_refused_total",
			    "Requests refused before the policy because they are not in gRPC form "
			    "(reason path, method, scheme or authority; pods an authorization "
			    "entry selects)",
			    1, li_reason);
	s->refused_path = one(g, "path");
	s->refused_method = one(g, "method");
	s->refused_scheme = one(g, "scheme");
	s->refused_authority = one(g, "authority");
	g = metrics_counter(s->reg, "grpcguard_connections_refused_total",
			    "Connections refused because they are not HTTP/2 prior knowledge and "
			    "passthrough is deny",
			    1, li_reason);
	s->conns_refused_not_http2 = one(g, "not_http2");
	s->reload_ok = one(s->reloads, "success");
	s->reload_fail = one(s->reloads, "failure");
	s->lim_conns = one(s->limits, "max_connections");
	s->lim_delayed = one(s->limits, "max_delayed");
	s->lim_headers = one(s->limits, "max_header_list_bytes");
	s->lim_flood = one(s->limits, "flood");
	s->lim_rapid_reset = one(s->limits, "rapid_reset");
	if (!s->requests || !s->duration || !s->faults || !s->denied || !s->reloads || !s->limits)
		return -ENOMEM;
	return 0;
}

void sc_stats_free(void)
{
	metrics_registry_free(sc_stats.reg);
	memset(&sc_stats, 0, sizeof(sc_stats));
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

static void labels_for(const char *path, size_t plen, char *svc, size_t svcsz, char *meth,
		       size_t methsz)
{
	const char *s, *m;
	size_t sl, ml;

	sc_grpc_split_path(path, plen, &s, &sl, &m, &ml);
	if (sl >= svcsz)
		sl = svcsz - 1;
	if (ml >= methsz)
		ml = methsz - 1;
	memcpy(svc, s, sl);
	svc[sl] = '\0';
	memcpy(meth, m, ml);
	meth[ml] = '\0';
}

void sc_stats_rpc_done(struct sc_mcache *mc, const char *path, size_t plen, int code,
		       double seconds)
{
	char svc[256], meth[256];
	const char *vals[3] = {svc, meth, NULL};
	struct sc_mcache_ent *e = NULL, tmp;
	uint64_t h;

	if (code < 0 || code > 16)
		code = 2; /* UNKNOWN */
	h = fnv1a(path, plen);
	if (mc && plen < SC_MCACHE_PATH) {
		e = &mc->e[h % SC_MCACHE_SLOTS];
		if (e->hash != h || e->plen != plen || memcmp(e->path, path, plen) != 0) {
			memset(e, 0, sizeof(*e));
			e->hash = h;
			e->plen = (unsigned)plen;
			memcpy(e->path, path, plen);
		}
	} else {
		memset(&tmp, 0, sizeof(tmp));
		e = &tmp;
	}
	if (!e->dur || !e->codes[code]) {
		labels_for(path, plen, svc, sizeof(svc), meth, sizeof(meth));
		if (!e->dur)
			e->dur = metrics_series(sc_stats.duration, vals);
		if (!e->codes[code]) {
			vals[2] = policy_grpc_status_name(code);
			e->codes[code] = metrics_series(sc_stats.requests, vals);
		}
	}
	metrics_inc(e->codes[code]);
	metrics_observe(e->dur, seconds);
}

void sc_stats_fault(const char *type, const char *fault)
{
	const char *vals[2] = {type, fault ? fault : ""};
	metrics_inc(metrics_series(sc_stats.faults, vals));
}

void sc_stats_denied(const char *policy)
{
	metrics_inc(one(sc_stats.denied, policy ? policy : "(no ALLOW matched)"));
}
