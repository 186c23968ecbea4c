/* The node: creation from config and storage, role transitions, the step
 * function with its handler table (indexed by role and message type, as
 * dragonboat does), and the logical clock. */
#include <stdlib.h>
#include <string.h>

#include "raft_internal.h"

typedef int (*handler_fn)(struct craft_raft *r, const struct craft_message *m);

void craft_config_default(struct craft_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->election_tick = 10;
    cfg->heartbeat_tick = 1;
    cfg->max_size_per_msg = 1024 * 1024;
    cfg->max_inflight_msgs = 256;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
    cfg->step_down_on_removal = true;
}

/* splitmix64's finalizer: a bijection that scatters nearby inputs. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(struct craft_raft *r)
{
    /* splitmix64: small, fast, and good enough for election jitter. */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void reset_randomized_timeout(struct craft_raft *r)
{
    r->randomized_election_timeout =
        r->cfg.election_tick + (uint32_t)(rng_next(r) % r->cfg.election_tick);
}

int raft_progress_slot(const struct craft_raft *r, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < r->n_progress; i++) {
        if (r->progress[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

struct progress *raft_progress(struct craft_raft *r, uint64_t id)
{
    int slot = raft_progress_slot(r, id);

    return slot < 0 ? NULL : &r->progress[slot];
}

bool raft_promotable(const struct craft_raft *r)
{
    return craft_conf_state_is_voter(&r->conf, r->id) &&
           !craft_conf_state_is_witness(&r->conf, r->id);
}

uint32_t raft_follower_role(const struct craft_raft *r)
{
    if (craft_conf_state_is_witness(&r->conf, r->id)) {
        return CRAFT_ROLE_WITNESS;
    }
    if (!craft_conf_state_is_voter(&r->conf, r->id) &&
        craft_conf_state_is_learner(&r->conf, r->id)) {
        return CRAFT_ROLE_NON_VOTING;
    }
    return CRAFT_ROLE_FOLLOWER;
}

void raft_wake(struct craft_raft *r)
{
    r->idle_ticks = 0;
    if (r->quiesced) {
        r->quiesced = false;
        r->election_elapsed = 0;
        r->heartbeat_elapsed = 0;
    }
}

static void reset(struct craft_raft *r, uint64_t term)
{
    uint64_t last = log_last_index(&r->log);
    uint32_t i;

    if (r->term != term) {
        r->term = term;
        r->vote = 0;
    }
    r->leader = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    reset_randomized_timeout(r);
    r->lead_transferee = 0;
    r->pending_conf_index = 0;
    r->uncommitted_size = 0;
    r->append_pending = false;
    memset(r->votes, 0, sizeof(r->votes));
    for (i = 0; i < r->n_progress; i++) {
        struct progress *pr = &r->progress[i];
        pr->match = 0;
        pr->next = last + 1;
        pr->recent_active = false;
        pr->rate_limit_bytes = 0;
        progress_become_probe(pr);
        pr->next = last + 1;
        if (pr->id == r->id) {
            pr->match = log_stable_index(&r->log);
        }
    }
    read_only_reset(r);
    raft_wake(r);
}

void raft_become_follower(struct craft_raft *r, uint64_t term, uint64_t leader)
{
    reset(r, term);
    r->leader = leader;
    r->role = raft_follower_role(r);
}

void raft_become_pre_candidate(struct craft_raft *r)
{
    /* Raft thesis 9.6: the pre-election changes neither term nor vote. */
    memset(r->votes, 0, sizeof(r->votes));
    r->leader = 0;
    r->role = CRAFT_ROLE_PRE_CANDIDATE;
}

void raft_become_candidate(struct craft_raft *r)
{
    reset(r, r->term + 1);
    r->vote = r->id;
    r->role = CRAFT_ROLE_CANDIDATE;
    r->stats.elections++;
}

void raft_become_leader(struct craft_raft *r)
{
    struct craft_entry noop;
    struct progress *self;
    uint32_t i;

    reset(r, r->term);
    r->leader = r->id;
    r->role = CRAFT_ROLE_LEADER;
    r->stats.leader_changes++;
    for (i = 0; i < r->n_progress; i++) {
        r->progress[i].recent_active = true;
    }
    self = raft_progress(r, r->id);
    if (self != NULL) {
        progress_become_replicate(self);
        self->match = log_stable_index(&r->log);
        self->next = log_last_index(&r->log) + 1;
    }
    /* No membership change until the no-op commits: conservatively treat
     * every entry up to the end of the log as a possible pending change. */
    r->pending_conf_index = log_last_index(&r->log);
    /* Raft thesis 6.4: a new leader commits an entry of its own term first. */
    memset(&noop, 0, sizeof(noop));
    noop.type = CRAFT_ENTRY_NORMAL;
    replication_append_entries(r, &noop, 1);
}

/* ------------------------------------------------------------------------
 * Handlers shared by several roles.
 * ------------------------------------------------------------------------ */
static int handle_propose_follower(struct craft_raft *r, const struct craft_message *m)
{
    if (r->leader == 0 || r->cfg.disable_proposal_forwarding) {
        r->stats.proposals_dropped++;
        return CRAFT_EDROPPED;
    }
    return replication_forward(r, m);
}

static int handle_propose_drop(struct craft_raft *r, const struct craft_message *m)
{
    (void)m;
    r->stats.proposals_dropped++;
    return CRAFT_EDROPPED;
}

static int handle_forward_to_leader(struct craft_raft *r, const struct craft_message *m)
{
    if (r->leader == 0 || r->leader == r->id) {
        return CRAFT_EDROPPED;
    }
    /* A read another node forwarded to us (it took us for the leader):
     * forwarding it again would bring the answer here, where its context
     * means nothing or, worse, names one of our own reads. */
    if (m->type == CRAFT_MSG_READ_INDEX && m->from != 0 && m->from != r->id) {
        r->stats.dropped[m->type]++;
        return CRAFT_EDROPPED;
    }
    return replication_forward(r, m);
}

static int handle_read_index_resp(struct craft_raft *r, const struct craft_message *m)
{
    return read_only_handle_resp(r, m);
}

static int handle_quiesce(struct craft_raft *r, const struct craft_message *m)
{
    if (r->cfg.quiesce_ticks == 0 || m->from != r->leader) {
        return 0;
    }
    /* Like a heartbeat, it tells the commit index: no heartbeat follows, so
     * an entry committed since the last one would otherwise stay unapplied
     * here until the group wakes. */
    log_commit_to(&r->log, m->commit);
    r->quiesced = true;
    return 0;
}

static int handle_beat(struct craft_raft *r, const struct craft_message *m)
{
    (void)m;
    replication_bcast_heartbeat(r, r->read_seq);
    return 0;
}

static int handle_check_quorum(struct craft_raft *r, const struct craft_message *m)
{
    uint64_t active[CRAFT_MAX_NODES];
    uint32_t i;

    (void)m;
    for (i = 0; i < r->n_progress; i++) {
        struct progress *pr = &r->progress[i];
        active[i] = (pr->id == r->id || pr->recent_active) ? 1 : 0;
        if (pr->id != r->id) {
            pr->recent_active = false;
        }
    }
    if (membership_committed(r, active) == 0) {
        /* No active quorum: step down rather than serve stale reads. */
        raft_become_follower(r, r->term, 0);
    }
    return 0;
}

static int handle_rate_limit(struct craft_raft *r, const struct craft_message *m)
{
    struct progress *pr = raft_progress(r, m->from);

    if (pr != NULL) {
        pr->rate_limit_bytes = m->context;
        pr->rate_limit_age = 0;
    }
    return 0;
}

static int handle_local_tick(struct craft_raft *r, const struct craft_message *m)
{
    (void)m;
    return craft_raft_tick(r);
}

/* Candidates and pre-candidates meeting a leader of their term. */
static int candidate_to_follower_then(struct craft_raft *r, const struct craft_message *m,
                                      handler_fn next)
{
    raft_become_follower(r, m->term, m->from);
    return next(r, m);
}

static int candidate_append(struct craft_raft *r, const struct craft_message *m)
{
    return candidate_to_follower_then(r, m, replication_handle_append);
}

static int candidate_heartbeat(struct craft_raft *r, const struct craft_message *m)
{
    return candidate_to_follower_then(r, m, replication_handle_heartbeat);
}

static int candidate_snapshot(struct craft_raft *r, const struct craft_message *m)
{
    return candidate_to_follower_then(r, m, replication_handle_snapshot);
}

/* ------------------------------------------------------------------------
 * The handler table: a message a role must not receive has no entry and is
 * dropped and counted.
 * ------------------------------------------------------------------------ */
/* clang-format off */
#define FOR_FOLLOWER_LIKE(role)                                                                    \
    [role][CRAFT_MSG_APPEND] = replication_handle_append,                                          \
    [role][CRAFT_MSG_HEARTBEAT] = replication_handle_heartbeat,                                    \
    [role][CRAFT_MSG_SNAPSHOT] = replication_handle_snapshot,                                      \
    [role][CRAFT_MSG_VOTE] = election_handle_request_vote,                                         \
    [role][CRAFT_MSG_PRE_VOTE] = election_handle_request_vote,                                     \
    [role][CRAFT_MSG_QUIESCE] = handle_quiesce,                                                    \
    [role][CRAFT_MSG_LOCAL_TICK] = handle_local_tick,                                              \
    [role][CRAFT_MSG_HUP] = election_handle_hup

static const handler_fn handlers[CRAFT_ROLE_COUNT][CRAFT_MSG_TYPE_COUNT] = {
    FOR_FOLLOWER_LIKE(CRAFT_ROLE_FOLLOWER),
    [CRAFT_ROLE_FOLLOWER][CRAFT_MSG_PROPOSE] = handle_propose_follower,
    [CRAFT_ROLE_FOLLOWER][CRAFT_MSG_READ_INDEX] = handle_forward_to_leader,
    [CRAFT_ROLE_FOLLOWER][CRAFT_MSG_READ_INDEX_RESP] = handle_read_index_resp,
    [CRAFT_ROLE_FOLLOWER][CRAFT_MSG_TRANSFER_LEADER] = handle_forward_to_leader,
    [CRAFT_ROLE_FOLLOWER][CRAFT_MSG_TIMEOUT_NOW] = election_handle_timeout_now,

    FOR_FOLLOWER_LIKE(CRAFT_ROLE_NON_VOTING),
    [CRAFT_ROLE_NON_VOTING][CRAFT_MSG_PROPOSE] = handle_propose_follower,
    [CRAFT_ROLE_NON_VOTING][CRAFT_MSG_READ_INDEX] = handle_forward_to_leader,
    [CRAFT_ROLE_NON_VOTING][CRAFT_MSG_READ_INDEX_RESP] = handle_read_index_resp,
    [CRAFT_ROLE_NON_VOTING][CRAFT_MSG_TRANSFER_LEADER] = handle_forward_to_leader,

    /* A witness holds no data: it serves no reads and takes no proposals. */
    FOR_FOLLOWER_LIKE(CRAFT_ROLE_WITNESS),
    [CRAFT_ROLE_WITNESS][CRAFT_MSG_PROPOSE] = handle_propose_drop,

    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_APPEND] = candidate_append,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_HEARTBEAT] = candidate_heartbeat,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_SNAPSHOT] = candidate_snapshot,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_VOTE] = election_handle_request_vote,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_PRE_VOTE] = election_handle_request_vote,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_PRE_VOTE_RESP] = election_handle_vote_resp,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_PROPOSE] = handle_propose_drop,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_LOCAL_TICK] = handle_local_tick,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_HUP] = election_handle_hup,
    [CRAFT_ROLE_PRE_CANDIDATE][CRAFT_MSG_TIMEOUT_NOW] = election_handle_timeout_now,

    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_APPEND] = candidate_append,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_HEARTBEAT] = candidate_heartbeat,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_SNAPSHOT] = candidate_snapshot,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_VOTE] = election_handle_request_vote,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_PRE_VOTE] = election_handle_request_vote,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_VOTE_RESP] = election_handle_vote_resp,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_PROPOSE] = handle_propose_drop,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_LOCAL_TICK] = handle_local_tick,
    [CRAFT_ROLE_CANDIDATE][CRAFT_MSG_HUP] = election_handle_hup,

    [CRAFT_ROLE_LEADER][CRAFT_MSG_BEAT] = handle_beat,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_CHECK_QUORUM] = handle_check_quorum,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_PROPOSE] = replication_handle_propose,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_READ_INDEX] = read_only_handle_leader,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_APPEND_RESP] = replication_handle_append_resp,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_HEARTBEAT_RESP] = replication_handle_heartbeat_resp,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_SNAPSHOT_STATUS] = replication_handle_snapshot_status,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_UNREACHABLE] = replication_handle_unreachable,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_TRANSFER_LEADER] = replication_handle_transfer_leader,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_VOTE] = election_handle_request_vote,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_PRE_VOTE] = election_handle_request_vote,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_RATE_LIMIT] = handle_rate_limit,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_LOCAL_TICK] = handle_local_tick,
    [CRAFT_ROLE_LEADER][CRAFT_MSG_HUP] = election_handle_hup,
};
/* clang-format on */

static bool is_local(uint32_t type)
{
    switch (type) {
    case CRAFT_MSG_HUP:
    case CRAFT_MSG_BEAT:
    case CRAFT_MSG_PROPOSE:
    case CRAFT_MSG_UNREACHABLE:
    case CRAFT_MSG_SNAPSHOT_STATUS:
    case CRAFT_MSG_CHECK_QUORUM:
    case CRAFT_MSG_TRANSFER_LEADER:
    case CRAFT_MSG_READ_INDEX:
    case CRAFT_MSG_RATE_LIMIT:
    case CRAFT_MSG_LOCAL_TICK:
        return true;
    default:
        return false;
    }
}

static void reply_plain(struct craft_raft *r, uint32_t type, uint64_t to, uint64_t term,
                        bool reject)
{
    struct out_message *om = outbox_push(r, type, to);

    if (om != NULL) {
        om->m.term = term;
        om->m.reject = reject;
    }
}

/* Term handling common to every role (Raft paper 5.1, thesis 9.6 and the
 * CheckQuorum lease); returns false when the message is done with. */
static bool step_term(struct craft_raft *r, const struct craft_message *m)
{
    if (is_local(m->type)) {
        return true;
    }
    if (m->term == 0) {
        /* Only local and forwarded messages travel without a term. */
        r->stats.dropped[m->type]++;
        return false;
    }
    if (m->term > r->term) {
        if (m->type == CRAFT_MSG_VOTE || m->type == CRAFT_MSG_PRE_VOTE) {
            bool force = (m->flags & CRAFT_MSG_FLAG_TRANSFER) != 0;
            bool in_lease =
                r->cfg.check_quorum && r->leader != 0 && r->election_elapsed < r->cfg.election_tick;
            /* A node that heard from a live leader within the election
             * timeout ignores vote requests (Raft thesis 4.2.3). */
            if (!force && in_lease) {
                return false;
            }
        }
        if (m->type == CRAFT_MSG_PRE_VOTE) {
            /* Never change term in answer to a pre-vote (Raft thesis 9.6). */
        } else if (m->type == CRAFT_MSG_PRE_VOTE_RESP && !m->reject) {
            /* A granted pre-vote carries the term we will campaign with. */
        } else if (m->type == CRAFT_MSG_APPEND || m->type == CRAFT_MSG_HEARTBEAT ||
                   m->type == CRAFT_MSG_SNAPSHOT || m->type == CRAFT_MSG_QUIESCE) {
            raft_become_follower(r, m->term, m->from);
        } else {
            raft_become_follower(r, m->term, 0);
        }
        return true;
    }
    if (m->term < r->term) {
        r->stats.dropped_stale_term++;
        if (m->type == CRAFT_MSG_APPEND || m->type == CRAFT_MSG_HEARTBEAT) {
            /* Raft paper, Figure 2: answer a stale term with ours. A stale
             * leader learns it and steps down; without this, a member that
             * moved to a higher term (a vote request of a node since removed)
             * but cannot campaign (it does not know it is a member yet)
             * would ignore the leader forever. */
            reply_plain(r, CRAFT_MSG_APPEND_RESP, m->from, r->term, false);
        } else if (m->type == CRAFT_MSG_PRE_VOTE) {
            reply_plain(r, CRAFT_MSG_PRE_VOTE_RESP, m->from, r->term, true);
        } else if (m->type == CRAFT_MSG_VOTE) {
            /* Raft paper, Figure 2: a candidate of a stale term learns ours.
             * Otherwise a candidate with the newest log but a lower term
             * could never win voters whose term ran ahead while they could
             * not elect anyone (they only ask members of an old membership). */
            reply_plain(r, CRAFT_MSG_VOTE_RESP, m->from, r->term, true);
        }
        return false;
    }
    return true;
}

static bool wakes_quiesced(uint32_t type)
{
    return type != CRAFT_MSG_QUIESCE && type != CRAFT_MSG_LOCAL_TICK &&
           type != CRAFT_MSG_HEARTBEAT_RESP && type != CRAFT_MSG_RATE_LIMIT &&
           type != CRAFT_MSG_BEAT && type != CRAFT_MSG_CHECK_QUORUM;
}

static bool is_activity(uint32_t type)
{
    return wakes_quiesced(type) && type != CRAFT_MSG_HEARTBEAT;
}

int craft_raft_step(struct craft_raft *r, const struct craft_message *m)
{
    handler_fn fn;
    uint32_t i;

    if (r == NULL || m == NULL) {
        return CRAFT_EINVAL;
    }
    if (m->type >= CRAFT_MSG_TYPE_COUNT) {
        r->stats.dropped[0]++;
        return CRAFT_EINVAL;
    }
    if (m->n_entries > 0 && m->entries == NULL) {
        r->stats.dropped[m->type]++;
        return CRAFT_EINVAL;
    }
    if (m->type == CRAFT_MSG_SNAPSHOT &&
        (m->snapshot == NULL || m->snapshot->index == 0 || m->snapshot->term == 0)) {
        r->stats.dropped[m->type]++;
        return CRAFT_EINVAL;
    }
    for (i = 0; i < m->n_entries; i++) {
        const struct craft_entry *e = &m->entries[i];
        if (e->type > CRAFT_ENTRY_METADATA || (e->len > 0 && e->data == NULL) ||
            e->len > CRAFT_MAX_ENTRY_SIZE) {
            r->stats.dropped[m->type]++;
            return CRAFT_EINVAL;
        }
    }
    /* Quiescence ends with any traffic but bookkeeping; the idle count
     * restarts only with real activity, so heartbeats alone let an idle
     * group fall quiet. Waking comes before the term checks, so that a
     * quiesced node whose leader died starts its election clock again. */
    if (r->quiesced ? wakes_quiesced(m->type) : is_activity(m->type)) {
        raft_wake(r);
    }
    if (!step_term(r, m)) {
        return 0;
    }
    fn = handlers[r->role][m->type];
    if (fn == NULL) {
        r->stats.dropped[m->type]++;
        return 0;
    }
    return fn(r, m);
}

/* ------------------------------------------------------------------------
 * The clock.
 * ------------------------------------------------------------------------ */
static void local_step(struct craft_raft *r, uint32_t type)
{
    struct craft_message m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = r->id;
    m.to = r->id;
    craft_raft_step(r, &m);
}

static void tick_rate_limit(struct craft_raft *r)
{
    uint32_t i;

    if (r->cfg.max_in_mem_log_size == 0) {
        return;
    }
    for (i = 0; i < r->n_progress; i++) {
        if (r->progress[i].rate_limit_age < UINT32_MAX) {
            r->progress[i].rate_limit_age++;
        }
    }
    if (r->role == CRAFT_ROLE_LEADER || r->leader == 0) {
        return;
    }
    /* Followers report their in-memory log size to the leader once per
     * election timeout (dragonboat's rate limiter). */
    if (++r->rate_limit_elapsed >= r->cfg.election_tick) {
        struct out_message *om = outbox_push(r, CRAFT_MSG_RATE_LIMIT, r->leader);
        r->rate_limit_elapsed = 0;
        if (om != NULL) {
            om->m.context = r->log.inmem_bytes;
        }
    }
}

/* A group only falls quiet once every member holds the whole log and knows
 * it committed: a lagging member (say, waiting for a snapshot retry, which
 * heartbeat answers drive) would otherwise stay behind until woken. */
static bool all_caught_up(const struct craft_raft *r)
{
    uint64_t last = log_last_index(&r->log);
    uint32_t i;

    if (r->log.committed != last) {
        return false;
    }
    for (i = 0; i < r->n_progress; i++) {
        if (r->progress[i].id != r->id && r->progress[i].match != last) {
            return false;
        }
    }
    return true;
}

int craft_raft_tick(struct craft_raft *r)
{
    tick_rate_limit(r);
    if (r->cfg.quiesce_ticks > 0) {
        if (r->quiesced) {
            return 0; /* Quiescent: no heartbeats, no elections until woken. */
        }
        if (r->role == CRAFT_ROLE_LEADER && ++r->idle_ticks >= r->cfg.quiesce_ticks &&
            r->lead_transferee == 0 && r->reads.n == 0 && all_caught_up(r)) {
            uint32_t i;
            for (i = 0; i < r->n_progress; i++) {
                const struct progress *pr = &r->progress[i];
                struct out_message *om;
                if (pr->id == r->id) {
                    continue;
                }
                om = outbox_push(r, CRAFT_MSG_QUIESCE, pr->id);
                if (om != NULL) {
                    /* As in a heartbeat: never beyond what it is known to hold. */
                    om->m.commit = pr->match < r->log.committed ? pr->match : r->log.committed;
                }
            }
            r->quiesced = true;
            return 0;
        }
    }
    if (r->role != CRAFT_ROLE_LEADER) {
        r->election_elapsed++;
        if (raft_promotable(r) && r->election_elapsed >= r->randomized_election_timeout) {
            r->election_elapsed = 0;
            local_step(r, CRAFT_MSG_HUP);
        }
        return 0;
    }
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_tick) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            local_step(r, CRAFT_MSG_CHECK_QUORUM);
        }
        /* Raft thesis 3.10: a transfer not done within an election timeout
         * is aborted. */
        if (r->role == CRAFT_ROLE_LEADER && r->lead_transferee != 0) {
            replication_abort_transfer(r);
        }
    }
    if (r->role != CRAFT_ROLE_LEADER) {
        return 0;
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
        r->heartbeat_elapsed = 0;
        local_step(r, CRAFT_MSG_BEAT);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Creation.
 * ------------------------------------------------------------------------ */
static const char *validate(const struct craft_config *cfg)
{
    if (cfg->id == 0) {
        return "id must not be 0";
    }
    if (cfg->heartbeat_tick == 0) {
        return "heartbeat_tick must be greater than 0";
    }
    if (cfg->election_tick <= cfg->heartbeat_tick) {
        return "election_tick must be greater than heartbeat_tick";
    }
    if (cfg->max_inflight_msgs == 0) {
        return "max_inflight_msgs must be greater than 0";
    }
    if (cfg->storage == NULL || cfg->storage->initial_state == NULL ||
        cfg->storage->entries == NULL || cfg->storage->term == NULL ||
        cfg->storage->first_index == NULL || cfg->storage->last_index == NULL ||
        cfg->storage->snapshot == NULL) {
        return "storage and all of its functions must be set";
    }
    if (cfg->read_only_option > CRAFT_READ_ONLY_LEASE) {
        return "read_only_option is unknown";
    }
    /* Raft thesis 6.4.1: lease reads rely on the leader stepping down when it
     * loses its quorum. */
    if (cfg->read_only_option == CRAFT_READ_ONLY_LEASE && !cfg->check_quorum) {
        return "lease reads need check_quorum";
    }
    return NULL;
}

int craft_raft_create(const struct craft_config *cfg, struct craft_raft **out, const char **why)
{
    struct craft_hard_state hs;
    struct craft_conf_state cs;
    struct craft_raft *r;
    const char *problem;
    uint32_t i;
    int rc;

    if (why != NULL) {
        *why = NULL;
    }
    if (cfg == NULL || out == NULL) {
        return CRAFT_EINVAL;
    }
    problem = validate(cfg);
    if (problem != NULL) {
        if (why != NULL) {
            *why = problem;
        }
        return CRAFT_EINVAL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return CRAFT_ENOMEM;
    }
    r->cfg = *cfg;
    r->id = cfg->id;
    /* Every node's stream is the same Weyl sequence from a different start;
     * starting at seed ^ id * increment made two nodes' streams shifted
     * copies of each other (e.g. seed 682: node 3 = node 2 one draw later),
     * so nodes that reset together drew equal timeouts forever and split
     * every vote. Mixed starts are unrelated. */
    r->rng = mix64(cfg->seed ^ mix64(cfg->id));
    rc = log_init(&r->log, cfg->storage);
    if (rc != 0) {
        if (why != NULL) {
            *why = "storage: first_index/last_index inconsistent";
        }
        goto err_free;
    }
    memset(&hs, 0, sizeof(hs));
    memset(&cs, 0, sizeof(cs));
    rc = cfg->storage->initial_state(cfg->storage->data, &hs, &cs);
    if (rc != 0) {
        if (why != NULL) {
            *why = "storage: initial_state failed";
        }
        goto err_log;
    }
    if (hs.commit > log_last_index(&r->log)) {
        if (why != NULL) {
            *why = "storage: hard state commit is beyond the last index";
        }
        rc = CRAFT_ESTORAGE;
        goto err_log;
    }
    rc = membership_set(r, &cs);
    if (rc != 0) {
        if (why != NULL) {
            *why = "storage: membership is invalid";
        }
        goto err_log;
    }
    r->conf_changed = false;
    r->term = hs.term;
    r->vote = hs.vote;
    log_commit_to(&r->log, hs.commit);
    if (cfg->applied == 0) {
        /* The state machine restarts from the newest snapshot (whose
         * membership initial_state gave us): nothing up to it is replayed. */
        struct craft_snapshot_meta snap;
        memset(&snap, 0, sizeof(snap));
        if (cfg->storage->snapshot(cfg->storage->data, &snap) == 0 && snap.index > 0 &&
            snap.index <= log_last_index(&r->log)) {
            log_commit_to(&r->log, snap.index);
            log_applied_to(&r->log, snap.index);
        }
    } else {
        /* Only committed entries are ever applied, so a durable applied index
         * proves them committed even if the commit index in the hard state
         * was not synced before a crash. */
        if (cfg->applied > log_last_index(&r->log)) {
            if (why != NULL) {
                *why = "config: applied is beyond the last index in storage";
            }
            rc = CRAFT_EINVAL;
            goto err_log;
        }
        log_commit_to(&r->log, cfg->applied);
        log_applied_to(&r->log, cfg->applied);
    }
    r->applying = r->log.applied;
    r->prev_hard_state.term = r->term;
    r->prev_hard_state.vote = r->vote;
    r->prev_hard_state.commit = r->log.committed;
    raft_become_follower(r, r->term, 0);
    r->prev_role = r->role;
    *out = r;
    return 0;

err_log:
    log_free(&r->log);
err_free:
    for (i = 0; i < r->n_progress; i++) {
        progress_free(&r->progress[i]);
    }
    free(r);
    return rc;
}

void craft_raft_destroy(struct craft_raft *r)
{
    uint32_t i;

    if (r == NULL) {
        return;
    }
    for (i = 0; i < r->n_progress; i++) {
        progress_free(&r->progress[i]);
    }
    log_free(&r->log);
    outbox_free(&r->outbox[0]);
    outbox_free(&r->outbox[1]);
    entry_vec_free(&r->pool.entries);
    free(r->pool.messages);
    free(r->pool.spans);
    free(r->pool.read_states);
    entry_vec_free(&r->scratch);
    read_only_free(r);
    free(r);
}

uint32_t craft_raft_role(const struct craft_raft *r)
{
    return r->role;
}

uint64_t craft_raft_leader(const struct craft_raft *r)
{
    return r->leader;
}

uint64_t craft_raft_term(const struct craft_raft *r)
{
    return r->term;
}

uint64_t craft_raft_id(const struct craft_raft *r)
{
    return r->id;
}

uint64_t craft_raft_commit(const struct craft_raft *r)
{
    return r->log.committed;
}

uint64_t craft_raft_applied(const struct craft_raft *r)
{
    return r->log.applied;
}

const struct craft_conf_state *craft_raft_membership(const struct craft_raft *r)
{
    return &r->conf;
}
