/* craftctl's bounded JSON scanner for craftkv's /status (status_json.h).
 *
 * Recursive descent over a cursor that never reads past its end; depth is
 * bounded so a hostile body cannot exhaust the stack, and numbers are
 * checked for overflow. Only unsigned integers are taken as values; other
 * numbers are validated and skipped. */
#include "status_json.h"

#include <stdio.h>
#include <string.h>

struct scan {
    const char *p, *end;
    const char *why; /* first error */
};

static bool fail(struct scan *s, const char *why)
{
    if (s->why == NULL)
        s->why = why;
    return false;
}

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool expect(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c)
        return fail(s, "unexpected character");
    s->p++;
    return true;
}

static bool hexval(char c, unsigned *v)
{
    if (c >= '0' && c <= '9')
        *v = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
        *v = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
        *v = (unsigned)(c - 'A' + 10);
    else
        return false;
    return true;
}

/* A string; its bytes (escapes decoded; \u escapes above 0x7f become '?')
 * go to out when out is not NULL, and must fit in cap - 1. */
static bool string(struct scan *s, char *out, size_t cap)
{
    size_t n = 0;
    if (!expect(s, '"'))
        return false;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p++;
        if (c < 0x20)
            return fail(s, "control byte in a string");
        if (c == '\\') {
            if (s->p >= s->end)
                return fail(s, "unfinished escape");
            char e = *s->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                c = (unsigned char)e;
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    unsigned h;
                    if (s->p >= s->end || !hexval(*s->p, &h))
                        return fail(s, "bad \\u escape");
                    v = v * 16 + h;
                    s->p++;
                }
                c = v < 0x80 && v >= 0x20 ? (unsigned char)v : '?';
                break;
            }
            default:
                return fail(s, "bad escape");
            }
        }
        if (out != NULL) {
            if (n + 1 >= cap)
                return fail(s, "string too long for its field");
            out[n++] = (char)c;
        }
    }
    if (s->p >= s->end)
        return fail(s, "unterminated string");
    s->p++;
    if (out != NULL)
        out[n] = '\0';
    return true;
}

/* A JSON number; its value to *out when it is an unsigned integer that fits
 * (out may be NULL). *is_uint says whether it was one. */
static bool number(struct scan *s, uint64_t *out, bool *is_uint)
{
    skip_ws(s);
    const char *start = s->p;
    bool neg = false, frac = false;
    uint64_t v = 0;
    bool overflow = false;
    if (s->p < s->end && *s->p == '-') {
        neg = true;
        s->p++;
    }
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return fail(s, "bad number");
    if (*s->p == '0' && s->p + 1 < s->end && s->p[1] >= '0' && s->p[1] <= '9')
        return fail(s, "leading zero");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        unsigned d = (unsigned)(*s->p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
        s->p++;
    }
    if (s->p < s->end && *s->p == '.') {
        frac = true;
        s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return fail(s, "bad number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        frac = true;
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || *s->p < '0' || *s->p > '9')
            return fail(s, "bad number");
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
            s->p++;
    }
    *is_uint = !neg && !frac && !overflow && s->p > start;
    if (out != NULL && *is_uint)
        *out = v;
    return true;
}

static bool literal(struct scan *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail(s, "bad literal");
    s->p += n;
    return true;
}

static bool value(struct scan *s, int depth);

static bool skip_container(struct scan *s, int depth, char open, char close)
{
    if (depth >= CTL_JSON_MAX_DEPTH)
        return fail(s, "nested too deeply");
    if (!expect(s, open))
        return false;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        if (open == '{' && (!string(s, NULL, 0) || !expect(s, ':')))
            return false;
        if (!value(s, depth + 1))
            return false;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, close);
    }
}

/* Any value, validated and skipped. */
static bool value(struct scan *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end)
        return fail(s, "unexpected end");
    bool is_uint;
    switch (*s->p) {
    case '{':
        return skip_container(s, depth, '{', '}');
    case '[':
        return skip_container(s, depth, '[', ']');
    case '"':
        return string(s, NULL, 0);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        return number(s, NULL, &is_uint);
    }
}

static bool get_u64(struct scan *s, uint64_t *out)
{
    bool is_uint = false;
    if (!number(s, out, &is_uint))
        return false;
    return is_uint ? true : fail(s, "expected an unsigned integer");
}

static bool get_bool(struct scan *s, bool *out)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == 't') {
        *out = true;
        return literal(s, "true");
    }
    *out = false;
    return literal(s, "false");
}

/* The key of the next member of an object, into key (cut keys never match
 * a known field: they are longer than any). */
static bool object_key(struct scan *s, char *key, size_t cap)
{
    const char *save_why = s->why;
    const char *start = s->p;
    if (string(s, key, cap))
        return expect(s, ':');
    /* Too long for key: no field of ours; validate it as a plain string. */
    s->why = save_why;
    s->p = start;
    key[0] = '\0';
    return string(s, NULL, 0) && expect(s, ':');
}

/* Iterates over an object: calls field(s, key, arg, depth) for each member,
 * which must consume the value. */
typedef bool (*field_fn)(struct scan *s, const char *key, void *arg, int depth);

static bool object(struct scan *s, int depth, field_fn field, void *arg)
{
    char key[32];
    if (depth >= CTL_JSON_MAX_DEPTH)
        return fail(s, "nested too deeply");
    if (!expect(s, '{'))
        return false;
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return true;
    }
    for (;;) {
        if (!object_key(s, key, sizeof(key)) || !field(s, key, arg, depth + 1))
            return false;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, '}');
    }
}

static bool member_field(struct scan *s, const char *key, void *arg, int depth)
{
    struct ctl_member *m = arg;
    if (strcmp(key, "id") == 0)
        return get_u64(s, &m->id);
    if (strcmp(key, "self") == 0)
        return get_bool(s, &m->self);
    if (strcmp(key, "voter") == 0)
        return get_bool(s, &m->voter);
    if (strcmp(key, "witness") == 0)
        return get_bool(s, &m->witness);
    if (strcmp(key, "recent_active") == 0)
        return get_bool(s, &m->recent_active);
    if (strcmp(key, "address") == 0)
        return string(s, m->address, sizeof(m->address));
    if (strcmp(key, "role") == 0)
        return string(s, m->role, sizeof(m->role));
    if (strcmp(key, "progress") == 0)
        return string(s, m->progress, sizeof(m->progress));
    if (strcmp(key, "match") == 0) {
        m->has_progress = true;
        return get_u64(s, &m->match);
    }
    if (strcmp(key, "next") == 0)
        return get_u64(s, &m->next);
    if (strcmp(key, "lag") == 0)
        return get_u64(s, &m->lag);
    if (strcmp(key, "last_contact_ms") == 0) {
        skip_ws(s);
        if (s->p < s->end && *s->p == 'n')
            return literal(s, "null");
        m->has_contact = true;
        return get_u64(s, &m->last_contact_ms);
    }
    return value(s, depth);
}

static bool members(struct scan *s, struct ctl_status *st, int depth)
{
    if (depth >= CTL_JSON_MAX_DEPTH)
        return fail(s, "nested too deeply");
    if (!expect(s, '['))
        return false;
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return true;
    }
    for (;;) {
        if (st->n_members == CTL_MAX_MEMBERS)
            return fail(s, "too many members");
        struct ctl_member *m = &st->members[st->n_members];
        memset(m, 0, sizeof(*m));
        if (!object(s, depth + 1, member_field, m))
            return false;
        st->n_members++;
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        return expect(s, ']');
    }
}

static bool status_field(struct scan *s, const char *key, void *arg, int depth)
{
    struct ctl_status *st = arg;
    static const struct {
        const char *name;
        size_t offset;
    } nums[] = {
        {"node_id", offsetof(struct ctl_status, node_id)},
        {"group_id", offsetof(struct ctl_status, group_id)},
        {"term", offsetof(struct ctl_status, term)},
        {"leader", offsetof(struct ctl_status, leader)},
        {"commit", offsetof(struct ctl_status, commit)},
        {"applied", offsetof(struct ctl_status, applied)},
        {"fsm_applied", offsetof(struct ctl_status, fsm_applied)},
        {"snapshot_index", offsetof(struct ctl_status, snapshot_index)},
        {"first_index", offsetof(struct ctl_status, first_index)},
        {"last_index", offsetof(struct ctl_status, last_index)},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
        if (strcmp(key, nums[i].name) == 0)
            return get_u64(s, (uint64_t *)(void *)((char *)st + nums[i].offset));
    if (strcmp(key, "role") == 0)
        return string(s, st->role, sizeof(st->role));
    if (strcmp(key, "members") == 0)
        return members(s, st, depth);
    return value(s, depth);
}

static bool at_end(struct scan *s)
{
    skip_ws(s);
    return s->p == s->end ? true : fail(s, "trailing bytes");
}

int ctl_status_parse(const char *text, size_t len, struct ctl_status *out, char *err,
                     size_t err_cap)
{
    struct scan s = {.p = text, .end = text + len, .why = NULL};
    memset(out, 0, sizeof(*out));
    if (object(&s, 0, status_field, out) && at_end(&s) && out->node_id != 0)
        return 0;
    snprintf(err, err_cap, "bad /status JSON at byte %zu: %s", (size_t)(s.p - text),
             s.why != NULL ? s.why : "no node_id");
    return -1;
}

bool ctl_json_valid(const char *text, size_t len)
{
    struct scan s = {.p = text, .end = text + len, .why = NULL};
    return value(&s, 0) && at_end(&s);
}
