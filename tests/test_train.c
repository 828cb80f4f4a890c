/* test_train.c - the training path: AdamW + clipping against
 * torch.optim.AdamW (tests/ref/adamw_oracle.py), the weight-decay groups of a
 * real model table, the learning-rate schedules, WCED targets and MLM
 * masking, a tiny pretraining run on real shared files (loss goes down, the
 * model directory loads back for inference, the run is deterministic), YAML
 * presets, and bad input (exit 2, no output). */
#include "test_util.h"

#include "base/alloc.h"
#include "data/targets.h"
#include "data/tokenize.h"
#include "infer/embed.h"
#include "model/model.h"
#include "train/adamw.h"
#include "train/schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PC_GENES "genes/bmfm_protein_coding_genes.json"
#define OBO "ontology/cl-basic_2022-12-15.obo"
#define ZHENG "h5ad/bmfm_zheng68k_165.h5ad"
#define PLACENTA "h5ad/bmfm_cellxgene_placenta_220.h5ad"

/* ---- AdamW vs torch ---------------------------------------------------------- */

static void test_adamw_matches_torch(void **state) {
    (void)state;
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", tu_scratch("adamw.bin"));
    assert_int_equal(tu_python("adamw_oracle.py %s", bin), 0);
    enum { N = 51, STEPS = 5 };
    float all[N + STEPS * (2 * N + 2)];
    FILE *f = fopen(bin, "rb");
    assert_non_null(f);
    assert_int_equal(fread(all, sizeof(float), sizeof all / sizeof(float), f), sizeof all / sizeof(float));
    fclose(f);
    bmfm_param_info info[4] = {
        {"model.core.encoder.blocks.0.attn.proj.weight", 2, {6, 4}, 0, 24, 1},
        {"model.core.embeddings.genes_embeddings.weight", 2, {5, 4}, 24, 20, 1},
        {"model.core.encoder.blocks.0.rms_2.scale", 1, {4, 0}, 44, 4, 1},
        {"model.core.embeddings.expressions_embeddings.basis", 1, {3, 0}, 48, 3, 0},
    };
    bmfm_param_table t = {info, 4, N};
    float p[N], g[N];
    memcpy(p, all, sizeof p);
    bmfm_adamw opt;
    assert_int_equal(bmfm_adamw_init(&opt, &t, 0.1), BMFM_OK);
    assert_true(opt.decay[0] && !opt.decay[1] && !opt.decay[2] && !opt.decay[3]);
    bmfm_schedule sch = {1e-2, 2, 5};
    const float *rec = all + N;
    for (int s = 0; s < STEPS; s++, rec += 2 * N + 2) {
        memcpy(g, rec, sizeof g);
        double lr = bmfm_schedule_lr(&sch, s);
        assert_true(tu_relerr(lr, rec[N], 1e-12) < 1e-6);
        double norm = bmfm_grad_clip(&t, g, 0.5);
        if (tu_relerr(norm, rec[N + 1], 1e-12) > 1e-6) fail_msg("step %d: grad norm %.8g, torch %.8g", s, norm, rec[N + 1]);
        bmfm_adamw_step(&opt, p, g, lr);
        const float *want = rec + N + 2;
        for (int i = 0; i < N; i++)
            if (fabs(p[i] - want[i]) > 2e-6 * fmax(1.0, fabs(want[i])))
                fail_msg("step %d: param %d = %.9g, torch %.9g", s, i, p[i], want[i]);
    }
    for (int i = 48; i < N; i++) assert_true(p[i] == all[i]); /* the basis never moves */
    bmfm_adamw_free(&opt);
}

static void test_clip_below_threshold_untouched(void **state) {
    (void)state;
    bmfm_param_info info[1] = {{"w", 2, {2, 2}, 0, 4, 1}};
    bmfm_param_table t = {info, 1, 4};
    float g[4] = {0.1f, -0.2f, 0.05f, 0.1f};
    double n = bmfm_grad_clip(&t, g, 0.5);
    assert_true(fabs(n - sqrt(0.01 + 0.04 + 0.0025 + 0.01)) < 1e-7);
    assert_true(g[1] == -0.2f);
    float h[4] = {3, 0, 0, 4};
    assert_true(fabs(bmfm_grad_clip(&t, h, 0.5) - 5.0) < 1e-12);
    assert_true(fabs(h[0] - 0.3f) < 1e-6 && fabs(h[3] - 0.4f) < 1e-6);
}

/* The decay groups of a real model table: exactly the Linear weights. */
static void test_decay_groups_of_model(void **state) {
    (void)state;
    bmfm_model_config cfg;
    bmfm_config_default(&cfg, 16, 2, 2, 60, 36);
    cfg.wced = 1;
    assert_int_equal(bmfm_config_add_label(&cfg, "cell_type", 5, 1, 0, 0.0f), BMFM_OK);
    bmfm_model m = {0};
    assert_int_equal(bmfm_model_create(&m, &cfg), BMFM_OK);
    int n_decay = 0;
    for (int i = 0; i < m.table.n; i++) {
        const bmfm_param_info *pi = &m.table.info[i];
        int d = bmfm_adamw_decays(pi);
        n_decay += d;
        int linear = strstr(pi->name, ".weight") && pi->ndim == 2 && !strstr(pi->name, "_embeddings.weight");
        if (d != linear) fail_msg("%s: decay %d", pi->name, d);
        if (strstr(pi->name, "basis")) assert_false(pi->trainable || d);
        if (strstr(pi->name, "LayerNorm") || strstr(pi->name, "scale") || strstr(pi->name, "bias")) assert_false(d);
    }
    /* expr dense + per block (c_attn, proj, fc1, fc2, c_proj) + pooler + transform + wced + label */
    assert_int_equal(n_decay, 1 + 2 * 5 + 1 + 1 + 1 + 1);
    bmfm_model_free(&m);
}

static void test_schedules(void **state) {
    (void)state;
    bmfm_schedule c = {1e-3, 4, 0};
    const double want_c[] = {0, 0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3};
    for (int s = 0; s < 7; s++) assert_true(fabs(bmfm_schedule_lr(&c, s) - want_c[s]) < 1e-15);
    bmfm_schedule d = {2.0, 2, 6}; /* warmup 2, then (6 - s) / 4 */
    const double want_d[] = {0, 1.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0};
    for (int s = 0; s < 8; s++) assert_true(fabs(bmfm_schedule_lr(&d, s) - want_d[s]) < 1e-15);
    bmfm_schedule z = {1.0, 0, 0};
    assert_true(bmfm_schedule_lr(&z, 0) == 1.0);
}

/* ---- targets ------------------------------------------------------------------- */

static void test_wced_targets(void **state) {
    (void)state;
    enum { V = 10 };
    /* var columns: 0 -> 5, 1 -> unmapped, 2 -> 7, 3 -> 5 (duplicate), 4 -> 8, 5 -> 9 */
    const int32_t v2t[6] = {5, -1, 7, 5, 8, 9};
    float base[V], out[V];
    double acc[V] = {0};
    bmfm_wced_base(base, V, v2t, 6);
    for (int j = 0; j < V; j++) assert_true(base[j] == ((j >= 5 && j != 6) ? 0.0f : -100.0f));
    const int32_t idx[4] = {0, 1, 3, 4};
    const float cnt[4] = {2, 100, 3, 1};
    assert_int_equal(bmfm_wced_target_row(out, base, V, v2t, idx, cnt, 4, acc), BMFM_OK);
    double S = 6; /* 2 + 3 + 1 on vocabulary genes; the unmapped 100 does not count */
    assert_true(out[5] == (float)log1p(5.0 / (S + 1) * 1e4));
    assert_true(out[8] == (float)log1p(1.0 / (S + 1) * 1e4));
    assert_true(out[7] == 0.0f && out[9] == 0.0f);  /* in the dataset, not expressed */
    assert_true(out[6] == -100.0f && out[0] == -100.0f); /* not in the dataset; special */
    for (int j = 0; j < V; j++) assert_true(acc[j] == 0);
    const float bad[1] = {-1};
    assert_int_not_equal(bmfm_wced_target_row(out, base, V, v2t, idx, bad, 1, acc), BMFM_OK);
}

static void test_mlm_masking(void **state) {
    (void)state;
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x), *orig = malloc(N * sizeof *orig), *lab = malloc(N * sizeof *lab);
    for (int i = 0; i < N; i++) orig[i] = x[i] = (i % 50 == 0) ? -4.0f : (float)(i % 7) * 0.5f;
    bmfm_mlm_opts o;
    bmfm_mlm_opts_default(&o);
    int64_t nl = bmfm_mlm_mask(x, lab, N, &o, 42, 3);
    int64_t masked = 0, kept = 0, n_spec = N / 50;
    for (int i = 0; i < N; i++) {
        if (orig[i] < 0) {
            assert_true(x[i] == orig[i] && lab[i] == -100.0f);
            continue;
        }
        if (lab[i] == -100.0f) assert_true(x[i] == orig[i]);
        else {
            assert_true(lab[i] == orig[i]);
            if (x[i] == -5.0f) masked++;
            else kept++;
        }
    }
    double n = N - n_spec;
    assert_int_equal(masked + kept, nl);
    if (fabs(nl / n - 0.15) > 0.004) fail_msg("labelled fraction %.4f", nl / n);
    if (fabs(masked / n - 0.1425) > 0.004) fail_msg("masked fraction %.4f", masked / n);
    /* same seed and cell: same mask; another cell: another */
    float *y = malloc(N * sizeof *y), *lab2 = malloc(N * sizeof *lab2);
    memcpy(y, orig, N * sizeof *y);
    bmfm_mlm_mask(y, lab2, N, &o, 42, 3);
    assert_memory_equal(y, x, N * sizeof *y);
    memcpy(y, orig, N * sizeof *y);
    bmfm_mlm_mask(y, lab2, N, &o, 42, 4);
    assert_true(memcmp(y, x, N * sizeof *y) != 0);
    free(x), free(orig), free(lab), free(y), free(lab2);
}

/* ---- a tiny real training run ------------------------------------------------- */

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static const char *TINY = "--hidden 32 --layers 2 --heads 2 --max-length 64 --batch-size 8 --steps 40 --lr 3e-3 "
                          "--warmup 5 --val-fraction 0.1 --val-cells 0 --log-every 10 --threads 2 --seed 7";

/* tu_data / tu_scratch return slots of a small ring: every path is copied
 * into a local buffer before more are asked for (an overwritten slot once
 * made --out name a shared data file). */
#define LOCAL(buf, expr) snprintf(buf, sizeof buf, "%s", expr)

static int pretrain(char **log, const char *out_path, const char *extra) {
    char out[4096];
    LOCAL(out, out_path);
    return tu_capture(log,
                      "%s pretrain --data %s,%s --vocab %s --label-column cell_type_ontology_term_id --ontology %s "
                      "%s %s --out %s",
                      tu_bmfm_bin(), tu_data(ZHENG), tu_data(PLACENTA), tu_data(PC_GENES), tu_data(OBO), TINY, extra,
                      out);
}

static void test_tiny_run_learns_and_loads(void **state) {
    (void)state;
    char out[4096], emb[4096];
    LOCAL(out, tu_scratch("tiny_model"));
    LOCAL(emb, tu_scratch("tiny_emb.h5ad"));
    tu_system("rm -rf %s", out);
    char *log = NULL;
    int rc = pretrain(&log, out, "");
    if (rc != 0) fail_msg("pretrain failed (%d):\n%s", rc, log);
    /* "train loss A -> B; held-out loss C -> D" */
    const char *p = strstr(log, "train loss ");
    assert_non_null(p);
    double a, b, c, d;
    assert_int_equal(sscanf(p, "train loss %lf -> %lf; held-out loss %lf -> %lf", &a, &b, &c, &d), 4);
    if (!(b < a && d < 0.95 * c)) fail_msg("loss did not go down: train %g -> %g, held-out %g -> %g\n%s", a, b, c, d, log);
    free(log);
    /* the directory loads for inference with its label head and template */
    bmfm_infer_model *m = NULL;
    assert_int_equal(bmfm_infer_model_load(out, NULL, &m), BMFM_OK);
    assert_int_equal(m->model.cfg.C, 32);
    assert_int_equal(m->model.cfg.NL, 2);
    assert_int_equal(m->model.cfg.V, 19321);
    assert_int_equal(m->model.cfg.n_special, 36);
    assert_true(m->model.cfg.wced);
    assert_int_equal(m->n_labels, 1);
    assert_int_equal(m->labels[0].n_classes, 24); /* 33 observed CL types pruned to their leaves */
    assert_true(m->labels[0].is_ontology);
    assert_string_equal(m->labels[0].classes[0], "CL:0000049");
    assert_int_equal(m->tok.n_prefix, 2); /* [CLS] [CLS_0] */
    assert_int_equal(m->tok.prefix[0], 3);
    assert_int_equal(m->tok.prefix[1], 5);
    assert_int_equal(m->tok.sep_id, 1);
    bmfm_infer_model_free(m);
    /* embed runs on a file the model never saw */
    char *elog = NULL;
    rc = tu_capture(&elog, "%s embed %s -m %s -o %s", tu_bmfm_bin(), tu_data("h5ad/scvi_pbmc_5k_protein_v3_200.h5ad"),
                    out, emb);
    if (rc != 0) fail_msg("embed failed:\n%s", elog);
    free(elog);
}

static void test_deterministic_and_inference_model(void **state) {
    (void)state;
    char a[4096], b[4096];
    LOCAL(a, tu_scratch("det_a"));
    LOCAL(b, tu_scratch("det_b"));
    char *log = NULL;
    tu_system("rm -rf %s %s", a, b);
    assert_int_equal(pretrain(&log, a, "--steps 6"), 0);
    free(log);
    assert_int_equal(pretrain(&log, b, "--steps 6 --inference-model"), 0);
    free(log);
    /* the inference model is the same weights minus the WCED decoder */
    bmfm_infer_model *ma = NULL, *mb = NULL;
    assert_int_equal(bmfm_infer_model_load(a, NULL, &ma), BMFM_OK);
    assert_int_equal(bmfm_infer_model_load(b, NULL, &mb), BMFM_OK);
    assert_false(mb->model.cfg.wced);
    assert_int_equal(ma->model.table.n, mb->model.table.n + 6); /* transform (4) + WCED decoder (2) */
    for (int i = 0; i < mb->model.table.n; i++) {
        const bmfm_param_info *pi = &mb->model.table.info[i];
        int j = bmfm_param_table_find(&ma->model.table, pi->name);
        assert_true(j >= 0);
        if (memcmp(mb->model.param_mem + pi->offset, ma->model.param_mem + ma->model.table.info[j].offset,
                   (size_t)pi->numel * sizeof(float)) != 0)
            fail_msg("%s differs between two runs with the same seed", pi->name);
    }
    bmfm_infer_model_free(ma);
    bmfm_infer_model_free(mb);
}

static void test_yaml_preset(void **state) {
    (void)state;
    char y[4096], out[4096];
    LOCAL(y, tu_scratch("preset.yaml"));
    LOCAL(out, tu_scratch("yaml_model"));
    FILE *f = fopen(y, "w");
    fprintf(f, "hidden: 16\nlayers: 1\nheads: 2\nmax-length: 32\nsteps: 2\nbatch-size: 4\nmlm: true\n");
    fclose(f);
    char *log = NULL;
    tu_system("rm -rf %s", out);
    int rc = tu_capture(&log, "%s pretrain --config %s --data %s --vocab %s --steps 3 --out %s", tu_bmfm_bin(), y,
                        tu_data(ZHENG), tu_data(PC_GENES), out);
    if (rc != 0) fail_msg("%s", log);
    assert_non_null(strstr(log, "3 steps")); /* the command line wins over the preset */
    assert_non_null(strstr(log, "mlm_mse"));
    free(log);
    size_t n;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", out);
    char *cfg = read_all(path, &n);
    assert_non_null(cfg);
    assert_non_null(strstr(cfg, "\"hidden_size\":\t16"));
    assert_non_null(strstr(cfg, "\"regression\""));
    free(cfg);
    /* the shipped presets parse (--help after them stops before training) */
    assert_int_equal(tu_system("%s pretrain --config configs/tiny.yaml --help > /dev/null", tu_bmfm_bin()), 0);
    assert_int_equal(tu_system("%s pretrain --config configs/47m.yaml --help > /dev/null", tu_bmfm_bin()), 0);
}

/* ---- bad input -------------------------------------------------------------------- */

static void expect_exit2(const char *what, const char *args, const char *needle) {
    char out[4096];
    LOCAL(out, tu_scratch("bad_model"));
    tu_system("rm -rf %s", out);
    char *log = NULL;
    int rc = tu_capture(&log, "%s pretrain %s --out %s", tu_bmfm_bin(), args, out);
    if (rc != 2) fail_msg("%s: exit %d, expected 2:\n%s", what, rc, log);
    if (needle && !strstr(log, needle)) fail_msg("%s: message lacks '%s':\n%s", what, needle, log);
    struct stat sb;
    if (stat(out, &sb) == 0) fail_msg("%s: an output directory was written", what);
    free(log);
}

static void test_bad_input(void **state) {
    (void)state;
    char args[8192];
    char fake[4096], y[4096];
    LOCAL(fake, tu_scratch("fake_genes.txt"));
    LOCAL(y, tu_scratch("bad.yaml"));
    FILE *f = fopen(fake, "w");
    fprintf(f, "NOTAGENE1\nNOTAGENE2\n");
    fclose(f);
    snprintf(args, sizeof args, "--data /nonexistent.h5ad --vocab %s", tu_data(PC_GENES));
    expect_exit2("missing file", args, "nonexistent");
    snprintf(args, sizeof args, "--data %s --vocab %s", tu_data(ZHENG), fake);
    expect_exit2("no overlap", args, "no gene overlaps");
    snprintf(args, sizeof args, "--data %s --vocab %s", tu_data("h5ad/scgen_kang_pbmc_ifnb_valid_1975.h5ad"),
             tu_data(PC_GENES));
    expect_exit2("log-normalized input", args, "raw count");
    snprintf(args, sizeof args, "--data %s --vocab %s --hidden 30 --heads 4", tu_data(ZHENG), tu_data(PC_GENES));
    expect_exit2("hidden not a multiple of heads", args, "multiple");
    snprintf(args, sizeof args, "--data %s --vocab %s --bogus", tu_data(ZHENG), tu_data(PC_GENES));
    expect_exit2("unknown option", args, NULL);
    snprintf(args, sizeof args, "--data %s --vocab %s --steps -3", tu_data(ZHENG), tu_data(PC_GENES));
    expect_exit2("negative steps", args, NULL);
    snprintf(args, sizeof args, "--data %s --vocab %s --label-weight 0", tu_data(ZHENG), tu_data(PC_GENES));
    expect_exit2("zero label weight", args, "label weight");
    snprintf(args, sizeof args, "--data %s --vocab %s --label-column cell_type_ontology_term_id", tu_data(ZHENG),
             tu_data(PC_GENES));
    expect_exit2("label column without ontology", args, "--ontology");
    snprintf(args, sizeof args, "--data %s --vocab %s --label-column nosuchcolumn --ontology %s", tu_data(ZHENG),
             tu_data(PC_GENES), tu_data(OBO));
    expect_exit2("missing label column", args, "nosuchcolumn");
    f = fopen(y, "w");
    fprintf(f, "hidden: 16\nnot_an_option: 3\n");
    fclose(f);
    snprintf(args, sizeof args, "--config %s --data %s --vocab %s", y, tu_data(ZHENG), tu_data(PC_GENES));
    expect_exit2("unknown preset key", args, "not_an_option");
    snprintf(args, sizeof args, "--data %s", tu_data(ZHENG));
    expect_exit2("no vocabulary", args, "--vocab");
    /* --out naming a file or a foreign directory: refused, left untouched */
    char victim[4096], dir[4096], *log = NULL;
    LOCAL(victim, tu_scratch("precious.txt"));
    LOCAL(dir, tu_scratch("precious_dir"));
    f = fopen(victim, "w");
    fprintf(f, "keep me\n");
    fclose(f);
    tu_system("mkdir -p %s && echo x > %s/file", dir, dir);
    const char *targets[2] = {victim, dir};
    for (int i = 0; i < 2; i++) {
        int rc = tu_capture(&log, "%s pretrain --data %s --vocab %s --steps 1 --out %s", tu_bmfm_bin(), tu_data(ZHENG),
                            tu_data(PC_GENES), targets[i]);
        if (rc != 2 || !strstr(log, "refusing")) fail_msg("--out %s: exit %d\n%s", targets[i], rc, log);
        free(log);
    }
    assert_int_equal(tu_system("grep -q 'keep me' %s && test -f %s/file", victim, dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_matches_torch),
        cmocka_unit_test(test_clip_below_threshold_untouched),
        cmocka_unit_test(test_decay_groups_of_model),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_wced_targets),
        cmocka_unit_test(test_mlm_masking),
        cmocka_unit_test(test_tiny_run_learns_and_loads),
        cmocka_unit_test(test_deterministic_and_inference_model),
        cmocka_unit_test(test_yaml_preset),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
