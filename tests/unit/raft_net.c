/* The scenario tests' network of craft_raft nodes (see raft_net.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft_net.h"

#define NET_MAX_ROUNDS 10000

void net_default_config(struct craft_config *cfg)
{
    craft_config_default(cfg);
    cfg->pre_vote = false;
    cfg->check_quorum = false;
    cfg->seed = 1;
}

struct craft_conf_state net_voters(uint32_t n)
{
    struct craft_conf_state cs;
    uint32_t i;

    memset(&cs, 0, sizeof(cs));
    for (i = 0; i < n; i++) {
        cs.voters[cs.n_voters++] = i + 1;
    }
    return cs;
}

struct craft_conf_change net_cc1(uint32_t transition, uint32_t type, uint64_t node)
{
    struct craft_conf_change cc;

    memset(&cc, 0, sizeof(cc));
    cc.transition = transition;
    cc.n_changes = 1;
    cc.changes[0].type = type;
    cc.changes[0].node_id = node;
    return cc;
}

struct net_node *net_node(struct net *net, uint64_t id)
{
    assert_true(id >= 1 && id <= NET_MAX_NODES);
    assert_true(net->nodes[id - 1].used);
    return &net->nodes[id - 1];
}

struct craft_raft *net_raft(struct net *net, uint64_t id)
{
    struct net_node *n = net_node(net, id);

    assert_non_null(n->raft);
    return n->raft;
}

void net_status(struct net *net, uint64_t id, struct craft_status *st)
{
    craft_raft_status(net_raft(net, id), st);
}

static void start_node(struct net_node *n)
{
    const char *why = NULL;
    int rc = craft_raft_create(&n->cfg, &n->raft, &why);

    if (rc != 0) {
        print_error("craft_raft_create(%llu): %d %s\n", (unsigned long long)n->id, rc,
                    why ? why : "");
    }
    assert_int_equal(rc, 0);
    n->up = true;
}

void net_add_node(struct net *net, uint64_t id, const struct craft_conf_state *conf,
                  const struct craft_config *tmpl)
{
    struct net_node *n;
    struct craft_conf_state empty;

    assert_true(id >= 1 && id <= NET_MAX_NODES);
    n = &net->nodes[id - 1];
    assert_false(n->used);
    memset(n, 0, sizeof(*n));
    n->used = true;
    n->id = id;
    assert_int_equal(craft_memstore_create(&n->store), 0);
    if (conf == NULL) {
        memset(&empty, 0, sizeof(empty));
        conf = &empty;
    }
    /* The bootstrap membership: the only time the harness sets it. */
    craft_memstore_set_conf_state(n->store, conf);
    if (tmpl != NULL) {
        n->cfg = *tmpl;
    } else {
        net_default_config(&n->cfg);
    }
    n->cfg.id = id;
    n->cfg.storage = craft_memstore_storage(n->store);
    start_node(n);
}

struct net *net_create(uint32_t count, const struct craft_conf_state *conf,
                       const struct craft_config *tmpl)
{
    struct net *net = calloc(1, sizeof(*net));
    struct craft_conf_state all = net_voters(count);
    uint32_t i;

    assert_non_null(net);
    assert_true(count <= NET_MAX_NODES);
    for (i = 0; i < count; i++) {
        net_add_node(net, i + 1, conf != NULL ? conf : &all, tmpl);
    }
    return net;
}

static void free_applied(struct net_node *n)
{
    size_t i;

    for (i = 0; i < n->n_applied; i++) {
        free(n->applied[i].data);
    }
    free(n->applied);
    n->applied = NULL;
    n->n_applied = n->cap_applied = 0;
}

static void free_msg(struct net_msg *nm)
{
    free(nm->entries);
    nm->entries = NULL;
}

void net_clear_queue(struct net *net)
{
    size_t i;

    for (i = 0; i < net->queue_n; i++) {
        free_msg(&net->queue[net->queue_start + i]);
    }
    net->queue_start = 0;
    net->queue_n = 0;
}

void net_destroy(struct net *net)
{
    uint32_t i;

    if (net == NULL) {
        return;
    }
    net_clear_queue(net);
    free(net->queue);
    for (i = 0; i < NET_MAX_NODES; i++) {
        struct net_node *n = &net->nodes[i];
        if (!n->used) {
            continue;
        }
        craft_raft_destroy(n->raft);
        craft_memstore_destroy(n->store);
        free_applied(n);
        free(n->reads);
    }
    free(net);
}

/* Copies m, its entries (with their data) and its snapshot metadata. */
static void enqueue(struct net *net, const struct craft_message *m)
{
    struct net_msg *nm;
    size_t bytes = 0, i;
    unsigned char *data;

    if (net->queue_start + net->queue_n == net->queue_cap) {
        if (net->queue_start > 0) {
            memmove(net->queue, net->queue + net->queue_start, net->queue_n * sizeof(*net->queue));
            net->queue_start = 0;
        } else {
            size_t cap = net->queue_cap ? net->queue_cap * 2 : 64;
            net->queue = realloc(net->queue, cap * sizeof(*net->queue));
            assert_non_null(net->queue);
            net->queue_cap = cap;
        }
    }
    nm = &net->queue[net->queue_start + net->queue_n++];
    memset(nm, 0, sizeof(*nm));
    nm->m = *m;
    if (m->n_entries > 0) {
        for (i = 0; i < m->n_entries; i++) {
            bytes += m->entries[i].len;
        }
        nm->entries = malloc(m->n_entries * sizeof(*nm->entries) + bytes);
        assert_non_null(nm->entries);
        data = (unsigned char *)(nm->entries + m->n_entries);
        for (i = 0; i < m->n_entries; i++) {
            nm->entries[i] = m->entries[i];
            if (m->entries[i].len > 0) {
                memcpy(data, m->entries[i].data, m->entries[i].len);
                nm->entries[i].data = data;
                data += m->entries[i].len;
            } else {
                nm->entries[i].data = NULL;
            }
        }
        nm->m.entries = nm->entries;
    } else {
        nm->m.entries = NULL;
    }
    if (m->snapshot != NULL) {
        nm->snapshot = *m->snapshot;
        nm->m.snapshot = &nm->snapshot;
    }
    if (m->type < CRAFT_MSG_TYPE_COUNT) {
        net->sent[m->type]++;
    }
}

static void record_applied(struct net_node *n, const struct craft_entry *e)
{
    struct net_applied *a;

    if (n->n_applied == n->cap_applied) {
        size_t cap = n->cap_applied ? n->cap_applied * 2 : 32;
        n->applied = realloc(n->applied, cap * sizeof(*n->applied));
        assert_non_null(n->applied);
        n->cap_applied = cap;
    }
    a = &n->applied[n->n_applied++];
    a->index = e->index;
    a->term = e->term;
    a->type = e->type;
    a->len = e->len;
    a->data = NULL;
    if (e->len > 0) {
        a->data = malloc(e->len);
        assert_non_null(a->data);
        memcpy(a->data, e->data, e->len);
    }
}

void net_send(struct net *net, const struct craft_message *m)
{
    enqueue(net, m);
}

void net_persist(struct net *net, uint64_t id, const struct craft_ready *rd)
{
    struct net_node *n = net_node(net, id);

    if (rd->snapshot != NULL) {
        assert_int_equal(craft_memstore_apply_snapshot(n->store, rd->snapshot), 0);
    }
    if (rd->n_entries > 0) {
        assert_int_equal(craft_memstore_append(n->store, rd->entries, rd->n_entries), 0);
    }
    if (rd->has_hard_state) {
        craft_memstore_set_hard_state(n->store, &rd->hard_state);
    }
}

bool net_ready(struct net *net, uint64_t id)
{
    struct net_node *n = net_node(net, id);
    struct craft_ready rd;
    uint64_t bytes = 0;
    size_t i;

    if (!n->up || !craft_raft_has_ready(n->raft)) {
        return false;
    }
    assert_int_equal(craft_raft_ready(n->raft, &rd), 0);
    n->readies++;
    /* Messages first: copied before persisting may truncate what they
     * point into (raft.h, struct craft_storage). */
    for (i = 0; i < rd.n_messages; i++) {
        /* A forwarded transfer request names the transferee in from
         * (raft.h, CRAFT_MSG_TRANSFER_LEADER); everything else is ours. */
        if (rd.messages[i].type != CRAFT_MSG_TRANSFER_LEADER) {
            assert_int_equal(rd.messages[i].from, id);
        }
        enqueue(net, &rd.messages[i]);
    }
    /* 1. Persist. */
    net_persist(net, id, &rd);
    /* 3. Apply. */
    if (rd.snapshot != NULL) {
        /* The snapshot replaces the state machine. */
        free_applied(n);
        n->snapshot_index = rd.snapshot->index;
    }
    for (i = 0; i < rd.n_committed; i++) {
        record_applied(n, &rd.committed[i]);
        bytes += rd.committed[i].len;
    }
    if (bytes > n->max_committed_bytes) {
        n->max_committed_bytes = bytes;
    }
    if (rd.n_committed > n->max_committed_n) {
        n->max_committed_n = rd.n_committed;
    }
    for (i = 0; i < rd.n_read_states; i++) {
        if (n->n_reads == n->cap_reads) {
            size_t cap = n->cap_reads ? n->cap_reads * 2 : 16;
            n->reads = realloc(n->reads, cap * sizeof(*n->reads));
            assert_non_null(n->reads);
            n->cap_reads = cap;
        }
        n->reads[n->n_reads++] = rd.read_states[i];
    }
    if (rd.has_conf_state) {
        n->saw_conf_state = true;
        n->last_conf_state = rd.conf_state;
    }
    /* 4. Advance. */
    assert_int_equal(craft_raft_advance(n->raft, &rd), 0);
    return true;
}

void net_process(struct net *net)
{
    bool any;
    uint32_t i, rounds = 0;

    do {
        any = false;
        for (i = 0; i < NET_MAX_NODES; i++) {
            if (net->nodes[i].used && net->nodes[i].up) {
                any |= net_ready(net, i + 1);
            }
        }
        assert_true(++rounds < NET_MAX_ROUNDS);
    } while (any);
}

static bool should_drop(struct net *net, const struct craft_message *m)
{
    struct net_node *to;

    if (m->to < 1 || m->to > NET_MAX_NODES || m->from < 1 || m->from > NET_MAX_NODES) {
        return true;
    }
    to = &net->nodes[m->to - 1];
    if (!to->used || !to->up) {
        return true;
    }
    if (net->cut[m->from][m->to]) {
        return true;
    }
    if (m->type < 32 && (net->drop_types & (1u << m->type)) != 0) {
        return true;
    }
    return net->intercept != NULL && net->intercept(net, m, net->intercept_arg);
}

size_t net_deliver(struct net *net)
{
    size_t count = net->queue_n, done = 0;

    while (count-- > 0 && net->queue_n > 0) {
        struct net_msg nm = net->queue[net->queue_start];
        net->queue_start++;
        net->queue_n--;
        if (net->queue_n == 0) {
            net->queue_start = 0;
        }
        bool drop = should_drop(net, &nm.m);
        if (!drop) {
            struct net_node *to = &net->nodes[nm.m.to - 1];
            to->last_step_rc = craft_raft_step(to->raft, &nm.m);
            if (nm.m.type < CRAFT_MSG_TYPE_COUNT) {
                net->delivered[nm.m.type]++;
            }
            done++;
        }
        if (net->report_snapshots && nm.m.type == CRAFT_MSG_SNAPSHOT && nm.m.from >= 1 &&
            nm.m.from <= NET_MAX_NODES && net->nodes[nm.m.from - 1].used &&
            net->nodes[nm.m.from - 1].up) {
            craft_raft_report_snapshot(net->nodes[nm.m.from - 1].raft, nm.m.to, drop);
        }
        free_msg(&nm);
    }
    return done;
}

void net_stabilize(struct net *net)
{
    uint32_t rounds = 0;

    for (;;) {
        net_process(net);
        if (net->queue_n == 0) {
            break;
        }
        net_deliver(net);
        assert_true(++rounds < NET_MAX_ROUNDS);
    }
}

int net_step(struct net *net, uint64_t to, const struct craft_message *m)
{
    int rc = craft_raft_step(net_raft(net, to), m);

    net_ready(net, to);
    return rc;
}

void net_tick(struct net *net, uint64_t id, uint32_t n)
{
    while (n-- > 0) {
        assert_int_equal(craft_raft_tick(net_raft(net, id)), 0);
        net_stabilize(net);
    }
}

void net_tick_all(struct net *net, uint32_t n)
{
    uint32_t i;

    while (n-- > 0) {
        for (i = 0; i < NET_MAX_NODES; i++) {
            if (net->nodes[i].used && net->nodes[i].up) {
                assert_int_equal(craft_raft_tick(net->nodes[i].raft), 0);
            }
        }
        net_stabilize(net);
    }
}

void net_elect(struct net *net, uint64_t id)
{
    assert_int_equal(craft_raft_campaign(net_raft(net, id)), 0);
    net_stabilize(net);
    assert_int_equal(craft_raft_role(net_raft(net, id)), CRAFT_ROLE_LEADER);
}

int net_propose(struct net *net, uint64_t id, const char *data)
{
    int rc = craft_raft_propose(net_raft(net, id), data, (uint32_t)strlen(data));

    net_stabilize(net);
    return rc;
}

int net_propose_cc(struct net *net, uint64_t id, const struct craft_conf_change *cc)
{
    int rc = craft_raft_propose_conf_change(net_raft(net, id), cc);

    net_stabilize(net);
    return rc;
}

uint64_t net_leader(struct net *net)
{
    uint64_t best = 0, best_term = 0;
    uint32_t i;

    for (i = 0; i < NET_MAX_NODES; i++) {
        struct net_node *n = &net->nodes[i];
        if (n->used && n->up && craft_raft_role(n->raft) == CRAFT_ROLE_LEADER &&
            craft_raft_term(n->raft) >= best_term) {
            best = n->id;
            best_term = craft_raft_term(n->raft);
        }
    }
    return best;
}

void net_cut(struct net *net, uint64_t a, uint64_t b)
{
    net->cut[a][b] = true;
    net->cut[b][a] = true;
}

void net_cut_one_way(struct net *net, uint64_t from, uint64_t to)
{
    net->cut[from][to] = true;
}

void net_isolate(struct net *net, uint64_t id)
{
    uint64_t j;

    for (j = 1; j <= NET_MAX_NODES; j++) {
        if (j != id) {
            net_cut(net, id, j);
        }
    }
}

void net_heal(struct net *net)
{
    memset(net->cut, 0, sizeof(net->cut));
}

void net_drop_type(struct net *net, uint32_t type, bool drop)
{
    assert_true(type < 32);
    if (drop) {
        net->drop_types |= 1u << type;
    } else {
        net->drop_types &= ~(1u << type);
    }
}

void net_set_intercept(struct net *net, net_intercept_fn fn, void *arg)
{
    net->intercept = fn;
    net->intercept_arg = arg;
}

static bool msg_matches(const struct craft_message *m, uint32_t type, uint64_t from, uint64_t to)
{
    return (type == CRAFT_MSG_TYPE_COUNT || m->type == type) && (from == 0 || m->from == from) &&
           (to == 0 || m->to == to);
}

size_t net_queued(const struct net *net, uint32_t type, uint64_t from, uint64_t to)
{
    size_t i, count = 0;

    for (i = 0; i < net->queue_n; i++) {
        count += msg_matches(&net->queue[net->queue_start + i].m, type, from, to);
    }
    return count;
}

const struct craft_message *net_queued_msg(const struct net *net, uint32_t type, uint64_t from,
                                           uint64_t to, size_t k)
{
    size_t i;

    for (i = 0; i < net->queue_n; i++) {
        const struct craft_message *m = &net->queue[net->queue_start + i].m;
        if (msg_matches(m, type, from, to) && k-- == 0) {
            return m;
        }
    }
    return NULL;
}

void net_stop(struct net *net, uint64_t id)
{
    struct net_node *n = net_node(net, id);

    craft_raft_destroy(n->raft);
    n->raft = NULL;
    n->up = false;
    free_applied(n);
    n->snapshot_index = 0;
}

void net_restart(struct net *net, uint64_t id)
{
    struct net_node *n = net_node(net, id);

    if (n->up) {
        net_stop(net, id);
    }
    n->cfg.applied = 0;
    start_node(n);
}

uint64_t net_applied_index(struct net *net, uint64_t id)
{
    struct net_node *n = net_node(net, id);
    uint64_t last = n->snapshot_index;

    if (n->n_applied > 0 && n->applied[n->n_applied - 1].index > last) {
        last = n->applied[n->n_applied - 1].index;
    }
    return last;
}

const struct net_applied *net_applied_at(struct net *net, uint64_t id, uint64_t index)
{
    struct net_node *n = net_node(net, id);
    size_t i;

    for (i = n->n_applied; i-- > 0;) {
        if (n->applied[i].index == index) {
            return &n->applied[i];
        }
    }
    return NULL;
}

bool net_applied_has(struct net *net, uint64_t id, const char *data)
{
    struct net_node *n = net_node(net, id);
    size_t len = strlen(data), i;

    for (i = 0; i < n->n_applied; i++) {
        const struct net_applied *a = &n->applied[i];
        if (a->type == CRAFT_ENTRY_NORMAL && a->len == len && memcmp(a->data, data, len) == 0) {
            return true;
        }
    }
    return false;
}
