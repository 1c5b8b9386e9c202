/*
 * A file's remembered stat; see filestat.h. Does not stat anything itself.
 */
#include "sidecar/filestat.h"

static bool ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

void sc_filestat_set(struct sc_filestat *fs, const struct stat *sb)
{
	fs->valid = true;
	fs->dev = sb->st_dev;
	fs->ino = sb->st_ino;
	fs->size = sb->st_size;
	fs->mtime = sb->st_mtim;
	fs->ctime = sb->st_ctim;
}

bool sc_filestat_same(const struct sc_filestat *fs, const struct stat *sb)
{
	return fs->valid && fs->dev == sb->st_dev && fs->ino == sb->st_ino &&
	       fs->size == sb->st_size && ts_eq(&fs->mtime, &sb->st_mtim) &&
	       ts_eq(&fs->ctime, &sb->st_ctim);
}
