/* decode.h - reading an HCE head's K leaf logits at any ontology level.
 *
 * P(node) = sum over the classes (leaves) under the node of softmax(z)_k
 * (reference §6.3). From that:
 *  - leaf-argmax (the reference's prediction, HCEObjective.get_predictions)
 *    with its lineage (bmfm_ontology_ancestors of ls->leaf_term[k]);
 *  - greedy top-down decoding (the paper's, not in the reference code): from
 *    the root with the largest mass, step to the child with the largest mass
 *    (ties: smallest id) until a leaf;
 *  - the same descent with a confidence threshold tau: it stops at the
 *    deepest node on the path whose mass is >= tau, and abstains (returns
 *    -1) when not even a root reaches tau. tau = 0 is plain greedy;
 *  - roll-up of a term to a depth (shortest-path depth, ontology.h) or to
 *    the most specific of a list of coarse types ("T cell", "B cell", ...).
 *
 * Greedy and argmax disagree when the mass sits in a subtree whose leaves
 * are each small: root -> {A: a1..a5 at 0.12 each, B: b at 0.4} gives
 * argmax b but greedy A -> a1.
 *
 * Usage for one cell (ls from labelspace.h, o = ls->onto):
 *     double *p = malloc(K * sizeof *p), *mass = malloc(ls->n_terms * sizeof *mass);
 *     int64_t *path = malloc(ls->n_terms * sizeof *path), len;
 *     bmfm_decode_softmax(logits, K, p);
 *     bmfm_decode_node_mass(ls, p, mass);
 *     int64_t leaf = ls->leaf_term[bmfm_decode_argmax(ls, p)];
 *     int64_t call = bmfm_decode_greedy(ls, mass, 0.5, path, &len);   // -1: abstain
 *     int64_t lvl3 = bmfm_decode_rollup_depth(o, mass, call, 3);
 *     int64_t coarse = bmfm_decode_rollup_coarse(o, call, coarse_terms, n_coarse);
 *     printf("%s %s %.3f\n", bmfm_ontology_id(o, call), bmfm_ontology_name(o, call), mass[call]);
 * For many cells, bmfm_decode_cells does the first four lines per row.
 * All functions are read-only on ls except the roll-ups, which use the
 * ontology's traversal work space (one thread per ontology).
 */
#ifndef BMFM_ONTO_DECODE_H
#define BMFM_ONTO_DECODE_H

#include "onto/labelspace.h"

#include <stdint.h>

/* p[K] = softmax(logits) in double, max-subtracted. */
void bmfm_decode_softmax(const float *logits, int64_t K, double *p);
/* mass[t] = P(t) for every term t < ls->n_terms (0 outside the label space). */
void bmfm_decode_node_mass(const bmfm_labelspace *ls, const double *p, double *mass);
/* Class with the largest probability (first on ties). */
int64_t bmfm_decode_argmax(const bmfm_labelspace *ls, const double *p);
/* Greedy descent with threshold tau (see above). path (room for the
 * deepest path, ls->n_terms is always enough) gets root..result, *path_len
 * its length (0 on abstention). Returns the term or -1. */
int64_t bmfm_decode_greedy(const bmfm_labelspace *ls, const double *mass, double tau, int64_t *path,
                           int64_t *path_len);
/* The ancestor-or-self of t at depth `depth` (itself when t is shallower);
 * among several, the one with the largest mass (mass may be NULL), then the
 * smallest id. -1 if t is not a node. */
int64_t bmfm_decode_rollup_depth(bmfm_ontology *o, const double *mass, int64_t t, int32_t depth);
/* The most specific coarse term that is t or an ancestor of t (deepest by
 * depth; ties: earlier in the list), or -1 when none is. */
int64_t bmfm_decode_rollup_coarse(bmfm_ontology *o, int64_t t, const int64_t *coarse, int64_t n);

/* One cell's calls, as bmfm_decode_cells fills them. */
typedef struct bmfm_decode_call {
    int64_t leaf_term;   /* leaf-argmax: term of the top class */
    double leaf_prob;    /* its probability */
    int64_t greedy_term; /* greedy descent with tau; -1 = abstained */
    double greedy_mass;  /* P(greedy_term), 0 when abstained */
} bmfm_decode_call;

/* Decode N cells of K = ls->K logits each (row-major [N, K]) with threshold
 * tau; allocates its work space once. Rows are independent, so callers may
 * split N across threads (each call uses its own buffers). */
bmfm_status bmfm_decode_cells(const bmfm_labelspace *ls, const float *logits, int64_t N, double tau,
                              bmfm_decode_call *out);

#endif
