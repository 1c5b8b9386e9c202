/*
 * Workload identity and the metadata-exchange header; see peer.h.
 */
#include "sidecar/peer.h"

#include <string.h>

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* 1..max characters from `extra` or alphanumerics, alphanumeric at both ends. */
static bool valid_name(const char *s, size_t n, size_t max, bool upper, const char *extra)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool an = upper ? is_alnum(c) : is_lower_alnum(c);
		if (!an && (c == '\0' || !strchr(extra, c)))
			return false;
		if (!an && (i == 0 || i == n - 1))
			return false;
	}
	return true;
}

bool sc_peer_valid_ns(const char *s, size_t n)
{
	return valid_name(s, n, SC_PEER_NAME_MAX, false, "-");
}

bool sc_peer_valid_workload(const char *s, size_t n)
{
	return valid_name(s, n, SC_PEER_NAME_MAX, true, "-_.");
}

bool sc_peer_valid_sa(const char *s, size_t n)
{
	return valid_name(s, n, SC_PEER_SA_MAX, false, "-.");
}

const char *sc_peer_strerror(int err)
{
	switch (err) {
	case SC_PEER_OK:
		return "ok";
	case SC_PEER_E_OVERSIZED:
		return "oversized";
	case SC_PEER_E_REPEATED:
		return "repeated";
	case SC_PEER_E_MISMATCH:
		return "mismatch";
	default:
		return "malformed";
	}
}

/*
 * Kubernetes' random suffixes (pod-template-hash, the 5 characters of generateName) use
 * this alphabet: consonants and digits without vowels, 0, 1 and 3, so they never spell
 * a word; a name segment outside it is part of the owner's name.
 */
static bool all_safe(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!strchr("bcdfghjklmnpqrstvwxz2456789", s[i]) || s[i] == '\0')
			return false;
	}
	return true;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return n > 0;
}

/* The last "-segment" of s[0..n): its start, or NULL when there is no dash (or a leading one). */
static const char *last_segment(const char *s, size_t n)
{
	for (size_t i = n; i > 0; i--) {
		if (s[i - 1] == '-')
			return i - 1 > 0 ? s + i : NULL;
	}
	return NULL;
}

size_t sc_peer_workload_from_pod(const char *pod, char *out, size_t outsz)
{
	size_t n = pod ? strlen(pod) : 0;
	const char *seg;

	if (outsz)
		out[0] = '\0';
	if (!outsz || !valid_name(pod, n, 253, false, "-."))
		return 0;
	seg = last_segment(pod, n);
	if (seg && n - (size_t)(seg - pod) == 5 && all_safe(seg, 5) && !all_digits(seg, 5)) {
		/* generateName's suffix: DaemonSet, Job, or a ReplicaSet's pod. */
		n = (size_t)(seg - pod) - 1;
		seg = last_segment(pod, n);
		if (seg) {
			size_t sl = n - (size_t)(seg - pod);
			/* A Deployment's pod-template-hash, or a CronJob's schedule time. */
			if ((sl >= 6 && sl <= 10 && all_safe(seg, sl)) ||
			    (sl >= 8 && sl <= 12 && all_digits(seg, sl)))
				n = (size_t)(seg - pod) - 1;
		}
	} else if (seg && n - (size_t)(seg - pod) <= 5 &&
		   all_digits(seg, n - (size_t)(seg - pod))) {
		n = (size_t)(seg - pod) - 1; /* a StatefulSet's ordinal */
	}
	if (n > SC_PEER_NAME_MAX)
		n = SC_PEER_NAME_MAX;
	while (n > 0 && !is_lower_alnum(pod[n - 1]))
		n--; /* cut inside a name: end on an alphanumeric */
	if (n >= outsz)
		return 0;
	memcpy(out, pod, n);
	out[n] = '\0';
	return n;
}

static void set_part(char *dst, size_t dstsz, const char *v, bool (*ok)(const char *, size_t))
{
	size_t n = v ? strlen(v) : 0;

	if (v && n < dstsz && ok(v, n))
		memcpy(dst, v, n + 1);
	else
		memcpy(dst, SC_PEER_UNKNOWN, sizeof(SC_PEER_UNKNOWN));
}

void sc_peer_self_derive(const char *pod_name, const char *ns, const char *sa,
			 const struct policy_labels *labels, struct sc_peer_self *self)
{
	const char *wl = labels ? policy_labels_get(labels, "app.kubernetes.io/name") : NULL;
	char owner[SC_PEER_NAME_MAX + 1];

	memset(self, 0, sizeof(*self));
	if (!wl || !sc_peer_valid_workload(wl, strlen(wl)))
		wl = labels ? policy_labels_get(labels, "app") : NULL;
	if (!wl || !sc_peer_valid_workload(wl, strlen(wl)))
		wl = sc_peer_workload_from_pod(pod_name, owner, sizeof(owner)) ? owner : NULL;
	set_part(self->id.ns, sizeof(self->id.ns), ns, sc_peer_valid_ns);
	set_part(self->id.workload, sizeof(self->id.workload), wl, sc_peer_valid_workload);
	set_part(self->id.sa, sizeof(self->id.sa), sa, sc_peer_valid_sa);
	self->value_len = sc_peer_encode(&self->id, self->value, sizeof(self->value));
}

size_t sc_peer_encode(const struct sc_peer_id *id, char *out, size_t outsz)
{
	size_t nl = strnlen(id->ns, sizeof(id->ns)),
	       wl = strnlen(id->workload, sizeof(id->workload)),
	       sl = strnlen(id->sa, sizeof(id->sa)), total = 3 + nl + 4 + wl + 4 + sl;
	char *p = out;

	if (outsz)
		out[0] = '\0';
	if (total >= outsz || !sc_peer_valid_ns(id->ns, nl) ||
	    !sc_peer_valid_workload(id->workload, wl) || !sc_peer_valid_sa(id->sa, sl))
		return 0;
	memcpy(p, "ns=", 3), p += 3;
	memcpy(p, id->ns, nl), p += nl;
	memcpy(p, ";wl=", 4), p += 4;
	memcpy(p, id->workload, wl), p += wl;
	memcpy(p, ";sa=", 4), p += 4;
	memcpy(p, id->sa, sl), p += sl;
	*p = '\0';
	return total;
}

size_t sc_peer_self_nv(const struct sc_peer_self *self, nghttp2_nv *nv)
{
	if (!self || !self->value_len)
		return 0;
	*nv = (nghttp2_nv){(uint8_t *)SC_PEER_HEADER, (uint8_t *)(uintptr_t)self->value,
			   SC_PEER_HEADER_LEN, self->value_len,
			   NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
	return 1;
}

static void set_unknown(struct sc_peer_id *id)
{
	memcpy(id->ns, SC_PEER_UNKNOWN, sizeof(SC_PEER_UNKNOWN));
	memcpy(id->workload, SC_PEER_UNKNOWN, sizeof(SC_PEER_UNKNOWN));
	memcpy(id->sa, SC_PEER_UNKNOWN, sizeof(SC_PEER_UNKNOWN));
}

/*
 * Take "<key>=<value>" from *p (up to end), value up to the next ';' (or end when last);
 * checks the charset with ok and copies into dst. Returns false on any mismatch.
 */
static bool take(const char **p, const char *end, const char *key, bool last, char *dst,
		 size_t dstsz, bool (*ok)(const char *, size_t))
{
	size_t kl = strlen(key), n = 0;
	const char *v;

	if ((size_t)(end - *p) < kl || memcmp(*p, key, kl) != 0)
		return false;
	v = *p + kl;
	while (v + n < end && v[n] != ';')
		n++;
	if ((last && v + n != end) || (!last && v + n == end))
		return false;
	if (n >= dstsz || !ok(v, n))
		return false;
	memcpy(dst, v, n);
	dst[n] = '\0';
	*p = v + n + (last ? 0 : 1);
	return true;
}

int sc_peer_decode(const uint8_t *v, size_t n, struct sc_peer_id *id)
{
	const char *p = (const char *)v, *end = p + n;

	if (n > SC_PEER_VALUE_MAX) {
		set_unknown(id);
		return SC_PEER_E_OVERSIZED;
	}
	if (!take(&p, end, "ns=", false, id->ns, sizeof(id->ns), sc_peer_valid_ns) ||
	    !take(&p, end, "wl=", false, id->workload, sizeof(id->workload),
		  sc_peer_valid_workload) ||
	    !take(&p, end, "sa=", true, id->sa, sizeof(id->sa), sc_peer_valid_sa)) {
		set_unknown(id);
		return SC_PEER_E_MALFORMED;
	}
	return SC_PEER_OK;
}

bool sc_peer_is_header(const uint8_t *name, size_t n)
{
	return n == SC_PEER_HEADER_LEN && memcmp(name, SC_PEER_HEADER, n) == 0;
}

size_t sc_peer_strip_nv(nghttp2_nv *nv, size_t n, const nghttp2_nv **first, size_t *removed)
{
	size_t out = 0, gone = 0;
	nghttp2_nv keep_first = {0};

	for (size_t i = 0; i < n; i++) {
		if (sc_peer_is_header(nv[i].name, nv[i].namelen)) {
			if (gone++ == 0)
				keep_first = nv[i];
			continue;
		}
		nv[out++] = nv[i];
	}
	/* The first removed field is parked just past the kept ones, so *first stays valid. */
	if (gone)
		nv[out] = keep_first;
	if (first)
		*first = gone ? &nv[out] : NULL;
	if (removed)
		*removed = gone;
	return out;
}

int sc_peer_from_fields(const uint8_t *v, size_t vlen, size_t count, struct sc_peer_id *id,
			bool *present)
{
	if (present)
		*present = count > 0;
	if (count == 0) {
		set_unknown(id);
		return SC_PEER_OK;
	}
	if (count > 1) {
		set_unknown(id);
		return SC_PEER_E_REPEATED;
	}
	return sc_peer_decode(v, vlen, id);
}

static bool is_ipv4(const char *s, size_t n)
{
	size_t dots = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.')
			dots++;
		else if (s[i] < '0' || s[i] > '9')
			return false;
	}
	return dots == 3;
}

size_t sc_peer_service_from_authority(const char *a, size_t n, char *out, size_t outsz)
{
	size_t hl = n, i;

	if (outsz <= SC_PEER_SERVICE_MAX) {
		if (outsz)
			out[0] = '\0';
		return 0;
	}
	/* "[v6]:port" or "[v6]": an IP literal, never a label. */
	if (!a || n == 0 || a[0] == '[')
		goto unknown;
	for (i = 0; i < n; i++) {
		if (a[i] == ':') {
			hl = i;
			break;
		}
	}
	if (hl < n) {
		/* A port: 1..5 digits and nothing after it. */
		if (!all_digits(a + hl + 1, n - hl - 1) || n - hl - 1 > 5)
			goto unknown;
	}
	if (hl > 0 && a[hl - 1] == '.')
		hl--; /* "server.demo.svc.cluster.local." */
	if (hl == 0 || hl > SC_PEER_SERVICE_MAX || is_ipv4(a, hl))
		goto unknown;
	for (i = 0; i < hl; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!is_lower_alnum(c) && c != '-' && c != '.')
			goto unknown;
		if (c == '.' && (i == 0 || out[i - 1] == '.'))
			goto unknown;
		out[i] = c;
	}
	if (!is_lower_alnum(out[hl - 1]) || out[0] == '-')
		goto unknown;
	out[hl] = '\0';
	return hl;
unknown:
	memcpy(out, SC_PEER_UNKNOWN, sizeof(SC_PEER_UNKNOWN));
	return sizeof(SC_PEER_UNKNOWN) - 1;
}
