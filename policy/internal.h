/*
 * Internal representation of a parsed policy, shared by parse.c (builds it), eval.c
 * (reads it on every RPC), json.c (prints it) and policy.c (lifecycle).
 *
 * Everything a policy owns lives in one arena, so freeing a policy (or abandoning a
 * half-built one after an error) is one call and cannot leak. Everything evaluation needs
 * is precomputed here at parse time: method and value patterns are split into
 * exact/prefix/suffix/any, CIDRs are binary, header names are lowercase, claim paths are
 * split. Nothing outside policy/ includes this header.
 */
#ifndef GRPCGUARD_POLICY_INTERNAL_H
#define GRPCGUARD_POLICY_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#ifndef TESTABLE
#ifdef GG_TESTING
#define TESTABLE
#else
#define TESTABLE static
#endif
#endif

/* ---- arena (arena.c) ----------------------------------------------------------- */
struct arena_chunk;
struct arena {
	struct arena_chunk *head;
	size_t total_bytes; /* bytes handed out, for the size limit below */
};
/* Hard cap on what one policy may allocate, whatever its input (64 x the file limit: a
 * 1 MiB file of "[{},{},...]" needs about 25 MiB of nodes). */
#define ARENA_MAX_BYTES ((size_t)64 * POLICY_MAX_FILE_BYTES)

/* Zeroed memory aligned for any type, or NULL (out of memory or over ARENA_MAX_BYTES). */
void *arena_alloc(struct arena *a, size_t n);
/* A NUL-terminated copy of s[0..len), optionally lowercased (ASCII). NULL on failure. */
char *arena_strndup(struct arena *a, const char *s, size_t len, bool lower);
/* Frees every chunk; the arena is empty and reusable afterwards. */
void arena_cleanup(struct arena *a);

/* ---- string patterns (match.c) ----------------------------------------------- */
/*
 * Istio's string match: "*" (anything, but not absence), "prefix*", "*suffix", exact.
 * Method patterns use the same kinds (a prefix pattern like "/pkg.Svc/" + star).
 */
enum pm_kind { PM_ANY, PM_EXACT, PM_PREFIX, PM_SUFFIX };
struct pmatch {
	enum pm_kind kind;
	const char *lit; /* the literal part (without the '*'), arena */
	size_t len;
	const char *text;  /* the pattern as written, for JSON and messages */
	bool names_health; /* exact/prefix pattern under /grpc.health.v1.Health */
};
struct pmatch_list {
	struct pmatch *v;
	size_t n;
	bool present; /* the key was given (an empty list given explicitly is present) */
};

/* Classify `text` (borrowed into the arena by the caller) into *pm. Never fails. */
void pmatch_init(struct pmatch *pm, const char *text, size_t len);
bool pmatch_match(const struct pmatch *pm, const char *s, size_t len);
bool pmatch_list_match(const struct pmatch_list *l, const char *s, size_t len);

#define HEALTH_PREFIX "/grpc.health.v1.Health/"

/*
 * The value of one header name as Envoy sees it: every field with that name, in order,
 * joined with "," ("; " for cookie). Viewed in place, never copied: matching walks the
 * fields piece by piece, so a name sent once costs one compare, as before.
 */
struct joined {
	const struct policy_header *h; /* the request's fields, borrowed */
	size_t nh;
	const char *name; /* lowercase */
	size_t name_len;
	const char *sep;
	size_t sep_len;
	size_t count; /* fields with this name (0: the header is absent) */
	size_t len;   /* length of the joined value */
	const struct policy_header *first;
};
void joined_init(struct joined *j, const struct policy_header *h, size_t nh, const char *name,
		 size_t name_len);
/* Pattern / pattern list / exact string against the joined value; false when absent. */
bool joined_match(const struct joined *j, const struct pmatch *pm);
bool joined_list_match(const struct joined *j, const struct pmatch_list *l);
bool joined_equals(const struct joined *j, const char *s, size_t len);

/* ---- the policy ---------------------------------------------------------------- */
struct kv {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

struct selector {
	bool present; /* `selector` given: then matchLabels must all be on the pod */
	struct kv *labels;
	size_t nlabels;
};

struct fault {
	const char *name;
	struct selector sel;
	struct pmatch_list methods; /* absent: every method except health */
	struct kv *headers;	    /* lowercase names, exact values */
	size_t nheaders;
	const char **destinations; /* match.destinations, lowercase: a client-side entry */
	size_t ndestinations;
	bool has_delay;
	uint64_t delay_ms;
	double delay_percent;
	bool has_abort;
	int abort_status;
	const char *abort_message;
	double abort_percent;
};

struct source {
	struct policy_cidr *ip_blocks, *not_ip_blocks;
	const char **ip_texts, **not_ip_texts;
	size_t nip_blocks, nnot_ip_blocks;
	bool has_ip_blocks, has_not_ip_blocks;
	struct pmatch_list principals, not_principals; /* requestPrincipals (JWT) */
	/* Issue 16: the peer's workload identity (verified mTLS only). */
	struct pmatch_list peer_principals, not_peer_principals; /* principals, notPrincipals */
	struct pmatch_list namespaces, not_namespaces;
};

struct operation {
	struct pmatch_list methods, not_methods;
};

enum cond_kind {
	COND_HEADER,
	COND_CLAIM,
	COND_AUDIENCES,
	COND_PRINCIPAL,
	COND_SOURCE_PRINCIPAL, /* issue 16: the peer's verified workload identity */
	COND_SOURCE_NAMESPACE,
};
struct condition {
	enum cond_kind kind;
	bool by_key;	      /* written as `key:` (else `header:`) */
	const char *key_text; /* as written */
	const char *header;   /* COND_HEADER: lowercase name */
	size_t header_len;
	const char **claim_path; /* COND_CLAIM: ["a", "b"] for claims[a][b] */
	size_t nclaim_path;
	struct pmatch_list values, not_values;
};

struct rule {
	struct source *from;
	size_t nfrom;
	struct operation *to;
	size_t nto;
	struct condition *when;
	size_t nwhen;
};

struct authz {
	const char *name;
	struct selector sel;
	enum policy_action action;
	struct rule *rules;
	size_t nrules;
};

struct policy {
	atomic_int refs;
	struct arena arena;
	bool has_api_version; /* both fields were given in the file */
	struct fault *faults;
	size_t nfaults;
	struct authz *authz;
	size_t nauthz;
	struct policy_authn *authn;
	size_t nauthn;
	enum policy_passthrough passthrough; /* as given; UNSET when absent */
	enum policy_mtls mtls;		     /* as given; UNSET when absent */
};

/* ---- CIDR containment (cidr.c) ------------------------------------------------- */
/*
 * A peer address normalised once per evaluation: host-order words, so testing it against
 * each CIDR is a mask and a compare. An IPv4 peer (or a v4-mapped IPv6 one) has v4 set
 * and v6 = ::ffff:a.b.c.d; any other IPv6 peer has only v6.
 */
struct peer_addr {
	bool has_v4, has_v6;
	uint32_t v4;
	uint64_t v6[2];
};
struct sockaddr;
/* addr NULL or of another family: neither flag is set (no CIDR contains it). */
void peer_addr_init(struct peer_addr *pa, const struct sockaddr *addr);
bool cidr_contains_peer(const struct policy_cidr *c, const struct peer_addr *pa);

/* labels.c: the value of key[0..key_len) and its length, or NULL. Borrowed. */
const char *labels_get_n(const struct policy_labels *l, const char *key, size_t key_len,
			 size_t *value_len);

/* identity.c: the parser's check of one principals (principal true) or namespaces
 * pattern; 0, or -1 and a static reason in *why. */
int identity_pattern_check(const struct pmatch *pm, bool principal, const char **why);

/* policy.c: an empty policy with one reference, or NULL. */
struct policy *policy_alloc(void);

const char *policy_action_name(enum policy_action a);

#endif
