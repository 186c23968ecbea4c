/* Pending requests: accepted by the loop, completed exactly once by the
 * thread that takes them out of the table (see host_internal.h). */
#include <stdlib.h>

#include "host_internal.h"

int pending_add(struct craft_host *h, struct pending *p)
{
    pthread_mutex_lock(&h->pending_lock);
    int rc = u64map_put(&h->pending, p->key, p);
    pthread_mutex_unlock(&h->pending_lock);
    return rc;
}

size_t pending_count(struct craft_host *h)
{
    pthread_mutex_lock(&h->pending_lock);
    size_t n = h->pending.count;
    pthread_mutex_unlock(&h->pending_lock);
    return n;
}

struct pending *pending_take(struct craft_host *h, uint64_t key)
{
    pthread_mutex_lock(&h->pending_lock);
    struct pending *p = u64map_remove(&h->pending, key);
    pthread_mutex_unlock(&h->pending_lock);
    return p;
}

void pending_complete(struct craft_host *h, struct pending *p, int status, uint64_t leader,
                      uint64_t index, struct craft_result *result)
{
    struct craft_done done = {.status = status, .leader = leader, .index = index, .result = result};
    if (p->kind == PENDING_PROPOSAL) {
        if (status == 0)
            atomic_fetch_add(&h->metrics.proposals, 1);
        else
            atomic_fetch_add(&h->metrics.proposals_failed, 1);
    } else if (p->kind == PENDING_READ && status == 0) {
        atomic_fetch_add(&h->metrics.reads, 1);
    }
    if (p->cb != NULL)
        p->cb(p->arg, &done);
    free(p);
}

void pending_expire(struct craft_host *h, uint64_t now, uint64_t group_id, bool all, int status)
{
    size_t n_expired = 0, cap = 0;
    struct pending **list = NULL;
    pthread_mutex_lock(&h->pending_lock);
    size_t it = 0;
    uint64_t key;
    struct pending *p;
    while ((p = u64map_next(&h->pending, &it, &key)) != NULL) {
        bool match = all ? (group_id == 0 || p->group_id == group_id) : now >= p->deadline;
        if (!match)
            continue;
        if (n_expired == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            struct pending **nl = realloc(list, ncap * sizeof(*nl));
            if (nl == NULL)
                break;
            list = nl;
            cap = ncap;
        }
        list[n_expired++] = p;
    }
    for (size_t i = 0; i < n_expired; i++)
        u64map_remove(&h->pending, list[i]->key);
    pthread_mutex_unlock(&h->pending_lock);
    for (size_t i = 0; i < n_expired; i++) {
        struct host_group *g = host_find_group(h, list[i]->group_id);
        uint64_t leader = g != NULL && g->raft != NULL ? craft_raft_leader(g->raft) : 0;
        int st = status;
        /* A timed-out request still waiting for a leader was never handed to
         * the core: say so, since then it surely did not apply. */
        if (status == CRAFT_ETIMEDOUT && g != NULL && group_retry_drop(g, list[i]->key))
            st = CRAFT_ENOLEADER;
        pending_complete(h, list[i], st, leader, 0, NULL);
    }
    free(list);
}
