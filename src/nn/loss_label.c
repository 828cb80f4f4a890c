/* loss_label.c - HCE, cross-entropy and focal loss with their logit gradients (see loss_label.h). */
#include "nn/loss_label.h"

#include <float.h>
#include <math.h>

/* log sum_k exp(z_k) of one row, max-subtracted. */
static double row_lse(const float *z, int64_t K) {
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < K; k++) m = z[k] > m ? z[k] : m;
    for (int64_t k = 0; k < K; k++) s += exp((double)z[k] - m);
    return m + log(s);
}

static bmfm_status check_dims(int64_t B, int64_t K) {
    if (B <= 0 || K <= 0) return bmfm_error_set(BMFM_E_INPUT, "label loss: batch %lld x %lld classes", (long long)B, (long long)K);
    return BMFM_OK;
}

bmfm_status bmfm_loss_hce(double *loss, float *dlogits, const float *logits, const float *target, int64_t B,
                          int64_t K, float weight) {
    BMFM_TRY(check_dims(B, K));
    double total = 0;
    for (int64_t b = 0; b < B; b++) {
        const float *z = logits + b * K, *w = target + b * (K + 1);
        double flag = w[K];
        if (flag == 0) continue; /* w becomes all ones: log P = 0 and no gradient */
        double lse = row_lse(z, K);
        /* masked log-sum-exp over w' = w - flag + 1 (only w' > 0 terms) */
        double m = -INFINITY, s = 0;
        for (int64_t k = 0; k < K; k++)
            if ((double)w[k] - flag + 1 > 0 && z[k] > m) m = z[k];
        if (m == -INFINITY)
            return bmfm_error_set(BMFM_E_INPUT, "hce loss: row %lld has flag %g but no leaf weight", (long long)b, flag);
        for (int64_t k = 0; k < K; k++) {
            double wk = (double)w[k] - flag + 1;
            if (wk > 0) s += wk * exp((double)z[k] - m);
        }
        double lse_w = m + log(s);
        total += flag * (lse_w - lse);
        if (!dlogits) continue;
        double g = (double)weight * flag / (double)B;
        float *dz = dlogits + b * K;
        for (int64_t k = 0; k < K; k++) {
            double wk = (double)w[k] - flag + 1;
            double q = wk > 0 ? wk * exp((double)z[k] - lse_w) : 0;
            dz[k] += (float)(g * (exp((double)z[k] - lse) - q));
        }
    }
    *loss = -total / (double)B;
    return BMFM_OK;
}

/* Shared by CE and focal: validate labels and count the valid rows. */
static bmfm_status valid_rows(const int64_t *labels, int64_t B, int64_t K, int64_t *n_valid) {
    BMFM_TRY(check_dims(B, K));
    *n_valid = 0;
    for (int64_t b = 0; b < B; b++) {
        if (labels[b] == BMFM_IGNORE_INDEX) continue;
        if (labels[b] < 0 || labels[b] >= K)
            return bmfm_error_set(BMFM_E_INPUT, "label loss: row %lld has label %lld outside [0, %lld)", (long long)b,
                                  (long long)labels[b], (long long)K);
        (*n_valid)++;
    }
    return BMFM_OK;
}

bmfm_status bmfm_loss_ce(double *loss, float *dlogits, const float *logits, const int64_t *labels, int64_t B,
                         int64_t K, float weight) {
    int64_t nv;
    BMFM_TRY(valid_rows(labels, B, K, &nv));
    if (!nv) {
        *loss = NAN;
        return BMFM_OK;
    }
    double total = 0;
    for (int64_t b = 0; b < B; b++) {
        if (labels[b] == BMFM_IGNORE_INDEX) continue;
        const float *z = logits + b * K;
        double lse = row_lse(z, K);
        total += lse - z[labels[b]];
        if (!dlogits) continue;
        double g = (double)weight / (double)nv;
        float *dz = dlogits + b * K;
        for (int64_t k = 0; k < K; k++) dz[k] += (float)(g * (exp((double)z[k] - lse) - (k == labels[b])));
    }
    *loss = total / (double)nv;
    return BMFM_OK;
}

bmfm_status bmfm_loss_focal(double *loss, float *dlogits, const float *logits, const int64_t *labels,
                            int64_t B, int64_t K, float gamma, float weight) {
    int64_t nv;
    BMFM_TRY(valid_rows(labels, B, K, &nv));
    if (!nv) {
        *loss = NAN;
        return BMFM_OK;
    }
    const double eps = FLT_EPSILON, gm = gamma;
    double total = 0;
    for (int64_t b = 0; b < B; b++) {
        if (labels[b] == BMFM_IGNORE_INDEX) continue;
        const float *z = logits + b * K;
        double lse = row_lse(z, K);
        double pt = exp((double)z[labels[b]] - lse), om = 1 - pt;
        double nll = -log(eps + pt);
        total += pow(om, gm) * nll;
        if (!dlogits) continue;
        /* dL/dpt = gamma (1-pt)^(gamma-1) log(eps+pt) - (1-pt)^gamma / (eps+pt) */
        double focal_d = gm == 0 ? 0 : om > 0 ? gm * pow(om, gm - 1) : gm >= 1 ? gm * pow(0.0, gm - 1) : 0;
        double dpt = focal_d * (-nll) - pow(om, gm) / (eps + pt);
        double g = (double)weight / (double)nv * dpt * pt; /* dpt/dz_j = pt (1[j=y] - p_j) */
        float *dz = dlogits + b * K;
        for (int64_t k = 0; k < K; k++) dz[k] += (float)(g * ((k == labels[b]) - exp((double)z[k] - lse)));
    }
    *loss = total / (double)nv;
    return BMFM_OK;
}
