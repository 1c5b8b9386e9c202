/*
 * TLS over memory BIOs (see tls.h). One SSL per connection; its read BIO gets what the
 * socket read, its write BIO collects what must go out. Both BIOs are bounded by the
 * callers: reads come in socket-sized pieces that are consumed at once, and h2conn.c
 * encrypts at most FLUSH_BYTES of frames before sending them.
 */
#include "sidecar/tls.h"

#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

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

/* ---- ClientHello classification ------------------------------------------------------ */

static uint32_t be(const uint8_t *p, int n)
{
	uint32_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

enum sc_hello sc_tls_hello_classify(const uint8_t *d, size_t n, size_t max)
{
	static const char mark[] = SC_TLS_ALPN_MARK;
	const size_t ml = sizeof(mark) - 1;
	size_t rl, hl, p, end, el;

	if (n < 5)
		return n == 0 || d[0] == 0x16 ? SC_HELLO_MORE : SC_HELLO_OTHER;
	if (d[0] != 0x16 || d[1] != 0x03)
		return SC_HELLO_OTHER;
	rl = be(d + 3, 2);
	if (5 + rl > max || rl < 4)
		return SC_HELLO_OTHER;
	if (n < 5 + rl)
		return SC_HELLO_MORE;
	d += 5;
	if (d[0] != 1) /* client_hello */
		return SC_HELLO_OTHER;
	hl = be(d + 1, 3);
	if (4 + hl > rl)
		return SC_HELLO_OTHER; /* spans records: not ours (ours is ~300 bytes) */
	end = 4 + hl;
	p = 4 + 2 + 32; /* version, random */
	if (p + 1 > end)
		return SC_HELLO_OTHER;
	p += 1 + d[p]; /* session id */
	if (p + 2 > end)
		return SC_HELLO_OTHER;
	p += 2 + be(d + p, 2); /* cipher suites */
	if (p + 1 > end)
		return SC_HELLO_OTHER;
	p += 1 + d[p]; /* compression methods */
	if (p + 2 > end)
		return SC_HELLO_OTHER;
	el = be(d + p, 2);
	p += 2;
	if (p + el > end)
		return SC_HELLO_OTHER;
	end = p + el;
	while (p + 4 <= end) {
		uint32_t type = be(d + p, 2), len = be(d + p + 2, 2);
		size_t q, qe;
		p += 4;
		if (p + len > end)
			return SC_HELLO_OTHER;
		if (type != 16) { /* application_layer_protocol_negotiation */
			p += len;
			continue;
		}
		if (len < 2 || be(d + p, 2) != len - 2)
			return SC_HELLO_OTHER;
		for (q = p + 2, qe = p + len; q < qe;) {
			size_t l = d[q];
			if (q + 1 + l > qe)
				return SC_HELLO_OTHER;
			if (l == ml && memcmp(d + q + 1, mark, ml) == 0)
				return SC_HELLO_OURS;
			q += 1 + l;
		}
		return SC_HELLO_OTHER;
	}
	return SC_HELLO_OTHER;
}

/* ---- negative cache -------------------------------------------------------------------- */

static int key_of(const struct sockaddr_storage *dst, uint8_t addr[16], uint16_t *port)
{
	memset(addr, 0, 16);
	if (dst->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)dst;
		memcpy(addr, &in->sin_addr, 4);
		*port = in->sin_port;
		return AF_INET;
	}
	if (dst->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)dst;
		memcpy(addr, &in6->sin6_addr, 16);
		*port = in6->sin6_port;
		return AF_INET6;
	}
	return 0;
}

static size_t slot_of(const uint8_t addr[16], uint16_t port)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ addr[i]) * 16777619u;
	h = (h ^ port) * 16777619u;
	return h % SC_NEGCACHE_SLOTS;
}

/* Open addressing over 8 probes; the probe window is where an entry may live. */
#define PROBES 8

void sc_negcache_add(struct sc_negcache *nc, const struct sockaddr_storage *dst, uint64_t now_ms)
{
	uint8_t addr[16];
	uint16_t port;
	int fam = key_of(dst, addr, &port);
	size_t base, victim;

	if (!fam)
		return;
	base = slot_of(addr, port);
	victim = base;
	for (size_t i = 0; i < PROBES; i++) {
		struct sc_negcache_ent *e = &nc->e[(base + i) % SC_NEGCACHE_SLOTS];
		if (e->family == fam && e->port == port && memcmp(e->addr, addr, 16) == 0) {
			victim = (base + i) % SC_NEGCACHE_SLOTS;
			break;
		}
		if (!e->family || e->until_ms <= now_ms) {
			victim = (base + i) % SC_NEGCACHE_SLOTS;
			break;
		}
		if (e->until_ms < nc->e[victim].until_ms)
			victim = (base + i) % SC_NEGCACHE_SLOTS;
	}
	nc->e[victim].family = (uint8_t)fam;
	nc->e[victim].port = port;
	memcpy(nc->e[victim].addr, addr, 16);
	nc->e[victim].until_ms = now_ms + SC_NEGCACHE_TTL_MS;
}

bool sc_negcache_has(const struct sc_negcache *nc, const struct sockaddr_storage *dst,
		     uint64_t now_ms)
{
	uint8_t addr[16];
	uint16_t port;
	int fam = key_of(dst, addr, &port);
	size_t base;

	if (!fam)
		return false;
	base = slot_of(addr, port);
	for (size_t i = 0; i < PROBES; i++) {
		const struct sc_negcache_ent *e = &nc->e[(base + i) % SC_NEGCACHE_SLOTS];
		if (e->family == fam && e->port == port && memcmp(e->addr, addr, 16) == 0)
			return e->until_ms > now_ms;
	}
	return false;
}
