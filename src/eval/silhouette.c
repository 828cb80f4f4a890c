/* silhouette.c - silhouettes from one pass over the cell pairs (see
 * silhouette.h).
 *
 * Every pair i < j is visited once: row blocks of cells against the columns
 * at and after the block, distances by dgemm on centred double data. Each
 * distance goes to two sums, i's for j's cluster and j's for i's cluster, and
 * for pairs of the same label also to the per-batch sums of the batch
 * silhouette, so the label and the batch ASW cost one half pass instead of a
 * full pass and a second one per label. The sums are fixed point (int64,
 * ~1e-15 of the largest distance per term): integer adds give the same sums
 * in any order, so the many threads adding into one cell's sums (atomically,
 * per tile) give the same bits whatever the thread count. O(n^2 d / 2) time,
 * O(n (labels + batches)) memory.
 */
#include "eval/silhouette.h"
#include "base/blas_threads.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "eval/knn.h"
#include "nn/gemm.h"

#define SIL_ROW_BLOCK 256
#define SIL_COL_BLOCK 1024

typedef struct sil_pass {
    const double *xd, *sq; /* centred data, squared norms */
    int64_t n, d;
    const int32_t *lab, *bat; /* bat NULL: no batch sums */
    int64_t L, B;
    double scale; /* fixed point: distance * scale, rounded */
    int64_t *lsum; /* n x L: distance sums to each label's cells */
    int64_t *bsum; /* n x B: to each batch's cells of the same label */
} sil_pass;

static void add_atomic(int64_t *dst, int64_t *src, int64_t cnt) {
    for (int64_t t = 0; t < cnt; t++)
        if (src[t]) {
            __atomic_fetch_add(dst + t, src[t], __ATOMIC_RELAXED);
            src[t] = 0;
        }
}

/* Rows r0..r0+rb against columns c0..c0+cb (pairs j > i only): the row
 * side sums into racc (rb x L, rb x B), the column side into cacc (cb x L,
 * cb x B), flushed to the shared sums after the tile. Compiled for AVX-512,
 * AVX2 and the baseline (the square roots are vector loops); 2 g is exact,
 * so a fused multiply-add gives the same d2, and sqrt is correctly rounded:
 * the three versions give the same bits. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void sil_tile(
    const sil_pass *P, int64_t r0, int64_t rb, int64_t c0, int64_t cb, double *g, int64_t *racc_l,
    int64_t *racc_b, int64_t *cacc_l, int64_t *cacc_b) {
    int64_t d = P->d, L = P->L, B = P->B;
    const int32_t *lab = P->lab, *bat = P->bat;
    double scale = P->scale;
    if (bmfm_gemm_f64_nt(g, cb, P->xd + r0 * d, d, P->xd + c0 * d, d, rb, cb, d))
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)cb, (int)d, 1.0, P->xd + r0 * d, (int)d,
                    P->xd + c0 * d, (int)d, 0.0, g, (int)cb);
    for (int64_t r = 0; r < rb; r++) {
        int64_t i = r0 + r, j0 = c0 > i ? 0 : i + 1 - c0;
        if (j0 >= cb) continue;
        double *gr = g + r * cb, si = P->sq[i];
        const double *sqc = P->sq + c0;
#pragma omp simd
        for (int64_t jj = j0; jj < cb; jj++) {
            double d2 = si + sqc[jj] - 2.0 * gr[jj];
            gr[jj] = (d2 > 0 ? sqrt(d2) : 0.0) * scale + 0.5;
        }
        int32_t li = lab[i];
        int64_t *rl = racc_l + r * L;
        const int32_t *lc = lab + c0;
        if (!bat) {
            for (int64_t jj = j0; jj < cb; jj++) {
                int64_t q = (int64_t)gr[jj];
                rl[lc[jj]] += q;
                cacc_l[jj * L + li] += q;
            }
        } else {
            int32_t bi = bat[i];
            int64_t *rbt = racc_b + r * B;
            const int32_t *bc = bat + c0;
            for (int64_t jj = j0; jj < cb; jj++) {
                int64_t q = (int64_t)gr[jj];
                rl[lc[jj]] += q;
                cacc_l[jj * L + li] += q;
                if (lc[jj] == li) {
                    rbt[bc[jj]] += q;
                    cacc_b[jj * B + bi] += q;
                }
            }
        }
    }
    add_atomic(P->lsum + c0 * L, cacc_l, cb * L);
    if (bat) add_atomic(P->bsum + c0 * B, cacc_b, cb * B);
}

/* sklearn's s = (b - a) / max(a, b) from one cell's sums over clusters:
 * a over its own cluster (count - 1 others), b the smallest mean over the
 * other non-empty clusters; 0 for a singleton cluster. */
static double sil_from_sums(const int64_t *sum, const int64_t *cnt, int64_t nc, int32_t own, double scale) {
    if (cnt[own] <= 1) return 0.0; /* sklearn: 0/0 -> nan_to_num -> 0 */
    double a = (double)sum[own] / scale / (double)(cnt[own] - 1), b = INFINITY;
    for (int64_t c = 0; c < nc; c++)
        if (c != own && cnt[c] > 0) {
            double v = (double)sum[c] / scale / (double)cnt[c];
            if (v < b) b = v;
        }
    double m = a > b ? a : b;
    return m > 0 ? (b - a) / m : 0.0;
}

static bmfm_status check_codes(const int32_t *c, int64_t n, int64_t nc, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (c[i] < 0 || c[i] >= nc)
            return bmfm_error_set(BMFM_E_INPUT, "silhouette: %s code %d at cell %lld outside 0..%lld", what, c[i],
                                  (long long)i, (long long)nc - 1);
    return BMFM_OK;
}

/* The pair pass: fills P->lsum (and P->bsum) for X's n cells. */
static bmfm_status sil_run_pass(const float *X, sil_pass *P) {
    int64_t n = P->n, d = P->d, L = P->L, B = P->bat ? P->B : 0;
    bmfm_status st = BMFM_OK;
    double *xd = bmfm_malloc((size_t)n * d * sizeof *xd);
    double *sq = bmfm_malloc((size_t)n * sizeof *sq);
    P->lsum = bmfm_calloc((size_t)n * L, sizeof *P->lsum);
    P->bsum = B ? bmfm_calloc((size_t)n * B, sizeof *P->bsum) : NULL;
    if (!xd || !sq || !P->lsum || (B && !P->bsum)) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    bmfm_center_f64(X, n, d, xd);
    double sqmax = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = 0;
        for (int64_t c = 0; c < d; c++) v += xd[i * d + c] * xd[i * d + c];
        sq[i] = v;
        if (v > sqmax) sqmax = v;
    }
    /* no distance exceeds twice the largest norm; n of them fit in 2^62
     * (all points equal: every distance is 0, any scale will do) */
    double dmax = 2.0 * sqrt(sqmax) * (1 + 1e-9);
    P->scale = 1.0;
    if (dmax > 0) {
        P->scale = ldexp(1.0, 62) / ((double)n * dmax);
        if (P->scale > ldexp(1.0, 52) / dmax) P->scale = ldexp(1.0, 52) / dmax;
        if (!isfinite(P->scale)) P->scale = 1.0; /* dmax below ~1e-290 */
    }
    P->xd = xd;
    P->sq = sq;
    /* one parallel region, per-thread buffers, single-threaded dgemm (see knn.c) */
    bmfm_blas_threads_begin();
    int64_t nblk = (n + SIL_ROW_BLOCK - 1) / SIL_ROW_BLOCK;
    int failed = 0;
#pragma omp parallel
    {
        double *g = malloc((size_t)SIL_ROW_BLOCK * SIL_COL_BLOCK * sizeof *g);
        int64_t *racc_l = calloc((size_t)SIL_ROW_BLOCK * L, sizeof *racc_l);
        int64_t *cacc_l = calloc((size_t)SIL_COL_BLOCK * L, sizeof *cacc_l);
        int64_t *racc_b = calloc((size_t)SIL_ROW_BLOCK * (B ? B : 1), sizeof *racc_b);
        int64_t *cacc_b = calloc((size_t)SIL_COL_BLOCK * (B ? B : 1), sizeof *cacc_b);
        int ok = g && racc_l && cacc_l && racc_b && cacc_b;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        /* the first blocks have the most columns: dynamic, in order */
#pragma omp for schedule(dynamic, 1)
        for (int64_t blk = 0; blk < nblk; blk++) {
            if (!ok) continue;
            int64_t r0 = blk * SIL_ROW_BLOCK, rb = n - r0 < SIL_ROW_BLOCK ? n - r0 : SIL_ROW_BLOCK;
            for (int64_t c0 = r0; c0 < n; c0 += SIL_COL_BLOCK) {
                int64_t cb = n - c0 < SIL_COL_BLOCK ? n - c0 : SIL_COL_BLOCK;
                sil_tile(P, r0, rb, c0, cb, g, racc_l, racc_b, cacc_l, cacc_b);
            }
            add_atomic(P->lsum + r0 * L, racc_l, rb * L);
            if (B) add_atomic(P->bsum + r0 * B, racc_b, rb * B);
        }
        free(g);
        free(racc_l);
        free(cacc_l);
        free(racc_b);
        free(cacc_b);
    }
    bmfm_blas_threads_end();
    if (failed) st = bmfm_error_set(BMFM_E_NOMEM, "silhouette: out of memory for thread buffers");
done:
    free(xd);
    free(sq);
    P->xd = P->sq = NULL;
    return st;
}

bmfm_status bmfm_silhouette_label_batch(const float *X, int64_t n, int64_t d, const int32_t *labels,
                                        int64_t n_labels, const int32_t *batches, int64_t n_batches, double *s,
                                        double *asw_batch) {
    bmfm_status st = BMFM_OK;
    sil_pass P = {NULL, NULL, n, d, labels, batches, n_labels, n_batches, 0, NULL, NULL};
    int64_t *cnt = NULL, *bcnt = NULL;
    if (asw_batch) *asw_batch = NAN;
    if (n < 1 || d < 1 || n_labels < 1 || (batches && n_batches < 1))
        return bmfm_error_set(BMFM_E_INPUT, "silhouette: empty input (n=%lld d=%lld)", (long long)n, (long long)d);
    if ((st = check_codes(labels, n, n_labels, "cluster"))) return st;
    if (batches && (st = check_codes(batches, n, n_batches, "batch"))) return st;
    cnt = bmfm_calloc((size_t)n_labels, sizeof *cnt);
    bcnt = batches ? bmfm_calloc((size_t)n_labels * n_batches, sizeof *bcnt) : NULL;
    if (!cnt || (batches && !bcnt)) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        cnt[labels[i]]++;
        if (batches) bcnt[(int64_t)labels[i] * n_batches + batches[i]]++;
    }
    if (s) {
        int64_t nonempty = 0;
        for (int64_t l = 0; l < n_labels; l++) nonempty += cnt[l] > 0;
        if (nonempty < 2) {
            st = bmfm_error_set(BMFM_E_INPUT, "silhouette: needs at least 2 non-empty clusters, got %lld",
                                (long long)nonempty);
            goto done;
        }
    }
    if ((st = sil_run_pass(X, &P))) goto done;
    if (s)
        for (int64_t i = 0; i < n; i++) s[i] = sil_from_sums(P.lsum + i * n_labels, cnt, n_labels, labels[i], P.scale);
    if (batches && asw_batch) {
        /* scib silhouette_batch: per label with >= 2 batches (and fewer
         * batches than cells), mean of 1 - |s| over its cells, batches as
         * clusters; then the mean over labels */
        double total = 0, *mean = bmfm_calloc((size_t)n_labels, sizeof *mean);
        int64_t used = 0;
        if (!mean) {
            st = BMFM_E_NOMEM;
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            const int64_t *bc = bcnt + (int64_t)labels[i] * n_batches;
            double si = sil_from_sums(P.bsum + i * n_batches, bc, n_batches, batches[i], P.scale);
            mean[labels[i]] += 1.0 - fabs(si);
        }
        for (int64_t l = 0; l < n_labels; l++) {
            int64_t nb = 0;
            for (int64_t b = 0; b < n_batches; b++) nb += bcnt[l * n_batches + b] > 0;
            if (cnt[l] == 0 || nb <= 1 || nb == cnt[l]) continue;
            total += mean[l] / (double)cnt[l];
            used++;
        }
        free(mean);
        if (used) *asw_batch = total / (double)used;
    }
done:
    free(cnt);
    free(bcnt);
    free(P.lsum);
    free(P.bsum);
    return st;
}

bmfm_status bmfm_silhouette_samples(const float *X, int64_t n, int64_t d, const int32_t *lab, int64_t n_lab,
                                    double *s) {
    return bmfm_silhouette_label_batch(X, n, d, lab, n_lab, NULL, 0, s, NULL);
}

double bmfm_asw_label_from_samples(const double *s, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += s[i];
    return (m / (double)n + 1.0) / 2.0;
}

bmfm_status bmfm_asw_batch(const float *X, int64_t n, int64_t d, const int32_t *labels, int64_t n_labels,
                           const int32_t *batches, int64_t n_batches, double *asw) {
    return bmfm_silhouette_label_batch(X, n, d, labels, n_labels, batches, n_batches, NULL, asw);
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
