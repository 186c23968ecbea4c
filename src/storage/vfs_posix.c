/* The POSIX file-system layer: struct craft_vfs over open/pread/pwrite/
 * fdatasync/fallocate, the default under the WAL and the snapshot store.
 * Also the short-read/short-write loops every caller uses. */
#define _GNU_SOURCE /* fallocate */
#include <craft/vfs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct posix_file {
    struct craft_vfs_file base;
    int fd;
};

static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

static int posix_open(struct craft_vfs *vfs, const char *path, unsigned flags,
                      struct craft_vfs_file **out)
{
    int oflags = O_CLOEXEC;
    oflags |= (flags & CRAFT_VFS_WRITE) ? O_RDWR : O_RDONLY;
    if (flags & CRAFT_VFS_CREATE)
        oflags |= O_CREAT;
    if (flags & CRAFT_VFS_EXCL)
        oflags |= O_EXCL;
    struct posix_file *f = malloc(sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    int fd;
    do {
        fd = open(path, oflags, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int rc = neg_errno();
        free(f);
        return rc;
    }
    f->base.vfs = vfs;
    f->fd = fd;
    *out = &f->base;
    return 0;
}

static int posix_close(struct craft_vfs_file *file)
{
    struct posix_file *f = (struct posix_file *)file;
    int rc = close(f->fd) == 0 ? 0 : neg_errno();
    free(f);
    return rc;
}

static int posix_pread(struct craft_vfs_file *file, void *buf, size_t len, uint64_t off, size_t *n)
{
    struct posix_file *f = (struct posix_file *)file;
    ssize_t r;
    do {
        r = pread(f->fd, buf, len, (off_t)off);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return neg_errno();
    *n = (size_t)r;
    return 0;
}

static int posix_pwrite(struct craft_vfs_file *file, const void *buf, size_t len, uint64_t off,
                        size_t *n)
{
    struct posix_file *f = (struct posix_file *)file;
    ssize_t r;
    do {
        r = pwrite(f->fd, buf, len, (off_t)off);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return neg_errno();
    *n = (size_t)r;
    return 0;
}

static int posix_fdatasync(struct craft_vfs_file *file)
{
    struct posix_file *f = (struct posix_file *)file;
    /* No retry on any error, EINTR included: after a failed fsync the state
     * of the page cache is unknown (the fsyncgate lesson). */
    return fdatasync(f->fd) == 0 ? 0 : neg_errno();
}

static int posix_ftruncate(struct craft_vfs_file *file, uint64_t size)
{
    struct posix_file *f = (struct posix_file *)file;
    return ftruncate(f->fd, (off_t)size) == 0 ? 0 : neg_errno();
}

static int posix_fallocate_(struct craft_vfs_file *file, uint64_t off, uint64_t len)
{
    struct posix_file *f = (struct posix_file *)file;
    if (fallocate(f->fd, 0, (off_t)off, (off_t)len) == 0)
        return 0;
    if (errno != EOPNOTSUPP && errno != ENOSYS)
        return neg_errno();
    /* The file system cannot reserve blocks: let the C library emulate it. */
    int rc = posix_fallocate(f->fd, (off_t)off, (off_t)len);
    return rc == 0 ? 0 : -rc;
}

static int posix_size(struct craft_vfs_file *file, uint64_t *size)
{
    struct posix_file *f = (struct posix_file *)file;
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return neg_errno();
    *size = (uint64_t)st.st_size;
    return 0;
}

static int posix_rename(struct craft_vfs *vfs, const char *from, const char *to)
{
    (void)vfs;
    return rename(from, to) == 0 ? 0 : neg_errno();
}

static int posix_unlink(struct craft_vfs *vfs, const char *path)
{
    (void)vfs;
    return unlink(path) == 0 ? 0 : neg_errno();
}

static int posix_mkdir(struct craft_vfs *vfs, const char *path)
{
    (void)vfs;
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return neg_errno();
}

static int posix_sync_dir(struct craft_vfs *vfs, const char *path)
{
    (void)vfs;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return neg_errno();
    int rc = fsync(fd) == 0 ? 0 : neg_errno();
    close(fd);
    return rc;
}

static int posix_readdir(struct craft_vfs *vfs, const char *path,
                         int (*fn)(void *arg, const char *name), void *arg)
{
    (void)vfs;
    DIR *d = opendir(path);
    if (d == NULL)
        return neg_errno();
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0)
                rc = neg_errno();
            break;
        }
        if (e->d_name[0] == '.' &&
            (e->d_name[1] == '\0' || (e->d_name[1] == '.' && e->d_name[2] == '\0')))
            continue;
        rc = fn(arg, e->d_name);
        if (rc != 0)
            break;
    }
    closedir(d);
    return rc;
}

static struct craft_vfs posix_vfs = {
    .data = NULL,
    .open = posix_open,
    .close = posix_close,
    .pread = posix_pread,
    .pwrite = posix_pwrite,
    .fdatasync = posix_fdatasync,
    .ftruncate = posix_ftruncate,
    .fallocate = posix_fallocate_,
    .size = posix_size,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .sync_dir = posix_sync_dir,
    .readdir = posix_readdir,
};

struct craft_vfs *craft_vfs_posix(void)
{
    return &posix_vfs;
}

int craft_vfs_write_full(struct craft_vfs_file *file, const void *buf, size_t len, uint64_t off)
{
    const unsigned char *p = buf;
    while (len > 0) {
        size_t n = 0;
        int rc = file->vfs->pwrite(file, p, len, off, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return -EIO; /* no progress: do not spin */
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}

int craft_vfs_read_full(struct craft_vfs_file *file, void *buf, size_t len, uint64_t off)
{
    unsigned char *p = buf;
    while (len > 0) {
        size_t n = 0;
        int rc = file->vfs->pread(file, p, len, off, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return -ENODATA;
        p += n;
        off += n;
        len -= n;
    }
    return 0;
}
