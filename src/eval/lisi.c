/* lisi.c - Simpson-index LISI on a Euclidean kNN graph (see lisi.h). */
#include "eval/lisi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

/* glibc's vector exp (libmvec, <= 4 ulp; math.h declares it only under
 * -ffast-math): the exps of the calibration run 8 (AVX-512) or 4 (AVX2) at
 * a time, the sums stay sequential. */
#pragma omp declare simd notinbranch
extern double exp(double);

__attribute__((target_clones("avx512f", "avx2", "default"))) static double hbeta(const float *D, int m, double beta,
                                                                                 double *P) {
    double sumP = 0, dp = 0;
#pragma omp simd
    for (int j = 0; j < m; j++) P[j] = exp(-(double)D[j] * beta);
    for (int j = 0; j < m; j++) sumP += P[j];
    if (sumP == 0) {
        for (int j = 0; j < m; j++) P[j] = 0;
        return 0;
    }
    for (int j = 0; j < m; j++) dp += (double)D[j] * P[j];
    for (int j = 0; j < m; j++) P[j] /= sumP;
    return log(sumP) + beta * dp / sumP;
}

/* Per-cell LISI of ncat category vectors at once: the perplexity calibration
 * depends on the distances only, so cLISI and iLISI share it (half the exp
 * calls); each vector's numbers are those of a separate call. */
static bmfm_status lisi_per_cell_multi(const bmfm_knn *g, int ncat, const int32_t *const *cat, const int64_t *n_cat,
                                       double perplexity, double *const *lisi) {
    int k = g->k, m = k - 1;
    if (m < 1) return bmfm_error_set(BMFM_E_INPUT, "lisi: kNN graph has no neighbours besides self");
    double logU = log(perplexity);
    int64_t max_cat = 0;
    for (int c = 0; c < ncat; c++) max_cat = n_cat[c] > max_cat ? n_cat[c] : max_cat;
    bmfm_status st = BMFM_OK;
#pragma omp parallel
    {
        double *P = malloc((size_t)m * sizeof *P);
        double *bin = malloc((size_t)(max_cat ? max_cat : 1) * sizeof *bin);
        if (!P || !bin) {
#pragma omp atomic write
            st = BMFM_E_NOMEM;
        }
#pragma omp for schedule(dynamic, 64)
        for (int64_t i = 0; i < g->n; i++) {
            if (!P || !bin) continue;
            const float *D = g->dist + i * k + 1;
            const int32_t *I = g->idx + i * k + 1;
            double beta = 1, betamin = -INFINITY, betamax = INFINITY;
            double H = hbeta(D, m, beta, P);
            double Hdiff = H - logU;
            for (int t = 0; t < 50 && fabs(Hdiff) >= 1e-5; t++) {
                if (Hdiff > 0) {
                    betamin = beta;
                    beta = isinf(betamax) ? beta * 2 : (beta + betamax) / 2;
                } else {
                    betamax = beta;
                    beta = isinf(betamin) ? beta / 2 : (beta + betamin) / 2;
                }
                H = hbeta(D, m, beta, P);
                Hdiff = H - logU;
            }
            for (int c = 0; c < ncat; c++) {
                if (H == 0) {
                    lisi[c][i] = -1; /* Harmony: simpson = -1 */
                    continue;
                }
                memset(bin, 0, (size_t)n_cat[c] * sizeof *bin);
                for (int j = 0; j < m; j++) bin[cat[c][I[j]]] += P[j];
                double simpson = 0;
                for (int64_t q = 0; q < n_cat[c]; q++) simpson += bin[q] * bin[q];
                lisi[c][i] = 1.0 / simpson;
            }
        }
        free(P);
        free(bin);
    }
    return st ? bmfm_error_set(st, "lisi: out of memory") : BMFM_OK;
}

bmfm_status bmfm_lisi_per_cell(const bmfm_knn *g, const int32_t *cat, int64_t n_cat, double perplexity,
                               double *lisi) {
    return lisi_per_cell_multi(g, 1, &cat, &n_cat, perplexity, &lisi);
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of per-cell LISI l[0..n) (sorted in place), scaled. */
static double lisi_scaled_median(double *l, int64_t n, int64_t n_cat, int is_batch) {
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(l[i])) l[m++] = l[i];
    qsort(l, (size_t)m, sizeof *l, dbl_cmp);
    double med = m == 0 ? NAN : (m % 2 ? l[m / 2] : 0.5 * (l[m / 2 - 1] + l[m / 2]));
    return is_batch ? (med - 1.0) / (double)(n_cat - 1) : ((double)n_cat - med) / (double)(n_cat - 1);
}

bmfm_status bmfm_lisi_scores(const bmfm_knn *g, const int32_t *labels, int64_t n_labels, const int32_t *batches,
                             int64_t n_batches, double *clisi, double *ilisi) {
    const int32_t *cat[2];
    int64_t ncat[2];
    double *l[2] = {NULL, NULL}, *out[2];
    int is_batch[2], nc = 0;
    bmfm_status st = BMFM_OK;
    if (clisi) *clisi = NAN;
    if (ilisi) *ilisi = NAN;
    if (clisi && labels && n_labels >= 2) cat[nc] = labels, ncat[nc] = n_labels, out[nc] = clisi, is_batch[nc++] = 0;
    if (ilisi && batches && n_batches >= 2) cat[nc] = batches, ncat[nc] = n_batches, out[nc] = ilisi, is_batch[nc++] = 1;
    if (!nc) return BMFM_OK;
    for (int c = 0; c < nc; c++)
        if (!(l[c] = bmfm_malloc((size_t)g->n * sizeof *l[c]))) st = BMFM_E_NOMEM;
    if (!st) st = lisi_per_cell_multi(g, nc, cat, ncat, floor(g->k / 3.0), l);
    for (int c = 0; c < nc && !st; c++) *out[c] = lisi_scaled_median(l[c], g->n, ncat[c], is_batch[c]);
    free(l[0]);
    free(l[1]);
    return st;
}

bmfm_status bmfm_lisi_score(const bmfm_knn *g, const int32_t *cat, int64_t n_cat, int is_batch, double *score) {
    return is_batch ? bmfm_lisi_scores(g, NULL, 0, cat, n_cat, NULL, score)
                    : bmfm_lisi_scores(g, cat, n_cat, NULL, 0, score, NULL);
}
