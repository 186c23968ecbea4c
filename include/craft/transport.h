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
 * Not in scope yet: TLS, and streaming snapshot data on a separate
 * connection (a CRAFT_MSG_SNAPSHOT carries only its metadata here).
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
};

/* Counters since craft_tcp_create(). */
struct craft_tcp_stats {
    uint64_t frames_sent;                 /* batch frames written */
    uint64_t messages_sent;               /* messages in them */
    uint64_t bytes_sent;                  /* every byte written, handshakes included */
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
    uint64_t messages_dropped_queue_full; /* CRAFT_EBUSY */
    uint64_t messages_dropped_peer_down;  /* not connected, or lost with the connection */
};

/* Creates a transport on loop (which must outlive it) and starts listening
 * when cfg->listen_address is set. cfg is copied. *out is owned by the
 * caller until passed to craft_tcp_close(). Returns 0, CRAFT_EINVAL (node id
 * 0, no on_message, an address that does not parse, backoff_min > max),
 * CRAFT_ENOMEM, or a negative libuv error (UV_EADDRINUSE...) from bind or
 * listen. */
int craft_tcp_create(uv_loop_t *loop, const struct craft_tcp_config *cfg,
                     struct craft_tcp_transport **out);

/* The port the transport listens on (useful after listening on port 0), or
 * 0 when it does not listen. */
int craft_tcp_port(const struct craft_tcp_transport *t);

/* Sets (or changes) the address of node_id, "ip:port" (copied), and starts
 * connecting to it. Changing an address closes the connection to the old
 * one; its queued messages are dropped. Returns 0, CRAFT_EINVAL (node_id 0
 * or this node, an address that does not parse) or CRAFT_ENOMEM. */
int craft_tcp_set_peer(struct craft_tcp_transport *t, uint64_t node_id, const char *address);

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

void craft_tcp_get_stats(const struct craft_tcp_transport *t, struct craft_tcp_stats *out);

/* Closes every handle (listener, connections, timers), drops queued
 * messages without reporting them, and calls cb (if not NULL) once libuv has
 * closed them all, from the loop; the transport's memory is freed right
 * after cb returns. No callback of cfg is called after this returns, and t
 * may not be used except by cb. The loop must keep running until then. */
void craft_tcp_close(struct craft_tcp_transport *t, void (*cb)(struct craft_tcp_transport *t));

#ifdef __cplusplus
}
#endif

#endif /* CRAFT_TRANSPORT_H */
