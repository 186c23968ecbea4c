/* The batching writer: one thread owns the WAL and turns many callers' writes
 * into one commit (one write, one fdatasync) per batch.
 *
 * Callers queue requests (any thread). The thread takes everything queued,
 * applies each request to the WAL's buffer, commits once, and calls every
 * request's callback with the commit's result. Requests queued while a commit
 * runs form the next batch, so the batch grows with the load: the more
 * concurrent writers, the more each fdatasync carries.
 *
 * Two locks: queue_lock guards the queue (held briefly by submitters);
 * wal_lock guards the WAL (held by the thread while it applies and commits,
 * and by readers through craft_wal_writer_lock). */
#include <craft/wal.h>

#include <pthread.h>
#include <stdlib.h>

struct craft_wal_writer {
    struct craft_wal *wal;
    pthread_t thread;
    pthread_mutex_t queue_lock;
    pthread_cond_t queue_cond;
    struct craft_wal_write_req *head, *tail;
    bool stopping;
    pthread_mutex_t wal_lock;
    struct craft_wal_writer_stats stats; /* under wal_lock */
};

static void *writer_main(void *arg)
{
    struct craft_wal_writer *w = arg;
    struct craft_log_store *ls = craft_wal_log_store(w->wal);
    for (;;) {
        pthread_mutex_lock(&w->queue_lock);
        while (w->head == NULL && !w->stopping)
            pthread_cond_wait(&w->queue_cond, &w->queue_lock);
        struct craft_wal_write_req *batch = w->head;
        w->head = w->tail = NULL;
        bool stopping = w->stopping;
        pthread_mutex_unlock(&w->queue_lock);
        if (batch == NULL && stopping)
            break;

        pthread_mutex_lock(&w->wal_lock);
        uint64_t n = 0;
        for (struct craft_wal_write_req *r = batch; r != NULL; r = r->next_, n++) {
            r->status_ = 0;
            if (r->n_entries > 0)
                r->status_ = ls->append(ls->data, r->group, r->entries, r->n_entries);
            if (r->status_ == 0 && r->hard_state != NULL)
                r->status_ = ls->save_hard_state(ls->data, r->group, r->hard_state);
        }
        int rc = craft_wal_commit(w->wal);
        w->stats.commits++;
        w->stats.requests += n;
        if (n > w->stats.max_batch)
            w->stats.max_batch = n;
        pthread_mutex_unlock(&w->wal_lock);

        while (batch != NULL) {
            struct craft_wal_write_req *next = batch->next_;
            batch->cb(batch, batch->status_ != 0 ? batch->status_ : rc);
            batch = next;
        }
    }
    return NULL;
}

int craft_wal_writer_start(struct craft_wal *wal, struct craft_wal_writer **out)
{
    struct craft_wal_writer *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return CRAFT_ENOMEM;
    w->wal = wal;
    pthread_mutex_init(&w->queue_lock, NULL);
    pthread_cond_init(&w->queue_cond, NULL);
    pthread_mutex_init(&w->wal_lock, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->queue_lock);
        pthread_cond_destroy(&w->queue_cond);
        pthread_mutex_destroy(&w->wal_lock);
        free(w);
        return CRAFT_ENOMEM;
    }
    *out = w;
    return 0;
}

void craft_wal_writer_stop(struct craft_wal_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->queue_lock);
    w->stopping = true;
    pthread_cond_signal(&w->queue_cond);
    pthread_mutex_unlock(&w->queue_lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->queue_lock);
    pthread_cond_destroy(&w->queue_cond);
    pthread_mutex_destroy(&w->wal_lock);
    free(w);
}

int craft_wal_writer_submit(struct craft_wal_writer *w, struct craft_wal_write_req *req)
{
    if (req->cb == NULL)
        return CRAFT_EINVAL;
    req->next_ = NULL;
    pthread_mutex_lock(&w->queue_lock);
    if (w->stopping) {
        pthread_mutex_unlock(&w->queue_lock);
        return CRAFT_EINVAL;
    }
    if (w->tail != NULL)
        w->tail->next_ = req;
    else
        w->head = req;
    w->tail = req;
    pthread_cond_signal(&w->queue_cond);
    pthread_mutex_unlock(&w->queue_lock);
    return 0;
}

struct blocking_write {
    struct craft_wal_write_req req;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
};

static void blocking_done(struct craft_wal_write_req *req, int status)
{
    struct blocking_write *b = req->data;
    pthread_mutex_lock(&b->lock);
    b->status = status;
    b->done = true;
    pthread_cond_signal(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

int craft_wal_writer_write(struct craft_wal_writer *w, uint64_t group,
                           const struct craft_entry *entries, size_t n_entries,
                           const struct craft_hard_state *hs)
{
    struct blocking_write b = {
        .req = {.group = group,
                .entries = entries,
                .n_entries = n_entries,
                .hard_state = hs,
                .cb = blocking_done},
    };
    b.req.data = &b;
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.cond, NULL);
    int rc = craft_wal_writer_submit(w, &b.req);
    if (rc == 0) {
        pthread_mutex_lock(&b.lock);
        while (!b.done)
            pthread_cond_wait(&b.cond, &b.lock);
        pthread_mutex_unlock(&b.lock);
        rc = b.status;
    }
    pthread_mutex_destroy(&b.lock);
    pthread_cond_destroy(&b.cond);
    return rc;
}

void craft_wal_writer_lock(struct craft_wal_writer *w)
{
    pthread_mutex_lock(&w->wal_lock);
}

void craft_wal_writer_unlock(struct craft_wal_writer *w)
{
    pthread_mutex_unlock(&w->wal_lock);
}

void craft_wal_writer_stats(struct craft_wal_writer *w, struct craft_wal_writer_stats *st)
{
    pthread_mutex_lock(&w->wal_lock);
    *st = w->stats;
    pthread_mutex_unlock(&w->wal_lock);
}
