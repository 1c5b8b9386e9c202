/*
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in
 * the text exposition format (version 0.0.4). Shared by the webhook and the sidecar.
 *
 * Thread-safe: series lookup/creation takes the family's mutex; updates through a series
 * pointer are lock-free atomics, so hot paths look a series up once and keep the pointer
 * (it stays valid until the registry is freed). Does no I/O.
 */
#ifndef GRPCGUARD_METRICS_H
#define GRPCGUARD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics_registry;
struct metrics_family;
struct metrics_series;

struct metrics_registry *metrics_registry_new(void);
void metrics_registry_free(struct metrics_registry *r); /* NULL ok */

/*
 * Register a family. label_names has nlabels entries (copied). buckets (histograms only)
 * are nbuckets ascending upper bounds, +Inf is implicit. Returns a pointer owned by the
 * registry, or NULL on ENOMEM / a name registered twice.
 */
struct metrics_family *metrics_counter(struct metrics_registry *r, const char *name,
				       const char *help, size_t nlabels,
				       const char *const *label_names);
struct metrics_family *metrics_gauge(struct metrics_registry *r, const char *name, const char *help,
				     size_t nlabels, const char *const *label_names);
struct metrics_family *metrics_histogram(struct metrics_registry *r, const char *name,
					 const char *help, size_t nlabels,
					 const char *const *label_names, const double *buckets,
					 size_t nbuckets);

/* Default latency buckets in seconds (0.5 ms .. 30 s), METRICS_LATENCY_NBUCKETS long. */
extern const double metrics_latency_buckets[];
#define METRICS_LATENCY_NBUCKETS 16

/*
 * The series for these label values (nlabels entries, copied), created at 0 on first use.
 * Borrowed pointer, valid until the registry is freed. NULL only on ENOMEM or when the
 * family already holds METRICS_MAX_SERIES series (a cardinality cap: the caller's update
 * is then dropped, since every update function accepts NULL).
 */
#define METRICS_MAX_SERIES 2000
struct metrics_series *metrics_series(struct metrics_family *f, const char *const *label_values);
/*
 * metrics_series() with the family's cap given by the caller: an existing series is
 * always found; a new one is created only while the family holds fewer than max_series
 * (which may exceed METRICS_MAX_SERIES). NULL on ENOMEM or when full.
 */
struct metrics_series *metrics_series_bounded(struct metrics_family *f,
					      const char *const *label_values, size_t max_series);

/* Updates; all accept NULL (a dropped series) and do nothing then. */
void metrics_inc(struct metrics_series *s);
void metrics_add(struct metrics_series *s, double v);
void metrics_set(struct metrics_series *s, double v);
void metrics_observe(struct metrics_series *s, double v);
double metrics_value(const struct metrics_series *s); /* counter/gauge value, for tests */

/*
 * Render every family. Returns 0 and a new malloc'd NUL-terminated buffer in *out (its
 * length in *len), or -ENOMEM.
 */
int metrics_render(struct metrics_registry *r, char **out, size_t *len);

#endif
