/* graph_metrics.c - union-find components and graph connectivity.
 *
 * Own union-find instead of igraph: the per-label subgraph would otherwise be
 * copied into an igraph_t for every label; here it is one pass over W.
 */
#include "eval/graph_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static int64_t uf_find(int64_t *p, int64_t x) {
    while (p[x] != x) {
        p[x] = p[p[x]];
        x = p[x];
    }
    return x;
}

bmfm_status bmfm_graph_components(const bmfm_wgraph *w, const uint8_t *mask, int32_t *comp, int64_t *n_comp) {
    int64_t n = w->n;
    int64_t *p = bmfm_malloc((size_t)n * sizeof *p);
    if (!p) return BMFM_E_NOMEM;
    for (int64_t i = 0; i < n; i++) p[i] = i;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        for (int64_t q = w->indptr[i]; q < w->indptr[i + 1]; q++) {
            int64_t j = w->indices[q];
            if (mask && !mask[j]) continue;
            int64_t a = uf_find(p, i), b = uf_find(p, j);
            if (a != b) p[a > b ? a : b] = a < b ? a : b; /* smaller index is the root */
        }
    }
    int64_t nc = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) {
            comp[i] = -1;
            continue;
        }
        int64_t r = uf_find(p, i);
        comp[i] = r == i ? (int32_t)nc++ : comp[r];
    }
    *n_comp = nc;
    free(p);
    return BMFM_OK;
}

bmfm_status bmfm_graph_connectivity(const bmfm_wgraph *w, const int32_t *labels, int64_t n_labels, double *gc) {
    bmfm_status st = BMFM_OK;
    int64_t n = w->n;
    uint8_t *mask = bmfm_malloc((size_t)n);
    int32_t *comp = bmfm_malloc((size_t)n * sizeof *comp);
    int64_t *size = bmfm_malloc((size_t)n * sizeof *size);
    *gc = NAN;
    if (!mask || !comp || !size) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    double tot = 0;
    int64_t used = 0;
    for (int64_t l = 0; l < n_labels; l++) {
        int64_t m = 0, nc = 0;
        for (int64_t i = 0; i < n; i++) {
            mask[i] = labels[i] == l;
            m += mask[i];
        }
        if (m == 0) continue; /* unused category */
        if ((st = bmfm_graph_components(w, mask, comp, &nc))) goto done;
        memset(size, 0, (size_t)nc * sizeof *size);
        int64_t best = 0;
        for (int64_t i = 0; i < n; i++)
            if (comp[i] >= 0 && ++size[comp[i]] > best) best = size[comp[i]];
        tot += (double)best / (double)m;
        used++;
    }
    if (used) *gc = tot / (double)used;
done:
    free(mask);
    free(comp);
    free(size);
    return st;
}
