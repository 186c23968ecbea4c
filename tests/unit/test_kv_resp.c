/* craftkv's RESP parser and encoder (src/kv/resp.c): pipelined, partial,
 * inline and hostile requests, with Redis's error texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv/resp.h"

static void assert_arg(const struct kv_resp_parser *p, size_t i, const char *s)
{
    assert_true(i < p->argc);
    assert_int_equal(p->argv[i].len, strlen(s));
    assert_memory_equal(p->argv[i].ptr, s, strlen(s));
}

/* Parses text (copied into a writable buffer) expecting one error. */
static void assert_protocol_error(const char *text, size_t len, const struct kv_resp_limits *limits,
                                  const char *error)
{
    struct kv_resp_parser p;
    char *buf = malloc(len + 1);
    size_t consumed;

    assert_non_null(buf);
    memcpy(buf, text, len);
    kv_resp_parser_init(&p, limits);
    if (kv_resp_parse(&p, buf, len, &consumed) != KV_RESP_ERROR)
        fail_msg("no error for %.*s", (int)(len < 40 ? len : 40), text);
    assert_string_equal(p.error, error);
    kv_resp_parser_free(&p);
    free(buf);
}

static void test_multibulk_command_points_into_the_buffer(void **state)
{
    char buf[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nv\r\nxy\r\n";
    struct kv_resp_parser p;
    size_t consumed;
    (void)state;

    kv_resp_parser_init(&p, NULL);
    assert_int_equal(kv_resp_parse(&p, buf, strlen(buf), &consumed), KV_RESP_COMMAND);
    assert_int_equal(consumed, strlen(buf));
    assert_int_equal(p.argc, 3);
    assert_arg(&p, 0, "SET");
    assert_arg(&p, 1, "k");
    assert_arg(&p, 2, "v\r\nxy");
    assert_ptr_equal(p.argv[1].ptr, buf + 17);
    kv_resp_parser_free(&p);
}

static void test_pipelined_commands_come_one_at_a_time(void **state)
{
    char buf[] = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nECHO hi\r\n*1\r\n$4\r\nPI";
    struct kv_resp_parser p;
    size_t consumed, off = 0, len = strlen(buf);
    (void)state;

    kv_resp_parser_init(&p, NULL);
    assert_int_equal(kv_resp_parse(&p, buf + off, len - off, &consumed), KV_RESP_COMMAND);
    assert_int_equal(p.argc, 1);
    assert_arg(&p, 0, "PING");
    off += consumed;
    assert_int_equal(kv_resp_parse(&p, buf + off, len - off, &consumed), KV_RESP_COMMAND);
    assert_int_equal(p.argc, 2);
    assert_arg(&p, 1, "a");
    off += consumed;
    assert_int_equal(kv_resp_parse(&p, buf + off, len - off, &consumed), KV_RESP_COMMAND);
    assert_int_equal(p.argc, 2);
    assert_arg(&p, 0, "ECHO");
    assert_arg(&p, 1, "hi");
    off += consumed;
    assert_int_equal(kv_resp_parse(&p, buf + off, len - off, &consumed), KV_RESP_NEED_MORE);
    assert_int_equal(consumed, 0);
    kv_resp_parser_free(&p);
}

/* A command fed one byte at a time parses the same as in one piece, and
 * the parser resumes rather than rescanning. */
static void test_partial_input_resumes_byte_by_byte(void **state)
{
    const char *text = "*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$0\r\n\r\n";
    size_t len = strlen(text);
    char buf[64];
    struct kv_resp_parser p;
    size_t consumed;
    (void)state;

    kv_resp_parser_init(&p, NULL);
    for (size_t have = 0; have < len; have++) {
        memcpy(buf, text, have);
        assert_int_equal(kv_resp_parse(&p, buf, have, &consumed), KV_RESP_NEED_MORE);
        assert_int_equal(consumed, 0);
    }
    memcpy(buf, text, len);
    assert_int_equal(kv_resp_parse(&p, buf, len, &consumed), KV_RESP_COMMAND);
    assert_int_equal(consumed, len);
    assert_int_equal(p.argc, 3);
    assert_arg(&p, 1, "0123456789");
    assert_arg(&p, 2, "");
    kv_resp_parser_free(&p);
}

static void test_inline_commands_unquote_like_sdssplitargs(void **state)
{
    char buf[] = "  set \"a b\\x41\\n\" 'it\\'s'  \r\n\r\n\nGET k\n";
    struct kv_resp_parser p;
    size_t consumed, len = strlen(buf);
    (void)state;

    kv_resp_parser_init(&p, NULL);
    assert_int_equal(kv_resp_parse(&p, buf, len, &consumed), KV_RESP_COMMAND);
    assert_int_equal(p.argc, 3);
    assert_arg(&p, 0, "set");
    assert_arg(&p, 1, "a bA\n");
    assert_arg(&p, 2, "it's");
    /* Empty lines are skipped, as Redis does. */
    assert_int_equal(kv_resp_parse(&p, buf + consumed, len - consumed, &consumed), KV_RESP_COMMAND);
    assert_int_equal(p.argc, 2);
    assert_arg(&p, 0, "GET");
    assert_arg(&p, 1, "k");
    kv_resp_parser_free(&p);
}

static void test_empty_multibulk_is_skipped(void **state)
{
    char buf[] = "*0\r\n*-1\r\n";
    struct kv_resp_parser p;
    size_t consumed;
    (void)state;

    kv_resp_parser_init(&p, NULL);
    assert_int_equal(kv_resp_parse(&p, buf, strlen(buf), &consumed), KV_RESP_NEED_MORE);
    assert_int_equal(consumed, strlen(buf));
    kv_resp_parser_free(&p);
}

static void test_malformed_requests_get_redis_errors(void **state)
{
    struct kv_resp_limits small = {.max_args = 4, .max_bulk = 16, .max_request = 64};
    char *big;
    (void)state;

    assert_protocol_error("*x\r\n", 4, NULL, "ERR Protocol error: invalid multibulk length");
    assert_protocol_error("*5\r\n", 4, &small, "ERR Protocol error: invalid multibulk length");
    assert_protocol_error("*99999999999999999999999\r\n", 26, NULL,
                          "ERR Protocol error: invalid multibulk length");
    assert_protocol_error("*1\r\n$-5\r\n", 9, NULL, "ERR Protocol error: invalid bulk length");
    assert_protocol_error("*1\r\n$17\r\n", 9, &small, "ERR Protocol error: invalid bulk length");
    assert_protocol_error("*1\r\n$2147483648000\r\n", 20, NULL,
                          "ERR Protocol error: invalid bulk length");
    assert_protocol_error("*1\r\n$1x\r\n", 9, NULL, "ERR Protocol error: invalid bulk length");
    assert_protocol_error("*1\r\n+OK\r\n", 9, NULL, "ERR Protocol error: expected '$', got '+'");
    assert_protocol_error("*1\r\n$1\r\nabc\r\n", 13, NULL,
                          "ERR Protocol error: bulk string not followed by CRLF");
    assert_protocol_error("set \"a\r\n", 8, NULL,
                          "ERR Protocol error: unbalanced quotes in request");
    assert_protocol_error("'\0E\n", 4, NULL, "ERR Protocol error: unbalanced quotes in request");
    assert_protocol_error("set \"a\"b\r\n", 10, NULL,
                          "ERR Protocol error: unbalanced quotes in request");
    assert_protocol_error("*4\r\n$16\r\n0123456789abcdef\r\n$16\r\n0123456789abcdef\r\n$16\r\n", 56,
                          &small, "ERR Protocol error: request too large");

    big = malloc(KV_RESP_MAX_INLINE + 16);
    assert_non_null(big);
    memset(big, 'a', KV_RESP_MAX_INLINE + 16);
    assert_protocol_error(big, KV_RESP_MAX_INLINE + 16, NULL,
                          "ERR Protocol error: too big inline request");
    big[0] = '*';
    assert_protocol_error(big, KV_RESP_MAX_INLINE + 16, NULL,
                          "ERR Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n$", 5);
    assert_protocol_error(big, KV_RESP_MAX_INLINE + 16, NULL,
                          "ERR Protocol error: too big bulk count string");
    free(big);
}

/* A huge announced count allocates nothing until arguments arrive. */
static void test_huge_counts_need_more_without_allocating(void **state)
{
    char buf[] = "*1048576\r\n$4194304\r\nab";
    struct kv_resp_parser p;
    size_t consumed;
    (void)state;

    kv_resp_parser_init(&p, NULL);
    assert_int_equal(kv_resp_parse(&p, buf, strlen(buf), &consumed), KV_RESP_NEED_MORE);
    assert_true(p.argv_cap <= 16);
    kv_resp_parser_free(&p);
}

static void test_replies_encode_resp2_and_resp3(void **state)
{
    struct kv_buf b;
    (void)state;

    kv_buf_init(&b);
    kv_resp_simple(&b, "OK");
    kv_resp_error(&b, "ERR bad\r\nthing");
    kv_resp_integer(&b, -42);
    kv_resp_bulk(&b, "a\0b", 3);
    kv_resp_null(&b, 2);
    kv_resp_null(&b, 3);
    kv_resp_null_array(&b, 2);
    kv_resp_array(&b, 2);
    kv_resp_map(&b, 2, 2);
    kv_resp_map(&b, 2, 3);
    assert_false(b.failed);
    const char want[] = "+OK\r\n-ERR bad  thing\r\n:-42\r\n$3\r\na\0b\r\n$-1\r\n_\r\n*-1\r\n*2\r\n"
                        "*4\r\n%2\r\n";
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);
    kv_buf_free(&b);
}

static void test_unknown_command_and_arity_errors_match_redis(void **state)
{
    struct kv_slice argv[] = {{"FOO", 3}, {"a", 1}, {"bc", 2}};
    struct kv_buf b;
    (void)state;

    kv_buf_init(&b);
    kv_resp_unknown_command(&b, 3, argv);
    kv_resp_wrong_arity(&b, (struct kv_slice){"GET", 3});
    const char want[] = "-ERR unknown command 'FOO', with args beginning with: 'a' 'bc' \r\n"
                        "-ERR wrong number of arguments for 'get' command\r\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    kv_buf_free(&b);
}

static void test_integers_parse_strictly(void **state)
{
    int64_t v;
    (void)state;

    assert_true(kv_parse_i64("-9223372036854775808", 20, &v));
    assert_true(v == INT64_MIN);
    assert_true(kv_parse_i64("9223372036854775807", 19, &v));
    assert_true(v == INT64_MAX);
    assert_false(kv_parse_i64("9223372036854775808", 19, &v));
    assert_false(kv_parse_i64("01", 2, &v));
    assert_false(kv_parse_i64("+1", 2, &v));
    assert_false(kv_parse_i64(" 1", 2, &v));
    assert_false(kv_parse_i64("-0", 2, &v));
    assert_false(kv_parse_i64("", 0, &v));
    assert_true(kv_parse_i64("0", 1, &v));
    assert_int_equal(v, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk_command_points_into_the_buffer),
        cmocka_unit_test(test_pipelined_commands_come_one_at_a_time),
        cmocka_unit_test(test_partial_input_resumes_byte_by_byte),
        cmocka_unit_test(test_inline_commands_unquote_like_sdssplitargs),
        cmocka_unit_test(test_empty_multibulk_is_skipped),
        cmocka_unit_test(test_malformed_requests_get_redis_errors),
        cmocka_unit_test(test_huge_counts_need_more_without_allocating),
        cmocka_unit_test(test_replies_encode_resp2_and_resp3),
        cmocka_unit_test(test_unknown_command_and_arity_errors_match_redis),
        cmocka_unit_test(test_integers_parse_strictly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
