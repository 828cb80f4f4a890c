/* cpu_place.h - put each OpenMP thread (or a forked helper process) on a CPU
 * of its own once, then let the scheduler move it as it likes.
 *
 * On the 2-vCPU VM of bench/RESULTS.md, Linux started the OpenMP worker on
 * the master's CPU and left it there for about 0.1 s, so the first parallel
 * work of a command ran on one core (the 90-NN build of `bmfm eval`: 0.16 s
 * on its first call with 2 threads, 0.085 s on later calls, 0.165 s on one
 * thread). Binding for good (OMP_PROC_BIND) fixes that but also pins every
 * process forked later to its parent's CPU. These functions migrate the
 * caller to a chosen CPU and restore its affinity mask at once: the thread
 * stays where it was put until the scheduler has a reason to move it, and
 * the user's mask (taskset, cgroups) is kept. Failures are ignored (the
 * placement is an optimisation only). */
#ifndef BMFM_BASE_CPU_PLACE_H
#define BMFM_BASE_CPU_PLACE_H

/* In one parallel region of the current team size: OpenMP thread t moves to
 * the t-th allowed CPU (modulo their number). Call once, after the thread
 * count is set and before the first parallel work. */
void bmfm_cpu_spread_omp_threads(void);

/* The calling thread moves to the allowed CPU `skip + 1` places after the
 * one it runs on (e.g. a forked helper: skip 0 = the next CPU after its
 * parent's). */
void bmfm_cpu_move_next(int cpu_now, int skip);

/* The CPU the calling thread runs on (-1 if unknown). */
int bmfm_cpu_current(void);

#endif
