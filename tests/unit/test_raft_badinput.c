/* Bad input never crashes the core: messages a role must not receive are
 * dropped and counted in status.stats.dropped; malformed messages (unknown
 * type, NULL entry pointers, broken entries, malformed snapshots) are
 * refused; API misuse returns an error; invalid configurations are refused
 * with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

static struct craft_message msg(uint32_t type, uint64_t from, uint64_t to, uint64_t term)
{
    struct craft_message m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = from;
    m.to = to;
    m.term = term;
    return m;
}

static uint64_t dropped(struct net *net, uint64_t id, uint32_t type)
{
    struct craft_status st;

    net_status(net, id, &st);
    return st.stats.dropped[type];
}

/* The handler table: a message a role must not receive is dropped, counted
 * by type, and changes nothing. */
static void test_role_drops_messages_it_must_not_receive(void **state)
{
    struct craft_conf_state boot = net_voters(3);
    struct net *net;
    struct craft_message m;
    struct craft_status before, after;

    (void)state;
    boot.learners[boot.n_learners++] = 4;
    net = net_create(4, &boot, NULL);
    net_elect(net, 1);
    net_clear_queue(net);

    /* A follower gets leader-only answers. */
    net_status(net, 2, &before);
    m = msg(CRAFT_MSG_APPEND_RESP, 3, 2, 1);
    assert_int_equal(net_step(net, 2, &m), 0);
    m = msg(CRAFT_MSG_HEARTBEAT_RESP, 3, 2, 1);
    assert_int_equal(net_step(net, 2, &m), 0);
    m = msg(CRAFT_MSG_VOTE_RESP, 3, 2, 1);
    assert_int_equal(net_step(net, 2, &m), 0);
    net_status(net, 2, &after);
    assert_int_equal(after.stats.dropped[CRAFT_MSG_APPEND_RESP], 1);
    assert_int_equal(after.stats.dropped[CRAFT_MSG_HEARTBEAT_RESP], 1);
    assert_int_equal(after.stats.dropped[CRAFT_MSG_VOTE_RESP], 1);
    assert_int_equal(after.role, CRAFT_ROLE_FOLLOWER);
    assert_int_equal(after.term, before.term);
    assert_int_equal(after.commit, before.commit);

    /* A leader gets another leader's traffic of its own term, and a
     * TimeoutNow. */
    m = msg(CRAFT_MSG_APPEND, 2, 1, 1);
    assert_int_equal(net_step(net, 1, &m), 0);
    m = msg(CRAFT_MSG_TIMEOUT_NOW, 2, 1, 1);
    assert_int_equal(net_step(net, 1, &m), 0);
    assert_int_equal(dropped(net, 1, CRAFT_MSG_APPEND), 1);
    assert_int_equal(dropped(net, 1, CRAFT_MSG_TIMEOUT_NOW), 1);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_term(net_raft(net, 1)), 1);

    /* A non-voting member gets a TimeoutNow. */
    m = msg(CRAFT_MSG_TIMEOUT_NOW, 1, 4, 1);
    assert_int_equal(net_step(net, 4, &m), 0);
    assert_int_equal(dropped(net, 4, CRAFT_MSG_TIMEOUT_NOW), 1);
    assert_int_equal(craft_raft_role(net_raft(net, 4)), CRAFT_ROLE_NON_VOTING);
    assert_int_equal(craft_raft_term(net_raft(net, 4)), 1);

    /* Nothing above produced a message. */
    assert_int_equal(net_queued(net, CRAFT_MSG_TYPE_COUNT, 0, 0), 0);
    net_destroy(net);
}

/* A candidate drops answers to the wrong kind of election. */
static void test_candidate_drops_pre_vote_answers(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;

    (void)state;
    assert_int_equal(craft_raft_campaign(net_raft(net, 1)), 0); /* candidate, term 1 */
    net_clear_queue(net);
    m = msg(CRAFT_MSG_PRE_VOTE_RESP, 2, 1, 1);
    assert_int_equal(net_step(net, 1, &m), 0);
    m = msg(CRAFT_MSG_PRE_VOTE_RESP, 3, 1, 1);
    assert_int_equal(net_step(net, 1, &m), 0);
    assert_int_equal(dropped(net, 1, CRAFT_MSG_PRE_VOTE_RESP), 2);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_CANDIDATE);
    net_destroy(net);
}

/* Unknown message types are refused. */
static void test_unknown_message_type_is_refused(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;

    (void)state;
    net_elect(net, 1);
    m = msg(CRAFT_MSG_TYPE_COUNT, 2, 1, 1);
    assert_int_equal(net_step(net, 1, &m), CRAFT_EINVAL);
    m = msg(0xffffffffu, 2, 1, 1);
    assert_int_equal(net_step(net, 1, &m), CRAFT_EINVAL);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_int_equal(craft_raft_step(net_raft(net, 1), NULL), CRAFT_EINVAL);
    net_destroy(net);
}

/* Entries announced with a NULL pointer, or an entry with bytes but a NULL
 * data pointer, are refused wherever they arrive. */
static void test_null_entry_pointers_are_refused(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_entry e;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_clear_queue(net);
    /* n_entries without entries. */
    m = msg(CRAFT_MSG_APPEND, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.n_entries = 3;
    assert_int_equal(net_step(net, 2, &m), CRAFT_EINVAL);
    m = msg(CRAFT_MSG_PROPOSE, 2, 1, 0);
    m.n_entries = 1;
    assert_int_equal(net_step(net, 1, &m), CRAFT_EINVAL);
    /* An entry with bytes and no data: at a follower (append and
     * forwarded proposal) and at the leader. */
    memset(&e, 0, sizeof(e));
    e.term = 1;
    e.index = 2;
    e.len = 16;
    e.data = NULL;
    m = msg(CRAFT_MSG_APPEND, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.entries = &e;
    m.n_entries = 1;
    assert_int_not_equal(net_step(net, 2, &m), 0);
    m = msg(CRAFT_MSG_PROPOSE, 2, 2, 0);
    m.entries = &e;
    m.n_entries = 1;
    assert_int_not_equal(net_step(net, 2, &m), 0);
    m = msg(CRAFT_MSG_PROPOSE, 2, 1, 0);
    m.entries = &e;
    m.n_entries = 1;
    assert_int_not_equal(net_step(net, 1, &m), 0);
    assert_int_equal(craft_raft_propose(net_raft(net, 1), NULL, 4), CRAFT_EINVAL);
    net_stabilize(net);
    net_status(net, 2, &st);
    assert_int_equal(st.last_index, 1);
    net_status(net, 1, &st);
    assert_int_equal(st.last_index, 1);
    /* The group still works. */
    assert_int_equal(net_propose(net, 2, "fine"), 0);
    assert_true(net_applied_has(net, 3, "fine"));
    net_destroy(net);
}

/* Appends whose entries do not follow the previous index, or have term 0,
 * or would rewrite committed entries, are refused and change nothing. */
static void test_malformed_appends_are_refused(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_entry e[2];
    struct craft_status before, after;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0);
    net_tick(net, 1, 1); /* 2 has committed index 2 */
    net_clear_queue(net);
    net_status(net, 2, &before);
    memset(e, 0, sizeof(e));
    e[0].term = 1;
    e[0].index = 3;
    e[1].term = 1;
    e[1].index = 5; /* a gap */
    m = msg(CRAFT_MSG_APPEND, 1, 2, 1);
    m.index = 2;
    m.log_term = 1;
    m.entries = e;
    m.n_entries = 2;
    assert_int_not_equal(net_step(net, 2, &m), 0);
    e[1].index = 4;
    e[1].term = 0; /* term 0 */
    assert_int_not_equal(net_step(net, 2, &m), 0);
    /* Rewriting committed index 2 with another term: ignored (etcd raft
     * answers with its commit index), never applied. */
    e[0].term = 2;
    e[0].index = 2;
    m.term = 2;
    m.index = 1;
    m.log_term = 1;
    m.n_entries = 1;
    net_clear_queue(net);
    net_step(net, 2, &m);
    assert_int_equal(net_queued(net, CRAFT_MSG_APPEND_RESP, 2, 1), 1);
    assert_int_equal(net_queued_msg(net, CRAFT_MSG_APPEND_RESP, 2, 1, 0)->index, 2);
    {
        const struct craft_storage *s = craft_memstore_storage(net_node(net, 2)->store);
        uint64_t t = 0;
        assert_int_equal(s->term(s->data, 2, &t), 0);
        assert_int_equal(t, 1);
    }
    net_status(net, 2, &after);
    assert_int_equal(after.last_index, before.last_index);
    assert_int_equal(after.commit, before.commit);
    net_destroy(net);
}

/* A committed membership entry whose bytes do not decode is skipped, the
 * same way on every node, without a crash. */
static void test_undecodable_conf_change_is_skipped(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_entry e;
    static const unsigned char garbage[5] = {0xff, 0x00, 0x13, 0x37, 0x42};
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_clear_queue(net);
    memset(&e, 0, sizeof(e));
    e.term = 1;
    e.index = 2;
    e.type = CRAFT_ENTRY_CONF_CHANGE;
    e.len = sizeof(garbage);
    e.data = garbage;
    m = msg(CRAFT_MSG_APPEND, 1, 2, 1);
    m.index = 1;
    m.log_term = 1;
    m.commit = 2;
    m.entries = &e;
    m.n_entries = 1;
    assert_int_equal(net_step(net, 2, &m), 0);
    net_process(net);
    net_status(net, 2, &st);
    assert_int_equal(st.applied, 2);
    assert_int_equal(st.conf.n_voters, 3);
    net_destroy(net);
}

/* Snapshot messages without metadata, or with malformed metadata (term 0,
 * impossible membership), are refused. */
static void test_malformed_snapshots_are_refused(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_snapshot_meta meta;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    net_clear_queue(net);
    m = msg(CRAFT_MSG_SNAPSHOT, 1, 2, 1);
    assert_int_equal(net_step(net, 2, &m), CRAFT_EINVAL);
    memset(&meta, 0, sizeof(meta));
    meta.index = 10;
    meta.term = 0;
    meta.conf = net_voters(3);
    m.snapshot = &meta;
    assert_int_not_equal(net_step(net, 2, &m), 0);
    meta.term = 1;
    meta.conf.n_voters = CRAFT_MAX_NODES + 5;
    assert_int_not_equal(net_step(net, 2, &m), 0);
    meta.conf = net_voters(3);
    meta.conf.voters[1] = 1; /* a duplicate voter */
    meta.conf.voters[2] = 2;
    meta.conf.n_voters = 3;
    meta.conf.voters[2] = 1;
    assert_int_not_equal(net_step(net, 2, &m), 0);
    net_status(net, 2, &st);
    assert_int_equal(st.commit, 1);
    assert_int_equal(net_node(net, 2)->snapshot_index, 0);
    net_destroy(net);
}

/* Answers from nodes that are not members are dropped by the leader. */
static void test_messages_from_strangers_are_dropped(void **state)
{
    struct net *net = net_create(3, NULL, NULL);
    struct craft_message m;
    struct craft_status st;

    (void)state;
    net_elect(net, 1);
    m = msg(CRAFT_MSG_APPEND_RESP, 9, 1, 1);
    m.index = 1000;
    assert_int_equal(net_step(net, 1, &m), 0);
    m = msg(CRAFT_MSG_HEARTBEAT_RESP, 9, 1, 1);
    assert_int_equal(net_step(net, 1, &m), 0);
    net_status(net, 1, &st);
    assert_int_equal(st.stats.dropped[CRAFT_MSG_APPEND_RESP], 1);
    assert_int_equal(st.stats.dropped[CRAFT_MSG_HEARTBEAT_RESP], 1);
    assert_int_equal(st.commit, 1);
    assert_int_equal(st.role, CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* The ready cycle's API refuses misuse. */
static void test_ready_api_misuse(void **state)
{
    struct net *net = net_create(1, NULL, NULL);
    struct craft_raft *r = net_raft(net, 1);
    struct craft_ready rd, rd2;

    (void)state;
    assert_int_equal(craft_raft_campaign(r), 0);
    assert_true(craft_raft_has_ready(r));
    assert_int_equal(craft_raft_advance(r, &rd), CRAFT_EINVAL); /* no ready out */
    assert_int_equal(craft_raft_ready(r, &rd), 0);
    assert_false(craft_raft_has_ready(r));
    assert_int_equal(craft_raft_ready(r, &rd2), CRAFT_EINVAL); /* one at a time */
    assert_int_equal(craft_memstore_append(net_node(net, 1)->store, rd.entries, rd.n_entries), 0);
    craft_memstore_set_hard_state(net_node(net, 1)->store, &rd.hard_state);
    assert_int_equal(craft_raft_advance(r, &rd), 0);
    assert_int_equal(craft_raft_advance(r, &rd), CRAFT_EINVAL);
    assert_int_equal(craft_raft_propose(r, "x", CRAFT_MAX_ENTRY_SIZE + 1), CRAFT_ETOO_BIG);
    assert_int_equal(craft_raft_transfer_leader(r, 0), CRAFT_EINVAL);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(r), CRAFT_ROLE_LEADER);
    net_destroy(net);
}

/* Invalid configurations are refused with a reason. */
static void test_config_validation(void **state)
{
    struct craft_memstore *ms;
    struct craft_config good, cfg;
    struct craft_raft *r = NULL;
    const char *why;
    struct craft_hard_state hs = {1, 0, 5};

    (void)state;
    assert_int_equal(craft_memstore_create(&ms), 0);
    net_default_config(&good);
    good.id = 1;
    good.storage = craft_memstore_storage(ms);

#define REFUSED(field, value)                                                                      \
    do {                                                                                           \
        cfg = good;                                                                                \
        cfg.field = (value);                                                                       \
        why = NULL;                                                                                \
        assert_int_equal(craft_raft_create(&cfg, &r, &why), CRAFT_EINVAL);                         \
        assert_non_null(why);                                                                      \
    } while (0)

    REFUSED(id, 0);
    REFUSED(heartbeat_tick, 0);
    REFUSED(election_tick, 1);
    REFUSED(max_inflight_msgs, 0);
    REFUSED(storage, NULL);
    REFUSED(read_only_option, 7);
    cfg = good;
    cfg.read_only_option = CRAFT_READ_ONLY_LEASE;
    cfg.check_quorum = false;
    assert_int_equal(craft_raft_create(&cfg, &r, &why), CRAFT_EINVAL);
    assert_int_equal(craft_raft_create(NULL, &r, &why), CRAFT_EINVAL);
    /* applied beyond what storage has committed. */
    REFUSED(applied, 3);
    /* A hard state committing past the log is refused too. */
    craft_memstore_set_hard_state(ms, &hs);
    why = NULL;
    assert_int_not_equal(craft_raft_create(&good, &r, &why), 0);
    assert_non_null(why);
#undef REFUSED
    craft_memstore_destroy(ms);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_drops_messages_it_must_not_receive),
        cmocka_unit_test(test_candidate_drops_pre_vote_answers),
        cmocka_unit_test(test_unknown_message_type_is_refused),
        cmocka_unit_test(test_null_entry_pointers_are_refused),
        cmocka_unit_test(test_malformed_appends_are_refused),
        cmocka_unit_test(test_undecodable_conf_change_is_skipped),
        cmocka_unit_test(test_malformed_snapshots_are_refused),
        cmocka_unit_test(test_messages_from_strangers_are_dropped),
        cmocka_unit_test(test_ready_api_misuse),
        cmocka_unit_test(test_config_validation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
