/* probe.c - linear (logistic regression) and kNN probes with stratified CV
 * and held-out batches. Protocol in probe.h.
 *
 * The L-BFGS solver is our own (about 150 lines): the Debian C libraries the
 * project links (OpenBLAS, igraph, HDF5, ...) have none, liblbfgs would be a
 * new dependency for one caller, and liblinear's trust-region Newton with
 * one-vs-rest is not sklearn's multinomial model (metrics.md B13). The solver
 * mirrors what scipy's L-BFGS-B does on an unconstrained problem: start at 0,
 * memory m = 10, first step 1/||d||, later steps 1, a line search for the
 * strong Wolfe conditions with scipy's constants (ftol 1e-3, gtol 0.9), stop
 * when max|g| <= tol, when the relative decrease of f is <= 2.2e-9 (scipy's
 * default factr 1e7 * eps), or after max_iter iterations. The line search is
 * Nocedal & Wright's bracketing/zoom with cubic interpolation instead of
 * Moré-Thuente's dcsrch, so iterates differ slightly from scipy's while the
 * minimiser is the same (the objective is strictly convex).
 */
#include "eval/probe.h"
#include "base/blas_threads.h"

#include "base/alloc.h"
#include "base/rng.h"
#include "eval/knn.h"
#include "nn/gemm.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bmfm_probe_options_default(bmfm_probe_options *o) {
    o->n_folds = 5;
    o->seed = 0;
    o->min_class_size = 10;
    o->C = 1.0;
    o->max_iter = 100;
    o->tol = 1e-4;
    o->knn_k = 5;
}

/* ------------------------------------------------------------------ folds */

bmfm_status bmfm_probe_folds(const int32_t *labels, int64_t n, int64_t n_labels, int n_folds,
                             int min_class_size, uint64_t seed, const uint8_t *skip, int32_t *fold) {
    if (n_folds < 2 || n_folds > BMFM_PROBE_MAX_FOLDS)
        return bmfm_error_set(BMFM_E_INPUT, "probe: n_folds %d outside [2, %d]", n_folds,
                              BMFM_PROBE_MAX_FOLDS);
    bmfm_status st = BMFM_OK;
    int64_t *count = bmfm_calloc((size_t)n_labels + 1, sizeof *count);
    int64_t *start = bmfm_calloc((size_t)n_labels + 1, sizeof *start);
    int32_t *order = bmfm_malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!count || !start || !order) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        fold[i] = -1;
        int32_t c = labels[i];
        if (c >= 0 && c < n_labels && !(skip && skip[i])) count[c]++;
    }
    for (int64_t c = 0; c < n_labels; c++) start[c + 1] = start[c] + count[c];
    memset(count, 0, (size_t)n_labels * sizeof *count);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = labels[i];
        if (c >= 0 && c < n_labels && !(skip && skip[i])) order[start[c] + count[c]++] = (int32_t)i;
    }
    int64_t counter = 0;
    for (int64_t c = 0; c < n_labels; c++) {
        if (count[c] < min_class_size || count[c] == 0) continue;
        bmfm_rng r;
        bmfm_rng_seed(&r, seed, (uint64_t)c);
        bmfm_rng_shuffle_i32(&r, order + start[c], count[c]);
        for (int64_t j = 0; j < count[c]; j++) fold[order[start[c] + j]] = (int32_t)(counter++ % n_folds);
    }
done:
    free(count);
    free(start);
    free(order);
    return st;
}

/* ----------------------------------------------------------------- L-BFGS */

typedef double (*lbfgs_fn)(const double *x, double *g, void *ctx);

typedef struct {
    int n_iter, converged;
    double f, gmax;
} lbfgs_info;


static double vdot(const double *a, const double *b, int64_t n) {
    return cblas_ddot((int)n, a, 1, b, 1);
}

static double vmaxabs(const double *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Minimiser of the cubic through (a, fa, ga), (b, fb, gb), kept inside
 * [lo + 0.1 w, hi - 0.1 w] of the interval; bisection when it degenerates. */
static double cubic_min(double a, double fa, double ga, double b, double fb, double gb) {
    double lo = fmin(a, b), hi = fmax(a, b), w = hi - lo;
    double d1 = ga + gb - 3 * (fa - fb) / (a - b);
    double disc = d1 * d1 - ga * gb;
    double t;
    if (disc >= 0 && isfinite(disc)) {
        double d2 = (b > a ? 1 : -1) * sqrt(disc);
        t = b - (b - a) * (gb + d2 - d1) / (gb - ga + 2 * d2);
        if (!isfinite(t)) t = 0.5 * (a + b);
    } else {
        t = 0.5 * (a + b);
    }
    if (t < lo + 0.1 * w || t > hi - 0.1 * w) t = 0.5 * (a + b);
    return t;
}

/* Strong Wolfe line search along d from x (f0, g0). On return xn, gn, *fn hold
 * the accepted point; returns 0, or -1 when no acceptable step was found (the
 * best point with a decrease is still returned when there is one). */
static int line_search(lbfgs_fn fn, void *ctx, int64_t n, const double *x, double f0, const double *g0,
                       const double *d, double stp, double *xn, double *gn, double *fn_out) {
    const double c1 = 1e-3, c2 = 0.9;
    double dg0 = vdot(g0, d, n);
    if (!(dg0 < 0)) return -1;
    double a_prev = 0, f_prev = f0, dg_prev = dg0;
    double a_lo = 0, f_lo = f0, dg_lo = dg0, a_hi = 0, f_hi = 0, dg_hi = 0;
    int zoom = 0;
    double a = stp;
    for (int it = 0; it < 40; it++) {
        for (int64_t i = 0; i < n; i++) xn[i] = x[i] + a * d[i];
        double f = fn(xn, gn, ctx);
        double dg = vdot(gn, d, n);
        if (!zoom) {
            if (!isfinite(f) || f > f0 + c1 * a * dg0 || (it > 0 && f >= f_prev)) {
                a_lo = a_prev, f_lo = f_prev, dg_lo = dg_prev;
                a_hi = a, f_hi = f, dg_hi = dg;
                zoom = 1;
            } else if (fabs(dg) <= -c2 * dg0) {
                *fn_out = f;
                return 0;
            } else if (dg >= 0) {
                a_lo = a, f_lo = f, dg_lo = dg;
                a_hi = a_prev, f_hi = f_prev, dg_hi = dg_prev;
                zoom = 1;
            } else {
                a_prev = a, f_prev = f, dg_prev = dg;
                a = a * 4; /* extrapolate */
                continue;
            }
        } else {
            if (!isfinite(f) || f > f0 + c1 * a * dg0 || f >= f_lo) {
                a_hi = a, f_hi = f, dg_hi = dg;
            } else {
                if (fabs(dg) <= -c2 * dg0) {
                    *fn_out = f;
                    return 0;
                }
                if (dg * (a_hi - a_lo) >= 0) a_hi = a_lo, f_hi = f_lo, dg_hi = dg_lo;
                a_lo = a, f_lo = f, dg_lo = dg;
            }
        }
        if (fabs(a_hi - a_lo) < 1e-16 * fmax(1.0, a_lo)) break;
        a = isfinite(f_hi) ? cubic_min(a_lo, f_lo, dg_lo, a_hi, f_hi, dg_hi) : 0.5 * (a_lo + a_hi);
    }
    /* fall back to the best sufficient-decrease point seen (a_lo) */
    if (a_lo > 0 && f_lo < f0) {
        for (int64_t i = 0; i < n; i++) xn[i] = x[i] + a_lo * d[i];
        *fn_out = fn(xn, gn, ctx);
        return -1;
    }
    return -2;
}

/* Minimise fn from x (in/out). */
static bmfm_status lbfgs(lbfgs_fn fn, void *ctx, int64_t n, double *x, int max_iter, double gtol,
                         lbfgs_info *info) {
    enum { M = 10 };
    const double ftol = 2.2204460492503131e-09;
    bmfm_status st = BMFM_OK;
    double *mem = bmfm_malloc((size_t)n * (2 * M + 5) * sizeof(double));
    if (!mem) return BMFM_E_NOMEM;
    double *S = mem, *Y = S + (size_t)n * M, *g = Y + (size_t)n * M, *d = g + n, *xn = d + n,
           *gn = xn + n, *q = gn + n;
    double rho[M], alpha[M];
    int head = 0, len = 0;
    double f = fn(x, g, ctx);
    info->n_iter = 0;
    info->converged = 0;
    if (!isfinite(f)) {
        st = bmfm_error_set(BMFM_E_INPUT, "probe: logistic loss is not finite at the start");
        goto done;
    }
    if (vmaxabs(g, n) <= gtol) {
        info->converged = 1;
        goto finish;
    }
    for (int iter = 0; iter < max_iter; iter++) {
        /* two-loop recursion: d = -H g */
        memcpy(q, g, (size_t)n * sizeof *q);
        for (int j = 0; j < len; j++) {
            int k = (head - 1 - j + M) % M;
            alpha[k] = rho[k] * vdot(S + (size_t)k * n, q, n);
            cblas_daxpy((int)n, -alpha[k], Y + (size_t)k * n, 1, q, 1);
        }
        if (len > 0) {
            int k = (head - 1 + M) % M;
            double yy = vdot(Y + (size_t)k * n, Y + (size_t)k * n, n);
            cblas_dscal((int)n, 1.0 / (rho[k] * yy), q, 1);
        }
        for (int j = len - 1; j >= 0; j--) {
            int k = (head - 1 - j + M) % M;
            double b = rho[k] * vdot(Y + (size_t)k * n, q, n);
            cblas_daxpy((int)n, alpha[k] - b, S + (size_t)k * n, 1, q, 1);
        }
        for (int64_t i = 0; i < n; i++) d[i] = -q[i];
        double stp = 1.0;
        if (iter == 0 || len == 0) stp = 1.0 / sqrt(vdot(d, d, n));
        double fnew = f;
        int ls = line_search(fn, ctx, n, x, f, g, d, stp, xn, gn, &fnew);
        if (ls == -2) {
            /* no descent along d: restart from steepest descent once */
            if (len == 0) break;
            len = 0;
            continue;
        }
        info->n_iter = iter + 1;
        /* update memory */
        double *s = S + (size_t)head * n, *y = Y + (size_t)head * n;
        for (int64_t i = 0; i < n; i++) {
            s[i] = xn[i] - x[i];
            y[i] = gn[i] - g[i];
        }
        double sy = vdot(s, y, n), yy = vdot(y, y, n);
        if (sy > DBL_EPSILON * yy) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % M;
            if (len < M) len++;
        }
        double fold = f;
        memcpy(x, xn, (size_t)n * sizeof *x);
        memcpy(g, gn, (size_t)n * sizeof *g);
        f = fnew;
        if ((fold - f) <= ftol * fmax(fmax(fabs(fold), fabs(f)), 1.0)) {
            info->converged = 1;
            break;
        }
        if (vmaxabs(g, n) <= gtol) {
            info->converged = 1;
            break;
        }
        if (ls < 0) break;
    }
finish:
    info->f = f;
    info->gmax = vmaxabs(g, n);
done:
    free(mem);
    return st;
}

/* ------------------------------------------------------ logistic regression */

typedef struct {
    const double *X;
    const int32_t *y;
    int64_t n, d;
    int K;        /* coefficient rows: 1 (binomial) or n_classes */
    double lambda;
    int KP;       /* K rounded up to LR_KB: row stride of raw, wt and gt */
    double *raw;  /* LR_ROWS x KP: one block's scores, then residuals */
    double *wt;   /* d x KP: the coefficients transposed (zero padded) */
    double *gt;   /* d x KP: the data term of the gradient, transposed */
    double *tmp;  /* 3 LR_ROWS + 2 KP: lr_softmax's per-cell values, the intercepts, their gradient */
} lr_ctx;

#define LR_KB 8 /* classes per register block: one AVX-512 vector of doubles */
/* Cells per block of lr_loss_grad: scores, softmax and gradient run on one
 * block while its rows of X (LR_ROWS x d doubles, 12.8 KB at d = 50) and
 * its scores stay in L1, so X streams in once per evaluation, not twice.
 * A multiple of 8, so that every block but the last fills whole vectors. */
#define LR_ROWS 32

/* 8 doubles as one value: gcc keeps it in one zmm register (two ymm, four
 * xmm on the other targets), which a plain array accumulator is not. */
typedef double lr_v8 __attribute__((vector_size(64)));
typedef long long lr_i8 __attribute__((vector_size(64)));

/* Lane-wise a > b ? a : b (as the scalar max of lr_softmax). A macro: a
 * function taking 64-byte vectors draws gcc's ABI warning in the clones
 * without AVX-512. */
#define LR_VMAX(a, b)                                                                                             \
    ({                                                                                                            \
        lr_v8 a_ = (a), b_ = (b);                                                                                 \
        lr_i8 gt_ = a_ > b_;                                                                                      \
        (lr_v8)(((lr_i8)a_ & gt_) | ((lr_i8)b_ & ~gt_));                                                          \
    })

/* Register blocks of lr_scores and lr_grad: vectors of the machine's width
 * (8 doubles with AVX-512, 4 with AVX2, 2 otherwise), eight of them with
 * AVX-512's 32 registers (eight independent FMA chains keep both FMA ports
 * busy behind the FMA latency), four elsewhere. 8-double vectors split into
 * register pairs (AVX2) or quads (SSE) made gcc spill them through the
 * stack: the AVX2 code was about 6x slower than AVX-512 (LR fits on
 * pbmc8k). The width does not change any sum's order. */
typedef double lr_v4 __attribute__((vector_size(32)));
typedef double lr_v2 __attribute__((vector_size(16)));
static int lr_isa(void) { return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0; }

/* The two kernels for one vector type VT of VW doubles (KP is a multiple of
 * VW). lr_scores_VT: raw[i][k] = sum_j X[i][j] wt[j][k], j ascending, R
 * cells x VW classes in registers (OpenBLAS's dgemm with N = K, a handful
 * of classes, spent more time packing X than multiplying); returns the
 * cells done (a multiple of R). lr_grad_VT: wt[j][k] += sum_i X[i][j]
 * G[i][k], i ascending (the gradient's data term, accumulated block after
 * block), F features held in registers across the block's rows, so wt is
 * read and written once per block instead of once per row (a store-to-load
 * chain through memory). */
#define LR_KERNELS(VT, VW)                                                                                        \
    static inline __attribute__((always_inline)) int64_t lr_scores_##VT(const double *X, int64_t n, int64_t d,    \
                                                                        int KP, const double *wt, double *raw,  \
                                                                        const int R) {                          \
        int64_t i0 = 0;                                                                                           \
        for (; i0 + R <= n; i0 += R)                                                                              \
            for (int kc = 0; kc < KP; kc += VW) {                                                                 \
                VT a[8] = {{0}};                                                                                  \
                for (int64_t j = 0; j < d; j++) {                                                                 \
                    VT w;                                                                                         \
                    memcpy(&w, wt + j * KP + kc, sizeof w);                                                       \
                    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) a[r] += X[(i0 + r) * d + j] * w;          \
                }                                                                                                 \
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)                                               \
                    memcpy(raw + (i0 + r) * KP + kc, &a[r], sizeof a[r]);                                         \
            }                                                                                                     \
        return i0;                                                                                                \
    }                                                                                                             \
    static inline __attribute__((always_inline)) void lr_grad_##VT(const double *X, int64_t n, int64_t d, int KP, \
                                                                   const double *G, double *wt, const int F) {   \
        for (int kc = 0; kc < KP; kc += VW) {                                                                     \
            int64_t j0 = 0;                                                                                       \
            for (; j0 + F <= d; j0 += F) {                                                                        \
                VT a[8];                                                                                          \
                _Pragma("GCC unroll 8") for (int t = 0; t < F; t++)                                               \
                    memcpy(&a[t], wt + (j0 + t) * KP + kc, sizeof a[t]);                                          \
                for (int64_t i = 0; i < n; i++) {                                                                 \
                    VT g;                                                                                         \
                    memcpy(&g, G + i * KP + kc, sizeof g);                                                        \
                    _Pragma("GCC unroll 8") for (int t = 0; t < F; t++) a[t] += X[i * d + j0 + t] * g;            \
                }                                                                                                 \
                _Pragma("GCC unroll 8") for (int t = 0; t < F; t++)                                               \
                    memcpy(wt + (j0 + t) * KP + kc, &a[t], sizeof a[t]);                                          \
            }                                                                                                     \
            for (; j0 < d; j0++) { /* the last d % F features, one chain each */                                  \
                VT a;                                                                                             \
                memcpy(&a, wt + j0 * KP + kc, sizeof a);                                                          \
                for (int64_t i = 0; i < n; i++) {                                                                 \
                    VT g;                                                                                         \
                    memcpy(&g, G + i * KP + kc, sizeof g);                                                        \
                    a += X[i * d + j0] * g;                                                                       \
                }                                                                                                 \
                memcpy(wt + j0 * KP + kc, &a, sizeof a);                                                          \
            }                                                                                                     \
        }                                                                                                         \
    }
LR_KERNELS(lr_v8, 8)
LR_KERNELS(lr_v4, 4)
LR_KERNELS(lr_v2, 2)

__attribute__((target_clones("avx512f", "avx2", "default"))) static void lr_scores(const double *X, int64_t n,
                                                                                   int64_t d, int KP,
                                                                                   const double *wt, double *raw) {
    int isa = lr_isa();
    int64_t i0 = isa == 2   ? lr_scores_lr_v8(X, n, d, KP, wt, raw, 8)
                 : isa == 1 ? lr_scores_lr_v4(X, n, d, KP, wt, raw, 4)
                            : lr_scores_lr_v2(X, n, d, KP, wt, raw, 4);
    for (; i0 < n; i0++)
        for (int kc = 0; kc < KP; kc += LR_KB) {
            lr_v8 a = {0};
            for (int64_t j = 0; j < d; j++) {
                lr_v8 w;
                memcpy(&w, wt + j * KP + kc, sizeof w);
                a += X[i0 * d + j] * w;
            }
            memcpy(raw + i0 * KP + kc, &a, sizeof a);
        }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void lr_grad(const double *X, int64_t n,
                                                                                 int64_t d, int KP, const double *G,
                                                                                 double *wt) {
    int isa = lr_isa();
    if (isa == 2)
        lr_grad_lr_v8(X, n, d, KP, G, wt, 8);
    else if (isa == 1)
        lr_grad_lr_v4(X, n, d, KP, G, wt, 4);
    else
        lr_grad_lr_v2(X, n, d, KP, G, wt, 4);
}

/* glibc's vector exp and log (libmvec, <= 4 ulp), so that the softmax loops
 * below vectorise; math.h declares them only under -ffast-math. */
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double log(double);

/* Softmax residuals of the multinomial loss, in place: r = p - onehot(y);
 * returns loss plus the cells' losses, added in cell order.
 * bias: KP intercepts (0 past K). tmp: 3 n doubles (each cell's sum of exps,
 * max and true-class score). Three passes over the cells, so that the exps
 * and logs run as long vector loops instead of one short call per cell: the
 * scores shifted by their max, the exps of the whole n x KP block, then the
 * sums (in class order, as a per-class loop) and the division. The padding
 * lanes hold -1 for the exps (no special-value path in the vector exp) and
 * 0 after. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static double lr_softmax(double *raw, const double *bias,
                                                                                     const int32_t *y, int64_t n,
                                                                                     int K, int KP, double *tmp,
                                                                                     double loss) {
    double *sum = tmp, *mxs = tmp + n, *rys = tmp + 2 * n;
    if (KP == LR_KB) {
        /* one vector per cell (up to 8 classes): the bias, the max over the
         * classes by three shuffle steps (padding lanes at -inf), the shift
         * and the padding's -1 without a scalar pass; the same values */
        lr_v8 b, pad_inf, pad_one;
        lr_i8 real;
        memcpy(&b, bias, sizeof b);
        for (int k = 0; k < LR_KB; k++) {
            real[k] = k < K ? -1 : 0;
            pad_inf[k] = k < K ? 0.0 : -INFINITY;
            pad_one[k] = k < K ? 0.0 : -1.0;
        }
        const lr_i8 s4 = {4, 5, 6, 7, 0, 1, 2, 3}, s2 = {2, 3, 0, 1, 6, 7, 4, 5}, s1 = {1, 0, 3, 2, 5, 4, 7, 6};
        for (int64_t i = 0; i < n; i++) {
            double *r = raw + i * KP;
            lr_v8 v, m;
            memcpy(&v, r, sizeof v);
            v += b;
            rys[i] = v[y[i]];
            m = v + pad_inf;
            m = LR_VMAX(m, __builtin_shuffle(m, s4));
            m = LR_VMAX(m, __builtin_shuffle(m, s2));
            m = LR_VMAX(m, __builtin_shuffle(m, s1));
            mxs[i] = m[0];
            v = (lr_v8)(((lr_i8)(v - m) & real) | ((lr_i8)pad_one & ~real));
            memcpy(r, &v, sizeof v);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            double *r = raw + i * KP, mx = -INFINITY;
            for (int k = 0; k < K; k++) {
                r[k] += bias[k];
                mx = r[k] > mx ? r[k] : mx;
            }
            /* as sklearn 1.2's HalfMultinomialLoss: p_k = exp(r_k - max) / sum,
             * loss = log(sum) + max - r_y (one exp per class) */
            rys[i] = r[y[i]];
            mxs[i] = mx;
            for (int kc = 0; kc < KP; kc += LR_KB) {
                lr_v8 v;
                memcpy(&v, r + kc, sizeof v);
                v -= mx;
                memcpy(r + kc, &v, sizeof v);
            }
            for (int k = K; k < KP; k++) r[k] = -1.0;
        }
    }
    int64_t nk = n * KP;
#pragma omp simd
    for (int64_t t = 0; t < nk; t++) raw[t] = exp(raw[t]);
    /* four cells at a time: four independent chains of class-order sums */
    int64_t i0 = 0;
    for (; i0 + 4 <= n; i0 += 4) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        const double *r0 = raw + i0 * KP, *r1 = r0 + KP, *r2 = r1 + KP, *r3 = r2 + KP;
        for (int k = 0; k < K; k++) s0 += r0[k], s1 += r1[k], s2 += r2[k], s3 += r3[k];
        sum[i0] = s0, sum[i0 + 1] = s1, sum[i0 + 2] = s2, sum[i0 + 3] = s3;
    }
    for (; i0 < n; i0++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += raw[i0 * KP + k];
        sum[i0] = s;
    }
    for (int64_t i = 0; i < n; i++) {
        double *r = raw + i * KP, s = sum[i];
        for (int kc = 0; kc < KP; kc += LR_KB) {
            lr_v8 v;
            memcpy(&v, r + kc, sizeof v);
            v /= s;
            memcpy(r + kc, &v, sizeof v);
        }
        for (int k = K; k < KP; k++) r[k] = 0.0;
        r[y[i]] -= 1.0;
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) sum[i] = log(sum[i]);
    for (int64_t i = 0; i < n; i++) loss += sum[i] + mxs[i] - rys[i];
    return loss;
}

/* Loss and gradient block by block of LR_ROWS cells (scores, residuals,
 * gradient terms); every sum still runs in cell order, so the blocking does
 * not change a bit of the result. */
static double lr_loss_grad(const double *w, double *g, void *vctx) {
    lr_ctx *c = vctx;
    int64_t n = c->n, d = c->d, ld = d + 1;
    int K = c->K;
    int KP = c->KP;
    double loss = 0, *bias = c->tmp + 3 * LR_ROWS, *sb = bias + KP; /* sb: the intercepts' gradient */
    for (int64_t j = 0; j < d; j++)
        for (int k = 0; k < KP; k++) c->wt[j * KP + k] = k < K ? w[k * ld + j] : 0.0;
    for (int k = 0; k < KP; k++) bias[k] = k < K ? w[k * ld + d] : 0.0;
    memset(c->gt, 0, (size_t)d * KP * sizeof *c->gt);
    memset(sb, 0, (size_t)KP * sizeof *sb);
    for (int64_t i0 = 0; i0 < n; i0 += LR_ROWS) {
        int64_t nb = n - i0 < LR_ROWS ? n - i0 : LR_ROWS;
        const double *Xb = c->X + i0 * d;
        double *raw = c->raw;
        lr_scores(Xb, nb, d, KP, c->wt, raw);
        if (K == 1) {
            for (int64_t i = 0; i < nb; i++) {
                double r = raw[i * KP] + bias[0];
                int yi = c->y[i0 + i] != 0;
                /* log(1 + e^r) - y r, and d/dr = sigmoid(r) - y */
                double l = r > 0 ? r + log1p(exp(-r)) : log1p(exp(r));
                loss += l - (yi ? r : 0);
                double p = r > 0 ? 1.0 / (1.0 + exp(-r)) : exp(r) / (1.0 + exp(r));
                raw[i * KP] = p - yi;
            }
        } else {
            loss = lr_softmax(raw, bias, c->y + i0, nb, K, KP, c->tmp, loss);
        }
        /* gradient of the data term: G^T X (K x d), intercept = column sums of G */
        lr_grad(Xb, nb, d, KP, raw, c->gt);
        for (int k = 0; k < K; k++)
            for (int64_t i = 0; i < nb; i++) sb[k] += raw[i * KP + k];
    }
    double pen = 0;
    for (int k = 0; k < K; k++) {
        g[k * ld + d] = sb[k];
        for (int64_t j = 0; j < d; j++) {
            double wj = w[k * ld + j];
            pen += wj * wj;
            g[k * ld + j] = c->gt[j * KP + k] + c->lambda * wj;
        }
    }
    return loss + 0.5 * c->lambda * pen;
}

bmfm_status bmfm_logreg_fit(const double *X, int64_t n, int64_t d, const int32_t *y, int n_classes,
                            double C, int max_iter, double tol, bmfm_logreg *out) {
    memset(out, 0, sizeof *out);
    if (n_classes < 2) return bmfm_error_set(BMFM_E_INPUT, "probe: logistic regression needs >= 2 classes");
    if (!(C > 0)) return bmfm_error_set(BMFM_E_INPUT, "probe: C must be > 0");
    int K = n_classes == 2 ? 1 : n_classes;
    int KP = (K + LR_KB - 1) / LR_KB * LR_KB;
    lr_ctx c = {X, y, n, d, K, 1.0 / C, KP, NULL, NULL, NULL, NULL};
    c.raw = bmfm_malloc((size_t)LR_ROWS * KP * sizeof(double));
    c.wt = bmfm_malloc((size_t)(d ? d : 1) * KP * sizeof(double));
    c.gt = bmfm_malloc((size_t)(d ? d : 1) * KP * sizeof(double));
    c.tmp = bmfm_malloc(((size_t)LR_ROWS * 3 + 2 * (size_t)KP) * sizeof(double));
    double *w = bmfm_calloc((size_t)K * (d + 1), sizeof(double));
    if (!c.raw || !c.wt || !c.gt || !c.tmp || !w) {
        free(c.raw);
        free(c.wt);
        free(c.gt);
        free(c.tmp);
        free(w);
        return BMFM_E_NOMEM;
    }
    lbfgs_info info = {0};
    bmfm_status st = lbfgs(lr_loss_grad, &c, (int64_t)K * (d + 1), w, max_iter, tol, &info);
    free(c.raw);
    free(c.wt);
    free(c.gt);
    free(c.tmp);
    if (st) {
        free(w);
        return st;
    }
    out->d = d;
    out->n_classes = n_classes;
    out->n_rows = K;
    out->coef = w;
    out->loss = info.f;
    out->grad_max = info.gmax;
    out->n_iter = info.n_iter;
    out->converged = info.converged;
    return BMFM_OK;
}

void bmfm_logreg_predict(const bmfm_logreg *m, const double *X, int64_t n, int32_t *pred) {
    int64_t d = m->d, ld = d + 1;
    for (int64_t i = 0; i < n; i++) {
        const double *x = X + i * d;
        if (m->n_rows == 1) {
            double r = m->coef[d] + vdot(x, m->coef, d);
            pred[i] = r > 0 ? 1 : 0;
        } else {
            int best = 0;
            double bv = -INFINITY;
            for (int k = 0; k < m->n_rows; k++) {
                double r = m->coef[k * ld + d] + vdot(x, m->coef + k * ld, d);
                if (r > bv) bv = r, best = k;
            }
            pred[i] = best;
        }
    }
}

void bmfm_logreg_free(bmfm_logreg *m) {
    free(m->coef);
    m->coef = NULL;
}

/* -------------------------------------------------------------------- kNN */

/* Candidates are screened in float (sgemm on data centred by the training
 * mean, KNN_PROBE_MARGIN more than k) and the kept k chosen by exact double
 * distance (direct differences), ties to the lower training index: the
 * double dgemm over all pairs was most of the kNN probe's time. */
#define KNN_PROBE_MARGIN 8
bmfm_status bmfm_knn_classify(const double *train, int64_t nt, const int32_t *ytrain,
                              const double *query, int64_t nq, int64_t d, int n_classes, int k,
                              int32_t *pred) {
    if (k < 1) return bmfm_error_set(BMFM_E_INPUT, "probe: kNN k must be >= 1");
    if (k > nt) k = (int)nt;
    int kk = k + KNN_PROBE_MARGIN < nt ? k + KNN_PROBE_MARGIN : (int)nt;
    /* query blocks of BQ rows against column blocks of BC training cells,
     * every row's selection continuing from block to block: the sgemm
     * buffer is 512 KB whatever the training size (a BQ x nt block was 3 MB
     * on pbmc8k, 51 MB at 100k cells; the time on pbmc8k is the same) */
    enum { BQ = 128, BC = 1024 };
    bmfm_status st = BMFM_OK;
    float *tf = bmfm_malloc((size_t)(nt ? nt : 1) * d * sizeof *tf);
    float *qf = bmfm_malloc((size_t)(nq ? nq : 1) * d * sizeof *qf);
    float *tn = bmfm_malloc((size_t)(nt ? nt : 1) * sizeof *tn);
    float *dist = bmfm_malloc((size_t)BQ * BC * sizeof *dist);
    double *mu = bmfm_calloc((size_t)d, sizeof *mu);
    int32_t *idx = bmfm_malloc((size_t)BQ * (kk + 1) * sizeof *idx);
    float *best = bmfm_malloc((size_t)BQ * (kk + 1) * sizeof *best);
    int *have = bmfm_malloc((size_t)BQ * sizeof *have);
    double *dd = bmfm_malloc((size_t)(kk + 1) * sizeof *dd);
    int *votes = bmfm_malloc((size_t)(n_classes > 0 ? n_classes : 1) * sizeof *votes);
    if (!tf || !qf || !tn || !dist || !mu || !idx || !best || !have || !dd || !votes) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t j = 0; j < nt; j++)
        for (int64_t c = 0; c < d; c++) mu[c] += train[j * d + c];
    for (int64_t c = 0; c < d; c++) mu[c] /= (double)(nt ? nt : 1);
    for (int64_t j = 0; j < nt; j++) {
        double sq = 0;
        for (int64_t c = 0; c < d; c++) {
            tf[j * d + c] = (float)(train[j * d + c] - mu[c]);
            sq += (double)tf[j * d + c] * tf[j * d + c];
        }
        tn[j] = (float)sq;
    }
    /* queries times -2 (exact), so that one plain product gives -2 q.t */
    for (int64_t i = 0; i < nq; i++)
        for (int64_t c = 0; c < d; c++) qf[i * d + c] = -2.0f * (float)(query[i * d + c] - mu[c]);
    for (int64_t q0 = 0; q0 < nq; q0 += BQ) {
        int64_t bq = nq - q0 < BQ ? nq - q0 : BQ;
        for (int64_t qi = 0; qi < bq; qi++) have[qi] = 0;
        for (int64_t c0 = 0; c0 < nt; c0 += BC) {
            int64_t bc = nt - c0 < BC ? nt - c0 : BC;
            if (bmfm_gemm_invariant(dist, qf + q0 * d, tf + c0 * d, NULL, bq, bc, d, 1, 0))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bq, (int)bc, (int)d, 1.0f, qf + q0 * d,
                            (int)d, tf + c0 * d, (int)d, 0.0f, dist, (int)bc);
            for (int64_t qi = 0; qi < bq; qi++)
                have[qi] = bmfm_knn_select_row(dist + qi * bc, tn + c0, bc, c0, kk, have[qi], idx + qi * kk,
                                               best + qi * kk);
        }
        for (int64_t qi = 0; qi < bq; qi++) {
            int nh = have[qi];
            int32_t *ix = idx + qi * kk;
            const double *q = query + (q0 + qi) * d;
            for (int t = 0; t < nh; t++) {
                const double *x = train + (int64_t)ix[t] * d;
                double s2 = 0;
                for (int64_t c = 0; c < d; c++) s2 += (q[c] - x[c]) * (q[c] - x[c]);
                dd[t] = s2;
            }
            for (int t = 1; t < nh; t++) { /* by (distance, index) */
                double v = dd[t];
                int32_t j = ix[t];
                int p = t;
                while (p > 0 && (dd[p - 1] > v || (dd[p - 1] == v && ix[p - 1] > j))) {
                    dd[p] = dd[p - 1];
                    ix[p] = ix[p - 1];
                    p--;
                }
                dd[p] = v;
                ix[p] = j;
            }
            if (nh > k) nh = k;
            int nc = n_classes > 0 ? n_classes : 1;
            memset(votes, 0, (size_t)nc * sizeof *votes);
            for (int t = 0; t < nh; t++)
                if (ytrain[ix[t]] >= 0 && ytrain[ix[t]] < nc) votes[ytrain[ix[t]]]++;
            int bcl = 0;
            for (int c = 1; c < nc; c++)
                if (votes[c] > votes[bcl]) bcl = c;
            pred[q0 + qi] = bcl;
        }
    }
done:
    free(tf);
    free(qf);
    free(tn);
    free(dist);
    free(mu);
    free(idx);
    free(best);
    free(have);
    free(dd);
    free(votes);
    return st;
}

/* ------------------------------------------------------------------ scores */

double bmfm_f1_macro(const int32_t *y, const int32_t *pred, int64_t n, int n_classes, double *accuracy) {
    int64_t *tp = calloc((size_t)n_classes * 3 + 1, sizeof *tp);
    if (!tp) return NAN;
    int64_t *nt = tp + n_classes, *np = nt + n_classes, correct = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] >= n_classes || pred[i] < 0 || pred[i] >= n_classes) continue;
        nt[y[i]]++;
        np[pred[i]]++;
        if (y[i] == pred[i]) tp[y[i]]++, correct++;
    }
    double sum = 0;
    int used = 0;
    for (int c = 0; c < n_classes; c++) {
        if (!nt[c] && !np[c]) continue;
        used++;
        sum += 2.0 * tp[c] / (double)(nt[c] + np[c]);
    }
    free(tp);
    if (accuracy) *accuracy = n ? (double)correct / n : NAN;
    return used ? sum / used : NAN;
}

/* ----------------------------------------------------------------- drivers */

/* Which cells are usable, with labels remapped to the kept classes. */
typedef struct {
    int32_t *y;      /* kept class per cell, -1 = dropped */
    uint8_t *finite; /* 1 when the embedding row is finite */
    int n_classes;
} kept_labels;

static bmfm_status keep_labels(const float *emb, int64_t n, int64_t d, const int32_t *labels,
                               int64_t n_labels, int min_size, bmfm_probe_result *out, kept_labels *kl) {
    kl->y = bmfm_malloc((size_t)(n ? n : 1) * sizeof *kl->y);
    kl->finite = bmfm_malloc((size_t)(n ? n : 1));
    int64_t *cnt = bmfm_calloc((size_t)n_labels + 1, sizeof *cnt);
    int32_t *map = bmfm_malloc(((size_t)n_labels + 1) * sizeof *map);
    if (!kl->y || !kl->finite || !cnt || !map) {
        free(cnt);
        free(map);
        return BMFM_E_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        int finite = 1;
        for (int64_t j = 0; j < d && finite; j++) finite = isfinite(emb[i * d + j]);
        kl->finite[i] = (uint8_t)finite;
        if (!finite) {
            out->n_dropped_nan++;
            kl->y[i] = -1;
        } else if (labels[i] < 0 || labels[i] >= n_labels) {
            out->n_dropped_label++;
            kl->y[i] = -1;
        } else {
            kl->y[i] = labels[i];
            cnt[labels[i]]++;
        }
    }
    int K = 0;
    for (int64_t c = 0; c < n_labels; c++) {
        if (cnt[c] >= min_size) map[c] = K++;
        else {
            map[c] = -1;
            if (cnt[c] > 0) out->n_classes_dropped++;
        }
    }
    for (int64_t i = 0; i < n; i++) {
        if (kl->y[i] < 0) continue;
        kl->y[i] = map[kl->y[i]];
        if (kl->y[i] < 0) out->n_dropped_label++;
        else out->n_cells_used++;
    }
    kl->n_classes = K;
    out->n_classes = K;
    free(cnt);
    free(map);
    return BMFM_OK;
}

static void result_init(bmfm_probe_result *r) {
    memset(r, 0, sizeof *r);
    r->lr_f1_macro = r->lr_accuracy = r->knn_f1_macro = r->knn_accuracy = NAN;
}

/* Train both probes on cells with is_train, score them on cells with is_test.
 * The classes seen in training are remapped to 0..Kt-1 (as sklearn encodes
 * them), predictions mapped back. Returns 1 when scored, 0 when training has
 * fewer than 2 classes. */
static int fit_eval(const float *emb, int64_t n, int64_t d, const int32_t *y, int K,
                    const uint8_t *is_train, const uint8_t *is_test, const bmfm_probe_options *o,
                    double *lr_f1, double *lr_acc, double *knn_f1, double *knn_acc, int *not_conv,
                    bmfm_status *st) {
    int64_t ntr = 0, nte = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0) continue;
        ntr += is_train[i] != 0;
        nte += is_test[i] != 0;
    }
    int scored = 0;
    double *Xtr = bmfm_malloc((size_t)(ntr ? ntr : 1) * d * sizeof(double));
    double *Xte = bmfm_malloc((size_t)(nte ? nte : 1) * d * sizeof(double));
    double *scale = bmfm_calloc((size_t)d + 1, sizeof(double));
    int32_t *ytr = bmfm_malloc((size_t)(ntr ? ntr : 1) * sizeof(int32_t));
    int32_t *yte = bmfm_malloc((size_t)(nte ? nte : 1) * sizeof(int32_t));
    int32_t *pred = bmfm_malloc((size_t)(nte ? nte : 1) * sizeof(int32_t));
    int32_t *enc = bmfm_malloc((size_t)(K + 1) * sizeof(int32_t));
    int32_t *dec = bmfm_malloc((size_t)(K + 1) * sizeof(int32_t));
    bmfm_logreg m = {0};
    *st = BMFM_OK;
    if (!Xtr || !Xte || !scale || !ytr || !yte || !pred || !enc || !dec) {
        *st = BMFM_E_NOMEM;
        goto done;
    }
    for (int c = 0; c < K; c++) enc[c] = -1;
    int64_t a = 0, b = 0;
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0) continue;
        if (is_train[i]) {
            for (int64_t j = 0; j < d; j++) Xtr[a * d + j] = emb[i * d + j];
            ytr[a++] = y[i];
            enc[y[i]] = 0;
        }
        if (is_test[i]) {
            for (int64_t j = 0; j < d; j++) Xte[b * d + j] = emb[i * d + j];
            yte[b++] = y[i];
        }
    }
    int Kt = 0;
    for (int c = 0; c < K; c++)
        if (enc[c] == 0) dec[Kt] = c, enc[c] = Kt++;
    if (Kt < 2 || nte == 0) goto done;
    for (int64_t i = 0; i < ntr; i++) ytr[i] = enc[ytr[i]];
    /* StandardScaler(with_mean=False): population std of the training fold;
     * (near-)constant features keep scale 1 as sklearn's _handle_zeros_in_scale */
    for (int64_t j = 0; j < d; j++) {
        double mu = 0, v = 0;
        for (int64_t i = 0; i < ntr; i++) mu += Xtr[i * d + j];
        mu /= (double)ntr;
        for (int64_t i = 0; i < ntr; i++) {
            double t = Xtr[i * d + j] - mu;
            v += t * t;
        }
        double sd = sqrt(v / (double)ntr);
        scale[j] = sd < 10 * DBL_EPSILON * fmax(1.0, fabs(mu)) ? 1.0 : sd;
    }
    for (int64_t i = 0; i < ntr; i++)
        for (int64_t j = 0; j < d; j++) Xtr[i * d + j] /= scale[j];
    for (int64_t i = 0; i < nte; i++)
        for (int64_t j = 0; j < d; j++) Xte[i * d + j] /= scale[j];

    *st = bmfm_logreg_fit(Xtr, ntr, d, ytr, Kt, o->C, o->max_iter, o->tol, &m);
    if (*st) goto done;
    if (!m.converged) (*not_conv)++;
    bmfm_logreg_predict(&m, Xte, nte, pred);
    for (int64_t i = 0; i < nte; i++) pred[i] = dec[pred[i]];
    *lr_f1 = bmfm_f1_macro(yte, pred, nte, K, lr_acc);
    if (o->knn_k > 0) {
        *st = bmfm_knn_classify(Xtr, ntr, ytr, Xte, nte, d, Kt, o->knn_k, pred);
        if (*st) goto done;
        for (int64_t i = 0; i < nte; i++) pred[i] = dec[pred[i]];
        *knn_f1 = bmfm_f1_macro(yte, pred, nte, K, knn_acc);
    }
    scored = 1;
done:
    bmfm_logreg_free(&m);
    free(Xtr);
    free(Xte);
    free(scale);
    free(ytr);
    free(yte);
    free(pred);
    free(enc);
    free(dec);
    return scored;
}

static void average_folds(bmfm_probe_result *r, const bmfm_probe_options *o) {
    if (!r->n_folds) return;
    double s[4] = {0};
    for (int f = 0; f < r->n_folds; f++) {
        s[0] += r->lr_f1_fold[f];
        s[1] += r->lr_acc_fold[f];
        s[2] += r->knn_f1_fold[f];
        s[3] += r->knn_acc_fold[f];
    }
    r->lr_f1_macro = s[0] / r->n_folds;
    r->lr_accuracy = s[1] / r->n_folds;
    if (o->knn_k > 0) {
        r->knn_f1_macro = s[2] / r->n_folds;
        r->knn_accuracy = s[3] / r->n_folds;
    }
}

/* Train on the cells of every other group, test on group g, for each group g
 * (or only `only` when >= 0); groups in parallel, each with single-threaded
 * BLAS: alternating OpenBLAS's thread pool with OpenMP regions makes the two
 * runtimes spin against each other on a loaded machine, and the GEMMs here
 * (cells x features x classes) are too small to gain from BLAS threads. The
 * result does not depend on the thread count. Returns the number of groups
 * with test cells that could not be scored (< 2 training classes). */
static int run_groups(const float *emb, int64_t n, int64_t d, const int32_t *y, int K, const int32_t *grp,
                      int n_groups, int only, const bmfm_probe_options *o, bmfm_probe_result *out,
                      bmfm_status *st) {
    int scored[BMFM_PROBE_MAX_FOLDS] = {0}, has_test[BMFM_PROBE_MAX_FOLDS] = {0}, nc[BMFM_PROBE_MAX_FOLDS] = {0};
    double r[BMFM_PROBE_MAX_FOLDS][4];
    bmfm_status gst[BMFM_PROBE_MAX_FOLDS] = {BMFM_OK};
    if (n_groups > BMFM_PROBE_MAX_FOLDS) n_groups = BMFM_PROBE_MAX_FOLDS;
    bmfm_error_saved fail; /* the lowest failing group's message (error.h) */
    int fail_g = n_groups;
    bmfm_blas_threads_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (int g = 0; g < n_groups; g++) {
        if (only >= 0 && g != only) continue;
        bmfm_error_clear();
        r[g][2] = r[g][3] = NAN;
        uint8_t *tr = bmfm_malloc((size_t)(n ? n : 1) * 2);
        if (tr) {
            uint8_t *te = tr + (n ? n : 1);
            for (int64_t i = 0; i < n; i++) {
                te[i] = grp[i] == g;
                tr[i] = grp[i] >= 0 && grp[i] != g;
                has_test[g] |= te[i] && y[i] >= 0;
            }
            if (has_test[g])
                scored[g] = fit_eval(emb, n, d, y, K, tr, te, o, &r[g][0], &r[g][1], &r[g][2], &r[g][3], &nc[g],
                                     &gst[g]);
            free(tr);
        } else {
            gst[g] = BMFM_E_NOMEM;
        }
        if (gst[g]) {
#pragma omp critical(probe_fail)
            if (g < fail_g) {
                bmfm_error_save(gst[g], &fail);
                fail_g = g;
            }
        }
    }
    bmfm_blas_threads_end();
    if (fail_g < n_groups) *st = bmfm_error_restore(&fail);
    int skipped = 0;
    for (int g = 0; g < n_groups; g++) {
        out->lr_not_converged += nc[g];
        if (!scored[g]) {
            skipped += has_test[g];
            continue;
        }
        int k = out->n_folds++;
        out->lr_f1_fold[k] = r[g][0];
        out->lr_acc_fold[k] = r[g][1];
        out->knn_f1_fold[k] = r[g][2];
        out->knn_acc_fold[k] = r[g][3];
    }
    average_folds(out, o);
    return skipped;
}

bmfm_status bmfm_probe_cv(const float *emb, int64_t n, int64_t d, const int32_t *labels,
                          int64_t n_labels, const bmfm_probe_options *o, bmfm_probe_result *out) {
    result_init(out);
    if (o->n_folds < 2 || o->n_folds > BMFM_PROBE_MAX_FOLDS)
        return bmfm_error_set(BMFM_E_INPUT, "probe: n_folds %d outside [2, %d]", o->n_folds,
                              BMFM_PROBE_MAX_FOLDS);
    /* every kept class must reach every training fold, as StratifiedKFold needs */
    int min_size = o->min_class_size > o->n_folds ? o->min_class_size : o->n_folds;
    kept_labels kl = {0};
    bmfm_status st = keep_labels(emb, n, d, labels, n_labels, min_size, out, &kl);
    int32_t *fold = bmfm_malloc((size_t)(n ? n : 1) * sizeof *fold);
    uint8_t *skip = bmfm_malloc((size_t)(n ? n : 1));
    if (st || !fold || !skip) {
        st = st ? st : BMFM_E_NOMEM;
        goto done;
    }
    if (kl.n_classes < 2) {
        snprintf(out->note, sizeof out->note,
                 "probe undefined: %d class(es) with >= %d cells (need 2)", kl.n_classes, min_size);
        goto done;
    }
    /* folds from the caller's codes (not the remapped ones), so that
     * bmfm_probe_folds(labels, ..., skip = non-finite rows) reproduces them */
    for (int64_t i = 0; i < n; i++) skip[i] = !kl.finite[i];
    st = bmfm_probe_folds(labels, n, n_labels, o->n_folds, min_size, o->seed, skip, fold);
    if (st) goto done;
    run_groups(emb, n, d, kl.y, kl.n_classes, fold, o->n_folds, -1, o, out, &st);
done:
    free(kl.y);
    free(kl.finite);
    free(fold);
    free(skip);
    return st;
}

bmfm_status bmfm_probe_heldout_batch(const float *emb, int64_t n, int64_t d, const int32_t *labels,
                                     int64_t n_labels, const int32_t *batches, int64_t n_batches,
                                     int test_batch, const bmfm_probe_options *o,
                                     bmfm_probe_result *out) {
    result_init(out);
    if (test_batch >= n_batches)
        return bmfm_error_set(BMFM_E_INPUT, "probe: held-out batch %d outside [0, %lld)", test_batch,
                              (long long)n_batches);
    if (n_batches > BMFM_PROBE_MAX_FOLDS && test_batch < 0)
        return bmfm_error_set(BMFM_E_UNSUPPORTED, "probe: leave-one-batch-out over %lld batches (at most %d)",
                              (long long)n_batches, BMFM_PROBE_MAX_FOLDS);
    kept_labels kl = {0};
    bmfm_status st = keep_labels(emb, n, d, labels, n_labels, o->min_class_size, out, &kl);
    if (st) goto done;
    if (kl.n_classes < 2) {
        snprintf(out->note, sizeof out->note, "probe undefined: %d class(es) with >= %d cells (need 2)",
                 kl.n_classes, o->min_class_size);
        goto done;
    }
    int skipped = run_groups(emb, n, d, kl.y, kl.n_classes, batches, (int)n_batches, test_batch, o, out, &st);
    if (st) goto done;
    if (!out->n_folds)
        snprintf(out->note, sizeof out->note,
                 "held-out-batch probe undefined: no batch leaves >= 2 classes to train on");
    else if (skipped)
        snprintf(out->note, sizeof out->note,
                 "%d held-out batch(es) skipped: < 2 classes in the other batches", skipped);
done:
    free(kl.y);
    free(kl.finite);
    return st;
}
