/* The fault-injecting file-system layer, for tests (SQLite's test VFS idea).
 *
 * It forwards every call to a base vfs and, as configured, misbehaves: short
 * writes, a torn write followed by a "power loss" (every later call fails),
 * bit flips in what a read returns, fdatasync failures, and a full disk.
 * Counters are protected by a mutex so a batching writer can use it too. */
#include <craft/vfs.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct fault_vfs {
    struct craft_vfs base;
    struct craft_vfs *under;
    struct craft_vfs_fault_config cfg;
    struct craft_vfs_fault_stats stats;
    uint64_t rng;
    pthread_mutex_t lock;
};

struct fault_file {
    struct craft_vfs_file base;
    struct craft_vfs_file *under;
    char *path;
};

void craft_vfs_fault_config_init(struct craft_vfs_fault_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->fdatasync_fail_at = -1;
    cfg->enospc_after_bytes = -1;
    cfg->torn_write_at = -1;
    cfg->flip_offset = -1;
}

static struct fault_vfs *fv_of(struct craft_vfs *vfs)
{
    return (struct fault_vfs *)vfs;
}

/* Read without the lock by the calls that only check it. */
static bool powered_off(struct fault_vfs *fv)
{
    return __atomic_load_n(&fv->stats.powered_off, __ATOMIC_ACQUIRE);
}

static uint64_t next_random(struct fault_vfs *fv)
{
    /* splitmix64 */
    uint64_t z = (fv->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int fault_open(struct craft_vfs *vfs, const char *path, unsigned flags,
                      struct craft_vfs_file **out)
{
    struct fault_vfs *fv = fv_of(vfs);
    if (powered_off(fv))
        return -EIO;
    struct fault_file *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    f->path = strdup(path);
    if (f->path == NULL) {
        free(f);
        return -ENOMEM;
    }
    int rc = fv->under->open(fv->under, path, flags, &f->under);
    if (rc != 0) {
        free(f->path);
        free(f);
        return rc;
    }
    f->base.vfs = vfs;
    *out = &f->base;
    return 0;
}

static int fault_close(struct craft_vfs_file *file)
{
    struct fault_file *f = (struct fault_file *)file;
    int rc = f->under->vfs->close(f->under);
    free(f->path);
    free(f);
    return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return lx <= ls && memcmp(s + ls - lx, suffix, lx) == 0;
}

static int fault_pread(struct craft_vfs_file *file, void *buf, size_t len, uint64_t off, size_t *n)
{
    struct fault_file *f = (struct fault_file *)file;
    struct fault_vfs *fv = fv_of(file->vfs);
    if (powered_off(fv))
        return -EIO;
    int rc = f->under->vfs->pread(f->under, buf, len, off, n);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&fv->lock);
    if (fv->cfg.flip_path_suffix != NULL && fv->cfg.flip_offset >= 0 &&
        ends_with(f->path, fv->cfg.flip_path_suffix)) {
        uint64_t at = (uint64_t)fv->cfg.flip_offset;
        if (at >= off && at < off + *n) {
            ((unsigned char *)buf)[at - off] ^= (unsigned char)(1u << (fv->cfg.flip_bit & 7));
            fv->stats.flips++;
        }
    }
    pthread_mutex_unlock(&fv->lock);
    return 0;
}

/* Writes a random subset of the 512-byte sectors of buf: what a power loss in
 * the middle of a write can leave. */
static void torn_write(struct fault_vfs *fv, struct fault_file *f, const void *buf, size_t len,
                       uint64_t off)
{
    const unsigned char *p = buf;
    uint64_t pos = off;
    while (pos < off + len) {
        uint64_t sector_end = (pos / 512 + 1) * 512;
        if (sector_end > off + len)
            sector_end = off + len;
        size_t chunk = (size_t)(sector_end - pos);
        if (next_random(fv) & 1) {
            size_t n;
            (void)f->under->vfs->pwrite(f->under, p + (pos - off), chunk, pos, &n);
        }
        pos = sector_end;
    }
}

static int fault_pwrite(struct craft_vfs_file *file, const void *buf, size_t len, uint64_t off,
                        size_t *n)
{
    struct fault_file *f = (struct fault_file *)file;
    struct fault_vfs *fv = fv_of(file->vfs);
    int rc = 0;
    pthread_mutex_lock(&fv->lock);
    if (fv->stats.powered_off) {
        rc = -EIO;
        goto out_unlock;
    }
    int64_t index = (int64_t)fv->stats.pwrites++;
    if (fv->cfg.torn_write_at >= 0 && index == fv->cfg.torn_write_at) {
        torn_write(fv, f, buf, len, off);
        fv->stats.torn_writes++;
        __atomic_store_n(&fv->stats.powered_off, true, __ATOMIC_RELEASE);
        rc = -EIO;
        goto out_unlock;
    }
    if (fv->cfg.short_write_max > 0 && len > fv->cfg.short_write_max) {
        len = fv->cfg.short_write_max;
        fv->stats.short_writes++;
    }
    if (fv->cfg.enospc_after_bytes >= 0) {
        uint64_t budget = (uint64_t)fv->cfg.enospc_after_bytes;
        if (fv->stats.bytes_written >= budget) {
            fv->stats.enospc++;
            rc = -ENOSPC;
            goto out_unlock;
        }
        if (len > budget - fv->stats.bytes_written)
            len = (size_t)(budget - fv->stats.bytes_written); /* a short write, then ENOSPC */
    }
    rc = f->under->vfs->pwrite(f->under, buf, len, off, n);
    if (rc == 0)
        fv->stats.bytes_written += *n;
out_unlock:
    pthread_mutex_unlock(&fv->lock);
    return rc;
}

static int fault_fdatasync(struct craft_vfs_file *file)
{
    struct fault_file *f = (struct fault_file *)file;
    struct fault_vfs *fv = fv_of(file->vfs);
    pthread_mutex_lock(&fv->lock);
    bool off = fv->stats.powered_off;
    int64_t index = (int64_t)fv->stats.fdatasyncs++;
    bool fail = fv->cfg.fdatasync_fail_at >= 0 && index >= fv->cfg.fdatasync_fail_at;
    if (fail)
        fv->stats.fsync_failures++;
    pthread_mutex_unlock(&fv->lock);
    if (off || fail)
        return -EIO;
    return f->under->vfs->fdatasync(f->under);
}

static int fault_ftruncate(struct craft_vfs_file *file, uint64_t size)
{
    struct fault_file *f = (struct fault_file *)file;
    if (powered_off(fv_of(file->vfs)))
        return -EIO;
    return f->under->vfs->ftruncate(f->under, size);
}

static int fault_fallocate(struct craft_vfs_file *file, uint64_t off, uint64_t len)
{
    struct fault_file *f = (struct fault_file *)file;
    struct fault_vfs *fv = fv_of(file->vfs);
    int rc = 0;
    pthread_mutex_lock(&fv->lock);
    if (fv->stats.powered_off) {
        rc = -EIO;
    } else if (fv->cfg.enospc_after_bytes >= 0) {
        uint64_t budget = (uint64_t)fv->cfg.enospc_after_bytes;
        if (fv->stats.bytes_written + len > budget) {
            fv->stats.enospc++;
            rc = -ENOSPC;
        } else {
            fv->stats.bytes_written += len;
        }
    }
    pthread_mutex_unlock(&fv->lock);
    if (rc != 0)
        return rc;
    return f->under->vfs->fallocate(f->under, off, len);
}

static int fault_size(struct craft_vfs_file *file, uint64_t *size)
{
    struct fault_file *f = (struct fault_file *)file;
    if (powered_off(fv_of(file->vfs)))
        return -EIO;
    return f->under->vfs->size(f->under, size);
}

static int fault_rename(struct craft_vfs *vfs, const char *from, const char *to)
{
    struct fault_vfs *fv = fv_of(vfs);
    return powered_off(fv) ? -EIO : fv->under->rename(fv->under, from, to);
}

static int fault_unlink(struct craft_vfs *vfs, const char *path)
{
    struct fault_vfs *fv = fv_of(vfs);
    return powered_off(fv) ? -EIO : fv->under->unlink(fv->under, path);
}

static int fault_mkdir(struct craft_vfs *vfs, const char *path)
{
    struct fault_vfs *fv = fv_of(vfs);
    return powered_off(fv) ? -EIO : fv->under->mkdir(fv->under, path);
}

static int fault_sync_dir(struct craft_vfs *vfs, const char *path)
{
    struct fault_vfs *fv = fv_of(vfs);
    return powered_off(fv) ? -EIO : fv->under->sync_dir(fv->under, path);
}

static int fault_readdir(struct craft_vfs *vfs, const char *path,
                         int (*fn)(void *arg, const char *name), void *arg)
{
    struct fault_vfs *fv = fv_of(vfs);
    return powered_off(fv) ? -EIO : fv->under->readdir(fv->under, path, fn, arg);
}

int craft_vfs_fault_create(struct craft_vfs *base, const struct craft_vfs_fault_config *cfg,
                           struct craft_vfs **out)
{
    struct fault_vfs *fv = calloc(1, sizeof(*fv));
    if (fv == NULL)
        return -ENOMEM;
    fv->under = base;
    fv->cfg = *cfg;
    fv->rng = cfg->seed;
    pthread_mutex_init(&fv->lock, NULL);
    fv->base = (struct craft_vfs){
        .data = fv,
        .open = fault_open,
        .close = fault_close,
        .pread = fault_pread,
        .pwrite = fault_pwrite,
        .fdatasync = fault_fdatasync,
        .ftruncate = fault_ftruncate,
        .fallocate = fault_fallocate,
        .size = fault_size,
        .rename = fault_rename,
        .unlink = fault_unlink,
        .mkdir = fault_mkdir,
        .sync_dir = fault_sync_dir,
        .readdir = fault_readdir,
    };
    *out = &fv->base;
    return 0;
}

void craft_vfs_fault_destroy(struct craft_vfs *vfs)
{
    if (vfs == NULL)
        return;
    struct fault_vfs *fv = fv_of(vfs);
    pthread_mutex_destroy(&fv->lock);
    free(fv);
}

void craft_vfs_fault_set(struct craft_vfs *vfs, const struct craft_vfs_fault_config *cfg)
{
    struct fault_vfs *fv = fv_of(vfs);
    pthread_mutex_lock(&fv->lock);
    fv->cfg = *cfg;
    fv->rng = cfg->seed;
    pthread_mutex_unlock(&fv->lock);
}

void craft_vfs_fault_stats(struct craft_vfs *vfs, struct craft_vfs_fault_stats *st)
{
    struct fault_vfs *fv = fv_of(vfs);
    pthread_mutex_lock(&fv->lock);
    *st = fv->stats;
    pthread_mutex_unlock(&fv->lock);
}
