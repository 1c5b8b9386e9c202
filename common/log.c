/*
 * JSON-lines logger. See log.h. Does not buffer: each line is one write(2) to fd 2.
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

void log_emit(enum log_level level, const char *event, const char *msg,
	      const char *fields_fmt, ...)
{
	json_t *line = NULL, *fields = NULL;
	char *text = NULL;
	char ts[96];
	struct timespec now;
	struct tm tm;

	if (!log_enabled(level))
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(now.tv_nsec / 1000000));

	line = json_pack("{s:s, s:s, s:s, s:s, s:s}", "ts", ts, "level", level_names[level],
			 "comp", log_comp, "event", event ? event : "", "msg", msg ? msg : "");
	if (!line)
		goto out;
	if (fields_fmt) {
		va_list ap;
		json_error_t err;

		va_start(ap, fields_fmt);
		fields = json_vpack_ex(&err, 0, fields_fmt, ap);
		va_end(ap);
		if (fields && json_is_object(fields))
			json_object_update_missing(line, fields);
		else
			json_object_set_new(line, "log_error", json_string(err.text));
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
	free(text);
	json_decref(fields);
	json_decref(line);
}
