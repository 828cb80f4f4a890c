/* knn.h - exact Euclidean k-nearest-neighbour graph (brute force, BLAS).
 *
 * What scanpy's sc.pp.neighbors computes for n_obs < 4096 (sklearn brute force;
 * for larger n scanpy switches to approximate pynndescent, and this exact graph
 * is the reference pynndescent approximates). Column 0 of every row is the cell
 * itself at distance 0 (forced, so duplicated points cannot displace it); the
 * other columns are sorted by (distance, index), so ties are deterministic.
 * Distances are float32 sqrt(max(0, d2)) with d2 computed in double from the
 * centred data. It is not an approximate index and does not handle metrics
 * other than Euclidean.
 */
#ifndef BMFM_EVAL_KNN_H
#define BMFM_EVAL_KNN_H

#include <stdint.h>

#include "base/error.h"

typedef struct bmfm_knn {
    int64_t n;      /* rows (cells) */
    int k;          /* columns, self included */
    int32_t *idx;   /* n x k neighbour indices, row-major */
    float *dist;    /* n x k Euclidean distances */
} bmfm_knn;

/* Exact kNN of the n x d row-major float32 matrix X against itself; k is
 * clamped to n. Candidates are screened with blocked sgemm on centred data
 * and re-ranked with distances recomputed in double, so the result does not
 * depend on the thread count. */
bmfm_status bmfm_knn_build(const float *X, int64_t n, int64_t d, int k, bmfm_knn *out);

/* Squared distance of two rows in double, summed in coordinate order: the
 * re-ranking distance of bmfm_knn_build. */
double bmfm_knn_sqdist(const float *a, const float *b, int64_t d);

/* Selection of the kk smallest (row[j] + add[j], col0 + j) pairs, ascending,
 * the lower column first among equal values (the list a plain scan in
 * column order keeps), continued over columns col0..col0+n: best[0..have)
 * and idx[0..have) hold the list so far (have = 0 to start; kk entries
 * each), and the new count (at most kk) is returned. Scanning a row's
 * columns in blocks, block after block, gives the list of one scan. Whole
 * groups of columns are tested against the kk-th best with one vector
 * compare on sums formed in registers (the kNN probe's candidate screening). */
int bmfm_knn_select_row(const float *row, const float *add, int64_t n, int64_t col0, int kk, int have,
                        int32_t *idx, float *best);

/* A view of the first k columns of g as a new graph (copies). */
bmfm_status bmfm_knn_subset(const bmfm_knn *g, int k, bmfm_knn *out);

void bmfm_knn_free(bmfm_knn *g);


/* out = X minus its column means, in double (n x d row-major); the
 * distance and PCA code centre first to keep ||x||^2 small. */
void bmfm_center_f64(const float *X, int64_t n, int64_t d, double *out);

#endif
