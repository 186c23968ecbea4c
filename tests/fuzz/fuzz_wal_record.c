/* libFuzzer target for the WAL decoder: records, segment headers, the tail
 * scan, and whole recovery (replay into groups, torn-tail and corruption
 * handling) of a segment file made of the input.
 *
 * The first input byte picks a mode:
 *   even: the rest of the input is a segment file, as found on disk;
 *   odd:  the rest drives the encoder to build a valid segment (so the fuzzer
 *         reaches deep into replay without guessing checksums), which is then
 *         damaged at input-chosen places before recovery.
 * Recovery runs over an in-memory vfs holding that one file. Any crash, any
 * sanitizer report or an out-of-bounds read is a bug: a hostile file must
 * produce an error, nothing else.
 *
 * Build: cmake -DCRAFT_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_wal_record),
 * or tests/storage/run_fuzz_wal.sh. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <craft/wal.h>

#include "storage/wal_record.h"

/* ---- a one-directory, in-memory vfs ---- */

#define MEM_FILES 4
#define MEM_MAX_FILE (8u << 20)

struct mem_file_data {
    char name[64];
    uint8_t *bytes;
    size_t len;
    bool used;
};

static struct mem_file_data files[MEM_FILES];

struct mem_handle {
    struct craft_vfs_file base;
    struct mem_file_data *f;
};

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static struct mem_file_data *find(const char *path)
{
    const char *name = base_name(path);
    for (int i = 0; i < MEM_FILES; i++)
        if (files[i].used && strcmp(files[i].name, name) == 0)
            return &files[i];
    return NULL;
}

static int mem_open(struct craft_vfs *vfs, const char *path, unsigned flags,
                    struct craft_vfs_file **out)
{
    struct mem_file_data *f = find(path);
    if (f == NULL) {
        if (!(flags & CRAFT_VFS_CREATE))
            return -ENOENT;
        for (int i = 0; i < MEM_FILES && f == NULL; i++)
            if (!files[i].used)
                f = &files[i];
        if (f == NULL || strlen(base_name(path)) >= sizeof(f->name))
            return -ENOSPC;
        memset(f, 0, sizeof(*f));
        f->used = true;
        strcpy(f->name, base_name(path));
    }
    struct mem_handle *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -ENOMEM;
    h->base.vfs = vfs;
    h->f = f;
    *out = &h->base;
    return 0;
}

static int mem_close(struct craft_vfs_file *file)
{
    free(file);
    return 0;
}

static int resize(struct mem_file_data *f, uint64_t len)
{
    if (len > MEM_MAX_FILE)
        return -ENOSPC;
    uint8_t *p = realloc(f->bytes, len ? (size_t)len : 1);
    if (p == NULL)
        return -ENOMEM;
    if (len > f->len)
        memset(p + f->len, 0, (size_t)len - f->len);
    f->bytes = p;
    f->len = (size_t)len;
    return 0;
}

static int mem_pread(struct craft_vfs_file *file, void *buf, size_t len, uint64_t off, size_t *n)
{
    struct mem_file_data *f = ((struct mem_handle *)file)->f;
    *n = 0;
    if (off >= f->len)
        return 0;
    *n = f->len - off < len ? f->len - (size_t)off : len;
    memcpy(buf, f->bytes + off, *n);
    return 0;
}

static int mem_pwrite(struct craft_vfs_file *file, const void *buf, size_t len, uint64_t off,
                      size_t *n)
{
    struct mem_file_data *f = ((struct mem_handle *)file)->f;
    if (off + len > f->len) {
        int rc = resize(f, off + len);
        if (rc != 0)
            return rc;
    }
    memcpy(f->bytes + off, buf, len);
    *n = len;
    return 0;
}

static int mem_sync(struct craft_vfs_file *file)
{
    (void)file;
    return 0;
}

static int mem_ftruncate(struct craft_vfs_file *file, uint64_t size)
{
    return resize(((struct mem_handle *)file)->f, size);
}

static int mem_fallocate(struct craft_vfs_file *file, uint64_t off, uint64_t len)
{
    struct mem_file_data *f = ((struct mem_handle *)file)->f;
    return off + len > f->len ? resize(f, off + len) : 0;
}

static int mem_size(struct craft_vfs_file *file, uint64_t *size)
{
    *size = ((struct mem_handle *)file)->f->len;
    return 0;
}

static int mem_rename(struct craft_vfs *vfs, const char *from, const char *to)
{
    (void)vfs;
    struct mem_file_data *f = find(from);
    if (f == NULL)
        return -ENOENT;
    struct mem_file_data *old = find(to);
    if (old != NULL && old != f) {
        free(old->bytes);
        memset(old, 0, sizeof(*old));
    }
    if (strlen(base_name(to)) >= sizeof(f->name))
        return -EINVAL;
    strcpy(f->name, base_name(to));
    return 0;
}

static int mem_unlink(struct craft_vfs *vfs, const char *path)
{
    (void)vfs;
    struct mem_file_data *f = find(path);
    if (f == NULL)
        return -ENOENT;
    free(f->bytes);
    memset(f, 0, sizeof(*f));
    return 0;
}

static int mem_mkdir(struct craft_vfs *vfs, const char *path)
{
    (void)vfs;
    (void)path;
    return 0;
}

static int mem_sync_dir(struct craft_vfs *vfs, const char *path)
{
    (void)vfs;
    (void)path;
    return 0;
}

static int mem_readdir(struct craft_vfs *vfs, const char *path,
                       int (*fn)(void *arg, const char *name), void *arg)
{
    (void)vfs;
    (void)path;
    char names[MEM_FILES][64];
    int n = 0;
    for (int i = 0; i < MEM_FILES; i++)
        if (files[i].used)
            strcpy(names[n++], files[i].name);
    for (int i = 0; i < n; i++) {
        int rc = fn(arg, names[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static struct craft_vfs mem_vfs = {
    .open = mem_open,
    .close = mem_close,
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .fdatasync = mem_sync,
    .ftruncate = mem_ftruncate,
    .fallocate = mem_fallocate,
    .size = mem_size,
    .rename = mem_rename,
    .unlink = mem_unlink,
    .mkdir = mem_mkdir,
    .sync_dir = mem_sync_dir,
    .readdir = mem_readdir,
};

static void reset_files(void)
{
    for (int i = 0; i < MEM_FILES; i++) {
        free(files[i].bytes);
        memset(&files[i], 0, sizeof(files[i]));
    }
}

static void quiet(void *arg, int level, const char *msg)
{
    (void)arg;
    (void)level;
    (void)msg;
}

/* ---- building a valid segment from input bytes ---- */

struct input {
    const uint8_t *p;
    size_t left;
};

static uint64_t take(struct input *in, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes && in->left > 0; i++, in->left--)
        v = v << 8 | *in->p++;
    return v;
}

static void build_segment(struct input *in, struct wal_buf *seg)
{
    struct wal_buf recs = {0};
    struct craft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    int n_records = 1 + (int)(take(in, 1) % 24);
    for (int i = 0; i < n_records && in->left > 0; i++) {
        uint64_t group = 1 + take(in, 1) % 3;
        switch (take(in, 1) % 8) {
        case 0: {
            struct craft_entry es[4];
            uint8_t data[16];
            size_t n = 1 + take(in, 1) % 4;
            uint64_t first = 1 + take(in, 1) % 40;
            for (size_t k = 0; k < n; k++)
                es[k] = (struct craft_entry){.term = take(in, 1) % 5,
                                             .index = first + k,
                                             .len = (uint32_t)(take(in, 1) % 16),
                                             .data = data};
            memset(data, 0x5a, sizeof(data));
            wal_encode_entries(&recs, group, es, n);
            break;
        }
        case 1: {
            struct craft_hard_state hs = {take(in, 1), take(in, 1), take(in, 1)};
            wal_encode_hard_state(&recs, group, &hs);
            break;
        }
        case 2:
            cs.n_voters = (uint32_t)(take(in, 1) % 4);
            wal_encode_conf_state(&recs, group, &cs);
            break;
        case 3: {
            struct craft_snapshot_meta m;
            memset(&m, 0, sizeof(m));
            m.index = 1 + take(in, 1) % 50;
            m.term = take(in, 1) % 5;
            wal_encode_snapshot(&recs, group, &m);
            break;
        }
        case 4:
            wal_encode_compact(&recs, group, take(in, 1) % 50, take(in, 1) % 5);
            break;
        case 5:
            wal_encode_truncate(&recs, group, 1 + take(in, 1) % 50);
            break;
        case 6: {
            struct craft_hard_state hs = {1, 2, 3};
            struct craft_snapshot_meta m;
            memset(&m, 0, sizeof(m));
            m.index = take(in, 1) % 50;
            wal_encode_group_state(&recs, group, &hs, &cs, &m, take(in, 1) % 50, 1);
            break;
        }
        default:
            wal_encode_remove_group(&recs, group);
            break;
        }
    }
    /* Stamp in write units of input-chosen sizes. */
    uint64_t lsn = 1 + take(in, 1);
    struct wal_segment_header h = {WAL_FORMAT_VERSION, 1, lsn, 64 << 10};
    wal_buf_reserve(seg, WAL_SEGMENT_HEADER_SIZE + recs.len);
    wal_segment_header_encode(&h, seg->data);
    seg->len = WAL_SEGMENT_HEADER_SIZE;
    size_t off = 0;
    while (off < recs.len) {
        size_t unit = 1 + take(in, 1) % 4, end = off, k = 0;
        while (k < unit && end < recs.len) {
            end += wal_record_size(wal_record_payload_len(recs.data + end));
            k++;
        }
        for (size_t o = off, j = 0; o < end; j++) {
            wal_record_stamp(recs.data + o, lsn + j, lsn + k - 1);
            o += wal_record_size(wal_record_payload_len(recs.data + o));
        }
        lsn += k;
        off = end;
    }
    if (recs.len > 0)
        memcpy(seg->data + seg->len, recs.data, recs.len);
    seg->len += recs.len;
    /* Damage: flips, a cut, zeroed runs, at input-chosen places. */
    int damage = (int)(take(in, 1) % 4);
    for (int d = 0; d < damage && seg->len > 0; d++) {
        size_t at = (size_t)(take(in, 2) % seg->len);
        switch (take(in, 1) % 3) {
        case 0:
            seg->data[at] ^= (uint8_t)(1u << (take(in, 1) % 8));
            break;
        case 1:
            seg->len = at;
            break;
        default:
            memset(seg->data + at, 0, (seg->len - at) < 512 ? seg->len - at : 512);
            break;
        }
    }
    wal_buf_free(&recs);
}

static void recover_image(const uint8_t *bytes, size_t len)
{
    reset_files();
    files[0].used = true;
    strcpy(files[0].name, "00000001.wal");
    files[0].bytes = malloc(len ? len : 1);
    memcpy(files[0].bytes, bytes, len);
    files[0].len = len;

    for (int repair = 0; repair < 2; repair++) {
        struct craft_wal_options opts;
        struct craft_wal *wal = NULL;
        char err[512];
        craft_wal_options_init(&opts);
        opts.vfs = &mem_vfs;
        opts.segment_size = 64 << 10;
        opts.repair = repair == 1;
        opts.log = quiet;
        if (craft_wal_open("/fuzz", &opts, &wal, err, sizeof(err)) == 0) {
            /* Whatever was recovered must read back consistently. */
            struct craft_log_store *ls = craft_wal_log_store(wal);
            uint64_t ids[8];
            size_t n;
            ls->groups(ls->data, ids, 8, &n);
            for (size_t i = 0; i < n && i < 8; i++) {
                uint64_t first = ls->first_index(ls->data, ids[i]);
                uint64_t last = ls->last_index(ls->data, ids[i]);
                struct craft_entry out[64];
                size_t got;
                uint64_t t;
                if (last >= first && last - first < 64)
                    ls->entries(ls->data, ids[i], first, last + 1, UINT64_MAX, out, 64, &got);
                ls->term(ls->data, ids[i], first - 1, &t);
            }
            /* And the log can go on. */
            struct craft_hard_state hs = {9, 9, 0};
            ls->save_hard_state(ls->data, 1, &hs);
            craft_wal_commit(wal);
            craft_wal_close(wal);
        }
    }
    reset_files();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct input in = {data + 1, size - 1};

    /* The record decoder and the tail scan straight on the bytes. */
    struct wal_record *rec = malloc(sizeof(*rec));
    size_t off = 0, rsize;
    while (off < in.left &&
           wal_record_decode(in.p + off, in.left - off, rec, &rsize) == WAL_DEC_OK) {
        if (rec->type == WAL_REC_ENTRIES) {
            struct wal_entries_iter it;
            struct craft_entry e;
            wal_entries_iter_init(&it, rec);
            while (wal_entries_next(&it, &e))
                ;
        }
        off += rsize;
    }
    free(rec);
    struct wal_tail_evidence ev;
    wal_scan_tail(in.p, in.left, 0, 0, &ev);
    struct wal_segment_header h;
    const char *why;
    wal_segment_header_decode(in.p, in.left, &h, &why);

    if (data[0] & 1) {
        struct wal_buf seg = {0};
        build_segment(&in, &seg);
        recover_image(seg.data, seg.len);
        wal_buf_free(&seg);
    } else if (in.left <= MEM_MAX_FILE) {
        recover_image(in.p, in.left);
    }
    return 0;
}
