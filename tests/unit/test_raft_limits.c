/* Scenario tests for the leader's limits: uncommitted bytes
 * (max_uncommitted_size), committed bytes per ready
 * (max_committed_size_per_ready), the rate limit from members' in-memory log
 * size (max_in_mem_log_size), and quiescence (quiesce_ticks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

/* A leader refuses proposals past max_uncommitted_size bytes of uncommitted
 * entries (CRAFT_EBUSY) and takes them again once entries commit. */
static void test_limit_max_uncommitted_size(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_status st;

    (void)state;
    net_default_config(&cfg);
    cfg.max_uncommitted_size = 25;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_isolate(net, 1);
    assert_int_equal(net_propose(net, 1, "0123456789"), 0);
    assert_int_equal(net_propose(net, 1, "0123456789"), 0);
    assert_int_equal(net_propose(net, 1, "0123456789"), CRAFT_EBUSY);
    assert_int_equal(net_propose(net, 1, "01234"), 0); /* 25 still fits */
    assert_int_equal(net_propose(net, 1, "x"), CRAFT_EBUSY);
    net_status(net, 1, &st);
    assert_int_equal(st.last_index, 4);
    assert_true(st.stats.proposals_dropped >= 2);
    net_heal(net);
    net_tick(net, 1, 2);
    net_status(net, 1, &st);
    assert_int_equal(st.commit, 4);
    assert_int_equal(net_propose(net, 1, "0123456789"), 0);
    net_destroy(net);
}

/* etcd raft's rule: with nothing uncommitted, one proposal always fits, even
 * one larger than the limit. */
static void test_limit_first_proposal_always_fits(void **state)
{
    struct craft_config cfg;
    struct net *net;

    (void)state;
    net_default_config(&cfg);
    cfg.max_uncommitted_size = 4;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "larger than four"), 0);
    assert_true(net_applied_has(net, 2, "larger than four"));
    net_destroy(net);
}

/* A ready hands out at most max_committed_size_per_ready bytes of committed
 * entries (at least one entry), so a lagging node applies in slices. */
static void test_limit_max_committed_size_per_ready(void **state)
{
    struct craft_config cfg;
    struct net *net;
    char buf[16];
    int i;

    (void)state;
    net_default_config(&cfg);
    cfg.max_committed_size_per_ready = 25;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_isolate(net, 3);
    for (i = 0; i < 10; i++) {
        snprintf(buf, sizeof(buf), "entry-%04d", i); /* 10 bytes */
        assert_int_equal(net_propose(net, 1, buf), 0);
    }
    net_heal(net);
    net_tick(net, 1, 2);
    assert_true(net_applied_has(net, 3, "entry-0009"));
    assert_int_equal(net_applied_index(net, 3), 11);
    assert_true(net_node(net, 3)->max_committed_bytes <= 25);
    assert_true(net_node(net, 3)->max_committed_n >= 2); /* slices, not one by one */
    net_destroy(net);
}

static void append_unapplied(struct net *net, uint64_t to, uint64_t after, uint32_t n,
                             uint32_t bytes)
{
    struct craft_entry e[8];
    static const char data[64] = "................................................................";
    struct craft_message m;
    uint32_t i;

    assert_true(n <= 8 && bytes <= sizeof(data));
    for (i = 0; i < n; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].term = 1;
        e[i].index = after + 1 + i;
        e[i].len = bytes;
        e[i].data = data;
    }
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 1;
    m.to = to;
    m.term = 1;
    m.index = after;
    m.log_term = 1;
    m.commit = after;
    m.entries = e;
    m.n_entries = n;
    net_step(net, to, &m);
}

/* Rate limit (dragonboat): a follower reports its in-memory log size to the
 * leader once per election timeout. */
static void test_rate_limit_follower_reports_in_memory_log_size(void **state)
{
    struct craft_config cfg;
    struct net *net;
    const struct craft_message *m;
    uint32_t i;

    (void)state;
    net_default_config(&cfg);
    cfg.max_in_mem_log_size = 100;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_clear_queue(net);
    append_unapplied(net, 2, 1, 4, 50); /* 200 bytes not yet committed */
    net_clear_queue(net);
    for (i = 0; i < cfg.election_tick; i++) {
        assert_int_equal(craft_raft_tick(net_raft(net, 2)), 0);
    }
    net_ready(net, 2);
    m = net_queued_msg(net, CRAFT_MSG_RATE_LIMIT, 2, 1, 0);
    assert_non_null(m);
    assert_int_equal(m->context, 200);
    net_destroy(net);
}

/* Rate limit: a leader told that a member's in-memory log is past
 * max_in_mem_log_size refuses proposals (CRAFT_EBUSY) until a smaller
 * report arrives or the report grows stale. */
static void test_rate_limit_leader_refuses_proposals(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_message m;
    uint32_t ticks = 0;

    (void)state;
    net_default_config(&cfg);
    cfg.max_in_mem_log_size = 100;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_RATE_LIMIT;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    m.context = 500;
    net_step(net, 1, &m);
    assert_int_equal(net_propose(net, 1, "busy"), CRAFT_EBUSY);
    assert_int_equal(net_propose(net, 3, "forwarded"), 0); /* forwarded, then dropped */
    assert_false(net_applied_has(net, 1, "forwarded"));
    m.context = 10;
    net_step(net, 1, &m);
    assert_int_equal(net_propose(net, 1, "ok"), 0);
    assert_true(net_applied_has(net, 2, "ok"));
    /* A big report goes stale after a while without news. */
    net_drop_type(net, CRAFT_MSG_RATE_LIMIT, true);
    m.context = 500;
    net_step(net, 1, &m);
    assert_int_equal(net_propose(net, 1, "busy2"), CRAFT_EBUSY);
    while (net_propose(net, 1, "stale") == CRAFT_EBUSY) {
        net_tick(net, 1, 1);
        assert_true(++ticks <= 3 * cfg.election_tick);
    }
    assert_true(ticks >= cfg.election_tick);
    net_destroy(net);
}

static uint64_t heartbeats_sent_over(struct net *net, uint64_t leader, uint32_t ticks)
{
    uint64_t before = net->sent[CRAFT_MSG_HEARTBEAT];

    net_tick_all(net, ticks);
    (void)leader;
    return net->sent[CRAFT_MSG_HEARTBEAT] - before;
}

/* Quiescence (dragonboat): an idle leader stops heartbeating after
 * quiesce_ticks and nobody campaigns; activity wakes the group. */
static void test_quiesce_idle_leader_stops_heartbeats(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_status st;

    (void)state;
    net_default_config(&cfg);
    cfg.quiesce_ticks = 5;
    cfg.check_quorum = true;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_tick_all(net, 10);
    net_status(net, 1, &st);
    assert_true(st.quiesced);
    net_status(net, 2, &st);
    assert_true(st.quiesced);
    assert_int_equal(heartbeats_sent_over(net, 1, 100), 0);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 2)), 1);
    assert_int_equal(craft_raft_term(net_raft(net, 3)), 1);
    /* A proposal wakes the leader and the followers. */
    assert_int_equal(net_propose(net, 1, "wake"), 0);
    assert_true(net_applied_has(net, 3, "wake"));
    net_status(net, 1, &st);
    assert_false(st.quiesced);
    net_status(net, 2, &st);
    assert_false(st.quiesced);
    assert_true(heartbeats_sent_over(net, 1, 3) > 0);
    /* And once idle again, it falls quiet again. */
    net_tick_all(net, 10);
    assert_int_equal(heartbeats_sent_over(net, 1, 50), 0);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Quiescence: a follower's proposal (forwarded) wakes the group too. */
static void test_quiesce_follower_activity_wakes_group(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_status st;

    (void)state;
    net_default_config(&cfg);
    cfg.quiesce_ticks = 5;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_tick_all(net, 10);
    net_status(net, 1, &st);
    assert_true(st.quiesced);
    assert_int_equal(net_propose(net, 2, "from2"), 0);
    assert_true(net_applied_has(net, 3, "from2"));
    net_status(net, 1, &st);
    assert_false(st.quiesced);
    net_destroy(net);
}

/* Quiescence off (quiesce_ticks 0): the leader heartbeats forever. */
static void test_quiesce_off_keeps_heartbeats(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    assert_true(heartbeats_sent_over(net, 1, 50) >= 50);
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_max_uncommitted_size),
        cmocka_unit_test(test_limit_first_proposal_always_fits),
        cmocka_unit_test(test_limit_max_committed_size_per_ready),
        cmocka_unit_test(test_rate_limit_follower_reports_in_memory_log_size),
        cmocka_unit_test(test_rate_limit_leader_refuses_proposals),
        cmocka_unit_test(test_quiesce_idle_leader_stops_heartbeats),
        cmocka_unit_test(test_quiesce_follower_activity_wakes_group),
        cmocka_unit_test(test_quiesce_off_keeps_heartbeats),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
