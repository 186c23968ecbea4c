/* A chained hash map from uint64_t to pointers: see u64map.h. */
#include "u64map.h"

#include <stdlib.h>

#include <craft/raft.h>

static size_t slot(const struct u64map *m, uint64_t key)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (m->n_buckets - 1);
}

void u64map_init(struct u64map *m)
{
    m->buckets = NULL;
    m->n_buckets = 0;
    m->count = 0;
}

void u64map_free(struct u64map *m)
{
    for (size_t i = 0; i < m->n_buckets; i++) {
        struct u64map_node *n = m->buckets[i];
        while (n != NULL) {
            struct u64map_node *next = n->next;
            free(n);
            n = next;
        }
    }
    free(m->buckets);
    u64map_init(m);
}

void *u64map_get(const struct u64map *m, uint64_t key)
{
    if (m->n_buckets == 0)
        return NULL;
    for (struct u64map_node *n = m->buckets[slot(m, key)]; n != NULL; n = n->next)
        if (n->key == key)
            return n->value;
    return NULL;
}

static int grow(struct u64map *m)
{
    size_t cap = m->n_buckets == 0 ? 64 : m->n_buckets * 2;
    struct u64map_node **b = calloc(cap, sizeof(*b));
    if (b == NULL)
        return CRAFT_ENOMEM;
    struct u64map old = *m;
    m->buckets = b;
    m->n_buckets = cap;
    for (size_t i = 0; i < old.n_buckets; i++) {
        struct u64map_node *n = old.buckets[i];
        while (n != NULL) {
            struct u64map_node *next = n->next;
            size_t s = slot(m, n->key);
            n->next = m->buckets[s];
            m->buckets[s] = n;
            n = next;
        }
    }
    free(old.buckets);
    return 0;
}

int u64map_put(struct u64map *m, uint64_t key, void *value)
{
    if (m->n_buckets > 0) {
        for (struct u64map_node *n = m->buckets[slot(m, key)]; n != NULL; n = n->next) {
            if (n->key == key) {
                n->value = value;
                return 0;
            }
        }
    }
    if (m->count >= m->n_buckets && grow(m) != 0)
        return CRAFT_ENOMEM;
    struct u64map_node *n = malloc(sizeof(*n));
    if (n == NULL)
        return CRAFT_ENOMEM;
    size_t s = slot(m, key);
    n->key = key;
    n->value = value;
    n->next = m->buckets[s];
    m->buckets[s] = n;
    m->count++;
    return 0;
}

void *u64map_remove(struct u64map *m, uint64_t key)
{
    if (m->n_buckets == 0)
        return NULL;
    struct u64map_node **p = &m->buckets[slot(m, key)];
    for (; *p != NULL; p = &(*p)->next) {
        if ((*p)->key == key) {
            struct u64map_node *n = *p;
            void *v = n->value;
            *p = n->next;
            free(n);
            m->count--;
            return v;
        }
    }
    return NULL;
}

void *u64map_next(const struct u64map *m, size_t *it, uint64_t *key)
{
    /* *it encodes (bucket, position in chain) as bucket * 2^20 + position. */
    size_t bucket = *it >> 20, pos = *it & ((1u << 20) - 1);
    for (; bucket < m->n_buckets; bucket++, pos = 0) {
        struct u64map_node *n = m->buckets[bucket];
        for (size_t i = 0; n != NULL && i < pos; i++)
            n = n->next;
        if (n != NULL) {
            *it = (bucket << 20) | (pos + 1);
            if (key != NULL)
                *key = n->key;
            return n->value;
        }
    }
    *it = m->n_buckets << 20;
    return NULL;
}
