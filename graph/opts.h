/*
 * grpcguard-graph's flag values, checked before anything is asked of Prometheus: a
 * value that passes here is safe to put into PromQL and a URL as it is. Pure.
 */
#ifndef GRPCGUARD_GR_OPTS_H
#define GRPCGUARD_GR_OPTS_H

#include <stddef.h>

/*
 * A duration as Prometheus writes range selectors: digits and one unit, s, m, h or d
 * ("30s", "5m", "1h", "2d"), in min_s..max_s seconds. 0 and *out_s, else -1.
 */
int gr_parse_duration(const char *s, unsigned long min_s, unsigned long max_s,
		      unsigned long *out_s);

/* A Kubernetes namespace name (DNS-1123 label: a-z, 0-9, '-', 1..63, alphanumeric at
 * both ends)? 1 or 0. */
int gr_valid_namespace(const char *s);

/*
 * An http:// or https:// URL of at most 1024 bytes with a host and no whitespace or
 * control bytes. On success 0, and dst (dstsz bytes) gets it without trailing '/'s;
 * else -1 (dst untouched).
 */
int gr_normalize_url(const char *s, char *dst, size_t dstsz);

#endif
