/*
 * Command-line helpers. See cli.h.
 */
#include "common/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

int cli_parse_uint(const char *prog, const char *flag, const char *value, unsigned long min,
		   unsigned long max, const char *what, unsigned *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(value, &end, 10);
	/* strtoul would take leading spaces and a sign ("-1" is ULONG_MAX): digits only. */
	if (*value < '0' || *value > '9' || *end || errno || n < min || n > max) {
		fprintf(stderr, "%s: %s \"%s\": expected %s %lu..%lu\n", prog, flag, value, what,
			min, max);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

int cli_next_flag(const char *prog, int argc, char *const *argv, const struct option *opts)
{
	int c;

	opterr = 0;
	c = getopt_long(argc, argv, "", opts, NULL);
	if (c == '?' || c == ':') {
		fprintf(stderr, "%s: unknown or incomplete flag \"%s\" (see --help)\n", prog,
			argv[optind - 1]);
		return -1;
	}
	if (c == -1 && optind < argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n", prog,
			argv[optind]);
		return -1;
	}
	return c == -1 ? 0 : c;
}
