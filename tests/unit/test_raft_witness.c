/* Scenario tests for witnesses: voters that hold metadata only. A witness
 * receives normal entries as CRAFT_ENTRY_METADATA (index and term, no data)
 * but membership entries in full, votes and counts toward quorums, and never
 * campaigns, leads, takes proposals or serves reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

/* Voters 1, 2, 3 of which 3 is a witness. */
static struct net *witness_group(const struct craft_config *cfg)
{
    struct craft_conf_state boot = net_voters(3);

    boot.witnesses[boot.n_witnesses++] = 3;
    return net_create(3, &boot, cfg);
}

struct entry_log {
    uint64_t to;
    size_t normal, metadata, conf, data_bytes;
};

static bool log_entries_to(struct net *net, const struct craft_message *m, void *arg)
{
    struct entry_log *el = arg;
    uint32_t i;

    (void)net;
    if (m->type != CRAFT_MSG_APPEND || m->to != el->to) {
        return false;
    }
    for (i = 0; i < m->n_entries; i++) {
        const struct craft_entry *e = &m->entries[i];
        switch (e->type) {
        case CRAFT_ENTRY_NORMAL:
            el->normal++;
            break;
        case CRAFT_ENTRY_METADATA:
            el->metadata++;
            assert_int_equal(e->len, 0);
            assert_null(e->data);
            break;
        case CRAFT_ENTRY_CONF_CHANGE:
            el->conf++;
            break;
        default:
            fail();
        }
        el->data_bytes += e->len;
    }
    return false;
}

/* A witness receives normal entries as metadata only, but membership
 * entries in full, and applies the membership change. */
static void test_witness_receives_metadata_and_full_conf_changes(void **state)
{
    struct net *net = witness_group(NULL);
    struct entry_log w = {3, 0, 0, 0, 0};
    struct entry_log f = {2, 0, 0, 0, 0};
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_NON_VOTING, 4);
    struct craft_status st;
    const struct net_applied *a;

    (void)state;
    net_set_intercept(net, log_entries_to, &w);
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "payload"), 0);
    assert_int_equal(w.normal, 0);
    assert_int_equal(w.metadata, 2); /* the no-op and the payload */
    assert_int_equal(w.data_bytes, 0);
    a = net_applied_at(net, 3, 2);
    assert_non_null(a);
    assert_int_equal(a->type, CRAFT_ENTRY_METADATA);
    assert_int_equal(a->len, 0);
    assert_true(net_applied_has(net, 2, "payload"));
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 1);
    assert_int_equal(w.conf, 1);
    assert_true(w.data_bytes > 0);
    net_status(net, 3, &st);
    assert_true(craft_conf_state_is_learner(&st.conf, 4));
    assert_int_equal(st.role, CRAFT_ROLE_WITNESS);
    /* A full follower gets the data. */
    net_set_intercept(net, log_entries_to, &f);
    assert_int_equal(net_propose(net, 1, "more"), 0);
    assert_int_equal(f.normal, 1);
    assert_int_equal(f.metadata, 0);
    net_destroy(net);
}

/* A witness votes, and its acknowledgement counts toward commitment. */
static void test_witness_votes_and_counts_toward_quorum(void **state)
{
    struct net *net = witness_group(NULL);

    (void)state;
    net_isolate(net, 2);
    net_elect(net, 1); /* with the witness's vote */
    assert_int_equal(net_propose(net, 1, "with-witness"), 0);
    assert_true(net_applied_has(net, 1, "with-witness"));
    net_destroy(net);
}

/* A witness never campaigns, however long it hears nothing, and a
 * TimeoutNow does not make it campaign either. */
static void test_witness_never_campaigns(void **state)
{
    struct net *net = witness_group(NULL);
    struct craft_message m;
    struct craft_status st;

    (void)state;
    assert_int_equal(craft_raft_role(net_raft(net, 3)), CRAFT_ROLE_WITNESS);
    net_tick(net, 3, 200);
    assert_int_equal(craft_raft_campaign(net_raft(net, 3)), 0);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_TIMEOUT_NOW;
    m.from = 1;
    m.to = 3;
    net_step(net, 3, &m);
    net_status(net, 3, &st);
    assert_int_equal(st.role, CRAFT_ROLE_WITNESS);
    assert_int_equal(st.term, 0);
    assert_int_equal(st.stats.elections, 0);
    net_destroy(net);
}

/* A witness takes no proposals, serves no reads and cannot be the target of
 * a leader transfer. */
static void test_witness_takes_no_proposals_reads_or_leadership(void **state)
{
    struct net *net = witness_group(NULL);

    (void)state;
    net_elect(net, 1);
    assert_int_not_equal(net_propose(net, 3, "nope"), 0);
    assert_int_not_equal(craft_raft_read_index(net_raft(net, 3), 1), 0);
    assert_int_not_equal(craft_raft_transfer_leader(net_raft(net, 1), 3), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, 1)), CRAFT_ROLE_LEADER);
    assert_false(net_applied_has(net, 1, "nope"));
    net_destroy(net);
}

/* A witness added by a membership change becomes a witness and gets
 * metadata from then on. */
static void test_witness_added_by_membership_change(void **state)
{
    struct craft_conf_state boot = net_voters(3);
    struct net *net = net_create(3, &boot, NULL);
    struct craft_conf_change cc = net_cc1(CRAFT_TRANSITION_AUTO, CRAFT_CC_ADD_WITNESS, 4);
    struct entry_log w = {4, 0, 0, 0, 0};
    struct craft_status st;

    (void)state;
    net_add_node(net, 4, &boot, NULL);
    net_elect(net, 1);
    assert_int_equal(net_propose_cc(net, 1, &cc), 0);
    net_tick(net, 1, 2);
    net_status(net, 4, &st);
    assert_int_equal(st.role, CRAFT_ROLE_WITNESS);
    assert_true(craft_conf_state_is_witness(&st.conf, 4));
    assert_true(craft_conf_state_is_voter(&st.conf, 4));
    net_set_intercept(net, log_entries_to, &w);
    assert_int_equal(net_propose(net, 1, "secret"), 0);
    assert_int_equal(w.normal, 0);
    assert_int_equal(w.metadata, 1);
    assert_false(net_applied_has(net, 4, "secret"));
    net_destroy(net);
}

/* A witness's metadata log still carries terms, so the election restriction
 * holds with it: it refuses a candidate whose log is behind. */
static void test_witness_enforces_election_restriction(void **state)
{
    struct net *net = witness_group(NULL);
    struct craft_message m;
    const struct craft_message *resp;

    (void)state;
    net_elect(net, 1);
    assert_int_equal(net_propose(net, 1, "a"), 0); /* logs end (2, 1) */
    net_clear_queue(net);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_VOTE;
    m.from = 2;
    m.to = 3;
    m.term = 2;
    m.index = 1;
    m.log_term = 1;
    net_step(net, 3, &m);
    resp = net_queued_msg(net, CRAFT_MSG_VOTE_RESP, 3, 2, 0);
    assert_non_null(resp);
    assert_true(resp->reject);
    net_destroy(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_witness_receives_metadata_and_full_conf_changes),
        cmocka_unit_test(test_witness_votes_and_counts_toward_quorum),
        cmocka_unit_test(test_witness_never_campaigns),
        cmocka_unit_test(test_witness_takes_no_proposals_reads_or_leadership),
        cmocka_unit_test(test_witness_added_by_membership_change),
        cmocka_unit_test(test_witness_enforces_election_restriction),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
