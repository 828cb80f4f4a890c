/* gemm.h - row-position-invariant float32 GEMM of src/nn (internal; see gemm.c). */
#ifndef BMFM_NN_GEMM_H
#define BMFM_NN_GEMM_H

#include <stdint.h>

/* C[M,N] = (add ? C : 0) + A[M,K] @ (transb ? B[N,K]^T : B[K,N]) (+ bias[N]
 * when !add), all row-major and contiguous. Each element is a k-ordered FMA
 * chain from zero, independent of its position. Returns 0, or -1 (C
 * untouched) without AVX2 or memory. */
int bmfm_gemm_invariant(float *Cm, const float *A, const float *B, const float *bias, int64_t M,
                        int64_t N, int64_t K, int transb, int add);

#endif
