/* The host's framing of normal log entries, and the host's section of a
 * snapshot.
 *
 * Every normal entry the host proposes starts with a header that says what
 * it is (a user proposal, with or without a session; a session being opened
 * or closed; a member's address), which host proposed it and under which
 * key, so that the proposing host can complete the caller's request when
 * the entry is applied. An empty entry is a new leader's no-op.
 *
 * Header (little endian): magic 0xC7, kind (1 byte), origin node (8), key (8);
 * then by kind: USER_SESSION and SESSION_* add client id (8) and series (8);
 * ADDRESS adds node id (8), address length (2) and the address bytes. */
#ifndef CRAFT_HOST_ENTRY_H
#define CRAFT_HOST_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_ENTRY_MAGIC 0xC7u
#define HOST_ENTRY_BASE 18u
#define HOST_ENTRY_SESSION (HOST_ENTRY_BASE + 16u)
#define HOST_ADDRESS_MAX 63u

enum host_entry_kind {
    HOST_ENTRY_USER = 1,
    HOST_ENTRY_USER_SESSION = 2,
    HOST_ENTRY_SESSION_OPEN = 3,
    HOST_ENTRY_SESSION_CLOSE = 4,
    HOST_ENTRY_ADDRESS = 5,
};

struct host_entry {
    uint8_t kind;
    uint64_t origin, key;
    uint64_t client_id, series;         /* session kinds */
    uint64_t node_id;                   /* ADDRESS */
    char address[HOST_ADDRESS_MAX + 1]; /* ADDRESS, NUL-terminated */
    const void *payload;                /* USER kinds: the caller's bytes */
    uint32_t payload_len;
};

/* Bytes of the header for e (payload excluded). */
size_t host_entry_header_size(const struct host_entry *e);
/* Encodes e's header and then payload into a malloc'd buffer of *len bytes. */
void *host_entry_encode(const struct host_entry *e, uint32_t *len);
/* Decodes; false for anything malformed (which every replica then skips). */
bool host_entry_decode(const void *buf, uint32_t len, struct host_entry *e);

#endif /* CRAFT_HOST_ENTRY_H */
