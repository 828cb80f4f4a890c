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

void bmfm_connectivity_sigmas(const bmfm_knn *g, double *sigma, double *rho) {
    int k = g->k;
    double target = log2((double)k); /* umap: log2(k) * bandwidth */
    double mean_all = 0;
    for (int64_t i = 0; i < g->n * k; i++) mean_all += g->dist[i];
    mean_all /= (double)(g->n * k);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < g->n; i++) {
        const float *di = g->dist + i * k;
        /* local_connectivity = 1: rho = first non-zero distance (index 0 of the non-zeros) */
        float r = 0; /* umap keeps rho and the differences in float32 */
        for (int j = 0; j < k; j++)
            if (di[j] > 0) {
                r = di[j];
                break;
            }
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
        }
        double mean_i = 0;
        for (int j = 0; j < k; j++) mean_i += di[j];
        mean_i /= k;
        if (r > 0) {
            if (mid < MIN_K_DIST_SCALE * mean_i) mid = MIN_K_DIST_SCALE * mean_i;
        } else {
            if (mid < MIN_K_DIST_SCALE * mean_all) mid = MIN_K_DIST_SCALE * mean_all;
        }
        sigma[i] = mid;
        rho[i] = r;
    }
}

typedef struct entry {
    int32_t r, c;
    double v;
} entry;

/* Sort e[0..ne) by (row, column), both in [0, n): a stable counting sort by
 * column into tmp, then by row back into e. Linear, where qsort with a
 * comparator call per step was a third of this function's time. cnt: n + 1. */
static void sort_entries(entry *e, entry *tmp, int64_t ne, int64_t n, int64_t *cnt) {
    memset(cnt, 0, (size_t)(n + 1) * sizeof *cnt);
    for (int64_t t = 0; t < ne; t++) cnt[e[t].c + 1]++;
    for (int64_t i = 0; i < n; i++) cnt[i + 1] += cnt[i];
    for (int64_t t = 0; t < ne; t++) tmp[cnt[e[t].c]++] = e[t];
    memset(cnt, 0, (size_t)(n + 1) * sizeof *cnt);
    for (int64_t t = 0; t < ne; t++) cnt[tmp[t].r + 1]++;
    for (int64_t i = 0; i < n; i++) cnt[i + 1] += cnt[i];
    for (int64_t t = 0; t < ne; t++) e[cnt[tmp[t].r]++] = tmp[t];
}

bmfm_status bmfm_connectivity_umap(const bmfm_knn *g, bmfm_wgraph *out) {
    bmfm_status st = BMFM_OK;
    int64_t n = g->n;
    int k = g->k;
    double *sigma = NULL, *rho = NULL;
    entry *e = NULL, *tmp = NULL;
    int64_t *cnt = NULL;
    memset(out, 0, sizeof *out);
    sigma = bmfm_malloc((size_t)n * sizeof *sigma);
    rho = bmfm_malloc((size_t)n * sizeof *rho);
    e = bmfm_malloc((size_t)n * k * 2 * sizeof *e);
    tmp = bmfm_malloc((size_t)n * k * 2 * sizeof *tmp);
    cnt = bmfm_malloc(((size_t)n + 1) * sizeof *cnt);
    out->indptr = bmfm_calloc((size_t)n + 1, sizeof *out->indptr);
    if (!sigma || !rho || !e || !tmp || !cnt || !out->indptr) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    out->n = n;
    bmfm_connectivity_sigmas(g, sigma, rho);
    /* A (directed memberships) and its transpose as one entry list. */
    int64_t ne = 0;
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < k; j++) {
            int32_t c = g->idx[i * k + j];
            if (c < 0 || c == i) continue;
            float dd = g->dist[i * k + j] - (float)rho[i];
            double w = (dd <= 0 || sigma[i] == 0) ? 1.0 : exp(-((double)dd / sigma[i]));
            if (w == 0) continue;
            e[ne++] = (entry){(int32_t)i, c, w};
            e[ne++] = (entry){c, (int32_t)i, w};
        }
    }
    sort_entries(e, tmp, ne, n, cnt);
    /* Each (r, c) occurs at most twice: once from A, once from A^T. */
    int64_t nnz = 0;
    for (int64_t t = 0; t < ne;) {
        double v = e[t].v;
        int64_t u = t + 1;
        if (u < ne && e[u].r == e[t].r && e[u].c == e[t].c) {
            v = v + e[u].v - v * e[u].v;
            u++;
        }
        if (v != 0) e[nnz++] = (entry){e[t].r, e[t].c, v};
        t = u;
    }
    out->nnz = nnz;
    out->indices = bmfm_malloc((size_t)(nnz ? nnz : 1) * sizeof *out->indices);
    out->data = bmfm_malloc((size_t)(nnz ? nnz : 1) * sizeof *out->data);
    if (!out->indices || !out->data) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t t = 0; t < nnz; t++) {
        out->indptr[e[t].r + 1]++;
        out->indices[t] = e[t].c;
        out->data[t] = e[t].v;
    }
    for (int64_t i = 0; i < n; i++) out->indptr[i + 1] += out->indptr[i];
done:
    free(sigma);
    free(rho);
    free(e);
    free(tmp);
    free(cnt);
    if (st != BMFM_OK) bmfm_wgraph_free(out);
    return st;
}
