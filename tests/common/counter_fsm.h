/* A small state machine for host tests (tests/unit/test_host.c,
 * tests/e2e/host_node.c): it counts the entries it applied and keeps a running
 * FNV-1a hash of their bytes, so replicas can be compared; each entry's
 * result value is the count after it. Header-only, one copy per test. */
#ifndef CRAFT_TESTS_COUNTER_FSM_H
#define CRAFT_TESTS_COUNTER_FSM_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/host.h>

struct counter {
    pthread_mutex_t lock;
    uint64_t count, hash, applied;
};

static inline int counter_apply(void *data, struct craft_fsm_entry *es, size_t n, uint64_t applied)
{
    struct counter *c = data;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        c->count++;
        for (uint32_t k = 0; k < es[i].len; k++)
            c->hash = (c->hash ^ ((const uint8_t *)es[i].data)[k]) * 0x100000001b3ull;
        es[i].result.value = c->count;
    }
    c->applied = applied;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static inline int counter_save(void *data, struct craft_writer *w)
{
    struct counter *c = data;
    uint64_t v[2];
    pthread_mutex_lock(&c->lock);
    v[0] = c->count;
    v[1] = c->hash;
    pthread_mutex_unlock(&c->lock);
    return w->write(w->data, v, sizeof(v));
}

static inline int counter_restore(void *data, struct craft_reader *r, uint64_t applied)
{
    struct counter *c = data;
    uint64_t v[2];
    size_t got = 0;
    while (got < sizeof(v)) {
        size_t n;
        int rc = r->read(r->data, (uint8_t *)v + got, sizeof(v) - got, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return CRAFT_ECORRUPT;
        got += n;
    }
    pthread_mutex_lock(&c->lock);
    c->count = v[0];
    c->hash = v[1];
    c->applied = applied;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

#endif /* CRAFT_TESTS_COUNTER_FSM_H */
