/*
 * webhook/deadline: whole-request deadlines shut down the right sockets at the right time
 * (checked on real socketpairs: the peer reads EOF), once per connection, and not while
 * a request is being answered.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "webhook/deadline.h"
#include "tests/unit/runner.h"

/* A connected pair: sv[0] plays the server's socket, sv[1] the client's (non-blocking). */
static void pair(int sv[2])
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_ne(fcntl(sv[1], F_SETFL, O_NONBLOCK), -1);
}

/* True when the client side sees EOF, i.e. the server side was shut down. */
static bool client_sees_eof(int client_fd)
{
	char c;
	ssize_t n = recv(client_fd, &c, 1, 0);
	ck_assert_msg(n == 0 || errno == EAGAIN, "recv: %zd %s", n, strerror(errno));
	return n == 0;
}

struct seen {
	unsigned calls;
	char peer[64];
	uint64_t elapsed_ms;
};

static void on_expired(void *arg, const char *peer, uint64_t elapsed_ms)
{
	struct seen *s = arg;
	s->calls++;
	snprintf(s->peer, sizeof(s->peer), "%s", peer);
	s->elapsed_ms = elapsed_ms;
}

START_TEST(expires_after_timeout)
{
	struct wh_deadlines *r = wh_deadlines_new(2000);
	struct seen seen = {0};
	int sv[2];

	pair(sv);
	struct wh_conn_deadline *e = wh_deadlines_add(r, sv[0], "10.0.0.7", 1000);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(wh_deadlines_count(r), 1);
	/* One millisecond early: nothing happens, however often it is asked. */
	ck_assert_uint_eq(wh_deadlines_expire(r, 2999, on_expired, &seen), 0);
	ck_assert(!client_sees_eof(sv[1]));
	ck_assert_uint_eq(wh_deadlines_expire(r, 3000, on_expired, &seen), 1);
	ck_assert(client_sees_eof(sv[1]));
	ck_assert_uint_eq(seen.calls, 1);
	ck_assert_str_eq(seen.peer, "10.0.0.7");
	ck_assert_uint_eq(seen.elapsed_ms, 2000);
	/* Once per connection: later scans leave it alone until it is removed. */
	ck_assert_uint_eq(wh_deadlines_expire(r, 9000, on_expired, &seen), 0);
	ck_assert_uint_eq(seen.calls, 1);
	wh_deadlines_remove(r, e);
	ck_assert_uint_eq(wh_deadlines_count(r), 0);
	close(sv[0]);
	close(sv[1]);
	wh_deadlines_free(r);
}
END_TEST

START_TEST(received_stops_the_clock)
{
	struct wh_deadlines *r = wh_deadlines_new(2000);
	int sv[2];

	pair(sv);
	struct wh_conn_deadline *e = wh_deadlines_add(r, sv[0], NULL, 0);
	wh_deadlines_received(r, e);
	/* A slow review or a long keep-alive response is not the client's fault. */
	ck_assert_uint_eq(wh_deadlines_expire(r, 60000, NULL, NULL), 0);
	ck_assert(!client_sees_eof(sv[1]));
	/* The next request on the connection gets its own deadline from when it may start. */
	wh_deadlines_rearm(r, e, 60000);
	ck_assert_uint_eq(wh_deadlines_expire(r, 61999, NULL, NULL), 0);
	ck_assert_uint_eq(wh_deadlines_expire(r, 62000, NULL, NULL), 1);
	ck_assert(client_sees_eof(sv[1]));
	wh_deadlines_remove(r, e);
	close(sv[0]);
	close(sv[1]);
	wh_deadlines_free(r);
}
END_TEST

START_TEST(only_overdue_ones)
{
	struct wh_deadlines *r = wh_deadlines_new(1000);
	struct wh_conn_deadline *e[3];
	int sv[3][2];

	for (int i = 0; i < 3; i++) {
		pair(sv[i]);
		e[i] = wh_deadlines_add(r, sv[i][0], "p", (uint64_t)i * 500);
	}
	/* Remove the middle one (list unlinking in the middle), then expire at 1500:
	 * only the first (deadline 1000) is due; the third (2000) is not. */
	wh_deadlines_remove(r, e[1]);
	ck_assert_uint_eq(wh_deadlines_count(r), 2);
	ck_assert_uint_eq(wh_deadlines_expire(r, 1500, NULL, NULL), 1);
	ck_assert(client_sees_eof(sv[0][1]));
	ck_assert(!client_sees_eof(sv[1][1]));
	ck_assert(!client_sees_eof(sv[2][1]));
	ck_assert_uint_eq(wh_deadlines_expire(r, 2000, NULL, NULL), 1);
	ck_assert(client_sees_eof(sv[2][1]));
	wh_deadlines_remove(r, e[0]);
	for (int i = 0; i < 3; i++) {
		close(sv[i][0]);
		close(sv[i][1]);
	}
	/* e[2] is still registered: free takes it along, and NULLs are no-ops. */
	wh_deadlines_remove(r, NULL);
	wh_deadlines_received(r, NULL);
	wh_deadlines_rearm(r, NULL, 0);
	wh_deadlines_free(r);
	wh_deadlines_free(NULL);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"expires_after_timeout", expires_after_timeout},
	    {"received_stops_the_clock", received_stops_the_clock},
	    {"only_overdue_ones", only_overdue_ones},
	};
	return UT_RUN("webhook/deadline", tests, .timeout_s = 10);
}
