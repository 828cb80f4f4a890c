/* expr_encoder.c - the continuous expression encoders of
 * bmfm_reference.md section 2.6: ScaleAdapt (periodic sin/cos features of a
 * fixed float32 basis, linear 2*NB -> C, special rows from a table) and the
 * v1 "mlp_with_special_token_embedding" encoder.
 *
 * ScaleAdapt numerics: the argument x*b_k is the float32 product (as torch
 * computes it) and reaches ~1e13 rad, so the features depend on correct
 * range reduction; glibc sinf/cosf reduce exactly (Payne-Hanek). Never
 * replace them with a fast approximation here.
 *
 * Values x <= 0 are special positions: x == 0 is the zero token (index
 * n_special), x = -(id+1) encodes special token id. An index outside
 * [0, n_special] (a caller bug; the collator validates) gives a zero row.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LRELU_SLOPE 0.01f

int32_t bmfm_expr_special_index(float x, int32_t n_special)
{
    if (x == 0.0f)
        return n_special;
    return -(int32_t)x - 1;
}

static int valid_special(int32_t idx, int32_t n_special)
{
    return idx >= 0 && idx <= n_special;
}

/* ---- ScaleAdapt ----------------------------------------------------------- */

void bmfm_scale_adapt_features(float *feat, const float *x, const float *basis, int64_t N, int64_t NB)
{
#pragma omp parallel for schedule(static) if (N * NB > 4096)
    for (int64_t n = 0; n < N; n++) {
        float *f = feat + n * 2 * NB;
        if (!(x[n] > 0.0f)) {
            memset(f, 0, sizeof(float) * 2 * (size_t)NB);
            continue;
        }
        for (int64_t k = 0; k < NB; k++) {
            volatile float arg = x[n] * basis[k]; /* the float32 product, never widened */
            f[k] = sinf(arg);
            f[NB + k] = cosf(arg);
        }
    }
}

void bmfm_scale_adapt_forward(float *out, float *feat, const float *x, const float *basis,
                              const float *dense, const float *special, int64_t N, int64_t NB,
                              int64_t C, int32_t n_special)
{
    bmfm_scale_adapt_features(feat, x, basis, N, NB);
    /* zero feature rows give zero outputs; special rows are overwritten below */
    bmfm_matmul_forward(out, feat, dense, NULL, N, 2 * NB, C);
    for (int64_t n = 0; n < N; n++) {
        if (x[n] > 0.0f)
            continue;
        int32_t idx = bmfm_expr_special_index(x[n], n_special);
        if (valid_special(idx, n_special))
            memcpy(out + n * C, special + (int64_t)idx * C, sizeof(float) * (size_t)C);
        else
            memset(out + n * C, 0, sizeof(float) * (size_t)C);
    }
}

void bmfm_scale_adapt_backward(float *ddense, float *dspecial, const float *dout, const float *feat,
                               const float *x, int64_t N, int64_t NB, int64_t C, int32_t n_special,
                               int32_t padding_idx)
{
    if (ddense) /* special rows have zero features and add nothing */
        bmfm_matmul_backward(NULL, ddense, NULL, dout, feat, NULL, N, 2 * NB, C);
    if (!dspecial)
        return;
    for (int64_t n = 0; n < N; n++) {
        if (x[n] > 0.0f)
            continue;
        int32_t idx = bmfm_expr_special_index(x[n], n_special);
        if (!valid_special(idx, n_special) || idx == padding_idx)
            continue;
        float *d = dspecial + (int64_t)idx * C;
        const float *g = dout + n * C;
        for (int64_t c = 0; c < C; c++)
            d[c] += g[c];
    }
}

/* ---- MLP encoder with special-token embeddings (v1) ------------------------ */

static float lrelu(float v)
{
    return v > 0.0f ? v : v * LRELU_SLOPE;
}

/* hidden[n] = lrelu(w1 x + b1) for continuous rows, E128[idx] for specials:
 * in both cases dense_2's input is lrelu(hidden[n]). */
static void mlp_hidden(float *hidden, const float *x, const float *w1, const float *b1,
                       const float *special, int64_t N, int64_t H1, int32_t n_special)
{
    for (int64_t n = 0; n < N; n++) {
        float *hrow = hidden + n * H1;
        if (x[n] > 0.0f) {
            for (int64_t j = 0; j < H1; j++)
                hrow[j] = lrelu(w1[j] * x[n] + b1[j]);
        } else {
            int32_t idx = bmfm_expr_special_index(x[n], n_special);
            if (valid_special(idx, n_special))
                memcpy(hrow, special + (int64_t)idx * H1, sizeof(float) * (size_t)H1);
            else
                memset(hrow, 0, sizeof(float) * (size_t)H1);
        }
    }
}

void bmfm_mlp_expr_forward(float *out, float *hidden, const float *x, const float *w1,
                           const float *b1, const float *w2, const float *b2, const float *special,
                           int64_t N, int64_t H1, int64_t C, int32_t n_special)
{
    mlp_hidden(hidden, x, w1, b1, special, N, H1, n_special);
    float *act = malloc(sizeof(float) * (size_t)(N * H1 + 1));
    if (act) {
        for (int64_t k = 0; k < N * H1; k++)
            act[k] = lrelu(hidden[k]);
        bmfm_matmul_forward(out, act, w2, b2, N, H1, C);
        free(act);
        return;
    }
    /* no memory for the activation buffer: same result, row by row */
    for (int64_t n = 0; n < N; n++) {
        float a[H1 > 0 ? H1 : 1];
        for (int64_t j = 0; j < H1; j++)
            a[j] = lrelu(hidden[n * H1 + j]);
        bmfm_matmul_forward_ref(out + n * C, a, w2, b2, 1, H1, C);
    }
}

/* dhidden[n] = (dout[n] @ w2) * lrelu'(hidden[n]) into the encoder's inputs:
 * dw1/db1 for continuous rows (lrelu preserves the sign, so
 * lrelu'(pre) == lrelu'(hidden)), dspecial for special rows, in row order. */
static void mlp_expr_scatter(float *dw1, float *db1, float *dspecial, const float *dact,
                             const float *hidden, const float *x, int64_t N, int64_t H1,
                             int32_t n_special, int32_t padding_idx)
{
    for (int64_t n = 0; n < N; n++) {
        const float *hrow = hidden + n * H1, *da = dact + n * H1;
        if (x[n] > 0.0f) {
            for (int64_t j = 0; j < H1; j++) {
                float d1 = hrow[j] > 0.0f ? 1.0f : LRELU_SLOPE;
                float dpre = da[j] * d1 * d1;
                if (dw1)
                    dw1[j] += dpre * x[n];
                if (db1)
                    db1[j] += dpre;
            }
        } else if (dspecial) {
            int32_t idx = bmfm_expr_special_index(x[n], n_special);
            if (!valid_special(idx, n_special) || idx == padding_idx)
                continue;
            for (int64_t j = 0; j < H1; j++)
                dspecial[(int64_t)idx * H1 + j] += da[j] * (hrow[j] > 0.0f ? 1.0f : LRELU_SLOPE);
        }
    }
}

void bmfm_mlp_expr_backward(float *dw1, float *db1, float *dw2, float *db2, float *dspecial,
                            const float *dout, const float *hidden, const float *x,
                            const float *w1, const float *b1, const float *w2, int64_t N,
                            int64_t H1, int64_t C, int32_t n_special, int32_t padding_idx)
{
    size_t n = (size_t)(N * H1 > 0 ? N * H1 : 1);
    float *act = malloc(sizeof(float) * n), *dact = calloc(n, sizeof(float));
    if (act && dact) {
        for (int64_t k = 0; k < N * H1; k++)
            act[k] = lrelu(hidden[k]);
        bmfm_matmul_backward(dact, dw2, db2, dout, act, w2, N, H1, C);
        mlp_expr_scatter(dw1, db1, dspecial, dact, hidden, x, N, H1, n_special, padding_idx);
        free(act);
        free(dact);
        return;
    }
    free(act);
    free(dact);
    /* no memory for the buffers: the same gradients row by row */
    float a[H1 > 0 ? H1 : 1], da[H1 > 0 ? H1 : 1];
    if (db2)
        bmfm_matmul_backward(NULL, NULL, db2, dout, NULL, w2, N, H1, C);
    for (int64_t r = 0; r < N; r++) {
        const float *hrow = hidden + r * H1;
        const float *g = dout + r * C;
        for (int64_t j = 0; j < H1; j++) {
            a[j] = lrelu(hrow[j]);
            da[j] = 0.0f;
        }
        if (dw2)
            for (int64_t c = 0; c < C; c++)
                for (int64_t j = 0; j < H1; j++)
                    dw2[c * H1 + j] += g[c] * a[j];
        for (int64_t c = 0; c < C; c++)
            for (int64_t j = 0; j < H1; j++)
                da[j] += g[c] * w2[c * H1 + j];
        mlp_expr_scatter(dw1, db1, dspecial, da, hrow, x + r, 1, H1, n_special, padding_idx);
    }
}
