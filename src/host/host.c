/* The host: its threads, the request queue into the loop, the tick timer, the
 * transport's callbacks, and the group commit that makes one WAL write and
 * one fdatasync serve every group with work (see host_internal.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <time.h>

#include "host_internal.h"

static _Thread_local bool on_host_thread;

bool host_on_own_thread(void)
{
    return on_host_thread;
}

void host_mark_own_thread(void)
{
    on_host_thread = true;
}

/* ---- logging and clocks ---- */

void host_log(struct craft_host *h, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (h->cfg.log != NULL) {
        h->cfg.log(h->cfg.log_arg, level, line);
    } else if (level >= CRAFT_HOST_LOG_INFO) {
        static const char *names[] = {"debug", "info", "warn", "error"};
        fprintf(stderr, "craft[%llu] %s: %s\n", (unsigned long long)h->cfg.node_id,
                names[level & 3], line);
    }
}

uint64_t host_now(struct craft_host *h)
{
    return uv_now(&h->loop);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- errors ---- */

const char *craft_host_strerror(int rc)
{
    switch (rc) {
    case CRAFT_ETIMEDOUT:
        return "timed out: no answer in time (a proposal may still be applied; retry with a "
               "session to apply it once)";
    case CRAFT_ENOGROUP:
        return "no such group on this host";
    case CRAFT_ESTOPPED:
        return "the host or group is stopping";
    case CRAFT_EEXIST:
        return "the group is already started";
    case CRAFT_ESESSION:
        return "unknown, expired or out-of-order session";
    case CRAFT_EFSM:
        return "the state machine failed: the group stopped (see the log)";
    case CRAFT_ENOLEADER:
        return "no leader in time: the request was not applied (retry later)";
    default:
        return craft_storage_strerror(rc);
    }
}

/* ---- waiters (blocking calls) ---- */

void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

void waiter_signal(struct waiter *w, int status)
{
    pthread_mutex_lock(&w->lock);
    w->status = status;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int waiter_wait(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->done)
        pthread_cond_wait(&w->cond, &w->lock);
    int rc = w->status;
    pthread_mutex_unlock(&w->lock);
    return rc;
}

void waiter_destroy(struct waiter *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* ---- the request queue ---- */

static void fail_req(struct craft_host *h, struct req *r, int status);

struct req *req_new(uint32_t type, uint64_t group_id)
{
    struct req *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->type = type;
        r->group_id = group_id;
    }
    return r;
}

void host_submit(struct craft_host *h, struct req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&h->req_lock);
    if (h->loop_closed) {
        /* The host is stopping and its loop is gone: fail it here. */
        pthread_mutex_unlock(&h->req_lock);
        fail_req(h, r, CRAFT_ESTOPPED);
        free(r->data);
        free(r);
        return;
    }
    if (h->req_tail != NULL)
        h->req_tail->next = r;
    else
        h->req_head = r;
    h->req_tail = r;
    /* Under the lock, so that it never follows the handle's close. */
    uv_async_send(&h->wake);
    pthread_mutex_unlock(&h->req_lock);
}

struct host_group *host_find_group(struct craft_host *h, uint64_t id)
{
    return u64map_get(&h->groups, id);
}

/* Calls fn for every group, tolerating groups that stop (and are freed)
 * meanwhile: the ids are collected first. */
static void for_each_group(struct craft_host *h, void (*fn)(struct host_group *g, void *arg),
                           void *arg)
{
    size_t n = h->groups.count, i = 0, it = 0;
    uint64_t stack_ids[64], key;
    uint64_t *ids = n <= 64 ? stack_ids : malloc(n * sizeof(*ids));
    if (ids == NULL)
        return;
    while (i < n && u64map_next(&h->groups, &it, &key) != NULL)
        ids[i++] = key;
    for (size_t k = 0; k < i; k++) {
        struct host_group *g = host_find_group(h, ids[k]);
        if (g != NULL)
            fn(g, arg);
    }
    if (ids != stack_ids)
        free(ids);
}

static void finish_sync_req(struct req *r, int status)
{
    if (r->waiter != NULL)
        waiter_signal(r->waiter, status);
}

/* Fails a request that never reached its group (no pending entry yet). */
static void fail_req(struct craft_host *h, struct req *r, int status)
{
    (void)h;
    if (r->cb != NULL) {
        struct craft_done done = {.status = status};
        r->cb(r->arg, &done);
    }
    finish_sync_req(r, status);
}

static void stop_groups_on_loop(struct craft_host *h);
static void close_on_loop(struct craft_host *h);

static void handle_req(struct craft_host *h, struct req *r)
{
    struct host_group *g = host_find_group(h, r->group_id);
    switch (r->type) {
    case REQ_START_GROUP:
        if (h->closing) {
            finish_sync_req(r, CRAFT_ESTOPPED);
            break;
        }
        finish_sync_req(r, group_start(h, r->group_cfg, r->err, r->err_cap));
        break;
    case REQ_STOP_GROUP:
        if (g == NULL)
            finish_sync_req(r, CRAFT_ENOGROUP);
        else if (g->stopping)
            finish_sync_req(r, CRAFT_ESTOPPED); /* a stop is already under way */
        else
            group_stop(g, r->waiter, r->node_id != 0);
        break;
    case REQ_REMOVE_SNAPSHOTS:
        host_remove_snapshots_later(h, r->group_id);
        break;
    case REQ_SET_ADDRESS:
        host_set_address_loop(h, r->node_id, r->address);
        finish_sync_req(r, 0);
        break;
    case REQ_STOP_HOST:
        stop_groups_on_loop(h);
        finish_sync_req(r, 0);
        break;
    case REQ_CLOSE_LOOP:
        close_on_loop(h);
        break;
    case REQ_GROUPS: {
        size_t it = 0, i = 0;
        uint64_t key;
        while (u64map_next(&h->groups, &it, &key) != NULL) {
            if (i < r->cap)
                r->ids[i] = key;
            i++;
        }
        *r->n = i;
        finish_sync_req(r, 0);
        break;
    }
    case REQ_STATUS:
        if (g == NULL) {
            finish_sync_req(r, CRAFT_ENOGROUP);
        } else {
            group_status(g, r->status_out);
            finish_sync_req(r, 0);
        }
        break;
    default:
        if (h->closing)
            fail_req(h, r, CRAFT_ESTOPPED);
        else if (g == NULL || g->stopping)
            fail_req(h, r, g == NULL ? CRAFT_ENOGROUP : CRAFT_ESTOPPED);
        else
            group_handle_req(g, r);
        return; /* group_handle_req owns r->data */
    }
}

static void drain_requests(struct craft_host *h)
{
    pthread_mutex_lock(&h->req_lock);
    struct req *r = h->req_head;
    h->req_head = h->req_tail = NULL;
    pthread_mutex_unlock(&h->req_lock);
    while (r != NULL) {
        struct req *next = r->next;
        handle_req(h, r);
        free(r->data);
        free(r);
        r = next;
    }
}

static void on_wake(uv_async_t *a)
{
    drain_requests(a->data);
}

/* ---- addresses ---- */

void host_set_address_loop(struct craft_host *h, uint64_t node_id, const char *address)
{
    char *copy = strdup(address);
    if (copy == NULL)
        return;
    pthread_mutex_lock(&h->addr_lock);
    char *old = u64map_remove(&h->addresses, node_id);
    bool changed = old == NULL || strcmp(old, address) != 0;
    free(old);
    if (u64map_put(&h->addresses, node_id, copy) != 0)
        free(copy);
    pthread_mutex_unlock(&h->addr_lock);
    if (changed && node_id != h->cfg.node_id && h->tr != NULL) {
        int rc = h->tr->set_peer(h->tr->data, node_id, address);
        if (rc != 0)
            host_log(h, CRAFT_HOST_LOG_WARN, "address of node %llu (%s) refused: %s",
                     (unsigned long long)node_id, address, craft_host_strerror(rc));
    }
}

bool host_get_address(struct craft_host *h, uint64_t node_id, char *buf, size_t cap)
{
    pthread_mutex_lock(&h->addr_lock);
    const char *a = u64map_get(&h->addresses, node_id);
    if (a != NULL)
        snprintf(buf, cap, "%s", a);
    pthread_mutex_unlock(&h->addr_lock);
    return a != NULL;
}

int craft_host_set_address(struct craft_host *h, uint64_t node_id, const char *address)
{
    struct sockaddr_storage sa;
    if (node_id == 0 || address == NULL || strlen(address) > HOST_ADDRESS_MAX ||
        craft_tcp_parse_address(address, &sa) != 0)
        return CRAFT_EINVAL;
    struct req *r = req_new(REQ_SET_ADDRESS, 0);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->node_id = node_id;
    snprintf(r->address, sizeof(r->address), "%s", address);
    host_submit(h, r);
    return 0;
}

/* ---- transport callbacks ---- */

static void on_message(void *data, uint64_t group_id, const struct craft_message *m)
{
    struct craft_host *h = data;
    struct host_group *g = host_find_group(h, group_id);
    if (g == NULL || g->stopping || g->failed)
        return;
    if (m->type == CRAFT_MSG_SNAPSHOT) {
        /* Only the message of a stream just stored (host_snapshot_end): a
         * bare snapshot message would install a snapshot with no data. */
        bool stored = m->snapshot != NULL && h->stored_snapshot.group == group_id &&
                      h->stored_snapshot.index == m->snapshot->index &&
                      h->stored_snapshot.term == m->snapshot->term;
        h->stored_snapshot.group = 0;
        if (!stored)
            return;
    }
    group_step(g, m);
}

static void unreachable_one(struct host_group *g, void *arg)
{
    group_unreachable(g, *(uint64_t *)arg);
}

static void on_unreachable(void *data, uint64_t node_id)
{
    struct craft_host *h = data;
    size_t it = 0;
    (void)it;
    for_each_group(h, unreachable_one, &node_id);
}

/* ---- removing a group's data ---- */

void host_remove_snapshots_later(struct craft_host *h, uint64_t group_id)
{
    struct removal *r = malloc(sizeof(*r));
    if (r == NULL)
        return; /* the files stay: harmless, the log no longer names them */
    r->group_id = group_id;
    r->epoch = h->write_epoch + 1;
    r->next = h->removals;
    h->removals = r;
    h->durability_wanted = true;
}

void host_run_removals(struct craft_host *h)
{
    struct removal **pp = &h->removals;
    while (*pp != NULL) {
        struct removal *r = *pp;
        if (r->epoch > h->durable_epoch) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        if (host_find_group(h, r->group_id) == NULL) { /* not started again meanwhile */
            pthread_mutex_lock(&h->snap_lock);
            (void)h->snaps->remove_group(h->snaps->data, r->group_id);
            pthread_mutex_unlock(&h->snap_lock);
        }
        free(r);
    }
}

/* ---- group commit ---- */

static void start_sync(struct craft_host *h);

static void sync_work(uv_work_t *w)
{
    struct craft_host *h = w->data;
    h->ls->sync_run(&h->sync);
}

static const char *ls_errmsg(struct craft_host *h)
{
    return h->ls->errmsg != NULL ? h->ls->errmsg(h->ls->data) : "log store";
}

static bool two_phase(const struct craft_log_store *ls)
{
    return ls->write_pending != NULL && ls->sync_run != NULL && ls->sync_done != NULL &&
           ls->pending_bytes != NULL;
}

struct durable_arg {
    uint64_t epoch;
    int status;
};

static void durable_one(struct host_group *g, void *arg)
{
    struct durable_arg *a = arg;
    group_durable(g, a->epoch, a->status);
}

static void sync_after(uv_work_t *w, int status)
{
    struct craft_host *h = w->data;
    (void)status;
    uint64_t took_us = (mono_ns() - h->sync_started_ns) / 1000u;
    int rc = two_phase(h->ls) ? h->ls->sync_done(h->ls->data, &h->sync) : h->sync.status_;
    h->sync_in_flight = false;
    atomic_fetch_add(&h->metrics.wal_fsyncs, 1);
    unsigned bucket = 0;
    while (bucket < 15 && took_us > (64ull << bucket))
        bucket++;
    atomic_fetch_add(&h->metrics.wal_fsync_hist[bucket], 1);
    if (rc != 0) {
        h->wal_failed = true;
        host_log(h, CRAFT_HOST_LOG_ERROR, "WAL fdatasync failed: %s (%s); every group stops",
                 craft_host_strerror(rc), ls_errmsg(h));
    }
    h->durable_epoch = h->write_epoch;
    /* After a failure every waiting group fails, whatever write it waits
     * for: no write follows a failed one (fail-stop). */
    struct durable_arg arg = {rc != 0 ? UINT64_MAX : h->durable_epoch, rc};
    for_each_group(h, durable_one, &arg);
    if (rc == 0)
        host_run_removals(h);
}

/* Writes what the groups buffered and starts its fdatasync, unless one is
 * already running (then the next one takes everything buffered meanwhile). */
static void start_sync(struct craft_host *h)
{
    /* Only a group waiting for durability starts a write: what needs none
     * (a new commit index) rides along with the next one, as etcd does. */
    if (h->sync_in_flight || h->wal_failed || !h->durability_wanted)
        return;
    if (!two_phase(h->ls)) {
        /* A log store without group-commit calls: sync here, on the loop. */
        h->durability_wanted = false;
        h->write_epoch++;
        h->sync_in_flight = true;
        h->sync_started_ns = mono_ns();
        memset(&h->sync, 0, sizeof(h->sync));
        h->sync_work.data = h;
        h->sync.status_ = h->ls->sync(h->ls->data);
        atomic_fetch_add(&h->metrics.wal_writes, 1);
        sync_after(&h->sync_work, 0);
        return;
    }
    /* Even with nothing buffered (a synchronous commit elsewhere may have
     * written it) a waiting group needs an epoch to complete. */
    h->durability_wanted = false;
    uint64_t before = h->ls->pending_bytes(h->ls->data);
    h->write_epoch++;
    int rc = h->ls->write_pending(h->ls->data, &h->sync);
    atomic_fetch_add(&h->metrics.wal_writes, 1);
    atomic_fetch_add(&h->metrics.wal_bytes, before);
    if (rc != 0) {
        h->wal_failed = rc != CRAFT_STORAGE_ENOSPC;
        host_log(h, CRAFT_HOST_LOG_ERROR, "WAL write failed: %s (%s)", craft_host_strerror(rc),
                 ls_errmsg(h));
        h->write_epoch--;
        if (h->wal_failed) {
            struct durable_arg arg = {UINT64_MAX, rc};
            for_each_group(h, durable_one, &arg);
        } else {
            h->durability_wanted = true; /* retried next iteration (ENOSPC) */
        }
        return;
    }
    h->sync_in_flight = true;
    h->sync_started_ns = mono_ns();
    h->sync_work.data = h;
    if (h->cfg.no_sync || uv_queue_work(&h->loop, &h->sync_work, sync_work, sync_after) != 0) {
        h->ls->sync_run(&h->sync);
        sync_after(&h->sync_work, 0);
    }
}

static void process_one(struct host_group *g, void *arg)
{
    (void)arg;
    group_process_ready(g);
}

static void tick_one(struct host_group *g, void *arg)
{
    group_tick(g, *(uint64_t *)arg);
}

/* Once per loop iteration, before the loop waits: every group's ready. */
static void on_prepare(uv_prepare_t *p)
{
    struct craft_host *h = p->data;
    drain_requests(h);
    for_each_group(h, process_one, NULL);
    start_sync(h);
}

static void on_tick(uv_timer_t *t)
{
    struct craft_host *h = t->data;
    uint64_t now = host_now(h);
    for_each_group(h, tick_one, &now);
    pending_expire(h, now, 0, false, CRAFT_ETIMEDOUT);
    if (h->tr != NULL && h->tr->stats != NULL) {
        struct craft_tcp_stats ts;
        memset(&ts, 0, sizeof(ts));
        h->tr->stats(h->tr->data, &ts);
        atomic_store(&h->metrics.bytes_sent, ts.bytes_sent);
        atomic_store(&h->metrics.bytes_received, ts.bytes_received);
        atomic_store(&h->metrics.messages_sent, ts.messages_sent);
        atomic_store(&h->metrics.messages_received, ts.messages_received);
    }
}

/* ---- the loop thread ---- */

static void loop_main(void *arg)
{
    struct craft_host *h = arg;
    on_host_thread = true;
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

static void on_transport_closed(struct craft_tcp_transport *t)
{
    (void)t;
}

static void close_walk(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* ---- the built-in transport behind the interface ---- */

static int tcp_start(void *data, uv_loop_t *loop, const struct craft_transport_handlers *hd,
                     char *err, size_t err_cap)
{
    struct craft_host *h = data;
    struct craft_tcp_config tc;
    memset(&tc, 0, sizeof(tc));
    tc.cluster_id = h->cfg.cluster_id;
    tc.node_id = h->cfg.node_id;
    tc.listen_address = h->listen_address;
    tc.tls_cert_file = h->tls_cert;
    tc.tls_key_file = h->tls_key;
    tc.tls_ca_file = h->tls_ca;
    tc.data = hd->data;
    tc.on_message = hd->on_message;
    tc.on_unreachable = hd->on_unreachable;
    tc.on_snapshot_begin = hd->on_snapshot_begin;
    tc.on_snapshot_chunk = hd->on_snapshot_chunk;
    tc.on_snapshot_end = hd->on_snapshot_end;
    return craft_tcp_create_err(loop, &tc, &h->tcp, err, err_cap);
}

static int tcp_port(void *data)
{
    return craft_tcp_port(((struct craft_host *)data)->tcp);
}

static int tcp_set_peer(void *data, uint64_t node_id, const char *address)
{
    return craft_tcp_set_peer(((struct craft_host *)data)->tcp, node_id, address);
}

static int tcp_send(void *data, uint64_t group_id, const struct craft_message *m)
{
    return craft_tcp_send(((struct craft_host *)data)->tcp, group_id, m);
}

static int tcp_send_snapshot(void *data, uint64_t group_id, const struct craft_message *m,
                             struct craft_snapshot_source src, craft_tcp_snapshot_done_cb done,
                             void *arg)
{
    return craft_tcp_send_snapshot(((struct craft_host *)data)->tcp, group_id, m, src, done, arg);
}

static void tcp_stats(void *data, struct craft_tcp_stats *out)
{
    craft_tcp_get_stats(((struct craft_host *)data)->tcp, out);
}

static void tcp_close(void *data)
{
    struct craft_host *h = data;
    craft_tcp_close(h->tcp, on_transport_closed);
    h->tcp = NULL;
}

void craft_host_config_init(struct craft_host_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->tick_ms = 100;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void free_host(struct craft_host *h)
{
    while (h->removals != NULL) {
        struct removal *r = h->removals;
        h->removals = r->next;
        free(r);
    }
    size_t it = 0;
    void *v;
    while ((v = u64map_next(&h->addresses, &it, NULL)) != NULL)
        free(v);
    u64map_free(&h->addresses);
    u64map_free(&h->groups);
    u64map_free(&h->pending);
    pthread_mutex_destroy(&h->req_lock);
    pthread_mutex_destroy(&h->pending_lock);
    pthread_mutex_destroy(&h->snap_lock);
    pthread_mutex_destroy(&h->apply_lock);
    pthread_mutex_destroy(&h->addr_lock);
    pthread_cond_destroy(&h->apply_cond);
    free(h->data_dir);
    free(h->listen_address);
    free(h->tls_cert);
    free(h->tls_key);
    free(h->tls_ca);
    free(h);
}

static void wal_log(void *arg, int level, const char *message)
{
    host_log(arg, level, "%s", message);
}

int craft_host_start(const struct craft_host_config *cfg, struct craft_host **out, char *err,
                     size_t err_cap)
{
    char scratch[16];
    if (err == NULL) {
        err = scratch;
        err_cap = sizeof(scratch);
    }
    err[0] = '\0';
    if (cfg->node_id == 0 || cfg->data_dir == NULL) {
        snprintf(err, err_cap, "config: node_id and data_dir are required");
        return CRAFT_EINVAL;
    }
    struct craft_host *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return CRAFT_ENOMEM;
    h->cfg = *cfg;
    if (h->cfg.tick_ms == 0)
        h->cfg.tick_ms = 100;
    h->data_dir = strdup(cfg->data_dir);
    h->listen_address = dup_or_null(cfg->listen_address);
    h->tls_cert = dup_or_null(cfg->tls_cert_file);
    h->tls_key = dup_or_null(cfg->tls_key_file);
    h->tls_ca = dup_or_null(cfg->tls_ca_file);
    h->cfg.data_dir = h->data_dir;
    h->cfg.listen_address = h->listen_address;
    h->cfg.tls_cert_file = h->tls_cert;
    h->cfg.tls_key_file = h->tls_key;
    h->cfg.tls_ca_file = h->tls_ca;
    pthread_mutex_init(&h->req_lock, NULL);
    pthread_mutex_init(&h->pending_lock, NULL);
    pthread_mutex_init(&h->snap_lock, NULL);
    pthread_mutex_init(&h->apply_lock, NULL);
    pthread_mutex_init(&h->addr_lock, NULL);
    pthread_cond_init(&h->apply_cond, NULL);
    u64map_init(&h->groups);
    u64map_init(&h->pending);
    u64map_init(&h->addresses);
    /* Keys of this process must not collide with keys of an earlier one
     * still in the log: start at a random point. */
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = mono_ns() * 0x9e3779b97f4a7c15ull;
    atomic_store(&h->next_key, (seed & ~0xffffffull) | 1u);

    int rc;
    char *wal_dir = NULL, *snap_dir = NULL;
    if (mkdir(h->data_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "mkdir %s: %s", h->data_dir, strerror(errno));
        rc = CRAFT_ESTORAGE;
        goto err_free;
    }
    wal_dir = join_path(h->data_dir, "wal");
    snap_dir = join_path(h->data_dir, "snapshots");
    if (wal_dir == NULL || snap_dir == NULL) {
        rc = CRAFT_ENOMEM;
        goto err_free;
    }
    if (cfg->log_store != NULL) {
        h->ls = cfg->log_store;
    } else {
        struct craft_wal_options wo;
        craft_wal_options_init(&wo);
        wo.no_sync = cfg->no_sync;
        if (cfg->wal_segment_size != 0)
            wo.segment_size = cfg->wal_segment_size;
        wo.log = wal_log;
        wo.log_arg = h;
        rc = craft_wal_open(wal_dir, &wo, &h->wal, err, err_cap);
        if (rc != 0)
            goto err_free;
        h->ls = craft_wal_log_store(h->wal);
    }
    if (cfg->snapshot_store != NULL) {
        h->snaps = cfg->snapshot_store;
    } else {
        struct craft_snapshot_store_options so;
        craft_snapshot_store_options_init(&so);
        so.log = wal_log;
        so.log_arg = h;
        rc = craft_snapshot_store_open(snap_dir, &so, &h->snap_store, err, err_cap);
        if (rc != 0)
            goto err_close_wal;
        h->snaps = craft_snapshot_store_iface(h->snap_store);
        /* The crash window between a snapshot file and its log record. */
        if (h->wal != NULL) {
            rc = craft_storage_reconcile(h->ls, h->snap_store, err, err_cap);
            if (rc != 0)
                goto err_close_snaps;
        }
    }

    rc = uv_loop_init(&h->loop);
    if (rc != 0) {
        snprintf(err, err_cap, "uv_loop_init: %s", uv_strerror(rc));
        rc = CRAFT_ENOMEM;
        goto err_close_snaps;
    }
    uv_async_init(&h->loop, &h->wake, on_wake);
    h->wake.data = h;
    uv_timer_init(&h->loop, &h->tick_timer);
    h->tick_timer.data = h;
    uv_prepare_init(&h->loop, &h->prepare);
    h->prepare.data = h;
    uv_prepare_start(&h->prepare, on_prepare);
    uv_timer_start(&h->tick_timer, on_tick, h->cfg.tick_ms, h->cfg.tick_ms);

    h->tcp_iface = (struct craft_transport_iface){
        .data = h,
        .start = tcp_start,
        .port = tcp_port,
        .set_peer = tcp_set_peer,
        .send = tcp_send,
        .send_snapshot = tcp_send_snapshot,
        .stats = tcp_stats,
        .close = tcp_close,
    };
    h->tr = cfg->transport != NULL ? cfg->transport : &h->tcp_iface;
    h->handlers = (struct craft_transport_handlers){
        .data = h,
        .on_message = on_message,
        .on_unreachable = on_unreachable,
        .on_snapshot_begin = host_snapshot_begin,
        .on_snapshot_chunk = host_snapshot_chunk,
        .on_snapshot_end = host_snapshot_end,
    };
    char terr[256] = "";
    rc = h->tr->start(h->tr->data, &h->loop, &h->handlers, terr, sizeof(terr));
    if (rc != 0) {
        snprintf(err, err_cap, "transport on %s: %s%s%s",
                 h->listen_address != NULL ? h->listen_address : "(none)", craft_host_strerror(rc),
                 terr[0] ? ": " : "", terr);
        goto err_close_loop;
    }
    h->port = h->tr->port != NULL ? h->tr->port(h->tr->data) : -1;
    rc = apply_start(h);
    if (rc != 0)
        goto err_close_transport;
    rc = uv_thread_create(&h->loop_thread, loop_main, h);
    if (rc != 0) {
        rc = CRAFT_ENOMEM;
        apply_stop(h);
        goto err_close_transport;
    }
    free(wal_dir);
    free(snap_dir);
    *out = h;
    return 0;

err_close_transport:
    h->tr->close(h->tr->data);
err_close_loop:
    uv_walk(&h->loop, close_walk, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_loop_close(&h->loop);
err_close_snaps:
    if (h->snap_store != NULL)
        craft_snapshot_store_close(h->snap_store);
err_close_wal:
    if (h->wal != NULL)
        craft_wal_close(h->wal);
err_free:
    free(wal_dir);
    free(snap_dir);
    free_host(h);
    return rc;
}

int craft_host_port(struct craft_host *h)
{
    return h->port;
}

static int sync_request(struct craft_host *h, struct req *r)
{
    struct waiter w;
    if (host_on_own_thread()) {
        free(r);
        return CRAFT_EINVAL;
    }
    waiter_init(&w);
    r->waiter = &w;
    host_submit(h, r);
    int rc = waiter_wait(&w);
    waiter_destroy(&w);
    return rc;
}

/* Stop: every group stops (each waiting for its write in flight), the apply
 * thread drains, the loop's handles close and the loop ends; then the WAL is
 * committed and closed. */
static void stop_groups_on_loop(struct craft_host *h)
{
    h->closing = true;
    size_t n = h->groups.count, i = 0, it = 0;
    uint64_t key, *ids = calloc(n ? n : 1, sizeof(*ids));
    while (ids != NULL && u64map_next(&h->groups, &it, &key) != NULL)
        ids[i++] = key;
    for (size_t k = 0; k < i; k++) {
        struct host_group *g = host_find_group(h, ids[k]);
        if (g != NULL && !g->stopping)
            group_stop(g, NULL, false);
    }
    free(ids);
}

static void close_on_loop(struct craft_host *h)
{
    pending_expire(h, 0, 0, true, CRAFT_ESTOPPED);
    h->tr->close(h->tr->data);
    h->tr = NULL;
    pthread_mutex_lock(&h->req_lock);
    h->loop_closed = true;
    struct req *left = h->req_head;
    h->req_head = h->req_tail = NULL;
    pthread_mutex_unlock(&h->req_lock);
    while (left != NULL) {
        struct req *next = left->next;
        fail_req(h, left, CRAFT_ESTOPPED);
        free(left->data);
        free(left);
        left = next;
    }
    uv_close((uv_handle_t *)&h->wake, NULL);
    uv_close((uv_handle_t *)&h->tick_timer, NULL);
    uv_close((uv_handle_t *)&h->prepare, NULL);
}

void craft_host_stop(struct craft_host *h)
{
    if (h == NULL || host_on_own_thread())
        return;
    struct req *r = req_new(REQ_STOP_HOST, 0);
    if (r != NULL)
        (void)sync_request(h, r);
    for (;;) {
        size_t n = 0;
        if (craft_host_groups(h, NULL, 0, &n) != 0 || n == 0)
            break;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    apply_stop(h);
    r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->type = REQ_CLOSE_LOOP;
        host_submit(h, r);
    }
    uv_thread_join(&h->loop_thread);
    uv_walk(&h->loop, close_walk, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_loop_close(&h->loop);
    if (h->ls->sync(h->ls->data) != 0)
        host_log(h, CRAFT_HOST_LOG_ERROR, "log store sync at stop failed: %s", ls_errmsg(h));
    if (h->snap_store != NULL)
        craft_snapshot_store_close(h->snap_store);
    if (h->wal != NULL)
        craft_wal_close(h->wal);
    free_host(h);
}

/* ---- status and metrics ---- */

int craft_host_group_status(struct craft_host *h, uint64_t group_id, struct craft_group_status *out)
{
    struct req *r = req_new(REQ_STATUS, group_id);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->status_out = out;
    return sync_request(h, r);
}

int craft_host_groups(struct craft_host *h, uint64_t *ids, size_t cap, size_t *n)
{
    struct req *r = req_new(REQ_GROUPS, 0);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->ids = ids;
    r->cap = cap;
    r->n = n;
    return sync_request(h, r);
}

int craft_host_start_group(struct craft_host *h, const struct craft_group_config *cfg, char *err,
                           size_t err_cap)
{
    char scratch[16];
    if (err == NULL) {
        err = scratch;
        err_cap = sizeof(scratch);
    }
    err[0] = '\0';
    struct req *r = req_new(REQ_START_GROUP, cfg->group_id);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->group_cfg = cfg;
    r->err = err;
    r->err_cap = err_cap;
    return sync_request(h, r);
}

static int stop_group(struct craft_host *h, uint64_t group_id, bool remove_data)
{
    struct req *r = req_new(REQ_STOP_GROUP, group_id);
    if (r == NULL)
        return CRAFT_ENOMEM;
    r->node_id = remove_data ? 1 : 0;
    return sync_request(h, r);
}

int craft_host_stop_group(struct craft_host *h, uint64_t group_id)
{
    return stop_group(h, group_id, false);
}

int craft_host_remove_group_data(struct craft_host *h, uint64_t group_id)
{
    return stop_group(h, group_id, true);
}

void craft_host_get_metrics(struct craft_host *h, struct craft_host_metrics *out)
{
    memset(out, 0, sizeof(*out));
    struct host_metrics *m = &h->metrics;
    out->proposals = atomic_load(&m->proposals);
    out->proposals_failed = atomic_load(&m->proposals_failed);
    out->reads = atomic_load(&m->reads);
    out->applies = atomic_load(&m->applies);
    out->entries_applied = atomic_load(&m->entries_applied);
    out->wal_writes = atomic_load(&m->wal_writes);
    out->wal_fsyncs = atomic_load(&m->wal_fsyncs);
    out->wal_bytes = atomic_load(&m->wal_bytes);
    for (int i = 0; i < 16; i++)
        out->wal_fsync_hist[i] = atomic_load(&m->wal_fsync_hist[i]);
    out->snapshots_taken = atomic_load(&m->snapshots_taken);
    out->snapshots_sent = atomic_load(&m->snapshots_sent);
    out->snapshots_received = atomic_load(&m->snapshots_received);
    out->elections = atomic_load(&m->elections);
    out->leader_changes = atomic_load(&m->leader_changes);
    out->bytes_sent = atomic_load(&m->bytes_sent);
    out->bytes_received = atomic_load(&m->bytes_received);
    out->messages_sent = atomic_load(&m->messages_sent);
    out->messages_received = atomic_load(&m->messages_received);
}
