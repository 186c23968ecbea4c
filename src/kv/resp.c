/* RESP request parser and reply encoder (see resp.h). The parser follows
 * Redis's processMultibulkBuffer and processInlineBuffer (networking.c) and
 * sdssplitargs (sds.c), error texts included, with craft's limits. */
#include "kv/resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Redis's protocol errors, word for word. */
#define ERR_MULTIBULK_LEN "ERR Protocol error: invalid multibulk length"
#define ERR_BULK_LEN "ERR Protocol error: invalid bulk length"
#define ERR_MBULK_COUNT "ERR Protocol error: too big mbulk count string"
#define ERR_BULK_COUNT "ERR Protocol error: too big bulk count string"
#define ERR_INLINE_SIZE "ERR Protocol error: too big inline request"
#define ERR_QUOTES "ERR Protocol error: unbalanced quotes in request"
/* craft's own: Redis closes such a client without a reply. */
#define ERR_REQUEST_SIZE "ERR Protocol error: request too large"
#define ERR_BULK_CRLF "ERR Protocol error: bulk string not followed by CRLF"
#define ERR_NO_MEMORY "ERR Protocol error: out of memory"

/* "expected '$', got 'x'" names the byte, so it is written into the parser. */
static const char *expected_dollar_error(struct kv_resp_parser *p, unsigned char c)
{
    snprintf(p->error_text, sizeof(p->error_text), "ERR Protocol error: expected '$', got '%c'",
             c >= 32 && c < 127 ? (char)c : ' ');
    return p->error_text;
}

void kv_resp_limits_default(struct kv_resp_limits *l)
{
    l->max_args = KV_RESP_DEFAULT_MAX_ARGS;
    l->max_bulk = KV_RESP_DEFAULT_MAX_BULK;
    l->max_request = KV_RESP_DEFAULT_MAX_REQUEST;
}

void kv_resp_parser_init(struct kv_resp_parser *p, const struct kv_resp_limits *limits)
{
    memset(p, 0, sizeof(*p));
    if (limits != NULL)
        p->limits = *limits;
    else
        kv_resp_limits_default(&p->limits);
}

void kv_resp_parser_free(struct kv_resp_parser *p)
{
    free(p->argv);
    free(p->offsets);
    p->argv = NULL;
    p->offsets = NULL;
    p->argv_cap = 0;
}

/* Room for n arguments; grows by doubling so that a hostile count in a
 * header costs nothing until the arguments actually arrive. */
static int reserve_args(struct kv_resp_parser *p, size_t n)
{
    size_t cap = p->argv_cap ? p->argv_cap : 16;
    struct kv_slice *argv;
    size_t *offsets;

    if (n <= p->argv_cap)
        return 0;
    while (cap < n)
        cap *= 2;
    argv = realloc(p->argv, cap * sizeof(*argv));
    if (argv == NULL)
        return -1;
    p->argv = argv;
    offsets = realloc(p->offsets, cap * sizeof(*offsets));
    if (offsets == NULL)
        return -1;
    p->offsets = offsets;
    p->argv_cap = cap;
    return 0;
}

/* Parses a "<prefix><number>\r\n" line at s (len bytes available): 1 with
 * *value and *line_len, 0 if the line is incomplete, -1 if it is not a
 * number followed by CRLF. */
static int parse_count_line(const char *s, size_t len, long long *value, size_t *line_len)
{
    const char *nl = memchr(s, '\n', len);
    int64_t v;
    size_t digits;

    if (nl == NULL)
        return 0;
    *line_len = (size_t)(nl - s) + 1;
    if (*line_len < 3 || nl[-1] != '\r')
        return -1;
    digits = *line_len - 3;
    if (!kv_parse_i64(s + 1, digits, &v))
        return -1;
    *value = (long long)v;
    return 1;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Splits line[0, len) into arguments the way sdssplitargs does (spaces
 * separate; "double quotes" with \n \r \t \b \a \xHH escapes; 'single quotes'
 * with \'), unquoting in place. A NUL ends the line, as in Redis. 0 on
 * success, -1 on unbalanced quotes, -2 out of memory. */
static int split_inline(struct kv_resp_parser *p, char *line, size_t len)
{
    char *s = line, *end = line + len;

    p->argc = 0;
    for (;;) {
        bool in_double = false, in_single = false, done = false;
        char *start, *w;

        while (s < end && *s != '\0' && is_space(*s))
            s++;
        if (s == end || *s == '\0')
            return 0;
        start = w = s;
        while (!done) {
            char c = s < end ? *s : '\0';
            char next = s + 1 < end ? s[1] : '\0';
            if (in_double) {
                if (s >= end || c == '\0')
                    return -1;
                if (c == '\\' && next == 'x' && s + 3 < end && hex_value(s[2]) >= 0 &&
                    hex_value(s[3]) >= 0) {
                    *w++ = (char)(hex_value(s[2]) * 16 + hex_value(s[3]));
                    s += 3;
                } else if (c == '\\' && next != '\0') {
                    char e;
                    s++;
                    switch (*s) {
                    case 'n':
                        e = '\n';
                        break;
                    case 'r':
                        e = '\r';
                        break;
                    case 't':
                        e = '\t';
                        break;
                    case 'b':
                        e = '\b';
                        break;
                    case 'a':
                        e = '\a';
                        break;
                    default:
                        e = *s;
                        break;
                    }
                    *w++ = e;
                } else if (c == '"') {
                    /* The closing quote must be followed by a space or the end. */
                    if (next != '\0' && !is_space(next))
                        return -1;
                    done = true;
                } else {
                    *w++ = c;
                }
            } else if (in_single) {
                if (s >= end || c == '\0')
                    return -1;
                if (c == '\\' && next == '\'') {
                    s++;
                    *w++ = '\'';
                } else if (c == '\'') {
                    if (next != '\0' && !is_space(next))
                        return -1;
                    done = true;
                } else {
                    *w++ = c;
                }
            } else {
                switch (c) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                case '\0':
                    done = true;
                    break;
                case '"':
                    in_double = true;
                    break;
                case '\'':
                    in_single = true;
                    break;
                default:
                    *w++ = c;
                    break;
                }
            }
            if (s < end && *s != '\0')
                s++;
            else if (!done && !in_double && !in_single)
                done = true;
        }
        if (reserve_args(p, p->argc + 1) != 0)
            return -2;
        p->argv[p->argc].ptr = start;
        p->argv[p->argc].len = (size_t)(w - start);
        p->argc++;
    }
}

enum kv_resp_status kv_resp_parse(struct kv_resp_parser *p, char *buf, size_t len, size_t *consumed)
{
    size_t skipped = 0;

    p->error = NULL;
    p->argc = 0;
    for (;;) {
        char *cmd = buf + skipped;
        size_t avail = len - skipped;
        long long count;
        size_t line_len;
        int rc;

        *consumed = skipped;
        if (p->pending == 0) {
            if (avail == 0)
                return KV_RESP_NEED_MORE;
            if (cmd[0] != '*') {
                char *nl =
                    memchr(cmd, '\n', avail < KV_RESP_MAX_INLINE ? avail : KV_RESP_MAX_INLINE);
                size_t n;
                if (nl == NULL) {
                    if (avail >= KV_RESP_MAX_INLINE)
                        goto err_inline_size;
                    return KV_RESP_NEED_MORE;
                }
                n = (size_t)(nl - cmd);
                rc = split_inline(p, cmd, n > 0 && cmd[n - 1] == '\r' ? n - 1 : n);
                if (rc == -1) {
                    p->error = ERR_QUOTES;
                    return KV_RESP_ERROR;
                }
                if (rc != 0)
                    goto err_no_memory;
                skipped += n + 1;
                if (p->argc == 0)
                    continue; /* an empty line: Redis skips it */
                *consumed = skipped;
                return KV_RESP_COMMAND;
            }
            rc = parse_count_line(cmd, avail < KV_RESP_MAX_INLINE ? avail : KV_RESP_MAX_INLINE,
                                  &count, &line_len);
            if (rc == 0) {
                if (avail >= KV_RESP_MAX_INLINE) {
                    p->error = ERR_MBULK_COUNT;
                    return KV_RESP_ERROR;
                }
                return KV_RESP_NEED_MORE;
            }
            if (rc < 0 || count > (long long)p->limits.max_args) {
                p->error = ERR_MULTIBULK_LEN;
                return KV_RESP_ERROR;
            }
            if (count <= 0) {
                skipped += line_len; /* "*0" and "*-1": nothing to run */
                continue;
            }
            p->pending = count;
            p->pos = line_len;
            p->parsed = 0;
        }
        /* Inside a multibulk command: p->pos bytes of it are scanned, p->parsed
         * arguments read (their offsets in p->offsets, lengths in p->argv). */
        while (p->pending > 0) {
            const char *at = cmd + p->pos;
            size_t left = avail - p->pos;
            size_t data;

            if (left == 0)
                return KV_RESP_NEED_MORE;
            if (at[0] != '$') {
                p->error = expected_dollar_error(p, (unsigned char)at[0]);
                goto err_reset;
            }
            rc = parse_count_line(at, left < KV_RESP_MAX_INLINE ? left : KV_RESP_MAX_INLINE, &count,
                                  &line_len);
            if (rc == 0) {
                if (left >= KV_RESP_MAX_INLINE) {
                    p->error = ERR_BULK_COUNT;
                    goto err_reset;
                }
                return KV_RESP_NEED_MORE;
            }
            if (rc < 0 || count < 0 || (unsigned long long)count > p->limits.max_bulk) {
                p->error = ERR_BULK_LEN;
                goto err_reset;
            }
            data = p->pos + line_len;
            if ((size_t)count + 2 > p->limits.max_request ||
                data > p->limits.max_request - (size_t)count - 2) {
                p->error = ERR_REQUEST_SIZE;
                goto err_reset;
            }
            if (avail < data + (size_t)count + 2)
                return KV_RESP_NEED_MORE;
            if (cmd[data + (size_t)count] != '\r' || cmd[data + (size_t)count + 1] != '\n') {
                p->error = ERR_BULK_CRLF;
                goto err_reset;
            }
            if (reserve_args(p, p->parsed + 1) != 0)
                goto err_no_memory;
            p->offsets[p->parsed] = data;
            p->argv[p->parsed].len = (size_t)count;
            p->parsed++;
            p->pending--;
            p->pos = data + (size_t)count + 2;
        }
        p->argc = p->parsed;
        for (size_t i = 0; i < p->argc; i++)
            p->argv[i].ptr = cmd + p->offsets[i];
        *consumed = skipped + p->pos;
        p->pos = 0;
        return KV_RESP_COMMAND;
    }

err_inline_size:
    p->error = ERR_INLINE_SIZE;
    return KV_RESP_ERROR;
err_no_memory:
    p->error = ERR_NO_MEMORY;
err_reset:
    p->pending = 0;
    p->pos = 0;
    p->parsed = 0;
    p->argc = 0;
    return KV_RESP_ERROR;
}

/* ------------------------------------------------------------------------
 * Replies.
 * ------------------------------------------------------------------------ */

/* Appends s with CR and LF turned into spaces (a line must stay one line). */
static int append_line(struct kv_buf *b, const char *s, size_t len)
{
    size_t start = b->len;
    if (kv_buf_append(b, s, len) != 0)
        return -1;
    for (size_t i = start; i < b->len; i++)
        if (b->data[i] == '\r' || b->data[i] == '\n')
            b->data[i] = ' ';
    return 0;
}

static int prefixed_number(struct kv_buf *b, char prefix, long long v)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%c%lld\r\n", prefix, v);
    return kv_buf_append(b, text, (size_t)n);
}

int kv_resp_simple(struct kv_buf *b, const char *s)
{
    kv_buf_append(b, "+", 1);
    append_line(b, s, strlen(s));
    return kv_buf_append(b, "\r\n", 2);
}

int kv_resp_error_len(struct kv_buf *b, const char *msg, size_t len)
{
    kv_buf_append(b, "-", 1);
    append_line(b, msg, len);
    return kv_buf_append(b, "\r\n", 2);
}

int kv_resp_error(struct kv_buf *b, const char *msg)
{
    return kv_resp_error_len(b, msg, strlen(msg));
}

int kv_resp_integer(struct kv_buf *b, int64_t v)
{
    return prefixed_number(b, ':', (long long)v);
}

int kv_resp_bulk(struct kv_buf *b, const void *p, size_t len)
{
    prefixed_number(b, '$', (long long)len);
    kv_buf_append(b, p, len);
    return kv_buf_append(b, "\r\n", 2);
}

int kv_resp_bulk_str(struct kv_buf *b, const char *s)
{
    return kv_resp_bulk(b, s, strlen(s));
}

int kv_resp_null(struct kv_buf *b, int proto)
{
    return proto >= 3 ? kv_buf_append(b, "_\r\n", 3) : kv_buf_append(b, "$-1\r\n", 5);
}

int kv_resp_null_array(struct kv_buf *b, int proto)
{
    return proto >= 3 ? kv_buf_append(b, "_\r\n", 3) : kv_buf_append(b, "*-1\r\n", 5);
}

int kv_resp_array(struct kv_buf *b, size_t n)
{
    return prefixed_number(b, '*', (long long)n);
}

int kv_resp_map(struct kv_buf *b, size_t n, int proto)
{
    return proto >= 3 ? prefixed_number(b, '%', (long long)n)
                      : prefixed_number(b, '*', (long long)(2 * n));
}

/* Redis quotes at most 128 bytes of the name and of the arguments. */
#define QUOTE_MAX 128

int kv_resp_unknown_command(struct kv_buf *b, size_t argc, const struct kv_slice *argv)
{
    char text[64 + 3 * QUOTE_MAX];
    size_t n = 0, args = 0;
    size_t name_len = argc > 0 ? argv[0].len : 0;

    if (name_len > QUOTE_MAX)
        name_len = QUOTE_MAX;
    n += (size_t)snprintf(text, sizeof(text), "ERR unknown command '");
    if (name_len > 0)
        memcpy(text + n, argv[0].ptr, name_len);
    n += name_len;
    memcpy(text + n, "', with args beginning with: ", 29);
    n += 29;
    for (size_t i = 1; i < argc && args < QUOTE_MAX; i++) {
        size_t take = argv[i].len < QUOTE_MAX - args ? argv[i].len : QUOTE_MAX - args;
        text[n++] = '\'';
        memcpy(text + n, argv[i].ptr, take);
        n += take;
        text[n++] = '\'';
        text[n++] = ' ';
        args += take + 3;
    }
    return kv_resp_error_len(b, text, n);
}

int kv_resp_wrong_arity(struct kv_buf *b, struct kv_slice name)
{
    char text[64 + QUOTE_MAX];
    size_t n = 0, len = name.len < QUOTE_MAX ? name.len : QUOTE_MAX;

    n += (size_t)snprintf(text, sizeof(text), "ERR wrong number of arguments for '");
    for (size_t i = 0; i < len; i++) {
        char c = name.ptr[i];
        text[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    memcpy(text + n, "' command", 9);
    n += 9;
    return kv_resp_error_len(b, text, n);
}
