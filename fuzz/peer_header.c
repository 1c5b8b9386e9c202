/*
 * Fuzz target: the metadata-exchange header (sidecar/peer.c) as a peer sends it, plus the
 * two other strings that become metric labels: an :authority (destination_service) and
 * a pod name (workload). Checks the invariants, not just for crashes: a decoded claim
 * re-encodes to exactly the input, and every label produced stays inside its charset.
 * Deterministic, opens nothing, allocates nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sidecar/peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void label_ok(const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\' || *s == '\n' || (unsigned char)*s < 0x20 ||
		    (unsigned char)*s >= 0x7f)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sc_peer_id id;
	char enc[SC_PEER_VALUE_MAX + 1], svc[SC_PEER_SERVICE_MAX + 1], pod[300],
	    wl[SC_PEER_NAME_MAX + 1];
	size_t n;

	if (sc_peer_decode(data, size, &id) == SC_PEER_OK) {
		n = sc_peer_encode(&id, enc, sizeof(enc));
		if (n != size || memcmp(enc, data, size) != 0)
			__builtin_trap();
	}
	label_ok(id.ns);
	label_ok(id.workload);
	label_ok(id.sa);
	sc_peer_service_from_authority((const char *)data, size, svc, sizeof(svc));
	label_ok(svc);
	if (!svc[0] || strlen(svc) > SC_PEER_SERVICE_MAX)
		__builtin_trap();
	n = size < sizeof(pod) - 1 ? size : sizeof(pod) - 1;
	memcpy(pod, data, n);
	pod[n] = '\0';
	if (sc_peer_workload_from_pod(pod, wl, sizeof(wl)) &&
	    !sc_peer_valid_workload(wl, strlen(wl)))
		__builtin_trap();
	return 0;
}
