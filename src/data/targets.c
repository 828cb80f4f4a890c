/* targets.c - WCED targets and MLM masking (targets.h). */
#include "data/targets.h"

#include "base/rng.h"
#include "data/tokenize.h"

void bmfm_wced_base(float *base, int64_t V, const int32_t *var_to_token, int64_t n_vars) {
    for (int64_t j = 0; j < V; j++) base[j] = -100.0f;
    for (int64_t j = 0; j < n_vars; j++)
        if (var_to_token[j] >= 0 && var_to_token[j] < V) base[var_to_token[j]] = 0.0f;
}

bmfm_status bmfm_wced_target_row(float *out, const float *base, int64_t V, const int32_t *var_to_token,
                                 const int32_t *indices, const float *counts, int64_t nnz, double *acc) {
    double S = 0;
    for (int64_t j = 0; j < V; j++) out[j] = base[j];
    for (int64_t k = 0; k < nnz; k++) {
        if (counts[k] < 0) {
            for (int64_t q = 0; q < k; q++) /* leave acc zeroed */
                if (var_to_token[indices[q]] >= 0) acc[var_to_token[indices[q]]] = 0;
            return bmfm_error_set(BMFM_E_INPUT, "negative count %g at var column %d", (double)counts[k],
                                  (int)indices[k]);
        }
        int32_t t = var_to_token[indices[k]];
        if (t < 0 || t >= V) continue;
        acc[t] += counts[k];
        S += counts[k];
    }
    for (int64_t k = 0; k < nnz; k++) {
        int32_t t = var_to_token[indices[k]];
        if (t < 0 || t >= V || acc[t] == 0) continue; /* zero sum or already written */
        out[t] = bmfm_log_normalize_value(acc[t], S);
        acc[t] = 0;
    }
    return BMFM_OK;
}

void bmfm_mlm_opts_default(bmfm_mlm_opts *o) {
    o->change_ratio = 0.15;
    o->mask_ratio = 0.95;
    o->mask_value = -5.0f;
}

int64_t bmfm_mlm_mask(float *expr, float *label, int64_t n, const bmfm_mlm_opts *o, uint64_t seed, uint64_t cell) {
    bmfm_rng r;
    bmfm_rng_seed(&r, seed, cell);
    int64_t n_label = 0;
    const double p = o->change_ratio, pm = o->change_ratio * o->mask_ratio;
    for (int64_t i = 0; i < n; i++) {
        label[i] = -100.0f;
        if (expr[i] < 0) continue; /* special position: probability 0 */
        double u = bmfm_rng_uniform(&r);
        if (u > p) continue;
        label[i] = expr[i];
        n_label++;
        if (u <= pm) expr[i] = o->mask_value;
    }
    return n_label;
}
