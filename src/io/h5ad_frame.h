/* h5ad_frame.h - AnnData dataframes (obs, var, raw/var) in an open .h5ad:
 * the index (`_index` attribute, else an "_index" or "index" dataset), the
 * column list (`column-order`, else the group's members) and one column in
 * any encoding AnnData 0.7-0.10 writes: categoricals as a categories/codes
 * group (>= 0.8) or as codes with a `categories` object reference into
 * `__categories` (0.7); variable or fixed-length strings; numbers; bools;
 * nullable-integer / nullable-boolean groups (masked rows read as NaN).
 *
 * Not here: pre-0.7 dataframes stored as one compound dataset (rejected with
 * a clear error), matrices (h5ad_matrix.c).
 */
#ifndef BMFM_IO_H5AD_FRAME_H
#define BMFM_IO_H5AD_FRAME_H

#include "io/dataset.h"

#include <hdf5.h>

/* The index of dataframe `grp` ("/obs") as n_rows strings (numbers are
 * formatted). `file_name` names the file in errors. */
bmfm_status bmfm_h5_frame_index(hid_t file, const char *file_name, const char *grp, char ***names,
                                int64_t *n);
/* Column names in order, excluding the index. */
bmfm_status bmfm_h5_frame_columns(hid_t file, const char *file_name, const char *grp, char ***names,
                                  int64_t *n);
/* One column; n_rows is the expected length (checked). */
bmfm_status bmfm_h5_frame_column(hid_t file, const char *file_name, const char *grp, const char *col,
                                 int64_t n_rows, bmfm_column *out);

#endif
