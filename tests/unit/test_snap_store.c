/* The snapshot store: chunked write and read, temporary file + rename,
 * retention, damaged files skipped, faults (fsync, ENOSPC), and reconciling
 * the log with the snapshots after a crash. */
#include "../storage/storage_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <craft/snapshot.h>

struct fixture {
    char *dir;
    struct craft_snapshot_store *store;
    struct craft_snapshot_store_options opts;
    struct tu_log log;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("snap");
    craft_snapshot_store_options_init(&f->opts);
    f->opts.log = tu_log_fn;
    f->opts.log_arg = &f->log;
    char err[256];
    assert_int_equal(craft_snapshot_store_open(f->dir, &f->opts, &f->store, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    craft_snapshot_store_close(f->store);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static uint8_t *make_data(size_t len, uint64_t seed)
{
    uint8_t *d = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        d[i] = (uint8_t)tu_splitmix(&seed);
    return d;
}

static struct craft_snapshot_meta meta_at(uint64_t index, uint64_t term)
{
    struct craft_snapshot_meta m;
    memset(&m, 0, sizeof(m));
    m.index = index;
    m.term = term;
    m.conf.n_voters = 3;
    m.conf.voters[0] = 1;
    m.conf.voters[1] = 2;
    m.conf.voters[2] = 3;
    m.conf.n_learners = 1;
    m.conf.learners[0] = 4;
    return m;
}

static int write_snapshot(struct craft_snapshot_store *s, uint64_t group, uint64_t index,
                          uint64_t term, const uint8_t *data, size_t len, size_t chunk)
{
    struct craft_snapshot_meta m = meta_at(index, term);
    struct craft_snapshot_writer *w;
    int rc = craft_snapshot_write_begin(s, group, &m, &w);
    if (rc != 0)
        return rc;
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = craft_snapshot_write(w, off, data + off, n);
        if (rc != 0) {
            craft_snapshot_write_abort(w);
            return rc;
        }
    }
    return craft_snapshot_write_finish(w);
}

static void read_all_and_check(struct craft_snapshot_store *s, uint64_t group, uint64_t index,
                               const uint8_t *data, size_t len)
{
    struct craft_snapshot_reader *r;
    assert_int_equal(craft_snapshot_open_newest(s, group, &r), 0);
    assert_int_equal(craft_snapshot_reader_meta(r)->index, index);
    assert_int_equal(craft_snapshot_reader_meta(r)->conf.n_voters, 3);
    assert_int_equal(craft_snapshot_reader_meta(r)->conf.learners[0], 4);
    assert_int_equal(craft_snapshot_reader_size(r), len);
    uint8_t *got = malloc(len + 1);
    size_t total = 0, n;
    do {
        assert_int_equal(craft_snapshot_read(r, got + total, 7777, &n), 0);
        total += n;
    } while (n > 0);
    assert_int_equal(total, len);
    if (len > 0)
        assert_memory_equal(got, data, len);
    free(got);
    craft_snapshot_reader_close(r);
}

static void test_chunks_written_come_back_in_chunks(void **state)
{
    struct fixture *f = *state;
    size_t len = (3 << 20) + 123;
    uint8_t *data = make_data(len, 1);
    assert_int_equal(write_snapshot(f->store, 7, 100, 3, data, len, 100 << 10), 0);
    read_all_and_check(f->store, 7, 100, data, len);
    /* An empty snapshot is fine too. */
    assert_int_equal(write_snapshot(f->store, 8, 5, 1, data, 0, 1), 0);
    read_all_and_check(f->store, 8, 5, data, 0);
    struct craft_snapshot_reader *r;
    assert_int_equal(craft_snapshot_open_newest(f->store, 9, &r), CRAFT_STORAGE_ENOENT);
    free(data);
}

static void test_chunk_out_of_order_is_refused(void **state)
{
    struct fixture *f = *state;
    struct craft_snapshot_meta m = meta_at(10, 1);
    struct craft_snapshot_writer *w;
    uint8_t *data = make_data(1000, 2);
    assert_int_equal(craft_snapshot_write_begin(f->store, 1, &m, &w), 0);
    assert_int_equal(craft_snapshot_write(w, 0, data, 500), 0);
    assert_int_equal(craft_snapshot_write(w, 600, data + 600, 400), CRAFT_EINVAL); /* a gap */
    assert_int_equal(craft_snapshot_write(w, 0, data, 500), CRAFT_EINVAL);         /* a repeat */
    assert_int_equal(craft_snapshot_write(w, 500, data + 500, 500), 0);
    assert_int_equal(craft_snapshot_write_finish(w), 0);
    read_all_and_check(f->store, 1, 10, data, 1000);
    free(data);
}

/* Until finish, nothing is visible; abort and crashes leave nothing behind. */
static void test_unfinished_snapshots_are_invisible_and_cleaned(void **state)
{
    struct fixture *f = *state;
    struct craft_snapshot_meta m = meta_at(10, 1);
    struct craft_snapshot_writer *w;
    uint8_t data[100] = {1, 2, 3};
    assert_int_equal(craft_snapshot_write_begin(f->store, 1, &m, &w), 0);
    assert_int_equal(craft_snapshot_write(w, 0, data, sizeof(data)), 0);
    size_t n;
    struct craft_snapshot_info info[4];
    assert_int_equal(craft_snapshot_list(f->store, 1, info, 4, &n), 0);
    assert_int_equal(n, 0);
    craft_snapshot_write_abort(w);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/g%016x-i%016x-t%016x.snap.tmp", f->dir, 1, 10, 1);
    assert_int_equal(access(tmp, F_OK), -1);
    /* A crash mid-write leaves the temporary file until the next open. */
    FILE *fp = fopen(tmp, "wb");
    fputs("half a snapshot", fp);
    fclose(fp);
    craft_snapshot_store_close(f->store);
    char err[256];
    assert_int_equal(craft_snapshot_store_open(f->dir, &f->opts, &f->store, err, sizeof(err)), 0);
    assert_int_equal(access(tmp, F_OK), -1);
    assert_non_null(strstr(f->log.text, "removing unfinished snapshot"));
}

static void test_newest_n_are_kept(void **state)
{
    struct fixture *f = *state;
    uint8_t data[64] = {0};
    for (uint64_t i = 1; i <= 5; i++) {
        assert_int_equal(write_snapshot(f->store, 3, i * 10, 1, data, sizeof(data), 64), 0);
        assert_int_equal(write_snapshot(f->store, 4, i * 10, 1, data, sizeof(data), 64), 0);
    }
    struct craft_snapshot_info info[8];
    size_t n;
    assert_int_equal(craft_snapshot_list(f->store, 3, info, 8, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(info[0].index, 50);
    assert_int_equal(info[1].index, 40);
    assert_int_equal(craft_snapshot_list(f->store, 0, info, 8, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(craft_snapshot_retain(f->store, 4, 1), 0);
    assert_int_equal(craft_snapshot_list(f->store, 4, info, 8, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(info[0].index, 50);

    /* One snapshot by (index, term), not just the newest: the older kept
     * one opens; a deleted one, or a wrong term, does not. */
    struct craft_snapshot_reader *r = NULL;
    assert_int_equal(craft_snapshot_open(f->store, 3, 40, 1, &r), 0);
    assert_int_equal(craft_snapshot_reader_meta(r)->index, 40);
    craft_snapshot_reader_close(r);
    assert_int_equal(craft_snapshot_open(f->store, 3, 30, 1, &r), CRAFT_STORAGE_ENOENT);
    assert_int_equal(craft_snapshot_open(f->store, 3, 50, 2, &r), CRAFT_STORAGE_ENOENT);
    /* Everything of a group goes with keep 0. */
    assert_int_equal(craft_snapshot_retain(f->store, 4, 0), 0);
    assert_int_equal(craft_snapshot_list(f->store, 4, info, 8, &n), 0);
    assert_int_equal(n, 0);
}

static void flip(const char *path, long off)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    if (off < 0)
        fseek(fp, off, SEEK_END);
    else
        fseek(fp, off, SEEK_SET);
    long at = ftell(fp);
    int c = fgetc(fp);
    fseek(fp, at, SEEK_SET);
    fputc(c ^ 0x01, fp);
    fclose(fp);
}

/* A damaged newest snapshot is skipped (with a log line) for the previous one;
 * hostile lengths are bounded. */
static void test_damaged_snapshots_are_skipped(void **state)
{
    struct fixture *f = *state;
    f->opts.retain = 5;
    craft_snapshot_store_close(f->store);
    char err[256], path[4096];
    assert_int_equal(craft_snapshot_store_open(f->dir, &f->opts, &f->store, err, sizeof(err)), 0);
    uint8_t *data = make_data(10000, 3);
    for (uint64_t i = 1; i <= 4; i++)
        assert_int_equal(write_snapshot(f->store, 1, i, 1, data, 10000, 999), 0);
    /* 4: a bit flip in the data; 3: cut short; 2: a lying meta length. */
    snprintf(path, sizeof(path), "%s/g%016x-i%016x-t%016x.snap", f->dir, 1, 4, 1);
    flip(path, 5000);
    snprintf(path, sizeof(path), "%s/g%016x-i%016x-t%016x.snap", f->dir, 1, 3, 1);
    assert_int_equal(truncate(path, 4000), 0);
    snprintf(path, sizeof(path), "%s/g%016x-i%016x-t%016x.snap", f->dir, 1, 2, 1);
    FILE *fp = fopen(path, "r+b");
    fseek(fp, 40, SEEK_SET);
    fputc(0xff, fp);
    fputc(0xff, fp);
    fputc(0xff, fp);
    fclose(fp);
    read_all_and_check(f->store, 1, 1, data, 10000);
    assert_non_null(strstr(f->log.text, "data checksum mismatch"));
    assert_non_null(strstr(f->log.text, "bad trailer"));
    assert_non_null(strstr(f->log.text, "bad header"));
    snprintf(path, sizeof(path), "%s/g%016x-i%016x-t%016x.snap", f->dir, 1, 1, 1);
    flip(path, -3); /* the trailer's checksum */
    struct craft_snapshot_reader *r;
    assert_int_equal(craft_snapshot_open_newest(f->store, 1, &r), CRAFT_STORAGE_ENOENT);
    assert_non_null(strstr(craft_snapshot_store_errmsg(f->store), "no valid snapshot"));
    free(data);
}

static void test_fsync_failure_stops_the_store_and_enospc_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct craft_vfs_fault_config cfg;
    struct craft_vfs *fault;
    char err[256];
    craft_vfs_fault_config_init(&cfg);
    cfg.enospc_after_bytes = 5000;
    assert_int_equal(craft_vfs_fault_create(craft_vfs_posix(), &cfg, &fault), 0);
    craft_snapshot_store_close(f->store);
    f->opts.vfs = fault;
    assert_int_equal(craft_snapshot_store_open(f->dir, &f->opts, &f->store, err, sizeof(err)), 0);
    uint8_t *data = make_data(20000, 4);
    assert_int_equal(write_snapshot(f->store, 1, 5, 1, data, 20000, 1000), CRAFT_STORAGE_ENOSPC);
    size_t n;
    struct craft_snapshot_info info[2];
    assert_int_equal(craft_snapshot_list(f->store, 1, info, 2, &n), 0);
    assert_int_equal(n, 0);
    cfg.enospc_after_bytes = -1;
    cfg.fdatasync_fail_at = 0;
    craft_vfs_fault_set(fault, &cfg);
    assert_int_equal(write_snapshot(f->store, 1, 5, 1, data, 20000, 1000), CRAFT_STORAGE_EFATAL);
    assert_non_null(strstr(craft_snapshot_store_errmsg(f->store), "fail-stop"));
    cfg.fdatasync_fail_at = -1;
    craft_vfs_fault_set(fault, &cfg);
    assert_int_equal(write_snapshot(f->store, 1, 6, 1, data, 100, 100), CRAFT_STORAGE_EFATAL);
    assert_int_equal(craft_snapshot_list(f->store, 1, info, 2, &n), 0);
    assert_int_equal(n, 0);
    craft_snapshot_store_close(f->store);
    f->store = NULL;
    craft_vfs_fault_destroy(fault);
    f->opts.vfs = NULL;
    assert_int_equal(craft_snapshot_store_open(f->dir, &f->opts, &f->store, err, sizeof(err)), 0);
    free(data);
}

/* A crash after the snapshot was finished but before the log recorded it:
 * reconcile records it. A log that records a snapshot no file has: error. */
static void test_reconcile_log_and_snapshots(void **state)
{
    struct fixture *f = *state;
    char *wal_dir = tu_mkdtemp("snapwal");
    struct craft_wal *wal;
    char err[512];
    struct craft_wal_options opts;
    craft_wal_options_init(&opts);
    opts.segment_size = 1 << 20;
    assert_int_equal(craft_wal_open(wal_dir, &opts, &wal, err, sizeof(err)), 0);
    struct craft_log_store *ls = craft_wal_log_store(wal);
    struct craft_entry *es = tu_entries(1, 1, 30, 2);
    assert_int_equal(ls->append(ls->data, 1, es, 30), 0);
    assert_int_equal(ls->append(ls->data, 2, es, 30), 0);
    tu_entries_free(es, 30);
    assert_int_equal(ls->sync(ls->data), 0);
    uint8_t data[10] = {0};
    assert_int_equal(write_snapshot(f->store, 1, 20, 2, data, sizeof(data), 10), 0);
    /* crash here: the log never heard of it */
    craft_wal_close(wal);
    assert_int_equal(craft_wal_open(wal_dir, &opts, &wal, err, sizeof(err)), 0);
    ls = craft_wal_log_store(wal);
    assert_int_equal(craft_storage_reconcile(ls, f->store, err, sizeof(err)), 0);
    struct craft_snapshot_meta got;
    assert_int_equal(ls->snapshot(ls->data, 1, &got), 0);
    assert_int_equal(got.index, 20);
    assert_int_equal(got.conf.n_voters, 3);
    craft_wal_close(wal);
    assert_int_equal(craft_wal_open(wal_dir, &opts, &wal, err, sizeof(err)), 0);
    ls = craft_wal_log_store(wal);
    assert_int_equal(ls->snapshot(ls->data, 1, &got), 0);
    assert_int_equal(got.index, 20); /* durable */
    /* The log records a snapshot for group 2 that no file holds. */
    struct craft_snapshot_meta m = meta_at(25, 2);
    assert_int_equal(ls->save_snapshot(ls->data, 2, &m), 0);
    assert_int_equal(ls->compact(ls->data, 2, 25), 0);
    assert_int_equal(craft_storage_reconcile(ls, f->store, err, sizeof(err)), CRAFT_ECORRUPT);
    assert_non_null(strstr(err, "group 2"));
    craft_wal_close(wal);
    tu_rmtree(wal_dir);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_chunks_written_come_back_in_chunks),
        T(test_chunk_out_of_order_is_refused),
        T(test_unfinished_snapshots_are_invisible_and_cleaned),
        T(test_newest_n_are_kept),
        T(test_damaged_snapshots_are_skipped),
        T(test_fsync_failure_stops_the_store_and_enospc_leaves_nothing),
        T(test_reconcile_log_and_snapshots),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
