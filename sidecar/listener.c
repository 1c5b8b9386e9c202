/*
 * `run`: start-up, the worker threads and shutdown.
 *
 * The main thread binds one listening socket per worker (SO_REUSEPORT when there are
 * several, so the kernel spreads connections), loads the policy, starts the admin server
 * and then runs a small loop of its own: signals, the policy watch and the readiness
 * probe. Each worker runs one libuv loop with its connections. SIGTERM/SIGINT: every
 * worker closes its listener, sends GOAWAY, lets in-flight RPCs finish for --drain-time,
 * then closes what is left; the process exits 0.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/admin.h"
#include "common/log.h"
#include "sidecar/crypto.h"
#include "sidecar/identity.h"
#include "sidecar/intercept.h"
#include "sidecar/proxy.h"

#define SWEEP_MS 1000

static struct {
	uv_loop_t loop;
	uv_signal_t sigterm, sigint;
	uv_timer_t probe_timer;
	uv_tcp_t probe;
	uv_connect_t probe_req;
	bool probing;
	bool upstream_ok; /* the probe connected once (or original-dst: no fixed app) */
	bool ready;	  /* what /readyz says */
	struct admin_server *admin;
	json_t *ports;	     /* /policy's inbound_ports, built once (read-only afterwards) */
	uv_async_t id_wake;  /* the identity thread: a certificate came or expired */
	uv_timer_t id_timer; /* re-check expiry while not ready for want of a certificate */
	bool id_on;
	struct sc_proxy px;
} M;

static void noop_close(uv_handle_t *h)
{
	(void)h;
}

/* ---- address helpers ---------------------------------------------------------------- */

static int resolve(const char *hostport, bool passive, struct sockaddr_storage *out,
		   socklen_t *outlen)
{
	char host[256], portstr[16];
	unsigned port;
	struct addrinfo hints = {0}, *res = NULL;
	int r;

	if (admin_split_hostport(hostport, host, sizeof(host), &port) != 0 || port > 65535)
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	r = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
	if (r != 0 || !res)
		return -EINVAL;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*outlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int listen_socket(const struct sockaddr_storage *sa, socklen_t len, bool reuseport)
{
	int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->ss_family == AF_INET6) {
		int zero = 0; /* [::] also takes IPv4 (mapped), whatever the sysctl default */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)sa, len) != 0 || listen(fd, 511) != 0)
		goto fail;
	return fd;
fail:
	one = -errno;
	close(fd);
	return one;
}

static bool is_v6_any(const struct sockaddr_storage *sa)
{
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
	return sa->ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
}

/* ---- workers ------------------------------------------------------------------------- */

static void worker_finish(struct sc_worker *w)
{
	if (uv_is_closing((uv_handle_t *)&w->wake))
		return;
	sc_worker_flush_handles_close(w);
	sc_ups_sweep(w, uv_now(&w->loop), true); /* the upstream pool goes too */
	uv_close((uv_handle_t *)&w->wake, noop_close);
	uv_close((uv_handle_t *)&w->sweep, noop_close);
	uv_close((uv_handle_t *)&w->drain_timer, noop_close);
	if (!uv_is_closing((uv_handle_t *)&w->listener))
		uv_close((uv_handle_t *)&w->listener, noop_close);
	if (w->olisten_fd >= 0) {
		if (!uv_is_closing((uv_handle_t *)&w->olistener))
			uv_close((uv_handle_t *)&w->olistener, noop_close);
		uv_close((uv_handle_t *)&w->opeek, noop_close);
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	struct sc_worker *w = server->data;

	if (status < 0) {
		log_warn("accept_failed", "accept failed", "{s:s}", "error", uv_strerror(status));
		return;
	}
	sc_conn_accept(w, server);
}

static void sweep_cb(uv_timer_t *t)
{
	struct sc_worker *w = t->data;
	uint64_t now = uv_now(&w->loop);

	for (struct sc_conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		sc_conn_idle_check(c, now);
	}
	sc_ups_sweep(w, now, false);
	if (w->draining && w->nconns == 0)
		worker_finish(w);
}

static void drain_timeout_cb(uv_timer_t *t)
{
	struct sc_worker *w = t->data;

	if (w->nconns)
		log_warn("drain_timeout", "drain time is over; closing the remaining connections",
			 "{s:i}", "connections", (int)w->nconns);
	while (w->conns)
		sc_conn_close(w->conns);
	worker_finish(w);
}

static void wake_cb(uv_async_t *a)
{
	struct sc_worker *w = a->data;

	sc_worker_flush(w); /* what sc_conn_close queued on the shared upstreams */
	/* A policy change (policy_changed) or a drain: passthrough pipes the new policy no
	 * longer allows are closed now, not at the next sweep (gate.c). */
	for (struct sc_conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		sc_gate_recheck_passthrough(c);
	}
	if (w->draining || !atomic_load(&w->px->draining))
		return;
	w->draining = true;
	uv_close((uv_handle_t *)&w->listener, noop_close);
	if (w->olisten_fd >= 0)
		uv_close((uv_handle_t *)&w->olistener, noop_close);
	for (struct sc_conn *c = w->conns, *n; c; c = n) {
		n = c->next;
		sc_conn_drain(c);
	}
	uv_timer_start(&w->drain_timer, drain_timeout_cb, w->px->cfg->drain_time_ms, 0);
	uv_timer_start(&w->sweep, sweep_cb, 50, 50);
}

static void opeek_cb(uv_timer_t *t)
{
	struct sc_worker *w = t->data;

	sc_outbound_peek_sweep(w, uv_now(&w->loop));
}

static void worker_main(void *arg)
{
	struct sc_worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* ofd: the outbound listening socket, or -1. On failure ofd is not owned (close it). */
static int worker_init(struct sc_worker *w, struct sc_proxy *px, unsigned index, int fd, int ofd)
{
	const struct sc_config *cfg = px->cfg;
	uint64_t seed;
	int r;

	w->px = px;
	w->index = index;
	w->listen_fd = fd;
	w->pool.max_free = 16; /* 256 KiB of spare chunks per worker at most */
	if ((r = uv_loop_init(&w->loop)) != 0)
		return r;
	uv_tcp_init(&w->loop, &w->listener);
	w->listener.data = w;
	if ((r = uv_tcp_open(&w->listener, fd)) != 0 ||
	    (r = uv_listen((uv_stream_t *)&w->listener, 511, on_connection)) != 0)
		return r;
	if (ofd >= 0) {
		uv_tcp_init(&w->loop, &w->olistener);
		w->olistener.data = w;
		if ((r = uv_tcp_open(&w->olistener, ofd)) != 0 ||
		    (r = uv_listen((uv_stream_t *)&w->olistener, 511, on_connection)) != 0)
			return r;
		w->olisten_fd = ofd;
		uv_timer_init(&w->loop, &w->opeek);
		w->opeek.data = w;
		uv_timer_start(&w->opeek, opeek_cb, 100, 100);
	}
	uv_async_init(&w->loop, &w->wake, wake_cb);
	w->wake.data = w;
	if ((r = sc_worker_flush_handles_init(w)) != 0)
		return r;
	uv_timer_init(&w->loop, &w->sweep);
	w->sweep.data = w;
	uv_timer_init(&w->loop, &w->drain_timer);
	w->drain_timer.data = w;
	uv_timer_start(&w->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
	if (cfg->have_seed)
		seed = cfg->seed + index * 0x9e3779b97f4a7c15ull;
	else if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = (uint64_t)uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ index;
	sc_rng_seed(&w->rng, seed);
	return sc_worker_callbacks_init(w);
}

static void worker_cleanup(struct sc_worker *w)
{
	sc_worker_callbacks_free(w);
	uv_loop_close(&w->loop);
	sc_pool_cleanup(&w->pool);
	sc_stream_pool_cleanup(w);
	free(w->obuf);
	free(w->tbuf);
	free(w->scratch_hdrs);
	sc_authn_free(w->authn);
	sc_snap_unref(w->snap);
	sc_small_cleanup(&w->small); /* last: every session and rcbuf is gone */
}

/* ---- main loop: signals and readiness ------------------------------------------------- */

/*
 * Ready: the app was reachable once, a usable policy is in force (not failing closed)
 * and we are not draining. Called on the main loop when one of them changes.
 */
static void update_ready(void *ctx)
{
	bool policy_ok = sc_reload_policy_ok(),
	     id_ok = !M.id_on || sc_identity_ready((int64_t)time(NULL)),
	     ready = M.upstream_ok && policy_ok && id_ok && !atomic_load(&M.px.draining);
	(void)ctx;

	if (ready == M.ready)
		return;
	M.ready = ready;
	if (M.admin)
		admin_set_ready(M.admin, ready);
	if (ready)
		log_info("ready", "upstream reachable and a policy in force; ready", NULL);
	else if (!policy_ok && M.upstream_ok)
		log_warn("not_ready", "no valid policy loaded; not ready", NULL);
	else if (!id_ok)
		log_warn("not_ready",
			 "no valid workload certificate (see identity_fetch_failed); "
			 "not ready",
			 NULL);
}

/* From the identity thread (uv_async_send is its only thread-safe libuv call). */
static void id_notify(void *ctx)
{
	(void)ctx;
	uv_async_send(&M.id_wake);
}

static void id_wake_cb(uv_async_t *a)
{
	(void)a;
	update_ready(NULL);
}

/* Expiry happens by itself: a once-a-second check catches it between notifications. */
static void id_timer_cb(uv_timer_t *t)
{
	(void)t;
	update_ready(NULL);
}

/* The reload notifier: readiness, and wake the workers to re-check passthrough pipes. */
static void policy_changed(void *ctx)
{
	update_ready(ctx);
	/* Draining: workers close their own handles (a send to a closed async is invalid)
	 * and every connection ends within drain-time anyway. */
	if (atomic_load(&M.px.draining))
		return;
	for (unsigned i = 0; i < M.px.nworkers; i++)
		uv_async_send(&M.px.workers[i].wake);
}

static void probe_start(void);
static void probe_timer_cb(uv_timer_t *t);

static void probe_close_cb(uv_handle_t *h)
{
	(void)h;
	M.probing = false;
}

/* Abandons a connect in flight (its callback then sees UV_ECANCELED). */
static void probe_abort(void)
{
	if (M.probing && !uv_is_closing((uv_handle_t *)&M.probe))
		uv_close((uv_handle_t *)&M.probe, probe_close_cb);
}

static void probe_connect_cb(uv_connect_t *req, int status)
{
	(void)req;
	if (status == UV_ECANCELED)
		return; /* probe_abort() closed the handle */
	uv_close((uv_handle_t *)&M.probe, probe_close_cb);
	if (atomic_load(&M.px.draining))
		return;
	uv_timer_stop(&M.probe_timer);
	if (status == 0) {
		M.upstream_ok = true;
		update_ready(NULL);
		return;
	}
	uv_timer_start(&M.probe_timer, probe_timer_cb, 250, 0);
}

/*
 * One TCP connect to the app. The probe timer doubles as its timeout
 * (--upstream-connect-timeout): an app whose accept queue is full drops the SYN and the
 * kernel would otherwise keep retrying for minutes.
 */
static void probe_start(void)
{
	if (M.probing || atomic_load(&M.px.draining))
		return;
	M.probing = true;
	uv_tcp_init(&M.loop, &M.probe);
	if (uv_tcp_connect(&M.probe_req, &M.probe, (const struct sockaddr *)&M.px.upstream,
			   probe_connect_cb) != 0) {
		uv_close((uv_handle_t *)&M.probe, probe_close_cb);
		uv_timer_start(&M.probe_timer, probe_timer_cb, 250, 0);
		return;
	}
	uv_timer_start(&M.probe_timer, probe_timer_cb, M.px.cfg->upstream_connect_timeout_ms, 0);
}

static void probe_timer_cb(uv_timer_t *t)
{
	(void)t;
	if (M.probing) {
		/* The connect timed out (or its handle is still closing): retry later. */
		probe_abort();
		uv_timer_start(&M.probe_timer, probe_timer_cb, 250, 0);
		return;
	}
	probe_start();
}

static void on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	if (atomic_exchange(&M.px.draining, true))
		return;
	log_info("draining", "signal received: GOAWAY to clients, finishing in-flight RPCs",
		 "{s:i, s:I}", "signal", signum, "drain_time_ms",
		 (json_int_t)M.px.cfg->drain_time_ms);
	update_ready(NULL);
	for (unsigned i = 0; i < M.px.nworkers; i++)
		uv_async_send(&M.px.workers[i].wake);
	uv_close((uv_handle_t *)&M.sigterm, noop_close);
	uv_close((uv_handle_t *)&M.sigint, noop_close);
	uv_close((uv_handle_t *)&M.probe_timer, noop_close);
	probe_abort();
	sc_reload_stop();
}

int sc_run_main(const struct sc_config *cfg)
{
	struct sc_proxy *px = &M.px;
	struct sockaddr_storage lsa, osa;
	socklen_t llen, olen = 0;
	unsigned started = 0;
	int rc = 1, r;

	log_init("sidecar", cfg->log_level);
	signal(SIGPIPE, SIG_IGN);
	px->cfg = cfg;
	if (cfg->outbound_listen && (resolve(cfg->outbound_listen, true, &osa, &olen) != 0 ||
				     (osa.ss_family != AF_INET && osa.ss_family != AF_INET6))) {
		log_error("bad_flag", "--outbound-listen: not a HOST:PORT address", "{s:s}",
			  "value", cfg->outbound_listen);
		return 2;
	}
	if (cfg->outbound_listen)
		px->outbound_port =
		    ntohs(osa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&osa)->sin6_port
						    : ((struct sockaddr_in *)&osa)->sin_port);
	if (resolve(cfg->listen, true, &lsa, &llen) != 0) {
		log_error("bad_flag", "--listen: not a HOST:PORT address", "{s:s}", "value",
			  cfg->listen);
		return 2;
	}
	if (!cfg->original_dst &&
	    resolve(cfg->upstream, false, &px->upstream, &px->upstream_len) != 0) {
		log_error("bad_flag", "--upstream: not original-dst or a HOST:PORT address",
			  "{s:s}", "value", cfg->upstream);
		return 2;
	}
	if (sc_stats_init() != 0 || uv_loop_init(&M.loop) != 0)
		goto out;
	if (cfg->outbound_listen && sc_outbound_init(cfg) != 0)
		goto out;
	if (sc_reload_init(&M.loop, cfg->policy, cfg->pod_labels) != 0)
		goto out;
	if (cfg->ca_address) {
		/* Not counted as alive: they close after the identity thread has stopped. */
		struct sc_identity_opts io = {.ca_address = cfg->ca_address,
					      .ca_cert = cfg->ca_cert,
					      .token_path = cfg->identity_token};
		char cerr[1024];
		/* Identity and mTLS are OpenSSL's: without the module, no start (crypto.h). */
		if (sc_crypto_load("identity (--ca-address)", cerr, sizeof(cerr)) != 0) {
			log_error("crypto_module", cerr, "{s:s}", "ca_address", cfg->ca_address);
			goto out;
		}
		uv_async_init(&M.loop, &M.id_wake, id_wake_cb);
		uv_timer_init(&M.loop, &M.id_timer);
		uv_timer_start(&M.id_timer, id_timer_cb, 1000, 1000);
		uv_unref((uv_handle_t *)&M.id_wake);
		uv_unref((uv_handle_t *)&M.id_timer);
		M.id_on = true;
		r = sc_identity_start(&io, id_notify, NULL);
		if (r != 0) {
			log_error("bad_flag",
				  "--ca-address: not https://HOST[:PORT] (e.g. "
				  "https://grpcguard-webhook.grpcguard-system.svc:443)",
				  "{s:s, s:s}", "value", cfg->ca_address, "error", strerror(-r));
			goto out;
		}
	}
	px->workers = calloc(cfg->workers, sizeof(*px->workers));
	if (!px->workers)
		goto out;
	for (unsigned i = 0; i < cfg->workers; i++) {
		int fd = listen_socket(&lsa, llen, cfg->workers > 1);
		if (fd < 0 && i == 0 && is_v6_any(&lsa) &&
		    (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)) {
			/* A node without IPv6: the dual-stack default degrades to IPv4. */
			struct sockaddr_in *in = (struct sockaddr_in *)&lsa;
			uint16_t port = ((struct sockaddr_in6 *)&lsa)->sin6_port;
			memset(&lsa, 0, sizeof(lsa));
			in->sin_family = AF_INET;
			in->sin_port = port;
			in->sin_addr.s_addr = htonl(INADDR_ANY);
			llen = sizeof(*in);
			log_warn("no_ipv6", "IPv6 is not available; listening on IPv4 only",
				 "{s:i}", "port", (int)ntohs(port));
			fd = listen_socket(&lsa, llen, cfg->workers > 1);
		}
		if (fd < 0) {
			log_error("listen_failed", "cannot listen", "{s:s, s:s}", "listen",
				  cfg->listen, "error", strerror(-fd));
			goto out;
		}
		int ofd = -1;
		px->workers[i].olisten_fd = -1;
		if (cfg->outbound_listen) {
			ofd = listen_socket(&osa, olen, cfg->workers > 1);
			if (ofd < 0 && i == 0 && is_v6_any(&osa) &&
			    (ofd == -EAFNOSUPPORT || ofd == -EADDRNOTAVAIL)) {
				uint16_t port = ((struct sockaddr_in6 *)&osa)->sin6_port;
				struct sockaddr_in *in = (struct sockaddr_in *)&osa;
				memset(&osa, 0, sizeof(osa));
				in->sin_family = AF_INET;
				in->sin_port = port;
				in->sin_addr.s_addr = htonl(INADDR_ANY);
				olen = sizeof(*in);
				ofd = listen_socket(&osa, olen, cfg->workers > 1);
			}
			if (ofd < 0) {
				close(fd);
				log_error("listen_failed", "cannot listen (outbound)", "{s:s, s:s}",
					  "listen", cfg->outbound_listen, "error", strerror(-ofd));
				goto out;
			}
		}
		if ((r = worker_init(&px->workers[i], px, i, fd, ofd)) != 0) {
			close(fd);
			if (ofd >= 0 && px->workers[i].olisten_fd < 0)
				close(ofd);
			log_error("worker_failed", "cannot start a worker", "{s:s}", "error",
				  uv_strerror(r));
			goto out;
		}
		px->nworkers++;
	}
	if (cfg->admin) {
		r = admin_start(cfg->admin, sc_stats.reg, &M.admin);
		if (r != 0) {
			log_error("admin_failed", "cannot start the admin server", "{s:s, s:s}",
				  "admin", cfg->admin, "error", strerror(-r));
			goto out;
		}
		{
			const char *colon = strrchr(cfg->admin, ':');
			unsigned lport = ntohs(lsa.ss_family == AF_INET6
						   ? ((struct sockaddr_in6 *)&lsa)->sin6_port
						   : ((struct sockaddr_in *)&lsa)->sin_port);
			M.ports = sc_intercept_ports_json(
			    lport, colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0);
		}
		admin_route_local(M.admin, "/policy", sc_reload_policy_route, M.ports);
	}
	uv_signal_init(&M.loop, &M.sigterm);
	uv_signal_init(&M.loop, &M.sigint);
	uv_signal_start(&M.sigterm, on_signal, SIGTERM);
	uv_signal_start(&M.sigint, on_signal, SIGINT);
	uv_timer_init(&M.loop, &M.probe_timer);
	for (; started < px->nworkers; started++) {
		if (uv_thread_create(&px->workers[started].thread, worker_main,
				     &px->workers[started]) != 0)
			break;
	}
	if (started < px->nworkers) {
		log_error("worker_failed", "cannot start worker threads", NULL);
		atomic_store(&px->draining, true);
		for (unsigned i = 0; i < started; i++)
			uv_async_send(&px->workers[i].wake);
		for (unsigned i = 0; i < started; i++)
			uv_thread_join(&px->workers[i].thread);
		uv_close((uv_handle_t *)&M.sigterm, noop_close);
		uv_close((uv_handle_t *)&M.sigint, noop_close);
		uv_close((uv_handle_t *)&M.probe_timer, noop_close);
		goto out;
	}
	log_info("listening", "proxy started", "{s:s, s:s, s:s?, s:s?, s:i, s:s?}", "listen",
		 cfg->listen, "upstream", cfg->upstream, "admin", cfg->admin, "policy", cfg->policy,
		 "workers", (int)cfg->workers, "outbound_listen", cfg->outbound_listen);
	sc_reload_set_notify(policy_changed, NULL);
	if (cfg->original_dst) {
		M.upstream_ok = true;
		update_ready(NULL);
	} else {
		probe_start();
	}
	uv_run(&M.loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < px->nworkers; i++)
		uv_thread_join(&px->workers[i].thread);
	log_info("stopped", "drained; exiting", NULL);
	rc = 0;
out:
	sc_identity_stop();
	if (M.id_on) {
		uv_close((uv_handle_t *)&M.id_wake, noop_close);
		uv_close((uv_handle_t *)&M.id_timer, noop_close);
		uv_run(&M.loop, UV_RUN_DEFAULT);
		M.id_on = false;
	}
	admin_stop(M.admin);
	M.admin = NULL;
	json_decref(M.ports);
	M.ports = NULL;
	for (unsigned i = 0; i < px->nworkers; i++) {
		struct sc_worker *w = &px->workers[i];
		if (rc != 0) {
			/* Never ran: close its handles and let the loop finish them. */
			worker_finish(w);
			uv_run(&w->loop, UV_RUN_DEFAULT);
		}
		worker_cleanup(w);
	}
	free(px->workers);
	if (rc != 0) {
		sc_reload_stop();
		uv_run(&M.loop, UV_RUN_DEFAULT);
	}
	uv_loop_close(&M.loop);
	sc_reload_free();
	sc_stats_free();
	return rc;
}
