/* h5ad_write.h - add or replace obsm matrices and obs columns in an .h5ad,
 * keeping every other object, so python anndata reads exactly what we wrote.
 *
 * The edit works on a temporary copy next to the output ("<out>.tmp-<pid>")
 * and renames it over the output on commit; an error or abort leaves the
 * output (and the input) untouched. With out_path == NULL or equal to the
 * input the file is edited "in place" through the same temporary copy.
 * For a 10x input (no .h5ad to copy) a new .h5ad is created holding X as CSR
 * float32, obs (barcodes) and var (features) in the anndata 0.8 encoding.
 */
#ifndef BMFM_IO_H5AD_WRITE_H
#define BMFM_IO_H5AD_WRITE_H

#include "io/dataset.h"

typedef struct bmfm_h5ad_edit bmfm_h5ad_edit;

/* Start an edit of dataset `ds` (opened with bmfm_dataset_open), writing to
 * out_path. Checks that out_path's directory is writable before copying. */
bmfm_status bmfm_h5ad_edit_begin(bmfm_dataset *ds, const char *out_path, bmfm_h5ad_edit **out);

/* obsm[key] = data (rows x cols, row-major float32); rows must equal n_obs. */
bmfm_status bmfm_h5ad_edit_put_obsm(bmfm_h5ad_edit *e, const char *key, const float *data,
                                    int64_t rows, int64_t cols);
/* obs[col] = categorical with string categories; codes per row, -1 = missing. */
bmfm_status bmfm_h5ad_edit_put_obs_categorical(bmfm_h5ad_edit *e, const char *col,
                                               const int32_t *codes, const char *const *categories,
                                               int64_t n_categories);
/* obs[col] = float64 numeric column (NaN = missing). */
bmfm_status bmfm_h5ad_edit_put_obs_numeric(bmfm_h5ad_edit *e, const char *col, const double *values);
/* uns[key] = a UTF-8 string scalar (provenance, e.g. the model and options used). */
bmfm_status bmfm_h5ad_edit_put_uns_string(bmfm_h5ad_edit *e, const char *key, const char *value);

/* Write a new .h5ad at out_path (atomically) holding the dataset's selected
 * matrix as CSR float32 (streamed in row blocks, explicit zeros dropped),
 * obs (names) and var (names and columns) in the anndata 0.8 encoding, and
 * empty obsm/varm/obsp/varp/layers/uns. Works for any input kind; this is
 * what bmfm_h5ad_edit_begin does for a 10x directory. */
bmfm_status bmfm_h5ad_export(bmfm_dataset *ds, const char *out_path);

/* Flush, close and rename into place. Frees e whatever the outcome. */
bmfm_status bmfm_h5ad_edit_commit(bmfm_h5ad_edit *e);
/* Discard the temporary copy. Frees e. */
void bmfm_h5ad_edit_abort(bmfm_h5ad_edit *e);

#endif
