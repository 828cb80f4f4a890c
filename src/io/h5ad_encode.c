/* h5ad_encode.c - AnnData >= 0.8 element encoders (see h5ad_encode.h). */
#include "io/h5ad_encode.h"

#include "base/alloc.h"
#include "base/strmap.h"
#include "io/dataset_impl.h"
#include "io/h5ad_hdf5.h"

#include <stdlib.h>
#include <string.h>

bmfm_status bmfm_h5ad_check_key(const char *key, const char *what) {
    if (!key || !*key || strchr(key, '/') || !strcmp(key, ".") || !strcmp(key, ".."))
        return bmfm_error_set(BMFM_E_INPUT, "invalid %s '%s' (empty, '/', '.' or '..')", what, key ? key : "");
    return BMFM_OK;
}

bmfm_status bmfm_h5ad_open_dict(hid_t loc, const char *name, hid_t *out) {
    *out = -1;
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0) {
        *out = H5Gopen2(loc, name, H5P_DEFAULT);
        if (*out < 0) return bmfm_error_set(BMFM_E_INPUT, "/%s exists but is not a group", name);
        return BMFM_OK;
    }
    *out = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (*out < 0) return bmfm_error_set(BMFM_E_IO, "cannot create group %s", name);
    bmfm_status st = bmfm_h5_write_encoding(*out, "dict", "0.1.0");
    if (st != BMFM_OK) {
        H5Gclose(*out);
        *out = -1;
    }
    return st;
}

bmfm_status bmfm_h5ad_remove(hid_t loc, const char *name) {
    char legacy[1100];
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0 && H5Ldelete(loc, name, H5P_DEFAULT) < 0)
        return bmfm_error_set(BMFM_E_IO, "cannot remove %s", name);
    snprintf(legacy, sizeof legacy, "__categories/%s", name);
    if (bmfm_h5_exists(loc, legacy) && H5Ldelete(loc, legacy, H5P_DEFAULT) < 0)
        return bmfm_error_set(BMFM_E_IO, "cannot remove %s", legacy);
    return BMFM_OK;
}

bmfm_status bmfm_h5ad_write_dataframe(hid_t loc, const char *name, const char *const *index, int64_t n) {
    bmfm_status st;
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return bmfm_error_set(BMFM_E_IO, "cannot create dataframe %s", name);
    if ((st = bmfm_h5_write_encoding(g, "dataframe", "0.2.0")) != BMFM_OK) goto done;
    if ((st = bmfm_h5_write_attr_string(g, "_index", "_index")) != BMFM_OK) goto done;
    {
        /* anndata writes an empty float64 array for "no columns" */
        hsize_t d[1] = {0};
        hid_t sp = H5Screate_simple(1, d, NULL);
        hid_t a = H5Acreate2(g, "column-order", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Sclose(sp);
        if (a < 0) { st = bmfm_error_set(BMFM_E_IO, "cannot write %s column-order", name); goto done; }
        H5Aclose(a);
    }
    st = bmfm_h5_write_strings(g, "_index", index, n);
done:
    H5Gclose(g);
    return st;
}

static bmfm_status write_array(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *buf, int rank,
                               const hsize_t *dims) {
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    herr_t r = d < 0 ? -1 : total > 0 ? H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    bmfm_status st = r < 0 ? bmfm_error_set(BMFM_E_IO, "cannot write dataset %s", name) : BMFM_OK;
    if (st == BMFM_OK) st = bmfm_h5_write_encoding(d, "array", "0.2.0");
    if (d >= 0) H5Dclose(d);
    H5Sclose(sp);
    return st;
}

bmfm_status bmfm_h5ad_write_array(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *buf,
                                  int rank, const hsize_t *dims) {
    BMFM_TRY(bmfm_h5ad_remove(loc, name));
    return write_array(loc, name, ftype, mtype, buf, rank, dims);
}

/* pandas refuses repeated categories, so anndata could not read them back */
static bmfm_status check_categories(const char *name, const char *const *categories, int64_t n) {
    bmfm_strmap seen;
    bmfm_status st = BMFM_OK;
    if (bmfm_strmap_init(&seen, (size_t)n) < 0) return BMFM_E_NOMEM;
    for (int64_t i = 0; i < n && st == BMFM_OK; i++) {
        int64_t first;
        if (!categories[i]) {
            st = bmfm_error_set(BMFM_E_INPUT, "column %s: category %lld is NULL", name, (long long)i);
            break;
        }
        int r = bmfm_strmap_put(&seen, categories[i], i, &first);
        if (r < 0) st = BMFM_E_NOMEM;
        else if (r == 0)
            st = bmfm_error_set(BMFM_E_INPUT, "column %s: category '%s' appears twice (%lld and %lld)", name,
                                categories[i], (long long)first, (long long)i);
    }
    bmfm_strmap_free(&seen);
    return st;
}

bmfm_status bmfm_h5ad_write_categorical(hid_t df, const char *name, const int32_t *codes, int64_t n,
                                        const char *const *categories, int64_t n_categories) {
    bmfm_status st = BMFM_OK;
    for (int64_t i = 0; i < n; i++)
        if (codes[i] < -1 || codes[i] >= n_categories)
            return bmfm_error_set(BMFM_E_INPUT, "column %s: code %d at row %lld is not in [-1, %lld)", name, codes[i],
                                  (long long)i, (long long)n_categories);
    BMFM_TRY(check_categories(name, categories, n_categories));
    BMFM_TRY(bmfm_h5ad_remove(df, name));
    hid_t g = H5Gcreate2(df, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return bmfm_error_set(BMFM_E_IO, "cannot create column %s", name);
    if ((st = bmfm_h5_write_encoding(g, "categorical", "0.2.0")) != BMFM_OK) goto done;
    if ((st = bmfm_h5_write_attr_bool(g, "ordered", 0)) != BMFM_OK) goto done;
    if ((st = bmfm_h5_write_strings(g, "categories", categories, n_categories)) != BMFM_OK) goto done;
    /* the narrowest signed type that holds the codes, as pandas does */
    hid_t ftype = n_categories < 128 ? H5T_STD_I8LE : n_categories < 32768 ? H5T_STD_I16LE : H5T_STD_I32LE;
    hsize_t d[1] = {(hsize_t)n};
    st = write_array(g, "codes", ftype, H5T_NATIVE_INT32, codes, 1, d);
done:
    H5Gclose(g);
    return st;
}

bmfm_status bmfm_h5ad_write_numeric(hid_t df, const char *name, const double *values, int64_t n) {
    hsize_t d[1] = {(hsize_t)n};
    return bmfm_h5ad_write_array(df, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values, 1, d);
}

bmfm_status bmfm_h5ad_write_string_column(hid_t df, const char *name, const char *const *values, int64_t n) {
    BMFM_TRY(bmfm_h5ad_remove(df, name));
    return bmfm_h5_write_strings(df, name, values, n);
}

bmfm_status bmfm_h5ad_add_column_order(hid_t df, const char *name) {
    char **cols = NULL;
    int64_t n = 0;
    bmfm_status st;
    BMFM_TRY(bmfm_h5_attr_strings(df, "column-order", &cols, &n));
    for (int64_t i = 0; i < n; i++) {
        if (!strcmp(cols[i], name)) {
            bmfm_free_strings(cols, n);
            return BMFM_OK;
        }
    }
    const char **all = bmfm_malloc(sizeof *all * (size_t)(n + 1));
    if (!all) {
        bmfm_free_strings(cols, n);
        return BMFM_E_NOMEM;
    }
    for (int64_t i = 0; i < n; i++) all[i] = cols[i];
    all[n] = name;
    st = bmfm_h5_write_attr_strings(df, "column-order", all, n + 1);
    free(all);
    bmfm_free_strings(cols, n);
    return st;
}
