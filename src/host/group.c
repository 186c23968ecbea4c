/* A raft group on the host: starting it (bootstrap, join, restart), its
 * ready cycle, and the requests that reach it (proposals, reads,
 * membership, transfers, snapshots).
 *
 * The ready cycle (docs/architecture.md, "The ready cycle"):
 *   1. take a ready; append its entries, hard state and snapshot marker to
 *      the WAL's buffer;
 *   2. a leader sends its messages at once (Raft thesis 10.2.1: it counts
 *      itself only once durable, which advance tells the core);
 *   3. when nothing must be durable (no entries, no term or vote change, no
 *      snapshot) finish at once; otherwise wait for the host's next WAL
 *      write to be fdatasynced (one for every group: host.c);
 *   4. finish: any other role sends its messages now; the snapshot to
 *      restore and the committed entries (copied) go to the apply thread;
 *      read states go there too (a read is served once applied >= index);
 *      advance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_internal.h"

void craft_group_config_init(struct craft_group_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->start = CRAFT_GROUP_RESTART;
}

static void fail_pending(struct craft_host *h, uint64_t key, int status, uint64_t leader)
{
    struct pending *p = pending_take(h, key);
    if (p != NULL)
        pending_complete(h, p, status, leader, 0, NULL);
}

static bool pending_alive(struct craft_host *h, uint64_t key)
{
    pthread_mutex_lock(&h->pending_lock);
    bool alive = u64map_get(&h->pending, key) != NULL;
    pthread_mutex_unlock(&h->pending_lock);
    return alive;
}

/* ---- start ---- */

/* Whether the WAL holds anything of group id (a snapshot marker, a hard
 * state or entries). */
static bool on_disk(struct craft_host *h, uint64_t id)
{
    struct craft_log_store *ls = h->ls;
    size_t n = 0;
    if (ls->groups(ls->data, NULL, 0, &n) != 0 || n == 0)
        return false;
    uint64_t *all = calloc(n, sizeof(*all));
    if (all == NULL)
        return false;
    size_t total = n;
    bool found = false;
    if (ls->groups(ls->data, all, total, &n) == 0)
        for (size_t i = 0; i < total && i < n; i++)
            found = found || all[i] == id;
    free(all);
    if (!found)
        return false;
    struct craft_snapshot_meta meta;
    struct craft_hard_state hs;
    memset(&meta, 0, sizeof(meta));
    memset(&hs, 0, sizeof(hs));
    (void)ls->snapshot(ls->data, id, &meta);
    (void)ls->initial_state(ls->data, id, &hs, NULL);
    return meta.index > 0 || hs.term > 0 || ls->last_index(ls->data, id) > 0;
}

static int bootstrap(struct craft_host *h, const struct craft_group_config *cfg, char *err,
                     size_t err_cap)
{
    struct craft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = 1;
    meta.term = 1;
    if (cfg->n_members == 0 || cfg->n_members > CRAFT_MAX_NODES || cfg->members == NULL) {
        snprintf(err, err_cap, "bootstrap: between 1 and %d members are needed", CRAFT_MAX_NODES);
        return CRAFT_EINVAL;
    }
    bool self = false;
    for (uint32_t i = 0; i < cfg->n_members; i++) {
        const struct craft_member *m = &cfg->members[i];
        struct sockaddr_storage sa;
        if (m->id == 0 || (m->address != NULL && (strlen(m->address) > HOST_ADDRESS_MAX ||
                                                  craft_tcp_parse_address(m->address, &sa) != 0))) {
            snprintf(err, err_cap,
                     "bootstrap: member %u has id 0 or an address that is not ip:port", i);
            return CRAFT_EINVAL;
        }
        self = self || m->id == h->cfg.node_id;
        struct craft_conf_state *cs = &meta.conf;
        switch (m->role) {
        case CRAFT_ROLE_NON_VOTING:
            cs->learners[cs->n_learners++] = m->id;
            break;
        case CRAFT_ROLE_WITNESS:
            cs->witnesses[cs->n_witnesses++] = m->id;
            cs->voters[cs->n_voters++] = m->id;
            break;
        default:
            cs->voters[cs->n_voters++] = m->id;
            break;
        }
    }
    if (!self) {
        snprintf(err, err_cap, "bootstrap: this node (%llu) is not among the members",
                 (unsigned long long)h->cfg.node_id);
        return CRAFT_EINVAL;
    }
    /* The file first (durable when written), then its record in the log,
     * durable with the next write: a crash in between is repaired by
     * craft_storage_reconcile at the next start. */
    int rc = host_write_bootstrap_snapshot(h, cfg->group_id, &meta, cfg->members, cfg->n_members);
    if (rc == 0)
        rc = h->ls->save_snapshot(h->ls->data, cfg->group_id, &meta);
    if (rc == 0)
        h->durability_wanted = true;
    if (rc != 0)
        snprintf(err, err_cap, "bootstrap of group %llu: %s", (unsigned long long)cfg->group_id,
                 craft_host_strerror(rc));
    return rc;
}

int group_start(struct craft_host *h, const struct craft_group_config *cfg, char *err,
                size_t err_cap)
{
    if (cfg->group_id == 0) {
        snprintf(err, err_cap, "group id 0 is not valid");
        return CRAFT_EINVAL;
    }
    if (host_find_group(h, cfg->group_id) != NULL) {
        snprintf(err, err_cap, "group %llu is already started", (unsigned long long)cfg->group_id);
        return CRAFT_EEXIST;
    }
    bool exists = on_disk(h, cfg->group_id);
    int rc = 0;
    if (!exists && cfg->start == CRAFT_GROUP_RESTART) {
        snprintf(err, err_cap, "group %llu has no data on this host (bootstrap or join it)",
                 (unsigned long long)cfg->group_id);
        return CRAFT_ENOGROUP;
    }
    if (!exists && cfg->start == CRAFT_GROUP_BOOTSTRAP) {
        rc = bootstrap(h, cfg, err, err_cap);
        if (rc != 0)
            return rc;
        for (uint32_t i = 0; i < cfg->n_members; i++)
            if (cfg->members[i].address != NULL)
                host_set_address_loop(h, cfg->members[i].id, cfg->members[i].address);
    }
    struct host_group *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return CRAFT_ENOMEM;
    g->h = h;
    g->id = cfg->group_id;
    g->cfg = *cfg;
    g->cfg.members = NULL;
    g->cfg.n_members = 0;
    if (g->cfg.snapshot_entries == 0)
        g->cfg.snapshot_entries = 10000;
    if (g->cfg.compaction_overhead == 0)
        g->cfg.compaction_overhead = 5000;
    g->max_pending = cfg->max_pending_proposals ? cfg->max_pending_proposals : 65536;

    uint64_t fsm_applied = 0;
    rc = apply_group_create(h, g, &fsm_applied, err, err_cap);
    if (rc != 0) {
        free(g);
        return rc;
    }
    if (!exists && fsm_applied > 1) {
        /* The state machine holds data of a log this host no longer has:
         * starting a new history on it would skip that history's entries. */
        snprintf(err, err_cap,
                 "group %llu: the state machine already holds entries up to %llu but the log "
                 "has no trace of the group: restore the matching data directory, or empty the "
                 "state machine before starting it anew",
                 (unsigned long long)g->id, (unsigned long long)fsm_applied);
        (void)apply_task_submit(h, g->ag, TASK_STOP, 0, 0, NULL);
        free(g);
        return CRAFT_EINVAL;
    }
    struct craft_config rc_cfg;
    craft_config_default(&rc_cfg);
    rc_cfg.id = h->cfg.node_id;
    if (cfg->election_ticks != 0)
        rc_cfg.election_tick = cfg->election_ticks;
    if (cfg->heartbeat_ticks != 0)
        rc_cfg.heartbeat_tick = cfg->heartbeat_ticks;
    rc_cfg.seed = h->cfg.node_id * 0x9e3779b97f4a7c15ull ^ g->id ^ atomic_load(&h->next_key);
    rc_cfg.applied = 0; /* from the newest snapshot: see apply.c for the state machine */
    rc_cfg.pre_vote = true;
    rc_cfg.check_quorum = true;
    rc_cfg.step_down_on_removal = true;
    rc_cfg.read_only_option = cfg->lease_reads ? CRAFT_READ_ONLY_LEASE : CRAFT_READ_ONLY_SAFE;
    rc_cfg.quiesce_ticks = cfg->quiesce_ticks;
    rc_cfg.max_in_mem_log_size = cfg->max_in_mem_log_size;
    /* Bounds the copy handed to the apply thread, e.g. on a restart that
     * re-applies everything since the snapshot. */
    rc_cfg.max_committed_size_per_ready = 64u << 20;
    rc_cfg.storage = h->ls->storage(h->ls->data, g->id);
    const char *why = NULL;
    rc = rc_cfg.storage == NULL ? CRAFT_ENOMEM : craft_raft_create(&rc_cfg, &g->raft, &why);
    if (rc != 0) {
        snprintf(err, err_cap, "group %llu: %s", (unsigned long long)g->id,
                 why != NULL ? why : craft_host_strerror(rc));
        goto err_stop_apply;
    }
    rc = u64map_put(&h->groups, g->id, g);
    if (rc != 0)
        goto err_destroy;
    host_log(h, CRAFT_HOST_LOG_INFO, "group %llu started (%s, state machine at %llu)",
             (unsigned long long)g->id,
             exists                                ? "restart"
             : cfg->start == CRAFT_GROUP_BOOTSTRAP ? "bootstrap"
                                                   : "join",
             (unsigned long long)fsm_applied);
    return 0;

err_destroy:
    craft_raft_destroy(g->raft);
err_stop_apply:
    (void)apply_task_submit(h, g->ag, TASK_STOP, 0, 0, NULL);
    free(g);
    return rc;
}

/* ---- stop ---- */

static void free_retries(struct host_group *g)
{
    while (g->retry_head != NULL) {
        struct retry *r = g->retry_head;
        g->retry_head = r->next;
        free(r->data);
        free(r);
    }
    g->retry_tail = NULL;
    g->n_retry = 0;
}

static void finish_stop(struct host_group *g)
{
    struct craft_host *h = g->h;
    u64map_remove(&h->groups, g->id);
    pending_expire(h, 0, g->id, true, CRAFT_ESTOPPED);
    free_retries(g);
    craft_raft_destroy(g->raft);
    /* Removing: the log forgets the group now (durable with the next
     * write); its snapshot files go once that is durable and the state
     * machine closed (no snapshot being taken any more): TASK_STOP with
     * index 1 asks the loop for it (REQ_REMOVE_SNAPSHOTS). */
    if (g->remove_data) {
        (void)h->ls->remove_group(h->ls->data, g->id);
        h->durability_wanted = true;
    }
    if (apply_task_submit(h, g->ag, TASK_STOP, 0, g->remove_data ? 1 : 0, g->stop_waiter) != 0 &&
        g->stop_waiter != NULL)
        waiter_signal(g->stop_waiter, CRAFT_ENOMEM);
    host_log(h, CRAFT_HOST_LOG_INFO, "group %llu stopped", (unsigned long long)g->id);
    free(g);
}

void group_stop(struct host_group *g, struct waiter *w, bool remove_data)
{
    g->stopping = true;
    g->stop_waiter = w;
    g->remove_data = remove_data;
    if (!g->in_ready)
        finish_stop(g);
}

/* ---- the ready cycle ---- */

static void send_messages(struct host_group *g)
{
    struct craft_host *h = g->h;
    for (size_t i = 0; i < g->rd.n_messages; i++) {
        const struct craft_message *m = &g->rd.messages[i];
        if (m->type == CRAFT_MSG_SNAPSHOT) {
            host_send_snapshot(g, m);
            continue;
        }
        (void)h->tr->send(h->tr->data, g->id, m); /* drops are reported as unreachable */
    }
    g->messages_sent = true;
}

static int hand_off_committed(struct host_group *g)
{
    const struct craft_ready *rd = &g->rd;
    if (rd->n_committed == 0)
        return 0;
    size_t bytes = 0;
    for (size_t i = 0; i < rd->n_committed; i++)
        bytes += rd->committed[i].len;
    struct apply_task *t =
        calloc(1, sizeof(*t) + rd->n_committed * sizeof(struct apply_entry) + bytes);
    if (t == NULL)
        return CRAFT_ENOMEM;
    t->type = TASK_APPLY;
    t->ag = g->ag;
    t->n = rd->n_committed;
    t->entries = (struct apply_entry *)(t + 1);
    uint8_t *data = (uint8_t *)(t->entries + t->n);
    for (size_t i = 0; i < rd->n_committed; i++) {
        const struct craft_entry *e = &rd->committed[i];
        struct apply_entry *a = &t->entries[i];
        a->index = e->index;
        a->term = e->term;
        a->type = e->type;
        a->len = e->len;
        a->data = data;
        if (e->len > 0)
            memcpy(data, e->data, e->len);
        data += e->len;
    }
    apply_submit(g->h, t);
    return 0;
}

static void group_fail(struct host_group *g, int rc, const char *what)
{
    if (g->failed)
        return;
    g->failed = true;
    host_log(g->h, CRAFT_HOST_LOG_ERROR, "group %llu: %s: %s; the group stops",
             (unsigned long long)g->id, what, craft_host_strerror(rc));
    pending_expire(g->h, 0, g->id, true, rc == CRAFT_EFSM ? CRAFT_EFSM : CRAFT_ESTOPPED);
}

static void finish_ready(struct host_group *g)
{
    struct craft_host *h = g->h;
    if (!g->messages_sent)
        send_messages(g);
    if (g->rd.snapshot != NULL && apply_task_submit(h, g->ag, TASK_RESTORE, g->rd.snapshot->term,
                                                    g->rd.snapshot->index, NULL) != 0) {
        g->in_ready = false;
        group_fail(g, CRAFT_ENOMEM, "restore");
        return;
    }
    if (hand_off_committed(g) != 0) {
        g->in_ready = false;
        group_fail(g, CRAFT_ENOMEM, "apply");
        return;
    }
    for (size_t i = 0; i < g->rd.n_read_states; i++) /* on ENOMEM the read times out */
        (void)apply_task_submit(h, g->ag, TASK_READ, g->rd.read_states[i].context,
                                g->rd.read_states[i].index, NULL);
    int rc = craft_raft_advance(g->raft, &g->rd);
    g->in_ready = false;
    if (rc != 0)
        group_fail(g, rc, "advance");
}

static void retry_waiting(struct host_group *g);

static void note_soft_state(struct host_group *g)
{
    struct craft_host *h = g->h;
    if (g->rd.leader != g->leader_seen) {
        if (g->rd.leader != 0)
            atomic_fetch_add(&h->metrics.leader_changes, 1);
        g->leader_seen = g->rd.leader;
    }
    if (g->rd.role == CRAFT_ROLE_CANDIDATE)
        atomic_fetch_add(&h->metrics.elections, 1);
}

void group_process_ready(struct host_group *g)
{
    struct craft_host *h = g->h;
    for (int round = 0; round < 4; round++) {
        if (g->in_ready || g->failed || g->stopping || h->wal_failed)
            break;
        if (!craft_raft_has_ready(g->raft))
            break;
        int rc = craft_raft_ready(g->raft, &g->rd);
        if (rc != 0) {
            group_fail(g, rc, "ready");
            break;
        }
        note_soft_state(g);
        struct craft_log_store *ls = h->ls;
        const struct craft_ready *rd = &g->rd;
        if (rd->snapshot != NULL)
            rc = ls->save_snapshot(ls->data, g->id, rd->snapshot);
        if (rc == 0 && rd->n_entries > 0)
            rc = ls->append(ls->data, g->id, rd->entries, rd->n_entries);
        if (rc == 0 && rd->has_hard_state)
            rc = ls->save_hard_state(ls->data, g->id, &rd->hard_state);
        if (rc != 0) {
            group_fail(g, rc, "persist");
            break;
        }
        g->in_ready = true;
        g->messages_sent = false;
        if (rd->role == CRAFT_ROLE_LEADER)
            send_messages(g);
        if (rd->must_sync || rd->snapshot != NULL || rd->n_entries > 0) {
            g->wait_epoch = h->write_epoch + 1;
            h->durability_wanted = true;
            break;
        }
        finish_ready(g);
    }
    if (g->leader_seen != 0 && g->retry_head != NULL)
        retry_waiting(g);
}

void group_durable(struct host_group *g, uint64_t epoch, int status)
{
    if (!g->in_ready || g->wait_epoch > epoch)
        return;
    if (status != 0) {
        g->in_ready = false;
        group_fail(g, status, "WAL");
    } else {
        finish_ready(g);
    }
    if (g->stopping && !g->in_ready)
        finish_stop(g);
}

/* ---- requests ---- */

static int try_propose(struct host_group *g, const void *data, uint32_t len)
{
    return craft_raft_propose(g->raft, data, len);
}

static bool no_leader_yet(int rc)
{
    return rc == CRAFT_ENOTLEADER || rc == CRAFT_EDROPPED || rc == CRAFT_ETRANSFER;
}

static void add_retry(struct host_group *g, uint64_t key, bool is_read, void *data, uint32_t len)
{
    struct retry *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        free(data);
        fail_pending(g->h, key, CRAFT_ENOMEM, 0);
        return;
    }
    r->key = key;
    r->is_read = is_read;
    r->data = data;
    r->len = len;
    if (g->retry_tail != NULL)
        g->retry_tail->next = r;
    else
        g->retry_head = r;
    g->retry_tail = r;
    g->n_retry++;
}

bool group_retry_drop(struct host_group *g, uint64_t key)
{
    for (struct retry **pp = &g->retry_head, *prev = NULL; *pp != NULL;
         prev = *pp, pp = &(*pp)->next) {
        struct retry *r = *pp;
        if (r->key != key)
            continue;
        *pp = r->next;
        if (g->retry_tail == r)
            g->retry_tail = prev;
        g->n_retry--;
        free(r->data);
        free(r);
        return true;
    }
    return false;
}

/* Proposals and reads that met no leader try again (on ticks and when a
 * leader appears) until they succeed or time out. */
static void retry_waiting(struct host_group *g)
{
    struct retry *list = g->retry_head;
    g->retry_head = g->retry_tail = NULL;
    g->n_retry = 0;
    while (list != NULL) {
        struct retry *r = list;
        list = r->next;
        r->next = NULL;
        if (!pending_alive(g->h, r->key)) {
            free(r->data);
            free(r);
            continue;
        }
        int rc =
            r->is_read ? craft_raft_read_index(g->raft, r->key) : try_propose(g, r->data, r->len);
        if (rc == 0) {
            free(r->data);
            free(r);
        } else if (no_leader_yet(rc)) {
            if (g->retry_tail != NULL)
                g->retry_tail->next = r;
            else
                g->retry_head = r;
            g->retry_tail = r;
            g->n_retry++;
        } else {
            fail_pending(g->h, r->key, rc, craft_raft_leader(g->raft));
            free(r->data);
            free(r);
        }
    }
}

static int add_pending(struct host_group *g, struct req *r, uint32_t kind)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return CRAFT_ENOMEM;
    p->key = r->key;
    p->group_id = g->id;
    p->kind = kind;
    p->deadline = host_now(g->h) + (r->timeout_ms ? r->timeout_ms : 5000);
    p->cb = r->cb;
    p->arg = r->arg;
    p->target = r->node_id;
    int rc = pending_add(g->h, p);
    if (rc != 0)
        free(p);
    return rc;
}

static void fail_now(struct host_group *g, struct req *r, int status)
{
    struct craft_done done = {.status = status, .leader = craft_raft_leader(g->raft)};
    if (r->cb != NULL)
        r->cb(r->arg, &done);
    if (status != 0 && r->type == REQ_PROPOSE)
        atomic_fetch_add(&g->h->metrics.proposals_failed, 1);
}

static void handle_propose(struct host_group *g, struct req *r)
{
    if (pending_count(g->h) >= g->max_pending) {
        fail_now(g, r, CRAFT_EBUSY);
        return;
    }
    if (add_pending(g, r, PENDING_PROPOSAL) != 0) {
        fail_now(g, r, CRAFT_ENOMEM);
        return;
    }
    int rc = try_propose(g, r->data, r->len);
    if (rc == 0)
        return;
    if (no_leader_yet(rc) && craft_raft_leader(g->raft) == 0) {
        add_retry(g, r->key, false, r->data, r->len);
        r->data = NULL;
        return;
    }
    fail_pending(g->h, r->key, rc, craft_raft_leader(g->raft));
}

static void handle_read(struct host_group *g, struct req *r)
{
    if (add_pending(g, r, PENDING_READ) != 0) {
        fail_now(g, r, CRAFT_ENOMEM);
        return;
    }
    if (r->type == REQ_READ_STALE) {
        if (apply_task_submit(g->h, g->ag, TASK_READ, r->key, 0, NULL) != 0)
            fail_pending(g->h, r->key, CRAFT_ENOMEM, 0);
        return;
    }
    int rc = craft_raft_read_index(g->raft, r->key);
    if (rc == 0)
        return;
    if (no_leader_yet(rc) && craft_raft_leader(g->raft) == 0) {
        add_retry(g, r->key, true, NULL, 0);
        return;
    }
    fail_pending(g->h, r->key, rc, craft_raft_leader(g->raft));
}

static void handle_membership(struct host_group *g, struct req *r)
{
    struct craft_host *h = g->h;
    if (craft_raft_role(g->raft) != CRAFT_ROLE_LEADER) {
        fail_now(g, r, CRAFT_ENOTLEADER);
        return;
    }
    /* One membership change at a time per group, as the core allows: the
     * apply thread completes the one it knows. */
    uint64_t cc_key = apply_cc_key(g->ag);
    if (cc_key != 0 && pending_alive(h, cc_key)) {
        fail_now(g, r, CRAFT_ECONF_PENDING);
        return;
    }
    struct craft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.transition = CRAFT_TRANSITION_AUTO;
    cc.n_changes = 1;
    cc.changes[0].node_id = r->node_id;
    if (r->type == REQ_REMOVE_MEMBER)
        cc.changes[0].type = CRAFT_CC_REMOVE_NODE;
    else if (r->role == CRAFT_ROLE_NON_VOTING)
        cc.changes[0].type = CRAFT_CC_ADD_NON_VOTING;
    else if (r->role == CRAFT_ROLE_WITNESS)
        cc.changes[0].type = CRAFT_CC_ADD_WITNESS;
    else
        cc.changes[0].type = CRAFT_CC_ADD_VOTER;
    if (r->type == REQ_ADD_MEMBER && r->address[0] != '\0') {
        /* The address travels through the log first, so every member (and
         * every snapshot) knows where the new node is. */
        struct host_entry he = {
            .kind = HOST_ENTRY_ADDRESS, .origin = h->cfg.node_id, .node_id = r->node_id};
        snprintf(he.address, sizeof(he.address), "%s", r->address);
        uint32_t len;
        void *buf = host_entry_encode(&he, &len);
        if (buf == NULL) {
            fail_now(g, r, CRAFT_ENOMEM);
            return;
        }
        int rc = craft_raft_propose(g->raft, buf, len);
        free(buf);
        if (rc != 0) {
            fail_now(g, r, rc);
            return;
        }
        host_set_address_loop(h, r->node_id, r->address);
    }
    int rc = craft_raft_propose_conf_change(g->raft, &cc);
    if (rc != 0) {
        fail_now(g, r, rc);
        return;
    }
    struct pending *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        fail_now(g, r, CRAFT_ENOMEM);
        return;
    }
    struct craft_status *st = malloc(sizeof(*st));
    if (st == NULL) {
        free(p);
        fail_now(g, r, CRAFT_ENOMEM);
        return;
    }
    craft_raft_status(g->raft, st);
    p->key = r->key;
    p->group_id = g->id;
    p->kind = PENDING_CONF_CHANGE;
    p->deadline = host_now(h) + (r->timeout_ms ? r->timeout_ms : 5000);
    p->cb = r->cb;
    p->arg = r->arg;
    p->index = st->last_index;
    p->term = st->term;
    free(st);
    if (pending_add(h, p) != 0) {
        free(p);
        fail_now(g, r, CRAFT_ENOMEM);
        return;
    }
    apply_set_cc_key(g->ag, r->key);
}

static void check_transfer(struct host_group *g);

void group_handle_req(struct host_group *g, struct req *r)
{
    if (g->failed) {
        fail_now(g, r, CRAFT_EFSM);
        return;
    }
    switch (r->type) {
    case REQ_PROPOSE:
        handle_propose(g, r);
        break;
    case REQ_READ:
    case REQ_READ_STALE:
        handle_read(g, r);
        break;
    case REQ_ADD_MEMBER:
    case REQ_REMOVE_MEMBER:
        handle_membership(g, r);
        break;
    case REQ_TRANSFER: {
        if (add_pending(g, r, PENDING_TRANSFER) != 0) {
            fail_now(g, r, CRAFT_ENOMEM);
            break;
        }
        g->n_transfers++;
        int rc = craft_raft_transfer_leader(g->raft, r->node_id);
        if (rc != 0)
            fail_pending(g->h, r->key, rc, craft_raft_leader(g->raft));
        else
            check_transfer(g);
        break;
    }
    case REQ_SNAPSHOT: {
        if (add_pending(g, r, PENDING_SNAPSHOT) != 0) {
            fail_now(g, r, CRAFT_ENOMEM);
            break;
        }
        if (apply_task_submit(g->h, g->ag, TASK_SNAPSHOT, r->key, 0, NULL) != 0)
            fail_pending(g->h, r->key, CRAFT_ENOMEM, 0);
        break;
    }
    case REQ_SNAPSHOT_TAKEN: {
        struct craft_log_store *ls = g->h->ls;
        struct craft_snapshot_meta cur;
        memset(&cur, 0, sizeof(cur));
        (void)ls->snapshot(ls->data, g->id, &cur);
        if (r->meta.index <= cur.index)
            break;
        int rc = ls->save_snapshot(ls->data, g->id, &r->meta);
        if (rc != 0) {
            host_log(g->h, CRAFT_HOST_LOG_WARN, "group %llu: recording snapshot %llu: %s",
                     (unsigned long long)g->id, (unsigned long long)r->meta.index,
                     craft_host_strerror(rc));
            break;
        }
        if (r->meta.index > g->cfg.compaction_overhead) {
            uint64_t upto = r->meta.index - g->cfg.compaction_overhead;
            if (upto >= ls->first_index(ls->data, g->id) && upto <= ls->last_index(ls->data, g->id))
                (void)ls->compact(ls->data, g->id, upto);
        }
        break;
    }
    case REQ_GROUP_FAILED:
        group_fail(g, CRAFT_EFSM, "state machine");
        break;
    default:
        fail_now(g, r, CRAFT_EINVAL);
        break;
    }
}

/* ---- ticks, messages, transfers ---- */

static void check_transfer(struct host_group *g)
{
    /* Transfers are rare: the table is scanned only while one of this
     * group's may be pending (the scan recounts them, so ones that timed
     * out stop the scans). */
    struct craft_host *h = g->h;
    uint64_t leader = craft_raft_leader(g->raft);
    if (g->n_transfers == 0 || leader == 0)
        return;
    uint64_t done_key = 0;
    uint32_t still = 0;
    pthread_mutex_lock(&h->pending_lock);
    size_t it = 0;
    uint64_t key;
    struct pending *p;
    while ((p = u64map_next(&h->pending, &it, &key)) != NULL) {
        if (p->kind != PENDING_TRANSFER || p->group_id != g->id)
            continue;
        if (p->target == leader && done_key == 0)
            done_key = key;
        else
            still++;
    }
    pthread_mutex_unlock(&h->pending_lock);
    g->n_transfers = still;
    if (done_key != 0) {
        struct pending *d = pending_take(h, done_key);
        if (d != NULL)
            pending_complete(h, d, 0, leader, 0, NULL);
    }
}

void group_tick(struct host_group *g, uint64_t now)
{
    (void)now;
    if (g->failed || g->stopping)
        return;
    g->ticks++;
    (void)craft_raft_tick(g->raft);
    if (g->retry_head != NULL)
        retry_waiting(g);
    check_transfer(g);
}

static struct peer_contact *contact_of(struct host_group *g, uint64_t id)
{
    for (uint32_t i = 0; i < g->n_contacts; i++)
        if (g->contacts[i].id == id)
            return &g->contacts[i];
    if (g->n_contacts == CRAFT_MAX_NODES)
        return NULL;
    g->contacts[g->n_contacts].id = id;
    return &g->contacts[g->n_contacts++];
}

void group_step(struct host_group *g, const struct craft_message *m)
{
    struct peer_contact *c = contact_of(g, m->from);
    if (c != NULL)
        c->last_ms = host_now(g->h);
    (void)craft_raft_step(g->raft, m);
}

void group_unreachable(struct host_group *g, uint64_t node_id)
{
    if (g->failed || g->stopping)
        return;
    if (craft_conf_state_contains(craft_raft_membership(g->raft), node_id))
        (void)craft_raft_report_unreachable(g->raft, node_id);
}

void group_status(struct host_group *g, struct craft_group_status *out)
{
    struct craft_host *h = g->h;
    memset(out, 0, sizeof(*out));
    craft_raft_status(g->raft, &out->raft);
    out->fsm_applied = apply_fsm_applied(g->ag);
    out->failed = g->failed;
    out->snapshot_index = apply_snapshot_index(g->ag);
    out->pending_reads = 0;
    out->pending_proposals = pending_count(h);
    const struct craft_conf_state *cs = &out->raft.conf;
    uint64_t now = host_now(h);
    uint64_t ids[CRAFT_MAX_NODES * 2];
    uint32_t n = 0;
    for (uint32_t i = 0; i < cs->n_voters; i++)
        ids[n++] = cs->voters[i];
    for (uint32_t i = 0; i < cs->n_voters_outgoing; i++)
        ids[n++] = cs->voters_outgoing[i];
    for (uint32_t i = 0; i < cs->n_learners; i++)
        ids[n++] = cs->learners[i];
    for (uint32_t i = 0; i < n; i++) {
        bool dup = ids[i] == h->cfg.node_id;
        for (uint32_t j = 0; j < out->n_peers && !dup; j++)
            dup = out->peers[j].progress.id == ids[i];
        if (dup || out->n_peers == CRAFT_MAX_NODES)
            continue;
        struct craft_host_peer *p = &out->peers[out->n_peers++];
        p->progress.id = ids[i];
        for (uint32_t k = 0; k < out->raft.n_progress; k++)
            if (out->raft.progress[k].id == ids[i])
                p->progress = out->raft.progress[k];
        if (!host_get_address(h, ids[i], p->address, sizeof(p->address)))
            p->address[0] = '\0';
        p->last_contact_ms = UINT64_MAX;
        for (uint32_t k = 0; k < g->n_contacts; k++)
            if (g->contacts[k].id == ids[i] && g->contacts[k].last_ms != 0)
                p->last_contact_ms = now - g->contacts[k].last_ms;
    }
}
