/*
 * Checking grpcguard-graph's flag values; see opts.h.
 */
#include "graph/opts.h"

#include <string.h>

int gr_parse_duration(const char *s, unsigned long min_s, unsigned long max_s, unsigned long *out_s)
{
	unsigned long n = 0, mul;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		if (n > 100000000ul) /* far past any max: stop before overflow */
			return -1;
		n = n * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || !s[i] || s[i + 1])
		return -1;
	switch (s[i]) {
	case 's':
		mul = 1;
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	default:
		return -1;
	}
	n *= mul;
	if (n < min_s || n > max_s)
		return -1;
	*out_s = n;
	return 0;
}

int gr_valid_namespace(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

int gr_normalize_url(const char *s, char *dst, size_t dstsz)
{
	size_t n = strlen(s), skip;

	if (strncmp(s, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(s, "https://", 8) == 0)
		skip = 8;
	else
		return -1;
	if (n > 1024 || n == skip || s[skip] == '/')
		return -1;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
			return -1;
	while (n > skip && s[n - 1] == '/')
		n--;
	if (n + 1 > dstsz)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}
