/* test_h5ad.c - the h5ad data layer against python anndata/h5py.
 *
 * Every shared .h5ad (and generated CSC / wide-dtype / pre-0.7 / empty
 * fixtures) is read whole and in 7-row chunks and compared with
 * tests/ref/h5ad_dump.py: shape, encoding, dtype, obs/var columns (kind,
 * category count, sampled values), sampled names, layers, raw, obsm, and
 * per-row sums and nonzero counts. The writer's output is read back by
 * python anndata (tests/ref/h5ad_check_write.py). Bad files must fail with
 * one message naming the file, the field and the problem.
 */
#include "test_util.h"

#include "base/error.h"
#include "base/fileutil.h"
#include "base/rng.h"
#include "io/dataset.h"
#include "io/h5ad_matrix.h"
#include "io/h5ad_write.h"

#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fixture(const char *name) {
    static char buf[8][4096];
    static int next;
    char *b = buf[next];
    next = (next + 1) % 8;
    snprintf(b, 4096, "%s/%s", tu_scratch("fx"), name);
    return b;
}

/* Generate the fixtures unless they are newer than their script. */
static int setup_fixtures(void **state) {
    struct stat script, made, last;
    (void)state;
    if (stat("tests/ref/h5ad_fixtures.py", &script) == 0 && stat(fixture("wide.h5ad"), &made) == 0 &&
        stat(fixture("ok_copy.h5ad"), &last) == 0 && made.st_mtime > script.st_mtime)
        return 0;
    return tu_python("h5ad_fixtures.py %s %s", tu_scratch("fx"), tu_data("h5ad"));
}

static cJSON *oracle(const char *path, const char *matrix) {
    const char *json = tu_scratch("oracle.json");
    assert_int_equal(tu_python("h5ad_dump.py '%s' %s '%s'", path, matrix, json), 0);
    char *text;
    assert_int_equal(bmfm_read_file(json, &text, NULL), BMFM_OK);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static void check_frame(bmfm_dataset *ds, int axis, const cJSON *expect, const char *path) {
    const char *const *names;
    int64_t n;
    if (axis) assert_int_equal(bmfm_dataset_var_columns(ds, &names, &n), BMFM_OK);
    else assert_int_equal(bmfm_dataset_obs_columns(ds, &names, &n), BMFM_OK);
    assert_int_equal(n, cJSON_GetArraySize(expect));
    for (int64_t i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(expect, (int)i);
        assert_string_equal(names[i], cJSON_GetObjectItem(e, "name")->valuestring);
        bmfm_column c;
        bmfm_status st = axis ? bmfm_dataset_var_column(ds, names[i], &c) : bmfm_dataset_obs_column(ds, names[i], &c);
        if (st != BMFM_OK) fail_msg("%s: column %s: %s", path, names[i], bmfm_error_message());
        const char *kind = cJSON_GetObjectItem(e, "kind")->valuestring;
        if (strcmp(kind, bmfm_column_kind_name(c.kind)) != 0) fail_msg("%s: %s is %s, python says %s", path, names[i], bmfm_column_kind_name(c.kind), kind);
        if (c.kind == BMFM_COL_CATEGORICAL)
            assert_int_equal(c.n_categories, cJSON_GetObjectItem(e, "n_categories")->valueint);
        const cJSON *rows = cJSON_GetObjectItem(e, "rows"), *vals = cJSON_GetObjectItem(e, "values");
        for (int k = 0; k < cJSON_GetArraySize(rows); k++) {
            int64_t r = cJSON_GetArrayItem(rows, k)->valueint;
            const cJSON *v = cJSON_GetArrayItem(vals, k);
            char buf[64];
            const char *t = bmfm_column_text(&c, r, buf, sizeof buf);
            if (cJSON_IsNull(v)) {
                if (t != NULL) fail_msg("%s: %s[%lld] = %s, expected missing", path, names[i], (long long)r, t);
            } else if (cJSON_IsString(v)) {
                if (!t || strcmp(t, v->valuestring))
                    fail_msg("%s: %s[%lld] = %s, expected %s", path, names[i], (long long)r, t ? t : "(null)",
                             v->valuestring);
            } else {
                assert_true(c.values[r] == v->valuedouble);
            }
        }
        bmfm_column_free(&c);
    }
}

static void check_names(const char *const *names, const cJSON *expect) {
    const cJSON *rows = cJSON_GetObjectItem(expect, "rows"), *vals = cJSON_GetObjectItem(expect, "names");
    for (int k = 0; k < cJSON_GetArraySize(rows); k++)
        assert_string_equal(names[cJSON_GetArrayItem(rows, k)->valueint], cJSON_GetArrayItem(vals, k)->valuestring);
}

/* Whole read vs python sums, then 7-row chunks must give identical bytes. */
static void check_matrix(bmfm_dataset *ds, const cJSON *j, const char *path) {
    int64_t n = bmfm_dataset_n_obs(ds);
    bmfm_csr whole = {0}, part = {0};
    if (bmfm_dataset_read_rows(ds, 0, n, &whole) != BMFM_OK) fail_msg("%s: %s", path, bmfm_error_message());
    assert_int_equal(whole.nrows, n);
    assert_int_equal(whole.indptr[n], cJSON_GetObjectItem(j, "nnz_total")->valueint);
    const cJSON *sums = cJSON_GetObjectItem(j, "row_sums"), *nnz = cJSON_GetObjectItem(j, "row_nnz");
    for (int64_t r = 0; r < n; r++) {
        double s = 0;
        for (int64_t k = whole.indptr[r]; k < whole.indptr[r + 1]; k++) {
            s += whole.data[k];
            if (k > whole.indptr[r]) assert_true(whole.indices[k] > whole.indices[k - 1]);
            assert_true(whole.data[k] != 0.0f);
        }
        assert_int_equal(whole.indptr[r + 1] - whole.indptr[r], cJSON_GetArrayItem(nnz, (int)r)->valueint);
        double want = cJSON_GetArrayItem(sums, (int)r)->valuedouble;
        if (fabs(s - want) > 1e-9 * fmax(1.0, fabs(want))) fail_msg("%s: row %lld sums to %.17g, python %.17g", path, (long long)r, s, want);
    }
    for (int64_t b = 0; b < n; b += 7) {
        int64_t e = b + 7 < n ? b + 7 : n;
        if (bmfm_dataset_read_rows(ds, b, e, &part) != BMFM_OK) fail_msg("%s: %s", path, bmfm_error_message());
        int64_t off = whole.indptr[b], cnt = part.indptr[e - b];
        assert_int_equal(cnt, whole.indptr[e] - off);
        for (int64_t r = 0; r <= e - b; r++) assert_int_equal(part.indptr[r], whole.indptr[b + r] - off);
        assert_memory_equal(part.indices, whole.indices + off, (size_t)cnt * sizeof(int32_t));
        assert_memory_equal(part.data, whole.data + off, (size_t)cnt * sizeof(float));
    }
    bmfm_csr_free(&whole);
    bmfm_csr_free(&part);
}

static void check_file(const char *path, const char *matrix) {
    cJSON *j = oracle(path, matrix);
    bmfm_dataset *ds = NULL;
    if (bmfm_dataset_open(path, matrix, &ds) != BMFM_OK) fail_msg("%s: %s", path, bmfm_error_message());
    const bmfm_matrix_info *info = bmfm_dataset_info(ds);
    assert_int_equal(info->n_obs, cJSON_GetObjectItem(j, "n_obs")->valueint);
    assert_int_equal(info->n_vars, cJSON_GetObjectItem(j, "n_vars")->valueint);
    const char *enc = cJSON_GetObjectItem(j, "encoding")->valuestring;
    bmfm_x_encoding want = !strcmp(enc, "csr") ? BMFM_X_CSR : !strcmp(enc, "csc") ? BMFM_X_CSC : BMFM_X_DENSE;
    assert_int_equal(info->encoding, want);
    assert_string_equal(info->dtype, cJSON_GetObjectItem(j, "dtype")->valuestring);

    const char *const *names;
    assert_int_equal(bmfm_dataset_obs_names(ds, &names), BMFM_OK);
    check_names(names, cJSON_GetObjectItem(j, "obs_names"));
    assert_int_equal(bmfm_dataset_var_names(ds, &names), BMFM_OK);
    check_names(names, cJSON_GetObjectItem(j, "var_names"));
    check_frame(ds, 0, cJSON_GetObjectItem(j, "obs_columns"), path);
    check_frame(ds, 1, cJSON_GetObjectItem(j, "var_columns"), path);

    int64_t n;
    const cJSON *layers = cJSON_GetObjectItem(j, "layers");
    assert_int_equal(bmfm_dataset_layers(ds, &names, &n), BMFM_OK);
    assert_int_equal(n, cJSON_GetArraySize(layers));
    for (int64_t i = 0; i < n; i++) assert_string_equal(names[i], cJSON_GetArrayItem(layers, (int)i)->valuestring);
    assert_int_equal(bmfm_dataset_has_raw(ds), cJSON_IsTrue(cJSON_GetObjectItem(j, "has_raw")));

    const cJSON *obsm = cJSON_GetObjectItem(j, "obsm"), *keys = cJSON_GetObjectItem(j, "obsm_keys"), *o;
    assert_int_equal(bmfm_dataset_obsm_keys(ds, &names, &n), BMFM_OK);
    assert_int_equal(n, cJSON_GetArraySize(keys));
    for (int64_t i = 0; i < n; i++) assert_string_equal(names[i], cJSON_GetArrayItem(keys, (int)i)->valuestring);
    cJSON_ArrayForEach(o, obsm) {
        float *data;
        int64_t rows, cols;
        if (bmfm_dataset_obsm_read(ds, o->string, &data, &rows, &cols) != BMFM_OK) fail_msg("%s", bmfm_error_message());
        assert_int_equal(rows, cJSON_GetArrayItem(o, 0)->valueint);
        assert_int_equal(cols, cJSON_GetArrayItem(o, 1)->valueint);
        double s = 0, want = cJSON_GetArrayItem(o, 2)->valuedouble;
        for (int64_t i = 0; i < rows * cols; i++) s += data[i];
        assert_true(fabs(s - want) <= 1e-5 * fmax(1.0, fabs(want)));
        free(data);
    }
    check_matrix(ds, j, path);
    bmfm_dataset_close(ds);
    cJSON_Delete(j);
}

static void test_every_shared_file(void **state) {
    (void)state;
    DIR *d = opendir(tu_data("h5ad"));
    assert_non_null(d);
    struct dirent *e;
    int count = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".h5ad")) continue;
        char rel[512];
        snprintf(rel, sizeof rel, "h5ad/%s", e->d_name);
        check_file(tu_data(rel), "X");
        count++;
    }
    closedir(d);
    assert_int_equal(count, 14);
}

static void test_raw_layer_and_fixtures(void **state) {
    (void)state;
    check_file(tu_data("h5ad/scanpy_pbmc68k_reduced_700.h5ad"), "raw");
    check_file(tu_data("h5ad/scvijl_pbmc8k_7480x200.h5ad"), "counts");
    check_file(fixture("csc.h5ad"), "X");
    check_file(fixture("wide.h5ad"), "X");
    check_file(fixture("h5sparse.h5ad"), "X");
    check_file(fixture("empty.h5ad"), "X");
}

/* Exact values of the hand-made fixture: sorting, duplicates, zeros, int64. */
static void test_wide_fixture_values(void **state) {
    (void)state;
    bmfm_dataset *ds;
    bmfm_csr m = {0};
    assert_int_equal(bmfm_dataset_open(fixture("wide.h5ad"), NULL, &ds), BMFM_OK);
    assert_string_equal(bmfm_dataset_info(ds)->index_dtype, "int64");
    assert_int_equal(bmfm_dataset_read_rows(ds, 0, 4, &m), BMFM_OK);
    int64_t indptr[] = {0, 3, 4, 4, 6};
    int32_t idx[] = {1, 3, 5, 0, 2, 5};
    float val[] = {1, 3, 5, 9, 7, 2};
    assert_memory_equal(m.indptr, indptr, sizeof indptr);
    assert_memory_equal(m.indices, idx, sizeof idx);
    assert_memory_equal(m.data, val, sizeof val);
    assert_int_equal(bmfm_dataset_read_rows(ds, 2, 2, &m), BMFM_OK);
    assert_int_equal(m.nrows, 0);
    assert_int_equal(bmfm_dataset_read_rows(ds, 3, 5, &m), BMFM_E_INPUT);
    bmfm_column c;
    assert_int_equal(bmfm_dataset_obs_column(ds, "nint", &c), BMFM_OK);
    assert_int_equal(c.kind, BMFM_COL_INT);
    assert_true(c.values[0] == 1 && isnan(c.values[1]) && c.values[3] == 4);
    bmfm_column_free(&c);
    assert_int_equal(bmfm_dataset_obs_column(ds, "nope", &c), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "no column /obs/nope"));
    float *x;
    int64_t r, k;
    assert_int_equal(bmfm_dataset_obsm_read(ds, "X_pca", &x, &r, &k), BMFM_E_INPUT);
    assert_int_equal(bmfm_dataset_obsm_read(ds, "df", &x, &r, &k), BMFM_E_UNSUPPORTED);
    assert_non_null(strstr(bmfm_error_message(), "/obsm/df is stored as 'dataframe', only dense arrays are read"));
    assert_int_equal(bmfm_dataset_obsm_read(ds, "emb", &x, &r, &k), BMFM_OK);
    assert_true(r == 4 && k == 2 && x[0] == 0.0f && x[7] == 7.0f);
    free(x);
    bmfm_csr_free(&m);
    bmfm_dataset_close(ds);
    /* a missing layer names the layers there are */
    assert_int_equal(bmfm_dataset_open(tu_data("h5ad/scvijl_pbmc8k_7480x200.h5ad"), "spliced", &ds), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "no layer spliced (layers: counts)"));
}

/* Open, list, read everything; returns the first failing status. */
static bmfm_status read_all(const char *path) {
    bmfm_dataset *ds;
    bmfm_csr m = {0};
    const char *const *names;
    bmfm_status st = bmfm_dataset_open(path, NULL, &ds);
    if (st != BMFM_OK) return st;
    if ((st = bmfm_dataset_read_rows(ds, 0, bmfm_dataset_n_obs(ds), &m)) == BMFM_OK &&
        (st = bmfm_dataset_obs_names(ds, &names)) == BMFM_OK)
        st = bmfm_dataset_var_names(ds, &names);
    bmfm_csr_free(&m);
    bmfm_dataset_close(ds);
    return st;
}

static void expect_error(const char *name, const char *needle) {
    const char *path = fixture(name);
    bmfm_status st = read_all(path);
    const char *msg = bmfm_error_message();
    if (st == BMFM_OK) fail_msg("%s: read without error", name);
    if (!strstr(msg, path) || !strstr(msg, needle)) fail_msg("%s: message '%s' lacks '%s'", name, msg, needle);
    assert_null(strchr(msg, '\n'));
}

static void test_bad_files(void **state) {
    (void)state;
    expect_error("bad_indptr_len.h5ad", "/X/indptr has 3 entries, expected 4");
    expect_error("bad_indptr_order.h5ad", "/X/indptr decreases at row 1");
    expect_error("bad_indptr_range.h5ad", "/X/indptr[1] = 9 is out of range [0, 4]");
    expect_error("bad_indptr_end.h5ad", "/X/indptr runs from 0 to 3, expected 0 to nnz = 4");
    expect_error("bad_indices.h5ad", "/X/indices has 7 at row 1, outside [0, 4)");
    expect_error("bad_negindex.h5ad", "/X/indices has -1 at row 0");
    expect_error("bad_nan.h5ad", "/X/data has a non-finite value at row 0, column 3");
    expect_error("bad_inf.h5ad", "/X/data has a non-finite value at row 1, column 1");
    expect_error("bad_dtype.h5ad", "/X/data has dtype string, expected numbers");
    expect_error("bad_shape.h5ad", "shape mismatch: obs has 5 rows but /X has 3");
    expect_error("bad_encoding.h5ad", "/X has encoding 'awkward-array'");
    expect_error("bad_missing_x.h5ad", "/X is missing");
    expect_error("bad_no_indptr.h5ad", "/X/indptr is missing");
    expect_error("not_hdf5.h5ad", "not an HDF5 file");
    expect_error("truncated.h5ad", "truncated file: eof = ");
    expect_error("no_such_file.h5ad", "no such file");
    /* empty matrix: opens, shape 0, reading returns nothing */
    bmfm_dataset *ds;
    bmfm_csr m = {0};
    assert_int_equal(bmfm_dataset_open(fixture("empty.h5ad"), NULL, &ds), BMFM_OK);
    assert_int_equal(bmfm_dataset_n_obs(ds), 0);
    assert_int_equal(bmfm_dataset_n_vars(ds), 5);
    assert_int_equal(bmfm_dataset_read_rows(ds, 0, 0, &m), BMFM_OK);
    assert_int_equal(m.nrows, 0);
    assert_int_equal(m.indptr[0], 0);
    bmfm_csr_free(&m);
    bmfm_dataset_close(ds);
}

static void write_bin(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Write obsm + categorical + numeric obs + uns into out (a copy of src, or
 * src itself when out == NULL), record the expectations in expdir. */
static void edit_and_record(const char *src, const char *out, const char *expdir, uint64_t seed,
                            const char *const *cats, int64_t ncat) {
    bmfm_dataset *ds;
    bmfm_h5ad_edit *e;
    bmfm_rng rng;
    bmfm_rng_seed(&rng, seed, 1);
    if (bmfm_dataset_open(src, NULL, &ds) != BMFM_OK) fail_msg("%s", bmfm_error_message());
    int64_t n = bmfm_dataset_n_obs(ds), cols = 8;
    float *emb = malloc(sizeof *emb * (size_t)(n * cols));
    int32_t *codes = malloc(sizeof *codes * (size_t)n);
    double *num = malloc(sizeof *num * (size_t)n);
    for (int64_t i = 0; i < n * cols; i++) emb[i] = (float)bmfm_rng_normal(&rng);
    for (int64_t i = 0; i < n; i++) {
        codes[i] = (int32_t)bmfm_rng_below(&rng, (uint64_t)ncat + 1) - 1;
        num[i] = i == 1 ? NAN : bmfm_rng_uniform(&rng) * 1e6;
    }
    const char *uns = "bmfm test run: model=none, seed=42, \xce\xbc";
    if (bmfm_h5ad_edit_begin(ds, out, &e) != BMFM_OK) fail_msg("%s", bmfm_error_message());
    assert_int_equal(bmfm_h5ad_edit_put_obsm(e, "X_bmfm", emb, n, cols), BMFM_OK);
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "bmfm_pred", codes, cats, ncat), BMFM_OK);
    assert_int_equal(bmfm_h5ad_edit_put_obs_numeric(e, "bmfm_score", num), BMFM_OK);
    assert_int_equal(bmfm_h5ad_edit_put_uns_string(e, "bmfm_provenance", uns), BMFM_OK);
    if (bmfm_h5ad_edit_commit(e) != BMFM_OK) fail_msg("%s", bmfm_error_message());
    bmfm_dataset_close(ds);

    char meta[256];
    int l = snprintf(meta, sizeof meta, "X_bmfm %lld %lld bmfm_pred bmfm_score bmfm_provenance\n", (long long)n,
                     (long long)cols);
    write_bin(expdir, "meta.txt", meta, (size_t)l);
    write_bin(expdir, "obsm.f32", emb, sizeof *emb * (size_t)(n * cols));
    write_bin(expdir, "codes.i32", codes, sizeof *codes * (size_t)n);
    write_bin(expdir, "num.f64", num, sizeof *num * (size_t)n);
    write_bin(expdir, "uns.txt", uns, strlen(uns));
    char cat_text[4096] = "";
    for (int64_t i = 0; i < ncat; i++) strcat(strcat(cat_text, cats[i]), "\n");
    write_bin(expdir, "cats.txt", cat_text, strlen(cat_text));

    /* our own reader sees the same */
    const char *check = out ? out : src;
    assert_int_equal(bmfm_dataset_open(check, NULL, &ds), BMFM_OK);
    float *back;
    int64_t rows, c2;
    assert_int_equal(bmfm_dataset_obsm_read(ds, "X_bmfm", &back, &rows, &c2), BMFM_OK);
    assert_int_equal(rows, n);
    assert_memory_equal(back, emb, sizeof *emb * (size_t)(n * cols));
    bmfm_column col;
    assert_int_equal(bmfm_dataset_obs_column(ds, "bmfm_pred", &col), BMFM_OK);
    assert_int_equal(col.kind, BMFM_COL_CATEGORICAL);
    assert_memory_equal(col.codes, codes, sizeof *codes * (size_t)n);
    bmfm_column_free(&col);
    free(back);
    bmfm_dataset_close(ds);
    free(emb);
    free(codes);
    free(num);
}

static void test_writer_roundtrip_with_anndata(void **state) {
    (void)state;
    static const char *const files[] = {"bmfm_cellxgene_placenta_220", "scvi_pbmc_5k_protein_v3_200",
                                        "scvijl_pbmc8k_7480x200", "scanpy_pbmc68k_reduced_700"};
    static const char *const cats[] = {"T cell", "B cell", "na\xc3\xafve CD4+ \xce\xb1\xce\xb2 T cell"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char rel[256], out[4096], expdir[4096];
        snprintf(rel, sizeof rel, "h5ad/%s.h5ad", files[i]);
        snprintf(out, sizeof out, "%s", tu_scratch(files[i]));
        strcat(out, ".out.h5ad");
        snprintf(expdir, sizeof expdir, "%s", tu_scratch("exp"));
        tu_system("mkdir -p '%s'", expdir);
        unlink(out);
        edit_and_record(tu_data(rel), out, expdir, 42 + i, cats, 3);
        assert_int_equal(tu_python("h5ad_check_write.py '%s' '%s' '%s'", tu_data(rel), out, expdir), 0);
    }
    /* in place, replacing the columns with 300 categories (int16 codes) */
    char out[4096], expdir[4096];
    snprintf(out, sizeof out, "%s", tu_scratch("bmfm_cellxgene_placenta_220.out.h5ad"));
    snprintf(expdir, sizeof expdir, "%s", tu_scratch("exp"));
    char *many[300], storage[300][16];
    for (int i = 0; i < 300; i++) {
        snprintf(storage[i], sizeof storage[i], "type %03d", i);
        many[i] = storage[i];
    }
    edit_and_record(out, NULL, expdir, 7, (const char *const *)many, 300);
    assert_int_equal(tu_python("h5ad_check_write.py '%s' '%s' '%s'", tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad"),
                               out, expdir), 0);
}

static int has_tmp_file(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && (e = readdir(d))) found |= strstr(e->d_name, ".tmp-") != NULL;
    if (d) closedir(d);
    return found;
}

static void test_writer_failures_leave_nothing(void **state) {
    (void)state;
    bmfm_dataset *ds;
    bmfm_h5ad_edit *e;
    char dir[4096], out[4200];
    snprintf(dir, sizeof dir, "%s", tu_scratch("fail"));
    tu_system("rm -rf '%s' && mkdir -p '%s'", dir, dir);
    snprintf(out, sizeof out, "%s/out.h5ad", dir);
    assert_int_equal(bmfm_dataset_open(tu_data("h5ad/bmfm_zheng68k_165.h5ad"), NULL, &ds), BMFM_OK);
    assert_int_equal(bmfm_h5ad_edit_begin(ds, "/nonexistent-dir/out.h5ad", &e), BMFM_E_IO);
    assert_int_equal(bmfm_h5ad_edit_begin(ds, out, &e), BMFM_OK);
    float emb[10] = {0};
    assert_int_equal(bmfm_h5ad_edit_put_obsm(e, "X_bmfm", emb, 5, 2), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "expected 165 rows"));
    int32_t codes[165] = {0};
    codes[3] = 5;
    static const char *const cats[] = {"a", "b"};
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "lab", codes, cats, 2), BMFM_E_INPUT);
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "_index", codes, cats, 2), BMFM_E_INPUT);
    codes[3] = 1;
    static const char *const twice[] = {"a", "a"};
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "lab", codes, twice, 2), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "category 'a' appears twice"));
    assert_int_equal(bmfm_h5ad_edit_put_uns_string(e, "a/b", "x"), BMFM_E_INPUT);
    bmfm_h5ad_edit_abort(e);
    assert_false(bmfm_file_exists(out));
    assert_false(has_tmp_file(dir));
    bmfm_dataset_close(ds);
}

static void test_export_matches_source(void **state) {
    (void)state;
    const char *srcs[] = {fixture("csc.h5ad"), tu_data("h5ad/scvi_pbmc_5k_protein_v3_200.h5ad")};
    for (int i = 0; i < 2; i++) {
        bmfm_dataset *a, *b;
        bmfm_csr ma = {0}, mb = {0};
        const char *out = tu_scratch(i ? "export_dense.h5ad" : "export_csc.h5ad");
        assert_int_equal(bmfm_dataset_open(srcs[i], NULL, &a), BMFM_OK);
        if (bmfm_h5ad_export(a, out) != BMFM_OK) fail_msg("%s", bmfm_error_message());
        check_file(out, "X"); /* python anndata reads it and agrees with our reader */
        assert_int_equal(bmfm_dataset_open(out, NULL, &b), BMFM_OK);
        assert_int_equal(bmfm_dataset_info(b)->encoding, BMFM_X_CSR);
        int64_t n = bmfm_dataset_n_obs(a);
        assert_int_equal(bmfm_dataset_read_rows(a, 0, n, &ma), BMFM_OK);
        assert_int_equal(bmfm_dataset_read_rows(b, 0, n, &mb), BMFM_OK);
        assert_memory_equal(ma.indptr, mb.indptr, sizeof(int64_t) * (size_t)(n + 1));
        assert_memory_equal(ma.data, mb.data, sizeof(float) * (size_t)ma.indptr[n]);
        const char *const *na, *const *nb;
        int64_t ca, cb;
        assert_int_equal(bmfm_dataset_var_columns(a, &na, &ca), BMFM_OK);
        assert_int_equal(bmfm_dataset_var_columns(b, &nb, &cb), BMFM_OK);
        assert_int_equal(ca, cb);
        bmfm_csr_free(&ma);
        bmfm_csr_free(&mb);
        bmfm_dataset_close(a);
        bmfm_dataset_close(b);
    }
}

/* A 10x directory has no .h5ad to copy: the editor creates one (X CSR,
 * obs/var) that python anndata reads, holding the same rows. */
static void test_edit_10x_creates_h5ad(void **state) {
    (void)state;
    const char *h5 = tu_data("h5ad/bmfm_zheng68k_165.h5ad");
    char dir[4096], out[4096];
    snprintf(dir, sizeof dir, "%s", tu_scratch("zheng_10x"));
    snprintf(out, sizeof out, "%s", tu_scratch("zheng_10x.out.h5ad"));
    assert_int_equal(tu_python("make_10x.py %s %s", h5, dir), 0);
    bmfm_dataset *tenx, *orig, *made;
    bmfm_h5ad_edit *e;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &tenx), BMFM_OK);
    int64_t n = bmfm_dataset_n_obs(tenx);
    float *emb = calloc((size_t)n * 3, sizeof *emb);
    for (int64_t i = 0; i < n * 3; i++) emb[i] = (float)i * 0.5f;
    if (bmfm_h5ad_edit_begin(tenx, out, &e) != BMFM_OK) fail_msg("%s", bmfm_error_message());
    assert_int_equal(bmfm_h5ad_edit_put_obsm(e, "X_bmfm", emb, n, 3), BMFM_OK);
    assert_int_equal(bmfm_h5ad_edit_commit(e), BMFM_OK);
    check_file(out, "X");
    assert_int_equal(bmfm_dataset_open(h5, NULL, &orig), BMFM_OK);
    assert_int_equal(bmfm_dataset_open(out, NULL, &made), BMFM_OK);
    bmfm_csr a = {0}, b = {0};
    assert_int_equal(bmfm_dataset_read_rows(orig, 0, n, &a), BMFM_OK);
    assert_int_equal(bmfm_dataset_read_rows(made, 0, n, &b), BMFM_OK);
    assert_memory_equal(a.indptr, b.indptr, sizeof(int64_t) * (size_t)(n + 1));
    assert_memory_equal(a.indices, b.indices, sizeof(int32_t) * (size_t)a.indptr[n]);
    assert_memory_equal(a.data, b.data, sizeof(float) * (size_t)a.indptr[n]);
    const char *const *na, *const *nb;
    assert_int_equal(bmfm_dataset_obs_names(orig, &na), BMFM_OK);
    assert_int_equal(bmfm_dataset_obs_names(made, &nb), BMFM_OK);
    for (int64_t i = 0; i < n; i++) assert_string_equal(na[i], nb[i]);
    float *back;
    int64_t r, c;
    assert_int_equal(bmfm_dataset_obsm_read(made, "X_bmfm", &back, &r, &c), BMFM_OK);
    assert_memory_equal(back, emb, sizeof *emb * (size_t)(n * 3));
    free(back);
    free(emb);
    bmfm_csr_free(&a);
    bmfm_csr_free(&b);
    bmfm_dataset_close(made);
    bmfm_dataset_close(orig);
    bmfm_dataset_close(tenx);
}

/* CSC column blocks and dense row blocks smaller than a column / a chunk,
 * and CSC read-ahead caches smaller than a request, read in order and in
 * reverse, must give the same rows as the defaults. */
static void test_small_blocks(void **state) {
    (void)state;
    const char *files[] = {fixture("csc.h5ad"), tu_data("h5ad/scvijl_pbmc8k_7480x200.h5ad")};
    const int64_t blocks[] = {50, 1000, 1}, budgets[] = {300, 5000, 1};
    for (int f = 0; f < 2; f++) {
        bmfm_dataset *ds;
        assert_int_equal(bmfm_dataset_open(files[f], NULL, &ds), BMFM_OK);
        hid_t h = H5Fopen(files[f], H5F_ACC_RDONLY, H5P_DEFAULT);
        assert_true(h >= 0);
        for (int bi = 0; bi < 3; bi++) {
            bmfm_h5_matrix m;
            bmfm_csr a = {0}, b = {0};
            assert_int_equal(bmfm_h5_matrix_open(h, files[f], "/X", &m), BMFM_OK);
            m.block = blocks[bi];
            m.cache_budget = budgets[bi];
            for (int64_t i = 0; i < m.n_obs; i += 61) {
                int64_t r = bi == 2 ? (m.n_obs - 1) / 61 * 61 - i : i; /* reverse order on the last pass */
                int64_t e = r + 61 < m.n_obs ? r + 61 : m.n_obs;
                assert_int_equal(bmfm_h5_matrix_read_rows(&m, r, e, &a), BMFM_OK);
                assert_int_equal(bmfm_dataset_read_rows(ds, r, e, &b), BMFM_OK);
                assert_memory_equal(a.indptr, b.indptr, sizeof(int64_t) * (size_t)(e - r + 1));
                assert_memory_equal(a.indices, b.indices, sizeof(int32_t) * (size_t)b.indptr[e - r]);
                assert_memory_equal(a.data, b.data, sizeof(float) * (size_t)b.indptr[e - r]);
            }
            bmfm_csr_free(&a);
            bmfm_csr_free(&b);
            bmfm_h5_matrix_close(&m);
        }
        H5Fclose(h);
        bmfm_dataset_close(ds);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shared_file),
        cmocka_unit_test(test_raw_layer_and_fixtures),
        cmocka_unit_test(test_wide_fixture_values),
        cmocka_unit_test(test_small_blocks),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_writer_roundtrip_with_anndata),
        cmocka_unit_test(test_writer_failures_leave_nothing),
        cmocka_unit_test(test_export_matches_source),
        cmocka_unit_test(test_edit_10x_creates_h5ad),
    };
    return cmocka_run_group_tests(tests, setup_fixtures, NULL);
}
