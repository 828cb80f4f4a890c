/* h5ad_hdf5.c - libhdf5 helpers for the h5ad reader and writer (see h5ad_hdf5.h). */
#include "io/h5ad_hdf5.h"

#include "base/alloc.h"
#include "io/h5ad_lzf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bmfm_h5_quiet(void) {
    static int done;
    if (!done) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        bmfm_h5_register_lzf();
        done = 1;
    }
}

typedef struct { char *buf; size_t n; } error_detail;

static herr_t keep_first(unsigned n, const H5E_error2_t *err, void *data) {
    error_detail *d = data;
    (void)n;
    if (err->desc && *err->desc && !d->buf[0]) snprintf(d->buf, d->n, "%s", err->desc);
    return 0;
}

void bmfm_h5_error_detail(char *buf, size_t n) {
    error_detail d = {buf, n};
    if (n) buf[0] = '\0';
    /* walking upward visits the innermost (most specific) entry first */
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_first, &d);
}

int bmfm_h5_exists(hid_t loc, const char *path) {
    /* H5Lexists fails (rather than returning 0) when an intermediate group is
     * missing, so walk the path one component at a time. */
    char buf[1024];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char save = buf[i];
        buf[i] = '\0';
        htri_t e = H5Lexists(loc, buf, H5P_DEFAULT);
        buf[i] = save;
        if (e <= 0) return 0;
    }
    return 1;
}

H5O_type_t bmfm_h5_obj_type(hid_t loc, const char *path) {
    if (!bmfm_h5_exists(loc, path)) return H5O_TYPE_UNKNOWN;
    hid_t o = H5Oopen(loc, path, H5P_DEFAULT);
    if (o < 0) return H5O_TYPE_UNKNOWN;
    H5I_type_t t = H5Iget_type(o);
    H5Oclose(o);
    return t == H5I_GROUP ? H5O_TYPE_GROUP : t == H5I_DATASET ? H5O_TYPE_DATASET : H5O_TYPE_UNKNOWN;
}

typedef struct { char **names; int64_t n; size_t cap; int failed; } member_list;

static herr_t add_member(hid_t g, const char *name, const H5L_info_t *info, void *arg) {
    member_list *l = arg;
    (void)g;
    (void)info;
    if (bmfm_grow((void **)&l->names, &l->cap, (size_t)l->n + 1, sizeof *l->names) < 0 ||
        !(l->names[l->n] = bmfm_strdup(name))) {
        l->failed = 1;
        return -1;
    }
    l->n++;
    return 0;
}

bmfm_status bmfm_h5_members(hid_t loc, const char *file, const char *grp, char ***out, int64_t *n) {
    *out = NULL;
    *n = 0;
    if (bmfm_h5_obj_type(loc, grp) != H5O_TYPE_GROUP) return BMFM_OK;
    hid_t g = H5Gopen2(loc, grp, H5P_DEFAULT);
    member_list l = {NULL, 0, 0, 0};
    herr_t r = g >= 0 ? H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_member, &l) : -1;
    if (g >= 0) H5Gclose(g);
    if (r < 0) {
        for (int64_t i = 0; i < l.n; i++) free(l.names[i]);
        free(l.names);
        return l.failed ? BMFM_E_NOMEM : bmfm_error_set(BMFM_E_INPUT, "%s: cannot list %s (corrupt file?)", file, grp);
    }
    *out = l.names;
    *n = l.n;
    return BMFM_OK;
}

/* Read string element(s) of an attribute or dataset with file type ftype
 * into n malloc'd strings. Works for vlen and fixed-length strings. */
static bmfm_status read_string_elems(hid_t obj, int is_attr, hid_t ftype, int64_t n, char **out) {
    bmfm_status st = BMFM_OK;
    hid_t mtype = H5Tcopy(H5T_C_S1);
    if (mtype < 0) return bmfm_error_set(BMFM_E_INPUT, "cannot create a string type");
    if (H5Tis_variable_str(ftype) > 0) {
        char **tmp = NULL;
        H5Tset_size(mtype, H5T_VARIABLE);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        tmp = bmfm_calloc((size_t)(n > 0 ? n : 1), sizeof *tmp);
        if (!tmp) { st = BMFM_E_NOMEM; goto done; }
        herr_t r = is_attr ? H5Aread(obj, mtype, tmp) : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp);
        if (r < 0) {
            free(tmp);
            st = bmfm_error_set(BMFM_E_INPUT, "cannot read strings");
            goto done;
        }
        for (int64_t i = 0; i < n; i++) {
            out[i] = bmfm_strdup(tmp[i] ? tmp[i] : "");
            if (!out[i]) st = BMFM_E_NOMEM;
        }
        hid_t sp = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
        H5Dvlen_reclaim(mtype, sp, H5P_DEFAULT, tmp);
        H5Sclose(sp);
        free(tmp);
    } else {
        size_t sz = H5Tget_size(ftype);
        char *tmp;
        H5Tset_size(mtype, sz);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        H5Tset_strpad(mtype, H5Tget_strpad(ftype));
        tmp = bmfm_malloc(sz * (size_t)(n > 0 ? n : 1) + 1);
        if (!tmp) { st = BMFM_E_NOMEM; goto done; }
        herr_t r = n == 0 ? 0 : is_attr ? H5Aread(obj, mtype, tmp) : H5Dread(obj, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp);
        if (r < 0) {
            free(tmp);
            st = bmfm_error_set(BMFM_E_INPUT, "cannot read strings");
            goto done;
        }
        for (int64_t i = 0; i < n && st == BMFM_OK; i++) {
            const char *s = tmp + (size_t)i * sz;
            size_t l = strnlen(s, sz);
            while (l > 0 && H5Tget_strpad(ftype) == H5T_STR_SPACEPAD && s[l - 1] == ' ') l--;
            out[i] = bmfm_malloc(l + 1);
            if (!out[i]) { st = BMFM_E_NOMEM; break; }
            memcpy(out[i], s, l);
            out[i][l] = '\0';
        }
        free(tmp);
    }
done:
    H5Tclose(mtype);
    return st;
}

static int64_t space_npoints(hid_t space) {
    hssize_t n = H5Sget_simple_extent_npoints(space);
    return n < 0 ? -1 : (int64_t)n;
}

bmfm_status bmfm_h5_attr_string(hid_t obj, const char *name, char **out) {
    *out = NULL;
    if (H5Aexists(obj, name) <= 0) return BMFM_OK;
    bmfm_status st = BMFM_OK;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1, sp = -1;
    if (a < 0) return BMFM_OK;
    t = H5Aget_type(a);
    sp = H5Aget_space(a);
    if (H5Tget_class(t) == H5T_STRING && space_npoints(sp) == 1) {
        char *s[1] = {NULL};
        st = read_string_elems(a, 1, t, 1, s);
        if (st == BMFM_OK) {
            *out = s[0];
        } else if (st != BMFM_E_NOMEM) { /* an unreadable attribute counts as absent */
            bmfm_error_clear();
            st = BMFM_OK;
        }
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return st;
}

bmfm_status bmfm_h5_attr_strings(hid_t obj, const char *name, char ***out, int64_t *n) {
    *out = NULL;
    *n = 0;
    if (H5Aexists(obj, name) <= 0) return BMFM_OK;
    bmfm_status st = BMFM_OK;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), t = -1, sp = -1;
    if (a < 0) return BMFM_OK;
    t = H5Aget_type(a);
    sp = H5Aget_space(a);
    int64_t np = space_npoints(sp);
    if (H5Tget_class(t) == H5T_STRING && np > 0) {
        char **s = bmfm_calloc((size_t)np, sizeof *s);
        if (!s) { st = BMFM_E_NOMEM; goto done; }
        st = read_string_elems(a, 1, t, np, s);
        if (st != BMFM_OK) {
            for (int64_t i = 0; i < np; i++) free(s[i]);
            free(s);
            goto done;
        }
        *out = s;
        *n = np;
    }
done:
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return st;
}

int bmfm_h5_attr_ints(hid_t obj, const char *name, int64_t *out, int cap) {
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    int64_t np = space_npoints(sp);
    int rc = -1;
    if (H5Tget_class(t) == H5T_INTEGER && np >= 0 && np <= cap) {
        if (np == 0 || H5Aread(a, H5T_NATIVE_INT64, out) >= 0) rc = (int)np;
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

bmfm_status bmfm_h5_read_strings(hid_t dset, const char *file, const char *field, char ***out,
                                 int64_t *n) {
    *out = NULL;
    *n = 0;
    bmfm_status st = BMFM_OK;
    hid_t t = H5Dget_type(dset), sp = H5Dget_space(dset);
    char **s = NULL;
    int64_t np = space_npoints(sp);
    if (t < 0 || sp < 0 || np < 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s cannot be read (corrupt file?)", file, field);
        goto done;
    }
    if (H5Tget_class(t) != H5T_STRING) {
        char tn[16];
        bmfm_h5_type_name(t, tn);
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s has dtype %s, expected strings", file, field, tn);
        goto done;
    }
    if (H5Sget_simple_extent_ndims(sp) > 1) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: %s is not 1-D", file, field);
        goto done;
    }
    s = bmfm_calloc((size_t)(np > 0 ? np : 1), sizeof *s);
    if (!s) { st = BMFM_E_NOMEM; goto done; }
    if (np > 0) {
        st = read_string_elems(dset, 0, t, np, s);
        if (st != BMFM_OK) {
            for (int64_t i = 0; i < np; i++) free(s[i]);
            free(s);
            s = NULL;
            st = bmfm_error_set(st, "%s: %s: cannot read strings (truncated or corrupt file?)", file, field);
            goto done;
        }
    }
    *out = s;
    *n = np;
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return st;
}

int bmfm_h5_type_is_bool(hid_t type) {
    if (H5Tget_class(type) != H5T_ENUM || H5Tget_size(type) != 1 || H5Tget_nmembers(type) != 2) return 0;
    char *n0 = H5Tget_member_name(type, 0), *n1 = H5Tget_member_name(type, 1);
    int ok = n0 && n1 && strcmp(n0, "FALSE") == 0 && strcmp(n1, "TRUE") == 0;
    H5free_memory(n0);
    H5free_memory(n1);
    return ok;
}

int bmfm_h5_type_is_numeric(hid_t type) {
    H5T_class_t c = H5Tget_class(type);
    return c == H5T_INTEGER || c == H5T_FLOAT || bmfm_h5_type_is_bool(type);
}

void bmfm_h5_type_name(hid_t type, char out[16]) {
    size_t sz = H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_FLOAT: snprintf(out, 16, "float%zu", sz * 8); break;
    case H5T_INTEGER:
        snprintf(out, 16, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", sz * 8);
        break;
    case H5T_STRING: snprintf(out, 16, "string"); break;
    case H5T_ENUM: snprintf(out, 16, bmfm_h5_type_is_bool(type) ? "bool" : "enum"); break;
    case H5T_COMPOUND: snprintf(out, 16, "compound"); break;
    case H5T_REFERENCE: snprintf(out, 16, "reference"); break;
    default: snprintf(out, 16, "unknown"); break;
    }
}

int bmfm_h5_dims(hid_t dset, int64_t *dims, int cap) {
    hid_t sp = H5Dget_space(dset);
    if (sp < 0) return -1;
    int r = H5Sget_simple_extent_ndims(sp);
    hsize_t d[H5S_MAX_RANK];
    if (r >= 0 && r <= H5S_MAX_RANK && H5Sget_simple_extent_dims(sp, d, NULL) >= 0) {
        for (int i = 0; i < r && i < cap; i++) dims[i] = (int64_t)d[i];
    } else {
        r = -1;
    }
    H5Sclose(sp);
    return r;
}

static bmfm_status read_block(hid_t dset, hid_t memtype, int rank, const hsize_t *start,
                              const hsize_t *count, void *buf, const char *file, const char *field) {
    hid_t fs = H5Dget_space(dset), ms = -1;
    herr_t r = -1;
    if (fs >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0) {
        ms = H5Screate_simple(rank, count, NULL);
        if (ms >= 0) r = H5Dread(dset, memtype, ms, fs, H5P_DEFAULT, buf);
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (r < 0)
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s: reading elements [%llu, %llu) failed (truncated or corrupt file?)",
                              file, field, (unsigned long long)start[0],
                              (unsigned long long)(start[0] + count[0]));
    return BMFM_OK;
}

bmfm_status bmfm_h5_read_range(hid_t dset, hid_t memtype, int64_t start, int64_t count, void *buf,
                               const char *file, const char *field) {
    if (count <= 0) return BMFM_OK;
    hsize_t s[1] = {(hsize_t)start}, c[1] = {(hsize_t)count};
    return read_block(dset, memtype, 1, s, c, buf, file, field);
}

bmfm_status bmfm_h5_read_rows2d(hid_t dset, hid_t memtype, int64_t r0, int64_t nr, int64_t ncols,
                                void *buf, const char *file, const char *field) {
    if (nr <= 0 || ncols <= 0) return BMFM_OK;
    hsize_t s[2] = {(hsize_t)r0, 0}, c[2] = {(hsize_t)nr, (hsize_t)ncols};
    return read_block(dset, memtype, 2, s, c, buf, file, field);
}

hid_t bmfm_h5_vlen_utf8(void) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    return t;
}

static bmfm_status write_attr(hid_t obj, const char *name, hid_t type, hid_t space, const void *buf) {
    if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0)
        return bmfm_error_set(BMFM_E_IO, "cannot replace attribute %s", name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a >= 0 ? H5Awrite(a, type, buf) : -1;
    if (a >= 0) H5Aclose(a);
    return r < 0 ? bmfm_error_set(BMFM_E_IO, "cannot write attribute %s", name) : BMFM_OK;
}

bmfm_status bmfm_h5_write_attr_string(hid_t obj, const char *name, const char *value) {
    hid_t t = bmfm_h5_vlen_utf8(), sp = H5Screate(H5S_SCALAR);
    bmfm_status st = write_attr(obj, name, t, sp, &value);
    H5Sclose(sp);
    H5Tclose(t);
    return st;
}

bmfm_status bmfm_h5_write_attr_strings(hid_t obj, const char *name, const char *const *values,
                                       int64_t n) {
    hsize_t d[1] = {(hsize_t)n};
    hid_t t = bmfm_h5_vlen_utf8(), sp = H5Screate_simple(1, d, NULL);
    static const char *const empty[1] = {""};
    bmfm_status st = write_attr(obj, name, t, sp, n > 0 ? (const void *)values : (const void *)empty);
    H5Sclose(sp);
    H5Tclose(t);
    return st;
}

bmfm_status bmfm_h5_write_attr_bool(hid_t obj, const char *name, int value) {
    /* h5py stores numpy bools as an int8 enum {FALSE, TRUE}; anndata reads
     * the "ordered" attribute of categoricals that way. */
    hid_t t = H5Tenum_create(H5T_NATIVE_INT8), sp = H5Screate(H5S_SCALAR);
    int8_t f = 0, tr = 1, v = value ? 1 : 0;
    H5Tenum_insert(t, "FALSE", &f);
    H5Tenum_insert(t, "TRUE", &tr);
    bmfm_status st = write_attr(obj, name, t, sp, &v);
    H5Sclose(sp);
    H5Tclose(t);
    return st;
}

bmfm_status bmfm_h5_write_encoding(hid_t obj, const char *type, const char *version) {
    BMFM_TRY(bmfm_h5_write_attr_string(obj, "encoding-type", type));
    return bmfm_h5_write_attr_string(obj, "encoding-version", version);
}

bmfm_status bmfm_h5_write_strings(hid_t loc, const char *name, const char *const *values, int64_t n) {
    hsize_t d[1] = {(hsize_t)n};
    hid_t t = bmfm_h5_vlen_utf8(), sp = H5Screate_simple(1, d, NULL);
    hid_t ds = H5Dcreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = ds >= 0 ? (n > 0 ? H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) : 0) : -1;
    bmfm_status st = r < 0 ? bmfm_error_set(BMFM_E_IO, "cannot write string dataset %s", name) : BMFM_OK;
    if (st == BMFM_OK) st = bmfm_h5_write_encoding(ds, "string-array", "0.2.0");
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Tclose(t);
    return st;
}
