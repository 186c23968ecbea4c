/* RESP, the Redis protocol: an incremental request parser and a reply
 * encoder (https://redis.io/docs/reference/protocol-spec/).
 *
 * Requests come as arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
 * or inline ("GET k\r\n", as typed into telnet and sent by redis-cli for some
 * commands). The parser takes whatever bytes a connection has read so far,
 * returns one command at a time (call again for the next one of a pipeline),
 * and remembers how far it got into an incomplete command so that a large
 * command arriving in many reads is scanned once. Arguments point into the
 * caller's buffer (zero-copy); inline arguments are unquoted in place.
 *
 * Every byte is hostile: counts, lengths and the whole request are bounded by
 * kv_resp_limits, and a violation is a protocol error carrying Redis's own
 * message, after which the connection should send it and close (as Redis
 * does). */
#ifndef CRAFT_KV_RESP_H
#define CRAFT_KV_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/buf.h"

/* Defaults; Redis's own are 1024*1024 arguments, 512 MB bulks, 64 KB inline. */
#define KV_RESP_DEFAULT_MAX_ARGS (1024 * 1024)
#define KV_RESP_DEFAULT_MAX_BULK (4u * 1024 * 1024)
#define KV_RESP_DEFAULT_MAX_REQUEST (16u * 1024 * 1024)
#define KV_RESP_MAX_INLINE (64 * 1024)

struct kv_resp_limits {
    size_t max_args;    /* arguments per command ("invalid multibulk length") */
    size_t max_bulk;    /* bytes per argument ("invalid bulk length") */
    size_t max_request; /* bytes per command, framing included */
};

void kv_resp_limits_default(struct kv_resp_limits *l);

enum kv_resp_status {
    KV_RESP_COMMAND = 0,   /* one command parsed: see argc/argv */
    KV_RESP_NEED_MORE = 1, /* the buffer ends inside a command: read more */
    KV_RESP_ERROR = 2,     /* protocol error: reply error, then close */
};

/* Per-connection parser state. */
struct kv_resp_parser {
    struct kv_resp_limits limits;
    /* The last command: argv[i] points into the buffer given to
     * kv_resp_parse, valid until that buffer changes. */
    size_t argc;
    struct kv_slice *argv;
    /* Redis's error text without '-' and CRLF ("ERR Protocol error: ..."). */
    const char *error;
    /* Internal: progress into an incomplete multibulk command. */
    size_t argv_cap;
    size_t pos;        /* bytes of the current command scanned so far */
    long long pending; /* arguments still to read; 0: between commands */
    size_t parsed;     /* arguments read so far */
    size_t *offsets;   /* argument offsets (from the command's start) while incomplete */
    char error_text[64];
};

/* Zeroes p and sets its limits (NULL: the defaults). */
void kv_resp_parser_init(struct kv_resp_parser *p, const struct kv_resp_limits *limits);
void kv_resp_parser_free(struct kv_resp_parser *p);

/* Parses the next command from buf[0, len), which must start where the last
 * call's *consumed ended (the caller drops consumed bytes and may append or
 * move the rest between calls, keeping its contents).
 *
 * KV_RESP_COMMAND: p->argc and p->argv hold the command; *consumed bytes
 *   belong to it (and to any empty lines before it).
 * KV_RESP_NEED_MORE: *consumed bytes (empty lines, empty arrays) may be
 *   dropped; call again with more data.
 * KV_RESP_ERROR: p->error says why.
 * buf is modified only inside a complete inline command (unquoting). */
enum kv_resp_status kv_resp_parse(struct kv_resp_parser *p, char *buf, size_t len,
                                  size_t *consumed);

/* Reply encoding. proto is 2 or 3 (negotiated with HELLO). Each returns 0, or
 * -1 once the buffer has failed to grow (see buf.h). Errors and simple
 * strings have CR and LF replaced by spaces, as Redis does. */
int kv_resp_simple(struct kv_buf *b, const char *s);
/* msg starts with the error code: "ERR syntax error", "WRONGTYPE ...". */
int kv_resp_error(struct kv_buf *b, const char *msg);
int kv_resp_error_len(struct kv_buf *b, const char *msg, size_t len);
int kv_resp_integer(struct kv_buf *b, int64_t v);
int kv_resp_bulk(struct kv_buf *b, const void *p, size_t len);
int kv_resp_bulk_str(struct kv_buf *b, const char *s);
/* The null bulk string: "$-1" in RESP2, "_" in RESP3. */
int kv_resp_null(struct kv_buf *b, int proto);
/* The null array: "*-1" in RESP2, "_" in RESP3. */
int kv_resp_null_array(struct kv_buf *b, int proto);
int kv_resp_array(struct kv_buf *b, size_t n);
/* A map of n pairs: "%n" in RESP3, an array of 2n elements in RESP2. */
int kv_resp_map(struct kv_buf *b, size_t n, int proto);
/* RESP3 verbatim/boolean/double are not needed by craftkv. */

/* Redis's reply to an unknown command:
 * "-ERR unknown command 'x', with args beginning with: 'a' 'b' ". */
int kv_resp_unknown_command(struct kv_buf *b, size_t argc, const struct kv_slice *argv);
/* "-ERR wrong number of arguments for 'get' command" (name lower-cased). */
int kv_resp_wrong_arity(struct kv_buf *b, struct kv_slice name);

#endif /* CRAFT_KV_RESP_H */
