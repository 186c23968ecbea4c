/* Transport wire codec: round trips of every message that may cross the
 * network, the handshake's checks, and defensive decoding of damaged or
 * hostile bytes: every corrupted byte is caught, every truncation is a clean
 * error, absurd lengths and counts are refused before use, local-only
 * message types never come in from the network. Hostile inputs are decoded
 * from exact-size heap copies so that the sanitizer build sees any read past
 * the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <craft/codec.h>

#include "storage/crc32c.h"

/* Offsets inside an encoded version 1 message (include/craft/codec.h). */
#define OFF_TYPE 8
#define OFF_REJECT 9
#define OFF_FLAGS 10
#define OFF_N_ENTRIES 78
#define OFF_ENTRY0 CRAFT_MESSAGE_MIN_SIZE
#define ENTRY_OFF_TYPE 16
#define ENTRY_OFF_LEN 17

#define MAX_ENTRIES 8

static const char payload_a[] = "set x 1";
static const char payload_b[] = "a conf change, say";

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static struct craft_entry sample_entries[3];
static struct craft_snapshot_meta sample_snapshot;

static void init_samples(void)
{
    sample_entries[0] =
        (struct craft_entry){7, 100, CRAFT_ENTRY_NORMAL, sizeof(payload_a), payload_a};
    sample_entries[1] =
        (struct craft_entry){7, 101, CRAFT_ENTRY_CONF_CHANGE, sizeof(payload_b), payload_b};
    sample_entries[2] = (struct craft_entry){8, 102, CRAFT_ENTRY_METADATA, 0, NULL};

    memset(&sample_snapshot, 0, sizeof(sample_snapshot));
    sample_snapshot.index = 99;
    sample_snapshot.term = 6;
    sample_snapshot.conf.auto_leave = true;
    sample_snapshot.conf.n_voters = CRAFT_MAX_NODES; /* a full list */
    for (uint32_t i = 0; i < CRAFT_MAX_NODES; i++)
        sample_snapshot.conf.voters[i] = 1000 + i;
    sample_snapshot.conf.n_voters_outgoing = 2;
    sample_snapshot.conf.voters_outgoing[0] = 1000;
    sample_snapshot.conf.voters_outgoing[1] = 77;
    sample_snapshot.conf.n_learners = 1;
    sample_snapshot.conf.learners[0] = 5000;
    sample_snapshot.conf.n_learners_next = 1;
    sample_snapshot.conf.learners_next[0] = 77;
    sample_snapshot.conf.n_witnesses = 1;
    sample_snapshot.conf.witnesses[0] = 1001;
}

/* A message of the given type with every field set to something distinct. */
static struct craft_message sample_message(uint32_t type, uint32_t seed)
{
    struct craft_message m;

    memset(&m, 0, sizeof(m));
    m.type = type;
    m.flags = (seed & 1) ? CRAFT_MSG_FLAG_TRANSFER : 0;
    m.from = 1 + seed;
    m.to = 2 + seed;
    m.term = 0x0102030405060708ull + seed;
    m.log_term = 6 + seed;
    m.index = 0xfffffffffffffff0ull + (seed % 8);
    m.commit = 98 + seed;
    m.reject_hint = 42 + seed;
    m.context = 0xdeadbeefcafef00dull ^ seed;
    m.reject = (seed & 2) != 0;
    if (type == CRAFT_MSG_APPEND || type == CRAFT_MSG_PROPOSE || type == CRAFT_MSG_SNAPSHOT) {
        m.n_entries = 3;
        m.entries = sample_entries;
    }
    if (type == CRAFT_MSG_SNAPSHOT)
        m.snapshot = &sample_snapshot;
    return m;
}

static void assert_conf_equal(const struct craft_conf_state *a, const struct craft_conf_state *b)
{
    assert_int_equal(a->auto_leave, b->auto_leave);
    assert_int_equal(a->n_voters, b->n_voters);
    assert_int_equal(a->n_voters_outgoing, b->n_voters_outgoing);
    assert_int_equal(a->n_learners, b->n_learners);
    assert_int_equal(a->n_learners_next, b->n_learners_next);
    assert_int_equal(a->n_witnesses, b->n_witnesses);
    assert_memory_equal(a->voters, b->voters, a->n_voters * sizeof(uint64_t));
    assert_memory_equal(a->voters_outgoing, b->voters_outgoing,
                        a->n_voters_outgoing * sizeof(uint64_t));
    assert_memory_equal(a->learners, b->learners, a->n_learners * sizeof(uint64_t));
    assert_memory_equal(a->learners_next, b->learners_next, a->n_learners_next * sizeof(uint64_t));
    assert_memory_equal(a->witnesses, b->witnesses, a->n_witnesses * sizeof(uint64_t));
}

static void assert_message_equal(const struct craft_message *a, const struct craft_message *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->from, b->from);
    assert_int_equal(a->to, b->to);
    assert_int_equal(a->term, b->term);
    assert_int_equal(a->log_term, b->log_term);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->commit, b->commit);
    assert_int_equal(a->reject_hint, b->reject_hint);
    assert_int_equal(a->context, b->context);
    assert_int_equal(a->reject, b->reject);
    assert_int_equal(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++) {
        assert_int_equal(a->entries[i].term, b->entries[i].term);
        assert_int_equal(a->entries[i].index, b->entries[i].index);
        assert_int_equal(a->entries[i].type, b->entries[i].type);
        assert_int_equal(a->entries[i].len, b->entries[i].len);
        if (a->entries[i].len > 0)
            assert_memory_equal(a->entries[i].data, b->entries[i].data, a->entries[i].len);
    }
    if (a->type == CRAFT_MSG_SNAPSHOT) {
        assert_non_null(b->snapshot);
        assert_int_equal(a->snapshot->index, b->snapshot->index);
        assert_int_equal(a->snapshot->term, b->snapshot->term);
        assert_conf_equal(&a->snapshot->conf, &b->snapshot->conf);
    } else {
        assert_null(b->snapshot);
    }
}

/* A batch frame carrying one sample message of every remote type, each for a
 * different group. Returns the number of messages. */
static uint32_t build_sample_batch(struct craft_buf *buf)
{
    struct craft_batch_writer w;
    uint32_t n = 0;

    assert_int_equal(craft_batch_begin(&w, buf, CRAFT_CODEC_VERSION_MAX, 0), 0);
    for (uint32_t t = 0; t < CRAFT_MSG_TYPE_COUNT; t++) {
        if (!craft_message_type_is_remote(t))
            continue;
        struct craft_message m = sample_message(t, t);
        assert_int_equal(craft_batch_add(&w, 0x1000 + t, &m), 0);
        n++;
    }
    craft_batch_finish(&w);
    return n;
}

/* Decodes a whole batch payload; returns the final return code of the
 * iteration (0 at a clean end, negative on error) and the number of messages
 * decoded before it. A batch that decodes must re-encode to the same bytes:
 * the encoding is canonical. */
static int drain(const uint8_t *payload, size_t len, uint32_t *decoded, const char **detail)
{
    struct craft_entry entries[MAX_ENTRIES];
    struct craft_snapshot_meta snap;
    struct craft_batch_iter it;
    struct craft_message m;
    struct craft_buf again;
    uint64_t group;
    int rc;

    *decoded = 0;
    craft_buf_init(&again);
    assert_int_equal(craft_buf_reserve(&again, 4), 0);
    again.len = 4;
    rc = craft_batch_iter_init(&it, CRAFT_CODEC_VERSION_MAX, payload, len, entries, MAX_ENTRIES,
                               &snap);
    if (rc == 0) {
        while ((rc = craft_batch_next(&it, &group, &m)) == 1) {
            (*decoded)++;
            assert_int_equal(craft_message_encode(&again, it.version, group, &m), 0);
        }
    }
    if (rc < 0) {
        assert_non_null(it.detail);
    } else {
        put32(again.data, *decoded);
        assert_int_equal(again.len, len);
        assert_memory_equal(again.data, payload, len);
    }
    *detail = it.detail;
    craft_buf_free(&again);
    return rc;
}

static uint8_t *copy(const void *p, size_t len)
{
    uint8_t *c = malloc(len > 0 ? len : 1);
    assert_non_null(c);
    if (len > 0)
        memcpy(c, p, len);
    return c;
}

/* ------------------------------------------------------------------------ */

static void test_every_remote_message_type_round_trips_in_one_frame(void **state)
{
    (void)state;
    struct craft_buf buf, again;
    struct craft_frame f;
    struct craft_entry entries[MAX_ENTRIES];
    struct craft_snapshot_meta snap;
    struct craft_batch_iter it;
    struct craft_message m;
    struct craft_batch_writer w;
    uint64_t group;
    size_t size;
    uint32_t n, seen = 0;

    craft_buf_init(&buf);
    craft_buf_init(&again);
    n = build_sample_batch(&buf);
    assert_int_equal(n, 16);

    assert_int_equal(craft_frame_decode(buf.data, buf.len, 0, &f, &size, NULL), 0);
    assert_int_equal(size, buf.len);
    assert_int_equal(f.kind, CRAFT_FRAME_BATCH);
    assert_int_equal(f.version, CRAFT_CODEC_VERSION_MAX);
    assert_ptr_equal(f.payload, buf.data + CRAFT_FRAME_HEADER_SIZE);

    assert_int_equal(craft_batch_iter_init(&it, f.version, f.payload, f.payload_len, entries,
                                           MAX_ENTRIES, &snap),
                     0);
    assert_int_equal(craft_batch_begin(&w, &again, f.version, 0), 0);
    for (uint32_t t = 0; t < CRAFT_MSG_TYPE_COUNT; t++) {
        if (!craft_message_type_is_remote(t))
            continue;
        struct craft_message want = sample_message(t, t);
        assert_int_equal(craft_batch_next(&it, &group, &m), 1);
        assert_int_equal(group, 0x1000 + t);
        assert_message_equal(&want, &m);
        /* Zero copy: entry data point into the frame. */
        for (uint32_t i = 0; i < m.n_entries; i++)
            if (m.entries[i].len > 0)
                assert_true((const uint8_t *)m.entries[i].data > buf.data &&
                            (const uint8_t *)m.entries[i].data < buf.data + buf.len);
        assert_int_equal(craft_batch_add(&w, group, &m), 0);
        seen++;
    }
    assert_int_equal(seen, n);
    assert_int_equal(craft_batch_next(&it, &group, &m), 0);
    craft_batch_finish(&w);
    /* The encoding is canonical. */
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.data, buf.data, buf.len);

    craft_buf_free(&buf);
    craft_buf_free(&again);
}

static void test_message_size_matches_encoding(void **state)
{
    (void)state;
    for (uint32_t t = 0; t < CRAFT_MSG_TYPE_COUNT; t++) {
        if (!craft_message_type_is_remote(t))
            continue;
        struct craft_buf buf;
        struct craft_message m = sample_message(t, t);
        craft_buf_init(&buf);
        assert_int_equal(craft_message_encode(&buf, 1, 9, &m), 0);
        assert_int_equal(craft_message_size(1, &m), buf.len);
        craft_buf_free(&buf);
    }
}

static void test_frame_bytes_are_little_endian_with_magic_and_crc32c(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_handshake hs;
    static const uint8_t header[12] = {'C', 'R', 'F', 'T', 1, 0, CRAFT_FRAME_HANDSHAKE,
                                       0,   28,  0,   0,   0};
    static const uint8_t payload[28] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* cluster */
        3,    0,    0,    0,    0,    0,    0,    0,    /* node */
        0,    0,    0,    0,    0,    0,    0,    0,    /* peer */
        1,    0,    1,    0};                           /* versions 1..1 */
    uint32_t crc;

    craft_buf_init(&buf);
    craft_handshake_init(&hs, 0x0102030405060708ull, 3, 0);
    assert_int_equal(craft_handshake_encode(&buf, &hs), 0);
    assert_int_equal(buf.len, CRAFT_FRAME_HEADER_SIZE + CRAFT_HANDSHAKE_SIZE);
    assert_memory_equal(buf.data, header, sizeof(header));
    assert_memory_equal(buf.data + CRAFT_FRAME_HEADER_SIZE, payload, sizeof(payload));
    crc = crc32c(crc32c(0, header, sizeof(header)), payload, sizeof(payload));
    assert_int_equal(buf.data[12], crc & 0xff);
    assert_int_equal(buf.data[13], (crc >> 8) & 0xff);
    assert_int_equal(buf.data[14], (crc >> 16) & 0xff);
    assert_int_equal(buf.data[15], crc >> 24);
    craft_buf_free(&buf);
}

static void test_handshake_round_trip_and_negotiation(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_handshake a, b, out;
    struct craft_frame f;
    uint16_t version = 0;
    const char *detail = NULL;

    craft_buf_init(&buf);
    craft_handshake_init(&a, 77, 1, 2); /* node 1 dials node 2 */
    craft_handshake_init(&b, 77, 2, 0); /* node 2 accepts anyone */
    assert_int_equal(craft_handshake_encode(&buf, &a), 0);
    assert_int_equal(craft_frame_decode(buf.data, buf.len, 0, &f, NULL, &detail), 0);
    assert_int_equal(f.kind, CRAFT_FRAME_HANDSHAKE);
    assert_int_equal(craft_handshake_decode(f.payload, f.payload_len, &out, &detail), 0);
    assert_int_equal(out.cluster_id, 77);
    assert_int_equal(out.node_id, 1);
    assert_int_equal(out.peer_id, 2);
    assert_int_equal(out.min_version, CRAFT_CODEC_VERSION_MIN);
    assert_int_equal(out.max_version, CRAFT_CODEC_VERSION_MAX);
    assert_int_equal(craft_handshake_check(&b, &out, &version, &detail), 0);
    assert_int_equal(version, CRAFT_CODEC_VERSION_MAX);
    assert_int_equal(craft_handshake_check(&a, &b, &version, &detail), 0);

    /* The highest version both speak wins. */
    a.min_version = 1;
    a.max_version = 5;
    b.min_version = 3;
    b.max_version = 9;
    assert_int_equal(craft_handshake_check(&a, &b, &version, &detail), 0);
    assert_int_equal(version, 5);
    craft_buf_free(&buf);
}

static void test_handshake_refuses_wrong_cluster_node_or_version(void **state)
{
    (void)state;
    struct craft_handshake local, remote;
    uint16_t version = 0;
    const char *detail = NULL;

    craft_handshake_init(&local, 77, 1, 2);
    craft_handshake_init(&remote, 78, 2, 1);
    assert_int_equal(craft_handshake_check(&local, &remote, &version, &detail),
                     CRAFT_EWRONG_CLUSTER);
    assert_non_null(detail);

    /* We dialled node 2, node 3 answered. */
    craft_handshake_init(&remote, 77, 3, 1);
    assert_int_equal(craft_handshake_check(&local, &remote, &version, &detail), CRAFT_EWRONG_NODE);
    /* The peer meant to reach node 9, not us. */
    craft_handshake_init(&remote, 77, 2, 9);
    assert_int_equal(craft_handshake_check(&local, &remote, &version, &detail), CRAFT_EWRONG_NODE);
    /* No version in common. */
    craft_handshake_init(&remote, 77, 2, 1);
    remote.min_version = CRAFT_CODEC_VERSION_MAX + 1;
    remote.max_version = CRAFT_CODEC_VERSION_MAX + 3;
    assert_int_equal(craft_handshake_check(&local, &remote, &version, &detail), CRAFT_EVERSION);
    assert_string_equal(craft_codec_strerror(CRAFT_EVERSION),
                        "no codec version in common with the peer");
    assert_string_equal(craft_codec_strerror(CRAFT_ECORRUPT), craft_strerror(CRAFT_ECORRUPT));
}

static void test_handshake_decode_refuses_malformed_payloads(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_handshake hs;
    uint8_t p[CRAFT_HANDSHAKE_SIZE + 1];
    const char *detail = NULL;

    craft_buf_init(&buf);
    craft_handshake_init(&hs, 1, 2, 0);
    assert_int_equal(craft_handshake_encode(&buf, &hs), 0);
    memcpy(p, buf.data + CRAFT_FRAME_HEADER_SIZE, CRAFT_HANDSHAKE_SIZE);
    p[CRAFT_HANDSHAKE_SIZE] = 0;
    for (size_t len = 0; len < CRAFT_HANDSHAKE_SIZE; len++) {
        uint8_t *c = copy(p, len);
        assert_int_equal(craft_handshake_decode(c, len, &hs, &detail), CRAFT_ECORRUPT);
        free(c);
    }
    assert_int_equal(craft_handshake_decode(p, sizeof(p), &hs, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "trailing bytes after the handshake");

    /* Sender id 0. */
    memset(p + 8, 0, 8);
    assert_int_equal(craft_handshake_decode(p, CRAFT_HANDSHAKE_SIZE, &hs, &detail), CRAFT_ECORRUPT);
    p[8] = 2;
    /* min > max, and min 0. */
    p[24] = 2;
    assert_int_equal(craft_handshake_decode(p, CRAFT_HANDSHAKE_SIZE, &hs, &detail), CRAFT_ECORRUPT);
    p[24] = 0;
    assert_int_equal(craft_handshake_decode(p, CRAFT_HANDSHAKE_SIZE, &hs, &detail), CRAFT_ECORRUPT);
    p[24] = 1;
    assert_int_equal(craft_handshake_decode(p, CRAFT_HANDSHAKE_SIZE, &hs, &detail), 0);

    /* The encoder will not say what the decoder refuses. */
    hs.node_id = 0;
    assert_int_equal(craft_handshake_encode(&buf, &hs), CRAFT_EINVAL);
    craft_buf_free(&buf);
}

static void test_every_corrupted_byte_of_a_frame_is_detected(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_frame f;
    const char *detail;

    craft_buf_init(&buf);
    build_sample_batch(&buf);
    for (size_t i = 0; i < buf.len; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            buf.data[i] ^= (uint8_t)(1u << bit);
            detail = NULL;
            int rc = craft_frame_decode(buf.data, buf.len, 0, &f, NULL, &detail);
            assert_true(rc == CRAFT_ECORRUPT || rc == CRAFT_EVERSION);
            assert_non_null(detail);
            buf.data[i] ^= (uint8_t)(1u << bit);
        }
        /* A whole byte replaced: CRC32C catches any burst up to 32 bits. */
        buf.data[i] ^= 0xa5;
        assert_true(craft_frame_decode(buf.data, buf.len, 0, &f, NULL, NULL) < 0);
        buf.data[i] ^= 0xa5;
    }
    assert_int_equal(craft_frame_decode(buf.data, buf.len, 0, &f, NULL, NULL), 0);
    craft_buf_free(&buf);
}

/* With the checksum out of the way (the payload re-sealed after damage), the
 * message decoder still meets every damaged byte with a clean result: either
 * an error, or messages that re-encode to exactly the damaged bytes. */
static void test_damaged_payload_behind_a_valid_checksum_decodes_cleanly(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_frame f;
    uint32_t n, decoded;
    const char *detail;
    size_t payload_len;
    uint8_t *payload;
    int errors = 0;

    craft_buf_init(&buf);
    n = build_sample_batch(&buf);
    assert_int_equal(craft_frame_decode(buf.data, buf.len, 0, &f, NULL, NULL), 0);
    payload_len = f.payload_len;
    payload = copy(f.payload, payload_len);
    for (size_t i = 0; i < payload_len; i++) {
        static const uint8_t flips[] = {0x01, 0x80, 0xff};
        for (size_t k = 0; k < sizeof(flips); k++) {
            struct craft_buf frame;
            struct craft_frame g;
            payload[i] ^= flips[k];
            craft_buf_init(&frame);
            assert_int_equal(
                craft_frame_append(&frame, CRAFT_FRAME_BATCH, 1, payload, (uint32_t)payload_len),
                0);
            uint8_t *exact = copy(frame.data, frame.len);
            assert_int_equal(craft_frame_decode(exact, frame.len, 0, &g, NULL, NULL), 0);
            int rc = drain(g.payload, g.payload_len, &decoded, &detail);
            if (rc < 0) {
                assert_true(rc == CRAFT_ECORRUPT || rc == CRAFT_ETOO_BIG);
                errors++;
            } else {
                assert_int_equal(rc, 0);
            }
            free(exact);
            craft_buf_free(&frame);
            payload[i] ^= flips[k];
        }
    }
    /* Damage to the count, a type, a length... must have been refused. */
    assert_true(errors > 0);
    (void)n;
    free(payload);
    craft_buf_free(&buf);
}

static void test_every_truncation_is_a_clean_error(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_frame f, h;
    uint32_t n, decoded;
    const char *detail;

    craft_buf_init(&buf);
    n = build_sample_batch(&buf);
    for (size_t len = 0; len < buf.len; len++) {
        uint8_t *c = copy(buf.data, len);
        detail = NULL;
        assert_int_equal(craft_frame_decode(c, len, 0, &f, NULL, &detail), CRAFT_ECORRUPT);
        assert_non_null(detail);
        /* A stream reader learns the frame's size from its header alone. */
        if (len >= CRAFT_FRAME_HEADER_SIZE) {
            assert_int_equal(craft_frame_header_decode(c, len, 0, &h, NULL), 0);
            assert_int_equal(h.payload_len + CRAFT_FRAME_HEADER_SIZE, buf.len);
        }
        free(c);
    }
    assert_int_equal(craft_frame_decode(buf.data, buf.len, 0, &f, NULL, NULL), 0);

    /* The bare payload, cut anywhere, never decodes to a clean end. */
    for (size_t len = 0; len < f.payload_len; len++) {
        uint8_t *c = copy(f.payload, len);
        assert_int_equal(drain(c, len, &decoded, &detail), CRAFT_ECORRUPT);
        assert_true(decoded < n);
        free(c);
    }
    assert_int_equal(drain(f.payload, f.payload_len, &decoded, &detail), 0);
    assert_int_equal(decoded, n);
    craft_buf_free(&buf);
}

static void test_frame_header_refuses_bad_magic_kind_version_and_absurd_length(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_frame f;
    const char *detail = NULL;
    uint8_t h[CRAFT_FRAME_HEADER_SIZE];

    craft_buf_init(&buf);
    assert_int_equal(craft_frame_append(&buf, CRAFT_FRAME_BATCH, 1, "\0\0\0\0", 4), 0);
    memcpy(h, buf.data, sizeof(h));

    h[0] = 'X';
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "bad frame magic");
    h[0] = 'C';

    h[6] = CRAFT_FRAME_SNAPSHOT_ACK + 1;
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "unknown frame kind");
    h[6] = CRAFT_FRAME_BATCH;

    h[4] = CRAFT_CODEC_VERSION_MAX + 1;
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_EVERSION);
    h[4] = 0;
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_EVERSION);
    h[4] = 2;
    h[6] = CRAFT_FRAME_HANDSHAKE;
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_ECORRUPT);
    h[4] = 1;
    h[6] = CRAFT_FRAME_BATCH;

    /* 4 GiB claimed: refused from the header, before waiting for any of it. */
    put32(h + 8, UINT32_MAX);
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "payload length exceeds the maximum frame size");
    put32(h + 8, CRAFT_FRAME_DEFAULT_MAX_PAYLOAD);
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), 0);
    put32(h + 8, CRAFT_FRAME_DEFAULT_MAX_PAYLOAD + 1);
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 0, &f, &detail), CRAFT_ECORRUPT);
    /* A configured maximum. */
    put32(h + 8, 4097);
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 4096, &f, &detail), CRAFT_ECORRUPT);
    put32(h + 8, 4096);
    assert_int_equal(craft_frame_header_decode(h, sizeof(h), 4096, &f, &detail), 0);
    assert_int_equal(craft_frame_decode(buf.data, buf.len, 3, &f, NULL, &detail), CRAFT_ECORRUPT);
    craft_buf_free(&buf);
}

/* One encoded heartbeat plus room to patch, as a bare batch payload. */
struct hostile {
    uint8_t bytes[1024];
    size_t len;
};

static void hostile_init(struct hostile *h, const struct craft_message *m)
{
    struct craft_buf buf;

    craft_buf_init(&buf);
    assert_int_equal(craft_message_encode(&buf, 1, 5, m), 0);
    assert_true(buf.len + 4 <= sizeof(h->bytes));
    put32(h->bytes, 1);
    memcpy(h->bytes + 4, buf.data, buf.len);
    h->len = buf.len + 4;
    craft_buf_free(&buf);
}

static int hostile_decode(const struct hostile *h, const char **detail)
{
    uint32_t decoded;
    uint8_t *c = copy(h->bytes, h->len);
    int rc = drain(c, h->len, &decoded, detail);
    free(c);
    return rc;
}

static void test_local_only_and_unknown_types_are_refused(void **state)
{
    (void)state;
    struct craft_message m = sample_message(CRAFT_MSG_HEARTBEAT, 0);
    struct craft_buf buf;
    struct hostile h;
    const char *detail;
    int local = 0, unknown = 0, accepted = 0;

    /* Never encoded... */
    craft_buf_init(&buf);
    static const uint32_t locals[] = {CRAFT_MSG_HUP,          CRAFT_MSG_BEAT,
                                      CRAFT_MSG_UNREACHABLE,  CRAFT_MSG_SNAPSHOT_STATUS,
                                      CRAFT_MSG_CHECK_QUORUM, CRAFT_MSG_LOCAL_TICK,
                                      CRAFT_MSG_TYPE_COUNT,   1000};
    for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++) {
        struct craft_message bad = m;
        bad.type = locals[i];
        assert_false(craft_message_type_is_remote(locals[i]));
        assert_int_equal(craft_message_encode(&buf, 1, 5, &bad), CRAFT_EINVAL);
        assert_int_equal(buf.len, 0);
    }
    craft_buf_free(&buf);

    /* ...and never accepted: try every value of the type byte. */
    hostile_init(&h, &m);
    for (unsigned wire = 0; wire < 256; wire++) {
        h.bytes[4 + OFF_TYPE] = (uint8_t)wire;
        int rc = hostile_decode(&h, &detail);
        if (rc == 0) {
            accepted++;
        } else if (strcmp(detail, "local-only message type from the network") == 0) {
            local++;
        } else if (strcmp(detail, "unknown message type") == 0) {
            unknown++;
        } else {
            /* A snapshot type without its meta behind it. */
            assert_int_equal(rc, CRAFT_ECORRUPT);
            accepted++;
        }
    }
    assert_int_equal(local, 6);
    assert_int_equal(accepted, 16);
    assert_int_equal(unknown, 256 - 22);
}

static void test_absurd_counts_and_lengths_are_refused_before_use(void **state)
{
    (void)state;
    struct craft_message m = sample_message(CRAFT_MSG_APPEND, 0);
    struct hostile h, good;
    const char *detail;
    uint8_t *entry0;

    hostile_init(&good, &m);
    assert_int_equal(hostile_decode(&good, &detail), 0);
    entry0 = h.bytes + 4 + OFF_ENTRY0;

    /* A message count the bytes cannot hold. */
    h = good;
    put32(h.bytes, UINT32_MAX);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "message count exceeds the bytes present");
    put32(h.bytes, 2);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);

    /* An entry count the bytes cannot hold. */
    h = good;
    put32(h.bytes + 4 + OFF_N_ENTRIES, UINT32_MAX);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "entry count exceeds the bytes present");

    /* An entry longer than any entry may be, and one longer than the bytes. */
    h = good;
    put32(entry0 + ENTRY_OFF_LEN, CRAFT_MAX_ENTRY_SIZE + 1);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "entry larger than CRAFT_MAX_ENTRY_SIZE");
    put32(entry0 + ENTRY_OFF_LEN, CRAFT_MAX_ENTRY_SIZE);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "truncated entry data");
    put32(entry0 + ENTRY_OFF_LEN, UINT32_MAX);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);

    /* Unknown entry type, reject and flags out of range, trailing bytes. */
    h = good;
    entry0[ENTRY_OFF_TYPE] = 3;
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "unknown entry type");
    h = good;
    h.bytes[4 + OFF_REJECT] = 2;
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "reject is neither 0 nor 1");
    h = good;
    put32(h.bytes + 4 + OFF_FLAGS, 0x80000000u);
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "unknown message flags");
    h = good;
    h.len++;
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "trailing bytes after the last message");
}

static void test_snapshot_membership_counts_are_bounded(void **state)
{
    (void)state;
    struct craft_message m = sample_message(CRAFT_MSG_SNAPSHOT, 0);
    struct hostile h;
    struct craft_buf buf;
    const char *detail;
    size_t snap_off;
    uint8_t *voters_count;

    m.n_entries = 0;
    m.entries = NULL;
    hostile_init(&h, &m);
    assert_int_equal(hostile_decode(&h, &detail), 0);
    snap_off = 4 + CRAFT_MESSAGE_MIN_SIZE;
    voters_count = h.bytes + snap_off + 17;
    assert_int_equal(*voters_count, CRAFT_MAX_NODES);

    *voters_count = CRAFT_MAX_NODES + 1;
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "membership list longer than CRAFT_MAX_NODES");
    *voters_count = 255;
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    *voters_count = CRAFT_MAX_NODES;
    h.bytes[snap_off + 16] = 2; /* auto_leave */
    assert_int_equal(hostile_decode(&h, &detail), CRAFT_ECORRUPT);
    assert_string_equal(detail, "snapshot auto_leave is neither 0 nor 1");

    /* The encoder refuses what the decoder would. */
    craft_buf_init(&buf);
    struct craft_snapshot_meta big = sample_snapshot;
    big.conf.n_learners = CRAFT_MAX_NODES + 1;
    m.snapshot = &big;
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    m.snapshot = NULL;
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    assert_int_equal(buf.len, 0);
    craft_buf_free(&buf);
}

static void test_encoder_refuses_messages_that_cannot_travel(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_message m = sample_message(CRAFT_MSG_APPEND, 0);
    struct craft_entry e[1];

    craft_buf_init(&buf);
    m.flags = 0x100;
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    m = sample_message(CRAFT_MSG_APPEND, 0);
    m.entries = NULL;
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    e[0] = (struct craft_entry){1, 1, CRAFT_ENTRY_NORMAL, CRAFT_MAX_ENTRY_SIZE + 1, payload_a};
    m.entries = e;
    m.n_entries = 1;
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    e[0] = (struct craft_entry){1, 1, 7, 1, payload_a};
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    e[0] = (struct craft_entry){1, 1, CRAFT_ENTRY_NORMAL, 1, NULL};
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), CRAFT_EINVAL);
    e[0].data = payload_a;
    assert_int_equal(craft_message_encode(&buf, 2, 5, &m), CRAFT_EVERSION);
    assert_int_equal(buf.len, 0);
    assert_int_equal(craft_message_encode(&buf, 1, 5, &m), 0);
    craft_buf_free(&buf);
}

static void test_more_entries_than_the_array_holds_can_be_retried(void **state)
{
    (void)state;
    struct craft_message m = sample_message(CRAFT_MSG_APPEND, 0);
    struct craft_entry small[2], large[3];
    struct craft_snapshot_meta snap;
    struct craft_batch_iter it;
    struct craft_message out;
    struct hostile h;
    uint64_t group;

    hostile_init(&h, &m);
    assert_int_equal(craft_batch_iter_init(&it, 1, h.bytes, h.len, small, 2, &snap), 0);
    assert_int_equal(craft_batch_next(&it, &group, &out), CRAFT_ETOO_BIG);
    assert_int_equal(it.entries_needed, 3);
    it.entries = large;
    it.entries_cap = 3;
    assert_int_equal(craft_batch_next(&it, &group, &out), 1);
    assert_int_equal(group, 5);
    assert_message_equal(&m, &out);
    assert_int_equal(craft_batch_next(&it, &group, &out), 0);

    /* No array at all: only entry-less messages decode. */
    assert_int_equal(craft_batch_iter_init(&it, 1, h.bytes, h.len, NULL, 0, &snap), 0);
    assert_int_equal(craft_batch_next(&it, &group, &out), CRAFT_ETOO_BIG);
    assert_int_equal(craft_batch_iter_init(&it, 1, h.bytes, h.len, NULL, 0, NULL), CRAFT_EINVAL);
    assert_int_equal(craft_batch_iter_init(&it, 9, h.bytes, h.len, large, 3, &snap),
                     CRAFT_EVERSION);
    /* A corrupt batch stays corrupt. */
    put32(h.bytes, 0);
    assert_int_equal(craft_batch_iter_init(&it, 1, h.bytes, h.len, large, 3, &snap), 0);
    assert_int_equal(craft_batch_next(&it, &group, &out), CRAFT_ECORRUPT);
    assert_int_equal(craft_batch_next(&it, &group, &out), CRAFT_ECORRUPT);
}

static void test_batch_writer_stops_at_the_frame_limit(void **state)
{
    (void)state;
    struct craft_buf buf;
    struct craft_batch_writer w;
    struct craft_message m = sample_message(CRAFT_MSG_HEARTBEAT, 0);
    struct craft_frame f;
    uint32_t added = 0, decoded;
    const char *detail;
    size_t before;
    uint32_t max = 4 + 10 * CRAFT_MESSAGE_MIN_SIZE + 5;

    craft_buf_init(&buf);
    assert_int_equal(craft_buf_reserve(&buf, 3), 0);
    memcpy(buf.data, "abc", 3); /* frames append after whatever is there */
    buf.len = 3;
    assert_int_equal(craft_batch_begin(&w, &buf, 1, max), 0);
    for (;;) {
        before = buf.len;
        int rc = craft_batch_add(&w, added, &m);
        if (rc == CRAFT_ETOO_BIG) {
            assert_int_equal(buf.len, before);
            break;
        }
        assert_int_equal(rc, 0);
        added++;
    }
    assert_int_equal(added, 10);
    craft_batch_finish(&w);
    assert_memory_equal(buf.data, "abc", 3);
    assert_int_equal(craft_frame_decode(buf.data + 3, buf.len - 3, max, &f, NULL, &detail), 0);
    assert_int_equal(f.payload_len, buf.len - 3 - CRAFT_FRAME_HEADER_SIZE);
    assert_int_equal(drain(f.payload, f.payload_len, &decoded, &detail), 0);
    assert_int_equal(decoded, added);
    /* An empty batch is a valid frame too. */
    assert_int_equal(craft_batch_begin(&w, &buf, 1, 0), 0);
    craft_batch_finish(&w);
    assert_int_equal(craft_batch_begin(&w, &buf, 7, 0), CRAFT_EVERSION);
    craft_buf_free(&buf);
}

static int setup(void **state)
{
    (void)state;
    init_samples();
    return 0;
}

/* Decodes the one frame at the start of buf, of the expected kind. */
static struct craft_frame whole_frame(const struct craft_buf *buf, uint16_t kind)
{
    struct craft_frame f;
    size_t size = 0;

    assert_int_equal(craft_frame_decode(buf->data, buf->len, 0, &f, &size, NULL), 0);
    assert_int_equal(size, buf->len);
    assert_int_equal(f.kind, kind);
    return f;
}

static void test_snapshot_stream_frames_round_trip(void **state)
{
    (void)state;
    struct craft_message m = sample_message(CRAFT_MSG_SNAPSHOT, 5), got;
    struct craft_snapshot_meta meta;
    struct craft_snapshot_chunk chunk;
    struct craft_buf buf;
    struct craft_frame f;
    uint64_t group = 0, size = 0;
    uint32_t value = 0;
    const char *detail = NULL;
    static const char data[] = "snapshot bytes";

    init_samples();
    m.n_entries = 0;
    m.entries = NULL;
    craft_buf_init(&buf);
    assert_int_equal(craft_snapshot_begin_encode(&buf, 1, 0, 42, &m), 0);
    f = whole_frame(&buf, CRAFT_FRAME_SNAPSHOT_BEGIN);
    assert_int_equal(
        craft_snapshot_begin_decode(f.version, f.payload, f.payload_len, &group, &got, &meta, NULL),
        0);
    assert_int_equal(group, 42);
    assert_message_equal(&m, &got);
    assert_ptr_equal(got.snapshot, &meta);

    buf.len = 0;
    assert_int_equal(craft_snapshot_chunk_encode(&buf, 1, 1ull << 40, data, sizeof(data)), 0);
    f = whole_frame(&buf, CRAFT_FRAME_SNAPSHOT_CHUNK);
    assert_int_equal(craft_snapshot_chunk_decode(f.payload, f.payload_len, &chunk, NULL), 0);
    assert_int_equal(chunk.offset, 1ull << 40);
    assert_int_equal(chunk.len, sizeof(data));
    assert_memory_equal(chunk.data, data, sizeof(data));

    buf.len = 0;
    assert_int_equal(craft_snapshot_end_encode(&buf, 1, 20u << 20, crc32c(0, data, 4)), 0);
    f = whole_frame(&buf, CRAFT_FRAME_SNAPSHOT_END);
    assert_int_equal(craft_snapshot_end_decode(f.payload, f.payload_len, &size, &value, NULL), 0);
    assert_int_equal(size, 20u << 20);
    assert_int_equal(value, crc32c(0, data, 4));

    buf.len = 0;
    assert_int_equal(craft_snapshot_ack_encode(&buf, 1, 7, CRAFT_SNAPSHOT_REFUSED), 0);
    f = whole_frame(&buf, CRAFT_FRAME_SNAPSHOT_ACK);
    assert_int_equal(craft_snapshot_ack_decode(f.payload, f.payload_len, &size, &value, &detail),
                     0);
    assert_int_equal(size, 7);
    assert_int_equal(value, CRAFT_SNAPSHOT_REFUSED);
    craft_buf_free(&buf);
}

static void test_snapshot_stream_frames_refuse_what_cannot_travel(void **state)
{
    (void)state;
    struct craft_message append = sample_message(CRAFT_MSG_APPEND, 1);
    struct craft_message snap = sample_message(CRAFT_MSG_SNAPSHOT, 2);
    struct craft_buf buf;

    init_samples();
    craft_buf_init(&buf);
    /* Only a snapshot message, and without entries, begins a stream. */
    assert_int_equal(craft_snapshot_begin_encode(&buf, 1, 0, 1, &append), CRAFT_EINVAL);
    snap.n_entries = 1;
    snap.entries = sample_entries;
    assert_int_equal(craft_snapshot_begin_encode(&buf, 1, 0, 1, &snap), CRAFT_EINVAL);
    snap.n_entries = 0;
    assert_int_equal(craft_snapshot_begin_encode(&buf, 9, 0, 1, &snap), CRAFT_EVERSION);
    assert_int_equal(craft_snapshot_begin_encode(&buf, 1, 16, 1, &snap), CRAFT_ETOO_BIG);
    assert_int_equal(craft_snapshot_chunk_encode(&buf, 1, 0, "x", 0), CRAFT_EINVAL);
    assert_int_equal(craft_snapshot_chunk_encode(&buf, 0, 0, "x", 1), CRAFT_EVERSION);
    assert_int_equal(craft_snapshot_end_encode(&buf, 2, 0, 0), CRAFT_EVERSION);
    assert_int_equal(craft_snapshot_ack_encode(&buf, 1, 0, CRAFT_SNAPSHOT_FAILED + 1),
                     CRAFT_EINVAL);
    assert_int_equal(buf.len, 0);
    craft_buf_free(&buf);
}

static void test_hostile_snapshot_stream_payloads_are_refused(void **state)
{
    (void)state;
    struct craft_message snap = sample_message(CRAFT_MSG_SNAPSHOT, 3), got;
    struct craft_snapshot_meta meta;
    struct craft_snapshot_chunk chunk;
    struct craft_buf buf;
    struct craft_frame f;
    uint8_t *p;
    uint64_t group, size;
    uint32_t value;
    const char *detail = NULL;

    init_samples();
    snap.n_entries = 0;
    craft_buf_init(&buf);

    /* A begin is a batch of exactly one snapshot message: two messages, an
     * append, or any truncation are refused, reading only the bytes given. */
    assert_int_equal(craft_snapshot_begin_encode(&buf, 1, 0, 1, &snap), 0);
    f = whole_frame(&buf, CRAFT_FRAME_SNAPSHOT_BEGIN);
    for (size_t len = 0; len < f.payload_len; len++) {
        p = copy(f.payload, len);
        assert_int_equal(craft_snapshot_begin_decode(1, p, len, &group, &got, &meta, &detail),
                         CRAFT_ECORRUPT);
        free(p);
    }
    buf.len = 0;
    assert_true(build_sample_batch(&buf) > 1);
    f = whole_frame(&buf, CRAFT_FRAME_BATCH);
    assert_int_equal(
        craft_snapshot_begin_decode(1, f.payload, f.payload_len, &group, &got, &meta, &detail),
        CRAFT_ECORRUPT);
    assert_string_equal(detail, "snapshot begin without exactly one message");

    /* A chunk without data, end and ack of the wrong size, an unknown status. */
    p = copy("\0\0\0\0\0\0\0\0", 8);
    assert_int_equal(craft_snapshot_chunk_decode(p, 8, &chunk, &detail), CRAFT_ECORRUPT);
    assert_int_equal(craft_snapshot_end_decode(p, 8, &size, &value, &detail), CRAFT_ECORRUPT);
    assert_int_equal(craft_snapshot_ack_decode(p, 8, &size, &value, &detail), CRAFT_ECORRUPT);
    free(p);
    buf.len = 0;
    assert_int_equal(craft_snapshot_ack_encode(&buf, 1, 0, CRAFT_SNAPSHOT_FAILED), 0);
    f = whole_frame(&buf, CRAFT_FRAME_SNAPSHOT_ACK);
    p = copy(f.payload, f.payload_len);
    p[8] = 3;
    assert_int_equal(craft_snapshot_ack_decode(p, f.payload_len, &size, &value, &detail),
                     CRAFT_ECORRUPT);
    assert_string_equal(detail, "unknown snapshot ack status");
    free(p);
    craft_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_remote_message_type_round_trips_in_one_frame),
        cmocka_unit_test(test_message_size_matches_encoding),
        cmocka_unit_test(test_frame_bytes_are_little_endian_with_magic_and_crc32c),
        cmocka_unit_test(test_handshake_round_trip_and_negotiation),
        cmocka_unit_test(test_handshake_refuses_wrong_cluster_node_or_version),
        cmocka_unit_test(test_handshake_decode_refuses_malformed_payloads),
        cmocka_unit_test(test_every_corrupted_byte_of_a_frame_is_detected),
        cmocka_unit_test(test_damaged_payload_behind_a_valid_checksum_decodes_cleanly),
        cmocka_unit_test(test_every_truncation_is_a_clean_error),
        cmocka_unit_test(test_frame_header_refuses_bad_magic_kind_version_and_absurd_length),
        cmocka_unit_test(test_local_only_and_unknown_types_are_refused),
        cmocka_unit_test(test_absurd_counts_and_lengths_are_refused_before_use),
        cmocka_unit_test(test_snapshot_membership_counts_are_bounded),
        cmocka_unit_test(test_encoder_refuses_messages_that_cannot_travel),
        cmocka_unit_test(test_more_entries_than_the_array_holds_can_be_retried),
        cmocka_unit_test(test_batch_writer_stops_at_the_frame_limit),
        cmocka_unit_test(test_snapshot_stream_frames_round_trip),
        cmocka_unit_test(test_snapshot_stream_frames_refuse_what_cannot_travel),
        cmocka_unit_test(test_hostile_snapshot_stream_payloads_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
