/* sidecar/grpcwire: grpc-timeout, grpc-message encoding, preface check, path split, PRNG. */
#include <check.h>
#include <string.h>

#include "sidecar/grpcwire.h"
#include "tests/unit/runner.h"

static uint64_t to_ms(const char *s)
{
	uint64_t v = 12345;
	ck_assert_int_eq(sc_grpc_timeout_parse(s, strlen(s), &v), 0);
	return v;
}

static int bad(const char *s)
{
	uint64_t v;
	return sc_grpc_timeout_parse(s, strlen(s), &v);
}

START_TEST(timeout_units)
{
	ck_assert_uint_eq(to_ms("1H"), 3600000);
	ck_assert_uint_eq(to_ms("2M"), 120000);
	ck_assert_uint_eq(to_ms("3S"), 3000);
	ck_assert_uint_eq(to_ms("250m"), 250);
	ck_assert_uint_eq(to_ms("1500u"), 2);
	ck_assert_uint_eq(to_ms("1n"), 1);
	ck_assert_uint_eq(to_ms("0m"), 0);
	ck_assert_uint_eq(to_ms("99999999S"), 99999999000ull);
}
END_TEST

/* A reset at (or just before, within the slack) the client's deadline is DEADLINE_EXCEEDED. */
START_TEST(reset_code)
{
	/* No grpc-timeout: a reset is always the client cancelling. */
	ck_assert_int_eq(sc_grpc_reset_code(0, 0, 123456), 1);
	/* 5 s timeout, our deadline at t=105000: slack 20 ms + 50 ms. */
	ck_assert_int_eq(sc_grpc_reset_code(105000, 5000, 101000), 1); /* 4 s early: cancel */
	ck_assert_int_eq(sc_grpc_reset_code(105000, 5000, 104929), 1); /* 71 ms early */
	ck_assert_int_eq(sc_grpc_reset_code(105000, 5000, 104930), 4); /* 70 ms: the edge */
	ck_assert_int_eq(sc_grpc_reset_code(105000, 5000, 104990), 4); /* grpcio's usual 10 ms */
	ck_assert_int_eq(sc_grpc_reset_code(105000, 5000, 105000), 4);
	ck_assert_int_eq(sc_grpc_reset_code(105000, 5000, 200000), 4); /* long after */
	/* 100 ms timeout: slack 21 ms. */
	ck_assert_int_eq(sc_grpc_reset_code(1100, 100, 1078), 1);
	ck_assert_int_eq(sc_grpc_reset_code(1100, 100, 1079), 4);
	/* A zero timeout: already past. */
	ck_assert_int_eq(sc_grpc_reset_code(1000, 0, 1000), 4);
}
END_TEST

START_TEST(timeout_malformed)
{
	ck_assert_int_lt(bad(""), 0);
	ck_assert_int_lt(bad("S"), 0);
	ck_assert_int_lt(bad("10"), 0);
	ck_assert_int_lt(bad("10s"), 0);
	ck_assert_int_lt(bad("-1S"), 0);
	ck_assert_int_lt(bad("1 S"), 0);
	ck_assert_int_lt(bad("123456789S"), 0); /* at most 8 digits */
}
END_TEST

START_TEST(message_encoding)
{
	char out[64];
	ck_assert_uint_eq(sc_grpc_message_encode("RBAC: access denied", out, sizeof(out)), 19);
	ck_assert_str_eq(out, "RBAC: access denied");
	sc_grpc_message_encode("100% h\xc3\xa9\n", out, sizeof(out));
	ck_assert_str_eq(out, "100%25 h%C3%A9%0A");
	/* Truncation never splits an escape. */
	ck_assert_uint_eq(sc_grpc_message_encode("ab\xff", out, 5), 2);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(sc_grpc_message_encode("x", out, 1), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(preface)
{
	const uint8_t *p = (const uint8_t *)SC_H2_PREFACE;
	ck_assert_int_eq(sc_h2_preface_check(p, 0), 0);
	ck_assert_int_eq(sc_h2_preface_check(p, 10), 0);
	ck_assert_int_eq(sc_h2_preface_check(p, 24), 1);
	ck_assert_int_eq(sc_h2_preface_check((const uint8_t *)"GET / HTTP/1.1\r\n", 16), -1);
	ck_assert_int_eq(sc_h2_preface_check((const uint8_t *)"PRI * HTTP/1.1", 14), -1);
	ck_assert_int_eq(sc_h2_preface_check((const uint8_t *)"\x16\x03\x01", 3), -1); /* TLS */
}
END_TEST

START_TEST(split_path)
{
	const char *s, *m;
	size_t sl, ml;
	ck_assert(sc_grpc_split_path("/pkg.Svc/Do", 11, &s, &sl, &m, &ml));
	ck_assert_uint_eq(sl, 7);
	ck_assert(memcmp(s, "pkg.Svc", 7) == 0);
	ck_assert_uint_eq(ml, 2);
	ck_assert(memcmp(m, "Do", 2) == 0);
	ck_assert(!sc_grpc_split_path("/a/b/c", 6, &s, &sl, &m, &ml));
	ck_assert_str_eq(s, "unknown");
	ck_assert(!sc_grpc_split_path("//x", 3, &s, &sl, &m, &ml));
	ck_assert(!sc_grpc_split_path("/svc/", 5, &s, &sl, &m, &ml));
	ck_assert(!sc_grpc_split_path("svc/m", 5, &s, &sl, &m, &ml));
	/* Red team 2: bytes that are not printable ASCII never reach a label (invalid UTF-8
	 * made Prometheus reject the whole page). */
	ck_assert(!sc_grpc_split_path("/a\xff\xfe.S/M", 9, &s, &sl, &m, &ml));
	ck_assert_str_eq(s, "unknown");
	ck_assert_str_eq(m, "unknown");
	ck_assert(!sc_grpc_split_path("/pkg.Svc/D\xc3\xa9", 12, &s, &sl, &m, &ml));
	ck_assert(!sc_grpc_split_path("/pkg.Svc/D o", 12, &s, &sl, &m, &ml));
	ck_assert(!sc_grpc_split_path("/pkg.Svc/D\x7f", 11, &s, &sl, &m, &ml));
	ck_assert(sc_grpc_split_path("/pkg.Svc/D~\"\\", 13, &s, &sl, &m, &ml));
	ck_assert_uint_eq(ml, 4);
}
END_TEST

START_TEST(rng)
{
	struct sc_rng a, b;
	int hits = 0;
	sc_rng_seed(&a, 7);
	sc_rng_seed(&b, 7);
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(sc_rng_next(&a), sc_rng_next(&b));
	sc_rng_seed(&b, 8);
	ck_assert_uint_ne(sc_rng_next(&a), sc_rng_next(&b));
	for (int i = 0; i < 100000; i++) {
		double p = sc_rng_percent(&a);
		ck_assert(p >= 0.0 && p < 100.0);
		hits += p < 30.0;
	}
	ck_assert_int_gt(hits, 29000);
	ck_assert_int_lt(hits, 31000);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"timeout_units", timeout_units},
	    {"timeout_malformed", timeout_malformed},
	    {"reset_code", reset_code},
	    {"message_encoding", message_encoding},
	    {"preface", preface},
	    {"split_path", split_path},
	    {"rng", rng},
	};
	return UT_RUN("sidecar/grpcwire", tests, .timeout_s = 10);
}
