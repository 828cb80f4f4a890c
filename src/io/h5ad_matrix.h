/* h5ad_matrix.h - one cell-by-gene matrix inside an open .h5ad (X, a layer
 * or raw/X), streamed as CSR row blocks whatever its storage: a CSR group
 * (hyperslabs of indptr, then indices/data), a CSC group (column blocks,
 * bucketed by row) or a dense 2-D dataset (row blocks).
 *
 * Memory per read is bounded by the rows asked for plus one block of
 * BMFM_H5_BLOCK entries. CSC also keeps its column pointer (n_vars + 1),
 * a count per row (n_obs) and a read-ahead cache of BMFM_H5_CSC_CACHE
 * entries (8 bytes each).
 * Cost: CSR and dense read each stored value once per pass. CSC has no row
 * access on disk: the first read scans all indices once to count rows, and
 * every read outside the cache scans the whole matrix once, caching the
 * requested rows and the rows after them up to the budget, so streaming all
 * rows in order costs about 1 + nnz / BMFM_H5_CSC_CACHE full scans.
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
/* Entries the CSC read-ahead cache may hold (32 MiB; 44 MiB with the scan block). */
#define BMFM_H5_CSC_CACHE ((int64_t)1 << 22)

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
    /* CSC: entries per row (after the first read) and a read-ahead cache of
     * rows [cache_b, cache_e) holding at most cache_budget entries (more
     * only when one request alone needs more) */
    int64_t *row_count;
    bmfm_csr cache;
    int64_t cache_b, cache_e, cache_budget;
} bmfm_h5_matrix;

/* Open and validate (shape, dtypes, indptr length and ends) the matrix at
 * `loc` of an open file. m is zeroed first. */
bmfm_status bmfm_h5_matrix_open(hid_t file, const char *file_name, const char *loc, bmfm_h5_matrix *m);
/* Rows [begin, end) into out; 0 <= begin <= end <= n_obs. */
bmfm_status bmfm_h5_matrix_read_rows(bmfm_h5_matrix *m, int64_t begin, int64_t end, bmfm_csr *out);
void bmfm_h5_matrix_close(bmfm_h5_matrix *m);

#endif
