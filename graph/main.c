/*
 * grpcguard-graph: the service graph from Prometheus.
 *
 *   grpcguard-graph --prometheus URL [--namespace NS] [--window 5m]
 *                   --format svg|png|dot|text [--out FILE] [--timeout 10s]
 *
 * Asks Prometheus (its HTTP API) for the sidecars' request rates, error codes and
 * latency histograms over the window, and draws workloads as nodes and calls as edges
 * (graph/model.c decides which series make an edge, graph/render.c draws it).
 *
 * Exit status (docs/graph.md): 0 drawn; 1 the output could not be written or drawn;
 * 2 a bad flag; 3 Prometheus unreachable (connect, resolve, timeout); 4 Prometheus
 * answered with an error (HTTP status, API error, not a query result, too large);
 * 5 no calls in the window (empty graph). Every failure is one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/cli.h"
#include "common/log.h"
#include "graph/model.h"
#include "graph/opts.h"
#include "graph/prom.h"
#include "graph/render.h"

#define PROG "grpcguard-graph"

enum {
	EXIT_DRAWN = 0,
	EXIT_OUTPUT = 1,
	EXIT_FLAGS = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_PROM_ERROR = 4,
	EXIT_EMPTY = 5,
};

static void usage(FILE *f)
{
	fputs("usage: grpcguard-graph --prometheus URL --format svg|png|dot|text [options]\n"
	      "\n"
	      "Draws the service graph of the gRPC calls grpcguard sidecars saw: workloads\n"
	      "are nodes, calls are edges labelled with requests per second, error % and p99\n"
	      "latency, coloured by error rate (green < 1 %, orange < 10 %, red from 10 %).\n"
	      "\n"
	      "  --prometheus URL     Prometheus' base URL, e.g. http://127.0.0.1:9090\n"
	      "                       (required; a path prefix is kept)\n"
	      "  --format F           svg, png, dot (Graphviz source) or text (one line\n"
	      "                       per edge) (required)\n"
	      "  --namespace NS       only calls from or to namespace NS\n"
	      "  --window D           rates over the last D: 30s, 5m, 1h, 1d (default 5m)\n"
	      "  --out FILE           write FILE (replaced atomically) instead of stdout\n"
	      "  --timeout D          give up on Prometheus after D (default 10s, 1s..300s)\n"
	      "  --help               this text\n"
	      "\n"
	      "Exit status: 0 drawn, 1 output failed, 2 bad flag, 3 Prometheus unreachable,\n"
	      "4 Prometheus answered with an error, 5 no calls in the window.\n",
	      f);
}

static const char *const fmt_names[] = {
    [GR_FMT_TEXT] = "text", [GR_FMT_DOT] = "dot", [GR_FMT_SVG] = "svg", [GR_FMT_PNG] = "png"};

struct opts {
	char url[1100];
	const char *ns, *window, *out;
	enum gr_format format;
	int have_format;
	unsigned long timeout_s;
};

static int parse_flags(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"prometheus", required_argument, NULL, 'p'},
					   {"namespace", required_argument, NULL, 'n'},
					   {"window", required_argument, NULL, 'w'},
					   {"format", required_argument, NULL, 'f'},
					   {"out", required_argument, NULL, 'o'},
					   {"timeout", required_argument, NULL, 't'},
					   {"help", no_argument, NULL, 'h'},
					   {NULL, 0, NULL, 0}};
	unsigned long secs;
	int c;

	while ((c = cli_next_flag(PROG, argc, argv, lo)) > 0) {
		switch (c) {
		case 'p':
			if (gr_normalize_url(optarg, o->url, sizeof(o->url))) {
				fprintf(stderr,
					PROG ": --prometheus \"%.200s\": expected an http:// or "
					     "https:// URL such as http://127.0.0.1:9090\n",
					optarg);
				return EXIT_FLAGS;
			}
			break;
		case 'n':
			if (!gr_valid_namespace(optarg)) {
				fprintf(stderr,
					PROG ": --namespace \"%.100s\": expected a namespace name "
					     "(a-z, 0-9 and '-', at most 63)\n",
					optarg);
				return EXIT_FLAGS;
			}
			o->ns = optarg;
			break;
		case 'w':
			if (gr_parse_duration(optarg, 1, 30 * 86400, &secs)) {
				fprintf(stderr,
					PROG
					": --window \"%.100s\": expected a duration such as 30s, "
					"5m, 1h or 1d (1s..30d)\n",
					optarg);
				return EXIT_FLAGS;
			}
			o->window = optarg;
			break;
		case 'f':
			if (gr_format_parse(optarg, &o->format)) {
				fprintf(stderr,
					PROG
					": --format \"%.100s\": expected svg, png, dot or text\n",
					optarg);
				return EXIT_FLAGS;
			}
			o->have_format = 1;
			break;
		case 'o':
			if (!*optarg || strlen(optarg) > PATH_MAX - 16) {
				fprintf(stderr, PROG ": --out: expected a file name\n");
				return EXIT_FLAGS;
			}
			o->out = optarg;
			break;
		case 't':
			if (gr_parse_duration(optarg, 1, 300, &o->timeout_s)) {
				fprintf(stderr,
					PROG
					": --timeout \"%.100s\": expected a duration such as 5s "
					"or 1m (1s..300s)\n",
					optarg);
				return EXIT_FLAGS;
			}
			break;
		case 'h':
			usage(stdout);
			exit(0);
		}
	}
	if (c < 0)
		return EXIT_FLAGS;
	if (!o->url[0] || !o->have_format) {
		fprintf(stderr, PROG ": --prometheus and --format are required (see --help)\n");
		return EXIT_FLAGS;
	}
	return 0;
}

/* Run one query and feed it to the model; on failure log one line and return the exit
 * status. */
static int ask(const struct opts *o, const struct gr_prom_opts *po, struct gr_model *m,
	       const char *what, const char *q,
	       int (*add)(struct gr_model *, const char *, size_t, char *, size_t))
{
	char err[512], msg[1024];
	char *body = NULL;
	size_t len;
	int rc;

	rc = gr_prom_query(po, q, &body, &len, err, sizeof(err));
	if (rc == GR_PROM_EUNREACHABLE) {
		snprintf(msg, sizeof(msg),
			 "cannot reach Prometheus at %.300s: %.400s (is it running there? check "
			 "--prometheus, or raise --timeout)",
			 o->url, err);
		log_error("prometheus_unreachable", msg, "{s:s, s:s}", "prometheus", o->url,
			  "reason", err);
		return EXIT_UNREACHABLE;
	}
	if (rc == GR_PROM_ENOMEM) {
		log_error("out_of_memory", "out of memory while querying Prometheus", "{s:s}",
			  "prometheus", o->url);
		return EXIT_OUTPUT;
	}
	if (rc == GR_PROM_OK) {
		rc = add(m, body, len, err, sizeof(err));
		free(body);
		if (rc == GR_ENOMEM) {
			log_error("out_of_memory", "out of memory while reading Prometheus' answer",
				  NULL);
			return EXIT_OUTPUT;
		}
		if (rc == GR_OK)
			return 0;
	}
	snprintf(msg, sizeof(msg),
		 "the %s query to Prometheus at %.300s failed: %.400s (is --prometheus the base "
		 "URL of a Prometheus server?)",
		 what, o->url, err);
	log_error("prometheus_error", msg, "{s:s, s:s, s:s}", "prometheus", o->url, "query", what,
		  "reason", err);
	return EXIT_PROM_ERROR;
}

/*
 * Draw into o->out (through a temporary file in the same directory, renamed over it when
 * complete, so a reader never sees half a file) or stdout.
 */
static int draw(const struct opts *o, const struct gr_model *m, const char *title)
{
	char tmp[PATH_MAX], err[512];
	FILE *f = stdout;
	int fd = -1, rc;

	if (o->out) {
		snprintf(tmp, sizeof(tmp), "%s.XXXXXX", o->out);
		if ((fd = mkstemp(tmp)) < 0 || !(f = fdopen(fd, "wb"))) {
			snprintf(err, sizeof(err),
				 "cannot create %.300s: %s (is its directory "
				 "there and writable?)",
				 tmp, strerror(errno));
			log_error("output_failed", err, "{s:s}", "out", o->out);
			if (fd >= 0) {
				close(fd);
				unlink(tmp);
			}
			return EXIT_OUTPUT;
		}
		(void)fchmod(fd, 0644);
	}
	rc = gr_render(m, o->format, title, f, err, sizeof(err));
	if (o->out) {
		if (fclose(f) != 0 && rc == 0) {
			rc = -1;
			snprintf(err, sizeof(err), "%s", strerror(errno));
		}
		if (rc == 0 && rename(tmp, o->out) != 0) {
			rc = -1;
			snprintf(err, sizeof(err), "cannot rename it into place: %s",
				 strerror(errno));
		}
		if (rc != 0)
			unlink(tmp);
	}
	if (rc != 0) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "cannot write the graph to %.300s: %.380s",
			 o->out ? o->out : "stdout", err);
		log_error("output_failed", msg, "{s:s}", "out", o->out ? o->out : "-");
		return EXIT_OUTPUT;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {.window = "5m", .timeout_s = 10};
	struct gr_prom_opts po;
	struct gr_model *m = NULL;
	char q[2048], title[256];
	int rc;

	log_init("graph", LOGL_INFO);
	if ((rc = parse_flags(argc, argv, &o)) != 0)
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_error("curl_init_failed", "cannot initialise libcurl", NULL);
		return EXIT_OUTPUT;
	}
	po = (struct gr_prom_opts){.base_url = o.url,
				   .timeout_ms = (long)o.timeout_s * 1000,
				   .max_body_bytes = GR_PROM_MAX_BODY_BYTES};
	rc = EXIT_OUTPUT;
	if (!(m = gr_model_new())) {
		log_error("out_of_memory", "out of memory", NULL);
		goto out;
	}
	/* Both fit: the window and namespace are short and checked. */
	if (gr_model_query_requests(o.window, o.ns, q, sizeof(q)) ||
	    (rc = ask(&o, &po, m, "requests", q, gr_model_add_requests)) != 0)
		goto out;
	rc = EXIT_OUTPUT;
	if (gr_model_query_p99(o.window, o.ns, q, sizeof(q)) ||
	    (rc = ask(&o, &po, m, "p99", q, gr_model_add_p99)) != 0)
		goto out;
	gr_model_finish(m);
	if (gr_model_nedges(m) == 0) {
		char msg[512];

		snprintf(
		    msg, sizeof(msg),
		    "no gRPC calls %s%s in the last %s in Prometheus at %.300s (is there traffic, "
		    "are the sidecars scraped, is --namespace right?)",
		    o.ns ? "from or to namespace " : "between workloads", o.ns ? o.ns : "",
		    o.window, o.url);
		log_error("graph_empty", msg, "{s:s, s:s, s:s}", "prometheus", o.url, "namespace",
			  o.ns ? o.ns : "(all)", "window", o.window);
		rc = EXIT_EMPTY;
		goto out;
	}
	snprintf(title, sizeof(title), "grpcguard service graph: %s%s, last %s",
		 o.ns ? "namespace " : "all namespaces", o.ns ? o.ns : "", o.window);
	if ((rc = draw(&o, m, title)) != 0)
		goto out;
	log_info("graph_written", "wrote the service graph", "{s:s, s:s, s:i, s:i}", "out",
		 o.out ? o.out : "-", "format", fmt_names[o.format], "nodes",
		 (int)gr_model_nnodes(m), "edges", (int)gr_model_nedges(m));
	rc = EXIT_DRAWN;
out:
	gr_model_free(m);
	curl_global_cleanup();
	return rc;
}
