/* The loop harness shared by the TCP transport's tests (test_tcp.c,
 * test_tcp_snapshot.c, test_tcp_tls.c): one libuv loop per test, woken every
 * millisecond so that th_run_until() re-checks its condition; a list of the
 * transports a test opened, so that th_teardown() closes those a failing test
 * left open and the loop still closes cleanly; the configuration, peer,
 * connection and heartbeat boilerplate; raw loopback sockets for hostile
 * peers; and a recorder for a snapshot stream's done().
 *
 * Nothing here depends on timing for a result: th_run_until() only bounds a
 * wait with a watchdog (of loop time), so that a broken transport fails the
 * test instead of hanging it.
 *
 * Linked into every unit test (CMakeLists.txt: craft_unit_support); it needs
 * only craft (with libuv), and cmocka, which that library links already. */
#ifndef CRAFT_TESTS_TCP_HARNESS_H
#define CRAFT_TESTS_TCP_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <craft/transport.h>

/* The loop the transports run on, between th_start() and th_teardown(). */
extern uv_loop_t th_loop;

/* Initialises th_loop with its wake-up timer; th_run_until() gives up after
 * watchdog_ms of loop time. Call from a cmocka setup. */
void th_start(uint64_t watchdog_ms);

/* A cmocka teardown (state unused) for tests set up with th_start(): closes
 * every transport still tracked, runs the loop until nothing is left and
 * asserts that it closes (every handle was closed). */
int th_teardown(void **state);

/* Runs the loop until cond(arg) holds or the watchdog expires; returns
 * cond(arg). */
bool th_run_until(bool (*cond)(void *), void *arg);

/* Runs the loop for ms of loop time, whatever happens. */
void th_run_for(uint64_t ms);

/* A craft_tcp_close() callback that does nothing. */
void th_closed_cb(struct craft_tcp_transport *t);

/* Zeroes cfg, then sets cluster_id, node_id, data, on_message and a listen
 * address of 127.0.0.1 on a port the system picks (a string literal; the
 * caller may point it elsewhere). */
void th_config_init(struct craft_tcp_config *cfg, uint64_t cluster_id, uint64_t node_id, void *data,
                    void (*on_message)(void *data, uint64_t group_id,
                                       const struct craft_message *m));

/* craft_tcp_create_err() on th_loop (err may be NULL, as there). On success
 * *t is tracked until th_close() or th_teardown() closes it, and *port is the
 * port it listens on. Returns craft_tcp_create_err()'s rc. */
int th_create(const struct craft_tcp_config *cfg, struct craft_tcp_transport **t, int *port,
              char *err, size_t err_cap);

/* Tracks t (a test-owned transport) so that th_teardown() closes it; fails the
 * test when too many are open. */
void th_track(struct craft_tcp_transport *t);

/* Stops tracking t; fails the test when t is not tracked. */
void th_forget(struct craft_tcp_transport *t);

/* Forgets t and closes it. */
void th_close(struct craft_tcp_transport *t);

/* The transport's counters. */
struct craft_tcp_stats th_stats(const struct craft_tcp_transport *t);

/* Tells `from` that node `to_id` listens at 127.0.0.1:to_port; asserts that
 * craft_tcp_set_peer() succeeds. */
void th_set_peer(struct craft_tcp_transport *from, uint64_t to_id, int to_port);

/* Makes a (node a_id at a_port) and b peers of each other and runs the loop
 * until each is connected to the other; asserts that they are. */
void th_connect_pair(struct craft_tcp_transport *a, uint64_t a_id, int a_port,
                     struct craft_tcp_transport *b, uint64_t b_id, int b_port);

/* Sends count heartbeats of group and term from node from_id, over its
 * transport t, to node to_id; asserts that craft_tcp_send() takes each. */
void th_send_heartbeats(struct craft_tcp_transport *t, uint64_t group, uint64_t from_id,
                        uint64_t to_id, uint64_t term, unsigned count);

/* A blocking socket connected to 127.0.0.1:port, whose receives give up
 * after 5 s (so that a test reading from it cannot hang). The caller closes
 * it. */
int th_raw_connect(int port);

/* Sends all len bytes of buf on fd; asserts that they went in one send(). */
void th_raw_send(int fd, const void *buf, size_t len);

/* What a snapshot stream's done() reported: how often it was called, and
 * the last call's arguments. Zero it before the stream. */
struct th_outcome {
    int calls;
    int status;
    uint64_t group, to;
};

/* A craft_tcp_snapshot_done_cb recording into the struct th_outcome arg. */
void th_on_done(void *arg, uint64_t group, uint64_t to, int status);

/* A th_run_until() condition: the struct th_outcome arg has been called. */
bool th_done_called(void *arg);

#endif
