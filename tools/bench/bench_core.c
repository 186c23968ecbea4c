/* craft-bench core: the raft core's own cost, with no I/O.
 *
 * Each case runs a group of 1 or 3 voters in this process: every node is a
 * struct craft_raft over a struct craft_memstore, and a node's messages are
 * copied into the receiver's inbox and stepped into it on the receiver's turn.
 * A round proposes K entries at the leader, as a host batching its queue
 * would, then gives every node one turn: step its inbox, then one ready cycle
 * done as raft.h describes (the ready's messages are copied out before the
 * store is written, and delivered only after; persist; apply; advance). Every
 * node compacts its store periodically, keeping a tail behind its applied
 * index, so memory stays bounded however long a case runs.
 *
 * Figures per case: proposals committed per second and ns per proposal over
 * the whole loop (all nodes, store and harness included, as etcd raft's
 * BenchmarkOneNode measures), and heap allocations per proposal in steady
 * state (after a warm-up), counted separately inside craft_raft_* calls and
 * inside craft_memstore_* calls; the harness's own copies are not counted.
 * A case stops after --seconds (or --max-proposals), then drains the
 * pipeline; the count is of proposals committed and applied at the leader.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <craft/memstore.h>
#include <craft/raft.h>

#include "bench.h"

#define MODE "core"
#define MAX_VOTERS 3
#define MAX_LIST 8

/* Compaction: once a node has applied COMPACT_EVERY entries past its last
 * compaction, it records a snapshot at its applied index and compacts the
 * store up to COMPACT_KEEP entries behind it (a lagging follower can still be
 * caught up from the log). */
#define COMPACT_EVERY 4096
#define COMPACT_KEEP 4096

#define TICK_INTERVAL_NS 100000000u /* a host ticks every 100 ms */
#define SETUP_PASSES 1000           /* to elect a leader and commit its no-op */
#define DRAIN_PASSES 10000          /* to commit and apply what is in flight */
#define WARMUP_MIN_PROPOSALS 50000  /* enough for several compactions per node */
#define ROUND_SAMPLES_MAX (1u << 20)
#define ROUND_TIMING_MIN_BATCH 16 /* below this, a clock read per round would skew */

/* Allocation counter slots (bench.h). */
enum { SLOT_HARNESS = 0, SLOT_CORE = 1, SLOT_STORE = 2, N_SLOTS = 3 };

struct options {
    double seconds;
    uint64_t max_proposals;
    uint64_t repeat;
    bool breakdown;
    uint64_t voters[MAX_LIST], payloads[MAX_LIST], batches[MAX_LIST];
    size_t n_voters, n_payloads, n_batches;
};

/* A message copied out of a sender's ready; pointers are resolved on delivery
 * because the arrays may move while messages are added. */
struct queued {
    struct craft_message m;
    size_t first_entry;
    size_t snapshot; /* index in inbox.snapshots, SIZE_MAX for none */
};

struct inbox {
    struct queued *msgs;
    size_t n_msgs, cap_msgs;
    struct craft_entry *entries; /* data resolved on delivery from data_off */
    size_t *data_off;
    size_t n_entries, cap_entries;
    unsigned char *bytes;
    size_t n_bytes, cap_bytes;
    struct craft_snapshot_meta *snapshots;
    size_t n_snapshots, cap_snapshots;
};

struct node {
    uint64_t id;
    struct craft_memstore *store;
    struct craft_raft *raft;
    struct craft_conf_state conf; /* as of the last ready that changed it */
    uint64_t applied;             /* last index applied */
    uint64_t compacted_at;        /* applied index at the last compaction */
    uint64_t proposals_applied;   /* entries of this benchmark's payload size applied */
    struct inbox inbox;
};

struct run {
    const struct options *opt;
    uint32_t n_nodes, payload, batch;
    struct node nodes[MAX_VOTERS];
    unsigned char *data; /* the payload proposed, with a sequence number in front */
    uint64_t proposed;
    bool failed;
    char why[256];

    /* Time attribution (--breakdown): the slot entered last, and since when. */
    unsigned slot;
    uint64_t slot_since;
    uint64_t slot_ns[N_SLOTS];

    double *round_us;
    size_t n_rounds;
};

struct result {
    uint64_t proposals;
    double seconds;
    uint64_t allocs[N_SLOTS];
    uint64_t slot_ns[N_SLOTS];
    double round_p50_us, round_p99_us;
    bool has_rounds;
};

static void fail(struct run *run, const char *fmt, ...)
{
    va_list ap;

    if (run->failed) {
        return;
    }
    run->failed = true;
    va_start(ap, fmt);
    vsnprintf(run->why, sizeof(run->why), fmt, ap);
    va_end(ap);
}

/* Enters an accounting slot: allocations from here on count against it and,
 * with --breakdown, so does the time. */
static inline void enter(struct run *run, unsigned slot)
{
    if (run->opt->breakdown) {
        uint64_t now = bench_now_ns();
        run->slot_ns[run->slot] += now - run->slot_since;
        run->slot_since = now;
    }
    run->slot = slot;
    bench_alloc_set_slot(slot);
}

/* ------------------------------------------------------------------------
 * Inboxes: the in-process network.
 * ------------------------------------------------------------------------ */
static int grow(void **v, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap ? *cap : 16;
    void *p;

    if (need <= *cap) {
        return 0;
    }
    while (c < need) {
        c *= 2;
    }
    p = realloc(*v, c * size);
    if (p == NULL) {
        return CRAFT_ENOMEM;
    }
    *v = p;
    *cap = c;
    return 0;
}

static int reserve_entries(struct inbox *ib, size_t need)
{
    size_t cap = ib->cap_entries, cap_off = ib->cap_entries;

    if (grow((void **)&ib->entries, &cap, need, sizeof(*ib->entries)) != 0 ||
        grow((void **)&ib->data_off, &cap_off, need, sizeof(*ib->data_off)) != 0) {
        return CRAFT_ENOMEM;
    }
    ib->cap_entries = cap;
    return 0;
}

/* Copies m, its entries and their bytes, and its snapshot metadata. */
static int inbox_push(struct inbox *ib, const struct craft_message *m)
{
    struct queued *q;
    size_t bytes = 0, i;

    for (i = 0; i < m->n_entries; i++) {
        bytes += m->entries[i].len;
    }
    if (grow((void **)&ib->msgs, &ib->cap_msgs, ib->n_msgs + 1, sizeof(*ib->msgs)) != 0 ||
        reserve_entries(ib, ib->n_entries + m->n_entries) != 0 ||
        grow((void **)&ib->bytes, &ib->cap_bytes, ib->n_bytes + bytes, 1) != 0 ||
        (m->snapshot != NULL && grow((void **)&ib->snapshots, &ib->cap_snapshots,
                                     ib->n_snapshots + 1, sizeof(*ib->snapshots)) != 0)) {
        return CRAFT_ENOMEM;
    }
    q = &ib->msgs[ib->n_msgs++];
    q->m = *m;
    q->m.entries = NULL;
    q->m.snapshot = NULL;
    q->first_entry = ib->n_entries;
    q->snapshot = SIZE_MAX;
    for (i = 0; i < m->n_entries; i++) {
        const struct craft_entry *e = &m->entries[i];
        ib->entries[ib->n_entries] = *e;
        ib->entries[ib->n_entries].data = NULL;
        ib->data_off[ib->n_entries] = ib->n_bytes;
        if (e->len > 0) {
            memcpy(ib->bytes + ib->n_bytes, e->data, e->len);
            ib->n_bytes += e->len;
        }
        ib->n_entries++;
    }
    if (m->snapshot != NULL) {
        q->snapshot = ib->n_snapshots;
        ib->snapshots[ib->n_snapshots++] = *m->snapshot;
    }
    return 0;
}

static void inbox_free(struct inbox *ib)
{
    free(ib->msgs);
    free(ib->entries);
    free(ib->data_off);
    free(ib->bytes);
    free(ib->snapshots);
    memset(ib, 0, sizeof(*ib));
}

static struct node *node_by_id(struct run *run, uint64_t id)
{
    return id >= 1 && id <= run->n_nodes ? &run->nodes[id - 1] : NULL;
}

/* Steps every message waiting for n into it. */
static void deliver(struct run *run, struct node *n)
{
    struct inbox *ib = &n->inbox;
    size_t i, j;

    for (i = 0; i < ib->n_msgs && !run->failed; i++) {
        struct queued *q = &ib->msgs[i];
        int rc;
        if (q->m.n_entries > 0) {
            q->m.entries = ib->entries + q->first_entry;
            for (j = q->first_entry; j < q->first_entry + q->m.n_entries; j++) {
                ib->entries[j].data = ib->entries[j].len > 0 ? ib->bytes + ib->data_off[j] : NULL;
            }
        }
        q->m.snapshot = q->snapshot != SIZE_MAX ? &ib->snapshots[q->snapshot] : NULL;
        enter(run, SLOT_CORE);
        rc = craft_raft_step(n->raft, &q->m);
        enter(run, SLOT_HARNESS);
        if (rc != 0) {
            fail(run, "node %" PRIu64 ": step %s: %s", n->id, craft_message_type_name(q->m.type),
                 craft_strerror(rc));
        }
    }
    ib->n_msgs = ib->n_entries = ib->n_bytes = ib->n_snapshots = 0;
}

/* ------------------------------------------------------------------------
 * The ready cycle (raft.h).
 * ------------------------------------------------------------------------ */
static void maybe_compact(struct run *run, struct node *n)
{
    int rc;

    if (n->applied - n->compacted_at < COMPACT_EVERY || n->applied <= COMPACT_KEEP) {
        return;
    }
    /* A host compacts only what a snapshot of its state machine covers. */
    rc = craft_memstore_create_snapshot(n->store, n->applied, &n->conf);
    if (rc == 0) {
        rc = craft_memstore_compact(n->store, n->applied - COMPACT_KEEP);
    }
    if (rc != 0) {
        fail(run, "node %" PRIu64 ": compact: %s", n->id, craft_strerror(rc));
        return;
    }
    n->compacted_at = n->applied;
}

static void apply(struct run *run, struct node *n, const struct craft_ready *rd)
{
    size_t i;

    if (rd->snapshot != NULL && rd->snapshot->index > n->applied) {
        n->applied = rd->snapshot->index;
    }
    for (i = 0; i < rd->n_committed; i++) {
        const struct craft_entry *e = &rd->committed[i];
        if (e->index != n->applied + 1) {
            fail(run, "node %" PRIu64 ": applied %" PRIu64 " after %" PRIu64, n->id, e->index,
                 n->applied);
            return;
        }
        n->applied = e->index;
        if (e->type == CRAFT_ENTRY_NORMAL && e->len == run->payload) {
            n->proposals_applied++;
        }
    }
}

static void ready_cycle(struct run *run, struct node *n)
{
    struct craft_ready rd;
    size_t i;
    int rc;

    enter(run, SLOT_CORE);
    if (!craft_raft_has_ready(n->raft)) {
        enter(run, SLOT_HARNESS);
        return;
    }
    rc = craft_raft_ready(n->raft, &rd);
    enter(run, SLOT_HARNESS);
    if (rc != 0) {
        fail(run, "node %" PRIu64 ": ready: %s", n->id, craft_strerror(rc));
        return;
    }
    /* Copy the messages out before the store is written: a message's entries
     * may point into the store (struct craft_storage). They are delivered on
     * the receiver's next turn, after this node has persisted, so a
     * follower's acknowledgements never run ahead of its log. */
    for (i = 0; i < rd.n_messages; i++) {
        struct node *to = node_by_id(run, rd.messages[i].to);
        if (to == NULL || to == n) {
            fail(run, "node %" PRIu64 ": message to %" PRIu64, n->id, rd.messages[i].to);
            return;
        }
        if (inbox_push(&to->inbox, &rd.messages[i]) != 0) {
            fail(run, "out of memory copying messages");
            return;
        }
    }
    /* Persist. Memory needs no fsync, whatever must_sync says. */
    enter(run, SLOT_STORE);
    rc = 0;
    if (rd.snapshot != NULL) {
        rc = craft_memstore_apply_snapshot(n->store, rd.snapshot);
    }
    if (rc == 0 && rd.n_entries > 0) {
        rc = craft_memstore_append(n->store, rd.entries, rd.n_entries);
    }
    if (rd.has_hard_state) {
        craft_memstore_set_hard_state(n->store, &rd.hard_state);
    }
    enter(run, SLOT_HARNESS);
    if (rc != 0) {
        fail(run, "node %" PRIu64 ": persist: %s", n->id, craft_strerror(rc));
        return;
    }
    if (rd.has_conf_state) {
        n->conf = rd.conf_state;
    }
    apply(run, n, &rd);
    enter(run, SLOT_CORE);
    rc = craft_raft_advance(n->raft, &rd);
    enter(run, SLOT_STORE);
    maybe_compact(run, n);
    enter(run, SLOT_HARNESS);
    if (rc != 0) {
        fail(run, "node %" PRIu64 ": advance: %s", n->id, craft_strerror(rc));
    }
}

/* Every node takes one turn; returns whether any had work. */
static bool pass(struct run *run)
{
    bool busy = false;
    uint32_t i;

    for (i = 0; i < run->n_nodes && !run->failed; i++) {
        struct node *n = &run->nodes[i];
        busy = busy || n->inbox.n_msgs > 0 || craft_raft_has_ready(n->raft);
        deliver(run, n);
        ready_cycle(run, n);
    }
    return busy;
}

/* Passes until nothing is in flight and no node has a ready. */
static void drain(struct run *run, int limit)
{
    int i;

    for (i = 0; i < limit && !run->failed; i++) {
        if (!pass(run)) {
            return;
        }
    }
    fail(run, "still busy after %d passes", limit);
}

static void tick_all(struct run *run)
{
    uint32_t i;

    enter(run, SLOT_CORE);
    for (i = 0; i < run->n_nodes; i++) {
        craft_raft_tick(run->nodes[i].raft);
    }
    enter(run, SLOT_HARNESS);
}

static void propose_batch(struct run *run)
{
    struct craft_raft *leader = run->nodes[0].raft;
    uint32_t i;
    int rc = 0;

    enter(run, SLOT_CORE);
    for (i = 0; i < run->batch && rc == 0; i++) {
        uint64_t seq = run->proposed + i;
        if (run->payload >= sizeof(seq)) {
            memcpy(run->data, &seq, sizeof(seq));
        }
        rc = craft_raft_propose(leader, run->data, run->payload);
    }
    enter(run, SLOT_HARNESS);
    run->proposed += i - (rc != 0);
    if (rc != 0) {
        fail(run, "propose: %s", craft_strerror(rc));
    }
}

/* ------------------------------------------------------------------------
 * A case.
 * ------------------------------------------------------------------------ */
static int setup(struct run *run)
{
    struct craft_conf_state cs;
    uint32_t i;

    memset(&cs, 0, sizeof(cs));
    for (i = 0; i < run->n_nodes; i++) {
        cs.voters[cs.n_voters++] = i + 1;
    }
    for (i = 0; i < run->n_nodes; i++) {
        struct node *n = &run->nodes[i];
        struct craft_config cfg;
        const char *why = NULL;
        int rc;

        n->id = i + 1;
        n->conf = cs;
        rc = craft_memstore_create(&n->store);
        if (rc != 0) {
            fail(run, "memstore: %s", craft_strerror(rc));
            return -1;
        }
        craft_memstore_set_conf_state(n->store, &cs);
        craft_config_default(&cfg);
        cfg.id = n->id;
        cfg.seed = 0x5eed + i;
        cfg.storage = craft_memstore_storage(n->store);
        rc = craft_raft_create(&cfg, &n->raft, &why);
        if (rc != 0) {
            fail(run, "create node %" PRIu64 ": %s%s%s", n->id, craft_strerror(rc), why ? ": " : "",
                 why ? why : "");
            return -1;
        }
    }
    craft_raft_campaign(run->nodes[0].raft);
    drain(run, SETUP_PASSES);
    if (!run->failed && craft_raft_role(run->nodes[0].raft) != CRAFT_ROLE_LEADER) {
        fail(run, "node 1 did not become leader");
    }
    /* The leader's no-op is applied everywhere by now; with --payload 0 it
     * would count as a proposal. */
    for (i = 0; i < run->n_nodes; i++) {
        run->nodes[i].proposals_applied = 0;
    }
    return run->failed ? -1 : 0;
}

static void teardown(struct run *run)
{
    uint32_t i;

    for (i = 0; i < run->n_nodes; i++) {
        craft_raft_destroy(run->nodes[i].raft);
        craft_memstore_destroy(run->nodes[i].store);
        inbox_free(&run->nodes[i].inbox);
    }
    free(run->data);
    free(run->round_us);
}

/* Rounds until the deadline (or the proposal budget); the clock is read every
 * round when rounds are long enough to sample, every 64 rounds otherwise. */
static void rounds(struct run *run, uint64_t deadline_ns, uint64_t min_proposals, bool sample)
{
    bool every_round = run->batch >= ROUND_TIMING_MIN_BATCH;
    uint64_t last = bench_now_ns(), next_tick = last + TICK_INTERVAL_NS;
    uint64_t n = 0;

    while (!run->failed) {
        propose_batch(run);
        pass(run);
        n++;
        if (every_round || (n & 63) == 0) {
            uint64_t now = bench_now_ns();
            if (sample && every_round && run->n_rounds < ROUND_SAMPLES_MAX) {
                run->round_us[run->n_rounds++] = (double)(now - last) / 1e3;
            }
            last = now;
            if (now >= next_tick) {
                tick_all(run);
                next_tick = now + TICK_INTERVAL_NS;
            }
            if (now >= deadline_ns && run->proposed >= min_proposals) {
                break;
            }
        }
        if (run->proposed >= run->opt->max_proposals) {
            break;
        }
    }
}

static int run_case(const struct options *opt, uint32_t voters, uint32_t payload, uint32_t batch,
                    struct result *res)
{
    struct run run;
    uint64_t start_applied, t0, t1, warm_ns;
    uint32_t i;
    int rc = -1;

    memset(&run, 0, sizeof(run));
    memset(res, 0, sizeof(*res));
    run.opt = opt;
    run.n_nodes = voters;
    run.payload = payload;
    run.batch = batch;
    run.data = calloc(1, payload > 0 ? payload : 1);
    run.round_us = malloc(ROUND_SAMPLES_MAX * sizeof(*run.round_us));
    if (run.data == NULL || run.round_us == NULL) {
        fail(&run, "out of memory");
        goto out_teardown;
    }
    for (i = 0; i < payload; i++) {
        run.data[i] = (unsigned char)(i * 31 + 7);
    }
    if (setup(&run) != 0) {
        goto out_teardown;
    }

    /* Warm-up: buffers reach their steady sizes, compaction has run, and
     * a tick has made the leader send heartbeats besides its appends. */
    tick_all(&run);
    warm_ns = (uint64_t)(opt->seconds * 0.2e9);
    if (warm_ns > 500000000u) {
        warm_ns = 500000000u;
    }
    rounds(&run, bench_now_ns() + warm_ns, run.proposed + WARMUP_MIN_PROPOSALS, false);
    if (run.failed) {
        goto out_teardown;
    }

    start_applied = run.nodes[0].proposals_applied;
    run.slot = SLOT_HARNESS;
    run.slot_since = bench_now_ns();
    memset(run.slot_ns, 0, sizeof(run.slot_ns));
    bench_alloc_start();
    t0 = bench_now_ns();
    rounds(&run, t0 + (uint64_t)(opt->seconds * 1e9), 0, true);
    drain(&run, DRAIN_PASSES);
    t1 = bench_now_ns();
    bench_alloc_stop();
    enter(&run, SLOT_HARNESS);
    if (run.failed) {
        goto out_teardown;
    }

    /* Every proposal committed and applied, identically, everywhere. */
    for (i = 0; i < run.n_nodes; i++) {
        if (run.nodes[i].proposals_applied != run.proposed ||
            run.nodes[i].applied != run.nodes[0].applied) {
            fail(&run,
                 "node %u applied %" PRIu64 " proposals up to index %" PRIu64 ", expected %" PRIu64
                 " up to %" PRIu64,
                 i + 1, run.nodes[i].proposals_applied, run.nodes[i].applied, run.proposed,
                 run.nodes[0].applied);
            goto out_teardown;
        }
    }
    if (craft_raft_role(run.nodes[0].raft) != CRAFT_ROLE_LEADER) {
        fail(&run, "node 1 lost leadership");
        goto out_teardown;
    }
    res->proposals = run.nodes[0].proposals_applied - start_applied;
    res->seconds = (double)(t1 - t0) / 1e9;
    for (i = 0; i < N_SLOTS; i++) {
        res->allocs[i] = bench_alloc_counts[i];
        res->slot_ns[i] = run.slot_ns[i];
    }
    if (run.n_rounds > 0) {
        res->has_rounds = true;
        res->round_p50_us = bench_percentile(run.round_us, run.n_rounds, 50);
        res->round_p99_us = bench_percentile(run.round_us, run.n_rounds, 99);
    }
    rc = 0;

out_teardown:
    if (run.failed) {
        fprintf(stderr, "craft-bench core: voters=%u payload=%u batch=%u: %s\n", voters, payload,
                batch, run.why);
    }
    teardown(&run);
    return rc;
}

static void report(const struct options *opt, const char *case_name, const struct result *res)
{
    double n = res->proposals > 0 ? (double)res->proposals : 1;

    bench_report_case(MODE, case_name, "proposals_per_sec", (double)res->proposals / res->seconds,
                      "proposals/s");
    bench_report_case(MODE, case_name, "ns_per_proposal", res->seconds * 1e9 / n, "ns");
    if (bench_alloc_available()) {
        bench_report_case(MODE, case_name, "core_allocs_per_proposal",
                          (double)res->allocs[SLOT_CORE] / n, "allocs");
        bench_report_case(MODE, case_name, "store_allocs_per_proposal",
                          (double)res->allocs[SLOT_STORE] / n, "allocs");
    }
    if (res->has_rounds) {
        bench_report_case(MODE, case_name, "round_p50_us", res->round_p50_us, "us");
        bench_report_case(MODE, case_name, "round_p99_us", res->round_p99_us, "us");
    }
    if (opt->breakdown) {
        bench_report_case(MODE, case_name, "core_ns_per_proposal",
                          (double)res->slot_ns[SLOT_CORE] / n, "ns");
        bench_report_case(MODE, case_name, "store_ns_per_proposal",
                          (double)res->slot_ns[SLOT_STORE] / n, "ns");
        bench_report_case(MODE, case_name, "harness_ns_per_proposal",
                          (double)res->slot_ns[SLOT_HARNESS] / n, "ns");
    }
    bench_report_case(MODE, case_name, "proposals", (double)res->proposals, "count");
}

/* ------------------------------------------------------------------------
 * Command line.
 * ------------------------------------------------------------------------ */
static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: craft-bench core [--json] [--seconds S] [--voters LIST] [--payload LIST]\n"
        "                        [--batch LIST] [--repeat N] [--max-proposals N] [--breakdown]\n\n"
        "Proposals committed per second through a raft group in this process (no I/O,\n"
        "memstore storage), ns per proposal and heap allocations per proposal in steady\n"
        "state. A round proposes K (--batch) entries at the leader, then runs one ready\n"
        "cycle on every node. LISTs are comma separated.\n\n"
        "  --seconds S        measured time per case (default 2), after a warm-up\n"
        "  --voters LIST      group sizes, 1 to %d (default 1,3)\n"
        "  --payload LIST     proposal sizes in bytes (default 16,1024)\n"
        "  --batch LIST       proposals per round, K (default 1,64,256)\n"
        "  --repeat N         run each case N times, report the fastest run (default 1):\n"
        "                     on a shared machine, the run least disturbed by others\n"
        "  --max-proposals N  stop a case after N proposals (default 100000000)\n"
        "  --breakdown        also split ns per proposal into core, store and harness\n"
        "                     (reads the clock around every call: slows the loop)\n",
        MAX_VOTERS);
}

static bool parse_list(const char *s, uint64_t min, uint64_t max, uint64_t *out, size_t *n)
{
    char buf[128], *save = NULL, *tok;

    if (s == NULL || strlen(s) >= sizeof(buf)) {
        return false;
    }
    strcpy(buf, s);
    *n = 0;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (*n == MAX_LIST || !bench_parse_u64(tok, &v) || v < min || v > max) {
            return false;
        }
        out[(*n)++] = v;
    }
    return *n > 0;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
    int i;

    memset(opt, 0, sizeof(*opt));
    opt->seconds = 2;
    opt->max_proposals = 100000000u;
    opt->repeat = 1;
    parse_list("1,3", 1, MAX_VOTERS, opt->voters, &opt->n_voters);
    parse_list("16,1024", 0, UINT32_MAX, opt->payloads, &opt->n_payloads);
    parse_list("1,64,256", 1, 1u << 20, opt->batches, &opt->n_batches);
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(arg, "--breakdown") == 0) {
            opt->breakdown = true;
            continue;
        } else if (strcmp(arg, "--seconds") == 0) {
            ok = bench_parse_double(val, 0, &opt->seconds) && opt->seconds <= 3600;
        } else if (strcmp(arg, "--repeat") == 0) {
            ok = bench_parse_u64(val, &opt->repeat) && opt->repeat >= 1 && opt->repeat <= 100;
        } else if (strcmp(arg, "--max-proposals") == 0) {
            ok = bench_parse_u64(val, &opt->max_proposals) && opt->max_proposals > 0;
        } else if (strcmp(arg, "--voters") == 0) {
            ok = parse_list(val, 1, MAX_VOTERS, opt->voters, &opt->n_voters);
        } else if (strcmp(arg, "--payload") == 0) {
            /* Larger than 1 MiB would need max_size_per_msg raised too. */
            ok = parse_list(val, 0, 1u << 20, opt->payloads, &opt->n_payloads);
        } else if (strcmp(arg, "--batch") == 0) {
            ok = parse_list(val, 1, 1u << 20, opt->batches, &opt->n_batches);
        } else {
            fprintf(stderr, "craft-bench core: unknown option '%s'\n", arg);
            usage(stderr);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "craft-bench core: bad value for %s: '%s'\n", arg, val ? val : "");
            return -1;
        }
        i++;
    }
    return 0;
}

int bench_core_main(int argc, char **argv)
{
    struct options opt;
    bool progress = isatty(STDERR_FILENO) != 0;
    size_t v, p, b;
    int rc = parse_options(argc, argv, &opt);

    if (rc != 0) {
        return rc < 0 ? 2 : 0;
    }
    if (!bench_alloc_available()) {
        fprintf(stderr, "craft-bench core: allocation counting is off in sanitizer builds\n");
    }
    for (v = 0; v < opt.n_voters; v++) {
        for (p = 0; p < opt.n_payloads; p++) {
            for (b = 0; b < opt.n_batches; b++) {
                struct result res, best;
                uint64_t k;
                char name[96];

                memset(&best, 0, sizeof(best));
                snprintf(name, sizeof(name),
                         "voters=%" PRIu64 " payload=%" PRIu64 " batch=%" PRIu64, opt.voters[v],
                         opt.payloads[p], opt.batches[b]);
                if (progress) {
                    fprintf(stderr, "core: %s ...\n", name);
                }
                for (k = 0; k < opt.repeat; k++) {
                    if (run_case(&opt, (uint32_t)opt.voters[v], (uint32_t)opt.payloads[p],
                                 (uint32_t)opt.batches[b], &res) != 0) {
                        return 1;
                    }
                    if (k == 0 || (double)res.proposals / res.seconds >
                                      (double)best.proposals / best.seconds) {
                        best = res;
                    }
                }
                report(&opt, name, &best);
            }
        }
    }
    return 0;
}
