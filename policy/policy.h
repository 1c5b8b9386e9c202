/*
 * libgrpcguard-policy: parse a grpcguard policy file and evaluate one RPC against it.
 *
 * Pure: bytes in, a result or a diagnostic out. The only I/O is reading the file handed to
 * policy_parse_file(); nothing here logs, sleeps, reads clocks or draws random numbers (the
 * percent draw is injected). A parsed policy is immutable and reference counted, so a
 * reloader can swap it while other threads still evaluate the old one.
 *
 * Format: ../shared/DESIGN.md "Policy file", plus `requestAuthentication` and the
 * request-principal / claim conditions of issue 10; the user reference is docs/policy.md.
 */
#ifndef GRPCGUARD_POLICY_H
#define GRPCGUARD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <jansson.h>

/* Return codes: 0 success, negative failure. */
enum policy_err {
	POLICY_OK = 0,
	POLICY_ERR_IO = -1,	/* the file could not be read (errno text in the diagnostic) */
	POLICY_ERR_SYNTAX = -2, /* not YAML */
	POLICY_ERR_SCHEMA = -3, /* YAML, but not a valid policy (unknown key, bad value...) */
	POLICY_ERR_NOMEM = -4,
	POLICY_ERR_TOOBIG = -5, /* file over POLICY_MAX_FILE_BYTES */
};
const char *policy_strerror(int err);

#define POLICY_MAX_FILE_BYTES (1024 * 1024)

/*
 * A diagnostic a user can act on. `text` is complete and ready to print:
 *   policy.yaml:5:12: faults[0].delay.fixed: "tenseconds" is not a duration (use 250ms, ...)
 * Line and column are 1-based (0 when unknown, e.g. an I/O error).
 */
struct policy_diag {
	unsigned line;
	unsigned column;
	char text[1024];
};

struct policy; /* opaque, immutable once parsed */

/*
 * Parse the policy in `path` / in buf[0..len). `name` is the file name used in diagnostics.
 * On success returns 0 and stores a new policy (refcount 1) in *out.
 * On failure returns a negative policy_err, fills *diag (if not NULL), leaves *out NULL
 * and leaks nothing. An empty file or a document that is only `{}`/null is a valid empty
 * policy (no faults, everything allowed). `apiVersion: grpcguard.io/v1` and `kind: Policy`
 * are optional but checked when present. Unknown and duplicate keys, YAML anchors and
 * aliases, and a second document are errors.
 */
int policy_parse_file(const char *path, struct policy **out, struct policy_diag *diag);
int policy_parse_buffer(const char *name, const char *buf, size_t len, struct policy **out,
			struct policy_diag *diag);

/* An empty policy: no faults, everything allowed. New reference. NULL only on ENOMEM. */
struct policy *policy_new_empty(void);

/* Reference counting (atomic; safe across threads). unref(NULL) is a no-op. */
struct policy *policy_ref(struct policy *p);
void policy_unref(struct policy *p);

/* The policy as JSON (the same shape as the YAML), for the sidecar's /policy. New ref. */
json_t *policy_to_json(const struct policy *p);

size_t policy_fault_count(const struct policy *p);
size_t policy_authz_count(const struct policy *p);

/*
 * What happens to a connection that does not speak HTTP/2 prior knowledge (HTTP/1.1,
 * an h2c upgrade, TLS, anything): the top-level `passthrough: allow|deny`. UNSET when the
 * file does not say; policy_passthrough_mode() then applies the default.
 */
struct policy_labels;
enum policy_passthrough {
	POLICY_PASSTHROUGH_UNSET = 0,
	POLICY_PASSTHROUGH_ALLOW,
	POLICY_PASSTHROUGH_DENY,
};
/* As written in the file (UNSET when absent). */
enum policy_passthrough policy_passthrough_given(const struct policy *p);
/*
 * Whether an authorization entry (ALLOW, DENY or AUDIT) applies to a pod with these
 * labels (no selector, or every matchLabels entry on the pod; labels NULL: only entries
 * without a selector apply). Such a pod is judged strictly: see the sidecar's gate.
 */
bool policy_authz_applies(const struct policy *p, const struct policy_labels *labels);
/* The effective mode: the file's `passthrough` when given, else DENY when an
 * authorization entry applies to this pod, else ALLOW. Never UNSET. */
enum policy_passthrough policy_passthrough_mode(const struct policy *p,
						const struct policy_labels *labels);
const char *policy_passthrough_name(enum policy_passthrough m); /* "allow", "deny", "unset" */

/* ---- pod labels (downward API file: key="value" per line) -------------------- */
struct policy_labels;
/* Parses the downward API format. Returns 0 and a new object, or negative with *diag. */
int policy_labels_parse(const char *buf, size_t len, struct policy_labels **out,
			struct policy_diag *diag);
void policy_labels_free(struct policy_labels *l);
/* Borrowed value or NULL. */
const char *policy_labels_get(const struct policy_labels *l, const char *key);

/* ---- request authentication (issue 10), a read-only view ---------------------- */
struct policy_jwt_header {
	const char *name;   /* lowercase header name, default "authorization" */
	const char *prefix; /* e.g. "Bearer ", may be "" */
};
struct policy_authn {
	const char *issuer;
	const char *const *audiences; /* naudiences entries */
	size_t naudiences;
	const char *jwks_file;	 /* exactly one of jwks_file / jwks_inline is set */
	const char *jwks_inline; /* JWKS JSON text */
	const struct policy_jwt_header *from_headers;
	size_t nfrom_headers;
	bool forward_original_token; /* default true */
};
size_t policy_authn_count(const struct policy *p);
/* Borrowed; valid as long as the policy is referenced. NULL if i is out of range. */
const struct policy_authn *policy_authn_get(const struct policy *p, size_t i);

/* ---- evaluation ---------------------------------------------------------------- */
/*
 * A request header field. The same name may appear several times: evaluation joins the
 * values of one name with "," (with "; " for cookie), in order, before matching, as Envoy
 * does, so `x-a: 1` + `x-a: 2` is matched as "1,2" by when/values/notValues and by a
 * fault's match.headers.
 */
struct policy_header {
	const char *name; /* lowercase, as HTTP/2 requires */
	size_t name_len;
	const char *value;
	size_t value_len;
};

/*
 * Which sidecar evaluates: the server's (inbound: authorization, and the fault entries
 * without match.destinations) or the caller's (outbound: only the fault entries with
 * match.destinations whose hosts match the call's :authority; never authorization).
 */
enum policy_direction { POLICY_INBOUND = 0, POLICY_OUTBOUND = 1 };

struct policy_request {
	enum policy_direction direction; /* zero (inbound) unless set */
	const char *method;		 /* the canonical :path, e.g. "/helloworld.Greeter/SayHello" */
	size_t method_len;
	const struct policy_header *headers;
	size_t nheaders;
	const struct sockaddr *peer;	    /* AF_INET / AF_INET6 source address, or NULL */
	const struct policy_labels *labels; /* this pod's labels, or NULL (no labels) */
	/* Verified request identity (issue 10); NULL when the request carried no valid token. */
	const char *principal; /* "<iss>/<sub>" */
	const json_t *claims;  /* the token's payload object, borrowed */
	/* Outbound only: the call's :authority ("server:8080") and this pod's namespace
	 * (short host names expand in it; NULL: unknown, short names match only as written). */
	const char *authority;
	size_t authority_len;
	const char *local_namespace;
	/* The caller's verified workload principal ("cluster.local/ns/x/sa/y", issue 16) and
	 * whether the connection is mutual TLS; NULL / false for a plaintext caller. */
	const char *peer_principal;
	size_t peer_principal_len;
	bool mtls;
};

/* Returns a uniformly distributed number in [0, 100). Injected so tests are exact. */
typedef double (*policy_rand_fn)(void *ctx);

enum policy_action { POLICY_ACTION_ALLOW, POLICY_ACTION_DENY, POLICY_ACTION_AUDIT };

struct policy_decision {
	bool allowed;
	const char *deciding_policy; /* name of the DENY that matched, or of the ALLOW that
					matched, or NULL (no ALLOW policies / default deny of
					"ALLOW policies exist but none matched": then NULL) */
	const char *audit_policy;    /* first AUDIT policy that matched, or NULL */
	/* Fault (only meaningful when allowed): first matching entry, after percent draws. */
	const char *fault_name; /* NULL when no fault entry matched */
	uint64_t delay_ms;	/* 0: no delay */
	bool abort;
	int abort_grpc_status;	   /* 1..16 */
	const char *abort_message; /* borrowed, may be "" */
};

/*
 * Evaluate one RPC. Never fails and never allocates; strings in *out are borrowed from p.
 * Authorization (Istio semantics): any matching DENY denies; otherwise, if an ALLOW policy
 * selects this pod, one must match; AUDIT policies only set audit_policy. Methods under
 * /grpc.health.v1.Health/ are allowed unless a DENY rule's `to.methods` names them.
 * Faults: the first entry whose selector, methods and headers match; its delay and abort
 * each apply if their own draw rnd() < percent (percent 100 needs no draw).
 * rnd may be NULL, meaning draws always return 0 (every percent > 0 hits).
 * Outbound (req->direction): always allowed; only entries with match.destinations are
 * considered, and one applies when a destination matches req->authority
 * (policy_host_match). Inbound never applies an entry with destinations.
 */
void policy_evaluate(const struct policy *p, const struct policy_request *req, policy_rand_fn rnd,
		     void *rnd_ctx, struct policy_decision *out);

/* ---- building blocks, exposed for the tests, the fuzz targets and `check` --------- */
/* "250ms", "1.5s", "10s", "2m", "1h", "0s": 0 and *out_ms, or negative. */
int policy_parse_duration(const char *s, size_t len, uint64_t *out_ms);

struct policy_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix_len;
};
/* "10.0.0.0/8", "2001:db8::/32", or a bare address (= /32 or /128). 0 or negative. */
int policy_parse_cidr(const char *s, struct policy_cidr *out);
bool policy_cidr_contains(const struct policy_cidr *c, const struct sockaddr *addr);

/* Patterns: exact "/pkg.Svc/M", prefix "/pkg.Svc/" followed by a star, or a lone star
 * (also "prefix*" and "*suffix" as in Istio). */
bool policy_method_match(const char *pattern, const char *method, size_t method_len);

/*
 * Destination hosts (match.destinations). policy_host_check: 0 when s[0..len) is a host
 * pattern ("server", "server.demo.svc.cluster.local", "api.example.com", "*.example.com",
 * "*"), else -1 and a static reason in *why. policy_host_match: whether pattern (checked)
 * names the host of `authority` (its port ignored): exact, or the same Kubernetes Service
 * once short forms are expanded with namespace ns (NULL: not expanded). See host.c.
 */
int policy_host_check(const char *s, size_t len, const char **why);
bool policy_host_match(const char *pattern, const char *authority, size_t authority_len,
		       const char *ns);

/* gRPC status by name ("UNAVAILABLE") or number ("14"); -1 if unknown. Name of 0..16. */
int policy_grpc_status_parse(const char *s);
const char *policy_grpc_status_name(int code);

#endif
