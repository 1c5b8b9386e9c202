/*
 * gRPC wire helpers; see grpcwire.h. Everything here is pure and unit tested.
 */
#include "sidecar/grpcwire.h"

#include <string.h>

int sc_grpc_timeout_parse(const char *s, size_t len, uint64_t *out_ms)
{
	uint64_t v = 0, ms;

	if (len < 2 || len > 9)
		return -1;
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	switch (s[len - 1]) {
	case 'H':
		ms = v * 3600000;
		break;
	case 'M':
		ms = v * 60000;
		break;
	case 'S':
		ms = v * 1000;
		break;
	case 'm':
		ms = v;
		break;
	case 'u':
		ms = (v + 999) / 1000;
		break;
	case 'n':
		ms = (v + 999999) / 1000000;
		break;
	default:
		return -1;
	}
	*out_ms = ms;
	return 0;
}

int sc_grpc_reset_code(uint64_t deadline_ms, uint64_t timeout_ms, uint64_t now_ms)
{
	uint64_t slack_ms = 20 + timeout_ms / 100;

	if (deadline_ms && now_ms + slack_ms >= deadline_ms)
		return 4;
	return 1;
}

size_t sc_grpc_message_encode(const char *msg, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
		bool plain = *p >= 0x20 && *p <= 0x7e && *p != '%';
		size_t need = plain ? 1 : 3;
		if (o + need >= outlen)
			break;
		if (plain) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return o;
}

int sc_h2_preface_check(const uint8_t *buf, size_t len)
{
	if (len > SC_H2_PREFACE_LEN)
		len = SC_H2_PREFACE_LEN;
	if (memcmp(buf, SC_H2_PREFACE, len) != 0)
		return -1;
	return len == SC_H2_PREFACE_LEN ? 1 : 0;
}

bool sc_grpc_split_path(const char *path, size_t len, const char **svc, size_t *svc_len,
			const char **meth, size_t *meth_len)
{
	const char *slash;

	if (len < 4 || path[0] != '/')
		goto unknown;
	/*
	 * Printable ASCII only: the parts become Prometheus label values, which must be UTF-8
	 * (one stray byte makes the scraper reject the whole /metrics page). Under an
	 * authorization entry the gate refuses such paths anyway; without one they still
	 * reach the app and are counted, under "unknown".
	 */
	for (size_t i = 1; i < len; i++)
		if ((unsigned char)path[i] < 0x21 || (unsigned char)path[i] > 0x7e)
			goto unknown;
	slash = memchr(path + 1, '/', len - 1);
	if (!slash || slash == path + 1 || slash == path + len - 1 ||
	    memchr(slash + 1, '/', (size_t)(path + len - slash - 1)))
		goto unknown;
	*svc = path + 1;
	*svc_len = (size_t)(slash - path - 1);
	*meth = slash + 1;
	*meth_len = (size_t)(path + len - slash - 1);
	return true;
unknown:
	*svc = *meth = "unknown";
	*svc_len = *meth_len = 7;
	return false;
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void sc_rng_seed(struct sc_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sc_rng_next(struct sc_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

double sc_rng_percent(void *ctx)
{
	/* 53 random bits -> [0, 1), scaled. */
	return (double)(sc_rng_next(ctx) >> 11) * (1.0 / 9007199254740992.0) * 100.0;
}
