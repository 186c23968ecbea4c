/* craftkv's state machine: the key-value pairs in LMDB, implementing
 * struct craft_fsm (include/craft/host.h).
 *
 * Every apply call is ONE LMDB write transaction: it executes every command
 * of every entry (each entry a batch, see command.h) and records the applied
 * index in the same transaction, so after a crash the store holds exactly
 * the entries up to last_applied. Each entry's craft_result carries the
 * compact replies of its commands (data, len; value = number of replies).
 *
 * Reads go through read-only transactions (MDB_NOTLS: any thread, any
 * number at once, never blocking the apply thread): open one with
 * kv_read_begin after craft_host_read_sync (linearizable) or straight away
 * (stale), and end it soon, since LMDB cannot reuse pages a reader may see.
 *
 * Snapshot stream (save/restore):
 *   "CKVSNAP1", applied (u64), count (u64),
 *   count x (key length (u32), value length (u32), key, value),
 *   CRC32C of everything before (u32); integers little-endian.
 * Keys are in LMDB's order, so two replicas' streams of one state match. */
#ifndef CRAFT_KV_STORE_H
#define CRAFT_KV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/host.h>

#include "kv/buf.h"

/* kv_store_open flags. */
#define KV_STORE_NO_SYNC 0x1 /* never fsync LMDB (the WAL still makes the log durable) */

/* Errors (besides LMDB's, which are logged in kv_store_error()). */
#define KV_STORE_EIO (-1)        /* LMDB failed: see kv_store_error() */
#define KV_STORE_ENOMEM (-2)     /* out of memory */
#define KV_STORE_EBADCURSOR (-3) /* SCAN cursor unknown or forgotten */
#define KV_STORE_ECORRUPT (-4)   /* a snapshot stream is malformed */

struct kv_store;

/* Opens (creating) the LMDB environment in the existing directory dir, with
 * a map of map_size bytes (the largest the store may grow; sparse on disk).
 * err (err_cap bytes) receives a message on failure. */
int kv_store_open(const char *dir, size_t map_size, unsigned flags, struct kv_store **out,
                  char *err, size_t err_cap);
/* Closes the store; no read transaction may be open, no fsm call running. */
void kv_store_close(struct kv_store *s);
/* The last LMDB error, for logs ("apply: mdb_put: MDB_MAP_FULL..."). */
const char *kv_store_error(struct kv_store *s);

/* Fills out with the store's callbacks. close is NULL: the store belongs to
 * whoever opened it, who closes it after the group stops. */
void kv_store_fsm(struct kv_store *s, struct craft_fsm *out);

/* The craft_fsm callbacks, callable directly (apply thread only). */
int kv_store_apply(struct kv_store *s, struct craft_fsm_entry *entries, size_t n, uint64_t applied);
int kv_store_save(struct kv_store *s, struct craft_writer *w);
/* Streams the snapshot in; never holds more than one pair in memory. The
 * data is replaced in several transactions (big snapshots outgrow one); the
 * first one records applied 0, so a crash half-way leaves a store that says
 * "rebuild me", and the last one records applied. */
int kv_store_restore(struct kv_store *s, struct craft_reader *r, uint64_t applied);
uint64_t kv_store_last_applied(struct kv_store *s);

/* A hash (FNV-1a, 64 bits) of every pair in order, for comparing replicas. */
int kv_store_hash(struct kv_store *s, uint64_t *hash);

/* A read-only view of the store at one applied index. */
struct kv_read {
    struct kv_store *store;
    void *txn; /* MDB_txn */
};

int kv_read_begin(struct kv_store *s, struct kv_read *r);
void kv_read_end(struct kv_read *r);
/* The applied index this view shows. */
uint64_t kv_read_applied(struct kv_read *r);
/* 1 and *value (borrowed until kv_read_end), 0 if absent, or an error. */
int kv_read_get(struct kv_read *r, const void *key, size_t len, struct kv_slice *value);
int kv_read_dbsize(struct kv_read *r, uint64_t *n);

/* Called per key; return non-zero to stop early. key is borrowed. */
typedef int (*kv_key_fn)(void *arg, const char *key, size_t len);

/* KEYS: every key matching the glob pattern (glob.h), in order. */
int kv_read_keys(struct kv_read *r, const char *pattern, size_t pattern_len, kv_key_fn fn,
                 void *arg);
/* SCAN: examines up to count keys (0: 10) from cursor (0: the start),
 * passing the ones matching pattern (NULL: all) to fn; *next is the cursor
 * to continue from, 0 when done. Cursors are remembered by the store (the
 * last 1,024 handed out); an unknown one is KV_STORE_EBADCURSOR. */
int kv_read_scan(struct kv_read *r, uint64_t cursor, const char *pattern, size_t pattern_len,
                 size_t count, kv_key_fn fn, void *arg, uint64_t *next);

#endif /* CRAFT_KV_STORE_H */
