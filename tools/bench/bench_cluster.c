/* craft-bench cluster: what a three-host cluster commits, end to end.
 *
 *   craft-bench cluster [--json] [--groups LIST] [--inflight LIST] [--size LIST]
 *                       [--seconds S] [--warmup S] [--max-proposals N] [--no-sync]
 *                       [--quick] [--dir DIR]
 *
 * Three craft hosts (include/craft/host.h) run in this process on loopback,
 * each with its own data directory (a mkdtemp under DIR, default $TMPDIR or
 * /tmp) and the real fdatasync path unless --no-sync. Every host bootstraps
 * the same groups with the same three members; the state machine only counts
 * what it applies (the result's value is the count).
 *
 * A case is a closed loop of N proposals in flight (--inflight): N
 * asynchronous craft_host_propose() calls are outstanding, and each
 * completion callback issues the next one. Proposal i of the loop goes to
 * group (i mod G) + 1 (--groups), always on the host leading that group (found
 * with craft_host_group_status, and followed when a proposal fails with
 * CRAFT_ENOTLEADER). After a warm-up the case runs for --seconds and counts the
 * proposals that succeed in that window, recording the latency of each (from
 * the propose call to its callback).
 *
 * Figures per case: committed proposals per second; latency p50/p99/p99.9;
 * CPU of the whole process (all three hosts: getrusage user + sys) per 1,000
 * proposals; and from craft_host_get_metrics, WAL fdatasyncs per second and
 * proposals per fdatasync on the busiest leader's host (the host leading the
 * most groups), the median of that host's fdatasync latency histogram (the
 * upper bound of the bucket holding it), messages sent by the whole cluster
 * per proposal and snapshots taken by the whole cluster per second (a group
 * snapshots every 10,000 applied entries by default).
 *
 * The default runs the whole matrix (groups 1 and 64, 1/16/256 in flight,
 * 16-byte and 1 KiB payloads); --quick runs a short one for a smoke test.
 */
#define _GNU_SOURCE /* mkdtemp, nftw */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <craft/host.h>

#include "bench.h"

#define MODE "cluster"
#define N_HOSTS 3
#define MAX_GROUPS 1024
#define MAX_INFLIGHT 65536
#define MAX_LIST 8
#define MAX_SIZE (1u << 20)
#define PROPOSE_TIMEOUT_MS 10000
/* Latencies kept per case; beyond this the rest are counted, not kept. */
#define MAX_SAMPLES (16u << 20)

struct list {
    uint64_t v[MAX_LIST];
    size_t n;
};

struct options {
    struct list groups, inflight, size;
    double seconds, warmup;
    uint64_t max_proposals;
    bool no_sync;
    const char *dir;
};

/* ---- the state machine: a counter per group ---- */

struct counter {
    uint64_t count;
};

static int counter_apply(void *data, struct craft_fsm_entry *es, size_t n, uint64_t applied)
{
    struct counter *c = data;
    (void)applied;
    for (size_t i = 0; i < n; i++)
        es[i].result.value = ++c->count;
    return 0;
}

static int counter_save(void *data, struct craft_writer *w)
{
    struct counter *c = data;
    return w->write(w->data, &c->count, sizeof(c->count));
}

static int counter_restore(void *data, struct craft_reader *r, uint64_t applied)
{
    struct counter *c = data;
    uint64_t v = 0;
    size_t got = 0;
    (void)applied;
    while (got < sizeof(v)) {
        size_t n;
        int rc = r->read(r->data, (uint8_t *)&v + got, sizeof(v) - got, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            return CRAFT_ECORRUPT;
        got += n;
    }
    c->count = v;
    return 0;
}

static void counter_close(void *data)
{
    free(data);
}

static int counter_factory(void *arg, uint64_t group_id, struct craft_fsm *out)
{
    struct counter *c = calloc(1, sizeof(*c));
    (void)arg;
    (void)group_id;
    if (c == NULL)
        return CRAFT_ENOMEM;
    *out = (struct craft_fsm){.data = c,
                              .apply = counter_apply,
                              .save = counter_save,
                              .restore = counter_restore,
                              .close = counter_close};
    return 0;
}

/* ---- the cluster ---- */

struct cluster {
    struct craft_host *hosts[N_HOSTS];
    char *dirs[N_HOSTS];
    char addresses[N_HOSTS][64];
    uint64_t n_groups;
    /* Index in hosts[] of each group's leader as last seen (group g at g - 1). */
    _Atomic int leader[MAX_GROUPS];
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void quiet_log(void *arg, int level, const char *message)
{
    (void)arg;
    if (level >= CRAFT_HOST_LOG_WARN)
        fprintf(stderr, "bench cluster: host log: %s\n", message);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static void cluster_free(struct cluster *c)
{
    for (int i = 0; i < N_HOSTS; i++) {
        if (c->hosts[i] != NULL)
            craft_host_stop(c->hosts[i]);
        if (c->dirs[i] != NULL) {
            nftw(c->dirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
            free(c->dirs[i]);
        }
    }
    free(c);
}

static int host_index(uint64_t node_id)
{
    return node_id >= 1 && node_id <= N_HOSTS ? (int)node_id - 1 : -1;
}

/* Polls every host until each group has a leader; 0 or -1 after 30 s. */
static int find_leaders(struct cluster *c)
{
    struct craft_group_status *st = malloc(sizeof(*st));
    int rc = -1;
    if (st == NULL)
        return -1;
    for (int attempt = 0; attempt < 3000 && rc != 0; attempt++) {
        uint64_t found = 0;
        for (uint64_t g = 1; g <= c->n_groups; g++) {
            int leader = -1;
            for (int i = 0; i < N_HOSTS && leader < 0; i++)
                if (craft_host_group_status(c->hosts[i], g, st) == 0 &&
                    st->raft.role == CRAFT_ROLE_LEADER)
                    leader = i;
            if (leader >= 0) {
                atomic_store(&c->leader[g - 1], leader);
                found++;
            }
        }
        if (found == c->n_groups)
            rc = 0;
        else
            sleep_s(0.01);
    }
    free(st);
    return rc;
}

static struct cluster *cluster_start(const struct options *o, uint64_t n_groups)
{
    struct cluster *c = calloc(1, sizeof(*c));
    struct craft_member members[N_HOSTS];
    char err[256];
    if (c == NULL)
        return NULL;
    c->n_groups = n_groups;
    for (int i = 0; i < N_HOSTS; i++) {
        struct craft_host_config cfg;
        c->dirs[i] = malloc(4096);
        if (c->dirs[i] == NULL)
            goto err_free_cluster;
        snprintf(c->dirs[i], 4096, "%s/craft-bench-cluster-XXXXXX", o->dir);
        if (mkdtemp(c->dirs[i]) == NULL) {
            fprintf(stderr, "bench cluster: mkdtemp %s: %s\n", c->dirs[i], strerror(errno));
            free(c->dirs[i]);
            c->dirs[i] = NULL;
            goto err_free_cluster;
        }
        craft_host_config_init(&cfg);
        cfg.node_id = (uint64_t)i + 1;
        cfg.cluster_id = 7;
        cfg.data_dir = c->dirs[i];
        cfg.listen_address = "127.0.0.1:0";
        cfg.tick_ms = 50;
        cfg.no_sync = o->no_sync;
        cfg.log = quiet_log;
        if (craft_host_start(&cfg, &c->hosts[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "bench cluster: host %d: %s\n", i + 1, err);
            goto err_free_cluster;
        }
        snprintf(c->addresses[i], sizeof(c->addresses[i]), "127.0.0.1:%d",
                 craft_host_port(c->hosts[i]));
    }
    for (int i = 0; i < N_HOSTS; i++) {
        members[i].id = (uint64_t)i + 1;
        members[i].address = c->addresses[i];
        members[i].role = CRAFT_ROLE_FOLLOWER;
        for (int j = 0; j < N_HOSTS; j++)
            craft_host_set_address(c->hosts[i], (uint64_t)j + 1, c->addresses[j]);
    }
    for (uint64_t g = 1; g <= n_groups; g++) {
        for (int i = 0; i < N_HOSTS; i++) {
            struct craft_group_config gc;
            craft_group_config_init(&gc);
            gc.group_id = g;
            gc.start = CRAFT_GROUP_BOOTSTRAP;
            gc.members = members;
            gc.n_members = N_HOSTS;
            gc.fsm_factory = counter_factory;
            if (craft_host_start_group(c->hosts[i], &gc, err, sizeof(err)) != 0) {
                fprintf(stderr, "bench cluster: group %llu on host %d: %s\n", (unsigned long long)g,
                        i + 1, err);
                goto err_free_cluster;
            }
        }
    }
    if (find_leaders(c) != 0) {
        fprintf(stderr, "bench cluster: not every group elected a leader in 30 s\n");
        goto err_free_cluster;
    }
    return c;

err_free_cluster:
    cluster_free(c);
    return NULL;
}

/* ---- the closed loop ---- */

enum phase { WARMUP = 0, MEASURE = 1, STOP = 2 };

struct loop;

struct slot {
    struct loop *loop;
    uint64_t group;
    uint64_t started_ns;
    struct slot *next_retry;
};

struct loop {
    struct cluster *c;
    const uint8_t *payload;
    uint32_t size;
    _Atomic int phase;
    _Atomic uint64_t outstanding; /* slots with a proposal queued or waiting to retry */
    _Atomic uint64_t committed;   /* successes completed while measuring */
    _Atomic uint64_t failed;      /* failures (any phase; each one is retried) */
    _Atomic uint64_t n_samples;
    uint32_t *samples; /* latency in ns, MAX_SAMPLES of them */
    /* Slots whose craft_host_propose() was refused at once (CRAFT_EBUSY):
     * the main thread reissues them, since a callback must not block. */
    pthread_mutex_t retry_lock;
    struct slot *retry;
};

static void on_done(void *arg, struct craft_done *done);

static void retire(struct slot *s)
{
    atomic_fetch_sub(&s->loop->outstanding, 1);
}

/* Issues the slot's next proposal to its group's leader, or queues it for a
 * retry by the main thread. */
static void issue(struct slot *s)
{
    struct loop *l = s->loop;
    int leader = atomic_load(&l->c->leader[s->group - 1]);
    int rc;
    if (atomic_load(&l->phase) == STOP) {
        retire(s);
        return;
    }
    s->started_ns = bench_now_ns();
    rc = craft_host_propose(l->c->hosts[leader], s->group, NULL, l->payload, l->size,
                            PROPOSE_TIMEOUT_MS, on_done, s);
    if (rc != 0) {
        atomic_fetch_add(&l->failed, 1);
        pthread_mutex_lock(&l->retry_lock);
        s->next_retry = l->retry;
        l->retry = s;
        pthread_mutex_unlock(&l->retry_lock);
    }
}

static void on_done(void *arg, struct craft_done *done)
{
    struct slot *s = arg;
    struct loop *l = s->loop;
    if (done->status == 0) {
        if (atomic_load(&l->phase) == MEASURE) {
            uint64_t ns = bench_now_ns() - s->started_ns;
            uint64_t k = atomic_fetch_add(&l->n_samples, 1);
            if (k < MAX_SAMPLES)
                l->samples[k] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
            atomic_fetch_add(&l->committed, 1);
        }
    } else {
        int leader = host_index(done->leader);
        atomic_fetch_add(&l->failed, 1);
        if (done->status == CRAFT_ENOTLEADER && leader >= 0)
            atomic_store(&l->c->leader[s->group - 1], leader);
    }
    issue(s);
}

static void reissue_refused(struct loop *l)
{
    struct slot *s;
    pthread_mutex_lock(&l->retry_lock);
    s = l->retry;
    l->retry = NULL;
    pthread_mutex_unlock(&l->retry_lock);
    while (s != NULL) {
        struct slot *next = s->next_retry;
        issue(s);
        s = next;
    }
}

/* Runs the loop until deadline (or, measuring, until max proposals). */
static void run_until(struct loop *l, double deadline, uint64_t max)
{
    while (bench_now() < deadline && (max == 0 || atomic_load(&l->committed) < max)) {
        sleep_s(0.001);
        reissue_refused(l);
    }
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest rank of sorted v[0..n), in microseconds. */
static double percentile_us(const uint32_t *v, size_t n, double p)
{
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (n == 0)
        return 0;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1000.0;
}

/* Upper bound (us) of the fdatasync histogram bucket holding the median of
 * the delta b - a; 0 when there was no fdatasync. */
static double fsync_median_us(const struct craft_host_metrics *a,
                              const struct craft_host_metrics *b)
{
    uint64_t total = b->wal_fsyncs - a->wal_fsyncs, seen = 0;
    if (total == 0)
        return 0;
    for (int i = 0; i < 16; i++) {
        seen += b->wal_fsync_hist[i] - a->wal_fsync_hist[i];
        if (seen * 2 >= total)
            return (double)(64ull << i);
    }
    return (double)(64ull << 15);
}

/* The host leading the most groups. */
static int busiest_leader(struct cluster *c)
{
    int count[N_HOSTS] = {0}, best = 0;
    for (uint64_t g = 0; g < c->n_groups; g++)
        count[atomic_load(&c->leader[g])]++;
    for (int i = 1; i < N_HOSTS; i++)
        if (count[i] > count[best])
            best = i;
    return best;
}

static int run_case(const struct options *o, struct cluster *c, uint32_t *samples,
                    uint64_t inflight, uint32_t size)
{
    static uint8_t payload[MAX_SIZE];
    struct loop *l = calloc(1, sizeof(*l));
    struct slot *slots = calloc(inflight, sizeof(*slots));
    struct craft_host_metrics m0[N_HOSTS], m1[N_HOSTS];
    double t0, t1, cpu0, cpu1;
    uint64_t committed, n, msgs = 0, snaps = 0;
    int rc = 0, busiest;
    char name[96];

    if (l == NULL || slots == NULL) {
        free(l);
        free(slots);
        return 1;
    }
    memset(payload, 0x5a, size);
    l->c = c;
    l->payload = payload;
    l->size = size;
    l->samples = samples;
    pthread_mutex_init(&l->retry_lock, NULL);
    atomic_store(&l->outstanding, inflight);
    for (uint64_t i = 0; i < inflight; i++) {
        slots[i].loop = l;
        slots[i].group = i % c->n_groups + 1;
        issue(&slots[i]);
    }
    run_until(l, bench_now() + o->warmup, 0);

    for (int i = 0; i < N_HOSTS; i++)
        craft_host_get_metrics(c->hosts[i], &m0[i]);
    cpu0 = cpu_seconds();
    t0 = bench_now();
    atomic_store(&l->phase, MEASURE);
    run_until(l, t0 + o->seconds, o->max_proposals);
    atomic_store(&l->phase, STOP);
    t1 = bench_now();
    cpu1 = cpu_seconds();
    committed = atomic_load(&l->committed);
    for (int i = 0; i < N_HOSTS; i++)
        craft_host_get_metrics(c->hosts[i], &m1[i]);

    /* Drain: every slot retires at its next completion. */
    for (int k = 0; k < 30000 && atomic_load(&l->outstanding) > 0; k++) {
        reissue_refused(l);
        sleep_s(0.001);
    }
    if (atomic_load(&l->outstanding) > 0) {
        fprintf(stderr, "bench cluster: %llu proposals still outstanding after 30 s\n",
                (unsigned long long)atomic_load(&l->outstanding));
        rc = 1;
        /* The callbacks still point at slots and l: leave them allocated. */
        return rc;
    }

    n = atomic_load(&l->n_samples);
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    qsort(samples, n, sizeof(*samples), compare_u32);
    busiest = busiest_leader(c);
    for (int i = 0; i < N_HOSTS; i++) {
        msgs += m1[i].messages_sent - m0[i].messages_sent;
        snaps += m1[i].snapshots_taken - m0[i].snapshots_taken;
    }
    {
        uint64_t fsyncs = m1[busiest].wal_fsyncs - m0[busiest].wal_fsyncs;
        double secs = t1 - t0;
        snprintf(name, sizeof(name), "groups=%llu inflight=%llu size=%u",
                 (unsigned long long)c->n_groups, (unsigned long long)inflight, size);
        bench_report_case(MODE, name, "proposals_per_sec", (double)committed / secs, "proposals/s");
        bench_report_case(MODE, name, "p50_us", percentile_us(samples, n, 50), "us");
        bench_report_case(MODE, name, "p99_us", percentile_us(samples, n, 99), "us");
        bench_report_case(MODE, name, "p999_us", percentile_us(samples, n, 99.9), "us");
        bench_report_case(MODE, name, "cpu_ms_per_1k",
                          committed ? (cpu1 - cpu0) * 1e3 / ((double)committed / 1000.0) : 0, "ms");
        bench_report_case(MODE, name, "cpu_util", (cpu1 - cpu0) / secs, "cores");
        bench_report_case(MODE, name, "fsyncs_per_sec", (double)fsyncs / secs, "fsyncs/s");
        bench_report_case(MODE, name, "proposals_per_fsync",
                          fsyncs ? (double)committed / (double)fsyncs : 0, "proposals");
        bench_report_case(MODE, name, "fsync_p50_us", fsync_median_us(&m0[busiest], &m1[busiest]),
                          "us (<=)");
        bench_report_case(MODE, name, "msgs_per_proposal",
                          committed ? (double)msgs / (double)committed : 0, "messages");
        bench_report_case(MODE, name, "snapshots_per_sec", (double)snaps / secs, "snapshots/s");
        bench_report_case(MODE, name, "failed", (double)atomic_load(&l->failed), "count");
    }
    pthread_mutex_destroy(&l->retry_lock);
    free(slots);
    free(l);
    return rc;
}

/* ---- command line ---- */

static bool parse_list(const char *s, uint64_t min, uint64_t max, struct list *out)
{
    char buf[256];
    char *save = NULL, *tok;
    snprintf(buf, sizeof(buf), "%s", s);
    out->n = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (out->n == MAX_LIST || !bench_parse_u64(tok, &v) || v < min || v > max)
            return false;
        out->v[out->n++] = v;
    }
    return out->n > 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: craft-bench cluster [--json] [--groups LIST] [--inflight LIST] [--size LIST]\n"
            "                           [--seconds S] [--warmup S] [--max-proposals N]\n"
            "                           [--no-sync] [--quick] [--dir DIR]\n\n"
            "Three hosts in this process on loopback, each with its own data directory;\n"
            "a closed loop of N proposals in flight to each group's leader.\n"
            "  --groups LIST     groups, comma-separated (default 1,64; at most %d)\n"
            "  --inflight LIST   proposals in flight (default 1,16,256)\n"
            "  --size LIST       payload bytes (default 16,1024)\n"
            "  --seconds S       measured time per case (default 3)\n"
            "  --warmup S        warm-up per case (default 1)\n"
            "  --max-proposals N also stop a case after N proposals\n"
            "  --no-sync         never fdatasync (the CPU path only; not durable)\n"
            "  --quick           a short matrix for a smoke run (1 group, 1 and 16 in\n"
            "                    flight, 16 B, 0.3 s per case)\n"
            "  --dir DIR         where the data directories go (default $TMPDIR or /tmp)\n",
            MAX_GROUPS);
}

static int parse_options(int argc, char **argv, struct options *o)
{
    const char *tmp = getenv("TMPDIR");
    bool quick = false, seconds_set = false, warmup_set = false;
    bool groups_set = false, inflight_set = false, size_set = false;
    *o = (struct options){.seconds = 3, .warmup = 1};
    o->dir = tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(a, "--no-sync") == 0) {
            o->no_sync = true;
            continue;
        } else if (strcmp(a, "--quick") == 0) {
            quick = true;
            continue;
        } else if (v == NULL) {
            ok = false;
        } else if (strcmp(a, "--groups") == 0) {
            ok = parse_list(v, 1, MAX_GROUPS, &o->groups);
            groups_set = true;
        } else if (strcmp(a, "--inflight") == 0) {
            ok = parse_list(v, 1, MAX_INFLIGHT, &o->inflight);
            inflight_set = true;
        } else if (strcmp(a, "--size") == 0) {
            ok = parse_list(v, 1, MAX_SIZE, &o->size);
            size_set = true;
        } else if (strcmp(a, "--seconds") == 0) {
            ok = bench_parse_double(v, 0.01, &o->seconds);
            seconds_set = true;
        } else if (strcmp(a, "--warmup") == 0) {
            ok = bench_parse_double(v, 0, &o->warmup);
            warmup_set = true;
        } else if (strcmp(a, "--max-proposals") == 0) {
            ok = bench_parse_u64(v, &o->max_proposals);
        } else if (strcmp(a, "--dir") == 0) {
            o->dir = v;
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "bench cluster: bad option %s%s%s\n\n", a, v ? " " : "", v ? v : "");
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!groups_set)
        parse_list(quick ? "1" : "1,64", 1, MAX_GROUPS, &o->groups);
    if (!inflight_set)
        parse_list(quick ? "1,16" : "1,16,256", 1, MAX_INFLIGHT, &o->inflight);
    if (!size_set)
        parse_list(quick ? "16" : "16,1024", 1, MAX_SIZE, &o->size);
    if (quick && !seconds_set)
        o->seconds = 0.3;
    if (quick && !warmup_set)
        o->warmup = 0.2;
    return 0;
}

int bench_cluster_main(int argc, char **argv)
{
    struct options o;
    uint32_t *samples;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    samples = malloc(MAX_SAMPLES * sizeof(*samples));
    if (samples == NULL) {
        fprintf(stderr, "bench cluster: out of memory\n");
        return 1;
    }
    for (size_t gi = 0; gi < o.groups.n && rc == 0; gi++) {
        struct cluster *c;
        fprintf(stderr, "bench cluster: starting 3 hosts, %llu group(s)%s\n",
                (unsigned long long)o.groups.v[gi], o.no_sync ? ", no fdatasync" : "");
        c = cluster_start(&o, o.groups.v[gi]);
        if (c == NULL) {
            rc = 1;
            break;
        }
        for (size_t ii = 0; ii < o.inflight.n && rc == 0; ii++) {
            for (size_t si = 0; si < o.size.n && rc == 0; si++) {
                fprintf(stderr, "bench cluster: groups=%llu inflight=%llu size=%llu\n",
                        (unsigned long long)o.groups.v[gi], (unsigned long long)o.inflight.v[ii],
                        (unsigned long long)o.size.v[si]);
                rc = run_case(&o, c, samples, o.inflight.v[ii], (uint32_t)o.size.v[si]);
            }
        }
        /* After a failed case, callbacks may still run: leave the hosts,
         * the samples and the loop to the process's exit. */
        if (rc == 0)
            cluster_free(c);
    }
    if (rc == 0)
        free(samples);
    return rc;
}
