/* The host runtime end to end: hosts in one process, on loopback, with real
 * WAL and snapshot directories and a small state machine (a counter and a
 * running hash of what it applied, so replicas can be compared). */
#include "../storage/storage_test_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <craft/host.h>

#include "../common/counter_fsm.h"

#define MAX_HOSTS 5
#define MAX_GROUPS 64

struct node {
    uint64_t id;
    struct craft_log_store *mem_log; /* a replaced log store, or NULL for the WAL */
    char *dir;
    char address[64];
    struct craft_host *host;
    struct counter fsm[MAX_GROUPS + 1];
};

struct cluster {
    struct node nodes[MAX_HOSTS];
    int n;
    uint32_t snapshot_entries;
    uint64_t compaction_overhead;
};

static int factory(void *arg, uint64_t group_id, struct craft_fsm *out)
{
    struct node *n = arg;
    struct counter *c = &n->fsm[group_id];
    pthread_mutex_lock(&c->lock);
    c->count = c->hash = c->applied = 0;
    pthread_mutex_unlock(&c->lock);
    *out = (struct craft_fsm){
        .data = c, .apply = counter_apply, .save = counter_save, .restore = counter_restore};
    return 0;
}

static void quiet_log(void *arg, int level, const char *message)
{
    (void)arg;
    if (level >= CRAFT_HOST_LOG_WARN)
        fprintf(stderr, "  host log: %s\n", message);
}

static void start_host(struct node *n, const char *listen)
{
    struct craft_host_config cfg;
    craft_host_config_init(&cfg);
    cfg.node_id = n->id;
    cfg.cluster_id = 42;
    cfg.data_dir = n->dir;
    cfg.listen_address = listen;
    cfg.tick_ms = 10;
    cfg.log = quiet_log;
    cfg.log_store = n->mem_log;
    char err[256];
    int rc = craft_host_start(&cfg, &n->host, err, sizeof(err));
    if (rc != 0)
        fail_msg("start host %llu: %s", (unsigned long long)n->id, err);
    snprintf(n->address, sizeof(n->address), "127.0.0.1:%d", craft_host_port(n->host));
}

static void start_group(struct cluster *c, struct node *n, uint64_t group, uint32_t how,
                        int n_members)
{
    struct craft_member members[MAX_HOSTS];
    for (int i = 0; i < n_members; i++) {
        members[i].id = c->nodes[i].id;
        members[i].address = c->nodes[i].address;
        members[i].role = CRAFT_ROLE_FOLLOWER;
    }
    struct craft_group_config g;
    craft_group_config_init(&g);
    g.group_id = group;
    g.start = how;
    g.members = members;
    g.n_members = (uint32_t)n_members;
    g.fsm_factory = factory;
    g.fsm_arg = n;
    g.snapshot_entries = c->snapshot_entries;
    g.compaction_overhead = c->compaction_overhead;
    char err[256];
    int rc = craft_host_start_group(n->host, &g, err, sizeof(err));
    if (rc != 0)
        fail_msg("start group %llu on %llu: %s", (unsigned long long)group,
                 (unsigned long long)n->id, err);
}

static void set_addresses(struct cluster *c)
{
    for (int i = 0; i < c->n; i++)
        for (int j = 0; j < c->n; j++)
            if (c->nodes[i].host != NULL && c->nodes[j].address[0] != '\0')
                craft_host_set_address(c->nodes[i].host, c->nodes[j].id, c->nodes[j].address);
}

/* n hosts bootstrapping groups 1..groups; snapshots every snapshot_entries
 * entries keeping overhead behind (0: the defaults). */
static struct cluster *cluster_new_with(int n, uint64_t groups, uint32_t snapshot_entries,
                                        uint64_t overhead)
{
    struct cluster *c = calloc(1, sizeof(*c));
    c->n = n;
    c->snapshot_entries = snapshot_entries;
    c->compaction_overhead = overhead;
    for (int i = 0; i < MAX_HOSTS; i++) {
        c->nodes[i].id = (uint64_t)i + 1;
        c->nodes[i].dir = tu_mkdtemp("host");
        for (int g = 0; g <= MAX_GROUPS; g++)
            pthread_mutex_init(&c->nodes[i].fsm[g].lock, NULL);
    }
    for (int i = 0; i < n; i++)
        start_host(&c->nodes[i], "127.0.0.1:0");
    for (uint64_t g = 1; g <= groups; g++)
        for (int i = 0; i < n; i++)
            start_group(c, &c->nodes[i], g, CRAFT_GROUP_BOOTSTRAP, n);
    return c;
}

static struct cluster *cluster_new(int n, uint64_t groups)
{
    return cluster_new_with(n, groups, 0, 0);
}

static void cluster_free(struct cluster *c)
{
    for (int i = 0; i < MAX_HOSTS; i++) {
        if (c->nodes[i].host != NULL)
            craft_host_stop(c->nodes[i].host);
        if (c->nodes[i].mem_log != NULL)
            c->nodes[i].mem_log->close(c->nodes[i].mem_log->data);
        tu_rmtree(c->nodes[i].dir);
        for (int g = 0; g <= MAX_GROUPS; g++)
            pthread_mutex_destroy(&c->nodes[i].fsm[g].lock);
    }
    free(c);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Proposes through node i until accepted (a leader may not exist yet);
 * returns the state machine's result value. */
static uint64_t propose_via(struct cluster *c, int i, uint64_t group, const char *text)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        struct craft_result res;
        uint64_t leader = 0;
        int rc = craft_host_propose_sync(c->nodes[i].host, group, NULL, text,
                                         (uint32_t)strlen(text), 2000, &res, &leader);
        if (rc == 0) {
            free(res.data);
            return res.value;
        }
        sleep_ms(20);
    }
    fail_msg("no proposal through node %d was accepted", i);
    return 0;
}

static uint64_t leader_of(struct cluster *c, uint64_t group)
{
    for (int attempt = 0; attempt < 500; attempt++) {
        for (int i = 0; i < c->n; i++) {
            if (c->nodes[i].host == NULL)
                continue;
            struct craft_group_status *st = malloc(sizeof(*st));
            if (craft_host_group_status(c->nodes[i].host, group, st) == 0 &&
                st->raft.role == CRAFT_ROLE_LEADER) {
                uint64_t id = st->raft.id;
                free(st);
                return id;
            }
            free(st);
        }
        sleep_ms(10);
    }
    fail_msg("group %llu elected no leader", (unsigned long long)group);
    return 0;
}

static void counter_get(struct counter *c, uint64_t *count, uint64_t *hash)
{
    pthread_mutex_lock(&c->lock);
    *count = c->count;
    *hash = c->hash;
    pthread_mutex_unlock(&c->lock);
}

/* Every running node reads linearizably and then holds count entries with
 * the same hash. */
static void check_converged(struct cluster *c, uint64_t group, uint64_t count)
{
    uint64_t hash0 = 0;
    bool first = true;
    for (int i = 0; i < c->n; i++) {
        struct node *n = &c->nodes[i];
        if (n->host == NULL)
            continue;
        int rc = -1;
        for (int attempt = 0; attempt < 100 && rc != 0; attempt++) {
            rc = craft_host_read_sync(n->host, group, 2000, NULL, NULL);
            if (rc != 0)
                sleep_ms(20);
        }
        assert_int_equal(rc, 0);
        uint64_t got, hash;
        counter_get(&n->fsm[group], &got, &hash);
        assert_int_equal(got, count);
        if (first)
            hash0 = hash;
        assert_int_equal(hash, hash0);
        first = false;
    }
}

/* ---- tests ---- */

static void test_three_hosts_elect_and_replicate(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 1);
    assert_int_not_equal(leader_of(c, 1), 0);
    for (int k = 0; k < 30; k++) {
        char text[32];
        snprintf(text, sizeof(text), "entry-%d", k);
        assert_int_equal(propose_via(c, k % 3, 1, text), (uint64_t)k + 1);
    }
    check_converged(c, 1, 30);
    struct craft_host_metrics m;
    craft_host_get_metrics(c->nodes[0].host, &m);
    assert_true(m.wal_fsyncs > 0);
    assert_true(m.messages_received > 0);
    cluster_free(c);
}

static void test_restart_from_disk_keeps_every_entry(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 1);
    for (int k = 0; k < 20; k++)
        propose_via(c, 0, 1, "before restart");
    for (int i = 0; i < 3; i++) {
        craft_host_stop(c->nodes[i].host);
        c->nodes[i].host = NULL;
    }
    /* Same addresses again: restart the listeners on the same ports. */
    for (int i = 0; i < 3; i++) {
        char listen[64];
        snprintf(listen, sizeof(listen), "%s", c->nodes[i].address);
        start_host(&c->nodes[i], listen);
    }
    set_addresses(c);
    for (int i = 0; i < 3; i++)
        start_group(c, &c->nodes[i], 1, CRAFT_GROUP_RESTART, 3);
    assert_int_equal(propose_via(c, 1, 1, "after restart"), 21);
    check_converged(c, 1, 21);
    cluster_free(c);
}

static void test_leader_killed_another_takes_over(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 1);
    for (int k = 0; k < 10; k++)
        propose_via(c, k % 3, 1, "x");
    uint64_t old = leader_of(c, 1);
    craft_host_stop(c->nodes[old - 1].host);
    c->nodes[old - 1].host = NULL;
    int other = old == 1 ? 1 : 0;
    assert_int_equal(propose_via(c, other, 1, "after failover"), 11);
    uint64_t now = leader_of(c, 1);
    assert_int_not_equal(now, old);
    check_converged(c, 1, 11);
    cluster_free(c);
}

static void test_new_member_catches_up_through_a_snapshot(void **state)
{
    (void)state;
    /* Snapshot every 20 entries, keep 5 behind: the log is compacted. */
    struct cluster *cl = cluster_new_with(3, 1, 20, 5);
    for (int k = 0; k < 100; k++)
        propose_via(cl, 0, 1, "fill");
    /* Node 4 joins. */
    start_host(&cl->nodes[3], "127.0.0.1:0");
    cl->n = 4;
    set_addresses(cl);
    start_group(cl, &cl->nodes[3], 1, CRAFT_GROUP_JOIN, 0);
    uint64_t leader = leader_of(cl, 1);
    int rc = -1;
    for (int attempt = 0; attempt < 50 && rc != 0; attempt++) {
        leader = leader_of(cl, 1);
        rc = craft_host_add_member_sync(cl->nodes[leader - 1].host, 1, 4, cl->nodes[3].address,
                                        CRAFT_ROLE_FOLLOWER, 3000, NULL);
        if (rc != 0)
            sleep_ms(20);
    }
    assert_int_equal(rc, 0);
    propose_via(cl, 0, 1, "after join");
    check_converged(cl, 1, 101);
    struct craft_host_metrics m;
    craft_host_get_metrics(cl->nodes[3].host, &m);
    assert_true(m.snapshots_received >= 1);
    cluster_free(cl);
}

/* A follower that was down while the log was compacted past it comes back
 * through a snapshot, without a panic (dragonboat's "invalid commitTo"). */
static void test_follower_far_behind_catches_up_after_compaction(void **state)
{
    (void)state;
    /* Snapshot every 20 entries, keep 5 behind: the log is compacted. */
    struct cluster *c = cluster_new_with(3, 1, 20, 5);
    propose_via(c, 0, 1, "first");
    uint64_t leader = leader_of(c, 1);
    int down = (int)(leader % 3); /* a follower's index */
    char listen[64];
    snprintf(listen, sizeof(listen), "%s", c->nodes[down].address);
    craft_host_stop(c->nodes[down].host);
    c->nodes[down].host = NULL;
    for (int k = 0; k < 150; k++)
        propose_via(c, (int)leader - 1, 1, "while it was away");
    start_host(&c->nodes[down], listen);
    set_addresses(c);
    start_group(c, &c->nodes[down], 1, CRAFT_GROUP_RESTART, 3);
    check_converged(c, 1, 151);
    struct craft_host_metrics m;
    craft_host_get_metrics(c->nodes[down].host, &m);
    assert_true(m.snapshots_received >= 1);
    cluster_free(c);
}

static void test_remove_member_and_transfer_leadership(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 1);
    propose_via(c, 0, 1, "a");
    uint64_t leader = leader_of(c, 1);
    uint64_t target = leader % 3 + 1;
    int rc = craft_host_transfer_leader_sync(c->nodes[leader - 1].host, 1, target, 5000);
    assert_int_equal(rc, 0);
    assert_int_equal(leader_of(c, 1), target);
    uint64_t victim = target % 3 + 1;
    rc = craft_host_remove_member_sync(c->nodes[target - 1].host, 1, victim, 5000, NULL);
    assert_int_equal(rc, 0);
    struct craft_group_status *st = malloc(sizeof(*st));
    assert_int_equal(craft_host_group_status(c->nodes[target - 1].host, 1, st), 0);
    assert_false(craft_conf_state_contains(&st->raft.conf, victim));
    free(st);
    craft_host_stop(c->nodes[victim - 1].host);
    c->nodes[victim - 1].host = NULL;
    propose_via(c, (int)target - 1, 1, "two members left");
    check_converged(c, 1, 2);
    cluster_free(c);
}

static void test_session_applies_a_retry_once(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 1);
    propose_via(c, 0, 1, "warm up");
    struct craft_session s;
    int rc = -1;
    for (int attempt = 0; attempt < 50 && rc != 0; attempt++)
        rc = craft_host_session_open(c->nodes[1].host, 1, 2000, &s);
    assert_int_equal(rc, 0);
    struct craft_result r1, r2;
    assert_int_equal(craft_host_propose_sync(c->nodes[1].host, 1, &s, "once", 4, 2000, &r1, NULL),
                     0);
    /* The same series again, as a client retrying after a lost answer. */
    assert_int_equal(craft_host_propose_sync(c->nodes[1].host, 1, &s, "once", 4, 2000, &r2, NULL),
                     0);
    assert_int_equal(r1.value, r2.value);
    craft_session_next(&s);
    struct craft_result r3;
    assert_int_equal(craft_host_propose_sync(c->nodes[1].host, 1, &s, "twice", 5, 2000, &r3, NULL),
                     0);
    assert_int_equal(r3.value, r1.value + 1);
    check_converged(c, 1, 3);
    assert_int_equal(craft_host_session_close(c->nodes[1].host, &s, 2000), 0);
    cluster_free(c);
}

static void test_64_groups_at_once(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 64);
    for (uint64_t g = 1; g <= 64; g++)
        propose_via(c, (int)(g % 3), g, "group");
    for (uint64_t g = 1; g <= 64; g += 9)
        check_converged(c, g, 1);
    size_t n = 0;
    assert_int_equal(craft_host_groups(c->nodes[0].host, NULL, 0, &n), 0);
    assert_int_equal(n, 64);
    cluster_free(c);
}

/* The log store is an interface: hosts on the in-memory one (no WAL at
 * all) elect, replicate, and bring a new member in through a snapshot. */
static void test_a_replaced_log_store_serves_the_host(void **state)
{
    (void)state;
    struct cluster *c = calloc(1, sizeof(*c));
    c->n = 3;
    c->snapshot_entries = 20;
    c->compaction_overhead = 5;
    for (int i = 0; i < MAX_HOSTS; i++) {
        c->nodes[i].id = (uint64_t)i + 1;
        c->nodes[i].dir = tu_mkdtemp("host");
        assert_int_equal(craft_log_store_mem_create(&c->nodes[i].mem_log), 0);
        for (int g = 0; g <= MAX_GROUPS; g++)
            pthread_mutex_init(&c->nodes[i].fsm[g].lock, NULL);
    }
    for (int i = 0; i < 3; i++)
        start_host(&c->nodes[i], "127.0.0.1:0");
    for (int i = 0; i < 3; i++)
        start_group(c, &c->nodes[i], 1, CRAFT_GROUP_BOOTSTRAP, 3);
    for (int k = 0; k < 60; k++)
        propose_via(c, k % 3, 1, "in memory");
    start_host(&c->nodes[3], "127.0.0.1:0");
    c->n = 4;
    set_addresses(c);
    start_group(c, &c->nodes[3], 1, CRAFT_GROUP_JOIN, 0);
    int rc = -1;
    for (int attempt = 0; attempt < 50 && rc != 0; attempt++) {
        uint64_t leader = leader_of(c, 1);
        rc = craft_host_add_member_sync(c->nodes[leader - 1].host, 1, 4, c->nodes[3].address,
                                        CRAFT_ROLE_FOLLOWER, 3000, NULL);
        if (rc != 0)
            sleep_ms(20);
    }
    assert_int_equal(rc, 0);
    check_converged(c, 1, 60);
    /* No WAL directory was created: the log lived in the replaced store. */
    char path[4200];
    snprintf(path, sizeof(path), "%s/wal", c->nodes[0].dir);
    assert_int_not_equal(access(path, F_OK), 0);
    cluster_free(c);
}

/* With no leader, a proposal waits and then fails as never proposed
 * (CRAFT_ENOLEADER: surely not applied), not as an unknown timeout. */
static void test_no_leader_is_a_definite_failure(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(1, 0);
    struct craft_member members[3] = {
        {.id = 1, .address = c->nodes[0].address, .role = CRAFT_ROLE_FOLLOWER},
        {.id = 2, .address = "127.0.0.1:1", .role = CRAFT_ROLE_FOLLOWER},
        {.id = 3, .address = "127.0.0.1:2", .role = CRAFT_ROLE_FOLLOWER},
    };
    struct craft_group_config g;
    craft_group_config_init(&g);
    g.group_id = 5;
    g.start = CRAFT_GROUP_BOOTSTRAP;
    g.members = members;
    g.n_members = 3;
    g.fsm_factory = factory;
    g.fsm_arg = &c->nodes[0];
    char err[256];
    assert_int_equal(craft_host_start_group(c->nodes[0].host, &g, err, sizeof(err)), 0);
    uint64_t leader = 99;
    assert_int_equal(craft_host_propose_sync(c->nodes[0].host, 5, NULL, "x", 1, 300, NULL, &leader),
                     CRAFT_ENOLEADER);
    assert_int_equal(leader, 0);
    cluster_free(c);
}

static void test_errors_say_what_to_do(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(1, 1);
    assert_int_equal(craft_host_propose_sync(c->nodes[0].host, 99, NULL, "x", 1, 100, NULL, NULL),
                     CRAFT_ENOGROUP);
    char err[256];
    struct craft_group_config g;
    craft_group_config_init(&g);
    g.group_id = 7;
    g.start = CRAFT_GROUP_RESTART;
    assert_int_equal(craft_host_start_group(c->nodes[0].host, &g, err, sizeof(err)),
                     CRAFT_ENOGROUP);
    assert_non_null(strstr(err, "no data"));
    /* An address nobody could reach is refused before anything is proposed. */
    assert_int_equal(craft_host_add_member_sync(c->nodes[0].host, 1, 9, "nonsense",
                                                CRAFT_ROLE_FOLLOWER, 100, NULL),
                     CRAFT_EINVAL);
    assert_int_equal(craft_host_add_member_sync(c->nodes[0].host, 1, 9, "999.1.1.1:99999",
                                                CRAFT_ROLE_FOLLOWER, 100, NULL),
                     CRAFT_EINVAL);
    cluster_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_hosts_elect_and_replicate),
        cmocka_unit_test(test_restart_from_disk_keeps_every_entry),
        cmocka_unit_test(test_leader_killed_another_takes_over),
        cmocka_unit_test(test_new_member_catches_up_through_a_snapshot),
        cmocka_unit_test(test_follower_far_behind_catches_up_after_compaction),
        cmocka_unit_test(test_remove_member_and_transfer_leadership),
        cmocka_unit_test(test_session_applies_a_retry_once),
        cmocka_unit_test(test_64_groups_at_once),
        cmocka_unit_test(test_a_replaced_log_store_serves_the_host),
        cmocka_unit_test(test_no_leader_is_a_definite_failure),
        cmocka_unit_test(test_errors_say_what_to_do),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
