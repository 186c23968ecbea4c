/* craftctl's HTTP/1.1 client (see http_client.h): connect with a deadline,
 * send one request with "Connection: close", read until the body announced
 * by Content-Length is complete (or until the peer closes when there is no
 * Content-Length), and refuse anything malformed or larger than
 * CTL_HTTP_MAX_RESPONSE. */
#define _POSIX_C_SOURCE 200809L
#include "http_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    return left > 0 ? (int)left : 0;
}

/* Waits until fd is ready for events; 0, or -1 on timeout or error. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int left = remaining(deadline);
        if (left == 0)
            return -1;
        int n = poll(&p, 1, left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Splits "host:port" (the last colon separates them) into its parts. */
static int split_endpoint(const char *endpoint, char *host, size_t host_cap, char *port,
                          size_t port_cap)
{
    const char *colon = strrchr(endpoint, ':');
    if (colon == NULL || colon == endpoint || colon[1] == '\0')
        return -1;
    size_t hl = (size_t)(colon - endpoint);
    size_t pl = strlen(colon + 1);
    if (hl >= host_cap || pl >= port_cap)
        return -1;
    memcpy(host, endpoint, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

static int connect_to(const char *endpoint, int64_t deadline, char *err, size_t err_cap)
{
    char host[256], port[16];
    if (split_endpoint(endpoint, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(err, err_cap, "%s: not a host:port address", endpoint);
        return -1;
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, err_cap, "%s: %s", endpoint, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    snprintf(err, err_cap, "%s: cannot connect", endpoint);
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
        if (fd < 0)
            continue;
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
            goto next_close;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        if (errno != EINPROGRESS) {
            snprintf(err, err_cap, "%s: connect: %s", endpoint, strerror(errno));
            goto next_close;
        }
        if (wait_fd(fd, POLLOUT, deadline) != 0) {
            snprintf(err, err_cap, "%s: connect: timed out", endpoint);
            goto next_close;
        }
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        snprintf(err, err_cap, "%s: connect: %s", endpoint, strerror(soerr ? soerr : errno));
    next_close:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(fd, POLLOUT, deadline) != 0)
                return -1;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* Finds the end of the headers ("\r\n\r\n") in buf[0..len); the offset of
 * the body, or 0 if not there yet. */
static size_t header_end(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++)
        if (buf[i - 3] == '\r' && buf[i - 2] == '\n' && buf[i - 1] == '\r' && buf[i] == '\n')
            return i + 1;
    return 0;
}

/* Parses the status line and Content-Length out of the header block
 * buf[0..hlen). *content_length is -1 when absent. */
static int parse_head(const char *buf, size_t hlen, int *status, long long *content_length)
{
    if (hlen < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -1;
        st = st * 10 + (buf[i] - '0');
    }
    if (st < 100 || st > 599)
        return -1;
    *status = st;
    *content_length = -1;
    size_t pos = 0;
    /* Skip the status line, then look at each header line. */
    while (pos < hlen && buf[pos] != '\n')
        pos++;
    pos++;
    static const char name[] = "content-length:";
    const size_t nl = sizeof(name) - 1;
    while (pos < hlen) {
        size_t eol = pos;
        while (eol < hlen && buf[eol] != '\n')
            eol++;
        if (eol - pos > nl && strncasecmp(buf + pos, name, nl) == 0) {
            size_t i = pos + nl;
            while (i < eol && (buf[i] == ' ' || buf[i] == '\t'))
                i++;
            long long v = 0;
            size_t digits = 0;
            while (i < eol && buf[i] >= '0' && buf[i] <= '9' && digits < 10) {
                v = v * 10 + (buf[i] - '0');
                i++;
                digits++;
            }
            while (i < eol && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r'))
                i++;
            if (digits == 0 || i != eol || v > (long long)CTL_HTTP_MAX_RESPONSE)
                return -1;
            if (*content_length >= 0 && *content_length != v)
                return -1; /* two different lengths: refuse, as RFC 9112 6.3 says */
            *content_length = v;
        }
        pos = eol + 1;
    }
    return 0;
}

int ctl_http_request(const char *endpoint, const char *method, const char *path, const char *body,
                     size_t body_len, unsigned timeout_ms, struct ctl_response *out, char *err,
                     size_t err_cap)
{
    int64_t deadline = now_ms() + (timeout_ms ? timeout_ms : 1);
    int rc = -1;
    char *buf = NULL;
    memset(out, 0, sizeof(*out));
    int fd = connect_to(endpoint, deadline, err, err_cap);
    if (fd < 0)
        return -1;
    char head[512];
    int hn = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: craftctl\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, endpoint, body_len);
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        snprintf(err, err_cap, "%s: request too long", endpoint);
        goto out_close;
    }
    if (send_all(fd, head, (size_t)hn, deadline) != 0 ||
        (body_len > 0 && send_all(fd, body, body_len, deadline) != 0)) {
        snprintf(err, err_cap, "%s: cannot send the request", endpoint);
        goto out_close;
    }
    buf = malloc(CTL_HTTP_MAX_RESPONSE + 1);
    if (buf == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto out_close;
    }
    size_t len = 0, hlen = 0;
    int status = 0;
    long long clen = -1;
    bool eof = false;
    for (;;) {
        if (hlen == 0 && (hlen = header_end(buf, len)) != 0 &&
            parse_head(buf, hlen, &status, &clen) != 0) {
            snprintf(err, err_cap, "%s: malformed HTTP response", endpoint);
            goto out_free;
        }
        if (hlen != 0 && clen >= 0 && len - hlen >= (size_t)clen)
            break;
        if (eof) {
            if (hlen != 0 && clen < 0)
                break;
            snprintf(err, err_cap, "%s: connection closed before the whole response", endpoint);
            goto out_free;
        }
        if (len == CTL_HTTP_MAX_RESPONSE) {
            snprintf(err, err_cap, "%s: response larger than %u bytes", endpoint,
                     CTL_HTTP_MAX_RESPONSE);
            goto out_free;
        }
        ssize_t n = recv(fd, buf + len, CTL_HTTP_MAX_RESPONSE - len, 0);
        if (n > 0) {
            len += (size_t)n;
        } else if (n == 0) {
            eof = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (wait_fd(fd, POLLIN, deadline) != 0) {
                snprintf(err, err_cap, "%s: timed out waiting for the response", endpoint);
                goto out_free;
            }
        } else {
            snprintf(err, err_cap, "%s: recv: %s", endpoint, strerror(errno));
            goto out_free;
        }
    }
    size_t blen = clen >= 0 ? (size_t)clen : len - hlen;
    out->body = malloc(blen + 1);
    if (out->body == NULL) {
        snprintf(err, err_cap, "out of memory");
        goto out_free;
    }
    memcpy(out->body, buf + hlen, blen);
    out->body[blen] = '\0';
    out->len = blen;
    out->status = status;
    rc = 0;
out_free:
    free(buf);
out_close:
    close(fd);
    return rc;
}

void ctl_response_free(struct ctl_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
