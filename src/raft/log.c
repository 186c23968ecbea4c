/* The raft log: stable prefix through struct craft_storage, unstable tail in
 * memory (see log.h). */
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK_SIZE (256u * 1024u)

struct arena_block {
    struct arena_block *next;
    uint64_t last_index; /* highest entry index whose data was copied here */
    size_t used;
    size_t cap;
    unsigned char data[];
};

int entry_vec_reserve(struct entry_vec *ev, size_t extra)
{
    size_t want = ev->n + extra;
    size_t cap = ev->cap ? ev->cap : 16;
    struct craft_entry *v;

    if (want <= ev->cap) {
        return 0;
    }
    while (cap < want) {
        cap *= 2;
    }
    v = realloc(ev->v, cap * sizeof(*v));
    if (v == NULL) {
        return CRAFT_ENOMEM;
    }
    ev->v = v;
    ev->cap = cap;
    return 0;
}

void entry_vec_free(struct entry_vec *ev)
{
    free(ev->v);
    memset(ev, 0, sizeof(*ev));
}

/* Copies len bytes of entry index into the arena; NULL on ENOMEM. */
static void *arena_copy(struct arena *a, const void *data, size_t len, uint64_t index)
{
    struct arena_block *b = a->tail;
    void *dst;

    if (len == 0) {
        return NULL;
    }
    if (b == NULL || b->cap - b->used < len) {
        size_t cap = len > ARENA_BLOCK_SIZE ? len : ARENA_BLOCK_SIZE;
        if (a->spare != NULL && a->spare->cap >= cap) {
            b = a->spare;
            a->spare = NULL;
        } else {
            b = malloc(sizeof(*b) + cap);
            if (b == NULL) {
                return NULL;
            }
            b->cap = cap;
        }
        b->next = NULL;
        b->used = 0;
        b->last_index = 0;
        if (a->tail != NULL) {
            a->tail->next = b;
        } else {
            a->head = b;
        }
        a->tail = b;
    }
    dst = b->data + b->used;
    memcpy(dst, data, len);
    b->used += (len + 7u) & ~(size_t)7u;
    if (b->used > b->cap) {
        b->used = b->cap;
    }
    if (index > b->last_index) {
        b->last_index = index;
    }
    return dst;
}

static void arena_release_below(struct arena *a, uint64_t stable)
{
    struct arena_block **link = &a->head;

    while (*link != NULL) {
        struct arena_block *b = *link;
        if (b != a->tail && b->last_index <= stable) {
            *link = b->next;
            if (a->spare == NULL && b->cap == ARENA_BLOCK_SIZE) {
                a->spare = b;
            } else {
                free(b);
            }
            continue;
        }
        link = &b->next;
    }
    /* The tail can be reused in place once everything in it is stable. */
    if (a->tail != NULL && a->tail == a->head && a->tail->last_index <= stable) {
        a->tail->used = 0;
        a->tail->last_index = 0;
    }
}

static void arena_free(struct arena *a)
{
    struct arena_block *b = a->head;

    while (b != NULL) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a->spare);
    memset(a, 0, sizeof(*a));
}

int log_init(struct raft_log *l, const struct craft_storage *storage)
{
    uint64_t first, last;

    memset(l, 0, sizeof(*l));
    l->storage = storage;
    first = storage->first_index(storage->data);
    last = storage->last_index(storage->data);
    if (first == 0 || last + 1 < first) {
        return CRAFT_ESTORAGE;
    }
    l->unstable.offset = last + 1;
    /* Everything up to the snapshot is committed and applied. */
    l->committed = first - 1;
    l->applied = first - 1;
    return 0;
}

void log_free(struct raft_log *l)
{
    free(l->unstable.entries);
    arena_free(&l->arena);
    memset(l, 0, sizeof(*l));
}

uint64_t log_first_index(const struct raft_log *l)
{
    if (l->unstable.has_snapshot) {
        return l->unstable.snapshot.index + 1;
    }
    return l->storage->first_index(l->storage->data);
}

uint64_t log_last_index(const struct raft_log *l)
{
    const struct unstable *u = &l->unstable;

    if (u->n > 0) {
        return u->offset + u->n - 1;
    }
    if (u->has_snapshot) {
        return u->snapshot.index;
    }
    return l->storage->last_index(l->storage->data);
}

int log_term(const struct raft_log *l, uint64_t i, uint64_t *term)
{
    const struct unstable *u = &l->unstable;
    uint64_t first, last;
    int rc;

    *term = 0;
    if (u->n > 0 && i >= u->offset) {
        if (i - u->offset < u->n) {
            *term = u->entries[i - u->offset].term;
        }
        return 0;
    }
    if (u->has_snapshot) {
        if (i == u->snapshot.index) {
            *term = u->snapshot.term;
            return 0;
        }
        if (i < u->snapshot.index) {
            return CRAFT_ECOMPACTED;
        }
        /* i above the snapshot with no unstable entries there: absent. */
        return 0;
    }
    first = l->storage->first_index(l->storage->data);
    last = l->storage->last_index(l->storage->data);
    if (i + 1 < first) {
        return CRAFT_ECOMPACTED;
    }
    if (i > last) {
        return 0;
    }
    rc = l->storage->term(l->storage->data, i, term);
    if (rc != 0) {
        *term = 0;
    }
    return rc;
}

uint64_t log_last_term(const struct raft_log *l)
{
    uint64_t t = 0;

    log_term(l, log_last_index(l), &t);
    return t;
}

bool log_match_term(const struct raft_log *l, uint64_t i, uint64_t term)
{
    uint64_t t;

    if (log_term(l, i, &t) != 0) {
        return false;
    }
    /* Index 0 has term 0 and always matches. */
    if (i == 0) {
        return term == 0;
    }
    return t != 0 && t == term;
}

bool log_is_up_to_date(const struct raft_log *l, uint64_t last_index, uint64_t last_term)
{
    uint64_t our_term = log_last_term(l);

    return last_term > our_term || (last_term == our_term && last_index >= log_last_index(l));
}

static int unstable_reserve(struct unstable *u, size_t extra)
{
    size_t cap = u->cap ? u->cap : 64;
    struct craft_entry *v;

    if (u->n + extra <= u->cap) {
        return 0;
    }
    while (cap < u->n + extra) {
        cap *= 2;
    }
    v = realloc(u->entries, cap * sizeof(*v));
    if (v == NULL) {
        return CRAFT_ENOMEM;
    }
    u->entries = v;
    u->cap = cap;
    return 0;
}

static void unstable_truncate_to(struct raft_log *l, size_t keep)
{
    struct unstable *u = &l->unstable;
    size_t i;

    for (i = keep; i < u->n; i++) {
        u->bytes -= u->entries[i].len;
        l->inmem_bytes -= l->inmem_bytes < u->entries[i].len ? l->inmem_bytes : u->entries[i].len;
    }
    u->n = keep;
}

/* Takes the data bytes of the stable entries [from, unstable offset) out of
 * inmem_bytes, before a conflicting append replaces them. */
static int forget_stable_bytes(struct raft_log *l, uint64_t from)
{
    struct craft_entry buf[64];
    uint64_t lo = from, hi = l->unstable.offset;

    if (l->unstable.has_snapshot) {
        return 0;
    }
    while (lo < hi && l->inmem_bytes > 0) {
        size_t n = 0, i;
        int rc = l->storage->entries(l->storage->data, lo, hi, UINT64_MAX, buf,
                                     sizeof(buf) / sizeof(buf[0]), &n);
        if (rc != 0) {
            return rc;
        }
        if (n == 0 || n > hi - lo) {
            return CRAFT_ESTORAGE;
        }
        for (i = 0; i < n; i++) {
            l->inmem_bytes -= l->inmem_bytes < buf[i].len ? l->inmem_bytes : buf[i].len;
        }
        lo += n;
    }
    return 0;
}

int log_append(struct raft_log *l, const struct craft_entry *entries, size_t n)
{
    struct unstable *u = &l->unstable;
    uint64_t after;
    size_t i;
    int rc;

    if (n == 0) {
        return 0;
    }
    after = entries[0].index;
    if (after == 0 || after - 1 < l->committed) {
        return CRAFT_ECORRUPT; /* never overwrite a committed entry */
    }
    if (after > log_last_index(l) + 1) {
        return CRAFT_EINVAL; /* a gap */
    }
    rc = unstable_reserve(u, n);
    if (rc != 0) {
        return rc;
    }
    if (after == u->offset + u->n) {
        /* The common case: straight after the tail. */
    } else if (after <= u->offset) {
        /* Replaces the whole unstable tail, and a stable suffix too. The
         * stable entries replaced were never applied (they follow the commit
         * index): they leave the in-memory byte count with them. */
        rc = forget_stable_bytes(l, after);
        if (rc != 0) {
            return rc;
        }
        unstable_truncate_to(l, 0);
        u->offset = after;
    } else {
        unstable_truncate_to(l, (size_t)(after - u->offset));
    }
    for (i = 0; i < n; i++) {
        struct craft_entry *e = &u->entries[u->n];
        *e = entries[i];
        if (e->index != after + i) {
            return CRAFT_EINVAL;
        }
        if (e->len > 0) {
            e->data = arena_copy(&l->arena, entries[i].data, e->len, e->index);
            if (e->data == NULL) {
                return CRAFT_ENOMEM;
            }
        } else {
            e->data = NULL;
        }
        u->bytes += e->len;
        l->inmem_bytes += e->len;
        u->n++;
    }
    return 0;
}

static uint64_t find_conflict(const struct raft_log *l, const struct craft_entry *entries, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (!log_match_term(l, entries[i].index, entries[i].term)) {
            return entries[i].index;
        }
    }
    return 0;
}

int log_maybe_append(struct raft_log *l, uint64_t index, uint64_t log_term_, uint64_t committed,
                     const struct craft_entry *entries, size_t n, bool *matched, uint64_t *last_new)
{
    uint64_t conflict;
    size_t i;
    int rc;

    *matched = false;
    *last_new = 0;
    if (!log_match_term(l, index, log_term_)) {
        return 0;
    }
    /* The entries must follow index contiguously. */
    for (i = 0; i < n; i++) {
        if (entries[i].index != index + 1 + i || entries[i].term == 0) {
            return CRAFT_ECORRUPT;
        }
    }
    conflict = find_conflict(l, entries, n);
    if (conflict != 0) {
        if (conflict <= l->committed) {
            return CRAFT_ECORRUPT;
        }
        rc = log_append(l, entries + (conflict - index - 1), n - (size_t)(conflict - index - 1));
        if (rc != 0) {
            return rc;
        }
    }
    *matched = true;
    *last_new = index + n;
    log_commit_to(l, committed < *last_new ? committed : *last_new);
    return 0;
}

uint64_t log_find_conflict_by_term(const struct raft_log *l, uint64_t index, uint64_t term,
                                   uint64_t *hint_term)
{
    uint64_t last = log_last_index(l);
    uint64_t t = 0;

    if (index > last) {
        index = last;
    }
    for (;;) {
        if (log_term(l, index, &t) != 0) {
            /* Compacted: the snapshot index is a safe answer. */
            t = 0;
            break;
        }
        if (t <= term || index == 0) {
            break;
        }
        index--;
    }
    *hint_term = t;
    return index;
}

void log_commit_to(struct raft_log *l, uint64_t committed)
{
    uint64_t last = log_last_index(l);

    if (committed > last) {
        committed = last;
    }
    if (committed > l->committed) {
        l->committed = committed;
    }
}

bool log_maybe_commit(struct raft_log *l, uint64_t max_index, uint64_t term)
{
    uint64_t t;

    if (max_index <= l->committed) {
        return false;
    }
    if (log_term(l, max_index, &t) != 0 || t != term) {
        return false;
    }
    log_commit_to(l, max_index);
    return true;
}

static uint64_t add_limited(uint64_t total, uint64_t len, uint64_t max_bytes, size_t taken,
                            bool *stop)
{
    if (taken > 0 && total + len > max_bytes) {
        *stop = true;
    }
    return total + len;
}

int log_entries(const struct raft_log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                struct entry_vec *out)
{
    const struct unstable *u = &l->unstable;
    uint64_t total = 0;
    size_t taken = 0;
    bool stop = false;
    int rc;

    if (hi > log_last_index(l) + 1) {
        hi = log_last_index(l) + 1;
    }
    if (lo >= hi) {
        return 0;
    }
    if (lo < log_first_index(l)) {
        return CRAFT_ECOMPACTED;
    }
    if (hi - lo > LOG_MAX_ENTRIES_PER_READ) {
        hi = lo + LOG_MAX_ENTRIES_PER_READ;
    }
    rc = entry_vec_reserve(out, (size_t)(hi - lo));
    if (rc != 0) {
        return rc;
    }
    if (lo < u->offset && !u->has_snapshot) {
        uint64_t shi = hi < u->offset ? hi : u->offset;
        size_t n = 0, i;
        rc = l->storage->entries(l->storage->data, lo, shi, max_bytes, out->v + out->n,
                                 (size_t)(shi - lo), &n);
        if (rc != 0) {
            return rc;
        }
        if (n > shi - lo) {
            return CRAFT_ESTORAGE;
        }
        for (i = 0; i < n; i++) {
            if (out->v[out->n + i].index != lo + i) {
                return CRAFT_ESTORAGE;
            }
            total += out->v[out->n + i].len;
        }
        out->n += n;
        taken = n;
        if (n < shi - lo) {
            return 0; /* byte limit reached inside storage */
        }
        lo = shi;
    }
    for (; lo < hi; lo++) {
        const struct craft_entry *e = &u->entries[lo - u->offset];
        total = add_limited(total, e->len, max_bytes, taken, &stop);
        if (stop) {
            break;
        }
        out->v[out->n++] = *e;
        taken++;
    }
    return 0;
}

void log_restore(struct raft_log *l, const struct craft_snapshot_meta *snap)
{
    struct unstable *u = &l->unstable;

    unstable_truncate_to(l, 0);
    l->inmem_bytes = 0;
    u->has_snapshot = true;
    u->snapshot = *snap;
    u->offset = snap->index + 1;
    l->committed = snap->index;
}

void log_stable_to(struct raft_log *l, uint64_t index, uint64_t term)
{
    struct unstable *u = &l->unstable;
    uint64_t t;
    size_t k, i;

    if (u->n == 0 || index < u->offset || index >= u->offset + u->n) {
        return;
    }
    if (log_term(l, index, &t) != 0 || t != term) {
        return; /* replaced since the ready was handed out */
    }
    k = (size_t)(index - u->offset + 1);
    for (i = 0; i < k; i++) {
        u->bytes -= u->entries[i].len;
    }
    memmove(u->entries, u->entries + k, (u->n - k) * sizeof(*u->entries));
    u->n -= k;
    u->offset = index + 1;
}

void log_stable_snapshot_to(struct raft_log *l, uint64_t index)
{
    if (l->unstable.has_snapshot && l->unstable.snapshot.index == index) {
        l->unstable.has_snapshot = false;
    }
}

void log_applied_to(struct raft_log *l, uint64_t index)
{
    if (index > l->applied && index <= l->committed) {
        l->applied = index;
    }
}

void log_applied_bytes(struct raft_log *l, uint64_t bytes)
{
    l->inmem_bytes -= l->inmem_bytes < bytes ? l->inmem_bytes : bytes;
}

uint64_t log_stable_index(const struct raft_log *l)
{
    if (l->unstable.has_snapshot) {
        return 0;
    }
    return l->unstable.offset - 1;
}

void log_release(struct raft_log *l)
{
    arena_release_below(&l->arena, l->unstable.offset - 1);
}
