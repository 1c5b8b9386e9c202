/*
 * webhook.yaml parsing (see config.h). libyaml loads the document into a node tree; a
 * small schema walk below checks every key, type and range and reports the node's
 * position. Nothing here touches the network or logs.
 */
#include "webhook/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "common/fileio.h"
#include "webhook/outbound.h"
#include "webhook/tokenreview.h"

static const char *const builtin_excluded[] = {"kube-system", "kube-public", "kube-node-lease"};

int wh_config_init(struct wh_config *c)
{
	const char *ns = getenv("POD_NAMESPACE");

	memset(c, 0, sizeof(*c));
	c->namespace_ = strdup(ns && *ns ? ns : "grpcguard-system");
	c->validation_mode = WH_MODE_ENFORCE;
	c->image = strdup("grpcguard/grpcguard-sidecar:0.1.0");
	c->pull_policy = strdup("IfNotPresent");
	c->native_sidecar = true;
	c->intercept_cni = false;
	c->proxy_port = 15006;
	c->admin_port = 15020;
	c->proxy_uid = 1337;
	c->policy_configmap = strdup("grpcguard-policy");
	c->log_level = strdup("info");
	c->extra_annotations = json_object();
	c->resources = json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "requests", "cpu", "10m", "memory",
				 "16Mi", "limits", "cpu", "1", "memory", "64Mi");
	c->max_body_bytes = WH_DEFAULT_MAX_BODY_BYTES;
	c->max_connections = 1024;
	c->connection_timeout_s = 10;
	c->identity_enabled = false;
	c->trust_domain = strdup("cluster.local");
	c->cert_lifetime_s = 86400;
	c->ca_cert_file = strdup("/etc/grpcguard/identity-ca/tls.crt");
	c->ca_key_file = strdup("/etc/grpcguard/identity-ca/tls.key");
	c->token_review_ca_file = strdup(WH_DEFAULT_SA_DIR "/ca.crt");
	c->token_review_token_file = strdup(WH_DEFAULT_SA_DIR "/token");
	c->token_review_timeout_ms = 5000;
	c->rl_source_per_minute = 60;
	c->rl_source_burst = 20;
	c->rl_identity_per_minute = 10;
	c->rl_identity_burst = 5;
	c->ca_bundle_configmap = strdup("grpcguard-ca");
	if (!c->trust_domain || !c->ca_cert_file || !c->ca_key_file || !c->token_review_ca_file ||
	    !c->token_review_token_file || !c->ca_bundle_configmap)
		return -ENOMEM;
	if (!c->namespace_ || !c->image || !c->pull_policy || !c->policy_configmap ||
	    !c->log_level || !c->extra_annotations || !c->resources)
		return -ENOMEM;
	return 0;
}

void wh_config_cleanup(struct wh_config *c)
{
	free(c->namespace_);
	free(c->image);
	free(c->pull_policy);
	free(c->policy_configmap);
	free(c->log_level);
	for (size_t i = 0; i < c->nexclude_namespaces; i++)
		free(c->exclude_namespaces[i]);
	free(c->exclude_namespaces);
	json_decref(c->extra_annotations);
	json_decref(c->resources);
	json_decref(c->proxy_container);
	free(c->proxy_container_json);
	free(c->trust_domain);
	free(c->ca_cert_file);
	free(c->ca_key_file);
	free(c->ca_bundle_file);
	free(c->token_review_url);
	free(c->token_review_ca_file);
	free(c->token_review_token_file);
	free(c->ca_address);
	free(c->ca_bundle_configmap);
	memset(c, 0, sizeof(*c));
}

bool wh_config_namespace_excluded(const struct wh_config *c, const char *ns)
{
	if (!ns)
		return false;
	for (size_t i = 0; i < sizeof(builtin_excluded) / sizeof(builtin_excluded[0]); i++) {
		if (strcmp(ns, builtin_excluded[i]) == 0)
			return true;
	}
	if (c->namespace_ && strcmp(ns, c->namespace_) == 0)
		return true;
	for (size_t i = 0; i < c->nexclude_namespaces; i++) {
		if (strcmp(ns, c->exclude_namespaces[i]) == 0)
			return true;
	}
	return false;
}

/* ---- schema walk --------------------------------------------------------------- */

struct walk {
	yaml_document_t *doc;
	const char *name;
	char *err;
	size_t errlen;
};

static int fail(struct walk *w, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct walk *w, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(w->err, w->errlen, "%s:%lu:%lu: %s: %s", w->name,
		 (unsigned long)n->start_mark.line + 1, (unsigned long)n->start_mark.column + 1,
		 path, msg);
	return -EINVAL;
}

static const char *scalar(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A plain (unquoted) null: "", "~", "null". */
static bool is_null(const yaml_node_t *n)
{
	const char *s = scalar(n);

	if (!s || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static int get_string(struct walk *w, const yaml_node_t *n, const char *path, char **out)
{
	const char *s = scalar(n);
	char *dup;

	if (!s || is_null(n))
		return fail(w, n, path, "expected a string");
	dup = strdup(s);
	if (!dup)
		return -ENOMEM;
	free(*out);
	*out = dup;
	return 0;
}

static int get_enum(struct walk *w, const yaml_node_t *n, const char *path,
		    const char *const *allowed, size_t nallowed, size_t *idx)
{
	const char *s = scalar(n);
	char list[256] = "";

	for (size_t i = 0; s && i < nallowed; i++) {
		if (strcmp(s, allowed[i]) == 0) {
			*idx = i;
			return 0;
		}
	}
	for (size_t i = 0; i < nallowed; i++) {
		strncat(list, i ? " | " : "", sizeof(list) - strlen(list) - 1);
		strncat(list, allowed[i], sizeof(list) - strlen(list) - 1);
	}
	return fail(w, n, path, "\"%s\" is not one of %s", s ? s : "(not a scalar)", list);
}

static int get_bool(struct walk *w, const yaml_node_t *n, const char *path, bool *out)
{
	const char *s = scalar(n);

	if (s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))) {
		*out = true;
		return 0;
	}
	if (s && (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))) {
		*out = false;
		return 0;
	}
	return fail(w, n, path, "\"%s\" is not a boolean (use true or false)",
		    s ? s : "(not a scalar)");
}

static int get_uint(struct walk *w, const yaml_node_t *n, const char *path, unsigned long min,
		    unsigned long max, unsigned long *out)
{
	const char *s = scalar(n);
	char *end;
	unsigned long v;

	if (!s || !*s || *s < '0' || *s > '9')
		goto bad;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	return fail(w, n, path, "\"%s\" is not an integer between %lu and %lu inclusive",
		    s ? s : "(not a scalar)", min, max);
}

/* Kubernetes quantity: digits with an optional fraction and suffix (m, Ki, Mi, G, e3...). */
static bool quantity_ok(const char *s)
{
	static const char *const suffixes[] = {"",  "m",  "k",	"M",  "G",  "T",  "P",
					       "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
	const char *p = s;
	bool digits = false;

	while (*p >= '0' && *p <= '9')
		p++, digits = true;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++, digits = true;
	}
	if (!digits)
		return false;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(p, suffixes[i]) == 0)
			return true;
	}
	if ((*p == 'e' || *p == 'E') && p[1]) {
		for (p++; *p; p++) {
			if (*p < '0' || *p > '9')
				return false;
		}
		return true;
	}
	return false;
}

/* Lowercase RFC 1123 label, 1..63 characters. */
static bool dns_label_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	}
	return true;
}

typedef int (*key_fn)(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *path);

struct key {
	const char *name;
	key_fn fn;
};

/*
 * Walk a mapping: each key must be in keys[] and appear once. A null node is an empty
 * mapping (a key written with nothing under it).
 */
static int walk_map(struct walk *w, struct wh_config *c, const yaml_node_t *n, const char *path,
		    const struct key *keys, size_t nkeys)
{
	bool seen[16] = {false};
	char sub[256];
	int rc;

	if (is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return fail(w, n, path, "expected a mapping");
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		const yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		const yaml_node_t *v = yaml_document_get_node(w->doc, p->value);
		const char *ks = k ? scalar(k) : NULL;
		size_t i;

		if (!k || !v || !ks)
			return fail(w, k ? k : n, path, "keys must be strings");
		for (i = 0; i < nkeys; i++) {
			if (strcmp(ks, keys[i].name) == 0)
				break;
		}
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", ks);
		if (i == nkeys) {
			char list[512] = "";
			for (size_t j = 0; j < nkeys; j++) {
				strncat(list, j ? ", " : "", sizeof(list) - strlen(list) - 1);
				strncat(list, keys[j].name, sizeof(list) - strlen(list) - 1);
			}
			return fail(w, k, sub, "unknown key (expected one of: %s)", list);
		}
		if (seen[i])
			return fail(w, k, sub, "duplicate key");
		seen[i] = true;
		rc = keys[i].fn(w, c, v, sub);
		if (rc)
			return rc;
	}
	return 0;
}

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

static int k_namespace(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->namespace_);
	if (rc == 0 && !dns_label_ok(c->namespace_))
		return fail(w, v, p,
			    "\"%s\" is not a namespace name (lowercase letters, digits "
			    "and '-', at most 63)",
			    c->namespace_);
	return rc;
}

static int k_mode(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const char *const modes[] = {"enforce", "warn"};
	size_t i;
	int rc = get_enum(w, v, p, modes, 2, &i);
	if (rc == 0)
		c->validation_mode = i == 0 ? WH_MODE_ENFORCE : WH_MODE_WARN;
	return rc;
}

static int k_validation(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {{"mode", k_mode}};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

static int k_image(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->image);
	if (rc == 0 && (!*c->image || strpbrk(c->image, " \t\n")))
		return fail(w, v, p, "\"%s\" is not an image reference", c->image);
	return rc;
}

static int k_pull(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const char *const pol[] = {"Always", "IfNotPresent", "Never"};
	size_t i;
	int rc = get_enum(w, v, p, pol, 3, &i);
	if (rc == 0) {
		char *s = strdup(pol[i]);
		if (!s)
			return -ENOMEM;
		free(c->pull_policy);
		c->pull_policy = s;
	}
	return rc;
}

static int k_native(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return get_bool(w, v, p, &c->native_sidecar);
}

static int k_ipv4_only(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return get_bool(w, v, p, &c->ipv4_only);
}

static int k_intercept(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const char *const modes[] = {"init", "cni"};
	size_t i;
	int rc = get_enum(w, v, p, modes, 2, &i);
	if (rc == 0)
		c->intercept_cni = i == 1;
	return rc;
}

static int k_uint_field(struct walk *w, const yaml_node_t *v, const char *p, unsigned long min,
			unsigned long max, unsigned *out)
{
	unsigned long x;
	int rc = get_uint(w, v, p, min, max, &x);
	if (rc == 0)
		*out = (unsigned)x;
	return rc;
}

static int k_proxy_port(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 65535, &c->proxy_port);
}

static int k_admin_port(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 65535, &c->admin_port);
}

static int k_uid(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 2147483647, &c->proxy_uid);
}

static int k_policy_cm(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->policy_configmap);
	if (rc == 0 && (!*c->policy_configmap || strlen(c->policy_configmap) > 253 ||
			strpbrk(c->policy_configmap, "/ \t\n")))
		return fail(w, v, p, "\"%s\" is not a ConfigMap name", c->policy_configmap);
	return rc;
}

static int k_log_level(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const char *const lv[] = {"debug", "info", "warn", "error"};
	size_t i;
	int rc = get_enum(w, v, p, lv, 4, &i);
	if (rc == 0) {
		char *s = strdup(lv[i]);
		if (!s)
			return -ENOMEM;
		free(c->log_level);
		c->log_level = s;
	}
	return rc;
}

static int k_exclude(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	size_t n;
	char sub[300];

	if (is_null(v))
		return 0;
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(w, v, p, "expected a list of namespace names");
	n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	for (size_t i = 0; i < c->nexclude_namespaces; i++)
		free(c->exclude_namespaces[i]);
	free(c->exclude_namespaces);
	c->nexclude_namespaces = 0;
	c->exclude_namespaces = calloc(n ? n : 1, sizeof(char *));
	if (!c->exclude_namespaces)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const yaml_node_t *item =
		    yaml_document_get_node(w->doc, v->data.sequence.items.start[i]);
		snprintf(sub, sizeof(sub), "%s[%zu]", p, i);
		if (!item || !scalar(item) || !dns_label_ok(scalar(item)))
			return fail(w, item ? item : v, sub, "expected a namespace name");
		c->exclude_namespaces[i] = strdup(scalar(item));
		if (!c->exclude_namespaces[i])
			return -ENOMEM;
		c->nexclude_namespaces = i + 1;
	}
	return 0;
}

/* A mapping of string keys to scalar values into a new JSON object (duplicates rejected). */
static int string_map(struct walk *w, const yaml_node_t *v, const char *p, bool quantities,
		      json_t **out)
{
	json_t *obj = json_object();
	char sub[300];

	if (!obj)
		return -ENOMEM;
	if (is_null(v))
		goto done;
	if (v->type != YAML_MAPPING_NODE) {
		json_decref(obj);
		return fail(w, v, p, "expected a mapping of strings");
	}
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
		const yaml_node_t *val = yaml_document_get_node(w->doc, pr->value);
		const char *ks = k ? scalar(k) : NULL, *vs = val ? scalar(val) : NULL;
		int rc;

		snprintf(sub, sizeof(sub), "%s.%s", p, ks ? ks : "?");
		if (!ks || !*ks)
			rc = fail(w, k ? k : v, p, "keys must be non-empty strings");
		else if (!vs)
			rc = fail(w, val ? val : v, sub, "expected a string value");
		else if (json_object_get(obj, ks))
			rc = fail(w, k, sub, "duplicate key");
		else if (quantities && !quantity_ok(vs))
			rc = fail(w, val, sub, "\"%s\" is not a quantity (e.g. 100m, 1, 64Mi)", vs);
		else
			rc = json_object_set_new(obj, ks, json_string(vs)) ? -ENOMEM : 0;
		if (rc) {
			json_decref(obj);
			return rc;
		}
	}
done:
	*out = obj;
	return 0;
}

static int k_extra_ann(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	json_t *obj = NULL;
	int rc = string_map(w, v, p, false, &obj);
	if (rc == 0) {
		json_decref(c->extra_annotations);
		c->extra_annotations = obj;
	}
	return rc;
}

static int k_resources(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const char *const sections[] = {"requests", "limits"};
	json_t *res = json_object();
	bool seen[2] = {false, false};
	char sub[300];

	if (!res)
		return -ENOMEM;
	if (is_null(v))
		goto done;
	if (v->type != YAML_MAPPING_NODE) {
		json_decref(res);
		return fail(w, v, p, "expected a mapping with requests and/or limits");
	}
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		const yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
		const yaml_node_t *val = yaml_document_get_node(w->doc, pr->value);
		const char *ks = k ? scalar(k) : NULL;
		json_t *m = NULL;
		int rc, i = ks ? (!strcmp(ks, "requests") ? 0
				  : !strcmp(ks, "limits") ? 1
							  : -1)
			       : -1;

		snprintf(sub, sizeof(sub), "%s.%s", p, ks ? ks : "?");
		if (i < 0)
			rc = fail(w, k ? k : v, sub,
				  "unknown key (expected one of: requests, limits)");
		else if (seen[i])
			rc = fail(w, k, sub, "duplicate key");
		else if (!val)
			rc = -EINVAL;
		else
			rc = string_map(w, val, sub, true, &m);
		if (rc == 0) {
			seen[i] = true;
			rc = json_object_set_new(res, sections[i], m) ? -ENOMEM : 0;
		}
		if (rc) {
			json_decref(res);
			return rc;
		}
	}
done:
	json_decref(c->resources);
	c->resources = res;
	return 0;
}

static int k_injection(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {
	    {"image", k_image},
	    {"imagePullPolicy", k_pull},
	    {"nativeSidecar", k_native},
	    {"interceptMode", k_intercept},
	    {"ipv4Only", k_ipv4_only},
	    {"proxyPort", k_proxy_port},
	    {"adminPort", k_admin_port},
	    {"proxyUID", k_uid},
	    {"policyConfigMap", k_policy_cm},
	    {"logLevel", k_log_level},
	    {"excludeNamespaces", k_exclude},
	    {"extraAnnotations", k_extra_ann},
	    {"resources", k_resources},
	};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

static int k_max_body(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	unsigned long x;
	int rc = get_uint(w, v, p, 4096, 64ul * 1024 * 1024, &x);
	if (rc == 0)
		c->max_body_bytes = x;
	return rc;
}

static int k_max_conn(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 65536, &c->max_connections);
}

static int k_conn_timeout(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 3600, &c->connection_timeout_s);
}

static int k_limits(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {
	    {"maxBodyBytes", k_max_body},
	    {"maxConnections", k_max_conn},
	    {"connectionTimeoutSeconds", k_conn_timeout},
	};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

/* ---- identity ------------------------------------------------------------------- */

static int k_id_enabled(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return get_bool(w, v, p, &c->identity_enabled);
}

/* A trust domain: lowercase DNS-like name (letters, digits, '-', '.', '_'), 1..255. */
static int k_trust_domain(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->trust_domain);
	size_t n = rc == 0 ? strlen(c->trust_domain) : 0;

	if (rc)
		return rc;
	if (n == 0 || n > 255 ||
	    strspn(c->trust_domain, "abcdefghijklmnopqrstuvwxyz0123456789-._") != n)
		return fail(w, v, p,
			    "\"%s\" is not a trust domain (lowercase letters, digits, '-', '.', "
			    "'_'; e.g. cluster.local)",
			    c->trust_domain);
	return 0;
}

static int k_lifetime(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 600, 30u * 86400, &c->cert_lifetime_s);
}

static int path_field(struct walk *w, const yaml_node_t *v, const char *p, char **out)
{
	int rc = get_string(w, v, p, out);
	if (rc == 0 && (*out)[0] != '/')
		return fail(w, v, p, "\"%s\" is not an absolute file path", *out);
	return rc;
}

static int k_ca_cert(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return path_field(w, v, p, &c->ca_cert_file);
}

static int k_ca_key(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return path_field(w, v, p, &c->ca_key_file);
}

static int k_ca_bundle(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return path_field(w, v, p, &c->ca_bundle_file);
}

static int k_id_ca(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {
	    {"certFile", k_ca_cert}, {"keyFile", k_ca_key}, {"bundleFile", k_ca_bundle}};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

static int k_tr_url(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->token_review_url);
	if (rc == 0 && (strncmp(c->token_review_url, "https://", 8) != 0 ||
			strpbrk(c->token_review_url, " \t\n")))
		return fail(w, v, p, "\"%s\" is not an https:// URL", c->token_review_url);
	return rc;
}

static int k_tr_ca(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return path_field(w, v, p, &c->token_review_ca_file);
}

static int k_tr_token(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return path_field(w, v, p, &c->token_review_token_file);
}

static int k_tr_timeout(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 100, 30000, &c->token_review_timeout_ms);
}

static int k_id_tr(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {{"url", k_tr_url},
					  {"caFile", k_tr_ca},
					  {"tokenFile", k_tr_token},
					  {"timeoutMs", k_tr_timeout}};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

static int k_rl_spm(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 0, 100000, &c->rl_source_per_minute);
}

static int k_rl_sb(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 100000, &c->rl_source_burst);
}

static int k_rl_ipm(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 0, 100000, &c->rl_identity_per_minute);
}

static int k_rl_ib(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	return k_uint_field(w, v, p, 1, 100000, &c->rl_identity_burst);
}

static int k_id_rl(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {{"perSourcePerMinute", k_rl_spm},
					  {"perSourceBurst", k_rl_sb},
					  {"perIdentityPerMinute", k_rl_ipm},
					  {"perIdentityBurst", k_rl_ib}};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

static int k_ca_address(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->ca_address);
	if (rc == 0 &&
	    (strncmp(c->ca_address, "https://", 8) != 0 || strpbrk(c->ca_address, " \t\n")))
		return fail(w, v, p, "\"%s\" is not an https:// URL", c->ca_address);
	return rc;
}

static int k_ca_bundle_cm(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	int rc = get_string(w, v, p, &c->ca_bundle_configmap);
	if (rc == 0 && (!*c->ca_bundle_configmap || strlen(c->ca_bundle_configmap) > 253 ||
			strpbrk(c->ca_bundle_configmap, "/ \t\n")))
		return fail(w, v, p, "\"%s\" is not a ConfigMap name", c->ca_bundle_configmap);
	return rc;
}

static int k_identity(struct walk *w, struct wh_config *c, const yaml_node_t *v, const char *p)
{
	static const struct key keys[] = {
	    {"enabled", k_id_enabled},
	    {"trustDomain", k_trust_domain},
	    {"certificateLifetimeSeconds", k_lifetime},
	    {"ca", k_id_ca},
	    {"tokenReview", k_id_tr},
	    {"rateLimit", k_id_rl},
	    {"caAddress", k_ca_address},
	    {"caBundleConfigMap", k_ca_bundle_cm},
	};
	return walk_map(w, c, v, p, keys, NKEYS(keys));
}

int wh_config_load_buffer(struct wh_config *c, const char *name, const char *buf, size_t len,
			  char *err, size_t errlen)
{
	static const struct key top[] = {
	    {"namespace", k_namespace}, {"validation", k_validation}, {"injection", k_injection},
	    {"limits", k_limits},	{"identity", k_identity},
	};
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	struct walk w = {.doc = &doc, .name = name, .err = err, .errlen = errlen};
	int rc;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%lu:%lu: not valid YAML: %s", name,
			 (unsigned long)parser.problem_mark.line + 1,
			 (unsigned long)parser.problem_mark.column + 1,
			 parser.problem ? parser.problem : "syntax error");
		yaml_parser_delete(&parser);
		return -EINVAL;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root || is_null(root))
		rc = 0; /* an empty file: every default */
	else if (root->type != YAML_MAPPING_NODE)
		rc = fail(&w, root, "(top level)", "expected a mapping");
	else
		rc = walk_map(&w, c, root, "", top, NKEYS(top));
	if (rc == 0 && c->proxy_port == c->admin_port) {
		snprintf(err, errlen,
			 "%s: injection.proxyPort and injection.adminPort are both %u; "
			 "they must differ",
			 name, c->proxy_port);
		rc = -EINVAL;
	}
	if (rc == 0 && (c->proxy_port == WH_OUTBOUND_PORT || c->admin_port == WH_OUTBOUND_PORT)) {
		/* The outbound listener's port (webhook/outbound.h, init's default). */
		snprintf(err, errlen,
			 "%s: injection.%s is 15001, the sidecar's outbound port; choose another",
			 name, c->proxy_port == WH_OUTBOUND_PORT ? "proxyPort" : "adminPort");
		rc = -EINVAL;
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", name);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

int wh_config_load_file(struct wh_config *c, const char *path, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t n = 0;
	int rc;

	rc = fileio_read_bounded(path, WH_MAX_CONFIG_BYTES, &buf, &n, err, errlen);
	if (rc == 0)
		rc = wh_config_load_buffer(c, path, buf, n, err, errlen);
	free(buf);
	return rc;
}
