/* The TCP transport (include/craft/transport.h) on libuv.
 *
 * A transport owns a listener, an idle handle that flushes queued batches
 * once per loop iteration, one struct peer per known remote node (its
 * address, its pending batch, its reconnect timer and its current outgoing
 * connection) and a list of every open struct conn, incoming or outgoing.
 * A conn owns its socket, its handshake timer, its read buffer and the bytes
 * of the write in flight; it is freed when libuv has closed both handles.
 * A peer's pending bytes are swapped into its conn's write buffer when they
 * are flushed, so at most one write per connection is in flight and a
 * node's memory is its queue bound plus one frame being read.
 *
 * Snapshot streams travel on connections of their own. The sending side is a
 * struct out_stream owned by its outgoing conn: it reads the source a chunk
 * at a time into one of STREAM_SLOTS write slots, and reads the next chunk
 * only when a slot's write has completed, so at most STREAM_SLOTS chunks of a
 * stream are in memory. The receiving side is a struct in_stream owned by the
 * incoming conn that began it; it hands each chunk to the host as it comes,
 * so a stream costs the receiver one frame. Either side's conn timer fails a
 * stream that makes no progress for snapshot_timeout_ms.
 *
 * TLS (optional) sits between the socket and everything above, through two
 * memory BIOs per connection: bytes read from the socket are fed to the read
 * BIO and the plaintext SSL_read() gives lands in the conn's read buffer;
 * plaintext is SSL_write()n into the write BIO and what it holds goes out in
 * a uv_write of its own (struct tls_write), whose completion completes the
 * caller's write. The TLS handshake comes first; the craft handshake follows
 * it, encrypted, so the frame code never sees the difference.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <craft/codec.h>
#include <craft/transport.h>

#include "storage/crc32c.h"

/* Read buffer growth step beyond the frame being read. */
#define READ_CHUNK 65536u
/* Idle seconds before TCP keepalive probes start. */
#define KEEPALIVE_DELAY_S 30u
/* A snapshot stream's window: chunks written and not yet completed. */
#define STREAM_SLOTS CRAFT_TCP_SNAPSHOT_WINDOW
#define STREAM_CHUNK CRAFT_TCP_SNAPSHOT_CHUNK
/* Plaintext handed to one SSL_write() at most. */
#define TLS_MAX_WRITE (1 << 30)

enum conn_state {
    CONN_CONNECTING, /* outgoing, uv_tcp_connect in flight */
    CONN_HANDSHAKE,  /* waiting for the peer's handshake */
    CONN_READY,      /* handshakes exchanged: batches flow */
    CONN_CLOSING,    /* handles closing; nothing more happens */
};

struct peer;
struct out_stream;
struct in_stream;

struct conn {
    struct craft_tcp_transport *t;
    struct peer *peer; /* outgoing and current: its peer; otherwise NULL */
    bool outgoing;
    enum conn_state state;
    uint16_t version; /* negotiated codec version, once READY */
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake timeout */
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct craft_buf wbuf; /* bytes of the write in flight */
    bool writing;
    uint64_t writing_messages; /* messages in wbuf */
    uint64_t writing_frames;   /* batch frames in wbuf */
    uint8_t *rbuf;             /* bytes read, not yet consumed */
    size_t rlen, rcap;
    int handles_open;
    SSL *ssl;                 /* TLS on: owns its two memory BIOs */
    uint8_t *tls_in;          /* TLS on: ciphertext read from the socket */
    struct out_stream *out;   /* outgoing snapshot stream carried, or NULL */
    struct in_stream *in;     /* incoming snapshot stream carried, or NULL */
    struct conn *prev, *next; /* t->conns */
};

enum out_state {
    OUT_CONNECTING, /* connection and handshake under way */
    OUT_SENDING,    /* begin, chunks and end going out */
    OUT_WAIT_ACK,   /* end written: waiting for the receiver's ack */
    OUT_DONE,       /* done() called; waits for its conn to be freed */
};

/* One write of a stream's window. */
struct slot {
    uv_write_t req;
    struct out_stream *stream;
    struct craft_buf buf; /* one frame */
    bool busy;
};

struct out_stream {
    struct conn *conn; /* owns the stream */
    uint64_t group, to;
    struct craft_message m; /* m.snapshot points at meta */
    struct craft_snapshot_meta meta;
    struct craft_snapshot_source src;
    craft_tcp_snapshot_done_cb done;
    void *arg;
    enum out_state state;
    bool begun;
    uint8_t *chunk; /* source reads land here, chunk_cap bytes */
    size_t chunk_cap;
    struct slot slots[STREAM_SLOTS];
    uint64_t queued; /* bytes of busy slots */
    uint64_t offset; /* data bytes read from the source */
    uint32_t crc;    /* CRC32C of those bytes */
};

struct in_stream {
    void *sink;     /* the host's, while open */
    bool open;      /* begun and on_snapshot_end() not yet called */
    bool finished;  /* ack sent (or refused): later frames are ignored */
    uint8_t *begin; /* copy of the begin payload, decoded again at the end */
    uint32_t begin_len;
    uint64_t received; /* data bytes */
    uint32_t crc;
    uv_write_t ack_req;
    struct craft_buf ack;
};

struct peer {
    struct craft_tcp_transport *t;
    uint64_t id;
    char *address;
    struct sockaddr_storage addr;
    struct conn *conn; /* current outgoing connection, NULL while backing off */
    uv_timer_t timer;  /* reconnect */
    uint32_t backoff_ms;
    struct craft_buf pending; /* whole frames, the last one maybe open */
    struct craft_batch_writer batch;
    bool batch_open;
    uint16_t pending_version;
    uint64_t pending_messages;
    uint64_t pending_frames;
    bool report_unreachable;
    struct peer *next; /* t->peers */
};

struct craft_tcp_transport {
    uv_loop_t *loop;
    struct craft_tcp_config cfg;
    uv_tcp_t listener;
    bool listening;
    uv_idle_t idle;
    bool idle_active;
    struct peer *peers;
    struct conn *conns;
    struct craft_tcp_stats stats;
    struct craft_entry *entries; /* decode storage for one message */
    size_t entries_cap;
    struct craft_snapshot_meta snapshot;
    unsigned handles_open;
    SSL_CTX *tls;         /* NULL: plain TCP */
    unsigned out_streams; /* not yet done */
    unsigned in_streams;  /* open */
    bool closing;
    void (*close_cb)(struct craft_tcp_transport *t);
};

/* ------------------------------------------------------------------------
 * Helpers.
 * ------------------------------------------------------------------------ */

int craft_tcp_parse_address(const char *address, struct sockaddr_storage *addr)
{
    char host[64];
    const char *colon;
    size_t host_len;
    char *end;
    unsigned long port;

    if (address == NULL)
        return CRAFT_EINVAL;
    colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0')
        return CRAFT_EINVAL;
    host_len = (size_t)(colon - address);
    if (host_len == 0 || host_len >= sizeof(host))
        return CRAFT_EINVAL;
    port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port > 65535)
        return CRAFT_EINVAL;
    memset(addr, 0, sizeof(*addr));
    if (address[0] == '[') {
        if (host_len < 3 || address[host_len - 1] != ']')
            return CRAFT_EINVAL;
        memcpy(host, address + 1, host_len - 2);
        host[host_len - 2] = '\0';
        if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)addr) != 0)
            return CRAFT_EINVAL;
    } else {
        memcpy(host, address, host_len);
        host[host_len] = '\0';
        if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)addr) != 0)
            return CRAFT_EINVAL;
    }
    return 0;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c != NULL)
        memcpy(c, s, n);
    return c;
}

static void handle_closed(struct craft_tcp_transport *t)
{
    assert(t->handles_open > 0);
    t->handles_open--;
    if (t->closing && t->handles_open == 0) {
        if (t->close_cb != NULL)
            t->close_cb(t);
        free(t->entries);
        SSL_CTX_free(t->tls);
        free(t);
    }
}

static void idle_cb(uv_idle_t *idle);

/* Makes the idle handle run on the next loop iteration (and keeps the loop
 * from blocking until then). */
static void schedule(struct craft_tcp_transport *t)
{
    if (t->closing || t->idle_active)
        return;
    if (uv_idle_start(&t->idle, idle_cb) == 0)
        t->idle_active = true;
}

static void report_unreachable(struct peer *p)
{
    p->report_unreachable = true;
    schedule(p->t);
}

/* Forgets the pending batch; returns how many messages it held. */
static uint64_t clear_pending(struct peer *p)
{
    uint64_t n = p->pending_messages;
    p->pending.len = 0;
    p->batch_open = false;
    p->pending_messages = 0;
    p->pending_frames = 0;
    return n;
}

/* ------------------------------------------------------------------------
 * Connections.
 * ------------------------------------------------------------------------ */

static void out_stream_free(struct out_stream *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; i < STREAM_SLOTS; i++)
        craft_buf_free(&s->slots[i].buf);
    free(s->chunk);
    free(s);
}

static void in_stream_free(struct in_stream *in)
{
    if (in == NULL)
        return;
    craft_buf_free(&in->ack);
    free(in->begin);
    free(in);
}

/* Ends an outgoing stream once: closes the source and tells the host. */
static void out_stream_finish(struct out_stream *s, int status)
{
    struct craft_tcp_transport *t = s->conn->t;

    if (s->state == OUT_DONE)
        return;
    s->state = OUT_DONE;
    t->out_streams--;
    if (status == 0)
        t->stats.snapshots_sent++;
    else
        t->stats.snapshots_failed++;
    s->src.close(s->src.data);
    s->done(s->arg, s->group, s->to, status);
}

/* Gives up an incoming stream that has not ended: the sink is aborted. */
static void in_stream_abort(struct conn *c)
{
    struct craft_tcp_transport *t = c->t;
    struct in_stream *in = c->in;

    if (in == NULL || !in->open)
        return;
    in->open = false;
    t->in_streams--;
    t->stats.snapshots_failed++;
    t->cfg.on_snapshot_end(t->cfg.data, in->sink, false);
}

static void conn_handle_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    struct craft_tcp_transport *t = c->t;

    if (--c->handles_open > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    craft_buf_free(&c->wbuf);
    free(c->rbuf);
    out_stream_free(c->out);
    in_stream_free(c->in);
    SSL_free(c->ssl);
    free(c->tls_in);
    free(c);
    /* Both of the conn's handles count as one in t->handles_open. */
    handle_closed(t);
}

/* ------------------------------------------------------------------------
 * TLS through memory BIOs.
 * ------------------------------------------------------------------------ */

static void conn_fail(struct conn *c);

/* One write of ciphertext, standing for a caller's write of plaintext. */
struct tls_write {
    uv_write_t req;
    uv_write_t *caller; /* completed with this write; NULL for TLS's own bytes */
    uv_write_cb cb;
    uint8_t data[];
};

static int conn_tls_init(struct conn *c)
{
    BIO *rbio, *wbio;

    c->ssl = SSL_new(c->t->tls);
    c->tls_in = malloc(READ_CHUNK);
    if (c->ssl == NULL || c->tls_in == NULL)
        return CRAFT_ENOMEM;
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        return CRAFT_ENOMEM;
    }
    SSL_set_bio(c->ssl, rbio, wbio); /* the SSL owns them now */
    if (c->outgoing)
        SSL_set_connect_state(c->ssl);
    else
        SSL_set_accept_state(c->ssl);
    return 0;
}

static void tls_write_cb(uv_write_t *req, int status)
{
    struct tls_write *w = req->data;

    if (w->caller != NULL)
        w->cb(w->caller, status);
    free(w);
}

/* Writes whatever TLS has produced; caller (with cb) completes with it. */
static int tls_flush(struct conn *c, uv_write_t *caller, uv_write_cb cb)
{
    BIO *wbio = SSL_get_wbio(c->ssl);
    size_t pending = BIO_ctrl_pending(wbio);
    struct tls_write *w;
    uv_buf_t buf;
    int rc;

    if (pending == 0) {
        assert(caller == NULL);
        return 0;
    }
    w = malloc(sizeof(*w) + pending);
    if (w == NULL)
        return CRAFT_ENOMEM;
    if (BIO_read(wbio, w->data, (int)pending) != (int)pending) {
        free(w);
        return CRAFT_ENOMEM;
    }
    w->req.data = w;
    w->caller = caller;
    w->cb = cb;
    buf = uv_buf_init((char *)w->data, (unsigned)pending);
    rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, tls_write_cb);
    if (rc != 0)
        free(w);
    return rc;
}

static void tls_failed(struct conn *c)
{
    c->t->stats.connections_tls_failed++;
    /* An alert, if TLS made one, is worth a try. */
    tls_flush(c, NULL, NULL);
    conn_fail(c);
}

static void send_handshake(struct conn *c, uint64_t peer_id);
static uint64_t conn_expected_node(const struct conn *c);

/* Advances the TLS handshake; once it is done the connecting side sends the
 * craft handshake. Returns 0 or an error, with c failed. */
static int tls_handshake(struct conn *c)
{
    int rc;

    ERR_clear_error();
    rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
        int e = SSL_get_error(c->ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            tls_failed(c);
            return CRAFT_EINVAL;
        }
    }
    if (tls_flush(c, NULL, NULL) != 0) {
        conn_fail(c);
        return CRAFT_ENOMEM;
    }
    if (rc == 1 && c->outgoing)
        send_handshake(c, conn_expected_node(c));
    return 0;
}

/* Grows the read buffer so that it has room beyond rlen: a chunk, or the
 * rest of the frame being read (its header was checked when it came in). */
static int rbuf_reserve(struct conn *c)
{
    size_t target = c->rlen + READ_CHUNK;

    if (c->rlen >= CRAFT_FRAME_HEADER_SIZE) {
        struct craft_frame f;
        if (craft_frame_header_decode(c->rbuf, c->rlen, c->t->cfg.max_payload, &f, NULL) == 0 &&
            target < CRAFT_FRAME_HEADER_SIZE + (size_t)f.payload_len)
            target = CRAFT_FRAME_HEADER_SIZE + (size_t)f.payload_len;
    }
    if (c->rcap < target) {
        uint8_t *grown = realloc(c->rbuf, target);
        if (grown == NULL)
            return CRAFT_ENOMEM;
        c->rbuf = grown;
        c->rcap = target;
    }
    return 0;
}

/* Feeds n bytes of ciphertext to TLS and appends the plaintext it yields to
 * the read buffer. Returns 0, or an error with c failed. */
static int tls_read(struct conn *c, const uint8_t *in, size_t n)
{
    if (BIO_write(SSL_get_rbio(c->ssl), in, (int)n) != (int)n) {
        conn_fail(c);
        return CRAFT_ENOMEM;
    }
    if (!SSL_is_init_finished(c->ssl) && (tls_handshake(c) != 0 || !SSL_is_init_finished(c->ssl)))
        return c->state == CONN_CLOSING ? CRAFT_EINVAL : 0;
    for (;;) {
        int got, e;

        if (rbuf_reserve(c) != 0) {
            conn_fail(c);
            return CRAFT_ENOMEM;
        }
        ERR_clear_error();
        got = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen));
        if (got > 0) {
            c->rlen += (size_t)got;
            continue;
        }
        e = SSL_get_error(c->ssl, got);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN)
            conn_fail(c); /* the peer closed TLS */
        else
            tls_failed(c);
        return CRAFT_EINVAL;
    }
    /* Reading may have produced bytes to send (a key update, say). */
    if (tls_flush(c, NULL, NULL) != 0) {
        conn_fail(c);
        return CRAFT_ENOMEM;
    }
    return 0;
}

/* Creates a conn with its two handles initialised and links it. */
static struct conn *conn_new(struct craft_tcp_transport *t, bool outgoing)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->t = t;
    c->outgoing = outgoing;
    c->state = outgoing ? CONN_CONNECTING : CONN_HANDSHAKE;
    craft_buf_init(&c->wbuf);
    if ((t->tls != NULL && conn_tls_init(c) != 0) || uv_tcp_init(t->loop, &c->tcp) != 0) {
        SSL_free(c->ssl);
        free(c->tls_in);
        free(c);
        return NULL;
    }
    /* Cannot fail on an initialised loop. */
    uv_timer_init(t->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    c->handles_open = 2;
    t->handles_open++;
    c->next = t->conns;
    if (t->conns != NULL)
        t->conns->prev = c;
    t->conns = c;
    return c;
}

static void conn_close(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    /* After the close: the callbacks below may close the transport. */
    if (c->out != NULL)
        out_stream_finish(c->out, CRAFT_EDROPPED);
    in_stream_abort(c);
}

static void peer_timer_cb(uv_timer_t *timer);

/* The outgoing connection of p failed or was lost: drop what it held and
 * retry after the backoff delay, which doubles up to the maximum. */
static void peer_lost(struct peer *p, struct conn *c)
{
    struct craft_tcp_transport *t = p->t;
    uint64_t dropped = clear_pending(p);

    if (c->writing)
        dropped += c->writing_messages;
    c->writing_messages = 0;
    c->peer = NULL;
    p->conn = NULL;
    t->stats.messages_dropped_peer_down += dropped;
    t->stats.connect_failures++;
    report_unreachable(p);
    uv_timer_start(&p->timer, peer_timer_cb, p->backoff_ms, 0);
    p->backoff_ms =
        p->backoff_ms > t->cfg.backoff_max_ms / 2 ? t->cfg.backoff_max_ms : p->backoff_ms * 2;
}

/* Closes c because of something on it (an error, a bad peer). */
static void conn_fail(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->peer != NULL)
        peer_lost(c->peer, c);
    conn_close(c);
}

static void conn_bad_input(struct conn *c)
{
    c->t->stats.connections_bad_input++;
    conn_fail(c);
}

static void write_cb(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    struct craft_tcp_transport *t = c->t;

    if (status < 0) {
        /* Still marked writing: the messages in flight count as dropped. */
        conn_fail(c);
        c->writing = false;
        return;
    }
    c->writing = false;
    t->stats.bytes_sent += c->wbuf.len;
    t->stats.frames_sent += c->writing_frames;
    t->stats.messages_sent += c->writing_messages;
    c->wbuf.len = 0;
    c->writing_frames = 0;
    c->writing_messages = 0;
    if (c->peer != NULL && c->peer->pending.len > 0)
        schedule(t);
}

/* Writes len bytes at data on c with req; cb(req) runs when they are written
 * or the write failed. The bytes must stay put until then. */
static int conn_send(struct conn *c, uv_write_t *req, const uint8_t *data, size_t len,
                     uv_write_cb cb)
{
    uv_buf_t buf = uv_buf_init((char *)data, (unsigned)len);
    int rc;

    if (c->ssl != NULL) {
        /* A memory BIO takes every byte at once; SSL_write takes an int. */
        for (size_t done = 0; done < len;) {
            int piece = len - done > TLS_MAX_WRITE ? TLS_MAX_WRITE : (int)(len - done);
            ERR_clear_error();
            if (!SSL_is_init_finished(c->ssl) || SSL_write(c->ssl, data + done, piece) != piece)
                return CRAFT_EINVAL;
            done += (size_t)piece;
        }
        rc = tls_flush(c, req, cb);
    } else {
        rc = uv_write(req, (uv_stream_t *)&c->tcp, &buf, 1, cb);
    }
    if (rc == 0)
        c->t->stats.writes++;
    return rc;
}

/* Writes c->wbuf (which must hold bytes). */
static void conn_write(struct conn *c)
{
    int rc;

    assert(!c->writing && c->wbuf.len > 0);
    rc = conn_send(c, &c->write_req, c->wbuf.data, c->wbuf.len, write_cb);
    if (rc != 0) {
        c->writing_messages = 0;
        conn_fail(c);
        return;
    }
    c->writing = true;
}

static void send_handshake(struct conn *c, uint64_t peer_id)
{
    struct craft_handshake hs;

    craft_handshake_init(&hs, c->t->cfg.cluster_id, c->t->cfg.node_id, peer_id);
    if (craft_handshake_encode(&c->wbuf, &hs) != 0) {
        conn_fail(c);
        return;
    }
    conn_write(c);
}

/* Sends p's pending frames as one write on its ready connection. */
static void peer_flush(struct peer *p)
{
    struct conn *c = p->conn;
    struct craft_buf swap;

    if (p->batch_open) {
        craft_batch_finish(&p->batch);
        p->batch_open = false;
    }
    swap = c->wbuf;
    c->wbuf = p->pending;
    p->pending = swap;
    p->pending.len = 0;
    c->writing_messages = p->pending_messages;
    c->writing_frames = p->pending_frames;
    p->pending_messages = 0;
    p->pending_frames = 0;
    conn_write(c);
}

static void handshake_timeout_cb(uv_timer_t *timer)
{
    struct conn *c = timer->data;

    c->t->stats.connections_timed_out++;
    conn_fail(c);
}

/* The node an outgoing connection means to reach (0: an incoming one). */
static uint64_t conn_expected_node(const struct conn *c)
{
    if (c->peer != NULL)
        return c->peer->id;
    if (c->out != NULL)
        return c->out->to;
    return 0;
}

static void out_stream_start(struct out_stream *s);

static void handle_handshake(struct conn *c, const struct craft_frame *f)
{
    struct craft_tcp_transport *t = c->t;
    struct craft_handshake local, remote;
    const char *detail;
    uint16_t version;

    if (f->kind != CRAFT_FRAME_HANDSHAKE ||
        craft_handshake_decode(f->payload, f->payload_len, &remote, &detail) != 0) {
        conn_bad_input(c);
        return;
    }
    craft_handshake_init(&local, t->cfg.cluster_id, t->cfg.node_id, conn_expected_node(c));
    if (craft_handshake_check(&local, &remote, &version, &detail) != 0) {
        t->stats.connections_refused++;
        conn_fail(c);
        return;
    }
    uv_timer_stop(&c->timer);
    c->version = version;
    c->state = CONN_READY;
    t->stats.connections_established++;
    if (!c->outgoing) {
        send_handshake(c, remote.node_id);
        return;
    }
    if (c->out != NULL) {
        out_stream_start(c->out);
        return;
    }
    if (c->peer != NULL) {
        struct peer *p = c->peer;

        p->backoff_ms = t->cfg.backoff_min_ms;
        if (p->pending.len > 0 && p->pending_version != version) {
            /* Queued in a version the peer does not speak. */
            t->stats.messages_dropped_peer_down += clear_pending(p);
            report_unreachable(p);
        }
        if (p->pending.len > 0)
            schedule(t);
    }
}

static void handle_batch(struct conn *c, const struct craft_frame *f)
{
    struct craft_tcp_transport *t = c->t;
    struct craft_batch_iter it;
    struct craft_message m;
    uint64_t group;
    int rc;

    rc = craft_batch_iter_init(&it, f->version, f->payload, f->payload_len, t->entries,
                               t->entries_cap, &t->snapshot);
    while (rc == 0) {
        rc = craft_batch_next(&it, &group, &m);
        if (rc == 1) {
            t->stats.messages_received++;
            t->cfg.on_message(t->cfg.data, group, &m);
            if (c->state == CONN_CLOSING || t->closing)
                return;
            rc = 0;
        } else if (rc == CRAFT_ETOO_BIG) {
            struct craft_entry *grown =
                realloc(t->entries, it.entries_needed * sizeof(*t->entries));
            if (grown == NULL)
                break;
            t->entries = grown;
            t->entries_cap = it.entries_needed;
            it.entries = grown;
            it.entries_cap = it.entries_needed;
            rc = 0;
        } else if (rc == 0) {
            t->stats.frames_received++;
            return;
        }
    }
    conn_bad_input(c);
}

/* ------------------------------------------------------------------------
 * Snapshot streams, sending side.
 * ------------------------------------------------------------------------ */

static void stream_timeout_cb(uv_timer_t *timer)
{
    struct conn *c = timer->data;

    c->t->stats.connections_timed_out++;
    conn_fail(c);
}

/* Progress on a stream connection: its stall timer starts over. */
static void stream_progress(struct conn *c)
{
    uv_timer_start(&c->timer, stream_timeout_cb, c->t->cfg.snapshot_timeout_ms, 0);
}

static void out_stream_fail(struct out_stream *s, int status)
{
    struct conn *c = s->conn;

    out_stream_finish(s, status);
    conn_close(c);
}

static void out_stream_pump(struct out_stream *s);

static void slot_write_cb(uv_write_t *req, int status)
{
    struct slot *slot = req->data;
    struct out_stream *s = slot->stream;
    struct craft_tcp_transport *t = s->conn->t;

    slot->busy = false;
    s->queued -= slot->buf.len;
    if (s->state == OUT_DONE)
        return;
    if (status < 0) {
        out_stream_fail(s, status);
        return;
    }
    t->stats.bytes_sent += slot->buf.len;
    stream_progress(s->conn);
    out_stream_pump(s);
}

/* Fills slot with the stream's next frame: begin, a chunk, or the end. */
static int out_stream_next_frame(struct out_stream *s, struct slot *slot)
{
    struct conn *c = s->conn;
    struct craft_tcp_transport *t = c->t;
    size_t n = 0;
    int rc;

    slot->buf.len = 0;
    if (!s->begun) {
        s->begun = true;
        return craft_snapshot_begin_encode(&slot->buf, c->version, t->cfg.max_payload, s->group,
                                           &s->m);
    }
    rc = s->src.read(s->src.data, s->chunk, s->chunk_cap, &n);
    if (rc == 0 && n > s->chunk_cap)
        rc = CRAFT_EINVAL;
    if (rc != 0 || s->state != OUT_SENDING)
        return rc < 0 ? rc : CRAFT_ESTORAGE;
    if (n == 0) {
        s->state = OUT_WAIT_ACK;
        return craft_snapshot_end_encode(&slot->buf, c->version, s->offset, s->crc);
    }
    rc = craft_snapshot_chunk_encode(&slot->buf, c->version, s->offset, s->chunk, (uint32_t)n);
    if (rc == 0) {
        s->crc = crc32c(s->crc, s->chunk, n);
        s->offset += n;
        t->stats.snapshot_bytes_sent += n;
    }
    return rc;
}

/* Fills every free slot of the window and writes it. */
static void out_stream_pump(struct out_stream *s)
{
    struct craft_tcp_transport *t = s->conn->t;

    for (unsigned i = 0; i < STREAM_SLOTS && s->state == OUT_SENDING; i++) {
        struct slot *slot = &s->slots[i];
        int rc;

        if (slot->busy)
            continue;
        rc = out_stream_next_frame(s, slot);
        if (rc == 0)
            rc = conn_send(s->conn, &slot->req, slot->buf.data, slot->buf.len, slot_write_cb);
        if (rc != 0) {
            if (s->state != OUT_DONE)
                out_stream_fail(s, rc);
            return;
        }
        slot->busy = true;
        s->queued += slot->buf.len;
        if (s->queued > t->stats.snapshot_max_queued_bytes)
            t->stats.snapshot_max_queued_bytes = s->queued;
    }
}

static void out_stream_start(struct out_stream *s)
{
    s->state = OUT_SENDING;
    stream_progress(s->conn);
    out_stream_pump(s);
}

static void handle_ack(struct conn *c, const struct craft_frame *f)
{
    struct out_stream *s = c->out;
    uint64_t size;
    uint32_t status;

    if (craft_snapshot_ack_decode(f->payload, f->payload_len, &size, &status, NULL) != 0 ||
        (status == CRAFT_SNAPSHOT_STORED && (s->state != OUT_WAIT_ACK || size != s->offset))) {
        conn_bad_input(c);
        return;
    }
    /* A refusal may come at any time: the receiver stops reading chunks. */
    out_stream_finish(s, status == CRAFT_SNAPSHOT_STORED    ? 0
                         : status == CRAFT_SNAPSHOT_REFUSED ? CRAFT_EBUSY
                                                            : CRAFT_ESTORAGE);
    conn_close(c);
}

/* ------------------------------------------------------------------------
 * Snapshot streams, receiving side.
 * ------------------------------------------------------------------------ */

static void ack_write_cb(uv_write_t *req, int status)
{
    (void)req;
    (void)status; /* the sender sees a lost ack as a lost connection */
}

/* Answers the stream and ignores what the sender still has in flight. */
static void in_stream_answer(struct conn *c, uint32_t status)
{
    struct in_stream *in = c->in;

    in->finished = true;
    in->ack.len = 0;
    if (craft_snapshot_ack_encode(&in->ack, c->version, in->received, status) != 0 ||
        conn_send(c, &in->ack_req, in->ack.data, in->ack.len, ack_write_cb) != 0)
        conn_fail(c);
}

static void in_stream_fail(struct conn *c)
{
    in_stream_abort(c);
    in_stream_answer(c, CRAFT_SNAPSHOT_FAILED);
}

static void handle_begin(struct conn *c, const struct craft_frame *f)
{
    struct craft_tcp_transport *t = c->t;
    struct craft_message m;
    struct in_stream *in;
    uint64_t group;

    if (c->outgoing || c->in != NULL ||
        craft_snapshot_begin_decode(f->version, f->payload, f->payload_len, &group, &m,
                                    &t->snapshot, NULL) != 0) {
        conn_bad_input(c);
        return;
    }
    in = calloc(1, sizeof(*in));
    if (in == NULL || (in->begin = malloc(f->payload_len)) == NULL) {
        free(in);
        conn_fail(c);
        return;
    }
    c->in = in;
    craft_buf_init(&in->ack);
    memcpy(in->begin, f->payload, f->payload_len);
    in->begin_len = f->payload_len;
    in->ack_req.data = c;
    stream_progress(c);
    if (t->cfg.on_snapshot_begin == NULL || t->in_streams >= t->cfg.max_snapshot_streams ||
        t->cfg.on_snapshot_begin(t->cfg.data, group, &m, &in->sink) != 0) {
        t->stats.snapshots_refused++;
        in_stream_answer(c, CRAFT_SNAPSHOT_REFUSED);
        return;
    }
    in->open = true;
    t->in_streams++;
}

static void handle_chunk(struct conn *c, const struct craft_frame *f)
{
    struct craft_tcp_transport *t = c->t;
    struct in_stream *in = c->in;
    struct craft_snapshot_chunk chunk;

    if (craft_snapshot_chunk_decode(f->payload, f->payload_len, &chunk, NULL) != 0) {
        conn_bad_input(c);
        return;
    }
    stream_progress(c);
    if (in->finished)
        return; /* sent before our answer reached the sender */
    if (chunk.offset != in->received) {
        conn_bad_input(c);
        return;
    }
    if (t->cfg.on_snapshot_chunk(t->cfg.data, in->sink, chunk.offset, chunk.data, chunk.len) != 0) {
        in_stream_fail(c);
        return;
    }
    in->received += chunk.len;
    in->crc = crc32c(in->crc, chunk.data, chunk.len);
    t->stats.snapshot_bytes_received += chunk.len;
}

static void handle_end(struct conn *c, const struct craft_frame *f)
{
    struct craft_tcp_transport *t = c->t;
    struct in_stream *in = c->in;
    struct craft_message m;
    uint64_t size, group;
    uint32_t crc;

    if (craft_snapshot_end_decode(f->payload, f->payload_len, &size, &crc, NULL) != 0) {
        conn_bad_input(c);
        return;
    }
    if (in->finished)
        return;
    if (size != in->received || crc != in->crc) {
        in_stream_fail(c);
        return;
    }
    in->open = false;
    t->in_streams--;
    if (t->cfg.on_snapshot_end(t->cfg.data, in->sink, true) != 0) {
        t->stats.snapshots_failed++;
        in_stream_answer(c, CRAFT_SNAPSHOT_FAILED);
        return;
    }
    t->stats.snapshots_received++;
    /* Decoded at the begin already: cannot fail. */
    if (craft_snapshot_begin_decode(c->version, in->begin, in->begin_len, &group, &m, &t->snapshot,
                                    NULL) == 0) {
        t->stats.messages_received++;
        t->cfg.on_message(t->cfg.data, group, &m);
    }
    if (c->state != CONN_CLOSING && !t->closing)
        in_stream_answer(c, CRAFT_SNAPSHOT_STORED);
}

/* One frame on a connection whose handshake is done. Batches travel on the
 * node connections, the stream frames on a stream's own. */
static void handle_frame(struct conn *c, const struct craft_frame *f)
{
    bool stream_conn = c->in != NULL || c->out != NULL;

    if (f->version != c->version) {
        conn_bad_input(c);
        return;
    }
    switch (f->kind) {
    case CRAFT_FRAME_BATCH:
        if (!stream_conn) {
            handle_batch(c, f);
            return;
        }
        break;
    case CRAFT_FRAME_SNAPSHOT_BEGIN:
        handle_begin(c, f);
        return;
    case CRAFT_FRAME_SNAPSHOT_CHUNK:
    case CRAFT_FRAME_SNAPSHOT_END:
        if (c->in != NULL) {
            if (f->kind == CRAFT_FRAME_SNAPSHOT_CHUNK)
                handle_chunk(c, f);
            else
                handle_end(c, f);
            return;
        }
        break;
    case CRAFT_FRAME_SNAPSHOT_ACK:
        if (c->out != NULL) {
            handle_ack(c, f);
            return;
        }
        break;
    default:
        break;
    }
    conn_bad_input(c);
}

static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;

    (void)suggested;
    if (c->ssl != NULL)
        *buf = uv_buf_init((char *)c->tls_in, READ_CHUNK);
    else if (rbuf_reserve(c) != 0)
        *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
    else
        *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    struct craft_tcp_transport *t = c->t;
    size_t consumed = 0;

    if (c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        /* A peer that hangs up inside a frame sent a truncated one. */
        if (c->rlen > 0 || (nread != UV_EOF && nread != UV_ECONNRESET))
            conn_bad_input(c);
        else
            conn_fail(c);
        return;
    }
    t->stats.bytes_received += (uint64_t)nread;
    if (c->ssl == NULL)
        c->rlen += (size_t)nread;
    else if (tls_read(c, (const uint8_t *)buf->base, (size_t)nread) != 0)
        return;
    while (c->state != CONN_CLOSING && !t->closing) {
        size_t avail = c->rlen - consumed;
        struct craft_frame f;
        size_t frame_size;

        if (avail < CRAFT_FRAME_HEADER_SIZE)
            break;
        /* Refuse an absurd length before waiting for (or reading) its payload. */
        if (craft_frame_header_decode(c->rbuf + consumed, avail, t->cfg.max_payload, &f, NULL) !=
            0) {
            conn_bad_input(c);
            return;
        }
        if (avail - CRAFT_FRAME_HEADER_SIZE < f.payload_len)
            break;
        if (craft_frame_decode(c->rbuf + consumed, avail, t->cfg.max_payload, &f, &frame_size,
                               NULL) != 0) {
            conn_bad_input(c);
            return;
        }
        consumed += frame_size;
        if (c->state == CONN_READY)
            handle_frame(c, &f);
        else
            handle_handshake(c, &f);
    }
    if (c->state == CONN_CLOSING || t->closing)
        return;
    if (consumed > 0) /* rbuf is NULL while TLS has yielded nothing yet */
        memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
    c->rlen -= consumed;
    if (c->rlen == 0 && c->rcap > 4 * READ_CHUNK) {
        /* Give back the room a large frame took. */
        free(c->rbuf);
        c->rbuf = NULL;
        c->rcap = 0;
    }
}

/* Small frames go out at once (the batching is ours); keepalive lets a
 * connection whose host vanished without a FIN end some day. Failures of
 * either are harmless. */
static void conn_configure(struct conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_DELAY_S);
}

static int conn_start_reading(struct conn *c)
{
    uv_timer_start(&c->timer, handshake_timeout_cb, c->t->cfg.handshake_timeout_ms, 0);
    return uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct conn *c = req->data;

    if (c->state == CONN_CLOSING)
        return;
    if (status < 0 || (c->peer == NULL && c->out == NULL)) {
        conn_fail(c);
        return;
    }
    c->state = CONN_HANDSHAKE;
    conn_configure(c);
    if (conn_start_reading(c) != 0) {
        conn_fail(c);
        return;
    }
    if (c->ssl != NULL)
        tls_handshake(c); /* the craft handshake follows it */
    else
        send_handshake(c, conn_expected_node(c));
}

static int conn_connect(struct conn *c, const struct sockaddr_storage *addr)
{
    /* The handshake timeout covers the connect too: a host that drops our
     * SYNs is given up on as soon as one that does not answer. */
    uv_timer_start(&c->timer, handshake_timeout_cb, c->t->cfg.handshake_timeout_ms, 0);
    return uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)addr, connect_cb);
}

static void peer_connect(struct peer *p)
{
    struct craft_tcp_transport *t = p->t;
    struct conn *c;

    assert(p->conn == NULL);
    c = conn_new(t, true);
    if (c == NULL) {
        /* Retry later, as for a failed connect. */
        t->stats.connect_failures++;
        uv_timer_start(&p->timer, peer_timer_cb, p->backoff_ms, 0);
        return;
    }
    c->peer = p;
    p->conn = c;
    if (conn_connect(c, &p->addr) != 0)
        conn_fail(c);
}

static void peer_timer_cb(uv_timer_t *timer)
{
    struct peer *p = timer->data;

    if (p->conn == NULL && !p->t->closing)
        peer_connect(p);
}

static void connection_cb(uv_stream_t *server, int status)
{
    struct craft_tcp_transport *t = server->data;
    struct conn *c;

    if (status < 0 || t->closing)
        return;
    c = conn_new(t, false);
    if (c == NULL)
        return;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    t->stats.connections_accepted++;
    conn_configure(c);
    if (conn_start_reading(c) != 0)
        conn_close(c);
}

/* ------------------------------------------------------------------------
 * Flushing and reporting, once per loop iteration.
 * ------------------------------------------------------------------------ */

static void idle_cb(uv_idle_t *idle)
{
    struct craft_tcp_transport *t = idle->data;
    struct peer *p;
    bool again = true;

    /* Stopped first: a send from a callback below starts it again. */
    uv_idle_stop(idle);
    t->idle_active = false;
    for (p = t->peers; p != NULL; p = p->next) {
        struct conn *c = p->conn;
        if (c != NULL && c->state == CONN_READY && !c->writing && p->pending.len > 0)
            peer_flush(p);
    }
    /* Callbacks may add or remove peers: restart the walk after each. */
    while (again && !t->closing) {
        again = false;
        for (p = t->peers; p != NULL; p = p->next) {
            if (p->report_unreachable) {
                p->report_unreachable = false;
                if (t->cfg.on_unreachable != NULL)
                    t->cfg.on_unreachable(t->cfg.data, p->id);
                again = true;
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------------
 * Public API.
 * ------------------------------------------------------------------------ */

static void transport_handle_closed(uv_handle_t *handle)
{
    handle_closed(handle->data);
}

static void set_error(char *err, size_t err_cap, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || err_cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_cap, fmt, ap);
    va_end(ap);
}

/* OpenSSL's reason for the last failure, for a message. */
static const char *tls_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();

    if (e == 0)
        return "unknown error";
    ERR_error_string_n(e, buf, cap);
    return buf;
}

/* The context every connection's TLS comes from: our certificate and key,
 * and the CA a peer's certificate must be signed by. */
static int tls_context(const struct craft_tcp_config *cfg, SSL_CTX **out, char *err, size_t err_cap)
{
    char reason[256];
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        set_error(err, err_cap, "tls: cannot create a context: %s",
                  tls_reason(reason, sizeof(reason)));
        return CRAFT_ENOMEM;
    }
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        set_error(err, err_cap, "tls: cannot require TLS 1.2: %s",
                  tls_reason(reason, sizeof(reason)));
        goto err_free_ctx;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
        set_error(err, err_cap, "tls_cert_file %s: %s", cfg->tls_cert_file,
                  tls_reason(reason, sizeof(reason)));
        goto err_free_ctx;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        set_error(err, err_cap, "tls_key_file %s: %s", cfg->tls_key_file,
                  tls_reason(reason, sizeof(reason)));
        goto err_free_ctx;
    }
    if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1) {
        set_error(err, err_cap, "tls_ca_file %s: %s", cfg->tls_ca_file,
                  tls_reason(reason, sizeof(reason)));
        goto err_free_ctx;
    }
    /* Mutual: either side refuses a peer without a certificate of our CA. */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    /* Connections are long-lived: no session tickets to resume them. */
    SSL_CTX_set_num_tickets(ctx, 0);
    *out = ctx;
    return 0;

err_free_ctx:
    SSL_CTX_free(ctx);
    return CRAFT_EINVAL;
}

int craft_tcp_create(uv_loop_t *loop, const struct craft_tcp_config *cfg,
                     struct craft_tcp_transport **out)
{
    return craft_tcp_create_err(loop, cfg, out, NULL, 0);
}

int craft_tcp_create_err(uv_loop_t *loop, const struct craft_tcp_config *cfg,
                         struct craft_tcp_transport **out, char *err, size_t err_cap)
{
    struct craft_tcp_transport *t;
    struct sockaddr_storage addr;
    SSL_CTX *tls = NULL;
    int tls_files;
    int rc;

    set_error(err, err_cap, "%s", "");
    if (loop == NULL || cfg == NULL || out == NULL || cfg->node_id == 0 ||
        cfg->on_message == NULL ||
        (cfg->on_snapshot_begin != NULL &&
         (cfg->on_snapshot_chunk == NULL || cfg->on_snapshot_end == NULL))) {
        set_error(err, err_cap,
                  "invalid arguments (node id 0, no on_message, or some snapshot "
                  "callbacks without the others)");
        return CRAFT_EINVAL;
    }
    if (cfg->listen_address != NULL && craft_tcp_parse_address(cfg->listen_address, &addr) != 0) {
        set_error(err, err_cap, "listen address %s does not parse", cfg->listen_address);
        return CRAFT_EINVAL;
    }
    tls_files =
        (cfg->tls_cert_file != NULL) + (cfg->tls_key_file != NULL) + (cfg->tls_ca_file != NULL);
    if (tls_files != 0 && tls_files != 3) {
        set_error(err, err_cap, "tls needs tls_cert_file, tls_key_file and tls_ca_file");
        return CRAFT_EINVAL;
    }
    if (tls_files == 3) {
        rc = tls_context(cfg, &tls, err, err_cap);
        if (rc != 0)
            return rc;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        SSL_CTX_free(tls);
        set_error(err, err_cap, "out of memory");
        return CRAFT_ENOMEM;
    }
    t->tls = tls;
    t->loop = loop;
    t->cfg = *cfg;
    t->cfg.listen_address = NULL; /* not kept */
    t->cfg.tls_cert_file = t->cfg.tls_key_file = t->cfg.tls_ca_file = NULL;
    if (t->cfg.max_queue_bytes == 0)
        t->cfg.max_queue_bytes = CRAFT_TCP_DEFAULT_MAX_QUEUE_BYTES;
    if (t->cfg.max_payload == 0)
        t->cfg.max_payload = CRAFT_FRAME_DEFAULT_MAX_PAYLOAD;
    if (t->cfg.backoff_min_ms == 0)
        t->cfg.backoff_min_ms = CRAFT_TCP_DEFAULT_BACKOFF_MIN_MS;
    if (t->cfg.backoff_max_ms == 0)
        t->cfg.backoff_max_ms = CRAFT_TCP_DEFAULT_BACKOFF_MAX_MS;
    if (t->cfg.handshake_timeout_ms == 0)
        t->cfg.handshake_timeout_ms = CRAFT_TCP_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (t->cfg.snapshot_timeout_ms == 0)
        t->cfg.snapshot_timeout_ms = CRAFT_TCP_DEFAULT_SNAPSHOT_TIMEOUT_MS;
    if (t->cfg.max_snapshot_streams == 0)
        t->cfg.max_snapshot_streams = CRAFT_TCP_DEFAULT_MAX_SNAPSHOT_STREAMS;
    if (t->cfg.backoff_min_ms > t->cfg.backoff_max_ms) {
        set_error(err, err_cap, "backoff_min_ms above backoff_max_ms");
        rc = CRAFT_EINVAL;
        goto err_free;
    }
    uv_idle_init(loop, &t->idle);
    t->idle.data = t;
    t->handles_open++;
    if (cfg->listen_address != NULL) {
        rc = uv_tcp_init(loop, &t->listener);
        if (rc != 0)
            goto err_close;
        t->listener.data = t;
        t->handles_open++;
        t->listening = true;
        rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&t->listener, 128, connection_cb);
        if (rc != 0)
            goto err_close;
    }
    *out = t;
    return 0;

err_close:
    set_error(err, err_cap, "listen on %s: %s", cfg->listen_address, uv_strerror(rc));
    /* Handles are live: the memory goes once libuv has closed them. */
    craft_tcp_close(t, NULL);
    return rc;
err_free:
    SSL_CTX_free(t->tls);
    free(t);
    return rc;
}

int craft_tcp_port(const struct craft_tcp_transport *t)
{
    struct sockaddr_storage addr;
    int len = sizeof(addr);

    if (!t->listening || uv_tcp_getsockname(&t->listener, (struct sockaddr *)&addr, &len) != 0)
        return 0;
    if (addr.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
}

static struct peer *find_peer(const struct craft_tcp_transport *t, uint64_t id)
{
    struct peer *p;

    for (p = t->peers; p != NULL; p = p->next)
        if (p->id == id)
            break;
    return p;
}

/* Closes p's connection and forgets its queue; returns the messages dropped. */
static uint64_t peer_disconnect(struct peer *p)
{
    uint64_t dropped = clear_pending(p);

    if (p->conn != NULL) {
        if (p->conn->writing)
            dropped += p->conn->writing_messages;
        p->conn->writing_messages = 0;
        p->conn->peer = NULL;
        conn_close(p->conn);
        p->conn = NULL;
    }
    uv_timer_stop(&p->timer);
    return dropped;
}

int craft_tcp_set_peer(struct craft_tcp_transport *t, uint64_t node_id, const char *address)
{
    struct sockaddr_storage addr;
    struct peer *p;
    char *copy;

    if (t->closing || node_id == 0 || node_id == t->cfg.node_id ||
        craft_tcp_parse_address(address, &addr) != 0)
        return CRAFT_EINVAL;
    p = find_peer(t, node_id);
    if (p != NULL && strcmp(p->address, address) == 0)
        return 0;
    copy = copy_string(address);
    if (copy == NULL)
        return CRAFT_ENOMEM;
    if (p != NULL) {
        uint64_t dropped = peer_disconnect(p);
        if (dropped > 0) {
            t->stats.messages_dropped_peer_down += dropped;
            report_unreachable(p);
        }
        free(p->address);
    } else {
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            free(copy);
            return CRAFT_ENOMEM;
        }
        p->t = t;
        p->id = node_id;
        craft_buf_init(&p->pending);
        uv_timer_init(t->loop, &p->timer);
        p->timer.data = p;
        t->handles_open++;
        p->next = t->peers;
        t->peers = p;
    }
    p->address = copy;
    p->addr = addr;
    p->backoff_ms = t->cfg.backoff_min_ms;
    peer_connect(p);
    return 0;
}

static void peer_timer_closed(uv_handle_t *handle)
{
    struct peer *p = handle->data;
    struct craft_tcp_transport *t = p->t;

    craft_buf_free(&p->pending);
    free(p->address);
    free(p);
    handle_closed(t);
}

static void peer_free(struct peer *p)
{
    peer_disconnect(p);
    uv_close((uv_handle_t *)&p->timer, peer_timer_closed);
}

int craft_tcp_remove_peer(struct craft_tcp_transport *t, uint64_t node_id)
{
    struct peer **link;

    for (link = &t->peers; *link != NULL; link = &(*link)->next) {
        struct peer *p = *link;
        if (p->id == node_id) {
            *link = p->next;
            peer_free(p);
            return 0;
        }
    }
    return CRAFT_EINVAL;
}

bool craft_tcp_peer_connected(const struct craft_tcp_transport *t, uint64_t node_id)
{
    const struct peer *p = find_peer(t, node_id);

    return p != NULL && p->conn != NULL && p->conn->state == CONN_READY;
}

int craft_tcp_send(struct craft_tcp_transport *t, uint64_t group_id, const struct craft_message *m)
{
    struct peer *p;
    struct conn *c;
    uint16_t version;
    uint64_t size, queued;
    int rc;

    if (t->closing)
        return CRAFT_EDROPPED;
    p = find_peer(t, m->to);
    if (p == NULL) {
        t->stats.messages_dropped_peer_down++;
        return CRAFT_EDROPPED;
    }
    c = p->conn;
    if (c == NULL || c->state == CONN_CLOSING) {
        t->stats.messages_dropped_peer_down++;
        report_unreachable(p);
        return CRAFT_EDROPPED;
    }
    version = c->state == CONN_READY ? c->version : CRAFT_CODEC_VERSION_MAX;
    if (p->pending.len > 0 && p->pending_version != version) {
        /* Cannot happen: pending bytes are re-checked at the handshake. */
        t->stats.messages_dropped_peer_down += clear_pending(p);
    }
    size = craft_message_size(version, m);
    queued = p->pending.len + (c->writing ? c->wbuf.len : 0);
    if (queued > 0 &&
        queued + size + CRAFT_FRAME_HEADER_SIZE + CRAFT_BATCH_COUNT_SIZE > t->cfg.max_queue_bytes) {
        t->stats.messages_dropped_queue_full++;
        report_unreachable(p);
        return CRAFT_EBUSY;
    }
    for (;;) {
        if (!p->batch_open) {
            rc = craft_batch_begin(&p->batch, &p->pending, version, t->cfg.max_payload);
            if (rc != 0)
                return rc;
            p->batch_open = true;
            p->pending_version = version;
            p->pending_frames++;
        }
        rc = craft_batch_add(&p->batch, group_id, m);
        if (rc == CRAFT_ETOO_BIG && p->batch.count > 0) {
            /* This frame is full: the message starts the next one. */
            craft_batch_finish(&p->batch);
            p->batch_open = false;
            continue;
        }
        break;
    }
    if (rc != 0) {
        if (p->batch.count == 0) {
            /* Take back the empty frame begun for this message. */
            p->pending.len = p->batch.frame_start;
            p->batch_open = false;
            p->pending_frames--;
        }
        return rc;
    }
    p->pending_messages++;
    if (c->state == CONN_READY)
        schedule(t);
    return 0;
}

/* A new stream for m, with its window; NULL when memory runs out. */
static struct out_stream *out_stream_new(struct craft_tcp_transport *t, uint64_t group_id,
                                         const struct craft_message *m)
{
    struct out_stream *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    /* A chunk frame fits in max_payload whatever the peers agreed. */
    s->chunk_cap = t->cfg.max_payload - CRAFT_SNAPSHOT_CHUNK_HEADER_SIZE;
    if (s->chunk_cap > STREAM_CHUNK)
        s->chunk_cap = STREAM_CHUNK;
    s->chunk = malloc(s->chunk_cap);
    if (s->chunk == NULL) {
        free(s);
        return NULL;
    }
    s->group = group_id;
    s->to = m->to;
    s->m = *m;
    s->meta = *m->snapshot;
    s->m.snapshot = &s->meta;
    for (unsigned i = 0; i < STREAM_SLOTS; i++) {
        s->slots[i].stream = s;
        s->slots[i].req.data = &s->slots[i];
        craft_buf_init(&s->slots[i].buf);
    }
    return s;
}

int craft_tcp_send_snapshot(struct craft_tcp_transport *t, uint64_t group_id,
                            const struct craft_message *m, struct craft_snapshot_source src,
                            craft_tcp_snapshot_done_cb done, void *arg)
{
    struct craft_buf check;
    struct out_stream *s = NULL;
    struct peer *p;
    struct conn *c;
    int rc;

    if (src.read == NULL || src.close == NULL)
        return CRAFT_EINVAL; /* no source to close either */
    if (m == NULL || done == NULL || m->type != CRAFT_MSG_SNAPSHOT || m->snapshot == NULL ||
        m->n_entries != 0) {
        rc = CRAFT_EINVAL;
        goto err_close_source;
    }
    /* Whatever would stop the begin frame is refused here, not later. */
    craft_buf_init(&check);
    rc = craft_snapshot_begin_encode(&check, CRAFT_CODEC_VERSION_MAX, t->cfg.max_payload, group_id,
                                     m);
    craft_buf_free(&check);
    if (rc != 0)
        goto err_close_source;
    p = t->closing ? NULL : find_peer(t, m->to);
    if (p == NULL) {
        rc = CRAFT_EDROPPED;
        goto err_close_source;
    }
    if (t->out_streams >= t->cfg.max_snapshot_streams) {
        rc = CRAFT_EBUSY;
        goto err_close_source;
    }
    s = out_stream_new(t, group_id, m);
    c = s == NULL ? NULL : conn_new(t, true);
    if (c == NULL) {
        rc = CRAFT_ENOMEM;
        goto err_free_stream;
    }
    s->src = src;
    s->done = done;
    s->arg = arg;
    s->conn = c;
    s->state = OUT_CONNECTING;
    c->out = s;
    t->out_streams++;
    rc = conn_connect(c, &p->addr);
    if (rc != 0) {
        /* Reported by the return value, not by done(). */
        c->out = NULL;
        t->out_streams--;
        conn_close(c);
        goto err_free_stream;
    }
    return 0;

err_free_stream:
    out_stream_free(s);
err_close_source:
    src.close(src.data);
    return rc;
}

void craft_tcp_get_stats(const struct craft_tcp_transport *t, struct craft_tcp_stats *out)
{
    *out = t->stats;
}

void craft_tcp_close(struct craft_tcp_transport *t, void (*cb)(struct craft_tcp_transport *t))
{
    struct conn *c;

    if (t->closing)
        return;
    t->closing = true;
    t->close_cb = cb;
    t->idle_active = false;
    uv_close((uv_handle_t *)&t->idle, transport_handle_closed);
    if (t->listening)
        uv_close((uv_handle_t *)&t->listener, transport_handle_closed);
    while (t->peers != NULL) {
        struct peer *p = t->peers;
        t->peers = p->next;
        peer_free(p);
    }
    for (c = t->conns; c != NULL; c = c->next)
        conn_close(c);
}
