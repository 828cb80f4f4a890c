/* test_inspect.c - `bmfm inspect` on every shared .h5ad against anndata's view
 * (tests/ref/inspect_oracle.py): shape, obs columns with kinds, category and
 * distinct counts and the most frequent counts, var columns, layers, obsm,
 * raw; the raw-count guess per file; coverage through the CLI; bad input. */
#include "test_util.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *parse_or_fail(const char *text, const char *what) {
    cJSON *j = cJSON_Parse(text);
    if (!j) fail_msg("%s: not JSON: %.300s", what, text);
    return j;
}

static cJSON *inspect_json(const char *args) {
    char *out = NULL;
    int rc = tu_capture(&out, "%s inspect --json %s 2>/dev/null", tu_bmfm_bin(), args);
    if (rc != 0) {
        free(out);
        tu_capture(&out, "%s inspect --json %s 2>&1 >/dev/null", tu_bmfm_bin(), args);
        fail_msg("bmfm inspect %s: exit %d: %.300s", args, rc, out);
    }
    cJSON *j = parse_or_fail(out, args);
    free(out);
    return j;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    cJSON *j = parse_or_fail(buf, path);
    free(buf);
    return j;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) fail_msg("missing number '%s'", k);
    return x->valuedouble;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(x)) fail_msg("missing string '%s'", k);
    return x->valuestring;
}

/* both arrays of strings hold the same set */
static void same_string_set(const cJSON *a, const cJSON *b, const char *what, const char *file) {
    if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
        fail_msg("%s: %s: %d vs %d entries", file, what, cJSON_GetArraySize(a), cJSON_GetArraySize(b));
    const cJSON *x, *y;
    cJSON_ArrayForEach(x, a) {
        int found = 0;
        cJSON_ArrayForEach(y, b) found |= !strcmp(x->valuestring, y->valuestring);
        if (!found) fail_msg("%s: %s: '%s' not in the oracle", file, what, x->valuestring);
    }
}

/* shared files and the expected raw-count guess (README of shared/data) */
static const struct {
    const char *file, *guess;
} expected[] = {
    {"bmfm_cellxgene_placenta_220.h5ad", "raw"},
    {"bmfm_sciplex3_2247.h5ad", "log-normalized"},
    {"bmfm_zheng68k_165.h5ad", "raw"},
    {"chetah_headneck_ref_180.h5ad", "log-normalized"},
    {"harmony_kang_pbmc_ctrl_stim_2000.h5ad", "raw"},
    {"scanpy_pbmc68k_reduced_700.h5ad", "scaled"},
    {"scclassify_pancreas_wang.h5ad", "log-normalized"},
    {"scclassify_pancreas_xin.h5ad", "log-normalized"},
    {"scgen_kang_pbmc_ifnb_valid_1975.h5ad", "log-normalized"},
    {"scvi_pbmc_10k_protein_v3_200.h5ad", "raw"},
    {"scvi_pbmc_5k_protein_v3_200.h5ad", "raw"},
    {"scvijl_pbmc8k_7480x200.h5ad", "raw"},
    {"symphony_pbmcs_3tech_1200.h5ad", "log-normalized"},
    {"transcriptformer_mouse_brain_merfish_1000.h5ad", "raw"},
};
#define N_EXPECTED (sizeof expected / sizeof expected[0])

static void check_file(const char *file, const char *oracle_dir, const char *guess) {
    char path[4096], opath[4200];
    snprintf(path, sizeof path, "%s", tu_data("h5ad"));
    strncat(path, "/", sizeof path - strlen(path) - 1);
    strncat(path, file, sizeof path - strlen(path) - 1);
    snprintf(opath, sizeof opath, "%s/%s.json", oracle_dir, file);
    cJSON *o = read_json(opath);
    cJSON *r = inspect_json(path);
    assert_int_equal((int64_t)jnum(r, "n_obs"), (int64_t)jnum(o, "n_obs"));
    assert_int_equal((int64_t)jnum(r, "n_vars"), (int64_t)jnum(o, "n_vars"));
    assert_string_equal(jstr(r, "source"), "h5ad");
    same_string_set(cJSON_GetObjectItemCaseSensitive(r, "layers"), cJSON_GetObjectItemCaseSensitive(o, "layers"),
                    "layers", file);
    same_string_set(cJSON_GetObjectItemCaseSensitive(r, "obsm"), cJSON_GetObjectItemCaseSensitive(o, "obsm"), "obsm",
                    file);
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "has_raw")),
                     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "has_raw")));
    /* var columns by name */
    cJSON *vnames = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "var_columns"))
        cJSON_AddItemToArray(vnames, cJSON_CreateString(jstr(c, "name")));
    same_string_set(vnames, cJSON_GetObjectItemCaseSensitive(o, "var_columns"), "var columns", file);
    cJSON_Delete(vnames);
    /* obs columns: names, kinds, categories, most frequent counts */
    const cJSON *ocols = cJSON_GetObjectItemCaseSensitive(o, "obs_columns");
    const cJSON *rcols = cJSON_GetObjectItemCaseSensitive(r, "obs_columns");
    assert_int_equal(cJSON_GetArraySize(rcols), cJSON_GetArraySize(ocols));
    cJSON_ArrayForEach(c, rcols) {
        const char *name = jstr(c, "name"), *kind = jstr(c, "kind");
        const cJSON *oc = cJSON_GetObjectItemCaseSensitive(ocols, name);
        if (!oc) fail_msg("%s: obs column '%s' not in anndata", file, name);
        const char *okind = jstr(oc, "kind");
        int kind_ok = !strcmp(kind, okind) ||
                      (!strcmp(okind, "numeric") && (!strcmp(kind, "float") || !strcmp(kind, "int")));
        if (!kind_ok) fail_msg("%s: obs '%s' is %s, anndata says %s", file, name, kind, okind);
        if (!strcmp(okind, "categorical"))
            assert_int_equal((int64_t)jnum(c, "n_categories"), (int64_t)jnum(oc, "n_categories"));
        if (!strcmp(okind, "string"))
            assert_int_equal((int64_t)jnum(c, "n_distinct"), (int64_t)jnum(oc, "n_distinct"));
        if (!strcmp(okind, "categorical") || !strcmp(okind, "string")) {
            const cJSON *rt = cJSON_GetObjectItemCaseSensitive(c, "top");
            const cJSON *ot = cJSON_GetObjectItemCaseSensitive(oc, "top_counts");
            assert_int_equal(cJSON_GetArraySize(rt), cJSON_GetArraySize(ot));
            for (int i = 0; i < cJSON_GetArraySize(rt); i++)
                if (jnum(cJSON_GetArrayItem(rt, i), "count") != cJSON_GetArrayItem(ot, i)->valuedouble)
                    fail_msg("%s: obs '%s': count %d differs", file, name, i);
            assert_int_equal((int64_t)jnum(c, "n_missing"), (int64_t)jnum(oc, "n_missing"));
            /* the most frequent value itself, when it is not tied */
            if (cJSON_GetArraySize(ot) > 1 &&
                cJSON_GetArrayItem(ot, 0)->valuedouble > cJSON_GetArrayItem(ot, 1)->valuedouble)
                assert_string_equal(jstr(cJSON_GetArrayItem(rt, 0), "value"), jstr(oc, "top_value"));
        }
    }
    /* var index head */
    const cJSON *vh = cJSON_GetObjectItemCaseSensitive(r, "var_index_examples");
    const cJSON *ovh = cJSON_GetObjectItemCaseSensitive(o, "var_names_head");
    for (int i = 0; i < cJSON_GetArraySize(ovh); i++)
        assert_string_equal(cJSON_GetArrayItem(vh, i)->valuestring, cJSON_GetArrayItem(ovh, i)->valuestring);
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(r, "values");
    if (strcmp(jstr(vals, "guess"), guess)) fail_msg("%s: guess %s (%s), expected %s", file, jstr(vals, "guess"), jstr(vals, "reason"), guess);
    cJSON_Delete(o);
    cJSON_Delete(r);
}

static void test_every_shared_file_vs_anndata(void **state) {
    (void)state;
    /* every .h5ad in the shared directory must be in the table */
    DIR *d = opendir(tu_data("h5ad"));
    assert_non_null(d);
    struct dirent *e;
    char files[8192] = "";
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".h5ad")) continue;
        int known = 0;
        for (size_t i = 0; i < N_EXPECTED; i++) known |= !strcmp(expected[i].file, e->d_name);
        if (!known) fail_msg("shared file %s has no expected guess in this test", e->d_name);
        n++;
    }
    closedir(d);
    assert_int_equal(n, (int)N_EXPECTED);
    char odir[4096];
    snprintf(odir, sizeof odir, "%s", tu_scratch("oracle"));
    assert_int_equal(tu_system("mkdir -p %s", odir), 0);
    for (size_t i = 0; i < N_EXPECTED; i++) {
        strncat(files, " ", sizeof files - strlen(files) - 1);
        strncat(files, tu_data("h5ad"), sizeof files - strlen(files) - 1);
        strncat(files, "/", sizeof files - strlen(files) - 1);
        strncat(files, expected[i].file, sizeof files - strlen(files) - 1);
    }
    assert_int_equal(tu_python("inspect_oracle.py %s %s", odir, files), 0);
    for (size_t i = 0; i < N_EXPECTED; i++) check_file(expected[i].file, odir, expected[i].guess);
}

static void test_human_table_and_matrix_choice(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(tu_capture(&out, "%s inspect %s", tu_bmfm_bin(), tu_data("h5ad/bmfm_zheng68k_165.h5ad")), 0);
    assert_non_null(strstr(out, "165 cells x 9621 genes"));
    assert_non_null(strstr(out, "csr float32"));
    assert_non_null(strstr(out, "celltype"));
    assert_non_null(strstr(out, "11 categories"));
    assert_non_null(strstr(out, "raw: all"));
    free(out);
    char args[4200];
    snprintf(args, sizeof args, "--matrix raw %s", tu_data("h5ad/scanpy_pbmc68k_reduced_700.h5ad"));
    cJSON *r = inspect_json(args);
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(r, "matrix"), "location"), "/raw/X");
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(r, "values"), "guess"), "log-normalized");
    cJSON_Delete(r);
    snprintf(args, sizeof args, "--matrix layers/counts %s", tu_data("h5ad/scvijl_pbmc8k_7480x200.h5ad"));
    r = inspect_json(args);
    assert_string_equal(jstr(cJSON_GetObjectItemCaseSensitive(r, "values"), "guess"), "raw");
    assert_int_equal((int64_t)jnum(r, "n_obs"), 7480);
    cJSON_Delete(r);
}

/* coverage through the CLI equals the Python oracle (tokenizer fixture, and
 * the Ensembl column of the mouse file with the default gene-table dir) */
static void test_cli_coverage_vs_oracle(void **state) {
    (void)state;
    char tok[4096], args[8192], opath[4096];
    snprintf(tok, sizeof tok, "%s", tu_scratch("tok"));
    assert_int_equal(tu_python("make_tokenizer.py %s %s", tu_data("genes/bmfm_protein_coding_genes.json"), tok), 0);
    strncat(tok, "/tokenizer.json", sizeof tok - strlen(tok) - 1);
    snprintf(opath, sizeof opath, "%s", tu_scratch("cov.json"));
    const char *file = tu_data("h5ad/harmony_kang_pbmc_ctrl_stim_2000.h5ad");
    assert_int_equal(tu_python("gene_coverage.py %s %s %s", file, tok, opath), 0);
    cJSON *o = read_json(opath);
    snprintf(args, sizeof args, "--vocab %s %s", tok, file);
    cJSON *r = inspect_json(args);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(r, "genes");
    assert_non_null(g);
    assert_int_equal((int64_t)jnum(g, "matched"), (int64_t)jnum(o, "matched"));
    assert_int_equal((int64_t)jnum(g, "unmatched"), (int64_t)jnum(o, "unmatched"));
    assert_int_equal((int64_t)jnum(g, "vocab_special"), 38);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(g, "coverage");
    assert_true(tu_relerr(jnum(c, "mean"), jnum(o, "mean"), 1e-12) < 1e-9);
    assert_true(tu_relerr(jnum(c, "median"), jnum(o, "median"), 1e-12) < 1e-9);
    assert_string_equal(jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g, "top_unmatched"), 0), "gene"),
                        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "top_unmatched"), 0)->valuestring);
    cJSON_Delete(o);
    cJSON_Delete(r);

    file = tu_data("h5ad/transcriptformer_mouse_brain_merfish_1000.h5ad");
    assert_int_equal(tu_python("gene_coverage.py %s %s %s --var-column ensembl_id --table-dir %s", file,
                               tu_data("genes/bmfm_protein_coding_genes.json"), opath, tu_data("genes")), 0);
    o = read_json(opath);
    snprintf(args, sizeof args, "--vocab %s --var-column ensembl_id %s",
             tu_data("genes/bmfm_protein_coding_genes.json"), file);
    r = inspect_json(args);
    g = cJSON_GetObjectItemCaseSensitive(r, "genes");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "ensembl")));
    assert_int_equal((int64_t)jnum(g, "matched"), (int64_t)jnum(o, "matched"));
    assert_int_equal((int64_t)jnum(g, "case_insensitive"), (int64_t)jnum(o, "case_insensitive"));
    assert_true(jnum(g, "case_insensitive") > 500); /* mouse symbols */
    c = cJSON_GetObjectItemCaseSensitive(g, "coverage");
    assert_true(tu_relerr(jnum(c, "mean"), jnum(o, "mean"), 1e-12) < 1e-9);
    cJSON_Delete(o);
    cJSON_Delete(r);
}

static void expect_cli_error(const char *args, const char *needle) {
    char *out = NULL;
    int rc = tu_capture(&out, "%s inspect %s", tu_bmfm_bin(), args);
    if (rc != 2 || !strstr(out, needle)) fail_msg("inspect %s: exit %d, output '%s' (want '%s')", args, rc, out, needle);
    free(out);
    /* nothing on stdout */
    rc = tu_capture(&out, "%s inspect %s 2>/dev/null", tu_bmfm_bin(), args);
    assert_int_equal(rc, 2);
    assert_string_equal(out, "");
    free(out);
}

static void test_bad_input(void **state) {
    (void)state;
    char args[8192];
    const char *fake = tu_scratch("fake.h5ad");
    FILE *f = fopen(fake, "w");
    fputs("this is not HDF5\n", f);
    fclose(f);
    expect_cli_error("/nonexistent/x.h5ad", "x.h5ad");
    expect_cli_error(fake, "fake.h5ad");
    expect_cli_error("", "missing FILE");
    expect_cli_error("--bogus x.h5ad", "try 'bmfm inspect --help'");
    snprintf(args, sizeof args, "--vocab /nonexistent/tokenizer.json %s", tu_data("h5ad/bmfm_zheng68k_165.h5ad"));
    expect_cli_error(args, "/nonexistent/tokenizer.json");
    snprintf(args, sizeof args, "--matrix layers/nope %s", tu_data("h5ad/bmfm_zheng68k_165.h5ad"));
    expect_cli_error(args, "nope");
    snprintf(args, sizeof args, "--vocab %s --var-column nope %s", tu_data("genes/bmfm_protein_coding_genes.json"),
             tu_data("h5ad/bmfm_zheng68k_165.h5ad"));
    expect_cli_error(args, "nope");
    /* one error line for a missing file */
    char *out = NULL;
    assert_int_equal(tu_capture(&out, "%s inspect /nonexistent/x.h5ad", tu_bmfm_bin()), 2);
    int lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 1);
    free(out);
    assert_int_equal(tu_capture(&out, "%s inspect --help", tu_bmfm_bin()), 0);
    assert_non_null(strstr(out, "--vocab"));
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shared_file_vs_anndata),
        cmocka_unit_test(test_human_table_and_matrix_choice),
        cmocka_unit_test(test_cli_coverage_vs_oracle),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests_name("inspect", tests, NULL, NULL);
}
