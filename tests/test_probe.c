/* test_probe.c - linear/kNN probe against sklearn with the same folds
 * (tests/ref/probe_oracle.py): the harmony cell-lines embedding (binary and
 * 3-class labels), leave-one-batch-out, a synthetic multinomial fit's
 * objective and coefficients, the fold assignment, and bad labels. */
#include "test_util.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/rng.h"
#include "eval/knn.h"
#include "eval/probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t n, d;
    float *emb;
    int32_t *cell_type, *dataset;
} cell_lines;

/* Code of s among the distinct values seen so far (first-appearance order). */
static int32_t intern(char names[][32], int *count, const char *s) {
    for (int i = 0; i < *count; i++)
        if (!strcmp(names[i], s)) return i;
    snprintf(names[*count], 32, "%s", s);
    return (*count)++;
}

static void load_cell_lines(cell_lines *cl) {
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(bmfm_read_file(tu_data("embeddings/harmony_cell_lines_scaled_pcs_2370.csv.gz"), &text, &len), 0);
    cl->n = 0;
    cl->d = 20;
    cl->emb = malloc(2370 * 20 * sizeof(float));
    cl->cell_type = malloc(2370 * sizeof(int32_t));
    cl->dataset = malloc(2370 * sizeof(int32_t));
    char ct_names[8][32], ds_names[8][32];
    int n_ct = 0, n_ds = 0;
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save); /* header */
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *fields[32];
        int nf = 0;
        char *fs = NULL;
        for (char *f = strtok_r(line, ",", &fs); f && nf < 32; f = strtok_r(NULL, ",", &fs)) fields[nf++] = f;
        assert_int_equal(nf, 25);
        for (int j = 1; j <= 4; j += 3) { /* strip quotes of dataset, cell_type */
            char *s = fields[j];
            if (*s == '"') s++;
            s[strcspn(s, "\"")] = 0;
            fields[j] = s;
        }
        assert_true(cl->n < 2370);
        cl->dataset[cl->n] = intern(ds_names, &n_ds, fields[1]);
        cl->cell_type[cl->n] = intern(ct_names, &n_ct, fields[4]);
        for (int j = 0; j < 20; j++) cl->emb[cl->n * 20 + j] = strtof(fields[5 + j], NULL);
        cl->n++;
    }
    assert_int_equal(cl->n, 2370);
    assert_int_equal(n_ct, 2);
    assert_int_equal(n_ds, 3);
    free(text);
}

static void free_cell_lines(cell_lines *cl) {
    free(cl->emb);
    free(cl->cell_type);
    free(cl->dataset);
}

typedef struct {
    double lr_f1[32], lr_acc[32], knn_f1[32], knn_acc[32];
    int nf;
    double full_loss;
    int full_rows;
    double *full_coef;
} oracle_out;

static int read_vec(FILE *f, const char *key, double *v, int max) {
    char k[32];
    assert_int_equal(fscanf(f, "%31s", k), 1);
    assert_string_equal(k, key);
    int n = 0;
    while (n < max) {
        int c;
        while ((c = fgetc(f)) == ' ') {}
        if (c == '\n' || c == EOF) break;
        ungetc(c, f);
        assert_int_equal(fscanf(f, "%lf", &v[n]), 1);
        n++;
    }
    return n;
}

/* Write the fixture with our folds, run sklearn on it. */
static void run_oracle(const float *emb, int64_t n, int64_t d, const int32_t *lab, const int32_t *fold,
                       int k, int64_t coef_len, oracle_out *o) {
    const char *bin = tu_scratch("probe_in.bin");
    FILE *f = fopen(bin, "wb");
    assert_non_null(f);
    int64_t hdr[3] = {n, d, k};
    fwrite(hdr, sizeof hdr, 1, f);
    fwrite(emb, sizeof(float), (size_t)(n * d), f);
    fwrite(lab, sizeof(int32_t), (size_t)n, f);
    fwrite(fold, sizeof(int32_t), (size_t)n, f);
    fclose(f);
    char out[512];
    snprintf(out, sizeof out, "%s", tu_scratch("probe_out.txt"));
    assert_int_equal(tu_python("probe_oracle.py %s %s", bin, out), 0);
    f = fopen(out, "r");
    assert_non_null(f);
    o->nf = read_vec(f, "lr_f1", o->lr_f1, 32);
    read_vec(f, "lr_acc", o->lr_acc, 32);
    read_vec(f, "knn_f1", o->knn_f1, 32);
    read_vec(f, "knn_acc", o->knn_acc, 32);
    read_vec(f, "full_loss", &o->full_loss, 1);
    double rows;
    read_vec(f, "full_rows", &rows, 1);
    o->full_rows = (int)rows;
    o->full_coef = malloc((size_t)coef_len * 64 * sizeof(double));
    int nc = read_vec(f, "full_coef", o->full_coef, (int)coef_len * 64);
    assert_int_equal(nc, o->full_rows * (d + 1));
    fclose(f);
}

/* CV with our folds vs sklearn with the same folds. */
static void check_cv(const float *emb, int64_t n, int64_t d, const int32_t *lab, int64_t n_labels) {
    bmfm_probe_options o;
    bmfm_probe_options_default(&o);
    o.seed = 7;
    bmfm_probe_result r;
    assert_int_equal(bmfm_probe_cv(emb, n, d, lab, n_labels, &o, &r), 0);
    assert_int_equal(r.n_folds, 5);
    int32_t *fold = malloc((size_t)n * sizeof *fold);
    assert_int_equal(bmfm_probe_folds(lab, n, n_labels, 5, 10, 7, NULL, fold), 0);
    oracle_out ora;
    run_oracle(emb, n, d, lab, fold, o.knn_k, n_labels, &ora);
    assert_int_equal(ora.nf, 5);
    double sf = 0, sk = 0;
    for (int f = 0; f < 5; f++) {
        print_message("fold %d: lr f1 %.5f (sklearn %.5f) acc %.5f (%.5f); knn f1 %.5f (%.5f)\n", f,
                      r.lr_f1_fold[f], ora.lr_f1[f], r.lr_acc_fold[f], ora.lr_acc[f], r.knn_f1_fold[f],
                      ora.knn_f1[f]);
        assert_true(fabs(r.lr_f1_fold[f] - ora.lr_f1[f]) <= 0.01);
        assert_true(fabs(r.lr_acc_fold[f] - ora.lr_acc[f]) <= 0.01);
        assert_true(fabs(r.knn_f1_fold[f] - ora.knn_f1[f]) <= 0.01);
        sf += ora.lr_f1[f];
        sk += ora.knn_f1[f];
    }
    assert_true(fabs(r.lr_f1_macro - sf / 5) <= 0.01);
    assert_true(fabs(r.knn_f1_macro - sk / 5) <= 0.01);
    free(ora.full_coef);
    free(fold);
}

static void test_cell_lines_binary_and_3class(void **state) {
    (void)state;
    cell_lines cl;
    load_cell_lines(&cl);
    check_cv(cl.emb, cl.n, cl.d, cl.cell_type, 2); /* binomial */
    check_cv(cl.emb, cl.n, cl.d, cl.dataset, 3);   /* multinomial */
    free_cell_lines(&cl);
}

static void test_cell_lines_leave_one_batch_out(void **state) {
    (void)state;
    cell_lines cl;
    load_cell_lines(&cl);
    bmfm_probe_options o;
    bmfm_probe_options_default(&o);
    bmfm_probe_result r;
    assert_int_equal(bmfm_probe_heldout_batch(cl.emb, cl.n, cl.d, cl.cell_type, 2, cl.dataset, 3, -1, &o, &r), 0);
    assert_int_equal(r.n_folds, 3);
    /* the batch is the fold: the oracle trains on the other two batches */
    oracle_out ora;
    run_oracle(cl.emb, cl.n, cl.d, cl.cell_type, cl.dataset, o.knn_k, 2, &ora);
    for (int f = 0; f < 3; f++) {
        print_message("held-out batch %d: lr f1 %.5f (sklearn %.5f), knn f1 %.5f (%.5f)\n", f,
                      r.lr_f1_fold[f], ora.lr_f1[f], r.knn_f1_fold[f], ora.knn_f1[f]);
        assert_true(fabs(r.lr_f1_fold[f] - ora.lr_f1[f]) <= 0.01);
        assert_true(fabs(r.knn_f1_fold[f] - ora.knn_f1[f]) <= 0.01);
    }
    /* one batch only */
    bmfm_probe_result r1;
    assert_int_equal(bmfm_probe_heldout_batch(cl.emb, cl.n, cl.d, cl.cell_type, 2, cl.dataset, 3, 2, &o, &r1), 0);
    assert_int_equal(r1.n_folds, 1);
    assert_true(fabs(r1.lr_f1_macro - r.lr_f1_fold[2]) < 1e-12);
    free(ora.full_coef);
    free_cell_lines(&cl);
}

/* Overlapping Gaussian classes, so the L2 optimum is interior and unique. */
static void make_blobs(int64_t n, int64_t d, int K, uint64_t seed, float *x, int32_t *y) {
    bmfm_rng r;
    bmfm_rng_seed(&r, seed, 0);
    double centre[8][16];
    for (int k = 0; k < K; k++)
        for (int64_t j = 0; j < d; j++) centre[k][j] = 1.5 * bmfm_rng_normal(&r);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % K);
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (float)(centre[y[i]][j] + 2.0 * bmfm_rng_normal(&r) + (j == 0 ? 5 : 0));
    }
}

static void check_full_fit(int K) {
    const int64_t n = 600, d = 12;
    float *x = malloc(n * d * sizeof(float));
    int32_t *y = malloc(n * sizeof(int32_t)), *fold = malloc(n * sizeof(int32_t));
    make_blobs(n, d, K, 11 + K, x, y);
    assert_int_equal(bmfm_probe_folds(y, n, K, 5, 10, 0, NULL, fold), 0);
    oracle_out ora;
    run_oracle(x, n, d, y, fold, 5, K, &ora);
    /* same scaling as the oracle's full fit */
    double *X = malloc(n * d * sizeof(double));
    for (int64_t j = 0; j < d; j++) {
        double mu = 0, v = 0;
        for (int64_t i = 0; i < n; i++) mu += x[i * d + j];
        mu /= n;
        for (int64_t i = 0; i < n; i++) v += (x[i * d + j] - mu) * (x[i * d + j] - mu);
        double sd = sqrt(v / n);
        for (int64_t i = 0; i < n; i++) X[i * d + j] = x[i * d + j] / sd;
    }
    bmfm_logreg m;
    assert_int_equal(bmfm_logreg_fit(X, n, d, y, K, 1.0, 10000, 1e-8, &m), 0);
    assert_true(m.converged);
    assert_int_equal(m.n_rows, ora.full_rows);
    print_message("K=%d: loss %.10g sklearn %.10g, %d iterations\n", K, m.loss, ora.full_loss, m.n_iter);
    assert_true(fabs(m.loss - ora.full_loss) <= 1e-7 * fabs(ora.full_loss));
    double maxd = 0;
    for (int i = 0; i < m.n_rows * (d + 1); i++) maxd = fmax(maxd, fabs(m.coef[i] - ora.full_coef[i]));
    print_message("K=%d: max |coef - sklearn| = %.3g\n", K, maxd);
    /* sklearn's L-BFGS-B also stops on a relative decrease <= 2.2e-9, which on
     * the multinomial problem leaves its coefficients ~1e-3 from the optimum
     * (our objective is lower or equal), so the bound is looser there */
    assert_true(m.loss <= ora.full_loss * (1 + 1e-9));
    assert_true(maxd < (K == 2 ? 1e-6 : 1e-2));
    /* default solver settings (tol 1e-4, 100 iterations) reach the same objective closely */
    bmfm_logreg m2;
    assert_int_equal(bmfm_logreg_fit(X, n, d, y, K, 1.0, 100, 1e-4, &m2), 0);
    assert_true(fabs(m2.loss - ora.full_loss) <= 1e-5 * fabs(ora.full_loss));
    bmfm_logreg_free(&m2);
    bmfm_logreg_free(&m);
    free(ora.full_coef);
    free(X);
    free(x);
    free(y);
    free(fold);
}

static void test_logreg_objective_and_coef_match_sklearn(void **state) {
    (void)state;
    check_full_fit(2);
    check_full_fit(5);
}

static void test_blobs_cv_match_sklearn(void **state) {
    (void)state;
    const int64_t n = 500, d = 8;
    float *x = malloc(n * d * sizeof(float));
    int32_t *y = malloc(n * sizeof(int32_t));
    make_blobs(n, d, 4, 3, x, y);
    check_cv(x, n, d, y, 4);
    free(x);
    free(y);
}

static void test_folds_stratified_and_documented(void **state) {
    (void)state;
    enum { N = 103 };
    int32_t lab[N], fold[N], fold2[N];
    for (int i = 0; i < N; i++) lab[i] = i < 60 ? 0 : i < 97 ? 1 : i < 100 ? 2 : -1; /* class 2: 3 cells */
    assert_int_equal(bmfm_probe_folds(lab, N, 3, 5, 10, 42, NULL, fold), 0);
    int cnt[3][5] = {{0}}, sizes[5] = {0};
    for (int i = 0; i < N; i++) {
        if (lab[i] == 2 || lab[i] < 0) {
            assert_int_equal(fold[i], -1);
            continue;
        }
        assert_true(fold[i] >= 0 && fold[i] < 5);
        cnt[lab[i]][fold[i]]++;
        sizes[fold[i]]++;
    }
    for (int f = 0; f < 5; f++) {
        assert_int_equal(cnt[0][f], 12);
        assert_true(cnt[1][f] == 7 || cnt[1][f] == 8);
        assert_true(sizes[f] == 19 || sizes[f] == 20);
    }
    assert_int_equal(bmfm_probe_folds(lab, N, 3, 5, 10, 42, NULL, fold2), 0);
    assert_memory_equal(fold, fold2, sizeof fold);
    assert_int_equal(bmfm_probe_folds(lab, N, 3, 5, 10, 43, NULL, fold2), 0);
    assert_true(memcmp(fold, fold2, sizeof fold) != 0);
}

static void test_f1_macro_known_values(void **state) {
    (void)state;
    /* sklearn: f1_score([0,0,1,1,2],[0,1,1,1,0], average="macro") = (0.5 + 0.8 + 0)/3 */
    int32_t y[] = {0, 0, 1, 1, 2}, p[] = {0, 1, 1, 1, 0};
    double acc;
    assert_true(fabs(bmfm_f1_macro(y, p, 5, 3, &acc) - 1.3 / 3) < 1e-12);
    assert_true(fabs(acc - 0.6) < 1e-12);
    /* a class only predicted (never true) still counts, as in sklearn */
    int32_t y2[] = {0, 0, 0}, p2[] = {0, 0, 1};
    assert_true(fabs(bmfm_f1_macro(y2, p2, 3, 2, NULL) - 0.4) < 1e-12);
}

/* The kNN vote with k = 100 (more neighbours than any fixed list would
 * hold) against a brute-force vote in double: sort by (distance, index),
 * the first k vote, ties to the lowest class. */
static int cmp_dist_idx(const void *a, const void *b) {
    const double *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

static void test_knn_classify_large_k(void **state) {
    (void)state;
    enum { NT = 300, NQ = 40, D = 3, K = 100, C = 4 };
    double *train = malloc(sizeof(double) * NT * D), *query = malloc(sizeof(double) * NQ * D);
    int32_t ytr[NT], pred[NQ];
    bmfm_rng r;
    bmfm_rng_seed(&r, 7, 0);
    for (int i = 0; i < NT; i++) {
        ytr[i] = (int32_t)bmfm_rng_below(&r, C);
        for (int c = 0; c < D; c++) train[i * D + c] = bmfm_rng_uniform(&r) + 0.3 * ytr[i] * (c == 0);
    }
    for (int i = 0; i < NQ * D; i++) query[i] = bmfm_rng_uniform(&r) * 1.6;
    assert_int_equal(bmfm_knn_classify(train, NT, ytr, query, NQ, D, C, K, pred), BMFM_OK);
    double(*di)[2] = malloc(sizeof(double[2]) * NT);
    for (int q = 0; q < NQ; q++) {
        for (int j = 0; j < NT; j++) {
            double s = 0;
            for (int c = 0; c < D; c++) s += (query[q * D + c] - train[j * D + c]) * (query[q * D + c] - train[j * D + c]);
            di[j][0] = s;
            di[j][1] = j;
        }
        qsort(di, NT, sizeof di[0], cmp_dist_idx);
        int votes[C] = {0}, best = 0;
        for (int t = 0; t < K; t++) votes[ytr[(int)di[t][1]]]++;
        for (int c = 1; c < C; c++)
            if (votes[c] > votes[best]) best = c;
        assert_int_equal(pred[q], best);
    }
    free(di);
    free(train);
    free(query);
}

/* bmfm_knn_select_row (the kNN probe's screening) keeps what a plain scan
 * keeps: the kk smallest (row + add, column) pairs, lower column first on
 * ties (values on a 1/8 grid: many ties), at lengths around the 32-column
 * vector groups and with kk above n, in one call and continued over blocks
 * of columns. */
/* The selection's list (have entries) is the first min(kk, n) of ref,
 * the (value, column) pairs sorted. */
static void check_selection(int have, int kk, int n, const int32_t *idx, const float *best, const double (*ref)[2]) {
    assert_int_equal(have, kk < n ? kk : n);
    for (int t = 0; t < have; t++) {
        assert_int_equal(idx[t], (int)ref[t][1]);
        assert_true(best[t] == ref[t][0]);
    }
}

static void test_knn_select_row_matches_plain_scan(void **state) {
    (void)state;
    const int ns[] = {1, 31, 32, 33, 100, 1000}, kks[] = {1, 5, 13, 40, 2000};
    bmfm_rng r;
    bmfm_rng_seed(&r, 11, 0);
    float *row = malloc(sizeof(float) * 1000), *add = malloc(sizeof(float) * 1000), *best = malloc(sizeof(float) * 2000);
    double(*ref)[2] = malloc(sizeof(double[2]) * 1000); /* the float sums, exactly */
    int32_t *idx = malloc(sizeof(int32_t) * 2000);
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t b = 0; b < sizeof kks / sizeof *kks; b++) {
            int n = ns[a], kk = kks[b];
            for (int j = 0; j < n; j++) {
                row[j] = (float)((int)(bmfm_rng_uniform(&r) * 64) - 32) / 8.0f;
                add[j] = (float)(int)(bmfm_rng_uniform(&r) * 16) / 8.0f;
                ref[j][0] = (float)(row[j] + add[j]);
                ref[j][1] = j;
            }
            qsort(ref, (size_t)n, sizeof ref[0], cmp_dist_idx);
            check_selection(bmfm_knn_select_row(row, add, n, 0, kk, 0, idx, best), kk, n, idx, best,
                            (const double(*)[2])ref);
            /* the same row in blocks of 7, 32 and 100 columns, continued */
            const int blocks[] = {7, 32, 100};
            for (int bi = 0; bi < 3; bi++) {
                int have = 0;
                for (int c0 = 0; c0 < n; c0 += blocks[bi])
                    have = bmfm_knn_select_row(row + c0, add + c0, n - c0 < blocks[bi] ? n - c0 : blocks[bi], c0,
                                               kk, have, idx, best);
                check_selection(have, kk, n, idx, best, (const double(*)[2])ref);
            }
        }
    free(row);
    free(add);
    free(best);
    free(ref);
    free(idx);
}

static void test_bad_labels_and_nan_rows(void **state) {
    (void)state;
    const int64_t n = 200, d = 4;
    float *x = malloc(n * d * sizeof(float));
    int32_t *y = malloc(n * sizeof(int32_t));
    make_blobs(n, d, 2, 5, x, y);
    bmfm_probe_options o;
    bmfm_probe_options_default(&o);
    bmfm_probe_result r;
    /* NaN rows and missing labels are dropped and counted; singleton class dropped */
    x[3 * d + 1] = NAN;
    x[10 * d] = INFINITY;
    y[20] = -1;
    y[21] = 2; /* a class of one cell */
    assert_int_equal(bmfm_probe_cv(x, n, d, y, 3, &o, &r), 0);
    assert_int_equal(r.n_dropped_nan, 2);
    assert_int_equal(r.n_dropped_label, 2);
    assert_int_equal(r.n_classes, 2);
    assert_int_equal(r.n_classes_dropped, 1);
    assert_int_equal(r.n_cells_used, n - 4);
    assert_true(r.lr_f1_macro > 0.5 && r.lr_f1_macro <= 1);
    /* one label: undefined, reported as such, never a number */
    for (int64_t i = 0; i < n; i++) y[i] = 0;
    assert_int_equal(bmfm_probe_cv(x, n, d, y, 1, &o, &r), 0);
    assert_true(isnan(r.lr_f1_macro) && isnan(r.knn_f1_macro));
    assert_int_equal(r.n_folds, 0);
    assert_true(strstr(r.note, "undefined") != NULL);
    /* one batch: no batch to hold out against */
    int32_t *b = calloc(n, sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i % 2);
    assert_int_equal(bmfm_probe_heldout_batch(x, n, d, y, 2, b, 1, -1, &o, &r), 0);
    assert_true(isnan(r.lr_f1_macro));
    assert_true(strstr(r.note, "undefined") != NULL);
    assert_int_not_equal(bmfm_probe_heldout_batch(x, n, d, y, 2, b, 1, 3, &o, &r), 0);
    free(b);
    free(x);
    free(y);
}

/* scanpy's own X_pca of pbmc68k_reduced, 10 FACS labels (multinomial). */
static void test_real_h5ad_pca_matches_sklearn(void **state) {
    (void)state;
    const char *bin = tu_scratch("pbmc68k_dump.bin");
    assert_int_equal(tu_python("probe_oracle.py dump %s X_pca bulk_labels %s",
                               tu_data("h5ad/scanpy_pbmc68k_reduced_700.h5ad"), bin), 0);
    FILE *f = fopen(bin, "rb");
    assert_non_null(f);
    int64_t h[2];
    assert_int_equal(fread(h, sizeof h, 1, f), 1);
    float *x = malloc((size_t)(h[0] * h[1]) * sizeof(float));
    int32_t *y = malloc((size_t)h[0] * sizeof(int32_t));
    assert_int_equal(fread(x, sizeof(float), (size_t)(h[0] * h[1]), f), (size_t)(h[0] * h[1]));
    assert_int_equal(fread(y, sizeof(int32_t), (size_t)h[0], f), (size_t)h[0]);
    fclose(f);
    int32_t nl = 0;
    for (int64_t i = 0; i < h[0]; i++) nl = y[i] + 1 > nl ? y[i] + 1 : nl;
    assert_int_equal(nl, 10);
    check_cv(x, h[0], h[1], y, nl);
    free(x);
    free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_folds_stratified_and_documented),
        cmocka_unit_test(test_f1_macro_known_values),
        cmocka_unit_test(test_bad_labels_and_nan_rows),
        cmocka_unit_test(test_knn_classify_large_k),
        cmocka_unit_test(test_knn_select_row_matches_plain_scan),
        cmocka_unit_test(test_logreg_objective_and_coef_match_sklearn),
        cmocka_unit_test(test_blobs_cv_match_sklearn),
        cmocka_unit_test(test_cell_lines_binary_and_3class),
        cmocka_unit_test(test_cell_lines_leave_one_batch_out),
        cmocka_unit_test(test_real_h5ad_pca_matches_sklearn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
