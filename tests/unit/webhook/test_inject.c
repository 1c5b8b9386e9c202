/*
 * webhook/inject: JSON Pointer escaping, port selection, and the patch's operations for
 * pods with and without the arrays and maps it extends; skip reasons.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/inject.h"
#include "tests/unit/runner.h"
#include "tests/unit/webhook/fixtures.h"

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	ck_assert_msg(j != NULL, "%s: %s", s, e.text);
	return j;
}

START_TEST(pointer_escape)
{
	char *s = wh_json_pointer_escape("example.com/owner");
	ck_assert_str_eq(s, "example.com~1owner");
	free(s);
	s = wh_json_pointer_escape("a~b/c~/");
	ck_assert_str_eq(s, "a~0b~1c~0~1");
	free(s);
	s = wh_json_pointer_escape("");
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

/* The ports a pod gets ("ports|exclude|probes", e.g. "*|8081,9000|8081"), or the error. */
static void assert_inbound(const char *pod_json, int want_rc, const char *want)
{
	json_t *pod = parse(pod_json);
	struct wh_inbound in;
	char err[256] = "", got[1024];
	int rc = wh_inbound_ports(&cfg, pod, &in, err, sizeof(err));

	ck_assert_msg(rc == want_rc, "%s: rc %d (%s)", pod_json, rc, err);
	if (rc == 0) {
		snprintf(got, sizeof(got), "%s|%s|%s", in.ports, in.exclude, in.probe_ports);
		ck_assert_msg(strcmp(got, want) == 0, "%s: \"%s\", want \"%s\"", pod_json, got,
			      want);
	} else {
		ck_assert_ptr_null(in.ports);
		ck_assert_msg(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", pod_json,
			      err, want);
	}
	wh_inbound_cleanup(&in);
	json_decref(pod);
}

/* Only the --ports value (no exclusions expected), or the error. */
static void assert_ports(const char *pod_json, int want_rc, const char *want)
{
	char full[256];

	snprintf(full, sizeof(full), "%s||", want);
	assert_inbound(pod_json, want_rc, want_rc == 0 ? full : want);
}

#define ANN(v)                                                                                     \
	"{\"metadata\": {\"annotations\": {\"grpcguard.io/inbound-ports\": " v "}}, "              \
	"\"spec\": {\"containers\": [{\"name\": \"a\"}]}}"

START_TEST(ports_annotation)
{
	assert_ports(ANN("\"8080,9090\""), 0, "8080,9090");
	assert_ports(ANN("\" 8080 , 9090,8080 \""), 0, "8080,9090");
	assert_ports(ANN("\"*\""), 0, "*");
	assert_ports(ANN("\" * \""), 0, "*");
	assert_ports(ANN("\"1,65535\""), 0, "1,65535");
	assert_ports(ANN("\"0\""), -EINVAL, "is not a port list");
	assert_ports(ANN("\"65536\""), -EINVAL, "65536");
	assert_ports(ANN("\"8080,\""), -EINVAL, "8080,");
	assert_ports(ANN("\"\""), -EINVAL, "not a port list");
	assert_ports(ANN("\"80;90\""), -EINVAL, "80;90");
	assert_ports(ANN("\"*,80\""), -EINVAL, "*,80");
	assert_ports(ANN("\"0000000080\""), -EINVAL, "not a port list");
	assert_ports(ANN("8080"), -EINVAL, "must be a string");
	assert_ports(ANN("\"8080,15020\""), -EINVAL,
		     "port 15020 is the grpcguard proxy's own port");
	assert_ports(ANN("\"15006\""), -EINVAL, "port 15006");
	{
		/* 2000 distinct ports: too many to list, "*" is the way to say it. */
		char *pod = malloc(20000), *p = pod;
		p += sprintf(
		    p, "{\"metadata\": {\"annotations\": {\"grpcguard.io/inbound-ports\": \"");
		for (int i = 1; i <= 2000; i++)
			p += sprintf(p, "%s%d", i > 1 ? "," : "", i);
		sprintf(p, "\"}}, \"spec\": {\"containers\": [{\"name\": \"a\"}]}}");
		assert_ports(pod, -EINVAL, "more than 1024 ports");
		free(pod);
	}
}
END_TEST

START_TEST(ports_from_containers)
{
	/* Every port by default, whatever the container ports are named (issue 14): a gRPC
	 * server on an undeclared or differently named port is judged too. */
	assert_ports(
	    "{\"spec\": {\"containers\": [{\"name\": \"a\", \"ports\": [{\"name\": \"http\", "
	    "\"containerPort\": 80}, {\"name\": \"grpc-api\", \"containerPort\": 9000}]}, "
	    "{\"name\": \"b\", \"ports\": [{\"name\": \"grpc\", \"containerPort\": 7000}]}]}}",
	    0, "*");
	assert_ports(
	    "{\"spec\": {\"containers\": [{\"name\": \"a\", \"ports\": [{\"containerPort\": 80}, "
	    "{\"containerPort\": 53, \"protocol\": \"UDP\"}, {\"containerPort\": 15006}, "
	    "{\"containerPort\": 81, \"protocol\": \"TCP\"}, {\"containerPort\": \"x\"}]}]}}",
	    0, "*");
	assert_ports("{\"spec\": {\"containers\": [{\"name\": \"a\"}]}}", 0, "*");
}
END_TEST

#define PROBED(probes)                                                                             \
	"{\"spec\": {\"containers\": [{\"name\": \"app\", \"ports\": ["                            \
	"{\"name\": \"http-health\", \"containerPort\": 8081}, "                                   \
	"{\"name\": \"grpc\", \"containerPort\": 50051}], " probes "}]}}"

START_TEST(ports_probes)
{
	/* httpGet on a numeric port, tcpSocket, and a named port resolved through the
	 * container's ports; each excluded once, in first-seen order. */
	assert_inbound(
	    PROBED("\"livenessProbe\": {\"httpGet\": {\"path\": \"/h\", \"port\": 8081}}, "
		   "\"readinessProbe\": {\"tcpSocket\": {\"port\": 9000}}, "
		   "\"startupProbe\": {\"httpGet\": {\"port\": \"http-health\"}}"),
	    0, "*|8081,9000|8081,9000");
	assert_inbound(PROBED("\"readinessProbe\": {\"httpGet\": {\"port\": \"http-health\"}}"), 0,
		       "*|8081|8081");
	/* A gRPC probe stays intercepted (the sidecar allows the health service). */
	assert_inbound(PROBED("\"livenessProbe\": {\"grpc\": {\"port\": 50051}}, "
			      "\"readinessProbe\": {\"exec\": {\"command\": [\"true\"]}}"),
		       0, "*||");
	/* Names that resolve to nothing, hosts elsewhere, and bad numbers exclude nothing;
	 * nor does a probe on the proxy's own admin port. */
	assert_inbound(PROBED("\"livenessProbe\": {\"httpGet\": {\"port\": \"nope\"}}, "
			      "\"readinessProbe\": {\"httpGet\": {\"host\": \"10.0.0.9\", "
			      "\"port\": 8081}}, \"startupProbe\": {\"tcpSocket\": {\"port\": 0}}"),
		       0, "*||");
	assert_inbound(PROBED("\"livenessProbe\": {\"httpGet\": {\"port\": 15020}}"), 0, "*||");
	/* Probes of other containers and of (sidecar-style) init containers count too. */
	assert_inbound("{\"spec\": {\"initContainers\": [{\"name\": \"i\", \"startupProbe\": "
		       "{\"tcpSocket\": {\"port\": 7001}}}], \"containers\": [{\"name\": \"a\"}, "
		       "{\"name\": \"b\", \"livenessProbe\": {\"httpGet\": {\"port\": 7002}}}]}}",
		       0, "*|7002,7001|7002,7001");
	/* An explicit list is taken as it is: a listed probe port stays intercepted. */
	assert_inbound("{\"metadata\": {\"annotations\": {\"grpcguard.io/inbound-ports\": "
		       "\"8081,50051\"}}, \"spec\": {\"containers\": [{\"name\": \"a\", "
		       "\"livenessProbe\": {\"httpGet\": {\"port\": 8081}}}]}}",
		       0, "8081,50051||");
	/* "*" spelled out behaves as the default. */
	assert_inbound("{\"metadata\": {\"annotations\": {\"grpcguard.io/inbound-ports\": "
		       "\"*\"}}, \"spec\": {\"containers\": [{\"name\": \"a\", "
		       "\"livenessProbe\": {\"httpGet\": {\"port\": 8081}}}]}}",
		       0, "*|8081|8081");
}
END_TEST

#define EXCL(v)                                                                                    \
	"{\"metadata\": {\"annotations\": {\"grpcguard.io/exclude-inbound-ports\": " v             \
	"}}, \"spec\": {\"containers\": [{\"name\": \"a\", \"livenessProbe\": "                    \
	"{\"tcpSocket\": {\"port\": 8081}}}]}}"

START_TEST(ports_exclude_annotation)
{
	assert_inbound(EXCL("\"9000, 9001,8081\""), 0, "*|8081,9000,9001|8081");
	assert_inbound(EXCL("\"\""), -EINVAL, "grpcguard.io/exclude-inbound-ports");
	assert_inbound(EXCL("\"9000,x\""), -EINVAL, "\"9000,x\" is not a port list");
	assert_inbound(EXCL("\"*\""), -EINVAL, "grpcguard.io/inject: \"false\"");
	assert_inbound(EXCL("9000"), -EINVAL, "must be a string");
	/* With an explicit list the exclusions still apply (init drops them from it). */
	assert_inbound("{\"metadata\": {\"annotations\": {\"grpcguard.io/inbound-ports\": "
		       "\"8080,9000\", \"grpcguard.io/exclude-inbound-ports\": \"9000\"}}, "
		       "\"spec\": {\"containers\": [{\"name\": \"a\"}]}}",
		       0, "8080,9000|9000|");
}
END_TEST

START_TEST(ipv4_only)
{
	struct wh_inbound in;
	char err[256] = "";
	json_t *pod;
	static const struct {
		bool config;
		const char *ann; /* NULL: none */
		int rc;
		bool want;
	} cases[] = {
	    {false, NULL, 0, false},	      {true, NULL, 0, true},
	    {false, "true", 0, true},	      {true, "false", 0, false},
	    {false, "maybe", -EINVAL, false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];

		cfg.ipv4_only = cases[i].config;
		if (cases[i].ann)
			snprintf(text, sizeof(text),
				 "{\"metadata\": {\"annotations\": {\"grpcguard.io/ipv4-only\": "
				 "\"%s\"}}, \"spec\": {\"containers\": [{\"name\": \"a\"}]}}",
				 cases[i].ann);
		else
			snprintf(text, sizeof(text),
				 "{\"spec\": {\"containers\": [{\"name\": \"a\"}]}}");
		pod = parse(text);
		ck_assert_int_eq(wh_inbound_ports(&cfg, pod, &in, err, sizeof(err)), cases[i].rc);
		if (cases[i].rc == 0)
			ck_assert_msg(in.ipv4_only == cases[i].want, "case %zu", i);
		else
			ck_assert_ptr_nonnull(strstr(err, "grpcguard.io/ipv4-only"));
		wh_inbound_cleanup(&in);
		json_decref(pod);
	}
	cfg.ipv4_only = false;
}
END_TEST

/* Run injection; returns the verdict (caller cleans up). */
static struct wh_verdict inject(const char *pod_json, const char *ns)
{
	struct wh_verdict v;
	json_t *pod = parse(pod_json);

	wh_verdict_init(&v);
	ck_assert_int_eq(wh_inject_pod(&cfg, pod, ns, &v), 0);
	json_decref(pod);
	return v;
}

static const char *op_path(const json_t *patch, size_t i)
{
	return json_string_value(json_object_get(json_array_get(patch, i), "path"));
}

static bool has_path(const json_t *patch, const char *path)
{
	for (size_t i = 0; i < json_array_size(patch); i++) {
		if (strcmp(op_path(patch, i), path) == 0)
			return true;
	}
	return false;
}

START_TEST(patch_bare_pod)
{
	struct wh_verdict v = inject("{\"metadata\": {\"name\": \"p\"}, \"spec\": {\"containers\": "
				     "[{\"name\": \"app\"}]}}",
				     "demo");
	json_t *inits, *ann;

	ck_assert(v.allowed);
	ck_assert_str_eq(v.reason, "injected");
	ck_assert_int_eq(json_array_size(v.patch), 6);
	ck_assert_str_eq(op_path(v.patch, 0), "/spec/initContainers");
	ck_assert_str_eq(op_path(v.patch, 1), "/spec/volumes");
	ck_assert_str_eq(op_path(v.patch, 2), "/metadata/annotations");
	/* What the redirect covers, told to the proxy (for /policy), once it exists. */
	{
		static const char *const want[][2] = {{"GRPCGUARD_INBOUND_PORTS", "*"},
						      {"GRPCGUARD_EXCLUDE_INBOUND_PORTS", ""},
						      {"GRPCGUARD_PROBE_PORTS", ""}};
		for (size_t i = 0; i < 3; i++) {
			json_t *e = json_object_get(json_array_get(v.patch, 3 + i), "value");
			ck_assert_str_eq(op_path(v.patch, 3 + i), "/spec/initContainers/1/env/-");
			ck_assert_str_eq(json_string_value(json_object_get(e, "name")), want[i][0]);
			ck_assert_str_eq(json_string_value(json_object_get(e, "value")),
					 want[i][1]);
		}
	}
	inits = json_object_get(json_array_get(v.patch, 0), "value");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(inits, 0), "name")),
			 "grpcguard-init");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(inits, 1), "name")),
			 "grpcguard-proxy");
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(inits, 1), "restartPolicy")),
	    "Always");
	ann = json_object_get(json_array_get(v.patch, 2), "value");
	ck_assert_str_eq(
	    json_string_value(json_object_get(ann, "kubectl.kubernetes.io/default-container")),
	    "app");
	ck_assert_str_eq(json_string_value(json_object_get(ann, "prometheus.io/port")), "15020");
	ck_assert_ptr_nonnull(
	    strstr(json_string_value(json_object_get(ann, "grpcguard.io/status")),
		   "\"initContainers\":[\"grpcguard-init\",\"grpcguard-proxy\"]"));
	wh_verdict_cleanup(&v);
}
END_TEST

START_TEST(patch_pod_with_everything)
{
	struct wh_verdict v =
	    inject("{\"metadata\": {\"generateName\": \"p-\", \"annotations\": "
		   "{\"example.com/owner\": \"a\", "
		   "\"prometheus.io/scrape\": \"true\"}}, \"spec\": {\"initContainers\": "
		   "[{\"name\": \"i\"}], "
		   "\"containers\": [{\"name\": \"app\"}], \"volumes\": [{\"name\": \"v\"}]}}",
		   "demo");

	ck_assert(v.allowed);
	ck_assert_str_eq(op_path(v.patch, 0), "/spec/initContainers/0");
	ck_assert_str_eq(op_path(v.patch, 1), "/spec/initContainers/1");
	ck_assert_str_eq(op_path(v.patch, 2), "/spec/volumes/-");
	ck_assert_str_eq(op_path(v.patch, 3), "/spec/volumes/-");
	ck_assert(has_path(v.patch, "/metadata/annotations/grpcguard.io~1status"));
	ck_assert(
	    has_path(v.patch, "/metadata/annotations/kubectl.kubernetes.io~1default-container"));
	/* The app's own scrape annotations are left alone. */
	ck_assert(!has_path(v.patch, "/metadata/annotations/prometheus.io~1scrape"));
	ck_assert(!has_path(v.patch, "/metadata/annotations/prometheus.io~1port"));
	ck_assert(has_path(v.patch, "/spec/initContainers/1/env/-"));
	wh_verdict_cleanup(&v);
}
END_TEST

/* The init container's arguments: exclusions and --ipv4-only only when there are some. */
static json_t *init_args(const struct wh_verdict *v)
{
	json_t *inits = json_object_get(json_array_get(v->patch, 0), "value");
	return json_object_get(json_array_get(inits, 0), "args");
}

START_TEST(patch_init_args)
{
	struct wh_verdict v = inject("{\"spec\": {\"containers\": [{\"name\": \"app\"}]}}", "d");
	char *a = json_dumps(init_args(&v), JSON_COMPACT);

	ck_assert_str_eq(a, "[\"init\",\"--ports\",\"*\",\"--proxy-port\",\"15006\","
			    "\"--proxy-uid\",\"1337\"]");
	free(a);
	wh_verdict_cleanup(&v);
	v = inject("{\"metadata\": {\"annotations\": {\"grpcguard.io/ipv4-only\": \"true\", "
		   "\"grpcguard.io/exclude-inbound-ports\": \"9000\"}}, \"spec\": {\"containers\": "
		   "[{\"name\": \"app\", \"readinessProbe\": {\"httpGet\": {\"port\": 8081}}}]}}",
		   "d");
	a = json_dumps(init_args(&v), JSON_COMPACT);
	ck_assert_str_eq(a, "[\"init\",\"--ports\",\"*\",\"--proxy-port\",\"15006\","
			    "\"--proxy-uid\",\"1337\",\"--exclude-inbound-ports\",\"8081,9000\","
			    "\"--ipv4-only\"]");
	free(a);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_object_get(json_array_get(v.patch, json_array_size(v.patch) - 1), "value"),
		"value")),
	    "8081");
	wh_verdict_cleanup(&v);
}
END_TEST

START_TEST(patch_plain_container_cni)
{
	struct wh_verdict v;

	cfg.native_sidecar = false;
	cfg.intercept_cni = true;
	json_object_set_new(cfg.extra_annotations, "a/b", json_string("c"));
	v = inject("{\"metadata\": {\"annotations\": {}}, \"spec\": {\"containers\": [{\"name\": "
		   "\"app\"}]}}",
		   "d");
	ck_assert(v.allowed);
	ck_assert(!has_path(v.patch, "/spec/initContainers"));
	ck_assert_str_eq(op_path(v.patch, 0), "/spec/containers/-");
	ck_assert_ptr_null(
	    json_object_get(json_object_get(json_array_get(v.patch, 0), "value"), "restartPolicy"));
	ck_assert(has_path(v.patch, "/metadata/annotations/a~1b"));
	ck_assert(has_path(v.patch, "/spec/containers/1/env/-"));
	wh_verdict_cleanup(&v);
}
END_TEST

START_TEST(skips)
{
	static const struct {
		const char *pod, *ns, *reason;
	} cases[] = {
	    {"{\"metadata\": {\"annotations\": {\"grpcguard.io/inject\": \"false\"}}, \"spec\": "
	     "{\"containers\": [{\"name\": \"a\"}]}}",
	     "d", "opted-out"},
	    {"{\"metadata\": {\"labels\": {\"grpcguard.io/inject\": \"False\"}}, \"spec\": "
	     "{\"containers\": [{\"name\": \"a\"}]}}",
	     "d", "opted-out"},
	    {"{\"spec\": {\"hostNetwork\": true, \"containers\": [{\"name\": \"a\"}]}}", "d",
	     "host-network"},
	    {"{\"spec\": {\"containers\": [{\"name\": \"a\"}]}}", "kube-system",
	     "excluded-namespace"},
	    {"{\"spec\": {\"containers\": [{\"name\": \"a\"}]}}", "grpcguard-system",
	     "excluded-namespace"},
	    {"{\"metadata\": {\"annotations\": {\"grpcguard.io/status\": \"{}\"}}, \"spec\": "
	     "{\"containers\": [{\"name\": \"a\"}]}}",
	     "d", "already-injected"},
	    {"{\"spec\": {\"initContainers\": [{\"name\": \"grpcguard-proxy\"}], \"containers\": "
	     "[{\"name\": \"a\"}]}}",
	     "d", "already-injected"},
	    {"{\"spec\": {\"containers\": [{\"name\": \"a\"}, {\"name\": \"grpcguard-proxy\"}]}}",
	     "d", "already-injected"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct wh_verdict v = inject(cases[i].pod, cases[i].ns);
		ck_assert_msg(v.allowed && v.patch == NULL, "case %zu", i);
		ck_assert_str_eq(v.reason, cases[i].reason);
		wh_verdict_cleanup(&v);
	}
}
END_TEST

START_TEST(denials)
{
	static const char *const pods[] = {
	    "{\"metadata\": {\"annotations\": {\"grpcguard.io/inbound-ports\": \"x\"}}, \"spec\": "
	    "{\"containers\": [{\"name\": \"a\"}]}}",
	    "{\"metadata\": {\"annotations\": {\"grpcguard.io/policy-configmap\": \"Bad_Name\"}}, "
	    "\"spec\": {\"containers\": [{\"name\": \"a\"}]}}",
	    "{\"spec\": {\"containers\": []}}",
	    "{\"spec\": {\"containers\": [{\"name\": \"a\"}], \"volumes\": {}}}",
	    "{\"spec\": {\"containers\": [{\"name\": \"a\"}], \"initContainers\": 1}}",
	    "{\"metadata\": {\"annotations\": []}, \"spec\": {\"containers\": [{\"name\": "
	    "\"a\"}]}}",
	    "{\"metadata\": 1, \"spec\": {\"containers\": [{\"name\": \"a\"}]}}",
	    "{\"metadata\": {}}",
	};
	for (size_t i = 0; i < sizeof(pods) / sizeof(pods[0]); i++) {
		struct wh_verdict v = inject(pods[i], "d");
		ck_assert_msg(!v.allowed && v.message && !v.patch, "case %zu", i);
		wh_verdict_cleanup(&v);
	}
}
END_TEST

/* The proxy container of a patch for a bare pod (native sidecar: initContainers[1]). */
static json_t *proxy_of(const struct wh_verdict *v)
{
	return json_array_get(json_object_get(json_array_get(v->patch, 0), "value"), 1);
}

static json_t *find_named(const json_t *list, const char *name)
{
	size_t i;
	json_t *x;

	json_array_foreach(list, i, x)
	{
		if (!strcmp(json_string_value(json_object_get(x, "name")), name))
			return x;
	}
	return NULL;
}

START_TEST(identity_volumes_and_flags)
{
	static const char pod[] =
	    "{\"metadata\": {\"name\": \"p\"}, \"spec\": {\"containers\": [{\"name\": \"app\"}]}}";
	struct wh_verdict v = inject(pod, "demo");
	json_t *ctr = proxy_of(&v), *vols, *tok, *ca, *args;
	char *text;

	/* Off (the default): nothing of it. */
	text = json_dumps(v.patch, JSON_COMPACT);
	ck_assert_ptr_null(strstr(text, "--ca-address"));
	ck_assert_ptr_null(strstr(text, "grpcguard-token"));
	free(text);
	ck_assert_ptr_nonnull(ctr);
	wh_verdict_cleanup(&v);

	/* On, for both the per-pod and the prepared container. */
	cfg.identity_enabled = true;
	for (int prepared = 0; prepared < 2; prepared++) {
		if (prepared)
			ck_assert_int_eq(wh_inject_prepare(&cfg), 0);
		v = inject(pod, "demo");
		ctr = proxy_of(&v);
		args = json_object_get(ctr, "args");
		text = json_dumps(args, JSON_COMPACT);
		ck_assert_msg(strstr(text, "\"--ca-address\",\"https://grpcguard-webhook."
					   "grpcguard-system.svc:443\",\"--ca-cert\","
					   "\"/etc/grpcguard/ca/ca.crt\",\"--log-level\""),
			      "%s", text);
		free(text);
		ck_assert_ptr_nonnull(
		    find_named(json_object_get(ctr, "volumeMounts"), "grpcguard-token"));
		ck_assert_str_eq(
		    json_string_value(json_object_get(
			find_named(json_object_get(ctr, "volumeMounts"), "grpcguard-token"),
			"mountPath")),
		    "/var/run/secrets/grpcguard/tokens");
		ck_assert_ptr_nonnull(
		    find_named(json_object_get(ctr, "volumeMounts"), "grpcguard-ca"));
		vols = json_object_get(json_array_get(v.patch, 1), "value");
		tok = json_object_get(
		    json_array_get(
			json_object_get(
			    json_object_get(find_named(vols, "grpcguard-token"), "projected"),
			    "sources"),
			0),
		    "serviceAccountToken");
		ck_assert_str_eq(json_string_value(json_object_get(tok, "audience")), "grpcguard");
		ck_assert_int_eq(json_integer_value(json_object_get(tok, "expirationSeconds")),
				 3600);
		ck_assert_str_eq(json_string_value(json_object_get(tok, "path")),
				 "grpcguard-token");
		ca = json_object_get(find_named(vols, "grpcguard-ca"), "configMap");
		ck_assert_str_eq(json_string_value(json_object_get(ca, "name")), "grpcguard-ca");
		ck_assert(json_is_true(json_object_get(ca, "optional")));
		wh_verdict_cleanup(&v);
	}
	/* A configured address and ConfigMap. */
	cfg.ca_address = strdup("https://gg.example.svc:8443");
	free(cfg.ca_bundle_configmap);
	cfg.ca_bundle_configmap = strdup("my-ca");
	ck_assert_int_eq(wh_inject_prepare(&cfg), 0);
	v = inject(pod, "demo");
	text = json_dumps(v.patch, JSON_COMPACT);
	ck_assert_msg(strstr(text, "\"https://gg.example.svc:8443\"") &&
			  strstr(text, "\"name\":\"my-ca\""),
		      "%s", text);
	free(text);
	wh_verdict_cleanup(&v);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"pointer_escape", pointer_escape},
	    {"ports_annotation", ports_annotation},
	    {"ports_from_containers", ports_from_containers},
	    {"ports_probes", ports_probes},
	    {"ports_exclude_annotation", ports_exclude_annotation},
	    {"ipv4_only", ipv4_only},
	    {"patch_init_args", patch_init_args},
	    {"patch_bare_pod", patch_bare_pod},
	    {"patch_pod_with_everything", patch_pod_with_everything},
	    {"patch_plain_container_cni", patch_plain_container_cni},
	    {"skips", skips},
	    {"denials", denials},
	    {"identity", identity_volumes_and_flags},
	};
	return UT_RUN("webhook/inject", tests, .timeout_s = 10, .setup = cfg_setup,
		      .teardown = cfg_teardown);
}
