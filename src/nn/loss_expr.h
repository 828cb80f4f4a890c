/* loss_expr.h - expression losses of the WCED and MLM objectives
 * (bmfm_reference.md 4.1, 4.2; metric_functions.py mse_loss/is_zero_bce_loss):
 *   mse (ignore_zero): sum over y not in {-100, 0} of (yhat - y)^2 / (n + 1e-6),
 *                      n = number of such entries
 *   is_zero_bce:       sum over y != -100 of BCEWithLogits(l, [y == 0]) / (n + 1e-6),
 *                      n = number of entries with y != -100
 * The mean runs over all (cell, gene) or (token) entries of the batch.
 * Forward returns the loss; backward adds weight * dL/dinput into the
 * gradient arrays (NULL = not needed). Sums are in double, in index order,
 * so results do not depend on threads. Not here: label losses (loss_label.h).
 */
#ifndef BMFM_NN_LOSS_EXPR_H
#define BMFM_NN_LOSS_EXPR_H

#include <stdint.h>

/* WCED: out is [B, n_out*V]; gene j of cell b has its prediction at
 * out[b*n_out*V + n_out*j + mse_idx] and its is-zero logit at
 * [... + bce_idx]; target [B, V]. Either index may be -1 (loss 0). Adds
 * w_mse * dmse + w_bce * dbce into dout (same layout) when dout != NULL. */
void bmfm_wced_loss(double *mse, double *bce, float *dout, const float *out, const float *target, int64_t B, int64_t V,
                    int64_t n_out, int mse_idx, int bce_idx, float w_mse, float w_bce);

/* MLM: reg[N] and iz[N] per token (either may be NULL), target[N] (-100 at
 * unmasked positions). dreg/diz get w_mse * dmse / w_bce * dbce added. */
void bmfm_mlm_loss(double *mse, double *bce, float *dreg, float *diz, const float *reg, const float *iz,
                   const float *target, int64_t N, float w_mse, float w_bce);

#endif
