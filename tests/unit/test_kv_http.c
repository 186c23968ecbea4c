/* craftkv's HTTP parsing and responses (src/kv/http.c): keep-alive,
 * pipelining, partial input, limits and malformed requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kv/http.h"

static void test_pipelined_keep_alive_requests_come_one_at_a_time(void **state)
{
    const char text[] = "PUT /kv/a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                        "GET /kv/k?stale=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                        "DELETE /kv/k HTTP/1.1\r\nConnection: close\r\n\r\n";
    struct kv_http_conn c;
    size_t off = 0, consumed, len = strlen(text);
    (void)state;

    kv_http_conn_init(&c, NULL);
    assert_int_equal(kv_http_feed(&c, text, len, &consumed), KV_HTTP_REQUEST);
    assert_int_equal(c.request.method, KV_HTTP_PUT);
    assert_string_equal(c.request.path.data, "/kv/a/b");
    assert_int_equal(c.request.body.len, 5);
    assert_memory_equal(c.request.body.data, "hello", 5);
    assert_true(c.request.keep_alive);
    assert_false(c.request.stale);
    off += consumed;
    assert_int_equal(kv_http_feed(&c, text + off, len - off, &consumed), KV_HTTP_REQUEST);
    assert_int_equal(c.request.method, KV_HTTP_GET);
    assert_string_equal(c.request.path.data, "/kv/k");
    assert_string_equal(c.request.url.data, "/kv/k?stale=1");
    assert_true(c.request.stale);
    assert_int_equal(c.request.body.len, 0);
    off += consumed;
    assert_int_equal(kv_http_feed(&c, text + off, len - off, &consumed), KV_HTTP_REQUEST);
    assert_int_equal(c.request.method, KV_HTTP_DELETE);
    assert_string_equal(c.request.method_name, "DELETE");
    assert_false(c.request.keep_alive);
    off += consumed;
    assert_int_equal(off, len);
    kv_http_conn_free(&c);
}

static void test_partial_input_and_chunked_bodies(void **state)
{
    const char text[] = "POST /members/2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    struct kv_http_conn c;
    size_t consumed;
    (void)state;

    kv_http_conn_init(&c, NULL);
    for (size_t i = 0; i + 1 < sizeof(text) - 1; i++) {
        assert_int_equal(kv_http_feed(&c, text + i, 1, &consumed), KV_HTTP_NEED_MORE);
        assert_int_equal(consumed, 1);
    }
    assert_int_equal(kv_http_feed(&c, text + sizeof(text) - 2, 1, &consumed), KV_HTTP_REQUEST);
    assert_int_equal(c.request.method, KV_HTTP_POST);
    assert_string_equal(c.request.path.data, "/members/2");
    assert_int_equal(c.request.body.len, 5);
    assert_memory_equal(c.request.body.data, "abcde", 5);
    kv_http_conn_free(&c);
}

static void test_http10_closes_unless_asked(void **state)
{
    const char text[] = "GET /status HTTP/1.0\r\n\r\n";
    struct kv_http_conn c;
    size_t consumed;
    (void)state;

    kv_http_conn_init(&c, NULL);
    assert_int_equal(kv_http_feed(&c, text, strlen(text), &consumed), KV_HTTP_REQUEST);
    assert_false(c.request.keep_alive);
    kv_http_conn_free(&c);
}

static void assert_rejected(const char *text, const struct kv_http_limits *limits, int status)
{
    struct kv_http_conn c;
    size_t consumed;

    kv_http_conn_init(&c, limits);
    if (kv_http_feed(&c, text, strlen(text), &consumed) != KV_HTTP_ERROR)
        fail_msg("accepted: %s", text);
    assert_int_equal(c.error_status, status);
    assert_non_null(c.error);
    /* The connection stays failed. */
    assert_int_equal(kv_http_feed(&c, "GET / HTTP/1.1\r\n\r\n", 18, &consumed), KV_HTTP_ERROR);
    kv_http_conn_free(&c);
}

static void test_limits_and_malformed_requests(void **state)
{
    struct kv_http_limits small = {.max_header_bytes = 64, .max_body_bytes = 4};
    (void)state;

    assert_rejected("PUT /kv/a HTTP/1.1\r\nContent-Length: 5\r\n\r\n", &small, 413);
    assert_rejected("PUT /kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789",
                    &small, 413);
    assert_rejected("GET /kv/a HTTP/1.1\r\nX-Long: "
                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                    &small, 431);
    assert_rejected("GET /kv/%zz HTTP/1.1\r\n\r\n", NULL, 400);
    assert_rejected("GET /kv/%4 HTTP/1.1\r\n\r\n", NULL, 400);
    assert_rejected("BLAH\r\n\r\n", NULL, 400);
    assert_rejected("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", NULL, 400);
    assert_rejected("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", NULL, 400);
    assert_rejected("GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n", NULL, 400);
    assert_rejected("GET / HTTP/1.1\r\nBad Header\r\n\r\n", NULL, 400);
}

static void test_response_has_length_and_connection(void **state)
{
    struct kv_buf b;
    const char want[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 3\r\nConnection: close\r\nX-Raft-Index: 7\r\n\r\nno\n";
    (void)state;

    kv_buf_init(&b);
    kv_http_response(&b, 404, "text/plain", "no\n", 3, false, "X-Raft-Index: 7\r\n");
    assert_false(b.failed);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    kv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelined_keep_alive_requests_come_one_at_a_time),
        cmocka_unit_test(test_partial_input_and_chunked_bodies),
        cmocka_unit_test(test_http10_closes_unless_asked),
        cmocka_unit_test(test_limits_and_malformed_requests),
        cmocka_unit_test(test_response_has_length_and_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
