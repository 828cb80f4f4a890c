/* log.c - stderr diagnostics (see log.h). */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>

static bmfm_log_level log_level = BMFM_LOG_WARN;

void bmfm_log_set_level(bmfm_log_level level) { log_level = level; }
bmfm_log_level bmfm_log_get_level(void) { return log_level; }

static void log_emit(bmfm_log_level level, const char *tag, const char *fmt, va_list ap) {
    if (level > log_level) return;
    fprintf(stderr, "bmfm: %s", tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

#define BMFM_LOG_FN(name, level, tag)                                          \
    void name(const char *fmt, ...) {                                          \
        va_list ap;                                                            \
        va_start(ap, fmt);                                                     \
        log_emit(level, tag, fmt, ap);                                         \
        va_end(ap);                                                            \
    }

BMFM_LOG_FN(bmfm_log_warn, BMFM_LOG_WARN, "warning: ")
BMFM_LOG_FN(bmfm_log_info, BMFM_LOG_INFO, "")
BMFM_LOG_FN(bmfm_log_debug, BMFM_LOG_DEBUG, "debug: ")
