/*
 * webhook/ca: CSR checks (key type and size, proof of possession, one request), and the
 * leaf the CA signs: only the SPIFFE URI SAN it is given whatever the CSR asks for, CA
 * false, the key usages and lifetimes of the contract, a chain that verifies. CAs and CSRs
 * are made here with OpenSSL.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "webhook/ca.h"
#include "tests/unit/runner.h"

#define NOW ((time_t)1800000000) /* 2027-01-15 */

static char *pem_of_cert(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	ck_assert(PEM_write_bio_X509(b, x));
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static char *pem_of_key(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	ck_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *v)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
	ck_assert_ptr_nonnull(e);
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
}

/* A CA certificate for key, signed by (issuer, issuer_key) or self-signed; days from NOW. */
static X509 *make_ca(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long days,
		     bool is_ca)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	time_t start = NOW - 86400;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &start);
	X509_time_adj_ex(X509_getm_notAfter(x), (int)days + 1, 0, &start);
	X509_set_pubkey(x, key);
	add_ext(x, issuer, NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (is_ca)
		add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
	add_ext(x, issuer, NID_subject_key_identifier, "hash");
	ck_assert(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()));
	X509_NAME_free(name);
	return x;
}

/* A PEM CSR for key with subject CN=cn and, when given, these extensions. */
static char *make_csr(EVP_PKEY *key, const char *cn, const char *san, bool ask_ca)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_subject_name(r, name);
	X509_REQ_set_pubkey(r, key);
	if (san)
		sk_X509_EXTENSION_push(exts,
				       X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san));
	if (ask_ca) {
		sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
								 "critical,CA:TRUE"));
		sk_X509_EXTENSION_push(
		    exts, X509V3_EXT_conf_nid(NULL, NULL, NID_key_usage, "critical,keyCertSign"));
	}
	if (sk_X509_EXTENSION_num(exts))
		X509_REQ_add_extensions(r, exts);
	ck_assert(X509_REQ_sign(r, key, EVP_sha256()));
	PEM_write_bio_X509_REQ(b, r);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(name);
	X509_REQ_free(r);
	return out;
}

static EVP_PKEY *ca_key, *leaf_key;
static X509 *ca_cert;
static struct wh_ca *ca;

static void setup(void)
{
	char err[512];
	char *c, *k;

	ca_key = EVP_EC_gen("P-256");
	leaf_key = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(ca_key);
	ca_cert = make_ca(ca_key, "test identity CA", NULL, NULL, 365, true);
	c = pem_of_cert(ca_cert);
	k = pem_of_key(ca_key);
	ca = wh_ca_load_pem(c, strlen(c), k, strlen(k), NULL, err, sizeof(err));
	ck_assert_msg(ca != NULL, "%s", err);
	free(c);
	free(k);
}

static void teardown(void)
{
	wh_ca_free(ca);
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(leaf_key);
}

static X509 *parse_leaf(const char *chain)
{
	BIO *b = BIO_new_mem_buf(chain, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* Sign csr for id and check the leaf against the contract; returns it. */
static X509 *sign_ok(const char *csr, const char *id, unsigned lifetime_s, time_t want_end)
{
	char *chain = NULL, err[512] = "";
	time_t end = 0;
	X509 *leaf;
	GENERAL_NAMES *sans;
	BASIC_CONSTRAINTS *bc;
	int crit = -1;

	ck_assert_msg(wh_ca_sign(ca, csr, strlen(csr), id, lifetime_s, NOW, &chain, &end, err,
				 sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(end, want_end);
	leaf = parse_leaf(chain);
	free(chain);
	/* Exactly one SAN, the URI we asked for, critical (the subject is empty). */
	sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	ck_assert_ptr_nonnull(sans);
	ck_assert_int_eq(crit, 1);
	ck_assert_int_eq(sk_GENERAL_NAME_num(sans), 1);
	{
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, 0);
		ck_assert_int_eq(g->type, GEN_URI);
		ck_assert_str_eq(
		    (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier), id);
	}
	GENERAL_NAMES_free(sans);
	ck_assert_int_eq(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
	/* Not a CA, whatever was asked. */
	bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	ck_assert_ptr_nonnull(bc);
	ck_assert_int_eq(bc->ca, 0);
	ck_assert_int_eq(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	ck_assert_int_eq(X509_check_ca(leaf), 0);
	ck_assert(X509_get_key_usage(leaf) == (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT));
	ck_assert(X509_get_extended_key_usage(leaf) == (XKU_SSL_SERVER | XKU_SSL_CLIENT));
	/* Backdated five minutes. */
	{
		int day, sec;
		ASN1_TIME *t = ASN1_TIME_new();
		ASN1_TIME_set(t, NOW);
		ck_assert(ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(leaf), t));
		ck_assert_int_eq(day * 86400 + sec, WH_CA_BACKDATE_S);
		ASN1_TIME_free(t);
	}
	/* It verifies against the CA (at NOW). */
	{
		X509_STORE *st = X509_STORE_new();
		X509_STORE_CTX *ctx = X509_STORE_CTX_new();
		X509_STORE_add_cert(st, ca_cert);
		X509_STORE_CTX_init(ctx, st, leaf, NULL);
		X509_STORE_CTX_set_time(ctx, 0, NOW);
		X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
		ck_assert_msg(X509_verify_cert(ctx) == 1, "verify: %s",
			      X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		X509_STORE_CTX_free(ctx);
		X509_STORE_free(st);
	}
	/* The CSR's public key, not anything else. */
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), leaf_key), 1);
	return leaf;
}

START_TEST(good_csr)
{
	char *csr = make_csr(leaf_key, "ignored", NULL, false);

	X509_free(sign_ok(csr, "spiffe://cluster.local/ns/demo/sa/client", 86400, NOW + 86400));
	ck_assert_int_eq(wh_ca_check_csr(csr, strlen(csr), (char[64]){0}, 64), 0);
	free(csr);
}
END_TEST

START_TEST(other_identity_and_ca_ignored)
{
	/* The CSR asks for kube-system's admin, DNS and IP names, and to be a CA. */
	char *csr = make_csr(leaf_key, "system:masters",
			     "URI:spiffe://cluster.local/ns/kube-system/sa/admin,"
			     "DNS:kubernetes.default.svc,IP:10.0.0.1,email:a@b.c",
			     true);
	X509 *leaf = sign_ok(csr, "spiffe://cluster.local/ns/demo/sa/client", 3600, NOW + 3600);

	ck_assert_int_lt(X509_get_ext_by_NID(leaf, NID_name_constraints, -1), 0);
	ck_assert_int_eq(X509_get_ext_count(leaf), 6); /* BC, KU, EKU, SKI, AKI, SAN */
	X509_free(leaf);
	free(csr);
}
END_TEST

START_TEST(lifetime_capped_by_ca)
{
	char *csr = make_csr(leaf_key, "x", NULL, false);
	time_t ca_end = wh_ca_not_after(ca);
	char *chain = NULL, err[256];
	time_t end;

	/* 30 days asked, the CA ends in 365: full lifetime. A CA ending sooner caps it. */
	X509_free(sign_ok(csr, "spiffe://td/ns/a/sa/b", 30 * 86400, NOW + 30 * 86400));
	ck_assert_int_gt(ca_end, NOW);
	ck_assert_int_eq(wh_ca_sign(ca, csr, strlen(csr), "spiffe://td/ns/a/sa/b", 30 * 86400,
				    ca_end - 3600, &chain, &end, err, sizeof(err)),
			 0);
	ck_assert_int_eq(end, ca_end);
	free(chain);
	chain = NULL;
	/* An expired CA signs nothing. */
	ck_assert_int_eq(wh_ca_sign(ca, csr, strlen(csr), "spiffe://td/ns/a/sa/b", 3600, ca_end + 1,
				    &chain, &end, err, sizeof(err)),
			 -ESTALE);
	ck_assert_ptr_null(chain);
	free(csr);
}
END_TEST

static void expect_bad(const char *csr, size_t len, const char *needle)
{
	char err[512] = "", *chain = NULL;
	time_t end = 0;

	ck_assert_int_eq(wh_ca_check_csr(csr, len, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
	ck_assert_int_eq(wh_ca_sign(ca, csr, len, "spiffe://cluster.local/ns/a/sa/b", 3600, NOW,
				    &chain, &end, err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_null(chain);
	ck_assert_int_eq(end, 0);
}

START_TEST(bad_csrs)
{
	EVP_PKEY *rsa1024 = EVP_RSA_gen(1024), *p384 = EVP_EC_gen("P-384"),
		 *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char *csr;

	csr = make_csr(rsa1024, "x", NULL, false);
	expect_bad(csr, strlen(csr), "RSA-1024");
	free(csr);
	csr = make_csr(p384, "x", NULL, false);
	expect_bad(csr, strlen(csr), "P-256");
	free(csr);
	{
		/* Ed25519 signs with no digest. */
		X509_REQ *r = X509_REQ_new();
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long n;
		X509_REQ_set_pubkey(r, ed);
		ck_assert(X509_REQ_sign(r, ed, NULL));
		PEM_write_bio_X509_REQ(b, r);
		n = BIO_get_mem_data(b, &data);
		expect_bad(data, (size_t)n, "not accepted");
		BIO_free(b);
		X509_REQ_free(r);
	}
	/* Proof of possession: the CSR carries leaf_key's public key but another key signed it. */
	{
		X509_REQ *r = X509_REQ_new();
		EVP_PKEY *other = EVP_EC_gen("P-256");
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long n;
		X509_REQ_set_pubkey(r, leaf_key);
		ck_assert(X509_REQ_sign(r, other, EVP_sha256()));
		PEM_write_bio_X509_REQ(b, r);
		n = BIO_get_mem_data(b, &data);
		expect_bad(data, (size_t)n, "proof of possession");
		BIO_free(b);
		X509_REQ_free(r);
		EVP_PKEY_free(other);
	}
	/* Two requests in one. */
	{
		char *a = make_csr(leaf_key, "a", NULL, false), *two = NULL;
		ck_assert_int_gt(asprintf(&two, "%s%s", a, a), 0);
		expect_bad(two, strlen(two), "more than one");
		free(two);
		free(a);
	}
	expect_bad("", 0, "empty");
	expect_bad("hello", 5, "CERTIFICATE REQUEST");
	{
		static const char trunc[] = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
					    "-----END CERTIFICATE REQUEST-----\n";
		expect_bad(trunc, strlen(trunc), "CERTIFICATE REQUEST");
	}
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
}
END_TEST

START_TEST(rsa_2048_accepted)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	char *csr = make_csr(rsa, "x", NULL, false), *chain = NULL, err[256];
	time_t end;
	X509 *leaf;

	ck_assert_int_eq(wh_ca_sign(ca, csr, strlen(csr), "spiffe://td/ns/a/sa/b", 3600, NOW,
				    &chain, &end, err, sizeof(err)),
			 0);
	leaf = parse_leaf(chain);
	ck_assert(X509_get_key_usage(leaf) == (KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT));
	X509_free(leaf);
	free(chain);
	free(csr);
	EVP_PKEY_free(rsa);
}
END_TEST

START_TEST(load_checks)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *k2 = EVP_EC_gen("P-256");
	X509 *not_ca = make_ca(k, "leaf", NULL, NULL, 10, false);
	X509 *inter = make_ca(k2, "intermediate", ca_cert, ca_key, 100, true);
	char *c = pem_of_cert(not_ca), *key = pem_of_key(k), *key2 = pem_of_key(k2);
	char *ci = pem_of_cert(inter), *root = pem_of_cert(ca_cert), *file = NULL;
	char err[512], *chain = NULL;
	struct wh_ca *x;
	time_t end;

	x = wh_ca_load_pem(c, strlen(c), key, strlen(key), NULL, err, sizeof(err));
	ck_assert_ptr_null(x);
	ck_assert_msg(strstr(err, "not a CA"), "%s", err);
	x = wh_ca_load_pem(root, strlen(root), key, strlen(key), NULL, err, sizeof(err));
	ck_assert_ptr_null(x);
	ck_assert_msg(strstr(err, "does not match"), "%s", err);
	x = wh_ca_load_pem("junk", 4, key, strlen(key), NULL, err, sizeof(err));
	ck_assert_ptr_null(x);
	/* An intermediate followed by its root: chains carry the intermediate, the bundle is
	 * the root. */
	ck_assert_int_gt(asprintf(&file, "%s%s", ci, root), 0);
	x = wh_ca_load_pem(file, strlen(file), key2, strlen(key2), NULL, err, sizeof(err));
	ck_assert_msg(x != NULL, "%s", err);
	ck_assert_str_eq(wh_ca_bundle(x), root);
	{
		char *csr = make_csr(leaf_key, "x", NULL, false);
		ck_assert_int_eq(wh_ca_sign(x, csr, strlen(csr), "spiffe://td/ns/a/sa/b", 3600, NOW,
					    &chain, &end, err, sizeof(err)),
				 0);
		ck_assert_msg(strstr(chain, ci) && !strstr(chain, root), "%s", chain);
		free(csr);
	}
	free(chain);
	wh_ca_free(x);
	free(file);
	free(c);
	free(key);
	free(key2);
	free(ci);
	free(root);
	X509_free(not_ca);
	X509_free(inter);
	EVP_PKEY_free(k);
	EVP_PKEY_free(k2);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"good_csr", good_csr},
	    {"other_identity_and_ca_ignored", other_identity_and_ca_ignored},
	    {"lifetime", lifetime_capped_by_ca},
	    {"bad_csrs", bad_csrs},
	    {"rsa", rsa_2048_accepted},
	    {"load", load_checks},
	};
	return UT_RUN("webhook/ca", tests, .timeout_s = 30, .setup = setup, .teardown = teardown);
}
