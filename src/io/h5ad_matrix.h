/* h5ad_matrix.h - one cell-by-gene matrix inside an open .h5ad (X, a layer
 * or raw/X), streamed as CSR row blocks whatever its storage: a CSR group
 * (hyperslabs of indptr, then indices/data), a CSC group (column blocks,
 * bucketed by row) or a dense 2-D dataset (row blocks).
 *
 * Memory per read is bounded by the rows asked for plus one block of
 * BMFM_H5_BLOCK entries; CSC also keeps its column pointer (n_vars + 1).
 * Cost: CSR and dense read each stored value once per pass; CSC reads every
 * stored value of the matrix for every row block (one full scan per call),
 * which is the price of not transposing on disk.
 *
 * Not here: names and dataframes (h5ad_frame.c), the dataset table
 * (h5ad_read.c).
 */
#ifndef BMFM_IO_H5AD_MATRIX_H
#define BMFM_IO_H5AD_MATRIX_H

#include "io/dataset.h"

#include <hdf5.h>

/* Entries per HDF5 read when scanning CSC columns or dense rows. */
#define BMFM_H5_BLOCK ((int64_t)1 << 20)

typedef struct bmfm_h5_matrix {
    const char *file;  /* for messages (not owned) */
    char loc[256];     /* "/X", "/layers/counts", "/raw/X" */
    bmfm_x_encoding enc;
    int64_t n_obs, n_vars, nnz;
    char dtype[16], index_dtype[16];
    hid_t d_data, d_indices, d_indptr; /* sparse; d_data is the dense dataset too */
    int64_t *major_ptr;                /* CSC: the n_vars + 1 column pointers */
    int64_t block;                     /* entries per CSC/dense read; BMFM_H5_BLOCK (tests lower it) */
    /* scratch reused between reads */
    int64_t *ibuf;
    float *fbuf;
    size_t cap_buf;
    int64_t *trip_row;
    int32_t *trip_col;
    float *trip_val;
    size_t cap_trip;
} bmfm_h5_matrix;

/* Open and validate (shape, dtypes, indptr length and ends) the matrix at
 * `loc` of an open file. m is zeroed first. */
bmfm_status bmfm_h5_matrix_open(hid_t file, const char *file_name, const char *loc, bmfm_h5_matrix *m);
/* Rows [begin, end) into out; 0 <= begin <= end <= n_obs. */
bmfm_status bmfm_h5_matrix_read_rows(bmfm_h5_matrix *m, int64_t begin, int64_t end, bmfm_csr *out);
void bmfm_h5_matrix_close(bmfm_h5_matrix *m);

#endif
