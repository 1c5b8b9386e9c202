/*
 * Policy evaluation micro-benchmark (make bench, bench/run.sh): nanoseconds per
 * policy_evaluate() for generated policies of 1, 20 and 200 authorization rules, and for
 * the files named on the command line (bench/policy-realistic.yaml).
 *
 * The generated policies hold n-1 rules that do not match the benchmark's RPC (a third
 * compare the method, a third the source address, a third a header), spread over DENY
 * policies of 10 rules each, then one ALLOW rule that matches, so every rule is evaluated
 * as in the worst realistic case. The request is POST /helloworld.Greeter/SayHello from
 * 127.0.0.1 with the headers a grpc client sends.
 *
 * Output, one line per policy, tab-separated: name, rules, ns per evaluation (best of 3
 * timed batches of at least 0.2 s of thread CPU time each). Not a test: it asserts nothing
 * about speed; it exits 1 only when a policy does not parse or does not allow the RPC.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

/*
 * This thread's CPU time, not wall time: the machine the benchmark runs on is shared, and
 * wall time would mostly measure the other work on it.
 */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends to a malloc'd buffer; exits on ENOMEM (a benchmark, not a library). */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			abort();
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
}

/* YAML of a policy with nrules authorization rules, the last one the matching ALLOW. */
static char *gen_policy(unsigned nrules, size_t *len)
{
	struct sbuf b = {0};
	unsigned i;

	sb_printf(&b, "apiVersion: grpcguard.io/v1\nkind: Policy\nauthorization:\n");
	for (i = 0; i + 1 < nrules; i++) {
		if (i % 10 == 0)
			sb_printf(&b, "  - name: deny-%u\n    action: DENY\n    rules:\n", i / 10);
		switch (i % 3) {
		case 0:
			sb_printf(&b, "      - to: [{methods: [\"/svc%u.Service/*\"]}]\n", i);
			break;
		case 1:
			sb_printf(&b, "      - from: [{ipBlocks: [\"10.%u.0.0/16\"]}]\n", i % 256);
			break;
		default:
			sb_printf(
			    &b, "      - when: [{header: x-tenant, values: [\"t%u\", \"u%u\"]}]\n",
			    i, i);
			break;
		}
	}
	sb_printf(&b, "  - name: allow-greeter\n    action: ALLOW\n    rules:\n"
		      "      - from: [{ipBlocks: [\"127.0.0.0/8\"]}]\n"
		      "        to: [{methods: [\"/helloworld.Greeter/*\"]}]\n");
	*len = b.len;
	return b.p;
}

/* Returns ns per evaluation, or -1 when the RPC is not allowed. */
static double bench_one(const struct policy *p)
{
	static const struct policy_header hdrs[] = {
	    {":authority", 10, "127.0.0.1:35010", 15},
	    {"content-type", 12, "application/grpc", 16},
	    {"te", 2, "trailers", 8},
	    {"user-agent", 10, "grpc-python/1.51.1 grpc-c/29.0.0 (linux; chttp2)", 48},
	    {"grpc-accept-encoding", 20, "identity, deflate, gzip", 23},
	    {"x-tenant", 8, "blue", 4},
	};
	static const char method[] = "/helloworld.Greeter/SayHello";
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct policy_request req = {0};
	struct policy_decision d;
	double best = -1;
	unsigned long sink = 0;
	int rep;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	req.method = method;
	req.method_len = sizeof(method) - 1;
	req.headers = hdrs;
	req.nheaders = sizeof(hdrs) / sizeof(hdrs[0]);
	req.peer = (const struct sockaddr *)&sin;

	policy_evaluate(p, &req, NULL, NULL, &d);
	if (!d.allowed)
		return -1;
	for (rep = 0; rep < 3; rep++) {
		unsigned long n = 0;
		double t0 = now_s(), t1;

		do {
			for (unsigned k = 0; k < 10000; k++) {
				policy_evaluate(p, &req, NULL, NULL, &d);
				sink += d.allowed;
			}
			n += 10000;
			t1 = now_s();
		} while (t1 - t0 < 0.2);
		double ns = (t1 - t0) * 1e9 / (double)n;
		if (best < 0 || ns < best)
			best = ns;
	}
	if (sink == 0)
		fprintf(stderr, "unreachable\n");
	return best;
}

/* rules: the rule count for the table, or NULL to print the policy and fault counts. */
static int report(const char *name, const char *rules, const char *text, size_t len)
{
	struct policy *p = NULL;
	struct policy_diag diag;
	double ns;
	int rc;

	rc = policy_parse_buffer(name, text, len, &p, &diag);
	if (rc < 0) {
		fprintf(stderr, "policy_bench: %s\n", diag.text);
		return -1;
	}
	ns = bench_one(p);
	if (ns < 0) {
		fprintf(stderr, "policy_bench: %s does not allow the benchmark RPC\n", name);
		policy_unref(p);
		return -1;
	}
	if (rules)
		printf("%s\t%s\t%.0f\n", name, rules, ns);
	else
		printf("%s\t%zu policies, %zu faults\t%.0f\n", name, policy_authz_count(p),
		       policy_fault_count(p), ns);
	fflush(stdout);
	policy_unref(p);
	return 0;
}

int main(int argc, char **argv)
{
	static const unsigned sizes[] = {1, 20, 200};
	int rc = 0;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char name[64], rules[16];
		size_t len;
		char *yaml = gen_policy(sizes[i], &len);

		snprintf(name, sizeof(name), "generated");
		snprintf(rules, sizeof(rules), "%u", sizes[i]);
		if (report(name, rules, yaml, len) < 0)
			rc = 1;
		free(yaml);
	}
	for (int a = 1; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		char *buf = NULL;
		size_t len = 0;

		if (!f || !(buf = malloc(POLICY_MAX_FILE_BYTES))) {
			fprintf(stderr, "policy_bench: cannot read %s\n", argv[a]);
			rc = 1;
		} else {
			len = fread(buf, 1, POLICY_MAX_FILE_BYTES, f);
			if (report(argv[a], NULL, buf, len) < 0)
				rc = 1;
		}
		free(buf);
		if (f)
			fclose(f);
	}
	return rc;
}
