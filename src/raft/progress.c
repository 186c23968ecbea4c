/* Per-peer progress and the in-flight window (flow control for pipelined
 * appends). The states follow etcd raft's design document: probe, replicate,
 * snapshot. */
#include "progress.h"

#include <stdlib.h>
#include <string.h>

int progress_init(struct progress *p, uint64_t id, uint64_t next, uint32_t max_inflight,
                  uint64_t max_inflight_bytes)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->next = next;
    p->state = CRAFT_PROGRESS_PROBE;
    p->inflights.cap = max_inflight;
    p->inflights.max_bytes = max_inflight_bytes;
    p->inflights.ring = calloc(max_inflight, sizeof(struct inflight));
    return p->inflights.ring == NULL ? CRAFT_ENOMEM : 0;
}

void progress_free(struct progress *p)
{
    free(p->inflights.ring);
    p->inflights.ring = NULL;
}

void inflights_reset(struct inflights *in)
{
    in->start = 0;
    in->count = 0;
    in->bytes = 0;
}

bool inflights_full(const struct inflights *in)
{
    return in->count >= in->cap || (in->max_bytes != 0 && in->bytes >= in->max_bytes);
}

static void inflights_add(struct inflights *in, uint64_t index, uint64_t bytes)
{
    uint32_t slot;

    if (in->count >= in->cap) {
        return; /* callers check inflights_full first; never overflow the ring */
    }
    slot = (in->start + in->count) % in->cap;
    in->ring[slot].index = index;
    in->ring[slot].bytes = bytes;
    in->count++;
    in->bytes += bytes;
}

void inflights_free_to(struct inflights *in, uint64_t index)
{
    while (in->count > 0 && in->ring[in->start].index <= index) {
        in->bytes -= in->ring[in->start].bytes;
        in->start = (in->start + 1) % in->cap;
        in->count--;
    }
    if (in->count == 0) {
        in->start = 0;
        in->bytes = 0;
    }
}

static void reset_state(struct progress *p, uint32_t state)
{
    p->probe_sent = false;
    p->pending_snapshot = 0;
    p->state = state;
    inflights_reset(&p->inflights);
}

void progress_become_probe(struct progress *p)
{
    /* Leaving snapshot state, resume after the snapshot if it got further. */
    if (p->state == CRAFT_PROGRESS_SNAPSHOT) {
        uint64_t pending = p->pending_snapshot;
        reset_state(p, CRAFT_PROGRESS_PROBE);
        p->next = (p->match + 1 > pending + 1) ? p->match + 1 : pending + 1;
    } else {
        reset_state(p, CRAFT_PROGRESS_PROBE);
        p->next = p->match + 1;
    }
}

void progress_become_replicate(struct progress *p)
{
    reset_state(p, CRAFT_PROGRESS_REPLICATE);
    p->next = p->match + 1;
}

void progress_become_snapshot(struct progress *p, uint64_t snapshot_index)
{
    reset_state(p, CRAFT_PROGRESS_SNAPSHOT);
    p->pending_snapshot = snapshot_index;
}

void progress_sent_entries(struct progress *p, uint64_t last, uint64_t bytes)
{
    if (p->state == CRAFT_PROGRESS_REPLICATE) {
        if (last >= p->next) {
            p->next = last + 1;
            inflights_add(&p->inflights, last, bytes);
        }
    } else if (p->state == CRAFT_PROGRESS_PROBE) {
        p->probe_sent = true;
    }
}

bool progress_maybe_update(struct progress *p, uint64_t n)
{
    bool updated = false;

    if (p->match < n) {
        p->match = n;
        updated = true;
        p->probe_sent = false;
    }
    if (p->next < n + 1) {
        p->next = n + 1;
    }
    return updated;
}

bool progress_maybe_decr_to(struct progress *p, uint64_t rejected, uint64_t match_hint)
{
    if (p->state == CRAFT_PROGRESS_REPLICATE) {
        /* A rejection of an index at or below match is stale. */
        if (rejected <= p->match) {
            return false;
        }
        p->next = p->match + 1;
        return true;
    }
    /* Probe: only the answer to the probe we sent (next - 1) counts. */
    if (p->next == 0 || p->next - 1 != rejected) {
        return false;
    }
    {
        uint64_t next = match_hint + 1;
        if (next > rejected) {
            next = rejected;
        }
        if (next < 1) {
            next = 1;
        }
        if (next < p->match + 1) {
            next = p->match + 1;
        }
        p->next = next;
    }
    p->probe_sent = false;
    return true;
}

bool progress_is_paused(const struct progress *p)
{
    switch (p->state) {
    case CRAFT_PROGRESS_PROBE:
        return p->probe_sent;
    case CRAFT_PROGRESS_REPLICATE:
        return inflights_full(&p->inflights);
    default:
        return true;
    }
}
