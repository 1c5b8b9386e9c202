/*
 * Pod labels from the downward API file (/etc/grpcguard/podinfo/labels): one
 * `key="value"` per line, the value quoted like a Go string (%q). Lookup is linear: a pod
 * has a handful of labels. Does no I/O; the caller reads the file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

#define MAX_LABELS 4096

struct policy_labels {
	struct arena arena;
	struct kv *v;
	size_t n;
};

static int labels_fail(struct policy_diag *diag, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int labels_fail(struct policy_diag *diag, unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!diag)
		return POLICY_ERR_SCHEMA;
	diag->line = line;
	diag->column = col;
	n = snprintf(diag->text, sizeof(diag->text), "labels:%u:%u: ", line, col);
	if (n < 0)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(diag->text + n, sizeof(diag->text) - (size_t)n, fmt, ap);
	va_end(ap);
	return POLICY_ERR_SCHEMA;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Unquote the Go-quoted value in s[0..len) (starting at the opening quote) into dst
 * (capacity >= len). Returns the decoded length, or -1 with *bad at the offending offset.
 */
static long unquote(const char *s, size_t len, char *dst, size_t *bad)
{
	size_t i = 1, o = 0;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"') {
		*bad = 0;
		return -1;
	}
	while (i < len - 1) {
		char ch = s[i];
		if (ch == '"') {
			*bad = i;
			return -1;
		}
		if (ch != '\\') {
			dst[o++] = ch;
			i++;
			continue;
		}
		if (i + 1 >= len - 1) {
			*bad = i;
			return -1;
		}
		char e = s[i + 1];
		i += 2;
		switch (e) {
		case 'n':
			dst[o++] = '\n';
			break;
		case 't':
			dst[o++] = '\t';
			break;
		case 'r':
			dst[o++] = '\r';
			break;
		case '\\':
			dst[o++] = '\\';
			break;
		case '"':
			dst[o++] = '"';
			break;
		case '\'':
			dst[o++] = '\'';
			break;
		case 'x': {
			int hi = i + 1 < len - 1 ? hexval(s[i]) : -1;
			int lo = hi >= 0 ? hexval(s[i + 1]) : -1;
			if (lo < 0) {
				*bad = i - 2;
				return -1;
			}
			dst[o++] = (char)(hi * 16 + lo);
			i += 2;
			break;
		}
		default:
			*bad = i - 2;
			return -1;
		}
	}
	return (long)o;
}

int policy_labels_parse(const char *buf, size_t len, struct policy_labels **out,
			struct policy_diag *diag)
{
	struct policy_labels *l = NULL;
	size_t pos = 0, cap = 0;
	unsigned line = 1;
	int rc = POLICY_ERR_NOMEM;

	*out = NULL;
	if (diag)
		memset(diag, 0, sizeof(*diag));
	if (!buf && len)
		return labels_fail(diag, 0, 0, "no input");
	l = calloc(1, sizeof(*l));
	if (!l)
		goto out;
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		const char *s = buf + pos;
		size_t n = end - pos;

		if (n > 0 && s[n - 1] == '\r')
			n--;
		if (n > 0) {
			const char *eq = memchr(s, '=', n);
			size_t klen = eq ? (size_t)(eq - s) : 0, bad = 0;
			if (!eq || klen == 0) {
				rc = labels_fail(diag, line, 1, "expected key=\"value\"");
				goto out;
			}
			if (memchr(s, '\0', n)) {
				rc = labels_fail(diag, line, 1, "NUL byte in line");
				goto out;
			}
			if (l->n == MAX_LABELS) {
				rc = labels_fail(diag, line, 1, "more than %d labels", MAX_LABELS);
				goto out;
			}
			for (size_t i = 0; i < l->n; i++) {
				if (l->v[i].key_len == klen && memcmp(l->v[i].key, s, klen) == 0) {
					rc = labels_fail(diag, line, 1, "duplicate label \"%.*s\"",
							 (int)(klen > 200 ? 200 : klen), s);
					goto out;
				}
			}
			if (l->n == cap) {
				size_t ncap = cap ? cap * 2 : 16;
				struct kv *nv = arena_alloc(&l->arena, ncap * sizeof(*nv));
				if (!nv)
					goto out;
				if (l->n)
					memcpy(nv, l->v, l->n * sizeof(*nv));
				l->v = nv;
				cap = ncap;
			}
			char *val = arena_alloc(&l->arena, n - klen);
			char *key = arena_strndup(&l->arena, s, klen, false);
			if (!val || !key)
				goto out;
			long vlen = unquote(eq + 1, n - klen - 1, val, &bad);
			if (vlen < 0) {
				rc = labels_fail(diag, line, (unsigned)(klen + 2 + bad),
						 "value of \"%.*s\" is not a quoted string "
						 "(expected key=\"value\")",
						 (int)(klen > 200 ? 200 : klen), s);
				goto out;
			}
			val[vlen] = '\0';
			l->v[l->n++] = (struct kv){key, klen, val, (size_t)vlen};
		}
		pos = end + 1;
		line++;
	}
	*out = l;
	l = NULL;
	rc = 0;
out:
	if (rc == POLICY_ERR_NOMEM && diag)
		labels_fail(diag, 0, 0, "out of memory");
	policy_labels_free(l);
	return rc;
}

void policy_labels_free(struct policy_labels *l)
{
	if (!l)
		return;
	arena_cleanup(&l->arena);
	free(l);
}

const char *policy_labels_get(const struct policy_labels *l, const char *key)
{
	size_t klen;

	if (!l || !key)
		return NULL;
	klen = strlen(key);
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].key_len == klen && memcmp(l->v[i].key, key, klen) == 0)
			return l->v[i].value;
	return NULL;
}

const char *labels_get_n(const struct policy_labels *l, const char *key, size_t key_len,
			 size_t *value_len)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].key_len == key_len && memcmp(l->v[i].key, key, key_len) == 0) {
			*value_len = l->v[i].value_len;
			return l->v[i].value;
		}
	}
	return NULL;
}
