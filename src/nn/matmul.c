/* matmul.c - linear layers (PyTorch weight layout [OUT, IN]), forward and
 * backward with accumulate semantics.
 *
 * Optimized paths: the forward, dinp and dweight go through gemm.c (own
 * AVX-512/AVX2 kernels whose rows do not depend on the batch around them and
 * whose dweight chains do not depend on the tiling; bf16 forward on request,
 * matmul_bf16.c). Our dweight kernel replaced OpenBLAS's because with the
 * AVX2 kernels that OPENBLAS_CORETYPE=Haswell selects on AVX-512 CPUs
 * OpenBLAS took twice as long as our dinp for the same FLOPs (docs/training.md).
 * On pre-AVX2 CPUs everything runs through
 * OpenBLAS cblas_sgemm, called single-threaded on fixed tiles that OpenMP
 * distributes. Debian's OpenBLAS is the pthread
 * build, with a second thread pool whose idle threads spin (sched_yield)
 * for ~2^28 cycles after each call and take cores from the OpenMP kernels
 * that follow (attention, norms); driving it from OpenMP keeps one pool in
 * the process, and the fixed tiles and token chunks make the results
 * independent of the thread count by construction.
 * The `_ref` versions are the plain triple loops (the specification).
 */
#include "nn/nn.h"
#include "base/blas_threads.h"
#include "nn/gemm.h"
#include "nn/nn_internal.h"

#include <cblas.h>

void bmfm_matmul_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                             int64_t N, int64_t IN, int64_t OUT)
{
    for (int64_t n = 0; n < N; n++) {
        const float *x = inp + n * IN;
        for (int64_t o = 0; o < OUT; o++) {
            const float *w = weight + o * IN;
            float acc = bias ? bias[o] : 0.0f;
            for (int64_t i = 0; i < IN; i++)
                acc += x[i] * w[i];
            out[n * OUT + o] = acc;
        }
    }
}

void bmfm_matmul_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int64_t N, int64_t IN,
                              int64_t OUT)
{
    for (int64_t n = 0; n < N; n++) {
        const float *g = dout + n * OUT;
        if (dinp) {
            for (int64_t i = 0; i < IN; i++) {
                float acc = 0.0f;
                for (int64_t o = 0; o < OUT; o++)
                    acc += g[o] * weight[o * IN + i];
                dinp[n * IN + i] += acc;
            }
        }
    }
    if (dweight) {
        for (int64_t o = 0; o < OUT; o++)
            for (int64_t i = 0; i < IN; i++) {
                float acc = 0.0f;
                for (int64_t n = 0; n < N; n++)
                    acc += dout[n * OUT + o] * inp[n * IN + i];
                dweight[o * IN + i] += acc;
            }
    }
    if (dbias) {
        for (int64_t o = 0; o < OUT; o++) {
            float acc = 0.0f;
            for (int64_t n = 0; n < N; n++)
                acc += dout[n * OUT + o];
            dbias[o] += acc;
        }
    }
}

/* ---- optimized: OpenMP over fixed tiles, single-threaded OpenBLAS inside ---- */

/* Tile sizes of the OpenBLAS path (pre-AVX2 CPUs; fixed, so results never
 * depend on the thread count). Output
 * tiles of MB x NB for the forward and dinp; dweight splits the token
 * dimension into KC-chunks taken in order, with OB x IB tiles in parallel
 * inside each chunk. */
#define MB 256
#define NB 384
#define KC 1024
#define OB 256
#define IB 192

static int64_t cdiv(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* C[M,N] (ldc) = A[M,K] (lda) @ B^T or B, row-major, over MB x NB tiles. */
static void gemm_tiled(int transb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                       const float *B, int64_t ldb, float beta, float *Cm, int64_t ldc)
{
    int64_t tm = cdiv(M, MB), tn = cdiv(N, NB);
#pragma omp parallel for schedule(dynamic, 1) if (tm * tn > 1 && M * N * K > (1 << 21))
    for (int64_t t = 0; t < tm * tn; t++) {
        int64_t m0 = (t / tn) * MB, n0 = (t % tn) * NB;
        int64_t m = M - m0 < MB ? M - m0 : MB, n = N - n0 < NB ? N - n0 : NB;
        const float *bt = transb ? B + n0 * ldb : B + n0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (blasint)m,
                    (blasint)n, (blasint)K, 1.0f, A + m0 * lda, (blasint)lda, bt, (blasint)ldb, beta,
                    Cm + m0 * ldc + n0, (blasint)ldc);
    }
}

void bmfm_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int64_t N, int64_t IN, int64_t OUT)
{
    if (N <= 0 || OUT <= 0)
        return;
    if (bmfm_matmul_get_precision() == BMFM_MATMUL_BF16 &&
        bmfm_matmul_forward_bf16(out, inp, weight, bias, N, IN, OUT) == 0)
        return;
    if (IN > 0 && bmfm_gemm_invariant(out, inp, weight, bias, N, OUT, IN, 1, 0) == 0)
        return;
    float beta = 0.0f;
    if (bias || IN <= 0) {
#pragma omp parallel for schedule(static) if (N * OUT > BMFM_NN_PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OUT; o++)
                out[n * OUT + o] = bias ? bias[o] : 0.0f;
        beta = 1.0f;
    }
    if (IN <= 0)
        return;
    bmfm_blas_threads_begin();
    gemm_tiled(1, N, OUT, IN, inp, IN, weight, IN, beta, out, OUT);
    bmfm_blas_threads_end();
}

/* dbias[o] += sum_n dout[n, o], rows in order; threads own column blocks. */
static void colsum_accumulate(float *dbias, const float *dout, int64_t N, int64_t OUT)
{
    int64_t nblk = cdiv(OUT, BMFM_NN_COLBLOCK);
#pragma omp parallel for schedule(static) if (N * OUT > BMFM_NN_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t o0 = blk * BMFM_NN_COLBLOCK;
        int64_t o1 = o0 + BMFM_NN_COLBLOCK < OUT ? o0 + BMFM_NN_COLBLOCK : OUT;
        float acc[BMFM_NN_COLBLOCK] = {0};
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = o0; o < o1; o++)
                acc[o - o0] += dout[n * OUT + o];
        for (int64_t o = o0; o < o1; o++)
            dbias[o] += acc[o - o0];
    }
}

void bmfm_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int64_t N, int64_t IN, int64_t OUT)
{
    if (N <= 0 || IN <= 0 || OUT <= 0)
        return;
    /* OpenBLAS (pinned to one thread inside our tiles) only where our GEMMs
     * decline: pre-AVX2 CPUs or no memory for their packing buffers */
    if (dinp && bmfm_gemm_invariant(dinp, dout, weight, NULL, N, IN, OUT, 0, 1) != 0) {
        bmfm_blas_threads_begin();
        gemm_tiled(0, N, IN, OUT, dout, OUT, weight, IN, 1.0f, dinp, IN);
        bmfm_blas_threads_end();
    }
    if (dweight && bmfm_gemm_tn_accumulate(dweight, dout, inp, OUT, IN, N) != 0) {
        bmfm_blas_threads_begin();
        int64_t to = cdiv(OUT, OB), ti = cdiv(IN, IB);
        for (int64_t k0 = 0; k0 < N; k0 += KC) { /* token chunks in order */
            int64_t kc = N - k0 < KC ? N - k0 : KC;
#pragma omp parallel for schedule(dynamic, 1) if (to * ti > 1 && kc * OUT * IN > (1 << 21))
            for (int64_t t = 0; t < to * ti; t++) {
                int64_t o0 = (t / ti) * OB, i0 = (t % ti) * IB;
                int64_t mo = OUT - o0 < OB ? OUT - o0 : OB, mi = IN - i0 < IB ? IN - i0 : IB;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)mo, (blasint)mi,
                            (blasint)kc, 1.0f, dout + k0 * OUT + o0, (blasint)OUT,
                            inp + k0 * IN + i0, (blasint)IN, 1.0f, dweight + o0 * IN + i0,
                            (blasint)IN);
            }
        }
        bmfm_blas_threads_end();
    }
    if (dbias)
        colsum_accumulate(dbias, dout, N, OUT);
}
