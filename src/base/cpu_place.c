/* cpu_place.c - one-time placement of threads and helper processes on
 * distinct CPUs (see cpu_place.h). */
#include "base/cpu_place.h"

#include <omp.h>

#ifdef __linux__
#include <sched.h>

/* The k-th CPU (modulo their number) of the allowed mask, or -1. */
static int nth_allowed(const cpu_set_t *all, int k) {
    int count = CPU_COUNT(all);
    if (count <= 0) return -1;
    k %= count;
    if (k < 0) k += count;
    for (int c = 0, seen = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, all) && seen++ == k) return c;
    return -1;
}

/* Migrates the calling thread to cpu, then gives it back the mask all. */
static void move_to(int cpu, const cpu_set_t *all) {
    if (cpu < 0) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof one, &one) == 0) sched_setaffinity(0, sizeof *all, all);
}

void bmfm_cpu_spread_omp_threads(void) {
    cpu_set_t all;
    if (sched_getaffinity(0, sizeof all, &all) != 0 || CPU_COUNT(&all) < 2) return;
#pragma omp parallel
    move_to(nth_allowed(&all, omp_get_thread_num()), &all);
}

int bmfm_cpu_current(void) { return sched_getcpu(); }

void bmfm_cpu_move_next(int cpu_now, int skip) {
    cpu_set_t all;
    if (cpu_now < 0 || sched_getaffinity(0, sizeof all, &all) != 0 || CPU_COUNT(&all) < 2 ||
        !CPU_ISSET(cpu_now, &all))
        return;
    int rank = 0; /* cpu_now's place in the mask */
    for (int c = 0; c < cpu_now; c++) rank += CPU_ISSET(c, &all) != 0;
    move_to(nth_allowed(&all, rank + 1 + skip), &all);
}
#else
void bmfm_cpu_spread_omp_threads(void) {}
int bmfm_cpu_current(void) { return -1; }
void bmfm_cpu_move_next(int cpu_now, int skip) { (void)cpu_now, (void)skip; }
#endif
