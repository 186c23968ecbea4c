/* The host runtime's internals, shared by the files of src/host.
 *
 * Threads (include/craft/host.h):
 *   loop thread   libuv loop: requests from callers (req queue + async
 *                 handle), the transport, the tick timer, and each group's
 *                 ready cycle (a prepare handle, once per loop iteration).
 *                 Owns the raft cores and the WAL.
 *   worker        libuv's thread pool runs the WAL's fdatasync
 *                 (craft_wal_sync_run) while the loop goes on.
 *   apply thread  applies committed entries to the state machines, serves
 *                 reads, takes and restores snapshots (apply.c).
 *
 * Shared state and its locks:
 *   h->req_lock      the request queue (callers and the apply thread -> loop)
 *   h->apply_lock    the apply queue (loop -> apply thread)
 *   h->pending_lock  the pending-request table (loop inserts and times out;
 *                    the apply thread completes)
 *   h->snap_lock     store-level calls on the snapshot store
 *   atomics          metrics and fsm_applied (status reads them)
 */
#ifndef CRAFT_HOST_INTERNAL_H
#define CRAFT_HOST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <craft/host.h>
#include <craft/snapshot.h>
#include <craft/transport.h>
#include <craft/wal.h>

#include "entry.h"
#include "u64map.h"

struct craft_host;
struct host_group;
struct apply_group;

/* ---- pending requests (pending.c) ---- */

enum pending_kind {
    PENDING_PROPOSAL = 1,
    PENDING_READ,
    PENDING_CONF_CHANGE,
    PENDING_SNAPSHOT,
    PENDING_TRANSFER,
};

/* A request accepted and not yet completed. Exactly one of the threads
 * removes it from the table (the apply thread on success, the loop on
 * failure or timeout) and calls cb. */
struct pending {
    uint64_t key;
    uint64_t group_id;
    uint32_t kind;     /* enum pending_kind */
    uint64_t deadline; /* loop clock (ms) */
    craft_host_done_cb cb;
    void *arg;
    uint64_t index, term; /* conf change: the entry expected to apply it */
    uint64_t target;      /* transfer: the transferee */
};

/* Registers p (owned by the table until taken). */
int pending_add(struct craft_host *h, struct pending *p);
/* Requests pending, every group. */
size_t pending_count(struct craft_host *h);
/* Takes key out of the table (NULL if already completed). */
struct pending *pending_take(struct craft_host *h, uint64_t key);
/* Completes p (taken) with status, on the calling thread, and frees it. */
void pending_complete(struct craft_host *h, struct pending *p, int status, uint64_t leader,
                      uint64_t index, struct craft_result *result);
/* Fails every pending request past its deadline (now >= deadline), or of
 * group_id (0: any group) when all is set, with status. */
void pending_expire(struct craft_host *h, uint64_t now, uint64_t group_id, bool all, int status);

/* ---- requests to the loop (host.c) ---- */

enum req_type {
    REQ_PROPOSE = 1,
    REQ_READ,
    REQ_READ_STALE,
    REQ_ADD_MEMBER,
    REQ_REMOVE_MEMBER,
    REQ_TRANSFER,
    REQ_SNAPSHOT,
    REQ_START_GROUP,
    REQ_STOP_GROUP,
    REQ_STATUS,
    REQ_GROUPS,
    REQ_SET_ADDRESS,
    REQ_STOP_HOST,
    REQ_REMOVE_SNAPSHOTS, /* from the apply thread: a removed group's state machine closed */
    REQ_CLOSE_LOOP,
    /* from the apply thread */
    REQ_SNAPSHOT_TAKEN,
    REQ_GROUP_FAILED,
};

/* A blocking call's rendezvous. */
struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    uint64_t leader, index;
    struct craft_result result;
};

struct req {
    uint32_t type;
    uint64_t group_id;
    uint64_t key; /* pending key, when the request completes through one */
    uint32_t timeout_ms;
    craft_host_done_cb cb;
    void *arg;
    void *data; /* REQ_PROPOSE: encoded entry (owned) */
    uint32_t len;
    uint64_t node_id; /* members, transfer, address */
    uint32_t role;
    char address[HOST_ADDRESS_MAX + 1];
    struct craft_snapshot_meta meta; /* REQ_SNAPSHOT_TAKEN */
    /* Synchronous requests (start/stop group, status, groups): */
    struct waiter *waiter;
    const struct craft_group_config *group_cfg;
    char *err;
    size_t err_cap;
    struct craft_group_status *status_out;
    uint64_t *ids;
    size_t cap, *n;
    struct req *next;
};

/* A zeroed request of type for group_id (0: none); NULL if out of memory. */
struct req *req_new(uint32_t type, uint64_t group_id);
void host_submit(struct craft_host *h, struct req *r);
void waiter_init(struct waiter *w);
void waiter_signal(struct waiter *w, int status);
int waiter_wait(struct waiter *w);
void waiter_destroy(struct waiter *w);
bool host_on_own_thread(void);
/* Marks the calling thread as one of the host's (its blocking calls fail). */
void host_mark_own_thread(void);

/* ---- groups (group.c) ---- */

/* A proposal or read waiting for a leader to be known. */
struct retry {
    uint64_t key;
    bool is_read;
    void *data;
    uint32_t len;
    struct retry *next;
};

struct peer_contact {
    uint64_t id;
    uint64_t last_ms; /* loop clock; 0: never */
};

struct host_group {
    struct craft_host *h;
    uint64_t id;
    struct craft_group_config cfg; /* copied; members not kept */
    struct craft_raft *raft;
    /* The ready being processed: taken, persisted to the WAL buffer, waiting
     * for the WAL write numbered wait_epoch to be durable. */
    bool in_ready;
    struct craft_ready rd;
    uint64_t wait_epoch;
    bool messages_sent;
    struct retry *retry_head, *retry_tail;
    uint32_t n_retry;
    uint32_t max_pending;
    uint64_t leader_seen;
    struct peer_contact contacts[CRAFT_MAX_NODES];
    uint32_t n_contacts;
    struct apply_group *ag;
    bool stopping, failed;
    struct waiter *stop_waiter; /* stop requested while a write was in flight */
    bool remove_data;
    uint64_t snapshot_requested_tick; /* when a snapshot naming a new member was asked for */
    uint64_t ticks;
    uint32_t n_transfers; /* leader transfers that may be pending (check_transfer) */
};

int group_start(struct craft_host *h, const struct craft_group_config *cfg, char *err,
                size_t err_cap);
/* Begins stopping g; completes w (may be NULL) once stopped. */
void group_stop(struct host_group *g, struct waiter *w, bool remove_data);
void group_handle_req(struct host_group *g, struct req *r);
void group_tick(struct host_group *g, uint64_t now);
/* Takes and persists a ready if there is one and none is in flight. */
void group_process_ready(struct host_group *g);
/* The WAL write numbered epoch is durable (status 0) or failed. */
void group_durable(struct host_group *g, uint64_t epoch, int status);
void group_status(struct host_group *g, struct craft_group_status *out);
void group_step(struct host_group *g, const struct craft_message *m);
void group_unreachable(struct host_group *g, uint64_t node_id);
struct host_group *host_find_group(struct craft_host *h, uint64_t id);
/* Drops key from g's requests waiting for a leader: true if it was there
 * (so it was never proposed). */
bool group_retry_drop(struct host_group *g, uint64_t key);

/* ---- apply thread (apply.c) ---- */

enum apply_task_type {
    TASK_APPLY = 1, /* committed entries (copied) */
    TASK_RESTORE,   /* restore snapshot (index, term = key); key 0: the newest */
    TASK_READ,      /* a read at index: complete once applied >= index */
    TASK_SNAPSHOT,  /* take a snapshot now (key 0: automatic) */
    TASK_STOP,      /* close the state machine, free the apply state */
};

struct apply_entry {
    uint64_t index, term;
    uint32_t type;
    uint32_t len;
    uint8_t *data; /* into the task's buffer */
};

struct apply_task {
    uint32_t type;
    struct apply_group *ag;
    uint64_t key, index;
    size_t n;
    struct apply_entry *entries; /* TASK_APPLY: n entries, data after them */
    struct waiter *waiter;       /* TASK_STOP */
    struct apply_task *next;
};

/* Creates the apply state of a group: fsm from the factory, restoring the
 * newest snapshot if the state machine does not already hold it. Called on
 * the loop thread before the group runs. */
int apply_group_create(struct craft_host *h, struct host_group *g, uint64_t *fsm_applied, char *err,
                       size_t err_cap);
void apply_submit(struct craft_host *h, struct apply_task *t);
/* A task without entries; 0 or CRAFT_ENOMEM (nothing queued). */
int apply_task_submit(struct craft_host *h, struct apply_group *ag, uint32_t type, uint64_t key,
                      uint64_t index, struct waiter *w);
int apply_start(struct craft_host *h);
void apply_stop(struct craft_host *h);
uint64_t apply_fsm_applied(const struct apply_group *ag);
uint64_t apply_snapshot_index(const struct apply_group *ag);
/* Marks key as the pending membership change the apply thread completes. */
void apply_set_cc_key(struct apply_group *ag, uint64_t key);
uint64_t apply_cc_key(const struct apply_group *ag);
/* Writes the bootstrap snapshot (index 1, term 1) of a new group. */
int host_write_bootstrap_snapshot(struct craft_host *h, uint64_t group_id,
                                  const struct craft_snapshot_meta *meta,
                                  const struct craft_member *members, uint32_t n);

/* ---- snapshots over the transport (snapshot_io.c) ---- */

void host_send_snapshot(struct host_group *g, const struct craft_message *m);
int host_snapshot_begin(void *data, uint64_t group_id, const struct craft_message *m, void **sink);
int host_snapshot_chunk(void *data, void *sink, uint64_t offset, const void *buf, size_t len);
int host_snapshot_end(void *data, void *sink, bool ok);

/* ---- the host ---- */

struct host_metrics {
    atomic_uint_fast64_t proposals, proposals_failed, reads, applies, entries_applied;
    atomic_uint_fast64_t wal_writes, wal_fsyncs, wal_bytes;
    atomic_uint_fast64_t wal_fsync_hist[16];
    atomic_uint_fast64_t snapshots_taken, snapshots_sent, snapshots_received;
    atomic_uint_fast64_t elections, leader_changes;
    atomic_uint_fast64_t bytes_sent, bytes_received, messages_sent, messages_received;
};

struct craft_host {
    struct craft_host_config cfg;
    char *data_dir, *listen_address;
    char *tls_cert, *tls_key, *tls_ca;
    uv_loop_t loop;
    uv_thread_t loop_thread;
    uv_async_t wake;
    uv_timer_t tick_timer;
    uv_prepare_t prepare;
    bool closing;

    struct craft_wal *wal;                   /* the built-in log store, or NULL */
    struct craft_log_store *ls;              /* the log store in use */
    struct craft_snapshot_store *snap_store; /* the built-in snapshot store, or NULL */
    struct craft_snapshot_iface *snaps;      /* the snapshot store in use */
    struct craft_tcp_transport *tcp;         /* the built-in transport, or NULL */
    struct craft_transport_iface tcp_iface;
    struct craft_transport_iface *tr; /* the transport in use; NULL once closed */
    struct craft_transport_handlers handlers;
    int port;

    /* group commit */
    uint64_t write_epoch; /* number of the last craft_wal_write issued */
    uint64_t durable_epoch;
    bool sync_in_flight;
    bool durability_wanted; /* a group waits for the next write */
    struct craft_wal_sync sync;
    uv_work_t sync_work;
    uint64_t sync_started_ns;
    bool wal_failed;

    struct u64map groups; /* id -> struct host_group *, loop thread */

    pthread_mutex_t req_lock;
    struct req *req_head, *req_tail;
    bool loop_closed; /* under req_lock: requests fail at once */

    pthread_mutex_t pending_lock;
    struct u64map pending; /* key -> struct pending * */
    atomic_uint_fast64_t next_key;

    pthread_mutex_t snap_lock;

    pthread_mutex_t apply_lock;
    pthread_cond_t apply_cond;
    struct apply_task *apply_head, *apply_tail;
    bool apply_stopping;
    pthread_t apply_thread;
    bool apply_running;

    /* The snapshot stream stored last (host_snapshot_end): the only
     * snapshot message on_message lets through. */
    struct {
        uint64_t group, index, term;
    } stored_snapshot;
    /* Groups whose snapshot files go once their log removal is durable. */
    struct removal *removals;

    struct host_metrics metrics;
    pthread_mutex_t addr_lock;
    struct u64map addresses; /* node id -> malloc'd "ip:port" */
};

struct removal {
    uint64_t group_id, epoch;
    struct removal *next;
};

/* Deletes group_id's snapshots once the next WAL write is durable. */
void host_remove_snapshots_later(struct craft_host *h, uint64_t group_id);
/* Runs the removals whose write is durable (after a successful sync). */
void host_run_removals(struct craft_host *h);

void host_log(struct craft_host *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint64_t host_now(struct craft_host *h);
/* Remembers node_id's address and tells the transport (loop thread). */
void host_set_address_loop(struct craft_host *h, uint64_t node_id, const char *address);
/* Copies node_id's known address into buf (cap bytes); false if unknown. */
bool host_get_address(struct craft_host *h, uint64_t node_id, char *buf, size_t cap);

#endif /* CRAFT_HOST_INTERNAL_H */
