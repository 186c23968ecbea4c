/* Scenario tests for linearizable reads: ReadIndex (Raft thesis 6.4) and lease
 * reads (Raft thesis 6.4.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

/* Raft thesis 6.4: the leader answers a read with its commit index once a
 * heartbeat round sent after the read has been acknowledged by a quorum. */
static void test_6_4_read_index_confirmed_by_heartbeat_quorum(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct net_node *n1;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    n1 = net_node(net, 1);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 42), 0);
    net_ready(net, 1);
    assert_int_equal(n1->n_reads, 0); /* not before the round is acknowledged */
    assert_int_equal(net_queued(net, CRAFT_MSG_HEARTBEAT, 1, 0), 2);
    net_stabilize(net);
    assert_int_equal(n1->n_reads, 1);
    assert_int_equal(n1->reads[0].context, 42);
    assert_int_equal(n1->reads[0].index, 2);
    net_destroy(net);
}

/* Raft thesis 6.4: one acknowledgement from a majority is enough; the leader
 * does not wait for every follower. */
static void test_6_4_read_index_needs_only_a_majority(void **state)
{
    struct net *net = net_create(5, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    net_cut(net, 1, 4);
    net_cut(net, 1, 5);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 7), 0);
    net_stabilize(net);
    assert_int_equal(net_node(net, 1)->n_reads, 1);
    assert_int_equal(net_node(net, 1)->reads[0].context, 7);
    net_destroy(net);
}

/* Raft thesis 6.4: a leader cut off from the majority (possibly deposed
 * already) never answers a read: it could return a stale value. */
static void test_6_4_deposed_leader_does_not_answer_reads(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 1);
    net_elect(net, 2);
    assert_int_equal(net_propose(net, 2, "newer"), 0);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 9), 0);
    net_stabilize(net);
    net_tick(net, 1, 3);
    assert_int_equal(net_node(net, 1)->n_reads, 0);
    net_destroy(net);
}

/* Raft thesis 6.4: a new leader only knows its commit index is current once
 * an entry of its own term has committed; reads wait until then. */
static void test_6_4_read_waits_for_commit_in_current_term(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct net_node *n1;

    (void)state;
    net_drop_type(net, CRAFT_MSG_APPEND_RESP, true);
    assert_int_equal(craft_raft_campaign(net_raft(net, 1)), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    n1 = net_node(net, 1);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 5), 0);
    net_stabilize(net);
    net_tick(net, 1, 1);
    assert_int_equal(n1->n_reads, 0); /* the no-op is not committed */
    net_drop_type(net, CRAFT_MSG_APPEND_RESP, false);
    net_tick(net, 1, 2);
    assert_int_equal(n1->n_reads, 1);
    assert_int_equal(n1->reads[0].context, 5);
    assert_int_equal(n1->reads[0].index, 1);
    net_destroy(net);
}

/* Raft thesis 6.4: a follower asks the leader for the read index; the answer
 * comes back to the follower as a read state. */
static void test_6_4_follower_read_is_forwarded(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct net_node *n2;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(net_propose(net, 1, "b"), 0);
    assert_int_equal(craft_raft_read_index(net_raft(net, 2), 77), 0);
    net_stabilize(net);
    n2 = net_node(net, 2);
    assert_int_equal(n2->n_reads, 1);
    assert_int_equal(n2->reads[0].context, 77);
    assert_int_equal(n2->reads[0].index, 3);
    assert_int_equal(net_node(net, 1)->n_reads, 0);
    net_destroy(net);
}

/* A node that knows no leader cannot serve a read. */
static void test_6_4_read_without_leader_is_dropped(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    assert_int_equal(craft_raft_read_index(net_raft(net, 2), 1), CRAFT_EDROPPED);
    net_destroy(net);
}

/* Raft thesis 6.4: a group of one voter answers reads at once. */
static void test_6_4_single_voter_reads_at_once(void **state)
{
    struct net *net = net_create(1, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 3), 0);
    net_ready(net, 1);
    assert_int_equal(net_node(net, 1)->n_reads, 1);
    assert_int_equal(net_node(net, 1)->reads[0].index, 2);
    net_destroy(net);
}

/* Raft thesis 6.4 (batching): reads issued together share one heartbeat
 * round and are all answered. */
static void test_6_4_reads_share_one_heartbeat_round(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct net_node *n1;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 1), 0);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 2), 0);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 3), 0);
    net_ready(net, 1);
    assert_int_equal(net_queued(net, CRAFT_MSG_HEARTBEAT, 1, 0), 2);
    net_stabilize(net);
    n1 = net_node(net, 1);
    assert_int_equal(n1->n_reads, 3);
    assert_int_equal(n1->reads[0].context, 1);
    assert_int_equal(n1->reads[1].context, 2);
    assert_int_equal(n1->reads[2].context, 3);
    net_destroy(net);
}

/* Raft thesis 6.4: an acknowledgement of an older round does not confirm a
 * read registered after it. */
static void test_6_4_old_heartbeat_ack_does_not_confirm_newer_read(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message ack;
    struct net_node *n1;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 1), 0);
    net_stabilize(net); /* round 1 acknowledged */
    n1 = net_node(net, 1);
    assert_int_equal(n1->n_reads, 1);
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 2), 0);
    net_ready(net, 1);
    net_clear_queue(net); /* round 2 is lost */
    memset(&ack, 0, sizeof(ack));
    ack.type = CRAFT_MSG_HEARTBEAT_RESP;
    ack.from = 2;
    ack.to = 1;
    ack.term = 1;
    ack.context = 1; /* a late ack of round 1 */
    net_step(net, 1, &ack);
    assert_int_equal(n1->n_reads, 1);
    net_clear_queue(net);
    net_tick(net, 1, 1); /* the next heartbeat carries round 2 */
    assert_int_equal(n1->n_reads, 2);
    assert_int_equal(n1->reads[1].context, 2);
    net_destroy(net);
}

/* Raft thesis 6.4.1: with a lease (which needs CheckQuorum) the leader
 * answers at once, without a heartbeat round. */
static void test_6_4_1_lease_read_answers_without_heartbeat_round(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct net_node *n1;

    (void)state;
    net_default_config(&cfg);
    cfg.check_quorum = true;
    cfg.read_only_option = CRAFT_READ_ONLY_LEASE;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_isolate(net, 1); /* no acknowledgement can arrive */
    assert_int_equal(craft_raft_read_index(net_raft(net, 1), 11), 0);
    net_ready(net, 1);
    n1 = net_node(net, 1);
    assert_int_equal(n1->n_reads, 1);
    assert_int_equal(n1->reads[0].index, 2);
    assert_int_equal(net_queued(net, CRAFT_MSG_HEARTBEAT, 1, 0), 0);
    net_destroy(net);
}

/* Raft thesis 6.4.1: lease reads are only safe with CheckQuorum; a config
 * asking for them without it is refused. */
static void test_6_4_1_lease_reads_need_check_quorum(void **state)
{
    struct craft_memstore *ms;
    struct craft_config cfg;
    struct craft_raft *r = NULL;
    const char *why = NULL;

    (void)state;
    assert_int_equal(craft_memstore_create(&ms), 0);
    net_default_config(&cfg);
    cfg.id = 1;
    cfg.storage = craft_memstore_storage(ms);
    cfg.check_quorum = false;
    cfg.read_only_option = CRAFT_READ_ONLY_LEASE;
    assert_int_equal(craft_raft_create(&cfg, &r, &why), CRAFT_EINVAL);
    assert_null(r);
    assert_non_null(why);
    cfg.check_quorum = true;
    assert_int_equal(craft_raft_create(&cfg, &r, &why), 0);
    craft_raft_destroy(r);
    craft_memstore_destroy(ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_6_4_read_index_confirmed_by_heartbeat_quorum),
        cmocka_unit_test(test_6_4_read_index_needs_only_a_majority),
        cmocka_unit_test(test_6_4_deposed_leader_does_not_answer_reads),
        cmocka_unit_test(test_6_4_read_waits_for_commit_in_current_term),
        cmocka_unit_test(test_6_4_follower_read_is_forwarded),
        cmocka_unit_test(test_6_4_read_without_leader_is_dropped),
        cmocka_unit_test(test_6_4_single_voter_reads_at_once),
        cmocka_unit_test(test_6_4_reads_share_one_heartbeat_round),
        cmocka_unit_test(test_6_4_old_heartbeat_ack_does_not_confirm_newer_read),
        cmocka_unit_test(test_6_4_1_lease_read_answers_without_heartbeat_round),
        cmocka_unit_test(test_6_4_1_lease_reads_need_check_quorum),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
