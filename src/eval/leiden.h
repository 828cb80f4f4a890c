/* leiden.h - Leiden clustering of a connectivity graph through igraph's C API
 * (0.10), and the resolution scan scib >= 1.1.6 uses for NMI/ARI.
 *
 * Objective: modularity (= leidenalg's RBConfigurationVertexPartition) with
 * edge weights = connectivities, node weights = strengths and the resolution
 * divided by the total strength (2m), which is what python-igraph's
 * community_leiden(objective_function="modularity") and scanpy's
 * flavor="igraph" pass. scanpy's default flavor ("leidenalg") builds a
 * directed graph with both directions of every edge; for a symmetric W its
 * RBConfiguration quality sum_ij (A_ij - g k_i^out k_j^in / m) equals the
 * undirected modularity, so the objective is the same. What differs is the
 * optimiser (igraph's refinement merges randomly with beta = 0.01, leidenalg's
 * refinement and node order differ) and the RNG, so partitions are not
 * bit-identical to scanpy's; agreement is distributional (docs/metrics.md).
 * n_iterations < 0 means "until the partition is stable": igraph < 0.10.17
 * mishandles negative counts, so we loop single iterations from the previous
 * membership until it stops changing.
 */
#ifndef BMFM_EVAL_LEIDEN_H
#define BMFM_EVAL_LEIDEN_H

#include <stdint.h>

#include "base/error.h"
#include "eval/connectivity.h"

/* membership (n entries) gets cluster ids 0..n_clusters-1. The igraph RNG is
 * reseeded with seed at every call (scanpy passes random_state=0 per call). */
bmfm_status bmfm_leiden(const bmfm_wgraph *w, double resolution, uint64_t seed, int n_iterations,
                        int32_t *membership, int *n_clusters);

typedef struct bmfm_leiden_scan_result {
    double best_resolution;
    double nmi, ari;   /* at the best resolution (first maximum of NMI) */
    int n_clusters;
    int n_resolutions;
    int n_helpers; /* processes forked by bmfm_leiden_scan_help's request */
} bmfm_leiden_scan_result;

/* Leiden at res_min, res_min + step, ... <= res_max (+1e-9); pick the first
 * resolution with the largest NMI against labels; ARI at that clustering.
 * n_iterations as bmfm_leiden (-1: until stable). best_membership (n
 * entries) may be NULL. */
bmfm_status bmfm_leiden_scan(const bmfm_wgraph *w, const int32_t *labels, double res_min, double res_max,
                             double res_step, uint64_t seed, int n_iterations, int32_t *best_membership,
                             bmfm_leiden_scan_result *out);

/* The same scan as a job other threads can help: _start builds the graph;
 * _finish (on the thread that scans) computes every resolution no helper
 * claimed, waits for the helpers and picks the best; _help, called by an
 * idle thread before or while _finish runs, asks for up to max_helpers
 * processes (returns 1 if the scan was still open): the scanning thread
 * forks them at its next resolution boundary (as many as leave one
 * unclaimed resolution for each and one for itself) or, until stable, between
 * two sweeps of its current resolution (one unclaimed resolution for each),
 * and they claim resolutions from the same counter, the largest first; _free frees the job (finished or not:
 * unfinished helpers are killed) once no thread can call _help any more.
 * igraph is not thread-safe (Debian builds it without IGRAPH_THREAD_SAFE) but
 * processes do not share its state; each resolution reseeds the RNG, so the
 * results do not depend on who computed what. The fork happens where the
 * scanning thread holds no lock; the caller must keep other threads out of
 * the allocator and of BLAS then (OpenBLAS's fork handler shuts its thread
 * pool down): bmfm_scib_compute asks only from a thread that has nothing
 * left to do. w may be freed after _start. */
#define BMFM_LEIDEN_MAX_HELPERS 64
typedef struct bmfm_leiden_scan_job bmfm_leiden_scan_job;
bmfm_status bmfm_leiden_scan_start(const bmfm_wgraph *w, double res_min, double res_max, double res_step,
                                   uint64_t seed, int n_iterations, bmfm_leiden_scan_job **job);
bmfm_status bmfm_leiden_scan_finish(bmfm_leiden_scan_job *job, const int32_t *labels, int32_t *best_membership,
                                    bmfm_leiden_scan_result *out);
int bmfm_leiden_scan_help(bmfm_leiden_scan_job *job, int max_helpers);
void bmfm_leiden_scan_free(bmfm_leiden_scan_job *job);

#endif
