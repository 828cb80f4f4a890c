/* silhouette.c - blocked dgemm silhouettes (see silhouette.h).
 *
 * Per row block we form the distances to all cells with dgemm on centred
 * double data and accumulate per-cluster distance sums in the fixed column
 * order, so results do not depend on threads. O(n^2 d) time, O(block * n)
 * extra memory.
 */
#include "eval/silhouette.h"
#include "base/blas_threads.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "eval/knn.h"

#define SIL_ROW_BLOCK 128
#define SIL_COL_BLOCK 2048

/* Silhouettes of rows r0..r0+SIL_ROW_BLOCK from per-cluster distance sums.
 * Compiled for AVX-512, AVX2 and the baseline, picked at load time: the
 * square roots are most of the time outside dgemm. 2 * g is exact, so a
 * fused multiply-add gives the same d2, and sqrt is correctly rounded: the
 * three versions give the same bits. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sil_row_block(const double *xd, const double *sq, int64_t n, int64_t d, const int32_t *lab, int64_t n_lab,
                          const int64_t *cnt, int64_t r0, int64_t cbm, double *g, double *sums, double *s) {
    int64_t rb = n - r0 < SIL_ROW_BLOCK ? n - r0 : SIL_ROW_BLOCK;
    memset(sums, 0, (size_t)rb * n_lab * sizeof *sums);
    for (int64_t c0 = 0; c0 < n; c0 += cbm) {
        int64_t cb = n - c0 < cbm ? n - c0 : cbm;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)cb, (int)d, 1.0, xd + r0 * d, (int)d,
                    xd + c0 * d, (int)d, 0.0, g, (int)cb);
        for (int64_t r = 0; r < rb; r++) {
            int64_t i = r0 + r;
            double *sr = sums + r * n_lab, *gr = g + r * cb, si = sq[i];
            const double *sqc = sq + c0;
#pragma omp simd
            for (int64_t jj = 0; jj < cb; jj++) {
                double d2 = si + sqc[jj] - 2.0 * gr[jj];
                gr[jj] = d2 > 0 ? sqrt(d2) : 0.0;
            }
            if (i >= c0 && i < c0 + cb) gr[i - c0] = 0.0; /* self, whatever the rounding */
            const int32_t *lc = lab + c0;
            for (int64_t jj = 0; jj < cb; jj++) sr[lc[jj]] += gr[jj];
        }
    }
    for (int64_t r = 0; r < rb; r++) {
        int64_t i = r0 + r;
        const double *sr = sums + r * n_lab;
        int32_t li = lab[i];
        if (cnt[li] <= 1) {
            s[i] = 0; /* sklearn: 0/0 -> nan_to_num -> 0 */
            continue;
        }
        double a = sr[li] / (double)(cnt[li] - 1), b = INFINITY;
        for (int64_t l = 0; l < n_lab; l++)
            if (l != li && cnt[l] > 0 && sr[l] / (double)cnt[l] < b) b = sr[l] / (double)cnt[l];
        double m = a > b ? a : b;
        s[i] = m > 0 ? (b - a) / m : 0.0;
    }
}

bmfm_status bmfm_silhouette_samples(const float *X, int64_t n, int64_t d, const int32_t *lab, int64_t n_lab,
                                    double *s) {
    bmfm_status st = BMFM_OK;
    double *xd = NULL, *sq = NULL;
    int64_t *cnt = NULL;
    cnt = bmfm_calloc((size_t)n_lab + 1, sizeof *cnt);
    if (!cnt) return BMFM_E_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        if (lab[i] < 0 || lab[i] >= n_lab) {
            free(cnt);
            return bmfm_error_set(BMFM_E_INPUT, "silhouette: cluster code %d at cell %lld outside 0..%lld", lab[i],
                                  (long long)i, (long long)n_lab - 1);
        }
        cnt[lab[i]]++;
    }
    int64_t nonempty = 0;
    for (int64_t l = 0; l < n_lab; l++) nonempty += cnt[l] > 0;
    if (nonempty < 2) {
        free(cnt);
        return bmfm_error_set(BMFM_E_INPUT, "silhouette: needs at least 2 non-empty clusters, got %lld",
                              (long long)nonempty);
    }
    int64_t cbm = n < SIL_COL_BLOCK ? n : SIL_COL_BLOCK;
    xd = bmfm_malloc((size_t)n * d * sizeof *xd);
    sq = bmfm_malloc((size_t)n * sizeof *sq);
    if (!xd || !sq) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    bmfm_center_f64(X, n, d, xd);
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        for (int64_t c = 0; c < d; c++) v += xd[i * d + c] * xd[i * d + c];
        sq[i] = v;
    }
    /* one parallel region, per-thread buffers, single-threaded dgemm (see knn.c) */
    bmfm_blas_threads_begin();
    int64_t nblk = (n + SIL_ROW_BLOCK - 1) / SIL_ROW_BLOCK;
    int failed = 0;
#pragma omp parallel
    {
        double *g = malloc((size_t)SIL_ROW_BLOCK * cbm * sizeof *g);
        double *sums = malloc((size_t)SIL_ROW_BLOCK * n_lab * sizeof *sums);
        if (!g || !sums) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < nblk; blk++)
            if (g && sums) sil_row_block(xd, sq, n, d, lab, n_lab, cnt, blk * SIL_ROW_BLOCK, cbm, g, sums, s);
        free(g);
        free(sums);
    }
    bmfm_blas_threads_end();
    if (failed) st = bmfm_error_set(BMFM_E_NOMEM, "silhouette: out of memory for thread buffers");
done:
    free(cnt);
    free(xd);
    free(sq);
    return st;
}

double bmfm_asw_label_from_samples(const double *s, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += s[i];
    return (m / (double)n + 1.0) / 2.0;
}

bmfm_status bmfm_asw_batch(const float *X, int64_t n, int64_t d, const int32_t *labels, int64_t n_labels,
                           const int32_t *batches, int64_t n_batches, double *asw) {
    bmfm_status st = BMFM_OK;
    float *xs = NULL;
    int32_t *bs = NULL;
    double *ss = NULL;
    int64_t *bcnt = NULL;
    *asw = NAN;
    xs = bmfm_malloc((size_t)n * d * sizeof *xs);
    bs = bmfm_malloc((size_t)n * sizeof *bs);
    ss = bmfm_malloc((size_t)n * sizeof *ss);
    bcnt = bmfm_calloc((size_t)n_batches + 1, sizeof *bcnt);
    if (!xs || !bs || !ss || !bcnt) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    double total = 0;
    int64_t used = 0;
    for (int64_t l = 0; l < n_labels; l++) {
        int64_t m = 0;
        memset(bcnt, 0, (size_t)n_batches * sizeof *bcnt);
        for (int64_t i = 0; i < n; i++) {
            if (labels[i] != l) continue;
            memcpy(xs + m * d, X + i * d, (size_t)d * sizeof *xs);
            bs[m++] = batches[i];
            bcnt[batches[i]]++;
        }
        int64_t nb = 0;
        for (int64_t b = 0; b < n_batches; b++) nb += bcnt[b] > 0;
        if (m == 0 || nb <= 1 || nb == m) continue;
        if ((st = bmfm_silhouette_samples(xs, m, d, bs, n_batches, ss))) goto done;
        double mean = 0;
        for (int64_t i = 0; i < m; i++) mean += 1.0 - fabs(ss[i]);
        total += mean / (double)m;
        used++;
    }
    if (used) *asw = total / (double)used;
done:
    free(xs);
    free(bs);
    free(ss);
    free(bcnt);
    return st;
}

bmfm_status bmfm_isolated_asw(const double *s, int64_t n, const int32_t *labels, int64_t n_labels,
                              const int32_t *batches, int64_t n_batches, double *score, int *n_isolated) {
    uint8_t *seen = bmfm_calloc((size_t)n_labels * n_batches + 1, 1);
    int64_t *nb = bmfm_calloc((size_t)n_labels + 1, sizeof *nb);
    double *sum = bmfm_calloc((size_t)n_labels + 1, sizeof *sum);
    int64_t *cnt = bmfm_calloc((size_t)n_labels + 1, sizeof *cnt);
    *score = NAN;
    *n_isolated = 0;
    if (!seen || !nb || !sum || !cnt) {
        free(seen), free(nb), free(sum), free(cnt);
        return BMFM_E_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        uint8_t *p = seen + (int64_t)labels[i] * n_batches + batches[i];
        if (!*p) nb[labels[i]]++;
        *p = 1;
        sum[labels[i]] += (s[i] + 1.0) / 2.0;
        cnt[labels[i]]++;
    }
    int64_t thr = INT64_MAX, nbatch_total = 0;
    for (int64_t l = 0; l < n_labels; l++)
        if (cnt[l] > 0 && nb[l] < thr) thr = nb[l];
    {
        uint8_t *bseen = bmfm_calloc((size_t)n_batches + 1, 1);
        if (!bseen) {
            free(seen), free(nb), free(sum), free(cnt);
            return BMFM_E_NOMEM;
        }
        for (int64_t i = 0; i < n; i++) bseen[batches[i]] = 1;
        for (int64_t b = 0; b < n_batches; b++) nbatch_total += bseen[b];
        free(bseen);
    }
    if (thr < nbatch_total) { /* scib: a label in every batch is not isolated */
        double tot = 0;
        int k = 0;
        for (int64_t l = 0; l < n_labels; l++)
            if (cnt[l] > 0 && nb[l] <= thr) {
                tot += sum[l] / (double)cnt[l];
                k++;
            }
        *score = tot / k;
        *n_isolated = k;
    }
    free(seen), free(nb), free(sum), free(cnt);
    return BMFM_OK;
}
