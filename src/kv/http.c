/* HTTP request parsing and response encoding (see http.h). http-parser
 * does the protocol (chunked bodies, keep-alive rules); this file bounds
 * what it hands over and keeps one request at a time. */
#include "kv/http.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static struct kv_http_conn *conn_of(http_parser *p)
{
    return p->data;
}

static int fail(struct kv_http_conn *c, int status, const char *why)
{
    c->error_status = status;
    c->error = why;
    /* Stops http-parser with a callback error (on_headers_complete takes 1
     * and 2 as "skip the body", so -1). */
    return -1;
}

static int count_header(struct kv_http_conn *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > c->limits.max_header_bytes)
        return fail(c, 431, "request header fields too large");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    struct kv_http_conn *c = conn_of(p);
    kv_buf_reset(&c->request.url);
    kv_buf_reset(&c->request.path);
    kv_buf_reset(&c->request.body);
    c->request.stale = false;
    c->request.keep_alive = false;
    c->header_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct kv_http_conn *c = conn_of(p);
    if (count_header(c, len) != 0)
        return -1;
    return kv_buf_append(&c->request.url, at, len) != 0 ? fail(c, 500, "out of memory") : 0;
}

static int on_header_bytes(http_parser *p, const char *at, size_t len)
{
    (void)at;
    return count_header(conn_of(p), len);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0, len) into out. -1 on a malformed escape. */
static int percent_decode(struct kv_buf *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        kv_buf_append(out, &ch, 1);
    }
    return 0;
}

static bool query_is_stale(const char *q, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(q + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - q) : len, n = end - i;
        if ((n == 7 && memcmp(q + i, "stale=1", 7) == 0) ||
            (n == 10 && memcmp(q + i, "stale=true", 10) == 0))
            return true;
        i = end + 1;
    }
    return false;
}

static int on_headers_complete(http_parser *p)
{
    struct kv_http_conn *c = conn_of(p);
    struct kv_http_request *r = &c->request;
    struct http_parser_url u;

    if (p->upgrade)
        return fail(c, 400, "upgrade not supported");
    /* A declared length beyond the limit is refused before the body comes. */
    if (p->content_length != ULLONG_MAX && p->content_length > c->limits.max_body_bytes)
        return fail(c, 413, "payload too large");
    if (kv_buf_append(&r->url, "", 1) != 0)
        return fail(c, 500, "out of memory");
    r->url.len--;
    http_parser_url_init(&u);
    if (http_parser_parse_url(r->url.data, r->url.len, p->method == HTTP_CONNECT, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return fail(c, 400, "bad request target");
    if (percent_decode(&r->path, r->url.data + u.field_data[UF_PATH].off,
                       u.field_data[UF_PATH].len) != 0)
        return fail(c, 400, "bad percent-encoding in path");
    if (kv_buf_append(&r->path, "", 1) != 0)
        return fail(c, 500, "out of memory");
    r->path.len--;
    if (u.field_set & (1 << UF_QUERY))
        r->stale =
            query_is_stale(r->url.data + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
    switch (p->method) {
    case HTTP_GET:
        r->method = KV_HTTP_GET;
        break;
    case HTTP_HEAD:
        r->method = KV_HTTP_HEAD;
        break;
    case HTTP_PUT:
        r->method = KV_HTTP_PUT;
        break;
    case HTTP_POST:
        r->method = KV_HTTP_POST;
        break;
    case HTTP_DELETE:
        r->method = KV_HTTP_DELETE;
        break;
    default:
        r->method = KV_HTTP_OTHER;
        break;
    }
    r->method_name = http_method_str((enum http_method)p->method);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct kv_http_conn *c = conn_of(p);
    if (len > c->limits.max_body_bytes - c->request.body.len)
        return fail(c, 413, "payload too large");
    return kv_buf_append(&c->request.body, at, len) != 0 ? fail(c, 500, "out of memory") : 0;
}

static int on_message_complete(http_parser *p)
{
    struct kv_http_conn *c = conn_of(p);
    c->request.keep_alive = http_should_keep_alive(p) != 0;
    c->complete = true;
    /* One request at a time: what follows waits for the next feed. */
    http_parser_pause(p, 1);
    return 0;
}

void kv_http_conn_init(struct kv_http_conn *c, const struct kv_http_limits *limits)
{
    memset(c, 0, sizeof(*c));
    if (limits != NULL) {
        c->limits = *limits;
    } else {
        c->limits.max_header_bytes = KV_HTTP_DEFAULT_MAX_HEADER_BYTES;
        c->limits.max_body_bytes = KV_HTTP_DEFAULT_MAX_BODY_BYTES;
    }
    kv_buf_init(&c->request.url);
    kv_buf_init(&c->request.path);
    kv_buf_init(&c->request.body);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    http_parser_settings_init(&c->settings);
    c->settings.on_message_begin = on_message_begin;
    c->settings.on_url = on_url;
    c->settings.on_header_field = on_header_bytes;
    c->settings.on_header_value = on_header_bytes;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
}

void kv_http_conn_free(struct kv_http_conn *c)
{
    kv_buf_free(&c->request.url);
    kv_buf_free(&c->request.path);
    kv_buf_free(&c->request.body);
}

enum kv_http_status kv_http_feed(struct kv_http_conn *c, const char *data, size_t len,
                                 size_t *consumed)
{
    size_t n;
    enum http_errno err;

    *consumed = 0;
    if (c->error_status != 0)
        return KV_HTTP_ERROR;
    if (c->complete) {
        c->complete = false;
        http_parser_pause(&c->parser, 0);
    }
    if (len == 0)
        return KV_HTTP_NEED_MORE; /* http-parser takes 0 bytes as end of stream */
    n = http_parser_execute(&c->parser, &c->settings, data, len);
    *consumed = n;
    err = HTTP_PARSER_ERRNO(&c->parser);
    if (c->complete)
        return KV_HTTP_REQUEST;
    if (err != HPE_OK) {
        if (c->error_status == 0) {
            c->error_status = err == HPE_HEADER_OVERFLOW ? 431 : 400;
            c->error = http_errno_description(err);
        }
        return KV_HTTP_ERROR;
    }
    return KV_HTTP_NEED_MORE;
}

const char *kv_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 421:
        return "Misdirected Request";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

int kv_http_response(struct kv_buf *out, int status, const char *content_type, const void *body,
                     size_t len, bool keep_alive, const char *extra_headers)
{
    char head[256];
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", status, kv_http_reason(status));

    kv_buf_append(out, head, (size_t)n);
    if (content_type != NULL) {
        kv_buf_append_str(out, "Content-Type: ");
        kv_buf_append_str(out, content_type);
        kv_buf_append_str(out, "\r\n");
    }
    n = snprintf(head, sizeof(head), "Content-Length: %zu\r\nConnection: %s\r\n", len,
                 keep_alive ? "keep-alive" : "close");
    kv_buf_append(out, head, (size_t)n);
    if (extra_headers != NULL)
        kv_buf_append_str(out, extra_headers);
    kv_buf_append_str(out, "\r\n");
    return kv_buf_append(out, body, len);
}
