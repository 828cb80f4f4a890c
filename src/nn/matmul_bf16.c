/* matmul_bf16.c - the bfloat16 forward projection for inference on CPUs with
 * AVX512-BF16 (selected at run time with bmfm_matmul_set_precision).
 *
 * Inputs and weights are rounded to bfloat16 (nearest even) and multiplied
 * with VDPBF16PS, which accumulates pairs of products in float32; the bias
 * is added in float32. Accuracy: each product carries the 2^-9 relative
 * rounding of both operands, so outputs differ from float32 by ~1e-3 of the
 * output scale (measured in test_nn and bench/RESULTS.md (nn kernels)). Backward passes
 * always run in float32. The weight is repacked on every call
 * (OUT x IN, small next to N x OUT x IN). Thread count never changes
 * results: each output is one thread's dot product in a fixed k order.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <immintrin.h>
#include <string.h>

#define BMFM_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,fma")))

#define RB 6   /* rows per register tile */
#define CB 64  /* output columns per register tile (4 vectors) */
#define MBR 128 /* rows per work unit */

static int g_precision = BMFM_MATMUL_FP32;

bmfm_matmul_precision bmfm_matmul_set_precision(bmfm_matmul_precision p)
{
    bmfm_matmul_precision prev = (bmfm_matmul_precision)g_precision;
    if (p == BMFM_MATMUL_BF16 && !bmfm_cpu_has_avx512_bf16())
        p = BMFM_MATMUL_FP32;
    g_precision = (int)p;
    return prev;
}

bmfm_matmul_precision bmfm_matmul_get_precision(void)
{
    return (bmfm_matmul_precision)g_precision;
}

/* float -> bfloat16 bits, round to nearest even (as VCVTNEPS2BF16). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x7FFFFFu))
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Xb[n][0..INp) = bf16(inp[n]), zero padded. */
static BMFM_BF16 void convert_rows(uint16_t *Xb, const float *inp, int64_t n0, int64_t n1,
                                   int64_t IN, int64_t INp)
{
    for (int64_t n = n0; n < n1; n++) {
        const float *x = inp + n * IN;
        uint16_t *d = Xb + n * INp;
        for (int64_t k = 0; k < INp; k += 16) {
            int64_t rem = IN - k;
            __mmask16 m = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1u) : 0;
            __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + k));
            _mm256_storeu_si256((__m256i *)(d + k), (__m256i)v);
        }
    }
}

/* out[r0.., o0..] for rows [r0, r1) and columns [o0, o1) (o1 - o0 <= CB). */
static BMFM_BF16 void bf16_block(float *out, const float *bias, const uint16_t *Xb, int64_t INp,
                                 const uint16_t *Wp, int64_t OUTp, int64_t r0, int64_t r1,
                                 int64_t o0, int64_t o1, int64_t OUT)
{
    int64_t K2 = INp / 2;
    __mmask16 km[4];
    for (int v = 0; v < 4; v++) {
        int64_t rem = o1 - o0 - 16 * v;
        km[v] = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1u) : 0;
    }
    for (int64_t rb = r0; rb < r1; rb += RB) {
        const uint32_t *xr[RB];
        _Pragma("GCC unroll 6") for (int r = 0; r < RB; r++)
            xr[r] = (const uint32_t *)(Xb + (rb + r < r1 ? rb + r : r1 - 1) * INp);
        __m512 acc[RB][4];
        _Pragma("GCC unroll 6") for (int r = 0; r < RB; r++)
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                acc[r][v] = _mm512_setzero_ps();
        const uint16_t *wp = Wp + o0 * 2;
        for (int64_t k2 = 0; k2 < K2; k2++) {
            __m512bh w[4];
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                w[v] = (__m512bh)_mm512_loadu_si512(wp + k2 * OUTp * 2 + 32 * v);
            _Pragma("GCC unroll 6") for (int r = 0; r < RB; r++) {
                __m512bh xb = (__m512bh)_mm512_set1_epi32((int)xr[r][k2]);
                _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                    acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xb, w[v]);
            }
        }
        for (int r = 0; r < RB && rb + r < r1; r++)
            for (int v = 0; v < 4; v++) {
                if (!km[v])
                    continue;
                __m512 y = acc[r][v];
                if (bias)
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(km[v], bias + o0 + 16 * v));
                _mm512_mask_storeu_ps(out + (rb + r) * OUT + o0 + 16 * v, km[v], y);
            }
    }
}

int bmfm_matmul_forward_bf16(float *out, const float *inp, const float *weight, const float *bias,
                             int64_t N, int64_t IN, int64_t OUT)
{
    if (!bmfm_cpu_has_avx512_bf16() || N <= 0 || IN <= 0 || OUT <= 0)
        return -1;
    /* OUTp: whole register tiles, so weight loads never leave the buffer */
    int64_t INp = (IN + 15) & ~(int64_t)15, OUTp = (OUT + CB - 1) / CB * CB;
    uint16_t *Xb = bmfm_nn_scratch(0, sizeof(uint16_t) * (size_t)(N * INp));
    uint16_t *Wp = bmfm_nn_scratch(1, sizeof(uint16_t) * (size_t)(INp * OUTp));
    if (!Xb || !Wp) {
        bmfm_nn_scratch_done(0, Xb);
        bmfm_nn_scratch_done(1, Wp);
        return -1;
    }
    /* Wp[k2][o][2] = bf16(W[o][2 k2 .. 2 k2 + 1]), zero padded (the buffer
     * is reused: the padding is cleared here) */
    memset(Wp, 0, sizeof(uint16_t) * (size_t)(INp * OUTp));
#pragma omp parallel for schedule(static) if (OUT * IN > BMFM_NN_PAR_MIN)
    for (int64_t o = 0; o < OUT; o++)
        for (int64_t k = 0; k < IN; k++)
            Wp[(k / 2) * OUTp * 2 + o * 2 + (k & 1)] = to_bf16(weight[o * IN + k]);
    int64_t tr = (N + MBR - 1) / MBR, tc = OUTp / CB;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < tr; t++)
            convert_rows(Xb, inp, t * MBR, (t + 1) * MBR < N ? (t + 1) * MBR : N, IN, INp);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tr * tc; t++) {
            int64_t r0 = (t / tc) * MBR, o0 = (t % tc) * CB;
            int64_t r1 = r0 + MBR < N ? r0 + MBR : N, o1 = o0 + CB < OUT ? o0 + CB : OUT;
            bf16_block(out, bias, Xb, INp, Wp, OUTp, r0, r1, o0, o1, OUT);
        }
    }
    bmfm_nn_scratch_done(0, Xb);
    bmfm_nn_scratch_done(1, Wp);
    return 0;
}
