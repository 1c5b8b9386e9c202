/*
 * common/cli: bounded numeric flag values (digits only, min..max, no overflow) and the
 * flag loop's one-line reasons for a bad command line, read back from stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "tests/unit/runner.h"

static FILE *capture;
static int saved_stderr = -1;

static void setup(void)
{
	ut_stderr_capture(&capture, &saved_stderr);
}

static void teardown(void)
{
	ut_stderr_restore(capture, saved_stderr);
}

/* What was written to stderr since setup or the last call (which it then forgets). */
static const char *captured(void)
{
	static char buf[512];
	size_t n;

	fflush(stderr);
	rewind(capture);
	n = fread(buf, 1, sizeof(buf) - 1, capture);
	buf[n] = '\0';
	/* fd 2 shares capture's file offset: back to 0 on an empty file. */
	ck_assert_int_eq(ftruncate(fileno(capture), 0), 0);
	rewind(capture);
	return buf;
}

START_TEST(accepts_range)
{
	unsigned v = 0;

	ck_assert_int_eq(cli_parse_uint("p", "--n", "1", 1, 600, "a number", &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(cli_parse_uint("p", "--n", "600", 1, 600, "a number", &v), 0);
	ck_assert_uint_eq(v, 600);
	ck_assert_int_eq(cli_parse_uint("p", "--n", "007", 1, 600, "a number", &v), 0);
	ck_assert_uint_eq(v, 7);
	ck_assert_str_eq(captured(), "");
}
END_TEST

START_TEST(rejects)
{
	static const char *const bad[] = {
	    "0", "601", "", "-1", "+5", " 5", "5x", "5 ", "0x5", "1e2", "99999999999999999999999"};
	unsigned v = 42;

	for (size_t i = 0; i < UT_COUNT(bad); i++) {
		ck_assert_msg(cli_parse_uint("p", "--n", bad[i], 1, 600, "a number", &v) == -1,
			      "\"%s\" accepted", bad[i]);
		ck_assert_uint_eq(v, 42); /* untouched */
	}
}
END_TEST

START_TEST(message)
{
	unsigned v;

	ck_assert_int_eq(
	    cli_parse_uint("grpcguard-certgen", "--days", "x", 1, 36500, "a number of days", &v),
	    -1);
	ck_assert_str_eq(captured(),
			 "grpcguard-certgen: --days \"x\": expected a number of days 1..36500\n");
}
END_TEST

static const struct option opts[] = {
    {"days", required_argument, NULL, 'd'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};

START_TEST(flags)
{
	char *argv[] = {"prog", "--days", "3", "--help", NULL};

	optind = 0; /* glibc: start over */
	ck_assert_int_eq(cli_next_flag("prog", 4, argv, opts), 'd');
	ck_assert_str_eq(optarg, "3");
	ck_assert_int_eq(cli_next_flag("prog", 4, argv, opts), 'h');
	ck_assert_int_eq(cli_next_flag("prog", 4, argv, opts), 0);
	ck_assert_str_eq(captured(), "");
}
END_TEST

START_TEST(bad_command_lines)
{
	static const struct {
		const char *argv[4];
		int flags_first; /* flags returned before the -1 */
		const char *message;
	} cases[] = {
	    {{"prog", "--help", "--bogus"}, 1, "unknown or incomplete flag \"--bogus\""},
	    {{"prog", "--days"}, 0, "unknown or incomplete flag \"--days\""},
	    {{"prog", "-x"}, 0, "unknown or incomplete flag \"-x\""},
	    {{"prog", "--help", "extra"}, 1, "unexpected argument \"extra\""},
	};
	char want[256];

	for (size_t i = 0; i < UT_COUNT(cases); i++) {
		char **argv = (char **)cases[i].argv;
		int argc = 0;

		while (argv[argc])
			argc++;
		optind = 0;
		for (int f = 0; f < cases[i].flags_first; f++)
			ck_assert_int_gt(cli_next_flag("prog", argc, argv, opts), 0);
		ck_assert_int_eq(cli_next_flag("prog", argc, argv, opts), -1);
		snprintf(want, sizeof(want), "prog: %s (see --help)\n", cases[i].message);
		ck_assert_str_eq(captured(), want);
	}
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"accepts_range", accepts_range},
	    {"rejects", rejects},
	    {"message", message},
	    {"flags", flags},
	    {"bad_command_lines", bad_command_lines},
	};
	return UT_RUN("common/cli", cases, .timeout_s = 10, .setup = setup, .teardown = teardown);
}
