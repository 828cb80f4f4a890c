/* activation.c - elementwise activations (SwiGLU, exact GELU, tanh, leaky
 * ReLU) and the residual add, forward and backward (accumulating).
 *
 * Elementwise work has no reductions, so thread count never matters. SwiGLU,
 * the only activation inside the encoder blocks, has AVX-512 and AVX2
 * versions with a vector exp (simd.h) in the same expressions as the
 * reference (within 1e-6 relative, tested). GELU, used only by the heads,
 * keeps libm erff (exact erf GELU, identical to the reference); tanh and
 * leaky ReLU are scalar (pooler and v1 encoder only).
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"
#include "nn/simd.h"

#include <math.h>
#include <string.h>

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

static BMFM_AVX512 void swiglu_fwd_512(float *out, const float *a, const float *b, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f), hi = _mm512_set1_ps(88.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i), vb = _mm512_maskz_loadu_ps(m, b + i);
        __m512 e = bmfm_exp512(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), va), hi));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_div_ps(va, _mm512_add_ps(one, e)), vb));
    }
}

static BMFM_AVX512 void swiglu_bwd_512(float *da, float *db, const float *dout, const float *a,
                                       const float *b, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f), hi = _mm512_set1_ps(88.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 va = _mm512_maskz_loadu_ps(m, a + i), vb = _mm512_maskz_loadu_ps(m, b + i);
        __m512 g = _mm512_maskz_loadu_ps(m, dout + i);
        __m512 e = bmfm_exp512(_mm512_min_ps(_mm512_sub_ps(_mm512_setzero_ps(), va), hi));
        __m512 den = _mm512_add_ps(one, e);
        if (da) {
            __m512 sig = _mm512_div_ps(one, den);
            __m512 f = _mm512_mul_ps(sig, _mm512_add_ps(one, _mm512_mul_ps(va, _mm512_mul_ps(e, sig))));
            __m512 d = _mm512_add_ps(_mm512_maskz_loadu_ps(m, da + i), _mm512_mul_ps(_mm512_mul_ps(g, vb), f));
            _mm512_mask_storeu_ps(da + i, m, d);
        }
        if (db) {
            __m512 d = _mm512_add_ps(_mm512_maskz_loadu_ps(m, db + i), _mm512_mul_ps(g, _mm512_div_ps(va, den)));
            _mm512_mask_storeu_ps(db + i, m, d);
        }
    }
}

/* AVX2 kernels: full vectors, then the tail through a zero-padded stack copy
 * with the same vector code (a value never depends on where it falls in the
 * array; masked moves are slow on AMD). */
static inline BMFM_AVX2 void swiglu_fwd8(float *out, const float *a, const float *b)
{
    const __m256 one = _mm256_set1_ps(1.0f), hi = _mm256_set1_ps(88.0f);
    __m256 va = _mm256_loadu_ps(a), vb = _mm256_loadu_ps(b);
    __m256 e = bmfm_exp256(_mm256_min_ps(_mm256_sub_ps(_mm256_setzero_ps(), va), hi));
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_div_ps(va, _mm256_add_ps(one, e)), vb));
}

static inline BMFM_AVX2 void swiglu_bwd8(float *da, float *db, const float *dout, const float *a,
                                         const float *b)
{
    const __m256 one = _mm256_set1_ps(1.0f), hi = _mm256_set1_ps(88.0f);
    __m256 va = _mm256_loadu_ps(a), vb = _mm256_loadu_ps(b), g = _mm256_loadu_ps(dout);
    __m256 e = bmfm_exp256(_mm256_min_ps(_mm256_sub_ps(_mm256_setzero_ps(), va), hi));
    __m256 den = _mm256_add_ps(one, e);
    if (da) {
        __m256 sig = _mm256_div_ps(one, den);
        __m256 f = _mm256_mul_ps(sig, _mm256_add_ps(one, _mm256_mul_ps(va, _mm256_mul_ps(e, sig))));
        _mm256_storeu_ps(da, _mm256_add_ps(_mm256_loadu_ps(da), _mm256_mul_ps(_mm256_mul_ps(g, vb), f)));
    }
    if (db)
        _mm256_storeu_ps(db, _mm256_add_ps(_mm256_loadu_ps(db), _mm256_mul_ps(g, _mm256_div_ps(va, den))));
}

static BMFM_AVX2 void swiglu_fwd_256(float *out, const float *a, const float *b, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        swiglu_fwd8(out + i, a + i, b + i);
    if (i < n) {
        float ta[8] = {0}, tb[8] = {0}, to[8];
        memcpy(ta, a + i, sizeof(float) * (size_t)(n - i));
        memcpy(tb, b + i, sizeof(float) * (size_t)(n - i));
        swiglu_fwd8(to, ta, tb);
        memcpy(out + i, to, sizeof(float) * (size_t)(n - i));
    }
}

static BMFM_AVX2 void swiglu_bwd_256(float *da, float *db, const float *dout, const float *a,
                                     const float *b, int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        swiglu_bwd8(da ? da + i : NULL, db ? db + i : NULL, dout + i, a + i, b + i);
    if (i < n) {
        size_t k = sizeof(float) * (size_t)(n - i);
        float ta[8] = {0}, tb[8] = {0}, tg[8] = {0}, tda[8] = {0}, tdb[8] = {0};
        memcpy(ta, a + i, k), memcpy(tb, b + i, k), memcpy(tg, dout + i, k);
        if (da)
            memcpy(tda, da + i, k);
        if (db)
            memcpy(tdb, db + i, k);
        swiglu_bwd8(da ? tda : NULL, db ? tdb : NULL, tg, ta, tb);
        if (da)
            memcpy(da + i, tda, k);
        if (db)
            memcpy(db + i, tdb, k);
    }
}

static void swiglu_fwd_chunk(float *out, const float *a, const float *b, int64_t n, bmfm_isa isa)
{
    if (isa >= BMFM_ISA_AVX512)
        swiglu_fwd_512(out, a, b, n);
    else if (isa >= BMFM_ISA_AVX2)
        swiglu_fwd_256(out, a, b, n);
    else
        bmfm_swiglu_forward_ref(out, a, b, n);
}

static void swiglu_bwd_chunk(float *da, float *db, const float *dout, const float *a, const float *b,
                             int64_t n, bmfm_isa isa)
{
    if (isa >= BMFM_ISA_AVX512)
        swiglu_bwd_512(da, db, dout, a, b, n);
    else if (isa >= BMFM_ISA_AVX2)
        swiglu_bwd_256(da, db, dout, a, b, n);
    else
        bmfm_swiglu_backward_ref(da, db, dout, a, b, n);
}

void bmfm_swiglu_forward(float *out, const float *a, const float *b, int64_t n)
{
    bmfm_isa isa = bmfm_cpu_isa();
    CHUNKED(swiglu_fwd_chunk(out + o, a + o, b + o, m, isa));
}

void bmfm_swiglu_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                          int64_t n)
{
    bmfm_isa isa = bmfm_cpu_isa();
    CHUNKED(swiglu_bwd_chunk(da ? da + o : NULL, db ? db + o : NULL, dout + o, a + o, b + o, m, isa));
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
