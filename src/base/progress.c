/* progress.c - terminal progress line (see progress.h). */
#include "base/progress.h"

#include "base/log.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double bmfm_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_draw(bmfm_progress *p, double now) {
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    double eta = (rate > 0 && p->total > 0) ? (double)(p->total - p->done) / rate : 0.0;
    if (p->total > 0)
        fprintf(stderr, "\r%s: %lld/%lld %s (%.0f%%), %.1f %s/s, ETA %.0fs   ", p->label,
                (long long)p->done, (long long)p->total, p->unit,
                100.0 * (double)p->done / (double)p->total, rate, p->unit, eta);
    else
        fprintf(stderr, "\r%s: %lld %s, %.1f %s/s   ", p->label, (long long)p->done, p->unit,
                rate, p->unit);
    fflush(stderr);
    p->t_last_draw = now;
}

void bmfm_progress_begin(bmfm_progress *p, const char *label, const char *unit, int64_t total) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->done = 0;
    p->t_start = bmfm_now_seconds();
    p->t_last_draw = 0;
    p->enabled = isatty(STDERR_FILENO) && bmfm_log_get_level() > BMFM_LOG_QUIET;
}

void bmfm_progress_update(bmfm_progress *p, int64_t done) {
    p->done = done;
    if (!p->enabled) return;
    double now = bmfm_now_seconds();
    if (now - p->t_last_draw >= 0.2) progress_draw(p, now);
}

void bmfm_progress_end(bmfm_progress *p) {
    if (!p->enabled) return;
    progress_draw(p, bmfm_now_seconds());
    fputc('\n', stderr);
}
