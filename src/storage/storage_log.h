/* Log lines and error messages shared by the WAL and the snapshot store: a
 * line goes to the user's log callback, or to stderr from WARN up. */
#ifndef CRAFT_STORAGE_LOG_H
#define CRAFT_STORAGE_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef void (*storage_log_fn)(void *arg, int level, const char *message);

void storage_vlog(storage_log_fn fn, void *arg, const char *who, int level, const char *fmt,
                  va_list ap) __attribute__((format(printf, 5, 0)));

#endif
