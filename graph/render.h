/*
 * Drawing a finished gr_model: plain text (one line per edge), or through Graphviz's C
 * library (cgraph + gvc) as DOT, SVG or PNG with the dot layout.
 *
 * Writes only to the FILE it is given; does not log. Graphviz's own diagnostics are
 * captured into the caller's err buffer instead of going to stderr.
 */
#ifndef GRPCGUARD_GR_RENDER_H
#define GRPCGUARD_GR_RENDER_H

#include <stddef.h>
#include <stdio.h>

#include "graph/model.h"

enum gr_format { GR_FMT_TEXT = 0, GR_FMT_DOT, GR_FMT_SVG, GR_FMT_PNG };

/* "text" | "dot" | "svg" | "png" -> 0 and *out; -1 otherwise (*out untouched). */
int gr_format_parse(const char *s, enum gr_format *out);

/*
 * One line per edge, in the model's order (source name, then destination name):
 *   demo/client -> demo/server  0.50 req/s  0.0% errors  p99 12.3 ms
 * then "  mTLS" when every request of the edge carried connection_security_policy
 * mutual_tls, "  mTLS 40%" when some did. p99 reads "-" when Prometheus had none.
 * Returns 0, or -1 when writing failed.
 */
int gr_render_text(const struct gr_model *m, FILE *out);

/*
 * The graph in fmt (any of the four) written to out. title goes into the drawing's
 * label (NULL: none). Returns 0, or -1 with a one-line reason in err (errsz bytes).
 */
int gr_render(const struct gr_model *m, enum gr_format fmt, const char *title, FILE *out, char *err,
	      size_t errsz);

#endif
