/*
 * grpcguard-certgen's engine: a self-signed CA and an ECDSA P-256 serving certificate for
 * the webhook's Service, written as PEM files (OpenSSL 3 EVP API).
 *
 * It issues certificates; it does not renew, watch or install them (the chart or the user
 * does that, and the webhook picks up replaced files on its own).
 */
#ifndef GRPCGUARD_CERTGEN_H
#define GRPCGUARD_CERTGEN_H

#include <stddef.h>

#define CG_MAX_SANS 32

struct cg_options {
	const char *service;		     /* e.g. "grpcguard-webhook" */
	const char *namespace_;		     /* e.g. "grpcguard-system" */
	const char *out_dir;		     /* existing directory or one certgen may create */
	int days;			     /* validity of the serving certificate, 1..3650 */
	int ca_days;			     /* validity of the CA, >= days */
	const char *extra_sans[CG_MAX_SANS]; /* "localhost", "127.0.0.1", "::1" ... */
	size_t nextra_sans;
};

/*
 * The DNS names the serving certificate carries for service/namespace, in order:
 * svc, svc.ns, svc.ns.svc, svc.ns.svc.cluster.local. Writes up to 4 new strings into
 * out[] and returns how many (4), or -ENOMEM. The caller frees each.
 */
int cg_service_sans(const char *service, const char *ns, char *out[4]);

/*
 * Generate the CA and serving certificate and write out_dir/ca.crt, tls.crt (the leaf)
 * and tls.key (PKCS#8, mode 0600). Each file is written to a temporary name and renamed,
 * so a reader never sees half a file. Returns 0, or negative with a message in
 * err[errlen] (what failed and why). Files already written are left in place on failure.
 */
int cg_generate(const struct cg_options *o, char *err, size_t errlen);

/*
 * The workload identity CA (issue 16, separate from the serving CA): an ECDSA P-256
 * self-signed CA (CA:TRUE, pathlen:0, keyCertSign) valid `days`, written as out_dir/tls.crt,
 * tls.key (0600) and ca.crt (the same certificate: the trust bundle), atomically each.
 * Returns 0 or negative with a message in err.
 */
int cg_generate_identity_ca(const char *out_dir, int days, char *err, size_t errlen);

#endif
