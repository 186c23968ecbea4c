/* Snapshot streams over the TCP transport, on loopback: a 20 MiB snapshot
 * streams on its own connection while heartbeats keep flowing on the node
 * connection, with a bounded window, and arrives intact; a refusal, a store
 * that fails, a source that fails midway, the stream limit and the transport
 * closing each end the stream with done(<0) and, where it began,
 * on_snapshot_end(ok=false); hostile streams from raw sockets (chunk before
 * begin, offsets out of order, size or checksum mismatch, absurd length, a
 * stream that stalls) close that stream alone, are counted, and the receiver
 * keeps serving.
 *
 * As in test_tcp.c, every scenario runs the loop until a condition holds,
 * bounded by a watchdog so that a broken transport fails instead of hanging;
 * no result depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <craft/codec.h>
#include <craft/transport.h>

#include "storage/crc32c.h"
#include "tcp_harness.h"

#define WATCHDOG_MS 30000u
#define CLUSTER 0x5Au
#define GROUP 3u
#define RAW_NODE 9u

/* A frame of the largest chunk, and what a stream may queue at most. */
#define CHUNK_FRAME                                                                                \
    (CRAFT_FRAME_HEADER_SIZE + CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE + CRAFT_TCP_SNAPSHOT_CHUNK)
#define WINDOW_BYTES (CRAFT_TCP_SNAPSHOT_WINDOW * CHUNK_FRAME)

/* What a node's snapshot callbacks do. */
enum receiver_mode {
    RECEIVE_STORE,      /* accept and store */
    RECEIVE_REFUSE,     /* on_snapshot_begin refuses */
    RECEIVE_FAIL_STORE, /* on_snapshot_end(ok) fails */
    RECEIVE_NONE,       /* no snapshot callbacks at all */
};

struct node {
    struct craft_tcp_transport *t;
    uint64_t id;
    int port;
    enum receiver_mode mode;
    uint64_t heartbeats;
    uint64_t heartbeats_during_stream; /* between a begin and its end */
    uint64_t snapshots_delivered;      /* CRAFT_MSG_SNAPSHOT to on_message */
    uint64_t delivered_before_end;     /* a snapshot delivered before being stored: wrong */
    bool streaming;
    uint64_t begins, ends_ok, ends_bad, stored;
    uint64_t bytes;
    uint32_t crc;
    uint64_t bad; /* chunks out of order, sink mix-ups */
    int sink;     /* its address is the sink */
};

/* The sending side's source: size bytes derived from their offset; sends a
 * heartbeat from `heartbeat_from` every 16 reads; fails at fail_at if set. */
struct source {
    struct node *heartbeat_from;
    uint64_t heartbeat_to;
    uint64_t size, pos, fail_at;
    uint64_t reads;
    int closes;
};

static int setup(void **state)
{
    (void)state;
    th_start(WATCHDOG_MS);
    return 0;
}

static uint8_t data_byte(uint64_t offset)
{
    return (uint8_t)((offset * 2654435761u) >> 13);
}

static uint32_t data_crc(uint64_t size)
{
    uint8_t buf[4096];
    uint32_t crc = 0;

    for (uint64_t off = 0; off < size; off += sizeof(buf)) {
        size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = data_byte(off + i);
        crc = crc32c(crc, buf, n);
    }
    return crc;
}

/* ------------------------------------------------------------------------
 * Receiving side.
 * ------------------------------------------------------------------------ */

static void on_message(void *data, uint64_t group, const struct craft_message *m)
{
    struct node *n = data;

    (void)group;
    if (m->type == CRAFT_MSG_HEARTBEAT) {
        n->heartbeats++;
        n->heartbeats_during_stream += n->streaming;
    } else if (m->type == CRAFT_MSG_SNAPSHOT) {
        n->snapshots_delivered++;
        if (n->stored != n->snapshots_delivered || m->snapshot == NULL ||
            m->snapshot->index != 1000 || m->snapshot->conf.n_voters != 2)
            n->delivered_before_end++;
    }
}

static int on_begin(void *data, uint64_t group, const struct craft_message *m, void **sink)
{
    struct node *n = data;

    n->begins++;
    if (group != GROUP || m->type != CRAFT_MSG_SNAPSHOT || m->snapshot->index != 1000)
        n->bad++;
    if (n->mode == RECEIVE_REFUSE)
        return -1;
    n->streaming = true;
    n->bytes = 0;
    n->crc = 0;
    *sink = &n->sink;
    return 0;
}

static int on_chunk(void *data, void *sink, uint64_t offset, const void *buf, size_t len)
{
    struct node *n = data;

    if (sink != &n->sink || offset != n->bytes || len == 0)
        n->bad++;
    n->bytes += len;
    n->crc = crc32c(n->crc, buf, len);
    return 0;
}

static int on_end(void *data, void *sink, bool ok)
{
    struct node *n = data;

    if (sink != &n->sink)
        n->bad++;
    n->streaming = false;
    if (!ok) {
        n->ends_bad++;
        return 0;
    }
    n->ends_ok++;
    if (n->mode == RECEIVE_FAIL_STORE)
        return -1;
    n->stored++;
    return 0;
}

static void node_start_with(struct node *n, uint64_t id, enum receiver_mode mode,
                            uint32_t snapshot_timeout_ms, uint32_t max_streams)
{
    struct craft_tcp_config cfg;

    memset(n, 0, sizeof(*n));
    n->id = id;
    n->mode = mode;
    th_config_init(&cfg, CLUSTER, id, n, on_message);
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 80;
    cfg.snapshot_timeout_ms = snapshot_timeout_ms;
    cfg.max_snapshot_streams = max_streams;
    if (mode != RECEIVE_NONE) {
        cfg.on_snapshot_begin = on_begin;
        cfg.on_snapshot_chunk = on_chunk;
        cfg.on_snapshot_end = on_end;
    }
    assert_int_equal(th_create(&cfg, &n->t, &n->port, NULL, 0), 0);
}

static void node_start(struct node *n, uint64_t id, enum receiver_mode mode)
{
    node_start_with(n, id, mode, 0, 0);
}

static void connect_pair(struct node *a, struct node *b)
{
    th_connect_pair(a->t, a->id, a->port, b->t, b->id, b->port);
}

/* ------------------------------------------------------------------------
 * Sending side.
 * ------------------------------------------------------------------------ */

static void send_heartbeat(struct node *from, uint64_t to)
{
    th_send_heartbeats(from->t, GROUP, from->id, to, 2, 1);
}

static int source_read(void *data, void *buf, size_t cap, size_t *n)
{
    struct source *src = data;
    uint8_t *out = buf;
    size_t len = src->size - src->pos < cap ? (size_t)(src->size - src->pos) : cap;

    if (src->fail_at != 0 && src->pos >= src->fail_at)
        return CRAFT_ESTORAGE;
    for (size_t i = 0; i < len; i++)
        out[i] = data_byte(src->pos + i);
    src->pos += len;
    *n = len;
    if (src->heartbeat_from != NULL && ++src->reads % 16 == 0)
        send_heartbeat(src->heartbeat_from, src->heartbeat_to);
    return 0;
}

static void source_close(void *data)
{
    struct source *src = data;

    src->closes++;
}

static int send_snapshot(struct node *from, uint64_t to, struct source *src, struct th_outcome *o)
{
    struct craft_snapshot_meta meta;
    struct craft_message m;
    struct craft_snapshot_source s = {src, source_read, source_close};
    int rc;

    memset(&meta, 0, sizeof(meta));
    meta.index = 1000;
    meta.term = 2;
    meta.conf.n_voters = 2;
    meta.conf.voters[0] = from->id;
    meta.conf.voters[1] = to;
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_SNAPSHOT;
    m.from = from->id;
    m.to = to;
    m.term = 2;
    m.snapshot = &meta;
    rc = craft_tcp_send_snapshot(from->t, GROUP, &m, s, th_on_done, o);
    memset(&meta, 0xEE, sizeof(meta)); /* copied */
    return rc;
}

static void expect_done(struct th_outcome *o, int status)
{
    assert_true(th_run_until(th_done_called, o));
    assert_int_equal(o->calls, 1);
    assert_int_equal(o->status, status);
    assert_int_equal(o->group, GROUP);
}

static bool heartbeats_seen(void *arg)
{
    struct node *n = arg;
    return n->heartbeats >= 1;
}

/* The node connection still carries messages. */
static void expect_messages_flow(struct node *from, struct node *to)
{
    to->heartbeats = 0;
    send_heartbeat(from, to->id);
    assert_true(th_run_until(heartbeats_seen, to));
}

/* ------------------------------------------------------------------------ */

static void test_large_snapshot_streams_beside_heartbeats_with_a_bounded_window(void **state)
{
    struct node a, b;
    struct source src = {0};
    struct th_outcome o = {0};
    struct craft_tcp_stats sa, sb;
    const uint64_t size = 20u << 20;

    (void)state;
    node_start(&a, 1, RECEIVE_STORE);
    node_start(&b, 2, RECEIVE_STORE);
    connect_pair(&a, &b);
    src.size = size;
    src.heartbeat_from = &a;
    src.heartbeat_to = b.id;
    assert_int_equal(send_snapshot(&a, b.id, &src, &o), 0);
    expect_done(&o, 0);
    assert_int_equal(o.to, b.id);

    /* Intact, stored before being handed to raft, once. */
    assert_int_equal(b.bytes, size);
    assert_int_equal(b.crc, data_crc(size));
    assert_int_equal(b.begins, 1);
    assert_int_equal(b.ends_ok, 1);
    assert_int_equal(b.ends_bad, 0);
    assert_int_equal(b.snapshots_delivered, 1);
    assert_int_equal(b.delivered_before_end, 0);
    assert_int_equal(b.bad, 0);
    assert_int_equal(src.closes, 1);

    /* Heartbeats crossed on the node connection while the data streamed. */
    assert_true(b.heartbeats_during_stream > 0);

    sa = th_stats(a.t);
    sb = th_stats(b.t);
    assert_int_equal(sa.snapshots_sent, 1);
    assert_int_equal(sa.snapshot_bytes_sent, size);
    assert_int_equal(sb.snapshots_received, 1);
    assert_int_equal(sb.snapshot_bytes_received, size);
    assert_int_equal(sa.snapshots_failed + sb.snapshots_failed, 0);
    /* Never more than the window in memory, for a snapshot 80 times larger. */
    assert_true(sa.snapshot_max_queued_bytes > 0);
    assert_true(sa.snapshot_max_queued_bytes <= WINDOW_BYTES);
    expect_messages_flow(&a, &b);
}

static void test_refused_snapshot_fails_the_sender(void **state)
{
    struct node a, b, c;
    struct source src = {0};
    struct th_outcome o = {0};

    (void)state;
    node_start(&a, 1, RECEIVE_STORE);
    node_start(&b, 2, RECEIVE_REFUSE);
    node_start(&c, 3, RECEIVE_NONE);
    connect_pair(&a, &b);
    connect_pair(&a, &c);

    /* The host refuses it. */
    src.size = 1u << 20;
    assert_int_equal(send_snapshot(&a, b.id, &src, &o), 0);
    expect_done(&o, CRAFT_EBUSY);
    assert_int_equal(src.closes, 1);
    assert_int_equal(b.begins, 1);
    assert_int_equal(b.ends_ok + b.ends_bad, 0); /* no sink was made */
    assert_int_equal(b.snapshots_delivered, 0);
    assert_int_equal(th_stats(b.t).snapshots_refused, 1);
    assert_int_equal(th_stats(a.t).snapshots_failed, 1);

    /* A transport without snapshot callbacks refuses every stream. */
    memset(&src, 0, sizeof(src));
    memset(&o, 0, sizeof(o));
    src.size = 1u << 20;
    assert_int_equal(send_snapshot(&a, c.id, &src, &o), 0);
    expect_done(&o, CRAFT_EBUSY);
    assert_int_equal(th_stats(c.t).snapshots_refused, 1);
    expect_messages_flow(&a, &b);
    expect_messages_flow(&a, &c);
}

static void test_store_failure_at_the_end_fails_the_sender(void **state)
{
    struct node a, b;
    struct source src = {0};
    struct th_outcome o = {0};

    (void)state;
    node_start(&a, 1, RECEIVE_STORE);
    node_start(&b, 2, RECEIVE_FAIL_STORE);
    connect_pair(&a, &b);
    src.size = 300000;
    assert_int_equal(send_snapshot(&a, b.id, &src, &o), 0);
    expect_done(&o, CRAFT_ESTORAGE);
    assert_int_equal(b.ends_ok, 1);
    assert_int_equal(b.snapshots_delivered, 0); /* raft never sees it */
    assert_int_equal(th_stats(b.t).snapshots_failed, 1);
    assert_int_equal(th_stats(b.t).snapshots_received, 0);
    expect_messages_flow(&a, &b);
}

struct abort_wait {
    struct node *n;
    struct th_outcome *o;
};

static bool aborted_and_done(void *arg)
{
    struct abort_wait *w = arg;
    return w->n->ends_bad >= 1 && w->o->calls >= 1;
}

static void test_source_failing_midway_truncates_and_aborts_the_receiver(void **state)
{
    struct node a, b;
    struct source src = {0};
    struct th_outcome o = {0};
    struct abort_wait w = {&b, &o};

    (void)state;
    node_start(&a, 1, RECEIVE_STORE);
    node_start(&b, 2, RECEIVE_STORE);
    connect_pair(&a, &b);
    src.size = 4u << 20;
    src.fail_at = 1u << 20;
    assert_int_equal(send_snapshot(&a, b.id, &src, &o), 0);
    assert_true(th_run_until(aborted_and_done, &w));
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, CRAFT_ESTORAGE);
    assert_int_equal(src.closes, 1);
    assert_int_equal(b.ends_bad, 1);
    assert_int_equal(b.ends_ok, 0);
    assert_int_equal(b.snapshots_delivered, 0);
    assert_int_equal(th_stats(a.t).snapshots_failed, 1);
    assert_int_equal(th_stats(b.t).snapshots_failed, 1);
    expect_messages_flow(&a, &b);
}

static void test_stream_limit_and_bad_arguments_are_refused_at_once(void **state)
{
    struct node a, b;
    struct source first = {0}, second = {0}, third = {0};
    struct th_outcome o1 = {0}, o2 = {0}, o3 = {0};
    struct craft_message heartbeat;
    struct craft_snapshot_source s = {&third, source_read, source_close};

    (void)state;
    node_start_with(&a, 1, RECEIVE_STORE, 0, 1);
    node_start(&b, 2, RECEIVE_STORE);
    connect_pair(&a, &b);
    first.size = second.size = 1000;
    assert_int_equal(send_snapshot(&a, b.id, &first, &o1), 0);
    assert_int_equal(send_snapshot(&a, b.id, &second, &o2), CRAFT_EBUSY);
    assert_int_equal(second.closes, 1);
    assert_int_equal(o2.calls, 0);
    /* An unknown node, and a message that is no snapshot. */
    assert_int_equal(send_snapshot(&a, 7, &third, &o3), CRAFT_EDROPPED);
    memset(&heartbeat, 0, sizeof(heartbeat));
    heartbeat.type = CRAFT_MSG_HEARTBEAT;
    heartbeat.to = b.id;
    assert_int_equal(craft_tcp_send_snapshot(a.t, GROUP, &heartbeat, s, th_on_done, &o3),
                     CRAFT_EINVAL);
    assert_int_equal(third.closes, 2);
    assert_int_equal(o3.calls, 0);
    expect_done(&o1, 0);
    assert_int_equal(b.bytes, 1000);
}

static void test_closing_the_transport_ends_streams_under_way(void **state)
{
    struct node a, b;
    struct source src = {0};
    struct th_outcome o = {0};

    (void)state;
    node_start(&a, 1, RECEIVE_STORE);
    node_start(&b, 2, RECEIVE_STORE);
    connect_pair(&a, &b);
    src.size = 1u << 30; /* would take long: closed well before the end */
    assert_int_equal(send_snapshot(&a, b.id, &src, &o), 0);
    th_close(a.t);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, CRAFT_EDROPPED);
    assert_int_equal(src.closes, 1);
}

/* ------------------------------------------------------------------------
 * Hostile streams, from raw sockets.
 * ------------------------------------------------------------------------ */

static void raw_handshake(struct craft_buf *buf, const struct node *n)
{
    struct craft_handshake hs;

    craft_buf_init(buf);
    craft_handshake_init(&hs, CLUSTER, RAW_NODE, n->id);
    assert_int_equal(craft_handshake_encode(buf, &hs), 0);
}

/* A raw stream to n: handshake and begin, then what the test appends. */
static void raw_begin(struct craft_buf *buf, const struct node *n)
{
    struct craft_snapshot_meta meta;
    struct craft_message m;

    raw_handshake(buf, n);
    memset(&meta, 0, sizeof(meta));
    meta.index = 1000;
    meta.conf.n_voters = 2;
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_SNAPSHOT;
    m.from = RAW_NODE;
    m.to = n->id;
    m.snapshot = &meta;
    assert_int_equal(craft_snapshot_begin_encode(buf, 1, 0, GROUP, &m), 0);
}

static void raw_chunk(struct craft_buf *buf, uint64_t offset, uint32_t len)
{
    uint8_t data[256];

    assert_true(len <= sizeof(data));
    for (uint32_t i = 0; i < len; i++)
        data[i] = data_byte(offset + i);
    assert_int_equal(craft_snapshot_chunk_encode(buf, 1, offset, data, len), 0);
}

static void raw_send(int fd, struct craft_buf *buf)
{
    th_raw_send(fd, buf->data, buf->len);
    craft_buf_free(buf);
}

struct wait_counts {
    struct node *n;
    uint64_t ends_bad, bad_input, timed_out;
};

static bool counts_reached(void *arg)
{
    struct wait_counts *w = arg;
    struct craft_tcp_stats s = th_stats(w->n->t);
    return w->n->ends_bad >= w->ends_bad && s.connections_bad_input >= w->bad_input &&
           s.connections_timed_out >= w->timed_out;
}

/* The ack the receiver wrote on fd, after its handshake answer. */
static uint32_t raw_read_ack(int fd)
{
    uint8_t in[256];
    size_t len = 0;
    struct craft_frame f;
    size_t size;
    uint64_t total;
    uint32_t status;
    ssize_t n;

    do {
        n = recv(fd, in + len, sizeof(in) - len, MSG_DONTWAIT);
        if (n > 0)
            len += (size_t)n;
    } while (n > 0);
    assert_int_equal(craft_frame_decode(in, len, 0, &f, &size, NULL), 0);
    assert_int_equal(f.kind, CRAFT_FRAME_HANDSHAKE);
    assert_int_equal(craft_frame_decode(in + size, len - size, 0, &f, NULL, NULL), 0);
    assert_int_equal(f.kind, CRAFT_FRAME_SNAPSHOT_ACK);
    assert_int_equal(craft_snapshot_ack_decode(f.payload, f.payload_len, &total, &status, NULL), 0);
    return status;
}

static void test_hostile_streams_close_that_stream_alone(void **state)
{
    struct node a, b, impatient;
    struct craft_buf buf;
    struct wait_counts w = {0}, stall;
    struct source src = {0};
    struct th_outcome o = {0};
    uint8_t header[CRAFT_FRAME_HEADER_SIZE];
    int fd;

    (void)state;
    node_start(&b, 2, RECEIVE_STORE);
    w.n = &b;

    /* A chunk with no stream begun. */
    fd = th_raw_connect(b.port);
    raw_handshake(&buf, &b);
    raw_chunk(&buf, 0, 10);
    raw_send(fd, &buf);
    w.bad_input = 1;
    assert_true(th_run_until(counts_reached, &w));
    close(fd);
    assert_int_equal(b.begins, 0);

    /* Offsets out of order: a gap. */
    fd = th_raw_connect(b.port);
    raw_begin(&buf, &b);
    raw_chunk(&buf, 0, 100);
    raw_chunk(&buf, 150, 100);
    raw_send(fd, &buf);
    w.bad_input = 2;
    w.ends_bad = 1;
    assert_true(th_run_until(counts_reached, &w));
    close(fd);

    /* A checksum that does not match: answered as failed. */
    fd = th_raw_connect(b.port);
    raw_begin(&buf, &b);
    raw_chunk(&buf, 0, 200);
    assert_int_equal(craft_snapshot_end_encode(&buf, 1, 200, 12345), 0);
    raw_send(fd, &buf);
    w.ends_bad = 2;
    assert_true(th_run_until(counts_reached, &w));
    assert_int_equal(raw_read_ack(fd), CRAFT_SNAPSHOT_FAILED);
    close(fd);

    /* A size that does not match (the bytes' checksum is right). */
    fd = th_raw_connect(b.port);
    raw_begin(&buf, &b);
    raw_chunk(&buf, 0, 200);
    assert_int_equal(craft_snapshot_end_encode(&buf, 1, 201, data_crc(200)), 0);
    raw_send(fd, &buf);
    w.ends_bad = 3;
    assert_true(th_run_until(counts_reached, &w));
    assert_int_equal(raw_read_ack(fd), CRAFT_SNAPSHOT_FAILED);
    close(fd);

    /* An absurd length in the middle of a stream. */
    fd = th_raw_connect(b.port);
    raw_begin(&buf, &b);
    raw_chunk(&buf, 0, 50);
    assert_int_equal(craft_frame_append(&buf, CRAFT_FRAME_SNAPSHOT_CHUNK, 1, NULL, 0), 0);
    memcpy(header, buf.data + buf.len - CRAFT_FRAME_HEADER_SIZE, sizeof(header));
    header[8] = header[9] = header[10] = header[11] = 0xFF;
    memcpy(buf.data + buf.len - CRAFT_FRAME_HEADER_SIZE, header, sizeof(header));
    raw_send(fd, &buf);
    w.bad_input = 3;
    w.ends_bad = 4;
    assert_true(th_run_until(counts_reached, &w));
    close(fd);

    /* A stream that stalls after its first chunk, to a receiver that gives
     * streams little time (its own, so that no other stream here races it). */
    node_start_with(&impatient, 3, RECEIVE_STORE, 100, 0);
    fd = th_raw_connect(impatient.port);
    raw_begin(&buf, &impatient);
    raw_chunk(&buf, 0, 50);
    raw_send(fd, &buf);
    stall = (struct wait_counts){&impatient, 1, 0, 1};
    assert_true(th_run_until(counts_reached, &stall));
    assert_int_equal(th_stats(impatient.t).snapshots_failed, 1);
    close(fd);

    assert_int_equal(b.stored, 0);
    assert_int_equal(b.snapshots_delivered, 0);
    assert_int_equal(b.bad, 0);
    assert_int_equal(th_stats(b.t).snapshots_failed, 4);

    /* The receiver keeps serving: a well-formed stream gets through. */
    node_start(&a, 1, RECEIVE_STORE);
    connect_pair(&a, &b);
    src.size = 100000;
    assert_int_equal(send_snapshot(&a, b.id, &src, &o), 0);
    expect_done(&o, 0);
    assert_int_equal(b.crc, data_crc(src.size));
    assert_int_equal(b.snapshots_delivered, 1);
    expect_messages_flow(&a, &b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_large_snapshot_streams_beside_heartbeats_with_a_bounded_window, setup,
            th_teardown),
        cmocka_unit_test_setup_teardown(test_refused_snapshot_fails_the_sender, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_store_failure_at_the_end_fails_the_sender, setup,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(
            test_source_failing_midway_truncates_and_aborts_the_receiver, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_stream_limit_and_bad_arguments_are_refused_at_once,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_closing_the_transport_ends_streams_under_way, setup,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_streams_close_that_stream_alone, setup,
                                        th_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
