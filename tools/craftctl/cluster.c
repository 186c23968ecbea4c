/* craftctl's cluster operations (cluster.h). */
#define _POSIX_C_SOURCE 200809L
#include "cluster.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How many times an admin request is sent again after a NOTLEADER or
 * no-leader answer (each after re-reading the cluster's status). */
#define ADMIN_ATTEMPTS 6

void ctl_fetch_all(const struct ctl_cluster *c, struct ctl_node *nodes)
{
    for (size_t i = 0; i < c->n; i++) {
        struct ctl_node *nd = &nodes[i];
        memset(nd, 0, sizeof(*nd));
        nd->endpoint = c->endpoints[i];
        if (ctl_http_request(nd->endpoint, "GET", "/status", NULL, 0, c->timeout_ms, &nd->resp,
                             nd->err, sizeof(nd->err)) != 0)
            continue;
        if (nd->resp.status != 200) {
            snprintf(nd->err, sizeof(nd->err), "%s: /status answered HTTP %d", nd->endpoint,
                     nd->resp.status);
            continue;
        }
        char why[160];
        if (ctl_status_parse(nd->resp.body, nd->resp.len, &nd->st, why, sizeof(why)) != 0) {
            snprintf(nd->err, sizeof(nd->err), "%s: %s", nd->endpoint, why);
            continue;
        }
        nd->ok = true;
    }
}

void ctl_nodes_free(struct ctl_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ctl_response_free(&nodes[i].resp);
}

static int node_with_id(const struct ctl_node *nodes, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (nodes[i].ok && nodes[i].st.node_id == id)
            return (int)i;
    return -1;
}

int ctl_find_leader(const struct ctl_node *nodes, size_t n)
{
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (nodes[i].ok && strcmp(nodes[i].st.role, "leader") == 0 &&
            (best < 0 || nodes[i].st.term > nodes[best].st.term))
            best = (int)i;
    if (best >= 0)
        return best;
    /* No leader among the endpoints answered: the one the newest term names. */
    uint64_t term = 0, leader = 0;
    for (size_t i = 0; i < n; i++)
        if (nodes[i].ok && nodes[i].st.leader != 0 && nodes[i].st.term >= term) {
            term = nodes[i].st.term;
            leader = nodes[i].st.leader;
        }
    return leader != 0 ? node_with_id(nodes, n, leader) : -1;
}

/* The node id named by "NOTLEADER the leader is node N", or 0. */
static uint64_t notleader_id(const struct ctl_response *r)
{
    static const char prefix[] = "NOTLEADER the leader is node ";
    if (r->len < sizeof(prefix) || strncmp(r->body, prefix, sizeof(prefix) - 1) != 0)
        return 0;
    uint64_t id = 0;
    for (const char *p = r->body + sizeof(prefix) - 1; *p >= '0' && *p <= '9'; p++) {
        if (id > (UINT64_MAX - 9) / 10)
            return 0;
        id = id * 10 + (uint64_t)(*p - '0');
    }
    return id;
}

/* Whether the answer says the request reached no leader: worth finding the
 * leader again and retrying (the request was not carried out). */
static bool no_leader_answer(const struct ctl_response *r)
{
    if (r->status != 503)
        return false;
    return strncmp(r->body, "NOTLEADER", 9) == 0 || strncmp(r->body, "CLUSTERDOWN", 11) == 0 ||
           strncmp(r->body, "not leader", 10) == 0 || strstr(r->body, "not the leader") != NULL;
}

/* Prints a server's text answer, sanitized: printable ASCII and newlines. */
static void print_body(FILE *f, const struct ctl_response *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len && n < 4096; i++, n++) {
        unsigned char ch = (unsigned char)r->body[i];
        fputc(ch == '\n' || (ch >= 0x20 && ch < 0x7f) ? ch : '?', f);
    }
    if (r->len == 0 || r->body[r->len - 1] != '\n')
        fputc('\n', f);
}

/* The first line of a server's answer, sanitized, into line. */
static void first_line(const struct ctl_response *r, char *line, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < r->len && r->body[i] != '\n' && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)r->body[i];
        line[n++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    line[n] = '\0';
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int ctl_admin(const struct ctl_cluster *c, const char *method, const char *path, const char *body)
{
    struct ctl_node *nodes = calloc(c->n, sizeof(*nodes));
    if (nodes == NULL) {
        fprintf(stderr, "craftctl: out of memory\n");
        return 1;
    }
    int code = 1;
    int target = -1;
    char last_err[512] = "no endpoint answered";
    for (int attempt = 0; attempt < ADMIN_ATTEMPTS; attempt++) {
        if (attempt > 0)
            sleep_ms(200u * (unsigned)attempt);
        if (target < 0) {
            ctl_nodes_free(nodes, c->n);
            ctl_fetch_all(c, nodes);
            target = ctl_find_leader(nodes, c->n);
            if (target < 0) {
                size_t up = 0;
                for (size_t i = 0; i < c->n; i++)
                    up += nodes[i].ok;
                if (up == 0)
                    snprintf(last_err, sizeof(last_err), "no endpoint answered (%s)", nodes[0].err);
                else
                    snprintf(last_err, sizeof(last_err),
                             "no leader is known to the %zu endpoint(s) that answered", up);
                continue;
            }
        }
        struct ctl_response r;
        char err[256];
        if (ctl_http_request(nodes[target].endpoint, method, path, body, body ? strlen(body) : 0,
                             c->timeout_ms, &r, err, sizeof(err)) != 0) {
            snprintf(last_err, sizeof(last_err), "%s", err);
            target = -1;
            continue;
        }
        if (r.status >= 200 && r.status < 300) {
            printf("node %" PRIu64 " (%s): ", nodes[target].st.node_id, nodes[target].endpoint);
            print_body(stdout, &r);
            ctl_response_free(&r);
            code = 0;
            break;
        }
        if (no_leader_answer(&r)) {
            uint64_t named = notleader_id(&r);
            int next = named != 0 ? node_with_id(nodes, c->n, named) : -1;
            char line[160];
            first_line(&r, line, sizeof(line));
            snprintf(last_err, sizeof(last_err), "node %" PRIu64 " (%s): HTTP %d: %s",
                     nodes[target].st.node_id, nodes[target].endpoint, r.status, line);
            if (named != 0 && next < 0)
                snprintf(last_err, sizeof(last_err),
                         "the leader is node %" PRIu64 ", whose HTTP endpoint is not among"
                         " --endpoints",
                         named);
            target = next; /* -1: read the statuses again */
            ctl_response_free(&r);
            continue;
        }
        fprintf(stderr,
                "craftctl: node %" PRIu64 " (%s) refused: HTTP %d: ", nodes[target].st.node_id,
                nodes[target].endpoint, r.status);
        print_body(stderr, &r);
        ctl_response_free(&r);
        last_err[0] = '\0';
        break;
    }
    if (code != 0 && last_err[0] != '\0')
        fprintf(stderr, "craftctl: %s\n", last_err);
    ctl_nodes_free(nodes, c->n);
    free(nodes);
    return code;
}
