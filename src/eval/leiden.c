/* leiden.c - igraph_community_leiden with modularity normalisation (see leiden.h). */
#include "eval/leiden.h"

#include <igraph/igraph.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "eval/cluster_metrics.h"

#define LEIDEN_BETA 0.01
#define LEIDEN_MAX_SWEEPS 100

typedef struct igraph_ctx {
    igraph_t g;
    igraph_vector_t w, strength;
    double total;
} igraph_ctx;

static void ig_free(igraph_ctx *c) {
    igraph_destroy(&c->g);
    igraph_vector_destroy(&c->w);
    igraph_vector_destroy(&c->strength);
}

/* Undirected graph with each edge of the symmetric W once (i < j). */
static bmfm_status ig_build(const bmfm_wgraph *w, igraph_ctx *c) {
    igraph_vector_int_t edges;
    int64_t ne = 0;
    for (int64_t i = 0; i < w->n; i++)
        for (int64_t p = w->indptr[i]; p < w->indptr[i + 1]; p++) ne += w->indices[p] > i;
    if (igraph_vector_int_init(&edges, 2 * ne)) return bmfm_error_set(BMFM_E_NOMEM, "leiden: igraph edge vector");
    if (igraph_vector_init(&c->w, ne)) {
        igraph_vector_int_destroy(&edges);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden: igraph weight vector");
    }
    int64_t e = 0;
    for (int64_t i = 0; i < w->n; i++)
        for (int64_t p = w->indptr[i]; p < w->indptr[i + 1]; p++)
            if (w->indices[p] > i) {
                VECTOR(edges)[2 * e] = i;
                VECTOR(edges)[2 * e + 1] = w->indices[p];
                VECTOR(c->w)[e++] = w->data[p];
            }
    igraph_error_t ie = igraph_create(&c->g, &edges, w->n, IGRAPH_UNDIRECTED);
    igraph_vector_int_destroy(&edges);
    if (ie) {
        igraph_vector_destroy(&c->w);
        return bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_create failed (%d)", (int)ie);
    }
    if (igraph_vector_init(&c->strength, 0) ||
        igraph_strength(&c->g, &c->strength, igraph_vss_all(), IGRAPH_ALL, IGRAPH_LOOPS, &c->w)) {
        igraph_destroy(&c->g);
        igraph_vector_destroy(&c->w);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden: igraph strengths");
    }
    c->total = igraph_vector_sum(&c->strength);
    return BMFM_OK;
}

static bmfm_status ig_leiden(igraph_ctx *c, double resolution, uint64_t seed, int n_iterations,
                             int32_t *membership, int *n_clusters) {
    igraph_vector_int_t memb, prev;
    igraph_integer_t nb = 0;
    igraph_real_t q = 0;
    bmfm_status st = BMFM_OK;
    int64_t n = igraph_vcount(&c->g);
    if (igraph_vector_int_init(&memb, n)) return bmfm_error_set(BMFM_E_NOMEM, "leiden: membership vector");
    if (igraph_vector_int_init(&prev, n)) {
        igraph_vector_int_destroy(&memb);
        return bmfm_error_set(BMFM_E_NOMEM, "leiden: membership vector");
    }
    igraph_rng_seed(igraph_rng_default(), (igraph_uint_t)seed);
    /* modularity: resolution / 2m with node weights = strengths (python-igraph's normalisation) */
    double res = c->total > 0 ? resolution / c->total : resolution;
    if (n_iterations >= 0) {
        if (igraph_community_leiden(&c->g, &c->w, &c->strength, res, LEIDEN_BETA, 0, n_iterations, &memb, &nb, &q))
            st = bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_community_leiden failed");
    } else {
        int sweeps = 0;
        if (igraph_community_leiden(&c->g, &c->w, &c->strength, res, LEIDEN_BETA, 0, 1, &memb, &nb, &q))
            st = bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_community_leiden failed");
        while (!st && ++sweeps < LEIDEN_MAX_SWEEPS) {
            igraph_vector_int_update(&prev, &memb);
            if (igraph_community_leiden(&c->g, &c->w, &c->strength, res, LEIDEN_BETA, 1, 1, &memb, &nb, &q)) {
                st = bmfm_error_set(BMFM_E_INTERNAL, "leiden: igraph_community_leiden failed");
                break;
            }
            if (igraph_vector_int_all_e(&prev, &memb)) break;
        }
    }
    if (!st) {
        for (int64_t i = 0; i < n; i++) membership[i] = (int32_t)VECTOR(memb)[i];
        *n_clusters = (int)nb;
    }
    igraph_vector_int_destroy(&memb);
    igraph_vector_int_destroy(&prev);
    return st;
}

bmfm_status bmfm_leiden(const bmfm_wgraph *w, double resolution, uint64_t seed, int n_iterations,
                        int32_t *membership, int *n_clusters) {
    igraph_ctx c;
    memset(&c, 0, sizeof c);
    /* igraph's default handler aborts the process; library code must return */
    igraph_error_handler_t *old = igraph_set_error_handler(igraph_error_handler_ignore);
    bmfm_status st = ig_build(w, &c);
    if (!st) {
        st = ig_leiden(&c, resolution, seed, n_iterations, membership, n_clusters);
        ig_free(&c);
    }
    igraph_set_error_handler(old);
    return st;
}

bmfm_status bmfm_leiden_scan(const bmfm_wgraph *w, const int32_t *labels, double res_min, double res_max,
                             double res_step, uint64_t seed, int n_iterations, int32_t *best_membership,
                             bmfm_leiden_scan_result *out) {
    igraph_ctx c;
    int32_t *memb = NULL, *best = NULL;
    bmfm_status st = BMFM_OK;
    memset(out, 0, sizeof *out);
    out->nmi = out->ari = out->best_resolution = NAN;
    if (!(res_step > 0) || !(res_min > 0) || res_max < res_min)
        return bmfm_error_set(BMFM_E_INPUT, "leiden scan: bad resolution range %g..%g step %g", res_min, res_max,
                              res_step);
    memset(&c, 0, sizeof c);
    igraph_error_handler_t *old = igraph_set_error_handler(igraph_error_handler_ignore);
    if ((st = ig_build(w, &c))) {
        igraph_set_error_handler(old);
        return st;
    }
    memb = bmfm_malloc((size_t)w->n * sizeof *memb);
    best = bmfm_malloc((size_t)w->n * sizeof *best);
    if (!memb || !best) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    int nres = (int)floor((res_max - res_min) / res_step + 1e-9) + 1;
    double best_nmi = -1;
    for (int r = 0; r < nres; r++) {
        double res = res_min + r * res_step;
        int ncl = 0;
        double nmi;
        if ((st = ig_leiden(&c, res, seed, n_iterations, memb, &ncl))) goto done;
        if ((st = bmfm_nmi(labels, memb, w->n, &nmi))) goto done;
        if (nmi > best_nmi) {
            best_nmi = nmi;
            out->best_resolution = res;
            out->n_clusters = ncl;
            memcpy(best, memb, (size_t)w->n * sizeof *best);
        }
    }
    out->n_resolutions = nres;
    out->nmi = best_nmi;
    if ((st = bmfm_ari(labels, best, w->n, &out->ari))) goto done;
    if (best_membership) memcpy(best_membership, best, (size_t)w->n * sizeof *best);
done:
    free(memb);
    free(best);
    ig_free(&c);
    igraph_set_error_handler(old);
    return st;
}
