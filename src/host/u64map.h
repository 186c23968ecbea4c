/* A hash map from non-zero uint64_t keys to pointers, for the host's tables
 * (groups by id, pending requests by key, sessions by client id). Chained,
 * grows by doubling; not thread-safe (callers lock). */
#ifndef CRAFT_HOST_U64MAP_H
#define CRAFT_HOST_U64MAP_H

#include <stddef.h>
#include <stdint.h>

struct u64map_node {
    uint64_t key;
    void *value;
    struct u64map_node *next;
};

struct u64map {
    struct u64map_node **buckets;
    size_t n_buckets; /* a power of two, or 0 before the first insert */
    size_t count;
};

void u64map_init(struct u64map *m);
void u64map_free(struct u64map *m); /* frees the nodes, not the values */
void *u64map_get(const struct u64map *m, uint64_t key);
/* 0, or CRAFT_ENOMEM; replaces an existing value. */
int u64map_put(struct u64map *m, uint64_t key, void *value);
/* Removes key and returns its value (NULL if absent). */
void *u64map_remove(struct u64map *m, uint64_t key);

/* Iteration: for (it = 0; (v = u64map_next(m, &it, &key)) != NULL;) ...
 * The map must not change during an iteration (collect keys, then remove). */
void *u64map_next(const struct u64map *m, size_t *it, uint64_t *key);

#endif /* CRAFT_HOST_U64MAP_H */
