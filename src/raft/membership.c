/* Membership (Raft thesis chapter 4): validating and applying changes,
 * single-step (4.1) and joint consensus (4.3), and keeping the progress
 * tracker in line with the configuration. Non-voting members (4.2.1) and
 * witnesses are part of the configuration too. */
#include <string.h>

#include "quorum.h"
#include "raft_internal.h"

static bool list_has(const uint64_t *v, uint32_t n, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (v[i] == id) {
            return true;
        }
    }
    return false;
}

static bool list_add(uint64_t *v, uint32_t *n, uint64_t id)
{
    if (list_has(v, *n, id)) {
        return true;
    }
    if (*n >= CRAFT_MAX_NODES) {
        return false;
    }
    v[(*n)++] = id;
    return true;
}

static void list_remove(uint64_t *v, uint32_t *n, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < *n; i++) {
        if (v[i] == id) {
            v[i] = v[--(*n)];
            return;
        }
    }
}

static void prune_witnesses(struct craft_conf_state *cs)
{
    uint32_t i = 0;

    while (i < cs->n_witnesses) {
        uint64_t id = cs->witnesses[i];
        if (!list_has(cs->voters, cs->n_voters, id) &&
            !list_has(cs->voters_outgoing, cs->n_voters_outgoing, id)) {
            cs->witnesses[i] = cs->witnesses[--cs->n_witnesses];
        } else {
            i++;
        }
    }
}

static uint32_t member_count(const struct craft_conf_state *cs)
{
    uint64_t seen[4 * CRAFT_MAX_NODES];
    uint32_t n = 0, i;
    const uint64_t *lists[4] = {cs->voters, cs->voters_outgoing, cs->learners, cs->learners_next};
    const uint32_t sizes[4] = {cs->n_voters, cs->n_voters_outgoing, cs->n_learners,
                               cs->n_learners_next};
    uint32_t l;

    for (l = 0; l < 4; l++) {
        for (i = 0; i < sizes[l] && i < CRAFT_MAX_NODES; i++) {
            if (!list_has(seen, n, lists[l][i])) {
                seen[n++] = lists[l][i];
            }
        }
    }
    return n;
}

static int apply_one(struct craft_conf_state *cs, const struct craft_conf_change_item *c)
{
    uint64_t id = c->node_id;
    bool in_outgoing = list_has(cs->voters_outgoing, cs->n_voters_outgoing, id);

    if (id == 0) {
        return CRAFT_ECONF_INVALID;
    }
    switch (c->type) {
    case CRAFT_CC_ADD_VOTER:
        if (list_has(cs->witnesses, cs->n_witnesses, id) ||
            list_has(cs->voters, cs->n_voters, id)) {
            return CRAFT_ECONF_INVALID; /* already a voter, or a witness */
        }
        list_remove(cs->learners, &cs->n_learners, id);
        list_remove(cs->learners_next, &cs->n_learners_next, id);
        return list_add(cs->voters, &cs->n_voters, id) ? 0 : CRAFT_ECONF_INVALID;
    case CRAFT_CC_ADD_NON_VOTING:
        if (list_has(cs->witnesses, cs->n_witnesses, id) ||
            list_has(cs->learners, cs->n_learners, id) ||
            list_has(cs->learners_next, cs->n_learners_next, id)) {
            return CRAFT_ECONF_INVALID;
        }
        list_remove(cs->voters, &cs->n_voters, id);
        /* Raft thesis 4.3: an outgoing voter keeps voting until the joint
         * configuration is left, then becomes a learner. */
        if (in_outgoing) {
            return list_add(cs->learners_next, &cs->n_learners_next, id) ? 0 : CRAFT_ECONF_INVALID;
        }
        return list_add(cs->learners, &cs->n_learners, id) ? 0 : CRAFT_ECONF_INVALID;
    case CRAFT_CC_ADD_WITNESS:
        if (craft_conf_state_contains(cs, id)) {
            return CRAFT_ECONF_INVALID;
        }
        if (!list_add(cs->voters, &cs->n_voters, id) ||
            !list_add(cs->witnesses, &cs->n_witnesses, id)) {
            return CRAFT_ECONF_INVALID;
        }
        return 0;
    case CRAFT_CC_REMOVE_NODE:
        if (!list_has(cs->voters, cs->n_voters, id) &&
            !list_has(cs->learners, cs->n_learners, id) &&
            !list_has(cs->learners_next, cs->n_learners_next, id)) {
            return CRAFT_ECONF_INVALID; /* not a member */
        }
        list_remove(cs->voters, &cs->n_voters, id);
        list_remove(cs->learners, &cs->n_learners, id);
        list_remove(cs->learners_next, &cs->n_learners_next, id);
        return 0;
    default:
        return CRAFT_ECONF_INVALID;
    }
}

int membership_apply_change(struct craft_conf_state *cs, const struct craft_conf_change *cc)
{
    struct craft_conf_state next = *cs;
    uint32_t i, changed = 0;
    bool joint;
    int rc;

    if (cc->n_changes > CRAFT_MAX_CONF_CHANGES ||
        cc->transition > CRAFT_TRANSITION_JOINT_EXPLICIT) {
        return CRAFT_ECONF_INVALID;
    }
    if (cc->n_changes == 0) {
        /* Leave the joint configuration (Raft thesis 4.3). */
        if (!craft_conf_state_is_joint(cs)) {
            return CRAFT_ECONF_INVALID;
        }
        for (i = 0; i < next.n_learners_next; i++) {
            list_add(next.learners, &next.n_learners, next.learners_next[i]);
        }
        next.n_learners_next = 0;
        next.n_voters_outgoing = 0;
        next.auto_leave = false;
        prune_witnesses(&next);
        *cs = next;
        return 0;
    }
    if (craft_conf_state_is_joint(cs)) {
        return CRAFT_ECONF_INVALID; /* leave the joint configuration first */
    }
    joint = cc->transition != CRAFT_TRANSITION_AUTO || cc->n_changes > 1;
    if (joint) {
        memcpy(next.voters_outgoing, next.voters, sizeof(next.voters));
        next.n_voters_outgoing = next.n_voters;
        next.auto_leave = cc->transition != CRAFT_TRANSITION_JOINT_EXPLICIT;
    }
    for (i = 0; i < cc->n_changes; i++) {
        rc = apply_one(&next, &cc->changes[i]);
        if (rc != 0) {
            return rc;
        }
    }
    if (next.n_voters == 0) {
        return CRAFT_ECONF_INVALID; /* removing every voter leaves no quorum */
    }
    if (!joint) {
        /* Raft thesis 4.1: one voter at a time, or the majorities of the old
         * and new configurations may not overlap. */
        for (i = 0; i < next.n_voters; i++) {
            changed += !list_has(cs->voters, cs->n_voters, next.voters[i]);
        }
        for (i = 0; i < cs->n_voters; i++) {
            changed += !list_has(next.voters, next.n_voters, cs->voters[i]);
        }
        if (changed > 1) {
            return CRAFT_ECONF_INVALID;
        }
    }
    if (member_count(&next) > CRAFT_MAX_NODES) {
        return CRAFT_ECONF_INVALID;
    }
    prune_witnesses(&next);
    *cs = next;
    return 0;
}

int craft_conf_change_apply(struct craft_conf_state *cs, const struct craft_conf_change *cc)
{
    if (cs == NULL || cc == NULL) {
        return CRAFT_EINVAL;
    }
    return membership_apply_change(cs, cc);
}

int membership_validate(const struct craft_raft *r, const struct craft_conf_change *cc)
{
    struct craft_conf_state next = r->conf;

    if (r->pending_conf_index > r->log.applied) {
        return CRAFT_ECONF_PENDING;
    }
    return membership_apply_change(&next, cc);
}

static bool conf_state_sane(const struct craft_conf_state *cs)
{
    const uint64_t *lists[5] = {cs->voters, cs->voters_outgoing, cs->learners, cs->learners_next,
                                cs->witnesses};
    const uint32_t sizes[5] = {cs->n_voters, cs->n_voters_outgoing, cs->n_learners,
                               cs->n_learners_next, cs->n_witnesses};
    uint32_t l, i, j;

    for (l = 0; l < 5; l++) {
        if (sizes[l] > CRAFT_MAX_NODES) {
            return false;
        }
        for (i = 0; i < sizes[l]; i++) {
            if (lists[l][i] == 0) {
                return false;
            }
            for (j = i + 1; j < sizes[l]; j++) {
                if (lists[l][i] == lists[l][j]) {
                    return false;
                }
            }
        }
    }
    for (i = 0; i < cs->n_learners; i++) {
        if (list_has(cs->voters, cs->n_voters, cs->learners[i]) ||
            list_has(cs->voters_outgoing, cs->n_voters_outgoing, cs->learners[i])) {
            return false;
        }
    }
    for (i = 0; i < cs->n_learners_next; i++) {
        if (!list_has(cs->voters_outgoing, cs->n_voters_outgoing, cs->learners_next[i])) {
            return false;
        }
    }
    return member_count(cs) <= CRAFT_MAX_NODES;
}

int membership_set(struct craft_raft *r, const struct craft_conf_state *cs)
{
    struct progress next[CRAFT_MAX_NODES];
    uint64_t ids[4 * CRAFT_MAX_NODES];
    const uint64_t *lists[4] = {cs->voters, cs->voters_outgoing, cs->learners, cs->learners_next};
    const uint32_t sizes[4] = {cs->n_voters, cs->n_voters_outgoing, cs->n_learners,
                               cs->n_learners_next};
    uint64_t last = log_last_index(&r->log);
    uint32_t n = 0, i, l;
    int rc;

    if (!conf_state_sane(cs)) {
        return CRAFT_EINVAL;
    }
    for (l = 0; l < 4; l++) {
        for (i = 0; i < sizes[l]; i++) {
            if (!list_has(ids, n, lists[l][i])) {
                ids[n++] = lists[l][i];
            }
        }
    }
    /* New members start at the end of the log, as with a new leader. Their
     * windows are allocated first so that a failure changes nothing. */
    for (i = 0; i < n; i++) {
        if (raft_progress(r, ids[i]) != NULL) {
            continue;
        }
        rc = progress_init(&next[i], ids[i], last + 1, r->cfg.max_inflight_msgs,
                           r->cfg.max_inflight_bytes);
        if (rc != 0) {
            uint32_t k;
            for (k = 0; k < i; k++) {
                if (raft_progress(r, ids[k]) == NULL) {
                    progress_free(&next[k]);
                }
            }
            return rc;
        }
        if (ids[i] == r->id) {
            next[i].match = log_stable_index(&r->log);
        }
    }
    /* Members that stay keep what the leader knows of them. */
    for (i = 0; i < n; i++) {
        struct progress *old = raft_progress(r, ids[i]);
        if (old != NULL) {
            next[i] = *old;
            old->id = 0; /* moved: not freed below */
        }
        next[i].is_learner = !list_has(cs->voters, cs->n_voters, ids[i]) &&
                             !list_has(cs->voters_outgoing, cs->n_voters_outgoing, ids[i]);
        next[i].is_witness = list_has(cs->witnesses, cs->n_witnesses, ids[i]);
    }
    for (i = 0; i < r->n_progress; i++) {
        if (r->progress[i].id != 0) {
            progress_free(&r->progress[i]);
        }
    }
    memcpy(r->progress, next, n * sizeof(next[0]));
    r->n_progress = n;
    memset(r->votes, 0, sizeof(r->votes));
    memset(r->read_acked, 0, sizeof(r->read_acked));
    r->conf = *cs;
    r->conf_changed = true;
    return 0;
}

uint64_t membership_committed(const struct craft_raft *r, const uint64_t *values)
{
    uint64_t in[CRAFT_MAX_NODES], out[CRAFT_MAX_NODES];
    uint32_t n_in = 0, n_out = 0, i;
    uint64_t a, b;

    for (i = 0; i < r->n_progress; i++) {
        uint64_t id = r->progress[i].id;
        if (list_has(r->conf.voters, r->conf.n_voters, id)) {
            in[n_in++] = values[i];
        }
        if (list_has(r->conf.voters_outgoing, r->conf.n_voters_outgoing, id)) {
            out[n_out++] = values[i];
        }
    }
    a = quorum_committed(in, n_in);
    b = quorum_committed(out, n_out);
    return a < b ? a : b;
}

int membership_apply_entry(struct craft_raft *r, const struct craft_entry *e)
{
    struct craft_conf_change cc;
    struct craft_conf_state next = r->conf;
    int rc;

    rc = craft_conf_change_decode(&cc, e->data, e->len);
    if (rc != 0) {
        return rc;
    }
    rc = membership_apply_change(&next, &cc);
    if (rc != 0) {
        /* Validated when proposed; a committed change that no longer applies
         * is skipped, identically on every node. */
        return rc;
    }
    rc = membership_set(r, &next);
    if (rc != 0) {
        return rc;
    }
    if (r->role == CRAFT_ROLE_LEADER) {
        if (!craft_conf_state_is_voter(&r->conf, r->id) && r->cfg.step_down_on_removal) {
            /* Raft thesis 4.2.2: a leader removed from the group steps down. */
            raft_become_follower(r, r->term, 0);
            return 0;
        }
        if (r->lead_transferee != 0 && !craft_conf_state_is_voter(&r->conf, r->lead_transferee)) {
            replication_abort_transfer(r);
        }
        /* The quorum changed: commit what it now allows, and tell everyone. */
        replication_maybe_commit(r);
        r->append_pending = true;
    } else if (r->role == CRAFT_ROLE_CANDIDATE || r->role == CRAFT_ROLE_PRE_CANDIDATE) {
        if (!raft_promotable(r)) {
            raft_become_follower(r, r->term, 0);
        }
    } else {
        r->role = raft_follower_role(r);
    }
    return 0;
}

bool membership_leave_joint_pending(const struct craft_raft *r)
{
    return r->role == CRAFT_ROLE_LEADER && craft_conf_state_is_joint(&r->conf) &&
           r->conf.auto_leave && r->pending_conf_index <= r->log.applied;
}

int craft_raft_propose_conf_change(struct craft_raft *r, const struct craft_conf_change *cc)
{
    unsigned char buf[4 + CRAFT_MAX_CONF_CHANGES * 9 + 16];
    struct craft_entry e;
    int rc, n;

    if (r == NULL || cc == NULL) {
        return CRAFT_EINVAL;
    }
    if (r->role != CRAFT_ROLE_LEADER) {
        return CRAFT_ENOTLEADER;
    }
    if (r->lead_transferee != 0) {
        return CRAFT_ETRANSFER;
    }
    rc = membership_validate(r, cc);
    if (rc != 0) {
        return rc;
    }
    n = craft_conf_change_encode(cc, buf, sizeof(buf));
    if (n < 0) {
        return n;
    }
    memset(&e, 0, sizeof(e));
    e.type = CRAFT_ENTRY_CONF_CHANGE;
    e.len = (uint32_t)n;
    e.data = buf;
    rc = replication_append_entries(r, &e, 1);
    if (rc == 0) {
        r->pending_conf_index = log_last_index(&r->log);
    }
    return rc;
}
