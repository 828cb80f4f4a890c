/* schedule.c - learning-rate schedules (schedule.h). */
#include "train/schedule.h"

double bmfm_schedule_factor(const bmfm_schedule *s, int64_t step) {
    if (step < s->warmup) return (double)step / (double)(s->warmup > 1 ? s->warmup : 1);
    if (s->decay_steps <= 0) return 1.0;
    int64_t span = s->decay_steps - s->warmup;
    double f = (double)(s->decay_steps - step) / (double)(span > 1 ? span : 1);
    return f > 0 ? f : 0.0;
}

double bmfm_schedule_lr(const bmfm_schedule *s, int64_t step) { return s->lr * bmfm_schedule_factor(s, step); }
