/*
 * OpenSSL only when it is used (issue 17). Everything that needs OpenSSL -- mutual TLS
 * between sidecars (tls.c), the workload identity (identity.c) and JWT verification
 * (jwt.c) -- is built into a module, grpcguard-sidecar-crypto.so, linked with libssl and
 * libcrypto; the sidecar binary is not. A sidecar without identity and without JWT rules
 * never maps libcrypto: mapping it costs about 1.6 MiB of RSS, initialising it 2 MiB more.
 *
 * The binary keeps calling the functions of tls.h, identity.h and jwt.h by their names:
 * crypto.c defines a trampoline for each that forwards through the table the module
 * exports (struct sc_crypto_api). SC_CRYPTO_API below is the one list of that API; the
 * table, the trampolines and the module's initializer are all generated from it.
 *
 * Loading is explicit, at the three places that need OpenSSL, always on the main thread:
 * identity configured (listener.c, before sc_identity_start: outbound and inbound mTLS
 * need a certificate, so they follow), a policy with requestAuthentication (reload.c, at
 * start and on every reload that brings one; main.c for `check`). A trampoline called
 * while the module is not loaded does not load it: it returns the value the list gives,
 * which is what the sidecar without identity or JWT would answer (identity disabled, no
 * current certificate, no key set) or an error. Once loaded the module stays for the
 * life of the process.
 *
 * Unit tests, fuzz targets and benchmarks link tls.c, identity.c and jwt.c themselves;
 * crypto.c built with GG_TESTING (or GG_CRYPTO_STATIC) then has no trampolines and
 * sc_crypto_load succeeds without loading anything.
 *
 * What it does not do: decide when TLS is spoken or a token checked (h2conn.c, outbound.c,
 * authn.c), or anything with OpenSSL itself.
 */
#ifndef GRPCGUARD_SC_CRYPTO_H
#define GRPCGUARD_SC_CRYPTO_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "sidecar/identity.h"
#include "sidecar/jwt.h"
#include "sidecar/tls.h"

/* The module's file name, looked up next to the sidecar binary. */
#define SC_CRYPTO_MODULE_NAME "grpcguard-sidecar-crypto.so"
/* Environment variable naming another path for it (tests, unusual installs). */
#define SC_CRYPTO_MODULE_ENV "GRPCGUARD_CRYPTO_MODULE"
/* The symbol the module exports: a const struct sc_crypto_api. */
#define SC_CRYPTO_SYMBOL "sc_crypto_module"
/* Raise when the list or any type it passes changes shape. */
#define SC_CRYPTO_ABI 2

/*
 * The API, once. F(ret, name, params, args, fallback) for a function returning a value,
 * V(name, params, args) for a void one (which does nothing when the module is not
 * loaded). fallback is what the trampoline returns when it is not: every pointer these
 * functions take (struct sc_tls, sc_idgen, sc_jwks, sc_jwt) can only come from the
 * module, so without it they are NULL and the fallback is the NULL case's answer.
 */
#define SC_CRYPTO_API(F, V)                                                                        \
	/* tls.h */                                                                                \
	F(struct sc_tls *, sc_tls_new, (struct sc_idgen * g, bool server), (g, server), NULL)      \
	V(sc_tls_free, (struct sc_tls * t), (t))                                                   \
	F(const char *, sc_tls_strerror, (int r), (r), "handshake")                                \
	F(int, sc_tls_feed, (struct sc_tls * t, const uint8_t *d, size_t n), (t, d, n),            \
	  SC_TLS_E_PROTO)                                                                          \
	F(int, sc_tls_handshake, (struct sc_tls * t), (t), SC_TLS_E_PROTO)                         \
	F(bool, sc_tls_established, (const struct sc_tls *t), (t), false)                          \
	F(ssize_t, sc_tls_read, (struct sc_tls * t, uint8_t * out, size_t cap), (t, out, cap),     \
	  SC_TLS_E_PROTO)                                                                          \
	F(int, sc_tls_write, (struct sc_tls * t, const uint8_t *d, size_t n), (t, d, n),           \
	  SC_TLS_E_PROTO)                                                                          \
	F(size_t, sc_tls_pending, (const struct sc_tls *t), (t), 0)                                \
	F(size_t, sc_tls_take, (struct sc_tls * t, uint8_t * out, size_t cap), (t, out, cap), 0)   \
	F(const char *, sc_tls_peer_principal, (const struct sc_tls *t), (t), NULL)                \
	F(const struct sc_idgen *, sc_tls_gen, (const struct sc_tls *t), (t), NULL)                \
	F(const char *, sc_tls_detail, (const struct sc_tls *t), (t), "")                          \
	/* identity.h */                                                                           \
	F(struct sc_idgen *, sc_idgen_ref, (struct sc_idgen * g), (g), g)                          \
	V(sc_idgen_unref, (struct sc_idgen * g), (g))                                              \
	F(int, sc_identity_start,                                                                  \
	  (const struct sc_identity_opts *o, void (*notify)(void *), void *ctx), (o, notify, ctx), \
	  -ENOSYS)                                                                                 \
	V(sc_identity_stop, (void), ())                                                            \
	F(bool, sc_identity_enabled, (void), (), false)                                            \
	F(struct sc_idgen *, sc_identity_current, (void), (), NULL)                                \
	F(bool, sc_identity_ready, (int64_t now_s), (now_s), false)                                \
	F(json_t *, sc_identity_json, (void), (), json_pack("{s:b}", "enabled", 0))                \
	F(int, sc_principal_split,                                                                 \
	  (const char *p, const char **ns, size_t *nslen, const char **sa, size_t *salen),         \
	  (p, ns, nslen, sa, salen), -1)                                                           \
	/* jwt.h */                                                                                \
	F(const char *, sc_jwt_strerror, (int err), (err), "no crypto module")                     \
	F(int, sc_jwks_parse,                                                                      \
	  (const char *json, size_t len, struct sc_jwks **out, char *diag, size_t diag_len),       \
	  (json, len, out, diag, diag_len), sc_crypto_no_jwks(out, diag, diag_len))                \
	V(sc_jwks_free, (struct sc_jwks * ks), (ks))                                               \
	F(size_t, sc_jwks_count, (const struct sc_jwks *ks), (ks), 0)                              \
	F(int, sc_jwt_decode, (const char *tok, size_t len, struct sc_jwt **out), (tok, len, out), \
	  ((*out = NULL), SC_JWT_ERR_NOKEY))                                                       \
	V(sc_jwt_free, (struct sc_jwt * t), (t))                                                   \
	F(const char *, sc_jwt_issuer, (const struct sc_jwt *t), (t), NULL)                        \
	F(const char *, sc_jwt_subject, (const struct sc_jwt *t), (t), NULL)                       \
	F(json_t *, sc_jwt_claims, (const struct sc_jwt *t), (t), NULL)                            \
	F(int, sc_jwt_verify,                                                                      \
	  (const struct sc_jwt *t, const struct sc_jwks *ks, const struct sc_jwt_expect *x),       \
	  (t, ks, x), SC_JWT_ERR_NOKEY)                                                            \
	F(int, sc_jwt_check_times, (const json_t *claims, int64_t now_unix_s),                     \
	  (claims, now_unix_s), SC_JWT_ERR_NOKEY)

/*
 * The list's declarations as one string (return types, names, parameter lists), built
 * into both the binary and the module: a module whose list differs in any of them (a
 * function added, moved or retyped without SC_CRYPTO_ABI raised) is refused by the
 * loader instead of calling the wrong functions.
 */
#define SC_CRYPTO_SIG_F(ret, name, params, args, fallback) ret name params;
#define SC_CRYPTO_SIG_V(name, params, args) void name params;
#define SC_CRYPTO_STR_(...) #__VA_ARGS__
#define SC_CRYPTO_STR(...) SC_CRYPTO_STR_(__VA_ARGS__)
#define SC_CRYPTO_SIGNATURE SC_CRYPTO_STR(SC_CRYPTO_API(SC_CRYPTO_SIG_F, SC_CRYPTO_SIG_V))

/* The table the module exports as SC_CRYPTO_SYMBOL. */
struct sc_crypto_api {
	uint32_t abi;	     /* SC_CRYPTO_ABI */
	uint32_t size;	     /* sizeof(struct sc_crypto_api) */
	uint32_t idgen_size; /* sizeof(struct sc_idgen): the binary reads its fields */
	uint32_t opts_size;  /* sizeof(struct sc_identity_opts) */
	const char *sig;     /* SC_CRYPTO_SIGNATURE as the module was built */
#define SC_CRYPTO_MEMBER_F(ret, name, params, args, fallback) ret(*name) params;
#define SC_CRYPTO_MEMBER_V(name, params, args) void(*name) params;
	SC_CRYPTO_API(SC_CRYPTO_MEMBER_F, SC_CRYPTO_MEMBER_V)
#undef SC_CRYPTO_MEMBER_F
#undef SC_CRYPTO_MEMBER_V
};

/*
 * Load the module (once; later calls return 0 at once). why names what needs it, for the
 * log line ("identity", "requestAuthentication"). Returns 0, or -1 with a message for a
 * user in err (errlen bytes) that names the path, what went wrong and the fix. Main
 * thread only (the trampolines may run on any thread meanwhile).
 */
int sc_crypto_load(const char *why, char *err, size_t errlen);
/* Whether the module is in (always true in builds that link the crypto code in). */
bool sc_crypto_loaded(void);
/*
 * Where the module is looked for: $GRPCGUARD_CRYPTO_MODULE when set and not empty, else
 * SC_CRYPTO_MODULE_NAME in the directory of /proc/self/exe. Into out (cap bytes); 0 or
 * -1 when it does not fit or /proc/self/exe cannot be read.
 */
int sc_crypto_module_path(char *out, size_t cap);

/* The fallback of sc_jwks_parse: *out NULL, diag says why, SC_JWT_ERR_JWKS. */
int sc_crypto_no_jwks(struct sc_jwks **out, char *diag, size_t diag_len);

#endif
