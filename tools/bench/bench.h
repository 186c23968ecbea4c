/* craft-bench: what the benchmark modes share.
 *
 * tools/bench/main.c is the dispatcher (`craft-bench <mode> [options]`) and
 * holds these helpers; every mode lives in a file of its own and exposes one
 * `int bench_<mode>_main(int argc, char **argv)`, registered in main.c's
 * table. argv[0] is the mode's name; main() has already removed the common
 * option `--json` from argv and set the output format.
 *
 * A mode prints its figures only through bench_report() or
 * bench_report_case(): for people a table on stdout, with --json one JSON
 * object per line per figure for scripts. Progress and notes go to stderr.
 *
 * Single threaded except where noted: the allocation counters are only
 * meaningful while one thread allocates.
 */
#ifndef CRAFT_BENCH_H
#define CRAFT_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Modes. -------------------------------------------------------------- */

int bench_core_main(int argc, char **argv);    /* bench_core.c */
int bench_wal_main(int argc, char **argv);     /* bench_wal.c (optional: see main.c) */
int bench_cluster_main(int argc, char **argv); /* bench_cluster.c */

/* ---- Time. --------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds / in seconds. */
uint64_t bench_now_ns(void);
double bench_now(void);

/* ---- Statistics. --------------------------------------------------------- */

/* The p-th percentile (p in [0, 100]) of v[0..n), nearest-rank; sorts v in
 * place. 0 for n == 0. */
double bench_percentile(double *v, size_t n, double p);

/* ---- Output. ------------------------------------------------------------- */

/* Whether figures are printed as JSON lines (--json) rather than a table. */
bool bench_json(void);
void bench_set_json(bool json);

/* Reports one figure of mode. The strings are copied.
 *
 * JSON: one line {"mode":..,"case":..,"name":..,"value":..,"unit":..} at
 * once ("case" left out when case_name is NULL or empty; a value that is not
 * finite is null).
 *
 * Table: figures are collected and printed by bench_flush() as one table,
 * one row per case and one column per figure name, in order of first
 * appearance. Figures without a case are printed as "name value unit" lines. */
void bench_report_case(const char *mode, const char *case_name, const char *name, double value,
                       const char *unit);
void bench_report(const char *mode, const char *name, double value, const char *unit);

/* Prints the figures collected so far as a table (no-op with --json) and
 * forgets them. main() calls it after the mode returns; a mode may call it
 * earlier to print a table per section. */
void bench_flush(void);

/* ---- Command line. ------------------------------------------------------- */

/* Strict number parsing: the whole string must be a finite number >= min. */
bool bench_parse_double(const char *s, double min, double *out);
bool bench_parse_u64(const char *s, uint64_t *out);

/* ---- Heap allocation counting. ------------------------------------------
 *
 * main.c defines malloc, calloc, realloc and free for the whole executable,
 * forwarding to glibc's __libc_malloc and friends. While counting is on,
 * each malloc, calloc and realloc call is counted into the current slot, so
 * a mode can tell apart allocations made inside the library from its own
 * (e.g. slot 1 around craft_raft_* calls, slot 2 around storage calls).
 * Under AddressSanitizer or ThreadSanitizer, which bring their own
 * allocator, nothing is interposed and bench_alloc_available() is false. */
#define BENCH_ALLOC_SLOTS 8

extern bool bench_alloc_counting;
extern unsigned bench_alloc_slot;
extern uint64_t bench_alloc_counts[BENCH_ALLOC_SLOTS];

bool bench_alloc_available(void);

/* Zeroes every slot's count and starts / stops counting. */
void bench_alloc_start(void);
void bench_alloc_stop(void);

static inline void bench_alloc_set_slot(unsigned slot)
{
    bench_alloc_slot = slot < BENCH_ALLOC_SLOTS ? slot : 0;
}

#endif /* CRAFT_BENCH_H */
