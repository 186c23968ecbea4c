/* craftctl's reader of craftkv's GET /status JSON.
 *
 * A small bounded scanner: it validates the whole document as JSON (nesting
 * at most CTL_JSON_MAX_DEPTH deep, strings without raw control bytes,
 * numbers of JSON's grammar) and picks out the fields craftctl uses;
 * unknown fields are skipped. Strings that do not fit their field are
 * refused rather than cut. Anything else is an error: a body that comes
 * from the network is never trusted.
 */
#ifndef CRAFTCTL_STATUS_JSON_H
#define CRAFTCTL_STATUS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CTL_JSON_MAX_DEPTH 16
#define CTL_MAX_MEMBERS 64 /* CRAFT_MAX_NODES */

struct ctl_member {
    uint64_t id;
    bool self, voter, witness, recent_active;
    bool has_progress; /* match/next/lag were given (a peer's entry) */
    bool has_contact;  /* last_contact_ms was a number, not null */
    char address[64];  /* "" when not given (the node itself) */
    char role[24];     /* "leader", "follower", ... */
    char progress[16]; /* "replicate", "probe", "snapshot" */
    uint64_t match, next, lag, last_contact_ms;
};

struct ctl_status {
    uint64_t node_id, group_id, term, leader, commit, applied, fsm_applied;
    uint64_t snapshot_index, first_index, last_index;
    char role[24];
    uint32_t n_members;
    struct ctl_member members[CTL_MAX_MEMBERS];
};

/* Parses len bytes of text (need not be NUL-terminated). 0, or -1 with a
 * short reason in err. */
int ctl_status_parse(const char *text, size_t len, struct ctl_status *out, char *err,
                     size_t err_cap);

/* Whether text[0..len) is one valid JSON value (surrounding white space
 * allowed), within the same bounds. */
bool ctl_json_valid(const char *text, size_t len);

#endif /* CRAFTCTL_STATUS_JSON_H */
