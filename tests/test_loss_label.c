/* test_loss_label.c - HCE, cross-entropy and focal loss: against the PyTorch
 * oracle (tests/ref/loss_label_oracle.py, the reference formulas) on random
 * logits with leaf / internal / unknown labels of the real Cell Ontology,
 * finite differences in double, stability and bad input. */
#include "test_util.h"

#include "base/alloc.h"
#include "base/error.h"
#include "base/rng.h"
#include "nn/loss_label.h"
#include "onto/labelspace.h"
#include "onto/ontology.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Label space of cl-basic pruned to BMFM's 580 Census cell types. */
static bmfm_labelspace *census_space(bmfm_ontology **o) {
    assert_int_equal(bmfm_ontology_load(tu_data("ontology/cl-basic_2022-12-15.obo"), o), BMFM_OK);
    FILE *f = fopen(tu_data("genes/bmfm_cellxgene_cell_type_vocabulary.txt"), "r");
    assert_non_null(f);
    int64_t *obs = malloc(1000 * sizeof *obs), n = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "CL:", 3)) obs[n++] = bmfm_ontology_find(*o, line);
    }
    fclose(f);
    bmfm_labelspace *ls;
    assert_int_equal(bmfm_labelspace_prune(*o, obs, n, &ls), BMFM_OK);
    free(obs);
    return ls;
}

static void write_all(FILE *f, const void *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }

static void test_losses_match_torch_oracle(void **state) {
    (void)state;
    bmfm_ontology *o;
    bmfm_labelspace *ls = census_space(&o);
    const int64_t B = 48, K = ls->K;
    const float gamma = 2.0f;
    float *z = malloc((size_t)(B * K) * sizeof *z), *tgt = malloc((size_t)(B * (K + 1)) * sizeof *tgt);
    int64_t *lab = malloc((size_t)B * sizeof *lab);
    bmfm_rng r;
    bmfm_rng_seed(&r, 7, 1);
    for (int64_t i = 0; i < B * K; i++) z[i] = (float)(2.5 * bmfm_rng_normal(&r));
    /* labels: leaves, internal nodes (T cell, lymphocyte, cell), unknown */
    const char *internal[] = {"CL:0000084", "CL:0000542", "CL:0000000", "CL:0000236"};
    int n_leaf = 0, n_internal = 0, n_unknown = 0;
    for (int64_t b = 0; b < B; b++) {
        int64_t t = -1;
        if (b % 4 == 0) t = ls->leaf_term[bmfm_rng_below(&r, (uint64_t)K)];
        else if (b % 4 == 1) t = bmfm_ontology_find(o, internal[(b / 4) % 4]);
        else if (b % 4 == 2) t = ls->leaf_term[(b * 37) % K];
        int64_t nl = bmfm_labelspace_target(ls, t, tgt + b * (K + 1), tgt + b * (K + 1) + K);
        n_leaf += nl == 1;
        n_internal += nl > 1;
        n_unknown += nl == 0;
        lab[b] = b % 5 == 3 ? BMFM_IGNORE_INDEX : (int64_t)bmfm_rng_below(&r, (uint64_t)K);
    }
    assert_true(n_leaf >= 20 && n_internal >= 10 && n_unknown >= 10);
    const char *in = tu_scratch("loss_in.bin"), *out = tu_scratch("loss_out.bin");
    FILE *f = fopen(in, "wb");
    assert_non_null(f);
    int64_t dims[2] = {B, K};
    write_all(f, dims, sizeof dims);
    write_all(f, &gamma, sizeof gamma);
    write_all(f, z, (size_t)(B * K) * sizeof *z);
    write_all(f, tgt, (size_t)(B * (K + 1)) * sizeof *tgt);
    write_all(f, lab, (size_t)B * sizeof *lab);
    fclose(f);
    assert_int_equal(tu_python("loss_label_oracle.py %s %s", in, out), 0);
    f = fopen(out, "rb");
    assert_non_null(f);
    float *g = malloc((size_t)(B * K) * sizeof *g), *g32 = malloc((size_t)(B * K) * sizeof *g32);
    double *g64 = malloc((size_t)(B * K) * sizeof *g64);
    const char *names[3] = {"hce", "ce", "focal"};
    for (int which = 0; which < 3; which++) {
        double ref[2], loss = 0;
        assert_int_equal(fread(ref, sizeof ref, 1, f), 1);
        assert_int_equal(fread(g32, sizeof *g32, (size_t)(B * K), f), (size_t)(B * K));
        assert_int_equal(fread(g64, sizeof *g64, (size_t)(B * K), f), (size_t)(B * K));
        memset(g, 0, (size_t)(B * K) * sizeof *g);
        bmfm_status st = which == 0   ? bmfm_loss_hce(&loss, g, z, tgt, B, K, 1.0f)
                         : which == 1 ? bmfm_loss_ce(&loss, g, z, lab, B, K, 1.0f)
                                      : bmfm_loss_focal(&loss, g, z, lab, B, K, gamma, 1.0f);
        assert_int_equal(st, BMFM_OK);
        double max_rel64 = 0, scale = 0;
        for (int64_t i = 0; i < B * K; i++) scale = fmax(scale, fabs(g64[i]));
        for (int64_t i = 0; i < B * K; i++) max_rel64 = fmax(max_rel64, fabs(g[i] - g64[i]) / scale);
        double err32 = tu_max_scaled_err_f32(g, g32, (size_t)(B * K));
        printf("%s: loss %.9f torch32 %.9f torch64 %.12f; grad err vs torch64 %.2e vs torch32 %.2e\n", names[which],
               loss, ref[0], ref[1], max_rel64, err32);
        assert_true(fabs(loss - ref[1]) <= 1e-9 * fmax(1, fabs(ref[1])));
        assert_true(fabs(loss - ref[0]) <= 1e-6 * fmax(1, fabs(ref[0])));
        assert_true(max_rel64 < 1e-6); /* float output rounding of ~1e-5-sized gradients */
        assert_true(err32 < 1e-6);
        /* a second call with weight 0.5 accumulates: 1.5 x the gradient; the loss is unweighted */
        double loss2 = 0;
        st = which == 0   ? bmfm_loss_hce(&loss2, g, z, tgt, B, K, 0.5f)
             : which == 1 ? bmfm_loss_ce(&loss2, g, z, lab, B, K, 0.5f)
                          : bmfm_loss_focal(&loss2, g, z, lab, B, K, gamma, 0.5f);
        assert_true(loss2 == loss);
        double acc = 0;
        for (int64_t i = 0; i < B * K; i++) acc = fmax(acc, fabs(g[i] - 1.5 * g64[i]) / scale);
        assert_true(acc < 1e-6);
    }
    fclose(f);
    free(g);
    free(g32);
    free(g64);
    free(z);
    free(tgt);
    free(lab);
    bmfm_labelspace_free(ls);
    bmfm_ontology_free(o);
}

/* Central differences on logits that are multiples of 2^-12 with step 2^-10,
 * so z +- h is exact in float and the losses (computed in double) see
 * exactly the perturbation: the error is the O(h^2) truncation only. */
static void test_gradients_match_finite_differences(void **state) {
    (void)state;
    enum { B = 5, K = 7 };
    float z[B * K], tgt[B * (K + 1)], g[B * K];
    int64_t lab[B] = {3, BMFM_IGNORE_INDEX, 0, 6, 2};
    bmfm_rng r;
    bmfm_rng_seed(&r, 11, 2);
    for (int i = 0; i < B * K; i++) z[i] = (float)(round(bmfm_rng_normal(&r) * 2 * 4096) / 4096);
    memset(tgt, 0, sizeof tgt);
    /* leaf sets {1}, {0,2,5}, unknown, {3,4}, all */
    tgt[0 * (K + 1) + 1] = 1, tgt[0 * (K + 1) + K] = 1;
    tgt[1 * (K + 1) + 0] = tgt[1 * (K + 1) + 2] = tgt[1 * (K + 1) + 5] = 1, tgt[1 * (K + 1) + K] = 1;
    tgt[3 * (K + 1) + 3] = tgt[3 * (K + 1) + 4] = 1, tgt[3 * (K + 1) + K] = 1;
    for (int k = 0; k <= K; k++) tgt[4 * (K + 1) + k] = 1;
    const float h = 1.0f / 1024;
    const float gammas[3] = {0.0f, 2.0f, 0.5f};
    for (int which = 0; which < 5; which++) {
        float gm = which >= 2 ? gammas[which - 2] : 0;
#define LOSS(out, grad)                                                                                      \
    (which == 0   ? bmfm_loss_hce(out, grad, z, tgt, B, K, 1.0f)                                            \
     : which == 1 ? bmfm_loss_ce(out, grad, z, lab, B, K, 1.0f)                                             \
                  : bmfm_loss_focal(out, grad, z, lab, B, K, gm, 1.0f))
        double l0;
        memset(g, 0, sizeof g);
        assert_int_equal(LOSS(&l0, g), BMFM_OK);
        double worst = 0;
        for (int i = 0; i < B * K; i++) {
            float keep = z[i];
            double lp, lm;
            z[i] = keep + h;
            assert_int_equal(LOSS(&lp, NULL), BMFM_OK);
            z[i] = keep - h;
            assert_int_equal(LOSS(&lm, NULL), BMFM_OK);
            z[i] = keep;
            double fd = (lp - lm) / (2.0 * h);
            worst = fmax(worst, fabs(fd - g[i]));
        }
        printf("loss %d (gamma %.1f): finite-difference max abs err %.2e\n", which, gm, worst);
        assert_true(worst < 2e-6);
#undef LOSS
    }
}

static void test_hce_semantics_and_stability(void **state) {
    (void)state;
    enum { K = 4 };
    /* one known row, one unknown row: the mean divides by 2, not 1 */
    float z[2 * K] = {1, 2, 3, 4, 5, 1, 0, 0};
    float t[2 * (K + 1)] = {0, 1, 1, 0, 1, /**/ 0, 0, 0, 0, 0};
    double loss;
    assert_int_equal(bmfm_loss_hce(&loss, NULL, z, t, 2, K, 1), BMFM_OK);
    double lse = log(exp(1) + exp(2) + exp(3) + exp(4)), lsew = log(exp(2) + exp(3));
    assert_true(fabs(loss - (-(lsew - lse) / 2)) < 1e-12);
    /* label leaves 1000 below the top logit: finite, ~1000 */
    float zs[K] = {1000, 0, 0, 0};
    float ts[K + 1] = {0, 1, 1, 1, 1};
    float g[K] = {0};
    assert_int_equal(bmfm_loss_hce(&loss, g, zs, ts, 1, K, 1), BMFM_OK);
    assert_true(isfinite(loss) && fabs(loss - (1000 - log(3))) < 1e-9);
    assert_true(fabs(g[0] - 1) < 1e-6 && fabs(g[1] + 1.0 / 3) < 1e-6);
    /* flag 1 with no leaf is a bad target */
    float tb[K + 1] = {0, 0, 0, 0, 1};
    assert_int_equal(bmfm_loss_hce(&loss, NULL, z, tb, 1, K, 1), BMFM_E_INPUT);
    /* CE: out-of-range label fails, all-ignored gives NaN */
    int64_t bad[2] = {4, 0}, ign[2] = {BMFM_IGNORE_INDEX, BMFM_IGNORE_INDEX};
    assert_int_equal(bmfm_loss_ce(&loss, NULL, z, bad, 2, K, 1), BMFM_E_INPUT);
    assert_int_equal(bmfm_loss_focal(&loss, NULL, z, bad, 2, K, 2, 1), BMFM_E_INPUT);
    assert_int_equal(bmfm_loss_ce(&loss, NULL, z, ign, 2, K, 1), BMFM_OK);
    assert_true(isnan(loss));
    /* focal with gamma 0 is CE up to eps */
    int64_t l2[2] = {2, 0};
    double ce, fo;
    assert_int_equal(bmfm_loss_ce(&ce, NULL, z, l2, 2, K, 1), BMFM_OK);
    assert_int_equal(bmfm_loss_focal(&fo, NULL, z, l2, 2, K, 0, 1), BMFM_OK);
    assert_true(fabs(ce - fo) < 1e-6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses_match_torch_oracle),
        cmocka_unit_test(test_gradients_match_finite_differences),
        cmocka_unit_test(test_hce_semantics_and_stability),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
