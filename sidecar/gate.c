/*
 * The gate (gate.h): the canonical request form and the protocol gate, in the order a
 * request meets them. Read top to bottom:
 *   1. the form of a gRPC path, method and scheme (pure);
 *   2. the stream door: strict form when an authorization entry applies to this pod;
 *   3. the connection door: non-HTTP/2 bytes pass through only when `passthrough` allows;
 *   4. what /policy shows about both.
 *
 * Why refuse rather than normalise: servers disagree on how to read a bent path. grpc-go
 * strips one leading '/' whatever the scheme and splits at the last '/'; net/http,
 * connect-go and grpc-gateway drop the query and decode %XX; nghttp2 checks the leading
 * '/' only for http/https schemes. Any normalisation we chose would be wrong for some app
 * behind us. A real gRPC client only ever sends "/<service>/<method>", so refusing every
 * other form costs well-behaved clients nothing and leaves nothing to interpret.
 */
#include "sidecar/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sidecar/proxy.h"

/* ---- 1. the canonical form (pure) ---------------------------------------------------- */

const char *sc_gate_reason_name(enum sc_gate_reason r)
{
	switch (r) {
	case SC_GATE_OK:
		return "ok";
	case SC_GATE_PATH:
		return "path";
	case SC_GATE_METHOD:
		return "method";
	case SC_GATE_SCHEME:
		return "scheme";
	case SC_GATE_AUTHORITY:
		return "authority";
	case SC_GATE_NREASONS:
		break;
	}
	return "unknown";
}

/* The characters of protobuf full names ("pkg.Service") and identifiers, and '-'. */
static bool name_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* A non-empty run of name characters that is not a dot segment. */
static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char((unsigned char)s[i]))
			return false;
	return true;
}

bool sc_gate_path_canonical(const char *p, size_t len)
{
	const char *slash;

	if (!p || len < 4 || p[0] != '/')
		return false;
	/* Exactly one more '/': name_ok() refuses '/' inside either part. */
	slash = memchr(p + 1, '/', len - 1);
	if (!slash)
		return false;
	return name_ok(p + 1, (size_t)(slash - p - 1)) &&
	       name_ok(slash + 1, len - (size_t)(slash - p) - 1);
}

static bool is(const struct policy_header *h, const char *name, size_t len)
{
	return h->name_len == len && memcmp(h->name, name, len) == 0;
}

static bool value_is(const struct policy_header *h, const char *v, size_t len)
{
	return h->value_len == len && (len == 0 || memcmp(h->value, v, len) == 0);
}

enum sc_gate_reason sc_gate_check_request(const struct policy_header *h, size_t n)
{
	const struct policy_header *path = NULL, *method = NULL, *scheme = NULL, *auth = NULL;
	bool twice = false, host_differs = false;

	for (size_t i = 0; i < n; i++) {
		const struct policy_header *f = &h[i];
		const struct policy_header **slot = NULL;
		if (f->name_len == 0 || f->name[0] != ':')
			continue;
		if (is(f, ":authority", 10))
			auth = f;
		if (is(f, ":path", 5))
			slot = &path;
		else if (is(f, ":method", 7))
			slot = &method;
		else if (is(f, ":scheme", 7))
			slot = &scheme;
		if (!slot)
			continue;
		twice |= *slot != NULL;
		*slot = f;
	}
	/* nghttp2 already refuses a repeated pseudo-header; refuse it here too, so this
	 * check does not depend on that. */
	if (!path || twice || !sc_gate_path_canonical(path->value, path->value_len))
		return SC_GATE_PATH;
	if (!method || !value_is(method, "POST", 4))
		return SC_GATE_METHOD;
	if (!scheme || !(value_is(scheme, "http", 4) || value_is(scheme, "https", 5)))
		return SC_GATE_SCHEME;
	/*
	 * One authority: the policy reads `host` and `:authority` as one (eval.c), the app
	 * reads :authority first; a Host field (or several) naming something else would let
	 * the two disagree. RFC 9113 8.3.1: such a request may be treated as malformed.
	 */
	for (size_t i = 0; auth && i < n; i++)
		if (is(&h[i], "host", 4) && !value_is(&h[i], auth->value, auth->value_len))
			host_differs = true;
	if (host_differs)
		return SC_GATE_AUTHORITY;
	return SC_GATE_OK;
}

/* ---- rate-limited warnings (the worker's budget, shared with h2conn.c's) -------------- */

static bool warn_allowed(struct sc_worker *w)
{
	uint64_t now = uv_now(&w->loop);

	if (now - w->warn_window_ms >= 1000) {
		w->warn_window_ms = now;
		w->warn_count = 0;
	}
	return ++w->warn_count <= 10;
}

static void peer_str(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	out[0] = '\0';
	if (ss->ss_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)ss, out, outlen);
	else if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ss, out, outlen);
}

/* At most 64 bytes of attacker-chosen text for a log line: printable ASCII, else '?'. */
static void printable(const char *s, size_t len, char *out, size_t outlen)
{
	size_t n = len < outlen - 1 ? len : outlen - 1;

	for (size_t i = 0; i < n; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	out[n] = '\0';
}

/* ---- 2. the stream door -------------------------------------------------------------- */

static struct metrics_series *refused_series(enum sc_gate_reason r)
{
	switch (r) {
	case SC_GATE_PATH:
		return sc_stats.refused_path;
	case SC_GATE_METHOD:
		return sc_stats.refused_method;
	case SC_GATE_SCHEME:
		return sc_stats.refused_scheme;
	case SC_GATE_AUTHORITY:
		return sc_stats.refused_authority;
	default:
		return NULL;
	}
}

static const char *refused_message(enum sc_gate_reason r)
{
	switch (r) {
	case SC_GATE_METHOD:
		return "grpcguard: request refused: :method must be POST (gRPC)";
	case SC_GATE_SCHEME:
		return "grpcguard: request refused: :scheme must be http or https";
	case SC_GATE_AUTHORITY:
		return "grpcguard: request refused: a host header must equal :authority "
		       "(send one authority, or none in host)";
	default:
		return "grpcguard: request refused: :path must be /<service>/<method> "
		       "(letters, digits, '.', '_', '-'; no query, escapes or extra segments)";
	}
}

static bool mtls_strict(const struct sc_snap *snap);

bool sc_gate_admit_stream(struct sc_stream *s, const struct policy_header *h, size_t n)
{
	enum sc_gate_reason r;

	/*
	 * A plaintext connection admitted before a reload to STRICT (the connection door
	 * judged it then): from now on each of its requests is refused, as the connection
	 * would be if it were opened now. Counted with the plaintext connections refused.
	 */
	if (!s->c->mtls && mtls_strict(s->snap)) {
		metrics_inc(sc_stats.conns_refused_plaintext);
		log_debug("request_refused", "plaintext request refused: mtls mode is STRICT",
			  "{s:s}", "reason", "plaintext");
		s->counted = true;
		sc_stream_reply(s, 16,
				"grpcguard: plaintext refused: mtls mode is STRICT (only sidecars "
				"with a workload certificate may connect)");
		return false;
	}

	/* Faults-only pods and pods no authorization entry selects: any form, as before. */
	if (!policy_authz_applies(s->snap->policy, s->snap->labels))
		return true;
	r = sc_gate_check_request(h, n);
	if (r == SC_GATE_OK)
		return true;
	metrics_inc(refused_series(r));
	if (log_enabled(LOGL_DEBUG)) {
		char peer[64], path[65] = "";
		nghttp2_vec pv = {NULL, 0};
		if (s->path)
			pv = nghttp2_rcbuf_get_buf(s->path);
		printable((const char *)pv.base, pv.len, path, sizeof(path));
		peer_str(&s->c->peer, peer, sizeof(peer));
		log_debug("request_refused", "request not in gRPC form, refused", "{s:s, s:s, s:s}",
			  "reason", sc_gate_reason_name(r), "path", path, "peer", peer);
	}
	/* Counted here, not in grpcguard_requests_total: its labels would come from an
	 * arbitrary :path. */
	s->counted = true;
	sc_stream_reply(s, 12, refused_message(r));
	return false;
}

/* ---- 3. the connection door ---------------------------------------------------------- */

bool sc_gate_looks_like_http1(const uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len && i < 20 && buf[i] >= 'A' && buf[i] <= 'Z')
		i++;
	if (i == len)
		return len > 0; /* all uppercase so far: a request line may follow */
	return i > 0 && buf[i] == ' ';
}

#define REFUSAL_BODY                                                                               \
	"grpcguard: this port accepts gRPC over HTTP/2 only; HTTP/1.1 and h2c upgrade are "        \
	"refused (policy passthrough: deny)\n"
static const char http403[] = "HTTP/1.1 403 Forbidden\r\n"
			      "Content-Type: text/plain\r\n"
			      "Content-Length: 116\r\n"
			      "Connection: close\r\n"
			      "\r\n" REFUSAL_BODY;
_Static_assert(sizeof(REFUSAL_BODY) - 1 == 116, "Content-Length of the 403 body");

#define LINGER_MAX_BYTES (64 * 1024)

static void linger_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct sc_conn *c = h->data;
	(void)hint;
	*b = uv_buf_init((char *)c->pipe_du->buf, sizeof(c->pipe_du->buf));
}

/* Drop what the client still sends; close at its EOF or after LINGER_MAX_BYTES. */
static void linger_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *b)
{
	struct sc_conn *c = h->data;
	(void)b;

	if (c->mode != CM_REFUSED || nread == 0)
		return;
	if (nread < 0) {
		sc_conn_close(c);
		return;
	}
	c->pipe_du->len += (size_t)nread;
	if (c->pipe_du->len > LINGER_MAX_BYTES)
		sc_conn_close(c);
}

static void refuse_shut_cb(uv_shutdown_t *req, int status)
{
	struct sc_conn *c = req->data;

	if (status < 0 && status != UV_ECANCELED && c->mode == CM_REFUSED)
		sc_conn_close(c);
}

#define STRICT_BODY                                                                                \
	"grpcguard: this port accepts mutual TLS between grpcguard sidecars only "                 \
	"(policy mtls.mode: STRICT)\n"
static const char http403_strict[] = "HTTP/1.1 403 Forbidden\r\n"
				     "Content-Type: text/plain\r\n"
				     "Content-Length: 99\r\n"
				     "Connection: close\r\n"
				     "\r\n" STRICT_BODY;
_Static_assert(sizeof(STRICT_BODY) - 1 == 99, "Content-Length of the STRICT 403 body");

static void refuse_write_cb(uv_write_t *req, int status)
{
	struct sc_conn *c = req->data;

	if (status == UV_ECANCELED || c->mode != CM_REFUSED)
		return;
	c->pipe_du->sreq.data = c;
	if (status < 0 ||
	    uv_shutdown(&c->pipe_du->sreq, (uv_stream_t *)&c->tcp, refuse_shut_cb) < 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, linger_alloc, linger_read) < 0)
		sc_conn_close(c);
}

static void refuse(struct sc_conn *c, bool http1, const char *msg, size_t len);

bool sc_gate_admit_passthrough(struct sc_conn *c)
{
	struct sc_worker *w = c->w;
	struct sc_snap *snap = sc_state_current();
	bool allow, http1;

	allow = snap && !snap->no_policy &&
		policy_passthrough_mode(snap->policy, snap->labels) == POLICY_PASSTHROUGH_ALLOW;
	/* A plaintext pipe once STRICT is in force: the door would refuse it now. */
	if (allow && !c->mtls && mtls_strict(snap))
		allow = false;
	c->pass_gen = snap ? snap->generation : 0;
	sc_snap_unref(snap);
	if (allow)
		return true;
	http1 = sc_gate_looks_like_http1(c->peek, c->npeek);
	metrics_inc(sc_stats.conns_refused_not_http2);
	if (warn_allowed(w)) {
		char peer[64];
		peer_str(&c->peer, peer, sizeof(peer));
		log_warn(
		    "connection_refused",
		    "connection is not HTTP/2 prior knowledge and passthrough is deny, refused",
		    "{s:s, s:s, s:b}", "reason", "not_http2", "peer", peer, "http1", http1);
	}
	refuse(c, http1, http403, sizeof(http403) - 1);
	return false;
}

/*
 * Whether this snapshot's policy asks for STRICT mTLS on this pod (`mtls: {mode: STRICT}`,
 * Istio's PeerAuthentication). A snapshot without a usable policy is not STRICT: it
 * refuses every RPC anyway (fail closed, reload.h).
 */
static bool mtls_strict(const struct sc_snap *snap)
{
	return !snap->no_policy &&
	       policy_mtls_mode(snap->policy, snap->labels) == POLICY_MTLS_STRICT;
}

bool sc_gate_mtls_strict(void)
{
	struct sc_snap *snap = sc_state_current();
	bool strict = snap && mtls_strict(snap);
	sc_snap_unref(snap);
	return strict;
}

bool sc_gate_admit_plaintext(struct sc_conn *c)
{
	struct sc_worker *w = c->w;
	bool http1;

	if (!sc_gate_mtls_strict())
		return true;
	http1 = sc_gate_looks_like_http1(c->peek, c->npeek);
	metrics_inc(sc_stats.conns_refused_plaintext);
	if (warn_allowed(w)) {
		char peer[64];
		peer_str(&c->peer, peer, sizeof(peer));
		log_warn("connection_refused",
			 "plaintext connection refused: mtls mode is STRICT (only sidecars with a "
			 "workload certificate may connect)",
			 "{s:s, s:s, s:b}", "reason", "plaintext", "peer", peer, "http1", http1);
	}
	refuse(c, http1, http403_strict, sizeof(http403_strict) - 1);
	return false;
}

/*
 * Refuse c: HTTP/1.x gets the 403 in msg (static) and a lingering close, anything else
 * is closed at once.
 */
static void refuse(struct sc_conn *c, bool http1, const char *msg, size_t len)
{
	struct sc_worker *w = c->w;
	uv_buf_t b;

	c->mode = CM_REFUSED;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->last_active_ms = uv_now(&w->loop);
	if (!http1 || w->test_write || !(c->pipe_du = calloc(1, sizeof(*c->pipe_du)))) {
		sc_conn_close(c);
		return;
	}
	c->pipe_du->req.data = c;
	b = uv_buf_init((char *)(uintptr_t)msg, (unsigned)len);
	if (uv_write(&c->pipe_du->req, (uv_stream_t *)&c->tcp, &b, 1, refuse_write_cb) < 0)
		sc_conn_close(c);
}

/*
 * The door is checked again when the policy changes: a passthrough pipe admitted under a
 * faults-only policy must not keep carrying HTTP/1.1 requests (or an h2c upgrade) to the
 * app once an authorization entry applies. Envoy drains connections of a changed
 * listener for the same reason. No 403 here: the pipe may be mid-request; we close.
 */
void sc_gate_recheck_passthrough(struct sc_conn *c)
{
	struct sc_snap *snap;
	bool allow;

	/* pass_gen 0: a pipe that never met the inbound door (e.g. an outbound relay). */
	if (c->mode != CM_PASS || c->pass_gen == 0 || c->pass_gen == sc_state_generation())
		return;
	snap = sc_state_current();
	allow = snap && !snap->no_policy &&
		policy_passthrough_mode(snap->policy, snap->labels) == POLICY_PASSTHROUGH_ALLOW;
	/* A plaintext pipe once STRICT is in force: the door would refuse it now. */
	if (allow && !c->mtls && mtls_strict(snap))
		allow = false;
	c->pass_gen = snap ? snap->generation : 0;
	sc_snap_unref(snap);
	if (allow)
		return;
	metrics_inc(sc_stats.conns_refused_not_http2);
	if (warn_allowed(c->w)) {
		char peer[64];
		peer_str(&c->peer, peer, sizeof(peer));
		log_warn("connection_refused",
			 "passthrough connection closed: the new policy does not allow passthrough "
			 "(or is mtls STRICT)",
			 "{s:s, s:s}", "reason", "policy_changed", "peer", peer);
	}
	sc_conn_close(c);
}

/* ---- 4. /policy ------------------------------------------------------------------------ */

json_t *sc_gate_json(const struct sc_snap *s)
{
	const struct policy *p = s ? s->policy : NULL;
	const struct policy_labels *l = s ? s->labels : NULL;
	bool failing = !s || s->no_policy;
	enum policy_passthrough m = POLICY_PASSTHROUGH_DENY;
	const char *from = "no valid policy (fail closed)";

	if (!failing) {
		m = policy_passthrough_mode(p, l);
		from =
		    policy_passthrough_given(p) != POLICY_PASSTHROUGH_UNSET ? "policy" : "default";
	}
	return json_pack("{s:s, s:s, s:s}", "passthrough", policy_passthrough_name(m),
			 "passthroughFrom", from, "requestForm",
			 !failing && policy_authz_applies(p, l) ? "strict" : "any");
}
