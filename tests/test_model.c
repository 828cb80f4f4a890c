/* test_model.c - the encoder and heads against the PyTorch oracle
 * (tests/ref/llama_ref.py): forward outputs (every hidden state, embeddings,
 * head outputs) to 1e-5 and all parameter gradients to 1e-4 relative to the
 * tensor scale, for the 47M-style variant (CLS + CLS_0..3, WCED, label heads
 * on raw [CLS_k]) and the 32M-style variant (pooler label heads with GRL,
 * MLM heads), the same with the v1 MLP expression encoder; recomputation gives the same gradients; a cell embedded alone
 * or in a batch, with 1 or 2 threads, is bit-identical; a training step
 * reads no activation it did not write (poisoned arena) and gives the same
 * gradient bits with 1, 2 and 3 threads; broken model
 * directories give errors naming the tensor; save + reload round trip. */
#include "test_util.h"

#include "base/alloc.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/encoder.h"
#include "model/heads.h"
#include "nn/loss_expr.h"
#include "nn/loss_label.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_case {
    char dir[1024];
    bmfm_safetensors st;
    bmfm_model m;
    int64_t B, N;
    int64_t *cu;
    int32_t *ids;
    float *expr, *mlm_target, *wced_target;
    int64_t *label_class[8];
} ref_case;

static float *ref_get(ref_case *rc, const char *name, int64_t *numel) {
    const bmfm_st_tensor *t = bmfm_safetensors_find(&rc->st, name);
    if (!t) fail_msg("reference tensor %s missing", name);
    float *x = malloc((size_t)t->numel * sizeof(float));
    assert_int_equal(bmfm_safetensors_read_f32(&rc->st, t, x), BMFM_OK);
    if (numel) *numel = t->numel;
    return x;
}

static void ref_setup(ref_case *rc, const char *variant) {
    memset(rc, 0, sizeof *rc);
    snprintf(rc->dir, sizeof rc->dir, "%s", tu_scratch(variant));
    static char made[3][16]; /* the oracle runs once per variant and process */
    int slot = strcmp(variant, "47m") == 0 ? 0 : strcmp(variant, "32m") == 0 ? 1 : 2;
    if (strcmp(made[slot], variant) != 0) {
        assert_int_equal(tu_python("llama_ref.py make %s --variant %s --seed 7", rc->dir, variant), 0);
        snprintf(made[slot], sizeof made[slot], "%s", variant);
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/ref.safetensors", rc->dir);
    assert_int_equal(bmfm_safetensors_open(&rc->st, path), BMFM_OK);
    snprintf(path, sizeof path, "%s/model", rc->dir);
    bmfm_status s = bmfm_checkpoint_load(&rc->m, path);
    if (s) fail_msg("load: %s", bmfm_error_message());
    int64_t n;
    float *cu = ref_get(rc, "in.cu_seqlens", &n);
    rc->B = n - 1;
    rc->cu = malloc((size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) rc->cu[i] = (int64_t)cu[i];
    free(cu);
    float *ids = ref_get(rc, "in.gene_ids", &rc->N);
    rc->ids = malloc((size_t)rc->N * sizeof(int32_t));
    for (int64_t i = 0; i < rc->N; i++) rc->ids[i] = (int32_t)ids[i];
    free(ids);
    rc->expr = ref_get(rc, "in.expr", NULL);
    rc->mlm_target = ref_get(rc, "in.mlm_target", NULL);
    rc->wced_target = ref_get(rc, "in.wced_target", NULL);
    for (int i = 0; i < rc->m.cfg.n_labels; i++) {
        char nm[256];
        snprintf(nm, sizeof nm, "in.label.%s", rc->m.cfg.labels[i].name);
        float *y = ref_get(rc, nm, NULL);
        rc->label_class[i] = malloc((size_t)rc->B * sizeof(int64_t));
        for (int64_t b = 0; b < rc->B; b++) rc->label_class[i][b] = (int64_t)y[b];
        free(y);
    }
}

static void ref_teardown(ref_case *rc) {
    bmfm_model_free(&rc->m);
    bmfm_safetensors_close(&rc->st);
    free(rc->cu);
    free(rc->ids);
    free(rc->expr);
    free(rc->mlm_target);
    free(rc->wced_target);
    for (int i = 0; i < 8; i++) free(rc->label_class[i]);
}

static bmfm_batch ref_batch(const ref_case *rc) {
    bmfm_batch b = {0};
    b.B = rc->B;
    b.N = rc->N;
    b.cu_seqlens = rc->cu;
    b.gene_ids = rc->ids;
    b.expr = rc->expr;
    b.wced_target = rc->wced_target;
    b.mlm_target = rc->mlm_target;
    return b;
}

static void expect_close(ref_case *rc, const char *name, const float *got, int64_t n, double tol) {
    int64_t rn;
    if (strncmp(name, "grad.", 5) == 0 && !bmfm_safetensors_find(&rc->st, name)) {
        for (int64_t i = 0; i < n; i++) /* unused by the loss: PyTorch has no gradient */
            if (got[i] != 0.0f) fail_msg("%s: nonzero gradient for a parameter the loss does not use", name);
        return;
    }
    float *want = ref_get(rc, name, &rn);
    assert_int_equal(rn, n);
    double err = tu_max_scaled_err_f32(got, want, (size_t)n);
    if (!(err <= tol)) fail_msg("%s: max error %.3g relative to the tensor scale (tolerance %.1g)", name, err, tol);
    free(want);
}

/* The combined loss of the oracle: sum w_i L_i / sum w_i; fills the head
 * output gradients in m->a. Returns the total. */
static double combined_loss(ref_case *rc, double *terms) {
    bmfm_model *m = &rc->m;
    const bmfm_model_config *c = &m->cfg;
    bmfm_acts *a = &m->a;
    double wsum = 0;
    int nt = 0;
    if (c->wced) wsum += 2;
    if (c->mlm_regression) wsum += 2.5;
    for (int i = 0; i < c->n_labels; i++) wsum += c->labels[i].has_grl ? 0.05 : 1.0;
    double total = 0, l1, l2;
    if (c->wced) {
        memset(a->dwced_out, 0, (size_t)(rc->B * 2 * c->V) * sizeof(float));
        bmfm_wced_loss(&l1, &l2, a->dwced_out, a->wced_out, rc->wced_target, rc->B, c->V, c->wced_n_out,
                       c->wced_mse_idx, c->wced_bce_idx, (float)(1 / wsum), (float)(1 / wsum));
        terms[nt++] = l1;
        terms[nt++] = l2;
        total += l1 + l2;
    }
    if (c->mlm_regression) {
        memset(a->dmlm_reg, 0, (size_t)rc->N * sizeof(float));
        memset(a->dmlm_iz, 0, (size_t)rc->N * sizeof(float));
        bmfm_mlm_loss(&l1, &l2, a->dmlm_reg, a->dmlm_iz, a->mlm_reg, a->mlm_iz, rc->mlm_target, rc->N,
                      (float)(1 / wsum), (float)(1.5 / wsum));
        terms[nt++] = l1;
        terms[nt++] = l2;
        total += l1 + 1.5 * l2;
    }
    for (int i = 0; i < c->n_labels; i++) {
        double w = c->labels[i].has_grl ? 0.05 : 1.0;
        int64_t K = c->labels[i].n_classes;
        memset(a->dlogits[i], 0, (size_t)(rc->B * K) * sizeof(float));
        double l;
        assert_int_equal(bmfm_loss_ce(&l, a->dlogits[i], a->logits[i], rc->label_class[i], rc->B, K, (float)(w / wsum)), BMFM_OK);
        terms[nt++] = l;
        total += w * l;
    }
    return total / wsum;
}

static const bmfm_head_sel ALL = {1, 1, 1};

static void run_parity(const char *variant, int recompute) {
    ref_case rc;
    ref_setup(&rc, variant);
    bmfm_model *m = &rc.m;
    const bmfm_model_config *c = &m->cfg;
    assert_int_equal(bmfm_model_alloc_grads(m), BMFM_OK);
    assert_int_equal(bmfm_model_alloc_acts(m, rc.N, rc.B, 1, recompute, 0), BMFM_OK);
    bmfm_batch b = ref_batch(&rc);
    assert_int_equal(bmfm_encoder_forward(m, &b), BMFM_OK);
    assert_int_equal(bmfm_heads_forward(m, ALL), BMFM_OK);
    char nm[512];
    for (int l = -1; l < c->NL; l++) {
        snprintf(nm, sizeof nm, "out.hidden.%d", l);
        expect_close(&rc, nm, bmfm_encoder_hidden(m, l), rc.N * c->C, 1e-5);
    }
    expect_close(&rc, "out.first_token", m->a.z0, rc.B * c->C, 1e-5);
    expect_close(&rc, "out.pooler", m->a.pool, rc.B * c->C, 1e-5);
    float *mean = calloc((size_t)(rc.B * c->C), sizeof(float));
    const float *z = bmfm_encoder_output(m);
    for (int64_t bb = 0; bb < rc.B; bb++) {
        for (int64_t n = rc.cu[bb] + 1; n < rc.cu[bb + 1]; n++)
            for (int64_t k = 0; k < c->C; k++) mean[bb * c->C + k] += z[n * c->C + k];
        for (int64_t k = 0; k < c->C; k++) mean[bb * c->C + k] /= (float)(rc.cu[bb + 1] - rc.cu[bb] - 1);
    }
    expect_close(&rc, "out.mean", mean, rc.B * c->C, 1e-5);
    free(mean);
    if (c->wced) expect_close(&rc, "out.wced", m->a.wced_out, rc.B * 2 * c->V, 1e-5);
    if (c->mlm_regression) {
        expect_close(&rc, "out.mlm_reg", m->a.mlm_reg, rc.N, 1e-5);
        expect_close(&rc, "out.mlm_iz", m->a.mlm_iz, rc.N, 1e-5);
    }
    for (int i = 0; i < c->n_labels; i++) {
        snprintf(nm, sizeof nm, "out.logits.%s", c->labels[i].name);
        expect_close(&rc, nm, m->a.logits[i], rc.B * c->labels[i].n_classes, 1e-5);
    }
    double terms[16];
    double total = combined_loss(&rc, terms);
    float *want = ref_get(&rc, "loss.total", NULL);
    if (fabs(total - want[0]) > 1e-5 * fabs(want[0])) fail_msg("loss %.8g, oracle %.8g", total, want[0]);
    free(want);
    bmfm_model_zero_grads(m);
    assert_int_equal(bmfm_heads_backward(m, ALL), BMFM_OK);
    assert_int_equal(bmfm_encoder_backward(m), BMFM_OK);
    int compared = 0;
    for (int i = 0; i < m->table.n; i++) {
        const bmfm_param_info *pi = &m->table.info[i];
        if (!pi->trainable) continue;
        snprintf(nm, sizeof nm, "grad.%s", pi->name);
        expect_close(&rc, nm, m->grad_mem + pi->offset, pi->numel, 1e-4);
        compared++;
    }
    assert_true(compared > 20);
    ref_teardown(&rc);
}

static void test_parity_47m_wced_cls_heads(void **state) {
    (void)state;
    run_parity("47m", 0);
}

static void test_parity_32m_mlm_pooler_grl(void **state) {
    (void)state;
    run_parity("32m", 0);
}

static void test_parity_mlp_expression_encoder(void **state) {
    (void)state;
    run_parity("mlp", 0);
}

static void test_parity_with_recomputation(void **state) {
    (void)state;
    run_parity("47m", 1);
}

/* Forward only, inference arena; returns a copy of z. */
static float *embed(bmfm_model *m, const bmfm_batch *b) {
    assert_int_equal(bmfm_model_alloc_acts(m, 4096, 64, 0, 0, 0), BMFM_OK);
    assert_int_equal(bmfm_encoder_forward(m, b), BMFM_OK);
    float *z = malloc((size_t)(b->N * m->cfg.C) * sizeof(float));
    memcpy(z, bmfm_encoder_output(m), (size_t)(b->N * m->cfg.C) * sizeof(float));
    return z;
}

static void test_alone_or_batched_and_threads_bit_identical(void **state) {
    (void)state;
    ref_case rc;
    ref_setup(&rc, "47m");
    bmfm_model *m = &rc.m;
    int64_t C = m->cfg.C;
    bmfm_batch b = ref_batch(&rc);
    int nt0 = omp_get_max_threads();
    omp_set_num_threads(1);
    float *z1 = embed(m, &b);
    omp_set_num_threads(2);
    float *z2 = embed(m, &b);
    omp_set_num_threads(nt0);
    assert_memory_equal(z1, z2, (size_t)(rc.N * C) * sizeof(float));
    for (int64_t cell = 0; cell < rc.B; cell++) {
        int64_t s = rc.cu[cell], n = rc.cu[cell + 1] - s;
        int64_t cu1[2] = {0, n};
        bmfm_batch one = {0};
        one.B = 1;
        one.N = n;
        one.cu_seqlens = cu1;
        one.gene_ids = rc.ids + s;
        one.expr = rc.expr + s;
        float *za = embed(m, &one);
        if (memcmp(za, z1 + s * C, (size_t)(n * C) * sizeof(float)) != 0)
            fail_msg("cell %lld: embedding alone differs from the batched one", (long long)cell);
        free(za);
        assert_int_equal(bmfm_heads_forward(m, ALL), BMFM_OK);
        int64_t W = 2 * m->cfg.V, K0 = m->cfg.labels[0].n_classes;
        float *pool = malloc((size_t)C * 4), *wced = malloc((size_t)W * 4), *lg = malloc((size_t)K0 * 4);
        memcpy(pool, m->a.pool, (size_t)C * 4);
        memcpy(wced, m->a.wced_out, (size_t)W * 4);
        memcpy(lg, m->a.logits[0], (size_t)K0 * 4);
        free(embed(m, &b));
        assert_int_equal(bmfm_heads_forward(m, ALL), BMFM_OK);
        if (memcmp(pool, m->a.pool + cell * C, (size_t)C * 4) || memcmp(wced, m->a.wced_out + cell * W, (size_t)W * 4) ||
            memcmp(lg, m->a.logits[0] + cell * K0, (size_t)K0 * 4))
            fail_msg("cell %lld: head outputs alone differ from the batched ones (pool %d wced %d logits %d)", (long long)cell,
                     memcmp(pool, m->a.pool + cell * C, (size_t)C * 4) != 0, memcmp(wced, m->a.wced_out + cell * W, (size_t)W * 4) != 0,
                     memcmp(lg, m->a.logits[0] + cell * K0, (size_t)K0 * 4) != 0);
        free(pool);
        free(wced);
        free(lg);
    }
    free(z1);
    free(z2);
    ref_teardown(&rc);
}

/* One training step (forward, oracle loss, backward) with nt threads, the
 * activation arena first filled with poison (NaN bytes) or zeros; returns a
 * copy of the gradient arena. A read of an activation that the step did not
 * write turns into NaN or a bit difference in the gradients. */
static float *train_step_grads(ref_case *rc, int nt, int poison) {
    bmfm_model *m = &rc->m;
    assert_int_equal(bmfm_model_alloc_grads(m), BMFM_OK);
    assert_int_equal(bmfm_model_alloc_acts(m, rc->N + 37, rc->B + 3, 1, 0, 0), BMFM_OK);
    memset(m->a.mem, poison ? 0xFF : 0, (size_t)m->a.total * sizeof(float));
    int nt0 = omp_get_max_threads();
    omp_set_num_threads(nt);
    bmfm_batch b = ref_batch(rc);
    double terms[16];
    assert_int_equal(bmfm_encoder_forward(m, &b), BMFM_OK);
    assert_int_equal(bmfm_heads_forward(m, ALL), BMFM_OK);
    double total = combined_loss(rc, terms);
    bmfm_model_zero_grads(m);
    assert_int_equal(bmfm_heads_backward(m, ALL), BMFM_OK);
    assert_int_equal(bmfm_encoder_backward(m), BMFM_OK);
    omp_set_num_threads(nt0);
    assert_true(isfinite(total));
    size_t bytes = (size_t)m->table.total * sizeof(float);
    float *g = malloc(bytes);
    memcpy(g, m->grad_mem, bytes);
    for (int64_t i = 0; i < m->table.total; i++)
        if (!isfinite(g[i])) fail_msg("gradient element %lld is not finite (nt=%d poison=%d)", (long long)i, nt, poison);
    return g;
}

/* Regression for a one-off crash in the first training step of the bench:
 * the training step must not read activations it has not written (the arena
 * is larger than the batch and poisoned) and must give the same gradient bits
 * with 1, 2 and 3 threads. */
static void test_training_step_poisoned_arena_and_threads_bit_identical(void **state) {
    (void)state;
    const char *variants[2] = {"47m", "32m"};
    for (int v = 0; v < 2; v++) {
        ref_case rc;
        ref_setup(&rc, variants[v]);
        float *g1 = train_step_grads(&rc, 1, 0);
        for (int nt = 1; nt <= 3; nt++) {
            float *g = train_step_grads(&rc, nt, 1);
            if (memcmp(g, g1, (size_t)rc.m.table.total * sizeof(float)) != 0)
                fail_msg("%s: gradients with %d thread(s) and a poisoned arena differ from 1 thread, zeroed arena",
                         variants[v], nt);
            free(g);
        }
        free(g1);
        ref_teardown(&rc);
    }
}

static void expect_load_error(const char *model_dir, const char *kind, const char *needle) {
    char out[1200];
    snprintf(out, sizeof out, "%s-%s", model_dir, kind);
    assert_int_equal(tu_python("llama_ref.py corrupt %s %s %s", model_dir, out, kind), 0);
    bmfm_model m;
    bmfm_status s = bmfm_checkpoint_load(&m, out);
    assert_int_not_equal(s, BMFM_OK);
    if (!strstr(bmfm_error_message(), needle)) fail_msg("%s: message '%s' does not name %s", kind, bmfm_error_message(), needle);
}

static void test_broken_model_dirs_name_the_tensor(void **state) {
    (void)state;
    char mdir[1200];
    snprintf(mdir, sizeof mdir, "%s", tu_scratch("broken"));
    assert_int_equal(tu_python("llama_ref.py make %s --variant 47m --seed 3", mdir), 0);
    strcat(mdir, "/model");
    expect_load_error(mdir, "missing", "missing tensor model.core.encoder.blocks.1.rms_1.scale");
    expect_load_error(mdir, "shape", "model.core.encoder.blocks.0.attn.proj.weight has shape [63, 64], expected [64, 64]");
    expect_load_error(mdir, "dtype", "model.core.pooler.dense.bias has dtype I64");
    expect_load_error(mdir, "extra", "unexpected tensor model.core.encoder.blocks.0.rms_1.scale");
    bmfm_model m;
    assert_int_not_equal(bmfm_checkpoint_load(&m, "/nonexistent/model"), BMFM_OK);
}

static void test_save_reload_round_trip_and_init(void **state) {
    (void)state;
    ref_case rc;
    ref_setup(&rc, "47m");
    const char *out = tu_scratch("saved");
    assert_int_equal(bmfm_checkpoint_save(&rc.m, out), BMFM_OK);
    bmfm_model m2;
    bmfm_status s = bmfm_checkpoint_load(&m2, out);
    if (s) fail_msg("reload: %s", bmfm_error_message());
    assert_int_equal(m2.table.n, rc.m.table.n);
    assert_memory_equal(m2.param_mem, rc.m.param_mem, (size_t)rc.m.table.total * sizeof(float));
    assert_int_equal(m2.cfg.n_labels, 3);
    assert_int_equal(m2.cfg.labels[0].decode_from, 1);
    assert_string_equal(m2.cfg.labels[1].class_names[2], "tissue_2");
    assert_true(m2.cfg.wced && m2.cfg.V == 300 && m2.cfg.F == 256 && m2.cfg.n_spec_rows == 37);
    /* n_unique_values null: the class count comes from label_dict, else from the weights */
    assert_int_equal(tu_system("/usr/bin/python3 -c \"import json; p='%s/config.json'; c=json.load(open(p)); "
                               "c['label_columns'][1]['n_unique_values']=None; json.dump(c, open(p, 'w'))\"", out), 0);
    bmfm_model m3;
    assert_int_equal(bmfm_checkpoint_load(&m3, out), BMFM_OK);
    assert_int_equal(m3.cfg.labels[1].n_classes, 4);
    bmfm_model_free(&m3);
    assert_int_equal(tu_system("rm %s/checkpoint_metadata.json", out), 0);
    assert_int_equal(bmfm_checkpoint_load(&m3, out), BMFM_OK);
    assert_int_equal(m3.cfg.labels[1].n_classes, 4);
    assert_null(m3.cfg.labels[1].class_names);
    bmfm_model_free(&m3);
    /* init: deterministic, PyTorch-default statistics, padding rows zero */
    bmfm_model_init(&m2, 42);
    float *a = malloc((size_t)m2.table.total * sizeof(float));
    memcpy(a, m2.param_mem, (size_t)m2.table.total * sizeof(float));
    bmfm_model_init(&m2, 42);
    assert_memory_equal(a, m2.param_mem, (size_t)m2.table.total * sizeof(float));
    free(a);
    for (int64_t k = 0; k < m2.cfg.C; k++) assert_true(m2.p.gene_emb[2 * m2.cfg.C + k] == 0.0f);
    assert_true(m2.p.basis[0] == (float)(2 * M_PI * 0.01) && m2.p.basis[47] == (float)(2 * M_PI * 0.01) * ldexpf(1, 47));
    double bound = 1 / sqrt((double)m2.cfg.C), mx = 0;
    for (int64_t k = 0; k < 3 * m2.cfg.C * m2.cfg.C; k++) mx = fmax(mx, fabs(m2.p.blocks[0].c_attn[k]));
    assert_true(mx <= bound && mx > 0.9 * bound);
    assert_true(m2.p.wced_b[5] == 0.0f && m2.p.blocks[1].rms1[3] == 1.0f);
    bmfm_model_free(&m2);
    ref_teardown(&rc);
}

static void test_new_model_save_load(void **state) {
    (void)state;
    bmfm_model_config cfg;
    bmfm_config_default(&cfg, 32, 2, 2, 100, 36);
    cfg.mlm_regression = cfg.mlm_is_zero = 1;
    assert_int_equal(bmfm_config_add_label(&cfg, "cell_type", 7, -1, 0, 0.0f), BMFM_OK);
    assert_int_equal(bmfm_config_add_label(&cfg, "donor_id", 5, -1, 0, 1.0f), BMFM_OK);
    bmfm_model m, m2;
    assert_int_equal(bmfm_model_create(&m, &cfg), BMFM_OK);
    assert_true(bmfm_param_table_find(&m.table, "model.cls.label_predictions.predictions.label_decoders.donor_id.decoder.1.weight") >= 0);
    assert_true(bmfm_param_table_find(&m.table, "model.core.encoder.blocks.0.rms_1.scale") < 0);
    bmfm_model_init(&m, 3);
    const char *dir = tu_scratch("new");
    assert_int_equal(bmfm_checkpoint_save(&m, dir), BMFM_OK);
    bmfm_status s = bmfm_checkpoint_load(&m2, dir);
    if (s) fail_msg("%s", bmfm_error_message());
    assert_int_equal(m2.table.total, m.table.total);
    assert_memory_equal(m2.param_mem, m.param_mem, (size_t)m.table.total * sizeof(float));
    assert_true(m2.cfg.mlm_regression && m2.cfg.mlm_is_zero && !m2.cfg.wced && m2.cfg.n_labels == 2);
    assert_true(m2.cfg.labels[1].has_grl && m2.cfg.labels[1].grl_coef == 1.0f && m2.cfg.labels[0].decode_from == -1);
    assert_true(m2.cfg.basis_scale == 0.01 && m2.cfg.n_sin_basis == 48 && m2.cfg.F == 256);
    bmfm_model_free(&m);
    bmfm_model_free(&m2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_47m_wced_cls_heads),
        cmocka_unit_test(test_parity_32m_mlm_pooler_grl),
        cmocka_unit_test(test_parity_mlp_expression_encoder),
        cmocka_unit_test(test_parity_with_recomputation),
        cmocka_unit_test(test_alone_or_batched_and_threads_bit_identical),
        cmocka_unit_test(test_training_step_poisoned_arena_and_threads_bit_identical),
        cmocka_unit_test(test_broken_model_dirs_name_the_tensor),
        cmocka_unit_test(test_save_reload_round_trip_and_init),
        cmocka_unit_test(test_new_model_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
