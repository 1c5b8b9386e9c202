/*
 * policy/eval: the decision table (Istio semantics), selectors, CIDR edges, method
 * patterns, header/claim/principal conditions, the health exemption and fault draws with
 * an injected random source.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

/* ---- helpers ------------------------------------------------------------------------ */
struct req {
	struct policy_header hdrs[8];
	struct sockaddr_storage ss;
	struct policy_request r;
};

static void req_init(struct req *q, const char *method)
{
	memset(q, 0, sizeof(*q));
	q->r.method = method;
	q->r.method_len = strlen(method);
	q->r.headers = q->hdrs;
}

static void req_header(struct req *q, const char *name, const char *value)
{
	ck_assert_uint_lt(q->r.nheaders, 8);
	q->hdrs[q->r.nheaders++] = (struct policy_header){name, strlen(name), value, strlen(value)};
}

static void req_peer(struct req *q, const char *ip)
{
	memset(&q->ss, 0, sizeof(q->ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&q->ss;
		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&q->ss;
		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	q->r.peer = (const struct sockaddr *)&q->ss;
}

static struct policy *load(const char *yaml)
{
	struct policy *p = NULL;
	struct policy_diag d;
	int rc = policy_parse_buffer("t.yaml", yaml, strlen(yaml), &p, &d);
	ck_assert_msg(rc == 0, "%s", d.text);
	return p;
}

static struct policy_labels *labels(const char *text)
{
	struct policy_labels *l = NULL;
	struct policy_diag d;
	ck_assert_msg(policy_labels_parse(text, strlen(text), &l, &d) == 0, "%s", d.text);
	return l;
}

static struct policy_decision eval(const struct policy *p, const struct req *q)
{
	struct policy_decision d;
	policy_evaluate(p, &q->r, NULL, NULL, &d);
	return d;
}

static bool allowed(const struct policy *p, const struct req *q)
{
	return eval(p, q).allowed;
}

#define SAY "/helloworld.Greeter/SayHello"
#define HEALTH "/grpc.health.v1.Health/Check"

/* ---- decision table ---------------------------------------------------------------- */
START_TEST(test_no_policies_allow)
{
	struct policy *p = policy_new_empty();
	struct req q;
	req_init(&q, SAY);
	struct policy_decision d = eval(p, &q);
	ck_assert(d.allowed);
	ck_assert_ptr_null(d.deciding_policy);
	ck_assert_ptr_null(d.audit_policy);
	ck_assert_ptr_null(d.fault_name);
	ck_assert_uint_eq(d.delay_ms, 0);
	ck_assert(!d.abort);
	/* NULL policy and NULL request: allowed, no crash. */
	policy_evaluate(NULL, &q.r, NULL, NULL, &d);
	ck_assert(d.allowed);
	policy_evaluate(p, NULL, NULL, NULL, &d);
	ck_assert(d.allowed);
	policy_unref(p);
}
END_TEST

START_TEST(test_deny_before_allow)
{
	/* The ALLOW comes first in the file; the DENY still wins. */
	struct policy *p = load("authorization:\n"
				"  - {name: allow-all, action: ALLOW, rules: [{}]}\n"
				"  - name: no-bye\n"
				"    action: DENY\n"
				"    rules: [{to: [{methods: ['/helloworld.Greeter/SayBye']}]}]\n");
	struct req q;
	req_init(&q, "/helloworld.Greeter/SayBye");
	struct policy_decision d = eval(p, &q);
	ck_assert(!d.allowed);
	ck_assert_str_eq(d.deciding_policy, "no-bye");
	req_init(&q, SAY);
	d = eval(p, &q);
	ck_assert(d.allowed);
	ck_assert_str_eq(d.deciding_policy, "allow-all");
	policy_unref(p);
}
END_TEST

START_TEST(test_only_deny_policies)
{
	/* No ALLOW policy: what no DENY matches is allowed, with no deciding policy. */
	struct policy *p =
	    load("authorization:\n"
		 "  - {name: d, action: DENY, rules: [{to: [{methods: ['/a.B/*']}]}]}\n");
	struct req q;
	req_init(&q, SAY);
	struct policy_decision d = eval(p, &q);
	ck_assert(d.allowed);
	ck_assert_ptr_null(d.deciding_policy);
	req_init(&q, "/a.B/C");
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

START_TEST(test_allow_none_match)
{
	struct policy *p =
	    load("authorization:\n"
		 "  - {name: a1, rules: [{to: [{methods: ['/a.B/C']}]}]}\n"
		 "  - {name: a2, action: ALLOW, rules: [{to: [{methods: ['/a.B/D']}]}]}\n");
	struct req q;
	req_init(&q, SAY);
	struct policy_decision d = eval(p, &q);
	ck_assert(!d.allowed);
	ck_assert_ptr_null(d.deciding_policy); /* default deny */
	req_init(&q, "/a.B/D");
	d = eval(p, &q);
	ck_assert(d.allowed);
	ck_assert_str_eq(d.deciding_policy, "a2");
	policy_unref(p);
}
END_TEST

START_TEST(test_rules_absent_empty_and_match_all)
{
	struct policy *none = load("authorization: [{name: a, action: ALLOW}]\n");
	struct policy *empty = load("authorization: [{name: a, action: ALLOW, rules: []}]\n");
	struct policy *all = load("authorization: [{name: a, action: ALLOW, rules: [{}]}]\n");
	struct policy *deny_none = load("authorization: [{name: d, action: DENY}]\n");
	struct req q;
	req_init(&q, SAY);
	ck_assert(!allowed(none, &q));
	ck_assert(!allowed(empty, &q));
	ck_assert(allowed(all, &q));
	ck_assert(allowed(deny_none, &q)); /* a DENY without rules never matches */
	policy_unref(none);
	policy_unref(empty);
	policy_unref(all);
	policy_unref(deny_none);
}
END_TEST

START_TEST(test_audit)
{
	struct policy *p =
	    load("authorization:\n"
		 "  - {name: audit-none, action: AUDIT, rules: [{to: [{methods: ['/x.Y/Z']}]}]}\n"
		 "  - {name: audit-say, action: AUDIT, rules: [{to: [{methods: ['" SAY "']}]}]}\n"
		 "  - {name: audit-all, action: AUDIT, rules: [{}]}\n");
	struct req q;
	req_init(&q, SAY);
	struct policy_decision d = eval(p, &q);
	ck_assert(d.allowed); /* AUDIT alone decides nothing */
	ck_assert_ptr_null(d.deciding_policy);
	ck_assert_str_eq(d.audit_policy, "audit-say");
	req_init(&q, "/other.S/M");
	d = eval(p, &q);
	ck_assert_str_eq(d.audit_policy, "audit-all");
	policy_unref(p);
}
END_TEST

START_TEST(test_audit_with_deny)
{
	struct policy *p = load("authorization:\n"
				"  - {name: d, action: DENY, rules: [{}]}\n"
				"  - {name: au, action: AUDIT, rules: [{}]}\n");
	struct req q;
	req_init(&q, SAY);
	struct policy_decision d = eval(p, &q);
	ck_assert(!d.allowed);
	ck_assert_str_eq(d.deciding_policy, "d");
	ck_assert_str_eq(d.audit_policy, "au");
	policy_unref(p);
}
END_TEST

/* ---- selectors ----------------------------------------------------------------------- */
START_TEST(test_selectors)
{
	struct policy *p = load("authorization:\n"
				"  - name: server-only\n"
				"    selector: {matchLabels: {app: server, tier: back}}\n"
				"    rules: [{to: [{methods: ['/a.B/C']}]}]\n"
				"  - name: deny-client\n"
				"    action: DENY\n"
				"    selector: {matchLabels: {app: client}}\n"
				"    rules: [{}]\n");
	struct policy_labels *server = labels("app=\"server\"\ntier=\"back\"\n");
	struct policy_labels *partial = labels("app=\"server\"\n");
	struct policy_labels *client = labels("app=\"client\"\n");
	struct policy_labels *none = labels("");
	struct req q;

	req_init(&q, SAY);
	q.r.labels = server; /* the ALLOW applies and does not match */
	ck_assert(!allowed(p, &q));
	q.r.labels = partial; /* one label missing: no policy applies */
	ck_assert(allowed(p, &q));
	q.r.labels = none;
	ck_assert(allowed(p, &q));
	q.r.labels = NULL; /* unknown labels: selectors never apply */
	ck_assert(allowed(p, &q));
	q.r.labels = client;
	struct policy_decision d = eval(p, &q);
	ck_assert(!d.allowed);
	ck_assert_str_eq(d.deciding_policy, "deny-client");
	q.r.labels = server;
	req_init(&q, "/a.B/C");
	q.r.labels = server;
	ck_assert(allowed(p, &q));
	policy_labels_free(server);
	policy_labels_free(partial);
	policy_labels_free(client);
	policy_labels_free(none);
	policy_unref(p);
}
END_TEST

START_TEST(test_selector_empty_matchlabels)
{
	/* An empty matchLabels selects every pod, like Istio's empty selector. */
	struct policy *p =
	    load("authorization:\n"
		 "  - {name: d, action: DENY, selector: {matchLabels: {}}, rules: [{}]}\n");
	struct req q;
	req_init(&q, SAY);
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

/* ---- sources --------------------------------------------------------------------------- */
static bool peer_allowed(const struct policy *p, const char *ip)
{
	struct req q;
	req_init(&q, SAY);
	if (ip)
		req_peer(&q, ip);
	return allowed(p, &q);
}

START_TEST(test_cidr_v4_edges)
{
	struct policy *all =
	    load("authorization: [{rules: [{from: [{ipBlocks: [0.0.0.0/0]}]}]}]\n");
	struct policy *one =
	    load("authorization: [{rules: [{from: [{ipBlocks: [10.1.2.3/32]}]}]}]\n");
	struct policy *bare =
	    load("authorization: [{rules: [{from: [{ipBlocks: [10.1.2.3]}]}]}]\n");
	struct policy *odd =
	    load("authorization: [{rules: [{from: [{ipBlocks: [10.1.2.128/25]}]}]}]\n");

	ck_assert(peer_allowed(all, "1.2.3.4"));
	ck_assert(peer_allowed(all, "255.255.255.255"));
	ck_assert(peer_allowed(all, "::ffff:1.2.3.4")); /* IPv4-mapped IPv6 */
	ck_assert(!peer_allowed(all, "2001:db8::1"));
	ck_assert(!peer_allowed(all, NULL)); /* no peer address: ipBlocks cannot match */
	ck_assert(peer_allowed(one, "10.1.2.3"));
	ck_assert(!peer_allowed(one, "10.1.2.4"));
	ck_assert(peer_allowed(one, "::ffff:10.1.2.3"));
	ck_assert(peer_allowed(bare, "10.1.2.3"));
	ck_assert(!peer_allowed(bare, "10.1.2.2"));
	ck_assert(peer_allowed(odd, "10.1.2.128"));
	ck_assert(peer_allowed(odd, "10.1.2.255"));
	ck_assert(!peer_allowed(odd, "10.1.2.127"));
	policy_unref(all);
	policy_unref(one);
	policy_unref(bare);
	policy_unref(odd);
}
END_TEST

START_TEST(test_cidr_v6_edges)
{
	struct policy *all = load("authorization: [{rules: [{from: [{ipBlocks: ['::/0']}]}]}]\n");
	struct policy *one =
	    load("authorization: [{rules: [{from: [{ipBlocks: ['2001:db8::1/128']}]}]}]\n");
	struct policy *net =
	    load("authorization: [{rules: [{from: [{ipBlocks: ['2001:db8::/32']}]}]}]\n");
	struct policy *mapped =
	    load("authorization: [{rules: [{from: [{ipBlocks: ['::ffff:10.0.0.0/104']}]}]}]\n");

	ck_assert(peer_allowed(all, "2001:db8::1"));
	ck_assert(peer_allowed(all, "::1"));
	ck_assert(peer_allowed(one, "2001:db8::1"));
	ck_assert(!peer_allowed(one, "2001:db8::2"));
	ck_assert(peer_allowed(net, "2001:db8:ffff:ffff::1"));
	ck_assert(!peer_allowed(net, "2001:db9::1"));
	ck_assert(!peer_allowed(net, "10.0.0.1"));
	/* An IPv6 block over the mapped range covers IPv4 peers, whichever form they come in. */
	ck_assert(peer_allowed(mapped, "10.9.9.9"));
	ck_assert(peer_allowed(mapped, "::ffff:10.9.9.9"));
	ck_assert(!peer_allowed(mapped, "11.0.0.1"));
	policy_unref(all);
	policy_unref(one);
	policy_unref(net);
	policy_unref(mapped);
}
END_TEST

START_TEST(test_not_ip_blocks)
{
	/* The DESIGN example's source: 10/8 except 10.0.9/24. */
	struct policy *p =
	    load("authorization:\n"
		 "  - rules: [{from: [{ipBlocks: [10.0.0.0/8], notIpBlocks: [10.0.9.0/24]}]}]\n");
	struct policy *only_not =
	    load("authorization:\n"
		 "  - rules: [{from: [{notIpBlocks: ['192.168.0.0/16', 'fd00::/8']}]}]\n");
	ck_assert(peer_allowed(p, "10.0.8.1"));
	ck_assert(!peer_allowed(p, "10.0.9.1"));
	ck_assert(!peer_allowed(p, "11.0.0.1"));
	ck_assert(peer_allowed(only_not, "10.0.0.1"));
	ck_assert(!peer_allowed(only_not, "192.168.3.4"));
	ck_assert(!peer_allowed(only_not, "fd12::1"));
	ck_assert(peer_allowed(only_not, NULL)); /* nothing to exclude */
	policy_unref(p);
	policy_unref(only_not);
}
END_TEST

START_TEST(test_from_list_is_or)
{
	struct policy *p =
	    load("authorization:\n"
		 "  - rules: [{from: [{ipBlocks: [10.0.0.0/8]}, {ipBlocks: [192.168.0.0/16]}]}]\n");
	ck_assert(peer_allowed(p, "10.1.1.1"));
	ck_assert(peer_allowed(p, "192.168.1.1"));
	ck_assert(!peer_allowed(p, "172.16.0.1"));
	policy_unref(p);
}
END_TEST

START_TEST(test_principals)
{
	struct policy *p = load("authorization:\n"
				"  - name: a\n"
				"    rules:\n"
				"      - from: [{requestPrincipals: ['https://i.example/alice', "
				"'https://j.example/*', '*/bob']}]\n");
	struct policy *any =
	    load("authorization: [{rules: [{from: [{requestPrincipals: ['*']}]}]}]\n");
	struct policy *notp = load("authorization: [{action: DENY, rules: [{from: "
				   "[{notRequestPrincipals: ['https://i.example/*']}]}]}]\n");
	struct req q;
	req_init(&q, SAY);

	q.r.principal = "https://i.example/alice";
	ck_assert(allowed(p, &q));
	q.r.principal = "https://i.example/alicex";
	ck_assert(!allowed(p, &q));
	q.r.principal = "https://j.example/anyone";
	ck_assert(allowed(p, &q));
	q.r.principal = "https://k.example/bob";
	ck_assert(allowed(p, &q));
	ck_assert(allowed(any, &q));
	ck_assert(!allowed(notp, &q)); /* not from i.example: denied */
	q.r.principal = "https://i.example/carol";
	ck_assert(allowed(notp, &q));
	/* No principal: requestPrincipals (even "*") never match; notRequestPrincipals do. */
	q.r.principal = NULL;
	ck_assert(!allowed(p, &q));
	ck_assert(!allowed(any, &q));
	ck_assert(!allowed(notp, &q));
	policy_unref(p);
	policy_unref(any);
	policy_unref(notp);
}
END_TEST

/* ---- operations -------------------------------------------------------------------- */
START_TEST(test_method_patterns)
{
	struct policy *p = load("authorization:\n"
				"  - rules:\n"
				"      - to: [{methods: ['/a.B/Exact', '/c.D/*', '*Suffix']}]\n");
	struct policy *star = load("authorization: [{rules: [{to: [{methods: ['*']}]}]}]\n");
	struct policy *notm = load("authorization: [{rules: [{to: [{methods: ['/c.D/*'], "
				   "notMethods: ['/c.D/Admin']}]}]}]\n");
	struct req q;
	static const struct {
		const char *m;
		bool p, star, notm;
	} t[] = {
	    {"/a.B/Exact", true, true, false},
	    {"/a.B/Exactly", false, true, false},
	    {"/a.B/Exac", false, true, false},
	    {"/c.D/Any", true, true, true},
	    {"/c.D/", true, true, true},
	    {"/c.DD/Any", false, true, false},
	    {"/x.Y/MySuffix", true, true, false},
	    {"/c.D/Admin", true, true, false},
	    {"", false, true, false},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		req_init(&q, t[i].m);
		ck_assert_msg(allowed(p, &q) == t[i].p, "%s", t[i].m);
		ck_assert_msg(allowed(star, &q) == t[i].star, "%s", t[i].m);
		ck_assert_msg(allowed(notm, &q) == t[i].notm, "%s", t[i].m);
	}
	policy_unref(p);
	policy_unref(star);
	policy_unref(notm);
}
END_TEST

START_TEST(test_rule_is_and_of_from_to_when)
{
	struct policy *p = load("authorization:\n"
				"  - rules:\n"
				"      - from: [{ipBlocks: [10.0.0.0/8]}]\n"
				"        to: [{methods: ['/helloworld.Greeter/*']}]\n"
				"        when: [{header: x-tenant, values: [blue, green]}, "
				"{header: x-env, values: [prod]}]\n");
	struct req q;
	req_init(&q, SAY);
	req_peer(&q, "10.0.0.1");
	req_header(&q, "x-tenant", "blue");
	req_header(&q, "x-env", "prod");
	ck_assert(allowed(p, &q));
	q.r.nheaders = 1; /* x-env missing: the second condition fails */
	ck_assert(!allowed(p, &q));
	q.r.nheaders = 2;
	req_peer(&q, "11.0.0.1");
	ck_assert(!allowed(p, &q));
	req_peer(&q, "10.0.0.1");
	q.r.method = "/other.S/M";
	q.r.method_len = strlen(q.r.method);
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

/* ---- conditions ------------------------------------------------------------------------ */
START_TEST(test_header_conditions)
{
	struct policy *vals = load("authorization: [{rules: [{when: [{header: X-Tenant, values: "
				   "[blue, 'gr*', '*ish', ]}]}]}]\n");
	struct policy *notv =
	    load("authorization: [{rules: [{when: [{header: x-tenant, notValues: [red]}]}]}]\n");
	struct policy *key = load("authorization: [{rules: [{when: [{key: "
				  "'request.headers[X-Tenant]', values: ['*']}]}]}]\n");
	struct req q;

	req_init(&q, SAY);
	ck_assert(!allowed(vals, &q)); /* absent header fails values */
	ck_assert(allowed(notv, &q));  /* ...and passes notValues */
	ck_assert(!allowed(key, &q));  /* "*" needs a value */
	req_header(&q, "x-tenant", "blue");
	ck_assert(allowed(vals, &q));
	ck_assert(allowed(notv, &q));
	ck_assert(allowed(key, &q));
	q.hdrs[0].value = "green";
	q.hdrs[0].value_len = 5;
	ck_assert(allowed(vals, &q)); /* prefix */
	q.hdrs[0].value = "reddish";
	q.hdrs[0].value_len = 7;
	ck_assert(allowed(vals, &q)); /* suffix */
	q.hdrs[0].value = "red";
	q.hdrs[0].value_len = 3;
	ck_assert(!allowed(vals, &q));
	ck_assert(!allowed(notv, &q));
	/* A header sent twice is one value, "red,blue" (Envoy): it is neither "blue" for
	 * values nor "red" for notValues (before issue 14 this was any-of per field). */
	req_header(&q, "x-tenant", "blue");
	ck_assert(!allowed(vals, &q));
	ck_assert(allowed(notv, &q));
	ck_assert(allowed(key, &q));
	policy_unref(vals);
	policy_unref(notv);
	policy_unref(key);
}
END_TEST

/* Issue 14: repeated fields are joined with "," before matching, in order. */
START_TEST(test_repeated_headers_join)
{
	struct policy *deny = load("authorization: [{name: not-blue, action: DENY, rules: [{when: "
				   "[{header: x-tenant, notValues: [blue]}]}]}]\n");
	struct policy *exact = load("authorization: [{rules: [{when: [{header: x-t, values: "
				    "['red,blue']}]}]}]\n");
	struct policy *pre = load("authorization: [{rules: [{when: [{header: x-t, values: "
				  "['red,b*']}]}]}]\n");
	struct policy *suf = load("authorization: [{rules: [{when: [{header: x-t, values: "
				  "['*d,blue,green']}]}]}]\n");
	struct policy *cookie = load("authorization: [{rules: [{when: [{header: cookie, values: "
				     "['a=1; b=2']}]}]}]\n");
	struct req q;

	req_init(&q, SAY);
	req_header(&q, "x-tenant", "blue");
	ck_assert(allowed(deny, &q)); /* "blue": not denied */
	req_header(&q, "x-tenant", "red");
	ck_assert(!allowed(deny, &q)); /* "blue,red" is not "blue": denied */
	q.hdrs[1].name = "x-other";
	q.hdrs[1].name_len = 7;
	ck_assert(allowed(deny, &q)); /* another name does not join */

	req_init(&q, SAY);
	req_header(&q, "x-t", "red");
	ck_assert(!allowed(exact, &q));
	req_header(&q, "x-u", "zzz"); /* fields of other names in between are skipped */
	req_header(&q, "x-t", "blue");
	ck_assert(allowed(exact, &q));
	ck_assert(allowed(pre, &q));
	ck_assert(!allowed(suf, &q)); /* "red,blue" is shorter than the suffix */
	req_header(&q, "x-t", "green");
	ck_assert(!allowed(exact, &q)); /* "red,blue,green" */
	ck_assert(allowed(pre, &q));
	ck_assert(allowed(suf, &q));
	/* The order is kept: "blue,red" is not "red,blue". */
	q.hdrs[0].value = "blue";
	q.hdrs[0].value_len = 4;
	q.hdrs[2].value = "red";
	q.hdrs[2].value_len = 3;
	q.r.nheaders = 3;
	ck_assert(!allowed(exact, &q));
	/* Empty fields still count: "red," + "" . */
	q.hdrs[0].value = "red";
	q.hdrs[0].value_len = 3;
	q.hdrs[2].value = "";
	q.hdrs[2].value_len = 0;
	ck_assert(!allowed(exact, &q));
	ck_assert(!allowed(pre, &q));

	/* Cookies split by HTTP/2 compression join with "; " (RFC 9113 8.2.3). */
	req_init(&q, SAY);
	req_header(&q, "cookie", "a=1");
	req_header(&q, "cookie", "b=2");
	ck_assert(allowed(cookie, &q));

	policy_unref(deny);
	policy_unref(exact);
	policy_unref(pre);
	policy_unref(suf);
	policy_unref(cookie);
}
END_TEST

START_TEST(test_fault_headers_join)
{
	struct policy *p = load("faults: [{name: f, match: {headers: {x-chaos: 'on'}}, "
				"abort: {grpcStatus: UNAVAILABLE}}]\n");
	struct policy *two = load("faults: [{name: f, match: {headers: {x-chaos: 'on,on'}}, "
				  "abort: {grpcStatus: UNAVAILABLE}}]\n");
	struct req q;

	req_init(&q, SAY);
	req_header(&q, "x-chaos", "on");
	ck_assert_ptr_nonnull(eval(p, &q).fault_name);
	ck_assert_ptr_null(eval(two, &q).fault_name);
	req_header(&q, "x-chaos", "off"); /* "on,off" is not "on" */
	ck_assert_ptr_null(eval(p, &q).fault_name);
	q.hdrs[1].value = "on";
	q.hdrs[1].value_len = 2;
	ck_assert_ptr_null(eval(p, &q).fault_name);
	ck_assert_ptr_nonnull(eval(two, &q).fault_name);
	policy_unref(p);
	policy_unref(two);
}
END_TEST

/*
 * Red team: `host` and `:authority` read one value, the authority the app routes on
 * (:authority when present, else Host), in conditions and fault headers alike.
 */
START_TEST(test_authority_alias)
{
	struct policy *host = load("authorization: [{name: no-admin, action: DENY, rules: "
				   "[{when: [{header: host, values: ['admin*']}]}]}]\n");
	struct policy *auth = load("authorization: [{name: no-admin, action: DENY, rules: "
				   "[{when: [{key: 'request.headers[:authority]', values: "
				   "['admin*']}]}]}]\n");
	struct policy *fault = load("faults: [{name: f, match: {headers: {Host: admin}}, "
				    "abort: {grpcStatus: UNAVAILABLE}}]\n");
	struct req q;

	req_init(&q, SAY);
	req_header(&q, ":authority", "admin.internal");
	ck_assert(!allowed(host, &q)); /* the bypass: the name in :authority only */
	ck_assert(!allowed(auth, &q));
	req_init(&q, SAY);
	req_header(&q, "host", "admin.internal");
	ck_assert(!allowed(host, &q));
	ck_assert(!allowed(auth, &q)); /* no :authority: Host is the authority */
	req_init(&q, SAY);
	req_header(&q, ":authority", "ok");
	req_header(&q, "host", "admin"); /* :authority wins (the gate refuses this form) */
	ck_assert(allowed(host, &q));
	ck_assert(allowed(auth, &q));
	req_init(&q, SAY);
	ck_assert(allowed(host, &q)); /* no authority at all: `values` fails */
	req_init(&q, SAY);
	req_header(&q, ":authority", "admin");
	ck_assert_ptr_nonnull(eval(fault, &q).fault_name);
	q.hdrs[0].value = "ok";
	q.hdrs[0].value_len = 2;
	ck_assert_ptr_null(eval(fault, &q).fault_name);
	policy_unref(host);
	policy_unref(auth);
	policy_unref(fault);
}
END_TEST

/* Red team: a service-wide pattern does not reach a service whose name extends it. */
START_TEST(test_service_prefix_confusion)
{
	struct policy *slash = load("authorization: [{name: d, action: DENY, rules: [{to: "
				    "[{methods: ['/demo.Echo/*']}]}]}]\n");
	struct policy *bare = load("authorization: [{name: d, action: DENY, rules: [{to: "
				   "[{methods: ['/demo.Echo*']}]}]}]\n");
	struct policy *allow = load("authorization: [{name: a, action: ALLOW, rules: [{to: "
				    "[{methods: ['/demo.Echo/*']}]}]}]\n");
	struct req q;

	req_init(&q, "/demo.Echo/Secret");
	ck_assert(!allowed(slash, &q));
	ck_assert(allowed(allow, &q));
	req_init(&q, "/demo.Echo.Evil/Secret");
	ck_assert(allowed(slash, &q));	/* another service: the DENY does not name it */
	ck_assert(!allowed(allow, &q)); /* ...and the ALLOW does not open it */
	ck_assert(!allowed(bare, &q));	/* without the '/', a prefix is a prefix */
	req_init(&q, "/demo.EchoAdmin/Delete");
	ck_assert(!allowed(allow, &q));
	ck_assert(!allowed(bare, &q));
	policy_unref(slash);
	policy_unref(bare);
	policy_unref(allow);
}
END_TEST

/* The default of `passthrough` follows whether an authorization entry selects the pod. */
START_TEST(test_passthrough_mode)
{
	struct policy *none = load("faults: [{name: f, delay: {fixed: 1s}}]\n");
	struct policy *all = load("authorization: [{action: AUDIT, rules: [{}]}]\n");
	struct policy *sel = load("authorization: [{selector: {matchLabels: {app: a}}, action: "
				  "DENY, rules: [{to: [{methods: ['/x.Y/Z']}]}]}]\n");
	struct policy *allow = load("passthrough: allow\nauthorization: [{rules: [{}]}]\n");
	struct policy *deny = load("passthrough: deny\n");
	struct policy_labels *la = labels("app=\"a\"\n"), *lb = labels("app=\"b\"\n");

	ck_assert_int_eq(policy_passthrough_mode(none, la), POLICY_PASSTHROUGH_ALLOW);
	ck_assert_int_eq(policy_passthrough_mode(NULL, NULL), POLICY_PASSTHROUGH_ALLOW);
	ck_assert(!policy_authz_applies(none, la));
	ck_assert_int_eq(policy_passthrough_mode(all, NULL), POLICY_PASSTHROUGH_DENY);
	ck_assert(policy_authz_applies(all, NULL));
	ck_assert_int_eq(policy_passthrough_mode(sel, la), POLICY_PASSTHROUGH_DENY);
	ck_assert_int_eq(policy_passthrough_mode(sel, lb), POLICY_PASSTHROUGH_ALLOW);
	ck_assert_int_eq(policy_passthrough_mode(sel, NULL), POLICY_PASSTHROUGH_ALLOW);
	ck_assert(policy_authz_applies(sel, la));
	ck_assert(!policy_authz_applies(sel, lb));
	ck_assert_int_eq(policy_passthrough_given(sel), POLICY_PASSTHROUGH_UNSET);
	ck_assert_int_eq(policy_passthrough_mode(allow, NULL), POLICY_PASSTHROUGH_ALLOW);
	ck_assert_int_eq(policy_passthrough_given(allow), POLICY_PASSTHROUGH_ALLOW);
	ck_assert(policy_authz_applies(allow, NULL));
	ck_assert_int_eq(policy_passthrough_mode(deny, la), POLICY_PASSTHROUGH_DENY);
	ck_assert_str_eq(policy_passthrough_name(POLICY_PASSTHROUGH_DENY), "deny");
	ck_assert_str_eq(policy_passthrough_name(POLICY_PASSTHROUGH_ALLOW), "allow");
	policy_unref(none);
	policy_unref(all);
	policy_unref(sel);
	policy_unref(allow);
	policy_unref(deny);
	policy_labels_free(la);
	policy_labels_free(lb);
}
END_TEST

START_TEST(test_values_and_not_values)
{
	struct policy *p = load("authorization: [{rules: [{when: [{header: x-t, values: ['b*'], "
				"notValues: [bad]}]}]}]\n");
	struct req q;
	req_init(&q, SAY);
	req_header(&q, "x-t", "blue");
	ck_assert(allowed(p, &q));
	q.hdrs[0].value = "bad";
	q.hdrs[0].value_len = 3;
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

START_TEST(test_claims)
{
	struct policy *grp = load("authorization: [{rules: [{when: [{key: "
				  "'request.auth.claims[groups]', values: [admins]}]}]}]\n");
	struct policy *nested =
	    load("authorization: [{rules: [{when: [{key: 'request.auth.claims[realm][role]', "
		 "values: ['oper*']}]}]}]\n");
	struct policy *notg = load("authorization: [{rules: [{when: [{key: "
				   "'request.auth.claims[groups]', notValues: [banned]}]}]}]\n");
	struct policy *aud = load("authorization: [{rules: [{when: [{key: request.auth.audiences, "
				  "values: [greeter]}]}]}]\n");
	struct policy *princ = load("authorization: [{rules: [{when: [{key: "
				    "request.auth.principal, values: ['https://i/*']}]}]}]\n");
	json_t *c1 = json_pack("{s:[s,s], s:{s:s}, s:s}", "groups", "dev", "admins", "realm",
			       "role", "operator", "aud", "greeter");
	json_t *c2 = json_pack("{s:s, s:[s,s], s:{s:i}}", "groups", "admins", "aud", "x", "greeter",
			       "realm", "role", 5);
	json_t *c3 = json_pack("{s:[s,i], s:s}", "groups", "banned", 7, "realm", "flat");
	struct req q;
	req_init(&q, SAY);

	/* No token: claims absent. */
	ck_assert(!allowed(grp, &q));
	ck_assert(!allowed(nested, &q));
	ck_assert(allowed(notg, &q));
	ck_assert(!allowed(aud, &q));
	ck_assert(!allowed(princ, &q));

	q.r.claims = c1; /* array claim, nested string, string aud */
	q.r.principal = "https://i/alice";
	ck_assert(allowed(grp, &q));
	ck_assert(allowed(nested, &q));
	ck_assert(allowed(notg, &q));
	ck_assert(allowed(aud, &q));
	ck_assert(allowed(princ, &q));

	q.r.claims = c2; /* string claim, nested non-string, array aud */
	q.r.principal = "https://j/alice";
	ck_assert(allowed(grp, &q));
	ck_assert(!allowed(nested, &q));
	ck_assert(allowed(aud, &q));
	ck_assert(!allowed(princ, &q));

	q.r.claims = c3; /* array with a non-string, nested path through a string */
	ck_assert(!allowed(grp, &q));
	ck_assert(!allowed(notg, &q));
	ck_assert(!allowed(nested, &q));
	json_decref(c1);
	json_decref(c2);
	json_decref(c3);
	policy_unref(grp);
	policy_unref(nested);
	policy_unref(notg);
	policy_unref(aud);
	policy_unref(princ);
}
END_TEST

START_TEST(test_issue10_example)
{
	struct policy *p =
	    load("requestAuthentication:\n"
		 "  - issuer: https://issuer.example.com\n"
		 "    jwksFile: /etc/grpcguard/jwks/jwks.json\n"
		 "authorization:\n"
		 "  - name: alice-only\n"
		 "    action: ALLOW\n"
		 "    rules:\n"
		 "      - from: [{requestPrincipals: ['https://issuer.example.com/alice']}]\n"
		 "        when: [{key: 'request.auth.claims[groups]', values: ['admins']}]\n");
	json_t *admin = json_pack("{s:[s]}", "groups", "admins");
	json_t *user = json_pack("{s:[s]}", "groups", "users");
	struct req q;
	req_init(&q, SAY);
	q.r.principal = "https://issuer.example.com/alice";
	q.r.claims = admin;
	struct policy_decision d = eval(p, &q);
	ck_assert(d.allowed);
	ck_assert_str_eq(d.deciding_policy, "alice-only");
	q.r.claims = user;
	ck_assert(!allowed(p, &q));
	q.r.principal = "https://issuer.example.com/bob";
	q.r.claims = admin;
	ck_assert(!allowed(p, &q));
	q.r.principal = NULL;
	q.r.claims = NULL;
	ck_assert(!allowed(p, &q));
	json_decref(admin);
	json_decref(user);
	policy_unref(p);
}
END_TEST

/* ---- health ----------------------------------------------------------------------------- */
START_TEST(test_health_exemption)
{
	struct policy *allow_nothing = load(
	    "authorization: [{name: a, action: ALLOW, rules: [{to: [{methods: ['/x.Y/Z']}]}]}]\n");
	struct policy *deny_star =
	    load("authorization: [{name: d, action: DENY, rules: [{to: [{methods: ['*']}]}]}]\n");
	struct policy *deny_from = load("authorization: [{name: d, action: DENY, rules: [{from: "
					"[{ipBlocks: [0.0.0.0/0]}]}]}]\n");
	struct policy *deny_all = load("authorization: [{name: d, action: DENY, rules: [{}]}]\n");
	struct policy *deny_exact =
	    load("authorization: [{name: d, action: DENY, rules: [{to: [{methods: ['" HEALTH
		 "']}]}]}]\n");
	struct policy *deny_prefix = load("authorization: [{name: d, action: DENY, rules: [{to: "
					  "[{methods: ['/grpc.health.v1.Health/*']}]}]}]\n");
	struct policy *deny_grpc = load(
	    "authorization: [{name: d, action: DENY, rules: [{to: [{methods: ['/grpc.*']}]}]}]\n");
	struct req q;

	req_init(&q, HEALTH);
	req_peer(&q, "10.0.0.1");
	struct policy_decision d = eval(allow_nothing, &q);
	ck_assert(d.allowed);
	ck_assert_ptr_null(d.deciding_policy);
	ck_assert(allowed(deny_star, &q));
	ck_assert(allowed(deny_from, &q));
	ck_assert(allowed(deny_all, &q));
	ck_assert(allowed(deny_grpc, &q));
	ck_assert(!allowed(deny_exact, &q));
	ck_assert(!allowed(deny_prefix, &q));
	req_init(&q, "/grpc.health.v1.Health/Watch");
	ck_assert(allowed(deny_exact, &q));
	ck_assert(!allowed(deny_prefix, &q));
	/* Not a health method: the exemption does not apply. */
	req_init(&q, SAY);
	ck_assert(!allowed(allow_nothing, &q));
	ck_assert(!allowed(deny_star, &q));
	ck_assert(!allowed(deny_all, &q));
	policy_unref(allow_nothing);
	policy_unref(deny_star);
	policy_unref(deny_from);
	policy_unref(deny_all);
	policy_unref(deny_exact);
	policy_unref(deny_prefix);
	policy_unref(deny_grpc);
}
END_TEST

/* ---- faults --------------------------------------------------------------------------- */
struct draws {
	double v[4];
	int n, called;
};

static double next_draw(void *ctx)
{
	struct draws *d = ctx;
	ck_assert_int_lt(d->called, d->n);
	return d->v[d->called++];
}

static struct policy_decision eval_draws(const struct policy *p, const struct req *q,
					 struct draws *dr)
{
	struct policy_decision d;
	policy_evaluate(p, &q->r, next_draw, dr, &d);
	return d;
}

START_TEST(test_fault_first_match_wins)
{
	struct policy *p = load("faults:\n"
				"  - name: chaos-header\n"
				"    match: {methods: ['" SAY "'], headers: {X-Chaos: 'on'}}\n"
				"    abort: {grpcStatus: UNAVAILABLE, message: injected}\n"
				"  - name: greeter-delay\n"
				"    match: {methods: ['/helloworld.Greeter/*']}\n"
				"    delay: {fixed: 1.5s}\n"
				"  - name: everything\n"
				"    abort: {grpcStatus: 13}\n");
	struct req q;
	req_init(&q, SAY);
	req_header(&q, "x-chaos", "on");
	struct policy_decision d = eval(p, &q);
	ck_assert_str_eq(d.fault_name, "chaos-header");
	ck_assert(d.abort);
	ck_assert_int_eq(d.abort_grpc_status, 14);
	ck_assert_str_eq(d.abort_message, "injected");
	ck_assert_uint_eq(d.delay_ms, 0);
	q.hdrs[0].value = "off"; /* headers match exactly */
	d = eval(p, &q);
	ck_assert_str_eq(d.fault_name, "greeter-delay");
	ck_assert_uint_eq(d.delay_ms, 1500);
	ck_assert(!d.abort);
	req_init(&q, "/other.S/M");
	d = eval(p, &q);
	ck_assert_str_eq(d.fault_name, "everything");
	ck_assert(d.abort);
	ck_assert_int_eq(d.abort_grpc_status, 13);
	ck_assert_str_eq(d.abort_message, "fault filter abort"); /* the default */
	policy_unref(p);
}
END_TEST

START_TEST(test_fault_selector)
{
	struct policy *p =
	    load("faults:\n"
		 "  - {name: f, selector: {matchLabels: {app: server}}, delay: {fixed: 10s}}\n");
	struct policy_labels *server = labels("app=\"server\"\n"),
			     *client = labels("app=\"client\"\n");
	struct req q;
	req_init(&q, SAY);
	q.r.labels = server;
	ck_assert_uint_eq(eval(p, &q).delay_ms, 10000);
	q.r.labels = client;
	ck_assert_ptr_null(eval(p, &q).fault_name);
	q.r.labels = NULL;
	ck_assert_ptr_null(eval(p, &q).fault_name);
	policy_labels_free(server);
	policy_labels_free(client);
	policy_unref(p);
}
END_TEST

START_TEST(test_fault_percent_draws)
{
	struct policy *p = load("faults:\n"
				"  - name: f\n"
				"    delay: {fixed: 250ms, percent: 12.5}\n"
				"    abort: {grpcStatus: UNAVAILABLE, percent: 50}\n");
	struct req q;
	struct draws dr;
	req_init(&q, SAY);

	/* Delay is drawn first, then abort, each separately. */
	dr = (struct draws){{12.4, 49.99}, 2, 0};
	struct policy_decision d = eval_draws(p, &q, &dr);
	ck_assert_int_eq(dr.called, 2);
	ck_assert_uint_eq(d.delay_ms, 250);
	ck_assert(d.abort);
	dr = (struct draws){{12.5, 50.0}, 2, 0}; /* rnd() < percent: equal misses */
	d = eval_draws(p, &q, &dr);
	ck_assert_str_eq(d.fault_name, "f"); /* matched, nothing drawn in */
	ck_assert_uint_eq(d.delay_ms, 0);
	ck_assert(!d.abort);
	dr = (struct draws){{99.0, 0.0}, 2, 0};
	d = eval_draws(p, &q, &dr);
	ck_assert_uint_eq(d.delay_ms, 0);
	ck_assert(d.abort);
	/* rnd NULL: draws return 0, so every percent > 0 hits. */
	d = eval(p, &q);
	ck_assert_uint_eq(d.delay_ms, 250);
	ck_assert(d.abort);
	policy_unref(p);
}
END_TEST

START_TEST(test_fault_percent_edges)
{
	struct policy *p = load("faults:\n"
				"  - name: f\n"
				"    delay: {fixed: 1s, percent: 0}\n"
				"    abort: {grpcStatus: 14}\n");
	struct req q;
	struct draws dr = {{0}, 0, 0}; /* any call fails the test */
	req_init(&q, SAY);
	struct policy_decision d = eval_draws(p, &q, &dr);
	ck_assert_int_eq(dr.called, 0); /* 0: never, 100 (default): no draw */
	ck_assert_uint_eq(d.delay_ms, 0);
	ck_assert(d.abort);
	d = eval(p, &q); /* rnd NULL returns 0, and 0 < 0 is false */
	ck_assert_uint_eq(d.delay_ms, 0);
	policy_unref(p);
}
END_TEST

START_TEST(test_fault_not_when_denied)
{
	struct policy *p = load("faults: [{name: f, delay: {fixed: 1s}}]\n"
				"authorization: [{name: d, action: DENY, rules: [{}]}]\n");
	struct req q;
	req_init(&q, SAY);
	struct policy_decision d = eval(p, &q);
	ck_assert(!d.allowed);
	ck_assert_ptr_null(d.fault_name);
	ck_assert_uint_eq(d.delay_ms, 0);
	policy_unref(p);
}
END_TEST

START_TEST(test_fault_health)
{
	struct policy *star =
	    load("faults: [{name: f, match: {methods: ['*']}, abort: {grpcStatus: 14}}]\n");
	struct policy *all = load("faults: [{name: f, abort: {grpcStatus: 14}}]\n");
	struct policy *named = load("faults: [{name: h, match: {methods: "
				    "['/grpc.health.v1.Health/*']}, abort: {grpcStatus: 14}}]\n");
	struct req q;
	req_init(&q, HEALTH);
	ck_assert_ptr_null(eval(star, &q).fault_name);
	ck_assert_ptr_null(eval(all, &q).fault_name);
	ck_assert_str_eq(eval(named, &q).fault_name, "h");
	req_init(&q, SAY);
	ck_assert_str_eq(eval(star, &q).fault_name, "f");
	ck_assert_str_eq(eval(all, &q).fault_name, "f");
	ck_assert_ptr_null(eval(named, &q).fault_name);
	policy_unref(star);
	policy_unref(all);
	policy_unref(named);
}
END_TEST

/* ---- client-side faults (match.destinations) ---------------------------------------- */
static const char *const client_faults =
    "faults:\n"
    "  - name: slow-server\n"
    "    match: {destinations: [server], methods: [\"/helloworld.Greeter/*\"]}\n"
    "    delay: {fixed: 2s}\n"
    "  - name: ext-abort\n"
    "    match: {destinations: [\"*.example.com\", API.Other.svc.cluster.local]}\n"
    "    abort: {grpcStatus: UNAVAILABLE}\n"
    "  - name: server-side\n"
    "    delay: {fixed: 1s}\n";

static void outbound(struct req *q, const char *authority, const char *ns)
{
	q->r.direction = POLICY_OUTBOUND;
	q->r.authority = authority;
	q->r.authority_len = strlen(authority);
	q->r.local_namespace = ns;
}

START_TEST(test_fault_destinations_direction)
{
	struct policy *p = load(client_faults);
	struct policy_decision d;
	struct req q;

	/* Inbound: entries with destinations never apply, the others do. */
	req_init(&q, "/helloworld.Greeter/SayHello");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_str_eq(d.fault_name, "server-side");
	ck_assert_uint_eq(d.delay_ms, 1000);
	/* Even an inbound request whose authority names the destination. */
	q.r.authority = "server:8080";
	q.r.authority_len = 11;
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_str_eq(d.fault_name, "server-side");

	/* Outbound: only entries with destinations; no destination match, no fault. */
	req_init(&q, "/helloworld.Greeter/SayHello");
	outbound(&q, "server:8080", "demo");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_str_eq(d.fault_name, "slow-server");
	ck_assert_uint_eq(d.delay_ms, 2000);
	outbound(&q, "client:8080", "demo");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_ptr_null(d.fault_name);
	ck_assert_uint_eq(d.delay_ms, 0);
	/* Methods still narrow a client-side entry. */
	req_init(&q, "/other.Svc/M");
	outbound(&q, "server:8080", "demo");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_ptr_null(d.fault_name);
	/* Wildcard suffix and a fully qualified name written in capitals. */
	outbound(&q, "grpc.api.example.com:443", "demo");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_str_eq(d.fault_name, "ext-abort");
	ck_assert(d.abort);
	ck_assert_int_eq(d.abort_grpc_status, 14);
	outbound(&q, "example.com", "demo");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_ptr_null(d.fault_name);
	outbound(&q, "api.other:9000", "demo");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert_str_eq(d.fault_name, "ext-abort");
	policy_unref(p);
}
END_TEST

/* The caller's sidecar never authorizes: a DENY-all policy still lets outbound calls out. */
START_TEST(test_outbound_never_authorizes)
{
	struct policy *p = load("authorization:\n"
				"  - name: deny-all\n"
				"    action: DENY\n"
				"    rules: [{}]\n"
				"  - name: allow-none\n"
				"    action: ALLOW\n"
				"    rules: [{to: [{methods: [/x.Y/Z]}]}]\n");
	struct policy_decision d;
	struct req q;

	req_init(&q, "/helloworld.Greeter/SayHello");
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert(!d.allowed);
	outbound(&q, "server", NULL);
	policy_evaluate(p, &q.r, NULL, NULL, &d);
	ck_assert(d.allowed);
	ck_assert_ptr_null(d.deciding_policy);
	ck_assert_ptr_null(d.audit_policy);
	policy_unref(p);
}
END_TEST

START_TEST(test_host_match)
{
	static const struct {
		const char *pattern, *authority, *ns;
		bool want;
	} cases[] = {
	    {"server", "server", "demo", true},
	    {"server", "server:50051", "demo", true},
	    {"server", "server.demo", "demo", true},
	    {"server", "server.demo.svc", "demo", true},
	    {"server", "server.demo.svc.cluster.local:8080", "demo", true},
	    {"server", "server.demo.svc.cluster.local.", "demo", true},
	    {"server", "SERVER.Demo.svc.cluster.local", "demo", true},
	    {"server", "server.other.svc.cluster.local", "demo", false},
	    {"server", "server.other", "demo", false},
	    {"server", "server2", "demo", false},
	    {"server", "myserver", "demo", false},
	    {"server", "server.demo.svc.cluster.local", NULL, false}, /* namespace unknown */
	    {"server", "server", NULL, true},
	    {"server.demo.svc.cluster.local", "server", "demo", true},
	    {"server.demo.svc.cluster.local", "server", "other", false},
	    {"server.demo.svc.cluster.local", "server.demo:80", NULL, true},
	    {"server.demo", "server.demo.svc", NULL, true},
	    {"api.example.com", "api.example.com:443", "demo", true},
	    {"api.example.com", "api.example.com.demo.svc.cluster.local", "demo", false},
	    {"api.example.com", "example.com", "demo", false},
	    {"*.example.com", "a.b.example.com", "demo", true},
	    {"*.example.com", "example.com", "demo", false},
	    {"*.example.com", "badexample.com", "demo", false},
	    {"*", "anything:1", "demo", true},
	    {"*", "", "demo", false},
	    {"10.0.0.5", "10.0.0.5:8080", "demo", true},
	    {"10.0.0.5", "10.0.0.6:8080", "demo", false},
	    {"server", "[fd00::1]:8080", "demo", false},
	    {"server", ":8080", "demo", false},
	    {"server.demo.svc.cluster.local.", "server:80", "demo", true},
	    {"a.", "a.:1", NULL, true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *why = NULL;
		ck_assert_int_eq(
		    policy_host_check(cases[i].pattern, strlen(cases[i].pattern), &why), 0);
		ck_assert_msg(
		    policy_host_match(cases[i].pattern, cases[i].authority,
				      strlen(cases[i].authority), cases[i].ns) == cases[i].want,
		    "pattern %s authority %s ns %s: want %d", cases[i].pattern, cases[i].authority,
		    cases[i].ns ? cases[i].ns : "(null)", cases[i].want);
	}
	ck_assert(!policy_host_match("server", NULL, 0, "demo"));
}
END_TEST

/* ---- the caller's workload identity (issue 16) ----------------------------------------- */
#define CLIENT "cluster.local/ns/demo/sa/client"
#define INTRUDER "cluster.local/ns/demo/sa/intruder"
#define OTHER_NS "cluster.local/ns/other/sa/client"

/* A caller over mutual TLS with a verified identity (NULL: plaintext, no identity). */
static void req_ident(struct req *q, const char *principal)
{
	q->r.peer_principal = principal;
	q->r.peer_principal_len = principal ? strlen(principal) : 0;
	q->r.mtls = principal != NULL;
}

static struct policy *authz1(const char *action, const char *source)
{
	char yaml[512];
	snprintf(yaml, sizeof(yaml),
		 "authorization:\n  - name: p\n    action: %s\n"
		 "    rules: [{from: [%s]}]\n",
		 action, source);
	return load(yaml);
}

/* The contract's example: only the client service account may call. */
START_TEST(test_ident_principals_exact)
{
	struct policy *p = authz1("ALLOW", "{principals: ['" CLIENT "']}");
	struct req q;
	req_init(&q, SAY);

	req_ident(&q, CLIENT);
	ck_assert(allowed(p, &q));
	ck_assert_str_eq(eval(p, &q).deciding_policy, "p");
	req_ident(&q, INTRUDER);
	ck_assert(!allowed(p, &q));
	req_ident(&q, OTHER_NS);
	ck_assert(!allowed(p, &q));
	req_ident(&q, "cluster.local/ns/demo/sa/clientx");
	ck_assert(!allowed(p, &q));
	req_ident(&q, NULL); /* plaintext */
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

/*
 * Red team 2: crafted SPIFFE IDs, through policy_principal_from_spiffe (what the sidecar
 * does with a verified URI SAN) and then the policy. Dot segments, escapes, empty and
 * trailing segments never become a principal; a principal in another case or with extra
 * segments matches no exact principal and has no namespace. A DENY on `namespaces` does
 * not apply to such an identity (reported in docs/security.md, "Red team 2": the issuer never
 * signs one; a `principals` prefix DENY does apply).
 */
START_TEST(test_ident_crafted)
{
	static const char *const never[] = {
	    "spiffe://cluster.local/ns/demo/sa/client/../x",
	    "spiffe://cluster.local/ns/demo/sa/../sa/client",
	    "spiffe://cluster.local/ns/demo/sa/client/",
	    "spiffe://cluster.local/ns/demo//sa/client",
	    "spiffe://cluster.local/ns/de%6do/sa/client",
	    "spiffe://cluster.local/ns/demo/sa/client%2f..",
	    "spiffe://cluster.local/ns/demo/sa/cli ent",
	    "spiffe://cluster.local/ns/demo/sa/client\\x",
	    "spiffe://CLUSTER.local/ns/demo/sa/client",
	};
	struct policy *exact = authz1("ALLOW", "{principals: ['" CLIENT "']}");
	struct policy *ns = authz1("ALLOW", "{namespaces: [demo]}");
	struct policy *prefix = authz1("ALLOW", "{principals: ['cluster.local/ns/demo/*']}");
	struct policy *deny_ns = authz1("DENY", "{namespaces: [demo]}");
	struct policy *deny_prefix = authz1("DENY", "{principals: ['cluster.local/ns/demo/*']}");
	char out[256];
	struct req q;

	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		ck_assert_msg(policy_principal_from_spiffe(never[i], strlen(never[i]), out,
							   sizeof(out)) == -EINVAL,
			      "%s became a principal", never[i]);
	req_init(&q, SAY);
	/* Another case: a different identity to every pattern. */
	ck_assert_int_eq(policy_principal_from_spiffe("spiffe://cluster.local/ns/Demo/sa/client",
						      40, out, sizeof(out)),
			 0);
	req_ident(&q, out);
	ck_assert(!allowed(exact, &q));
	ck_assert(!allowed(ns, &q));
	ck_assert(!allowed(prefix, &q));
	/* Extra segments: no exact match, no namespace; a prefix pattern does match. */
	ck_assert_int_eq(policy_principal_from_spiffe("spiffe://cluster.local/ns/demo/sa/client/x",
						      42, out, sizeof(out)),
			 0);
	req_ident(&q, out);
	ck_assert(!allowed(exact, &q));
	ck_assert(!allowed(ns, &q));
	ck_assert(allowed(prefix, &q));
	ck_assert(allowed(deny_ns, &q)); /* reported: DENY namespaces does not see it */
	ck_assert(!allowed(deny_prefix, &q));
	policy_unref(exact);
	policy_unref(ns);
	policy_unref(prefix);
	policy_unref(deny_ns);
	policy_unref(deny_prefix);
}
END_TEST

/* Only a handshake gives an identity: a principal without mtls, or mtls without a
 * principal, is no identity at all. */
START_TEST(test_ident_needs_mtls)
{
	struct policy *p = authz1("ALLOW", "{principals: ['" CLIENT "']}");
	struct policy *any = authz1("ALLOW", "{principals: ['*']}");
	struct policy *ns = authz1("ALLOW", "{namespaces: ['*']}");
	struct req q;
	req_init(&q, SAY);

	q.r.peer_principal = CLIENT;
	q.r.peer_principal_len = strlen(CLIENT);
	q.r.mtls = false;
	ck_assert(!allowed(p, &q));
	ck_assert(!allowed(any, &q));
	ck_assert(!allowed(ns, &q));
	q.r.peer_principal = NULL;
	q.r.peer_principal_len = 0;
	q.r.mtls = true; /* TLS without a usable identity */
	ck_assert(!allowed(p, &q));
	ck_assert(!allowed(any, &q));
	ck_assert(!allowed(ns, &q));
	q.r.peer_principal = "";
	ck_assert(!allowed(any, &q));
	/* The JWT principal is another thing: it never stands in for the peer's. */
	q.r.principal = CLIENT;
	ck_assert(!allowed(p, &q));
	policy_unref(p);
	policy_unref(any);
	policy_unref(ns);
}
END_TEST

/* peer_principal is a (pointer, length) view, not a C string. */
START_TEST(test_ident_length_view)
{
	struct policy *p = authz1("ALLOW", "{principals: ['" CLIENT "'], namespaces: [demo]}");
	const char buf[] = CLIENT "-and-more";
	struct req q;
	req_init(&q, SAY);

	q.r.peer_principal = buf;
	q.r.peer_principal_len = strlen(CLIENT);
	q.r.mtls = true;
	ck_assert(allowed(p, &q));
	q.r.peer_principal_len = strlen(buf);
	ck_assert(!allowed(p, &q));
	q.r.peer_principal_len = strlen(CLIENT) - 1; /* ".../sa/clien" */
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

START_TEST(test_ident_principal_patterns)
{
	static const struct {
		const char *pattern, *principal;
		bool want;
	} cases[] = {
	    {"cluster.local/ns/demo/*", CLIENT, true},
	    {"cluster.local/ns/demo/*", OTHER_NS, false},
	    {"cluster.local/ns/demo/*", NULL, false},
	    {"*/sa/client", CLIENT, true},
	    {"*/sa/client", OTHER_NS, true},
	    {"*/sa/client", INTRUDER, false},
	    {"*", CLIENT, true},
	    {"*", "example.org/workload/x", true}, /* any verified identity */
	    {"*", NULL, false},
	    {"other.domain/ns/demo/sa/client", CLIENT, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char src[128];
		snprintf(src, sizeof(src), "{principals: ['%s']}", cases[i].pattern);
		struct policy *p = authz1("ALLOW", src);
		struct req q;
		req_init(&q, SAY);
		req_ident(&q, cases[i].principal);
		ck_assert_msg(
		    allowed(p, &q) == cases[i].want, "%s vs %s: want %d", cases[i].pattern,
		    cases[i].principal ? cases[i].principal : "(plaintext)", cases[i].want);
		policy_unref(p);
	}
}
END_TEST

/* The namespace comes from the principal's strict form; any other shape has none. */
START_TEST(test_ident_namespaces)
{
	static const struct {
		const char *pattern, *principal;
		bool want;
	} cases[] = {
	    {"demo", CLIENT, true},
	    {"demo", OTHER_NS, false},
	    {"demo", NULL, false},
	    {"de*", CLIENT, true},
	    {"*mo", CLIENT, true},
	    {"*", CLIENT, true},
	    {"*", NULL, false},
	    {"*", "cluster.local/ns/demo", false},		  /* no sa: no namespace */
	    {"demo", "cluster.local/ns/demo/sa/client/x", false}, /* extra segment */
	    {"demo", "cluster.local/namespace/demo/sa/client", false},
	    {"demo", "cluster.local/sa/client/ns/demo", false},
	    {"demo", "cluster.local/ns/Demo/sa/client", false}, /* not a namespace name */
	    {"demo", "cluster.local/ns/demo/sa/", false},
	    {"demo", "/ns/demo/sa/client", false},
	    {"demo", "example.org/ns/demo/sa/client", true}, /* any trust domain */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char src[128];
		snprintf(src, sizeof(src), "{namespaces: ['%s']}", cases[i].pattern);
		struct policy *p = authz1("ALLOW", src);
		struct req q;
		req_init(&q, SAY);
		req_ident(&q, cases[i].principal);
		ck_assert_msg(
		    allowed(p, &q) == cases[i].want, "%s vs %s: want %d", cases[i].pattern,
		    cases[i].principal ? cases[i].principal : "(plaintext)", cases[i].want);
		policy_unref(p);
	}
}
END_TEST

/*
 * A caller without a verified identity against the not-forms: never let in by an ALLOW
 * (Istio lets it in: ISTIO-SECURITY-2021-004), always caught by a DENY (as Istio's
 * `DENY notPrincipals: ["*"]`).
 */
START_TEST(test_ident_plaintext_vs_not_principals)
{
	struct policy *allow_not = authz1("ALLOW", "{notPrincipals: ['" INTRUDER "']}");
	struct policy *deny_not = authz1("DENY", "{notPrincipals: ['" CLIENT "']}");
	struct policy *deny_anon = authz1("DENY", "{notPrincipals: ['*']}");
	struct req q;
	req_init(&q, SAY);

	req_ident(&q, NULL);
	ck_assert(!allowed(allow_not, &q));
	ck_assert(!allowed(deny_not, &q));
	ck_assert_str_eq(eval(deny_not, &q).deciding_policy, "p");
	ck_assert(!allowed(deny_anon, &q));
	/* A claimed principal over plaintext is no identity: the same answers. */
	q.r.peer_principal = CLIENT;
	q.r.peer_principal_len = strlen(CLIENT);
	ck_assert(!allowed(allow_not, &q));
	ck_assert(!allowed(deny_not, &q));
	ck_assert(!allowed(deny_anon, &q));

	req_ident(&q, CLIENT);
	ck_assert(allowed(allow_not, &q));
	ck_assert(allowed(deny_not, &q));
	ck_assert(allowed(deny_anon, &q));
	req_ident(&q, INTRUDER);
	ck_assert(!allowed(allow_not, &q));
	ck_assert(!allowed(deny_not, &q));
	ck_assert(allowed(deny_anon, &q));
	policy_unref(allow_not);
	policy_unref(deny_not);
	policy_unref(deny_anon);
}
END_TEST

START_TEST(test_ident_plaintext_vs_not_namespaces)
{
	struct policy *allow_not = authz1("ALLOW", "{notNamespaces: [foo]}");
	struct policy *deny_not = authz1("DENY", "{notNamespaces: [demo]}");
	struct req q;
	req_init(&q, SAY);

	req_ident(&q, NULL);
	ck_assert(!allowed(allow_not, &q));
	ck_assert(!allowed(deny_not, &q));
	/* A verified principal of another shape has no namespace: treated the same way. */
	req_ident(&q, "example.org/workload/x");
	ck_assert(!allowed(allow_not, &q));
	ck_assert(!allowed(deny_not, &q));
	req_ident(&q, "cluster.local/ns/foo/sa/x");
	ck_assert(!allowed(allow_not, &q));
	ck_assert(!allowed(deny_not, &q));
	req_ident(&q, CLIENT); /* namespace demo */
	ck_assert(allowed(allow_not, &q));
	ck_assert(allowed(deny_not, &q));
	policy_unref(allow_not);
	policy_unref(deny_not);
}
END_TEST

/* The positive forms in a DENY: a caller without identity is not the one named. */
START_TEST(test_ident_deny_positive)
{
	struct policy *p = authz1("DENY", "{principals: ['" INTRUDER "']}");
	struct policy *ns = authz1("DENY", "{namespaces: [other]}");
	struct req q;
	req_init(&q, SAY);

	req_ident(&q, NULL);
	ck_assert(allowed(p, &q));
	ck_assert(allowed(ns, &q));
	req_ident(&q, INTRUDER);
	ck_assert(!allowed(p, &q));
	ck_assert(allowed(ns, &q));
	req_ident(&q, OTHER_NS);
	ck_assert(allowed(p, &q));
	ck_assert(!allowed(ns, &q));
	policy_unref(p);
	policy_unref(ns);
}
END_TEST

/* AUDIT records the anonymous caller under a not-form, like DENY. */
START_TEST(test_ident_audit)
{
	struct policy *p = authz1("AUDIT", "{notPrincipals: ['" CLIENT "']}");
	struct req q;
	req_init(&q, SAY);

	req_ident(&q, NULL);
	ck_assert(allowed(p, &q));
	ck_assert_str_eq(eval(p, &q).audit_policy, "p");
	req_ident(&q, CLIENT);
	ck_assert_ptr_null(eval(p, &q).audit_policy);
	req_ident(&q, INTRUDER);
	ck_assert_str_eq(eval(p, &q).audit_policy, "p");
	policy_unref(p);
}
END_TEST

/* Fields of one source are ANDed, sources ORed, identity next to ipBlocks and to. */
START_TEST(test_ident_combined)
{
	struct policy *p =
	    load("authorization:\n"
		 "  - name: admin\n"
		 "    rules:\n"
		 "      - from: [{principals: ['*/sa/frontend'], namespaces: [demo], "
		 "notPrincipals: ['cluster.local/*']}, {ipBlocks: [10.0.0.0/8]}]\n"
		 "        to: [{methods: ['/admin.AdminService/*']}]\n");
	struct req q;
	req_init(&q, "/admin.AdminService/Reset");

	req_peer(&q, "192.0.2.1");
	req_ident(&q, "example.org/ns/demo/sa/frontend");
	ck_assert(allowed(p, &q));
	req_ident(&q, "cluster.local/ns/demo/sa/frontend"); /* notPrincipals */
	ck_assert(!allowed(p, &q));
	req_ident(&q, "example.org/ns/prod/sa/frontend"); /* namespaces */
	ck_assert(!allowed(p, &q));
	req_ident(&q, NULL);
	ck_assert(!allowed(p, &q));
	req_peer(&q, "10.1.2.3"); /* the second source: by address, plaintext is fine */
	ck_assert(allowed(p, &q));
	req_init(&q, SAY); /* `to` does not match */
	req_ident(&q, "example.org/ns/demo/sa/frontend");
	ck_assert(!allowed(p, &q));
	policy_unref(p);
}
END_TEST

/* Istio's `when` keys source.principal / source.namespace: the same rules as from. */
START_TEST(test_ident_when_keys)
{
	struct policy *allow =
	    load("authorization:\n  - name: p\n    rules:\n"
		 "      - when: [{key: source.principal, values: ['*/sa/client']},"
		 " {key: source.namespace, notValues: [other]}]\n");
	struct policy *deny =
	    load("authorization:\n  - name: p\n    action: DENY\n"
		 "    rules: [{when: [{key: source.namespace, notValues: [demo]}]}]\n");
	struct req q;
	req_init(&q, SAY);

	req_ident(&q, CLIENT);
	ck_assert(allowed(allow, &q));
	ck_assert(allowed(deny, &q));
	req_ident(&q, OTHER_NS);
	ck_assert(!allowed(allow, &q));
	ck_assert(!allowed(deny, &q));
	req_ident(&q, INTRUDER);
	ck_assert(!allowed(allow, &q));
	req_ident(&q, NULL); /* no identity: values fail, notValues cautious */
	ck_assert(!allowed(allow, &q));
	ck_assert(!allowed(deny, &q));
	policy_unref(allow);
	policy_unref(deny);
}
END_TEST

/* Health checks stay allowed under an identity-only ALLOW, plaintext (kubelet) too. */
START_TEST(test_ident_health)
{
	struct policy *p = authz1("ALLOW", "{principals: ['" CLIENT "']}");
	struct req q;
	req_init(&q, "/grpc.health.v1.Health/Check");

	req_ident(&q, NULL);
	ck_assert(allowed(p, &q));
	/* A DENY of every anonymous caller does not name the health service either. */
	struct policy *anon = authz1("DENY", "{notPrincipals: ['*']}");
	ck_assert(allowed(anon, &q));
	req_init(&q, SAY);
	ck_assert(!allowed(anon, &q));
	policy_unref(anon);
	policy_unref(p);
}
END_TEST

/* The caller's sidecar never authorizes, identity or not. */
START_TEST(test_ident_outbound)
{
	struct policy *p = authz1("ALLOW", "{principals: ['" CLIENT "']}");
	struct req q;
	req_init(&q, SAY);

	q.r.direction = POLICY_OUTBOUND;
	req_ident(&q, NULL);
	ck_assert(allowed(p, &q));
	policy_unref(p);
}
END_TEST

START_TEST(test_mtls_mode)
{
	struct policy *none = load("faults: []\n");
	struct policy *strict = load("mtls: {mode: STRICT}\n");
	struct policy *perm = load("mtls: {mode: PERMISSIVE}\n");
	struct policy_labels *l = labels("app=\"server\"\n");

	ck_assert_int_eq(policy_mtls_given(none), POLICY_MTLS_UNSET);
	ck_assert_int_eq(policy_mtls_mode(none, NULL), POLICY_MTLS_PERMISSIVE);
	ck_assert_int_eq(policy_mtls_mode(NULL, NULL), POLICY_MTLS_PERMISSIVE);
	ck_assert_int_eq(policy_mtls_given(strict), POLICY_MTLS_STRICT);
	ck_assert_int_eq(policy_mtls_mode(strict, NULL), POLICY_MTLS_STRICT);
	ck_assert_int_eq(policy_mtls_mode(strict, l), POLICY_MTLS_STRICT);
	ck_assert_int_eq(policy_mtls_given(perm), POLICY_MTLS_PERMISSIVE);
	ck_assert_int_eq(policy_mtls_mode(perm, l), POLICY_MTLS_PERMISSIVE);
	ck_assert_str_eq(policy_mtls_name(POLICY_MTLS_STRICT), "STRICT");
	ck_assert_str_eq(policy_mtls_name(POLICY_MTLS_PERMISSIVE), "PERMISSIVE");
	ck_assert_str_eq(policy_mtls_name(POLICY_MTLS_UNSET), "UNSET");
	/* STRICT changes no RPC verdict by itself: the sidecar refuses plaintext connections. */
	struct req q;
	req_init(&q, SAY);
	ck_assert(allowed(strict, &q));
	policy_labels_free(l);
	policy_unref(none);
	policy_unref(strict);
	policy_unref(perm);
}
END_TEST

START_TEST(test_principal_from_spiffe)
{
	static const struct {
		const char *uri, *want; /* want NULL: -EINVAL */
	} cases[] = {
	    {"spiffe://cluster.local/ns/demo/sa/client", CLIENT},
	    {"spiffe://example.org/workload/Web_1.a-b", "example.org/workload/Web_1.a-b"},
	    {"spiffe://cluster.local", NULL},
	    {"spiffe://cluster.local/", NULL},
	    {"spiffe://cluster.local/ns/demo/sa/client/", NULL},
	    {"spiffe://cluster.local/ns//sa/client", NULL},
	    {"spiffe://cluster.local/ns/./sa/client", NULL},
	    {"spiffe://cluster.local/ns/../sa/client", NULL},
	    {"spiffe://Cluster.local/ns/demo/sa/client", NULL},
	    {"SPIFFE://cluster.local/ns/demo/sa/client", NULL},
	    {"spiffe://cluster.local:8443/ns/demo/sa/client", NULL},
	    {"spiffe://user@cluster.local/ns/demo/sa/client", NULL},
	    {"spiffe://cluster.local/ns/demo/sa/client?x=1", NULL},
	    {"spiffe://cluster.local/ns/demo/sa/client#x", NULL},
	    {"spiffe://cluster.local/ns/de%6do/sa/client", NULL},
	    {"spiffe:///ns/demo/sa/client", NULL},
	    {"https://cluster.local/ns/demo/sa/client", NULL},
	    {"spiffe://", NULL},
	    {"", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[128];
		memset(out, 'Z', sizeof(out));
		int rc = policy_principal_from_spiffe(cases[i].uri, strlen(cases[i].uri), out,
						      sizeof(out));
		if (cases[i].want) {
			ck_assert_msg(rc == 0, "%s: rc %d", cases[i].uri, rc);
			ck_assert_str_eq(out, cases[i].want);
		} else {
			ck_assert_msg(rc == -EINVAL, "%s: rc %d, want -EINVAL", cases[i].uri, rc);
			ck_assert_msg(out[0] == 'Z', "%s: out touched on failure", cases[i].uri);
		}
	}
	/* A NUL inside the URI is not a SPIFFE character. */
	ck_assert_int_eq(policy_principal_from_spiffe("spiffe://a/b\0c", 14, NULL, 0), -EINVAL);
	/* Too small: exactly one byte short, then just enough. */
	const char *u = "spiffe://cluster.local/ns/demo/sa/client";
	char small[sizeof(CLIENT)];
	memset(small, 'Z', sizeof(small));
	ck_assert_int_eq(policy_principal_from_spiffe(u, strlen(u), small, sizeof(small) - 1),
			 -ENOSPC);
	ck_assert_int_eq(small[0], 'Z');
	ck_assert_int_eq(policy_principal_from_spiffe(u, strlen(u), small, sizeof(small)), 0);
	ck_assert_str_eq(small, CLIENT);
	/* Length-delimited: the bytes after len are not read as part of the URI. */
	ck_assert_int_eq(policy_principal_from_spiffe("spiffe://a/bXYZ", 12, small, sizeof(small)),
			 0);
	ck_assert_str_eq(small, "a/b");
	/* 2048 bytes is the SPIFFE maximum. */
	char big[2100];
	memcpy(big, "spiffe://a/", 11);
	memset(big + 11, 'x', sizeof(big) - 11);
	char out[2100];
	ck_assert_int_eq(policy_principal_from_spiffe(big, 2048, out, sizeof(out)), 0);
	ck_assert_int_eq(policy_principal_from_spiffe(big, 2049, out, sizeof(out)), -EINVAL);
}
END_TEST

START_TEST(test_principal_namespace)
{
	const char *ns = NULL;
	size_t len = 0;

	ck_assert_int_eq(policy_principal_namespace(CLIENT, strlen(CLIENT), &ns, &len), 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_int_eq(memcmp(ns, "demo", 4), 0);
	ck_assert_int_eq(policy_principal_namespace(CLIENT, strlen(CLIENT), NULL, NULL), 0);
	const char *sa_dots = "td/ns/a-1/sa/my.sa";
	ck_assert_int_eq(policy_principal_namespace(sa_dots, strlen(sa_dots), &ns, &len), 0);
	ck_assert_uint_eq(len, 3);
	static const char *const bad[] = {
	    "cluster.local/ns/demo/sa",		"cluster.local/ns/demo/sa/",
	    "cluster.local/ns/-demo/sa/x",	"cluster.local/ns/demo-/sa/x",
	    "cluster.local/ns/demo/sa/X",	"cluster.local/ns/demo/sa/.x",
	    "cluster.local/ns/demo/sa/x..y",	"cluster.local/NS/demo/sa/x",
	    "Cluster.local/ns/demo/sa/x",	"/ns/demo/sa/x",
	    "cluster.local/ns/demo/sa/x/y",	"cluster.local//ns/demo/sa/x",
	    "spiffe://cluster.local/ns/d/sa/x", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ns = "untouched";
		len = 99;
		ck_assert_msg(policy_principal_namespace(bad[i], strlen(bad[i]), &ns, &len) ==
				  -EINVAL,
			      "%s accepted", bad[i]);
		ck_assert_str_eq(ns, "untouched");
		ck_assert_uint_eq(len, 99);
	}
	char longns[128];
	snprintf(longns, sizeof(longns), "td/ns/%064d/sa/x", 0); /* 64 > 63 */
	ck_assert_int_eq(policy_principal_namespace(longns, strlen(longns), NULL, NULL), -EINVAL);
	snprintf(longns, sizeof(longns), "td/ns/%063d/sa/x", 0);
	ck_assert_int_eq(policy_principal_namespace(longns, strlen(longns), NULL, NULL), 0);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"decision_table", test_no_policies_allow},
	    {"decision_table", test_deny_before_allow},
	    {"decision_table", test_only_deny_policies},
	    {"decision_table", test_allow_none_match},
	    {"decision_table", test_rules_absent_empty_and_match_all},
	    {"decision_table", test_audit},
	    {"decision_table", test_audit_with_deny},
	    {"selectors", test_selectors},
	    {"selectors", test_selector_empty_matchlabels},
	    {"sources", test_cidr_v4_edges},
	    {"sources", test_cidr_v6_edges},
	    {"sources", test_not_ip_blocks},
	    {"sources", test_from_list_is_or},
	    {"sources", test_principals},
	    {"operations", test_method_patterns},
	    {"operations", test_rule_is_and_of_from_to_when},
	    {"conditions", test_header_conditions},
	    {"conditions", test_repeated_headers_join},
	    {"conditions", test_fault_headers_join},
	    {"conditions", test_authority_alias},
	    {"operations", test_service_prefix_confusion},
	    {"conditions", test_values_and_not_values},
	    {"conditions", test_claims},
	    {"conditions", test_issue10_example},
	    {"passthrough", test_passthrough_mode},
	    {"health", test_health_exemption},
	    {"faults", test_fault_first_match_wins},
	    {"faults", test_fault_selector},
	    {"faults", test_fault_percent_draws},
	    {"faults", test_fault_percent_edges},
	    {"faults", test_fault_not_when_denied},
	    {"faults", test_fault_health},
	    {"faults", test_fault_destinations_direction},
	    {"faults", test_outbound_never_authorizes},
	    {"faults", test_host_match},
	    {"identity", test_ident_principals_exact},
	    {"identity", test_ident_needs_mtls},
	    {"identity", test_ident_crafted},
	    {"identity", test_ident_length_view},
	    {"identity", test_ident_principal_patterns},
	    {"identity", test_ident_namespaces},
	    {"identity", test_ident_plaintext_vs_not_principals},
	    {"identity", test_ident_plaintext_vs_not_namespaces},
	    {"identity", test_ident_deny_positive},
	    {"identity", test_ident_audit},
	    {"identity", test_ident_combined},
	    {"identity", test_ident_when_keys},
	    {"identity", test_ident_health},
	    {"identity", test_ident_outbound},
	    {"mtls", test_mtls_mode},
	    {"identity", test_principal_from_spiffe},
	    {"identity", test_principal_namespace},
	};
	return UT_RUN("policy/eval", tests, .timeout_s = 10);
}
