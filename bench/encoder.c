/* encoder.c - throughput of the encoder at the released 47M configuration
 * (C=384, 12 layers, 12 heads, F=1024, V=19321, WCED head, five label heads
 * on [CLS_k]) against the PyTorch eager equivalent (bench/encoder_torch.py,
 * the tests/ref oracle model), measured in the same run.
 *
 *   build/bench/encoder [threads [iters [all|512|1024|var|train512]]]
 *
 * train512: only the T=512 training step, no PyTorch (for valgrind, ASan,
 * perf); BMFM_BENCH_NO_TORCH=1 skips PyTorch in the other modes.
 *
 * Cases: 4 cells of 512 tokens, 2 of 1024, and 8 cells with the token
 * counts of cells of the shared zheng68k file (packed here, padded to the
 * longest on the PyTorch side). For each: inference (encoder + heads forward)
 * and a training step (forward, WCED + label losses, backward; no optimizer)
 * in tokens/s and cells/s, the ratio to PyTorch, and the model FLOP/s as a
 * fraction of the sgemm peak measured here (a 2048^3 cblas_sgemm, before each
 * case), and the
 * ratio to the reference's behaviour (encoder_torch.py: padding to
 * max_length, WCED at every position); on CPUs
 * with AVX512-BF16 also inference with bf16 projections (nn.h option) and its
 * error on z. With one
 * thread (the default) both sides report process CPU time, so neighbours on
 * a shared machine do not count; with more threads it is wall time.
 * Not part of the test suite.
 */
#include "base/blas_threads.h"
#include "base/cpu_place.h"
#include "base/rng.h"
#include "model/checkpoint.h"
#include "model/encoder.h"
#include "model/heads.h"
#include "nn/loss_expr.h"
#include "nn/loss_label.h"
#include "nn/nn.h"

#include <cblas.h>
#include <hdf5.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static clockid_t g_clock = CLOCK_MONOTONIC;

static double now(void) {
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of at least 5 square sgemms over at least 0.8 s with `threads`
 * OpenBLAS threads (then back to one: inside bmfm's OpenMP tiles OpenBLAS
 * runs single-threaded). Measured before each case, because this VM's speed
 * drifts by 10-25 % within a run: a peak taken minutes earlier made a case
 * read 83 % or 99 % of "peak". The 0.8 s: at the start of the process the
 * first 5 two-thread sgemms once ran at 214 GFLOP/s (both threads on one CPU
 * until the scheduler moved one), 393 in the next case. */
static double sgemm_peak(int threads) {
    int n = 2048;
    openblas_set_num_threads(threads);
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (int i = 0; i < n * n; i++) a[i] = b[i] = (float)(i % 7) * 0.1f;
    double best = 1e30;
    double t_end = now() + 0.8;
    for (int r = 0;; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        t = now() - t;
        if (t < best) best = t;
        if (r >= 4 && now() >= t_end) break;
    }
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(1);
    return 2.0 * n * (double)n * n / best;
}

/* Model FLOPs of one forward over B cells with N tokens in all and
 * sum_b T_b^2 = T2 (matmuls + attention over each cell's own tokens). */
static double fwd_flops(const bmfm_model_config *c, int64_t B, double N, double T2, int wced) {
    double C = (double)c->C, F = (double)c->F;
    double blk = 2.0 * N * (3 * C * C + C * C + 3 * C * F) + 4.0 * T2 * C;
    double f = c->NL * blk + 2.0 * N * 2 * c->n_sin_basis * C + 2.0 * B * C * C;
    if (wced) f += 2.0 * B * (C * C + C * c->wced_n_out * c->V);
    for (int i = 0; i < c->n_labels; i++) f += 2.0 * B * C * c->labels[i].n_classes;
    return f;
}

typedef struct {
    double infer, train, ref_infer, ref_train;
} torch_times;

/* The PyTorch child gets the setup its CPU tuning guides recommend, so that
 * the ratio measures the engines and not the allocator: OpenBLAS and OpenMP
 * limited to `threads` (Debian's torch calls the system OpenBLAS, whose own
 * pthread pool would otherwise use every core and count in its CPU time),
 * and jemalloc that keeps freed pages (with glibc malloc every tensor above
 * 32 MB is a fresh mmap whose page faults cost PyTorch 2-5x on this VM). */
static const char *JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

static int torch_env(char *buf, size_t n, int threads) {
    int o = snprintf(buf, n, "OPENBLAS_NUM_THREADS=%d OMP_NUM_THREADS=%d ", threads, threads);
    if (!getenv("BMFM_BENCH_TORCH_GLIBC_MALLOC") && access(JEMALLOC, R_OK) == 0)
        o += snprintf(buf + o, n - (size_t)o, "LD_PRELOAD=%s MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1 ",
                      JEMALLOC);
    return o;
}

static int run_torch(const int64_t *len, int64_t B, int threads, int iters, torch_times *tt) {
    char cmd[4096];
    int o = torch_env(cmd, sizeof cmd, threads);
    o += snprintf(cmd + o, sizeof cmd - (size_t)o, "/usr/bin/python3 bench/encoder_torch.py --threads %d --iters %d --lengths ",
                  threads, iters);
    for (int64_t b = 0; b < B && o < (int)sizeof cmd - 16; b++) o += snprintf(cmd + o, sizeof cmd - o, "%s%lld", b ? "," : "", (long long)len[b]);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[512];
    int got = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "torch infer_s=%lf train_s=%lf ref_infer_s=%lf ref_train_s=%lf", &tt->infer, &tt->train,
                   &tt->ref_infer, &tt->ref_train) == 4)
            got = 1;
    return pclose(p) == 0 && got ? 0 : -1;
}

/* Token counts of cells of the shared zheng68k file (nonzero genes per cell,
 * + [CLS] [CLS_0..3] [SEP], truncated at max_length 1024): B cells drawn
 * with a fixed seed. Returns 0 on success. */
static int zheng_lengths(int64_t *len, int64_t B) {
    const char *dir = getenv("BMFM_SHARED_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/h5ad/bmfm_zheng68k_165.h5ad", dir ? dir : "/work/shared/data");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t d = H5Dopen2(f, "X/indptr", H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        hsize_t n = 0;
        H5Sget_simple_extent_dims(sp, &n, NULL);
        int64_t *ip = malloc(n * sizeof *ip);
        if (ip && n > 1 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, ip) >= 0) {
            bmfm_rng r;
            bmfm_rng_seed(&r, 11, 0);
            for (int64_t b = 0; b < B; b++) {
                int64_t i = (int64_t)bmfm_rng_below(&r, (uint64_t)(n - 1)), nnz = ip[i + 1] - ip[i];
                len[b] = (nnz < 1024 - 6 ? nnz : 1024 - 6) + 6;
            }
            rc = 0;
        }
        free(ip);
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
    return rc;
}

static void print_row(const char *label, int64_t B, double N, const char *mode, double t, double torch_s, double ref_s,
                      double flops, double peak, const char *extra) {
    printf("%-9s %3lld | %-10s %9.0f %8.2f %8.2f %7.2f %8.2f %7.2f %9.1f | %5.1f%%%s\n", label, (long long)B, mode, N / t,
           B / t, torch_s > 0 ? B / torch_s : 0.0, torch_s > 0 ? torch_s / t : 0.0, ref_s > 0 ? B / ref_s : 0.0,
           ref_s > 0 ? ref_s / t : 0.0, flops / t / 1e9, 100 * flops / t / peak, extra);
}

int main(int argc, char **argv) {
    bmfm_blas_prefer_avx512_kernels(argv); /* an honest peak: see blas_threads.h */
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int iters = argc > 2 ? atoi(argv[2]) : 2;
    const char *only = argc > 3 ? argv[3] : "all"; /* all | 512 | 1024 | var | train512 (no PyTorch, no inference) */
    int train_only = strcmp(only, "train512") == 0, no_torch = train_only || getenv("BMFM_BENCH_NO_TORCH");
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
    double peak = 1e11; /* train512 prints no fraction of it */
    bmfm_nn_set_threads(threads);
    bmfm_cpu_spread_omp_threads(); /* as the CLI commands do (cpu_place.h) */
    double la[3] = {0};
    getloadavg(la, 3);
    printf("encoder bench: 47M config (C=384, NL=12, NH=12, F=1024, V=19321, WCED + 5 label heads), %d thread(s), %s time, "
           "best of %d; load average %.2f %.2f %.2f\n",
           threads, threads == 1 ? "process CPU" : "wall", iters, la[0], la[1], la[2]);
    char tenv[512];
    torch_env(tenv, sizeof tenv, threads);
    printf("sgemm peak: 2048^3, OpenBLAS %s kernels, best over 0.8 s, measured before each case\nPyTorch child environment: %s\n",
           bmfm_blas_kernel_name(), no_torch ? "(not run)" : tenv);
    printf("  same = vs PyTorch eager, same work; ref = vs the reference's behaviour (padding to max_length 1024 in inference,\n"
           "  to the longest cell and WCED at every position in training); c/s = cells/s\n");
    printf("%-9s %3s | %-10s %9s %8s %8s %7s %8s %7s %9s | %s\n", "cells", "B", "mode", "tokens/s", "c/s", "torch", "same",
           "ref c/s", "ref", "GFLOP/s", "of peak");
    const int64_t Ts[3] = {512, 1024, 0}, Bs[3] = {4, 2, 8};
    const char *case_name[3] = {"512", "1024", "var"};
    double cpu0 = (double)clock() / CLOCKS_PER_SEC;
    for (int ti = 0; ti < 3; ti++) {
        if (strcmp(only, "all") && strcmp(only, case_name[ti]) && !(train_only && ti == 0)) continue;
        int64_t B = Bs[ti], N = 0;
        int64_t *len = malloc((size_t)B * sizeof *len), *cu = malloc((size_t)(B + 1) * sizeof *cu);
        char label[32];
        if (Ts[ti]) {
            for (int64_t b = 0; b < B; b++) len[b] = Ts[ti];
            snprintf(label, sizeof label, "T=%lld", (long long)Ts[ti]);
        } else {
            if (zheng_lengths(len, B)) {
                printf("var: cannot read the zheng68k counts (BMFM_SHARED_DATA)\n");
                free(len);
                free(cu);
                continue;
            }
            snprintf(label, sizeof label, "zheng68k");
        }
        if (!train_only) {
            peak = sgemm_peak(threads);
            printf("  sgemm peak now %.1f GFLOP/s\n", peak / 1e9);
        }
        double T2 = 0;
        cu[0] = 0;
        for (int64_t b = 0; b < B; b++) cu[b + 1] = cu[b] + len[b], T2 += (double)len[b] * len[b];
        N = cu[B];
        if (!Ts[ti]) {
            printf("  zheng68k cells: tokens");
            for (int64_t b = 0; b < B; b++) printf(" %lld", (long long)len[b]);
            printf(" (%lld in all)\n", (long long)N);
        }
        int32_t *ids = malloc((size_t)N * sizeof *ids);
        float *expr = malloc((size_t)N * sizeof *expr), *wt = malloc((size_t)(B * m.cfg.V) * sizeof *wt);
        bmfm_rng r;
        bmfm_rng_seed(&r, 5, 0);
        for (int64_t b = 0; b < B; b++) {
            int64_t T = len[b];
            for (int64_t t = 0; t < T; t++) {
                int64_t n = cu[b] + t;
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
        double t_inf = 1e30, t_train = 1e30, t_bf = 0, err_bf = 0;
        if (!train_only) {
            if (bmfm_model_alloc_acts(&m, N, B, 0, 0, 0)) return 2;
            for (int it = 0; it <= iters; it++) { /* first run warms up */
                double t = now();
                if (bmfm_encoder_forward(&m, &batch) || bmfm_heads_forward(&m, inf_sel)) return 2;
                t = now() - t;
                if (it && t < t_inf) t_inf = t;
            }
            /* bf16 projections (inference option of nn.h), with their error on z */
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
                for (int64_t i = 0; i < N * m.cfg.C; i++) scale = fmax(scale, fabs(z[i]));
                for (int64_t i = 0; i < N * m.cfg.C; i++) err_bf = fmax(err_bf, fabs(z[i] - z32[i]) / scale);
                free(z32);
            }
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
        torch_times tt = {0};
        int have_torch = !no_torch && run_torch(len, B, threads, iters, &tt) == 0;
        double f_inf = fwd_flops(&m.cfg, B, (double)N, T2, 0), f_train = 3 * fwd_flops(&m.cfg, B, (double)N, T2, 1);
        if (!train_only) {
            print_row(label, B, (double)N, "inference", t_inf, tt.infer, tt.ref_infer, f_inf, peak, "");
            if (t_bf > 0) {
                char extra[64];
                snprintf(extra, sizeof extra, "  (z max error %.1e of its scale)", err_bf);
                print_row(label, B, (double)N, "infer-bf16", t_bf, tt.infer, tt.ref_infer, f_inf, peak, extra);
            }
        }
        print_row(label, B, (double)N, "train", t_train, tt.train, tt.ref_train, f_train, peak, "");
        if (!have_torch && !no_torch) printf("  (PyTorch run failed: no ratio)\n");
        if (loss_sum != loss_sum) printf("  warning: NaN loss\n");
        fflush(stdout);
        free(len);
        free(cu);
        free(ids);
        free(expr);
        free(wt);
        for (int i = 0; i < 5; i++) free(lab[i]);
    }
    getloadavg(la, 3);
    printf("engine process CPU time %.1f s (PyTorch children excluded); load average at the end %.2f %.2f %.2f\n",
           (double)clock() / CLOCKS_PER_SEC - cpu0, la[0], la[1], la[2]);
    bmfm_model_free(&m);
    return 0;
}
