/* kbet.h - kBET acceptance rate per label, the scib-metrics kbet_per_label
 * protocol (metrics.md B8), with one documented difference.
 *
 * Per label with >= 10 cells and > 1 batch: k0 = min(70, max(10,
 * floor(mean cells per present batch / 4))); components of the label's
 * subgraph of the 50-NN connectivities: one component -> all cells; else the
 * components with >= 3 k0 cells if they hold >= 75% of the label's cells,
 * otherwise acceptance 0. Every cell is tested (no subsampling): its
 * neighbourhood is itself plus its k0 nearest neighbours among the kept cells;
 * chi2 = sum_b (o_b - e_b)^2 / e_b with e_b = f_b (k0 + 1), f_b the batch
 * frequencies of the kept cells; p = Q((B-1)/2, chi2/2); acceptance =
 * mean(p >= alpha). Score = mean over scored labels (NaN labels skipped).
 * Difference: scib-metrics finds the neighbours on a 100-component diffusion
 * map of the subgraph with pynndescent; we use exact Euclidean neighbours in
 * the embedding (deterministic, no eigen-decomposition per label). Not the R
 * kBET wrapper of scib (random 10% test subsets, unseeded).
 */
#ifndef BMFM_EVAL_KBET_H
#define BMFM_EVAL_KBET_H

#include <stdint.h>

#include "base/error.h"
#include "eval/connectivity.h"
#include "eval/knn.h"

/* Upper tail of the chi-square distribution, Q(dof/2, x/2). */
double bmfm_chi2_sf(double x, double dof);
/* Regularised upper incomplete gamma Q(a, x). */
double bmfm_gammaq(double a, double x);

/* w: connectivities of the 50-NN graph over all n cells, or any graph with
 * their connected components (bmfm_connectivity_pattern; only its
 * components are used). *n_scored = labels
 * that got a (non-NaN) score. g: optional exact kNN graph of all n cells
 * (bmfm_knn_build of X, any k): a cell whose k0 nearest kept cells all lie
 * in its row of g takes them from there (the same cells, the row being
 * sorted by (distance, index)); the others are searched among the label's
 * kept cells, so the result is that of g = NULL. */
bmfm_status bmfm_kbet(const float *X, int64_t n, int64_t d, const bmfm_wgraph *w, const bmfm_knn *g,
                      const int32_t *labels, int64_t n_labels, const int32_t *batches, int64_t n_batches,
                      double alpha, double *score, int *n_scored);

#endif
