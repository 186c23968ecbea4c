/* craftctl: the administration tool of craftkv (issue 5).
 *
 * Online commands talk to the nodes' HTTP APIs (docs/craftkv.md): status
 * reads every endpoint's /status; the membership, leader transfer and
 * snapshot commands go to the leader. recover works offline on a stopped
 * node's data directory (recover.c). This file parses the command line,
 * prints the help and the status table.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "recover.h"
#include "status_json.h"

static const char *usage =
    "usage: craftctl [--endpoints H:P,...] [--timeout-ms N] COMMAND [ARGS]\n"
    "\n"
    "Administers a craftkv cluster through its nodes' HTTP APIs, or (recover)\n"
    "a stopped node's data directory.\n"
    "\n"
    "Options:\n"
    "  --endpoints H:P,...   the nodes' HTTP addresses (default: the demo's three,\n"
    "                        127.0.0.1:7380,127.0.0.1:7390,127.0.0.1:7400)\n"
    "  --timeout-ms N        per HTTP request (default 3000)\n"
    "  --help                this text\n"
    "\n"
    "Commands:\n"
    "  status [--json]       every member: id, raft address, role and term (each\n"
    "                        node's own view), match and next index, lag and last\n"
    "                        contact (the leader's view); unreachable nodes are\n"
    "                        shown as such. --json: a JSON array with each\n"
    "                        endpoint's raw /status, or {\"endpoint\":..,\"error\":..}\n"
    "                        for one that did not answer. Exit 1 if none answered.\n"
    "  members add ID RAFTADDR [--non-voting|--witness]\n"
    "                        adds node ID (a voter unless told otherwise); start it\n"
    "                        first with craftkv --join\n"
    "  members remove ID     removes node ID from the group\n"
    "  members promote ID    makes the non-voting member ID a voter\n"
    "  transfer-leader ID    hands leadership to node ID\n"
    "  snapshot              the leader takes a snapshot now (and compacts its log)\n"
    "  recover --data DIR --id N --members ID,ID,... [--group G]\n"
    "          [--truncate-after-snapshot]\n"
    "                        OFFLINE, on a STOPPED node's data directory, after the\n"
    "                        group lost its quorum for good: rewrites the group's\n"
    "                        membership (as of its newest snapshot) to the given\n"
    "                        survivors, which must include N, so that node N\n"
    "                        restarts and elects with them alone. Refuses if the log\n"
    "                        holds membership changes after the snapshot, unless\n"
    "                        --truncate-after-snapshot: then every entry after the\n"
    "                        snapshot is dropped and writes acknowledged after it\n"
    "                        may be LOST (craftkv's store is moved aside and rebuilt\n"
    "                        from the snapshot). Prevention: take snapshots\n"
    "                        (craftctl snapshot, POST /admin/snapshot) so recent\n"
    "                        membership is in one. Group default 1 (craftkv's).\n"
    "  recover --inspect --data DIR [--group G]\n"
    "                        prints the group, the snapshot's index, term and\n"
    "                        members, the log's first and last index, the hard\n"
    "                        state and any membership changes after the snapshot;\n"
    "                        compare last indexes to pick the survivor to recover\n"
    "                        (docs/craftkv.md, \"Recovering from permanent quorum\n"
    "                        loss\"). Opening the WAL repairs a torn tail, as a\n"
    "                        restart would.\n"
    "\n"
    "Online commands go to the leader (found through /status, following\n"
    "NOTLEADER answers). Exit status: 0 success, 1 failure (with the server's\n"
    "message), 2 bad usage.\n";

static const char *default_endpoints = "127.0.0.1:7380,127.0.0.1:7390,127.0.0.1:7400";

static int bad_usage(const char *what)
{
    fprintf(stderr, "craftctl: %s (see craftctl --help)\n", what);
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

static int parse_id(const char *s, uint64_t *out)
{
    return parse_u64(s, out) == 0 && *out != 0 ? 0 : -1;
}

/* Splits a comma-separated list in place into c->endpoints. */
static int parse_endpoints(char *list, struct ctl_cluster *c)
{
    c->n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (c->n == CTL_MAX_ENDPOINTS || strchr(tok, ':') == NULL)
            return -1;
        c->endpoints[c->n++] = tok;
    }
    return c->n > 0 ? 0 : -1;
}

/* ---- status ---- */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_json(const struct ctl_node *nodes, size_t n)
{
    printf("[");
    for (size_t i = 0; i < n; i++) {
        printf(i ? ",\n " : "");
        if (nodes[i].ok) {
            /* The raw status, validated by the parser; trailing white space dropped. */
            size_t len = nodes[i].resp.len;
            while (len > 0 &&
                   (nodes[i].resp.body[len - 1] == '\n' || nodes[i].resp.body[len - 1] == '\r' ||
                    nodes[i].resp.body[len - 1] == ' '))
                len--;
            fwrite(nodes[i].resp.body, 1, len, stdout);
        } else {
            printf("{\"endpoint\":");
            json_string(nodes[i].endpoint);
            printf(",\"error\":");
            json_string(nodes[i].err);
            printf("}");
        }
    }
    printf("]\n");
}

/* A member's entry in a node's status, or NULL. */
static const struct ctl_member *member_in(const struct ctl_status *st, uint64_t id)
{
    for (uint32_t i = 0; i < st->n_members; i++)
        if (st->members[i].id == id)
            return &st->members[i];
    return NULL;
}

static void add_id(uint64_t *ids, size_t *n, size_t cap, uint64_t id)
{
    for (size_t i = 0; i < *n; i++)
        if (ids[i] == id)
            return;
    if (*n < cap)
        ids[(*n)++] = id;
}

/* Makes a string from the network safe to print in a table cell. */
static const char *cell(const char *s, char *buf, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++)
        buf[n++] = (unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
    buf[n] = '\0';
    return n ? buf : "-";
}

static void print_table(const struct ctl_node *nodes, size_t n)
{
    int leader = ctl_find_leader(nodes, n);
    uint64_t ids[CTL_MAX_MEMBERS + CTL_MAX_ENDPOINTS];
    size_t n_ids = 0, cap = sizeof(ids) / sizeof(ids[0]);
    /* Members: the leader's list, else every list seen, plus every node that answered. */
    for (size_t i = 0; i < n; i++) {
        if (!nodes[i].ok || (leader >= 0 && (int)i != leader))
            continue;
        for (uint32_t k = 0; k < nodes[i].st.n_members; k++)
            add_id(ids, &n_ids, cap, nodes[i].st.members[k].id);
    }
    for (size_t i = 0; i < n; i++)
        if (nodes[i].ok)
            add_id(ids, &n_ids, cap, nodes[i].st.node_id);
    printf("%-6s %-22s %-21s %-11s %-6s %-10s %-10s %-8s %s\n", "ID", "ADDRESS", "HTTP", "ROLE",
           "TERM", "MATCH", "NEXT", "LAG", "CONTACT");
    for (size_t k = 0; k < n_ids; k++) {
        uint64_t id = ids[k];
        int own = -1;
        for (size_t i = 0; i < n && own < 0; i++)
            if (nodes[i].ok && nodes[i].st.node_id == id)
                own = (int)i;
        const char *address = "";
        for (size_t i = 0; i < n && address[0] == '\0'; i++) {
            const struct ctl_member *m = nodes[i].ok ? member_in(&nodes[i].st, id) : NULL;
            if (m != NULL)
                address = m->address;
        }
        char abuf[64], hbuf[64], rbuf[32], role[40], term[24], match[24], next[24], lag[24],
            contact[24];
        snprintf(term, sizeof(term), "-");
        if (own >= 0) {
            snprintf(role, sizeof(role), "%s", cell(nodes[own].st.role, rbuf, sizeof(rbuf)));
            snprintf(term, sizeof(term), "%" PRIu64, nodes[own].st.term);
        } else {
            snprintf(role, sizeof(role), "unreachable");
        }
        const struct ctl_member *m = leader >= 0 ? member_in(&nodes[leader].st, id) : NULL;
        const struct ctl_member *kind = m != NULL  ? m
                                        : own >= 0 ? member_in(&nodes[own].st, id)
                                                   : NULL;
        if (kind != NULL && kind->witness)
            snprintf(role + strlen(role), sizeof(role) - strlen(role), "(w)");
        else if (kind != NULL && !kind->voter)
            snprintf(role + strlen(role), sizeof(role) - strlen(role), "(nv)");
        snprintf(match, sizeof(match), "-");
        snprintf(next, sizeof(next), "-");
        snprintf(lag, sizeof(lag), "-");
        snprintf(contact, sizeof(contact), "-");
        if (m != NULL && m->self) {
            snprintf(match, sizeof(match), "%" PRIu64, nodes[leader].st.last_index);
            snprintf(lag, sizeof(lag), "0");
        } else if (m != NULL && m->has_progress) {
            snprintf(match, sizeof(match), "%" PRIu64, m->match);
            snprintf(next, sizeof(next), "%" PRIu64, m->next);
            snprintf(lag, sizeof(lag), "%" PRIu64, m->lag);
            if (m->has_contact)
                snprintf(contact, sizeof(contact), "%" PRIu64 "ms", m->last_contact_ms);
            else
                snprintf(contact, sizeof(contact), "never");
        }
        printf("%-6" PRIu64 " %-22s %-21s %-11s %-6s %-10s %-10s %-8s %s\n", id,
               cell(address, abuf, sizeof(abuf)),
               own >= 0 ? cell(nodes[own].endpoint, hbuf, sizeof(hbuf)) : "-", role, term, match,
               next, lag, contact);
    }
    for (size_t i = 0; i < n; i++)
        if (!nodes[i].ok)
            printf("no status: %s\n", nodes[i].err);
    if (leader < 0)
        printf("no leader known\n");
}

static int cmd_status(const struct ctl_cluster *c, bool json)
{
    struct ctl_node *nodes = calloc(c->n, sizeof(*nodes));
    if (nodes == NULL) {
        fprintf(stderr, "craftctl: out of memory\n");
        return 1;
    }
    ctl_fetch_all(c, nodes);
    size_t up = 0;
    for (size_t i = 0; i < c->n; i++)
        up += nodes[i].ok;
    if (json)
        print_json(nodes, c->n);
    else
        print_table(nodes, c->n);
    ctl_nodes_free(nodes, c->n);
    free(nodes);
    return up > 0 ? 0 : 1;
}

/* ---- members, transfer, snapshot ---- */

static int cmd_members(const struct ctl_cluster *c, int argc, char **argv)
{
    char path[64], body[128];
    uint64_t id;
    if (argc < 2 || parse_id(argv[1], &id) != 0)
        return bad_usage("members wants add|remove|promote and a node id");
    snprintf(path, sizeof(path), "/members/%" PRIu64, id);
    if (strcmp(argv[0], "add") == 0) {
        const char *role = "";
        if (argc < 3 || argc > 4 || strlen(argv[2]) > 63 || strchr(argv[2], ':') == NULL)
            return bad_usage("members add wants ID RAFTADDR [--non-voting|--witness]");
        if (argc == 4 && strcmp(argv[3], "--non-voting") == 0)
            role = " non-voting";
        else if (argc == 4 && strcmp(argv[3], "--witness") == 0)
            role = " witness";
        else if (argc == 4)
            return bad_usage("members add: the role is --non-voting or --witness");
        for (const char *p = argv[2]; *p; p++)
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                return bad_usage("members add: RAFTADDR has a space or a control character");
        snprintf(body, sizeof(body), "%s%s", argv[2], role);
        return ctl_admin(c, "POST", path, body);
    }
    if (argc != 2)
        return bad_usage("too many arguments");
    if (strcmp(argv[0], "remove") == 0)
        return ctl_admin(c, "DELETE", path, NULL);
    if (strcmp(argv[0], "promote") == 0) {
        /* Re-adding a non-voting member as a voter promotes it; the server
         * wants its address again: take it from the leader's status. */
        struct ctl_node *nodes = calloc(c->n, sizeof(*nodes));
        if (nodes == NULL)
            return 1;
        ctl_fetch_all(c, nodes);
        body[0] = '\0';
        for (size_t i = 0; i < c->n && body[0] == '\0'; i++) {
            const struct ctl_member *m = nodes[i].ok ? member_in(&nodes[i].st, id) : NULL;
            if (m != NULL && m->address[0] != '\0')
                snprintf(body, sizeof(body), "%s", m->address);
        }
        ctl_nodes_free(nodes, c->n);
        free(nodes);
        if (body[0] == '\0') {
            fprintf(stderr, "craftctl: node %" PRIu64 " is not a member (no address known)\n", id);
            return 1;
        }
        return ctl_admin(c, "POST", path, body);
    }
    return bad_usage("members wants add, remove or promote");
}

/* ---- recover ---- */

static int parse_members(const char *text, struct ctl_recover_opts *o)
{
    char buf[2048];
    if (strlen(text) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", text);
    o->n_members = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->n_members == CTL_RECOVER_MAX_MEMBERS || parse_id(tok, &o->members[o->n_members]))
            return -1;
        o->n_members++;
    }
    return o->n_members > 0 ? 0 : -1;
}

static int cmd_recover(int argc, char **argv)
{
    struct ctl_recover_opts o;
    memset(&o, 0, sizeof(o));
    o.group = 1;
    bool have_members = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--inspect") == 0) {
            o.inspect = true;
        } else if (strcmp(a, "--truncate-after-snapshot") == 0) {
            o.truncate = true;
        } else if (strcmp(a, "--data") == 0 && v != NULL) {
            o.data_dir = v;
            i++;
        } else if (strcmp(a, "--id") == 0 && v != NULL) {
            if (parse_id(v, &o.node_id) != 0)
                return bad_usage("recover: --id wants a node id");
            i++;
        } else if (strcmp(a, "--group") == 0 && v != NULL) {
            if (parse_id(v, &o.group) != 0)
                return bad_usage("recover: --group wants a group id");
            i++;
        } else if (strcmp(a, "--members") == 0 && v != NULL) {
            if (parse_members(v, &o) != 0)
                return bad_usage("recover: --members wants node ids, comma-separated");
            have_members = true;
            i++;
        } else {
            return bad_usage("recover: unknown or incomplete argument");
        }
    }
    if (o.data_dir == NULL)
        return bad_usage("recover needs --data DIR");
    if (!o.inspect && (o.node_id == 0 || !have_members))
        return bad_usage("recover needs --id N and --members ID,... (or --inspect)");
    return ctl_recover(&o);
}

int main(int argc, char **argv)
{
    static char endpoints[8192];
    struct ctl_cluster c;
    memset(&c, 0, sizeof(c));
    c.timeout_ms = 3000;
    snprintf(endpoints, sizeof(endpoints), "%s", default_endpoints);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--endpoints") == 0 && i + 1 < argc) {
            if (strlen(argv[++i]) >= sizeof(endpoints))
                return bad_usage("--endpoints is too long");
            snprintf(endpoints, sizeof(endpoints), "%s", argv[i]);
        } else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            uint64_t t;
            if (parse_u64(argv[++i], &t) != 0 || t == 0 || t > 3600000)
                return bad_usage("--timeout-ms wants 1..3600000");
            c.timeout_ms = (unsigned)t;
        } else {
            return bad_usage("unknown option");
        }
    }
    if (i == argc)
        return bad_usage("no command");
    if (parse_endpoints(endpoints, &c) != 0)
        return bad_usage("--endpoints wants host:port,host:port,...");
    const char *cmd = argv[i++];
    int rest = argc - i;
    char **args = argv + i;
    if (strcmp(cmd, "status") == 0) {
        if (rest > 1 || (rest == 1 && strcmp(args[0], "--json") != 0))
            return bad_usage("status takes only --json");
        return cmd_status(&c, rest == 1);
    }
    if (strcmp(cmd, "members") == 0)
        return rest < 1 ? bad_usage("members wants add, remove or promote")
                        : cmd_members(&c, rest, args);
    if (strcmp(cmd, "transfer-leader") == 0) {
        uint64_t id;
        char path[64];
        if (rest != 1 || parse_id(args[0], &id) != 0)
            return bad_usage("transfer-leader wants a node id");
        snprintf(path, sizeof(path), "/admin/transfer/%" PRIu64, id);
        return ctl_admin(&c, "POST", path, NULL);
    }
    if (strcmp(cmd, "snapshot") == 0) {
        if (rest != 0)
            return bad_usage("snapshot takes no arguments");
        return ctl_admin(&c, "POST", "/admin/snapshot", NULL);
    }
    if (strcmp(cmd, "recover") == 0)
        return cmd_recover(rest, args);
    return bad_usage("unknown command");
}
