/* Log replication (Raft paper 5.3, 5.4): the leader's appends, heartbeats and
 * snapshots with per-peer flow control, the follower's answers, commitment,
 * proposals, and the leader side of leadership transfer (Raft thesis 3.10). */
#include <string.h>

#include "raft_internal.h"

uint64_t replication_self_match(const struct craft_raft *r)
{
    return log_stable_index(&r->log);
}

static uint64_t entry_wire_bytes(const struct craft_entry *e, bool to_witness)
{
    if (to_witness && e->type == CRAFT_ENTRY_NORMAL) {
        return 0;
    }
    return e->len;
}

static bool send_snapshot(struct craft_raft *r, struct progress *pr)
{
    struct craft_snapshot_meta meta;
    struct out_message *om;

    if (!pr->recent_active) {
        return false;
    }
    memset(&meta, 0, sizeof(meta));
    if (r->log.storage->snapshot(r->log.storage->data, &meta) != 0 || meta.index == 0) {
        return false; /* not available now: the next heartbeat answer retries */
    }
    om = outbox_push(r, CRAFT_MSG_SNAPSHOT, pr->id);
    if (om == NULL || outbox_push_snapshot(r, om, &meta) != 0) {
        if (om != NULL) {
            r->outbox[r->outbox_current].n--;
        }
        return false;
    }
    progress_become_snapshot(pr, meta.index);
    return true;
}

bool replication_send_append(struct craft_raft *r, struct progress *pr, bool send_if_empty)
{
    uint64_t last = log_last_index(&r->log);
    uint64_t prev, prev_term = 0, bytes = 0;
    struct out_message *om;
    size_t i;
    int rc;

    if (pr->id == r->id || progress_is_paused(pr)) {
        return false;
    }
    if (pr->next > last + 1) {
        pr->next = last + 1;
    }
    if (pr->next == 0) {
        pr->next = 1;
    }
    prev = pr->next - 1;
    rc = log_term(&r->log, prev, &prev_term);
    r->scratch.n = 0;
    if (rc == 0) {
        rc = log_entries(&r->log, pr->next, last + 1, r->cfg.max_size_per_msg, &r->scratch);
    }
    if (rc != 0) {
        /* The entries the peer needs were compacted: send a snapshot. */
        return send_snapshot(r, pr);
    }
    if (r->scratch.n == 0 && !send_if_empty) {
        return false;
    }
    om = outbox_push(r, CRAFT_MSG_APPEND, pr->id);
    if (om == NULL) {
        return false;
    }
    om->kind = OUT_LOG_RANGE;
    om->to_witness = pr->is_witness;
    om->lo = pr->next;
    om->hi = pr->next + r->scratch.n;
    om->m.index = prev;
    om->m.log_term = prev_term;
    om->m.commit = r->log.committed;
    for (i = 0; i < r->scratch.n; i++) {
        bytes += entry_wire_bytes(&r->scratch.v[i], pr->is_witness);
    }
    progress_sent_entries(pr, om->hi - 1, bytes);
    return true;
}

void replication_bcast_append(struct craft_raft *r)
{
    uint32_t i;

    r->append_pending = false;
    for (i = 0; i < r->n_progress; i++) {
        replication_send_append(r, &r->progress[i], true);
    }
}

void replication_bcast_heartbeat(struct craft_raft *r, uint64_t read_seq)
{
    uint32_t i;

    for (i = 0; i < r->n_progress; i++) {
        struct progress *pr = &r->progress[i];
        struct out_message *om;
        if (pr->id == r->id) {
            continue;
        }
        om = outbox_push(r, CRAFT_MSG_HEARTBEAT, pr->id);
        if (om == NULL) {
            continue;
        }
        /* Never tell a follower to commit beyond what it is known to hold. */
        om->m.commit = pr->match < r->log.committed ? pr->match : r->log.committed;
        om->m.context = read_seq;
    }
}

bool replication_maybe_commit(struct craft_raft *r)
{
    uint64_t match[CRAFT_MAX_NODES];
    uint64_t committed;
    uint32_t i;

    for (i = 0; i < r->n_progress; i++) {
        match[i] = r->progress[i].match;
    }
    committed = membership_committed(r, match);
    /* Raft paper 5.4.2: only entries of the current term commit by counting. */
    if (committed == UINT64_MAX || !log_maybe_commit(&r->log, committed, r->term)) {
        return false;
    }
    read_only_release_postponed(r);
    return true;
}

int replication_append_entries(struct craft_raft *r, const struct craft_entry *entries, size_t n)
{
    struct craft_entry batch[64];
    uint64_t last = log_last_index(&r->log);
    uint64_t bytes = 0;
    size_t done = 0, i;
    int rc;

    for (i = 0; i < n; i++) {
        bytes += entries[i].len;
    }
    /* etcd raft's rule: the first proposal past an empty window always fits. */
    if (r->cfg.max_uncommitted_size != 0 && r->uncommitted_size > 0 &&
        r->uncommitted_size + bytes > r->cfg.max_uncommitted_size) {
        r->stats.proposals_dropped++;
        return CRAFT_EBUSY;
    }
    while (done < n) {
        size_t k = n - done < 64 ? n - done : 64;
        for (i = 0; i < k; i++) {
            batch[i] = entries[done + i];
            batch[i].term = r->term;
            batch[i].index = last + 1 + done + i;
        }
        rc = log_append(&r->log, batch, k);
        if (rc != 0) {
            return rc;
        }
        done += k;
    }
    r->uncommitted_size += bytes;
    r->append_pending = true;
    {
        struct progress *self = raft_progress(r, r->id);
        if (self != NULL) {
            self->next = log_last_index(&r->log) + 1;
        }
    }
    return 0;
}

static bool rate_limited(const struct craft_raft *r)
{
    uint64_t max = r->cfg.max_in_mem_log_size;
    uint32_t i;

    if (max == 0) {
        return false;
    }
    if (r->log.inmem_bytes > max) {
        return true;
    }
    for (i = 0; i < r->n_progress; i++) {
        const struct progress *pr = &r->progress[i];
        /* Reports older than two election timeouts are stale. */
        if (pr->id != r->id && pr->rate_limit_age <= 2 * r->cfg.election_tick &&
            pr->rate_limit_bytes > max) {
            return true;
        }
    }
    return false;
}

int replication_handle_propose(struct craft_raft *r, const struct craft_message *m)
{
    uint32_t i;

    if (m->n_entries == 0) {
        return CRAFT_EINVAL;
    }
    if (raft_progress(r, r->id) == NULL) {
        /* Removed from the group and still leading until it steps down. */
        r->stats.proposals_dropped++;
        return CRAFT_EREMOVED;
    }
    if (r->lead_transferee != 0) {
        r->stats.proposals_dropped++;
        return CRAFT_ETRANSFER;
    }
    if (rate_limited(r)) {
        r->stats.proposals_dropped++;
        return CRAFT_EBUSY;
    }
    for (i = 0; i < m->n_entries; i++) {
        /* Membership changes go through craft_raft_propose_conf_change, where
         * they are validated; a forwarded one is refused. */
        if (m->entries[i].type != CRAFT_ENTRY_NORMAL ||
            (m->entries[i].len > 0 && m->entries[i].data == NULL)) {
            r->stats.proposals_dropped++;
            return CRAFT_EINVAL;
        }
    }
    return replication_append_entries(r, m->entries, m->n_entries);
}

int replication_forward(struct craft_raft *r, const struct craft_message *m)
{
    struct out_message *om = outbox_push(r, m->type, r->leader);

    if (om == NULL) {
        return CRAFT_ENOMEM;
    }
    om->m.context = m->context;
    if (m->type == CRAFT_MSG_TRANSFER_LEADER) {
        om->m.from = m->from; /* the transferee */
    }
    if (m->n_entries > 0 && outbox_push_literal(r, om, m->entries, m->n_entries) != 0) {
        r->outbox[r->outbox_current].n--;
        return CRAFT_ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Follower side.
 * ------------------------------------------------------------------------ */
static void send_append_resp(struct craft_raft *r, uint64_t to, uint64_t index)
{
    struct out_message *om = outbox_push(r, CRAFT_MSG_APPEND_RESP, to);

    if (om != NULL) {
        om->m.index = index;
    }
}

int replication_handle_append(struct craft_raft *r, const struct craft_message *m)
{
    uint64_t last_new, hint, hint_term, last;
    struct out_message *om;
    bool matched;
    int rc;

    r->election_elapsed = 0;
    r->leader = m->from;
    if (m->index < r->log.committed) {
        send_append_resp(r, m->from, r->log.committed);
        return 0;
    }
    rc = log_maybe_append(&r->log, m->index, m->log_term, m->commit, m->entries, m->n_entries,
                          &matched, &last_new);
    if (rc != 0) {
        r->stats.dropped[m->type]++;
        return rc;
    }
    if (matched) {
        send_append_resp(r, m->from, last_new);
        return 0;
    }
    /* Reject with a hint (etcd raft's fast backtracking): the largest index
     * whose term is at most the leader's term at m->index. */
    last = log_last_index(&r->log);
    hint = log_find_conflict_by_term(&r->log, m->index < last ? m->index : last, m->log_term,
                                     &hint_term);
    om = outbox_push(r, CRAFT_MSG_APPEND_RESP, m->from);
    if (om != NULL) {
        om->m.index = m->index;
        om->m.reject = true;
        om->m.reject_hint = hint;
        om->m.log_term = hint_term;
    }
    return 0;
}

int replication_handle_heartbeat(struct craft_raft *r, const struct craft_message *m)
{
    struct out_message *om;

    r->election_elapsed = 0;
    r->leader = m->from;
    log_commit_to(&r->log, m->commit);
    om = outbox_push(r, CRAFT_MSG_HEARTBEAT_RESP, m->from);
    if (om != NULL) {
        om->m.context = m->context;
    }
    return 0;
}

int replication_handle_snapshot(struct craft_raft *r, const struct craft_message *m)
{
    const struct craft_snapshot_meta *s = m->snapshot;
    int rc;

    r->election_elapsed = 0;
    r->leader = m->from;
    if (s->index <= r->log.committed) {
        send_append_resp(r, m->from, r->log.committed);
        return 0;
    }
    if (!craft_conf_state_contains(&s->conf, r->id)) {
        /* A snapshot that does not name us cannot be ours to install. */
        r->stats.dropped[m->type]++;
        return CRAFT_EINVAL;
    }
    if (log_match_term(&r->log, s->index, s->term)) {
        /* We hold the entry already: fast-forward the commit index. */
        log_commit_to(&r->log, s->index);
        send_append_resp(r, m->from, r->log.committed);
        return 0;
    }
    rc = membership_set(r, &s->conf);
    if (rc != 0) {
        r->stats.dropped[m->type]++;
        return rc;
    }
    log_restore(&r->log, s);
    r->role = raft_follower_role(r);
    send_append_resp(r, m->from, log_last_index(&r->log));
    return 0;
}

/* ------------------------------------------------------------------------
 * Leader side.
 * ------------------------------------------------------------------------ */
static void send_timeout_now(struct craft_raft *r, uint64_t to)
{
    outbox_push(r, CRAFT_MSG_TIMEOUT_NOW, to);
}

int replication_handle_append_resp(struct craft_raft *r, const struct craft_message *m)
{
    struct progress *pr = raft_progress(r, m->from);

    if (pr == NULL || pr->id == r->id) {
        r->stats.dropped[m->type]++;
        return 0;
    }
    pr->recent_active = true;
    if (m->reject) {
        uint64_t next_probe = m->reject_hint;
        if (m->log_term > 0) {
            uint64_t t;
            next_probe = log_find_conflict_by_term(&r->log, m->reject_hint, m->log_term, &t);
        }
        if (progress_maybe_decr_to(pr, m->index, next_probe)) {
            if (pr->state == CRAFT_PROGRESS_REPLICATE) {
                progress_become_probe(pr);
            }
            replication_send_append(r, pr, true);
        }
        return 0;
    }
    {
        if (!progress_maybe_update(pr, m->index)) {
            return 0;
        }
        if (pr->state == CRAFT_PROGRESS_PROBE) {
            progress_become_replicate(pr);
        } else if (pr->state == CRAFT_PROGRESS_SNAPSHOT && pr->match >= pr->pending_snapshot) {
            progress_become_probe(pr);
            progress_become_replicate(pr);
        } else if (pr->state == CRAFT_PROGRESS_REPLICATE) {
            inflights_free_to(&pr->inflights, m->index);
        }
        if (replication_maybe_commit(r)) {
            r->append_pending = true;
        }
        /* Fill the window (it may have been paused until this answer). */
        while (replication_send_append(r, pr, false)) {
        }
        if (m->from == r->lead_transferee && pr->match == log_last_index(&r->log)) {
            send_timeout_now(r, m->from);
        }
    }
    return 0;
}

int replication_handle_heartbeat_resp(struct craft_raft *r, const struct craft_message *m)
{
    struct progress *pr = raft_progress(r, m->from);

    if (pr == NULL || pr->id == r->id) {
        r->stats.dropped[m->type]++;
        return 0;
    }
    pr->recent_active = true;
    pr->probe_sent = false;
    /* A full window whose answers were lost would stall forever: free one. */
    if (pr->state == CRAFT_PROGRESS_REPLICATE && inflights_full(&pr->inflights) &&
        pr->inflights.count > 0) {
        inflights_free_to(&pr->inflights, pr->inflights.ring[pr->inflights.start].index);
    }
    if (pr->match < log_last_index(&r->log)) {
        replication_send_append(r, pr, true);
    }
    if (m->context != 0) {
        read_only_ack(r, m->from, m->context);
    }
    return 0;
}

int replication_handle_snapshot_status(struct craft_raft *r, const struct craft_message *m)
{
    struct progress *pr = raft_progress(r, m->from);

    if (pr == NULL || pr->state != CRAFT_PROGRESS_SNAPSHOT) {
        return 0;
    }
    if (m->reject) {
        pr->pending_snapshot = 0;
    }
    /* Wait for the follower's answer (or the next heartbeat) before sending
     * more: probe with the pause set. */
    progress_become_probe(pr);
    pr->probe_sent = true;
    return 0;
}

int replication_handle_unreachable(struct craft_raft *r, const struct craft_message *m)
{
    struct progress *pr = raft_progress(r, m->from);

    if (pr != NULL && pr->state == CRAFT_PROGRESS_REPLICATE) {
        progress_become_probe(pr);
    }
    return 0;
}

void replication_abort_transfer(struct craft_raft *r)
{
    r->lead_transferee = 0;
}

int replication_handle_transfer_leader(struct craft_raft *r, const struct craft_message *m)
{
    uint64_t transferee = m->from;
    struct progress *pr = raft_progress(r, transferee);

    if (pr == NULL || !craft_conf_state_is_voter(&r->conf, transferee) ||
        craft_conf_state_is_witness(&r->conf, transferee)) {
        return CRAFT_EINVAL; /* only a full voter can lead */
    }
    if (transferee == r->id) {
        return 0; /* already leader */
    }
    if (r->lead_transferee != 0) {
        if (r->lead_transferee == transferee) {
            return 0;
        }
        replication_abort_transfer(r);
    }
    r->lead_transferee = transferee;
    r->election_elapsed = 0;
    if (pr->match == log_last_index(&r->log)) {
        send_timeout_now(r, transferee);
    } else {
        replication_send_append(r, pr, true);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Public entry points.
 * ------------------------------------------------------------------------ */
static int step_local(struct craft_raft *r, uint32_t type, uint64_t from, bool reject,
                      const struct craft_entry *e, uint64_t context)
{
    /* Copied from a zeroed object rather than memset: gcc inlines a memset
     * of this size as `rep stos`, slow on this path taken per proposal. */
    static const struct craft_message blank;
    struct craft_message m = blank;

    m.type = type;
    m.from = from;
    m.to = r->id;
    m.reject = reject;
    m.context = context;
    if (e != NULL) {
        m.entries = e;
        m.n_entries = 1;
    }
    return craft_raft_step(r, &m);
}

int craft_raft_propose(struct craft_raft *r, const void *data, uint32_t len)
{
    struct craft_entry e;

    if (r == NULL || (len > 0 && data == NULL)) {
        return CRAFT_EINVAL;
    }
    if (len > CRAFT_MAX_ENTRY_SIZE) {
        return CRAFT_ETOO_BIG;
    }
    memset(&e, 0, sizeof(e));
    e.type = CRAFT_ENTRY_NORMAL;
    e.len = len;
    e.data = data;
    return step_local(r, CRAFT_MSG_PROPOSE, r->id, false, &e, 0);
}

int craft_raft_transfer_leader(struct craft_raft *r, uint64_t transferee)
{
    if (r == NULL || transferee == 0) {
        return CRAFT_EINVAL;
    }
    if (r->role != CRAFT_ROLE_LEADER && r->leader == 0) {
        return CRAFT_ENOTLEADER;
    }
    return step_local(r, CRAFT_MSG_TRANSFER_LEADER, transferee, false, NULL, 0);
}

int craft_raft_report_unreachable(struct craft_raft *r, uint64_t id)
{
    if (r == NULL) {
        return CRAFT_EINVAL;
    }
    return step_local(r, CRAFT_MSG_UNREACHABLE, id, false, NULL, 0);
}

int craft_raft_report_snapshot(struct craft_raft *r, uint64_t id, bool failed)
{
    if (r == NULL) {
        return CRAFT_EINVAL;
    }
    return step_local(r, CRAFT_MSG_SNAPSHOT_STATUS, id, failed, NULL, 0);
}

int craft_raft_read_index(struct craft_raft *r, uint64_t context)
{
    int rc;

    if (r == NULL) {
        return CRAFT_EINVAL;
    }
    if (r->role != CRAFT_ROLE_LEADER && r->leader == 0) {
        return CRAFT_EDROPPED;
    }
    if (r->role == CRAFT_ROLE_WITNESS) {
        return CRAFT_EINVAL;
    }
    rc = step_local(r, CRAFT_MSG_READ_INDEX, r->id, false, NULL, context);
    return rc;
}
