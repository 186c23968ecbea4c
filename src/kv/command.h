/* The replicated commands of craftkv: what a raft proposal carries, and what
 * applying it answers.
 *
 * Only writes go through the log (reads are served by ReadIndex, see
 * store.h). A connection's pipeline of writes becomes ONE proposal, a batch:
 *
 *   batch   = magic 'K' (u8), version 1 (u8), count (u32), count x command
 *   command = op (u8), flags (u8), argc (u32), [delta (i64) if INCRBY],
 *             argc x (len (u32), bytes)
 *
 * integers little-endian. Decoding is bounded and strict: a batch with an
 * unknown op, a wrong argument count, an oversized key or value, or any
 * trailing byte is rejected whole, before anything is applied.
 *
 * Applying a batch answers each command with one reply, in order, encoded
 * compactly into the entry's craft_result (data, len; value = count):
 *
 *   reply = '+' (OK) | '_' (null) | ':' i64 | '-' len (u16) text
 *
 * kv_reply_to_resp() turns a reply into RESP2 or RESP3 bytes (the null
 * differs), so one replicated result serves either protocol, and HTTP. */
#ifndef CRAFT_KV_COMMAND_H
#define CRAFT_KV_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv/buf.h"

/* LMDB's largest key is 511 bytes; craftkv keeps a margin for its key prefix. */
#define KV_MAX_KEY_SIZE 500
#define KV_MAX_VALUE_SIZE (1024 * 1024)
#define KV_BATCH_MAGIC 'K'
#define KV_BATCH_VERSION 1
#define KV_BATCH_MAX_COMMANDS 65536
#define KV_CMD_MAX_ARGS (1024 * 1024)

enum kv_op {
    KV_OP_SET = 1,    /* key value; flags KV_SET_NX or KV_SET_XX -> OK or null */
    KV_OP_DEL = 2,    /* key... -> number deleted */
    KV_OP_INCRBY = 3, /* key; delta -> new value */
    KV_OP_APPEND = 4, /* key value -> new length */
    KV_OP_MSET = 5,   /* key value [key value...] -> OK */
    KV_OP_CAS = 6,    /* key expected new -> 1 if swapped, 0 if not (or absent) */
};

#define KV_SET_NX 0x1
#define KV_SET_XX 0x2
/* APPEND with its own limit on the resulting length, carried in delta (the
 * proposer's --max-value-size: in the log, so every replica agrees). */
#define KV_APPEND_LIMIT 0x4

/* One write command. argv borrows: from the client's request when parsed,
 * from the batch (and the reader's array) when decoded. */
struct kv_cmd {
    uint8_t op;
    uint8_t flags;
    int64_t delta; /* KV_OP_INCRBY only */
    size_t argc;
    const struct kv_slice *argv;
};

/* Turns a client's request (argv[0] is the command name, any case) into a
 * write command. 0: *out is a write (its argv borrows from argv); 1: not a
 * write command (the caller handles it); -1: the request is wrong, err gets
 * Redis's error text without '-' ("ERR syntax error"). Checks the key and
 * value limits. SET's EX/PX/EXAT/PXAT/KEEPTTL/GET are refused: keys never
 * expire in craftkv. */
int kv_cmd_parse(size_t argc, const struct kv_slice *argv, struct kv_cmd *out, char *err,
                 size_t err_cap);

/* Checks cmd's keys against max_key and its values against max_value
 * bytes: 0, or -1 with Redis-style text in err ("ERR key too large (max N
 * bytes)"). kv_cmd_parse checks the built-in limits already. */
int kv_cmd_check_limits(const struct kv_cmd *cmd, size_t max_key, size_t max_value, char *err,
                        size_t err_cap);

/* Starts an empty batch in b (which should be empty). */
int kv_batch_init(struct kv_buf *b);
/* Appends cmd to the batch in b. 0, or -1 (out of memory, or the batch is
 * full: KV_BATCH_MAX_COMMANDS). */
int kv_batch_add(struct kv_buf *b, const struct kv_cmd *cmd);
/* The number of commands in the batch in b. */
uint32_t kv_batch_count(const struct kv_buf *b);

/* Reads a batch. data is borrowed for the reader's life. */
struct kv_batch_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
    uint32_t count; /* commands in the batch */
    uint32_t next;  /* commands read so far */
    struct kv_slice *argv;
    size_t argv_cap;
};

/* Validates the whole batch. 0, or -1 if it is malformed (nothing may be
 * applied), -2 out of memory. The reader must be freed either way. */
int kv_batch_reader_init(struct kv_batch_reader *r, const void *data, size_t len);
/* 1 and the next command (valid until the next call), or 0 at the end. */
int kv_batch_reader_next(struct kv_batch_reader *r, struct kv_cmd *cmd);
void kv_batch_reader_free(struct kv_batch_reader *r);

/* Replies (see above). */
enum kv_reply_type {
    KV_REPLY_OK = '+',
    KV_REPLY_NULL = '_',
    KV_REPLY_INT = ':',
    KV_REPLY_ERR = '-',
};

struct kv_reply {
    uint8_t type;
    int64_t integer;       /* KV_REPLY_INT */
    struct kv_slice error; /* KV_REPLY_ERR: "ERR ...", borrowed from the result */
};

int kv_reply_ok(struct kv_buf *b);
int kv_reply_null(struct kv_buf *b);
int kv_reply_int(struct kv_buf *b, int64_t v);
/* text is cut to 65,535 bytes. */
int kv_reply_err(struct kv_buf *b, const char *text);

/* Walks the replies in data[0, len) (a craft_result's data). *pos starts at
 * 0. 1 and *out, 0 at the end, -1 if malformed. */
int kv_reply_next(const void *data, size_t len, size_t *pos, struct kv_reply *out);
/* Appends the reply as RESP (proto 2 or 3). */
int kv_reply_to_resp(const struct kv_reply *reply, int proto, struct kv_buf *out);

#endif /* CRAFT_KV_COMMAND_H */
