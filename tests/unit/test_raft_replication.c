/* Scenario tests for log replication: Raft paper 5.3 (log replication and
 * consistency check), 5.4.2 (committing entries from previous terms, Figure
 * 8), fast backtracking with reject hints, flow control (probe and replicate
 * states, the in-flight window by count and bytes, the message size limit)
 * and proposal forwarding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

static const struct craft_peer_status *peer(const struct craft_status *st, uint64_t id)
{
    uint32_t i;

    for (i = 0; i < st->n_progress; i++) {
        if (st->progress[i].id == id) {
            return &st->progress[i];
        }
    }
    fail_msg("no progress for %llu", (unsigned long long)id);
    return NULL;
}

/* Raft paper 5.3: the leader appends a proposal, replicates it, commits it
 * once a majority holds it, and every node applies it at the same index. */
static void test_5_3_proposal_is_replicated_committed_and_applied(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    const struct net_applied *a;
    uint64_t id;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "hello"), 0);
    for (id = 1; id <= 3; id++) {
        a = net_applied_at(net, id, 2);
        assert_non_null(a);
        assert_int_equal(a->len, 5);
        assert_memory_equal(a->data, "hello", 5);
        assert_int_equal(a->term, 1);
        assert_int_equal(craft_memstore_last_index(net_node(net, id)->store), 2);
    }
    net_destroy(net);
}

/* Raft paper 5.3: an entry is committed once stored on a majority; a
 * minority is not enough. */
static void test_5_3_commit_needs_a_majority(void **state)
{
    struct net *net = net_create(5, NULL, NULL);
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_cut(net, 1, 3);
    net_cut(net, 1, 4);
    net_cut(net, 1, 5);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_status(net, 1, &st);
    assert_int_equal(st.last_index, 2);
    assert_int_equal(st.commit, 1);
    assert_false(net_applied_has(net, 1, "a"));
    net_heal(net);
    net_cut(net, 1, 4);
    net_cut(net, 1, 5);
    net_tick(net, 1, 1); /* a heartbeat finds 3 behind and catches it up */
    net_status(net, 1, &st);
    assert_int_equal(st.commit, 2);
    assert_true(net_applied_has(net, 1, "a"));
    assert_true(net_applied_has(net, 3, "a"));
    assert_false(net_applied_has(net, 4, "a"));
    net_destroy(net);
}

/* Raft paper 5.3: a follower refuses an append whose previous entry it does
 * not hold, and hints where its log ends. */
static void test_5_3_follower_rejects_mismatched_previous_entry(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    const struct craft_message *resp;
    struct craft_entry e;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0); /* logs end at (2, 1) */
    net_clear_queue(net);
    memset(&e, 0, sizeof(e));
    e.term = 1;
    e.index = 6;
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.index = 5;
    m.log_term = 1;
    m.n_entries = 1;
    m.entries = &e;
    net_step(net, 2, &m);
    resp = net_queued_msg(net, CRAFT_MSG_APPEND_RESP, 2, 1, 0);
    assert_non_null(resp);
    assert_true(resp->reject);
    assert_int_equal(resp->index, 5);
    assert_int_equal(resp->reject_hint, 2);
    assert_int_equal(resp->log_term, 1);
    assert_int_equal(craft_memstore_last_index(net_node(net, 2)->store), 2);
    net_destroy(net);
}

/* Raft paper 5.3: a follower deletes a conflicting suffix and takes the
 * leader's entries; an old leader's uncommitted entries are lost. */
static void test_5_3_follower_truncates_conflicting_suffix(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 1);
    assert_int_equal(net_propose(net, 1, "lost1"), 0);
    assert_int_equal(net_propose(net, 1, "lost2"), 0);
    assert_int_equal(craft_memstore_last_index(net_node(net, 1)->store), 3);
    net_elect(net, 2); /* term 2 with 3's vote */
    assert_int_equal(net_propose(net, 2, "kept"), 0);
    net_heal(net);
    net_tick(net, 2, 1);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_FOLLOWER);
    assert_int_equal(craft_memstore_last_index(net_node(net, 1)->store), 3);
    assert_int_equal(store_term(net, 1, 2), 2);
    assert_int_equal(store_term(net, 1, 3), 2);
    assert_true(net_applied_has(net, 1, "kept"));
    assert_false(net_applied_has(net, 1, "lost1"));
    assert_false(net_applied_has(net, 1, "lost2"));
    net_destroy(net);
}

struct reject_count {
    uint64_t from;
    size_t rejects;
};

static bool count_rejects(struct net *net, const struct craft_message *m, void *arg)
{
    struct reject_count *rc = arg;

    (void)net;
    if (m->type == CRAFT_MSG_APPEND_RESP && m->from == rc->from && m->reject) {
        rc->rejects++;
    }
    return false;
}

/* Fast backtracking (etcd raft, Raft paper 5.3's optimisation): a follower
 * with a long divergent suffix is brought in line in a couple of round trips,
 * not one per entry. */
static void test_5_3_fast_backtracking_with_reject_hints(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct reject_count rc = {1, 0};
    char buf[16];
    int i;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 1);
    for (i = 0; i < 30; i++) {
        snprintf(buf, sizeof(buf), "old%d", i);
        assert_int_equal(net_propose(net, 1, buf), 0); /* term 1, up to index 31 */
    }
    net_elect(net, 2);
    for (i = 0; i < 40; i++) {
        snprintf(buf, sizeof(buf), "new%d", i);
        assert_int_equal(net_propose(net, 2, buf), 0); /* term 2, up to index 41 */
    }
    /* A third leader probes node 1 from its own last index (42), far above
     * where the logs agree (index 1). */
    net_elect(net, 3);
    net_set_intercept(net, count_rejects, &rc);
    net_heal(net);
    net_tick(net, 3, 1);
    assert_true(rc.rejects >= 1);
    assert_true(rc.rejects <= 2);
    assert_true(net_applied_has(net, 1, "new39"));
    assert_false(net_applied_has(net, 1, "old0"));
    assert_int_equal(craft_memstore_last_index(net_node(net, 1)->store), 43);
    net_destroy(net);
}

/* Raft paper 5.3: the commit index a follower learns only moves forward; a
 * heartbeat or append carrying a lower one does not move it back. */
static void test_5_3_commit_index_never_moves_backward(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(net_propose(net, 1, "b"), 0);
    net_tick(net, 1, 1);
    net_status(net, 2, &st);
    assert_int_equal(st.commit, 3);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_HEARTBEAT;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.commit = 1;
    net_step(net, 2, &m);
    net_status(net, 2, &st);
    assert_int_equal(st.commit, 3);
    m.type = CRAFT_MSG_APPEND;
    m.index = 1;
    m.log_term = 1;
    m.commit = 1;
    net_step(net, 2, &m);
    net_status(net, 2, &st);
    assert_int_equal(st.commit, 3);
    assert_int_equal(st.last_index, 3); /* an empty append truncates nothing */
    net_destroy(net);
}

/* Raft paper 5.3: a follower never commits past what it holds from the
 * current leader, even if the leader's commit index is higher. */
static void test_5_3_follower_commits_only_what_it_matched(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_clear_queue(net);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.index = 1;
    m.log_term = 1;
    m.commit = 10;
    net_step(net, 2, &m);
    net_status(net, 2, &st);
    assert_int_equal(st.commit, 1);
    net_destroy(net);
}

struct fig8 {
    bool drop_index3;
    bool drop_from5;
};

static bool fig8_filter(struct net *net, const struct craft_message *m, void *arg)
{
    struct fig8 *f = arg;

    (void)net;
    if (f->drop_from5 && m->from == 5 && m->type == CRAFT_MSG_APPEND) {
        return true;
    }
    /* The leader never learns that anyone holds index 3. */
    return f->drop_index3 && m->type == CRAFT_MSG_APPEND_RESP && !m->reject && m->index >= 3;
}

/* Raft paper 5.4.2, Figure 8: a leader does not commit an entry of an older
 * term by counting replicas, even once a majority holds it; it commits only
 * through an entry of its own term. */
static void test_5_4_2_figure8_only_current_term_commits_by_counting(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct fig8 f = {false, false};
    struct craft_status st;
    uint64_t id;

    (void)state;
    net_default_config(&cfg);
    cfg.max_size_per_msg = 0; /* one entry per append */
    net = net_create(5, NULL, &cfg);
    net_set_intercept(net, fig8_filter, &f);
    net_elect(net, 1); /* term 1, no-op at 1 committed */
    /* (a) S1 replicates index 2 to S2 only. */
    net_cut(net, 1, 3);
    net_cut(net, 1, 4);
    net_cut(net, 1, 5);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_int_equal(store_term(net, 2, 2), 1);
    /* (b) S5 wins term 2 with S3 and S4 and keeps its no-op to itself. */
    net_heal(net);
    net_cut(net, 5, 1);
    net_cut(net, 5, 2);
    f.drop_from5 = true;
    net_elect(net, 5);
    assert_int_equal(craft_raft_term(net_raft(net, 5)), 2);
    /* (c) S5 is gone; S1 wins term 3 and replicates the old index 2 to a
     * majority, but hears no acknowledgement of its own no-op at index 3. */
    net_stop(net, 5);
    net_restart(net, 1); /* S1 crashed meanwhile and comes back */
    f.drop_index3 = true;
    assert_int_equal(craft_raft_campaign(net_raft(net, 1)), 0);
    net_stabilize(net);
    if (craft_raft_role(net_raft(net, 1)) != CRAFT_ROLE_LEADER) {
        net_elect(net, 1);
    }
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 3);
    net_tick(net, 1, 2);
    for (id = 2; id <= 4; id++) {
        assert_int_equal(store_term(net, id, 2), 1);
    }
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->match, 2);
    assert_int_equal(peer(&st, 4)->match, 2);
    assert_int_equal(st.commit, 1); /* a majority holds index 2: still not committed */
    /* Once the term-3 no-op is known to be on a majority, both commit. */
    f.drop_index3 = false;
    net_tick(net, 1, 2);
    net_status(net, 1, &st);
    assert_int_equal(st.commit, 3);
    for (id = 1; id <= 4; id++) {
        assert_true(net_applied_has(net, id, "a"));
    }
    net_destroy(net);
}

/* Flow control: a follower that does not answer is probed with one append at
 * a time; later proposals do not pile up more appends to it. */
static void test_flow_control_probe_sends_one_append_at_a_time(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 2)->state, CRAFT_PROGRESS_REPLICATE);
    assert_int_equal(craft_raft_report_unreachable(net_raft(net, 1), 3), 0);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_PROBE);
    net_cut(net, 1, 3);
    net->sent[CRAFT_MSG_APPEND] = 0;
    assert_int_equal(craft_raft_propose(net_raft(net, 1), "a", 1), 0);
    assert_int_equal(craft_raft_propose(net_raft(net, 1), "b", 1), 0);
    net_ready(net, 1);
    assert_int_equal(net_queued(net, CRAFT_MSG_APPEND, 1, 3), 1);
    assert_int_equal(craft_raft_propose(net_raft(net, 1), "c", 1), 0);
    net_ready(net, 1);
    assert_int_equal(net_queued(net, CRAFT_MSG_APPEND, 1, 3), 1);
    assert_int_equal(net_queued(net, CRAFT_MSG_APPEND, 1, 2), 2);
    net_status(net, 1, &st);
    assert_true(peer(&st, 3)->paused);
    /* A heartbeat answer unpauses the probe. */
    net_stabilize(net);
    net_heal(net);
    net_tick(net, 1, 1);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->match, 4);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_REPLICATE);
    net_destroy(net);
}

struct append_count {
    uint64_t to;
    size_t appends; /* appends carrying entries */
};

static bool count_appends(struct net *net, const struct craft_message *m, void *arg)
{
    struct append_count *ac = arg;

    (void)net;
    if (m->type == CRAFT_MSG_APPEND && m->to == ac->to && m->n_entries > 0) {
        ac->appends++;
    }
    return false;
}

/* Flow control: in replicate state appends are pipelined up to
 * max_inflight_msgs; a full window pauses the follower until acks arrive. */
static void test_flow_control_inflight_window_by_count(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_status st;
    struct append_count ac = {2, 0};
    int i;

    (void)state;
    net_default_config(&cfg);
    cfg.max_inflight_msgs = 2;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_cut_one_way(net, 2, 1); /* 2 receives but its acks are lost */
    net_set_intercept(net, count_appends, &ac);
    for (i = 0; i < 5; i++) {
        assert_int_equal(net_propose(net, 1, "x"), 0);
    }
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 2)->state, CRAFT_PROGRESS_REPLICATE);
    assert_int_equal(peer(&st, 2)->inflight, 2);
    assert_true(peer(&st, 2)->paused);
    assert_int_equal(peer(&st, 2)->next, 4);
    assert_int_equal(peer(&st, 3)->match, 6);
    assert_int_equal(ac.appends, 2);
    net_heal(net);
    net_tick(net, 1, 3);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 2)->match, 6);
    assert_int_equal(peer(&st, 2)->inflight, 0);
    net_destroy(net);
}

/* Flow control: the window is also bounded in bytes (max_inflight_bytes). */
static void test_flow_control_inflight_window_by_bytes(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_status st;
    int i;

    (void)state;
    net_default_config(&cfg);
    cfg.max_inflight_bytes = 10;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_cut_one_way(net, 2, 1);
    for (i = 0; i < 4; i++) {
        assert_int_equal(net_propose(net, 1, "666666"), 0);
    }
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 2)->inflight, 2);
    assert_int_equal(peer(&st, 2)->inflight_bytes, 12);
    assert_true(peer(&st, 2)->paused);
    assert_int_equal(peer(&st, 3)->match, 5);
    net_heal(net);
    net_tick(net, 1, 3);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 2)->match, 5);
    net_destroy(net);
}

struct size_check {
    uint64_t max;
    size_t appends;
    size_t violations;
};

static bool check_size(struct net *net, const struct craft_message *m, void *arg)
{
    struct size_check *sc = arg;
    uint64_t bytes = 0;
    uint32_t i;

    (void)net;
    if (m->type == CRAFT_MSG_APPEND && m->n_entries > 0) {
        for (i = 0; i < m->n_entries; i++) {
            bytes += m->entries[i].len;
        }
        sc->appends++;
        if (m->n_entries > 1 && bytes > sc->max) {
            sc->violations++;
        }
    }
    return false;
}

/* Flow control: an append carries at most max_size_per_msg bytes of entries
 * (but always at least one entry). */
static void test_flow_control_max_message_size(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct size_check sc = {10, 0, 0};
    int i;

    (void)state;
    net_default_config(&cfg);
    cfg.max_size_per_msg = 10;
    net = net_create(3, NULL, &cfg);
    net_elect(net, 1);
    net_isolate(net, 3);
    for (i = 0; i < 10; i++) {
        assert_int_equal(net_propose(net, 1, "abcd"), 0);
    }
    assert_int_equal(net_propose(net, 1, "0123456789abcdef"), 0); /* larger than the limit */
    net_heal(net);
    net_set_intercept(net, check_size, &sc);
    net_tick(net, 1, 2);
    assert_int_equal(sc.violations, 0);
    assert_true(sc.appends >= 6); /* 40 bytes at two per message, then the big one */
    assert_true(net_applied_has(net, 3, "0123456789abcdef"));
    net_destroy(net);
}

/* Proposals at a follower are forwarded to the leader and committed. */
static void test_5_1_follower_forwards_proposals(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    uint64_t id;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 2, "via2"), 0);
    for (id = 1; id <= 3; id++) {
        assert_true(net_applied_has(net, id, "via2"));
    }
    net_destroy(net);
}

/* With forwarding disabled, or without a known leader, a follower drops a
 * proposal and says so. */
static void test_proposal_dropped_without_forwarding_or_leader(void **state)
{
    struct craft_config cfg;
    struct net *net;
    struct craft_status st;

    (void)state;
    net_default_config(&cfg);
    cfg.disable_proposal_forwarding = true;
    net = net_create(3, NULL, &cfg);
    assert_int_equal(net_propose(net, 2, "noleader"), CRAFT_EDROPPED);
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 2, "nofwd"), CRAFT_EDROPPED);
    net_status(net, 2, &st);
    assert_int_equal(st.stats.proposals_dropped, 2);
    assert_false(net_applied_has(net, 1, "nofwd"));
    assert_int_equal(net_propose(net, 1, "direct"), 0);
    assert_true(net_applied_has(net, 2, "direct"));
    net_destroy(net);
}

/* Raft paper 5.3: lost appends are retried: the next heartbeat answer shows
 * the leader the follower is behind. */
static void test_5_3_lost_appends_are_retried(void **state)
{
    struct net *net = net_create(3, NULL, NULL);

    (void)state;
    net_elect(net, 1);
    net_drop_type(net, CRAFT_MSG_APPEND, true);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    assert_false(net_applied_has(net, 2, "a"));
    net_drop_type(net, CRAFT_MSG_APPEND, false);
    net_tick(net, 1, 3);
    assert_true(net_applied_has(net, 1, "a"));
    assert_true(net_applied_has(net, 2, "a"));
    assert_true(net_applied_has(net, 3, "a"));
    net_destroy(net);
}

/* Raft paper 5.3/5.4: what was committed survives a restart of every node,
 * and the group carries on. */
static void test_5_4_committed_entries_survive_restart(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    uint64_t id;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "before"), 0);
    net_tick(net, 1, 1);
    for (id = 1; id <= 3; id++) {
        net_restart(net, id);
    }
    net_stabilize(net);
    net_elect(net, 2);
    assert_int_equal(net_propose(net, 2, "after"), 0);
    for (id = 1; id <= 3; id++) {
        assert_true(net_applied_has(net, id, "before"));
        assert_true(net_applied_has(net, id, "after"));
    }
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_5_3_proposal_is_replicated_committed_and_applied),
        cmocka_unit_test(test_5_3_commit_needs_a_majority),
        cmocka_unit_test(test_5_3_follower_rejects_mismatched_previous_entry),
        cmocka_unit_test(test_5_3_follower_truncates_conflicting_suffix),
        cmocka_unit_test(test_5_3_fast_backtracking_with_reject_hints),
        cmocka_unit_test(test_5_3_commit_index_never_moves_backward),
        cmocka_unit_test(test_5_3_follower_commits_only_what_it_matched),
        cmocka_unit_test(test_5_4_2_figure8_only_current_term_commits_by_counting),
        cmocka_unit_test(test_flow_control_probe_sends_one_append_at_a_time),
        cmocka_unit_test(test_flow_control_inflight_window_by_count),
        cmocka_unit_test(test_flow_control_inflight_window_by_bytes),
        cmocka_unit_test(test_flow_control_max_message_size),
        cmocka_unit_test(test_5_1_follower_forwards_proposals),
        cmocka_unit_test(test_proposal_dropped_without_forwarding_or_leader),
        cmocka_unit_test(test_5_3_lost_appends_are_retried),
        cmocka_unit_test(test_5_4_committed_entries_survive_restart),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
