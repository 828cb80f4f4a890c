/* test_tokenize.c - multifield tokenization against the numpy reference
 * preprocessing (tests/ref/infer_oracle.py) on real raw counts
 * (bmfm_cellxgene_placenta_220), plus ordering, truncation, duplicate, empty-cell and bad-value cases. */
#include "test_util.h"

#include "base/fileutil.h"
#include "data/tokenize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *read_bin(const char *dir, const char *name, size_t *n_bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(bmfm_read_file(path, &data, &len), BMFM_OK);
    if (n_bytes) *n_bytes = len;
    return data;
}

static bmfm_tok_opts opts_47m(int64_t maxlen, bmfm_gene_order order, int nprefix) {
    bmfm_tok_opts o = {0};
    o.max_length = maxlen;
    o.order = order;
    o.normalize = 1;
    o.prefix[0] = 3; /* [CLS] */
    for (int i = 1; i < nprefix; i++) o.prefix[i] = 5 + (i - 1); /* [CLS_0..] */
    o.n_prefix = nprefix;
    o.sep_id = 1;
    return o;
}

static void check_against_oracle(int maxlen, const char *order_name, int nprefix) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tu_scratch(""));
    char sub[600];
    snprintf(sub, sizeof sub, "%stok_%d_%s_%d", dir, maxlen, order_name, nprefix);
    assert_int_equal(tu_python("infer_oracle.py tokenize %s %s %s %d %s %d",
                               tu_data("h5ad/bmfm_cellxgene_placenta_220.h5ad"),
                               tu_data("genes/bmfm_protein_coding_genes.json"), sub, maxlen,
                               order_name, nprefix),
                     0);
    int64_t *shape = read_bin(sub, "shape.bin", NULL);
    int64_t *indptr = read_bin(sub, "indptr.bin", NULL);
    int32_t *indices = read_bin(sub, "indices.bin", NULL);
    float *data = read_bin(sub, "data.bin", NULL);
    int32_t *v2t = read_bin(sub, "var_to_token.bin", NULL);
    int64_t *lens = read_bin(sub, "lens.bin", NULL);
    int32_t *ids = read_bin(sub, "ids.bin", NULL);
    float *expr = read_bin(sub, "expr.bin", NULL);

    bmfm_gene_order order;
    assert_int_equal(bmfm_gene_order_parse(order_name, &order), BMFM_OK);
    bmfm_tok_opts o = opts_47m(maxlen, order, nprefix);
    bmfm_tokenizer *tk = NULL;
    assert_int_equal(bmfm_tokenizer_new(&o, v2t, shape[1], &tk), BMFM_OK);
    bmfm_token_seqs seqs = {0};
    for (int64_t i = 0; i < shape[0]; i++)
        assert_int_equal(bmfm_tokenize_row(tk, indices + indptr[i], data + indptr[i],
                                           indptr[i + 1] - indptr[i], i, &seqs),
                         BMFM_OK);
    assert_int_equal(seqs.n_cells, shape[0]);
    int64_t off = 0, truncated = 0;
    for (int64_t i = 0; i < shape[0]; i++) {
        int64_t len = seqs.offsets[i + 1] - seqs.offsets[i];
        assert_int_equal(len, lens[i]);
        truncated += seqs.n_expressed[i] > seqs.n_genes[i];
        for (int64_t t = 0; t < len; t++) {
            assert_int_equal(seqs.ids[seqs.offsets[i] + t], ids[off + t]);
            /* bit-exact: same double computation, same rounding */
            assert_true(seqs.expr[seqs.offsets[i] + t] == expr[off + t]);
        }
        off += len;
    }
    if (maxlen < 1700) assert_true(truncated == shape[0]); /* every placenta cell has > 1700 kept genes */
    else assert_true(truncated == 0);
    bmfm_token_seqs_free(&seqs);
    bmfm_tokenizer_free(tk);
    free(shape), free(indptr), free(indices), free(data), free(v2t), free(lens), free(ids),
        free(expr);
}

static void test_oracle_var_order_47m_prefix(void **state) {
    (void)state;
    check_against_oracle(2048, "var", 5);
}
static void test_oracle_var_order_truncated(void **state) {
    (void)state;
    check_against_oracle(256, "var", 5);
}
static void test_oracle_sorted_truncated(void **state) {
    (void)state;
    check_against_oracle(200, "sorted", 1);
}

/* Small hand-made rows: duplicates, empty cells, ties, random order. */
static void test_duplicates_ties_and_empty(void **state) {
    (void)state;
    /* vars: 0->40, 1->-1 (dropped), 2->41, 3->40 (duplicate of var 0), 4->42 */
    int32_t v2t[] = {40, -1, 41, 40, 42};
    bmfm_tok_opts o = opts_47m(16, BMFM_ORDER_SORTED, 1);
    bmfm_tokenizer *tk;
    assert_int_equal(bmfm_tokenizer_new(&o, v2t, 5, &tk), BMFM_OK);
    bmfm_token_seqs s = {0};
    int32_t idx[] = {0, 1, 2, 3, 4};
    float val[] = {1, 100, 3, 2, 3};
    assert_int_equal(bmfm_tokenize_row(tk, idx, val, 5, 0, &s), BMFM_OK);
    /* sums: 40 -> 3 (var 0 + var 3), 41 -> 3, 42 -> 3: all tie, stay in first-seen var order */
    int32_t want[] = {3, 40, 41, 42, 1};
    assert_int_equal(s.offsets[1], 5);
    for (int i = 0; i < 5; i++) assert_int_equal(s.ids[i], want[i]);
    /* S = 9 (the dropped var 1 does not count) */
    assert_true(s.expr[1] == (float)log1p(3.0 / 10.0 * 10000.0));
    assert_true(s.expr[0] == -4.0f && s.expr[4] == -2.0f);
    /* a row with only dropped genes: no tokens, row kept */
    int32_t idx2[] = {1};
    float val2[] = {5};
    assert_int_equal(bmfm_tokenize_row(tk, idx2, val2, 1, 1, &s), BMFM_OK);
    assert_int_equal(s.n_cells, 2);
    assert_int_equal(s.n_genes[1], 0);
    assert_int_equal(s.offsets[2], s.offsets[1]);
    assert_int_equal(s.row[1], 1);
    /* negative count: error naming the row */
    float bad[] = {1, -2};
    int32_t idx3[] = {0, 2};
    assert_int_equal(bmfm_tokenize_row(tk, idx3, bad, 2, 7, &s), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "row 7"));
    bmfm_token_seqs_free(&s);
    bmfm_tokenizer_free(tk);
}

static void test_random_order_is_per_cell(void **state) {
    (void)state;
    enum { NV = 300 };
    int32_t v2t[NV], idx[NV];
    float val[NV];
    for (int j = 0; j < NV; j++) v2t[j] = 40 + j, idx[j] = j, val[j] = (float)(1 + j % 7);
    bmfm_tok_opts o = opts_47m(64, BMFM_ORDER_RANDOM, 5);
    o.seed = 11;
    bmfm_tokenizer *tk;
    assert_int_equal(bmfm_tokenizer_new(&o, v2t, NV, &tk), BMFM_OK);
    bmfm_token_seqs a = {0}, b = {0};
    /* cell 5 tokenized after cells 0..4, and alone: same sequence */
    for (int i = 0; i < 6; i++) assert_int_equal(bmfm_tokenize_row(tk, idx, val, NV, i, &a), BMFM_OK);
    assert_int_equal(bmfm_tokenize_row(tk, idx, val, NV, 5, &b), BMFM_OK);
    assert_int_equal(a.offsets[6] - a.offsets[5], 64);
    assert_memory_equal(a.ids + a.offsets[5], b.ids, 64 * sizeof(int32_t));
    assert_memory_equal(a.expr + a.offsets[5], b.expr, 64 * sizeof(float));
    /* different cells get different orders, and it is not var order */
    assert_true(memcmp(a.ids + a.offsets[4], a.ids + a.offsets[5], 64 * sizeof(int32_t)) != 0);
    int in_var_order = 1;
    for (int t = 6; t < 63; t++) in_var_order &= b.ids[t] == b.ids[t - 1] + 1;
    assert_false(in_var_order);
    /* S is the whole cell, not the truncated window */
    double S = 0;
    for (int j = 0; j < NV; j++) S += val[j];
    int32_t g = b.ids[5];
    assert_true(b.expr[5] == (float)log1p(val[g - 40] / (S + 1) * 1e4));
    bmfm_token_seqs_free(&a);
    bmfm_token_seqs_free(&b);
    bmfm_tokenizer_free(tk);
}

static void test_passthrough_and_bad_options(void **state) {
    (void)state;
    int32_t v2t[] = {40, 41};
    bmfm_tok_opts o = opts_47m(8, BMFM_ORDER_VAR, 1);
    o.normalize = 0;
    bmfm_tokenizer *tk;
    assert_int_equal(bmfm_tokenizer_new(&o, v2t, 2, &tk), BMFM_OK);
    bmfm_token_seqs s = {0};
    int32_t idx[] = {0, 1};
    float val[] = {0.25f, 2.5f};
    assert_int_equal(bmfm_tokenize_row(tk, idx, val, 2, 0, &s), BMFM_OK);
    assert_true(s.expr[1] == 0.25f && s.expr[2] == 2.5f);
    float neg[] = {-0.5f, 1.0f};
    assert_int_equal(bmfm_tokenize_row(tk, idx, neg, 2, 3, &s), BMFM_E_INPUT);
    assert_non_null(strstr(bmfm_error_message(), "scaled"));
    bmfm_token_seqs_free(&s);
    bmfm_tokenizer_free(tk);
    o.max_length = 2;
    assert_int_equal(bmfm_tokenizer_new(&o, v2t, 2, &tk), BMFM_E_INPUT);
    bmfm_gene_order ord;
    assert_int_equal(bmfm_gene_order_parse("shuffled", &ord), BMFM_E_INPUT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oracle_var_order_47m_prefix),
        cmocka_unit_test(test_oracle_var_order_truncated),
        cmocka_unit_test(test_oracle_sorted_truncated),
        cmocka_unit_test(test_duplicates_ties_and_empty),
        cmocka_unit_test(test_random_order_is_per_cell),
        cmocka_unit_test(test_passthrough_and_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
