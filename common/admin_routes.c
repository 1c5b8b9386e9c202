/*
 * What the admin port answers. See admin_routes.h.
 *
 * GET (and HEAD) only. /healthz -> 200 "ok"; /readyz -> 200 "ready" or 503 "not ready";
 * /metrics -> the registry in Prometheus text format; registered paths -> their handler;
 * anything else 404; any other method 405 (and the connection closes, see admin_http.h).
 * Every response has Cache-Control: no-store and X-Content-Type-Options: nosniff.
 */
#include "common/admin_routes.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin_http.h"
#include "common/log.h"
#include "common/metrics.h"

#define ADMIN_MAX_PATH 256

#define CTYPE_TEXT "text/plain; charset=utf-8"
#define CTYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"

struct admin_route {
	struct admin_route *next;
	char *path;
	admin_route_fn fn;
	void *ctx;
	bool local_only; /* admin_route_local(): loopback peers only */
};

struct admin_routes {
	struct metrics_registry *metrics; /* borrowed */
	atomic_bool ready;
	pthread_mutex_t lock;	    /* admin_routes_add() may run on another thread */
	struct admin_route *routes; /* never removed before admin_routes_free() */
};

/* One answer before formatting: body is either owned (malloc'd) or static text. */
struct answer {
	unsigned status;
	const char *ctype;
	const char *text; /* static, or == owned */
	char *owned;
	size_t len;
};

static void answer_text(struct answer *r, unsigned status, const char *text)
{
	r->status = status;
	r->ctype = CTYPE_TEXT;
	r->text = text;
	r->len = strlen(text);
}

int admin_routes_new(struct metrics_registry *metrics, struct admin_routes **out)
{
	struct admin_routes *rt = calloc(1, sizeof(*rt));

	if (!rt)
		return -ENOMEM;
	rt->metrics = metrics;
	atomic_init(&rt->ready, false);
	pthread_mutex_init(&rt->lock, NULL);
	*out = rt;
	return 0;
}

static void route_list_free(struct admin_route *r)
{
	struct admin_route *next;

	for (; r; r = next) {
		next = r->next;
		free(r->path);
		free(r);
	}
}

void admin_routes_free(struct admin_routes *rt)
{
	if (!rt)
		return;
	route_list_free(rt->routes);
	pthread_mutex_destroy(&rt->lock);
	free(rt);
}

int admin_routes_add(struct admin_routes *rt, const char *path, admin_route_fn fn, void *ctx,
		     bool local_only)
{
	struct admin_route *r, **tail;
	int rc = 0;

	if (!rt || !path || !fn || path[0] != '/' || strlen(path) > ADMIN_MAX_PATH ||
	    strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
	    strcmp(path, "/metrics") == 0)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->path = strdup(path);
	if (!r->path) {
		free(r);
		return -ENOMEM;
	}
	r->fn = fn;
	r->ctx = ctx;
	r->local_only = local_only;
	pthread_mutex_lock(&rt->lock);
	for (tail = &rt->routes; *tail; tail = &(*tail)->next) {
		if (strcmp((*tail)->path, path) == 0) {
			rc = -EEXIST;
			break;
		}
	}
	if (rc == 0)
		*tail = r; /* published last, fully built */
	pthread_mutex_unlock(&rt->lock);
	if (rc < 0)
		route_list_free(r);
	return rc;
}

void admin_routes_set_ready(struct admin_routes *rt, bool ready)
{
	if (rt)
		atomic_store(&rt->ready, ready);
}

/* Looks the route up under the lock; routes are never freed while requests are served. */
static struct admin_route *find_route(struct admin_routes *rt, const char *path)
{
	struct admin_route *r;

	pthread_mutex_lock(&rt->lock);
	for (r = rt->routes; r; r = r->next) {
		if (strcmp(r->path, path) == 0)
			break;
	}
	pthread_mutex_unlock(&rt->lock);
	return r;
}

static void serve_metrics(struct admin_routes *rt, struct answer *r)
{
	answer_text(r, 200, "");
	r->ctype = CTYPE_METRICS;
	if (!rt->metrics)
		return;
	if (metrics_render(rt->metrics, &r->owned, &r->len) < 0) {
		r->owned = NULL;
		answer_text(r, 500, "out of memory\n");
		return;
	}
	r->text = r->owned;
}

static void serve_route(struct admin_route *rt, struct answer *r)
{
	char *body = NULL;
	size_t len = 0;
	const char *ctype = NULL;
	int status;

	status = rt->fn(rt->ctx, &body, &len, &ctype);
	if (status < 100 || status > 599) {
		free(body);
		log_error("admin_route_error", "admin route handler returned a bad status",
			  "{s:s, s:i}", "path", rt->path, "status", status);
		answer_text(r, 500, "internal error\n");
		return;
	}
	r->status = (unsigned)status;
	r->ctype = ctype ? ctype : CTYPE_TEXT;
	r->owned = body;
	r->text = body ? body : "";
	r->len = body ? len : 0;
}

/* Decide the answer to a parsed request (or a parse failure). */
static void route(struct admin_routes *rt, const struct admin_http *h, bool peer_loopback,
		  struct answer *r)
{
	struct admin_route *found;

	if (h->failed) {
		if (h->bad_status == 431)
			answer_text(r, 431, "request headers too large (at most 8192 bytes)\n");
		else if (h->bad_status == 414)
			answer_text(r, 414, "request target too long (at most 1024 bytes)\n");
		else
			answer_text(r, 400, "bad request: not HTTP/1.1\n");
		return;
	}
	if (!h->get_or_head) {
		answer_text(r, 405, "method not allowed\n");
		return;
	}
	if (strcmp(h->path, "/healthz") == 0) {
		answer_text(r, 200, "ok\n");
		return;
	}
	if (strcmp(h->path, "/readyz") == 0) {
		if (atomic_load(&rt->ready))
			answer_text(r, 200, "ready\n");
		else
			answer_text(r, 503, "not ready\n");
		return;
	}
	if (strcmp(h->path, "/metrics") == 0) {
		serve_metrics(rt, r);
		return;
	}
	found = find_route(rt, h->path);
	if (found && found->local_only && !peer_loopback)
		answer_text(r, 403,
			    "forbidden: served to loopback only (from inside the pod, or kubectl "
			    "port-forward)\n");
	else if (found)
		serve_route(found, r);
	else
		answer_text(r, 404, "not found\n");
}

int admin_routes_answer(struct admin_routes *rt, const struct admin_http *h, bool peer_loopback,
			char **out, size_t *outlen)
{
	struct answer r = {0};
	int rc;

	route(rt, h, peer_loopback, &r);
	rc = admin_http_response(r.status, r.ctype, r.text, r.len, !h->failed && h->head,
				 !h->failed && h->keep_alive, !h->failed && h->http10, out, outlen);
	free(r.owned);
	return rc;
}
