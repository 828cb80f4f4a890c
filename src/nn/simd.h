/* simd.h - vector math shared by the kernels of src/nn (internal).
 *
 * exp512/exp256: expf for 16/8 lanes, Cephes range reduction
 * (x = n ln2 + r, |r| <= ln2/2, ln2 split in two) and its degree-5 minimax
 * polynomial; error <= ~2 ulp over [-87, 88] (measured by test_nn against
 * libm expf through SwiGLU). Inputs below -104 give 0, above 88.7 give inf;
 * NaN propagates. These functions carry target attributes and are only
 * called from functions compiled for the same target.
 */
#ifndef BMFM_NN_SIMD_H
#define BMFM_NN_SIMD_H

#include "nn/nn_internal.h"

#include <immintrin.h>

#define BMFM_EXP_LO (-104.0f)
#define BMFM_EXP_HI 88.7f

static inline BMFM_AVX512 __m512 bmfm_exp512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(BMFM_EXP_LO)); /* -inf -> 0 below */
    x = _mm512_min_ps(x, _mm512_set1_ps(BMFM_EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n); /* p * 2^n, exact, graceful underflow */
}

static inline BMFM_AVX2 __m256 bmfm_exp256(__m256 x)
{
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f)); /* the 2^n trick below needs n >= -126 */
    x = _mm256_min_ps(x, _mm256_set1_ps(BMFM_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* 2^n via the exponent field; n in [-126, 128): split n = n1 + n2 so 2^n never overflows */
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

#endif
