/* h5ad_write.c - add or replace obsm / obs columns / uns strings in a copy
 * of an .h5ad (see h5ad_write.h). All edits go to "<out>.tmp-<pid>"; commit
 * renames it over the output, abort or an error removes it.
 *
 * Legacy files (anndata 0.7, Muon.jl) are edited in place in their own
 * layout: new elements use the 0.8 encoding, which anndata 0.8+ reads inside
 * 0.7-style dataframes too; missing obsm/uns groups are created as dicts.
 * Replaced objects leave unused space in the file (HDF5 does not reclaim it
 * without h5repack).
 */
#include "io/h5ad_write.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "io/dataset_impl.h"
#include "io/h5ad_encode.h"
#include "io/h5ad_export.h"
#include "io/h5ad_hdf5.h"

#include <stdlib.h>
#include <string.h>

struct bmfm_h5ad_edit {
    char out[4096];
    char tmp[4096];
    hid_t file;
    int64_t n_obs;
    char *obs_index; /* name of obs's index dataset, which a column may not replace */
};

static void edit_free(bmfm_h5ad_edit *e) {
    free(e->obs_index);
    free(e);
}

void bmfm_h5ad_edit_abort(bmfm_h5ad_edit *e) {
    if (!e) return;
    if (e->file >= 0) H5Fclose(e->file);
    bmfm_atomic_abort(e->tmp);
    edit_free(e);
}

bmfm_status bmfm_h5ad_edit_begin(bmfm_dataset *ds, const char *out_path, bmfm_h5ad_edit **out) {
    bmfm_status st = BMFM_OK;
    bmfm_h5ad_edit *e;
    *out = NULL;
    bmfm_h5_quiet();
    if (!out_path) out_path = ds->path;
    if (!(e = bmfm_calloc(1, sizeof *e))) return BMFM_E_NOMEM;
    e->file = -1;
    e->n_obs = ds->info.n_obs;
    snprintf(e->out, sizeof e->out, "%s", out_path);
    if ((st = bmfm_atomic_tmp_path(out_path, e->tmp, sizeof e->tmp)) != BMFM_OK) {
        edit_free(e);
        return st;
    }
    if (ds->kind == BMFM_SOURCE_H5AD) {
        if ((st = bmfm_copy_file(ds->path, e->tmp)) != BMFM_OK) goto done;
        e->file = H5Fopen(e->tmp, H5F_ACC_RDWR, H5P_DEFAULT);
        if (e->file < 0) {
            st = bmfm_error_set(BMFM_E_IO, "%s: cannot open the copy %s for writing", out_path, e->tmp);
            goto done;
        }
    } else {
        e->file = H5Fcreate(e->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (e->file < 0) {
            st = bmfm_error_set(BMFM_E_IO, "%s: cannot create %s", out_path, e->tmp);
            goto done;
        }
        if ((st = bmfm_h5ad_export_into(ds, e->file)) != BMFM_OK) goto done;
    }
    if (bmfm_h5_obj_type(e->file, "obs") != H5O_TYPE_GROUP) {
        st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: no obs dataframe group to add columns to", ds->path);
        goto done;
    }
    hid_t g = H5Gopen2(e->file, "obs", H5P_DEFAULT);
    st = bmfm_h5_attr_string(g, "_index", &e->obs_index);
    H5Gclose(g);
done:
    if (st != BMFM_OK) bmfm_h5ad_edit_abort(e);
    else *out = e;
    return st;
}

bmfm_status bmfm_h5ad_edit_put_obsm(bmfm_h5ad_edit *e, const char *key, const float *data, int64_t rows,
                                    int64_t cols) {
    hid_t g;
    BMFM_TRY(bmfm_h5ad_check_key(key, "obsm key"));
    if (rows != e->n_obs || cols < 1)
        return bmfm_error_set(BMFM_E_INPUT, "%s: obsm '%s' is %lld x %lld, expected %lld rows and >= 1 column", e->out,
                              key, (long long)rows, (long long)cols, (long long)e->n_obs);
    BMFM_TRY(bmfm_h5ad_open_dict(e->file, "obsm", &g));
    hsize_t d[2] = {(hsize_t)rows, (hsize_t)cols};
    bmfm_status st = bmfm_h5ad_write_array(g, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, data, 2, d);
    H5Gclose(g);
    return st == BMFM_OK ? st : bmfm_error_prefix(st, "%s: obsm/%s", e->out, key);
}

/* Open obs for a new column `col`, refusing the index's own name. */
static bmfm_status open_obs(bmfm_h5ad_edit *e, const char *col, hid_t *g) {
    BMFM_TRY(bmfm_h5ad_check_key(col, "obs column"));
    if (!strcmp(col, "__categories") || (e->obs_index && !strcmp(col, e->obs_index)))
        return bmfm_error_set(BMFM_E_INPUT, "%s: obs column name '%s' is reserved for the index", e->out, col);
    *g = H5Gopen2(e->file, "obs", H5P_DEFAULT);
    return *g < 0 ? bmfm_error_set(BMFM_E_IO, "%s: cannot open obs", e->out) : BMFM_OK;
}

bmfm_status bmfm_h5ad_edit_put_obs_categorical(bmfm_h5ad_edit *e, const char *col, const int32_t *codes,
                                               const char *const *categories, int64_t n_categories) {
    hid_t g;
    BMFM_TRY(open_obs(e, col, &g));
    bmfm_status st = bmfm_h5ad_write_categorical(g, col, codes, e->n_obs, categories, n_categories);
    if (st == BMFM_OK) st = bmfm_h5ad_add_column_order(g, col);
    H5Gclose(g);
    return st == BMFM_OK ? st : bmfm_error_prefix(st, "%s: obs/%s", e->out, col);
}

bmfm_status bmfm_h5ad_edit_put_obs_numeric(bmfm_h5ad_edit *e, const char *col, const double *values) {
    hid_t g;
    BMFM_TRY(open_obs(e, col, &g));
    bmfm_status st = bmfm_h5ad_write_numeric(g, col, values, e->n_obs);
    if (st == BMFM_OK) st = bmfm_h5ad_add_column_order(g, col);
    H5Gclose(g);
    return st == BMFM_OK ? st : bmfm_error_prefix(st, "%s: obs/%s", e->out, col);
}

bmfm_status bmfm_h5ad_edit_put_uns_string(bmfm_h5ad_edit *e, const char *key, const char *value) {
    hid_t g, t = -1, sp = -1, d = -1;
    bmfm_status st;
    BMFM_TRY(bmfm_h5ad_check_key(key, "uns key"));
    BMFM_TRY(bmfm_h5ad_open_dict(e->file, "uns", &g));
    if ((st = bmfm_h5ad_remove(g, key)) != BMFM_OK) goto done;
    t = bmfm_h5_vlen_utf8();
    sp = H5Screate(H5S_SCALAR);
    d = H5Dcreate2(g, key, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0) {
        st = bmfm_error_set(BMFM_E_IO, "%s: cannot write uns/%s", e->out, key);
        goto done;
    }
    st = bmfm_h5_write_encoding(d, "string", "0.2.0");
done:
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    H5Gclose(g);
    return st;
}

bmfm_status bmfm_h5ad_edit_commit(bmfm_h5ad_edit *e) {
    herr_t r = H5Fclose(e->file);
    e->file = -1;
    if (r < 0) {
        bmfm_status st = bmfm_error_set(BMFM_E_IO, "%s: closing %s failed (disk full?)", e->out, e->tmp);
        bmfm_h5ad_edit_abort(e);
        return st;
    }
    bmfm_status st = bmfm_atomic_commit(e->tmp, e->out);
    edit_free(e);
    return st;
}
