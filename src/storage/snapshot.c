/* The snapshot store (include/craft/snapshot.h).
 *
 * File "g<group>-i<index>-t<term>.snap" (16 hex digits each):
 *
 *   header (64):  0 magic "CRAFTSNP" | 8 u32 version | 12 u32 header size (64)
 *                 16 u64 group | 24 u64 index | 32 u64 term | 40 u32 meta length
 *                 44..60 zero | 60 u32 crc32c of 0..60
 *   meta:         the membership (wal_conf_put encoding)
 *   data:         the state machine's bytes
 *   trailer (32): 0 magic "CRAFTEND" | 8 u64 data length | 16 u32 crc32c of data
 *                 20 u32 crc32c of meta | 24 zero | 28 u32 crc32c of 0..28
 *
 * Written as <name>.<n>.tmp (n unique in the process), fdatasynced, renamed,
 * directory fsynced. Every length read back is checked against the file's
 * size before use.
 */
#include "storage_log.h"
#include "common/byteorder.h"
#include <craft/snapshot.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "wal_record.h"

#define SNAP_MAGIC "CRAFTSNP"
#define SNAP_END_MAGIC "CRAFTEND"
#define SNAP_VERSION 1u
#define SNAP_HEADER 64u
#define SNAP_TRAILER 32u
#define SNAP_MAX_META 65536u
#define SNAP_CHUNK (1u << 20)

struct craft_snapshot_store {
    struct craft_vfs *vfs;
    char *dir;
    struct craft_snapshot_store_options opts;
    bool failed;
    char errmsg[512];
    struct craft_snapshot_iface iface;
    atomic_uint_fast64_t tmp_seq; /* numbers temporary file names */
};

struct craft_snapshot_writer {
    struct craft_snapshot_store *store;
    struct craft_vfs_file *file;
    char *tmp_path, *final_path;
    uint64_t group;
    struct craft_snapshot_meta meta;
    uint64_t data_start, written;
    uint32_t data_crc, meta_crc;
};

struct craft_snapshot_reader {
    struct craft_snapshot_store *store;
    struct craft_vfs_file *file;
    struct craft_snapshot_meta meta;
    uint64_t data_start, size, pos;
};

/* ---- small helpers ---- */

static void set_err(struct craft_snapshot_store *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(struct craft_snapshot_store *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
    va_end(ap);
}

static void log_line(struct craft_snapshot_store *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(struct craft_snapshot_store *s, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    storage_vlog(s->opts.log, s->opts.log_arg, "snapshot", level, fmt, ap);
    va_end(ap);
}

static int io_error(struct craft_snapshot_store *s, const char *what, const char *name, int err)
{
    set_err(s, "%s %s: %s", what, name, strerror(-err));
    return err == -ENOSPC ? CRAFT_STORAGE_ENOSPC : CRAFT_ESTORAGE;
}

static int fail_stop(struct craft_snapshot_store *s, const char *name, int err)
{
    s->failed = true;
    set_err(s, "fdatasync %s: %s; the snapshot store has stopped (fail-stop)", name,
            strerror(-err));
    log_line(s, CRAFT_LOG_ERROR, "%s", s->errmsg);
    return CRAFT_STORAGE_EFATAL;
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p != NULL) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

static void snap_name(char *buf, size_t cap, uint64_t group, uint64_t index, uint64_t term)
{
    snprintf(buf, cap, "g%016" PRIx64 "-i%016" PRIx64 "-t%016" PRIx64 ".snap", group, index, term);
}

static bool parse_hex16(const char *p, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

/* Parses a final snapshot name; false for anything else. */
static bool parse_snap_name(const char *name, struct craft_snapshot_info *info)
{
    /* g + 16 + -i + 16 + -t + 16 + .snap = 58 */
    if (strlen(name) != 58 || name[0] != 'g' || strncmp(name + 17, "-i", 2) != 0 ||
        strncmp(name + 35, "-t", 2) != 0 || strcmp(name + 53, ".snap") != 0)
        return false;
    return parse_hex16(name + 1, &info->group) && parse_hex16(name + 19, &info->index) &&
           parse_hex16(name + 37, &info->term);
}

/* ---- the store ---- */

void craft_snapshot_store_options_init(struct craft_snapshot_store_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->retain = 2;
}

const char *craft_snapshot_store_errmsg(const struct craft_snapshot_store *store)
{
    return store->errmsg;
}

static int remove_tmp(void *arg, const char *name)
{
    struct craft_snapshot_store *s = arg;
    size_t len = strlen(name);
    if (len > 4 && strcmp(name + len - 4, ".tmp") == 0 && strstr(name, ".snap.") != NULL) {
        char *path = join(s->dir, name);
        if (path == NULL)
            return CRAFT_ENOMEM;
        log_line(s, CRAFT_LOG_INFO, "removing unfinished snapshot %s", name);
        s->vfs->unlink(s->vfs, path);
        free(path);
    }
    return 0;
}

int craft_snapshot_store_open(const char *dir, const struct craft_snapshot_store_options *opts,
                              struct craft_snapshot_store **out, char *err, size_t err_cap)
{
    struct craft_snapshot_store *s = calloc(1, sizeof(*s));
    int rc;
    if (s == NULL)
        return CRAFT_ENOMEM;
    if (opts != NULL)
        s->opts = *opts;
    else
        craft_snapshot_store_options_init(&s->opts);
    if (s->opts.retain == 0)
        s->opts.retain = 2;
    s->vfs = s->opts.vfs != NULL ? s->opts.vfs : craft_vfs_posix();
    s->dir = strdup(dir);
    if (s->dir == NULL) {
        free(s);
        return CRAFT_ENOMEM;
    }
    rc = s->vfs->mkdir(s->vfs, dir);
    if (rc == 0)
        rc = s->vfs->readdir(s->vfs, dir, remove_tmp, s);
    if (rc != 0) {
        if (err != NULL && err_cap > 0)
            snprintf(err, err_cap, "open snapshot directory %s: %s", dir,
                     rc == CRAFT_ENOMEM ? "out of memory" : strerror(-rc));
        craft_snapshot_store_close(s);
        return rc == CRAFT_ENOMEM ? rc : CRAFT_ESTORAGE;
    }
    *out = s;
    return 0;
}

void craft_snapshot_store_close(struct craft_snapshot_store *store)
{
    if (store == NULL)
        return;
    free(store->dir);
    free(store);
}

/* ---- listing ---- */

struct list_ctx {
    uint64_t group;
    struct craft_snapshot_info *items;
    size_t n, cap;
    int rc;
};

static int collect(void *arg, const char *name)
{
    struct list_ctx *c = arg;
    struct craft_snapshot_info info;
    if (!parse_snap_name(name, &info) || (c->group != 0 && info.group != c->group))
        return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct craft_snapshot_info *p = realloc(c->items, cap * sizeof(*p));
        if (p == NULL)
            return CRAFT_ENOMEM;
        c->items = p;
        c->cap = cap;
    }
    c->items[c->n++] = info;
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const struct craft_snapshot_info *x = a, *y = b;
    if (x->group != y->group)
        return x->group < y->group ? -1 : 1;
    if (x->index != y->index)
        return x->index > y->index ? -1 : 1;
    if (x->term != y->term)
        return x->term > y->term ? -1 : 1;
    return 0;
}

/* All snapshots of group (0: all), sorted by group then newest first. */
static int list_all(struct craft_snapshot_store *s, uint64_t group, struct list_ctx *c)
{
    memset(c, 0, sizeof(*c));
    c->group = group;
    int rc = s->vfs->readdir(s->vfs, s->dir, collect, c);
    if (rc != 0) {
        free(c->items);
        c->items = NULL;
        if (rc == CRAFT_ENOMEM)
            return rc;
        set_err(s, "read directory %s: %s", s->dir, strerror(-rc));
        return CRAFT_ESTORAGE;
    }
    if (c->n > 1)
        qsort(c->items, c->n, sizeof(*c->items), newest_first);
    return 0;
}

int craft_snapshot_list(struct craft_snapshot_store *store, uint64_t group,
                        struct craft_snapshot_info *out, size_t cap, size_t *n)
{
    struct list_ctx c;
    int rc = list_all(store, group, &c);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < c.n && i < cap; i++)
        out[i] = c.items[i];
    *n = c.n;
    free(c.items);
    return 0;
}

int craft_snapshot_retain(struct craft_snapshot_store *store, uint64_t group, uint32_t keep)
{
    struct list_ctx c;
    int rc = list_all(store, group, &c);
    if (rc != 0)
        return rc;
    for (size_t i = keep; i < c.n; i++) {
        char name[64];
        snap_name(name, sizeof(name), c.items[i].group, c.items[i].index, c.items[i].term);
        char *path = join(store->dir, name);
        if (path == NULL) {
            rc = CRAFT_ENOMEM;
            break;
        }
        int r = store->vfs->unlink(store->vfs, path);
        free(path);
        if (r != 0 && r != -ENOENT) {
            rc = io_error(store, "delete", name, r);
            break;
        }
        log_line(store, CRAFT_LOG_INFO, "deleted snapshot %s (keeping the newest %u)", name, keep);
    }
    free(c.items);
    return rc;
}

/* ---- writing ---- */

static void writer_free(struct craft_snapshot_writer *w, bool unlink_tmp)
{
    if (w->file != NULL)
        w->store->vfs->close(w->file);
    if (unlink_tmp && w->tmp_path != NULL)
        w->store->vfs->unlink(w->store->vfs, w->tmp_path);
    free(w->tmp_path);
    free(w->final_path);
    free(w);
}

int craft_snapshot_write_begin(struct craft_snapshot_store *store, uint64_t group,
                               const struct craft_snapshot_meta *meta,
                               struct craft_snapshot_writer **out)
{
    char name[80];
    uint8_t head[SNAP_HEADER];
    uint8_t *meta_buf = NULL;
    int rc;

    if (store->failed)
        return CRAFT_STORAGE_EFATAL;
    if (meta->index == 0 || !wal_conf_valid(&meta->conf))
        return CRAFT_EINVAL;
    struct craft_snapshot_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return CRAFT_ENOMEM;
    w->store = store;
    w->group = group;
    w->meta = *meta;
    snap_name(name, sizeof(name), group, meta->index, meta->term);
    w->final_path = join(store->dir, name);
    /* A name of its own: two writers of one snapshot (taken here while the
     * same one streams in) must not share a temporary file. */
    char tmp_name[128];
    snprintf(tmp_name, sizeof(tmp_name), "%s.%llu.tmp", name,
             (unsigned long long)atomic_fetch_add(&store->tmp_seq, 1));
    w->tmp_path = join(store->dir, tmp_name);
    if (w->final_path == NULL || w->tmp_path == NULL) {
        rc = CRAFT_ENOMEM;
        goto err_free;
    }
    rc = store->vfs->open(store->vfs, w->tmp_path, CRAFT_VFS_WRITE | CRAFT_VFS_CREATE, &w->file);
    if (rc != 0) {
        w->file = NULL;
        rc = io_error(store, "create", name, rc);
        goto err_free;
    }
    size_t meta_len = wal_conf_size(&meta->conf);
    meta_buf = malloc(meta_len);
    if (meta_buf == NULL) {
        rc = CRAFT_ENOMEM;
        goto err_unlink;
    }
    wal_conf_put(meta_buf, &meta->conf);
    memset(head, 0, sizeof(head));
    memcpy(head, SNAP_MAGIC, 8);
    le_put_u32(head + 8, SNAP_VERSION);
    le_put_u32(head + 12, SNAP_HEADER);
    le_put_u64(head + 16, group);
    le_put_u64(head + 24, meta->index);
    le_put_u64(head + 32, meta->term);
    le_put_u32(head + 40, (uint32_t)meta_len);
    le_put_u32(head + 60, crc32c(0, head, 60));
    rc = craft_vfs_write_full(w->file, head, sizeof(head), 0);
    if (rc == 0)
        rc = craft_vfs_write_full(w->file, meta_buf, meta_len, SNAP_HEADER);
    if (rc != 0) {
        rc = io_error(store, "write", name, rc);
        goto err_unlink;
    }
    w->meta_crc = crc32c(0, meta_buf, meta_len);
    w->data_start = SNAP_HEADER + meta_len;
    free(meta_buf);
    *out = w;
    return 0;

err_unlink:
    free(meta_buf);
    writer_free(w, true);
    return rc;
err_free:
    writer_free(w, false);
    return rc;
}

int craft_snapshot_write(struct craft_snapshot_writer *w, uint64_t offset, const void *buf,
                         size_t len)
{
    if (w->store->failed)
        return CRAFT_STORAGE_EFATAL;
    if (offset != w->written)
        return CRAFT_EINVAL;
    int rc = craft_vfs_write_full(w->file, buf, len, w->data_start + w->written);
    if (rc != 0)
        return io_error(w->store, "write", w->tmp_path, rc);
    w->data_crc = crc32c(w->data_crc, buf, len);
    w->written += len;
    return 0;
}

int craft_snapshot_write_finish(struct craft_snapshot_writer *w)
{
    struct craft_snapshot_store *s = w->store;
    uint8_t tail[SNAP_TRAILER];
    int rc;

    if (s->failed) {
        writer_free(w, true);
        return CRAFT_STORAGE_EFATAL;
    }
    memset(tail, 0, sizeof(tail));
    memcpy(tail, SNAP_END_MAGIC, 8);
    le_put_u64(tail + 8, w->written);
    le_put_u32(tail + 16, w->data_crc);
    le_put_u32(tail + 20, w->meta_crc);
    le_put_u32(tail + 28, crc32c(0, tail, 28));
    rc = craft_vfs_write_full(w->file, tail, sizeof(tail), w->data_start + w->written);
    if (rc != 0) {
        rc = io_error(s, "write", w->tmp_path, rc);
        goto err;
    }
    rc = s->vfs->fdatasync(w->file);
    if (rc != 0) {
        rc = fail_stop(s, w->tmp_path, rc);
        goto err;
    }
    rc = s->vfs->rename(s->vfs, w->tmp_path, w->final_path);
    if (rc != 0) {
        rc = io_error(s, "rename", w->tmp_path, rc);
        goto err;
    }
    rc = s->vfs->sync_dir(s->vfs, s->dir);
    if (rc != 0) {
        rc = fail_stop(s, s->dir, rc);
        writer_free(w, false);
        return rc;
    }
    uint64_t group = w->group;
    writer_free(w, false);
    return craft_snapshot_retain(s, group, s->opts.retain);
err:
    writer_free(w, true);
    return rc;
}

void craft_snapshot_write_abort(struct craft_snapshot_writer *w)
{
    if (w != NULL)
        writer_free(w, true);
}

/* ---- reading ---- */

/* Opens and fully verifies one snapshot file. On failure *why says what. */
static int open_verified(struct craft_snapshot_store *s, const struct craft_snapshot_info *info,
                         struct craft_snapshot_reader **out, char *why, size_t why_cap)
{
    char name[80];
    uint8_t head[SNAP_HEADER], tail[SNAP_TRAILER];
    uint8_t *buf = NULL;
    struct craft_vfs_file *file = NULL;
    uint64_t size;
    int rc;

    snap_name(name, sizeof(name), info->group, info->index, info->term);
    char *path = join(s->dir, name);
    if (path == NULL)
        return CRAFT_ENOMEM;
    rc = s->vfs->open(s->vfs, path, CRAFT_VFS_READ, &file);
    free(path);
    if (rc != 0) {
        snprintf(why, why_cap, "%s: open: %s", name, strerror(-rc));
        return CRAFT_ESTORAGE;
    }
    rc = s->vfs->size(file, &size);
    if (rc != 0) {
        snprintf(why, why_cap, "%s: stat: %s", name, strerror(-rc));
        rc = CRAFT_ESTORAGE;
        goto out;
    }
    rc = CRAFT_ECORRUPT;
    if (size < SNAP_HEADER + SNAP_TRAILER) {
        snprintf(why, why_cap, "%s offset 0: file too short (%" PRIu64 " bytes)", name, size);
        goto out;
    }
    if (craft_vfs_read_full(file, head, sizeof(head), 0) != 0 ||
        craft_vfs_read_full(file, tail, sizeof(tail), size - SNAP_TRAILER) != 0) {
        snprintf(why, why_cap, "%s: read failed", name);
        rc = CRAFT_ESTORAGE;
        goto out;
    }
    if (memcmp(head, SNAP_MAGIC, 8) != 0 || le_get_u32(head + 60) != crc32c(0, head, 60) ||
        le_get_u32(head + 8) != SNAP_VERSION || le_get_u32(head + 12) != SNAP_HEADER) {
        snprintf(why, why_cap, "%s offset 0: bad header (magic, version or checksum)", name);
        goto out;
    }
    uint64_t tail_off = size - SNAP_TRAILER;
    if (memcmp(tail, SNAP_END_MAGIC, 8) != 0 || le_get_u32(tail + 28) != crc32c(0, tail, 28)) {
        snprintf(why, why_cap, "%s offset %" PRIu64 ": bad trailer (unfinished or damaged)", name,
                 tail_off);
        goto out;
    }
    if (le_get_u64(head + 16) != info->group || le_get_u64(head + 24) != info->index ||
        le_get_u64(head + 32) != info->term) {
        snprintf(why, why_cap, "%s offset 16: header does not match the file name", name);
        goto out;
    }
    uint32_t meta_len = le_get_u32(head + 40);
    uint64_t data_len = le_get_u64(tail + 8);
    if (meta_len > SNAP_MAX_META || (uint64_t)SNAP_HEADER + meta_len > tail_off ||
        data_len != tail_off - SNAP_HEADER - meta_len) {
        snprintf(why, why_cap, "%s offset 40: lengths do not add up to the file size", name);
        goto out;
    }
    buf = malloc(meta_len > SNAP_CHUNK ? meta_len : SNAP_CHUNK);
    if (buf == NULL) {
        rc = CRAFT_ENOMEM;
        goto out;
    }
    struct craft_snapshot_reader *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        rc = CRAFT_ENOMEM;
        goto out;
    }
    if (craft_vfs_read_full(file, buf, meta_len, SNAP_HEADER) != 0) {
        snprintf(why, why_cap, "%s: read failed", name);
        rc = CRAFT_ESTORAGE;
        free(r);
        goto out;
    }
    const uint8_t *p = buf;
    if (crc32c(0, buf, meta_len) != le_get_u32(tail + 20) ||
        !wal_conf_get(&p, buf + meta_len, &r->meta.conf) || p != buf + meta_len) {
        snprintf(why, why_cap, "%s offset %u: bad membership (checksum or encoding)", name,
                 SNAP_HEADER);
        free(r);
        goto out;
    }
    /* The data's checksum, before anyone streams it. */
    uint32_t crc = 0;
    uint64_t data_start = SNAP_HEADER + meta_len;
    for (uint64_t off = 0; off < data_len;) {
        size_t n = data_len - off < SNAP_CHUNK ? (size_t)(data_len - off) : SNAP_CHUNK;
        if (craft_vfs_read_full(file, buf, n, data_start + off) != 0) {
            snprintf(why, why_cap, "%s: read failed", name);
            rc = CRAFT_ESTORAGE;
            free(r);
            goto out;
        }
        crc = crc32c(crc, buf, n);
        off += n;
    }
    if (crc != le_get_u32(tail + 16)) {
        snprintf(why, why_cap, "%s offset %" PRIu64 ": data checksum mismatch", name, data_start);
        free(r);
        goto out;
    }
    r->store = s;
    r->file = file;
    r->meta.index = info->index;
    r->meta.term = info->term;
    r->data_start = data_start;
    r->size = data_len;
    file = NULL;
    *out = r;
    rc = 0;
out:
    free(buf);
    if (file != NULL)
        s->vfs->close(file);
    return rc;
}

int craft_snapshot_open(struct craft_snapshot_store *store, uint64_t group, uint64_t index,
                        uint64_t term, struct craft_snapshot_reader **out)
{
    struct craft_snapshot_info info = {.group = group, .index = index, .term = term};
    char why[320];
    int rc = open_verified(store, &info, out, why, sizeof(why));
    if (rc != 0 && rc != CRAFT_ENOMEM) {
        set_err(store, "group %" PRIu64 ": snapshot %" PRIu64 "/%" PRIu64 ": %s", group, index,
                term, why);
        rc = CRAFT_STORAGE_ENOENT;
    }
    return rc;
}

int craft_snapshot_open_newest(struct craft_snapshot_store *store, uint64_t group,
                               struct craft_snapshot_reader **out)
{
    struct list_ctx c;
    int rc = list_all(store, group, &c);
    if (rc != 0)
        return rc;
    rc = CRAFT_STORAGE_ENOENT;
    set_err(store, "group %" PRIu64 ": no snapshot", group);
    for (size_t i = 0; i < c.n; i++) {
        char why[320];
        int r = open_verified(store, &c.items[i], out, why, sizeof(why));
        if (r == 0) {
            rc = 0;
            break;
        }
        if (r == CRAFT_ENOMEM) {
            rc = r;
            break;
        }
        log_line(store, CRAFT_LOG_WARN, "skipping damaged snapshot: %s", why);
        set_err(store, "group %" PRIu64 ": no valid snapshot (last tried: %s)", group, why);
    }
    free(c.items);
    return rc;
}

const struct craft_snapshot_meta *craft_snapshot_reader_meta(const struct craft_snapshot_reader *r)
{
    return &r->meta;
}

uint64_t craft_snapshot_reader_size(const struct craft_snapshot_reader *r)
{
    return r->size;
}

int craft_snapshot_read(struct craft_snapshot_reader *r, void *buf, size_t cap, size_t *n)
{
    uint64_t left = r->size - r->pos;
    size_t want = left < cap ? (size_t)left : cap;
    *n = 0;
    if (want == 0)
        return 0;
    int rc = craft_vfs_read_full(r->file, buf, want, r->data_start + r->pos);
    if (rc != 0) {
        set_err(r->store, "read snapshot: %s", strerror(-rc));
        return CRAFT_ESTORAGE;
    }
    r->pos += want;
    *n = want;
    return 0;
}

void craft_snapshot_reader_close(struct craft_snapshot_reader *r)
{
    if (r == NULL)
        return;
    r->store->vfs->close(r->file);
    free(r);
}

/* ---- reconciling the log with the snapshots ---- */

int craft_storage_reconcile(struct craft_log_store *log, struct craft_snapshot_store *snaps,
                            char *err, size_t err_cap)
{
    struct list_ctx c;
    int rc = list_all(snaps, 0, &c);
    bool dirty = false;
    if (rc != 0)
        goto out_msg;
    /* Groups that the log says have a snapshot must have a valid one. */
    size_t n_groups = 0;
    rc = log->groups(log->data, NULL, 0, &n_groups);
    uint64_t *ids = rc == 0 ? calloc(n_groups + 1, sizeof(*ids)) : NULL;
    if (rc == 0 && ids == NULL)
        rc = CRAFT_ENOMEM;
    if (rc == 0)
        rc = log->groups(log->data, ids, n_groups, &n_groups);
    for (size_t i = 0; rc == 0 && i < n_groups; i++) {
        struct craft_snapshot_meta marker;
        struct craft_snapshot_reader *r = NULL;
        rc = log->snapshot(log->data, ids[i], &marker);
        if (rc != 0 || marker.index == 0)
            continue;
        int r_rc = craft_snapshot_open_newest(snaps, ids[i], &r);
        uint64_t have = 0;
        if (r_rc == 0) {
            have = r->meta.index;
            craft_snapshot_reader_close(r);
        } else if (r_rc != CRAFT_STORAGE_ENOENT) {
            rc = r_rc;
            break;
        }
        if (have < marker.index) {
            set_err(snaps,
                    "group %" PRIu64 ": the log records a snapshot at index %" PRIu64
                    " but the newest valid snapshot file is at %" PRIu64
                    " (entries in between are gone)",
                    ids[i], marker.index, have);
            rc = CRAFT_ECORRUPT;
        }
    }
    free(ids);
    /* Snapshots finished but never recorded in the log. */
    for (size_t i = 0; rc == 0 && i < c.n; i++) {
        if (i > 0 && c.items[i].group == c.items[i - 1].group)
            continue; /* only the newest of each group */
        struct craft_snapshot_reader *r;
        int r_rc = craft_snapshot_open_newest(snaps, c.items[i].group, &r);
        if (r_rc == CRAFT_STORAGE_ENOENT)
            continue;
        if (r_rc != 0) {
            rc = r_rc;
            break;
        }
        struct craft_snapshot_meta marker;
        rc = log->snapshot(log->data, c.items[i].group, &marker);
        if (rc == 0 && marker.index < r->meta.index) {
            log_line(snaps, CRAFT_LOG_INFO,
                     "group %" PRIu64 ": recording snapshot %" PRIu64 " in the log",
                     c.items[i].group, r->meta.index);
            rc = log->save_snapshot(log->data, c.items[i].group, &r->meta);
            dirty = true;
        }
        craft_snapshot_reader_close(r);
    }
    if (rc == 0 && dirty)
        rc = log->sync(log->data);
out_msg:
    free(c.items);
    if (rc != 0 && err != NULL && err_cap > 0)
        snprintf(err, err_cap, "%s", snaps->errmsg[0] ? snaps->errmsg : craft_storage_strerror(rc));
    return rc;
}

/* ---- the store as an interface (craft_snapshot_iface) ---- */

static int iface_open_newest(void *data, uint64_t group, void **reader,
                             const struct craft_snapshot_meta **meta)
{
    struct craft_snapshot_reader *r = NULL;
    int rc = craft_snapshot_open_newest(data, group, &r);
    if (rc == 0) {
        *reader = r;
        *meta = craft_snapshot_reader_meta(r);
    }
    return rc;
}

static int iface_open(void *data, uint64_t group, uint64_t index, uint64_t term, void **reader,
                      const struct craft_snapshot_meta **meta)
{
    struct craft_snapshot_reader *r = NULL;
    int rc = craft_snapshot_open(data, group, index, term, &r);
    if (rc == 0) {
        *reader = r;
        *meta = craft_snapshot_reader_meta(r);
    }
    return rc;
}

static int iface_read(void *reader, void *buf, size_t cap, size_t *n)
{
    return craft_snapshot_read(reader, buf, cap, n);
}

static void iface_reader_close(void *reader)
{
    craft_snapshot_reader_close(reader);
}

static int iface_write_begin(void *data, uint64_t group, const struct craft_snapshot_meta *meta,
                             void **writer)
{
    struct craft_snapshot_writer *w = NULL;
    int rc = craft_snapshot_write_begin(data, group, meta, &w);
    if (rc == 0)
        *writer = w;
    return rc;
}

static int iface_write(void *writer, uint64_t offset, const void *buf, size_t len)
{
    return craft_snapshot_write(writer, offset, buf, len);
}

static int iface_write_finish(void *data, void *writer)
{
    (void)data;
    return craft_snapshot_write_finish(writer);
}

static void iface_write_abort(void *writer)
{
    craft_snapshot_write_abort(writer);
}

static int iface_newest(void *data, uint64_t group, uint64_t *index)
{
    struct craft_snapshot_info info;
    size_t n = 0;
    int rc = craft_snapshot_list(data, group, &info, 1, &n);
    *index = rc == 0 && n > 0 ? info.index : 0;
    return rc;
}

static int iface_remove_group(void *data, uint64_t group)
{
    return craft_snapshot_retain(data, group, 0);
}

static const char *iface_errmsg(void *data)
{
    return craft_snapshot_store_errmsg(data);
}

struct craft_snapshot_iface *craft_snapshot_store_iface(struct craft_snapshot_store *store)
{
    store->iface = (struct craft_snapshot_iface){
        .data = store,
        .open_newest = iface_open_newest,
        .open = iface_open,
        .read = iface_read,
        .reader_close = iface_reader_close,
        .write_begin = iface_write_begin,
        .write = iface_write,
        .write_finish = iface_write_finish,
        .write_abort = iface_write_abort,
        .newest = iface_newest,
        .remove_group = iface_remove_group,
        .errmsg = iface_errmsg,
    };
    return &store->iface;
}
