/* blas_threads.h - run OpenBLAS single-threaded inside our own OpenMP regions.
 *
 * Debian's OpenBLAS is the pthread build: its idle threads spin after each
 * call and take cores from our OpenMP kernels, and its blocking (hence the
 * last bits of a sum) depends on its thread count. So every OpenMP region that
 * calls BLAS pins OpenBLAS to one thread for the duration and restores the
 * caller's setting afterwards. The setting is process-wide: do not nest
 * begin/end pairs from concurrently running threads.
 */
#ifndef BMFM_BASE_BLAS_THREADS_H
#define BMFM_BASE_BLAS_THREADS_H

/* Pin OpenBLAS to 1 thread; returns the previous count for _end. */
int bmfm_blas_threads_begin(void);
void bmfm_blas_threads_end(int saved);

#endif
