/*
 * policy/status: gRPC status codes by name and number.
 */
#include <check.h>
#include <stdlib.h>

#include "policy/policy.h"
#include "tests/unit/runner.h"

START_TEST(test_names_round_trip)
{
	for (int code = 0; code <= 16; code++) {
		const char *name = policy_grpc_status_name(code);
		ck_assert_ptr_nonnull(name);
		ck_assert_int_eq(policy_grpc_status_parse(name), code);
	}
	ck_assert_str_eq(policy_grpc_status_name(14), "UNAVAILABLE");
	ck_assert_str_eq(policy_grpc_status_name(7), "PERMISSION_DENIED");
	ck_assert_str_eq(policy_grpc_status_name(16), "UNAUTHENTICATED");
	ck_assert_ptr_null(policy_grpc_status_name(17));
	ck_assert_ptr_null(policy_grpc_status_name(-1));
}
END_TEST

START_TEST(test_parse)
{
	ck_assert_int_eq(policy_grpc_status_parse("unavailable"), 14);
	ck_assert_int_eq(policy_grpc_status_parse("Deadline_Exceeded"), 4);
	ck_assert_int_eq(policy_grpc_status_parse("0"), 0);
	ck_assert_int_eq(policy_grpc_status_parse("14"), 14);
	ck_assert_int_eq(policy_grpc_status_parse("16"), 16);
	ck_assert_int_eq(policy_grpc_status_parse("17"), -1);
	ck_assert_int_eq(policy_grpc_status_parse("014"), -1);
	ck_assert_int_eq(policy_grpc_status_parse("1a"), -1);
	ck_assert_int_eq(policy_grpc_status_parse("-1"), -1);
	ck_assert_int_eq(policy_grpc_status_parse("100"), -1);
	ck_assert_int_eq(policy_grpc_status_parse(""), -1);
	ck_assert_int_eq(policy_grpc_status_parse(NULL), -1);
	ck_assert_int_eq(policy_grpc_status_parse("UNAVAILABLE "), -1);
	ck_assert_int_eq(policy_grpc_status_parse("SERVICE_UNAVAILABLE"), -1);
}
END_TEST

int main(void)
{
	const struct ut_case tests[] = {
	    {"codes", test_names_round_trip},
	    {"codes", test_parse},
	};
	return UT_RUN("policy/status", tests, .timeout_s = 10);
}
