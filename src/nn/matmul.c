/* matmul.c - linear layers (PyTorch weight layout [OUT, IN]), forward and
 * backward with accumulate semantics.
 *
 * The optimized path is OpenBLAS cblas_sgemm. Its level-3 threading splits
 * the output (M, N), never the inner K dimension, so results do not depend on
 * its thread count. OpenBLAS (Debian: the pthread build) keeps its own thread
 * pool independent of OpenMP; we call it only from serial code, never inside
 * an OpenMP region, so the two pools never run at once (see bmfm_nn_threads).
 * The `_ref` versions are the plain triple loops (the specification).
 */
#include "nn/nn.h"
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

void bmfm_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int64_t N, int64_t IN, int64_t OUT)
{
    if (N <= 0 || OUT <= 0)
        return;
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static) if (N * OUT > BMFM_NN_PAR_MIN)
        for (int64_t n = 0; n < N; n++)
            for (int64_t o = 0; o < OUT; o++)
                out[n * OUT + o] = bias[o];
        beta = 1.0f;
    }
    if (IN <= 0) {
        if (!bias)
            for (int64_t k = 0; k < N * OUT; k++)
                out[k] = 0.0f;
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)OUT, (blasint)IN,
                1.0f, inp, (blasint)IN, weight, (blasint)IN, beta, out, (blasint)OUT);
}

/* dbias[o] += sum_n dout[n, o], rows in order; threads own column blocks. */
static void colsum_accumulate(float *dbias, const float *dout, int64_t N, int64_t OUT)
{
    int64_t nblk = (OUT + BMFM_NN_COLBLOCK - 1) / BMFM_NN_COLBLOCK;
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
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)IN,
                    (blasint)OUT, 1.0f, dout, (blasint)OUT, weight, (blasint)IN, 1.0f, dinp,
                    (blasint)IN);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)OUT, (blasint)IN, (blasint)N,
                    1.0f, dout, (blasint)OUT, inp, (blasint)IN, 1.0f, dweight, (blasint)IN);
    if (dbias)
        colsum_accumulate(dbias, dout, N, OUT);
}
