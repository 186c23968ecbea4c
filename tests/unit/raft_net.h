/* A small in-memory network of craft_raft nodes for the scenario tests in
 * tests/unit/test_raft_*.c.
 *
 * Each node is a struct craft_raft over a struct craft_memstore (its "disk").
 * net_ready() runs one node's ready cycle exactly as raft.h describes: the
 * ready's messages (with their entries and snapshot metadata) are copied into
 * the network queue first, then the snapshot, entries and hard state are
 * persisted, then the committed entries are recorded as applied, then
 * craft_raft_advance() is called. The queue is delivered in FIFO order, with
 * optional cut links, stopped nodes and a per-test interceptor that may drop
 * or inspect each message. Everything is deterministic: no clock, no
 * randomness beyond the nodes' seeds.
 *
 * Ids run from 1 to NET_MAX_NODES; the slot of node id is nodes[id - 1].
 * Independent of the simulator's fixture in tests/fixture/.
 */
#ifndef CRAFT_TESTS_RAFT_NET_H
#define CRAFT_TESTS_RAFT_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "craft/memstore.h"
#include "craft/raft.h"

#define NET_MAX_NODES 8

/* One entry a node's state machine applied (data copied). */
struct net_applied {
    uint64_t index;
    uint64_t term;
    uint32_t type;
    uint32_t len;
    unsigned char *data;
};

/* A message in flight: the message plus owned copies of what it points to. */
struct net_msg {
    struct craft_message m;
    struct craft_entry *entries;         /* m.entries points here; data copied too */
    struct craft_snapshot_meta snapshot; /* m.snapshot points here when set */
};

struct net_node {
    uint64_t id;
    bool used;
    bool up; /* false: stopped (no ticks, messages to it are dropped) */
    struct craft_config cfg;
    struct craft_memstore *store;
    struct craft_raft *raft;

    /* The state machine: what was applied, in order, since the last
     * snapshot installed (which replaces it) or restart. */
    struct net_applied *applied;
    size_t n_applied, cap_applied;
    uint64_t snapshot_index; /* last snapshot installed by a ready */

    /* ReadIndex answers received through readies. */
    struct craft_read_state *reads;
    size_t n_reads, cap_reads;

    /* Ready statistics. */
    uint64_t readies;
    uint64_t max_committed_bytes; /* largest sum of committed data in one ready */
    uint64_t max_committed_n;     /* most committed entries in one ready */
    bool saw_conf_state;          /* some ready had has_conf_state */
    struct craft_conf_state last_conf_state;
    int last_step_rc; /* of the last message delivered to it */
};

struct net;

/* Returns true to drop m (it may also just be inspected). */
typedef bool (*net_intercept_fn)(struct net *net, const struct craft_message *m, void *arg);

struct net {
    struct net_node nodes[NET_MAX_NODES];
    struct net_msg *queue;
    size_t queue_start, queue_n, queue_cap;
    bool cut[NET_MAX_NODES + 1][NET_MAX_NODES + 1]; /* cut[from][to] */
    uint32_t drop_types; /* bit per message type: drop every message of it */
    net_intercept_fn intercept;
    void *intercept_arg;
    /* Act as a transport that reports each snapshot message's fate to its
     * sender (craft_raft_report_snapshot): failed when dropped, done when
     * delivered. Off by default so tests can drive it by hand. */
    bool report_snapshots;
    uint64_t sent[CRAFT_MSG_TYPE_COUNT];      /* messages put on the network */
    uint64_t delivered[CRAFT_MSG_TYPE_COUNT]; /* messages stepped into a node */
};

/* The configuration every node gets unless a test changes it: craft's
 * defaults, but with PreVote and CheckQuorum off (plain Raft, paper section
 * 5); election 10 ticks, heartbeat 1 tick, seed 1. */
void net_default_config(struct craft_config *cfg);

/* A network of n nodes (ids 1..n) that all start with membership conf on
 * their disk (NULL: all n are voters), each configured from tmpl (NULL: the
 * default) with id and storage filled in. Fails the test on error. */
struct net *net_create(uint32_t n, const struct craft_conf_state *conf,
                       const struct craft_config *tmpl);
void net_destroy(struct net *net);

/* Starts node id with membership conf on its (new, empty) disk: an empty conf
 * for a node that joins through a membership change. */
void net_add_node(struct net *net, uint64_t id, const struct craft_conf_state *conf,
                  const struct craft_config *tmpl);

struct net_node *net_node(struct net *net, uint64_t id);
struct craft_raft *net_raft(struct net *net, uint64_t id);
void net_status(struct net *net, uint64_t id, struct craft_status *st);

/* Runs node id's ready cycle if it has one; returns whether it did. */
bool net_ready(struct net *net, uint64_t id);
/* Runs ready cycles on every up node until none has one. */
void net_process(struct net *net);
/* Delivers the messages queued now (not those they cause); returns how many
 * were stepped into a node. */
size_t net_deliver(struct net *net);
/* Ready cycles and deliveries until the network is quiet. */
void net_stabilize(struct net *net);

/* Puts a copy of m (entries and snapshot metadata included) on the network,
 * as if node m->from had sent it: for tests that run a ready cycle by hand. */
void net_send(struct net *net, const struct craft_message *m);
/* Persists rd on node id's store as step 1 of the ready cycle does. */
void net_persist(struct net *net, uint64_t id, const struct craft_ready *rd);

/* Steps m into node to (whatever m.to says), then runs its ready. */
int net_step(struct net *net, uint64_t to, const struct craft_message *m);

/* Ticks node id n times, stabilizing after each tick. */
void net_tick(struct net *net, uint64_t id, uint32_t n);
/* Ticks every up node n times, stabilizing after each round. */
void net_tick_all(struct net *net, uint32_t n);

/* Makes id campaign and stabilizes; asserts that it became leader. */
void net_elect(struct net *net, uint64_t id);
/* Proposes a string at id and stabilizes; returns craft_raft_propose's code. */
int net_propose(struct net *net, uint64_t id, const char *data);
/* Proposes a membership change at id and stabilizes. */
int net_propose_cc(struct net *net, uint64_t id, const struct craft_conf_change *cc);

/* The leader most recently elected among up nodes (highest term), 0 if none. */
uint64_t net_leader(struct net *net);

/* Links. */
void net_cut(struct net *net, uint64_t a, uint64_t b); /* both directions */
void net_cut_one_way(struct net *net, uint64_t from, uint64_t to);
void net_isolate(struct net *net, uint64_t id);
void net_heal(struct net *net);
void net_drop_type(struct net *net, uint32_t type, bool drop);
void net_set_intercept(struct net *net, net_intercept_fn fn, void *arg);
/* Drops every queued message. */
void net_clear_queue(struct net *net);
/* Queued messages matching type (CRAFT_MSG_TYPE_COUNT: any), from, to (0: any). */
size_t net_queued(const struct net *net, uint32_t type, uint64_t from, uint64_t to);
/* The i-th queued message matching, or NULL. */
const struct craft_message *net_queued_msg(const struct net *net, uint32_t type, uint64_t from,
                                           uint64_t to, size_t i);

/* Crash and restart: the craft_raft and the state machine are lost, the
 * memstore survives. */
void net_stop(struct net *net, uint64_t id);
void net_restart(struct net *net, uint64_t id);

/* State machine queries. */
uint64_t net_applied_index(struct net *net, uint64_t id);
/* The applied entry at index, NULL if not applied. */
const struct net_applied *net_applied_at(struct net *net, uint64_t id, uint64_t index);
/* Whether node id applied a normal entry holding exactly data. */
bool net_applied_has(struct net *net, uint64_t id, const char *data);

/* A membership change of one item. */
struct craft_conf_change net_cc1(uint32_t transition, uint32_t type, uint64_t node);
/* Voters 1..n. */
struct craft_conf_state net_voters(uint32_t n);

#endif
