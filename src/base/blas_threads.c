/* blas_threads.c - pin OpenBLAS to one thread around our OpenMP regions
 * (see blas_threads.h). */
#include "base/blas_threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

int bmfm_blas_threads_begin(void) {
    int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
    return saved;
}

void bmfm_blas_threads_end(int saved) {
    if (openblas_get_num_threads() != saved) openblas_set_num_threads(saved);
}

void bmfm_blas_prefer_avx512_kernels(char **argv) {
    const char *ct = getenv("OPENBLAS_CORETYPE");
    if (getenv("BMFM_BENCH_KEEP_CORETYPE") || !__builtin_cpu_supports("avx512f")) return;
    if (ct && (!strcasecmp(ct, "SkylakeX") || !strcasecmp(ct, "Cooperlake") || !strcasecmp(ct, "SapphireRapids"))) return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    setenv("BMFM_BENCH_KEEP_CORETYPE", "1", 1); /* once */
    execv("/proc/self/exe", argv);
    perror("re-exec with OPENBLAS_CORETYPE=SkylakeX"); /* carry on with the kernels loaded */
}

const char *bmfm_blas_kernel_name(void) { return openblas_get_corename(); }
