/*
 * HTTPS front end of the webhook (see server.h): routing, limits, logs, metrics and
 * certificate rotation around the pure review handler.
 */
#include "webhook/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/metrics.h"
#include "webhook/certify.h"
#include "webhook/deadline.h"
#include "webhook/review.h"

#define MAX_PEM_BYTES (1024 * 1024)
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define CERT_POLL_MS 1000
#define MAX_RETIRED 8
#define BAD_REQUEST_LOGS_PER_SEC 10
/* Past the body limit we read and drop this much more to send a clean 413, then hang up. */
#define DISCARD_FACTOR 4

/* One libmicrohttpd daemon serving one certificate pair. */
struct tls_daemon {
	struct MHD_Daemon *d;
	struct wh_server *srv;
	char *cert_pem;
	char *key_pem;
	size_t key_len;
	atomic_bool draining; /* quiesced: answer with Connection: close */
	atomic_uint inflight; /* POSTs between their first and their completed callback */
	atomic_uint open;     /* connections of this daemon, for limits.maxConnections */
	uint64_t drain_deadline_mono_ms;
};

struct file_sig {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	bool exists;
};

struct wh_server {
	const struct wh_config *cfg;
	char *cert_path, *key_path;
	unsigned threads;
	int listen_fd;
	unsigned port;
	struct tls_daemon *cur;
	struct tls_daemon *retired[MAX_RETIRED];
	struct file_sig cert_sig, key_sig;
	uint64_t next_poll_mono_ms;
	atomic_bool ready;

	struct metrics_registry *metrics;
	struct metrics_family *admissions, *duration, *http_errors, *reloads, *expiry;
	struct metrics_series *s_reload_ok, *s_reload_fail, *s_expiry;

	struct metrics_series *s_refused_conns;

	/* Whole-request deadlines (limits.connectionTimeoutSeconds), over every daemon. */
	struct wh_deadlines *deadlines;
	struct metrics_series *s_request_timeouts;

	/* POST /v1/certify, when identity.enabled (NULL otherwise: 404). */
	struct wh_certify *certify;

	/* Rate limit for bad-request logs (per second, all peers together). */
	atomic_uint_fast64_t log_window_s;
	atomic_uint log_count;
};

/* Per-request state of a POST, in *con_cls. */
struct request {
	struct tls_daemon *td;
	enum wh_route route;
	bool certify; /* POST /v1/certify, not an admission review */
	char *body;
	size_t len, cap;
	bool too_big;
	size_t discarded;
	struct timespec start;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- certificates ------------------------------------------------------------------------- */

/* A PEM file: what fileio_read_bounded() returns, and an empty file is an error too. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	int rc = fileio_read_bounded(path, MAX_PEM_BYTES, out, len, err, errlen);

	if (rc == 0 && *len == 0) {
		free(*out);
		*out = NULL;
		snprintf(err, errlen, "%s: empty file", path);
		rc = -EINVAL;
	}
	return rc;
}

static void free_secret(char *p, size_t len)
{
	if (p)
		explicit_bzero(p, len);
	free(p);
}

/*
 * Check that cert_pem holds a certificate and key_pem a private key that belongs to it.
 * Returns 0 (and the certificate's notAfter as Unix time in *not_after) or -EINVAL.
 */
static int check_pair(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		      time_t *not_after, char *err, size_t errlen)
{
	BIO *cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
	BIO *kb = BIO_new_mem_buf(key_pem, (int)key_len);
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	struct tm tm;
	int rc = -EINVAL;

	if (!cb || !kb) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (!cert) {
		snprintf(err, errlen, "certificate: no PEM certificate found");
		goto out;
	}
	key = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	if (!key) {
		snprintf(err, errlen,
			 "key: no PEM private key found (unencrypted PKCS#8, EC or "
			 "RSA expected)");
		goto out;
	}
	if (X509_check_private_key(cert, key) != 1) {
		snprintf(err, errlen, "the private key does not match the certificate");
		goto out;
	}
	memset(&tm, 0, sizeof(tm));
	*not_after = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1 ? timegm(&tm) : 0;
	rc = 0;
out:
	ERR_clear_error();
	X509_free(cert);
	EVP_PKEY_free(key);
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

static void sig_of(const char *path, struct file_sig *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (stat(path, &st) != 0)
		return;
	sig->exists = true;
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime = st.st_mtim;
	sig->ctime = st.st_ctim;
}

static bool sig_equal(const struct file_sig *a, const struct file_sig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static const char *norm_kind(const char *k)
{
	static const char *const known[] = {"Pod", "Service", "ConfigMap"};
	for (size_t i = 0; i < 3; i++) {
		if (!strcmp(k, known[i]))
			return known[i];
	}
	return *k ? "other" : "unknown";
}

static const char *norm_op(const char *op)
{
	static const char *const known[] = {"CREATE", "UPDATE", "DELETE", "CONNECT"};
	for (size_t i = 0; i < 4; i++) {
		if (!strcmp(op, known[i]))
			return known[i];
	}
	return "unknown";
}

/* True when this second's budget of bad-request log lines is not used up. */
static bool log_budget(struct wh_server *s)
{
	uint64_t now_s = mono_ms() / 1000;
	uint64_t w = atomic_load(&s->log_window_s);

	if (w != now_s && atomic_compare_exchange_strong(&s->log_window_s, &w, now_s))
		atomic_store(&s->log_count, 0);
	return atomic_fetch_add(&s->log_count, 1) < BAD_REQUEST_LOGS_PER_SEC;
}

/* Queue `body` (copied) with `status`. Returns what the access handler returns. */
static enum MHD_Result reply(struct MHD_Connection *conn, struct tls_daemon *td, unsigned status,
			     const char *ctype, const char *body, size_t len,
			     enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)body, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (td && atomic_load(&td->draining))
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, struct tls_daemon *td,
				  unsigned status, const char *text)
{
	return reply(conn, td, status, "text/plain; charset=utf-8", text, strlen(text),
		     MHD_RESPMEM_MUST_COPY);
}

/* A refused request on an admission route: count it, log it (rate limited), answer. */
static enum MHD_Result refuse(struct tls_daemon *td, struct MHD_Connection *conn, unsigned status,
			      const char *url, const char *text)
{
	struct wh_server *s = td->srv;
	char code[8];
	const char *labels[2] = {url, code};

	snprintf(code, sizeof(code), "%u", status);
	labels[0] = !strcmp(url, "/validate") ? "/validate"
		    : !strcmp(url, "/mutate") ? "/mutate"
					      : "other";
	metrics_inc(metrics_series(s->http_errors, labels));
	if (log_budget(s))
		log_warn("bad_request", text, "{s:s, s:i}", "path", labels[0], "status",
			 (int)status);
	char *body = NULL;
	int n = asprintf(&body, "%s\n", text);
	if (n < 0)
		return MHD_NO;
	return reply(conn, td, status, "text/plain; charset=utf-8", body, (size_t)n,
		     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result serve_get(struct tls_daemon *td, struct MHD_Connection *conn,
				 const char *url)
{
	struct wh_server *s = td->srv;

	if (!strcmp(url, "/healthz"))
		return reply_text(conn, td, MHD_HTTP_OK, "ok\n");
	if (!strcmp(url, "/readyz")) {
		bool ok = atomic_load(&s->ready) && !atomic_load(&td->draining);
		return reply_text(conn, td, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
				  ok ? "ready\n" : "not ready\n");
	}
	if (!strcmp(url, "/metrics")) {
		char *text = NULL;
		size_t len = 0;
		if (metrics_render(s->metrics, &text, &len) != 0)
			return reply_text(conn, td, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "out of memory\n");
		return reply(conn, td, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
			     text, len, MHD_RESPMEM_MUST_FREE);
	}
	return reply_text(conn, td, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* "application/json" optionally followed by parameters (";charset=utf-8"). */
static bool json_content_type(const char *ct)
{
	static const char want[] = "application/json";
	if (!ct || strncasecmp(ct, want, sizeof(want) - 1) != 0)
		return false;
	ct += sizeof(want) - 1;
	return *ct == '\0' || *ct == ';' || *ct == ' ';
}

static void log_admission(struct wh_server *s, const struct wh_review_info *in, enum wh_route route,
			  int status, double secs)
{
	const char *labels[3] = {norm_kind(in->kind), norm_op(in->operation),
				 in->allowed ? "true" : "false"};
	const char *route_label[1] = {route == WH_ROUTE_MUTATE ? "mutate" : "validate"};

	metrics_inc(metrics_series(s->admissions, labels));
	metrics_observe(metrics_series(s->duration, route_label), secs);
	if (!log_enabled(in->allowed ? LOGL_INFO : LOGL_WARN))
		return;
	log_emit(in->allowed ? LOGL_INFO : LOGL_WARN, "admission",
		 in->allowed ? (in->patched ? "pod injected" : "allowed") : "denied",
		 "{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:b, s:i, s:I, s:s*}", "uid", in->uid,
		 "route", route_label[0], "kind", in->kind, "operation", in->operation, "namespace",
		 in->ns, "name", in->name, "allowed", in->allowed, "reason",
		 in->reason ? in->reason : "", "patched", in->patched, "status", status,
		 "duration_us", (json_int_t)(secs * 1e6), "detail",
		 in->message[0] ? in->message : NULL);
}

/* A JSON {"error": msg} answer on /v1/certify, counted under reason. */
static enum MHD_Result certify_error(struct tls_daemon *td, struct MHD_Connection *conn,
				     unsigned status, const char *reason, const char *msg)
{
	json_t *o = json_pack("{s:s}", "error", msg);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	wh_certify_count_failure(td->srv->certify, reason);
	if (!body)
		return MHD_NO;
	return reply(conn, td, status, "application/json", body, strlen(body),
		     MHD_RESPMEM_MUST_FREE);
}

/* The client's address as text ("" when unknown). */
static void peer_of(struct MHD_Connection *conn, char *out, size_t outlen)
{
	const union MHD_ConnectionInfo *ai =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	out[0] = '\0';
	if (!ai || !ai->client_addr)
		return;
	if (ai->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ai->client_addr)->sin_addr, out,
			  (socklen_t)outlen);
	else if (ai->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ai->client_addr)->sin6_addr, out,
			  (socklen_t)outlen);
}

static enum MHD_Result finish_certify(struct tls_daemon *td, struct MHD_Connection *conn,
				      struct request *rq)
{
	struct wh_certify_request cr;
	char peer[INET6_ADDRSTRLEN];
	char *resp = NULL;
	int status;

	peer_of(conn, peer, sizeof(peer));
	memset(&cr, 0, sizeof(cr));
	cr.authorization =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	cr.peer = peer;
	cr.body = rq->body ? rq->body : "";
	cr.len = rq->len;
	cr.now_mono_ms = mono_ms();
	cr.now = time(NULL);
	status = wh_certify_handle(td->srv->certify, &cr, &resp);
	if (!resp)
		return reply_text(conn, td, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	return reply(conn, td, (unsigned)status, "application/json", resp, strlen(resp),
		     MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result finish_review(struct tls_daemon *td, struct MHD_Connection *conn,
				     struct request *rq, const char *url)
{
	struct wh_server *s = td->srv;
	struct wh_review_info info;
	struct timespec end;
	char *resp = NULL;
	size_t resp_len = 0;
	bool is_json = false;
	int status;

	status = wh_review_handle(s->cfg, rq->route, rq->body ? rq->body : "", rq->len, &resp,
				  &resp_len, &is_json, &info);
	clock_gettime(CLOCK_MONOTONIC, &end);
	if (info.reviewed) {
		double secs = (double)(end.tv_sec - rq->start.tv_sec) +
			      (double)(end.tv_nsec - rq->start.tv_nsec) / 1e9;
		log_admission(s, &info, rq->route, status, secs);
		return reply(conn, td, (unsigned)status, "application/json", resp, resp_len,
			     MHD_RESPMEM_MUST_FREE);
	}
	if (!resp) {
		log_error("internal_error", "out of memory answering a review", "{s:s}", "path",
			  url);
		return reply_text(conn, td, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	}
	enum MHD_Result r = refuse(td, conn, (unsigned)status, url, resp);
	free(resp);
	return r;
}

/* *con_cls of a GET between its first and second call. */
static char get_marker;

/* The connection's deadline entry (its socket context), or NULL. */
static struct wh_conn_deadline *conn_deadline(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* The request on conn has arrived completely: its deadline no longer applies. */
static void request_received(struct wh_server *s, struct MHD_Connection *conn)
{
	wh_deadlines_received(s->deadlines, conn_deadline(conn));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct tls_daemon *td = cls;
	struct wh_server *s = td->srv;
	struct request *rq = *con_cls;
	size_t max = s->cfg->max_body_bytes;
	char msg[160];

	(void)version;
	/* A response queued in the first call closes the connection (libmicrohttpd), so
	 * GETs answer in the second call and keep their connection. */
	if (*con_cls == &get_marker) {
		request_received(s, conn);
		return serve_get(td, conn, url);
	}
	if (!rq) {
		enum wh_route route = WH_ROUTE_VALIDATE;
		const char *ct, *cl;
		bool certify = false;

		/*
		 * Both framings (RFC 9112 6.1): libmicrohttpd reads the chunked body and keeps
		 * the connection for a next request, so a proxy in front that trusted
		 * Content-Length would see a different request boundary (smuggling). Refused
		 * here; a response queued in this first call closes the connection.
		 */
		if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_CONTENT_LENGTH)) {
			static const char both[] =
			    "request has both Content-Length and Transfer-Encoding: send one";
			if (s->certify && !strcmp(url, WH_CERTIFY_PATH))
				return certify_error(td, conn, MHD_HTTP_BAD_REQUEST, "bad_request",
						     both);
			return refuse(td, conn, MHD_HTTP_BAD_REQUEST, url, both);
		}
		if (s->certify && !strcmp(url, WH_CERTIFY_PATH)) {
			/* Its own body cap and JSON errors; any content type (the body is
			 * parsed as JSON either way). */
			if (strcmp(method, "POST") != 0)
				return certify_error(td, conn, MHD_HTTP_METHOD_NOT_ALLOWED,
						     "bad_request", "use POST");
			cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_CONTENT_LENGTH);
			if (cl && strtoull(cl, NULL, 10) > WH_CERTIFY_MAX_BODY_BYTES)
				return certify_error(
				    td, conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
				    "request body is over the limit of 65536 bytes");
			certify = true;
			goto start;
		}
		if (!strcmp(url, "/validate"))
			route = WH_ROUTE_VALIDATE;
		else if (!strcmp(url, "/mutate"))
			route = WH_ROUTE_MUTATE;
		else if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
			*con_cls = &get_marker;
			return MHD_YES;
		} else if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz") ||
			   !strcmp(url, "/metrics"))
			return reply_text(conn, td, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n");
		else
			return reply_text(conn, td, MHD_HTTP_NOT_FOUND, "not found\n");
		if (strcmp(method, "POST") != 0)
			return refuse(td, conn, MHD_HTTP_METHOD_NOT_ALLOWED, url,
				      "method not allowed: admission reviews are POSTed");
		ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!json_content_type(ct)) {
			snprintf(msg, sizeof(msg),
				 "unsupported content type \"%.60s\": send application/json",
				 ct ? ct : "");
			return refuse(td, conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, url, msg);
		}
		cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > max) {
			snprintf(msg, sizeof(msg),
				 "request body of %.20s bytes is over the limit of "
				 "%zu bytes",
				 cl, max);
			return refuse(td, conn, MHD_HTTP_CONTENT_TOO_LARGE, url, msg);
		}
	start:
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->td = td;
		rq->route = route;
		rq->certify = certify;
		clock_gettime(CLOCK_MONOTONIC, &rq->start);
		atomic_fetch_add(&td->inflight, 1);
		*con_cls = rq;
		return MHD_YES;
	}
	if (rq->certify)
		max = WH_CERTIFY_MAX_BODY_BYTES;
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (rq->too_big) {
			/* Drop what follows so the 413 can be sent; hang up on a flood. */
			rq->discarded += n;
			return rq->discarded > max * DISCARD_FACTOR ? MHD_NO : MHD_YES;
		}
		if (rq->len + n > max) {
			/* Chunked or lying Content-Length: stop buffering; 413 at the end. */
			rq->too_big = true;
			free(rq->body);
			rq->body = NULL;
			rq->discarded = rq->len + n;
			rq->len = rq->cap = 0;
			return MHD_YES;
		}
		if (rq->len + n + 1 > rq->cap) {
			size_t cap = rq->cap ? rq->cap : 16384;
			while (cap < rq->len + n + 1)
				cap *= 2;
			if (cap > max + 1)
				cap = max + 1;
			char *p = realloc(rq->body, cap);
			if (!p)
				return MHD_NO;
			rq->body = p;
			rq->cap = cap;
		}
		memcpy(rq->body + rq->len, upload_data, n);
		rq->len += n;
		rq->body[rq->len] = '\0';
		return MHD_YES;
	}
	/* The last call: headers and body are in, stop the whole-request clock. */
	request_received(s, conn);
	if (rq->too_big) {
		snprintf(msg, sizeof(msg), "request body is over the limit of %zu bytes", max);
		if (rq->certify)
			return certify_error(td, conn, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
					     msg);
		return refuse(td, conn, MHD_HTTP_CONTENT_TOO_LARGE, url, msg);
	}
	if (rq->certify)
		return finish_certify(td, conn, rq);
	return finish_review(td, conn, rq, url);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct tls_daemon *td = cls;
	struct request *rq = *con_cls;

	(void)toe;
	/* The next request on a keep-alive connection gets a fresh deadline; this also
	 * bounds how long the connection may sit idle between requests. */
	wh_deadlines_rearm(td->srv->deadlines, conn_deadline(conn), mono_ms());
	if (*con_cls == &get_marker)
		*con_cls = NULL;
	if (!rq || rq == (void *)&get_marker)
		return;
	atomic_fetch_sub(&rq->td->inflight, 1);
	free(rq->body);
	free(rq);
	*con_cls = NULL;
}

/* libmicrohttpd's own diagnostics (TLS handshake failures, resets): noise from scanners and
 * probes most of the time, so debug level and inside our JSON lines. */
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	(void)cls;
	if (!log_enabled(LOGL_DEBUG))
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	log_emit(LOGL_DEBUG, "http_error", buf, NULL);
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct tls_daemon *td = cls;
	struct wh_server *s = td->srv;

	(void)addr;
	(void)addrlen;
	/*
	 * Only the daemon that accepts counts: after a rotation the retired one still holds
	 * connections that are finishing their last request (Connection: close), and counting
	 * them would refuse new connections, each one a failed admission call, at the very
	 * moment the certificate changes. For that short drain the total may reach twice the
	 * limit; the retired daemon takes no new connections.
	 */
	if (atomic_load(&td->open) < s->cfg->max_connections)
		return MHD_YES;
	metrics_inc(s->s_refused_conns);
	if (log_budget(s))
		log_warn("connection_refused", "limits.maxConnections reached; connection closed",
			 "{s:i}", "max_connections", (int)s->cfg->max_connections);
	return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct tls_daemon *td = cls;
	struct wh_server *s = td->srv;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fdi, *ai;
		char peer[INET6_ADDRSTRLEN] = "";

		atomic_fetch_add(&td->open, 1);
		fdi = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		ai = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		if (ai && ai->client_addr) {
			const struct sockaddr *sa = ai->client_addr;
			if (sa->sa_family == AF_INET)
				inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
					  peer, sizeof(peer));
			else if (sa->sa_family == AF_INET6)
				inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
					  peer, sizeof(peer));
		}
		/* The clock starts at accept, so it covers the TLS handshake too. */
		*socket_ctx =
		    fdi ? wh_deadlines_add(s->deadlines, (int)fdi->connect_fd, peer, mono_ms())
			: NULL;
	} else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		/* Before libmicrohttpd closes the socket: the reaper never sees a reused fd. */
		wh_deadlines_remove(s->deadlines, *socket_ctx);
		*socket_ctx = NULL;
		atomic_fetch_sub(&td->open, 1);
	}
}

/* A connection missed its whole-request deadline and was shut down (registry mutex held). */
static void on_request_timeout(void *arg, const char *peer, uint64_t elapsed_ms)
{
	struct wh_server *s = arg;

	metrics_inc(s->s_request_timeouts);
	if (log_budget(s))
		log_warn("request_timeout",
			 "request not received within limits.connectionTimeoutSeconds; "
			 "connection closed",
			 "{s:s, s:I, s:i}", "peer", peer, "elapsed_ms", (json_int_t)elapsed_ms,
			 "timeout_s", (int)s->cfg->connection_timeout_s);
}

/* ---- daemons ----------------------------------------------------------------------------- */

static void tls_daemon_free(struct tls_daemon *td)
{
	if (!td)
		return;
	if (td->d) {
		/* Quiesce first so MHD leaves our shared listening socket open. */
		if (!atomic_load(&td->draining))
			MHD_quiesce_daemon(td->d);
		MHD_stop_daemon(td->d);
	}
	free(td->cert_pem);
	free_secret(td->key_pem, td->key_len);
	free(td);
}

/*
 * A daemon on the shared socket with this PEM pair; takes ownership of both buffers.
 * NULL (with err) when libmicrohttpd/GnuTLS refuse the pair.
 */
static struct tls_daemon *tls_daemon_start(struct wh_server *s, char *cert_pem, char *key_pem,
					   size_t key_len, char *err, size_t errlen)
{
	struct tls_daemon *td = calloc(1, sizeof(*td));
	unsigned pool;

	if (!td) {
		free(cert_pem);
		free_secret(key_pem, key_len);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	td->srv = s;
	td->cert_pem = cert_pem;
	td->key_pem = key_pem;
	td->key_len = key_len;
	atomic_init(&td->draining, false);
	atomic_init(&td->inflight, 0);
	atomic_init(&td->open, 0);
	/* One worker is not a pool: libmicrohttpd warns if asked for a pool of 1. */
	pool = s->threads > 1 ? s->threads : 0;
	/*
	 * poll(), not epoll: with epoll, MHD_quiesce_daemon() (rotation, drain) and a busy
	 * worker both remove the listening socket from the worker's epoll set without a lock,
	 * and the loser's ENOENT is an MHD_PANIC that aborts the process (libmicrohttpd
	 * 0.9.75, daemon.c "Failed to remove listen FD from epoll set"). A CI run hit it at
	 * SIGTERM. With poll() quiescing only signals the worker, which then leaves the
	 * socket out of its next poll set. Our connection count is small (maxConnections).
	 */
	td->d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ITC | MHD_USE_POLL |
		MHD_USE_ERROR_LOG,
	    0, on_accept, td, on_request, td, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
	    MHD_OPTION_LISTEN_SOCKET, (MHD_socket)s->listen_fd, MHD_OPTION_HTTPS_MEM_CERT,
	    td->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, td->key_pem, MHD_OPTION_HTTPS_PRIORITIES,
	    TLS_PRIORITIES, MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)s->cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)s->cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, td,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, td, MHD_OPTION_END);
	if (!td->d) {
		snprintf(err, errlen,
			 "the TLS library refused the certificate or key, or the "
			 "server could not start");
		tls_daemon_free(td);
		return NULL;
	}
	return td;
}

/* Read and check the pair; on success a started daemon. */
static struct tls_daemon *load_and_start(struct wh_server *s, time_t *not_after, char *err,
					 size_t errlen)
{
	char *cert = NULL, *key = NULL;
	size_t cert_len = 0, key_len = 0;
	char sub[512];
	int rc;

	rc = read_file(s->cert_path, &cert, &cert_len, err, errlen);
	if (rc == 0)
		rc = read_file(s->key_path, &key, &key_len, err, errlen);
	if (rc == 0) {
		rc = check_pair(cert, cert_len, key, key_len, not_after, sub, sizeof(sub));
		if (rc)
			snprintf(err, errlen, "%s, %s: %s", s->cert_path, s->key_path, sub);
	}
	if (rc) {
		free(cert);
		free_secret(key, key_len);
		return NULL;
	}
	return tls_daemon_start(s, cert, key, key_len, err, errlen);
}

static int open_listener(const char *listen_addr, int *fd_out, unsigned *port_out, char *err,
			 size_t errlen)
{
	char host[256], port[16];
	const char *colon;
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc;

	if (listen_addr[0] == '[') {
		const char *end = strchr(listen_addr, ']');
		if (!end || end[1] != ':' || (size_t)(end - listen_addr - 1) >= sizeof(host))
			goto bad;
		memcpy(host, listen_addr + 1, (size_t)(end - listen_addr - 1));
		host[end - listen_addr - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(listen_addr, ':');
		if (!colon || (size_t)(colon - listen_addr) >= sizeof(host))
			goto bad;
		memcpy(host, listen_addr, (size_t)(colon - listen_addr));
		host[colon - listen_addr] = '\0';
	}
	if (snprintf(port, sizeof(port), "%s", colon + 1) >= (int)sizeof(port) || !port[0])
		goto bad;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "--listen %s: %s", listen_addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 1024) != 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
		rc = -errno;
		snprintf(err, errlen, "--listen %s: %s", listen_addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return rc;
	}
	freeaddrinfo(res);
	*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						   : ((struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	return 0;
bad:
	snprintf(err, errlen, "--listen \"%s\": expected HOST:PORT, [IPv6]:PORT or :PORT",
		 listen_addr);
	return -EINVAL;
}

static int register_metrics(struct wh_server *s)
{
	static const char *const adm_labels[] = {"kind", "operation", "allowed"};
	static const char *const route_label[] = {"route"};
	static const char *const err_labels[] = {"path", "code"};
	static const char *const result_label[] = {"result"};
	static const char *const ok[] = {"success"}, *const bad[] = {"failure"};

	s->metrics = metrics_registry_new();
	if (!s->metrics)
		return -ENOMEM;
	s->admissions = metrics_counter(s->metrics, "grpcguard_webhook_admissions_total",
					"Admission reviews answered, by object kind, operation "
					"and decision.",
					3, adm_labels);
	s->duration =
	    metrics_histogram(s->metrics, "grpcguard_webhook_admission_duration_seconds",
			      "Time to judge one admission review (body received to "
			      "response queued).",
			      1, route_label, metrics_latency_buckets, METRICS_LATENCY_NBUCKETS);
	s->http_errors = metrics_counter(s->metrics, "grpcguard_webhook_rejected_requests_total",
					 "Requests refused before review (bad JSON 400, method "
					 "405, body too large 413, content type 415; "
					 "path \"/\": connection-limit, request-timeout).",
					 2, err_labels);
	s->reloads = metrics_counter(s->metrics, "grpcguard_webhook_cert_reloads_total",
				     "Serving certificate reloads after the files changed.", 1,
				     result_label);
	s->expiry =
	    metrics_gauge(s->metrics, "grpcguard_webhook_cert_expiry_timestamp_seconds",
			  "notAfter of the serving certificate in use (Unix time).", 0, NULL);
	if (!s->admissions || !s->duration || !s->http_errors || !s->reloads || !s->expiry)
		return -ENOMEM;
	s->s_reload_ok = metrics_series(s->reloads, ok);
	s->s_reload_fail = metrics_series(s->reloads, bad);
	s->s_expiry = metrics_series(s->expiry, NULL);
	{
		static const char *const conn_lbl[] = {"/", "connection-limit"};
		static const char *const timeout_lbl[] = {"/", "request-timeout"};
		s->s_refused_conns = metrics_series(s->http_errors, conn_lbl);
		s->s_request_timeouts = metrics_series(s->http_errors, timeout_lbl);
	}
	return 0;
}

static void server_free(struct wh_server *s)
{
	if (!s)
		return;
	tls_daemon_free(s->cur);
	for (size_t i = 0; i < MAX_RETIRED; i++)
		tls_daemon_free(s->retired[i]);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	/* After the daemons: their CLOSED notifications have removed every entry. */
	wh_deadlines_free(s->deadlines);
	wh_certify_free(s->certify);
	metrics_registry_free(s->metrics);
	free(s->cert_path);
	free(s->key_path);
	free(s);
}

int wh_server_start(const struct wh_server_options *o, struct wh_server **out, char *err,
		    size_t errlen)
{
	struct wh_server *s = calloc(1, sizeof(*s));
	time_t not_after = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->listen_fd = -1;
	s->cfg = o->config;
	s->threads = o->threads ? o->threads : 1;
	s->cert_path = strdup(o->cert_path);
	s->key_path = strdup(o->key_path);
	atomic_init(&s->ready, false);
	atomic_init(&s->log_window_s, 0);
	atomic_init(&s->log_count, 0);
	s->deadlines = wh_deadlines_new((uint64_t)s->cfg->connection_timeout_s * 1000);
	if (!s->cert_path || !s->key_path || !s->deadlines || register_metrics(s) != 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (s->cfg->identity_enabled) {
		s->certify = wh_certify_new(s->cfg, s->metrics, err, errlen);
		if (!s->certify) {
			rc = -EINVAL;
			goto fail;
		}
		/* Keep a thread for admission while TokenReviews wait on the API server. */
		wh_certify_set_max_reviews(s->certify, s->threads > 1 ? s->threads - 1 : 1);
	}
	/* Certificates first: a missing Secret is the likelier mistake and the clearer error. */
	sig_of(s->cert_path, &s->cert_sig);
	sig_of(s->key_path, &s->key_sig);
	{
		char *probe_buf = NULL;
		size_t probe_len = 0;
		rc = read_file(s->cert_path, &probe_buf, &probe_len, err, errlen);
		free(probe_buf);
		if (rc == 0) {
			rc = read_file(s->key_path, &probe_buf, &probe_len, err, errlen);
			free_secret(probe_buf, probe_len);
		}
		if (rc)
			goto fail;
	}
	rc = open_listener(o->listen, &s->listen_fd, &s->port, err, errlen);
	if (rc)
		goto fail;
	s->cur = load_and_start(s, &not_after, err, errlen);
	if (!s->cur) {
		rc = -EINVAL;
		goto fail;
	}
	metrics_set(s->s_expiry, (double)not_after);
	s->next_poll_mono_ms = mono_ms() + CERT_POLL_MS;
	atomic_store(&s->ready, true);
	*out = s;
	return 0;
fail:
	server_free(s);
	return rc;
}

void wh_server_recheck(struct wh_server *s)
{
	memset(&s->cert_sig, 0, sizeof(s->cert_sig));
	memset(&s->key_sig, 0, sizeof(s->key_sig));
	s->cert_sig.ino = (ino_t)-1; /* matches no real file */
	s->next_poll_mono_ms = 0;
}

unsigned wh_server_port(const struct wh_server *s)
{
	return s->port;
}

/* Connections a daemon holds open (0 when the library cannot say). */
static unsigned open_connections(struct tls_daemon *td)
{
	const union MHD_DaemonInfo *info =
	    MHD_get_daemon_info(td->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return info ? info->num_connections : 0;
}

/* Stop retired daemons whose connections are gone or whose drain time is up. */
static void reap(struct wh_server *s, uint64_t now, bool force)
{
	for (size_t i = 0; i < MAX_RETIRED; i++) {
		struct tls_daemon *td = s->retired[i];
		const union MHD_DaemonInfo *info;

		if (!td)
			continue;
		info = MHD_get_daemon_info(td->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (force || now >= td->drain_deadline_mono_ms || !info ||
		    info->num_connections == 0) {
			tls_daemon_free(td);
			s->retired[i] = NULL;
		}
	}
}

static void rotate(struct wh_server *s, uint64_t now)
{
	char err[1024];
	time_t not_after = 0;
	struct tls_daemon *fresh, *old;
	size_t slot;

	fresh = load_and_start(s, &not_after, err, sizeof(err));
	if (!fresh) {
		metrics_inc(s->s_reload_fail);
		log_error("cert_reload_failed",
			  "new certificate files rejected; still serving "
			  "the previous certificate",
			  "{s:s, s:s, s:s}", "cert", s->cert_path, "key", s->key_path, "error",
			  err);
		return;
	}
	/* Both daemons accept on the socket for a moment; then the old one stops accepting. */
	old = s->cur;
	s->cur = fresh;
	for (slot = 0; slot < MAX_RETIRED && s->retired[slot]; slot++)
		;
	if (slot == MAX_RETIRED) {
		reap(s, now, true);
		slot = 0;
	}
	atomic_store(&old->draining, true);
	MHD_quiesce_daemon(old->d);
	old->drain_deadline_mono_ms = now + (uint64_t)s->cfg->connection_timeout_s * 1000 + 2000;
	s->retired[slot] = old;
	metrics_inc(s->s_reload_ok);
	metrics_set(s->s_expiry, (double)not_after);
	log_info("cert_reloaded", "serving the new certificate", "{s:s, s:I}", "cert", s->cert_path,
		 "not_after", (json_int_t)not_after);
}

void wh_server_tick(struct wh_server *s, uint64_t now_mono_ms)
{
	struct file_sig cs, ks;

	wh_deadlines_expire(s->deadlines, now_mono_ms, on_request_timeout, s);
	reap(s, now_mono_ms, false);
	if (now_mono_ms < s->next_poll_mono_ms)
		return;
	s->next_poll_mono_ms = now_mono_ms + CERT_POLL_MS;
	sig_of(s->cert_path, &cs);
	sig_of(s->key_path, &ks);
	if (sig_equal(&cs, &s->cert_sig) && sig_equal(&ks, &s->key_sig))
		return;
	/* Remember what we saw even if it is garbage, so one bad write logs once. */
	s->cert_sig = cs;
	s->key_sig = ks;
	rotate(s, now_mono_ms);
}

void wh_server_stop(struct wh_server *s, unsigned drain_ms)
{
	uint64_t deadline;

	if (!s)
		return;
	atomic_store(&s->ready, false);
	if (s->cur) {
		atomic_store(&s->cur->draining, true);
		MHD_quiesce_daemon(s->cur->d);
	}
	/*
	 * Every daemon is quiesced now: stop listening, so new connections are refused at
	 * once instead of waiting in the backlog. shutdown(), not close(): a worker that woke
	 * for the socket just before the quiesce may still call accept() on it, and a closed
	 * descriptor's number could be reused by then. server_free() closes it.
	 */
	if (s->listen_fd >= 0)
		(void)shutdown(s->listen_fd, SHUT_RDWR);
	deadline = mono_ms() + drain_ms;
	for (;;) {
		/*
		 * Wait for every open connection, not only for the requests the handler has
		 * seen: a request may be on the wire of an accepted (or kept-alive) connection
		 * and not parsed yet. Quiesced daemons answer with Connection: close, so busy
		 * clients go away after their next answer; idle ones hold us until the deadline.
		 */
		unsigned busy =
		    s->cur ? atomic_load(&s->cur->inflight) + open_connections(s->cur) : 0;
		for (size_t i = 0; i < MAX_RETIRED; i++)
			busy += s->retired[i] ? atomic_load(&s->retired[i]->inflight) +
						    open_connections(s->retired[i])
					      : 0;
		if (busy == 0 || mono_ms() >= deadline)
			break;
		/* A trickling request must not hold the drain for all of drain_ms. */
		wh_deadlines_expire(s->deadlines, mono_ms(), on_request_timeout, s);
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	server_free(s);
}
