/* Unit tests for the in-memory log store (include/craft/memstore.h).
 *
 * Reads go through struct craft_storage, the interface the core uses, so these
 * tests check that contract: index bounds and their errors, the max_bytes and
 * at-least-one rules of entries(), and the stability of entry data addresses.
 * The last test runs random operations against a simple reference model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "craft/memstore.h"

/* Each test gets a fresh store and its storage interface. */
struct fixture {
    struct craft_memstore *ms;
    const struct craft_storage *st;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || craft_memstore_create(&f->ms) != CRAFT_OK) {
        free(f);
        return -1;
    }
    f->st = craft_memstore_storage(f->ms);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    craft_memstore_destroy(f->ms);
    free(f);
    return 0;
}

/* The payload of entry i in term t: "t<term>:i<index>", deterministic so a
 * test can tell any two entries apart by their bytes. */
static uint32_t payload(char *buf, size_t cap, uint64_t term, uint64_t index)
{
    int n = snprintf(buf, cap, "t%llu:i%llu", (unsigned long long)term, (unsigned long long)index);
    assert_true(n > 0 && (size_t)n < cap);
    return (uint32_t)n;
}

/* Appends entries [lo, hi) in the given term, with payload() data. */
static int append_range(struct craft_memstore *ms, uint64_t lo, uint64_t hi, uint64_t term)
{
    size_t n = (size_t)(hi - lo);
    struct craft_entry *e = calloc(n ? n : 1, sizeof(*e));
    char(*bufs)[32] = calloc(n ? n : 1, sizeof(*bufs));
    assert_non_null(e);
    assert_non_null(bufs);
    for (size_t i = 0; i < n; i++) {
        e[i].index = lo + i;
        e[i].term = term;
        e[i].type = CRAFT_ENTRY_NORMAL;
        e[i].len = payload(bufs[i], sizeof(bufs[i]), term, lo + i);
        e[i].data = bufs[i];
    }
    int rc = craft_memstore_append(ms, e, n);
    free(bufs);
    free(e);
    return rc;
}

static uint64_t term_of(const struct craft_storage *st, uint64_t i)
{
    uint64_t term = UINT64_MAX;
    assert_int_equal(st->term(st->data, i, &term), CRAFT_OK);
    return term;
}

/* Reads the single entry at index i. */
static struct craft_entry entry_at(const struct craft_storage *st, uint64_t i)
{
    struct craft_entry e;
    size_t n = 0;
    assert_int_equal(st->entries(st->data, i, i + 1, UINT64_MAX, &e, 1, &n), CRAFT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(e.index, i);
    return e;
}

/* Checks that entry i holds term and payload(term, i). */
static void assert_entry(const struct craft_storage *st, uint64_t i, uint64_t term)
{
    char expect[32];
    uint32_t len = payload(expect, sizeof(expect), term, i);
    struct craft_entry e = entry_at(st, i);
    assert_int_equal(e.term, term);
    assert_int_equal(e.len, len);
    assert_memory_equal(e.data, expect, len);
    assert_int_equal(term_of(st, i), term);
}

static void assert_bounds(const struct craft_storage *st, uint64_t first, uint64_t last)
{
    assert_int_equal(st->first_index(st->data), first);
    assert_int_equal(st->last_index(st->data), last);
}

/* Bytes payload() gives to entries [lo, hi) of one term. */
static uint64_t payload_bytes(uint64_t lo, uint64_t hi, uint64_t term)
{
    char buf[32];
    uint64_t total = 0;
    for (uint64_t i = lo; i < hi; i++) {
        total += payload(buf, sizeof(buf), term, i);
    }
    return total;
}

static void test_new_store_is_empty(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_hard_state hs = {.term = 9, .vote = 9, .commit = 9};
    struct craft_conf_state cs;
    struct craft_snapshot_meta meta;
    struct craft_entry e;
    size_t n = 99;
    uint64_t term = 99;

    assert_non_null(st);
    assert_ptr_equal(st->data, f->ms);
    assert_bounds(st, 1, 0);
    assert_int_equal(craft_memstore_first_index(f->ms), 1);
    assert_int_equal(craft_memstore_last_index(f->ms), 0);
    assert_int_equal(craft_memstore_bytes(f->ms), 0);

    memset(&cs, 0xff, sizeof(cs));
    assert_int_equal(st->initial_state(st->data, &hs, &cs), CRAFT_OK);
    assert_int_equal(hs.term, 0);
    assert_int_equal(hs.vote, 0);
    assert_int_equal(hs.commit, 0);
    assert_int_equal(cs.n_voters, 0);
    assert_false(craft_conf_state_is_joint(&cs));

    /* Index 0 is the dummy before the first entry: term 0. */
    assert_int_equal(st->term(st->data, 0, &term), CRAFT_OK);
    assert_int_equal(term, 0);
    assert_int_equal(st->term(st->data, 1, &term), CRAFT_EUNAVAILABLE);

    assert_int_equal(st->entries(st->data, 1, 1, 0, &e, 1, &n), CRAFT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(st->entries(st->data, 1, 2, 0, &e, 1, &n), CRAFT_EUNAVAILABLE);
    assert_int_equal(st->entries(st->data, 0, 1, 0, &e, 1, &n), CRAFT_ECOMPACTED);

    assert_int_equal(st->snapshot(st->data, &meta), CRAFT_OK);
    assert_int_equal(meta.index, 0);
    assert_int_equal(meta.term, 0);
}

static void test_append_and_read_back(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;

    assert_int_equal(append_range(f->ms, 1, 6, 1), CRAFT_OK);
    assert_bounds(st, 1, 5);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(1, 6, 1));
    for (uint64_t i = 1; i <= 5; i++) {
        assert_entry(st, i, 1);
    }

    /* Appending at last_index + 1 extends the log. */
    assert_int_equal(append_range(f->ms, 6, 8, 2), CRAFT_OK);
    assert_bounds(st, 1, 7);
    assert_entry(st, 5, 1);
    assert_entry(st, 6, 2);
    assert_entry(st, 7, 2);

    /* One call returns the whole range in order. */
    struct craft_entry out[7];
    size_t n = 0;
    assert_int_equal(st->entries(st->data, 1, 8, UINT64_MAX, out, 7, &n), CRAFT_OK);
    assert_int_equal(n, 7);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].index, i + 1);
        assert_int_equal(out[i].type, CRAFT_ENTRY_NORMAL);
    }

    /* An empty append is a no-op. */
    assert_int_equal(craft_memstore_append(f->ms, NULL, 0), CRAFT_OK);
    assert_bounds(st, 1, 7);
}

static void test_append_copies_data_and_keeps_type(void **state)
{
    struct fixture *f = *state;
    char buf[4] = {'a', 'b', 'c', 'd'};
    struct craft_entry in[2] = {
        {.index = 1, .term = 1, .type = CRAFT_ENTRY_CONF_CHANGE, .len = 4, .data = buf},
        {.index = 2, .term = 1, .type = CRAFT_ENTRY_NORMAL, .len = 0, .data = NULL},
    };

    assert_int_equal(craft_memstore_append(f->ms, in, 2), CRAFT_OK);
    memset(buf, 'x', sizeof(buf));

    struct craft_entry e = entry_at(f->st, 1);
    assert_ptr_not_equal(e.data, buf);
    assert_int_equal(e.type, CRAFT_ENTRY_CONF_CHANGE);
    assert_int_equal(e.len, 4);
    assert_memory_equal(e.data, "abcd", 4);

    e = entry_at(f->st, 2);
    assert_int_equal(e.len, 0);
    assert_int_equal(craft_memstore_bytes(f->ms), 4);
}

static void test_append_overwrites_suffix(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    uint64_t term;

    assert_int_equal(append_range(f->ms, 1, 6, 1), CRAFT_OK);

    /* An entry at index 3 replaces every entry >= 3, even those after the batch. */
    assert_int_equal(append_range(f->ms, 3, 5, 2), CRAFT_OK);
    assert_bounds(st, 1, 4);
    assert_entry(st, 2, 1);
    assert_entry(st, 3, 2);
    assert_entry(st, 4, 2);
    assert_int_equal(st->term(st->data, 5, &term), CRAFT_EUNAVAILABLE);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(1, 3, 1) + payload_bytes(3, 5, 2));

    /* A batch longer than the suffix it replaces. */
    assert_int_equal(append_range(f->ms, 4, 9, 3), CRAFT_OK);
    assert_bounds(st, 1, 8);
    assert_entry(st, 3, 2);
    for (uint64_t i = 4; i <= 8; i++) {
        assert_entry(st, i, 3);
    }

    /* Replacing from the first index replaces everything. */
    assert_int_equal(append_range(f->ms, 1, 3, 4), CRAFT_OK);
    assert_bounds(st, 1, 2);
    assert_entry(st, 1, 4);
    assert_entry(st, 2, 4);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(1, 3, 4));
}

static void test_append_identical_entries_keeps_their_data(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;

    assert_int_equal(append_range(f->ms, 1, 6, 1), CRAFT_OK);
    const void *addr2 = entry_at(st, 2).data;
    const void *addr3 = entry_at(st, 3).data;

    /* A duplicate of entries 2..3 keeps them in place but still replaces
     * everything after them. */
    assert_int_equal(append_range(f->ms, 2, 4, 1), CRAFT_OK);
    assert_bounds(st, 1, 3);
    assert_ptr_equal(entry_at(st, 2).data, addr2);
    assert_ptr_equal(entry_at(st, 3).data, addr3);
    assert_entry(st, 3, 1);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(1, 4, 1));

    /* Same index, term and length but other bytes is not identical: replaced. */
    struct craft_entry e = {.index = 3, .term = 1, .len = 5, .data = "zzzzz"};
    assert_int_equal(entry_at(st, 3).len, 5);
    assert_int_equal(craft_memstore_append(f->ms, &e, 1), CRAFT_OK);
    e = entry_at(st, 3);
    assert_int_equal(e.len, 5);
    assert_memory_equal(e.data, "zzzzz", 5);
    assert_ptr_equal(entry_at(st, 2).data, addr2);

    /* Nor is another type with the same bytes. */
    e = (struct craft_entry){
        .index = 3, .term = 1, .type = CRAFT_ENTRY_CONF_CHANGE, .len = 5, .data = "zzzzz"};
    assert_int_equal(craft_memstore_append(f->ms, &e, 1), CRAFT_OK);
    assert_int_equal(entry_at(st, 3).type, CRAFT_ENTRY_CONF_CHANGE);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(1, 3, 1) + 5);
}

/* Checks that the store still holds exactly entries 1..5 of term 1. */
static void assert_unchanged(struct fixture *f)
{
    assert_bounds(f->st, 1, 5);
    for (uint64_t i = 1; i <= 5; i++) {
        assert_entry(f->st, i, 1);
    }
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(1, 6, 1));
}

static void test_append_rejects_bad_batches(void **state)
{
    struct fixture *f = *state;
    char data[1] = {'z'};
    struct craft_entry e[2];

    assert_int_equal(append_range(f->ms, 1, 6, 1), CRAFT_OK);

    /* A gap after last_index. */
    assert_int_equal(append_range(f->ms, 7, 8, 2), CRAFT_EINVAL);
    assert_unchanged(f);

    /* A batch that is not contiguous, or goes backwards. */
    e[0] = (struct craft_entry){.index = 3, .term = 2};
    e[1] = (struct craft_entry){.index = 5, .term = 2};
    assert_int_equal(craft_memstore_append(f->ms, e, 2), CRAFT_EINVAL);
    assert_unchanged(f);
    e[1].index = 3;
    assert_int_equal(craft_memstore_append(f->ms, e, 2), CRAFT_EINVAL);
    assert_unchanged(f);
    e[1].index = 2;
    assert_int_equal(craft_memstore_append(f->ms, e, 2), CRAFT_EINVAL);
    assert_unchanged(f);

    /* Bytes promised but no pointer, in the second entry of the batch. */
    e[0] = (struct craft_entry){.index = 4, .term = 2, .len = 1, .data = data};
    e[1] = (struct craft_entry){.index = 5, .term = 2, .len = 1, .data = NULL};
    assert_int_equal(craft_memstore_append(f->ms, e, 2), CRAFT_EINVAL);
    assert_unchanged(f);

    /* Index 0 never exists. */
    e[0] = (struct craft_entry){.index = 0, .term = 2};
    e[1] = (struct craft_entry){.index = 1, .term = 2};
    assert_int_equal(craft_memstore_append(f->ms, e, 2), CRAFT_EINVAL);
    assert_unchanged(f);

    /* Indexes that would wrap around. */
    e[0] = (struct craft_entry){.index = UINT64_MAX, .term = 2};
    e[1] = (struct craft_entry){.index = 0, .term = 2};
    assert_int_equal(craft_memstore_append(f->ms, e, 2), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_append(f->ms, e, 1), CRAFT_EINVAL);
    assert_unchanged(f);

    assert_int_equal(craft_memstore_append(f->ms, NULL, 1), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_append(NULL, e, 1), CRAFT_EINVAL);
    assert_unchanged(f);
}

static void test_append_skips_compacted_entries(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;

    assert_int_equal(append_range(f->ms, 1, 11, 1), CRAFT_OK);
    assert_int_equal(craft_memstore_compact(f->ms, 5), CRAFT_OK);

    /* Entirely compacted: nothing happens. */
    assert_int_equal(append_range(f->ms, 2, 6, 7), CRAFT_OK);
    assert_bounds(st, 6, 10);
    assert_int_equal(term_of(st, 5), 1);
    assert_entry(st, 6, 1);

    /* Straddling the compaction point: the compacted part is skipped, the
     * rest replaces from index 6. */
    assert_int_equal(append_range(f->ms, 3, 8, 2), CRAFT_OK);
    assert_bounds(st, 6, 7);
    assert_int_equal(term_of(st, 5), 1);
    assert_entry(st, 6, 2);
    assert_entry(st, 7, 2);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(6, 8, 2));
}

static void test_compaction(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_entry out[10];
    size_t n = 0;
    uint64_t term;

    assert_int_equal(append_range(f->ms, 1, 4, 1), CRAFT_OK);
    assert_int_equal(append_range(f->ms, 4, 11, 2), CRAFT_OK);

    assert_int_equal(craft_memstore_compact(f->ms, 5), CRAFT_OK);
    assert_bounds(st, 6, 10);
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(6, 11, 2));

    /* first_index - 1 keeps its term; anything before it is gone. */
    assert_int_equal(term_of(st, 5), 2);
    assert_int_equal(st->term(st->data, 4, &term), CRAFT_ECOMPACTED);
    assert_int_equal(st->term(st->data, 0, &term), CRAFT_ECOMPACTED);
    assert_int_equal(st->entries(st->data, 5, 7, UINT64_MAX, out, 10, &n), CRAFT_ECOMPACTED);
    assert_int_equal(st->entries(st->data, 6, 11, UINT64_MAX, out, 10, &n), CRAFT_OK);
    assert_int_equal(n, 5);
    for (uint64_t i = 6; i <= 10; i++) {
        assert_entry(st, i, 2);
    }

    /* Compacting to the same point again is a no-op; below it is an error. */
    assert_int_equal(craft_memstore_compact(f->ms, 5), CRAFT_OK);
    assert_bounds(st, 6, 10);
    assert_int_equal(craft_memstore_compact(f->ms, 4), CRAFT_ECOMPACTED);
    assert_int_equal(craft_memstore_compact(f->ms, 11), CRAFT_EUNAVAILABLE);
    assert_bounds(st, 6, 10);

    /* Compacting everything leaves an empty log after index 10. */
    assert_int_equal(craft_memstore_compact(f->ms, 10), CRAFT_OK);
    assert_bounds(st, 11, 10);
    assert_int_equal(craft_memstore_bytes(f->ms), 0);
    assert_int_equal(term_of(st, 10), 2);
    assert_int_equal(st->entries(st->data, 11, 11, UINT64_MAX, out, 10, &n), CRAFT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(st->entries(st->data, 10, 11, UINT64_MAX, out, 10, &n), CRAFT_ECOMPACTED);
    assert_int_equal(st->entries(st->data, 11, 12, UINT64_MAX, out, 10, &n), CRAFT_EUNAVAILABLE);

    /* The log continues at 11. */
    assert_int_equal(append_range(f->ms, 11, 12, 3), CRAFT_OK);
    assert_bounds(st, 11, 11);
    assert_entry(st, 11, 3);
}

static void test_term_bounds(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    uint64_t term = 42;

    assert_int_equal(append_range(f->ms, 1, 6, 3), CRAFT_OK);
    assert_int_equal(craft_memstore_compact(f->ms, 2), CRAFT_OK);

    assert_int_equal(st->term(st->data, 1, &term), CRAFT_ECOMPACTED);
    assert_int_equal(term, 42);
    assert_int_equal(term_of(st, 2), 3);
    assert_int_equal(term_of(st, 5), 3);
    assert_int_equal(st->term(st->data, 6, &term), CRAFT_EUNAVAILABLE);
    assert_int_equal(st->term(st->data, UINT64_MAX, &term), CRAFT_EUNAVAILABLE);
    assert_int_equal(term, 42);
    assert_int_equal(st->term(st->data, 3, NULL), CRAFT_EINVAL);
}

static void test_entries_bounds_and_arguments(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_entry out[8];
    size_t n = 99;

    assert_int_equal(append_range(f->ms, 1, 8, 1), CRAFT_OK);
    assert_int_equal(craft_memstore_compact(f->ms, 2), CRAFT_OK);

    assert_int_equal(st->entries(st->data, 2, 4, UINT64_MAX, out, 8, &n), CRAFT_ECOMPACTED);
    assert_int_equal(st->entries(st->data, 3, 9, UINT64_MAX, out, 8, &n), CRAFT_EUNAVAILABLE);
    assert_int_equal(st->entries(st->data, 3, UINT64_MAX, UINT64_MAX, out, 8, &n),
                     CRAFT_EUNAVAILABLE);
    assert_int_equal(st->entries(st->data, 5, 4, UINT64_MAX, out, 8, &n), CRAFT_EINVAL);
    assert_int_equal(st->entries(st->data, 3, 4, UINT64_MAX, out, 0, &n), CRAFT_EINVAL);
    assert_int_equal(st->entries(st->data, 3, 4, UINT64_MAX, NULL, 8, &n), CRAFT_EINVAL);
    assert_int_equal(st->entries(st->data, 3, 4, UINT64_MAX, out, 8, NULL), CRAFT_EINVAL);

    /* The exact ends of the range are accepted. */
    assert_int_equal(st->entries(st->data, 3, 8, UINT64_MAX, out, 8, &n), CRAFT_OK);
    assert_int_equal(n, 5);
    assert_int_equal(out[0].index, 3);
    assert_int_equal(out[4].index, 7);
    assert_int_equal(st->entries(st->data, 8, 8, UINT64_MAX, out, 8, &n), CRAFT_OK);
    assert_int_equal(n, 0);

    /* cap bounds the count even when max_bytes does not. */
    assert_int_equal(st->entries(st->data, 3, 8, UINT64_MAX, out, 2, &n), CRAFT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(out[1].index, 4);
}

/* Appends entries [1, n] whose data are `size` bytes each. */
static void append_sized(struct craft_memstore *ms, uint64_t n, uint32_t size)
{
    static char data[64];
    assert_true(size <= sizeof(data));
    for (uint64_t i = 1; i <= n; i++) {
        struct craft_entry e = {.index = i, .term = 1, .len = size, .data = data};
        assert_int_equal(craft_memstore_append(ms, &e, 1), CRAFT_OK);
    }
}

static size_t count_within(const struct craft_storage *st, uint64_t lo, uint64_t hi,
                           uint64_t max_bytes)
{
    struct craft_entry out[16];
    size_t n = 0;
    assert_int_equal(st->entries(st->data, lo, hi, max_bytes, out, 16, &n), CRAFT_OK);
    return n;
}

static void test_entries_max_bytes(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;

    append_sized(f->ms, 10, 10);
    assert_int_equal(craft_memstore_bytes(f->ms), 100);

    assert_int_equal(count_within(st, 1, 11, 25), 2);
    assert_int_equal(count_within(st, 1, 11, 29), 2);
    assert_int_equal(count_within(st, 1, 11, 30), 3); /* an exact fit is included */
    assert_int_equal(count_within(st, 1, 11, 31), 3);
    assert_int_equal(count_within(st, 1, 11, 100), 10);
    assert_int_equal(count_within(st, 1, 11, UINT64_MAX), 10);
    assert_int_equal(count_within(st, 4, 6, UINT64_MAX), 2); /* hi still bounds it */
}

static void test_entries_returns_at_least_one(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;

    append_sized(f->ms, 5, 40);

    /* The first entry alone exceeds max_bytes, yet it is returned. */
    assert_int_equal(count_within(st, 1, 6, 0), 1);
    assert_int_equal(count_within(st, 1, 6, 1), 1);
    assert_int_equal(count_within(st, 3, 6, 39), 1);
    assert_int_equal(count_within(st, 3, 6, 79), 1);
    assert_int_equal(count_within(st, 3, 6, 80), 2);
}

static void test_entries_counts_empty_entries_as_zero_bytes(void **state)
{
    struct fixture *f = *state;

    append_sized(f->ms, 6, 0);
    assert_int_equal(count_within(f->st, 1, 7, 0), 6);
}

static void test_data_addresses_are_stable(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    const void *addr[11];

    assert_int_equal(append_range(f->ms, 1, 11, 1), CRAFT_OK);
    for (uint64_t i = 1; i <= 10; i++) {
        addr[i] = entry_at(st, i).data;
    }

    /* Many appends make the slot array grow and move several times. */
    assert_int_equal(append_range(f->ms, 11, 5000, 1), CRAFT_OK);
    for (uint64_t i = 1; i <= 10; i++) {
        assert_ptr_equal(entry_at(st, i).data, addr[i]);
        assert_entry(st, i, 1);
    }

    /* Truncating a suffix leaves earlier entries where they were. */
    assert_int_equal(append_range(f->ms, 8, 9, 2), CRAFT_OK);
    for (uint64_t i = 1; i <= 7; i++) {
        assert_ptr_equal(entry_at(st, i).data, addr[i]);
    }

    /* Compaction shifts and shrinks the slot array; survivors do not move. */
    assert_int_equal(craft_memstore_compact(f->ms, 4), CRAFT_OK);
    for (uint64_t i = 5; i <= 7; i++) {
        assert_ptr_equal(entry_at(st, i).data, addr[i]);
        assert_entry(st, i, 1);
    }
    assert_entry(st, 8, 2);
}

static struct craft_conf_state three_voters(uint64_t a, uint64_t b, uint64_t c)
{
    struct craft_conf_state cs = {0};
    cs.n_voters = 3;
    cs.voters[0] = a;
    cs.voters[1] = b;
    cs.voters[2] = c;
    return cs;
}

static void test_create_snapshot(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_conf_state cs = three_voters(1, 2, 3);
    struct craft_snapshot_meta meta;

    assert_int_equal(append_range(f->ms, 1, 4, 1), CRAFT_OK);
    assert_int_equal(append_range(f->ms, 4, 11, 2), CRAFT_OK);

    assert_int_equal(craft_memstore_create_snapshot(f->ms, 3, &cs), CRAFT_OK);
    assert_bounds(st, 1, 10); /* no entry is dropped */
    assert_int_equal(st->snapshot(st->data, &meta), CRAFT_OK);
    assert_int_equal(meta.index, 3);
    assert_int_equal(meta.term, 1);
    assert_int_equal(meta.conf.n_voters, 3);
    assert_true(craft_conf_state_is_voter(&meta.conf, 2));

    /* A restart starts from the newest snapshot: its membership is the one
     * initial_state gives. */
    struct craft_hard_state hs;
    struct craft_conf_state current;
    assert_int_equal(st->initial_state(st->data, &hs, &current), CRAFT_OK);
    assert_int_equal(current.n_voters, 3);
    assert_true(craft_conf_state_is_voter(&current, 2));

    assert_int_equal(craft_memstore_create_snapshot(f->ms, 11, &cs), CRAFT_EUNAVAILABLE);
    assert_int_equal(craft_memstore_create_snapshot(f->ms, 2, &cs), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_create_snapshot(f->ms, 5, NULL), CRAFT_EINVAL);
    cs.n_witnesses = CRAFT_MAX_NODES + 1;
    assert_int_equal(craft_memstore_create_snapshot(f->ms, 5, &cs), CRAFT_EINVAL);
    cs.n_witnesses = 0;
    assert_int_equal(st->snapshot(st->data, &meta), CRAFT_OK);
    assert_int_equal(meta.index, 3);

    /* Compacting up to the snapshot keeps it usable. */
    assert_int_equal(craft_memstore_create_snapshot(f->ms, 6, &cs), CRAFT_OK);
    assert_int_equal(craft_memstore_compact(f->ms, 6), CRAFT_OK);
    assert_int_equal(st->snapshot(st->data, &meta), CRAFT_OK);
    assert_int_equal(meta.index, 6);
    assert_int_equal(meta.term, 2);
    assert_int_equal(term_of(st, 6), 2);

    /* Compacting past it makes it useless until a newer one is recorded. */
    assert_int_equal(craft_memstore_compact(f->ms, 8), CRAFT_OK);
    assert_int_equal(st->snapshot(st->data, &meta), CRAFT_ESNAPSHOT_TEMP);
    assert_int_equal(craft_memstore_create_snapshot(f->ms, 7, &cs), CRAFT_ECOMPACTED);
    assert_int_equal(craft_memstore_create_snapshot(f->ms, 9, &cs), CRAFT_OK);
    assert_int_equal(st->snapshot(st->data, &meta), CRAFT_OK);
    assert_int_equal(meta.index, 9);
    assert_int_equal(st->snapshot(st->data, NULL), CRAFT_EINVAL);
}

static struct craft_snapshot_meta snapshot_meta(uint64_t index, uint64_t term)
{
    struct craft_snapshot_meta meta = {.index = index, .term = term};
    meta.conf = three_voters(4, 5, 6);
    return meta;
}

static void test_apply_snapshot_replaces_log(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_snapshot_meta meta = snapshot_meta(10, 3);
    struct craft_snapshot_meta got;
    struct craft_hard_state hs;
    struct craft_conf_state cs;
    uint64_t term;

    assert_int_equal(append_range(f->ms, 1, 6, 1), CRAFT_OK);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);

    assert_bounds(st, 11, 10);
    assert_int_equal(craft_memstore_bytes(f->ms), 0);
    assert_int_equal(term_of(st, 10), 3);
    assert_int_equal(st->term(st->data, 5, &term), CRAFT_ECOMPACTED);
    assert_int_equal(st->snapshot(st->data, &got), CRAFT_OK);
    assert_int_equal(got.index, 10);
    assert_int_equal(got.term, 3);
    assert_true(craft_conf_state_is_voter(&got.conf, 6));

    /* The snapshot's membership becomes the store's. */
    assert_int_equal(st->initial_state(st->data, &hs, &cs), CRAFT_OK);
    assert_int_equal(cs.n_voters, 3);
    assert_true(craft_conf_state_is_voter(&cs, 4));

    assert_int_equal(append_range(f->ms, 12, 13, 3), CRAFT_EINVAL);
    assert_int_equal(append_range(f->ms, 11, 13, 3), CRAFT_OK);
    assert_bounds(st, 11, 12);
    assert_entry(st, 11, 3);
}

static void test_apply_snapshot_keeps_matching_suffix(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_snapshot_meta meta = snapshot_meta(5, 1);

    assert_int_equal(append_range(f->ms, 1, 11, 1), CRAFT_OK);
    const void *addr7 = entry_at(st, 7).data;

    /* The store holds entry 5 in term 1: entries after it stay. */
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);
    assert_bounds(st, 6, 10);
    assert_int_equal(term_of(st, 5), 1);
    assert_ptr_equal(entry_at(st, 7).data, addr7);
    for (uint64_t i = 6; i <= 10; i++) {
        assert_entry(st, i, 1);
    }
    assert_int_equal(craft_memstore_bytes(f->ms), payload_bytes(6, 11, 1));
}

static void test_apply_snapshot_with_other_term_drops_all(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_snapshot_meta meta = snapshot_meta(5, 2);

    assert_int_equal(append_range(f->ms, 1, 11, 1), CRAFT_OK);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);
    assert_bounds(st, 6, 5);
    assert_int_equal(term_of(st, 5), 2);
    assert_int_equal(craft_memstore_bytes(f->ms), 0);
}

static void test_apply_snapshot_rejects_old_or_malformed(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_snapshot_meta meta = snapshot_meta(10, 3);
    struct craft_snapshot_meta got;

    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);
    assert_int_equal(append_range(f->ms, 11, 16, 3), CRAFT_OK);

    /* Older than the current snapshot. */
    meta = snapshot_meta(8, 3);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_EINVAL);

    /* Malformed: a term of 0 at a non-zero index, a term at index 0, a count
     * past CRAFT_MAX_NODES, no meta at all. */
    meta = snapshot_meta(12, 0);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_EINVAL);
    meta = snapshot_meta(0, 1);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_EINVAL);
    meta = snapshot_meta(12, 3);
    meta.conf.n_learners = CRAFT_MAX_NODES + 1;
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, NULL), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_apply_snapshot(NULL, &meta), CRAFT_EINVAL);

    /* Nothing changed. */
    assert_bounds(st, 11, 15);
    assert_int_equal(st->snapshot(st->data, &got), CRAFT_OK);
    assert_int_equal(got.index, 10);

    /* Older than the compaction point (compacted past the snapshot). */
    assert_int_equal(craft_memstore_compact(f->ms, 13), CRAFT_OK);
    meta = snapshot_meta(12, 3);
    assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_ECOMPACTED);
    assert_bounds(st, 14, 15);
}

static void test_hard_state_and_conf_state(void **state)
{
    struct fixture *f = *state;
    const struct craft_storage *st = f->st;
    struct craft_hard_state hs = {.term = 7, .vote = 2, .commit = 5};
    struct craft_conf_state cs = three_voters(1, 2, 3);
    struct craft_hard_state got_hs;
    struct craft_conf_state got_cs;

    craft_memstore_set_hard_state(f->ms, &hs);
    craft_memstore_set_conf_state(f->ms, &cs);
    hs.term = 99; /* copied in, not referenced */

    craft_memstore_hard_state(f->ms, &got_hs);
    assert_int_equal(got_hs.term, 7);
    assert_int_equal(got_hs.vote, 2);
    assert_int_equal(got_hs.commit, 5);

    assert_int_equal(st->initial_state(st->data, &got_hs, &got_cs), CRAFT_OK);
    assert_int_equal(got_hs.term, 7);
    assert_int_equal(got_cs.n_voters, 3);
    assert_true(craft_conf_state_is_voter(&got_cs, 3));
    assert_int_equal(st->initial_state(st->data, NULL, &got_cs), CRAFT_EINVAL);
    assert_int_equal(st->initial_state(st->data, &got_hs, NULL), CRAFT_EINVAL);

    /* NULL arguments are ignored. */
    craft_memstore_set_hard_state(f->ms, NULL);
    craft_memstore_set_conf_state(f->ms, NULL);
    craft_memstore_hard_state(f->ms, NULL);
    craft_memstore_hard_state(f->ms, &got_hs);
    assert_int_equal(got_hs.term, 7);
}

static void test_null_store_is_harmless(void **state)
{
    (void)state;
    struct craft_hard_state hs = {.term = 1};

    assert_int_equal(craft_memstore_create(NULL), CRAFT_EINVAL);
    craft_memstore_destroy(NULL);
    assert_null(craft_memstore_storage(NULL));
    assert_int_equal(craft_memstore_compact(NULL, 1), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_create_snapshot(NULL, 0, NULL), CRAFT_EINVAL);
    assert_int_equal(craft_memstore_first_index(NULL), 0);
    assert_int_equal(craft_memstore_last_index(NULL), 0);
    assert_int_equal(craft_memstore_bytes(NULL), 0);
    craft_memstore_hard_state(NULL, &hs);
    assert_int_equal(hs.term, 0);
    craft_memstore_set_hard_state(NULL, &hs);
}

/* ------------------------------------------------------------------------
 * Random operations against a reference model: the model keeps the term of
 * every index ever written plus the compaction point, and the store must
 * agree with it after every operation.
 * ------------------------------------------------------------------------ */

#define MODEL_MAX 20000

struct model {
    uint64_t offset;          /* the compaction point: first_index - 1 */
    uint64_t last;            /* last_index */
    uint64_t snapshot;        /* index of the last applied snapshot */
    uint64_t term[MODEL_MAX]; /* term of index i, for offset <= i <= last */
};

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic and good enough to pick operations. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void model_check(const struct model *m, struct fixture *f)
{
    const struct craft_storage *st = f->st;
    uint64_t term;

    assert_bounds(st, m->offset + 1, m->last);
    assert_int_equal(term_of(st, m->offset), m->term[m->offset]);
    if (m->offset > 0) {
        assert_int_equal(st->term(st->data, m->offset - 1, &term), CRAFT_ECOMPACTED);
    }
    assert_int_equal(st->term(st->data, m->last + 1, &term), CRAFT_EUNAVAILABLE);
    uint64_t bytes = 0;
    for (uint64_t i = m->offset + 1; i <= m->last; i++) {
        assert_entry(st, i, m->term[i]);
        bytes += payload_bytes(i, i + 1, m->term[i]);
    }
    assert_int_equal(craft_memstore_bytes(f->ms), bytes);
}

static void test_random_operations_match_model(void **state)
{
    struct fixture *f = *state;
    struct model *m = calloc(1, sizeof(*m));
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint64_t term = 1;

    assert_non_null(m);
    for (int step = 0; step < 5000; step++) {
        uint64_t r = rng_next(&seed) % 100;
        if (r < 85 && m->last + 20 < MODEL_MAX) {
            /* Append a batch, half the time at last_index + 1, otherwise
             * starting anywhere from below the compaction point. */
            uint64_t from = m->offset > 3 ? m->offset - 3 : 1;
            uint64_t lo = m->last + 1;
            if (rng_next(&seed) % 2 == 0) {
                lo = from + rng_next(&seed) % (m->last + 2 - from);
            }
            uint64_t hi = lo + 1 + rng_next(&seed) % 8;
            if (rng_next(&seed) % 4 == 0) {
                term++;
            }
            assert_int_equal(append_range(f->ms, lo, hi, term), CRAFT_OK);
            if (hi - 1 > m->offset) {
                uint64_t start = lo > m->offset ? lo : m->offset + 1;
                for (uint64_t i = start; i < hi; i++) {
                    m->term[i] = term;
                }
                m->last = hi - 1;
            }
        } else if (r < 92) {
            uint64_t index = m->offset + rng_next(&seed) % (m->last - m->offset + 1);
            assert_int_equal(craft_memstore_compact(f->ms, index), CRAFT_OK);
            m->offset = index;
        } else if (r < 95 && m->last + 20 < MODEL_MAX) {
            /* A snapshot past the end of the log. */
            struct craft_snapshot_meta meta =
                snapshot_meta(m->last + 1 + rng_next(&seed) % 5, ++term);
            assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);
            m->offset = m->last = m->snapshot = meta.index;
            m->term[meta.index] = meta.term;
        } else {
            /* A snapshot inside the log, matching its term. */
            uint64_t index = m->offset + rng_next(&seed) % (m->last - m->offset + 1);
            struct craft_snapshot_meta meta = snapshot_meta(index, m->term[index]);
            if (index < m->snapshot) {
                assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_EINVAL);
            } else if (index == 0) {
                /* No snapshot yet: index 0 with term 0 is "none", a no-op. */
                assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);
            } else {
                assert_int_equal(craft_memstore_apply_snapshot(f->ms, &meta), CRAFT_OK);
                m->offset = m->snapshot = index;
            }
        }
        model_check(m, f);
    }
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_store_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_copies_data_and_keeps_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_overwrites_suffix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_identical_entries_keeps_their_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_append_rejects_bad_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_skips_compacted_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_term_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_bounds_and_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_max_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_returns_at_least_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_entries_counts_empty_entries_as_zero_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_data_addresses_are_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_snapshot_replaces_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_snapshot_keeps_matching_suffix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_snapshot_with_other_term_drops_all, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_apply_snapshot_rejects_old_or_malformed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hard_state_and_conf_state, setup, teardown),
        cmocka_unit_test(test_null_store_is_harmless),
        cmocka_unit_test_setup_teardown(test_random_operations_match_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
