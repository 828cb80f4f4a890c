/* gemm.c - a row-position-invariant float32 GEMM for the projections
 * (forward and input gradient) on AVX-512 and AVX2 CPUs (others: OpenBLAS).
 *
 * Why not OpenBLAS here: its kernels round a row's dot products differently
 * depending on where the row falls in the micro-tiles and on M (small M
 * takes other code paths; with the Haswell kernels almost every offset
 * differs). A cell's outputs would then change with the batch it is in.
 * Here every output element is one FMA chain over k = 0..K-1 in order,
 * started from zero, whatever its row, the batch size, the tiling or the
 * thread; the bias (or the accumulated gradient) is added last. So a cell
 * gets the same bits alone or in any batch, with any number of threads.
 *
 * B is repacked into panels of 64 columns ([N/64][K][64], zero padded);
 * a register tile is 6 rows x 64 columns (24 accumulators) with AVX-512,
 * 4 x 16 with AVX2; both give the same bits.
 */
#include "nn/gemm.h"

#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <immintrin.h>
#include <string.h>

#define GR 6   /* rows per register tile */
#define GC 64  /* columns per panel */
#define GMB 96 /* rows per work unit (a multiple of GR) */

/* rows [r0, r1) x panel p: C = (add ? C : 0) + A @ B (+ bias) */
static BMFM_AVX512 void gemm_panel(float *Cm, int64_t ldc, const float *A, int64_t lda,
                                   const float *Bp, int64_t K, int64_t r0, int64_t r1, int64_t c0,
                                   int64_t c1, const float *bias, int add)
{
    __mmask16 km[4];
    for (int v = 0; v < 4; v++) {
        int64_t rem = c1 - c0 - 16 * v;
        km[v] = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1u) : 0;
    }
    for (int64_t rb = r0; rb < r1; rb += GR) {
        const float *ar[GR];
        _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++)
            ar[r] = A + (rb + r < r1 ? rb + r : r1 - 1) * lda; /* tail rows repeat, not stored */
        __m512 acc[GR][4];
        _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++)
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                acc[r][v] = _mm512_setzero_ps();
        const float *bp = Bp;
        for (int64_t k = 0; k < K; k++, bp += GC) {
            __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
            __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);
            _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) {
                __m512 a = _mm512_set1_ps(ar[r][k]);
                acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
            }
        }
        for (int r = 0; r < GR && rb + r < r1; r++) {
            float *crow = Cm + (rb + r) * ldc + c0;
            for (int v = 0; v < 4; v++) {
                if (!km[v])
                    continue;
                __m512 y = acc[r][v];
                if (add)
                    y = _mm512_add_ps(_mm512_maskz_loadu_ps(km[v], crow + 16 * v), y);
                else if (bias)
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(km[v], bias + c0 + 16 * v));
                _mm512_mask_storeu_ps(crow + 16 * v, km[v], y);
            }
        }
    }
}

/* The AVX2 tile: 4 rows x 16 columns of the panel, same FMA chains (so the
 * same bits as the AVX-512 tile). */
static BMFM_AVX2 void gemm_panel_avx2(float *Cm, int64_t ldc, const float *A, int64_t lda,
                                      const float *Bp, int64_t K, int64_t r0, int64_t r1,
                                      int64_t c0, int64_t c1, const float *bias, int add)
{
    for (int64_t cb = 0; cb < c1 - c0; cb += 16) {
        int64_t nc = c1 - c0 - cb < 16 ? c1 - c0 - cb : 16;
        for (int64_t rb = r0; rb < r1; rb += 4) {
            const float *ar[4];
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
                ar[r] = A + (rb + r < r1 ? rb + r : r1 - 1) * lda;
            __m256 acc[4][2];
            _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)
                acc[r][0] = _mm256_setzero_ps(), acc[r][1] = _mm256_setzero_ps();
            const float *bp = Bp + cb;
            for (int64_t k = 0; k < K; k++, bp += GC) {
                __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
                _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
                    __m256 a = _mm256_set1_ps(ar[r][k]);
                    acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
                }
            }
            for (int r = 0; r < 4 && rb + r < r1; r++) {
                float tmp[16];
                _mm256_storeu_ps(tmp, acc[r][0]);
                _mm256_storeu_ps(tmp + 8, acc[r][1]);
                float *crow = Cm + (rb + r) * ldc + c0 + cb;
                for (int64_t c = 0; c < nc; c++) {
                    if (add)
                        crow[c] = crow[c] + tmp[c];
                    else
                        crow[c] = bias ? tmp[c] + bias[c0 + cb + c] : tmp[c];
                }
            }
        }
    }
}

int bmfm_gemm_invariant(float *Cm, const float *A, const float *B, const float *bias, int64_t M,
                        int64_t N, int64_t K, int transb, int add)
{
    bmfm_isa isa = bmfm_cpu_isa();
    if (isa < BMFM_ISA_AVX2)
        return -1;
    if (M <= 0 || N <= 0)
        return 0;
    int64_t np = (N + GC - 1) / GC;
    float *Bp = bmfm_nn_scratch(0, sizeof(float) * (size_t)(np * (K > 0 ? K : 1) * GC));
    if (!Bp)
        return -1;
    /* panel p, row k: B[k][p*64 .. p*64+63] with B = W^T (transb) or W */
#pragma omp parallel for schedule(static) if (N * K > BMFM_NN_PAR_MIN)
    for (int64_t p = 0; p < np; p++) {
        float *dst = Bp + p * K * GC;
        int64_t c0 = p * GC, nc = N - c0 < GC ? N - c0 : GC;
        if (nc < GC) /* the zero padding of the last panel (the buffer is reused) */
            for (int64_t k = 0; k < K; k++)
                memset(dst + k * GC + nc, 0, sizeof(float) * (size_t)(GC - nc));
        if (transb) {
            for (int64_t c = 0; c < nc; c++)
                for (int64_t k = 0; k < K; k++)
                    dst[k * GC + c] = B[(c0 + c) * K + k];
        } else {
            for (int64_t k = 0; k < K; k++)
                memcpy(dst + k * GC, B + k * N + c0, sizeof(float) * (size_t)nc);
        }
    }
    int64_t tm = (M + GMB - 1) / GMB;
#pragma omp parallel for schedule(dynamic, 1) if (tm * np > 1 && M * N * K > (1 << 20))
    for (int64_t t = 0; t < tm * np; t++) {
        int64_t r0 = (t / np) * GMB, p = t % np;
        int64_t r1 = r0 + GMB < M ? r0 + GMB : M;
        int64_t c0 = p * GC, c1 = c0 + GC < N ? c0 + GC : N;
        if (isa >= BMFM_ISA_AVX512)
            gemm_panel(Cm, N, A, K, Bp + p * K * GC, K, r0, r1, c0, c1, bias, add);
        else
            gemm_panel_avx2(Cm, N, A, K, Bp + p * K * GC, K, r0, r1, c0, c1, bias, add);
    }
    bmfm_nn_scratch_done(0, Bp);
    return 0;
}

/* ---- double, C = A B^T: the pairwise distances of src/eval (silhouette).
 * B is packed into panels of DC columns ([K][DC], zero padded); a register
 * tile is GR rows x DC columns (24 accumulators of 8 doubles). */
#define DC 32

static BMFM_AVX512 void gemm_f64_panel(double *Cm, int64_t ldc, const double *A, int64_t lda, const double *Bp,
                                       int64_t K, int64_t M, int64_t c0, int64_t nc)
{
    __mmask8 km[4];
    for (int v = 0; v < 4; v++) {
        int64_t rem = nc - 8 * v;
        km[v] = rem >= 8 ? (__mmask8)0xFF : rem > 0 ? (__mmask8)((1u << rem) - 1u) : 0;
    }
    for (int64_t rb = 0; rb < M; rb += GR) {
        const double *ar[GR];
        _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++)
            ar[r] = A + (rb + r < M ? rb + r : M - 1) * lda; /* tail rows repeat, not stored */
        __m512d acc[GR][4];
        _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++)
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                acc[r][v] = _mm512_setzero_pd();
        const double *bp = Bp;
        for (int64_t k = 0; k < K; k++, bp += DC) {
            __m512d b0 = _mm512_load_pd(bp), b1 = _mm512_load_pd(bp + 8);
            __m512d b2 = _mm512_load_pd(bp + 16), b3 = _mm512_load_pd(bp + 24);
            _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) {
                __m512d a = _mm512_set1_pd(ar[r][k]);
                acc[r][0] = _mm512_fmadd_pd(a, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_pd(a, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_pd(a, b2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_pd(a, b3, acc[r][3]);
            }
        }
        for (int r = 0; r < GR && rb + r < M; r++) {
            double *crow = Cm + (rb + r) * ldc + c0;
            for (int v = 0; v < 4; v++)
                if (km[v])
                    _mm512_mask_storeu_pd(crow + 8 * v, km[v], acc[r][v]);
        }
    }
}

int bmfm_gemm_f64_nt(double *Cm, int64_t ldc, const double *A, int64_t lda, const double *B, int64_t ldb,
                     int64_t M, int64_t N, int64_t K)
{
    if (bmfm_cpu_isa() < BMFM_ISA_AVX512)
        return -1;
    if (M <= 0 || N <= 0)
        return 0;
    int64_t np = (N + DC - 1) / DC;
    double *Bp = bmfm_nn_scratch(0, sizeof(double) * (size_t)(np * (K > 0 ? K : 1) * DC));
    if (!Bp)
        return -1;
    for (int64_t p = 0; p < np; p++) {
        double *dst = Bp + p * K * DC;
        int64_t c0 = p * DC, nc = N - c0 < DC ? N - c0 : DC;
        for (int64_t k = 0; k < K; k++) {
            for (int64_t c = 0; c < nc; c++)
                dst[k * DC + c] = B[(c0 + c) * ldb + k];
            for (int64_t c = nc; c < DC; c++)
                dst[k * DC + c] = 0.0;
        }
    }
    for (int64_t p = 0; p < np; p++) {
        int64_t c0 = p * DC;
        gemm_f64_panel(Cm, ldc, A, lda, Bp + p * K * DC, K, M, c0, N - c0 < DC ? N - c0 : DC);
    }
    bmfm_nn_scratch_done(0, Bp);
    return 0;
}
