/* craftctl's HTTP/1.1 client: one request per connection, plain POSIX
 * sockets, every step bounded by a deadline and every response by a size.
 *
 * The response comes from the network, so nothing in it is trusted: the
 * status line, the headers and Content-Length are checked, and the body is
 * returned NUL-terminated with its real length (it may itself hold NULs).
 */
#ifndef CRAFTCTL_HTTP_CLIENT_H
#define CRAFTCTL_HTTP_CLIENT_H

#include <stddef.h>

/* Largest response accepted, headers included. */
#define CTL_HTTP_MAX_RESPONSE (1u << 20)

struct ctl_response {
    int status; /* HTTP status code (100..599) */
    char *body; /* malloc'd, NUL-terminated; the caller frees it (ctl_response_free) */
    size_t len; /* body bytes, the NUL excluded */
};

/* Sends method path (with body of body_len bytes, may be NULL) to endpoint
 * ("host:port") and reads the whole response within timeout_ms. Returns 0
 * with *out filled (the caller owns out->body), or -1 with a message in err. */
int ctl_http_request(const char *endpoint, const char *method, const char *path, const char *body,
                     size_t body_len, unsigned timeout_ms, struct ctl_response *out, char *err,
                     size_t err_cap);

void ctl_response_free(struct ctl_response *r);

#endif /* CRAFTCTL_HTTP_CLIENT_H */
