/*
 * certs/certgen: service SANs and a generated pair that OpenSSL accepts.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certs/certgen.h"
#include "tests/unit/runner.h"

START_TEST(service_sans)
{
	char *sans[4];

	ck_assert_int_eq(cg_service_sans("wh", "sys", sans), 4);
	ck_assert_str_eq(sans[0], "wh");
	ck_assert_str_eq(sans[1], "wh.sys");
	ck_assert_str_eq(sans[2], "wh.sys.svc");
	ck_assert_str_eq(sans[3], "wh.sys.svc.cluster.local");
	for (int i = 0; i < 4; i++)
		free(sans[i]);
}
END_TEST

static X509 *load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	ck_assert_ptr_nonnull(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(x);
	return x;
}

START_TEST(generate_and_verify)
{
	char dir[] = "/tmp/gg-unit-certgen-XXXXXX", path[256], err[512] = "";
	struct cg_options o = {.service = "wh",
			       .namespace_ = "sys",
			       .days = 10,
			       .ca_days = 20,
			       .extra_sans = {"localhost", "::1"},
			       .nextra_sans = 2};
	X509 *ca, *leaf;
	X509_STORE *store;
	X509_STORE_CTX *ctx;
	GENERAL_NAMES *names;
	EVP_PKEY *key;
	struct stat st;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	o.out_dir = dir;
	ck_assert_msg(cg_generate(&o, err, sizeof(err)) == 0, "%s", err);
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	ca = load_cert(path);
	snprintf(path, sizeof(path), "%s/tls.crt", dir);
	leaf = load_cert(path);
	snprintf(path, sizeof(path), "%s/tls.key", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	f = fopen(path, "r");
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(key);
	ck_assert_int_eq(X509_check_private_key(leaf, key), 1);
	ck_assert_int_eq(EVP_PKEY_get_bits(key), 256);

	store = X509_STORE_new();
	X509_STORE_add_cert(store, ca);
	ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	ck_assert_int_eq(X509_verify_cert(ctx), 1);
	ck_assert_int_eq(X509_check_host(leaf, "wh.sys.svc", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_host(leaf, "wh.sys.svc.cluster.local", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
	ck_assert_int_eq(X509_check_ip_asc(leaf, "::1", 0), 1);
	ck_assert_int_ne(X509_check_host(leaf, "other.sys.svc", 0, 0, NULL), 1);
	names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	ck_assert_int_eq(sk_GENERAL_NAME_num(names), 6);
	GENERAL_NAMES_free(names);

	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(ca);
	X509_free(leaf);
	EVP_PKEY_free(key);
	for (const char *const *n = (const char *const[]){"ca.crt", "tls.crt", "tls.key", NULL}; *n;
	     n++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *n);
		unlink(path);
	}
	rmdir(dir);
}
END_TEST

START_TEST(bad_san_rejected)
{
	char err[512] = "";
	struct cg_options o = {.service = "wh",
			       .namespace_ = "sys",
			       .out_dir = "/nonexistent/x",
			       .days = 1,
			       .ca_days = 1,
			       .extra_sans = {"a b"},
			       .nextra_sans = 1};

	ck_assert_int_ne(cg_generate(&o, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "\"a b\""));
}
END_TEST

int main(void)
{
	const struct ut_opts o = {.timeout_s = 10};
	Suite *s = suite_create("certs/certgen");
	const struct ut_case quick[] = {{"service_sans", service_sans}};
	const struct ut_case slow[] = {{"generate_and_verify", generate_and_verify}};
	const struct ut_case last[] = {{"bad_san_rejected", bad_san_rejected}};

	ut_add_cases(s, quick, 1, o);
	ut_add_cases(s, slow, 1, (struct ut_opts){.timeout_s = 20});
	ut_add_cases(s, last, 1, o);
	return ut_run(s);
}
