/*
 * Fuzz target: what an inbound peer sends first when it starts with a TLS record
 * (sidecar/tls.c sc_tls_hello_classify decides whether it is a sidecar's ClientHello),
 * and the SPIFFE ID parser (sidecar/identity.c) on the same bytes as a URI SAN. Checks
 * the invariants, not just for crashes: classification is monotone (a complete answer
 * never changes when more bytes follow) and a parsed principal stays in its charset.
 * Deterministic, opens nothing, allocates nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sidecar/identity.h"
#include "sidecar/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char p[SC_PRINCIPAL_MAX], td[256];
	enum sc_hello all = sc_tls_hello_classify(data, size, 16384);

	for (size_t i = 0; i < size && i < 4096; i += 1 + i / 8) {
		enum sc_hello part = sc_tls_hello_classify(data, i, 16384);
		if (part != SC_HELLO_MORE && part != all)
			__builtin_trap();
	}
	if (sc_spiffe_parse((const char *)data, size, p, sizeof(p), td, sizeof(td)) == 0) {
		if (strncmp(p, td, strlen(td)) != 0 || !strstr(p, "/ns/") || !strstr(p, "/sa/"))
			__builtin_trap();
		for (const char *q = p; *q; q++)
			if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f || *q == '"' ||
			    *q == '\\')
				__builtin_trap();
	}
	return 0;
}
