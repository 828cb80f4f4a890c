/* eval_fixture.h - the embedding fixtures of the eval benches
 * (bench/eval_metrics, bench/eval_steps): PREFIX_clean_X.f32 (n x d float32,
 * row-major), PREFIX_clean_lab.i32 and PREFIX_clean_bat.i32 (n int32 codes),
 * as tests/ref/metrics_oracle.py and bench/eval_bench.sh write them.
 * A header for the bench programs only (each is one .c file). */
#ifndef BMFM_BENCH_EVAL_FIXTURE_H
#define BMFM_BENCH_EVAL_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/fileutil.h"

typedef struct bench_fixture {
    float *X;
    int32_t *lab, *bat;
    int64_t n, d;
} bench_fixture;

static inline void *bench_fixture_file(const char *prefix, const char *suffix, size_t *bytes) {
    char path[2048], *data;
    snprintf(path, sizeof path, "%s_%s", prefix, suffix);
    if (bmfm_read_file(path, &data, bytes)) {
        fprintf(stderr, "%s\n", bmfm_error_message());
        exit(1);
    }
    return data;
}

/* Loads the three files; exits with a message when one is missing or their
 * sizes disagree. */
static inline void bench_fixture_load(const char *prefix, bench_fixture *f) {
    size_t bx, bl, bb;
    f->X = bench_fixture_file(prefix, "clean_X.f32", &bx);
    f->lab = bench_fixture_file(prefix, "clean_lab.i32", &bl);
    f->bat = bench_fixture_file(prefix, "clean_bat.i32", &bb);
    f->n = (int64_t)(bl / 4);
    f->d = f->n ? (int64_t)(bx / 4) / f->n : 0;
    if (!f->n || bb != bl || (size_t)(f->n * f->d) * 4 != bx) {
        fprintf(stderr, "%s: fixture files of inconsistent sizes\n", prefix);
        exit(1);
    }
}

static inline void bench_fixture_free(bench_fixture *f) {
    free(f->X);
    free(f->lab);
    free(f->bat);
}

#endif
