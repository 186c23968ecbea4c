/* Unit tests for the membership change codec, the membership queries and the
 * name tables (src/raft/conf_state.c and src/raft/strings.c).
 *
 * The decoder reads bytes from disk and from peers, so besides round trips
 * these tests feed it every kind of malformed input: each truncation, trailing
 * bytes, oversized counts and each invalid field, and check that it refuses
 * them all with CRAFT_ECORRUPT and leaves its output untouched.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "craft/raft.h"

#define HEADER_SIZE 4
#define ITEM_SIZE 9
#define MAX_ENCODED (HEADER_SIZE + CRAFT_MAX_CONF_CHANGES * ITEM_SIZE)

/* A change with n items cycling through every type, with ids that use every
 * byte of the u64 so that a byte-order mistake shows. */
static struct craft_conf_change make_change(uint32_t transition, uint32_t n)
{
    struct craft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.transition = transition;
    cc.n_changes = n;
    for (uint32_t i = 0; i < n; i++) {
        cc.changes[i].type = i % 4;
        cc.changes[i].node_id = 0x0102030405060708ULL * (i + 1) + i;
    }
    return cc;
}

static void assert_change_equal(const struct craft_conf_change *a,
                                const struct craft_conf_change *b)
{
    assert_int_equal(a->transition, b->transition);
    assert_int_equal(a->n_changes, b->n_changes);
    for (uint32_t i = 0; i < a->n_changes; i++) {
        assert_int_equal(a->changes[i].type, b->changes[i].type);
        assert_int_equal(a->changes[i].node_id, b->changes[i].node_id);
    }
}

/* Encodes cc into buf (MAX_ENCODED + slack bytes) and returns its length. */
static size_t encode(const struct craft_conf_change *cc, uint8_t *buf, size_t cap)
{
    int n = craft_conf_change_encode(cc, buf, cap);
    assert_true(n > 0);
    assert_int_equal((size_t)n, craft_conf_change_size(cc));
    return (size_t)n;
}

/* Decoding must fail with CRAFT_ECORRUPT and leave the output as it was. */
static void assert_corrupt(const uint8_t *buf, size_t len)
{
    struct craft_conf_change out, before;
    memset(&out, 0xa5, sizeof(out));
    before = out;
    assert_int_equal(craft_conf_change_decode(&out, buf, len), CRAFT_ECORRUPT);
    assert_memory_equal(&out, &before, sizeof(out));
}

/* Decodes from a heap copy of exactly len bytes, so that AddressSanitizer
 * catches any read past the end. */
static int decode_exact(struct craft_conf_change *cc, const uint8_t *buf, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, buf, len);
    }
    int rc = craft_conf_change_decode(cc, copy, len);
    free(copy);
    return rc;
}

static void test_wire_format_is_little_endian(void **state)
{
    (void)state;
    struct craft_conf_change cc = {0};
    uint8_t buf[MAX_ENCODED];
    const uint8_t expect[] = {
        1,                                                 /* version */
        2,                                                 /* transition: joint explicit */
        2, 0,                                              /* n_changes */
        3, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* remove 0x0102030405060708 */
        1, 0x2a, 0,    0,    0,    0,    0,    0,    0,    /* add non-voting 42 */
    };

    cc.transition = CRAFT_TRANSITION_JOINT_EXPLICIT;
    cc.n_changes = 2;
    cc.changes[0].type = CRAFT_CC_REMOVE_NODE;
    cc.changes[0].node_id = 0x0102030405060708ULL;
    cc.changes[1].type = CRAFT_CC_ADD_NON_VOTING;
    cc.changes[1].node_id = 42;

    assert_int_equal(craft_conf_change_size(&cc), sizeof(expect));
    assert_int_equal(craft_conf_change_encode(&cc, buf, sizeof(buf)), sizeof(expect));
    assert_memory_equal(buf, expect, sizeof(expect));

    struct craft_conf_change out;
    assert_int_equal(decode_exact(&out, expect, sizeof(expect)), CRAFT_OK);
    assert_change_equal(&out, &cc);
}

static void test_round_trip(void **state)
{
    (void)state;
    const uint32_t transitions[] = {CRAFT_TRANSITION_AUTO, CRAFT_TRANSITION_JOINT_IMPLICIT,
                                    CRAFT_TRANSITION_JOINT_EXPLICIT};

    for (size_t t = 0; t < sizeof(transitions) / sizeof(transitions[0]); t++) {
        for (uint32_t n = 0; n <= CRAFT_MAX_CONF_CHANGES; n++) {
            struct craft_conf_change cc = make_change(transitions[t], n);
            struct craft_conf_change out;
            uint8_t buf[MAX_ENCODED];
            size_t len = encode(&cc, buf, sizeof(buf));

            assert_int_equal(len, HEADER_SIZE + n * ITEM_SIZE);
            memset(&out, 0xff, sizeof(out));
            assert_int_equal(decode_exact(&out, buf, len), CRAFT_OK);
            assert_change_equal(&out, &cc);
        }
    }

    /* The largest node id survives too. */
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, 1);
    struct craft_conf_change out;
    uint8_t buf[MAX_ENCODED];
    cc.changes[0].node_id = UINT64_MAX;
    size_t len = encode(&cc, buf, sizeof(buf));
    assert_int_equal(decode_exact(&out, buf, len), CRAFT_OK);
    assert_int_equal(out.changes[0].node_id, UINT64_MAX);
}

static void test_encode_needs_room(void **state)
{
    (void)state;
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_JOINT_IMPLICIT, 3);
    size_t size = craft_conf_change_size(&cc);
    uint8_t buf[MAX_ENCODED + 1];

    for (size_t cap = 0; cap < size; cap++) {
        memset(buf, 0xee, sizeof(buf));
        assert_int_equal(craft_conf_change_encode(&cc, buf, cap), CRAFT_EINVAL);
        /* Nothing is written on failure. */
        for (size_t i = 0; i < sizeof(buf); i++) {
            assert_int_equal(buf[i], 0xee);
        }
    }

    /* An exact fit works and writes nothing past the end. */
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(craft_conf_change_encode(&cc, buf, size), size);
    assert_int_equal(buf[size], 0xee);

    assert_int_equal(craft_conf_change_encode(&cc, NULL, size), CRAFT_EINVAL);
    assert_int_equal(craft_conf_change_encode(NULL, buf, sizeof(buf)), CRAFT_EINVAL);
    assert_int_equal(craft_conf_change_size(NULL), 0);
}

static void test_encode_refuses_what_decode_would(void **state)
{
    (void)state;
    uint8_t buf[MAX_ENCODED * 2];
    struct craft_conf_change cc;

    cc = make_change(CRAFT_TRANSITION_AUTO, 2);
    cc.n_changes = CRAFT_MAX_CONF_CHANGES + 1;
    assert_int_equal(craft_conf_change_size(&cc), 0);
    assert_int_equal(craft_conf_change_encode(&cc, buf, sizeof(buf)), CRAFT_EINVAL);

    cc = make_change(CRAFT_TRANSITION_JOINT_EXPLICIT + 1, 2);
    assert_int_equal(craft_conf_change_encode(&cc, buf, sizeof(buf)), CRAFT_EINVAL);

    cc = make_change(CRAFT_TRANSITION_AUTO, 2);
    cc.changes[1].type = CRAFT_CC_REMOVE_NODE + 1;
    assert_int_equal(craft_conf_change_encode(&cc, buf, sizeof(buf)), CRAFT_EINVAL);

    cc = make_change(CRAFT_TRANSITION_AUTO, 2);
    cc.changes[1].node_id = 0;
    assert_int_equal(craft_conf_change_encode(&cc, buf, sizeof(buf)), CRAFT_EINVAL);

    /* A transition that would only fit in a byte after truncation. */
    cc = make_change(0x100 + CRAFT_TRANSITION_AUTO, 1);
    assert_int_equal(craft_conf_change_encode(&cc, buf, sizeof(buf)), CRAFT_EINVAL);
}

static void test_decode_rejects_every_truncation(void **state)
{
    (void)state;
    for (uint32_t n = 0; n <= CRAFT_MAX_CONF_CHANGES; n++) {
        struct craft_conf_change cc = make_change(CRAFT_TRANSITION_JOINT_IMPLICIT, n);
        uint8_t buf[MAX_ENCODED];
        size_t len = encode(&cc, buf, sizeof(buf));

        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *copy = malloc(cut ? cut : 1);
            assert_non_null(copy);
            memcpy(copy, buf, cut);
            assert_corrupt(copy, cut);
            free(copy);
        }
    }
}

static void test_decode_rejects_trailing_bytes(void **state)
{
    (void)state;
    for (uint32_t n = 0; n <= CRAFT_MAX_CONF_CHANGES; n += 5) {
        struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, n);
        uint8_t buf[MAX_ENCODED + 2 * ITEM_SIZE];
        size_t len = encode(&cc, buf, sizeof(buf));

        memset(buf + len, 0, sizeof(buf) - len);
        for (size_t extra = 1; len + extra <= sizeof(buf); extra++) {
            assert_corrupt(buf, len + extra);
        }
    }
}

static void test_decode_rejects_too_many_changes(void **state)
{
    (void)state;
    /* A well-formed body of MAX + 1 valid items: only the count is wrong. */
    uint8_t buf[HEADER_SIZE + (CRAFT_MAX_CONF_CHANGES + 1) * ITEM_SIZE];
    memset(buf, 0, sizeof(buf));
    buf[0] = 1;
    buf[1] = CRAFT_TRANSITION_AUTO;
    buf[2] = CRAFT_MAX_CONF_CHANGES + 1;
    buf[3] = 0;
    for (size_t i = 0; i < CRAFT_MAX_CONF_CHANGES + 1; i++) {
        buf[HEADER_SIZE + i * ITEM_SIZE] = CRAFT_CC_ADD_VOTER;
        buf[HEADER_SIZE + i * ITEM_SIZE + 1] = (uint8_t)(i + 1);
    }
    assert_corrupt(buf, sizeof(buf));

    /* The largest counts, with and without a body to match. */
    buf[2] = 0xff;
    buf[3] = 0xff;
    assert_corrupt(buf, HEADER_SIZE);
    assert_corrupt(buf, sizeof(buf));
    buf[2] = 0x00;
    buf[3] = 0x01; /* 256: the high byte matters */
    assert_corrupt(buf, sizeof(buf));

    /* A valid one-item change whose count gains a high byte (257). */
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, 1);
    size_t len = encode(&cc, buf, sizeof(buf));
    buf[3] = 0x01;
    assert_corrupt(buf, len);
}

static void test_decode_rejects_bad_version(void **state)
{
    (void)state;
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, 2);
    uint8_t buf[MAX_ENCODED];
    size_t len = encode(&cc, buf, sizeof(buf));
    const uint8_t versions[] = {0, 2, 3, 0x81, 0xff};

    for (size_t i = 0; i < sizeof(versions); i++) {
        buf[0] = versions[i];
        assert_corrupt(buf, len);
    }
}

static void test_decode_rejects_bad_transition(void **state)
{
    (void)state;
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, 2);
    uint8_t buf[MAX_ENCODED];
    size_t len = encode(&cc, buf, sizeof(buf));

    for (unsigned t = CRAFT_TRANSITION_JOINT_EXPLICIT + 1; t <= 0xff; t++) {
        buf[1] = (uint8_t)t;
        assert_corrupt(buf, len);
    }
}

static void test_decode_rejects_bad_type_at_each_position(void **state)
{
    (void)state;
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, CRAFT_MAX_CONF_CHANGES);
    uint8_t buf[MAX_ENCODED];
    size_t len = encode(&cc, buf, sizeof(buf));

    for (size_t i = 0; i < CRAFT_MAX_CONF_CHANGES; i++) {
        size_t at = HEADER_SIZE + i * ITEM_SIZE;
        uint8_t saved = buf[at];
        for (unsigned type = CRAFT_CC_REMOVE_NODE + 1; type <= 0xff; type++) {
            buf[at] = (uint8_t)type;
            assert_corrupt(buf, len);
        }
        buf[at] = saved;
    }
    /* Restored, the buffer is valid again: the failures were the type's. */
    struct craft_conf_change out;
    assert_int_equal(decode_exact(&out, buf, len), CRAFT_OK);
    assert_change_equal(&out, &cc);
}

static void test_decode_rejects_zero_id_at_each_position(void **state)
{
    (void)state;
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, CRAFT_MAX_CONF_CHANGES);
    uint8_t buf[MAX_ENCODED];
    uint8_t zeroed[MAX_ENCODED];
    size_t len = encode(&cc, buf, sizeof(buf));

    for (size_t i = 0; i < CRAFT_MAX_CONF_CHANGES; i++) {
        memcpy(zeroed, buf, len);
        memset(zeroed + HEADER_SIZE + i * ITEM_SIZE + 1, 0, 8);
        assert_corrupt(zeroed, len);
    }

    /* An id with only its top byte set is not zero. */
    memcpy(zeroed, buf, len);
    memset(zeroed + HEADER_SIZE + 1, 0, 7);
    zeroed[HEADER_SIZE + 8] = 0x80;
    struct craft_conf_change out;
    assert_int_equal(decode_exact(&out, zeroed, len), CRAFT_OK);
    assert_int_equal(out.changes[0].node_id, 0x8000000000000000ULL);
}

static void test_decode_arguments(void **state)
{
    (void)state;
    struct craft_conf_change cc = make_change(CRAFT_TRANSITION_AUTO, 1);
    uint8_t buf[MAX_ENCODED];
    size_t len = encode(&cc, buf, sizeof(buf));
    struct craft_conf_change out;

    assert_int_equal(craft_conf_change_decode(NULL, buf, len), CRAFT_EINVAL);
    assert_int_equal(craft_conf_change_decode(&out, NULL, len), CRAFT_EINVAL);
    assert_int_equal(craft_conf_change_decode(&out, NULL, 0), CRAFT_ECORRUPT);
}

/* An empty change (leave joint) is just a header. */
static void test_empty_change_is_header_only(void **state)
{
    (void)state;
    const uint8_t leave[] = {1, CRAFT_TRANSITION_AUTO, 0, 0};
    struct craft_conf_change out;

    memset(&out, 0xff, sizeof(out));
    assert_int_equal(decode_exact(&out, leave, sizeof(leave)), CRAFT_OK);
    assert_int_equal(out.n_changes, 0);
    assert_int_equal(out.transition, CRAFT_TRANSITION_AUTO);
}

/* ------------------------------------------------------------------------
 * Membership queries.
 * ------------------------------------------------------------------------ */

static void test_conf_state_queries(void **state)
{
    (void)state;
    struct craft_conf_state *cs = calloc(1, sizeof(*cs));
    assert_non_null(cs);

    /* Joint: {1, 2, 3(witness)} incoming, {1, 4, 5} outgoing, 5 becoming a
     * learner on leaving, 6 a learner already. */
    cs->n_voters = 3;
    cs->voters[0] = 1;
    cs->voters[1] = 2;
    cs->voters[2] = 3;
    cs->n_voters_outgoing = 3;
    cs->voters_outgoing[0] = 1;
    cs->voters_outgoing[1] = 4;
    cs->voters_outgoing[2] = 5;
    cs->n_learners_next = 1;
    cs->learners_next[0] = 5;
    cs->n_learners = 1;
    cs->learners[0] = 6;
    cs->n_witnesses = 1;
    cs->witnesses[0] = 3;

    for (uint64_t id = 1; id <= 5; id++) {
        assert_true(craft_conf_state_is_voter(cs, id));
    }
    assert_false(craft_conf_state_is_voter(cs, 6));
    assert_false(craft_conf_state_is_voter(cs, 7));

    assert_true(craft_conf_state_is_learner(cs, 6));
    assert_false(craft_conf_state_is_learner(cs, 5)); /* not until leaving joint */
    assert_false(craft_conf_state_is_learner(cs, 1));

    assert_true(craft_conf_state_is_witness(cs, 3));
    assert_false(craft_conf_state_is_witness(cs, 2));

    for (uint64_t id = 1; id <= 6; id++) {
        assert_true(craft_conf_state_contains(cs, id));
    }
    assert_false(craft_conf_state_contains(cs, 7));
    assert_true(craft_conf_state_is_joint(cs));

    /* Only the counted prefix of each list matters. */
    cs->voters[3] = 9;
    cs->learners[1] = 9;
    cs->witnesses[1] = 9;
    assert_false(craft_conf_state_contains(cs, 9));

    cs->n_voters_outgoing = 0;
    assert_false(craft_conf_state_is_joint(cs));
    assert_false(craft_conf_state_is_voter(cs, 4));

    /* Id 0 is never a member, even if a list holds a zero. */
    cs->n_learners = 2;
    cs->learners[1] = 0;
    assert_false(craft_conf_state_contains(cs, 0));
    assert_false(craft_conf_state_is_voter(cs, 0));

    /* NULL is an empty configuration. */
    assert_false(craft_conf_state_is_voter(NULL, 1));
    assert_false(craft_conf_state_is_learner(NULL, 1));
    assert_false(craft_conf_state_is_witness(NULL, 1));
    assert_false(craft_conf_state_contains(NULL, 1));
    assert_false(craft_conf_state_is_joint(NULL));
    free(cs);
}

static void test_contains_checks_every_list(void **state)
{
    (void)state;
    struct craft_conf_state cs;

    /* One id in exactly one list at a time. */
    for (int list = 0; list < 5; list++) {
        memset(&cs, 0, sizeof(cs));
        switch (list) {
        case 0:
            cs.n_voters = 1;
            cs.voters[0] = 8;
            break;
        case 1:
            cs.n_voters_outgoing = 1;
            cs.voters_outgoing[0] = 8;
            break;
        case 2:
            cs.n_learners = 1;
            cs.learners[0] = 8;
            break;
        case 3:
            cs.n_learners_next = 1;
            cs.learners_next[0] = 8;
            break;
        default:
            cs.n_witnesses = 1;
            cs.witnesses[0] = 8;
            break;
        }
        assert_true(craft_conf_state_contains(&cs, 8));
        assert_false(craft_conf_state_contains(&cs, 9));
        assert_int_equal(craft_conf_state_is_voter(&cs, 8), list <= 1);
        assert_int_equal(craft_conf_state_is_learner(&cs, 8), list == 2);
        assert_int_equal(craft_conf_state_is_witness(&cs, 8), list == 4);
    }
}

static void test_conf_state_queries_clamp_corrupt_counts(void **state)
{
    (void)state;
    /* On the heap, so that a read past witnesses[] (the last array) trips
     * AddressSanitizer. */
    struct craft_conf_state *cs = calloc(1, sizeof(*cs));
    assert_non_null(cs);
    cs->n_voters = UINT32_MAX;
    cs->n_voters_outgoing = UINT32_MAX;
    cs->n_learners = UINT32_MAX;
    cs->n_learners_next = UINT32_MAX;
    cs->n_witnesses = UINT32_MAX;
    cs->witnesses[CRAFT_MAX_NODES - 1] = 77;

    assert_true(craft_conf_state_is_witness(cs, 77));
    assert_true(craft_conf_state_contains(cs, 77));
    assert_false(craft_conf_state_contains(cs, 78));
    assert_false(craft_conf_state_is_voter(cs, 78));
    assert_false(craft_conf_state_is_learner(cs, 78));
    free(cs);
}

/* ------------------------------------------------------------------------
 * Names.
 * ------------------------------------------------------------------------ */

static void test_every_error_has_a_distinct_message(void **state)
{
    (void)state;
    const char *unknown = craft_strerror(1);
    const char *seen[-CRAFT_ERROR_MIN + 1];

    assert_non_null(unknown);
    assert_true(strlen(unknown) > 0);
    for (int rc = CRAFT_OK; rc >= CRAFT_ERROR_MIN; rc--) {
        const char *msg = craft_strerror(rc);
        assert_non_null(msg);
        assert_true(strlen(msg) > 0);
        assert_string_not_equal(msg, unknown);
        for (int other = CRAFT_OK; other > rc; other--) {
            assert_string_not_equal(msg, seen[-other]);
        }
        seen[-rc] = msg;
    }

    /* Codes outside the enum all get the same non-empty message. */
    const int outside[] = {CRAFT_ERROR_MIN - 1, -100, 2, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        assert_string_equal(craft_strerror(outside[i]), unknown);
    }
}

static void test_message_type_names(void **state)
{
    (void)state;
    const char *unknown = craft_message_type_name(CRAFT_MSG_TYPE_COUNT);

    assert_string_equal(unknown, "unknown");
    assert_string_equal(craft_message_type_name(UINT32_MAX), "unknown");
    assert_string_equal(craft_message_type_name(CRAFT_MSG_TYPE_COUNT + 1), "unknown");
    for (uint32_t t = 0; t < CRAFT_MSG_TYPE_COUNT; t++) {
        const char *name = craft_message_type_name(t);
        assert_non_null(name);
        assert_true(strlen(name) > 0);
        assert_string_not_equal(name, unknown);
        for (uint32_t other = 0; other < t; other++) {
            assert_string_not_equal(name, craft_message_type_name(other));
        }
    }
    assert_string_equal(craft_message_type_name(CRAFT_MSG_APPEND), "append");
    assert_string_equal(craft_message_type_name(CRAFT_MSG_LOCAL_TICK), "local_tick");
}

static void test_role_names(void **state)
{
    (void)state;
    assert_string_equal(craft_role_name(CRAFT_ROLE_COUNT), "unknown");
    assert_string_equal(craft_role_name(UINT32_MAX), "unknown");
    for (uint32_t r = 0; r < CRAFT_ROLE_COUNT; r++) {
        const char *name = craft_role_name(r);
        assert_non_null(name);
        assert_true(strlen(name) > 0);
        assert_string_not_equal(name, "unknown");
        for (uint32_t other = 0; other < r; other++) {
            assert_string_not_equal(name, craft_role_name(other));
        }
    }
    assert_string_equal(craft_role_name(CRAFT_ROLE_LEADER), "leader");
    assert_string_equal(craft_role_name(CRAFT_ROLE_WITNESS), "witness");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_format_is_little_endian),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_needs_room),
        cmocka_unit_test(test_encode_refuses_what_decode_would),
        cmocka_unit_test(test_decode_rejects_every_truncation),
        cmocka_unit_test(test_decode_rejects_trailing_bytes),
        cmocka_unit_test(test_decode_rejects_too_many_changes),
        cmocka_unit_test(test_decode_rejects_bad_version),
        cmocka_unit_test(test_decode_rejects_bad_transition),
        cmocka_unit_test(test_decode_rejects_bad_type_at_each_position),
        cmocka_unit_test(test_decode_rejects_zero_id_at_each_position),
        cmocka_unit_test(test_decode_arguments),
        cmocka_unit_test(test_empty_change_is_header_only),
        cmocka_unit_test(test_conf_state_queries),
        cmocka_unit_test(test_contains_checks_every_list),
        cmocka_unit_test(test_conf_state_queries_clamp_corrupt_counts),
        cmocka_unit_test(test_every_error_has_a_distinct_message),
        cmocka_unit_test(test_message_type_names),
        cmocka_unit_test(test_role_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
