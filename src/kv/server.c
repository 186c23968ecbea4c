/* craftkv's server: see server.h. */
#include "kv/server.h"

#include <craft/transport.h>

#include <ctype.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "kv/buf.h"
#include "kv/command.h"
#include "kv/http.h"
#include "kv/resp.h"

#define READ_CHUNK 65536
#define MAX_PENDING_SLOTS 4096 /* replies owed to one connection before it stops reading */

struct server_counters {
    uint64_t connections, commands, writes, reads, errors;
};

struct kv_server {
    struct kv_server_config cfg;
    struct craft_host *host;
    struct kv_store *store;
    uv_loop_t loop;
    uv_tcp_t resp_listener, http_listener;
    bool has_http;
    uv_async_t done_async;
    uv_signal_t sigint, sigterm;
    pthread_mutex_t done_lock;
    struct op *done_head, *done_tail;
    struct conn *conns;
    uint32_t n_clients;
    uint64_t next_client_id;
    bool stopping;
    uint64_t ops_in_flight;
    struct server_counters counters;
    uint64_t started_ms;
    atomic_bool stop_requested;
    uv_timer_t health_timer;
    int exit_status; /* 1 once the raft group failed */
};

/* A reply owed to a connection, in order. */
struct slot {
    struct kv_buf out;
    bool done;
    struct slot *next;
};

struct conn {
    struct kv_server *s;
    uv_tcp_t tcp;
    bool http;
    struct kv_buf in;
    struct kv_resp_parser resp;
    struct kv_http_conn httpc;
    int proto;
    bool readonly;
    char name[64];
    uint64_t id;
    struct slot *head, *tail;
    size_t n_slots;
    int refs;
    bool closing, close_after_flush, paused;
    struct conn *prev, *next;
};

enum op_kind { OP_WRITE = 1, OP_READ, OP_HTTP_GET, OP_HTTP_WRITE, OP_HTTP_MEMBERS, OP_HTTP_ADMIN };

/* An asynchronous request to the host, completed on the server loop. */
struct op {
    struct kv_server *s;
    struct conn *c;
    uint32_t kind;
    struct slot **slots; /* OP_WRITE: one per command of the batch */
    size_t n_slots;
    struct slot *slot;
    /* OP_READ: the command, copied */
    size_t argc;
    struct kv_slice *argv;
    char *argbuf;
    bool keep_alive;
    /* outcome */
    int status;
    uint64_t leader, index;
    void *data;
    size_t len;
    struct op *next;
};

static void conn_unref(struct conn *c);
static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void process_input(struct conn *c);
static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

void kv_server_config_init(struct kv_server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->group_id = 1;
    cfg->max_clients = 10000;
    cfg->max_key_size = KV_MAX_KEY_SIZE;
    cfg->max_value_size = KV_MAX_VALUE_SIZE;
    cfg->max_request = KV_RESP_DEFAULT_MAX_REQUEST;
    cfg->request_timeout_ms = 5000;
}

/* ---- slots and replies ---- */

static struct slot *slot_new(struct conn *c)
{
    struct slot *sl = calloc(1, sizeof(*sl));
    if (sl == NULL)
        return NULL;
    kv_buf_init(&sl->out);
    if (c->tail != NULL)
        c->tail->next = sl;
    else
        c->head = sl;
    c->tail = sl;
    c->n_slots++;
    return sl;
}

/* A slot whose reply is known now. */
static struct slot *reply_now(struct conn *c)
{
    struct slot *sl = slot_new(c);
    if (sl != NULL)
        sl->done = true;
    return sl;
}

static void reply_error(struct conn *c, const char *msg)
{
    struct slot *sl = reply_now(c);
    if (sl != NULL)
        kv_resp_error(&sl->out, msg);
    c->s->counters.errors++;
}

/* What a failed request tells the client: busy, no leader, timeout... */
static const char *host_error_text(int status, uint64_t leader, char *buf, size_t cap)
{
    switch (status) {
    case CRAFT_ENOLEADER:
        return "CLUSTERDOWN no leader: the cluster has no leader right now (not applied), retry "
               "later";
    case CRAFT_ETIMEDOUT:
        return "TIMEOUT the request timed out: it may or may not have been applied";
    case CRAFT_EBUSY:
        return "BUSY the cluster is overloaded, retry later";
    case CRAFT_ENOTLEADER:
    case CRAFT_EDROPPED:
        if (leader == 0)
            return "CLUSTERDOWN no leader: the cluster has no leader right now, retry later";
        snprintf(buf, cap, "NOTLEADER the leader is node %" PRIu64, leader);
        return buf;
    case CRAFT_ESTOPPED:
        return "SHUTDOWN the server is shutting down";
    default:
        snprintf(buf, cap, "ERR %s", craft_host_strerror(status));
        return buf;
    }
}

/* ---- writing to clients ---- */

struct write_req {
    uv_write_t req;
    struct conn *c;
    char *data;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = w->c;
    free(w->data);
    free(w);
    if (status < 0 && !c->closing)
        conn_close(c);
    conn_unref(c);
}

/* Writes every finished reply at the head, in order. */
static void conn_flush(struct conn *c)
{
    if (c->closing)
        return;
    struct kv_buf out;
    kv_buf_init(&out);
    while (c->head != NULL && c->head->done) {
        struct slot *sl = c->head;
        c->head = sl->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->n_slots--;
        if (out.len == 0) {
            out = sl->out;
        } else {
            kv_buf_append(&out, sl->out.data, sl->out.len);
            kv_buf_free(&sl->out);
        }
        free(sl);
    }
    if (out.len > 0) {
        struct write_req *w = calloc(1, sizeof(*w));
        if (w == NULL) {
            kv_buf_free(&out);
            conn_close(c);
            return;
        }
        size_t len;
        w->c = c;
        w->data = kv_buf_take(&out, &len);
        uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
        c->refs++;
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
            free(w->data);
            free(w);
            c->refs--;
            conn_close(c);
            return;
        }
    } else {
        kv_buf_free(&out);
    }
    if (c->head == NULL && c->close_after_flush) {
        conn_close(c);
        return;
    }
    if (c->paused && c->n_slots < MAX_PENDING_SLOTS / 2) {
        c->paused = false;
        process_input(c); /* commands left in the buffer, then read on */
    }
}

/* ---- completions from the host's threads ---- */

static void push_done(struct op *op)
{
    struct kv_server *s = op->s;
    pthread_mutex_lock(&s->done_lock);
    op->next = NULL;
    if (s->done_tail != NULL)
        s->done_tail->next = op;
    else
        s->done_head = op;
    s->done_tail = op;
    pthread_mutex_unlock(&s->done_lock);
    uv_async_send(&s->done_async);
}

/* Host callback (apply or host loop thread): keep the outcome, hand over. */
static void on_host_done(void *arg, struct craft_done *done)
{
    struct op *op = arg;
    op->status = done->status;
    op->leader = done->leader;
    op->index = done->index;
    if (done->result != NULL && done->result->data != NULL) {
        op->data = done->result->data;
        op->len = done->result->len;
        done->result->data = NULL;
    }
    push_done(op);
}

static void op_free(struct op *op)
{
    free(op->slots);
    free(op->argv);
    free(op->argbuf);
    free(op->data);
    free(op);
}

static void finish_write(struct op *op);
static void finish_read(struct op *op);
static void finish_http(struct op *op);

static void begin_stop(struct kv_server *s);

static void on_done_async(uv_async_t *a)
{
    struct kv_server *s = a->data;
    if (atomic_load(&s->stop_requested))
        begin_stop(s);
    pthread_mutex_lock(&s->done_lock);
    struct op *op = s->done_head;
    s->done_head = s->done_tail = NULL;
    pthread_mutex_unlock(&s->done_lock);
    while (op != NULL) {
        struct op *next = op->next;
        struct conn *c = op->c;
        s->ops_in_flight--;
        if (!c->closing) {
            switch (op->kind) {
            case OP_WRITE:
                finish_write(op);
                break;
            case OP_READ:
                finish_read(op);
                break;
            default:
                finish_http(op);
                break;
            }
            conn_flush(c);
        }
        conn_unref(c);
        op_free(op);
        op = next;
    }
}

static struct op *op_new(struct conn *c, uint32_t kind)
{
    struct op *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->s = c->s;
    op->c = c;
    op->kind = kind;
    c->refs++;
    c->s->ops_in_flight++;
    return op;
}

/* A request the host refused at once: its callback will not run. */
static void op_refused(struct op *op, int rc)
{
    op->status = rc;
    push_done(op);
}

/* ---- writes ---- */

struct batch {
    struct kv_buf buf;
    struct slot **slots;
    size_t n, cap;
};

static void batch_reset(struct batch *b)
{
    kv_buf_reset(&b->buf);
    b->n = 0;
}

static int batch_add(struct conn *c, struct batch *b, const struct kv_cmd *cmd)
{
    if (b->n == 0 && kv_batch_init(&b->buf) != 0)
        return -1;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct slot **ns = realloc(b->slots, cap * sizeof(*ns));
        if (ns == NULL)
            return -1;
        b->slots = ns;
        b->cap = cap;
    }
    if (kv_batch_add(&b->buf, cmd) != 0)
        return -1;
    struct slot *sl = slot_new(c);
    if (sl == NULL)
        return -1;
    b->slots[b->n++] = sl;
    return 0;
}

static void batch_flush(struct conn *c, struct batch *b)
{
    if (b->n == 0)
        return;
    struct kv_server *s = c->s;
    struct op *op = op_new(c, OP_WRITE);
    if (op == NULL || (op->slots = malloc(b->n * sizeof(*op->slots))) == NULL) {
        for (size_t i = 0; i < b->n; i++) {
            kv_resp_error(&b->slots[i]->out, "ERR out of memory");
            b->slots[i]->done = true;
        }
        if (op != NULL) {
            s->ops_in_flight--;
            conn_unref(c);
            op_free(op);
        }
        batch_reset(b);
        return;
    }
    memcpy(op->slots, b->slots, b->n * sizeof(*op->slots));
    op->n_slots = b->n;
    s->counters.writes += b->n;
    int rc = craft_host_propose(s->host, s->cfg.group_id, NULL, b->buf.data, (uint32_t)b->buf.len,
                                s->cfg.request_timeout_ms, on_host_done, op);
    if (rc != 0)
        op_refused(op, rc);
    batch_reset(b);
}

static void finish_write(struct op *op)
{
    struct conn *c = op->c;
    char ebuf[128];
    size_t pos = 0;
    for (size_t i = 0; i < op->n_slots; i++) {
        struct slot *sl = op->slots[i];
        struct kv_reply reply;
        if (op->status != 0) {
            kv_resp_error(&sl->out, host_error_text(op->status, op->leader, ebuf, sizeof(ebuf)));
            c->s->counters.errors++;
        } else if (kv_reply_next(op->data, op->len, &pos, &reply) == 1) {
            kv_reply_to_resp(&reply, c->proto, &sl->out);
        } else {
            kv_resp_error(&sl->out, "ERR the state machine gave no reply");
        }
        sl->done = true;
    }
}

/* ---- reads ---- */

static bool is_read_command(const struct kv_slice *name)
{
    static const char *reads[] = {"get", "mget", "exists", "strlen", "scan", "keys", "dbsize"};
    for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
        if (name->len == strlen(reads[i]) && strncasecmp(name->ptr, reads[i], name->len) == 0)
            return true;
    return false;
}

static bool name_is(const struct kv_slice *a, const char *name)
{
    return a->len == strlen(name) && strncasecmp(a->ptr, name, a->len) == 0;
}

struct key_list {
    struct kv_buf *out;
    size_t n;
    struct kv_buf keys;
};

static int collect_key(void *arg, const char *key, size_t len)
{
    struct key_list *kl = arg;
    kl->n++;
    return kv_resp_bulk(&kl->keys, key, len);
}

static bool parse_u64(const struct kv_slice *a, uint64_t *out)
{
    if (a->len == 0 || a->len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < a->len; i++) {
        if (!isdigit((unsigned char)a->ptr[i]))
            return false;
        uint64_t d = (uint64_t)(a->ptr[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Executes a read command against the store now (the caller made sure the
 * store is fresh enough). */
static void execute_read(struct conn *c, size_t argc, const struct kv_slice *argv,
                         struct kv_buf *out)
{
    struct kv_server *s = c->s;
    struct kv_read rd;
    const struct kv_slice *name = &argv[0];
    if (kv_read_begin(s->store, &rd) != 0) {
        kv_resp_error(out, "ERR the store cannot be read");
        return;
    }
    s->counters.reads++;
    if (name_is(name, "get")) {
        struct kv_slice v;
        if (argc != 2) {
            kv_resp_wrong_arity(out, *name);
        } else if (kv_read_get(&rd, argv[1].ptr, argv[1].len, &v) == 1) {
            kv_resp_bulk(out, v.ptr, v.len);
        } else {
            kv_resp_null(out, c->proto);
        }
    } else if (name_is(name, "mget")) {
        if (argc < 2) {
            kv_resp_wrong_arity(out, *name);
        } else {
            kv_resp_array(out, argc - 1);
            for (size_t i = 1; i < argc; i++) {
                struct kv_slice v;
                if (kv_read_get(&rd, argv[i].ptr, argv[i].len, &v) == 1)
                    kv_resp_bulk(out, v.ptr, v.len);
                else
                    kv_resp_null(out, c->proto);
            }
        }
    } else if (name_is(name, "exists")) {
        if (argc < 2) {
            kv_resp_wrong_arity(out, *name);
        } else {
            int64_t n = 0;
            for (size_t i = 1; i < argc; i++) {
                struct kv_slice v;
                n += kv_read_get(&rd, argv[i].ptr, argv[i].len, &v) == 1;
            }
            kv_resp_integer(out, n);
        }
    } else if (name_is(name, "strlen")) {
        struct kv_slice v;
        if (argc != 2)
            kv_resp_wrong_arity(out, *name);
        else if (kv_read_get(&rd, argv[1].ptr, argv[1].len, &v) == 1)
            kv_resp_integer(out, (int64_t)v.len);
        else
            kv_resp_integer(out, 0);
    } else if (name_is(name, "dbsize")) {
        uint64_t n = 0;
        if (argc != 1)
            kv_resp_wrong_arity(out, *name);
        else if (kv_read_dbsize(&rd, &n) == 0)
            kv_resp_integer(out, (int64_t)n);
        else
            kv_resp_error(out, "ERR the store cannot be read");
    } else if (name_is(name, "keys")) {
        if (argc != 2) {
            kv_resp_wrong_arity(out, *name);
        } else {
            struct key_list kl = {.out = out};
            kv_buf_init(&kl.keys);
            if (kv_read_keys(&rd, argv[1].ptr, argv[1].len, collect_key, &kl) == 0) {
                kv_resp_array(out, kl.n);
                kv_buf_append(out, kl.keys.data, kl.keys.len);
            } else {
                kv_resp_error(out, "ERR the store cannot be read");
            }
            kv_buf_free(&kl.keys);
        }
    } else if (name_is(name, "scan")) {
        uint64_t cursor, count = 10, next = 0;
        const char *pattern = NULL;
        size_t pattern_len = 0;
        bool ok = argc >= 2 && parse_u64(&argv[1], &cursor);
        if (!ok && argc >= 2) {
            kv_resp_error(out, "ERR invalid cursor");
            goto out;
        }
        for (size_t i = 2; ok && i + 1 < argc + 1; i += 2) {
            if (i + 1 >= argc) {
                ok = false;
            } else if (name_is(&argv[i], "match")) {
                pattern = argv[i + 1].ptr;
                pattern_len = argv[i + 1].len;
            } else if (name_is(&argv[i], "count")) {
                ok = parse_u64(&argv[i + 1], &count) && count > 0;
            } else {
                ok = false;
            }
        }
        if (argc < 2) {
            kv_resp_wrong_arity(out, *name);
        } else if (!ok) {
            kv_resp_error(out, "ERR syntax error");
        } else {
            struct key_list kl = {.out = out};
            kv_buf_init(&kl.keys);
            int rc = kv_read_scan(&rd, cursor, pattern, pattern_len, (size_t)count, collect_key,
                                  &kl, &next);
            if (rc == 0) {
                char cur[24];
                snprintf(cur, sizeof(cur), "%" PRIu64, next);
                kv_resp_array(out, 2);
                kv_resp_bulk_str(out, cur);
                kv_resp_array(out, kl.n);
                kv_buf_append(out, kl.keys.data, kl.keys.len);
            } else if (rc == KV_STORE_EBADCURSOR) {
                kv_resp_error(out, "ERR invalid cursor");
            } else {
                kv_resp_error(out, "ERR the store cannot be read");
            }
            kv_buf_free(&kl.keys);
        }
    }
out:
    kv_read_end(&rd);
}

static int copy_args(struct op *op, size_t argc, const struct kv_slice *argv)
{
    size_t total = 0;
    for (size_t i = 0; i < argc; i++)
        total += argv[i].len;
    op->argv = malloc(argc * sizeof(*op->argv));
    op->argbuf = malloc(total ? total : 1);
    if (op->argv == NULL || op->argbuf == NULL)
        return -1;
    char *p = op->argbuf;
    for (size_t i = 0; i < argc; i++) {
        memcpy(p, argv[i].ptr, argv[i].len);
        op->argv[i].ptr = p;
        op->argv[i].len = argv[i].len;
        p += argv[i].len;
    }
    op->argc = argc;
    return 0;
}

static void start_read(struct conn *c, size_t argc, const struct kv_slice *argv)
{
    struct kv_server *s = c->s;
    if (c->readonly) {
        struct slot *sl = reply_now(c);
        if (sl != NULL)
            execute_read(c, argc, argv, &sl->out);
        return;
    }
    struct op *op = op_new(c, OP_READ);
    struct slot *sl = slot_new(c);
    if (op == NULL || sl == NULL || copy_args(op, argc, argv) != 0) {
        if (sl != NULL) {
            kv_resp_error(&sl->out, "ERR out of memory");
            sl->done = true;
        }
        if (op != NULL) {
            s->ops_in_flight--;
            conn_unref(c);
            op_free(op);
        }
        return;
    }
    op->slot = sl;
    int rc = craft_host_read(s->host, s->cfg.group_id, s->cfg.request_timeout_ms, on_host_done, op);
    if (rc != 0)
        op_refused(op, rc);
}

static void finish_read(struct op *op)
{
    char ebuf[128];
    if (op->status != 0) {
        kv_resp_error(&op->slot->out, host_error_text(op->status, op->leader, ebuf, sizeof(ebuf)));
        op->s->counters.errors++;
    } else {
        execute_read(op->c, op->argc, op->argv, &op->slot->out);
    }
    op->slot->done = true;
}

/* ---- INFO ---- */

static void info_text(struct kv_server *s, struct kv_buf *b, const char *section)
{
    char line[256];
    bool all = section == NULL || strcasecmp(section, "all") == 0 ||
               strcasecmp(section, "default") == 0 || strcasecmp(section, "everything") == 0;
    if (all || strcasecmp(section, "server") == 0) {
        snprintf(
            line, sizeof(line),
            "# Server\r\nredis_version:7.0.0\r\ncraftkv_version:0.1.0\r\n"
            "redis_mode:standalone\r\nprocess_id:%d\r\ntcp_port:%s\r\nuptime_in_seconds:%" PRIu64
            "\r\n\r\n",
            (int)uv_os_getpid(), s->cfg.resp_address, (uv_now(&s->loop) - s->started_ms) / 1000u);
        kv_buf_append_str(b, line);
    }
    if (all || strcasecmp(section, "clients") == 0) {
        snprintf(line, sizeof(line), "# Clients\r\nconnected_clients:%u\r\nmaxclients:%u\r\n\r\n",
                 s->n_clients, s->cfg.max_clients);
        kv_buf_append_str(b, line);
    }
    if (all || strcasecmp(section, "stats") == 0) {
        snprintf(line, sizeof(line),
                 "# Stats\r\ntotal_connections_received:%" PRIu64
                 "\r\ntotal_commands_processed:%" PRIu64 "\r\nwrite_commands:%" PRIu64
                 "\r\nread_commands:%" PRIu64 "\r\nerror_replies:%" PRIu64 "\r\n\r\n",
                 s->counters.connections, s->counters.commands, s->counters.writes,
                 s->counters.reads, s->counters.errors);
        kv_buf_append_str(b, line);
    }
    if (all || strcasecmp(section, "raft") == 0) {
        struct craft_group_status *st = malloc(sizeof(*st));
        if (st != NULL && craft_host_group_status(s->host, s->cfg.group_id, st) == 0) {
            snprintf(line, sizeof(line),
                     "# Raft\r\nnode_id:%" PRIu64 "\r\ngroup_id:%" PRIu64
                     "\r\nrole:%s\r\nterm:%" PRIu64 "\r\nleader:%" PRIu64 "\r\ncommit:%" PRIu64
                     "\r\napplied:%" PRIu64 "\r\nfsm_applied:%" PRIu64 "\r\nsnapshot_index:%" PRIu64
                     "\r\nread_mode:%s\r\nmembers:",
                     s->cfg.node_id, s->cfg.group_id, craft_role_name(st->raft.role), st->raft.term,
                     st->raft.leader, st->raft.commit, st->raft.applied, st->fsm_applied,
                     st->snapshot_index, s->cfg.lease_reads ? "lease" : "readindex");
            kv_buf_append_str(b, line);
            const struct craft_conf_state *cs = &st->raft.conf;
            for (uint32_t i = 0; i < cs->n_voters; i++) {
                snprintf(line, sizeof(line), "%s%" PRIu64 "%s", i ? "," : "", cs->voters[i],
                         craft_conf_state_is_witness(cs, cs->voters[i]) ? "(witness)" : "");
                kv_buf_append_str(b, line);
            }
            for (uint32_t i = 0; i < cs->n_learners; i++) {
                snprintf(line, sizeof(line), ",%" PRIu64 "(non-voting)", cs->learners[i]);
                kv_buf_append_str(b, line);
            }
            kv_buf_append_str(b, "\r\n\r\n");
        }
        free(st);
    }
    if (all || strcasecmp(section, "keyspace") == 0) {
        struct kv_read rd;
        uint64_t n = 0;
        if (kv_read_begin(s->store, &rd) == 0) {
            kv_read_dbsize(&rd, &n);
            kv_read_end(&rd);
        }
        snprintf(line, sizeof(line), "# Keyspace\r\ndb0:keys=%" PRIu64 ",expires=0,avg_ttl=0\r\n",
                 n);
        kv_buf_append_str(b, line);
    }
}

/* ---- RESP commands ---- */

static void cmd_hello(struct conn *c, size_t argc, const struct kv_slice *argv)
{
    int proto = c->proto;
    size_t i = 1;
    if (argc >= 2) {
        uint64_t v;
        if (!parse_u64(&argv[1], &v) || (v != 2 && v != 3)) {
            reply_error(c, "NOPROTO unsupported protocol version");
            return;
        }
        proto = (int)v;
        i = 2;
    }
    for (; i < argc; i++) {
        if (name_is(&argv[i], "setname") && i + 1 < argc) {
            snprintf(c->name, sizeof(c->name), "%.*s", (int)argv[i + 1].len, argv[i + 1].ptr);
            i++;
        } else if (name_is(&argv[i], "auth") && i + 2 < argc) {
            i += 2; /* no authentication in craftkv: accepted and ignored */
        } else {
            reply_error(c, "ERR syntax error in HELLO option");
            return;
        }
    }
    c->proto = proto;
    struct slot *sl = reply_now(c);
    if (sl == NULL)
        return;
    struct kv_buf *b = &sl->out;
    kv_resp_map(b, 7, proto);
    kv_resp_bulk_str(b, "server");
    kv_resp_bulk_str(b, "craftkv");
    kv_resp_bulk_str(b, "version");
    kv_resp_bulk_str(b, "7.0.0");
    kv_resp_bulk_str(b, "proto");
    kv_resp_integer(b, proto);
    kv_resp_bulk_str(b, "id");
    kv_resp_integer(b, (int64_t)c->id);
    kv_resp_bulk_str(b, "mode");
    kv_resp_bulk_str(b, "standalone");
    kv_resp_bulk_str(b, "role");
    kv_resp_bulk_str(b, "master");
    kv_resp_bulk_str(b, "modules");
    kv_resp_array(b, 0);
}

static void cmd_client(struct conn *c, size_t argc, const struct kv_slice *argv)
{
    struct slot *sl;
    if (argc >= 3 && name_is(&argv[1], "setname")) {
        snprintf(c->name, sizeof(c->name), "%.*s", (int)argv[2].len, argv[2].ptr);
        if ((sl = reply_now(c)) != NULL)
            kv_resp_simple(&sl->out, "OK");
    } else if (argc == 2 && name_is(&argv[1], "getname")) {
        if ((sl = reply_now(c)) != NULL) {
            if (c->name[0])
                kv_resp_bulk_str(&sl->out, c->name);
            else
                kv_resp_null(&sl->out, c->proto);
        }
    } else if (argc == 2 && name_is(&argv[1], "id")) {
        if ((sl = reply_now(c)) != NULL)
            kv_resp_integer(&sl->out, (int64_t)c->id);
    } else if (argc >= 2 && (name_is(&argv[1], "setinfo") || name_is(&argv[1], "no-evict") ||
                             name_is(&argv[1], "no-touch") || name_is(&argv[1], "reply"))) {
        if ((sl = reply_now(c)) != NULL)
            kv_resp_simple(&sl->out, "OK");
    } else {
        reply_error(c, "ERR unknown subcommand or wrong number of arguments for 'client' command");
    }
}

static void cmd_config(struct conn *c, size_t argc, const struct kv_slice *argv)
{
    struct slot *sl;
    if (argc == 3 && name_is(&argv[1], "get")) {
        if ((sl = reply_now(c)) == NULL)
            return;
        /* What redis-benchmark asks at start: answer as a server without
         * RDB snapshots or AOF (durability is the WAL's business). */
        const char *value = NULL;
        if (name_is(&argv[2], "save"))
            value = "";
        else if (name_is(&argv[2], "appendonly"))
            value = "no";
        if (value == NULL) {
            kv_resp_map(&sl->out, 0, c->proto);
        } else {
            kv_resp_map(&sl->out, 1, c->proto);
            kv_resp_bulk(&sl->out, argv[2].ptr, argv[2].len);
            kv_resp_bulk_str(&sl->out, value);
        }
    } else if (argc >= 2 && name_is(&argv[1], "set")) {
        reply_error(c, "ERR CONFIG SET is not supported by craftkv (use flags)");
    } else {
        reply_error(c, "ERR unknown subcommand or wrong number of arguments for 'config' command");
    }
}

/* Handles one parsed command; writes are added to the batch being built. */
static void dispatch(struct conn *c, struct batch *b, size_t argc, const struct kv_slice *argv)
{
    struct kv_server *s = c->s;
    s->counters.commands++;
    if (argc == 0)
        return;
    const struct kv_slice *name = &argv[0];
    struct kv_cmd cmd;
    char err[160];
    int w = kv_cmd_parse(argc, argv, &cmd, err, sizeof(err));
    if (w == 0) {
        /* The server's own limits (flags), tighter than the store's. */
        if (kv_cmd_check_limits(&cmd, s->cfg.max_key_size, s->cfg.max_value_size, err,
                                sizeof(err)) != 0) {
            batch_flush(c, b);
            reply_error(c, err);
            return;
        }
        if (cmd.op == KV_OP_APPEND && s->cfg.max_value_size < KV_MAX_VALUE_SIZE) {
            cmd.flags |= KV_APPEND_LIMIT;
            cmd.delta = (int64_t)s->cfg.max_value_size;
        }
        if (batch_add(c, b, &cmd) != 0)
            reply_error(c, "ERR out of memory");
        return;
    }
    /* Anything else keeps its order behind the writes queued so far. */
    batch_flush(c, b);
    if (w < 0) {
        reply_error(c, err);
        return;
    }
    struct slot *sl;
    if (is_read_command(name)) {
        /* An oversized key cannot exist: reads of one find nothing. */
        start_read(c, argc, argv);
    } else if (name_is(name, "ping")) {
        if ((sl = reply_now(c)) != NULL) {
            if (argc >= 2)
                kv_resp_bulk(&sl->out, argv[1].ptr, argv[1].len);
            else
                kv_resp_simple(&sl->out, "PONG");
        }
    } else if (name_is(name, "echo")) {
        if (argc != 2)
            reply_error(c, "ERR wrong number of arguments for 'echo' command");
        else if ((sl = reply_now(c)) != NULL)
            kv_resp_bulk(&sl->out, argv[1].ptr, argv[1].len);
    } else if (name_is(name, "hello")) {
        cmd_hello(c, argc, argv);
    } else if (name_is(name, "client")) {
        cmd_client(c, argc, argv);
    } else if (name_is(name, "config")) {
        cmd_config(c, argc, argv);
    } else if (name_is(name, "select")) {
        if (argc == 2 && argv[1].len == 1 && argv[1].ptr[0] == '0') {
            if ((sl = reply_now(c)) != NULL)
                kv_resp_simple(&sl->out, "OK");
        } else {
            reply_error(c, "ERR DB index is out of range");
        }
    } else if (name_is(name, "command")) {
        if ((sl = reply_now(c)) != NULL) {
            if (argc >= 2 && name_is(&argv[1], "docs"))
                kv_resp_map(&sl->out, 0, c->proto);
            else if (argc >= 2 && name_is(&argv[1], "count"))
                kv_resp_integer(&sl->out, 0);
            else
                kv_resp_array(&sl->out, 0);
        }
    } else if (name_is(name, "info")) {
        if ((sl = reply_now(c)) != NULL) {
            char section[32] = {0};
            if (argc >= 2)
                snprintf(section, sizeof(section), "%.*s", (int)argv[1].len, argv[1].ptr);
            struct kv_buf text;
            kv_buf_init(&text);
            info_text(s, &text, argc >= 2 ? section : NULL);
            kv_resp_bulk(&sl->out, text.data, text.len);
            kv_buf_free(&text);
        }
    } else if (name_is(name, "readonly")) {
        c->readonly = true;
        if ((sl = reply_now(c)) != NULL)
            kv_resp_simple(&sl->out, "OK");
    } else if (name_is(name, "readwrite")) {
        c->readonly = false;
        if ((sl = reply_now(c)) != NULL)
            kv_resp_simple(&sl->out, "OK");
    } else if (name_is(name, "quit")) {
        if ((sl = reply_now(c)) != NULL)
            kv_resp_simple(&sl->out, "OK");
        c->close_after_flush = true;
    } else {
        struct slot *e = reply_now(c);
        if (e != NULL)
            kv_resp_unknown_command(&e->out, argc, argv);
        s->counters.errors++;
    }
}

/* ---- HTTP ---- */

static void http_reply(struct conn *c, struct slot *sl, int status, const char *type,
                       const void *body, size_t len, bool keep_alive)
{
    kv_http_response(&sl->out, status, type, body, len, keep_alive, NULL);
    sl->done = true;
    if (!keep_alive)
        c->close_after_flush = true;
}

static void http_text(struct conn *c, struct slot *sl, int status, const char *text,
                      bool keep_alive)
{
    http_reply(c, sl, status, "text/plain", text, strlen(text), keep_alive);
}

static int http_status_of(int rc)
{
    switch (rc) {
    case CRAFT_ETIMEDOUT:
        return 504;
    case CRAFT_ENOLEADER:
        return 503;
    case CRAFT_ENOTLEADER:
    case CRAFT_EDROPPED:
    case CRAFT_EBUSY:
    case CRAFT_ESTOPPED:
        return 503;
    case CRAFT_EINVAL:
    case CRAFT_ECONF_INVALID:
    case CRAFT_ECONF_PENDING:
        return 409;
    default:
        return 500;
    }
}

static void status_json(struct kv_server *s, struct kv_buf *b)
{
    struct craft_group_status *st = malloc(sizeof(*st));
    char line[512];
    if (st == NULL || craft_host_group_status(s->host, s->cfg.group_id, st) != 0) {
        kv_buf_append_str(b, "{\"error\":\"no status\"}");
        free(st);
        return;
    }
    const struct craft_status *r = &st->raft;
    snprintf(line, sizeof(line),
             "{\"node_id\":%" PRIu64 ",\"group_id\":%" PRIu64 ",\"role\":\"%s\",\"term\":%" PRIu64
             ",\"vote\":%" PRIu64 ",\"leader\":%" PRIu64 ",\"commit\":%" PRIu64
             ",\"applied\":%" PRIu64 ",\"fsm_applied\":%" PRIu64 ",\"snapshot_index\":%" PRIu64
             ",\"first_index\":%" PRIu64 ",\"last_index\":%" PRIu64 ",\"lead_transferee\":%" PRIu64
             ",\"quiesced\":%s,\"failed\":%s,\"read_mode\":\"%s\",",
             s->cfg.node_id, s->cfg.group_id, craft_role_name(r->role), r->term, r->vote, r->leader,
             r->commit, r->applied, st->fsm_applied, st->snapshot_index, r->first_index,
             r->last_index, r->lead_transferee, r->quiesced ? "true" : "false",
             st->failed ? "true" : "false", s->cfg.lease_reads ? "lease" : "readindex");
    kv_buf_append_str(b, line);
    kv_buf_append_str(b, "\"members\":[");
    /* This node first, then its peers with the leader's view of them. */
    const struct craft_conf_state *cs = &r->conf;
    snprintf(line, sizeof(line),
             "{\"id\":%" PRIu64 ",\"self\":true,\"role\":\"%s\",\"voter\":%s,\"witness\":%s}",
             s->cfg.node_id, craft_role_name(r->role),
             craft_conf_state_is_voter(cs, s->cfg.node_id) ? "true" : "false",
             craft_conf_state_is_witness(cs, s->cfg.node_id) ? "true" : "false");
    kv_buf_append_str(b, line);
    for (uint32_t i = 0; i < st->n_peers; i++) {
        const struct craft_host_peer *p = &st->peers[i];
        uint64_t id = p->progress.id;
        const char *state = p->progress.state == CRAFT_PROGRESS_REPLICATE  ? "replicate"
                            : p->progress.state == CRAFT_PROGRESS_SNAPSHOT ? "snapshot"
                                                                           : "probe";
        char contact[32];
        if (p->last_contact_ms == UINT64_MAX)
            snprintf(contact, sizeof(contact), "null");
        else
            snprintf(contact, sizeof(contact), "%" PRIu64, p->last_contact_ms);
        snprintf(line, sizeof(line),
                 ",{\"id\":%" PRIu64 ",\"self\":false,\"address\":\"%s\",\"role\":\"%s\","
                 "\"voter\":%s,\"witness\":%s,\"match\":%" PRIu64 ",\"next\":%" PRIu64
                 ",\"lag\":%" PRIu64 ",\"progress\":\"%s\",\"recent_active\":%s,"
                 "\"last_contact_ms\":%s}",
                 id, p->address, id == r->leader ? "leader" : "follower",
                 craft_conf_state_is_voter(cs, id) ? "true" : "false",
                 craft_conf_state_is_witness(cs, id) ? "true" : "false", p->progress.match,
                 p->progress.next,
                 r->role == CRAFT_ROLE_LEADER && r->last_index > p->progress.match
                     ? r->last_index - p->progress.match
                     : 0,
                 state, p->progress.recent_active ? "true" : "false", contact);
        kv_buf_append_str(b, line);
    }
    kv_buf_append_str(b, "]}\n");
    free(st);
}

static void metrics_text(struct kv_server *s, struct kv_buf *b)
{
    struct craft_host_metrics m;
    craft_host_get_metrics(s->host, &m);
    char line[256];
#define METRIC(name, help, type, value)                                                            \
    do {                                                                                           \
        snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", (name),       \
                 (help), (name), (type), (name), (uint64_t)(value));                               \
        kv_buf_append_str(b, line);                                                                \
    } while (0)
    METRIC("craft_proposals_total", "Proposals applied.", "counter", m.proposals);
    METRIC("craft_proposals_failed_total", "Proposals failed.", "counter", m.proposals_failed);
    METRIC("craft_reads_total", "Linearizable and stale reads served.", "counter", m.reads);
    METRIC("craft_applies_total", "Apply batches.", "counter", m.applies);
    METRIC("craft_entries_applied_total", "Log entries applied.", "counter", m.entries_applied);
    METRIC("craft_elections_total", "Elections seen.", "counter", m.elections);
    METRIC("craft_leader_changes_total", "Leader changes seen.", "counter", m.leader_changes);
    METRIC("craft_wal_writes_total", "WAL writes.", "counter", m.wal_writes);
    METRIC("craft_wal_fsyncs_total", "WAL fdatasyncs.", "counter", m.wal_fsyncs);
    METRIC("craft_wal_bytes_total", "WAL bytes written.", "counter", m.wal_bytes);
    METRIC("craft_bytes_sent_total", "Raft bytes sent.", "counter", m.bytes_sent);
    METRIC("craft_bytes_received_total", "Raft bytes received.", "counter", m.bytes_received);
    METRIC("craft_messages_sent_total", "Raft messages sent.", "counter", m.messages_sent);
    METRIC("craft_messages_received_total", "Raft messages received.", "counter",
           m.messages_received);
    METRIC("craft_snapshots_taken_total", "Snapshots taken.", "counter", m.snapshots_taken);
    METRIC("craft_snapshots_sent_total", "Snapshots sent.", "counter", m.snapshots_sent);
    METRIC("craft_snapshots_received_total", "Snapshots received.", "counter",
           m.snapshots_received);
    METRIC("craftkv_commands_total", "Client commands.", "counter", s->counters.commands);
    METRIC("craftkv_connected_clients", "Client connections open.", "gauge", s->n_clients);
#undef METRIC
    kv_buf_append_str(b, "# HELP craft_wal_fsync_seconds WAL fdatasync latency.\n"
                         "# TYPE craft_wal_fsync_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < 16; i++) {
        cum += m.wal_fsync_hist[i];
        if (i < 15)
            snprintf(line, sizeof(line),
                     "craft_wal_fsync_seconds_bucket{le=\"%.6f\"} %" PRIu64 "\n",
                     (double)(64u << i) / 1e6, cum);
        else
            snprintf(line, sizeof(line),
                     "craft_wal_fsync_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
        kv_buf_append_str(b, line);
    }
    snprintf(line, sizeof(line), "craft_wal_fsync_seconds_count %" PRIu64 "\n", cum);
    kv_buf_append_str(b, line);
}

/* Parses a decimal node id path component. */
static bool path_id(const char *p, uint64_t *id)
{
    struct kv_slice sl = {.ptr = p, .len = strlen(p)};
    return parse_u64(&sl, id) && *id != 0;
}

static void finish_http(struct op *op)
{
    struct conn *c = op->c;
    struct slot *sl = op->slot;
    char msg[160];
    if (op->status != 0) {
        const char *t = host_error_text(op->status, op->leader, msg, sizeof(msg));
        char body[200];
        snprintf(body, sizeof(body), "%s\n", t);
        http_text(c, sl, http_status_of(op->status), body, op->keep_alive);
        return;
    }
    switch (op->kind) {
    case OP_HTTP_GET: {
        struct kv_read rd;
        struct kv_slice v;
        if (kv_read_begin(c->s->store, &rd) != 0) {
            http_text(c, sl, 500, "the store cannot be read\n", op->keep_alive);
            return;
        }
        if (kv_read_get(&rd, op->argv[0].ptr, op->argv[0].len, &v) == 1)
            http_reply(c, sl, 200, "application/octet-stream", v.ptr, v.len, op->keep_alive);
        else
            http_text(c, sl, 404, "not found\n", op->keep_alive);
        kv_read_end(&rd);
        break;
    }
    case OP_HTTP_WRITE: {
        size_t pos = 0;
        struct kv_reply reply;
        if (kv_reply_next(op->data, op->len, &pos, &reply) == 1 && reply.type == KV_REPLY_ERR) {
            snprintf(msg, sizeof(msg), "%.*s\n", (int)reply.error.len, reply.error.ptr);
            http_text(c, sl, 400, msg, op->keep_alive);
        } else {
            http_reply(c, sl, 204, NULL, NULL, 0, op->keep_alive);
        }
        break;
    }
    default:
        snprintf(msg, sizeof(msg), "ok (index %" PRIu64 ")\n", op->index);
        http_text(c, sl, 200, msg, op->keep_alive);
        break;
    }
}

static void http_request(struct conn *c, struct kv_http_request *rq)
{
    struct kv_server *s = c->s;
    struct slot *sl = slot_new(c);
    if (sl == NULL) {
        c->close_after_flush = true;
        return;
    }
    bool ka = rq->keep_alive;
    const char *path = rq->path.data != NULL ? rq->path.data : "";
    s->counters.commands++;
    if (strncmp(path, "/kv/", 4) == 0) {
        const char *key = path + 4;
        size_t klen = rq->path.len - 4;
        if (klen == 0 || klen > s->cfg.max_key_size) {
            http_text(c, sl, 400, "the key is empty or too long\n", ka);
            return;
        }
        if (rq->method == KV_HTTP_GET || rq->method == KV_HTTP_HEAD) {
            struct op *op = op_new(c, OP_HTTP_GET);
            struct kv_slice k = {.ptr = key, .len = klen};
            if (op == NULL || copy_args(op, 1, &k) != 0) {
                if (op != NULL) {
                    s->ops_in_flight--;
                    conn_unref(c);
                    op_free(op);
                }
                http_text(c, sl, 500, "out of memory\n", false);
                return;
            }
            op->slot = sl;
            op->keep_alive = ka;
            if (rq->stale) {
                op_refused(op, 0); /* completes at once, read from the store as it is */
                return;
            }
            int rc = craft_host_read(s->host, s->cfg.group_id, s->cfg.request_timeout_ms,
                                     on_host_done, op);
            if (rc != 0)
                op_refused(op, rc);
            return;
        }
        if (rq->method == KV_HTTP_PUT || rq->method == KV_HTTP_DELETE) {
            if (rq->body.len > s->cfg.max_value_size) {
                http_text(c, sl, 413, "the value is too large\n", false);
                return;
            }
            struct kv_slice argv[3] = {
                {.ptr = rq->method == KV_HTTP_PUT ? "SET" : "DEL", .len = 3},
                {.ptr = key, .len = klen},
                {.ptr = rq->body.data ? rq->body.data : "", .len = rq->body.len}};
            struct kv_cmd cmd;
            char err[160];
            struct kv_buf batch;
            kv_buf_init(&batch);
            if (kv_cmd_parse(rq->method == KV_HTTP_PUT ? 3 : 2, argv, &cmd, err, sizeof(err)) !=
                    0 ||
                kv_batch_init(&batch) != 0 || kv_batch_add(&batch, &cmd) != 0) {
                kv_buf_free(&batch);
                http_text(c, sl, 400, "bad request\n", ka);
                return;
            }
            struct op *op = op_new(c, OP_HTTP_WRITE);
            if (op == NULL) {
                kv_buf_free(&batch);
                http_text(c, sl, 500, "out of memory\n", false);
                return;
            }
            op->slot = sl;
            op->keep_alive = ka;
            s->counters.writes++;
            int rc =
                craft_host_propose(s->host, s->cfg.group_id, NULL, batch.data, (uint32_t)batch.len,
                                   s->cfg.request_timeout_ms, on_host_done, op);
            kv_buf_free(&batch);
            if (rc != 0)
                op_refused(op, rc);
            return;
        }
        http_text(c, sl, 405, "method not allowed\n", ka);
        return;
    }
    if (strncmp(path, "/members/", 9) == 0) {
        uint64_t id;
        if (!path_id(path + 9, &id)) {
            http_text(c, sl, 400, "bad member id\n", ka);
            return;
        }
        struct op *op = op_new(c, OP_HTTP_MEMBERS);
        if (op == NULL) {
            http_text(c, sl, 500, "out of memory\n", false);
            return;
        }
        op->slot = sl;
        op->keep_alive = ka;
        int rc;
        if (rq->method == KV_HTTP_POST || rq->method == KV_HTTP_PUT) {
            char addr[64] = {0};
            uint32_t role = CRAFT_ROLE_FOLLOWER;
            const char *body = rq->body.data != NULL ? rq->body.data : "";
            size_t blen = rq->body.len;
            while (blen > 0 && isspace((unsigned char)body[blen - 1]))
                blen--;
            if (blen == 0 || blen >= sizeof(addr)) {
                op_refused(op, CRAFT_EINVAL);
                return;
            }
            memcpy(addr, body, blen);
            /* "ADDR" or "ADDR non-voting" / "ADDR witness" */
            char *sp = strchr(addr, ' ');
            if (sp != NULL) {
                *sp = '\0';
                if (strcmp(sp + 1, "non-voting") == 0)
                    role = CRAFT_ROLE_NON_VOTING;
                else if (strcmp(sp + 1, "witness") == 0)
                    role = CRAFT_ROLE_WITNESS;
            }
            rc = craft_host_add_member(s->host, s->cfg.group_id, id, addr, role,
                                       s->cfg.request_timeout_ms, on_host_done, op);
        } else if (rq->method == KV_HTTP_DELETE) {
            rc = craft_host_remove_member(s->host, s->cfg.group_id, id, s->cfg.request_timeout_ms,
                                          on_host_done, op);
        } else {
            rc = CRAFT_EINVAL;
        }
        if (rc != 0)
            op_refused(op, rc);
        return;
    }
    if (strcmp(path, "/status") == 0 && rq->method == KV_HTTP_GET) {
        struct kv_buf body;
        kv_buf_init(&body);
        status_json(s, &body);
        http_reply(c, sl, 200, "application/json", body.data, body.len, ka);
        kv_buf_free(&body);
        return;
    }
    if (strcmp(path, "/metrics") == 0 && rq->method == KV_HTTP_GET) {
        struct kv_buf body;
        kv_buf_init(&body);
        metrics_text(s, &body);
        http_reply(c, sl, 200, "text/plain; version=0.0.4", body.data, body.len, ka);
        kv_buf_free(&body);
        return;
    }
    if (strcmp(path, "/hash") == 0 && rq->method == KV_HTTP_GET) {
        /* The state machine's hash, for comparing replicas (fault tests). */
        uint64_t hash = 0, applied = 0;
        struct kv_read rd;
        if (kv_read_begin(s->store, &rd) == 0) {
            applied = kv_read_applied(&rd);
            kv_read_end(&rd);
        }
        char body[96];
        if (kv_store_hash(s->store, &hash) != 0) {
            http_text(c, sl, 500, "hash failed\n", ka);
            return;
        }
        snprintf(body, sizeof(body), "{\"hash\":\"%016" PRIx64 "\",\"applied\":%" PRIu64 "}\n",
                 hash, applied);
        http_reply(c, sl, 200, "application/json", body, strlen(body), ka);
        return;
    }
    if (strncmp(path, "/admin/", 7) == 0 && rq->method == KV_HTTP_POST) {
        /* Blocking admin calls are short; the host answers within its timeout. */
        int rc;
        uint64_t id = 0, index = 0;
        if (strncmp(path + 7, "transfer/", 9) == 0 && path_id(path + 16, &id))
            rc = craft_host_transfer_leader_sync(s->host, s->cfg.group_id, id,
                                                 s->cfg.request_timeout_ms);
        else if (strcmp(path + 7, "snapshot") == 0)
            rc = craft_host_snapshot_sync(s->host, s->cfg.group_id, s->cfg.request_timeout_ms,
                                          &index);
        else {
            http_text(c, sl, 404, "no such admin call\n", ka);
            return;
        }
        char body[200], ebuf[128];
        if (rc == 0 && index != 0) {
            snprintf(body, sizeof(body), "ok index %" PRIu64 "\n", index);
        } else if (rc == 0) {
            snprintf(body, sizeof(body), "ok\n");
        } else {
            /* Name the leader, as the other calls do, so the caller can go there. */
            uint64_t leader = 0;
            struct craft_group_status *st = malloc(sizeof(*st));
            if (st != NULL && craft_host_group_status(s->host, s->cfg.group_id, st) == 0)
                leader = st->raft.leader;
            free(st);
            snprintf(body, sizeof(body), "%s\n", host_error_text(rc, leader, ebuf, sizeof(ebuf)));
        }
        http_text(c, sl, rc == 0 ? 200 : http_status_of(rc), body, ka);
        return;
    }
    http_text(c, sl, 404, "not found\n", ka);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    conn_unref(c);
}

static void conn_free(struct conn *c)
{
    while (c->head != NULL) {
        struct slot *sl = c->head;
        c->head = sl->next;
        kv_buf_free(&sl->out);
        free(sl);
    }
    kv_buf_free(&c->in);
    kv_resp_parser_free(&c->resp);
    if (c->http)
        kv_http_conn_free(&c->httpc);
    free(c);
}

static void conn_unref(struct conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct kv_server *s = c->s;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_clients--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    if (kv_buf_reserve(&c->in, READ_CHUNK) != 0) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    buf->base = c->in.data + c->in.len;
    buf->len = READ_CHUNK;
}

/* Parses and dispatches every complete request in the input buffer. */
static void process_input(struct conn *c)
{
    size_t off = 0;
    if (c->http) {
        while (!c->closing && !c->close_after_flush && off < c->in.len) {
            if (c->n_slots >= MAX_PENDING_SLOTS) {
                c->paused = true;
                break;
            }
            size_t used = 0;
            enum kv_http_status st =
                kv_http_feed(&c->httpc, c->in.data + off, c->in.len - off, &used);
            off += used;
            if (st == KV_HTTP_NEED_MORE)
                break;
            if (st == KV_HTTP_ERROR) {
                struct slot *sl = slot_new(c);
                if (sl != NULL) {
                    char body[128];
                    snprintf(body, sizeof(body), "%s\n",
                             c->httpc.error ? c->httpc.error : "bad request");
                    http_text(c, sl, c->httpc.error_status, body, false);
                }
                c->close_after_flush = true;
                break;
            }
            http_request(c, &c->httpc.request);
        }
    } else {
        struct batch b = {0};
        kv_buf_init(&b.buf);
        while (!c->closing && !c->close_after_flush && off < c->in.len) {
            if (c->n_slots >= MAX_PENDING_SLOTS) {
                c->paused = true;
                break;
            }
            size_t used = 0;
            enum kv_resp_status st =
                kv_resp_parse(&c->resp, c->in.data + off, c->in.len - off, &used);
            if (st == KV_RESP_NEED_MORE) {
                off += used;
                break;
            }
            if (st == KV_RESP_ERROR) {
                batch_flush(c, &b);
                reply_error(c, c->resp.error);
                c->close_after_flush = true;
                break;
            }
            dispatch(c, &b, c->resp.argc, c->resp.argv);
            off += used;
        }
        batch_flush(c, &b);
        kv_buf_free(&b.buf);
        free(b.slots);
    }
    kv_buf_consume(&c->in, off);
    if (c->paused)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else if (!c->closing)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    (void)buf;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0)
        return;
    c->in.len += (size_t)n;
    c->refs++;
    process_input(c);
    conn_flush(c);
    conn_unref(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct kv_server *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->s = s;
    c->http = listener == (uv_stream_t *)&s->http_listener;
    c->proto = 2;
    c->refs = 1; /* the handle's */
    c->id = ++s->next_client_id;
    kv_buf_init(&c->in);
    struct kv_resp_limits lim;
    kv_resp_limits_default(&lim);
    lim.max_request = s->cfg.max_request;
    lim.max_bulk =
        s->cfg.max_value_size + 64 > lim.max_bulk ? s->cfg.max_value_size + 64 : lim.max_bulk;
    kv_resp_parser_init(&c->resp, &lim);
    if (c->http)
        kv_http_conn_init(&c->httpc, NULL);
    uv_tcp_init(&s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->n_clients++;
    s->counters.connections++;
    if (s->n_clients > s->cfg.max_clients) {
        if (c->http) {
            struct slot *sl = slot_new(c);
            if (sl != NULL)
                http_text(c, sl, 503, "max number of clients reached\n", false);
        } else {
            reply_error(c, "ERR max number of clients reached");
            c->close_after_flush = true;
        }
        conn_flush(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- lifecycle ---- */

static int listen_on(struct kv_server *s, uv_tcp_t *t, const char *address, char *err,
                     size_t err_cap)
{
    struct sockaddr_storage sa;
    if (craft_tcp_parse_address(address, &sa) != 0) {
        snprintf(err, err_cap, "bad address %s (want ip:port)", address);
        return CRAFT_EINVAL;
    }
    int rc;
    uv_tcp_init(&s->loop, t);
    t->data = s;
    rc = uv_tcp_bind(t, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)t, 511, on_connection);
    if (rc != 0) {
        snprintf(err, err_cap, "listen on %s: %s", address, uv_strerror(rc));
        return CRAFT_EINVAL;
    }
    return 0;
}

/* Fail-stop: once the raft group has failed (a state machine or storage
 * error) this node serves nothing; exit so that a supervisor restarts it
 * (recovery from the log) instead of keeping a process that looks healthy. */
static void on_health_timer(uv_timer_t *t)
{
    struct kv_server *s = t->data;
    struct craft_group_status *st = malloc(sizeof(*st));
    if (st != NULL && craft_host_group_status(s->host, s->cfg.group_id, st) == 0 && st->failed) {
        fprintf(stderr, "craftkv[%" PRIu64 "] the raft group failed (see above): exiting\n",
                s->cfg.node_id);
        s->exit_status = 1;
        begin_stop(s);
    }
    free(st);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    begin_stop(sig->data);
}

static void close_listeners(struct kv_server *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->resp_listener))
        uv_close((uv_handle_t *)&s->resp_listener, NULL);
    if (s->has_http && !uv_is_closing((uv_handle_t *)&s->http_listener))
        uv_close((uv_handle_t *)&s->http_listener, NULL);
}

int kv_server_create(const struct kv_server_config *cfg, struct craft_host *host,
                     struct kv_store *store, struct kv_server **out, char *err, size_t err_cap)
{
    struct kv_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CRAFT_ENOMEM;
    s->cfg = *cfg;
    s->host = host;
    s->store = store;
    pthread_mutex_init(&s->done_lock, NULL);
    uv_loop_init(&s->loop);
    int rc = listen_on(s, &s->resp_listener, cfg->resp_address, err, err_cap);
    if (rc == 0 && cfg->http_address != NULL) {
        rc = listen_on(s, &s->http_listener, cfg->http_address, err, err_cap);
        s->has_http = rc == 0;
    }
    if (rc != 0) {
        uv_close((uv_handle_t *)&s->resp_listener, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        pthread_mutex_destroy(&s->done_lock);
        free(s);
        return rc;
    }
    uv_async_init(&s->loop, &s->done_async, on_done_async);
    s->done_async.data = s;
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_timer_init(&s->loop, &s->health_timer);
    s->health_timer.data = s;
    uv_timer_start(&s->health_timer, on_health_timer, 1000, 1000);
    s->started_ms = uv_now(&s->loop);
    *out = s;
    return 0;
}

/* Stop, step 2 (on the loop): once nothing is in flight, close it all. */
static void on_drain_timer(uv_timer_t *t)
{
    struct kv_server *s = t->data;
    if (s->ops_in_flight > 0)
        return;
    for (struct conn *c = s->conns; c != NULL;) {
        struct conn *next = c->next;
        conn_close(c);
        c = next;
    }
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    uv_close((uv_handle_t *)&s->done_async, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->health_timer, NULL);
}

static void begin_stop(struct kv_server *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    /* Stop accepting; requests in flight finish (each has a timeout). */
    close_listeners(s);
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return;
    uv_timer_init(&s->loop, t);
    t->data = s;
    uv_timer_start(t, on_drain_timer, 0, 20);
}

void kv_server_stop(struct kv_server *s)
{
    atomic_store(&s->stop_requested, true);
    uv_async_send(&s->done_async);
}

int kv_server_run(struct kv_server *s)
{
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return s->exit_status;
}

void kv_server_destroy(struct kv_server *s)
{
    if (s == NULL)
        return;
    uv_loop_close(&s->loop);
    pthread_mutex_destroy(&s->done_lock);
    free(s);
}
