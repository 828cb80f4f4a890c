/* strmap.h - string -> int64 hash map (open addressing, FNV-1a).
 *
 * Used for gene symbol and ontology id look-ups. Keys are copied into the map.
 * Insertion of an existing key keeps the first value and reports it, which is
 * what duplicate-symbol detection needs.
 */
#ifndef BMFM_BASE_STRMAP_H
#define BMFM_BASE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct bmfm_strmap {
    char **keys;
    int64_t *values;
    size_t cap;   /* power of two */
    size_t count;
} bmfm_strmap;

int bmfm_strmap_init(bmfm_strmap *m, size_t expected);
void bmfm_strmap_free(bmfm_strmap *m);
/* Returns 1 if inserted, 0 if the key was present (value unchanged, *existing
 * set when non-NULL), -1 on allocation failure (error set). */
int bmfm_strmap_put(bmfm_strmap *m, const char *key, int64_t value, int64_t *existing);
/* Returns 1 and sets *value if found, else 0. */
int bmfm_strmap_get(const bmfm_strmap *m, const char *key, int64_t *value);

#endif
