/* labels.h - map free-text cell-type labels to ontology terms.
 *
 * A label matches a term by, in this order of precedence: its id, an alt_id,
 * its name, an EXACT synonym. Matching ignores case and collapses runs of
 * white space (leading/trailing blanks dropped), so " CD4-Positive,  Alpha-Beta
 * T Cell" finds CL:0000624. A label that names an obsolete term follows its
 * replaced_by when that names a live term. "unknown", empty, NaN ("nan") and
 * missing labels are UNKNOWN, never errors: the reference encodes them as an
 * all-zero target with flag 0. Everything else that finds no live term is
 * UNMAPPED and is reported by the batch function - never silently dropped.
 * Build the index after any bmfm_labelspace_from_leaves that adds terms.
 *
 * It is not the label space (labelspace.h decides which mapped terms carry
 * leaves).
 */
#ifndef BMFM_ONTO_LABELS_H
#define BMFM_ONTO_LABELS_H

#include "base/error.h"
#include "base/strmap.h"
#include "onto/ontology.h"

#include <stdint.h>

typedef enum {
    BMFM_LABEL_UNMAPPED = 0,  /* nothing live matches */
    BMFM_LABEL_UNKNOWN,       /* "unknown" / "" / "nan" / NULL */
    BMFM_LABEL_BY_ID,
    BMFM_LABEL_BY_ALT_ID,
    BMFM_LABEL_BY_NAME,
    BMFM_LABEL_BY_SYNONYM,
    BMFM_LABEL_AMBIGUOUS,     /* a synonym (or name) shared by several live terms */
    BMFM_LABEL_OBSOLETE,      /* names an obsolete term without a live replacement */
    BMFM_LABEL_REPLACED       /* names an obsolete term; mapped to its live replaced_by */
} bmfm_label_match;

const char *bmfm_label_match_name(bmfm_label_match m);
/* 1 for the matches that yield a term. */
static inline int bmfm_label_is_mapped(bmfm_label_match m) {
    return (m >= BMFM_LABEL_BY_ID && m <= BMFM_LABEL_BY_SYNONYM) || m == BMFM_LABEL_REPLACED;
}

typedef struct bmfm_label_index {
    const bmfm_ontology *onto;  /* not owned */
    bmfm_strmap keys;           /* normalized key -> (term << 3) | match kind, -1 = ambiguous */
} bmfm_label_index;

bmfm_status bmfm_label_index_build(const bmfm_ontology *o, bmfm_label_index *ix);
void bmfm_label_index_free(bmfm_label_index *ix);

/* Map one label; *term is the live term (after replaced_by) or -1. */
bmfm_label_match bmfm_label_map(const bmfm_label_index *ix, const char *label, int64_t *term);

/* Normalize a label into out (n bytes): lower case, single spaces, trimmed. */
void bmfm_label_normalize(const char *label, char *out, size_t n);

/* Result of mapping many labels (e.g. the categories of an obs column, with
 * a count of cells each). */
typedef struct bmfm_label_report {
    int64_t n_labels;          /* distinct labels given */
    int64_t n_mapped, n_unknown, n_unmapped;          /* distinct labels */
    int64_t n_replaced;        /* of n_mapped: obsolete, mapped through replaced_by */
    int64_t n_mapped_cells, n_unknown_cells, n_unmapped_cells;
    char **unmapped;           /* distinct unmapped labels, in input order */
    bmfm_label_match *unmapped_why;
    int64_t *unmapped_cells;
} bmfm_label_report;

/* Map n labels (counts[i] cells each; counts may be NULL = 1 each); terms[i]
 * gets the term or -1. */
bmfm_status bmfm_label_map_many(const bmfm_label_index *ix, const char *const *labels,
                                const int64_t *counts, int64_t n, int64_t *terms,
                                bmfm_label_report *rep);
void bmfm_label_report_free(bmfm_label_report *rep);

#endif
