/* schedule.h - learning-rate schedules of the reference (bmfm_reference.md 5),
 * as the Hugging Face helpers compute them for optimizer step s (0-based; the
 * first step runs at factor lambda(0)):
 *   constant with warmup:  s < W ? s / max(1, W) : 1
 *   linear decay:          s < W ? s / max(1, W) : max(0, (S - s) / max(1, S - W))
 * (get_constant_schedule_with_warmup, get_linear_schedule_with_warmup).
 */
#ifndef BMFM_TRAIN_SCHEDULE_H
#define BMFM_TRAIN_SCHEDULE_H

#include <stdint.h>

typedef struct bmfm_schedule {
    double lr;
    int64_t warmup;
    int64_t decay_steps; /* 0: constant after warmup; else total steps S of the linear decay */
} bmfm_schedule;

double bmfm_schedule_factor(const bmfm_schedule *s, int64_t step);
double bmfm_schedule_lr(const bmfm_schedule *s, int64_t step);

#endif
