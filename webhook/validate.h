/*
 * Validation of the objects /validate receives: Services (every port says its protocol,
 * DESIGN.md "Service validation") and grpcguard policy ConfigMaps (the policy parses).
 * Pure functions over jansson values; no I/O, no logging.
 */
#ifndef GRPCGUARD_WH_VALIDATE_H
#define GRPCGUARD_WH_VALIDATE_H

#include <stdbool.h>

#include <jansson.h>

#include "webhook/config.h"
#include "webhook/verdict.h"

/*
 * The protocol a port name declares: the name itself or the prefix before "-<suffix>"
 * (the longest match, so "grpc-web-x" is grpc-web). Returns the protocol's static name,
 * or NULL when the name does not start with one.
 */
const char *wh_port_name_protocol(const char *name);

/*
 * What is wrong with one entry of spec.ports of Service `svc`, as a new message, or NULL
 * when the port is fine. *oom is set when allocation failed.
 */
char *wh_service_port_problem(const char *svc, const json_t *port, bool *oom);

/*
 * Judge a Service object. Fills *v (initialized by the caller): denied with every
 * problem joined by "; " in enforce mode, allowed with one warning per problem in warn
 * mode. A malformed object (spec.ports not a list...) is denied in both modes.
 * Returns 0 or -ENOMEM.
 */
int wh_validate_service(const struct wh_config *c, const json_t *svc, struct wh_verdict *v);

/*
 * True when this ConfigMap holds a grpcguard policy: named c->policy_configmap, or
 * labeled grpcguard.io/policy: "true".
 */
bool wh_is_policy_configmap(const struct wh_config *c, const json_t *cm);

/*
 * Judge a ConfigMap: a policy ConfigMap whose data["policy.yaml"] does not parse is
 * denied (warned in warn mode) with the parser's "policy.yaml:line:col: ..." message.
 * Other ConfigMaps are allowed untouched. Returns 0 or -ENOMEM.
 */
int wh_validate_configmap(const struct wh_config *c, const json_t *cm, struct wh_verdict *v);

#endif
