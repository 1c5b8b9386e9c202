/*
 * Kubernetes TokenReview for the certificate endpoint: who a projected ServiceAccount
 * token belongs to, asked of the API server (POST
 * /apis/authentication.k8s.io/v1/tokenreviews with spec.token and spec.audiences) over
 * libcurl with the pod's in-cluster credentials. The request body and the answer's
 * interpretation are pure functions (unit tests, fuzz target); wh_tokenreview_call() is
 * the only I/O. Nothing here logs, and no token is ever copied into a message.
 */
#ifndef GRPCGUARD_WH_TOKENREVIEW_H
#define GRPCGUARD_WH_TOKENREVIEW_H

#include <stddef.h>

#define WH_TR_NS_MAX 63	 /* a namespace is a DNS label */
#define WH_TR_SA_MAX 253 /* a ServiceAccount name is a DNS subdomain */
#define WH_TR_MAX_RESPONSE_BYTES (64 * 1024)
#define WH_DEFAULT_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* The verified identity: namespace and ServiceAccount of the token's owner. */
struct wh_identity {
	char ns[WH_TR_NS_MAX + 1];
	char sa[WH_TR_SA_MAX + 1];
};

enum wh_tr_result {
	WH_TR_OK = 0,
	WH_TR_UNAUTHENTICATED, /* status.authenticated false: invalid, expired, revoked → 401 */
	WH_TR_AUDIENCE,	       /* authenticated, but not for our audience → 401 */
	WH_TR_NOT_SA,	       /* authenticated, but not system:serviceaccount:<ns>:<sa> → 403 */
	WH_TR_BAD_RESPONSE, /* the API server's answer is not a TokenReview we understand → 503 */
	WH_TR_UNAVAILABLE, /* the API server could not be asked (network, TLS, 5xx, RBAC) → 503 */
	WH_TR_NOMEM,
};

/* Stable short name of a result (metric label and log field). */
const char *wh_tr_result_name(enum wh_tr_result r);

/*
 * The TokenReview request body for token and one audience: a new NUL-terminated JSON
 * string, or NULL on out of memory. The caller frees it (it holds the token: zero it).
 */
char *wh_tokenreview_body(const char *token, const char *audience);

/*
 * Interpret a TokenReview answer body[0..len) for `audience`. WH_TR_OK fills *id. Any
 * other result leaves *id untouched and says why in err (never quoting the token; the API
 * server's status.error is quoted, cut to fit). Accepts only
 * status.authenticated == true, status.audiences containing audience (a missing list is a
 * mismatch: the API server echoes the audiences it checked), and a user.username of the
 * form system:serviceaccount:<namespace>:<name> with a valid namespace and name.
 */
enum wh_tr_result wh_tokenreview_parse(const char *body, size_t len, const char *audience,
				       struct wh_identity *id, char *err, size_t errlen);

/*
 * The SPIFFE ID spiffe://<trust_domain>/ns/<ns>/sa/<sa> into out. Returns its length, or
 * -1 when it does not fit outlen (out then holds "").
 */
int wh_spiffe_id(const char *trust_domain, const struct wh_identity *id, char *out, size_t outlen);

/* Where and how to reach the API server. Strings borrowed. */
struct wh_tokenreview_client {
	const char *url;	/* full tokenreviews URL; NULL: from KUBERNETES_SERVICE_HOST/PORT */
	const char *ca_file;	/* PEM bundle the API server's certificate must chain to */
	const char *token_file; /* the webhook's own SA token, re-read on each call (rotates) */
	long timeout_ms;	/* whole request */
};

/*
 * Ask the API server about token for audience (blocking, at most c->timeout_ms). Results
 * as wh_tokenreview_parse(), plus WH_TR_UNAVAILABLE for anything on the way (no
 * in-cluster config, connection, TLS, a non-2xx answer such as 403 when the webhook's
 * ServiceAccount may not create tokenreviews), with the cause in err.
 */
enum wh_tr_result wh_tokenreview_call(const struct wh_tokenreview_client *c, const char *token,
				      const char *audience, struct wh_identity *id, char *err,
				      size_t errlen);

#endif
