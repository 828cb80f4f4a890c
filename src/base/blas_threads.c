/* blas_threads.c - pin OpenBLAS to one thread around our OpenMP regions
 * (see blas_threads.h). */
#include "base/blas_threads.h"

extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);

int bmfm_blas_threads_begin(void) {
    int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
    return saved;
}

void bmfm_blas_threads_end(int saved) {
    if (openblas_get_num_threads() != saved) openblas_set_num_threads(saved);
}
