/* sidecar/crypto: where the crypto module is looked for, the table it exports, and the
 * fallback a JWKS parse gets without it. (Loading it is tested end to end by
 * tests/integration/test_crypto_module.py: unit tests link the crypto code in.) */
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sidecar/crypto.h"
#include "tests/unit/runner.h"

extern const struct sc_crypto_api sc_crypto_module;

START_TEST(path_default_is_beside_the_binary)
{
	char exe[PATH_MAX], want[PATH_MAX + 64], got[PATH_MAX + 64];
	ssize_t n;

	unsetenv(SC_CRYPTO_MODULE_ENV);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	snprintf(want, sizeof(want), "%s/%s", exe, SC_CRYPTO_MODULE_NAME);
	ck_assert_int_eq(sc_crypto_module_path(got, sizeof(got)), 0);
	ck_assert_str_eq(got, want);
	/* Too small a buffer is an error, not a truncated path. */
	ck_assert_int_eq(sc_crypto_module_path(got, strlen(want)), -1);
}
END_TEST

START_TEST(path_env_overrides)
{
	char got[256];

	setenv(SC_CRYPTO_MODULE_ENV, "/opt/gg/other.so", 1);
	ck_assert_int_eq(sc_crypto_module_path(got, sizeof(got)), 0);
	ck_assert_str_eq(got, "/opt/gg/other.so");
	ck_assert_int_eq(sc_crypto_module_path(got, 8), -1);
	/* Empty means unset: back to the default. */
	setenv(SC_CRYPTO_MODULE_ENV, "", 1);
	ck_assert_int_eq(sc_crypto_module_path(got, sizeof(got)), 0);
	ck_assert_ptr_nonnull(strstr(got, "/" SC_CRYPTO_MODULE_NAME));
	unsetenv(SC_CRYPTO_MODULE_ENV);
}
END_TEST

/* The table names the real functions and carries the sizes the loader checks. */
START_TEST(table_is_complete)
{
	const struct sc_crypto_api *t = &sc_crypto_module;

	ck_assert_uint_eq(t->abi, SC_CRYPTO_ABI);
	ck_assert_uint_eq(t->size, sizeof(*t));
	ck_assert_uint_eq(t->idgen_size, sizeof(struct sc_idgen));
	ck_assert_uint_eq(t->opts_size, sizeof(struct sc_identity_opts));
	/* The signature the loader compares: every function, with its parameters. */
	ck_assert_str_eq(t->sig, SC_CRYPTO_SIGNATURE);
	ck_assert_ptr_nonnull(strstr(t->sig, "sc_tls_peer_principal (const struct sc_tls *t)"));
	ck_assert_ptr_nonnull(strstr(t->sig, "int sc_jwt_verify ("));
	ck_assert_ptr_null(strstr(t->sig, "SC_CRYPTO_SIG_F"));
#define CHECK_F(ret, name, params, args, fallback) ck_assert_ptr_eq((void *)t->name, (void *)name);
#define CHECK_V(name, params, args) ck_assert_ptr_eq((void *)t->name, (void *)name);
	SC_CRYPTO_API(CHECK_F, CHECK_V)
}
END_TEST

START_TEST(no_jwks_fallback)
{
	struct sc_jwks *ks = (struct sc_jwks *)1;
	char diag[128];

	ck_assert_int_eq(sc_crypto_no_jwks(&ks, diag, sizeof(diag)), SC_JWT_ERR_JWKS);
	ck_assert_ptr_null(ks);
	ck_assert_ptr_nonnull(strstr(diag, SC_CRYPTO_MODULE_NAME));
	ks = (struct sc_jwks *)1;
	ck_assert_int_eq(sc_crypto_no_jwks(&ks, NULL, 0), SC_JWT_ERR_JWKS);
	ck_assert_ptr_null(ks);
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"path", path_default_is_beside_the_binary},
	    {"path", path_env_overrides},
	    {"table", table_is_complete},
	    {"fallback", no_jwks_fallback},
	};
	return UT_RUN("sidecar/crypto", cases, .timeout_s = 10);
}
