/*
 * Who answers at a destination address: the identity a destination's sidecar last gave
 * in its x-grpcguard-peer response header, by the original destination (IP and port) the
 * app connected to.
 *
 * Why: the caller's sidecar learns the destination's workload from the response. An RPC
 * that ends before any response (held by a server-side delay and abandoned at the
 * caller's deadline, reset, refused) would otherwise be reported on the source side with
 * destination_workload "unknown": the caller's "outgoing request duration" of a delay
 * fault would land on another edge than the calls that succeeded, and the service graph
 * would draw a second, failing edge to the bare host. Such an RPC takes the identity last
 * learned for its address instead: the role Istio's endpoint metadata (pod IP ->
 * workload) plays, without a control plane.
 *
 * Process-wide (all workers share it, under one mutex; a connection touches it once to
 * learn, and again only for RPCs that ended without a response). Bounded: at most
 * SC_PEERCACHE_SLOTS addresses, the least recently learned one replaced. An entry expires
 * SC_PEERCACHE_TTL_MS after it was learned; a response without the header (no sidecar
 * answers there now) forgets the address. Telemetry only, like the header it comes from:
 * never fed to authorization.
 */
#ifndef GRPCGUARD_SC_PEERCACHE_H
#define GRPCGUARD_SC_PEERCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sidecar/peer.h"

#define SC_PEERCACHE_SLOTS 256
#define SC_PEERCACHE_TTL_MS (10 * 60 * 1000)

/*
 * Remember that *id answered at dst (AF_INET or AF_INET6; other families are ignored),
 * learned at now_ms (monotonic). Replaces what dst had; when the table is full, the entry
 * learned longest ago goes.
 */
void sc_peercache_learn(const struct sockaddr_storage *dst, const struct sc_peer_id *id,
			uint64_t now_ms);

/* Forget dst (nothing when it is not known). */
void sc_peercache_forget(const struct sockaddr_storage *dst);

/*
 * The identity learned for dst, when there is one younger than SC_PEERCACHE_TTL_MS at
 * now_ms (a now_ms before the learning time counts as age 0): copied to *out, true.
 * Otherwise false and *out untouched.
 */
bool sc_peercache_find(const struct sockaddr_storage *dst, uint64_t now_ms, struct sc_peer_id *out);

/* Empty the table (tests). */
void sc_peercache_clear(void);

#endif
