/*
 * Traffic interception. See intercept.h.
 *
 * `init` redirects inbound TCP to the proxy port with nat-table rules in a chain of our
 * own, GRPCGUARD_INBOUND, entered from PREROUTING:
 *
 *     *nat
 *     :GRPCGUARD_INBOUND - [0:0]
 *     -A GRPCGUARD_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15006
 *     -A PREROUTING -p tcp -j GRPCGUARD_INBOUND
 *     COMMIT
 *
 * The text goes to iptables-restore --noflush (then ip6tables-restore) on a pipe, so each
 * family changes in one transaction. Declaring the chain with --noflush empties it when it
 * already exists, so a re-run replaces our rules wholesale; the PREROUTING jump is only
 * appended when `iptables -C` says it is missing. Nothing else in the table is touched.
 *
 * The inbound chain hangs off PREROUTING: it sees packets arriving from outside the pod,
 * never packets the pod sends itself, so the proxy's own upstream connections (to
 * <pod IP>:<port>: locally generated) are never redirected back to it by that chain.
 * Outbound capture (outrules.c, on unless --no-outbound) adds a second chain,
 * GRPCGUARD_OUTBOUND, entered from OUTPUT in the same transaction; its first rule
 * returns everything owned by --proxy-uid, so the proxy's own connections (inbound
 * upstreams and outbound ones alike) are never redirected.
 *
 * IPv6 fails closed: when the pod has a global IPv6 address (/proc/net/if_inet6) and the
 * IPv6 rules cannot be installed (no ip6tables-restore, no IPv6 nat table), init exits 1,
 * unless --ipv4-only says no client uses IPv6. Without such an address it only warns.
 *
 * sc_original_dst() asks conntrack where a redirected connection was going
 * (SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST); the proxy connects to that address itself (the
 * pod IP), so what the app keeps on 127.0.0.1 / ::1 stays private. sc_addr_is_loopback()
 * tells the proxy to refuse an original destination on loopback.
 *
 * What it does not do: CNI mode, UDP, removing the rules (the pod's network namespace
 * dies with the pod).
 */
#include "sidecar/intercept.h"

/* glibc's netinet/in.h first, so the kernel headers below do not redefine its types. */
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include "common/log.h"
#include "sidecar/outrules.h"

#define CHAIN "GRPCGUARD_INBOUND"
#define DEFAULT_PROXY_PORT 15006
#define DEFAULT_ADMIN_PORT 15020
#define DEFAULT_PROXY_UID 1337
#define RUN_TIMEOUT_MS 30000
#define RUN_OUTPUT_MAX 2048
#define IF_INET6_PATH "/proc/net/if_inet6"

#ifdef GG_TESTING
#define TESTABLE
int sc_intercept_global_ipv6(const char *path, char *addr, size_t addrlen);
#else
#define TESTABLE static
#endif

struct init_opts {
	uint8_t ports[65536 / 8];   /* bitmap: ports to redirect (unless all_ports) */
	uint8_t exclude[65536 / 8]; /* bitmap: ports never redirected */
	bool all_ports;
	bool dry_run;
	bool ipv4_only; /* IPv6 that cannot be intercepted is a warning, not an error */
	unsigned proxy_port;
	unsigned proxy_uid;
	struct sc_outrules out; /* the nat OUTPUT capture (outrules.h) */
};

static void bit_set(uint8_t *bm, unsigned port)
{
	bm[port / 8] |= (uint8_t)(1u << (port % 8));
}

static bool bit_get(const uint8_t *bm, unsigned port)
{
	return bm[port / 8] & (1u << (port % 8));
}

/* A decimal number in [min, max], the whole string. Returns 0 or -EINVAL. */
static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/*
 * "8080,9090" (spaces allowed around entries; an empty list is allowed) into bitmap bm,
 * or "*" (when star is not NULL) into *star. Returns 0, or -EINVAL with a message in err
 * naming the bad entry.
 */
static int parse_port_list(const char *flag, const char *s, uint8_t *bm, bool *star, char *err,
			   size_t errlen)
{
	char item[16];

	if (star) {
		const char *t = s + strspn(s, " ");
		if (t[0] == '*' && t[1 + strspn(t + 1, " ")] == '\0') {
			*star = true;
			return 0;
		}
	}
	while (*s) {
		size_t n;
		unsigned port;

		s += strspn(s, " ");
		n = strcspn(s, ",");
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n == 0 && s[strspn(s, " ")] == '\0')
			break; /* trailing spaces, or an empty list */
		if (n == 0 || n >= sizeof(item)) {
			snprintf(err, errlen,
				 "%s: empty or overlong entry in \"%s\" (use e.g. 8080,9090%s)",
				 flag, s, star ? " or *" : "");
			return -EINVAL;
		}
		memcpy(item, s, n);
		item[n] = '\0';
		if (parse_uint(item, 1, 65535, &port) < 0) {
			snprintf(err, errlen, "%s: \"%s\" is not a port (1-65535)%s", flag, item,
				 star ? "; use a comma-separated list or *" : "");
			return -EINVAL;
		}
		bit_set(bm, port);
		s += strcspn(s, ",");
		if (*s == ',') {
			s++;
			if (s[strspn(s, " ")] == '\0') {
				snprintf(err, errlen, "%s: trailing comma", flag);
				return -EINVAL;
			}
		}
	}
	return 0;
}

/* ---- the rules ----------------------------------------------------------------- */

/*
 * The iptables-restore input for one family (ipv6: for ip6tables-restore; the text is
 * the same, the comment says which). with_jump adds the PREROUTING jump (leave it out
 * when it is already installed). Returns a new malloc'd string, or NULL on ENOMEM.
 */
static char *render_rules(const struct init_opts *o, bool ipv6, bool with_jump, bool with_out_jump)
{
	char *data = NULL;
	size_t len = 0;
	FILE *t = open_memstream(&data, &len);
	bool bad;

	if (!t)
		return NULL;
	fprintf(t, "# grpcguard-sidecar init (%s): inbound TCP -> proxy port %u\n",
		ipv6 ? "ip6tables-restore --noflush" : "iptables-restore --noflush", o->proxy_port);
	fprintf(t, "*nat\n:%s - [0:0]\n", CHAIN);
	if (o->out.enabled)
		fprintf(t, ":%s - [0:0]\n", SC_OUT_CHAIN);
	if (o->all_ports) {
		/* Every port but the excluded ones (always the proxy's own ports). */
		for (unsigned p = 1; p <= 65535; p++) {
			if (bit_get(o->exclude, p) || p == o->proxy_port)
				fprintf(t, "-A %s -p tcp --dport %u -j RETURN\n", CHAIN, p);
		}
		fprintf(t, "-A %s -p tcp -j REDIRECT --to-ports %u\n", CHAIN, o->proxy_port);
	} else {
		for (unsigned p = 1; p <= 65535; p++) {
			if (bit_get(o->ports, p) && !bit_get(o->exclude, p) && p != o->proxy_port)
				fprintf(t, "-A %s -p tcp --dport %u -j REDIRECT --to-ports %u\n",
					CHAIN, p, o->proxy_port);
		}
	}
	if (with_jump)
		fprintf(t, "-A PREROUTING -p tcp -j %s\n", CHAIN);
	/* Outbound capture: same table, same transaction. */
	sc_outrules_render(&o->out, ipv6, with_out_jump, t);
	fprintf(t, "COMMIT\n");
	bad = ferror(t) != 0;
	if (fclose(t) != 0 || bad) {
		free(data);
		return NULL;
	}
	return data;
}

/*
 * Parse init's command line (argv[0] is "init"). Returns 0, 1 for --help, or -EINVAL
 * with a one-line reason in err.
 */
static int parse_args(int argc, char **argv, struct init_opts *o, char *err, size_t errlen)
{
	static const struct option longopts[] = {
	    {"ports", required_argument, NULL, 'p'},
	    {"proxy-port", required_argument, NULL, 'P'},
	    {"proxy-uid", required_argument, NULL, 'u'},
	    {"exclude-inbound-ports", required_argument, NULL, 'x'},
	    {"exclude-ports", required_argument, NULL, 'x'}, /* the old name, an alias */
	    {"ipv4-only", no_argument, NULL, '4'},
	    {"dry-run", no_argument, NULL, 'n'},
	    {"outbound-port", required_argument, NULL, 'O'},
	    {"exclude-outbound-ports", required_argument, NULL, 'X'},
	    {"exclude-outbound-cidrs", required_argument, NULL, 'C'},
	    {"no-outbound", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *ports = NULL, *exclude_out = NULL;
	bool have_exclude = false;
	char flag[32];
	int c, li = 0;

	memset(o, 0, sizeof(*o));
	sc_outrules_init(&o->out);
	o->proxy_port = DEFAULT_PROXY_PORT;
	o->proxy_uid = DEFAULT_PROXY_UID;
	optind = 0; /* glibc: full reset, the caller may have used getopt already */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, &li)) != -1) {
		switch (c) {
		case 'p':
			ports = optarg;
			break;
		case 'x':
			/* Repeatable, and the two names add up. */
			snprintf(flag, sizeof(flag), "--%s", longopts[li].name);
			if (parse_port_list(flag, optarg, o->exclude, NULL, err, errlen) < 0)
				return -EINVAL;
			have_exclude = true;
			break;
		case '4':
			o->ipv4_only = true;
			break;
		case 'P':
			if (parse_uint(optarg, 1, 65535, &o->proxy_port) < 0) {
				snprintf(err, errlen,
					 "--proxy-port: \"%s\" is not a port (1-65535)", optarg);
				return -EINVAL;
			}
			break;
		case 'u':
			if (parse_uint(optarg, 0, INT32_MAX, &o->proxy_uid) < 0) {
				snprintf(err, errlen, "--proxy-uid: \"%s\" is not a user id",
					 optarg);
				return -EINVAL;
			}
			break;
		case 'n':
			o->dry_run = true;
			break;
		case 'O':
			if (parse_uint(optarg, 1, 65535, &o->out.port) < 0) {
				snprintf(err, errlen,
					 "--outbound-port: \"%s\" is not a port (1-65535)", optarg);
				return -EINVAL;
			}
			break;
		case 'X':
			exclude_out = optarg;
			break;
		case 'C':
			if (sc_outrules_parse_cidrs(&o->out, optarg, err, errlen) < 0)
				return -EINVAL;
			break;
		case 'N':
			o->out.enabled = false;
			break;
		case 'h':
			return 1;
		case ':':
			snprintf(err, errlen, "%s needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			snprintf(err, errlen, "unknown option %s (see init --help)",
				 argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument \"%s\" (see init --help)", argv[optind]);
		return -EINVAL;
	}
	if (!ports) {
		snprintf(err, errlen,
			 "--ports is required (e.g. --ports 8080,9090 or --ports '*')");
		return -EINVAL;
	}
	if (parse_port_list("--ports", ports, o->ports, &o->all_ports, err, errlen) < 0)
		return -EINVAL;
	if (!have_exclude)
		bit_set(o->exclude, DEFAULT_ADMIN_PORT);
	if (exclude_out && parse_port_list("--exclude-outbound-ports", exclude_out,
					   o->out.exclude_ports, NULL, err, errlen) < 0)
		return -EINVAL;
	o->out.uid = o->proxy_uid;
	if (o->out.enabled && o->out.port == o->proxy_port) {
		snprintf(err, errlen,
			 "--outbound-port %u is also the inbound --proxy-port; give them different "
			 "ports (defaults 15001 and 15006)",
			 o->out.port);
		return -EINVAL;
	}
	if (o->all_ports) {
		/* With "*" the sidecar's own ports are always left alone. */
		bit_set(o->exclude, DEFAULT_PROXY_PORT);
		bit_set(o->exclude, DEFAULT_ADMIN_PORT);
	}
	return 0;
}

#ifdef GG_TESTING
/*
 * For tests: the iptables-restore text `init` would feed one family for this command
 * line, as `--dry-run` prints it. Returns 0 and a new string in *out, 1 for --help, or
 * -EINVAL / -ENOMEM with a reason in err.
 */
int sc_intercept_rules(int argc, char **argv, bool ipv6, bool with_jump, char **out, char *err,
		       size_t errlen);
int sc_intercept_rules(int argc, char **argv, bool ipv6, bool with_jump, char **out, char *err,
		       size_t errlen)
{
	struct init_opts *o = malloc(sizeof(*o));
	int rc;

	if (!o)
		return -ENOMEM;
	rc = parse_args(argc, argv, o, err, errlen);
	if (rc == 0) {
		*out = render_rules(o, ipv6, with_jump, with_jump);
		if (!*out) {
			snprintf(err, errlen, "out of memory");
			rc = -ENOMEM;
		}
	}
	free(o);
	return rc;
}
#endif

/* ---- running iptables ------------------------------------------------------------ */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Run argv (looked up in PATH) with input on its stdin (NULL: empty), its stdout and
 * stderr collected into output (the first outlen-1 bytes, NUL-terminated). Bounded by
 * RUN_TIMEOUT_MS, then killed. Returns the exit status (0-255; 128+signal), or -errno
 * when it could not be started (-ENOENT: not found) or -ETIMEDOUT.
 */
static int run_with_input(char *const argv[], const char *input, char *output, size_t outlen)
{
	int in[2] = {-1, -1}, outp[2] = {-1, -1}, rep[2] = {-1, -1};
	size_t inlen = input ? strlen(input) : 0, written = 0, got = 0;
	long long deadline = now_ms() + RUN_TIMEOUT_MS;
	int child_errno = 0, status = 0, rc;
	pid_t pid = -1;
	ssize_t n;

	output[0] = '\0';
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(rep, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		/* Child: only async-signal-safe calls from here on. */
		int e;

		if (dup2(in[0], 0) < 0 || dup2(outp[1], 1) < 0 || dup2(outp[1], 2) < 0)
			_exit(127);
		signal(SIGPIPE, SIG_DFL);
		execvp(argv[0], argv);
		e = errno;
		if (write(rep[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	close(rep[1]);
	in[0] = outp[1] = rep[1] = -1;
	/* The report pipe closes on a successful exec, or carries execvp's errno. */
	do
		n = read(rep[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(child_errno)) {
		waitpid(pid, &status, 0);
		pid = -1;
		rc = -child_errno;
		goto out;
	}
	if (inlen == 0) {
		close(in[1]);
		in[1] = -1;
	} else {
		fcntl(in[1], F_SETFL, O_NONBLOCK);
	}
	/* Feed stdin and drain stdout/stderr together, so neither side can block the other. */
	while (outp[0] >= 0) {
		struct pollfd pfd[2] = {{.fd = outp[0], .events = POLLIN},
					{.fd = in[1], .events = POLLOUT}};
		long long left = deadline - now_ms();

		if (left <= 0) {
			rc = -ETIMEDOUT;
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			pid = -1;
			goto out;
		}
		if (poll(pfd, in[1] >= 0 ? 2 : 1, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (in[1] >= 0 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			n = write(in[1], input + written, inlen - written);
			if (n > 0)
				written += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == inlen) {
				close(in[1]); /* done, or the child stopped reading (EPIPE) */
				in[1] = -1;
			}
		}
		if (pfd[0].revents & (POLLIN | POLLERR | POLLHUP)) {
			char buf[512];

			n = read(outp[0], buf, sizeof(buf));
			if (n > 0) {
				size_t keep = (size_t)n;
				if (got + keep > outlen - 1)
					keep = outlen - 1 - got;
				memcpy(output + got, buf, keep);
				got += keep;
				output[got] = '\0';
			} else if (n == 0 || errno != EINTR) {
				close(outp[0]);
				outp[0] = -1;
			}
		}
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	pid = -1;
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (outp[i] >= 0)
			close(outp[i]);
		if (rep[i] >= 0)
			close(rep[i]);
	}
	/* Multi-line tool output goes into one log field: keep it on one line. */
	for (char *p = output; *p; p++) {
		if (*p == '\n' && p[1])
			*p = ' ';
	}
	got = strlen(output);
	if (got && output[got - 1] == '\n')
		output[got - 1] = '\0';
	return rc;
}

static bool looks_like_permission_error(const char *out)
{
	return strstr(out, "Permission denied") || strstr(out, "you must be root") ||
	       strstr(out, "Operation not permitted");
}

static bool ipv6_in_kernel(void)
{
	return access("/proc/net/if_inet6", F_OK) == 0;
}

/*
 * Whether the if_inet6 table at path (the kernel's /proc/net/if_inet6, per network
 * namespace: "<32 hex> <ifindex> <prefixlen> <scope> <flags> <name>" per line) lists an
 * address other clients can reach: scope global (0x00, which includes unique-local
 * fd00::/8) or site (0x40); not loopback (0x10), link-local (0x20) or v4-compat. The
 * first such address goes into addr (INET6_ADDRSTRLEN-ish, hex as the kernel writes it)
 * with its interface. Returns 1 yes, 0 no (or no such file: no IPv6 at all).
 */
TESTABLE int sc_intercept_global_ipv6(const char *path, char *addr, size_t addrlen)
{
	FILE *f = fopen(path, "re");
	char line[256], hex[33], ifname[33];
	unsigned idx, plen, scope, flags;
	int found = 0;

	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%32s %x %x %x %x %32s", hex, &idx, &plen, &scope, &flags,
			   ifname) != 6 ||
		    strlen(hex) != 32)
			continue;
		if (scope == 0x00 || scope == 0x40) {
			found = 1;
			snprintf(addr, addrlen, "%.4s:%.4s:%.4s:%.4s:%.4s:%.4s:%.4s:%.4s on %s",
				 hex, hex + 4, hex + 8, hex + 12, hex + 16, hex + 20, hex + 24,
				 hex + 28, ifname);
		}
	}
	fclose(f);
	return found;
}

enum install_result { INSTALL_OK = 0, INSTALL_FAILED = 1, INSTALL_UNAVAILABLE = 2 };

/*
 * Install the rules for one family. Logs every failure with the fix, except that it
 * returns INSTALL_UNAVAILABLE (IPv6 only) with the reason in why, unlogged, when the
 * family is missing from this kernel or image: the caller decides whether that is fatal.
 */
static enum install_result install_family(const struct init_opts *o, bool ipv6, char *why,
					  size_t whylen)
{
	char *check_argv[] = {ipv6 ? "ip6tables" : "iptables",
			      "-w",
			      "5",
			      "-t",
			      "nat",
			      "-C",
			      "PREROUTING",
			      "-p",
			      "tcp",
			      "-j",
			      CHAIN,
			      NULL};
	char *out_check_argv[] = {ipv6 ? "ip6tables" : "iptables",
				  "-w",
				  "5",
				  "-t",
				  "nat",
				  "-C",
				  "OUTPUT",
				  "-p",
				  "tcp",
				  "-j",
				  SC_OUT_CHAIN,
				  NULL};
	char *restore_argv[] = {ipv6 ? "ip6tables-restore" : "iptables-restore", "--noflush", NULL};
	const char *fam = ipv6 ? "ipv6" : "ipv4";
	char output[RUN_OUTPUT_MAX];
	char *rules = NULL;
	bool have_jump, have_out_jump = false;
	enum install_result res = INSTALL_FAILED;
	int rc;

	/* Exit 0 means the jump is already there; anything else, let the restore decide. */
	have_jump = run_with_input(check_argv, NULL, output, sizeof(output)) == 0;
	if (o->out.enabled)
		have_out_jump = run_with_input(out_check_argv, NULL, output, sizeof(output)) == 0;
	rules = render_rules(o, ipv6, !have_jump, !have_out_jump);
	if (!rules) {
		log_error("init_failed", "out of memory", "{s:s}", "family", fam);
		goto out;
	}
	rc = run_with_input(restore_argv, rules, output, sizeof(output));
	if (rc == 0) {
		res = INSTALL_OK;
		goto out;
	}
	if (rc == -ENOENT) {
		if (ipv6) {
			res = INSTALL_UNAVAILABLE;
			snprintf(why, whylen, "ip6tables-restore is not in PATH (%s)",
				 getenv("PATH") ? getenv("PATH") : "");
			goto out;
		}
		log_error("init_failed",
			  "iptables-restore not found in PATH: install the iptables package in "
			  "the init image (or put iptables-restore on PATH)",
			  "{s:s, s:s}", "family", fam, "path",
			  getenv("PATH") ? getenv("PATH") : "");
		goto out;
	}
	if (rc < 0) {
		log_error("init_failed", "could not run the iptables restore command",
			  "{s:s, s:s, s:s}", "family", fam, "command", restore_argv[0], "error",
			  strerror(-rc));
		goto out;
	}
	if (looks_like_permission_error(output)) {
		log_error("init_failed",
			  "permission denied changing iptables: the init container must run as "
			  "root with the NET_ADMIN and NET_RAW capabilities",
			  "{s:s, s:s, s:i, s:s}", "family", fam, "command", restore_argv[0], "exit",
			  rc, "output", output);
		goto out;
	}
	if (ipv6 && (!ipv6_in_kernel() || strstr(output, "does not exist") ||
		     strstr(output, "not supported"))) {
		res = INSTALL_UNAVAILABLE;
		snprintf(why, whylen, "the IPv6 nat table cannot be used: %s",
			 output[0] ? output : "no IPv6 in this kernel");
		goto out;
	}
	log_error("init_failed", "the iptables restore command failed; no rule was changed",
		  "{s:s, s:s, s:i, s:s}", "family", fam, "command", restore_argv[0], "exit", rc,
		  "output", output);
out:
	free(rules);
	return res;
}

/* The listed ports as "8080,9090" (or "*"), for the log. New string or NULL. */
static char *ports_summary(const struct init_opts *o)
{
	char *data = NULL;
	size_t len = 0;
	FILE *t = open_memstream(&data, &len);
	bool bad;

	if (!t)
		return NULL;
	if (o->all_ports) {
		fputs("*", t);
	} else {
		bool first = true;
		for (unsigned p = 1; p <= 65535; p++) {
			if (bit_get(o->ports, p) && !bit_get(o->exclude, p) && p != o->proxy_port) {
				fprintf(t, "%s%u", first ? "" : ",", p);
				first = false;
			}
		}
	}
	bad = ferror(t) != 0;
	if (fclose(t) != 0 || bad) {
		free(data);
		return NULL;
	}
	return data;
}

static void init_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: grpcguard-sidecar init --ports 8080,9090|'*' [--proxy-port 15006]\n"
	    "                              [--proxy-uid 1337] [--exclude-inbound-ports L]\n"
	    "                              [--ipv4-only] [--dry-run]\n"
	    "                              [--outbound-port 15001] [--exclude-outbound-ports L]\n"
	    "                              [--exclude-outbound-cidrs L] [--no-outbound]\n"
	    "\n"
	    "Redirect inbound TCP to the listed ports to the sidecar's proxy port with\n"
	    "iptables REDIRECT rules in the nat chain " CHAIN " (IPv4 and IPv6).\n"
	    "Safe to re-run: the chain is replaced, the PREROUTING jump is not duplicated.\n"
	    "Needs root with NET_ADMIN and NET_RAW (the grpcguard-init container has them).\n"
	    "\n"
	    "  --ports LIST          ports to intercept, or '*' for every port except the\n"
	    "                        excluded ones and the sidecar's own (15006, 15020)\n"
	    "  --proxy-port N        where redirected connections go (default 15006)\n"
	    "  --proxy-uid N         the proxy's user id (default 1337); its own connections\n"
	    "                        are never redirected (RETURNed first in OUTPUT)\n"
	    "  --exclude-inbound-ports LIST\n"
	    "                        ports never redirected (default 15020; repeatable;\n"
	    "                        --exclude-ports is the old name)\n"
	    "  --ipv4-only           when the pod has a global IPv6 address and IPv6 cannot\n"
	    "                        be redirected (no ip6tables-restore, no IPv6 nat table),\n"
	    "                        warn and go on instead of failing: only for clusters\n"
	    "                        where no client reaches the pod over IPv6\n"
	    "  --outbound-port N     outbound capture: the app's outgoing TCP goes to this\n"
	    "                        sidecar port (default 15001), except the proxy's uid,\n"
	    "                        loopback and TCP port 53 (chain " SC_OUT_CHAIN ")\n"
	    "  --exclude-outbound-ports LIST  destination ports never captured\n"
	    "  --exclude-outbound-cidrs LIST  destinations never captured (10.0.0.0/8,fd00::/8)\n"
	    "  --no-outbound         no outbound capture\n"
	    "  --dry-run             print the iptables-restore input for IPv4 and IPv6, change\n"
	    "                        nothing\n"
	    "  --help                this text\n"
	    "\n"
	    "Exit status: 0 installed, 1 iptables failed (missing binary, missing NET_ADMIN,\n"
	    "or IPv6 cannot be intercepted on a pod with a global IPv6 address), "
	    "2 bad command line.\n");
}

int sc_init_main(int argc, char **argv)
{
	struct init_opts *o = NULL;
	char err[256], why[RUN_OUTPUT_MAX + 64] = "", v6addr[96] = "";
	char *v4 = NULL, *v6 = NULL, *summary = NULL;
	enum install_result r4, r6;
	int rc;

	o = malloc(sizeof(*o));
	if (!o) {
		fprintf(stderr, "init: out of memory\n");
		return 1;
	}
	rc = parse_args(argc, argv, o, err, sizeof(err));
	if (rc == 1) {
		init_usage(stdout);
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		fprintf(stderr, "grpcguard-sidecar init: %s\n", err);
		rc = 2;
		goto out;
	}
	if (o->dry_run) {
		v4 = render_rules(o, false, true, true);
		v6 = render_rules(o, true, true, true);
		if (!v4 || !v6) {
			fprintf(stderr, "init: out of memory\n");
			rc = 1;
			goto out;
		}
		fputs(v4, stdout);
		fputs(v6, stdout);
		rc = fflush(stdout) == 0 ? 0 : 1;
		goto out;
	}
	/* A child that exits early must give us EPIPE on the pipe, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	summary = ports_summary(o);
	r4 = install_family(o, false, why, sizeof(why));
	if (r4 != INSTALL_OK) {
		rc = 1;
		goto out;
	}
	r6 = install_family(o, true, why, sizeof(why));
	if (r6 == INSTALL_FAILED) {
		rc = 1;
		goto out;
	}
	if (r6 == INSTALL_UNAVAILABLE) {
		/*
		 * Fail closed: a pod with an address IPv6 clients can reach and no IPv6 redirect
		 * would serve them with no policy at all. Without such an address nothing can
		 * arrive over IPv6, so a missing ip6tables is only worth a warning.
		 */
		if (sc_intercept_global_ipv6(IF_INET6_PATH, v6addr, sizeof(v6addr)) &&
		    !o->ipv4_only) {
			log_error(
			    "init_failed",
			    "the pod has a global IPv6 address but IPv6 traffic cannot be "
			    "redirected to the sidecar, so IPv6 clients would reach the app "
			    "with no policy: install ip6tables (with the ip6table_nat kernel "
			    "module) in the init image, or pass --ipv4-only (webhook config "
			    "ipv4Only, annotation grpcguard.io/ipv4-only) if IPv6 is not used",
			    "{s:s, s:s}", "ipv6_address", v6addr, "reason", why);
			rc = 1;
			goto out;
		}
		log_warn("init_ipv6_unavailable", "IPv6 traffic is not intercepted",
			 "{s:s, s:s, s:b}", "reason", why, "ipv6_address", v6addr[0] ? v6addr : "",
			 "ipv4_only", o->ipv4_only);
	}
	log_info("init_done", "inbound TCP redirect installed", "{s:s, s:s, s:i, s:i, s:b}",
		 "chain", CHAIN, "ports", summary ? summary : "", "proxy_port", (int)o->proxy_port,
		 "proxy_uid", (int)o->proxy_uid, "ipv6", r6 == INSTALL_OK);
	if (o->out.enabled)
		log_info("init_outbound_done", "outbound TCP capture installed",
			 "{s:s, s:i, s:i, s:i}", "chain", SC_OUT_CHAIN, "outbound_port",
			 (int)o->out.port, "excluded_cidrs", (int)o->out.ncidrs, "proxy_uid",
			 (int)o->proxy_uid);
	rc = 0;
out:
	free(summary);
	free(v4);
	free(v6);
	free(o);
	return rc;
}

/* ---- original destination --------------------------------------------------------- */

/*
 * IPv4 clients of a dual-stack [::] listener arrive as v4-mapped IPv6 sockets, but their
 * conntrack entry is IPv4: ask with SOL_IP and answer with an AF_INET address.
 */
int sc_original_dst(int fd, struct sockaddr_storage *out)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct sockaddr_in6 *l6 = (struct sockaddr_in6 *)&local;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
		return -errno;
	if (local.ss_family == AF_INET ||
	    (local.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&l6->sin6_addr))) {
		struct sockaddr_in dst;
		socklen_t dlen = sizeof(dst);
		struct in_addr laddr;
		in_port_t lport;

		memset(&dst, 0, sizeof(dst));
		if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &dst, &dlen) < 0)
			return errno == ENOPROTOOPT ? -ENOENT : -errno; /* no conntrack at all */
		if (local.ss_family == AF_INET) {
			laddr = ((struct sockaddr_in *)&local)->sin_addr;
			lport = ((struct sockaddr_in *)&local)->sin_port;
		} else {
			memcpy(&laddr, &l6->sin6_addr.s6_addr[12], 4);
			lport = l6->sin6_port;
		}
		/* Tracked but not NATed: the "original" destination is ourselves. */
		if (dst.sin_port == lport && dst.sin_addr.s_addr == laddr.s_addr)
			return -ENOENT;
		memset(out, 0, sizeof(*out));
		memcpy(out, &dst, sizeof(dst));
		return 0;
	}
	if (local.ss_family == AF_INET6) {
		struct sockaddr_in6 dst;
		socklen_t dlen = sizeof(dst);

		memset(&dst, 0, sizeof(dst));
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &dst, &dlen) < 0)
			return errno == ENOPROTOOPT ? -ENOENT : -errno;
		if (dst.sin6_port == l6->sin6_port &&
		    memcmp(&dst.sin6_addr, &l6->sin6_addr, sizeof(dst.sin6_addr)) == 0)
			return -ENOENT;
		memset(out, 0, sizeof(*out));
		memcpy(out, &dst, sizeof(dst));
		return 0;
	}
	return -EAFNOSUPPORT;
}

bool sc_addr_is_loopback(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)a;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(in6) ||
		       (IN6_IS_ADDR_V4MAPPED(in6) && in6->s6_addr[12] == 127);
	}
	return false;
}

/* Whether the address parts of a and b (AF_INET, AF_INET6, v4-mapped) are one address. */
static bool same_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	const uint8_t *pa, *pb;
	size_t la, lb;

	if (a->sa_family == AF_INET) {
		pa = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
		la = 4;
	} else if (a->sa_family == AF_INET6) {
		pa = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
		la = 16;
	} else {
		return false;
	}
	if (b->sa_family == AF_INET) {
		pb = (const uint8_t *)&((const struct sockaddr_in *)b)->sin_addr;
		lb = 4;
	} else if (b->sa_family == AF_INET6) {
		pb = ((const struct sockaddr_in6 *)b)->sin6_addr.s6_addr;
		lb = 16;
	} else {
		return false;
	}
	/* An IPv4 peer of a dual-stack socket: compare the mapped IPv4 part. */
	if (la == 16 && lb == 4 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)pa)) {
		pa += 12;
		la = 4;
	} else if (la == 4 && lb == 16 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)pb)) {
		pb += 12;
		lb = 4;
	}
	return la == lb && memcmp(pa, pb, la) == 0;
}

bool sc_addr_is_own(int fd, const struct sockaddr_storage *a)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	struct ifaddrs *ifs = NULL;
	bool own = false;

	if (fd >= 0 && getsockname(fd, (struct sockaddr *)&local, &llen) == 0 &&
	    same_addr((const struct sockaddr *)&local, (const struct sockaddr *)a))
		return true;
	if (getifaddrs(&ifs) != 0)
		return false;
	for (struct ifaddrs *i = ifs; i && !own; i = i->ifa_next)
		own = i->ifa_addr && same_addr(i->ifa_addr, (const struct sockaddr *)a);
	freeifaddrs(ifs);
	return own;
}

/* ---- which ports are judged (for /policy) ----------------------------------------------- */

/*
 * Add {"port": N, "reason": why} to arr for each port of the comma list s (NULL or empty:
 * none) not yet in seen. Entries that are not ports are skipped: the env comes from the
 * injector, and /policy shows what it says, never fails over it.
 */
static void add_excluded(json_t *arr, uint8_t *seen, const char *s, const char *why)
{
	while (s && *s) {
		char item[16];
		size_t n = strcspn(s, ",");
		unsigned port;

		if (n < sizeof(item)) {
			memcpy(item, s, n);
			item[n] = '\0';
			if (parse_uint(item + strspn(item, " "), 1, 65535, &port) == 0 &&
			    !bit_get(seen, port)) {
				bit_set(seen, port);
				json_array_append_new(
				    arr, json_pack("{s:i, s:s}", "port", (int)port, "reason", why));
			}
		}
		s += n;
		if (*s == ',')
			s++;
	}
}

json_t *sc_intercept_ports_json(unsigned listen_port, unsigned admin_port)
{
	const char *inbound = getenv("GRPCGUARD_INBOUND_PORTS");
	const char *exclude = getenv("GRPCGUARD_EXCLUDE_INBOUND_PORTS");
	const char *probes = getenv("GRPCGUARD_PROBE_PORTS");
	uint8_t *seen = calloc(65536 / 8, 1);
	json_t *o = NULL, *ex = json_array();
	char own[32];

	if (!seen || !ex)
		goto out;
	snprintf(own, sizeof(own), "%u,%u", listen_port, admin_port);
	add_excluded(ex, seen, own, "sidecar");
	add_excluded(ex, seen, probes, "probe");
	add_excluded(ex, seen, exclude, "annotation");
	o = json_pack("{s:s?, s:s, s:s, s:O}", "intercepted", inbound, "source",
		      inbound ? "GRPCGUARD_INBOUND_PORTS (set by the injector)"
			      : "unknown: GRPCGUARD_INBOUND_PORTS is not set (not injected?)",
		      "not_intercepted",
		      !inbound			  ? "unknown"
		      : strcmp(inbound, "*") == 0 ? "only the excluded ports"
						  : "every port not listed in intercepted",
		      "excluded", ex);
	if (o && !inbound)
		json_object_set_new(o, "intercepted", json_null());
out:
	json_decref(ex);
	free(seen);
	return o;
}
