/* Crash test: a child process writes to a WAL (appends, overwrites of a
 * suffix, hard states, compactions, snapshot installs, for several groups),
 * commits, and reports over a pipe what it is about to commit and what was
 * acknowledged. The parent kills it with SIGKILL at a random moment, recovers
 * the WAL and checks, per group, that the recovered state is the acknowledged
 * one plus some prefix of the unacknowledged operations, with every entry's
 * contents intact. Then the next child goes on from the recovered state.
 *
 * CRAFT_CRASH_ROUNDS sets the number of rounds (default 200), CRAFT_CRASH_SEED
 * the seed (default: the time, printed). */
#include "../storage/storage_test_util.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#define GROUPS 4
#define SEGMENT_SIZE (64 << 10)

enum op_kind { OP_APPEND = 1, OP_HARD_STATE, OP_COMPACT, OP_SNAPSHOT, OP_ACK };

struct op {
    uint32_t kind;
    uint32_t group;
    uint64_t a, b, c; /* append: first, n, term; hs: term, vote, commit; compact: index;
                         snapshot: index, term */
};

/* ---- the model: what a group's log must look like ---- */

struct model {
    uint64_t compact, compact_term;
    uint64_t *terms; /* terms[i] for index compact + 1 + i */
    size_t n, cap;
    struct craft_hard_state hs;
    uint64_t snap_index;
};

static void model_push(struct model *m, uint64_t term)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->terms = realloc(m->terms, m->cap * sizeof(*m->terms));
    }
    m->terms[m->n++] = term;
}

static void model_apply(struct model *m, const struct op *op)
{
    switch (op->kind) {
    case OP_APPEND: {
        uint64_t first = op->a;
        m->n = (size_t)(first - m->compact - 1);
        for (uint64_t i = 0; i < op->b; i++)
            model_push(m, op->c);
        break;
    }
    case OP_HARD_STATE:
        m->hs = (struct craft_hard_state){op->a, op->b, op->c};
        break;
    case OP_COMPACT: {
        size_t k = (size_t)(op->a - m->compact);
        m->compact_term = m->terms[k - 1];
        if (m->n > k)
            memmove(m->terms, m->terms + k, (m->n - k) * sizeof(*m->terms));
        m->n -= k;
        m->compact = op->a;
        break;
    }
    case OP_SNAPSHOT: /* always an install past the end here */
        m->n = 0;
        m->compact = op->a;
        m->compact_term = op->b;
        m->snap_index = op->a;
        break;
    }
}

static void model_copy(struct model *dst, const struct model *src)
{
    free(dst->terms);
    *dst = *src;
    dst->cap = src->n + 1;
    dst->terms = malloc(dst->cap * sizeof(*dst->terms));
    if (src->n > 0)
        memcpy(dst->terms, src->terms, src->n * sizeof(*src->terms));
}

/* Does the recovered group match the model exactly? */
static bool model_matches(const struct model *m, struct craft_log_store *ls, uint64_t g)
{
    struct craft_hard_state hs;
    struct craft_snapshot_meta snap;
    ls->initial_state(ls->data, g, &hs, NULL);
    ls->snapshot(ls->data, g, &snap);
    if (hs.term != m->hs.term || hs.vote != m->hs.vote || hs.commit != m->hs.commit)
        return false;
    if (snap.index != m->snap_index)
        return false;
    if (ls->first_index(ls->data, g) != m->compact + 1 ||
        ls->last_index(ls->data, g) != m->compact + m->n)
        return false;
    uint64_t t;
    if (ls->term(ls->data, g, m->compact, &t) != 0 || t != m->compact_term)
        return false;
    for (size_t i = 0; i < m->n; i++)
        if (ls->term(ls->data, g, m->compact + 1 + i, &t) != 0 || t != m->terms[i])
            return false;
    return true;
}

/* ---- the child ---- */

static void send_op(int fd, const struct op *op)
{
    if (write(fd, op, sizeof(*op)) != (ssize_t)sizeof(*op))
        _exit(3);
}

static void child_main(const char *dir, int fd, uint64_t seed)
{
    struct craft_wal_options opts;
    struct craft_wal *wal;
    char err[512];
    craft_wal_options_init(&opts);
    opts.segment_size = SEGMENT_SIZE;
    if (craft_wal_open(dir, &opts, &wal, err, sizeof(err)) != 0) {
        fprintf(stderr, "child: open: %s\n", err);
        _exit(2);
    }
    struct craft_log_store *ls = craft_wal_log_store(wal);
    uint64_t rng = seed;
    for (;;) {
        int n_ops = 1 + (int)(tu_splitmix(&rng) % 6);
        for (int k = 0; k < n_ops; k++) {
            uint32_t g = 1 + (uint32_t)(tu_splitmix(&rng) % GROUPS);
            uint64_t first = ls->first_index(ls->data, g);
            uint64_t last = ls->last_index(ls->data, g);
            struct craft_hard_state hs;
            ls->initial_state(ls->data, g, &hs, NULL);
            uint64_t dice = tu_splitmix(&rng) % 100;
            struct op op = {.group = g};
            int rc;
            if (dice < 8 && last > first + 5) {
                /* A new term overwrites a suffix: hard state, then entries. */
                op.kind = OP_HARD_STATE;
                op.a = hs.term + 1;
                op.b = g;
                op.c = hs.commit;
                send_op(fd, &op);
                struct craft_hard_state nhs = {op.a, op.b, op.c};
                if (ls->save_hard_state(ls->data, g, &nhs) != 0)
                    _exit(4);
                uint64_t start = last - (tu_splitmix(&rng) % 5);
                size_t n = 1 + (size_t)(tu_splitmix(&rng) % 8);
                op = (struct op){OP_APPEND, g, start, n, nhs.term};
                send_op(fd, &op);
                struct craft_entry *es = tu_entries(g, start, n, nhs.term);
                rc = ls->append(ls->data, g, es, n);
                tu_entries_free(es, n);
            } else if (dice < 14 && last > first + 60) {
                op = (struct op){OP_COMPACT, g, last - 30, 0, 0};
                send_op(fd, &op);
                rc = ls->compact(ls->data, g, op.a);
            } else if (dice < 16) {
                struct craft_snapshot_meta meta;
                memset(&meta, 0, sizeof(meta));
                meta.index = last + 10;
                meta.term = hs.term;
                meta.conf.n_voters = 1;
                meta.conf.voters[0] = g;
                op = (struct op){OP_SNAPSHOT, g, meta.index, meta.term, 0};
                send_op(fd, &op);
                rc = ls->save_snapshot(ls->data, g, &meta);
            } else if (dice < 30) {
                op = (struct op){OP_HARD_STATE, g, hs.term, hs.vote, last};
                send_op(fd, &op);
                struct craft_hard_state nhs = {op.a, op.b, op.c};
                rc = ls->save_hard_state(ls->data, g, &nhs);
            } else {
                size_t n = 1 + (size_t)(tu_splitmix(&rng) % 20);
                uint64_t term = hs.term;
                op = (struct op){OP_APPEND, g, last + 1, n, term};
                send_op(fd, &op);
                struct craft_entry *es = tu_entries(g, last + 1, n, term);
                rc = ls->append(ls->data, g, es, n);
                tu_entries_free(es, n);
            }
            if (rc != 0) {
                fprintf(stderr, "child: op %u: %d\n", op.kind, rc);
                _exit(5);
            }
        }
        if (craft_wal_commit(wal) != 0) {
            fprintf(stderr, "child: commit: %s\n", craft_wal_errmsg(wal));
            _exit(6);
        }
        struct op ack = {.kind = OP_ACK};
        send_op(fd, &ack);
    }
}

/* ---- the parent ---- */

static bool read_op(int fd, struct op *op)
{
    size_t got = 0;
    while (got < sizeof(*op)) {
        ssize_t r = read(fd, (char *)op + got, sizeof(*op) - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void test_acknowledged_writes_survive_sigkill(void **state)
{
    (void)state;
    int rounds = 200;
    const char *env = getenv("CRAFT_CRASH_ROUNDS");
    if (env != NULL && atoi(env) > 0)
        rounds = atoi(env);
    char *dir = tu_mkdtemp("crash");
    struct model acked[GROUPS + 1];
    memset(acked, 0, sizeof(acked));
    uint64_t rng = (uint64_t)time(NULL);
    if (getenv("CRAFT_CRASH_SEED") != NULL)
        rng = strtoull(getenv("CRAFT_CRASH_SEED"), NULL, 10);
    printf("crash test: %d rounds, seed %llu\n", rounds, (unsigned long long)rng);
    struct op *pending = NULL;
    size_t n_pending = 0, pending_cap = 0;
    uint64_t total_acks = 0, total_torn = 0;

    for (int round = 0; round < rounds; round++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        uint64_t seed = tu_splitmix(&rng);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1], seed);
            _exit(0);
        }
        close(fds[1]);
        /* Let it acknowledge a few commits, then kill it at a random moment. */
        int want = 1 + (int)(tu_splitmix(&rng) % 8);
        int acks = 0;
        n_pending = 0;
        struct op op;
        bool alive = true;
        while (acks < want && (alive = read_op(fds[0], &op))) {
            if (op.kind == OP_ACK) {
                for (size_t i = 0; i < n_pending; i++)
                    model_apply(&acked[pending[i].group], &pending[i]);
                n_pending = 0;
                acks++;
            } else {
                if (n_pending == pending_cap) {
                    pending_cap = pending_cap ? pending_cap * 2 : 64;
                    pending = realloc(pending, pending_cap * sizeof(*pending));
                }
                pending[n_pending++] = op;
            }
        }
        if (!alive)
            fail_msg("round %d: the child died on its own", round);
        struct timespec ts = {0, (long)(tu_splitmix(&rng) % 4000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        /* Whatever it wrote before dying is still in the pipe. */
        while (read_op(fds[0], &op)) {
            if (op.kind == OP_ACK) {
                for (size_t i = 0; i < n_pending; i++)
                    model_apply(&acked[pending[i].group], &pending[i]);
                n_pending = 0;
                acks++;
            } else {
                if (n_pending == pending_cap) {
                    pending_cap = pending_cap ? pending_cap * 2 : 64;
                    pending = realloc(pending, pending_cap * sizeof(*pending));
                }
                pending[n_pending++] = op;
            }
        }
        close(fds[0]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("round %d: child exited with status %d", round, status);
        total_acks += (uint64_t)acks;

        /* Recover and check each group: acknowledged state plus a prefix of
         * its unacknowledged operations. */
        struct craft_wal_options opts;
        struct craft_wal *wal;
        struct tu_log log = {{0}, 0};
        char err[512];
        craft_wal_options_init(&opts);
        opts.segment_size = SEGMENT_SIZE;
        opts.log = tu_log_fn;
        opts.log_arg = &log;
        if (craft_wal_open(dir, &opts, &wal, err, sizeof(err)) != 0)
            fail_msg("round %d: recovery failed: %s", round, err);
        if (strstr(log.text, "torn tail") != NULL)
            total_torn++;
        struct craft_log_store *ls = craft_wal_log_store(wal);
        for (uint32_t g = 1; g <= GROUPS; g++) {
            struct model m = {0};
            model_copy(&m, &acked[g]);
            bool ok = model_matches(&m, ls, g);
            for (size_t i = 0; i < n_pending && !ok; i++) {
                if (pending[i].group != g)
                    continue;
                model_apply(&m, &pending[i]);
                ok = model_matches(&m, ls, g);
            }
            if (!ok)
                fail_msg("round %d group %u: recovered log is neither the acknowledged state nor "
                         "a prefix of the pending writes on top of it (first %llu last %llu)",
                         round, g, (unsigned long long)ls->first_index(ls->data, g),
                         (unsigned long long)ls->last_index(ls->data, g));
            /* Nothing garbled: every entry's bytes are what was written. */
            uint64_t first = ls->first_index(ls->data, g), last = ls->last_index(ls->data, g);
            for (uint64_t i = first; i <= last; i++) {
                struct craft_entry e;
                size_t n;
                assert_int_equal(ls->entries(ls->data, g, i, i + 1, UINT64_MAX, &e, 1, &n), 0);
                assert_true(tu_entry_check(&e, g));
            }
            model_copy(&acked[g], &m); /* the recovered state is the truth from now on */
            free(m.terms);
        }
        craft_wal_close(wal);
    }
    printf("crash test: %llu acknowledged commits checked, %llu torn tails truncated\n",
           (unsigned long long)total_acks, (unsigned long long)total_torn);
    /* The workload compacts: old segments were deleted along the way, so
     * recovery ran from a log whose start had been cut. */
    if (rounds >= 100) {
        char first[4096];
        snprintf(first, sizeof(first), "%s/00000001.wal", dir);
        assert_int_equal(access(first, F_OK), -1);
    }
    for (int g = 0; g <= GROUPS; g++)
        free(acked[g].terms);
    free(pending);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acknowledged_writes_survive_sigkill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
