/* Mutual TLS on the TCP transport, on loopback: two transports holding
 * certificates of one CA exchange messages and stream a snapshot; a peer
 * whose certificate comes from another CA, and a plain-TCP peer, are refused
 * and counted in connections_tls_failed while the server keeps serving its
 * good peer; files that cannot be loaded make craft_tcp_create_err() fail
 * with a message naming them.
 *
 * The certificates are made at test time with the openssl command line in a
 * mkdtemp(3) directory: a CA with two node certificates, and a second CA with
 * one. As everywhere in the transport's tests, the loop runs until a
 * condition holds, bounded by a watchdog; no result depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <craft/transport.h>

#include "storage/crc32c.h"
#include "tcp_harness.h"

#define WATCHDOG_MS 30000u
#define CLUSTER 0x7Bu
#define GROUP 5u

static char dir[64];

struct node {
    struct craft_tcp_transport *t;
    uint64_t id;
    int port;
    uint64_t heartbeats;
    uint64_t snapshots_delivered;
    uint64_t bytes;
    uint32_t crc;
    uint64_t ends_ok, ends_bad;
    int sink;
};

struct source {
    uint64_t size, pos;
    int closes;
};

/* ------------------------------------------------------------------------
 * Certificates.
 * ------------------------------------------------------------------------ */

static void run(const char *fmt, ...)
{
    char command[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(command, sizeof(command), fmt, ap);
    va_end(ap);
    if (system(command) != 0)
        fail_msg("failed: %s", command);
}

#define EC_KEY "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

static void make_ca(const char *name)
{
    run("cd %s && openssl req -x509 " EC_KEY " -keyout %s.key -out %s.pem -days 2 "
        "-subj /CN=%s >/dev/null 2>&1",
        dir, name, name, name);
}

static void make_cert(const char *name, const char *ca, int serial)
{
    run("cd %s && openssl req " EC_KEY " -keyout %s.key -out %s.csr -subj /CN=%s >/dev/null 2>&1 "
        "&& openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -set_serial %d -days 2 "
        "-out %s.pem >/dev/null 2>&1",
        dir, name, name, name, name, ca, ca, serial, name);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/craft-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    make_ca("ca");
    make_cert("node1", "ca", 1);
    make_cert("node2", "ca", 2);
    make_ca("otherca");
    make_cert("stranger", "otherca", 3);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    run("rm -rf %s", dir);
    return 0;
}

/* ------------------------------------------------------------------------
 * Loop and nodes.
 * ------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    th_start(WATCHDOG_MS);
    return 0;
}

static void on_message(void *data, uint64_t group, const struct craft_message *m)
{
    struct node *n = data;

    (void)group;
    if (m->type == CRAFT_MSG_HEARTBEAT)
        n->heartbeats++;
    else if (m->type == CRAFT_MSG_SNAPSHOT)
        n->snapshots_delivered++;
}

static int on_begin(void *data, uint64_t group, const struct craft_message *m, void **sink)
{
    struct node *n = data;

    (void)group;
    (void)m;
    n->bytes = 0;
    n->crc = 0;
    *sink = &n->sink;
    return 0;
}

static int on_chunk(void *data, void *sink, uint64_t offset, const void *buf, size_t len)
{
    struct node *n = data;

    (void)sink;
    (void)offset;
    n->bytes += len;
    n->crc = crc32c(n->crc, buf, len);
    return 0;
}

static int on_end(void *data, void *sink, bool ok)
{
    struct node *n = data;

    (void)sink;
    if (ok)
        n->ends_ok++;
    else
        n->ends_bad++;
    return 0;
}

/* Starts node id with the certificate `cert` of the CA `ca` (NULL: plain). */
static void node_start(struct node *n, uint64_t id, const char *cert, const char *ca)
{
    struct craft_tcp_config cfg;
    char cert_file[128], key_file[128], ca_file[128], err[256];

    memset(n, 0, sizeof(*n));
    n->id = id;
    th_config_init(&cfg, CLUSTER, id, n, on_message);
    cfg.backoff_min_ms = 10;
    cfg.backoff_max_ms = 40;
    cfg.on_snapshot_begin = on_begin;
    cfg.on_snapshot_chunk = on_chunk;
    cfg.on_snapshot_end = on_end;
    if (cert != NULL) {
        snprintf(cert_file, sizeof(cert_file), "%s/%s.pem", dir, cert);
        snprintf(key_file, sizeof(key_file), "%s/%s.key", dir, cert);
        snprintf(ca_file, sizeof(ca_file), "%s/%s.pem", dir, ca);
        cfg.tls_cert_file = cert_file;
        cfg.tls_key_file = key_file;
        cfg.tls_ca_file = ca_file;
    }
    if (th_create(&cfg, &n->t, &n->port, err, sizeof(err)) != 0)
        fail_msg("craft_tcp_create_err: %s", err);
    assert_string_equal(err, "");
}

static void set_peer(struct node *from, const struct node *to)
{
    th_set_peer(from->t, to->id, to->port);
}

static void connect_pair(struct node *a, struct node *b)
{
    th_connect_pair(a->t, a->id, a->port, b->t, b->id, b->port);
}

struct heartbeat_wait {
    struct node *n;
    uint64_t count;
};

static bool heartbeats_arrived(void *arg)
{
    struct heartbeat_wait *w = arg;
    return w->n->heartbeats >= w->count;
}

static void expect_heartbeats(struct node *from, struct node *to, unsigned count)
{
    struct heartbeat_wait w = {to, to->heartbeats + count};

    th_send_heartbeats(from->t, GROUP, from->id, to->id, 4, count);
    assert_true(th_run_until(heartbeats_arrived, &w));
    assert_int_equal(to->heartbeats, w.count);
}

/* ------------------------------------------------------------------------
 * A snapshot source.
 * ------------------------------------------------------------------------ */

static uint8_t data_byte(uint64_t offset)
{
    return (uint8_t)((offset * 2654435761u) >> 11);
}

static int source_read(void *data, void *buf, size_t cap, size_t *n)
{
    struct source *src = data;
    uint8_t *out = buf;
    size_t len = src->size - src->pos < cap ? (size_t)(src->size - src->pos) : cap;

    for (size_t i = 0; i < len; i++)
        out[i] = data_byte(src->pos + i);
    src->pos += len;
    *n = len;
    return 0;
}

static void source_close(void *data)
{
    ((struct source *)data)->closes++;
}

/* ------------------------------------------------------------------------ */

static void test_tls_peers_exchange_messages_and_stream_a_snapshot(void **state)
{
    struct node a, b;
    struct source src = {0};
    struct th_outcome o = {0};
    struct craft_snapshot_meta meta;
    struct craft_message m;
    struct craft_snapshot_source s = {&src, source_read, source_close};
    uint32_t crc;

    (void)state;
    node_start(&a, 1, "node1", "ca");
    node_start(&b, 2, "node2", "ca");
    connect_pair(&a, &b);
    expect_heartbeats(&a, &b, 500);
    expect_heartbeats(&b, &a, 500);

    /* A snapshot stream is a TLS connection like any other. */
    memset(&meta, 0, sizeof(meta));
    meta.index = 10;
    meta.term = 4;
    meta.conf.n_voters = 1;
    meta.conf.voters[0] = 1;
    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_SNAPSHOT;
    m.from = a.id;
    m.to = b.id;
    m.term = 4;
    m.snapshot = &meta;
    src.size = 3u << 20;
    assert_int_equal(craft_tcp_send_snapshot(a.t, GROUP, &m, s, th_on_done, &o), 0);
    assert_true(th_run_until(th_done_called, &o));
    assert_int_equal(o.status, 0);
    assert_int_equal(b.bytes, src.size);
    crc = 0;
    for (uint64_t i = 0; i < src.size; i++) {
        uint8_t byte = data_byte(i);
        crc = crc32c(crc, &byte, 1);
    }
    assert_int_equal(b.crc, crc);
    assert_int_equal(b.ends_ok, 1);
    assert_int_equal(b.snapshots_delivered, 1);
    assert_int_equal(src.closes, 1);
    assert_int_equal(th_stats(a.t).connections_tls_failed, 0);
    assert_int_equal(th_stats(b.t).connections_tls_failed, 0);
    expect_heartbeats(&a, &b, 10);
}

struct tls_failures {
    struct node *n;
    uint64_t count;
};

static bool tls_failed(void *arg)
{
    struct tls_failures *w = arg;
    return th_stats(w->n->t).connections_tls_failed >= w->count;
}

static void test_peers_without_a_certificate_of_our_ca_are_refused(void **state)
{
    struct node a, b, stranger, plain;
    struct tls_failures w;

    (void)state;
    node_start(&b, 2, "node2", "ca");
    /* It trusts b's CA, but b does not trust its own. */
    node_start(&stranger, 3, "stranger", "ca");
    node_start(&plain, 4, NULL, NULL);
    set_peer(&stranger, &b);
    w = (struct tls_failures){&b, 2};
    assert_true(th_run_until(tls_failed, &w));
    assert_false(craft_tcp_peer_connected(stranger.t, b.id));

    set_peer(&plain, &b);
    w.count = th_stats(b.t).connections_tls_failed + 2;
    assert_true(th_run_until(tls_failed, &w));
    assert_false(craft_tcp_peer_connected(plain.t, b.id));
    assert_int_equal(th_stats(b.t).connections_established, 0);
    assert_int_equal(b.heartbeats, 0);

    /* The server keeps serving a peer it trusts, strangers still knocking. */
    node_start(&a, 1, "node1", "ca");
    connect_pair(&a, &b);
    expect_heartbeats(&a, &b, 100);
    expect_heartbeats(&b, &a, 100);
    assert_false(craft_tcp_peer_connected(stranger.t, b.id));
    assert_false(craft_tcp_peer_connected(plain.t, b.id));
}

static void test_files_that_cannot_be_loaded_are_named_in_the_error(void **state)
{
    struct craft_tcp_transport *t = NULL;
    struct craft_tcp_config cfg;
    char cert[128], key[128], other_key[128], ca[128], missing[128], err[256];

    (void)state;
    snprintf(cert, sizeof(cert), "%s/node1.pem", dir);
    snprintf(key, sizeof(key), "%s/node1.key", dir);
    snprintf(other_key, sizeof(other_key), "%s/node2.key", dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
    snprintf(missing, sizeof(missing), "%s/missing.pem", dir);
    memset(&cfg, 0, sizeof(cfg));
    cfg.cluster_id = CLUSTER;
    cfg.node_id = 1;
    cfg.on_message = on_message;

    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    assert_int_equal(craft_tcp_create_err(&th_loop, &cfg, &t, err, sizeof(err)), CRAFT_EINVAL);
    assert_non_null(strstr(err, "tls_ca_file"));

    cfg.tls_ca_file = ca;
    cfg.tls_cert_file = missing;
    assert_int_equal(craft_tcp_create_err(&th_loop, &cfg, &t, err, sizeof(err)), CRAFT_EINVAL);
    assert_non_null(strstr(err, "tls_cert_file"));
    assert_non_null(strstr(err, missing));

    cfg.tls_cert_file = cert;
    cfg.tls_key_file = other_key; /* not the certificate's key */
    assert_int_equal(craft_tcp_create_err(&th_loop, &cfg, &t, err, sizeof(err)), CRAFT_EINVAL);
    assert_non_null(strstr(err, "tls_key_file"));

    cfg.tls_key_file = key;
    cfg.tls_ca_file = missing;
    assert_int_equal(craft_tcp_create_err(&th_loop, &cfg, &t, err, sizeof(err)), CRAFT_EINVAL);
    assert_non_null(strstr(err, "tls_ca_file"));
    assert_null(t);

    /* The plain function fails alike, without a message. */
    assert_int_equal(craft_tcp_create(&th_loop, &cfg, &t), CRAFT_EINVAL);
    cfg.tls_ca_file = ca;
    assert_int_equal(craft_tcp_create_err(&th_loop, &cfg, &t, NULL, 0), 0);
    craft_tcp_close(t, th_closed_cb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_peers_exchange_messages_and_stream_a_snapshot,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_peers_without_a_certificate_of_our_ca_are_refused,
                                        setup, th_teardown),
        cmocka_unit_test_setup_teardown(test_files_that_cannot_be_loaded_are_named_in_the_error,
                                        setup, th_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
