/* sidecar/tls: the negative cache of destinations without a sidecar. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "sidecar/tls.h"
#include "tests/unit/runner.h"

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, ip, &in->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	memset(&ss, 0, sizeof(ss));
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &in6->sin6_addr);
	return ss;
}

static struct sc_negcache nc;

START_TEST(remember_and_expire)
{
	struct sockaddr_storage a = v4("10.0.0.1", 8080), b = v4("10.0.0.1", 8081),
				c = v6("fd00::1", 8080);

	memset(&nc, 0, sizeof(nc));
	ck_assert(!sc_negcache_has(&nc, &a, 1000));
	sc_negcache_add(&nc, &a, 1000);
	ck_assert(sc_negcache_has(&nc, &a, 1000));
	ck_assert(sc_negcache_has(&nc, &a, 1000 + SC_NEGCACHE_TTL_MS - 1));
	ck_assert(!sc_negcache_has(&nc, &a, 1000 + SC_NEGCACHE_TTL_MS));
	/* Per ip:port and family. */
	ck_assert(!sc_negcache_has(&nc, &b, 1000));
	ck_assert(!sc_negcache_has(&nc, &c, 1000));
	sc_negcache_add(&nc, &c, 2000);
	ck_assert(sc_negcache_has(&nc, &c, 2000));
	/* Adding again refreshes, without a second entry. */
	sc_negcache_add(&nc, &a, 50000);
	ck_assert(sc_negcache_has(&nc, &a, 50000 + SC_NEGCACHE_TTL_MS - 1));
	/* Not an IP address: never remembered. */
	struct sockaddr_storage u;
	memset(&u, 0, sizeof(u));
	u.ss_family = AF_UNIX;
	sc_negcache_add(&nc, &u, 1000);
	ck_assert(!sc_negcache_has(&nc, &u, 1000));
}
END_TEST

START_TEST(bounded)
{
	/* Many more destinations than slots: memory stays fixed, recent ones are kept
	 * (each probe window replaces the entry that expires first), nothing crashes. */
	char ip[32];
	unsigned kept = 0;

	memset(&nc, 0, sizeof(nc));
	for (unsigned i = 0; i < 10 * SC_NEGCACHE_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		struct sockaddr_storage a = v4(ip, 80);
		sc_negcache_add(&nc, &a, 1000 + i);
		ck_assert(sc_negcache_has(&nc, &a, 1000 + i));
	}
	for (unsigned i = 9 * SC_NEGCACHE_SLOTS; i < 10 * SC_NEGCACHE_SLOTS; i++) {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		struct sockaddr_storage a = v4(ip, 80);
		kept += sc_negcache_has(&nc, &a, 1000 + 10 * SC_NEGCACHE_SLOTS);
	}
	ck_assert_uint_ge(kept, SC_NEGCACHE_SLOTS / 2);
	ck_assert_uint_le(kept, SC_NEGCACHE_SLOTS);
}
END_TEST

/* A real ClientHello from OpenSSL offering alpn (wire format, may be NULL). */
static size_t client_hello(const unsigned char *alpn, size_t alpn_len, uint8_t *out, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	int n;

	SSL_set_bio(ssl, r, w);
	if (alpn)
		ck_assert_int_eq(SSL_set_alpn_protos(ssl, alpn, (unsigned)alpn_len), 0);
	SSL_set_connect_state(ssl);
	SSL_do_handshake(ssl);
	n = BIO_read(w, out, (int)cap);
	ck_assert_int_gt(n, 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

START_TEST(hello_classify)
{
	static const unsigned char ours[] = "\x0e" SC_TLS_ALPN_MARK "\x02h2";
	static const unsigned char h2[] = "\x02h2";
	static const unsigned char near[] = "\x0egrpcguard-mtlX\x02h2";
	uint8_t b[4096];
	size_t n = client_hello(ours, sizeof(ours) - 1, b, sizeof(b));

	ck_assert_int_eq(sc_tls_hello_classify(b, n, 16384), SC_HELLO_OURS);
	/* Byte by byte: MORE until the record is complete, never a wrong answer. */
	for (size_t i = 1; i < n; i++)
		ck_assert_int_eq(sc_tls_hello_classify(b, i, 16384), SC_HELLO_MORE);
	/* A record larger than the buffer we would hold: OTHER. */
	ck_assert_int_eq(sc_tls_hello_classify(b, n, n - 1), SC_HELLO_OTHER);
	/* Someone else's TLS: h2 only, a near miss, no ALPN at all. */
	n = client_hello(h2, sizeof(h2) - 1, b, sizeof(b));
	ck_assert_int_eq(sc_tls_hello_classify(b, n, 16384), SC_HELLO_OTHER);
	n = client_hello(near, sizeof(near) - 1, b, sizeof(b));
	ck_assert_int_eq(sc_tls_hello_classify(b, n, 16384), SC_HELLO_OTHER);
	n = client_hello(NULL, 0, b, sizeof(b));
	ck_assert_int_eq(sc_tls_hello_classify(b, n, 16384), SC_HELLO_OTHER);
	/* Not TLS, and truncated lengths inside a complete record: OTHER, no overread
	 * (ASan build checks). */
	ck_assert_int_eq(sc_tls_hello_classify((const uint8_t *)"PRI * HTTP/2.0", 14, 16384),
			 SC_HELLO_OTHER);
	n = client_hello(ours, sizeof(ours) - 1, b, sizeof(b));
	for (size_t cut = 9; cut < n; cut += 7) {
		uint8_t *t = malloc(cut);
		memcpy(t, b, cut);
		t[3] = (uint8_t)((cut - 5) >> 8); /* the record claims exactly what is there */
		t[4] = (uint8_t)(cut - 5);
		ck_assert_int_eq(sc_tls_hello_classify(t, cut, 16384), SC_HELLO_OTHER);
		free(t);
	}
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"negcache", remember_and_expire},
	    {"negcache", bounded},
	    {"hello", hello_classify},
	};
	return UT_RUN("sidecar/tls", cases, .timeout_s = 10);
}
