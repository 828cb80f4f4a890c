/* cpu.c - run-time choice of the SIMD path (AVX-512 / AVX2 / scalar), and
 * the thread count of the kernels.
 *
 * The project is compiled for baseline x86-64; the fast kernels carry their
 * own target attributes and are selected here from CPUID at first use. The
 * BMFM_ISA environment variable (scalar, avx2, avx512) caps the choice, and
 * bmfm_set_isa lets tests compare paths. This file does not pick the BLAS
 * kernel: OpenBLAS does its own dispatch.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static int g_isa = -1;

static bmfm_isa detect(void)
{
    bmfm_isa isa = BMFM_ISA_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isa = BMFM_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
        isa = BMFM_ISA_AVX512;
#endif
    const char *env = getenv("BMFM_ISA");
    if (env) {
        bmfm_isa cap = isa;
        if (!strcmp(env, "scalar"))
            cap = BMFM_ISA_SCALAR;
        else if (!strcmp(env, "avx2"))
            cap = BMFM_ISA_AVX2;
        if (cap < isa)
            isa = cap;
    }
    return isa;
}

bmfm_isa bmfm_cpu_isa(void)
{
    int isa = __atomic_load_n(&g_isa, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = (int)detect();
        __atomic_store_n(&g_isa, isa, __ATOMIC_RELAXED);
    }
    return (bmfm_isa)isa;
}

int bmfm_cpu_has_avx512_bf16(void)
{
#if (defined(__x86_64__) || defined(__i386__)) && __GNUC__ >= 12
    __builtin_cpu_init();
    return bmfm_cpu_isa() == BMFM_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

bmfm_isa bmfm_set_isa(bmfm_isa isa)
{
    bmfm_isa prev = bmfm_cpu_isa();
    bmfm_isa best = detect();
    if (isa > best)
        isa = best;
    __atomic_store_n(&g_isa, (int)isa, __ATOMIC_RELAXED);
    return prev;
}

void bmfm_nn_set_threads(int n)
{
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
}
