/*
 * common/log: every line written to stderr parses back as one JSON object with ts, level,
 * comp, event, msg first; escaping, invalid UTF-8, levels, bad field formats, long lines
 * and concurrent writers.
 */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/unit/runner.h"

static FILE *capture;
static int saved_stderr = -1;

/* Redirect fd 2 to a temporary file for the duration of one test. */
static void setup(void)
{
	ut_stderr_capture(&capture, &saved_stderr);
	log_init("test", LOGL_INFO);
}

static void teardown(void)
{
	ut_stderr_restore(capture, saved_stderr);
}

/* Every captured line, parsed; fails the test if one is not a JSON object. */
static json_t *captured_lines(void)
{
	json_t *arr = json_array();
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	fflush(capture);
	rewind(capture);
	while ((n = getline(&line, &cap, capture)) > 0) {
		json_error_t err;
		ck_assert_msg(line[n - 1] == '\n', "line not newline-terminated");
		json_t *obj = json_loadb(line, (size_t)n, 0, &err);
		ck_assert_msg(obj && json_is_object(obj), "not JSON: %s (%s)", line, err.text);
		json_array_append_new(arr, obj);
	}
	free(line);
	return arr;
}

static const char *field(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

START_TEST(test_line_shape)
{
	log_info("policy_reload", "policy reloaded", "{s:s, s:I}", "file", "/p.yaml", "generation",
		 (json_int_t)7);
	json_t *lines = captured_lines();
	ck_assert_uint_eq(json_array_size(lines), 1);
	json_t *o = json_array_get(lines, 0);
	const char *keys[] = {"ts", "level", "comp", "event", "msg", "file", "generation"};
	size_t i;
	/* Stable key order: the five fixed keys first, then the caller's. */
	fflush(capture);
	rewind(capture);
	char raw[1024];
	ck_assert_ptr_nonnull(fgets(raw, sizeof(raw), capture));
	const char *pos = raw;
	for (i = 0; i < 7; i++) {
		char quoted[64];
		snprintf(quoted, sizeof(quoted), "\"%s\":", keys[i]);
		const char *at = strstr(pos, quoted);
		ck_assert_msg(at != NULL, "key %s missing or out of order in %s", keys[i], raw);
		pos = at;
	}
	ck_assert_str_eq(field(o, "level"), "info");
	ck_assert_str_eq(field(o, "comp"), "test");
	ck_assert_str_eq(field(o, "event"), "policy_reload");
	ck_assert_str_eq(field(o, "msg"), "policy reloaded");
	ck_assert_str_eq(field(o, "file"), "/p.yaml");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "generation")), 7);
	/* RFC 3339 UTC with milliseconds: 2026-01-02T03:04:05.678Z */
	const char *ts = field(o, "ts");
	int y, mo, d, h, mi, s, ms;
	char z;
	ck_assert_int_eq(strlen(ts), 24);
	ck_assert_int_eq(
	    sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &y, &mo, &d, &h, &mi, &s, &ms, &z), 8);
	ck_assert_int_eq(z, 'Z');
	json_decref(lines);
}
END_TEST

START_TEST(test_escaping)
{
	const char *nasty =
	    "quote \" backslash \\ newline \n tab \t ctl \x01 caf\xc3\xa9 \xe2\x82\xac";
	log_warn("esc", nasty, "{s:s}", "peer", "a\"b\nc");
	log_error("bad_utf8", "bytes \xff\xfe end \xc3", "{s:s}", "k", "v");
	json_t *lines = captured_lines();
	ck_assert_uint_eq(json_array_size(lines), 2);
	json_t *o = json_array_get(lines, 0);
	ck_assert_str_eq(field(o, "msg"), nasty);
	ck_assert_str_eq(field(o, "peer"), "a\"b\nc");
	ck_assert_str_eq(field(o, "level"), "warn");
	/* Invalid UTF-8 is repaired, the line is not lost. */
	o = json_array_get(lines, 1);
	ck_assert_str_eq(field(o, "msg"), "bytes \xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd");
	ck_assert_str_eq(field(o, "level"), "error");
	ck_assert_str_eq(field(o, "k"), "v");
	json_decref(lines);
}
END_TEST

START_TEST(test_levels)
{
	enum log_level l;

	ck_assert_int_eq(log_level_parse("debug", &l), 0);
	ck_assert_int_eq(l, LOGL_DEBUG);
	ck_assert_int_eq(log_level_parse("warning", &l), 0);
	ck_assert_int_eq(l, LOGL_WARN);
	ck_assert_int_eq(log_level_parse("error", &l), 0);
	ck_assert_int_eq(l, LOGL_ERROR);
	ck_assert_int_eq(log_level_parse("verbose", &l), -1);
	ck_assert_int_eq(log_level_parse("", &l), -1);

	ck_assert(!log_enabled(LOGL_DEBUG));
	ck_assert(log_enabled(LOGL_INFO));
	log_debug("hidden", "not written", NULL);
	log_info("shown", "written", NULL);
	log_init("test", LOGL_ERROR);
	log_warn("hidden2", "not written", NULL);
	log_error("shown2", "written", NULL);
	log_init("test", LOGL_DEBUG);
	log_debug("shown3", "written", NULL);
	json_t *lines = captured_lines();
	ck_assert_uint_eq(json_array_size(lines), 3);
	ck_assert_str_eq(field(json_array_get(lines, 0), "event"), "shown");
	ck_assert_str_eq(field(json_array_get(lines, 1), "event"), "shown2");
	ck_assert_str_eq(field(json_array_get(lines, 2), "event"), "shown3");
	ck_assert_str_eq(field(json_array_get(lines, 2), "level"), "debug");
	json_decref(lines);
}
END_TEST

START_TEST(test_bad_fields)
{
	/* A format error or non-object fields: the line is still written, flagged. */
	log_info("badfmt", "m1", "{s:s", "k", "v");
	log_info("notobj", "m2", "[s]", "x");
	log_info("noover", "m3", "{s:s}", "level", "forged");
	json_t *lines = captured_lines();
	ck_assert_uint_eq(json_array_size(lines), 3);
	ck_assert_ptr_nonnull(field(json_array_get(lines, 0), "log_error"));
	ck_assert_str_eq(field(json_array_get(lines, 0), "msg"), "m1");
	ck_assert_ptr_nonnull(field(json_array_get(lines, 1), "log_error"));
	/* Caller fields never override the fixed keys. */
	ck_assert_str_eq(field(json_array_get(lines, 2), "level"), "info");
	json_decref(lines);
}
END_TEST

START_TEST(test_long_line)
{
	size_t n = 100000;
	char *big = malloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	log_info("big", big, NULL);
	json_t *lines = captured_lines();
	ck_assert_uint_eq(json_array_size(lines), 1);
	ck_assert_uint_eq(strlen(field(json_array_get(lines, 0), "msg")), n);
	json_decref(lines);
	free(big);
}
END_TEST

#define NTHREADS 4
#define NLINES 250

static void *writer(void *arg)
{
	for (int i = 0; i < NLINES; i++)
		log_info("concurrent", "a line from a writer thread with some padding text",
			 "{s:i, s:i}", "thread", (int)(intptr_t)arg, "i", i);
	return NULL;
}

START_TEST(test_threads_do_not_interleave)
{
	pthread_t t[NTHREADS];
	for (intptr_t i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, writer, (void *)i), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	json_t *lines = captured_lines(); /* fails on any torn line */
	ck_assert_uint_eq(json_array_size(lines), NTHREADS * NLINES);
	json_decref(lines);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"line_shape", test_line_shape}, {"escaping", test_escaping},
	    {"levels", test_levels},	     {"bad_fields", test_bad_fields},
	    {"long_line", test_long_line},   {"threads", test_threads_do_not_interleave},
	};
	return UT_RUN("common/log", tests, .timeout_s = 20, .setup = setup, .teardown = teardown);
}
