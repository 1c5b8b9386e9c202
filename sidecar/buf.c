/*
 * Byte chunks from a per-worker free list, and header lists held as nghttp2 rcbufs.
 * Chunks are the only per-stream data storage: a stream's queue never holds more than
 * the flow-control window we granted its sender, and freed chunks go back to the pool
 * (up to pool->max_free of them) so steady traffic does not call malloc per frame.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/proxy.h"

static struct sc_chunk *chunk_get(struct sc_pool *p)
{
	struct sc_chunk *k = p->free;

	if (k) {
		p->free = k->next;
		p->nfree--;
	} else {
		k = malloc(sizeof(*k));
		if (!k)
			return NULL;
	}
	k->next = NULL;
	k->off = k->len = 0;
	return k;
}

static void chunk_put(struct sc_pool *p, struct sc_chunk *k)
{
	if (p->nfree >= p->max_free) {
		free(k);
		return;
	}
	k->next = p->free;
	p->free = k;
	p->nfree++;
}

void sc_pool_cleanup(struct sc_pool *p)
{
	while (p->free) {
		struct sc_chunk *k = p->free;
		p->free = k->next;
		free(k);
	}
	p->nfree = 0;
}

int sc_chunkq_append(struct sc_chunkq *q, struct sc_pool *p, const uint8_t *d, size_t n)
{
	size_t done = 0;

	while (done < n) {
		struct sc_chunk *k = q->tail;
		size_t room, take;

		if (!k || k->off + k->len == SC_CHUNK_BYTES) {
			k = chunk_get(p);
			if (!k)
				goto nomem;
			if (q->tail)
				q->tail->next = k;
			else
				q->head = k;
			q->tail = k;
		}
		room = SC_CHUNK_BYTES - k->off - k->len;
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
