/* eval_metrics.c - time bmfm_scib_compute on an embedding fixture written by
 * tests/ref/metrics_oracle.py (F_clean_X.f32 / F_clean_lab.i32 /
 * F_clean_bat.i32), optionally resampled to N cells (interpolating random same-label,
 * same-batch pairs).
 *
 * usage: build/bench/eval_metrics DIR/FIXTURE [N [LEIDEN_ITERATIONS]]
 * Prints the wall time of each step and the metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/progress.h"
#include "base/rng.h"
#include "eval/scib.h"
#include "eval_fixture.h"

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double t0, c0;
static void on_step(const char *s, void *ctx) {
    (void)ctx;
    fprintf(stderr, "  %-20s starts at wall +%.2fs, cpu +%.2fs\n", s, bmfm_now_seconds() - t0, cpu_seconds() - c0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR/FIXTURE [N [LEIDEN_ITERATIONS]]\n", argv[0]);
        return 2;
    }
    bench_fixture fx;
    bench_fixture_load(argv[1], &fx);
    float *X0 = fx.X;
    int32_t *l0 = fx.lab, *b0 = fx.bat;
    int64_t n0 = fx.n, d = fx.d, n = argc > 2 ? atoll(argv[2]) : n0;
    float *X = X0;
    int32_t *lab = l0, *bat = b0;
    if (n != n0) {
        /* a point on the segment between two random cells of the same label
         * and batch: a continuous cloud, not clumps of copies (copies would
         * fill each 15-NN list with the same original cell) */
        bmfm_rng r;
        bmfm_rng_seed(&r, 1, 0);
        X = malloc((size_t)n * d * sizeof *X);
        lab = malloc((size_t)n * 4);
        bat = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n; i++) {
            int64_t s = (int64_t)bmfm_rng_below(&r, (uint64_t)n0), t;
            do t = (int64_t)bmfm_rng_below(&r, (uint64_t)n0);
            while (l0[t] != l0[s] || b0[t] != b0[s]);
            float u = (float)bmfm_rng_uniform(&r);
            for (int64_t c = 0; c < d; c++) X[i * d + c] = X0[s * d + c] + u * (X0[t * d + c] - X0[s * d + c]);
            lab[i] = l0[s];
            bat[i] = b0[s];
        }
    }
    int32_t nl = 0, nb = 0;
    for (int64_t i = 0; i < n; i++) {
        if (lab[i] + 1 > nl) nl = lab[i] + 1;
        if (bat[i] + 1 > nb) nb = bat[i] + 1;
    }
    bmfm_scib_options o;
    bmfm_scib_options_default(&o);
    if (argc > 3) o.leiden_iterations = atoi(argv[3]);
    t0 = bmfm_now_seconds();
    c0 = cpu_seconds();
    o.progress = on_step;
    bmfm_scib_result r;
    if (bmfm_scib_compute(X, n, d, lab, nl, bat, nb, NULL, 0, &o, &r)) return 1;
    printf("n=%lld d=%lld labels=%d batches=%d total wall %.2f s, cpu %.2f s\n", (long long)n, (long long)d, nl, nb,
           bmfm_now_seconds() - t0, cpu_seconds() - c0);
    printf("%s\n", r.protocol);
    printf("nmi %.4f ari %.4f res %.1f asw_label %.4f asw_batch %.4f gc %.4f ilisi %.4f clisi %.4f kbet %.4f "
           "pcr %.4f iso %.4f avg_bio %.4f avg_batch %.4f overall %.4f\n",
           r.nmi, r.ari, r.best_resolution, r.asw_label, r.asw_batch, r.graph_conn, r.ilisi, r.clisi, r.kbet, r.pcr,
           r.isolated_asw, r.avg_bio, r.avg_batch, r.overall);
    return 0;
}
