/* The in-memory log store: struct craft_log_store with the WAL's group logic
 * (wal_group.c) and no disk. For tests and the simulator; sync does nothing.
 * Not thread safe. */
#include <craft/wal.h>

#include <stdlib.h>

#include "wal_group.h"

struct mem_store {
    struct craft_log_store store;
    struct wal_groups groups;
};

static int mem_get(struct mem_store *ms, uint64_t id, struct wal_group **g)
{
    return wal_groups_get(&ms->groups, id, 0, g);
}

static const struct wal_group *mem_find(struct mem_store *ms, uint64_t id)
{
    const struct wal_group *g = wal_groups_find(&ms->groups, id);
    return g != NULL ? g : wal_group_empty();
}

static int mem_append(void *data, uint64_t group, const struct craft_entry *entries, size_t n)
{
    struct wal_group *g;
    int rc = mem_get(data, group, &g);
    return rc != 0 ? rc : wal_group_append(g, entries, n, 0, NULL);
}

static int mem_truncate(void *data, uint64_t group, uint64_t index)
{
    struct wal_group *g;
    int rc = mem_get(data, group, &g);
    return rc != 0 ? rc : wal_group_truncate(g, index, 0, NULL);
}

static int mem_save_hard_state(void *data, uint64_t group, const struct craft_hard_state *hs)
{
    struct wal_group *g;
    int rc = mem_get(data, group, &g);
    return rc != 0 ? rc : wal_group_set_hard_state(g, hs, 0, NULL);
}

static int mem_save_conf_state(void *data, uint64_t group, const struct craft_conf_state *cs)
{
    struct wal_group *g;
    int rc = mem_get(data, group, &g);
    return rc != 0 ? rc : wal_group_set_conf_state(g, cs, 0, NULL);
}

static int mem_save_snapshot(void *data, uint64_t group, const struct craft_snapshot_meta *meta)
{
    struct wal_group *g;
    int rc = mem_get(data, group, &g);
    return rc != 0 ? rc : wal_group_set_snapshot(g, meta, 0, NULL);
}

static int mem_compact(void *data, uint64_t group, uint64_t index)
{
    struct wal_group *g;
    int rc = mem_get(data, group, &g);
    return rc != 0 ? rc : wal_group_compact(g, index, 0, NULL);
}

static int mem_remove_group(void *data, uint64_t group)
{
    struct mem_store *ms = data;
    wal_groups_remove(&ms->groups, group);
    return 0;
}

static int mem_entries(void *data, uint64_t group, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                       struct craft_entry *out, size_t cap, size_t *n)
{
    return wal_group_entries(mem_find(data, group), lo, hi, max_bytes, out, cap, n);
}

static int mem_term(void *data, uint64_t group, uint64_t index, uint64_t *term)
{
    return wal_group_term(mem_find(data, group), index, term);
}

static uint64_t mem_first_index(void *data, uint64_t group)
{
    return wal_group_first_index(mem_find(data, group));
}

static uint64_t mem_last_index(void *data, uint64_t group)
{
    return wal_group_last_index(mem_find(data, group));
}

static int mem_initial_state(void *data, uint64_t group, struct craft_hard_state *hs,
                             struct craft_conf_state *cs)
{
    const struct wal_group *g = mem_find(data, group);
    if (hs != NULL)
        *hs = g->hs;
    if (cs != NULL)
        *cs = g->conf;
    return 0;
}

static int mem_snapshot(void *data, uint64_t group, struct craft_snapshot_meta *meta)
{
    *meta = mem_find(data, group)->snap;
    return 0;
}

static int mem_groups(void *data, uint64_t *ids, size_t cap, size_t *n)
{
    struct mem_store *ms = data;
    size_t k = 0;
    for (size_t i = 0; i < ms->groups.cap; i++) {
        if (ms->groups.slots[i] == NULL)
            continue;
        if (k < cap)
            ids[k] = ms->groups.slots[i]->id;
        k++;
    }
    *n = k;
    return 0;
}

static int mem_sync(void *data)
{
    (void)data;
    return 0;
}

static const struct craft_storage *mem_storage(void *data, uint64_t group)
{
    struct wal_group *g;
    return mem_get(data, group, &g) == 0 ? &g->view : NULL;
}

static void mem_close(void *data)
{
    struct mem_store *ms = data;
    wal_groups_free(&ms->groups);
    free(ms);
}

int craft_log_store_mem_create(struct craft_log_store **out)
{
    struct mem_store *ms = calloc(1, sizeof(*ms));
    if (ms == NULL)
        return CRAFT_ENOMEM;
    ms->store = (struct craft_log_store){
        .data = ms,
        .append = mem_append,
        .truncate = mem_truncate,
        .save_hard_state = mem_save_hard_state,
        .save_conf_state = mem_save_conf_state,
        .save_snapshot = mem_save_snapshot,
        .compact = mem_compact,
        .remove_group = mem_remove_group,
        .entries = mem_entries,
        .term = mem_term,
        .first_index = mem_first_index,
        .last_index = mem_last_index,
        .initial_state = mem_initial_state,
        .snapshot = mem_snapshot,
        .groups = mem_groups,
        .sync = mem_sync,
        .storage = mem_storage,
        .close = mem_close,
    };
    *out = &ms->store;
    return 0;
}
