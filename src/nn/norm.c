/* norm.c - LayerNorm (affine) and RMSNorm over the last dimension C,
 * forward and backward (accumulating).
 *
 * Row statistics are two-pass in float (mean, then centred variance), as in
 * llm.c; rstd = 1/sqrt(var + eps). The optimized versions split rows over
 * threads for the per-row work (AVX-512: vector partial sums, so the row
 * statistics differ from the reference in the last bits) and column blocks
 * over threads for the parameter gradients, each column summed over the
 * rows in row order with the reference's expressions (FMA-fused where the
 * target allows).
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "nn/simd.h"

#include <math.h>
#include <string.h>

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

/* ---- AVX-512 row and column kernels ---------------------------------------- */

#define MASK16(rem) ((rem) >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (rem)) - 1u))

static BMFM_AVX512 void ln_fwd_row_512(float *out, float *mean, float *rstd, const float *x,
                                       const float *w, const float *b, int64_t C, float eps)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < C; i += 16)
        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(MASK16(C - i), x + i));
    float m = _mm512_reduce_add_ps(acc) / (float)C;
    __m512 vm = _mm512_set1_ps(m);
    acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, x + i), vm);
        acc = _mm512_fmadd_ps(d, d, acc);
    }
    float sv = 1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)C + eps);
    __m512 vs = _mm512_set1_ps(sv);
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vs);
        __m512 y = _mm512_add_ps(_mm512_mul_ps(xh, _mm512_maskz_loadu_ps(k, w + i)),
                                 _mm512_maskz_loadu_ps(k, b + i));
        _mm512_mask_storeu_ps(out + i, k, y);
    }
    *mean = m;
    *rstd = sv;
}

static BMFM_AVX512 void ln_bwd_row_512(float *dinp, const float *g, const float *x, const float *w,
                                       float m, float sv, int64_t C)
{
    __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(sv);
    __m512 a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps();
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vs);
        __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, w + i));
        a1 = _mm512_add_ps(a1, gw);
        a2 = _mm512_fmadd_ps(gw, xh, a2);
    }
    __m512 gm = _mm512_set1_ps(_mm512_reduce_add_ps(a1) / (float)C);
    __m512 gxm = _mm512_set1_ps(_mm512_reduce_add_ps(a2) / (float)C);
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 xh = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vs);
        __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, w + i));
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(gw, gm), _mm512_mul_ps(xh, gxm)), vs);
        _mm512_mask_storeu_ps(dinp + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dinp + i), d));
    }
}

static BMFM_AVX512 void rms_fwd_row_512(float *out, float *rstd, const float *x, const float *w,
                                        int64_t C, float eps)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < C; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(MASK16(C - i), x + i);
        acc = _mm512_fmadd_ps(v, v, acc);
    }
    float sv = 1.0f / sqrtf(_mm512_reduce_add_ps(acc) / (float)C + eps);
    __m512 vs = _mm512_set1_ps(sv);
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, w + i),
                                 _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs));
        _mm512_mask_storeu_ps(out + i, k, y);
    }
    *rstd = sv;
}

static BMFM_AVX512 void rms_bwd_row_512(float *dinp, const float *g, const float *x, const float *w,
                                        float sv, int64_t C)
{
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, w + i));
        acc = _mm512_fmadd_ps(gw, _mm512_maskz_loadu_ps(k, x + i), acc);
    }
    __m512 vc = _mm512_set1_ps(_mm512_reduce_add_ps(acc) * sv * sv * sv / (float)C);
    __m512 vs = _mm512_set1_ps(sv);
    for (int64_t i = 0; i < C; i += 16) {
        __mmask16 k = MASK16(C - i);
        __m512 gw = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + i), _mm512_maskz_loadu_ps(k, w + i));
        __m512 d = _mm512_sub_ps(_mm512_mul_ps(gw, vs), _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vc));
        _mm512_mask_storeu_ps(dinp + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dinp + i), d));
    }
}

/* Parameter gradients of columns [c0, c1) (at most BMFM_NN_COLBLOCK = 64):
 * each column is summed over the rows in order, starting from its current
 * value, with the reference's expressions (the compiler may fuse a multiply
 * and the add into one FMA there, so the last bit can differ from the
 * reference).
 * mean == NULL: RMSNorm (dw += g * x * s). */
static BMFM_AVX512 void param_grad_cols_512(float *dw, float *db, const float *dout, const float *inp,
                                            const float *mean, const float *rstd, int64_t N,
                                            int64_t C, int64_t c0, int64_t c1)
{
    __m512 aw[4], ab[4];
    __mmask16 k[4];
    int nv = (int)((c1 - c0 + 15) / 16);
    for (int v = 0; v < 4; v++) {
        int64_t rem = c1 - c0 - 16 * v;
        k[v] = v < nv ? MASK16(rem) : 0;
        aw[v] = dw ? _mm512_maskz_loadu_ps(k[v], dw + c0 + 16 * v) : _mm512_setzero_ps();
        ab[v] = db ? _mm512_maskz_loadu_ps(k[v], db + c0 + 16 * v) : _mm512_setzero_ps();
    }
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C + c0, *g = dout + n * C + c0;
        __m512 vs = _mm512_set1_ps(rstd[n]);
        __m512 vm = _mm512_set1_ps(mean ? mean[n] : 0.0f);
        for (int v = 0; v < nv; v++) {
            __m512 gv = _mm512_maskz_loadu_ps(k[v], g + 16 * v);
            __m512 xv = _mm512_maskz_loadu_ps(k[v], x + 16 * v);
            if (mean) {
                ab[v] = _mm512_add_ps(ab[v], gv);
                aw[v] = _mm512_add_ps(aw[v], _mm512_mul_ps(gv, _mm512_mul_ps(_mm512_sub_ps(xv, vm), vs)));
            } else {
                aw[v] = _mm512_add_ps(aw[v], _mm512_mul_ps(_mm512_mul_ps(gv, xv), vs));
            }
        }
    }
    for (int v = 0; v < nv; v++) {
        if (dw)
            _mm512_mask_storeu_ps(dw + c0 + 16 * v, k[v], aw[v]);
        if (db)
            _mm512_mask_storeu_ps(db + c0 + 16 * v, k[v], ab[v]);
    }
}

/* AVX2 column pass: the block in two halves of 32 columns (8 accumulators),
 * same per-column order and expressions. */
static BMFM_AVX2 void param_grad_cols_256(float *dw, float *db, const float *dout, const float *inp,
                                          const float *mean, const float *rstd, int64_t N,
                                          int64_t C, int64_t c0, int64_t c1)
{
    for (int64_t h0 = c0; h0 < c1; h0 += 32) {
        int64_t h1 = h0 + 32 < c1 ? h0 + 32 : c1, nfull = (h1 - h0) / 8;
        float wbuf[32] __attribute__((aligned(32))) = {0}, bbuf[32] __attribute__((aligned(32))) = {0};
        if (dw)
            memcpy(wbuf, dw + h0, sizeof(float) * (size_t)(h1 - h0));
        if (db)
            memcpy(bbuf, db + h0, sizeof(float) * (size_t)(h1 - h0));
        __m256 aw[4], ab[4];
        for (int v = 0; v < 4; v++)
            aw[v] = _mm256_load_ps(wbuf + 8 * v), ab[v] = _mm256_load_ps(bbuf + 8 * v);
        for (int64_t n = 0; n < N; n++) {
            const float *x = inp + n * C + h0, *g = dout + n * C + h0;
            __m256 vs = _mm256_set1_ps(rstd[n]), vm = _mm256_set1_ps(mean ? mean[n] : 0.0f);
            for (int v = 0; v < nfull; v++) {
                __m256 gv = _mm256_loadu_ps(g + 8 * v), xv = _mm256_loadu_ps(x + 8 * v);
                if (mean) {
                    ab[v] = _mm256_add_ps(ab[v], gv);
                    aw[v] = _mm256_add_ps(aw[v], _mm256_mul_ps(gv, _mm256_mul_ps(_mm256_sub_ps(xv, vm), vs)));
                } else {
                    aw[v] = _mm256_add_ps(aw[v], _mm256_mul_ps(_mm256_mul_ps(gv, xv), vs));
                }
            }
            for (int64_t i = h0 + 8 * nfull; i < h1; i++) { /* tail columns, scalar */
                float gi = dout[n * C + i], xi = inp[n * C + i];
                if (mean) {
                    bbuf[i - h0] += gi;
                    wbuf[i - h0] += gi * ((xi - mean[n]) * rstd[n]);
                } else {
                    wbuf[i - h0] += gi * xi * rstd[n];
                }
            }
        }
        for (int v = 0; v < nfull; v++)
            _mm256_store_ps(wbuf + 8 * v, aw[v]), _mm256_store_ps(bbuf + 8 * v, ab[v]);
        if (dw)
            memcpy(dw + h0, wbuf, sizeof(float) * (size_t)(h1 - h0));
        if (db)
            memcpy(db + h0, bbuf, sizeof(float) * (size_t)(h1 - h0));
    }
}

/* Portable column pass with the same contract as param_grad_cols_512. */
static void param_grad_cols(float *dw, float *db, const float *dout, const float *inp,
                            const float *mean, const float *rstd, int64_t N, int64_t C, int64_t c0,
                            int64_t c1)
{
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *g = dout + n * C;
        float s = rstd[n];
        for (int64_t i = c0; i < c1; i++) {
            if (!mean) {
                dw[i] += g[i] * x[i] * s;
                continue;
            }
            if (db)
                db[i] += g[i];
            if (dw)
                dw[i] += g[i] * ((x[i] - mean[n]) * s);
        }
    }
}

static void param_grads(float *dw, float *db, const float *dout, const float *inp, const float *mean,
                        const float *rstd, int64_t N, int64_t C)
{
    if (!dw && !db)
        return;
    bmfm_isa isa = bmfm_cpu_isa();
    int64_t nblk = (C + BMFM_NN_COLBLOCK - 1) / BMFM_NN_COLBLOCK;
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * BMFM_NN_COLBLOCK;
        int64_t c1 = c0 + BMFM_NN_COLBLOCK < C ? c0 + BMFM_NN_COLBLOCK : C;
        if (isa >= BMFM_ISA_AVX512)
            param_grad_cols_512(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
        else if (isa >= BMFM_ISA_AVX2)
            param_grad_cols_256(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
        else
            param_grad_cols(dw, db, dout, inp, mean, rstd, N, C, c0, c1);
    }
}

/* ---- optimized: rows over threads, then column blocks over threads ----------- */

void bmfm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int64_t N, int64_t C, float eps)
{
    int wide = bmfm_cpu_isa() >= BMFM_ISA_AVX512;
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        if (wide)
            ln_fwd_row_512(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, C, eps);
        else
            bmfm_layernorm_forward_ref(out + n * C, mean + n, rstd + n, inp + n * C, weight, bias, 1,
                                       C, eps);
    }
}

void bmfm_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int64_t N, int64_t C)
{
    int wide = bmfm_cpu_isa() >= BMFM_ISA_AVX512;
    if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            if (wide)
                ln_bwd_row_512(dinp + n * C, dout + n * C, inp + n * C, weight, mean[n], rstd[n], C);
            else
                bmfm_layernorm_backward_ref(dinp + n * C, NULL, NULL, dout + n * C, inp + n * C,
                                            weight, mean + n, rstd + n, 1, C);
        }
    }
    param_grads(dweight, dbias, dout, inp, mean, rstd, N, C);
}

void bmfm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *scale, int64_t N,
                          int64_t C, float eps)
{
    int wide = bmfm_cpu_isa() >= BMFM_ISA_AVX512;
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t n = 0; n < N; n++) {
        if (wide)
            rms_fwd_row_512(out + n * C, rstd + n, inp + n * C, scale, C, eps);
        else
            bmfm_rmsnorm_forward_ref(out + n * C, rstd + n, inp + n * C, scale, 1, C, eps);
    }
}

void bmfm_rmsnorm_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                           const float *scale, const float *rstd, int64_t N, int64_t C)
{
    int wide = bmfm_cpu_isa() >= BMFM_ISA_AVX512;
    if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            if (wide)
                rms_bwd_row_512(dinp + n * C, dout + n * C, inp + n * C, scale, rstd[n], C);
            else
                bmfm_rmsnorm_backward_ref(dinp + n * C, NULL, dout + n * C, inp + n * C, scale,
                                          rstd + n, 1, C);
        }
    }
    param_grads(dscale, NULL, dout, inp, NULL, rstd, N, C);
}
