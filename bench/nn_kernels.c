/* nn_kernels.c - timings of the src/nn kernels at the 47M model shapes.
 *
 *   build/bench/nn_kernels [threads]
 *
 * Prints the sgemm peak measured here (square 1536^3), the projections of
 * one block (N = 8*512 tokens, C = 384, 3C, F = 1024) forward and backward
 * as a fraction of it, attention forward/backward at T = 512 and 1024
 * (NH = 12, HS = 32, 8 or 4 cells) for the optimized and reference kernels,
 * and the elementwise/norm kernels. Not part of the test suite.
 */
#include "base/blas_threads.h"
#include "nn/nn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* With one thread the process CPU time is used: the build machine is shared
 * and wall time there measures the neighbours. */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now(void)
{
    struct timespec ts;
    clock_gettime(g_clock, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *randv(int64_t n, float scale)
{
    float *v = malloc(sizeof(float) * (size_t)n);
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        v[i] = scale * ((float)(s >> 40) / (float)(1 << 24) - 0.5f);
    }
    return v;
}

/* best of `reps` runs, seconds */
#define TIME(reps, stmt)                                                                           \
    ({                                                                                             \
        double best_ = 1e30;                                                                       \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t_ = now();                                                                     \
            stmt;                                                                                  \
            t_ = now() - t_;                                                                       \
            if (t_ < best_)                                                                        \
                best_ = t_;                                                                        \
        }                                                                                          \
        best_;                                                                                     \
    })

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    int do_ref = argc > 2 ? atoi(argv[2]) : 1;
    bmfm_blas_prefer_avx512_kernels(argv); /* an honest peak: see blas_threads.h */
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    if (threads == 1)
        g_clock = CLOCK_PROCESS_CPUTIME_ID;
    printf("threads %d, isa %d, clock %s\n", threads, (int)bmfm_cpu_isa(),
           threads == 1 ? "process CPU time" : "wall");

    int64_t M = 1536;
    float *a = randv(M * M, 1), *b = randv(M * M, 1), *c = randv(M * M, 1);
    double t = TIME(3, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, M, M, 1, a, M, b, M,
                                   0, c, M));
    double peak = 2.0 * M * M * M / t;
    printf("sgemm peak (%lld^3, OpenBLAS %s kernels): %.1f GFLOP/s\n", (long long)M, bmfm_blas_kernel_name(),
           peak * 1e-9);
    free(a), free(b), free(c);

    int64_t N = 8 * 512, C = 384, F = 1024;
    float *x = randv(N * F, 1), *w = randv(3 * C * F, 0.1f), *y = randv(N * 3 * C, 1); /* y: N x max(3C, F) */
    float *g = randv(N * F, 1), *dx = randv(N * F, 1), *dw = randv(3 * C * F, 1);
    struct {
        const char *name;
        int64_t in, out;
    } sh[] = {{"qkv  C->3C", C, 3 * C}, {"proj C->C", C, C}, {"fc   C->F", C, F}, {"cproj F->C", F, C}};
    double fl_f = 0, t_f = 0, t_b = 0;
    for (int k = 0; k < 4; k++) {
        double tf = TIME(3, bmfm_matmul_forward(y, x, w, NULL, N, sh[k].in, sh[k].out));
        double tb = TIME(3, bmfm_matmul_backward(dx, dw, NULL, g, x, w, N, sh[k].in, sh[k].out));
        double fl = 2.0 * N * sh[k].in * sh[k].out;
        int rep = k == 2 ? 2 : 1; /* c_fc1 and c_fc2 */
        fl_f += rep * fl, t_f += rep * tf, t_b += rep * tb;
        printf("matmul %-11s N=%lld: fwd %.2f ms (%.0f%% of peak), bwd %.2f ms (%.0f%%)\n",
               sh[k].name, (long long)N, tf * 1e3, 100 * fl / tf / peak, tb * 1e3,
               100 * 2 * fl / tb / peak);
    }
    printf("matmul one block: fwd %.1f ms (%.0f%% of peak), bwd %.1f ms (%.0f%%)\n", t_f * 1e3,
           100 * fl_f / t_f / peak, t_b * 1e3, 100 * 2 * fl_f / t_b / peak);
    if (bmfm_matmul_set_precision(BMFM_MATMUL_BF16) == BMFM_MATMUL_FP32 &&
        bmfm_matmul_get_precision() == BMFM_MATMUL_BF16) {
        double t16 = 0;
        float *y32 = randv(N * 3 * C, 1);
        for (int k = 0; k < 4; k++) {
            double tf = TIME(3, bmfm_matmul_forward(y, x, w, NULL, N, sh[k].in, sh[k].out));
            double fl = 2.0 * N * sh[k].in * sh[k].out;
            t16 += (k == 2 ? 2 : 1) * tf;
            bmfm_matmul_set_precision(BMFM_MATMUL_FP32);
            bmfm_matmul_forward(y32, x, w, NULL, N, sh[k].in, sh[k].out);
            bmfm_matmul_set_precision(BMFM_MATMUL_BF16);
            double err = 0, sc = 0;
            for (int64_t i = 0; i < N * sh[k].out; i++) {
                err = fmax(err, fabs((double)y[i] - y32[i]));
                sc = fmax(sc, fabs((double)y32[i]));
            }
            printf("matmul bf16 %-11s: fwd %.2f ms (%.0f%% of fp32 sgemm peak), max error %.2g of "
                   "the output scale\n", sh[k].name, tf * 1e3, 100 * fl / tf / peak, err / sc);
        }
        printf("matmul bf16 one block: fwd %.1f ms (%.2fx fp32)\n", t16 * 1e3, t_f / t16);
        bmfm_matmul_set_precision(BMFM_MATMUL_FP32);
        free(y32);
    }
    free(x), free(w), free(y), free(g), free(dx), free(dw);

    int64_t NH = 12, HS = 32;
    for (int64_t T = 512; T <= 1024; T *= 2) {
        int64_t B = T == 512 ? 8 : 4, Nt = B * T, cu[9];
        for (int64_t i = 0; i <= B; i++)
            cu[i] = i * T;
        float *qkv = randv(Nt * 3 * C, 2), *out = randv(Nt * C, 1), *lse = randv(NH * Nt, 1);
        float *dout = randv(Nt * C, 1), *dqkv = randv(Nt * 3 * C, 1);
        double fl = 4.0 * B * NH * T * T * HS;
        double tf = TIME(3, bmfm_attention_forward(out, lse, qkv, cu, B, Nt, NH, HS));
        double tb = TIME(3, bmfm_attention_backward(dqkv, dout, qkv, out, lse, cu, B, Nt, NH, HS));
        printf("attention T=%lld B=%lld: fwd %.1f ms (%.1f GFLOP/s, %.0f%% of sgemm peak), "
               "bwd %.1f ms (%.1f GFLOP/s counting 2.5x the fwd flops)\n",
               (long long)T, (long long)B, tf * 1e3, fl / tf * 1e-9, 100 * fl / tf / peak,
               tb * 1e3, 2.5 * fl / tb * 1e-9);
        if (do_ref) {
            double tr = TIME(1, bmfm_attention_forward_ref(out, lse, qkv, cu, B, Nt, NH, HS));
            double trb = TIME(1, bmfm_attention_backward_ref(dqkv, dout, qkv, out, lse, cu, B, Nt,
                                                             NH, HS));
            printf("attention_ref T=%lld (1 thread): fwd %.1f ms, bwd %.1f ms\n", (long long)T,
                   tr * 1e3, trb * 1e3);
        }
        free(qkv), free(out), free(lse), free(dout), free(dqkv);
    }

    int64_t n = N * F;
    float *u = randv(n, 4), *v = randv(n, 1), *o = randv(n, 1), *d1 = randv(n, 1), *d2 = randv(n, 1);
    float *mean = randv(N, 1), *rstd = randv(N, 1), *wc = randv(C, 1), *bc = randv(C, 1);
    printf("swiglu n=%lld: fwd %.2f ms (ref %.2f), bwd %.2f ms (ref %.2f)\n", (long long)n,
           1e3 * TIME(3, bmfm_swiglu_forward(o, u, v, n)),
           1e3 * TIME(1, bmfm_swiglu_forward_ref(o, u, v, n)),
           1e3 * TIME(3, bmfm_swiglu_backward(d1, d2, o, u, v, n)),
           1e3 * TIME(1, bmfm_swiglu_backward_ref(d1, d2, o, u, v, n)));
    printf("rmsnorm N=%lld C=%lld: fwd %.2f ms (ref %.2f), bwd %.2f ms (ref %.2f)\n",
           (long long)N, (long long)C, 1e3 * TIME(3, bmfm_rmsnorm_forward(o, rstd, u, wc, N, C, 1e-5f)),
           1e3 * TIME(1, bmfm_rmsnorm_forward_ref(o, rstd, u, wc, N, C, 1e-5f)),
           1e3 * TIME(3, bmfm_rmsnorm_backward(d1, d2, v, u, wc, rstd, N, C)),
           1e3 * TIME(1, bmfm_rmsnorm_backward_ref(d1, d2, v, u, wc, rstd, N, C)));
    printf("layernorm N=%lld C=%lld: fwd %.2f ms (ref %.2f), bwd %.2f ms (ref %.2f)\n",
           (long long)N, (long long)C,
           1e3 * TIME(3, bmfm_layernorm_forward(o, mean, rstd, u, wc, bc, N, C, 1e-12f)),
           1e3 * TIME(1, bmfm_layernorm_forward_ref(o, mean, rstd, u, wc, bc, N, C, 1e-12f)),
           1e3 * TIME(3, bmfm_layernorm_backward(d1, d2, d2 + C, v, u, wc, mean, rstd, N, C)),
           1e3 * TIME(1, bmfm_layernorm_backward_ref(d1, d2, d2 + C, v, u, wc, mean, rstd, N, C)));
    free(u), free(v), free(o), free(d1), free(d2), free(mean), free(rstd), free(wc), free(bc);
    return 0;
}
