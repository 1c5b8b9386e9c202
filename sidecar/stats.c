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
	/* Label order matches label_values() below; du is rq less grpc_code. */
	static const char *const rq[] = {"reporter",
					 "source_workload",
					 "source_namespace",
					 "source_principal",
					 "destination_workload",
					 "destination_namespace",
					 "destination_principal",
					 "destination_service",
					 "grpc_service",
					 "grpc_method",
					 "connection_security_policy",
					 "grpc_code"};
	static const char *const pm[] = {"reason"};
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
				      "gRPC requests seen by the sidecar, by final status", 12, rq);
	s->duration = metrics_histogram(s->reg, "grpcguard_request_duration_seconds",
					"Time from request headers to the end of the response", 11,
					rq, metrics_latency_buckets, METRICS_LATENCY_NBUCKETS);
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
	g = metrics_counter(s->reg, "grpcguard_sidecar_upstream_retries_total",
			    "RPCs sent to the app again because it had not processed them "
			    "(above a GOAWAY's last-stream-id, REFUSED_STREAM, or never sent)",
			    0, NULL);
	s->upstream_retries = g ? metrics_series(g, NULL) : NULL;
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
	g = metrics_counter(
	    s->reg, "grpcguard_connections_refused_total",
	    "Connections refused: not HTTP/2 prior knowledge while passthrough is deny "
	    "(not_http2), plaintext under mtls STRICT (plaintext), or redirected to a "
	    "loopback original destination (loopback_dst) or to one that is not the pod's "
	    "own address (foreign_dst)",
	    1, li_reason);
	s->conns_refused_not_http2 = one(g, "not_http2");
	s->conns_refused_plaintext = one(g, "plaintext");
	s->loopback_dst_refused = one(g, "loopback_dst");
	s->foreign_dst_refused = one(g, "foreign_dst");
	g = metrics_counter(s->reg, "grpcguard_peer_metadata_invalid_total",
			    "Received x-grpcguard-peer headers that were ignored (the caller is "
			    "labelled unknown), by reason",
			    1, pm);
	s->peer_malformed = one(g, "malformed");
	s->peer_oversized = one(g, "oversized");
	s->peer_repeated = one(g, "repeated");
	s->peer_mismatch = one(g, "mismatch");
	g = metrics_counter(s->reg, "grpcguard_metrics_series_overflow_total",
			    "RPCs counted with the label value \"other\" because "
			    "grpcguard_requests_total or grpcguard_request_duration_seconds held "
			    "its series limit",
			    0, NULL);
	s->series_overflow = g ? metrics_series(g, NULL) : NULL;
	{
		static const char *const hl[] = {"direction", "result"};
		g = metrics_counter(
		    s->reg, "grpcguard_tls_handshakes_total",
		    "mTLS handshakes between sidecars by direction (inbound: we "
		    "terminate, outbound: we originate) and result (success, failure, "
		    "no_sidecar: the destination answered in plaintext)",
		    2, hl);
		const char *v[5][2] = {{"inbound", "success"},
				       {"inbound", "failure"},
				       {"outbound", "success"},
				       {"outbound", "failure"},
				       {"outbound", "no_sidecar"}};
		s->tls_in_ok = g ? metrics_series(g, v[0]) : NULL;
		s->tls_in_fail = g ? metrics_series(g, v[1]) : NULL;
		s->tls_out_ok = g ? metrics_series(g, v[2]) : NULL;
		s->tls_out_fail = g ? metrics_series(g, v[3]) : NULL;
		s->tls_out_plain = g ? metrics_series(g, v[4]) : NULL;
	}
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

/*
 * The cache key's hash, a word at a time: a per-RPC key is ~100 bytes, and a byte-wise
 * FNV-1a over it (one dependent multiply per byte) cost ~100 ns, more than the rest of
 * the accounting. Not for untrusted tables: a collision only costs a cache miss.
 */
static uint64_t key_hash(const char *p, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = 0xcbf29ce484222325ull ^ n, w;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * k;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, p, n);
	h = (h ^ w) * k;
	return h ^ (h >> 29);
}

/* Label values of one RPC, in the order of rq in sc_stats_init. */
struct rpc_vals {
	char svc[256], meth[256], dsvc[SC_PEER_SERVICE_MAX + 1];
	const char *v[12];
};

static void label_values(const struct sc_rpc_labels *l, struct rpc_vals *r)
{
	const struct sc_peer_id *src = l->reporter == SC_REPORTER_SOURCE ? l->self : l->peer;
	const struct sc_peer_id *dst = l->reporter == SC_REPORTER_SOURCE ? l->peer : l->self;
	const char *s, *m;
	size_t sl, ml;

	sc_grpc_split_path(l->path, l->path_len, &s, &sl, &m, &ml);
	if (sl >= sizeof(r->svc))
		sl = sizeof(r->svc) - 1;
	if (ml >= sizeof(r->meth))
		ml = sizeof(r->meth) - 1;
	memcpy(r->svc, s, sl);
	r->svc[sl] = '\0';
	memcpy(r->meth, m, ml);
	r->meth[ml] = '\0';
	sc_peer_service_from_authority(l->authority, l->authority_len, r->dsvc, sizeof(r->dsvc));
	r->v[0] = l->reporter == SC_REPORTER_SOURCE ? "source" : "destination";
	r->v[1] = src ? src->workload : SC_PEER_UNKNOWN;
	r->v[2] = src ? src->ns : SC_PEER_UNKNOWN;
	r->v[3] = l->source_principal ? l->source_principal : SC_PEER_UNKNOWN;
	r->v[4] = dst ? dst->workload : SC_PEER_UNKNOWN;
	r->v[5] = dst ? dst->ns : SC_PEER_UNKNOWN;
	r->v[6] = l->destination_principal ? l->destination_principal : SC_PEER_UNKNOWN;
	r->v[7] = r->dsvc;
	r->v[8] = r->svc;
	r->v[9] = r->meth;
	r->v[10] = l->mtls ? "mutual_tls" : "none";
	r->v[11] = NULL;
}

/* Every label but reporter (and grpc_code in v[11]) becomes "other". */
static void fold(const char **v)
{
	for (int i = 1; i <= 10; i++)
		v[i] = SC_STATS_OTHER;
}

/*
 * Resolve e's series for code. An entry is all normal or all folded: when either family
 * is full for these labels, the entry switches to the folded series of both.
 */
static void resolve(struct sc_mcache_ent *e, const struct sc_rpc_labels *l, int code)
{
	const size_t normal = SC_STATS_MAX_SERIES - SC_STATS_FOLD_RESERVE;
	struct rpc_vals r;

	label_values(l, &r);
	r.v[11] = policy_grpc_status_name(code);
	if (!e->folded) {
		struct metrics_series *d =
		    e->dur ? e->dur : metrics_series_bounded(sc_stats.duration, r.v, normal);
		struct metrics_series *c = metrics_series_bounded(sc_stats.requests, r.v, normal);
		if (d && c) {
			e->dur = d;
			e->codes[code] = c;
			return;
		}
		e->folded = true;
		e->dur = NULL;
		memset(e->codes, 0, sizeof(e->codes));
	}
	fold(r.v);
	if (!e->dur)
		e->dur = metrics_series_bounded(sc_stats.duration, r.v, SC_STATS_MAX_SERIES);
	e->codes[code] = metrics_series_bounded(sc_stats.requests, r.v, SC_STATS_MAX_SERIES);
}

static void put_key(char *k, size_t *n, const char *s, size_t len, bool *fits)
{
	if (!*fits || *n + len + 1 > SC_MCACHE_KEY) {
		*fits = false;
		return;
	}
	memcpy(k + *n, s, len);
	*n += len;
	k[(*n)++] = '\0';
}

/*
 * The cache key: every input that decides the label values, as received (the labels are
 * a pure function of it). Returns its length, or 0 when it does not fit a cache entry.
 */
static size_t cache_key(const struct sc_rpc_labels *l, char *k)
{
	size_t n = 0;
	bool fits = true;

	k[n++] = (char)('0' + l->reporter);
	put_key(k, &n, l->self ? l->self->ns : "", l->self ? strlen(l->self->ns) : 0, &fits);
	put_key(k, &n, l->self ? l->self->workload : "", l->self ? strlen(l->self->workload) : 0,
		&fits);
	put_key(k, &n, l->peer ? l->peer->ns : "", l->peer ? strlen(l->peer->ns) : 0, &fits);
	put_key(k, &n, l->peer ? l->peer->workload : "", l->peer ? strlen(l->peer->workload) : 0,
		&fits);
	put_key(k, &n, l->authority ? l->authority : "", l->authority ? l->authority_len : 0,
		&fits);
	put_key(k, &n, l->path, l->path_len, &fits);
	put_key(k, &n, l->source_principal ? l->source_principal : "",
		l->source_principal ? strlen(l->source_principal) : 0, &fits);
	put_key(k, &n, l->destination_principal ? l->destination_principal : "",
		l->destination_principal ? strlen(l->destination_principal) : 0, &fits);
	put_key(k, &n, l->mtls ? "m" : "", l->mtls ? 1 : 0, &fits);
	return fits ? n : 0;
}

void sc_stats_rpc_done(struct sc_mcache *mc, const struct sc_rpc_labels *l, int code,
		       double seconds)
{
	char key[SC_MCACHE_KEY];
	struct sc_mcache_ent *e, tmp;
	size_t klen;
	uint64_t h;

	if (code < 0 || code > 16)
		code = 2; /* UNKNOWN */
	klen = mc ? cache_key(l, key) : 0;
	if (klen) {
		h = key_hash(key, klen);
		e = &mc->e[h % SC_MCACHE_SLOTS];
		if (e->hash != h || e->klen != klen || memcmp(e->key, key, klen) != 0) {
			e->folded = false;
			e->dur = NULL;
			memset(e->codes, 0, sizeof(e->codes));
			e->hash = h;
			e->klen = (unsigned)klen;
			memcpy(e->key, key, klen);
		}
	} else {
		memset(&tmp, 0, sizeof(tmp));
		e = &tmp;
	}
	if (!e->dur || !e->codes[code])
		resolve(e, l, code);
	if (e->folded)
		metrics_inc(sc_stats.series_overflow);
	metrics_inc(e->codes[code]);
	metrics_observe(e->dur, seconds);
}

void sc_stats_peer_invalid(int err)
{
	switch (err) {
	case SC_PEER_E_OVERSIZED:
		metrics_inc(sc_stats.peer_oversized);
		break;
	case SC_PEER_E_REPEATED:
		metrics_inc(sc_stats.peer_repeated);
		break;
	case SC_PEER_E_MISMATCH:
		metrics_inc(sc_stats.peer_mismatch);
		break;
	case SC_PEER_OK:
		break;
	default:
		metrics_inc(sc_stats.peer_malformed);
	}
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
