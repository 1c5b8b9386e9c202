/*
 * Command-line configuration of `grpcguard-sidecar run`: the flags, their defaults and
 * their validation. Pure: parses argv into a struct, does no I/O and starts nothing.
 */
#ifndef GRPCGUARD_SC_CONFIG_H
#define GRPCGUARD_SC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

struct sc_config {
	const char *listen;   /* "HOST:PORT", borrowed from argv */
	const char *upstream; /* "original-dst" or "HOST:PORT" */
	bool original_dst;
	const char *admin;	/* "HOST:PORT" or NULL (no admin server) */
	const char *policy;	/* path or NULL */
	const char *pod_labels; /* path or NULL */
	unsigned workers;
	enum log_level log_level;
	bool have_seed;
	uint64_t seed;
	unsigned max_connections;
	unsigned max_concurrent_streams;
	unsigned max_header_list_bytes;
	unsigned max_pending_bytes;
	unsigned max_delayed;
	uint64_t idle_timeout_ms;
	uint64_t drain_time_ms;
	uint64_t upstream_connect_timeout_ms;
	const char *outbound_listen; /* "HOST:PORT" of the outbound proxy, or NULL (off) */
	/* Workload identity and mTLS (identity.h): off unless ca_address is set. */
	const char *ca_address;	    /* "https://host[:port]" of the issuer, or NULL */
	const char *ca_cert;	    /* PEM bundle verifying the issuer's TLS */
	const char *identity_token; /* projected ServiceAccount token (audience grpcguard) */
};

/* Fills every field with its default (listen 0.0.0.0:15006, upstream original-dst ...). */
void sc_config_defaults(struct sc_config *cfg);

/*
 * Parse the flags of `run` (argv[0] is "run"). Returns 0, 1 when --help was asked (usage
 * already printed to stdout), or -1 with a one-line reason in err (errlen bytes). Strings
 * in *cfg are borrowed from argv.
 */
int sc_config_parse(int argc, char **argv, struct sc_config *cfg, char *err, size_t errlen);

/* The usage text of the whole program. */
extern const char sc_usage[];

#endif
