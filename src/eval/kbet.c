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

/* Acceptance rate of the cells sel[0..m) (all of one label). */
static bmfm_status kbet_cells(const float *X, int64_t d, const int64_t *sel, int64_t m, const int32_t *batches,
                              int64_t n_batches, int k0, double alpha, double *acc) {
    bmfm_status st = BMFM_OK;
    float *xs = bmfm_malloc((size_t)m * d * sizeof *xs);
    int64_t *cnt = bmfm_calloc((size_t)n_batches + 1, sizeof *cnt);
    int64_t *obs = bmfm_calloc((size_t)n_batches + 1, sizeof *obs);
    bmfm_knn g = {0};
    if (!xs || !cnt || !obs) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t s = 0; s < m; s++) {
        memcpy(xs + s * d, X + sel[s] * d, (size_t)d * sizeof *xs);
        cnt[batches[sel[s]]]++;
    }
    int64_t nb = 0;
    for (int64_t b = 0; b < n_batches; b++) nb += cnt[b] > 0;
    if (nb < 2) { /* scib-metrics: kbet() raises, the label scores 0 */
        *acc = 0;
        goto done;
    }
    if ((st = bmfm_knn_build(xs, m, d, k0 + 1, &g))) goto done;
    int64_t accepted = 0;
    for (int64_t s = 0; s < m; s++) {
        memset(obs, 0, (size_t)n_batches * sizeof *obs);
        for (int j = 0; j < g.k; j++) obs[batches[sel[g.idx[s * g.k + j]]]]++;
        double chi2 = 0;
        for (int64_t b = 0; b < n_batches; b++) {
            if (!cnt[b]) continue;
            double e = (double)cnt[b] / (double)m * g.k;
            chi2 += (obs[b] - e) * (obs[b] - e) / e;
        }
        accepted += bmfm_chi2_sf(chi2, (double)(nb - 1)) >= alpha;
    }
    *acc = (double)accepted / (double)m;
done:
    free(xs);
    free(cnt);
    free(obs);
    bmfm_knn_free(&g);
    return st;
}

bmfm_status bmfm_kbet(const float *X, int64_t n, int64_t d, const bmfm_wgraph *w, const int32_t *labels,
                      int64_t n_labels, const int32_t *batches, int64_t n_batches, double alpha, double *score,
                      int *n_scored) {
    bmfm_status st = BMFM_OK;
    uint8_t *mask = bmfm_malloc((size_t)n);
    int32_t *comp = bmfm_malloc((size_t)n * sizeof *comp);
    int64_t *csize = bmfm_malloc((size_t)n * sizeof *csize);
    int64_t *sel = bmfm_malloc((size_t)n * sizeof *sel);
    int64_t *bcnt = bmfm_calloc((size_t)n_batches + 1, sizeof *bcnt);
    *score = NAN;
    *n_scored = 0;
    if (!mask || !comp || !csize || !sel || !bcnt) {
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
            if ((st = kbet_cells(X, d, sel, ms, batches, n_batches, k0, alpha, &acc))) goto done;
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
    return st;
}
