/*
 * Workload identity: key, CSR, certificate fetch and renewal (see identity.h).
 *
 * The fetch is one HTTPS request per attempt on a fresh connection (the issuer is called
 * once per half-life): blocking OpenSSL on a socket with 10 s send/receive timeouts, on
 * our own thread; the response is parsed with http-parser (already linked for the admin
 * port) and jansson. Nothing here logs the token, the key or the CSR.
 */
#include "sidecar/identity.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/metrics.h"
#include "sidecar/stats.h"
#include "sidecar/tls.h"

#ifdef GG_TESTING
#define TESTABLE
#else
#define TESTABLE static
#endif

#define TOKEN_MAX_BYTES 16384
#define RESPONSE_MAX_BYTES (256 * 1024)
#define IO_TIMEOUT_S 10

/* ---- pure helpers -------------------------------------------------------------------- */

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '-' || ch == '_';
}

/* Length of the run of name characters at p (at most n). */
static size_t name_run(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && name_char(p[i]))
		i++;
	return i;
}

int sc_spiffe_parse(const char *uri, size_t len, char *principal, size_t cap, char *td,
		    size_t tdcap)
{
	static const char scheme[] = "spiffe://";
	const size_t sl = sizeof(scheme) - 1;
	const char *p, *end = uri + len, *tdp, *nsp, *sap;
	size_t tdl, nsl, sal, need;

	if (len < sl || memcmp(uri, scheme, sl) != 0)
		return -1;
	p = tdp = uri + sl;
	tdl = name_run(p, (size_t)(end - p));
	if (tdl == 0 || tdl > 255)
		return -1;
	for (size_t i = 0; i < tdl; i++)
		if (tdp[i] >= 'A' && tdp[i] <= 'Z')
			return -1; /* SPIFFE: the trust domain is lowercase */
	p += tdl;
	if (end - p < 4 || memcmp(p, "/ns/", 4) != 0)
		return -1;
	p = nsp = p + 4;
	nsl = name_run(p, (size_t)(end - p));
	if (nsl == 0 || nsl > 253)
		return -1;
	p += nsl;
	if (end - p < 4 || memcmp(p, "/sa/", 4) != 0)
		return -1;
	p = sap = p + 4;
	sal = name_run(p, (size_t)(end - p));
	if (sal == 0 || sal > 253 || p + sal != end)
		return -1;
	need = tdl + 4 + nsl + 4 + sal + 1;
	if (need > cap || tdl + 1 > tdcap)
		return -1;
	memcpy(principal, tdp, (size_t)(end - tdp));
	principal[end - tdp] = '\0';
	memcpy(td, tdp, tdl);
	td[tdl] = '\0';
	return 0;
}

int sc_principal_split(const char *p, const char **ns, size_t *nslen, const char **sa,
		       size_t *salen)
{
	const char *a = strstr(p, "/ns/"), *b;

	if (!a)
		return -1;
	a += 4;
	b = strstr(a, "/sa/");
	if (!b || b == a || !b[4])
		return -1;
	*ns = a;
	*nslen = (size_t)(b - a);
	*sa = b + 4;
	*salen = strlen(b + 4);
	return 0;
}

int64_t sc_identity_renew_at(int64_t not_before, int64_t not_after)
{
	if (not_after <= not_before)
		return not_before;
	return not_before + (not_after - not_before) / 2;
}

uint64_t sc_identity_backoff_ms(unsigned attempt, uint64_t min_ms, uint64_t max_ms, double r01)
{
	uint64_t d = min_ms ? min_ms : 1;

	for (unsigned i = 0; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	if (r01 < 0 || r01 >= 1)
		r01 = 0;
	return d - (uint64_t)((double)d * 0.25 * r01);
}

/* ---- generations ----------------------------------------------------------------------- */

struct sc_idgen *sc_idgen_ref(struct sc_idgen *g)
{
	if (g)
		atomic_fetch_add(&g->refs, 1);
	return g;
}

void sc_idgen_unref(struct sc_idgen *g)
{
	if (!g || atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	SSL_CTX_free(g->server);
	SSL_CTX_free(g->client);
	free(g);
}

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	struct sc_idgen *cur;
	struct sc_identity_opts o;
	char host[256], port[8];
	char last_error[512];
	void (*notify)(void *);
	void *ctx;
	struct metrics_series *renew_ok, *renew_fail, *expiry;
} ID = {.lock = PTHREAD_MUTEX_INITIALIZER};

bool sc_identity_enabled(void)
{
	return ID.started;
}

struct sc_idgen *sc_identity_current(void)
{
	struct sc_idgen *g;

	pthread_mutex_lock(&ID.lock);
	g = sc_idgen_ref(ID.cur);
	pthread_mutex_unlock(&ID.lock);
	if (g && (int64_t)time(NULL) >= g->not_after) {
		sc_idgen_unref(g); /* expired: no new connection uses it */
		return NULL;
	}
	return g;
}

bool sc_identity_ready(int64_t now_s)
{
	bool r;

	pthread_mutex_lock(&ID.lock);
	r = ID.cur && now_s < ID.cur->not_after;
	pthread_mutex_unlock(&ID.lock);
	return r;
}

static void rfc3339(int64_t t, char *out, size_t cap)
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *sc_identity_json(void)
{
	json_t *o;
	char na[32] = "";

	if (!ID.started)
		return json_pack("{s:b}", "enabled", 0);
	pthread_mutex_lock(&ID.lock);
	if (ID.cur)
		rfc3339(ID.cur->not_after, na, sizeof(na));
	o = json_pack("{s:b, s:s, s:s?, s:s?, s:I, s:s?}", "enabled", 1, "issuer", ID.o.ca_address,
		      "spiffeId", ID.cur ? ID.cur->spiffe_id : NULL, "notAfter", ID.cur ? na : NULL,
		      "serial", (json_int_t)(ID.cur ? ID.cur->serial : 0), "lastError",
		      ID.last_error[0] ? ID.last_error : NULL);
	pthread_mutex_unlock(&ID.lock);
	return o;
}

/* ---- building a generation from the issuer's answer ------------------------------------- */

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned i = 0; i < inlen;) {
		unsigned l = in[i];
		if (i + 1 + l > inlen)
			break;
		if (l == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
			*out = in + i + 1;
			*outlen = 2;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	return SSL_TLSEXT_ERR_ALERT_FATAL; /* only h2 is spoken between sidecars */
}

static int64_t asn1_to_time(const ASN1_TIME *a)
{
	struct tm tm;
	if (!a || ASN1_TIME_to_tm(a, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

int sc_cert_spiffe(X509 *cert, char *principal, size_t cap, char *td, size_t tdcap)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int found = 0;

	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
		const unsigned char *d;
		int l;
		if (n->type != GEN_URI)
			continue;
		d = ASN1_STRING_get0_data(n->d.uniformResourceIdentifier);
		l = ASN1_STRING_length(n->d.uniformResourceIdentifier);
		if (found ||
		    sc_spiffe_parse((const char *)d, (size_t)l, principal, cap, td, tdcap) != 0) {
			found = -1; /* two URI SANs, or one that is not a SPIFFE ID */
			break;
		}
		found = 1;
	}
	GENERAL_NAMES_free(names);
	return found == 1 ? 0 : -1;
}

static SSL_CTX *ctx_new(bool server, EVP_PKEY *key, X509 *leaf, STACK_OF(X509) * chain,
			X509_STORE *store)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	/* The mark first, then h2 (the only protocol the server selects): tls.h. */
	static const unsigned char alpn[] = "\x0e" SC_TLS_ALPN_MARK "\x02h2";

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	for (int i = 0; chain && i < sk_X509_num(chain); i++)
		if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1)
			goto fail;
	X509_STORE_up_ref(store);
	SSL_CTX_set_cert_store(ctx, store);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (server ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (server) {
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
		SSL_CTX_set_num_tickets(ctx, 0); /* connections are long-lived and reused */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
			goto fail;
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * The issuer's answer (chain and caBundle PEM) with our key: a new generation (refs 1),
 * or NULL with a reason in err.
 */
static struct sc_idgen *gen_build(EVP_PKEY *key, const char *chain_pem, const char *ca_pem,
				  char *err, size_t errlen)
{
	struct sc_idgen *g = NULL;
	BIO *b = NULL;
	X509 *leaf = NULL, *x;
	STACK_OF(X509) *chain = sk_X509_new_null();
	X509_STORE *store = X509_STORE_new();
	int nca = 0;

	if (!chain || !store)
		goto fail;
	b = BIO_new_mem_buf(chain_pem, -1);
	if (!b || !(leaf = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		snprintf(err, errlen, "certificateChain holds no PEM certificate");
		goto fail;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
		if (!sk_X509_push(chain, x)) {
			X509_free(x);
			goto fail;
		}
	ERR_clear_error();
	BIO_free(b);
	b = BIO_new_mem_buf(ca_pem, -1);
	while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
		X509_STORE_add_cert(store, x);
		X509_free(x);
		nca++;
	}
	ERR_clear_error();
	if (nca == 0) {
		snprintf(err, errlen, "caBundle holds no PEM certificate");
		goto fail;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		snprintf(err, errlen, "the certificate is not for our key");
		goto fail;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		goto fail;
	atomic_init(&g->refs, 1);
	if (sc_cert_spiffe(leaf, g->principal, sizeof(g->principal), g->trust_domain,
			   sizeof(g->trust_domain)) != 0) {
		snprintf(err, errlen, "the certificate has no single SPIFFE URI SAN");
		goto fail;
	}
	snprintf(g->spiffe_id, sizeof(g->spiffe_id), "spiffe://%s", g->principal);
	g->not_before = asn1_to_time(X509_get0_notBefore(leaf));
	g->not_after = asn1_to_time(X509_get0_notAfter(leaf));
	if (g->not_after <= g->not_before) {
		snprintf(err, errlen, "the certificate's validity period is empty");
		goto fail;
	}
	g->server = ctx_new(true, key, leaf, chain, store);
	g->client = ctx_new(false, key, leaf, chain, store);
	if (!g->server || !g->client) {
		snprintf(err, errlen, "OpenSSL refused the certificate: %s",
			 ERR_reason_error_string(ERR_peek_last_error())
			     ? ERR_reason_error_string(ERR_peek_last_error())
			     : "unknown");
		goto fail;
	}
	goto out;
fail:
	if (g) {
		SSL_CTX_free(g->server);
		SSL_CTX_free(g->client);
		free(g);
	}
	g = NULL;
	if (!err[0])
		snprintf(err, errlen, "out of memory");
out:
	ERR_clear_error();
	BIO_free(b);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	X509_STORE_free(store);
	return g;
}

/* ---- one fetch ------------------------------------------------------------------------- */

/* A CSR for key as PEM (new string) or NULL. The issuer takes the identity from the
 * token, never from the CSR, so the subject only says what made it. */
static char *csr_pem(EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *out = NULL, *p;
	long n;

	if (!req || !name || !b ||
	    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"grpcguard",
				       -1, -1, 0) != 1 ||
	    X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, EVP_sha256()) <= 0 || PEM_write_bio_X509_REQ(b, req) != 1)
		goto out;
	n = BIO_get_mem_data(b, &p);
	out = malloc((size_t)n + 1);
	if (out) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
out:
	X509_REQ_free(req);
	X509_NAME_free(name);
	BIO_free(b);
	return out;
}

static int read_token(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f) {
		snprintf(err, errlen,
			 "cannot read the token %s: %s (is the projected volume "
			 "mounted? see --identity-token)",
			 path, strerror(errno));
		return -1;
	}
	n = fread(out, 1, cap - 1, f);
	fclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	if (n == 0 || n >= cap - 1) {
		snprintf(err, errlen, "the token %s is %s", path, n ? "too large" : "empty");
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] <= ' ' || (unsigned char)out[i] >= 0x7f) {
			snprintf(err, errlen, "the token %s holds a non-printable byte", path);
			return -1;
		}
	return 0;
}

struct resp {
	char *body;
	size_t len;
	bool too_big, done;
};

static int on_body(http_parser *p, const char *at, size_t n)
{
	struct resp *r = p->data;
	char *nb;

	if (r->len + n > RESPONSE_MAX_BYTES) {
		r->too_big = true;
		return 1;
	}
	nb = realloc(r->body, r->len + n + 1);
	if (!nb)
		return 1;
	r->body = nb;
	memcpy(r->body + r->len, at, n);
	r->len += n;
	r->body[r->len] = '\0';
	return 0;
}

static int on_done(http_parser *p)
{
	((struct resp *)p->data)->done = true;
	return 0;
}

static int tcp_connect(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	int fd = -1, r = getaddrinfo(host, port, &hints, &ai);

	if (r != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return -1;
	}
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/*
 * POST the CSR with the token to the issuer and build a generation from its answer.
 * Returns it (refs 1) or NULL with a reason in err.
 */
static struct sc_idgen *fetch(EVP_PKEY *key, char *err, size_t errlen)
{
	struct sc_idgen *g = NULL;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char *csr = NULL, *body = NULL, *req = NULL, *token = malloc(TOKEN_MAX_BYTES);
	json_t *in = NULL, *jreq = NULL, *chain, *ca;
	struct resp r = {0};
	http_parser_settings hs = {.on_body = on_body, .on_message_complete = on_done};
	http_parser hp;
	char rbuf[8192];
	int fd = -1, n, reqlen = 0;

	err[0] = '\0';
	if (!token || read_token(ID.o.token_path, token, TOKEN_MAX_BYTES, err, errlen) != 0)
		goto out;
	csr = csr_pem(key);
	jreq = csr ? json_pack("{s:s}", "csr", csr) : NULL;
	body = jreq ? json_dumps(jreq, JSON_COMPACT) : NULL;
	if (!body)
		goto out;
	reqlen = asprintf(&req,
			  "POST /v1/certify HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
			  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
			  "Connection: close\r\n\r\n%s",
			  ID.host, token, strlen(body), body);
	if (reqlen < 0) {
		req = NULL;
		goto out;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, ID.o.ca_cert, NULL) != 1) {
		snprintf(err, errlen, "cannot load --ca-cert %s (a PEM bundle of the issuer's CA)",
			 ID.o.ca_cert);
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	fd = tcp_connect(ID.host, ID.port, err, errlen);
	if (fd < 0)
		goto out;
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set_tlsext_host_name(ssl, ID.host) != 1 ||
	    SSL_set1_host(ssl, ID.host) != 1)
		goto out;
	if (SSL_connect(ssl) != 1) {
		long v = SSL_get_verify_result(ssl);
		snprintf(err, errlen, "TLS to the issuer %s failed: %s", ID.o.ca_address,
			 v != X509_V_OK ? X509_verify_cert_error_string(v)
					: "handshake failed (is it HTTPS?)");
		goto out;
	}
	for (int off = 0; off < reqlen; off += n) {
		n = SSL_write(ssl, req + off, reqlen - off);
		if (n <= 0) {
			snprintf(err, errlen, "writing to the issuer failed");
			goto out;
		}
	}
	http_parser_init(&hp, HTTP_RESPONSE);
	hp.data = &r;
	while (!r.done) {
		n = SSL_read(ssl, rbuf, sizeof(rbuf));
		if (n <= 0) {
			http_parser_execute(&hp, &hs, NULL, 0); /* EOF ends a body without length */
			break;
		}
		if (http_parser_execute(&hp, &hs, rbuf, (size_t)n) != (size_t)n)
			break;
	}
	if (!r.done) {
		snprintf(err, errlen, "the issuer's answer was %s",
			 r.too_big ? "too large" : "not a complete HTTP response");
		goto out;
	}
	in = r.body ? json_loadb(r.body, r.len, 0, NULL) : NULL;
	if (hp.status_code != 200) {
		json_t *e = json_object_get(in, "error");
		snprintf(err, errlen, "the issuer answered %u: %s", hp.status_code,
			 json_is_string(e) ? json_string_value(e) : "(no error message)");
		goto out;
	}
	chain = json_object_get(in, "certificateChain");
	ca = json_object_get(in, "caBundle");
	if (!json_is_string(chain) || !json_is_string(ca)) {
		snprintf(err, errlen, "the issuer's answer lacks certificateChain or caBundle");
		goto out;
	}
	g = gen_build(key, json_string_value(chain), json_string_value(ca), err, errlen);
out:
	if (!g && !err[0])
		snprintf(err, errlen, "out of memory");
	json_decref(in);
	json_decref(jreq);
	free(r.body);
	if (ssl)
		SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	if (req)
		OPENSSL_cleanse(req, (size_t)reqlen);
	free(req);
	if (token)
		OPENSSL_cleanse(token, TOKEN_MAX_BYTES);
	free(token);
	free(body);
	free(csr);
	ERR_clear_error();
	return g;
}

/* ---- the thread ------------------------------------------------------------------------ */

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait up to ms (or until stopped); with ID.lock held. */
static void wait_ms(uint64_t ms)
{
	struct timespec ts;
	uint64_t t = mono_ms() + ms;

	ts.tv_sec = (time_t)(t / 1000);
	ts.tv_nsec = (long)(t % 1000) * 1000000;
	while (!ID.stop && mono_ms() < t)
		if (pthread_cond_timedwait(&ID.cond, &ID.lock, &ts) == ETIMEDOUT)
			break;
}

static void *identity_main(void *arg)
{
	EVP_PKEY *key = arg;
	unsigned attempt = 0;
	char err[512];

	pthread_mutex_lock(&ID.lock);
	while (!ID.stop) {
		struct sc_idgen *g, *old;
		int64_t now = (int64_t)time(NULL), due;
		uint64_t wait;

		due = ID.cur ? sc_identity_renew_at(ID.cur->not_before, ID.cur->not_after) : now;
		if (now < due) {
			/* Wake at the renewal time, or at expiry (readiness) if that is sooner. */
			wait_ms((uint64_t)(due - now) * 1000);
			continue;
		}
		pthread_mutex_unlock(&ID.lock);
		g = fetch(key, err, sizeof(err));
		pthread_mutex_lock(&ID.lock);
		if (ID.stop) {
			sc_idgen_unref(g);
			break;
		}
		if (g) {
			old = ID.cur;
			g->serial = old ? old->serial + 1 : 1;
			ID.cur = g;
			ID.last_error[0] = '\0';
			attempt = 0;
			metrics_inc(ID.renew_ok);
			metrics_set(ID.expiry, (double)g->not_after);
			{
				char na[32];
				rfc3339(g->not_after, na, sizeof(na));
				log_info("identity_certificate", "got a workload certificate",
					 "{s:s, s:s, s:I}", "spiffe_id", g->spiffe_id, "not_after",
					 na, "serial", (json_int_t)g->serial);
			}
			pthread_mutex_unlock(&ID.lock);
			sc_idgen_unref(old);
			if (ID.notify)
				ID.notify(ID.ctx);
			pthread_mutex_lock(&ID.lock);
			continue;
		}
		snprintf(ID.last_error, sizeof(ID.last_error), "%s", err);
		metrics_inc(ID.renew_fail);
		wait = sc_identity_backoff_ms(attempt++, ID.o.min_backoff_ms, ID.o.max_backoff_ms,
					      (double)(random() % 1000) / 1000.0);
		log_warn("identity_fetch_failed",
			 ID.cur ? "certificate renewal failed; still serving on the current one"
				: "cannot get a workload certificate; not ready",
			 "{s:s, s:I}", "error", err, "retry_ms", (json_int_t)wait);
		if (ID.cur && now < ID.cur->not_after &&
		    (uint64_t)(ID.cur->not_after - now) * 1000 < wait) {
			/* Wake at expiry so /readyz turns red on time, then retry. */
			wait_ms((uint64_t)(ID.cur->not_after - now) * 1000 + 1);
			pthread_mutex_unlock(&ID.lock);
			if (ID.notify)
				ID.notify(ID.ctx);
			pthread_mutex_lock(&ID.lock);
			continue;
		}
		wait_ms(wait);
	}
	pthread_mutex_unlock(&ID.lock);
	EVP_PKEY_free(key);
	return NULL;
}

/* "https://host[:port][/]" into ID.host / ID.port; 0 or -1. IPv6 literals in brackets. */
TESTABLE int parse_address(const char *a, char *host, size_t hcap, char *port, size_t pcap);
TESTABLE int parse_address(const char *a, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *h, *e, *colon;
	size_t hl;

	if (strncmp(a, "https://", 8) != 0)
		return -1;
	h = a + 8;
	e = h + strcspn(h, "/");
	if (*e && strcmp(e, "/") != 0)
		return -1;
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(e - h));
		if (!rb)
			return -1;
		hl = (size_t)(rb - h - 1);
		h++;
		colon = rb + 1 < e && rb[1] == ':' ? rb + 1 : NULL;
		if (!colon && rb + 1 != e)
			return -1;
	} else {
		colon = memchr(h, ':', (size_t)(e - h));
		hl = (size_t)((colon ? colon : e) - h);
	}
	if (hl == 0 || hl >= hcap)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (colon) {
		size_t pl = (size_t)(e - colon - 1);
		unsigned long p;
		char *end;
		if (pl == 0 || pl >= pcap)
			return -1;
		memcpy(port, colon + 1, pl);
		port[pl] = '\0';
		p = strtoul(port, &end, 10);
		if (*end || p == 0 || p > 65535)
			return -1;
	} else {
		snprintf(port, pcap, "443");
	}
	return 0;
}

int sc_identity_start(const struct sc_identity_opts *o, void (*notify)(void *), void *ctx)
{
	static const char *const res[] = {"result"};
	struct metrics_family *f;
	pthread_condattr_t ca;
	EVP_PKEY *key;

	if (ID.started || !o->ca_address)
		return -EINVAL;
	if (parse_address(o->ca_address, ID.host, sizeof(ID.host), ID.port, sizeof(ID.port)) != 0)
		return -EINVAL;
	ID.o = *o;
	if (!ID.o.min_backoff_ms)
		ID.o.min_backoff_ms = 1000;
	if (!ID.o.max_backoff_ms)
		ID.o.max_backoff_ms = 60000;
	ID.notify = notify;
	ID.ctx = ctx;
	f = metrics_counter(
	    sc_stats.reg, "grpcguard_identity_renewals_total",
	    "Workload certificate fetches (the first one and each renewal), by result", 1, res);
	if (f) {
		const char *ok[] = {"success"}, *fail[] = {"failure"};
		ID.renew_ok = metrics_series(f, ok);
		ID.renew_fail = metrics_series(f, fail);
	}
	f = metrics_gauge(sc_stats.reg, "grpcguard_identity_cert_expiry_timestamp_seconds",
			  "notAfter of the workload certificate in use (Unix time; 0: none yet)", 0,
			  NULL);
	ID.expiry = f ? metrics_series(f, NULL) : NULL;
	/* The key lives only in this process's memory: made here, never written or sent. */
	key = EVP_EC_gen("P-256");
	if (!key)
		return -ENOMEM;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ID.cond, &ca);
	pthread_condattr_destroy(&ca);
	ID.stop = false;
	if (pthread_create(&ID.thread, NULL, identity_main, key) != 0) {
		EVP_PKEY_free(key);
		pthread_cond_destroy(&ID.cond);
		return -EAGAIN;
	}
	ID.started = true;
	return 0;
}

void sc_identity_stop(void)
{
	struct sc_idgen *g;

	if (!ID.started)
		return;
	pthread_mutex_lock(&ID.lock);
	ID.stop = true;
	pthread_cond_broadcast(&ID.cond);
	pthread_mutex_unlock(&ID.lock);
	pthread_join(ID.thread, NULL);
	pthread_cond_destroy(&ID.cond);
	pthread_mutex_lock(&ID.lock);
	g = ID.cur;
	ID.cur = NULL;
	pthread_mutex_unlock(&ID.lock);
	sc_idgen_unref(g);
	ID.started = false;
}
