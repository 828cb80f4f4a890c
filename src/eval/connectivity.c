/* connectivity.c - UMAP fuzzy simplicial set (see connectivity.h).
 *
 * Arithmetic follows umap's numba code: the distances are float32, the
 * bisection accumulates in double; we keep sigma, rho and weights in double.
 */
#include "eval/connectivity.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define SMOOTH_K_TOLERANCE 1e-5
#define MIN_K_DIST_SCALE 1e-3
#define SMOOTH_N_ITER 64

void bmfm_wgraph_free(bmfm_wgraph *m) {
    if (!m) return;
    free(m->indptr);
    free(m->indices);
    free(m->data);
    memset(m, 0, sizeof *m);
}

/* glibc's vector exp (libmvec, <= 4 ulp; math.h declares it only under
 * -ffast-math), so that the bisection's exps run 8 (AVX-512) or 4 (AVX2) at
 * a time: they were most of this file's time, ~30 sweeps of k exps a cell. */
#pragma omp declare simd notinbranch
extern double exp(double);

#define SMOOTH_CHUNK 64

/* sum_{j=1..k-1} (dd > 0 ? exp(-dd / mid) : 1) with dd = di[j] - r in
 * float32, j ascending as umap's loop: per chunk of columns the exps are
 * one vector loop, the sum stays sequential. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static double smooth_psum(const float *di, int k, float r,
                                                                                      double mid) {
    double psum = 0, dd[SMOOTH_CHUNK], t[SMOOTH_CHUNK];
    for (int j0 = 1; j0 < k; j0 += SMOOTH_CHUNK) {
        int m = k - j0 < SMOOTH_CHUNK ? k - j0 : SMOOTH_CHUNK;
        for (int j = 0; j < m; j++) dd[j] = (double)(di[j0 + j] - r);
#pragma omp simd
        for (int j = 0; j < m; j++) t[j] = exp(-(dd[j] / mid));
        for (int j = 0; j < m; j++) psum += dd[j] > 0 ? t[j] : 1.0;
    }
    return psum;
}

/* umap's smooth_knn_dist for one row (its first k distances): rho, and
 * sigma by bisection. With lo_stop > 0 the bisection may stop early: as
 * soon as its lower bracket lo is positive and max_j (d_j - rho) / lo <
 * lo_stop, it returns 0 with sigma unset. The sigma it would have returned
 * is at least lo (the bracket only narrows, and the floor below only raises
 * it), so every exponent -(d_j - rho) / sigma is then above -lo_stop.
 * Otherwise returns 1 with umap's sigma. */
static int row_sigma(const float *di, int k, double target, double mean_all, double lo_stop, double *sigma,
                     float *rho) {
    /* local_connectivity = 1: rho = first non-zero distance (index 0 of the non-zeros) */
    float r = 0; /* umap keeps rho and the differences in float32 */
    for (int j = 0; j < k; j++)
        if (di[j] > 0) {
            r = di[j];
            break;
        }
    *rho = r;
    float dmax = 0;
    for (int j = 1; j < k; j++)
        if (di[j] - r > dmax) dmax = di[j] - r;
    double lo = 0, hi = DBL_MAX, mid = 1.0; /* umap uses np.inf for hi */
    for (int it = 0; it < SMOOTH_N_ITER; it++) {
        double psum = smooth_psum(di, k, r, mid);
        if (fabs(psum - target) < SMOOTH_K_TOLERANCE) break;
        if (psum > target) {
            hi = mid;
            mid = (lo + hi) / 2.0;
        } else {
            lo = mid;
            if (hi == DBL_MAX) mid *= 2;
            else mid = (lo + hi) / 2.0;
        }
        if (lo_stop > 0 && lo > 0 && (double)dmax / lo < lo_stop) return 0;
    }
    double mean_i = 0;
    for (int j = 0; j < k; j++) mean_i += di[j];
    mean_i /= k;
    if (r > 0) {
        if (mid < MIN_K_DIST_SCALE * mean_i) mid = MIN_K_DIST_SCALE * mean_i;
    } else {
        if (mid < MIN_K_DIST_SCALE * mean_all) mid = MIN_K_DIST_SCALE * mean_all;
    }
    *sigma = mid;
    return 1;
}

/* The mean of the first k distances of all rows (umap's floor for sigma
 * where rho is 0). */
static double mean_first(const bmfm_knn *g, int k) {
    double mean_all = 0;
    for (int64_t i = 0; i < g->n; i++)
        for (int j = 0; j < k; j++) mean_all += g->dist[i * g->k + j];
    return mean_all / (double)(g->n * k);
}

/* smooth_knn_dist on the first k columns of g's rows. */
static void sigmas_first(const bmfm_knn *g, int k, double *sigma, double *rho) {
    double target = log2((double)k); /* umap: log2(k) * bandwidth */
    double mean_all = mean_first(g, k);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < g->n; i++) {
        float r;
        row_sigma(g->dist + i * g->k, k, target, mean_all, 0, &sigma[i], &r);
        rho[i] = r;
    }
}

void bmfm_connectivity_sigmas(const bmfm_knn *g, double *sigma, double *rho) { sigmas_first(g, g->k, sigma, rho); }

/* Whether g's entry (i, j) (column j of row i) is an edge (not self, not
 * missing), and the exponent x of its membership weight exp(x): 0 (weight
 * 1) within rho or for sigma 0, else -(d - rho) / sigma. j < the k whose
 * sigma and rho are given. */
static int membership_exponent(const bmfm_knn *g, int64_t i, int j, const double *sigma, const double *rho,
                               double *x) {
    int32_t c = g->idx[i * g->k + j];
    if (c < 0 || c == i) return 0;
    float dd = g->dist[i * g->k + j] - (float)rho[i];
    *x = (dd <= 0 || sigma[i] == 0) ? 0.0 : -((double)dd / sigma[i]);
    return 1;
}

/* Membership weight of g's entry (i, j), 0 for self and missing entries
 * (exp(0) is exactly 1). */
static double membership(const bmfm_knn *g, int64_t i, int j, const double *sigma, const double *rho) {
    double x;
    return membership_exponent(g, i, j, sigma, rho, &x) ? exp(x) : 0.0;
}

bmfm_status bmfm_connectivity_pattern(const bmfm_knn *g, int k, bmfm_wgraph *out) {
    memset(out, 0, sizeof *out);
    if (k < 1 || k > g->k) return bmfm_error_set(BMFM_E_INPUT, "connectivity pattern: k=%d outside 1..%d", k, g->k);
    int64_t n = g->n;
    bmfm_status st = BMFM_OK;
    double *sigma = bmfm_malloc((size_t)(n ? n : 1) * sizeof *sigma);
    double *rho = bmfm_malloc((size_t)(n ? n : 1) * sizeof *rho);
    uint8_t *exact = bmfm_malloc((size_t)(n ? n : 1));
    out->indptr = bmfm_calloc((size_t)n + 1, sizeof *out->indptr);
    out->indices = bmfm_malloc((size_t)(n > 0 ? n * k : 1) * sizeof *out->indices);
    if (!sigma || !rho || !exact || !out->indptr || !out->indices) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    out->n = n;
    /* Only whether a weight exp(x) is non-zero matters, and exp(x) > 0 for
     * x > -700 (it underflows near -745): a row's bisection stops as soon
     * as it shows that all its exponents are above -700 (usually within a
     * few of its ~30 steps); the other rows get umap's sigma and the exact
     * test. */
    double target = log2((double)k), mean_all = mean_first(g, k);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float r;
        exact[i] = (uint8_t)row_sigma(g->dist + i * g->k, k, target, mean_all, 700.0, &sigma[i], &r);
        rho[i] = r;
    }
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < k; j++) {
            int32_t c = g->idx[i * g->k + j];
            double x;
            if (!exact[i] ? c >= 0 && c != i
                          : membership_exponent(g, i, j, sigma, rho, &x) && (x > -700 || exp(x) != 0))
                out->indices[nnz++] = c;
        }
        out->indptr[i + 1] = nnz;
    }
    out->nnz = nnz;
done:
    free(sigma);
    free(rho);
    free(exact);
    if (st != BMFM_OK) bmfm_wgraph_free(out);
    return st;
}

/* W = A + A^T - A o A^T row by row: A^T by a counting sort of A's entries
 * on their column (rows of A^T come out in ascending source row, i.e.
 * sorted), then A with sorted rows as the transpose of A^T, then each row of
 * W merges row i of A and of A^T. Linear in the n k entries, and 12 bytes
 * each for A and A^T (int32 column, double weight), where sorting one list
 * of 2 n k (row, column, weight) entries took 32 bytes each (24 MB at k = 50
 * on pbmc8k, first-touch page faults included). a + b - a b is the same
 * whichever of the two comes first. */
bmfm_status bmfm_connectivity_umap(const bmfm_knn *g, bmfm_wgraph *out) {
    bmfm_status st = BMFM_OK;
    int64_t n = g->n, nk = g->n * (int64_t)g->k;
    int k = g->k;
    double *sigma = NULL, *rho = NULL, *aw = NULL, *tw = NULL;
    int32_t *aidx = NULL, *tidx = NULL;
    int64_t *aptr = NULL, *tptr = NULL, *cur = NULL;
    memset(out, 0, sizeof *out);
    sigma = bmfm_malloc((size_t)n * sizeof *sigma);
    rho = bmfm_malloc((size_t)n * sizeof *rho);
    aw = bmfm_malloc((size_t)(nk ? nk : 1) * sizeof *aw);
    tw = bmfm_malloc((size_t)(nk ? nk : 1) * sizeof *tw);
    aidx = bmfm_malloc((size_t)(nk ? nk : 1) * sizeof *aidx);
    tidx = bmfm_malloc((size_t)(nk ? nk : 1) * sizeof *tidx);
    aptr = bmfm_calloc((size_t)n + 1, sizeof *aptr);
    tptr = bmfm_calloc((size_t)n + 1, sizeof *tptr);
    cur = bmfm_malloc((size_t)(n ? n : 1) * sizeof *cur);
    out->indptr = bmfm_calloc((size_t)n + 1, sizeof *out->indptr);
    if (!sigma || !rho || !aw || !tw || !aidx || !tidx || !aptr || !tptr || !cur || !out->indptr) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    out->n = n;
    bmfm_connectivity_sigmas(g, sigma, rho);
    /* A's weights in kNN order (aw as scratch; 0: no entry), counted per row and column */
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < k; j++) {
            int32_t c = g->idx[i * k + j];
            double w = membership(g, i, j, sigma, rho);
            aw[i * k + j] = w;
            if (w != 0) {
                aptr[i + 1]++;
                tptr[c + 1]++;
            }
        }
    }
    for (int64_t i = 0; i < n; i++) {
        aptr[i + 1] += aptr[i];
        tptr[i + 1] += tptr[i];
    }
    /* A^T: row c holds (i, A_ic) for i ascending */
    memcpy(cur, tptr, (size_t)n * sizeof *cur);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            if (aw[i * k + j] != 0) {
                int64_t p = cur[g->idx[i * k + j]]++;
                tidx[p] = (int32_t)i;
                tw[p] = aw[i * k + j];
            }
    /* A with rows sorted by column: the transpose of A^T, columns ascending */
    memcpy(cur, aptr, (size_t)n * sizeof *cur);
    for (int64_t c = 0; c < n; c++)
        for (int64_t p = tptr[c]; p < tptr[c + 1]; p++) {
            int64_t q = cur[tidx[p]]++;
            aidx[q] = (int32_t)c;
            aw[q] = tw[p];
        }
    /* merge: first the row lengths, then the entries */
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < n; i++) {
            int64_t p = aptr[i], pe = aptr[i + 1], q = tptr[i], qe = tptr[i + 1];
            int64_t o = out->indptr[i], len = 0;
            while (p < pe || q < qe) {
                int32_t c;
                double v;
                if (q >= qe || (p < pe && aidx[p] < tidx[q])) {
                    c = aidx[p], v = aw[p++];
                } else if (p >= pe || tidx[q] < aidx[p]) {
                    c = tidx[q], v = tw[q++];
                } else {
                    double a = aw[p++], b = tw[q++];
                    c = aidx[p - 1], v = a + b - a * b;
                }
                if (v == 0) continue;
                if (pass) {
                    out->indices[o + len] = c;
                    out->data[o + len] = v;
                }
                len++;
            }
            if (!pass) out->indptr[i + 1] = len;
        }
        if (!pass) {
            for (int64_t i = 0; i < n; i++) out->indptr[i + 1] += out->indptr[i];
            out->nnz = out->indptr[n];
            out->indices = bmfm_malloc((size_t)(out->nnz ? out->nnz : 1) * sizeof *out->indices);
            out->data = bmfm_malloc((size_t)(out->nnz ? out->nnz : 1) * sizeof *out->data);
            if (!out->indices || !out->data) {
                st = BMFM_E_NOMEM;
                goto done;
            }
        }
    }
done:
    free(sigma);
    free(rho);
    free(aw);
    free(tw);
    free(aidx);
    free(tidx);
    free(aptr);
    free(tptr);
    free(cur);
    if (st != BMFM_OK) bmfm_wgraph_free(out);
    return st;
}
