/* dataset.h - one read API over every cell-by-gene input: .h5ad files (X as
 * CSR, CSC or dense; layers; raw/X) and 10x Genomics matrix directories.
 *
 * Rows [begin, end) come back as CSR in a caller-owned, reusable buffer, so
 * memory is bounded by the chunk, not the file. Names and dataframe columns
 * are read on demand. Backends live in h5ad_read.c and mtx.c behind the
 * private table in dataset_impl.h.
 *
 * Cost of read_rows by storage: CSR and dense read each requested value
 * once. CSC has no row access on disk: each read outside its read-ahead
 * cache scans the whole matrix once (streaming all rows in order costs
 * about 1 + nnz / 4M scans; see h5ad_matrix.h).
 * A dataset is not safe to use from several threads at once (it reuses
 * scratch buffers); give each thread its own. Debian's libhdf5 is the
 * thread-safe build, which serializes the reads underneath.
 */
#ifndef BMFM_IO_DATASET_H
#define BMFM_IO_DATASET_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

/* A CSR block of rows. Buffers grow as needed and are reused between reads. */
typedef struct bmfm_csr {
    int64_t nrows, ncols;
    int64_t *indptr;   /* nrows + 1 entries, indptr[0] == 0 */
    int32_t *indices;  /* column of each stored value, ascending within a row */
    float *data;       /* stored values (explicit zeros are dropped) */
    size_t cap_rows, cap_nnz;
} bmfm_csr;

void bmfm_csr_free(bmfm_csr *m);
/* Make room for nrows rows and nnz values (keeps contents). */
bmfm_status bmfm_csr_reserve(bmfm_csr *m, int64_t nrows, int64_t nnz);

typedef enum {
    BMFM_COL_CATEGORICAL, /* codes + categories (string categories) */
    BMFM_COL_STRING,      /* one string per row */
    BMFM_COL_FLOAT,       /* values (NaN = missing) */
    BMFM_COL_INT,         /* values hold the integers exactly */
    BMFM_COL_BOOL         /* values are 0/1 */
} bmfm_column_kind;

typedef struct bmfm_column {
    char *name;
    bmfm_column_kind kind;
    int64_t n;             /* rows */
    int32_t *codes;        /* CATEGORICAL: per row, -1 = missing */
    char **categories;     /* CATEGORICAL: n_categories strings (numeric categories are formatted) */
    int64_t n_categories;
    char **strings;        /* STRING: per row */
    double *values;        /* FLOAT, INT, BOOL: per row */
} bmfm_column;

void bmfm_column_free(bmfm_column *c);
/* "categorical", "string", "float", "int" or "bool" (the names inspect --json prints). */
const char *bmfm_column_kind_name(bmfm_column_kind k);
/* Row i as text whatever the kind (categories, strings, formatted numbers);
 * NULL when missing. `buf` holds formatted numbers. */
const char *bmfm_column_text(const bmfm_column *c, int64_t i, char *buf, size_t n);

typedef enum { BMFM_X_CSR, BMFM_X_CSC, BMFM_X_DENSE, BMFM_X_MTX } bmfm_x_encoding;
typedef enum { BMFM_SOURCE_H5AD, BMFM_SOURCE_10X } bmfm_source_kind;

typedef struct bmfm_matrix_info {
    int64_t n_obs, n_vars;
    int64_t nnz;              /* stored values (n_obs*n_vars for dense) */
    bmfm_x_encoding encoding;
    char dtype[16];           /* "float32", "float64", "int32", "int64", ... */
    char index_dtype[16];     /* sparse: "int32" / "int64"; "" otherwise */
    char location[256];       /* "/X", "/layers/counts", "/raw/X", "matrix.mtx.gz" */
} bmfm_matrix_info;

typedef struct bmfm_dataset bmfm_dataset;

/* Open an .h5ad file or a 10x directory (matrix.mtx[.gz] + features/genes +
 * barcodes). `matrix` picks the matrix: NULL or "X" for X, "raw" for raw/X
 * (var names then come from raw/var), "layers/NAME" or "NAME" for a layer.
 * Validates the matrix structure cheaply (shapes, indptr length and ends). */
bmfm_status bmfm_dataset_open(const char *path, const char *matrix, bmfm_dataset **out);
void bmfm_dataset_close(bmfm_dataset *ds);

bmfm_source_kind bmfm_dataset_kind(const bmfm_dataset *ds);
const char *bmfm_dataset_path(const bmfm_dataset *ds);
const bmfm_matrix_info *bmfm_dataset_info(const bmfm_dataset *ds);
int64_t bmfm_dataset_n_obs(const bmfm_dataset *ds);
int64_t bmfm_dataset_n_vars(const bmfm_dataset *ds);

/* Names, loaded on first use and owned by the dataset. */
bmfm_status bmfm_dataset_obs_names(bmfm_dataset *ds, const char *const **names);
bmfm_status bmfm_dataset_var_names(bmfm_dataset *ds, const char *const **names);

/* Rows [begin, end) as CSR (indices sorted within each row). Values are
 * converted to float32. Rejects out-of-range or non-monotonic indptr,
 * out-of-range indices and non-finite values with an error naming the field. */
bmfm_status bmfm_dataset_read_rows(bmfm_dataset *ds, int64_t begin, int64_t end, bmfm_csr *out);

/* Dataframe columns of obs / var (for 10x: var has gene_ids, feature_types
 * when present; obs has none). Column names exclude the index. */
bmfm_status bmfm_dataset_obs_columns(bmfm_dataset *ds, const char *const **names, int64_t *n);
bmfm_status bmfm_dataset_var_columns(bmfm_dataset *ds, const char *const **names, int64_t *n);
bmfm_status bmfm_dataset_obs_column(bmfm_dataset *ds, const char *name, bmfm_column *out);
bmfm_status bmfm_dataset_var_column(bmfm_dataset *ds, const char *name, bmfm_column *out);

/* Other content, for `bmfm inspect` and the evaluation suite. */
bmfm_status bmfm_dataset_layers(bmfm_dataset *ds, const char *const **names, int64_t *n);
bmfm_status bmfm_dataset_obsm_keys(bmfm_dataset *ds, const char *const **names, int64_t *n);
/* obsm[key] as a row-major float32 matrix (malloc'd; caller frees). */
bmfm_status bmfm_dataset_obsm_read(bmfm_dataset *ds, const char *key, float **data, int64_t *rows,
                                   int64_t *cols);
/* Whether raw/X exists (h5ad only). */
int bmfm_dataset_has_raw(bmfm_dataset *ds);

#endif
