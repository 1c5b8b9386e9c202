/*
 * AdmissionReview in, AdmissionReview out (admission.k8s.io v1 and v1beta1).
 *
 * wh_review_handle() is the whole admission logic as a pure function of the request body:
 * no sockets, no clocks, no logging, so the fuzz target and the unit tests call it
 * directly. server.c adds HTTP, TLS, logs and metrics around it.
 */
#ifndef GRPCGUARD_WH_REVIEW_H
#define GRPCGUARD_WH_REVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "webhook/config.h"

enum wh_route { WH_ROUTE_VALIDATE, WH_ROUTE_MUTATE };

/* What happened, for logs and metrics. Strings point into static storage or `scratch`. */
struct wh_review_info {
	char uid[128];
	char kind[64];	    /* request.kind.kind, "" when unknown */
	char operation[16]; /* CREATE | UPDATE | DELETE | CONNECT | "" */
	char ns[64];
	char name[256]; /* metadata.name, or generateName + "*" */
	bool reviewed;	/* a review response was produced (the HTTP status is 200) */
	bool allowed;
	bool patched;
	const char *reason; /* static */
	char message[512];  /* the denial or error message (truncated copy) */
};

/*
 * Judge one AdmissionReview body on route `route`. Returns the HTTP status:
 *   200  *resp is an AdmissionReview (same apiVersion as the request) with the verdict;
 *   400  malformed JSON, not an AdmissionReview, or no request.uid to answer to;
 *   500  out of memory.
 * *resp is a new NUL-terminated buffer (*resp_len bytes) holding the review or, for 4xx/5xx,
 * a one-line plain-text message; *resp_is_json tells which. Never NULL on return unless
 * even that allocation failed (then 500 and *resp NULL). *info is filled either way.
 */
int wh_review_handle(const struct wh_config *c, enum wh_route route, const char *body, size_t len,
		     char **resp, size_t *resp_len, bool *resp_is_json,
		     struct wh_review_info *info);

#endif
