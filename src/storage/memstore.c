/* The in-memory log store (include/craft/memstore.h).
 *
 * Entries live in one growable array of slots. As in etcd's MemoryStorage,
 * slot 0 is a dummy standing for the last compacted entry: it holds that
 * entry's index and term but no data, so the entry at index i is in slot
 * i - slots[0].index, first_index is slots[0].index + 1, and term(first_index
 * - 1) needs no special case. The array only ever holds contiguous indexes.
 *
 * Each entry's data is copied into a block of its own, so its address stays
 * fixed while the array grows, shrinks or shifts, until the entry itself is
 * truncated or compacted away (struct craft_storage requires this).
 *
 * Every mutating function allocates everything it needs before changing
 * anything, so CRAFT_ENOMEM leaves the store as it was.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "craft/memstore.h"

#define MIN_CAPACITY 16

/* One stored entry; data is owned by the store (NULL when len is 0). */
struct slot {
    uint64_t term;
    uint64_t index;
    uint32_t type;
    uint32_t len;
    void *data;
};

struct craft_memstore {
    struct craft_storage storage; /* the read interface, data pointing back here */
    struct slot *slots;           /* slots[0] is the dummy for the last compacted entry */
    size_t n_slots;               /* slots in use, always >= 1 */
    size_t capacity;              /* slots allocated */
    uint64_t bytes;               /* sum of len over the slots in use */
    struct craft_hard_state hard_state;
    struct craft_conf_state conf;        /* the membership as last set */
    struct craft_snapshot_meta snapshot; /* the most recent snapshot, index 0 for none */
};

static uint64_t first_index(const struct craft_memstore *ms)
{
    return ms->slots[0].index + 1;
}

static uint64_t last_index(const struct craft_memstore *ms)
{
    return ms->slots[0].index + (ms->n_slots - 1);
}

/* The slot of index i; the caller has checked slots[0].index <= i <= last_index. */
static struct slot *slot_at(const struct craft_memstore *ms, uint64_t i)
{
    return &ms->slots[i - ms->slots[0].index];
}

static bool conf_state_is_valid(const struct craft_conf_state *cs)
{
    return cs->n_voters <= CRAFT_MAX_NODES && cs->n_voters_outgoing <= CRAFT_MAX_NODES &&
           cs->n_learners <= CRAFT_MAX_NODES && cs->n_learners_next <= CRAFT_MAX_NODES &&
           cs->n_witnesses <= CRAFT_MAX_NODES;
}

/* Makes room for at least `needed` slots. Nothing changes on failure. */
static int reserve(struct craft_memstore *ms, size_t needed)
{
    if (needed <= ms->capacity) {
        return CRAFT_OK;
    }
    size_t capacity = ms->capacity < MIN_CAPACITY ? MIN_CAPACITY : ms->capacity;
    while (capacity < needed) {
        if (capacity > SIZE_MAX / 2) {
            capacity = needed;
            break;
        }
        capacity *= 2;
    }
    if (capacity > SIZE_MAX / sizeof(struct slot)) {
        return CRAFT_ENOMEM;
    }
    struct slot *slots = realloc(ms->slots, capacity * sizeof(struct slot));
    if (slots == NULL) {
        return CRAFT_ENOMEM;
    }
    ms->slots = slots;
    ms->capacity = capacity;
    return CRAFT_OK;
}

/* Gives back memory after a large compaction; failing to shrink is harmless. */
static void maybe_shrink(struct craft_memstore *ms)
{
    if (ms->capacity <= MIN_CAPACITY || ms->n_slots > ms->capacity / 4) {
        return;
    }
    size_t capacity = ms->capacity / 2;
    struct slot *slots = realloc(ms->slots, capacity * sizeof(struct slot));
    if (slots != NULL) {
        ms->slots = slots;
        ms->capacity = capacity;
    }
}

/* Whether a stored slot and an entry are the same entry, bytes included. */
static bool same_entry(const struct slot *s, const struct craft_entry *e)
{
    return s->index == e->index && s->term == e->term && s->type == e->type && s->len == e->len &&
           (e->len == 0 || memcmp(s->data, e->data, e->len) == 0);
}

/* Frees the data of slots [from, n_slots) and forgets them. */
static void truncate_from(struct craft_memstore *ms, size_t from)
{
    for (size_t i = from; i < ms->n_slots; i++) {
        ms->bytes -= ms->slots[i].len;
        free(ms->slots[i].data);
    }
    ms->n_slots = from;
}

/* Drops every entry up to and including index, which the caller has checked
 * to lie in [slots[0].index, last_index]. The entry at index becomes the dummy. */
static void compact_to(struct craft_memstore *ms, uint64_t index)
{
    size_t drop = (size_t)(index - ms->slots[0].index);
    if (drop == 0) {
        return;
    }
    for (size_t i = 1; i <= drop; i++) {
        ms->bytes -= ms->slots[i].len;
        free(ms->slots[i].data);
    }
    struct slot dummy = {.term = ms->slots[drop].term, .index = index};
    ms->slots[0] = dummy;
    memmove(&ms->slots[1], &ms->slots[drop + 1], (ms->n_slots - drop - 1) * sizeof(struct slot));
    ms->n_slots -= drop;
    maybe_shrink(ms);
}

/* ------------------------------------------------------------------------
 * struct craft_storage callbacks.
 * ------------------------------------------------------------------------ */

static int storage_initial_state(void *data, struct craft_hard_state *hs,
                                 struct craft_conf_state *cs)
{
    const struct craft_memstore *ms = data;
    if (ms == NULL || hs == NULL || cs == NULL) {
        return CRAFT_EINVAL;
    }
    *hs = ms->hard_state;
    *cs = ms->conf;
    return CRAFT_OK;
}

static int storage_entries(void *data, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                           struct craft_entry *out, size_t cap, size_t *n)
{
    const struct craft_memstore *ms = data;
    if (ms == NULL || n == NULL || lo > hi) {
        return CRAFT_EINVAL;
    }
    if (lo < first_index(ms)) {
        return CRAFT_ECOMPACTED;
    }
    /* hi > last_index + 1, written so that it cannot wrap. */
    if (hi > 0 && hi - 1 > last_index(ms)) {
        return CRAFT_EUNAVAILABLE;
    }
    *n = 0;
    if (lo == hi) {
        return CRAFT_OK;
    }
    /* The range is not empty, so at least one entry must fit. */
    if (out == NULL || cap == 0) {
        return CRAFT_EINVAL;
    }

    uint64_t total = 0;
    size_t count = 0;
    for (uint64_t i = lo; i < hi && count < cap; i++) {
        const struct slot *s = slot_at(ms, i);
        /* Written as a subtraction so that the sum cannot overflow. */
        if (count > 0 && (total > max_bytes || s->len > max_bytes - total)) {
            break;
        }
        total += s->len;
        out[count].term = s->term;
        out[count].index = s->index;
        out[count].type = s->type;
        out[count].len = s->len;
        out[count].data = s->data;
        count++;
    }
    *n = count;
    return CRAFT_OK;
}

static int storage_term(void *data, uint64_t i, uint64_t *term)
{
    const struct craft_memstore *ms = data;
    if (ms == NULL || term == NULL) {
        return CRAFT_EINVAL;
    }
    if (i < ms->slots[0].index) {
        return CRAFT_ECOMPACTED;
    }
    if (i > last_index(ms)) {
        return CRAFT_EUNAVAILABLE;
    }
    *term = slot_at(ms, i)->term;
    return CRAFT_OK;
}

static uint64_t storage_first_index(void *data)
{
    const struct craft_memstore *ms = data;
    return ms == NULL ? 0 : first_index(ms);
}

static uint64_t storage_last_index(void *data)
{
    const struct craft_memstore *ms = data;
    return ms == NULL ? 0 : last_index(ms);
}

/* A snapshot older than the compaction point is useless to a follower (the
 * entries right after it are gone), so until the host records a newer one the
 * answer is CRAFT_ESNAPSHOT_TEMP. */
static int storage_snapshot(void *data, struct craft_snapshot_meta *meta)
{
    const struct craft_memstore *ms = data;
    if (ms == NULL || meta == NULL) {
        return CRAFT_EINVAL;
    }
    if (ms->snapshot.index < ms->slots[0].index) {
        return CRAFT_ESNAPSHOT_TEMP;
    }
    *meta = ms->snapshot;
    return CRAFT_OK;
}

/* ------------------------------------------------------------------------
 * The public API.
 * ------------------------------------------------------------------------ */

int craft_memstore_create(struct craft_memstore **out)
{
    if (out == NULL) {
        return CRAFT_EINVAL;
    }
    *out = NULL;
    struct craft_memstore *ms = calloc(1, sizeof(*ms));
    if (ms == NULL) {
        return CRAFT_ENOMEM;
    }
    if (reserve(ms, 1) != CRAFT_OK) {
        free(ms);
        return CRAFT_ENOMEM;
    }
    memset(&ms->slots[0], 0, sizeof(ms->slots[0]));
    ms->n_slots = 1;
    ms->storage.data = ms;
    ms->storage.initial_state = storage_initial_state;
    ms->storage.entries = storage_entries;
    ms->storage.term = storage_term;
    ms->storage.first_index = storage_first_index;
    ms->storage.last_index = storage_last_index;
    ms->storage.snapshot = storage_snapshot;
    *out = ms;
    return CRAFT_OK;
}

void craft_memstore_destroy(struct craft_memstore *ms)
{
    if (ms == NULL) {
        return;
    }
    truncate_from(ms, 1);
    free(ms->slots);
    free(ms);
}

const struct craft_storage *craft_memstore_storage(struct craft_memstore *ms)
{
    return ms == NULL ? NULL : &ms->storage;
}

int craft_memstore_append(struct craft_memstore *ms, const struct craft_entry *entries, size_t n)
{
    if (ms == NULL || (entries == NULL && n > 0)) {
        return CRAFT_EINVAL;
    }
    if (n == 0) {
        return CRAFT_OK;
    }
    /* Validate the whole batch before touching anything. */
    if (entries[0].index == 0) {
        return CRAFT_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].len > 0 && entries[i].data == NULL) {
            return CRAFT_EINVAL;
        }
        if (i > 0 &&
            (entries[i - 1].index == UINT64_MAX || entries[i].index != entries[i - 1].index + 1)) {
            return CRAFT_EINVAL;
        }
    }

    /* Entries already compacted are skipped: they are committed, so they
     * match what the snapshot covers (Raft paper 5.4, State Machine Safety). */
    uint64_t first = first_index(ms);
    size_t skip = 0;
    if (entries[0].index < first) {
        uint64_t compacted = first - entries[0].index;
        if (compacted >= n) {
            return CRAFT_OK;
        }
        skip = (size_t)compacted;
    }
    const struct craft_entry *batch = entries + skip;
    size_t count = n - skip;
    /* batch[0].index > last_index + 1; the index is non-zero, so no wrap. */
    if (batch[0].index - 1 > last_index(ms)) {
        return CRAFT_EINVAL;
    }
    /* Slots before the batch's first index stay, the dummy included. So do
     * leading entries of the batch identical to those stored: replacing them
     * would change nothing but the address of their data, which a caller may
     * still be holding (a duplicated append, for instance). */
    size_t keep = (size_t)(batch[0].index - ms->slots[0].index);
    while (count > 0 && keep < ms->n_slots && same_entry(&ms->slots[keep], batch)) {
        keep++;
        batch++;
        count--;
    }
    if (count == 0) {
        /* An entry at index i replaces every entry >= i, even when it is
         * identical to the one it replaces. */
        truncate_from(ms, keep);
        return CRAFT_OK;
    }
    if (count > SIZE_MAX - keep) {
        return CRAFT_ENOMEM;
    }

    void **copies = calloc(count, sizeof(*copies));
    if (copies == NULL) {
        return CRAFT_ENOMEM;
    }
    int rc = CRAFT_OK;
    for (size_t i = 0; i < count; i++) {
        if (batch[i].len == 0) {
            continue;
        }
        copies[i] = malloc(batch[i].len);
        if (copies[i] == NULL) {
            rc = CRAFT_ENOMEM;
            goto out_free_copies;
        }
        memcpy(copies[i], batch[i].data, batch[i].len);
    }
    rc = reserve(ms, keep + count);
    if (rc != CRAFT_OK) {
        goto out_free_copies;
    }

    /* Nothing can fail from here on. An entry at index i replaces every
     * entry >= i. */
    truncate_from(ms, keep);
    for (size_t i = 0; i < count; i++) {
        struct slot *s = &ms->slots[keep + i];
        s->term = batch[i].term;
        s->index = batch[i].index;
        s->type = batch[i].type;
        s->len = batch[i].len;
        s->data = copies[i];
        ms->bytes += batch[i].len;
    }
    ms->n_slots = keep + count;
    free(copies);
    return CRAFT_OK;

out_free_copies:
    for (size_t i = 0; i < count; i++) {
        free(copies[i]);
    }
    free(copies);
    return rc;
}

void craft_memstore_set_hard_state(struct craft_memstore *ms, const struct craft_hard_state *hs)
{
    if (ms == NULL || hs == NULL) {
        return;
    }
    ms->hard_state = *hs;
}

void craft_memstore_set_conf_state(struct craft_memstore *ms, const struct craft_conf_state *cs)
{
    if (ms == NULL || cs == NULL) {
        return;
    }
    ms->conf = *cs;
}

/* Besides the documented CRAFT_EINVAL for a snapshot older than the current
 * one, a snapshot older than the compaction point is CRAFT_ECOMPACTED (the
 * store can no longer tell whether it matches), and a malformed meta (term 0
 * at a non-zero index, a count past CRAFT_MAX_NODES) is CRAFT_EINVAL. */
int craft_memstore_apply_snapshot(struct craft_memstore *ms, const struct craft_snapshot_meta *meta)
{
    if (ms == NULL || meta == NULL || !conf_state_is_valid(&meta->conf) ||
        (meta->index == 0) != (meta->term == 0)) {
        return CRAFT_EINVAL;
    }
    if (meta->index < ms->snapshot.index) {
        return CRAFT_EINVAL;
    }
    if (meta->index < ms->slots[0].index) {
        return CRAFT_ECOMPACTED;
    }

    if (meta->index <= last_index(ms) && slot_at(ms, meta->index)->term == meta->term) {
        /* The log already holds the snapshot's last entry: what follows it is
         * still valid (Raft paper 7, InstallSnapshot step 6). */
        compact_to(ms, meta->index);
    } else {
        truncate_from(ms, 1);
        struct slot dummy = {.term = meta->term, .index = meta->index};
        ms->slots[0] = dummy;
        maybe_shrink(ms);
    }
    ms->snapshot = *meta;
    ms->conf = meta->conf;
    return CRAFT_OK;
}

/* index past last_index is CRAFT_EUNAVAILABLE, an index already compacted away
 * (its term is gone) CRAFT_ECOMPACTED, and an index older than the current
 * snapshot CRAFT_EINVAL, as in craft_memstore_apply_snapshot. */
int craft_memstore_create_snapshot(struct craft_memstore *ms, uint64_t index,
                                   const struct craft_conf_state *cs)
{
    if (ms == NULL || cs == NULL || !conf_state_is_valid(cs)) {
        return CRAFT_EINVAL;
    }
    if (index > last_index(ms)) {
        return CRAFT_EUNAVAILABLE;
    }
    if (index < ms->snapshot.index) {
        return CRAFT_EINVAL;
    }
    if (index < ms->slots[0].index) {
        return CRAFT_ECOMPACTED;
    }
    ms->snapshot.index = index;
    ms->snapshot.term = slot_at(ms, index)->term;
    ms->snapshot.conf = *cs;
    /* A restart starts from the newest snapshot: its membership is the one
     * initial_state gives, and the core re-applies later changes. */
    ms->conf = *cs;
    return CRAFT_OK;
}

/* Compacting to the current compaction point again is a no-op; only an index
 * below it is "already compacted past" (CRAFT_ECOMPACTED). An index beyond
 * last_index is CRAFT_EUNAVAILABLE. */
int craft_memstore_compact(struct craft_memstore *ms, uint64_t index)
{
    if (ms == NULL) {
        return CRAFT_EINVAL;
    }
    if (index < ms->slots[0].index) {
        return CRAFT_ECOMPACTED;
    }
    if (index > last_index(ms)) {
        return CRAFT_EUNAVAILABLE;
    }
    compact_to(ms, index);
    return CRAFT_OK;
}

void craft_memstore_hard_state(const struct craft_memstore *ms, struct craft_hard_state *hs)
{
    if (hs == NULL) {
        return;
    }
    if (ms == NULL) {
        memset(hs, 0, sizeof(*hs));
        return;
    }
    *hs = ms->hard_state;
}

uint64_t craft_memstore_first_index(const struct craft_memstore *ms)
{
    return ms == NULL ? 0 : first_index(ms);
}

uint64_t craft_memstore_last_index(const struct craft_memstore *ms)
{
    return ms == NULL ? 0 : last_index(ms);
}

uint64_t craft_memstore_bytes(const struct craft_memstore *ms)
{
    return ms == NULL ? 0 : ms->bytes;
}
