/* The node's state, shared by the files of the core: raft.c (creation, the
 * step function and its handler table, ticks), election.c, replication.c,
 * read_only.c, membership.c, outbox.c and ready.c. Not a public header. */
#ifndef CRAFT_RAFT_INTERNAL_H
#define CRAFT_RAFT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "craft/raft.h"
#include "log.h"
#include "progress.h"

/* What an outgoing message carries besides its fixed fields; resolved into
 * pointers only when the ready is built (ready.c), so that nothing points
 * into memory that may move between the step that queued it and the ready. */
enum out_kind {
    OUT_PLAIN = 0,
    OUT_LOG_RANGE, /* entries [lo, hi) of the log: an append */
    OUT_LITERAL,   /* entries copied into the outbox: a forwarded proposal */
    OUT_SNAPSHOT,  /* snapshot metadata copied into the outbox */
};

struct out_message {
    struct craft_message m;
    uint32_t kind;
    bool to_witness; /* strip entry data: witnesses get index and term only */
    uint64_t lo, hi;
    size_t first, count; /* OUT_LITERAL: entries in outbox.literals; OUT_SNAPSHOT: snapshot slot */
};

struct literal {
    struct craft_entry entry; /* data NULL here: bytes at offset in outbox.bytes */
    size_t offset;
};

struct outbox {
    struct out_message *msgs;
    size_t n, cap;
    struct literal *literals;
    size_t n_literals, cap_literals;
    unsigned char *bytes;
    size_t n_bytes, cap_bytes;
    struct craft_snapshot_meta *snapshots;
    size_t n_snapshots, cap_snapshots;
};

/* A pending ReadIndex request (Raft thesis 6.4). */
struct read_request {
    uint64_t index;   /* commit index when received */
    uint64_t context; /* caller's id */
    uint64_t from;    /* requesting node (self for local) */
    uint64_t seq;     /* heartbeat round that must be acknowledged */
};

struct read_queue {
    struct read_request *v;
    size_t start, n, cap;
};

/* Memory handed out by a ready, valid until advance. */
struct ready_pool {
    struct entry_vec entries;
    struct craft_message *messages;
    size_t cap_messages;
    size_t *spans; /* per message: first entry in entries, count */
    size_t cap_spans;
    struct craft_read_state *read_states;
    size_t n_read_states, cap_read_states;
    struct craft_snapshot_meta snapshot;
};

struct craft_raft {
    struct craft_config cfg;
    uint64_t id;

    /* Persistent state (Raft paper, Figure 2). */
    uint64_t term;
    uint64_t vote;
    struct raft_log log;

    /* Volatile state. */
    uint32_t role;
    uint64_t leader;
    uint64_t lead_transferee;
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t randomized_election_timeout;
    uint64_t rng;

    /* Membership and what the leader knows of each member. progress holds
     * every member on every node (votes are counted from it as well). */
    struct craft_conf_state conf;
    struct progress progress[CRAFT_MAX_NODES];
    uint8_t votes[CRAFT_MAX_NODES]; /* 0 none, 1 granted, 2 rejected */
    uint64_t read_acked[CRAFT_MAX_NODES];
    uint32_t n_progress;
    uint64_t pending_conf_index; /* leader: index of the last conf change proposed */
    bool conf_changed;           /* since the last ready */

    /* Limits. */
    uint64_t uncommitted_size;
    uint32_t rate_limit_elapsed;

    /* ReadIndex. */
    struct read_queue reads;
    struct read_queue postponed_reads; /* until an entry of the term commits */
    uint64_t read_seq;
    bool read_heartbeat_pending;
    struct craft_read_state *read_states;
    size_t n_read_states, cap_read_states;

    /* Quiescence. */
    uint32_t idle_ticks;
    bool quiesced;

    /* Ready bookkeeping. */
    bool append_pending; /* leader: broadcast appends when the ready is built */
    struct craft_hard_state prev_hard_state;
    uint64_t prev_leader;
    uint32_t prev_role;
    uint64_t applying; /* last index handed out for applying */
    bool ready_outstanding;
    struct outbox outbox[2];
    uint32_t outbox_current;
    struct ready_pool pool;
    struct entry_vec scratch;

    struct craft_stats stats;
};

/* raft.c */
void raft_become_follower(struct craft_raft *r, uint64_t term, uint64_t leader);
void raft_become_pre_candidate(struct craft_raft *r);
void raft_become_candidate(struct craft_raft *r);
void raft_become_leader(struct craft_raft *r);
uint32_t raft_follower_role(const struct craft_raft *r);
bool raft_promotable(const struct craft_raft *r);
struct progress *raft_progress(struct craft_raft *r, uint64_t id);
int raft_progress_slot(const struct craft_raft *r, uint64_t id);
void raft_wake(struct craft_raft *r);

/* election.c */
void election_campaign(struct craft_raft *r, bool pre_vote, bool transfer);
int election_handle_hup(struct craft_raft *r, const struct craft_message *m);
int election_handle_request_vote(struct craft_raft *r, const struct craft_message *m);
int election_handle_vote_resp(struct craft_raft *r, const struct craft_message *m);
int election_handle_timeout_now(struct craft_raft *r, const struct craft_message *m);

/* replication.c */
bool replication_send_append(struct craft_raft *r, struct progress *pr, bool send_if_empty);
void replication_bcast_append(struct craft_raft *r);
void replication_bcast_heartbeat(struct craft_raft *r, uint64_t read_seq);
bool replication_maybe_commit(struct craft_raft *r);
int replication_append_entries(struct craft_raft *r, const struct craft_entry *entries, size_t n);
int replication_handle_append(struct craft_raft *r, const struct craft_message *m);
int replication_handle_heartbeat(struct craft_raft *r, const struct craft_message *m);
int replication_handle_snapshot(struct craft_raft *r, const struct craft_message *m);
int replication_handle_append_resp(struct craft_raft *r, const struct craft_message *m);
int replication_handle_heartbeat_resp(struct craft_raft *r, const struct craft_message *m);
int replication_handle_snapshot_status(struct craft_raft *r, const struct craft_message *m);
int replication_handle_unreachable(struct craft_raft *r, const struct craft_message *m);
int replication_handle_propose(struct craft_raft *r, const struct craft_message *m);
int replication_forward(struct craft_raft *r, const struct craft_message *m);
int replication_handle_transfer_leader(struct craft_raft *r, const struct craft_message *m);
void replication_abort_transfer(struct craft_raft *r);
uint64_t replication_self_match(const struct craft_raft *r);

/* read_only.c */
int read_only_handle_leader(struct craft_raft *r, const struct craft_message *m);
int read_only_handle_resp(struct craft_raft *r, const struct craft_message *m);
void read_only_ack(struct craft_raft *r, uint64_t from, uint64_t seq);
void read_only_release_postponed(struct craft_raft *r);
void read_only_reset(struct craft_raft *r);
int read_only_push_state(struct craft_raft *r, uint64_t index, uint64_t context);
void read_only_free(struct craft_raft *r);

/* membership.c */
int membership_apply_change(struct craft_conf_state *cs, const struct craft_conf_change *cc);
int membership_validate(const struct craft_raft *r, const struct craft_conf_change *cc);
int membership_set(struct craft_raft *r, const struct craft_conf_state *cs);
int membership_apply_entry(struct craft_raft *r, const struct craft_entry *e);
bool membership_leave_joint_pending(const struct craft_raft *r);
uint64_t membership_committed(const struct craft_raft *r, const uint64_t *values);

/* outbox.c */
struct out_message *outbox_push(struct craft_raft *r, uint32_t type, uint64_t to);
int outbox_push_literal(struct craft_raft *r, struct out_message *om,
                        const struct craft_entry *entries, size_t n);
int outbox_push_snapshot(struct craft_raft *r, struct out_message *om,
                         const struct craft_snapshot_meta *meta);
void outbox_clear(struct outbox *ob);
void outbox_free(struct outbox *ob);

#endif
