/* libFuzzer target for craftkv's HTTP request parsing (src/kv/http.c).
 *
 * The input is fed in pieces (the first byte picks the piece size) as a
 * connection reads it, each complete request answered with a response;
 * every request's buffers must hold what the limits allow and no more.
 * Any crash or sanitizer report is a bug.
 *
 * Build: cmake -DCRAFT_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_http). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv/http.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    struct kv_http_limits limits = {.max_header_bytes = 512, .max_body_bytes = 256};
    struct kv_http_conn c;
    struct kv_buf out;
    size_t step, fed = 0;

    if (len < 1)
        return 0;
    step = (size_t)data[0] % 23 + 1;
    data++;
    len--;
    kv_http_conn_init(&c, &limits);
    kv_buf_init(&out);
    while (fed < len) {
        size_t take = len - fed < step ? len - fed : step;
        char *piece = malloc(take);
        size_t off = 0, consumed;
        enum kv_http_status st = KV_HTTP_NEED_MORE;

        check(piece != NULL);
        memcpy(piece, data + fed, take);
        fed += take;
        while (off < take) {
            st = kv_http_feed(&c, piece + off, take - off, &consumed);
            check(consumed <= take - off);
            off += consumed;
            if (st != KV_HTTP_REQUEST)
                break;
            check(c.request.body.len <= limits.max_body_bytes);
            check(c.request.url.len <= limits.max_header_bytes);
            check(c.request.path.len <= c.request.url.len);
            kv_buf_reset(&out);
            kv_http_response(&out, 200, "text/plain", c.request.body.data, c.request.body.len,
                             c.request.keep_alive, NULL);
        }
        free(piece);
        if (st == KV_HTTP_ERROR) {
            check(c.error_status == 400 || c.error_status == 413 || c.error_status == 431 ||
                  c.error_status == 500);
            break;
        }
    }
    kv_buf_free(&out);
    kv_http_conn_free(&c);
    return 0;
}
