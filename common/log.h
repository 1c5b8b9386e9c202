/*
 * JSON-lines logging to stderr, shared by every grpcguard program.
 *
 * One object per line: ts (RFC 3339 UTC, ms), level, comp, event (stable identifier),
 * msg (human text), then the caller's fields. Built with jansson so escaping is right;
 * each line is written with a single write(2) so threads do not interleave. Never log
 * bodies, tokens or keys.
 */
#ifndef GRPCGUARD_LOG_H
#define GRPCGUARD_LOG_H

#include <stdbool.h>

enum log_level { LOGL_DEBUG = 0, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

/* Component name ("webhook", "sidecar", ...) and the lowest level written. */
void log_init(const char *comp, enum log_level min_level);
/* "debug" | "info" | "warn" | "error" -> 0 and *out, or -1. */
int log_level_parse(const char *s, enum log_level *out);
bool log_enabled(enum log_level level);

/*
 * Write one line. fields_fmt is a jansson json_pack() format for an object whose members
 * are added after msg, e.g. log_emit(LOGL_INFO, "reload", "policy reloaded",
 * "{s:s, s:I}", "file", path, "generation", (json_int_t)gen). fields_fmt may be NULL.
 * Check log_enabled() first when building the arguments is costly.
 */
void log_emit(enum log_level level, const char *event, const char *msg, const char *fields_fmt,
	      ...);

#define log_debug(ev, msg, ...)                                                                    \
	do {                                                                                       \
		if (log_enabled(LOGL_DEBUG))                                                       \
			log_emit(LOGL_DEBUG, ev, msg, __VA_ARGS__);                                \
	} while (0)
#define log_info(ev, msg, ...) log_emit(LOGL_INFO, ev, msg, __VA_ARGS__)
#define log_warn(ev, msg, ...) log_emit(LOGL_WARN, ev, msg, __VA_ARGS__)
#define log_error(ev, msg, ...) log_emit(LOGL_ERROR, ev, msg, __VA_ARGS__)

#endif
