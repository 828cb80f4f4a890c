/* gemm.h - row-position-invariant GEMMs of our own (internal; see gemm.c). */
#ifndef BMFM_NN_GEMM_H
#define BMFM_NN_GEMM_H

#include <stdint.h>

/* C[M,N] = (add ? C : 0) + A[M,K] @ (transb ? B[N,K]^T : B[K,N]) (+ bias[N]
 * when !add), all row-major and contiguous. Each element is a k-ordered FMA
 * chain from zero, independent of its position. Returns 0, or -1 (C
 * untouched) without AVX2 or memory. */
int bmfm_gemm_invariant(float *Cm, const float *A, const float *B, const float *bias, int64_t M,
                        int64_t N, int64_t K, int transb, int add);

/* C[M,N] += A[K,M]^T @ B[K,N] (the weight gradient dW += dout^T inp), all
 * row-major and contiguous. Each element is a k-ordered FMA chain that
 * starts from its value in C, whatever the tiling or the thread count.
 * Returns 0, or -1 (C untouched) without AVX2. */
int bmfm_gemm_tn_accumulate(float *Cm, const float *A, const float *B, int64_t M, int64_t N, int64_t K);

/* C[M,N] = A[M,K] @ B[N,K]^T in double, row-major (leading dimensions lda,
 * ldb, ldc), each element a k-ordered FMA chain from zero. AVX-512 only (the
 * pairwise distances of src/eval, where OpenBLAS's dgemm with the AVX2
 * kernels ran at about half this speed); returns -1 (C untouched) without
 * AVX-512 or memory, for the caller to use cblas_dgemm. */
int bmfm_gemm_f64_nt(double *Cm, int64_t ldc, const double *A, int64_t lda, const double *B, int64_t ldb,
                     int64_t M, int64_t N, int64_t K);

#endif
