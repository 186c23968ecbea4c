/* craft-bench: the dispatcher and the helpers every mode shares (bench.h).
 *
 *   craft-bench <mode> [--json] [mode options]
 *   craft-bench --help
 *
 * Modes are registered in the table below. A mode built from a file another
 * engineer may not have written yet (bench_wal.c) is referenced through a
 * weak symbol, so the executable links with or without it and says so at run
 * time. This file also interposes malloc and friends to count allocations
 * (see bench.h), and prints figures as a table or as JSON lines.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* Optional modes: NULL when their file is not part of the build. */
extern int bench_wal_main(int argc, char **argv) __attribute__((weak));

struct mode {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct mode modes[] = {
    {"core", bench_core_main,
     "raft core: proposals committed per second, ns and heap allocations per proposal "
     "(1 voter and a 3-node in-memory cluster)"},
    {"wal", bench_wal_main, "write-ahead log: append and fsync throughput and latency"},
    {"cluster", bench_cluster_main,
     "three hosts on loopback: proposals per second, latency, CPU and fsyncs per proposal"},
};

#define N_MODES (sizeof(modes) / sizeof(modes[0]))

/* ------------------------------------------------------------------------
 * Heap allocation counting.
 * ------------------------------------------------------------------------ */
bool bench_alloc_counting;
unsigned bench_alloc_slot;
uint64_t bench_alloc_counts[BENCH_ALLOC_SLOTS];

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BENCH_INTERPOSE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define BENCH_INTERPOSE 0
#endif
#endif
#ifndef BENCH_INTERPOSE
#define BENCH_INTERPOSE 1
#endif

#if BENCH_INTERPOSE
/* glibc's own entry points: defining malloc here makes every caller in the
 * process (the craft library included) come through these wrappers. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);

static inline void count_one(void)
{
    if (bench_alloc_counting) {
        bench_alloc_counts[bench_alloc_slot]++;
    }
}

void *malloc(size_t size)
{
    count_one();
    return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    count_one();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    if (size > 0) {
        count_one();
    }
    return __libc_realloc(p, size);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

bool bench_alloc_available(void)
{
    return BENCH_INTERPOSE != 0;
}

void bench_alloc_start(void)
{
    memset(bench_alloc_counts, 0, sizeof(bench_alloc_counts));
    bench_alloc_slot = 0;
    bench_alloc_counting = true;
}

void bench_alloc_stop(void)
{
    bench_alloc_counting = false;
}

/* ------------------------------------------------------------------------
 * Time and statistics.
 * ------------------------------------------------------------------------ */
uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_now(void)
{
    return (double)bench_now_ns() / 1e9;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bench_percentile(double *v, size_t n, double p)
{
    size_t rank;

    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), compare_double);
    if (!(p > 0)) {
        return v[0];
    }
    if (p >= 100) {
        return v[n - 1];
    }
    /* Nearest rank: the smallest value with at least p% of values <= it. */
    rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) {
        rank = 1;
    }
    return v[rank - 1];
}

/* ------------------------------------------------------------------------
 * Output.
 * ------------------------------------------------------------------------ */
static bool json_output;

struct figure {
    char mode[32];
    char case_name[96];
    char name[64];
    char unit[32];
    double value;
};

static struct figure *figures;
static size_t n_figures, cap_figures;

bool bench_json(void)
{
    return json_output;
}

void bench_set_json(bool json)
{
    json_output = json;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (c < 0x20) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

static void copy_string(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src != NULL ? src : "");
}

void bench_report_case(const char *mode, const char *case_name, const char *name, double value,
                       const char *unit)
{
    if (json_output) {
        fputs("{\"mode\":", stdout);
        json_string(stdout, mode != NULL ? mode : "");
        if (case_name != NULL && case_name[0] != '\0') {
            fputs(",\"case\":", stdout);
            json_string(stdout, case_name);
        }
        fputs(",\"name\":", stdout);
        json_string(stdout, name != NULL ? name : "");
        if (isfinite(value)) {
            printf(",\"value\":%.9g", value);
        } else {
            fputs(",\"value\":null", stdout);
        }
        fputs(",\"unit\":", stdout);
        json_string(stdout, unit != NULL ? unit : "");
        fputs("}\n", stdout);
        fflush(stdout);
        return;
    }
    if (n_figures == cap_figures) {
        size_t cap = cap_figures ? cap_figures * 2 : 64;
        struct figure *v = realloc(figures, cap * sizeof(*v));
        if (v == NULL) {
            fprintf(stderr, "craft-bench: out of memory keeping figures\n");
            return;
        }
        figures = v;
        cap_figures = cap;
    }
    copy_string(figures[n_figures].mode, sizeof(figures[n_figures].mode), mode);
    copy_string(figures[n_figures].case_name, sizeof(figures[n_figures].case_name), case_name);
    copy_string(figures[n_figures].name, sizeof(figures[n_figures].name), name);
    copy_string(figures[n_figures].unit, sizeof(figures[n_figures].unit), unit);
    figures[n_figures].value = value;
    n_figures++;
}

void bench_report(const char *mode, const char *name, double value, const char *unit)
{
    bench_report_case(mode, NULL, name, value, unit);
}

static void format_value(char *buf, size_t cap, double v)
{
    double a = fabs(v);

    if (!isfinite(v)) {
        snprintf(buf, cap, "-");
    } else if (a >= 100 || (v == floor(v) && a < 1e15)) {
        snprintf(buf, cap, "%.0f", v);
    } else if (a >= 1) {
        snprintf(buf, cap, "%.2f", v);
    } else {
        snprintf(buf, cap, "%.3f", v);
    }
}

/* Index of s in names[0..n), or n. */
static size_t find_name(const char *const *names, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n && strcmp(names[i], s) != 0; i++) {
    }
    return i;
}

#define TABLE_MAX 128

/* One table for the figures of one mode that have a case. */
static void print_table(const char *mode)
{
    const char *cases[TABLE_MAX], *names[TABLE_MAX], *units[TABLE_MAX];
    int widths[TABLE_MAX];
    size_t n_cases = 0, n_names = 0, i, j, k;
    int case_width = (int)strlen(mode);
    char buf[64];

    for (k = 0; k < n_figures; k++) {
        const struct figure *f = &figures[k];
        if (strcmp(f->mode, mode) != 0 || f->case_name[0] == '\0') {
            continue;
        }
        if (find_name(cases, n_cases, f->case_name) == n_cases && n_cases < TABLE_MAX) {
            cases[n_cases++] = f->case_name;
            if ((int)strlen(f->case_name) > case_width) {
                case_width = (int)strlen(f->case_name);
            }
        }
        if (find_name(names, n_names, f->name) == n_names && n_names < TABLE_MAX) {
            units[n_names] = f->unit;
            names[n_names++] = f->name;
        }
    }
    if (n_cases == 0) {
        return;
    }
    for (j = 0; j < n_names; j++) {
        widths[j] = (int)strlen(names[j]);
        if ((int)strlen(units[j]) + 2 > widths[j]) {
            widths[j] = (int)strlen(units[j]) + 2;
        }
        for (k = 0; k < n_figures; k++) {
            if (strcmp(figures[k].mode, mode) == 0 && strcmp(figures[k].name, names[j]) == 0) {
                format_value(buf, sizeof(buf), figures[k].value);
                if ((int)strlen(buf) > widths[j]) {
                    widths[j] = (int)strlen(buf);
                }
            }
        }
    }
    printf("%-*s", case_width, mode);
    for (j = 0; j < n_names; j++) {
        printf("  %*s", widths[j], names[j]);
    }
    printf("\n%-*s", case_width, "");
    for (j = 0; j < n_names; j++) {
        snprintf(buf, sizeof(buf), "(%s)", units[j]);
        printf("  %*s", widths[j], buf);
    }
    printf("\n");
    for (i = 0; i < n_cases; i++) {
        printf("%-*s", case_width, cases[i]);
        for (j = 0; j < n_names; j++) {
            snprintf(buf, sizeof(buf), "-");
            /* The last figure reported for (case, name) wins. */
            for (k = 0; k < n_figures; k++) {
                const struct figure *f = &figures[k];
                if (strcmp(f->mode, mode) == 0 && strcmp(f->case_name, cases[i]) == 0 &&
                    strcmp(f->name, names[j]) == 0) {
                    format_value(buf, sizeof(buf), f->value);
                }
            }
            printf("  %*s", widths[j], buf);
        }
        printf("\n");
    }
}

void bench_flush(void)
{
    const char *done[TABLE_MAX];
    size_t n_done = 0, k;
    char buf[64];

    if (json_output) {
        return;
    }
    for (k = 0; k < n_figures; k++) {
        const struct figure *f = &figures[k];
        if (f->case_name[0] == '\0') {
            format_value(buf, sizeof(buf), f->value);
            printf("%s  %-40s %14s %s\n", f->mode, f->name, buf, f->unit);
        } else if (find_name(done, n_done, f->mode) == n_done && n_done < TABLE_MAX) {
            done[n_done++] = f->mode;
            print_table(f->mode);
        }
    }
    fflush(stdout);
    free(figures);
    figures = NULL;
    n_figures = cap_figures = 0;
}

/* ------------------------------------------------------------------------
 * Command line.
 * ------------------------------------------------------------------------ */
bool bench_parse_double(const char *s, double min, double *out)
{
    char *end;
    double v;

    if (s == NULL || *s == '\0') {
        return false;
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min) {
        return false;
    }
    *out = v;
    return true;
}

bool bench_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static void usage(FILE *f)
{
    size_t i;

    fprintf(f, "usage: craft-bench <mode> [--json] [options]\n"
               "       craft-bench <mode> --help\n\n"
               "Prints a table of figures, or with --json one JSON object per line per figure:\n"
               "  {\"mode\":..,\"case\":..,\"name\":..,\"value\":..,\"unit\":..}\n\n"
               "modes:\n");
    for (i = 0; i < N_MODES; i++) {
        fprintf(f, "  %-7s %s%s\n", modes[i].name, modes[i].summary,
                modes[i].run == NULL ? " (not built)" : "");
    }
}

int main(int argc, char **argv)
{
    const struct mode *mode = NULL;
    int i, n = 0, rc;

    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (i = 0; i < (int)N_MODES; i++) {
        if (strcmp(argv[1], modes[i].name) == 0) {
            mode = &modes[i];
        }
    }
    if (mode == NULL) {
        fprintf(stderr, "craft-bench: unknown mode '%s'\n\n", argv[1]);
        usage(stderr);
        return 2;
    }
    if (mode->run == NULL) {
        fprintf(stderr, "craft-bench: %s mode not built\n", mode->name);
        return 1;
    }
    /* The mode sees argv[0] = its name and its own options; --json is common. */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            bench_set_json(true);
        } else {
            argv[1 + n++] = argv[i];
        }
    }
    argv[1 + n] = NULL;
    rc = mode->run(n, argv + 1);
    bench_flush();
    return rc;
}
