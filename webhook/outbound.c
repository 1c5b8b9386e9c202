/*
 * Outbound capture annotations (see outbound.h). Values are normalized ("3306, 5432 " ->
 * "3306,5432") before they become arguments; what init accepts is what is checked here
 * (ports 1-65535; addresses and CIDR blocks of either family, at most 64).
 */
#include "webhook/outbound.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/policy.h"

/*
 * Split list on commas (spaces around entries allowed), check each entry with ok(), and
 * write "a,b,c" into out (outlen bytes). Returns 0, or -EINVAL with the bad entry in bad.
 */
static int normalize(const char *list, bool (*ok)(const char *), size_t max_entries, char *out,
		     size_t outlen, char *bad, size_t badlen, size_t *count)
{
	const char *s = list;
	size_t used = 0;
	char item[64];

	*count = 0;
	out[0] = '\0';
	for (;;) {
		size_t n;

		s += strspn(s, " ");
		n = strcspn(s, ",");
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n == 0 || n >= sizeof(item)) {
			snprintf(bad, badlen, "an empty or overlong entry");
			return -EINVAL;
		}
		memcpy(item, s, n);
		item[n] = '\0';
		if (!ok(item)) {
			snprintf(bad, badlen, "\"%s\"", item);
			return -EINVAL;
		}
		if (++*count > max_entries) {
			snprintf(bad, badlen, "more than %zu entries", max_entries);
			return -EINVAL;
		}
		if (used + n + 2 > outlen) {
			snprintf(bad, badlen, "a list that is too long");
			return -EINVAL;
		}
		used += (size_t)snprintf(out + used, outlen - used, "%s%s", used ? "," : "", item);
		s += strcspn(s, ",");
		if (*s == '\0')
			return 0;
		s++;
	}
}

static bool is_port(const char *s)
{
	char *end;
	long v;

	if (*s < '0' || *s > '9' || strlen(s) > 5)
		return false;
	v = strtol(s, &end, 10);
	return *end == '\0' && v >= 1 && v <= 65535;
}

static bool is_cidr(const char *s)
{
	struct policy_cidr c;

	return policy_parse_cidr(s, &c) == 0;
}

int wh_outbound_init_args(const json_t *pod, json_t *args, char *err, size_t errlen)
{
	const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
	const json_t *on = json_object_get(ann, WH_ANN_OUTBOUND);
	const json_t *ports = json_object_get(ann, WH_ANN_EXCLUDE_OUT_PORTS);
	const json_t *ranges = json_object_get(ann, WH_ANN_EXCLUDE_OUT_RANGES);
	char pv[65536 / 8], rv[WH_OUT_MAX_RANGES * 48], bad[128];
	bool disabled = false;
	size_t n;

	pv[0] = rv[0] = '\0';
	if (on) {
		const char *s = json_string_value(on);
		if (s && strcasecmp(s, "false") == 0) {
			disabled = true;
		} else if (!s || strcasecmp(s, "true") != 0) {
			snprintf(
			    err, errlen,
			    "annotation %s: must be the string \"true\" or \"false\" (quote it "
			    "in YAML)",
			    WH_ANN_OUTBOUND);
			return -EINVAL;
		}
	}
	if (ports) {
		if (!json_is_string(ports) ||
		    normalize(json_string_value(ports), is_port, 65535, pv, sizeof(pv), bad,
			      sizeof(bad), &n) != 0) {
			snprintf(err, errlen,
				 "annotation %s: %s is not a port list; use comma-separated port "
				 "numbers 1-65535, e.g. \"3306,5432\"",
				 WH_ANN_EXCLUDE_OUT_PORTS,
				 json_is_string(ports) ? bad : "a non-string value");
			return -EINVAL;
		}
	}
	if (ranges) {
		if (!json_is_string(ranges) ||
		    normalize(json_string_value(ranges), is_cidr, WH_OUT_MAX_RANGES, rv, sizeof(rv),
			      bad, sizeof(bad), &n) != 0) {
			snprintf(err, errlen,
				 "annotation %s: %s is not a list of IP ranges; use "
				 "comma-separated CIDR blocks or addresses, e.g. "
				 "\"10.96.0.0/12,fd00::/8\" (at most %d)",
				 WH_ANN_EXCLUDE_OUT_RANGES,
				 json_is_string(ranges) ? bad : "a non-string value",
				 WH_OUT_MAX_RANGES);
			return -EINVAL;
		}
	}
	if (disabled)
		return json_array_append_new(args, json_string("--no-outbound")) ? -ENOMEM : 0;
	if (pv[0] && (json_array_append_new(args, json_string("--exclude-outbound-ports")) ||
		      json_array_append_new(args, json_string(pv))))
		return -ENOMEM;
	if (rv[0] && (json_array_append_new(args, json_string("--exclude-outbound-cidrs")) ||
		      json_array_append_new(args, json_string(rv))))
		return -ENOMEM;
	return 0;
}
