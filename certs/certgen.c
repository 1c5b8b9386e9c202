/*
 * Certificate generation for grpcguard-certgen (see certgen.h). OpenSSL 3 EVP only:
 * EVP_PKEY_Q_keygen for keys, X509 + X509V3 extensions for the certificates.
 *
 * The CA's private key is never written: to rotate, run certgen again and update the
 * webhook's caBundle together with its Secret (the chart does both).
 */
#include "certs/certgen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Backdate notBefore so nodes whose clocks lag a little accept a fresh certificate. */
#define CG_BACKDATE_SECONDS (5 * 60)

static void set_err(char *err, size_t errlen, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
	ERR_clear_error();
}

int cg_service_sans(const char *service, const char *ns, char *out[4])
{
	int n[4];

	n[0] = asprintf(&out[0], "%s", service);
	n[1] = asprintf(&out[1], "%s.%s", service, ns);
	n[2] = asprintf(&out[2], "%s.%s.svc", service, ns);
	n[3] = asprintf(&out[3], "%s.%s.svc.cluster.local", service, ns);
	if (n[0] < 0 || n[1] < 0 || n[2] < 0 || n[3] < 0) {
		for (int i = 0; i < 4; i++) {
			if (n[i] >= 0)
				free(out[i]);
			out[i] = NULL;
		}
		return -ENOMEM;
	}
	return 4;
}

/* Adds one extension given in OpenSSL's config syntax. 0 or -1. */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	rc = X509_add_ext(cert, ext, -1) ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

static int random_serial(X509 *cert)
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	int rc = -1;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	raw[0] &= 0x7f; /* positive, as RFC 5280 requires */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
		rc = 0;
	BN_free(bn);
	return rc;
}

/*
 * A new certificate for `key` named `cn`, valid for `days`, with its extensions in
 * `exts` (nid, value pairs ending at 0), signed by issuer_key (self-signed when issuer is
 * NULL). Returns a new X509 or NULL.
 */
static X509 *make_cert(EVP_PKEY *key, const char *cn, int days, X509 *issuer, EVP_PKEY *issuer_key,
		       const int *nids, const char *const *values)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	if (!cert)
		return NULL;
	if (!X509_set_version(cert, 2) || random_serial(cert) != 0)
		goto fail;
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -CG_BACKDATE_SECONDS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL))
		goto fail;
	if (!X509_set_pubkey(cert, key))
		goto fail;
	name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"grpcguard",
					-1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0))
		goto fail;
	if (!X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name))
		goto fail;
	for (size_t i = 0; nids[i]; i++) {
		if (add_ext(cert, issuer ? issuer : cert, nids[i], values[i]) != 0)
			goto fail;
	}
	if (!X509_sign(cert, issuer_key, EVP_sha256()))
		goto fail;
	return cert;
fail:
	X509_free(cert);
	return NULL;
}

/* Writes the PEM that `emit` produces to dir/name atomically with `mode`. 0 or -1. */
static int write_pem(const char *dir, const char *name, mode_t mode, X509 *cert, EVP_PKEY *key,
		     char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	BIO *bio = NULL;
	int fd = -1, rc = -1;
	FILE *f = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp.%ld", dir, name, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
		goto out;
	}
	(void)fchmod(fd, mode); /* the umask must not widen or narrow what we asked for */
	f = fdopen(fd, "w");
	if (!f) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	bio = BIO_new_fp(f, BIO_NOCLOSE);
	if (!bio || (cert && !PEM_write_bio_X509(bio, cert)) ||
	    (key && !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))) {
		set_err(err, errlen, "writing PEM");
		goto out;
	}
	BIO_free(bio);
	bio = NULL;
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* Appends "DNS:x" or "IP:x" for each SAN to a comma list. New string or NULL. */
static char *san_list(char *const *dns, size_t ndns, const char *const *extra, size_t nextra)
{
	size_t cap = 1, len = 0;
	char *s;

	for (size_t i = 0; i < ndns; i++)
		cap += strlen(dns[i]) + 6;
	for (size_t i = 0; i < nextra; i++)
		cap += strlen(extra[i]) + 6;
	s = malloc(cap);
	if (!s)
		return NULL;
	s[0] = '\0';
	for (size_t i = 0; i < ndns + nextra; i++) {
		const char *v = i < ndns ? dns[i] : extra[i - ndns];
		unsigned char buf[16];
		bool ip = inet_pton(AF_INET, v, buf) == 1 || inet_pton(AF_INET6, v, buf) == 1;
		len += (size_t)snprintf(s + len, cap - len, "%s%s:%s", i ? "," : "",
					ip ? "IP" : "DNS", v);
	}
	return s;
}

/* True for a SAN we accept from the command line: a DNS name or an IP literal. */
static bool san_ok(const char *v)
{
	if (!*v || strlen(v) > 253)
		return false;
	for (const char *p = v; *p; p++) {
		if (!(*p == '.' || *p == '-' || *p == ':' || *p == '*' ||
		      (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z')))
			return false;
	}
	return true;
}

int cg_generate(const struct cg_options *o, char *err, size_t errlen)
{
	static const int ca_nids[] = {NID_basic_constraints, NID_key_usage,
				      NID_subject_key_identifier, 0};
	static const char *const ca_vals[] = {"critical,CA:TRUE,pathlen:0",
					      "critical,keyCertSign,cRLSign", "hash"};
	int leaf_nids[] = {NID_basic_constraints,
			   NID_key_usage,
			   NID_ext_key_usage,
			   NID_subject_key_identifier,
			   NID_authority_key_identifier,
			   NID_subject_alt_name,
			   0};
	const char *leaf_vals[6] = {"critical,CA:FALSE", "critical,digitalSignature",
				    "serverAuth",	 "hash",
				    "keyid:always",	 NULL};
	EVP_PKEY *ca_key = NULL, *leaf_key = NULL;
	X509 *ca = NULL, *leaf = NULL;
	char *dns[4] = {NULL, NULL, NULL, NULL};
	char *sans = NULL;
	int rc = -1;

	for (size_t i = 0; i < o->nextra_sans; i++) {
		if (!san_ok(o->extra_sans[i])) {
			snprintf(err, errlen, "--extra-san \"%s\": not a DNS name or IP address",
				 o->extra_sans[i]);
			return -EINVAL;
		}
	}
	if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create directory: %s", o->out_dir,
			 strerror(errno));
		return -errno;
	}
	if (cg_service_sans(o->service, o->namespace_, dns) < 0) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	sans = san_list(dns, 4, o->extra_sans, o->nextra_sans);
	if (!sans) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	leaf_vals[5] = sans;

	ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	leaf_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!ca_key || !leaf_key) {
		set_err(err, errlen, "generating ECDSA P-256 keys");
		goto out;
	}
	ca = make_cert(ca_key, "grpcguard-ca", o->ca_days, NULL, ca_key, ca_nids, ca_vals);
	if (!ca) {
		set_err(err, errlen, "building the CA certificate");
		goto out;
	}
	leaf = make_cert(leaf_key, dns[2], o->days, ca, ca_key, leaf_nids, leaf_vals);
	if (!leaf) {
		set_err(err, errlen, "building the serving certificate");
		goto out;
	}
	/* Key first: a watcher that sees a new tls.crt then finds the key it belongs to. */
	if (write_pem(o->out_dir, "ca.crt", 0644, ca, NULL, err, errlen) != 0 ||
	    write_pem(o->out_dir, "tls.key", 0600, NULL, leaf_key, err, errlen) != 0 ||
	    write_pem(o->out_dir, "tls.crt", 0644, leaf, NULL, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
	for (int i = 0; i < 4; i++)
		free(dns[i]);
	free(sans);
	return rc;
}

int cg_generate_identity_ca(const char *out_dir, int days, char *err, size_t errlen)
{
	static const int nids[] = {NID_basic_constraints, NID_key_usage, NID_subject_key_identifier,
				   0};
	/* pathlen:0: it signs workload leaves only, never another CA. */
	static const char *const vals[] = {"critical,CA:TRUE,pathlen:0",
					   "critical,keyCertSign,cRLSign", "hash"};
	EVP_PKEY *key = NULL;
	X509 *ca = NULL;
	int rc = -1;

	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create directory: %s", out_dir, strerror(errno));
		return -errno;
	}
	key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!key) {
		set_err(err, errlen, "generating an ECDSA P-256 key");
		goto out;
	}
	ca = make_cert(key, "grpcguard identity CA", days, NULL, key, nids, vals);
	if (!ca) {
		set_err(err, errlen, "building the identity CA certificate");
		goto out;
	}
	if (write_pem(out_dir, "tls.key", 0600, NULL, key, err, errlen) != 0 ||
	    write_pem(out_dir, "tls.crt", 0644, ca, NULL, err, errlen) != 0 ||
	    write_pem(out_dir, "ca.crt", 0644, ca, NULL, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	X509_free(ca);
	EVP_PKEY_free(key);
	return rc;
}
