/* The replicated command codec and the compact replies (see command.h). */
#include "kv/command.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "kv/resp.h"

#define BATCH_HEADER 6 /* magic, version, count */
#define ERR_NOT_INTEGER "ERR value is not an integer or out of range"

static void set_error(char *err, size_t err_cap, const char *text)
{
    if (err_cap > 0)
        snprintf(err, err_cap, "%s", text);
}

static void set_arity_error(char *err, size_t err_cap, struct kv_slice name)
{
    struct kv_buf b;
    kv_buf_init(&b);
    kv_resp_wrong_arity(&b, name);
    /* Without the leading '-' and the trailing CRLF. */
    if (!b.failed && b.len >= 3 && err_cap > 0)
        snprintf(err, err_cap, "%.*s", (int)(b.len - 3), b.data + 1);
    else
        set_error(err, err_cap, "ERR wrong number of arguments");
    kv_buf_free(&b);
}

/* Key and value limits, checked where a client's request enters and again
 * where a batch is decoded. Values are every argument but the keys. */
static bool is_key_arg(uint8_t op, size_t i)
{
    switch (op) {
    case KV_OP_DEL:
        return true;
    case KV_OP_MSET:
        return i % 2 == 0;
    default:
        return i == 0;
    }
}

int kv_cmd_check_limits(const struct kv_cmd *cmd, size_t max_key, size_t max_value, char *err,
                        size_t err_cap)
{
    for (size_t i = 0; i < cmd->argc; i++) {
        if (is_key_arg(cmd->op, i) && cmd->argv[i].len > max_key) {
            snprintf(err, err_cap, "ERR key too large (max %zu bytes)", max_key);
            return -1;
        }
        if (!is_key_arg(cmd->op, i) && cmd->argv[i].len > max_value) {
            snprintf(err, err_cap, "ERR value too large (max %zu bytes)", max_value);
            return -1;
        }
    }
    return 0;
}

static int check_sizes(const struct kv_cmd *cmd, char *err, size_t err_cap)
{
    return kv_cmd_check_limits(cmd, KV_MAX_KEY_SIZE, KV_MAX_VALUE_SIZE, err, err_cap);
}

static int parse_set_options(size_t argc, const struct kv_slice *argv, struct kv_cmd *out,
                             char *err, size_t err_cap)
{
    for (size_t i = 3; i < argc; i++) {
        if (kv_slice_equal_nocase(argv[i], "nx") && !(out->flags & KV_SET_XX)) {
            out->flags |= KV_SET_NX;
        } else if (kv_slice_equal_nocase(argv[i], "xx") && !(out->flags & KV_SET_NX)) {
            out->flags |= KV_SET_XX;
        } else if (kv_slice_equal_nocase(argv[i], "ex") || kv_slice_equal_nocase(argv[i], "px") ||
                   kv_slice_equal_nocase(argv[i], "exat") ||
                   kv_slice_equal_nocase(argv[i], "pxat") ||
                   kv_slice_equal_nocase(argv[i], "keepttl") ||
                   kv_slice_equal_nocase(argv[i], "get")) {
            set_error(err, err_cap,
                      "ERR SET options EX, PX, EXAT, PXAT, KEEPTTL and GET are not supported "
                      "(craftkv keys never expire)");
            return -1;
        } else {
            set_error(err, err_cap, "ERR syntax error");
            return -1;
        }
    }
    return 0;
}

int kv_cmd_parse(size_t argc, const struct kv_slice *argv, struct kv_cmd *out, char *err,
                 size_t err_cap)
{
    struct kv_slice name;
    int64_t n;
    bool arity_ok;

    if (argc == 0)
        return 1;
    name = argv[0];
    memset(out, 0, sizeof(*out));
    out->argc = argc - 1;
    out->argv = argv + 1;
    if (kv_slice_equal_nocase(name, "set")) {
        out->op = KV_OP_SET;
        out->argc = 2;
        arity_ok = argc >= 3;
    } else if (kv_slice_equal_nocase(name, "del")) {
        out->op = KV_OP_DEL;
        arity_ok = argc >= 2;
    } else if (kv_slice_equal_nocase(name, "incr") || kv_slice_equal_nocase(name, "decr")) {
        out->op = KV_OP_INCRBY;
        out->delta = kv_slice_equal_nocase(name, "incr") ? 1 : -1;
        arity_ok = argc == 2;
    } else if (kv_slice_equal_nocase(name, "incrby") || kv_slice_equal_nocase(name, "decrby")) {
        out->op = KV_OP_INCRBY;
        out->argc = 1;
        arity_ok = argc == 3;
    } else if (kv_slice_equal_nocase(name, "append")) {
        out->op = KV_OP_APPEND;
        arity_ok = argc == 3;
    } else if (kv_slice_equal_nocase(name, "mset")) {
        out->op = KV_OP_MSET;
        arity_ok = argc >= 3 && argc % 2 == 1;
    } else if (kv_slice_equal_nocase(name, "cas")) {
        out->op = KV_OP_CAS;
        arity_ok = argc == 4;
    } else {
        return 1;
    }
    if (!arity_ok || argc - 1 > KV_CMD_MAX_ARGS) {
        set_arity_error(err, err_cap, name);
        return -1;
    }
    if (out->op == KV_OP_SET && parse_set_options(argc, argv, out, err, err_cap) != 0)
        return -1;
    if (out->op == KV_OP_INCRBY && argc == 3) {
        if (!kv_parse_i64(argv[2].ptr, argv[2].len, &n)) {
            set_error(err, err_cap, ERR_NOT_INTEGER);
            return -1;
        }
        if (kv_slice_equal_nocase(name, "decrby")) {
            if (n == INT64_MIN) {
                set_error(err, err_cap, "ERR decrement would overflow");
                return -1;
            }
            n = -n;
        }
        out->delta = n;
    }
    return check_sizes(out, err, err_cap);
}

int kv_batch_init(struct kv_buf *b)
{
    kv_buf_append_u8(b, KV_BATCH_MAGIC);
    kv_buf_append_u8(b, KV_BATCH_VERSION);
    return kv_buf_append_u32(b, 0);
}

uint32_t kv_batch_count(const struct kv_buf *b)
{
    return b->len >= BATCH_HEADER ? le_get_u32((const uint8_t *)b->data + 2) : 0;
}

int kv_batch_add(struct kv_buf *b, const struct kv_cmd *cmd)
{
    uint32_t count = kv_batch_count(b);

    if (b->len < BATCH_HEADER || count >= KV_BATCH_MAX_COMMANDS || cmd->argc > KV_CMD_MAX_ARGS)
        return -1;
    kv_buf_append_u8(b, cmd->op);
    kv_buf_append_u8(b, cmd->flags);
    kv_buf_append_u32(b, (uint32_t)cmd->argc);
    if (cmd->op == KV_OP_INCRBY || (cmd->op == KV_OP_APPEND && (cmd->flags & KV_APPEND_LIMIT)))
        kv_buf_append_u64(b, (uint64_t)cmd->delta);
    for (size_t i = 0; i < cmd->argc; i++) {
        kv_buf_append_u32(b, (uint32_t)cmd->argv[i].len);
        kv_buf_append(b, cmd->argv[i].ptr, cmd->argv[i].len);
    }
    if (b->failed)
        return -1;
    le_put_u32((uint8_t *)b->data + 2, count + 1);
    return 0;
}

/* Does argc suit op (and flags)? */
static bool shape_ok(uint8_t op, uint8_t flags, uint32_t argc)
{
    switch (op) {
    case KV_OP_SET:
        return argc == 2 && (flags & ~(KV_SET_NX | KV_SET_XX)) == 0 &&
               flags != (KV_SET_NX | KV_SET_XX);
    case KV_OP_DEL:
        return argc >= 1 && flags == 0;
    case KV_OP_INCRBY:
        return argc == 1 && flags == 0;
    case KV_OP_APPEND:
        return argc == 2 && (flags & ~KV_APPEND_LIMIT) == 0;
    case KV_OP_MSET:
        return argc >= 2 && argc % 2 == 0 && flags == 0;
    case KV_OP_CAS:
        return argc == 3 && flags == 0;
    default:
        return false;
    }
}

/* Reads the command at r->pos into cmd (argv into r->argv when store is
 * true). 0, -1 malformed, -2 out of memory. */
static int read_command(struct kv_batch_reader *r, struct kv_cmd *cmd, bool store)
{
    const uint8_t *p = r->data;
    size_t pos = r->pos, len = r->len;
    uint32_t argc;

    if (len - pos < 6)
        return -1;
    cmd->op = p[pos];
    cmd->flags = p[pos + 1];
    argc = le_get_u32(p + pos + 2);
    pos += 6;
    cmd->delta = 0;
    if (!shape_ok(cmd->op, cmd->flags, argc) || argc > KV_CMD_MAX_ARGS || argc > (len - pos) / 4)
        return -1;
    if (cmd->op == KV_OP_INCRBY || (cmd->op == KV_OP_APPEND && (cmd->flags & KV_APPEND_LIMIT))) {
        if (len - pos < 8)
            return -1;
        cmd->delta = (int64_t)le_get_u64(p + pos);
        pos += 8;
        if (cmd->op == KV_OP_APPEND && (cmd->delta <= 0 || cmd->delta > KV_MAX_VALUE_SIZE))
            return -1;
    }
    if (store && argc > r->argv_cap) {
        struct kv_slice *argv = realloc(r->argv, argc * sizeof(*argv));
        if (argv == NULL)
            return -2;
        r->argv = argv;
        r->argv_cap = argc;
    }
    for (uint32_t i = 0; i < argc; i++) {
        uint32_t n;
        if (len - pos < 4)
            return -1;
        n = le_get_u32(p + pos);
        pos += 4;
        if (n > len - pos)
            return -1;
        if (store) {
            r->argv[i].ptr = (const char *)p + pos;
            r->argv[i].len = n;
        } else if (n > (is_key_arg(cmd->op, i) ? KV_MAX_KEY_SIZE : KV_MAX_VALUE_SIZE)) {
            return -1;
        }
        pos += n;
    }
    cmd->argc = argc;
    cmd->argv = store ? r->argv : NULL;
    r->pos = pos;
    return 0;
}

int kv_batch_reader_init(struct kv_batch_reader *r, const void *data, size_t len)
{
    struct kv_cmd cmd;
    int rc = 0;

    memset(r, 0, sizeof(*r));
    r->data = data;
    r->len = len;
    if (len < BATCH_HEADER || r->data[0] != KV_BATCH_MAGIC || r->data[1] != KV_BATCH_VERSION)
        return -1;
    r->count = le_get_u32(r->data + 2);
    if (r->count > KV_BATCH_MAX_COMMANDS)
        return -1;
    /* A first pass validates everything, so that a bad command late in the
     * batch cannot leave the earlier ones applied. */
    r->pos = BATCH_HEADER;
    for (uint32_t i = 0; i < r->count && rc == 0; i++)
        rc = read_command(r, &cmd, false);
    if (rc == 0 && r->pos != len)
        rc = -1;
    r->pos = BATCH_HEADER;
    return rc;
}

int kv_batch_reader_next(struct kv_batch_reader *r, struct kv_cmd *cmd)
{
    if (r->next >= r->count)
        return 0;
    if (read_command(r, cmd, true) != 0)
        return -1;
    r->next++;
    return 1;
}

void kv_batch_reader_free(struct kv_batch_reader *r)
{
    free(r->argv);
    r->argv = NULL;
    r->argv_cap = 0;
}

int kv_reply_ok(struct kv_buf *b)
{
    return kv_buf_append_u8(b, KV_REPLY_OK);
}

int kv_reply_null(struct kv_buf *b)
{
    return kv_buf_append_u8(b, KV_REPLY_NULL);
}

int kv_reply_int(struct kv_buf *b, int64_t v)
{
    kv_buf_append_u8(b, KV_REPLY_INT);
    return kv_buf_append_u64(b, (uint64_t)v);
}

int kv_reply_err(struct kv_buf *b, const char *text)
{
    size_t len = strlen(text);
    uint8_t raw[2];

    if (len > UINT16_MAX)
        len = UINT16_MAX;
    le_put_u16(raw, (uint16_t)len);
    kv_buf_append_u8(b, KV_REPLY_ERR);
    kv_buf_append(b, raw, 2);
    return kv_buf_append(b, text, len);
}

int kv_reply_next(const void *data, size_t len, size_t *pos, struct kv_reply *out)
{
    const uint8_t *p = data;
    size_t at = *pos;

    if (at >= len)
        return 0;
    memset(out, 0, sizeof(*out));
    out->type = p[at++];
    switch (out->type) {
    case KV_REPLY_OK:
    case KV_REPLY_NULL:
        break;
    case KV_REPLY_INT:
        if (len - at < 8)
            return -1;
        out->integer = (int64_t)le_get_u64(p + at);
        at += 8;
        break;
    case KV_REPLY_ERR:
        if (len - at < 2)
            return -1;
        out->error.len = le_get_u16(p + at);
        at += 2;
        if (out->error.len > len - at)
            return -1;
        out->error.ptr = (const char *)p + at;
        at += out->error.len;
        break;
    default:
        return -1;
    }
    *pos = at;
    return 1;
}

int kv_reply_to_resp(const struct kv_reply *reply, int proto, struct kv_buf *out)
{
    switch (reply->type) {
    case KV_REPLY_OK:
        return kv_resp_simple(out, "OK");
    case KV_REPLY_NULL:
        return kv_resp_null(out, proto);
    case KV_REPLY_INT:
        return kv_resp_integer(out, reply->integer);
    default:
        return kv_resp_error_len(out, reply->error.ptr, reply->error.len);
    }
}
