/* connectivity.h - UMAP fuzzy simplicial set on a kNN graph (scanpy's
 * obsp["connectivities"]), and the symmetric CSR matrix type the graph
 * metrics share.
 *
 * Reproduces umap.fuzzy_simplicial_set with local_connectivity=1,
 * set_op_mix_ratio=1, bandwidth=1 as called by scanpy (metrics.md B1):
 * smooth_knn_dist (64 bisection steps, tolerance 1e-5, MIN_K_DIST_SCALE 1e-3),
 * weights exp(-(d - rho)/sigma), self weight 0, fuzzy union
 * W = A + A^T - A o A^T, zeros dropped. It does not build the kNN graph
 * (knn.h) and has no spectral embedding.
 */
#ifndef BMFM_EVAL_CONNECTIVITY_H
#define BMFM_EVAL_CONNECTIVITY_H

#include <stdint.h>

#include "base/error.h"
#include "eval/knn.h"

/* Weighted graph as a square sparse matrix (double weights; not the float
 * cell-by-gene bmfm_csr of io/dataset.h), rows sorted by column index, no
 * explicit zeros. */
typedef struct bmfm_wgraph {
    int64_t n;
    int64_t nnz;
    int64_t *indptr;  /* n + 1 */
    int32_t *indices; /* nnz */
    double *data;     /* nnz */
} bmfm_wgraph;

void bmfm_wgraph_free(bmfm_wgraph *m);

/* sigma_i and rho_i of smooth_knn_dist for every row of g (arrays of g->n). */
void bmfm_connectivity_sigmas(const bmfm_knn *g, double *sigma, double *rho);

/* The symmetric fuzzy-union connectivities of the kNN graph g (self in column 0). */
bmfm_status bmfm_connectivity_umap(const bmfm_knn *g, bmfm_wgraph *out);

/* Where the connectivities of the first k columns of g are non-zero, as
 * directed edges only: row i lists i's neighbours with a non-zero
 * membership weight (data NULL, rows in kNN order, not symmetric). An
 * undirected edge set with the same connected components as
 * bmfm_connectivity_umap of that k-NN graph (the fuzzy union is non-zero
 * where either direction is), for bmfm_graph_components: kBET's components
 * of the 50-NN graph at 4 bytes per entry, without the transpose and the
 * union (16 MB less on pbmc8k). */
bmfm_status bmfm_connectivity_pattern(const bmfm_knn *g, int k, bmfm_wgraph *out);

#endif
