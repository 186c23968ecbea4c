/* craft raft core: the Raft algorithm as a pure, deterministic state machine.
 *
 * Messages, ticks and proposals go in; a ready batch comes out: hard state and
 * entries to persist, messages to send, committed entries to apply, a snapshot
 * to install and read states to answer. The core does no I/O, starts no
 * thread, reads no clock and keeps no global state; its only randomness comes
 * from config.seed. Given the same inputs it produces the same outputs, which
 * is what makes the simulator in tests/sim possible.
 *
 * Threading: a struct craft_raft is not thread safe. Every function taking one
 * must be called from a single thread at a time (the host runs each group on
 * its event loop thread).
 *
 * The ready cycle (docs/architecture.md), for each group, in order:
 *   1. persist ready.hard_state, ready.entries (an entry at index i replaces
 *      every stored entry >= i) and ready.snapshot; fsync when must_sync;
 *   2. send ready.messages: a leader may send before its write is durable,
 *      every other role only after step 1 is durable;
 *   3. apply ready.snapshot's data, then ready.committed in order;
 *   4. call craft_raft_advance().
 */
#ifndef CRAFT_RAFT_H
#define CRAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Errors. Every function that can fail returns 0 or a negative CRAFT_E*.
 * ------------------------------------------------------------------------ */
enum craft_error {
    CRAFT_OK = 0,
    CRAFT_ENOMEM = -1,       /* an allocation failed; state is unchanged */
    CRAFT_EINVAL = -2,       /* an argument or a config field is invalid */
    CRAFT_ENOTLEADER = -3,   /* only the leader can do this; see status.leader */
    CRAFT_EBUSY = -4,        /* a limit was reached (uncommitted bytes, rate limit): retry later */
    CRAFT_ETRANSFER = -5,    /* a leader transfer is in progress: retry after it ends */
    CRAFT_ECOMPACTED = -6,   /* storage: the index was compacted into a snapshot */
    CRAFT_EUNAVAILABLE = -7, /* storage: the index is beyond the last entry */
    CRAFT_ESNAPSHOT_TEMP = -8, /* storage: no snapshot can be given right now */
    CRAFT_ECONF_PENDING = -9,  /* a membership change is already pending */
    CRAFT_ECONF_INVALID = -10, /* the membership change is not valid in this configuration */
    CRAFT_EDROPPED = -11,      /* the message or proposal was dropped (no leader, forwarding off) */
    CRAFT_ECORRUPT = -12,      /* an encoded buffer is malformed */
    CRAFT_ESTORAGE = -13,      /* the storage interface reported an I/O error */
    CRAFT_ESTEPPED_DOWN = -14, /* the node is no longer leader */
    CRAFT_EREMOVED = -15,      /* this node is not a member of the group */
    CRAFT_ETOO_BIG = -16,      /* a payload is larger than the configured maximum */
    CRAFT_ERROR_MIN = -16,
};

/* A static, human readable description of an error code. Never NULL. */
const char *craft_strerror(int rc);

/* ------------------------------------------------------------------------
 * Log entries, hard state, membership.
 * ------------------------------------------------------------------------ */
enum craft_entry_type {
    CRAFT_ENTRY_NORMAL = 0,      /* application data (empty data: the leader's no-op) */
    CRAFT_ENTRY_CONF_CHANGE = 1, /* an encoded struct craft_conf_change */
    CRAFT_ENTRY_METADATA = 2,    /* a normal entry sent to a witness: index and term only */
};

/* Largest payload of one entry; larger proposals get CRAFT_ETOO_BIG. */
#define CRAFT_MAX_ENTRY_SIZE (64u * 1024u * 1024u)

struct craft_entry {
    uint64_t term;
    uint64_t index;
    uint32_t type; /* enum craft_entry_type */
    uint32_t len;  /* bytes at data */
    const void *data;
};

/* What Raft keeps on stable storage before answering (Raft paper, Figure 2). */
struct craft_hard_state {
    uint64_t term;
    uint64_t vote;   /* node id voted for in term, 0 for none */
    uint64_t commit; /* persisted for faster restarts; never required for safety */
};

#define CRAFT_MAX_NODES 64 /* members of one group: voters, non-voting members and witnesses */

/* A group's membership. Witnesses are voters too: every witness id is listed
 * in voters (and voters_outgoing while joint) as well as in witnesses. */
struct craft_conf_state {
    uint32_t n_voters, n_voters_outgoing, n_learners, n_learners_next, n_witnesses;
    bool auto_leave; /* leave the joint configuration automatically */
    uint64_t voters[CRAFT_MAX_NODES];
    uint64_t voters_outgoing[CRAFT_MAX_NODES]; /* non-empty while joint (Raft thesis 4.3) */
    uint64_t learners[CRAFT_MAX_NODES];        /* non-voting members */
    uint64_t
        learners_next[CRAFT_MAX_NODES]; /* outgoing voters that become learners on leaving joint */
    uint64_t witnesses[CRAFT_MAX_NODES];
};

enum craft_conf_change_type {
    CRAFT_CC_ADD_VOTER = 0,      /* add a voter, or promote a non-voting member */
    CRAFT_CC_ADD_NON_VOTING = 1, /* add a non-voting member, or demote a voter */
    CRAFT_CC_ADD_WITNESS = 2,
    CRAFT_CC_REMOVE_NODE = 3,
};

enum craft_conf_transition {
    CRAFT_TRANSITION_AUTO = 0, /* one change: single-step; several: joint, left automatically */
    CRAFT_TRANSITION_JOINT_IMPLICIT = 1, /* joint, left automatically once committed */
    CRAFT_TRANSITION_JOINT_EXPLICIT = 2, /* joint, left by proposing an empty change */
};

struct craft_conf_change_item {
    uint32_t type; /* enum craft_conf_change_type */
    uint64_t node_id;
};

#define CRAFT_MAX_CONF_CHANGES 16

/* A membership change. An empty change (n_changes == 0) leaves a joint configuration. */
struct craft_conf_change {
    uint32_t transition; /* enum craft_conf_transition */
    uint32_t n_changes;
    struct craft_conf_change_item changes[CRAFT_MAX_CONF_CHANGES];
};

/* Encoded size of a conf change, and its (bounded, defensive) codec. encode
 * returns the number of bytes written or CRAFT_EINVAL if cap is too small;
 * decode returns 0 or CRAFT_ECORRUPT. */
size_t craft_conf_change_size(const struct craft_conf_change *cc);
int craft_conf_change_encode(const struct craft_conf_change *cc, void *buf, size_t cap);
int craft_conf_change_decode(struct craft_conf_change *cc, const void *buf, size_t len);

/* Applies a membership change to cs, with the rules the core uses: a
 * single-step change may change at most one voter; several changes, or an
 * explicit joint transition, enter a joint configuration; an empty change
 * leaves it. Returns CRAFT_ECONF_INVALID (cs unchanged) when the change does
 * not apply. A state machine that records its applied index durably records
 * the membership with it, computed by this function. */
int craft_conf_change_apply(struct craft_conf_state *cs, const struct craft_conf_change *cc);

/* Metadata of a snapshot: the state machine's data is not the core's business;
 * the host stores and streams it. */
struct craft_snapshot_meta {
    uint64_t index; /* last index the snapshot covers, 0 for none */
    uint64_t term;  /* term of that entry */
    struct craft_conf_state conf;
};

/* ------------------------------------------------------------------------
 * Messages.
 * ------------------------------------------------------------------------ */
enum craft_message_type {
    CRAFT_MSG_HUP = 0,     /* local: start an election */
    CRAFT_MSG_BEAT,        /* local: leader, send heartbeats now */
    CRAFT_MSG_PROPOSE,     /* entries to append; forwarded by followers */
    CRAFT_MSG_APPEND,      /* Raft paper 5.3: AppendEntries */
    CRAFT_MSG_APPEND_RESP, /* reject with hint: reject_hint index, log_term hint term */
    CRAFT_MSG_VOTE,        /* Raft paper 5.2: RequestVote */
    CRAFT_MSG_VOTE_RESP,
    CRAFT_MSG_PRE_VOTE, /* Raft thesis 9.6 */
    CRAFT_MSG_PRE_VOTE_RESP,
    CRAFT_MSG_SNAPSHOT,  /* InstallSnapshot: snapshot metadata (data travels beside it) */
    CRAFT_MSG_HEARTBEAT, /* commit = min(match, committed); context = read context */
    CRAFT_MSG_HEARTBEAT_RESP,
    CRAFT_MSG_UNREACHABLE,     /* local: the transport could not reach `from` */
    CRAFT_MSG_SNAPSHOT_STATUS, /* local: snapshot to `from` finished; reject = failed */
    CRAFT_MSG_CHECK_QUORUM,    /* local: leader, check for an active quorum now */
    CRAFT_MSG_TRANSFER_LEADER, /* from = the transferee */
    CRAFT_MSG_TIMEOUT_NOW,     /* Raft thesis 3.10: campaign now, skip PreVote */
    CRAFT_MSG_READ_INDEX,      /* Raft thesis 6.4; context = caller's read id */
    CRAFT_MSG_READ_INDEX_RESP, /* index = read index; reject = refused */
    CRAFT_MSG_RATE_LIMIT,      /* follower to leader: context = in-memory log bytes */
    CRAFT_MSG_QUIESCE,         /* leader to followers: enter quiescence */
    CRAFT_MSG_LOCAL_TICK,      /* local: one logical clock tick */
    CRAFT_MSG_TYPE_COUNT
};

/* Flags in craft_message.flags. */
#define CRAFT_MSG_FLAG_TRANSFER 0x1u /* a vote request of a leader transfer (Raft thesis 3.10) */

struct craft_message {
    uint32_t type; /* enum craft_message_type */
    uint32_t flags;
    uint64_t from;
    uint64_t to;
    uint64_t term; /* 0 for local messages */
    uint64_t log_term;
    uint64_t index;
    uint64_t commit;
    uint64_t reject_hint;
    uint64_t context;
    bool reject;
    uint32_t n_entries;
    const struct craft_entry *entries;
    const struct craft_snapshot_meta *snapshot; /* CRAFT_MSG_SNAPSHOT only */
};

const char *craft_message_type_name(uint32_t type);

/* ------------------------------------------------------------------------
 * Storage, as the core reads it.
 *
 * The core reads stable entries through this interface; the host writes them
 * (step 1 of the ready cycle). Data pointers returned by entries() must stay
 * valid until those entries are truncated or compacted; the host must finish
 * with (send or copy) the messages of a ready before the step that persists
 * the same ready truncates or compacts the store.
 * ------------------------------------------------------------------------ */
struct craft_storage {
    void *data;
    /* Hard state, and the membership as of the newest snapshot (or the
     * bootstrap membership without one) when config.applied is 0 — the core
     * then starts applying after that snapshot — or as of config.applied
     * otherwise. The core re-applies membership changes from the entries it
     * hands out for applying. */
    int (*initial_state)(void *data, struct craft_hard_state *hs, struct craft_conf_state *cs);
    /* Entries [lo, hi), at most max_bytes in total but always at least one,
     * at most cap of them, into out; *n is set to how many. CRAFT_ECOMPACTED if
     * lo was compacted, CRAFT_EUNAVAILABLE if hi > last_index + 1. */
    int (*entries)(void *data, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                   struct craft_entry *out, size_t cap, size_t *n);
    /* Term of entry i, for i in [first_index - 1, last_index]. */
    int (*term)(void *data, uint64_t i, uint64_t *term);
    /* Index of the first entry still held (snapshot index + 1 after compaction). */
    uint64_t (*first_index)(void *data);
    uint64_t (*last_index)(void *data);
    /* Metadata of the most recent snapshot, for sending to a follower. */
    int (*snapshot)(void *data, struct craft_snapshot_meta *meta);
};

/* ------------------------------------------------------------------------
 * Configuration.
 * ------------------------------------------------------------------------ */
enum craft_read_only_option {
    CRAFT_READ_ONLY_SAFE = 0, /* ReadIndex confirmed by a heartbeat round (Raft thesis 6.4) */
    CRAFT_READ_ONLY_LEASE =
        1, /* leader lease (Raft thesis 6.4.1): needs check_quorum and bounded clock drift */
};

struct craft_config {
    uint64_t id;                   /* this node, non-zero */
    uint32_t election_tick;        /* election timeout, in ticks; randomised in [et, 2*et) */
    uint32_t heartbeat_tick;       /* < election_tick */
    uint64_t seed;                 /* randomness (election timeouts); same seed, same run */
    uint64_t applied;              /* last applied index on restart (0: from the snapshot);
                                    * at most the last index in storage, and taken as
                                    * committed (the hard state's commit may lag it) */
    uint64_t max_size_per_msg;     /* bytes of entries per append message (0: one entry) */
    uint32_t max_inflight_msgs;    /* append messages in flight per follower (> 0) */
    uint64_t max_inflight_bytes;   /* bytes in flight per follower (0: unbounded) */
    uint64_t max_uncommitted_size; /* bytes of uncommitted entries at the leader (0: unbounded) */
    uint64_t max_committed_size_per_ready; /* bytes of committed entries per ready (0: unbounded) */
    uint64_t max_in_mem_log_size; /* rate limit on unapplied log bytes of any member (0: off) */
    uint32_t quiesce_ticks;       /* idle ticks before quiescence (0: never) */
    bool pre_vote;                /* Raft thesis 9.6 */
    bool check_quorum;            /* leader steps down without an active quorum */
    bool disable_proposal_forwarding;
    bool step_down_on_removal; /* a leader removed from the group steps down at once */
    uint32_t read_only_option; /* enum craft_read_only_option */
    const struct craft_storage *storage;
};

/* Fills cfg with defaults: election 10, heartbeat 1, 1 MiB per message, 256
 * in flight, pre_vote and check_quorum on. id and storage are left to set. */
void craft_config_default(struct craft_config *cfg);

/* ------------------------------------------------------------------------
 * The node.
 * ------------------------------------------------------------------------ */
enum craft_role {
    CRAFT_ROLE_FOLLOWER = 0,
    CRAFT_ROLE_PRE_CANDIDATE,
    CRAFT_ROLE_CANDIDATE,
    CRAFT_ROLE_LEADER,
    CRAFT_ROLE_NON_VOTING, /* a learner / observer: receives the log, never votes or leads */
    CRAFT_ROLE_WITNESS,    /* votes and counts toward quorum, holds metadata only, never leads */
    CRAFT_ROLE_COUNT
};

const char *craft_role_name(uint32_t role);

enum craft_progress_state {
    CRAFT_PROGRESS_PROBE = 0,
    CRAFT_PROGRESS_REPLICATE,
    CRAFT_PROGRESS_SNAPSHOT,
};

struct craft_read_state {
    uint64_t index;   /* read is linearizable once applied >= index */
    uint64_t context; /* the caller's read id */
};

struct craft_ready {
    bool has_hard_state;
    bool must_sync;      /* step 1 must be durable before step 2 (entries, term or vote changed) */
    bool has_conf_state; /* membership changed since the last ready: conf_state is new */
    struct craft_hard_state hard_state;
    struct craft_conf_state conf_state;
    const struct craft_snapshot_meta *snapshot; /* to install, NULL for none */
    const struct craft_entry *entries;          /* to persist */
    size_t n_entries;
    const struct craft_entry *committed; /* to apply, in order */
    size_t n_committed;
    const struct craft_message *messages; /* to send */
    size_t n_messages;
    const struct craft_read_state *read_states; /* ReadIndex results */
    size_t n_read_states;
    uint64_t leader; /* soft state: current leader, 0 if unknown */
    uint32_t role;   /* soft state: enum craft_role */
};

struct craft_peer_status {
    uint64_t id;
    uint64_t match;
    uint64_t next;
    uint32_t state; /* enum craft_progress_state */
    uint32_t inflight;
    uint64_t inflight_bytes;
    uint64_t pending_snapshot;
    bool recent_active;
    bool paused;
    bool is_learner;
    bool is_witness;
};

struct craft_stats {
    uint64_t dropped[CRAFT_MSG_TYPE_COUNT]; /* messages a role must not receive, by type */
    uint64_t dropped_stale_term;            /* messages from an older term */
    uint64_t elections;                     /* campaigns started */
    uint64_t leader_changes;
    uint64_t proposals_dropped;
};

struct craft_status {
    uint64_t id;
    uint32_t role;
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
    uint64_t applied;
    uint64_t leader;
    uint64_t lead_transferee;
    uint64_t first_index;
    uint64_t last_index;
    bool quiesced;
    struct craft_conf_state conf;
    uint32_t n_progress; /* leader only */
    struct craft_peer_status progress[CRAFT_MAX_NODES];
    struct craft_stats stats;
};

struct craft_raft;

/* Creates a node from cfg and what cfg->storage holds (hard state, membership,
 * snapshot, entries). storage must outlive the node. Returns CRAFT_EINVAL with
 * a description in *why (a static string) when the config is invalid. */
int craft_raft_create(const struct craft_config *cfg, struct craft_raft **out, const char **why);
void craft_raft_destroy(struct craft_raft *r);

/* Advances the logical clock by one tick. */
int craft_raft_tick(struct craft_raft *r);

/* Feeds a message received from a peer (or a local one such as
 * CRAFT_MSG_UNREACHABLE). The message and its entries are copied as needed;
 * the caller keeps ownership. Messages a role must not receive are dropped and
 * counted in status.stats; the return value is then 0. */
int craft_raft_step(struct craft_raft *r, const struct craft_message *m);

/* Proposes data as one normal entry. The bytes are copied. CRAFT_ENOTLEADER /
 * CRAFT_EDROPPED when there is no leader to take it, CRAFT_EBUSY past a limit,
 * CRAFT_ETRANSFER during a leader transfer. A follower forwards the proposal
 * to the leader unless forwarding is disabled. Returning 0 does not mean the
 * entry will commit: watch for it among committed entries. */
int craft_raft_propose(struct craft_raft *r, const void *data, uint32_t len);

/* Proposes a membership change, validated now: CRAFT_ECONF_PENDING when one
 * is already pending, CRAFT_ECONF_INVALID when it cannot apply to the current
 * configuration. Leader only (CRAFT_ENOTLEADER otherwise). */
int craft_raft_propose_conf_change(struct craft_raft *r, const struct craft_conf_change *cc);

/* Requests a linearizable read (Raft thesis 6.4). context identifies it in the
 * read state that answers it. A follower forwards the request to the leader. */
int craft_raft_read_index(struct craft_raft *r, uint64_t context);

/* Asks the leader to hand leadership to transferee (Raft thesis 3.10). */
int craft_raft_transfer_leader(struct craft_raft *r, uint64_t transferee);

/* Starts an election now (as if the election timeout elapsed). */
int craft_raft_campaign(struct craft_raft *r);

/* Reports that a peer could not be reached / a snapshot to it finished. */
int craft_raft_report_unreachable(struct craft_raft *r, uint64_t id);
int craft_raft_report_snapshot(struct craft_raft *r, uint64_t id, bool failed);

/* Ready / advance. has_ready is cheap. ready fills rd; everything it points to
 * is owned by the core and stays valid until craft_raft_advance(r, rd).
 * Between ready and advance the caller may tick, step and propose; the next
 * ready is only asked for after advance. advance records that rd's entries are
 * persisted, its snapshot installed and its committed entries applied, and
 * applies committed membership changes to the configuration. */
bool craft_raft_has_ready(const struct craft_raft *r);
int craft_raft_ready(struct craft_raft *r, struct craft_ready *rd);
int craft_raft_advance(struct craft_raft *r, const struct craft_ready *rd);

/* Status of the node; progress only on a leader. */
void craft_raft_status(const struct craft_raft *r, struct craft_status *st);

/* Small accessors, cheap. */
uint32_t craft_raft_role(const struct craft_raft *r);
uint64_t craft_raft_leader(const struct craft_raft *r);
uint64_t craft_raft_term(const struct craft_raft *r);
uint64_t craft_raft_id(const struct craft_raft *r);
uint64_t craft_raft_commit(const struct craft_raft *r);
uint64_t craft_raft_applied(const struct craft_raft *r);
/* The membership in force, owned by the core: valid until the next call that
 * may change it (step, advance, destroy). Cheaper than craft_raft_status. */
const struct craft_conf_state *craft_raft_membership(const struct craft_raft *r);

/* Membership helpers. */
bool craft_conf_state_is_voter(const struct craft_conf_state *cs, uint64_t id);
bool craft_conf_state_is_learner(const struct craft_conf_state *cs, uint64_t id);
bool craft_conf_state_is_witness(const struct craft_conf_state *cs, uint64_t id);
bool craft_conf_state_contains(const struct craft_conf_state *cs, uint64_t id);
bool craft_conf_state_is_joint(const struct craft_conf_state *cs);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_RAFT_H */
