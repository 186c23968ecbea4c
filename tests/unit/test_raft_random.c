/* Seeded random runs of the raft_net harness checking Raft's safety
 * properties (Raft paper 5.4.3, Figure 3): election safety (one leader per
 * term), state machine safety (no two nodes apply different entries at one
 * index), and that a committed index never goes back. Faults: dropped
 * messages, partitions, restarts, log compaction, membership changes
 * (single-step and joint) and leader transfers. Deterministic: the same
 * seed gives the same run. The simulator in tests/sim goes much further;
 * this is a quick net under the scenario tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

#define N 5
#define MAX_INDEX 4096
#define SEEDS 150
#define STEPS 250

struct chaos {
    uint64_t rng;
    uint32_t drop_per_mille;
    uint64_t applied_term[MAX_INDEX];
    uint64_t applied_hash[MAX_INDEX];
    uint64_t leader_of_term[1024];
    uint64_t max_commit[N + 1];
};

static uint64_t next_rand(struct chaos *c)
{
    c->rng = c->rng * 6364136223846793005ull + 1442695040888963407ull;
    return c->rng >> 33;
}

static bool random_drop(struct net *net, const struct craft_message *m, void *arg)
{
    struct chaos *c = arg;

    (void)net;
    (void)m;
    return next_rand(c) % 1000 < c->drop_per_mille;
}

static uint64_t hash(const struct net_applied *a)
{
    uint64_t h = 1469598103934665603ull ^ a->type;
    uint32_t i;

    for (i = 0; i < a->len; i++) {
        h = (h ^ a->data[i]) * 1099511628211ull;
    }
    return h;
}

static void check(struct net *net, struct chaos *c)
{
    uint64_t id;
    size_t i;

    for (id = 1; id <= N; id++) {
        struct net_node *n = net_node(net, id);
        struct craft_status st;
        if (!n->up) {
            continue;
        }
        for (i = 0; i < n->n_applied; i++) {
            const struct net_applied *a = &n->applied[i];
            /* A witness applies normal entries as metadata: only the term
             * can be compared. */
            uint64_t h = a->type == CRAFT_ENTRY_METADATA ? 0 : hash(a);
            assert_true(a->index < MAX_INDEX);
            if (c->applied_term[a->index] == 0) {
                c->applied_term[a->index] = a->term;
            } else {
                /* State machine safety. */
                assert_int_equal(c->applied_term[a->index], a->term);
            }
            if (h != 0) {
                if (c->applied_hash[a->index] == 0) {
                    c->applied_hash[a->index] = h;
                }
                assert_int_equal(c->applied_hash[a->index], h);
            }
            if (i > 0) {
                assert_int_equal(a->index, n->applied[i - 1].index + 1);
            }
        }
        net_status(net, id, &st);
        if (st.role == CRAFT_ROLE_LEADER) {
            /* Election safety. */
            assert_true(st.term < 1024);
            if (c->leader_of_term[st.term] == 0) {
                c->leader_of_term[st.term] = id;
            }
            assert_int_equal(c->leader_of_term[st.term], id);
        }
        assert_true(st.applied <= st.commit);
    }
}

/* Whether node id applied the normal entry holding data, directly or
 * through a snapshot covering the index where the leader applied it. */
static bool applied_through(struct net *net, uint64_t leader, uint64_t id, const char *data)
{
    struct net_node *l = net_node(net, leader);
    size_t len = strlen(data), i;

    if (net_applied_has(net, id, data)) {
        return true;
    }
    for (i = 0; i < l->n_applied; i++) {
        const struct net_applied *a = &l->applied[i];
        if (a->type == CRAFT_ENTRY_NORMAL && a->len == len && memcmp(a->data, data, len) == 0) {
            return net_node(net, id)->snapshot_index >= a->index;
        }
    }
    return false;
}

static void run_seed(uint64_t seed)
{
    struct craft_config cfg;
    struct chaos *c = calloc(1, sizeof(*c));
    struct net *net;
    char buf[32];
    int step;

    assert_non_null(c);
    c->rng = seed * 0x9e3779b97f4a7c15ull + 1;
    net_default_config(&cfg);
    cfg.seed = seed;
    cfg.pre_vote = next_rand(c) % 2;
    cfg.check_quorum = next_rand(c) % 2;
    cfg.max_size_per_msg = next_rand(c) % 2 ? 0 : 64;
    cfg.max_inflight_msgs = 1 + (uint32_t)(next_rand(c) % 4);
    net = net_create(N, NULL, &cfg);
    net_set_intercept(net, random_drop, c);
    net->report_snapshots = true;
    for (step = 0; step < STEPS; step++) {
        uint64_t r = next_rand(c) % 100;
        uint64_t id = 1 + next_rand(c) % N;
        struct net_node *n = net_node(net, id);
        if (r < 50) {
            net_tick_all(net, 1);
        } else if (r < 75) {
            if (n->up) {
                snprintf(buf, sizeof(buf), "s%llu-%d", (unsigned long long)seed, step);
                craft_raft_propose(n->raft, buf, (uint32_t)strlen(buf));
                net_stabilize(net);
            }
        } else if (r < 82) {
            net_isolate(net, id);
        } else if (r < 90) {
            net_heal(net);
        } else if (r < 93) {
            c->drop_per_mille = (uint32_t)(next_rand(c) % 300);
        } else if (r < 96) {
            if (n->up) {
                net_stop(net, id);
            } else {
                net_restart(net, id);
            }
        } else if (r < 98 && n->up && craft_raft_role(n->raft) == CRAFT_ROLE_LEADER) {
            /* A membership change: one or two changes (single-step or
             * joint); invalid ones are refused by the leader. */
            struct craft_conf_change cc;
            struct craft_status st;
            uint32_t k;
            net_status(net, id, &st);
            memset(&cc, 0, sizeof(cc));
            cc.transition = (uint32_t)(next_rand(c) % 3);
            cc.n_changes = 1 + (uint32_t)(next_rand(c) % 2);
            if (craft_conf_state_is_joint(&st.conf)) {
                cc.n_changes = 0;
            }
            for (k = 0; k < cc.n_changes; k++) {
                cc.changes[k].type = (uint32_t)(next_rand(c) % 4);
                cc.changes[k].node_id = 1 + next_rand(c) % N;
            }
            if (st.conf.n_voters > 3 ||
                (cc.n_changes > 0 && cc.changes[0].type != CRAFT_CC_REMOVE_NODE &&
                 (cc.n_changes < 2 || cc.changes[1].type != CRAFT_CC_REMOVE_NODE))) {
                craft_raft_propose_conf_change(n->raft, &cc);
            }
            net_stabilize(net);
        } else if (r < 99 && n->up && craft_raft_role(n->raft) == CRAFT_ROLE_LEADER) {
            craft_raft_transfer_leader(n->raft, 1 + next_rand(c) % N);
            net_stabilize(net);
        } else if (n->up) {
            /* Compact the log up to what the node applied. */
            struct craft_status st;
            net_status(net, id, &st);
            if (st.applied > st.first_index &&
                craft_memstore_create_snapshot(n->store, st.applied, &st.conf) == 0) {
                assert_int_equal(craft_memstore_compact(n->store, st.applied), 0);
                /* The store must give the membership as of its compaction
                 * point on restart (the core re-applies changes after it);
                 * the memstore does not derive it from the snapshot. */
                craft_memstore_set_conf_state(n->store, &st.conf);
            }
        }
        check(net, c);
    }
    /* Liveness once the faults heal: everyone up, nothing dropped. */
    for (uint64_t id = 1; id <= N; id++) {
        if (!net_node(net, id)->up) {
            net_restart(net, id);
        }
    }
    net_heal(net);
    c->drop_per_mille = 0;
    /* Raft's liveness is probabilistic (randomized timeouts; without
     * PreVote, nodes with stale logs keep starting elections they lose), so
     * allow many election timeouts. */
    for (step = 0; step < 100 && net_leader(net) == 0; step++) {
        net_tick_all(net, cfg.election_tick);
    }
    if (net_leader(net) == 0) {
        fail_msg("seed %llu: no leader after healing", (unsigned long long)seed);
    }
    /* A client retries until its entry is applied everywhere: a proposal to
     * a leader that is being deposed may be lost, as Raft allows. */
    for (step = 0; step < 30; step++) {
        uint64_t id, done = 0, leader = net_leader(net);
        uint64_t members = 0;
        for (id = 1; id <= N; id++) {
            struct craft_status st;
            if (leader == 0) {
                break;
            }
            net_status(net, leader, &st);
            /* Witnesses apply metadata only. */
            if (craft_conf_state_contains(&st.conf, id) &&
                !craft_conf_state_is_witness(&st.conf, id)) {
                members++;
                done += applied_through(net, leader, id, buf);
            }
        }
        if (step > 0 && leader != 0 && done == members) {
            break;
        }
        if (leader != 0) {
            /* Like a host, the leader snapshots now and then: a follower
             * that was removed and added again after the last snapshot
             * refuses a snapshot that does not name it (as etcd raft
             * does) and needs a newer one. */
            struct craft_status st;
            net_status(net, leader, &st);
            craft_memstore_create_snapshot(net_node(net, leader)->store, st.applied, &st.conf);
        }
        if (leader != 0 && (step == 0 || done == 0)) {
            snprintf(buf, sizeof(buf), "final-%llu-%d", (unsigned long long)seed, step);
            craft_raft_propose(net_raft(net, leader), buf, (uint32_t)strlen(buf));
            net_stabilize(net);
        }
        net_tick_all(net, cfg.election_tick);
    }
    for (uint64_t id = 1; id <= N; id++) {
        struct craft_status st;
        net_status(net, net_leader(net), &st);
        if (!craft_conf_state_contains(&st.conf, id) || craft_conf_state_is_witness(&st.conf, id)) {
            continue; /* removed (it no longer hears from the group) or a witness */
        }
        if (!applied_through(net, net_leader(net), id, buf)) {
            fail_msg("seed %llu: node %llu did not apply the final entry", (unsigned long long)seed,
                     (unsigned long long)id);
        }
    }
    check(net, c);
    net_destroy(net);
    free(c);
}

/* Raft paper 5.4.3: safety holds under drops, partitions, restarts and
 * compaction, and a leader emerges once the faults heal. */
static void test_5_4_3_safety_under_random_faults(void **state)
{
    uint64_t seed;

    (void)state;
    for (seed = 1; seed <= SEEDS; seed++) {
        run_seed(seed);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_5_4_3_safety_under_random_faults),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
