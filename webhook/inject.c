/*
 * Pod injection (see inject.h). Istio's injector is the model: the proxy is a native
 * sidecar (an init container with restartPolicy: Always, started before the pod's own
 * init containers and probed before they run), grpcguard-init installs the redirect
 * first, and the pod records what was added in grpcguard.io/status so a second call
 * (reinvocation) adds nothing.
 *
 * Everything is expressed as RFC 6902 "add" operations against the pod as received, so
 * the patch applies whether or not the pod already has the arrays and maps we extend.
 */
#include "webhook/inject.h"
#include "webhook/outbound.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POLICY_MOUNT "/etc/grpcguard/policy"
#define PODINFO_MOUNT "/etc/grpcguard/podinfo"
#define TOKEN_MOUNT "/var/run/secrets/grpcguard/tokens"
#define CA_MOUNT "/etc/grpcguard/ca"

char *wh_json_pointer_escape(const char *key)
{
	size_t n = 0;
	char *out, *o;

	for (const char *p = key; *p; p++)
		n += (*p == '~' || *p == '/') ? 2 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	o = out;
	for (const char *p = key; *p; p++) {
		if (*p == '~') {
			*o++ = '~';
			*o++ = '0';
		} else if (*p == '/') {
			*o++ = '~';
			*o++ = '1';
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* ---- ports ------------------------------------------------------------------------ */

struct portset {
	unsigned char seen[65536 / 8];
	unsigned short list[1024]; /* first-seen order; longer lists collapse to "*" */
	size_t n;
	bool overflow;
};

static void portset_add(struct portset *s, unsigned port)
{
	if (s->seen[port / 8] & (1u << (port % 8)))
		return;
	s->seen[port / 8] |= (unsigned char)(1u << (port % 8));
	if (s->n == sizeof(s->list) / sizeof(s->list[0])) {
		s->overflow = true;
		return;
	}
	s->list[s->n++] = (unsigned short)port;
}

/* "8080,9090" in first-seen order ("" for none): a new string, or NULL on ENOMEM. */
static char *portset_list(const struct portset *s)
{
	char *out, *o;

	out = malloc(s->n * 6 + 1);
	if (!out)
		return NULL;
	o = out;
	*o = '\0';
	for (size_t i = 0; i < s->n; i++)
		o += sprintf(o, "%s%u", i ? "," : "", (unsigned)s->list[i]);
	return out;
}

/* Parse a port-list annotation (name) into *s, or "*" into *star. 0 or -EINVAL with a
 * message. */
static int parse_ports_annotation(const char *name, const char *v, struct portset *s, bool *star,
				  char *err, size_t errlen)
{
	const char *p = v;

	*star = false;
	while (*p == ' ')
		p++;
	if (p[0] == '*') {
		const char *q = p + 1;
		while (*q == ' ')
			q++;
		if (*q == '\0') {
			*star = true;
			return 0;
		}
	}
	for (;;) {
		unsigned long port = 0;
		size_t digits = 0;

		while (*p == ' ')
			p++;
		while (*p >= '0' && *p <= '9' && digits < 6) {
			port = port * 10 + (unsigned long)(*p - '0');
			p++, digits++;
		}
		while (*p == ' ')
			p++;
		if (digits == 0 || digits > 5 || port < 1 || port > 65535 || (*p && *p != ','))
			goto bad;
		portset_add(s, (unsigned)port);
		if (*p == '\0')
			return 0;
		p++; /* ',' */
	}
bad:
	snprintf(err, errlen,
		 "annotation %s: \"%.200s\" is not a port list; use \"*\" or "
		 "comma-separated port numbers 1-65535, e.g. \"8080,9090\"",
		 name, v);
	return -EINVAL;
}

/*
 * The port a probe handler (httpGet / tcpSocket) of container ctr reaches on the pod, or 0:
 * a number, or a name resolved through the container's own ports (as the kubelet does). A
 * handler with a host of its own does not reach the pod; an unknown name cannot work.
 */
static unsigned handler_port(const json_t *ctr, const json_t *handler)
{
	const json_t *port = json_object_get(handler, "port"), *p;
	const char *host = json_string_value(json_object_get(handler, "host"));
	size_t i;

	if (!json_is_object(handler) || (host && *host))
		return 0;
	if (json_is_integer(port)) {
		json_int_t n = json_integer_value(port);
		return n >= 1 && n <= 65535 ? (unsigned)n : 0;
	}
	if (!json_is_string(port))
		return 0;
	json_array_foreach(json_object_get(ctr, "ports"), i, p)
	{
		const char *name = json_string_value(json_object_get(p, "name"));
		const json_t *num = json_object_get(p, "containerPort");

		if (name && strcmp(name, json_string_value(port)) == 0 && json_is_integer(num) &&
		    json_integer_value(num) >= 1 && json_integer_value(num) <= 65535)
			return (unsigned)json_integer_value(num);
	}
	return 0;
}

/*
 * The ports the kubelet's HTTP and TCP probes reach, from every container and init
 * container (liveness, readiness, startup), into s. gRPC probes are left out on purpose:
 * they stay intercepted, and the sidecar allows the gRPC health service unless a DENY
 * names it. The proxy's own ports are not listed (they are never redirected anyway).
 */
static void probe_ports(const struct wh_config *c, const json_t *spec, struct portset *s)
{
	static const char *const lists[] = {"containers", "initContainers"};
	static const char *const probes[] = {"livenessProbe", "readinessProbe", "startupProbe"};
	const json_t *ctr;
	size_t i;

	for (size_t l = 0; l < 2; l++) {
		json_array_foreach(json_object_get(spec, lists[l]), i, ctr)
		{
			for (size_t k = 0; k < 3; k++) {
				const json_t *pr = json_object_get(ctr, probes[k]);
				unsigned ports[2] = {
				    handler_port(ctr, json_object_get(pr, "httpGet")),
				    handler_port(ctr, json_object_get(pr, "tcpSocket"))};

				for (size_t j = 0; j < 2; j++) {
					if (ports[j] && ports[j] != c->proxy_port &&
					    ports[j] != c->admin_port)
						portset_add(s, ports[j]);
				}
			}
		}
	}
}

static bool says_false(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
		     strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0);
}

static bool says_true(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
		     strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0);
}

int wh_inbound_ports(const struct wh_config *c, const json_t *pod, struct wh_inbound *out,
		     char *err, size_t errlen)
{
	const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
	const json_t *ports_ann = json_object_get(ann, WH_ANN_PORTS);
	const json_t *excl_ann = json_object_get(ann, WH_ANN_EXCLUDE_PORTS);
	const json_t *v4_ann = json_object_get(ann, WH_ANN_IPV4_ONLY);
	struct portset *ports = NULL, *excl = NULL, *probes = NULL;
	bool star = true;
	size_t i;
	int rc = -ENOMEM;

	memset(out, 0, sizeof(*out));
	ports = calloc(1, sizeof(*ports));
	excl = calloc(1, sizeof(*excl));
	probes = calloc(1, sizeof(*probes));
	if (!ports || !excl || !probes)
		goto out;
	out->ipv4_only = c->ipv4_only;
	if (v4_ann) {
		if (!says_true(v4_ann) && !says_false(v4_ann)) {
			snprintf(err, errlen, "annotation %s must be \"true\" or \"false\"",
				 WH_ANN_IPV4_ONLY);
			rc = -EINVAL;
			goto out;
		}
		out->ipv4_only = says_true(v4_ann);
	}
	if (ports_ann) {
		if (!json_is_string(ports_ann)) {
			snprintf(err, errlen, "annotation %s must be a string", WH_ANN_PORTS);
			rc = -EINVAL;
			goto out;
		}
		rc = parse_ports_annotation(WH_ANN_PORTS, json_string_value(ports_ann), ports,
					    &star, err, errlen);
		if (rc)
			goto out;
		rc = -EINVAL;
		if (ports->overflow) {
			snprintf(err, errlen,
				 "annotation %s: more than %zu ports; use \"*\" to "
				 "redirect every port",
				 WH_ANN_PORTS, sizeof(ports->list) / sizeof(ports->list[0]));
			goto out;
		}
		for (i = 0; i < ports->n; i++) {
			/* Redirecting the proxy's own ports would loop it or break its probes. */
			if (ports->list[i] == c->proxy_port || ports->list[i] == c->admin_port) {
				snprintf(err, errlen,
					 "annotation %s: port %u is the grpcguard proxy's own "
					 "port; list only the application's ports",
					 WH_ANN_PORTS, (unsigned)ports->list[i]);
				goto out;
			}
		}
	}
	if (excl_ann) {
		bool excl_star = false;

		if (!json_is_string(excl_ann)) {
			snprintf(err, errlen, "annotation %s must be a string",
				 WH_ANN_EXCLUDE_PORTS);
			rc = -EINVAL;
			goto out;
		}
		rc = parse_ports_annotation(WH_ANN_EXCLUDE_PORTS, json_string_value(excl_ann), excl,
					    &excl_star, err, errlen);
		if (rc == 0 && (excl_star || excl->overflow)) {
			snprintf(err, errlen,
				 "annotation %s: list the ports to leave alone (at most %zu); to "
				 "intercept none, opt the pod out with %s: \"false\"",
				 WH_ANN_EXCLUDE_PORTS, sizeof(excl->list) / sizeof(excl->list[0]),
				 WH_ANN_INJECT);
			rc = -EINVAL;
		}
		if (rc)
			goto out;
	}
	/*
	 * Every port by default (Istio's default): a gRPC server on an undeclared or
	 * differently named port is judged too. The kubelet's HTTP and TCP probes are left out
	 * so they keep working; an explicit port list is taken as it is.
	 */
	if (star)
		probe_ports(c, json_object_get(pod, "spec"), probes);
	out->ports = star ? strdup("*") : portset_list(ports);
	out->probe_ports = portset_list(probes);
	for (i = 0; i < excl->n; i++)
		portset_add(probes, excl->list[i]); /* probe ports first, then the annotation's */
	out->exclude = portset_list(probes);
	rc = out->ports && out->probe_ports && out->exclude ? 0 : -ENOMEM;
out:
	if (rc)
		wh_inbound_cleanup(out);
	free(ports);
	free(excl);
	free(probes);
	return rc;
}

void wh_inbound_cleanup(struct wh_inbound *in)
{
	free(in->ports);
	free(in->exclude);
	free(in->probe_ports);
	memset(in, 0, sizeof(*in));
}

/* ---- the containers and volumes we add -------------------------------------------------- */

static json_t *security_context_proxy(const struct wh_config *c)
{
	/* Everything the "restricted" Pod Security Standard asks of a container. */
	return json_pack("{s:I, s:I, s:b, s:b, s:b, s:b, s:{s:[s]}, s:{s:s}}", "runAsUser",
			 (json_int_t)c->proxy_uid, "runAsGroup", (json_int_t)c->proxy_uid,
			 "runAsNonRoot", 1, "readOnlyRootFilesystem", 1, "allowPrivilegeEscalation",
			 0, "privileged", 0, "capabilities", "drop", "ALL", "seccompProfile",
			 "type", "RuntimeDefault");
}

static json_t *probe(const char *path, unsigned port, int period, int failures)
{
	return json_pack("{s:{s:s, s:I}, s:i, s:i, s:i}", "httpGet", "path", path, "port",
			 (json_int_t)port, "periodSeconds", period, "timeoutSeconds", 3,
			 "failureThreshold", failures);
}

/*
 * identity.enabled: the issuer's address and CA bundle as flags (before the trailing
 * --log-level LEVEL), and the mounts of the projected token and the CA bundle ConfigMap.
 * Returns 0 or -ENOMEM.
 */
static int add_identity(const struct wh_config *c, json_t *ctr)
{
	json_t *args = json_object_get(ctr, "args");
	json_t *mounts = json_object_get(ctr, "volumeMounts");
	char *addr = NULL;
	int rc = -ENOMEM;

	if (c->ca_address)
		addr = strdup(c->ca_address);
	else if (asprintf(&addr, "https://grpcguard-webhook.%s.svc:443", c->namespace_) < 0)
		addr = NULL;
	if (!addr)
		return -ENOMEM;
	{
		const char *const flags[] = {"--ca-address", addr, "--ca-cert", CA_MOUNT "/ca.crt"};
		for (size_t i = 0; i < 4; i++) {
			if (json_array_insert_new(args, json_array_size(args) - 2,
						  json_string(flags[i])) != 0)
				goto out;
		}
	}
	if (json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "name", WH_VOLUME_TOKEN,
						    "mountPath", TOKEN_MOUNT, "readOnly", 1)) ||
	    json_array_append_new(mounts, json_pack("{s:s, s:s, s:b}", "name", WH_VOLUME_CA,
						    "mountPath", CA_MOUNT, "readOnly", 1)))
		goto out;
	rc = 0;
out:
	free(addr);
	return rc;
}

static json_t *build_proxy_container(const struct wh_config *c)
{
	char listen[32], admin[32], olisten[32];
	json_t *ctr, *oport;

	/* Dual-stack: init redirects IPv6 too, and the kubelet and Prometheus reach the admin port
	 * on the pod IP of either family. Both programs fall back to IPv4 on a node without IPv6.
	 */
	snprintf(listen, sizeof(listen), "[::]:%u", c->proxy_port);
	snprintf(admin, sizeof(admin), "[::]:%u", c->admin_port);
	ctr = json_pack(
	    "{s:s, s:s, s:s,"
	    " s:[s, s,s, s,s, s,s, s,s, s,s, s,s],"
	    " s:[{s:s, s:I, s:s}, {s:s, s:I, s:s}],"
	    " s:[{s:s, s:{s:{s:s}}}, {s:s, s:{s:{s:s}}}, {s:s, s:{s:{s:s}}},"
	    " {s:s, s:{s:{s:s}}}],"
	    " s:O, s:o, s:o, s:o,"
	    " s:[{s:s, s:s, s:b}, {s:s, s:s, s:b}]}",
	    "name", WH_PROXY_NAME, "image", c->image, "imagePullPolicy", c->pull_policy, "args",
	    "run", "--listen", listen, "--upstream", "original-dst", "--admin", admin, "--policy",
	    POLICY_MOUNT "/policy.yaml", "--pod-labels", PODINFO_MOUNT "/labels", "--log-level",
	    c->log_level, "ports", "name", "gg-inbound", "containerPort", (json_int_t)c->proxy_port,
	    "protocol", "TCP", "name", "http-gg-admin", "containerPort", (json_int_t)c->admin_port,
	    "protocol", "TCP", "env", "name", "POD_NAME", "valueFrom", "fieldRef", "fieldPath",
	    "metadata.name", "name", "POD_NAMESPACE", "valueFrom", "fieldRef", "fieldPath",
	    "metadata.namespace", "name", "POD_IP", "valueFrom", "fieldRef", "fieldPath",
	    "status.podIP", "name", "SERVICE_ACCOUNT", "valueFrom", "fieldRef", "fieldPath",
	    "spec.serviceAccountName", "resources", c->resources, "securityContext",
	    security_context_proxy(c),
	    /* Kubelet holds the app (and later init containers) until the proxy starts. */
	    "startupProbe", probe("/healthz", c->admin_port, 1, 600), "readinessProbe",
	    probe("/readyz", c->admin_port, 2, 30), "volumeMounts", "name", WH_VOLUME_POLICY,
	    "mountPath", POLICY_MOUNT, "readOnly", 1, "name", WH_VOLUME_PODINFO, "mountPath",
	    PODINFO_MOUNT, "readOnly", 1);
	/* Outbound: the listener init's OUTPUT capture redirects to (issue 15). */
	snprintf(olisten, sizeof(olisten), "[::]:%u", WH_OUTBOUND_PORT);
	oport = json_pack("{s:s, s:I, s:s}", "name", "gg-outbound", "containerPort",
			  (json_int_t)WH_OUTBOUND_PORT, "protocol", "TCP");
	if (ctr && (!oport || json_array_append_new(json_object_get(ctr, "ports"), oport) != 0 ||
		    /* before the trailing --log-level LEVEL */
		    json_array_insert_new(json_object_get(ctr, "args"),
					  json_array_size(json_object_get(ctr, "args")) - 2,
					  json_string("--outbound-listen")) != 0 ||
		    json_array_insert_new(json_object_get(ctr, "args"),
					  json_array_size(json_object_get(ctr, "args")) - 2,
					  json_string(olisten)) != 0)) {
		json_decref(ctr);
		return NULL;
	}
	if (!ctr)
		json_decref(oport);
	if (ctr && c->identity_enabled && add_identity(c, ctr) != 0) {
		json_decref(ctr);
		return NULL;
	}
	if (ctr && c->native_sidecar &&
	    json_object_set_new(ctr, "restartPolicy", json_string("Always")) != 0) {
		json_decref(ctr);
		return NULL;
	}
	return ctr;
}

/*
 * New reference to the proxy container: the prepared one when there is one (shared read-only
 * between the server threads; jansson's reference counts are atomic and json_dump does not
 * write to the values it dumps), else a fresh one.
 */
static json_t *proxy_container(const struct wh_config *c)
{
	return c->proxy_container ? json_incref(c->proxy_container) : build_proxy_container(c);
}

int wh_inject_prepare(struct wh_config *c)
{
	json_t *ctr = build_proxy_container(c);
	char *text = ctr ? json_dumps(ctr, JSON_COMPACT) : NULL;

	if (!text) {
		json_decref(ctr);
		return -ENOMEM;
	}
	json_decref(c->proxy_container);
	free(c->proxy_container_json);
	c->proxy_container = ctr;
	c->proxy_container_json = text;
	return 0;
}

/* extra: more init flags (outbound annotations), borrowed, may be NULL. */
static json_t *init_container(const struct wh_config *c, const struct wh_inbound *in,
			      const json_t *extra)
{
	char pp[16], uid[16];
	json_t *ctr, *args;

	snprintf(pp, sizeof(pp), "%u", c->proxy_port);
	snprintf(uid, sizeof(uid), "%u", c->proxy_uid);
	ctr = json_pack("{s:s, s:s, s:s, s:[s, s,s, s,s, s,s], s:O,"
			" s:{s:i, s:i, s:b, s:b, s:b, s:b, s:{s:[s, s], s:[s]}}}",
			"name", WH_INIT_NAME, "image", c->image, "imagePullPolicy", c->pull_policy,
			"args", "init", "--ports", in->ports, "--proxy-port", pp, "--proxy-uid",
			uid, "resources", c->resources, "securityContext", "runAsUser", 0,
			"runAsGroup", 0, "runAsNonRoot", 0, "privileged", 0,
			"allowPrivilegeEscalation", 0, "readOnlyRootFilesystem", 1, "capabilities",
			"add", "NET_ADMIN", "NET_RAW", "drop", "ALL");
	args = json_object_get(ctr, "args");
	if (ctr && in->exclude[0] &&
	    (json_array_append_new(args, json_string("--exclude-inbound-ports")) ||
	     json_array_append_new(args, json_string(in->exclude))))
		goto fail;
	if (ctr && in->ipv4_only && json_array_append_new(args, json_string("--ipv4-only")))
		goto fail;
	if (ctr && extra && json_array_extend(args, (json_t *)extra) != 0)
		goto fail;
	return ctr;
fail:
	json_decref(ctr);
	return NULL;
}

static json_t *volumes(const struct wh_config *c, const char *configmap)
{
	json_t *v = json_pack("[{s:s, s:{s:s, s:b}}, {s:s, s:{s:[{s:s, s:{s:s}}]}}]", "name",
			      WH_VOLUME_POLICY, "configMap", "name", configmap, "optional", 1,
			      "name", WH_VOLUME_PODINFO, "downwardAPI", "items", "path", "labels",
			      "fieldRef", "fieldPath", "metadata.labels");

	/*
	 * identity: the ServiceAccount token the kubelet projects for audience grpcguard (an
	 * hour, rotated at 80 %), and the CA bundle that verifies the issuer. The ConfigMap
	 * is optional so that a namespace without it still starts pods: the proxy then says
	 * that --ca-cert is missing.
	 */
	if (v && c->identity_enabled &&
	    (json_array_append_new(v, json_pack("{s:s, s:{s:[{s:{s:s, s:I, s:s}}]}}", "name",
						WH_VOLUME_TOKEN, "projected", "sources",
						"serviceAccountToken", "audience", "grpcguard",
						"expirationSeconds", (json_int_t)3600, "path",
						"grpcguard-token")) ||
	     json_array_append_new(v, json_pack("{s:s, s:{s:s, s:b, s:[{s:s, s:s}]}}", "name",
						WH_VOLUME_CA, "configMap", "name",
						c->ca_bundle_configmap, "optional", 1, "items",
						"key", "ca.crt", "path", "ca.crt")))) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* ---- patch building ------------------------------------------------------------------ */

/* Append {"op":"add","path":path,"value":value}; value is stolen (NULL: ENOMEM). */
static int op_add(json_t *patch, const char *path, json_t *value)
{
	json_t *op;

	if (!value)
		return -ENOMEM;
	op = json_pack("{s:s, s:s, s:o}", "op", "add", "path", path, "value", value);
	if (!op)
		return -ENOMEM;
	return json_array_append_new(patch, op) ? -ENOMEM : 0;
}

static bool has_container(const json_t *list, const char *name)
{
	size_t i;
	const json_t *ctr;

	json_array_foreach(list, i, ctr)
	{
		const char *n = json_string_value(json_object_get(ctr, "name"));
		if (n && strcmp(n, name) == 0)
			return true;
	}
	return false;
}

/* DNS-1123 subdomain: what a ConfigMap name must be. */
static bool subdomain_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '.'))
			return false;
	}
	return s[n - 1] != '-' && s[n - 1] != '.';
}

/* The annotations we add, skipping the ones the pod already sets (except the status). */
static json_t *annotations_to_add(const struct wh_config *c, const json_t *have,
				  const char *first_app, const char *status)
{
	json_t *add = json_object();
	char port[16];
	const char *k;
	json_t *v;

	if (!add)
		return NULL;
	snprintf(port, sizeof(port), "%u", c->admin_port);
	if (json_object_set_new(add, WH_ANN_STATUS, json_string(status)))
		goto fail;
	if (first_app && !json_object_get(have, "kubectl.kubernetes.io/default-container") &&
	    json_object_set_new(add, "kubectl.kubernetes.io/default-container",
				json_string(first_app)))
		goto fail;
	/* The app's own scrape settings win: Prometheus reads one port per pod. */
	if (!json_object_get(have, "prometheus.io/scrape") &&
	    (json_object_set_new(add, "prometheus.io/scrape", json_string("true")) ||
	     json_object_set_new(add, "prometheus.io/port", json_string(port)) ||
	     json_object_set_new(add, "prometheus.io/path", json_string("/metrics"))))
		goto fail;
	json_object_foreach(c->extra_annotations, k, v)
	{
		if (!json_object_get(have, k) && !json_object_get(add, k) &&
		    json_object_set(add, k, v))
			goto fail;
	}
	return add;
fail:
	json_decref(add);
	return NULL;
}

static int add_annotations(json_t *patch, const json_t *pod, json_t *add /* stolen */)
{
	const json_t *md = json_object_get(pod, "metadata");
	const json_t *have = json_object_get(md, "annotations");
	const char *k;
	json_t *v;
	int rc = 0;

	if (!add)
		return -ENOMEM;
	if (!md)
		return op_add(patch, "/metadata", json_pack("{s:o}", "annotations", add));
	if (!json_is_object(have))
		return op_add(patch, "/metadata/annotations", add);
	json_object_foreach(add, k, v)
	{
		char *esc = wh_json_pointer_escape(k), *path = NULL;
		if (!esc || asprintf(&path, "/metadata/annotations/%s", esc) < 0) {
			path = NULL;
			rc = -ENOMEM;
		} else {
			rc = op_add(patch, path, json_incref(v));
		}
		free(esc);
		free(path);
		if (rc)
			break;
	}
	json_decref(add);
	return rc;
}

/*
 * What the proxy is told about the redirect (shown in its /policy): three env entries
 * appended to the proxy container at ctr_path ("/spec/initContainers/1"), as patch
 * operations, so the proxy container itself stays the same for every pod.
 */
static int add_ports_env(json_t *patch, const char *ctr_path, const struct wh_inbound *in)
{
	const char *env[][2] = {{"GRPCGUARD_INBOUND_PORTS", in->ports},
				{"GRPCGUARD_EXCLUDE_INBOUND_PORTS", in->exclude},
				{"GRPCGUARD_PROBE_PORTS", in->probe_ports}};
	char path[96];

	snprintf(path, sizeof(path), "%s/env/-", ctr_path);
	for (size_t i = 0; i < 3; i++) {
		if (op_add(patch, path,
			   json_pack("{s:s, s:s}", "name", env[i][0], "value", env[i][1])))
			return -ENOMEM;
	}
	return 0;
}

static int build_patch(const struct wh_config *c, const json_t *pod, const struct wh_inbound *in,
		       const json_t *init_extra, const char *configmap, json_t **out)
{
	const json_t *spec = json_object_get(pod, "spec");
	const json_t *inits = json_object_get(spec, "initContainers");
	const json_t *vols = json_object_get(spec, "volumes");
	const char *first_app = json_string_value(
	    json_object_get(json_array_get(json_object_get(spec, "containers"), 0), "name"));
	json_t *patch = json_array(), *status = NULL, *added_init = NULL, *added_ctr = NULL,
	       *vlist = NULL, *v;
	char *status_text = NULL;
	size_t i;
	int rc = -ENOMEM;

	*out = NULL;
	added_init = json_array();
	added_ctr = json_array();
	if (!patch || !added_init || !added_ctr)
		goto out;

	/* Init containers: grpcguard-init, then the native proxy, then the pod's own. */
	{
		json_t *front = json_array();
		if (!front)
			goto out;
		if (!c->intercept_cni) {
			json_array_append_new(front, init_container(c, in, init_extra));
			json_array_append_new(added_init, json_string(WH_INIT_NAME));
		}
		if (c->native_sidecar) {
			json_array_append_new(front, proxy_container(c));
			json_array_append_new(added_init, json_string(WH_PROXY_NAME));
		}
		if (json_array_size(front) != json_array_size(added_init) ||
		    json_array_size(added_init) == 0) {
			bool bad = json_array_size(front) != json_array_size(added_init);
			json_decref(front);
			if (bad)
				goto out;
		} else if (!json_is_array(inits) || json_array_size(inits) == 0) {
			rc = op_add(patch, "/spec/initContainers", front);
			if (rc)
				goto out;
			rc = -ENOMEM;
		} else {
			char path[64];
			json_array_foreach(front, i, v)
			{
				snprintf(path, sizeof(path), "/spec/initContainers/%zu", i);
				if (op_add(patch, path, json_incref(v))) {
					json_decref(front);
					goto out;
				}
			}
			json_decref(front);
		}
	}
	if (!c->native_sidecar) {
		if (op_add(patch, "/spec/containers/-", proxy_container(c)))
			goto out;
		json_array_append_new(added_ctr, json_string(WH_PROXY_NAME));
	}
	/* Volumes. */
	vlist = volumes(c, configmap);
	if (!vlist)
		goto out;
	if (!json_is_array(vols)) {
		if (op_add(patch, "/spec/volumes", json_incref(vlist)))
			goto out;
	} else {
		json_array_foreach(vlist, i, v)
		{
			if (op_add(patch, "/spec/volumes/-", json_incref(v)))
				goto out;
		}
	}

	status = json_pack("{s:s, s:O, s:O, s:[s, s]}", "version", WH_VERSION, "initContainers",
			   added_init, "containers", added_ctr, "volumes", WH_VOLUME_POLICY,
			   WH_VOLUME_PODINFO);
	if (status && c->identity_enabled) {
		json_t *names = json_object_get(status, "volumes");
		if (json_array_append_new(names, json_string(WH_VOLUME_TOKEN)) ||
		    json_array_append_new(names, json_string(WH_VOLUME_CA)))
			goto out;
	}
	status_text = status ? json_dumps(status, JSON_COMPACT) : NULL;
	if (!status_text)
		goto out;
	if (add_annotations(patch, pod,
			    annotations_to_add(
				c, json_object_get(json_object_get(pod, "metadata"), "annotations"),
				first_app, status_text)))
		goto out;
	{
		/*
		 * Last, once the proxy container exists: right after grpcguard-init, or at
		 * the end of the containers.
		 */
		char ctr_path[64];

		if (c->native_sidecar)
			snprintf(ctr_path, sizeof(ctr_path), "/spec/initContainers/%d",
				 c->intercept_cni ? 0 : 1);
		else
			snprintf(ctr_path, sizeof(ctr_path), "/spec/containers/%zu",
				 json_array_size(json_object_get(spec, "containers")));
		if (add_ports_env(patch, ctr_path, in))
			goto out;
	}

	*out = patch;
	patch = NULL;
	rc = 0;
out:
	json_decref(patch);
	json_decref(status);
	json_decref(added_init);
	json_decref(added_ctr);
	json_decref(vlist);
	free(status_text);
	return rc;
}

int wh_inject_pod(const struct wh_config *c, const json_t *pod, const char *ns,
		  struct wh_verdict *v)
{
	const json_t *md = json_object_get(pod, "metadata");
	const json_t *ann = json_object_get(md, "annotations");
	const json_t *labels = json_object_get(md, "labels");
	const json_t *spec = json_object_get(pod, "spec");
	const json_t *containers = json_object_get(spec, "containers");
	const json_t *inits = json_object_get(spec, "initContainers");
	const json_t *cm_ann = json_object_get(ann, WH_ANN_POLICY_CM);
	const char *configmap = c->policy_configmap;
	struct wh_inbound in;
	json_t *out_args = NULL;
	char err[512];
	int rc;

	if (!json_is_object(pod) || (md && !json_is_object(md)) || !json_is_object(spec))
		return wh_verdict_deny(v, 400, "pod: metadata and spec must be objects");
	if ((ann && !json_is_object(ann) && !json_is_null(ann)) ||
	    (labels && !json_is_object(labels) && !json_is_null(labels)))
		return wh_verdict_deny(v, 400,
				       "pod: metadata.annotations and metadata.labels "
				       "must be objects");
	if (!json_is_array(containers) || json_array_size(containers) == 0)
		return wh_verdict_deny(v, 400, "pod: spec.containers must be a non-empty list");
	if (inits && !json_is_array(inits) && !json_is_null(inits))
		return wh_verdict_deny(v, 400, "pod: spec.initContainers must be a list");
	if (json_object_get(spec, "volumes") && !json_is_array(json_object_get(spec, "volumes")) &&
	    !json_is_null(json_object_get(spec, "volumes")))
		return wh_verdict_deny(v, 400, "pod: spec.volumes must be a list");

	if (wh_config_namespace_excluded(c, ns)) {
		v->reason = "excluded-namespace";
		return 0;
	}
	if (says_false(json_object_get(ann, WH_ANN_INJECT)) ||
	    says_false(json_object_get(labels, WH_ANN_INJECT))) {
		v->reason = "opted-out";
		return 0;
	}
	if (json_is_true(json_object_get(spec, "hostNetwork"))) {
		v->reason = "host-network";
		return 0;
	}
	if (json_object_get(ann, WH_ANN_STATUS) || has_container(containers, WH_PROXY_NAME) ||
	    has_container(inits, WH_PROXY_NAME) || has_container(inits, WH_INIT_NAME)) {
		v->reason = "already-injected";
		return 0;
	}
	if (cm_ann) {
		configmap = json_string_value(cm_ann);
		if (!configmap || !subdomain_ok(configmap))
			return wh_verdict_deny(v, 403,
					       "annotation %s: not a ConfigMap name (lowercase "
					       "letters, digits, '-' and '.')",
					       WH_ANN_POLICY_CM);
	}
	rc = wh_inbound_ports(c, pod, &in, err, sizeof(err));
	if (rc == -EINVAL)
		return wh_verdict_deny(v, 403, "%s", err);
	if (rc)
		return rc;
	out_args = json_array();
	rc = out_args ? wh_outbound_init_args(pod, out_args, err, sizeof(err)) : -ENOMEM;
	if (rc == 0)
		rc = build_patch(c, pod, &in, out_args, configmap, &v->patch);
	wh_inbound_cleanup(&in);
	json_decref(out_args);
	if (rc == -EINVAL)
		return wh_verdict_deny(v, 403, "%s", err);
	if (rc == 0)
		v->reason = "injected";
	return rc;
}
