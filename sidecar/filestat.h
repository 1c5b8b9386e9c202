/*
 * What the sidecar's file watchers remember of a file's stat(2) to tell whether it changed
 * since they last read it: device, inode, size, mtime and ctime. A ConfigMap or Secret
 * volume update swaps a symlink (a new inode); an edit in place changes size or mtime; a
 * chmod that makes an unreadable file readable changes only ctime. Used by the policy and
 * labels reload (reload.c) and the JWKS file reload (authn.c).
 * No I/O: the callers stat the file; no allocation, no global state.
 */
#ifndef GRPCGUARD_SC_FILESTAT_H
#define GRPCGUARD_SC_FILESTAT_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

struct sc_filestat {
	bool valid; /* the fields below describe a file; false: nothing remembered */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

/* Remember sb in fs (and mark it valid). */
void sc_filestat_set(struct sc_filestat *fs, const struct stat *sb);

/* True when fs is valid and sb describes the same file, unchanged; false otherwise. */
bool sc_filestat_same(const struct sc_filestat *fs, const struct stat *sb);

#endif
