/* strmap.c - open-addressing string map (see strmap.h). */
#include "base/strmap.h"

#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int bmfm_strmap_init(bmfm_strmap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap *= 2;
    m->keys = bmfm_calloc(cap, sizeof *m->keys);
    m->values = bmfm_calloc(cap, sizeof *m->values);
    m->cap = cap;
    m->count = 0;
    if (!m->keys || !m->values) {
        bmfm_strmap_free(m);
        return -1;
    }
    return 0;
}

void bmfm_strmap_free(bmfm_strmap *m) {
    if (m->keys)
        for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t slot_of(const bmfm_strmap *m, const char *key) {
    size_t i = (size_t)fnv1a(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0) i = (i + 1) & (m->cap - 1);
    return i;
}

static int rehash(bmfm_strmap *m) {
    bmfm_strmap bigger;
    if (bmfm_strmap_init(&bigger, m->cap) != 0) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = slot_of(&bigger, m->keys[i]);
        bigger.keys[j] = m->keys[i];
        bigger.values[j] = m->values[i];
        bigger.count++;
        m->keys[i] = NULL;
    }
    bmfm_strmap_free(m);
    *m = bigger;
    return 0;
}

int bmfm_strmap_put(bmfm_strmap *m, const char *key, int64_t value, int64_t *existing) {
    if ((m->count + 1) * 2 > m->cap && rehash(m) != 0) return -1;
    size_t i = slot_of(m, key);
    if (m->keys[i]) {
        if (existing) *existing = m->values[i];
        return 0;
    }
    m->keys[i] = bmfm_strdup(key);
    if (!m->keys[i]) return -1;
    m->values[i] = value;
    m->count++;
    return 1;
}

int bmfm_strmap_get(const bmfm_strmap *m, const char *key, int64_t *value) {
    if (!m->cap) return 0;
    size_t i = slot_of(m, key);
    if (!m->keys[i]) return 0;
    if (value) *value = m->values[i];
    return 1;
}
