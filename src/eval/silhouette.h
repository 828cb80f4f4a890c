/* silhouette.h - Euclidean silhouettes as sklearn.metrics.silhouette_samples
 * computes them, and the scib scores built on them (metrics.md B4, B5, B10).
 *
 * - label ASW: mean silhouette over cells with labels as clusters, rescaled
 *   (s + 1) / 2 (scib silhouette(scale=True), scib-metrics silhouette_label).
 * - batch ASW: scib >= 1.0 silhouette_batch: per label, silhouettes of the
 *   label's cells with batches as clusters, 1 - |s| per cell, mean per label,
 *   then the mean over labels; labels with one batch or with as many batches
 *   as cells are skipped. Euclidean, not scib-metrics >= 0.5.6 BRAS (cosine,
 *   mean-other-batch distance).
 * - isolated-label ASW: scib-metrics isolated_labels default: labels present
 *   in the fewest batches (scib: none if that count equals the number of
 *   batches); mean of the rescaled all-label silhouette over each isolated
 *   label's cells; mean over isolated labels.
 * Distances are computed in double (sklearn upcasts float32 to float64 blocks).
 * Cells of a singleton cluster get s = 0, as sklearn.
 */
#ifndef BMFM_EVAL_SILHOUETTE_H
#define BMFM_EVAL_SILHOUETTE_H

#include <stdint.h>

#include "base/error.h"

/* s[i] for the n x d row-major X with cluster codes lab[i] in 0..n_lab-1.
 * Needs at least 2 non-empty clusters (else BMFM_E_INPUT). */
bmfm_status bmfm_silhouette_samples(const float *X, int64_t n, int64_t d, const int32_t *lab, int64_t n_lab,
                                    double *s);

/* Both from one pass over the pairs: s[i] as bmfm_silhouette_samples (when s
 * is not NULL; then >= 2 non-empty clusters are needed) and, when batches
 * and asw_batch are not NULL, *asw_batch as bmfm_asw_batch. */
bmfm_status bmfm_silhouette_label_batch(const float *X, int64_t n, int64_t d, const int32_t *labels,
                                        int64_t n_labels, const int32_t *batches, int64_t n_batches, double *s,
                                        double *asw_batch);

/* Rescaled label ASW from per-cell silhouettes (mean of (s+1)/2). */
double bmfm_asw_label_from_samples(const double *s, int64_t n);

/* scib silhouette_batch; *asw = NaN when no label qualifies. */
bmfm_status bmfm_asw_batch(const float *X, int64_t n, int64_t d, const int32_t *labels, int64_t n_labels,
                           const int32_t *batches, int64_t n_batches, double *asw);

/* Isolated-label ASW from the all-label per-cell silhouettes; NaN when no
 * label is isolated. *n_isolated gets the number of isolated labels. */
bmfm_status bmfm_isolated_asw(const double *s, int64_t n, const int32_t *labels, int64_t n_labels,
                              const int32_t *batches, int64_t n_batches, double *score, int *n_isolated);

#endif
