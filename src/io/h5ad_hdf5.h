/* h5ad_hdf5.h - small libhdf5 helpers shared by the h5ad reader and writer:
 * string attributes and string datasets in every encoding AnnData writers
 * produce (variable or fixed length, ASCII or UTF-8, scalar byte strings of
 * Muon.jl), dtype names, existence checks that do not print HDF5's error
 * stack, and writing the attributes anndata >= 0.8 expects.
 *
 * It knows nothing of AnnData's layout beyond attribute conventions; the
 * matrix and dataframe logic lives in h5ad_matrix.c and h5ad_frame.c.
 */
#ifndef BMFM_IO_H5AD_HDF5_H
#define BMFM_IO_H5AD_HDF5_H

#include "base/error.h"

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Process-wide HDF5 set-up, once: turn off HDF5's automatic error printing
 * (every failure is reported through bmfm_status instead) and make h5py's
 * LZF filter readable. */
void bmfm_h5_quiet(void);

/* The innermost description on HDF5's error stack (e.g. "truncated file:
 * eof = ..., stored_eof = ..."), or "" when the stack is empty. */
void bmfm_h5_error_detail(char *buf, size_t n);

/* 1 if `path` (relative to loc) names an existing link, all intermediate
 * groups included; 0 otherwise (never an error). */
int bmfm_h5_exists(hid_t loc, const char *path);
/* H5O_TYPE_GROUP / H5O_TYPE_DATASET of loc/path, or H5O_TYPE_UNKNOWN. */
H5O_type_t bmfm_h5_obj_type(hid_t loc, const char *path);

/* Names of the members of group loc/grp in name order (*n = 0 when the
 * group is absent). */
bmfm_status bmfm_h5_members(hid_t loc, const char *file, const char *grp, char ***out, int64_t *n);

/* Attribute `name` of object loc as a malloc'd string (scalar string
 * attribute, variable or fixed length). *out = NULL when the attribute is
 * absent or not a scalar string; never fails except for memory. */
bmfm_status bmfm_h5_attr_string(hid_t obj, const char *name, char **out);
/* A 1-D string-array attribute (e.g. column-order). *n = 0 and *out = NULL
 * when absent or when it is an empty numeric array (anndata writes an empty
 * float64 array for "no columns"). */
bmfm_status bmfm_h5_attr_strings(hid_t obj, const char *name, char ***out, int64_t *n);
/* Integer vector attribute (e.g. shape); returns number of values read into
 * out (at most cap), -1 when absent or not integer. */
int bmfm_h5_attr_ints(hid_t obj, const char *name, int64_t *out, int cap);

/* Read a whole 1-D string dataset into n malloc'd strings. `file` and
 * `field` name it in errors. */
bmfm_status bmfm_h5_read_strings(hid_t dset, const char *file, const char *field, char ***out,
                                 int64_t *n);

/* dtype name of an HDF5 type: "float32", "int64", "uint8", "bool",
 * "string", "compound", ... (always NUL-terminated, fits in 16 bytes). */
void bmfm_h5_type_name(hid_t type, char out[16]);
/* 1 for integer/float (and bool enum) element types, 0 otherwise. */
int bmfm_h5_type_is_numeric(hid_t type);
/* 1 for h5py's bool (an 8-bit enum FALSE=0/TRUE=1). */
int bmfm_h5_type_is_bool(hid_t type);

/* Dimensions of a dataset: returns rank (<= cap dims written), -1 on error. */
int bmfm_h5_dims(hid_t dset, int64_t *dims, int cap);

/* Read elements [start, start+count) of a 1-D dataset converting to
 * `memtype` (H5T_NATIVE_INT64, H5T_NATIVE_FLOAT, ...). count may be 0. */
bmfm_status bmfm_h5_read_range(hid_t dset, hid_t memtype, int64_t start, int64_t count, void *buf,
                               const char *file, const char *field);
/* Rows [r0, r0+nr) x all columns of a 2-D dataset, row-major, into buf. */
bmfm_status bmfm_h5_read_rows2d(hid_t dset, hid_t memtype, int64_t r0, int64_t nr, int64_t ncols,
                                void *buf, const char *file, const char *field);

/* Writing: scalar variable-length UTF-8 string attribute (replaced if it
 * exists), a 1-D vlen UTF-8 string-array attribute, and a bool attribute in
 * h5py's enum encoding. */
bmfm_status bmfm_h5_write_attr_string(hid_t obj, const char *name, const char *value);
bmfm_status bmfm_h5_write_attr_strings(hid_t obj, const char *name, const char *const *values,
                                       int64_t n);
bmfm_status bmfm_h5_write_attr_bool(hid_t obj, const char *name, int value);
/* encoding-type / encoding-version attribute pair. */
bmfm_status bmfm_h5_write_encoding(hid_t obj, const char *type, const char *version);
/* A 1-D vlen UTF-8 string dataset (anndata's "string-array"). */
bmfm_status bmfm_h5_write_strings(hid_t loc, const char *name, const char *const *values, int64_t n);

/* A fresh vlen UTF-8 string type (caller closes). */
hid_t bmfm_h5_vlen_utf8(void);

#endif
