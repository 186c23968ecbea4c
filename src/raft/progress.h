/* Per-peer replication progress kept by the leader, and its flow control.
 *
 * A peer is probed (one append in flight until it answers), replicated to
 * (appends pipelined up to a window bounded by count and bytes), or sent a
 * snapshot (appends paused until the snapshot is reported). The in-flight
 * window is a ring of (last index, bytes) per append message. */
#ifndef CRAFT_PROGRESS_H
#define CRAFT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "craft/raft.h"

struct inflight {
    uint64_t index; /* last index carried by the append */
    uint64_t bytes;
};

struct inflights {
    uint32_t start; /* ring position of the oldest */
    uint32_t count;
    uint32_t cap; /* max_inflight_msgs */
    uint64_t bytes;
    uint64_t max_bytes; /* 0: unbounded */
    struct inflight *ring;
};

struct progress {
    uint64_t id;
    uint64_t match;
    uint64_t next;
    uint32_t state;     /* enum craft_progress_state */
    bool probe_sent;    /* probe state: an append is out, wait for its answer */
    bool recent_active; /* heard from since the last check-quorum round */
    bool is_learner;
    bool is_witness;
    uint64_t pending_snapshot; /* snapshot state: index of the snapshot sent */
    uint64_t rate_limit_bytes; /* last in-memory log size the peer reported */
    uint32_t rate_limit_age;   /* ticks since that report */
    struct inflights inflights;
};

int progress_init(struct progress *p, uint64_t id, uint64_t next, uint32_t max_inflight,
                  uint64_t max_inflight_bytes);
void progress_free(struct progress *p);

void progress_become_probe(struct progress *p);
void progress_become_replicate(struct progress *p);
void progress_become_snapshot(struct progress *p, uint64_t snapshot_index);

/* An append up to last (carrying bytes) was sent. */
void progress_sent_entries(struct progress *p, uint64_t last, uint64_t bytes);

/* The peer acknowledged n: true if match moved. */
bool progress_maybe_update(struct progress *p, uint64_t n);

/* The peer rejected an append at rejected with hint match_hint: true if next
 * moved back (false for a stale rejection). */
bool progress_maybe_decr_to(struct progress *p, uint64_t rejected, uint64_t match_hint);

/* No new append should be sent to this peer now. */
bool progress_is_paused(const struct progress *p);

/* Frees in-flight slots up to and including index. */
void inflights_free_to(struct inflights *in, uint64_t index);
bool inflights_full(const struct inflights *in);
void inflights_reset(struct inflights *in);

#endif
