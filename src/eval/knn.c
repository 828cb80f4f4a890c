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
#include "base/blas_threads.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define KNN_MARGIN 8
#define KNN_ROW_BLOCK 256
#define KNN_COL_BLOCK 2048
#define KNN_SCAN 32 /* columns checked at once against the k-th best */

typedef struct cand {
    double d;
    int32_t j;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->d < y->d) return -1;
    if (x->d > y->d) return 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* (d, j) is worse than (e, k): larger distance, or equal distance and larger index. */
static inline int cand_worse(const cand *a, const cand *b) { return a->d > b->d || (a->d == b->d && a->j > b->j); }

/* Bounded max-heap of the m best candidates (worst at c[0]). */
static inline void cand_push(cand *c, int *cnt, int m, double d, int32_t j) {
    cand x = {d, j};
    int n = *cnt, p;
    if (n < m) {
        p = n++;
        while (p > 0) {
            int up = (p - 1) / 2;
            if (!cand_worse(&x, &c[up])) break;
            c[p] = c[up];
            p = up;
        }
        c[p] = x;
        *cnt = n;
        return;
    }
    if (!cand_worse(&c[0], &x)) return;
    p = 0; /* replace the root and sift down */
    for (;;) {
        int l = 2 * p + 1, r = l + 1, w = p;
        const cand *wc = &x;
        if (l < n && cand_worse(&c[l], wc)) w = l, wc = &c[l];
        if (r < n && cand_worse(&c[r], wc)) w = r, wc = &c[r];
        if (w == p) break;
        c[p] = c[w];
        p = w;
    }
    c[p] = x;
}

/* Rows r0..r0+KNN_ROW_BLOCK: screen all columns, then re-rank in double. */
static void knn_row_block(const float *X, const float *xc, const float *sq, int64_t n, int64_t d, int k, int m,
                          int64_t r0, int64_t cb_max, float *gbuf, cand *cands, int *ccnt, bmfm_knn *out) {
    int64_t rb = n - r0 < KNN_ROW_BLOCK ? n - r0 : KNN_ROW_BLOCK;
    for (int64_t r = 0; r < rb; r++) ccnt[r] = 0;
    for (int64_t c0 = 0; c0 < n && m > 0; c0 += cb_max) {
        int64_t cb = n - c0 < cb_max ? n - c0 : cb_max;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)cb, (int)d, 1.0f, xc + r0 * d, (int)d,
                    xc + c0 * d, (int)d, 0.0f, gbuf, (int)cb);
        for (int64_t r = 0; r < rb; r++) {
            int64_t i = r0 + r;
            float *g = gbuf + r * cb;
            cand *c = cands + r * m;
            int cnt = ccnt[r];
            float si = sq[i];
            const float *sqc = sq + c0;
            /* two passes: a vectorisable distance pass, then a scan that
             * skips 32 columns at a time when none beats the current k-th */
#pragma omp simd
            for (int64_t jj = 0; jj < cb; jj++) g[jj] = si + sqc[jj] - 2.0f * g[jj];
            float worst = cnt == m ? (float)c[0].d : INFINITY;
            for (int64_t j0 = 0; j0 < cb; j0 += KNN_SCAN) {
                int64_t je = j0 + KNN_SCAN < cb ? j0 + KNN_SCAN : cb;
                int any = 0;
#pragma omp simd reduction(| : any)
                for (int64_t jj = j0; jj < je; jj++) any |= g[jj] <= worst;
                if (!any) continue;
                for (int64_t jj = j0; jj < je; jj++) {
                    if (g[jj] > worst || c0 + jj == i) continue;
                    cand_push(c, &cnt, m, g[jj], (int32_t)(c0 + jj));
                    if (cnt == m) worst = (float)c[0].d;
                }
            }
            ccnt[r] = cnt;
        }
    }
    for (int64_t r = 0; r < rb; r++) {
        int64_t i = r0 + r;
        cand *c = cands + r * m;
        int cnt = ccnt[r];
        const float *xi = X + i * d;
        for (int t = 0; t < cnt; t++) {
            const float *xj = X + (int64_t)c[t].j * d;
            double s = 0;
            for (int64_t q = 0; q < d; q++) {
                double diff = (double)xi[q] - (double)xj[q];
                s += diff * diff;
            }
            c[t].d = s;
        }
        qsort(c, (size_t)cnt, sizeof *c, cand_cmp);
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
    int blas_threads = bmfm_blas_threads_begin();
    int64_t nblk = (n + KNN_ROW_BLOCK - 1) / KNN_ROW_BLOCK;
    int failed = 0;
#pragma omp parallel
    {
        float *gbuf = malloc((size_t)KNN_ROW_BLOCK * cb_max * sizeof *gbuf);
        cand *cands = malloc((size_t)KNN_ROW_BLOCK * (m > 0 ? m : 1) * sizeof *cands);
        int *ccnt = malloc((size_t)KNN_ROW_BLOCK * sizeof *ccnt);
        if (!gbuf || !cands || !ccnt) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < nblk; blk++)
            if (gbuf && cands && ccnt) knn_row_block(X, xc, sq, n, d, k, m, blk * KNN_ROW_BLOCK, cb_max, gbuf, cands, ccnt, out);
        free(gbuf);
        free(cands);
        free(ccnt);
    }
    bmfm_blas_threads_end(blas_threads);
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
