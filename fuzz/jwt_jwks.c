/*
 * Fuzz target: a JSON Web Key Set (what a jwksFile or an inline jwks holds), parsed into
 * OpenSSL keys. Deterministic, opens nothing, frees everything.
 */
#include <stddef.h>
#include <stdint.h>

#include "sidecar/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sc_jwks *ks = NULL;
	char diag[256];

	if (sc_jwks_parse((const char *)data, size, &ks, diag, sizeof(diag)) == 0 &&
	    sc_jwks_count(ks) == 0)
		__builtin_trap(); /* a parsed set holds at least one key */
	sc_jwks_free(ks);
	return 0;
}
