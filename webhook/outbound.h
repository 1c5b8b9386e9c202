/*
 * The pod annotations that shape outbound capture, turned into grpcguard-init flags:
 *
 *   grpcguard.io/outbound: "false"                    -> --no-outbound
 *   grpcguard.io/exclude-outbound-ports: "3306,5432"  -> --exclude-outbound-ports 3306,5432
 *   grpcguard.io/exclude-outbound-ip-ranges: "10.96.0.0/12,fd00::/8"
 *                                                     -> --exclude-outbound-cidrs ...
 *
 * Pure: reads the pod JSON, appends strings to an array; validates every value so a typo
 * is an admission error naming the annotation, never a crash-looping init container.
 */
#ifndef GRPCGUARD_WH_OUTBOUND_H
#define GRPCGUARD_WH_OUTBOUND_H

#include <stddef.h>

#include <jansson.h>

#define WH_ANN_OUTBOUND "grpcguard.io/outbound"
#define WH_ANN_EXCLUDE_OUT_PORTS "grpcguard.io/exclude-outbound-ports"
#define WH_ANN_EXCLUDE_OUT_RANGES "grpcguard.io/exclude-outbound-ip-ranges"
#define WH_OUT_MAX_RANGES 64
#define WH_OUTBOUND_PORT 15001u /* the proxy's outbound listener, init's default */

/*
 * Append the init flags for pod's outbound annotations to args (a JSON array, borrowed).
 * Returns 0 (nothing appended when no annotation is set), -EINVAL with a one-line reason
 * in err (args unchanged), or -ENOMEM.
 */
int wh_outbound_init_args(const json_t *pod, json_t *args, char *err, size_t errlen);

#endif
