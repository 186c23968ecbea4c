/* Fault injection through the vfs layer (tests/unit/../storage and
 * src/storage/vfs_fault.c): short writes, torn writes with a power loss, bit
 * flips in a random record, fsync failure, a full disk. Each test shows the
 * behaviour the WAL promises: nothing acknowledged is lost, a torn tail is
 * truncated, damage before the tail is named by file and offset, an fsync
 * error stops the WAL for good, ENOSPC leaves the log valid. */
#include "../storage/storage_test_util.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "storage/wal_record.h"

struct fixture {
    char *dir;
    struct craft_vfs *fault;
    struct craft_vfs_fault_config cfg;
    struct tu_log log;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("walfault");
    craft_vfs_fault_config_init(&f->cfg);
    assert_int_equal(craft_vfs_fault_create(craft_vfs_posix(), &f->cfg, &f->fault), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    craft_vfs_fault_destroy(f->fault);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static struct craft_wal *open_wal(struct fixture *f, struct craft_vfs *vfs, uint64_t segment_size,
                                  int expect)
{
    struct craft_wal_options opts;
    struct craft_wal *wal = NULL;
    char err[512];
    craft_wal_options_init(&opts);
    opts.vfs = vfs;
    opts.segment_size = segment_size;
    opts.log = tu_log_fn;
    opts.log_arg = &f->log;
    int rc = craft_wal_open(f->dir, &opts, &wal, err, sizeof(err));
    if (rc != expect)
        fail_msg("open: %d %s", rc, err);
    return wal;
}

static int append(struct craft_wal *wal, uint64_t group, uint64_t first, size_t n, uint64_t term)
{
    struct craft_log_store *ls = craft_wal_log_store(wal);
    struct craft_entry *es = tu_entries(group, first, n, term);
    int rc = ls->append(ls->data, group, es, n);
    tu_entries_free(es, n);
    return rc;
}

/* The group holds at least [1, last] with valid contents. */
static void check_prefix(struct craft_wal *wal, uint64_t group, uint64_t last)
{
    struct craft_log_store *ls = craft_wal_log_store(wal);
    assert_true(ls->last_index(ls->data, group) >= last);
    assert_int_equal(ls->first_index(ls->data, group), 1);
    if (last == 0)
        return;
    struct craft_entry *out = calloc(last, sizeof(*out));
    size_t n;
    assert_int_equal(ls->entries(ls->data, group, 1, last + 1, UINT64_MAX, out, last, &n), 0);
    assert_int_equal(n, last);
    for (size_t i = 0; i < n; i++)
        assert_true(tu_entry_check(&out[i], group));
    free(out);
}

static void test_short_writes_are_completed(void **state)
{
    struct fixture *f = *state;
    f->cfg.short_write_max = 7;
    craft_vfs_fault_set(f->fault, &f->cfg);
    struct craft_wal *wal = open_wal(f, f->fault, 64 << 10, 0);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(append(wal, 1, 1 + 10 * (uint64_t)i, 10, 1), 0);
        assert_int_equal(append(wal, 2, 1 + 3 * (uint64_t)i, 3, 1), 0);
        assert_int_equal(craft_wal_commit(wal), 0);
    }
    craft_wal_close(wal);
    struct craft_vfs_fault_stats st;
    craft_vfs_fault_stats(f->fault, &st);
    assert_true(st.short_writes > 20);
    wal = open_wal(f, craft_vfs_posix(), 64 << 10, 0);
    check_prefix(wal, 1, 200);
    check_prefix(wal, 2, 60);
    craft_wal_close(wal);
}

/* A power loss in the middle of a write: a random subset of its sectors
 * reached the disk. Whatever write is torn, every acknowledged commit is
 * there after recovery, and the log continues cleanly. */
static void test_torn_write_then_power_loss_keeps_acknowledged_commits(void **state)
{
    struct fixture *f = *state;
    int torn_tails = 0;
    for (int64_t at = 1; at < 40; at += 3) {
        struct craft_vfs_fault_config cfg;
        craft_vfs_fault_config_init(&cfg);
        struct craft_vfs *fault;
        assert_int_equal(craft_vfs_fault_create(craft_vfs_posix(), &cfg, &fault), 0);
        char *dir = f->dir;
        f->dir = tu_mkdtemp("torn");
        struct craft_wal *wal = open_wal(f, fault, 64 << 10, 0);
        struct craft_vfs_fault_stats st;
        craft_vfs_fault_stats(fault, &st);
        cfg.seed = (uint64_t)at;
        cfg.torn_write_at = (int64_t)st.pwrites + at;
        craft_vfs_fault_set(fault, &cfg);
        uint64_t acked = 0, next = 1;
        for (int i = 0; i < 60; i++) {
            size_t n = 5 + (size_t)(i % 7) * 30; /* some commits span several sectors */
            int rc = append(wal, 1, next, n, 1);
            if (rc == 0)
                rc = craft_wal_commit(wal);
            if (rc != 0) {
                /* fatal when the log's own segment failed; a plain error when
                 * it was a new segment not yet part of the log */
                assert_true(rc == CRAFT_STORAGE_EFATAL || rc == CRAFT_ESTORAGE);
                break;
            }
            next += n;
            acked = next - 1;
        }
        craft_wal_close(wal);
        craft_vfs_fault_stats(fault, &st);
        assert_true(st.powered_off);
        f->log.text[0] = '\0';
        wal = open_wal(f, craft_vfs_posix(), 64 << 10, 0);
        check_prefix(wal, 1, acked);
        if (strstr(f->log.text, "torn tail") != NULL)
            torn_tails++;
        /* The log goes on from where recovery left it. */
        struct craft_log_store *ls = craft_wal_log_store(wal);
        uint64_t last = ls->last_index(ls->data, 1);
        assert_int_equal(append(wal, 1, last + 1, 3, 2), 0);
        assert_int_equal(craft_wal_commit(wal), 0);
        craft_wal_close(wal);
        wal = open_wal(f, craft_vfs_posix(), 64 << 10, 0);
        ls = craft_wal_log_store(wal);
        assert_int_equal(ls->last_index(ls->data, 1), last + 3);
        craft_wal_close(wal);
        craft_vfs_fault_destroy(fault);
        tu_rmtree(f->dir);
        f->dir = dir;
    }
    assert_true(torn_tails > 0); /* the random subsets did tear some records */
}

static size_t record_offsets(const char *path, size_t *offs, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    size_t n = 0, off = WAL_SEGMENT_HEADER_SIZE, size;
    struct wal_record *rec = malloc(sizeof(*rec));
    while (off < (size_t)len &&
           wal_record_decode(buf + off, (size_t)len - off, rec, &size) == WAL_DEC_OK) {
        if (n < cap) {
            offs[2 * n] = off;
            offs[2 * n + 1] = WAL_RECORD_HEADER_SIZE + wal_record_payload_len(buf + off);
        }
        n++;
        off += size;
    }
    free(rec);
    free(buf);
    return n;
}

/* A bit flipped in a random record (as the disk returns it): in the last
 * write that is a torn tail, truncated; anywhere before, the open stops with
 * an error naming the file and the record's offset. */
static void test_bit_flip_in_a_random_record(void **state)
{
    struct fixture *f = *state;
    struct craft_wal *wal = open_wal(f, craft_vfs_posix(), 1 << 20, 0);
    for (int i = 0; i < 30; i++) {
        assert_int_equal(append(wal, 1, 1 + 4 * (uint64_t)i, 4, 1), 0); /* one record per commit */
        assert_int_equal(craft_wal_commit(wal), 0);
    }
    craft_wal_close(wal);
    char path[4096];
    snprintf(path, sizeof(path), "%s/00000001.wal", f->dir);
    size_t offs[2 * 64];
    size_t n = record_offsets(path, offs, 64);
    assert_int_equal(n, 30);
    uint64_t rng = 42;
    for (int trial = 0; trial < 24; trial++) {
        size_t r = trial < 2 ? n - 1 : (size_t)(tu_splitmix(&rng) % n);
        size_t at = offs[2 * r] + (size_t)(tu_splitmix(&rng) % offs[2 * r + 1]);
        struct craft_vfs_fault_config cfg;
        craft_vfs_fault_config_init(&cfg);
        cfg.flip_path_suffix = "00000001.wal";
        cfg.flip_offset = (int64_t)at;
        cfg.flip_bit = (unsigned)(tu_splitmix(&rng) % 8);
        craft_vfs_fault_set(f->fault, &cfg);
        struct craft_wal_options opts;
        craft_wal_options_init(&opts);
        opts.vfs = f->fault;
        opts.segment_size = 1 << 20;
        opts.log = tu_log_fn;
        opts.log_arg = &f->log;
        char err[512], expect[128];
        f->log.text[0] = '\0';
        wal = NULL;
        int rc = craft_wal_open(f->dir, &opts, &wal, err, sizeof(err));
        if (r == n - 1) {
            /* The last record: a torn tail. (Truncating rewrites the file:
             * the later trials see 29 records, so stop here.) */
            assert_int_equal(rc, 0);
            assert_non_null(strstr(f->log.text, "torn tail"));
            check_prefix(wal, 1, 4 * 29);
            assert_int_equal(craft_wal_log_store(wal)->last_index(wal, 1), 4 * 29);
            craft_wal_close(wal);
            /* Put the record back for the next trials. */
            wal = open_wal(f, craft_vfs_posix(), 1 << 20, 0);
            assert_int_equal(append(wal, 1, 4 * 29 + 1, 4, 1), 0);
            assert_int_equal(craft_wal_commit(wal), 0);
            craft_wal_close(wal);
            continue;
        }
        assert_int_equal(rc, CRAFT_ECORRUPT);
        snprintf(expect, sizeof(expect), "segment 00000001.wal offset %zu:", offs[2 * r]);
        if (strstr(err, expect) == NULL)
            fail_msg("flip at %zu (record %zu at %zu): %s", at, r, offs[2 * r], err);
    }
}

/* fdatasync fails: the commit fails, the WAL stops, and never fsyncs again. */
static void test_fsync_failure_is_fatal(void **state)
{
    struct fixture *f = *state;
    struct craft_wal *wal = open_wal(f, f->fault, 64 << 10, 0);
    struct craft_vfs_fault_stats st;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(append(wal, 1, 1 + 10 * (uint64_t)i, 10, 1), 0);
        assert_int_equal(craft_wal_commit(wal), 0);
    }
    craft_vfs_fault_stats(f->fault, &st);
    f->cfg.fdatasync_fail_at = (int64_t)st.fdatasyncs;
    craft_vfs_fault_set(f->fault, &f->cfg);
    assert_int_equal(append(wal, 1, 51, 10, 1), 0);
    assert_int_equal(craft_wal_commit(wal), CRAFT_STORAGE_EFATAL);
    assert_non_null(strstr(craft_wal_errmsg(wal), "fdatasync 00000001.wal"));
    assert_non_null(strstr(craft_wal_errmsg(wal), "fail-stop"));
    craft_vfs_fault_stats(f->fault, &st);
    uint64_t fsyncs = st.fdatasyncs;
    /* No retry, no carrying on. */
    f->cfg.fdatasync_fail_at = -1;
    craft_vfs_fault_set(f->fault, &f->cfg);
    assert_int_equal(craft_wal_commit(wal), CRAFT_STORAGE_EFATAL);
    assert_int_equal(append(wal, 1, 61, 1, 1), CRAFT_STORAGE_EFATAL);
    struct craft_hard_state hs = {1, 1, 1};
    struct craft_log_store *ls = craft_wal_log_store(wal);
    assert_int_equal(ls->save_hard_state(ls->data, 1, &hs), CRAFT_STORAGE_EFATAL);
    assert_int_equal(ls->sync(ls->data), CRAFT_STORAGE_EFATAL);
    craft_vfs_fault_stats(f->fault, &st);
    assert_int_equal(st.fdatasyncs, fsyncs);
    craft_wal_close(wal);
    /* Restart: what was acknowledged is there. */
    wal = open_wal(f, craft_vfs_posix(), 64 << 10, 0);
    check_prefix(wal, 1, 50);
    craft_wal_close(wal);
}

/* The disk fills up in the middle of a commit: ENOSPC to the caller, the log
 * on disk stays valid (a crash now recovers every acknowledged commit), and
 * once there is room the same commit goes through. */
static void test_enospc_in_a_write_leaves_the_log_valid(void **state)
{
    struct fixture *f = *state;
    struct craft_wal *wal = open_wal(f, f->fault, 1 << 20, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(append(wal, 1, 1 + 10 * (uint64_t)i, 10, 1), 0);
        assert_int_equal(craft_wal_commit(wal), 0);
    }
    struct craft_vfs_fault_stats st;
    craft_vfs_fault_stats(f->fault, &st);
    f->cfg.enospc_after_bytes = (int64_t)st.bytes_written + 100; /* a short write, then ENOSPC */
    craft_vfs_fault_set(f->fault, &f->cfg);
    assert_int_equal(append(wal, 1, 51, 20, 1), 0);
    assert_int_equal(craft_wal_commit(wal), CRAFT_STORAGE_ENOSPC);
    assert_non_null(strstr(craft_wal_errmsg(wal), "No space left"));
    assert_int_equal(craft_wal_commit(wal), CRAFT_STORAGE_ENOSPC);
    assert_true(craft_wal_pending_bytes(wal) > 0);
    /* Meanwhile the log on disk is valid: a second process could recover it. */
    char copy[4096];
    snprintf(copy, sizeof(copy), "cp -r %s %s.copy", f->dir, f->dir);
    assert_int_equal(system(copy), 0);
    char *dir = f->dir;
    char *copy_dir = malloc(strlen(dir) + 6);
    sprintf(copy_dir, "%s.copy", dir);
    f->dir = copy_dir;
    f->log.text[0] = '\0';
    struct craft_wal *other = open_wal(f, craft_vfs_posix(), 1 << 20, 0);
    check_prefix(other, 1, 50);
    craft_wal_close(other);
    tu_rmtree(copy_dir);
    f->dir = dir;
    /* Room again: the same data commits. */
    f->cfg.enospc_after_bytes = -1;
    craft_vfs_fault_set(f->fault, &f->cfg);
    assert_int_equal(append(wal, 1, 71, 5, 1), 0);
    assert_int_equal(craft_wal_commit(wal), 0);
    craft_wal_close(wal);
    wal = open_wal(f, craft_vfs_posix(), 1 << 20, 0);
    check_prefix(wal, 1, 75);
    craft_wal_close(wal);
}

/* The disk is full when a new segment must be preallocated. */
static void test_enospc_when_rolling_a_segment(void **state)
{
    struct fixture *f = *state;
    struct craft_wal *wal = open_wal(f, f->fault, 64 << 10, 0);
    struct craft_vfs_fault_stats st;
    craft_vfs_fault_stats(f->fault, &st);
    f->cfg.enospc_after_bytes = (int64_t)st.bytes_written + (64 << 10) + 4096;
    craft_vfs_fault_set(f->fault, &f->cfg);
    uint64_t next = 1, acked = 0;
    int rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++) {
        assert_int_equal(append(wal, 1, next, 10, 1), 0);
        next += 10;
        rc = craft_wal_commit(wal);
        if (rc == 0)
            acked = next - 1;
    }
    assert_int_equal(rc, CRAFT_STORAGE_ENOSPC);
    assert_non_null(strstr(craft_wal_errmsg(wal), "create 00000002.wal"));
    f->cfg.enospc_after_bytes = -1;
    craft_vfs_fault_set(f->fault, &f->cfg);
    assert_int_equal(craft_wal_commit(wal), 0);
    acked = next - 1;
    craft_wal_close(wal);
    wal = open_wal(f, craft_vfs_posix(), 64 << 10, 0);
    check_prefix(wal, 1, acked);
    assert_int_equal(craft_wal_log_store(wal)->last_index(wal, 1), acked);
    craft_wal_close(wal);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_short_writes_are_completed),
        T(test_torn_write_then_power_loss_keeps_acknowledged_commits),
        T(test_bit_flip_in_a_random_record),
        T(test_fsync_failure_is_fatal),
        T(test_enospc_in_a_write_leaves_the_log_valid),
        T(test_enospc_when_rolling_a_segment),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
