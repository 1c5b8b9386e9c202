/*
 * Policy and pod-labels reload; see reload.h. Runs on the main loop; the only state
 * other threads touch is the current snapshot pointer (under a mutex, to take a
 * reference), its generation (atomic) and the /policy rendering (under the same mutex).
 */
#include "sidecar/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/metrics.h"
#include "sidecar/crypto.h"
#include "sidecar/filestat.h"
#include "sidecar/gate.h"
#include "sidecar/identity.h"
#include "sidecar/stats.h"

#define DEBOUNCE_MS 100
#define POLL_MS 1000

struct watched {
	const char *path;	 /* borrowed, NULL: not configured */
	struct sc_filestat seen; /* what was last examined */
	uint64_t hash;		 /* of the content last examined */
	bool have_hash;
	bool missing_logged;
};

static struct {
	pthread_mutex_t lock;
	struct sc_snap *cur;
	_Atomic uint64_t generation;
	struct watched pol, lab;
	char *lab_buf; /* last accepted labels text */
	size_t lab_len;
	char *last_error;   /* last rejected policy/labels file, NULL after a good reload */
	char *first_error;  /* the policy file at start was unusable: why (fail closed) */
	bool policy_loaded; /* a file was parsed successfully at least once */
	void (*notify)(void *ctx);
	void *notify_ctx;
	uv_loop_t *loop;
	uv_fs_event_t fsev;
	bool fsev_active, handles_init;
	uv_timer_t debounce, poll;
	char *dir;
} st = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct sc_snap *sc_snap_ref(struct sc_snap *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void sc_snap_unref(struct sc_snap *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	policy_unref(s->policy);
	policy_labels_free(s->labels);
	free(s->no_policy);
	free(s);
}

struct sc_snap *sc_state_current(void)
{
	struct sc_snap *s;

	pthread_mutex_lock(&st.lock);
	s = st.cur ? sc_snap_ref(st.cur) : NULL;
	pthread_mutex_unlock(&st.lock);
	return s;
}

uint64_t sc_state_generation(void)
{
	return atomic_load(&st.generation);
}

static void set_error(const char *text)
{
	pthread_mutex_lock(&st.lock);
	free(st.last_error);
	st.last_error = text ? strdup(text) : NULL;
	pthread_mutex_unlock(&st.lock);
}

/*
 * Install a new snapshot: policy p (stolen; NULL keeps the current one, or is the empty
 * policy when there is none yet) and labels parsed afresh from the last good labels text
 * (labels objects are not shared between snapshots). A good policy ends failing closed;
 * p NULL keeps the current state (the first snapshot fails closed when the file at start
 * was unusable). Returns 0 or -ENOMEM (then p is released, nothing changed).
 */
static int install(struct policy *p)
{
	struct sc_snap *s = calloc(1, sizeof(*s)), *old;
	const char *closed = p ? NULL : st.cur ? st.cur->no_policy : st.first_error;
	struct policy_diag diag;

	if (!s) {
		policy_unref(p);
		return -ENOMEM;
	}
	atomic_init(&s->refs, 1);
	if ((!p && !st.cur && !(p = policy_new_empty())) ||
	    (closed && !(s->no_policy = strdup(closed)))) {
		policy_unref(p);
		free(s);
		return -ENOMEM;
	}
	if (st.lab_buf && policy_labels_parse(st.lab_buf, st.lab_len, &s->labels, &diag) != 0)
		s->labels = NULL;
	/* The workload name may come from the labels, so it follows them. */
	sc_peer_self_derive(getenv("POD_NAME"), getenv("POD_NAMESPACE"), getenv("SERVICE_ACCOUNT"),
			    s->labels, &s->self);
	pthread_mutex_lock(&st.lock);
	old = st.cur;
	s->policy = p ? p : policy_ref(old->policy);
	s->generation = old ? old->generation + 1 : 1;
	st.cur = s;
	atomic_store(&st.generation, s->generation);
	pthread_mutex_unlock(&st.lock);
	sc_snap_unref(old);
	if (st.notify)
		st.notify(st.notify_ctx);
	return 0;
}

void sc_reload_set_notify(void (*fn)(void *ctx), void *ctx)
{
	st.notify = fn;
	st.notify_ctx = ctx;
}

bool sc_reload_policy_ok(void)
{
	bool ok;

	pthread_mutex_lock(&st.lock);
	ok = st.cur && !st.cur->no_policy;
	pthread_mutex_unlock(&st.lock);
	return ok;
}

/* The first look at the policy file found it unusable: fail closed (see reload.h). */
static void first_unusable(const char *text)
{
	if (st.cur || st.first_error)
		return;
	st.first_error = strdup(text);
	if (!st.first_error)
		st.first_error = strdup("out of memory");
}

int sc_reload_set_policy(struct policy *p)
{
	int r = install(p);
	if (r == 0)
		st.policy_loaded = true;
	return r;
}

static uint64_t fnv1a(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
	return h;
}

/*
 * Read path if it changed since last time. Returns 1 and a new buffer in *buf (its
 * length in *len) when there is new content to examine, 0 when nothing changed (or the
 * file is missing or empty: never a reason to drop a good policy), negative errno on a
 * read error (-EISDIR for a directory), reported once per change of the path's stat.
 */
static int read_if_changed(struct watched *wf, char **buf, size_t *len)
{
	struct stat sb;
	char *b = NULL;
	size_t n = 0;
	int fd, r = 0;

	*buf = NULL;
	if (stat(wf->path, &sb) != 0) {
		if (!wf->missing_logged && wf->seen.valid)
			log_warn("policy_file_missing", "file is gone; keeping what is in force",
				 "{s:s}", "file", wf->path);
		wf->missing_logged = true;
		wf->seen.valid = false;
		return 0;
	}
	wf->missing_logged = false;
	/* ctime too: a chmod that makes an unreadable file readable changes only that. */
	if (sc_filestat_same(&wf->seen, &sb))
		return 0;
	if (S_ISDIR(sb.st_mode)) {
		r = -EISDIR;
		goto unreadable;
	}
	if (sb.st_size == 0)
		return 0; /* being written, or emptied by mistake: wait for content */
	fd = open(wf->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto unreadable;
	}
	b = malloc(POLICY_MAX_FILE_BYTES + 2);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t k = read(fd, b + n, POLICY_MAX_FILE_BYTES + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			break;
		}
		if (k == 0 || (n += (size_t)k) > POLICY_MAX_FILE_BYTES)
			break;
	}
	close(fd);
	if (r < 0) {
		free(b);
		goto unreadable;
	}
	if (n == 0) {
		free(b);
		return 0;
	}
	b[n] = '\0';
	sc_filestat_set(&wf->seen, &sb);
	if (wf->have_hash && fnv1a(b, n) == wf->hash) {
		free(b);
		return 0;
	}
	wf->hash = fnv1a(b, n);
	wf->have_hash = true;
	*buf = b;
	*len = n;
	return 1;
unreadable:
	/*
	 * Remember what we looked at, so the same unreadable thing (a directory, a file
	 * without read permission) is reported once, not at every poll; the next change
	 * to it is examined afresh.
	 */
	sc_filestat_set(&wf->seen, &sb);
	wf->have_hash = false;
	return r;
}

/* Re-read the labels file; true when new labels text was accepted. */
static bool load_labels(void)
{
	struct policy_labels *l = NULL;
	struct policy_diag diag = {0};
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (!st.lab.path)
		return false;
	r = read_if_changed(&st.lab, &buf, &len);
	if (r <= 0) {
		if (r < 0)
			log_warn("labels_read_failed", "cannot read the pod labels file",
				 "{s:s, s:s}", "file", st.lab.path, "error", strerror(-r));
		return false;
	}
	if (policy_labels_parse(buf, len, &l, &diag) != 0) {
		log_error("labels_rejected", diag.text, "{s:s}", "file", st.lab.path);
		metrics_inc(sc_stats.reload_fail);
		free(buf);
		return false;
	}
	policy_labels_free(l);
	free(st.lab_buf);
	st.lab_buf = buf;
	st.lab_len = len;
	return true;
}

/*
 * A policy with requestAuthentication needs the crypto module (JWT verification is
 * OpenSSL's): load it before the policy is installed. When it cannot be loaded the policy
 * is rejected like one that does not parse: logged, counted, shown in /policy, and the
 * last good policy stays (or, at start, every RPC is refused). true: p may be installed.
 */
static bool crypto_ready(const struct policy *p)
{
	char err[1024], text[1200];

	if (policy_authn_count(p) == 0 ||
	    sc_crypto_load("requestAuthentication", err, sizeof(err)) == 0)
		return true;
	snprintf(text, sizeof(text), "%s: %s", st.pol.path, err);
	log_error("policy_rejected", text, "{s:s, s:s, s:b}", "file", st.pol.path, "reason",
		  "crypto_module", "kept_last_good", st.policy_loaded);
	metrics_inc(sc_stats.reload_fail);
	set_error(text);
	first_unusable(text);
	return false;
}

void sc_reload_check(void)
{
	struct policy *p = NULL;
	struct policy_diag diag = {0};
	bool lchanged, pchanged = false;
	char *buf = NULL;
	size_t len = 0;
	int r;

	lchanged = load_labels();
	if (st.pol.path) {
		r = read_if_changed(&st.pol, &buf, &len);
		if (r < 0) {
			char text[600];
			snprintf(text, sizeof(text), "%s: cannot read the policy file: %s%s",
				 st.pol.path, strerror(-r),
				 r == -EISDIR ? " (--policy names a file, not its directory)" : "");
			log_error("policy_read_failed", text, "{s:s, s:s, s:b}", "file",
				  st.pol.path, "error", strerror(-r), "kept_last_good",
				  st.policy_loaded);
			metrics_inc(sc_stats.reload_fail);
			set_error(text);
			first_unusable(text);
		} else if (r > 0) {
			r = policy_parse_buffer(st.pol.path, buf, len, &p, &diag);
			if (r != 0) {
				log_error("policy_rejected", diag.text, "{s:s, s:i, s:i, s:b}",
					  "file", st.pol.path, "line", (int)diag.line, "column",
					  (int)diag.column, "kept_last_good", st.policy_loaded);
				metrics_inc(sc_stats.reload_fail);
				set_error(diag.text);
				first_unusable(diag.text);
			} else if (!crypto_ready(p)) {
				policy_unref(p);
				p = NULL;
			} else {
				pchanged = true;
			}
			free(buf);
		}
	}
	if (!pchanged && !lchanged)
		return;
	if (install(p) != 0)
		return;
	if (pchanged) {
		st.policy_loaded = true;
		set_error(NULL);
		metrics_inc(sc_stats.reload_ok);
		log_info("policy_loaded", "policy in force", "{s:s, s:I, s:i, s:i}", "file",
			 st.pol.path, "generation", (json_int_t)sc_state_generation(), "faults",
			 (int)policy_fault_count(st.cur->policy), "authorization",
			 (int)policy_authz_count(st.cur->policy));
	}
	if (lchanged)
		log_info("labels_loaded", "pod labels in force", "{s:s, s:I}", "file", st.lab.path,
			 "generation", (json_int_t)sc_state_generation());
}

static void debounce_cb(uv_timer_t *t)
{
	(void)t;
	sc_reload_check();
}

static void fsev_cb(uv_fs_event_t *h, const char *name, int events, int status)
{
	(void)h;
	(void)name;
	(void)events;
	(void)status;
	/* Several events arrive per ConfigMap update: act once they settle. */
	uv_timer_start(&st.debounce, debounce_cb, DEBOUNCE_MS, 0);
}

static void fsev_close_cb(uv_handle_t *h)
{
	(void)h;
}

static void watch_dir(void)
{
	if (st.fsev_active || !st.dir)
		return;
	if (uv_fs_event_start(&st.fsev, fsev_cb, st.dir, 0) == 0)
		st.fsev_active = true;
}

static void poll_cb(uv_timer_t *t)
{
	struct stat sb;
	(void)t;

	/* The directory may appear (volume mounted late) or be replaced. */
	if (st.fsev_active && stat(st.dir, &sb) != 0) {
		uv_fs_event_stop(&st.fsev);
		st.fsev_active = false;
	}
	watch_dir();
	sc_reload_check();
}

int sc_reload_init(uv_loop_t *loop, const char *policy_path, const char *labels_path)
{
	st.loop = loop;
	st.pol.path = policy_path;
	st.lab.path = labels_path;
	/* The first snapshot (generation 1) is what the files say, or the empty policy. */
	sc_reload_check();
	if (!st.cur && install(NULL) != 0)
		return -ENOMEM;
	if (st.cur->no_policy)
		log_error(
		    "no_valid_policy",
		    "the policy file cannot be used and there is no earlier one: every RPC "
		    "is refused (UNAVAILABLE) and /readyz says 503 until a valid file arrives",
		    "{s:s, s:s}", "file", policy_path, "error", st.cur->no_policy);
	if (policy_path && !st.policy_loaded && !st.last_error)
		log_warn("no_policy",
			 "no policy file: no faults, every RPC allowed; it is picked up "
			 "when it appears",
			 "{s:s}", "file", policy_path);
	if (!policy_path)
		log_warn("no_policy", "no --policy: no faults, every RPC allowed", NULL);
	if (policy_path) {
		char *tmp = strdup(policy_path);
		if (!tmp)
			return -ENOMEM;
		st.dir = strdup(dirname(tmp));
		free(tmp);
		if (!st.dir)
			return -ENOMEM;
	}
	uv_fs_event_init(loop, &st.fsev);
	uv_timer_init(loop, &st.debounce);
	uv_timer_init(loop, &st.poll);
	st.handles_init = true;
	watch_dir();
	if (policy_path || labels_path)
		uv_timer_start(&st.poll, poll_cb, POLL_MS, POLL_MS);
	return 0;
}

void sc_reload_stop(void)
{
	if (!st.handles_init)
		return;
	st.handles_init = false;
	uv_close((uv_handle_t *)&st.fsev, fsev_close_cb);
	uv_close((uv_handle_t *)&st.debounce, fsev_close_cb);
	uv_close((uv_handle_t *)&st.poll, fsev_close_cb);
}

void sc_reload_free(void)
{
	pthread_mutex_lock(&st.lock);
	sc_snap_unref(st.cur);
	st.cur = NULL;
	free(st.last_error);
	st.last_error = NULL;
	pthread_mutex_unlock(&st.lock);
	free(st.first_error);
	st.first_error = NULL;
	st.notify = NULL;
	free(st.lab_buf);
	st.lab_buf = NULL;
	free(st.dir);
	st.dir = NULL;
}

int sc_reload_policy_route(void *ctx, char **body, size_t *len, const char **ctype)
{
	json_t *o = NULL, *pj = NULL, *id = NULL;
	struct sc_snap *s;
	json_t *ports = ctx; /* inbound ports (sc_intercept_ports_json), borrowed, or NULL */
	int code = 500;

	*ctype = "application/json";
	pthread_mutex_lock(&st.lock);
	s = st.cur;
	if (s) {
		pj = policy_to_json(s->policy);
		id = json_pack("{s:s, s:s, s:s}", "namespace", s->self.id.ns, "workload",
			       s->self.id.workload, "serviceAccount", s->self.id.sa);
	}
	o = json_pack("{s:I, s:s?, s:b, s:o?, s:s?, s:s?, s:o?, s:o?}", "generation",
		      (json_int_t)(s ? s->generation : 0), "file", st.pol.path, "loaded",
		      st.policy_loaded, "policy", pj, "last_error", st.last_error, "no_policy",
		      s ? s->no_policy : NULL, "gate", sc_gate_json(s), "identity", id);
	pthread_mutex_unlock(&st.lock);
	if (o) {
		json_t *wi = sc_identity_json();
		if (wi && json_is_true(json_object_get(wi, "enabled")))
			json_object_set_new(
			    wi, "mtlsMode",
			    json_string(sc_gate_mtls_strict() ? "STRICT" : "PERMISSIVE"));
		json_object_set_new(o, "workloadIdentity", wi);
	}
	if (!o || (ports && json_object_set(o, "inbound_ports", ports) != 0))
		goto out;
	*body = json_dumps(o, JSON_INDENT(2));
	if (!*body)
		goto out;
	*len = strlen(*body);
	code = 200;
out:
	json_decref(o);
	return code;
}
