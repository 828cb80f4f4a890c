/* progress.h - a progress line on stderr for long work.
 *
 * Drawn only when stderr is a terminal (and the log level is not quiet), so
 * scripts and CI logs stay clean. Shows done/total, items/s and the ETA,
 * redrawn at most a few times a second.
 */
#ifndef BMFM_BASE_PROGRESS_H
#define BMFM_BASE_PROGRESS_H

#include <stdint.h>

typedef struct bmfm_progress {
    const char *label;  /* "embedding" */
    const char *unit;   /* "cells" */
    int64_t total;
    int64_t done;
    double t_start;
    double t_last_draw;
    int enabled;
} bmfm_progress;

void bmfm_progress_begin(bmfm_progress *p, const char *label, const char *unit, int64_t total);
void bmfm_progress_update(bmfm_progress *p, int64_t done);
/* Final line (always drawn when enabled) and a newline. */
void bmfm_progress_end(bmfm_progress *p);

/* Monotonic wall clock in seconds. */
double bmfm_now_seconds(void);

#endif
