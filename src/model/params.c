/* params.c - parameter table and typed views (see params.h). */
#include "model/params.h"

#include "base/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P "model."
#define EMB P "core.encoder.embeddings."
#define EXPR EMB "expressions_embeddings."
#define HEAD P "cls.predictions.predictions."
#define DEC HEAD "decoder.field_decoders.expressions_"
#define LAB P "cls.label_predictions.predictions.label_decoders."

static bmfm_status add(bmfm_param_table *t, int *cap, const char *name, int64_t d0, int64_t d1, int trainable) {
    if (t->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        bmfm_param_info *ni = bmfm_realloc(t->info, (size_t)*cap * sizeof *ni);
        if (!ni) return BMFM_E_NOMEM;
        t->info = ni;
    }
    bmfm_param_info *p = &t->info[t->n];
    p->name = bmfm_strdup(name);
    if (!p->name) return BMFM_E_NOMEM;
    p->ndim = d1 > 0 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 > 0 ? d1 : 0;
    p->numel = d0 * (d1 > 0 ? d1 : 1);
    p->offset = t->total;
    p->trainable = trainable;
    t->total += (p->numel + 15) / 16 * 16; /* every view 64-byte aligned */
    t->n++;
    return BMFM_OK;
}

bmfm_status bmfm_param_table_build(bmfm_param_table *t, const bmfm_model_config *cfg) {
    memset(t, 0, sizeof *t);
    int cap = 0;
    bmfm_status s = BMFM_OK;
    int64_t C = cfg->C, F = cfg->F;
    char nm[512];
#define ADD(name, d0, d1, tr)                                                  \
    do {                                                                       \
        if ((s = add(t, &cap, name, d0, d1, tr)) != BMFM_OK) goto fail;        \
    } while (0)
    ADD(EMB "genes_embeddings.weight", cfg->V, C, 1);
    if (cfg->expr_kind == BMFM_EXPR_SCALE_ADAPT) {
        ADD(EXPR "special_token_embeddings.weight", cfg->n_spec_rows, C, 1);
        ADD(EXPR "basis", cfg->n_sin_basis, 0, cfg->basis_trainable);
        ADD(EXPR "dense.weight", C, 2 * cfg->n_sin_basis, 1);
    } else {
        ADD(EXPR "special_token_embeddings.weight", cfg->n_spec_rows, cfg->expr_hidden, 1);
        ADD(EXPR "dense_1.weight", cfg->expr_hidden, 1, 1);
        ADD(EXPR "dense_1.bias", cfg->expr_hidden, 0, 1);
        ADD(EXPR "dense_2.weight", C, cfg->expr_hidden, 1);
        ADD(EXPR "dense_2.bias", C, 0, 1);
    }
    ADD(EMB "LayerNorm.weight", C, 0, 1);
    ADD(EMB "LayerNorm.bias", C, 0, 1);
    for (int l = 0; l < cfg->NL; l++) {
#define BLK(suffix, d0, d1)                                                    \
    do {                                                                       \
        snprintf(nm, sizeof nm, P "core.encoder.blocks.%d.%s", l, suffix);     \
        ADD(nm, d0, d1, 1);                                                    \
    } while (0)
        BLK("attn.c_attn.weight", 3 * C, C);
        BLK("attn.proj.weight", C, C);
        if (l > 0) BLK("rms_1.scale", C, 0);
        BLK("rms_2.scale", C, 0);
        BLK("mlp.c_fc1.weight", F, C);
        BLK("mlp.c_fc2.weight", F, C);
        BLK("mlp.c_proj.weight", C, F);
#undef BLK
    }
    ADD(P "core.pooler.dense.weight", C, C, 1);
    ADD(P "core.pooler.dense.bias", C, 0, 1);
    if (cfg->wced || cfg->mlm_regression || cfg->mlm_is_zero) {
        ADD(HEAD "transform.dense.weight", C, C, 1);
        ADD(HEAD "transform.dense.bias", C, 0, 1);
        ADD(HEAD "transform.LayerNorm.weight", C, 0, 1);
        ADD(HEAD "transform.LayerNorm.bias", C, 0, 1);
    }
    if (cfg->wced) {
        ADD(DEC "wced.weight", cfg->wced_n_out * cfg->V, C, 1);
        ADD(DEC "wced.bias", cfg->wced_n_out * cfg->V, 0, 1);
    }
    if (cfg->mlm_regression) {
        ADD(DEC "regression.weight", 1, C, 1);
        ADD(DEC "regression.bias", 1, 0, 1);
    }
    if (cfg->mlm_is_zero) {
        ADD(DEC "is_zero.weight", 1, C, 1);
        ADD(DEC "is_zero.bias", 1, 0, 1);
    }
    for (int i = 0; i < cfg->n_labels; i++) {
        const bmfm_label_cfg *lb = &cfg->labels[i];
        const char *sub = lb->has_grl ? "decoder.1" : "decoder";
        snprintf(nm, sizeof nm, LAB "%s.%s.weight", lb->name, sub);
        ADD(nm, lb->n_classes, C, 1);
        snprintf(nm, sizeof nm, LAB "%s.%s.bias", lb->name, sub);
        ADD(nm, lb->n_classes, 0, 1);
    }
#undef ADD
    return BMFM_OK;
fail:
    bmfm_param_table_free(t);
    return s;
}

void bmfm_param_table_free(bmfm_param_table *t) {
    for (int i = 0; i < t->n; i++) free(t->info[i].name);
    free(t->info);
    memset(t, 0, sizeof *t);
}

int bmfm_param_table_find(const bmfm_param_table *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->info[i].name, name) == 0) return i;
    return -1;
}

int64_t bmfm_param_table_count(const bmfm_param_table *t, int trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < t->n; i++)
        if (!trainable_only || t->info[i].trainable) n += t->info[i].numel;
    return n;
}

static float *view(const bmfm_param_table *t, float *base, const char *name) {
    int i = bmfm_param_table_find(t, name);
    return i < 0 ? NULL : base + t->info[i].offset;
}

bmfm_status bmfm_params_bind(bmfm_params *p, const bmfm_param_table *t, const bmfm_model_config *cfg, float *base) {
    memset(p, 0, sizeof *p);
    p->base = base;
    p->blocks = bmfm_calloc((size_t)cfg->NL, sizeof *p->blocks);
    p->lab_w = bmfm_calloc((size_t)cfg->n_labels + 1, sizeof *p->lab_w);
    p->lab_b = bmfm_calloc((size_t)cfg->n_labels + 1, sizeof *p->lab_b);
    if (!p->blocks || !p->lab_w || !p->lab_b) {
        bmfm_params_unbind(p);
        return BMFM_E_NOMEM;
    }
    p->gene_emb = view(t, base, EMB "genes_embeddings.weight");
    p->spec_emb = view(t, base, EXPR "special_token_embeddings.weight");
    p->basis = view(t, base, EXPR "basis");
    p->expr_dense = view(t, base, EXPR "dense.weight");
    p->mlp_w1 = view(t, base, EXPR "dense_1.weight");
    p->mlp_b1 = view(t, base, EXPR "dense_1.bias");
    p->mlp_w2 = view(t, base, EXPR "dense_2.weight");
    p->mlp_b2 = view(t, base, EXPR "dense_2.bias");
    p->ln_w = view(t, base, EMB "LayerNorm.weight");
    p->ln_b = view(t, base, EMB "LayerNorm.bias");
    char nm[512];
    for (int l = 0; l < cfg->NL; l++) {
        bmfm_block_views *b = &p->blocks[l];
#define BV(field, suffix)                                                      \
    snprintf(nm, sizeof nm, P "core.encoder.blocks.%d.%s", l, suffix);         \
    b->field = view(t, base, nm)
        BV(c_attn, "attn.c_attn.weight");
        BV(proj, "attn.proj.weight");
        BV(rms1, "rms_1.scale");
        BV(rms2, "rms_2.scale");
        BV(fc1, "mlp.c_fc1.weight");
        BV(fc2, "mlp.c_fc2.weight");
        BV(cproj, "mlp.c_proj.weight");
#undef BV
    }
    p->pool_w = view(t, base, P "core.pooler.dense.weight");
    p->pool_b = view(t, base, P "core.pooler.dense.bias");
    p->tr_w = view(t, base, HEAD "transform.dense.weight");
    p->tr_b = view(t, base, HEAD "transform.dense.bias");
    p->tr_ln_w = view(t, base, HEAD "transform.LayerNorm.weight");
    p->tr_ln_b = view(t, base, HEAD "transform.LayerNorm.bias");
    p->wced_w = view(t, base, DEC "wced.weight");
    p->wced_b = view(t, base, DEC "wced.bias");
    p->reg_w = view(t, base, DEC "regression.weight");
    p->reg_b = view(t, base, DEC "regression.bias");
    p->iz_w = view(t, base, DEC "is_zero.weight");
    p->iz_b = view(t, base, DEC "is_zero.bias");
    for (int i = 0; i < cfg->n_labels; i++) {
        const bmfm_label_cfg *lb = &cfg->labels[i];
        const char *sub = lb->has_grl ? "decoder.1" : "decoder";
        snprintf(nm, sizeof nm, LAB "%s.%s.weight", lb->name, sub);
        p->lab_w[i] = view(t, base, nm);
        snprintf(nm, sizeof nm, LAB "%s.%s.bias", lb->name, sub);
        p->lab_b[i] = view(t, base, nm);
    }
    return BMFM_OK;
}

void bmfm_params_unbind(bmfm_params *p) {
    free(p->blocks);
    free(p->lab_w);
    free(p->lab_b);
    memset(p, 0, sizeof *p);
}
