/* craftctl recover (recover.h): rewrites a stopped node's membership to the
 * surviving members so that it can restart and elect with them alone: the
 * answer to permanent quorum loss that etcd gives with --force-new-cluster
 * and dragonboat with ImportSnapshot.
 *
 * The node restarts from its newest snapshot with the snapshot's membership
 * and re-applies membership changes from the log after it (raft.h, struct
 * craft_storage). So the recovery writes a new snapshot at the same index
 * and term, with the same state machine data and the new membership,
 * records it in the log (save_snapshot), and refuses when an entry after the
 * snapshot changes the membership, since replaying it would bring the dead
 * members back; --truncate-after-snapshot drops that tail instead, which
 * may lose acknowledged writes. Order: snapshot file first, then the log's
 * record of it, then one commit, as snapshot.h prescribes; an interrupted
 * run is repaired by running it again. */
#define _POSIX_C_SOURCE 200809L
#include "recover.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "craft/raft.h"
#include "craft/snapshot.h"
#include "craft/wal.h"

#define CHUNK (64u * 1024u)

struct stores {
    struct craft_wal *wal;
    struct craft_log_store *ls;
    struct craft_snapshot_store *snaps;
};

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Opens the WAL and snapshot store of data_dir without creating either. */
static int open_stores(const char *data_dir, struct stores *s)
{
    char wal_dir[4096], snap_dir[4096], err[512];
    memset(s, 0, sizeof(*s));
    snprintf(wal_dir, sizeof(wal_dir), "%s/wal", data_dir);
    snprintf(snap_dir, sizeof(snap_dir), "%s/snapshots", data_dir);
    if (!is_dir(wal_dir) || !is_dir(snap_dir)) {
        fprintf(stderr, "craftctl: %s holds no craft data (no wal/ and snapshots/ in it)\n",
                data_dir);
        return -1;
    }
    int rc = craft_wal_open(wal_dir, NULL, &s->wal, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craftctl: WAL %s: %s\n", wal_dir, err);
        return -1;
    }
    s->ls = craft_wal_log_store(s->wal);
    rc = craft_snapshot_store_open(snap_dir, NULL, &s->snaps, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craftctl: snapshots %s: %s\n", snap_dir, err);
        goto err_close_wal;
    }
    /* What the host does on start: the log's snapshot record agrees with the
     * newest valid snapshot file. */
    rc = craft_storage_reconcile(s->ls, s->snaps, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "craftctl: %s: %s\n", data_dir, err);
        goto err_close_snaps;
    }
    return 0;
err_close_snaps:
    craft_snapshot_store_close(s->snaps);
err_close_wal:
    craft_wal_close(s->wal);
    return -1;
}

static void close_stores(struct stores *s)
{
    craft_snapshot_store_close(s->snaps);
    craft_wal_close(s->wal);
}

static void print_ids(const char *label, const uint64_t *ids, uint32_t n)
{
    if (n == 0)
        return;
    printf(" %s ", label);
    for (uint32_t i = 0; i < n; i++)
        printf("%s%" PRIu64, i ? "," : "", ids[i]);
}

static void print_conf(const struct craft_conf_state *cs)
{
    print_ids("voters", cs->voters, cs->n_voters);
    print_ids("outgoing-voters", cs->voters_outgoing, cs->n_voters_outgoing);
    print_ids("non-voting", cs->learners, cs->n_learners);
    print_ids("non-voting-next", cs->learners_next, cs->n_learners_next);
    print_ids("witnesses", cs->witnesses, cs->n_witnesses);
    printf("\n");
}

static const char *cc_name(uint32_t type)
{
    switch (type) {
    case CRAFT_CC_ADD_VOTER:
        return "add-voter";
    case CRAFT_CC_ADD_NON_VOTING:
        return "add-non-voting";
    case CRAFT_CC_ADD_WITNESS:
        return "add-witness";
    case CRAFT_CC_REMOVE_NODE:
        return "remove";
    default:
        return "unknown";
    }
}

/* Counts (and, if print, lists) the membership changes in the log after
 * index from; -1 if the log cannot be read. */
static long conf_changes_after(struct stores *s, uint64_t group, uint64_t from, FILE *print)
{
    struct craft_entry ents[256];
    uint64_t last = s->ls->last_index(s->ls->data, group);
    uint64_t lo = from + 1;
    uint64_t first = s->ls->first_index(s->ls->data, group);
    long count = 0;
    if (lo < first)
        lo = first;
    while (lo <= last) {
        size_t n = 0;
        int rc = s->ls->entries(s->ls->data, group, lo, last + 1, UINT64_MAX, ents,
                                sizeof(ents) / sizeof(ents[0]), &n);
        if (rc != 0 || n == 0) {
            fprintf(stderr, "craftctl: reading entries from %" PRIu64 ": %s\n", lo,
                    craft_storage_strerror(rc));
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            if (ents[i].type != CRAFT_ENTRY_CONF_CHANGE)
                continue;
            count++;
            if (print == NULL)
                continue;
            struct craft_conf_change cc;
            fprintf(print, "  entry %" PRIu64 " (term %" PRIu64 "):", ents[i].index, ents[i].term);
            if (craft_conf_change_decode(&cc, ents[i].data, ents[i].len) != 0) {
                fprintf(print, " undecodable\n");
                continue;
            }
            if (cc.n_changes == 0)
                fprintf(print, " leave-joint");
            for (uint32_t k = 0; k < cc.n_changes; k++)
                fprintf(print, " %s %" PRIu64, cc_name(cc.changes[k].type), cc.changes[k].node_id);
            fprintf(print, "\n");
        }
        lo += n;
    }
    return count;
}

static bool group_held(struct stores *s, uint64_t group)
{
    uint64_t ids[256];
    size_t n = 0;
    if (s->ls->groups(s->ls->data, ids, sizeof(ids) / sizeof(ids[0]), &n) != 0)
        return false;
    for (size_t i = 0; i < n && i < sizeof(ids) / sizeof(ids[0]); i++)
        if (ids[i] == group)
            return true;
    return false;
}

static int inspect(struct stores *s, const struct ctl_recover_opts *o)
{
    uint64_t ids[256];
    size_t n = 0;
    (void)s->ls->groups(s->ls->data, ids, sizeof(ids) / sizeof(ids[0]), &n);
    printf("data:        %s\ngroups:     ", o->data_dir);
    for (size_t i = 0; i < n && i < sizeof(ids) / sizeof(ids[0]); i++)
        printf(" %" PRIu64, ids[i]);
    printf("\ngroup:       %" PRIu64 "\n", o->group);
    if (!group_held(s, o->group)) {
        fprintf(stderr, "craftctl: group %" PRIu64 " is not in this WAL\n", o->group);
        return 1;
    }
    struct craft_snapshot_meta meta;
    struct craft_hard_state hs;
    struct craft_conf_state cs;
    memset(&meta, 0, sizeof(meta));
    (void)s->ls->snapshot(s->ls->data, o->group, &meta);
    (void)s->ls->initial_state(s->ls->data, o->group, &hs, &cs);
    uint64_t first = s->ls->first_index(s->ls->data, o->group);
    uint64_t last = s->ls->last_index(s->ls->data, o->group);
    uint64_t last_term = 0;
    (void)s->ls->term(s->ls->data, o->group, last, &last_term);
    printf("snapshot:    index %" PRIu64 " term %" PRIu64 "\n", meta.index, meta.term);
    printf("snapshot members:");
    print_conf(&meta.conf);
    struct craft_snapshot_reader *r = NULL;
    if (craft_snapshot_open_newest(s->snaps, o->group, &r) == 0) {
        printf("snapshot file: index %" PRIu64 " term %" PRIu64 ", %" PRIu64 " data bytes\n",
               craft_snapshot_reader_meta(r)->index, craft_snapshot_reader_meta(r)->term,
               craft_snapshot_reader_size(r));
        craft_snapshot_reader_close(r);
    } else {
        printf("snapshot file: none\n");
    }
    printf("log:         first index %" PRIu64 " last index %" PRIu64 " (term %" PRIu64 ")\n",
           first, last, last_term);
    printf("hard state:  term %" PRIu64 " vote %" PRIu64 " commit %" PRIu64 "\n", hs.term, hs.vote,
           hs.commit);
    printf("conf changes after the snapshot:\n");
    long count = conf_changes_after(s, o->group, meta.index, stdout);
    if (count == 0)
        printf("  none\n");
    return count < 0 ? 1 : 0;
}

static bool listed(const uint64_t *ids, uint32_t n, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

/* The new membership: every survivor a voter (a witness stays a witness). */
static int new_conf(const struct ctl_recover_opts *o, const struct craft_conf_state *old,
                    struct craft_conf_state *cs)
{
    memset(cs, 0, sizeof(*cs));
    if (!listed(o->members, o->n_members, o->node_id)) {
        fprintf(stderr, "craftctl: --members must include this node (--id %" PRIu64 ")\n",
                o->node_id);
        return -1;
    }
    for (uint32_t i = 0; i < o->n_members; i++) {
        uint64_t id = o->members[i];
        if (listed(o->members, i, id)) {
            fprintf(stderr, "craftctl: member %" PRIu64 " is listed twice\n", id);
            return -1;
        }
        if (!craft_conf_state_contains(old, id)) {
            fprintf(stderr,
                    "craftctl: node %" PRIu64 " is not a member of the group as of"
                    " the snapshot: add new nodes after the recovery\n",
                    id);
            return -1;
        }
        if (craft_conf_state_is_witness(old, id)) {
            if (id == o->node_id) {
                fprintf(stderr,
                        "craftctl: node %" PRIu64 " is a witness: it holds no data to"
                        " recover from; run recover on a voter\n",
                        id);
                return -1;
            }
            cs->witnesses[cs->n_witnesses++] = id;
        }
        cs->voters[cs->n_voters++] = id;
    }
    return 0;
}

/* Writes a snapshot with meta and the data of r (same index and term: it
 * replaces r's file atomically, by rename). */
static int rewrite_snapshot(struct stores *s, uint64_t group,
                            const struct craft_snapshot_meta *meta, struct craft_snapshot_reader *r)
{
    struct craft_snapshot_writer *w = NULL;
    char *buf = malloc(CHUNK);
    int rc = buf == NULL ? CRAFT_ENOMEM : craft_snapshot_write_begin(s->snaps, group, meta, &w);
    if (rc != 0)
        goto out_free;
    uint64_t offset = 0;
    for (;;) {
        size_t n = 0;
        rc = craft_snapshot_read(r, buf, CHUNK, &n);
        if (rc != 0 || n == 0)
            break;
        rc = craft_snapshot_write(w, offset, buf, n);
        if (rc != 0)
            break;
        offset += n;
    }
    if (rc == 0 && offset != craft_snapshot_reader_size(r))
        rc = CRAFT_ECORRUPT;
    if (rc != 0) {
        craft_snapshot_write_abort(w);
        goto out_free;
    }
    rc = craft_snapshot_write_finish(w);
out_free:
    free(buf);
    return rc;
}

/* craftkv's state machine (data_dir/kv) may hold entries after the
 * snapshot that the truncation just dropped; it is rebuilt from the snapshot
 * once moved aside (kept, not deleted). */
static void set_kv_aside(const char *data_dir)
{
    char kv[4096], aside[4200];
    snprintf(kv, sizeof(kv), "%s/kv", data_dir);
    if (!is_dir(kv))
        return;
    snprintf(aside, sizeof(aside), "%s/kv.before-recover.%lld", data_dir, (long long)time(NULL));
    if (rename(kv, aside) == 0)
        printf("moved craftkv's store %s aside to %s: it may hold writes after the snapshot;\n"
               "craftkv rebuilds it from the snapshot on start\n",
               kv, aside);
    else
        fprintf(stderr,
                "craftctl: WARNING: could not move %s aside (%s): move it away by hand "
                "before starting the node\n",
                kv, strerror(errno));
}

static int recover(struct stores *s, const struct ctl_recover_opts *o)
{
    struct craft_snapshot_reader *r = NULL;
    struct craft_snapshot_meta meta;
    struct craft_hard_state hs;
    if (!group_held(s, o->group)) {
        fprintf(stderr, "craftctl: group %" PRIu64 " is not in this WAL\n", o->group);
        return 1;
    }
    int rc = craft_snapshot_open_newest(s->snaps, o->group, &r);
    if (rc != 0) {
        fprintf(stderr, "craftctl: no valid snapshot of group %" PRIu64 ": %s\n", o->group,
                craft_storage_strerror(rc));
        return 1;
    }
    meta = *craft_snapshot_reader_meta(r);
    struct craft_snapshot_meta recorded;
    memset(&recorded, 0, sizeof(recorded));
    (void)s->ls->snapshot(s->ls->data, o->group, &recorded);
    uint64_t last = s->ls->last_index(s->ls->data, o->group);
    int code = 1;
    if (recorded.index != meta.index || recorded.term != meta.term) {
        fprintf(stderr,
                "craftctl: the log records snapshot %" PRIu64 "/%" PRIu64
                " but the newest file is %" PRIu64 "/%" PRIu64 ": refusing\n",
                recorded.index, recorded.term, meta.index, meta.term);
        goto out_close;
    }
    struct craft_snapshot_meta fresh = meta;
    if (new_conf(o, &meta.conf, &fresh.conf) != 0)
        goto out_close;
    long changes = conf_changes_after(s, o->group, meta.index, NULL);
    if (changes < 0)
        goto out_close;
    if (changes > 0 && !o->truncate) {
        fprintf(
            stderr,
            "craftctl: the log holds %ld membership change(s) after the snapshot (index %" PRIu64
            "):\n",
            changes, meta.index);
        (void)conf_changes_after(s, o->group, meta.index, stderr);
        fprintf(
            stderr,
            "craftctl: refusing: replaying them on restart could bring removed or dead members\n"
            "back. Either run recover on a survivor whose snapshot covers them, or pass\n"
            "--truncate-after-snapshot to drop every log entry after index %" PRIu64
            ": writes acknowledged after it may be LOST.\n",
            meta.index);
        goto out_close;
    }
    printf("group %" PRIu64 ": snapshot index %" PRIu64 " term %" PRIu64 ", log up to %" PRIu64
           "\nold members:",
           o->group, meta.index, meta.term, last);
    print_conf(&meta.conf);
    printf("new members:");
    print_conf(&fresh.conf);

    rc = rewrite_snapshot(s, o->group, &fresh, r);
    if (rc != 0) {
        fprintf(stderr, "craftctl: writing the new snapshot: %s (%s)\n", craft_storage_strerror(rc),
                craft_snapshot_store_errmsg(s->snaps));
        goto out_close;
    }
    rc = s->ls->save_snapshot(s->ls->data, o->group, &fresh);
    bool truncated = false;
    if (rc == 0 && o->truncate && last > meta.index) {
        rc = s->ls->truncate(s->ls->data, o->group, meta.index + 1);
        truncated = rc == 0;
    }
    if (rc == 0 && truncated) {
        /* The commit index may not point past the log that is left. */
        memset(&hs, 0, sizeof(hs));
        rc = s->ls->initial_state(s->ls->data, o->group, &hs, NULL);
        if (rc == 0 && hs.commit > meta.index) {
            hs.commit = meta.index;
            rc = s->ls->save_hard_state(s->ls->data, o->group, &hs);
        }
    }
    if (rc == 0)
        rc = craft_wal_commit(s->wal);
    if (rc != 0) {
        fprintf(stderr,
                "craftctl: recording the new membership in the WAL: %s (%s)\n"
                "craftctl: run the same recover command again before starting the node\n",
                craft_storage_strerror(rc), craft_wal_errmsg(s->wal));
        goto out_close;
    }
    if (truncated) {
        printf("WARNING: dropped log entries %" PRIu64 "..%" PRIu64
               ": writes acknowledged after index %" PRIu64 " may be LOST.\n",
               meta.index + 1, last, meta.index);
        set_kv_aside(o->data_dir);
    }
    printf("recovered: start node %" PRIu64 " with its usual flags; it elects with the members "
           "above only.\n",
           o->node_id);
    code = 0;
out_close:
    craft_snapshot_reader_close(r);
    return code;
}

int ctl_recover(const struct ctl_recover_opts *o)
{
    struct stores s;
    if (open_stores(o->data_dir, &s) != 0)
        return 1;
    int code = o->inspect ? inspect(&s, o) : recover(&s, o);
    close_stores(&s);
    return code;
}
