/*
 * TLS over memory BIOs (see tls.h). One SSL per connection; its read BIO gets what the
 * socket read, its write BIO collects what must go out. Both BIOs are bounded by the
 * callers: reads come in socket-sized pieces that are consumed at once, and h2conn.c
 * encrypts at most FLUSH_BYTES of frames before sending them.
 */
#include "sidecar/tls.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

struct sc_tls {
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	struct sc_idgen *g;
	bool established;
	const char *detail;
	char peer[SC_PRINCIPAL_MAX];
};

const char *sc_tls_strerror(int r)
{
	switch (r) {
	case SC_TLS_E_VERIFY:
		return "certificate";
	case SC_TLS_E_ID:
		return "identity";
	case SC_TLS_E_ALPN:
		return "alpn";
	case SC_TLS_E_CLOSED:
		return "closed";
	case SC_TLS_E_NOMEM:
		return "nomem";
	default:
		return "handshake";
	}
}

struct sc_tls *sc_tls_new(struct sc_idgen *g, bool server)
{
	struct sc_tls *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ssl = SSL_new(server ? g->server : g->client);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		SSL_free(t->ssl);
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		free(t);
		return NULL;
	}
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	t->g = sc_idgen_ref(g);
	return t;
}

void sc_tls_free(struct sc_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	sc_idgen_unref(t->g);
	free(t);
	ERR_clear_error();
}

int sc_tls_feed(struct sc_tls *t, const uint8_t *d, size_t n)
{
	if (n && BIO_write(t->rbio, d, (int)n) != (int)n)
		return SC_TLS_E_NOMEM;
	return 0;
}

/* After the handshake: the peer's certificate names one SPIFFE ID of our trust domain. */
static int check_peer(struct sc_tls *t)
{
	const unsigned char *alpn = NULL;
	unsigned alen = 0;
	char td[256];
	X509 *cert;
	int r = 0;

	if (SSL_get_verify_result(t->ssl) != X509_V_OK) {
		t->detail = X509_verify_cert_error_string(SSL_get_verify_result(t->ssl));
		return SC_TLS_E_VERIFY;
	}
	cert = SSL_get1_peer_certificate(t->ssl);
	if (!cert) {
		t->detail = "the peer sent no certificate";
		return SC_TLS_E_VERIFY;
	}
	if (sc_cert_spiffe(cert, t->peer, sizeof(t->peer), td, sizeof(td)) != 0) {
		t->detail = "the peer's certificate has no single SPIFFE URI SAN";
		r = SC_TLS_E_ID;
	} else if (strcmp(td, t->g->trust_domain) != 0) {
		t->detail = "the peer's SPIFFE ID is of another trust domain";
		r = SC_TLS_E_ID;
	}
	X509_free(cert);
	if (r)
		return r;
	SSL_get0_alpn_selected(t->ssl, &alpn, &alen);
	if (alen != 2 || memcmp(alpn, "h2", 2) != 0) {
		t->detail = "ALPN h2 was not negotiated";
		return SC_TLS_E_ALPN;
	}
	return 0;
}

static int ssl_error(struct sc_tls *t, int rv)
{
	int e = SSL_get_error(t->ssl, rv);
	unsigned long q;

	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return SC_TLS_AGAIN;
	if (e == SSL_ERROR_ZERO_RETURN) {
		t->detail = "close_notify";
		return SC_TLS_E_CLOSED;
	}
	q = ERR_peek_last_error();
	if (ERR_GET_REASON(q) == SSL_R_CERTIFICATE_VERIFY_FAILED ||
	    SSL_get_verify_result(t->ssl) != X509_V_OK) {
		t->detail = X509_verify_cert_error_string(SSL_get_verify_result(t->ssl));
		ERR_clear_error();
		return SC_TLS_E_VERIFY;
	}
	t->detail = ERR_reason_error_string(q) ? ERR_reason_error_string(q) : "TLS error";
	ERR_clear_error();
	return SC_TLS_E_PROTO;
}

int sc_tls_handshake(struct sc_tls *t)
{
	int rv;

	if (t->established)
		return SC_TLS_OK;
	rv = SSL_do_handshake(t->ssl);
	if (rv != 1)
		return ssl_error(t, rv);
	rv = check_peer(t);
	if (rv == 0)
		t->established = true;
	return rv;
}

bool sc_tls_established(const struct sc_tls *t)
{
	return t->established;
}

ssize_t sc_tls_read(struct sc_tls *t, uint8_t *out, size_t cap)
{
	int rv = SSL_read(t->ssl, out, (int)cap);
	if (rv > 0)
		return rv;
	rv = ssl_error(t, rv);
	return rv == SC_TLS_AGAIN ? 0 : rv;
}

int sc_tls_write(struct sc_tls *t, const uint8_t *d, size_t n)
{
	while (n) {
		int rv = SSL_write(t->ssl, d, (int)n);
		if (rv <= 0) {
			rv = ssl_error(t, rv);
			return rv == SC_TLS_AGAIN ? SC_TLS_E_PROTO : rv;
		}
		d += rv;
		n -= (size_t)rv;
	}
	return 0;
}

size_t sc_tls_pending(const struct sc_tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t sc_tls_take(struct sc_tls *t, uint8_t *out, size_t cap)
{
	int r = BIO_read(t->wbio, out, (int)cap);
	return r > 0 ? (size_t)r : 0;
}

const char *sc_tls_peer_principal(const struct sc_tls *t)
{
	return t->established ? t->peer : NULL;
}

const struct sc_idgen *sc_tls_gen(const struct sc_tls *t)
{
	return t->g;
}

const char *sc_tls_detail(const struct sc_tls *t)
{
	return t->detail ? t->detail : "";
}
