/* Snapshots between hosts: the leader streams its newest snapshot file to a
 * follower through the transport (the transport's send_snapshot); the follower
 * writes the chunks into its snapshot store and, once the file is durable,
 * the transport hands the SNAPSHOT message to the core, whose next ready
 * installs it (group.c records it in the log, apply.c restores it). */
#include <stdlib.h>
#include <string.h>

#include "host_internal.h"

struct source {
    struct craft_host *h;
    void *reader;
};

static int source_read(void *data, void *buf, size_t cap, size_t *n)
{
    struct source *s = data;
    return s->h->snaps->read(s->reader, buf, cap, n);
}

static void source_close(void *data)
{
    struct source *s = data;
    s->h->snaps->reader_close(s->reader);
    free(s);
}

static void send_done(void *arg, uint64_t group_id, uint64_t to, int status)
{
    struct craft_host *h = arg;
    struct host_group *g = host_find_group(h, group_id);
    if (status == 0)
        atomic_fetch_add(&h->metrics.snapshots_sent, 1);
    else
        host_log(h, CRAFT_HOST_LOG_WARN, "group %llu: snapshot to %llu failed: %s",
                 (unsigned long long)group_id, (unsigned long long)to, craft_host_strerror(status));
    if (g != NULL && !g->stopping && !g->failed)
        (void)craft_raft_report_snapshot(g->raft, to, status != 0);
}

/* Asks the apply thread for a new snapshot, at most once per election
 * timeout (it may find nothing new to snapshot; the core retries). */
static void request_snapshot(struct host_group *g)
{
    uint32_t every = g->cfg.election_ticks ? g->cfg.election_ticks : 10;
    if (g->snapshot_requested_tick != 0 && g->ticks < g->snapshot_requested_tick + every)
        return;
    if (apply_task_submit(g->h, g->ag, TASK_SNAPSHOT, 0, 0, NULL) == 0)
        g->snapshot_requested_tick = g->ticks ? g->ticks : 1;
}

/* Sending: the newest snapshot is opened (every checksum verified, a full
 * pass over the file) on a worker thread, so a large snapshot never stalls
 * the loop and its heartbeats; the stream then starts on the loop. */
struct send_job {
    uv_work_t work;
    struct craft_host *h;
    uint64_t group_id;
    struct craft_message m;
    struct craft_snapshot_meta meta; /* m.snapshot points here */
    void *reader;
    int rc;
};

static void open_work(uv_work_t *w)
{
    struct send_job *job = w->data;
    struct craft_host *h = job->h;
    const struct craft_snapshot_meta *meta = NULL;
    pthread_mutex_lock(&h->snap_lock);
    if (h->snaps->open != NULL) /* exactly the one the core names */
        job->rc = h->snaps->open(h->snaps->data, job->group_id, job->meta.index, job->meta.term,
                                 &job->reader, &meta);
    else
        job->rc = h->snaps->open_newest(h->snaps->data, job->group_id, &job->reader, &meta);
    pthread_mutex_unlock(&h->snap_lock);
    if (job->rc == 0 && (meta->index != job->meta.index || meta->term != job->meta.term)) {
        /* The log names another snapshot than the newest file: the marker
         * catches up soon (REQ_SNAPSHOT_TAKEN); the core retries. */
        h->snaps->reader_close(job->reader);
        job->reader = NULL;
        job->rc = CRAFT_ESNAPSHOT_TEMP;
    }
}

static void open_after(uv_work_t *w, int status)
{
    struct send_job *job = w->data;
    struct craft_host *h = job->h;
    struct host_group *g = host_find_group(h, job->group_id);
    int rc = status != 0 ? CRAFT_ESTOPPED : job->rc;
    bool alive = g != NULL && !g->stopping && !g->failed && h->tr != NULL;
    if (rc == 0 && alive) {
        struct source *s = calloc(1, sizeof(*s));
        if (s == NULL) {
            rc = CRAFT_ENOMEM;
        } else {
            s->h = h;
            s->reader = job->reader;
            job->reader = NULL; /* the source closes it, whatever happens */
            struct craft_snapshot_source src = {
                .data = s, .read = source_read, .close = source_close};
            rc = h->tr->send_snapshot(h->tr->data, job->group_id, &job->m, src, send_done, h);
        }
    }
    if (job->reader != NULL)
        h->snaps->reader_close(job->reader);
    if (rc != 0 && alive)
        (void)craft_raft_report_snapshot(g->raft, job->m.to, true);
    free(job);
}

void host_send_snapshot(struct host_group *g, const struct craft_message *m)
{
    struct craft_host *h = g->h;
    /* The core refuses a snapshot whose membership does not name it: a node
     * added after the newest snapshot needs a newer one. */
    if (m->snapshot == NULL || !craft_conf_state_contains(&m->snapshot->conf, m->to)) {
        request_snapshot(g);
        (void)craft_raft_report_snapshot(g->raft, m->to, true);
        return;
    }
    struct send_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        (void)craft_raft_report_snapshot(g->raft, m->to, true);
        return;
    }
    job->h = h;
    job->group_id = g->id;
    job->m = *m;
    job->meta = *m->snapshot;
    job->m.snapshot = &job->meta;
    job->m.entries = NULL;
    job->m.n_entries = 0;
    job->work.data = job;
    if (uv_queue_work(&h->loop, &job->work, open_work, open_after) != 0) {
        free(job);
        (void)craft_raft_report_snapshot(g->raft, m->to, true);
    }
}

struct sink {
    struct craft_host *h;
    void *w;
    uint64_t group, index, term;
};

int host_snapshot_begin(void *data, uint64_t group_id, const struct craft_message *m, void **out)
{
    struct craft_host *h = data;
    struct host_group *g = host_find_group(h, group_id);
    if (g == NULL || g->stopping || g->failed || m->snapshot == NULL)
        return CRAFT_ENOGROUP;
    /* Not for this node, or not newer than what it applied: refused before
     * a byte is stored. */
    if (m->to != h->cfg.node_id || m->snapshot->index <= craft_raft_commit(g->raft))
        return CRAFT_EINVAL;
    struct sink *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return CRAFT_ENOMEM;
    s->h = h;
    s->group = group_id;
    s->index = m->snapshot->index;
    s->term = m->snapshot->term;
    pthread_mutex_lock(&h->snap_lock);
    int rc = h->snaps->write_begin(h->snaps->data, group_id, m->snapshot, &s->w);
    pthread_mutex_unlock(&h->snap_lock);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int host_snapshot_chunk(void *data, void *sink, uint64_t offset, const void *buf, size_t len)
{
    (void)data;
    struct sink *s = sink;
    return s->h->snaps->write(s->w, offset, buf, len);
}

int host_snapshot_end(void *data, void *sink, bool ok)
{
    struct craft_host *h = data;
    struct sink *s = sink;
    int rc = 0;
    if (ok) {
        pthread_mutex_lock(&h->snap_lock);
        rc = h->snaps->write_finish(h->snaps->data, s->w);
        pthread_mutex_unlock(&h->snap_lock);
        if (rc == 0) {
            atomic_fetch_add(&h->metrics.snapshots_received, 1);
            /* The transport delivers the message next: let it through. */
            h->stored_snapshot.group = s->group;
            h->stored_snapshot.index = s->index;
            h->stored_snapshot.term = s->term;
        }
    } else {
        h->snaps->write_abort(s->w);
    }
    free(s);
    return rc;
}
