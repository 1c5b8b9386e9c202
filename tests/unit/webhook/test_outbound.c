/*
 * webhook/outbound: the outbound capture annotations as grpcguard-init flags: values
 * normalized, bad values an admission error naming the annotation, nothing added when the
 * pod sets none.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "webhook/outbound.h"
#include "tests/unit/runner.h"

/* The flags for a pod with these annotations (a JSON object body), joined with ' '. */
static int args_for(const char *annotations, char *out, size_t outlen, char *err, size_t errlen)
{
	char doc[16384];
	json_error_t e;
	json_t *pod, *args = json_array(), *v;
	size_t i, used = 0;
	int rc;

	snprintf(doc, sizeof(doc), "{\"metadata\": {\"annotations\": %s}, \"spec\": {}}",
		 annotations);
	pod = json_loads(doc, 0, &e);
	ck_assert_msg(pod != NULL, "%s: %s", doc, e.text);
	err[0] = out[0] = '\0';
	rc = wh_outbound_init_args(pod, args, err, errlen);
	json_array_foreach(args, i, v) used +=
	    (size_t)snprintf(out + used, outlen - used, "%s%s", i ? " " : "", json_string_value(v));
	if (rc != 0)
		ck_assert_uint_eq(json_array_size(args), 0); /* unchanged on error */
	json_decref(args);
	json_decref(pod);
	return rc;
}

static void expect_args(const char *annotations, const char *want)
{
	char out[8192], err[512];
	int rc = args_for(annotations, out, sizeof(out), err, sizeof(err));

	ck_assert_msg(rc == 0, "%s: rc %d: %s", annotations, rc, err);
	ck_assert_msg(strcmp(out, want) == 0, "%s: args \"%s\", want \"%s\"", annotations, out,
		      want);
}

static void expect_error(const char *annotations, const char *needle)
{
	char out[8192], err[512];
	int rc = args_for(annotations, out, sizeof(out), err, sizeof(err));

	ck_assert_msg(rc == -EINVAL, "%s: rc %d, want -EINVAL", annotations, rc);
	ck_assert_msg(strstr(err, needle), "%s: error \"%s\" lacks \"%s\"", annotations, err,
		      needle);
}

START_TEST(flags)
{
	expect_args("{}", "");
	expect_args("null", "");
	expect_args("{\"grpcguard.io/outbound\": \"true\"}", "");
	expect_args("{\"grpcguard.io/outbound\": \"false\"}", "--no-outbound");
	expect_args("{\"grpcguard.io/outbound\": \"False\"}", "--no-outbound");
	expect_args("{\"grpcguard.io/exclude-outbound-ports\": \" 3306, 5432,65535\"}",
		    "--exclude-outbound-ports 3306,5432,65535");
	expect_args("{\"grpcguard.io/exclude-outbound-ip-ranges\": \"10.96.0.0/12, fd00::/8 ,"
		    "192.168.1.7\"}",
		    "--exclude-outbound-cidrs 10.96.0.0/12,fd00::/8,192.168.1.7");
	expect_args("{\"grpcguard.io/exclude-outbound-ports\": \"3306\", "
		    "\"grpcguard.io/exclude-outbound-ip-ranges\": \"10.0.0.0/8\"}",
		    "--exclude-outbound-ports 3306 --exclude-outbound-cidrs 10.0.0.0/8");
	/* Capture off: the exclusions are moot (but still checked). */
	expect_args("{\"grpcguard.io/outbound\": \"false\", "
		    "\"grpcguard.io/exclude-outbound-ports\": \"3306\"}",
		    "--no-outbound");
}
END_TEST

START_TEST(errors)
{
	expect_error("{\"grpcguard.io/outbound\": \"no\"}",
		     "annotation grpcguard.io/outbound: must be the string \"true\" or \"false\"");
	expect_error("{\"grpcguard.io/outbound\": false}", "grpcguard.io/outbound");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": \"3306,mysql\"}",
		     "annotation grpcguard.io/exclude-outbound-ports: \"mysql\" is not a port "
		     "list; use comma-separated port numbers 1-65535");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": \"0\"}", "\"0\"");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": \"65536\"}", "\"65536\"");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": \"3306,\"}", "empty");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": \"\"}", "empty");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": \"*\"}", "\"*\"");
	expect_error("{\"grpcguard.io/exclude-outbound-ports\": 3306}", "a non-string value");
	expect_error("{\"grpcguard.io/exclude-outbound-ip-ranges\": \"10.0.0.0/33\"}",
		     "annotation grpcguard.io/exclude-outbound-ip-ranges: \"10.0.0.0/33\" is not a "
		     "list of IP ranges");
	expect_error("{\"grpcguard.io/exclude-outbound-ip-ranges\": \"10.0.0.0/8;rm -rf /\"}",
		     "is not a list of IP ranges");
	expect_error("{\"grpcguard.io/exclude-outbound-ip-ranges\": "
		     "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
		     "overlong");
	/* An error in one annotation adds nothing from the others. */
	expect_error("{\"grpcguard.io/outbound\": \"false\", "
		     "\"grpcguard.io/exclude-outbound-ip-ranges\": \"nope\"}",
		     "\"nope\"");
	{
		/* 65 ranges: over the limit init accepts. */
		char doc[4096] = "{\"grpcguard.io/exclude-outbound-ip-ranges\": \"";
		for (int i = 0; i < 65; i++)
			snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc), "%s10.%d.0.0/16",
				 i ? "," : "", i);
		strcat(doc, "\"}");
		expect_error(doc, "more than 64 entries");
	}
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"flags", flags},
	    {"errors", errors},
	};
	return UT_RUN("webhook/outbound", tests, .timeout_s = 10);
}
