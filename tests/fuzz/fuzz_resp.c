/* libFuzzer target for craftkv's RESP parser (src/kv/resp.c) and the
 * replicated command codec (src/kv/command.c).
 *
 * The input is fed to a parser in pieces (the first byte picks the piece
 * size) the way a connection reads it; every command parsed is turned into
 * a write command when it is one, encoded into a batch, and the batch must
 * decode again. The raw input is also decoded as a batch and as replies.
 * Any crash or sanitizer report is a bug.
 *
 * Build: cmake -DCRAFT_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_resp). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv/command.h"
#include "kv/resp.h"

static void check(int ok)
{
    if (!ok)
        abort();
}

static void fuzz_codec(const uint8_t *data, size_t len)
{
    struct kv_batch_reader r;
    struct kv_cmd cmd;
    struct kv_reply reply;
    struct kv_buf out;
    size_t pos = 0;

    if (kv_batch_reader_init(&r, data, len) == 0)
        while (kv_batch_reader_next(&r, &cmd) == 1)
            check(cmd.argc > 0);
    kv_batch_reader_free(&r);
    kv_buf_init(&out);
    while (kv_reply_next(data, len, &pos, &reply) == 1)
        kv_reply_to_resp(&reply, 3, &out);
    kv_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    struct kv_resp_limits limits = {.max_args = 64, .max_bulk = 512, .max_request = 4096};
    struct kv_resp_parser p;
    struct kv_buf batch, conn;
    size_t step, fed = 0;

    if (len < 1)
        return 0;
    fuzz_codec(data + 1, len - 1);
    step = (size_t)data[0] % 17 + 1;
    data++;
    len--;
    kv_resp_parser_init(&p, &limits);
    kv_buf_init(&batch);
    kv_buf_init(&conn);
    kv_batch_init(&batch);
    /* conn is the connection's read buffer, exactly sized so that ASan sees
     * a read past its end. */
    while (fed < len) {
        size_t take = len - fed < step ? len - fed : step;
        enum kv_resp_status st;
        size_t consumed;
        char *copy;

        kv_buf_append(&conn, data + fed, take);
        fed += take;
        copy = malloc(conn.len ? conn.len : 1);
        check(copy != NULL);
        memcpy(copy, conn.data, conn.len);
        for (;;) {
            struct kv_cmd cmd;
            char err[128];
            st = kv_resp_parse(&p, copy, conn.len, &consumed);
            check(consumed <= conn.len);
            if (st != KV_RESP_COMMAND) {
                kv_buf_consume(&conn, consumed);
                break;
            }
            check(p.argc > 0);
            if (kv_cmd_parse(p.argc, p.argv, &cmd, err, sizeof(err)) == 0)
                kv_batch_add(&batch, &cmd);
            memmove(copy, copy + consumed, conn.len - consumed);
            kv_buf_consume(&conn, consumed);
        }
        free(copy);
        if (st == KV_RESP_ERROR)
            break;
    }
    {
        struct kv_batch_reader r;
        check(batch.failed || kv_batch_reader_init(&r, batch.data, batch.len) == 0);
        if (!batch.failed)
            kv_batch_reader_free(&r);
    }
    kv_buf_free(&batch);
    kv_buf_free(&conn);
    kv_resp_parser_free(&p);
    return 0;
}
