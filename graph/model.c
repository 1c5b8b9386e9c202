/*
 * The service graph's model: Prometheus query responses in, nodes and edges out. See
 * model.h for which series make an edge and how nodes are named. Pure: no I/O, no
 * logging; every label value from a response is copied bounded and made printable before
 * it names a node, since it comes from a peer's identity header via the sidecars.
 */
#include "graph/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define NODE_SLOTS 8192 /* > 2 * GR_MAX_EDGES: open addressing stays sparse */
#define EDGE_SLOTS 4096 /* > GR_MAX_EDGES */

struct acc {
	bool seen;
	double rps, err_rps, mtls_rps, p99_s;
};

struct medge {
	size_t src, dst;
	struct acc rep[2]; /* by enum gr_reporter */
};

struct gr_model {
	struct gr_node *nodes;
	size_t nnodes;
	struct medge *medges;
	size_t nmedges;
	struct gr_edge *edges; /* after finish */
	size_t nedges;
	uint32_t node_slot[NODE_SLOTS]; /* node index + 1, 0 = empty */
	uint32_t edge_slot[EDGE_SLOTS]; /* medge index + 1 */
};

struct gr_model *gr_model_new(void)
{
	struct gr_model *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->nodes = calloc(2 * GR_MAX_EDGES, sizeof(*m->nodes));
	m->medges = calloc(GR_MAX_EDGES, sizeof(*m->medges));
	if (!m->nodes || !m->medges) {
		gr_model_free(m);
		return NULL;
	}
	return m;
}

void gr_model_free(struct gr_model *m)
{
	if (!m)
		return;
	free(m->nodes);
	free(m->medges);
	free(m->edges);
	free(m);
}

/* ---- queries ------------------------------------------------------------------------- */

#define LABELS                                                                                     \
	"reporter, source_workload, source_namespace, destination_workload, "                      \
	"destination_namespace, destination_service"

/*
 * "<head>sum by (<by>) (rate(<metric>{<sel>}[<window>]))<tail>", and with ns the same
 * sum once for each side of the call joined by "or" (the two have the same labels, so a
 * call inside ns is counted once).
 */
static int build(char *buf, size_t bufsz, const char *head, const char *by, const char *metric,
		 const char *window, const char *ns, const char *tail)
{
	int n;

	if (!ns)
		n = snprintf(buf, bufsz, "%ssum by (%s) (rate(%s[%s]))%s", head, by, metric, window,
			     tail);
	else
		n = snprintf(buf, bufsz,
			     "%ssum by (%s) (rate(%s{source_namespace=\"%s\"}[%s])) or "
			     "sum by (%s) (rate(%s{destination_namespace=\"%s\"}[%s]))%s",
			     head, by, metric, ns, window, by, metric, ns, window, tail);
	return n < 0 || (size_t)n >= bufsz ? -1 : 0;
}

int gr_model_query_requests(const char *window, const char *ns, char *buf, size_t bufsz)
{
	return build(buf, bufsz, "", LABELS ", grpc_code, connection_security_policy",
		     "grpcguard_requests_total", window, ns, "");
}

int gr_model_query_p99(const char *window, const char *ns, char *buf, size_t bufsz)
{
	return build(buf, bufsz, "histogram_quantile(0.99, ", "le, " LABELS,
		     "grpcguard_request_duration_seconds_bucket", window, ns, ")");
}

/* ---- reading responses --------------------------------------------------------------- */

static void seterr(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!errsz)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

/*
 * A label value made safe to name a node: at most dstsz - 1 bytes, every byte outside
 * printable ASCII (controls, quotes are fine: renderers escape them) replaced by '?'.
 * An absent or empty value reads as "unknown", as the sidecars write it.
 */
static void label(json_t *metric, const char *key, char *dst, size_t dstsz)
{
	const char *v = json_string_value(json_object_get(metric, key));
	size_t i;

	if (!v || !*v)
		v = "unknown";
	for (i = 0; v[i] && i + 1 < dstsz; i++) {
		unsigned char c = (unsigned char)v[i];
		dst[i] = c > 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[i] = '\0';
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* The node called name: its index, or -1 (and *slot where it would go). */
static long node_find(const struct gr_model *m, const char *name, size_t *slot)
{
	size_t i = fnv1a(name) % NODE_SLOTS;

	for (;; i = (i + 1) % NODE_SLOTS) {
		uint32_t v = m->node_slot[i];
		if (!v) {
			*slot = i;
			return -1;
		}
		if (strcmp(m->nodes[v - 1].name, name) == 0)
			return (long)(v - 1);
	}
}

static long edge_find(const struct gr_model *m, size_t src, size_t dst, size_t *slot)
{
	size_t i = (src * 2654435761u + dst) % EDGE_SLOTS;

	for (;; i = (i + 1) % EDGE_SLOTS) {
		uint32_t v = m->edge_slot[i];
		if (!v) {
			*slot = i;
			return -1;
		}
		if (m->medges[v - 1].src == src && m->medges[v - 1].dst == dst)
			return (long)(v - 1);
	}
}

struct key {
	enum gr_reporter rep;
	char src[GR_MAX_NAME], dst[GR_MAX_NAME];
	enum gr_node_kind src_kind, dst_kind;
};

/* The edge a series belongs to, from its labels. -1 when its reporter is neither side. */
static int key_of(json_t *metric, struct key *k)
{
	char rep[16], wl[GR_MAX_NAME], ns[GR_MAX_NAME];

	label(metric, "reporter", rep, sizeof(rep));
	if (strcmp(rep, "destination") == 0)
		k->rep = GR_REP_DESTINATION;
	else if (strcmp(rep, "source") == 0)
		k->rep = GR_REP_SOURCE;
	else
		return -1;

	label(metric, "source_workload", wl, sizeof(wl));
	label(metric, "source_namespace", ns, sizeof(ns));
	if (strcmp(wl, "unknown") == 0) {
		snprintf(k->src, sizeof(k->src), "unknown");
		k->src_kind = GR_NODE_UNKNOWN;
	} else {
		snprintf(k->src, sizeof(k->src), "%.126s/%.126s", ns, wl);
		k->src_kind = GR_NODE_WORKLOAD;
	}

	label(metric, "destination_workload", wl, sizeof(wl));
	label(metric, "destination_namespace", ns, sizeof(ns));
	if (strcmp(wl, "unknown") != 0) {
		snprintf(k->dst, sizeof(k->dst), "%.126s/%.126s", ns, wl);
		k->dst_kind = GR_NODE_WORKLOAD;
		return 0;
	}
	label(metric, "destination_service", k->dst, sizeof(k->dst));
	k->dst_kind = strcmp(k->dst, "unknown") == 0 ? GR_NODE_UNKNOWN : GR_NODE_SERVICE;
	return 0;
}

static long node_get(struct gr_model *m, const char *name, enum gr_node_kind kind)
{
	size_t slot;
	long i = node_find(m, name, &slot);

	if (i >= 0)
		return i;
	/* Two new nodes per edge at most, and edges are bounded before nodes are added. */
	if (m->nnodes >= 2 * GR_MAX_EDGES)
		return -1;
	snprintf(m->nodes[m->nnodes].name, GR_MAX_NAME, "%s", name);
	m->nodes[m->nnodes].kind = kind;
	m->node_slot[slot] = (uint32_t)(m->nnodes + 1);
	return (long)m->nnodes++;
}

/* The edge for k, created when create is set. NULL when absent, or too many. */
static struct medge *edge_get(struct gr_model *m, const struct key *k, bool create)
{
	size_t slot;
	long s, d, e;

	if (!create) {
		if ((s = node_find(m, k->src, &slot)) < 0 || (d = node_find(m, k->dst, &slot)) < 0)
			return NULL;
		e = edge_find(m, (size_t)s, (size_t)d, &slot);
		return e < 0 ? NULL : &m->medges[e];
	}
	if (m->nmedges >= GR_MAX_EDGES) {
		/* Full: only an existing edge may still be found. */
		return edge_get(m, k, false);
	}
	if ((s = node_get(m, k->src, k->src_kind)) < 0 ||
	    (d = node_get(m, k->dst, k->dst_kind)) < 0)
		return NULL;
	e = edge_find(m, (size_t)s, (size_t)d, &slot);
	if (e >= 0)
		return &m->medges[e];
	m->medges[m->nmedges] = (struct medge){.src = (size_t)s, .dst = (size_t)d};
	for (int r = 0; r < 2; r++)
		m->medges[m->nmedges].rep[r].p99_s = NAN;
	m->edge_slot[slot] = (uint32_t)(m->nmedges + 1);
	return &m->medges[m->nmedges++];
}

/* A sample's value: Prometheus sends [<unix time>, "<float>"], the float as a string
 * that may be "NaN", "+Inf" or "-Inf". 0 and *out, or -1. */
static int sample_value(json_t *value, double *out)
{
	const char *s;
	char *end;
	double v;

	if (!json_is_array(value) || json_array_size(value) != 2 ||
	    !json_is_number(json_array_get(value, 0)))
		return -1;
	s = json_string_value(json_array_get(value, 1));
	/* strtod() would skip leading space and read hex; Prometheus writes neither. */
	if (!s || !*s || strspn(s, "0123456789+-.eEINanf") != strlen(s))
		return -1;
	v = strtod(s, &end);
	if (*end)
		return -1;
	*out = v;
	return 0;
}

/*
 * The "result" array of a vector response, borrowed from root, or NULL with err set and
 * *rc the gr_model_err to return.
 */
static json_t *vector_of(json_t *root, int *rc, char *err, size_t errsz)
{
	const char *status = json_string_value(json_object_get(root, "status"));
	json_t *data, *result;
	const char *type;

	*rc = GR_EJSON;
	if (!json_is_object(root) || !status) {
		seterr(err, errsz, "the response is not a Prometheus API answer (no \"status\")");
		return NULL;
	}
	if (strcmp(status, "success") != 0) {
		const char *et = json_string_value(json_object_get(root, "errorType"));
		const char *msg = json_string_value(json_object_get(root, "error"));
		if (strcmp(status, "error") == 0) {
			*rc = GR_EAPI;
			seterr(err, errsz, "%s: %s", et ? et : "error", msg ? msg : "(no message)");
		} else {
			seterr(err, errsz, "unexpected status \"%.40s\"", status);
		}
		return NULL;
	}
	data = json_object_get(root, "data");
	type = json_string_value(json_object_get(data, "resultType"));
	result = json_object_get(data, "result");
	if (!type || strcmp(type, "vector") != 0 || !json_is_array(result)) {
		seterr(err, errsz,
		       "expected data.resultType \"vector\" with a result array, found "
		       "\"%.40s\"",
		       type ? type : "(none)");
		return NULL;
	}
	*rc = GR_OK;
	return result;
}

typedef int (*series_cb)(struct gr_model *m, json_t *metric, double v, char *err, size_t errsz);

static int each_series(struct gr_model *m, const char *body, size_t len, series_cb cb, char *err,
		       size_t errsz)
{
	json_error_t jerr;
	json_t *root = NULL, *result, *s;
	size_t i;
	int rc;

	seterr(err, errsz, "%s", "");
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		seterr(err, errsz, "the response is not JSON (line %d column %d: %s)", jerr.line,
		       jerr.column, jerr.text);
		rc = GR_EJSON;
		goto out;
	}
	if (!(result = vector_of(root, &rc, err, errsz)))
		goto out;
	json_array_foreach(result, i, s)
	{
		json_t *metric = json_object_get(s, "metric");
		double v;

		if (!json_is_object(metric) || sample_value(json_object_get(s, "value"), &v)) {
			seterr(err, errsz,
			       "result[%zu]: expected {\"metric\": {...}, \"value\": "
			       "[<time>, \"<number>\"]}",
			       i);
			rc = GR_EJSON;
			goto out;
		}
		if ((rc = cb(m, metric, v, err, errsz)) != GR_OK)
			goto out;
	}
	rc = GR_OK;
out:
	json_decref(root);
	return rc;
}

static int add_request(struct gr_model *m, json_t *metric, double v, char *err, size_t errsz)
{
	struct key k;
	struct medge *e;
	struct acc *a;
	const char *code, *sec;

	/* A rate is positive and finite, and a billion requests a second is no rate: past
	 * that it carries no traffic, so that sums stay finite too. */
	if (key_of(metric, &k) || !isfinite(v) || v <= 0 || v > 1e9)
		return GR_OK;
	if (!(e = edge_get(m, &k, true))) {
		seterr(err, errsz, "more than %d edges: narrow the graph with --namespace",
		       GR_MAX_EDGES);
		return GR_ETOOMANY;
	}
	a = &e->rep[k.rep];
	a->seen = true;
	a->rps += v;
	code = json_string_value(json_object_get(metric, "grpc_code"));
	if (!code || strcmp(code, "OK") != 0)
		a->err_rps += v;
	sec = json_string_value(json_object_get(metric, "connection_security_policy"));
	if (sec && strcmp(sec, "mutual_tls") == 0)
		a->mtls_rps += v;
	return GR_OK;
}

static int add_p99(struct gr_model *m, json_t *metric, double v, char *err, size_t errsz)
{
	struct key k;
	struct medge *e;
	struct acc *a;

	(void)err;
	(void)errsz;
	if (key_of(metric, &k) || isnan(v) || v < 0 || !(e = edge_get(m, &k, false)))
		return GR_OK;
	a = &e->rep[k.rep];
	if (isnan(a->p99_s) || v > a->p99_s)
		a->p99_s = v;
	return GR_OK;
}

int gr_model_add_requests(struct gr_model *m, const char *body, size_t len, char *err, size_t errsz)
{
	return each_series(m, body, len, add_request, err, errsz);
}

int gr_model_add_p99(struct gr_model *m, const char *body, size_t len, char *err, size_t errsz)
{
	return each_series(m, body, len, add_p99, err, errsz);
}

/* ---- finishing ----------------------------------------------------------------------- */

static int cmp_edge(const void *a, const void *b, void *nodes_)
{
	const struct gr_edge *x = a, *y = b;
	const struct gr_node *nodes = nodes_;
	int c = strcmp(nodes[x->src].name, nodes[y->src].name);

	return c ? c : strcmp(nodes[x->dst].name, nodes[y->dst].name);
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct gr_node *)a)->name, ((const struct gr_node *)b)->name);
}

void gr_model_finish(struct gr_model *m)
{
	size_t *map = NULL, n = 0;
	struct gr_node *used = NULL;

	free(m->edges);
	m->nedges = 0;
	m->edges = calloc(m->nmedges ? m->nmedges : 1, sizeof(*m->edges));
	map = calloc(m->nnodes ? m->nnodes : 1, sizeof(*map));
	used = calloc(m->nnodes ? m->nnodes : 1, sizeof(*used));
	if (!m->edges || !map || !used)
		goto out; /* an empty graph: the caller reports "no edges" */

	for (size_t i = 0; i < m->nmedges; i++) {
		const struct medge *me = &m->medges[i];
		enum gr_reporter r =
		    me->rep[GR_REP_DESTINATION].rps > 0 ? GR_REP_DESTINATION : GR_REP_SOURCE;
		const struct acc *a = &me->rep[r];

		if (!(a->rps > 0))
			continue;
		m->edges[m->nedges++] = (struct gr_edge){.src = me->src,
							 .dst = me->dst,
							 .reporter = r,
							 .rps = a->rps,
							 .err_rps = a->err_rps,
							 .mtls_rps = a->mtls_rps,
							 .p99_s = a->p99_s};
	}
	/* Keep only the nodes some edge touches; map old index -> new + 1. */
	for (size_t i = 0; i < m->nedges; i++) {
		size_t ends[2] = {m->edges[i].src, m->edges[i].dst};
		for (int j = 0; j < 2; j++)
			if (!map[ends[j]]) {
				used[n] = m->nodes[ends[j]];
				used[n].in_rps = used[n].in_err_rps = 0;
				used[n].out_rps = used[n].out_err_rps = 0;
				map[ends[j]] = ++n;
			}
	}
	qsort(used, n, sizeof(*used), cmp_node);
	/* Names are unique: find each node's sorted place by name. */
	for (size_t i = 0; i < m->nnodes; i++) {
		if (!map[i])
			continue;
		const struct gr_node *p = bsearch(&m->nodes[i], used, n, sizeof(*used), cmp_node);
		map[i] = (size_t)(p - used);
	}
	for (size_t i = 0; i < m->nedges; i++) {
		struct gr_edge *e = &m->edges[i];
		e->src = map[e->src];
		e->dst = map[e->dst];
		used[e->src].out_rps += e->rps;
		used[e->src].out_err_rps += e->err_rps;
		used[e->dst].in_rps += e->rps;
		used[e->dst].in_err_rps += e->err_rps;
	}
	memcpy(m->nodes, used, n * sizeof(*used));
	m->nnodes = n;
	m->nmedges = 0; /* the hash slots now point at stale entries: no more adds */
	memset(m->node_slot, 0, sizeof(m->node_slot));
	memset(m->edge_slot, 0, sizeof(m->edge_slot));
	qsort_r(m->edges, m->nedges, sizeof(*m->edges), cmp_edge, m->nodes);
out:
	if (!map || !used) {
		m->nedges = 0;
		m->nnodes = 0;
	}
	free(map);
	free(used);
}

size_t gr_model_nnodes(const struct gr_model *m)
{
	return m->nnodes;
}

size_t gr_model_nedges(const struct gr_model *m)
{
	return m->edges ? m->nedges : 0;
}

const struct gr_node *gr_model_node(const struct gr_model *m, size_t i)
{
	return i < m->nnodes ? &m->nodes[i] : NULL;
}

const struct gr_edge *gr_model_edge(const struct gr_model *m, size_t i)
{
	return m->edges && i < m->nedges ? &m->edges[i] : NULL;
}

/* ---- health -------------------------------------------------------------------------- */

double gr_err_pct(double rps, double err_rps)
{
	return rps > 0 ? 100.0 * err_rps / rps : 0.0;
}

enum gr_health gr_health_of(double rps, double err_rps)
{
	double pct;

	if (!(rps > 0))
		return GR_IDLE;
	pct = gr_err_pct(rps, err_rps);
	return pct >= GR_ERR_RED_PCT ? GR_RED : pct >= GR_ERR_ORANGE_PCT ? GR_ORANGE : GR_GREEN;
}

enum gr_health gr_node_health(const struct gr_node *n)
{
	return n->in_rps > 0 ? gr_health_of(n->in_rps, n->in_err_rps)
			     : gr_health_of(n->out_rps, n->out_err_rps);
}

const char *gr_health_color(enum gr_health h)
{
	switch (h) {
	case GR_GREEN:
		return "#2e7d32";
	case GR_ORANGE:
		return "#ef6c00";
	case GR_RED:
		return "#c62828";
	case GR_IDLE:
		break;
	}
	return "#9e9e9e";
}

const char *gr_health_name(enum gr_health h)
{
	switch (h) {
	case GR_GREEN:
		return "green";
	case GR_ORANGE:
		return "orange";
	case GR_RED:
		return "red";
	case GR_IDLE:
		break;
	}
	return "idle";
}
