/*
 * Byte chunks from a per-worker free list, and header lists held as nghttp2 rcbufs.
 * Chunks are the only per-stream data storage: a stream's queue never holds more than
 * the flow-control window we granted its sender, and freed chunks go back to the pool
 * (up to pool->max_free of them) so steady traffic does not call malloc per frame.
 * Also the small-object allocator nghttp2 uses for a worker's sessions (see proxy.h).
 */
#include <errno.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/proxy.h"

static struct sc_chunk *chunk_get(struct sc_pool *p, bool small)
{
	struct sc_chunk **list = small ? &p->free_small : &p->free;
	struct sc_chunk *k = *list;
	uint32_t cap = small ? SC_SMALL_CHUNK_BYTES : SC_CHUNK_BYTES;

	if (k) {
		*list = k->next;
		if (small)
			p->nfree_small--;
		else
			p->nfree--;
	} else {
		k = malloc(sizeof(*k) + cap);
		if (!k)
			return NULL;
	}
	k->next = NULL;
	k->off = k->len = 0;
	k->cap = cap;
	return k;
}

static void chunk_put(struct sc_pool *p, struct sc_chunk *k)
{
	bool small = k->cap == SC_SMALL_CHUNK_BYTES;

	if (small ? p->nfree_small >= SC_SMALL_CHUNKS_KEPT : p->nfree >= p->max_free) {
		free(k);
		return;
	}
	if (small) {
		k->next = p->free_small;
		p->free_small = k;
		p->nfree_small++;
	} else {
		k->next = p->free;
		p->free = k;
		p->nfree++;
	}
}

void sc_pool_cleanup(struct sc_pool *p)
{
	for (int i = 0; i < 2; i++) {
		struct sc_chunk **list = i ? &p->free_small : &p->free;
		while (*list) {
			struct sc_chunk *k = *list;
			*list = k->next;
			free(k);
		}
	}
	p->nfree = p->nfree_small = 0;
}

int sc_chunkq_append(struct sc_chunkq *q, struct sc_pool *p, const uint8_t *d, size_t n)
{
	size_t done = 0;

	while (done < n) {
		struct sc_chunk *k = q->tail;
		size_t room, take;

		if (!k || k->off + k->len == k->cap) {
			k = chunk_get(p, !q->head && n <= SC_SMALL_CHUNK_BYTES);
			if (!k)
				goto nomem;
			if (q->tail)
				q->tail->next = k;
			else
				q->head = k;
			q->tail = k;
		}
		room = k->cap - k->off - k->len;
		take = n - done < room ? n - done : room;
		memcpy(k->data + k->off + k->len, d + done, take);
		k->len += (uint32_t)take;
		done += take;
		q->bytes += take;
	}
	return 0;
nomem:
	/* Partially appended: the caller resets the stream and clears the queue. */
	return -ENOMEM;
}

size_t sc_chunkq_read(struct sc_chunkq *q, struct sc_pool *p, uint8_t *out, size_t n)
{
	size_t done = 0;

	while (done < n && q->head) {
		struct sc_chunk *k = q->head;
		size_t take = n - done < k->len ? n - done : k->len;

		memcpy(out + done, k->data + k->off, take);
		k->off += (uint32_t)take;
		k->len -= (uint32_t)take;
		done += take;
		q->bytes -= take;
		if (k->len == 0) {
			q->head = k->next;
			if (!q->head)
				q->tail = NULL;
			chunk_put(p, k);
		}
	}
	return done;
}

void sc_chunkq_clear(struct sc_chunkq *q, struct sc_pool *p)
{
	while (q->head) {
		struct sc_chunk *k = q->head;
		q->head = k->next;
		chunk_put(p, k);
	}
	q->tail = NULL;
	q->bytes = 0;
}

void sc_hdrs_init(struct sc_hdrs *h, struct sc_hdr *inl, uint32_t ninl)
{
	memset(h, 0, sizeof(*h));
	h->v = h->inl = inl;
	h->cap = h->ninl = inl ? ninl : 0;
}

int sc_hdrs_add(struct sc_hdrs *h, nghttp2_rcbuf *name, nghttp2_rcbuf *value)
{
	if (h->n == h->cap) {
		uint32_t ncap = h->cap ? h->cap * 2 : 12;
		struct sc_hdr *v;

		if (h->v && h->v == h->inl) {
			v = malloc(ncap * sizeof(*v));
			if (v)
				memcpy(v, h->v, h->n * sizeof(*v));
		} else {
			v = realloc(h->v, ncap * sizeof(*v));
		}
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = ncap;
	}
	nghttp2_rcbuf_incref(name);
	nghttp2_rcbuf_incref(value);
	h->v[h->n].name = name;
	h->v[h->n].value = value;
	h->n++;
	h->bytes += nghttp2_rcbuf_get_buf(name).len + nghttp2_rcbuf_get_buf(value).len + 32;
	return 0;
}

void sc_hdrs_clear(struct sc_hdrs *h)
{
	for (uint32_t i = 0; i < h->n; i++) {
		nghttp2_rcbuf_decref(h->v[i].name);
		nghttp2_rcbuf_decref(h->v[i].value);
	}
	if (h->v != h->inl)
		free(h->v);
	sc_hdrs_init(h, h->inl, h->ninl);
}

/* ---- small objects for nghttp2 ---------------------------------------------------- */

/* Every block starts with this header: the class, or SMALL_BIG for a plain malloc. */
struct small_hdr {
	alignas(max_align_t) uint32_t cls;
	uint32_t size; /* SMALL_BIG: the size asked for (realloc copies it) */
};
union small_free {
	union small_free *next;
};
#define SMALL_MIN_SHIFT 5 /* class 0 holds 32 bytes, class 6 holds 2 KiB */
#define SMALL_BIG UINT32_MAX
#if defined(__SANITIZE_ADDRESS__)
#define SMALL_CACHING 0
#else
#define SMALL_CACHING 1
#endif

static inline size_t class_bytes(uint32_t cls)
{
	return (size_t)1 << (cls + SMALL_MIN_SHIFT);
}

static inline uint32_t class_of(size_t n)
{
	if (n <= ((size_t)1 << SMALL_MIN_SHIFT))
		return 0;
	if (n > class_bytes(SC_SMALL_CLASSES - 1))
		return SMALL_BIG;
	return (uint32_t)(64 - __builtin_clzll((unsigned long long)(n - 1)) - SMALL_MIN_SHIFT);
}

static void *small_malloc(size_t n, void *ud)
{
	struct sc_small *a = ud;
	uint32_t cls = class_of(n);
	struct small_hdr *h;

	if (cls != SMALL_BIG && a->free[cls]) {
		union small_free *f = a->free[cls];
		a->free[cls] = f->next;
		a->nfree[cls]--;
		h = (struct small_hdr *)(void *)f - 1;
		return h + 1;
	}
	if (n > UINT32_MAX - 64)
		return NULL;
	h = malloc(sizeof(*h) + (cls == SMALL_BIG || !SMALL_CACHING ? n : class_bytes(cls)));
	if (!h)
		return NULL;
	h->cls = cls;
	h->size = (uint32_t)n;
	return h + 1;
}

static void small_free(void *p, void *ud)
{
	struct sc_small *a = ud;
	struct small_hdr *h;

	if (!p)
		return;
	h = (struct small_hdr *)p - 1;
	if (SMALL_CACHING && h->cls != SMALL_BIG &&
	    (a->nfree[h->cls] + 1) * class_bytes(h->cls) <= SC_SMALL_CACHE_BYTES) {
		union small_free *f = p;
		f->next = a->free[h->cls];
		a->free[h->cls] = f;
		a->nfree[h->cls]++;
		return;
	}
	free(h);
}

static void *small_calloc(size_t nmemb, size_t size, void *ud)
{
	void *p;

	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	p = small_malloc(nmemb * size, ud);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

static void *small_realloc(void *p, size_t n, void *ud)
{
	struct small_hdr *h;
	size_t have;
	void *np;

	if (!p)
		return small_malloc(n, ud);
	if (n == 0) {
		small_free(p, ud);
		return NULL;
	}
	h = (struct small_hdr *)p - 1;
	have = h->cls == SMALL_BIG || !SMALL_CACHING ? h->size : class_bytes(h->cls);
	if (n <= have && (SMALL_CACHING || n == have))
		return p;
	np = small_malloc(n, ud);
	if (!np)
		return NULL;
	memcpy(np, p, have < n ? have : n);
	small_free(p, ud);
	return np;
}

void sc_small_init(struct sc_small *a)
{
	memset(a, 0, sizeof(*a));
	a->mem = (nghttp2_mem){a, small_malloc, small_free, small_calloc, small_realloc};
}

void sc_small_cleanup(struct sc_small *a)
{
	for (uint32_t c = 0; c < SC_SMALL_CLASSES; c++) {
		while (a->free[c]) {
			union small_free *f = a->free[c];
			a->free[c] = f->next;
			free((struct small_hdr *)(void *)f - 1);
		}
		a->nfree[c] = 0;
	}
}
