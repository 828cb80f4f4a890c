/* test_eval_cli.c - `bmfm eval` end to end on a real shared file (symphony
 * PBMCs, PCA from `bmfm baseline pca`): sensible values and valid JSON; bad
 * inputs (missing key/column, one label, one batch, singleton labels, NaN
 * rows, unknown held-out batch) behave as issue 6 says. */
#include "test_util.h"

#include "io/dataset.h"
#include "io/h5ad_write.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SYMPHONY = "h5ad/symphony_pbmcs_3tech_1200.h5ad";

/* The whole of a small text file (bmfm eval's JSON) in a malloc'd string. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static cJSON *load_json(const char *path) {
    char *text = read_text(path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

/* `bmfm baseline pca` of a shared file into scratch file `base_name`, opened. */
static bmfm_dataset *open_baseline(const char *data_rel, const char *base_name) {
    char base[512], *log = NULL;
    snprintf(base, sizeof base, "%s", tu_scratch(base_name));
    assert_int_equal(tu_capture(&log, "%s baseline pca %s -o %s -q", tu_bmfm_bin(), tu_data(data_rel), base), 0);
    free(log);
    bmfm_dataset *ds;
    assert_int_equal(bmfm_dataset_open(base, NULL, &ds), 0);
    return ds;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    assert_non_null(v);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* A copy of the symphony baseline with extra columns and a NaN embedding. */
static const char *make_edge_file(void) {
    static char path[512];
    if (path[0]) return path; /* made once per run */
    snprintf(path, sizeof path, "%s", tu_scratch("edge.h5ad"));
    bmfm_dataset *ds = open_baseline(SYMPHONY, "edge_base.h5ad");
    int64_t n = bmfm_dataset_n_obs(ds), rows, cols;
    float *pca;
    assert_int_equal(bmfm_dataset_obsm_read(ds, "X_pca", &pca, &rows, &cols), 0);
    for (int64_t i = 0; i < 25; i++) pca[(i * 7) * cols + 3] = NAN;
    int32_t *one = calloc(n, sizeof *one), *single = malloc(n * sizeof *single);
    for (int64_t i = 0; i < n; i++) single[i] = (int32_t)(i % 3);
    single[5] = 3; /* a label with one cell */
    const char *one_cat[] = {"all"}, *single_cat[] = {"a", "b", "c", "lonely"};
    bmfm_h5ad_edit *e;
    assert_int_equal(bmfm_h5ad_edit_begin(ds, path, &e), 0);
    assert_int_equal(bmfm_h5ad_edit_put_obsm(e, "X_nan", pca, rows, cols), 0);
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "one", one, one_cat, 1), 0);
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "single", single, single_cat, 4), 0);
    assert_int_equal(bmfm_h5ad_edit_commit(e), 0);
    bmfm_dataset_close(ds);
    free(pca);
    free(one);
    free(single);
    return path;
}

static void test_eval_sensible_values_and_json(void **state) {
    (void)state;
    const char *in = make_edge_file();
    char json[512], *log = NULL;
    snprintf(json, sizeof json, "%s", tu_scratch("eval.json"));
    int rc = tu_capture(&log, "%s eval %s --embedding X_pca,X_nan --label cell_type --batch donor --probe --json %s",
                        tu_bmfm_bin(), in, json);
    print_message("%s", log);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "NMI"));
    assert_non_null(strstr(log, "25 cells with NaN embedding rows dropped"));
    free(log);
    cJSON *j = load_json(json);
    const cJSON *embs = cJSON_GetObjectItemCaseSensitive(j, "embeddings");
    assert_int_equal(cJSON_GetArraySize(embs), 2);
    const cJSON *e = cJSON_GetArrayItem(embs, 0);
    /* PCA of PBMCs: cell types well separated, technologies not integrated */
    assert_true(jnum(e, "nmi") > 0.5 && jnum(e, "nmi") <= 1);
    assert_true(jnum(e, "ari") > 0.2 && jnum(e, "ari") <= 1);
    assert_true(jnum(e, "asw_label") > 0.5 && jnum(e, "asw_label") < 0.8);
    assert_true(jnum(e, "graph_conn") > 0.7 && jnum(e, "graph_conn") <= 1);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "probe");
    assert_true(jnum(p, "lr_f1_macro") > 0.8);
    assert_true(jnum(p, "lr_accuracy") > 0.9);
    assert_int_equal((int)jnum(p, "n_classes_dropped"), 2); /* HSC 3, MK 7 cells */
    const cJSON *e2 = cJSON_GetArrayItem(embs, 1);
    assert_int_equal((int)jnum(e2, "n_dropped_nan"), 25);
    assert_int_equal((int)jnum(e2, "n_cells_used"), 1175);
    cJSON_Delete(j);
}

/* The largest shared file (7,480 cells, so that OpenBLAS splits its work by
 * thread count) with its baseline PCA and a pseudo batch (cell parity). */
static const char *make_pbmc8k_file(void) {
    static char path[512];
    if (path[0]) return path;
    snprintf(path, sizeof path, "%s", tu_scratch("pbmc8k_batch.h5ad"));
    bmfm_dataset *ds = open_baseline("h5ad/scvijl_pbmc8k_7480x200.h5ad", "pbmc8k_base.h5ad");
    int64_t n = bmfm_dataset_n_obs(ds);
    int32_t *parity = malloc(n * sizeof *parity);
    for (int64_t i = 0; i < n; i++) parity[i] = (int32_t)(i % 2);
    const char *cats[] = {"even", "odd"};
    bmfm_h5ad_edit *e;
    assert_int_equal(bmfm_h5ad_edit_begin(ds, path, &e), 0);
    assert_int_equal(bmfm_h5ad_edit_put_obs_categorical(e, "pseudo_batch", parity, cats, 2), 0);
    assert_int_equal(bmfm_h5ad_edit_commit(e), 0);
    bmfm_dataset_close(ds);
    free(parity);
    return path;
}

/* Every number must be the same whatever the thread count (OpenMP and
 * OpenBLAS both follow --threads): the JSON files are compared byte for byte.
 * Caught PCR's dsyrk, which OpenBLAS blocked by its thread count (PCR moved in
 * the last bit between --threads 1 and 2). */
static void test_eval_json_thread_count_invariant(void **state) {
    (void)state;
    const char *in = make_pbmc8k_file();
    char *j[2] = {NULL, NULL};
    const int threads[2] = {1, 2};
    for (int t = 0; t < 2; t++) {
        char path[512], *log = NULL;
        snprintf(path, sizeof path, "%s", tu_scratch(t ? "eval_t2.json" : "eval_t1.json"));
        int rc = tu_capture(&log, "%s eval %s --embedding X_pca --label cell_type --batch pseudo_batch --probe -q --threads %d --json %s",
                            tu_bmfm_bin(), in, threads[t], path);
        free(log);
        assert_int_equal(rc, 0);
        j[t] = read_text(path);
        assert_true(strlen(j[t]) > 100);
    }
    /* the input path is the same, so the whole document must match */
    assert_string_equal(j[0], j[1]);
    free(j[0]);
    free(j[1]);
}

static void test_eval_one_label_one_batch_singletons(void **state) {
    (void)state;
    const char *in = make_edge_file();
    char json[512], *log = NULL;
    snprintf(json, sizeof json, "%s", tu_scratch("edge.json"));
    /* one label: bio metrics undefined, shown as n/a with the reason, JSON null */
    int rc = tu_capture(&log, "%s eval %s --embedding X_pca --label one --batch donor --probe --json %s -q",
                        tu_bmfm_bin(), in, json);
    print_message("%s", log);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "n/a"));
    free(log);
    cJSON *j = load_json(json);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "embeddings"), 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "nmi")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "asw_label")));
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "probe");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(p, "lr_f1_macro")));
    cJSON_Delete(j);
    /* one batch: batch metrics undefined */
    rc = tu_capture(&log, "%s eval %s --embedding X_pca --label cell_type --batch one --json %s -q", tu_bmfm_bin(),
                    in, json);
    print_message("%s", log);
    assert_int_equal(rc, 0);
    free(log);
    j = load_json(json);
    e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "embeddings"), 0);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "asw_batch")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "graph_conn")) ||
                cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "graph_conn")));
    assert_true(jnum(e, "nmi") > 0.5);
    cJSON_Delete(j);
    /* train on two technologies, test on the third */
    rc = tu_capture(&log, "%s eval %s --embedding X_pca --label cell_type --batch donor --probe --heldout 5p --json %s -q",
                    tu_bmfm_bin(), in, json);
    assert_int_equal(rc, 0);
    free(log);
    j = load_json(json);
    e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "embeddings"), 0);
    p = cJSON_GetObjectItemCaseSensitive(e, "probe_heldout_batch");
    assert_int_equal((int)jnum(p, "n_folds"), 1);
    assert_true(jnum(p, "lr_f1_macro") > 0.5 && jnum(p, "lr_f1_macro") <= 1);
    cJSON_Delete(j);
    /* a label with a single cell: runs, numbers are finite */
    rc = tu_capture(&log, "%s eval %s --embedding X_pca --label single --batch donor --probe --json %s -q",
                    tu_bmfm_bin(), in, json);
    print_message("%s", log);
    assert_int_equal(rc, 0);
    free(log);
    j = load_json(json);
    e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "embeddings"), 0);
    assert_true(isfinite(jnum(e, "nmi")) && isfinite(jnum(e, "asw_label")));
    p = cJSON_GetObjectItemCaseSensitive(e, "probe");
    assert_int_equal((int)jnum(p, "n_classes_dropped"), 1);
    cJSON_Delete(j);
}

static void test_eval_missing_key_and_column_exit_2(void **state) {
    (void)state;
    const char *in = make_edge_file();
    char *log = NULL;
    const char *json = tu_scratch("never.json");
    assert_int_equal(tu_capture(&log, "%s eval %s --embedding X_nope --label cell_type --json %s", tu_bmfm_bin(), in, json), 2);
    print_message("%s", log);
    assert_non_null(strstr(log, "X_nope"));
    assert_non_null(strstr(log, "X_pca")); /* lists what exists */
    free(log);
    assert_int_equal(tu_capture(&log, "%s eval %s --embedding X_pca --label no_such_col", tu_bmfm_bin(), in), 2);
    assert_non_null(strstr(log, "no_such_col"));
    free(log);
    assert_int_equal(tu_capture(&log, "%s eval %s --embedding X_pca --label cell_type --batch nope", tu_bmfm_bin(), in), 2);
    free(log);
    assert_int_equal(tu_capture(&log, "%s eval %s --label cell_type", tu_bmfm_bin(), in), 2);
    free(log);
    assert_int_equal(tu_capture(&log, "%s eval %s --embedding X_pca --label cell_type --batch donor --probe --heldout 9x",
                                tu_bmfm_bin(), in), 2);
    assert_non_null(strstr(log, "3pv1")); /* lists the batches */
    free(log);
    assert_null(fopen(json, "r"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_sensible_values_and_json),
        cmocka_unit_test(test_eval_json_thread_count_invariant),
        cmocka_unit_test(test_eval_one_label_one_batch_singletons),
        cmocka_unit_test(test_eval_missing_key_and_column_exit_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
