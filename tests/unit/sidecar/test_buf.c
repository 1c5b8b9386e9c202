/* sidecar/buf: chunk queues (order, partial reads, pool reuse and its cap). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/proxy.h"

START_TEST(fifo_across_chunks)
{
	struct sc_pool p = {.max_free = 4};
	struct sc_chunkq q = {0};
	size_t n = 3 * SC_CHUNK_BYTES + 123, got = 0;
	uint8_t *in = malloc(n), *out = malloc(n);

	for (size_t i = 0; i < n; i++)
		in[i] = (uint8_t)(i * 7 + 1);
	/* Append in odd-sized pieces, read in other odd-sized pieces. */
	for (size_t off = 0; off < n;) {
		size_t k = n - off < 1000 ? n - off : 1000;
		ck_assert_int_eq(sc_chunkq_append(&q, &p, in + off, k), 0);
		off += k;
	}
	ck_assert_uint_eq(q.bytes, n);
	while (got < n) {
		size_t k = sc_chunkq_read(&q, &p, out + got, 777);
		ck_assert_uint_gt(k, 0);
		got += k;
	}
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_ptr_null(q.head);
	ck_assert_ptr_null(q.tail);
	ck_assert(memcmp(in, out, n) == 0);
	ck_assert_uint_eq(sc_chunkq_read(&q, &p, out, 10), 0);
	/* The 4 chunks went back to the pool (cap 4). */
	ck_assert_uint_eq(p.nfree, 4);
	sc_pool_cleanup(&p);
	free(in);
	free(out);
}
END_TEST

START_TEST(pool_cap_and_clear)
{
	struct sc_pool p = {.max_free = 1};
	struct sc_chunkq q = {0};
	uint8_t buf[100] = {0};

	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, sizeof(buf)), 0);
	ck_assert_uint_eq(q.bytes, 500);
	ck_assert_ptr_eq(q.head, q.tail); /* small appends share one chunk */
	sc_chunkq_clear(&q, &p);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_uint_eq(p.nfree, 1);
	/* Reuse: the next append takes the pooled chunk. */
	ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, 1), 0);
	ck_assert_uint_eq(p.nfree, 0);
	sc_chunkq_clear(&q, &p);
	sc_pool_cleanup(&p);
	ck_assert_uint_eq(p.nfree, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sidecar/buf");
	TCase *tc = tcase_create("fifo_across_chunks");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, fifo_across_chunks);
	suite_add_tcase(s, tc);
	tc = tcase_create("pool_cap_and_clear");
	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, pool_cap_and_clear);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;
	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
