/*
 * The proxy's internal types, shared by listener.c (workers, accept, drain), h2conn.c
 * (downstream/upstream HTTP/2 sessions, socket I/O, TCP passthrough) and stream.c (one
 * RPC: policy decision, faults, buffering between the two sessions).
 *
 * Threading: one event loop per worker; a connection and its streams live on one loop
 * and are touched by nothing else. Shared across workers: the configuration (read-only),
 * the snapshot (reload.h, refcounted), metrics (atomic) and two atomic counters.
 *
 * Memory: request/response bytes wait in fixed-size chunks from a per-worker pool; what
 * one stream may hold is bounded by the HTTP/2 window we give its sender, because bytes
 * are consumed (WINDOW_UPDATE) only once the other side has taken them.
 */
#ifndef GRPCGUARD_SC_PROXY_H
#define GRPCGUARD_SC_PROXY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <nghttp2/nghttp2.h>
#include <uv.h>

#include "sidecar/authn.h"
#include "sidecar/config.h"
#include "sidecar/gate.h"
#include "sidecar/grpcwire.h"
#include "sidecar/reload.h"
#include "sidecar/stats.h"
#include "sidecar/tls.h"

/* ---- byte chunks ----------------------------------------------------------------- */
/*
 * Two sizes: a queue's first chunk is small when what is appended fits (a unary gRPC
 * message is typically tens of bytes and would otherwise pin 16 KiB while it waits);
 * everything after it goes into full-size chunks.
 */
#define SC_CHUNK_BYTES (16384 - 32)
#define SC_SMALL_CHUNK_BYTES (1024 - 32)
#define SC_SMALL_CHUNKS_KEPT 256 /* 256 KiB of spare small chunks per worker at most */
struct sc_chunk {
	struct sc_chunk *next;
	uint32_t off, len, cap; /* cap: SC_CHUNK_BYTES or SC_SMALL_CHUNK_BYTES */
	uint8_t data[];
};
struct sc_pool {
	struct sc_chunk *free, *free_small;
	size_t nfree, max_free; /* full-size chunks kept, and how many at most */
	size_t nfree_small;	/* small ones (at most SC_SMALL_CHUNKS_KEPT) */
};
struct sc_chunkq {
	struct sc_chunk *head, *tail;
	size_t bytes;
};
/* Append n bytes; returns 0 or -ENOMEM (part may have been appended: clear the queue). */
int sc_chunkq_append(struct sc_chunkq *q, struct sc_pool *p, const uint8_t *d, size_t n);
/* Move up to n bytes into out; returns how many. */
size_t sc_chunkq_read(struct sc_chunkq *q, struct sc_pool *p, uint8_t *out, size_t n);
void sc_chunkq_clear(struct sc_chunkq *q, struct sc_pool *p);
void sc_pool_cleanup(struct sc_pool *p);

/* ---- small objects for nghttp2 (nghttp2_mem) -------------------------------------- */
/*
 * nghttp2 allocates a dozen small objects per RPC (streams, outbound frames, header
 * copies, HPACK rcbufs) and frees them moments later. A worker's sessions allocate from
 * per-size-class free lists (32 B .. 2 KiB, at most SC_SMALL_CACHE_BYTES kept per class);
 * larger requests go to malloc. Single-threaded: a worker's sessions and the rcbufs they
 * hand out are created and freed on that worker's thread only. In ASan builds nothing is
 * cached, so use-after-free and overflows are still caught.
 */
#define SC_SMALL_CLASSES 7
#define SC_SMALL_CACHE_BYTES 65536
struct sc_small {
	nghttp2_mem mem; /* mem_user_data points back here */
	void *free[SC_SMALL_CLASSES];
	uint32_t nfree[SC_SMALL_CLASSES];
};
void sc_small_init(struct sc_small *a);
void sc_small_cleanup(struct sc_small *a); /* frees the cached objects */

/* ---- header lists, kept as nghttp2's refcounted buffers (no copy) ----------------- */
struct sc_hdr {
	nghttp2_rcbuf *name, *value;
};
/*
 * The first `ninl` fields live in storage the owner provides (inside the stream, so a
 * typical gRPC header block costs no allocation); more spill to the heap.
 */
struct sc_hdrs {
	struct sc_hdr *v;   /* inl, or heap once it outgrew inl */
	struct sc_hdr *inl; /* borrowed storage for ninl fields, may be NULL */
	uint32_t n, cap, ninl;
	size_t bytes; /* name + value + 32 per field, as SETTINGS_MAX_HEADER_LIST_SIZE counts */
};
/* An empty list using inl[0..ninl) first (inl borrowed, may be NULL with ninl 0). */
void sc_hdrs_init(struct sc_hdrs *h, struct sc_hdr *inl, uint32_t ninl);
int sc_hdrs_add(struct sc_hdrs *h, nghttp2_rcbuf *name, nghttp2_rcbuf *value);
/* Drops every field and the heap spill; the list is empty and usable again. */
void sc_hdrs_clear(struct sc_hdrs *h);

/* ---- output to a socket ----------------------------------------------------------- */
struct sc_outbuf {
	uv_write_t req;
	uint8_t *buf; /* only while a write is pending: what the kernel did not take */
	size_t len;
	bool pending;
};

struct sc_worker;
struct sc_conn;
struct sc_up;

enum sc_sstate {
	SS_HEADERS = 0, /* receiving request headers */
	SS_HELD,	/* delay timer running */
	SS_FORWARDED,	/* submitted upstream */
	SS_REPLIED,	/* answered locally (deny, abort, limits, upstream down) */
};

struct sc_stream {
	struct sc_conn *c;
	struct sc_stream *prev, *next; /* in c->streams */
	int32_t down_id, up_id;	       /* up_id -1 until submitted */
	struct sc_up *up;	       /* the upstream it was submitted to, or NULL */
	enum sc_sstate state;
	struct sc_hdrs req_hdrs, req_trailers, resp_hdrs, resp_trailers;
	nghttp2_rcbuf *path;	    /* :path, referenced */
	nghttp2_rcbuf *peer_hdr;    /* first x-grpcguard-peer, referenced; not in req_hdrs */
	uint8_t npeer_hdr;	    /* how many x-grpcguard-peer fields came (saturates) */
	bool peer_ok;		    /* it named a valid peer: the response names us */
	struct sc_chunkq req, resp; /* bytes received on one side, not yet sent on the other */
	/* Request bytes already sent upstream, kept (their client credit withheld) until the
	 * app answers, so a stream the app refused unprocessed can be sent again. */
	struct sc_chunkq sent;
	bool no_replay;		/* sent was given up (too big, or the app answered): no retry */
	uint32_t resp_grown;	/* upstream window granted beyond SC_UP_STREAM_WINDOW */
	uint32_t resp_in;	/* response DATA bytes received (saturates) */
	uint8_t tries;		/* upstream attempts after the first (sc_stream_retry) */
	bool req_eof, resp_eof; /* END_STREAM received from client / app */
	bool req_eof_hdrs;	/* ...and the client's came on the request HEADERS */
	bool resp_started;	/* response HEADERS submitted downstream */
	bool down_closed, up_closed;
	bool hdr_too_big, counted_delay, counted, timer_was_set;
	int grpc_status;			/* -1 until known */
	uint64_t start_ms, deadline_ms;		/* deadline_ms 0: none */
	uint64_t timeout_ms;			/* the request's grpc-timeout */
	const char *strip_header;		/* borrowed from snap->policy */
	int abort_status;			/* > 0: abort after the delay */
	const char *abort_message, *fault_name; /* borrowed from snap->policy */
	struct sc_snap *snap;			/* the policy this RPC was decided with */
	uv_timer_t *timer;			/* delay timer, freed in its close callback */
	/* Inline header storage: a gRPC request carries 7-10 fields, a response 2-4 (up to
	 * 8 from servers that add server, date, content-length: no heap spill then). */
	struct sc_hdr inl_req[12], inl_resp[8], inl_trl[4];
};

/* ---- upstream connection: one nghttp2 client session over one TCP connection ------- */
/*
 * Response flow control per client (stream.c, sc_stream_resp_window): every upstream
 * stream starts with SC_UP_STREAM_WINDOW; one whose response goes on is grown to
 * --max-pending-bytes while its client's grown windows stay within 2 x
 * --max-pending-bytes and the client takes what we buffer for it. So what one client can
 * make us hold is at most max_concurrent_streams x SC_UP_STREAM_WINDOW + 2 x
 * max_pending_bytes, however many streams it opens, and it stalls only its own streams.
 */
#define SC_UP_STREAM_WINDOW 16384
static inline uint32_t sc_up_stream_window(const struct sc_config *cfg)
{
	return cfg->max_pending_bytes < SC_UP_STREAM_WINDOW ? cfg->max_pending_bytes
							    : SC_UP_STREAM_WINDOW;
}

/*
 * Shared by every client connection of a worker that goes to the same destination and
 * direction (the worker's pool, w->ups): each RPC is one stream on it; another
 * connection is opened when the app's SETTINGS_MAX_CONCURRENT_STREAMS is reached or it
 * sent GOAWAY. Nothing on it describes one client: identity, the peer header, replay
 * bytes and response buffering are per stream (sc_stream) or per client (sc_conn).
 */
enum sc_upstate { UP_CONNECTING, UP_READY, UP_DEAD };
struct sc_up {
	struct sc_worker *w; /* NULL once detached (closing, or the worker went away) */
	struct sc_up *next;  /* in w->ups */
	struct sockaddr_storage dst;
	bool outbound;		 /* for the outbound listener's connections */
	uint32_t nstreams;	 /* RPCs submitted and not yet closed on it */
	uint64_t idle_ms;	 /* since when it has had no stream (0: busy) */
	struct sc_stream *cache; /* last stream looked up (h2conn.c) */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_timer_t timer; /* connect timeout */
	nghttp2_session *s;
	struct sc_outbuf out;
	enum sc_upstate state;
	int nhandles; /* handles still to be closed before free */
	/* Outbound mTLS (outbound.c): the handshake runs in UP_CONNECTING; plain: this
	 * destination has no sidecar, speak plaintext; seen: a byte came back already. */
	struct sc_tls *tls;
	bool plain, seen;
	bool settings_seen; /* the peer's SETTINGS arrived (h2conn.c up_frame_recv) */
};

/* ---- passthrough (not HTTP/2): one buffer per direction ---------------------------- */
#define SC_HELLO_MAX 16384 /* = sizeof(sc_pipe.buf): a held ClientHello fits the pipe */
struct sc_pipe {
	uv_write_t req;
	uint8_t buf[16384];
	size_t len;
	bool eof, shut;
	uv_shutdown_t sreq;
};

enum sc_cmode { CM_PEEK, CM_H2, CM_PASS, CM_REFUSED /* gate.c */, CM_CLOSING };

struct sc_conn {
	struct sc_worker *w;
	struct sc_conn *prev, *next; /* in w->conns */
	uv_tcp_t tcp;
	enum sc_cmode mode;
	nghttp2_session *ds;
	struct sc_outbuf out;
	size_t replay_bytes; /* sum of its streams' sent.bytes (bounded: stream.c) */
	/* Response bytes of its streams waiting here (s->resp), and the upstream stream
	 * window granted beyond SC_UP_STREAM_WINDOW for them (bounded: stream.c). */
	size_t resp_bytes, resp_grown;
	struct sc_conn *dirty_next; /* in w->dirty while it has frames to send */
	struct sc_conn *done_next;  /* flushed in this sc_worker_flush (h2conn.c) */
	bool dirty, in_done;
	struct sockaddr_storage peer;
	struct sockaddr_storage updst; /* where the app is */
	socklen_t updst_len;
	uint8_t peek[SC_H2_PREFACE_LEN];
	size_t npeek;
	struct sc_stream *streams;
	size_t nstreams;
	struct sc_stream *dcache; /* last stream looked up (h2conn.c) */
	uint64_t last_active_ms;
	uint64_t flood_window_ms;
	uint64_t notice_ms; /* GOAWAY notice sent at (0: not yet) */
	unsigned flood_count;
	unsigned flood_streams; /* streams opened in this flood window (each adds allowance) */
	uint32_t nclosed, npremature; /* streams closed; of them reset prematurely (h2conn.c) */
	uint8_t fh[9], nfh;	      /* frame walk: a frame header read in part */
	uint8_t ping[8];	      /* the payload of a PING being read while lingering */
	uint32_t fleft;		      /* payload bytes of the current frame still to come */
	bool fdrop;		      /* ...which are dropped, not given to nghttp2 */
	uint32_t max_sid;	      /* the highest stream the client opened (HEADERS) */
	uint64_t linger_ms;	      /* after our last GOAWAY: reading PINGs since (0: no) */
	bool goaway_sent, in_recv;
	bool limit_counted; /* a GOAWAY for a flood/reset limit was counted for this conn */
	bool outbound;	    /* accepted on the outbound listener (outbound.c decides) */
	bool peer_cached;   /* outbound: updated sc_peercache for updst (stream.c) */
	bool pconnected;    /* passthrough: the upstream connect completed */
	uint64_t accepted_ms, pass_start_ms;
	struct sc_pipe *pipe_du, *pipe_ud; /* passthrough: down->up, up->down */
	uv_tcp_t *ptcp;			   /* passthrough upstream socket */
	uint64_t pass_gen; /* policy generation the inbound door admitted it under (0: never) */
	uv_connect_t pcreq;
	int nhandles;
	/* Inbound: TLS terminated here (first byte 0x16), mtls once the client's certificate
	 * verified (its principal: sc_tls_peer_principal). Outbound: mtls once the
	 * destination's sidecar verified; both SPIFFE IDs kept for the metrics. */
	struct sc_tls *tls;
	uint8_t *hello; /* inbound: a TLS ClientHello being read (SC_HELLO_MAX), until decided */
	size_t nhello;
	bool mtls;
	char *out_self_id, *out_peer_id; /* outbound only, owned */
};

/* ---- a worker: one loop, one listening socket ------------------------------------- */
struct sc_proxy;
struct sc_worker {
	struct sc_proxy *px;
	unsigned index;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_tcp_t olistener; /* outbound (--outbound-listen), when olisten_fd >= 0 */
	uv_timer_t opeek;   /* outbound: connections silent too long pass through */
	int olisten_fd;
	uv_async_t wake;
	uv_timer_t sweep, drain_timer;
	/* Reads defer their flush to the end of the loop turn (sc_worker_flush_soon): the
	 * check handle flushes once every ready socket has been read; the idle handle, active
	 * only while a flush is due, keeps that turn's poll from blocking. */
	uv_check_t flush_check;
	uv_idle_t flush_idle;
	bool flush_due;
	uv_thread_t thread;
	int listen_fd;
	struct sc_conn *conns;
	size_t nconns;
	struct sc_up *ups;     /* the upstream pool: live and going-away connections */
	uint32_t app_hdr_max;  /* the app's last SETTINGS_MAX_HEADER_LIST_SIZE (0: none yet) */
	struct sc_conn *dirty; /* connections with frames to send (sc_conn_dirty) */
	bool flushing, kick;   /* kick: a flush must go round once more (sc_conn_close) */
	bool draining;
	struct sc_pool pool;
	struct sc_small small;		/* nghttp2's allocator for this worker's sessions */
	struct sc_stream *free_streams; /* freed streams kept for reuse */
	size_t nfree_streams;
	uint8_t rbuf[65536];
	uint8_t *obuf; /* assembly buffer for outgoing frames */
	size_t obuf_cap;
	uint8_t *tbuf; /* the same, encrypted, for TLS connections */
	size_t tbuf_cap;
	struct sc_negcache negcache; /* outbound destinations without a sidecar (tls.h) */
	struct sc_rng rng;
	struct sc_snap *snap;
	struct sc_authn *authn;
	nghttp2_session_callbacks *down_cbs, *up_cbs;
	nghttp2_option *down_opt, *up_opt;
	struct sc_mcache mcache;
	struct policy_header *scratch_hdrs;
	size_t scratch_cap;
	uint64_t warn_window_ms; /* peer-triggered warnings: rate limit window */
	unsigned warn_count;
	/* Tests and fuzzing only: when set, no socket is used for writes or upstream
	 * connects; every frame batch for the client (o == &conn->out) or the app goes here. */
	void (*test_write)(struct sc_worker *w, const struct sc_outbuf *o, const uint8_t *d,
			   size_t n);
};

struct sc_proxy {
	const struct sc_config *cfg;
	struct sockaddr_storage upstream;
	socklen_t upstream_len;
	struct sc_worker *workers;
	unsigned nworkers;
	_Atomic unsigned nconns;
	_Atomic unsigned ndelayed;
	_Atomic bool draining;
	unsigned outbound_port; /* --outbound-listen's port, 0: no outbound listener */
};

/* listener.c */
int sc_run_main(const struct sc_config *cfg);

/* h2conn.c */
void sc_conn_accept(struct sc_worker *w, uv_stream_t *server);
/* A connection object without a socket yet (its tcp handle is initialized, not open). */
struct sc_conn *sc_conn_new(struct sc_worker *w);
/* Bytes read from the client / from the app (what the read callbacks do). */
void sc_conn_feed(struct sc_conn *c, const uint8_t *d, size_t n);
void sc_up_feed(struct sc_up *up, const uint8_t *d, size_t n);
/* c has frames queued: it is flushed with the rest of the worker (sc_worker_flush). */
void sc_conn_dirty(struct sc_conn *c);
/* Send what the worker's sessions have queued (c too); from top-level callbacks only. */
void sc_conn_flush(struct sc_conn *c);
void sc_worker_flush(struct sc_worker *w);
/* Close the pool's connections idle since now - idle_timeout; all: every one, now. */
void sc_ups_sweep(struct sc_worker *w, uint64_t now, bool all);
/*
 * Reset s's stream on its (shared) upstream with err. A stream whose HEADERS nghttp2 has
 * not sent yet is only cancelled there (nghttp2 drops the queued HEADERS: no RST_STREAM,
 * no close callback), so it is closed for us here (s->up_closed): a later RST_STREAM for
 * it would name an idle stream, a connection error for the app (RFC 9113 section 5.1)
 * that would end every client's streams on the connection.
 */
void sc_up_cancel(struct sc_stream *s, uint32_t err);
/* One of up's streams closed or left it (its count, for MAX_CONCURRENT_STREAMS). */
void sc_up_stream_done(struct sc_up *up);
void sc_conn_close(struct sc_conn *c);
void sc_conn_drain(struct sc_conn *c);
void sc_conn_idle_check(struct sc_conn *c, uint64_t now);
int sc_worker_callbacks_init(struct sc_worker *w);
/* Start/stop the deferred flush handles of w (its loop must be initialised). */
int sc_worker_flush_handles_init(struct sc_worker *w);
void sc_worker_flush_handles_close(struct sc_worker *w);
void sc_worker_flush_soon(struct sc_worker *w);
void sc_worker_callbacks_free(struct sc_worker *w);
/* A pooled upstream for c's destination with room for a stream, connecting if needed. */
struct sc_up *sc_up_get(struct sc_conn *c);
/* Give up on HTTP/2 for a connection still peeking: relay its bytes as TCP. */
void sc_conn_passthrough(struct sc_conn *c);

/* stream.c */
struct sc_stream *sc_stream_new(struct sc_conn *c, int32_t down_id);
void sc_stream_headers_done(struct sc_stream *s); /* request headers complete: decide */
void sc_stream_forward(struct sc_stream *s);	  /* submit upstream */
void sc_stream_reply(struct sc_stream *s, int grpc_status, const char *msg);
void sc_stream_maybe_free(struct sc_stream *s);
/* grpc code to count for a stream reset before it had one: 4 past its deadline, else 1 */
int sc_stream_reset_status(const struct sc_stream *s, uint64_t now);
void sc_stream_up_failed(struct sc_stream *s, uint32_t h2_error);
/*
 * The app did not process s's request (RFC 9113: above a GOAWAY's last-stream-id,
 * REFUSED_STREAM, or never sent): submit it again, on a new connection if the current
 * one is going away. Only before any response and while the bytes sent are still kept;
 * at most SC_MAX_TRIES times. An inbound request is judged again first when the policy
 * changed since its judgement (denied: answered, not sent). Returns true when s was
 * resubmitted (or answered because no upstream could be had or the new policy denies
 * it), false when it cannot be retried (s untouched).
 */
#define SC_MAX_TRIES 5
bool sc_stream_retry(struct sc_stream *s);
/* The app answered (or the request can no longer be replayed): credit what was kept. */
void sc_stream_replay_release(struct sc_stream *s);
void sc_stream_drop_req(struct sc_stream *s);
/* This sidecar's SC_PEER_HEADER for s's response into *nv (borrowed from s->snap): 1,
 * or 0 when the request named no valid peer (then nothing is written). */
size_t sc_stream_peer_nv(const struct sc_stream *s, nghttp2_nv *nv);
/* Response DATA arrived for s: grow its upstream window if its client's budget allows. */
void sc_stream_resp_window(struct sc_stream *s);
/* Drops the app's buffered response bytes, crediting them to the upstream connection. */
void sc_stream_drop_resp(struct sc_stream *s);
void sc_stream_pool_cleanup(struct sc_worker *w); /* frees the worker's spare streams */
extern const nghttp2_data_provider sc_req_provider, sc_resp_provider;
/* Hold (delay, then abort or forward), abort or forward s as decision d says (d borrowed). */
void sc_stream_apply_faults(struct sc_stream *s, const struct policy_decision *d);

/* outbound.c: the caller's side (see there) */
int sc_outbound_init(const struct sc_config *cfg); /* metrics, namespace; 0 or -ENOMEM */
/* Where an outbound connection goes (its SO_ORIGINAL_DST) into c->updst; -1: refuse it. */
int sc_outbound_target(struct sc_conn *c, int fd);
void sc_outbound_headers_done(struct sc_stream *s); /* decide an outbound RPC */
void sc_outbound_peek_sweep(struct sc_worker *w, uint64_t now);
/* Close an outbound connection with a TCP reset (its destination refused or timed out). */
void sc_outbound_reset(struct sc_conn *c);
/*
 * An outbound upstream just connected: start TLS to the destination's sidecar when we
 * hold a certificate and the destination is not known to lack one. Returns true when a
 * handshake was started (the upstream stays UP_CONNECTING until it completes).
 */
bool sc_outbound_tls_start(struct sc_up *up);
/*
 * An outbound RPC of c went on the pooled connection up: once up's mTLS handshake is done,
 * c's labels name both SPIFFE IDs (c->mtls, out_self_id, out_peer_id), as if c had made
 * the handshake itself. Nothing when up is plaintext or not established yet.
 */
void sc_outbound_learn(struct sc_conn *c, struct sc_up *up);
/* Bytes from the destination while up->tls is set (h2conn.c's read callback). */
void sc_outbound_tls_in(struct sc_up *up, const uint8_t *d, ssize_t n);

/* h2conn.c, for outbound.c: send what TLS has produced on a socket (handshake bytes). */
int sc_tls_flush_raw(struct sc_worker *w, uv_stream_t *h, struct sc_tls *t, struct sc_outbuf *o,
		     uv_write_cb cb);
void sc_up_write_cb(uv_write_t *req, int status);
void sc_up_detach(struct sc_up *up, const char *why);
/* Reconnect up's session in plaintext on a new socket (a destination without sidecar). */
void sc_up_restart_plain(struct sc_up *up);

#endif
