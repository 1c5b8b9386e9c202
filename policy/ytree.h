/*
 * A YAML document as a small tree with positions, built from libyaml's event stream.
 *
 * Why not libyaml's own document loader: it silently expands aliases (a "billion laughs"
 * file becomes exponential work for whoever walks it) and forgets where keys were. Here
 * anchors and aliases are rejected, nesting is bounded, one document at most is allowed,
 * and every node keeps its 1-based line and column for diagnostics.
 */
#ifndef GRPCGUARD_POLICY_YTREE_H
#define GRPCGUARD_POLICY_YTREE_H

#include "policy/internal.h"

#define YTREE_MAX_DEPTH 64

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_type type;
	unsigned line, col; /* 1-based */
	const char *val;    /* scalar text, NUL-terminated, no embedded NUL */
	size_t len;
	bool plain;	     /* an unquoted scalar (so `null`, `~` and empty mean null) */
	struct ynode **kids; /* sequence items, or map key, value, key, value... */
	size_t nkids;
};

struct ytree {
	struct arena arena;
	struct ynode *root; /* NULL for an empty stream */
};

/*
 * Build the tree for buf[0..len). `name` prefixes diagnostics. Returns 0, or
 * POLICY_ERR_SYNTAX / POLICY_ERR_NOMEM with *diag filled; the tree is cleaned up either way
 * by ytree_cleanup (call it in both cases).
 */
int ytree_load(struct ytree *t, const char *name, const char *buf, size_t len,
	       struct policy_diag *diag);
void ytree_cleanup(struct ytree *t);

/* True for a plain `null`, `Null`, `NULL`, `~` or empty scalar. */
bool ynode_is_null(const struct ynode *n);
const char *ynode_type_name(const struct ynode *n);

/* Fill *diag with "name:line:col: [path: ]message". Returns `err`. */
int diag_set(struct policy_diag *diag, int err, const char *name, unsigned line, unsigned col,
	     const char *path, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

#endif
