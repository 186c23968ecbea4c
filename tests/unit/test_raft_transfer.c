/* Scenario tests for leadership transfer (Raft thesis 3.10). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

static uint64_t transferee(struct net *net, uint64_t id)
{
    struct craft_status st;

    net_status(net, id, &st);
    return st.lead_transferee;
}

/* Raft thesis 3.10: the leader sends TimeoutNow to an up-to-date transferee,
 * which campaigns at once and wins the next term. */
static void test_3_10_transfer_to_up_to_date_follower(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 2), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 2)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 2)), 2);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(craft_raft_leader(net_raft(net, 1)), 2);
    assert_int_equal(transferee(net, 2), 0);
    net_destroy(net);
}

/* Raft thesis 3.10: a transferee that lags is first brought up to date. */
static void test_3_10_lagging_transferee_catches_up_first(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(net_propose(net, 1, "b"), 0);
    net_heal(net);
    net->sent[CRAFT_MSG_TIMEOUT_NOW] = 0;
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 3), 0);
    net_ready(net, 1);
    assert_int_equal(net_queued(net, CRAFT_MSG_TIMEOUT_NOW, 1, 3), 0); /* not yet */
    net_stabilize(net);
    assert_int_equal(net->sent[CRAFT_MSG_TIMEOUT_NOW], 1);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_LEADER);
    assert_true(net_applied_has(net, 3, "b"));
    net_destroy(net);
}

/* Raft thesis 3.10: while a transfer is in progress the leader refuses new
 * proposals, so that the transferee can catch up. */
static void test_3_10_proposals_refused_during_transfer(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_REMOVE_NODE, 2);

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 3), 0);
    net_stabilize(net);
    assert_int_equal(transferee(net, 1), 3);
    assert_int_equal(net_propose(net, 1, "refused"), CRAFT_ETRANSFER);
    assert_int_equal(craft_raft_propose_conf_change(net_raft(net, 1), &cc), CRAFT_ETRANSFER);
    /* Forwarded proposals are refused too. */
    assert_int_equal(net_propose(net, 2, "forwarded"), 0);
    assert_false(net_applied_has(net, 1, "forwarded"));
    assert_false(net_applied_has(net, 1, "refused"));
    net_destroy(net);
}

/* Raft thesis 3.10: a transfer that does not complete within an election
 * timeout is aborted and the leader takes proposals again. */
static void test_3_10_transfer_aborted_after_election_timeout(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_config cfg;

    (void)state;
    net_default_config(&cfg);
    net_elect(net, 1);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 3), 0);
    net_stabilize(net);
    net_tick(net, 1, cfg.election_tick - 1);
    assert_int_equal(transferee(net, 1), 3);
    net_tick(net, 1, 1);
    assert_int_equal(transferee(net, 1), 0);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(net_propose(net, 1, "b"), 0);
    assert_true(net_applied_has(net, 2, "b"));
    net_destroy(net);
}

/* Raft thesis 3.10 with CheckQuorum and PreVote: TimeoutNow skips the
 * pre-election and its vote request overrides the voters' leader lease. */
static void test_3_10_transfer_overrides_lease_and_prevote(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.check_quorum = true;
    cfg.pre_vote = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_tick_all(net, 2);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 3), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 2);
    net_destroy(net);
}

/* Raft thesis 3.10: a transfer asked of a follower is forwarded to the
 * leader. */
static void test_3_10_transfer_requested_at_follower(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 2), 3), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Only a voter can take over: a transfer to an unknown node or a non-voting
 * member is refused; a transfer to the leader itself changes nothing. */
static void test_3_10_transfer_to_non_voter_refused(void **state)
{
    struct craft_conf_state boot = net_voters(3);
    struct net *net;

    (void)state;
    boot.learners[boot.n_learners++] = 4;
    net = net_create(4, &boot, NULL);
    net_elect(net, 1);
    assert_int_not_equal(craft_raft_transfer_leader(net_raft(net, 1), 4), 0);
    assert_int_not_equal(craft_raft_transfer_leader(net_raft(net, 1), 9), 0);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 1), 0);
    net_stabilize(net);
    assert_int_equal(transferee(net, 1), 0);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1);
    assert_int_equal(net_propose(net, 1, "still"), 0);
    assert_true(net_applied_has(net, 4, "still"));
    net_destroy(net);
}

/* Raft thesis 3.10: a second transfer to another node replaces the first. */
static void test_3_10_new_transfer_replaces_pending_one(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 3), 0);
    net_stabilize(net);
    assert_int_equal(transferee(net, 1), 3);
    assert_int_equal(craft_raft_transfer_leader(net_raft(net, 1), 2), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 2)), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_3_10_transfer_to_up_to_date_follower),
        cmocka_unit_test(test_3_10_lagging_transferee_catches_up_first),
        cmocka_unit_test(test_3_10_proposals_refused_during_transfer),
        cmocka_unit_test(test_3_10_transfer_aborted_after_election_timeout),
        cmocka_unit_test(test_3_10_transfer_overrides_lease_and_prevote),
        cmocka_unit_test(test_3_10_transfer_requested_at_follower),
        cmocka_unit_test(test_3_10_transfer_to_non_voter_refused),
        cmocka_unit_test(test_3_10_new_transfer_replaces_pending_one),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
