/* craft wal: the log store, and the write-ahead log that implements it.
 *
 * One WAL per process holds the log of every raft group the process runs, so
 * that one fdatasync covers every group's writes of a batch (group commit).
 * It is a directory of segment files (00000001.wal, 00000002.wal, ...), each
 * preallocated, with a header (format version, segment number, first record
 * number) and records framed with their length and a CRC32C. docs/storage.md
 * gives the format and the recovery rules.
 *
 * The log store interface, struct craft_log_store, is what the host writes to
 * (step 1 of the ready cycle) and reads from: hashicorp raft's LogStore and
 * StableStore merged, keyed by group id. The WAL implements it
 * (craft_wal_log_store), and so does an in-memory store for tests
 * (craft_log_store_mem_create).
 *
 * The core reads a group's stable log through raft.h's struct craft_storage;
 * craft_wal_storage gives that view of one group of a WAL.
 *
 * Memory: the WAL keeps every live (not yet compacted) entry of every group in
 * memory, in its own allocation, besides writing it to disk. Reads never touch
 * the disk, and an entry's data pointer stays valid until the entry is
 * truncated or compacted, which is what struct craft_storage requires. The
 * cost is memory equal to the live log: compact regularly.
 *
 * Durability: writes (append, save_*, compact, ...) change the in-memory state
 * at once, visible to reads, and are encoded into a buffer; they are durable
 * only after a successful commit (craft_wal_commit, the store's sync), which
 * writes everything buffered, for every group, with one write and one
 * fdatasync per segment touched.
 *
 * Errors: 0 or a negative code: raft.h's CRAFT_E* or the storage codes below.
 * Every WAL carries a message buffer (craft_wal_errmsg) with the context of the
 * last error: "segment 00000003.wal offset 4096: checksum mismatch".
 *
 * Threading: a struct craft_wal and its stores and views are not thread safe;
 * use one from one thread at a time (the host drives it from its event loop),
 * or through struct craft_wal_writer, which owns it on a thread of its own.
 */
#ifndef CRAFT_WAL_H
#define CRAFT_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"
#include "vfs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Storage error codes, beyond raft.h's (which has CRAFT_ECORRUPT and
 * CRAFT_ESTORAGE). A range of their own so that raft.h can grow.
 * ------------------------------------------------------------------------ */
#define CRAFT_STORAGE_ENOSPC                                                                       \
    (-1001) /* the disk is full: nothing buffered was lost and the log on                          \
               disk is valid; commit again once there is room */
#define CRAFT_STORAGE_EFATAL                                                                       \
    (-1002)                          /* an fsync or write failed: the WAL has stopped (fail-stop)  \
                                        and fails every later call; exit and recover on restart */
#define CRAFT_STORAGE_ENOENT (-1003) /* no such file, group or snapshot */

/* Like craft_strerror, and knows the storage codes too. Never NULL. */
const char *craft_storage_strerror(int rc);

/* ------------------------------------------------------------------------
 * The log store interface.
 *
 * Groups are created by their first write. Reads of a group never written
 * see an empty log: first index 1, last index 0, zero hard state.
 * ------------------------------------------------------------------------ */
/* The token of a two-phase commit (see write_pending below): the store's,
 * filled by write_pending, passed back to sync_run and sync_done. */
struct craft_wal_sync {
    struct craft_vfs_file *file_; /* private */
    struct craft_vfs *vfs_;       /* private */
    int status_;                  /* private */
};

struct craft_log_store {
    void *data;

    /* Appends entries (data copied) to group. The entry at entries[0].index
     * replaces every entry >= that index (a follower overwriting a conflicting
     * suffix). Entries must be contiguous and must not start above
     * last_index + 1 (CRAFT_EINVAL); entries at or below the compaction point
     * are skipped. */
    int (*append)(void *data, uint64_t group, const struct craft_entry *entries, size_t n);
    /* Drops every entry >= index (CRAFT_ECOMPACTED if index <= compaction point). */
    int (*truncate)(void *data, uint64_t group, uint64_t index);
    int (*save_hard_state)(void *data, uint64_t group, const struct craft_hard_state *hs);
    /* Membership as of the last persisted state. */
    int (*save_conf_state)(void *data, uint64_t group, const struct craft_conf_state *cs);
    /* Records that a snapshot with this metadata is stored (write the snapshot
     * itself first: craft/snapshot.h). If the log holds the entry at
     * meta->index with meta->term, or meta->index is at or below the
     * compaction point, entries are kept (compact separately); otherwise
     * every entry is dropped and the log continues at meta->index + 1
     * (installing a leader's snapshot). Either way the membership becomes
     * meta->conf: a restarted node starts applying after the newest snapshot,
     * so initial_state gives its membership (raft.h); save_conf_state later
     * changes it again. CRAFT_EINVAL if meta->index is below the last
     * recorded snapshot. */
    int (*save_snapshot)(void *data, uint64_t group, const struct craft_snapshot_meta *meta);
    /* Drops entries up to and including index: first_index becomes index + 1.
     * CRAFT_ECOMPACTED if already compacted that far, CRAFT_EUNAVAILABLE if
     * index > last_index. */
    int (*compact)(void *data, uint64_t group, uint64_t index);
    /* Forgets a group entirely. */
    int (*remove_group)(void *data, uint64_t group);

    /* Reads, as raft.h's struct craft_storage has them, per group. Data
     * pointers stay valid until the entries are truncated or compacted. */
    int (*entries)(void *data, uint64_t group, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                   struct craft_entry *out, size_t cap, size_t *n);
    int (*term)(void *data, uint64_t group, uint64_t index, uint64_t *term);
    uint64_t (*first_index)(void *data, uint64_t group);
    uint64_t (*last_index)(void *data, uint64_t group);
    int (*initial_state)(void *data, uint64_t group, struct craft_hard_state *hs,
                         struct craft_conf_state *cs);
    int (*snapshot)(void *data, uint64_t group, struct craft_snapshot_meta *meta);
    /* Ids of the groups held (in no particular order), at most cap of them;
     * *n is set to the total number, which may exceed cap. */
    int (*groups)(void *data, uint64_t *ids, size_t cap, size_t *n);

    /* Makes every write so far durable, for every group (blocking). */
    int (*sync)(void *data);
    /* Group commit in two phases, so the caller keeps working while the
     * disk flushes (optional: all four NULL, and the host calls sync on its
     * loop thread instead). write_pending writes what is buffered without
     * making it durable and fills *token; sync_run makes it durable and may
     * run on any thread (it touches only what the token holds); sync_done,
     * back on the caller's thread, records the outcome (a failure is
     * fail-stop). Everything written before write_pending is durable once
     * sync_done returned 0. Between write_pending and sync_done the other
     * calls may run (on the caller's thread), but not write_pending or sync.
     * pending_bytes says how much is buffered. */
    int (*write_pending)(void *data, struct craft_wal_sync *token);
    int (*sync_run)(struct craft_wal_sync *token);
    int (*sync_done)(void *data, struct craft_wal_sync *token);
    size_t (*pending_bytes)(void *data);
    /* The last error's message with its context (never NULL). */
    const char *(*errmsg)(void *data);
    /* The view of one group as raft.h's read interface, valid until the group
     * is removed or the store closed. NULL if out of memory. */
    const struct craft_storage *(*storage)(void *data, uint64_t group);
    /* Frees the store (for the WAL: closes it without committing). */
    void (*close)(void *data);
};

/* An in-memory log store, for tests and the simulator: the same behaviour as
 * the WAL without the disk; sync does nothing. */
int craft_log_store_mem_create(struct craft_log_store **out);

/* ------------------------------------------------------------------------
 * The write-ahead log.
 * ------------------------------------------------------------------------ */
enum craft_log_level { CRAFT_LOG_DEBUG = 0, CRAFT_LOG_INFO, CRAFT_LOG_WARN, CRAFT_LOG_ERROR };

struct craft_wal_options {
    struct craft_vfs *vfs; /* NULL: craft_vfs_posix() */
    uint64_t segment_size; /* bytes preallocated per segment; default 64 MiB, min 64 KiB */
    bool repair;           /* on a checksum failure before the tail, truncate the log
                              there (dropping what follows, logged) instead of failing */
    bool no_sync;          /* never fdatasync: for benchmarks of the CPU path only */
    /* Log lines (torn tail truncated, repair, segment deleted). NULL: stderr,
     * INFO and above. */
    void (*log)(void *arg, int level, const char *message);
    void *log_arg;
};

void craft_wal_options_init(struct craft_wal_options *opts);

struct craft_wal;

/* Opens (creating the directory if needed) and recovers the WAL in dir:
 * replays every segment, truncates a torn tail (with a log line), and fails
 * with CRAFT_ECORRUPT on a checksum failure before the tail, naming file and
 * offset in err (unless opts->repair). err (may be NULL) receives the message
 * of a failure; opts may be NULL for defaults. */
int craft_wal_open(const char *dir, const struct craft_wal_options *opts, struct craft_wal **out,
                   char *err, size_t err_cap);
/* Closes the WAL without committing what is buffered. */
void craft_wal_close(struct craft_wal *wal);

/* The message of the last error, with its context. */
const char *craft_wal_errmsg(const struct craft_wal *wal);

/* Writes everything buffered and fdatasyncs: after 0, every earlier write is
 * durable. CRAFT_STORAGE_ENOSPC leaves the buffer in place for a later commit;
 * CRAFT_STORAGE_EFATAL stops the WAL for good (never retry an fsync). A commit
 * with nothing buffered does no I/O.
 *
 * The host calls it in step 1 of the ready cycle when the ready needs a sync
 * (craft_ready.must_sync); otherwise it may skip it, and the records stay
 * buffered until the next commit carries them. There is no write without a
 * sync: recovery relies on each write being durable before the next one
 * starts, to tell a torn last write from earlier damage. */
int craft_wal_commit(struct craft_wal *wal);
/* Commit in two phases, for a caller that keeps working while the
 * fdatasync runs (the host runtime's group commit):
 *   craft_wal_write(wal, &sync)  writes everything buffered, without
 *                                fdatasync (a segment filled on the way is
 *                                fdatasynced before the next one starts);
 *   craft_wal_sync_run(&sync)    the fdatasync; any thread;
 *   craft_wal_sync_done(wal, &sync) records the outcome (an fdatasync
 *                                failure is fail-stop: CRAFT_STORAGE_EFATAL)
 *                                and deletes segments no longer needed.
 * Only after sync_done returned 0 is everything written by the matching
 * craft_wal_write durable. Between write and sync_done the caller may append,
 * save and read (they touch memory only) but must not call craft_wal_write,
 * craft_wal_commit or craft_wal_close. The sync struct is the caller's. */

int craft_wal_write(struct craft_wal *wal, struct craft_wal_sync *sync);
int craft_wal_sync_run(struct craft_wal_sync *sync);
int craft_wal_sync_done(struct craft_wal *wal, const struct craft_wal_sync *sync);

/* Bytes buffered, not yet committed. */
size_t craft_wal_pending_bytes(const struct craft_wal *wal);

/* The log store interface of this WAL, valid until craft_wal_close (its close
 * closes the WAL). */
struct craft_log_store *craft_wal_log_store(struct craft_wal *wal);
/* The read view of one group (created empty if absent), for craft_config.storage. */
const struct craft_storage *craft_wal_storage(struct craft_wal *wal, uint64_t group);

struct craft_wal_stats {
    uint64_t segments;      /* segment files held */
    uint64_t first_segment; /* number of the oldest one */
    uint64_t last_segment;  /* the one written to */
    uint64_t groups;
    uint64_t live_entries; /* entries held in memory, every group */
    uint64_t live_bytes;   /* their data bytes */
    uint64_t next_lsn;     /* number of the next record */
    uint64_t commits, fsyncs, bytes_written;
    uint64_t replayed_records, replayed_bytes; /* by the last open */
    uint64_t segments_deleted;
    uint64_t torn_tail_bytes; /* truncated by the last open */
};
void craft_wal_stats(const struct craft_wal *wal, struct craft_wal_stats *st);

/* ------------------------------------------------------------------------
 * The batching writer: a thread that owns a WAL and makes many callers'
 * writes durable together. Each request is applied when the thread takes it;
 * every request taken while the previous commit ran goes into the next
 * commit: one write and one fdatasync for all of them (group commit).
 *
 * While a writer runs, use the WAL only through it: writes by requests, reads
 * between craft_wal_writer_lock and craft_wal_writer_unlock.
 * ------------------------------------------------------------------------ */
struct craft_wal_writer;
struct craft_wal_write_req;

typedef void (*craft_wal_write_cb)(struct craft_wal_write_req *req, int status);

/* A write request: caller-allocated. The caller keeps ownership of the
 * request, the entries and their data, and must keep them valid and
 * unchanged until cb is called (on the writer's thread), with status 0 once
 * everything in the request is durable. A status of CRAFT_STORAGE_ENOSPC
 * means not durable yet: the data stays buffered in the WAL and becomes
 * durable with a later commit that succeeds. */
struct craft_wal_write_req {
    void *data; /* the caller's */
    uint64_t group;
    const struct craft_entry *entries; /* may be NULL */
    size_t n_entries;
    const struct craft_hard_state *hard_state; /* NULL: unchanged */
    craft_wal_write_cb cb;
    struct craft_wal_write_req *next_; /* private */
    int status_;                       /* private */
};

/* Starts the thread. The writer uses wal until stopped; it does not own it. */
int craft_wal_writer_start(struct craft_wal *wal, struct craft_wal_writer **out);
/* Finishes every request submitted, stops the thread, frees the writer. */
void craft_wal_writer_stop(struct craft_wal_writer *w);
/* Queues req; any thread. CRAFT_EINVAL after stop began. */
int craft_wal_writer_submit(struct craft_wal_writer *w, struct craft_wal_write_req *req);
/* Submits and waits until durable; returns the request's status. */
int craft_wal_writer_write(struct craft_wal_writer *w, uint64_t group,
                           const struct craft_entry *entries, size_t n_entries,
                           const struct craft_hard_state *hs);
/* Excludes the writer thread while the caller reads the WAL. */
void craft_wal_writer_lock(struct craft_wal_writer *w);
void craft_wal_writer_unlock(struct craft_wal_writer *w);

struct craft_wal_writer_stats {
    uint64_t requests;  /* completed */
    uint64_t commits;   /* each one write and one fdatasync per segment touched */
    uint64_t max_batch; /* most requests in one commit */
};
void craft_wal_writer_stats(struct craft_wal_writer *w, struct craft_wal_writer_stats *st);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_WAL_H */
