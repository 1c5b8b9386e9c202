/*
 * gRPC status codes by name and number (grpc/doc/statuscodes.md).
 */
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

static const char *const status_names[] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};
#define NSTATUS ((int)(sizeof(status_names) / sizeof(status_names[0])))

/*
 * Accepts a name in any case ("UNAVAILABLE", "unavailable") or a decimal number 0..16
 * without sign, spaces or leading zeros. Returns the code or -1.
 */
int policy_grpc_status_parse(const char *s)
{
	if (!s || !*s)
		return -1;
	if (s[0] >= '0' && s[0] <= '9') {
		size_t n = strlen(s);
		if (n > 2 || (n == 2 && s[0] == '0'))
			return -1;
		int v = 0;
		for (size_t i = 0; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return -1;
			v = v * 10 + (s[i] - '0');
		}
		return v < NSTATUS ? v : -1;
	}
	for (int i = 0; i < NSTATUS; i++)
		if (strcasecmp(s, status_names[i]) == 0)
			return i;
	return -1;
}

const char *policy_grpc_status_name(int code)
{
	if (code < 0 || code >= NSTATUS)
		return NULL;
	return status_names[code];
}
