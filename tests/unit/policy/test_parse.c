/*
 * policy/parse: every field of the format, every error path with its exact message and
 * line:column, the examples of DESIGN.md and issue 10 (tests/data/policy/), file limits.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

static const char *data_dir(void)
{
	static char buf[1024];
	const char *root = getenv("GG_ROOT");
	snprintf(buf, sizeof(buf), "%s/tests/data/policy", root ? root : ".");
	return buf;
}

static struct policy *parse_ok(const char *yaml)
{
	struct policy *p = NULL;
	struct policy_diag d;
	int rc = policy_parse_buffer("policy.yaml", yaml, strlen(yaml), &p, &d);
	ck_assert_msg(rc == 0, "parse failed: %s", d.text);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* ---- errors -------------------------------------------------------------------- */
static const struct {
	const char *name, *yaml;
	int rc;
	const char *text;
} error_cases[] = {
    {"not_yaml", "faults: [\n", -2,
     "policy.yaml:2:1: not valid YAML: did not find expected node content while parsing a flow "
     "node"},
    {"tab", "faults:\n\t- name: x\n", -2,
     "policy.yaml:2:1: not valid YAML: found character that cannot start any token while scanning "
     "for the next token"},
    {"two_docs", "faults: []\n---\nfaults: []\n", -2,
     "policy.yaml:2:1: a second YAML document; a policy file holds one (remove the \"---\")"},
    {"alias", "faults: &f []\nauthorization: *f\n", -3,
     "policy.yaml:1:9: YAML anchors (&f) are not supported; write the value out"},
    {"root_list", "- a\n- b\n", -3,
     "policy.yaml:1:1: expected a policy (a mapping with apiVersion, kind, faults, authorization, "
     "requestAuthentication, passthrough, mtls), found a list"},
    {"root_scalar", "hello\n", -3,
     "policy.yaml:1:1: expected a policy (a mapping with apiVersion, kind, faults, authorization, "
     "requestAuthentication, passthrough, mtls), found a scalar"},
    {"unknown_top", "apiVersion: grpcguard.io/v1\nkind: Policy\nfault: []\n", -3,
     "policy.yaml:3:1: unknown key \"fault\" (did you mean \"faults\"? known keys: apiVersion, "
     "kind, faults, authorization, requestAuthentication, passthrough, mtls)"},
    {"passthrough_bad", "passthrough: maybe\n", -3,
     "policy.yaml:1:14: passthrough: \"maybe\" is not a passthrough mode (use allow or deny: what "
     "happens to connections that are not HTTP/2; without the key, deny when an authorization "
     "entry selects the pod, else allow)"},
    {"passthrough_caps", "authorization: []\npassthrough: Deny\n", -3,
     "policy.yaml:2:14: passthrough: \"Deny\" is not a passthrough mode (use allow or deny: what "
     "happens to connections that are not HTTP/2; without the key, deny when an authorization "
     "entry selects the pod, else allow)"},
    {"passthrough_list", "passthrough: [allow]\n", -3,
     "policy.yaml:1:14: passthrough: a list is not a passthrough mode (use allow or deny: what "
     "happens to connections that are not HTTP/2; without the key, deny when an authorization "
     "entry selects the pod, else allow)"},
    {"passthrough_typo", "passthrogh: deny\n", -3,
     "policy.yaml:1:1: unknown key \"passthrogh\" (did you mean \"passthrough\"? known keys: "
     "apiVersion, kind, faults, authorization, requestAuthentication, passthrough, mtls)"},
    {"passthrough_dup", "passthrough: deny\npassthrough: allow\n", -3,
     "policy.yaml:2:1: duplicate key \"passthrough\" (first given at line 1)"},
    {"dup_top", "faults: []\nfaults: []\n", -3,
     "policy.yaml:2:1: duplicate key \"faults\" (first given at line 1)"},
    {"bad_api", "apiVersion: v1\nkind: Policy\n", -3,
     "policy.yaml:1:13: apiVersion: \"v1\" is not supported (use apiVersion: grpcguard.io/v1)"},
    {"bad_kind", "apiVersion: grpcguard.io/v1\nkind: AuthorizationPolicy\n", -3,
     "policy.yaml:2:7: kind: \"AuthorizationPolicy\" is not supported (use kind: Policy)"},
    {"faults_map", "faults: {name: x}\n", -3,
     "policy.yaml:1:9: faults: expected a list of fault entries, found a mapping"},
    {"fault_scalar", "faults: [x]\n", -3,
     "policy.yaml:1:10: faults[0]: expected a fault entry (a mapping), found a scalar"},
    {"fault_empty", "faults:\n  - {}\n", -3,
     "policy.yaml:2:5: faults[0]: an empty fault entry (give it a delay or an abort)"},
    {"fault_noaction", "faults:\n  - name: x\n    match: {methods: ['*']}\n", -3,
     "policy.yaml:2:5: faults[0]: neither delay nor abort given (add delay: {fixed: 1s} or abort: "
     "{grpcStatus: UNAVAILABLE})"},
    {"fault_name_empty", "faults:\n  - name: ''\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:11: faults[0].name: must not be empty"},
    {"fault_name_list", "faults:\n  - name: [a]\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:11: faults[0].name: expected a string, found a list"},
    {"fault_dup_name",
     "faults:\n  - name: a\n    delay: {fixed: 1s}\n  - name: a\n    delay: {fixed: 2s}\n", -3,
     "policy.yaml:4:5: faults[1]: duplicate name \"a\" (also faults[0]; names label metrics, make "
     "them unique)"},
    {"delay_bad", "faults:\n  - delay: {fixed: tenseconds}\n", -3,
     "policy.yaml:2:20: faults[0].delay.fixed: \"tenseconds\" is not a duration (use 250ms, 1.5s, "
     "10s)"},
    {"delay_nounit", "faults:\n  - delay: {fixed: 10}\n", -3,
     "policy.yaml:2:20: faults[0].delay.fixed: \"10\" is not a duration (use 250ms, 1.5s, 10s)"},
    {"delay_missing", "faults:\n  - delay: {percent: 10}\n", -3,
     "policy.yaml:2:12: faults[0].delay: missing \"fixed\" (e.g. delay: {fixed: 2s, percent: 50})"},
    {"delay_fixedDelay", "faults:\n  - delay: {fixedDelay: 1s}\n", -3,
     "policy.yaml:2:13: faults[0].delay: unknown key \"fixedDelay\" (use fixed, e.g. delay: "
     "{fixed: 2s})"},
    {"percent_over", "faults:\n  - delay: {fixed: 1s, percent: 100.5}\n", -3,
     "policy.yaml:2:33: faults[0].delay.percent: \"100.5\" is over 100 (use a number from 0 to "
     "100)"},
    {"percent_neg", "faults:\n  - delay: {fixed: 1s, percent: -1}\n", -3,
     "policy.yaml:2:33: faults[0].delay.percent: \"-1\" is not a percentage (use a number from 0 "
     "to 100, e.g. 50 or 12.5)"},
    {"percent_pct", "faults:\n  - delay: {fixed: 1s, percent: 50%}\n", -3,
     "policy.yaml:2:33: faults[0].delay.percent: \"50%\" is not a percentage (use a number from 0 "
     "to 100, e.g. 50 or 12.5)"},
    {"percent_inf", "faults:\n  - delay: {fixed: 1s, percent: .inf}\n", -3,
     "policy.yaml:2:33: faults[0].delay.percent: \".inf\" is not a percentage (use a number from 0 "
     "to 100, e.g. 50 or 12.5)"},
    {"percent_hex", "faults:\n  - delay: {fixed: 1s, percent: 0x10}\n", -3,
     "policy.yaml:2:33: faults[0].delay.percent: \"0x10\" is not a percentage (use a number from 0 "
     "to 100, e.g. 50 or 12.5)"},
    {"percent_exp_over", "faults:\n  - delay: {fixed: 1s, percent: 1e3}\n", -3,
     "policy.yaml:2:33: faults[0].delay.percent: \"1e3\" is over 100 (use a number from 0 to 100)"},
    {"claims_too_deep",
     "authorization:\n  - rules: [{when: [{key: "
     "'request.auth.claims[a][a][a][a][a][a][a][a][a][a][a][a][a][a][a][a][a]', values: [x]}]}]\n",
     -3,
     "policy.yaml:2:27: authorization[0].rules[0].when[0].key: claims nested deeper than 16 "
     "levels"},
    {"map_key_list", "faults:\n  - match: {headers: {[a]: b}}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:23: faults[0].match.headers: a key must be a non-empty name, found a list"},
    {"default_name_clash",
     "faults:\n  - delay: {fixed: 1s}\n  - name: fault-0\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:3:5: faults[1]: duplicate name \"fault-0\" (also faults[0]; names label metrics, "
     "make them unique)"},
    {"jwks_empty_string", "requestAuthentication:\n  - issuer: i\n    jwks: ''\n", -3,
     "policy.yaml:3:11: requestAuthentication[0].jwks: must not be empty"},
    {"audiences_item_list",
     "requestAuthentication:\n  - issuer: i\n    jwksFile: /x\n    audiences: [[a]]\n", -3,
     "policy.yaml:4:17: requestAuthentication[0].audiences[0]: expected a string, found a list"},
    {"abort_missing", "faults:\n  - abort: {message: x}\n", -3,
     "policy.yaml:2:12: faults[0].abort: missing \"grpcStatus\" (e.g. abort: {grpcStatus: "
     "UNAVAILABLE})"},
    {"abort_bad", "faults:\n  - abort: {grpcStatus: BROKEN}\n", -3,
     "policy.yaml:2:25: faults[0].abort.grpcStatus: \"BROKEN\" is not a gRPC status (use a name "
     "like UNAVAILABLE or a number from 1 to 16)"},
    {"abort_17", "faults:\n  - abort: {grpcStatus: 17}\n", -3,
     "policy.yaml:2:25: faults[0].abort.grpcStatus: \"17\" is not a gRPC status (use a name like "
     "UNAVAILABLE or a number from 1 to 16)"},
    {"abort_ok", "faults:\n  - abort: {grpcStatus: OK}\n", -3,
     "policy.yaml:2:25: faults[0].abort.grpcStatus: \"OK\" is success, not an abort (use a status "
     "from 1 to 16, e.g. UNAVAILABLE)"},
    {"abort_http", "faults:\n  - abort: {httpStatus: 503}\n", -3,
     "policy.yaml:2:13: faults[0].abort: unknown key \"httpStatus\" (gRPC faults abort with "
     "grpcStatus, e.g. grpcStatus: UNAVAILABLE)"},
    {"abort_msg_map", "faults:\n  - abort: {grpcStatus: 14, message: {a: b}}\n", -3,
     "policy.yaml:2:38: faults[0].abort.message: expected a string, found a mapping"},
    {"method_noslash",
     "faults:\n  - match: {methods: [helloworld.Greeter/SayHello]}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:23: faults[0].match.methods[0]: \"helloworld.Greeter/SayHello\" is not a gRPC "
     "method (use \"/package.Service/Method\", \"/package.Service/*\" or \"*\")"},
    {"method_midstar", "faults:\n  - match: {methods: ['/a.*/B']}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:23: faults[0].match.methods[0]: \"/a.*/B\": a '*' only works alone, at the "
     "start or at the end (e.g. \"/pkg.Svc/*\")"},
    {"method_empty_list", "faults:\n  - match: {methods: []}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:22: faults[0].match.methods: an empty list matches nothing (remove the key, or "
     "list methods)"},
    {"method_scalar", "faults:\n  - match: {methods: '/a.B/C'}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:22: faults[0].match.methods: expected a list of methods, found a scalar"},
    {"headers_list", "faults:\n  - match: {headers: [x-a]}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:22: faults[0].match.headers: expected a mapping of names to strings, found a "
     "list"},
    {"headers_dup", "faults:\n  - match: {headers: {X-A: '1', x-a: '2'}}\n    delay: {fixed: 1s}\n",
     -3, "policy.yaml:2:33: faults[0].match.headers.x-a: duplicate key (first given at line 2)"},
    {"headers_val_list", "faults:\n  - match: {headers: {x-a: [1]}}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:28: faults[0].match.headers.x-a: expected a string value, found a list (quote "
     "it: \"...\")"},
    {"selector_unknown", "faults:\n  - selector: {app: server}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:16: faults[0].selector: unknown key \"app\" (known keys: matchLabels)"},
    {"selector_labels_list",
     "faults:\n  - selector: {matchLabels: [app]}\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:29: faults[0].selector.matchLabels: expected a mapping of names to strings, "
     "found a list"},
    {"authz_action", "authorization:\n  - name: a\n    action: allow\n", -3,
     "policy.yaml:3:13: authorization[0].action: \"allow\" is not an action (use ALLOW, DENY or "
     "AUDIT)"},
    {"authz_custom", "authorization:\n  - name: a\n    action: CUSTOM\n", -3,
     "policy.yaml:3:13: authorization[0].action: \"CUSTOM\" (external authorizers) is not "
     "supported (use ALLOW, DENY or AUDIT)"},
    {"authz_dup", "authorization:\n  - name: a\n  - name: a\n", -3,
     "policy.yaml:3:5: authorization[1]: duplicate name \"a\" (also authorization[0]; names label "
     "metrics, make them unique)"},
    {"rules_map", "authorization:\n  - name: a\n    rules: {from: []}\n", -3,
     "policy.yaml:3:12: authorization[0].rules: expected a list of rules, found a mapping"},
    {"rule_unknown", "authorization:\n  - name: a\n    rules: [{form: []}]\n", -3,
     "policy.yaml:3:14: authorization[0].rules[0]: unknown key \"form\" (did you mean \"from\"? "
     "known keys: from, to, when)"},
    {"from_empty_src", "authorization:\n  - name: a\n    rules: [{from: [{}]}]\n", -3,
     "policy.yaml:3:21: authorization[0].rules[0].from[0]: an empty source (give ipBlocks, "
     "notIpBlocks, requestPrincipals, notRequestPrincipals, principals, notPrincipals, "
     "namespaces or notNamespaces, or drop it)"},
    {"cidr_bad", "authorization:\n  - rules:\n      - from: [{ipBlocks: [10.0.0.0/33]}]\n", -3,
     "policy.yaml:3:28: authorization[0].rules[0].from[0].ipBlocks[0]: \"10.0.0.0/33\" is not an "
     "IP address or CIDR block (use 10.0.0.0/8, 192.168.1.7 or 2001:db8::/32)"},
    {"cidr_v6_bad",
     "authorization:\n  - rules:\n      - from: [{notIpBlocks: ['2001:db8::/129']}]\n", -3,
     "policy.yaml:3:31: authorization[0].rules[0].from[0].notIpBlocks[0]: \"2001:db8::/129\" is "
     "not an IP address or CIDR block (use 10.0.0.0/8, 192.168.1.7 or 2001:db8::/32)"},
    {"cidr_empty", "authorization:\n  - rules:\n      - from: [{ipBlocks: []}]\n", -3,
     "policy.yaml:3:27: authorization[0].rules[0].from[0].ipBlocks: an empty list matches nothing "
     "(remove the key, or list CIDR blocks)"},
    {"principals_paths", "authorization:\n  - rules:\n      - to: [{paths: [/a.B/C]}]\n", -3,
     "policy.yaml:3:15: authorization[0].rules[0].to[0]: unknown key \"paths\" (grpcguard matches "
     "gRPC methods with \"methods\", e.g. methods: [\"/pkg.Svc/*\"])"},
    {"to_empty", "authorization:\n  - rules:\n      - to: [{}]\n", -3,
     "policy.yaml:3:14: authorization[0].rules[0].to[0]: an empty operation (give methods or "
     "notMethods, or drop it)"},
    {"when_nokey", "authorization:\n  - rules:\n      - when: [{values: [a]}]\n", -3,
     "policy.yaml:3:16: authorization[0].rules[0].when[0]: missing header or key (e.g. {header: "
     "x-tenant, values: [blue]})"},
    {"when_both",
     "authorization:\n  - rules:\n      - when: [{header: a, key: request.auth.principal, values: "
     "[a]}]\n",
     -3,
     "policy.yaml:3:16: authorization[0].rules[0].when[0]: give either header or key, not both"},
    {"when_novalues", "authorization:\n  - rules:\n      - when: [{header: x-a}]\n", -3,
     "policy.yaml:3:16: authorization[0].rules[0].when[0]: missing values or notValues (e.g. "
     "values: [\"blue\"])"},
    {"when_badkey", "authorization:\n  - rules:\n      - when: [{key: source.ip, values: [a]}]\n",
     -3,
     "policy.yaml:3:22: authorization[0].rules[0].when[0].key: \"source.ip\" is not a supported "
     "key (use request.headers[NAME], request.auth.claims[NAME], request.auth.principal, "
     "request.auth.audiences, source.principal or source.namespace)"},
    {"when_badclaim",
     "authorization:\n  - rules:\n      - when: [{key: 'request.auth.claims[]', values: [a]}]\n",
     -3,
     "policy.yaml:3:22: authorization[0].rules[0].when[0].key: \"request.auth.claims[]\" is not a "
     "claim reference (use request.auth.claims[NAME] or request.auth.claims[a][b])"},
    {"when_badclaim2",
     "authorization:\n  - rules:\n      - when: [{key: 'request.auth.claims[a]x', values: [a]}]\n",
     -3,
     "policy.yaml:3:22: authorization[0].rules[0].when[0].key: \"request.auth.claims[a]x\" is not "
     "a claim reference (use request.auth.claims[NAME] or request.auth.claims[a][b])"},
    {"value_bothstar", "authorization:\n  - rules:\n      - when: [{header: x, values: ['*a*']}]\n",
     -3,
     "policy.yaml:3:37: authorization[0].rules[0].when[0].values[0]: \"*a*\": use a '*' at the "
     "start or at the end, not both"},
    {"authn_noissuer", "requestAuthentication:\n  - jwksFile: /x\n", -3,
     "policy.yaml:2:5: requestAuthentication[0]: missing \"issuer\" (e.g. issuer: "
     "https://issuer.example.com)"},
    {"authn_nojwks", "requestAuthentication:\n  - issuer: i\n", -3,
     "policy.yaml:2:5: requestAuthentication[0]: missing jwksFile or jwks (e.g. jwksFile: "
     "/etc/grpcguard/jwks/jwks.json)"},
    {"authn_bothjwks", "requestAuthentication:\n  - issuer: i\n    jwksFile: /x\n    jwks: '{}'\n",
     -3, "policy.yaml:4:11: requestAuthentication[0]: give either jwksFile or jwks, not both"},
    {"authn_badjwks", "requestAuthentication:\n  - issuer: i\n    jwks: '{\"keys\": 1}'\n", -3,
     "policy.yaml:3:11: requestAuthentication[0].jwks: not a JWKS: expected a JSON object with a "
     "\"keys\" list (no \"keys\" list)"},
    {"authn_notjson", "requestAuthentication:\n  - issuer: i\n    jwks: 'nope'\n", -3,
     "policy.yaml:3:11: requestAuthentication[0].jwks: not a JWKS: expected a JSON object with a "
     "\"keys\" list ('[' or '{' expected near 'nope')"},
    {"authn_uri", "requestAuthentication:\n  - issuer: i\n    jwksUri: https://x/jwks\n", -3,
     "policy.yaml:3:5: requestAuthentication[0]: unknown key \"jwksUri\" (grpcguard does not fetch "
     "keys: mount the JWKS and use jwksFile)"},
    {"authn_fwd",
     "requestAuthentication:\n  - issuer: i\n    jwksFile: /x\n    forwardOriginalToken: maybe\n",
     -3,
     "policy.yaml:4:27: requestAuthentication[0].forwardOriginalToken: \"maybe\" is not a boolean "
     "(use true or false)"},
    {"authn_hdr_noname",
     "requestAuthentication:\n  - issuer: i\n    jwksFile: /x\n    fromHeaders: [{prefix: 'Bearer "
     "'}]\n",
     -3,
     "policy.yaml:4:19: requestAuthentication[0].fromHeaders[0]: missing \"name\" (e.g. {name: "
     "authorization, prefix: \"Bearer \"})"},
    {"authn_hdr_empty",
     "requestAuthentication:\n  - issuer: i\n    jwksFile: /x\n    fromHeaders: []\n", -3,
     "policy.yaml:4:18: requestAuthentication[0].fromHeaders: an empty list: no token could ever "
     "be found (remove the key for the default authorization: Bearer)"},
    {"authn_aud_map",
     "requestAuthentication:\n  - issuer: i\n    jwksFile: /x\n    audiences: {a: b}\n", -3,
     "policy.yaml:4:16: requestAuthentication[0].audiences: expected a list of audiences, found a "
     "mapping"},
    {"deep",
     "faults: "
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     -3, "policy.yaml:1:72: nested deeper than 64 levels"},
    {"nul", "faults:\n  - name: \"a\\0b\"\n    delay: {fixed: 1s}\n", -3,
     "policy.yaml:2:11: a NUL character in a string is not allowed"},
    {"badutf8",
     "faults:\n  - name: \"\xff"
     "\"\n",
     -2, "policy.yaml:2:12: not valid YAML: invalid leading UTF-8 octet"},
    {"alias_only", "faults: *x\n", -3,
     "policy.yaml:1:9: YAML aliases (*x) are not supported; write the value out"},
    {"key_map", "? [a]\n: b\n", -3, "policy.yaml:1:3: a key must be a plain name, found a list"},
    {"dest_port", "faults:\n  - match: {destinations: [server, 'server:8080']}\n    abort: {}\n",
     -3,
     "policy.yaml:2:36: faults[0].match.destinations[1]: \"server:8080\": give the host without "
     "a port (e.g. \"server\", not \"server:8080\")"},
    {"dest_empty_list", "faults:\n  - match: {destinations: []}\n    abort: {}\n", -3,
     "policy.yaml:2:27: faults[0].match.destinations: an empty list matches nothing (remove the "
     "key, or list destination hosts)"},
    {"dest_star_mid", "faults:\n  - match: {destinations: ['a.*.com']}\n    abort: {}\n", -3,
     "policy.yaml:2:28: faults[0].match.destinations[0]: \"a.*.com\": a '*' only works alone or "
     "as \"*.suffix\""},
    {"dest_bad_char", "faults:\n  - match: {destinations: ['http://x']}\n    abort: {}\n", -3,
     "policy.yaml:2:28: faults[0].match.destinations[0]: \"http://x\": not a host name (letters, "
     "digits, '-' and '.', e.g. \"server\", \"server.demo.svc.cluster.local\" or "
     "\"api.example.com\")"},
    {"dest_slash", "faults:\n  - match: {destinations: [a/b]}\n    abort: {}\n", -3,
     "policy.yaml:2:28: faults[0].match.destinations[0]: \"a/b\": not a host name (letters, "
     "digits, '-' and '.', e.g. \"server\", \"server.demo.svc.cluster.local\" or "
     "\"api.example.com\")"},
    {"dest_dots", "faults:\n  - match: {destinations: [a..b]}\n    abort: {}\n", -3,
     "policy.yaml:2:28: faults[0].match.destinations[0]: \"a..b\": an empty label (\"..\" or a "
     "leading '.')"},
    {"dest_map", "faults:\n  - match: {destinations: {a: b}}\n    abort: {}\n", -3,
     "policy.yaml:2:27: faults[0].match.destinations: expected a list of destination hosts, "
     "found a mapping"},
    /* issue 16: the caller's identity and mtls */
    {"when_source_principal_bad",
     "authorization:\n  - rules:\n      - when: [{key: source.principal, values: [frontend]}]\n",
     -3,
     "policy.yaml:3:49: authorization[0].rules[0].when[0].values[0]: \"frontend\" is not a "
     "principal "
     "(use <trustDomain>/ns/<namespace>/sa/<serviceaccount>, e.g. "
     "\"cluster.local/ns/demo/sa/frontend\", or put a '*' at the start or end, e.g. "
     "\"cluster.local/ns/demo/*\")"},
    {"when_source_namespace_bad",
     "authorization:\n  - rules:\n      - when: [{key: source.namespace, notValues: ['']}]\n", -3,
     "policy.yaml:3:52: authorization[0].rules[0].when[0].notValues[0]: an empty string names no "
     "caller (e.g. \"demo\", or \"*\" for any verified caller)"},
    {"principal_star_mid",
     "authorization:\n  - rules:\n      - from: [{principals: ['cluster.local/ns/*/sa/x']}]\n", -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]: "
     "\"cluster.local/ns/*/sa/x\": a '*' only works alone, at the start or at the end (e.g. "
     "\"cluster.local/ns/demo/*\")"},
    {"principal_two_stars",
     "authorization:\n  - rules:\n      - from: [{notPrincipals: ['*cluster*']}]\n", -3,
     "policy.yaml:3:33: authorization[0].rules[0].from[0].notPrincipals[0]: \"*cluster*\": use a "
     "'*' at the start or at the end, not both"},
    {"principal_empty", "authorization:\n  - rules:\n      - from: [{principals: ['']}]\n", -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]: an empty string names no "
     "caller (e.g. \"cluster.local/ns/demo/sa/frontend\", or \"*\" for any verified caller)"},
    {"principal_empty_list", "authorization:\n  - rules:\n      - from: [{principals: []}]\n", -3,
     "policy.yaml:3:29: authorization[0].rules[0].from[0].principals: an empty list matches "
     "nothing (remove the key, or list principals)"},
    {"principal_scalar",
     "authorization:\n  - rules:\n      - from: [{principals: cluster.local/ns/demo/sa/x}]\n", -3,
     "policy.yaml:3:29: authorization[0].rules[0].from[0].principals: expected a list of "
     "principals, found a scalar"},
    {"principal_map", "authorization:\n  - rules:\n      - from: [{notPrincipals: [{a: b}]}]\n", -3,
     "policy.yaml:3:33: authorization[0].rules[0].from[0].notPrincipals[0]: expected a string, "
     "found a mapping"},
    {"principal_sa_only", "authorization:\n  - rules:\n      - from: [{principals: [frontend]}]\n",
     -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]: \"frontend\" is not a "
     "principal (use <trustDomain>/ns/<namespace>/sa/<serviceaccount>, e.g. "
     "\"cluster.local/ns/demo/sa/frontend\", or put a '*' at the start or end, e.g. "
     "\"cluster.local/ns/demo/*\")"},
    {"principal_spiffe",
     "authorization:\n  - rules:\n      - from: [{principals: "
     "['spiffe://cluster.local/ns/demo/sa/x']}]\n",
     -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]: "
     "\"spiffe://cluster.local/ns/demo/sa/x\" is a SPIFFE URI: write the principal without "
     "\"spiffe://\" (e.g. \"cluster.local/ns/demo/sa/frontend\")"},
    {"principal_spiffe_prefix",
     "authorization:\n  - rules:\n      - from: [{principals: ['spiffe://cluster.local/*']}]\n", -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]: "
     "\"spiffe://cluster.local/*\" is a SPIFFE URI: write the principal without \"spiffe://\" "
     "(e.g. \"cluster.local/ns/demo/sa/frontend\")"},
    {"principal_bad_char",
     "authorization:\n  - rules:\n      - from: [{principals: ['*/sa/a b']}]\n", -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].principals[0]: \"*/sa/a b\" has a "
     "character no principal contains (principals use letters, digits, '.', '-', '_' and '/')"},
    {"namespace_upper", "authorization:\n  - rules:\n      - from: [{namespaces: [Demo]}]\n", -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].namespaces[0]: \"Demo\" is not a "
     "namespace name (lowercase letters, digits and '-', at most 63, starting and ending with a "
     "letter or digit; e.g. \"demo\" or \"team-*\")"},
    {"namespace_slash", "authorization:\n  - rules:\n      - from: [{notNamespaces: ['demo/*']}]\n",
     -3,
     "policy.yaml:3:33: authorization[0].rules[0].from[0].notNamespaces[0]: \"demo/*\" has a "
     "character no namespace name contains (lowercase letters, digits and '-')"},
    {"namespace_empty", "authorization:\n  - rules:\n      - from: [{namespaces: ['']}]\n", -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].namespaces[0]: an empty string names no "
     "caller (e.g. \"demo\", or \"*\" for any verified caller)"},
    {"namespace_star_mid", "authorization:\n  - rules:\n      - from: [{namespaces: ['a*b']}]\n",
     -3,
     "policy.yaml:3:30: authorization[0].rules[0].from[0].namespaces[0]: \"a*b\": a '*' only works "
     "alone, at the start or at the end (e.g. \"team-*\")"},
    {"principals_in_to", "authorization:\n  - rules:\n      - to: [{principals: ['*']}]\n", -3,
     "policy.yaml:3:15: authorization[0].rules[0].to[0]: unknown key \"principals\" (the caller's "
     "identity belongs in from: [{principals: [...]}])"},
    {"mtls_scalar", "mtls: STRICT\n", -3,
     "policy.yaml:1:7: mtls: expected a mapping like mtls: {mode: STRICT}, found a scalar"},
    {"mtls_bad_mode", "mtls: {mode: strict}\n", -3,
     "policy.yaml:1:14: mtls.mode: \"strict\" is not an mtls mode (use PERMISSIVE or STRICT)"},
    {"mtls_disable", "mtls: {mode: DISABLE}\n", -3,
     "policy.yaml:1:14: mtls.mode: \"DISABLE\" is not supported (use PERMISSIVE to accept "
     "plaintext and mutual TLS, or STRICT to accept mutual TLS only)"},
    {"mtls_no_mode", "mtls: {}\n", -3,
     "policy.yaml:1:7: mtls: missing \"mode\" (e.g. mtls: {mode: STRICT})"},
    {"mtls_selector", "mtls:\n  mode: STRICT\n  selector: {matchLabels: {app: server}}\n", -3,
     "policy.yaml:3:3: mtls.selector: mtls applies to every pod this file reaches, it takes no "
     "selector (give the pods that need another mode their own policy ConfigMap with the "
     "grpcguard.io/policy-configmap annotation)"},
    {"mtls_port_level", "mtls:\n  mode: STRICT\n  portLevelMtls: {8080: {mode: DISABLE}}\n", -3,
     "policy.yaml:3:3: mtls.portLevelMtls: per-port modes are not supported: the mode applies to "
     "every port the sidecar intercepts"},
    {"mtls_unknown", "mtls: {mdoe: STRICT}\n", -3,
     "policy.yaml:1:8: mtls: unknown key \"mdoe\" (did you mean \"mode\"? known keys: mode)"},
    {"mtls_dup", "mtls: {mode: STRICT}\nmtls: {mode: PERMISSIVE}\n", -3,
     "policy.yaml:2:1: duplicate key \"mtls\" (first given at line 1)"},
    {"peers_hint", "mtls: {mode: STRICT, peers: []}\n", -3,
     "policy.yaml:1:22: mtls: unknown key \"peers\" (mutual TLS is one top-level key: mtls: {mode: "
     "STRICT})"},
};

START_TEST(test_errors)
{
	struct policy *p = (struct policy *)0x1;
	struct policy_diag d;
	const char *yaml = error_cases[_i].yaml;
	unsigned line = 0, col = 0;

	int rc = policy_parse_buffer("policy.yaml", yaml, strlen(yaml), &p, &d);
	ck_assert_msg(rc == error_cases[_i].rc, "%s: rc %d, want %d (%s)", error_cases[_i].name, rc,
		      error_cases[_i].rc, d.text);
	ck_assert_ptr_null(p);
	ck_assert_msg(strcmp(d.text, error_cases[_i].text) == 0, "%s:\n got  %s\n want %s",
		      error_cases[_i].name, d.text, error_cases[_i].text);
	/* The structured position agrees with the text. */
	ck_assert_int_eq(sscanf(d.text, "policy.yaml:%u:%u:", &line, &col), 2);
	ck_assert_uint_eq(d.line, line);
	ck_assert_uint_eq(d.column, col);
}
END_TEST

/* ---- valid documents --------------------------------------------------------------- */
START_TEST(test_empty_documents)
{
	static const char *const docs[] = {"",
					   "\n",
					   "# only a comment\n",
					   "{}",
					   "null\n",
					   "~",
					   "---\n",
					   "---\n...\n",
					   "faults: []\nauthorization: []\n",
					   "faults:\nauthorization: null\n"};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct policy *p = parse_ok(docs[i]);
		ck_assert_uint_eq(policy_fault_count(p), 0);
		ck_assert_uint_eq(policy_authz_count(p), 0);
		ck_assert_uint_eq(policy_authn_count(p), 0);
		policy_unref(p);
	}
}
END_TEST

START_TEST(test_examples_parse)
{
	DIR *d = opendir(data_dir());
	struct dirent *e;
	int n = 0;

	ck_assert_msg(d != NULL, "%s: %s", data_dir(), strerror(errno));
	while ((e = readdir(d))) {
		char path[2048];
		size_t len = strlen(e->d_name);
		struct policy *p = NULL;
		struct policy_diag diag;
		if (len < 5 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", data_dir(), e->d_name);
		int rc = policy_parse_file(path, &p, &diag);
		ck_assert_msg(rc == 0, "%s", diag.text);
		policy_unref(p);
		n++;
	}
	closedir(d);
	ck_assert_int_ge(n, 2);
}
END_TEST

START_TEST(test_design_example_fields)
{
	char path[2048];
	struct policy *p = NULL;
	struct policy_diag d;

	snprintf(path, sizeof(path), "%s/design_example.yaml", data_dir());
	ck_assert_int_eq(policy_parse_file(path, &p, &d), 0);
	ck_assert_uint_eq(policy_fault_count(p), 1);
	ck_assert_uint_eq(policy_authz_count(p), 1);
	ck_assert_uint_eq(policy_authn_count(p), 0);
	ck_assert_ptr_null(policy_authn_get(p, 0));
	policy_unref(p);
}
END_TEST

START_TEST(test_authn_fields)
{
	struct policy *p = parse_ok(
	    "requestAuthentication:\n"
	    "  - issuer: https://a.example\n"
	    "    audiences: [greeter, other]\n"
	    "    jwks: '{\"keys\": []}'\n"
	    "    fromHeaders: [{name: X-Token}, {name: Authorization, prefix: 'Bearer '}]\n"
	    "    forwardOriginalToken: false\n"
	    "  - issuer: https://b.example\n"
	    "    jwksFile: /etc/grpcguard/jwks/b.json\n");
	const struct policy_authn *a = policy_authn_get(p, 0), *b = policy_authn_get(p, 1);

	ck_assert_uint_eq(policy_authn_count(p), 2);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(a->issuer, "https://a.example");
	ck_assert_uint_eq(a->naudiences, 2);
	ck_assert_str_eq(a->audiences[0], "greeter");
	ck_assert_str_eq(a->audiences[1], "other");
	ck_assert_str_eq(a->jwks_inline, "{\"keys\": []}");
	ck_assert_ptr_null(a->jwks_file);
	ck_assert_uint_eq(a->nfrom_headers, 2);
	ck_assert_str_eq(a->from_headers[0].name, "x-token"); /* lowercased */
	ck_assert_str_eq(a->from_headers[0].prefix, "");
	ck_assert_str_eq(a->from_headers[1].name, "authorization");
	ck_assert_str_eq(a->from_headers[1].prefix, "Bearer ");
	ck_assert(!a->forward_original_token);
	/* Defaults. */
	ck_assert_str_eq(b->jwks_file, "/etc/grpcguard/jwks/b.json");
	ck_assert_ptr_null(b->jwks_inline);
	ck_assert_uint_eq(b->naudiences, 0);
	ck_assert_uint_eq(b->nfrom_headers, 1);
	ck_assert_str_eq(b->from_headers[0].name, "authorization");
	ck_assert_str_eq(b->from_headers[0].prefix, "Bearer ");
	ck_assert(b->forward_original_token);
	ck_assert_ptr_null(policy_authn_get(p, 2));
	policy_unref(p);
}
END_TEST

START_TEST(test_refcount)
{
	struct policy *p = policy_new_empty();
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_eq(policy_ref(p), p);
	policy_unref(p);
	policy_unref(p);
	policy_unref(NULL);
	ck_assert_ptr_null(policy_ref(NULL));
	ck_assert_uint_eq(policy_fault_count(NULL), 0);
}
END_TEST

/* ---- files and limits ---------------------------------------------------------------- */
START_TEST(test_file_errors)
{
	struct policy *p = (struct policy *)0x1;
	struct policy_diag d;
	char tmpl[] = "/tmp/gg-policy-XXXXXX";
	int fd;

	ck_assert_int_eq(policy_parse_file("/nonexistent/policy.yaml", &p, &d), POLICY_ERR_IO);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(d.text,
			 "/nonexistent/policy.yaml: cannot open: No such file or directory");
	ck_assert_uint_eq(d.line, 0);

	/* A directory opens but cannot be read. */
	ck_assert_int_eq(policy_parse_file("/", &p, &d), POLICY_ERR_IO);
	ck_assert_str_eq(d.text, "/: cannot read: Is a directory");

	/* One byte over the limit. */
	fd = mkstemp(tmpl);
	ck_assert_int_ge(fd, 0);
	char *big = malloc(POLICY_MAX_FILE_BYTES + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, '#', POLICY_MAX_FILE_BYTES + 1);
	ck_assert(write(fd, big, POLICY_MAX_FILE_BYTES + 1) == POLICY_MAX_FILE_BYTES + 1);
	close(fd);
	ck_assert_int_eq(policy_parse_file(tmpl, &p, &d), POLICY_ERR_TOOBIG);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(policy_parse_buffer("big.yaml", big, POLICY_MAX_FILE_BYTES + 1, &p, &d),
			 POLICY_ERR_TOOBIG);
	ck_assert_str_eq(d.text,
			 "big.yaml: 1048577 bytes is over the 1048576 byte limit for a policy");
	/* Exactly at the limit is fine (all comment). */
	ck_assert_int_eq(policy_parse_buffer("big.yaml", big, POLICY_MAX_FILE_BYTES, &p, &d), 0);
	policy_unref(p);
	free(big);
	unlink(tmpl);
}
END_TEST

START_TEST(test_strerror)
{
	ck_assert_str_eq(policy_strerror(POLICY_OK), "success");
	ck_assert_str_eq(policy_strerror(POLICY_ERR_IO), "cannot read the policy file");
	ck_assert_str_eq(policy_strerror(POLICY_ERR_SYNTAX), "not valid YAML");
	ck_assert_str_eq(policy_strerror(POLICY_ERR_SCHEMA), "not a valid grpcguard policy");
	ck_assert_str_eq(policy_strerror(POLICY_ERR_NOMEM), "out of memory");
	ck_assert_str_eq(policy_strerror(POLICY_ERR_TOOBIG), "policy file too big");
	ck_assert_str_eq(policy_strerror(-99), "unknown policy error");
}
END_TEST

/* A billion-laughs file is refused at the first anchor, quickly. */
START_TEST(test_billion_laughs)
{
	const char *yaml =
	    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
	    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n";
	struct policy *p = NULL;
	struct policy_diag d;

	ck_assert_int_eq(policy_parse_buffer("policy.yaml", yaml, strlen(yaml), &p, &d),
			 POLICY_ERR_SCHEMA);
	ck_assert_str_eq(
	    d.text, "policy.yaml:1:4: YAML anchors (&a) are not supported; write the value out");
}
END_TEST

/* Entry-count limits, with inputs too long to write out in the table. */
START_TEST(test_count_limits)
{
	char *buf = malloc(200000);
	struct policy *p = NULL;
	struct policy_diag d;
	size_t n;

	ck_assert_ptr_nonnull(buf);
	n = (size_t)sprintf(buf, "faults:\n  - selector: {matchLabels: {");
	for (int i = 0; i < 257; i++)
		n += (size_t)sprintf(buf + n, "%sk%d: v", i ? ", " : "", i);
	n += (size_t)sprintf(buf + n, "}}\n    delay: {fixed: 1s}\n");
	ck_assert_int_eq(policy_parse_buffer("policy.yaml", buf, n, &p, &d), POLICY_ERR_SCHEMA);
	ck_assert_str_eq(d.text,
			 "policy.yaml:2:29: faults[0].selector.matchLabels: more than 256 entries");

	n = (size_t)sprintf(buf, "faults:\n");
	for (int i = 0; i < 4097; i++)
		n += (size_t)sprintf(buf + n, "- {delay: {fixed: 1s}}\n");
	ck_assert_int_eq(policy_parse_buffer("policy.yaml", buf, n, &p, &d), POLICY_ERR_SCHEMA);
	ck_assert_str_eq(d.text, "policy.yaml:2:1: faults: more than 4096 entries");
	/* 4096 is fine. */
	n -= strlen("- {delay: {fixed: 1s}}\n");
	ck_assert_int_eq(policy_parse_buffer("policy.yaml", buf, n, &p, &d), 0);
	ck_assert_uint_eq(policy_fault_count(p), 4096);
	policy_unref(p);
	free(buf);
}
END_TEST

int main(void)
{
	const struct ut_opts quick = {.timeout_s = 10}, slow = {.timeout_s = 30};
	Suite *s = suite_create("policy/parse");
	const struct ut_case tests[] = {
	    {"empty_documents", test_empty_documents},
	    {"examples", test_examples_parse},
	    {"examples", test_design_example_fields},
	    {"request_authentication", test_authn_fields},
	    {"lifecycle", test_refcount},
	    {"lifecycle", test_strerror},
	};
	const struct ut_case limits[] = {
	    {"limits", test_file_errors},
	    {"limits", test_billion_laughs},
	    {"limits", test_count_limits},
	};

	tcase_add_loop_test(ut_tcase(s, "errors", slow), test_errors, 0,
			    (int)UT_COUNT(error_cases));
	ut_add_cases(s, tests, UT_COUNT(tests), quick);
	ut_add_cases(s, limits, UT_COUNT(limits), slow);
	return ut_run(s);
}
