/*
 * Drawing the service graph; see render.h. The look (documented in docs/graph.md):
 * left to right; workloads are rounded boxes, sidecar-less destinations ellipses, callers
 * without a sidecar a dashed "unknown" ellipse; node outline and edge colour follow the
 * error rate (model.h thresholds); edge width grows with the request rate; an edge whose
 * requests all went over mutual TLS is drawn as a double line.
 */
#include "graph/render.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

int gr_format_parse(const char *s, enum gr_format *out)
{
	static const char *const names[] = {"text", "dot", "svg", "png"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (enum gr_format)i;
			return 0;
		}
	return -1;
}

/* "12.3 ms", or "-" when unknown. */
static void fmt_p99(double s, char *buf, size_t bufsz)
{
	if (isnan(s))
		snprintf(buf, bufsz, "-");
	else if (isinf(s))
		snprintf(buf, bufsz, "inf");
	else
		snprintf(buf, bufsz, "%.1f ms", s * 1000.0);
}

/* "", " mTLS" or " mTLS 40%" (leading separator included). */
static void fmt_mtls(const struct gr_edge *e, const char *sep, char *buf, size_t bufsz)
{
	double share = e->rps > 0 ? e->mtls_rps / e->rps : 0;

	if (share <= 0)
		buf[0] = '\0';
	else if (share >= 0.9995)
		snprintf(buf, bufsz, "%smTLS", sep);
	else
		snprintf(buf, bufsz, "%smTLS %.0f%%", sep, share * 100.0);
}

int gr_render_text(const struct gr_model *m, FILE *out)
{
	for (size_t i = 0; i < gr_model_nedges(m); i++) {
		const struct gr_edge *e = gr_model_edge(m, i);
		char p99[32], mtls[32];

		fmt_p99(e->p99_s, p99, sizeof(p99));
		fmt_mtls(e, "  ", mtls, sizeof(mtls));
		if (fprintf(out, "%s -> %s  %.2f req/s  %.1f%% errors  p99 %s%s\n",
			    gr_model_node(m, e->src)->name, gr_model_node(m, e->dst)->name, e->rps,
			    gr_err_pct(e->rps, e->err_rps), p99, mtls) < 0)
			return -1;
	}
	return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

/* ---- Graphviz ------------------------------------------------------------------------ */

/* Graphviz reports errors through a callback; keep the first one for our message. */
static char gv_err[256];

static int gv_errf(char *msg)
{
	if (!gv_err[0]) {
		size_t n;
		snprintf(gv_err, sizeof(gv_err), "%s", msg);
		n = strlen(gv_err);
		while (n && (gv_err[n - 1] == '\n' || gv_err[n - 1] == ' '))
			gv_err[--n] = '\0';
	}
	return 0;
}

/* name for use inside a label: Graphviz reads backslash escapes there (\\N, \\l ...),
 * and a name comes from a peer's :authority, so each backslash is doubled. */
static void esc(const char *name, size_t n, char *out, size_t outsz)
{
	size_t j = 0;

	for (size_t i = 0; i < n && name[i] && j + 2 < outsz; i++) {
		if (name[i] == '\\')
			out[j++] = '\\';
		out[j++] = name[i];
	}
	out[j] = '\0';
}

static void set(void *obj, const char *name, const char *value)
{
	agsafeset(obj, (char *)name, (char *)value, (char *)"");
}

static Agraph_t *build_graph(const struct gr_model *m, const char *title)
{
	Agraph_t *g = agopen((char *)"grpcguard", Agdirected, NULL);
	Agnode_t **nodes = NULL;
	char buf[4 * GR_MAX_NAME + 64], e1[2 * GR_MAX_NAME], e2[2 * GR_MAX_NAME];

	if (!g)
		return NULL;
	agattr(g, AGRAPH, "rankdir", "LR");
	agattr(g, AGRAPH, "fontname", "Helvetica,Arial,sans-serif");
	agattr(g, AGRAPH, "labelloc", "t");
	agattr(g, AGRAPH, "label", (char *)(title ? title : ""));
	agattr(g, AGNODE, "fontname", "Helvetica,Arial,sans-serif");
	agattr(g, AGNODE, "shape", "box");
	agattr(g, AGNODE, "style", "rounded");
	agattr(g, AGNODE, "penwidth", "2");
	agattr(g, AGEDGE, "fontname", "Helvetica,Arial,sans-serif");
	agattr(g, AGEDGE, "fontsize", "10");

	nodes = calloc(gr_model_nnodes(m) ? gr_model_nnodes(m) : 1, sizeof(*nodes));
	if (!nodes)
		goto fail;
	for (size_t i = 0; i < gr_model_nnodes(m); i++) {
		const struct gr_node *n = gr_model_node(m, i);
		const char *slash = strchr(n->name, '/');
		Agnode_t *an = agnode(g, (char *)n->name, 1);

		if (!an)
			goto fail;
		nodes[i] = an;
		set(an, "color", gr_health_color(gr_node_health(n)));
		switch (n->kind) {
		case GR_NODE_WORKLOAD:
			/* "server\ndemo": the workload above its namespace. */
			esc(slash ? slash + 1 : n->name, GR_MAX_NAME, e1, sizeof(e1));
			esc(n->name, slash ? (size_t)(slash - n->name) : 0, e2, sizeof(e2));
			snprintf(buf, sizeof(buf), "%s\\n%s", e1, e2);
			set(an, "label", buf);
			break;
		case GR_NODE_SERVICE:
			esc(n->name, GR_MAX_NAME, e1, sizeof(e1));
			snprintf(buf, sizeof(buf), "%s\\n(no sidecar)", e1);
			set(an, "label", buf);
			set(an, "shape", "ellipse");
			set(an, "style", "solid");
			break;
		case GR_NODE_UNKNOWN:
			set(an, "shape", "ellipse");
			set(an, "style", "dashed");
			break;
		}
	}
	for (size_t i = 0; i < gr_model_nedges(m); i++) {
		const struct gr_edge *e = gr_model_edge(m, i);
		const char *col = gr_health_color(gr_health_of(e->rps, e->err_rps));
		char p99[32], mtls[32], width[16], color[64];
		Agedge_t *ae = agedge(g, nodes[e->src], nodes[e->dst], NULL, 1);

		if (!ae)
			goto fail;
		fmt_p99(e->p99_s, p99, sizeof(p99));
		fmt_mtls(e, "\\n", mtls, sizeof(mtls));
		snprintf(buf, sizeof(buf), "%.2f req/s\\n%.1f%% errors\\np99 %s%s", e->rps,
			 gr_err_pct(e->rps, e->err_rps), p99, mtls);
		set(ae, "label", buf);
		/* 1 px at 0.1 req/s and below, +1 px per decade, at most 6 px. */
		snprintf(width, sizeof(width), "%.1f",
			 fmin(6.0, fmax(1.0, 2.0 + log10(e->rps > 0 ? e->rps : 1e-9))));
		set(ae, "penwidth", width);
		if (e->rps > 0 && e->mtls_rps / e->rps >= 0.9995)
			snprintf(color, sizeof(color), "%s:invis:%s", col, col);
		else
			snprintf(color, sizeof(color), "%s", col);
		set(ae, "color", color);
		set(ae, "fontcolor", col);
	}
	free(nodes);
	return g;
fail:
	free(nodes);
	agclose(g);
	return NULL;
}

int gr_render(const struct gr_model *m, enum gr_format fmt, const char *title, FILE *out, char *err,
	      size_t errsz)
{
	static const char *const gvfmt[] = {[GR_FMT_SVG] = "svg", [GR_FMT_PNG] = "png"};
	GVC_t *gvc = NULL;
	Agraph_t *g = NULL;
	char *data = NULL;
	unsigned int len = 0;
	bool laid_out = false;
	int rc = -1;

	if (fmt == GR_FMT_TEXT) {
		if (gr_render_text(m, out) == 0)
			return 0;
		snprintf(err, errsz, "cannot write the text output");
		return -1;
	}
	gv_err[0] = '\0';
	agseterr(AGERR); /* warnings (font metrics and such) are not failures */
	agseterrf(gv_errf);
	if (!(g = build_graph(m, title))) {
		snprintf(err, errsz, "cannot build the Graphviz graph: %s",
			 gv_err[0] ? gv_err : "out of memory");
		goto out;
	}
	if (fmt == GR_FMT_DOT) {
		/* The graph as we built it, before layout: stable, and dot(1) can lay it out. */
		if (agwrite(g, out) != 0 || fflush(out) != 0 || ferror(out)) {
			snprintf(err, errsz, "cannot write the DOT output");
			goto out;
		}
		rc = 0;
		goto out;
	}
	if (!(gvc = gvContext())) {
		snprintf(err, errsz, "cannot start Graphviz (gvContext failed)");
		goto out;
	}
	if (gvLayout(gvc, g, "dot") != 0) {
		snprintf(err, errsz, "Graphviz dot layout failed: %s",
			 gv_err[0] ? gv_err : "(no reason given)");
		goto out;
	}
	laid_out = true;
	if (gvRenderData(gvc, g, gvfmt[fmt], &data, &len) != 0 || !data) {
		snprintf(err, errsz,
			 "Graphviz cannot render %s: %s (is its plugin installed? "
			 "Debian: libgvc6, run \"dot -c\" as root)",
			 gvfmt[fmt], gv_err[0] ? gv_err : "format not available");
		goto out;
	}
	if (fwrite(data, 1, len, out) != len || fflush(out) != 0) {
		snprintf(err, errsz, "cannot write the %s output", gvfmt[fmt]);
		goto out;
	}
	rc = 0;
out:
	if (data)
		gvFreeRenderData(data);
	if (laid_out)
		gvFreeLayout(gvc, g);
	if (g)
		agclose(g);
	if (gvc)
		gvFreeContext(gvc);
	agseterrf(NULL);
	return rc;
}
