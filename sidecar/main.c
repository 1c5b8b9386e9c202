/*
 * grpcguard-sidecar: the subcommands `run` (the proxy, listener.c), `init` (iptables,
 * intercept.c) and `check` (validate a policy file). Exit codes: 0 ok, 1 failure,
 * 2 bad command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "policy/policy.h"
#include "sidecar/authn.h"
#include "sidecar/config.h"
#include "sidecar/crypto.h"
#include "sidecar/intercept.h"
#include "sidecar/proxy.h"

/*
 * `check FILE` / `check --policy FILE`: parse the policy, then build its request
 * authentication exactly as `run` does (sc_authn_new), so a jwksFile that is missing or
 * unparseable, or a key set with no usable key, is an error too (exit 1). Notes about
 * skipped keys of an otherwise usable set are printed as warnings (exit 0).
 */
static int check_main(int argc, char **argv)
{
	struct policy *p = NULL;
	struct policy_diag diag = {0};
	struct sc_authn *authn = NULL;
	char *jwks_err = NULL, crypto_err[1024];
	const char *path = NULL;
	size_t unusable;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			puts(
			    "usage: grpcguard-sidecar check [--policy] FILE\n"
			    "Validates a grpcguard policy file as `run` would load it, JWKS files\n"
			    "included: prints FILE:LINE:COLUMN: message (or the unusable key set)\n"
			    "and exits 1 when it is invalid, prints a summary and exits 0 when it "
			    "is "
			    "valid.");
			return 0;
		}
		if (strcmp(arg, "--policy") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "grpcguard-sidecar check: --policy needs a FILE\n");
				return 2;
			}
			arg = argv[i];
		} else if (strncmp(arg, "--policy=", 9) == 0) {
			arg += 9;
		} else if (arg[0] == '-' && arg[1] != '\0') {
			fprintf(stderr, "grpcguard-sidecar check: unknown flag \"%s\"\n", arg);
			return 2;
		}
		if (path) {
			fprintf(stderr, "grpcguard-sidecar check: one FILE only\n");
			return 2;
		}
		path = arg;
	}
	if (!path || !*path) {
		fprintf(stderr,
			"grpcguard-sidecar check: missing FILE (usage: check [--policy] FILE)\n");
		return 2;
	}
	if (policy_parse_file(path, &p, &diag) != 0) {
		fprintf(stderr, "%s\n", diag.text);
		return 1;
	}
	/* Only warnings and errors on stderr (crypto_module_loaded is info). */
	log_init("sidecar", LOGL_WARN);
	if (policy_authn_count(p) > 0 &&
	    sc_crypto_load("requestAuthentication", crypto_err, sizeof(crypto_err)) != 0) {
		fprintf(stderr, "%s: error: %s\n", path, crypto_err);
		goto out;
	}
	if (sc_authn_new(p, &authn, &jwks_err) != 0) {
		fprintf(stderr, "%s: out of memory while loading the JWKS\n", path);
		goto out;
	}
	unusable = sc_authn_unusable(authn);
	if (jwks_err)
		fprintf(stderr, "%s: %s: %s\n", path, unusable ? "error" : "warning", jwks_err);
	if (unusable) {
		fprintf(stderr,
			"%s: %zu requestAuthentication entry(ies) without a usable key set\n", path,
			unusable);
		goto out;
	}
	printf("%s: valid: %zu fault(s), %zu authorization policy(ies), %zu "
	       "requestAuthentication(s), passthrough %s, mtls %s\n",
	       path, policy_fault_count(p), policy_authz_count(p), policy_authn_count(p),
	       policy_passthrough_given(p) != POLICY_PASSTHROUGH_UNSET
		   ? policy_passthrough_name(policy_passthrough_given(p))
		   : "by default (deny on pods an authorization entry selects, else allow)",
	       policy_mtls_given(p) != POLICY_MTLS_UNSET
		   ? policy_mtls_name(policy_mtls_given(p))
		   : "PERMISSIVE by default (plaintext and mutual TLS)");
	rc = 0;
out:
	free(jwks_err);
	sc_authn_free(authn);
	policy_unref(p);
	return rc;
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
