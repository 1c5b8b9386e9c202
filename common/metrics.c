/*
 * Prometheus registry. See metrics.h.
 *
 * Values are stored as IEEE doubles in _Atomic uint64_t cells and updated with
 * compare-and-swap, so concurrent updates never take a lock. Histogram buckets are kept
 * non-cumulative (one increment per observation) and cumulated at render time.
 */
#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum family_type { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM };

struct metrics_series {
	struct metrics_series *next;  /* the family's list, creation order */
	struct metrics_series *hnext; /* the family's hash bucket */
	uint64_t hash;		      /* of the label values */
	struct metrics_family *family;
	char **label_values;
	_Atomic uint64_t value;	   /* double bits: counter/gauge value, histogram sum */
	_Atomic uint64_t count;	   /* histogram observations */
	_Atomic uint64_t *buckets; /* histogram, nbuckets + 1 (+Inf) */
};

struct metrics_family {
	struct metrics_family *next;
	struct metrics_registry *registry;
	enum family_type type;
	char *name;
	char *help;
	size_t nlabels;
	char **label_names;
	double *bounds;
	size_t nbounds;
	pthread_mutex_t lock;
	struct metrics_series *series; /* creation order; published under lock */
	size_t nseries;
	/*
	 * Hash index over series (power-of-two buckets, grown to keep chains short): a
	 * lookup that misses a caller's cache costs one chain walk, not a scan of every
	 * series (thousands, with per-RPC labels a client partly chooses). NULL: scan.
	 */
	struct metrics_series **tab;
	size_t tabsize;
	struct metrics_series **tail; /* &last->next, NULL while empty */
};

struct metrics_registry {
	pthread_mutex_t lock;
	struct metrics_family *families; /* registration order */
};

const double metrics_latency_buckets[METRICS_LATENCY_NBUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30};

static uint64_t d2u(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static double u2d(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

static void atomic_add_double(_Atomic uint64_t *cell, double v)
{
	uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(cell, &old, d2u(u2d(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static char **dup_strv(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(*out));
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i] ? v[i] : "");
		if (!out[i]) {
			free_strv(out, n);
			return NULL;
		}
	}
	return out;
}

static void series_free(struct metrics_series *s, size_t nlabels)
{
	if (!s)
		return;
	free_strv(s->label_values, nlabels);
	free(s->buckets);
	free(s);
}

static void family_free(struct metrics_family *f)
{
	struct metrics_series *s, *next;

	if (!f)
		return;
	for (s = f->series; s; s = next) {
		next = s->next;
		series_free(s, f->nlabels);
	}
	pthread_mutex_destroy(&f->lock);
	free(f->tab);
	free(f->name);
	free(f->help);
	free_strv(f->label_names, f->nlabels);
	free(f->bounds);
	free(f);
}

struct metrics_registry *metrics_registry_new(void)
{
	struct metrics_registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void metrics_registry_free(struct metrics_registry *r)
{
	struct metrics_family *f, *next;

	if (!r)
		return;
	for (f = r->families; f; f = next) {
		next = f->next;
		family_free(f);
	}
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct metrics_family *family_add(struct metrics_registry *r, enum family_type type,
					 const char *name, const char *help, size_t nlabels,
					 const char *const *label_names, const double *bounds,
					 size_t nbounds)
{
	struct metrics_family *f = NULL, **tail;

	pthread_mutex_lock(&r->lock);
	for (tail = &r->families; *tail; tail = &(*tail)->next) {
		if (strcmp((*tail)->name, name) == 0)
			goto fail;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		goto fail;
	pthread_mutex_init(&f->lock, NULL);
	f->registry = r;
	f->type = type;
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	f->nlabels = nlabels;
	f->label_names = dup_strv(label_names, nlabels);
	if (nbounds) {
		f->bounds = malloc(nbounds * sizeof(*bounds));
		if (f->bounds)
			memcpy(f->bounds, bounds, nbounds * sizeof(*bounds));
		f->nbounds = nbounds;
	}
	if (!f->name || !f->help || !f->label_names || (nbounds && !f->bounds)) {
		family_free(f);
		f = NULL;
		goto fail;
	}
	*tail = f;
fail:
	pthread_mutex_unlock(&r->lock);
	return f;
}

struct metrics_family *metrics_counter(struct metrics_registry *r, const char *name,
				       const char *help, size_t nlabels,
				       const char *const *label_names)
{
	return family_add(r, FAM_COUNTER, name, help, nlabels, label_names, NULL, 0);
}

struct metrics_family *metrics_gauge(struct metrics_registry *r, const char *name, const char *help,
				     size_t nlabels, const char *const *label_names)
{
	return family_add(r, FAM_GAUGE, name, help, nlabels, label_names, NULL, 0);
}

struct metrics_family *metrics_histogram(struct metrics_registry *r, const char *name,
					 const char *help, size_t nlabels,
					 const char *const *label_names, const double *buckets,
					 size_t nbuckets)
{
	return family_add(r, FAM_HISTOGRAM, name, help, nlabels, label_names, buckets, nbuckets);
}

static bool labels_equal(const struct metrics_series *s, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s->label_values[i], values[i] ? values[i] : "") != 0)
			return false;
	}
	return true;
}

static uint64_t labels_hash(const char *const *values, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		for (const char *p = values[i] ? values[i] : ""; *p; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
		h = (h ^ 0xff) * 0x100000001b3ull; /* separator: ("ab","") != ("a","b") */
	}
	return h;
}

/*
 * Rebuild the index from the list with room for `want` series at about one per bucket.
 * Returns false (the old index kept) when it is big enough already or on ENOMEM.
 */
static bool index_grow(struct metrics_family *f, size_t want)
{
	size_t size = f->tabsize ? f->tabsize : 64;
	struct metrics_series **tab, *s;

	while (size < want)
		size *= 2;
	if (size == f->tabsize)
		return false;
	tab = calloc(size, sizeof(*tab));
	if (!tab)
		return false;
	for (s = f->series; s; s = s->next) {
		s->hnext = tab[s->hash & (size - 1)];
		tab[s->hash & (size - 1)] = s;
	}
	free(f->tab);
	f->tab = tab;
	f->tabsize = size;
	return true;
}

struct metrics_series *metrics_series(struct metrics_family *f, const char *const *label_values)
{
	return metrics_series_bounded(f, label_values, METRICS_MAX_SERIES);
}

struct metrics_series *metrics_series_bounded(struct metrics_family *f,
					      const char *const *label_values, size_t max_series)
{
	struct metrics_series *s;
	uint64_t h;

	if (!f)
		return NULL;
	h = labels_hash(label_values, f->nlabels);

	pthread_mutex_lock(&f->lock);
	for (s = f->tab ? f->tab[h & (f->tabsize - 1)] : f->series; s;
	     s = f->tab ? s->hnext : s->next) {
		if (s->hash == h && labels_equal(s, label_values, f->nlabels))
			goto out;
	}
	if (f->nseries >= max_series)
		goto out; /* s is NULL: cardinality cap */
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	s->family = f;
	s->label_values = dup_strv(label_values, f->nlabels);
	if (f->type == FAM_HISTOGRAM)
		s->buckets = calloc(f->nbounds + 1, sizeof(*s->buckets));
	if (!s->label_values || (f->type == FAM_HISTOGRAM && !s->buckets)) {
		series_free(s, f->nlabels);
		s = NULL;
		goto out;
	}
	atomic_init(&s->value, d2u(0.0));
	s->hash = h;
	/* Append, so series render in creation order. */
	*(f->tail ? f->tail : &f->series) = s;
	f->tail = &s->next;
	f->nseries++;
	if (!(f->nseries > f->tabsize && index_grow(f, f->nseries)) && f->tab) {
		s->hnext = f->tab[h & (f->tabsize - 1)];
		f->tab[h & (f->tabsize - 1)] = s;
	}
out:
	pthread_mutex_unlock(&f->lock);
	return s;
}

void metrics_inc(struct metrics_series *s)
{
	metrics_add(s, 1.0);
}

void metrics_add(struct metrics_series *s, double v)
{
	if (s)
		atomic_add_double(&s->value, v);
}

void metrics_set(struct metrics_series *s, double v)
{
	if (s)
		atomic_store_explicit(&s->value, d2u(v), memory_order_relaxed);
}

void metrics_observe(struct metrics_series *s, double v)
{
	size_t i;

	if (!s || !s->buckets)
		return;
	for (i = 0; i < s->family->nbounds; i++) {
		if (v <= s->family->bounds[i])
			break;
	}
	atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	atomic_add_double(&s->value, v);
}

double metrics_value(const struct metrics_series *s)
{
	return s ? u2d(atomic_load_explicit(&s->value, memory_order_relaxed)) : 0.0;
}

/* ---- rendering ---------------------------------------------------------------- */

struct strbuf {
	char *data;
	size_t len, cap;
	bool oom;
};

static void sb_grow(struct strbuf *b, size_t need)
{
	if (b->oom || b->len + need + 1 <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + need + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return;
	}
	b->data = p;
	b->cap = cap;
}

static void sb_put(struct strbuf *b, const char *s, size_t n)
{
	sb_grow(b, n);
	if (b->oom)
		return;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void sb_puts(struct strbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static void sb_num(struct strbuf *b, double v)
{
	char tmp[64];
	if (isnan(v))
		sb_puts(b, "NaN"); /* the exposition format's spelling, not printf's "nan" */
	else if (isinf(v))
		sb_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		snprintf(tmp, sizeof(tmp), "%.0f", v), sb_puts(b, tmp);
	else {
		/*
		 * The shortest text that reads back as the same double: a latency sum of
		 * 123456.789012 s must not be cut to 123456.789, or rate() over it drifts.
		 */
		snprintf(tmp, sizeof(tmp), "%.15g", v);
		if (strtod(tmp, NULL) != v)
			snprintf(tmp, sizeof(tmp), "%.17g", v);
		sb_puts(b, tmp);
	}
}

/* Label values escape backslash, double quote and newline; HELP escapes \ and \n. */
static void sb_escaped(struct strbuf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			sb_puts(b, "\\\\");
		else if (*s == '\n')
			sb_puts(b, "\\n");
		else if (quote && *s == '"')
			sb_puts(b, "\\\"");
		else
			sb_put(b, s, 1);
	}
}

static void sb_labels(struct strbuf *b, const struct metrics_family *f,
		      const struct metrics_series *s, const char *le)
{
	if (f->nlabels == 0 && !le)
		return;
	sb_puts(b, "{");
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i)
			sb_puts(b, ",");
		sb_puts(b, f->label_names[i]);
		sb_puts(b, "=\"");
		sb_escaped(b, s->label_values[i], true);
		sb_puts(b, "\"");
	}
	if (le) {
		if (f->nlabels)
			sb_puts(b, ",");
		sb_puts(b, "le=\"");
		sb_puts(b, le);
		sb_puts(b, "\"");
	}
	sb_puts(b, "}");
}

static void render_family(struct strbuf *b, struct metrics_family *f)
{
	static const char *const type_names[] = {"counter", "gauge", "histogram"};

	sb_puts(b, "# HELP ");
	sb_puts(b, f->name);
	sb_puts(b, " ");
	sb_escaped(b, f->help, false);
	sb_puts(b, "\n# TYPE ");
	sb_puts(b, f->name);
	sb_puts(b, " ");
	sb_puts(b, type_names[f->type]);
	sb_puts(b, "\n");

	pthread_mutex_lock(&f->lock);
	for (struct metrics_series *s = f->series; s; s = s->next) {
		if (f->type != FAM_HISTOGRAM) {
			sb_puts(b, f->name);
			sb_labels(b, f, s, NULL);
			sb_puts(b, " ");
			sb_num(b, metrics_value(s));
			sb_puts(b, "\n");
			continue;
		}
		uint64_t cum = 0;
		char le[64];
		for (size_t i = 0; i <= f->nbounds; i++) {
			cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
			if (i < f->nbounds)
				snprintf(le, sizeof(le), "%.9g", f->bounds[i]);
			else
				snprintf(le, sizeof(le), "+Inf");
			sb_puts(b, f->name);
			sb_puts(b, "_bucket");
			sb_labels(b, f, s, le);
			sb_puts(b, " ");
			sb_num(b, (double)cum);
			sb_puts(b, "\n");
		}
		sb_puts(b, f->name);
		sb_puts(b, "_sum");
		sb_labels(b, f, s, NULL);
		sb_puts(b, " ");
		sb_num(b, metrics_value(s));
		sb_puts(b, "\n");
		sb_puts(b, f->name);
		sb_puts(b, "_count");
		sb_labels(b, f, s, NULL);
		sb_puts(b, " ");
		/* The count is the +Inf bucket, so _count and buckets always agree. */
		sb_num(b, (double)cum);
		sb_puts(b, "\n");
	}
	pthread_mutex_unlock(&f->lock);
}

int metrics_render(struct metrics_registry *r, char **out, size_t *len)
{
	struct strbuf b = {0};

	pthread_mutex_lock(&r->lock);
	for (struct metrics_family *f = r->families; f; f = f->next)
		render_family(&b, f);
	pthread_mutex_unlock(&r->lock);
	/* An empty registry has written nothing yet: still hand back a valid "" string. */
	sb_grow(&b, 0);
	if (b.oom || !b.data) {
		free(b.data);
		return -ENOMEM;
	}
	b.data[b.len] = '\0';
	*out = b.data;
	*len = b.len;
	return 0;
}
