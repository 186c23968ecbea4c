/* The raft log as the core sees it: a stable prefix read through the storage
 * interface and an unstable tail (entries and possibly a snapshot) not yet
 * persisted. Entry data of the unstable tail lives in an arena whose blocks
 * are only released in advance, so every pointer handed out in a ready stays
 * valid until then (Raft paper 5.3 for the log rules used here). */
#ifndef CRAFT_LOG_H
#define CRAFT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "craft/raft.h"

/* Most entries read in one go: bounds message and ready sizes when entries are
 * tiny and byte limits do not bite. */
#define LOG_MAX_ENTRIES_PER_READ 4096

struct entry_vec {
    struct craft_entry *v;
    size_t n;
    size_t cap;
};

int entry_vec_reserve(struct entry_vec *ev, size_t extra);
void entry_vec_free(struct entry_vec *ev);

struct arena_block;

struct arena {
    struct arena_block *head; /* oldest */
    struct arena_block *tail; /* being filled */
    struct arena_block *spare;
};

struct unstable {
    bool has_snapshot;
    struct craft_snapshot_meta snapshot;
    struct craft_entry *entries; /* entries[0] has index offset */
    size_t n;
    size_t cap;
    uint64_t offset;
    uint64_t bytes; /* data bytes of entries */
};

struct raft_log {
    const struct craft_storage *storage;
    struct unstable unstable;
    struct arena arena;
    uint64_t committed;
    uint64_t applied;
    uint64_t inmem_bytes; /* data bytes appended and not yet applied (rate limit) */
};

int log_init(struct raft_log *l, const struct craft_storage *storage);
void log_free(struct raft_log *l);

uint64_t log_first_index(const struct raft_log *l);
uint64_t log_last_index(const struct raft_log *l);
uint64_t log_last_term(const struct raft_log *l);

/* Term of entry i: 0 with *term == 0 when i is out of the log's range, an
 * error from storage otherwise (CRAFT_ECOMPACTED for compacted indexes). */
int log_term(const struct raft_log *l, uint64_t i, uint64_t *term);
bool log_match_term(const struct raft_log *l, uint64_t i, uint64_t term);

/* Raft paper 5.4.1: is a log ending at (last_index, last_term) at least as
 * up to date as ours? */
bool log_is_up_to_date(const struct raft_log *l, uint64_t last_index, uint64_t last_term);

/* Appends entries after the last one, copying their data; returns the new
 * last index in *last. Entries may overwrite an unstable or stable suffix. */
int log_append(struct raft_log *l, const struct craft_entry *entries, size_t n);

/* Follower side of AppendEntries (Raft paper 5.3): if the entry at index has
 * log_term, append what is new or conflicting, move commit up to
 * min(committed, last new) and set *last_new; *matched says whether the
 * previous entry matched. CRAFT_ECORRUPT if a conflict lies at or below the
 * commit index (the leader is broken; nothing is changed). */
int log_maybe_append(struct raft_log *l, uint64_t index, uint64_t log_term, uint64_t committed,
                     const struct craft_entry *entries, size_t n, bool *matched,
                     uint64_t *last_new);

/* Largest index <= index whose term is <= term (for rejection hints). */
uint64_t log_find_conflict_by_term(const struct raft_log *l, uint64_t index, uint64_t term,
                                   uint64_t *hint_term);

/* Moves the commit index up (never down), at most to the last index. */
void log_commit_to(struct raft_log *l, uint64_t committed);

/* Leader: commit max_index if its entry is of term (Raft paper 5.4.2). */
bool log_maybe_commit(struct raft_log *l, uint64_t max_index, uint64_t term);

/* Entries [lo, hi) appended to out, at most max_bytes (but at least one) and
 * LOG_MAX_ENTRIES_PER_READ. */
int log_entries(const struct raft_log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                struct entry_vec *out);

/* Replaces the log with a snapshot (follower installing it). */
void log_restore(struct raft_log *l, const struct craft_snapshot_meta *snap);

/* Persistence and application acknowledgements from advance. */
void log_stable_to(struct raft_log *l, uint64_t index, uint64_t term);
void log_stable_snapshot_to(struct raft_log *l, uint64_t index);
void log_applied_to(struct raft_log *l, uint64_t index);
void log_applied_bytes(struct raft_log *l, uint64_t bytes);

/* Index of the last entry known persisted and matching: everything below the
 * unstable tail. */
uint64_t log_stable_index(const struct raft_log *l);

/* Releases arena blocks that only hold data of entries now stable. Only to be
 * called from advance, when no ready is outstanding. */
void log_release(struct raft_log *l);

#endif
