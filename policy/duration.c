/*
 * Durations as users write them in Kubernetes and Istio: a decimal number and a unit
 * (ms, s, m, h), optionally several in a row like Go ("1m30s"). Resolution is the
 * millisecond; finer fractions are truncated.
 */
#include "policy/internal.h"

/* The largest duration accepted: 30 days, far beyond any sensible fault delay. */
#define MAX_DURATION_MS ((uint64_t)30 * 24 * 3600 * 1000)

/*
 * Parses s[0..len) (not NUL-terminated). Returns 0 and *out_ms, or -1 on anything else:
 * empty, a number without unit, unknown unit, sign, over 30 days. *out_ms untouched then.
 */
int policy_parse_duration(const char *s, size_t len, uint64_t *out_ms)
{
	uint64_t total_us = 0;
	size_t i = 0;

	if (!s || len == 0)
		return -1;
	if (len == 1 && s[0] == '0') { /* Go and Kubernetes accept a bare 0 */
		*out_ms = 0;
		return 0;
	}
	while (i < len) {
		uint64_t whole = 0, frac = 0, frac_div = 1, unit_us;
		size_t digits = 0;

		while (i < len && s[i] >= '0' && s[i] <= '9') {
			if (whole > MAX_DURATION_MS)
				return -1;
			whole = whole * 10 + (uint64_t)(s[i++] - '0');
			digits++;
		}
		if (i < len && s[i] == '.') {
			i++;
			while (i < len && s[i] >= '0' && s[i] <= '9') {
				/* Microseconds are the finest unit, so 9 fraction digits suffice.
				 */
				if (frac_div < 1000000000) {
					frac = frac * 10 + (uint64_t)(s[i] - '0');
					frac_div *= 10;
				}
				i++;
				digits++;
			}
		}
		if (digits == 0)
			return -1;
		if (i + 2 <= len && s[i] == 'm' && s[i + 1] == 's') {
			unit_us = 1000;
			i += 2;
		} else if (i + 2 <= len && s[i] == 'u' && s[i + 1] == 's') {
			unit_us = 1;
			i += 2;
		} else if (i < len && s[i] == 's') {
			unit_us = 1000000;
			i++;
		} else if (i < len && s[i] == 'm') {
			unit_us = 60ull * 1000000;
			i++;
		} else if (i < len && s[i] == 'h') {
			unit_us = 3600ull * 1000000;
			i++;
		} else {
			return -1;
		}
		/* whole <= ~2.6e10 here and unit_us <= 3.6e9, so check before multiplying;
		 * frac < 1e9 makes frac * unit_us < 3.6e18, which fits. */
		if (whole > (MAX_DURATION_MS * 1000) / unit_us)
			return -1;
		total_us += whole * unit_us + frac * unit_us / frac_div;
		if (total_us > MAX_DURATION_MS * 1000)
			return -1;
	}
	*out_ms = total_us / 1000;
	return 0;
}
