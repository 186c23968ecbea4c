/* The write-ahead log: writes and reads per group, suffix truncation,
 * compaction, snapshots, rolling and deleting segments, and recovery (replay,
 * torn tail, corruption before the tail, repair). Also the in-memory log
 * store, which must behave the same. */
#include "../storage/storage_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "storage/wal_record.h"

struct fixture {
    char *dir;
    struct craft_wal *wal;
    struct craft_log_store *ls;
    struct craft_wal_options opts;
    struct tu_log log;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->dir = tu_mkdtemp("wal");
    craft_wal_options_init(&f->opts);
    f->opts.segment_size = 1 << 20; /* recovery reads whole segments: keep tests quick */
    f->opts.log = tu_log_fn;
    f->opts.log_arg = &f->log;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    craft_wal_close(f->wal);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    char err[512];
    craft_wal_close(f->wal);
    f->wal = NULL;
    int rc = craft_wal_open(f->dir, &f->opts, &f->wal, err, sizeof(err));
    if (rc != 0)
        fail_msg("open: %s", err);
    f->ls = craft_wal_log_store(f->wal);
}

static void append(struct craft_log_store *ls, uint64_t group, uint64_t first, size_t n,
                   uint64_t term)
{
    struct craft_entry *es = tu_entries(group, first, n, term);
    assert_int_equal(ls->append(ls->data, group, es, n), 0);
    tu_entries_free(es, n);
}

/* Checks that group holds exactly [first, last], each entry's contents valid,
 * and terms as given by term_of (NULL: not checked). */
static void check_log(struct craft_log_store *ls, uint64_t group, uint64_t first, uint64_t last)
{
    assert_int_equal(ls->first_index(ls->data, group), first);
    assert_int_equal(ls->last_index(ls->data, group), last);
    if (last < first)
        return;
    size_t cap = (size_t)(last - first + 1), n;
    struct craft_entry *out = calloc(cap, sizeof(*out));
    assert_int_equal(ls->entries(ls->data, group, first, last + 1, UINT64_MAX, out, cap, &n), 0);
    assert_int_equal(n, cap);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].index, first + i);
        assert_true(tu_entry_check(&out[i], group));
        uint64_t t;
        assert_int_equal(ls->term(ls->data, group, out[i].index, &t), 0);
        assert_int_equal(t, out[i].term);
    }
    free(out);
}

static uint64_t term_at(struct craft_log_store *ls, uint64_t group, uint64_t index)
{
    uint64_t t = 0;
    assert_int_equal(ls->term(ls->data, group, index, &t), 0);
    return t;
}

static void test_empty_wal_reads_as_empty_log(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    struct craft_hard_state hs = {1, 1, 1};
    assert_int_equal(f->ls->initial_state(f->ls->data, 5, &hs, NULL), 0);
    assert_int_equal(hs.term, 0);
    check_log(f->ls, 5, 1, 0);
    uint64_t t = 9;
    assert_int_equal(f->ls->term(f->ls->data, 5, 0, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    check_log(f->ls, 5, 1, 0);
}

static void test_groups_written_together_read_back_after_reopen(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    for (uint64_t g = 1; g <= 3; g++) {
        append(f->ls, g, 1, 10 * g, g);
        struct craft_hard_state hs = {g, g + 10, 5};
        assert_int_equal(f->ls->save_hard_state(f->ls->data, g, &hs), 0);
    }
    assert_true(craft_wal_pending_bytes(f->wal) > 0);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    assert_int_equal(craft_wal_pending_bytes(f->wal), 0);
    struct craft_wal_stats st;
    craft_wal_stats(f->wal, &st);
    assert_int_equal(st.commits, 1);
    assert_int_equal(st.fsyncs, 1); /* one fdatasync for every group */
    reopen(f);
    size_t n;
    uint64_t ids[8];
    assert_int_equal(f->ls->groups(f->ls->data, ids, 8, &n), 0);
    assert_int_equal(n, 3);
    for (uint64_t g = 1; g <= 3; g++) {
        check_log(f->ls, g, 1, 10 * g);
        struct craft_hard_state hs;
        assert_int_equal(f->ls->initial_state(f->ls->data, g, &hs, NULL), 0);
        assert_int_equal(hs.term, g);
        assert_int_equal(hs.vote, g + 10);
        assert_int_equal(hs.commit, 5);
    }
}

/* What is not committed is gone after a crash (here: close without commit). */
static void test_uncommitted_writes_are_not_recovered(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append(f->ls, 1, 1, 5, 1);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    append(f->ls, 1, 6, 5, 1);
    reopen(f);
    check_log(f->ls, 1, 1, 5);
}

static void test_entry_at_i_replaces_the_suffix(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append(f->ls, 1, 1, 10, 1);
    append(f->ls, 1, 5, 3, 2); /* a follower overwriting a conflicting suffix */
    check_log(f->ls, 1, 1, 7);
    assert_int_equal(term_at(f->ls, 1, 4), 1);
    assert_int_equal(term_at(f->ls, 1, 5), 2);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    check_log(f->ls, 1, 1, 7);
    assert_int_equal(term_at(f->ls, 1, 5), 2);
    /* Explicit truncation, then a gap is refused. */
    assert_int_equal(f->ls->truncate(f->ls->data, 1, 6), 0);
    check_log(f->ls, 1, 1, 5);
    struct craft_entry *es = tu_entries(1, 8, 1, 2);
    assert_int_equal(f->ls->append(f->ls->data, 1, es, 1), CRAFT_EINVAL);
    tu_entries_free(es, 1);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    check_log(f->ls, 1, 1, 5);
}

static void test_compaction_moves_the_first_index(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append(f->ls, 1, 1, 20, 3);
    assert_int_equal(f->ls->compact(f->ls->data, 1, 8), 0);
    assert_int_equal(f->ls->compact(f->ls->data, 1, 8), CRAFT_ECOMPACTED);
    assert_int_equal(f->ls->compact(f->ls->data, 1, 21), CRAFT_EUNAVAILABLE);
    check_log(f->ls, 1, 9, 20);
    assert_int_equal(term_at(f->ls, 1, 8), 3); /* term of first_index - 1 is kept */
    uint64_t t;
    assert_int_equal(f->ls->term(f->ls->data, 1, 7, &t), CRAFT_ECOMPACTED);
    struct craft_entry out[4];
    size_t n;
    assert_int_equal(f->ls->entries(f->ls->data, 1, 8, 10, UINT64_MAX, out, 4, &n),
                     CRAFT_ECOMPACTED);
    assert_int_equal(f->ls->entries(f->ls->data, 1, 9, 22, UINT64_MAX, out, 4, &n),
                     CRAFT_EUNAVAILABLE);
    /* Appending below the compaction point skips what is compacted. */
    append(f->ls, 1, 5, 10, 3);
    check_log(f->ls, 1, 9, 14);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    check_log(f->ls, 1, 9, 14);
    assert_int_equal(term_at(f->ls, 1, 8), 3);
}

static void test_snapshot_install_and_local_snapshot(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    struct craft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    append(f->ls, 1, 1, 10, 1);
    /* A local snapshot at 6 (the log matches): entries stay. */
    meta.index = 6;
    meta.term = 1;
    meta.conf.n_voters = 1;
    meta.conf.voters[0] = 1;
    assert_int_equal(f->ls->save_snapshot(f->ls->data, 1, &meta), 0);
    check_log(f->ls, 1, 1, 10);
    /* A restart starts from this snapshot: its membership is initial_state's. */
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    check_log(f->ls, 1, 1, 10);
    struct craft_conf_state now;
    assert_int_equal(f->ls->initial_state(f->ls->data, 1, NULL, &now), 0);
    assert_int_equal(now.n_voters, 1);
    assert_int_equal(now.voters[0], 1);
    /* A leader's snapshot at 50: everything goes, the log continues at 51. */
    meta.index = 50;
    meta.term = 4;
    meta.conf.n_voters = 3;
    meta.conf.voters[1] = 2;
    meta.conf.voters[2] = 3;
    assert_int_equal(f->ls->save_snapshot(f->ls->data, 1, &meta), 0);
    check_log(f->ls, 1, 51, 50);
    assert_int_equal(term_at(f->ls, 1, 50), 4);
    meta.index = 40;
    assert_int_equal(f->ls->save_snapshot(f->ls->data, 1, &meta), CRAFT_EINVAL);
    append(f->ls, 1, 51, 3, 4);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    check_log(f->ls, 1, 51, 53);
    struct craft_snapshot_meta got;
    struct craft_conf_state cs;
    assert_int_equal(f->ls->snapshot(f->ls->data, 1, &got), 0);
    assert_int_equal(got.index, 50);
    assert_int_equal(got.term, 4);
    assert_int_equal(got.conf.n_voters, 3);
    assert_int_equal(f->ls->initial_state(f->ls->data, 1, NULL, &cs), 0);
    assert_int_equal(cs.n_voters, 3);
    assert_int_equal(cs.voters[2], 3);
}

/* raft.h's read interface over one group: byte limit, at least one entry,
 * data pointers stable while other entries come and go. */
static void test_storage_view_follows_raft_h_rules(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    const struct craft_storage *s = craft_wal_storage(f->wal, 9);
    assert_non_null(s);
    append(f->ls, 9, 1, 30, 2);
    struct craft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    cs.n_voters = 1;
    cs.voters[0] = 7;
    assert_int_equal(f->ls->save_conf_state(f->ls->data, 9, &cs), 0);
    assert_int_equal(s->first_index(s->data), 1);
    assert_int_equal(s->last_index(s->data), 30);
    struct craft_entry out[30];
    size_t n;
    assert_int_equal(s->entries(s->data, 1, 31, 0, out, 30, &n), 0);
    assert_int_equal(n, 1); /* always at least one */
    uint64_t limit = (uint64_t)out[0].len + 1;
    assert_int_equal(s->entries(s->data, 1, 31, limit, out, 30, &n), 0);
    assert_true(n >= 1 && n <= 2);
    assert_int_equal(s->entries(s->data, 3, 31, UINT64_MAX, out, 5, &n), 0);
    assert_int_equal(n, 5);      /* at most cap */
    const void *p = out[2].data; /* entry 5 */
    uint32_t len = out[2].len;
    uint8_t *copy = malloc(len + 1);
    memcpy(copy, p, len);
    append(f->ls, 9, 31, 500, 2); /* the array grows */
    assert_int_equal(f->ls->compact(f->ls->data, 9, 4), 0);
    assert_memory_equal(p, copy, len); /* entry 5 neither truncated nor compacted */
    free(copy);
    struct craft_conf_state got;
    struct craft_hard_state hs;
    assert_int_equal(s->initial_state(s->data, &hs, &got), 0);
    assert_int_equal(got.voters[0], 7);
    uint64_t t;
    assert_int_equal(s->term(s->data, 4, &t), 0);
    assert_int_equal(t, 2);
}

/* Many small segments: writes roll, and segments go once every group has
 * compacted past them, while a group that never compacts keeps its own. The
 * hard state written into the very first segment survives its deletion. */
static void test_rolling_and_segment_deletion_keep_every_group(void **state)
{
    struct fixture *f = *state;
    f->opts.segment_size = 64 << 10;
    f->opts.no_sync = true; /* hundreds of commits; durability is not what this checks */
    reopen(f);
    struct craft_hard_state hs = {7, 3, 1};
    assert_int_equal(f->ls->save_hard_state(f->ls->data, 2, &hs), 0);
    struct craft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    cs.n_voters = 2;
    cs.voters[0] = 5;
    cs.voters[1] = 6;
    assert_int_equal(f->ls->save_conf_state(f->ls->data, 2, &cs), 0);
    uint64_t next[3] = {0, 1, 1};
    for (int round = 0; round < 60; round++) {
        for (uint64_t g = 1; g <= 2; g++) {
            append(f->ls, g, next[g], 40, 1);
            next[g] += 40;
        }
        assert_int_equal(craft_wal_commit(f->wal), 0);
        if (round % 10 == 9) {
            /* group 1 keeps the last 20 entries; group 2 compacts everything */
            assert_int_equal(f->ls->compact(f->ls->data, 1, next[1] - 21), 0);
            assert_int_equal(f->ls->compact(f->ls->data, 2, next[2] - 1), 0);
            assert_int_equal(craft_wal_commit(f->wal), 0);
        }
    }
    struct craft_wal_stats st;
    craft_wal_stats(f->wal, &st);
    assert_true(st.last_segment > 5);
    assert_true(st.segments_deleted > 0);
    assert_true(st.segments < st.last_segment);
    reopen(f);
    check_log(f->ls, 1, next[1] - 20, next[1] - 1);
    check_log(f->ls, 2, next[2], next[2] - 1);
    struct craft_hard_state got;
    struct craft_conf_state gcs;
    assert_int_equal(f->ls->initial_state(f->ls->data, 2, &got, &gcs), 0);
    assert_int_equal(got.term, 7);
    assert_int_equal(got.vote, 3);
    assert_int_equal(gcs.n_voters, 2);
    assert_int_equal(gcs.voters[1], 6);
    assert_int_equal(term_at(f->ls, 2, next[2] - 1), 1);
    /* A group that never compacts pins its segments. */
    append(f->ls, 3, 1, 5, 1);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    craft_wal_stats(f->wal, &st);
    uint64_t pinned = st.last_segment;
    for (int round = 0; round < 40; round++) {
        append(f->ls, 1, next[1], 40, 1);
        next[1] += 40;
        assert_int_equal(f->ls->compact(f->ls->data, 1, next[1] - 2), 0);
        assert_int_equal(craft_wal_commit(f->wal), 0);
    }
    craft_wal_stats(f->wal, &st);
    assert_true(st.first_segment <= pinned);
    reopen(f);
    check_log(f->ls, 3, 1, 5);
    check_log(f->ls, 1, next[1] - 1, next[1] - 1);
}

/* A removed group disappears and does not pin segments. */
static void test_remove_group(void **state)
{
    struct fixture *f = *state;
    reopen(f);
    append(f->ls, 4, 1, 5, 1);
    append(f->ls, 5, 1, 5, 1);
    assert_int_equal(f->ls->remove_group(f->ls->data, 4), 0);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    size_t n;
    uint64_t ids[4];
    assert_int_equal(f->ls->groups(f->ls->data, ids, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 5);
    check_log(f->ls, 4, 1, 0);
}

/* A big append spans records and segments and comes back whole. */
static void test_large_entries_span_segments(void **state)
{
    struct fixture *f = *state;
    f->opts.segment_size = 64 << 10;
    reopen(f);
    size_t big = 200 << 10; /* larger than a segment */
    uint8_t *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7);
    struct craft_entry es[3];
    for (int i = 0; i < 3; i++)
        es[i] = (struct craft_entry){
            .term = 1, .index = 1 + (uint64_t)i, .len = (uint32_t)big, .data = data};
    assert_int_equal(f->ls->append(f->ls->data, 1, es, 3), 0);
    append(f->ls, 1, 4, 100, 1);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    reopen(f);
    struct craft_entry out[3];
    size_t n;
    assert_int_equal(f->ls->entries(f->ls->data, 1, 1, 4, UINT64_MAX, out, 3, &n), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(out[i].len, big);
        assert_memory_equal(out[i].data, data, big);
    }
    free(data);
}

/* ---- recovery from damage ---- */

/* Offsets of the records in a segment file (by decoding it). */
static size_t record_offsets(const char *path, size_t *offs, size_t cap, size_t *file_len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len);
    assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    size_t n = 0, off = WAL_SEGMENT_HEADER_SIZE;
    struct wal_record *rec = malloc(sizeof(*rec));
    size_t size;
    while (off < (size_t)len &&
           wal_record_decode(buf + off, (size_t)len - off, rec, &size) == WAL_DEC_OK) {
        if (n < cap)
            offs[n] = off;
        n++;
        off += size;
    }
    if (n < cap)
        offs[n] = off; /* the end */
    free(rec);
    free(buf);
    *file_len = (size_t)len;
    return n;
}

static void poke(const char *path, size_t off, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)off, SEEK_SET);
    assert_int_equal(fwrite(bytes, 1, n, fp), n);
    fclose(fp);
}

static void flip_bit(const char *path, size_t off)
{
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, (long)off, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)off, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

/* Ten commits of one group: entries 1..50, five per commit. */
static void write_ten_commits(struct fixture *f)
{
    reopen(f);
    for (int i = 0; i < 10; i++) {
        append(f->ls, 1, 1 + 5 * (uint64_t)i, 5, 1);
        assert_int_equal(craft_wal_commit(f->wal), 0);
    }
    craft_wal_close(f->wal);
    f->wal = NULL;
}

static void test_torn_tail_is_truncated_with_a_log_line(void **state)
{
    struct fixture *f = *state;
    write_ten_commits(f);
    char path[4096];
    snprintf(path, sizeof(path), "%s/00000001.wal", f->dir);
    size_t offs[32], len;
    size_t n = record_offsets(path, offs, 32, &len);
    assert_int_equal(n, 10);
    /* Half a record after the end: a write cut short by the crash. */
    uint8_t half[24];
    memset(half, 0xab, sizeof(half));
    half[4] = 100; /* a plausible length */
    half[5] = half[6] = half[7] = 0;
    poke(path, offs[n], half, sizeof(half));
    reopen(f);
    check_log(f->ls, 1, 1, 50);
    assert_non_null(strstr(f->log.text, "00000001.wal"));
    assert_non_null(strstr(f->log.text, "torn tail"));
    struct craft_wal_stats st;
    craft_wal_stats(f->wal, &st);
    assert_true(st.torn_tail_bytes > 0);
    /* Writing on after the cut works, and a second open finds nothing torn. */
    append(f->ls, 1, 51, 5, 1);
    assert_int_equal(craft_wal_commit(f->wal), 0);
    f->log.text[0] = '\0';
    reopen(f);
    check_log(f->ls, 1, 1, 55);
    assert_null(strstr(f->log.text, "torn"));
}

/* A checksum failure in the last record of the last segment is a torn tail:
 * that record goes (it is indistinguishable from an unfinished write). */
static void test_bad_last_record_is_a_torn_tail(void **state)
{
    struct fixture *f = *state;
    write_ten_commits(f);
    char path[4096];
    snprintf(path, sizeof(path), "%s/00000001.wal", f->dir);
    size_t offs[32], len;
    size_t n = record_offsets(path, offs, 32, &len);
    flip_bit(path, offs[n - 1] + 40);
    reopen(f);
    check_log(f->ls, 1, 1, 45);
    assert_non_null(strstr(f->log.text, "torn tail"));
}

/* A checksum failure before the tail stops the open, naming file and offset;
 * repair truncates there and says what it dropped. */
static void test_corruption_before_the_tail_stops_the_open(void **state)
{
    struct fixture *f = *state;
    write_ten_commits(f);
    char path[4096], err[512], expect[128];
    snprintf(path, sizeof(path), "%s/00000001.wal", f->dir);
    size_t offs[32], len;
    record_offsets(path, offs, 32, &len);
    flip_bit(path, offs[4] + 40);
    struct craft_wal *wal = NULL;
    assert_int_equal(craft_wal_open(f->dir, &f->opts, &wal, err, sizeof(err)), CRAFT_ECORRUPT);
    assert_null(wal);
    snprintf(expect, sizeof(expect), "segment 00000001.wal offset %zu: checksum mismatch", offs[4]);
    assert_non_null(strstr(err, expect));
    /* Repair: keeps records before the damage, logs what it dropped. */
    f->opts.repair = true;
    reopen(f);
    check_log(f->ls, 1, 1, 20);
    assert_non_null(strstr(f->log.text, "repair"));
    assert_non_null(strstr(f->log.text, "5 valid records"));
    f->opts.repair = false;
    reopen(f);
    check_log(f->ls, 1, 1, 20);
}

static void test_corruption_in_an_earlier_segment_is_not_a_torn_tail(void **state)
{
    struct fixture *f = *state;
    f->opts.segment_size = 64 << 10;
    reopen(f);
    for (int i = 0; i < 40; i++) {
        append(f->ls, 1, 1 + 40 * (uint64_t)i, 40, 1);
        assert_int_equal(craft_wal_commit(f->wal), 0);
    }
    craft_wal_close(f->wal);
    f->wal = NULL;
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/00000001.wal", f->dir);
    size_t offs[512], len;
    size_t n = record_offsets(path, offs, 512, &len);
    assert_true(n > 2);
    flip_bit(path, offs[n - 1] + 40); /* the last record of a segment that is not the last */
    struct craft_wal *wal = NULL;
    assert_int_equal(craft_wal_open(f->dir, &f->opts, &wal, err, sizeof(err)), CRAFT_ECORRUPT);
    assert_non_null(strstr(err, "00000001.wal"));
    /* Repair drops the rest, later segments included. */
    f->opts.repair = true;
    reopen(f);
    assert_int_equal(f->ls->last_index(f->ls->data, 1), 40 * (n - 1));
    assert_non_null(strstr(f->log.text, "deleting segment 00000002.wal"));
}

static void test_missing_or_foreign_segments_are_errors(void **state)
{
    struct fixture *f = *state;
    f->opts.segment_size = 64 << 10;
    reopen(f);
    for (int i = 0; i < 40; i++) {
        append(f->ls, 1, 1 + 40 * (uint64_t)i, 40, 1);
        assert_int_equal(craft_wal_commit(f->wal), 0);
    }
    craft_wal_close(f->wal);
    f->wal = NULL;
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/00000002.wal", f->dir);
    char moved[4096];
    snprintf(moved, sizeof(moved), "%s/moved", f->dir);
    assert_int_equal(rename(path, moved), 0);
    struct craft_wal *wal = NULL;
    assert_int_equal(craft_wal_open(f->dir, &f->opts, &wal, err, sizeof(err)), CRAFT_ECORRUPT);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(rename(moved, path), 0);
    /* A header that is not ours. */
    poke(path, 0, "NOTAWAL!", 8);
    assert_int_equal(craft_wal_open(f->dir, &f->opts, &wal, err, sizeof(err)), CRAFT_ECORRUPT);
    assert_non_null(strstr(err, "segment 00000002.wal offset 0"));
}

/* A leftover temporary segment (a crash while creating one) is removed. */
static void test_unfinished_segment_is_removed(void **state)
{
    struct fixture *f = *state;
    write_ten_commits(f);
    char path[4096];
    snprintf(path, sizeof(path), "%s/00000002.wal.tmp", f->dir);
    FILE *fp = fopen(path, "wb");
    fputs("garbage", fp);
    fclose(fp);
    reopen(f);
    check_log(f->ls, 1, 1, 50);
    assert_int_equal(access(path, F_OK), -1);
}

/* ---- the in-memory store behaves the same ---- */

static void test_memory_store_same_rules(void **state)
{
    (void)state;
    struct craft_log_store *ls;
    assert_int_equal(craft_log_store_mem_create(&ls), 0);
    append(ls, 1, 1, 10, 1);
    append(ls, 1, 5, 3, 2);
    check_log(ls, 1, 1, 7);
    assert_int_equal(ls->compact(ls->data, 1, 3), 0);
    check_log(ls, 1, 4, 7);
    assert_int_equal(term_at(ls, 1, 3), 1);
    assert_int_equal(ls->truncate(ls->data, 1, 2), CRAFT_ECOMPACTED);
    struct craft_hard_state hs = {3, 1, 2}, got;
    assert_int_equal(ls->save_hard_state(ls->data, 1, &hs), 0);
    assert_int_equal(ls->initial_state(ls->data, 1, &got, NULL), 0);
    assert_int_equal(got.term, 3);
    const struct craft_storage *s = ls->storage(ls->data, 1);
    assert_int_equal(s->last_index(s->data), 7);
    assert_int_equal(ls->sync(ls->data), 0);
    ls->close(ls->data);
}

/* The host's group commit: write without fdatasync, fdatasync on another
 * thread, then record it. Every acknowledged write survives, across rolls
 * (a filled segment is fdatasynced before the next one starts), and an
 * fdatasync failure in the deferred phase is fail-stop. */
static void test_two_phase_commit_survives_rolls_and_fails_stop(void **state)
{
    struct fixture *f = *state;
    struct craft_vfs *fault;
    struct craft_vfs_fault_config cfg;
    craft_vfs_fault_config_init(&cfg);
    assert_int_equal(craft_vfs_fault_create(craft_vfs_posix(), &cfg, &fault), 0);
    f->opts.vfs = fault;
    f->opts.segment_size = 64 << 10;
    reopen(f);
    uint64_t next = 1;
    for (int round = 0; round < 40; round++) {
        append(f->ls, 1, next, 80, 1);
        next += 80;
        struct craft_wal_sync sync;
        assert_int_equal(craft_wal_write(f->wal, &sync), 0);
        /* the buffer takes new writes while the fdatasync runs */
        append(f->ls, 2, (uint64_t)round + 1, 1, 1);
        assert_int_equal(craft_wal_sync_run(&sync), 0);
        assert_int_equal(craft_wal_sync_done(f->wal, &sync), 0);
    }
    assert_int_equal(craft_wal_commit(f->wal), 0);
    struct craft_wal_stats st;
    craft_wal_stats(f->wal, &st);
    assert_true(st.last_segment > 2);
    reopen(f);
    check_log(f->ls, 1, 1, next - 1);
    check_log(f->ls, 2, 1, 40);

    struct craft_vfs_fault_stats fst;
    craft_vfs_fault_stats(fault, &fst);
    cfg.fdatasync_fail_at = (int64_t)fst.fdatasyncs;
    craft_vfs_fault_set(fault, &cfg);
    append(f->ls, 1, next, 1, 1);
    struct craft_wal_sync sync;
    assert_int_equal(craft_wal_write(f->wal, &sync), 0);
    assert_int_not_equal(craft_wal_sync_run(&sync), 0);
    assert_int_equal(craft_wal_sync_done(f->wal, &sync), CRAFT_STORAGE_EFATAL);
    assert_int_equal(craft_wal_commit(f->wal), CRAFT_STORAGE_EFATAL);
    craft_wal_close(f->wal);
    f->wal = NULL;
    craft_vfs_fault_destroy(fault);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_empty_wal_reads_as_empty_log),
        T(test_groups_written_together_read_back_after_reopen),
        T(test_uncommitted_writes_are_not_recovered),
        T(test_entry_at_i_replaces_the_suffix),
        T(test_compaction_moves_the_first_index),
        T(test_snapshot_install_and_local_snapshot),
        T(test_storage_view_follows_raft_h_rules),
        T(test_rolling_and_segment_deletion_keep_every_group),
        T(test_remove_group),
        T(test_large_entries_span_segments),
        T(test_two_phase_commit_survives_rolls_and_fails_stop),
        T(test_torn_tail_is_truncated_with_a_log_line),
        T(test_bad_last_record_is_a_torn_tail),
        T(test_corruption_before_the_tail_stops_the_open),
        T(test_corruption_in_an_earlier_segment_is_not_a_torn_tail),
        T(test_missing_or_foreign_segments_are_errors),
        T(test_unfinished_segment_is_removed),
        cmocka_unit_test(test_memory_store_same_rules),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
