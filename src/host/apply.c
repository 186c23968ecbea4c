/* The apply thread: committed entries of every group are applied here, in
 * order, to the group's state machine; reads are answered once the state
 * machine is fresh enough; snapshots are taken and restored here.
 *
 * What the host adds to the user's state machine, all replicated through the
 * log and kept in snapshots so every replica agrees:
 *   - client sessions (Raft thesis 6.3): a proposal carrying (client id,
 *     series) is applied once; a retry gets the cached result;
 *   - the address book: each member's raft address.
 *
 * Snapshot data layout (the host's section, then the state machine's bytes):
 *   "CHS1", version u32, flags u32 (bit 0: state machine data follows),
 *   n_addresses u32, n x (node u64, len u16, bytes),
 *   n_sessions u32, n x (client u64, series u64, last_used u64, value u64,
 *   flags u32 (bit 0: result unknown), len u32, bytes). Little endian. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "host_internal.h"

#define SNAP_MAGIC "CHS1"
#define SNAP_VERSION 2u
#define SNAP_FLAG_FSM 0x1u
#define MAX_SESSIONS 16384u
#define MAX_CACHED_RESULT 4096u
#define SNAP_CHUNK (64u * 1024u)

struct session {
    uint64_t client_id, series, last_used, value;
    uint32_t len;
    uint8_t *data; /* cached result bytes (at most MAX_CACHED_RESULT) */
    /* The result of series is not known here: it was applied before a
     * restart by a state machine that keeps its state on disk, and results
     * live in memory only. A retry of it gets CRAFT_ESESSION, never a made-up
     * result. */
    bool unknown;
};

struct waiting_read {
    uint64_t key, index;
    struct waiting_read *next;
};

struct apply_group {
    struct craft_host *h;
    uint64_t group_id;
    struct craft_fsm fsm;
    bool has_fsm;
    uint64_t fsm_disk_applied; /* what the state machine held at start */
    atomic_uint_fast64_t fsm_applied;
    atomic_uint_fast64_t snapshot_index;
    uint64_t applied, applied_term;
    struct craft_conf_state conf;
    uint64_t since_snapshot;
    uint64_t snapshot_entries, compaction_overhead;
    struct u64map sessions;
    struct u64map addresses; /* node -> malloc'd address */
    struct waiting_read *reads;
    atomic_uint_fast64_t cc_key; /* a pending membership change, see pending.c */
    bool failed;
    /* scratch for one batch */
    struct craft_fsm_entry *batch;
    size_t batch_cap;
};

/* Tells the loop thread about this group (a snapshot taken, a failure...);
 * a lost notice (out of memory) is retried or harmless by design. */
static void tell_loop(struct apply_group *ag, uint32_t type, const struct craft_snapshot_meta *meta)
{
    struct req *r = req_new(type, ag->group_id);
    if (r == NULL)
        return;
    if (meta != NULL)
        r->meta = *meta;
    host_submit(ag->h, r);
}

uint64_t apply_fsm_applied(const struct apply_group *ag)
{
    return atomic_load(&((struct apply_group *)ag)->fsm_applied);
}

uint64_t apply_snapshot_index(const struct apply_group *ag)
{
    return atomic_load(&((struct apply_group *)ag)->snapshot_index);
}

void apply_set_cc_key(struct apply_group *ag, uint64_t key)
{
    atomic_store(&ag->cc_key, key);
}

uint64_t apply_cc_key(const struct apply_group *ag)
{
    return atomic_load(&((struct apply_group *)ag)->cc_key);
}

/* ---- the host's snapshot section ---- */

struct buf {
    uint8_t *data;
    size_t len, cap;
};

static int buf_put(struct buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap == 0 ? 256 : b->cap;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (d == NULL)
            return CRAFT_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int buf_u64(struct buf *b, uint64_t v)
{
    uint8_t x[8];
    le_put_u64(x, v);
    return buf_put(b, x, 8);
}

static int buf_u32(struct buf *b, uint32_t v)
{
    uint8_t x[4];
    le_put_u32(x, v);
    return buf_put(b, x, 4);
}

static int encode_section(struct apply_group *ag, bool with_fsm, struct buf *b)
{
    int rc = buf_put(b, SNAP_MAGIC, 4);
    rc = rc ?: buf_u32(b, SNAP_VERSION);
    rc = rc ?: buf_u32(b, with_fsm ? SNAP_FLAG_FSM : 0);
    rc = rc ?: buf_u32(b, (uint32_t)ag->addresses.count);
    size_t it = 0;
    uint64_t key;
    const char *addr;
    while (rc == 0 && (addr = u64map_next(&ag->addresses, &it, &key)) != NULL) {
        uint8_t l[2];
        le_put_u16(l, (uint16_t)strlen(addr));
        rc = buf_u64(b, key);
        rc = rc ?: buf_put(b, l, 2);
        rc = rc ?: buf_put(b, addr, strlen(addr));
    }
    rc = rc ?: buf_u32(b, (uint32_t)ag->sessions.count);
    it = 0;
    struct session *s;
    while (rc == 0 && (s = u64map_next(&ag->sessions, &it, &key)) != NULL) {
        rc = buf_u64(b, s->client_id);
        rc = rc ?: buf_u64(b, s->series);
        rc = rc ?: buf_u64(b, s->last_used);
        rc = rc ?: buf_u64(b, s->value);
        rc = rc ?: buf_u32(b, s->unknown ? 1u : 0u);
        rc = rc ?: buf_u32(b, s->len);
        if (rc == 0 && s->len > 0)
            rc = buf_put(b, s->data, s->len);
    }
    return rc;
}

/* A reader over a snapshot store reader, with a little look-ahead so the
 * host's section can be parsed before the rest goes to the state machine. */
struct snap_in {
    struct craft_snapshot_iface *snaps;
    void *r;
    uint8_t buf[SNAP_CHUNK];
    size_t pos, len;
};

static int in_fill(struct snap_in *in)
{
    if (in->pos < in->len)
        return 0;
    size_t n = 0;
    int rc = in->snaps->read(in->r, in->buf, sizeof(in->buf), &n);
    in->pos = 0;
    in->len = n;
    return rc;
}

static int in_read(void *data, void *out, size_t cap, size_t *n)
{
    struct snap_in *in = data;
    *n = 0;
    int rc = in_fill(in);
    if (rc != 0)
        return rc;
    size_t k = in->len - in->pos < cap ? in->len - in->pos : cap;
    memcpy(out, in->buf + in->pos, k);
    in->pos += k;
    *n = k;
    return 0;
}

static int in_exact(struct snap_in *in, void *out, size_t n)
{
    uint8_t *p = out;
    while (n > 0) {
        size_t got;
        int rc = in_read(in, p, n, &got);
        if (rc != 0)
            return rc;
        if (got == 0)
            return CRAFT_ECORRUPT;
        p += got;
        n -= got;
    }
    return 0;
}

static int in_u64(struct snap_in *in, uint64_t *v)
{
    uint8_t x[8];
    int rc = in_exact(in, x, 8);
    *v = rc == 0 ? le_get_u64(x) : 0;
    return rc;
}

static int in_u32(struct snap_in *in, uint32_t *v)
{
    uint8_t x[4];
    int rc = in_exact(in, x, 4);
    *v = rc == 0 ? le_get_u32(x) : 0;
    return rc;
}

static void session_free(struct session *s)
{
    if (s != NULL)
        free(s->data);
    free(s);
}

static void clear_tables(struct apply_group *ag)
{
    size_t it = 0;
    void *v;
    while ((v = u64map_next(&ag->sessions, &it, NULL)) != NULL)
        session_free(v);
    u64map_free(&ag->sessions);
    it = 0;
    while ((v = u64map_next(&ag->addresses, &it, NULL)) != NULL)
        free(v);
    u64map_free(&ag->addresses);
}

static int set_group_address(struct apply_group *ag, uint64_t node, const char *address)
{
    char *copy = strdup(address);
    if (copy == NULL)
        return CRAFT_ENOMEM;
    free(u64map_remove(&ag->addresses, node));
    int rc = u64map_put(&ag->addresses, node, copy);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    if (node != ag->h->cfg.node_id) {
        struct req *r = req_new(REQ_SET_ADDRESS, 0);
        if (r != NULL) {
            r->node_id = node;
            snprintf(r->address, sizeof(r->address), "%s", address);
            host_submit(ag->h, r);
        }
    }
    return 0;
}

/* Parses the host's section (tables replaced) and says whether state machine
 * data follows. Every length is bounded. */
static int decode_section(struct apply_group *ag, struct snap_in *in, bool *with_fsm)
{
    char magic[4];
    uint32_t version, flags, n;
    int rc = in_exact(in, magic, 4);
    rc = rc ?: in_u32(in, &version);
    rc = rc ?: in_u32(in, &flags);
    if (rc != 0)
        return rc;
    /* Version 1 had no per-session flags word; it is still read. */
    if (memcmp(magic, SNAP_MAGIC, 4) != 0 || version < 1 || version > SNAP_VERSION)
        return CRAFT_ECORRUPT;
    *with_fsm = (flags & SNAP_FLAG_FSM) != 0;
    clear_tables(ag);
    rc = in_u32(in, &n);
    if (rc == 0 && n > CRAFT_MAX_NODES * 64u)
        rc = CRAFT_ECORRUPT;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        uint64_t node;
        uint8_t l[2];
        char addr[HOST_ADDRESS_MAX + 1];
        rc = in_u64(in, &node);
        rc = rc ?: in_exact(in, l, 2);
        if (rc != 0)
            break;
        size_t len = le_get_u16(l);
        if (len > HOST_ADDRESS_MAX || node == 0) {
            rc = CRAFT_ECORRUPT;
            break;
        }
        rc = in_exact(in, addr, len);
        addr[len] = '\0';
        rc = rc ?: set_group_address(ag, node, addr);
    }
    if (rc == 0)
        rc = in_u32(in, &n);
    if (rc == 0 && n > MAX_SESSIONS)
        rc = CRAFT_ECORRUPT;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        struct session *s = calloc(1, sizeof(*s));
        if (s == NULL)
            return CRAFT_ENOMEM;
        rc = in_u64(in, &s->client_id);
        rc = rc ?: in_u64(in, &s->series);
        rc = rc ?: in_u64(in, &s->last_used);
        rc = rc ?: in_u64(in, &s->value);
        uint32_t flags = 0;
        if (version >= 2)
            rc = rc ?: in_u32(in, &flags);
        rc = rc ?: in_u32(in, &s->len);
        s->unknown = (flags & 1u) != 0;
        if (rc == 0 && (s->len > MAX_CACHED_RESULT || s->client_id == 0 || flags > 1u ||
                        u64map_get(&ag->sessions, s->client_id) != NULL))
            rc = CRAFT_ECORRUPT; /* a duplicate client would leak the first */
        if (rc == 0 && s->len > 0) {
            s->data = malloc(s->len);
            rc = s->data == NULL ? CRAFT_ENOMEM : in_exact(in, s->data, s->len);
        }
        rc = rc ?: u64map_put(&ag->sessions, s->client_id, s);
        if (rc != 0)
            session_free(s);
    }
    return rc;
}

/* ---- taking and restoring snapshots ---- */

struct snap_out {
    struct craft_snapshot_iface *snaps;
    void *w;
    uint64_t offset;
};

static int out_write(void *data, const void *buf, size_t len)
{
    struct snap_out *o = data;
    int rc = o->snaps->write(o->w, o->offset, buf, len);
    if (rc == 0)
        o->offset += len;
    return rc;
}

static int write_snapshot(struct craft_host *h, uint64_t group_id,
                          const struct craft_snapshot_meta *meta, struct apply_group *ag,
                          bool with_fsm)
{
    void *w = NULL;
    struct buf section = {0};
    pthread_mutex_lock(&h->snap_lock);
    int rc = h->snaps->write_begin(h->snaps->data, group_id, meta, &w);
    pthread_mutex_unlock(&h->snap_lock);
    if (rc != 0)
        goto out;
    struct snap_out o = {.snaps = h->snaps, .w = w, .offset = 0};
    rc = encode_section(ag, with_fsm, &section);
    rc = rc ?: out_write(&o, section.data, section.len);
    if (rc == 0 && with_fsm) {
        struct craft_writer cw = {.data = &o, .write = out_write};
        rc = ag->fsm.save(ag->fsm.data, &cw);
    }
    if (rc != 0) {
        h->snaps->write_abort(w);
        goto out;
    }
    pthread_mutex_lock(&h->snap_lock);
    rc = h->snaps->write_finish(h->snaps->data, w);
    pthread_mutex_unlock(&h->snap_lock);
out:
    free(section.data);
    return rc;
}

int host_write_bootstrap_snapshot(struct craft_host *h, uint64_t group_id,
                                  const struct craft_snapshot_meta *meta,
                                  const struct craft_member *members, uint32_t n)
{
    struct apply_group tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.h = h;
    u64map_init(&tmp.sessions);
    u64map_init(&tmp.addresses);
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        if (members[i].address == NULL)
            continue;
        char *copy = strdup(members[i].address);
        rc = copy == NULL ? CRAFT_ENOMEM : u64map_put(&tmp.addresses, members[i].id, copy);
        if (rc != 0)
            free(copy);
    }
    rc = rc ?: write_snapshot(h, group_id, meta, &tmp, false);
    clear_tables(&tmp);
    return rc;
}

/* Takes a snapshot at the applied index; 0 with *index set, or an error. */
static int take_snapshot(struct apply_group *ag, uint64_t *index)
{
    struct craft_host *h = ag->h;
    *index = ag->applied;
    if (ag->applied <= atomic_load(&ag->snapshot_index))
        return 0;
    /* A state machine on disk ahead of the replay (after a restart) holds
     * more than ag->applied: its save would be labelled too low, and a
     * follower restoring it would apply the difference twice. */
    if (ag->applied < atomic_load(&ag->fsm_applied))
        return CRAFT_ESNAPSHOT_TEMP;
    struct craft_snapshot_meta meta = {
        .index = ag->applied, .term = ag->applied_term, .conf = ag->conf};
    int rc = write_snapshot(h, ag->group_id, &meta, ag, ag->has_fsm);
    if (rc != 0) {
        host_log(h, CRAFT_HOST_LOG_ERROR, "group %llu: snapshot at %llu failed: %s",
                 (unsigned long long)ag->group_id, (unsigned long long)meta.index,
                 craft_host_strerror(rc));
        return rc;
    }
    atomic_store(&ag->snapshot_index, meta.index);
    atomic_fetch_add(&h->metrics.snapshots_taken, 1);
    ag->since_snapshot = 0;
    tell_loop(ag, REQ_SNAPSHOT_TAKEN, &meta);
    return 0;
}

/* Restores the group's snapshot (index, term) exactly when term is not 0
 * (one the core installed), else its newest one (at least min_index). */
static int restore_snapshot(struct apply_group *ag, uint64_t min_index, uint64_t term)
{
    struct craft_host *h = ag->h;
    void *r = NULL;
    const struct craft_snapshot_meta *meta = NULL;
    pthread_mutex_lock(&h->snap_lock);
    int rc = term != 0 && h->snaps->open != NULL
                 ? h->snaps->open(h->snaps->data, ag->group_id, min_index, term, &r, &meta)
                 : h->snaps->open_newest(h->snaps->data, ag->group_id, &r, &meta);
    pthread_mutex_unlock(&h->snap_lock);
    if (rc != 0)
        return rc;
    struct snap_in *in = NULL;
    if (meta->index < min_index) {
        rc = CRAFT_ECORRUPT;
        goto out;
    }
    in = calloc(1, sizeof(*in));
    if (in == NULL) {
        rc = CRAFT_ENOMEM;
        goto out;
    }
    in->snaps = h->snaps;
    in->r = r;
    bool with_fsm = false;
    rc = decode_section(ag, in, &with_fsm);
    /* An on-disk state machine may already hold more than the snapshot. */
    if (rc == 0 && meta->index > atomic_load(&ag->fsm_applied)) {
        if (with_fsm && ag->has_fsm) {
            struct craft_reader cr = {.data = in, .read = in_read};
            rc = ag->fsm.restore(ag->fsm.data, &cr, meta->index);
        }
        if (rc == 0)
            atomic_store(&ag->fsm_applied, meta->index);
    }
    if (rc == 0) {
        ag->applied = meta->index;
        ag->applied_term = meta->term;
        ag->conf = meta->conf;
        ag->since_snapshot = 0;
        atomic_store(&ag->snapshot_index, meta->index);
    }
out:
    free(in);
    h->snaps->reader_close(r);
    return rc;
}

/* ---- applying ---- */

static void fail_group(struct apply_group *ag, int rc, const char *what)
{
    ag->failed = true;
    host_log(ag->h, CRAFT_HOST_LOG_ERROR, "group %llu: %s failed (%s): the group stops",
             (unsigned long long)ag->group_id, what, craft_host_strerror(rc));
    tell_loop(ag, REQ_GROUP_FAILED, NULL);
}

static void complete_key(struct apply_group *ag, uint64_t key, int status, uint64_t index,
                         struct craft_result *result)
{
    struct pending *p = pending_take(ag->h, key);
    if (p != NULL)
        pending_complete(ag->h, p, status, 0, index, result);
}

static void serve_reads(struct apply_group *ag)
{
    struct waiting_read **pp = &ag->reads;
    while (*pp != NULL) {
        struct waiting_read *w = *pp;
        if (w->index <= ag->applied) {
            *pp = w->next;
            complete_key(ag, w->key, 0, ag->applied, NULL);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

static void check_conf_change(struct apply_group *ag, const struct apply_entry *e)
{
    uint64_t key = atomic_load(&ag->cc_key);
    if (key == 0)
        return;
    pthread_mutex_lock(&ag->h->pending_lock);
    struct pending *p = u64map_get(&ag->h->pending, key);
    bool due = p != NULL && e->index >= p->index;
    bool ok = p != NULL && e->index == p->index && e->term == p->term &&
              e->type == CRAFT_ENTRY_CONF_CHANGE;
    pthread_mutex_unlock(&ag->h->pending_lock);
    if (p == NULL) {
        atomic_compare_exchange_strong(&ag->cc_key, &key, 0);
        return;
    }
    if (!due)
        return;
    atomic_compare_exchange_strong(&ag->cc_key, &key, 0);
    complete_key(ag, key, ok ? 0 : CRAFT_EDROPPED, e->index, NULL);
}

static struct session *session_get(struct apply_group *ag, uint64_t client_id)
{
    return u64map_get(&ag->sessions, client_id);
}

static void session_evict_one(struct apply_group *ag)
{
    size_t it = 0;
    uint64_t key, victim = 0, oldest = UINT64_MAX;
    struct session *s;
    while ((s = u64map_next(&ag->sessions, &it, &key)) != NULL) {
        if (s->last_used < oldest || (s->last_used == oldest && key < victim)) {
            oldest = s->last_used;
            victim = key;
        }
    }
    session_free(u64map_remove(&ag->sessions, victim));
}

enum slot_kind { SLOT_NONE, SLOT_FSM, SLOT_CACHED, SLOT_SESSION_ERROR, SLOT_DONE };

/* What one entry of a batch turned out to be. Sessions are looked up again
 * by client id after the state machine ran: a session may be closed or
 * evicted by a later entry of the same batch. */
struct slot {
    uint32_t kind;
    size_t fsm_i; /* SLOT_FSM: index into the batch */
    struct host_entry he;
    bool has_session;
};

/* The session of s if it still exists at s's series. */
static struct session *slot_session(struct apply_group *ag, const struct slot *s)
{
    struct session *ss = u64map_get(&ag->sessions, s->he.client_id);
    return ss != NULL && ss->series == s->he.series ? ss : NULL;
}

static void apply_batch(struct apply_group *ag, struct apply_task *t)
{
    struct craft_host *h = ag->h;
    if (ag->failed)
        return;
    if (ag->batch_cap < t->n) {
        struct craft_fsm_entry *b = realloc(ag->batch, t->n * sizeof(*b));
        if (b == NULL) {
            fail_group(ag, CRAFT_ENOMEM, "apply");
            return;
        }
        ag->batch = b;
        ag->batch_cap = t->n;
    }
    struct slot *slots = calloc(t->n ? t->n : 1, sizeof(*slots));
    if (slots == NULL) {
        fail_group(ag, CRAFT_ENOMEM, "apply");
        return;
    }
    size_t n_fsm = 0;
    uint64_t last = ag->applied;
    uint64_t fsm_floor = atomic_load(&ag->fsm_applied);
    for (size_t i = 0; i < t->n; i++) {
        const struct apply_entry *e = &t->entries[i];
        struct slot *s = &slots[i];
        if (e->index <= ag->applied)
            continue; /* covered by a snapshot restored since */
        if (e->index != ag->applied + 1) {
            /* Entries are applied one after the other, or the replicas
             * diverge: a gap means the snapshot restored is not the one the
             * log continues from. Stop rather than apply past it. */
            fail_group(ag, CRAFT_ECORRUPT, "apply (a gap before an entry)");
            goto out;
        }
        last = e->index;
        ag->applied = e->index;
        ag->applied_term = e->term;
        ag->since_snapshot++;
        if (e->type == CRAFT_ENTRY_CONF_CHANGE) {
            struct craft_conf_change cc;
            if (craft_conf_change_decode(&cc, e->data, e->len) == 0)
                (void)craft_conf_change_apply(&ag->conf, &cc);
            check_conf_change(ag, e);
            continue;
        }
        check_conf_change(ag, e);
        if (e->type != CRAFT_ENTRY_NORMAL || e->len == 0)
            continue;
        if (!host_entry_decode(e->data, e->len, &s->he)) {
            host_log(h, CRAFT_HOST_LOG_WARN, "group %llu: entry %llu is not a host entry: skipped",
                     (unsigned long long)ag->group_id, (unsigned long long)e->index);
            continue;
        }
        bool fsm_has_it = e->index <= fsm_floor;
        switch (s->he.kind) {
        case HOST_ENTRY_USER:
            s->kind = fsm_has_it ? SLOT_DONE : SLOT_FSM;
            break;
        case HOST_ENTRY_USER_SESSION: {
            struct session *ss = session_get(ag, s->he.client_id);
            if (ss == NULL || s->he.series < ss->series) {
                s->kind = SLOT_SESSION_ERROR;
            } else if (s->he.series == ss->series) {
                s->kind = SLOT_CACHED; /* answered in the second pass, in order */
            } else {
                ss->series = s->he.series;
                ss->last_used = e->index;
                ss->value = 0;
                free(ss->data);
                ss->data = NULL;
                ss->len = 0;
                ss->unknown = fsm_has_it; /* its result was not kept across the restart */
                s->has_session = true;
                s->kind = fsm_has_it ? SLOT_DONE : SLOT_FSM;
            }
            break;
        }
        case HOST_ENTRY_SESSION_OPEN:
            if (session_get(ag, s->he.client_id) == NULL) {
                if (ag->sessions.count >= MAX_SESSIONS)
                    session_evict_one(ag);
                struct session *ns = calloc(1, sizeof(*ns));
                if (ns != NULL) {
                    ns->client_id = s->he.client_id;
                    ns->last_used = e->index;
                    if (u64map_put(&ag->sessions, ns->client_id, ns) != 0)
                        session_free(ns);
                }
            }
            s->kind = SLOT_DONE;
            break;
        case HOST_ENTRY_SESSION_CLOSE:
            session_free(u64map_remove(&ag->sessions, s->he.client_id));
            s->kind = SLOT_DONE;
            break;
        case HOST_ENTRY_ADDRESS:
            (void)set_group_address(ag, s->he.node_id, s->he.address);
            s->kind = SLOT_DONE;
            break;
        }
        if (s->kind == SLOT_FSM) {
            s->fsm_i = n_fsm;
            ag->batch[n_fsm] = (struct craft_fsm_entry){
                .index = e->index, .data = s->he.payload, .len = s->he.payload_len};
            n_fsm++;
        }
    }
    if (ag->has_fsm && last > fsm_floor) {
        int rc = ag->fsm.apply(ag->fsm.data, ag->batch, n_fsm, last);
        if (rc != 0) {
            fail_group(ag, rc, "state machine apply");
            goto out;
        }
        atomic_store(&ag->fsm_applied, last);
    } else if (!ag->has_fsm) {
        atomic_store(&ag->fsm_applied, last);
    }
    atomic_fetch_add(&h->metrics.applies, 1);
    atomic_fetch_add(&h->metrics.entries_applied, t->n);
    for (size_t i = 0; i < t->n; i++) {
        struct slot *s = &slots[i];
        const struct apply_entry *e = &t->entries[i];
        struct craft_result none = {0}, cached = {0};
        struct craft_result *res = &none;
        int status = 0;
        if (s->kind == SLOT_NONE)
            continue;
        struct session *ss = s->has_session || s->kind == SLOT_CACHED ? slot_session(ag, s) : NULL;
        if (s->kind == SLOT_FSM) {
            res = &ag->batch[s->fsm_i].result;
            if (ss != NULL && ss->data == NULL) {
                /* Cache the result for a retry of this series. */
                ss->value = res->value;
                if (res->data != NULL && res->len <= MAX_CACHED_RESULT) {
                    ss->data = malloc(res->len ? res->len : 1);
                    if (ss->data != NULL) {
                        memcpy(ss->data, res->data, res->len);
                        ss->len = (uint32_t)res->len;
                    }
                }
            }
        } else if (s->kind == SLOT_CACHED) {
            if (ss == NULL || ss->unknown) {
                status = CRAFT_ESESSION; /* closed, evicted, or its result is unknown */
            } else {
                cached.value = ss->value;
                if (ss->data != NULL) {
                    cached.data = malloc(ss->len ? ss->len : 1);
                    if (cached.data != NULL) {
                        memcpy(cached.data, ss->data, ss->len);
                        cached.len = ss->len;
                    }
                }
                res = &cached;
            }
        } else if (s->kind == SLOT_SESSION_ERROR) {
            status = CRAFT_ESESSION;
        }
        if (s->he.origin == h->cfg.node_id)
            complete_key(ag, s->he.key, status, e->index, status == 0 ? res : NULL);
        free(res->data);
        res->data = NULL;
    }
    serve_reads(ag);
    if (ag->snapshot_entries != UINT64_MAX && ag->since_snapshot >= ag->snapshot_entries) {
        uint64_t index;
        (void)take_snapshot(ag, &index);
    }
out:
    free(slots);
}

static void run_task(struct craft_host *h, struct apply_task *t)
{
    struct apply_group *ag = t->ag;
    switch (t->type) {
    case TASK_APPLY:
        apply_batch(ag, t);
        break;
    case TASK_RESTORE: {
        if (ag->failed)
            break;
        int rc = restore_snapshot(ag, t->index, t->key); /* key: the term, 0 for newest */
        if (rc != 0) {
            fail_group(ag, rc, "snapshot restore");
            break;
        }
        serve_reads(ag);
        break;
    }
    case TASK_READ:
        if (ag->failed) {
            complete_key(ag, t->key, CRAFT_EFSM, 0, NULL);
        } else if (t->index <= ag->applied) {
            complete_key(ag, t->key, 0, ag->applied, NULL);
        } else {
            struct waiting_read *w = malloc(sizeof(*w));
            if (w == NULL) {
                complete_key(ag, t->key, CRAFT_ENOMEM, 0, NULL);
                break;
            }
            w->key = t->key;
            w->index = t->index;
            w->next = ag->reads;
            ag->reads = w;
        }
        break;
    case TASK_SNAPSHOT: {
        uint64_t index = 0;
        int rc = ag->failed ? CRAFT_EFSM : take_snapshot(ag, &index);
        if (t->key != 0)
            complete_key(ag, t->key, rc, index, NULL);
        break;
    }
    case TASK_STOP:
        while (ag->reads != NULL) {
            struct waiting_read *w = ag->reads;
            ag->reads = w->next;
            complete_key(ag, w->key, CRAFT_ESTOPPED, 0, NULL);
            free(w);
        }
        if (ag->has_fsm && ag->fsm.close != NULL)
            ag->fsm.close(ag->fsm.data);
        if (t->index == 1) {
            /* The group's data is being removed: no snapshot of it can be
             * written any more, so the loop may delete its files. */
            tell_loop(ag, REQ_REMOVE_SNAPSHOTS, NULL);
        }
        clear_tables(ag);
        free(ag->batch);
        free(ag);
        if (t->waiter != NULL)
            waiter_signal(t->waiter, 0);
        break;
    }
    (void)h;
}

static void *apply_main(void *arg)
{
    struct craft_host *h = arg;
    host_mark_own_thread(); /* a blocking call from a callback would deadlock */
    for (;;) {
        pthread_mutex_lock(&h->apply_lock);
        while (h->apply_head == NULL && !h->apply_stopping)
            pthread_cond_wait(&h->apply_cond, &h->apply_lock);
        struct apply_task *t = h->apply_head;
        h->apply_head = h->apply_tail = NULL;
        bool stopping = h->apply_stopping;
        pthread_mutex_unlock(&h->apply_lock);
        if (t == NULL && stopping)
            break;
        while (t != NULL) {
            struct apply_task *next = t->next;
            run_task(h, t);
            free(t);
            t = next;
        }
    }
    return NULL;
}

void apply_submit(struct craft_host *h, struct apply_task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&h->apply_lock);
    if (h->apply_tail != NULL)
        h->apply_tail->next = t;
    else
        h->apply_head = t;
    h->apply_tail = t;
    pthread_cond_signal(&h->apply_cond);
    pthread_mutex_unlock(&h->apply_lock);
}

int apply_task_submit(struct craft_host *h, struct apply_group *ag, uint32_t type, uint64_t key,
                      uint64_t index, struct waiter *w)
{
    struct apply_task *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return CRAFT_ENOMEM;
    t->type = type;
    t->ag = ag;
    t->key = key;
    t->index = index;
    t->waiter = w;
    apply_submit(h, t);
    return 0;
}

int apply_start(struct craft_host *h)
{
    if (pthread_create(&h->apply_thread, NULL, apply_main, h) != 0)
        return CRAFT_ENOMEM;
    h->apply_running = true;
    return 0;
}

void apply_stop(struct craft_host *h)
{
    if (!h->apply_running)
        return;
    pthread_mutex_lock(&h->apply_lock);
    h->apply_stopping = true;
    pthread_cond_signal(&h->apply_cond);
    pthread_mutex_unlock(&h->apply_lock);
    pthread_join(h->apply_thread, NULL);
    h->apply_running = false;
}

int apply_group_create(struct craft_host *h, struct host_group *g, uint64_t *fsm_applied, char *err,
                       size_t err_cap)
{
    struct apply_group *ag = calloc(1, sizeof(*ag));
    if (ag == NULL)
        return CRAFT_ENOMEM;
    ag->h = h;
    ag->group_id = g->id;
    u64map_init(&ag->sessions);
    u64map_init(&ag->addresses);
    ag->snapshot_entries = g->cfg.snapshot_entries;
    ag->compaction_overhead = g->cfg.compaction_overhead;
    int rc = 0;
    if (g->cfg.fsm_factory != NULL) {
        rc = g->cfg.fsm_factory(g->cfg.fsm_arg, g->id, &ag->fsm);
        if (rc != 0) {
            snprintf(err, err_cap, "group %llu: the state machine factory failed: %s",
                     (unsigned long long)g->id, craft_host_strerror(rc));
            free(ag);
            return rc;
        }
        ag->has_fsm = true;
        if (ag->fsm.last_applied != NULL)
            ag->fsm_disk_applied = ag->fsm.last_applied(ag->fsm.data);
    }
    atomic_store(&ag->fsm_applied, ag->fsm_disk_applied);
    /* Start from the newest snapshot, as the core does (config.applied 0). */
    uint64_t newest = 0;
    pthread_mutex_lock(&h->snap_lock);
    rc = h->snaps->newest(h->snaps->data, g->id, &newest);
    pthread_mutex_unlock(&h->snap_lock);
    /* The restore itself (the state machine's, possibly long) runs first
     * thing on the apply thread, ahead of every entry of this group. */
    if (rc == 0 && newest > 0)
        rc = apply_task_submit(h, ag, TASK_RESTORE, 0, 0, NULL);
    if (rc != 0) {
        snprintf(err, err_cap, "group %llu: the snapshot store failed: %s",
                 (unsigned long long)g->id, craft_host_strerror(rc));
        if (ag->has_fsm && ag->fsm.close != NULL)
            ag->fsm.close(ag->fsm.data);
        clear_tables(ag);
        free(ag);
        return rc;
    }
    *fsm_applied = ag->fsm_disk_applied;
    g->ag = ag;
    return 0;
}
