/*
 * The outcome of judging one admission request: allowed or denied (with a message a
 * user can act on), optional warnings, and an optional JSONPatch. Built by validate.c
 * and inject.c, turned into an AdmissionReview response by review.c. No I/O.
 */
#ifndef GRPCGUARD_WH_VERDICT_H
#define GRPCGUARD_WH_VERDICT_H

#include <stdbool.h>

#include <jansson.h>

struct wh_verdict {
	bool allowed;
	int code;	    /* status.code when denied (403, or 400 for a malformed object) */
	char *message;	    /* new string: why it was denied; NULL when allowed */
	json_t *warnings;   /* new array of strings, or NULL */
	json_t *patch;	    /* new JSONPatch array, or NULL for no patch */
	const char *reason; /* static word for logs: "injected", "opted-out", "valid" ... */
};

/* An allowed verdict with no message, warnings or patch. */
void wh_verdict_init(struct wh_verdict *v);
/* Frees what the verdict owns and re-initializes it. */
void wh_verdict_cleanup(struct wh_verdict *v);
/* Deny with a printf-style message (replaces an earlier one). Returns 0 or -ENOMEM. */
int wh_verdict_deny(struct wh_verdict *v, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * Make s valid UTF-8 in place: a byte that does not start or continue a valid sequence
 * (also a sequence cut short by truncation) becomes '?'. Messages quote user input
 * through printf precision ("%.200s"), which can cut a character in two; jansson refuses
 * such strings, and the review must still be answered.
 */
void wh_utf8_sanitize(char *s);

/* Append a warning (copied). Returns 0 or -ENOMEM. */
int wh_verdict_warn(struct wh_verdict *v, const char *msg);

#endif
