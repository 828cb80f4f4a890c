/* labelspace.h - the leaf label space of hierarchical cell-type
 * classification (reference §4.3): a sub-DAG of the ontology whose leaves
 * are the K output classes of an HCE head, and per label the multi-hot mask
 * over the leaves under it plus the known flag.
 *
 * Two ways to build it:
 *  - bmfm_labelspace_prune: from the cell types observed in data (the
 *    reference builds its graph from the Census types this way): repeatedly
 *    drop leaves that are not observed; what remains is every observed type
 *    and all its ancestors. The leaves (observed types none of whose
 *    descendants were observed) sorted by id are classes 0..K-1, exactly
 *    LabelOntology.get_label_dictionary().
 *  - bmfm_labelspace_from_leaves: from a checkpoint's label dictionary
 *    (ids in class order, i.e. sorted). Those ids are the leaves: their
 *    ontology children are cut off, so a release where a leaf gained
 *    subtypes gives the same masks as the checkpoint's own graph. With
 *    add_missing, ids the ontology lacks (or has obsoleted) become isolated
 *    nodes (a leaf under no other node) instead of an error, so K always
 *    equals the head size.
 *
 * For inference (one cell, K logits from the head):
 *     bmfm_ontology *o;  bmfm_ontology_load("cl-basic.obo", &o);
 *     bmfm_labelspace *ls; bmfm_labelspace_from_leaves(o, ids, K, 1, &ls);
 *     double p[K], mass[o->n_terms];            // after from_leaves: o may grow
 *     bmfm_decode_softmax(logits, K, p);         // decode.h
 *     bmfm_decode_node_mass(ls, p, mass);        // P(node) for every term
 *     int64_t k = bmfm_decode_argmax(ls, p);     // leaf class; term ls->leaf_term[k]
 *     int64_t t = bmfm_decode_greedy(ls, mass, tau, path, &path_len);
 *     bmfm_ontology_id(o, t), bmfm_ontology_name(o, t)
 * See decode.h for roll-up to a depth or to coarse types.
 */
#ifndef BMFM_ONTO_LABELSPACE_H
#define BMFM_ONTO_LABELSPACE_H

#include "base/error.h"
#include "onto/ontology.h"

#include <stdint.h>

typedef struct bmfm_labelspace {
    bmfm_ontology *onto;       /* not owned; must outlive the label space */
    int64_t K;                 /* classes = leaves */
    int64_t *leaf_term;        /* [K] term of class k */
    int64_t *term_leaf;        /* [n_terms] class of a leaf term, else -1 */
    uint8_t *kept;             /* [n_terms] 1 for nodes of the label-space graph */
    int64_t n_kept;
    int64_t *kchi_ptr, *kchi;  /* [n_terms+1] CSR: children inside the label space, by id */
    int64_t *roots;            /* kept nodes without a kept parent, by id */
    int64_t n_roots;
    int64_t *lv_ptr;           /* [n_terms+1] CSR: classes under each term (self included), ascending */
    int32_t *lv;
    int64_t n_cut;             /* from_leaves: leaves whose ontology children were cut off */
    int64_t n_added;           /* from_leaves: ids made isolated nodes (absent or obsolete) */
    int64_t n_terms;           /* size of the per-term arrays */
} bmfm_labelspace;

/* Prune to the observed terms (n entries; -1 and non-node entries ignored,
 * repeats fine). Fails if none is a node. */
bmfm_status bmfm_labelspace_prune(bmfm_ontology *o, const int64_t *observed, int64_t n, bmfm_labelspace **out);
/* Leaves from a checkpoint label dictionary: ids[k] is class k. */
bmfm_status bmfm_labelspace_from_leaves(bmfm_ontology *o, const char *const *ids, int64_t K, int add_missing,
                                        bmfm_labelspace **out);
void bmfm_labelspace_free(bmfm_labelspace *ls);

/* 1 if term t is in the label space (and so has >= 1 leaf under it). */
static inline int bmfm_labelspace_has(const bmfm_labelspace *ls, int64_t t) {
    return t >= 0 && t < ls->n_terms && ls->kept[t];
}

/* The reference target for a label term (MultiFieldCollator): w[K] multi-hot
 * over the leaves under t, *flag = 1; all zeros and flag 0 when t is -1 or
 * outside the label space (unknown). Returns the number of leaves set. */
int64_t bmfm_labelspace_target(const bmfm_labelspace *ls, int64_t t, float *w, float *flag);

/* Write the class ids, one per line in class order (atomic). */
bmfm_status bmfm_labelspace_write_leaves(const bmfm_labelspace *ls, const char *path);

#endif
