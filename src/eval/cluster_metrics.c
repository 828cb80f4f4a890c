/* cluster_metrics.c - contingency-table NMI / ARI (sklearn formulas). */
#include "eval/cluster_metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "base/alloc.h"

typedef struct contingency {
    int64_t n_cells, na, nb, nnz;
    int64_t *ra, *rb; /* row sums (a classes) and column sums (b classes), compacted */
    int64_t *cnt;     /* non-zero cell counts n_ij */
    int64_t *ia, *ib; /* their compact row / column */
} contingency;

static void cont_free(contingency *c) {
    free(c->ra);
    free(c->rb);
    free(c->cnt);
    free(c->ia);
    free(c->ib);
}

static int i64_cmp(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Compact both labelings to 0..na-1 / 0..nb-1 and count the pairs. */
static bmfm_status cont_build(const int32_t *a, const int32_t *b, int64_t n, contingency *c) {
    bmfm_status st = BMFM_OK;
    int32_t maxa = -1, maxb = -1;
    int64_t *mapa = NULL, *mapb = NULL, *keys = NULL;
    *c = (contingency){0};
    c->n_cells = n;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] < 0 || b[i] < 0)
            return bmfm_error_set(BMFM_E_INPUT, "cluster metrics: negative label code at cell %lld", (long long)i);
        if (a[i] > maxa) maxa = a[i];
        if (b[i] > maxb) maxb = b[i];
    }
    mapa = bmfm_malloc(((size_t)maxa + 2) * sizeof *mapa);
    mapb = bmfm_malloc(((size_t)maxb + 2) * sizeof *mapb);
    keys = bmfm_malloc(((size_t)n + 1) * sizeof *keys);
    if (!mapa || !mapb || !keys) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int32_t v = 0; v <= maxa; v++) mapa[v] = -1;
    for (int32_t v = 0; v <= maxb; v++) mapb[v] = -1;
    for (int64_t i = 0; i < n; i++) {
        if (mapa[a[i]] < 0) mapa[a[i]] = c->na++;
        if (mapb[b[i]] < 0) mapb[b[i]] = c->nb++;
    }
    c->ra = bmfm_calloc((size_t)c->na + 1, sizeof *c->ra);
    c->rb = bmfm_calloc((size_t)c->nb + 1, sizeof *c->rb);
    if (!c->ra || !c->rb) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t x = mapa[a[i]], y = mapb[b[i]];
        c->ra[x]++;
        c->rb[y]++;
        keys[i] = x * c->nb + y;
    }
    /* keys ascending: counted in a dense na x nb table when it is not much
     * larger than n (clusterings against labels: a few hundred cells of
     * table; a qsort per call was most of the Leiden scan's NMI time), else
     * sorted */
    int64_t cells = c->na * c->nb;
    int64_t *table = cells <= 4 * n + 1024 ? bmfm_calloc((size_t)cells, sizeof *table) : NULL;
    if (table) {
        for (int64_t i = 0; i < n; i++) table[keys[i]]++;
        int64_t i = 0;
        for (int64_t key = 0; key < cells; key++)
            for (int64_t r = 0; r < table[key]; r++) keys[i++] = key;
        free(table);
    } else {
        qsort(keys, (size_t)n, sizeof *keys, i64_cmp);
    }
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; i++) nnz += (i == 0 || keys[i] != keys[i - 1]);
    c->cnt = bmfm_malloc(((size_t)nnz + 1) * sizeof *c->cnt);
    c->ia = bmfm_malloc(((size_t)nnz + 1) * sizeof *c->ia);
    c->ib = bmfm_malloc(((size_t)nnz + 1) * sizeof *c->ib);
    if (!c->cnt || !c->ia || !c->ib) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < n;) {
        int64_t j = i;
        while (j < n && keys[j] == keys[i]) j++;
        c->ia[c->nnz] = keys[i] / c->nb;
        c->ib[c->nnz] = keys[i] % c->nb;
        c->cnt[c->nnz++] = j - i;
        i = j;
    }
done:
    free(mapa);
    free(mapb);
    free(keys);
    if (st != BMFM_OK) cont_free(c);
    return st;
}

static double entropy_counts(const int64_t *cnt, int64_t m, int64_t n) {
    /* sklearn entropy(): -sum(p * (log(pi) - log(pi_sum))) */
    double h = 0, ln = log((double)n);
    for (int64_t i = 0; i < m; i++)
        if (cnt[i] > 0) h -= ((double)cnt[i] / n) * (log((double)cnt[i]) - ln);
    return h;
}

bmfm_status bmfm_nmi(const int32_t *a, const int32_t *b, int64_t n, double *nmi) {
    contingency c;
    bmfm_status st = cont_build(a, b, n, &c);
    if (st) return st;
    if ((c.na == 1 && c.nb == 1) || n == 0) {
        *nmi = 1.0;
        goto done;
    }
    double mi = 0;
    if (c.na > 1 && c.nb > 1) {
        double ln_n = log((double)n);
        for (int64_t t = 0; t < c.nnz; t++) {
            double nm = (double)c.cnt[t] / n;
            double outer = (double)c.ra[c.ia[t]] * (double)c.rb[c.ib[t]];
            double v = nm * (log((double)c.cnt[t]) - ln_n) + nm * (-log(outer) + 2 * ln_n);
            if (fabs(v) < DBL_EPSILON) v = 0; /* as sklearn's mutual_info_score */
            mi += v;
        }
        if (mi < 0) mi = 0;
    }
    if (mi == 0) {
        *nmi = 0.0;
        goto done;
    }
    double ha = entropy_counts(c.ra, c.na, n), hb = entropy_counts(c.rb, c.nb, n);
    double norm = (ha + hb) / 2;
    if (norm < DBL_EPSILON) norm = DBL_EPSILON; /* sklearn: max(normalizer, eps) */
    *nmi = mi / norm;
done:
    cont_free(&c);
    return BMFM_OK;
}

bmfm_status bmfm_ari(const int32_t *a, const int32_t *b, int64_t n, double *ari) {
    contingency c;
    bmfm_status st = cont_build(a, b, n, &c);
    if (st) return st;
    /* sklearn pair_confusion_matrix; products can pass 2^63, so long double. */
    long double sumsq = 0, c01 = 0, c10 = 0, nn = (long double)n;
    for (int64_t t = 0; t < c.nnz; t++) {
        long double v = (long double)c.cnt[t];
        sumsq += v * v;
        c01 += v * (long double)c.rb[c.ib[t]];
        c10 += v * (long double)c.ra[c.ia[t]];
    }
    long double tp = sumsq - nn, fp = c01 - sumsq, fn = c10 - sumsq;
    long double tn = nn * nn - fp - fn - sumsq;
    if (fn == 0 && fp == 0) *ari = 1.0;
    else *ari = (double)(2.0L * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)));
    cont_free(&c);
    return BMFM_OK;
}
