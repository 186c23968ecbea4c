/* The loop harness of the TCP transport's tests: see tcp_harness.h. */
#include "tcp_harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>

/* Transports a test may have open at once. */
#define TH_MAX_TRANSPORTS 16

uv_loop_t th_loop;

static uv_timer_t tick;
static uint64_t watchdog;
/* Transports not yet closed, closed by th_teardown() when a test fails. */
static struct craft_tcp_transport *open_transports[TH_MAX_TRANSPORTS];

static void tick_cb(uv_timer_t *timer)
{
    (void)timer;
}

void th_start(uint64_t watchdog_ms)
{
    watchdog = watchdog_ms;
    assert_int_equal(uv_loop_init(&th_loop), 0);
    uv_timer_init(&th_loop, &tick);
    /* Wakes the loop often so that th_run_until() re-checks its condition. */
    uv_timer_start(&tick, tick_cb, 1, 1);
}

void th_closed_cb(struct craft_tcp_transport *t)
{
    (void)t;
}

int th_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < TH_MAX_TRANSPORTS; i++) {
        if (open_transports[i] != NULL)
            craft_tcp_close(open_transports[i], th_closed_cb);
        open_transports[i] = NULL;
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&th_loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&th_loop), 0); /* every handle was closed */
    return 0;
}

bool th_run_until(bool (*cond)(void *), void *arg)
{
    uint64_t deadline;

    uv_update_time(&th_loop);
    deadline = uv_now(&th_loop) + watchdog;
    while (!cond(arg) && uv_now(&th_loop) < deadline)
        uv_run(&th_loop, UV_RUN_ONCE);
    return cond(arg);
}

void th_run_for(uint64_t ms)
{
    uint64_t end;

    uv_update_time(&th_loop);
    end = uv_now(&th_loop) + ms;
    while (uv_now(&th_loop) < end)
        uv_run(&th_loop, UV_RUN_ONCE);
}

void th_config_init(struct craft_tcp_config *cfg, uint64_t cluster_id, uint64_t node_id, void *data,
                    void (*on_message)(void *data, uint64_t group_id,
                                       const struct craft_message *m))
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->cluster_id = cluster_id;
    cfg->node_id = node_id;
    cfg->listen_address = "127.0.0.1:0";
    cfg->data = data;
    cfg->on_message = on_message;
}

/* Replaces the slot holding `from` with `to`: th_track() is (NULL, t),
 * th_forget() is (t, NULL). */
static void replace(struct craft_tcp_transport *from, struct craft_tcp_transport *to)
{
    size_t i = 0;

    while (i < TH_MAX_TRANSPORTS && open_transports[i] != from)
        i++;
    if (i == TH_MAX_TRANSPORTS && from == NULL)
        fail_msg("too many transports");
    else if (i == TH_MAX_TRANSPORTS)
        fail_msg("transport not tracked");
    else
        open_transports[i] = to;
}

void th_track(struct craft_tcp_transport *t)
{
    replace(NULL, t);
}

void th_forget(struct craft_tcp_transport *t)
{
    replace(t, NULL);
}

void th_close(struct craft_tcp_transport *t)
{
    th_forget(t);
    craft_tcp_close(t, th_closed_cb);
}

int th_create(const struct craft_tcp_config *cfg, struct craft_tcp_transport **t, int *port,
              char *err, size_t err_cap)
{
    int rc = craft_tcp_create_err(&th_loop, cfg, t, err, err_cap);

    if (rc == 0) {
        th_track(*t);
        *port = craft_tcp_port(*t);
    }
    return rc;
}

struct craft_tcp_stats th_stats(const struct craft_tcp_transport *t)
{
    struct craft_tcp_stats s;

    craft_tcp_get_stats(t, &s);
    return s;
}

void th_set_peer(struct craft_tcp_transport *from, uint64_t to_id, int to_port)
{
    char address[32];

    snprintf(address, sizeof(address), "127.0.0.1:%d", to_port);
    assert_int_equal(craft_tcp_set_peer(from, to_id, address), 0);
}

struct pair {
    struct craft_tcp_transport *a, *b;
    uint64_t a_id, b_id;
};

static bool connected_both_ways(void *arg)
{
    struct pair *p = arg;
    return craft_tcp_peer_connected(p->a, p->b_id) && craft_tcp_peer_connected(p->b, p->a_id);
}

void th_connect_pair(struct craft_tcp_transport *a, uint64_t a_id, int a_port,
                     struct craft_tcp_transport *b, uint64_t b_id, int b_port)
{
    struct pair p = {a, b, a_id, b_id};

    th_set_peer(a, b_id, b_port);
    th_set_peer(b, a_id, a_port);
    assert_true(th_run_until(connected_both_ways, &p));
}

void th_send_heartbeats(struct craft_tcp_transport *t, uint64_t group, uint64_t from_id,
                        uint64_t to_id, uint64_t term, unsigned count)
{
    struct craft_message m;

    memset(&m, 0, sizeof(m));
    m.type = CRAFT_MSG_HEARTBEAT;
    m.from = from_id;
    m.to = to_id;
    m.term = term;
    for (unsigned i = 0; i < count; i++)
        assert_int_equal(craft_tcp_send(t, group, &m), 0);
}

int th_raw_connect(int port)
{
    struct sockaddr_in addr;
    struct timeval timeout = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)), 0);
    return fd;
}

void th_raw_send(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, 0), (ssize_t)len);
}

void th_on_done(void *arg, uint64_t group, uint64_t to, int status)
{
    struct th_outcome *o = arg;

    o->calls++;
    o->status = status;
    o->group = group;
    o->to = to;
}

bool th_done_called(void *arg)
{
    return ((struct th_outcome *)arg)->calls > 0;
}
