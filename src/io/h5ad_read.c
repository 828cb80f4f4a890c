/* h5ad_read.c - the .h5ad backend of dataset.h: opens the file read-only,
 * picks the matrix (X, raw/X or a layer), checks that obs/var agree with its
 * shape, and serves names, dataframe columns, layers and obsm through the
 * table in dataset_impl.h. The matrix streaming is in h5ad_matrix.c, the
 * dataframes in h5ad_frame.c.
 */
#include "io/dataset_impl.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "io/h5ad_frame.h"
#include "io/h5ad_hdf5.h"
#include "io/h5ad_matrix.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct h5ad_impl {
    hid_t file;
    bmfm_h5_matrix m;
    const char *var_grp; /* "/var", or "/raw/var" for raw/X */
} h5ad_impl;

static h5ad_impl *impl_of(bmfm_dataset *ds) { return ds->impl; }

static const char *frame_of(bmfm_dataset *ds, int axis) { return axis ? impl_of(ds)->var_grp : "/obs"; }

static bmfm_status h5ad_read_rows(bmfm_dataset *ds, int64_t begin, int64_t end, bmfm_csr *out) {
    return bmfm_h5_matrix_read_rows(&impl_of(ds)->m, begin, end, out);
}

static bmfm_status h5ad_load_names(bmfm_dataset *ds, int axis, char ***names) {
    int64_t n, want = axis ? ds->info.n_vars : ds->info.n_obs;
    BMFM_TRY(bmfm_h5_frame_index(impl_of(ds)->file, ds->path, frame_of(ds, axis), names, &n));
    if (n != want) {
        bmfm_free_strings(*names, n);
        *names = NULL;
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s index has %lld names, but %s has %lld %s", ds->path,
                              frame_of(ds, axis), (long long)n, ds->info.location, (long long)want,
                              axis ? "columns" : "rows");
    }
    return BMFM_OK;
}

static bmfm_status h5ad_list_columns(bmfm_dataset *ds, int axis, char ***names, int64_t *n) {
    return bmfm_h5_frame_columns(impl_of(ds)->file, ds->path, frame_of(ds, axis), names, n);
}

static bmfm_status h5ad_read_column(bmfm_dataset *ds, int axis, const char *name, bmfm_column *out) {
    return bmfm_h5_frame_column(impl_of(ds)->file, ds->path, frame_of(ds, axis), name,
                                axis ? ds->info.n_vars : ds->info.n_obs, out);
}

static bmfm_status h5ad_list_layers(bmfm_dataset *ds, char ***names, int64_t *n) {
    return bmfm_h5_members(impl_of(ds)->file, ds->path, "/layers", names, n);
}

static bmfm_status h5ad_list_obsm(bmfm_dataset *ds, char ***names, int64_t *n) {
    return bmfm_h5_members(impl_of(ds)->file, ds->path, "/obsm", names, n);
}

static bmfm_status h5ad_read_obsm(bmfm_dataset *ds, const char *key, float **data, int64_t *rows,
                                  int64_t *cols) {
    hid_t file = impl_of(ds)->file, d = -1, t = -1;
    char path[600];
    bmfm_status st = BMFM_OK;
    int64_t dims[2] = {0, 1};
    *data = NULL;
    *rows = *cols = 0;
    snprintf(path, sizeof path, "/obsm/%s", key);
    H5O_type_t type = strchr(key, '/') ? H5O_TYPE_UNKNOWN : bmfm_h5_obj_type(file, path);
    if (type == H5O_TYPE_UNKNOWN) return bmfm_error_set(BMFM_E_INPUT, "%s: no %s", ds->path, path);
    if (type == H5O_TYPE_GROUP) {
        char *enc = NULL;
        hid_t g = H5Gopen2(file, path, H5P_DEFAULT);
        if (g >= 0) {
            st = bmfm_h5_attr_string(g, "encoding-type", &enc);
            H5Gclose(g);
        }
        if (st == BMFM_OK)
            st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %s is stored as '%s', only dense arrays are read", ds->path,
                                path, enc ? enc : "a group");
        free(enc);
        return st;
    }
    d = H5Dopen2(file, path, H5P_DEFAULT);
    if (d < 0) return bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be opened (corrupt file?)", ds->path, path);
    t = H5Dget_type(d);
    int rank = bmfm_h5_dims(d, dims, 2);
    if (!bmfm_h5_type_is_numeric(t) || bmfm_h5_type_is_bool(t) || rank < 1 || rank > 2) {
        char tn[16];
        bmfm_h5_type_name(t, tn);
        st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %s is a %d-D %s dataset, expected a numeric matrix", ds->path,
                            path, rank, tn);
        goto done;
    }
    if (rank == 1) dims[1] = 1;
    if (dims[0] != ds->info.n_obs) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s has %lld rows, expected n_obs = %lld", ds->path, path,
                            (long long)dims[0], (long long)ds->info.n_obs);
        goto done;
    }
    *data = bmfm_malloc(sizeof **data * (size_t)(dims[0] * dims[1] > 0 ? dims[0] * dims[1] : 1));
    if (!*data) { st = BMFM_E_NOMEM; goto done; }
    if (rank == 1) st = bmfm_h5_read_range(d, H5T_NATIVE_FLOAT, 0, dims[0], *data, ds->path, path);
    else st = bmfm_h5_read_rows2d(d, H5T_NATIVE_FLOAT, 0, dims[0], dims[1], *data, ds->path, path);
    if (st != BMFM_OK) {
        free(*data);
        *data = NULL;
        goto done;
    }
    *rows = dims[0];
    *cols = dims[1];
done:
    H5Tclose(t);
    H5Dclose(d);
    return st;
}

static int h5ad_has_raw(bmfm_dataset *ds) { return bmfm_h5_exists(impl_of(ds)->file, "raw/X"); }

static void h5ad_close(bmfm_dataset *ds) {
    h5ad_impl *im = impl_of(ds);
    if (!im) return;
    bmfm_h5_matrix_close(&im->m);
    if (im->file >= 0) H5Fclose(im->file);
    free(im);
    ds->impl = NULL;
}

static const bmfm_dataset_ops h5ad_ops = {
    .read_rows = h5ad_read_rows,
    .load_names = h5ad_load_names,
    .list_columns = h5ad_list_columns,
    .read_column = h5ad_read_column,
    .list_layers = h5ad_list_layers,
    .list_obsm = h5ad_list_obsm,
    .read_obsm = h5ad_read_obsm,
    .has_raw = h5ad_has_raw,
    .close = h5ad_close,
};

/* Where the requested matrix lives: NULL/"X", "raw" ("raw/X"), "layers/N" or "N". */
static void matrix_location(const char *matrix, char *loc, size_t n, const char **var_grp) {
    *var_grp = "/var";
    if (!matrix || !strcmp(matrix, "X") || !strcmp(matrix, "/X")) {
        snprintf(loc, n, "/X");
    } else if (!strcmp(matrix, "raw") || !strcmp(matrix, "raw/X") || !strcmp(matrix, "/raw/X")) {
        snprintf(loc, n, "/raw/X");
        *var_grp = "/raw/var";
    } else {
        const char *name = matrix;
        if (!strncmp(name, "/layers/", 8)) name += 8;
        else if (!strncmp(name, "layers/", 7)) name += 7;
        snprintf(loc, n, "/layers/%s", name);
    }
}

/* Length of a dataframe's index dataset, or -1 when there is none to check. */
static int64_t frame_rows(hid_t file, const char *grp) {
    if (bmfm_h5_obj_type(file, grp) != H5O_TYPE_GROUP) return -1;
    hid_t g = H5Gopen2(file, grp, H5P_DEFAULT);
    char *iname = NULL;
    int64_t n = -1, dims[2];
    if (g < 0) return -1;
    if (bmfm_h5_attr_string(g, "_index", &iname) == BMFM_OK && iname &&
        bmfm_h5_obj_type(g, iname) == H5O_TYPE_DATASET) {
        hid_t d = H5Dopen2(g, iname, H5P_DEFAULT);
        if (d >= 0 && bmfm_h5_dims(d, dims, 2) == 1) n = dims[0];
        if (d >= 0) H5Dclose(d);
    }
    free(iname);
    H5Gclose(g);
    return n;
}

static bmfm_status missing_matrix(const char *path, hid_t file, const char *loc) {
    if (!strcmp(loc, "/X")) return bmfm_error_set(BMFM_E_INPUT, "%s: /X is missing (no expression matrix)", path);
    if (!strcmp(loc, "/raw/X")) return bmfm_error_set(BMFM_E_INPUT, "%s: /raw/X is missing (no raw matrix)", path);
    char **names = NULL, list[512] = "";
    int64_t n = 0;
    if (bmfm_h5_members(file, path, "/layers", &names, &n) == BMFM_OK) {
        for (int64_t i = 0; i < n; i++) {
            size_t l = strlen(list);
            snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", names[i]);
        }
    }
    bmfm_free_strings(names, n);
    return bmfm_error_set(BMFM_E_INPUT, "%s: no layer %s (layers: %s)", path, loc + 8, n ? list : "none");
}

bmfm_status bmfm_h5ad_open_dataset(const char *path, const char *matrix, bmfm_dataset **out) {
    bmfm_status st = BMFM_OK;
    bmfm_dataset *ds = NULL;
    h5ad_impl *im = NULL;
    char loc[256];
    const char *var_grp;
    struct stat sb;
    *out = NULL;
    bmfm_h5_quiet();
    if (stat(path, &sb) != 0) return bmfm_error_set(BMFM_E_IO, "%s: no such file", path);
    if (!S_ISREG(sb.st_mode)) return bmfm_error_set(BMFM_E_INPUT, "%s: not a regular file", path);
    if (H5Fis_hdf5(path) <= 0)
        return bmfm_error_set(BMFM_E_INPUT, "%s: not an HDF5 file (an .h5ad must be HDF5; truncated or corrupt?)", path);
    ds = bmfm_calloc(1, sizeof *ds);
    im = bmfm_calloc(1, sizeof *im);
    if (!ds || !im) { st = BMFM_E_NOMEM; goto done; }
    im->file = -1;
    ds->ops = &h5ad_ops;
    ds->impl = im;
    ds->kind = BMFM_SOURCE_H5AD;
    if (!(ds->path = bmfm_strdup(path))) { st = BMFM_E_NOMEM; goto done; }
    im->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (im->file < 0) {
        char detail[256];
        bmfm_h5_error_detail(detail, sizeof detail);
        st = bmfm_error_set(BMFM_E_INPUT, "%s: HDF5 cannot open it (truncated or corrupt file?)%s%s", path,
                            *detail ? ": " : "", detail);
        goto done;
    }
    matrix_location(matrix, loc, sizeof loc, &var_grp);
    im->var_grp = var_grp;
    if (!bmfm_h5_exists(im->file, loc + 1)) {
        st = missing_matrix(path, im->file, loc);
        goto done;
    }
    if ((st = bmfm_h5_matrix_open(im->file, ds->path, loc, &im->m)) != BMFM_OK) goto done;
    bmfm_matrix_info *info = &ds->info;
    info->n_obs = im->m.n_obs;
    info->n_vars = im->m.n_vars;
    info->nnz = im->m.nnz;
    info->encoding = im->m.enc;
    memcpy(info->dtype, im->m.dtype, sizeof info->dtype);
    memcpy(info->index_dtype, im->m.index_dtype, sizeof info->index_dtype);
    snprintf(info->location, sizeof info->location, "%s", loc);
    int64_t no = frame_rows(im->file, "/obs"), nv = frame_rows(im->file, var_grp);
    if (no >= 0 && no != info->n_obs) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: shape mismatch: obs has %lld rows but %s has %lld", path,
                            (long long)no, loc, (long long)info->n_obs);
        goto done;
    }
    if (nv >= 0 && nv != info->n_vars) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: shape mismatch: %s has %lld rows but %s has %lld columns", path,
                            var_grp + 1, (long long)nv, loc, (long long)info->n_vars);
        goto done;
    }
    *out = ds;
    ds = NULL;
done:
    if (ds) bmfm_dataset_close(ds);
    else if (!*out) free(im);
    return st;
}
