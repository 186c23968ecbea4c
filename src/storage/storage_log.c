/* Log lines and error messages shared by the WAL and the snapshot store. */
#include "storage_log.h"

#include <stdio.h>

#include "craft/wal.h"

void storage_vlog(storage_log_fn fn, void *arg, const char *who, int level, const char *fmt,
                  va_list ap)
{
    char msg[640];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (fn != NULL) {
        fn(arg, level, msg);
    } else if (level >= CRAFT_LOG_WARN) {
        fprintf(stderr, "craft %s: %s\n", who, msg);
    }
}
