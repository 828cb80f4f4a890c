/* knn.c - exact Euclidean kNN by blocked sgemm screening + double re-ranking.
 *
 * Why not sgemm distances alone: ||x||^2 + ||y||^2 - 2 x.y in float32 loses
 * digits when neighbours are close relative to the norms, which would make the
 * order of near neighbours (and so the UMAP weights) noisy. We centre the data,
 * screen k-1+MARGIN candidates per row with sgemm, then recompute those
 * candidates' squared distances in double by direct differences and keep the
 * best k-1 by (distance, index). Every row is independent and the candidate
 * lists are filled in fixed column order, so results do not depend on the
 * OpenMP thread count.
 */
#include "eval/knn.h"
#include "nn/gemm.h"
#include "base/blas_threads.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "nn/nn.h"

#define KNN_MARGIN 8
#define KNN_ROW_BLOCK 256
#define KNN_COL_BLOCK 2048
#define KNN_SCAN 32 /* columns checked at once against the k-th best */
#define KNN_BUF_FACTOR 4 /* screening buffer per row: this many times the candidates kept */
/* the screening is compiled three times and chosen at run time (screen_for_cpu) */
#define BMFM_KNN_AVX512 __attribute__((target("avx512f,fma")))
#define BMFM_KNN_AVX2 __attribute__((target("avx2,fma")))

typedef struct cand {
    double d;
    int32_t j;
} cand;

static inline int cand_less(const cand *x, const cand *y) { return x->d < y->d || (x->d == y->d && x->j < y->j); }

/* Insertion sort by (distance, index): the candidates arrive in float-key
 * order, which the double distances change only among near ties, so this is
 * close to linear (qsort's comparator calls were 12% of the build). */
static void sort_cands(cand *c, int n) {
    for (int t = 1; t < n; t++) {
        cand v = c[t];
        int p = t;
        while (p > 0 && cand_less(&v, &c[p - 1])) {
            c[p] = c[p - 1];
            p--;
        }
        c[p] = v;
    }
}

/* a[lo..hi] around a median-of-three pivot with a branchless Lomuto pass
 * (keys in no order: a compare-and-branch partition mispredicts about every
 * other key); returns the pivot's final position. Keys are distinct. */
static int partition_keys(uint64_t *a, int lo, int hi) {
    int mid = lo + (hi - lo) / 2;
    uint64_t x0 = a[lo], x1 = a[mid], x2 = a[hi];
    int p = (x0 < x1) == (x1 < x2) ? mid : (x1 < x0) == (x0 < x2) ? lo : hi;
    uint64_t x = a[p];
    a[p] = a[hi];
    a[hi] = x;
    int st = lo;
    for (int i = lo; i < hi; i++) {
        uint64_t v = a[i];
        a[i] = a[st];
        a[st] = v;
        st += v < x;
    }
    a[hi] = a[st];
    a[st] = x;
    return st;
}

/* Ascending sort of distinct keys: quicksort, insertion sort below 16 (a
 * row's few hundred candidates). */
static void sort_keys(uint64_t *a, int n) {
    while (n > 16) {
        int p = partition_keys(a, 0, n - 1);
        /* recurse on the smaller side */
        if (p < n - 1 - p) {
            sort_keys(a, p);
            a += p + 1;
            n -= p + 1;
        } else {
            sort_keys(a + p + 1, n - 1 - p);
            n = p;
        }
    }
    for (int t = 1; t < n; t++) {
        uint64_t v = a[t];
        int p = t;
        while (p > 0 && a[p - 1] > v) {
            a[p] = a[p - 1];
            p--;
        }
        a[p] = v;
    }
}

/* Screening candidates are 64-bit keys ordered as (float distance, index):
 * the float's bits mapped to an unsigned integer of the same order (negative
 * values, from cancellation, flipped; -0 made +0 first so that it ties with
 * +0), column index below. One integer compare replaces the (distance,
 * index) pair compare, and the kept set is exactly the m smallest pairs. */
static inline uint64_t screen_key(float d, int32_t j) {
    union { float f; uint32_t u; } v = {d + 0.0f};
    uint32_t u = (v.u & 0x80000000u) ? ~v.u : (v.u | 0x80000000u);
    return (uint64_t)u << 32 | (uint32_t)j;
}

static inline float screen_key_dist(uint64_t k) {
    uint32_t u = (uint32_t)(k >> 32);
    union { uint32_t u; float f; } v = {(u & 0x80000000u) ? (u & 0x7fffffffu) : ~u};
    return v.f;
}

/* Reorder a[0..n) so that a[0..m) are its m smallest keys (m < n), with the
 * largest of them at a[m-1]. Keys are distinct (they hold the index), so the
 * kept set does not depend on the pivots. */
static void keep_smallest(uint64_t *a, int n, int m) {
    int lo = 0, hi = n - 1, want = m - 1;
    while (lo < hi) {
        int st = partition_keys(a, lo, hi);
        if (want == st) break;
        if (want < st) hi = st - 1;
        else lo = st + 1;
    }
}

/* Squared distance in double, summed in coordinate order (as a plain loop
 * would), four candidates at a time so the four sums overlap in the FPU. */
static void rerank_distances(const float *X, int64_t d, const float *xi, cand *c, int cnt) {
    int t = 0;
    for (; t + 4 <= cnt; t += 4) {
        const float *x0 = X + (int64_t)c[t].j * d, *x1 = X + (int64_t)c[t + 1].j * d;
        const float *x2 = X + (int64_t)c[t + 2].j * d, *x3 = X + (int64_t)c[t + 3].j * d;
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (int64_t q = 0; q < d; q++) {
            double v = (double)xi[q], e0 = v - (double)x0[q], e1 = v - (double)x1[q];
            double e2 = v - (double)x2[q], e3 = v - (double)x3[q];
            s0 += e0 * e0;
            s1 += e1 * e1;
            s2 += e2 * e2;
            s3 += e3 * e3;
        }
        c[t].d = s0, c[t + 1].d = s1, c[t + 2].d = s2, c[t + 3].d = s3;
    }
    for (; t < cnt; t++) c[t].d = bmfm_knn_sqdist(xi, X + (int64_t)c[t].j * d, d);
}

double bmfm_knn_sqdist(const float *a, const float *b, int64_t d) {
    double s = 0;
    for (int64_t q = 0; q < d; q++) {
        double e = (double)a[q] - (double)b[q];
        s += e * e;
    }
    return s;
}

/* One row's screening state: a buffer of keys beating the bound. */
typedef struct screen_row {
    uint64_t *keys;
    int cnt, cap, m;
    float worst;
} screen_row;

/* Bit t of the result: g[t] <= worst, for t < 32 (NaN never passes). */
static inline uint32_t pass_mask_generic(const float *g, float worst) {
    uint32_t mask = 0;
    for (int t = 0; t < KNN_SCAN; t++) mask |= (uint32_t)(g[t] <= worst) << t;
    return mask;
}

static inline BMFM_KNN_AVX2 uint32_t pass_mask_avx2(const float *g, float worst) {
    __m256 w = _mm256_set1_ps(worst);
    uint32_t mask = 0;
    for (int t = 0; t < KNN_SCAN; t += 8)
        mask |= (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(g + t), w, _CMP_LE_OQ)) << t;
    return mask;
}

static inline BMFM_KNN_AVX512 uint32_t pass_mask_avx512(const float *g, float worst) {
    __m512 w = _mm512_set1_ps(worst);
    return (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(g), w, _CMP_LE_OQ) |
           (uint32_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(g + 16), w, _CMP_LE_OQ) << 16;
}

static inline void screen_push(screen_row *s, float dist, int32_t j) {
    s->keys[s->cnt++] = screen_key(dist, j);
    if (s->cnt == s->cap) {
        keep_smallest(s->keys, s->cnt, s->m);
        s->cnt = s->m;
        s->worst = screen_key_dist(s->keys[s->m - 1]);
    }
}

/* g[0..cb): the sgemm dot products of row i with columns c0..c0+cb, turned
 * into squared distances in place (2 g is exact, so a fused multiply-add
 * gives the same floats as separate operations), then every column within
 * the bound goes into the buffer. Whole 32-column groups are tested with one
 * vector compare and only their passing columns are visited; each is
 * checked again against the bound, which tightens as the buffer is cut. The
 * kept keys are the same on every instruction set. */
static inline __attribute__((always_inline)) void screen_impl(float *g, const float *sqc, float si, int64_t cb,
                                                              int64_t c0, int64_t i, screen_row *s, const int isa) {
#pragma omp simd
    for (int64_t jj = 0; jj < cb; jj++) g[jj] = si + sqc[jj] - 2.0f * g[jj];
    int64_t j0 = 0;
    for (; j0 + KNN_SCAN <= cb; j0 += KNN_SCAN) {
        uint32_t mask = isa == 2   ? pass_mask_avx512(g + j0, s->worst)
                        : isa == 1 ? pass_mask_avx2(g + j0, s->worst)
                                   : pass_mask_generic(g + j0, s->worst);
        while (mask) {
            int64_t jj = j0 + __builtin_ctz(mask);
            mask &= mask - 1;
            if (g[jj] <= s->worst && c0 + jj != i) screen_push(s, g[jj], (int32_t)(c0 + jj));
        }
    }
    for (int64_t jj = j0; jj < cb; jj++)
        if (g[jj] <= s->worst && c0 + jj != i) screen_push(s, g[jj], (int32_t)(c0 + jj));
}

static BMFM_KNN_AVX512 void screen_avx512(float *g, const float *sqc, float si, int64_t cb, int64_t c0, int64_t i,
                                          screen_row *s) {
    screen_impl(g, sqc, si, cb, c0, i, s, 2);
}

static BMFM_KNN_AVX2 void screen_avx2(float *g, const float *sqc, float si, int64_t cb, int64_t c0, int64_t i,
                                      screen_row *s) {
    screen_impl(g, sqc, si, cb, c0, i, s, 1);
}

static void screen_generic(float *g, const float *sqc, float si, int64_t cb, int64_t c0, int64_t i, screen_row *s) {
    screen_impl(g, sqc, si, cb, c0, i, s, 0);
}

typedef void (*screen_fn)(float *, const float *, float, int64_t, int64_t, int64_t, screen_row *);

/* The kernels' run-time choice (nn/cpu.c: AVX-512 and AVX2 only with FMA,
 * which the two screening variants are compiled for; BMFM_ISA caps it). */
static screen_fn screen_for_cpu(void) {
    switch (bmfm_cpu_isa()) {
    case BMFM_ISA_AVX512: return screen_avx512;
    case BMFM_ISA_AVX2: return screen_avx2;
    default: return screen_generic;
    }
}

/* Bit t of the result: row[t] + add[t] <= worst, for t < 32 (the sums
 * formed in registers, not stored). */
static inline uint32_t sum_mask_generic(const float *row, const float *add, float worst) {
    uint32_t mask = 0;
    for (int t = 0; t < KNN_SCAN; t++) mask |= (uint32_t)(row[t] + add[t] <= worst) << t;
    return mask;
}

static inline BMFM_KNN_AVX2 uint32_t sum_mask_avx2(const float *row, const float *add, float worst) {
    __m256 w = _mm256_set1_ps(worst);
    uint32_t mask = 0;
    for (int t = 0; t < KNN_SCAN; t += 8)
        mask |= (uint32_t)_mm256_movemask_ps(
                    _mm256_cmp_ps(_mm256_add_ps(_mm256_loadu_ps(row + t), _mm256_loadu_ps(add + t)), w, _CMP_LE_OQ))
                << t;
    return mask;
}

static inline BMFM_KNN_AVX512 uint32_t sum_mask_avx512(const float *row, const float *add, float worst) {
    __m512 w = _mm512_set1_ps(worst);
    __m512 a = _mm512_add_ps(_mm512_loadu_ps(row), _mm512_loadu_ps(add));
    __m512 b = _mm512_add_ps(_mm512_loadu_ps(row + 16), _mm512_loadu_ps(add + 16));
    return (uint32_t)_mm512_cmp_ps_mask(a, w, _CMP_LE_OQ) | (uint32_t)_mm512_cmp_ps_mask(b, w, _CMP_LE_OQ) << 16;
}

/* bmfm_knn_select_row: one vector compare per 32 columns of the sums
 * against the kk-th best so far; only passing columns are inserted (each
 * rechecked: the bound tightens as the list fills). Same list as a plain
 * scan in column order. */
static inline __attribute__((always_inline)) int select_impl(const float *row, const float *add, int64_t n,
                                                             int64_t col0, int kk, int have, int32_t *idx,
                                                             float *best, const int isa) {
    for (int64_t j0 = 0; j0 < n; j0 += KNN_SCAN) {
        uint32_t mask;
        if (j0 + KNN_SCAN > n) mask = (uint32_t)(((uint64_t)1 << (n - j0)) - 1);
        else if (have < kk) mask = 0xffffffffu;
        else {
            float worst = best[kk - 1];
            mask = isa == 2   ? sum_mask_avx512(row + j0, add + j0, worst)
                   : isa == 1 ? sum_mask_avx2(row + j0, add + j0, worst)
                              : sum_mask_generic(row + j0, add + j0, worst);
        }
        while (mask) {
            int64_t j = j0 + __builtin_ctz(mask);
            mask &= mask - 1;
            float v = row[j] + add[j];
            if (have == kk && !(v < best[kk - 1])) continue;
            int p = have < kk ? have++ : kk - 1;
            while (p > 0 && best[p - 1] > v) {
                best[p] = best[p - 1];
                idx[p] = idx[p - 1];
                p--;
            }
            best[p] = v;
            idx[p] = (int32_t)(col0 + j);
        }
    }
    return have;
}

static BMFM_KNN_AVX512 int select_avx512(const float *row, const float *add, int64_t n, int64_t col0, int kk,
                                         int have, int32_t *idx, float *best) {
    return select_impl(row, add, n, col0, kk, have, idx, best, 2);
}

static BMFM_KNN_AVX2 int select_avx2(const float *row, const float *add, int64_t n, int64_t col0, int kk, int have,
                                     int32_t *idx, float *best) {
    return select_impl(row, add, n, col0, kk, have, idx, best, 1);
}

static int select_generic(const float *row, const float *add, int64_t n, int64_t col0, int kk, int have,
                          int32_t *idx, float *best) {
    return select_impl(row, add, n, col0, kk, have, idx, best, 0);
}

int bmfm_knn_select_row(const float *row, const float *add, int64_t n, int64_t col0, int kk, int have,
                        int32_t *idx, float *best) {
    if (kk < 1) return 0;
    switch (bmfm_cpu_isa()) {
    case BMFM_ISA_AVX512: return select_avx512(row, add, n, col0, kk, have, idx, best);
    case BMFM_ISA_AVX2: return select_avx2(row, add, n, col0, kk, have, idx, best);
    default: return select_generic(row, add, n, col0, kk, have, idx, best);
    }
}

/* Rows r0..r0+KNN_ROW_BLOCK: screen all columns, then re-rank in double.
 * Each row collects keys that beat its current m-th best into a buffer of
 * KNN_BUF_FACTOR * m; a full buffer is cut back to its m smallest, which
 * sets the new bound. */
static void knn_row_block(const float *X, const float *xc, const float *sq, int64_t n, int64_t d, int k, int m,
                          int64_t r0, int64_t cb_max, float *gbuf, uint64_t *keys, cand *cands, int *ccnt,
                          float *bound, screen_fn screen, bmfm_knn *out) {
    int64_t rb = n - r0 < KNN_ROW_BLOCK ? n - r0 : KNN_ROW_BLOCK;
    int cap = KNN_BUF_FACTOR * m;
    for (int64_t r = 0; r < rb; r++) ccnt[r] = 0, bound[r] = INFINITY;
    for (int64_t c0 = 0; c0 < n && m > 0; c0 += cb_max) {
        int64_t cb = n - c0 < cb_max ? n - c0 : cb_max;
        if (bmfm_gemm_invariant(gbuf, xc + r0 * d, xc + c0 * d, NULL, rb, cb, d, 1, 0))
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)cb, (int)d, 1.0f, xc + r0 * d, (int)d,
                        xc + c0 * d, (int)d, 0.0f, gbuf, (int)cb);
        for (int64_t r = 0; r < rb; r++) {
            screen_row s = {keys + r * cap, ccnt[r], cap, m, bound[r]};
            screen(gbuf + r * cb, sq + c0, sq[r0 + r], cb, c0, r0 + r, &s);
            ccnt[r] = s.cnt;
            bound[r] = s.worst;
        }
    }
    for (int64_t r = 0; r < rb; r++) {
        int64_t i = r0 + r;
        uint64_t *kr = keys + r * cap;
        cand *c = cands + r * m;
        int cnt = ccnt[r];
        if (cnt > m) {
            keep_smallest(kr, cnt, m);
            cnt = m;
        }
        sort_keys(kr, cnt);
        for (int t = 0; t < cnt; t++) c[t].j = (int32_t)(uint32_t)kr[t];
        rerank_distances(X, d, X + i * d, c, cnt);
        sort_cands(c, cnt);
        int32_t *oi = out->idx + i * k;
        float *od = out->dist + i * k;
        oi[0] = (int32_t)i;
        od[0] = 0.0f;
        for (int t = 1; t < k; t++) {
            oi[t] = c[t - 1].j;
            od[t] = (float)sqrt(c[t - 1].d > 0 ? c[t - 1].d : 0.0);
        }
    }
}


void bmfm_knn_free(bmfm_knn *g) {
    if (!g) return;
    free(g->idx);
    free(g->dist);
    memset(g, 0, sizeof *g);
}

bmfm_status bmfm_knn_build(const float *X, int64_t n, int64_t d, int k, bmfm_knn *out) {
    bmfm_status st = BMFM_OK;
    float *xc = NULL, *sq = NULL;
    memset(out, 0, sizeof *out);
    if (n < 1 || d < 1 || k < 1)
        return bmfm_error_set(BMFM_E_INPUT, "knn: need n >= 1, d >= 1, k >= 1 (got n=%lld d=%lld k=%d)",
                              (long long)n, (long long)d, k);
    if (n > INT32_MAX) return bmfm_error_set(BMFM_E_UNSUPPORTED, "knn: %lld cells exceed int32 indices", (long long)n);
    if (k > n) k = (int)n;
    int m = k - 1 + KNN_MARGIN; /* candidates besides self */
    if (m > n - 1) m = (int)(n - 1);

    out->n = n;
    out->k = k;
    out->idx = bmfm_malloc((size_t)n * k * sizeof *out->idx);
    out->dist = bmfm_malloc((size_t)n * k * sizeof *out->dist);
    xc = bmfm_malloc((size_t)n * d * sizeof *xc);
    sq = bmfm_malloc((size_t)n * sizeof *sq);
    int64_t cb_max = n < KNN_COL_BLOCK ? n : KNN_COL_BLOCK;
    if (!out->idx || !out->dist || !xc || !sq) {
        st = BMFM_E_NOMEM;
        goto done;
    }

    /* Centre (distances are translation invariant) to shrink the norms. */
    {
        double *mu = bmfm_calloc((size_t)d, sizeof *mu);
        if (!mu) {
            st = BMFM_E_NOMEM;
            goto done;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t c = 0; c < d; c++) mu[c] += X[i * d + c];
        for (int64_t c = 0; c < d; c++) mu[c] /= (double)n;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t c = 0; c < d; c++) {
                float v = (float)((double)X[i * d + c] - mu[c]);
                xc[i * d + c] = v;
                s += (double)v * v;
            }
            sq[i] = (float)s;
        }
        free(mu);
    }

    /* One parallel region over row blocks, each thread with its own buffers
     * and single-threaded sgemm: alternating OpenBLAS's thread pool with
     * OpenMP regions block by block made both runtimes spin against each
     * other (10x slower on a loaded 2-core machine). Rows are independent,
     * so the result does not depend on the schedule. */
    bmfm_blas_threads_begin();
    screen_fn screen = screen_for_cpu();
    int64_t nblk = (n + KNN_ROW_BLOCK - 1) / KNN_ROW_BLOCK;
    int failed = 0;
#pragma omp parallel
    {
        float *gbuf = malloc((size_t)KNN_ROW_BLOCK * cb_max * sizeof *gbuf);
        cand *cands = malloc((size_t)KNN_ROW_BLOCK * (m > 0 ? m : 1) * sizeof *cands);
        uint64_t *keys = malloc((size_t)KNN_ROW_BLOCK * KNN_BUF_FACTOR * (m > 0 ? m : 1) * sizeof *keys);
        int *ccnt = malloc((size_t)KNN_ROW_BLOCK * sizeof *ccnt);
        float *bound = malloc((size_t)KNN_ROW_BLOCK * sizeof *bound);
        if (!gbuf || !cands || !keys || !ccnt || !bound) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < nblk; blk++)
            if (gbuf && cands && keys && ccnt && bound)
                knn_row_block(X, xc, sq, n, d, k, m, blk * KNN_ROW_BLOCK, cb_max, gbuf, keys, cands, ccnt, bound,
                              screen, out);
        free(gbuf);
        free(cands);
        free(keys);
        free(ccnt);
        free(bound);
    }
    bmfm_blas_threads_end();
    if (failed) st = bmfm_error_set(BMFM_E_NOMEM, "knn: out of memory for %d-thread buffers", omp_get_max_threads());

done:
    free(xc);
    free(sq);
    if (st != BMFM_OK) bmfm_knn_free(out);
    return st;
}

void bmfm_center_f64(const float *X, int64_t n, int64_t d, double *out) {
    for (int64_t c = 0; c < d; c++) {
        double mu = 0;
        for (int64_t i = 0; i < n; i++) mu += X[i * d + c];
        mu /= (double)n;
        for (int64_t i = 0; i < n; i++) out[i * d + c] = (double)X[i * d + c] - mu;
    }
}

bmfm_status bmfm_knn_subset(const bmfm_knn *g, int k, bmfm_knn *out) {
    memset(out, 0, sizeof *out);
    if (k > g->k) k = g->k;
    if (k < 1) return bmfm_error_set(BMFM_E_INPUT, "knn_subset: k=%d must be >= 1", k);
    out->n = g->n;
    out->k = k;
    out->idx = bmfm_malloc((size_t)g->n * k * sizeof *out->idx);
    out->dist = bmfm_malloc((size_t)g->n * k * sizeof *out->dist);
    if (!out->idx || !out->dist) {
        bmfm_knn_free(out);
        return BMFM_E_NOMEM;
    }
    for (int64_t i = 0; i < g->n; i++) {
        memcpy(out->idx + i * k, g->idx + i * g->k, (size_t)k * sizeof *out->idx);
        memcpy(out->dist + i * k, g->dist + i * g->k, (size_t)k * sizeof *out->dist);
    }
    return BMFM_OK;
}
