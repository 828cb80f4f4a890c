/* loss_expr.c - WCED and MLM expression losses (see loss_expr.h). */
#include "nn/loss_expr.h"

#include <math.h>
#include <stddef.h>

static double bce_logits(double l, double t) { return fmax(l, 0.0) - l * t + log1p(exp(-fabs(l))); }

static double sigmoid(double l) { return l >= 0 ? 1.0 / (1.0 + exp(-l)) : exp(l) / (1.0 + exp(l)); }

/* Generic strided form: prediction p[i*ps], logit q[i*qs], target y[i]. */
static void expr_loss(double *mse, double *bce, float *dp, float *dq, const float *p, const float *q, int64_t ps,
                      int64_t qs, const float *y, int64_t n, float w_mse, float w_bce) {
    double se = 0, sb = 0;
    int64_t n_mse = 0, n_bce = 0;
    for (int64_t i = 0; i < n; i++) {
        float t = y[i];
        if (t == -100.0f) continue;
        n_bce++;
        if (q) sb += bce_logits(q[i * qs], t == 0.0f ? 1.0 : 0.0);
        if (t == 0.0f) continue;
        n_mse++;
        if (p) {
            double d = (double)p[i * ps] - t;
            se += d * d;
        }
    }
    double den_mse = (double)n_mse + 1e-6, den_bce = (double)n_bce + 1e-6;
    if (mse) *mse = p ? se / den_mse : 0.0;
    if (bce) *bce = q ? sb / den_bce : 0.0;
    for (int64_t i = 0; i < n; i++) {
        float t = y[i];
        if (t == -100.0f) continue;
        if (dq && q) dq[i * qs] += (float)(w_bce * (sigmoid(q[i * qs]) - (t == 0.0f ? 1.0 : 0.0)) / den_bce);
        if (t != 0.0f && dp && p) dp[i * ps] += (float)(w_mse * 2.0 * ((double)p[i * ps] - t) / den_mse);
    }
}

void bmfm_wced_loss(double *mse, double *bce, float *dout, const float *out, const float *target, int64_t B, int64_t V,
                    int64_t n_out, int mse_idx, int bce_idx, float w_mse, float w_bce) {
    /* Cells are contiguous in both out and target, so the whole batch is one
     * strided vector of B*V genes with stride n_out. */
    expr_loss(mse, bce, dout && mse_idx >= 0 ? dout + mse_idx : NULL, dout && bce_idx >= 0 ? dout + bce_idx : NULL,
              mse_idx >= 0 ? out + mse_idx : NULL, bce_idx >= 0 ? out + bce_idx : NULL, n_out, n_out, target, B * V,
              w_mse, w_bce);
}

void bmfm_mlm_loss(double *mse, double *bce, float *dreg, float *diz, const float *reg, const float *iz,
                   const float *target, int64_t N, float w_mse, float w_bce) {
    expr_loss(mse, bce, dreg, diz, reg, iz, 1, 1, target, N, w_mse, w_bce);
}
