/* The public request functions of include/craft/host.h: each builds a
 * request on the caller's thread (encoding a proposal's entry here spreads
 * that work over the callers) and queues it for the loop; the *_sync forms
 * wait for the completion callback. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_internal.h"

static uint64_t new_key(struct craft_host *h)
{
    return atomic_fetch_add(&h->next_key, 1);
}

static struct req *new_req(struct craft_host *h, uint32_t type, uint64_t group_id,
                           uint32_t timeout_ms, craft_host_done_cb cb, void *arg)
{
    struct req *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->type = type;
    r->group_id = group_id;
    r->key = new_key(h);
    r->timeout_ms = timeout_ms;
    r->cb = cb;
    r->arg = arg;
    return r;
}

static int propose_entry(struct craft_host *h, uint64_t group_id, struct host_entry *he,
                         uint32_t timeout_ms, craft_host_done_cb cb, void *arg)
{
    struct req *r = new_req(h, REQ_PROPOSE, group_id, timeout_ms, cb, arg);
    if (r == NULL)
        return CRAFT_ENOMEM;
    he->origin = h->cfg.node_id;
    he->key = r->key;
    r->data = host_entry_encode(he, &r->len);
    if (r->data == NULL) {
        free(r);
        return CRAFT_ENOMEM;
    }
    host_submit(h, r);
    return 0;
}

int craft_host_propose(struct craft_host *h, uint64_t group_id, const struct craft_session *session,
                       const void *data, uint32_t len, uint32_t timeout_ms, craft_host_done_cb cb,
                       void *arg)
{
    if (len > CRAFT_MAX_ENTRY_SIZE - HOST_ENTRY_SESSION)
        return CRAFT_ETOO_BIG;
    if (len > 0 && data == NULL)
        return CRAFT_EINVAL;
    struct host_entry he = {.kind = HOST_ENTRY_USER, .payload = data, .payload_len = len};
    if (session != NULL) {
        if (session->group_id != group_id || session->client_id == 0 || session->series == 0)
            return CRAFT_ESESSION;
        he.kind = HOST_ENTRY_USER_SESSION;
        he.client_id = session->client_id;
        he.series = session->series;
    }
    return propose_entry(h, group_id, &he, timeout_ms, cb, arg);
}

/* ---- blocking forms ---- */

static void waiter_done(void *arg, struct craft_done *done)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->leader = done->leader;
    w->index = done->index;
    if (done->result != NULL) {
        w->result = *done->result;
        done->result->data = NULL; /* ownership passes to the waiter */
    }
    pthread_mutex_unlock(&w->lock);
    waiter_signal(w, done->status);
}

/* Runs submit (which queues a request completing through waiter_done) and
 * waits. */
static int wait_for(struct waiter *w, int submitted, struct craft_result *result, uint64_t *leader,
                    uint64_t *index)
{
    int rc = submitted;
    if (rc == 0)
        rc = waiter_wait(w);
    if (leader != NULL)
        *leader = w->leader;
    if (index != NULL)
        *index = w->index;
    if (result != NULL && rc == 0)
        *result = w->result;
    else
        free(w->result.data);
    waiter_destroy(w);
    return rc;
}

int craft_host_propose_sync(struct craft_host *h, uint64_t group_id,
                            const struct craft_session *session, const void *data, uint32_t len,
                            uint32_t timeout_ms, struct craft_result *result, uint64_t *leader)
{
    if (host_on_own_thread())
        return CRAFT_EINVAL;
    if (result != NULL)
        memset(result, 0, sizeof(*result));
    struct waiter w;
    waiter_init(&w);
    int rc = craft_host_propose(h, group_id, session, data, len, timeout_ms, waiter_done, &w);
    return wait_for(&w, rc, result, leader, NULL);
}

static int read_req(struct craft_host *h, uint32_t type, uint64_t group_id, uint32_t timeout_ms,
                    craft_host_done_cb cb, void *arg)
{
    struct req *r = new_req(h, type, group_id, timeout_ms, cb, arg);
    if (r == NULL)
        return CRAFT_ENOMEM;
    host_submit(h, r);
    return 0;
}

int craft_host_read(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                    craft_host_done_cb cb, void *arg)
{
    return read_req(h, REQ_READ, group_id, timeout_ms, cb, arg);
}

int craft_host_read_stale(struct craft_host *h, uint64_t group_id, craft_host_done_cb cb, void *arg)
{
    return read_req(h, REQ_READ_STALE, group_id, 60000, cb, arg);
}

int craft_host_read_sync(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                         uint64_t *index, uint64_t *leader)
{
    if (host_on_own_thread())
        return CRAFT_EINVAL;
    struct waiter w;
    waiter_init(&w);
    int rc = craft_host_read(h, group_id, timeout_ms, waiter_done, &w);
    return wait_for(&w, rc, NULL, leader, index);
}

/* ---- sessions ---- */

static uint64_t random_client_id(struct craft_host *h)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ new_key(h) ^
                 (h->cfg.node_id * 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z != 0 ? z : 1;
}

static int session_entry(struct craft_host *h, uint64_t group_id, uint8_t kind, uint64_t client_id,
                         uint32_t timeout_ms)
{
    if (host_on_own_thread())
        return CRAFT_EINVAL;
    struct host_entry he = {.kind = kind, .client_id = client_id};
    struct waiter w;
    waiter_init(&w);
    int rc = propose_entry(h, group_id, &he, timeout_ms, waiter_done, &w);
    return wait_for(&w, rc, NULL, NULL, NULL);
}

int craft_host_session_open(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                            struct craft_session *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t id = random_client_id(h);
    int rc = session_entry(h, group_id, HOST_ENTRY_SESSION_OPEN, id, timeout_ms);
    if (rc == 0) {
        out->group_id = group_id;
        out->client_id = id;
        out->series = 1;
    }
    return rc;
}

void craft_session_next(struct craft_session *s)
{
    s->series++;
}

int craft_host_session_close(struct craft_host *h, struct craft_session *s, uint32_t timeout_ms)
{
    int rc = session_entry(h, s->group_id, HOST_ENTRY_SESSION_CLOSE, s->client_id, timeout_ms);
    if (rc == 0)
        s->client_id = 0;
    return rc;
}

/* ---- membership, transfer, snapshots ---- */

int craft_host_add_member(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                          const char *address, uint32_t role, uint32_t timeout_ms,
                          craft_host_done_cb cb, void *arg)
{
    struct sockaddr_storage sa;
    /* Refused now rather than after the change commits with a member nobody
     * can reach. */
    if (node_id == 0 || (address != NULL && (strlen(address) > HOST_ADDRESS_MAX ||
                                             craft_tcp_parse_address(address, &sa) != 0)))
        return CRAFT_EINVAL;
    if (role != CRAFT_ROLE_FOLLOWER && role != CRAFT_ROLE_NON_VOTING && role != CRAFT_ROLE_WITNESS)
        return CRAFT_EINVAL;
    struct req *r = new_req(h, REQ_ADD_MEMBER, group_id, timeout_ms, cb, arg);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->node_id = node_id;
    r->role = role;
    if (address != NULL)
        strcpy(r->address, address);
    host_submit(h, r);
    return 0;
}

int craft_host_remove_member(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                             uint32_t timeout_ms, craft_host_done_cb cb, void *arg)
{
    if (node_id == 0)
        return CRAFT_EINVAL;
    struct req *r = new_req(h, REQ_REMOVE_MEMBER, group_id, timeout_ms, cb, arg);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->node_id = node_id;
    host_submit(h, r);
    return 0;
}

int craft_host_add_member_sync(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                               const char *address, uint32_t role, uint32_t timeout_ms,
                               uint64_t *leader)
{
    if (host_on_own_thread())
        return CRAFT_EINVAL;
    struct waiter w;
    waiter_init(&w);
    int rc =
        craft_host_add_member(h, group_id, node_id, address, role, timeout_ms, waiter_done, &w);
    return wait_for(&w, rc, NULL, leader, NULL);
}

int craft_host_remove_member_sync(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                                  uint32_t timeout_ms, uint64_t *leader)
{
    if (host_on_own_thread())
        return CRAFT_EINVAL;
    struct waiter w;
    waiter_init(&w);
    int rc = craft_host_remove_member(h, group_id, node_id, timeout_ms, waiter_done, &w);
    return wait_for(&w, rc, NULL, leader, NULL);
}

static int simple_sync(struct craft_host *h, uint32_t type, uint64_t group_id, uint64_t node_id,
                       uint32_t timeout_ms, uint64_t *index)
{
    if (host_on_own_thread())
        return CRAFT_EINVAL;
    struct waiter w;
    waiter_init(&w);
    struct req *r = new_req(h, type, group_id, timeout_ms, waiter_done, &w);
    if (r == NULL) {
        waiter_destroy(&w);
        return CRAFT_ENOMEM;
    }
    r->node_id = node_id;
    host_submit(h, r);
    return wait_for(&w, 0, NULL, NULL, index);
}

int craft_host_transfer_leader_sync(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                                    uint32_t timeout_ms)
{
    if (node_id == 0)
        return CRAFT_EINVAL;
    return simple_sync(h, REQ_TRANSFER, group_id, node_id, timeout_ms, NULL);
}

int craft_host_snapshot_sync(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                             uint64_t *index)
{
    return simple_sync(h, REQ_SNAPSHOT, group_id, 0, timeout_ms, index);
}
