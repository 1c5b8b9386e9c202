/*
 * The crypto module's one export (see crypto.h): the table of the functions tls.c,
 * identity.c and jwt.c define, generated from SC_CRYPTO_API. Built only into
 * grpcguard-sidecar-crypto.so (every other symbol of the module is hidden), and into the
 * unit tests, where nothing reads it.
 */
#include "sidecar/crypto.h"

#define ENTRY_F(ret, name, params, args, fallback) .name = name,
#define ENTRY_V(name, params, args) .name = name,

extern const struct sc_crypto_api sc_crypto_module;
__attribute__((visibility("default")))
const struct sc_crypto_api sc_crypto_module = {.abi = SC_CRYPTO_ABI,
					       .size = sizeof(struct sc_crypto_api),
					       .idgen_size = sizeof(struct sc_idgen),
					       .opts_size = sizeof(struct sc_identity_opts),
					       .sig = SC_CRYPTO_SIGNATURE,
					       SC_CRYPTO_API(ENTRY_F, ENTRY_V)};
