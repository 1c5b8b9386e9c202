/*
 * The parts of mTLS between sidecars that need no TLS library, so they stay in the
 * sidecar binary while OpenSSL lives in the crypto module (crypto.h): telling a
 * sidecar's ClientHello from any other TLS client (inbound), and the negative cache of
 * destinations that answered TLS in plaintext (outbound). Pure: no I/O, no clock.
 *
 * What it does not do: TLS itself (tls.h), or decide whether TLS is spoken (h2conn.c,
 * outbound.c).
 */
#ifndef GRPCGUARD_SC_TLSHELLO_H
#define GRPCGUARD_SC_TLSHELLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- telling a sidecar's ClientHello from any other TLS client ---------------------- */
/*
 * Our ClientHello offers ALPN SC_TLS_ALPN_MARK before "h2" (as Istio offers
 * "istio-peer-exchange"): a TLS client that does not is the app's own TLS (HTTPS, gRPC
 * over TLS to the app) and is passed through untouched.
 */
#define SC_TLS_ALPN_MARK "grpcguard-mtls"
enum sc_hello { SC_HELLO_OURS = 1, SC_HELLO_OTHER = 0, SC_HELLO_MORE = -1 };
/*
 * Look at the first bytes of a connection that start with a TLS handshake record: OURS
 * when it is a ClientHello in one record whose ALPN extension offers SC_TLS_ALPN_MARK,
 * MORE when the record is not complete yet (and fits max bytes), OTHER otherwise
 * (malformed, no ALPN, no mark, too large). Pure.
 */
enum sc_hello sc_tls_hello_classify(const uint8_t *d, size_t n, size_t max);

/* ---- the negative cache: outbound destinations that answered TLS with plaintext ---- */
/*
 * Per worker, no lock. Fixed size: when full, the entry that expires first is replaced,
 * so a scan of many destinations costs at most a handshake attempt each, not memory.
 */
#define SC_NEGCACHE_SLOTS 256
#define SC_NEGCACHE_TTL_MS 60000
struct sockaddr_storage;
struct sc_negcache_ent {
	uint8_t addr[16];
	uint16_t port;
	uint8_t family; /* 0: empty */
	uint64_t until_ms;
};
struct sc_negcache {
	struct sc_negcache_ent e[SC_NEGCACHE_SLOTS];
};
/* Remember dst (AF_INET/AF_INET6) as "no sidecar" until now + SC_NEGCACHE_TTL_MS. */
void sc_negcache_add(struct sc_negcache *nc, const struct sockaddr_storage *dst, uint64_t now_ms);
/* Whether dst is remembered and not expired at now_ms. Pure. */
bool sc_negcache_has(const struct sc_negcache *nc, const struct sockaddr_storage *dst,
		     uint64_t now_ms);

#endif
