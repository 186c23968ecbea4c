/* The outbox: messages queued by the step functions until the next ready.
 * Appends are kept as index ranges and resolved when the ready is built; a
 * forwarded proposal's entries and a snapshot's metadata are copied in. Two
 * outboxes alternate: the one handed out with a ready stays untouched until
 * the following ready. */
#include <stdlib.h>
#include <string.h>

#include "raft_internal.h"

static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap ? *cap : 16;
    void *p;

    if (need <= *cap) {
        return 0;
    }
    while (c < need) {
        c *= 2;
    }
    p = realloc(*v, c * size);
    if (p == NULL) {
        return CRAFT_ENOMEM;
    }
    *v = p;
    *cap = c;
    return 0;
}

static const struct out_message blank_message;

struct out_message *outbox_push(struct craft_raft *r, uint32_t type, uint64_t to)
{
    struct outbox *ob = &r->outbox[r->outbox_current];
    struct out_message *om;

    if (grow((void **)&ob->msgs, &ob->cap, ob->n + 1, sizeof(*ob->msgs)) != 0) {
        return NULL;
    }
    om = &ob->msgs[ob->n++];
    /* Copying a zeroed object compiles to a few vector moves; gcc inlines a
     * memset of this size as `rep stos`, which costs about 10% of a 3-node
     * round (tools/bench, docs/benchmarks.md). */
    *om = blank_message;
    om->m.type = type;
    om->m.from = r->id;
    om->m.to = to;
    /* Proposals and read requests forwarded to the leader travel as local
     * messages (term 0), as in etcd raft; everything else carries our term. */
    if (type != CRAFT_MSG_PROPOSE && type != CRAFT_MSG_READ_INDEX &&
        type != CRAFT_MSG_TRANSFER_LEADER) {
        om->m.term = r->term;
    }
    return om;
}

int outbox_push_literal(struct craft_raft *r, struct out_message *om,
                        const struct craft_entry *entries, size_t n)
{
    struct outbox *ob = &r->outbox[r->outbox_current];
    size_t bytes = 0, i;

    for (i = 0; i < n; i++) {
        bytes += entries[i].len;
    }
    if (grow((void **)&ob->literals, &ob->cap_literals, ob->n_literals + n,
             sizeof(*ob->literals)) != 0 ||
        grow((void **)&ob->bytes, &ob->cap_bytes, ob->n_bytes + bytes, 1) != 0) {
        return CRAFT_ENOMEM;
    }
    om->kind = OUT_LITERAL;
    om->first = ob->n_literals;
    om->count = n;
    for (i = 0; i < n; i++) {
        struct literal *lit = &ob->literals[ob->n_literals++];
        lit->entry = entries[i];
        lit->entry.data = NULL;
        lit->offset = ob->n_bytes;
        if (entries[i].len > 0) {
            memcpy(ob->bytes + ob->n_bytes, entries[i].data, entries[i].len);
            ob->n_bytes += entries[i].len;
        }
    }
    return 0;
}

int outbox_push_snapshot(struct craft_raft *r, struct out_message *om,
                         const struct craft_snapshot_meta *meta)
{
    struct outbox *ob = &r->outbox[r->outbox_current];

    if (grow((void **)&ob->snapshots, &ob->cap_snapshots, ob->n_snapshots + 1,
             sizeof(*ob->snapshots)) != 0) {
        return CRAFT_ENOMEM;
    }
    om->kind = OUT_SNAPSHOT;
    om->first = ob->n_snapshots;
    ob->snapshots[ob->n_snapshots++] = *meta;
    return 0;
}

void outbox_clear(struct outbox *ob)
{
    ob->n = 0;
    ob->n_literals = 0;
    ob->n_bytes = 0;
    ob->n_snapshots = 0;
}

void outbox_free(struct outbox *ob)
{
    free(ob->msgs);
    free(ob->literals);
    free(ob->bytes);
    free(ob->snapshots);
    memset(ob, 0, sizeof(*ob));
}
