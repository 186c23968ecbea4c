/* Scenario tests for snapshots (Raft paper section 7, InstallSnapshot): a
 * leader sends a snapshot when the entries a follower needs were compacted,
 * the snapshot progress state and report_snapshot, and a follower's handling
 * of old or foreign snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

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

/* Snapshots node id's state machine at its applied index and compacts its
 * log up to there; returns the index. */
static uint64_t snapshot_and_compact(struct net *net, uint64_t id)
{
    struct craft_status st;
    struct craft_memstore *ms = net_node(net, id)->store;

    net_status(net, id, &st);
    assert_int_equal(craft_memstore_create_snapshot(ms, st.applied, &st.conf), 0);
    assert_int_equal(craft_memstore_compact(ms, st.applied), 0);
    return st.applied;
}

static void propose_n(struct net *net, uint64_t id, int n)
{
    char buf[16];
    int i;

    for (i = 0; i < n; i++) {
        snprintf(buf, sizeof(buf), "e%d", i);
        assert_int_equal(net_propose(net, id, buf), 0);
    }
}

struct snap_filter {
    bool drop;
    size_t seen;
    bool cut_answers; /* cut the link from the receiver back once one is seen */
};

static bool drop_snapshots(struct net *net, const struct craft_message *m, void *arg)
{
    struct snap_filter *f = arg;

    if (m->type != CRAFT_MSG_SNAPSHOT) {
        return false;
    }
    f->seen++;
    if (f->cut_answers) {
        net_cut_one_way(net, m->to, m->from);
    }
    return f->drop;
}

/* Raft paper 7: a follower whose next entry was compacted away gets the
 * snapshot, installs it, and then receives the entries after it. */
static void test_7_snapshot_sent_when_next_entry_compacted(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct snap_filter f = {false, 0, false};
    struct craft_status st;
    uint64_t snap;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    propose_n(net, 1, 10);
    snap = snapshot_and_compact(net, 1);
    assert_int_equal(snap, 11);
    assert_int_equal(net_propose(net, 1, "after"), 0);
    net_heal(net);
    net_set_intercept(net, drop_snapshots, &f);
    net_tick(net, 1, 3);
    assert_int_equal(f.seen, 1); /* one snapshot, not one per heartbeat */
    assert_int_equal(net_node(net, 3)->snapshot_index, snap);
    assert_int_equal(craft_memstore_first_index(net_node(net, 3)->store), snap + 1);
    assert_true(net_applied_has(net, 3, "after"));
    assert_false(net_applied_has(net, 3, "e0")); /* covered by the snapshot */
    net_status(net, 3, &st);
    assert_int_equal(st.commit, 12);
    assert_int_equal(st.applied, 12);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_REPLICATE);
    assert_int_equal(peer(&st, 3)->match, 12);
    net_destroy(net);
}

/* While a snapshot is in flight the follower is paused (snapshot state); a
 * failed report sends it back to probing, and the snapshot is sent again. */
static void test_7_report_snapshot_failure_retries(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct snap_filter f = {true, 0, false};
    struct craft_status st;
    uint64_t snap;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    propose_n(net, 1, 5);
    snap = snapshot_and_compact(net, 1);
    net_heal(net);
    net_set_intercept(net, drop_snapshots, &f);
    net_tick(net, 1, 1);
    assert_int_equal(f.seen, 1);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_SNAPSHOT);
    assert_int_equal(peer(&st, 3)->pending_snapshot, snap);
    assert_true(peer(&st, 3)->paused);
    net_tick(net, 1, 3);
    assert_int_equal(f.seen, 1); /* paused: no resend while in flight */
    assert_int_equal(craft_raft_report_snapshot(net_raft(net, 1), 3, true), 0);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_PROBE);
    f.drop = false;
    net_tick(net, 1, 3);
    assert_int_equal(f.seen, 2);
    assert_int_equal(net_node(net, 3)->snapshot_index, snap);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_REPLICATE);
    net_destroy(net);
}

/* A successful report_snapshot resumes replication after the snapshot even
 * before the follower's answer arrives. */
static void test_7_report_snapshot_success_resumes_after_snapshot(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct snap_filter f = {false, 0, false};
    struct craft_status st;
    uint64_t snap;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    propose_n(net, 1, 5);
    snap = snapshot_and_compact(net, 1);
    net_heal(net);
    f.cut_answers = true; /* once the snapshot is out, 3's answers are lost */
    net_set_intercept(net, drop_snapshots, &f);
    net_tick(net, 1, 2);
    assert_int_equal(net_node(net, 3)->snapshot_index, snap);
    assert_int_equal(craft_raft_report_snapshot(net_raft(net, 1), 3, false), 0);
    net_status(net, 1, &st);
    assert_int_equal(peer(&st, 3)->state, CRAFT_PROGRESS_PROBE);
    assert_int_equal(peer(&st, 3)->next, snap + 1);
    net_heal(net);
    assert_int_equal(net_propose(net, 1, "next"), 0);
    net_tick(net, 1, 2);
    assert_true(net_applied_has(net, 3, "next"));
    assert_int_equal(f.seen, 1);
    net_destroy(net);
}

/* Raft paper 7: a snapshot older than what the follower has committed is
 * not installed; the follower answers with its commit index. */
static void test_7_old_snapshot_is_ignored(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_snapshot_meta meta;
    struct craft_message m;
    const struct craft_message *resp;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    propose_n(net, 1, 5);
    net_tick(net, 1, 1);
    net_clear_queue(net);
    memset(&meta, 0, sizeof(meta));
    meta.index = 3;
    meta.term = 1;
    meta.conf = net_voters(3);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.snapshot = &meta;
    net_step(net, 2, &m);
    assert_int_equal(net_node(net, 2)->snapshot_index, 0);
    assert_int_equal(craft_memstore_first_index(net_node(net, 2)->store), 1);
    resp = net_queued_msg(net, CRAFT_MSG_APPEND_RESP, 2, 1, 0);
    assert_non_null(resp);
    assert_false(resp->reject);
    assert_int_equal(resp->index, 6);
    net_status(net, 2, &st);
    assert_int_equal(st.commit, 6);
    net_destroy(net);
}

/* Raft paper 7: a snapshot whose last entry the follower already holds only
 * moves its commit index; the entries after it are kept. */
static void test_7_snapshot_of_held_entries_fast_forwards_commit(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_snapshot_meta meta;
    struct craft_message m;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_cut_one_way(net, 1, 2);
    net_tick(net, 1, 1);
    net_heal(net);
    net_drop_type(net, CRAFT_MSG_HEARTBEAT, true);
    net_cut_one_way(net, 3, 1); /* nothing commits past 1 through acks from 3 */
    propose_n(net, 1, 3);       /* 2 and 3 hold 2..4, 2 learns commit later */
    net_status(net, 2, &st);
    assert_int_equal(st.last_index, 4);
    memset(&meta, 0, sizeof(meta));
    meta.index = 3;
    meta.term = 1;
    meta.conf = net_voters(3);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 2;
    m.term = 1;
    m.snapshot = &meta;
    net_step(net, 2, &m);
    net_status(net, 2, &st);
    assert_true(st.commit >= 3);
    assert_int_equal(st.last_index, 4);
    assert_int_equal(net_node(net, 2)->snapshot_index, 0);
    net_destroy(net);
}

/* A snapshot whose membership does not include the receiver is refused. */
static void test_7_snapshot_not_naming_receiver_is_refused(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_snapshot_meta meta;
    struct craft_message m;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    memset(&meta, 0, sizeof(meta));
    meta.index = 50;
    meta.term = 1;
    meta.conf.voters[meta.conf.n_voters++] = 1;
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_SNAPSHOT;
    m.from = 1;
    m.to = 3;
    m.term = 1;
    m.snapshot = &meta;
    assert_int_not_equal(net_step(net, 3, &m), 0);
    net_status(net, 3, &st);
    assert_int_equal(st.commit, 1);
    assert_int_equal(st.stats.dropped[CRAFT_MSG_SNAPSHOT], 1);
    assert_int_equal(net_node(net, 3)->snapshot_index, 0);
    net_destroy(net);
}

/* A node restarted after installing a snapshot starts from it: membership,
 * commit and applied index, and it keeps replicating. */
static void test_7_restart_after_snapshot_install(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_status st;
    uint64_t snap;

    (void)state;
    net_elect(net, 1);
    net_isolate(net, 3);
    propose_n(net, 1, 4);
    snap = snapshot_and_compact(net, 1);
    net_heal(net);
    net_tick(net, 1, 2);
    assert_int_equal(net_node(net, 3)->snapshot_index, snap);
    net_restart(net, 3);
    net_stabilize(net);
    net_status(net, 3, &st);
    assert_int_equal(st.conf.n_voters, 3);
    assert_true(st.commit >= snap);
    assert_int_equal(st.first_index, snap + 1);
    assert_int_equal(net_propose(net, 1, "later"), 0);
    assert_true(net_applied_has(net, 3, "later"));
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_7_snapshot_sent_when_next_entry_compacted),
        cmocka_unit_test(test_7_report_snapshot_failure_retries),
        cmocka_unit_test(test_7_report_snapshot_success_resumes_after_snapshot),
        cmocka_unit_test(test_7_old_snapshot_is_ignored),
        cmocka_unit_test(test_7_snapshot_of_held_entries_fast_forwards_commit),
        cmocka_unit_test(test_7_snapshot_not_naming_receiver_is_refused),
        cmocka_unit_test(test_7_restart_after_snapshot_install),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
