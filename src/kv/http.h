/* HTTP/1.1 for craftkv's etcd-raftexample-style API (PUT/GET/DELETE
 * /kv/{key}, POST/DELETE /members/{id}, GET /status, GET /metrics):
 * request parsing on Debian's http-parser, and a response encoder.
 *
 * One kv_http_conn per connection. kv_http_feed() takes whatever was read,
 * stops after each complete request (pipelining: the bytes after it are left
 * for the next call) and says whether the connection may stay open
 * (keep-alive, HTTP/1.0 included). Every byte is hostile: the request line
 * and headers, and the body, are bounded, and a violation is an error with
 * the status to answer (431, 413, 400) before closing. */
#ifndef CRAFT_KV_HTTP_H
#define CRAFT_KV_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "kv/buf.h"

#define KV_HTTP_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define KV_HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)

struct kv_http_limits {
    size_t max_header_bytes; /* request line and headers: 431 beyond */
    size_t max_body_bytes;   /* body: 413 beyond */
};

enum kv_http_method {
    KV_HTTP_OTHER = 0,
    KV_HTTP_GET,
    KV_HTTP_HEAD,
    KV_HTTP_PUT,
    KV_HTTP_POST,
    KV_HTTP_DELETE,
};

/* One parsed request; every buffer is owned by the connection and valid
 * until the next kv_http_feed() call. */
struct kv_http_request {
    int method;              /* enum kv_http_method */
    const char *method_name; /* "GET", "PATCH"... */
    struct kv_buf url;       /* as sent, NUL-terminated (len excludes the NUL) */
    struct kv_buf path;      /* percent-decoded; may hold any byte, NUL-terminated */
    bool stale;              /* the query has stale=1 (or stale=true) */
    struct kv_buf body;
    bool keep_alive; /* the connection may serve another request */
};

enum kv_http_status {
    KV_HTTP_REQUEST = 0,   /* conn->request is complete */
    KV_HTTP_NEED_MORE = 1, /* all bytes consumed, no complete request yet */
    KV_HTTP_ERROR = 2,     /* answer conn->error_status (conn->error says why), close */
};

struct kv_http_conn {
    struct kv_http_limits limits;
    struct kv_http_request request;
    int error_status;  /* 400, 413, 431 */
    const char *error; /* a short reason, for the response body and logs */
    /* Internal. */
    http_parser parser;
    http_parser_settings settings;
    size_t header_bytes;
    bool complete; /* a request was returned: reset before parsing on */
};

/* limits: NULL for the defaults. */
void kv_http_conn_init(struct kv_http_conn *c, const struct kv_http_limits *limits);
void kv_http_conn_free(struct kv_http_conn *c);

/* Parses data[0, len); *consumed bytes were used (the rest, after a complete
 * request, belongs to the next one: feed it again). */
enum kv_http_status kv_http_feed(struct kv_http_conn *c, const char *data, size_t len,
                                 size_t *consumed);

/* Appends a whole response: status line, Content-Type (if given),
 * Content-Length, Connection, extra_headers (NULL, or "Name: value\r\n"
 * lines), a blank line and the body. */
int kv_http_response(struct kv_buf *out, int status, const char *content_type, const void *body,
                     size_t len, bool keep_alive, const char *extra_headers);
/* "OK", "Not Found"... for the statuses craftkv uses; "Unknown" otherwise. */
const char *kv_http_reason(int status);

#endif /* CRAFT_KV_HTTP_H */
