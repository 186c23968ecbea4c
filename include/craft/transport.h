/* craft TCP transport: raft messages between hosts over TCP, on a libuv loop.
 *
 * One transport per host (process). It listens on one address for the
 * connections of other hosts and keeps one outgoing connection per remote
 * node, carrying the messages of every raft group bound for that node. The
 * bytes on a connection are those of include/craft/codec.h: a handshake frame
 * each way, then batch frames.
 *
 * Direction: a transport sends only on its outgoing connections and receives
 * batches on the connections other hosts opened to it (and, harmlessly, on
 * its outgoing ones). Node A talking to node B thus uses two connections,
 * A->B and B->A.
 *
 * Handshake: the connecting side sends (cluster id, its node id, the node id
 * it means to reach, its codec versions); the accepting side checks it and
 * answers with its own (cluster id, its node id, the connector's id). Either
 * side closes a connection whose peer is in another cluster, is not the node
 * expected, expects another node, or speaks no common codec version, and
 * counts it in connections_refused. A connection that sends no handshake
 * within handshake_timeout_ms (counted from the connect for an outgoing
 * one) is closed too, and counted in connections_timed_out. Batches go out only once the
 * answer has been checked.
 *
 * Sending: craft_tcp_send() encodes (copies) a message into the destination
 * node's pending batch at once; every pending message for one node leaves in
 * one uv_write per loop iteration (an idle handle flushes them), so many
 * sends cost one system call. A node's queue (pending plus in-flight bytes)
 * is bounded by max_queue_bytes: beyond it send drops the message and returns
 * CRAFT_EBUSY. A message to a node whose connection failed (and waits to be
 * retried), or queued when its connection is lost, is dropped as well;
 * messages sent while a connection is being set up wait in the queue. Raft tolerates
 * message loss; the transport never blocks and never grows without bound.
 * Each drop makes on_unreachable() report the node, which the host passes to
 * craft_raft_report_unreachable() for its groups.
 *
 * Receiving: frames are read into a per-connection buffer bounded by one
 * frame (header + max_payload). The header is checked (magic, version, kind,
 * length <= max_payload) before any payload is read, the checksum before any
 * message is decoded. Any malformed frame, failed checksum or handshake,
 * unexpected frame kind, or undecodable batch closes that connection alone
 * and is counted; the transport keeps serving every other peer.
 *
 * Reconnect: a lost or failed outgoing connection is retried after a delay
 * that doubles from backoff_min_ms up to backoff_max_ms and returns to
 * backoff_min_ms once a handshake succeeds.
 *
 * Addresses are numeric: "a.b.c.d:port" or "[v6]:port" (no DNS lookup).
 *
 * Threading: everything (every function here and every callback) runs on the
 * thread that runs the loop given to craft_tcp_create(). The transport takes
 * no locks and starts no threads.
 *
 * Snapshot streams: a CRAFT_MSG_SNAPSHOT sent with craft_tcp_send() carries
 * only its metadata. craft_tcp_send_snapshot() sends it with the state
 * machine's data, on a connection of its own so that a snapshot of any size
 * never delays the heartbeats and appends on the node's connection:
 *
 *   sender                                      receiver
 *   connect, handshake (as usual)   ------>     handshake answer
 *   SNAPSHOT_BEGIN (the message)    ------>     on_snapshot_begin() -> sink
 *   SNAPSHOT_CHUNK (offset, bytes)  ------>     on_snapshot_chunk(), in order
 *   ...                                         (stall timer restarted)
 *   SNAPSHOT_END (size, CRC32C)     ------>     checks size and checksum,
 *                                               on_snapshot_end(ok=true),
 *                                               on_message(the message)
 *   done(0)                         <------     SNAPSHOT_ACK (stored)
 *   closes the connection
 *
 * Flow control: the sender keeps at most CRAFT_TCP_SNAPSHOT_WINDOW chunks of
 * at most CRAFT_TCP_SNAPSHOT_CHUNK bytes of a stream queued (encoded and
 * being written); it reads the next chunk from the source only when one of
 * those writes has completed, i.e. when the socket has taken it. The receiver
 * reads the next frame only once on_snapshot_chunk() has returned, so a slow
 * store slows the sender through TCP. A stream costs the sender its window
 * and the receiver one frame, whatever the snapshot's size.
 *
 * Failure: any error ends that stream alone; the receiver answers with a
 * failed or refused ack where it can, and the sender's done() gets a negative
 * status (the host then calls craft_raft_report_snapshot(failed)). On the
 * receiving side a stream that began and did not end well gets
 * on_snapshot_end(ok=false) exactly once: a chunk out of order, a size or
 * checksum mismatch at the end, a malformed or unexpected frame, a
 * connection lost or silent for snapshot_timeout_ms, the host's own chunk
 * callback failing, or the transport closing. Malformed frames also close
 * the connection and count in connections_bad_input, silence in
 * connections_timed_out; every failed stream counts in snapshots_failed.
 *
 * TLS (optional): with tls_cert_file, tls_key_file and tls_ca_file all set,
 * every connection, outgoing and incoming, node and snapshot stream alike,
 * runs mutual TLS (1.2 or later, OpenSSL) before the craft handshake: each
 * side presents its certificate and refuses a peer whose certificate is
 * missing or not signed by the CA. Host names are not checked: the CA
 * vouches for membership of the cluster, the craft handshake names the node.
 * A failed TLS handshake or record (a peer of another CA, a plain-TCP peer,
 * garbage) closes that connection and counts in connections_tls_failed;
 * the handshake timeout covers the TLS handshake too. Both ends must agree:
 * a TLS transport and a plain one cannot talk.
 */
#ifndef CRAFT_TRANSPORT_H
#define CRAFT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <craft/raft.h>

#ifdef __cplusplus
extern "C" {
#endif

struct craft_tcp_transport;

/* Defaults for zero fields of struct craft_tcp_config. */
#define CRAFT_TCP_DEFAULT_MAX_QUEUE_BYTES (16u * 1024u * 1024u)
#define CRAFT_TCP_DEFAULT_BACKOFF_MIN_MS 50u
#define CRAFT_TCP_DEFAULT_BACKOFF_MAX_MS 2000u
#define CRAFT_TCP_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000u
#define CRAFT_TCP_DEFAULT_SNAPSHOT_TIMEOUT_MS 30000u
#define CRAFT_TCP_DEFAULT_MAX_SNAPSHOT_STREAMS 4u

/* A snapshot stream's window: chunks queued at most, and their size (a
 * chunk is also bounded by max_payload). */
#define CRAFT_TCP_SNAPSHOT_WINDOW 4u
#define CRAFT_TCP_SNAPSHOT_CHUNK (64u * 1024u)

struct craft_tcp_config {
    uint64_t cluster_id; /* every host of the cluster uses the same */
    uint64_t node_id;    /* this host, non-zero */
    /* "ip:port" to listen on (port 0: the system picks one, see
     * craft_tcp_port()); NULL for a transport that only sends. Copied. */
    const char *listen_address;
    /* Bound on one node's queued bytes (pending and being written); 0 for
     * the default. A queue holding nothing always takes one message, so the
     * bound is max(max_queue_bytes, one message). */
    size_t max_queue_bytes;
    /* Largest frame payload accepted, and produced (peers must agree);
     * 0 for CRAFT_FRAME_DEFAULT_MAX_PAYLOAD. */
    uint32_t max_payload;
    uint32_t backoff_min_ms;       /* reconnect delay bounds; 0: defaults */
    uint32_t backoff_max_ms;       /*   (50 ms .. 2 s) */
    uint32_t handshake_timeout_ms; /* 0: default (5 s) */
    /* A snapshot stream that makes no progress (no chunk written or received,
     * no ack) for this long fails; 0: default (30 s). */
    uint32_t snapshot_timeout_ms;
    /* Snapshot streams at once, in each direction; 0: default (4). Beyond it
     * craft_tcp_send_snapshot() returns CRAFT_EBUSY and incoming streams are
     * refused. */
    uint32_t max_snapshot_streams;
    /* PEM files: this host's certificate (chain), its private key, and the
     * CA that signs every host's certificate. All three set: TLS on every
     * connection; none: plain TCP; some: CRAFT_EINVAL. Read during
     * craft_tcp_create*() only (the pointers are not kept). */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_ca_file;

    void *data; /* passed to the callbacks */
    /* One received message, in order per sending node. m, its entries, their
     * data and its snapshot meta point into the transport's buffers and are
     * valid only during the call: copy what must outlive it. May call
     * craft_tcp_send() and craft_tcp_close(). */
    void (*on_message)(void *data, uint64_t group_id, const struct craft_message *m);
    /* Messages to node_id were dropped (queue full, node not connected,
     * connection lost), or a connection to it failed (even with nothing
     * queued: Raft then probes the follower again). Called from the loop,
     * never from inside craft_tcp_send(), at most once per node per loop
     * iteration. May be NULL. */
    void (*on_unreachable)(void *data, uint64_t node_id);

    /* Receiving snapshot streams (see the top of this file). All three set,
     * or on_snapshot_begin NULL: every stream is refused and counted in
     * snapshots_refused. They run on the loop thread and may call
     * craft_tcp_send(); they must not call craft_tcp_close().
     *
     * A stream begins: m (valid during the call only, as in on_message) is
     * the CRAFT_MSG_SNAPSHOT of group_id. Return 0 and set *sink (the host's,
     * e.g. a craft_snapshot_writer; the transport only passes it back), or
     * <0 to refuse the stream (no other callback is then called for it). */
    int (*on_snapshot_begin)(void *data, uint64_t group_id, const struct craft_message *m,
                             void **sink);
    /* len bytes (valid during the call) at offset in the snapshot's data;
     * chunks come in order, without gaps. <0 fails the stream
     * (on_snapshot_end(ok=false) follows at once). */
    int (*on_snapshot_chunk)(void *data, void *sink, uint64_t offset, const void *buf, size_t len);
    /* Called exactly once per accepted stream; the sink is the host's to free.
     * ok: every byte arrived and the CRC32C matched; return 0 once the
     * snapshot is stored durably, and the transport then delivers the
     * message to on_message() (so the raft core installs it) and
     * acknowledges it; <0 makes the sender's done() fail. Not ok: abort the
     * sink (the return value is ignored). */
    int (*on_snapshot_end)(void *data, void *sink, bool ok);
};

/* The sending side's snapshot data, read on the loop thread. */
struct craft_snapshot_source {
    void *data;
    /* Reads the next bytes of data, at most cap, into buf; *n is 0 at the
     * end. Returns 0 or a negative error (the stream fails with it). Must
     * not call craft_tcp_close(). */
    int (*read)(void *data, void *buf, size_t cap, size_t *n);
    /* Called exactly once, when the stream ends, well or not (before done),
     * or before craft_tcp_send_snapshot() returns an error. */
    void (*close)(void *data);
};

/* The end of an outgoing stream: status 0 once the receiver acknowledged
 * that it stored the whole snapshot, else CRAFT_EBUSY (the receiver refused
 * it), CRAFT_ESTORAGE (the receiver found the data damaged or could not
 * store it), CRAFT_EDROPPED (connection failed, lost, silent too long, or
 * the transport closed), or the source's error. */
typedef void (*craft_tcp_snapshot_done_cb)(void *arg, uint64_t group_id, uint64_t to, int status);

/* Counters since craft_tcp_create(). */
struct craft_tcp_stats {
    uint64_t frames_sent;                 /* batch frames written */
    uint64_t messages_sent;               /* messages in them */
    uint64_t bytes_sent;                  /* every byte written, handshakes included (with
                                             TLS: the plaintext, TLS's own bytes not) */
    uint64_t writes;                      /* uv_write calls, handshakes included */
    uint64_t frames_received;             /* batch frames received */
    uint64_t messages_received;           /* messages delivered to on_message */
    uint64_t bytes_received;              /* every byte read */
    uint64_t connections_accepted;        /* incoming connections accepted */
    uint64_t connections_established;     /* handshakes completed, both directions */
    uint64_t connections_refused;         /* handshake refused: cluster, node id, version */
    uint64_t connections_bad_input;       /* closed for a malformed frame or batch */
    uint64_t connections_timed_out;       /* closed for no handshake in time */
    uint64_t connect_failures;            /* outgoing connects or connections that failed */
    uint64_t connections_tls_failed;      /* closed for a failed TLS handshake or record */
    uint64_t messages_dropped_queue_full; /* CRAFT_EBUSY */
    uint64_t messages_dropped_peer_down;  /* not connected, or lost with the connection */
    uint64_t snapshots_sent;              /* streams acknowledged as stored */
    uint64_t snapshots_received;          /* streams stored (on_snapshot_end(ok) gave 0) */
    uint64_t snapshots_failed;            /* streams that ended badly, either side */
    uint64_t snapshots_refused;           /* incoming streams refused (no callback, limit, host) */
    uint64_t snapshot_bytes_sent;         /* snapshot data bytes read from sources */
    uint64_t snapshot_bytes_received;     /* snapshot data bytes passed to on_snapshot_chunk */
    uint64_t snapshot_max_queued_bytes;   /* most bytes one stream ever had queued */
};

/* Creates a transport on loop (which must outlive it) and starts listening
 * when cfg->listen_address is set. cfg is copied. *out is owned by the
 * caller until passed to craft_tcp_close(). Returns 0, CRAFT_EINVAL (node id
 * 0, no on_message, an address that does not parse, backoff_min > max),
 * CRAFT_ENOMEM, or a negative libuv error (UV_EADDRINUSE...) from bind or
 * listen; with TLS also CRAFT_EINVAL when a certificate, key or CA file
 * cannot be loaded (or the key does not match the certificate). */
int craft_tcp_create(uv_loop_t *loop, const struct craft_tcp_config *cfg,
                     struct craft_tcp_transport **out);

/* As craft_tcp_create(), and says why it failed: on an error, err (err_cap
 * bytes, always NUL-terminated; NULL for none) receives a message such as
 * "tls_cert_file /etc/craft/node.pem: ... no such file". Set to "" on
 * success. */
int craft_tcp_create_err(uv_loop_t *loop, const struct craft_tcp_config *cfg,
                         struct craft_tcp_transport **out, char *err, size_t err_cap);

/* The port the transport listens on (useful after listening on port 0), or
 * 0 when it does not listen. */
int craft_tcp_port(const struct craft_tcp_transport *t);

/* Sets (or changes) the address of node_id, "ip:port" (copied), and starts
 * connecting to it. Changing an address closes the connection to the old
 * one; its queued messages are dropped. Returns 0, CRAFT_EINVAL (node_id 0
 * or this node, an address that does not parse) or CRAFT_ENOMEM. */
int craft_tcp_set_peer(struct craft_tcp_transport *t, uint64_t node_id, const char *address);

/* Parses a numeric address, "a.b.c.d:port" or "[v6]:port" (port 0..65535),
 * into *addr: 0 or CRAFT_EINVAL. Any thread. */
int craft_tcp_parse_address(const char *address, struct sockaddr_storage *addr);

/* Forgets node_id: closes its connection and drops its queued messages.
 * Returns 0 or CRAFT_EINVAL if the node is not known. */
int craft_tcp_remove_peer(struct craft_tcp_transport *t, uint64_t node_id);

/* Whether the outgoing connection to node_id has completed its handshake. */
bool craft_tcp_peer_connected(const struct craft_tcp_transport *t, uint64_t node_id);

/* Queues m, a message of group group_id, for node m->to. m and everything it
 * points to are copied before return: the caller may reuse them at once.
 * Returns 0 (queued, sent on this loop iteration unless the connection
 * fails), or with the message dropped: CRAFT_EBUSY (the node's queue is
 * full), CRAFT_EDROPPED (the node is unknown, its connection failed, or the
 * transport is closing), CRAFT_EINVAL (m cannot travel, see
 * craft_message_encode()), CRAFT_ETOO_BIG (m alone exceeds max_payload),
 * CRAFT_ENOMEM. EBUSY and EDROPPED also report the node unreachable (unless
 * the node is unknown or the transport is closing). */
int craft_tcp_send(struct craft_tcp_transport *t, uint64_t group_id, const struct craft_message *m);

/* Streams a snapshot to node m->to: m, a CRAFT_MSG_SNAPSHOT of group group_id
 * without entries, is copied; then src is read, a chunk at a time, on a new
 * connection to the node's address (see the top of this file). Returns 0, and
 * done(arg, group_id, m->to, status) is called exactly once later, from the
 * loop (never from inside this call). Or returns, without calling done:
 * CRAFT_EINVAL (m is not a snapshot message that can travel, or no done or
 * source), CRAFT_ETOO_BIG (its metadata exceed max_payload), CRAFT_EDROPPED
 * (m->to unknown, or the transport is closing), CRAFT_EBUSY
 * (max_snapshot_streams streams are under way), CRAFT_ENOMEM or a libuv
 * error. src.close() is called exactly once either way (with an error
 * return, before it; with CRAFT_EINVAL for a missing read or close,
 * never). craft_tcp_close() ends streams under way: their done() runs
 * inside it with CRAFT_EDROPPED. */
int craft_tcp_send_snapshot(struct craft_tcp_transport *t, uint64_t group_id,
                            const struct craft_message *m, struct craft_snapshot_source src,
                            craft_tcp_snapshot_done_cb done, void *arg);

void craft_tcp_get_stats(const struct craft_tcp_transport *t, struct craft_tcp_stats *out);

/* Closes every handle (listener, connections, timers), drops queued
 * messages without reporting them, ends snapshot streams (done() with
 * CRAFT_EDROPPED and on_snapshot_end(ok=false) run inside this call, the only
 * callbacks that do), and calls cb (if not NULL) once libuv has
 * closed them all, from the loop; the transport's memory is freed right
 * after cb returns. No callback of cfg is called after this returns, and t
 * may not be used except by cb. The loop must keep running until then. */
void craft_tcp_close(struct craft_tcp_transport *t, void (*cb)(struct craft_tcp_transport *t));

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_TRANSPORT_H */
