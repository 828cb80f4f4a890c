/* h5ad_encode.h - write AnnData elements in the anndata >= 0.8 on-disk
 * encoding (the layout python anndata 0.8-0.10 reads): dict groups,
 * dataframes, categorical / numeric / string columns and the column-order
 * attribute. Used by the editor (h5ad_write.c) and the exporter
 * (h5ad_export.c). Callers pass names already checked by
 * bmfm_h5ad_check_key.
 */
#ifndef BMFM_IO_H5AD_ENCODE_H
#define BMFM_IO_H5AD_ENCODE_H

#include "base/error.h"

#include <hdf5.h>
#include <stdint.h>

/* A key usable as an HDF5 link name and an anndata key: non-empty, no '/',
 * not "." or "..". `what` ("obsm key") names it in the error. */
bmfm_status bmfm_h5ad_check_key(const char *key, const char *what);

/* Open group loc/name, creating it as an empty "dict" if absent. */
bmfm_status bmfm_h5ad_open_dict(hid_t loc, const char *name, hid_t *out);
/* Remove loc/name if present, and a 0.7 __categories/name beside it. */
bmfm_status bmfm_h5ad_remove(hid_t loc, const char *name);

/* A new dataframe group loc/name with index `index` (n rows) and no columns. */
bmfm_status bmfm_h5ad_write_dataframe(hid_t loc, const char *name, const char *const *index, int64_t n);
/* Columns of an open dataframe group (replacing a column of that name; the
 * caller appends the name to column-order). Codes: -1 = missing. */
bmfm_status bmfm_h5ad_write_categorical(hid_t df, const char *name, const int32_t *codes, int64_t n,
                                        const char *const *categories, int64_t n_categories);
bmfm_status bmfm_h5ad_write_numeric(hid_t df, const char *name, const double *values, int64_t n);
bmfm_status bmfm_h5ad_write_string_column(hid_t df, const char *name, const char *const *values, int64_t n);
/* A numeric "array" dataset loc/name (replaced if present) of the given
 * rank and dims, stored as ftype, converted from memory type mtype. */
bmfm_status bmfm_h5ad_write_array(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *buf,
                                  int rank, const hsize_t *dims);
/* Append `name` to the dataframe's column-order unless present. */
bmfm_status bmfm_h5ad_add_column_order(hid_t df, const char *name);

#endif
