/* craftkv's replicated command codec (src/kv/command.c): client requests to
 * commands, batch round trips, hostile batches, and the compact replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv/command.h"

#define MAX_ARGS 8

/* Splits a space-separated request into slices (pointing into text). */
static size_t split(const char *text, struct kv_slice *argv)
{
    size_t argc = 0;
    const char *p = text;
    while (*p != '\0' && argc < MAX_ARGS) {
        const char *end = strchr(p, ' ');
        if (end == NULL)
            end = p + strlen(p);
        argv[argc].ptr = p;
        argv[argc].len = (size_t)(end - p);
        argc++;
        p = *end ? end + 1 : end;
    }
    return argc;
}

static int parse(const char *text, struct kv_cmd *cmd, char *err)
{
    static struct kv_slice argv[MAX_ARGS];
    size_t argc = split(text, argv);
    return kv_cmd_parse(argc, argv, cmd, err, 128);
}

static void assert_parse_error(const char *text, const char *error)
{
    struct kv_cmd cmd;
    char err[128];
    assert_int_equal(parse(text, &cmd, err), -1);
    assert_string_equal(err, error);
}

static void test_client_requests_become_commands(void **state)
{
    struct kv_cmd cmd;
    char err[128];
    (void)state;

    assert_int_equal(parse("set k v nx", &cmd, err), 0);
    assert_int_equal(cmd.op, KV_OP_SET);
    assert_int_equal(cmd.flags, KV_SET_NX);
    assert_int_equal(cmd.argc, 2);
    assert_memory_equal(cmd.argv[1].ptr, "v", 1);
    assert_int_equal(parse("DECRBY k 5", &cmd, err), 0);
    assert_int_equal(cmd.op, KV_OP_INCRBY);
    assert_true(cmd.delta == -5);
    assert_int_equal(cmd.argc, 1);
    assert_int_equal(parse("INCR k", &cmd, err), 0);
    assert_true(cmd.delta == 1);
    assert_int_equal(parse("MSET a 1 b 2", &cmd, err), 0);
    assert_int_equal(cmd.op, KV_OP_MSET);
    assert_int_equal(cmd.argc, 4);
    assert_int_equal(parse("CAS k old new", &cmd, err), 0);
    assert_int_equal(cmd.op, KV_OP_CAS);
    assert_int_equal(parse("DEL a b c", &cmd, err), 0);
    assert_int_equal(cmd.argc, 3);
    /* Reads are not the codec's business. */
    assert_int_equal(parse("GET k", &cmd, err), 1);
}

static void test_wrong_requests_get_redis_errors(void **state)
{
    char big[KV_MAX_KEY_SIZE + 16];
    (void)state;

    assert_parse_error("SET k", "ERR wrong number of arguments for 'set' command");
    assert_parse_error("mset a 1 b", "ERR wrong number of arguments for 'mset' command");
    assert_parse_error("set k v nx xx", "ERR syntax error");
    assert_parse_error("set k v bogus", "ERR syntax error");
    assert_parse_error("incrby k 1x", "ERR value is not an integer or out of range");
    assert_parse_error("incrby k 9223372036854775808",
                       "ERR value is not an integer or out of range");
    assert_parse_error("decrby k -9223372036854775808", "ERR decrement would overflow");
    assert_parse_error("set k v ex 10", "ERR SET options EX, PX, EXAT, PXAT, KEEPTTL and GET are "
                                        "not supported (craftkv keys never expire)");
    memset(big, 'k', sizeof(big));
    memcpy(big, "GET ", 4);
    memcpy(big, "DEL ", 4);
    big[sizeof(big) - 1] = '\0';
    assert_parse_error(big, "ERR key too large (max 500 bytes)");
}

static void test_batch_round_trips(void **state)
{
    struct kv_slice set_args[] = {{"key", 3}, {"va\0lue", 6}};
    struct kv_slice del_args[] = {{"a", 1}, {"", 0}, {"c", 1}};
    struct kv_slice incr_args[] = {{"n", 1}};
    struct kv_slice append_args[] = {{"k", 1}, {"tail", 4}};
    struct kv_cmd in[] = {
        {.op = KV_OP_SET, .flags = KV_SET_XX, .argc = 2, .argv = set_args},
        {.op = KV_OP_DEL, .argc = 3, .argv = del_args},
        {.op = KV_OP_INCRBY, .delta = INT64_MIN, .argc = 1, .argv = incr_args},
        {.op = KV_OP_APPEND,
         .flags = KV_APPEND_LIMIT,
         .delta = 1000,
         .argc = 2,
         .argv = append_args},
    };
    struct kv_batch_reader r;
    struct kv_cmd out;
    struct kv_buf b;
    (void)state;

    kv_buf_init(&b);
    assert_int_equal(kv_batch_init(&b), 0);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(kv_batch_add(&b, &in[i]), 0);
    assert_int_equal(kv_batch_count(&b), 4);
    assert_int_equal(kv_batch_reader_init(&r, b.data, b.len), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(kv_batch_reader_next(&r, &out), 1);
        assert_int_equal(out.op, in[i].op);
        assert_int_equal(out.flags, in[i].flags);
        assert_true(out.delta == in[i].delta);
        assert_int_equal(out.argc, in[i].argc);
        for (size_t j = 0; j < out.argc; j++) {
            assert_int_equal(out.argv[j].len, in[i].argv[j].len);
            assert_memory_equal(out.argv[j].ptr, in[i].argv[j].ptr, out.argv[j].len);
        }
    }
    assert_int_equal(kv_batch_reader_next(&r, &out), 0);
    kv_batch_reader_free(&r);

    /* Every truncation, and every extension, is rejected whole. */
    for (size_t len = 0; len < b.len; len++) {
        assert_int_equal(kv_batch_reader_init(&r, b.data, len), -1);
        kv_batch_reader_free(&r);
    }
    kv_buf_append_u8(&b, 0);
    assert_int_equal(kv_batch_reader_init(&r, b.data, b.len), -1);
    kv_batch_reader_free(&r);
    kv_buf_free(&b);
}

/* An APPEND's own limit travels in the log; a limit of 0 or above the
 * store's maximum is malformed. */
static void test_append_limit_is_bounded(void **state)
{
    struct kv_slice args[] = {{"k", 1}, {"v", 1}};
    struct kv_cmd cmd = {.op = KV_OP_APPEND, .flags = KV_APPEND_LIMIT, .argc = 2, .argv = args};
    int64_t bad[] = {0, -1, (int64_t)KV_MAX_VALUE_SIZE + 1};
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct kv_buf b;
        struct kv_batch_reader r;
        kv_buf_init(&b);
        cmd.delta = bad[i];
        assert_int_equal(kv_batch_init(&b), 0);
        assert_int_equal(kv_batch_add(&b, &cmd), 0);
        assert_int_equal(kv_batch_reader_init(&r, b.data, b.len), -1);
        kv_batch_reader_free(&r);
        kv_buf_free(&b);
    }
}

static void test_hostile_batches_are_rejected(void **state)
{
    /* magic, version, count 1, then: SET with 3 args; unknown op; a length
     * past the end; SET with both NX and XX; a huge count. */
    static const uint8_t bad[][24] = {
        {'K', 1, 1, 0, 0, 0, KV_OP_SET, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {'K', 1, 1, 0, 0, 0, 99, 0, 1, 0, 0, 0, 0, 0, 0, 0},
        {'K', 1, 1, 0, 0, 0, KV_OP_DEL, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f},
        {'K', 1, 1, 0, 0, 0, KV_OP_SET, 3, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
        {'K', 1, 0xff, 0xff, 0xff, 0xff},
        {'K', 2, 0, 0, 0, 0},
        {'X', 1, 0, 0, 0, 0},
    };
    static const size_t lens[] = {22, 16, 16, 20, 6, 6, 6};
    struct kv_batch_reader r;
    (void)state;

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        assert_int_equal(kv_batch_reader_init(&r, bad[i], lens[i]), -1);
        kv_batch_reader_free(&r);
    }
    /* An oversized key inside an otherwise well-formed batch. */
    {
        char key[KV_MAX_KEY_SIZE + 1];
        struct kv_slice args[] = {{key, sizeof(key)}};
        struct kv_cmd cmd = {.op = KV_OP_DEL, .argc = 1, .argv = args};
        struct kv_buf b;
        memset(key, 'k', sizeof(key));
        kv_buf_init(&b);
        kv_batch_init(&b);
        assert_int_equal(kv_batch_add(&b, &cmd), 0);
        assert_int_equal(kv_batch_reader_init(&r, b.data, b.len), -1);
        kv_batch_reader_free(&r);
        kv_buf_free(&b);
    }
}

static void test_replies_render_in_either_protocol(void **state)
{
    struct kv_buf b, out2, out3;
    struct kv_reply reply;
    size_t pos = 0;
    int rc;
    (void)state;

    kv_buf_init(&b);
    kv_buf_init(&out2);
    kv_buf_init(&out3);
    kv_reply_ok(&b);
    kv_reply_null(&b);
    kv_reply_int(&b, -7);
    kv_reply_err(&b, "ERR value is not an integer or out of range");
    while ((rc = kv_reply_next(b.data, b.len, &pos, &reply)) == 1) {
        kv_reply_to_resp(&reply, 2, &out2);
        kv_reply_to_resp(&reply, 3, &out3);
    }
    assert_int_equal(rc, 0);
    const char want2[] = "+OK\r\n$-1\r\n:-7\r\n-ERR value is not an integer or out of range\r\n";
    const char want3[] = "+OK\r\n_\r\n:-7\r\n-ERR value is not an integer or out of range\r\n";
    assert_int_equal(out2.len, strlen(want2));
    assert_memory_equal(out2.data, want2, out2.len);
    assert_int_equal(out3.len, strlen(want3));
    assert_memory_equal(out3.data, want3, out3.len);

    /* Truncated replies are malformed, never read past the end. */
    pos = 0;
    assert_int_equal(kv_reply_next(b.data, 10, &pos, &reply), 1);
    assert_int_equal(kv_reply_next(b.data, 10, &pos, &reply), 1);
    assert_int_equal(kv_reply_next(b.data, 10, &pos, &reply), -1);
    kv_buf_free(&b);
    kv_buf_free(&out2);
    kv_buf_free(&out3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_requests_become_commands),
        cmocka_unit_test(test_wrong_requests_get_redis_errors),
        cmocka_unit_test(test_batch_round_trips),
        cmocka_unit_test(test_hostile_batches_are_rejected),
        cmocka_unit_test(test_append_limit_is_bounded),
        cmocka_unit_test(test_replies_render_in_either_protocol),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
