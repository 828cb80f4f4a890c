/* scib.h - the whole scib metric suite in one call (docs/metrics.md).
 *
 * Protocol (scib >= 1.1.6 / scanpy defaults, metrics.md B0-B11):
 * exact Euclidean kNN (k incl. self, default 15) -> UMAP connectivities ->
 * Leiden (igraph, modularity, weights) at resolutions res_min..res_max,
 * first best NMI, ARI at that clustering; label ASW rescaled (s+1)/2; batch
 * ASW as scib silhouette_batch (1-|s|, mean of per-label means); graph
 * connectivity on the connectivities (scib); iLISI/cLISI on 90-NN Euclidean
 * distances (scib-metrics); kBET per label on the 50-NN graph (scib-metrics
 * protocol, Euclidean neighbours); PCR of the embedding's PCs (scib
 * pc_regression), and pcr_comparison against `pre`; isolated-label ASW
 * (scib-metrics). AvgBio = mean(NMI, ARI, ASW_label); AvgBatch =
 * mean(ASW_batch, GC); Overall = 0.6 AvgBio + 0.4 AvgBatch, without the
 * scIB paper's min-max scaling across methods. Plain means: a NaN part makes
 * the average NaN (as scGPT's np.mean).
 * Not included: Louvain (scib <= 1.1.5), HVG/cell-cycle conservation,
 * isolated-label F1, trajectory, scib-metrics' KMeans NMI/ARI.
 */
#ifndef BMFM_EVAL_SCIB_H
#define BMFM_EVAL_SCIB_H

#include <stdint.h>

#include "base/error.h"

typedef struct bmfm_scib_options {
    int k;                             /* neighbours incl. self, default 15 */
    double res_min, res_max, res_step; /* Leiden scan, default 0.2, 2.0, 0.2 */
    uint64_t seed;                     /* igraph RNG seed per Leiden run, default 0 */
    int lisi, kbet, pcr, isolated;     /* compute these (default 1) */
    void (*progress)(const char *step, void *ctx);
    void *progress_ctx; /* may be NULL */
    /* added */
    int leiden_iterations; /* -1 (default): until stable, as scanpy's leidenalg flavor;
                              2: scanpy's igraph flavor / scib-metrics, about 3x faster */
    /* Optional independent jobs of the caller that do not use igraph
     * (bmfm eval's probes), 0..beside_jobs-1. Each is claimed by the first
     * thread that is free: the other metrics' threads once they are done,
     * the Leiden scan's once it is, so their time hides behind the
     * single-threaded scan. A job must give the same result on any thread
     * and team size. Its error ends the computation. */
    int beside_jobs;
    bmfm_status (*beside_leiden)(void *ctx, int job);
    void *beside_leiden_ctx;
} bmfm_scib_options;

void bmfm_scib_options_default(bmfm_scib_options *o);

typedef struct bmfm_scib_result {
    double nmi, ari, asw_label, asw_batch, graph_conn, ilisi, clisi, kbet;
    double pcr;          /* scib pc_regression of the embedding: batch variance share (lower = better mixing) */
    double isolated_asw;
    double avg_bio, avg_batch, overall; /* mean(NMI,ARI,ASW_label); mean(ASW_batch,GC); 0.6*bio+0.4*batch, no min-max scaling */
    double best_resolution;
    int n_clusters;
    int64_t n_cells_used, n_dropped_nan;
    char note[512]; /* which metrics are undefined and why (NaN values) */
    /* added */
    double pcr_pre;        /* pc_regression of `pre` (NaN without pre) */
    double pcr_comparison; /* scib pcr_comparison: (pcr_pre - pcr)/pcr_pre clipped at 0 (NaN without pre) */
    int64_t n_dropped_missing; /* cells with label or batch code -1 */
    int64_t n_labels_used, n_batches_used; /* categories with >= 1 cell after dropping */
    int n_isolated_labels;
    int n_kbet_labels;  /* labels kBET scored */
    char protocol[256]; /* one line for tables: clustering protocol and averaging */
} bmfm_scib_result;

/* emb: n x d row-major float32 (rows with NaN are dropped and counted); labels: codes 0..n_labels-1 (-1 = missing, dropped);
   batches: codes or NULL (single batch -> batch metrics NaN, reported in note); pre: optional unintegrated embedding (n x d_pre) for PCR comparison, or NULL. */
bmfm_status bmfm_scib_compute(const float *emb, int64_t n, int64_t d, const int32_t *labels, int64_t n_labels,
                              const int32_t *batches, int64_t n_batches, const float *pre, int64_t d_pre,
                              const bmfm_scib_options *opt, bmfm_scib_result *out);

#endif
