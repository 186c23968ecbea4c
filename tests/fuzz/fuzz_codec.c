/* libFuzzer target for the transport's wire codec (include/craft/codec.h).
 *
 * The first input byte picks a mode, the rest is decoded:
 *   even: as a frame (header, checksum, then a handshake, a batch or a
 *         snapshot stream payload), the way the transport decodes what a
 *         connection delivers;
 *   odd:  as a bare batch payload, bypassing the checksum so that the fuzzer
 *         reaches the message decoder without having to forge CRC32Cs.
 * Whatever decodes must re-encode to the very same bytes (the encoding is
 * canonical). Any crash, sanitizer report or mismatch is a bug: hostile bytes
 * must produce an error and nothing else.
 *
 * The input is copied to an exact-size heap buffer so that AddressSanitizer
 * catches a read one byte past the end.
 *
 * Build: cmake -DCRAFT_FUZZ=ON -DCMAKE_C_COMPILER=clang (target fuzz_codec). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <craft/codec.h>

/* Small on purpose: messages with more entries exercise the CRAFT_ETOO_BIG
 * retry path with a larger array. */
#define SMALL_ENTRIES 4
#define LARGE_ENTRIES 4096

static struct craft_entry large_entries[LARGE_ENTRIES];

static void check(int ok)
{
    if (!ok)
        abort();
}

/* Decodes a batch payload and checks that it re-encodes to the same bytes. */
static void fuzz_batch(uint16_t version, const uint8_t *payload, size_t len)
{
    struct craft_entry entries[SMALL_ENTRIES];
    struct craft_snapshot_meta snap;
    struct craft_batch_iter it;
    struct craft_message m;
    struct craft_buf again;
    uint64_t group;
    uint32_t decoded = 0;
    int rc;

    craft_buf_init(&again);
    check(craft_buf_reserve(&again, CRAFT_BATCH_COUNT_SIZE) == 0);
    again.len = CRAFT_BATCH_COUNT_SIZE;
    rc = craft_batch_iter_init(&it, version, payload, len, entries, SMALL_ENTRIES, &snap);
    while (rc == 0 || rc == 1 || rc == CRAFT_ETOO_BIG) {
        if (rc == CRAFT_ETOO_BIG) {
            /* The count was checked against the bytes present. */
            check(it.entries_needed > it.entries_cap);
            check((uint64_t)it.entries_needed * CRAFT_ENTRY_HEADER_SIZE <= len);
            if (it.entries == large_entries || it.entries_needed > LARGE_ENTRIES)
                break;
            it.entries = large_entries;
            it.entries_cap = LARGE_ENTRIES;
        } else if (rc == 1) {
            decoded++;
            check(craft_message_type_is_remote(m.type));
            check(craft_message_size(version, &m) <= len);
            check(craft_message_encode(&again, version, group, &m) == 0);
            it.entries = entries;
            it.entries_cap = SMALL_ENTRIES;
        }
        rc = craft_batch_next(&it, &group, &m);
        if (rc == 0)
            break;
    }
    if (rc == 0) {
        again.data[0] = (uint8_t)decoded;
        again.data[1] = (uint8_t)(decoded >> 8);
        again.data[2] = (uint8_t)(decoded >> 16);
        again.data[3] = (uint8_t)(decoded >> 24);
        check(again.len == len);
        check(memcmp(again.data, payload, len) == 0);
    } else if (rc != CRAFT_ETOO_BIG) {
        check(rc < 0 && it.detail != NULL);
    }
    craft_buf_free(&again);
}

/* Decodes a snapshot stream payload; what decodes must re-encode to the frame. */
static void fuzz_snapshot_stream(const struct craft_frame *f, const uint8_t *frame, size_t size)
{
    struct craft_snapshot_meta meta;
    struct craft_snapshot_chunk chunk;
    struct craft_message m;
    struct craft_buf again;
    const char *detail = NULL;
    uint64_t group, total;
    uint32_t value;
    int rc;

    craft_buf_init(&again);
    switch (f->kind) {
    case CRAFT_FRAME_SNAPSHOT_BEGIN:
        rc = craft_snapshot_begin_decode(f->version, f->payload, f->payload_len, &group, &m, &meta,
                                         &detail);
        if (rc == 0)
            check(craft_snapshot_begin_encode(&again, f->version, 0, group, &m) == 0);
        break;
    case CRAFT_FRAME_SNAPSHOT_CHUNK:
        rc = craft_snapshot_chunk_decode(f->payload, f->payload_len, &chunk, &detail);
        if (rc == 0) {
            check(chunk.data + chunk.len == f->payload + f->payload_len);
            check(craft_snapshot_chunk_encode(&again, f->version, chunk.offset, chunk.data,
                                              chunk.len) == 0);
        }
        break;
    case CRAFT_FRAME_SNAPSHOT_END:
        rc = craft_snapshot_end_decode(f->payload, f->payload_len, &total, &value, &detail);
        if (rc == 0)
            check(craft_snapshot_end_encode(&again, f->version, total, value) == 0);
        break;
    default:
        rc = craft_snapshot_ack_decode(f->payload, f->payload_len, &total, &value, &detail);
        if (rc == 0)
            check(craft_snapshot_ack_encode(&again, f->version, total, value) == 0);
        break;
    }
    if (rc == 0)
        check(again.len == size && memcmp(again.data, frame, size) == 0);
    else
        check(rc < 0 && detail != NULL);
    craft_buf_free(&again);
}

static void fuzz_frame(const uint8_t *buf, size_t len)
{
    struct craft_frame f;
    struct craft_handshake hs;
    struct craft_buf again;
    const char *detail = NULL;
    size_t size = 0;
    int rc;

    rc = craft_frame_decode(buf, len, 0, &f, &size, &detail);
    if (rc != 0) {
        check(detail != NULL);
        return;
    }
    check(size <= len && size == CRAFT_FRAME_HEADER_SIZE + (size_t)f.payload_len);
    /* The frame re-encodes to the same bytes. */
    craft_buf_init(&again);
    check(craft_frame_append(&again, f.kind, f.version, f.payload, f.payload_len) == 0);
    check(again.len == size && memcmp(again.data, buf, size) == 0);
    craft_buf_free(&again);

    if (f.kind == CRAFT_FRAME_HANDSHAKE) {
        if (craft_handshake_decode(f.payload, f.payload_len, &hs, &detail) == 0) {
            craft_buf_init(&again);
            check(craft_handshake_encode(&again, &hs) == 0);
            check(again.len == size && memcmp(again.data, buf, size) == 0);
            craft_buf_free(&again);
        }
    } else if (f.kind == CRAFT_FRAME_BATCH) {
        fuzz_batch(f.version, f.payload, f.payload_len);
    } else {
        fuzz_snapshot_stream(&f, buf, size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    if (size < 1)
        return 0;
    copy = malloc(size - 1 > 0 ? size - 1 : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data + 1, size - 1);
    if ((data[0] & 1) == 0)
        fuzz_frame(copy, size - 1);
    else
        fuzz_batch(CRAFT_CODEC_VERSION_MAX, copy, size - 1);
    free(copy);
    return 0;
}
