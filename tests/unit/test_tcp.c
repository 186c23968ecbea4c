/* TCP transport on loopback: transports in one process on one libuv loop
 * exchange many messages of several groups (entries and snapshot metadata
 * included) in order per sending node; many sends leave in one write; a peer
 * of another cluster, or that expects another node, is refused; raw sockets
 * sending garbage, an absurd length, a corrupt batch or nothing are closed
 * and counted while a good peer keeps working; a peer that goes away is
 * reconnected when it comes back; a full queue returns CRAFT_EBUSY and
 * reports the node unreachable.
 *
 * Every scenario runs the loop until a condition holds, bounded by a
 * watchdog (WATCHDOG_MS of loop time) so that a broken transport fails the
 * test instead of hanging it; no result depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <craft/codec.h>
#include <craft/transport.h>

#include "tcp_harness.h"

#define WATCHDOG_MS 20000u
#define MAX_ID 8
#define CLUSTER 0xC1u
#define GROUPS 7u

struct node {
    struct craft_tcp_transport *t;
    uint64_t id;
    int port;
    uint64_t received;
    uint64_t received_from[MAX_ID];
    uint64_t last_index[MAX_ID]; /* per sending node: indexes strictly increase */
    uint64_t snapshots;
    uint64_t bad; /* messages out of order or with wrong content */
    uint64_t unreachable[MAX_ID];
    uint64_t sent_to[MAX_ID]; /* sequence numbers used */
    bool closed;
};

static uint32_t max_payload; /* for the transports node_start_cfg() creates; 0: default */

static int setup(void **state)
{
    (void)state;
    max_payload = 0;
    th_start(WATCHDOG_MS);
    return 0;
}

/* Message content, derived from its sequence number so the receiver can
 * check it: group, entries and their data, a snapshot every 50th. */
static uint64_t group_of(uint64_t seq)
{
    return seq % GROUPS + 1;
}

static uint32_t entries_of(uint64_t seq)
{
    return (uint32_t)(seq % 4);
}

static void entry_text(char *out, size_t cap, uint64_t group, uint64_t seq, uint32_t k)
{
    snprintf(out, cap, "group %llu seq %llu entry %u", (unsigned long long)group,
             (unsigned long long)seq, k);
}

static void on_message(void *data, uint64_t group, const struct craft_message *m)
{
    struct node *n = data;
    char text[64];

    n->received++;
    if (m->from >= MAX_ID || m->to != n->id || m->index <= n->last_index[m->from] ||
        group != group_of(m->index) || m->term != 3 || m->commit != m->index - 1) {
        n->bad++;
        return;
    }
    n->last_index[m->from] = m->index;
    n->received_from[m->from]++;
    if (m->index % 50 == 0) {
        if (m->type != CRAFT_MSG_SNAPSHOT || m->snapshot == NULL ||
            m->snapshot->index != m->index || m->snapshot->conf.n_voters != 3 ||
            m->snapshot->conf.voters[2] != 3)
            n->bad++;
        n->snapshots++;
        return;
    }
    if (m->type != CRAFT_MSG_APPEND || m->n_entries != entries_of(m->index)) {
        n->bad++;
        return;
    }
    for (uint32_t k = 0; k < m->n_entries; k++) {
        entry_text(text, sizeof(text), group, m->index, k);
        if (m->entries[k].len != strlen(text) + 1 ||
            memcmp(m->entries[k].data, text, m->entries[k].len) != 0 ||
            m->entries[k].index != m->index + k)
            n->bad++;
    }
}

static void on_unreachable(void *data, uint64_t node_id)
{
    struct node *n = data;

    if (node_id < MAX_ID)
        n->unreachable[node_id]++;
}

static int node_start_cfg(struct node *n, uint64_t id, uint64_t cluster, int port,
                          size_t max_queue_bytes)
{
    struct craft_tcp_config cfg;
    char address[32];

    memset(n, 0, sizeof(*n));
    n->id = id;
    snprintf(address, sizeof(address), "127.0.0.1:%d", port);
    th_config_init(&cfg, cluster, id, n, on_message);
    cfg.listen_address = address;
    cfg.max_queue_bytes = max_queue_bytes;
    cfg.max_payload = max_payload;
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 80;
    cfg.handshake_timeout_ms = 200;
    cfg.on_unreachable = on_unreachable;
    return th_create(&cfg, &n->t, &n->port, NULL, 0);
}

static void node_start(struct node *n, uint64_t id)
{
    assert_int_equal(node_start_cfg(n, id, CLUSTER, 0, 0), 0);
    assert_true(n->port > 0);
}

static void node_close(struct node *n)
{
    if (n->t != NULL && !n->closed) {
        th_close(n->t);
        n->closed = true;
        n->t = NULL;
    }
}

static void set_peer(struct node *from, const struct node *to)
{
    th_set_peer(from->t, to->id, to->port);
}

/* Sends the next message from `from` to node `to`; returns send's rc. Its
 * buffers are scribbled over afterwards: the transport must have copied. */
static int send_next(struct node *from, uint64_t to)
{
    static char texts[4][64];
    struct craft_entry entries[4];
    struct craft_snapshot_meta snapshot;
    struct craft_message m;
    uint64_t seq = ++from->sent_to[to];
    uint64_t group = group_of(seq);
    int rc;

    memset(&m, 0, sizeof(m));
    m.from = from->id;
    m.to = to;
    m.term = 3;
    m.log_term = 2;
    m.index = seq;
    m.commit = seq - 1;
    if (seq % 50 == 0) {
        memset(&snapshot, 0, sizeof(snapshot));
        snapshot.index = seq;
        snapshot.term = 2;
        snapshot.conf.n_voters = 3;
        for (uint32_t i = 0; i < 3; i++)
            snapshot.conf.voters[i] = i + 1;
        m.type = CRAFT_MSG_SNAPSHOT;
        m.snapshot = &snapshot;
    } else {
        m.type = CRAFT_MSG_APPEND;
        m.n_entries = entries_of(seq);
        m.entries = entries;
        for (uint32_t k = 0; k < m.n_entries; k++) {
            entry_text(texts[k], sizeof(texts[k]), group, seq, k);
            entries[k] = (struct craft_entry){3, seq + k, CRAFT_ENTRY_NORMAL,
                                              (uint32_t)strlen(texts[k]) + 1, texts[k]};
        }
    }
    rc = craft_tcp_send(from->t, group, &m);
    memset(texts, 'X', sizeof(texts));
    memset(&entries, 0xEE, sizeof(entries));
    memset(&snapshot, 0xEE, sizeof(snapshot));
    return rc;
}

static void connect_pair(struct node *a, struct node *b)
{
    th_connect_pair(a->t, a->id, a->port, b->t, b->id, b->port);
}

struct expect {
    struct node *n;
    uint64_t from;
    uint64_t count;
};

static bool received_from(void *arg)
{
    struct expect *e = arg;
    return e->n->received_from[e->from] >= e->count;
}

static void expect_received(struct node *n, uint64_t from, uint64_t count)
{
    struct expect e = {n, from, count};

    assert_true(th_run_until(received_from, &e));
    assert_int_equal(n->received_from[from], count);
    assert_int_equal(n->bad, 0);
}

/* ------------------------------------------------------------------------ */

static void test_two_transports_exchange_many_messages_in_one_write(void **state)
{
    struct node a, b;
    struct craft_tcp_stats before, after;
    const uint64_t count = 2000;

    (void)state;
    node_start(&a, 1);
    node_start(&b, 2);
    connect_pair(&a, &b);

    before = th_stats(a.t);
    for (uint64_t i = 0; i < count; i++) {
        assert_int_equal(send_next(&a, 2), 0);
        assert_int_equal(send_next(&b, 1), 0);
    }
    expect_received(&b, 1, count);
    expect_received(&a, 2, count);
    assert_int_equal(b.snapshots, count / 50);
    after = th_stats(a.t);
    /* Every message queued in one loop iteration leaves in one frame and one write. */
    assert_int_equal(after.writes - before.writes, 1);
    assert_int_equal(after.frames_sent - before.frames_sent, 1);
    assert_int_equal(after.messages_sent - before.messages_sent, count);
    assert_int_equal(th_stats(b.t).messages_received, count);
    assert_int_equal(th_stats(b.t).frames_received, 1);
    assert_int_equal(after.connections_bad_input + after.connections_refused, 0);

    node_close(&a);
    node_close(&b);
}

static void test_three_transports_several_groups_in_order_per_peer(void **state)
{
    struct node n[3];
    const uint64_t rounds = 20, per_round = 37;

    (void)state;
    for (int i = 0; i < 3; i++)
        node_start(&n[i], (uint64_t)i + 1);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                set_peer(&n[i], &n[j]);
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t k = 0; k < per_round; k++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    if (i != j)
                        /* Queued while connecting, or sent: never dropped here. */
                        assert_int_equal(send_next(&n[i], n[j].id), 0);
        uv_run(&th_loop, UV_RUN_NOWAIT);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                expect_received(&n[j], n[i].id, rounds * per_round);
    for (int i = 0; i < 3; i++) {
        struct craft_tcp_stats s = th_stats(n[i].t);
        assert_int_equal(s.messages_sent, 2 * rounds * per_round);
        assert_true(s.writes < s.messages_sent / 10); /* batched */
        assert_int_equal(s.messages_dropped_peer_down + s.messages_dropped_queue_full, 0);
        node_close(&n[i]);
    }
}

static bool refused_twice(void *arg)
{
    struct node *a = arg;
    return th_stats(a->t).connections_refused >= 2;
}

static void test_wrong_cluster_or_node_is_refused(void **state)
{
    struct node a, b, stranger, impostor;

    (void)state;
    node_start(&a, 1);
    node_start(&b, 2);
    assert_int_equal(node_start_cfg(&stranger, 3, CLUSTER + 1, 0, 0), 0);
    assert_int_equal(node_start_cfg(&impostor, 4, CLUSTER, 0, 0), 0);
    set_peer(&stranger, &a);
    /* The impostor believes node 5 listens at a's address. */
    th_set_peer(impostor.t, 5, a.port);
    connect_pair(&a, &b);
    assert_true(th_run_until(refused_twice, &a));
    assert_false(craft_tcp_peer_connected(stranger.t, 1));
    assert_false(craft_tcp_peer_connected(impostor.t, 5));
    assert_true(th_stats(stranger.t).connect_failures >= 1);

    /* a keeps serving b. */
    for (int i = 0; i < 100; i++)
        assert_int_equal(send_next(&b, 1), 0);
    expect_received(&a, 2, 100);
    assert_int_equal(a.received, 100);

    node_close(&a);
    node_close(&b);
    node_close(&stranger);
    node_close(&impostor);
}

/* Whether the transport closed fd's connection (after any bytes it sent). */
static bool raw_closed_by_peer(int fd)
{
    char buf[256];
    ssize_t n;

    do
        n = recv(fd, buf, sizeof(buf), 0);
    while (n > 0);
    return n == 0 || errno == ECONNRESET;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

struct counts {
    struct node *n;
    uint64_t bad_input, timed_out;
};

static bool counted(void *arg)
{
    struct counts *c = arg;
    struct craft_tcp_stats s = th_stats(c->n->t);
    return s.connections_bad_input >= c->bad_input && s.connections_timed_out >= c->timed_out;
}

static void test_garbage_connections_are_closed_and_counted(void **state)
{
    struct node a, b;
    uint8_t garbage[64], absurd[CRAFT_FRAME_HEADER_SIZE];
    struct craft_buf buf;
    struct craft_handshake hs;
    int fds[5];
    struct counts expected;
    struct craft_tcp_stats s;

    (void)state;
    node_start(&a, 1);
    node_start(&b, 2);
    connect_pair(&a, &b);

    /* Garbage: no magic. */
    memset(garbage, 0xAB, sizeof(garbage));
    fds[0] = th_raw_connect(a.port);
    th_raw_send(fds[0], garbage, sizeof(garbage));

    /* A well-formed header announcing a 4 GiB payload: refused before reading it. */
    memset(absurd, 0, sizeof(absurd));
    put32(absurd, CRAFT_FRAME_MAGIC);
    absurd[4] = 1;
    absurd[6] = CRAFT_FRAME_BATCH;
    put32(absurd + 8, 0xFFFFFFF0u);
    fds[1] = th_raw_connect(a.port);
    th_raw_send(fds[1], absurd, sizeof(absurd));

    /* A good handshake, then a batch frame with a damaged checksum. */
    craft_buf_init(&buf);
    craft_handshake_init(&hs, CLUSTER, 7, 1);
    assert_int_equal(craft_handshake_encode(&buf, &hs), 0);
    {
        uint8_t payload[4] = {0, 0, 0, 0}; /* an empty batch */
        size_t start = buf.len;
        assert_int_equal(craft_frame_append(&buf, CRAFT_FRAME_BATCH, 1, payload, 4), 0);
        buf.data[start + 12] ^= 0x01;
    }
    fds[2] = th_raw_connect(a.port);
    th_raw_send(fds[2], buf.data, buf.len);
    craft_buf_free(&buf);

    /* A good handshake, then a batch with a valid checksum whose one
     * message has an unknown type. */
    craft_buf_init(&buf);
    assert_int_equal(craft_handshake_encode(&buf, &hs), 0);
    {
        uint8_t payload[CRAFT_BATCH_COUNT_SIZE + CRAFT_MESSAGE_MIN_SIZE];
        memset(payload, 0xFF, sizeof(payload));
        put32(payload, 1);
        assert_int_equal(
            craft_frame_append(&buf, CRAFT_FRAME_BATCH, 1, payload, (uint32_t)sizeof(payload)), 0);
    }
    fds[4] = th_raw_connect(a.port);
    th_raw_send(fds[4], buf.data, buf.len);
    craft_buf_free(&buf);

    /* Nothing at all: closed when the handshake does not come. */
    fds[3] = th_raw_connect(a.port);

    expected = (struct counts){&a, 4, 1};
    assert_true(th_run_until(counted, &expected));
    th_run_for(20); /* let the closes reach the sockets */
    for (int i = 0; i < 5; i++) {
        assert_true(raw_closed_by_peer(fds[i]));
        close(fds[i]);
    }
    s = th_stats(a.t);
    assert_int_equal(s.connections_bad_input, 4);
    assert_int_equal(s.connections_timed_out, 1);
    assert_int_equal(s.connections_accepted, 6); /* b and the five raw sockets */
    assert_int_equal(a.received, 0);

    /* The good peer keeps working, both ways. */
    assert_true(craft_tcp_peer_connected(b.t, 1));
    for (int i = 0; i < 300; i++) {
        assert_int_equal(send_next(&b, 1), 0);
        assert_int_equal(send_next(&a, 2), 0);
    }
    expect_received(&a, 2, 300);
    expect_received(&b, 1, 300);

    node_close(&a);
    node_close(&b);
}

struct lost {
    struct node *a;
    uint64_t peer;
};

static bool lost_and_reported(void *arg)
{
    struct lost *l = arg;
    return !craft_tcp_peer_connected(l->a->t, l->peer) && l->a->unreachable[l->peer] > 0;
}

static bool a_connected_to_b(void *arg)
{
    struct lost *l = arg;
    return craft_tcp_peer_connected(l->a->t, l->peer);
}

static void test_peer_that_goes_away_is_reconnected(void **state)
{
    struct node a, b;
    struct lost l = {&a, 2};
    int port;
    int rc;

    (void)state;
    node_start(&a, 1);
    node_start(&b, 2);
    connect_pair(&a, &b);
    for (int i = 0; i < 100; i++)
        assert_int_equal(send_next(&a, 2), 0);
    expect_received(&b, 1, 100);

    /* b goes away: a notices, reports it, and drops what it sends meanwhile. */
    port = b.port;
    node_close(&b);
    assert_true(th_run_until(lost_and_reported, &l));
    rc = send_next(&a, 2);
    assert_true(rc == 0 || rc == CRAFT_EDROPPED); /* dropped, or queued on a doomed connect */
    th_run_for(50);
    assert_false(craft_tcp_peer_connected(a.t, 2));
    assert_true(th_stats(a.t).connect_failures >= 2); /* it keeps trying */

    /* b comes back at the same address; a reconnects by itself. */
    assert_int_equal(node_start_cfg(&b, 2, CLUSTER, port, 0), 0);
    assert_true(th_run_until(a_connected_to_b, &l));
    for (int i = 0; i < 100; i++)
        assert_int_equal(send_next(&a, 2), 0);
    expect_received(&b, 1, 100);
    assert_int_equal(b.received, 100);

    node_close(&a);
    node_close(&b);
}

struct report {
    struct node *n;
    uint64_t peer;
};

static bool reported(void *arg)
{
    struct report *r = arg;
    return r->n->unreachable[r->peer] > 0;
}

static void test_full_queue_returns_ebusy_and_reports_unreachable(void **state)
{
    struct node a, b;
    struct report r;
    uint64_t accepted = 0;
    int rc = 0;

    (void)state;
    assert_int_equal(node_start_cfg(&a, 1, CLUSTER, 0, 4096), 0);
    node_start(&b, 2);
    connect_pair(&a, &b);

    /* Without the loop running nothing leaves: the queue fills up. */
    for (int i = 0; i < 1000 && rc == 0; i++) {
        rc = send_next(&a, 2);
        if (rc == 0)
            accepted++;
    }
    assert_int_equal(rc, CRAFT_EBUSY);
    assert_true(accepted >= 10);
    assert_int_equal(th_stats(a.t).messages_dropped_queue_full, 1);
    assert_int_equal(a.unreachable[2], 0); /* reported from the loop, not from send */
    r = (struct report){&a, 2};
    assert_true(th_run_until(reported, &r));
    assert_int_equal(a.unreachable[2], 1);
    /* What was accepted arrives; the dropped message leaves a gap in the sequence only. */
    expect_received(&b, 1, accepted);

    /* Once drained, the queue takes messages again. */
    assert_int_equal(send_next(&a, 2), 0);
    expect_received(&b, 1, accepted + 1);

    /* A node nobody configured: dropped. */
    {
        struct craft_message m = {.type = CRAFT_MSG_HEARTBEAT, .from = 1, .to = 6, .term = 3};
        assert_int_equal(craft_tcp_send(a.t, 1, &m), CRAFT_EDROPPED);
    }

    node_close(&a);
    node_close(&b);
}

static void send_large(struct node *from, uint64_t to, size_t len, int expect_rc)
{
    struct craft_entry entry;
    struct craft_message m;
    uint8_t *data = malloc(len);
    uint64_t seq = from->sent_to[to] + 1;

    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 31 + seq);
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_APPEND;
    m.from = from->id;
    m.to = to;
    m.term = 3;
    m.index = seq;
    m.commit = seq - 1;
    m.n_entries = 1;
    m.entries = &entry;
    entry = (struct craft_entry){3, seq, CRAFT_ENTRY_NORMAL, (uint32_t)len, data};
    assert_int_equal(craft_tcp_send(from->t, group_of(seq), &m), expect_rc);
    if (expect_rc == 0)
        from->sent_to[to] = seq;
    memset(data, 0, len); /* the transport copied it */
    free(data);
}

struct large_seen {
    uint64_t count;
    uint64_t bad;
};

static void on_large_message(void *data, uint64_t group, const struct craft_message *m)
{
    struct large_seen *seen = data;
    const uint8_t *bytes;

    (void)group;
    seen->count++;
    if (m->n_entries != 1) {
        seen->bad++;
        return;
    }
    bytes = m->entries[0].data;
    for (size_t i = 0; i < m->entries[0].len; i++)
        if (bytes[i] != (uint8_t)(i * 31 + m->index))
            seen->bad++;
}

static bool seen_three(void *arg)
{
    struct large_seen *seen = arg;
    return seen->count >= 3;
}

static void test_messages_beyond_one_frame_are_split_into_frames(void **state)
{
    struct node a, b;
    struct craft_tcp_config cfg;
    struct large_seen seen = {0, 0};
    struct craft_tcp_stats before, after;

    (void)state;
    max_payload = 1u << 20;
    node_start(&a, 1);
    /* b delivers to a counter of its own, checking every byte. */
    memset(&b, 0, sizeof(b));
    b.id = 2;
    th_config_init(&cfg, CLUSTER, 2, &seen, on_large_message);
    cfg.max_payload = max_payload;
    assert_int_equal(th_create(&cfg, &b.t, &b.port, NULL, 0), 0);
    set_peer(&a, &b);
    {
        struct lost l = {&a, 2};
        assert_true(th_run_until(a_connected_to_b, &l));
    }

    before = th_stats(a.t);
    send_large(&a, 2, 600 * 1024, 0);
    send_large(&a, 2, 600 * 1024, 0);
    send_large(&a, 2, 600 * 1024, 0);
    /* One message above the frame bound alone can never travel. */
    send_large(&a, 2, 2u << 20, CRAFT_ETOO_BIG);
    assert_true(th_run_until(seen_three, &seen));
    assert_int_equal(seen.count, 3);
    assert_int_equal(seen.bad, 0);
    after = th_stats(a.t);
    assert_int_equal(after.frames_sent - before.frames_sent, 3);
    assert_int_equal(after.writes - before.writes, 1);

    node_close(&a);
    th_close(b.t);
}

struct silent {
    struct node *a;
};

static bool timed_out_twice(void *arg)
{
    struct silent *q = arg;
    return th_stats(q->a->t).connections_timed_out >= 2 && q->a->unreachable[5] > 0;
}

static void test_peer_that_never_answers_the_handshake_is_retried(void **state)
{
    struct node a;
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    struct silent q = {&a};
    int fd;

    (void)state;
    node_start(&a, 1);
    /* A socket that listens (the kernel completes connects) but never reads. */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    th_set_peer(a.t, 5, ntohs(addr.sin_port));

    /* Queued while connecting, then dropped with the connection. */
    {
        struct craft_message m = {.type = CRAFT_MSG_HEARTBEAT, .from = 1, .to = 5, .term = 3};
        assert_int_equal(craft_tcp_send(a.t, 1, &m), 0);
    }
    assert_true(th_run_until(timed_out_twice, &q));
    assert_false(craft_tcp_peer_connected(a.t, 5));
    assert_int_equal(th_stats(a.t).messages_dropped_peer_down, 1);
    assert_int_equal(th_stats(a.t).messages_sent, 0);
    node_close(&a);
    close(fd);
}

static void test_bad_arguments_are_refused(void **state)
{
    struct node a;
    struct craft_tcp_config cfg;
    struct craft_tcp_transport *t;

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.node_id = 1;
    cfg.on_message = on_message;
    cfg.listen_address = "not an address";
    assert_int_equal(craft_tcp_create(&th_loop, &cfg, &t), CRAFT_EINVAL);
    cfg.listen_address = NULL;
    cfg.node_id = 0;
    assert_int_equal(craft_tcp_create(&th_loop, &cfg, &t), CRAFT_EINVAL);

    node_start(&a, 1);
    assert_int_equal(craft_tcp_set_peer(a.t, 2, "127.0.0.1"), CRAFT_EINVAL);
    assert_int_equal(craft_tcp_set_peer(a.t, 2, "127.0.0.1:99999"), CRAFT_EINVAL);
    assert_int_equal(craft_tcp_set_peer(a.t, 1, "127.0.0.1:1000"), CRAFT_EINVAL);
    assert_int_equal(craft_tcp_set_peer(a.t, 0, "127.0.0.1:1000"), CRAFT_EINVAL);
    assert_int_equal(craft_tcp_set_peer(a.t, 2, "[::1]:1000"), 0);
    assert_int_equal(craft_tcp_remove_peer(a.t, 2), 0);
    assert_int_equal(craft_tcp_remove_peer(a.t, 2), CRAFT_EINVAL);

    /* The address is taken. */
    {
        struct node again;
        assert_true(node_start_cfg(&again, 3, CLUSTER, a.port, 0) < 0);
    }
    node_close(&a);
}

static void test_messages_that_cannot_travel_are_refused(void **state)
{
    struct node a, b;
    struct craft_message hup = {.type = CRAFT_MSG_HUP, .from = 1, .to = 2};

    (void)state;
    node_start(&a, 1);
    node_start(&b, 2);
    connect_pair(&a, &b);
    /* Local-only types never cross the network; the queue is left as it was. */
    assert_int_equal(craft_tcp_send(a.t, 1, &hup), CRAFT_EINVAL);
    assert_int_equal(send_next(&a, 2), 0);
    assert_int_equal(craft_tcp_send(a.t, 1, &hup), CRAFT_EINVAL);
    assert_int_equal(send_next(&a, 2), 0);
    expect_received(&b, 1, 2);
    assert_int_equal(b.received, 2);
    node_close(&a);
    node_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_two_transports_exchange_many_messages_in_one_write,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_three_transports_several_groups_in_order_per_peer,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_cluster_or_node_is_refused, setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_connections_are_closed_and_counted, setup,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(test_peer_that_goes_away_is_reconnected, setup,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_returns_ebusy_and_reports_unreachable,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_messages_beyond_one_frame_are_split_into_frames, setup,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(test_messages_that_cannot_travel_are_refused, setup,
                                        th_teardown),
        cmocka_unit_test_setup_teardown(test_peer_that_never_answers_the_handshake_is_retried,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments_are_refused, setup, th_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
