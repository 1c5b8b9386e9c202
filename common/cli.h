/*
 * Command-line helpers shared by the programs' main(): bounded numeric flag values and
 * the one-line reasons for a bad command line (DESIGN: exit 2 with a one-line reason).
 *
 * Each helper that rejects something writes "<prog>: <reason>" and a newline to stderr
 * and returns the value main() should exit with (2) or a negative number; none exits,
 * logs or keeps state.
 */
#ifndef GRPCGUARD_CLI_H
#define GRPCGUARD_CLI_H

/*
 * A flag's value as a decimal integer in min..max: only digits, no sign or spaces, no
 * overflow. On success 0 and *out; otherwise *out is untouched and stderr gets
 * <prog>: <flag> "<value>": expected <what> <min>..<max>
 * where what is, e.g., "a number" or "a number of days"; returns -1.
 */
int cli_parse_uint(const char *prog, const char *flag, const char *value, unsigned long min,
		   unsigned long max, const char *what, unsigned *out);

struct option;

/*
 * getopt_long() with our messages, for the loop in main():
 *     while ((c = cli_next_flag(PROG, argc, argv, opts)) > 0) switch (c) { ... }
 *     if (c < 0) return 2;
 * Returns the next flag's val (> 0: every entry of opts must have flag NULL and val > 0);
 * 0 at the end of the flags when no other argument follows; -1 after writing
 *   <prog>: unknown or incomplete flag "<arg>" (see --help)
 *   <prog>: unexpected argument "<arg>" (see --help)
 * Turns getopt's own messages off (opterr).
 */
int cli_next_flag(const char *prog, int argc, char *const *argv, const struct option *opts);

#endif
