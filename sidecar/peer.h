/*
 * Who is calling: this pod's workload identity and the one header two sidecars exchange
 * to name themselves to each other (metadata exchange, as Istio's peer metadata).
 *
 * Identity: namespace (env POD_NAMESPACE), service account (env SERVICE_ACCOUNT) and a
 * workload name: the pod label app.kubernetes.io/name, else app, else the owner's name
 * derived from the pod name (env POD_NAME): Deployment `name-<rs hash>-<5>` -> name,
 * StatefulSet `name-<ordinal>` -> name, DaemonSet/Job `name-<5>` -> name. Anything that
 * cannot be derived, or does not fit the charset, is "unknown".
 *
 * The header, SC_PEER_HEADER: one field, `ns=<namespace>;wl=<workload>;sa=<account>`, in
 * that order, nothing else. namespace: a DNS label ([a-z0-9-], 1..63, alphanumeric at
 * both ends); workload: a Kubernetes label value ([A-Za-z0-9._-], 1..63, alphanumeric at
 * both ends); service account: a DNS subdomain ([a-z0-9.-], 1..253, alphanumeric at both
 * ends). The whole value is at most SC_PEER_VALUE_MAX bytes. Anything else is invalid
 * and the caller treats the peer as unknown: no byte of an invalid value ever reaches a
 * metric label or a log.
 *
 * Trust: until mutual TLS exists the claim is unauthenticated. It labels telemetry only;
 * the inbound path strips it before the policy header list is built, so authorization
 * and faults can never see it (a `when` or `match.headers` naming it cannot match).
 * With mTLS (issue 16) the same header stays; its namespace and service account must then
 * equal the peer certificate's SPIFFE ID, or the claim is dropped.
 *
 * The outbound path (the caller's sidecar) uses it so: on the app's request,
 * n = sc_peer_strip_nv(nv, n, NULL, NULL) (the app cannot name itself), then
 * n += sc_peer_self_nv(&snap->self, &nv[n]); on the response from the destination, keep
 * the SC_PEER_HEADER fields out of what goes to the app (as h2conn.c's down_header does
 * for requests) and at the end sc_peer_from_fields() -> sc_stats_peer_invalid() on error,
 * and sc_stats_rpc_done() with reporter SC_REPORTER_SOURCE, self = &snap->self.id and
 * peer = the decoded answer (NULL when there was none: a destination without sidecar).
 *
 * Pure: no I/O, no allocation, no logging; strings are passed in.
 */
#ifndef GRPCGUARD_SC_PEER_H
#define GRPCGUARD_SC_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nghttp2/nghttp2.h>

#include "policy/policy.h"

#define SC_PEER_HEADER "x-grpcguard-peer"
#define SC_PEER_HEADER_LEN (sizeof(SC_PEER_HEADER) - 1)
#define SC_PEER_NAME_MAX 63 /* namespace, workload */
#define SC_PEER_SA_MAX 253
/* "ns=" 63 ";wl=" 63 ";sa=" 253 */
#define SC_PEER_VALUE_MAX (3 + SC_PEER_NAME_MAX + 4 + SC_PEER_NAME_MAX + 4 + SC_PEER_SA_MAX)
#define SC_PEER_UNKNOWN "unknown"

struct sc_peer_id {
	char ns[SC_PEER_NAME_MAX + 1];
	char workload[SC_PEER_NAME_MAX + 1];
	char sa[SC_PEER_SA_MAX + 1];
};

/* This sidecar's own identity and its header value, computed once per snapshot. */
struct sc_peer_self {
	struct sc_peer_id id;
	char value[SC_PEER_VALUE_MAX + 1]; /* the encoded header value */
	size_t value_len;
};

/* Why a received header was not used (the label of grpcguard_peer_metadata_invalid_total). */
enum sc_peer_err {
	SC_PEER_OK = 0,
	SC_PEER_E_MALFORMED = -1, /* not the grammar above, or a bad charset/length */
	SC_PEER_E_OVERSIZED = -2, /* longer than SC_PEER_VALUE_MAX */
	SC_PEER_E_REPEATED = -3,  /* the field appeared more than once in one header block */
	SC_PEER_E_MISMATCH = -4,  /* over mTLS: its namespace or SA is not the certificate's */
};
const char *sc_peer_strerror(int err); /* "malformed", "oversized", "repeated", "mismatch" */

/* Charset checks of the three parts (see above). */
bool sc_peer_valid_ns(const char *s, size_t n);
bool sc_peer_valid_workload(const char *s, size_t n);
bool sc_peer_valid_sa(const char *s, size_t n);

/*
 * The owner's name from a pod name (see above), written to out (outsz bytes, NUL
 * terminated, at most SC_PEER_NAME_MAX characters). A bare pod keeps its name. Returns
 * the length, or 0 when pod_name is empty or not a DNS subdomain (out is then "").
 */
size_t sc_peer_workload_from_pod(const char *pod_name, char *out, size_t outsz);

/*
 * Derive this pod's identity. Any of pod_name, ns, sa, labels may be NULL; a part that
 * is missing or does not fit its charset becomes "unknown". Fills *self (id and encoded
 * value) completely; never fails.
 */
void sc_peer_self_derive(const char *pod_name, const char *ns, const char *sa,
			 const struct policy_labels *labels, struct sc_peer_self *self);

/*
 * Encode id as the header value into out (outsz bytes, NUL terminated). Returns the
 * length, or 0 when a part is invalid or outsz is too small (out then "").
 */
size_t sc_peer_encode(const struct sc_peer_id *id, char *out, size_t outsz);

/*
 * The field naming self, for a request the caller's sidecar sends on (outbound) or a
 * response the server's sidecar returns (inbound): *nv borrows self's value (keep self
 * alive until the frame is serialized: it lives in the snapshot the stream holds), name
 * and value flagged NO_COPY. Returns 1, or 0 (nothing written) when self has no value.
 */
size_t sc_peer_self_nv(const struct sc_peer_self *self, nghttp2_nv *nv);

/*
 * Decode and validate a received header value (v: n bytes, need not be NUL terminated).
 * Returns SC_PEER_OK with *id filled, or SC_PEER_E_MALFORMED / SC_PEER_E_OVERSIZED with
 * *id set to unknown/unknown/unknown.
 */
int sc_peer_decode(const uint8_t *v, size_t n, struct sc_peer_id *id);

/* Whether a header field name is SC_PEER_HEADER (names are lowercase in HTTP/2). */
bool sc_peer_is_header(const uint8_t *name, size_t n);

/*
 * Remove every SC_PEER_HEADER field from nv[0..n) in place, keeping the others in order
 * (the outbound path: the app's request, before the sidecar adds its own; the response
 * from the server's sidecar, before it reaches the app). Returns the new count; the value
 * of the first field removed is left in *first (NULL if none) and how many were removed
 * in *removed (either may be NULL).
 */
size_t sc_peer_strip_nv(nghttp2_nv *nv, size_t n, const nghttp2_nv **first, size_t *removed);

/*
 * The value of a header block's SC_PEER_HEADER fields: 0 fields -> SC_PEER_OK with
 * *id unknown and *present false; 1 field -> sc_peer_decode; 2 or more ->
 * SC_PEER_E_REPEATED (unknown). For the outbound path, after sc_peer_strip_nv.
 */
int sc_peer_from_fields(const uint8_t *v, size_t vlen, size_t count, struct sc_peer_id *id,
			bool *present);

/* destination_service: the host of an :authority (port stripped, lowercased, no
 * trailing dot), a DNS name of at most SC_PEER_SERVICE_MAX characters; IP literals and
 * anything else -> "unknown" (no IPs as labels). Returns the length written (out NUL
 * terminated, outsz > SC_PEER_SERVICE_MAX). */
#define SC_PEER_SERVICE_MAX 253
size_t sc_peer_service_from_authority(const char *a, size_t n, char *out, size_t outsz);

#endif
