/* h5ad_export.c - write a new .h5ad from any dataset (h5ad or 10x): X as
 * CSR float32 streamed in row blocks into extendible datasets (memory is
 * one block, not the matrix), obs/var dataframes in the anndata 0.8
 * encoding (var keeps its columns), empty dict groups for the rest.
 *
 * Not here: editing an existing file (h5ad_write.c).
 */
#include "io/h5ad_export.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "io/dataset_impl.h"
#include "io/h5ad_encode.h"
#include "io/h5ad_hdf5.h"
#include "io/h5ad_write.h"

#include <stdlib.h>
#include <string.h>

#define EXPORT_ROWS 4096
#define EXPORT_CHUNK ((hsize_t)1 << 16)

static hid_t create_extendible(hid_t g, const char *name, hid_t type) {
    hsize_t d[1] = {0}, mx[1] = {H5S_UNLIMITED}, ch[1] = {EXPORT_CHUNK};
    hid_t sp = H5Screate_simple(1, d, mx), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, ch);
    hid_t ds = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    return ds;
}

static bmfm_status append(hid_t ds, hid_t mtype, hsize_t at, hsize_t n, const void *buf) {
    if (n == 0) return BMFM_OK;
    hsize_t size[1] = {at + n}, start[1] = {at}, count[1] = {n};
    if (H5Dset_extent(ds, size) < 0) return bmfm_error_set(BMFM_E_IO, "cannot extend X");
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(1, count, NULL);
    herr_t r = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (r >= 0) r = H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, buf);
    H5Sclose(ms);
    H5Sclose(fs);
    return r < 0 ? bmfm_error_set(BMFM_E_IO, "cannot write X") : BMFM_OK;
}

static bmfm_status write_x(bmfm_dataset *ds, hid_t file) {
    bmfm_status st = BMFM_OK;
    bmfm_csr blk = {0};
    int64_t n_obs = ds->info.n_obs, nnz = 0;
    hid_t g = H5Gcreate2(file, "X", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t dd = -1, di = -1, dp = -1;
    if (g < 0) return bmfm_error_set(BMFM_E_IO, "cannot create /X");
    if ((st = bmfm_h5_write_encoding(g, "csr_matrix", "0.1.0")) != BMFM_OK) goto done;
    {
        int64_t shape[2] = {n_obs, ds->info.n_vars};
        hsize_t d[1] = {2};
        hid_t sp = H5Screate_simple(1, d, NULL);
        hid_t a = H5Acreate2(g, "shape", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        herr_t r = a >= 0 ? H5Awrite(a, H5T_NATIVE_INT64, shape) : -1;
        if (a >= 0) H5Aclose(a);
        H5Sclose(sp);
        if (r < 0) { st = bmfm_error_set(BMFM_E_IO, "cannot write /X shape"); goto done; }
    }
    dd = create_extendible(g, "data", H5T_IEEE_F32LE);
    di = create_extendible(g, "indices", H5T_STD_I32LE);
    dp = create_extendible(g, "indptr", H5T_STD_I64LE);
    if (dd < 0 || di < 0 || dp < 0) { st = bmfm_error_set(BMFM_E_IO, "cannot create /X datasets"); goto done; }
    if ((st = append(dp, H5T_NATIVE_INT64, 0, 1, &nnz)) != BMFM_OK) goto done;
    for (int64_t b = 0; b < n_obs; b += EXPORT_ROWS) {
        int64_t e = b + EXPORT_ROWS < n_obs ? b + EXPORT_ROWS : n_obs;
        if ((st = bmfm_dataset_read_rows(ds, b, e, &blk)) != BMFM_OK) goto done;
        int64_t bn = blk.indptr[blk.nrows];
        if ((st = append(dd, H5T_NATIVE_FLOAT, (hsize_t)nnz, (hsize_t)bn, blk.data)) != BMFM_OK) goto done;
        if ((st = append(di, H5T_NATIVE_INT32, (hsize_t)nnz, (hsize_t)bn, blk.indices)) != BMFM_OK) goto done;
        for (int64_t r = 1; r <= blk.nrows; r++) blk.indptr[r] += nnz; /* rebase onto the file */
        if ((st = append(dp, H5T_NATIVE_INT64, (hsize_t)b + 1, (hsize_t)blk.nrows, blk.indptr + 1)) != BMFM_OK)
            goto done;
        nnz += bn;
    }
done:
    bmfm_csr_free(&blk);
    if (dd >= 0) H5Dclose(dd);
    if (di >= 0) H5Dclose(di);
    if (dp >= 0) H5Dclose(dp);
    H5Gclose(g);
    return st;
}

/* Copy var's columns: categoricals stay categorical, numbers become
 * float64, strings stay strings. */
static bmfm_status write_var_columns(bmfm_dataset *ds, hid_t var) {
    const char *const *cols;
    int64_t nc;
    BMFM_TRY(bmfm_dataset_var_columns(ds, &cols, &nc));
    for (int64_t i = 0; i < nc; i++) {
        bmfm_column c;
        bmfm_status st = bmfm_dataset_var_column(ds, cols[i], &c);
        if (st != BMFM_OK) return st;
        if (c.kind == BMFM_COL_CATEGORICAL)
            st = bmfm_h5ad_write_categorical(var, c.name, c.codes, c.n, (const char *const *)c.categories,
                                             c.n_categories);
        else if (c.kind == BMFM_COL_STRING)
            st = bmfm_h5ad_write_string_column(var, c.name, (const char *const *)c.strings, c.n);
        else
            st = bmfm_h5ad_write_numeric(var, c.name, c.values, c.n);
        if (st == BMFM_OK) st = bmfm_h5ad_add_column_order(var, c.name);
        bmfm_column_free(&c);
        if (st != BMFM_OK) return st;
    }
    return BMFM_OK;
}

bmfm_status bmfm_h5ad_export_into(bmfm_dataset *ds, hid_t file) {
    const char *const *obs, *const *var;
    static const char *const dicts[] = {"layers", "obsm", "obsp", "uns", "varm", "varp"};
    hid_t vg = -1;
    bmfm_status st;
    BMFM_TRY(bmfm_dataset_obs_names(ds, &obs));
    BMFM_TRY(bmfm_dataset_var_names(ds, &var));
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    st = bmfm_h5_write_encoding(root, "anndata", "0.1.0");
    H5Gclose(root);
    if (st != BMFM_OK) return st;
    BMFM_TRY(write_x(ds, file));
    BMFM_TRY(bmfm_h5ad_write_dataframe(file, "obs", obs, ds->info.n_obs));
    BMFM_TRY(bmfm_h5ad_write_dataframe(file, "var", var, ds->info.n_vars));
    vg = H5Gopen2(file, "var", H5P_DEFAULT);
    st = vg < 0 ? bmfm_error_set(BMFM_E_IO, "cannot open /var") : write_var_columns(ds, vg);
    if (vg >= 0) H5Gclose(vg);
    for (size_t i = 0; st == BMFM_OK && i < sizeof dicts / sizeof *dicts; i++) {
        hid_t g;
        st = bmfm_h5ad_open_dict(file, dicts[i], &g);
        if (st == BMFM_OK) H5Gclose(g);
    }
    return st;
}

bmfm_status bmfm_h5ad_export(bmfm_dataset *ds, const char *out_path) {
    char tmp[4096];
    bmfm_status st;
    bmfm_h5_quiet();
    BMFM_TRY(bmfm_atomic_tmp_path(out_path, tmp, sizeof tmp));
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return bmfm_error_set(BMFM_E_IO, "%s: cannot create HDF5 file %s", out_path, tmp);
    st = bmfm_h5ad_export_into(ds, f);
    if (H5Fclose(f) < 0 && st == BMFM_OK) st = bmfm_error_set(BMFM_E_IO, "%s: closing %s failed", out_path, tmp);
    if (st != BMFM_OK) {
        bmfm_atomic_abort(tmp);
        return bmfm_error_prefix(st, "%s", out_path);
    }
    return bmfm_atomic_commit(tmp, out_path);
}
