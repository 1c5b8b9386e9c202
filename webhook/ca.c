/*
 * The identity CA (see ca.h). The leaf is built from scratch: a random 127-bit serial, an
 * empty subject (the identity is the SAN, marked critical as RFC 5280 asks then), the
 * CSR's public key and our own extensions. The CSR's subject and extensions are never
 * copied.
 */
#include "webhook/ca.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/fileio.h"

#define MAX_CA_FILE_BYTES (1024 * 1024)

struct wh_ca {
	X509 *cert;
	EVP_PKEY *key;
	char *chain_tail; /* PEM of the non-self-signed certificates of the CA file ("" none) */
	char *bundle;	  /* PEM trust bundle */
	time_t not_after;
};

void wh_ca_free(struct wh_ca *ca)
{
	if (!ca)
		return;
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	free(ca->chain_tail);
	free(ca->bundle);
	free(ca);
}

const char *wh_ca_bundle(const struct wh_ca *ca)
{
	return ca->bundle;
}

time_t wh_ca_not_after(const struct wh_ca *ca)
{
	return ca->not_after;
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	return ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : 0;
}

static bool self_signed(X509 *x)
{
	return X509_check_issued(x, x) == X509_V_OK;
}

/* PEM of x appended to *buf (a new or grown string). */
static int append_pem(char **buf, X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *nb;
	long n;
	size_t have = *buf ? strlen(*buf) : 0;
	int rc = -ENOMEM;

	if (!b || !PEM_write_bio_X509(b, x))
		goto out;
	n = BIO_get_mem_data(b, &data);
	nb = realloc(*buf, have + (size_t)n + 1);
	if (!nb)
		goto out;
	memcpy(nb + have, data, (size_t)n);
	nb[have + (size_t)n] = '\0';
	*buf = nb;
	rc = 0;
out:
	BIO_free(b);
	return rc;
}

struct wh_ca *wh_ca_load_pem(const char *cert_pem, size_t cert_len, const char *key_pem,
			     size_t key_len, const char *bundle_pem, char *err, size_t errlen)
{
	struct wh_ca *ca = calloc(1, sizeof(*ca));
	BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
	BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
	X509 *extra = NULL, *last = NULL;
	bool ok = false;

	if (!ca || !cb || !kb) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ca->chain_tail = strdup("");
	if (!ca->chain_tail) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ca->cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (!ca->cert) {
		snprintf(err, errlen, "certificate: no PEM certificate found");
		goto out;
	}
	ca->key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (!ca->key) {
		snprintf(err, errlen,
			 "key: no PEM private key found (unencrypted PKCS#8, EC or RSA expected)");
		goto out;
	}
	if (X509_check_private_key(ca->cert, ca->key) != 1) {
		snprintf(err, errlen, "the private key does not match the CA certificate");
		goto out;
	}
	if (X509_check_ca(ca->cert) != 1 || !(X509_get_extension_flags(ca->cert) & EXFLAG_BCONS)) {
		snprintf(err, errlen,
			 "the certificate is not a CA (needs basicConstraints CA:TRUE and, if "
			 "keyUsage is present, keyCertSign): make one with grpcguard-certgen "
			 "--identity-ca");
		goto out;
	}
	ca->not_after = asn1_to_time(X509_get0_notAfter(ca->cert));
	if (!self_signed(ca->cert) && append_pem(&ca->chain_tail, ca->cert) != 0)
		goto nomem;
	last = ca->cert;
	while ((extra = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL) {
		if (!self_signed(extra) && append_pem(&ca->chain_tail, extra) != 0)
			goto nomem;
		if (last != ca->cert)
			X509_free(last);
		last = extra;
		extra = NULL;
	}
	ERR_clear_error();
	if (bundle_pem) {
		ca->bundle = strdup(bundle_pem);
		if (!ca->bundle)
			goto nomem;
	} else if (append_pem(&ca->bundle, last) != 0) {
		goto nomem;
	}
	ok = true;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	if (last && ca && last != ca->cert)
		X509_free(last);
	X509_free(extra);
	ERR_clear_error();
	BIO_free(cb);
	BIO_free(kb);
	if (!ok) {
		wh_ca_free(ca);
		return NULL;
	}
	return ca;
}

struct wh_ca *wh_ca_load(const char *cert_path, const char *key_path, const char *bundle_path,
			 char *err, size_t errlen)
{
	char *cert = NULL, *key = NULL, *bundle = NULL, sub[512];
	size_t cert_len = 0, key_len = 0, bundle_len = 0;
	struct wh_ca *ca = NULL;

	if (fileio_read_bounded(cert_path, MAX_CA_FILE_BYTES, &cert, &cert_len, err, errlen) ||
	    fileio_read_bounded(key_path, MAX_CA_FILE_BYTES, &key, &key_len, err, errlen))
		goto out;
	if (bundle_path && *bundle_path &&
	    fileio_read_bounded(bundle_path, MAX_CA_FILE_BYTES, &bundle, &bundle_len, err, errlen))
		goto out;
	if (bundle && !strstr(bundle, "-----BEGIN CERTIFICATE-----")) {
		snprintf(err, errlen, "%s: no PEM certificate in the CA bundle", bundle_path);
		goto out;
	}
	ca = wh_ca_load_pem(cert, cert_len, key, key_len, bundle, sub, sizeof(sub));
	if (!ca)
		snprintf(err, errlen, "identity CA %s, %s: %s", cert_path, key_path, sub);
out:
	if (key)
		explicit_bzero(key, key_len);
	free(cert);
	free(key);
	free(bundle);
	return ca;
}

/* Check the CSR's key: EC P-256 or RSA 2048..8192. */
static int check_key(EVP_PKEY *pk, char *err, size_t errlen)
{
	char group[64] = "";
	size_t glen = 0;

	switch (EVP_PKEY_get_base_id(pk)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), &glen) ||
		    strcmp(group, "prime256v1") != 0) {
			snprintf(
			    err, errlen,
			    "CSR key is EC on curve \"%s\": only P-256 (prime256v1) is accepted",
			    group[0] ? group : "unknown");
			return -EINVAL;
		}
		return 0;
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pk) < 2048 || EVP_PKEY_get_bits(pk) > 8192) {
			snprintf(err, errlen,
				 "CSR key is RSA-%d: use ECDSA P-256 (or RSA of 2048 to 8192 bits)",
				 EVP_PKEY_get_bits(pk));
			return -EINVAL;
		}
		return 0;
	default:
		snprintf(err, errlen, "CSR key type %s is not accepted: use ECDSA P-256",
			 OBJ_nid2sn(EVP_PKEY_get_base_id(pk)));
		return -EINVAL;
	}
}

/* Parse and check; a new X509_REQ on success. */
static int parse_csr(const char *pem, size_t len, X509_REQ **out, char *err, size_t errlen)
{
	BIO *b = NULL;
	X509_REQ *req = NULL, *more = NULL;
	EVP_PKEY *pk;
	int rc = -EINVAL;

	if (len == 0 || len > WH_CA_MAX_CSR_BYTES) {
		snprintf(err, errlen, "CSR is empty or larger than %d bytes", WH_CA_MAX_CSR_BYTES);
		goto out;
	}
	b = BIO_new_mem_buf(pem, (int)len);
	if (!b) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	if (!req) {
		snprintf(err, errlen,
			 "csr is not a PEM \"CERTIFICATE REQUEST\" (PKCS#10), e.g. from openssl "
			 "req -new");
		goto out;
	}
	more = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
	if (more) {
		snprintf(err, errlen, "csr holds more than one certificate request: send one");
		goto out;
	}
	pk = X509_REQ_get0_pubkey(req);
	if (!pk) {
		snprintf(err, errlen, "CSR public key cannot be decoded");
		goto out;
	}
	if (check_key(pk, err, errlen) != 0)
		goto out;
	if (X509_REQ_verify(req, pk) != 1) {
		snprintf(err, errlen,
			 "CSR signature does not verify with its own key (no proof of possession)");
		goto out;
	}
	*out = req;
	req = NULL;
	rc = 0;
out:
	ERR_clear_error();
	X509_REQ_free(req);
	X509_REQ_free(more);
	BIO_free(b);
	return rc;
}

int wh_ca_check_csr(const char *pem, size_t len, char *err, size_t errlen)
{
	X509_REQ *req = NULL;
	int rc = parse_csr(pem, len, &req, err, errlen);

	X509_REQ_free(req);
	return rc;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok = e && X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	return ok ? 0 : -EIO;
}

int wh_ca_sign(const struct wh_ca *ca, const char *csr_pem, size_t csr_len, const char *uri_san,
	       unsigned lifetime_s, time_t now, char **chain_pem, time_t *not_after, char *err,
	       size_t errlen)
{
	X509_REQ *req = NULL;
	X509 *leaf = NULL;
	BIGNUM *bn = NULL;
	ASN1_INTEGER *serial = NULL;
	EVP_PKEY *pk;
	X509V3_CTX ctx;
	unsigned char rnd[16];
	char *san = NULL, *chain = NULL;
	time_t end;
	int rc;

	/* The SAN goes into an OpenSSL config string: allow only what a SPIFFE ID holds. */
	if (strncmp(uri_san, "spiffe://", 9) != 0 || strpbrk(uri_san, ",\n\r\\ ") ||
	    strlen(uri_san) > 2048) {
		snprintf(err, errlen, "internal: \"%.100s\" is not a SPIFFE ID", uri_san);
		return -EIO;
	}
	rc = parse_csr(csr_pem, csr_len, &req, err, errlen);
	if (rc)
		return rc;
	rc = -EIO;
	if (ca->not_after && ca->not_after <= now) {
		snprintf(err, errlen, "the identity CA expired; renew it (see docs/identity.md)");
		rc = -ESTALE;
		goto out;
	}
	end = now + (time_t)lifetime_s;
	if (ca->not_after && end > ca->not_after)
		end = ca->not_after;
	pk = X509_REQ_get0_pubkey(req);
	leaf = X509_new();
	bn = BN_new();
	if (!leaf || !bn || RAND_bytes(rnd, sizeof(rnd)) != 1)
		goto fail;
	rnd[0] &= 0x7f; /* positive */
	rnd[0] |= 0x40; /* and full length, so it never needs fewer bytes */
	if (!BN_bin2bn(rnd, sizeof(rnd), bn) || !(serial = BN_to_ASN1_INTEGER(bn, NULL)) ||
	    !X509_set_version(leaf, X509_VERSION_3) || !X509_set_serialNumber(leaf, serial) ||
	    !X509_set_issuer_name(leaf, X509_get_subject_name(ca->cert)) ||
	    !X509_time_adj_ex(X509_getm_notBefore(leaf), 0, -WH_CA_BACKDATE_S, &now) ||
	    !X509_time_adj_ex(X509_getm_notAfter(leaf), 0, 0, &end) || !X509_set_pubkey(leaf, pk))
		goto fail;
	if (asprintf(&san, "critical,URI:%s", uri_san) < 0) {
		san = NULL;
		goto fail;
	}
	X509V3_set_ctx(&ctx, ca->cert, leaf, NULL, NULL, 0);
	if (add_ext(leaf, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    add_ext(leaf, &ctx, NID_key_usage,
		    EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC
			? "critical,digitalSignature,keyAgreement"
			: "critical,digitalSignature,keyEncipherment") ||
	    add_ext(leaf, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    add_ext(leaf, &ctx, NID_subject_key_identifier, "hash") ||
	    add_ext(leaf, &ctx, NID_authority_key_identifier, "keyid:always") ||
	    add_ext(leaf, &ctx, NID_subject_alt_name, san))
		goto fail;
	if (!X509_sign(leaf, ca->key, EVP_sha256()))
		goto fail;
	if (append_pem(&chain, leaf) != 0)
		goto fail;
	{
		size_t a = strlen(chain), b = strlen(ca->chain_tail);
		char *nc = realloc(chain, a + b + 1);
		if (!nc)
			goto fail;
		memcpy(nc + a, ca->chain_tail, b + 1);
		chain = nc;
	}
	*chain_pem = chain;
	chain = NULL;
	*not_after = end;
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "signing the certificate failed (OpenSSL)");
	rc = -EIO;
out:
	ERR_clear_error();
	free(chain);
	free(san);
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	X509_free(leaf);
	X509_REQ_free(req);
	return rc;
}
