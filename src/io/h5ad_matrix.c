/* h5ad_matrix.c - stream an h5ad matrix (CSR, CSC or dense) as CSR row
 * blocks with validation (see h5ad_matrix.h for the memory/cost contract). */
#include "io/h5ad_matrix.h"

#include "base/alloc.h"
#include "io/h5ad_hdf5.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bmfm_status grow_scratch(bmfm_h5_matrix *m, size_t need) {
    if (need <= m->cap_buf) return BMFM_OK;
    size_t ci = m->cap_buf, cf = m->cap_buf;
    if (bmfm_grow((void **)&m->ibuf, &ci, need, sizeof *m->ibuf) < 0 ||
        bmfm_grow((void **)&m->fbuf, &cf, need, sizeof *m->fbuf) < 0)
        return BMFM_E_NOMEM;
    m->cap_buf = ci < cf ? ci : cf;
    return BMFM_OK;
}

void bmfm_h5_matrix_close(bmfm_h5_matrix *m) {
    if (m->d_data > 0) H5Dclose(m->d_data);
    if (m->d_indices > 0) H5Dclose(m->d_indices);
    if (m->d_indptr > 0) H5Dclose(m->d_indptr);
    free(m->major_ptr);
    free(m->ibuf);
    free(m->fbuf);
    free(m->row_count);
    bmfm_csr_free(&m->cache);
    memset(m, 0, sizeof *m);
}

static bmfm_status open_dense(hid_t file, bmfm_h5_matrix *m) {
    int64_t dims[2] = {0, 0};
    m->enc = BMFM_X_DENSE;
    m->d_data = H5Dopen2(file, m->loc, H5P_DEFAULT);
    if (m->d_data < 0) return bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be opened (corrupt file?)", m->file, m->loc);
    hid_t t = H5Dget_type(m->d_data);
    bmfm_h5_type_name(t, m->dtype);
    int numeric = bmfm_h5_type_is_numeric(t) && !bmfm_h5_type_is_bool(t);
    H5Tclose(t);
    if (!numeric)
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s has dtype %s, expected a numeric matrix", m->file, m->loc, m->dtype);
    int rank = bmfm_h5_dims(m->d_data, dims, 2);
    if (rank != 2)
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s is a %d-D dataset, expected a 2-D matrix", m->file, m->loc, rank);
    m->n_obs = dims[0];
    m->n_vars = dims[1];
    m->nnz = dims[0] * dims[1];
    return BMFM_OK;
}

static bmfm_status open_part(hid_t grp, bmfm_h5_matrix *m, const char *name, hid_t *out, int64_t *len,
                             int want_int) {
    char field[300];
    snprintf(field, sizeof field, "%s/%s", m->loc, name);
    if (H5Lexists(grp, name, H5P_DEFAULT) <= 0 || bmfm_h5_obj_type(grp, name) != H5O_TYPE_DATASET)
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s is missing", m->file, field);
    *out = H5Dopen2(grp, name, H5P_DEFAULT);
    if (*out < 0) return bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be opened (corrupt file?)", m->file, field);
    hid_t t = H5Dget_type(*out);
    char tn[16];
    bmfm_h5_type_name(t, tn);
    H5T_class_t c = H5Tget_class(t);
    H5Tclose(t);
    if (want_int ? c != H5T_INTEGER : !(c == H5T_INTEGER || c == H5T_FLOAT))
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s has dtype %s, expected %s", m->file, field, tn,
                              want_int ? "integers" : "numbers");
    if (!strcmp(name, "data")) memcpy(m->dtype, tn, sizeof tn);
    if (!strcmp(name, "indices")) memcpy(m->index_dtype, tn, sizeof tn);
    int64_t d[2];
    int rank = bmfm_h5_dims(*out, d, 2);
    if (rank != 1) return bmfm_error_set(BMFM_E_INPUT, "%s: %s is %d-D, expected 1-D", m->file, field, rank);
    *len = d[0];
    return BMFM_OK;
}

static bmfm_status open_sparse(hid_t file, bmfm_h5_matrix *m) {
    bmfm_status st = BMFM_OK;
    char *enc = NULL, *fmt = NULL;
    hid_t g = H5Gopen2(file, m->loc, H5P_DEFAULT);
    if (g < 0) return bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be opened (corrupt file?)", m->file, m->loc);
    if ((st = bmfm_h5_attr_string(g, "encoding-type", &enc)) != BMFM_OK) goto done;
    if ((st = bmfm_h5_attr_string(g, "h5sparse_format", &fmt)) != BMFM_OK) goto done;
    int64_t shape[2];
    int ns = bmfm_h5_attr_ints(g, "shape", shape, 2);
    if (ns < 0) ns = bmfm_h5_attr_ints(g, "h5sparse_shape", shape, 2);
    if (ns != 2 || shape[0] < 0 || shape[1] < 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s has no valid 2-value 'shape' attribute", m->file, m->loc);
        goto done;
    }
    m->n_obs = shape[0];
    m->n_vars = shape[1];
    int64_t n_data, n_ind, n_ptr;
    if ((st = open_part(g, m, "indptr", &m->d_indptr, &n_ptr, 1)) != BMFM_OK) goto done;
    if ((st = open_part(g, m, "indices", &m->d_indices, &n_ind, 1)) != BMFM_OK) goto done;
    if ((st = open_part(g, m, "data", &m->d_data, &n_data, 0)) != BMFM_OK) goto done;
    const char *kind = enc ? enc : fmt;
    if (kind && (!strcmp(kind, "csr_matrix") || !strcmp(kind, "csr"))) {
        m->enc = BMFM_X_CSR;
    } else if (kind && (!strcmp(kind, "csc_matrix") || !strcmp(kind, "csc"))) {
        m->enc = BMFM_X_CSC;
    } else if (kind) {
        st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %s has encoding '%s', expected csr_matrix or csc_matrix",
                            m->file, m->loc, kind);
        goto done;
    } else {
        /* No format attribute (hand-written files): infer from indptr's length. */
        m->enc = n_ptr == m->n_obs + 1 ? BMFM_X_CSR : BMFM_X_CSC;
    }
    int64_t major = m->enc == BMFM_X_CSR ? m->n_obs : m->n_vars;
    if (n_ptr != major + 1) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s/indptr has %lld entries, expected %lld (shape %lld x %lld)",
                            m->file, m->loc, (long long)n_ptr, (long long)(major + 1), (long long)m->n_obs,
                            (long long)m->n_vars);
        goto done;
    }
    if (n_ind != n_data) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s/indices has %lld entries but %s/data has %lld", m->file, m->loc,
                            (long long)n_ind, m->loc, (long long)n_data);
        goto done;
    }
    m->nnz = n_data;
    char field[300];
    snprintf(field, sizeof field, "%s/indptr", m->loc);
    int64_t ends[2];
    if ((st = bmfm_h5_read_range(m->d_indptr, H5T_NATIVE_INT64, 0, 1, &ends[0], m->file, field)) != BMFM_OK ||
        (st = bmfm_h5_read_range(m->d_indptr, H5T_NATIVE_INT64, major, 1, &ends[1], m->file, field)) != BMFM_OK)
        goto done;
    if (ends[0] != 0 || ends[1] != m->nnz) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s runs from %lld to %lld, expected 0 to nnz = %lld", m->file, field,
                            (long long)ends[0], (long long)ends[1], (long long)m->nnz);
        goto done;
    }
    if (m->enc == BMFM_X_CSC) {
        m->major_ptr = bmfm_malloc(sizeof *m->major_ptr * (size_t)(major + 1));
        if (!m->major_ptr) { st = BMFM_E_NOMEM; goto done; }
        if ((st = bmfm_h5_read_range(m->d_indptr, H5T_NATIVE_INT64, 0, major + 1, m->major_ptr, m->file, field)) != BMFM_OK)
            goto done;
        for (int64_t j = 0; j < major; j++) {
            if (m->major_ptr[j + 1] < m->major_ptr[j]) {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: %s decreases at column %lld (%lld -> %lld)", m->file, field,
                                    (long long)j, (long long)m->major_ptr[j], (long long)m->major_ptr[j + 1]);
                goto done;
            }
        }
    }
done:
    free(enc);
    free(fmt);
    H5Gclose(g);
    return st;
}

bmfm_status bmfm_h5_matrix_open(hid_t file, const char *file_name, const char *loc, bmfm_h5_matrix *m) {
    memset(m, 0, sizeof *m);
    m->file = file_name;
    m->block = BMFM_H5_BLOCK;
    m->cache_budget = BMFM_H5_CSC_CACHE;
    snprintf(m->loc, sizeof m->loc, "%s", loc);
    H5O_type_t t = bmfm_h5_obj_type(file, loc);
    bmfm_status st;
    if (t == H5O_TYPE_DATASET) st = open_dense(file, m);
    else if (t == H5O_TYPE_GROUP) st = open_sparse(file, m);
    else st = bmfm_error_set(BMFM_E_INPUT, "%s: no matrix at %s", file_name, loc);
    if (st != BMFM_OK) bmfm_h5_matrix_close(m);
    return st;
}

typedef struct { int32_t col; float val; } col_val;

static int cmp_col_val(const void *a, const void *b) {
    const col_val *x = a, *y = b;
    return (x->col > y->col) - (x->col < y->col);
}

/* Make every row canonical: ascending columns, duplicates summed (scipy's
 * meaning of a repeated entry), zeros dropped. Compacts in place. */
static bmfm_status csr_canonicalize(bmfm_csr *out) {
    int64_t w = 0;
    col_val *tmp = NULL;
    size_t cap_tmp = 0;
    for (int64_t r = 0; r < out->nrows; r++) {
        int64_t a = out->indptr[r], b = out->indptr[r + 1];
        int sorted = 1;
        for (int64_t k = a + 1; k < b && sorted; k++) sorted = out->indices[k] > out->indices[k - 1];
        if (!sorted) {
            if (bmfm_grow((void **)&tmp, &cap_tmp, (size_t)(b - a), sizeof *tmp) < 0) {
                free(tmp);
                return BMFM_E_NOMEM;
            }
            for (int64_t k = a; k < b; k++) tmp[k - a] = (col_val){out->indices[k], out->data[k]};
            qsort(tmp, (size_t)(b - a), sizeof *tmp, cmp_col_val);
            for (int64_t k = a; k < b; k++) {
                out->indices[k] = tmp[k - a].col;
                out->data[k] = tmp[k - a].val;
            }
        }
        out->indptr[r] = w;
        for (int64_t k = a; k < b; k++) {
            if (w > out->indptr[r] && out->indices[w - 1] == out->indices[k]) {
                out->data[w - 1] += out->data[k];
                continue;
            }
            out->indices[w] = out->indices[k];
            out->data[w] = out->data[k];
            w++;
        }
        /* drop zeros (explicit ones, or duplicates that cancelled) */
        int64_t w2 = out->indptr[r];
        for (int64_t k = out->indptr[r]; k < w; k++) {
            if (out->data[k] == 0.0f) continue;
            out->indices[w2] = out->indices[k];
            out->data[w2] = out->data[k];
            w2++;
        }
        w = w2;
    }
    out->indptr[out->nrows] = w;
    free(tmp);
    return BMFM_OK;
}

static bmfm_status nonfinite(const bmfm_h5_matrix *m, int64_t row, int64_t col) {
    return bmfm_error_set(BMFM_E_INPUT, "%s: %s%s has a non-finite value at row %lld, column %lld", m->file, m->loc,
                          m->enc == BMFM_X_DENSE ? "" : "/data", (long long)row, (long long)col);
}

static bmfm_status read_csr(bmfm_h5_matrix *m, int64_t b, int64_t e, bmfm_csr *out) {
    int64_t n = e - b;
    char field[300];
    snprintf(field, sizeof field, "%s/indptr", m->loc);
    BMFM_TRY(bmfm_csr_reserve(out, n, 0));
    BMFM_TRY(bmfm_h5_read_range(m->d_indptr, H5T_NATIVE_INT64, b, n + 1, out->indptr, m->file, field));
    for (int64_t r = 0; r <= n; r++) {
        int64_t p = out->indptr[r];
        if (p < 0 || p > m->nnz)
            return bmfm_error_set(BMFM_E_INPUT, "%s: %s[%lld] = %lld is out of range [0, %lld]", m->file, field,
                                  (long long)(b + r), (long long)p, (long long)m->nnz);
        if (r > 0 && p < out->indptr[r - 1])
            return bmfm_error_set(BMFM_E_INPUT, "%s: %s decreases at row %lld (%lld -> %lld)", m->file, field,
                                  (long long)(b + r - 1), (long long)out->indptr[r - 1], (long long)p);
    }
    int64_t start = out->indptr[0], cnt = out->indptr[n] - start;
    /* int32 indices (the common case) go straight into the output without
     * a conversion pass; wider or unsigned ones through the int64 scratch */
    int direct = !strcmp(m->index_dtype, "int32");
    BMFM_TRY(bmfm_csr_reserve(out, n, cnt));
    if (!direct) BMFM_TRY(grow_scratch(m, (size_t)cnt));
    snprintf(field, sizeof field, "%s/indices", m->loc);
    BMFM_TRY(bmfm_h5_read_range(m->d_indices, direct ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64, start, cnt,
                                direct ? (void *)out->indices : (void *)m->ibuf, m->file, field));
    snprintf(field, sizeof field, "%s/data", m->loc);
    BMFM_TRY(bmfm_h5_read_range(m->d_data, H5T_NATIVE_FLOAT, start, cnt, out->data, m->file, field));
    for (int64_t r = 0; r < n; r++) {
        for (int64_t k = out->indptr[r] - start; k < out->indptr[r + 1] - start; k++) {
            int64_t c = direct ? out->indices[k] : m->ibuf[k];
            if (c < 0 || c >= m->n_vars)
                return bmfm_error_set(BMFM_E_INPUT, "%s: %s/indices has %lld at row %lld, outside [0, %lld)", m->file,
                                      m->loc, (long long)c, (long long)(b + r), (long long)m->n_vars);
            if (!isfinite(out->data[k])) return nonfinite(m, b + r, c);
            out->indices[k] = (int32_t)c;
        }
    }
    for (int64_t r = 0; r <= n; r++) out->indptr[r] -= start;
    return csr_canonicalize(out);
}

/* Visit every stored entry of a CSC matrix in column order, one block of
 * whole columns (at most m->block entries, or one larger column) per HDF5
 * read. with_data = 0 reads indices only. Row indices are validated here. */
typedef bmfm_status (*csc_visit)(bmfm_h5_matrix *m, int64_t row, int64_t col, float v, void *arg);

static bmfm_status csc_scan(bmfm_h5_matrix *m, int with_data, csc_visit visit, void *arg) {
    char fi[300], fd[300];
    snprintf(fi, sizeof fi, "%s/indices", m->loc);
    snprintf(fd, sizeof fd, "%s/data", m->loc);
    int direct = !strcmp(m->index_dtype, "int32");
    for (int64_t c0 = 0; c0 < m->n_vars;) {
        int64_t c1 = c0 + 1;
        while (c1 < m->n_vars && m->major_ptr[c1 + 1] - m->major_ptr[c0] <= m->block) c1++;
        int64_t s = m->major_ptr[c0], cnt = m->major_ptr[c1] - s;
        BMFM_TRY(grow_scratch(m, (size_t)cnt));
        /* int32 indices are read unconverted into the first half of the
         * int64 scratch (HDF5's int32 -> int64 conversion is slow) */
        BMFM_TRY(bmfm_h5_read_range(m->d_indices, direct ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64, s, cnt, m->ibuf,
                                    m->file, fi));
        if (with_data) BMFM_TRY(bmfm_h5_read_range(m->d_data, H5T_NATIVE_FLOAT, s, cnt, m->fbuf, m->file, fd));
        const int32_t *i32 = (const int32_t *)m->ibuf;
        for (int64_t j = c0; j < c1; j++) {
            for (int64_t k = m->major_ptr[j] - s; k < m->major_ptr[j + 1] - s; k++) {
                int64_t r = direct ? i32[k] : m->ibuf[k];
                if (r < 0 || r >= m->n_obs)
                    return bmfm_error_set(BMFM_E_INPUT, "%s: %s has %lld in column %lld, outside [0, %lld)", m->file, fi,
                                          (long long)r, (long long)j, (long long)m->n_obs);
                BMFM_TRY(visit(m, r, j, with_data ? m->fbuf[k] : 0.0f, arg));
            }
        }
        c0 = c1;
    }
    return BMFM_OK;
}

static bmfm_status count_row(bmfm_h5_matrix *m, int64_t row, int64_t col, float v, void *arg) {
    (void)col;
    (void)v;
    (void)arg;
    m->row_count[row]++;
    return BMFM_OK;
}

static bmfm_status fill_row(bmfm_h5_matrix *m, int64_t row, int64_t col, float v, void *arg) {
    int64_t *pos = arg;
    if (row < m->cache_b || row >= m->cache_e) return BMFM_OK;
    if (!isfinite(v)) return nonfinite(m, row, col);
    int64_t p = pos[row - m->cache_b]++;
    m->cache.indices[p] = (int32_t)col;
    m->cache.data[p] = v;
    return BMFM_OK;
}

/* Scan the matrix once to fill the cache with rows [b, e) and as many rows
 * after them as fit in m->cache_budget entries (sequential streaming then
 * costs about nnz / budget scans instead of one per call). */
static bmfm_status csc_fill_cache(bmfm_h5_matrix *m, int64_t b, int64_t e) {
    int64_t total = 0, *pos = NULL;
    for (int64_t r = b; r < e; r++) total += m->row_count[r];
    while (e < m->n_obs && total + m->row_count[e] <= m->cache_budget) total += m->row_count[e++];
    m->cache_b = m->cache_e = 0;
    BMFM_TRY(bmfm_csr_reserve(&m->cache, e - b, total));
    m->cache.nrows = e - b;
    m->cache.indptr[0] = 0;
    for (int64_t r = b; r < e; r++) m->cache.indptr[r - b + 1] = m->cache.indptr[r - b] + m->row_count[r];
    pos = bmfm_malloc(sizeof *pos * (size_t)(e - b + 1));
    if (!pos) return BMFM_E_NOMEM;
    memcpy(pos, m->cache.indptr, sizeof *pos * (size_t)(e - b + 1));
    m->cache_b = b;
    m->cache_e = e;
    bmfm_status st = csc_scan(m, 1, fill_row, pos);
    free(pos);
    if (st != BMFM_OK) m->cache_b = m->cache_e = 0;
    return st;
}

static bmfm_status read_csc(bmfm_h5_matrix *m, int64_t b, int64_t e, bmfm_csr *out) {
    int64_t n = e - b;
    BMFM_TRY(bmfm_csr_reserve(out, n, 0));
    out->indptr[0] = 0;
    if (n == 0) return BMFM_OK;
    if (!m->row_count) {
        /* first read: one pass over the indices counts each row's entries */
        m->row_count = bmfm_calloc((size_t)m->n_obs, sizeof *m->row_count);
        if (!m->row_count) return BMFM_E_NOMEM;
        bmfm_status st = csc_scan(m, 0, count_row, NULL);
        if (st != BMFM_OK) {
            free(m->row_count);
            m->row_count = NULL;
            return st;
        }
    }
    if (b < m->cache_b || e > m->cache_e) BMFM_TRY(csc_fill_cache(m, b, e));
    const int64_t *cp = m->cache.indptr + (b - m->cache_b);
    int64_t off = cp[0], cnt = cp[n] - off;
    BMFM_TRY(bmfm_csr_reserve(out, n, cnt));
    for (int64_t r = 0; r <= n; r++) out->indptr[r] = cp[r] - off;
    memcpy(out->indices, m->cache.indices + off, sizeof *out->indices * (size_t)cnt);
    memcpy(out->data, m->cache.data + off, sizeof *out->data * (size_t)cnt);
    return csr_canonicalize(out);
}

static bmfm_status read_dense(bmfm_h5_matrix *m, int64_t b, int64_t e, bmfm_csr *out) {
    int64_t n = e - b, nnz = 0;
    int64_t step = m->n_vars > 0 ? m->block / m->n_vars : n;
    if (step < 1) step = 1;
    BMFM_TRY(bmfm_csr_reserve(out, n, 0));
    out->indptr[0] = 0;
    for (int64_t r0 = b; r0 < e; r0 += step) {
        int64_t nr = e - r0 < step ? e - r0 : step;
        BMFM_TRY(grow_scratch(m, (size_t)(nr * m->n_vars)));
        BMFM_TRY(bmfm_h5_read_rows2d(m->d_data, H5T_NATIVE_FLOAT, r0, nr, m->n_vars, m->fbuf, m->file, m->loc));
        for (int64_t i = 0; i < nr; i++) {
            const float *row = m->fbuf + i * m->n_vars;
            int64_t cnt = 0;
            for (int64_t j = 0; j < m->n_vars; j++) {
                if (!isfinite(row[j])) return nonfinite(m, r0 + i, j);
                cnt += row[j] != 0.0f;
            }
            BMFM_TRY(bmfm_csr_reserve(out, n, nnz + cnt));
            for (int64_t j = 0; j < m->n_vars; j++) {
                if (row[j] == 0.0f) continue;
                out->indices[nnz] = (int32_t)j;
                out->data[nnz++] = row[j];
            }
            out->indptr[r0 - b + i + 1] = nnz;
        }
    }
    return BMFM_OK;
}

bmfm_status bmfm_h5_matrix_read_rows(bmfm_h5_matrix *m, int64_t begin, int64_t end, bmfm_csr *out) {
    if (begin < 0 || end < begin || end > m->n_obs)
        return bmfm_error_set(BMFM_E_INPUT, "%s: rows [%lld, %lld) are outside the %lld rows of %s", m->file,
                              (long long)begin, (long long)end, (long long)m->n_obs, m->loc);
    if (m->n_vars > INT32_MAX)
        return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %s has %lld columns, more than int32 indices hold", m->file,
                              m->loc, (long long)m->n_vars);
    out->nrows = end - begin;
    out->ncols = m->n_vars;
    bmfm_status st;
    switch (m->enc) {
    case BMFM_X_CSR: st = read_csr(m, begin, end, out); break;
    case BMFM_X_CSC: st = read_csc(m, begin, end, out); break;
    default: st = read_dense(m, begin, end, out); break;
    }
    if (st != BMFM_OK) {
        out->nrows = 0;
        if (out->indptr) out->indptr[0] = 0;
    }
    return st;
}
