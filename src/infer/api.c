/* api.c - inference over a CSR matrix held in the caller's memory (the
 * Python module): a read-only dataset backend over the caller's arrays, so
 * the whole pipeline (gene resolver, raw-count check, streaming) is the same
 * as for files. The arrays are borrowed, never copied whole. */
#include "infer/api.h"

#include "base/alloc.h"
#include "infer/embed.h"
#include "io/dataset_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_csr {
    const int64_t *indptr;
    const int32_t *indices;
    const float *data;
    const char *const *var_names;
} mem_csr;

static bmfm_status mem_read_rows(bmfm_dataset *ds, int64_t begin, int64_t end, bmfm_csr *out) {
    const mem_csr *m = ds->impl;
    int64_t lo = m->indptr[begin], hi = m->indptr[end];
    if (lo < 0 || hi < lo || hi > ds->info.nnz)
        return bmfm_error_set(BMFM_E_INPUT, "%s: indptr[%lld..%lld] = %lld..%lld is not monotonic within [0, %lld]",
                              ds->path, (long long)begin, (long long)end, (long long)lo, (long long)hi,
                              (long long)ds->info.nnz);
    BMFM_TRY(bmfm_csr_reserve(out, end - begin, hi - lo));
    out->nrows = end - begin;
    out->ncols = ds->info.n_vars;
    out->indptr[0] = 0;
    int64_t k = 0;
    for (int64_t i = begin; i < end; i++) {
        if (m->indptr[i + 1] < m->indptr[i])
            return bmfm_error_set(BMFM_E_INPUT, "%s: indptr decreases at row %lld", ds->path, (long long)i);
        for (int64_t p = m->indptr[i]; p < m->indptr[i + 1]; p++) {
            int32_t c = m->indices[p];
            float v = m->data[p];
            if (c < 0 || c >= ds->info.n_vars)
                return bmfm_error_set(BMFM_E_INPUT, "%s: row %lld: column %d out of range [0, %lld)", ds->path,
                                      (long long)i, c, (long long)ds->info.n_vars);
            if (!isfinite(v))
                return bmfm_error_set(BMFM_E_INPUT, "%s: row %lld: non-finite value", ds->path, (long long)i);
            if (v == 0.0f) continue;
            out->indices[k] = c;
            out->data[k] = v;
            k++;
        }
        out->indptr[i - begin + 1] = k;
    }
    return BMFM_OK;
}

static bmfm_status mem_load_names(bmfm_dataset *ds, int axis, char ***names) {
    const mem_csr *m = ds->impl;
    int64_t n = axis ? ds->info.n_vars : ds->info.n_obs;
    char **s = bmfm_calloc((size_t)(n ? n : 1), sizeof *s);
    if (!s) return BMFM_E_NOMEM;
    for (int64_t i = 0; i < n; i++) {
        char buf[32];
        if (!axis) snprintf(buf, sizeof buf, "%lld", (long long)i);
        s[i] = bmfm_strdup(axis ? (m->var_names[i] ? m->var_names[i] : "") : buf);
        if (!s[i]) {
            bmfm_free_strings(s, i);
            return BMFM_E_NOMEM;
        }
    }
    *names = s;
    return BMFM_OK;
}

static bmfm_status mem_list_columns(bmfm_dataset *ds, int axis, char ***names, int64_t *n) {
    *names = NULL;
    *n = 0;
    return BMFM_OK;
}

static bmfm_status mem_read_column(bmfm_dataset *ds, int axis, const char *name, bmfm_column *out) {
    return bmfm_error_set(BMFM_E_INPUT, "%s: no %s column '%s' (only the matrix and gene names are passed)",
                          ds->path, axis ? "var" : "obs", name);
}

static void mem_close(bmfm_dataset *ds) { free(ds->impl); }

static const bmfm_dataset_ops mem_ops = {
    .read_rows = mem_read_rows,
    .load_names = mem_load_names,
    .list_columns = mem_list_columns,
    .read_column = mem_read_column,
    .close = mem_close,
};

static bmfm_status mem_dataset(int64_t n_obs, int64_t n_vars, const int64_t *indptr, const int32_t *indices,
                               const float *data, const char *const *var_names, bmfm_dataset **out) {
    if (n_obs < 0 || n_vars < 0 || !indptr || (n_obs && indptr[0] != 0) || !var_names)
        return bmfm_error_set(BMFM_E_INPUT, "in-memory matrix: bad shape or indptr");
    bmfm_dataset *ds = bmfm_calloc(1, sizeof *ds);
    mem_csr *m = bmfm_calloc(1, sizeof *m);
    if (!ds || !m) {
        free(ds);
        free(m);
        return BMFM_E_NOMEM;
    }
    m->indptr = indptr;
    m->indices = indices;
    m->data = data;
    m->var_names = var_names;
    ds->ops = &mem_ops;
    ds->impl = m;
    ds->kind = BMFM_SOURCE_H5AD;
    ds->path = bmfm_strdup("<AnnData in memory>");
    ds->info.n_obs = n_obs;
    ds->info.n_vars = n_vars;
    ds->info.nnz = indptr[n_obs];
    ds->info.encoding = BMFM_X_CSR;
    snprintf(ds->info.dtype, sizeof ds->info.dtype, "float32");
    snprintf(ds->info.index_dtype, sizeof ds->info.index_dtype, "int32");
    snprintf(ds->info.location, sizeof ds->info.location, "memory");
    *out = ds;
    return BMFM_OK;
}

int bmfm_infer_csr(const bmfm_infer_options *opts, int64_t n_obs, int64_t n_vars, const int64_t *indptr,
                   const int32_t *indices, const float *data, const char *const *var_names,
                   bmfm_infer_result **out) {
    *out = NULL;
    if (!opts || !opts->model_dir) return bmfm_error_set(BMFM_E_INPUT, "inference: no model directory given");
    bmfm_dataset *ds = NULL;
    bmfm_infer_model *m = NULL;
    bmfm_status st = mem_dataset(n_obs, n_vars, indptr, indices, data, var_names, &ds);
    if (st) return st;
    st = bmfm_infer_model_load(opts->model_dir, opts->gene_list, &m);
    if (!st) st = bmfm_infer_run(m, ds, opts, NULL, out);
    if (!st) {
        (*out)->owned_model = m; /* class names stay valid as long as the result */
        m = NULL;
    }
    bmfm_infer_model_free(m);
    bmfm_dataset_close(ds);
    return st;
}
