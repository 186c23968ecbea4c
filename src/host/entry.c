/* The host's entry header: see entry.h. */
#include "entry.h"

#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"

size_t host_entry_header_size(const struct host_entry *e)
{
    switch (e->kind) {
    case HOST_ENTRY_USER_SESSION:
    case HOST_ENTRY_SESSION_OPEN:
    case HOST_ENTRY_SESSION_CLOSE:
        return HOST_ENTRY_SESSION;
    case HOST_ENTRY_ADDRESS:
        return HOST_ENTRY_BASE + 10u + strlen(e->address);
    default:
        return HOST_ENTRY_BASE;
    }
}

void *host_entry_encode(const struct host_entry *e, uint32_t *len)
{
    size_t head = host_entry_header_size(e);
    size_t payload =
        (e->kind == HOST_ENTRY_USER || e->kind == HOST_ENTRY_USER_SESSION) ? e->payload_len : 0;
    uint8_t *b = malloc(head + payload);
    if (b == NULL)
        return NULL;
    b[0] = HOST_ENTRY_MAGIC;
    b[1] = e->kind;
    le_put_u64(b + 2, e->origin);
    le_put_u64(b + 10, e->key);
    if (head == HOST_ENTRY_SESSION) {
        le_put_u64(b + 18, e->client_id);
        le_put_u64(b + 26, e->series);
    } else if (e->kind == HOST_ENTRY_ADDRESS) {
        size_t n = strlen(e->address);
        le_put_u64(b + 18, e->node_id);
        le_put_u16(b + 26, (uint16_t)n);
        memcpy(b + 28, e->address, n);
    }
    if (payload > 0)
        memcpy(b + head, e->payload, payload);
    *len = (uint32_t)(head + payload);
    return b;
}

bool host_entry_decode(const void *buf, uint32_t len, struct host_entry *e)
{
    const uint8_t *b = buf;
    memset(e, 0, sizeof(*e));
    if (len < HOST_ENTRY_BASE || b[0] != HOST_ENTRY_MAGIC)
        return false;
    e->kind = b[1];
    e->origin = le_get_u64(b + 2);
    e->key = le_get_u64(b + 10);
    size_t head = HOST_ENTRY_BASE;
    switch (e->kind) {
    case HOST_ENTRY_USER:
        break;
    case HOST_ENTRY_USER_SESSION:
    case HOST_ENTRY_SESSION_OPEN:
    case HOST_ENTRY_SESSION_CLOSE:
        if (len < HOST_ENTRY_SESSION)
            return false;
        e->client_id = le_get_u64(b + 18);
        e->series = le_get_u64(b + 26);
        head = HOST_ENTRY_SESSION;
        if (e->client_id == 0)
            return false;
        break;
    case HOST_ENTRY_ADDRESS: {
        if (len < HOST_ENTRY_BASE + 10u)
            return false;
        e->node_id = le_get_u64(b + 18);
        size_t n = le_get_u16(b + 26);
        if (n > HOST_ADDRESS_MAX || len != HOST_ENTRY_BASE + 10u + n || e->node_id == 0)
            return false;
        memcpy(e->address, b + 28, n);
        e->address[n] = '\0';
        return true;
    }
    default:
        return false;
    }
    e->payload = b + head;
    e->payload_len = (uint32_t)(len - head);
    if (e->kind != HOST_ENTRY_USER && e->kind != HOST_ENTRY_USER_SESSION && e->payload_len != 0)
        return false;
    return true;
}
