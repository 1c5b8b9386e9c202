/*
 * sidecar/buf: chunk queues (order, partial reads, small first chunk, pool reuse and
 * caps); header lists (inline storage, spill to the heap, clear and reuse); the
 * small-object allocator given to nghttp2 (classes, reuse, realloc keeps bytes, cache
 * cap, big blocks).
 */
#include <check.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sidecar/proxy.h"
#include "tests/unit/runner.h"

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
	ck_assert_uint_eq(q.head->cap, SC_SMALL_CHUNK_BYTES);
	sc_chunkq_clear(&q, &p);
	ck_assert_uint_eq(q.bytes, 0);
	ck_assert_uint_eq(p.nfree_small, 1);
	ck_assert_uint_eq(p.nfree, 0);
	/* Reuse: the next append takes the pooled chunk. */
	ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, 1), 0);
	ck_assert_uint_eq(p.nfree_small, 0);
	sc_chunkq_clear(&q, &p);
	sc_pool_cleanup(&p);
	ck_assert_uint_eq(p.nfree, 0);
	ck_assert_uint_eq(p.nfree_small, 0);
}
END_TEST

START_TEST(small_first_chunk)
{
	struct sc_pool p = {.max_free = 2};
	struct sc_chunkq q = {0};
	uint8_t *buf = calloc(1, 3 * SC_CHUNK_BYTES), out[SC_SMALL_CHUNK_BYTES + 1];

	/* A small message: one small chunk; what follows goes to full-size chunks. */
	ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, 20), 0);
	ck_assert_uint_eq(q.head->cap, SC_SMALL_CHUNK_BYTES);
	ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, SC_SMALL_CHUNK_BYTES), 0);
	ck_assert_ptr_ne(q.head, q.tail);
	ck_assert_uint_eq(q.tail->cap, SC_CHUNK_BYTES);
	ck_assert_uint_eq(q.head->len, SC_SMALL_CHUNK_BYTES); /* the small one was filled */
	ck_assert_uint_eq(q.tail->len, 20);
	ck_assert_uint_eq(sc_chunkq_read(&q, &p, out, sizeof(out)), sizeof(out));
	ck_assert_uint_eq(p.nfree_small, 1);
	sc_chunkq_clear(&q, &p);
	ck_assert_uint_eq(p.nfree, 1);
	/* More than a small chunk holds on an empty queue: full-size from the start. */
	ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, SC_SMALL_CHUNK_BYTES + 1), 0);
	ck_assert_uint_eq(q.head->cap, SC_CHUNK_BYTES);
	ck_assert_uint_eq(p.nfree, 0);
	sc_chunkq_clear(&q, &p);
	/* Exactly a small chunk's worth still fits in one. */
	ck_assert_int_eq(sc_chunkq_append(&q, &p, buf, SC_SMALL_CHUNK_BYTES), 0);
	ck_assert_ptr_eq(q.head, q.tail);
	ck_assert_uint_eq(q.head->cap, SC_SMALL_CHUNK_BYTES);
	sc_chunkq_clear(&q, &p);
	/* The small pool is capped too. */
	{
		struct sc_chunkq qs[SC_SMALL_CHUNKS_KEPT + 8];
		memset(qs, 0, sizeof(qs));
		for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
			ck_assert_int_eq(sc_chunkq_append(&qs[i], &p, buf, 1), 0);
		for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
			sc_chunkq_clear(&qs[i], &p);
		ck_assert_uint_eq(p.nfree_small, SC_SMALL_CHUNKS_KEPT);
	}
	sc_pool_cleanup(&p);
	free(buf);
}
END_TEST

/* Real rcbufs: a client session's request HEADERS fed to a server session. */
static int collect_header(nghttp2_session *s, const nghttp2_frame *f, nghttp2_rcbuf *name,
			  nghttp2_rcbuf *value, uint8_t flags, void *ud)
{
	(void)s;
	(void)f;
	(void)flags;
	return sc_hdrs_add(ud, name, value) == 0 ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static void feed_request(struct sc_hdrs *h, size_t nextra)
{
	nghttp2_session_callbacks *cb;
	nghttp2_session *cs, *ss;
	nghttp2_nv nv[40];
	char names[32][16];
	const uint8_t *d;
	size_t n = 0;
	ssize_t len;

	nv[n++] = (nghttp2_nv){(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0};
	nv[n++] = (nghttp2_nv){(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0};
	nv[n++] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)"/a.B/C", 5, 6, 0};
	nv[n++] = (nghttp2_nv){(uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0};
	for (size_t i = 0; i < nextra && i < 32; i++) {
		int k = snprintf(names[i], sizeof(names[i]), "x-h%zu", i);
		nv[n++] =
		    (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)names[i], (size_t)k, (size_t)k, 0};
	}
	ck_assert_int_eq(nghttp2_session_callbacks_new(&cb), 0);
	ck_assert_int_eq(nghttp2_session_client_new(&cs, cb, NULL), 0);
	nghttp2_session_callbacks_set_on_header_callback2(cb, collect_header);
	ck_assert_int_eq(nghttp2_session_server_new(&ss, cb, h), 0);
	ck_assert_int_gt(nghttp2_submit_request(cs, NULL, nv, n, NULL, NULL), 0);
	/* The client session sends the preface magic itself; SETTINGS must come first. */
	ck_assert_int_eq(nghttp2_submit_settings(cs, NGHTTP2_FLAG_NONE, NULL, 0), 0);
	while ((len = nghttp2_session_mem_send(cs, &d)) > 0)
		ck_assert_int_eq(nghttp2_session_mem_recv(ss, d, (size_t)len), len);
	ck_assert_uint_eq(h->n, n);
	for (size_t i = 0; i < n; i++) {
		nghttp2_vec k = nghttp2_rcbuf_get_buf(h->v[i].name);
		ck_assert_uint_eq(k.len, nv[i].namelen);
		ck_assert(memcmp(k.base, nv[i].name, k.len) == 0);
	}
	/* The list holds its own references: the sessions can go first. */
	nghttp2_session_del(cs);
	nghttp2_session_del(ss);
	nghttp2_session_callbacks_del(cb);
}

START_TEST(hdrs_inline_then_heap)
{
	struct sc_hdr inl[6];
	struct sc_hdrs h;

	sc_hdrs_init(&h, inl, 6);
	feed_request(&h, 2); /* 6 fields: all inline */
	ck_assert_ptr_eq(h.v, inl);
	ck_assert_uint_eq(h.bytes, 7 + 4 + 7 + 4 + 5 + 6 + 10 + 1 + 2 * (4 + 4) + 6 * 32);
	sc_hdrs_clear(&h);
	ck_assert_uint_eq(h.n, 0);
	ck_assert_uint_eq(h.bytes, 0);
	feed_request(&h, 20); /* 24 fields: spills to the heap */
	ck_assert_ptr_ne(h.v, inl);
	ck_assert_uint_ge(h.cap, 24);
	sc_hdrs_clear(&h);
	ck_assert_ptr_eq(h.v, inl); /* back on the inline storage */
	ck_assert_uint_eq(h.cap, 6);
	sc_hdrs_init(&h, NULL, 0); /* no inline storage at all */
	feed_request(&h, 1);
	ck_assert_ptr_nonnull(h.v);
	sc_hdrs_clear(&h);
	ck_assert_ptr_null(h.v);
}
END_TEST

START_TEST(small_alloc)
{
	struct sc_small a;
	nghttp2_mem *m = &a.mem;
	uint8_t *p, *q, *big;
	void *keep[64];

	sc_small_init(&a);
	ck_assert_ptr_eq(m->mem_user_data, &a);
	/* Every size is usable up to its last byte and aligned for any type. */
	for (size_t n = 1; n <= 5000; n += 97) {
		p = m->malloc(n, m->mem_user_data);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq((uintptr_t)p % 16, 0);
		memset(p, 0xab, n);
		m->free(p, m->mem_user_data);
	}
	m->free(NULL, m->mem_user_data);
	/* calloc zeroes, also a reused block. */
	p = m->calloc(10, 10, m->mem_user_data);
	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(p[i], 0);
	m->free(p, m->mem_user_data);
	ck_assert_ptr_null(m->calloc(SIZE_MAX / 2, 4, m->mem_user_data));
	/* realloc keeps the bytes across classes and into a big block. */
	p = m->malloc(20, m->mem_user_data);
	for (int i = 0; i < 20; i++)
		p[i] = (uint8_t)i;
	p = m->realloc(p, 300, m->mem_user_data);
	ck_assert_ptr_nonnull(p);
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(p[i], i);
	memset(p + 20, 7, 280);
	big = m->realloc(p, 10000, m->mem_user_data);
	ck_assert_ptr_nonnull(big);
	for (int i = 0; i < 20; i++)
		ck_assert_uint_eq(big[i], i);
	ck_assert_uint_eq(big[299], 7);
	big = m->realloc(big, 20000, m->mem_user_data);
	ck_assert_uint_eq(big[299], 7);
	q = m->realloc(big, 16, m->mem_user_data); /* shrink into a class */
	for (int i = 0; i < 16; i++)
		ck_assert_uint_eq(q[i], i);
	m->free(q, m->mem_user_data);
	ck_assert_ptr_null(m->realloc(m->malloc(8, m->mem_user_data), 0, m->mem_user_data));
#if !defined(__SANITIZE_ADDRESS__)
	/* Same class: the freed block comes back. */
	p = m->malloc(100, m->mem_user_data);
	m->free(p, m->mem_user_data);
	ck_assert_ptr_eq(m->malloc(120, m->mem_user_data), p);
	m->free(p, m->mem_user_data);
	/* The cache of a class is capped by bytes: 2 KiB blocks, at most 16 kept. */
	for (int i = 0; i < 64; i++)
		keep[i] = m->malloc(2000, m->mem_user_data);
	for (int i = 0; i < 64; i++)
		m->free(keep[i], m->mem_user_data);
	ck_assert_uint_eq(a.nfree[SC_SMALL_CLASSES - 1] * 2048, SC_SMALL_CACHE_BYTES);
#else
	(void)keep;
#endif
	sc_small_cleanup(&a);
	for (int c = 0; c < SC_SMALL_CLASSES; c++) {
		ck_assert_ptr_null(a.free[c]);
		ck_assert_uint_eq(a.nfree[c], 0);
	}
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"fifo_across_chunks", fifo_across_chunks},
	    {"pool_cap_and_clear", pool_cap_and_clear},
	    {"small_first_chunk", small_first_chunk},
	    {"hdrs_inline_then_heap", hdrs_inline_then_heap},
	    {"small_alloc", small_alloc},
	};
	return UT_RUN("sidecar/buf", tests, .timeout_s = 10);
}
