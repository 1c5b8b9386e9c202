/*
 * Fuzz target: the policy parser. Parses the input as a policy file, evaluates a fixed set
 * of requests against the result (IPv4/IPv6/no peer, labels, headers, principal, claims,
 * health check, a verified mTLS peer identity, and the same identity claimed without mTLS,
 * which must decide exactly as no identity does), prints it as JSON, and checks that the JSON
 * parses back to the same policy (JSON is YAML). Deterministic, opens nothing, frees everything.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static double fixed_draw(void *ctx)
{
	unsigned *n = ctx;
	return (double)((*n)++ * 37 % 100);
}

static void evaluate_all(const struct policy *p)
{
	static const char *const methods[] = {"/helloworld.Greeter/SayHello",
					      "/grpc.health.v1.Health/Check", "/admin.Ops/Drop", "",
					      "*"};
	struct policy_header hdrs[] = {
	    {"x-tenant", 8, "blue", 4},		  {"x-chaos", 7, "on", 2}, {"x-env", 5, "prod", 4},
	    {"authorization", 13, "Bearer x", 8}, {"x-tenant", 8, "", 0},
	};
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	struct policy_labels *labels = NULL;
	struct policy_diag diag;
	json_t *claims =
	    json_pack("{s:s, s:[s,s], s:{s:[s]}, s:s, s:i}", "sub", "alice", "groups", "admins",
		      "dev", "realm_access", "roles", "ops", "aud", "greeter", "exp", 1);
	const char *labels_text = "app=\"server\"\ntier=\"backend\"\n";
	const char *peer_principal = "cluster.local/ns/demo/sa/client";
	unsigned draws = 0;

	inet_pton(AF_INET, "10.0.9.7", &v4.sin_addr);
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &v6.sin6_addr);
	if (policy_labels_parse(labels_text, strlen(labels_text), &labels, &diag) != 0)
		abort();
	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		for (int variant = 0; variant < 6; variant++) {
			struct policy_request req = {
			    .method = methods[m],
			    .method_len = strlen(methods[m]),
			    .headers = hdrs,
			    .nheaders = variant == 0 ? 0 : sizeof(hdrs) / sizeof(hdrs[0]),
			    .peer = variant == 1   ? (const struct sockaddr *)&v4
				    : variant == 2 ? (const struct sockaddr *)&v6
						   : NULL,
			    .labels = variant >= 2 ? labels : NULL,
			    .principal = variant == 3 ? "https://issuer.example.com/alice" : NULL,
			    .claims = variant == 3 ? claims : NULL,
			    .peer_principal = variant >= 4 ? peer_principal : NULL,
			    .peer_principal_len = variant >= 4 ? strlen(peer_principal) : 0,
			    .mtls = variant == 4,
			};
			struct policy_decision d;
			policy_evaluate(p, &req, variant == 1 ? NULL : fixed_draw, &draws, &d);
			if (variant == 5) {
				/* A principal without mTLS is no identity: same verdict as none. */
				struct policy_decision da, db;
				policy_evaluate(p, &req, NULL, NULL, &da);
				req.peer_principal = NULL;
				req.peer_principal_len = 0;
				policy_evaluate(p, &req, NULL, NULL, &db);
				if (da.allowed != db.allowed ||
				    da.deciding_policy != db.deciding_policy ||
				    da.audit_policy != db.audit_policy)
					abort();
			}
			if (!d.allowed && (d.fault_name || d.delay_ms || d.abort))
				abort(); /* faults only apply to allowed RPCs */
			if (d.abort && (d.abort_grpc_status < 1 || d.abort_grpc_status > 16 ||
					!d.abort_message))
				abort();
		}
	}
	policy_labels_free(labels);
	json_decref(claims);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL, *p2 = NULL;
	struct policy_diag diag;
	json_t *j = NULL, *j2 = NULL;
	char *text = NULL;

	if (policy_parse_buffer("fuzz.yaml", (const char *)data, size, &p, &diag) != 0) {
		if (p || !memchr(diag.text, '\0', sizeof(diag.text)))
			abort(); /* a failure leaves no policy and a terminated diagnostic */
		return 0;
	}
	evaluate_all(p);
	if (policy_mtls_mode(p, NULL) == POLICY_MTLS_UNSET)
		abort();
	for (size_t i = 0; i < policy_authn_count(p); i++) {
		const struct policy_authn *a = policy_authn_get(p, i);
		if (!a || !a->issuer || !a->jwks_file == !a->jwks_inline || a->nfrom_headers == 0)
			abort();
	}
	j = policy_to_json(p);
	if (!j)
		goto out; /* e.g. a string that is not valid UTF-8 for jansson */
	text = json_dumps(j, JSON_COMPACT);
	if (text && policy_parse_buffer("fuzz.json", text, strlen(text), &p2, &diag) == 0) {
		j2 = policy_to_json(p2);
		if (j2 && !json_equal(j, j2))
			abort(); /* printing and parsing again lost or changed something */
	}
out:
	free(text);
	json_decref(j);
	json_decref(j2);
	policy_unref(p);
	policy_unref(p2);
	return 0;
}
