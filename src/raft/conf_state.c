/* Membership: the codec of a membership change and queries on a configuration.
 *
 * A struct craft_conf_change travels in the data of a CRAFT_ENTRY_CONF_CHANGE
 * log entry, so its decoder reads bytes that came from disk or from a peer and
 * must accept any input without reading out of bounds. The wire format, little
 * endian:
 *
 *   u8  version      (1)
 *   u8  transition   (enum craft_conf_transition)
 *   u16 n_changes    (at most CRAFT_MAX_CONF_CHANGES)
 *   n_changes times:
 *     u8  type       (enum craft_conf_change_type)
 *     u64 node_id    (non-zero)
 *
 * The encoder refuses what the decoder would refuse, so whatever encodes also
 * decodes to the same value. Whether a change makes sense for the current
 * configuration (ECONF_INVALID) is decided elsewhere, not by the codec.
 */
#include "common/byteorder.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "craft/raft.h"

#define CONF_CHANGE_VERSION 1
#define CONF_CHANGE_HEADER_SIZE 4 /* version, transition, n_changes */
#define CONF_CHANGE_ITEM_SIZE 9   /* type, node_id */

static bool transition_is_valid(uint32_t transition)
{
    return transition == CRAFT_TRANSITION_AUTO || transition == CRAFT_TRANSITION_JOINT_IMPLICIT ||
           transition == CRAFT_TRANSITION_JOINT_EXPLICIT;
}

static bool change_type_is_valid(uint32_t type)
{
    return type == CRAFT_CC_ADD_VOTER || type == CRAFT_CC_ADD_NON_VOTING ||
           type == CRAFT_CC_ADD_WITNESS || type == CRAFT_CC_REMOVE_NODE;
}

/* The rules both directions of the codec enforce. */
static bool conf_change_is_valid(const struct craft_conf_change *cc)
{
    if (!transition_is_valid(cc->transition) || cc->n_changes > CRAFT_MAX_CONF_CHANGES) {
        return false;
    }
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        if (!change_type_is_valid(cc->changes[i].type) || cc->changes[i].node_id == 0) {
            return false;
        }
    }
    return true;
}

/* Returns 0 for a change that cannot be encoded (NULL, or too many changes);
 * every encodable change takes at least CONF_CHANGE_HEADER_SIZE bytes. */
size_t craft_conf_change_size(const struct craft_conf_change *cc)
{
    if (cc == NULL || cc->n_changes > CRAFT_MAX_CONF_CHANGES) {
        return 0;
    }
    return CONF_CHANGE_HEADER_SIZE + (size_t)cc->n_changes * CONF_CHANGE_ITEM_SIZE;
}

/* Besides a short buffer, CRAFT_EINVAL also answers a change the decoder would
 * reject (unknown transition or type, node id 0, too many changes). */
int craft_conf_change_encode(const struct craft_conf_change *cc, void *buf, size_t cap)
{
    if (cc == NULL || !conf_change_is_valid(cc)) {
        return CRAFT_EINVAL;
    }
    size_t size = craft_conf_change_size(cc);
    if (buf == NULL || cap < size) {
        return CRAFT_EINVAL;
    }

    uint8_t *p = buf;
    p[0] = CONF_CHANGE_VERSION;
    p[1] = (uint8_t)cc->transition;
    le_put_u16(p + 2, (uint16_t)cc->n_changes);
    p += CONF_CHANGE_HEADER_SIZE;
    for (uint32_t i = 0; i < cc->n_changes; i++) {
        p[0] = (uint8_t)cc->changes[i].type;
        le_put_u64(p + 1, cc->changes[i].node_id);
        p += CONF_CHANGE_ITEM_SIZE;
    }
    return (int)size;
}

/* cc is written only on success. A NULL cc, or a NULL buf with a non-zero len,
 * is a caller's mistake rather than a malformed buffer: CRAFT_EINVAL. */
int craft_conf_change_decode(struct craft_conf_change *cc, const void *buf, size_t len)
{
    if (cc == NULL || (buf == NULL && len != 0)) {
        return CRAFT_EINVAL;
    }
    if (len < CONF_CHANGE_HEADER_SIZE) {
        return CRAFT_ECORRUPT;
    }

    const uint8_t *p = buf;
    struct craft_conf_change decoded = {0};
    if (p[0] != CONF_CHANGE_VERSION) {
        return CRAFT_ECORRUPT;
    }
    decoded.transition = p[1];
    decoded.n_changes = le_get_u16(p + 2);
    /* Bound the count before using it in any size computation. */
    if (!transition_is_valid(decoded.transition) || decoded.n_changes > CRAFT_MAX_CONF_CHANGES) {
        return CRAFT_ECORRUPT;
    }
    if (len != CONF_CHANGE_HEADER_SIZE + (size_t)decoded.n_changes * CONF_CHANGE_ITEM_SIZE) {
        return CRAFT_ECORRUPT;
    }

    p += CONF_CHANGE_HEADER_SIZE;
    for (uint32_t i = 0; i < decoded.n_changes; i++) {
        decoded.changes[i].type = p[0];
        decoded.changes[i].node_id = le_get_u64(p + 1);
        if (!change_type_is_valid(decoded.changes[i].type) || decoded.changes[i].node_id == 0) {
            return CRAFT_ECORRUPT;
        }
        p += CONF_CHANGE_ITEM_SIZE;
    }
    *cc = decoded;
    return CRAFT_OK;
}

/* Counts are clamped so that a corrupt configuration cannot make a query read
 * past the end of its array. */
static bool list_contains(const uint64_t *ids, uint32_t n, uint64_t id)
{
    if (n > CRAFT_MAX_NODES) {
        n = CRAFT_MAX_NODES;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

/* A voter of either half of a joint configuration (Raft thesis 4.3). */
bool craft_conf_state_is_voter(const struct craft_conf_state *cs, uint64_t id)
{
    if (cs == NULL || id == 0) {
        return false;
    }
    return list_contains(cs->voters, cs->n_voters, id) ||
           list_contains(cs->voters_outgoing, cs->n_voters_outgoing, id);
}

/* learners_next is not consulted: its members are still outgoing voters and
 * become learners only when the joint configuration is left. */
bool craft_conf_state_is_learner(const struct craft_conf_state *cs, uint64_t id)
{
    if (cs == NULL || id == 0) {
        return false;
    }
    return list_contains(cs->learners, cs->n_learners, id);
}

bool craft_conf_state_is_witness(const struct craft_conf_state *cs, uint64_t id)
{
    if (cs == NULL || id == 0) {
        return false;
    }
    return list_contains(cs->witnesses, cs->n_witnesses, id);
}

bool craft_conf_state_contains(const struct craft_conf_state *cs, uint64_t id)
{
    if (cs == NULL || id == 0) {
        return false;
    }
    return list_contains(cs->voters, cs->n_voters, id) ||
           list_contains(cs->voters_outgoing, cs->n_voters_outgoing, id) ||
           list_contains(cs->learners, cs->n_learners, id) ||
           list_contains(cs->learners_next, cs->n_learners_next, id) ||
           list_contains(cs->witnesses, cs->n_witnesses, id);
}

bool craft_conf_state_is_joint(const struct craft_conf_state *cs)
{
    return cs != NULL && cs->n_voters_outgoing > 0;
}
