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
#include <omp.h>
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

/* ---- float, C += A^T B: the weight gradients of the linear layers.
 * A is [K][M] (dout), B is [K][N] (the layer input), C is [M][N] (dW), all
 * row-major and contiguous; K is the token count. Every element is one
 * k-ordered FMA chain that starts from its value in C, so the result does
 * not depend on the tiling or the thread count, and the AVX-512 and AVX2
 * tiles give the same bits.
 *
 * Each thread owns an equal share of C's GR-row strips and goes through K
 * in chunks of TKC tokens. Per chunk it packs B into panels of GC columns
 * ([N/GC][kc][GC]) in its own buffer, then for each block of up to TM of
 * its rows packs their values of A into strips of GR rows ([TM/GR][kc][GR]:
 * a tile's broadcasts are consecutive) and runs the block's register tiles
 * over each panel; a tile loads its accumulators from C at the start of a
 * chunk and stores them at its end. Alternatives measured (bench/RESULTS.md,
 * 2026-12-08): A and B read in place (strided rows, a new page every few
 * tokens) 45-54 % of the sgemm peak; one packed copy per chunk shared by the
 * threads, with barriers, 80 % on one thread but 52 % on two; B packed again
 * for every block of rows, a quarter of the time in packing. */
#define TM 96   /* rows per block (a multiple of GR) */
#define TKC 128 /* tokens per chunk: a panel's chunk is 32 KB, in L1 */

/* rows [r0, r1) of panel p; Ap: the strip of row r0, Bp: the panel, kc tokens */
static BMFM_AVX512 void gemm_tn_unit(float *Cm, int64_t ldc, const float *Ap, const float *Bp, int64_t kc,
                                     int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    __mmask16 km[4];
    for (int v = 0; v < 4; v++) {
        int64_t rem = c1 - c0 - 16 * v;
        km[v] = rem >= 16 ? (__mmask16)0xFFFF : rem > 0 ? (__mmask16)((1u << rem) - 1u) : 0;
    }
    for (int64_t rb = r0; rb < r1; rb += GR, Ap += kc * GR) {
        __m512 acc[GR][4];
        _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) {
            int64_t row = rb + r < r1 ? rb + r : r1 - 1; /* tail rows repeat, not stored */
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                acc[r][v] = _mm512_maskz_loadu_ps(km[v], Cm + row * ldc + c0 + 16 * v);
        }
        const float *ap = Ap, *bp = Bp;
        for (int64_t k = 0; k < kc; k++, ap += GR, bp += GC) {
            __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
            __m512 b2 = _mm512_load_ps(bp + 32), b3 = _mm512_load_ps(bp + 48);
            _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) {
                __m512 a = _mm512_set1_ps(ap[r]);
                acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
                acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
                acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
            }
        }
        /* unrolled with a test per row: a loop bound of rows left made gcc
         * keep the accumulators in memory across the k loop (half speed) */
        _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) if (rb + r < r1)
            _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                _mm512_mask_storeu_ps(Cm + (rb + r) * ldc + c0 + 16 * v, km[v], acc[r][v]);
    }
}

/* The AVX2 tile: GR rows x 16 columns (12 accumulators), the panel in four
 * passes; same chains, same bits. */
static BMFM_AVX2 void gemm_tn_unit_avx2(float *Cm, int64_t ldc, const float *Ap, const float *Bp, int64_t kc,
                                        int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    for (int64_t cb = c0; cb < c1; cb += 16) {
        __m256i lm[2];
        for (int v = 0; v < 2; v++) {
            int64_t rem = c1 - cb - 8 * v;
            lm[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem < 8 ? (rem > 0 ? rem : 0) : 8)),
                                       _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        }
        const float *as = Ap;
        for (int64_t rb = r0; rb < r1; rb += GR, as += kc * GR) {
            __m256 acc[GR][2];
            _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) {
                int64_t row = rb + r < r1 ? rb + r : r1 - 1;
                _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++)
                    acc[r][v] = _mm256_maskload_ps(Cm + row * ldc + cb + 8 * v, lm[v]);
            }
            const float *ap = as, *bp = Bp + (cb - c0);
            for (int64_t k = 0; k < kc; k++, ap += GR, bp += GC) {
                __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
                _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) {
                    __m256 a = _mm256_set1_ps(ap[r]);
                    acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
                }
            }
            _Pragma("GCC unroll 6") for (int r = 0; r < GR; r++) if (rb + r < r1)
                _Pragma("GCC unroll 2") for (int v = 0; v < 2; v++)
                    _mm256_maskstore_ps(Cm + (rb + r) * ldc + cb + 8 * v, lm[v], acc[r][v]);
        }
    }
}

/* Ap[s][k][0..GR) = A[k0 + k][r0 + s*GR ..] for the rows below r1 (zero
 * past it), strips s of the rows [r0, r1). A strip's rows are stored 8
 * floats at a time: the two extra floats land in the next row (written
 * next) or in the buffer's slack. */
static BMFM_AVX512 void pack_a_512(float *Ap, const float *A, int64_t M, int64_t k0, int64_t kc, int64_t r0,
                                   int64_t r1)
{
    for (int64_t c = r0; c < r1; c += GR, Ap += kc * GR) {
        __mmask8 m = r1 - c >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (r1 - c)) - 1u);
        const float *src = A + k0 * M + c;
        float *dst = Ap;
        for (int64_t k = 0; k < kc; k++, dst += GR, src += M)
            _mm256_storeu_ps(dst, _mm256_maskz_loadu_ps(m, src));
    }
}

/* Bp[p][k][0..GC) = B[k0 + k][p*GC ..] (zero past N). */
static BMFM_AVX512 void pack_b_512(float *Bp, const float *B, int64_t N, int64_t k0, int64_t kc)
{
    int64_t np = (N + GC - 1) / GC, nl = N - (np - 1) * GC; /* columns of the last panel */
    __mmask16 ml[4];
    for (int v = 0; v < 4; v++)
        ml[v] = nl - 16 * v >= 16 ? (__mmask16)0xFFFF : nl > 16 * v ? (__mmask16)((1u << (nl - 16 * v)) - 1u) : 0;
    for (int64_t k = 0; k < kc; k++) {
        const float *src = B + (k0 + k) * N;
        for (int64_t p = 0; p < np; p++) {
            float *dst = Bp + (p * kc + k) * GC;
            if (p < np - 1) {
                _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                    _mm512_store_ps(dst + 16 * v, _mm512_loadu_ps(src + p * GC + 16 * v));
            } else {
                _Pragma("GCC unroll 4") for (int v = 0; v < 4; v++)
                    _mm512_store_ps(dst + 16 * v, _mm512_maskz_loadu_ps(ml[v], src + p * GC + 16 * v));
            }
        }
    }
}

/* The same packing in plain C (the AVX2 path; gcc vectorizes the B part). */
static BMFM_AVX2 void pack_a_avx2(float *Ap, const float *A, int64_t M, int64_t k0, int64_t kc, int64_t r0,
                                  int64_t r1)
{
    for (int64_t c = r0; c < r1; c += GR, Ap += kc * GR)
        for (int64_t k = 0; k < kc; k++)
            for (int r = 0; r < GR; r++)
                Ap[k * GR + r] = c + r < r1 ? A[(k0 + k) * M + c + r] : 0.0f;
}

static BMFM_AVX2 void pack_b_avx2(float *Bp, const float *B, int64_t N, int64_t k0, int64_t kc)
{
    int64_t np = (N + GC - 1) / GC;
    for (int64_t k = 0; k < kc; k++)
        for (int64_t p = 0; p < np; p++) {
            float *dst = Bp + (p * kc + k) * GC;
            const float *src = B + (k0 + k) * N + p * GC;
            int64_t nc = N - p * GC < GC ? N - p * GC : GC;
            for (int64_t c = 0; c < GC; c++)
                dst[c] = c < nc ? src[c] : 0.0f;
        }
}

int bmfm_gemm_tn_accumulate(float *Cm, const float *A, const float *B, int64_t M, int64_t N, int64_t K)
{
    bmfm_isa isa = bmfm_cpu_isa();
    if (isa < BMFM_ISA_AVX2)
        return -1;
    if (M <= 0 || N <= 0 || K <= 0)
        return 0;
    int64_t np = (N + GC - 1) / GC, ns = (M + GR - 1) / GR, kmax = K < TKC ? K : TKC;
    int par = ns > 1 && M * N * K > (1 << 20);
    int64_t nt = par ? omp_get_max_threads() : 1;
    /* floats of one thread's buffer: B panels, A strips (+ the 2 floats of
     * slack), rounded to a cache line */
    int64_t per = (kmax * (np * GC + TM) + 2 + 15) & ~(int64_t)15;
    float *buf = bmfm_nn_scratch(0, sizeof(float) * (size_t)(nt * per));
    if (!buf)
        return -1;
    int wide = isa >= BMFM_ISA_AVX512;
    void (*pack_b)(float *, const float *, int64_t, int64_t, int64_t) = wide ? pack_b_512 : pack_b_avx2;
    void (*pack_a)(float *, const float *, int64_t, int64_t, int64_t, int64_t, int64_t) =
        wide ? pack_a_512 : pack_a_avx2;
    void (*unit)(float *, int64_t, const float *, const float *, int64_t, int64_t, int64_t, int64_t, int64_t) =
        wide ? gemm_tn_unit : gemm_tn_unit_avx2;
#pragma omp parallel if (par)
    {
        /* thread id owns the strips [s0, s1): one pass over B per thread and
         * chunk instead of one per block of rows (which read B 12 times for
         * the QKV gradient: a quarter of the time) */
        int64_t id = par ? omp_get_thread_num() : 0, n = par ? omp_get_num_threads() : 1;
        int64_t s0 = ns * id / n, s1 = ns * (id + 1) / n;
        int64_t m0 = s0 * GR, m1 = s1 * GR < M ? s1 * GR : M;
        float *Bp = buf + id * per, *Ap = Bp + kmax * np * GC;
        for (int64_t k0 = 0; k0 < K && m0 < m1; k0 += TKC) {
            int64_t kc = K - k0 < TKC ? K - k0 : TKC;
            pack_b(Bp, B, N, k0, kc);
            for (int64_t r0 = m0; r0 < m1; r0 += TM) {
                int64_t r1 = r0 + TM < m1 ? r0 + TM : m1;
                pack_a(Ap, A, M, k0, kc, r0, r1);
                for (int64_t p = 0; p < np; p++) {
                    int64_t c0 = p * GC, c1 = c0 + GC < N ? c0 + GC : N;
                    unit(Cm, N, Ap, Bp + p * kc * GC, kc, r0, r1, c0, c1);
                }
            }
        }
    }
    bmfm_nn_scratch_done(0, buf);
    return 0;
}
