/* h5ad_frame.c - read AnnData dataframes: index, column list, columns in the
 * 0.7 and >= 0.8 encodings (see h5ad_frame.h). */
#include "io/h5ad_frame.h"

#include "base/alloc.h"
#include "io/dataset_impl.h"
#include "io/h5ad_hdf5.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read a 1-D numeric dataset of n values as doubles (bool enums as 0/1). */
static bmfm_status read_numbers(hid_t d, int64_t n, double *out, const char *file, const char *field) {
    hid_t t = H5Dget_type(d);
    bmfm_status st = BMFM_OK;
    if (bmfm_h5_type_is_bool(t)) {
        int8_t *b = bmfm_malloc((size_t)(n > 0 ? n : 1));
        hid_t mt = H5Tget_native_type(t, H5T_DIR_ASCEND);
        if (!b) st = BMFM_E_NOMEM;
        else st = bmfm_h5_read_range(d, mt, 0, n, b, file, field);
        for (int64_t i = 0; st == BMFM_OK && i < n; i++) out[i] = b[i] != 0;
        H5Tclose(mt);
        free(b);
    } else {
        st = bmfm_h5_read_range(d, H5T_NATIVE_DOUBLE, 0, n, out, file, field);
    }
    H5Tclose(t);
    return st;
}

static bmfm_status check_len(hid_t d, int64_t n_rows, const char *file, const char *field, int64_t *len) {
    int64_t dims[2];
    int rank = bmfm_h5_dims(d, dims, 2);
    if (rank != 1) return bmfm_error_set(BMFM_E_INPUT, "%s: %s is %d-D, expected a 1-D column", file, field, rank);
    if (n_rows >= 0 && dims[0] != n_rows)
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s has %lld rows, expected %lld", file, field, (long long)dims[0],
                              (long long)n_rows);
    *len = dims[0];
    return BMFM_OK;
}

static void format_number(double v, int is_int, char *buf, size_t n) {
    if (isnan(v)) snprintf(buf, n, "nan");
    else if (is_int) snprintf(buf, n, "%lld", (long long)v);
    else {
        snprintf(buf, n, "%.15g", v);
        if (strtod(buf, NULL) != v) snprintf(buf, n, "%.17g", v);
    }
}

/* Categories dataset: strings, or numbers/bools formatted as text. */
static bmfm_status read_categories(hid_t d, const char *file, const char *field, bmfm_column *out) {
    bmfm_status st = BMFM_OK;
    hid_t t = H5Dget_type(d);
    int64_t n = 0;
    if ((st = check_len(d, -1, file, field, &n)) != BMFM_OK) goto done;
    if (H5Tget_class(t) == H5T_STRING) {
        st = bmfm_h5_read_strings(d, file, field, &out->categories, &out->n_categories);
        goto done;
    }
    if (!bmfm_h5_type_is_numeric(t)) {
        char tn[16];
        bmfm_h5_type_name(t, tn);
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s has dtype %s, expected strings or numbers", file, field, tn);
        goto done;
    }
    double *v = bmfm_malloc(sizeof *v * (size_t)(n > 0 ? n : 1));
    out->categories = bmfm_calloc((size_t)(n > 0 ? n : 1), sizeof *out->categories);
    if (!v || !out->categories) { free(v); st = BMFM_E_NOMEM; goto done; }
    out->n_categories = n;
    st = read_numbers(d, n, v, file, field);
    int is_bool = bmfm_h5_type_is_bool(t), is_int = H5Tget_class(t) == H5T_INTEGER;
    for (int64_t i = 0; st == BMFM_OK && i < n; i++) {
        char buf[64];
        if (is_bool) snprintf(buf, sizeof buf, "%s", v[i] != 0 ? "True" : "False");
        else format_number(v[i], is_int, buf, sizeof buf);
        if (!(out->categories[i] = bmfm_strdup(buf))) st = BMFM_E_NOMEM;
    }
    free(v);
done:
    H5Tclose(t);
    return st;
}

static bmfm_status read_codes(hid_t d, int64_t n_rows, const char *file, const char *field, bmfm_column *out) {
    int64_t n = 0;
    hid_t t = H5Dget_type(d);
    H5T_class_t c = H5Tget_class(t);
    H5Tclose(t);
    if (c != H5T_INTEGER) return bmfm_error_set(BMFM_E_INPUT, "%s: %s must hold integer codes", file, field);
    BMFM_TRY(check_len(d, n_rows, file, field, &n));
    out->n = n;
    out->codes = bmfm_malloc(sizeof *out->codes * (size_t)(n > 0 ? n : 1));
    if (!out->codes) return BMFM_E_NOMEM;
    BMFM_TRY(bmfm_h5_read_range(d, H5T_NATIVE_INT32, 0, n, out->codes, file, field));
    for (int64_t i = 0; i < n; i++) {
        if (out->codes[i] < -1 || out->codes[i] >= out->n_categories)
            return bmfm_error_set(BMFM_E_INPUT, "%s: %s[%lld] = %d is not a category code (%lld categories)", file,
                                  field, (long long)i, out->codes[i], (long long)out->n_categories);
    }
    return BMFM_OK;
}

static bmfm_status read_categorical_group(hid_t g, int64_t n_rows, const char *file, const char *field,
                                          bmfm_column *out) {
    char f[700];
    bmfm_status st = BMFM_OK;
    out->kind = BMFM_COL_CATEGORICAL;
    if (H5Lexists(g, "categories", H5P_DEFAULT) <= 0 || H5Lexists(g, "codes", H5P_DEFAULT) <= 0)
        return bmfm_error_set(BMFM_E_INPUT, "%s: categorical %s lacks categories or codes", file, field);
    hid_t dc = H5Dopen2(g, "categories", H5P_DEFAULT), dk = H5Dopen2(g, "codes", H5P_DEFAULT);
    if (dc < 0 || dk < 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s/categories or codes is not a dataset", file, field);
        goto done;
    }
    snprintf(f, sizeof f, "%s/categories", field);
    if ((st = read_categories(dc, file, f, out)) != BMFM_OK) goto done;
    snprintf(f, sizeof f, "%s/codes", field);
    st = read_codes(dk, n_rows, file, f, out);
done:
    if (dc >= 0) H5Dclose(dc);
    if (dk >= 0) H5Dclose(dk);
    return st;
}

static bmfm_status read_nullable_group(hid_t g, const char *enc, int64_t n_rows, const char *file,
                                       const char *field, bmfm_column *out) {
    bmfm_status st = BMFM_OK;
    int64_t n = 0;
    double *mask = NULL;
    out->kind = strstr(enc, "boolean") ? BMFM_COL_BOOL : BMFM_COL_INT;
    hid_t dv = H5Lexists(g, "values", H5P_DEFAULT) > 0 ? H5Dopen2(g, "values", H5P_DEFAULT) : -1;
    hid_t dm = H5Lexists(g, "mask", H5P_DEFAULT) > 0 ? H5Dopen2(g, "mask", H5P_DEFAULT) : -1;
    char f[700];
    if (dv < 0 || dm < 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s (%s) lacks values or mask", file, field, enc);
        goto done;
    }
    snprintf(f, sizeof f, "%s/values", field);
    if ((st = check_len(dv, n_rows, file, f, &n)) != BMFM_OK) goto done;
    out->n = n;
    out->values = bmfm_malloc(sizeof *out->values * (size_t)(n > 0 ? n : 1));
    mask = bmfm_malloc(sizeof *mask * (size_t)(n > 0 ? n : 1));
    if (!out->values || !mask) { st = BMFM_E_NOMEM; goto done; }
    if ((st = read_numbers(dv, n, out->values, file, f)) != BMFM_OK) goto done;
    snprintf(f, sizeof f, "%s/mask", field);
    if ((st = check_len(dm, n_rows, file, f, &n)) != BMFM_OK) goto done;
    if ((st = read_numbers(dm, n, mask, file, f)) != BMFM_OK) goto done;
    for (int64_t i = 0; i < n; i++)
        if (mask[i] != 0) out->values[i] = NAN;
done:
    free(mask);
    if (dv >= 0) H5Dclose(dv);
    if (dm >= 0) H5Dclose(dm);
    return st;
}

/* 0.7: integer codes whose `categories` attribute references a dataset in
 * __categories. Returns 1 (and fills out) when d is such a column. */
static int legacy_categories(hid_t d, hid_t *cats) {
    *cats = -1;
    if (H5Aexists(d, "categories") <= 0) return 0;
    hid_t a = H5Aopen(d, "categories", H5P_DEFAULT), t = a >= 0 ? H5Aget_type(a) : -1;
    int ok = 0;
    if (t >= 0 && H5Tget_class(t) == H5T_REFERENCE) {
        hobj_ref_t ref;
        if (H5Aread(a, H5T_STD_REF_OBJ, &ref) >= 0) {
            *cats = H5Rdereference2(d, H5P_DEFAULT, H5R_OBJECT, &ref);
            ok = *cats >= 0;
        }
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return ok;
}

static bmfm_status read_column_dataset(hid_t d, int64_t n_rows, const char *file, const char *field,
                                       bmfm_column *out) {
    bmfm_status st = BMFM_OK;
    int64_t n = 0;
    hid_t cats = -1, t = H5Dget_type(d);
    if ((st = check_len(d, n_rows, file, field, &n)) != BMFM_OK) goto done;
    out->n = n;
    if (legacy_categories(d, &cats)) {
        char f[700];
        snprintf(f, sizeof f, "%s (its __categories)", field);
        out->kind = BMFM_COL_CATEGORICAL;
        if ((st = read_categories(cats, file, f, out)) != BMFM_OK) goto done;
        st = read_codes(d, n_rows, file, field, out);
    } else if (H5Tget_class(t) == H5T_STRING) {
        int64_t m;
        out->kind = BMFM_COL_STRING;
        st = bmfm_h5_read_strings(d, file, field, &out->strings, &m);
    } else if (bmfm_h5_type_is_numeric(t)) {
        out->kind = bmfm_h5_type_is_bool(t) ? BMFM_COL_BOOL
                    : H5Tget_class(t) == H5T_INTEGER ? BMFM_COL_INT : BMFM_COL_FLOAT;
        out->values = bmfm_malloc(sizeof *out->values * (size_t)(n > 0 ? n : 1));
        st = out->values ? read_numbers(d, n, out->values, file, field) : BMFM_E_NOMEM;
    } else {
        char tn[16];
        bmfm_h5_type_name(t, tn);
        st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %s has dtype %s, not a dataframe column type", file, field, tn);
    }
done:
    if (cats >= 0) H5Dclose(cats);
    H5Tclose(t);
    return st;
}

bmfm_status bmfm_h5_frame_column(hid_t file, const char *file_name, const char *grp, const char *col,
                                 int64_t n_rows, bmfm_column *out) {
    char path[600];
    bmfm_status st = BMFM_OK;
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/%s", grp, col);
    H5O_type_t type = strchr(col, '/') ? H5O_TYPE_UNKNOWN : bmfm_h5_obj_type(file, path);
    if (type == H5O_TYPE_UNKNOWN) return bmfm_error_set(BMFM_E_INPUT, "%s: no column %s", file_name, path);
    if (!(out->name = bmfm_strdup(col))) return BMFM_E_NOMEM;
    out->n = n_rows;
    hid_t o = H5Oopen(file, path, H5P_DEFAULT);
    if (o < 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be opened (corrupt file?)", file_name, path);
        goto done;
    }
    if (type == H5O_TYPE_DATASET) {
        st = read_column_dataset(o, n_rows, file_name, path, out);
    } else {
        char *enc = NULL;
        if ((st = bmfm_h5_attr_string(o, "encoding-type", &enc)) != BMFM_OK) goto done;
        if (enc && !strcmp(enc, "categorical")) st = read_categorical_group(o, n_rows, file_name, path, out);
        else if (enc && (!strcmp(enc, "nullable-integer") || !strcmp(enc, "nullable-boolean")))
            st = read_nullable_group(o, enc, n_rows, file_name, path, out);
        else
            st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: column %s has encoding '%s', not a supported column kind",
                                file_name, path, enc ? enc : "(none)");
        free(enc);
    }
done:
    if (o >= 0) H5Oclose(o);
    if (st != BMFM_OK) bmfm_column_free(out);
    return st;
}

static bmfm_status open_frame(hid_t file, const char *file_name, const char *grp, hid_t *g) {
    H5O_type_t t = bmfm_h5_obj_type(file, grp);
    *g = -1;
    if (t == H5O_TYPE_DATASET)
        return bmfm_error_set(BMFM_E_UNSUPPORTED,
                              "%s: %s is a structured array (anndata < 0.7); re-save it with anndata >= 0.7",
                              file_name, grp);
    if (t != H5O_TYPE_GROUP) return bmfm_error_set(BMFM_E_INPUT, "%s: no %s dataframe", file_name, grp);
    *g = H5Gopen2(file, grp, H5P_DEFAULT);
    if (*g < 0) return bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be opened (corrupt file?)", file_name, grp);
    return BMFM_OK;
}

static bmfm_status index_name(hid_t g, char **name) {
    BMFM_TRY(bmfm_h5_attr_string(g, "_index", name));
    if (*name) return BMFM_OK;
    const char *fallback = H5Lexists(g, "_index", H5P_DEFAULT) > 0 ? "_index" : "index";
    *name = bmfm_strdup(fallback);
    return *name ? BMFM_OK : BMFM_E_NOMEM;
}

bmfm_status bmfm_h5_frame_index(hid_t file, const char *file_name, const char *grp, char ***names,
                                int64_t *n) {
    hid_t g;
    char *iname = NULL;
    bmfm_column c;
    bmfm_status st;
    *names = NULL;
    *n = 0;
    memset(&c, 0, sizeof c);
    BMFM_TRY(open_frame(file, file_name, grp, &g));
    if ((st = index_name(g, &iname)) != BMFM_OK) goto done;
    if (H5Lexists(g, iname, H5P_DEFAULT) <= 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s has no index dataset '%s'", file_name, grp, iname);
        goto done;
    }
    if ((st = bmfm_h5_frame_column(file, file_name, grp, iname, -1, &c)) != BMFM_OK) goto done;
    if (c.kind == BMFM_COL_STRING) {
        *names = c.strings;
        *n = c.n;
        c.strings = NULL;
        goto done;
    }
    /* numeric or categorical index: anndata turns it into strings */
    char **s = bmfm_calloc((size_t)(c.n > 0 ? c.n : 1), sizeof *s);
    if (!s) { st = BMFM_E_NOMEM; goto done; }
    for (int64_t i = 0; i < c.n; i++) {
        char buf[64];
        const char *t = bmfm_column_text(&c, i, buf, sizeof buf);
        if (!(s[i] = bmfm_strdup(t ? t : ""))) {
            bmfm_free_strings(s, i);
            st = BMFM_E_NOMEM;
            goto done;
        }
    }
    *names = s;
    *n = c.n;
done:
    bmfm_column_free(&c);
    free(iname);
    H5Gclose(g);
    return st;
}

bmfm_status bmfm_h5_frame_columns(hid_t file, const char *file_name, const char *grp, char ***names,
                                  int64_t *n) {
    hid_t g;
    char *iname = NULL;
    bmfm_status st;
    *names = NULL;
    *n = 0;
    BMFM_TRY(open_frame(file, file_name, grp, &g));
    if ((st = index_name(g, &iname)) != BMFM_OK) goto done;
    if (H5Aexists(g, "column-order") > 0) {
        st = bmfm_h5_attr_strings(g, "column-order", names, n);
        goto done;
    }
    if ((st = bmfm_h5_members(file, file_name, grp, names, n)) != BMFM_OK) goto done;
    int64_t w = 0;
    for (int64_t i = 0; i < *n; i++) {
        if (!strcmp((*names)[i], iname) || !strcmp((*names)[i], "__categories")) free((*names)[i]);
        else (*names)[w++] = (*names)[i];
    }
    *n = w;
done:
    free(iname);
    H5Gclose(g);
    return st;
}
