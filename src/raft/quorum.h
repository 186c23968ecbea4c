/* Quorum arithmetic: the commit index a majority (or a joint pair of
 * majorities) has reached, and the outcome of an election. Pure functions on
 * small arrays; used by the leader (commit) and candidates (votes). */
#ifndef CRAFT_QUORUM_H
#define CRAFT_QUORUM_H

#include <stddef.h>
#include <stdint.h>

enum vote_result { VOTE_PENDING = 0, VOTE_WON, VOTE_LOST };

/* The largest index that at least a majority of the n values reach. An empty
 * configuration reaches every index (UINT64_MAX), so that a joint
 * configuration with an empty half is decided by the other half. */
uint64_t quorum_committed(const uint64_t *values, size_t n);

/* Election outcome from n voters of which granted said yes and rejected no. */
enum vote_result quorum_vote_result(size_t n, size_t granted, size_t rejected);

/* Joint results (Raft thesis 4.3): both halves must agree. */
enum vote_result quorum_joint_vote_result(enum vote_result incoming, enum vote_result outgoing);

#endif
