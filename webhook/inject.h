/*
 * Sidecar injection: the JSONPatch (RFC 6902) that turns a Pod into one with the
 * grpcguard proxy, its iptables init step, volumes and annotations (DESIGN.md "Pod
 * injection"). Pure functions over jansson values; no I/O, no logging.
 */
#ifndef GRPCGUARD_WH_INJECT_H
#define GRPCGUARD_WH_INJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "webhook/config.h"
#include "webhook/verdict.h"

#define WH_VERSION "0.1.0"
#define WH_PROXY_NAME "grpcguard-proxy"
#define WH_INIT_NAME "grpcguard-init"
#define WH_VOLUME_POLICY "grpcguard-policy"
#define WH_VOLUME_PODINFO "grpcguard-podinfo"
#define WH_VOLUME_TOKEN "grpcguard-token" /* identity.enabled: projected SA token */
#define WH_VOLUME_CA "grpcguard-ca"	  /* identity.enabled: the issuer's CA bundle */
#define WH_ANN_STATUS "grpcguard.io/status"
#define WH_ANN_INJECT "grpcguard.io/inject"
#define WH_ANN_PORTS "grpcguard.io/inbound-ports"
#define WH_ANN_EXCLUDE_PORTS "grpcguard.io/exclude-inbound-ports"
#define WH_ANN_IPV4_ONLY "grpcguard.io/ipv4-only"
#define WH_ANN_POLICY_CM "grpcguard.io/policy-configmap"

/*
 * A JSON Pointer reference token for `key` ("~" -> "~0", "/" -> "~1"), new string or NULL.
 */
char *wh_json_pointer_escape(const char *key);

/* What grpcguard-init redirects, and what the proxy is told about it (all new strings). */
struct wh_inbound {
	char *ports;	   /* --ports: "*" or "8080,9090" */
	char *exclude;	   /* --exclude-inbound-ports: probe ports, then the annotation's; "" */
	char *probe_ports; /* the kubelet probe ports among them; "" */
	bool ipv4_only;	   /* pass --ipv4-only (config ipv4Only, or the annotation) */
};

/*
 * The inbound redirect for a pod. Ports: the grpcguard.io/inbound-ports annotation when
 * present (validated: "*" or a comma list of 1..65535, taken as it is), else "*": every
 * port, as Istio does, so a gRPC server on an undeclared or differently named port is
 * judged too. With "*", the ports of the kubelet's httpGet and tcpSocket probes
 * (liveness, readiness, startup; numeric, or named and resolved through the container's
 * ports) are excluded so probes keep working; gRPC probes stay intercepted. The
 * grpcguard.io/exclude-inbound-ports annotation adds exclusions in either case. The
 * proxy's own ports are never listed. Returns 0 and fills *out (wh_inbound_cleanup),
 * -EINVAL with a message in err (a bad annotation; *out empty), or -ENOMEM.
 */
int wh_inbound_ports(const struct wh_config *c, const json_t *pod, struct wh_inbound *out,
		     char *err, size_t errlen);
void wh_inbound_cleanup(struct wh_inbound *in);

/*
 * Judge a Pod CREATE in namespace ns (from the request; pods made by a ReplicaSet carry
 * only generateName and no namespace). Fills *v (initialized by the caller): allowed with
 * v->patch when injecting; allowed without a patch (v->reason says why) when the pod is
 * opted out, uses hostNetwork, is in an excluded namespace or is already injected; denied
 * for a bad grpcguard.io/inbound-ports, exclude-inbound-ports or ipv4-only annotation or a
 * malformed pod. Returns 0 or -ENOMEM.
 */
/*
 * Build what is the same for every injected pod (the proxy container) into c, once c is
 * final (it must not change afterwards). Optional: without it the container is built per
 * pod. Returns 0 or -ENOMEM.
 */
int wh_inject_prepare(struct wh_config *c);

int wh_inject_pod(const struct wh_config *c, const json_t *pod, const char *ns,
		  struct wh_verdict *v);

#endif
