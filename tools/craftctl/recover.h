/* craftctl recover: the offline procedure for a group that lost its quorum
 * for good, run on a stopped survivor's data directory (docs/craftkv.md,
 * "Recovering from permanent quorum loss"). */
#ifndef CRAFTCTL_RECOVER_H
#define CRAFTCTL_RECOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_RECOVER_MAX_MEMBERS 64

struct ctl_recover_opts {
    const char *data_dir; /* the node's --data: WAL in wal/, snapshots in snapshots/ */
    uint64_t group;       /* craftkv runs group 1 */
    uint64_t node_id;     /* the node whose data this is */
    uint64_t members[CTL_RECOVER_MAX_MEMBERS];
    uint32_t n_members;
    bool inspect;  /* print what is there, change nothing */
    bool truncate; /* --truncate-after-snapshot */
};

/* Runs --inspect or the recovery; prints what it does on stdout and errors
 * on stderr. Returns the process exit code (0 success, 1 failure). */
int ctl_recover(const struct ctl_recover_opts *o);

#endif /* CRAFTCTL_RECOVER_H */
