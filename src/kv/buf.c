/* Growable byte buffers (see buf.h). */
#include "kv/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"

void kv_buf_init(struct kv_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->failed = false;
}

void kv_buf_free(struct kv_buf *b)
{
    free(b->data);
    kv_buf_init(b);
}

void kv_buf_reset(struct kv_buf *b)
{
    b->len = 0;
    b->failed = false;
}

int kv_buf_reserve(struct kv_buf *b, size_t n)
{
    size_t cap;
    char *data;

    if (b->failed)
        return -1;
    if (n <= b->cap - b->len)
        return 0;
    if (n > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return -1;
    }
    cap = b->cap ? b->cap : 64;
    while (cap - b->len < n)
        cap *= 2;
    data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = true;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

int kv_buf_append(struct kv_buf *b, const void *p, size_t n)
{
    if (kv_buf_reserve(b, n) != 0)
        return -1;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int kv_buf_append_str(struct kv_buf *b, const char *s)
{
    return kv_buf_append(b, s, strlen(s));
}

int kv_buf_append_u8(struct kv_buf *b, uint8_t v)
{
    return kv_buf_append(b, &v, 1);
}

int kv_buf_append_u32(struct kv_buf *b, uint32_t v)
{
    uint8_t raw[4];
    le_put_u32(raw, v);
    return kv_buf_append(b, raw, sizeof(raw));
}

int kv_buf_append_u64(struct kv_buf *b, uint64_t v)
{
    uint8_t raw[8];
    le_put_u64(raw, v);
    return kv_buf_append(b, raw, sizeof(raw));
}

int kv_buf_append_i64(struct kv_buf *b, int64_t v)
{
    char text[24];
    int n = snprintf(text, sizeof(text), "%lld", (long long)v);
    return kv_buf_append(b, text, (size_t)n);
}

void kv_buf_consume(struct kv_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

char *kv_buf_take(struct kv_buf *b, size_t *len)
{
    char *data = b->data;
    *len = b->len;
    kv_buf_init(b);
    return data;
}

bool kv_slice_equal_nocase(struct kv_slice a, const char *s)
{
    size_t n = strlen(s);
    if (a.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char x = a.ptr[i], y = s[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

bool kv_parse_i64(const char *p, size_t len, int64_t *out)
{
    bool negative = false;
    uint64_t v = 0, limit;
    size_t i = 0;

    if (len == 0 || len > 20)
        return false;
    if (len == 1 && p[0] == '0') {
        *out = 0;
        return true;
    }
    if (p[0] == '-') {
        negative = true;
        i = 1;
        if (len == 1)
            return false;
    }
    /* No leading zeros, so that every integer has one spelling. */
    if (p[i] < '1' || p[i] > '9')
        return false;
    limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        unsigned digit;
        if (p[i] < '0' || p[i] > '9')
            return false;
        digit = (unsigned)(p[i] - '0');
        if (v > (limit - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}
