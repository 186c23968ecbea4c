/* craft host: many raft groups per process, replicated over TCP, on disk.
 *
 * One craft_host per process (dragonboat's NodeHost). It owns:
 *   - the loop thread: a libuv loop running every group's raft core, the
 *     shared WAL, the TCP transport (include/craft/transport.h) and the tick
 *     timer;
 *   - a WAL (include/craft/wal.h) shared by every group: every loop
 *     iteration's writes of every group go out in one write, and one
 *     fdatasync on a worker thread covers them all (group commit); the loop
 *     keeps stepping groups while that fdatasync runs;
 *   - a snapshot store (include/craft/snapshot.h);
 *   - the apply thread: committed entries of every group are applied there,
 *     in order, so a slow state machine never stalls replication.
 *
 * The ready cycle (docs/architecture.md) per group: persist the hard state
 * and entries; a leader sends its appends at once (before its write is
 * durable, Raft thesis 10.2.1) and counts itself only once durable; any
 * other role sends its messages only once durable; committed entries are
 * copied and handed to the apply thread; then advance.
 *
 * Threads and callbacks
 *   - Every craft_host_* function may be called from any thread, except
 *     where it says otherwise. The asynchronous ones queue a request for the
 *     loop thread and return at once.
 *   - The *_sync wrappers block the caller until done or timed out; calling
 *     them from a host thread (the loop or apply thread, i.e. from inside a
 *     callback) returns CRAFT_EINVAL instead of deadlocking.
 *   - Completion callbacks (craft_host_done_cb) run on the apply thread when
 *     the request succeeded (a proposal's result, a read that may now read
 *     the state machine), and on the loop thread when it failed. They must
 *     not block; they may call any asynchronous craft_host_* function.
 *   - craft_fsm callbacks run on the apply thread only (open/last_applied
 *     at group start on the loop thread, before the apply thread sees the
 *     group).
 *
 * Errors say what to do next: CRAFT_ENOTLEADER (the result's leader field
 * names the leader when known: ask it), CRAFT_EBUSY (a queue or limit is
 * full: retry later), CRAFT_ETIMEDOUT (no answer in time: the proposal may or
 * may not have been applied; retry with a session to be sure it applies
 * once), CRAFT_ENOLEADER (no leader appeared before the timeout: the request
 * was never proposed, so it was not applied), CRAFT_ENOGROUP (no such group on this host),
 * CRAFT_ESTOPPED (the host or the group is stopping).
 */
#ifndef CRAFT_HOST_H
#define CRAFT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft.h"
#include "snapshot.h"
#include "transport.h"
#include "wal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host-level error codes (beside raft.h's CRAFT_E*, WAL's CRAFT_STORAGE_E*). */
#define CRAFT_ETIMEDOUT (-100) /* no answer in time; a proposal may still apply */
#define CRAFT_ENOGROUP (-101)  /* the group is not started on this host */
#define CRAFT_ESTOPPED (-102)  /* the host or group is stopping or stopped */
#define CRAFT_EEXIST (-103)    /* the group is already started */
#define CRAFT_ESESSION (-104)  /* the session is unknown, expired or out of order */
#define CRAFT_EFSM (-105)      /* the state machine failed (see the host log) */
#define CRAFT_ENOLEADER                                                                            \
    (-106) /* no leader appeared in time; the request was never                                    \
              proposed (not applied): retry later */

/* Like craft_strerror, and knows every craft code (host, storage, codec). */
const char *craft_host_strerror(int rc);

/* ------------------------------------------------------------------------
 * Streams: how snapshot data moves between the state machine and the store.
 * ------------------------------------------------------------------------ */

/* Writes len bytes; 0 or a negative error (the snapshot is then abandoned). */
struct craft_writer {
    void *data;
    int (*write)(void *data, const void *buf, size_t len);
};

/* Reads at most cap bytes into buf; *n is 0 at the end. 0 or a negative error. */
struct craft_reader {
    void *data;
    int (*read)(void *data, void *buf, size_t cap, size_t *n);
};

/* ------------------------------------------------------------------------
 * The state machine (hashicorp raft's FSM; dragonboat's IOnDiskStateMachine).
 * ------------------------------------------------------------------------ */

/* What applying one entry produced, handed to the proposer's callback.
 * value is free for the state machine to use (a count, a flag, a number);
 * data, if not NULL, is a malloc'd buffer of len bytes whose ownership
 * passes to craft (freed after the callback). */
struct craft_result {
    uint64_t value;
    void *data;
    size_t len;
};

/* One entry to apply: the bytes given to craft_host_propose(). */
struct craft_fsm_entry {
    uint64_t index;
    const void *data; /* valid during the apply call */
    uint32_t len;
    struct craft_result result; /* zeroed; the state machine fills it */
};

/* A group's state machine. One instance per group, created by the factory in
 * craft_group_config. Every callback runs on the apply thread (open and
 * last_applied: see above) and is never called concurrently for one group. */
struct craft_fsm {
    void *data;
    /* Applies entries in order. applied is the index every entry up to which
     * is now applied, including entries with nothing for the state machine
     * (membership changes, a new leader's empty entry, session bookkeeping,
     * a retried proposal already applied): n may be 0. A state machine that
     * keeps its state on disk records applied in the same transaction, so a
     * restart can skip what it holds (see last_applied). Returning an error
     * stops the group (it is fail-stop: the replicas would diverge). */
    int (*apply)(void *data, struct craft_fsm_entry *entries, size_t n, uint64_t applied);
    /* Writes the whole state, as of the last apply, to w. */
    int (*save)(void *data, struct craft_writer *w);
    /* Replaces the whole state with what save wrote, read from r; applied is
     * the snapshot's index (record it, for last_applied). */
    int (*restore)(void *data, struct craft_reader *r, uint64_t applied);
    /* For a state machine that keeps its state on disk: the last applied
     * index it holds, so a restart does not replay it. NULL (or 0): the state
     * is rebuilt from the newest snapshot and the log on every start. */
    uint64_t (*last_applied)(void *data);
    /* Frees the state machine when the group stops. May be NULL. */
    void (*close)(void *data);
};

/* Creates the state machine of group_id; 0 or a negative error. */
typedef int (*craft_fsm_factory)(void *arg, uint64_t group_id, struct craft_fsm *out);

/* ------------------------------------------------------------------------
 * The transport as an interface (hashicorp raft's Transport). The built-in
 * one is the TCP transport of include/craft/transport.h; a program may give
 * its own in craft_host_config.transport. Every call and every handler runs
 * on the host's loop thread.
 * ------------------------------------------------------------------------ */

/* What the host handles; the meaning of each is transport.h's callback of
 * the same name. */
struct craft_transport_handlers {
    void *data;
    void (*on_message)(void *data, uint64_t group_id, const struct craft_message *m);
    void (*on_unreachable)(void *data, uint64_t node_id);
    int (*on_snapshot_begin)(void *data, uint64_t group_id, const struct craft_message *m,
                             void **sink);
    int (*on_snapshot_chunk)(void *data, void *sink, uint64_t offset, const void *buf, size_t len);
    int (*on_snapshot_end)(void *data, void *sink, bool ok);
};

struct craft_transport_iface {
    void *data;
    /* Starts on the host's loop, delivering to handlers (valid until close). */
    int (*start)(void *data, uv_loop_t *loop, const struct craft_transport_handlers *handlers,
                 char *err, size_t err_cap);
    int (*port)(void *data); /* the listening port, or < 0 */
    int (*set_peer)(void *data, uint64_t node_id, const char *address);
    /* As craft_tcp_send and craft_tcp_send_snapshot. */
    int (*send)(void *data, uint64_t group_id, const struct craft_message *m);
    int (*send_snapshot)(void *data, uint64_t group_id, const struct craft_message *m,
                         struct craft_snapshot_source src, craft_tcp_snapshot_done_cb done,
                         void *arg);
    void (*stats)(void *data, struct craft_tcp_stats *out); /* may be NULL */
    /* Stops: closes its handles on the loop; no handler runs afterwards. */
    void (*close)(void *data);
};

/* ------------------------------------------------------------------------
 * Host configuration.
 * ------------------------------------------------------------------------ */

enum craft_log_level_host {
    CRAFT_HOST_LOG_DEBUG = 0,
    CRAFT_HOST_LOG_INFO,
    CRAFT_HOST_LOG_WARN,
    CRAFT_HOST_LOG_ERROR
};

struct craft_host_config {
    uint64_t node_id;           /* this host in every group, non-zero */
    uint64_t cluster_id;        /* every host of the cluster uses the same */
    const char *data_dir;       /* WAL in data_dir/wal, snapshots in data_dir/snapshots */
    const char *listen_address; /* "ip:port" for raft traffic; NULL: no listening */
    uint32_t tick_ms;           /* milliseconds per raft tick; 0: 100 */
    /* The transport's TLS (mutual) if the three files are given; else plain TCP. */
    const char *tls_cert_file, *tls_key_file, *tls_ca_file;
    bool no_sync;              /* never fdatasync: benchmarks of the CPU path only, NOT durable */
    uint64_t wal_segment_size; /* 0: the WAL's default */
    /* Replaceable parts (hashicorp raft's LogStore / SnapshotStore /
     * Transport). NULL: the built-ins (the WAL in data_dir/wal, the snapshot
     * store in data_dir/snapshots, TCP on listen_address). Given ones stay
     * the caller's: the host never closes them, and they must outlive it. A
     * log store without the two-phase calls is synced on the loop thread. */
    struct craft_log_store *log_store;
    struct craft_snapshot_iface *snapshot_store;
    struct craft_transport_iface *transport;
    /* Log lines; NULL: stderr, INFO and above. Any thread. */
    void (*log)(void *arg, int level, const char *message);
    void *log_arg;
};

void craft_host_config_init(struct craft_host_config *cfg);

struct craft_host;

/* Opens the data directory (recovering the WAL and snapshot store), starts
 * listening and starts the loop and apply threads. No group runs yet: start
 * them with craft_host_start_group(). err receives a message on failure. */
int craft_host_start(const struct craft_host_config *cfg, struct craft_host **out, char *err,
                     size_t err_cap);

/* Stops every group, fails every pending request with CRAFT_ESTOPPED, waits
 * for the threads, commits and closes the WAL, frees the host. Not from a
 * host thread. */
void craft_host_stop(struct craft_host *h);

/* The port the transport listens on (after listening on port 0), or < 0. */
int craft_host_port(struct craft_host *h);

/* Sets the raft address ("ip:port") of node_id, for every group. Addresses
 * also travel inside the groups: craft_host_add_member() replicates the new
 * member's address, and bootstrap members' addresses are in the bootstrap
 * snapshot. */
int craft_host_set_address(struct craft_host *h, uint64_t node_id, const char *address);

/* ------------------------------------------------------------------------
 * Groups.
 * ------------------------------------------------------------------------ */

struct craft_member {
    uint64_t id;
    const char *address; /* "ip:port" of its host's raft listener */
    uint32_t role;       /* CRAFT_ROLE_FOLLOWER (a voter), _NON_VOTING or _WITNESS */
};

enum craft_group_start {
    CRAFT_GROUP_RESTART = 0,   /* from the data directory; CRAFT_ENOGROUP if it holds nothing */
    CRAFT_GROUP_BOOTSTRAP = 1, /* a new group of the given members (every one of them
                                  bootstraps with the same list); restarts if already on disk */
    CRAFT_GROUP_JOIN = 2,      /* this node was added by craft_host_add_member() elsewhere:
                                  start empty and wait for the leader; restarts if on disk */
};

struct craft_group_config {
    uint64_t group_id;                  /* non-zero */
    uint32_t start;                     /* enum craft_group_start */
    const struct craft_member *members; /* CRAFT_GROUP_BOOTSTRAP only */
    uint32_t n_members;
    craft_fsm_factory fsm_factory;
    void *fsm_arg;
    /* Raft (defaults as craft_config_default, pre_vote and check_quorum on). */
    uint32_t election_ticks;      /* 0: 10 */
    uint32_t heartbeat_ticks;     /* 0: 1 */
    bool lease_reads;             /* CRAFT_READ_ONLY_LEASE (needs bounded clock drift) */
    uint32_t quiesce_ticks;       /* 0: never quiesce */
    uint64_t max_in_mem_log_size; /* rate limit (0: off) */
    /* Snapshots: one every snapshot_entries applied entries (0: 10,000;
     * UINT64_MAX: only on request), after which the log is compacted keeping
     * compaction_overhead entries behind the snapshot (0: 5,000) so slightly
     * lagging followers catch up from the log. */
    uint64_t snapshot_entries;
    uint64_t compaction_overhead;
    uint32_t max_pending_proposals; /* queued proposals before CRAFT_EBUSY; 0: 65,536 */
};

void craft_group_config_init(struct craft_group_config *cfg);

/* Starts a group on this host (blocking until it runs or fails). */
int craft_host_start_group(struct craft_host *h, const struct craft_group_config *cfg, char *err,
                           size_t err_cap);

/* Stops a group: fails its pending requests with CRAFT_ESTOPPED; its data
 * stays on disk (restart it with CRAFT_GROUP_RESTART). Blocking. */
int craft_host_stop_group(struct craft_host *h, uint64_t group_id);

/* Stops a group and deletes its log and snapshots from this host (after it
 * was removed from the group's membership, say). Blocking. */
int craft_host_remove_group_data(struct craft_host *h, uint64_t group_id);

/* ------------------------------------------------------------------------
 * Requests.
 * ------------------------------------------------------------------------ */

/* The outcome of an asynchronous request. status is 0 or an error; on
 * CRAFT_ENOTLEADER leader is the leader's id (0 if unknown). result is the
 * state machine's (proposals only) and owned by craft: take result->data
 * (set it to NULL) to keep it. index is the log index the request was
 * applied at (proposals) or read at (reads). */
struct craft_done {
    int status;
    uint64_t leader;
    uint64_t index;
    struct craft_result *result;
};

typedef void (*craft_host_done_cb)(void *arg, struct craft_done *done);

/* A client session (Raft thesis 6.3) for exactly-once proposals: a proposal
 * retried with the same session and series number is applied at most once,
 * the retry getting the first attempt's result. One proposal at a time per
 * session. Sessions are replicated (registered through the log) and kept in
 * snapshots; a group keeps at most 16,384, forgetting the least recently
 * used first (a forgotten session's proposals fail with CRAFT_ESESSION). */
struct craft_session {
    uint64_t group_id;
    uint64_t client_id; /* random, non-zero */
    uint64_t series;    /* number of the proposal in flight (starts at 1) */
};

/* Registers a new session in group (through the log). Blocking. */
int craft_host_session_open(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                            struct craft_session *out);
/* After a proposal of s completed with status 0: moves to the next series. */
void craft_session_next(struct craft_session *s);
/* Unregisters a session (through the log). Blocking. */
int craft_host_session_close(struct craft_host *h, struct craft_session *s, uint32_t timeout_ms);

/* Proposes data (copied) as one entry of group. session: NULL for none.
 * Queued proposals of a group are taken together by its next ready cycle.
 * Followers forward to the leader; while the group has no leader the
 * proposal waits (up to its timeout) for one. cb gets the state machine's
 * result once the entry is applied on this host. 0 if queued (cb will be
 * called exactly once), or an error (cb will not be called). */
int craft_host_propose(struct craft_host *h, uint64_t group_id, const struct craft_session *session,
                       const void *data, uint32_t len, uint32_t timeout_ms, craft_host_done_cb cb,
                       void *arg);

/* Blocking: proposes and waits. result (may be NULL) receives the state
 * machine's result; free result->data with free(). leader (may be NULL) as
 * in struct craft_done. */
int craft_host_propose_sync(struct craft_host *h, uint64_t group_id,
                            const struct craft_session *session, const void *data, uint32_t len,
                            uint32_t timeout_ms, struct craft_result *result, uint64_t *leader);

/* A linearizable read (Raft thesis 6.4, ReadIndex; a lease read if the group
 * was started with lease_reads): cb runs on the apply thread once this
 * host's state machine has applied everything committed when the read was
 * made; read the state machine from inside cb. Queued reads of a group share
 * one heartbeat round. */
int craft_host_read(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                    craft_host_done_cb cb, void *arg);

/* A stale read: cb runs on the apply thread as soon as possible, with
 * whatever this host has applied (done->index). */
int craft_host_read_stale(struct craft_host *h, uint64_t group_id, craft_host_done_cb cb,
                          void *arg);

/* Blocking: waits until a linearizable read of group may be served on this
 * host, then returns. The caller reads its state machine itself (with its own
 * synchronisation against the apply thread), e.g. an LMDB read transaction.
 * *index (may be NULL) receives the read index. */
int craft_host_read_sync(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                         uint64_t *index, uint64_t *leader);

/* Membership (single-step changes; run one at a time). add_member replicates
 * the address with the change. role: CRAFT_ROLE_FOLLOWER adds a voter (or
 * promotes a non-voting member), CRAFT_ROLE_NON_VOTING a non-voting member,
 * CRAFT_ROLE_WITNESS a witness. The new node then starts the group with
 * CRAFT_GROUP_JOIN. */
int craft_host_add_member(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                          const char *address, uint32_t role, uint32_t timeout_ms,
                          craft_host_done_cb cb, void *arg);
int craft_host_remove_member(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                             uint32_t timeout_ms, craft_host_done_cb cb, void *arg);
/* Blocking forms. */
int craft_host_add_member_sync(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                               const char *address, uint32_t role, uint32_t timeout_ms,
                               uint64_t *leader);
int craft_host_remove_member_sync(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                                  uint32_t timeout_ms, uint64_t *leader);

/* Asks the group's leader (forwarded if this host is not it) to hand
 * leadership to node_id; completes once node_id leads or the timeout passes. */
int craft_host_transfer_leader_sync(struct craft_host *h, uint64_t group_id, uint64_t node_id,
                                    uint32_t timeout_ms);

/* Takes a snapshot of group now (then compacts the log as configured);
 * *index (may be NULL) receives its index. Blocking. */
int craft_host_snapshot_sync(struct craft_host *h, uint64_t group_id, uint32_t timeout_ms,
                             uint64_t *index);

/* ------------------------------------------------------------------------
 * Status.
 * ------------------------------------------------------------------------ */

struct craft_host_peer {
    struct craft_peer_status progress; /* leader's view (leader only) */
    char address[64];
    uint64_t last_contact_ms; /* ms since a message from it arrived; UINT64_MAX: never */
};

struct craft_group_status {
    struct craft_status raft; /* role, term, leader, commit, applied (by the core), members */
    uint64_t fsm_applied;     /* applied by the state machine */
    uint64_t snapshot_index;  /* newest snapshot */
    uint64_t pending_proposals, pending_reads;
    bool failed;      /* stopped after an error (state machine, storage; see the log):
                         it serves nothing until the process restarts */
    uint32_t n_peers; /* every member but this node */
    struct craft_host_peer peers[CRAFT_MAX_NODES];
};

/* Status of one group (blocking, a few microseconds on the loop thread). */
int craft_host_group_status(struct craft_host *h, uint64_t group_id,
                            struct craft_group_status *out);

/* Ids of the groups running on this host, at most cap; *n is the total. */
int craft_host_groups(struct craft_host *h, uint64_t *ids, size_t cap, size_t *n);

/* Counters for /metrics. */
struct craft_host_metrics {
    uint64_t proposals, proposals_failed, reads, applies, entries_applied;
    uint64_t elections, leader_changes;
    uint64_t wal_writes, wal_fsyncs, wal_bytes;
    uint64_t
        wal_fsync_hist[16]; /* fdatasync latency: bucket i counts <= 2^i * 64 us (last: more) */
    uint64_t bytes_sent, bytes_received, messages_sent, messages_received;
    uint64_t snapshots_taken, snapshots_sent, snapshots_received;
};

void craft_host_get_metrics(struct craft_host *h, struct craft_host_metrics *out);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_HOST_H */
