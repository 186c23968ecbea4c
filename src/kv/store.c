/* The LMDB state machine of craftkv (see store.h). Two databases: "data"
 * holds the pairs, every key prefixed with one byte ('k') because LMDB
 * refuses empty keys and Redis allows them; "meta" holds the applied index. */
#include "kv/store.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "kv/command.h"
#include "kv/glob.h"
#include "storage/crc32c.h"

#define KEY_PREFIX 'k'
#define APPLIED_KEY "applied"
#define SNAP_MAGIC "CKVSNAP1"
#define SNAP_HEADER 24
#define CHUNK (64 * 1024)
/* Restore commits every so many bytes: LMDB caps a transaction's dirty pages. */
#define RESTORE_TXN_BYTES (64u * 1024 * 1024)
#define SCAN_SLOTS 1024

#define ERR_NOT_INTEGER "ERR value is not an integer or out of range"
#define ERR_OVERFLOW "ERR increment or decrement would overflow"

struct scan_slot {
    uint64_t id;
    size_t len;
    char key[KV_MAX_KEY_SIZE + 1]; /* prefixed: where the scan stopped */
};

struct kv_store {
    MDB_env *env;
    MDB_dbi data, meta;
    char error[256];
    pthread_mutex_t scan_lock;
    uint64_t scan_next_id;
    struct scan_slot *scan_slots;
};

/* The key as stored: the prefix byte, then the client's key. */
struct stored_key {
    char bytes[KV_MAX_KEY_SIZE + 1];
    MDB_val val;
};

static int make_key(struct stored_key *k, const void *key, size_t len)
{
    if (len > KV_MAX_KEY_SIZE)
        return -1;
    k->bytes[0] = KEY_PREFIX;
    if (len > 0)
        memcpy(k->bytes + 1, key, len);
    k->val.mv_data = k->bytes;
    k->val.mv_size = len + 1;
    return 0;
}

static int lmdb_failed(struct kv_store *s, const char *what, int rc)
{
    snprintf(s->error, sizeof(s->error), "%s: %s", what, mdb_strerror(rc));
    return KV_STORE_EIO;
}

const char *kv_store_error(struct kv_store *s)
{
    return s->error;
}

int kv_store_open(const char *dir, size_t map_size, unsigned flags, struct kv_store **out,
                  char *err, size_t err_cap)
{
    struct kv_store *s = calloc(1, sizeof(*s));
    unsigned env_flags = MDB_NOTLS | MDB_NOMETASYNC;
    MDB_txn *txn;
    int rc;

    if (s == NULL) {
        snprintf(err, err_cap, "out of memory");
        return KV_STORE_ENOMEM;
    }
    s->scan_slots = calloc(SCAN_SLOTS, sizeof(*s->scan_slots));
    if (s->scan_slots == NULL) {
        snprintf(err, err_cap, "out of memory");
        rc = KV_STORE_ENOMEM;
        goto err_free_store;
    }
    s->scan_next_id = 1;
    if (flags & KV_STORE_NO_SYNC)
        env_flags |= MDB_NOSYNC;
    if ((rc = mdb_env_create(&s->env)) != 0) {
        snprintf(err, err_cap, "mdb_env_create: %s", mdb_strerror(rc));
        rc = KV_STORE_EIO;
        goto err_free_store;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, 2)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, map_size)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 1024)) != 0 ||
        (rc = mdb_env_open(s->env, dir, env_flags, 0644)) != 0) {
        snprintf(err, err_cap, "lmdb open %s: %s", dir, mdb_strerror(rc));
        rc = KV_STORE_EIO;
        goto err_close_env;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        snprintf(err, err_cap, "mdb_txn_begin: %s", mdb_strerror(rc));
        rc = KV_STORE_EIO;
        goto err_close_env;
    }
    if ((rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta)) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, err_cap, "lmdb databases in %s: %s", dir, mdb_strerror(rc));
        rc = KV_STORE_EIO;
        goto err_close_env;
    }
    /* A failed commit frees the transaction too. */
    if ((rc = mdb_txn_commit(txn)) != 0) {
        snprintf(err, err_cap, "lmdb commit in %s: %s", dir, mdb_strerror(rc));
        rc = KV_STORE_EIO;
        goto err_close_env;
    }
    pthread_mutex_init(&s->scan_lock, NULL);
    *out = s;
    return 0;

err_close_env:
    mdb_env_close(s->env);
err_free_store:
    free(s->scan_slots);
    free(s);
    return rc;
}

void kv_store_close(struct kv_store *s)
{
    if (s == NULL)
        return;
    mdb_env_close(s->env);
    pthread_mutex_destroy(&s->scan_lock);
    free(s->scan_slots);
    free(s);
}

static int put_applied(struct kv_store *s, MDB_txn *txn, uint64_t applied)
{
    uint8_t raw[8];
    MDB_val key = {sizeof(APPLIED_KEY) - 1, APPLIED_KEY}, val = {8, raw};
    int rc;

    le_put_u64(raw, applied);
    rc = mdb_put(txn, s->meta, &key, &val, 0);
    return rc != 0 ? lmdb_failed(s, "record applied", rc) : 0;
}

static uint64_t get_applied(struct kv_store *s, MDB_txn *txn)
{
    MDB_val key = {sizeof(APPLIED_KEY) - 1, APPLIED_KEY}, val;
    if (mdb_get(txn, s->meta, &key, &val) != 0 || val.mv_size != 8)
        return 0;
    return le_get_u64(val.mv_data);
}

/* ------------------------------------------------------------------------
 * Apply.
 * ------------------------------------------------------------------------ */

/* 1 and *val if key is present, 0 if not, or an error. */
static int get_value(struct kv_store *s, MDB_txn *txn, struct stored_key *k, MDB_val *val)
{
    int rc = mdb_get(txn, s->data, &k->val, val);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc == 0 ? 1 : lmdb_failed(s, "apply: mdb_get", rc);
}

static int put_value(struct kv_store *s, MDB_txn *txn, struct stored_key *k, const void *value,
                     size_t len)
{
    MDB_val val = {len, (void *)value};
    int rc = mdb_put(txn, s->data, &k->val, &val, 0);
    return rc != 0 ? lmdb_failed(s, "apply: mdb_put", rc) : 0;
}

static int exec_set(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                    struct kv_buf *replies)
{
    struct stored_key k;
    MDB_val old;
    int found, rc;

    make_key(&k, cmd->argv[0].ptr, cmd->argv[0].len);
    if (cmd->flags != 0) {
        found = get_value(s, txn, &k, &old);
        if (found < 0)
            return found;
        if ((cmd->flags & KV_SET_NX && found) || (cmd->flags & KV_SET_XX && !found))
            return kv_reply_null(replies);
    }
    rc = put_value(s, txn, &k, cmd->argv[1].ptr, cmd->argv[1].len);
    return rc != 0 ? rc : kv_reply_ok(replies);
}

static int exec_mset(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                     struct kv_buf *replies)
{
    struct stored_key k;
    for (size_t i = 0; i + 1 < cmd->argc; i += 2) {
        int rc;
        make_key(&k, cmd->argv[i].ptr, cmd->argv[i].len);
        rc = put_value(s, txn, &k, cmd->argv[i + 1].ptr, cmd->argv[i + 1].len);
        if (rc != 0)
            return rc;
    }
    return kv_reply_ok(replies);
}

static int exec_del(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                    struct kv_buf *replies)
{
    struct stored_key k;
    int64_t deleted = 0;
    for (size_t i = 0; i < cmd->argc; i++) {
        int rc;
        make_key(&k, cmd->argv[i].ptr, cmd->argv[i].len);
        rc = mdb_del(txn, s->data, &k.val, NULL);
        if (rc == 0)
            deleted++;
        else if (rc != MDB_NOTFOUND)
            return lmdb_failed(s, "apply: mdb_del", rc);
    }
    return kv_reply_int(replies, deleted);
}

static int exec_incrby(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                       struct kv_buf *replies)
{
    struct stored_key k;
    MDB_val old;
    int64_t value = 0;
    char text[24];
    int found, rc, n;

    make_key(&k, cmd->argv[0].ptr, cmd->argv[0].len);
    found = get_value(s, txn, &k, &old);
    if (found < 0)
        return found;
    if (found && !kv_parse_i64(old.mv_data, old.mv_size, &value))
        return kv_reply_err(replies, ERR_NOT_INTEGER);
    if ((cmd->delta > 0 && value > INT64_MAX - cmd->delta) ||
        (cmd->delta < 0 && value < INT64_MIN - cmd->delta))
        return kv_reply_err(replies, ERR_OVERFLOW);
    value += cmd->delta;
    n = snprintf(text, sizeof(text), "%lld", (long long)value);
    rc = put_value(s, txn, &k, text, (size_t)n);
    return rc != 0 ? rc : kv_reply_int(replies, value);
}

static int exec_append(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                       struct kv_buf *replies)
{
    struct stored_key k;
    MDB_val old = {0, NULL};
    char *joined;
    size_t len;
    int found, rc;

    make_key(&k, cmd->argv[0].ptr, cmd->argv[0].len);
    found = get_value(s, txn, &k, &old);
    if (found < 0)
        return found;
    if (!found)
        old.mv_size = 0;
    len = old.mv_size + cmd->argv[1].len;
    size_t limit = (cmd->flags & KV_APPEND_LIMIT) ? (size_t)cmd->delta : KV_MAX_VALUE_SIZE;
    if (len > limit) {
        char text[64];
        snprintf(text, sizeof(text), "ERR value too large (max %zu bytes)", limit);
        return kv_reply_err(replies, text);
    }
    /* The old value lives in the map and may move once we write: copy. */
    joined = malloc(len + 1);
    if (joined == NULL)
        return KV_STORE_ENOMEM;
    if (old.mv_size > 0)
        memcpy(joined, old.mv_data, old.mv_size);
    memcpy(joined + old.mv_size, cmd->argv[1].ptr, cmd->argv[1].len);
    rc = put_value(s, txn, &k, joined, len);
    free(joined);
    return rc != 0 ? rc : kv_reply_int(replies, (int64_t)len);
}

static int exec_cas(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                    struct kv_buf *replies)
{
    struct stored_key k;
    MDB_val old;
    int found, rc;

    make_key(&k, cmd->argv[0].ptr, cmd->argv[0].len);
    found = get_value(s, txn, &k, &old);
    if (found < 0)
        return found;
    if (!found || old.mv_size != cmd->argv[1].len ||
        (old.mv_size > 0 && memcmp(old.mv_data, cmd->argv[1].ptr, old.mv_size) != 0))
        return kv_reply_int(replies, 0);
    rc = put_value(s, txn, &k, cmd->argv[2].ptr, cmd->argv[2].len);
    return rc != 0 ? rc : kv_reply_int(replies, 1);
}

/* Executes one command, appending its reply. 0, or a store error (the whole
 * apply fails); a command's own failure is a reply, not an error. */
static int exec_command(struct kv_store *s, MDB_txn *txn, const struct kv_cmd *cmd,
                        struct kv_buf *replies)
{
    int rc;
    switch (cmd->op) {
    case KV_OP_SET:
        rc = exec_set(s, txn, cmd, replies);
        break;
    case KV_OP_MSET:
        rc = exec_mset(s, txn, cmd, replies);
        break;
    case KV_OP_DEL:
        rc = exec_del(s, txn, cmd, replies);
        break;
    case KV_OP_INCRBY:
        rc = exec_incrby(s, txn, cmd, replies);
        break;
    case KV_OP_APPEND:
        rc = exec_append(s, txn, cmd, replies);
        break;
    default:
        rc = exec_cas(s, txn, cmd, replies);
        break;
    }
    /* kv_reply_* fail only when the buffer could not grow. */
    return replies->failed ? KV_STORE_ENOMEM : rc;
}

static int apply_entry(struct kv_store *s, MDB_txn *txn, struct craft_fsm_entry *e)
{
    struct kv_batch_reader reader;
    struct kv_buf replies;
    struct kv_cmd cmd;
    int rc, more;

    if (e->len == 0)
        return 0;
    kv_buf_init(&replies);
    rc = kv_batch_reader_init(&reader, e->data, e->len);
    if (rc == -2) {
        rc = KV_STORE_ENOMEM;
        goto out_free_reader;
    }
    if (rc != 0) {
        /* The same bytes are malformed on every replica: answer, go on. */
        rc = 0;
        kv_reply_err(&replies, "ERR malformed command batch");
        e->result.value = 1;
    } else {
        while (rc == 0 && (more = kv_batch_reader_next(&reader, &cmd)) != 0) {
            if (more < 0) {
                rc = KV_STORE_ENOMEM;
                break;
            }
            rc = exec_command(s, txn, &cmd, &replies);
            e->result.value++;
        }
    }
    if (rc == 0 && replies.failed)
        rc = KV_STORE_ENOMEM;
    if (rc == 0)
        e->result.data = kv_buf_take(&replies, &e->result.len);

out_free_reader:
    kv_batch_reader_free(&reader);
    kv_buf_free(&replies);
    return rc;
}

int kv_store_apply(struct kv_store *s, struct craft_fsm_entry *entries, size_t n, uint64_t applied)
{
    MDB_txn *txn;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return lmdb_failed(s, "apply: mdb_txn_begin", rc);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = apply_entry(s, txn, &entries[i]);
    if (rc == 0)
        rc = put_applied(s, txn, applied);
    if (rc != 0)
        goto err_abort;
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        rc = lmdb_failed(s, "apply: mdb_txn_commit", rc);
        goto err_free_results;
    }
    return 0;

err_abort:
    mdb_txn_abort(txn);
err_free_results:
    /* Nothing was applied: no entry may answer. */
    for (size_t i = 0; i < n; i++) {
        free(entries[i].result.data);
        memset(&entries[i].result, 0, sizeof(entries[i].result));
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * Snapshots.
 * ------------------------------------------------------------------------ */

/* Buffers a writer's output into CHUNK-sized writes and checksums it. */
struct push {
    struct craft_writer *w;
    uint8_t *buf;
    size_t len;
    uint32_t crc;
    int rc;
};

static void push_flush(struct push *p)
{
    if (p->rc == 0 && p->len > 0)
        p->rc = p->w->write(p->w->data, p->buf, p->len);
    p->len = 0;
}

static void push_bytes(struct push *p, const void *data, size_t len)
{
    p->crc = crc32c(p->crc, data, len);
    if (len > CHUNK - p->len) {
        push_flush(p);
        if (len >= CHUNK) {
            if (p->rc == 0)
                p->rc = p->w->write(p->w->data, data, len);
            return;
        }
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
}

int kv_store_save(struct kv_store *s, struct craft_writer *w)
{
    struct push p = {.w = w, .rc = 0};
    uint8_t header[SNAP_HEADER], raw[8];
    MDB_txn *txn;
    MDB_cursor *cursor;
    MDB_stat stat;
    MDB_val key, val;
    int rc;

    p.buf = malloc(CHUNK);
    if (p.buf == NULL)
        return KV_STORE_ENOMEM;
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        rc = lmdb_failed(s, "save: mdb_txn_begin", rc);
        goto out_free_buffer;
    }
    if ((rc = mdb_stat(txn, s->data, &stat)) != 0 ||
        (rc = mdb_cursor_open(txn, s->data, &cursor)) != 0) {
        rc = lmdb_failed(s, "save: cursor", rc);
        goto out_abort;
    }
    memcpy(header, SNAP_MAGIC, 8);
    le_put_u64(header + 8, get_applied(s, txn));
    le_put_u64(header + 16, (uint64_t)stat.ms_entries);
    push_bytes(&p, header, sizeof(header));
    for (rc = mdb_cursor_get(cursor, &key, &val, MDB_FIRST); rc == 0 && p.rc == 0;
         rc = mdb_cursor_get(cursor, &key, &val, MDB_NEXT)) {
        le_put_u32(raw, (uint32_t)(key.mv_size - 1));
        le_put_u32(raw + 4, (uint32_t)val.mv_size);
        push_bytes(&p, raw, 8);
        push_bytes(&p, (const char *)key.mv_data + 1, key.mv_size - 1);
        push_bytes(&p, val.mv_data, val.mv_size);
    }
    mdb_cursor_close(cursor);
    if (rc != MDB_NOTFOUND && p.rc == 0) {
        rc = lmdb_failed(s, "save: mdb_cursor_get", rc);
        goto out_abort;
    }
    le_put_u32(raw, p.crc);
    push_bytes(&p, raw, 4);
    push_flush(&p);
    rc = p.rc;

out_abort:
    mdb_txn_abort(txn);
out_free_buffer:
    free(p.buf);
    return rc;
}

/* Reads exactly what is asked from a craft_reader, CHUNK bytes at a time,
 * and checksums it. */
struct pull {
    struct craft_reader *r;
    uint8_t *buf;
    size_t pos, len;
    uint32_t crc;
};

static int pull_bytes(struct pull *p, void *dst, size_t n)
{
    uint8_t *out = dst;
    while (n > 0) {
        size_t take;
        if (p->pos == p->len) {
            size_t got = 0;
            int rc = p->r->read(p->r->data, p->buf, CHUNK, &got);
            if (rc != 0)
                return rc;
            if (got == 0 || got > CHUNK)
                return KV_STORE_ECORRUPT; /* the stream ends too early */
            p->pos = 0;
            p->len = got;
        }
        take = p->len - p->pos < n ? p->len - p->pos : n;
        memcpy(out, p->buf + p->pos, take);
        p->crc = crc32c(p->crc, out, take);
        p->pos += take;
        out += take;
        n -= take;
    }
    return 0;
}

/* Empties the data and records applied 0 ("rebuild me") in one transaction. */
static int restore_begin(struct kv_store *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return lmdb_failed(s, "restore: mdb_txn_begin", rc);
    rc = mdb_drop(txn, s->data, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmdb_failed(s, "restore: mdb_drop", rc);
    }
    rc = put_applied(s, txn, 0);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc != 0 ? lmdb_failed(s, "restore: mdb_txn_commit", rc) : 0;
}

/* Reads one pair into txn, the value straight into LMDB's page. */
static int restore_pair(struct kv_store *s, struct pull *p, MDB_txn *txn, size_t *bytes)
{
    struct stored_key k;
    uint8_t raw[8];
    uint32_t klen, vlen;
    MDB_val val;
    int rc;

    rc = pull_bytes(p, raw, 8);
    if (rc != 0)
        return rc;
    klen = le_get_u32(raw);
    vlen = le_get_u32(raw + 4);
    if (klen > KV_MAX_KEY_SIZE || vlen > KV_MAX_VALUE_SIZE)
        return KV_STORE_ECORRUPT;
    k.bytes[0] = KEY_PREFIX;
    rc = pull_bytes(p, k.bytes + 1, klen);
    if (rc != 0)
        return rc;
    k.val.mv_data = k.bytes;
    k.val.mv_size = klen + 1;
    val.mv_size = vlen;
    rc = mdb_put(txn, s->data, &k.val, &val, MDB_RESERVE | MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return KV_STORE_ECORRUPT;
    if (rc != 0)
        return lmdb_failed(s, "restore: mdb_put", rc);
    *bytes += klen + vlen;
    return pull_bytes(p, val.mv_data, vlen);
}

int kv_store_restore(struct kv_store *s, struct craft_reader *r, uint64_t applied)
{
    struct pull p = {.r = r};
    uint8_t header[SNAP_HEADER], raw[4];
    MDB_txn *txn = NULL;
    uint64_t count;
    uint32_t crc;
    size_t bytes = 0, extra = 0;
    int rc;

    p.buf = malloc(CHUNK);
    if (p.buf == NULL)
        return KV_STORE_ENOMEM;
    rc = restore_begin(s);
    if (rc != 0)
        goto out_free_buffer;
    rc = pull_bytes(&p, header, sizeof(header));
    if (rc == 0 && memcmp(header, SNAP_MAGIC, 8) != 0)
        rc = KV_STORE_ECORRUPT;
    if (rc != 0)
        goto out_free_buffer;
    count = le_get_u64(header + 16);
    for (uint64_t i = 0; i < count && rc == 0; i++) {
        if (txn == NULL && (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
            txn = NULL;
            rc = lmdb_failed(s, "restore: mdb_txn_begin", rc);
            break;
        }
        rc = restore_pair(s, &p, txn, &bytes);
        if (rc == 0 && bytes >= RESTORE_TXN_BYTES) {
            rc = mdb_txn_commit(txn);
            txn = NULL;
            bytes = 0;
            if (rc != 0)
                rc = lmdb_failed(s, "restore: mdb_txn_commit", rc);
        }
    }
    if (rc != 0)
        goto out_abort;
    crc = p.crc;
    rc = pull_bytes(&p, raw, 4);
    if (rc == 0 && le_get_u32(raw) != crc)
        rc = KV_STORE_ECORRUPT;
    /* Nothing may follow the checksum. */
    if (rc == 0 &&
        (p.pos != p.len || (rc = r->read(r->data, p.buf, CHUNK, &extra)) != 0 || extra != 0))
        rc = rc != 0 ? rc : KV_STORE_ECORRUPT;
    if (rc != 0)
        goto out_abort;
    if (txn == NULL && (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        txn = NULL;
        rc = lmdb_failed(s, "restore: mdb_txn_begin", rc);
        goto out_free_buffer;
    }
    rc = put_applied(s, txn, applied);
    if (rc != 0)
        goto out_abort;
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        rc = lmdb_failed(s, "restore: mdb_txn_commit", rc);
    goto out_free_buffer;

out_abort:
    if (txn != NULL)
        mdb_txn_abort(txn);
out_free_buffer:
    free(p.buf);
    return rc;
}

uint64_t kv_store_last_applied(struct kv_store *s)
{
    MDB_txn *txn;
    uint64_t applied;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    applied = get_applied(s, txn);
    mdb_txn_abort(txn);
    return applied;
}

/* The store's own codes (KV_STORE_*) overlap craft's: say what failed
 * here, and give the host CRAFT_EFSM (its errors from the streams pass
 * through unchanged). */
static int fsm_error(struct kv_store *s, const char *what, int rc)
{
    if (rc == 0 || rc < KV_STORE_ECORRUPT)
        return rc;
    fprintf(stderr, "craftkv: store %s failed: %s\n", what,
            rc == KV_STORE_ENOMEM     ? "out of memory"
            : rc == KV_STORE_ECORRUPT ? "malformed snapshot"
                                      : kv_store_error(s));
    return CRAFT_EFSM;
}

static int fsm_apply(void *data, struct craft_fsm_entry *entries, size_t n, uint64_t applied)
{
    return fsm_error(data, "apply", kv_store_apply(data, entries, n, applied));
}

static int fsm_save(void *data, struct craft_writer *w)
{
    return fsm_error(data, "save", kv_store_save(data, w));
}

static int fsm_restore(void *data, struct craft_reader *r, uint64_t applied)
{
    return fsm_error(data, "restore", kv_store_restore(data, r, applied));
}

static uint64_t fsm_last_applied(void *data)
{
    return kv_store_last_applied(data);
}

void kv_store_fsm(struct kv_store *s, struct craft_fsm *out)
{
    memset(out, 0, sizeof(*out));
    out->data = s;
    out->apply = fsm_apply;
    out->save = fsm_save;
    out->restore = fsm_restore;
    out->last_applied = fsm_last_applied;
    out->close = NULL;
}

/* ------------------------------------------------------------------------
 * Reads.
 * ------------------------------------------------------------------------ */

int kv_read_begin(struct kv_store *s, struct kv_read *r)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    r->store = s;
    r->txn = rc == 0 ? txn : NULL;
    return rc != 0 ? lmdb_failed(s, "read: mdb_txn_begin", rc) : 0;
}

void kv_read_end(struct kv_read *r)
{
    if (r->txn != NULL)
        mdb_txn_abort(r->txn);
    r->txn = NULL;
}

uint64_t kv_read_applied(struct kv_read *r)
{
    return get_applied(r->store, r->txn);
}

int kv_read_get(struct kv_read *r, const void *key, size_t len, struct kv_slice *value)
{
    struct stored_key k;
    MDB_val val;
    int rc;

    if (make_key(&k, key, len) != 0)
        return 0; /* too long to have been stored */
    rc = mdb_get(r->txn, r->store->data, &k.val, &val);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lmdb_failed(r->store, "read: mdb_get", rc);
    value->ptr = val.mv_data;
    value->len = val.mv_size;
    return 1;
}

int kv_read_dbsize(struct kv_read *r, uint64_t *n)
{
    MDB_stat stat;
    int rc = mdb_stat(r->txn, r->store->data, &stat);
    if (rc != 0)
        return lmdb_failed(r->store, "read: mdb_stat", rc);
    *n = stat.ms_entries;
    return 0;
}

/* Walks keys from start (a stored key; NULL: the first; strictly after it
 * if after is set) for at most limit keys (0: no limit). *last gets the
 * last stored key visited; returns 1 if keys remain, 0 at the end. */
static int walk(struct kv_read *r, const MDB_val *start, bool after, size_t limit,
                const char *pattern, size_t pattern_len, kv_key_fn fn, void *arg,
                struct scan_slot *last)
{
    MDB_cursor *cursor;
    MDB_val key, val;
    size_t seen = 0;
    int rc, stop = 0;

    rc = mdb_cursor_open(r->txn, r->store->data, &cursor);
    if (rc != 0)
        return lmdb_failed(r->store, "read: mdb_cursor_open", rc);
    if (start != NULL) {
        key = *start;
        rc = mdb_cursor_get(cursor, &key, &val, MDB_SET_RANGE);
        if (rc == 0 && after && key.mv_size == start->mv_size &&
            memcmp(key.mv_data, start->mv_data, key.mv_size) == 0)
            rc = mdb_cursor_get(cursor, &key, &val, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cursor, &key, &val, MDB_FIRST);
    }
    while (rc == 0 && !stop && (limit == 0 || seen < limit)) {
        const char *k = (const char *)key.mv_data + 1;
        size_t klen = key.mv_size - 1;
        if (pattern == NULL || kv_glob_match(pattern, pattern_len, k, klen))
            stop = fn(arg, k, klen);
        seen++;
        if (last != NULL && key.mv_size <= sizeof(last->key)) {
            memcpy(last->key, key.mv_data, key.mv_size);
            last->len = key.mv_size;
        }
        rc = mdb_cursor_get(cursor, &key, &val, MDB_NEXT);
    }
    mdb_cursor_close(cursor);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lmdb_failed(r->store, "read: mdb_cursor_get", rc);
    return 1;
}

int kv_read_keys(struct kv_read *r, const char *pattern, size_t pattern_len, kv_key_fn fn,
                 void *arg)
{
    int rc = walk(r, NULL, false, 0, pattern, pattern_len, fn, arg, NULL);
    return rc < 0 ? rc : 0;
}

int kv_read_scan(struct kv_read *r, uint64_t cursor, const char *pattern, size_t pattern_len,
                 size_t count, kv_key_fn fn, void *arg, uint64_t *next)
{
    struct kv_store *s = r->store;
    struct scan_slot *last = malloc(sizeof(*last));
    MDB_val start;
    int rc;

    if (last == NULL)
        return KV_STORE_ENOMEM;
    last->len = 0;
    if (cursor != 0) {
        struct scan_slot *slot = &s->scan_slots[cursor % SCAN_SLOTS];
        pthread_mutex_lock(&s->scan_lock);
        if (slot->id == cursor)
            *last = *slot;
        pthread_mutex_unlock(&s->scan_lock);
        if (last->len == 0) {
            rc = KV_STORE_EBADCURSOR;
            goto out_free_last;
        }
        start.mv_data = last->key;
        start.mv_size = last->len;
    }
    rc = walk(r, cursor != 0 ? &start : NULL, true, count == 0 ? 10 : count, pattern, pattern_len,
              fn, arg, last);
    *next = 0;
    if (rc == 1 && last->len > 0) {
        pthread_mutex_lock(&s->scan_lock);
        last->id = s->scan_next_id++;
        s->scan_slots[last->id % SCAN_SLOTS] = *last;
        pthread_mutex_unlock(&s->scan_lock);
        *next = last->id;
    }
    rc = rc < 0 ? rc : 0;

out_free_last:
    free(last);
    return rc;
}

int kv_store_hash(struct kv_store *s, uint64_t *hash)
{
    MDB_txn *txn;
    MDB_cursor *cursor;
    MDB_val key, val;
    uint64_t h = 14695981039346656037ull;
    int rc;

    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdb_failed(s, "hash: mdb_txn_begin", rc);
    rc = mdb_cursor_open(txn, s->data, &cursor);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmdb_failed(s, "hash: mdb_cursor_open", rc);
    }
    for (rc = mdb_cursor_get(cursor, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &val, MDB_NEXT)) {
        const MDB_val *parts[2] = {&key, &val};
        for (int i = 0; i < 2; i++) {
            uint8_t raw[4];
            le_put_u32(raw, (uint32_t)parts[i]->mv_size);
            for (int j = 0; j < 4; j++)
                h = (h ^ raw[j]) * 1099511628211ull;
            for (size_t j = 0; j < parts[i]->mv_size; j++)
                h = (h ^ ((const uint8_t *)parts[i]->mv_data)[j]) * 1099511628211ull;
        }
    }
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND)
        return lmdb_failed(s, "hash: mdb_cursor_get", rc);
    *hash = h;
    return 0;
}
