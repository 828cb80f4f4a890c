/* mtx.c - the 10x Genomics matrix-directory backend of dataset.h.
 *
 * A 10x directory holds matrix.mtx[.gz] (MatrixMarket coordinate, genes x
 * cells, 1-based), features.tsv[.gz] (id, name, type) or the legacy
 * genes.tsv[.gz] (id, name), and barcodes.tsv[.gz]. We present it as cells x
 * genes: obs names = barcodes, var index = gene symbols (the name column),
 * var columns gene_ids and feature_types.
 *
 * MatrixMarket has no random access and 10x sorts entries by cell column of
 * the gene x cell matrix, so rows of the transposed matrix cannot be streamed
 * from the file: the whole matrix is read once at open into an in-memory CSR
 * (nnz * 8 bytes: int32 index + float32 value; up to about nnz * 32 bytes at the peak
 * while the triplets are sorted). This is not a streaming reader for huge
 * mtx files; convert those to .h5ad.
 */
#include "io/dataset_impl.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/fileutil.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

typedef struct mtx_impl {
    int64_t n_cells, n_genes, nnz;
    int64_t *indptr;   /* n_cells + 1 */
    int32_t *indices;  /* gene of each value */
    float *data;
    char **barcodes;   /* n_cells */
    char **gene_names; /* n_genes (var index) */
    char **gene_ids;   /* n_genes, or NULL */
    char **feature_types; /* n_genes, or NULL */
} mtx_impl;

/* ---- line reader over gzFile (reads plain files too) ---- */

typedef struct line_reader {
    gzFile gz;
    const char *path;
    char *buf;
    size_t cap;
    int64_t lineno;
} line_reader;

static bmfm_status lr_open(line_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->gz = gzopen(path, "rb");
    if (!r->gz) return bmfm_error_set(BMFM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    r->cap = 1024;
    r->buf = bmfm_malloc(r->cap);
    if (!r->buf) return BMFM_E_NOMEM;
    return BMFM_OK;
}

static void lr_close(line_reader *r) {
    if (r->gz) gzclose(r->gz);
    free(r->buf);
    r->gz = NULL;
    r->buf = NULL;
}

/* Next line without its newline into r->buf. *got = 0 at a clean end of file.
 * A gzip stream that ends early is an error naming the line. */
static bmfm_status lr_next(line_reader *r, int *got) {
    size_t n = 0;
    *got = 0;
    for (;;) {
        if (!gzgets(r->gz, r->buf + n, (int)(r->cap - n))) break;
        n += strlen(r->buf + n);
        if (n > 0 && r->buf[n - 1] == '\n') break;
        if (n + 1 < r->cap) break; /* short read without newline: end of file */
        char *nb = bmfm_realloc(r->buf, r->cap * 2);
        if (!nb) return BMFM_E_NOMEM;
        r->buf = nb;
        r->cap *= 2;
    }
    int errnum = Z_OK;
    const char *msg = gzerror(r->gz, &errnum);
    if (errnum != Z_OK && errnum != Z_STREAM_END) {
        size_t pl = strlen(r->path); /* zlib prefixes its message with the path */
        if (!strncmp(msg, r->path, pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
        return bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: file is truncated or corrupt (%s)", r->path,
                              (long long)r->lineno + 1, msg);
    }
    if (n == 0) return BMFM_OK;
    r->lineno++;
    while (n > 0 && (r->buf[n - 1] == '\n' || r->buf[n - 1] == '\r')) r->buf[--n] = '\0';
    *got = 1;
    return BMFM_OK;
}

/* ---- path helpers ---- */

/* First of dir/name[.gz] that exists, into out; 0 if none. */
static int find_file(char *out, size_t n, const char *dir, const char *name) {
    char gzname[256];
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    bmfm_path_join(out, n, dir, gzname);
    if (bmfm_file_exists(out)) return 1;
    bmfm_path_join(out, n, dir, name);
    return bmfm_file_exists(out);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* ---- matrix.mtx ---- */

static int parse_i64(const char **p, long long *v) {
    char *end;
    errno = 0;
    long long x = strtoll(*p, &end, 10);
    if (end == *p || errno) return 0;
    *v = x;
    *p = end;
    return 1;
}

typedef struct triplet {
    int32_t cell, gene;
    float value;
} triplet;

static int cmp_gene(const void *a, const void *b) {
    const triplet *x = a, *y = b;
    return (x->gene > y->gene) - (x->gene < y->gene);
}

static bmfm_status read_matrix(const char *path, mtx_impl *m, char *field_out, size_t field_n) {
    line_reader r;
    triplet *tr = NULL;
    bmfm_status s = lr_open(&r, path);
    int got;
    if (s) goto done;
    s = lr_next(&r, &got);
    if (s) goto done;
    char obj[64] = "", fmt[64] = "", field[64] = "", sym[64] = "";
    if (!got || strncmp(r.buf, "%%MatrixMarket", 14) ||
        sscanf(r.buf + 14, "%63s %63s %63s %63s", obj, fmt, field, sym) != 4) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line 1: not a MatrixMarket header (expected '%%%%MatrixMarket matrix coordinate integer general')",
                           path);
        goto done;
    }
    if (strcasecmp(obj, "matrix") || strcasecmp(fmt, "coordinate")) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line 1: '%s %s' is not supported (need 'matrix coordinate')", path, obj,
                           fmt);
        goto done;
    }
    int pattern = !strcasecmp(field, "pattern");
    if (!pattern && strcasecmp(field, "integer") && strcasecmp(field, "real")) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line 1: value field '%s' is not supported (need integer, real or pattern)",
                           path, field);
        goto done;
    }
    if (strcasecmp(sym, "general")) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line 1: symmetry '%s' is not supported (need general)", path, sym);
        goto done;
    }
    snprintf(field_out, field_n, "%s", pattern ? "pattern" : (!strcasecmp(field, "integer") ? "integer" : "real"));
    /* skip comments to the size line */
    do {
        s = lr_next(&r, &got);
        if (s) goto done;
    } while (got && r.buf[0] == '%');
    long long n_genes, n_cells, nnz;
    const char *p = r.buf;
    if (!got || !parse_i64(&p, &n_genes) || !parse_i64(&p, &n_cells) || !parse_i64(&p, &nnz)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: expected the size line 'genes cells entries'", path,
                           (long long)r.lineno + !got);
        goto done;
    }
    if (n_genes < 0 || n_cells < 0 || nnz < 0 || n_genes > INT32_MAX || n_cells > INT32_MAX ||
        (n_genes && n_cells && nnz / n_cells > n_genes)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: impossible sizes %lld x %lld with %lld entries", path,
                           (long long)r.lineno, n_genes, n_cells, nnz);
        goto done;
    }
    m->n_genes = n_genes;
    m->n_cells = n_cells;
    /* grow as entries arrive: a corrupt size line must not reserve terabytes */
    size_t tr_cap = 0;
    int64_t k = 0, stored = 0;
    for (;;) {
        s = lr_next(&r, &got);
        if (s) goto done;
        if (!got) break;
        p = r.buf;
        while (isspace((unsigned char)*p)) p++;
        if (*p == '\0' || *p == '%') continue;
        if (k >= nnz) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: more entries than the %lld declared on the size line", path,
                               (long long)r.lineno, nnz);
            goto done;
        }
        long long gi, ci;
        float v = 1.0f;
        if (!parse_i64(&p, &gi) || !parse_i64(&p, &ci)) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: expected 'gene cell value', got '%.40s'", path,
                               (long long)r.lineno, r.buf);
            goto done;
        }
        if (!pattern) {
            char *end;
            v = strtof(p, &end); /* straight to float32: one rounding, not two */
            if (end == p) {
                s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: value is not a number: '%.40s'", path,
                                   (long long)r.lineno, r.buf);
                goto done;
            }
            p = end;
        }
        while (isspace((unsigned char)*p)) p++;
        if (*p != '\0') {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: trailing text after the entry: '%.40s'", path,
                               (long long)r.lineno, r.buf);
            goto done;
        }
        if (gi < 1 || gi > n_genes || ci < 1 || ci > n_cells) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: index (%lld, %lld) out of range 1..%lld x 1..%lld", path,
                               (long long)r.lineno, gi, ci, n_genes, n_cells);
            goto done;
        }
        if (!isfinite(v)) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: value is not finite in float32: '%.40s'", path,
                               (long long)r.lineno, r.buf);
            goto done;
        }
        k++;
        if (v == 0.0f) continue; /* explicit zeros are dropped */
        if (bmfm_grow((void **)&tr, &tr_cap, (size_t)stored + 1, sizeof *tr)) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        tr[stored].gene = (int32_t)(gi - 1);
        tr[stored].cell = (int32_t)(ci - 1);
        tr[stored].value = v;
        stored++;
    }
    if (k < nnz) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: file ends after %lld of the %lld declared entries", path,
                           (long long)r.lineno + 1, (long long)k, nnz);
        goto done;
    }
    /* counting sort by cell, then sort genes within each cell */
    m->nnz = stored;
    m->indptr = bmfm_calloc((size_t)n_cells + 1, sizeof *m->indptr);
    m->indices = bmfm_malloc((size_t)(stored ? stored : 1) * sizeof *m->indices);
    m->data = bmfm_malloc((size_t)(stored ? stored : 1) * sizeof *m->data);
    triplet *sorted = bmfm_malloc((size_t)(stored ? stored : 1) * sizeof *sorted);
    if (!m->indptr || !m->indices || !m->data || !sorted) {
        free(sorted);
        s = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t i = 0; i < stored; i++) m->indptr[tr[i].cell + 1]++;
    for (int64_t c = 0; c < n_cells; c++) m->indptr[c + 1] += m->indptr[c];
    {
        int64_t *pos = bmfm_malloc((size_t)(n_cells ? n_cells : 1) * sizeof *pos);
        if (!pos) {
            free(sorted);
            s = BMFM_E_NOMEM;
            goto done;
        }
        memcpy(pos, m->indptr, (size_t)n_cells * sizeof *pos);
        for (int64_t i = 0; i < stored; i++) sorted[pos[tr[i].cell]++] = tr[i];
        free(pos);
    }
    free(tr);
    tr = sorted;
    for (int64_t c = 0; c < n_cells; c++) {
        int64_t b = m->indptr[c], e = m->indptr[c + 1];
        int is_sorted = 1;
        for (int64_t i = b + 1; i < e && is_sorted; i++) is_sorted = tr[i].gene > tr[i - 1].gene;
        if (!is_sorted) {
            qsort(tr + b, (size_t)(e - b), sizeof *tr, cmp_gene);
            for (int64_t i = b + 1; i < e; i++)
                if (tr[i].gene == tr[i - 1].gene) {
                    s = bmfm_error_set(BMFM_E_INPUT, "%s: entry (%d, %lld) appears twice", path, tr[i].gene + 1,
                                       (long long)c + 1);
                    goto done;
                }
        }
        for (int64_t i = b; i < e; i++) {
            m->indices[i] = tr[i].gene;
            m->data[i] = tr[i].value;
        }
    }
done:
    free(tr);
    lr_close(&r);
    return s;
}

/* ---- features / barcodes ---- */

/* Split a tab-separated line in place into at most `max` fields. */
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    fields[n++] = line;
    for (char *c = line; *c && n < max; c++)
        if (*c == '\t') {
            *c = '\0';
            fields[n++] = c + 1;
        }
    return n;
}

/* Read a .tsv[.gz] of exactly `expected` non-empty lines; columns 0..ncol-1
 * into cols[j] (NULL entries skipped). *width = fields on the first line. */
static bmfm_status read_tsv(const char *path, int64_t expected, char ***cols, int ncol, int *width) {
    line_reader r;
    bmfm_status s = lr_open(&r, path);
    int64_t k = 0;
    *width = 0;
    if (s) goto done;
    for (int j = 0; j < ncol; j++) {
        cols[j] = bmfm_calloc((size_t)expected + 1, sizeof(char *));
        if (!cols[j]) {
            s = BMFM_E_NOMEM;
            goto done;
        }
    }
    for (;;) {
        int got;
        s = lr_next(&r, &got);
        if (s) goto done;
        if (!got) break;
        if (r.buf[0] == '\0') continue;
        if (k >= expected) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: more lines than the %lld the matrix has", path,
                               (long long)r.lineno, (long long)expected);
            goto done;
        }
        char *f[8];
        int nf = split_tabs(r.buf, f, 8);
        if (k == 0) *width = nf;
        for (int j = 0; j < ncol; j++) {
            const char *v = j < nf ? f[j] : (nf >= 1 ? f[nf - 1] : "");
            cols[j][k] = bmfm_strdup(v);
            if (!cols[j][k]) {
                s = BMFM_E_NOMEM;
                goto done;
            }
        }
        k++;
    }
    if (k != expected)
        s = bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: has %lld lines, the matrix has %lld", path,
                           (long long)r.lineno + 1, (long long)k, (long long)expected);
done:
    lr_close(&r);
    return s;
}

/* ---- ops ---- */

static bmfm_status mtx_read_rows(bmfm_dataset *ds, int64_t begin, int64_t end, bmfm_csr *out) {
    mtx_impl *m = ds->impl;
    if (begin < 0 || end > m->n_cells || begin > end)
        return bmfm_error_set(BMFM_E_INPUT, "%s: rows [%lld, %lld) out of range 0..%lld", ds->path, (long long)begin,
                              (long long)end, (long long)m->n_cells);
    int64_t off = m->indptr[begin], nnz = m->indptr[end] - off;
    BMFM_TRY(bmfm_csr_reserve(out, end - begin, nnz));
    out->nrows = end - begin;
    out->ncols = m->n_genes;
    for (int64_t i = 0; i <= end - begin; i++) out->indptr[i] = m->indptr[begin + i] - off;
    memcpy(out->indices, m->indices + off, (size_t)nnz * sizeof *out->indices);
    memcpy(out->data, m->data + off, (size_t)nnz * sizeof *out->data);
    return BMFM_OK;
}

static bmfm_status copy_strings(char *const *src, int64_t n, char ***out) {
    char **d = bmfm_calloc((size_t)n + 1, sizeof *d);
    if (!d) return BMFM_E_NOMEM;
    for (int64_t i = 0; i < n; i++)
        if (!(d[i] = bmfm_strdup(src[i]))) {
            bmfm_free_strings(d, i);
            return BMFM_E_NOMEM;
        }
    *out = d;
    return BMFM_OK;
}

static bmfm_status mtx_load_names(bmfm_dataset *ds, int axis, char ***names) {
    mtx_impl *m = ds->impl;
    return axis == 0 ? copy_strings(m->barcodes, m->n_cells, names) : copy_strings(m->gene_names, m->n_genes, names);
}

static bmfm_status mtx_list_columns(bmfm_dataset *ds, int axis, char ***names, int64_t *n) {
    mtx_impl *m = ds->impl;
    const char *cols[2];
    int64_t k = 0;
    if (axis == 1 && m->gene_ids) cols[k++] = "gene_ids";
    if (axis == 1 && m->feature_types) cols[k++] = "feature_types";
    *n = k;
    return copy_strings((char *const *)cols, k, names);
}

static bmfm_status mtx_read_column(bmfm_dataset *ds, int axis, const char *name, bmfm_column *out) {
    mtx_impl *m = ds->impl;
    char **src = NULL;
    memset(out, 0, sizeof *out);
    if (axis == 1 && !strcmp(name, "gene_ids")) src = m->gene_ids;
    if (axis == 1 && !strcmp(name, "feature_types")) src = m->feature_types;
    if (!src)
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s has no column '%s'", ds->path, axis ? "var" : "obs", name);
    out->name = bmfm_strdup(name);
    if (!out->name) return BMFM_E_NOMEM;
    out->kind = BMFM_COL_STRING;
    out->n = m->n_genes;
    return copy_strings(src, m->n_genes, &out->strings);
}

static bmfm_status mtx_list_none(bmfm_dataset *ds, char ***names, int64_t *n) {
    *n = 0;
    return copy_strings(NULL, 0, names);
}

static bmfm_status mtx_read_obsm(bmfm_dataset *ds, const char *key, float **data, int64_t *rows, int64_t *cols) {
    return bmfm_error_set(BMFM_E_INPUT, "%s: a 10x directory has no obsm '%s'", ds->path, key);
}

static int mtx_has_raw(bmfm_dataset *ds) { return 0; }

static void impl_free(mtx_impl *m) {
    if (!m) return;
    free(m->indptr);
    free(m->indices);
    free(m->data);
    bmfm_free_strings(m->barcodes, m->n_cells);
    bmfm_free_strings(m->gene_names, m->n_genes);
    bmfm_free_strings(m->gene_ids, m->n_genes);
    bmfm_free_strings(m->feature_types, m->n_genes);
    free(m);
}

static void mtx_close(bmfm_dataset *ds) {
    impl_free(ds->impl);
    ds->impl = NULL;
}

static const bmfm_dataset_ops mtx_ops = {
    .read_rows = mtx_read_rows,
    .load_names = mtx_load_names,
    .list_columns = mtx_list_columns,
    .read_column = mtx_read_column,
    .list_layers = mtx_list_none,
    .list_obsm = mtx_list_none,
    .read_obsm = mtx_read_obsm,
    .has_raw = mtx_has_raw,
    .close = mtx_close,
};

bmfm_status bmfm_mtx_open_dataset(const char *dir, bmfm_dataset **out) {
    *out = NULL;
    char mpath[4096], fpath[4096], bpath[4096], field[16];
    mtx_impl *m = NULL;
    bmfm_dataset *ds = NULL;
    bmfm_status s = BMFM_OK;
    if (!bmfm_is_directory(dir)) return bmfm_error_set(BMFM_E_INPUT, "%s: not a 10x matrix directory", dir);
    if (!find_file(mpath, sizeof mpath, dir, "matrix.mtx"))
        return bmfm_error_set(BMFM_E_INPUT, "%s: no matrix.mtx or matrix.mtx.gz (not a 10x matrix directory)", dir);
    int legacy = 0;
    if (!find_file(fpath, sizeof fpath, dir, "features.tsv")) {
        legacy = 1;
        if (!find_file(fpath, sizeof fpath, dir, "genes.tsv"))
            return bmfm_error_set(BMFM_E_INPUT, "%s: no features.tsv[.gz] or genes.tsv[.gz]", dir);
    }
    if (!find_file(bpath, sizeof bpath, dir, "barcodes.tsv"))
        return bmfm_error_set(BMFM_E_INPUT, "%s: no barcodes.tsv[.gz]", dir);
    m = bmfm_calloc(1, sizeof *m);
    ds = bmfm_calloc(1, sizeof *ds);
    if (!m || !ds) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    s = read_matrix(mpath, m, field, sizeof field);
    if (s) goto done;
    char **fc[3] = {NULL, NULL, NULL};
    int width = 0;
    s = read_tsv(fpath, m->n_genes, fc, 3, &width);
    if (s) {
        for (int j = 0; j < 3; j++) bmfm_free_strings(fc[j], m->n_genes);
        goto done;
    }
    /* id, name[, type]; a one-column file holds names only */
    if (width >= 2) {
        m->gene_ids = fc[0];
        m->gene_names = fc[1];
    } else {
        m->gene_names = fc[0];
        bmfm_free_strings(fc[1], m->n_genes);
    }
    if (width >= 3 && !legacy)
        m->feature_types = fc[2];
    else
        bmfm_free_strings(fc[2], m->n_genes);
    char **bc[1] = {NULL};
    s = read_tsv(bpath, m->n_cells, bc, 1, &width);
    m->barcodes = bc[0];
    if (s) goto done;
    ds->ops = &mtx_ops;
    ds->impl = m;
    ds->kind = BMFM_SOURCE_10X;
    ds->path = bmfm_strdup(dir);
    if (!ds->path) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    ds->info.n_obs = m->n_cells;
    ds->info.n_vars = m->n_genes;
    ds->info.nnz = m->nnz;
    ds->info.encoding = BMFM_X_MTX;
    snprintf(ds->info.dtype, sizeof ds->info.dtype, "%s", field);
    ds->info.index_dtype[0] = '\0';
    snprintf(ds->info.location, sizeof ds->info.location, "%.200s", base_name(mpath));
    *out = ds;
    return BMFM_OK;
done:
    impl_free(m);
    if (ds) free(ds->path);
    free(ds);
    return s;
}
