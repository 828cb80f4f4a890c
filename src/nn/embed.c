/* embed.c - token embedding lookup and its (deterministic) backward.
 *
 * The backward scatters rows of dout into the table. Threads own column
 * blocks and walk the tokens in order, so repeated ids accumulate in token
 * order whatever the thread count. The padding row gets no gradient, as
 * nn.Embedding(padding_idx=...).
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <string.h>

void bmfm_embedding_forward(float *out, const int32_t *ids, const float *table, int64_t N, int64_t C)
{
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t n = 0; n < N; n++)
        memcpy(out + n * C, table + (int64_t)ids[n] * C, sizeof(float) * (size_t)C);
}

void bmfm_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int64_t N,
                             int64_t C, int32_t padding_idx)
{
    int64_t nblk = (C + BMFM_NN_COLBLOCK - 1) / BMFM_NN_COLBLOCK;
#pragma omp parallel for schedule(static) if (N * C > BMFM_NN_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        int64_t c0 = blk * BMFM_NN_COLBLOCK;
        int64_t c1 = c0 + BMFM_NN_COLBLOCK < C ? c0 + BMFM_NN_COLBLOCK : C;
        for (int64_t n = 0; n < N; n++) {
            if (ids[n] == padding_idx)
                continue;
            float *d = dtable + (int64_t)ids[n] * C;
            const float *g = dout + n * C;
            for (int64_t c = c0; c < c1; c++)
                d[c] += g[c];
        }
    }
}
