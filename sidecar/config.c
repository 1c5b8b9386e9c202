/*
 * Flag parsing for `grpcguard-sidecar run`. Accepts "--flag value" and "--flag=value";
 * durations use the policy syntax (250ms, 1.5s, 10s, 2m). Rejects unknown flags, missing
 * values and out-of-range numbers with a one-line reason; never exits the process.
 */
#include "sidecar/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

const char sc_usage[] =
    "usage: grpcguard-sidecar run [flags]      the inbound gRPC proxy\n"
    "       grpcguard-sidecar init --ports P,...  install the iptables redirect\n"
    "       grpcguard-sidecar check [--policy] FILE  validate a policy and its JWKS (exit 1)\n"
    "\n"
    "run flags (defaults in brackets):\n"
    "  --listen HOST:PORT             where clients connect [[::]:15006: IPv6 and IPv4,\n"
    "                                 or IPv4 only on a node without IPv6]\n"
    "  --upstream original-dst|HOST:PORT  the app: the address each connection was going to\n"
    "                                 (SO_ORIGINAL_DST: pod IP and port, never loopback),\n"
    "                                 or a fixed address [original-dst]\n"
    "  --admin HOST:PORT              /healthz /readyz /metrics /policy [127.0.0.1:15020];\n"
    "                                 \"off\" disables it\n"
    "  --policy FILE                  policy file, watched and reloaded live\n"
    "                                 [/etc/grpcguard/policy/policy.yaml]; a missing file\n"
    "                                 means no faults, everything allowed\n"
    "  --pod-labels FILE              downward API labels (key=\"value\" lines) [none]\n"
    "  --workers N                    event-loop threads sharing the port [1]\n"
    "  --log-level debug|info|warn|error  [info]\n"
    "  --seed N                       seed the percent draws (tests) [random]\n"
    "  --max-connections N            downstream connections; more are closed [1024]\n"
    "  --max-concurrent-streams N     per connection (SETTINGS) [256]\n"
    "  --max-header-list-bytes N      request header block; larger gets RESOURCE_EXHAUSTED\n"
    "                                 [65536]\n"
    "  --max-pending-bytes N          request bytes buffered per stream (flow-control\n"
    "                                 window) [1048576]\n"
    "  --max-delayed N                streams held by delay faults; more get\n"
    "                                 RESOURCE_EXHAUSTED [1000]\n"
    "  --idle-timeout DUR             close connections idle this long [300s]\n"
    "  --drain-time DUR               SIGTERM: GOAWAY, finish in-flight RPCs within [10s]\n"
    "  --upstream-connect-timeout DUR  then the RPC gets UNAVAILABLE [1s]\n"
    "  --outbound-listen HOST:PORT    the outbound proxy: the app's connections that init's\n"
    "                                 OUTPUT capture redirected ([::]:15001 in a pod) go\n"
    "                                 to their original destination, gRPC with client-side\n"
    "                                 faults and caller-side metrics [off]\n"
    "  --ca-address URL               the certificate issuer, e.g.\n"
    "                                 https://grpcguard-webhook.grpcguard-system.svc:443;\n"
    "                                 turns on the workload identity and mTLS [off]\n"
    "  --ca-cert FILE                 PEM CA bundle that verifies the issuer's TLS\n"
    "                                 [/etc/grpcguard/ca/ca.crt]\n"
    "  --identity-token FILE          projected ServiceAccount token, audience grpcguard\n"
    "                                 [/var/run/secrets/grpcguard/tokens/grpcguard-token]\n";

void sc_config_defaults(struct sc_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = "[::]:15006";
	cfg->upstream = "original-dst";
	cfg->original_dst = true;
	cfg->admin = "127.0.0.1:15020";
	cfg->policy = "/etc/grpcguard/policy/policy.yaml";
	cfg->workers = 1;
	cfg->log_level = LOGL_INFO;
	cfg->max_connections = 1024;
	cfg->max_concurrent_streams = 256;
	cfg->max_header_list_bytes = 65536;
	cfg->max_pending_bytes = 1024 * 1024;
	cfg->max_delayed = 1000;
	cfg->idle_timeout_ms = 300000;
	cfg->drain_time_ms = 10000;
	cfg->upstream_connect_timeout_ms = 1000;
	cfg->ca_cert = "/etc/grpcguard/ca/ca.crt";
	cfg->identity_token = "/var/run/secrets/grpcguard/tokens/grpcguard-token";
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

enum kind { K_STR, K_UINT, K_DUR, K_LEVEL };

struct flag {
	const char *name;
	enum kind kind;
	uint64_t min, max;
	size_t off;
};

#define F(n, k, lo, hi, field)                                                                     \
	{                                                                                          \
		n, k, lo, hi, offsetof(struct sc_config, field)                                    \
	}
static const struct flag flags[] = {
    F("listen", K_STR, 0, 0, listen),
    F("upstream", K_STR, 0, 0, upstream),
    F("admin", K_STR, 0, 0, admin),
    F("policy", K_STR, 0, 0, policy),
    F("pod-labels", K_STR, 0, 0, pod_labels),
    F("workers", K_UINT, 1, 64, workers),
    F("log-level", K_LEVEL, 0, 0, log_level),
    F("seed", K_UINT, 0, UINT64_MAX, seed),
    F("max-connections", K_UINT, 1, 1000000, max_connections),
    F("max-concurrent-streams", K_UINT, 1, 1u << 20, max_concurrent_streams),
    F("max-header-list-bytes", K_UINT, 1024, 16u << 20, max_header_list_bytes),
    F("max-pending-bytes", K_UINT, 65535, 0x7fffffffu, max_pending_bytes),
    F("max-delayed", K_UINT, 0, 10000000, max_delayed),
    F("idle-timeout", K_DUR, 1, UINT64_MAX, idle_timeout_ms),
    F("drain-time", K_DUR, 0, UINT64_MAX, drain_time_ms),
    F("upstream-connect-timeout", K_DUR, 1, UINT64_MAX, upstream_connect_timeout_ms),
    F("outbound-listen", K_STR, 0, 0, outbound_listen),
    F("ca-address", K_STR, 0, 0, ca_address),
    F("ca-cert", K_STR, 0, 0, ca_cert),
    F("identity-token", K_STR, 0, 0, identity_token),
};
#undef F

static int set_flag(struct sc_config *cfg, const struct flag *f, const char *val, char *err,
		    size_t errlen)
{
	char *base = (char *)cfg + f->off;
	uint64_t v;

	switch (f->kind) {
	case K_STR:
		if (!*val) {
			snprintf(err, errlen, "--%s: empty value", f->name);
			return -1;
		}
		memcpy(base, &val, sizeof(val));
		return 0;
	case K_LEVEL:
		if (log_level_parse(val, (enum log_level *)(void *)base) != 0) {
			snprintf(err, errlen, "--%s: \"%s\" is not one of debug, info, warn, error",
				 f->name, val);
			return -1;
		}
		return 0;
	case K_DUR:
		if (policy_parse_duration(val, strlen(val), &v) != 0 || v < f->min) {
			snprintf(
			    err, errlen,
			    "--%s: \"%s\" is not a positive duration (use 250ms, 1.5s, 10s, 2m)",
			    f->name, val);
			return -1;
		}
		memcpy(base, &v, sizeof(v));
		return 0;
	case K_UINT:
		if (parse_uint(val, f->min, f->max, &v) != 0) {
			snprintf(err, errlen, "--%s: \"%s\" is not a number between %llu and %llu",
				 f->name, val, (unsigned long long)f->min,
				 (unsigned long long)f->max);
			return -1;
		}
		if (f->max <= 0xffffffffu) {
			unsigned u = (unsigned)v;
			memcpy(base, &u, sizeof(u));
		} else {
			memcpy(base, &v, sizeof(v));
		}
		return 0;
	}
	return -1;
}

int sc_config_parse(int argc, char **argv, struct sc_config *cfg, char *err, size_t errlen)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		const struct flag *f = NULL;
		size_t nlen;

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			fputs(sc_usage, stdout);
			return 1;
		}
		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", arg);
			return -1;
		}
		arg += 2;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
			if (strlen(flags[k].name) == nlen && strncmp(flags[k].name, arg, nlen) == 0)
				f = &flags[k];
		}
		if (!f) {
			snprintf(err, errlen, "unknown flag \"%s\" (see --help)", argv[i]);
			return -1;
		}
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			snprintf(err, errlen, "--%s needs a value", f->name);
			return -1;
		}
		if (set_flag(cfg, f, val, err, errlen) != 0)
			return -1;
		if (strcmp(f->name, "seed") == 0)
			cfg->have_seed = true;
	}
	cfg->original_dst = strcmp(cfg->upstream, "original-dst") == 0;
	if (cfg->admin && strcmp(cfg->admin, "off") == 0)
		cfg->admin = NULL;
	if (cfg->outbound_listen && strcmp(cfg->outbound_listen, "off") == 0)
		cfg->outbound_listen = NULL;
	if (cfg->ca_address && strcmp(cfg->ca_address, "off") == 0)
		cfg->ca_address = NULL;
	if (cfg->ca_address && strncmp(cfg->ca_address, "https://", 8) != 0) {
		snprintf(err, errlen,
			 "--ca-address: \"%.64s\" is not an https:// URL (use "
			 "https://grpcguard-webhook.grpcguard-system.svc:443, or off)",
			 cfg->ca_address);
		return -1;
	}
	return 0;
}
