/*
 * The webhook's configuration file (--config webhook.yaml), parsed with libyaml.
 *
 * Shared contract with the Helm chart; every key is optional and has the default that
 * wh_config_init() sets. Unknown and duplicate keys are errors reported as
 * "file:line:column: key.path: message". This module only parses and holds values; it
 * does not watch the file (a changed ConfigMap rolls the webhook Deployment).
 */
#ifndef GRPCGUARD_WH_CONFIG_H
#define GRPCGUARD_WH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum wh_mode { WH_MODE_ENFORCE = 0, WH_MODE_WARN };

#define WH_DEFAULT_MAX_BODY_BYTES                                                                  \
	(3670016u) /* 3.5 MiB: etcd's 1.5 MiB object, encoded, with room */
#define WH_MAX_CONFIG_BYTES (1024 * 1024)

struct wh_config {
	char *namespace_; /* the webhook's own namespace, never injected */
	enum wh_mode validation_mode;
	char *image;
	char *pull_policy;   /* Always | IfNotPresent | Never */
	bool native_sidecar; /* proxy as an init container with restartPolicy: Always */
	bool intercept_cni;  /* true: no grpcguard-init container */
	bool ipv4_only;	     /* init --ipv4-only: IPv6 that cannot be redirected only warns */
	unsigned proxy_port;
	unsigned admin_port;
	unsigned proxy_uid;
	char *policy_configmap;
	char *log_level;	   /* the sidecar's --log-level */
	char **exclude_namespaces; /* extra, beyond the built-in ones */
	size_t nexclude_namespaces;
	json_t *extra_annotations; /* object of string values (owned) */
	json_t *resources;	   /* {"requests": {...}, "limits": {...}} (owned) */
	/* The proxy container, the same for every pod: built by wh_inject_prepare() once the
	 * configuration is final and then shared read-only (owned; NULL: built per pod). */
	json_t *proxy_container;
	char *proxy_container_json; /* the same dumped compact (owned) */
	size_t max_body_bytes;
	unsigned max_connections;
	unsigned connection_timeout_s;

	/* identity: the certificate endpoint POST /v1/certify and, in injected pods, the
	 * proxy's token volume and issuer flags (docs/identity.md). Off by default. */
	bool identity_enabled;
	char *trust_domain;
	unsigned cert_lifetime_s;
	char *ca_cert_file, *ca_key_file;
	char *ca_bundle_file;	    /* NULL: the last certificate of ca_cert_file */
	char *token_review_url;	    /* NULL: in-cluster (KUBERNETES_SERVICE_HOST/PORT) */
	char *token_review_ca_file; /* the API server's CA */
	char *token_review_token_file;
	unsigned token_review_timeout_ms;
	unsigned rl_source_per_minute, rl_source_burst;
	unsigned rl_identity_per_minute, rl_identity_burst;
	char *ca_address;	   /* the proxy's --ca-address; NULL: the webhook Service */
	char *ca_bundle_configmap; /* ConfigMap (in the pod's namespace) with the serving CA */
};

/*
 * Fill *c with the defaults. The namespace is POD_NAMESPACE from the environment when set,
 * else "grpcguard-system". Returns 0 or -ENOMEM (then *c needs only wh_config_cleanup).
 */
int wh_config_init(struct wh_config *c);
void wh_config_cleanup(struct wh_config *c);

/*
 * Overlay the keys present in the YAML document buf[0..len) (named `name` in messages)
 * on *c. Returns 0, or negative with "name:line:col: path: message" in err; *c may then
 * hold some of the new values and must not be used except for cleanup.
 */
int wh_config_load_buffer(struct wh_config *c, const char *name, const char *buf, size_t len,
			  char *err, size_t errlen);
/* The same for a file (at most WH_MAX_CONFIG_BYTES). */
int wh_config_load_file(struct wh_config *c, const char *path, char *err, size_t errlen);

/* True when pods in namespace ns are never injected (built-in list, own, configured). */
bool wh_config_namespace_excluded(const struct wh_config *c, const char *ns);

#endif
