/* Quorum arithmetic for single and joint configurations (Raft thesis 4.3). */
#include "quorum.h"

#include <string.h>

#define QUORUM_STACK 64

uint64_t quorum_committed(const uint64_t *values, size_t n)
{
    uint64_t sorted[QUORUM_STACK];
    size_t i, j;

    if (n == 0) {
        return UINT64_MAX;
    }
    if (n > QUORUM_STACK) {
        n = QUORUM_STACK;
    }
    /* Insertion sort, descending: n is tiny (a group's voters). */
    for (i = 0; i < n; i++) {
        uint64_t v = values[i];
        for (j = i; j > 0 && sorted[j - 1] < v; j--) {
            sorted[j] = sorted[j - 1];
        }
        sorted[j] = v;
    }
    /* The (n/2+1)-th largest value is held by a majority. */
    return sorted[n / 2];
}

enum vote_result quorum_vote_result(size_t n, size_t granted, size_t rejected)
{
    size_t majority = n / 2 + 1;

    if (n == 0) {
        return VOTE_WON;
    }
    if (granted >= majority) {
        return VOTE_WON;
    }
    if (n - rejected < majority) {
        return VOTE_LOST;
    }
    return VOTE_PENDING;
}

enum vote_result quorum_joint_vote_result(enum vote_result incoming, enum vote_result outgoing)
{
    if (incoming == VOTE_LOST || outgoing == VOTE_LOST) {
        return VOTE_LOST;
    }
    if (incoming == VOTE_WON && outgoing == VOTE_WON) {
        return VOTE_WON;
    }
    return VOTE_PENDING;
}
