/* lisi.h - iLISI / cLISI as scib-metrics computes them (metrics.md B7).
 *
 * Per cell, the Harmony Simpson-index core on its Euclidean kNN distances
 * (self excluded): bisection on beta so that the entropy of
 * P_j ~ exp(-beta D_j) equals log(perplexity) (tolerance 1e-5, 50 steps),
 * simpson = sum over categories of (sum of P in the category)^2, LISI =
 * 1/simpson (cells with sum P = 0 get simpson = -1, as Harmony). Scores:
 * iLISI = (median LISI_batch - 1)/(n_batches - 1),
 * cLISI = (n_labels - median LISI_label)/(n_labels - 1).
 * Not scib's graph LISI (shortest paths on connectivities, random 50%
 * subsample), which is neither Euclidean nor deterministic.
 */
#ifndef BMFM_EVAL_LISI_H
#define BMFM_EVAL_LISI_H

#include <stdint.h>

#include "base/error.h"
#include "eval/knn.h"

/* Per-cell LISI of category codes cat (0..n_cat-1) on the kNN graph g (self
 * in column 0, excluded), perplexity as given (scib-metrics: floor(k/3)). */
bmfm_status bmfm_lisi_per_cell(const bmfm_knn *g, const int32_t *cat, int64_t n_cat, double perplexity,
                               double *lisi);

/* Median of the per-cell LISI, scaled as above. is_batch selects the iLISI
 * scaling, else the cLISI one. NaN when n_cat < 2. */
bmfm_status bmfm_lisi_score(const bmfm_knn *g, const int32_t *cat, int64_t n_cat, int is_batch, double *score);

/* cLISI of labels and iLISI of batches from one perplexity calibration per
 * cell (same numbers as two bmfm_lisi_score calls, half the work). A NULL
 * output, NULL codes or fewer than 2 categories skips that score (NaN). */
bmfm_status bmfm_lisi_scores(const bmfm_knn *g, const int32_t *labels, int64_t n_labels, const int32_t *batches,
                             int64_t n_batches, double *clisi, double *ilisi);

#endif
