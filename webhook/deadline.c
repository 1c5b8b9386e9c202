/*
 * Whole-request deadlines for connections (see deadline.h): a mutex-protected doubly
 * linked list, scanned by wh_deadlines_expire(). Linear scans are fine: the list is at
 * most limits.maxConnections long and the scan runs a few times a second.
 */
#include "webhook/deadline.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define PEER_MAX 64

struct wh_conn_deadline {
	struct wh_conn_deadline *prev, *next;
	int fd;			/* borrowed from libmicrohttpd */
	bool armed;		/* a request (or the first one) is being awaited */
	bool fired;		/* shut down once already: never again */
	uint64_t start_mono_ms; /* when the awaited request's clock started */
	uint64_t deadline_mono_ms;
	char peer[PEER_MAX];
};

struct wh_deadlines {
	pthread_mutex_t mu;
	struct wh_conn_deadline *head;
	uint64_t timeout_ms;
	unsigned count;
};

struct wh_deadlines *wh_deadlines_new(uint64_t timeout_ms)
{
	struct wh_deadlines *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (pthread_mutex_init(&r->mu, NULL) != 0) {
		free(r);
		return NULL;
	}
	r->timeout_ms = timeout_ms;
	return r;
}

void wh_deadlines_free(struct wh_deadlines *r)
{
	struct wh_conn_deadline *e, *next;

	if (!r)
		return;
	for (e = r->head; e; e = next) {
		next = e->next;
		free(e);
	}
	pthread_mutex_destroy(&r->mu);
	free(r);
}

struct wh_conn_deadline *wh_deadlines_add(struct wh_deadlines *r, int fd, const char *peer,
					  uint64_t now_ms)
{
	struct wh_conn_deadline *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->fd = fd;
	e->armed = true;
	e->start_mono_ms = now_ms;
	e->deadline_mono_ms = now_ms + r->timeout_ms;
	snprintf(e->peer, sizeof(e->peer), "%s", peer ? peer : "");
	pthread_mutex_lock(&r->mu);
	e->next = r->head;
	if (r->head)
		r->head->prev = e;
	r->head = e;
	r->count++;
	pthread_mutex_unlock(&r->mu);
	return e;
}

void wh_deadlines_remove(struct wh_deadlines *r, struct wh_conn_deadline *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&r->mu);
	if (e->prev)
		e->prev->next = e->next;
	else
		r->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	r->count--;
	pthread_mutex_unlock(&r->mu);
	free(e);
}

void wh_deadlines_received(struct wh_deadlines *r, struct wh_conn_deadline *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&r->mu);
	e->armed = false;
	pthread_mutex_unlock(&r->mu);
}

void wh_deadlines_rearm(struct wh_deadlines *r, struct wh_conn_deadline *e, uint64_t now_ms)
{
	if (!e)
		return;
	pthread_mutex_lock(&r->mu);
	e->armed = true;
	e->start_mono_ms = now_ms;
	e->deadline_mono_ms = now_ms + r->timeout_ms;
	pthread_mutex_unlock(&r->mu);
}

unsigned wh_deadlines_expire(struct wh_deadlines *r, uint64_t now_ms, wh_deadline_cb cb, void *arg)
{
	unsigned n = 0;

	pthread_mutex_lock(&r->mu);
	for (struct wh_conn_deadline *e = r->head; e; e = e->next) {
		if (!e->armed || e->fired || now_ms < e->deadline_mono_ms)
			continue;
		e->fired = true;
		/* Both directions: the library's next read sees EOF (or an error) and it
		 * closes the connection; a blocked TLS handshake fails the same way. */
		shutdown(e->fd, SHUT_RDWR);
		n++;
		if (cb)
			cb(arg, e->peer, now_ms - e->start_mono_ms);
	}
	pthread_mutex_unlock(&r->mu);
	return n;
}

unsigned wh_deadlines_count(struct wh_deadlines *r)
{
	unsigned n;

	pthread_mutex_lock(&r->mu);
	n = r->count;
	pthread_mutex_unlock(&r->mu);
	return n;
}
