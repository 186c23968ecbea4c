/* craft vfs: the file-system layer under the WAL and the snapshot store.
 *
 * Every byte craft's storage reads or writes goes through a struct craft_vfs,
 * as SQLite's does through its VFS: the POSIX implementation is the default,
 * and tests swap in the fault-injecting one (short writes, torn writes, bit
 * flips on read, fsync failure, a full disk) to drive the real code paths
 * through the failures a disk can produce.
 *
 * Every function returns 0 or a negative errno value (-EIO, -ENOSPC, ...).
 * Paths are whole paths (the caller joins directory and name).
 *
 * Threading: a vfs may be used from several threads at once; a file handle
 * from one thread at a time.
 */
#ifndef CRAFT_VFS_H
#define CRAFT_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of craft_vfs.open. */
#define CRAFT_VFS_READ 0x1u   /* open for reading only */
#define CRAFT_VFS_WRITE 0x2u  /* open for reading and writing */
#define CRAFT_VFS_CREATE 0x4u /* create if absent */
#define CRAFT_VFS_EXCL 0x8u   /* with CREATE: fail with -EEXIST if present */

struct craft_vfs;

/* An open file. Implementations embed this as their first member. */
struct craft_vfs_file {
    struct craft_vfs *vfs;
};

struct craft_vfs {
    void *data;
    int (*open)(struct craft_vfs *vfs, const char *path, unsigned flags,
                struct craft_vfs_file **out);
    /* Closes and frees the handle, whatever the result. */
    int (*close)(struct craft_vfs_file *file);
    /* Reads up to len bytes at off; *n is what was read (less at end of file). */
    int (*pread)(struct craft_vfs_file *file, void *buf, size_t len, uint64_t off, size_t *n);
    /* Writes up to len bytes at off; *n is what was written (may be short). */
    int (*pwrite)(struct craft_vfs_file *file, const void *buf, size_t len, uint64_t off,
                  size_t *n);
    /* Makes the file's data (and the size, if it changed) durable. */
    int (*fdatasync)(struct craft_vfs_file *file);
    int (*ftruncate)(struct craft_vfs_file *file, uint64_t size);
    /* Reserves blocks for [off, off + len); the file grows to cover them and
     * reads of the new range return zeros. */
    int (*fallocate)(struct craft_vfs_file *file, uint64_t off, uint64_t len);
    int (*size)(struct craft_vfs_file *file, uint64_t *size);
    int (*rename)(struct craft_vfs *vfs, const char *from, const char *to);
    int (*unlink)(struct craft_vfs *vfs, const char *path);
    int (*mkdir)(struct craft_vfs *vfs, const char *path); /* 0 if it already exists */
    /* Makes the directory's entries (creations, renames, deletions) durable. */
    int (*sync_dir)(struct craft_vfs *vfs, const char *path);
    /* Calls fn for each entry of the directory but "." and ".."; stops and
     * returns fn's value if it returns non-zero. */
    int (*readdir)(struct craft_vfs *vfs, const char *path, int (*fn)(void *arg, const char *name),
                   void *arg);
};

/* The POSIX implementation: a static object, valid for the process lifetime. */
struct craft_vfs *craft_vfs_posix(void);

/* Helpers: loop over short reads / writes. craft_vfs_read_full returns
 * -ENODATA if the file ends before len bytes. */
int craft_vfs_write_full(struct craft_vfs_file *file, const void *buf, size_t len, uint64_t off);
int craft_vfs_read_full(struct craft_vfs_file *file, void *buf, size_t len, uint64_t off);

/* ------------------------------------------------------------------------
 * The fault-injecting vfs, for tests. It wraps another vfs (usually the
 * POSIX one) and, as configured, misbehaves. Counters start at 0 and count
 * calls through this vfs only; -1 disables a fault.
 * ------------------------------------------------------------------------ */
struct craft_vfs_fault_config {
    uint64_t seed;                /* for torn writes */
    size_t short_write_max;       /* > 0: each pwrite writes at most this many bytes */
    int64_t fdatasync_fail_at;    /* this fdatasync (0-based) and later ones fail with -EIO */
    int64_t enospc_after_bytes;   /* pwrite/fallocate fail with -ENOSPC past this many bytes */
    int64_t torn_write_at;        /* this pwrite (0-based) writes a random subset of its
                                     512-byte sectors, then the vfs "loses power": every
                                     later call fails with -EIO */
    const char *flip_path_suffix; /* reads of a file whose path ends so... */
    int64_t flip_offset;          /* ...see the bit flip_bit of the byte at this offset flipped */
    unsigned flip_bit;
};

/* Sets every fault off (-1, 0, NULL). */
void craft_vfs_fault_config_init(struct craft_vfs_fault_config *cfg);

/* Creates a fault vfs over base. cfg is copied; flip_path_suffix must stay
 * valid while the vfs is used. */
int craft_vfs_fault_create(struct craft_vfs *base, const struct craft_vfs_fault_config *cfg,
                           struct craft_vfs **out);
void craft_vfs_fault_destroy(struct craft_vfs *vfs);
/* Replaces the configuration (counters are kept). */
void craft_vfs_fault_set(struct craft_vfs *vfs, const struct craft_vfs_fault_config *cfg);

struct craft_vfs_fault_stats {
    uint64_t pwrites, fdatasyncs, bytes_written;
    uint64_t short_writes, torn_writes, enospc, fsync_failures, flips;
    bool powered_off; /* a torn write happened; every call now fails */
};
void craft_vfs_fault_stats(struct craft_vfs *vfs, struct craft_vfs_fault_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_VFS_H */
