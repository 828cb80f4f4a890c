/* kbet.c - kBET per label (see kbet.h).
 *
 * The incomplete gamma is the classic series / continued-fraction pair
 * (Numerical Recipes 6.2, Lentz's method); no libgsl dependency for one
 * function.
 */
#include "eval/kbet.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "eval/graph_metrics.h"
#include "eval/knn.h"

double bmfm_gammaq(double a, double x) {
    if (x <= 0) return 1.0;
    double gln = lgamma(a);
    if (x < a + 1) { /* series for P */
        double ap = a, sum = 1.0 / a, del = sum;
        for (int it = 0; it < 1000; it++) {
            ap += 1;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-16) break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - gln);
    }
    double b = x + 1 - a, c = 1.0 / DBL_MIN, dd = 1.0 / b, h = dd;
    for (int i = 1; i < 1000; i++) {
        double an = -i * (i - a);
        b += 2;
        dd = an * dd + b;
        if (fabs(dd) < DBL_MIN) dd = DBL_MIN;
        c = b + an / c;
        if (fabs(c) < DBL_MIN) c = DBL_MIN;
        dd = 1.0 / dd;
        double del = dd * c;
        h *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return exp(-x + a * log(x) - gln) * h;
}

double bmfm_chi2_sf(double x, double dof) { return bmfm_gammaq(dof / 2.0, x / 2.0); }

typedef struct kbet_cand {
    double d;
    int64_t j;
} kbet_cand;

static int kbet_cand_cmp(const void *a, const void *b) {
    const kbet_cand *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}

/* Neighbourhood batch counts of cell sel[s]: itself and its kk - 1 nearest
 * among sel[0..m) by (distance, index), by brute force (cand: m entries). */
static void count_brute(const float *X, int64_t d, const int64_t *sel, int64_t m, int64_t s, int kk,
                        const int32_t *batches, kbet_cand *cand, int64_t *obs) {
    const float *xi = X + sel[s] * d;
    int64_t c = 0;
    for (int64_t t = 0; t < m; t++)
        if (t != s) cand[c++] = (kbet_cand){bmfm_knn_sqdist(xi, X + sel[t] * d, d), sel[t]};
    qsort(cand, (size_t)c, sizeof *cand, kbet_cand_cmp);
    obs[batches[sel[s]]]++;
    for (int t = 0; t < kk - 1 && t < c; t++) obs[batches[cand[t].j]]++;
}

/* 1 when the neighbourhood batch counts o pass the chi2 test. */
static int kbet_accept(const int64_t *o, const int64_t *cnt, int64_t n_batches, int64_t nb, int64_t m, int kk,
                       double alpha) {
    double chi2 = 0;
    for (int64_t b = 0; b < n_batches; b++) {
        if (!cnt[b]) continue;
        double e = (double)cnt[b] / (double)m * kk;
        chi2 += (o[b] - e) * (o[b] - e) / e;
    }
    return bmfm_chi2_sf(chi2, (double)(nb - 1)) >= alpha;
}

/* Acceptance rate of the cells sel[0..m) (all of one label). Each cell's
 * neighbourhood (itself and its k0 nearest kept cells) comes from its row of
 * g when the row holds k0 + 1 kept cells, else by brute force when few cells
 * miss, else from a kNN graph of the kept cells (cost ~ m^2 as m brute
 * forces). in_sel: n bytes, 0 on entry and on return. */
static bmfm_status kbet_cells(const float *X, int64_t d, const bmfm_knn *gall, const int64_t *sel, int64_t m,
                              const int32_t *batches, int64_t n_batches, int k0, double alpha, uint8_t *in_sel,
                              double *acc) {
    bmfm_status st = BMFM_OK;
    int kk = k0 + 1 < m ? k0 + 1 : (int)m;
    int64_t *cnt = bmfm_calloc((size_t)n_batches + 1, sizeof *cnt);
    int64_t *obs = bmfm_calloc((size_t)n_batches + 1, sizeof *obs);
    int64_t *miss = bmfm_malloc((size_t)m * sizeof *miss);
    float *xs = NULL;
    kbet_cand *cand = NULL;
    bmfm_knn g = {0};
    if (!cnt || !obs || !miss) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t s = 0; s < m; s++) cnt[batches[sel[s]]]++;
    int64_t nb = 0;
    for (int64_t b = 0; b < n_batches; b++) nb += cnt[b] > 0;
    if (nb < 2) { /* scib-metrics: kbet() raises, the label scores 0 */
        *acc = 0;
        goto done;
    }
    int64_t nmiss = 0, accepted = 0;
    for (int64_t s = 0; s < m; s++) in_sel[sel[s]] = 1;
    for (int64_t s = 0; s < m; s++) {
        int got = 0;
        memset(obs, 0, (size_t)n_batches * sizeof *obs);
        if (gall) {
            const int32_t *row = gall->idx + sel[s] * gall->k;
            for (int j = 0; j < gall->k && got < kk; j++)
                if (in_sel[row[j]]) {
                    obs[batches[row[j]]]++;
                    got++;
                }
        }
        if (got < kk) miss[nmiss++] = s;
        else accepted += kbet_accept(obs, cnt, n_batches, nb, m, kk, alpha);
    }
    for (int64_t s = 0; s < m; s++) in_sel[sel[s]] = 0;
    if (nmiss && nmiss * 4 < m) {
        if (!(cand = bmfm_malloc((size_t)m * sizeof *cand))) {
            st = BMFM_E_NOMEM;
            goto done;
        }
        for (int64_t t = 0; t < nmiss; t++) {
            memset(obs, 0, (size_t)n_batches * sizeof *obs);
            count_brute(X, d, sel, m, miss[t], kk, batches, cand, obs);
            accepted += kbet_accept(obs, cnt, n_batches, nb, m, kk, alpha);
        }
    } else if (nmiss) {
        if (!(xs = bmfm_malloc((size_t)m * d * sizeof *xs))) {
            st = BMFM_E_NOMEM;
            goto done;
        }
        for (int64_t s = 0; s < m; s++) memcpy(xs + s * d, X + sel[s] * d, (size_t)d * sizeof *xs);
        if ((st = bmfm_knn_build(xs, m, d, kk, &g))) goto done;
        for (int64_t t = 0; t < nmiss; t++) {
            int64_t s = miss[t];
            memset(obs, 0, (size_t)n_batches * sizeof *obs);
            for (int j = 0; j < g.k; j++) obs[batches[sel[g.idx[s * g.k + j]]]]++;
            accepted += kbet_accept(obs, cnt, n_batches, nb, m, kk, alpha);
        }
    }
    *acc = (double)accepted / (double)m;
done:
    free(xs);
    free(cnt);
    free(obs);
    free(miss);
    free(cand);
    bmfm_knn_free(&g);
    return st;
}

bmfm_status bmfm_kbet(const float *X, int64_t n, int64_t d, const bmfm_wgraph *w, const bmfm_knn *g,
                      const int32_t *labels, int64_t n_labels, const int32_t *batches, int64_t n_batches,
                      double alpha, double *score, int *n_scored) {
    bmfm_status st = BMFM_OK;
    uint8_t *mask = bmfm_malloc((size_t)n);
    int32_t *comp = bmfm_malloc((size_t)n * sizeof *comp);
    int64_t *csize = bmfm_malloc((size_t)n * sizeof *csize);
    int64_t *sel = bmfm_malloc((size_t)n * sizeof *sel);
    int64_t *bcnt = bmfm_calloc((size_t)n_batches + 1, sizeof *bcnt);
    uint8_t *in_sel = bmfm_calloc((size_t)n, 1);
    *score = NAN;
    *n_scored = 0;
    if (g && g->n != n) {
        st = bmfm_error_set(BMFM_E_INPUT, "kbet: kNN graph has %lld rows for %lld cells", (long long)g->n,
                            (long long)n);
        goto done;
    }
    if (!mask || !comp || !csize || !sel || !bcnt || !in_sel) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    double tot = 0;
    for (int64_t l = 0; l < n_labels; l++) {
        int64_t m = 0, nc = 0;
        memset(bcnt, 0, (size_t)n_batches * sizeof *bcnt);
        for (int64_t i = 0; i < n; i++) {
            mask[i] = labels[i] == l;
            if (mask[i]) {
                m++;
                bcnt[batches[i]]++;
            }
        }
        int64_t nb = 0;
        for (int64_t b = 0; b < n_batches; b++) nb += bcnt[b] > 0;
        if (m < 10 || nb < 2) continue;
        int64_t quarter = (int64_t)floor((double)m / (double)nb / 4.0);
        int k0 = (int)(quarter < 10 ? 10 : quarter > 70 ? 70 : quarter);
        if ((st = bmfm_graph_components(w, mask, comp, &nc))) goto done;
        double acc = 0;
        int64_t ms = 0;
        if (nc == 1) {
            for (int64_t i = 0; i < n; i++)
                if (mask[i]) sel[ms++] = i;
        } else {
            memset(csize, 0, (size_t)nc * sizeof *csize);
            for (int64_t i = 0; i < n; i++)
                if (comp[i] >= 0) csize[comp[i]]++;
            for (int64_t i = 0; i < n; i++)
                if (comp[i] >= 0 && csize[comp[i]] >= 3 * (int64_t)k0) sel[ms++] = i;
            if ((double)ms / (double)m < 0.75) ms = 0; /* too fragmented: acceptance 0 */
        }
        if (ms > 0) {
            if ((st = kbet_cells(X, d, g, sel, ms, batches, n_batches, k0, alpha, in_sel, &acc))) goto done;
        }
        tot += acc;
        (*n_scored)++;
    }
    if (*n_scored) *score = tot / *n_scored;
done:
    free(mask);
    free(comp);
    free(csize);
    free(sel);
    free(bcnt);
    free(in_sel);
    return st;
}
