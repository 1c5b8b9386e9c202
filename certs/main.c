/*
 * grpcguard-certgen: issue a CA and the webhook's serving certificate.
 *
 *   grpcguard-certgen --service grpcguard-webhook --namespace grpcguard-system --out DIR
 *                     [--days 365] [--ca-days 3650] [--extra-san localhost]...
 *
 * Exit 0 on success, 1 when generation or writing fails, 2 on a bad flag.
 */
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs/certgen.h"
#include "common/cli.h"
#include "common/log.h"

static void usage(FILE *f)
{
	fputs("usage: grpcguard-certgen --service NAME --namespace NS --out DIR [options]\n"
	      "\n"
	      "Writes DIR/ca.crt (a new self-signed CA), DIR/tls.crt and DIR/tls.key (0600):\n"
	      "an ECDSA P-256 serving certificate for NAME, NAME.NS, NAME.NS.svc and\n"
	      "NAME.NS.svc.cluster.local, signed by that CA. Files are replaced atomically.\n"
	      "\n"
	      "  --service NAME       the webhook's Service name (required)\n"
	      "  --namespace NS       its namespace (required)\n"
	      "  --out DIR            output directory, created if missing (required)\n"
	      "  --days N             serving certificate validity in days (default 365)\n"
	      "  --ca-days N          CA validity in days (default 3650, at least --days)\n"
	      "  --extra-san NAME     add a DNS name or IP address SAN (repeatable),\n"
	      "                       e.g. localhost or 127.0.0.1 for local tests\n"
	      "  --identity-ca        instead: only a workload identity CA (tls.crt, tls.key,\n"
	      "                       ca.crt) for the webhook's /v1/certify, valid --ca-days\n"
	      "  --help               this text\n",
	      f);
}

#define PROG "grpcguard-certgen"

static int parse_days(const char *flag, const char *v, int *out)
{
	unsigned n;

	if (cli_parse_uint(PROG, flag, v, 1, 36500, "a number of days", &n))
		return -1;
	*out = (int)n;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"service", required_argument, NULL, 's'},
					     {"namespace", required_argument, NULL, 'n'},
					     {"out", required_argument, NULL, 'o'},
					     {"days", required_argument, NULL, 'd'},
					     {"ca-days", required_argument, NULL, 'c'},
					     {"extra-san", required_argument, NULL, 'e'},
					     {"identity-ca", no_argument, NULL, 'I'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	bool identity_ca = false;
	struct cg_options o = {.days = 365, .ca_days = 3650};
	char err[1024] = "";
	int c;

	log_init("certgen", LOGL_INFO);
	while ((c = cli_next_flag(PROG, argc, argv, opts)) > 0) {
		switch (c) {
		case 's':
			o.service = optarg;
			break;
		case 'n':
			o.namespace_ = optarg;
			break;
		case 'o':
			o.out_dir = optarg;
			break;
		case 'd':
			if (parse_days("--days", optarg, &o.days))
				return 2;
			break;
		case 'c':
			if (parse_days("--ca-days", optarg, &o.ca_days))
				return 2;
			break;
		case 'e':
			if (o.nextra_sans == CG_MAX_SANS) {
				fprintf(stderr, "grpcguard-certgen: at most %d --extra-san\n",
					CG_MAX_SANS);
				return 2;
			}
			o.extra_sans[o.nextra_sans++] = optarg;
			break;
		case 'I':
			identity_ca = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		}
	}
	if (c < 0)
		return 2;
	if (identity_ca) {
		if (!o.out_dir) {
			fprintf(stderr, "grpcguard-certgen: --identity-ca needs --out DIR\n");
			return 2;
		}
		if (cg_generate_identity_ca(o.out_dir, o.ca_days, err, sizeof(err)) != 0) {
			log_error("certgen_failed", err, "{s:s}", "out", o.out_dir);
			return 1;
		}
		log_info("certgen_done", "wrote the identity CA: tls.crt, tls.key, ca.crt",
			 "{s:s, s:i}", "out", o.out_dir, "days", o.ca_days);
		return 0;
	}
	if (!o.service || !o.namespace_ || !o.out_dir || !*o.service || !*o.namespace_) {
		fprintf(stderr, "grpcguard-certgen: --service, --namespace and --out are required "
				"(see --help)\n");
		return 2;
	}
	if (o.ca_days < o.days)
		o.ca_days = o.days;
	if (cg_generate(&o, err, sizeof(err)) != 0) {
		log_error("certgen_failed", err, "{s:s}", "out", o.out_dir);
		return 1;
	}
	log_info("certgen_done", "wrote ca.crt, tls.crt, tls.key", "{s:s, s:s, s:s, s:i}", "out",
		 o.out_dir, "service", o.service, "namespace", o.namespace_, "days", o.days);
	return 0;
}
