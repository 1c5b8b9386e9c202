/*
 * Bounded whole-file reads. See fileio.h.
 *
 * A regular file larger than the bound is refused from its size before anything is
 * allocated; anything else (a pipe, a file that grows while we read) is read up to one
 * byte past the bound, which is how "too large" is told from "exactly the bound".
 */
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "1 MiB", "64 KiB" or "1000 bytes": the exact bound in the largest unit that fits. */
static void format_size(char *buf, size_t buflen, size_t n)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(buf, buflen, "%zu MiB", n / (1024 * 1024));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, buflen, "%zu KiB", n / 1024);
	else
		snprintf(buf, buflen, "%zu bytes", n);
}

int fileio_read_bounded(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
			size_t errlen)
{
	char *buf = NULL;
	char size[32];
	size_t n = 0;
	struct stat st;
	int fd, rc = 0;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: read error: %s", path, strerror(-rc));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		snprintf(err, errlen, "%s: is a directory, not a file", path);
		goto out;
	}
	if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > max_bytes) {
		rc = -EFBIG;
		goto out;
	}
	buf = malloc(max_bytes + 1);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (n <= max_bytes) {
		ssize_t r = read(fd, buf + n, max_bytes + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: read error: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max_bytes) {
		rc = -EFBIG;
		goto out;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
out:
	if (rc == -EFBIG) {
		format_size(size, sizeof(size), max_bytes);
		snprintf(err, errlen, "%s: larger than %s", path, size);
	}
	if (buf) {
		explicit_bzero(buf, n);
		free(buf);
	}
	close(fd);
	return rc;
}
