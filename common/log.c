/*
 * JSON-lines logger. See log.h. Does not buffer: each line is one write(2) to fd 2.
 *
 * JSON strings must be UTF-8, and jansson refuses anything else. A message that carries
 * bytes from a peer (a header value, a path) may not be, so msg and event are repaired
 * (each invalid byte becomes U+FFFD) rather than losing the line.
 */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

static const char *log_comp = "grpcguard";
static enum log_level log_min = LOGL_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *comp, enum log_level min_level)
{
	log_comp = comp;
	log_min = min_level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOGL_WARN;
		return 0;
	}
	return -1;
}

bool log_enabled(enum log_level level)
{
	return level >= log_min;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when s[0] does not start one. */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the terminating NUL */
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, out of range, or a UTF-16 surrogate */
	return n;
}

/*
 * s when it is valid UTF-8; otherwise a new malloc'd copy in *fixed (also returned) with
 * each invalid byte replaced by U+FFFD. Returns "" if that copy cannot be allocated.
 */
static const char *utf8_repair(const char *s, char **fixed)
{
	const unsigned char *p;
	size_t n, bad = 0;
	char *out, *o;

	for (p = (const unsigned char *)s; *p; p += n ? n : 1) {
		n = utf8_seq_len(p);
		bad += n == 0;
	}
	if (!bad)
		return s;
	out = malloc(strlen(s) + bad * 2 + 1); /* 1 byte becomes 3 */
	if (!out)
		return "";
	for (p = (const unsigned char *)s, o = out; *p; p += n ? n : 1) {
		n = utf8_seq_len(p);
		if (n) {
			memcpy(o, p, n);
			o += n;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
	}
	*o = '\0';
	*fixed = out;
	return out;
}

static void write_all(const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
}

void log_emit(enum log_level level, const char *event, const char *msg, const char *fields_fmt, ...)
{
	json_t *line = NULL, *fields = NULL;
	char *text = NULL, *fixed_msg = NULL, *fixed_event = NULL;
	char ts[96];
	struct timespec now;
	struct tm tm;

	if (!log_enabled(level))
		return;
	if ((unsigned)level > LOGL_ERROR)
		level = LOGL_ERROR;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(now.tv_nsec / 1000000));

	line = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "comp",
			 log_comp ? log_comp : "", "event",
			 utf8_repair(event ? event : "", &fixed_event), "msg",
			 utf8_repair(msg ? msg : "", &fixed_msg));
	if (!line)
		goto out;
	if (fields_fmt) {
		va_list ap;
		json_error_t err;

		va_start(ap, fields_fmt);
		fields = json_vpack_ex(&err, 0, fields_fmt, ap);
		va_end(ap);
		/* A caller's bad format must not lose the line: say so in a field instead. */
		if (fields && json_is_object(fields))
			json_object_update_missing(line, fields);
		else
			json_object_set_new(
			    line, "log_error",
			    json_string(fields ? "fields are not an object" : err.text));
	}
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text) {
		size_t len = strlen(text);

		text[len] = '\0';
		/* One write for the line and its newline, so threads do not interleave. */
		char stackbuf[2048];
		if (len + 1 <= sizeof(stackbuf)) {
			memcpy(stackbuf, text, len);
			stackbuf[len] = '\n';
			write_all(stackbuf, len + 1);
		} else {
			char *big = malloc(len + 1);
			if (big) {
				memcpy(big, text, len);
				big[len] = '\n';
				write_all(big, len + 1);
				free(big);
			}
		}
	}
out:
	free(fixed_msg);
	free(fixed_event);
	free(text);
	json_decref(fields);
	json_decref(line);
}
