/*
 * TLS on a libuv connection through memory BIOs: the socket code (h2conn.c) hands us the
 * bytes it read and sends the bytes we produce; nothing here touches a socket. Used for
 * both inbound termination (server, client certificate required) and outbound
 * origination (client) between sidecars, with the contexts of one identity generation
 * (identity.h), which the connection keeps referenced for its life.
 *
 * The peer must present a certificate the issuer's CA bundle verifies (OpenSSL checks
 * chain and validity period) with exactly one SPIFFE URI SAN of our trust domain; its
 * principal ("cluster.local/ns/x/sa/y") is what the policy sees.
 *
 * What it does not do: decide whether TLS is spoken (h2conn.c, outbound.c), or anything
 * about an RPC.
 */
#ifndef GRPCGUARD_SC_TLS_H
#define GRPCGUARD_SC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sidecar/identity.h"
#include "sidecar/tlshello.h"

struct sc_tls;

/* A TLS endpoint with g's server or client context (g referenced); NULL on ENOMEM. */
struct sc_tls *sc_tls_new(struct sc_idgen *g, bool server);
void sc_tls_free(struct sc_tls *t); /* NULL ok */

enum sc_tls_result {
	SC_TLS_OK = 0,	      /* handshake complete and the peer verified */
	SC_TLS_AGAIN = 1,     /* more bytes from the peer needed */
	SC_TLS_E_PROTO = -1,  /* bad TLS, or the peer sent an alert */
	SC_TLS_E_VERIFY = -2, /* the peer's certificate did not verify (CA, expiry) */
	SC_TLS_E_ID = -3,     /* no SPIFFE ID of our trust domain in it */
	SC_TLS_E_ALPN = -4,   /* h2 not negotiated */
	SC_TLS_E_CLOSED = -5, /* the peer closed (close_notify) */
	SC_TLS_E_NOMEM = -6,
};
/* "handshake", "certificate", "identity", "alpn", "closed", "nomem". */
const char *sc_tls_strerror(int r);

/* Bytes from the socket. 0, or SC_TLS_E_NOMEM. */
int sc_tls_feed(struct sc_tls *t, const uint8_t *d, size_t n);
/* Drive the handshake; when complete also checks the peer (certificate, identity, ALPN). */
int sc_tls_handshake(struct sc_tls *t);
bool sc_tls_established(const struct sc_tls *t);
/* Decrypted bytes into out (cap): how many (> 0), 0 when none yet, or a negative SC_TLS_E_*. */
ssize_t sc_tls_read(struct sc_tls *t, uint8_t *out, size_t cap);
/* Encrypt d[0..n) (all of it: the output BIO grows). 0 or SC_TLS_E_*. */
int sc_tls_write(struct sc_tls *t, const uint8_t *d, size_t n);
/* Bytes waiting for the socket. */
size_t sc_tls_pending(const struct sc_tls *t);
/* Move up to cap of them into out; returns how many. */
size_t sc_tls_take(struct sc_tls *t, uint8_t *out, size_t cap);
/* The verified peer's principal (valid once established), and the generation's own. */
const char *sc_tls_peer_principal(const struct sc_tls *t);
const struct sc_idgen *sc_tls_gen(const struct sc_tls *t);
/* A human reason for the last failure (OpenSSL's verify result or error), static. */
const char *sc_tls_detail(const struct sc_tls *t);

#endif
