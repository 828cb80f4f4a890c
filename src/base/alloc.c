/* alloc.c - checked and aligned allocation (see alloc.h). */
#include "base/alloc.h"

#include "base/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Blocks of 4 MiB and up are placed on 2 MiB boundaries and marked for
 * transparent huge pages (the kernel default is THP "madvise", so without
 * the hint every 4 KiB page of a fresh block costs a page fault). On the
 * paravirtualised VM of bench/RESULTS.md a fault costs several microseconds
 * of system time, and the PCA baseline's 72 MB covariance, the encoder's
 * activation arena and the eval buffers each fault in thousands of pages.
 * Untouched tail pages of the rounded block are never made resident. */
#define BMFM_HUGE_MIN (4u << 20)
#define BMFM_HUGE_ALIGN (2u << 20)

static void *huge_block(size_t n) {
    size_t rounded = (n + BMFM_HUGE_ALIGN - 1) / BMFM_HUGE_ALIGN * BMFM_HUGE_ALIGN;
    void *p = NULL;
    if (rounded < n || posix_memalign(&p, BMFM_HUGE_ALIGN, rounded) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, rounded, MADV_HUGEPAGE); /* a hint: failure leaves normal pages */
#endif
    return p;
}

static void *plain_block(size_t n) { return n >= BMFM_HUGE_MIN ? huge_block(n) : malloc(n ? n : 1); }

void *bmfm_malloc(size_t n) {
    void *p = plain_block(n);
    if (!p) bmfm_error_set(BMFM_E_NOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

/* Large blocks are zeroed by writing them here, on the calling thread, not
 * left to calloc's fresh mmap pages: a first read maps the shared zero page,
 * and the later write then copies it and flushes that TLB entry on every
 * CPU the process runs on. When that happens inside an OpenMP region (the
 * PCA covariance accumulates with +=), each page costs a cross-CPU
 * interrupt; on the 2-vCPU VM of bench/RESULTS.md that made a 0.7 s step
 * take 5.7 s with 2 threads. Small blocks keep calloc. */
#define BMFM_CALLOC_WRITE_ZERO (1u << 20)

void *bmfm_calloc(size_t count, size_t size) {
    if (!count) count = 1;
    if (!size) size = 1;
    void *p;
    if (count <= SIZE_MAX / size && count * size >= BMFM_CALLOC_WRITE_ZERO) {
        p = plain_block(count * size);
        if (p) explicit_bzero(p, count * size); /* gcc turns malloc + memset(0) back into calloc */
    } else {
        p = calloc(count, size);
    }
    if (!p) bmfm_error_set(BMFM_E_NOMEM, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *bmfm_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) bmfm_error_set(BMFM_E_NOMEM, "out of memory reallocating %zu bytes", n);
    return q;
}

void *bmfm_aligned_alloc(size_t n) {
    size_t rounded = (n + BMFM_ALIGN - 1) / BMFM_ALIGN * BMFM_ALIGN;
    void *p = NULL;
    if (rounded == 0) rounded = BMFM_ALIGN;
    if (rounded >= BMFM_HUGE_MIN) {
        if (!(p = huge_block(rounded))) {
            bmfm_error_set(BMFM_E_NOMEM, "out of memory allocating %zu aligned bytes", n);
            return NULL;
        }
    } else if (posix_memalign(&p, BMFM_ALIGN, rounded) != 0) {
        bmfm_error_set(BMFM_E_NOMEM, "out of memory allocating %zu aligned bytes", n);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void bmfm_aligned_free(void *p) { free(p); }

char *bmfm_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = bmfm_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int bmfm_grow(void **items, size_t *cap, size_t need, size_t item_size) {
    if (need <= *cap) return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / item_size) {
            bmfm_error_set(BMFM_E_NOMEM, "array of %zu items is too large", need);
            return -1;
        }
        ncap *= 2;
    }
    void *p = bmfm_realloc(*items, ncap * item_size);
    if (!p) return -1;
    *items = p;
    *cap = ncap;
    return 0;
}
