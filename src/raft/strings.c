/* Human readable names for craft's enums: error codes, message types and roles.
 *
 * These strings end up in log lines and test failure messages, so every
 * function here returns a static string for any input, known or not: never
 * NULL, and never an index past the end of a table.
 */
#include <stddef.h>
#include <stdint.h>

#include "craft/raft.h"

const char *craft_strerror(int rc)
{
    /* A switch rather than a table: error codes are negative and may gain gaps.
     * CRAFT_ERROR_MIN is an alias of the last code, so it has no case. */
    switch (rc) {
    case CRAFT_OK:
        return "success";
    case CRAFT_ENOMEM:
        return "out of memory";
    case CRAFT_EINVAL:
        return "invalid argument";
    case CRAFT_ENOTLEADER:
        return "not the leader";
    case CRAFT_EBUSY:
        return "a limit was reached, retry later";
    case CRAFT_ETRANSFER:
        return "a leader transfer is in progress";
    case CRAFT_ECOMPACTED:
        return "the index was compacted into a snapshot";
    case CRAFT_EUNAVAILABLE:
        return "the index is beyond the last entry";
    case CRAFT_ESNAPSHOT_TEMP:
        return "no snapshot is available right now";
    case CRAFT_ECONF_PENDING:
        return "a membership change is already pending";
    case CRAFT_ECONF_INVALID:
        return "the membership change is not valid in this configuration";
    case CRAFT_EDROPPED:
        return "the message or proposal was dropped";
    case CRAFT_ECORRUPT:
        return "an encoded buffer is malformed";
    case CRAFT_ESTORAGE:
        return "storage I/O error";
    case CRAFT_ESTEPPED_DOWN:
        return "the node is no longer the leader";
    case CRAFT_EREMOVED:
        return "this node is not a member of the group";
    case CRAFT_ETOO_BIG:
        return "the payload is larger than the configured maximum";
    }
    return "unknown error";
}

/* Indexed by enum craft_message_type; a type added to the enum without a name
 * here reads as NULL and is reported as "unknown". */
static const char *const message_type_names[CRAFT_MSG_TYPE_COUNT] = {
    [CRAFT_MSG_HUP] = "hup",
    [CRAFT_MSG_BEAT] = "beat",
    [CRAFT_MSG_PROPOSE] = "propose",
    [CRAFT_MSG_APPEND] = "append",
    [CRAFT_MSG_APPEND_RESP] = "append_resp",
    [CRAFT_MSG_VOTE] = "vote",
    [CRAFT_MSG_VOTE_RESP] = "vote_resp",
    [CRAFT_MSG_PRE_VOTE] = "pre_vote",
    [CRAFT_MSG_PRE_VOTE_RESP] = "pre_vote_resp",
    [CRAFT_MSG_SNAPSHOT] = "snapshot",
    [CRAFT_MSG_HEARTBEAT] = "heartbeat",
    [CRAFT_MSG_HEARTBEAT_RESP] = "heartbeat_resp",
    [CRAFT_MSG_UNREACHABLE] = "unreachable",
    [CRAFT_MSG_SNAPSHOT_STATUS] = "snapshot_status",
    [CRAFT_MSG_CHECK_QUORUM] = "check_quorum",
    [CRAFT_MSG_TRANSFER_LEADER] = "transfer_leader",
    [CRAFT_MSG_TIMEOUT_NOW] = "timeout_now",
    [CRAFT_MSG_READ_INDEX] = "read_index",
    [CRAFT_MSG_READ_INDEX_RESP] = "read_index_resp",
    [CRAFT_MSG_RATE_LIMIT] = "rate_limit",
    [CRAFT_MSG_QUIESCE] = "quiesce",
    [CRAFT_MSG_LOCAL_TICK] = "local_tick",
};

/* Indexed by enum craft_role, with the same rule for missing names. */
/* clang-format off */
static const char *const role_names[CRAFT_ROLE_COUNT] = {
    [CRAFT_ROLE_FOLLOWER] = "follower",
    [CRAFT_ROLE_PRE_CANDIDATE] = "pre_candidate",
    [CRAFT_ROLE_CANDIDATE] = "candidate",
    [CRAFT_ROLE_LEADER] = "leader",
    [CRAFT_ROLE_NON_VOTING] = "non_voting",
    [CRAFT_ROLE_WITNESS] = "witness",
};
/* clang-format on */

static const char *lookup(const char *const *names, size_t count, uint32_t value)
{
    if (value >= count || names[value] == NULL) {
        return "unknown";
    }
    return names[value];
}

const char *craft_message_type_name(uint32_t type)
{
    return lookup(message_type_names, CRAFT_MSG_TYPE_COUNT, type);
}

const char *craft_role_name(uint32_t role)
{
    return lookup(role_names, CRAFT_ROLE_COUNT, role);
}
