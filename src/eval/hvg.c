/* hvg.c - scanpy's seurat and cell_ranger HVG selection (see hvg.h). The
 * binning and the pandas group statistics are reproduced step by step
 * because selection at the cut-off is sensitive to every detail. */
#include "eval/hvg.h"

#include "base/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bmfm_status bmfm_hvg_flavor_parse(const char *s, bmfm_hvg_flavor *out) {
    if (!strcmp(s, "seurat")) *out = BMFM_HVG_SEURAT;
    else if (!strcmp(s, "cell_ranger")) *out = BMFM_HVG_CELL_RANGER;
    else if (!strcmp(s, "seurat_v3")) *out = BMFM_HVG_SEURAT_V3;
    else return bmfm_error_set(BMFM_E_INPUT, "hvg: unknown flavor '%s' (seurat, cell_ranger, seurat_v3)", s);
    return BMFM_OK;
}

const char *bmfm_hvg_flavor_name(bmfm_hvg_flavor f) {
    return f == BMFM_HVG_SEURAT ? "seurat" : f == BMFM_HVG_CELL_RANGER ? "cell_ranger" : "seurat_v3";
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile(a_sorted, q), method "linear" with numpy's _lerp. */
static double percentile_sorted(const double *a, int64_t n, double q) {
    double pos = q / 100.0 * (double)(n - 1);
    int64_t lo = (int64_t)floor(pos), hi = lo + 1 < n ? lo + 1 : n - 1;
    double t = pos - (double)lo, x = a[lo], y = a[hi];
    double v = x + (y - x) * t;
    if (t >= 0.5) v = y - (y - x) * (1 - t);
    return v;
}

/* pd.cut code of x for right-closed edges (searchsorted left, minus 1). */
static int cut_code(const double *edges, int n_edges, double x) {
    int lo = 0, hi = n_edges; /* first i with edges[i] >= x */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (edges[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    int c = lo - 1;
    return c < 0 || c >= n_edges - 1 ? -1 : c;
}

static double median_of(double *v, int64_t n) {
    if (!n) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

bmfm_status bmfm_hvg_select(const double *mean, const double *var, int64_t n_genes, int64_t n_top,
                            bmfm_hvg_flavor flavor, double *disp_norm, uint8_t *selected,
                            int64_t *n_selected) {
    if (flavor == BMFM_HVG_SEURAT_V3)
        return bmfm_error_set(BMFM_E_UNSUPPORTED,
                              "hvg: flavor seurat_v3 (loess on raw counts) is not implemented; use seurat or cell_ranger");
    if (n_genes < 1 || n_top < 1) return bmfm_error_set(BMFM_E_INPUT, "hvg: no genes to select from");
    bmfm_status st = BMFM_OK;
    double *m = bmfm_malloc((size_t)n_genes * sizeof *m), *disp = bmfm_malloc((size_t)n_genes * sizeof *disp);
    double *norm = bmfm_malloc((size_t)n_genes * sizeof *norm), *tmp = bmfm_malloc((size_t)n_genes * sizeof *tmp);
    int *code = bmfm_malloc((size_t)n_genes * sizeof *code);
    double edges[32], bin_a[32], bin_b[32];
    int n_edges;
    if (!m || !disp || !norm || !tmp || !code) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t g = 0; g < n_genes; g++) {
        m[g] = mean[g] == 0 ? 1e-12 : mean[g];
        disp[g] = var[g] / m[g];
        if (flavor == BMFM_HVG_SEURAT) {
            disp[g] = disp[g] == 0 ? NAN : log(disp[g]);
            m[g] = log1p(m[g]);
        }
    }
    if (flavor == BMFM_HVG_SEURAT) {
        const int nb = 20;
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t g = 0; g < n_genes; g++) mn = fmin(mn, m[g]), mx = fmax(mx, m[g]);
        if (mn == mx) { /* pandas widens a zero range by 0.1% on each side */
            mn -= mn != 0 ? 0.001 * fabs(mn) : 0.001;
            mx += mx != 0 ? 0.001 * fabs(mx) : 0.001;
            double step = (mx - mn) / nb;
            for (int i = 0; i < nb; i++) edges[i] = i * step + mn;
            edges[nb] = mx;
        } else {
            double step = (mx - mn) / nb; /* numpy.linspace */
            for (int i = 0; i < nb; i++) edges[i] = i * step + mn;
            edges[nb] = mx;
            edges[0] -= (mx - mn) * 0.001;
        }
        n_edges = nb + 1;
        for (int64_t g = 0; g < n_genes; g++) code[g] = cut_code(edges, n_edges, m[g]);
        /* pandas groupby mean / std(ddof=1), NaN skipped */
        for (int b = 0; b < n_edges - 1; b++) {
            double s = 0;
            int64_t c = 0;
            for (int64_t g = 0; g < n_genes; g++)
                if (code[g] == b && !isnan(disp[g])) s += disp[g], c++;
            double mu = c ? s / c : NAN, ss = 0;
            for (int64_t g = 0; g < n_genes; g++)
                if (code[g] == b && !isnan(disp[g])) ss += (disp[g] - mu) * (disp[g] - mu);
            double sd = c > 1 ? sqrt(ss / (c - 1)) : NAN;
            if (isnan(sd)) { /* scanpy: one gene in the bin -> z = 1 */
                sd = mu;
                mu = 0;
            }
            bin_a[b] = mu;
            bin_b[b] = sd;
        }
    } else {
        memcpy(tmp, m, (size_t)n_genes * sizeof *tmp);
        qsort(tmp, (size_t)n_genes, sizeof *tmp, cmp_double);
        n_edges = 0;
        edges[n_edges++] = -INFINITY;
        for (int q = 10; q <= 100; q += 5) edges[n_edges++] = percentile_sorted(tmp, n_genes, q);
        edges[n_edges++] = INFINITY;
        for (int64_t g = 0; g < n_genes; g++) code[g] = cut_code(edges, n_edges, m[g]);
        for (int b = 0; b < n_edges - 1; b++) {
            int64_t c = 0;
            for (int64_t g = 0; g < n_genes; g++)
                if (code[g] == b && !isnan(disp[g])) tmp[c++] = disp[g];
            double med = median_of(tmp, c);
            for (int64_t i = 0; i < c; i++) tmp[i] = fabs(tmp[i] - med);
            bin_a[b] = med;
            bin_b[b] = median_of(tmp, c) / 0.6744897501960817; /* statsmodels: norm.ppf(0.75) */
        }
    }
    for (int64_t g = 0; g < n_genes; g++)
        norm[g] = code[g] < 0 ? NAN : (disp[g] - bin_a[code[g]]) / bin_b[code[g]];
    /* cut-off: the n_top-th largest non-NaN value */
    int64_t nf = 0;
    for (int64_t g = 0; g < n_genes; g++)
        if (!isnan(norm[g])) tmp[nf++] = norm[g];
    if (!nf) {
        st = bmfm_error_set(BMFM_E_INPUT, "hvg: every gene has an undefined dispersion (constant data?)");
        goto done;
    }
    qsort(tmp, (size_t)nf, sizeof *tmp, cmp_double);
    int64_t k = n_top < nf ? n_top : nf;
    double cut = tmp[nf - k];
    int64_t ns = 0;
    for (int64_t g = 0; g < n_genes; g++) {
        double v = isnan(norm[g]) ? 0 : norm[g];
        selected[g] = v >= cut;
        ns += selected[g];
    }
    *n_selected = ns;
    if (disp_norm) memcpy(disp_norm, norm, (size_t)n_genes * sizeof *norm);
done:
    free(m);
    free(disp);
    free(norm);
    free(tmp);
    free(code);
    return st;
}
