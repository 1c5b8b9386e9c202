/*
 * AdmissionReview decoding, dispatch to validate.c / inject.c, and response encoding
 * (see review.h). Everything the API server can send us is untrusted input: every field
 * is type-checked before use, and any request with a uid is answered with a review.
 */
#include "webhook/review.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "webhook/inject.h"
#include "webhook/validate.h"
#include "webhook/verdict.h"

#define API_V1 "admission.k8s.io/v1"
#define API_V1BETA1 "admission.k8s.io/v1beta1"

/* Truncating copy that stays valid UTF-8 (the copies end up in JSON log lines). */
static void copy(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "");
	wh_utf8_sanitize(dst);
}

/* A plain-text answer for a request we cannot answer with a review. */
static int text_answer(int status, char **resp, size_t *resp_len, bool *is_json,
		       struct wh_review_info *info, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int text_answer(int status, char **resp, size_t *resp_len, bool *is_json,
		       struct wh_review_info *info, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	*is_json = false;
	if (n < 0) {
		*resp = NULL;
		*resp_len = 0;
		return 500;
	}
	wh_utf8_sanitize(s);
	copy(info->message, sizeof(info->message), s);
	info->reason = "bad-request";
	*resp = s;
	*resp_len = (size_t)n;
	return status;
}

static char *base64(const char *data, size_t len)
{
	size_t out_len = 4 * ((len + 2) / 3) + 1;
	char *out;

	if (len > (size_t)INT32_MAX / 2)
		return NULL;
	out = malloc(out_len);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

/* Append s to out as a JSON string (quotes included); s is valid UTF-8 (it came from jansson). */
static char *put_json_string(char *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	*out++ = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			*out++ = '\\';
			*out++ = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			memcpy(out, "\\u00", 4);
			out[4] = hex[ch >> 4];
			out[5] = hex[ch & 15];
			out += 6;
		} else {
			*out++ = (char)ch;
		}
	}
	*out++ = '"';
	return out;
}

/* json_dump_callback() sink: a caller's buffer, moved to the heap if it fills up. */
struct dump_buf {
	char *p;
	size_t len, cap;
	bool heap;
};

static int dump_put(const char *data, size_t n, void *arg)
{
	struct dump_buf *b = arg;

	if (n > b->cap - b->len) {
		size_t cap = b->cap;
		char *p;

		while (n > cap - b->len) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		p = b->heap ? realloc(b->p, cap) : malloc(cap);
		if (!p)
			return -1;
		if (!b->heap)
			memcpy(p, b->p, b->len);
		b->p = p;
		b->cap = cap;
		b->heap = true;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

/* Append the JSON string for s[0..n) (quotes included) to b. */
static int put_escaped(struct dump_buf *b, const char *s, size_t n)
{
	const char *run = s, *end = s + n;
	char esc[8];

	if (dump_put("\"", 1, b))
		return -1;
	for (; s < end; s++) {
		unsigned char ch = (unsigned char)*s;
		int len = 2;

		if (ch != '"' && ch != '\\' && ch >= 0x20 && ch != 0x7f)
			continue;
		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
		} else {
			len = snprintf(esc, sizeof(esc), "\\u%04x", ch);
		}
		if (dump_put(run, (size_t)(s - run), b) || dump_put(esc, (size_t)len, b))
			return -1;
		run = s + 1;
	}
	if (dump_put(run, (size_t)(s - run), b))
		return -1;
	return dump_put("\"", 1, b);
}

/*
 * Dump the patch compact, as json_dump_callback() would, except that the prepared proxy
 * container (the largest part of every patch, see wh_inject_prepare()) is copied from its
 * text dumped once at startup. The patch's own nesting is shallow; below `depth` 8 (and for
 * every other leaf) jansson dumps.
 */
static int dump_patch(const struct wh_config *c, const json_t *v, struct dump_buf *b, int depth)
{
	size_t i;

	if (c->proxy_container_json && v == c->proxy_container)
		return dump_put(c->proxy_container_json, strlen(c->proxy_container_json), b);
	if (depth < 8 && json_is_array(v)) {
		if (dump_put("[", 1, b))
			return -1;
		for (i = 0; i < json_array_size(v); i++) {
			if ((i && dump_put(",", 1, b)) ||
			    dump_patch(c, json_array_get(v, i), b, depth + 1))
				return -1;
		}
		return dump_put("]", 1, b);
	}
	if (depth < 8 && json_is_object(v)) {
		/* Insertion order, as json_dumps without JSON_SORT_KEYS. */
		void *it = json_object_iter((json_t *)v);

		if (dump_put("{", 1, b))
			return -1;
		for (i = 0; it; i++, it = json_object_iter_next((json_t *)v, it)) {
			if ((i && dump_put(",", 1, b)) ||
			    put_escaped(b, json_object_iter_key(it),
					json_object_iter_key_len(it)) ||
			    dump_put(":", 1, b) ||
			    dump_patch(c, json_object_iter_value(it), b, depth + 1))
				return -1;
		}
		return dump_put("}", 1, b);
	}
	return json_dump_callback(v, dump_put, b, JSON_COMPACT | JSON_ENCODE_ANY);
}

/*
 * The usual answer (allowed, no warnings) written straight into one buffer: the base64
 * patch would otherwise be copied into a jansson string and scanned again by json_dumps.
 * Same document as review_response() builds. NULL on ENOMEM.
 */
static char *review_text_allowed(const struct wh_config *c, const char *api_version,
				 const char *uid, const json_t *patch, size_t *len)
{
	/* A typical patch is ~3 KB: dumped on the stack, no allocation (and no realloc chain
	 * whose large requests make glibc consolidate the freed jansson nodes each time). */
	char stack[16384];
	struct dump_buf pt = {.p = stack, .cap = sizeof(stack)};
	char *out = NULL, *p;
	size_t b64len = 0, n;
	bool have_patch = patch && json_array_size(patch);

	if (have_patch) {
		if (dump_patch(c, patch, &pt, 0) != 0 || pt.len > (size_t)INT32_MAX / 2)
			goto out;
		b64len = 4 * ((pt.len + 2) / 3);
	}
	/* Fixed text < 160 bytes; an escaped uid byte takes at most 6. */
	n = 160 + strlen(api_version) + 6 * strlen(uid) + b64len + 1;
	out = malloc(n);
	if (!out)
		goto out;
	p = out + sprintf(out,
			  "{\"apiVersion\":\"%s\",\"kind\":\"AdmissionReview\","
			  "\"response\":{\"uid\":",
			  api_version);
	p = put_json_string(p, uid);
	p = stpcpy(p, ",\"allowed\":true");
	if (have_patch) {
		p = stpcpy(p, ",\"patchType\":\"JSONPatch\",\"patch\":\"");
		p += EVP_EncodeBlock((unsigned char *)p, (const unsigned char *)pt.p, (int)pt.len);
		*p++ = '"';
	}
	p = stpcpy(p, "}}");
	*len = (size_t)(p - out);
out:
	if (pt.heap)
		free(pt.p);
	return out;
}

/* The review response for verdict v. New reference or NULL (ENOMEM). */
static json_t *review_response(const char *api_version, const char *uid, const struct wh_verdict *v)
{
	json_t *resp = json_pack("{s:s, s:b}", "uid", uid, "allowed", v->allowed);
	json_t *review = NULL;
	char *patch_text = NULL, *patch_b64 = NULL;

	if (!resp)
		return NULL;
	if (!v->allowed &&
	    json_object_set_new(resp, "status",
				json_pack("{s:i, s:s}", "code", v->code ? v->code : 403, "message",
					  v->message ? v->message : "denied")))
		goto fail;
	if (v->warnings && json_array_size(v->warnings) &&
	    json_object_set(resp, "warnings", v->warnings))
		goto fail;
	if (v->allowed && v->patch && json_array_size(v->patch)) {
		patch_text = json_dumps(v->patch, JSON_COMPACT);
		patch_b64 = patch_text ? base64(patch_text, strlen(patch_text)) : NULL;
		if (!patch_b64 ||
		    json_object_set_new(resp, "patchType", json_string("JSONPatch")) ||
		    json_object_set_new(resp, "patch", json_string(patch_b64)))
			goto fail;
	}
	review = json_pack("{s:s, s:s, s:O}", "apiVersion", api_version, "kind", "AdmissionReview",
			   "response", resp);
fail:
	json_decref(resp);
	free(patch_text);
	free(patch_b64);
	return review;
}

static bool is_core(const json_t *kind)
{
	const json_t *g = json_object_get(kind, "group");
	return !g || json_is_null(g) || (json_is_string(g) && !*json_string_value(g));
}

/* Judge the request; fills v. Returns 0 or -ENOMEM. */
static int judge(const struct wh_config *c, enum wh_route route, const json_t *req,
		 struct wh_review_info *info, struct wh_verdict *v)
{
	const json_t *kind = json_object_get(req, "kind");
	const json_t *obj = json_object_get(req, "object");
	const char *sub = json_string_value(json_object_get(req, "subResource"));
	const char *op = info->operation;
	const char *k = info->kind;

	if (!*k)
		return wh_verdict_deny(v, 400, "request.kind.kind is missing");
	if (!*op)
		return wh_verdict_deny(v, 400, "request.operation is missing");
	if (sub && *sub) {
		v->reason = "subresource";
		return 0;
	}
	if (!strcmp(op, "DELETE") || !strcmp(op, "CONNECT")) {
		v->reason = "operation-ignored";
		return 0;
	}
	if (strcmp(op, "CREATE") && strcmp(op, "UPDATE"))
		return wh_verdict_deny(v, 400,
				       "request.operation \"%s\" is not CREATE, UPDATE, "
				       "DELETE or CONNECT",
				       op);
	if (!json_is_object(obj))
		return wh_verdict_deny(v, 400, "request.object is %s; a %s %s needs the object",
				       obj ? "not an object" : "missing", op, k);
	if (!is_core(kind)) {
		v->reason = "kind-ignored";
		return 0;
	}
	if (route == WH_ROUTE_VALIDATE) {
		if (wh_config_namespace_excluded(c, info->ns)) {
			v->reason = "excluded-namespace";
			return 0;
		}
		if (!strcmp(k, "Service"))
			return wh_validate_service(c, obj, v);
		if (!strcmp(k, "ConfigMap"))
			return wh_validate_configmap(c, obj, v);
		v->reason = "kind-ignored";
		return 0;
	}
	if (strcmp(k, "Pod") != 0) {
		v->reason = "kind-ignored";
		return 0;
	}
	/* Containers cannot be added to a running pod: only CREATE is injected. */
	if (strcmp(op, "CREATE") != 0) {
		v->reason = "update-not-injected";
		return 0;
	}
	return wh_inject_pod(c, obj, info->ns, v);
}

int wh_review_handle(const struct wh_config *c, enum wh_route route, const char *body, size_t len,
		     char **resp, size_t *resp_len, bool *resp_is_json, struct wh_review_info *info)
{
	json_t *root = NULL, *review = NULL;
	const json_t *req, *md;
	const char *api, *kind, *uid, *name;
	json_error_t jerr;
	struct wh_verdict v;
	int status = 500;

	memset(info, 0, sizeof(*info));
	info->reason = "error";
	*resp = NULL;
	*resp_len = 0;
	*resp_is_json = false;
	wh_verdict_init(&v);

	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		status = text_answer(400, resp, resp_len, resp_is_json, info,
				     "malformed JSON at line %d column %d: %s", jerr.line,
				     jerr.column, jerr.text);
		goto out;
	}
	api = json_string_value(json_object_get(root, "apiVersion"));
	kind = json_string_value(json_object_get(root, "kind"));
	req = json_object_get(root, "request");
	if (!json_is_object(root) || !api || (strcmp(api, API_V1) && strcmp(api, API_V1BETA1))) {
		status = text_answer(400, resp, resp_len, resp_is_json, info,
				     "not an AdmissionReview: apiVersion must be " API_V1
				     " or " API_V1BETA1);
		goto out;
	}
	if (!kind || strcmp(kind, "AdmissionReview")) {
		status = text_answer(400, resp, resp_len, resp_is_json, info,
				     "not an AdmissionReview: kind must be AdmissionReview");
		goto out;
	}
	if (!json_is_object(req)) {
		status = text_answer(400, resp, resp_len, resp_is_json, info,
				     "AdmissionReview has no request object");
		goto out;
	}
	uid = json_string_value(json_object_get(req, "uid"));
	if (!uid || !*uid) {
		status = text_answer(400, resp, resp_len, resp_is_json, info,
				     "AdmissionReview request has no uid to answer to");
		goto out;
	}

	copy(info->uid, sizeof(info->uid), uid);
	copy(info->kind, sizeof(info->kind),
	     json_string_value(json_object_get(json_object_get(req, "kind"), "kind")));
	copy(info->operation, sizeof(info->operation),
	     json_string_value(json_object_get(req, "operation")));
	copy(info->ns, sizeof(info->ns), json_string_value(json_object_get(req, "namespace")));
	md = json_object_get(json_object_get(req, "object"), "metadata");
	name = json_string_value(json_object_get(md, "name"));
	if (!name || !*name)
		name = json_string_value(json_object_get(req, "name"));
	if (name && *name) {
		copy(info->name, sizeof(info->name), name);
	} else if ((name = json_string_value(json_object_get(md, "generateName")))) {
		snprintf(info->name, sizeof(info->name), "%s*", name);
	}
	if (!info->ns[0])
		copy(info->ns, sizeof(info->ns),
		     json_string_value(json_object_get(md, "namespace")));

	if (judge(c, route, req, info, &v) != 0)
		goto out; /* ENOMEM: 500 */
	if (v.allowed && !(v.warnings && json_array_size(v.warnings))) {
		*resp = review_text_allowed(c, api, uid, v.patch, resp_len);
	} else {
		review = review_response(api, uid, &v);
		*resp = review ? json_dumps(review, JSON_COMPACT) : NULL;
		*resp_len = *resp ? strlen(*resp) : 0;
	}
	if (!*resp)
		goto out;
	*resp_is_json = true;
	info->reviewed = true;
	info->allowed = v.allowed;
	info->patched = v.allowed && v.patch && json_array_size(v.patch) > 0;
	if (v.allowed)
		info->reason = v.reason;
	else if (v.code == 400)
		info->reason = "bad-object";
	else
		info->reason = strcmp(v.reason, "allowed") ? v.reason : "denied";
	if (v.message)
		copy(info->message, sizeof(info->message), v.message);
	else if (v.warnings && json_array_size(v.warnings))
		copy(info->message, sizeof(info->message),
		     json_string_value(json_array_get(v.warnings, 0)));
	status = 200;
out:
	wh_verdict_cleanup(&v);
	json_decref(review);
	json_decref(root);
	return status;
}
