/*
 * Bounded whole-file reads, shared by the programs that load a small file at a time
 * (configuration, certificates, keys).
 *
 * It reads one file into one new buffer, never more than the caller's maximum, and says
 * in err what went wrong with the file's name first. It does not parse, log, follow
 * anything but the path given, or keep any state.
 */
#ifndef GRPCGUARD_FILEIO_H
#define GRPCGUARD_FILEIO_H

#include <stddef.h>

/*
 * Read all of path (at most max_bytes) into a new buffer, NUL-terminated one byte past
 * its length, which the caller frees. An empty file succeeds with *len 0.
 *
 * Returns 0, or a negative errno with a one-line message "<path>: ..." in err:
 *   -errno   "cannot open: <strerror>" (-ENOENT, -EACCES, ...)
 *   -EISDIR  "is a directory, not a file"
 *   -EFBIG   "larger than <max>" (max in bytes, KiB or MiB, whichever is exact)
 *   -EIO ... "read error: <strerror>"
 *   -ENOMEM  "out of memory"
 * On failure *out is NULL and *len 0; what was read is wiped before it is freed, so a
 * key that was too large or half read does not stay in freed memory.
 */
int fileio_read_bounded(const char *path, size_t max_bytes, char **out, size_t *len, char *err,
			size_t errlen);

#endif
