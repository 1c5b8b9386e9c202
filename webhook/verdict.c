/*
 * wh_verdict helpers (see verdict.h).
 */
#include "webhook/verdict.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void wh_verdict_init(struct wh_verdict *v)
{
	v->allowed = true;
	v->code = 0;
	v->message = NULL;
	v->warnings = NULL;
	v->patch = NULL;
	v->reason = "allowed";
}

void wh_verdict_cleanup(struct wh_verdict *v)
{
	free(v->message);
	json_decref(v->warnings);
	json_decref(v->patch);
	wh_verdict_init(v);
}

int wh_verdict_deny(struct wh_verdict *v, int code, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	free(v->message);
	v->message = msg;
	v->allowed = false;
	v->code = code;
	json_decref(v->patch);
	v->patch = NULL;
	return 0;
}

int wh_verdict_warn(struct wh_verdict *v, const char *msg)
{
	if (!v->warnings) {
		v->warnings = json_array();
		if (!v->warnings)
			return -ENOMEM;
	}
	return json_array_append_new(v->warnings, json_string(msg)) ? -ENOMEM : 0;
}
