/* The transport's wire codec: frames, the handshake, and batches of raft
 * messages for many groups (the format is described in include/craft/codec.h).
 *
 * Decoding treats its input as hostile: every read goes through a bounds
 * check against the bytes actually present, every count is compared with what
 * those bytes could hold before anything is done with it, and nothing is
 * allocated. Integers are assembled byte by byte, so alignment and host byte
 * order never matter. The checksum is the storage layer's CRC32C.
 */
#include <stdlib.h>
#include <string.h>

#include <craft/codec.h>

#include "storage/crc32c.h"

/* Message flags the codec carries; an unknown flag is refused on both sides so
 * that a new flag cannot silently vanish on the wire. */
#define KNOWN_MSG_FLAGS CRAFT_MSG_FLAG_TRANSFER

/* Snapshot meta, version 1: index, term, auto_leave, then five counts. */
#define SNAPSHOT_FIXED_SIZE 17u
#define CONF_LISTS 5u

/* Wire numbers of message types, version 1, indexed by wire number. Local-only
 * types keep a number so that the decoder can say what it saw, but are never
 * encoded nor accepted. */
struct wire_type {
    uint32_t type; /* enum craft_message_type */
    bool remote;   /* may cross the network */
};

static const struct wire_type wire_types[] = {
    {CRAFT_MSG_HUP, false},
    {CRAFT_MSG_BEAT, false},
    {CRAFT_MSG_PROPOSE, true},
    {CRAFT_MSG_APPEND, true},
    {CRAFT_MSG_APPEND_RESP, true},
    {CRAFT_MSG_VOTE, true},
    {CRAFT_MSG_VOTE_RESP, true},
    {CRAFT_MSG_PRE_VOTE, true},
    {CRAFT_MSG_PRE_VOTE_RESP, true},
    {CRAFT_MSG_SNAPSHOT, true},
    {CRAFT_MSG_HEARTBEAT, true},
    {CRAFT_MSG_HEARTBEAT_RESP, true},
    {CRAFT_MSG_UNREACHABLE, false},
    {CRAFT_MSG_SNAPSHOT_STATUS, false},
    {CRAFT_MSG_CHECK_QUORUM, false},
    {CRAFT_MSG_TRANSFER_LEADER, true},
    {CRAFT_MSG_TIMEOUT_NOW, true},
    {CRAFT_MSG_READ_INDEX, true},
    {CRAFT_MSG_READ_INDEX_RESP, true},
    {CRAFT_MSG_RATE_LIMIT, true},
    {CRAFT_MSG_QUIESCE, true},
    {CRAFT_MSG_LOCAL_TICK, false},
};

#define N_WIRE_TYPES (sizeof(wire_types) / sizeof(wire_types[0]))

/* Wire numbers of entry types, version 1, indexed by wire number. */
static const uint32_t wire_entry_types[] = {
    CRAFT_ENTRY_NORMAL,
    CRAFT_ENTRY_CONF_CHANGE,
    CRAFT_ENTRY_METADATA,
};

#define N_WIRE_ENTRY_TYPES (sizeof(wire_entry_types) / sizeof(wire_entry_types[0]))

/* ------------------------------------------------------------------------
 * Little-endian helpers.
 * ------------------------------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void set_detail(const char **detail, const char *what)
{
    if (detail != NULL)
        *detail = what;
}

static bool version_supported(uint16_t version)
{
    return version >= CRAFT_CODEC_VERSION_MIN && version <= CRAFT_CODEC_VERSION_MAX;
}

static bool frame_kind_known(uint16_t kind)
{
    return kind >= CRAFT_FRAME_HANDSHAKE && kind <= CRAFT_FRAME_SNAPSHOT_ACK;
}

static uint32_t effective_max(uint32_t max_payload)
{
    return max_payload == 0 ? CRAFT_FRAME_DEFAULT_MAX_PAYLOAD : max_payload;
}

const char *craft_codec_strerror(int rc)
{
    switch (rc) {
    case CRAFT_EVERSION:
        return "no codec version in common with the peer";
    case CRAFT_EWRONG_CLUSTER:
        return "the peer belongs to another cluster";
    case CRAFT_EWRONG_NODE:
        return "the peer is not the expected node";
    default:
        return craft_strerror(rc);
    }
}

bool craft_message_type_is_remote(uint32_t type)
{
    for (size_t i = 0; i < N_WIRE_TYPES; i++)
        if (wire_types[i].type == type)
            return wire_types[i].remote;
    return false;
}

/* ------------------------------------------------------------------------
 * craft_buf.
 * ------------------------------------------------------------------------ */

void craft_buf_init(struct craft_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void craft_buf_free(struct craft_buf *b)
{
    free(b->data);
    craft_buf_init(b);
}

int craft_buf_reserve(struct craft_buf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *data;

    if (extra > SIZE_MAX - b->len)
        return CRAFT_ENOMEM;
    need = b->len + extra;
    if (need <= b->cap)
        return 0;
    cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    data = realloc(b->data, cap);
    if (data == NULL)
        return CRAFT_ENOMEM;
    b->data = data;
    b->cap = cap;
    return 0;
}

/* ------------------------------------------------------------------------
 * Frames.
 * ------------------------------------------------------------------------ */

static void put_frame_header(uint8_t *p, uint16_t kind, uint16_t version, uint32_t len)
{
    put32(p, CRAFT_FRAME_MAGIC);
    put16(p + 4, version);
    put16(p + 6, kind);
    put32(p + 8, len);
    put32(p + 12, 0);
}

/* Seals the frame whose header is at p, payload right after it. */
static void seal_frame(uint8_t *p, uint32_t len)
{
    uint32_t crc;

    put32(p + 8, len);
    crc = crc32c(0, p, 12);
    crc = crc32c(crc, p + CRAFT_FRAME_HEADER_SIZE, len);
    put32(p + 12, crc);
}

int craft_frame_append(struct craft_buf *b, uint16_t kind, uint16_t version, const void *payload,
                       uint32_t len)
{
    uint8_t *p;
    int rc;

    if (!frame_kind_known(kind) || !version_supported(version) || (len > 0 && payload == NULL))
        return CRAFT_EINVAL;
    rc = craft_buf_reserve(b, (size_t)CRAFT_FRAME_HEADER_SIZE + len);
    if (rc != 0)
        return rc;
    p = b->data + b->len;
    put_frame_header(p, kind, version, len);
    if (len > 0)
        memcpy(p + CRAFT_FRAME_HEADER_SIZE, payload, len);
    seal_frame(p, len);
    b->len += (size_t)CRAFT_FRAME_HEADER_SIZE + len;
    return 0;
}

int craft_frame_header_decode(const void *buf, size_t len, uint32_t max_payload,
                              struct craft_frame *f, const char **detail)
{
    const uint8_t *p = buf;

    if (p == NULL || len < CRAFT_FRAME_HEADER_SIZE) {
        set_detail(detail, "truncated frame header");
        return CRAFT_ECORRUPT;
    }
    if (get32(p) != CRAFT_FRAME_MAGIC) {
        set_detail(detail, "bad frame magic");
        return CRAFT_ECORRUPT;
    }
    f->version = get16(p + 4);
    f->kind = get16(p + 6);
    f->payload_len = get32(p + 8);
    f->crc = get32(p + 12);
    f->payload = NULL;
    if (!frame_kind_known(f->kind)) {
        set_detail(detail, "unknown frame kind");
        return CRAFT_ECORRUPT;
    }
    /* Peers negotiate with version 1 handshakes whatever else they speak. */
    if (f->kind == CRAFT_FRAME_HANDSHAKE && f->version != 1) {
        set_detail(detail, "handshake frame not of version 1");
        return CRAFT_ECORRUPT;
    }
    if (!version_supported(f->version)) {
        set_detail(detail, "unsupported frame version");
        return CRAFT_EVERSION;
    }
    if (f->payload_len > effective_max(max_payload)) {
        set_detail(detail, "payload length exceeds the maximum frame size");
        return CRAFT_ECORRUPT;
    }
    return 0;
}

int craft_frame_decode(const void *buf, size_t len, uint32_t max_payload, struct craft_frame *f,
                       size_t *frame_size, const char **detail)
{
    const uint8_t *p = buf;
    uint32_t crc;
    int rc;

    rc = craft_frame_header_decode(buf, len, max_payload, f, detail);
    if (rc != 0)
        return rc;
    if (len - CRAFT_FRAME_HEADER_SIZE < f->payload_len) {
        set_detail(detail, "truncated frame payload");
        return CRAFT_ECORRUPT;
    }
    crc = crc32c(0, p, 12);
    crc = crc32c(crc, p + CRAFT_FRAME_HEADER_SIZE, f->payload_len);
    if (crc != f->crc) {
        set_detail(detail, "frame checksum mismatch");
        return CRAFT_ECORRUPT;
    }
    f->payload = p + CRAFT_FRAME_HEADER_SIZE;
    if (frame_size != NULL)
        *frame_size = (size_t)CRAFT_FRAME_HEADER_SIZE + f->payload_len;
    return 0;
}

/* ------------------------------------------------------------------------
 * Handshake.
 * ------------------------------------------------------------------------ */

void craft_handshake_init(struct craft_handshake *hs, uint64_t cluster_id, uint64_t node_id,
                          uint64_t peer_id)
{
    hs->cluster_id = cluster_id;
    hs->node_id = node_id;
    hs->peer_id = peer_id;
    hs->min_version = CRAFT_CODEC_VERSION_MIN;
    hs->max_version = CRAFT_CODEC_VERSION_MAX;
}

static bool version_range_valid(uint16_t lo, uint16_t hi)
{
    return lo >= 1 && lo <= hi;
}

int craft_handshake_encode(struct craft_buf *b, const struct craft_handshake *hs)
{
    uint8_t payload[CRAFT_HANDSHAKE_SIZE];

    if (hs->node_id == 0 || !version_range_valid(hs->min_version, hs->max_version))
        return CRAFT_EINVAL;
    put64(payload, hs->cluster_id);
    put64(payload + 8, hs->node_id);
    put64(payload + 16, hs->peer_id);
    put16(payload + 24, hs->min_version);
    put16(payload + 26, hs->max_version);
    return craft_frame_append(b, CRAFT_FRAME_HANDSHAKE, 1, payload, sizeof(payload));
}

int craft_handshake_decode(const void *payload, size_t len, struct craft_handshake *hs,
                           const char **detail)
{
    const uint8_t *p = payload;

    if (p == NULL || len != CRAFT_HANDSHAKE_SIZE) {
        set_detail(detail, len < CRAFT_HANDSHAKE_SIZE ? "truncated handshake"
                                                      : "trailing bytes after the handshake");
        return CRAFT_ECORRUPT;
    }
    hs->cluster_id = get64(p);
    hs->node_id = get64(p + 8);
    hs->peer_id = get64(p + 16);
    hs->min_version = get16(p + 24);
    hs->max_version = get16(p + 26);
    if (hs->node_id == 0) {
        set_detail(detail, "handshake from node id 0");
        return CRAFT_ECORRUPT;
    }
    if (!version_range_valid(hs->min_version, hs->max_version)) {
        set_detail(detail, "handshake with an empty version range");
        return CRAFT_ECORRUPT;
    }
    return 0;
}

int craft_handshake_check(const struct craft_handshake *local, const struct craft_handshake *remote,
                          uint16_t *version, const char **detail)
{
    uint16_t lo, hi;

    if (remote->cluster_id != local->cluster_id) {
        set_detail(detail, "peer's cluster id differs");
        return CRAFT_EWRONG_CLUSTER;
    }
    if (local->peer_id != 0 && remote->node_id != local->peer_id) {
        set_detail(detail, "peer is not the node we meant to reach");
        return CRAFT_EWRONG_NODE;
    }
    if (remote->peer_id != 0 && remote->peer_id != local->node_id) {
        set_detail(detail, "peer meant to reach another node");
        return CRAFT_EWRONG_NODE;
    }
    lo = local->min_version > remote->min_version ? local->min_version : remote->min_version;
    hi = local->max_version < remote->max_version ? local->max_version : remote->max_version;
    if (hi < lo) {
        set_detail(detail, "no codec version in common");
        return CRAFT_EVERSION;
    }
    *version = hi;
    return 0;
}

/* ------------------------------------------------------------------------
 * Message encoding.
 * ------------------------------------------------------------------------ */

static bool wire_type_of(uint32_t type, uint8_t *wire)
{
    for (size_t i = 0; i < N_WIRE_TYPES; i++) {
        if (wire_types[i].type == type) {
            *wire = (uint8_t)i;
            return wire_types[i].remote;
        }
    }
    return false;
}

static bool wire_entry_type_of(uint32_t type, uint8_t *wire)
{
    for (size_t i = 0; i < N_WIRE_ENTRY_TYPES; i++) {
        if (wire_entry_types[i] == type) {
            *wire = (uint8_t)i;
            return true;
        }
    }
    return false;
}

static const uint32_t *conf_counts(const struct craft_conf_state *cs, uint32_t counts[CONF_LISTS])
{
    counts[0] = cs->n_voters;
    counts[1] = cs->n_voters_outgoing;
    counts[2] = cs->n_learners;
    counts[3] = cs->n_learners_next;
    counts[4] = cs->n_witnesses;
    return counts;
}

static const uint64_t *conf_list(const struct craft_conf_state *cs, unsigned i)
{
    switch (i) {
    case 0:
        return cs->voters;
    case 1:
        return cs->voters_outgoing;
    case 2:
        return cs->learners;
    case 3:
        return cs->learners_next;
    default:
        return cs->witnesses;
    }
}

static uint64_t *conf_list_mut(struct craft_conf_state *cs, unsigned i)
{
    return (uint64_t *)conf_list(cs, i);
}

static void set_conf_count(struct craft_conf_state *cs, unsigned i, uint32_t n)
{
    switch (i) {
    case 0:
        cs->n_voters = n;
        break;
    case 1:
        cs->n_voters_outgoing = n;
        break;
    case 2:
        cs->n_learners = n;
        break;
    case 3:
        cs->n_learners_next = n;
        break;
    default:
        cs->n_witnesses = n;
        break;
    }
}

uint64_t craft_message_size(uint16_t version, const struct craft_message *m)
{
    uint64_t size = CRAFT_MESSAGE_MIN_SIZE;

    if (!version_supported(version))
        return 0;
    for (uint32_t i = 0; m->entries != NULL && i < m->n_entries; i++)
        size += CRAFT_ENTRY_HEADER_SIZE + (uint64_t)m->entries[i].len;
    if (m->type == CRAFT_MSG_SNAPSHOT && m->snapshot != NULL) {
        uint32_t counts[CONF_LISTS];
        conf_counts(&m->snapshot->conf, counts);
        size += SNAPSHOT_FIXED_SIZE + CONF_LISTS;
        for (unsigned i = 0; i < CONF_LISTS; i++)
            size += 8 * (uint64_t)counts[i];
    }
    return size;
}

static int check_message(uint16_t version, const struct craft_message *m)
{
    uint8_t wire;

    if (!version_supported(version))
        return CRAFT_EVERSION;
    if (!wire_type_of(m->type, &wire) || (m->flags & ~KNOWN_MSG_FLAGS) != 0)
        return CRAFT_EINVAL;
    if (m->n_entries > 0 && m->entries == NULL)
        return CRAFT_EINVAL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct craft_entry *e = &m->entries[i];
        if (!wire_entry_type_of(e->type, &wire) || e->len > CRAFT_MAX_ENTRY_SIZE ||
            (e->len > 0 && e->data == NULL))
            return CRAFT_EINVAL;
    }
    if (m->type == CRAFT_MSG_SNAPSHOT) {
        uint32_t counts[CONF_LISTS];
        if (m->snapshot == NULL)
            return CRAFT_EINVAL;
        conf_counts(&m->snapshot->conf, counts);
        for (unsigned i = 0; i < CONF_LISTS; i++)
            if (counts[i] > CRAFT_MAX_NODES)
                return CRAFT_EINVAL;
    }
    return 0;
}

/* Writes a checked message of the given size at p. */
static void write_message(uint8_t *p, uint64_t group, const struct craft_message *m)
{
    uint8_t wire = 0;

    put64(p, group);
    wire_type_of(m->type, &wire);
    p[8] = wire;
    p[9] = m->reject ? 1 : 0;
    put32(p + 10, m->flags);
    put64(p + 14, m->from);
    put64(p + 22, m->to);
    put64(p + 30, m->term);
    put64(p + 38, m->log_term);
    put64(p + 46, m->index);
    put64(p + 54, m->commit);
    put64(p + 62, m->reject_hint);
    put64(p + 70, m->context);
    put32(p + 78, m->n_entries);
    p += CRAFT_MESSAGE_MIN_SIZE;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct craft_entry *e = &m->entries[i];
        put64(p, e->term);
        put64(p + 8, e->index);
        wire_entry_type_of(e->type, &wire);
        p[16] = wire;
        put32(p + 17, e->len);
        p += CRAFT_ENTRY_HEADER_SIZE;
        if (e->len > 0)
            memcpy(p, e->data, e->len);
        p += e->len;
    }
    if (m->type == CRAFT_MSG_SNAPSHOT) {
        const struct craft_snapshot_meta *s = m->snapshot;
        uint32_t counts[CONF_LISTS];
        put64(p, s->index);
        put64(p + 8, s->term);
        p[16] = s->conf.auto_leave ? 1 : 0;
        p += SNAPSHOT_FIXED_SIZE;
        conf_counts(&s->conf, counts);
        for (unsigned i = 0; i < CONF_LISTS; i++) {
            const uint64_t *ids = conf_list(&s->conf, i);
            *p++ = (uint8_t)counts[i];
            for (uint32_t j = 0; j < counts[i]; j++, p += 8)
                put64(p, ids[j]);
        }
    }
}

/* Appends a checked message; size is craft_message_size(). */
static int append_message(struct craft_buf *b, uint64_t size, uint64_t group,
                          const struct craft_message *m)
{
    int rc;

    if (size > SIZE_MAX)
        return CRAFT_ENOMEM;
    rc = craft_buf_reserve(b, (size_t)size);
    if (rc != 0)
        return rc;
    write_message(b->data + b->len, group, m);
    b->len += (size_t)size;
    return 0;
}

int craft_message_encode(struct craft_buf *b, uint16_t version, uint64_t group,
                         const struct craft_message *m)
{
    int rc = check_message(version, m);

    if (rc != 0)
        return rc;
    return append_message(b, craft_message_size(version, m), group, m);
}

int craft_batch_begin(struct craft_batch_writer *w, struct craft_buf *buf, uint16_t version,
                      uint32_t max_payload)
{
    int rc;

    if (!version_supported(version))
        return CRAFT_EVERSION;
    rc = craft_buf_reserve(buf, CRAFT_FRAME_HEADER_SIZE + CRAFT_BATCH_COUNT_SIZE);
    if (rc != 0)
        return rc;
    w->buf = buf;
    w->frame_start = buf->len;
    w->count = 0;
    w->max_payload = effective_max(max_payload);
    w->version = version;
    put_frame_header(buf->data + buf->len, CRAFT_FRAME_BATCH, version, 0);
    put32(buf->data + buf->len + CRAFT_FRAME_HEADER_SIZE, 0);
    buf->len += CRAFT_FRAME_HEADER_SIZE + CRAFT_BATCH_COUNT_SIZE;
    return 0;
}

int craft_batch_add(struct craft_batch_writer *w, uint64_t group, const struct craft_message *m)
{
    uint64_t payload, size;
    int rc;

    rc = check_message(w->version, m);
    if (rc != 0)
        return rc;
    size = craft_message_size(w->version, m);
    payload = w->buf->len - w->frame_start - CRAFT_FRAME_HEADER_SIZE;
    if (w->count == UINT32_MAX || size > w->max_payload - payload)
        return CRAFT_ETOO_BIG;
    rc = append_message(w->buf, size, group, m);
    if (rc != 0)
        return rc;
    w->count++;
    return 0;
}

void craft_batch_finish(struct craft_batch_writer *w)
{
    uint8_t *p = w->buf->data + w->frame_start;
    size_t payload = w->buf->len - w->frame_start - CRAFT_FRAME_HEADER_SIZE;

    put32(p + CRAFT_FRAME_HEADER_SIZE, w->count);
    seal_frame(p, (uint32_t)payload);
}

/* ------------------------------------------------------------------------
 * Message decoding.
 * ------------------------------------------------------------------------ */

static int fail(struct craft_batch_iter *it, int rc, const char *what)
{
    it->error = rc;
    it->detail = what;
    return rc;
}

int craft_batch_iter_init(struct craft_batch_iter *it, uint16_t version, const void *payload,
                          size_t len, struct craft_entry *entries, size_t entries_cap,
                          struct craft_snapshot_meta *snapshot)
{
    const uint8_t *p = payload;

    memset(it, 0, sizeof(*it));
    it->version = version;
    it->entries = entries;
    it->entries_cap = entries == NULL ? 0 : entries_cap;
    it->snapshot = snapshot;
    if (snapshot == NULL)
        return fail(it, CRAFT_EINVAL, "no storage for a snapshot meta");
    if (!version_supported(version))
        return fail(it, CRAFT_EVERSION, "unsupported batch version");
    if (p == NULL || len < CRAFT_BATCH_COUNT_SIZE)
        return fail(it, CRAFT_ECORRUPT, "truncated batch count");
    it->remaining = get32(p);
    it->pos = p + CRAFT_BATCH_COUNT_SIZE;
    it->end = p + len;
    if (it->remaining > (len - CRAFT_BATCH_COUNT_SIZE) / CRAFT_MESSAGE_MIN_SIZE)
        return fail(it, CRAFT_ECORRUPT, "message count exceeds the bytes present");
    return 0;
}

static int decode_snapshot(struct craft_batch_iter *it, const uint8_t **pp)
{
    const uint8_t *p = *pp;
    struct craft_snapshot_meta *s = it->snapshot;

    if ((size_t)(it->end - p) < SNAPSHOT_FIXED_SIZE)
        return fail(it, CRAFT_ECORRUPT, "truncated snapshot meta");
    memset(s, 0, sizeof(*s));
    s->index = get64(p);
    s->term = get64(p + 8);
    if (p[16] > 1)
        return fail(it, CRAFT_ECORRUPT, "snapshot auto_leave is neither 0 nor 1");
    s->conf.auto_leave = p[16] == 1;
    p += SNAPSHOT_FIXED_SIZE;
    for (unsigned i = 0; i < CONF_LISTS; i++) {
        uint32_t n;
        uint64_t *ids = conf_list_mut(&s->conf, i);
        if (p == it->end)
            return fail(it, CRAFT_ECORRUPT, "truncated membership");
        n = *p++;
        if (n > CRAFT_MAX_NODES)
            return fail(it, CRAFT_ECORRUPT, "membership list longer than CRAFT_MAX_NODES");
        if ((size_t)(it->end - p) / 8 < n)
            return fail(it, CRAFT_ECORRUPT, "truncated membership list");
        for (uint32_t j = 0; j < n; j++, p += 8)
            ids[j] = get64(p);
        set_conf_count(&s->conf, i, n);
    }
    *pp = p;
    return 0;
}

int craft_batch_next(struct craft_batch_iter *it, uint64_t *group, struct craft_message *msg)
{
    const uint8_t *p = it->pos;
    uint8_t wire, reject;
    uint32_t flags, n_entries;
    int rc;

    if (it->error != 0 && it->error != CRAFT_ETOO_BIG)
        return it->error;
    it->error = 0;
    it->detail = NULL;
    if (it->remaining == 0) {
        if (p != it->end)
            return fail(it, CRAFT_ECORRUPT, "trailing bytes after the last message");
        return 0;
    }
    if ((size_t)(it->end - p) < CRAFT_MESSAGE_MIN_SIZE)
        return fail(it, CRAFT_ECORRUPT, "truncated message");
    wire = p[8];
    reject = p[9];
    flags = get32(p + 10);
    n_entries = get32(p + 78);
    if (wire >= N_WIRE_TYPES)
        return fail(it, CRAFT_ECORRUPT, "unknown message type");
    if (!wire_types[wire].remote)
        return fail(it, CRAFT_ECORRUPT, "local-only message type from the network");
    if (reject > 1)
        return fail(it, CRAFT_ECORRUPT, "reject is neither 0 nor 1");
    if ((flags & ~KNOWN_MSG_FLAGS) != 0)
        return fail(it, CRAFT_ECORRUPT, "unknown message flags");
    p += CRAFT_MESSAGE_MIN_SIZE;
    if (n_entries > (size_t)(it->end - p) / CRAFT_ENTRY_HEADER_SIZE)
        return fail(it, CRAFT_ECORRUPT, "entry count exceeds the bytes present");
    if (n_entries > it->entries_cap || (n_entries > 0 && it->entries == NULL)) {
        /* Not sticky: the caller may grow its array and retry this message. */
        it->entries_needed = n_entries;
        return fail(it, CRAFT_ETOO_BIG, "more entries than the caller's array holds");
    }
    for (uint32_t i = 0; i < n_entries; i++) {
        struct craft_entry *e = &it->entries[i];
        uint8_t entry_wire;
        if ((size_t)(it->end - p) < CRAFT_ENTRY_HEADER_SIZE)
            return fail(it, CRAFT_ECORRUPT, "truncated entry");
        e->term = get64(p);
        e->index = get64(p + 8);
        entry_wire = p[16];
        e->len = get32(p + 17);
        p += CRAFT_ENTRY_HEADER_SIZE;
        if (entry_wire >= N_WIRE_ENTRY_TYPES)
            return fail(it, CRAFT_ECORRUPT, "unknown entry type");
        e->type = wire_entry_types[entry_wire];
        if (e->len > CRAFT_MAX_ENTRY_SIZE)
            return fail(it, CRAFT_ECORRUPT, "entry larger than CRAFT_MAX_ENTRY_SIZE");
        if (e->len > (size_t)(it->end - p))
            return fail(it, CRAFT_ECORRUPT, "truncated entry data");
        e->data = e->len > 0 ? p : NULL;
        p += e->len;
    }
    if (wire_types[wire].type == CRAFT_MSG_SNAPSHOT) {
        rc = decode_snapshot(it, &p);
        if (rc != 0)
            return rc;
    }

    memset(msg, 0, sizeof(*msg));
    *group = get64(it->pos);
    msg->type = wire_types[wire].type;
    msg->flags = flags;
    msg->reject = reject == 1;
    msg->from = get64(it->pos + 14);
    msg->to = get64(it->pos + 22);
    msg->term = get64(it->pos + 30);
    msg->log_term = get64(it->pos + 38);
    msg->index = get64(it->pos + 46);
    msg->commit = get64(it->pos + 54);
    msg->reject_hint = get64(it->pos + 62);
    msg->context = get64(it->pos + 70);
    msg->n_entries = n_entries;
    msg->entries = n_entries > 0 ? it->entries : NULL;
    msg->snapshot = msg->type == CRAFT_MSG_SNAPSHOT ? it->snapshot : NULL;
    it->pos = p;
    it->remaining--;
    return 1;
}

/* ------------------------------------------------------------------------
 * Snapshot streams.
 * ------------------------------------------------------------------------ */

int craft_snapshot_begin_encode(struct craft_buf *b, uint16_t version, uint32_t max_payload,
                                uint64_t group, const struct craft_message *m)
{
    struct craft_batch_writer w;
    size_t len = b->len;
    int rc;

    if (m->type != CRAFT_MSG_SNAPSHOT || m->n_entries != 0)
        return CRAFT_EINVAL;
    rc = craft_batch_begin(&w, b, version, max_payload);
    if (rc != 0)
        return rc;
    rc = craft_batch_add(&w, group, m);
    if (rc != 0) {
        b->len = len;
        return rc;
    }
    /* A batch of one, under its own kind; the checksum is sealed after. */
    put16(b->data + w.frame_start + 6, CRAFT_FRAME_SNAPSHOT_BEGIN);
    craft_batch_finish(&w);
    return 0;
}

int craft_snapshot_begin_decode(uint16_t version, const void *payload, size_t len, uint64_t *group,
                                struct craft_message *m, struct craft_snapshot_meta *meta,
                                const char **detail)
{
    struct craft_batch_iter it;
    int rc;

    rc = craft_batch_iter_init(&it, version, payload, len, NULL, 0, meta);
    if (rc == 0 && it.remaining != 1)
        rc = fail(&it, CRAFT_ECORRUPT, "snapshot begin without exactly one message");
    if (rc == 0) {
        rc = craft_batch_next(&it, group, m);
        if (rc == CRAFT_ETOO_BIG)
            rc = fail(&it, CRAFT_ECORRUPT, "snapshot begin with entries");
        else if (rc == 1 && m->type != CRAFT_MSG_SNAPSHOT)
            rc = fail(&it, CRAFT_ECORRUPT, "snapshot begin without a snapshot message");
        else if (rc == 1)
            rc = craft_batch_next(&it, group, m);
    }
    if (rc != 0)
        set_detail(detail, it.detail);
    return rc;
}

/* Appends a frame of kind around a fixed-size payload built by the caller. */
static int append_fixed(struct craft_buf *b, uint16_t kind, uint16_t version, const uint8_t *p,
                        uint32_t len)
{
    if (!version_supported(version))
        return CRAFT_EVERSION;
    return craft_frame_append(b, kind, version, p, len);
}

int craft_snapshot_chunk_encode(struct craft_buf *b, uint16_t version, uint64_t offset,
                                const void *data, uint32_t len)
{
    uint8_t *p;
    int rc;

    if (!version_supported(version))
        return CRAFT_EVERSION;
    if (len == 0 || data == NULL || len > UINT32_MAX - CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE)
        return CRAFT_EINVAL;
    rc = craft_buf_reserve(b, (size_t)CRAFT_FRAME_HEADER_SIZE + CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE +
                                  len);
    if (rc != 0)
        return rc;
    p = b->data + b->len;
    put_frame_header(p, CRAFT_FRAME_SNAPSHOT_CHUNK, version, 0);
    put64(p + CRAFT_FRAME_HEADER_SIZE, offset);
    memcpy(p + CRAFT_FRAME_HEADER_SIZE + CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE, data, len);
    seal_frame(p, CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE + len);
    b->len += (size_t)CRAFT_FRAME_HEADER_SIZE + CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE + len;
    return 0;
}

int craft_snapshot_chunk_decode(const void *payload, size_t len, struct craft_snapshot_chunk *c,
                                const char **detail)
{
    const uint8_t *p = payload;

    if (p == NULL || len <= CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE || len > UINT32_MAX) {
        set_detail(detail, "snapshot chunk without data");
        return CRAFT_ECORRUPT;
    }
    c->offset = get64(p);
    c->data = p + CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE;
    c->len = (uint32_t)(len - CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE);
    return 0;
}

/* The end and ack payloads share one layout: u64 size, u32 value. */
static int encode_size_and_u32(struct craft_buf *b, uint16_t kind, uint16_t version, uint64_t size,
                               uint32_t value)
{
    uint8_t p[CRAFT_SNAPSHOT_END_SIZE];

    put64(p, size);
    put32(p + 8, value);
    return append_fixed(b, kind, version, p, sizeof(p));
}

static int decode_size_and_u32(const void *payload, size_t len, uint64_t *size, uint32_t *value,
                               const char **detail, const char *what)
{
    const uint8_t *p = payload;

    if (p == NULL || len != CRAFT_SNAPSHOT_END_SIZE) {
        set_detail(detail, what);
        return CRAFT_ECORRUPT;
    }
    *size = get64(p);
    *value = get32(p + 8);
    return 0;
}

int craft_snapshot_end_encode(struct craft_buf *b, uint16_t version, uint64_t size, uint32_t crc)
{
    return encode_size_and_u32(b, CRAFT_FRAME_SNAPSHOT_END, version, size, crc);
}

int craft_snapshot_end_decode(const void *payload, size_t len, uint64_t *size, uint32_t *crc,
                              const char **detail)
{
    return decode_size_and_u32(payload, len, size, crc, detail,
                               "snapshot end payload of the wrong size");
}

int craft_snapshot_ack_encode(struct craft_buf *b, uint16_t version, uint64_t size, uint32_t status)
{
    if (status > CRAFT_SNAPSHOT_FAILED)
        return CRAFT_EINVAL;
    return encode_size_and_u32(b, CRAFT_FRAME_SNAPSHOT_ACK, version, size, status);
}

int craft_snapshot_ack_decode(const void *payload, size_t len, uint64_t *size, uint32_t *status,
                              const char **detail)
{
    int rc = decode_size_and_u32(payload, len, size, status, detail,
                                 "snapshot ack payload of the wrong size");

    if (rc == 0 && *status > CRAFT_SNAPSHOT_FAILED) {
        set_detail(detail, "unknown snapshot ack status");
        rc = CRAFT_ECORRUPT;
    }
    return rc;
}
