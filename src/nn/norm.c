/* norm.c - LayerNorm (affine) and RMSNorm over the last dimension C,
 * forward and backward (accumulating).
 *
 * Row statistics are two-pass in float (mean, then centred variance), as in
 * llm.c; rstd = 1/sqrt(var + eps). The optimized versions split rows over
 * threads for the per-row work and column blocks for the parameter
 * gradients (each column summed over rows in row order), so they give the
 * same bits as the reference up to the vectorized per-row sums.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <math.h>

/* ---- reference ------------------------------------------------------------ */

void bmfm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int64_t N, int64_t C,
                                float eps)
{
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float m = 0.0f;
        for (int64_t i = 0; i < C; i++)
            m += x[i];
        m /= (float)C;
        float v = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            float d = x[i] - m;
            v += d * d;
        }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        for (int64_t i = 0; i < C; i++)
            out[n * C + i] = (x[i] - m) * s * weight[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

void bmfm_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, int64_t N, int64_t C)
{
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *g = dout + n * C;
        float m = mean[n], s = rstd[n];
        float gw_mean = 0.0f, gw_xhat_mean = 0.0f;
        for (int64_t i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s;
            float gw = g[i] * weight[i];
            gw_mean += gw;
            gw_xhat_mean += gw * xhat;
        }
        gw_mean /= (float)C;
        gw_xhat_mean /= (float)C;
        for (int64_t i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s;
            if (dbias)
                dbias[i] += g[i];
            if (dweight)
                dweight[i] += g[i] * xhat;
            if (dinp)
                dinp[n * C + i] += (g[i] * weight[i] - gw_mean - xhat * gw_xhat_mean) * s;
        }
    }
}

void bmfm_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *scale,
                              int64_t N, int64_t C, float eps)
{
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        float ss = 0.0f;
        for (int64_t i = 0; i < C; i++)
            ss += x[i] * x[i];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (int64_t i = 0; i < C; i++)
            out[n * C + i] = scale[i] * (x[i] * s);
        rstd[n] = s;
    }
}

void bmfm_rmsnorm_backward_ref(float *dinp, float *dscale, const float *dout, const float *inp,
                               const float *scale, const float *rstd, int64_t N, int64_t C)
{
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *g = dout + n * C;
        float s = rstd[n];
        float dot = 0.0f; /* sum_i g_i scale_i x_i */
        for (int64_t i = 0; i < C; i++)
            dot += g[i] * scale[i] * x[i];
        float c = dot * s * s * s / (float)C;
        for (int64_t i = 0; i < C; i++) {
            if (dscale)
                dscale[i] += g[i] * x[i] * s;
            if (dinp)
                dinp[n * C + i] += g[i] * scale[i] * s - x[i] * c;
        }
    }
}

/* ---- optimized ------------------------------------------------------------ */

void bmfm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int64_t N, int64_t C, float eps)
{
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        bmfm_layernorm_forward_ref(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, 1, C,
                                   eps);
}

void bmfm_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int64_t N, int64_t C)
{
    if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            bmfm_layernorm_backward_ref(dinp + n * C, NULL, NULL, dout + n * C, inp + n * C, weight,
                                        mean + n, rstd + n, 1, C);
    }
    if (!dweight && !dbias)
        return;
    int64_t nblk = (C + BMFM_NN_COLBLOCK - 1) / BMFM_NN_COLBLOCK;
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * BMFM_NN_COLBLOCK;
        int64_t c1 = c0 + BMFM_NN_COLBLOCK < C ? c0 + BMFM_NN_COLBLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *g = dout + n * C;
            float m = mean[n], s = rstd[n];
            for (int64_t i = c0; i < c1; i++) {
                if (dbias)
                    dbias[i] += g[i];
                if (dweight)
                    dweight[i] += g[i] * ((x[i] - m) * s);
            }
        }
    }
}

void bmfm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *scale, int64_t N,
                          int64_t C, float eps)
{
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        bmfm_rmsnorm_forward_ref(out + n * C, rstd + n, inp + n * C, scale, 1, C, eps);
}

void bmfm_rmsnorm_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                           const float *scale, const float *rstd, int64_t N, int64_t C)
{
    if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            bmfm_rmsnorm_backward_ref(dinp + n * C, NULL, dout + n * C, inp + n * C, scale,
                                      rstd + n, 1, C);
    }
    if (!dscale)
        return;
    int64_t nblk = (C + BMFM_NN_COLBLOCK - 1) / BMFM_NN_COLBLOCK;
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * BMFM_NN_COLBLOCK;
        int64_t c1 = c0 + BMFM_NN_COLBLOCK < C ? c0 + BMFM_NN_COLBLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + n * C, *g = dout + n * C;
            float s = rstd[n];
            for (int64_t i = c0; i < c1; i++)
                dscale[i] += g[i] * x[i] * s;
        }
    }
}
