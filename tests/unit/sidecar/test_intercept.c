/*
 * sidecar/intercept: the iptables-restore text init generates (a pure function of the
 * command line), init's exit codes, and sc_original_dst() — on plain sockets, and on
 * really redirected IPv4/IPv6 connections inside a private network namespace (skipped
 * with a message where the machine does not allow one).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sidecar/intercept.h"
#include "tests/unit/runner.h"

int sc_intercept_rules(int argc, char **argv, bool ipv6, bool with_jump, char **out, char *err,
		       size_t errlen); /* intercept.c, GG_TESTING only */
int sc_intercept_global_ipv6(const char *path, char *addr, size_t addrlen);

#define ARGV(...) ((char *[]){"init", __VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){"init", __VA_ARGS__}) / sizeof(char *)))

static char *rules(int argc, char **argv, bool ipv6, bool with_jump)
{
	char err[256] = "", *out = NULL;
	int rc = sc_intercept_rules(argc, argv, ipv6, with_jump, &out, err, sizeof(err));
	ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
	return out;
}

/* The error text for a command line that must be rejected. */
static void expect_bad(int argc, char **argv, const char *needle)
{
	char err[256] = "", *out = NULL;
	int rc = sc_intercept_rules(argc, argv, false, true, &out, err, sizeof(err));
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err, needle), "error \"%s\" lacks \"%s\"", err, needle);
}

START_TEST(test_rules_listed_ports)
{
	/* Inbound only here (--no-outbound); test_rules_outbound covers the OUTPUT chain. */
	char *t = rules(ARGC("--ports", "9090, 8080,8080", "--no-outbound"),
			ARGV("--ports", "9090, 8080,8080", "--no-outbound"), false, true);
	ck_assert_str_eq(t,
			 "# grpcguard-sidecar init (iptables-restore --noflush): inbound TCP -> "
			 "proxy port 15006\n"
			 "*nat\n"
			 ":GRPCGUARD_INBOUND - [0:0]\n"
			 "-A GRPCGUARD_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15006\n"
			 "-A GRPCGUARD_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15006\n"
			 "-A PREROUTING -p tcp -j GRPCGUARD_INBOUND\n"
			 "COMMIT\n");
	free(t);
	/* Without the jump (already installed), for IPv6, another proxy port. */
	t = rules(ARGC("--ports", "8080", "--proxy-port", "16000", "--no-outbound"),
		  ARGV("--ports", "8080", "--proxy-port", "16000", "--no-outbound"), true, false);
	ck_assert_str_eq(t,
			 "# grpcguard-sidecar init (ip6tables-restore --noflush): inbound TCP -> "
			 "proxy port 16000\n"
			 "*nat\n"
			 ":GRPCGUARD_INBOUND - [0:0]\n"
			 "-A GRPCGUARD_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 16000\n"
			 "COMMIT\n");
	free(t);
}
END_TEST

START_TEST(test_rules_exclusions)
{
	/* The proxy port and the (default) excluded admin port are never redirected. */
	char *t = rules(ARGC("--ports", "15006,15020,50051"), ARGV("--ports", "15006,15020,50051"),
			false, true);
	ck_assert_ptr_null(strstr(t, "--dport 15006"));
	ck_assert_ptr_null(strstr(t, "--dport 15020"));
	ck_assert_ptr_nonnull(strstr(t, "--dport 50051 -j REDIRECT --to-ports 15006\n"));
	free(t);
	t = rules(ARGC("--ports", "8080,9090", "--exclude-ports", "9090"),
		  ARGV("--ports", "8080,9090", "--exclude-ports", "9090"), false, true);
	ck_assert_ptr_null(strstr(t, "9090"));
	ck_assert_ptr_nonnull(strstr(t, "--dport 8080"));
	free(t);
	/* An empty list intercepts nothing but still (re)creates the empty chain. */
	t = rules(ARGC("--ports", "", "--no-outbound"), ARGV("--ports", "", "--no-outbound"), false,
		  true);
	ck_assert_ptr_null(strstr(t, "REDIRECT"));
	ck_assert_ptr_nonnull(strstr(t, ":GRPCGUARD_INBOUND - [0:0]\n"));
	free(t);
}
END_TEST

START_TEST(test_rules_all_ports)
{
	char *t = rules(ARGC("--ports", "*", "--no-outbound"),
			ARGV("--ports", "*", "--no-outbound"), false, true);
	ck_assert_str_eq(t, "# grpcguard-sidecar init (iptables-restore --noflush): inbound TCP -> "
			    "proxy port 15006\n"
			    "*nat\n"
			    ":GRPCGUARD_INBOUND - [0:0]\n"
			    "-A GRPCGUARD_INBOUND -p tcp --dport 15006 -j RETURN\n"
			    "-A GRPCGUARD_INBOUND -p tcp --dport 15020 -j RETURN\n"
			    "-A GRPCGUARD_INBOUND -p tcp -j REDIRECT --to-ports 15006\n"
			    "-A PREROUTING -p tcp -j GRPCGUARD_INBOUND\n"
			    "COMMIT\n");
	free(t);
	/* User exclusions add to the sidecar's own ports, they do not replace them. */
	t = rules(ARGC("--ports", " * ", "--exclude-ports", "22,9901", "--proxy-port", "15001",
		       "--no-outbound"),
		  ARGV("--ports", " * ", "--exclude-ports", "22,9901", "--proxy-port", "15001",
		       "--no-outbound"),
		  false, true);
	const char *order[] = {"--dport 22 -j RETURN",	  "--dport 9901 -j RETURN",
			       "--dport 15001 -j RETURN", "--dport 15006 -j RETURN",
			       "--dport 15020 -j RETURN", "-p tcp -j REDIRECT --to-ports 15001"};
	const char *pos = t;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		pos = strstr(pos, order[i]);
		ck_assert_msg(pos != NULL, "missing or out of order: %s", order[i]);
	}
	free(t);
}
END_TEST

START_TEST(test_rules_bad_input)
{
	expect_bad(ARGC("--ports", "80x"), ARGV("--ports", "80x"), "\"80x\" is not a port");
	expect_bad(ARGC("--ports", "0"), ARGV("--ports", "0"), "\"0\" is not a port");
	expect_bad(ARGC("--ports", "65536"), ARGV("--ports", "65536"), "65536");
	expect_bad(ARGC("--ports", "-1"), ARGV("--ports", "-1"), "\"-1\"");
	expect_bad(ARGC("--ports", "8080,"), ARGV("--ports", "8080,"), "trailing comma");
	expect_bad(ARGC("--ports", "8080,,9090"), ARGV("--ports", "8080,,9090"), "empty");
	expect_bad(ARGC("--ports", "*,8080"), ARGV("--ports", "*,8080"), "\"*\"");
	expect_bad(ARGC("--ports", "8080", "--exclude-ports", "*"),
		   ARGV("--ports", "8080", "--exclude-ports", "*"), "--exclude-ports");
	expect_bad(ARGC("--dry-run"), ARGV("--dry-run"), "--ports is required");
	expect_bad(ARGC("--ports", "1", "--proxy-port", "0"),
		   ARGV("--ports", "1", "--proxy-port", "0"), "--proxy-port");
	expect_bad(ARGC("--ports", "1", "--proxy-uid", "root"),
		   ARGV("--ports", "1", "--proxy-uid", "root"), "--proxy-uid");
	expect_bad(ARGC("--ports", "1", "--frobnicate"), ARGV("--ports", "1", "--frobnicate"),
		   "unknown option --frobnicate");
	expect_bad(ARGC("--ports", "1", "extra"), ARGV("--ports", "1", "extra"), "\"extra\"");
	expect_bad(ARGC("--ports"), ARGV("--ports"), "--ports needs a value");
}
END_TEST

/* Outbound capture: on by default, in the same transaction as the inbound chain. */
START_TEST(test_rules_outbound)
{
	char *t = rules(ARGC("--ports", "8080"), ARGV("--ports", "8080"), false, true);
	ck_assert_str_eq(t,
			 "# grpcguard-sidecar init (iptables-restore --noflush): inbound TCP -> "
			 "proxy port 15006\n"
			 "*nat\n"
			 ":GRPCGUARD_INBOUND - [0:0]\n"
			 ":GRPCGUARD_OUTBOUND - [0:0]\n"
			 "-A GRPCGUARD_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15006\n"
			 "-A PREROUTING -p tcp -j GRPCGUARD_INBOUND\n"
			 "-A GRPCGUARD_OUTBOUND -m owner --uid-owner 1337 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -o lo -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -d 127.0.0.0/8 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -p tcp --dport 53 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT --to-ports 15001\n"
			 "-A OUTPUT -p tcp -j GRPCGUARD_OUTBOUND\n"
			 "COMMIT\n");
	free(t);
	/* IPv6, jumps already installed, another uid and port, exclusions per family. */
	t = rules(ARGC("--ports", "8080", "--proxy-uid", "2000", "--outbound-port", "16001",
		       "--exclude-outbound-ports", "3306, 53,5432", "--exclude-outbound-cidrs",
		       "10.96.0.0/12, fd00:10::/64,192.168.1.7,2001:db8::1"),
		  ARGV("--ports", "8080", "--proxy-uid", "2000", "--outbound-port", "16001",
		       "--exclude-outbound-ports", "3306, 53,5432", "--exclude-outbound-cidrs",
		       "10.96.0.0/12, fd00:10::/64,192.168.1.7,2001:db8::1"),
		  true, false);
	ck_assert_str_eq(t,
			 "# grpcguard-sidecar init (ip6tables-restore --noflush): inbound TCP -> "
			 "proxy port 15006\n"
			 "*nat\n"
			 ":GRPCGUARD_INBOUND - [0:0]\n"
			 ":GRPCGUARD_OUTBOUND - [0:0]\n"
			 "-A GRPCGUARD_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15006\n"
			 "-A GRPCGUARD_OUTBOUND -m owner --uid-owner 2000 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -o lo -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -d ::1/128 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -p tcp --dport 53 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -p tcp --dport 3306 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -p tcp --dport 5432 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -d fd00:10::/64 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -d 2001:db8::1/128 -j RETURN\n"
			 "-A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT --to-ports 16001\n"
			 "COMMIT\n");
	free(t);
	/* The same command line for IPv4 gets the IPv4 blocks only. */
	t = rules(ARGC("--ports", "8080", "--exclude-outbound-cidrs",
		       "10.96.0.0/12, fd00:10::/64,192.168.1.7"),
		  ARGV("--ports", "8080", "--exclude-outbound-cidrs",
		       "10.96.0.0/12, fd00:10::/64,192.168.1.7"),
		  false, true);
	ck_assert_ptr_nonnull(strstr(t, "-A GRPCGUARD_OUTBOUND -d 10.96.0.0/12 -j RETURN\n"
					"-A GRPCGUARD_OUTBOUND -d 192.168.1.7/32 -j RETURN\n"
					"-A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT"));
	ck_assert_ptr_null(strstr(t, "fd00"));
	free(t);
	/* --no-outbound: neither the chain nor the OUTPUT jump. */
	t = rules(ARGC("--ports", "8080", "--no-outbound"),
		  ARGV("--ports", "8080", "--no-outbound"), false, true);
	ck_assert_ptr_null(strstr(t, "OUTBOUND"));
	ck_assert_ptr_null(strstr(t, "OUTPUT"));
	free(t);
}
END_TEST

START_TEST(test_rules_outbound_bad_input)
{
	expect_bad(ARGC("--ports", "1", "--outbound-port", "0"),
		   ARGV("--ports", "1", "--outbound-port", "0"),
		   "--outbound-port: \"0\" is not a port (1-65535)");
	expect_bad(ARGC("--ports", "1", "--outbound-port", "15006"),
		   ARGV("--ports", "1", "--outbound-port", "15006"),
		   "--outbound-port 15006 is also the inbound --proxy-port");
	expect_bad(ARGC("--ports", "1", "--exclude-outbound-ports", "3306,x"),
		   ARGV("--ports", "1", "--exclude-outbound-ports", "3306,x"),
		   "--exclude-outbound-ports: \"x\" is not a port");
	expect_bad(ARGC("--ports", "1", "--exclude-outbound-ports", "*"),
		   ARGV("--ports", "1", "--exclude-outbound-ports", "*"),
		   "--exclude-outbound-ports");
	expect_bad(ARGC("--ports", "1", "--exclude-outbound-cidrs", "10.0.0.0/33"),
		   ARGV("--ports", "1", "--exclude-outbound-cidrs", "10.0.0.0/33"),
		   "--exclude-outbound-cidrs: \"10.0.0.0/33\" is not an IP address or CIDR block");
	expect_bad(ARGC("--ports", "1", "--exclude-outbound-cidrs", "10.0.0.0/8,"),
		   ARGV("--ports", "1", "--exclude-outbound-cidrs", "10.0.0.0/8,"),
		   "--exclude-outbound-cidrs: trailing comma");
	expect_bad(ARGC("--ports", "1", "--exclude-outbound-cidrs", "10.0.0.0/8,,b"),
		   ARGV("--ports", "1", "--exclude-outbound-cidrs", "10.0.0.0/8,,b"), "empty");
	expect_bad(ARGC("--ports", "1", "--no-outbound=yes"),
		   ARGV("--ports", "1", "--no-outbound=yes"), "--no-outbound");
	expect_bad(ARGC("--ports", "1", "--outbound-port"), ARGV("--ports", "1", "--outbound-port"),
		   "--outbound-port needs a value");
	/* More than 64 blocks: merge them. */
	static char many[64 * 16 + 32];
	size_t n = 0;
	for (int i = 0; i < 65; i++)
		n +=
		    (size_t)snprintf(many + n, sizeof(many) - n, "%s10.%d.0.0/16", i ? "," : "", i);
	expect_bad(ARGC("--ports", "1", "--exclude-outbound-cidrs", many),
		   ARGV("--ports", "1", "--exclude-outbound-cidrs", many), "more than 64 entries");
}
END_TEST

/* Run sc_init_main with stdout and stderr captured into files; returns its exit code. */
static int run_init(int argc, char **argv, char *out, size_t outlen)
{
	FILE *o = tmpfile(), *e = tmpfile();
	int so = dup(1), se = dup(2), rc;
	size_t n;

	fflush(stdout);
	dup2(fileno(o), 1);
	dup2(fileno(e), 2);
	rc = sc_init_main(argc, argv);
	fflush(stdout);
	dup2(so, 1);
	dup2(se, 2);
	close(so);
	close(se);
	rewind(o);
	n = fread(out, 1, outlen - 1, o);
	out[n] = '\0';
	fclose(o);
	fclose(e);
	return rc;
}

START_TEST(test_init_main_exit_codes)
{
	static char out[65536];

	ck_assert_int_eq(run_init(ARGC("--help"), ARGV("--help"), out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "usage: grpcguard-sidecar init"));
	ck_assert_int_eq(run_init(ARGC("--nope"), ARGV("--nope"), out, sizeof(out)), 2);
	ck_assert_int_eq(run_init(ARGC("--ports", "x"), ARGV("--ports", "x"), out, sizeof(out)), 2);
	/* --dry-run needs no privilege and prints both families. */
	ck_assert_int_eq(run_init(ARGC("--ports", "8080", "--dry-run"),
				  ARGV("--ports", "8080", "--dry-run"), out, sizeof(out)),
			 0);
	char *v4 = strstr(out, "(iptables-restore --noflush)");
	char *v6 = strstr(out, "(ip6tables-restore --noflush)");
	ck_assert_ptr_nonnull(v4);
	ck_assert_ptr_nonnull(v6);
	ck_assert(v4 < v6);
	ck_assert_ptr_nonnull(strstr(v6, "--dport 8080 -j REDIRECT --to-ports 15006\n"));
}
END_TEST

START_TEST(test_original_dst_not_redirected)
{
	struct sockaddr_storage ss;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l, c, s, sv[2];

	/* Not a socket, not TCP/IP. */
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(sc_original_dst(fds[0], &ss), -ENOTSOCK);
	close(fds[0]);
	close(fds[1]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(sc_original_dst(sv[0], &ss), -EAFNOSUPPORT);
	close(sv[0]);
	close(sv[1]);
	/* A direct loopback connection was not redirected. */
	l = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	s = accept(l, NULL, NULL);
	ck_assert_int_ge(s, 0);
	ck_assert_int_eq(sc_original_dst(s, &ss), -ENOENT);
	close(s);
	close(c);
	close(l);
}
END_TEST

/* ---- in a private network namespace ------------------------------------------------ */

#define SKIP 77

static int sh(const char *cmd)
{
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*
 * Connect to [dst]:8080 (redirected by an OUTPUT rule to the listener on lport) and
 * check what sc_original_dst() says on the accepted socket. Returns 0 or a failure line.
 */
static const char *check_redirect(int lfamily, const char *laddr, int cfamily, const char *caddr,
				  int want_family)
{
	static char why[160];
	struct sockaddr_storage ls = {0}, cs = {0}, od;
	socklen_t len;
	int l = -1, c = -1, s = -1, off = 0, one = 1, rc;
	const char *fail = NULL;

	if (lfamily == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ls;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(15006);
		inet_pton(AF_INET6, laddr, &a->sin6_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ls;
		a->sin_family = AF_INET;
		a->sin_port = htons(15006);
		inet_pton(AF_INET, laddr, &a->sin_addr);
		len = sizeof(*a);
	}
	l = socket(lfamily, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfamily == AF_INET6)
		setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	if (bind(l, (struct sockaddr *)&ls, len) < 0 || listen(l, 4) < 0) {
		fail = "listen failed";
		goto out;
	}
	if (cfamily == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&cs;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(8080);
		inet_pton(AF_INET6, caddr, &a->sin6_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&cs;
		a->sin_family = AF_INET;
		a->sin_port = htons(8080);
		inet_pton(AF_INET, caddr, &a->sin_addr);
		len = sizeof(*a);
	}
	c = socket(cfamily, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&cs, len) < 0) {
		fail = "connect to :8080 was not redirected";
		goto out;
	}
	s = accept(l, NULL, NULL);
	rc = sc_original_dst(s, &od);
	if (rc < 0) {
		snprintf(why, sizeof(why), "sc_original_dst: %s", strerror(-rc));
		fail = why;
		goto out;
	}
	if (od.ss_family != want_family) {
		fail = "wrong family";
		goto out;
	}
	char text[INET6_ADDRSTRLEN] = "";
	unsigned port;
	if (od.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&od)->sin6_addr, text, sizeof(text));
		port = ntohs(((struct sockaddr_in6 *)&od)->sin6_port);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&od)->sin_addr, text, sizeof(text));
		port = ntohs(((struct sockaddr_in *)&od)->sin_port);
	}
	if (port != 8080 || strcmp(text, caddr) != 0) {
		snprintf(why, sizeof(why), "original dst %s port %u, want %s port 8080", text, port,
			 caddr);
		fail = why;
	}
out:
	if (s >= 0)
		close(s);
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	return fail;
}

/* Child body: returns 0, SKIP or 1 (with a line on stderr). */
static int in_netns(int (*body)(void))
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0) {
			fprintf(stderr, "SKIP: cannot create a network namespace: %s\n",
				strerror(errno));
			_exit(SKIP);
		}
		if (sh("ip link set lo up") != 0) {
			fprintf(stderr, "SKIP: cannot bring up lo in the namespace\n");
			_exit(SKIP);
		}
		_exit(body());
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static int body_original_dst(void)
{
	const char *fail;

	if (sh("iptables -t nat -A OUTPUT -p tcp --dport 8080 -j REDIRECT --to-ports 15006 "
	       ">/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIP: iptables unusable here\n");
		return SKIP;
	}
	fail = check_redirect(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1", AF_INET);
	if (fail) {
		fprintf(stderr, "ipv4: %s\n", fail);
		return 1;
	}
	/* An IPv4 client of a dual-stack [::] listener: a v4-mapped socket. */
	fail = check_redirect(AF_INET6, "::", AF_INET, "127.0.0.1", AF_INET);
	if (fail) {
		fprintf(stderr, "v4-mapped: %s\n", fail);
		return 1;
	}
	if (sh("ip6tables -t nat -A OUTPUT -p tcp --dport 8080 -j REDIRECT --to-ports 15006 "
	       ">/dev/null 2>&1") != 0) {
		fprintf(stderr, "no ip6tables nat here: IPv6 part skipped\n");
		return 0;
	}
	fail = check_redirect(AF_INET6, "::1", AF_INET6, "::1", AF_INET6);
	if (fail) {
		fprintf(stderr, "ipv6: %s\n", fail);
		return 1;
	}
	return 0;
}

START_TEST(test_original_dst_redirected)
{
	int rc = in_netns(body_original_dst);
	if (rc == SKIP)
		return;
	ck_assert_int_eq(rc, 0);
}
END_TEST

/* Count lines of `cmd` output that equal line. */
static int count_lines(const char *cmd, const char *line)
{
	char buf[512];
	int n = 0;
	FILE *p = popen(cmd, "r");

	if (!p)
		return -1;
	while (fgets(buf, sizeof(buf), p)) {
		buf[strcspn(buf, "\n")] = '\0';
		n += strcmp(buf, line) == 0;
	}
	pclose(p);
	return n;
}

static int body_init_twice(void)
{
	char *a1[] = {"init", "--ports", "8080,9090", NULL};
	char *a2[] = {"init", "--ports", "8080", NULL};
	static const char *tools[] = {"iptables-save -t nat 2>/dev/null",
				      "ip6tables-save -t nat 2>/dev/null"};

	if (sh("iptables-restore --version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "SKIP: no iptables-restore\n");
		return SKIP;
	}
	if (sc_init_main(3, a1) != 0 || sc_init_main(3, a2) != 0) {
		fprintf(stderr, "init failed\n");
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		int jumps = count_lines(tools[i], "-A PREROUTING -p tcp -j GRPCGUARD_INBOUND");
		int r8080 = count_lines(tools[i], "-A GRPCGUARD_INBOUND -p tcp -m tcp --dport 8080 "
						  "-j REDIRECT --to-ports 15006");
		int r9090 = count_lines(tools[i], "-A GRPCGUARD_INBOUND -p tcp -m tcp --dport 9090 "
						  "-j REDIRECT --to-ports 15006");
		if (i == 1 && jumps == 0 && r8080 == 0) {
			fprintf(stderr, "no IPv6 rules (IPv6 unavailable?)\n");
			continue;
		}
		if (jumps != 1 || r8080 != 1 || r9090 != 0) {
			fprintf(stderr, "%s: %d jumps, %d rules for 8080, %d for 9090\n", tools[i],
				jumps, r8080, r9090);
			return 1;
		}
		/* Outbound: one OUTPUT jump, one uid exemption, one REDIRECT after two runs. */
		int ojumps = count_lines(tools[i], "-A OUTPUT -p tcp -j GRPCGUARD_OUTBOUND");
		int ouid = count_lines(tools[i], "-A GRPCGUARD_OUTBOUND -m owner --uid-owner 1337 "
						 "-j RETURN");
		int oredir = count_lines(tools[i], "-A GRPCGUARD_OUTBOUND -p tcp -j REDIRECT "
						   "--to-ports 15001");
		if (ojumps != 1 || ouid != 1 || oredir != 1) {
			fprintf(stderr, "%s: %d OUTPUT jumps, %d uid rules, %d REDIRECT rules\n",
				tools[i], ojumps, ouid, oredir);
			return 1;
		}
	}
	return 0;
}

START_TEST(test_init_idempotent)
{
	int rc = in_netns(body_init_twice);
	if (rc == SKIP)
		return;
	ck_assert_int_eq(rc, 0);
}
END_TEST

/* Child: run init with stderr captured; exit 0 when it failed with exit 1 and said `want`. */
static int init_fails_saying(const char *want)
{
	char *argv[] = {"init", "--ports", "8080", NULL};
	char out[8192];
	FILE *e = tmpfile();
	int rc;
	size_t n;

	dup2(fileno(e), 2);
	rc = sc_init_main(3, argv);
	rewind(e);
	n = fread(out, 1, sizeof(out) - 1, e);
	out[n] = '\0';
	if (rc != 1 || !strstr(out, want)) {
		fprintf(stdout, "init exit %d, stderr: %s\n", rc, out);
		return 1;
	}
	return 0;
}

static int body_no_privilege(void)
{
	/* Losing root also drops NET_ADMIN; the namespace keeps the host's rules out of reach. */
	if (setresgid(1337, 1337, 1337) != 0 || setresuid(1337, 1337, 1337) != 0)
		return SKIP;
	return init_fails_saying("NET_ADMIN");
}

START_TEST(test_init_errors)
{
	pid_t pid;
	int st, rc;

	/* No iptables-restore on PATH: a clear error, exit 1 (nothing can be touched). */
	pid = fork();
	if (pid == 0) {
		setenv("PATH", "/nonexistent", 1);
		_exit(init_fails_saying("iptables-restore not found in PATH"));
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "missing binary not reported");
	/* Not root / no NET_ADMIN: permission denied, with the fix. */
	rc = in_netns(body_no_privilege);
	if (rc == SKIP)
		return;
	ck_assert_msg(rc == 0, "missing NET_ADMIN not reported");
}
END_TEST

START_TEST(test_exclude_inbound_ports_alias)
{
	/* The new name and the old one add up, and replace the default 15020 in list mode. */
	char *t = rules(ARGC("--ports", "8080,8081,9000,15020", "--exclude-inbound-ports", "8081",
			     "--exclude-ports", "9000"),
			ARGV("--ports", "8080,8081,9000,15020", "--exclude-inbound-ports", "8081",
			     "--exclude-ports", "9000"),
			false, false);
	ck_assert_ptr_nonnull(strstr(t, "--dport 8080 -j REDIRECT"));
	ck_assert_ptr_null(strstr(t, "--dport 8081 "));
	ck_assert_ptr_null(strstr(t, "--dport 9000 "));
	ck_assert_ptr_nonnull(strstr(t, "--dport 15020 -j REDIRECT"));
	free(t);
	/* With "*": RETURN rules for the excluded probe ports before the REDIRECT. */
	t = rules(ARGC("--ports", "*", "--exclude-inbound-ports", "8081,9000"),
		  ARGV("--ports", "*", "--exclude-inbound-ports", "8081,9000"), true, false);
	ck_assert_ptr_nonnull(strstr(t, "--dport 8081 -j RETURN\n-A GRPCGUARD_INBOUND -p tcp "
					"--dport 9000 -j RETURN\n"));
	ck_assert_ptr_nonnull(strstr(t, "--dport 15020 -j RETURN\n-A GRPCGUARD_INBOUND -p tcp -j "
					"REDIRECT --to-ports 15006\n"));
	free(t);
	expect_bad(ARGC("--ports", "*", "--exclude-inbound-ports", "80,x"),
		   ARGV("--ports", "*", "--exclude-inbound-ports", "80,x"),
		   "--exclude-inbound-ports: \"x\" is not a port");
	/* --ipv4-only takes no value and changes no rule. */
	t = rules(ARGC("--ports", "8080", "--ipv4-only"), ARGV("--ports", "8080", "--ipv4-only"),
		  true, true);
	ck_assert_ptr_nonnull(strstr(t, "--dport 8080 -j REDIRECT"));
	free(t);
}
END_TEST

static int global_v6(const char *table, char *addr, size_t addrlen)
{
	char path[] = "/tmp/gg-if_inet6.XXXXXX";
	int fd = mkstemp(path), rc;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, table, strlen(table)), (ssize_t)strlen(table));
	close(fd);
	addr[0] = '\0';
	rc = sc_intercept_global_ipv6(path, addr, addrlen);
	unlink(path);
	return rc;
}

START_TEST(test_global_ipv6)
{
	char addr[96];

	/* Loopback and link-local only: nothing reachable over IPv6. */
	ck_assert_int_eq(global_v6("00000000000000000000000000000001 01 80 10 80       lo\n"
				   "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n",
				   addr, sizeof(addr)),
			 0);
	/* A unique-local (scope global) address counts; so does a documentation one. */
	ck_assert_int_eq(global_v6("00000000000000000000000000000001 01 80 10 80       lo\n"
				   "fd000231000000000000000000000001 04 40 00 80     eth0\n",
				   addr, sizeof(addr)),
			 1);
	ck_assert_str_eq(addr, "fd00:0231:0000:0000:0000:0000:0000:0001 on eth0");
	ck_assert_int_eq(
	    global_v6("20010db8000000000000000000000005 02 40 00 00 net1\n", addr, sizeof(addr)),
	    1);
	/* Garbage lines are skipped; an absent file means no IPv6 at all. */
	ck_assert_int_eq(global_v6("nonsense\n\n 12 x\n", addr, sizeof(addr)), 0);
	ck_assert_int_eq(sc_intercept_global_ipv6("/nonexistent/if_inet6", addr, sizeof(addr)), 0);
}
END_TEST

START_TEST(test_loopback_addresses)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	static const struct {
		int family;
		const char *addr;
		bool loopback;
	} cases[] = {
	    {AF_INET, "127.0.0.1", true},
	    {AF_INET, "127.255.0.9", true},
	    {AF_INET, "10.231.0.1", false},
	    {AF_INET, "0.0.0.0", false},
	    {AF_INET6, "::1", true},
	    {AF_INET6, "::ffff:127.0.0.1", true},
	    {AF_INET6, "::ffff:10.0.0.1", false},
	    {AF_INET6, "fd00:231::1", false},
	    {AF_INET6, "::", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)cases[i].family;
		ck_assert_int_eq(inet_pton(cases[i].family, cases[i].addr,
					   cases[i].family == AF_INET ? (void *)&in->sin_addr
								      : (void *)&in6->sin6_addr),
				 1);
		ck_assert_msg(sc_addr_is_loopback(&ss) == cases[i].loopback, "%s: want %d",
			      cases[i].addr, cases[i].loopback);
	}
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert(!sc_addr_is_loopback(&ss));
}
END_TEST

/* Red team 2: the inbound proxy forwards only to this namespace's own addresses. */
START_TEST(test_own_addresses)
{
	static const struct {
		int family;
		const char *addr;
		bool own;
	} cases[] = {
	    {AF_INET, "127.0.0.1", true}, /* lo: every test machine has it */
	    {AF_INET6, "::ffff:127.0.0.1", true},
	    {AF_INET, "192.0.2.77", false}, /* TEST-NET-1: nobody's */
	    {AF_INET6, "2001:db8::77", false},
	    {AF_INET6, "::ffff:192.0.2.77", false},
	    {AF_INET, "0.0.0.0", false},
	    {AF_INET6, "::", false},
	};
	struct sockaddr_storage ss, bound;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t blen = sizeof(bound);
	int fd;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&ss, 0, sizeof(ss));
		ss.ss_family = (sa_family_t)cases[i].family;
		ck_assert_int_eq(inet_pton(cases[i].family, cases[i].addr,
					   cases[i].family == AF_INET ? (void *)&in->sin_addr
								      : (void *)&in6->sin6_addr),
				 1);
		ck_assert_msg(sc_addr_is_own(-1, &ss) == cases[i].own, "%s: want %d", cases[i].addr,
			      cases[i].own);
	}
	/* The fast path: the socket's own local address counts without getifaddrs. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	memset(&ss, 0, sizeof(ss));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, sizeof(*in)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&bound, &blen), 0);
	ck_assert(sc_addr_is_own(fd, &bound));
	close(fd);
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert(!sc_addr_is_own(-1, &ss));
}
END_TEST

START_TEST(test_ports_json)
{
	json_t *o;
	char *text;

	unsetenv("GRPCGUARD_INBOUND_PORTS");
	unsetenv("GRPCGUARD_EXCLUDE_INBOUND_PORTS");
	unsetenv("GRPCGUARD_PROBE_PORTS");
	o = sc_intercept_ports_json(15006, 15020);
	ck_assert_ptr_nonnull(o);
	ck_assert(json_is_null(json_object_get(o, "intercepted")));
	ck_assert_int_eq(json_array_size(json_object_get(o, "excluded")), 2);
	json_decref(o);

	setenv("GRPCGUARD_INBOUND_PORTS", "*", 1);
	setenv("GRPCGUARD_EXCLUDE_INBOUND_PORTS", "8081,9000,bogus,15020", 1);
	setenv("GRPCGUARD_PROBE_PORTS", "8081", 1);
	o = sc_intercept_ports_json(15006, 15020);
	ck_assert_ptr_nonnull(o);
	text = json_dumps(json_object_get(o, "excluded"), JSON_COMPACT);
	ck_assert_str_eq(text, "[{\"port\":15006,\"reason\":\"sidecar\"},"
			       "{\"port\":15020,\"reason\":\"sidecar\"},"
			       "{\"port\":8081,\"reason\":\"probe\"},"
			       "{\"port\":9000,\"reason\":\"annotation\"}]");
	free(text);
	ck_assert_str_eq(json_string_value(json_object_get(o, "intercepted")), "*");
	ck_assert_str_eq(json_string_value(json_object_get(o, "not_intercepted")),
			 "only the excluded ports");
	json_decref(o);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"rules_listed_ports", test_rules_listed_ports},
	    {"rules_exclusions", test_rules_exclusions},
	    {"rules_all_ports", test_rules_all_ports},
	    {"rules_bad_input", test_rules_bad_input},
	    {"rules_outbound", test_rules_outbound},
	    {"rules_outbound_bad_input", test_rules_outbound_bad_input},
	    {"init_main_exit_codes", test_init_main_exit_codes},
	    {"original_dst_not_redirected", test_original_dst_not_redirected},
	    {"original_dst_redirected", test_original_dst_redirected},
	    {"init_idempotent", test_init_idempotent},
	    {"init_errors", test_init_errors},
	    {"exclude_inbound_ports_alias", test_exclude_inbound_ports_alias},
	    {"global_ipv6", test_global_ipv6},
	    {"loopback_addresses", test_loopback_addresses},
	    {"own_addresses", test_own_addresses},
	    {"ports_json", test_ports_json},
	};
	return UT_RUN("sidecar/intercept", tests, .timeout_s = 30);
}
