/* The WAL under the raft core: a single-voter group runs its ready cycle on
 * the WAL (persist, commit when must_sync, advance), restarts from what the
 * WAL recovered, and carries on: the core reads its stable log through
 * craft_wal_storage. */
#include "../storage/storage_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define GROUP 7

struct node {
    struct craft_wal *wal;
    struct craft_log_store *ls;
    struct craft_raft *raft;
    uint64_t applied;
    int applied_normal; /* non-empty normal entries applied */
};

/* Step 1 to 4 of the ready cycle, until nothing is ready. */
static void run_ready(struct node *n)
{
    while (craft_raft_has_ready(n->raft)) {
        struct craft_ready rd;
        assert_int_equal(craft_raft_ready(n->raft, &rd), 0);
        if (rd.snapshot != NULL)
            assert_int_equal(n->ls->save_snapshot(n->ls->data, GROUP, rd.snapshot), 0);
        if (rd.n_entries > 0)
            assert_int_equal(n->ls->append(n->ls->data, GROUP, rd.entries, rd.n_entries), 0);
        if (rd.has_hard_state)
            assert_int_equal(n->ls->save_hard_state(n->ls->data, GROUP, &rd.hard_state), 0);
        if (rd.has_conf_state)
            assert_int_equal(n->ls->save_conf_state(n->ls->data, GROUP, &rd.conf_state), 0);
        if (rd.must_sync)
            assert_int_equal(craft_wal_commit(n->wal), 0);
        assert_int_equal(rd.n_messages, 0); /* a single voter sends nothing */
        for (size_t i = 0; i < rd.n_committed; i++) {
            n->applied = rd.committed[i].index;
            if (rd.committed[i].type == CRAFT_ENTRY_NORMAL && rd.committed[i].len > 0)
                n->applied_normal++;
        }
        assert_int_equal(craft_raft_advance(n->raft, &rd), 0);
    }
}

static void start(struct node *n, const char *dir, uint64_t applied)
{
    struct craft_wal_options opts;
    char err[512];
    craft_wal_options_init(&opts);
    opts.segment_size = 1 << 20;
    assert_int_equal(craft_wal_open(dir, &opts, &n->wal, err, sizeof(err)), 0);
    n->ls = craft_wal_log_store(n->wal);
    struct craft_config cfg;
    craft_config_default(&cfg);
    cfg.id = 1;
    cfg.applied = applied;
    cfg.storage = craft_wal_storage(n->wal, GROUP);
    const char *why = NULL;
    int rc = craft_raft_create(&cfg, &n->raft, &why);
    if (rc != 0)
        fail_msg("craft_raft_create: %d %s", rc, why ? why : "");
}

/* A clean shutdown: what is buffered (a hard state whose only change was the
 * commit index needs no sync in the ready cycle) is committed first. */
static void stop(struct node *n)
{
    assert_int_equal(craft_wal_commit(n->wal), 0);
    craft_raft_destroy(n->raft);
    craft_wal_close(n->wal);
    n->raft = NULL;
    n->wal = NULL;
}

static void elect(struct node *n)
{
    assert_int_equal(craft_raft_campaign(n->raft), 0);
    for (int i = 0; i < 50 && craft_raft_role(n->raft) != CRAFT_ROLE_LEADER; i++) {
        run_ready(n);
        craft_raft_tick(n->raft);
    }
    run_ready(n);
    assert_int_equal(craft_raft_role(n->raft), CRAFT_ROLE_LEADER);
}

static void test_single_voter_group_runs_and_restarts_on_the_wal(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("raftwal");
    struct node n = {0};

    /* Bootstrap: a snapshot at index 1, term 1, carrying the membership. */
    struct craft_wal_options opts;
    struct craft_wal *wal;
    char err[512];
    craft_wal_options_init(&opts);
    opts.segment_size = 1 << 20;
    assert_int_equal(craft_wal_open(dir, &opts, &wal, err, sizeof(err)), 0);
    struct craft_snapshot_meta boot;
    memset(&boot, 0, sizeof(boot));
    boot.index = 1;
    boot.term = 1;
    boot.conf.n_voters = 1;
    boot.conf.voters[0] = 1;
    struct craft_log_store *ls = craft_wal_log_store(wal);
    assert_int_equal(ls->save_snapshot(ls->data, GROUP, &boot), 0);
    assert_int_equal(craft_wal_commit(wal), 0);
    craft_wal_close(wal);

    start(&n, dir, 0);
    elect(&n);
    for (int i = 0; i < 20; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "value-%d", i);
        assert_int_equal(craft_raft_propose(n.raft, buf, (uint32_t)len), 0);
        run_ready(&n);
    }
    assert_int_equal(n.applied_normal, 20);
    struct craft_status st;
    craft_raft_status(n.raft, &st);
    uint64_t term = st.term, commit = st.commit, last = st.last_index;
    assert_true(commit >= 21);
    stop(&n);

    /* Restart from the WAL: same term, log and commit index. */
    start(&n, dir, commit);
    craft_raft_status(n.raft, &st);
    assert_int_equal(st.term, term);
    assert_int_equal(st.last_index, last);
    assert_true(st.commit >= commit);
    struct craft_entry out[64];
    size_t got;
    const struct craft_storage *s = craft_wal_storage(n.wal, GROUP);
    assert_int_equal(s->entries(s->data, 2, last + 1, UINT64_MAX, out, 64, &got), 0);
    int values = 0;
    for (size_t i = 0; i < got; i++)
        if (out[i].type == CRAFT_ENTRY_NORMAL && out[i].len > 0) {
            char expect[32];
            int len = snprintf(expect, sizeof(expect), "value-%d", values++);
            assert_int_equal(out[i].len, len);
            assert_memory_equal(out[i].data, expect, (size_t)len);
        }
    assert_int_equal(values, 20);
    /* And it goes on: a new election, new proposals. */
    elect(&n);
    n.applied_normal = 0;
    assert_int_equal(craft_raft_propose(n.raft, "more", 4), 0);
    run_ready(&n);
    assert_int_equal(n.applied_normal, 1);
    craft_raft_status(n.raft, &st);
    assert_true(st.term > term);
    stop(&n);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_voter_group_runs_and_restarts_on_the_wal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
