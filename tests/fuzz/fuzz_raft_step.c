/* Fuzz target: hostile message sequences into one node of a three-voter group.
 *
 * The input is read as a program: ticks, proposals, membership changes, read
 * requests, transfers and arbitrary messages (any type, term, index, entries,
 * snapshot), with the ready cycle run in between into an in-memory store. The
 * node must never crash, never hand the store entries it refuses, and never
 * move its term or commit index backward. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "craft/memstore.h"
#include "craft/raft.h"

struct input {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < bytes && in->n > 0; i++) {
        v |= (uint64_t)in->p[0] << (8 * i);
        in->p++;
        in->n--;
    }
    return v;
}

static void run_ready(struct craft_raft *r, struct craft_memstore *ms, uint64_t *commit,
                      uint64_t *term)
{
    struct craft_ready rd;
    struct craft_status st;

    if (!craft_raft_has_ready(r)) {
        return;
    }
    if (craft_raft_ready(r, &rd) != 0) {
        return;
    }
    if (rd.snapshot != NULL && craft_memstore_apply_snapshot(ms, rd.snapshot) != 0) {
        abort(); /* the core handed out a snapshot the store refuses */
    }
    if (rd.n_entries > 0 && craft_memstore_append(ms, rd.entries, rd.n_entries) != 0) {
        abort(); /* the core handed out entries that do not fit the log */
    }
    if (rd.has_hard_state) {
        craft_memstore_set_hard_state(ms, &rd.hard_state);
    }
    if (craft_raft_advance(r, &rd) != 0) {
        abort();
    }
    craft_raft_status(r, &st);
    if (st.commit < *commit || st.term < *term) {
        abort(); /* Raft paper 5.1 / 5.3: term and commit never go back */
    }
    *commit = st.commit;
    *term = st.term;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct input in = {data, size};
    struct craft_memstore *ms = NULL;
    struct craft_raft *r = NULL;
    struct craft_conf_state cs;
    struct craft_config cfg;
    uint64_t commit = 0, term = 0;
    int steps = 0;

    if (craft_memstore_create(&ms) != 0) {
        return 0;
    }
    memset(&cs, 0, sizeof(cs));
    cs.n_voters = 3;
    cs.voters[0] = 1;
    cs.voters[1] = 2;
    cs.voters[2] = 3;
    craft_memstore_set_conf_state(ms, &cs);
    craft_config_default(&cfg);
    cfg.id = 1;
    cfg.seed = take(&in, 1);
    cfg.pre_vote = take(&in, 1) & 1;
    cfg.check_quorum = take(&in, 1) & 1;
    cfg.max_size_per_msg = take(&in, 2);
    cfg.max_inflight_msgs = 1 + (uint32_t)take(&in, 1) % 8;
    cfg.quiesce_ticks = (uint32_t)take(&in, 1) % 30;
    cfg.max_uncommitted_size = take(&in, 1) * 16;
    cfg.storage = craft_memstore_storage(ms);
    if (craft_raft_create(&cfg, &r, NULL) != 0) {
        craft_memstore_destroy(ms);
        return 0;
    }
    while (in.n > 0 && steps++ < 2000) {
        uint8_t op = (uint8_t)take(&in, 1);
        switch (op % 8) {
        case 0:
            craft_raft_tick(r);
            break;
        case 1: {
            uint8_t buf[64];
            uint32_t len = (uint32_t)take(&in, 1) % sizeof(buf);
            memset(buf, op, sizeof(buf));
            craft_raft_propose(r, buf, len);
            break;
        }
        case 2: {
            struct craft_conf_change cc;
            uint8_t raw[64];
            size_t len = take(&in, 1) % sizeof(raw), i;
            for (i = 0; i < len; i++) {
                raw[i] = (uint8_t)take(&in, 1);
            }
            if (craft_conf_change_decode(&cc, raw, len) == 0) {
                craft_raft_propose_conf_change(r, &cc);
            }
            break;
        }
        case 3:
            craft_raft_read_index(r, take(&in, 2));
            break;
        case 4:
            craft_raft_transfer_leader(r, take(&in, 1) % 5);
            break;
        case 5:
            craft_raft_campaign(r);
            break;
        default: {
            struct craft_entry ents[4];
            struct craft_snapshot_meta snap;
            struct craft_message m;
            uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
            uint32_t i;
            memset(&m, 0, sizeof(m));
            memset(&snap, 0, sizeof(snap));
            m.type = (uint32_t)take(&in, 1) % (CRAFT_MSG_TYPE_COUNT + 2);
            m.from = take(&in, 1) % 5;
            m.to = 1;
            m.term = take(&in, 1) % 8;
            m.index = take(&in, 1) % 32;
            m.log_term = take(&in, 1) % 8;
            m.commit = take(&in, 1) % 40;
            m.reject = take(&in, 1) & 1;
            m.reject_hint = take(&in, 1) % 32;
            m.context = take(&in, 1);
            m.flags = (uint32_t)take(&in, 1) & 1;
            m.n_entries = (uint32_t)take(&in, 1) % 5;
            for (i = 0; i < m.n_entries; i++) {
                memset(&ents[i], 0, sizeof(ents[i]));
                ents[i].index = m.index + 1 + i;
                if (take(&in, 1) & 1) {
                    ents[i].index = take(&in, 1) % 40; /* hostile: not contiguous */
                }
                ents[i].term = take(&in, 1) % 8;
                ents[i].type = (uint32_t)take(&in, 1) % 4;
                ents[i].len = (uint32_t)take(&in, 1) % 9;
                ents[i].data = payload;
            }
            m.entries = m.n_entries ? ents : NULL;
            if (m.type == CRAFT_MSG_SNAPSHOT) {
                snap.index = take(&in, 1) % 40;
                snap.term = take(&in, 1) % 8;
                snap.conf = cs;
                if (take(&in, 1) & 1) {
                    snap.conf.n_voters = (uint32_t)take(&in, 1); /* hostile count */
                }
                m.snapshot = &snap;
            }
            craft_raft_step(r, &m);
            break;
        }
        }
        if (op & 0x80) {
            run_ready(r, ms, &commit, &term);
        }
    }
    run_ready(r, ms, &commit, &term);
    craft_raft_destroy(r);
    craft_memstore_destroy(ms);
    return 0;
}
