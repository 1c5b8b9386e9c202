/*
 * wh_verdict helpers (see verdict.h).
 */
#include "webhook/verdict.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p)
{
	size_t n;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void wh_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = utf8_seq(p);
		if (n == 0) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

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
	wh_utf8_sanitize(msg);
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
	char *copy = strdup(msg);
	int rc;

	if (!copy)
		return -ENOMEM;
	wh_utf8_sanitize(copy);
	if (!v->warnings)
		v->warnings = json_array();
	rc = v->warnings && !json_array_append_new(v->warnings, json_string(copy)) ? 0 : -ENOMEM;
	free(copy);
	return rc;
}
