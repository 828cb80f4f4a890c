/* test_vocab.c - vocabulary files, the gene resolver (exact, case-insensitive,
 * Ensembl through the CELLxGENE table, alias, allowed set, duplicates), the
 * coverage report against an independent Python oracle, and the raw-count
 * guess. */
#include "test_util.h"

#include "data/rawcheck.h"
#include "data/vocab.h"
#include "io/dataset.h"
#include "io/tokenizer_file.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


#define PC_GENES "genes/bmfm_protein_coding_genes.json"

static const char *tokenizer_dir(void) {
    static char dir[4096];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s", tu_scratch("tok"));
        assert_int_equal(tu_python("make_tokenizer.py %s %s", tu_data(PC_GENES), dir), 0);
    }
    return dir;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void check_pc_vocab(const bmfm_token_vocab *v) {
    assert_int_equal(v->n_ids, 19321);
    assert_int_equal(v->n_tokens, 19321);
    assert_int_equal(v->n_special, 38);
    assert_int_equal(bmfm_token_vocab_id(v, "[UNK]"), 0);
    assert_int_equal(bmfm_token_vocab_id(v, "[PAD]"), 2);
    assert_int_equal(bmfm_token_vocab_id(v, "[CLS_0]"), 5);
    assert_int_equal(bmfm_token_vocab_id(v, "[CLS_30]"), 35);
    assert_int_equal(bmfm_token_vocab_id(v, "[T]"), 37);
    assert_int_equal(bmfm_token_vocab_id(v, "A1BG"), 38);
    assert_string_equal(v->tokens[39], "A1CF");
    assert_int_equal(bmfm_token_vocab_id(v, "a1bg"), -1);
    assert_true(v->special[36] && !v->special[38]);
}

static void test_vocab_formats(void **state) {
    (void)state;
    char p[4200];
    bmfm_token_vocab v;
    assert_int_equal(bmfm_token_vocab_load(tokenizer_dir(), &v), BMFM_OK); /* directory -> tokenizer.json */
    assert_string_equal(v.format, "tokenizer.json");
    check_pc_vocab(&v);
    bmfm_token_vocab_free(&v);
    snprintf(p, sizeof p, "%s/txt/vocab.txt", tokenizer_dir());
    assert_int_equal(bmfm_token_vocab_load(p, &v), BMFM_OK);
    assert_string_equal(v.format, "vocab.txt");
    check_pc_vocab(&v);
    bmfm_token_vocab_free(&v);
    snprintf(p, sizeof p, "%s/json", tokenizer_dir());
    assert_int_equal(bmfm_token_vocab_load(p, &v), BMFM_OK);
    assert_string_equal(v.format, "vocab.json");
    check_pc_vocab(&v);
    bmfm_token_vocab_free(&v);
    assert_int_equal(bmfm_token_vocab_load(tu_data(PC_GENES), &v), BMFM_OK);
    assert_string_equal(v.format, "gene list");
    assert_int_equal(v.n_tokens, 19283);
    assert_int_equal(v.n_special, 0);
    assert_int_equal(bmfm_token_vocab_id(&v, "A1BG"), 0);
    bmfm_token_vocab_free(&v);
    /* plain text gene list, CRLF, trailing blank line */
    snprintf(p, sizeof p, "%s", tu_scratch("genes.txt"));
    write_file(p, "CD3E\r\nACTB\r\n\r\n");
    assert_int_equal(bmfm_token_vocab_load(p, &v), BMFM_OK);
    assert_string_equal(v.format, "gene list");
    assert_int_equal(bmfm_token_vocab_id(&v, "ACTB"), 1);
    bmfm_token_vocab_free(&v);
}

static void expect_bad_vocab(const char *name, const char *text, bmfm_status code, const char *needle) {
    bmfm_token_vocab v;
    const char *p = tu_scratch(name);
    write_file(p, text);
    assert_int_equal(bmfm_token_vocab_load(p, &v), code);
    if (!strstr(bmfm_error_message(), needle)) fail_msg("'%s' lacks '%s'", bmfm_error_message(), needle);
    assert_null(v.tokens);
}

static void test_bad_vocab_files(void **state) {
    (void)state;
    expect_bad_vocab("bpe.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", BMFM_E_UNSUPPORTED,
                     "only WordLevel");
    expect_bad_vocab("novocab.json", "{\"model\": {\"type\": \"WordLevel\"}}", BMFM_E_INPUT, "model.vocab");
    expect_bad_vocab("dupid.json", "{\"A\": 0, \"B\": 0}", BMFM_E_INPUT, "id 0 is used by both 'A' and 'B'");
    expect_bad_vocab("negid.json", "{\"A\": -1}", BMFM_E_INPUT, "has id -1");
    expect_bad_vocab("frac.json", "{\"A\": 1.5}", BMFM_E_INPUT, "not an integer");
    expect_bad_vocab("broken.json", "{\"A\": 1,", BMFM_E_INPUT, "invalid JSON");
    expect_bad_vocab("list.json", "[\"A\", 3]", BMFM_E_INPUT, "list entry 1 is not a string");
    expect_bad_vocab("gap.txt", "A\n\nB\n", BMFM_E_INPUT, "line 2: empty token");
    expect_bad_vocab("empty.txt", "\n\n", BMFM_E_INPUT, "empty");
    bmfm_token_vocab v;
    assert_int_equal(bmfm_token_vocab_load(tu_scratch("no-such-file.txt"), &v), BMFM_E_IO);
}

/* ---- resolver on a hand-made 10x directory ---- */

/* A 10x directory (legacy genes.tsv) in scratch from three texts. */
static const char *small_10x(const char *name, const char *mtx, const char *genes, const char *barcodes) {
    static char dir[4096];
    char p[4200];
    snprintf(dir, sizeof dir, "%s", tu_scratch(name));
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/matrix.mtx", dir);
    write_file(p, mtx);
    snprintf(p, sizeof p, "%s/genes.tsv", dir);
    write_file(p, genes);
    snprintf(p, sizeof p, "%s/barcodes.tsv", dir);
    write_file(p, barcodes);
    return dir;
}

/* genes CD3E, Cd3e, ACTB, XYZ, ACF; cells: {CD3E 2, Cd3e 3, XYZ 5}, {ACTB 4}, {}, {ACF 6} */
static const char *tiny_dir(void) {
    return small_10x("tiny10x",
                     "%%MatrixMarket matrix coordinate integer general\n5 4 5\n1 1 2\n2 1 3\n4 1 5\n3 2 4\n5 4 6\n",
                     "E1\tCD3E\nE2\tCd3e\nE3\tACTB\nE4\tXYZ\nE5\tACF\n", "c1\nc2\nc3\nc4\n");
}

static void test_case_insensitive_duplicates_alias_allowed(void **state) {
    (void)state;
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(tiny_dir(), NULL, &ds), BMFM_OK);
    const char *vp = tu_scratch("tiny_vocab.txt");
    write_file(vp, "[PAD]\nCD3E\nACTB\nA1CF\n");
    bmfm_token_vocab v;
    assert_int_equal(bmfm_token_vocab_load(vp, &v), BMFM_OK);
    bmfm_gene_map m;
    assert_int_equal(bmfm_gene_map_build(ds, &v, NULL, &m), BMFM_OK);
    assert_int_equal(m.n_exact, 2);
    assert_int_equal(m.n_case, 1);
    assert_int_equal(m.n_matched, 3);
    assert_int_equal(m.n_unmatched, 2);
    assert_int_equal(m.ids[0], 1);
    assert_int_equal(m.ids[1], 1); /* Cd3e -> CD3E */
    assert_int_equal(m.how[1], BMFM_GENE_CASE);
    assert_int_equal(m.ids[3], -1);
    assert_int_equal(m.n_dup_targets, 1);
    assert_int_equal(m.n_dup_genes, 2);
    assert_int_equal(m.dup_genes[0], 0);
    assert_int_equal(m.dup_genes[1], 1);
    bmfm_gene_coverage c;
    assert_int_equal(bmfm_gene_coverage_compute(ds, &m, 3, 10, &c), BMFM_OK);
    assert_int_equal(c.n_cells, 4);
    assert_int_equal(c.n_empty_cells, 1);
    /* fractions 0.5, 1, 0 */
    assert_true(fabs(c.frac_mean - 0.5) < 1e-12);
    assert_true(fabs(c.frac_median - 0.5) < 1e-12);
    assert_true(c.frac_min == 0.0 && c.frac_max == 1.0);
    assert_true(c.total == 20.0 && c.covered == 9.0);
    assert_int_equal(c.n_top, 2);
    assert_int_equal(c.top_genes[0], 4); /* ACF 6 */
    assert_int_equal(c.top_genes[1], 3); /* XYZ 5 */
    bmfm_gene_coverage_free(&c);
    bmfm_gene_map_free(&m);

    /* exact only: Cd3e stays out, no duplicates */
    bmfm_gene_map_options o;
    bmfm_gene_map_options_default(&o);
    o.case_insensitive = 0;
    assert_int_equal(bmfm_gene_map_build(ds, &v, &o, &m), BMFM_OK);
    assert_int_equal(m.n_matched, 2);
    assert_int_equal(m.n_dup_targets, 0);
    bmfm_gene_map_free(&m);

    /* alias map (real HGNC table): ACF -> A1CF */
    bmfm_gene_map_options_default(&o);
    o.alias_map = tu_data("genes/bmfm_protein_coding_gene_mapping_uppercase_hgnc_2024_08_23.json.gz");
    assert_int_equal(bmfm_gene_map_build(ds, &v, &o, &m), BMFM_OK);
    assert_int_equal(m.n_alias, 1);
    assert_int_equal(m.ids[4], 3);
    assert_int_equal(m.how[4], BMFM_GENE_ALIAS);
    bmfm_gene_map_free(&m);

    /* allowed set: only CD3E */
    const char *ap = tu_scratch("allowed.txt");
    write_file(ap, "CD3E\n");
    bmfm_token_vocab allowed;
    assert_int_equal(bmfm_token_vocab_load(ap, &allowed), BMFM_OK);
    bmfm_gene_map_options_default(&o);
    o.allowed = &allowed;
    assert_int_equal(bmfm_gene_map_build(ds, &v, &o, &m), BMFM_OK);
    assert_int_equal(m.n_matched, 2);
    assert_int_equal(m.n_not_allowed, 1);
    assert_int_equal(m.how[2], BMFM_GENE_NOT_ALLOWED);
    assert_int_equal(m.ids[2], -1);
    bmfm_gene_map_free(&m);
    bmfm_token_vocab_free(&allowed);

    /* a var column that does not exist */
    bmfm_gene_map_options_default(&o);
    o.var_column = "feature_name";
    assert_int_equal(bmfm_gene_map_build(ds, &v, &o, &m), BMFM_E_INPUT);
    bmfm_token_vocab_free(&v);
    bmfm_dataset_close(ds);
}

/* ---- against the Python oracle on real files ---- */

static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *j = cJSON_Parse(buf);
    assert_non_null(j);
    return j;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) fail_msg("oracle lacks '%s'", k);
    return x->valuedouble;
}

static void against_oracle(const char *file, const char *vocab, const char *var_column, int expect_ensembl) {
    char out[4096], extra[512] = "";
    snprintf(out, sizeof out, "%s", tu_scratch("oracle.json"));
    if (var_column) snprintf(extra, sizeof extra, "--var-column %s --table-dir %s", var_column, tu_data("genes"));
    assert_int_equal(tu_python("gene_coverage.py %s %s %s %s", tu_data(file), vocab, out, extra), 0);
    cJSON *o = load_json(out);
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(tu_data(file), NULL, &ds), BMFM_OK);
    bmfm_token_vocab v;
    assert_int_equal(bmfm_token_vocab_load(vocab, &v), BMFM_OK);
    bmfm_gene_map_options opt;
    bmfm_gene_map_options_default(&opt);
    opt.var_column = var_column;
    opt.ensembl_table_dir = tu_data("genes");
    bmfm_gene_map m;
    assert_int_equal(bmfm_gene_map_build(ds, &v, &opt, &m), BMFM_OK);
    assert_int_equal(m.ensembl, expect_ensembl);
    assert_int_equal(m.ensembl, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ensembl")));
    assert_int_equal(m.n_ensembl_unknown, (int64_t)jnum(o, "ensembl_unknown"));
    assert_int_equal(m.n_genes, (int64_t)jnum(o, "n_genes"));
    assert_int_equal(m.n_matched, (int64_t)jnum(o, "matched"));
    assert_int_equal(m.n_exact, (int64_t)jnum(o, "exact"));
    assert_int_equal(m.n_case, (int64_t)jnum(o, "case_insensitive"));
    assert_int_equal(m.n_unmatched, (int64_t)jnum(o, "unmatched"));
    assert_int_equal(m.n_dup_targets, (int64_t)jnum(o, "dup_vocab_genes"));
    assert_int_equal(m.n_dup_genes, (int64_t)jnum(o, "dup_dataset_genes"));
    bmfm_gene_coverage c;
    assert_int_equal(bmfm_gene_coverage_compute(ds, &m, 100, 10, &c), BMFM_OK);
    assert_int_equal(c.n_cells, (int64_t)jnum(o, "cells"));
    assert_int_equal(c.n_empty_cells, (int64_t)jnum(o, "empty_cells"));
    assert_true(tu_relerr(c.frac_mean, jnum(o, "mean"), 1e-12) < 1e-9);
    assert_true(tu_relerr(c.frac_median, jnum(o, "median"), 1e-12) < 1e-9);
    assert_true(tu_relerr(c.frac_min, jnum(o, "min"), 1e-12) < 1e-9);
    assert_true(tu_relerr(c.frac_max, jnum(o, "max"), 1e-12) < 1e-9);
    assert_true(tu_relerr(c.total, jnum(o, "total"), 1) < 1e-9);
    assert_true(tu_relerr(c.covered, jnum(o, "covered"), 1) < 1e-9);
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(o, "top_unmatched");
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(o, "top_totals");
    assert_int_equal(c.n_top, cJSON_GetArraySize(top));
    const char *const *names;
    assert_int_equal(bmfm_dataset_var_names(ds, &names), BMFM_OK);
    for (int i = 0; i < c.n_top; i++) {
        assert_true(tu_relerr(c.top_totals[i], cJSON_GetArrayItem(tot, i)->valuedouble, 1) < 1e-9);
        /* equal totals may list in either order only if the oracle's tie-break (index) differs: it does not */
        assert_string_equal(names[c.top_genes[i]], cJSON_GetArrayItem(top, i)->valuestring);
    }
    bmfm_gene_coverage_free(&c);
    bmfm_gene_map_free(&m);
    bmfm_token_vocab_free(&v);
    bmfm_dataset_close(ds);
    cJSON_Delete(o);
}

static void test_coverage_zheng_vs_oracle(void **state) {
    (void)state;
    against_oracle("h5ad/bmfm_zheng68k_165.h5ad", tu_data(PC_GENES), NULL, 0);
}

static void test_coverage_placenta_tokenizer_vs_oracle(void **state) {
    (void)state;
    char tok[4200];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", tokenizer_dir());
    against_oracle("h5ad/bmfm_cellxgene_placenta_220.h5ad", tok, NULL, 0);
}

/* mouse MERFISH: var index is "0".."1121"; Ensembl ids in var ensembl_id ->
 * mouse symbols (Gad1) -> case-insensitive match to human symbols */
static void test_ensembl_mouse_vs_oracle(void **state) {
    (void)state;
    against_oracle("h5ad/transcriptformer_mouse_brain_merfish_1000.h5ad", tu_data(PC_GENES), "ensembl_id", 1);
    /* on the var index nothing matches */
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(tu_data("h5ad/transcriptformer_mouse_brain_merfish_1000.h5ad"), NULL, &ds),
                     BMFM_OK);
    bmfm_token_vocab v;
    assert_int_equal(bmfm_token_vocab_load(tu_data(PC_GENES), &v), BMFM_OK);
    bmfm_gene_map m;
    assert_int_equal(bmfm_gene_map_build(ds, &v, NULL, &m), BMFM_OK);
    assert_int_equal(m.n_matched, 0);
    bmfm_gene_map_free(&m);
    /* Ensembl ids without a table directory: a clear error */
    bmfm_gene_map_options o;
    bmfm_gene_map_options_default(&o);
    o.var_column = "ensembl_id";
    o.ensembl_table_dir = "/nonexistent";
    assert_int_equal(bmfm_gene_map_build(ds, &v, &o, &m), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "Ensembl"));
    bmfm_token_vocab_free(&v);
    bmfm_dataset_close(ds);
}

/* ---- raw-count guess ---- */

static void expect_verdict(const char *file, const char *matrix, bmfm_values_kind want) {
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(tu_data(file), matrix, &ds), BMFM_OK);
    bmfm_rawcheck rc;
    assert_int_equal(bmfm_rawcheck_run(ds, 0, &rc), BMFM_OK);
    if (rc.verdict != want)
        fail_msg("%s %s: %s (%s), expected %s", file, matrix ? matrix : "X", bmfm_values_kind_name(rc.verdict),
                 rc.reason, bmfm_values_kind_name(want));
    assert_true(rc.rows_sampled == (bmfm_dataset_n_obs(ds) < 1000 ? bmfm_dataset_n_obs(ds) : 1000));
    bmfm_dataset_close(ds);
}

static void test_rawcheck(void **state) {
    (void)state;
    expect_verdict("h5ad/bmfm_zheng68k_165.h5ad", NULL, BMFM_VALUES_RAW);
    expect_verdict("h5ad/scvijl_pbmc8k_7480x200.h5ad", NULL, BMFM_VALUES_RAW); /* dense, sampled rows spread */
    expect_verdict("h5ad/bmfm_sciplex3_2247.h5ad", NULL, BMFM_VALUES_LOG);
    expect_verdict("h5ad/scanpy_pbmc68k_reduced_700.h5ad", NULL, BMFM_VALUES_SCALED);
    expect_verdict("h5ad/scanpy_pbmc68k_reduced_700.h5ad", "raw", BMFM_VALUES_LOG);
    /* non-integer values above the log range */
    const char *dir = small_10x("norm10x",
                                "%%MatrixMarket matrix coordinate real general\n2 2 3\n1 1 45.5\n2 1 3\n2 2 0.25\n",
                                "E1\tA\nE2\tB\n", "c1\nc2\n");
    bmfm_dataset *ds = NULL;
    assert_int_equal(bmfm_dataset_open(dir, NULL, &ds), BMFM_OK);
    bmfm_rawcheck rc;
    assert_int_equal(bmfm_rawcheck_run(ds, 0, &rc), BMFM_OK);
    assert_int_equal(rc.verdict, BMFM_VALUES_NORMALIZED);
    assert_int_equal(rc.values_sampled, 3);
    assert_true(rc.max == 45.5 && rc.min == 0.25);
    assert_true(fabs(rc.frac_non_integer - 2.0 / 3.0) < 1e-12);
    bmfm_dataset_close(ds);
    assert_int_equal(bmfm_values_kind_parse("counts"), BMFM_VALUES_RAW);
    assert_int_equal(bmfm_values_kind_parse("bogus"), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_formats),
        cmocka_unit_test(test_bad_vocab_files),
        cmocka_unit_test(test_case_insensitive_duplicates_alias_allowed),
        cmocka_unit_test(test_coverage_zheng_vs_oracle),
        cmocka_unit_test(test_coverage_placenta_tokenizer_vs_oracle),
        cmocka_unit_test(test_ensembl_mouse_vs_oracle),
        cmocka_unit_test(test_rawcheck),
    };
    return cmocka_run_group_tests_name("vocab", tests, NULL, NULL);
}
