/*
 * webhook/config: defaults, a full file, and errors with file:line:column.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/config.h"
#include "tests/unit/runner.h"

static void load_ok(struct wh_config *c, const char *yaml)
{
	char err[512] = "";
	ck_assert_int_eq(wh_config_init(c), 0);
	ck_assert_msg(
	    wh_config_load_buffer(c, "webhook.yaml", yaml, strlen(yaml), err, sizeof(err)) == 0,
	    "%s", err);
}

static void load_err(const char *yaml, const char *want)
{
	struct wh_config c;
	char err[512] = "";

	ck_assert_int_eq(wh_config_init(&c), 0);
	ck_assert_int_ne(
	    wh_config_load_buffer(&c, "webhook.yaml", yaml, strlen(yaml), err, sizeof(err)), 0);
	ck_assert_msg(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
	wh_config_cleanup(&c);
}

START_TEST(defaults)
{
	struct wh_config c;

	unsetenv("POD_NAMESPACE");
	load_ok(&c, "");
	ck_assert_str_eq(c.namespace_, "grpcguard-system");
	ck_assert_int_eq(c.validation_mode, WH_MODE_ENFORCE);
	ck_assert_str_eq(c.image, "grpcguard/grpcguard-sidecar:0.1.0");
	ck_assert(c.native_sidecar && !c.intercept_cni);
	ck_assert_uint_eq(c.proxy_port, 15006);
	ck_assert_uint_eq(c.admin_port, 15020);
	ck_assert_uint_eq(c.proxy_uid, 1337);
	ck_assert_uint_eq(c.max_body_bytes, 3670016);
	ck_assert_uint_eq(c.max_connections, 1024);
	ck_assert_uint_eq(c.connection_timeout_s, 10);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(c.resources, "limits"), "memory")),
	    "64Mi");
	ck_assert(wh_config_namespace_excluded(&c, "kube-system"));
	ck_assert(wh_config_namespace_excluded(&c, "kube-node-lease"));
	ck_assert(wh_config_namespace_excluded(&c, "grpcguard-system"));
	ck_assert(!wh_config_namespace_excluded(&c, "demo"));
	ck_assert(!wh_config_namespace_excluded(&c, NULL));
	wh_config_cleanup(&c);
	setenv("POD_NAMESPACE", "from-env", 1);
	load_ok(&c, "validation: {mode: warn}\n");
	ck_assert_str_eq(c.namespace_, "from-env");
	wh_config_cleanup(&c);
	load_ok(&c, "namespace: from-file\n");
	ck_assert_str_eq(c.namespace_, "from-file");
	wh_config_cleanup(&c);
	unsetenv("POD_NAMESPACE");
}
END_TEST

START_TEST(full_file)
{
	struct wh_config c;

	load_ok(&c,
		"namespace: mesh\n"
		"validation:\n  mode: warn\n"
		"injection:\n"
		"  image: reg/x:1\n  imagePullPolicy: Never\n  nativeSidecar: false\n"
		"  interceptMode: cni\n  ipv4Only: true\n  proxyPort: 16006\n  adminPort: 16020\n  "
		"proxyUID: 2000\n"
		"  policyConfigMap: pol\n  logLevel: debug\n  excludeNamespaces: [a, b]\n"
		"  extraAnnotations: {x.io/y: \"z\"}\n"
		"  resources:\n    requests: {cpu: 5m}\n    limits: {memory: 1Gi, cpu: \"2\"}\n"
		"limits:\n  maxBodyBytes: 65536\n  maxConnections: 10\n  connectionTimeoutSeconds: "
		"3\n");
	ck_assert_int_eq(c.validation_mode, WH_MODE_WARN);
	ck_assert_str_eq(c.pull_policy, "Never");
	ck_assert(!c.native_sidecar && c.intercept_cni && c.ipv4_only);
	ck_assert_uint_eq(c.proxy_port, 16006);
	ck_assert_uint_eq(c.proxy_uid, 2000);
	ck_assert_str_eq(c.policy_configmap, "pol");
	ck_assert_uint_eq(c.nexclude_namespaces, 2);
	ck_assert(wh_config_namespace_excluded(&c, "b"));
	ck_assert(wh_config_namespace_excluded(&c, "mesh"));
	ck_assert(!wh_config_namespace_excluded(&c, "grpcguard-system"));
	ck_assert_str_eq(json_string_value(json_object_get(c.extra_annotations, "x.io/y")), "z");
	ck_assert_ptr_null(json_object_get(json_object_get(c.resources, "requests"), "memory"));
	ck_assert_uint_eq(c.max_body_bytes, 65536);
	ck_assert_uint_eq(c.connection_timeout_s, 3);
	wh_config_cleanup(&c);
}
END_TEST

START_TEST(errors)
{
	load_err("bogus: 1\n", "webhook.yaml:1:1: bogus: unknown key (expected one of: namespace, "
			       "validation, injection, limits, identity)");
	load_err(
	    "injection:\n  proxyPort: 0\n",
	    "webhook.yaml:2:14: injection.proxyPort: \"0\" is not an integer between 1 and 65535");
	load_err("injection:\n  proxyPort: 1\n  proxyPort: 2\n",
		 "webhook.yaml:3:3: injection.proxyPort: duplicate key");
	load_err("validation:\n  mode: strict\n",
		 "validation.mode: \"strict\" is not one of enforce | warn");
	load_err("injection:\n  nativeSidecar: yes\n", "is not a boolean");
	load_err("injection:\n  resources: {requests: {cpu: lots}}\n",
		 "injection.resources.requests.cpu: \"lots\" is not a quantity");
	load_err("injection:\n  resources: {request: {}}\n", "unknown key");
	load_err("injection:\n  excludeNamespaces: NotAList\n", "expected a list");
	load_err("injection:\n  excludeNamespaces: [Bad_NS]\n", "excludeNamespaces[0]");
	load_err("injection:\n  adminPort: 15006\n", "must differ");
	load_err("injection:\n  proxyPort: 15001\n",
		 "injection.proxyPort is 15001, the sidecar's outbound port; choose another");
	load_err("injection:\n  adminPort: 15001\n", "injection.adminPort is 15001");
	load_err("namespace: [x]\n", "expected a string");
	load_err("namespace: Upper\n", "is not a namespace name");
	load_err("limits:\n  maxBodyBytes: 10\n", "between 4096 and");
	load_err("- a\n", "expected a mapping");
	load_err("a: [\n", "not valid YAML");
	load_err("injection:\n  image: \"a b\"\n", "not an image reference");
}
END_TEST

START_TEST(file_errors)
{
	struct wh_config c;
	char err[512];

	ck_assert_int_eq(wh_config_init(&c), 0);
	ck_assert_int_eq(wh_config_load_file(&c, "/nonexistent/webhook.yaml", err, sizeof(err)),
			 -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/webhook.yaml: cannot open"));
	wh_config_cleanup(&c);
}
END_TEST

START_TEST(identity)
{
	struct wh_config c;

	/* Defaults: off, the contract's trust domain and lifetime, in-cluster TokenReview. */
	ck_assert_int_eq(wh_config_init(&c), 0);
	ck_assert(!c.identity_enabled);
	ck_assert_str_eq(c.trust_domain, "cluster.local");
	ck_assert_uint_eq(c.cert_lifetime_s, 86400);
	ck_assert_ptr_null(c.token_review_url);
	ck_assert_str_eq(c.token_review_token_file,
			 "/var/run/secrets/kubernetes.io/serviceaccount/token");
	ck_assert_str_eq(c.ca_bundle_configmap, "grpcguard-ca");
	wh_config_cleanup(&c);

	load_ok(&c,
		"identity:\n"
		"  enabled: true\n"
		"  trustDomain: prod.example\n"
		"  certificateLifetimeSeconds: 3600\n"
		"  ca: {certFile: /ca/tls.crt, keyFile: /ca/tls.key, bundleFile: /ca/ca.crt}\n"
		"  tokenReview: {url: \"https://127.0.0.1:6443/x\", caFile: /a, tokenFile: /b,"
		" timeoutMs: 1500}\n"
		"  rateLimit: {perSourcePerMinute: 0, perSourceBurst: 7, perIdentityPerMinute: 3,"
		" perIdentityBurst: 2}\n"
		"  caAddress: https://gg.example.svc:443\n"
		"  caBundleConfigMap: my-ca\n");
	ck_assert(c.identity_enabled);
	ck_assert_str_eq(c.trust_domain, "prod.example");
	ck_assert_uint_eq(c.cert_lifetime_s, 3600);
	ck_assert_str_eq(c.ca_cert_file, "/ca/tls.crt");
	ck_assert_str_eq(c.ca_key_file, "/ca/tls.key");
	ck_assert_str_eq(c.ca_bundle_file, "/ca/ca.crt");
	ck_assert_str_eq(c.token_review_url, "https://127.0.0.1:6443/x");
	ck_assert_uint_eq(c.token_review_timeout_ms, 1500);
	ck_assert_uint_eq(c.rl_source_per_minute, 0);
	ck_assert_uint_eq(c.rl_source_burst, 7);
	ck_assert_uint_eq(c.rl_identity_per_minute, 3);
	ck_assert_uint_eq(c.rl_identity_burst, 2);
	ck_assert_str_eq(c.ca_address, "https://gg.example.svc:443");
	ck_assert_str_eq(c.ca_bundle_configmap, "my-ca");
	wh_config_cleanup(&c);

	load_err("identity: {trustDomain: \"Bad Domain\"}", "identity.trustDomain");
	load_err("identity: {certificateLifetimeSeconds: 60}", "between 600 and 2592000");
	load_err("identity: {ca: {certFile: relative.crt}}", "absolute file path");
	load_err("identity: {ca: {cert: /x}}", "identity.ca.cert: unknown key");
	load_err("identity: {tokenReview: {url: \"http://x\"}}", "https:// URL");
	load_err("identity: {caAddress: \"grpcguard-webhook:443\"}", "https:// URL");
	load_err("identity: {enabled: yes please}", "not a boolean");
	load_err("identity: {rateLimit: {perSourceBurst: 0}}", "between 1 and");
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"defaults", defaults},	  {"full_file", full_file}, {"errors", errors},
	    {"file_errors", file_errors}, {"identity", identity},
	};
	return UT_RUN("webhook/config", tests, .timeout_s = 10);
}
