/* blas_threads.c - pin OpenBLAS to one thread around our OpenMP regions
 * (see blas_threads.h). */
#include "base/blas_threads.h"

#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);
extern char *openblas_get_corename(void);

static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;
static int pin_depth, pin_saved;

void bmfm_blas_threads_begin(void) {
    pthread_mutex_lock(&pin_lock);
    if (pin_depth++ == 0) {
        pin_saved = openblas_get_num_threads();
        if (pin_saved != 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&pin_lock);
}

void bmfm_blas_threads_end(void) {
    pthread_mutex_lock(&pin_lock);
    if (pin_depth > 0 && --pin_depth == 0 && openblas_get_num_threads() != pin_saved)
        openblas_set_num_threads(pin_saved);
    pthread_mutex_unlock(&pin_lock);
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
