/* craftctl's view of a running craftkv cluster over HTTP: every endpoint's
 * /status, the leader among them, and admin requests sent to the leader
 * (following NOTLEADER answers to the node they name). */
#ifndef CRAFTCTL_CLUSTER_H
#define CRAFTCTL_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "http_client.h"
#include "status_json.h"

#define CTL_MAX_ENDPOINTS 64

struct ctl_cluster {
    const char *endpoints[CTL_MAX_ENDPOINTS]; /* borrowed from the caller */
    size_t n;
    unsigned timeout_ms;
};

/* One endpoint's answer to GET /status. */
struct ctl_node {
    const char *endpoint;
    bool ok;                  /* reachable and the status parsed */
    char err[256];            /* why not, when !ok */
    struct ctl_response resp; /* the raw answer (owned; ctl_nodes_free) */
    struct ctl_status st;
};

/* Asks every endpoint for /status into nodes[0..c->n) (caller-allocated). */
void ctl_fetch_all(const struct ctl_cluster *c, struct ctl_node *nodes);
void ctl_nodes_free(struct ctl_node *nodes, size_t n);

/* The index of the node that is leader (of the highest term), else of the
 * node the others name as leader; -1 if none is known. */
int ctl_find_leader(const struct ctl_node *nodes, size_t n);

/* Sends method path body to the leader; prints the server's answer (stdout
 * on success, stderr otherwise). Returns the exit code: 0 or 1. */
int ctl_admin(const struct ctl_cluster *c, const char *method, const char *path, const char *body);

#endif /* CRAFTCTL_CLUSTER_H */
