/* dataset.c - the public calls of dataset.h over the backend table of
 * dataset_impl.h: dispatch by input kind, argument checks, caching of names
 * and column lists, and the bmfm_csr / bmfm_column helpers.
 */
#include "io/dataset_impl.h"

#include "base/alloc.h"
#include "base/fileutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bmfm_free_strings(char **s, int64_t n) {
    if (!s) return;
    if (n < 0) {
        for (int64_t i = 0; s[i]; i++) free(s[i]);
    } else {
        for (int64_t i = 0; i < n; i++) free(s[i]);
    }
    free(s);
}

void bmfm_csr_free(bmfm_csr *m) {
    if (!m) return;
    free(m->indptr);
    free(m->indices);
    free(m->data);
    memset(m, 0, sizeof *m);
}

bmfm_status bmfm_csr_reserve(bmfm_csr *m, int64_t nrows, int64_t nnz) {
    if (nrows < 0 || nnz < 0) return bmfm_error_set(BMFM_E_INTERNAL, "bmfm_csr_reserve: negative size");
    if ((size_t)nrows + 1 > m->cap_rows) {
        size_t cap = m->cap_rows;
        if (bmfm_grow((void **)&m->indptr, &cap, (size_t)nrows + 1, sizeof *m->indptr) < 0) return BMFM_E_NOMEM;
        m->cap_rows = cap;
    }
    if ((size_t)nnz > m->cap_nnz || !m->indices) {
        size_t ci = m->cap_nnz, cd = m->cap_nnz, need = nnz > 0 ? (size_t)nnz : 1;
        if (bmfm_grow((void **)&m->indices, &ci, need, sizeof *m->indices) < 0 ||
            bmfm_grow((void **)&m->data, &cd, need, sizeof *m->data) < 0)
            return BMFM_E_NOMEM;
        m->cap_nnz = ci < cd ? ci : cd;
    }
    return BMFM_OK;
}

const char *bmfm_column_kind_name(bmfm_column_kind k) {
    switch (k) {
    case BMFM_COL_CATEGORICAL: return "categorical";
    case BMFM_COL_STRING: return "string";
    case BMFM_COL_FLOAT: return "float";
    case BMFM_COL_INT: return "int";
    case BMFM_COL_BOOL: return "bool";
    }
    return "bool";
}

void bmfm_column_free(bmfm_column *c) {
    if (!c) return;
    free(c->name);
    free(c->codes);
    bmfm_free_strings(c->categories, c->n_categories);
    if (c->strings) bmfm_free_strings(c->strings, c->n);
    free(c->values);
    memset(c, 0, sizeof *c);
}

const char *bmfm_column_text(const bmfm_column *c, int64_t i, char *buf, size_t n) {
    if (i < 0 || i >= c->n) return NULL;
    switch (c->kind) {
    case BMFM_COL_CATEGORICAL: {
        int32_t k = c->codes ? c->codes[i] : -1;
        return k >= 0 && k < c->n_categories ? c->categories[k] : NULL;
    }
    case BMFM_COL_STRING: return c->strings ? c->strings[i] : NULL;
    default: break;
    }
    double v = c->values ? c->values[i] : 0.0;
    if (v != v) return NULL;
    if (c->kind == BMFM_COL_BOOL) snprintf(buf, n, "%s", v != 0 ? "True" : "False");
    else if (c->kind == BMFM_COL_INT) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.9g", v);
    return buf;
}

bmfm_status bmfm_dataset_open(const char *path, const char *matrix, bmfm_dataset **out) {
    if (!path || !out) return bmfm_error_set(BMFM_E_INTERNAL, "bmfm_dataset_open: NULL argument");
    *out = NULL;
    if (!bmfm_is_directory(path)) return bmfm_h5ad_open_dataset(path, matrix, out);
    if (matrix && strcmp(matrix, "X") != 0)
        return bmfm_error_set(BMFM_E_INPUT, "%s: a 10x directory has one matrix; '%s' does not exist", path, matrix);
    return bmfm_mtx_open_dataset(path, out);
}

void bmfm_dataset_close(bmfm_dataset *ds) {
    if (!ds) return;
    if (ds->ops && ds->ops->close) ds->ops->close(ds);
    free(ds->path);
    bmfm_free_strings(ds->obs_names, ds->info.n_obs);
    bmfm_free_strings(ds->var_names, ds->info.n_vars);
    bmfm_free_strings(ds->obs_columns, ds->n_obs_columns);
    bmfm_free_strings(ds->var_columns, ds->n_var_columns);
    bmfm_free_strings(ds->layers, ds->n_layers);
    bmfm_free_strings(ds->obsm_keys, ds->n_obsm_keys);
    free(ds);
}

bmfm_source_kind bmfm_dataset_kind(const bmfm_dataset *ds) { return ds->kind; }
const char *bmfm_dataset_path(const bmfm_dataset *ds) { return ds->path; }
const bmfm_matrix_info *bmfm_dataset_info(const bmfm_dataset *ds) { return &ds->info; }
int64_t bmfm_dataset_n_obs(const bmfm_dataset *ds) { return ds->info.n_obs; }
int64_t bmfm_dataset_n_vars(const bmfm_dataset *ds) { return ds->info.n_vars; }

static bmfm_status names(bmfm_dataset *ds, int axis, const char *const **out) {
    char ***cache = axis ? &ds->var_names : &ds->obs_names;
    if (!*cache) BMFM_TRY(ds->ops->load_names(ds, axis, cache));
    *out = (const char *const *)*cache;
    return BMFM_OK;
}

bmfm_status bmfm_dataset_obs_names(bmfm_dataset *ds, const char *const **out) { return names(ds, 0, out); }
bmfm_status bmfm_dataset_var_names(bmfm_dataset *ds, const char *const **out) { return names(ds, 1, out); }

bmfm_status bmfm_dataset_read_rows(bmfm_dataset *ds, int64_t begin, int64_t end, bmfm_csr *out) {
    if (begin < 0 || end < begin || end > ds->info.n_obs)
        return bmfm_error_set(BMFM_E_INPUT, "%s: rows [%lld, %lld) are outside [0, %lld)", ds->path, (long long)begin,
                              (long long)end, (long long)ds->info.n_obs);
    return ds->ops->read_rows(ds, begin, end, out);
}

static bmfm_status load_obs_columns(bmfm_dataset *ds, char ***c, int64_t *n) { return ds->ops->list_columns(ds, 0, c, n); }
static bmfm_status load_var_columns(bmfm_dataset *ds, char ***c, int64_t *n) { return ds->ops->list_columns(ds, 1, c, n); }

/* A cached list, loaded on first use. An empty list leaves the cache NULL
 * and is simply listed again next time (cheap), which keeps the struct of
 * dataset_impl.h free of "loaded" flags. */
static bmfm_status list(bmfm_dataset *ds, char ***cache, int64_t *count,
                        bmfm_status (*load)(bmfm_dataset *, char ***, int64_t *), const char *const **names,
                        int64_t *n) {
    if (!*cache) {
        *count = 0;
        BMFM_TRY(load(ds, cache, count));
    }
    *names = (const char *const *)*cache;
    *n = *count;
    return BMFM_OK;
}

bmfm_status bmfm_dataset_obs_columns(bmfm_dataset *ds, const char *const **names, int64_t *n) {
    return list(ds, &ds->obs_columns, &ds->n_obs_columns, load_obs_columns, names, n);
}

bmfm_status bmfm_dataset_var_columns(bmfm_dataset *ds, const char *const **names, int64_t *n) {
    return list(ds, &ds->var_columns, &ds->n_var_columns, load_var_columns, names, n);
}

bmfm_status bmfm_dataset_obs_column(bmfm_dataset *ds, const char *name, bmfm_column *out) {
    return ds->ops->read_column(ds, 0, name, out);
}

bmfm_status bmfm_dataset_var_column(bmfm_dataset *ds, const char *name, bmfm_column *out) {
    return ds->ops->read_column(ds, 1, name, out);
}

bmfm_status bmfm_dataset_layers(bmfm_dataset *ds, const char *const **names, int64_t *n) {
    if (!ds->ops->list_layers) {
        *names = NULL;
        *n = 0;
        return BMFM_OK;
    }
    return list(ds, &ds->layers, &ds->n_layers, ds->ops->list_layers, names, n);
}

bmfm_status bmfm_dataset_obsm_keys(bmfm_dataset *ds, const char *const **names, int64_t *n) {
    if (!ds->ops->list_obsm) {
        *names = NULL;
        *n = 0;
        return BMFM_OK;
    }
    return list(ds, &ds->obsm_keys, &ds->n_obsm_keys, ds->ops->list_obsm, names, n);
}

bmfm_status bmfm_dataset_obsm_read(bmfm_dataset *ds, const char *key, float **data, int64_t *rows,
                                   int64_t *cols) {
    if (!ds->ops->read_obsm) return bmfm_error_set(BMFM_E_INPUT, "%s: no obsm '%s'", ds->path, key);
    return ds->ops->read_obsm(ds, key, data, rows, cols);
}

int bmfm_dataset_has_raw(bmfm_dataset *ds) { return ds->ops->has_raw ? ds->ops->has_raw(ds) : 0; }
