/* The ready cycle: has_ready, ready and advance (see raft.h and
 * docs/architecture.md), and the node's status. A ready resolves the
 * outbox's entry ranges into pointers, so everything it hands out stays valid
 * until advance; the outbox it drew from is set aside until the next ready. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "raft_internal.h"

static bool hard_state_equal(const struct craft_hard_state *a, const struct craft_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

static void current_hard_state(const struct craft_raft *r, struct craft_hard_state *hs)
{
    hs->term = r->term;
    hs->vote = r->vote;
    hs->commit = r->log.committed;
}

static bool has_committed_to_apply(const struct craft_raft *r)
{
    return !r->log.unstable.has_snapshot && r->log.committed > r->applying;
}

bool craft_raft_has_ready(const struct craft_raft *r)
{
    struct craft_hard_state hs;

    if (r == NULL || r->ready_outstanding) {
        return false;
    }
    current_hard_state(r, &hs);
    return r->outbox[r->outbox_current].n > 0 || r->log.unstable.n > 0 ||
           r->log.unstable.has_snapshot || has_committed_to_apply(r) || r->n_read_states > 0 ||
           !hard_state_equal(&hs, &r->prev_hard_state) || r->leader != r->prev_leader ||
           r->role != r->prev_role || r->conf_changed ||
           (r->role == CRAFT_ROLE_LEADER && (r->append_pending || r->read_heartbeat_pending));
}

static int grow_messages(struct ready_pool *p, size_t n)
{
    if (n > p->cap_messages) {
        size_t cap = p->cap_messages ? p->cap_messages : 16;
        struct craft_message *v;
        while (cap < n) {
            cap *= 2;
        }
        v = realloc(p->messages, cap * sizeof(*v));
        if (v == NULL) {
            return CRAFT_ENOMEM;
        }
        p->messages = v;
        p->cap_messages = cap;
    }
    return 0;
}

/* Resolves one queued message's entries into the pool; false to drop it. */
static bool resolve_entries(struct craft_raft *r, const struct outbox *ob,
                            const struct out_message *om, size_t *first, size_t *count)
{
    struct entry_vec *ev = &r->pool.entries;
    size_t start = ev->n, i;

    *first = start;
    *count = 0;
    switch (om->kind) {
    case OUT_LOG_RANGE:
        /* Only a leader still in the term that queued it may send an append:
         * its log cannot have changed below the range since. */
        if (r->role != CRAFT_ROLE_LEADER || om->m.term != r->term) {
            return false;
        }
        if (om->hi > om->lo) {
            if (log_entries(&r->log, om->lo, om->hi, UINT64_MAX, ev) != 0 ||
                ev->n - start != om->hi - om->lo) {
                ev->n = start;
                return false;
            }
        }
        if (om->to_witness) {
            for (i = start; i < ev->n; i++) {
                if (ev->v[i].type == CRAFT_ENTRY_NORMAL) {
                    ev->v[i].type = CRAFT_ENTRY_METADATA;
                    ev->v[i].len = 0;
                    ev->v[i].data = NULL;
                }
            }
        }
        break;
    case OUT_LITERAL:
        if (entry_vec_reserve(ev, om->count) != 0) {
            return false;
        }
        for (i = 0; i < om->count; i++) {
            const struct literal *lit = &ob->literals[om->first + i];
            ev->v[ev->n] = lit->entry;
            ev->v[ev->n].data = lit->entry.len ? ob->bytes + lit->offset : NULL;
            ev->n++;
        }
        break;
    default:
        break;
    }
    *count = ev->n - start;
    return true;
}

/* Zeroes rd except conf_state's member arrays: conf_state is 2.5 KiB, and
 * clearing it on every ready was the largest single cost of a ready. Its
 * counts are zeroed, so without has_conf_state it reads as an empty
 * membership, as before. */
static void clear_ready(struct craft_ready *rd)
{
    size_t head = offsetof(struct craft_ready, conf_state);
    size_t tail = head + sizeof(rd->conf_state);

    memset(rd, 0, head);
    memset(&rd->conf_state, 0, offsetof(struct craft_conf_state, voters));
    memset((unsigned char *)rd + tail, 0, sizeof(*rd) - tail);
}

int craft_raft_ready(struct craft_raft *r, struct craft_ready *rd)
{
    struct ready_pool *p = &r->pool;
    struct unstable *u = &r->log.unstable;
    struct outbox *ob;
    size_t persist_first, committed_first, committed_n, i, n_msgs = 0;
    size_t *msg_first = NULL;
    int rc;

    if (r == NULL || rd == NULL) {
        return CRAFT_EINVAL;
    }
    if (r->ready_outstanding) {
        return CRAFT_EINVAL; /* advance the previous ready first */
    }
    clear_ready(rd);
    if (r->role == CRAFT_ROLE_LEADER) {
        if (r->append_pending) {
            replication_bcast_append(r);
        }
        if (r->read_heartbeat_pending) {
            replication_bcast_heartbeat(r, r->read_seq);
        }
    }
    r->append_pending = false;
    r->read_heartbeat_pending = false;

    p->entries.n = 0;
    /* 1. Entries to persist: the whole unstable tail. */
    rc = entry_vec_reserve(&p->entries, u->n);
    if (rc != 0) {
        return rc;
    }
    persist_first = 0;
    if (u->n > 0) {
        memcpy(p->entries.v, u->entries, u->n * sizeof(*u->entries));
    }
    p->entries.n = u->n;
    if (u->has_snapshot) {
        p->snapshot = u->snapshot;
        rd->snapshot = &p->snapshot;
    }
    /* 2. Committed entries to apply. */
    committed_first = p->entries.n;
    if (has_committed_to_apply(r)) {
        uint64_t max = r->cfg.max_committed_size_per_ready;
        rc = log_entries(&r->log, r->applying + 1, r->log.committed + 1, max ? max : UINT64_MAX,
                         &p->entries);
        if (rc != 0) {
            return rc;
        }
    }
    committed_n = p->entries.n - committed_first;
    /* 3. Messages. */
    ob = &r->outbox[r->outbox_current];
    rc = grow_messages(p, ob->n);
    if (rc != 0) {
        return rc;
    }
    /* Sized with the message array, which grows geometrically: sizing it to
     * ob->n exactly would reallocate each time the outbox reaches a new
     * high-water mark by one message. */
    if (p->cap_messages * 2 > p->cap_spans) {
        size_t *v = realloc(p->spans, p->cap_messages * 2 * sizeof(*v));
        if (v == NULL) {
            return CRAFT_ENOMEM;
        }
        p->spans = v;
        p->cap_spans = p->cap_messages * 2;
    }
    msg_first = p->spans;
    for (i = 0; i < ob->n; i++) {
        const struct out_message *om = &ob->msgs[i];
        size_t first, count;
        if (!resolve_entries(r, ob, om, &first, &count)) {
            continue;
        }
        p->messages[n_msgs] = om->m;
        p->messages[n_msgs].snapshot = om->kind == OUT_SNAPSHOT ? &ob->snapshots[om->first] : NULL;
        msg_first[2 * n_msgs] = first;
        msg_first[2 * n_msgs + 1] = count;
        n_msgs++;
    }
    /* The pool is complete: pointers into it are now stable. */
    for (i = 0; i < n_msgs; i++) {
        size_t count = msg_first[2 * i + 1];
        p->messages[i].n_entries = (uint32_t)count;
        p->messages[i].entries = count ? p->entries.v + msg_first[2 * i] : NULL;
    }
    rd->entries = u->n ? p->entries.v + persist_first : NULL;
    rd->n_entries = u->n;
    rd->committed = committed_n ? p->entries.v + committed_first : NULL;
    rd->n_committed = committed_n;
    rd->messages = n_msgs ? p->messages : NULL;
    rd->n_messages = n_msgs;
    /* The outbox just resolved stays untouched until the next ready. */
    r->outbox_current ^= 1u;
    outbox_clear(&r->outbox[r->outbox_current]);

    /* 4. Read states. */
    if (r->n_read_states > 0) {
        if (r->n_read_states > p->cap_read_states) {
            struct craft_read_state *v = realloc(p->read_states, r->n_read_states * sizeof(*v));
            if (v == NULL) {
                return CRAFT_ENOMEM;
            }
            p->read_states = v;
            p->cap_read_states = r->n_read_states;
        }
        memcpy(p->read_states, r->read_states, r->n_read_states * sizeof(*p->read_states));
        rd->read_states = p->read_states;
        rd->n_read_states = r->n_read_states;
        r->n_read_states = 0;
    }

    /* 5. Hard state, soft state, membership. */
    current_hard_state(r, &rd->hard_state);
    rd->has_hard_state = !hard_state_equal(&rd->hard_state, &r->prev_hard_state);
    rd->must_sync = rd->n_entries > 0 || rd->snapshot != NULL ||
                    rd->hard_state.term != r->prev_hard_state.term ||
                    rd->hard_state.vote != r->prev_hard_state.vote;
    rd->leader = r->leader;
    rd->role = r->role;
    if (r->conf_changed) {
        rd->has_conf_state = true;
        rd->conf_state = r->conf;
        r->conf_changed = false;
    }
    r->prev_leader = r->leader;
    r->prev_role = r->role;
    if (rd->n_committed > 0) {
        r->applying = rd->committed[rd->n_committed - 1].index;
    }
    r->ready_outstanding = true;
    return 0;
}

static void auto_leave_joint(struct craft_raft *r)
{
    unsigned char buf[16];
    struct craft_conf_change cc;
    struct craft_entry e;
    int n;

    memset(&cc, 0, sizeof(cc));
    n = craft_conf_change_encode(&cc, buf, sizeof(buf));
    if (n < 0) {
        return;
    }
    memset(&e, 0, sizeof(e));
    e.type = CRAFT_ENTRY_CONF_CHANGE;
    e.len = (uint32_t)n;
    e.data = buf;
    if (replication_append_entries(r, &e, 1) == 0) {
        r->pending_conf_index = log_last_index(&r->log);
    }
}

int craft_raft_advance(struct craft_raft *r, const struct craft_ready *rd)
{
    size_t i;

    if (r == NULL || rd == NULL || !r->ready_outstanding) {
        return CRAFT_EINVAL;
    }
    r->ready_outstanding = false;
    if (rd->snapshot != NULL) {
        log_stable_snapshot_to(&r->log, rd->snapshot->index);
        if (r->log.applied < rd->snapshot->index) {
            r->log.applied = rd->snapshot->index;
        }
        if (r->applying < rd->snapshot->index) {
            r->applying = rd->snapshot->index;
        }
    }
    if (rd->n_entries > 0) {
        const struct craft_entry *last = &rd->entries[rd->n_entries - 1];
        log_stable_to(&r->log, last->index, last->term);
    }
    if (rd->has_hard_state) {
        r->prev_hard_state = rd->hard_state;
    }
    for (i = 0; i < rd->n_committed; i++) {
        const struct craft_entry *e = &rd->committed[i];
        /* A snapshot restored since this ready was handed out (it waits in
         * the unstable log for the next ready) already holds the membership
         * as of its index: entries it covers are not applied again. */
        bool superseded =
            r->log.unstable.has_snapshot && e->index <= r->log.unstable.snapshot.index;
        if (e->type == CRAFT_ENTRY_CONF_CHANGE && !superseded) {
            membership_apply_entry(r, e);
        }
        log_applied_bytes(&r->log, e->len);
        if (r->role == CRAFT_ROLE_LEADER) {
            r->uncommitted_size -= r->uncommitted_size < e->len ? r->uncommitted_size : e->len;
        }
    }
    if (rd->n_committed > 0) {
        log_applied_to(&r->log, rd->committed[rd->n_committed - 1].index);
    }
    if (r->role == CRAFT_ROLE_LEADER) {
        /* The leader counts itself once its own write is durable (Raft thesis
         * 10.2.1). */
        struct progress *self = raft_progress(r, r->id);
        if (self != NULL) {
            uint64_t stable = log_stable_index(&r->log);
            if (stable > self->match) {
                self->match = stable;
            }
            if (replication_maybe_commit(r)) {
                r->append_pending = true;
            }
        }
        if (membership_leave_joint_pending(r)) {
            auto_leave_joint(r);
        }
    }
    log_release(&r->log);
    return 0;
}

void craft_raft_status(const struct craft_raft *r, struct craft_status *st)
{
    uint32_t i;

    memset(st, 0, sizeof(*st));
    st->id = r->id;
    st->role = r->role;
    st->term = r->term;
    st->vote = r->vote;
    st->commit = r->log.committed;
    st->applied = r->log.applied;
    st->leader = r->leader;
    st->lead_transferee = r->lead_transferee;
    st->first_index = log_first_index(&r->log);
    st->last_index = log_last_index(&r->log);
    st->quiesced = r->quiesced;
    st->conf = r->conf;
    st->stats = r->stats;
    if (r->role != CRAFT_ROLE_LEADER) {
        return;
    }
    for (i = 0; i < r->n_progress; i++) {
        const struct progress *pr = &r->progress[i];
        struct craft_peer_status *ps = &st->progress[st->n_progress++];
        ps->id = pr->id;
        ps->match = pr->match;
        ps->next = pr->next;
        ps->state = pr->state;
        ps->inflight = pr->inflights.count;
        ps->inflight_bytes = pr->inflights.bytes;
        ps->pending_snapshot = pr->pending_snapshot;
        ps->recent_active = pr->recent_active;
        ps->paused = progress_is_paused(pr);
        ps->is_learner = pr->is_learner;
        ps->is_witness = pr->is_witness;
    }
}
