/* The write-ahead log: segment files, group commit, recovery, segment deletion.
 *
 * Single-threaded at its core: writes change the in-memory group state
 * (wal_group.c) and encode their records into `pending`; craft_wal_commit
 * stamps them (lsn, unit_last, checksum) and writes them with one pwrite and
 * one fdatasync per segment touched. No thread is started here: the batching
 * writer (wal_writer.c) and the host's event loop sit on top.
 *
 * Segment lifecycle: created as NNNNNNNN.wal.tmp, preallocated, header
 * written, fdatasynced, renamed to NNNNNNNN.wal, directory fsynced; written
 * until full; deleted once no group needs its entries or its metadata (see
 * maybe_delete_segments). Recovery rules are in docs/storage.md.
 */
#include <craft/wal.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage_log.h"
#include "crc32c.h"
#include "wal_group.h"
#include "wal_record.h"

#define DEFAULT_SEGMENT_SIZE (64ull << 20)
#define MIN_SEGMENT_SIZE (64ull << 10)
#define MAX_SEGMENT_FILE (1ull << 40) /* bound on a segment file read at recovery */

struct wal_segment {
    uint64_t seq;
    uint64_t first_lsn;
};

struct craft_wal {
    struct craft_vfs *vfs;
    char *dir;
    struct craft_wal_options opts;
    struct wal_groups groups;
    struct wal_segment *segs; /* oldest first; the last one is written to */
    size_t n_segs, segs_cap;
    struct craft_vfs_file *file; /* the last segment */
    uint64_t seg_offset;         /* end of the durable records in it */
    uint64_t seg_alloc;          /* its preallocated size */
    uint64_t next_lsn;
    struct wal_buf pending; /* encoded, unstamped records not yet durable */
    uint8_t *replay_buf;    /* recovery's read window */
    size_t replay_cap;
    bool failed;     /* fail-stop: an fsync or write failed */
    bool defer_sync; /* inside craft_wal_write: write without fdatasync */
    bool file_dirty; /* the last segment has writes not yet fdatasynced */
    char errmsg[512];
    struct craft_log_store store;
    struct craft_wal_stats stats;
};

/* ---- errors and logging ---- */

const char *craft_storage_strerror(int rc)
{
    switch (rc) {
    case CRAFT_STORAGE_ENOSPC:
        return "storage: no space left on the device";
    case CRAFT_STORAGE_EFATAL:
        return "storage: stopped after an fsync or write failure (fail-stop)";
    case CRAFT_STORAGE_ENOENT:
        return "storage: not found";
    default:
        return craft_strerror(rc);
    }
}

static void set_err(struct craft_wal *wal, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_err(struct craft_wal *wal, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(wal->errmsg, sizeof(wal->errmsg), fmt, ap);
    va_end(ap);
}

static void log_line(struct craft_wal *wal, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void log_line(struct craft_wal *wal, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    storage_vlog(wal->opts.log, wal->opts.log_arg, "wal", level, fmt, ap);
    va_end(ap);
}

/* Marks the WAL stopped for good (an fsync or write failed). */
static int fail_stop(struct craft_wal *wal, const char *what, const char *name, int err)
{
    wal->failed = true;
    set_err(wal, "%s %s: %s; the WAL has stopped (fail-stop): restart and recover", what, name,
            strerror(-err));
    log_line(wal, CRAFT_LOG_ERROR, "%s", wal->errmsg);
    return CRAFT_STORAGE_EFATAL;
}

const char *craft_wal_errmsg(const struct craft_wal *wal)
{
    return wal->errmsg;
}

void craft_wal_options_init(struct craft_wal_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->segment_size = DEFAULT_SEGMENT_SIZE;
}

/* ---- names ---- */

static void segment_name(char *buf, size_t cap, uint64_t seq)
{
    snprintf(buf, cap, "%08" PRIx64 ".wal", seq);
}

static char *join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int segment_path(struct craft_wal *wal, uint64_t seq, bool tmp, char **out)
{
    char name[40];
    segment_name(name, sizeof(name), seq);
    if (tmp)
        strcat(name, ".tmp");
    *out = join(wal->dir, name);
    return *out == NULL ? CRAFT_ENOMEM : 0;
}

/* Parses "NNNNNNNN.wal" (8 to 16 hex digits); 0 if not a segment name. */
static uint64_t parse_segment_name(const char *name)
{
    size_t len = strlen(name);
    if (len < 12 || len > 20 || strcmp(name + len - 4, ".wal") != 0)
        return 0;
    uint64_t seq = 0;
    for (size_t i = 0; i < len - 4; i++) {
        char c = name[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return 0;
        seq = seq * 16 + (uint64_t)d;
    }
    return seq;
}

static bool is_tmp_segment_name(const char *name)
{
    size_t len = strlen(name);
    return len > 8 && strcmp(name + len - 8, ".wal.tmp") == 0;
}

static int push_segment(struct craft_wal *wal, uint64_t seq, uint64_t first_lsn)
{
    if (wal->n_segs == wal->segs_cap) {
        size_t cap = wal->segs_cap ? wal->segs_cap * 2 : 16;
        struct wal_segment *s = realloc(wal->segs, cap * sizeof(*s));
        if (s == NULL)
            return CRAFT_ENOMEM;
        wal->segs = s;
        wal->segs_cap = cap;
    }
    wal->segs[wal->n_segs].seq = seq;
    wal->segs[wal->n_segs].first_lsn = first_lsn;
    wal->n_segs++;
    return 0;
}

static uint64_t current_seq(const struct craft_wal *wal)
{
    return wal->n_segs > 0 ? wal->segs[wal->n_segs - 1].seq : 1;
}

/* ---- segment creation (roll) ---- */

/* Creates segment seq whose first record will be first_lsn, and makes it the
 * one written to. Nothing of the log changes on failure. */
static int create_segment(struct craft_wal *wal, uint64_t seq, uint64_t first_lsn)
{
    char *tmp = NULL, *final = NULL;
    char name[40];
    struct craft_vfs_file *file = NULL;
    int rc;

    segment_name(name, sizeof(name), seq);
    rc = segment_path(wal, seq, true, &tmp);
    if (rc != 0)
        goto out;
    rc = segment_path(wal, seq, false, &final);
    if (rc != 0)
        goto out;
    rc = wal->vfs->open(wal->vfs, tmp, CRAFT_VFS_WRITE | CRAFT_VFS_CREATE, &file);
    if (rc != 0) {
        set_err(wal, "create %s: %s", name, strerror(-rc));
        rc = rc == -ENOSPC ? CRAFT_STORAGE_ENOSPC : CRAFT_ESTORAGE;
        goto out;
    }
    rc = wal->vfs->ftruncate(file, 0);
    if (rc == 0)
        rc = wal->vfs->fallocate(file, 0, wal->opts.segment_size);
    if (rc == 0) {
        uint8_t header[WAL_SEGMENT_HEADER_SIZE];
        struct wal_segment_header h = {
            .version = WAL_FORMAT_VERSION,
            .seq = seq,
            .first_lsn = first_lsn,
            .segment_size = wal->opts.segment_size,
        };
        wal_segment_header_encode(&h, header);
        rc = craft_vfs_write_full(file, header, sizeof(header), 0);
    }
    if (rc != 0) {
        set_err(wal, "create %s: %s", name, strerror(-rc));
        rc = rc == -ENOSPC ? CRAFT_STORAGE_ENOSPC : CRAFT_ESTORAGE;
        goto err_unlink;
    }
    if (!wal->opts.no_sync) {
        rc = wal->vfs->fdatasync(file);
        if (rc != 0) {
            rc = fail_stop(wal, "fdatasync", name, rc);
            goto err_unlink;
        }
    }
    rc = wal->vfs->rename(wal->vfs, tmp, final);
    if (rc != 0) {
        set_err(wal, "rename %s.tmp: %s", name, strerror(-rc));
        rc = CRAFT_ESTORAGE;
        goto err_unlink;
    }
    if (!wal->opts.no_sync) {
        rc = wal->vfs->sync_dir(wal->vfs, wal->dir);
        if (rc != 0) {
            wal->vfs->close(file);
            rc = fail_stop(wal, "fsync directory for", name, rc);
            goto out;
        }
    }
    rc = push_segment(wal, seq, first_lsn);
    if (rc != 0) {
        wal->vfs->close(file);
        goto out;
    }
    if (wal->file != NULL) {
        /* A deferred write left the old segment unsynced: it must be durable
         * before the caller's sync (which covers only the new one). */
        if (wal->file_dirty && !wal->opts.no_sync) {
            rc = wal->vfs->fdatasync(wal->file);
            wal->stats.fsyncs++;
            if (rc != 0) {
                wal->vfs->close(file);
                rc = fail_stop(wal, "fdatasync", "previous segment", rc);
                goto out;
            }
        }
        wal->vfs->close(wal->file);
    }
    wal->file = file;
    wal->file_dirty = false;
    wal->seg_offset = WAL_SEGMENT_HEADER_SIZE;
    wal->seg_alloc = wal->opts.segment_size;
    log_line(wal, CRAFT_LOG_DEBUG, "created segment %s (first lsn %" PRIu64 ")", name, first_lsn);
    goto out;

err_unlink:
    wal->vfs->close(file);
    wal->vfs->unlink(wal->vfs, tmp);
out:
    free(tmp);
    free(final);
    return rc;
}

/* ---- commit ---- */

static int maybe_delete_segments(struct craft_wal *wal);

/* Writes and syncs everything pending, rolling to new segments as needed. */
static int commit_pending(struct craft_wal *wal)
{
    char name[40];
    while (wal->pending.len > 0) {
        uint64_t room = wal->seg_alloc > wal->seg_offset ? wal->seg_alloc - wal->seg_offset : 0;
        size_t chunk = 0;
        uint64_t n_records = 0;
        while (chunk < wal->pending.len) {
            size_t size = wal_record_size(wal_record_payload_len(wal->pending.data + chunk));
            /* A record larger than a whole segment goes alone into a fresh one. */
            bool fresh = n_records == 0 && wal->seg_offset == WAL_SEGMENT_HEADER_SIZE;
            if (chunk + size > room && !fresh)
                break;
            chunk += size;
            n_records++;
            if (chunk >= room)
                break;
        }
        if (n_records == 0) {
            int rc = create_segment(wal, current_seq(wal) + 1, wal->next_lsn);
            if (rc != 0)
                return rc;
            continue;
        }
        /* Stamp: one write unit, records next_lsn .. next_lsn + n_records - 1. */
        uint64_t unit_last = wal->next_lsn + n_records - 1;
        size_t off = 0;
        for (uint64_t k = 0; k < n_records; k++) {
            uint8_t *rec = wal->pending.data + off;
            wal_record_stamp(rec, wal->next_lsn + k, unit_last);
            off += wal_record_size(wal_record_payload_len(rec));
        }
        segment_name(name, sizeof(name), current_seq(wal));
        int rc = craft_vfs_write_full(wal->file, wal->pending.data, chunk, wal->seg_offset);
        if (rc == -ENOSPC) {
            /* Nothing is consumed: the next commit rewrites the same bytes at
             * the same offset. Whatever part reached the disk is an unsynced
             * tail that recovery would truncate or that the retry overwrites. */
            set_err(wal, "write %s offset %" PRIu64 ": %s", name, wal->seg_offset,
                    strerror(ENOSPC));
            return CRAFT_STORAGE_ENOSPC;
        }
        if (rc != 0)
            return fail_stop(wal, "write", name, rc);
        if (wal->defer_sync) {
            wal->file_dirty = true;
        } else if (!wal->opts.no_sync) {
            rc = wal->vfs->fdatasync(wal->file);
            wal->stats.fsyncs++;
            if (rc != 0)
                return fail_stop(wal, "fdatasync", name, rc);
            wal->file_dirty = false;
        }
        wal->seg_offset += chunk;
        wal->next_lsn += n_records;
        wal->stats.bytes_written += chunk;
        memmove(wal->pending.data, wal->pending.data + chunk, wal->pending.len - chunk);
        wal->pending.len -= chunk;
    }
    return 0;
}

int craft_wal_commit(struct craft_wal *wal)
{
    if (wal->failed)
        return CRAFT_STORAGE_EFATAL;
    if (wal->pending.len == 0 && wal->file_dirty && !wal->opts.no_sync) {
        /* A two-phase write whose sync never ran (craft_wal_write). */
        int rc = wal->vfs->fdatasync(wal->file);
        wal->stats.fsyncs++;
        if (rc != 0)
            return fail_stop(wal, "fdatasync", "segment", rc);
        wal->file_dirty = false;
    }
    if (wal->pending.len == 0)
        return 0;
    wal->stats.commits++;
    int rc = commit_pending(wal);
    if (rc != 0)
        return rc;
    /* The caller's writes are durable; deletion failing only delays it. */
    rc = maybe_delete_segments(wal);
    if (rc == CRAFT_STORAGE_EFATAL)
        return rc;
    return 0;
}

int craft_wal_write(struct craft_wal *wal, struct craft_wal_sync *sync)
{
    memset(sync, 0, sizeof(*sync));
    if (wal->failed)
        return CRAFT_STORAGE_EFATAL;
    if (wal->pending.len > 0) {
        wal->stats.commits++;
        wal->defer_sync = true;
        int rc = commit_pending(wal);
        wal->defer_sync = false;
        if (rc != 0)
            return rc;
    }
    if (wal->file_dirty && !wal->opts.no_sync) {
        sync->file_ = wal->file;
        sync->vfs_ = wal->vfs;
    }
    return 0;
}

int craft_wal_sync_run(struct craft_wal_sync *sync)
{
    sync->status_ = 0;
    if (sync->file_ != NULL)
        sync->status_ = sync->vfs_->fdatasync(sync->file_);
    return sync->status_;
}

int craft_wal_sync_done(struct craft_wal *wal, const struct craft_wal_sync *sync)
{
    if (sync->file_ == NULL)
        return wal->failed ? CRAFT_STORAGE_EFATAL : 0;
    wal->stats.fsyncs++;
    if (sync->status_ != 0)
        return fail_stop(wal, "fdatasync", "segment", sync->status_);
    if (sync->file_ == wal->file)
        wal->file_dirty = false;
    int rc = maybe_delete_segments(wal);
    return rc == CRAFT_STORAGE_EFATAL ? rc : 0;
}

size_t craft_wal_pending_bytes(const struct craft_wal *wal)
{
    return wal->pending.len;
}

/* ---- segment deletion ----
 *
 * Segment s can go when it is not the last one and every group has what it
 * needs in later segments: its live entries (each entry remembers a lower
 * bound of the segment holding it, and live entries' segments never decrease
 * with the index, so the first live entry's is the group's minimum) and its
 * metadata (meta_seq; groups whose latest metadata may be in s get a
 * GROUP_STATE record in the current segment first). Deletion goes from the
 * oldest segment on, so the log stays a contiguous run of segments. */
static int maybe_delete_segments(struct craft_wal *wal)
{
    if (wal->n_segs <= 1)
        return 0;
    uint64_t need = current_seq(wal);
    for (size_t i = 0; i < wal->groups.cap; i++) {
        const struct wal_group *g = wal->groups.slots[i];
        if (g != NULL && g->count > 0 && g->ents[g->head].seq < need)
            need = g->ents[g->head].seq;
    }
    if (need <= wal->segs[0].seq)
        return 0;
    bool rehomed = false;
    for (size_t i = 0; i < wal->groups.cap; i++) {
        struct wal_group *g = wal->groups.slots[i];
        if (g != NULL && wal_group_meta_seq(g) < need) {
            int rc = wal_group_encode_state(g, current_seq(wal), &wal->pending);
            if (rc != 0)
                return rc;
            rehomed = true;
        }
    }
    if (rehomed) {
        int rc = commit_pending(wal);
        if (rc != 0)
            return rc;
        /* A roll in that commit cannot lower `need`. */
    }
    size_t dropped = 0;
    while (dropped < wal->n_segs - 1 && wal->segs[dropped].seq < need) {
        char *path;
        char name[40];
        segment_name(name, sizeof(name), wal->segs[dropped].seq);
        if (segment_path(wal, wal->segs[dropped].seq, false, &path) != 0)
            break;
        int rc = wal->vfs->unlink(wal->vfs, path);
        free(path);
        if (rc != 0 && rc != -ENOENT) {
            log_line(wal, CRAFT_LOG_WARN, "delete %s: %s (will retry)", name, strerror(-rc));
            break;
        }
        log_line(wal, CRAFT_LOG_INFO, "deleted segment %s: every group compacted past it", name);
        dropped++;
    }
    if (dropped > 0) {
        memmove(wal->segs, wal->segs + dropped, (wal->n_segs - dropped) * sizeof(*wal->segs));
        wal->n_segs -= dropped;
        wal->stats.segments_deleted += dropped;
        /* Not needed for safety: a deletion undone by a crash leaves older
         * records in front of the log, which replay correctly. */
        if (!wal->opts.no_sync)
            (void)wal->vfs->sync_dir(wal->vfs, wal->dir);
    }
    return 0;
}

/* ---- live writes ---- */

static int get_group(struct craft_wal *wal, uint64_t id, struct wal_group **g)
{
    if (wal->failed)
        return CRAFT_STORAGE_EFATAL;
    return wal_groups_get(&wal->groups, id, current_seq(wal), g);
}

static int wal_append(void *data, uint64_t group, const struct craft_entry *entries, size_t n)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    int rc = get_group(wal, group, &g);
    if (rc == 0)
        rc = wal_group_append(g, entries, n, current_seq(wal), &wal->pending);
    return rc;
}

static int wal_truncate(void *data, uint64_t group, uint64_t index)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    int rc = get_group(wal, group, &g);
    if (rc == 0)
        rc = wal_group_truncate(g, index, current_seq(wal), &wal->pending);
    return rc;
}

static int wal_save_hard_state(void *data, uint64_t group, const struct craft_hard_state *hs)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    int rc = get_group(wal, group, &g);
    if (rc == 0)
        rc = wal_group_set_hard_state(g, hs, current_seq(wal), &wal->pending);
    return rc;
}

static int wal_save_conf_state(void *data, uint64_t group, const struct craft_conf_state *cs)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    int rc = get_group(wal, group, &g);
    if (rc == 0)
        rc = wal_group_set_conf_state(g, cs, current_seq(wal), &wal->pending);
    return rc;
}

static int wal_save_snapshot(void *data, uint64_t group, const struct craft_snapshot_meta *meta)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    int rc = get_group(wal, group, &g);
    if (rc == 0)
        rc = wal_group_set_snapshot(g, meta, current_seq(wal), &wal->pending);
    return rc;
}

static int wal_compact(void *data, uint64_t group, uint64_t index)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    int rc = get_group(wal, group, &g);
    if (rc == 0)
        rc = wal_group_compact(g, index, current_seq(wal), &wal->pending);
    return rc;
}

static int wal_remove_group(void *data, uint64_t group)
{
    struct craft_wal *wal = data;
    if (wal->failed)
        return CRAFT_STORAGE_EFATAL;
    if (wal_groups_find(&wal->groups, group) == NULL)
        return 0;
    int rc = wal_encode_remove_group(&wal->pending, group);
    if (rc == 0)
        wal_groups_remove(&wal->groups, group);
    return rc;
}

/* ---- reads ---- */

static const struct wal_group *find_or_empty(const struct craft_wal *wal, uint64_t group)
{
    const struct wal_group *g = wal_groups_find(&wal->groups, group);
    return g != NULL ? g : wal_group_empty();
}

static int wal_entries(void *data, uint64_t group, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                       struct craft_entry *out, size_t cap, size_t *n)
{
    return wal_group_entries(find_or_empty(data, group), lo, hi, max_bytes, out, cap, n);
}

static int wal_term(void *data, uint64_t group, uint64_t index, uint64_t *term)
{
    return wal_group_term(find_or_empty(data, group), index, term);
}

static uint64_t wal_first_index(void *data, uint64_t group)
{
    return wal_group_first_index(find_or_empty(data, group));
}

static uint64_t wal_last_index(void *data, uint64_t group)
{
    return wal_group_last_index(find_or_empty(data, group));
}

static int wal_initial_state(void *data, uint64_t group, struct craft_hard_state *hs,
                             struct craft_conf_state *cs)
{
    const struct wal_group *g = find_or_empty(data, group);
    if (hs != NULL)
        *hs = g->hs;
    if (cs != NULL)
        *cs = g->conf;
    return 0;
}

static int wal_snapshot(void *data, uint64_t group, struct craft_snapshot_meta *meta)
{
    *meta = find_or_empty(data, group)->snap;
    return 0;
}

static int wal_groups_list(void *data, uint64_t *ids, size_t cap, size_t *n)
{
    struct craft_wal *wal = data;
    size_t k = 0;
    for (size_t i = 0; i < wal->groups.cap; i++) {
        const struct wal_group *g = wal->groups.slots[i];
        if (g == NULL)
            continue;
        if (k < cap)
            ids[k] = g->id;
        k++;
    }
    *n = k;
    return 0;
}

static int wal_sync(void *data)
{
    return craft_wal_commit(data);
}

static const struct craft_storage *wal_storage_view(void *data, uint64_t group)
{
    struct craft_wal *wal = data;
    struct wal_group *g;
    if (wal_groups_get(&wal->groups, group, current_seq(wal), &g) != 0)
        return NULL;
    return &g->view;
}

static void wal_store_close(void *data)
{
    craft_wal_close(data);
}

struct craft_log_store *craft_wal_log_store(struct craft_wal *wal)
{
    return &wal->store;
}

const struct craft_storage *craft_wal_storage(struct craft_wal *wal, uint64_t group)
{
    return wal_storage_view(wal, group);
}

void craft_wal_stats(const struct craft_wal *wal, struct craft_wal_stats *st)
{
    *st = wal->stats;
    st->segments = wal->n_segs;
    st->first_segment = wal->n_segs ? wal->segs[0].seq : 0;
    st->last_segment = wal->n_segs ? wal->segs[wal->n_segs - 1].seq : 0;
    st->groups = wal->groups.count;
    st->live_entries = st->live_bytes = 0;
    for (size_t i = 0; i < wal->groups.cap; i++) {
        const struct wal_group *g = wal->groups.slots[i];
        if (g != NULL) {
            st->live_entries += g->count;
            st->live_bytes += g->bytes;
        }
    }
    st->next_lsn = wal->next_lsn;
}

static int wal_store_write_pending(void *data, struct craft_wal_sync *token)
{
    return craft_wal_write(data, token);
}

static int wal_store_sync_done(void *data, struct craft_wal_sync *token)
{
    return craft_wal_sync_done(data, token);
}

static size_t wal_store_pending_bytes(void *data)
{
    return craft_wal_pending_bytes(data);
}

static const char *wal_store_errmsg(void *data)
{
    return craft_wal_errmsg(data);
}

static void init_store(struct craft_wal *wal)
{
    wal->store = (struct craft_log_store){
        .data = wal,
        .append = wal_append,
        .truncate = wal_truncate,
        .save_hard_state = wal_save_hard_state,
        .save_conf_state = wal_save_conf_state,
        .save_snapshot = wal_save_snapshot,
        .compact = wal_compact,
        .remove_group = wal_remove_group,
        .entries = wal_entries,
        .term = wal_term,
        .first_index = wal_first_index,
        .last_index = wal_last_index,
        .initial_state = wal_initial_state,
        .snapshot = wal_snapshot,
        .groups = wal_groups_list,
        .sync = wal_sync,
        .write_pending = wal_store_write_pending,
        .sync_run = craft_wal_sync_run,
        .sync_done = wal_store_sync_done,
        .pending_bytes = wal_store_pending_bytes,
        .errmsg = wal_store_errmsg,
        .storage = wal_storage_view,
        .close = wal_store_close,
    };
}

/* ---- recovery ---- */

struct dir_scan {
    struct craft_wal *wal;
    uint64_t *seqs;
    size_t n, cap;
    int rc;
};

static int collect_name(void *arg, const char *name)
{
    struct dir_scan *ds = arg;
    if (is_tmp_segment_name(name)) {
        /* A segment whose creation did not finish: never part of the log. */
        char *path = join(ds->wal->dir, name);
        if (path == NULL)
            return CRAFT_ENOMEM;
        log_line(ds->wal, CRAFT_LOG_INFO, "removing unfinished segment %s", name);
        ds->wal->vfs->unlink(ds->wal->vfs, path);
        free(path);
        return 0;
    }
    uint64_t seq = parse_segment_name(name);
    if (seq == 0)
        return 0;
    if (ds->n == ds->cap) {
        size_t cap = ds->cap ? ds->cap * 2 : 64;
        uint64_t *s = realloc(ds->seqs, cap * sizeof(*s));
        if (s == NULL)
            return CRAFT_ENOMEM;
        ds->seqs = s;
        ds->cap = cap;
    }
    ds->seqs[ds->n++] = seq;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Where replay stands between records. */
struct replay_pos {
    uint64_t last_lsn;  /* 0 before the first record */
    uint64_t last_unit; /* unit_last of that record */
};

#define REPLAY_WINDOW (4u << 20)

/* A sliding window over a segment file. Recovery reads through it rather than
 * loading whole files (mostly preallocated zeros): memory stays bounded and
 * one buffer serves every segment. */
struct seg_window {
    struct craft_vfs_file *file;
    const char *name;
    uint64_t file_len;
    uint8_t *buf; /* the WAL's replay buffer */
    size_t cap;
    uint64_t base; /* file offset of buf[0] */
    size_t len;    /* bytes of the file in buf */
};

/* Makes [off, off + need) readable, need clipped to the end of the file; *p
 * points at off and *avail says how many bytes from off the window holds
 * (0 at or past the end). */
static int window_at(struct craft_wal *wal, struct seg_window *w, uint64_t off, size_t need,
                     const uint8_t **p, size_t *avail)
{
    *p = NULL;
    *avail = 0;
    if (off >= w->file_len)
        return 0;
    uint64_t left = w->file_len - off;
    if (need > left)
        need = (size_t)left;
    if (off < w->base || off + need > w->base + w->len) {
        size_t want = need > REPLAY_WINDOW ? need : REPLAY_WINDOW;
        if (want > left)
            want = (size_t)left;
        if (want > w->cap) {
            uint8_t *b = realloc(w->buf, want);
            if (b == NULL)
                return CRAFT_ENOMEM;
            w->buf = b;
            w->cap = want;
        }
        int rc = craft_vfs_read_full(w->file, w->buf, want, off);
        if (rc != 0) {
            set_err(wal, "read %s offset %" PRIu64 ": %s", w->name, off, strerror(-rc));
            w->len = 0;
            return CRAFT_ESTORAGE;
        }
        w->base = off;
        w->len = want;
    }
    *p = w->buf + (off - w->base);
    *avail = (size_t)(w->base + w->len - off);
    return 0;
}

/* Decodes the record at off through the window. */
static int window_decode(struct craft_wal *wal, struct seg_window *w, uint64_t off,
                         struct wal_record *rec, size_t *size, int *result)
{
    const uint8_t *p;
    size_t avail;
    int rc = window_at(wal, w, off, WAL_RECORD_HEADER_SIZE, &p, &avail);
    if (rc != 0)
        return rc;
    if (avail == 0) {
        *result = WAL_DEC_ZERO;
        return 0;
    }
    if (avail >= WAL_RECORD_HEADER_SIZE) {
        uint32_t len = wal_record_payload_len(p);
        size_t need = len <= WAL_RECORD_MAX_PAYLOAD ? wal_record_size(len) : 0;
        if (need > avail) {
            rc = window_at(wal, w, off, need, &p, &avail);
            if (rc != 0)
                return rc;
        }
    }
    *result = wal_record_decode(p, avail, rec, size);
    return 0;
}

/* After a failure at from: valid records newer than after_lsn further on. */
static int window_scan_tail(struct craft_wal *wal, struct seg_window *w, uint64_t from,
                            uint64_t after_lsn, struct wal_tail_evidence *ev)
{
    memset(ev, 0, sizeof(*ev));
    uint64_t q = wal_scan_start(from);
    struct wal_record *rec = NULL;
    int rc = 0;
    while (q + WAL_RECORD_HEADER_SIZE <= w->file_len) {
        const uint8_t *p;
        size_t avail, i;
        rc = window_at(wal, w, q, REPLAY_WINDOW, &p, &avail);
        if (rc != 0)
            break;
        for (i = 0; i + WAL_RECORD_HEADER_SIZE <= avail; i += 8) {
            uint32_t rlen;
            if (!wal_scan_candidate(p + i, w->file_len - (q + i), after_lsn, &rlen))
                continue;
            size_t need = WAL_RECORD_HEADER_SIZE + (size_t)rlen, size;
            const uint8_t *rp = p + i;
            uint8_t *tmp = NULL;
            if (need > avail - i) {
                /* The candidate runs past the window: read it on its own. */
                tmp = malloc(need);
                if (tmp == NULL || craft_vfs_read_full(w->file, tmp, need, q + i) != 0) {
                    free(tmp);
                    continue;
                }
                rp = tmp;
            }
            if (rec == NULL && (rec = malloc(sizeof(*rec))) == NULL) {
                free(tmp);
                rc = CRAFT_ENOMEM;
                goto out;
            }
            if (wal_record_decode(rp, tmp != NULL ? need : avail - i, rec, &size) == WAL_DEC_OK)
                wal_tail_evidence_add(ev, q + i, rec->unit_last);
            free(tmp);
        }
        q += i;
        if (avail < WAL_RECORD_HEADER_SIZE)
            break;
    }
out:
    free(rec);
    return rc;
}

/* Bytes from `from` to the last non-zero byte of the file. */
static uint64_t window_written_extent(struct craft_wal *wal, struct seg_window *w, uint64_t from)
{
    uint64_t last = from;
    for (uint64_t q = from; q < w->file_len;) {
        const uint8_t *p;
        size_t avail;
        if (window_at(wal, w, q, REPLAY_WINDOW, &p, &avail) != 0 || avail == 0)
            break;
        for (size_t i = avail; i > 0; i--) {
            if (p[i - 1] != 0) {
                last = q + i;
                break;
            }
        }
        q += avail;
    }
    return last - from;
}

/* Cuts a segment at off: the bytes after it become zeros again, durably. */
static int cut_segment(struct craft_wal *wal, struct craft_vfs_file *file, const char *name,
                       uint64_t off, uint64_t alloc)
{
    int rc = wal->vfs->ftruncate(file, off);
    if (rc == 0 && alloc > off)
        rc = wal->vfs->fallocate(file, off, alloc - off);
    if (rc != 0) {
        set_err(wal, "truncate %s at %" PRIu64 ": %s", name, off, strerror(-rc));
        return rc == -ENOSPC ? CRAFT_STORAGE_ENOSPC : CRAFT_ESTORAGE;
    }
    rc = wal->vfs->fdatasync(file);
    if (rc != 0)
        return fail_stop(wal, "fdatasync", name, rc);
    return 0;
}

/* Replays one segment. *end_off is where the next record goes. *stop is set
 * when replay must not go on to later segments (repair dropped them). */
static int replay_segment(struct craft_wal *wal, uint64_t seq, bool is_last, struct replay_pos *pos,
                          struct craft_vfs_file **filep, uint64_t *end_off, uint64_t *alloc,
                          bool *stop)
{
    char name[40], *path = NULL;
    struct craft_vfs_file *file = NULL;
    struct wal_segment_header h;
    struct wal_record *rec = NULL;
    const char *why;
    const uint8_t *p;
    size_t avail;
    uint64_t len = 0;
    int rc;

    *stop = false;
    segment_name(name, sizeof(name), seq);
    rc = segment_path(wal, seq, false, &path);
    if (rc != 0)
        return rc;
    rc = wal->vfs->open(wal->vfs, path, CRAFT_VFS_WRITE, &file);
    if (rc != 0) {
        set_err(wal, "open %s: %s", name, strerror(-rc));
        file = NULL;
        rc = CRAFT_ESTORAGE;
        goto out;
    }
    rc = wal->vfs->size(file, &len);
    if (rc != 0) {
        set_err(wal, "stat %s: %s", name, strerror(-rc));
        rc = CRAFT_ESTORAGE;
        goto out;
    }
    if (len > MAX_SEGMENT_FILE) {
        set_err(wal, "segment %s: size %" PRIu64 " out of bounds", name, len);
        rc = CRAFT_ECORRUPT;
        goto out;
    }
    struct seg_window w = {.file = file,
                           .name = name,
                           .file_len = len,
                           .buf = wal->replay_buf,
                           .cap = wal->replay_cap};
    rec = malloc(sizeof(*rec));
    if (rec == NULL) {
        rc = CRAFT_ENOMEM;
        goto out;
    }
    rc = window_at(wal, &w, 0, WAL_SEGMENT_HEADER_SIZE, &p, &avail);
    if (rc != 0)
        goto out;
    if (wal_segment_header_decode(p, avail, &h, &why) != 0) {
        set_err(wal, "segment %s offset 0: %s", name, why);
        rc = CRAFT_ECORRUPT;
        goto out;
    }
    if (h.seq != seq) {
        set_err(wal, "segment %s offset 16: header says segment %" PRIu64, name, h.seq);
        rc = CRAFT_ECORRUPT;
        goto out;
    }
    if (pos->last_lsn != 0 && h.first_lsn != pos->last_lsn + 1) {
        set_err(wal,
                "segment %s offset 24: first lsn %" PRIu64 ", expected %" PRIu64
                " (records missing between segments)",
                name, h.first_lsn, pos->last_lsn + 1);
        rc = CRAFT_ECORRUPT;
        goto out;
    }
    if (pos->last_lsn == 0) {
        pos->last_lsn = h.first_lsn - 1;
        pos->last_unit = pos->last_lsn; /* as if a unit ended just before */
    }
    if (push_segment(wal, seq, h.first_lsn) != 0) {
        rc = CRAFT_ENOMEM;
        goto out;
    }

    uint64_t off = WAL_SEGMENT_HEADER_SIZE;
    for (;;) {
        size_t size = 0;
        int r;
        rc = window_decode(wal, &w, off, rec, &size, &r);
        if (rc != 0)
            goto out;
        if (r == WAL_DEC_OK && rec->lsn != pos->last_lsn + 1)
            r = -1; /* a valid record out of sequence */
        if (r == WAL_DEC_OK) {
            rc = wal_groups_replay(&wal->groups, rec, seq);
            if (rc != 0)
                goto out;
            pos->last_lsn = rec->lsn;
            pos->last_unit = rec->unit_last;
            wal->stats.replayed_records++;
            wal->stats.replayed_bytes += size;
            off += size;
            continue;
        }
        /* No valid record at off. Is anything valid further on? */
        struct wal_tail_evidence ev;
        rc = window_scan_tail(wal, &w, off, pos->last_lsn, &ev);
        if (rc != 0)
            goto out;
        const char *reason = r < 0 ? "record out of sequence" : wal_decode_result_name(r);
        if (r == WAL_DEC_ZERO && ev.valid_records == 0)
            break; /* the clean end of the written part */
        /* A torn last write: only the write unit in flight at the crash can
         * be damaged, i.e. the unit of the last good record if it did not
         * end there, else the next one; valid records beyond must all belong
         * to that unit. */
        bool unit_open = pos->last_lsn < pos->last_unit;
        bool torn;
        if (r == WAL_DEC_BAD_PAYLOAD || r < 0)
            torn = false;
        else if (ev.valid_records == 0)
            torn = true;
        else if (unit_open)
            torn = ev.min_unit == pos->last_unit && ev.max_unit == pos->last_unit;
        else
            torn = ev.min_unit == ev.max_unit && ev.min_unit > pos->last_unit;
        uint64_t dropped = window_written_extent(wal, &w, off);
        if (torn && is_last) {
            log_line(wal, CRAFT_LOG_WARN,
                     "segment %s offset %" PRIu64 ": torn tail (%s): truncating %" PRIu64
                     " bytes of an unfinished write",
                     name, off, reason, dropped);
            wal->stats.torn_tail_bytes += dropped;
            rc = cut_segment(wal, file, name, off, h.segment_size > len ? h.segment_size : len);
            if (rc != 0)
                goto out;
            break;
        }
        if (!wal->opts.repair) {
            if (ev.valid_records > 0)
                set_err(wal,
                        "segment %s offset %" PRIu64 ": %s (valid records follow at offset %" PRIu64
                        ": not a torn write; open with repair to truncate here)",
                        name, off, reason, ev.first_offset);
            else
                set_err(wal,
                        "segment %s offset %" PRIu64
                        ": %s (not the last segment; open with repair to "
                        "truncate here)",
                        name, off, reason);
            rc = CRAFT_ECORRUPT;
            goto out;
        }
        log_line(wal, CRAFT_LOG_WARN,
                 "repair: segment %s offset %" PRIu64
                 ": %s: dropping the rest of this segment (%" PRIu64 " bytes, %" PRIu64
                 " valid records) and every later segment",
                 name, off, reason, dropped, ev.valid_records);
        rc = cut_segment(wal, file, name, off, h.segment_size > len ? h.segment_size : len);
        if (rc != 0)
            goto out;
        *stop = true;
        break;
    }
    *end_off = off;
    *alloc = h.segment_size > len ? h.segment_size : len;
    if (is_last || *stop) {
        *filep = file;
        file = NULL;
    }
    rc = 0;
out:
    if (rec != NULL) {
        /* keep the (possibly grown) window buffer for the next segment */
        wal->replay_buf = w.buf;
        wal->replay_cap = w.cap;
    }
    free(rec);
    if (file != NULL)
        wal->vfs->close(file);
    free(path);
    return rc;
}

static int recover(struct craft_wal *wal)
{
    struct dir_scan ds = {.wal = wal};
    int rc = wal->vfs->readdir(wal->vfs, wal->dir, collect_name, &ds);
    if (rc != 0) {
        if (rc > -1000 && rc < 0 && rc != CRAFT_ENOMEM)
            set_err(wal, "read directory %s: %s", wal->dir, strerror(-rc));
        rc = rc == CRAFT_ENOMEM ? rc : CRAFT_ESTORAGE;
        goto out;
    }
    if (ds.n == 0) {
        wal->next_lsn = 1;
        rc = create_segment(wal, 1, 1);
        goto out;
    }
    qsort(ds.seqs, ds.n, sizeof(*ds.seqs), cmp_u64);
    for (size_t i = 1; i < ds.n; i++) {
        if (ds.seqs[i] != ds.seqs[i - 1] + 1) {
            char a[40], b[40];
            segment_name(a, sizeof(a), ds.seqs[i - 1]);
            segment_name(b, sizeof(b), ds.seqs[i]);
            set_err(wal, "segments %s and %s: the segments between them are missing", a, b);
            rc = CRAFT_ECORRUPT;
            goto out;
        }
    }
    struct replay_pos pos = {0, 0};
    uint64_t end_off = 0, alloc = 0;
    for (size_t i = 0; i < ds.n; i++) {
        bool stop;
        bool is_last = i == ds.n - 1;
        rc = replay_segment(wal, ds.seqs[i], is_last, &pos, &wal->file, &end_off, &alloc, &stop);
        if (rc != 0)
            goto out;
        if (stop && !is_last) {
            for (size_t j = i + 1; j < ds.n; j++) {
                char *path, name[40];
                segment_name(name, sizeof(name), ds.seqs[j]);
                if (segment_path(wal, ds.seqs[j], false, &path) != 0) {
                    rc = CRAFT_ENOMEM;
                    goto out;
                }
                log_line(wal, CRAFT_LOG_WARN, "repair: deleting segment %s", name);
                wal->vfs->unlink(wal->vfs, path);
                free(path);
            }
            wal->vfs->sync_dir(wal->vfs, wal->dir);
            break;
        }
    }
    wal->seg_offset = end_off;
    wal->seg_alloc = alloc;
    wal->next_lsn = pos.last_lsn + 1;
    for (size_t i = 0; i < wal->groups.cap; i++) {
        const struct wal_group *g = wal->groups.slots[i];
        if (g != NULL && g->gap) {
            set_err(wal,
                    "group %" PRIu64 ": entries before index %" PRIu64
                    " are missing (in a deleted or lost segment)",
                    g->id, g->compact_index + 1);
            rc = CRAFT_ECORRUPT;
            goto out;
        }
    }
    rc = 0;
out:
    free(ds.seqs);
    free(wal->replay_buf);
    wal->replay_buf = NULL;
    wal->replay_cap = 0;
    return rc;
}

int craft_wal_open(const char *dir, const struct craft_wal_options *opts, struct craft_wal **out,
                   char *err, size_t err_cap)
{
    struct craft_wal *wal = calloc(1, sizeof(*wal));
    int rc;
    if (wal == NULL)
        return CRAFT_ENOMEM;
    if (opts != NULL)
        wal->opts = *opts;
    else
        craft_wal_options_init(&wal->opts);
    if (wal->opts.segment_size == 0)
        wal->opts.segment_size = DEFAULT_SEGMENT_SIZE;
    if (wal->opts.segment_size < MIN_SEGMENT_SIZE)
        wal->opts.segment_size = MIN_SEGMENT_SIZE;
    wal->opts.segment_size = (wal->opts.segment_size + 4095) & ~4095ull;
    wal->vfs = wal->opts.vfs != NULL ? wal->opts.vfs : craft_vfs_posix();
    wal->dir = strdup(dir);
    if (wal->dir == NULL) {
        free(wal);
        return CRAFT_ENOMEM;
    }
    init_store(wal);
    rc = wal->vfs->mkdir(wal->vfs, dir);
    if (rc != 0) {
        set_err(wal, "create directory %s: %s", dir, strerror(-rc));
        rc = CRAFT_ESTORAGE;
        goto err;
    }
    rc = recover(wal);
    if (rc != 0)
        goto err;
    *out = wal;
    return 0;
err:
    if (err != NULL && err_cap > 0) {
        const char *msg = wal->errmsg[0] ? wal->errmsg : craft_storage_strerror(rc);
        snprintf(err, err_cap, "%s", msg);
    }
    craft_wal_close(wal);
    return rc;
}

void craft_wal_close(struct craft_wal *wal)
{
    if (wal == NULL)
        return;
    if (wal->file != NULL)
        wal->vfs->close(wal->file);
    wal_groups_free(&wal->groups);
    wal_buf_free(&wal->pending);
    free(wal->segs);
    free(wal->dir);
    free(wal);
}
