/*
 * grpcguard-sidecar: the subcommands `run` (the proxy, listener.c), `init` (iptables,
 * intercept.c) and `check` (validate a policy file). Exit codes: 0 ok, 1 failure,
 * 2 bad command line.
 */
#include <stdio.h>
#include <string.h>

#include "policy/policy.h"
#include "sidecar/config.h"
#include "sidecar/intercept.h"
#include "sidecar/proxy.h"

static int check_main(int argc, char **argv)
{
	struct policy *p = NULL;
	struct policy_diag diag = {0};
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			puts("usage: grpcguard-sidecar check FILE\n"
			     "Validates a grpcguard policy file: prints FILE:LINE:COLUMN: message "
			     "and\n"
			     "exits 1 when it is invalid, prints a summary and exits 0 when it is "
			     "valid.");
			return 0;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "grpcguard-sidecar check: unknown flag \"%s\"\n", argv[i]);
			return 2;
		}
		if (path) {
			fprintf(stderr, "grpcguard-sidecar check: one FILE only\n");
			return 2;
		}
		path = argv[i];
	}
	if (!path) {
		fprintf(stderr, "grpcguard-sidecar check: missing FILE (usage: check FILE)\n");
		return 2;
	}
	if (policy_parse_file(path, &p, &diag) != 0) {
		fprintf(stderr, "%s\n", diag.text);
		return 1;
	}
	printf("%s: valid: %zu fault(s), %zu authorization policy(ies), %zu "
	       "requestAuthentication(s)\n",
	       path, policy_fault_count(p), policy_authz_count(p), policy_authn_count(p));
	policy_unref(p);
	return 0;
}

int main(int argc, char **argv)
{
	struct sc_config cfg;
	char err[512];
	int r;

	if (argc < 2) {
		fputs(sc_usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(sc_usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "init") == 0)
		return sc_init_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "check") == 0)
		return check_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") != 0) {
		fprintf(
		    stderr,
		    "grpcguard-sidecar: unknown subcommand \"%s\" (run, init, check; see --help)\n",
		    argv[1]);
		return 2;
	}
	sc_config_defaults(&cfg);
	r = sc_config_parse(argc - 1, argv + 1, &cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "grpcguard-sidecar run: %s\n", err);
		return 2;
	}
	if (r > 0)
		return 0;
	return sc_run_main(&cfg);
}
