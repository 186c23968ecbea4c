/* Scenario tests for membership changes (Raft thesis chapter 4): single-step
 * changes (4.1), non-voting members (4.2.1), a removed leader stepping down
 * (4.2.2), joint consensus entered and left automatically or explicitly
 * (4.3), and the validation of proposed changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

/* Node id's membership now (in a small rotating buffer). */
static const struct craft_conf_state *conf_of(struct net *net, uint64_t id)
{
    static struct craft_conf_state ring[4];
    static unsigned next;
    struct craft_status st;

    net_status(net, id, &st);
    ring[next % 4] = st.conf;
    return &ring[next++ % 4];
}

static uint64_t commit_of(struct net *net, uint64_t id)
{
    struct craft_status st;

    net_status(net, id, &st);
    return st.commit;
}

/* A 3-voter group led by 1, with spare nodes up to `total` that join through
 * membership changes. A spare starts with an empty log and the group's
 * bootstrap membership (the membership as of index 0, which the log's
 * changes build on), in which it is not a member. */
static struct net *group(uint32_t total, const struct craft_config *cfg)
{
    struct craft_conf_state boot = net_voters(3);
    struct net *net = net_create(3, &boot, cfg);
    uint64_t id;

    for (id = 4; id <= total; id++) {
        net_add_node(net, id, &boot, cfg);
    }
    net_elect(net, 1);
    return net;
}

/* Raft thesis 4.1: adding one voter at a time; the new server catches up and
 * the new configuration's majority (3 of 4) is needed from then on. */
static void test_4_1_add_voter_single_step(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 4);
    struct craft_conf_state cs;
    uint64_t id;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 2);
    for (id = 1; id <= 4; id++) {
        cs = *conf_of(net, id);
        assert_int_equal(cs.n_voters, 4);
        assert_true(craft_conf_state_is_voter(&cs, 4));
        assert_false(craft_conf_state_is_joint(&cs));
        /* The cheap accessor agrees with the status. */
        assert_memory_equal(craft_raft_membership(net_raft(net, id)), &cs, sizeof(cs));
        assert_int_equal(craft_raft_applied(net_raft(net, id)), net_applied_index(net, id));
        assert_true(craft_raft_commit(net_raft(net, id)) >= net_applied_index(net, id));
    }
    assert_int_equal(net_applied_index(net, 4), net_applied_index(net, 1));
    assert_int_equal(craft_raft_role(net_raft(net, 4)), CRAFT_ROLE_FOLLOWER);
    /* 1 and 2 are a majority of the old configuration, not of the new one. */
    net_isolate(net, 3);
    net_isolate(net, 4);
    assert_int_equal(net_propose(net, 1, "x"), 0);
    assert_false(net_applied_has(net, 1, "x"));
    net_heal(net);
    net_isolate(net, 3);
    net_tick(net, 1, 2);
    assert_true(net_applied_has(net, 1, "x"));
    assert_true(net_applied_has(net, 4, "x"));
    net_destroy(net);
}

/* Raft thesis 4.1: removing a voter; the remaining two then commit alone. */
static void test_4_1_remove_voter_single_step(void **state)
{
    struct net *net = group(3, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 3);
    struct craft_conf_state cs;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    cs = *conf_of(net, 1);
    assert_int_equal(cs.n_voters, 2);
    assert_false(craft_conf_state_contains(&cs, 3));
    net_stop(net, 3);
    assert_int_equal(net_propose(net, 1, "two"), 0);
    assert_true(net_applied_has(net, 2, "two"));
    net_destroy(net);
}

/* Raft thesis 4.1: one membership change at a time: a second proposal while
 * the first is not applied is refused. */
static void test_4_1_one_change_at_a_time(void **state)
{
    struct net *net = group(5, NULL);
    struct craft_conf_change add4 = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 4);
    struct craft_conf_change add5 = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 5);

    (void)state;
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 1), &add4), 0);
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 1), &add5), CRAFT_ECONF_PENDING);
    net_stabilize(net);
    assert_int_equal(net_propose_cc(net, 1, &add5), 0);
    assert_int_equal(conf_of(net, 1)->n_voters, 5);
    net_destroy(net);
}

/* Raft thesis 4.1 (etcd raft's pendingConfIndex): a new leader's log may end
 * with an unapplied membership change it cannot tell apart, so it proposes no
 * change until everything in its log when it was elected is applied. */
static void test_4_1_new_leader_waits_before_changing_membership(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 3);

    (void)state;
    net_elect(net, 1);
    net_cut_one_way(net, 2, 1);
    net_cut_one_way(net, 3, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0); /* index 2 on all, committed nowhere */
    net_heal(net);
    assert_int_equal(craft_raft_campaign(net_raft(net, 2)), 0);
    net_ready(net, 2);
    net_deliver(net); /* vote requests */
    net_ready(net, 1);
    net_ready(net, 3);
    net_deliver(net); /* votes */
    assert_int_equal(craft_raft_role(net_raft(net, 2)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 2), &cc), CRAFT_ECONF_PENDING);
    net_stabilize(net);
    assert_true(net_applied_has(net, 2, "a"));
    assert_int_equal(net_propose_cc(net, 2, &cc), 0);
    net_destroy(net);
}

/* Raft thesis 4.2.1: a non-voting member receives and applies the log but
 * neither votes, campaigns nor counts toward commitment; it can later be
 * promoted. */
static void test_4_2_1_non_voting_member(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change add = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_NON_VOTING, 4);
    struct craft_conf_change promote = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 4);
    struct craft_status st;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &add), 0);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_tick(net, 1, 2);
    assert_true(net_applied_has(net, 4, "a"));
    assert_int_equal(craft_raft_role(net_raft(net, 4)), CRAFT_ROLE_NON_VOTING);
    assert_true(craft_conf_state_is_learner(conf_of(net, 1), 4));
    /* Not counted: 1 + 4 is no majority of {1, 2, 3}. */
    net_isolate(net, 2);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "b"), 0);
    net_tick(net, 1, 2);
    assert_false(net_applied_has(net, 1, "b"));
    net_heal(net);
    net_tick(net, 1, 2);
    assert_true(net_applied_has(net, 4, "b"));
    /* Never campaigns, even cut off for long. */
    net_isolate(net, 4);
    net_tick(net, 4, 100);
    net_status(net, 4, &st);
    assert_int_equal(st.role, CRAFT_ROLE_NON_VOTING);
    assert_int_equal(st.stats.elections, 0);
    assert_int_equal(st.term, 1);
    net_heal(net);
    /* Promotion. */
    assert_int_equal(net_propose_cc(net, 1, &promote), 0);
    net_tick(net, 1, 2);
    assert_int_equal(craft_raft_role(net_raft(net, 4)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(conf_of(net, 4)->n_voters, 4);
    net_destroy(net);
}

/* Raft thesis 4.2.1: a non-voting member's vote does not count. (It may
 * answer a vote request, as etcd raft's learners do, in case it was promoted
 * without knowing yet; the candidate only counts voters.) */
static void test_4_2_1_non_voting_member_vote_does_not_count(void **state)
{
    struct craft_conf_state boot = net_voters(2);
    struct net *net;

    (void)state;
    boot.learners[boot.n_learners++] = 3;
    net = net_create(3, &boot, NULL);
    net_cut(net, 1, 2);
    assert_int_equal(craft_raft_campaign(net_raft(net, 1)), 0);
    net_stabilize(net);
    assert_int_equal(net->delivered[CRAFT_MSG_VOTE], 0); /* not even asked */
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_CANDIDATE);
    net_heal(net);
    assert_int_equal(craft_raft_campaign(net_raft(net, 1)), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Raft thesis 4.1: demoting a voter to a non-voting member. */
static void test_4_1_demote_voter(void **state)
{
    struct net *net = group(3, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_NON_VOTING, 3);

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 1);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_NON_VOTING);
    assert_int_equal(conf_of(net, 1)->n_voters, 2);
    assert_true(craft_conf_state_is_learner(conf_of(net, 3), 3));
    net_destroy(net);
}

/* Raft thesis 4.2.2: a leader removed from the group steps down once the
 * change is applied; the others elect a new leader. */
static void test_4_2_2_removed_leader_steps_down(void **state)
{
    struct net *net = group(3, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 1);
    uint64_t leader;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 1);
    assert_int_not_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_false(craft_conf_state_contains(conf_of(net, 2), 1));
    assert_false(craft_conf_state_contains(conf_of(net, 3), 1));
    net_stop(net, 1);
    net_tick_all(net, 40);
    leader = net_leader(net);
    assert_true(leader == 2 || leader == 3);
    assert_int_equal(net_propose(net, leader, "after"), 0);
    assert_true(net_applied_has(net, 2, "after"));
    assert_true(net_applied_has(net, 3, "after"));
    net_destroy(net);
}

/* Raft thesis 4.3: several changes at once go through a joint configuration,
 * left automatically once it commits. */
static void test_4_3_joint_consensus_auto_leave(void **state)
{
    struct net *net = group(5, NULL);
    struct craft_conf_change cc;
    struct craft_conf_state cs;
    uint64_t id;

    (void)state;
    memset(&cc, 0, sizeof(cc));
    cc.transition = CRAFT_TRANSITION_AUTO;
    cc.n_changes = 3;
    cc.changes[0].type = CRAFT_CC_ADD_VOTER;
    cc.changes[0].node_id = 4;
    cc.changes[1].type = CRAFT_CC_ADD_VOTER;
    cc.changes[1].node_id = 5;
    cc.changes[2].type = CRAFT_CC_REMOVE_NODE;
    cc.changes[2].node_id = 3;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 2);
    for (id = 1; id <= 5; id++) {
        if (id == 3) {
            continue;
        }
        cs = *conf_of(net, id);
        assert_false(craft_conf_state_is_joint(&cs));
        assert_int_equal(cs.n_voters, 4);
        assert_false(craft_conf_state_contains(&cs, 3));
        assert_true(craft_conf_state_is_voter(&cs, 5));
    }
    /* The leave entry followed the joint entry in the log. */
    assert_true(net_applied_index(net, 1) >= 3);
    net_stop(net, 3);
    net_isolate(net, 2);
    assert_int_equal(net_propose(net, 1, "new-majority"), 0); /* 1, 4, 5 of 4 */
    assert_true(net_applied_has(net, 5, "new-majority"));
    net_destroy(net);
}

/* Raft thesis 4.3: while joint, decisions need a majority of both the old
 * and the new configuration. */
static void test_4_3_joint_needs_both_majorities(void **state)
{
    struct net *net = group(5, NULL);
    struct craft_conf_change cc;
    struct craft_conf_state cs;

    (void)state;
    memset(&cc, 0, sizeof(cc));
    cc.transition = CRAFT_TRANSITION_JOINT_EXPLICIT;
    cc.n_changes = 3;
    cc.changes[0].type = CRAFT_CC_ADD_VOTER;
    cc.changes[0].node_id = 4;
    cc.changes[1].type = CRAFT_CC_ADD_VOTER;
    cc.changes[1].node_id = 5;
    cc.changes[2].type = CRAFT_CC_REMOVE_NODE;
    cc.changes[2].node_id = 3;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 2);
    cs = *conf_of(net, 1);
    assert_true(craft_conf_state_is_joint(&cs));
    assert_true(craft_conf_state_is_voter(&cs, 3)); /* still an outgoing voter */
    /* {1, 4, 5} is a majority of the new {1, 2, 4, 5} but not of the old
     * {1, 2, 3}. */
    net_isolate(net, 2);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "joint"), 0);
    net_tick(net, 1, 2);
    assert_false(net_applied_has(net, 1, "joint"));
    /* With 3 back, the old majority {1, 3} is there too. */
    net_heal(net);
    net_isolate(net, 2);
    net_tick(net, 1, 2);
    assert_true(net_applied_has(net, 1, "joint"));
    net_destroy(net);
}

/* Raft thesis 4.3: an explicit joint transition stays joint until an empty
 * change is proposed to leave it. */
static void test_4_3_joint_explicit_leave(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change cc;
    struct craft_conf_change leave;
    struct craft_conf_change again = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 2);

    (void)state;
    memset(&cc, 0, sizeof(cc));
    cc.transition = CRAFT_TRANSITION_JOINT_EXPLICIT;
    cc.n_changes = 2;
    cc.changes[0].type = CRAFT_CC_ADD_VOTER;
    cc.changes[0].node_id = 4;
    cc.changes[1].type = CRAFT_CC_REMOVE_NODE;
    cc.changes[1].node_id = 3;
    memset(&leave, 0, sizeof(leave));
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 3);
    assert_true(craft_conf_state_is_joint(conf_of(net, 1)));
    assert_true(craft_conf_state_is_joint(conf_of(net, 4)));
    /* No other change until the joint configuration is left. */
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 1), &again), CRAFT_ECONF_INVALID);
    assert_int_equal(net_propose_cc(net, 1, &leave), 0);
    net_tick(net, 1, 1);
    assert_false(craft_conf_state_is_joint(conf_of(net, 1)));
    assert_false(craft_conf_state_is_joint(conf_of(net, 2)));
    assert_false(craft_conf_state_contains(conf_of(net, 1), 3));
    /* Leaving twice is invalid. */
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 1), &leave), CRAFT_ECONF_INVALID);
    net_destroy(net);
}

/* Raft thesis 4.3: a single change with an implicit joint transition goes
 * through a joint configuration and leaves it automatically. */
static void test_4_3_joint_implicit_single_change(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_JOINT_IMPLICIT, CRAFT_CC_ADD_VOTER, 4);
    struct net_node *n2;
    bool saw_joint = false;
    size_t i;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 2);
    assert_false(craft_conf_state_is_joint(conf_of(net, 1)));
    assert_int_equal(conf_of(net, 1)->n_voters, 4);
    /* Two membership entries were applied: enter, then leave. */
    n2 = net_node(net, 2);
    for (i = 0; i < n2->n_applied; i++) {
        struct craft_conf_change applied;
        if (n2->applied[i].type != CRAFT_ENTRY_CONF_CHANGE) {
            continue;
        }
        assert_int_equal(
            craft_conf_change_decode(&applied, n2->applied[i].data, n2->applied[i].len), 0);
        if (applied.n_changes == 0) {
            saw_joint = true;
        }
    }
    assert_true(saw_joint);
    net_destroy(net);
}

/* Proposals that cannot apply to the current configuration are refused:
 * removing an unknown node, adding a voter twice, leaving a joint
 * configuration that is not there, changing two voters in one step. */
static void test_4_1_invalid_changes_are_refused(void **state)
{
    struct net *net = group(3, NULL);
    struct craft_conf_change cc;
    struct craft_raft *r = net_raft(net, 1);

    (void)state;
    cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 9);
    assert_int_equal(craft_raft_propose_conf_change(r, &cc), CRAFT_ECONF_INVALID);
    cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 2);
    assert_int_equal(craft_raft_propose_conf_change(r, &cc), CRAFT_ECONF_INVALID);
    cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 0);
    assert_int_equal(craft_raft_propose_conf_change(r, &cc), CRAFT_ECONF_INVALID);
    memset(&cc, 0, sizeof(cc));
    assert_int_equal(craft_raft_propose_conf_change(r, &cc), CRAFT_ECONF_INVALID);
    cc = net_cc1(7, CRAFT_CC_ADD_VOTER, 4); /* unknown transition */
    assert_int_equal(craft_raft_propose_conf_change(r, &cc), CRAFT_ECONF_INVALID);
    cc = net_cc1(CRAFT_TRANSITION_AUTO, 9, 4); /* unknown change type */
    assert_int_equal(craft_raft_propose_conf_change(r, &cc), CRAFT_ECONF_INVALID);
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 2), &cc), CRAFT_ENOTLEADER);
    /* Nothing was appended. */
    assert_int_equal(craft_memstore_last_index(net_node(net, 1)->store), 1);
    net_destroy(net);
}

/* The core re-applies committed membership changes after a restart: the
 * storage's membership is the bootstrap one, the log holds the rest. */
static void test_4_1_membership_recovered_from_log_on_restart(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_VOTER, 4);

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 1);
    net_restart(net, 2);
    net_stabilize(net);
    assert_int_equal(conf_of(net, 2)->n_voters, 4);
    assert_true(commit_of(net, 2) >= 2);
    net_destroy(net);
}

/* Raft thesis 4.2.2: a leader demoted to a non-voting member steps down and
 * keeps following as one. */
static void test_4_2_2_demoted_leader_steps_down(void **state)
{
    struct net *net = group(3, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_NON_VOTING, 1);
    uint64_t leader;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 1);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_NON_VOTING);
    net_tick_all(net, 40);
    leader = net_leader(net);
    assert_true(leader == 2 || leader == 3);
    assert_int_equal(net_propose(net, leader, "after"), 0);
    assert_true(net_applied_has(net, 1, "after"));
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_NON_VOTING);
    net_destroy(net);
}

/* Raft thesis 4.2.2: a removed server does not disrupt the group: it never
 * campaigns once it knows it was removed. */
static void test_4_2_2_removed_follower_does_not_campaign(void **state)
{
    struct net *net = group(3, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 3);
    struct craft_status st;

    (void)state;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 1);
    assert_false(craft_conf_state_contains(conf_of(net, 3), 3));
    net_tick_all(net, 100);
    net_status(net, 3, &st);
    assert_int_equal(st.stats.elections, 0);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Raft thesis 4.3: a leader that is only in the outgoing half of a joint
 * configuration keeps leading until the joint configuration is left, then
 * steps down. */
static void test_4_3_leader_removed_through_joint_consensus(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change cc;
    uint64_t leader, id;

    (void)state;
    memset(&cc, 0, sizeof(cc));
    cc.transition = CRAFT_TRANSITION_AUTO;
    cc.n_changes = 2;
    cc.changes[0].type = CRAFT_CC_ADD_VOTER;
    cc.changes[0].node_id = 4;
    cc.changes[1].type = CRAFT_CC_REMOVE_NODE;
    cc.changes[1].node_id = 1;
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 2);
    for (id = 2; id <= 4; id++) {
        assert_false(craft_conf_state_is_joint(conf_of(net, id)));
        assert_false(craft_conf_state_contains(conf_of(net, id), 1));
    }
    assert_int_not_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_stop(net, 1);
    net_tick_all(net, 40);
    leader = net_leader(net);
    assert_true(leader >= 2 && leader <= 4);
    assert_int_equal(net_propose(net, leader, "after"), 0);
    assert_true(net_applied_has(net, 4, "after"));
    net_destroy(net);
}

/* A node that missed its own addition learns its membership from the
 * snapshot it is sent. */
static void test_4_2_1_membership_from_snapshot(void **state)
{
    struct net *net = group(4, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_NON_VOTING, 4);
    struct craft_status st;
    struct craft_memstore *ms = net_node(net, 1)->store;

    (void)state;
    net_isolate(net, 4);
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_status(net, 1, &st);
    assert_int_equal(craft_memstore_create_snapshot(ms, st.applied, &st.conf), 0);
    assert_int_equal(craft_memstore_compact(ms, st.applied), 0);
    net_heal(net);
    net_tick(net, 1, 3);
    assert_int_equal(net_node(net, 4)->snapshot_index, st.applied);
    net_status(net, 4, &st);
    assert_int_equal(st.role, CRAFT_ROLE_NON_VOTING);
    assert_true(craft_conf_state_is_learner(&st.conf, 4));
    assert_int_equal(net_propose(net, 1, "b"), 0);
    assert_true(net_applied_has(net, 4, "b"));
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_4_1_add_voter_single_step),
        cmocka_unit_test(test_4_1_remove_voter_single_step),
        cmocka_unit_test(test_4_1_one_change_at_a_time),
        cmocka_unit_test(test_4_1_new_leader_waits_before_changing_membership),
        cmocka_unit_test(test_4_2_1_non_voting_member),
        cmocka_unit_test(test_4_2_1_non_voting_member_vote_does_not_count),
        cmocka_unit_test(test_4_1_demote_voter),
        cmocka_unit_test(test_4_2_2_removed_leader_steps_down),
        cmocka_unit_test(test_4_3_joint_consensus_auto_leave),
        cmocka_unit_test(test_4_3_joint_needs_both_majorities),
        cmocka_unit_test(test_4_3_joint_explicit_leave),
        cmocka_unit_test(test_4_3_joint_implicit_single_change),
        cmocka_unit_test(test_4_1_invalid_changes_are_refused),
        cmocka_unit_test(test_4_1_membership_recovered_from_log_on_restart),
        cmocka_unit_test(test_4_2_2_demoted_leader_steps_down),
        cmocka_unit_test(test_4_2_2_removed_follower_does_not_campaign),
        cmocka_unit_test(test_4_3_leader_removed_through_joint_consensus),
        cmocka_unit_test(test_4_2_1_membership_from_snapshot),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
