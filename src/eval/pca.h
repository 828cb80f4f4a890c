/* pca.h - the PCA baseline embedding users trust (cz-benchmarks'
 * run_standard_scrna_workflow, metrics.md B12): normalize_total to the median
 * library size, log1p, HVGs (hvg.h), optional scaling, PCA to 50 components.
 *
 * The input comes as CSR row blocks from a callback, so the counts are
 * streamed twice (totals, gene statistics) and only the n x n_hvg matrix of
 * selected genes is held (float32). PCA is exact: the covariance (genes x
 * genes, or the cells x cells Gram matrix when there are fewer cells than
 * genes) is accumulated in double with dsyrk; its top eigenpairs come from a
 * block Krylov iteration whose residuals are checked (||Av - wv|| <= 1e-8 w_1),
 * else from LAPACK dsyevr (OpenBLAS ships LAPACK; no ARPACK dependency). Equal to
 * scanpy's arpack/full SVD up to the sign of each component; signs follow
 * sklearn 1.2's svd_flip (u-based: the largest |score| of a component is
 * positive), so output is deterministic.
 * Not here: seurat_v3 HVGs, batch-aware HVGs, randomized or sparse-implicit
 * PCA for >100k genes kept.
 */
#ifndef BMFM_EVAL_PCA_H
#define BMFM_EVAL_PCA_H

#include "base/error.h"
#include "eval/hvg.h"
#include "io/dataset.h"

#include <stdint.h>

/* Rows [begin, end) as CSR; the block stays owned by the source. */
typedef bmfm_status (*bmfm_rows_fn)(void *ctx, int64_t begin, int64_t end, const bmfm_csr **out);

typedef enum {
    BMFM_BASELINE_INPUT_AUTO = 0, /* counts when every value is a non-negative integer */
    BMFM_BASELINE_INPUT_COUNTS,   /* normalize_total + log1p */
    BMFM_BASELINE_INPUT_LOG       /* already log-normalised: used as is */
} bmfm_baseline_input;

typedef struct bmfm_baseline_options {
    int64_t n_hvg;          /* 3000; <= 0 keeps every gene */
    bmfm_hvg_flavor flavor; /* seurat */
    int n_comps;            /* 50 */
    int scale;              /* 0; 1 = zero mean, unit variance (ddof 1), clip at max_value */
    double max_value;       /* 10 */
    bmfm_baseline_input input;
    int64_t chunk_rows;     /* 2048 */
    void (*progress)(const char *step, void *ctx);
    void *progress_ctx;
} bmfm_baseline_options;

void bmfm_baseline_options_default(bmfm_baseline_options *o);

typedef struct bmfm_pca_result {
    int64_t n_obs, n_comps, n_genes; /* n_genes: genes used (HVGs) */
    float *X_pca;                    /* n_obs x n_comps, row-major */
    double *variance;                /* n_comps, ddof 1 (scanpy uns['pca']['variance']) */
    double *variance_ratio;          /* n_comps */
    double *components;              /* n_comps x n_genes */
    int32_t *genes;                  /* n_genes indices into the input's genes, ascending */
    int normalized;                  /* 1 when normalize_total + log1p were applied */
    double target_sum;               /* median library size used (0 when not normalised) */
    char note[512];                  /* what was done that a user should know */
} bmfm_pca_result;

void bmfm_pca_result_free(bmfm_pca_result *r);

/* PCA of a dense n x d matrix (row-major; centred in place). */
bmfm_status bmfm_pca_dense(float *X, int64_t n, int64_t d, int n_comps, bmfm_pca_result *out);

/* The whole baseline on an n_obs x n_vars matrix served by `read`. */
bmfm_status bmfm_baseline_pca(int64_t n_obs, int64_t n_vars, bmfm_rows_fn read, void *ctx,
                              const bmfm_baseline_options *o, bmfm_pca_result *out);

#endif
