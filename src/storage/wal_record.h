/* WAL on-disk format: the segment header and the records, their encoding and
 * their bounded, defensive decoding. Pure functions over buffers, with no I/O,
 * so that the fuzz target (tests/fuzz/fuzz_wal_record.c) can drive exactly
 * what recovery runs.
 *
 * Segment file: a 64-byte header, then records, each aligned to 8 bytes, then
 * zeros up to the preallocated size.
 *
 *   header:  0 magic "CRAFTWAL" | 8 u32 version | 12 u32 header size (64)
 *            16 u64 segment number | 24 u64 lsn of its first record
 *            32 u64 preallocated size | 40..60 zero | 60 u32 crc32c of 0..60
 *
 *   record:  0 u32 crc32c of bytes 4 .. 32 + len | 4 u32 len (payload bytes)
 *            8 u64 lsn | 16 u64 unit_last | 24 u16 type | 26 u16 flags (0)
 *            28 u32 zero | 32 payload | zero padding to a multiple of 8
 *
 * lsn numbers records across the whole WAL, +1 each. A "write unit" is what
 * one write + fdatasync put on disk; unit_last is the lsn of its last record,
 * which lets recovery tell a torn last write from damage to earlier ones
 * (docs/storage.md). All integers little-endian.
 */
#ifndef CRAFT_STORAGE_WAL_RECORD_H
#define CRAFT_STORAGE_WAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/raft.h>

#define WAL_MAGIC "CRAFTWAL"
#define WAL_FORMAT_VERSION 1u
#define WAL_SEGMENT_HEADER_SIZE 64u
#define WAL_RECORD_HEADER_SIZE 32u
#define WAL_RECORD_MAX_PAYLOAD (256u << 20) /* hard bound on a record read from disk */
#define WAL_MAX_SEGMENT_SIZE (1ull << 36)   /* bound on the preallocated size a header states */
#define WAL_ENTRIES_SPLIT (1u << 20)        /* an append is split into records of about this */

enum wal_record_type {
    WAL_REC_ENTRIES = 1,      /* group, first index, entries (replace >= first index) */
    WAL_REC_HARD_STATE = 2,   /* group, term, vote, commit */
    WAL_REC_CONF_STATE = 3,   /* group, membership */
    WAL_REC_SNAPSHOT = 4,     /* group, snapshot metadata (see craft_log_store.save_snapshot) */
    WAL_REC_COMPACT = 5,      /* group, index, term of index: entries <= index dropped */
    WAL_REC_TRUNCATE = 6,     /* group, index: entries >= index dropped */
    WAL_REC_GROUP_STATE = 7,  /* group, all its metadata: written before a segment is deleted */
    WAL_REC_REMOVE_GROUP = 8, /* group */
    WAL_REC_TYPE_END
};

/* Flags of the group state record. */
#define WAL_GS_HAS_SNAPSHOT 0x1u

struct wal_segment_header {
    uint32_t version;
    uint64_t seq;
    uint64_t first_lsn;
    uint64_t segment_size;
};

/* A decoded record. Entries stay encoded: iterate them with wal_entries_next. */
struct wal_record {
    uint64_t lsn;
    uint64_t unit_last;
    uint16_t type;
    uint64_t group;
    uint64_t index;         /* ENTRIES first index; COMPACT, TRUNCATE index */
    uint64_t term;          /* COMPACT */
    uint32_t count;         /* ENTRIES */
    uint32_t flags;         /* GROUP_STATE */
    const uint8_t *entries; /* ENTRIES: encoded entries */
    size_t entries_len;
    struct craft_hard_state hs;           /* HARD_STATE, GROUP_STATE */
    struct craft_conf_state conf;         /* CONF_STATE, GROUP_STATE */
    struct craft_snapshot_meta snap;      /* SNAPSHOT, GROUP_STATE */
    uint64_t compact_index, compact_term; /* GROUP_STATE */
};

struct wal_entries_iter {
    const uint8_t *p, *end;
    uint64_t index;
    uint32_t left;
};

/* A growable byte buffer. */
struct wal_buf {
    uint8_t *data;
    size_t len, cap;
};
void wal_buf_free(struct wal_buf *b);
int wal_buf_reserve(struct wal_buf *b, size_t extra);

/* Segment header. decode returns 0 or -1 with a static reason in *why. */
void wal_segment_header_encode(const struct wal_segment_header *h,
                               uint8_t out[WAL_SEGMENT_HEADER_SIZE]);
int wal_segment_header_decode(const uint8_t *buf, size_t len, struct wal_segment_header *h,
                              const char **why);

/* Encoders: append one unstamped record (crc, lsn, unit_last zero) to b.
 * 0 or CRAFT_ENOMEM / CRAFT_ETOO_BIG. */
int wal_encode_entries(struct wal_buf *b, uint64_t group, const struct craft_entry *entries,
                       size_t n);
int wal_encode_hard_state(struct wal_buf *b, uint64_t group, const struct craft_hard_state *hs);
int wal_encode_conf_state(struct wal_buf *b, uint64_t group, const struct craft_conf_state *cs);
int wal_encode_snapshot(struct wal_buf *b, uint64_t group, const struct craft_snapshot_meta *m);
int wal_encode_compact(struct wal_buf *b, uint64_t group, uint64_t index, uint64_t term);
int wal_encode_truncate(struct wal_buf *b, uint64_t group, uint64_t index);
int wal_encode_group_state(struct wal_buf *b, uint64_t group, const struct craft_hard_state *hs,
                           const struct craft_conf_state *cs,
                           const struct craft_snapshot_meta *snap, uint64_t compact_index,
                           uint64_t compact_term);
int wal_encode_remove_group(struct wal_buf *b, uint64_t group);

/* Membership codec (also used by snapshot files): 24 bytes of counts and
 * flags, then the ids. get is bounded by end and advances *p. */
size_t wal_conf_size(const struct craft_conf_state *cs);
bool wal_conf_valid(const struct craft_conf_state *cs);
uint8_t *wal_conf_put(uint8_t *p, const struct craft_conf_state *cs);
bool wal_conf_get(const uint8_t **p, const uint8_t *end, struct craft_conf_state *cs);

/* Bytes a record with this payload takes on disk, padding included. */
size_t wal_record_size(uint32_t payload_len);
/* Payload length of the (unstamped or stamped) record at rec. */
uint32_t wal_record_payload_len(const uint8_t *rec);
/* Sets lsn and unit_last of the record at rec and computes its checksum. */
void wal_record_stamp(uint8_t *rec, uint64_t lsn, uint64_t unit_last);

enum wal_decode_result {
    WAL_DEC_OK = 0,
    WAL_DEC_ZERO,       /* an all-zero header: no record here (end of written data) */
    WAL_DEC_TRUNCATED,  /* the record runs past the end of the buffer */
    WAL_DEC_BAD_LENGTH, /* length out of bounds */
    WAL_DEC_BAD_CHECKSUM,
    WAL_DEC_BAD_PAYLOAD, /* checksum fine, contents invalid (a bug or a hostile file) */
};
const char *wal_decode_result_name(int r);

/* Decodes the record at buf (avail bytes readable). On WAL_DEC_OK *size is
 * the record's size on disk. Never reads outside [buf, buf + avail). */
int wal_record_decode(const uint8_t *buf, size_t avail, struct wal_record *rec, size_t *size);

/* Iterates the entries of a decoded ENTRIES record (data points into the
 * decoded buffer). Returns false at the end. */
void wal_entries_iter_init(struct wal_entries_iter *it, const struct wal_record *rec);
bool wal_entries_next(struct wal_entries_iter *it, struct craft_entry *e);

/* After a record fails to decode at offset from, looks for valid records with
 * lsn > after_lsn further on in buf (at every 8-byte boundary): the evidence
 * that the failure is not a torn last write. */
struct wal_tail_evidence {
    uint64_t valid_records;      /* valid records found after the failure */
    uint64_t first_offset;       /* offset of the first one */
    uint64_t min_unit, max_unit; /* their unit_last values */
};
void wal_scan_tail(const uint8_t *buf, size_t len, size_t from, uint64_t after_lsn,
                   struct wal_tail_evidence *ev);
/* The pieces of the scan, for a caller that reads the file in windows: the
 * first offset to look at after a failure at from; whether the header at hdr
 * (file_left bytes of file from there) may start a record newer than
 * after_lsn, and its payload length; adding a valid record found. */
uint64_t wal_scan_start(uint64_t from);
bool wal_scan_candidate(const uint8_t *hdr, uint64_t file_left, uint64_t after_lsn, uint32_t *len);
void wal_tail_evidence_add(struct wal_tail_evidence *ev, uint64_t offset, uint64_t unit_last);

#endif /* CRAFT_STORAGE_WAL_RECORD_H */
