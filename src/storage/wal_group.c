/* Per-group log state: table of groups, live operations, replay, reads.
 * See wal_group.h for the model. */
#include "wal_group.h"

#include <stdlib.h>
#include <string.h>

/* ---- the table ---- */

static size_t slot_of(uint64_t id, size_t cap)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

static void group_free(struct wal_group *g)
{
    for (size_t i = 0; i < g->count; i++)
        free(g->ents[g->head + i].data);
    free(g->ents);
    free(g);
}

void wal_groups_free(struct wal_groups *gs)
{
    for (size_t i = 0; i < gs->cap; i++)
        if (gs->slots[i] != NULL)
            group_free(gs->slots[i]);
    free(gs->slots);
    gs->slots = NULL;
    gs->cap = gs->count = 0;
}

struct wal_group *wal_groups_find(const struct wal_groups *gs, uint64_t id)
{
    if (gs->cap == 0)
        return NULL;
    for (size_t i = slot_of(id, gs->cap);; i = (i + 1) & (gs->cap - 1)) {
        struct wal_group *g = gs->slots[i];
        if (g == NULL)
            return NULL;
        if (g->id == id)
            return g;
    }
}

static void insert_slot(struct wal_group **slots, size_t cap, struct wal_group *g)
{
    size_t i = slot_of(g->id, cap);
    while (slots[i] != NULL)
        i = (i + 1) & (cap - 1);
    slots[i] = g;
}

static int grow_table(struct wal_groups *gs)
{
    size_t cap = gs->cap ? gs->cap * 2 : 16;
    struct wal_group **slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return CRAFT_ENOMEM;
    for (size_t i = 0; i < gs->cap; i++)
        if (gs->slots[i] != NULL)
            insert_slot(slots, cap, gs->slots[i]);
    free(gs->slots);
    gs->slots = slots;
    gs->cap = cap;
    return 0;
}

int wal_groups_get(struct wal_groups *gs, uint64_t id, uint64_t seq, struct wal_group **out)
{
    struct wal_group *g = wal_groups_find(gs, id);
    if (g != NULL) {
        *out = g;
        return 0;
    }
    if ((gs->count + 1) * 4 > gs->cap * 3) {
        int rc = grow_table(gs);
        if (rc != 0)
            return rc;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return CRAFT_ENOMEM;
    g->id = id;
    for (int i = 0; i < WAL_META_FIELDS; i++)
        g->meta_seqs[i] = seq;
    wal_group_init_view(g);
    insert_slot(gs->slots, gs->cap, g);
    gs->count++;
    *out = g;
    return 0;
}

void wal_groups_remove(struct wal_groups *gs, uint64_t id)
{
    if (gs->cap == 0)
        return;
    size_t i = slot_of(id, gs->cap);
    for (;; i = (i + 1) & (gs->cap - 1)) {
        if (gs->slots[i] == NULL)
            return;
        if (gs->slots[i]->id == id)
            break;
    }
    group_free(gs->slots[i]);
    gs->slots[i] = NULL;
    gs->count--;
    /* Backward-shift deletion: re-place the rest of the cluster. */
    for (size_t j = (i + 1) & (gs->cap - 1); gs->slots[j] != NULL; j = (j + 1) & (gs->cap - 1)) {
        struct wal_group *g = gs->slots[j];
        gs->slots[j] = NULL;
        insert_slot(gs->slots, gs->cap, g);
    }
}

static const struct wal_group empty_group;

const struct wal_group *wal_group_empty(void)
{
    return &empty_group;
}

/* ---- entry array helpers ---- */

static struct wal_entry *ent_at(const struct wal_group *g, uint64_t index)
{
    return &g->ents[g->head + (size_t)(index - g->compact_index - 1)];
}

/* Room for extra more entries after the current ones. */
static int reserve(struct wal_group *g, size_t extra)
{
    if (g->head + g->count + extra <= g->cap)
        return 0;
    if (g->head > 0) {
        memmove(g->ents, g->ents + g->head, g->count * sizeof(*g->ents));
        g->head = 0;
        if (g->count + extra <= g->cap)
            return 0;
    }
    size_t cap = g->cap ? g->cap * 2 : 16;
    while (cap < g->count + extra)
        cap *= 2;
    struct wal_entry *ents = realloc(g->ents, cap * sizeof(*ents));
    if (ents == NULL)
        return CRAFT_ENOMEM;
    g->ents = ents;
    g->cap = cap;
    return 0;
}

/* Drops entries >= index (index > compact_index). */
static void drop_from(struct wal_group *g, uint64_t index)
{
    uint64_t last = wal_group_last_index(g);
    if (index > last)
        return;
    size_t keep = (size_t)(index - g->compact_index - 1);
    for (size_t i = keep; i < g->count; i++) {
        struct wal_entry *e = &g->ents[g->head + i];
        g->bytes -= e->len;
        free(e->data);
    }
    g->count = keep;
}

/* Drops entries <= index; the log then starts at index + 1. */
static void drop_through(struct wal_group *g, uint64_t index, uint64_t term)
{
    if (index <= g->compact_index && !g->gap)
        return;
    /* Callers never go below the compaction point (in a gap, the provisional one). */
    uint64_t last = wal_group_last_index(g);
    size_t k = index >= last ? g->count : (size_t)(index - g->compact_index);
    for (size_t i = 0; i < k; i++) {
        struct wal_entry *e = &g->ents[g->head + i];
        g->bytes -= e->len;
        free(e->data);
    }
    g->head += k;
    g->count -= k;
    if (g->count == 0)
        g->head = 0;
    g->compact_index = index;
    g->compact_term = term;
}

static void drop_all(struct wal_group *g)
{
    drop_from(g, g->compact_index + 1);
    g->head = 0;
}

/* ---- live operations ---- */

int wal_group_append(struct wal_group *g, const struct craft_entry *entries, size_t n, uint64_t seq,
                     struct wal_buf *enc)
{
    if (n == 0)
        return 0;
    if (entries[0].index == 0)
        return CRAFT_EINVAL;
    for (size_t i = 1; i < n; i++)
        if (entries[i].index != entries[i - 1].index + 1)
            return CRAFT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (entries[i].len > 0 && entries[i].data == NULL)
            return CRAFT_EINVAL;
    uint64_t last = wal_group_last_index(g);
    if (entries[0].index > last + 1)
        return CRAFT_EINVAL;
    if (entries[0].index <= g->compact_index) {
        uint64_t skip = g->compact_index + 1 - entries[0].index;
        if (skip >= n)
            return 0; /* all already compacted */
        entries += skip;
        n -= (size_t)skip;
    }
    uint64_t first = entries[0].index;
    size_t keep = (size_t)(first - g->compact_index - 1);

    /* Allocate everything first, so that nothing can fail once we change state. */
    struct wal_entry *copies = malloc(n * sizeof(*copies));
    if (copies == NULL)
        return CRAFT_ENOMEM;
    size_t made = 0;
    int rc = 0;
    for (; made < n; made++) {
        const struct craft_entry *e = &entries[made];
        struct wal_entry *c = &copies[made];
        c->term = e->term;
        c->type = e->type;
        c->len = e->len;
        c->seq = seq;
        c->data = NULL;
        if (e->len > 0) {
            c->data = malloc(e->len);
            if (c->data == NULL) {
                rc = CRAFT_ENOMEM;
                goto err_free_copies;
            }
            memcpy(c->data, e->data, e->len);
        }
    }
    /* Entries kept stay where they are; reserve counts from the kept prefix. */
    if (keep + n > g->count) {
        rc = reserve(g, keep + n - g->count);
        if (rc != 0)
            goto err_free_copies;
    }
    if (enc != NULL) {
        size_t saved = enc->len;
        size_t start = 0, bytes = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            bytes += entries[i].len + 16;
            if (bytes >= WAL_ENTRIES_SPLIT || i == n - 1) {
                rc = wal_encode_entries(enc, g->id, entries + start, i + 1 - start);
                start = i + 1;
                bytes = 0;
            }
        }
        if (rc != 0) {
            enc->len = saved;
            goto err_free_copies;
        }
    }
    drop_from(g, first);
    memcpy(&g->ents[g->head + keep], copies, n * sizeof(*copies));
    g->count = keep + n;
    for (size_t i = 0; i < n; i++)
        g->bytes += copies[i].len;
    free(copies);
    return 0;

err_free_copies:
    for (size_t i = 0; i < made; i++)
        free(copies[i].data);
    free(copies);
    return rc;
}

int wal_group_truncate(struct wal_group *g, uint64_t index, uint64_t seq, struct wal_buf *enc)
{
    if (index <= g->compact_index)
        return CRAFT_ECOMPACTED;
    if (index > wal_group_last_index(g))
        return 0;
    if (enc != NULL) {
        int rc = wal_encode_truncate(enc, g->id, index);
        if (rc != 0)
            return rc;
    }
    (void)seq;
    drop_from(g, index);
    return 0;
}

int wal_group_set_hard_state(struct wal_group *g, const struct craft_hard_state *hs, uint64_t seq,
                             struct wal_buf *enc)
{
    if (enc != NULL) {
        int rc = wal_encode_hard_state(enc, g->id, hs);
        if (rc != 0)
            return rc;
    }
    g->hs = *hs;
    g->meta_seqs[WAL_META_HARD_STATE] = seq;
    return 0;
}

static bool conf_ok(const struct craft_conf_state *cs)
{
    return cs->n_voters <= CRAFT_MAX_NODES && cs->n_voters_outgoing <= CRAFT_MAX_NODES &&
           cs->n_learners <= CRAFT_MAX_NODES && cs->n_learners_next <= CRAFT_MAX_NODES &&
           cs->n_witnesses <= CRAFT_MAX_NODES;
}

int wal_group_set_conf_state(struct wal_group *g, const struct craft_conf_state *cs, uint64_t seq,
                             struct wal_buf *enc)
{
    if (!conf_ok(cs))
        return CRAFT_EINVAL;
    if (enc != NULL) {
        int rc = wal_encode_conf_state(enc, g->id, cs);
        if (rc != 0)
            return rc;
    }
    g->conf = *cs;
    g->meta_seqs[WAL_META_CONF] = seq;
    return 0;
}

/* Applies a snapshot's metadata (craft_log_store.save_snapshot's rule), set
 * by a record in segment seq. The membership becomes the snapshot's in every
 * case: a restarted node starts applying after the newest snapshot, and
 * initial_state must give that snapshot's membership (raft.h). */
static void apply_snapshot(struct wal_group *g, const struct craft_snapshot_meta *meta,
                           uint64_t seq)
{
    uint64_t old_compact = g->compact_index;
    bool installed = false;
    uint64_t last = wal_group_last_index(g);
    if (g->gap) {
        if (meta->index >= g->compact_index) {
            if (meta->index == g->compact_index ||
                (meta->index <= last && ent_at(g, meta->index)->term == meta->term)) {
                drop_through(g, meta->index, meta->term);
            } else {
                drop_all(g);
                g->compact_index = meta->index;
                g->compact_term = meta->term;
                installed = true;
            }
            g->gap = false;
        }
    } else if (meta->index <= g->compact_index) {
        /* older than the compaction point: entries are kept */
    } else if (meta->index <= last && ent_at(g, meta->index)->term == meta->term) {
        /* the log matches the snapshot: keep the entries, compact separately */
    } else {
        drop_all(g);
        g->compact_index = meta->index;
        g->compact_term = meta->term;
        installed = true;
    }
    g->snap = *meta;
    g->conf = meta->conf;
    g->meta_seqs[WAL_META_SNAPSHOT] = seq;
    g->meta_seqs[WAL_META_CONF] = seq;
    if (g->compact_index != old_compact || installed)
        g->meta_seqs[WAL_META_COMPACT] = seq;
}

int wal_group_set_snapshot(struct wal_group *g, const struct craft_snapshot_meta *meta,
                           uint64_t seq, struct wal_buf *enc)
{
    if (meta->index < g->snap.index || meta->index == 0 || !conf_ok(&meta->conf))
        return CRAFT_EINVAL;
    if (enc != NULL) {
        int rc = wal_encode_snapshot(enc, g->id, meta);
        if (rc != 0)
            return rc;
    }
    apply_snapshot(g, meta, seq);
    return 0;
}

int wal_group_compact(struct wal_group *g, uint64_t index, uint64_t seq, struct wal_buf *enc)
{
    if (index <= g->compact_index)
        return CRAFT_ECOMPACTED;
    if (index > wal_group_last_index(g))
        return CRAFT_EUNAVAILABLE;
    uint64_t term = ent_at(g, index)->term;
    if (enc != NULL) {
        int rc = wal_encode_compact(enc, g->id, index, term);
        if (rc != 0)
            return rc;
    }
    drop_through(g, index, term);
    g->meta_seqs[WAL_META_COMPACT] = seq;
    return 0;
}

int wal_group_encode_state(struct wal_group *g, uint64_t seq, struct wal_buf *enc)
{
    int rc = wal_encode_group_state(enc, g->id, &g->hs, &g->conf, &g->snap, g->compact_index,
                                    g->compact_term);
    if (rc == 0)
        for (int i = 0; i < WAL_META_FIELDS; i++)
            g->meta_seqs[i] = seq;
    return rc;
}

/* ---- replay ---- */

/* Puts one entry read back from the log, as the live append did. */
static int replay_put(struct wal_group *g, const struct craft_entry *e, uint64_t seq)
{
    uint64_t last = wal_group_last_index(g);
    if (e->index > last + 1 || (g->gap && e->index <= g->compact_index)) {
        /* Entries before this one were in a deleted segment: they must turn
         * out compacted by a later record (checked at the end of replay). */
        drop_all(g);
        g->compact_index = e->index - 1;
        g->compact_term = 0;
        g->gap = true;
    } else if (e->index <= g->compact_index) {
        return 0; /* compacted when written */
    } else if (e->index <= last) {
        drop_from(g, e->index);
    }
    int rc = reserve(g, 1);
    if (rc != 0)
        return rc;
    struct wal_entry *c = &g->ents[g->head + g->count];
    c->term = e->term;
    c->type = e->type;
    c->len = e->len;
    c->seq = seq;
    c->data = NULL;
    if (e->len > 0) {
        c->data = malloc(e->len);
        if (c->data == NULL)
            return CRAFT_ENOMEM;
        memcpy(c->data, e->data, e->len);
    }
    g->count++;
    g->bytes += e->len;
    return 0;
}

int wal_groups_replay(struct wal_groups *gs, const struct wal_record *rec, uint64_t seq)
{
    struct wal_group *g;
    if (rec->type == WAL_REC_REMOVE_GROUP) {
        wal_groups_remove(gs, rec->group);
        return 0;
    }
    int rc = wal_groups_get(gs, rec->group, seq, &g);
    if (rc != 0)
        return rc;
    switch (rec->type) {
    case WAL_REC_ENTRIES: {
        struct wal_entries_iter it;
        struct craft_entry e;
        wal_entries_iter_init(&it, rec);
        while (wal_entries_next(&it, &e)) {
            rc = replay_put(g, &e, seq);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    case WAL_REC_HARD_STATE:
        g->hs = rec->hs;
        g->meta_seqs[WAL_META_HARD_STATE] = seq;
        break;
    case WAL_REC_CONF_STATE:
        g->conf = rec->conf;
        g->meta_seqs[WAL_META_CONF] = seq;
        break;
    case WAL_REC_SNAPSHOT:
        apply_snapshot(g, &rec->snap, seq);
        break;
    case WAL_REC_COMPACT:
        if (g->gap ? rec->index >= g->compact_index : rec->index > g->compact_index) {
            drop_through(g, rec->index, rec->term);
            g->gap = false;
        }
        g->meta_seqs[WAL_META_COMPACT] = seq;
        break;
    case WAL_REC_TRUNCATE:
        if (rec->index > g->compact_index) {
            drop_from(g, rec->index);
        } else if (g->gap) {
            drop_all(g);
            g->compact_index = rec->index - 1;
        }
        break;
    case WAL_REC_GROUP_STATE:
        g->hs = rec->hs;
        g->conf = rec->conf;
        g->snap = rec->snap;
        if (g->gap ? rec->compact_index >= g->compact_index
                   : rec->compact_index > g->compact_index) {
            drop_through(g, rec->compact_index, rec->compact_term);
            g->gap = false;
        } else if (!g->gap && rec->compact_index == g->compact_index) {
            g->compact_term = rec->compact_term;
        }
        for (int i = 0; i < WAL_META_FIELDS; i++)
            g->meta_seqs[i] = seq;
        break;
    }
    return 0;
}

/* ---- reads ---- */

int wal_group_entries(const struct wal_group *g, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct craft_entry *out, size_t cap, size_t *n)
{
    *n = 0;
    if (lo <= g->compact_index)
        return CRAFT_ECOMPACTED;
    if (hi > wal_group_last_index(g) + 1)
        return CRAFT_EUNAVAILABLE;
    if (lo > hi)
        return CRAFT_EINVAL;
    uint64_t bytes = 0;
    size_t k = 0;
    for (uint64_t i = lo; i < hi && k < cap; i++) {
        const struct wal_entry *e = ent_at(g, i);
        if (k > 0 && bytes + e->len > max_bytes)
            break;
        bytes += e->len;
        out[k].index = i;
        out[k].term = e->term;
        out[k].type = e->type;
        out[k].len = e->len;
        out[k].data = e->data;
        k++;
    }
    *n = k;
    return 0;
}

int wal_group_term(const struct wal_group *g, uint64_t index, uint64_t *term)
{
    if (index < g->compact_index)
        return CRAFT_ECOMPACTED;
    if (index > wal_group_last_index(g))
        return CRAFT_EUNAVAILABLE;
    *term = index == g->compact_index ? g->compact_term : ent_at(g, index)->term;
    return 0;
}

/* ---- raft.h's struct craft_storage over one group ---- */

static int view_initial_state(void *data, struct craft_hard_state *hs, struct craft_conf_state *cs)
{
    const struct wal_group *g = data;
    if (hs != NULL)
        *hs = g->hs;
    if (cs != NULL)
        *cs = g->conf;
    return 0;
}

static int view_entries(void *data, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                        struct craft_entry *out, size_t cap, size_t *n)
{
    return wal_group_entries(data, lo, hi, max_bytes, out, cap, n);
}

static int view_term(void *data, uint64_t i, uint64_t *term)
{
    return wal_group_term(data, i, term);
}

static uint64_t view_first_index(void *data)
{
    return wal_group_first_index(data);
}

static uint64_t view_last_index(void *data)
{
    return wal_group_last_index(data);
}

static int view_snapshot(void *data, struct craft_snapshot_meta *meta)
{
    const struct wal_group *g = data;
    *meta = g->snap;
    return 0;
}

void wal_group_init_view(struct wal_group *g)
{
    g->view.data = g;
    g->view.initial_state = view_initial_state;
    g->view.entries = view_entries;
    g->view.term = view_term;
    g->view.first_index = view_first_index;
    g->view.last_index = view_last_index;
    g->view.snapshot = view_snapshot;
}
