/* lisi.c - Simpson-index LISI on a Euclidean kNN graph (see lisi.h). */
#include "eval/lisi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static double hbeta(const float *D, int m, double beta, double *P) {
    double sumP = 0, dp = 0;
    for (int j = 0; j < m; j++) {
        P[j] = exp(-(double)D[j] * beta);
        sumP += P[j];
    }
    if (sumP == 0) {
        for (int j = 0; j < m; j++) P[j] = 0;
        return 0;
    }
    for (int j = 0; j < m; j++) dp += (double)D[j] * P[j];
    for (int j = 0; j < m; j++) P[j] /= sumP;
    return log(sumP) + beta * dp / sumP;
}

bmfm_status bmfm_lisi_per_cell(const bmfm_knn *g, const int32_t *cat, int64_t n_cat, double perplexity,
                               double *lisi) {
    int k = g->k, m = k - 1;
    if (m < 1) return bmfm_error_set(BMFM_E_INPUT, "lisi: kNN graph has no neighbours besides self");
    double logU = log(perplexity);
    bmfm_status st = BMFM_OK;
#pragma omp parallel
    {
        double *P = malloc((size_t)m * sizeof *P);
        double *bin = malloc((size_t)n_cat * sizeof *bin);
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
            if (H == 0) {
                lisi[i] = -1; /* Harmony: simpson = -1 */
                continue;
            }
            memset(bin, 0, (size_t)n_cat * sizeof *bin);
            for (int j = 0; j < m; j++) bin[cat[I[j]]] += P[j];
            double simpson = 0;
            for (int64_t c = 0; c < n_cat; c++) simpson += bin[c] * bin[c];
            lisi[i] = 1.0 / simpson;
        }
        free(P);
        free(bin);
    }
    return st ? bmfm_error_set(st, "lisi: out of memory") : BMFM_OK;
}

static int dbl_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bmfm_status bmfm_lisi_score(const bmfm_knn *g, const int32_t *cat, int64_t n_cat, int is_batch, double *score) {
    *score = NAN;
    if (n_cat < 2) return BMFM_OK;
    double *l = bmfm_malloc((size_t)g->n * sizeof *l);
    if (!l) return BMFM_E_NOMEM;
    double perplexity = floor(g->k / 3.0);
    bmfm_status st = bmfm_lisi_per_cell(g, cat, n_cat, perplexity, l);
    if (!st) {
        int64_t m = 0;
        for (int64_t i = 0; i < g->n; i++)
            if (!isnan(l[i])) l[m++] = l[i];
        qsort(l, (size_t)m, sizeof *l, dbl_cmp);
        double med = m == 0 ? NAN : (m % 2 ? l[m / 2] : 0.5 * (l[m / 2 - 1] + l[m / 2]));
        *score = is_batch ? (med - 1.0) / (double)(n_cat - 1) : ((double)n_cat - med) / (double)(n_cat - 1);
    }
    free(l);
    return st;
}
