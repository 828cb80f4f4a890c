/* dataset_impl.h - the private backend table behind dataset.h.
 *
 * A backend (h5ad_read.c, mtx.c) fills a bmfm_dataset with its ops and the
 * common fields; dataset.c implements the public calls on top (caching names
 * and column lists, argument checks).
 */
#ifndef BMFM_IO_DATASET_IMPL_H
#define BMFM_IO_DATASET_IMPL_H

#include "io/dataset.h"

typedef struct bmfm_dataset_ops {
    bmfm_status (*read_rows)(bmfm_dataset *ds, int64_t begin, int64_t end, bmfm_csr *out);
    /* axis 0 = obs, 1 = var. names: the index. */
    bmfm_status (*load_names)(bmfm_dataset *ds, int axis, char ***names);
    bmfm_status (*list_columns)(bmfm_dataset *ds, int axis, char ***names, int64_t *n);
    bmfm_status (*read_column)(bmfm_dataset *ds, int axis, const char *name, bmfm_column *out);
    bmfm_status (*list_layers)(bmfm_dataset *ds, char ***names, int64_t *n);
    bmfm_status (*list_obsm)(bmfm_dataset *ds, char ***names, int64_t *n);
    bmfm_status (*read_obsm)(bmfm_dataset *ds, const char *key, float **data, int64_t *rows, int64_t *cols);
    int (*has_raw)(bmfm_dataset *ds);
    void (*close)(bmfm_dataset *ds); /* frees impl only */
} bmfm_dataset_ops;

struct bmfm_dataset {
    const bmfm_dataset_ops *ops;
    void *impl;
    bmfm_source_kind kind;
    char *path;
    bmfm_matrix_info info;
    /* caches filled by dataset.c on first use (NULL until then) */
    char **obs_names, **var_names;
    char **obs_columns, **var_columns, **layers, **obsm_keys;
    int64_t n_obs_columns, n_var_columns, n_layers, n_obsm_keys;
};

/* Backend entry points, used by bmfm_dataset_open. */
bmfm_status bmfm_h5ad_open_dataset(const char *path, const char *matrix, bmfm_dataset **out);
bmfm_status bmfm_mtx_open_dataset(const char *dir, bmfm_dataset **out);

/* Free a NULL-terminated or counted string array. */
void bmfm_free_strings(char **s, int64_t n);

#endif
