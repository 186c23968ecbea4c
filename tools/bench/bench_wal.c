/* craft-bench wal: what the write-ahead log gets out of the disk.
 *
 *   craft-bench wal [--json] [--dir DIR] [--seconds S] [--batch N] [--replay-mb M]
 *
 * 1. The disk's ceiling, measured in the same directory: a loop of 4 KiB
 *    pwrite + fdatasync (fsyncs per second), and sequential 1 MiB writes
 *    (MB/s).
 * 2. Appends through the batching writer (struct craft_wal_writer): for 16-byte
 *    and 1 KiB entries, with 1, 8 and 64 groups appending concurrently (one
 *    thread per group, each write of --batch entries, default 1, waiting until
 *    durable): entries per second, MB/s of entry data, fdatasyncs per second,
 *    writes per commit, write latency p50/p99, and the ratios to the ceiling.
 * 3. Replay on recovery: a WAL of --replay-mb MiB of 1 KiB entries (8 groups)
 *    reopened; MB/s of records replayed (the files are in the page cache).
 *
 * Each run lasts --seconds (default 1.5) so the whole mode takes a few tens
 * of seconds. DIR defaults to $TMPDIR or /tmp; pass a directory on the disk
 * you care about.
 */
#define _GNU_SOURCE /* mkdtemp, nftw */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <craft/wal.h>

#include "bench.h"

#define MODE "wal"

struct options {
    const char *dir;
    double seconds;
    uint64_t batch;
    uint64_t replay_mb;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *make_dir(const char *base, const char *tag)
{
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/craft-bench-%s-XXXXXX", base, tag);
    if (mkdtemp(path) == NULL) {
        fprintf(stderr, "bench wal: mkdtemp %s: %s\n", path, strerror(errno));
        free(path);
        return NULL;
    }
    return path;
}

/* ---- the disk's ceiling ---- */

struct raw_figures {
    double fsyncs_per_sec;
    double seq_mb_per_sec;
};

static int measure_raw(const struct options *o, struct raw_figures *out)
{
    char *dir = make_dir(o->dir, "raw");
    if (dir == NULL)
        return 1;
    char path[4200];
    snprintf(path, sizeof(path), "%s/raw", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "bench wal: open %s: %s\n", path, strerror(errno));
        free(dir);
        return 1;
    }
    static char block[1 << 20];
    memset(block, 0x5a, sizeof(block));
    /* Preallocate, as the WAL does, so the loop measures data syncs. */
    (void)posix_fallocate(fd, 0, 64 << 20);
    fdatasync(fd);
    uint64_t n = 0;
    double start = bench_now(), now = start;
    while (now - start < o->seconds) {
        if (pwrite(fd, block, 4096, (off_t)((n % 16384) * 4096)) != 4096 || fdatasync(fd) != 0) {
            fprintf(stderr, "bench wal: raw write: %s\n", strerror(errno));
            break;
        }
        n++;
        now = bench_now();
    }
    out->fsyncs_per_sec = (double)n / (now - start);

    /* Sequential: 1 MiB writes into a fresh file, one fdatasync at the end. */
    close(fd);
    unlink(path);
    fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    uint64_t bytes = 0;
    start = bench_now();
    now = start;
    while (now - start < o->seconds && bytes < (4ull << 30)) {
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block))
            break;
        bytes += sizeof(block);
        if ((bytes & ((64u << 20) - 1)) == 0)
            now = bench_now();
    }
    fdatasync(fd);
    now = bench_now();
    out->seq_mb_per_sec = (double)bytes / (1 << 20) / (now - start);
    close(fd);
    rm_tree(dir);
    free(dir);
    return 0;
}

/* ---- appends through the batching writer ---- */

struct worker {
    struct craft_wal_writer *writer;
    uint64_t group;
    uint32_t entry_bytes;
    uint64_t batch;
    double deadline;
    uint64_t entries, writes, failures;
    double *latencies;
    size_t n_lat, cap_lat;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t *data = malloc(w->entry_bytes);
    struct craft_entry *es = calloc(w->batch, sizeof(*es));
    memset(data, (int)w->group, w->entry_bytes);
    uint64_t next = 1;
    while (bench_now() < w->deadline) {
        for (uint64_t i = 0; i < w->batch; i++)
            es[i] = (struct craft_entry){
                .term = 1, .index = next + i, .len = w->entry_bytes, .data = data};
        double t0 = bench_now();
        int rc = craft_wal_writer_write(w->writer, w->group, es, w->batch, NULL);
        double t1 = bench_now();
        if (rc != 0) {
            w->failures++;
            break;
        }
        next += w->batch;
        w->entries += w->batch;
        w->writes++;
        if (w->n_lat == w->cap_lat) {
            w->cap_lat = w->cap_lat ? w->cap_lat * 2 : 1024;
            w->latencies = realloc(w->latencies, w->cap_lat * sizeof(double));
        }
        w->latencies[w->n_lat++] = (t1 - t0) * 1e6;
    }
    free(es);
    free(data);
    return NULL;
}

static int run_appends(const struct options *o, uint32_t entry_bytes, unsigned groups,
                       const struct raw_figures *raw)
{
    char *dir = make_dir(o->dir, "wal");
    if (dir == NULL)
        return 1;
    struct craft_wal_options wopts;
    struct craft_wal *wal;
    char err[512];
    craft_wal_options_init(&wopts);
    int rc = craft_wal_open(dir, &wopts, &wal, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "bench wal: open: %s\n", err);
        rm_tree(dir);
        free(dir);
        return 1;
    }
    struct craft_wal_writer *writer;
    craft_wal_writer_start(wal, &writer);
    struct craft_wal_stats before, after;
    craft_wal_stats(wal, &before);
    struct worker *ws = calloc(groups, sizeof(*ws));
    pthread_t *threads = calloc(groups, sizeof(*threads));
    double start = bench_now();
    for (unsigned i = 0; i < groups; i++) {
        ws[i] = (struct worker){.writer = writer,
                                .group = i + 1,
                                .entry_bytes = entry_bytes,
                                .batch = o->batch,
                                .deadline = start + o->seconds};
        pthread_create(&threads[i], NULL, worker_main, &ws[i]);
    }
    uint64_t entries = 0, writes = 0, failures = 0;
    size_t n_lat = 0;
    for (unsigned i = 0; i < groups; i++) {
        pthread_join(threads[i], NULL);
        entries += ws[i].entries;
        writes += ws[i].writes;
        failures += ws[i].failures;
        n_lat += ws[i].n_lat;
    }
    double elapsed = bench_now() - start;
    craft_wal_writer_stop(writer);
    craft_wal_stats(wal, &after);
    double *lat = malloc((n_lat + 1) * sizeof(double));
    size_t k = 0;
    for (unsigned i = 0; i < groups; i++) {
        memcpy(lat + k, ws[i].latencies, ws[i].n_lat * sizeof(double));
        k += ws[i].n_lat;
        free(ws[i].latencies);
    }
    if (failures > 0)
        fprintf(stderr, "bench wal: %llu writes failed: %s\n", (unsigned long long)failures,
                craft_wal_errmsg(wal));

    char case_name[64];
    snprintf(case_name, sizeof(case_name), "%uB x %u group%s", entry_bytes, groups,
             groups == 1 ? "" : "s");
    double fsyncs = (double)(after.fsyncs - before.fsyncs) / elapsed;
    double mb = (double)entries * entry_bytes / (1 << 20) / elapsed;
    bench_report_case(MODE, case_name, "entries/s", (double)entries / elapsed, "1/s");
    bench_report_case(MODE, case_name, "MB/s", mb, "MiB/s");
    bench_report_case(MODE, case_name, "fsyncs/s", fsyncs, "1/s");
    bench_report_case(MODE, case_name, "writes/commit",
                      after.commits > before.commits
                          ? (double)writes / (double)(after.commits - before.commits)
                          : 0,
                      "");
    bench_report_case(MODE, case_name, "p50 us", bench_percentile(lat, n_lat, 50), "us");
    bench_report_case(MODE, case_name, "p99 us", bench_percentile(lat, n_lat, 99), "us");
    bench_report_case(MODE, case_name, "fsyncs/raw",
                      raw->fsyncs_per_sec > 0 ? fsyncs / raw->fsyncs_per_sec : 0, "");
    bench_report_case(MODE, case_name, "MB/s/raw seq",
                      raw->seq_mb_per_sec > 0 ? mb / raw->seq_mb_per_sec : 0, "");
    free(lat);
    free(ws);
    free(threads);
    craft_wal_close(wal);
    rm_tree(dir);
    free(dir);
    return failures > 0;
}

/* ---- replay ---- */

static int run_replay(const struct options *o)
{
    char *dir = make_dir(o->dir, "replay");
    if (dir == NULL)
        return 1;
    struct craft_wal_options wopts;
    struct craft_wal *wal;
    char err[512];
    craft_wal_options_init(&wopts);
    wopts.no_sync = true; /* building the data set only */
    if (craft_wal_open(dir, &wopts, &wal, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench wal: open: %s\n", err);
        return 1;
    }
    struct craft_log_store *ls = craft_wal_log_store(wal);
    static uint8_t data[1024];
    struct craft_entry es[64];
    uint64_t next[9] = {0, 1, 1, 1, 1, 1, 1, 1, 1};
    uint64_t target = o->replay_mb << 20, written = 0;
    while (written < target) {
        for (uint64_t g = 1; g <= 8; g++) {
            for (int i = 0; i < 64; i++)
                es[i] = (struct craft_entry){
                    .term = 1, .index = next[g] + (uint64_t)i, .len = sizeof(data), .data = data};
            ls->append(ls->data, g, es, 64);
            next[g] += 64;
            written += 64 * sizeof(data);
        }
        craft_wal_commit(wal);
    }
    craft_wal_close(wal);
    double t0 = bench_now();
    craft_wal_options_init(&wopts);
    if (craft_wal_open(dir, &wopts, &wal, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench wal: reopen: %s\n", err);
        return 1;
    }
    double elapsed = bench_now() - t0;
    struct craft_wal_stats st;
    craft_wal_stats(wal, &st);
    bench_report_case(MODE, "replay", "MB/s", (double)st.replayed_bytes / (1 << 20) / elapsed,
                      "MiB/s");
    bench_report_case(MODE, "replay", "records/s", (double)st.replayed_records / elapsed, "1/s");
    bench_report_case(MODE, "replay", "entries/s", (double)st.live_entries / elapsed, "1/s");
    bench_report_case(MODE, "replay", "MiB replayed", (double)st.replayed_bytes / (1 << 20), "MiB");
    craft_wal_close(wal);
    rm_tree(dir);
    free(dir);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: craft-bench wal [--json] [--dir DIR] [--seconds S] [--batch N] "
                    "[--replay-mb M]\n");
}

int bench_wal_main(int argc, char **argv)
{
    struct options o = {.dir = NULL, .seconds = 1.5, .batch = 1, .replay_mb = 256};
    const char *tmp = getenv("TMPDIR");
    o.dir = tmp != NULL && tmp[0] ? tmp : "/tmp";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dir") == 0 && v != NULL) {
            o.dir = v;
            i++;
        } else if (strcmp(a, "--seconds") == 0 && v != NULL &&
                   bench_parse_double(v, 0.05, &o.seconds)) {
            i++;
        } else if (strcmp(a, "--batch") == 0 && v != NULL && bench_parse_u64(v, &o.batch) &&
                   o.batch > 0) {
            i++;
        } else if (strcmp(a, "--replay-mb") == 0 && v != NULL && bench_parse_u64(v, &o.replay_mb) &&
                   o.replay_mb > 0) {
            i++;
        } else {
            usage();
            return 2;
        }
    }
    struct raw_figures raw = {0, 0};
    fprintf(stderr, "bench wal: measuring the disk in %s\n", o.dir);
    if (measure_raw(&o, &raw) != 0)
        return 1;
    bench_report_case(MODE, "disk ceiling", "fsyncs/s", raw.fsyncs_per_sec, "1/s");
    bench_report_case(MODE, "disk ceiling", "MB/s", raw.seq_mb_per_sec, "MiB/s");
    bench_flush();
    int failed = 0;
    const uint32_t sizes[] = {16, 1024};
    const unsigned groups[] = {1, 8, 64};
    for (size_t s = 0; s < 2; s++)
        for (size_t g = 0; g < 3; g++) {
            fprintf(stderr, "bench wal: %u-byte entries, %u groups\n", sizes[s], groups[g]);
            failed |= run_appends(&o, sizes[s], groups[g], &raw);
        }
    bench_flush();
    fprintf(stderr, "bench wal: replay of %llu MiB\n", (unsigned long long)o.replay_mb);
    failed |= run_replay(&o);
    return failed ? 1 : 0;
}
