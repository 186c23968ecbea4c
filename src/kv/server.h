/* craftkv's server: the Redis-protocol and HTTP listeners on a libuv loop of
 * their own, turning client requests into proposals and reads of a craft
 * host (include/craft/host.h) whose state machine is the LMDB store
 * (kv/store.h).
 *
 * Writes (SET, DEL, INCR...) become proposals; consecutive writes of one
 * pipelined read become ONE proposal (a batch, kv/command.h) whose result
 * carries each command's reply. Reads are linearizable (ReadIndex through
 * craft_host_read, then an LMDB read transaction) unless the connection
 * asked for stale reads (READONLY on RESP, ?stale=1 on HTTP). Replies go out
 * in request order per connection.
 *
 * Threads: everything here runs on the server's loop thread (the caller of
 * kv_server_run); the host's callbacks, which run on the host's threads,
 * only queue completions for it. */
#ifndef CRAFT_KV_SERVER_H
#define CRAFT_KV_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/host.h>

#include "kv/store.h"

struct kv_server_config {
    const char *resp_address; /* "ip:port" */
    const char *http_address; /* "ip:port"; NULL: no HTTP */
    uint64_t group_id;
    uint64_t node_id;
    uint32_t max_clients;
    size_t max_key_size, max_value_size, max_request;
    uint32_t request_timeout_ms; /* how long a request waits (e.g. for a leader) */
    bool lease_reads;            /* reported by INFO */
};

void kv_server_config_init(struct kv_server_config *cfg);

struct kv_server;

/* Binds the listeners (on a loop of its own). err receives a message. */
int kv_server_create(const struct kv_server_config *cfg, struct craft_host *host,
                     struct kv_store *store, struct kv_server **out, char *err, size_t err_cap);
/* Serves until SIGINT/SIGTERM (or kv_server_stop): stops accepting,
 * finishes or fails requests in flight, closes connections, returns 0. Also
 * stops, returning 1, once the raft group has failed (fail-stop). */
int kv_server_run(struct kv_server *s);
/* Any thread: makes kv_server_run return (as a signal would). */
void kv_server_stop(struct kv_server *s);
void kv_server_destroy(struct kv_server *s);

#endif /* CRAFT_KV_SERVER_H */
