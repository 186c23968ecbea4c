/* WAL record and segment header codec (format in wal_record.h).
 *
 * Decoding treats every byte as hostile: each length is checked against the
 * bytes available before use, counts against their maxima, and nothing is
 * read outside the buffer given. */
#include "common/byteorder.h"
#include "wal_record.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"

/* ---- little-endian helpers ---- */

/* ---- buffer ---- */

void wal_buf_free(struct wal_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int wal_buf_reserve(struct wal_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return CRAFT_ENOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL)
        return CRAFT_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* ---- segment header ---- */

void wal_segment_header_encode(const struct wal_segment_header *h,
                               uint8_t out[WAL_SEGMENT_HEADER_SIZE])
{
    memset(out, 0, WAL_SEGMENT_HEADER_SIZE);
    memcpy(out, WAL_MAGIC, 8);
    le_put_u32(out + 8, h->version);
    le_put_u32(out + 12, WAL_SEGMENT_HEADER_SIZE);
    le_put_u64(out + 16, h->seq);
    le_put_u64(out + 24, h->first_lsn);
    le_put_u64(out + 32, h->segment_size);
    le_put_u32(out + 60, crc32c(0, out, 60));
}

int wal_segment_header_decode(const uint8_t *buf, size_t len, struct wal_segment_header *h,
                              const char **why)
{
    if (len < WAL_SEGMENT_HEADER_SIZE) {
        *why = "segment header: file too short";
        return -1;
    }
    if (memcmp(buf, WAL_MAGIC, 8) != 0) {
        *why = "segment header: bad magic (not a craft WAL segment)";
        return -1;
    }
    if (le_get_u32(buf + 60) != crc32c(0, buf, 60)) {
        *why = "segment header: checksum mismatch";
        return -1;
    }
    h->version = le_get_u32(buf + 8);
    if (h->version != WAL_FORMAT_VERSION) {
        *why = "segment header: unsupported format version";
        return -1;
    }
    if (le_get_u32(buf + 12) != WAL_SEGMENT_HEADER_SIZE) {
        *why = "segment header: bad header size";
        return -1;
    }
    h->seq = le_get_u64(buf + 16);
    h->first_lsn = le_get_u64(buf + 24);
    h->segment_size = le_get_u64(buf + 32);
    if (h->first_lsn == 0) {
        *why = "segment header: first lsn is 0";
        return -1;
    }
    if (h->segment_size < WAL_SEGMENT_HEADER_SIZE || h->segment_size > WAL_MAX_SEGMENT_SIZE) {
        *why = "segment header: segment size out of bounds";
        return -1;
    }
    return 0;
}

/* ---- record encoding ---- */

size_t wal_record_size(uint32_t payload_len)
{
    return ((size_t)WAL_RECORD_HEADER_SIZE + payload_len + 7) & ~(size_t)7;
}

uint32_t wal_record_payload_len(const uint8_t *rec)
{
    return le_get_u32(rec + 4);
}

/* Reserves a record of payload_len bytes and writes its header; returns the
 * payload pointer or NULL. */
static uint8_t *record_begin(struct wal_buf *b, uint16_t type, size_t payload_len, int *rc)
{
    if (payload_len > WAL_RECORD_MAX_PAYLOAD) {
        *rc = CRAFT_ETOO_BIG;
        return NULL;
    }
    size_t size = wal_record_size((uint32_t)payload_len);
    *rc = wal_buf_reserve(b, size);
    if (*rc != 0)
        return NULL;
    uint8_t *rec = b->data + b->len;
    memset(rec, 0, size);
    le_put_u32(rec + 4, (uint32_t)payload_len);
    le_put_u16(rec + 24, type);
    b->len += size;
    return rec + WAL_RECORD_HEADER_SIZE;
}

void wal_record_stamp(uint8_t *rec, uint64_t lsn, uint64_t unit_last)
{
    uint32_t len = le_get_u32(rec + 4);
    le_put_u64(rec + 8, lsn);
    le_put_u64(rec + 16, unit_last);
    le_put_u32(rec, crc32c(0, rec + 4, WAL_RECORD_HEADER_SIZE - 4 + (size_t)len));
}

#define CONF_LISTS 5

size_t wal_conf_size(const struct craft_conf_state *cs)
{
    return 24 + 8 * ((size_t)cs->n_voters + cs->n_voters_outgoing + cs->n_learners +
                     cs->n_learners_next + cs->n_witnesses);
}

bool wal_conf_valid(const struct craft_conf_state *cs)
{
    return cs->n_voters <= CRAFT_MAX_NODES && cs->n_voters_outgoing <= CRAFT_MAX_NODES &&
           cs->n_learners <= CRAFT_MAX_NODES && cs->n_learners_next <= CRAFT_MAX_NODES &&
           cs->n_witnesses <= CRAFT_MAX_NODES;
}

uint8_t *wal_conf_put(uint8_t *p, const struct craft_conf_state *cs)
{
    const uint32_t counts[CONF_LISTS] = {cs->n_voters, cs->n_voters_outgoing, cs->n_learners,
                                         cs->n_learners_next, cs->n_witnesses};
    const uint64_t *lists[CONF_LISTS] = {cs->voters, cs->voters_outgoing, cs->learners,
                                         cs->learners_next, cs->witnesses};
    for (int i = 0; i < CONF_LISTS; i++)
        le_put_u32(p + 4 * i, counts[i]);
    le_put_u32(p + 20, cs->auto_leave ? 1 : 0);
    p += 24;
    for (int i = 0; i < CONF_LISTS; i++)
        for (uint32_t k = 0; k < counts[i]; k++, p += 8)
            le_put_u64(p, lists[i][k]);
    return p;
}

/* Decodes a membership at *p (bounded by end); advances *p. */
bool wal_conf_get(const uint8_t **pp, const uint8_t *end, struct craft_conf_state *cs)
{
    const uint8_t *p = *pp;
    if (end - p < 24)
        return false;
    uint32_t counts[CONF_LISTS];
    uint64_t total = 0;
    for (int i = 0; i < CONF_LISTS; i++) {
        counts[i] = le_get_u32(p + 4 * i);
        if (counts[i] > CRAFT_MAX_NODES)
            return false;
        total += counts[i];
    }
    uint32_t auto_leave = le_get_u32(p + 20);
    if (auto_leave > 1)
        return false;
    p += 24;
    if ((uint64_t)(end - p) < total * 8)
        return false;
    memset(cs, 0, sizeof(*cs));
    cs->n_voters = counts[0];
    cs->n_voters_outgoing = counts[1];
    cs->n_learners = counts[2];
    cs->n_learners_next = counts[3];
    cs->n_witnesses = counts[4];
    cs->auto_leave = auto_leave == 1;
    uint64_t *lists[CONF_LISTS] = {cs->voters, cs->voters_outgoing, cs->learners, cs->learners_next,
                                   cs->witnesses};
    for (int i = 0; i < CONF_LISTS; i++)
        for (uint32_t k = 0; k < counts[i]; k++, p += 8)
            lists[i][k] = le_get_u64(p);
    *pp = p;
    return true;
}

#define ENTRIES_FIXED 24 /* group, first index, count, zero */
#define ENTRY_HEADER 16  /* term, type, len */

int wal_encode_entries(struct wal_buf *b, uint64_t group, const struct craft_entry *entries,
                       size_t n)
{
    size_t payload = ENTRIES_FIXED;
    if (n == 0 || n > UINT32_MAX)
        return CRAFT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        payload += ENTRY_HEADER + entries[i].len;
        if (payload > WAL_RECORD_MAX_PAYLOAD)
            return CRAFT_ETOO_BIG;
    }
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_ENTRIES, payload, &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    le_put_u64(p + 8, entries[0].index);
    le_put_u32(p + 16, (uint32_t)n);
    p += ENTRIES_FIXED;
    for (size_t i = 0; i < n; i++) {
        le_put_u64(p, entries[i].term);
        le_put_u32(p + 8, entries[i].type);
        le_put_u32(p + 12, entries[i].len);
        p += ENTRY_HEADER;
        if (entries[i].len > 0)
            memcpy(p, entries[i].data, entries[i].len);
        p += entries[i].len;
    }
    return 0;
}

int wal_encode_hard_state(struct wal_buf *b, uint64_t group, const struct craft_hard_state *hs)
{
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_HARD_STATE, 32, &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    le_put_u64(p + 8, hs->term);
    le_put_u64(p + 16, hs->vote);
    le_put_u64(p + 24, hs->commit);
    return 0;
}

int wal_encode_conf_state(struct wal_buf *b, uint64_t group, const struct craft_conf_state *cs)
{
    if (!wal_conf_valid(cs))
        return CRAFT_EINVAL;
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_CONF_STATE, 8 + wal_conf_size(cs), &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    wal_conf_put(p + 8, cs);
    return 0;
}

int wal_encode_snapshot(struct wal_buf *b, uint64_t group, const struct craft_snapshot_meta *m)
{
    if (!wal_conf_valid(&m->conf))
        return CRAFT_EINVAL;
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_SNAPSHOT, 24 + wal_conf_size(&m->conf), &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    le_put_u64(p + 8, m->index);
    le_put_u64(p + 16, m->term);
    wal_conf_put(p + 24, &m->conf);
    return 0;
}

int wal_encode_compact(struct wal_buf *b, uint64_t group, uint64_t index, uint64_t term)
{
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_COMPACT, 24, &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    le_put_u64(p + 8, index);
    le_put_u64(p + 16, term);
    return 0;
}

int wal_encode_truncate(struct wal_buf *b, uint64_t group, uint64_t index)
{
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_TRUNCATE, 16, &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    le_put_u64(p + 8, index);
    return 0;
}

int wal_encode_group_state(struct wal_buf *b, uint64_t group, const struct craft_hard_state *hs,
                           const struct craft_conf_state *cs,
                           const struct craft_snapshot_meta *snap, uint64_t compact_index,
                           uint64_t compact_term)
{
    if (!wal_conf_valid(cs) || !wal_conf_valid(&snap->conf))
        return CRAFT_EINVAL;
    /* group, flags+zero, hs (3), compact (2), snapshot index, term, conf, conf */
    size_t payload = 8 + 8 + 24 + 16 + 16 + wal_conf_size(&snap->conf) + wal_conf_size(cs);
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_GROUP_STATE, payload, &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    le_put_u32(p + 8, snap->index > 0 ? WAL_GS_HAS_SNAPSHOT : 0);
    le_put_u64(p + 16, hs->term);
    le_put_u64(p + 24, hs->vote);
    le_put_u64(p + 32, hs->commit);
    le_put_u64(p + 40, compact_index);
    le_put_u64(p + 48, compact_term);
    le_put_u64(p + 56, snap->index);
    le_put_u64(p + 64, snap->term);
    p = wal_conf_put(p + 72, &snap->conf);
    wal_conf_put(p, cs);
    return 0;
}

int wal_encode_remove_group(struct wal_buf *b, uint64_t group)
{
    int rc;
    uint8_t *p = record_begin(b, WAL_REC_REMOVE_GROUP, 8, &rc);
    if (p == NULL)
        return rc;
    le_put_u64(p, group);
    return 0;
}

/* ---- record decoding ---- */

const char *wal_decode_result_name(int r)
{
    switch (r) {
    case WAL_DEC_OK:
        return "ok";
    case WAL_DEC_ZERO:
        return "zeros (no record)";
    case WAL_DEC_TRUNCATED:
        return "record runs past the end of the file";
    case WAL_DEC_BAD_LENGTH:
        return "record length out of bounds";
    case WAL_DEC_BAD_CHECKSUM:
        return "checksum mismatch";
    case WAL_DEC_BAD_PAYLOAD:
        return "invalid record contents";
    }
    return "unknown";
}

/* Validates the entries of an ENTRIES payload: count entries exactly filling
 * [p, end). */
static bool entries_valid(const uint8_t *p, const uint8_t *end, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < ENTRY_HEADER)
            return false;
        uint32_t type = le_get_u32(p + 8);
        uint32_t len = le_get_u32(p + 12);
        if (type > CRAFT_ENTRY_METADATA)
            return false;
        p += ENTRY_HEADER;
        if ((uint64_t)(end - p) < len)
            return false;
        p += len;
    }
    return p == end;
}

static int decode_payload(const uint8_t *p, size_t len, struct wal_record *rec)
{
    const uint8_t *end = p + len;
    if (len < 8)
        return WAL_DEC_BAD_PAYLOAD;
    rec->group = le_get_u64(p);
    switch (rec->type) {
    case WAL_REC_ENTRIES:
        if (len < ENTRIES_FIXED)
            return WAL_DEC_BAD_PAYLOAD;
        rec->index = le_get_u64(p + 8);
        rec->count = le_get_u32(p + 16);
        if (rec->index == 0 || rec->count == 0 || le_get_u32(p + 20) != 0 ||
            rec->index > UINT64_MAX - rec->count)
            return WAL_DEC_BAD_PAYLOAD;
        rec->entries = p + ENTRIES_FIXED;
        rec->entries_len = len - ENTRIES_FIXED;
        if (!entries_valid(rec->entries, end, rec->count))
            return WAL_DEC_BAD_PAYLOAD;
        return WAL_DEC_OK;
    case WAL_REC_HARD_STATE:
        if (len != 32)
            return WAL_DEC_BAD_PAYLOAD;
        rec->hs.term = le_get_u64(p + 8);
        rec->hs.vote = le_get_u64(p + 16);
        rec->hs.commit = le_get_u64(p + 24);
        return WAL_DEC_OK;
    case WAL_REC_CONF_STATE:
        p += 8;
        if (!wal_conf_get(&p, end, &rec->conf) || p != end)
            return WAL_DEC_BAD_PAYLOAD;
        return WAL_DEC_OK;
    case WAL_REC_SNAPSHOT:
        if (len < 24)
            return WAL_DEC_BAD_PAYLOAD;
        rec->snap.index = le_get_u64(p + 8);
        rec->snap.term = le_get_u64(p + 16);
        p += 24;
        if (!wal_conf_get(&p, end, &rec->snap.conf) || p != end)
            return WAL_DEC_BAD_PAYLOAD;
        return WAL_DEC_OK;
    case WAL_REC_COMPACT:
        if (len != 24)
            return WAL_DEC_BAD_PAYLOAD;
        rec->index = le_get_u64(p + 8);
        rec->term = le_get_u64(p + 16);
        return WAL_DEC_OK;
    case WAL_REC_TRUNCATE:
        if (len != 16)
            return WAL_DEC_BAD_PAYLOAD;
        rec->index = le_get_u64(p + 8);
        if (rec->index == 0)
            return WAL_DEC_BAD_PAYLOAD;
        return WAL_DEC_OK;
    case WAL_REC_GROUP_STATE:
        if (len < 72)
            return WAL_DEC_BAD_PAYLOAD;
        rec->flags = le_get_u32(p + 8);
        if ((rec->flags & ~WAL_GS_HAS_SNAPSHOT) != 0 || le_get_u32(p + 12) != 0)
            return WAL_DEC_BAD_PAYLOAD;
        rec->hs.term = le_get_u64(p + 16);
        rec->hs.vote = le_get_u64(p + 24);
        rec->hs.commit = le_get_u64(p + 32);
        rec->compact_index = le_get_u64(p + 40);
        rec->compact_term = le_get_u64(p + 48);
        rec->snap.index = le_get_u64(p + 56);
        rec->snap.term = le_get_u64(p + 64);
        p += 72;
        if (!wal_conf_get(&p, end, &rec->snap.conf) || !wal_conf_get(&p, end, &rec->conf) ||
            p != end)
            return WAL_DEC_BAD_PAYLOAD;
        return WAL_DEC_OK;
    case WAL_REC_REMOVE_GROUP:
        return len == 8 ? WAL_DEC_OK : WAL_DEC_BAD_PAYLOAD;
    }
    return WAL_DEC_BAD_PAYLOAD;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

int wal_record_decode(const uint8_t *buf, size_t avail, struct wal_record *rec, size_t *size)
{
    if (avail < WAL_RECORD_HEADER_SIZE)
        return all_zero(buf, avail) ? WAL_DEC_ZERO : WAL_DEC_TRUNCATED;
    if (all_zero(buf, WAL_RECORD_HEADER_SIZE))
        return WAL_DEC_ZERO;
    uint32_t len = le_get_u32(buf + 4);
    if (len > WAL_RECORD_MAX_PAYLOAD)
        return WAL_DEC_BAD_LENGTH;
    size_t need = wal_record_size(len);
    if (need > avail) {
        /* The padding may be missing at the very end of a buffer; the
         * checksummed bytes may not. */
        if ((size_t)WAL_RECORD_HEADER_SIZE + len > avail)
            return WAL_DEC_TRUNCATED;
        need = avail;
    }
    if (le_get_u32(buf) != crc32c(0, buf + 4, WAL_RECORD_HEADER_SIZE - 4 + (size_t)len))
        return WAL_DEC_BAD_CHECKSUM;
    /* Clear the small fields only: the memberships are filled when decoded. */
    memset(rec, 0, offsetof(struct wal_record, hs));
    memset(&rec->hs, 0, sizeof(rec->hs));
    rec->snap.index = rec->snap.term = 0;
    rec->compact_index = rec->compact_term = 0;
    rec->lsn = le_get_u64(buf + 8);
    rec->unit_last = le_get_u64(buf + 16);
    rec->type = le_get_u16(buf + 24);
    if (le_get_u16(buf + 26) != 0 || le_get_u32(buf + 28) != 0 || rec->type == 0 ||
        rec->type >= WAL_REC_TYPE_END || rec->lsn == 0 || rec->unit_last < rec->lsn)
        return WAL_DEC_BAD_PAYLOAD;
    int r = decode_payload(buf + WAL_RECORD_HEADER_SIZE, len, rec);
    if (r != WAL_DEC_OK)
        return r;
    *size = need;
    return WAL_DEC_OK;
}

void wal_entries_iter_init(struct wal_entries_iter *it, const struct wal_record *rec)
{
    it->p = rec->entries;
    it->end = rec->entries + rec->entries_len;
    it->index = rec->index;
    it->left = rec->count;
}

bool wal_entries_next(struct wal_entries_iter *it, struct craft_entry *e)
{
    if (it->left == 0 || it->end - it->p < ENTRY_HEADER)
        return false;
    uint32_t len = le_get_u32(it->p + 12);
    if ((uint64_t)(it->end - it->p - ENTRY_HEADER) < len)
        return false;
    e->index = it->index++;
    e->term = le_get_u64(it->p);
    e->type = le_get_u32(it->p + 8);
    e->len = len;
    e->data = len > 0 ? it->p + ENTRY_HEADER : NULL;
    it->p += ENTRY_HEADER + len;
    it->left--;
    return true;
}

bool wal_scan_candidate(const uint8_t *hdr, uint64_t file_left, uint64_t after_lsn, uint32_t *len)
{
    uint32_t rlen = le_get_u32(hdr + 4);
    uint64_t lsn = le_get_u64(hdr + 8);
    if (lsn <= after_lsn || rlen > WAL_RECORD_MAX_PAYLOAD ||
        (uint64_t)WAL_RECORD_HEADER_SIZE + rlen > file_left)
        return false;
    *len = rlen;
    return true;
}

uint64_t wal_scan_start(uint64_t from)
{
    return (from + 8) & ~(uint64_t)7;
}

void wal_scan_tail(const uint8_t *buf, size_t len, size_t from, uint64_t after_lsn,
                   struct wal_tail_evidence *ev)
{
    memset(ev, 0, sizeof(*ev));
    for (size_t off = (size_t)wal_scan_start(from); off + WAL_RECORD_HEADER_SIZE <= len; off += 8) {
        const uint8_t *p = buf + off;
        uint32_t rlen;
        /* Cheap filters before the checksum. */
        if (!wal_scan_candidate(p, len - off, after_lsn, &rlen))
            continue;
        struct wal_record rec;
        size_t size;
        if (wal_record_decode(p, len - off, &rec, &size) != WAL_DEC_OK)
            continue;
        wal_tail_evidence_add(ev, off, rec.unit_last);
    }
}

void wal_tail_evidence_add(struct wal_tail_evidence *ev, uint64_t offset, uint64_t unit_last)
{
    if (ev->valid_records == 0) {
        ev->first_offset = offset;
        ev->min_unit = ev->max_unit = unit_last;
    }
    ev->valid_records++;
    if (unit_last < ev->min_unit)
        ev->min_unit = unit_last;
    if (unit_last > ev->max_unit)
        ev->max_unit = unit_last;
}
