/* labels.c - label string -> ontology term (see labels.h). */
#include "onto/labels.h"

#include "base/alloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Value layout in the key map: (term << 3) | kind; AMBIGUOUS_VALUE when two
 * live terms share a key at the same precedence. */
#define AMBIGUOUS_VALUE (-1)

const char *bmfm_label_match_name(bmfm_label_match m) {
    switch (m) {
    case BMFM_LABEL_UNMAPPED: return "unmapped";
    case BMFM_LABEL_UNKNOWN: return "unknown";
    case BMFM_LABEL_BY_ID: return "id";
    case BMFM_LABEL_BY_ALT_ID: return "alt_id";
    case BMFM_LABEL_BY_NAME: return "name";
    case BMFM_LABEL_BY_SYNONYM: return "synonym";
    case BMFM_LABEL_AMBIGUOUS: return "ambiguous";
    case BMFM_LABEL_OBSOLETE: return "obsolete";
    case BMFM_LABEL_REPLACED: return "replaced_by";
    }
    return "?";
}

void bmfm_label_normalize(const char *label, char *out, size_t n) {
    size_t j = 0;
    int space = 0;
    if (!n) return;
    for (const char *p = label; *p && j + 1 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (isspace(c)) {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < n) out[j++] = ' ';
        space = 0;
        out[j++] = (char)tolower(c);
    }
    out[j] = 0;
}

/* Live target of term t: itself, or its replaced_by when obsolete (one hop,
 * as CL releases point straight at the live term). -1 if none. */
static int64_t live_term(const bmfm_ontology *o, int64_t t) {
    if (o->is_node[t]) return t;
    const char *r = o->obo.terms[t].replaced_by;
    int64_t u = r ? bmfm_ontology_find(o, r) : -1;
    return u >= 0 && o->is_node[u] ? u : -1;
}

/* Insert key -> term at precedence `kind`. Earlier kinds win; two different
 * terms at the same kind make the key ambiguous. */
static int put_key(bmfm_strmap *m, const char *raw, int64_t t, int kind) {
    char key[1024];
    bmfm_label_normalize(raw, key, sizeof key);
    if (!key[0]) return 0;
    int64_t v = (t << 3) | kind, old;
    int r = bmfm_strmap_put(m, key, v, &old);
    if (r < 0) return -1;
    if (r == 0 && old != AMBIGUOUS_VALUE && (old & 7) == kind && (old >> 3) != t) {
        /* same precedence, another term: mark ambiguous in place */
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] && !strcmp(m->keys[i], key)) m->values[i] = AMBIGUOUS_VALUE;
    }
    return 0;
}

bmfm_status bmfm_label_index_build(const bmfm_ontology *o, bmfm_label_index *ix) {
    ix->onto = o;
    if (bmfm_strmap_init(&ix->keys, (size_t)o->n_terms * 4)) return BMFM_E_NOMEM;
    /* one pass per precedence level so a higher level always claims first */
    for (int kind = BMFM_LABEL_BY_ID; kind <= BMFM_LABEL_BY_SYNONYM; kind++) {
        for (int64_t t = 0; t < o->n_terms; t++) {
            const bmfm_obo_term *tt = &o->obo.terms[t];
            int rc = 0;
            if (kind == BMFM_LABEL_BY_ID) rc = put_key(&ix->keys, tt->id, t, kind);
            else if (kind == BMFM_LABEL_BY_ALT_ID)
                for (int32_t k = 0; k < tt->n_alt_ids && !rc; k++) rc = put_key(&ix->keys, tt->alt_ids[k], t, kind);
            else if (kind == BMFM_LABEL_BY_NAME) {
                /* names of obsolete terms read "obsolete X": they must not shadow X */
                if (o->is_node[t] || tt->replaced_by) rc = put_key(&ix->keys, tt->name, t, kind);
            } else if (o->is_node[t])
                for (int32_t k = 0; k < tt->n_synonyms && !rc; k++) rc = put_key(&ix->keys, tt->synonyms[k], t, kind);
            if (rc) {
                bmfm_label_index_free(ix);
                return BMFM_E_NOMEM;
            }
        }
    }
    return BMFM_OK;
}

void bmfm_label_index_free(bmfm_label_index *ix) {
    if (ix) bmfm_strmap_free(&ix->keys);
}

static int is_unknown_key(const char *k) {
    return !k[0] || !strcmp(k, "unknown") || !strcmp(k, "nan");
}

bmfm_label_match bmfm_label_map(const bmfm_label_index *ix, const char *label, int64_t *term) {
    char key[1024];
    *term = -1;
    if (!label) return BMFM_LABEL_UNKNOWN;
    bmfm_label_normalize(label, key, sizeof key);
    if (is_unknown_key(key)) return BMFM_LABEL_UNKNOWN;
    int64_t v;
    if (!bmfm_strmap_get(&ix->keys, key, &v)) return BMFM_LABEL_UNMAPPED;
    if (v == AMBIGUOUS_VALUE) return BMFM_LABEL_AMBIGUOUS;
    int64_t t = live_term(ix->onto, v >> 3);
    if (t < 0) return BMFM_LABEL_OBSOLETE;
    *term = t;
    return t != v >> 3 ? BMFM_LABEL_REPLACED : (bmfm_label_match)(v & 7);
}

void bmfm_label_report_free(bmfm_label_report *rep) {
    if (!rep) return;
    for (int64_t i = 0; i < rep->n_unmapped; i++) free(rep->unmapped[i]);
    free(rep->unmapped);
    free(rep->unmapped_why);
    free(rep->unmapped_cells);
    memset(rep, 0, sizeof *rep);
}

bmfm_status bmfm_label_map_many(const bmfm_label_index *ix, const char *const *labels,
                                const int64_t *counts, int64_t n, int64_t *terms,
                                bmfm_label_report *rep) {
    memset(rep, 0, sizeof *rep);
    rep->n_labels = n;
    rep->unmapped = bmfm_calloc((size_t)n + 1, sizeof *rep->unmapped);
    rep->unmapped_why = bmfm_calloc((size_t)n + 1, sizeof *rep->unmapped_why);
    rep->unmapped_cells = bmfm_calloc((size_t)n + 1, sizeof *rep->unmapped_cells);
    if (!rep->unmapped || !rep->unmapped_why || !rep->unmapped_cells) {
        bmfm_label_report_free(rep);
        return BMFM_E_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t c = counts ? counts[i] : 1, t;
        bmfm_label_match m = bmfm_label_map(ix, labels[i], &t);
        terms[i] = t;
        if (bmfm_label_is_mapped(m)) {
            rep->n_mapped++;
            rep->n_replaced += m == BMFM_LABEL_REPLACED;
            rep->n_mapped_cells += c;
        } else if (m == BMFM_LABEL_UNKNOWN) {
            rep->n_unknown++;
            rep->n_unknown_cells += c;
        } else {
            int64_t k = rep->n_unmapped++;
            if (!(rep->unmapped[k] = bmfm_strdup(labels[i]))) {
                bmfm_label_report_free(rep);
                return BMFM_E_NOMEM;
            }
            rep->unmapped_why[k] = m;
            rep->unmapped_cells[k] = c;
            rep->n_unmapped_cells += c;
        }
    }
    return BMFM_OK;
}
