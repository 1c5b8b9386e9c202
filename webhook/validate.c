/*
 * Service and policy ConfigMap validation (see validate.h).
 *
 * A Service port must say what it speaks, by name ("grpc", "grpc-api") or appProtocol,
 * the way Istio reads protocols. This module only judges; review.c decides what a judged
 * object means for the HTTP answer.
 */
#include "webhook/validate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"

static const char *const protocols[] = {"grpc", "grpc-web", "http",  "http2", "https", "tcp",
					"tls",	"udp",	    "mongo", "mysql", "redis"};
#define NPROTOCOLS (sizeof(protocols) / sizeof(protocols[0]))
#define PROTOCOL_LIST "grpc, grpc-web, http, http2, https, tcp, tls, udp, mongo, mysql, redis"

/* The well-known gRPC port: an unnamed 50051 is almost surely gRPC. */
#define GRPC_WELL_KNOWN_PORT 50051

const char *wh_port_name_protocol(const char *name)
{
	const char *best = NULL;
	size_t best_len = 0;

	if (!name)
		return NULL;
	for (size_t i = 0; i < NPROTOCOLS; i++) {
		size_t n = strlen(protocols[i]);
		if (strncmp(name, protocols[i], n) == 0 && (name[n] == '\0' || name[n] == '-') &&
		    n > best_len) {
			best = protocols[i];
			best_len = n;
		}
	}
	return best;
}

/*
 * appProtocol -> protocol name. Kubernetes' standard values map onto ours; unknown
 * domain-prefixed values ("example.com/x") are an opaque but explicit declaration
 * (returned as ""); anything else is unknown (NULL).
 */
static const char *app_protocol(const char *ap)
{
	if (!strcasecmp(ap, "kubernetes.io/h2c"))
		return "http2";
	if (!strcasecmp(ap, "kubernetes.io/ws"))
		return "http";
	if (!strcasecmp(ap, "kubernetes.io/wss"))
		return "https";
	for (size_t i = 0; i < NPROTOCOLS; i++) {
		if (!strcasecmp(ap, protocols[i]))
			return protocols[i];
	}
	return strchr(ap, '/') ? "" : NULL;
}

/* gRPC is HTTP/2 and gRPC-Web rides on HTTP, so those pairs agree. */
static bool protocols_agree(const char *a, const char *b)
{
	static const char *const pairs[][2] = {
	    {"grpc", "http2"}, {"grpc-web", "http"}, {"grpc-web", "http2"}};
	if (!*a || !*b || !strcmp(a, b))
		return true;
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		if ((!strcmp(a, pairs[i][0]) && !strcmp(b, pairs[i][1])) ||
		    (!strcmp(a, pairs[i][1]) && !strcmp(b, pairs[i][0])))
			return true;
	}
	return false;
}

/* Why a port without a protocol looks like gRPC, in the order the checks are made. */
enum grpc_look { LOOK_NO, LOOK_NAME, LOOK_PORT, LOOK_TARGET_NAME, LOOK_TARGET_PORT };

/* Its reason as the end of a message; NULL for LOOK_NO and LOOK_NAME (worded apart). */
static const char *const grpc_look_hint[] = {
    [LOOK_PORT] = "50051 is gRPC's usual port",
    [LOOK_TARGET_NAME] = "its targetPort names gRPC",
    [LOOK_TARGET_PORT] = "its targetPort 50051 is gRPC's usual port",
};

static enum grpc_look looks_like_grpc(const char *name, json_int_t port, const json_t *target)
{
	const char *t = json_is_string(target) ? json_string_value(target) : NULL;

	if (name && strcasestr(name, "grpc"))
		return LOOK_NAME;
	if (port == GRPC_WELL_KNOWN_PORT)
		return LOOK_PORT;
	if (t && strcasestr(t, "grpc"))
		return LOOK_TARGET_NAME;
	if (json_is_integer(target) && json_integer_value(target) == GRPC_WELL_KNOWN_PORT)
		return LOOK_TARGET_PORT;
	return LOOK_NO;
}

static char *msg(bool *oom, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *msg(bool *oom, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		s = NULL;
		*oom = true;
	}
	va_end(ap);
	return s;
}

char *wh_service_port_problem(const char *svc, const json_t *port, bool *oom)
{
	const json_t *jname, *jap, *jnum;
	const char *name = NULL, *ap = NULL, *proto, *ap_proto = NULL;
	json_int_t num;
	char numbuf[32];
	enum grpc_look look;

	if (!json_is_object(port))
		return msg(oom, "service \"%s\": spec.ports entries must be objects", svc);
	jname = json_object_get(port, "name");
	jap = json_object_get(port, "appProtocol");
	jnum = json_object_get(port, "port");
	if (jname && !json_is_null(jname) && !json_is_string(jname))
		return msg(oom, "service \"%s\": spec.ports[].name must be a string", svc);
	if (jap && !json_is_null(jap) && !json_is_string(jap))
		return msg(oom, "service \"%s\": spec.ports[].appProtocol must be a string", svc);
	name = json_is_string(jname) && *json_string_value(jname) ? json_string_value(jname) : NULL;
	ap = json_is_string(jap) && *json_string_value(jap) ? json_string_value(jap) : NULL;
	num = json_is_integer(jnum) ? json_integer_value(jnum) : 0;
	if (num > 0)
		snprintf(numbuf, sizeof(numbuf), "%lld", (long long)num);
	else
		snprintf(numbuf, sizeof(numbuf), "%s", name ? name : "(no number)");

	if (ap) {
		ap_proto = app_protocol(ap);
		if (!ap_proto)
			return msg(oom,
				   "service \"%s\" port %s: appProtocol \"%s\" is not a known "
				   "protocol; use one of " PROTOCOL_LIST
				   ", kubernetes.io/h2c, or a domain-prefixed name such as "
				   "example.com/custom",
				   svc, numbuf, ap);
	}
	proto = wh_port_name_protocol(name);
	if (proto && ap_proto && !protocols_agree(proto, ap_proto))
		return msg(oom,
			   "service \"%s\" port %s: the name \"%s\" says %s but appProtocol "
			   "is \"%s\"; make them agree or remove appProtocol",
			   svc, numbuf, name, proto, ap);
	if (proto)
		return NULL;
	/* No protocol in the name. appProtocol alone is enough, unless they disagree. */
	if (ap_proto) {
		if (name && strcasestr(name, "grpc") && !protocols_agree("grpc", ap_proto))
			return msg(oom,
				   "service \"%s\" port %s: the name \"%s\" looks like gRPC but "
				   "appProtocol is \"%s\"; make them agree or rename the port",
				   svc, numbuf, name, ap);
		return NULL;
	}
	look = looks_like_grpc(name, num, json_object_get(port, "targetPort"));
	if (look != LOOK_NO) {
		if (look == LOOK_NAME)
			return msg(oom,
				   "service \"%s\" port %s: name it \"grpc\" or "
				   "\"grpc-<suffix>\", or set appProtocol: grpc (the name "
				   "\"%s\" looks like gRPC but does not start with a protocol%s)",
				   svc, numbuf, name,
				   strpbrk(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
				       ? "; names are lowercase"
				       : "");
		if (name)
			/* The name is no protocol; the port or its targetPort says gRPC. */
			return msg(oom,
				   "service \"%s\" port %s: name it \"grpc\" or "
				   "\"grpc-<suffix>\", or set appProtocol: grpc (the name "
				   "\"%s\" does not start with a protocol, and %s)",
				   svc, numbuf, name, grpc_look_hint[look]);
		return msg(oom,
			   "service \"%s\" port %s: name it \"grpc\" or \"grpc-<suffix>\", "
			   "or set appProtocol: grpc (the port has no name)",
			   svc, numbuf);
	}
	if (name)
		return msg(oom,
			   "service \"%s\" port %s: the name \"%s\" does not start with a "
			   "known protocol; name it \"<protocol>\" or \"<protocol>-<suffix>\" "
			   "(protocols: " PROTOCOL_LIST "), or set appProtocol",
			   svc, numbuf, name);
	return msg(oom,
		   "service \"%s\" port %s: the port has no name; name it \"<protocol>\" "
		   "or \"<protocol>-<suffix>\" (protocols: " PROTOCOL_LIST "), or set appProtocol",
		   svc, numbuf);
}

static const char *object_name(const json_t *obj)
{
	const json_t *md = json_object_get(obj, "metadata");
	const char *n = json_string_value(json_object_get(md, "name"));
	if (!n || !*n)
		n = json_string_value(json_object_get(md, "generateName"));
	return n && *n ? n : "(unnamed)";
}

/* Deny (enforce) or warn (warn mode) with `text`. 0 or -ENOMEM. */
static int report(const struct wh_config *c, struct wh_verdict *v, const char *text)
{
	if (c->validation_mode == WH_MODE_WARN) {
		v->reason = "warned";
		return wh_verdict_warn(v, text);
	}
	v->reason = "invalid";
	return wh_verdict_deny(v, 403, "%s", text);
}

int wh_validate_service(const struct wh_config *c, const json_t *svc, struct wh_verdict *v)
{
	const char *name = object_name(svc);
	const json_t *spec = json_object_get(svc, "spec");
	const json_t *ports = json_object_get(spec, "ports"), *port;
	char *joined = NULL;
	size_t i, len = 0;
	bool oom = false;
	int rc = 0;

	v->reason = "valid";
	if (spec && !json_is_object(spec))
		return wh_verdict_deny(v, 400, "service \"%s\": spec must be an object", name);
	if (!ports || json_is_null(ports))
		return 0; /* ExternalName and headless Services without ports */
	if (!json_is_array(ports))
		return wh_verdict_deny(v, 400, "service \"%s\": spec.ports must be a list", name);
	json_array_foreach(ports, i, port)
	{
		char *p = wh_service_port_problem(name, port, &oom);
		if (oom)
			goto nomem;
		if (!p)
			continue;
		if (c->validation_mode == WH_MODE_WARN) {
			rc = report(c, v, p);
			free(p);
			if (rc)
				goto nomem;
			continue;
		}
		/* Enforce: one message naming every bad port, so one edit fixes them all. */
		char *grown = realloc(joined, len + strlen(p) + 3);
		if (!grown) {
			free(p);
			goto nomem;
		}
		joined = grown;
		len += (size_t)sprintf(joined + len, "%s%s", len ? "; " : "", p);
		free(p);
	}
	if (joined)
		rc = report(c, v, joined);
	free(joined);
	return rc;
nomem:
	free(joined);
	return -ENOMEM;
}

bool wh_is_policy_configmap(const struct wh_config *c, const json_t *cm)
{
	const json_t *md = json_object_get(cm, "metadata");
	const char *name = json_string_value(json_object_get(md, "name"));
	const char *label = json_string_value(
	    json_object_get(json_object_get(md, "labels"), "grpcguard.io/policy"));

	return (name && c->policy_configmap && strcmp(name, c->policy_configmap) == 0) ||
	       (label && strcmp(label, "true") == 0);
}

int wh_validate_configmap(const struct wh_config *c, const json_t *cm, struct wh_verdict *v)
{
	const char *name = object_name(cm);
	const json_t *data, *text;
	struct policy *p = NULL;
	struct policy_diag diag;
	char *m = NULL;
	int rc;

	v->reason = "not-policy";
	if (!wh_is_policy_configmap(c, cm))
		return 0;
	v->reason = "valid";
	data = json_object_get(cm, "data");
	text = json_object_get(data, "policy.yaml");
	if (!text) {
		v->reason = "no-policy-key";
		return wh_verdict_warn(v, "configmap has no data[\"policy.yaml\"]; sidecars run "
					  "with no policy (everything allowed, no faults)");
	}
	if (!json_is_string(text))
		return wh_verdict_deny(v, 400,
				       "configmap \"%s\": data[\"policy.yaml\"] must be a "
				       "string",
				       name);
	memset(&diag, 0, sizeof(diag));
	rc = policy_parse_buffer("policy.yaml", json_string_value(text), json_string_length(text),
				 &p, &diag);
	policy_unref(p);
	if (rc == POLICY_ERR_NOMEM)
		return -ENOMEM;
	if (rc == 0)
		return 0;
	if (asprintf(&m, "configmap \"%s\": %s", name,
		     diag.text[0] ? diag.text : policy_strerror(rc)) < 0)
		return -ENOMEM;
	rc = report(c, v, m);
	free(m);
	return rc;
}
