/* encoder.c - throughput of the encoder at the released 47M configuration
 * (C=384, 12 layers, 12 heads, F=1024, V=19321, WCED head, five label heads
 * on [CLS_k]) against the PyTorch eager equivalent (bench/encoder_torch.py,
 * the tests/ref oracle model), measured in the same run.
 *
 *   build/bench/encoder [threads [iters]]
 *
 * For T = 512 and 1024 tokens per cell: inference (encoder + heads forward)
 * and a training step (forward, WCED + label losses, backward; no optimizer)
 * in tokens/s and cells/s, the ratio to PyTorch, and the model FLOP/s as a
 * fraction of the sgemm peak measured here (a 2048^3 cblas_sgemm); on CPUs
 * with AVX512-BF16 also inference with bf16 projections (nn.h option) and its
 * error on z. With one
 * thread (the default) both sides report process CPU time, so neighbours on
 * a shared machine do not count; with more threads it is wall time.
 * Not part of the test suite.
 */
#include "base/rng.h"
#include "model/checkpoint.h"
#include "model/encoder.h"
#include "model/heads.h"
#include "nn/loss_expr.h"
#include "nn/loss_label.h"
#include "nn/nn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static clockid_t g_clock = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sgemm_peak(void) {
    int n = 2048;
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = now() - t;
        if (t < best) best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best;
}

/* Model FLOPs of one forward over B cells of T tokens (matmuls + attention). */
static double fwd_flops(const bmfm_model_config *c, int64_t B, int64_t T, int wced) {
    double N = (double)(B * T), C = (double)c->C, F = (double)c->F;
    double blk = 2.0 * N * (3 * C * C + C * C + 3 * C * F) + 4.0 * (double)B * T * T * C;
    double f = c->NL * blk + 2.0 * N * 2 * c->n_sin_basis * C + 2.0 * B * C * C;
    if (wced) f += 2.0 * B * (C * C + C * c->wced_n_out * c->V);
    for (int i = 0; i < c->n_labels; i++) f += 2.0 * B * C * c->labels[i].n_classes;
    return f;
}

static int run_torch(int T, int B, int threads, int iters, double *inf_s, double *train_s) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 bench/encoder_torch.py --T %d --B %d --threads %d --iters %d", T, B,
             threads, iters);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "torch infer_s=%lf train_s=%lf", inf_s, train_s) == 2) got = 1;
    return pclose(p) == 0 && got ? 0 : -1;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int iters = argc > 2 ? atoi(argv[2]) : 2;
    omp_set_num_threads(threads);
    if (threads == 1) g_clock = CLOCK_PROCESS_CPUTIME_ID;
    bmfm_model_config cfg;
    bmfm_config_default(&cfg, 384, 12, 12, 19321, 36);
    cfg.wced = 1;
    const char *names[] = {"cell_type_ontology_term_id", "tissue", "tissue_general", "donor_id", "sex"};
    const int64_t ks[] = {580, 200, 50, 1000, 3};
    const int dec[] = {1, 2, 2, 3, 4};
    for (int i = 0; i < 5; i++) bmfm_config_add_label(&cfg, names[i], ks[i], dec[i], 0, 0.0f);
    bmfm_model m;
    if (bmfm_model_create(&m, &cfg) || bmfm_model_alloc_grads(&m)) {
        fprintf(stderr, "encoder bench: %s\n", bmfm_error_message());
        return 2;
    }
    bmfm_model_init(&m, 1);
    double peak = sgemm_peak();
    printf("encoder bench: 47M config (C=384, NL=12, NH=12, F=1024, V=19321, WCED + 5 label heads), %d thread(s), %s time, "
           "best of %d\n",
           threads, threads == 1 ? "process CPU" : "wall", iters);
    printf("sgemm peak (2048^3): %.1f GFLOP/s\n", peak / 1e9);
    printf("%5s %3s | %-9s %10s %9s %9s %8s %10s | %s\n", "T", "B", "mode", "tokens/s", "cells/s", "torch c/s", "ratio",
           "GFLOP/s", "of peak");
    const int Ts[2] = {512, 1024}, Bs[2] = {4, 2};
    for (int ti = 0; ti < 2; ti++) {
        int64_t T = Ts[ti], B = Bs[ti], N = T * B;
        int64_t *cu = malloc((size_t)(B + 1) * sizeof *cu);
        int32_t *ids = malloc((size_t)N * sizeof *ids);
        float *expr = malloc((size_t)N * sizeof *expr), *wt = malloc((size_t)(B * m.cfg.V) * sizeof *wt);
        if (!m.cfg.V) return 2;
        bmfm_rng r;
        bmfm_rng_seed(&r, 5, 0);
        for (int64_t b = 0; b <= B; b++) cu[b] = b * T;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t t = 0; t < T; t++) {
                int64_t n = b * T + t;
                if (t < 5) { /* [CLS] [CLS_0..3] */
                    ids[n] = t == 0 ? 3 : (int32_t)(4 + t);
                    expr[n] = -(float)(ids[n] + 1);
                } else if (t == T - 1) {
                    ids[n] = 1;
                    expr[n] = -2;
                } else {
                    ids[n] = (int32_t)(38 + bmfm_rng_below(&r, (uint64_t)(m.cfg.V - 38)));
                    expr[n] = bmfm_rng_uniform(&r) < 0.2 ? 0.0f : (float)(0.1 + 7.9 * bmfm_rng_uniform(&r));
                }
            }
            for (int64_t j = 0; j < m.cfg.V; j++)
                wt[b * m.cfg.V + j] = j < 38 ? -100.0f : (bmfm_rng_uniform(&r) < 0.7 ? 0.0f : (float)bmfm_rng_uniform(&r) * 5);
        }
        int64_t *lab[5];
        for (int i = 0; i < 5; i++) {
            lab[i] = malloc((size_t)B * sizeof(int64_t));
            for (int64_t b = 0; b < B; b++) lab[i][b] = (int64_t)bmfm_rng_below(&r, (uint64_t)ks[i]);
        }
        bmfm_batch batch = {0};
        batch.B = B;
        batch.N = N;
        batch.cu_seqlens = cu;
        batch.gene_ids = ids;
        batch.expr = expr;
        bmfm_head_sel inf_sel = {0, 0, 1}, train_sel = {1, 0, 1};
        double t_inf = 1e30, t_train = 1e30;
        if (bmfm_model_alloc_acts(&m, N, B, 0, 0, 0)) return 2;
        for (int it = 0; it <= iters; it++) { /* first run warms up */
            double t = now();
            if (bmfm_encoder_forward(&m, &batch) || bmfm_heads_forward(&m, inf_sel)) return 2;
            t = now() - t;
            if (it && t < t_inf) t_inf = t;
        }
        /* bf16 projections (inference option of nn.h), with their error on z */
        double t_bf = 0, err_bf = 0;
        if (bmfm_cpu_has_avx512_bf16()) {
            float *z32 = malloc((size_t)(N * m.cfg.C) * sizeof(float));
            memcpy(z32, bmfm_encoder_output(&m), (size_t)(N * m.cfg.C) * sizeof(float));
            bmfm_matmul_set_precision(BMFM_MATMUL_BF16);
            t_bf = 1e30;
            for (int it = 0; it <= iters; it++) {
                double t = now();
                if (bmfm_encoder_forward(&m, &batch) || bmfm_heads_forward(&m, inf_sel)) return 2;
                t = now() - t;
                if (it && t < t_bf) t_bf = t;
            }
            bmfm_matmul_set_precision(BMFM_MATMUL_FP32);
            const float *z = bmfm_encoder_output(&m);
            double scale = 0;
            for (int64_t i = 0; i < N * m.cfg.C; i++) scale = fmax(scale, fabs(z32[i]));
            for (int64_t i = 0; i < N * m.cfg.C; i++) err_bf = fmax(err_bf, fabs(z[i] - z32[i]) / scale);
            free(z32);
        }
        if (bmfm_model_alloc_acts(&m, N, B, 1, 0, 0)) {
            fprintf(stderr, "encoder bench: %s\n", bmfm_error_message());
            return 2;
        }
        double loss_sum = 0;
        for (int it = 0; it <= iters; it++) {
            double t = now(), l1, l2, l;
            bmfm_model_zero_grads(&m);
            if (bmfm_encoder_forward(&m, &batch) || bmfm_heads_forward(&m, train_sel)) return 2;
            memset(m.a.dwced_out, 0, (size_t)(B * 2 * m.cfg.V) * sizeof(float));
            bmfm_wced_loss(&l1, &l2, m.a.dwced_out, m.a.wced_out, wt, B, m.cfg.V, 2, 0, 1, 1.0f / 7, 1.0f / 7);
            loss_sum += l1 + l2;
            for (int i = 0; i < 5; i++) {
                memset(m.a.dlogits[i], 0, (size_t)(B * ks[i]) * sizeof(float));
                bmfm_loss_ce(&l, m.a.dlogits[i], m.a.logits[i], lab[i], B, ks[i], 1.0f / 7);
                loss_sum += l;
            }
            if (bmfm_heads_backward(&m, train_sel) || bmfm_encoder_backward(&m)) return 2;
            t = now() - t;
            if (it && t < t_train) t_train = t;
        }
        double ti_s = 0, tt_s = 0;
        int have_torch = run_torch((int)T, (int)B, threads, iters, &ti_s, &tt_s) == 0;
        double f_inf = fwd_flops(&m.cfg, B, T, 0), f_train = 3 * fwd_flops(&m.cfg, B, T, 1);
        printf("%5lld %3lld | %-9s %10.0f %9.2f %9.2f %8.2f %10.1f | %5.1f%%\n", (long long)T, (long long)B, "inference",
               N / t_inf, B / t_inf, have_torch ? B / ti_s : 0.0, have_torch ? ti_s / t_inf : 0.0, f_inf / t_inf / 1e9,
               100 * f_inf / t_inf / peak);
        if (t_bf > 0)
            printf("%5lld %3lld | %-9s %10.0f %9.2f %9.2f %8.2f %10.1f | %5.1f%%  (z max error %.1e of its scale)\n",
                   (long long)T, (long long)B, "infer-bf16", N / t_bf, B / t_bf, have_torch ? B / ti_s : 0.0,
                   have_torch ? ti_s / t_bf : 0.0, f_inf / t_bf / 1e9, 100 * f_inf / t_bf / peak, err_bf);
        printf("%5lld %3lld | %-9s %10.0f %9.2f %9.2f %8.2f %10.1f | %5.1f%%\n", (long long)T, (long long)B, "train",
               N / t_train, B / t_train, have_torch ? B / tt_s : 0.0, have_torch ? tt_s / t_train : 0.0,
               f_train / t_train / 1e9, 100 * f_train / t_train / peak);
        if (!have_torch) printf("  (PyTorch run failed: no ratio)\n");
        if (loss_sum != loss_sum) printf("  warning: NaN loss\n");
        fflush(stdout);
        free(cu);
        free(ids);
        free(expr);
        free(wt);
        for (int i = 0; i < 5; i++) free(lab[i]);
    }
    bmfm_model_free(&m);
    return 0;
}
