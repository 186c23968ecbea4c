/* Scenario tests for the ready cycle (raft.h, docs/architecture.md): what a
 * ready asks to persist and when it must be synced, the leader counting its
 * own entries only once durable (Raft thesis 10.2.1), and steps, ticks and
 * proposals between a ready and its advance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

static uint64_t store_term(struct net *net, uint64_t id, uint64_t index)
{
    const struct craft_storage *s = craft_memstore_storage(net_node(net, id)->store);
    uint64_t t = 0;

    assert_int_equal(s->term(s->data, index, &t), 0);
    return t;
}

static uint64_t commit_of(struct net *net, uint64_t id)
{
    struct craft_status st;

    net_status(net, id, &st);
    return st.commit;
}

/* Raft thesis 10.2.1: the leader may send appends before its own write is
 * durable, but counts itself toward the commit quorum only once it is. */
static void test_10_2_1_leader_counts_itself_only_once_durable(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_raft *r1;
    struct craft_ready rd;
    size_t i;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    r1 = net_raft(net, 1);
    assert_int_equal(craft_raft_propose(r1, "a", 1), 0);
    assert_int_equal(craft_raft_ready(r1, &rd), 0);
    assert_int_equal(rd.n_entries, 1);
    for (i = 0; i < rd.n_messages; i++) {
        net_send(net, &rd.messages[i]); /* sent before the write */
    }
    net_deliver(net);                       /* 2 takes the entry */
    net_ready(net, 2);                      /* 2 persists and acks */
    net_deliver(net);                       /* the ack reaches 1 */
    assert_int_equal(commit_of(net, 1), 1); /* 1 of 3 durable: not yet */
    net_persist(net, 1, &rd);
    assert_int_equal(craft_raft_advance(r1, &rd), 0);
    assert_int_equal(commit_of(net, 1), 2);
    net_stabilize(net);
    assert_true(net_applied_has(net, 2, "a"));
    net_destroy(net);
}

/* must_sync: new entries, a new term or a new vote must be durable before
 * messages go out; a commit index alone need not be. */
static void test_ready_must_sync_rules(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_raft *r2;
    struct craft_message m;
    struct craft_entry e;
    struct craft_ready rd;

    (void)state;
    r2 = net_raft(net, 2);
    /* A vote. */
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_VOTE;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    assert_int_equal(craft_raft_step(r2, &m), 0);
    assert_int_equal(craft_raft_ready(r2, &rd), 0);
    assert_true(rd.must_sync);
    assert_true(rd.has_hard_state);
    assert_int_equal(rd.hard_state.vote, 1);
    net_persist(net, 2, &rd);
    assert_int_equal(craft_raft_advance(r2, &rd), 0);
    /* An entry. */
    memset(&e, 0, sizeof(e));
    e.term = 1;
    e.index = 1;
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.entries = &e;
    m.n_entries = 1;
    assert_int_equal(craft_raft_step(r2, &m), 0);
    assert_int_equal(craft_raft_ready(r2, &rd), 0);
    assert_true(rd.must_sync);
    assert_int_equal(rd.n_entries, 1);
    net_persist(net, 2, &rd);
    assert_int_equal(craft_raft_advance(r2, &rd), 0);
    /* Only the commit index moves. */
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_HEARTBEAT;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.commit = 1;
    assert_int_equal(craft_raft_step(r2, &m), 0);
    assert_int_equal(craft_raft_ready(r2, &rd), 0);
    assert_true(rd.has_hard_state);
    assert_int_equal(rd.hard_state.commit, 1);
    assert_false(rd.must_sync);
    assert_int_equal(rd.n_entries, 0);
    assert_int_equal(rd.n_committed, 1);
    net_persist(net, 2, &rd);
    assert_int_equal(craft_raft_advance(r2, &rd), 0);
    assert_false(craft_raft_has_ready(r2));
    net_destroy(net);
}

/* Proposals and ticks between a ready and its advance are kept and go out
 * with the next ready. */
static void test_ready_proposals_between_ready_and_advance(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_raft *r1;
    struct craft_ready rd;
    size_t i;

    (void)state;
    net_elect(net, 1);
    r1 = net_raft(net, 1);
    assert_int_equal(craft_raft_propose(r1, "first", 5), 0);
    assert_int_equal(craft_raft_ready(r1, &rd), 0);
    assert_int_equal(craft_raft_propose(r1, "second", 6), 0);
    assert_int_equal(craft_raft_tick(r1), 0);
    for (i = 0; i < rd.n_messages; i++) {
        net_send(net, &rd.messages[i]);
    }
    net_persist(net, 1, &rd);
    assert_int_equal(craft_raft_advance(r1, &rd), 0);
    assert_true(craft_raft_has_ready(r1));
    net_stabilize(net);
    net_tick(net, 1, 1);
    assert_true(net_applied_has(net, 3, "first"));
    assert_true(net_applied_has(net, 3, "second"));
    assert_int_equal(net_applied_at(net, 3, 3)->len, 6);
    net_destroy(net);
}

/* A follower whose unstable tail is replaced by a new leader between a ready
 * and its advance persists the replacement with the next ready; the stale
 * write does not count as durable. */
static void test_ready_follower_truncation_between_ready_and_advance(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_raft *r2;
    struct craft_message m;
    struct craft_entry e[3];
    struct craft_ready rd;
    struct craft_status st;
    uint64_t i;

    (void)state;
    r2 = net_raft(net, 2);
    memset(e, 0, sizeof(e));
    for (i = 0; i < 3; i++) {
        e[i].term = 1;
        e[i].index = i + 1;
        e[i].len = 3;
        e[i].data = "old";
    }
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.entries = e;
    m.n_entries = 3;
    assert_int_equal(craft_raft_step(r2, &m), 0);
    assert_int_equal(craft_raft_ready(r2, &rd), 0);
    assert_int_equal(rd.n_entries, 3);
    /* Leader 3 of term 2 replaces index 3 before the write finishes. */
    e[0].term = 2;
    e[0].index = 3;
    e[0].len = 3;
    e[0].data = "new";
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 3;
    m.to = 2;
    m.term = 2;
    m.index = 2;
    m.log_term = 1;
    m.entries = e;
    m.n_entries = 1;
    m.commit = 3;
    assert_int_equal(craft_raft_step(r2, &m), 0);
    net_persist(net, 2, &rd);
    assert_int_equal(craft_raft_advance(r2, &rd), 0);
    assert_int_equal(store_term(net, 2, 3), 1); /* the stale write landed */
    net_clear_queue(net);
    net_ready(net, 2);
    assert_int_equal(store_term(net, 2, 3), 2);
    net_status(net, 2, &st);
    assert_int_equal(st.last_index, 3);
    assert_int_equal(st.commit, 3);
    assert_non_null(net_applied_at(net, 2, 3));
    assert_int_equal(net_applied_at(net, 2, 3)->term, 2);
    assert_memory_equal(net_applied_at(net, 2, 3)->data, "new", 3);
    net_destroy(net);
}

/* A restarted node resumes from what was durable: the hard state, the log,
 * and it re-applies committed entries. */
static void test_ready_restart_reapplies_committed_entries(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_tick(net, 1, 1);
    net_restart(net, 3);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 1);
    net_process(net);
    assert_true(net_applied_has(net, 3, "a"));
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_10_2_1_leader_counts_itself_only_once_durable),
        cmocka_unit_test(test_ready_must_sync_rules),
        cmocka_unit_test(test_ready_proposals_between_ready_and_advance),
        cmocka_unit_test(test_ready_follower_truncation_between_ready_and_advance),
        cmocka_unit_test(test_ready_restart_reapplies_committed_entries),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
