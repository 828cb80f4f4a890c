/* graph_metrics.h - scib graph connectivity (metrics.md B6) and connected
 * components of a symmetric graph.
 *
 * GC = mean over non-empty labels of |largest connected component of the
 * label's induced subgraph of W| / |cells of the label|, on the symmetric
 * UMAP connectivities (scib; scib-metrics uses the directed 15-NN distance
 * graph with strong components, which gives lower scores).
 */
#ifndef BMFM_EVAL_GRAPH_METRICS_H
#define BMFM_EVAL_GRAPH_METRICS_H

#include <stdint.h>

#include "base/error.h"
#include "eval/connectivity.h"

/* comp[i] = component id (0..*n_comp-1, numbered by smallest member) of
 * the graph, its edges taken as undirected (a symmetric matrix, or one
 * direction of each edge as bmfm_connectivity_pattern gives; only indptr
 * and indices are read); only cells with mask[i] != 0 take part (mask may
 * be NULL), others get -1 and edges to them are ignored. */
bmfm_status bmfm_graph_components(const bmfm_wgraph *w, const uint8_t *mask, int32_t *comp, int64_t *n_comp);

bmfm_status bmfm_graph_connectivity(const bmfm_wgraph *w, const int32_t *labels, int64_t n_labels, double *gc);

#endif
