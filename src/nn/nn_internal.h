/* nn_internal.h - helpers shared by the kernel files of src/nn (not public).
 *
 * Threading rule of the module: work is split over independent output rows,
 * cells, heads or column blocks, never over a reduction axis, so every sum is
 * evaluated in the same order whatever the number of OpenMP threads.
 */
#ifndef BMFM_NN_INTERNAL_H
#define BMFM_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Below this many scalar operations a loop runs on the calling thread: the
 * OpenMP fork costs more than the work. The choice never changes results. */
#define BMFM_NN_PAR_MIN 32768

/* Column block width for reductions over rows (dweight, dbias, dscale):
 * each thread owns whole column blocks and walks the rows in order. */
#define BMFM_NN_COLBLOCK 64

/* A scratch buffer of at least `bytes` (BMFM_ALIGN-aligned, contents left
 * from earlier calls) for the calling thread, kept between calls in one of
 * two slots (scratch.c says why); NULL when out of memory. A kernel that
 * calls another kernel must not use the slot that one uses (gemm.c: slot 0).
 * bmfm_nn_scratch_done frees a buffer too large to keep. */
void *bmfm_nn_scratch(int slot, size_t bytes);
void bmfm_nn_scratch_done(int slot, void *p);

#define BMFM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define BMFM_AVX2 __attribute__((target("avx2,fma")))

#endif
