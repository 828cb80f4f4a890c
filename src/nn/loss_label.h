/* loss_label.h - losses of the label heads, forward and backward w.r.t. the
 * logits, exactly as the reference computes them (reference §4.3, §4.4):
 *
 *  - HCE (hierarchical cross-entropy over ontology leaves,
 *    metric_functions.py::hce_loss): target row = K multi-hot leaf weights
 *    then the known flag (K+1 floats, labelspace.h builds it);
 *    w := w - flag + 1; L = -(1/B) sum_b flag_b (lse_{k: w>0}(z + log w) -
 *    lse_k z). The mean divides by the FULL batch B, flag-0 rows included.
 *    The masked log-sum-exp subtracts the max over the masked logits, so a
 *    label whose leaves all sit far below the top logit stays finite.
 *  - cross-entropy (torch F.cross_entropy): labels in [0, K) or -100
 *    (ignored); mean over the valid rows.
 *  - focal loss (focal_loss_torch.FocalLoss on softmax(z), no class
 *    weights): L = sum_valid (1 - p_y)^gamma * -log(eps + p_y) / N_valid,
 *    eps = FLT_EPSILON (torch.finfo(float32).eps). The binary 1-D variant
 *    (sigmoid) is not provided.
 *
 * Every function writes the UNWEIGHTED loss to *loss and, when dlogits is
 * not NULL, ACCUMULATES weight * dL/dlogits into it (as the nn.h backward
 * kernels do). For the reference aggregate sum_i w_i L_i / sum_i w_i pass
 * weight = w_i / sum_i w_i. With no valid row, CE and focal give NaN (as
 * torch does; the aggregate skips NaN terms) and no gradient. Arithmetic is
 * in double; logits [B, K] row-major float32.
 */
#ifndef BMFM_NN_LOSS_LABEL_H
#define BMFM_NN_LOSS_LABEL_H

#include "base/error.h"

#include <stdint.h>

#define BMFM_IGNORE_INDEX (-100)

/* target: [B, K+1]. Fails on a flag-1 row with no leaf set. */
bmfm_status bmfm_loss_hce(double *loss, float *dlogits, const float *logits, const float *target, int64_t B,
                          int64_t K, float weight);
/* labels: [B], each in [0, K) or BMFM_IGNORE_INDEX; fails otherwise. */
bmfm_status bmfm_loss_ce(double *loss, float *dlogits, const float *logits, const int64_t *labels, int64_t B,
                         int64_t K, float weight);
bmfm_status bmfm_loss_focal(double *loss, float *dlogits, const float *logits, const int64_t *labels,
                            int64_t B, int64_t K, float gamma, float weight);

#endif
