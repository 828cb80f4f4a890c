/* activation.c - elementwise activations (SwiGLU, exact GELU, tanh, leaky
 * ReLU) and the residual add, forward and backward (accumulating).
 *
 * Elementwise work has no reductions, so thread count never matters; each
 * value is computed by the same expression as the `_ref` version.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <math.h>

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

/* ---- reference ------------------------------------------------------------ */

/* e = exp(-a), clamped so that e stays finite (silu(a) is ~0 there anyway);
 * 1 - sigmoid(a) is computed as e * sigmoid(a), without cancellation. */
static inline float exp_neg_clamped(float a)
{
    return expf(a > -88.0f ? -a : 88.0f);
}

void bmfm_swiglu_forward_ref(float *out, const float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] / (1.0f + exp_neg_clamped(a[i])) * b[i];
}

void bmfm_swiglu_backward_ref(float *da, float *db, const float *dout, const float *a,
                              const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float e = exp_neg_clamped(a[i]);
        float sig = 1.0f / (1.0f + e);
        if (da)
            da[i] += dout[i] * b[i] * (sig * (1.0f + a[i] * (e * sig)));
        if (db)
            db[i] += dout[i] * (a[i] / (1.0f + e));
    }
}

void bmfm_gelu_forward_ref(float *out, const float *inp, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * INV_SQRT2));
}

void bmfm_gelu_backward_ref(float *dinp, const float *dout, const float *inp, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * INV_SQRT2));
        float pdf = INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

/* ---- optimized ------------------------------------------------------------ */

#define PAR_FOR _Pragma("omp parallel for schedule(static) if (n > BMFM_NN_PAR_MIN)")
#define CHUNK 4096

/* The elementwise kernels run the reference loop over fixed chunks. */
#define CHUNKED(call_ref)                                                                          \
    do {                                                                                           \
        int64_t nch = (n + CHUNK - 1) / CHUNK;                                                     \
        PAR_FOR for (int64_t ch = 0; ch < nch; ch++)                                               \
        {                                                                                          \
            int64_t o = ch * CHUNK, m = n - o < CHUNK ? n - o : CHUNK;                             \
            call_ref;                                                                              \
        }                                                                                          \
    } while (0)

void bmfm_swiglu_forward(float *out, const float *a, const float *b, int64_t n)
{
    CHUNKED(bmfm_swiglu_forward_ref(out + o, a + o, b + o, m));
}

void bmfm_swiglu_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                          int64_t n)
{
    CHUNKED(bmfm_swiglu_backward_ref(da ? da + o : NULL, db ? db + o : NULL, dout + o, a + o,
                                     b + o, m));
}

void bmfm_gelu_forward(float *out, const float *inp, int64_t n)
{
    CHUNKED(bmfm_gelu_forward_ref(out + o, inp + o, m));
}

void bmfm_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n)
{
    CHUNKED(bmfm_gelu_backward_ref(dinp + o, dout + o, inp + o, m));
}

void bmfm_tanh_forward(float *out, const float *inp, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = tanhf(inp[i]);
}

void bmfm_tanh_backward(float *dinp, const float *dout, const float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dinp[i] += dout[i] * fmaf(-out[i], out[i], 1.0f); /* no cancellation near |y| = 1 */
}

void bmfm_leaky_relu_forward(float *out, const float *inp, int64_t n, float slope)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : inp[i] * slope;
}

/* As torch: the gradient at exactly 0 is the slope. */
void bmfm_leaky_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n, float slope)
{
    for (int64_t i = 0; i < n; i++)
        dinp[i] += inp[i] > 0.0f ? dout[i] : dout[i] * slope;
}

void bmfm_add_inplace(float *out, const float *inp, int64_t n)
{
    CHUNKED(for (int64_t i = 0; i < m; i++) out[o + i] += inp[o + i]);
}
