/*
 * common/fileio: bounded whole-file reads on real files in a temporary directory: a
 * normal file, an empty one, one of exactly the bound and one byte over, a missing path,
 * a directory and an endless character device; messages name the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "tests/unit/runner.h"

static char dir[] = "/tmp/gg-fileio-XXXXXX";
static char path[sizeof(dir) + 32];

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

static void write_file(const char *p, const char *data, size_t len)
{
	FILE *f = fopen(p, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Expect failure rc with err "<p>: <want>..."; the outputs are cleared. */
static void expect_error(const char *p, size_t max, int rc, const char *want)
{
	char *buf = (char *)1;
	size_t len = 99;
	char err[256], prefix[300];

	ck_assert_int_eq(fileio_read_bounded(p, max, &buf, &len, err, sizeof(err)), rc);
	ck_assert_ptr_null(buf);
	ck_assert_uint_eq(len, 0);
	snprintf(prefix, sizeof(prefix), "%s: %s", p, want);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "err \"%s\", want \"%s\"", err,
		      prefix);
}

/* Expect success with exactly want[0..want_len) and a NUL after it. */
static void expect_read(const char *p, size_t max, const char *want, size_t want_len)
{
	char *buf = NULL;
	size_t len = 99;
	char err[256];

	ck_assert_int_eq(fileio_read_bounded(p, max, &buf, &len, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(len, want_len);
	ck_assert_mem_eq(buf, want, want_len);
	ck_assert_uint_eq(buf[want_len], '\0');
	free(buf);
}

START_TEST(normal)
{
	write_file(path, "a: 1\nb: [x]\n", 12);
	expect_read(path, 4096, "a: 1\nb: [x]\n", 12);
}
END_TEST

START_TEST(empty)
{
	write_file(path, "", 0);
	expect_read(path, 4096, "", 0);
}
END_TEST

START_TEST(bound)
{
	static char data[2049];

	memset(data, 'x', sizeof(data));
	write_file(path, data, 2048);
	expect_read(path, 2048, data, 2048);
	expect_error(path, 2047, -EFBIG, "larger than 2047 bytes");
	write_file(path, data, 2049);
	expect_error(path, 2048, -EFBIG, "larger than 2 KiB");
	expect_error(path, 0, -EFBIG, "larger than 0 bytes");
}
END_TEST

START_TEST(too_large_mib)
{
	static char data[1024 * 1024 + 1];

	memset(data, 'y', sizeof(data));
	write_file(path, data, sizeof(data));
	expect_error(path, 1024 * 1024, -EFBIG, "larger than 1 MiB");
}
END_TEST

START_TEST(missing)
{
	char p[sizeof(path) + 16];

	snprintf(p, sizeof(p), "%s/missing.yaml", dir);
	expect_error(p, 4096, -ENOENT, "cannot open: No such file or directory");
}
END_TEST

START_TEST(directory)
{
	expect_error(dir, 4096, -EISDIR, "is a directory, not a file");
}
END_TEST

/* Not a regular file, so no size up front: the read itself stops one byte past the bound. */
START_TEST(endless_device)
{
	expect_error("/dev/zero", 4096, -EFBIG, "larger than 4 KiB");
}
END_TEST

int main(void)
{
	const struct ut_case cases[] = {
	    {"normal", normal},
	    {"empty", empty},
	    {"bound", bound},
	    {"too_large_mib", too_large_mib},
	    {"missing", missing},
	    {"directory", directory},
	    {"endless_device", endless_device},
	};
	return UT_RUN("common/fileio", cases, .timeout_s = 10, .setup = setup,
		      .teardown = teardown);
}
