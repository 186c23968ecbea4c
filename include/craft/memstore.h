/* craft memstore: an in-memory log store implementing struct craft_storage.
 *
 * Used by tests, the simulator and benchmarks, and as the reference for what
 * a log store must do. It holds a snapshot's metadata (not its data), the hard
 * state, the membership, and the entries after the snapshot. Entry data is
 * copied in and each entry's bytes stay at a fixed address until the entry is
 * truncated or compacted away, as struct craft_storage requires.
 *
 * Not thread safe: one thread at a time.
 */
#ifndef CRAFT_MEMSTORE_H
#define CRAFT_MEMSTORE_H

#include "raft.h"

#ifdef __cplusplus
extern "C" {
#endif

struct craft_memstore;

/* Creates an empty store: no entries, first index 1, hard state zero. */
int craft_memstore_create(struct craft_memstore **out);
void craft_memstore_destroy(struct craft_memstore *ms);

/* The read interface the core takes in craft_config.storage; valid for the
 * store's lifetime. */
const struct craft_storage *craft_memstore_storage(struct craft_memstore *ms);

/* Appends entries (data copied). An entry at index i replaces every entry >= i
 * first. Entries must be contiguous and must not start above last_index + 1
 * (CRAFT_EINVAL); the part of a batch below first_index (already compacted) is
 * skipped, as etcd's MemoryStorage does. */
int craft_memstore_append(struct craft_memstore *ms, const struct craft_entry *entries, size_t n);

void craft_memstore_set_hard_state(struct craft_memstore *ms, const struct craft_hard_state *hs);
void craft_memstore_set_conf_state(struct craft_memstore *ms, const struct craft_conf_state *cs);

/* Installs a snapshot: drops every entry (or, if the store holds the entry at
 * meta->index with meta->term, only those up to it), sets the membership.
 * CRAFT_EINVAL if meta is older than the current snapshot. */
int craft_memstore_apply_snapshot(struct craft_memstore *ms,
                                  const struct craft_snapshot_meta *meta);

/* Records a snapshot of the state machine at index (<= last_index) with the
 * given membership, without dropping entries; compaction is separate. The
 * membership becomes the one initial_state gives: a restarted node starts from
 * this snapshot. */
int craft_memstore_create_snapshot(struct craft_memstore *ms, uint64_t index,
                                   const struct craft_conf_state *cs);

/* Drops entries up to and including index (index <= the snapshot's index is
 * not required; index <= last_index is, else CRAFT_EUNAVAILABLE). Compacting
 * to the current point again returns 0; below it, CRAFT_ECOMPACTED. Compacted
 * past the newest snapshot, the store's snapshot() answers
 * CRAFT_ESNAPSHOT_TEMP until a newer snapshot is created.
 *
 * create_snapshot: CRAFT_EUNAVAILABLE past last_index, CRAFT_EINVAL older than
 * the current snapshot, CRAFT_ECOMPACTED if index was compacted.
 * apply_snapshot: CRAFT_ECOMPACTED older than the compaction point,
 * CRAFT_EINVAL when malformed (term 0 with an index or the reverse, counts
 * above CRAFT_MAX_NODES). */
int craft_memstore_compact(struct craft_memstore *ms, uint64_t index);

/* Convenience getters. */
void craft_memstore_hard_state(const struct craft_memstore *ms, struct craft_hard_state *hs);
uint64_t craft_memstore_first_index(const struct craft_memstore *ms);
uint64_t craft_memstore_last_index(const struct craft_memstore *ms);
/* Total bytes of entry data held. */
uint64_t craft_memstore_bytes(const struct craft_memstore *ms);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_MEMSTORE_H */
