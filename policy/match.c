/*
 * String and method patterns, Istio style: "*" matches any value (but a missing value
 * matches nothing), "prefix*", "*suffix", anything else exactly. A '*' elsewhere is
 * rejected by the parser, not here.
 *
 * Also the joined view of a repeated header (struct joined, internal.h): the values of one
 * name joined with "," as Envoy does, matched in place without building the string.
 */
#include <string.h>

#include "policy/internal.h"

void pmatch_init(struct pmatch *pm, const char *text, size_t len)
{
	pm->text = text;
	if (len == 1 && text[0] == '*') {
		pm->kind = PM_ANY;
		pm->lit = text + 1;
		pm->len = 0;
	} else if (len > 0 && text[len - 1] == '*') {
		pm->kind = PM_PREFIX;
		pm->lit = text;
		pm->len = len - 1;
	} else if (len > 0 && text[0] == '*') {
		pm->kind = PM_SUFFIX;
		pm->lit = text + 1;
		pm->len = len - 1;
	} else {
		pm->kind = PM_EXACT;
		pm->lit = text;
		pm->len = len;
	}
	/* An exact health method, or a prefix pattern that starts with the health service's
	 * full name: these name the health service explicitly; "*" or "/grpc.*" do not. */
	const size_t svc_len = sizeof(HEALTH_PREFIX) - 2; /* without the trailing '/' */
	pm->names_health = (pm->kind == PM_EXACT || pm->kind == PM_PREFIX) && pm->len >= svc_len &&
			   memcmp(pm->lit, HEALTH_PREFIX, svc_len) == 0;
}

bool pmatch_match(const struct pmatch *pm, const char *s, size_t len)
{
	switch (pm->kind) {
	case PM_ANY:
		return true;
	case PM_EXACT:
		return len == pm->len && memcmp(s, pm->lit, len) == 0;
	case PM_PREFIX:
		return len >= pm->len && memcmp(s, pm->lit, pm->len) == 0;
	case PM_SUFFIX:
		return len >= pm->len && memcmp(s + len - pm->len, pm->lit, pm->len) == 0;
	}
	return false;
}

bool pmatch_list_match(const struct pmatch_list *l, const char *s, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (pmatch_match(&l->v[i], s, len))
			return true;
	return false;
}

/* The runtime form of the same rule, for callers holding a pattern string. */
bool policy_method_match(const char *pattern, const char *method, size_t method_len)
{
	struct pmatch pm;

	if (!pattern || !method)
		return false;
	pmatch_init(&pm, pattern, strlen(pattern));
	return pmatch_match(&pm, method, method_len);
}

/* ---- repeated header fields, joined (Envoy semantics) ---------------------------- */

static bool same_name(const struct policy_header *h, const struct joined *j)
{
	return h->name_len == j->name_len && memcmp(h->name, j->name, j->name_len) == 0;
}

void joined_init(struct joined *j, const struct policy_header *h, size_t nh, const char *name,
		 size_t name_len)
{
	j->h = h;
	j->nh = h ? nh : 0;
	j->name = name;
	j->name_len = name_len;
	/* RFC 9113 8.2.3: cookie fields split for compression are joined with "; ". */
	if (name_len == 6 && memcmp(name, "cookie", 6) == 0) {
		j->sep = "; ";
		j->sep_len = 2;
	} else {
		j->sep = ",";
		j->sep_len = 1;
	}
	j->count = 0;
	j->len = 0;
	j->first = NULL;
	for (size_t i = 0; i < j->nh; i++) {
		if (!same_name(&h[i], j))
			continue;
		if (!j->first)
			j->first = &h[i];
		j->len += (j->count ? j->sep_len : 0) + (h[i].value ? h[i].value_len : 0);
		j->count++;
	}
}

/*
 * Whether bytes [off, off + len) of the joined value equal lit[0..len). The caller
 * checked that the range lies inside the value. Walks the pieces (separator, value) in
 * order and compares the part of each that overlaps the range.
 */
static bool joined_range_equals(const struct joined *j, size_t off, const char *lit, size_t len)
{
	size_t pos = 0;
	bool first = true;

	for (size_t i = 0; i < j->nh && len; i++) {
		const struct policy_header *h = &j->h[i];
		if (!same_name(h, j))
			continue;
		for (int part = first ? 1 : 0; part < 2 && len; part++) {
			const char *b = part ? (h->value ? h->value : "") : j->sep;
			size_t bl = part ? (h->value ? h->value_len : 0) : j->sep_len;
			if (off < pos + bl) {
				size_t skip = off - pos, take = bl - skip < len ? bl - skip : len;
				if (memcmp(b + skip, lit, take) != 0)
					return false;
				lit += take;
				len -= take;
				off += take;
			}
			pos += bl;
		}
		first = false;
	}
	return len == 0;
}

bool joined_match(const struct joined *j, const struct pmatch *pm)
{
	if (j->count == 0)
		return false;
	if (j->count == 1)
		return pmatch_match(pm, j->first->value ? j->first->value : "",
				    j->first->value ? j->first->value_len : 0);
	switch (pm->kind) {
	case PM_ANY:
		return true;
	case PM_EXACT:
		return j->len == pm->len && joined_range_equals(j, 0, pm->lit, pm->len);
	case PM_PREFIX:
		return j->len >= pm->len && joined_range_equals(j, 0, pm->lit, pm->len);
	case PM_SUFFIX:
		return j->len >= pm->len &&
		       joined_range_equals(j, j->len - pm->len, pm->lit, pm->len);
	}
	return false;
}

bool joined_list_match(const struct joined *j, const struct pmatch_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (joined_match(j, &l->v[i]))
			return true;
	return false;
}

bool joined_equals(const struct joined *j, const char *s, size_t len)
{
	return j->count > 0 && j->len == len && joined_range_equals(j, 0, s, len);
}
