/* craftkv: a replicated key-value server. One process per node; see
 * `craftkv --help` and docs/craftkv.md. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <craft/host.h>

#include "kv/server.h"
#include "kv/store.h"

#define MAX_PEERS 16

struct options {
    uint64_t id, cluster_id;
    char data[512];
    char resp[64], http[64], raft[64];
    char peers_text[2048];
    struct craft_member peers[MAX_PEERS];
    char peer_addr[MAX_PEERS][64];
    uint32_t n_peers;
    bool join, lease_reads, no_sync, quiet;
    uint64_t snapshot_entries, compaction_overhead;
    uint32_t max_clients, request_timeout_ms, tick_ms, election_ticks;
    uint64_t max_key_size, max_value_size, max_request, map_size_mb;
    char tls_cert[512], tls_key[512], tls_ca[512];
};

static const char *usage =
    "usage: craftkv [options]\n"
    "\n"
    "A replicated key-value server on the craft Raft library. Clients speak the\n"
    "Redis protocol (redis-cli, redis-benchmark) or HTTP (curl).\n"
    "With no options: node 1, a single-node cluster, data in ./craftkv-data,\n"
    "RESP on 127.0.0.1:7379, HTTP on 7380, raft on 7381. Node N's default ports\n"
    "are shifted by 10*(N-1) and its default data directory is ./craftkv-data-N.\n"
    "\n"
    "  --id N                  this node's id (default 1)\n"
    "  --data DIR              data directory (WAL, snapshots, LMDB store)\n"
    "  --resp IP:PORT          Redis-protocol listener\n"
    "  --http IP:PORT          HTTP listener ('off' to disable)\n"
    "  --raft IP:PORT          raft listener, for the other nodes\n"
    "  --peers ID=IP:PORT,...  initial members and their raft addresses (include\n"
    "                          this node); every initial member gets the same list.\n"
    "                          Default: this node alone\n"
    "  --join                  start empty and wait to be added (POST /members/ID on\n"
    "                          the leader, or craftctl members add); --peers then\n"
    "                          only tells where the others are\n"
    "  --cluster-id N          refuse nodes of other clusters (default 1)\n"
    "  --snapshot-entries N    snapshot every N applied entries (default 10000)\n"
    "  --compaction-overhead N entries kept in the log behind a snapshot (default 5000)\n"
    "  --lease-reads           serve linearizable reads from the leader's lease\n"
    "                          (needs bounded clock drift; default: ReadIndex)\n"
    "  --max-clients N         client connections (default 10000)\n"
    "  --max-key-size N        bytes (default and maximum 500)\n"
    "  --max-value-size N      bytes (default 1048576)\n"
    "  --max-request N         bytes of one request (default 16777216)\n"
    "  --request-timeout-ms N  how long a request may wait, e.g. for a leader (5000)\n"
    "  --tick-ms N             raft tick (default 100); election after 10 ticks\n"
    "  --election-ticks N      election timeout in ticks (default 10)\n"
    "  --map-size-mb N         LMDB map size (default 4096)\n"
    "  --tls-cert F --tls-key F --tls-ca F   mutual TLS between nodes\n"
    "  --no-sync               never fdatasync: benchmarks only, NOT durable\n"
    "  --quiet                 log warnings and errors only\n"
    "  --config FILE           read options from FILE: one 'name value' per line\n"
    "                          (names as above without --; '#' starts a comment)\n"
    "  --help                  this text\n"
    "\n"
    "Stops cleanly on SIGINT or SIGTERM.\n";

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_peers(struct options *o, const char *text)
{
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s", text);
    o->n_peers = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        uint64_t id;
        if (eq == NULL || o->n_peers == MAX_PEERS)
            return -1;
        *eq = '\0';
        if (parse_u64(tok, &id) != 0 || id == 0 || strlen(eq + 1) >= 64)
            return -1;
        snprintf(o->peer_addr[o->n_peers], 64, "%s", eq + 1);
        o->peers[o->n_peers].id = id;
        o->peers[o->n_peers].address = o->peer_addr[o->n_peers];
        o->peers[o->n_peers].role = CRAFT_ROLE_FOLLOWER;
        o->n_peers++;
    }
    return o->n_peers > 0 ? 0 : -1;
}

static int set_option(struct options *o, const char *name, const char *value)
{
    uint64_t v = 0;
#define NUM(flag, field)                                                                           \
    if (strcmp(name, (flag)) == 0) {                                                               \
        if (value == NULL || parse_u64(value, &v) != 0)                                            \
            return -1;                                                                             \
        o->field = v;                                                                              \
        return 0;                                                                                  \
    }
#define STR(flag, field)                                                                           \
    if (strcmp(name, (flag)) == 0) {                                                               \
        if (value == NULL || strlen(value) >= sizeof(o->field))                                    \
            return -1;                                                                             \
        snprintf(o->field, sizeof(o->field), "%s", value);                                         \
        return 0;                                                                                  \
    }
    NUM("id", id)
    NUM("cluster-id", cluster_id)
    NUM("snapshot-entries", snapshot_entries)
    NUM("compaction-overhead", compaction_overhead)
    NUM("max-clients", max_clients)
    NUM("max-key-size", max_key_size)
    NUM("max-value-size", max_value_size)
    NUM("max-request", max_request)
    NUM("request-timeout-ms", request_timeout_ms)
    NUM("tick-ms", tick_ms)
    NUM("election-ticks", election_ticks)
    NUM("map-size-mb", map_size_mb)
    STR("data", data)
    STR("resp", resp)
    STR("http", http)
    STR("raft", raft)
    STR("peers", peers_text)
    STR("tls-cert", tls_cert)
    STR("tls-key", tls_key)
    STR("tls-ca", tls_ca)
#undef NUM
#undef STR
    return -2; /* not a valued option */
}

static int set_flag(struct options *o, const char *name)
{
    if (strcmp(name, "join") == 0)
        o->join = true;
    else if (strcmp(name, "lease-reads") == 0)
        o->lease_reads = true;
    else if (strcmp(name, "no-sync") == 0)
        o->no_sync = true;
    else if (strcmp(name, "quiet") == 0)
        o->quiet = true;
    else
        return -1;
    return 0;
}

static int read_config(struct options *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "craftkv: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL)
            *hash = '\0';
        char *name = strtok(line, " \t\r\n");
        if (name == NULL)
            continue;
        char *value = strtok(NULL, " \t\r\n");
        int r = set_option(o, name, value);
        if (r == -2)
            r = value == NULL ? set_flag(o, name) : -1;
        if (r != 0) {
            fprintf(stderr, "craftkv: %s:%d: bad option '%s'\n", path, lineno, name);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

static int parse_args(struct options *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "craftkv: unexpected argument '%s' (see --help)\n", a);
            return -1;
        }
        const char *name = a + 2;
        if (strcmp(name, "config") == 0) {
            if (i + 1 >= argc || read_config(o, argv[++i]) != 0)
                return -1;
            continue;
        }
        if (set_flag(o, name) == 0)
            continue;
        int r = set_option(o, name, i + 1 < argc ? argv[i + 1] : NULL);
        if (r == -2) {
            fprintf(stderr, "craftkv: unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (r != 0) {
            fprintf(stderr, "craftkv: option '%s' needs a valid value (see --help)\n", a);
            return -1;
        }
        i++;
    }
    return 0;
}

static int fill_defaults(struct options *o)
{
    if (o->id == 0)
        o->id = 1;
    int base = 7379 + 10 * (int)((o->id - 1) % 5000);
    if (o->data[0] == '\0') {
        if (o->id == 1)
            snprintf(o->data, sizeof(o->data), "./craftkv-data");
        else
            snprintf(o->data, sizeof(o->data), "./craftkv-data-%" PRIu64, o->id);
    }
    if (o->resp[0] == '\0')
        snprintf(o->resp, sizeof(o->resp), "127.0.0.1:%d", base);
    if (o->http[0] == '\0')
        snprintf(o->http, sizeof(o->http), "127.0.0.1:%d", base + 1);
    if (o->raft[0] == '\0')
        snprintf(o->raft, sizeof(o->raft), "127.0.0.1:%d", base + 2);
    if (o->cluster_id == 0)
        o->cluster_id = 1;
    if (o->map_size_mb == 0)
        o->map_size_mb = 4096;
    if (o->peers_text[0] != '\0') {
        if (parse_peers(o, o->peers_text) != 0) {
            fprintf(stderr, "craftkv: --peers wants ID=IP:PORT[,ID=IP:PORT...]\n");
            return -1;
        }
    } else {
        snprintf(o->peers_text, sizeof(o->peers_text), "%" PRIu64 "=%s", o->id, o->raft);
        parse_peers(o, o->peers_text);
    }
    bool self = false;
    for (uint32_t i = 0; i < o->n_peers; i++)
        self = self || o->peers[i].id == o->id;
    if (!self && !o->join) {
        fprintf(stderr, "craftkv: --peers must include this node (%" PRIu64 ") unless --join\n",
                o->id);
        return -1;
    }
    if ((o->tls_cert[0] != 0) != (o->tls_key[0] != 0) ||
        (o->tls_cert[0] != 0) != (o->tls_ca[0] != 0)) {
        fprintf(stderr, "craftkv: TLS needs --tls-cert, --tls-key and --tls-ca together\n");
        return -1;
    }
    if (o->max_key_size > 500) {
        fprintf(stderr, "craftkv: --max-key-size is at most 500\n");
        return -1;
    }
    return 0;
}

static int log_level_min = CRAFT_HOST_LOG_INFO;

static void host_log(void *arg, int level, const char *message)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    uint64_t id = *(const uint64_t *)arg;
    if (level >= log_level_min)
        fprintf(stderr, "craftkv[%" PRIu64 "] %s: %s\n", id, names[level & 3], message);
}

static struct kv_store *the_store;

static int fsm_factory(void *arg, uint64_t group_id, struct craft_fsm *out)
{
    (void)arg;
    (void)group_id;
    kv_store_fsm(the_store, out);
    return 0;
}

int main(int argc, char **argv)
{
    static struct options o;
    if (parse_args(&o, argc, argv) != 0 || fill_defaults(&o) != 0)
        return 2;
    if (o.quiet)
        log_level_min = CRAFT_HOST_LOG_WARN;
    char err[512];
    if (mkdir(o.data, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "craftkv: mkdir %s: %s\n", o.data, strerror(errno));
        return 1;
    }
    char kv_dir[600];
    snprintf(kv_dir, sizeof(kv_dir), "%s/kv", o.data);
    if (mkdir(kv_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "craftkv: mkdir %s: %s\n", kv_dir, strerror(errno));
        return 1;
    }
    int rc = kv_store_open(kv_dir, (size_t)o.map_size_mb << 20, o.no_sync ? KV_STORE_NO_SYNC : 0,
                           &the_store, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craftkv: store: %s\n", err);
        return 1;
    }

    struct craft_host_config hc;
    craft_host_config_init(&hc);
    hc.node_id = o.id;
    hc.cluster_id = o.cluster_id;
    hc.data_dir = o.data;
    hc.listen_address = o.raft;
    hc.no_sync = o.no_sync;
    if (o.tick_ms)
        hc.tick_ms = o.tick_ms;
    if (o.tls_cert[0]) {
        hc.tls_cert_file = o.tls_cert;
        hc.tls_key_file = o.tls_key;
        hc.tls_ca_file = o.tls_ca;
    }
    hc.log = host_log;
    hc.log_arg = &o.id;
    struct craft_host *host = NULL;
    rc = craft_host_start(&hc, &host, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craftkv: %s\n", err);
        kv_store_close(the_store);
        return 1;
    }
    for (uint32_t i = 0; i < o.n_peers; i++)
        craft_host_set_address(host, o.peers[i].id, o.peers[i].address);

    struct craft_group_config gc;
    craft_group_config_init(&gc);
    gc.group_id = 1;
    gc.fsm_factory = fsm_factory;
    gc.snapshot_entries = o.snapshot_entries;
    gc.compaction_overhead = o.compaction_overhead;
    gc.lease_reads = o.lease_reads;
    gc.election_ticks = o.election_ticks;
    gc.start = CRAFT_GROUP_RESTART;
    rc = craft_host_start_group(host, &gc, err, sizeof(err));
    const char *how = "restarted from disk";
    if (rc == CRAFT_ENOGROUP) {
        gc.start = o.join ? CRAFT_GROUP_JOIN : CRAFT_GROUP_BOOTSTRAP;
        gc.members = o.peers;
        gc.n_members = o.n_peers;
        how = o.join ? "joining: waiting to be added by the leader" : "bootstrapped";
        rc = craft_host_start_group(host, &gc, err, sizeof(err));
    }
    if (rc != 0) {
        fprintf(stderr, "craftkv: %s\n", err);
        craft_host_stop(host);
        kv_store_close(the_store);
        return 1;
    }

    struct kv_server_config sc;
    kv_server_config_init(&sc);
    sc.resp_address = o.resp;
    sc.http_address = strcmp(o.http, "off") == 0 ? NULL : o.http;
    sc.group_id = 1;
    sc.node_id = o.id;
    sc.lease_reads = o.lease_reads;
    if (o.max_clients)
        sc.max_clients = o.max_clients;
    if (o.max_key_size)
        sc.max_key_size = o.max_key_size;
    if (o.max_value_size)
        sc.max_value_size = o.max_value_size;
    if (o.max_request)
        sc.max_request = o.max_request;
    if (o.request_timeout_ms)
        sc.request_timeout_ms = o.request_timeout_ms;
    struct kv_server *server = NULL;
    rc = kv_server_create(&sc, host, the_store, &server, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craftkv: %s\n", err);
        craft_host_stop(host);
        kv_store_close(the_store);
        return 1;
    }
    fprintf(stderr, "craftkv[%" PRIu64 "] %s; data %s; redis %s; http %s; raft %s; members %s\n",
            o.id, how, o.data, o.resp, sc.http_address ? sc.http_address : "off", o.raft,
            o.peers_text);
    int status = kv_server_run(server);
    fprintf(stderr, "craftkv[%" PRIu64 "] stopping\n", o.id);
    kv_server_destroy(server);
    craft_host_stop(host);
    kv_store_close(the_store);
    fprintf(stderr, "craftkv[%" PRIu64 "] stopped\n", o.id);
    return status;
}
