/* alloc.h - checked and aligned allocation.
 *
 * Library code never aborts on allocation failure: these return NULL and set
 * the error message, so callers can unwind through their `goto done`.
 * Aligned blocks (64 bytes, a cache line and an AVX-512 vector) back the
 * parameter, gradient and activation arenas.
 */
#ifndef BMFM_BASE_ALLOC_H
#define BMFM_BASE_ALLOC_H

#include <stddef.h>

#define BMFM_ALIGN 64

void *bmfm_malloc(size_t n);              /* NULL + error set on failure */
void *bmfm_calloc(size_t count, size_t size);
void *bmfm_realloc(void *p, size_t n);
void *bmfm_aligned_alloc(size_t n);       /* zeroed, BMFM_ALIGN-aligned; free with bmfm_aligned_free */
void bmfm_aligned_free(void *p);
char *bmfm_strdup(const char *s);

/* Grow-by-doubling helper for dynamic arrays: ensures *cap >= need. */
int bmfm_grow(void **items, size_t *cap, size_t need, size_t item_size);

#endif
