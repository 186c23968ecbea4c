/* Scenario tests for leader election: Raft paper 5.1 (terms), 5.2 (leader
 * election), 5.4.1 (election restriction), Raft thesis 9.6 (PreVote), the
 * CheckQuorum leader lease (thesis 6.4.1 / 4.2.3) and etcd#7280 (no campaign
 * with an unapplied committed membership change). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

static struct craft_message vote_msg(uint32_t type, uint64_t from, uint64_t to, uint64_t term,
                                     uint64_t last_index, uint64_t last_term)
{
    struct craft_message m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = from;
    m.to = to;
    m.term = term;
    m.index = last_index;
    m.log_term = last_term;
    return m;
}

/* Raft paper 5.2: a group of one voter elects itself at once and commits its
 * no-op. */
static void test_5_2_single_voter_elects_itself(void **state)
{
    struct net *net = net_create(1, NULL, NULL);
    struct craft_status st;

    (void)state;
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_FOLLOWER);
    net_elect(net, 1);
    net_status(net, 1, &st);
    assert_int_equal(st.term, 1);
    assert_int_equal(st.leader, 1);
    assert_int_equal(st.commit, 1);
    assert_int_equal(net_applied_index(net, 1), 1);
    assert_int_equal(net_propose(net, 1, "x"), 0);
    assert_true(net_applied_has(net, 1, "x"));
    net_destroy(net);
}

/* Raft paper 5.2: a single voter also elects itself when its election timer
 * fires. */
static void test_5_2_single_voter_elects_itself_on_timeout(void **state)
{
    struct net *net = net_create(1, NULL, NULL);

    (void)state;
    net_tick_all(net, 20);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Raft paper 5.2: a candidate that wins a majority becomes leader; the others
 * record their vote durably and follow it in the new term. */
static void test_5_2_candidate_with_majority_becomes_leader(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_hard_state hs;
    uint64_t id;

    (void)state;
    net_elect(net, 1);
    for (id = 1; id <= 3; id++) {
        assert_int_equal(craft_raft_term(net_raft(net, id)), 1);
        assert_int_equal(craft_raft_leader(net_raft(net, id)), 1);
        craft_memstore_hard_state(net_node(net, id)->store, &hs);
        assert_int_equal(hs.term, 1);
        assert_int_equal(hs.vote, 1);
    }
    assert_int_equal(craft_raft_role(net_raft(net, 2)), CRAFT_ROLE_FOLLOWER);
    net_destroy(net);
}

/* Raft paper 5.2: followers that hear nothing start an election after the
 * election timeout; exactly one leader comes out. */
static void test_5_2_election_timeout_elects_one_leader(void **state)
{
    struct net *net = net_create(5, NULL, NULL);
    uint64_t leaders = 0, id;

    (void)state;
    net_tick_all(net, 9);
    assert_int_equal(net_leader(net), 0); /* not before the timeout */
    net_tick_all(net, 30);
    for (id = 1; id <= 5; id++) {
        leaders += craft_raft_role(net_raft(net, id)) == CRAFT_ROLE_LEADER;
    }
    assert_int_equal(leaders, 1);
    for (id = 1; id <= 5; id++) {
        assert_int_equal(craft_raft_leader(net_raft(net, id)), net_leader(net));
    }
    net_destroy(net);
}

/* Raft paper 5.2: each server votes for at most one candidate per term, first
 * come first served; a repeated request from the same candidate is granted
 * again. */
static void test_5_2_one_vote_per_term(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    const struct craft_message *resp;

    (void)state;
    m = vote_msg(CRAFT_MSG_VOTE, 1, 2, 1, 0, 0);
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 1, 0);
    assert_non_null(resp);
    assert_false(resp->reject);
    m = vote_msg(CRAFT_MSG_VOTE, 3, 2, 1, 0, 0);
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 3, 0);
    assert_non_null(resp);
    assert_true(resp->reject);
    m = vote_msg(CRAFT_MSG_VOTE, 1, 2, 1, 0, 0);
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 1, 1);
    assert_non_null(resp);
    assert_false(resp->reject);
    net_destroy(net);
}

/* Raft paper 5.2: the vote survives a restart (it is hard state). */
static void test_5_2_vote_survives_restart(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    const struct craft_message *resp;

    (void)state;
    m = vote_msg(CRAFT_MSG_VOTE, 1, 2, 1, 0, 0);
    net_step(net, 2, &m);
    net_clear_queue(net);
    net_restart(net, 2);
    assert_int_equal(craft_raft_term(net_raft(net, 2)), 1);
    m = vote_msg(CRAFT_MSG_VOTE, 3, 2, 1, 0, 0);
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 3, 0);
    assert_non_null(resp);
    assert_true(resp->reject);
    net_destroy(net);
}

/* Raft paper 5.4.1: a voter denies its vote to a candidate whose log is less
 * up to date: a lower last term loses even with a longer log; with equal last
 * terms the longer log wins. */
static void test_5_4_1_election_restriction(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    const struct craft_message *resp;

    (void)state;
    net_elect(net, 1);                             /* term 1, no-op at 1 */
    assert_int_equal(net_propose(net, 1, "a"), 0); /* index 2 */
    net_clear_queue(net);
    /* Node 2's log ends at (2, 1). */
    m = vote_msg(CRAFT_MSG_VOTE, 3, 2, 5, 9, 0); /* longer but older */
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 3, 0);
    assert_non_null(resp);
    assert_true(resp->reject);
    assert_int_equal(craft_raft_term(net_raft(net, 2)), 5); /* it still learned the term */
    m = vote_msg(CRAFT_MSG_VOTE, 3, 2, 5, 1, 1);            /* same term, shorter */
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 3, 1);
    assert_non_null(resp);
    assert_true(resp->reject);
    m = vote_msg(CRAFT_MSG_VOTE, 3, 2, 5, 2, 1); /* same term, same length */
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 2, 3, 2);
    assert_non_null(resp);
    assert_false(resp->reject);
    net_destroy(net);
}

/* Raft paper 5.4.1 in a whole election: a node that missed entries cannot be
 * elected; it gives up once rejections reach a quorum. */
static void test_5_2_candidate_gives_up_on_quorum_of_rejections(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_heal(net);
    net_clear_queue(net);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_CANDIDATE);
    /* Deliver the vote requests, then the first answer only. */
    net_ready(net, 3);
    net_deliver(net);
    net_ready(net, 1);
    net_ready(net, 2);
    assert_int_equal(net_queued(net, CRAFT_MSG_VOTE_RESP, 0, 3), 2);
    net_status(net, 3, &st);
    assert_int_equal(st.term, 2);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 2);
    assert_int_not_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    /* Some up-to-date node wins the next election. */
    net_tick_all(net, 40);
    assert_true(net_leader(net) == 1 || net_leader(net) == 2);
    net_destroy(net);
}

/* Raft paper 5.2: a candidate that receives AppendEntries from a leader of
 * its term returns to follower. */
static void test_5_2_candidate_steps_down_for_leader_of_same_term(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;

    (void)state;
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0); /* term 1 */
    net_clear_queue(net);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_HEARTBEAT;
    m.from = 1;
    m.to = 3;
    m.term = 1;
    net_step(net, 3, &m);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(craft_raft_leader(net_raft(net, 3)), 1);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 1);
    net_destroy(net);
}

/* Raft paper 5.2: the new leader appends a no-op of its own term and commits
 * it on every node. */
static void test_5_2_new_leader_appends_noop(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    const struct net_applied *a;
    uint64_t id;

    (void)state;
    net_elect(net, 2);
    for (id = 1; id <= 3; id++) {
        a = net_applied_at(net, id, 1);
        assert_non_null(a);
        assert_int_equal(a->term, 1);
        assert_int_equal(a->type, CRAFT_ENTRY_NORMAL);
        assert_int_equal(a->len, 0);
    }
    net_destroy(net);
}

/* Raft paper 5.1: a server that sees a higher term adopts it and, if leader or
 * candidate, reverts to follower. */
static void test_5_1_higher_term_makes_leader_follower(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;

    (void)state;
    net_elect(net, 1);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND_RESP;
    m.from = 2;
    m.to = 1;
    m.term = 7;
    net_step(net, 1, &m);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 7);
    net_destroy(net);
}

/* Raft paper 5.1: a request with a stale term is rejected (dropped and
 * counted) and changes nothing. */
static void test_5_1_stale_term_is_ignored(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_status before, after;

    (void)state;
    net_elect(net, 1);
    net_elect(net, 2); /* term 2 */
    net_status(net, 3, &before);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 1;
    m.to = 3;
    m.term = 1;
    m.commit = 5;
    net_step(net, 3, &m);
    net_status(net, 3, &after);
    assert_int_equal(after.stats.dropped_stale_term, before.stats.dropped_stale_term + 1);
    assert_int_equal(after.leader, 2);
    assert_int_equal(after.term, 2);
    assert_int_equal(after.commit, before.commit);
    net_destroy(net);
}

/* Raft thesis 9.6: a node cut off from the others keeps campaigning in
 * pre-elections without raising its term, and does not disrupt the leader
 * when it comes back. */
static void test_9_6_prevote_partitioned_node_does_not_disrupt(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.pre_vote = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1); /* pre-vote did not bump it */
    net_isolate(net, 3);
    net_tick(net, 3, 100);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 1);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_PRE_CANDIDATE);
    net_heal(net);
    net_tick_all(net, 3);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1);
    assert_int_equal(craft_raft_leader(net_raft(net, 3)), 1);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_FOLLOWER);
    net_destroy(net);
}

/* Raft thesis 9.6: a pre-vote is refused while the voter's log is more up to
 * date, and answering one changes neither the voter's term nor its vote. */
static void test_9_6_prevote_changes_no_state(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_message m;
    const struct craft_message *resp;
    struct craft_hard_state hs;

    (void)state;
    net_default_config(&cfg);
    cfg.pre_vote = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0); /* log ends (2, 1) */
    net_clear_queue(net);
    m = vote_msg(CRAFT_MSG_PRE_VOTE, 3, 2, 2, 1, 1);
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_PRE_VOTE_RESP, 2, 3, 0);
    assert_non_null(resp);
    assert_true(resp->reject);
    m = vote_msg(CRAFT_MSG_PRE_VOTE, 3, 2, 2, 2, 1);
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_PRE_VOTE_RESP, 2, 3, 1);
    assert_non_null(resp);
    assert_false(resp->reject);
    assert_int_equal(resp->term, 2);
    assert_int_equal(craft_raft_term(net_raft(net, 2)), 1);
    craft_memstore_hard_state(net_node(net, 2)->store, &hs);
    assert_int_equal(hs.term, 1);
    assert_int_equal(hs.vote, 1);
    net_destroy(net);
}

/* Raft thesis 9.6: after winning the pre-election a node runs a real
 * election; PreVote does not prevent electing a leader when none exists. */
static void test_9_6_prevote_then_election(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.pre_vote = true;
    cfg.check_quorum = true;
    net = net_create(5, NULL, &cfg);
    net_tick_all(net, 40);
    assert_int_not_equal(net_leader(net), 0);
    assert_int_equal(craft_raft_term(net_raft(net, net_leader(net))), 1);
    net_destroy(net);
}

/* CheckQuorum: a leader that has not heard from a quorum within an election
 * timeout steps down. */
static void test_check_quorum_leader_steps_down_without_quorum(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.check_quorum = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_tick(net, 1, cfg.election_tick); /* the others answer: stays */
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_isolate(net, 1);
    net_tick(net, 1, 2 * cfg.election_tick);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1);
    net_destroy(net);
}

/* CheckQuorum's lease (Raft thesis 4.2.3): a node that heard from its leader
 * within the election timeout ignores vote requests of a higher term. */
static void test_check_quorum_lease_ignores_disruptive_vote(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_hard_state hs;

    (void)state;
    net_default_config(&cfg);
    cfg.check_quorum = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_isolate(net, 3);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 3);
    net_heal(net);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0); /* term 4 */
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1);
    assert_int_equal(craft_raft_term(net_raft(net, 2)), 1);
    craft_memstore_hard_state(net_node(net, 2)->store, &hs);
    assert_int_equal(hs.vote, 1);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_CANDIDATE);
    net_destroy(net);
}

/* CheckQuorum (etcd's TestFreeStuckCandidateWithCheckQuorum): a stale leader
 * that hears a higher term in an answer to its heartbeat steps down, so a
 * stuck candidate can eventually rejoin. */
static void test_check_quorum_stuck_candidate_is_freed(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.check_quorum = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_isolate(net, 3);
    net_tick(net, 3, 4 * cfg.election_tick);
    assert_true(craft_raft_term(net_raft(net, 3)) > 1);
    net_heal(net);
    net_tick_all(net, 1); /* a heartbeat to 3 is answered with its higher term */
    assert_int_not_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_tick_all(net, 6 * cfg.election_tick);
    assert_int_not_equal(net_leader(net), 0);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), craft_raft_term(net_raft(net, 3)));
    net_destroy(net);
}

/* etcd#7280: a node whose committed log holds a membership change it has not
 * applied yet must not campaign. */
static void test_etcd7280_no_campaign_with_unapplied_conf_change(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_NON_VOTING, 4);
    struct craft_status st;
    uint64_t elections;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 1), &cc), 0);
    net_ready(net, 1); /* appends out */
    net_deliver(net);  /* 2, 3 take them */
    net_ready(net, 2);
    net_ready(net, 3);
    net_deliver(net);  /* acks: the leader commits */
    net_ready(net, 1); /* commit index out */
    net_deliver(net);
    net_status(net, 2, &st);
    assert_true(st.commit > st.applied);
    elections = st.stats.elections;
    assert_int_equal(craft_raft_campaign(net_raft(net, 2)), 0);
    net_status(net, 2, &st);
    assert_int_equal(st.role, CRAFT_ROLE_FOLLOWER);
    assert_int_equal(st.stats.elections, elections);
    assert_int_equal(st.term, 1);
    /* Once applied, it may campaign. */
    net_ready(net, 2);
    assert_int_equal(craft_raft_campaign(net_raft(net, 2)), 0);
    net_status(net, 2, &st);
    assert_int_equal(st.role, CRAFT_ROLE_CANDIDATE);
    assert_int_equal(st.term, 2);
    net_destroy(net);
}

/* Raft thesis 9.6 (etcd's TestNodeWithSmallerTermCanCompleteElection): with
 * PreVote, a node whose term is behind still gets elected once the node with
 * the higher term is gone, because pre-vote rejections carry the term. */
static void test_9_6_prevote_node_with_smaller_term_completes_election(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.pre_vote = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1); /* term 1 */
    net_cut(net, 1, 3);
    net_cut(net, 2, 3);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0); /* stuck pre-candidate */
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_PRE_CANDIDATE);
    net_elect(net, 2); /* term 2, with 1's vote */
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 2);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 1);
    /* 2 crashes; 1 and 3 must elect one of them. */
    net_heal(net);
    net_stop(net, 2);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_campaign(net_raft(net, 1)), 0);
    net_stabilize(net);
    assert_true(craft_raft_role(net_raft(net, 1)) == CRAFT_ROLE_LEADER ||
                craft_raft_role(net_raft(net, 3)) == CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Raft paper 5.2 with PreVote and CheckQuorum: when the leader crashes, the
 * others elect a new one after their leases expire. */
static void test_9_6_leader_crash_with_prevote_and_check_quorum(void **state)
{
    struct craft_config cfg;
    struct net *net;
    uint64_t leader;

    (void)state;
    net_default_config(&cfg);
    cfg.pre_vote = true;
    cfg.check_quorum = true;
    net = net_create(5, NULL, &cfg);
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_tick_all(net, 5);
    net_stop(net, 1);
    net_tick_all(net, 4 * cfg.election_tick);
    leader = net_leader(net);
    assert_true(leader >= 2 && leader <= 5);
    assert_int_equal(craft_raft_term(net_raft(net, leader)), 2);
    assert_int_equal(net_propose(net, leader, "b"), 0);
    assert_true(net_applied_has(net, 5, "a"));
    assert_true(net_applied_has(net, 5, "b"));
    net_destroy(net);
}

#define TIMEOUT_SAMPLES 12

/* Raft paper 5.2: election timeouts are random per node so that split votes
 * are rare. Nodes given the same config seed must still draw unrelated
 * timeouts: no node's sequence may be another's shifted by a few draws (it
 * was, for seeds like 682, and two such nodes split every vote forever). */
static void test_5_2_randomized_timeouts_are_unrelated_across_nodes(void **state)
{
    uint32_t intervals[6][TIMEOUT_SAMPLES];
    struct craft_config cfg;
    uint64_t seed;

    (void)state;
    for (seed = 600; seed <= 760; seed++) {
        struct net *net;
        uint64_t a, b;
        int shift;

        net_default_config(&cfg);
        cfg.seed = seed;
        net = net_create(5, NULL, &cfg);
        for (a = 1; a <= 5; a++) {
            net_isolate(net, a);
        }
        for (a = 1; a <= 5; a++) {
            struct craft_raft *r = net_raft(net, a);
            struct craft_status st;
            uint64_t last = 0;
            uint32_t ticks = 0, k = 0;
            while (k < TIMEOUT_SAMPLES) {
                assert_int_equal(craft_raft_tick(r), 0);
                ticks++;
                craft_raft_status(r, &st);
                if (st.stats.elections != last) {
                    last = st.stats.elections;
                    intervals[a][k++] = ticks;
                    ticks = 0;
                }
                assert_true(ticks <= 2 * cfg.election_tick);
            }
            net_process(net);
            net_clear_queue(net);
        }
        for (a = 1; a <= 5; a++) {
            for (b = 1; b <= 5; b++) {
                for (shift = 0; shift <= 3; shift++) {
                    int i, same = 1;
                    if (a == b && shift == 0) {
                        continue;
                    }
                    for (i = 0; i + shift < TIMEOUT_SAMPLES; i++) {
                        same &= intervals[a][i + shift] == intervals[b][i];
                    }
                    if (same) {
                        fail_msg("seed %llu: node %llu's timeouts are node %llu's %d draws later",
                                 (unsigned long long)seed, (unsigned long long)a,
                                 (unsigned long long)b, shift);
                    }
                }
            }
        }
        net_destroy(net);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_5_2_single_voter_elects_itself),
        cmocka_unit_test(test_5_2_single_voter_elects_itself_on_timeout),
        cmocka_unit_test(test_5_2_candidate_with_majority_becomes_leader),
        cmocka_unit_test(test_5_2_election_timeout_elects_one_leader),
        cmocka_unit_test(test_5_2_one_vote_per_term),
        cmocka_unit_test(test_5_2_vote_survives_restart),
        cmocka_unit_test(test_5_4_1_election_restriction),
        cmocka_unit_test(test_5_2_candidate_gives_up_on_quorum_of_rejections),
        cmocka_unit_test(test_5_2_candidate_steps_down_for_leader_of_same_term),
        cmocka_unit_test(test_5_2_new_leader_appends_noop),
        cmocka_unit_test(test_5_1_higher_term_makes_leader_follower),
        cmocka_unit_test(test_5_1_stale_term_is_ignored),
        cmocka_unit_test(test_9_6_prevote_partitioned_node_does_not_disrupt),
        cmocka_unit_test(test_9_6_prevote_changes_no_state),
        cmocka_unit_test(test_9_6_prevote_then_election),
        cmocka_unit_test(test_check_quorum_leader_steps_down_without_quorum),
        cmocka_unit_test(test_check_quorum_lease_ignores_disruptive_vote),
        cmocka_unit_test(test_check_quorum_stuck_candidate_is_freed),
        cmocka_unit_test(test_etcd7280_no_campaign_with_unapplied_conf_change),
        cmocka_unit_test(test_9_6_prevote_node_with_smaller_term_completes_election),
        cmocka_unit_test(test_9_6_leader_crash_with_prevote_and_check_quorum),
        cmocka_unit_test(test_5_2_randomized_timeouts_are_unrelated_across_nodes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
