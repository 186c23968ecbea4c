/* craft-sim: the deterministic simulator.
 *
 * Every seed builds a cluster (tests/fixture/cluster.h) of 3 to 7 voters,
 * sometimes with a non-voting member or witnesses, with a configuration
 * drawn from the seed (pre-vote, check-quorum, flow control limits,
 * snapshots, quiescence, the rate limiter), then runs:
 *
 *   1. a fault phase: proposals, ReadIndex requests, message drops,
 *      duplicates, delays and reordering, partitions (also one-way), crashes
 *      (also in the middle of a ready cycle, also losing an unsynced write),
 *      restarts, snapshots and compaction, membership changes (add and
 *      remove voters, non-voting members and witnesses, promotions,
 *      demotions, joint changes), leader transfers and forced campaigns;
 *   2. a heal phase: every fault removed, crashed nodes restarted; then
 *      liveness must hold within LIVENESS_ELECTION_TIMEOUTS election
 *      timeouts: a leader is elected, a fresh proposal is applied by every
 *      voter of the committed membership, and then a ReadIndex request at the
 *      leader and one at a follower are answered.
 *
 * The fixture checks the safety properties after every step. A failure
 * prints the seed, the violated property, the last events, and the command
 * that replays it. Everything derives from the seed: replays are exact.
 *
 * Usage:
 *   craft-sim --seeds N [--jobs J]  seeds 1..N; "sim: N passed, M failed"
 *   craft-sim --seed S              replay one seed with a full trace
 *   craft-sim --soak N | --seconds T   random seeds (from the clock)
 *   craft-sim --demo                a narrated 3-node cluster's life
 *   options: --nodes V (voters), --steps N (fault phase events), --ticks
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../fixture/cluster.h"

/* Liveness bound. Once every fault is healed (links restored, no drops,
 * delays under one tick, crashed nodes restarted), within this many election
 * timeouts of simulated time a leader must be elected, a proposal made then
 * must be applied by every voter of the committed membership, and a
 * ReadIndex request at the leader and one at a follower must be answered.
 * It covers runs of split votes (without pre-vote, candidates with stale
 * logs keep raising the term), a leader stepping down under check-quorum, a
 * removed leader shut down before the others learned that its removal
 * committed (the rest then sit in the joint configuration, whose outgoing
 * half lost a member, until one of the few electable nodes wins), and a
 * lagging node catching up entry by entry under the tightest flow control
 * the seeds choose. Of 150,000 seeds the slowest needed 28. */
#define LIVENESS_ELECTION_TIMEOUTS 50

/* Index of the crash-heavy profile in profiles[]. */
#define PROFILE_CRASHES 1

#define MAX_VOTERS 7
#define MIN_VOTERS 3
#define MAX_WITNESSES 2
#define TRACE_TAIL 40

struct sim_args {
    uint64_t seed;
    uint32_t nodes; /* voters, 0: drawn from the seed */
    uint64_t steps; /* fault phase events, 0: drawn from the seed */
    bool verbose;   /* full trace */
    bool ticks;     /* with ticks */
};

struct sim_stats {
    uint64_t steps;
    uint64_t proposals, proposals_busy, committed_markers;
    uint64_t reads, reads_answered;
    uint64_t conf_changes, conf_changes_accepted;
    uint64_t transfers, crashes, restarts, partitions, snapshots;
    uint64_t heal_time_max; /* longest time to liveness, in election timeouts x 100 */
    uint64_t heal_time_max_seed;
};

struct sim {
    struct cluster *c;
    const struct sim_args *args;
    struct cluster_options o;
    uint64_t rng;
    uint64_t proposal_seq;
    uint32_t profile;    /* index in profiles[] */
    bool witness_seed;   /* witnesses among the membership changes */
    const char *failure; /* a violation the simulator itself found */
    char why[256];
    uint64_t recovery; /* time to liveness after healing, election timeouts x 100 */
    struct sim_stats *stats;
};

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd(struct sim *s)
{
    s->rng += 0x9e3779b97f4a7c15ull;
    return mix64(s->rng);
}

/* Uniform in [0, n). */
static uint64_t below(struct sim *s, uint64_t n)
{
    return n == 0 ? 0 : rnd(s) % n;
}

static bool chance(struct sim *s, uint32_t percent)
{
    return below(s, 100) < percent;
}

static uint64_t pick_u64(struct sim *s, const uint64_t *v, size_t n)
{
    return v[below(s, n)];
}

#define PICK(s, ...)                                                                               \
    pick_u64((s), (const uint64_t[]){__VA_ARGS__},                                                 \
             sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

/* ------------------------------------------------------------------------
 * Configuration drawn from the seed.
 * ------------------------------------------------------------------------ */
static void choose_options(struct sim *s, struct cluster_options *o)
{
    cluster_options_default(o);
    o->seed = s->args->seed;
    o->n_voters = s->args->nodes != 0 ? s->args->nodes : (uint32_t)(MIN_VOTERS + below(s, 5));
    o->n_learners = o->n_voters < MAX_VOTERS && chance(s, 30) ? 1 : 0;
    o->pre_vote = chance(s, 50);
    o->check_quorum = chance(s, 50);
    o->election_tick = 10;
    o->heartbeat_tick = (uint32_t)PICK(s, 1, 1, 2, 3);
    o->max_size_per_msg = PICK(s, 0, 64, 1024, 1 << 20);
    o->max_inflight_msgs = (uint32_t)PICK(s, 1, 4, 64, 256);
    o->max_inflight_bytes = PICK(s, 0, 0, 0, 4096);
    o->max_uncommitted_size = PICK(s, 0, 0, 0, 2048);
    o->max_committed_size_per_ready = PICK(s, 0, 0, 256);
    o->disable_proposal_forwarding = chance(s, 15);
    o->step_down_on_removal = chance(s, 50);
    o->tick_interval = 10;
    o->tick_jitter = (uint32_t)PICK(s, 0, 1, 3);
    o->delay_min = 1;
    o->delay_max = (uint32_t)PICK(s, 3, 5, 10);
    o->drop_ppm = 0;
    o->dup_ppm = 0;
    o->report_unreachable = chance(s, 50);
    o->lose_unsynced_ppm = (uint32_t)PICK(s, 0, 500000, 1000000);
    o->async_write_ppm = (uint32_t)PICK(s, 0, 0, 200000, 1000000);
    o->write_delay_max = (uint32_t)PICK(s, 2, 10, 40);
    o->snapshot_threshold = (uint32_t)PICK(s, 0, 8, 25, 60);
    o->snapshot_keep = (uint32_t)PICK(s, 0, 2, 10);
    o->removal_grace = (uint32_t)PICK(s, 0, 200, 500);
    /* Witnesses: some seeds start with one or two among the voters (at
     * least two full voters remain); witness seeds also add and remove
     * witnesses among their membership changes. */
    if (chance(s, 25)) {
        o->n_witnesses = o->n_voters >= 5 && chance(s, 50) ? 2 : 1;
        if (o->n_voters - o->n_witnesses >= 2) {
            o->n_voters -= o->n_witnesses;
        } else {
            o->n_witnesses = 0;
        }
        s->witness_seed = true;
    }
    /* Quiescence (with the fixture's host-wake rule) and the rate limiter. */
    o->quiesce_ticks = chance(s, 25) ? (uint32_t)PICK(s, 5, 10, 30) : 0;
    /* A leader retries a lagging follower on heartbeat answers: quiescing
     * sooner than a few heartbeats after the last activity strands it
     * (dragonboat waits ten election timeouts). */
    if (o->quiesce_ticks != 0 && o->quiesce_ticks < 3 * o->heartbeat_tick + 2) {
        o->quiesce_ticks = 3 * o->heartbeat_tick + 2;
    }
    o->max_in_mem_log_size = chance(s, 20) ? PICK(s, 64, 256, 1024, 4096) : 0;
}

static void print_options(FILE *f, const struct cluster_options *o, uint64_t steps)
{
    fprintf(f,
            "config: %u voters + %u non-voting, pre_vote=%d check_quorum=%d election=%u "
            "heartbeat=%u max_size_per_msg=%" PRIu64 " max_inflight=%u/%" PRIu64
            " max_uncommitted=%" PRIu64 " max_committed_per_ready=%" PRIu64
            " forwarding=%s step_down_on_removal=%d jitter=%u delay=%u..%u "
            "report_unreachable=%d lose_unsynced=%u%% async_writes=%u%% (<=%u) snapshot every %u "
            "keep %u removal_grace=%u witnesses=%u quiesce=%u max_in_mem_log=%" PRIu64 "; "
            "fault phase %" PRIu64 " steps\n",
            o->n_voters, o->n_learners, o->pre_vote, o->check_quorum, o->election_tick,
            o->heartbeat_tick, o->max_size_per_msg, o->max_inflight_msgs, o->max_inflight_bytes,
            o->max_uncommitted_size, o->max_committed_size_per_ready,
            o->disable_proposal_forwarding ? "off" : "on", o->step_down_on_removal, o->tick_jitter,
            o->delay_min, o->delay_max, o->report_unreachable, o->lose_unsynced_ppm / 10000,
            o->async_write_ppm / 10000, o->write_delay_max, o->snapshot_threshold, o->snapshot_keep,
            o->removal_grace, o->n_witnesses, o->quiesce_ticks, o->max_in_mem_log_size, steps);
}

/* ------------------------------------------------------------------------
 * Helpers over the cluster.
 * ------------------------------------------------------------------------ */

/* A random node in the given state, 0 if none. */
static uint64_t random_node(struct sim *s, uint32_t state)
{
    uint64_t ids[CLUSTER_MAX_NODES];
    uint64_t id, n = 0;

    for (id = 1; id <= cluster_max_id(s->c); id++) {
        if (cluster_node_state(s->c, id) == state) {
            ids[n++] = id;
        }
    }
    return n == 0 ? 0 : ids[below(s, n)];
}

static bool has_id(const uint64_t *ids, uint32_t n, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

static bool in_conf(const struct craft_conf_state *cs, uint64_t id)
{
    return has_id(cs->voters, cs->n_voters, id) ||
           has_id(cs->voters_outgoing, cs->n_voters_outgoing, id) ||
           has_id(cs->learners, cs->n_learners, id) ||
           has_id(cs->learners_next, cs->n_learners_next, id);
}

/* ------------------------------------------------------------------------
 * Fault phase actions.
 * ------------------------------------------------------------------------ */
static void act_propose(struct sim *s)
{
    char data[48];
    uint64_t id = cluster_leader(s->c);
    int len;

    if (id == 0 || chance(s, 20)) {
        id = random_node(s, CLUSTER_NODE_UP);
    }
    if (id == 0) {
        return;
    }
    len = snprintf(data, sizeof(data), "seed %" PRIu64 " value %" PRIu64, s->args->seed,
                   ++s->proposal_seq);
    /* Some proposals are larger, to exercise byte limits. */
    if (chance(s, 10)) {
        memset(data + len, 'x', sizeof(data) - (size_t)len);
        len = (int)sizeof(data);
    }
    if (cluster_propose(s->c, id, data, (uint32_t)len) == CRAFT_EBUSY) {
        s->stats->proposals_busy++;
    }
    s->stats->proposals++;
}

static void act_read(struct sim *s)
{
    uint64_t id = chance(s, 60) ? cluster_leader(s->c) : 0;

    if (id == 0) {
        id = random_node(s, CLUSTER_NODE_UP);
    }
    if (id != 0) {
        cluster_read_index(s->c, id, NULL);
        s->stats->reads++;
    }
}

static void act_network(struct sim *s)
{
    uint32_t delay_max = (uint32_t)PICK(s, 3, 10, 30, 60, 150);
    uint32_t drop = (uint32_t)PICK(s, 0, 0, 10000, 50000, 200000);
    uint32_t dup = (uint32_t)PICK(s, 0, 0, 10000, 50000);

    cluster_set_network(s->c, 1, delay_max, drop, dup);
}

static void act_partition(struct sim *s)
{
    uint64_t group[CLUSTER_MAX_NODES];
    uint64_t id, a, b;
    size_t n = 0;

    s->stats->partitions++;
    switch (below(s, 3)) {
    case 0: /* split the nodes in two */
        for (id = 1; id <= cluster_max_id(s->c); id++) {
            if (chance(s, 40)) {
                group[n++] = id;
            }
        }
        cluster_partition(s->c, group, n);
        break;
    case 1: /* isolate the leader */
        id = cluster_leader(s->c);
        if (id != 0) {
            group[0] = id;
            cluster_partition(s->c, group, 1);
        }
        break;
    default: /* one link, maybe one way */
        a = 1 + below(s, cluster_max_id(s->c));
        b = 1 + below(s, cluster_max_id(s->c));
        if (a != b) {
            cluster_cut(s->c, a, b, chance(s, 50));
        }
        break;
    }
}

static void act_crash(struct sim *s)
{
    /* Leaders most often: that is where crashes matter (Raft paper, Figure 8). */
    uint64_t id = chance(s, s->profile == PROFILE_CRASHES ? 80 : 40) ? cluster_leader(s->c) : 0;

    if (id == 0) {
        id = random_node(s, CLUSTER_NODE_UP);
    }
    if (id == 0) {
        return;
    }
    s->stats->crashes++;
    if (chance(s, 50)) {
        cluster_crash(s->c, id);
    } else {
        cluster_crash_during_ready(s->c, id, (uint32_t)below(s, CLUSTER_CRASH_POINT_COUNT));
    }
}

static void act_restart(struct sim *s)
{
    uint64_t id = random_node(s, CLUSTER_NODE_DOWN);

    if (id != 0) {
        s->stats->restarts++;
        cluster_restart(s->c, id);
    }
}

/* A node to add: an idle one started earlier, else a new one. */
static uint64_t spare_node(struct sim *s, const struct craft_conf_state *cs)
{
    uint64_t id;

    for (id = 1; id <= cluster_max_id(s->c); id++) {
        if (cluster_node_state(s->c, id) == CLUSTER_NODE_UP && !cluster_is_member(s->c, id) &&
            !in_conf(cs, id)) {
            return id;
        }
    }
    return cluster_add_node(s->c);
}

/* A random voter that is not a witness (0 if none), or any voter. */
static uint64_t pick_voter(struct sim *s, const struct craft_conf_state *cs, bool full)
{
    uint64_t ids[CRAFT_MAX_NODES];
    uint32_t i, n = 0;

    for (i = 0; i < cs->n_voters; i++) {
        if (!full || !has_id(cs->witnesses, cs->n_witnesses, cs->voters[i])) {
            ids[n++] = cs->voters[i];
        }
    }
    return n == 0 ? 0 : ids[below(s, n)];
}

/* Whether a full voter (not a witness) may leave the voters. Witnesses never
 * lead, so the full voters that remain must be a majority of the voters both
 * before the change and after it: the nodes that have not learned of the
 * change must be able to elect one of them without a witness's vote. A
 * witness may hold a longer log than every remaining full voter (the leader
 * that is leaving had sent its newest entries to it), and then refuses them
 * its vote; without witnesses that node could campaign itself. */
static bool can_lose_full_voter(uint32_t nfull, uint32_t nv)
{
    return nfull >= 1 && (nfull - 1) * 2 > nv;
}

static void act_conf_change(struct sim *s)
{
    uint64_t leader = cluster_leader(s->c);
    struct craft_conf_change cc;
    struct craft_status *st;
    const struct craft_conf_state *cs;
    uint32_t members, nv, nl, nw, nfull;
    uint64_t id, other;
    int rc;

    if (leader == 0) {
        return;
    }
    st = malloc(sizeof(*st));
    if (st == NULL) {
        return;
    }
    craft_raft_status(cluster_raft(s->c, leader), st);
    cs = &st->conf;
    memset(&cc, 0, sizeof(cc));
    nv = cs->n_voters;
    nl = cs->n_learners;
    nw = cs->n_witnesses;
    nfull = nv >= nw ? nv - nw : 0;
    members = nv + nl;
    if (cs->n_voters_outgoing > 0) {
        /* Joint: leave it (the core may also leave on its own). */
        cc.transition = CRAFT_TRANSITION_AUTO;
        cc.n_changes = 0;
        goto propose;
    }
    switch (below(s, s->witness_seed ? 11 : 8)) {
    case 0: /* add a voter */
    case 1: /* add a non-voting member */
        if (members >= MAX_VOTERS + 1 || nv >= MAX_VOTERS) {
            goto out;
        }
        id = spare_node(s, cs);
        if (id == 0) {
            goto out;
        }
        cc.changes[cc.n_changes].type =
            chance(s, 50) ? CRAFT_CC_ADD_VOTER : CRAFT_CC_ADD_NON_VOTING;
        cc.changes[cc.n_changes++].node_id = id;
        break;
    case 2: /* promote a non-voting member */
        if (nl == 0 || nv >= MAX_VOTERS) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_ADD_VOTER;
        cc.changes[cc.n_changes++].node_id = cs->learners[below(s, nl)];
        break;
    case 3: /* demote a voter (never a witness: the core refuses) */
        if (nv <= MIN_VOTERS || !can_lose_full_voter(nfull, nv)) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_ADD_NON_VOTING;
        cc.changes[cc.n_changes++].node_id = pick_voter(s, cs, true);
        break;
    case 4: /* remove a voter */
        if (nv <= MIN_VOTERS) {
            goto out;
        }
        id = pick_voter(s, cs, false);
        if (!has_id(cs->witnesses, nw, id) && !can_lose_full_voter(nfull, nv)) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_REMOVE_NODE;
        cc.changes[cc.n_changes++].node_id = id;
        break;
    case 5: /* remove a non-voting member */
        if (nl == 0) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_REMOVE_NODE;
        cc.changes[cc.n_changes++].node_id = cs->learners[below(s, nl)];
        break;
    case 6: /* replace a voter: joint */
        if (members >= MAX_VOTERS + 1) {
            goto out;
        }
        id = spare_node(s, cs);
        if (id == 0) {
            goto out;
        }
        other = pick_voter(s, cs, false);
        if (!has_id(cs->witnesses, nw, other) && !can_lose_full_voter(nfull, nv)) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_ADD_VOTER;
        cc.changes[cc.n_changes++].node_id = id;
        cc.changes[cc.n_changes].type = CRAFT_CC_REMOVE_NODE;
        cc.changes[cc.n_changes++].node_id = other;
        break;
    case 7: /* swap roles: promote one, demote another, joint */
        if (nl == 0 || !can_lose_full_voter(nfull, nv)) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_ADD_VOTER;
        cc.changes[cc.n_changes++].node_id = cs->learners[below(s, nl)];
        cc.changes[cc.n_changes].type = CRAFT_CC_ADD_NON_VOTING;
        cc.changes[cc.n_changes++].node_id = pick_voter(s, cs, true);
        break;
    case 8: /* add a witness, sometimes with another change (joint) */
        if (members >= MAX_VOTERS + 1 || nv >= MAX_VOTERS || nw >= MAX_WITNESSES ||
            nfull * 2 <= nv + 1) {
            goto out;
        }
        id = spare_node(s, cs);
        if (id == 0) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_ADD_WITNESS;
        cc.changes[cc.n_changes++].node_id = id;
        if (nv > MIN_VOTERS && can_lose_full_voter(nfull, nv) && chance(s, 30)) {
            cc.changes[cc.n_changes].type = CRAFT_CC_REMOVE_NODE;
            cc.changes[cc.n_changes++].node_id = pick_voter(s, cs, true);
        }
        break;
    case 9: /* remove a witness */
        if (nw == 0 || nv <= MIN_VOTERS) {
            goto out;
        }
        cc.changes[cc.n_changes].type = CRAFT_CC_REMOVE_NODE;
        cc.changes[cc.n_changes++].node_id = cs->witnesses[below(s, nw)];
        break;
    default: /* try to promote or demote a witness: the core must refuse */
        if (nw == 0) {
            goto out;
        }
        cc.changes[cc.n_changes].type =
            chance(s, 50) ? CRAFT_CC_ADD_VOTER : CRAFT_CC_ADD_NON_VOTING;
        cc.changes[cc.n_changes++].node_id = cs->witnesses[below(s, nw)];
        cc.transition = CRAFT_TRANSITION_AUTO;
        s->stats->conf_changes++;
        rc = cluster_propose_conf_change(s->c, leader, &cc);
        if (rc == 0) {
            snprintf(s->why, sizeof(s->why),
                     "witness n%" PRIu64 " %s: the core accepted the change", cc.changes[0].node_id,
                     cc.changes[0].type == CRAFT_CC_ADD_VOTER ? "promoted" : "demoted");
            s->failure = s->why;
        }
        goto out;
    }
    cc.transition =
        (uint32_t)PICK(s, CRAFT_TRANSITION_AUTO, CRAFT_TRANSITION_AUTO,
                       CRAFT_TRANSITION_JOINT_IMPLICIT, CRAFT_TRANSITION_JOINT_EXPLICIT);
propose:
    s->stats->conf_changes++;
    if (cluster_propose_conf_change(s->c, leader, &cc) == 0) {
        s->stats->conf_changes_accepted++;
    }
out:
    free(st);
}

static void act_transfer(struct sim *s)
{
    uint64_t leader = cluster_leader(s->c);
    const struct craft_conf_state *cs = cluster_conf(s->c);

    if (leader == 0 || cs->n_voters == 0) {
        return;
    }
    s->stats->transfers++;
    cluster_transfer_leader(s->c, leader, cs->voters[below(s, cs->n_voters)]);
}

static void act_snapshot(struct sim *s)
{
    uint64_t id = random_node(s, CLUSTER_NODE_UP);

    if (id != 0 && cluster_take_snapshot(s->c, id, (uint32_t)below(s, 4)) == 0) {
        s->stats->snapshots++;
    }
}

enum action {
    ACT_PROPOSE,
    ACT_READ,
    ACT_NETWORK,
    ACT_PARTITION,
    ACT_HEAL_NETWORK,
    ACT_CRASH,
    ACT_RESTART,
    ACT_CONF_CHANGE,
    ACT_TRANSFER,
    ACT_CAMPAIGN,
    ACT_SNAPSHOT,
    ACT_NOTHING,
    ACT_COUNT
};

/* Fault profiles: each seed draws one, which sets how often each action is
 * chosen (relative weights). Mixed faults find most bugs; the focused ones
 * reach deeper into one area, e.g. the crash-heavy profile produces the
 * leader changes of the Raft paper's Figure 8. */
struct profile {
    const char *name;
    uint32_t weights[ACT_COUNT];
};

static const struct profile profiles[] = {
    /*            propose read net part heal crash rst conf xfer camp snap nothing */
    {"mixed", {38, 8, 6, 6, 6, 5, 7, 7, 4, 2, 3, 8}},
    {"crashes", {40, 6, 2, 2, 4, 14, 18, 2, 2, 2, 3, 5}},
    {"partitions", {38, 6, 4, 16, 12, 2, 3, 3, 3, 3, 2, 8}},
    {"membership", {34, 6, 4, 4, 6, 4, 6, 22, 4, 1, 3, 6}},
    {"lossy", {40, 10, 20, 4, 4, 2, 3, 4, 3, 2, 3, 5}},
};

#define N_PROFILES (sizeof(profiles) / sizeof(profiles[0]))

static void fault_action(struct sim *s)
{
    const struct profile *p = &profiles[s->profile];
    uint32_t total = 0, r, a;

    for (a = 0; a < ACT_COUNT; a++) {
        total += p->weights[a];
    }
    r = (uint32_t)below(s, total);
    for (a = 0; a + 1 < ACT_COUNT && r >= p->weights[a]; a++) {
        r -= p->weights[a];
    }
    switch (a) {
    case ACT_PROPOSE:
        act_propose(s);
        break;
    case ACT_READ:
        act_read(s);
        break;
    case ACT_NETWORK:
        act_network(s);
        break;
    case ACT_PARTITION:
        act_partition(s);
        break;
    case ACT_HEAL_NETWORK:
        cluster_heal_network(s->c);
        break;
    case ACT_CRASH:
        act_crash(s);
        break;
    case ACT_RESTART:
        act_restart(s);
        break;
    case ACT_CONF_CHANGE:
        act_conf_change(s);
        break;
    case ACT_TRANSFER:
        act_transfer(s);
        break;
    case ACT_CAMPAIGN: {
        uint64_t id = random_node(s, CLUSTER_NODE_UP);
        if (id != 0) {
            cluster_campaign(s->c, id);
        }
        break;
    }
    case ACT_SNAPSHOT:
        act_snapshot(s);
        break;
    default:
        /* A quiet spell: let the cluster make progress. */
        break;
    }
}

/* ------------------------------------------------------------------------
 * One seed.
 * ------------------------------------------------------------------------ */

/* Every voter of the committed membership has applied index. */
static bool voters_applied(struct sim *s, uint64_t index, uint64_t *lagging)
{
    const struct craft_conf_state *cs = cluster_conf(s->c);
    uint32_t i;

    for (i = 0; i < cs->n_voters + cs->n_voters_outgoing; i++) {
        uint64_t id = i < cs->n_voters ? cs->voters[i] : cs->voters_outgoing[i - cs->n_voters];
        if (cluster_applied(s->c, id) < index) {
            *lagging = id;
            return false;
        }
    }
    return true;
}

static const char *heal_and_check_liveness(struct sim *s, char *why, size_t cap)
{
    const uint64_t timeout = (uint64_t)s->o.election_tick * s->o.tick_interval;
    const uint64_t start = cluster_now(s->c);
    const uint64_t deadline = start + LIVENESS_ELECTION_TIMEOUTS * timeout;
    char marker[48];
    uint32_t marker_len;
    uint64_t last_attempt = 0, marker_index = 0, lagging = 0;
    uint64_t read_attempt = 0, leader_read = 0, follower_read = 0;
    bool proposed = false, marker_done = false;

    cluster_heal(s->c);
    marker_len = (uint32_t)snprintf(marker, sizeof(marker), "liveness marker of seed %" PRIu64,
                                    s->args->seed);
    cluster_note(s->c, "heal: every fault removed; liveness bound (time units):", deadline - start);
    while (cluster_now(s->c) < deadline) {
        uint64_t leader;

        if (!cluster_step(s->c)) {
            return NULL;
        }
        leader = cluster_leader(s->c);
        /* Propose the marker at the leader, again every election timeout
         * until it is applied (a proposal can be lost with its leader). */
        if (marker_index == 0 && leader != 0 &&
            (!proposed || cluster_now(s->c) >= last_attempt + timeout)) {
            if (cluster_propose(s->c, leader, marker, marker_len) == 0) {
                proposed = true;
            }
            last_attempt = cluster_now(s->c);
        }
        if (proposed && marker_index == 0 && cluster_steps(s->c) % 8 == 0) {
            marker_index = cluster_find_applied(s->c, marker, marker_len);
        }
        if (marker_index != 0 && !marker_done && voters_applied(s, marker_index, &lagging)) {
            marker_done = true;
            s->stats->committed_markers++;
        }
        /* Then a linearizable read at the leader and one at a follower must
         * be answered (re-issued every election timeout: a read is lost
         * with its leader). */
        if (marker_done && leader != 0 && cluster_now(s->c) >= read_attempt + timeout) {
            /* A witness serves no reads: ask a full voter. */
            uint64_t follower = pick_voter(s, cluster_conf(s->c), true);
            read_attempt = cluster_now(s->c);
            if (leader_read == 0 || !cluster_read_answered(s->c, leader_read)) {
                cluster_read_index(s->c, leader, &leader_read);
            }
            if (follower != 0 && follower != leader &&
                cluster_node_state(s->c, follower) == CLUSTER_NODE_UP &&
                (follower_read == 0 || !cluster_read_answered(s->c, follower_read))) {
                cluster_read_index(s->c, follower, &follower_read);
            }
        }
        if (marker_done && leader_read != 0 && cluster_read_answered(s->c, leader_read) &&
            (follower_read == 0 || cluster_read_answered(s->c, follower_read))) {
            uint64_t took = (cluster_now(s->c) - start) * 100 / timeout;
            s->recovery = took;
            if (took > s->stats->heal_time_max) {
                s->stats->heal_time_max = took;
                s->stats->heal_time_max_seed = s->args->seed;
            }
            return NULL;
        }
    }
    if (marker_done) {
        snprintf(why, cap,
                 "liveness: ReadIndex not answered (leader read #%" PRIu64
                 ": %s, follower read #%" PRIu64 ": %s) %d election timeouts after healing",
                 leader_read, cluster_read_answered(s->c, leader_read) ? "answered" : "unanswered",
                 follower_read,
                 follower_read == 0 || cluster_read_answered(s->c, follower_read) ? "answered"
                                                                                  : "unanswered",
                 LIVENESS_ELECTION_TIMEOUTS);
    } else if (cluster_leader(s->c) == 0) {
        snprintf(why, cap, "liveness: no leader %d election timeouts after healing",
                 LIVENESS_ELECTION_TIMEOUTS);
    } else if (marker_index == 0) {
        snprintf(why, cap,
                 "liveness: leader n%" PRIu64 " but no proposal committed %d election timeouts "
                 "after healing",
                 cluster_leader(s->c), LIVENESS_ELECTION_TIMEOUTS);
    } else {
        snprintf(why, cap,
                 "liveness: marker committed at index %" PRIu64 " but voter n%" PRIu64
                 " (applied %" PRIu64 ") did not apply it within %d election timeouts",
                 marker_index, lagging, cluster_applied(s->c, lagging), LIVENESS_ELECTION_TIMEOUTS);
    }
    return why;
}

static void print_replay(FILE *f, const struct sim_args *a)
{
    fprintf(f, "  replay: craft-sim --seed %" PRIu64, a->seed);
    if (a->nodes != 0) {
        fprintf(f, " --nodes %u", a->nodes);
    }
    if (a->steps != 0) {
        fprintf(f, " --steps %" PRIu64, a->steps);
    }
    fprintf(f, "\n");
}

/* Runs one seed. Returns true if it passed; on failure prints a report to out. */
static bool run_seed(const struct sim_args *args, struct sim_stats *stats, FILE *out)
{
    struct sim s;
    uint64_t fault_steps, next_action = 0;
    const char *failure = NULL;
    char why[512];
    bool ok;
    int rc;

    memset(&s, 0, sizeof(s));
    s.args = args;
    s.stats = stats;
    s.rng = mix64(args->seed * 0x2545f4914f6cdd1dull + 17);
    choose_options(&s, &s.o);
    s.profile = (uint32_t)below(&s, N_PROFILES);
    fault_steps = args->steps != 0 ? args->steps : 3000 + below(&s, 9000);
    if (args->verbose) {
        print_options(out, &s.o, fault_steps);
        fprintf(out, "faults: %s\n", profiles[s.profile].name);
    }
    rc = cluster_create(&s.c, &s.o);
    if (rc != 0) {
        fprintf(out, "sim: seed %" PRIu64 " FAILED: cluster_create: %s\n", args->seed,
                craft_strerror(rc));
        return false;
    }
    if (args->verbose) {
        cluster_set_trace(s.c, out, args->ticks);
    }

    /* Fault phase. */
    while (cluster_steps(s.c) < fault_steps) {
        if (cluster_now(s.c) >= next_action) {
            fault_action(&s);
            next_action = cluster_now(s.c) + 2 + below(&s, 30);
            /* With quiescence, some long idle spells: the group falls quiet,
             * and the next fault or proposal must wake it. */
            if (s.o.quiesce_ticks != 0 && chance(&s, 4)) {
                next_action += s.o.tick_interval * (s.o.quiesce_ticks + below(&s, 30));
            }
            if (s.failure != NULL) {
                break;
            }
        }
        if (!cluster_step(s.c)) {
            break;
        }
    }
    failure = s.failure != NULL ? s.failure : cluster_check(s.c);

    /* Heal phase and liveness. */
    if (failure == NULL) {
        failure = heal_and_check_liveness(&s, why, sizeof(why));
        if (failure == NULL) {
            failure = cluster_check(s.c);
        }
    }
    stats->steps += cluster_steps(s.c);
    stats->reads_answered += cluster_reads_answered(s.c);

    ok = failure == NULL;
    if (!ok) {
        if (!args->verbose) {
            print_options(out, &s.o, fault_steps);
            fprintf(out, "faults: %s\n", profiles[s.profile].name);
        }
        fprintf(out, "sim: seed %" PRIu64 " FAILED at step %" PRIu64 " (time %" PRIu64 "): %s\n",
                args->seed, cluster_steps(s.c), cluster_now(s.c), failure);
        fprintf(out, "  last events:\n");
        cluster_dump_trace(s.c, out, TRACE_TAIL);
        print_replay(out, args);
    } else if (args->verbose) {
        fprintf(out,
                "sim: seed %" PRIu64 " passed: %" PRIu64 " steps, commit index %" PRIu64
                ", %" PRIu64 " reads answered; recovered in %.2f election timeouts\n",
                args->seed, cluster_steps(s.c), cluster_max_commit(s.c),
                cluster_reads_answered(s.c), (double)s.recovery / 100.0);
    }
    cluster_destroy(s.c);
    return ok;
}

/* ------------------------------------------------------------------------
 * The demo: one 3-node cluster's life, narrated.
 * ------------------------------------------------------------------------ */
struct demo {
    struct cluster *c;
    uint64_t leader_term[CLUSTER_MAX_NODES + 1];
};

static void demo_say(struct cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void demo_say(struct cluster *c, const char *fmt, ...)
{
    va_list ap;

    printf("t=%5" PRIu64 "ms  ", cluster_now(c));
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void demo_observer(void *arg, const struct cluster_event *ev)
{
    struct demo *d = arg;

    switch (ev->kind) {
    case CLUSTER_EV_ROLE:
        if (ev->b == CRAFT_ROLE_LEADER) {
            demo_say(d->c, "node %u wins the election: leader of term %" PRIu64, ev->node, ev->c);
        } else if (ev->b == CRAFT_ROLE_CANDIDATE) {
            demo_say(d->c, "node %u campaigns in term %" PRIu64 ", asking for votes", ev->node,
                     ev->c);
        } else if (ev->b == CRAFT_ROLE_PRE_CANDIDATE) {
            demo_say(d->c,
                     "node %u hears no leader for an election timeout: asks for pre-votes "
                     "(Raft thesis 9.6)",
                     ev->node);
        } else if (ev->a == CRAFT_ROLE_LEADER) {
            demo_say(d->c,
                     "node %u steps down to %s in term %" PRIu64
                     " (check-quorum: it no longer hears from a majority)",
                     ev->node, craft_role_name((uint32_t)ev->b), ev->c);
        }
        break;
    case CLUSTER_EV_CRASH:
        demo_say(d->c, "node %u crashes: its memory is gone, its disk survives", ev->node);
        break;
    case CLUSTER_EV_RESTART:
        demo_say(d->c,
                 "node %u restarts from disk: term %" PRIu64 ", commit %" PRIu64
                 ", log up to %" PRIu64,
                 ev->node, ev->a, ev->b, ev->d);
        break;
    case CLUSTER_EV_SNAPSHOT_INSTALL:
        demo_say(d->c, "node %u installs a snapshot at index %" PRIu64, ev->node, ev->a);
        break;
    case CLUSTER_EV_READ_STATE:
        demo_say(d->c, "node %u: linearizable read #%" PRIu64 " may be served at index %" PRIu64,
                 ev->node, ev->a, ev->b);
        break;
    default:
        break;
    }
}

static bool demo_run(struct demo *d, uint64_t duration)
{
    if (!cluster_run_until(d->c, cluster_now(d->c) + duration)) {
        printf("demo: invariant violated: %s\n", cluster_check(d->c));
        return false;
    }
    return true;
}

static void demo_show_logs(struct demo *d)
{
    uint64_t id;

    for (id = 1; id <= cluster_max_id(d->c); id++) {
        struct craft_memstore *ms = cluster_store(d->c, id);
        uint32_t st = cluster_node_state(d->c, id);
        struct craft_raft *r = cluster_raft(d->c, id);
        demo_say(d->c,
                 "   node %" PRIu64 ": %-13s term %-2" PRIu64 " last log index %-3" PRIu64
                 " applied %" PRIu64,
                 id, st == CLUSTER_NODE_UP ? craft_role_name(craft_raft_role(r)) : "down",
                 r != NULL ? craft_raft_term(r) : 0, craft_memstore_last_index(ms),
                 cluster_applied(d->c, id));
    }
}

static bool demo_propose(struct demo *d, const char *value)
{
    uint64_t leader = cluster_leader(d->c);
    uint64_t index, deadline, id;
    int rc;

    if (leader == 0) {
        demo_say(d->c, "no leader to take \"%s\"", value);
        return false;
    }
    rc = cluster_propose(d->c, leader, value, (uint32_t)strlen(value));
    demo_say(d->c, "client writes \"%s\" at leader %" PRIu64 ": %s", value, leader,
             craft_strerror(rc));
    deadline = cluster_now(d->c) + 1000;
    while (cluster_now(d->c) < deadline) {
        if (!cluster_step(d->c)) {
            printf("demo: invariant violated: %s\n", cluster_check(d->c));
            return false;
        }
        index = cluster_find_applied(d->c, value, (uint32_t)strlen(value));
        if (index != 0) {
            bool all = true;
            for (id = 1; id <= cluster_max_id(d->c); id++) {
                if (cluster_node_state(d->c, id) == CLUSTER_NODE_UP &&
                    cluster_applied(d->c, id) < index) {
                    all = false;
                }
            }
            if (all) {
                demo_say(d->c,
                         "\"%s\" is committed at index %" PRIu64 " and applied by every live node",
                         value, index);
                return true;
            }
        }
    }
    demo_say(d->c, "\"%s\" did not commit within a second", value);
    return false;
}

static int run_demo(void)
{
    struct cluster_options o;
    struct demo d;
    uint64_t old_leader, id;
    bool ok = true;

    memset(&d, 0, sizeof(d));
    cluster_options_default(&o);
    o.n_voters = 3;
    o.seed = 42;
    o.tick_interval = 10;
    o.tick_jitter = 1;
    o.delay_min = 1;
    o.delay_max = 4;
    o.snapshot_threshold = 0;
    printf("craft demo: a 3-node Raft cluster in the deterministic simulator.\n");
    printf("Each node ticks every 10ms; election timeout 10 ticks; messages take 1-4ms.\n");
    printf("Every step is checked for the Raft safety properties.\n\n");
    if (cluster_create(&d.c, &o) != 0) {
        printf("demo: cannot create the cluster\n");
        return 1;
    }
    cluster_set_observer(d.c, demo_observer, &d);
    demo_say(d.c, "nodes 1, 2, 3 start as followers with no leader");
    ok = demo_run(&d, 400);
    ok = ok && demo_propose(&d, "x=1");
    ok = ok && demo_propose(&d, "y=2");
    ok = ok && demo_propose(&d, "z=3");
    if (ok) {
        uint64_t ctx;
        cluster_read_index(d.c, cluster_leader(d.c), &ctx);
        ok = demo_run(&d, 50);
    }
    if (ok) {
        demo_show_logs(&d);
        old_leader = cluster_leader(d.c);
        demo_say(d.c, "crash the leader, node %" PRIu64, old_leader);
        cluster_crash(d.c, old_leader);
        ok = demo_run(&d, 600);
    }
    ok = ok && demo_propose(&d, "x=10");
    ok = ok && demo_propose(&d, "w=4");
    if (ok) {
        demo_show_logs(&d);
        for (id = 1; id <= cluster_max_id(d.c); id++) {
            if (cluster_node_state(d.c, id) == CLUSTER_NODE_DOWN) {
                demo_say(d.c, "restart node %" PRIu64, id);
                cluster_restart(d.c, id);
            }
        }
        ok = demo_run(&d, 300);
    }
    if (ok) {
        demo_say(d.c, "the restarted node has caught up:");
        demo_show_logs(&d);
        demo_say(d.c, "cut the leader off from the others");
        id = cluster_leader(d.c);
        cluster_partition(d.c, &id, 1);
        ok = demo_run(&d, 600);
    }
    if (ok) {
        demo_show_logs(&d);
        demo_say(d.c, "heal the network");
        cluster_heal_network(d.c);
        ok = demo_run(&d, 300);
    }
    ok = ok && demo_propose(&d, "v=5");
    if (ok) {
        demo_show_logs(&d);
        demo_say(d.c, "done: %" PRIu64 " simulated steps, every safety check passed",
                 cluster_steps(d.c));
    }
    cluster_destroy(d.c);
    return ok ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * Many seeds, optionally in worker processes.
 * ------------------------------------------------------------------------ */
struct range {
    uint64_t first, count; /* seeds first .. first + count - 1 */
    double seconds;        /* > 0: run until this much time passed instead */
};

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs seeds first + k, first + k + jobs, ... Returns the failure count. */
static void run_share(const struct sim_args *base, const struct range *r, uint32_t k, uint32_t jobs,
                      uint64_t *passed, uint64_t *failed, struct sim_stats *stats)
{
    double start = now_seconds();
    uint64_t i;

    for (i = k;; i += jobs) {
        struct sim_args a = *base;
        if (r->seconds > 0) {
            if (now_seconds() - start >= r->seconds) {
                break;
            }
        } else if (i >= r->count) {
            break;
        }
        a.seed = r->first + i;
        a.verbose = false;
        if (run_seed(&a, stats, stdout)) {
            (*passed)++;
        } else {
            (*failed)++;
            printf("sim: failing seed %" PRIu64 "\n", a.seed);
        }
        fflush(stdout);
    }
}

static int run_many(const struct sim_args *base, const struct range *r, uint32_t jobs,
                    bool show_stats)
{
    struct sim_stats stats;
    uint64_t passed = 0, failed = 0;
    double start = now_seconds();
    uint32_t k;

    memset(&stats, 0, sizeof(stats));
    fflush(stdout);
    if (jobs <= 1) {
        run_share(base, r, 0, 1, &passed, &failed, &stats);
    } else {
        int fds[64][2];
        pid_t pids[64];
        if (jobs > 64) {
            jobs = 64;
        }
        for (k = 0; k < jobs; k++) {
            if (pipe(fds[k]) != 0) {
                perror("pipe");
                return 2;
            }
            pids[k] = fork();
            if (pids[k] < 0) {
                perror("fork");
                return 2;
            }
            if (pids[k] == 0) {
                uint64_t p = 0, f = 0;
                struct sim_stats st;
                ssize_t w;
                close(fds[k][0]);
                memset(&st, 0, sizeof(st));
                run_share(base, r, k, jobs, &p, &f, &st);
                {
                    uint64_t msg[2] = {p, f};
                    w = write(fds[k][1], msg, sizeof(msg));
                    w += write(fds[k][1], &st, sizeof(st));
                }
                _exit(w == (ssize_t)(2 * sizeof(uint64_t) + sizeof(st)) ? 0 : 3);
            }
            close(fds[k][1]);
        }
        for (k = 0; k < jobs; k++) {
            uint64_t msg[2] = {0, 0};
            struct sim_stats st;
            int status = 0;
            memset(&st, 0, sizeof(st));
            if (read(fds[k][0], msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
                read(fds[k][0], &st, sizeof(st)) != (ssize_t)sizeof(st)) {
                fprintf(stdout, "sim: worker %u died\n", k);
                failed++;
            }
            close(fds[k][0]);
            waitpid(pids[k], &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stdout, "sim: worker %u exited abnormally (status %d)\n", k, status);
                failed++;
            }
            passed += msg[0];
            failed += msg[1];
            stats.steps += st.steps;
            stats.proposals += st.proposals;
            stats.proposals_busy += st.proposals_busy;
            stats.committed_markers += st.committed_markers;
            stats.reads += st.reads;
            stats.reads_answered += st.reads_answered;
            stats.conf_changes += st.conf_changes;
            stats.conf_changes_accepted += st.conf_changes_accepted;
            stats.transfers += st.transfers;
            stats.crashes += st.crashes;
            stats.restarts += st.restarts;
            stats.partitions += st.partitions;
            stats.snapshots += st.snapshots;
            if (st.heal_time_max > stats.heal_time_max) {
                stats.heal_time_max = st.heal_time_max;
                stats.heal_time_max_seed = st.heal_time_max_seed;
            }
        }
    }
    if (show_stats) {
        printf("sim: %.1fs, %" PRIu64 " steps, %" PRIu64 " proposals (%" PRIu64 " busy), %" PRIu64
               "/%" PRIu64 " reads answered, %" PRIu64 "/%" PRIu64
               " membership changes accepted, %" PRIu64 " transfers, %" PRIu64 " crashes, %" PRIu64
               " restarts, %" PRIu64 " partitions, %" PRIu64
               " snapshots, slowest recovery %.2f election timeouts (seed %" PRIu64 ")\n",
               now_seconds() - start, stats.steps, stats.proposals, stats.proposals_busy,
               stats.reads_answered, stats.reads, stats.conf_changes_accepted, stats.conf_changes,
               stats.transfers, stats.crashes, stats.restarts, stats.partitions, stats.snapshots,
               (double)stats.heal_time_max / 100.0, stats.heal_time_max_seed);
    }
    printf("sim: %" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------
 * Command line.
 * ------------------------------------------------------------------------ */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: craft-sim [--seeds N [--from S] | --seed S | --soak N | --seconds T | --demo]\n"
            "                 [--nodes V] [--steps N] [--jobs J] [--stats] [--ticks]\n"
            "  --seeds N    run seeds 1..N (default 100); exit 1 on any failure\n"
            "  --from S     with --seeds: run seeds S..S+N-1 instead\n"
            "  --seed S     replay seed S with a full trace\n"
            "  --soak N     run N seeds starting from a clock-derived seed\n"
            "  --seconds T  run clock-derived seeds for T seconds\n"
            "  --demo       narrate one 3-node cluster's life\n"
            "  --nodes V    voters per cluster (3..7; default: from the seed)\n"
            "  --steps N    events in the fault phase (default: from the seed)\n"
            "  --jobs J     worker processes (default 1)\n"
            "  --stats      print totals over the seeds\n"
            "  --ticks      with --seed: trace ticks too\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    enum { MODE_SEEDS, MODE_SEED, MODE_SOAK, MODE_SECONDS, MODE_DEMO } mode = MODE_SEEDS;
    struct sim_args args;
    struct range r;
    uint64_t value = 100, v, jobs = 1, first = 1;
    bool show_stats = false;
    int i;

    memset(&args, 0, sizeof(args));
    memset(&r, 0, sizeof(r));
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;

        if (strcmp(a, "--seeds") == 0) {
            mode = MODE_SEEDS;
        } else if (strcmp(a, "--seed") == 0) {
            mode = MODE_SEED;
        } else if (strcmp(a, "--soak") == 0) {
            mode = MODE_SOAK;
        } else if (strcmp(a, "--seconds") == 0) {
            mode = MODE_SECONDS;
        } else if (strcmp(a, "--nodes") == 0 || strcmp(a, "--steps") == 0 ||
                   strcmp(a, "--jobs") == 0 || strcmp(a, "--from") == 0) {
            /* handled below */
        } else {
            takes = false;
        }
        if (takes) {
            if (!parse_u64(next, &v)) {
                fprintf(stderr, "craft-sim: %s needs a number\n", a);
                usage(stderr);
                return 2;
            }
            i++;
            if (strcmp(a, "--nodes") == 0) {
                if (v < MIN_VOTERS || v > MAX_VOTERS) {
                    fprintf(stderr, "craft-sim: --nodes must be %d..%d\n", MIN_VOTERS, MAX_VOTERS);
                    return 2;
                }
                args.nodes = (uint32_t)v;
            } else if (strcmp(a, "--steps") == 0) {
                args.steps = v;
            } else if (strcmp(a, "--jobs") == 0) {
                jobs = v == 0 ? 1 : v;
            } else if (strcmp(a, "--from") == 0) {
                first = v;
            } else {
                value = v;
            }
            continue;
        }
        if (strcmp(a, "--demo") == 0) {
            mode = MODE_DEMO;
        } else if (strcmp(a, "--stats") == 0) {
            show_stats = true;
        } else if (strcmp(a, "--ticks") == 0) {
            args.ticks = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "craft-sim: unknown argument %s\n", a);
            usage(stderr);
            return 2;
        }
    }

    switch (mode) {
    case MODE_DEMO:
        return run_demo();
    case MODE_SEED: {
        struct sim_stats stats;
        memset(&stats, 0, sizeof(stats));
        args.seed = value;
        args.verbose = true;
        return run_seed(&args, &stats, stdout) ? 0 : 1;
    }
    case MODE_SOAK:
    case MODE_SECONDS:
        r.first = mix64((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32)) % 1000000000000ull;
        r.count = mode == MODE_SOAK ? value : 0;
        r.seconds = mode == MODE_SECONDS ? (double)value : 0;
        printf("sim: soak from seed %" PRIu64 "\n", r.first);
        return run_many(&args, &r, (uint32_t)jobs, true);
    default:
        r.first = first;
        r.count = value;
        return run_many(&args, &r, (uint32_t)jobs, show_stats);
    }
}
