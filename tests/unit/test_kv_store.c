/* craftkv's LMDB state machine (src/kv/store.c): batches applied in one
 * transaction with Redis's replies and errors, the applied index, snapshots
 * that restore to the same state, and reads (GET, SCAN, KEYS, DBSIZE). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv/command.h"
#include "kv/glob.h"
#include "kv/store.h"

#define MAP_SIZE (64u * 1024 * 1024)
#define MAX_WORDS 16

struct fixture {
    char dir[64];
    struct kv_store *store;
};

static void make_dir(char *dir)
{
    strcpy(dir, "/tmp/test_kv_store.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char err[256];
    assert_non_null(f);
    make_dir(f->dir);
    assert_int_equal(kv_store_open(f->dir, MAP_SIZE, KV_STORE_NO_SYNC, &f->store, err, 256), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    kv_store_close(f->store);
    remove_dir(f->dir);
    free(f);
    return 0;
}

/* Appends the space-separated request to a batch (words borrow from a copy
 * that must outlive the batch encoding: kv_batch_add copies the bytes). */
static void add(struct kv_buf *batch, const char *request)
{
    struct kv_slice argv[MAX_WORDS];
    char copy[256], err[128];
    size_t argc = 0;
    struct kv_cmd cmd;

    snprintf(copy, sizeof(copy), "%s", request);
    for (char *w = strtok(copy, " "); w != NULL && argc < MAX_WORDS; w = strtok(NULL, " ")) {
        argv[argc].ptr = w;
        argv[argc].len = strlen(w);
        argc++;
    }
    assert_int_equal(kv_cmd_parse(argc, argv, &cmd, err, sizeof(err)), 0);
    assert_int_equal(kv_batch_add(batch, &cmd), 0);
}

/* Applies one entry holding the batch at index; returns its replies as RESP2. */
static void apply_one(struct kv_store *s, const struct kv_buf *batch, uint64_t index,
                      struct kv_buf *resp)
{
    struct craft_fsm_entry e = {.index = index, .data = batch->data, .len = (uint32_t)batch->len};
    struct kv_reply reply;
    size_t pos = 0, n = 0;
    int rc;

    assert_int_equal(kv_store_apply(s, &e, 1, index), 0);
    kv_buf_reset(resp);
    while ((rc = kv_reply_next(e.result.data, e.result.len, &pos, &reply)) == 1) {
        kv_reply_to_resp(&reply, 2, resp);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, e.result.value);
    free(e.result.data);
}

static void assert_resp(const struct kv_buf *resp, const char *want)
{
    if (resp->len != strlen(want) || memcmp(resp->data, want, resp->len) != 0)
        fail_msg("got %.*s, want %s", (int)resp->len, resp->data, want);
}

static void assert_value(struct kv_store *s, const char *key, const char *want)
{
    struct kv_read r;
    struct kv_slice v;
    assert_int_equal(kv_read_begin(s, &r), 0);
    if (want == NULL) {
        assert_int_equal(kv_read_get(&r, key, strlen(key), &v), 0);
    } else {
        assert_int_equal(kv_read_get(&r, key, strlen(key), &v), 1);
        assert_int_equal(v.len, strlen(want));
        assert_memory_equal(v.ptr, want, v.len);
    }
    kv_read_end(&r);
}

/* Runs the requests (separated by '|') as one batch at index. */
static void run(struct kv_store *s, uint64_t index, const char *requests, const char *want)
{
    struct kv_buf batch, resp;
    char copy[1024];
    char *save = NULL;

    kv_buf_init(&batch);
    kv_buf_init(&resp);
    kv_batch_init(&batch);
    snprintf(copy, sizeof(copy), "%s", requests);
    for (char *req = strtok_r(copy, "|", &save); req != NULL; req = strtok_r(NULL, "|", &save))
        add(&batch, req);
    apply_one(s, &batch, index, &resp);
    assert_resp(&resp, want);
    kv_buf_free(&batch);
    kv_buf_free(&resp);
}

static void test_writes_answer_like_redis(void **state)
{
    struct fixture *f = *state;

    run(f->store, 1, "SET a 1|SET a 2 NX|SET b x XX|SET b y NX|SET b z XX",
        "+OK\r\n$-1\r\n$-1\r\n+OK\r\n+OK\r\n");
    assert_value(f->store, "a", "1");
    assert_value(f->store, "b", "z");
    run(f->store, 2, "INCR n|INCRBY n 41|DECR n|DECRBY n 10|INCR a",
        ":1\r\n:42\r\n:41\r\n:31\r\n:2\r\n");
    run(f->store, 3, "INCR b", "-ERR value is not an integer or out of range\r\n");
    run(f->store, 4, "SET big 9223372036854775806|INCR big|INCR big|DECRBY big 1",
        "+OK\r\n:9223372036854775807\r\n-ERR increment or decrement would overflow\r\n"
        ":9223372036854775806\r\n");
    run(f->store, 5, "SET small -9223372036854775807|DECR small|DECR small",
        "+OK\r\n:-9223372036854775808\r\n-ERR increment or decrement would overflow\r\n");
    run(f->store, 6, "APPEND s abc|APPEND s de|DEL s s missing a", ":3\r\n:5\r\n:2\r\n");
    assert_value(f->store, "s", NULL);
    run(f->store, 7, "MSET k1 v1 k2 v2|CAS k1 v1 w1|CAS k2 nope w2|CAS gone x y",
        "+OK\r\n:1\r\n:0\r\n:0\r\n");
    assert_value(f->store, "k1", "w1");
    assert_value(f->store, "k2", "v2");
    /* Leading zeros and spaces are not integers, as in Redis. */
    run(f->store, 8, "SET z 007|INCR z", "+OK\r\n-ERR value is not an integer or out of range\r\n");
    assert_int_equal(kv_store_last_applied(f->store), 8);
}

static void test_malformed_entry_is_answered_and_the_rest_applies(void **state)
{
    struct fixture *f = *state;
    static const char junk[] = {'K', 1, 9, 0, 0, 0, 1};
    struct kv_buf batch;
    struct craft_fsm_entry e[3];

    kv_buf_init(&batch);
    kv_batch_init(&batch);
    add(&batch, "SET x 1");
    memset(e, 0, sizeof(e));
    e[0].index = 10;
    e[0].data = junk;
    e[0].len = sizeof(junk);
    e[1].index = 11; /* an empty entry: nothing to apply */
    e[2].index = 12;
    e[2].data = batch.data;
    e[2].len = (uint32_t)batch.len;
    assert_int_equal(kv_store_apply(f->store, e, 3, 12), 0);
    assert_int_equal(e[0].result.value, 1);
    assert_memory_equal((char *)e[0].result.data + 3, "ERR malformed command batch", 27);
    assert_null(e[1].result.data);
    assert_int_equal(e[2].result.value, 1);
    assert_value(f->store, "x", "1");
    assert_int_equal(kv_store_last_applied(f->store), 12);
    for (int i = 0; i < 3; i++)
        free(e[i].result.data);
    kv_buf_free(&batch);

    /* n may be 0: only the applied index moves. */
    assert_int_equal(kv_store_apply(f->store, NULL, 0, 20), 0);
    assert_int_equal(kv_store_last_applied(f->store), 20);
}

static void test_last_applied_survives_reopen(void **state)
{
    struct fixture *f = *state;
    char err[256];

    run(f->store, 41, "SET persisted yes", "+OK\r\n");
    kv_store_close(f->store);
    assert_int_equal(kv_store_open(f->dir, MAP_SIZE, 0, &f->store, err, sizeof(err)), 0);
    assert_int_equal(kv_store_last_applied(f->store), 41);
    assert_value(f->store, "persisted", "yes");
}

/* Snapshot streams: a writer into memory, a reader that hands out a few
 * bytes at a time (so pairs straddle reads). */
struct memory_stream {
    struct kv_buf buf;
    size_t pos;
    size_t step;
};

static int memory_write(void *data, const void *buf, size_t len)
{
    struct memory_stream *m = data;
    return kv_buf_append(&m->buf, buf, len);
}

static int memory_read(void *data, void *buf, size_t cap, size_t *n)
{
    struct memory_stream *m = data;
    size_t take = m->buf.len - m->pos;
    if (take > cap)
        take = cap;
    if (take > m->step)
        take = m->step;
    memcpy(buf, m->buf.data + m->pos, take);
    m->pos += take;
    *n = take;
    return 0;
}

static void fill(struct kv_store *s)
{
    char value[3000];
    struct kv_buf batch, resp;
    kv_buf_init(&batch);
    kv_buf_init(&resp);
    kv_batch_init(&batch);
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < 200; i++) {
        char key[16];
        struct kv_slice argv[] = {{key, (size_t)snprintf(key, sizeof(key), "key:%03d", i)},
                                  {value, (size_t)(i * 13)}};
        struct kv_cmd cmd = {.op = KV_OP_SET, .argc = 2, .argv = argv};
        assert_int_equal(kv_batch_add(&batch, &cmd), 0);
    }
    {
        struct kv_slice argv[] = {{"", 0}, {"empty key", 9}};
        struct kv_cmd cmd = {.op = KV_OP_SET, .argc = 2, .argv = argv};
        assert_int_equal(kv_batch_add(&batch, &cmd), 0);
    }
    apply_one(s, &batch, 77, &resp);
    kv_buf_free(&batch);
    kv_buf_free(&resp);
}

static void test_save_then_restore_gives_the_same_state(void **state)
{
    struct fixture *f = *state;
    struct memory_stream m = {.step = 7};
    struct craft_writer w = {&m, memory_write};
    struct craft_reader r = {&m, memory_read};
    struct kv_store *fresh;
    char dir[64], err[256];
    uint64_t h1, h2;

    kv_buf_init(&m.buf);
    fill(f->store);
    assert_int_equal(kv_store_hash(f->store, &h1), 0);
    assert_int_equal(kv_store_save(f->store, &w), 0);

    make_dir(dir);
    assert_int_equal(kv_store_open(dir, MAP_SIZE, KV_STORE_NO_SYNC, &fresh, err, 256), 0);
    run(fresh, 3, "SET stale leftover", "+OK\r\n");
    assert_int_equal(kv_store_restore(fresh, &r, 77), 0);
    assert_int_equal(kv_store_hash(fresh, &h2), 0);
    assert_true(h1 == h2);
    assert_int_equal(kv_store_last_applied(fresh), 77);
    assert_value(fresh, "stale", NULL);
    assert_value(fresh, "", "empty key");

    /* A flipped byte fails the checksum; the store then says "rebuild me". */
    m.buf.data[m.buf.len / 2] ^= 0x40;
    m.pos = 0;
    assert_int_equal(kv_store_restore(fresh, &r, 78), KV_STORE_ECORRUPT);
    assert_int_equal(kv_store_last_applied(fresh), 0);
    /* A truncated stream fails too. */
    m.buf.data[m.buf.len / 2] ^= 0x40;
    m.buf.len -= 1;
    m.pos = 0;
    assert_int_equal(kv_store_restore(fresh, &r, 78), KV_STORE_ECORRUPT);
    m.buf.len += 1;
    m.pos = 0;
    m.step = 1 << 20;
    assert_int_equal(kv_store_restore(fresh, &r, 79), 0);
    assert_int_equal(kv_store_hash(fresh, &h2), 0);
    assert_true(h1 == h2);

    kv_store_close(fresh);
    remove_dir(dir);
    kv_buf_free(&m.buf);
}

struct collected {
    int n;
    char keys[256][16];
};

static int collect(void *arg, const char *key, size_t len)
{
    struct collected *c = arg;
    assert_true(c->n < 256 && len < 16);
    memcpy(c->keys[c->n], key, len);
    c->keys[c->n][len] = '\0';
    c->n++;
    return 0;
}

static void test_scan_visits_every_key_once(void **state)
{
    struct fixture *f = *state;
    struct collected c = {0};
    struct kv_read r;
    uint64_t cursor = 0, size;
    int calls = 0;

    fill(f->store);
    assert_int_equal(kv_read_begin(f->store, &r), 0);
    assert_int_equal(kv_read_dbsize(&r, &size), 0);
    assert_int_equal(size, 201);
    do {
        assert_int_equal(kv_read_scan(&r, cursor, "key:1*", 6, 7, collect, &c, &cursor), 0);
        calls++;
    } while (cursor != 0);
    assert_int_equal(c.n, 100);
    assert_true(calls >= 201 / 7);
    for (int i = 0; i < 100; i++) {
        char want[16];
        snprintf(want, sizeof(want), "key:%03d", 100 + i);
        assert_string_equal(c.keys[i], want);
    }
    assert_int_equal(kv_read_scan(&r, 999999, NULL, 0, 10, collect, &c, &cursor),
                     KV_STORE_EBADCURSOR);
    c.n = 0;
    assert_int_equal(kv_read_keys(&r, "key:0[0-1]?", 11, collect, &c), 0);
    assert_int_equal(c.n, 20);
    assert_string_equal(c.keys[0], "key:000");
    kv_read_end(&r);
}

static void test_glob_matches_like_redis(void **state)
{
    (void)state;
#define MATCH(p, s) kv_glob_match((p), strlen(p), (s), strlen(s))
    assert_true(MATCH("*", ""));
    assert_true(MATCH("h?llo", "hello"));
    assert_true(MATCH("h*llo", "heeeello"));
    assert_true(MATCH("h[ae]llo", "hallo"));
    assert_false(MATCH("h[ae]llo", "hillo"));
    assert_true(MATCH("h[^e]llo", "hallo"));
    assert_false(MATCH("h[^e]llo", "hello"));
    assert_true(MATCH("h[a-b]llo", "hbllo"));
    assert_true(MATCH("h[b-a]llo", "hallo"));
    assert_true(MATCH("h\\*llo", "h*llo"));
    assert_false(MATCH("h\\*llo", "hello"));
    assert_true(MATCH("*a*b*c", "xxaxxbxxc"));
    assert_false(MATCH("*a*b*c", "xxaxxbxxcx"));
    assert_false(MATCH("a*", "b"));
    assert_true(MATCH("[abc", "c"));
    /* Many stars against a long string stay quick (no backtracking blowup). */
    {
        char s[4001];
        memset(s, 'a', 4000);
        s[4000] = '\0';
        assert_false(MATCH("*a*a*a*a*a*a*a*a*a*a*a*a*b", s));
    }
#undef MATCH
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_answer_like_redis, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_entry_is_answered_and_the_rest_applies,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_applied_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_save_then_restore_gives_the_same_state, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_scan_visits_every_key_once, setup, teardown),
        cmocka_unit_test(test_glob_matches_like_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
