/*
 * A bump allocator: a policy's strings and arrays all come from one arena and go away
 * together. Not thread-safe (a policy is built by one thread and then only read).
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "policy/internal.h"

#define CHUNK_BYTES 4096

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, size;
	alignas(max_align_t) unsigned char data[];
};

void *arena_alloc(struct arena *a, size_t n)
{
	const size_t align = alignof(max_align_t);
	struct arena_chunk *c = a->head;

	n = (n + align - 1) & ~(align - 1);
	if (n == 0)
		n = align;
	if (n > ARENA_MAX_BYTES || a->total_bytes > ARENA_MAX_BYTES - n)
		return NULL;
	if (!c || c->size - c->used < n) {
		size_t size = n > CHUNK_BYTES / 2 ? n : CHUNK_BYTES;
		struct arena_chunk *nc = malloc(sizeof(*nc) + size);
		if (!nc)
			return NULL;
		nc->used = 0;
		nc->size = size;
		/* A big one-off allocation goes behind the current chunk so the space left in
		 * the current one stays usable. */
		if (c && size != CHUNK_BYTES) {
			nc->next = c->next;
			c->next = nc;
		} else {
			nc->next = c;
			a->head = nc;
		}
		c = nc;
	}
	void *p = c->data + c->used;
	c->used += n;
	a->total_bytes += n;
	memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len, bool lower)
{
	char *d;

	if (len == SIZE_MAX)
		return NULL;
	d = arena_alloc(a, len + 1);
	if (!d)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (lower && ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		d[i] = ch;
	}
	d[len] = '\0';
	return d;
}

void arena_cleanup(struct arena *a)
{
	struct arena_chunk *c = a->head;

	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->total_bytes = 0;
}
