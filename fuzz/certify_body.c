/*
 * Fuzz target: the body of POST /v1/certify ({"csr": PEM}) and the CSR in it, through
 * the same functions the endpoint uses (wh_certify_body_csr, wh_ca_check_csr, wh_ca_sign).
 * Checks the invariants, not just for crashes: whatever the CSR holds, a signed leaf has
 * exactly one SAN, the URI we chose, is not a CA and has an empty subject; a CSR that
 * wh_ca_check_csr refuses is never signed. The input is also tried as a bare PEM CSR.
 * Deterministic apart from the serial number; opens nothing, frees everything. The CA is
 * the test-only one of tests/data/identity, embedded.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "webhook/ca.h"
#include "webhook/certify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ID "spiffe://cluster.local/ns/demo/sa/client"

static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\n"
			     "MIIB0TCCAXegAwIBAgIUf0qRBXTbefmwTD/X2eqqZA1U07wwCgYIKoZIzj0EAwIw\n"
			     "NTEYMBYGA1UECgwPZ3JwY2d1YXJkIHRlc3RzMRkwFwYDVQQDDBB0ZXN0IGlkZW50\n"
			     "aXR5IENBMCAXDTI2MTIwNzAxNDI0OVoYDzIxMjYxMTEzMDE0MjQ5WjA1MRgwFgYD\n"
			     "VQQKDA9ncnBjZ3VhcmQgdGVzdHMxGTAXBgNVBAMMEHRlc3QgaWRlbnRpdHkgQ0Ew\n"
			     "WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARGs6+oQEBDa7lj0LYn2ghq3a4mdG9I\n"
			     "gTRuuFAzfpf0zSkBdfIsM1uIVbRSJJfHcynf2EHJ2KGJAex4TDnU3Afgo2MwYTAd\n"
			     "BgNVHQ4EFgQUNbOPotojXFH6NbeeY9wewoAyVt0wHwYDVR0jBBgwFoAUNbOPotoj\n"
			     "XFH6NbeeY9wewoAyVt0wDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYw\n"
			     "CgYIKoZIzj0EAwIDSAAwRQIhAJMRybNq9eBECagGS9KNdR7lhAVXFDIPI8HPrZX8\n"
			     "8CQdAiBXV9jG5vwEJu6zpLqfyUT2fe895ty7JNGHEg732F6+pA==\n"
			     "-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
			      "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg23+kp6lONI3Xd451\n"
			      "cb+8XSsuaEI3LfFnk6Qj+tnm//uhRANCAARGs6+oQEBDa7lj0LYn2ghq3a4mdG9I\n"
			      "gTRuuFAzfpf0zSkBdfIsM1uIVbRSJJfHcynf2EHJ2KGJAex4TDnU3Afg\n"
			      "-----END PRIVATE KEY-----\n";

static struct wh_ca *ca;

static void check_leaf(const char *chain)
{
	BIO *b = BIO_new_mem_buf(chain, -1);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	GENERAL_NAMES *g;
	const GENERAL_NAME *n;

	if (!x)
		__builtin_trap();
	g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (!g || sk_GENERAL_NAME_num(g) != 1)
		__builtin_trap();
	n = sk_GENERAL_NAME_value(g, 0);
	if (n->type != GEN_URI ||
	    strcmp((const char *)ASN1_STRING_get0_data(n->d.uniformResourceIdentifier), ID) != 0)
		__builtin_trap();
	if (X509_check_ca(x) != 0 || X509_NAME_entry_count(X509_get_subject_name(x)) != 0)
		__builtin_trap();
	GENERAL_NAMES_free(g);
	X509_free(x);
	BIO_free(b);
}

static void try_csr(const char *pem, size_t len)
{
	char err[512], *chain = NULL;
	time_t end = 0;
	int checked = wh_ca_check_csr(pem, len, err, sizeof(err));
	int rc =
	    wh_ca_sign(ca, pem, len, ID, 86400, (time_t)1800000000, &chain, &end, err, sizeof(err));

	if ((checked == 0) != (rc == 0))
		__builtin_trap();
	if (rc == 0) {
		check_leaf(chain);
		free(chain);
	} else if (chain) {
		__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	json_t *root = NULL;
	const char *csr;

	if (!ca) {
		ca = wh_ca_load_pem(ca_pem, sizeof(ca_pem) - 1, key_pem, sizeof(key_pem) - 1, NULL,
				    err, sizeof(err));
		if (!ca)
			__builtin_trap();
	}
	if (size > WH_CERTIFY_MAX_BODY_BYTES)
		return 0;
	csr = wh_certify_body_csr((const char *)data, size, &root, err, sizeof(err));
	if (csr)
		try_csr(csr, strlen(csr));
	json_decref(root);
	try_csr((const char *)data, size);
	return 0;
}
