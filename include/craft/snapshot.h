/* craft snapshot store: the state machine's snapshots on disk, per group.
 *
 * A snapshot is a file in the store's directory named after its group, index
 * and term, holding a header, the snapshot metadata (index, term, membership),
 * the state machine's data, and a trailer with the data's length and CRC32C.
 * Writing goes to a temporary file that is fdatasynced, renamed into place,
 * and the directory fsynced: a snapshot file with its final name is always
 * complete. The newest N per group are kept (retain), older ones deleted.
 *
 * Sending to a follower: open the newest valid snapshot and read its data in
 * chunks. Receiving from a leader: begin, write the chunks as they arrive (in
 * order), finish. Opening verifies every checksum first (one extra pass over
 * the data), so a reader never streams a damaged snapshot.
 *
 * Order with the log (docs/storage.md): write the snapshot here first, then
 * record its metadata in the log store (save_snapshot), then compact. On
 * start, craft_storage_reconcile repairs the one crash window in between.
 *
 * Errors: 0 or a negative CRAFT_E* / CRAFT_STORAGE_E* code, with context in
 * craft_snapshot_store_errmsg. An fdatasync failure is fatal (the store stops:
 * CRAFT_STORAGE_EFATAL from then on), as in the WAL.
 *
 * Threading: a store may be used by one thread at a time; a reader or writer
 * belongs to one thread at a time, and several may be open at once.
 */
#ifndef CRAFT_SNAPSHOT_H
#define CRAFT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"
#include "vfs.h"
#include "wal.h"

#ifdef __cplusplus
extern "C" {
#endif

struct craft_snapshot_store_options {
    struct craft_vfs *vfs; /* NULL: craft_vfs_posix() */
    uint32_t retain;       /* snapshots kept per group (>= 1); 0: default 2 */
    /* As craft_wal_options.log: damaged snapshots skipped, deletions. */
    void (*log)(void *arg, int level, const char *message);
    void *log_arg;
};

void craft_snapshot_store_options_init(struct craft_snapshot_store_options *opts);

struct craft_snapshot_store;

/* Opens the store in dir (created if absent) and removes leftover temporary
 * files of writes that never finished. */
int craft_snapshot_store_open(const char *dir, const struct craft_snapshot_store_options *opts,
                              struct craft_snapshot_store **out, char *err, size_t err_cap);
void craft_snapshot_store_close(struct craft_snapshot_store *store);
const char *craft_snapshot_store_errmsg(const struct craft_snapshot_store *store);

/* ---- writing ---- */
struct craft_snapshot_writer;

/* Starts a snapshot of group with meta (copied). */
int craft_snapshot_write_begin(struct craft_snapshot_store *store, uint64_t group,
                               const struct craft_snapshot_meta *meta,
                               struct craft_snapshot_writer **out);
/* Appends len bytes of data, which start at offset in the snapshot's data:
 * offset must equal the bytes written so far (CRAFT_EINVAL otherwise, e.g. a
 * chunk lost or repeated in transit; the writer stays usable). The bytes are
 * copied. */
int craft_snapshot_write(struct craft_snapshot_writer *w, uint64_t offset, const void *buf,
                         size_t len);
/* Makes the snapshot durable under its final name and applies retention.
 * Frees the writer, whatever the result (on failure nothing is left behind). */
int craft_snapshot_write_finish(struct craft_snapshot_writer *w);
/* Drops the snapshot being written and frees the writer. */
void craft_snapshot_write_abort(struct craft_snapshot_writer *w);

/* ---- reading ---- */
struct craft_snapshot_reader;

/* Opens the newest snapshot of group whose checksums all verify, skipping
 * (with a log line) damaged ones. CRAFT_STORAGE_ENOENT if there is none. */
int craft_snapshot_open_newest(struct craft_snapshot_store *store, uint64_t group,
                               struct craft_snapshot_reader **out);
/* Opens group's snapshot (index, term) exactly, verified as above;
 * CRAFT_STORAGE_ENOENT if it is absent or damaged. */
int craft_snapshot_open(struct craft_snapshot_store *store, uint64_t group, uint64_t index,
                        uint64_t term, struct craft_snapshot_reader **out);
const struct craft_snapshot_meta *craft_snapshot_reader_meta(const struct craft_snapshot_reader *r);
uint64_t craft_snapshot_reader_size(const struct craft_snapshot_reader *r); /* data bytes */
/* Reads the next bytes of data, at most cap; *n is 0 at the end. */
int craft_snapshot_read(struct craft_snapshot_reader *r, void *buf, size_t cap, size_t *n);
void craft_snapshot_reader_close(struct craft_snapshot_reader *r);

/* ---- listing and retention ---- */
struct craft_snapshot_info {
    uint64_t group, index, term;
};

/* Snapshots of group by file name (not verified), newest first: at most cap
 * into out, *n the total. group 0: every group. */
int craft_snapshot_list(struct craft_snapshot_store *store, uint64_t group,
                        struct craft_snapshot_info *out, size_t cap, size_t *n);
/* Deletes all but the newest keep snapshots of group (0: every one). */
int craft_snapshot_retain(struct craft_snapshot_store *store, uint64_t group, uint32_t keep);

/* ---- the snapshot store as an interface ----
 *
 * What the host runtime (include/craft/host.h) needs of a snapshot store; the
 * store above is the default, and a program may give its own. Readers and
 * writers are the implementation's. Threads: the host serialises the
 * store-level calls (open_newest, write_begin, write_finish, newest,
 * remove_group) under one lock; a reader or writer is used by one thread at
 * a time. Errors as above. */
struct craft_snapshot_iface {
    void *data;
    /* The newest complete, verified snapshot of group: *reader and *meta
     * (valid until reader_close). CRAFT_STORAGE_ENOENT if there is none. */
    int (*open_newest)(void *data, uint64_t group, void **reader,
                       const struct craft_snapshot_meta **meta);
    /* Group's snapshot (index, term) exactly (may be NULL: the host then
     * uses open_newest and checks it is that one). */
    int (*open)(void *data, uint64_t group, uint64_t index, uint64_t term, void **reader,
                const struct craft_snapshot_meta **meta);
    int (*read)(void *reader, void *buf, size_t cap, size_t *n); /* *n 0 at the end */
    void (*reader_close)(void *reader);
    /* A new snapshot of group with meta; data written in order from offset 0;
     * durable and visible to open_newest only once write_finish returned 0. */
    int (*write_begin)(void *data, uint64_t group, const struct craft_snapshot_meta *meta,
                       void **writer);
    int (*write)(void *writer, uint64_t offset, const void *buf, size_t len);
    int (*write_finish)(void *data, void *writer);
    void (*write_abort)(void *writer);
    /* Index of group's newest snapshot, 0 for none. */
    int (*newest)(void *data, uint64_t group, uint64_t *index);
    /* Deletes every snapshot of group. */
    int (*remove_group)(void *data, uint64_t group);
    const char *(*errmsg)(void *data);
};

/* This store as an interface, valid until the store is closed. */
struct craft_snapshot_iface *craft_snapshot_store_iface(struct craft_snapshot_store *store);

/* ---- recovery across log and snapshots ----
 *
 * For every group with a snapshot, makes the log agree with the newest valid
 * snapshot: if the log's snapshot marker is older (a crash between finishing
 * the snapshot and recording it), records it (save_snapshot) and syncs. If the
 * log records a snapshot newer than any valid snapshot file, the entries it
 * compacted are gone: CRAFT_ECORRUPT, with the group named in err. */
int craft_storage_reconcile(struct craft_log_store *log, struct craft_snapshot_store *snaps,
                            char *err, size_t err_cap);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_SNAPSHOT_H */
