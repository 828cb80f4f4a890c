/* blas_threads.h - run OpenBLAS single-threaded inside our own OpenMP regions.
 *
 * Debian's OpenBLAS is the pthread build: its idle threads spin after each
 * call and take cores from our OpenMP kernels, and its blocking (hence the
 * last bits of a sum) depends on its thread count. So every OpenMP region that
 * calls BLAS pins OpenBLAS to one thread for the duration and restores the
 * caller's setting afterwards. The setting is process-wide, so begin/end
 * pairs are counted: the first begin saves and pins it, the last end
 * restores it, whichever threads (e.g. the two arms of bmfm_scib_compute)
 * the pairs run on.
 */
#ifndef BMFM_BASE_BLAS_THREADS_H
#define BMFM_BASE_BLAS_THREADS_H

/* Pin OpenBLAS to 1 thread until the matching _end. */
void bmfm_blas_threads_begin(void);
void bmfm_blas_threads_end(void);

/* For benchmarks that report a fraction of "the machine's sgemm peak".
 * OpenBLAS picks its kernels once, at load, from OPENBLAS_CORETYPE or the
 * CPU id; its AVX2 "Haswell" kernels reach about half the sgemm rate of the
 * AVX-512 "SkylakeX" ones on an AVX-512 CPU (115 vs 210 GFLOP/s on the Zen5
 * VM of bench/RESULTS.md), which would halve the peak and flatter every
 * percentage. On AVX-512 CPUs whose OPENBLAS_CORETYPE names no AVX-512
 * kernel set, this re-executes the program (/proc/self/exe, same argv) with
 * OPENBLAS_CORETYPE=SkylakeX, unless BMFM_BENCH_KEEP_CORETYPE is set; it
 * returns only when no re-exec was needed or the exec failed. */
void bmfm_blas_prefer_avx512_kernels(char **argv);

/* Name of the OpenBLAS kernel set in use ("SkylakeX", "Haswell", ...). */
const char *bmfm_blas_kernel_name(void);

#endif
