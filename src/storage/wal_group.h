/* The in-memory state of one raft group's log, and the table of groups.
 *
 * Shared by the WAL (live writes and replay on recovery) and the in-memory
 * log store: the one place where "an entry at index i replaces every entry
 * >= i", compaction, truncation and snapshot installation are defined. Live
 * operations validate, optionally encode their WAL record into a buffer, then
 * change the state; replay applies a decoded record the way the live
 * operation did.
 *
 * Entries live in an array holding entries compact_index + 1 .. last, each
 * with its data in an allocation of its own, so a data pointer stays valid
 * until that entry is truncated or compacted (struct craft_storage's rule).
 */
#ifndef CRAFT_STORAGE_WAL_GROUP_H
#define CRAFT_STORAGE_WAL_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/raft.h>

#include "wal_record.h"

struct wal_entry {
    uint64_t term;
    uint64_t seq; /* segment that holds it (a lower bound: the one current when written) */
    uint32_t type;
    uint32_t len;
    uint8_t *data; /* owned; NULL when len is 0 */
};

enum { WAL_META_HARD_STATE, WAL_META_CONF, WAL_META_SNAPSHOT, WAL_META_COMPACT, WAL_META_FIELDS };

struct wal_group {
    uint64_t id;
    struct craft_hard_state hs;
    struct craft_conf_state conf;
    struct craft_snapshot_meta snap; /* the last recorded snapshot (index 0: none) */
    uint64_t compact_index;          /* entries <= this are gone; first index is this + 1 */
    uint64_t compact_term;           /* term of entry compact_index */
    struct wal_entry *ents;          /* ents[head .. head + count) */
    size_t head, count, cap;
    uint64_t bytes; /* data bytes held */
    /* For each piece of metadata, a lower bound of the segment holding the
     * record that last set it: the group needs no segment before the least
     * of these for its metadata (wal_group_meta_seq). */
    uint64_t meta_seqs[WAL_META_FIELDS];
    bool gap;                  /* replay only: entries before first index not yet
                                  accounted for (their segment was deleted) */
    struct craft_storage view; /* raft.h's read interface over this group */
};

static inline uint64_t wal_group_meta_seq(const struct wal_group *g)
{
    uint64_t m = g->meta_seqs[0];
    for (int i = 1; i < WAL_META_FIELDS; i++)
        if (g->meta_seqs[i] < m)
            m = g->meta_seqs[i];
    return m;
}

/* Open-addressing table of groups by id. */
struct wal_groups {
    struct wal_group **slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

void wal_groups_free(struct wal_groups *gs);
struct wal_group *wal_groups_find(const struct wal_groups *gs, uint64_t id);
/* Finds or creates (metadata segments = seq for a new one). */
int wal_groups_get(struct wal_groups *gs, uint64_t id, uint64_t seq, struct wal_group **out);
void wal_groups_remove(struct wal_groups *gs, uint64_t id);
/* Iteration: for (size_t i = 0; i < gs->cap; i++) if (gs->slots[i]) ... */

/* An empty group, for reads of a group that does not exist. */
const struct wal_group *wal_group_empty(void);

static inline uint64_t wal_group_first_index(const struct wal_group *g)
{
    return g->compact_index + 1;
}

static inline uint64_t wal_group_last_index(const struct wal_group *g)
{
    return g->compact_index + g->count;
}

/* Live operations: validate, encode the record into enc if not NULL (on
 * failure enc is left as it was), then apply. seq: the current segment. */
int wal_group_append(struct wal_group *g, const struct craft_entry *entries, size_t n, uint64_t seq,
                     struct wal_buf *enc);
int wal_group_truncate(struct wal_group *g, uint64_t index, uint64_t seq, struct wal_buf *enc);
int wal_group_set_hard_state(struct wal_group *g, const struct craft_hard_state *hs, uint64_t seq,
                             struct wal_buf *enc);
int wal_group_set_conf_state(struct wal_group *g, const struct craft_conf_state *cs, uint64_t seq,
                             struct wal_buf *enc);
int wal_group_set_snapshot(struct wal_group *g, const struct craft_snapshot_meta *meta,
                           uint64_t seq, struct wal_buf *enc);
int wal_group_compact(struct wal_group *g, uint64_t index, uint64_t seq, struct wal_buf *enc);
/* Encodes a GROUP_STATE record (all metadata) and notes it is in segment seq. */
int wal_group_encode_state(struct wal_group *g, uint64_t seq, struct wal_buf *enc);

/* Replay of one decoded record found in segment seq. 0 or CRAFT_ENOMEM. */
int wal_groups_replay(struct wal_groups *gs, const struct wal_record *rec, uint64_t seq);

/* Reads (raft.h semantics). */
int wal_group_entries(const struct wal_group *g, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct craft_entry *out, size_t cap, size_t *n);
int wal_group_term(const struct wal_group *g, uint64_t index, uint64_t *term);

/* Points g->view at g. */
void wal_group_init_view(struct wal_group *g);

#endif /* CRAFT_STORAGE_WAL_GROUP_H */
