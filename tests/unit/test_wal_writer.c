/* The batching writer: concurrent writers from many threads coalesce into
 * few commits (group commit), every callback comes after its data is durable,
 * and everything written is there after reopening. */
#include "../storage/storage_test_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#define THREADS 16
#define WRITES 40

struct worker {
    struct craft_wal_writer *w;
    uint64_t group;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    for (uint64_t i = 0; i < WRITES; i++) {
        struct craft_entry *es = tu_entries(wk->group, 1 + 3 * i, 3, 1);
        struct craft_hard_state hs = {1, wk->group, 3 * i};
        if (craft_wal_writer_write(wk->w, wk->group, es, 3, &hs) != 0)
            wk->failures++;
        tu_entries_free(es, 3);
    }
    return NULL;
}

static void test_concurrent_writers_share_commits(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("writer");
    struct craft_wal_options opts;
    struct craft_wal *wal;
    char err[256];
    craft_wal_options_init(&opts);
    opts.segment_size = 1 << 20;
    assert_int_equal(craft_wal_open(dir, &opts, &wal, err, sizeof(err)), 0);
    struct craft_wal_writer *w;
    assert_int_equal(craft_wal_writer_start(wal, &w), 0);
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){w, (uint64_t)i + 1, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].failures, 0);
    }
    struct craft_wal_writer_stats st;
    craft_wal_writer_stats(w, &st);
    assert_int_equal(st.requests, THREADS * WRITES);
    assert_true(st.commits < st.requests); /* coalesced */
    assert_true(st.max_batch > 1);
    /* Reads while the writer runs go under its lock. */
    craft_wal_writer_lock(w);
    struct craft_log_store *ls = craft_wal_log_store(wal);
    assert_int_equal(ls->last_index(ls->data, 1), 3 * WRITES);
    craft_wal_writer_unlock(w);
    craft_wal_writer_stop(w);
    craft_wal_close(wal);
    assert_int_equal(craft_wal_open(dir, &opts, &wal, err, sizeof(err)), 0);
    ls = craft_wal_log_store(wal);
    for (uint64_t g = 1; g <= THREADS; g++) {
        assert_int_equal(ls->last_index(ls->data, g), 3 * WRITES);
        struct craft_hard_state hs;
        ls->initial_state(ls->data, g, &hs, NULL);
        assert_int_equal(hs.vote, g);
        assert_int_equal(hs.commit, 3 * (WRITES - 1));
        struct craft_entry e;
        size_t n;
        for (uint64_t i = 1; i <= 3 * WRITES; i++) {
            assert_int_equal(ls->entries(ls->data, g, i, i + 1, UINT64_MAX, &e, 1, &n), 0);
            assert_true(tu_entry_check(&e, g));
        }
    }
    craft_wal_close(wal);
    tu_rmtree(dir);
}

struct async_state {
    pthread_mutex_t lock;
    int done, failed;
};

static void on_done(struct craft_wal_write_req *req, int status)
{
    struct async_state *as = req->data;
    pthread_mutex_lock(&as->lock);
    as->done++;
    if (status != 0)
        as->failed++;
    pthread_mutex_unlock(&as->lock);
}

/* Asynchronous requests: callbacks, a bad request failing alone, and stop
 * finishing whatever is queued. */
static void test_callbacks_and_stop_drain_the_queue(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("writer");
    struct craft_wal *wal;
    char err[256];
    struct craft_wal_options opts;
    craft_wal_options_init(&opts);
    opts.segment_size = 1 << 20;
    assert_int_equal(craft_wal_open(dir, &opts, &wal, err, sizeof(err)), 0);
    struct craft_wal_writer *w;
    assert_int_equal(craft_wal_writer_start(wal, &w), 0);
    struct async_state as = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    struct craft_entry *es = tu_entries(1, 1, 100, 1);
    struct craft_wal_write_req reqs[101];
    for (int i = 0; i < 100; i++)
        reqs[i] = (struct craft_wal_write_req){
            .data = &as, .group = 1, .entries = &es[i], .n_entries = 1, .cb = on_done};
    /* A request with a gap fails on its own. */
    reqs[100] = (struct craft_wal_write_req){
        .data = &as, .group = 1, .entries = &es[50], .n_entries = 1, .cb = on_done};
    struct craft_entry gap = es[99];
    gap.index = 500;
    reqs[100].entries = &gap;
    for (int i = 0; i < 101; i++)
        assert_int_equal(craft_wal_writer_submit(w, &reqs[i]), 0);
    craft_wal_writer_stop(w);
    assert_int_equal(as.done, 101);
    assert_int_equal(as.failed, 1);
    craft_wal_close(wal);
    assert_int_equal(craft_wal_open(dir, &opts, &wal, err, sizeof(err)), 0);
    struct craft_log_store *ls = craft_wal_log_store(wal);
    assert_int_equal(ls->last_index(ls->data, 1), 100);
    craft_wal_close(wal);
    tu_entries_free(es, 100);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_writers_share_commits),
        cmocka_unit_test(test_callbacks_and_stop_drain_the_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
