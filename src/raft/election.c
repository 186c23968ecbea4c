/* Elections (Raft paper 5.2), PreVote (Raft thesis 9.6) and the election
 * side of leader transfer (Raft thesis 3.10). */
#include <string.h>

#include "quorum.h"
#include "raft_internal.h"

/* etcd#7280: a node with a committed but unapplied membership change must not
 * campaign, or it could win under a configuration that is already stale. */
static bool has_unapplied_conf_change(struct craft_raft *r)
{
    uint64_t lo = r->log.applied + 1;
    uint64_t hi = r->log.committed + 1;

    while (lo < hi) {
        size_t i;
        r->scratch.n = 0;
        if (log_entries(&r->log, lo, hi, UINT64_MAX, &r->scratch) != 0 || r->scratch.n == 0) {
            /* Cannot tell: be safe and do not campaign. */
            return true;
        }
        for (i = 0; i < r->scratch.n; i++) {
            if (r->scratch.v[i].type == CRAFT_ENTRY_CONF_CHANGE) {
                return true;
            }
        }
        lo += r->scratch.n;
    }
    return false;
}

static enum vote_result tally(struct craft_raft *r)
{
    size_t in_n = 0, in_yes = 0, in_no = 0, out_n = 0, out_yes = 0, out_no = 0;
    uint32_t i, j;

    for (i = 0; i < r->conf.n_voters; i++) {
        int slot = raft_progress_slot(r, r->conf.voters[i]);
        in_n++;
        if (slot >= 0) {
            in_yes += r->votes[slot] == 1;
            in_no += r->votes[slot] == 2;
        }
    }
    for (j = 0; j < r->conf.n_voters_outgoing; j++) {
        int slot = raft_progress_slot(r, r->conf.voters_outgoing[j]);
        out_n++;
        if (slot >= 0) {
            out_yes += r->votes[slot] == 1;
            out_no += r->votes[slot] == 2;
        }
    }
    return quorum_joint_vote_result(quorum_vote_result(in_n, in_yes, in_no),
                                    out_n ? quorum_vote_result(out_n, out_yes, out_no) : VOTE_WON);
}

static void record_vote(struct craft_raft *r, uint64_t id, bool granted)
{
    int slot = raft_progress_slot(r, id);

    if (slot >= 0 && r->votes[slot] == 0) {
        r->votes[slot] = granted ? 1 : 2;
    }
}

void election_campaign(struct craft_raft *r, bool pre_vote, bool transfer)
{
    uint64_t term, last_index, last_term;
    uint32_t i;

    if (!raft_promotable(r)) {
        return;
    }
    if (has_unapplied_conf_change(r)) {
        return;
    }
    if (pre_vote) {
        raft_become_pre_candidate(r);
        term = r->term + 1;
    } else {
        raft_become_candidate(r);
        term = r->term;
    }
    record_vote(r, r->id, true);
    if (tally(r) == VOTE_WON) {
        /* A single voter wins at once. */
        if (pre_vote) {
            election_campaign(r, false, transfer);
        } else {
            raft_become_leader(r);
        }
        return;
    }
    last_index = log_last_index(&r->log);
    last_term = log_last_term(&r->log);
    for (i = 0; i < r->n_progress; i++) {
        struct progress *pr = &r->progress[i];
        struct out_message *om;
        if (pr->id == r->id || !craft_conf_state_is_voter(&r->conf, pr->id)) {
            continue;
        }
        om = outbox_push(r, pre_vote ? CRAFT_MSG_PRE_VOTE : CRAFT_MSG_VOTE, pr->id);
        if (om == NULL) {
            continue;
        }
        om->m.term = term;
        om->m.index = last_index;
        om->m.log_term = last_term;
        if (transfer) {
            om->m.flags |= CRAFT_MSG_FLAG_TRANSFER;
        }
    }
}

int election_handle_hup(struct craft_raft *r, const struct craft_message *m)
{
    (void)m;
    if (r->role == CRAFT_ROLE_LEADER) {
        return 0;
    }
    election_campaign(r, r->cfg.pre_vote, false);
    return 0;
}

int election_handle_request_vote(struct craft_raft *r, const struct craft_message *m)
{
    bool pre = m->type == CRAFT_MSG_PRE_VOTE;
    bool can_vote =
        r->vote == m->from || (r->vote == 0 && r->leader == 0) || (pre && m->term > r->term);
    struct out_message *om;

    /* Raft paper 5.4.1: vote only for a log at least as up to date as ours. */
    if (can_vote && log_is_up_to_date(&r->log, m->index, m->log_term)) {
        om = outbox_push(r, pre ? CRAFT_MSG_PRE_VOTE_RESP : CRAFT_MSG_VOTE_RESP, m->from);
        if (om != NULL) {
            /* A pre-vote answer carries the term the candidate will use. */
            om->m.term = m->term;
        }
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
        return 0;
    }
    om = outbox_push(r, pre ? CRAFT_MSG_PRE_VOTE_RESP : CRAFT_MSG_VOTE_RESP, m->from);
    if (om != NULL) {
        om->m.reject = true;
    }
    return 0;
}

int election_handle_vote_resp(struct craft_raft *r, const struct craft_message *m)
{
    enum vote_result result;

    record_vote(r, m->from, !m->reject);
    result = tally(r);
    if (result == VOTE_WON) {
        if (r->role == CRAFT_ROLE_PRE_CANDIDATE) {
            election_campaign(r, false, false);
        } else {
            raft_become_leader(r);
            replication_bcast_append(r);
        }
    } else if (result == VOTE_LOST) {
        /* Rejections reached a quorum: give up, wait for the next timeout. */
        raft_become_follower(r, r->term, 0);
    }
    return 0;
}

int election_handle_timeout_now(struct craft_raft *r, const struct craft_message *m)
{
    (void)m;
    /* Raft thesis 3.10: campaign at once, skipping PreVote, with the
     * transfer flag so that voters ignore their leader lease. */
    election_campaign(r, false, true);
    return 0;
}

int craft_raft_campaign(struct craft_raft *r)
{
    struct craft_message m;

    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_HUP;
    m.from = r->id;
    m.to = r->id;
    return craft_raft_step(r, &m);
}
