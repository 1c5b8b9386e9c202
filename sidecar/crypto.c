/*
 * The crypto module's loader and the trampolines that forward to it (see crypto.h).
 *
 * The table pointer is published with release order once the module is loaded and
 * checked; a trampoline reads it with acquire order, so a worker that sees the pointer
 * sees the table. It is never cleared: the module is not unloaded.
 */
#include "sidecar/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(GG_TESTING) && !defined(GG_CRYPTO_STATIC)
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/log.h"
#endif

int sc_crypto_no_jwks(struct sc_jwks **out, char *diag, size_t diag_len)
{
	*out = NULL;
	if (diag && diag_len)
		snprintf(diag, diag_len, "the crypto module (%s) is not loaded",
			 SC_CRYPTO_MODULE_NAME);
	return SC_JWT_ERR_JWKS;
}

int sc_crypto_module_path(char *out, size_t cap)
{
	const char *env = getenv(SC_CRYPTO_MODULE_ENV);
	char exe[4096];
	ssize_t n;
	char *slash;

	if (env && *env)
		return snprintf(out, cap, "%s", env) < (int)cap ? 0 : -1;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || (size_t)n >= sizeof(exe) - 1)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	return snprintf(out, cap, "%s/%s", exe, SC_CRYPTO_MODULE_NAME) < (int)cap ? 0 : -1;
}

#if defined(GG_TESTING) || defined(GG_CRYPTO_STATIC)

/* tls.c, identity.c and jwt.c are linked into this program: nothing to load. */
int sc_crypto_load(const char *why, char *err, size_t errlen)
{
	(void)why;
	if (err && errlen)
		err[0] = '\0';
	return 0;
}

bool sc_crypto_loaded(void)
{
	return true;
}

#else

static _Atomic(const struct sc_crypto_api *) api;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

bool sc_crypto_loaded(void)
{
	return atomic_load_explicit(&api, memory_order_acquire) != NULL;
}

int sc_crypto_load(const char *why, char *err, size_t errlen)
{
	const struct sc_crypto_api *t;
	char path[4096];
	void *h = NULL;
	int rc = -1;

	if (err && errlen)
		err[0] = '\0';
	if (sc_crypto_loaded())
		return 0;
	pthread_mutex_lock(&load_lock);
	if (sc_crypto_loaded()) {
		rc = 0;
		goto out;
	}
	if (sc_crypto_module_path(path, sizeof(path)) != 0) {
		snprintf(err, errlen,
			 "%s needs the crypto module %s, but its path cannot be worked out from "
			 "/proc/self/exe (set %s to its full path)",
			 why, SC_CRYPTO_MODULE_NAME, SC_CRYPTO_MODULE_ENV);
		goto out;
	}
	/* RTLD_LOCAL: OpenSSL's symbols stay the module's; RTLD_NOW: fail here, not later. */
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		const char *e = dlerror();
		snprintf(
		    err, errlen,
		    "%s needs the crypto module %s, which cannot be loaded: %s (install "
		    "%s beside grpcguard-sidecar, from the same build, with libssl3; or set %s)",
		    why, path, e ? e : "unknown error", SC_CRYPTO_MODULE_NAME,
		    SC_CRYPTO_MODULE_ENV);
		goto out;
	}
	t = dlsym(h, SC_CRYPTO_SYMBOL);
	if (!t || t->abi != SC_CRYPTO_ABI || t->size != sizeof(*t) ||
	    t->idgen_size != sizeof(struct sc_idgen) ||
	    t->opts_size != sizeof(struct sc_identity_opts) || !t->sig ||
	    strcmp(t->sig, SC_CRYPTO_SIGNATURE) != 0) {
		snprintf(err, errlen,
			 "%s needs the crypto module %s, but that file is %s (use the %s built "
			 "with this grpcguard-sidecar)",
			 why, path, t ? "from another build" : "not a grpcguard crypto module",
			 SC_CRYPTO_MODULE_NAME);
		dlclose(h);
		goto out;
	}
	atomic_store_explicit(&api, t, memory_order_release);
	log_info("crypto_module_loaded", "OpenSSL loaded (crypto module)", "{s:s, s:s}", "path",
		 path, "for", why);
	rc = 0;
out:
	pthread_mutex_unlock(&load_lock);
	return rc;
}

/* ---- the trampolines, one per entry of SC_CRYPTO_API -------------------------------- */

#define TRAMPOLINE_F(ret, name, params, args, fallback)                                            \
	ret name params                                                                            \
	{                                                                                          \
		const struct sc_crypto_api *a = atomic_load_explicit(&api, memory_order_acquire);  \
		if (!a)                                                                            \
			return fallback;                                                           \
		return a->name args;                                                               \
	}
#define TRAMPOLINE_V(name, params, args)                                                           \
	void name params                                                                           \
	{                                                                                          \
		const struct sc_crypto_api *a = atomic_load_explicit(&api, memory_order_acquire);  \
		if (a)                                                                             \
			a->name args;                                                              \
	}
SC_CRYPTO_API(TRAMPOLINE_F, TRAMPOLINE_V)

#endif
