/* Growable byte buffers and borrowed byte slices, the currency of craftkv's
 * protocol encoders (resp.c, http.c) and its command codec (command.c).
 *
 * A kv_buf owns its bytes (malloc'd). An allocation failure is sticky: the
 * buffer keeps what it had, sets failed, and every later append is a no-op
 * returning -1, so an encoder may append a whole reply and check once. */
#ifndef CRAFT_KV_BUF_H
#define CRAFT_KV_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes borrowed from someone else's buffer; not NUL-terminated. */
struct kv_slice {
    const char *ptr;
    size_t len;
};

struct kv_buf {
    char *data; /* malloc'd, cap bytes; NULL until the first append */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed: the contents are incomplete */
};

void kv_buf_init(struct kv_buf *b);
/* Frees the bytes and re-initialises b. */
void kv_buf_free(struct kv_buf *b);
/* Empties b, keeping its memory (and clearing failed). */
void kv_buf_reset(struct kv_buf *b);
/* Makes room for n more bytes. 0 or -1 (out of memory, or failed before). */
int kv_buf_reserve(struct kv_buf *b, size_t n);
int kv_buf_append(struct kv_buf *b, const void *p, size_t n);
int kv_buf_append_str(struct kv_buf *b, const char *s);
int kv_buf_append_u8(struct kv_buf *b, uint8_t v);
int kv_buf_append_u32(struct kv_buf *b, uint32_t v); /* little-endian */
int kv_buf_append_u64(struct kv_buf *b, uint64_t v); /* little-endian */
/* Appends the decimal form of v. */
int kv_buf_append_i64(struct kv_buf *b, int64_t v);
/* Drops the first n bytes (n <= len), moving the rest to the front. */
void kv_buf_consume(struct kv_buf *b, size_t n);
/* Hands the bytes to the caller (free() them); b is left empty. */
char *kv_buf_take(struct kv_buf *b, size_t *len);

/* True if the slice holds exactly the NUL-terminated s, ignoring ASCII case. */
bool kv_slice_equal_nocase(struct kv_slice a, const char *s);

/* Redis's strict integer syntax (string2ll): optional '-', no '+', no
 * spaces, no leading zeros, within int64. true and *out on success. */
bool kv_parse_i64(const char *p, size_t len, int64_t *out);

#endif /* CRAFT_KV_BUF_H */
