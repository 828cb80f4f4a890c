/* scratch.c - per-thread scratch buffers of the src/nn kernels, kept between
 * calls (see nn_internal.h).
 *
 * Why: a kernel that allocated its packing buffers on every call (zeroed,
 * and above glibc's mmap threshold fresh pages each time) paid page faults
 * and a memset per call (~8% of a training step for the packed GEMM), and
 * with threads on both CPUs of the 2-vCPU VM of bench/RESULTS.md each free
 * also unmapped pages, a TLB flush on the other CPU: the bf16 projection
 * did not get faster with a second thread. */
#include "nn/nn_internal.h"

#include "base/alloc.h"

#include <pthread.h>

#define SCRATCH_SLOTS 2
#define SCRATCH_KEEP ((size_t)256 << 20) /* larger requests are not kept */

static _Thread_local void *tl_buf[SCRATCH_SLOTS];
static _Thread_local size_t tl_cap[SCRATCH_SLOTS];

/* A thread's buffers are freed when it exits (OpenMP teams and helper
 * threads come and go): a pthread key whose destructor runs on the exiting
 * thread, where tl_buf is still that thread's. */
static pthread_key_t g_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
static int g_key_ok;

static void free_thread_buffers(void *unused)
{
    (void)unused;
    for (int s = 0; s < SCRATCH_SLOTS; s++) {
        bmfm_aligned_free(tl_buf[s]);
        tl_buf[s] = NULL;
        tl_cap[s] = 0;
    }
}

static void make_key(void) { g_key_ok = pthread_key_create(&g_key, free_thread_buffers) == 0; }

void *bmfm_nn_scratch(int slot, size_t bytes)
{
    if (slot < 0 || slot >= SCRATCH_SLOTS)
        return NULL;
    if (bytes <= tl_cap[slot])
        return tl_buf[slot];
    if (bytes > SCRATCH_KEEP)
        return bmfm_aligned_alloc(bytes);
    pthread_once(&g_key_once, make_key);
    if (g_key_ok)
        pthread_setspecific(g_key, (void *)1); /* non-NULL: the destructor runs */
    bmfm_aligned_free(tl_buf[slot]);
    tl_buf[slot] = bmfm_aligned_alloc(bytes);
    tl_cap[slot] = tl_buf[slot] ? bytes : 0;
    return tl_buf[slot];
}

void bmfm_nn_scratch_done(int slot, void *p)
{
    if (slot >= 0 && slot < SCRATCH_SLOTS && p != tl_buf[slot])
        bmfm_aligned_free(p);
}
