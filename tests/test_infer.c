/* test_infer.c - inference end to end on the real placenta raw counts with
 * random-weight model directories in the released layout, made by the
 * PyTorch oracle (tests/ref/infer_oracle.py over tests/ref/llama_ref.py):
 * embeddings for every pooling method and label logits against the padded
 * reference forward, row alignment with NaN rows, determinism across batch
 * sizes and threads, --layer, normalization detection, the CLI outputs read
 * back by python anndata, ontology decoding, and bad input (exit 2, output
 * untouched). */
#include "test_util.h"

#include "base/fileutil.h"
#include "base/log.h"
#include "infer/embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ZHENG "h5ad/bmfm_cellxgene_placenta_220.h5ad" /* raw counts, CL-id labels */
#define GENES "genes/bmfm_protein_coding_genes.json"
#define N_CELLS 220
#define C 64

static char g_dir[512], g_m47[600], g_m32[600], g_e47[600], g_e32[600], g_var[600];

static void *read_bin(const char *dir, const char *name, size_t *n_bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *data = NULL;
    size_t len = 0;
    if (bmfm_read_file(path, &data, &len)) fail_msg("%s: %s", path, bmfm_error_message());
    if (n_bytes) *n_bytes = len;
    return data;
}

static int setup(void **state) {
    bmfm_log_set_level(BMFM_LOG_WARN);
    snprintf(g_dir, sizeof g_dir, "%s", tu_scratch(""));
    snprintf(g_m47, sizeof g_m47, "%sm47", g_dir);
    snprintf(g_m32, sizeof g_m32, "%sm32", g_dir);
    snprintf(g_e47, sizeof g_e47, "%se47", g_dir);
    snprintf(g_e32, sizeof g_e32, "%se32", g_dir);
    snprintf(g_var, sizeof g_var, "%svariants", g_dir);
    const char *z = tu_data(ZHENG), *genes = tu_data(GENES);
    if (tu_python("infer_oracle.py make %s %s %s 47m", genes, z, g_m47) ||
        tu_python("infer_oracle.py make %s %s %s 32m", genes, z, g_m32) ||
        tu_python("infer_oracle.py embed %s %s %s 512", g_m47, z, g_e47) ||
        tu_python("infer_oracle.py embed %s %s %s 200", g_m32, z, g_e32) ||
        tu_python("infer_oracle.py variants %s %s %s", z, g_var, genes))
        return -1;
    return 0;
}

/* Run the pipeline through the library on one input. */
static bmfm_infer_result *run_api(const char *model, const char *input, const char *layer,
                                  bmfm_infer_options *o) {
    bmfm_dataset *ds = NULL;
    bmfm_infer_model *m = NULL;
    bmfm_infer_result *r = NULL;
    if (bmfm_dataset_open(input, layer, &ds)) fail_msg("%s", bmfm_error_message());
    if (bmfm_infer_model_load(model, NULL, &m)) fail_msg("%s", bmfm_error_message());
    o->model_dir = model;
    if (bmfm_infer_run(m, ds, o, NULL, &r)) fail_msg("%s", bmfm_error_message());
    r->owned_model = m;
    bmfm_dataset_close(ds);
    return r;
}

/* Max error of column block [c0, c0+C) of emb rows against ref [n, C],
 * relative to the reference's largest magnitude. */
static double block_err(const bmfm_infer_result *r, int64_t c0, const float *ref, int64_t n) {
    double maxref = 0, maxerr = 0;
    for (int64_t i = 0; i < n * C; i++) maxref = fmax(maxref, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < C; c++) {
            double d = fabs((double)r->emb[i * r->dim + c0 + c] - ref[i * C + c]);
            if (!(d <= maxerr)) maxerr = d; /* NaN propagates */
        }
    return maxerr / maxref;
}

static void check_logits(const bmfm_infer_result *r, const char *edir) {
    for (int h = 0; h < r->n_heads; h++) {
        char name[256];
        snprintf(name, sizeof name, "logits.%s.bin", r->heads[h].space->name);
        size_t nb;
        float *ref = read_bin(edir, name, &nb);
        int64_t K = r->heads[h].space->n_classes;
        assert_int_equal(nb, (size_t)(N_CELLS * K) * sizeof(float));
        double err = tu_max_scaled_err_f32(r->heads[h].logits, ref, (size_t)(N_CELLS * K));
        print_message("  head %-28s K=%lld  max scaled err %.2e\n", r->heads[h].space->name, (long long)K, err);
        assert_true(err <= 1e-5);
        /* predicted class = argmax of the reference logits */
        for (int64_t i = 0; i < N_CELLS; i++) {
            int64_t best = 0;
            for (int64_t k = 1; k < K; k++)
                if (ref[i * K + k] > ref[i * K + best]) best = k;
            assert_int_equal(r->heads[h].code[i], best);
        }
        free(ref);
    }
}

static void test_47m_all_poolings_and_logits(void **state) {
    bmfm_infer_options o;
    bmfm_infer_options_default(&o);
    o.max_length = 512;
    o.pooling = "first_token,mean_pooling,pooling_layer,1,2";
    o.want_logits = 1;
    bmfm_infer_result *r = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    assert_int_equal(r->dim, 5 * C);
    assert_int_equal(r->n_empty, 0);
    assert_int_equal(r->n_truncated, N_CELLS); /* every cell has > 1700 genes: var-order truncation */
    const char *names[] = {"first_token", "mean_pooling", "pooling_layer", "index1", "index2"};
    for (int k = 0; k < 5; k++) {
        char f[64];
        snprintf(f, sizeof f, "%s.bin", names[k]);
        float *ref = read_bin(g_e47, f, NULL);
        double err = block_err(r, k * C, ref, N_CELLS);
        print_message("  47m %-14s max scaled err %.2e\n", names[k], err);
        assert_true(err <= 1e-5);
        free(ref);
    }
    check_logits(r, g_e47);
    bmfm_infer_result_free(r);
}

static void test_32m_pooler_heads(void **state) {
    bmfm_infer_options o;
    bmfm_infer_options_default(&o);
    o.max_length = 200;
    o.pooling = NULL; /* the checkpoint's pooling_method: pooling_layer */
    o.want_logits = 1;
    o.batch_size = 5;
    bmfm_infer_result *r = run_api(g_m32, tu_data(ZHENG), NULL, &o);
    assert_int_equal(r->dim, C);
    float *ref = read_bin(g_e32, "pooling_layer.bin", NULL);
    double err = block_err(r, 0, ref, N_CELLS);
    print_message("  32m pooling_layer max scaled err %.2e\n", err);
    assert_true(err <= 1e-5);
    free(ref);
    check_logits(r, g_e32);
    bmfm_infer_result_free(r);
}

static void test_deterministic_across_batches_threads_and_order(void **state) {
    bmfm_infer_options o;
    bmfm_infer_options_default(&o);
    o.max_length = 96;
    o.pooling = "first_token,mean_pooling";
    o.order = "random";
    o.seed = 5;
    o.batch_size = 1;
    o.threads = 1;
    bmfm_infer_result *a = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    o.batch_size = 7;
    o.threads = 2;
    bmfm_infer_result *b = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    o.batch_size = 0;
    o.token_budget = 300; /* batches by token count only */
    bmfm_infer_result *c = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    size_t n = (size_t)(a->n_obs * a->dim) * sizeof(float);
    assert_memory_equal(a->emb, b->emb, n);
    assert_memory_equal(a->emb, c->emb, n);
    /* another seed changes the truncated cells, so the embedding */
    o.seed = 6;
    bmfm_infer_result *d = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    assert_true(memcmp(a->emb, d->emb, n) != 0);
    bmfm_infer_result_free(a);
    bmfm_infer_result_free(b);
    bmfm_infer_result_free(c);
    bmfm_infer_result_free(d);
}

/* anndata reads an output; dump obsm[key] as float32 into dir/name.bin */
static float *anndata_obsm(const char *h5ad, const char *key, int64_t rows, int64_t cols) {
    char out[700];
    snprintf(out, sizeof out, "%sobsm_%s.bin", g_dir, key);
    assert_int_equal(tu_python("infer_oracle.py readback %s %s %s", h5ad, key, out), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(bmfm_read_file(out, &data, &len), BMFM_OK);
    assert_int_equal(len, (size_t)(rows * cols) * sizeof(float));
    return (float *)data;
}

static void test_cli_rows_nan_and_anndata(void **state) {
    char in[700], out[700];
    snprintf(in, sizeof in, "%s/empty_rows.h5ad", g_var);
    snprintf(out, sizeof out, "%sempty_rows.bmfm.h5ad", g_dir);
    char *log = NULL;
    int rc = tu_capture(&log, "%s embed %s -m %s -o %s --max-length 96 --pooling first_token,2 --batch-size 3",
                        tu_bmfm_bin(), in, g_m47, out);
    print_message("%s", log);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(log, "3 of 220 cells have no gene"));
    free(log);
    float *e = anndata_obsm(out, "X_bmfm", N_CELLS, 2 * C);
    bmfm_infer_options o;
    bmfm_infer_options_default(&o);
    o.max_length = 96;
    o.pooling = "first_token,2";
    bmfm_infer_result *r = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    for (int64_t i = 0; i < N_CELLS; i++) {
        int empty = i == 5 || i == 17 || i == 100;
        for (int64_t c = 0; c < 2 * C; c++) {
            float v = e[i * 2 * C + c];
            if (empty) assert_true(isnan(v));
            else assert_true(v == r->emb[i * 2 * C + c]); /* same cell, same row, same bits */
        }
    }
    free(e);
    bmfm_infer_result_free(r);
}

static void test_layer_and_normalization(void **state) {
    char in[700];
    snprintf(in, sizeof in, "%s/lognorm.h5ad", g_var);
    bmfm_infer_options o;
    bmfm_infer_options_default(&o);
    o.max_length = 96;
    bmfm_infer_result *raw = run_api(g_m47, tu_data(ZHENG), NULL, &o);
    /* --layer counts: the raw counts of the same cells -> identical embeddings */
    bmfm_infer_result *lay = run_api(g_m47, in, "counts", &o);
    size_t n = (size_t)(raw->n_obs * raw->dim) * sizeof(float);
    assert_memory_equal(raw->emb, lay->emb, n);
    assert_non_null(strstr(lay->normalize_note, "raw counts"));
    /* X is log1p(CP10k): detected and passed through */
    bmfm_infer_result *auto_ = run_api(g_m47, in, NULL, &o);
    assert_non_null(strstr(auto_->normalize_note, "passed through"));
    /* forcing normalization of log values changes the input, so the output */
    o.normalize = 1;
    bmfm_infer_result *forced = run_api(g_m47, in, NULL, &o);
    assert_true(memcmp(auto_->emb, forced->emb, n) != 0);
    bmfm_infer_result_free(raw);
    bmfm_infer_result_free(lay);
    bmfm_infer_result_free(auto_);
    bmfm_infer_result_free(forced);
}

static void test_annotate_ontology(void **state) {
    char out[700];
    snprintf(out, sizeof out, "%sannotated.h5ad", g_dir);
    char *log = NULL;
    int rc = tu_capture(&log,
                        "%s annotate %s -m %s -o %s --max-length 512 --ontology %s --min-prob 0.3 "
                        "--levels '2;T cell;monocyte' --probs",
                        tu_bmfm_bin(), tu_data(ZHENG), g_m47, out, tu_data("ontology/cl-basic_2022-12-15.obo"));
    print_message("%s", log);
    free(log);
    assert_int_equal(rc, 0);
    char dump[700];
    snprintf(dump, sizeof dump, "%sannot.txt", g_dir);
    /* python anndata: the columns, and the leaf call = argmax of the reference logits */
    assert_int_equal(tu_python("infer_oracle.py check_annotate %s %s/logits.cell_type_ontology_term_id.bin %s", out,
                               g_e47, tu_data(ZHENG)),
                     0);
}

static void test_model_info(void **state) {
    char *log = NULL;
    assert_int_equal(tu_capture(&log, "%s model info %s", tu_bmfm_bin(), g_m47), 0);
    assert_non_null(strstr(log, "2 layers, hidden 64, 4 heads of 16"));
    assert_non_null(strstr(log, "19321 ids"));
    assert_non_null(strstr(log, "[CLS] [CLS_0] [CLS_1] [CLS_2] [CLS_3] genes... [SEP]"));
    assert_non_null(strstr(log, "cell_type_ontology_term_id"));
    assert_non_null(strstr(log, "reads position 4"));
    free(log);
    assert_int_equal(tu_capture(&log, "%s model info %s", tu_bmfm_bin(), g_m32), 0);
    assert_non_null(strstr(log, "reads the pooler"));
    free(log);
}

/* Every bad input: exit 2, one clear error line, the output file untouched. */
static void expect_fail(const char *args, const char *needle) {
    char out[700];
    snprintf(out, sizeof out, "%suntouched.h5ad", g_dir);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fputs("sentinel", f);
    fclose(f);
    char *log = NULL;
    int rc = tu_capture(&log, "%s %s -o %s", tu_bmfm_bin(), args, out);
    print_message("  -> %s", log);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(log, needle));
    free(log);
    char *data = NULL;
    size_t len;
    assert_int_equal(bmfm_read_file(out, &data, &len), BMFM_OK);
    assert_string_equal(data, "sentinel");
    free(data);
}

static void test_bad_input(void **state) {
    char cmd[2048], bad[700];
    const char *z = tu_data(ZHENG);
    /* unknown layout: a directory without config.json / model.safetensors */
    snprintf(cmd, sizeof cmd, "embed %s -m %s", z, g_var);
    expect_fail(cmd, "unknown model layout");
    /* no overlap with the vocabulary */
    snprintf(cmd, sizeof cmd, "embed %s/no_overlap.h5ad -m %s", g_var, g_m47);
    expect_fail(cmd, "coverage 0 of 18357");
    /* input without X */
    snprintf(cmd, sizeof cmd, "embed %s/no_x.h5ad -m %s", g_var, g_m47);
    expect_fail(cmd, "X");
    /* mismatched config / weights: a tensor with the wrong shape */
    snprintf(bad, sizeof bad, "%sm47_bad", g_dir);
    assert_int_equal(tu_python("llama_ref.py corrupt %s %s shape", g_m47, bad), 0);
    snprintf(cmd, sizeof cmd, "embed %s -m %s", z, bad);
    expect_fail(cmd, "blocks.0.attn.proj.weight");
    /* a vocabulary that does not fit the gene embedding of config.json */
    assert_int_equal(tu_system("rm -rf %sm47_vocab && cp -r %s %sm47_vocab && printf '[\"A1BG\", \"TP53\"]' > "
                               "%sgenes2.json",
                               g_dir, g_m47, g_dir, g_dir),
                     0);
    assert_int_equal(tu_python("infer_oracle.py vocab %sgenes2.json %sm47_vocab/tokenizers/genes/tokenizer.json", g_dir, g_dir), 0);
    snprintf(cmd, sizeof cmd, "embed %s -m %sm47_vocab", z, g_dir);
    expect_fail(cmd, "the genes vocabulary has 40 ids but config.json");
    /* a layer that does not exist */
    snprintf(cmd, sizeof cmd, "embed %s -m %s --layer nosuch", z, g_m47);
    expect_fail(cmd, "nosuch");
    /* bad options */
    snprintf(cmd, sizeof cmd, "embed %s -m %s --pooling max", z, g_m47);
    expect_fail(cmd, "pooling");
    snprintf(cmd, sizeof cmd, "annotate %s -m %s --levels 2", z, g_m47);
    expect_fail(cmd, "--ontology");
    /* unwritable output (a directory that does not exist) */
    char *log = NULL;
    int rc = tu_capture(&log, "%s embed %s -m %s -o %snosuchdir/out.h5ad", tu_bmfm_bin(), z, g_m47, g_dir);
    print_message("  -> %s", log);
    assert_int_equal(rc, 2);
    free(log);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_47m_all_poolings_and_logits),
        cmocka_unit_test(test_32m_pooler_heads),
        cmocka_unit_test(test_deterministic_across_batches_threads_and_order),
        cmocka_unit_test(test_cli_rows_nan_and_anndata),
        cmocka_unit_test(test_layer_and_normalization),
        cmocka_unit_test(test_annotate_ontology),
        cmocka_unit_test(test_model_info),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
