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

/* The ports string for a pod, or the error. */
static void assert_ports(const char *pod_json, int want_rc, const char *want)
{
	json_t *pod = parse(pod_json);
	char *out = NULL, err[256] = "";
	int rc = wh_inbound_ports(&cfg, pod, &out, err, sizeof(err));

	ck_assert_msg(rc == want_rc, "%s: rc %d (%s)", pod_json, rc, err);
	if (rc == 0)
		ck_assert_msg(strcmp(out, want) == 0, "%s: ports \"%s\", want \"%s\"", pod_json,
			      out, want);
	else
		ck_assert_msg(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", pod_json,
			      err, want);
	free(out);
	json_decref(pod);
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
	/* gRPC-named ports win. */
	assert_ports(
	    "{\"spec\": {\"containers\": [{\"name\": \"a\", \"ports\": [{\"name\": \"http\", "
	    "\"containerPort\": 80}, {\"name\": \"grpc-api\", \"containerPort\": 9000}]}, "
	    "{\"name\": \"b\", \"ports\": [{\"name\": \"grpc\", \"containerPort\": 7000}]}]}}",
	    0, "9000,7000");
	/* Else every TCP port, without UDP or our own ports. */
	assert_ports(
	    "{\"spec\": {\"containers\": [{\"name\": \"a\", \"ports\": [{\"containerPort\": 80}, "
	    "{\"containerPort\": 53, \"protocol\": \"UDP\"}, {\"containerPort\": 15006}, "
	    "{\"containerPort\": 81, \"protocol\": \"TCP\"}, {\"containerPort\": \"x\"}]}]}}",
	    0, "80,81");
	/* Else everything. */
	assert_ports("{\"spec\": {\"containers\": [{\"name\": \"a\"}]}}", 0, "*");
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
	ck_assert_int_eq(json_array_size(v.patch), 3);
	ck_assert_str_eq(op_path(v.patch, 0), "/spec/initContainers");
	ck_assert_str_eq(op_path(v.patch, 1), "/spec/volumes");
	ck_assert_str_eq(op_path(v.patch, 2), "/metadata/annotations");
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

int main(void)
{
	const struct ut_case tests[] = {
	    {"pointer_escape", pointer_escape},
	    {"ports_annotation", ports_annotation},
	    {"ports_from_containers", ports_from_containers},
	    {"patch_bare_pod", patch_bare_pod},
	    {"patch_pod_with_everything", patch_pod_with_everything},
	    {"patch_plain_container_cni", patch_plain_container_cni},
	    {"skips", skips},
	    {"denials", denials},
	};
	return UT_RUN("webhook/inject", tests, .timeout_s = 10, .setup = cfg_setup,
		      .teardown = cfg_teardown);
}
