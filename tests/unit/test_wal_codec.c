/* WAL record and segment header codec: round trips of every record type, and
 * defensive decoding of damaged or hostile bytes (every length bounded, no
 * read outside the buffer, a precise result). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "storage/wal_record.h"

static struct craft_conf_state sample_conf(void)
{
    struct craft_conf_state cs;
    memset(&cs, 0, sizeof(cs));
    cs.n_voters = 3;
    cs.voters[0] = 1;
    cs.voters[1] = 2;
    cs.voters[2] = 3;
    cs.n_learners = 1;
    cs.learners[0] = 9;
    cs.n_voters_outgoing = 2;
    cs.voters_outgoing[0] = 1;
    cs.voters_outgoing[1] = 4;
    cs.auto_leave = true;
    return cs;
}

static void assert_conf_equal(const struct craft_conf_state *a, const struct craft_conf_state *b)
{
    assert_int_equal(a->n_voters, b->n_voters);
    assert_int_equal(a->n_voters_outgoing, b->n_voters_outgoing);
    assert_int_equal(a->n_learners, b->n_learners);
    assert_int_equal(a->n_learners_next, b->n_learners_next);
    assert_int_equal(a->n_witnesses, b->n_witnesses);
    assert_int_equal(a->auto_leave, b->auto_leave);
    assert_memory_equal(a->voters, b->voters, a->n_voters * 8);
    assert_memory_equal(a->voters_outgoing, b->voters_outgoing, a->n_voters_outgoing * 8);
    assert_memory_equal(a->learners, b->learners, a->n_learners * 8);
}

static void test_segment_header_round_trip(void **state)
{
    (void)state;
    uint8_t buf[WAL_SEGMENT_HEADER_SIZE];
    struct wal_segment_header h = {WAL_FORMAT_VERSION, 7, 12345, 1 << 20}, out;
    const char *why = NULL;
    wal_segment_header_encode(&h, buf);
    assert_int_equal(wal_segment_header_decode(buf, sizeof(buf), &out, &why), 0);
    assert_int_equal(out.seq, 7);
    assert_int_equal(out.first_lsn, 12345);
    assert_int_equal(out.segment_size, 1 << 20);
    /* Any flipped bit is caught; a short buffer too. */
    for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(wal_segment_header_decode(buf, sizeof(buf), &out, &why), -1);
        assert_non_null(why);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(wal_segment_header_decode(buf, 63, &out, &why), -1);
}

static void test_every_record_type_round_trips(void **state)
{
    (void)state;
    struct wal_buf b = {0};
    struct craft_conf_state cs = sample_conf();
    struct craft_hard_state hs = {5, 2, 40};
    struct craft_snapshot_meta snap = {.index = 30, .term = 4, .conf = cs};
    const char *payloads[] = {"", "a", "hello, world", "0123456789abcdef0123"};
    struct craft_entry es[4];
    for (int i = 0; i < 4; i++)
        es[i] = (struct craft_entry){.term = 3 + (uint64_t)i,
                                     .index = 10 + (uint64_t)i,
                                     .type = (uint32_t)(i % 3),
                                     .len = (uint32_t)strlen(payloads[i]),
                                     .data = payloads[i]};
    assert_int_equal(wal_encode_entries(&b, 77, es, 4), 0);
    assert_int_equal(wal_encode_hard_state(&b, 77, &hs), 0);
    assert_int_equal(wal_encode_conf_state(&b, 77, &cs), 0);
    assert_int_equal(wal_encode_snapshot(&b, 77, &snap), 0);
    assert_int_equal(wal_encode_compact(&b, 77, 25, 4), 0);
    assert_int_equal(wal_encode_truncate(&b, 77, 12), 0);
    assert_int_equal(wal_encode_group_state(&b, 77, &hs, &cs, &snap, 29, 4), 0);
    assert_int_equal(wal_encode_remove_group(&b, 77), 0);

    /* Stamp as one unit, lsn 100..107. */
    size_t off = 0;
    for (uint64_t k = 0; k < 8; k++) {
        assert_int_equal(off % 8, 0);
        wal_record_stamp(b.data + off, 100 + k, 107);
        off += wal_record_size(wal_record_payload_len(b.data + off));
    }
    assert_int_equal(off, b.len);

    struct wal_record *rec = malloc(sizeof(*rec));
    size_t size;
    off = 0;
    for (uint16_t type = WAL_REC_ENTRIES; type < WAL_REC_TYPE_END; type++) {
        assert_int_equal(wal_record_decode(b.data + off, b.len - off, rec, &size), WAL_DEC_OK);
        assert_int_equal(rec->type, type);
        assert_int_equal(rec->group, 77);
        assert_int_equal(rec->lsn, 100 + type - 1);
        assert_int_equal(rec->unit_last, 107);
        switch (type) {
        case WAL_REC_ENTRIES: {
            struct wal_entries_iter it;
            struct craft_entry e;
            int k = 0;
            wal_entries_iter_init(&it, rec);
            while (wal_entries_next(&it, &e)) {
                assert_int_equal(e.index, es[k].index);
                assert_int_equal(e.term, es[k].term);
                assert_int_equal(e.type, es[k].type);
                assert_int_equal(e.len, es[k].len);
                if (e.len > 0)
                    assert_memory_equal(e.data, es[k].data, e.len);
                k++;
            }
            assert_int_equal(k, 4);
            break;
        }
        case WAL_REC_HARD_STATE:
            assert_memory_equal(&rec->hs, &hs, sizeof(hs));
            break;
        case WAL_REC_CONF_STATE:
            assert_conf_equal(&rec->conf, &cs);
            break;
        case WAL_REC_SNAPSHOT:
            assert_int_equal(rec->snap.index, 30);
            assert_int_equal(rec->snap.term, 4);
            assert_conf_equal(&rec->snap.conf, &cs);
            break;
        case WAL_REC_COMPACT:
            assert_int_equal(rec->index, 25);
            assert_int_equal(rec->term, 4);
            break;
        case WAL_REC_TRUNCATE:
            assert_int_equal(rec->index, 12);
            break;
        case WAL_REC_GROUP_STATE:
            assert_memory_equal(&rec->hs, &hs, sizeof(hs));
            assert_int_equal(rec->compact_index, 29);
            assert_int_equal(rec->compact_term, 4);
            assert_int_equal(rec->snap.index, 30);
            assert_conf_equal(&rec->conf, &cs);
            assert_conf_equal(&rec->snap.conf, &cs);
            break;
        }
        off += size;
    }
    assert_int_equal(off, b.len);
    free(rec);
    wal_buf_free(&b);
}

static void encode_one(struct wal_buf *b)
{
    const char *data = "some entry data";
    struct craft_entry e = {.term = 2, .index = 5, .len = 15, .data = data};
    b->len = 0;
    assert_int_equal(wal_encode_entries(b, 1, &e, 1), 0);
    wal_record_stamp(b->data, 9, 9);
}

static void test_any_flipped_bit_is_detected(void **state)
{
    (void)state;
    struct wal_buf b = {0};
    struct wal_record rec;
    size_t size;
    encode_one(&b);
    size_t checked = WAL_RECORD_HEADER_SIZE + wal_record_payload_len(b.data);
    for (size_t bit = 0; bit < checked * 8; bit++) {
        b.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int r = wal_record_decode(b.data, b.len, &rec, &size);
        assert_int_not_equal(r, WAL_DEC_OK);
        b.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_OK);
    wal_buf_free(&b);
}

static void test_short_buffers_zeros_and_lengths(void **state)
{
    (void)state;
    struct wal_buf b = {0};
    struct wal_record rec;
    size_t size;
    encode_one(&b);
    /* Every prefix shorter than the checksummed bytes: truncated, never OK. */
    size_t checked = WAL_RECORD_HEADER_SIZE + wal_record_payload_len(b.data);
    for (size_t n = 1; n < checked; n++) {
        uint8_t *copy = malloc(n); /* exact size: ASan catches an overread */
        memcpy(copy, b.data, n);
        assert_int_equal(wal_record_decode(copy, n, &rec, &size), WAL_DEC_TRUNCATED);
        free(copy);
    }
    uint8_t zeros[64] = {0};
    assert_int_equal(wal_record_decode(zeros, sizeof(zeros), &rec, &size), WAL_DEC_ZERO);
    assert_int_equal(wal_record_decode(zeros, 5, &rec, &size), WAL_DEC_ZERO);
    /* A huge length is refused before anything is read. */
    b.data[4] = 0xff, b.data[5] = 0xff, b.data[6] = 0xff, b.data[7] = 0xff;
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_BAD_LENGTH);
    wal_buf_free(&b);
}

/* Bytes with a valid checksum but lying contents: an entry length pointing
 * past the record, an absurd membership count, an unknown type. */
static void test_hostile_contents_with_valid_checksum(void **state)
{
    (void)state;
    struct wal_buf b = {0};
    struct wal_record rec;
    size_t size;

    encode_one(&b);
    /* entry len field: payload offset 24 + 12 */
    uint8_t *p = b.data + WAL_RECORD_HEADER_SIZE + 24 + 12;
    p[0] = 0xff, p[1] = 0xff, p[2] = 0, p[3] = 0;
    wal_record_stamp(b.data, 9, 9);
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_BAD_PAYLOAD);

    encode_one(&b);
    /* entry count: 1000 entries claimed */
    p = b.data + WAL_RECORD_HEADER_SIZE + 16;
    p[0] = 0xe8, p[1] = 0x03;
    wal_record_stamp(b.data, 9, 9);
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_BAD_PAYLOAD);

    encode_one(&b);
    b.data[24] = 200; /* type */
    wal_record_stamp(b.data, 9, 9);
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_BAD_PAYLOAD);

    b.len = 0;
    struct craft_conf_state cs = sample_conf();
    assert_int_equal(wal_encode_conf_state(&b, 3, &cs), 0);
    p = b.data + WAL_RECORD_HEADER_SIZE + 8; /* n_voters */
    p[0] = 65;
    wal_record_stamp(b.data, 9, 9);
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_BAD_PAYLOAD);

    /* lsn 0 and unit_last < lsn are refused. */
    encode_one(&b);
    wal_record_stamp(b.data, 9, 8);
    assert_int_equal(wal_record_decode(b.data, b.len, &rec, &size), WAL_DEC_BAD_PAYLOAD);
    wal_buf_free(&b);
}

/* The tail scan finds valid records after a damaged one and reports their units. */
static void test_tail_scan_reports_later_units(void **state)
{
    (void)state;
    struct wal_buf b = {0};
    struct craft_hard_state hs = {1, 1, 1};
    for (int i = 0; i < 6; i++)
        assert_int_equal(wal_encode_hard_state(&b, 1, &hs), 0);
    size_t rs = wal_record_size(32);
    for (uint64_t k = 0; k < 6; k++)
        wal_record_stamp(b.data + k * rs, 1 + k, k < 3 ? 3 : 6);
    struct wal_tail_evidence ev;
    b.data[rs + 40] ^= 1; /* damage record 2 */
    wal_scan_tail(b.data, b.len, rs, 1, &ev);
    assert_int_equal(ev.valid_records, 4);
    assert_int_equal(ev.first_offset, 2 * rs);
    assert_int_equal(ev.min_unit, 3);
    assert_int_equal(ev.max_unit, 6);
    wal_scan_tail(b.data, b.len, 4 * rs, 5, &ev);
    assert_int_equal(ev.valid_records, 1);
    wal_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segment_header_round_trip),
        cmocka_unit_test(test_every_record_type_round_trips),
        cmocka_unit_test(test_any_flipped_bit_is_detected),
        cmocka_unit_test(test_short_buffers_zeros_and_lengths),
        cmocka_unit_test(test_hostile_contents_with_valid_checksum),
        cmocka_unit_test(test_tail_scan_reports_later_units),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
