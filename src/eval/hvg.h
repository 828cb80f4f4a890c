/* hvg.h - highly variable gene selection as scanpy's
 * sc.pp.highly_variable_genes(n_top_genes=N) computes it (metrics.md B12).
 *
 * Input is per-gene statistics of the log-normalised data after expm1:
 * mean and variance with ddof = 1 (scanpy's _get_mean_var). Flavors:
 *   seurat      dispersion = log(var/mean) (0 -> NaN), mean = log1p(mean),
 *               20 equal-width bins of the mean (pd.cut), z-score of the
 *               dispersion within a bin (pandas mean / std ddof=1, NaN skipped;
 *               a bin with one finite value gives z = 1, scanpy's fix-up)
 *   cell_ranger dispersion = var/mean, bins at the 10,15,..,100th percentiles
 *               of the mean, (disp - median) / MAD (statsmodels robust.mad,
 *               i.e. median |x - median| / 0.6745)
 * Selection (both): the cut-off is the n_top-th largest finite normalised
 * dispersion; genes with nan_to_num(disp_norm) >= cut-off are selected, so
 * ties can select more, as scanpy does.
 * Not here: seurat_v3 (needs raw counts and a loess fit; not implemented),
 * batch-aware selection (batch_key).
 */
#ifndef BMFM_EVAL_HVG_H
#define BMFM_EVAL_HVG_H

#include "base/error.h"

#include <stdint.h>

typedef enum { BMFM_HVG_SEURAT = 0, BMFM_HVG_CELL_RANGER = 1, BMFM_HVG_SEURAT_V3 = 2 } bmfm_hvg_flavor;

/* "seurat" | "cell_ranger" | "seurat_v3" */
bmfm_status bmfm_hvg_flavor_parse(const char *s, bmfm_hvg_flavor *out);
const char *bmfm_hvg_flavor_name(bmfm_hvg_flavor f);

/* selected[g] = 1 for the chosen genes; *n_selected their count; disp_norm
 * (optional, n_genes) receives the normalised dispersions (NaN where scanpy
 * has NaN). mean and var are not modified. */
bmfm_status bmfm_hvg_select(const double *mean, const double *var, int64_t n_genes, int64_t n_top,
                            bmfm_hvg_flavor flavor, double *disp_norm, uint8_t *selected,
                            int64_t *n_selected);

#endif
