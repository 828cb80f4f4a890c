/* ontology.h - an ontology as the reference builds it: a DAG of the
 * non-obsolete terms of an OBO file with is_a edges only (parent -> child),
 * an edge kept only when its parent is non-obsolete, the id "unknown"
 * excluded (BMFM build_cell_ontology_graph.py::build_graph).
 *
 * Terms are indexed 0..n_terms-1 in file order; obsolete terms keep their
 * index (label mapping follows their replaced_by) but are not DAG nodes: no
 * edges, depth -1, neither root nor leaf. Children and parents are sorted by
 * id so that every traversal (and tie-break) is deterministic.
 *
 * Depth: `depth` is the SHORTEST is_a path from a root (a node without
 * parents), as cellxgene-ontology-guide counts ancestor distances;
 * `depth_max` is the longest path. Roll-up to a depth uses `depth`.
 *
 * Building fails, citing the OBO line, on an is_a whose parent id is not
 * defined in the file (dangling) and on an is_a cycle. It is not a label
 * space (labelspace.h prunes it) and not a label matcher (labels.h).
 */
#ifndef BMFM_ONTO_ONTOLOGY_H
#define BMFM_ONTO_ONTOLOGY_H

#include "base/error.h"
#include "base/strmap.h"
#include "io/obo.h"

#include <stdint.h>

typedef struct bmfm_ontology {
    bmfm_obo obo;          /* owned; obo.terms[i] is term i */
    int64_t n_terms;
    bmfm_strmap index;     /* term id -> index (obsolete terms included) */
    uint8_t *is_node;      /* [n_terms] 1 for DAG nodes (non-obsolete, id != "unknown") */
    int64_t n_nodes;
    int64_t *par_ptr, *par;   /* CSR [n_terms+1]: parents of each term */
    int64_t *chi_ptr, *chi;   /* CSR [n_terms+1]: children of each term */
    int64_t n_edges;
    int64_t n_edges_dropped;  /* is_a to an obsolete (or "unknown") parent */
    int32_t *depth;           /* [n_terms] shortest path from a root; -1 off the DAG */
    int32_t *depth_max;       /* [n_terms] longest path from a root; -1 off the DAG */
    int64_t *topo;            /* [n_nodes] nodes, parents before children */
    int64_t *roots;           /* nodes without parents, sorted by id */
    int64_t n_roots;
    int64_t n_leaves;         /* nodes without children */
    int64_t *scratch;         /* [n_terms] traversal work space */
    uint32_t *stamp;          /* [n_terms] visit stamps */
    uint32_t cur_stamp;
} bmfm_ontology;

/* Parse an OBO file and build the DAG. */
bmfm_status bmfm_ontology_load(const char *path, bmfm_ontology **out);
/* Build from parsed OBO content; takes ownership of *obo (zeroed). */
bmfm_status bmfm_ontology_build(bmfm_obo *obo, bmfm_ontology **out);
void bmfm_ontology_free(bmfm_ontology *o);

/* Index of an id (exact match, obsolete terms included), or -1. */
int64_t bmfm_ontology_find(const bmfm_ontology *o, const char *id);
static inline const char *bmfm_ontology_id(const bmfm_ontology *o, int64_t t) { return o->obo.terms[t].id; }
static inline const char *bmfm_ontology_name(const bmfm_ontology *o, int64_t t) { return o->obo.terms[t].name; }

/* Make `id` an isolated node (root and leaf, depth 0): appended when the
 * file lacks it, promoted when it is obsolete - e.g. a checkpoint leaf from
 * another ontology release. Returns its index in *term. Fails if the id is
 * already a node. */
bmfm_status bmfm_ontology_add_isolated(bmfm_ontology *o, const char *id, const char *name, int64_t *term);

/* Ancestors (self_too: include t) of node t, written to out (room for
 * n_terms), sorted by depth then id; returns the count (0 if t is off the
 * DAG). Not thread-safe: uses the ontology's work space. */
int64_t bmfm_ontology_ancestors(bmfm_ontology *o, int64_t t, int self_too, int64_t *out);
/* Descendants (self_too: include t), sorted by depth then id. */
int64_t bmfm_ontology_descendants(bmfm_ontology *o, int64_t t, int self_too, int64_t *out);
/* 1 if a is an ancestor of d or a == d (both DAG nodes). */
int bmfm_ontology_is_ancestor(bmfm_ontology *o, int64_t a, int64_t d);

/* Sort term indices by (depth, id). */
void bmfm_ontology_sort_by_depth(const bmfm_ontology *o, int64_t *terms, int64_t n);

#endif
