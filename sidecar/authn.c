/*
 * Request authentication (issue 10): find the JWTs a request carries in the headers the
 * policy's `requestAuthentication` entries name, verify each against the entry of its
 * issuer, and yield the principal and claims for authorization, or a failure.
 *
 * Semantics (Istio's RequestAuthentication): a request without a token passes this step
 * with no principal; a token that is present must verify, against the entry whose issuer
 * equals the token's `iss` and which reads the header the token came from; a token of an
 * issuer no entry names fails. When several tokens are present all must verify, and the
 * first one gives the principal.
 *
 * Keys are parsed once per sc_authn (one per policy generation and worker). A `jwksFile`
 * is re-stat'ed at most once a second from sc_authn_check and re-read when its device,
 * inode, size, mtime or ctime changed (a ConfigMap or Secret volume swaps a symlink, which
 * changes the inode); a file that does not parse leaves the last good keys in force.
 * Verified tokens are cached (see struct cached_token), so the signature of a token a
 * client repeats on every RPC is checked once.
 *
 * What it does not do: decide authorization, or read anything but the JWKS files.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "sidecar/authn.h"
#include "sidecar/filestat.h"
#include "sidecar/jwt.h"

#define JWKS_RESTAT_MS 1000

struct entry {
	const struct policy_authn *cfg; /* borrowed from the policy */
	struct sc_jwks *keys;		/* the last good key set, or NULL */
	uint64_t keys_gen;		/* +1 each time keys is replaced */
	struct sc_filestat seen;	/* jwksFile: what we last read (or failed to) */
	uint64_t next_stat_mono_ms;
};

/*
 * Verified tokens, so that a client sending the same token on every RPC (what gRPC
 * clients do) pays for one signature check, not one per RPC; Envoy's jwt_authn keeps such
 * a cache too. Keyed by the exact token bytes (the hash only picks the slot; a hit
 * compares every byte), valid for the entry's key set it was verified with (keys_gen).
 * On a hit only the time claims are checked again. Direct-mapped: a colliding token
 * evicts the older one. Bounded: TOKEN_CACHE_SLOTS * SC_JWT_MAX_TOKEN_BYTES at worst.
 */
#define TOKEN_CACHE_SLOTS 64
struct cached_token {
	char *tok; /* NULL: empty slot */
	size_t len;
	uint64_t hash;
	size_t entry; /* index in sc_authn.e */
	uint64_t keys_gen;
	char *principal;
	json_t *claims;
};

struct sc_authn {
	struct policy *policy; /* owned reference; NULL when built from bare entries (tests) */
	size_t n;
	struct entry *e;
	bool cache_off; /* benchmarks and tests measure the uncached path */
	uint64_t cache_hits;
	struct cached_token cache[TOKEN_CACHE_SLOTS];
};

/*
 * Read and parse the JWKS file at path. Returns 0 and a new key set, or negative with a
 * description in diag. *id is set to the identity of what was opened (also on parse
 * failure, so the same bad file is not re-read every second); left invalid when the file
 * could not be opened.
 */
static int load_jwks_file(const char *path, struct sc_jwks **out, struct sc_filestat *id,
			  char *diag, size_t diag_len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, ret;

	*out = NULL;
	id->valid = false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(diag, diag_len, "cannot open: %s", strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) != 0) {
		ret = -errno;
		snprintf(diag, diag_len, "cannot stat: %s", strerror(errno));
		goto out;
	}
	sc_filestat_set(id, &st);
	ret = SC_JWT_ERR_TOOBIG;
	if (!S_ISREG(st.st_mode) || st.st_size > SC_JWKS_MAX_BYTES) {
		snprintf(diag, diag_len, "not a regular file of at most %d bytes",
			 SC_JWKS_MAX_BYTES);
		goto out;
	}
	ret = -ENOMEM;
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		snprintf(diag, diag_len, "out of memory");
		goto out;
	}
	/* Read to EOF, but never past the size we allowed: the file may be growing. */
	while (got <= (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size + 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			snprintf(diag, diag_len, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	ret = SC_JWT_ERR_TOOBIG;
	if (got > (size_t)st.st_size) {
		snprintf(diag, diag_len, "the file changed while it was read");
		id->valid = false; /* try again at the next stat */
		goto out;
	}
	ret = sc_jwks_parse(buf, got, out, diag, diag_len);
out:
	free(buf);
	close(fd);
	return ret;
}

/* Appends "text" to the malloc'd list *acc, separated by "; ". Ignores ENOMEM. */
static void append_msg(char **acc, const char *text)
{
	size_t old = *acc ? strlen(*acc) : 0, add = strlen(text);
	char *n = realloc(*acc, old + add + (old ? 2 : 0) + 1);

	if (!n)
		return;
	if (old) {
		memcpy(n + old, "; ", 2);
		old += 2;
	}
	memcpy(n + old, text, add + 1);
	*acc = n;
}

/* Load entry e's keys (inline or file). Returns "" or a note for err_msg in diag. */
static void entry_load(struct entry *e, size_t idx, char *diag, size_t diag_len)
{
	char why[512];
	const char *src;
	int r;

	why[0] = '\0';
	if (e->cfg->jwks_file) {
		src = e->cfg->jwks_file;
		r = load_jwks_file(src, &e->keys, &e->seen, why, sizeof(why));
	} else {
		src = "jwks";
		r = e->cfg->jwks_inline
			? sc_jwks_parse(e->cfg->jwks_inline, strlen(e->cfg->jwks_inline), &e->keys,
					why, sizeof(why))
			: SC_JWT_ERR_JWKS;
		if (!e->cfg->jwks_inline)
			snprintf(why, sizeof(why), "neither jwks nor jwksFile is set");
	}
	diag[0] = '\0';
	if (r != 0 || why[0])
		snprintf(diag, diag_len, "requestAuthentication[%zu] (issuer %s): %s: %s%s", idx,
			 e->cfg->issuer ? e->cfg->issuer : "?", src, why,
			 r != 0 ? " (tokens of this issuer will fail)" : "");
}

/*
 * The core of sc_authn_new, on bare entries: cfgs[0..n) are borrowed and must outlive the
 * object; policy (may be NULL) is the owner that keeps them alive, referenced here.
 */
static int authn_new_entries(struct policy *p, const struct policy_authn *const *cfgs, size_t n,
			     struct sc_authn **out, char **err_msg)
{
	struct sc_authn *a = calloc(1, sizeof(*a));
	char *msgs = NULL, diag[1024];

	*out = NULL;
	if (err_msg)
		*err_msg = NULL;
	if (!a || (n && !(a->e = calloc(n, sizeof(a->e[0]))))) {
		free(a);
		return -ENOMEM;
	}
	a->policy = policy_ref(p);
	a->n = n;
	for (size_t i = 0; i < n; i++) {
		a->e[i].cfg = cfgs[i];
		entry_load(&a->e[i], i, diag, sizeof(diag));
		if (diag[0])
			append_msg(&msgs, diag);
	}
	if (err_msg)
		*err_msg = msgs;
	else
		free(msgs);
	*out = a;
	return 0;
}

int sc_authn_new(struct policy *p, struct sc_authn **out, char **err_msg)
{
	size_t n = policy_authn_count(p);
	const struct policy_authn **cfgs = n ? calloc(n, sizeof(*cfgs)) : NULL;
	int r;

	if (n && !cfgs) {
		*out = NULL;
		if (err_msg)
			*err_msg = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		cfgs[i] = policy_authn_get(p, i);
	r = authn_new_entries(p, cfgs, n, out, err_msg);
	free(cfgs);
	return r;
}

size_t sc_authn_unusable(const struct sc_authn *a)
{
	size_t n = 0;

	for (size_t i = 0; a && i < a->n; i++)
		n += !a->e[i].keys;
	return n;
}

static void cached_clear(struct cached_token *c)
{
	free(c->tok);
	free(c->principal);
	json_decref(c->claims);
	memset(c, 0, sizeof(*c));
}

/* FNV-1a: picks a cache slot. Not a security boundary: hits compare the whole token. */
static uint64_t token_hash(const char *tok, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)tok[i]) * 0x100000001b3ULL;
	return h;
}

void sc_authn_set_token_cache(struct sc_authn *a, bool on)
{
	a->cache_off = !on;
	for (size_t i = 0; !on && i < TOKEN_CACHE_SLOTS; i++)
		cached_clear(&a->cache[i]);
}

#ifdef GG_TESTING
/* How many checks the token cache answered (tests). */
uint64_t sc_authn_cache_hits(const struct sc_authn *a);
uint64_t sc_authn_cache_hits(const struct sc_authn *a)
{
	return a->cache_hits;
}
#endif

void sc_authn_free(struct sc_authn *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++)
		cached_clear(&a->cache[i]);
	for (size_t i = 0; i < a->n; i++)
		sc_jwks_free(a->e[i].keys);
	free(a->e);
	policy_unref(a->policy);
	free(a);
}

/* Re-stat entry e's jwksFile when due; re-read it when it changed. */
static void entry_maybe_reload(struct entry *e, uint64_t now_mono_ms)
{
	struct sc_jwks *fresh = NULL;
	struct stat st;
	char why[512];
	int r;

	if (!e->cfg->jwks_file || now_mono_ms < e->next_stat_mono_ms)
		return;
	e->next_stat_mono_ms = now_mono_ms + JWKS_RESTAT_MS;
	if (stat(e->cfg->jwks_file, &st) != 0) {
		/* Gone (maybe mid-swap): keep the keys; a reappearing file is read again. */
		e->seen.valid = false;
		return;
	}
	if (sc_filestat_same(&e->seen, &st))
		return;
	why[0] = '\0';
	r = load_jwks_file(e->cfg->jwks_file, &fresh, &e->seen, why, sizeof(why));
	if (r != 0) {
		log_warn("jwks_reload_failed", "JWKS file rejected, the last good keys stay",
			 "{s:s, s:s, s:s, s:b}", "file", e->cfg->jwks_file, "issuer",
			 e->cfg->issuer ? e->cfg->issuer : "", "error", why, "have_keys",
			 e->keys != NULL);
		return;
	}
	sc_jwks_free(e->keys);
	e->keys = fresh;
	e->keys_gen++; /* tokens verified with the old keys are verified again */
	log_info("jwks_reload", "JWKS file reloaded", "{s:s, s:s, s:I, s:s}", "file",
		 e->cfg->jwks_file, "issuer", e->cfg->issuer ? e->cfg->issuer : "", "keys",
		 (json_int_t)sc_jwks_count(fresh), "note", why);
}

static bool same_location(const struct policy_jwt_header *x, const struct policy_jwt_header *y)
{
	return strcmp(x->name, y->name) == 0 &&
	       strcmp(x->prefix ? x->prefix : "", y->prefix ? y->prefix : "") == 0;
}

/* Does entry e read tokens from location loc? */
static bool entry_reads(const struct entry *e, const struct policy_jwt_header *loc)
{
	for (size_t j = 0; j < e->cfg->nfrom_headers; j++)
		if (same_location(&e->cfg->from_headers[j], loc))
			return true;
	return false;
}

/* Was location (i, j) already handled under an earlier (entry, header) pair? */
static bool seen_before(const struct sc_authn *a, size_t i, size_t j)
{
	const struct policy_jwt_header *loc = &a->e[i].cfg->from_headers[j];

	for (size_t pi = 0; pi <= i; pi++)
		for (size_t pj = 0; pj < (pi == i ? j : a->e[pi].cfg->nfrom_headers); pj++)
			if (same_location(&a->e[pi].cfg->from_headers[pj], loc))
				return true;
	return false;
}

/* Record a verified token as the request's identity unless an earlier token did. */
static const char *set_identity(struct sc_authn_result *out, const struct entry *e,
				const struct policy_jwt_header *loc, const char *principal,
				json_t *claims)
{
	if (out->verdict == SC_AUTHN_OK)
		return NULL;
	if (!(out->principal = strdup(principal)))
		return sc_jwt_strerror(SC_JWT_ERR_NOMEM);
	out->claims = json_incref(claims);
	out->verdict = SC_AUTHN_OK;
	out->strip_header = e->cfg->forward_original_token ? NULL : loc->name;
	return NULL;
}

/*
 * A cached verification of this very token, still valid for loc and the entry's current
 * keys: returns true and sets *reason (NULL: the token is good now). false: no usable hit.
 */
static bool from_cache(struct sc_authn *a, struct cached_token *c,
		       const struct policy_jwt_header *loc, const char *tok, size_t len,
		       uint64_t hash, int64_t now_unix_s, uint64_t now_mono_ms,
		       struct sc_authn_result *out, const char **reason)
{
	struct entry *e;
	int r;

	if (a->cache_off || !c->tok || c->hash != hash || c->len != len ||
	    memcmp(c->tok, tok, len) != 0)
		return false;
	e = &a->e[c->entry];
	if (!entry_reads(e, loc))
		return false;
	entry_maybe_reload(e, now_mono_ms);
	if (c->keys_gen != e->keys_gen)
		return false;
	a->cache_hits++;
	r = sc_jwt_check_times(c->claims, now_unix_s);
	*reason = r ? sc_jwt_strerror(r) : set_identity(out, e, loc, c->principal, c->claims);
	return true;
}

/*
 * Verify one token taken from location loc. Returns NULL on success (filling *out when
 * it is the first verified token) or the reason it failed.
 */
static const char *check_token(struct sc_authn *a, const struct policy_jwt_header *loc,
			       const char *tok, size_t len, int64_t now_unix_s,
			       uint64_t now_mono_ms, struct sc_authn_result *out)
{
	struct sc_jwt *t = NULL;
	struct entry *e = NULL;
	struct sc_jwt_expect x;
	struct cached_token *c;
	const char *iss, *sub, *reason = NULL;
	char *principal = NULL;
	uint64_t hash;
	int r;

	if (len == 0)
		return sc_jwt_strerror(SC_JWT_ERR_MALFORMED);
	hash = token_hash(tok, len);
	c = &a->cache[hash % TOKEN_CACHE_SLOTS];
	if (from_cache(a, c, loc, tok, len, hash, now_unix_s, now_mono_ms, out, &reason))
		return reason;
	if ((r = sc_jwt_decode(tok, len, &t)) != 0)
		return sc_jwt_strerror(r);
	iss = sc_jwt_issuer(t);
	for (size_t i = 0; iss && i < a->n && !e; i++)
		if (a->e[i].cfg->issuer && strcmp(a->e[i].cfg->issuer, iss) == 0 &&
		    entry_reads(&a->e[i], loc))
			e = &a->e[i];
	if (!e) {
		reason = "issuer not configured";
		goto out;
	}
	entry_maybe_reload(e, now_mono_ms);
	if (!e->keys) {
		reason = "no JWKS for the issuer";
		goto out;
	}
	x = (struct sc_jwt_expect){e->cfg->issuer, e->cfg->audiences, e->cfg->naudiences,
				   now_unix_s};
	if ((r = sc_jwt_verify(t, e->keys, &x)) != 0) {
		reason = sc_jwt_strerror(r);
		goto out;
	}
	sub = sc_jwt_subject(t);
	if (asprintf(&principal, "%s/%s", iss, sub ? sub : "") < 0) {
		principal = NULL;
		reason = sc_jwt_strerror(SC_JWT_ERR_NOMEM);
		goto out;
	}
	reason = set_identity(out, e, loc, principal, sc_jwt_claims(t));
	if (reason || a->cache_off)
		goto out;
	/* Remember it; a failed copy only means no cache entry. */
	cached_clear(c);
	if ((c->tok = malloc(len))) {
		memcpy(c->tok, tok, len);
		c->len = len;
		c->hash = hash;
		c->entry = (size_t)(e - a->e);
		c->keys_gen = e->keys_gen;
		c->principal = principal;
		c->claims = json_incref(sc_jwt_claims(t));
		principal = NULL;
	}
out:
	free(principal);
	sc_jwt_free(t);
	return reason;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

void sc_authn_check(struct sc_authn *a, const struct policy_header *hdrs, size_t nhdrs,
		    int64_t now_unix_s, uint64_t now_mono_ms, struct sc_authn_result *out)
{
	const char *reason = NULL;

	memset(out, 0, sizeof(*out));
	out->verdict = SC_AUTHN_NONE;
	for (size_t i = 0; a && i < a->n && !reason; i++) {
		for (size_t j = 0; j < a->e[i].cfg->nfrom_headers && !reason; j++) {
			const struct policy_jwt_header *loc = &a->e[i].cfg->from_headers[j];
			const char *prefix = loc->prefix ? loc->prefix : "";
			size_t name_len = strlen(loc->name), plen = strlen(prefix);

			if (seen_before(a, i, j))
				continue;
			for (size_t h = 0; h < nhdrs && !reason; h++) {
				const char *v = hdrs[h].value;
				size_t vl = hdrs[h].value_len;

				if (hdrs[h].name_len != name_len ||
				    strncasecmp(hdrs[h].name, loc->name, name_len) != 0)
					continue;
				/* RFC 6750: the auth scheme is case-insensitive. */
				if (vl < plen || strncasecmp(v, prefix, plen) != 0)
					continue;
				v += plen;
				vl -= plen;
				while (vl && is_space(*v))
					v++, vl--;
				while (vl && is_space(v[vl - 1]))
					vl--;
				reason = check_token(a, loc, v, vl, now_unix_s, now_mono_ms, out);
			}
		}
	}
	if (reason) {
		sc_authn_result_cleanup(out);
		out->verdict = SC_AUTHN_FAIL;
		out->reason = reason;
	}
}

void sc_authn_result_cleanup(struct sc_authn_result *r)
{
	if (!r)
		return;
	free(r->principal);
	json_decref(r->claims);
	memset(r, 0, sizeof(*r));
}
