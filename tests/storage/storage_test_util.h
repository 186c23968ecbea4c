/* Helpers shared by the storage tests (tests/unit/test_wal*.c, test_snap*.c,
 * test_storage*.c): temporary directories, deterministic entry contents, a
 * log capture. Header-only so that each test stays one file. */
#ifndef CRAFT_TESTS_STORAGE_TEST_UTIL_H
#define CRAFT_TESTS_STORAGE_TEST_UTIL_H

#define _GNU_SOURCE /* mkdtemp, nftw */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <craft/wal.h>

/* Creates a fresh directory under $TMPDIR (or /tmp); free() the result. */
static inline char *tu_mkdtemp(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/craft-%s-XXXXXX", base != NULL && base[0] ? base : "/tmp", tag);
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

static inline int tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything in it, and frees dir. */
static inline void tu_rmtree(char *dir)
{
    nftw(dir, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static inline uint64_t tu_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Contents of entry (group, index, term): len bytes derived from the three,
 * so a reader can check any entry it finds without knowing what was written. */
static inline uint32_t tu_entry_len(uint64_t group, uint64_t index, uint64_t term)
{
    uint64_t s = group * 1000003u + index * 7919u + term;
    return (uint32_t)(tu_splitmix(&s) % 200);
}

static inline void tu_entry_fill(uint8_t *buf, uint32_t len, uint64_t group, uint64_t index,
                                 uint64_t term)
{
    uint64_t s = group ^ (index << 20) ^ (term << 44);
    for (uint32_t i = 0; i < len; i++)
        buf[i] = (uint8_t)tu_splitmix(&s);
}

/* 1 if e holds what tu_entry_fill would put there. */
static inline int tu_entry_check(const struct craft_entry *e, uint64_t group)
{
    uint8_t buf[256];
    if (e->len != tu_entry_len(group, e->index, e->term))
        return 0;
    tu_entry_fill(buf, e->len, group, e->index, e->term);
    return e->len == 0 || memcmp(buf, e->data, e->len) == 0;
}

/* A batch of generated entries [first, first + n) with term; free with tu_entries_free. */
static inline struct craft_entry *tu_entries(uint64_t group, uint64_t first, size_t n,
                                             uint64_t term)
{
    struct craft_entry *es = calloc(n, sizeof(*es));
    for (size_t i = 0; i < n; i++) {
        uint64_t index = first + i;
        uint32_t len = tu_entry_len(group, index, term);
        uint8_t *data = malloc(len ? len : 1);
        tu_entry_fill(data, len, group, index, term);
        es[i] =
            (struct craft_entry){.term = term, .index = index, .type = 0, .len = len, .data = data};
    }
    return es;
}

static inline void tu_entries_free(struct craft_entry *es, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)es[i].data);
    free(es);
}

/* A log sink that keeps the last lines, for tests that expect a log line. */
struct tu_log {
    char text[8192];
    int lines;
};

static inline void tu_log_fn(void *arg, int level, const char *message)
{
    struct tu_log *lg = arg;
    (void)level;
    size_t used = strlen(lg->text);
    if (used + strlen(message) + 2 < sizeof(lg->text)) {
        strcat(lg->text, message);
        strcat(lg->text, "\n");
    }
    lg->lines++;
}

/* Path of file name inside dir, in a static buffer. */
static inline const char *tu_path(const char *dir, const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof(buf), "%s/%s", dir, name);
    return buf;
}

#endif /* CRAFT_TESTS_STORAGE_TEST_UTIL_H */
