/* craft-host-node: one craft_host per process, driven line by line on stdin,
 * so that a driver (tests/e2e/test_host_processes.py) can run hosts as
 * separate processes, crash them with SIGKILL and restart them from disk.
 *
 * Every group runs the state machine of tests/unit/test_host.c: a counter
 * and a running hash of the bytes it applied, so replicas can be compared.
 *
 * Usage:
 *   craft-host-node --id N --listen IP:PORT --data DIR
 *                   --peers 1=IP:PORT,2=IP:PORT,... [--groups N]
 *                   [--bootstrap | --join] [--tick-ms MS]
 *                   [--snapshot-entries N] [--compaction-overhead N]
 * Without --bootstrap or --join every group restarts from DIR. Once every
 * group runs it prints "ready PORT". Then one answer line per command:
 *   propose G TEXT    ok VALUE
 *   read G            ok COUNT HASH            (linearizable, read_sync)
 *   stale G           ok COUNT HASH INDEX      (read_stale)
 *   status G          ok role=R term=T leader=L commit=C applied=A
 *                        fsm_applied=F first=I last=J snapshot=S members=1,2,3
 *   add G ID ADDR     ok
 *   remove G ID       ok
 *   transfer G ID     ok
 *   snapshot G        ok INDEX
 *   metrics           ok name=value ... (craft_host_get_metrics)
 *   quit              ok, then a clean stop (as SIGTERM or end of input)
 * A failure answers "err CODE MESSAGE... leader=ID" (the message from
 * craft_host_strerror; leader 0 if unknown or not applicable). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <craft/host.h>

#define MAX_PEERS 16
#define LINE_CAP 4096
#define REQUEST_TIMEOUT_MS 5000

#include "../common/counter_fsm.h"

static void counter_get(struct counter *c, uint64_t *count, uint64_t *hash)
{
    pthread_mutex_lock(&c->lock);
    *count = c->count;
    *hash = c->hash;
    pthread_mutex_unlock(&c->lock);
}

/* ---- the node ---- */

struct peer {
    uint64_t id;
    char address[64];
};

struct node {
    uint64_t id;
    const char *listen;
    const char *data_dir;
    struct peer peers[MAX_PEERS];
    int n_peers;
    uint64_t groups;
    uint32_t start;
    uint32_t tick_ms;
    uint64_t snapshot_entries, compaction_overhead;
    struct craft_host *host;
    struct counter *fsm; /* fsm[g] for group g in 1..groups */
};

static int factory(void *arg, uint64_t group_id, struct craft_fsm *out)
{
    struct node *n = arg;
    if (group_id == 0 || group_id > n->groups)
        return CRAFT_EINVAL;
    struct counter *c = &n->fsm[group_id];
    pthread_mutex_lock(&c->lock);
    c->count = c->hash = c->applied = 0;
    pthread_mutex_unlock(&c->lock);
    *out = (struct craft_fsm){
        .data = c, .apply = counter_apply, .save = counter_save, .restore = counter_restore};
    return 0;
}

static void log_line(void *arg, int level, const char *message)
{
    struct node *n = arg;
    static const char *names[] = {"debug", "info", "warn", "error"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "%lld.%03ld node %" PRIu64 " %s: %s\n", (long long)ts.tv_sec,
            ts.tv_nsec / 1000000L, n->id, names[level >= 0 && level <= 3 ? level : 3], message);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s == '\0')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* "1=127.0.0.1:7001,2=127.0.0.1:7002" */
static bool parse_peers(struct node *n, const char *arg)
{
    char *copy = strdup(arg);
    bool ok = copy != NULL;
    char *save = NULL;
    for (char *tok = ok ? strtok_r(copy, ",", &save) : NULL; ok && tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || n->n_peers == MAX_PEERS) {
            ok = false;
            break;
        }
        *eq = '\0';
        struct peer *p = &n->peers[n->n_peers];
        if (!parse_u64(tok, &p->id) || p->id == 0 || strlen(eq + 1) >= sizeof(p->address)) {
            ok = false;
            break;
        }
        snprintf(p->address, sizeof(p->address), "%s", eq + 1);
        n->n_peers++;
    }
    free(copy);
    return ok && n->n_peers > 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: craft-host-node --id N --listen IP:PORT --data DIR --peers "
                    "1=IP:PORT,... [--groups N] [--bootstrap|--join] [--tick-ms MS] "
                    "[--snapshot-entries N] [--compaction-overhead N]\n");
}

static bool parse_args(struct node *n, int argc, char **argv)
{
    bool ok = true;
    for (int i = 1; ok && i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x = 0;
        if (strcmp(a, "--bootstrap") == 0) {
            n->start = CRAFT_GROUP_BOOTSTRAP;
            continue;
        }
        if (strcmp(a, "--join") == 0) {
            n->start = CRAFT_GROUP_JOIN;
            continue;
        }
        if (v == NULL) {
            ok = false;
            break;
        }
        i++;
        if (strcmp(a, "--id") == 0)
            ok = parse_u64(v, &n->id) && n->id != 0;
        else if (strcmp(a, "--listen") == 0)
            n->listen = v;
        else if (strcmp(a, "--data") == 0)
            n->data_dir = v;
        else if (strcmp(a, "--peers") == 0)
            ok = parse_peers(n, v);
        else if (strcmp(a, "--groups") == 0)
            ok = parse_u64(v, &n->groups) && n->groups > 0 && n->groups <= 100000;
        else if (strcmp(a, "--tick-ms") == 0)
            ok = parse_u64(v, &x) && x > 0 && x < 100000 && ((n->tick_ms = (uint32_t)x), true);
        else if (strcmp(a, "--snapshot-entries") == 0)
            ok = parse_u64(v, &n->snapshot_entries);
        else if (strcmp(a, "--compaction-overhead") == 0)
            ok = parse_u64(v, &n->compaction_overhead);
        else
            ok = false;
    }
    if (!ok)
        fprintf(stderr, "craft-host-node: bad or missing argument\n");
    return ok && n->id != 0 && n->data_dir != NULL && n->n_peers > 0;
}

static int start_groups(struct node *n)
{
    struct craft_member members[MAX_PEERS];
    for (int i = 0; i < n->n_peers; i++) {
        members[i].id = n->peers[i].id;
        members[i].address = n->peers[i].address;
        members[i].role = CRAFT_ROLE_FOLLOWER;
    }
    int rc = 0;
    for (uint64_t g = 1; rc == 0 && g <= n->groups; g++) {
        struct craft_group_config gc;
        craft_group_config_init(&gc);
        gc.group_id = g;
        gc.start = n->start;
        if (n->start == CRAFT_GROUP_BOOTSTRAP) {
            gc.members = members;
            gc.n_members = (uint32_t)n->n_peers;
        }
        gc.fsm_factory = factory;
        gc.fsm_arg = n;
        gc.snapshot_entries = n->snapshot_entries;
        gc.compaction_overhead = n->compaction_overhead;
        char err[256] = "";
        rc = craft_host_start_group(n->host, &gc, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "craft-host-node %" PRIu64 ": start group %" PRIu64 ": %s (%s)\n",
                    n->id, g, craft_host_strerror(rc), err);
    }
    return rc;
}

/* ---- commands ---- */

static void answer_err(int rc, uint64_t leader)
{
    printf("err %d %s leader=%" PRIu64 "\n", rc, craft_host_strerror(rc), leader);
}

static const char *role_name(uint32_t role)
{
    static const char *names[] = {"follower", "pre-candidate", "candidate",
                                  "leader",   "non-voting",    "witness"};
    return role < sizeof(names) / sizeof(names[0]) ? names[role] : "unknown";
}

static void print_ids(const char *name, const uint64_t *ids, uint32_t n)
{
    printf(" %s=", name);
    for (uint32_t i = 0; i < n; i++)
        printf("%s%" PRIu64, i > 0 ? "," : "", ids[i]);
}

static void cmd_status(struct node *n, uint64_t g)
{
    struct craft_group_status *st = malloc(sizeof(*st));
    int rc = st == NULL ? CRAFT_ENOMEM : craft_host_group_status(n->host, g, st);
    if (rc != 0) {
        answer_err(rc, 0);
    } else {
        const struct craft_status *r = &st->raft;
        printf("ok role=%s term=%" PRIu64 " leader=%" PRIu64 " commit=%" PRIu64 " applied=%" PRIu64
               " fsm_applied=%" PRIu64 " first=%" PRIu64 " last=%" PRIu64 " snapshot=%" PRIu64,
               role_name(r->role), r->term, r->leader, r->commit, r->applied, st->fsm_applied,
               r->first_index, r->last_index, st->snapshot_index);
        print_ids("members", r->conf.voters, r->conf.n_voters);
        print_ids("learners", r->conf.learners, r->conf.n_learners);
        printf("\n");
    }
    free(st);
}

struct stale_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    uint64_t index, count, hash;
    struct counter *fsm;
};

/* On the apply thread: read the state machine as of done->index. */
static void stale_done(void *arg, struct craft_done *done)
{
    struct stale_wait *w = arg;
    uint64_t count = 0, hash = 0;
    if (done->status == 0)
        counter_get(w->fsm, &count, &hash);
    pthread_mutex_lock(&w->lock);
    w->status = done->status;
    w->index = done->index;
    w->count = count;
    w->hash = hash;
    w->done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void cmd_stale(struct node *n, uint64_t g)
{
    struct stale_wait w = {.fsm = &n->fsm[g]};
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    int rc = craft_host_read_stale(n->host, g, stale_done, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.lock);
        while (!w.done)
            pthread_cond_wait(&w.cond, &w.lock);
        rc = w.status;
        pthread_mutex_unlock(&w.lock);
    }
    if (rc == 0)
        printf("ok %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", w.count, w.hash, w.index);
    else
        answer_err(rc, 0);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
}

static void cmd_metrics(struct node *n)
{
    struct craft_host_metrics m;
    craft_host_get_metrics(n->host, &m);
    printf("ok proposals=%" PRIu64 " proposals_failed=%" PRIu64 " reads=%" PRIu64
           " applies=%" PRIu64 " entries_applied=%" PRIu64 " elections=%" PRIu64
           " leader_changes=%" PRIu64 " wal_writes=%" PRIu64 " wal_fsyncs=%" PRIu64
           " wal_bytes=%" PRIu64 " bytes_sent=%" PRIu64 " bytes_received=%" PRIu64
           " messages_sent=%" PRIu64 " messages_received=%" PRIu64 " snapshots_taken=%" PRIu64
           " snapshots_sent=%" PRIu64 " snapshots_received=%" PRIu64 "\n",
           m.proposals, m.proposals_failed, m.reads, m.applies, m.entries_applied, m.elections,
           m.leader_changes, m.wal_writes, m.wal_fsyncs, m.wal_bytes, m.bytes_sent,
           m.bytes_received, m.messages_sent, m.messages_received, m.snapshots_taken,
           m.snapshots_sent, m.snapshots_received);
}

/* Runs one command line; returns false on quit. */
static bool run_command(struct node *n, char *line)
{
    char *save = NULL;
    char *cmd = strtok_r(line, " \t", &save);
    if (cmd == NULL) {
        printf("err %d empty command leader=0\n", CRAFT_EINVAL);
        return true;
    }
    if (strcmp(cmd, "quit") == 0) {
        printf("ok\n");
        return false;
    }
    if (strcmp(cmd, "metrics") == 0) {
        cmd_metrics(n);
        return true;
    }
    uint64_t g = 0, id = 0, leader = 0, value = 0;
    char *rest = strtok_r(NULL, "", &save); /* everything after the command */
    char *garg = rest != NULL ? strtok_r(rest, " \t", &save) : NULL;
    char *tail = strtok_r(NULL, "", &save);
    if (!parse_u64(garg, &g) || g == 0 || g > n->groups) {
        printf("err %d usage: %s GROUP ... (group 1..%" PRIu64 ") leader=0\n", CRAFT_EINVAL, cmd,
               n->groups);
        return true;
    }
    int rc = 0;
    if (strcmp(cmd, "propose") == 0) {
        const char *text = tail != NULL ? tail : "";
        struct craft_result res = {0};
        rc = craft_host_propose_sync(n->host, g, NULL, text, (uint32_t)strlen(text),
                                     REQUEST_TIMEOUT_MS, &res, &leader);
        free(res.data);
        value = res.value;
        if (rc == 0)
            printf("ok %" PRIu64 "\n", value);
    } else if (strcmp(cmd, "read") == 0) {
        rc = craft_host_read_sync(n->host, g, REQUEST_TIMEOUT_MS, NULL, &leader);
        if (rc == 0) {
            uint64_t count, hash;
            counter_get(&n->fsm[g], &count, &hash);
            printf("ok %" PRIu64 " %" PRIu64 "\n", count, hash);
        }
    } else if (strcmp(cmd, "stale") == 0) {
        cmd_stale(n, g);
        return true;
    } else if (strcmp(cmd, "status") == 0) {
        cmd_status(n, g);
        return true;
    } else if (strcmp(cmd, "snapshot") == 0) {
        rc = craft_host_snapshot_sync(n->host, g, REQUEST_TIMEOUT_MS, &value);
        if (rc == 0)
            printf("ok %" PRIu64 "\n", value);
    } else if (strcmp(cmd, "add") == 0 || strcmp(cmd, "remove") == 0 ||
               strcmp(cmd, "transfer") == 0) {
        char *idarg = tail != NULL ? strtok_r(tail, " \t", &save) : NULL;
        char *addr = strtok_r(NULL, " \t", &save);
        if (!parse_u64(idarg, &id) || id == 0 || (cmd[0] == 'a' && addr == NULL)) {
            printf("err %d usage: %s GROUP ID%s leader=0\n", CRAFT_EINVAL, cmd,
                   cmd[0] == 'a' ? " ADDRESS" : "");
            return true;
        }
        if (cmd[0] == 'a')
            rc = craft_host_add_member_sync(n->host, g, id, addr, CRAFT_ROLE_FOLLOWER,
                                            REQUEST_TIMEOUT_MS, &leader);
        else if (cmd[0] == 'r')
            rc = craft_host_remove_member_sync(n->host, g, id, REQUEST_TIMEOUT_MS, &leader);
        else
            rc = craft_host_transfer_leader_sync(n->host, g, id, REQUEST_TIMEOUT_MS);
        if (rc == 0)
            printf("ok\n");
    } else {
        printf("err %d unknown command %s leader=0\n", CRAFT_EINVAL, cmd);
        return true;
    }
    if (rc != 0)
        answer_err(rc, leader);
    return true;
}

/* ---- the command loop ---- */

/* SIGTERM and SIGINT stay blocked in every thread (the host's threads
 * inherit the mask); a thread of their own takes them with sigwait and wakes
 * the command loop through a pipe, so the stop happens between commands, on
 * the main thread. (A handler interrupting a blocking pselect would do too,
 * but ThreadSanitizer defers handlers while the signal is masked, so a
 * TSan build would never stop.) */
struct stop_signal {
    sigset_t set;
    int pipe[2];
};

static void *stop_signal_thread(void *arg)
{
    struct stop_signal *s = arg;
    int sig = 0;
    while (sigwait(&s->set, &sig) != 0)
        ;
    char byte = (char)sig;
    while (write(s->pipe[1], &byte, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* Runs commands until quit, end of input or a stop signal. */
static void command_loop(struct node *n, int stop_fd)
{
    static char buf[LINE_CAP];
    size_t len = 0;
    bool running = true;
    while (running) {
        char *nl = memchr(buf, '\n', len);
        if (nl != NULL) {
            *nl = '\0';
            if (nl > buf && nl[-1] == '\r')
                nl[-1] = '\0';
            running = run_command(n, buf);
            fflush(stdout);
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, len - used);
            len -= used;
            continue;
        }
        if (len == sizeof(buf)) {
            printf("err %d line too long leader=0\n", CRAFT_EINVAL);
            fflush(stdout);
            len = 0;
        }
        struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = stop_fd, .events = POLLIN}};
        int ready = poll(fds, 2, -1);
        if (ready < 0) {
            running = errno == EINTR;
            continue;
        }
        if (fds[1].revents != 0) {
            running = false;
            continue;
        }
        ssize_t got = read(STDIN_FILENO, buf + len, sizeof(buf) - len);
        if (got <= 0 && !(got < 0 && errno == EINTR))
            running = false; /* end of input: stop as on quit */
        else if (got > 0)
            len += (size_t)got;
    }
}

int main(int argc, char **argv)
{
    struct node n = {.start = CRAFT_GROUP_RESTART, .groups = 1, .tick_ms = 10};
    if (!parse_args(&n, argc, argv)) {
        usage();
        return 2;
    }
    int status = 1;
    n.fsm = calloc(n.groups + 1, sizeof(*n.fsm));
    if (n.fsm == NULL)
        return 1;
    for (uint64_t g = 0; g <= n.groups; g++)
        pthread_mutex_init(&n.fsm[g].lock, NULL);

    static struct stop_signal stop = {.pipe = {-1, -1}}; /* the thread outlives main */
    pthread_t stop_thread;
    sigemptyset(&stop.set);
    sigaddset(&stop.set, SIGTERM);
    sigaddset(&stop.set, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_sigmask(SIG_BLOCK, &stop.set, NULL) != 0 || pipe(stop.pipe) != 0 ||
        pthread_create(&stop_thread, NULL, stop_signal_thread, &stop) != 0) {
        fprintf(stderr, "craft-host-node: cannot set up the stop signals\n");
        goto out_free_fsm;
    }
    pthread_detach(stop_thread);

    struct craft_host_config cfg;
    craft_host_config_init(&cfg);
    cfg.node_id = n.id;
    cfg.cluster_id = 42;
    cfg.data_dir = n.data_dir;
    cfg.listen_address = n.listen;
    cfg.tick_ms = n.tick_ms;
    cfg.log = log_line;
    cfg.log_arg = &n;
    char err[256] = "";
    int rc = craft_host_start(&cfg, &n.host, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craft-host-node %" PRIu64 ": start: %s (%s)\n", n.id,
                craft_host_strerror(rc), err);
        goto out_free_fsm;
    }
    for (int i = 0; i < n.n_peers && rc == 0; i++)
        if (n.peers[i].id != n.id)
            rc = craft_host_set_address(n.host, n.peers[i].id, n.peers[i].address);
    if (rc != 0) {
        fprintf(stderr, "craft-host-node %" PRIu64 ": set address: %s\n", n.id,
                craft_host_strerror(rc));
        goto out_stop_host;
    }
    if (start_groups(&n) != 0)
        goto out_stop_host;
    printf("ready %d\n", craft_host_port(n.host));
    fflush(stdout);
    command_loop(&n, stop.pipe[0]);
    status = 0;
out_stop_host:
    craft_host_stop(n.host);
out_free_fsm:
    for (uint64_t g = 0; g <= n.groups; g++)
        pthread_mutex_destroy(&n.fsm[g].lock);
    free(n.fsm);
    return status;
}
