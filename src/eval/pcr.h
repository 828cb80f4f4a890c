/* pcr.h - principal component regression batch score (scib pc_regression,
 * metrics.md B9) and scib's pcr_comparison.
 *
 * PCA of the zero-centred embedding (eigen-decomposition of the d x d
 * covariance with LAPACK dsyevr; the same components and variances as
 * sc.tl.pca's arpack/full SVD, up to sign), n_comps = min(50, n, d). For each
 * PC, R^2 of OLS PC ~ 1 + one-hot(batch) = SS_between / SS_total; PCR =
 * sum R^2_i Var_i / sum Var_i over the kept components. Comparison:
 * (PCR_pre - PCR_post) / PCR_pre, clipped at 0 (scale=True).
 * Not included: PCR on a raw expression matrix (give its PCA as "pre").
 */
#ifndef BMFM_EVAL_PCR_H
#define BMFM_EVAL_PCR_H

#include <stdint.h>

#include "base/error.h"

#define BMFM_PCR_N_COMPS 50

/* Top n_comps principal axes of the n x d X: var[n_comps] (ddof = 1,
 * descending) and axes[n_comps x d] (row-major; may be NULL). */
bmfm_status bmfm_pca_eig(const float *X, int64_t n, int64_t d, int n_comps, double *var, double *axes);

bmfm_status bmfm_pcr(const float *X, int64_t n, int64_t d, const int32_t *batches, int64_t n_batches, int n_comps,
                     double *pcr);

/* (pre - post)/pre clipped at 0; NaN when pre is 0 or NaN. */
double bmfm_pcr_comparison(double pcr_pre, double pcr_post);

#endif
