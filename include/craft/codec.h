/* craft wire codec: the bytes the TCP transport puts on a connection.
 *
 * A connection carries frames. The first frame each side sends is a
 * handshake; every later frame is a batch of raft messages, for any number of
 * groups, bound for one host, or, on a connection opened for one snapshot
 * stream, one of the snapshot stream frames below. Everything here is a pure function over
 * buffers: no I/O, no threads, no global state, so the decoders can be fuzzed
 * exactly as the transport runs them (tests/fuzz/fuzz_codec.c).
 *
 * Frame (all integers little endian, encoded byte by byte):
 *
 *   0  u32 magic 0x54465243 ("CRFT" on the wire)
 *   4  u16 version      codec version of the payload layout
 *   6  u16 kind         enum craft_frame_kind
 *   8  u32 length       payload bytes, at most the receiver's max_payload
 *   12 u32 crc32c       of bytes 0..12, then of the payload
 *   16 payload
 *
 * Handshake payload (28 bytes; this layout is frozen so that peers of any
 * version can negotiate, and handshake frames always carry version 1):
 *
 *   0 u64 cluster id | 8 u64 sender node id | 16 u64 expected receiver (0: any)
 *   24 u16 lowest codec version spoken | 26 u16 highest codec version spoken
 *
 * Batch payload, version 1: u32 count, then count messages:
 *
 *   u64 group | u8 type (wire number) | u8 reject (0 or 1) | u32 flags
 *   u64 from, to, term, log_term, index, commit, reject_hint, context
 *   u32 n_entries, then each entry:
 *       u64 term | u64 index | u8 type | u32 len | len bytes of data
 *   CRAFT_MSG_SNAPSHOT only, the snapshot metadata:
 *       u64 index | u64 term | u8 auto_leave (0 or 1)
 *       then voters, voters_outgoing, learners, learners_next, witnesses,
 *       each as u8 count (<= CRAFT_MAX_NODES) and count u64 node ids
 *
 * Snapshot stream payloads, version 1 (one stream per connection, in this
 * order: begin, any number of chunks, end from the sender; ack back):
 *
 *   SNAPSHOT_BEGIN  a batch payload holding exactly one CRAFT_MSG_SNAPSHOT
 *                   message without entries (its metadata)
 *   SNAPSHOT_CHUNK  u64 offset of the data in the snapshot | 1.. data bytes
 *                   (the rest of the payload)
 *   SNAPSHOT_END    u64 total data bytes | u32 crc32c of all the data
 *   SNAPSHOT_ACK    u64 total data bytes stored | u32 status
 *                   (enum craft_snapshot_ack_status)
 *
 * Message types travel as wire numbers fixed by the codec version, not as
 * enum craft_message_type values, so reordering the enum cannot change the
 * wire. Local-only types (HUP, BEAT, UNREACHABLE, SNAPSHOT_STATUS,
 * CHECK_QUORUM, LOCAL_TICK) have reserved wire numbers that both the encoder
 * and the decoder refuse: they never cross the network.
 *
 * The encoding is canonical: a buffer that decodes re-encodes to the same
 * bytes.
 *
 * Hostile input: decoders never read outside the bytes they are given, check
 * every length and count against the bytes actually present before using it,
 * and allocate nothing. Any malformed input (bad magic, wrong checksum, length
 * above the maximum, unknown or local-only message type, unknown entry type,
 * membership count above CRAFT_MAX_NODES, entry above CRAFT_MAX_ENTRY_SIZE,
 * truncation, trailing bytes...) gives CRAFT_ECORRUPT, or CRAFT_EVERSION for a
 * version outside the supported range, with a static string naming the
 * problem. The transport closes the connection and counts the event.
 *
 * Threading: no shared state; each struct (craft_buf, writer, iterator) is
 * used by one thread at a time.
 */
#ifndef CRAFT_CODEC_H
#define CRAFT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/raft.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Constants and errors.
 * ------------------------------------------------------------------------ */

#define CRAFT_FRAME_MAGIC 0x54465243u /* bytes 'C' 'R' 'F' 'T' */
#define CRAFT_FRAME_HEADER_SIZE 16u
#define CRAFT_HANDSHAKE_SIZE 28u

/* Codec versions this build speaks. */
#define CRAFT_CODEC_VERSION_MIN 1u
#define CRAFT_CODEC_VERSION_MAX 1u

/* Default bound on a frame's payload: one entry of the largest size plus 1 MiB
 * of headroom for the message around it and its neighbours. */
#define CRAFT_FRAME_DEFAULT_MAX_PAYLOAD (CRAFT_MAX_ENTRY_SIZE + (1u << 20))

/* Encoded sizes of the fixed parts of a version 1 batch. */
#define CRAFT_BATCH_COUNT_SIZE 4u
#define CRAFT_MESSAGE_MIN_SIZE 82u /* a message without entries or snapshot */
#define CRAFT_ENTRY_HEADER_SIZE 21u

enum craft_frame_kind {
    CRAFT_FRAME_HANDSHAKE = 1,
    CRAFT_FRAME_BATCH = 2,
    CRAFT_FRAME_SNAPSHOT_BEGIN = 3,
    CRAFT_FRAME_SNAPSHOT_CHUNK = 4,
    CRAFT_FRAME_SNAPSHOT_END = 5,
    CRAFT_FRAME_SNAPSHOT_ACK = 6,
};

/* Encoded sizes of the fixed parts of version 1 snapshot stream frames. */
#define CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE 8u
#define CRAFT_SNAPSHOT_END_SIZE 12u
#define CRAFT_SNAPSHOT_ACK_SIZE 12u

/* What a receiver answers at the end of a snapshot stream. */
enum craft_snapshot_ack_status {
    CRAFT_SNAPSHOT_STORED = 0,  /* every byte arrived, verified, stored durably */
    CRAFT_SNAPSHOT_REFUSED = 1, /* the receiver takes no snapshot now (or none at all) */
    CRAFT_SNAPSHOT_FAILED = 2,  /* bad data (size, checksum) or the receiver could not store */
};

/* The codec's own errors, in a range apart from raft.h's. Returned besides
 * CRAFT_ECORRUPT (malformed bytes), CRAFT_EINVAL (a bad argument to an
 * encoder), CRAFT_ENOMEM and CRAFT_ETOO_BIG (see each function). */
enum craft_codec_error {
    CRAFT_EVERSION = -64,       /* no codec version in common / version not supported */
    CRAFT_EWRONG_CLUSTER = -65, /* the peer belongs to another cluster */
    CRAFT_EWRONG_NODE = -66,    /* the peer is not the node we expected, or expects another */
};

/* A static description of rc: the codec's errors and raft.h's. Never NULL. */
const char *craft_codec_strerror(int rc);

/* ------------------------------------------------------------------------
 * Growable output buffer. Encoders append to it; on failure they leave len
 * as it was (the bytes after len are unspecified).
 * ------------------------------------------------------------------------ */
struct craft_buf {
    uint8_t *data; /* owned by the buffer, malloc'd; NULL while cap is 0 */
    size_t len;    /* bytes written */
    size_t cap;    /* bytes allocated */
};

/* An empty buffer; nothing is allocated until something is appended. */
void craft_buf_init(struct craft_buf *b);

/* Frees the buffer's memory and leaves it empty (reusable). */
void craft_buf_free(struct craft_buf *b);

/* Makes room for extra more bytes. CRAFT_ENOMEM when allocation fails or
 * len + extra overflows; the buffer is then unchanged. */
int craft_buf_reserve(struct craft_buf *b, size_t extra);

/* ------------------------------------------------------------------------
 * Frames.
 * ------------------------------------------------------------------------ */
struct craft_frame {
    uint16_t version;
    uint16_t kind;          /* enum craft_frame_kind */
    uint32_t payload_len;   /* bytes at payload */
    uint32_t crc;           /* as stated in the header */
    const uint8_t *payload; /* into the caller's buffer; NULL after header decode */
};

/* Appends a whole frame of the given kind and version around len payload
 * bytes (copied). CRAFT_EINVAL for an unknown kind or a version outside
 * [CRAFT_CODEC_VERSION_MIN, CRAFT_CODEC_VERSION_MAX]; CRAFT_ENOMEM. The
 * payload is not checked: this is for callers that built it themselves. */
int craft_frame_append(struct craft_buf *b, uint16_t kind, uint16_t version, const void *payload,
                       uint32_t len);

/* Decodes and checks a frame header from the first CRAFT_FRAME_HEADER_SIZE
 * bytes of buf (len must be at least that): magic, version, kind, and length
 * <= max_payload (0 means CRAFT_FRAME_DEFAULT_MAX_PAYLOAD). The checksum is
 * not checked: the payload is not there yet. A stream reader calls this as
 * soon as it has a header, then waits for f->payload_len more bytes.
 * Returns 0, CRAFT_ECORRUPT or CRAFT_EVERSION; *detail (if detail is not
 * NULL) names the problem. */
int craft_frame_header_decode(const void *buf, size_t len, uint32_t max_payload,
                              struct craft_frame *f, const char **detail);

/* Decodes a whole frame at the start of buf (len bytes; bytes after the frame
 * are left alone, they may be the next frame) and checks its checksum.
 * *frame_size (if not NULL) is set to header + payload size. f->payload points
 * into buf and is valid as long as buf is. Returns 0, CRAFT_ECORRUPT (also
 * when buf is shorter than the frame) or CRAFT_EVERSION. */
int craft_frame_decode(const void *buf, size_t len, uint32_t max_payload, struct craft_frame *f,
                       size_t *frame_size, const char **detail);

/* ------------------------------------------------------------------------
 * Handshake.
 * ------------------------------------------------------------------------ */
struct craft_handshake {
    uint64_t cluster_id;  /* both sides must agree */
    uint64_t node_id;     /* the sender, non-zero */
    uint64_t peer_id;     /* the node the sender means to reach, 0 for any */
    uint16_t min_version; /* codec versions the sender speaks: */
    uint16_t max_version; /* 1 <= min_version <= max_version */
};

/* Fills hs with this build's version range and the given ids. */
void craft_handshake_init(struct craft_handshake *hs, uint64_t cluster_id, uint64_t node_id,
                          uint64_t peer_id);

/* Appends a whole handshake frame (version 1). CRAFT_EINVAL if node_id is 0
 * or the version range is empty or starts at 0; CRAFT_ENOMEM. */
int craft_handshake_encode(struct craft_buf *b, const struct craft_handshake *hs);

/* Decodes a handshake payload (a frame of kind CRAFT_FRAME_HANDSHAKE). Returns
 * 0 or CRAFT_ECORRUPT (wrong size, node id 0, empty version range). */
int craft_handshake_decode(const void *payload, size_t len, struct craft_handshake *hs,
                           const char **detail);

/* Checks the peer's handshake against ours and picks the codec version both
 * speak (the highest). Returns 0 and sets *version, or CRAFT_EWRONG_CLUSTER,
 * CRAFT_EWRONG_NODE (the peer is not local->peer_id when that is set, or
 * expects someone other than local->node_id) or CRAFT_EVERSION. */
int craft_handshake_check(const struct craft_handshake *local, const struct craft_handshake *remote,
                          uint16_t *version, const char **detail);

/* ------------------------------------------------------------------------
 * Messages and batches: encoding.
 * ------------------------------------------------------------------------ */

/* Bytes one message takes in a batch of the given version (group included);
 * 0 for a version this build does not speak. Does not validate m. */
uint64_t craft_message_size(uint16_t version, const struct craft_message *m);

/* Appends one message, tagged with group, in the given version's layout (a
 * bare message, no batch count, no frame). The entries' data are copied.
 * CRAFT_EINVAL if m cannot travel: a local-only or unknown type, unknown
 * flags, unknown entry type, an entry above CRAFT_MAX_ENTRY_SIZE, entries or
 * data NULL with a non-zero count/length, a CRAFT_MSG_SNAPSHOT without
 * snapshot, a membership count above CRAFT_MAX_NODES; CRAFT_EVERSION;
 * CRAFT_ENOMEM. m->snapshot is ignored for other types. */
int craft_message_encode(struct craft_buf *b, uint16_t version, uint64_t group,
                         const struct craft_message *m);

/* Builds one batch frame in a buffer, a message at a time:
 *
 *   struct craft_batch_writer w;
 *   craft_batch_begin(&w, &buf, version, 0);
 *   while (...) { rc = craft_batch_add(&w, group, &msg); ... }
 *   craft_batch_finish(&w);        // buf now ends with one whole frame
 *
 * The writer holds no memory of its own; it patches the frame header in place
 * when finished. */
struct craft_batch_writer {
    struct craft_buf *buf;
    size_t frame_start;   /* offset of the frame header in buf */
    uint32_t count;       /* messages added */
    uint32_t max_payload; /* bound on this frame's payload */
    uint16_t version;
};

/* Appends a frame header and an empty batch to buf. max_payload bounds the
 * frame as the receiver will (0: CRAFT_FRAME_DEFAULT_MAX_PAYLOAD).
 * CRAFT_EVERSION, CRAFT_ENOMEM. */
int craft_batch_begin(struct craft_batch_writer *w, struct craft_buf *buf, uint16_t version,
                      uint32_t max_payload);

/* Adds one message for group. Errors of craft_message_encode, and
 * CRAFT_ETOO_BIG when the message would take the payload past max_payload:
 * finish this frame and add it to a new one (a message that does not fit in
 * an empty batch never will). On any error the batch is as it was. */
int craft_batch_add(struct craft_batch_writer *w, uint64_t group, const struct craft_message *m);

/* Writes the count, length and checksum: buf[frame_start..len) is a frame. */
void craft_batch_finish(struct craft_batch_writer *w);

/* ------------------------------------------------------------------------
 * Messages and batches: decoding.
 *
 *   struct craft_batch_iter it;
 *   craft_batch_iter_init(&it, f.version, f.payload, f.payload_len,
 *                         entries, n, &snapshot_meta);
 *   while ((rc = craft_batch_next(&it, &group, &msg)) == 1)
 *       deliver(group, &msg);
 *   if (rc < 0) close the connection (it.detail says why)
 *
 * Zero copy: a decoded message's entries point into the caller's entries
 * array, and their data into the payload; msg.snapshot points at the
 * caller's snapshot meta. The entries and the meta are overwritten by the
 * next call; entry data stay valid as long as the payload buffer.
 * ------------------------------------------------------------------------ */
struct craft_batch_iter {
    const uint8_t *pos; /* next message */
    const uint8_t *end; /* end of the payload */
    uint32_t remaining; /* messages left to decode */
    uint16_t version;
    int error;                            /* sticky error, 0 while decoding goes well */
    const char *detail;                   /* what was wrong, for a negative return */
    struct craft_entry *entries;          /* caller's storage for one message's entries */
    size_t entries_cap;                   /* its capacity; may be changed between calls */
    uint32_t entries_needed;              /* after CRAFT_ETOO_BIG: capacity the message needs */
    struct craft_snapshot_meta *snapshot; /* caller's storage for one snapshot meta */
};

/* Starts iterating over a batch payload of the given version: reads and
 * checks the message count (each message takes at least
 * CRAFT_MESSAGE_MIN_SIZE bytes, so a count the bytes cannot hold is refused
 * here). entries (entries_cap of them, NULL if 0) and snapshot (not NULL)
 * are the caller's storage, used until the iteration ends. Returns 0,
 * CRAFT_EINVAL (snapshot NULL), CRAFT_ECORRUPT or CRAFT_EVERSION (also
 * stored in it->error, with it->detail). */
int craft_batch_iter_init(struct craft_batch_iter *it, uint16_t version, const void *payload,
                          size_t len, struct craft_entry *entries, size_t entries_cap,
                          struct craft_snapshot_meta *snapshot);

/* Decodes the next message into *group and *msg. Returns 1 for a message, 0
 * at the end of a well-formed batch (no trailing bytes), or a negative error:
 * CRAFT_ECORRUPT (sticky: every later call returns it too), or CRAFT_ETOO_BIG
 * when the message has more entries than entries_cap — the count has been
 * checked against the bytes present, it->entries_needed says how many; point
 * it->entries at a larger array (updating entries_cap) and call again to
 * decode the same message. */
int craft_batch_next(struct craft_batch_iter *it, uint64_t *group, struct craft_message *msg);

/* ------------------------------------------------------------------------
 * Snapshot streams. Each encoder appends one whole frame of the given version
 * (CRAFT_EVERSION outside the supported range, CRAFT_ENOMEM); each decoder
 * takes the payload of a frame of the matching kind and returns 0 or
 * CRAFT_ECORRUPT (CRAFT_EVERSION for begin), with *detail naming the problem.
 * ------------------------------------------------------------------------ */

/* m must be a CRAFT_MSG_SNAPSHOT without entries (CRAFT_EINVAL otherwise, or
 * for whatever craft_message_encode() refuses); max_payload as for
 * craft_batch_begin() (CRAFT_ETOO_BIG beyond it). */
int craft_snapshot_begin_encode(struct craft_buf *b, uint16_t version, uint32_t max_payload,
                                uint64_t group, const struct craft_message *m);

/* Decodes a begin payload into *group and *m; m->snapshot points at *meta
 * (caller's storage), nothing points into the payload. */
int craft_snapshot_begin_decode(uint16_t version, const void *payload, size_t len, uint64_t *group,
                                struct craft_message *m, struct craft_snapshot_meta *meta,
                                const char **detail);

struct craft_snapshot_chunk {
    uint64_t offset;     /* of the first byte in the snapshot's data */
    const uint8_t *data; /* into the payload */
    uint32_t len;        /* >= 1 */
};

/* len bytes at data (copied), 1 <= len <= UINT32_MAX - 8 (CRAFT_EINVAL). */
int craft_snapshot_chunk_encode(struct craft_buf *b, uint16_t version, uint64_t offset,
                                const void *data, uint32_t len);
int craft_snapshot_chunk_decode(const void *payload, size_t len, struct craft_snapshot_chunk *c,
                                const char **detail);

int craft_snapshot_end_encode(struct craft_buf *b, uint16_t version, uint64_t size, uint32_t crc);
int craft_snapshot_end_decode(const void *payload, size_t len, uint64_t *size, uint32_t *crc,
                              const char **detail);

/* status: enum craft_snapshot_ack_status (CRAFT_EINVAL otherwise; the decoder
 * refuses unknown values too). */
int craft_snapshot_ack_encode(struct craft_buf *b, uint16_t version, uint64_t size,
                              uint32_t status);
int craft_snapshot_ack_decode(const void *payload, size_t len, uint64_t *size, uint32_t *status,
                              const char **detail);

/* Whether a message type may cross the network (false for local-only and
 * unknown types). */
bool craft_message_type_is_remote(uint32_t type);

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_CODEC_H */
