/*
 * webhook/validate: Service port protocol rules and policy ConfigMap validation.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/validate.h"
#include "tests/unit/runner.h"

static struct wh_config cfg;

static void setup(void)
{
	ck_assert_int_eq(wh_config_init(&cfg), 0);
}

static void teardown(void)
{
	wh_config_cleanup(&cfg);
}

/* The problem message for one port given as JSON, or NULL. Caller frees. */
static char *problem(const char *port_json)
{
	json_t *port = json_loads(port_json, 0, NULL);
	bool oom = false;
	char *m;

	ck_assert_ptr_nonnull(port);
	m = wh_service_port_problem("server", port, &oom);
	ck_assert(!oom);
	json_decref(port);
	return m;
}

static void assert_ok(const char *port_json)
{
	char *m = problem(port_json);
	ck_assert_msg(m == NULL, "%s: unexpected problem: %s", port_json, m);
}

static void assert_problem(const char *port_json, const char *needle)
{
	char *m = problem(port_json);
	ck_assert_msg(m != NULL, "%s: expected a problem", port_json);
	ck_assert_msg(strstr(m, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", port_json, m,
		      needle);
	free(m);
}

START_TEST(every_protocol_prefix)
{
	static const char *const protos[] = {"grpc", "grpc-web", "http",  "http2", "https", "tcp",
					     "tls",  "udp",	 "mongo", "mysql", "redis"};
	char name[64];

	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		ck_assert_str_eq(wh_port_name_protocol(protos[i]), protos[i]);
		snprintf(name, sizeof(name), "%s-api", protos[i]);
		ck_assert_str_eq(wh_port_name_protocol(name), protos[i]);
		snprintf(name, sizeof(name), "%sx", protos[i]);
		ck_assert_msg(wh_port_name_protocol(name) == NULL ||
				  strcmp(wh_port_name_protocol(name), protos[i]) != 0,
			      "%s matched", name);
	}
	ck_assert_str_eq(wh_port_name_protocol("grpc-web-public"), "grpc-web");
	ck_assert_str_eq(wh_port_name_protocol("grpc-admin"), "grpc");
	ck_assert_ptr_null(wh_port_name_protocol("my-grpc"));
	ck_assert_ptr_null(wh_port_name_protocol("GRPC"));
	ck_assert_ptr_null(wh_port_name_protocol(""));
	ck_assert_ptr_null(wh_port_name_protocol(NULL));
}
END_TEST

START_TEST(named_ports_pass)
{
	assert_ok("{\"name\": \"grpc\", \"port\": 8080}");
	assert_ok("{\"name\": \"grpc-api\", \"port\": 8080}");
	assert_ok("{\"name\": \"http-metrics\", \"port\": 9090}");
	assert_ok("{\"name\": \"redis\", \"port\": 6379}");
	/* http2/https on 50051 say what they are: no gRPC guessing. */
	assert_ok("{\"name\": \"http2\", \"port\": 50051}");
}
END_TEST

START_TEST(misnamed_grpc)
{
	assert_problem(
	    "{\"port\": 50051}",
	    "service \"server\" port 50051: name it \"grpc\" or \"grpc-<suffix>\", or set "
	    "appProtocol: grpc");
	assert_problem("{\"name\": \"my-grpc\", \"port\": 8080}",
		       "(the name \"my-grpc\" looks like gRPC but does not start with a protocol)");
	assert_problem("{\"name\": \"GRPC\", \"port\": 8080}",
		       "(the name \"GRPC\" looks like gRPC but does not start with a protocol; "
		       "names are lowercase)");
	/* A name that is no protocol on a port that says gRPC: the message says which part. */
	assert_problem(
	    "{\"name\": \"web\", \"port\": 50051}",
	    "service \"server\" port 50051: name it \"grpc\" or \"grpc-<suffix>\", or "
	    "set appProtocol: grpc (the name \"web\" does not start with a protocol, and "
	    "50051 is gRPC's usual port)");
	assert_problem("{\"name\": \"api\", \"port\": 8080, \"targetPort\": \"grpc-port\"}",
		       "(the name \"api\" does not start with a protocol, and its targetPort names "
		       "gRPC)");
	assert_problem("{\"name\": \"api\", \"port\": 80, \"targetPort\": 50051}",
		       "and its targetPort 50051 is gRPC's usual port)");
}
END_TEST

START_TEST(unnamed_and_unknown)
{
	assert_problem("{\"port\": 8080}", "port 8080: the port has no name");
	assert_problem("{\"name\": \"web\", \"port\": 80}",
		       "\"web\" does not start with a known protocol");
	assert_problem("{\"name\": \"\", \"port\": 80}", "no name");
	assert_problem("{\"name\": 7, \"port\": 80}", "must be a string");
	assert_problem("[]", "must be objects");
}
END_TEST

START_TEST(app_protocol)
{
	assert_ok("{\"port\": 8080, \"appProtocol\": \"grpc\"}");
	assert_ok("{\"name\": \"web\", \"port\": 80, \"appProtocol\": \"http\"}");
	assert_ok("{\"name\": \"grpc\", \"port\": 80, \"appProtocol\": \"kubernetes.io/h2c\"}");
	assert_ok("{\"name\": \"grpc\", \"port\": 80, \"appProtocol\": \"GRPC\"}");
	assert_ok("{\"name\": \"grpc-web\", \"port\": 80, \"appProtocol\": \"http\"}");
	assert_ok("{\"port\": 80, \"appProtocol\": \"example.com/custom\"}");
	assert_problem("{\"name\": \"grpc\", \"port\": 8080, \"appProtocol\": \"http\"}",
		       "the name \"grpc\" says grpc but appProtocol is \"http\"");
	assert_problem("{\"name\": \"tcp-x\", \"port\": 8080, \"appProtocol\": \"grpc\"}",
		       "says tcp");
	assert_problem("{\"name\": \"my-grpc\", \"port\": 8080, \"appProtocol\": \"tcp\"}",
		       "looks like gRPC but appProtocol");
	assert_problem("{\"port\": 8080, \"appProtocol\": \"thrift\"}",
		       "\"thrift\" is not a known");
}
END_TEST

static json_t *svc(const char *ports)
{
	char buf[1024];
	snprintf(buf, sizeof(buf),
		 "{\"metadata\": {\"name\": \"server\"}, \"spec\": {\"ports\": %s}}", ports);
	json_t *j = json_loads(buf, 0, NULL);
	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(service_enforce_joins_problems)
{
	json_t *s =
	    svc("[{\"name\": \"grpc\", \"port\": 1}, {\"port\": 50051}, {\"name\": \"web\", "
		"\"port\": 80}]");
	struct wh_verdict v;

	wh_verdict_init(&v);
	ck_assert_int_eq(wh_validate_service(&cfg, s, &v), 0);
	ck_assert(!v.allowed);
	ck_assert_int_eq(v.code, 403);
	ck_assert_ptr_nonnull(strstr(v.message, "port 50051"));
	ck_assert_ptr_nonnull(strstr(v.message, "; service \"server\" port 80"));
	ck_assert_ptr_null(v.warnings);
	wh_verdict_cleanup(&v);
	json_decref(s);
}
END_TEST

START_TEST(service_warn_mode)
{
	json_t *s = svc("[{\"port\": 50051}, {\"name\": \"web\", \"port\": 80}]");
	struct wh_verdict v;

	cfg.validation_mode = WH_MODE_WARN;
	wh_verdict_init(&v);
	ck_assert_int_eq(wh_validate_service(&cfg, s, &v), 0);
	ck_assert(v.allowed);
	ck_assert_int_eq(json_array_size(v.warnings), 2);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(v.warnings, 0)), "50051"));
	wh_verdict_cleanup(&v);
	json_decref(s);
}
END_TEST

START_TEST(service_shapes)
{
	struct wh_verdict v;
	json_t *s;

	wh_verdict_init(&v);
	s = json_loads(
	    "{\"metadata\": {\"name\": \"ext\"}, \"spec\": {\"type\": \"ExternalName\"}}", 0, NULL);
	ck_assert_int_eq(wh_validate_service(&cfg, s, &v), 0);
	ck_assert(v.allowed);
	json_decref(s);
	s = svc("{\"a\": 1}");
	ck_assert_int_eq(wh_validate_service(&cfg, s, &v), 0);
	ck_assert(!v.allowed);
	ck_assert_int_eq(v.code, 400);
	json_decref(s);
	wh_verdict_cleanup(&v);
	s = svc("[]");
	ck_assert_int_eq(wh_validate_service(&cfg, s, &v), 0);
	ck_assert(v.allowed);
	json_decref(s);
	wh_verdict_cleanup(&v);
}
END_TEST

static struct wh_verdict judge_cm(const char *json)
{
	struct wh_verdict v;
	json_t *cm = json_loads(json, 0, NULL);

	ck_assert_ptr_nonnull(cm);
	wh_verdict_init(&v);
	ck_assert_int_eq(wh_validate_configmap(&cfg, cm, &v), 0);
	json_decref(cm);
	return v;
}

START_TEST(policy_configmaps)
{
	struct wh_verdict v;

	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"apiVersion: grpcguard.io/v1\\nkind: Policy\\n\"}}");
	ck_assert(v.allowed);
	wh_verdict_cleanup(&v);
	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"apiVersion: grpcguard.io/v1\\nkind: Policy\\nfaults: 3\\n\"}}");
	ck_assert(!v.allowed);
	ck_assert_msg(strstr(v.message, "configmap \"grpcguard-policy\": policy.yaml:3:") != NULL,
		      "%s", v.message);
	wh_verdict_cleanup(&v);
	/* Issue 14: the top-level passthrough key is known, its values checked. */
	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"passthrough: allow\\nauthorization: []\\n\"}}");
	ck_assert_msg(v.allowed, "%s", v.message ? v.message : "");
	wh_verdict_cleanup(&v);
	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"apiVersion: grpcguard.io/v1\\npassthrough: sometimes\\n\"}}");
	ck_assert(!v.allowed);
	ck_assert_msg(strstr(v.message, "policy.yaml:2:14: passthrough: \"sometimes\" is not a "
					"passthrough mode (use allow or deny") != NULL,
		      "%s", v.message);
	wh_verdict_cleanup(&v);
	v = judge_cm(
	    "{\"metadata\": {\"name\": \"x\", \"labels\": {\"grpcguard.io/policy\": \"true\"}}, "
	    "\"data\": {\"policy.yaml\": \"[\"}}");
	ck_assert(!v.allowed);
	wh_verdict_cleanup(&v);
	v = judge_cm("{\"metadata\": {\"name\": \"other\"}, \"data\": {\"policy.yaml\": \"[\"}}");
	ck_assert(v.allowed);
	ck_assert_str_eq(v.reason, "not-policy");
	wh_verdict_cleanup(&v);
	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {}}");
	ck_assert(v.allowed);
	ck_assert_int_eq(json_array_size(v.warnings), 1);
	wh_verdict_cleanup(&v);
	v = judge_cm(
	    "{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": 1}}");
	ck_assert(!v.allowed);
	wh_verdict_cleanup(&v);
	cfg.validation_mode = WH_MODE_WARN;
	v = judge_cm(
	    "{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": \"[\"}}");
	ck_assert(v.allowed);
	ck_assert_int_eq(json_array_size(v.warnings), 1);
	wh_verdict_cleanup(&v);
}
END_TEST

/* Issue 16: the identity fields and mtls are known to the validator, and their errors
 * reach the user with file:line:column, as `check` prints them. */
START_TEST(policy_identity_fields)
{
	struct wh_verdict v;

	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"mtls: {mode: STRICT}\\nauthorization:\\n  - rules:\\n      - from: "
		     "[{principals: [cluster.local/ns/demo/sa/frontend], notNamespaces: "
		     "[test]}]\\n\"}}");
	ck_assert_msg(v.allowed, "%s", v.message ? v.message : "");
	wh_verdict_cleanup(&v);
	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"authorization:\\n  - rules:\\n      - from: [{principals: "
		     "[\\\"cluster.local/ns/*/sa/x\\\"]}]\\n\"}}");
	ck_assert(!v.allowed);
	ck_assert_msg(strstr(v.message,
			     "configmap \"grpcguard-policy\": policy.yaml:3:30: "
			     "authorization[0].rules[0].from[0].principals[0]: "
			     "\"cluster.local/ns/*/sa/x\": a '*' only works alone") != NULL,
		      "%s", v.message);
	wh_verdict_cleanup(&v);
	v = judge_cm(
	    "{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
	    "\"authorization:\\n  - rules:\\n      - from: [{namespaces: [\\\"\\\"]}]\\n\"}}");
	ck_assert(!v.allowed);
	ck_assert_msg(strstr(v.message, "policy.yaml:3:30: authorization[0].rules[0].from[0]."
					"namespaces[0]: an empty string names no caller") != NULL,
		      "%s", v.message);
	wh_verdict_cleanup(&v);
	v = judge_cm(
	    "{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
	    "\"authorization:\\n  - rules:\\n      - from: [{notPrincipals: frontend}]\\n\"}}");
	ck_assert(!v.allowed);
	ck_assert_msg(strstr(v.message, "policy.yaml:3:32: authorization[0].rules[0].from[0]."
					"notPrincipals: expected a list of principals, found a "
					"scalar") != NULL,
		      "%s", v.message);
	wh_verdict_cleanup(&v);
	v = judge_cm("{\"metadata\": {\"name\": \"grpcguard-policy\"}, \"data\": {\"policy.yaml\": "
		     "\"mtls: {mode: DISABLE}\\n\"}}");
	ck_assert(!v.allowed);
	ck_assert_msg(strstr(v.message, "policy.yaml:1:14: mtls.mode: \"DISABLE\" is not "
					"supported") != NULL,
		      "%s", v.message);
	wh_verdict_cleanup(&v);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"every_protocol_prefix", every_protocol_prefix},
	    {"named_ports_pass", named_ports_pass},
	    {"misnamed_grpc", misnamed_grpc},
	    {"unnamed_and_unknown", unnamed_and_unknown},
	    {"app_protocol", app_protocol},
	    {"service_enforce_joins_problems", service_enforce_joins_problems},
	    {"service_warn_mode", service_warn_mode},
	    {"service_shapes", service_shapes},
	    {"policy_configmaps", policy_configmaps},
	    {"policy_configmaps", policy_identity_fields},
	};
	return UT_RUN("webhook/validate", tests, .timeout_s = 10, .setup = setup,
		      .teardown = teardown);
}
