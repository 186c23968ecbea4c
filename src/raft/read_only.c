/* Linearizable reads (Raft thesis 6.4). The leader records the commit index
 * when a read arrives and answers once a quorum has acknowledged a heartbeat
 * round sent after it. Rounds are numbered: a heartbeat carries the newest
 * round and an acknowledgement of round s confirms every read registered up
 * to s, so any number of reads share one round. Lease reads (6.4.1) answer at
 * once and rely on CheckQuorum. */
#include <stdlib.h>
#include <string.h>

#include "raft_internal.h"

static int queue_push(struct read_queue *q, const struct read_request *req)
{
    if (q->start + q->n == q->cap) {
        if (q->start > 0) {
            memmove(q->v, q->v + q->start, q->n * sizeof(*q->v));
            q->start = 0;
        } else {
            size_t cap = q->cap ? q->cap * 2 : 16;
            struct read_request *v = realloc(q->v, cap * sizeof(*v));
            if (v == NULL) {
                return CRAFT_ENOMEM;
            }
            q->v = v;
            q->cap = cap;
        }
    }
    q->v[q->start + q->n++] = *req;
    return 0;
}

int read_only_push_state(struct craft_raft *r, uint64_t index, uint64_t context)
{
    if (r->n_read_states == r->cap_read_states) {
        size_t cap = r->cap_read_states ? r->cap_read_states * 2 : 16;
        struct craft_read_state *v = realloc(r->read_states, cap * sizeof(*v));
        if (v == NULL) {
            return CRAFT_ENOMEM;
        }
        r->read_states = v;
        r->cap_read_states = cap;
    }
    r->read_states[r->n_read_states].index = index;
    r->read_states[r->n_read_states].context = context;
    r->n_read_states++;
    return 0;
}

static int respond(struct craft_raft *r, uint64_t index, uint64_t context, uint64_t from)
{
    struct out_message *om;

    if (from == r->id || from == 0) {
        return read_only_push_state(r, index, context);
    }
    om = outbox_push(r, CRAFT_MSG_READ_INDEX_RESP, from);
    if (om == NULL) {
        return CRAFT_ENOMEM;
    }
    om->m.index = index;
    om->m.context = context;
    return 0;
}

static bool committed_in_term(const struct craft_raft *r)
{
    uint64_t t = 0;

    return log_term(&r->log, r->log.committed, &t) == 0 && t == r->term;
}

static bool sole_voter(const struct craft_raft *r)
{
    return r->conf.n_voters == 1 && r->conf.n_voters_outgoing == 0 && r->conf.voters[0] == r->id;
}

int read_only_handle_leader(struct craft_raft *r, const struct craft_message *m)
{
    struct read_request req;

    memset(&req, 0, sizeof(req));
    req.context = m->context;
    req.from = m->from;
    if (sole_voter(r)) {
        return respond(r, r->log.committed, m->context, m->from);
    }
    if (!committed_in_term(r)) {
        /* Raft thesis 6.4: the commit index is only known to be current
         * once an entry of this term has committed. */
        return queue_push(&r->postponed_reads, &req);
    }
    if (r->cfg.read_only_option == CRAFT_READ_ONLY_LEASE) {
        return respond(r, r->log.committed, m->context, m->from);
    }
    req.index = r->log.committed;
    req.seq = ++r->read_seq;
    r->read_heartbeat_pending = true;
    return queue_push(&r->reads, &req);
}

int read_only_handle_resp(struct craft_raft *r, const struct craft_message *m)
{
    if (m->reject) {
        return 0;
    }
    return read_only_push_state(r, m->index, m->context);
}

void read_only_ack(struct craft_raft *r, uint64_t from, uint64_t seq)
{
    uint64_t acked[CRAFT_MAX_NODES];
    uint64_t confirmed;
    int slot = raft_progress_slot(r, from);
    uint32_t i;

    if (slot < 0 || r->reads.n == 0) {
        return;
    }
    if (seq > r->read_seq) {
        return; /* not a round of ours */
    }
    if (r->read_acked[slot] < seq) {
        r->read_acked[slot] = seq;
    }
    for (i = 0; i < r->n_progress; i++) {
        acked[i] = r->progress[i].id == r->id ? r->read_seq : r->read_acked[i];
    }
    confirmed = membership_committed(r, acked);
    while (r->reads.n > 0 && r->reads.v[r->reads.start].seq <= confirmed) {
        struct read_request *req = &r->reads.v[r->reads.start];
        respond(r, req->index, req->context, req->from);
        r->reads.start++;
        r->reads.n--;
    }
    if (r->reads.n == 0) {
        r->reads.start = 0;
    }
}

void read_only_release_postponed(struct craft_raft *r)
{
    struct read_queue q = r->postponed_reads;
    size_t i;

    if (q.n == 0 || !committed_in_term(r)) {
        return;
    }
    memset(&r->postponed_reads, 0, sizeof(r->postponed_reads));
    for (i = 0; i < q.n; i++) {
        struct craft_message m;
        memset(&m, 0, sizeof(m));
        m.type = CRAFT_MSG_READ_INDEX;
        m.from = q.v[q.start + i].from;
        m.context = q.v[q.start + i].context;
        read_only_handle_leader(r, &m);
    }
    free(q.v);
}

void read_only_reset(struct craft_raft *r)
{
    r->reads.start = 0;
    r->reads.n = 0;
    r->postponed_reads.start = 0;
    r->postponed_reads.n = 0;
    r->read_heartbeat_pending = false;
    memset(r->read_acked, 0, sizeof(r->read_acked));
}

void read_only_free(struct craft_raft *r)
{
    free(r->reads.v);
    free(r->postponed_reads.v);
    free(r->read_states);
    memset(&r->reads, 0, sizeof(r->reads));
    memset(&r->postponed_reads, 0, sizeof(r->postponed_reads));
    r->read_states = NULL;
}
