/* encoder.c - model object, activation arena, encoder forward/backward (see
 * encoder.h and model.h). All arithmetic is in the nn.h kernels. */
#include "model/encoder.h"

#include "base/alloc.h"
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

bmfm_status bmfm_model_create(bmfm_model *m, bmfm_model_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    bmfm_status s = BMFM_OK;
    for (int i = 0; i < m->cfg.n_labels; i++)
        if (m->cfg.labels[i].n_classes < 1) {
            s = bmfm_error_set(BMFM_E_INPUT, "label head %s: number of classes unknown", m->cfg.labels[i].name);
            goto fail;
        }
    s = bmfm_param_table_build(&m->table, &m->cfg);
    if (s != BMFM_OK) goto fail;
    m->param_mem = bmfm_aligned_alloc((size_t)m->table.total * sizeof(float));
    if (!m->param_mem) {
        s = BMFM_E_NOMEM;
        goto fail;
    }
    if ((s = bmfm_params_bind(&m->p, &m->table, &m->cfg, m->param_mem)) != BMFM_OK) goto fail;
    return BMFM_OK;
fail:
    bmfm_model_free(m);
    return s;
}

bmfm_status bmfm_model_alloc_grads(bmfm_model *m) {
    if (m->grad_mem) return BMFM_OK;
    m->grad_mem = bmfm_aligned_alloc((size_t)m->table.total * sizeof(float));
    if (!m->grad_mem) return BMFM_E_NOMEM;
    return bmfm_params_bind(&m->g, &m->table, &m->cfg, m->grad_mem);
}

void bmfm_model_zero_grads(bmfm_model *m) {
    if (m->grad_mem) memset(m->grad_mem, 0, (size_t)m->table.total * sizeof(float));
}

static void free_acts(bmfm_acts *a) {
    bmfm_aligned_free(a->mem);
    free(a->res);
    free(a->blk);
    free(a->lab_in);
    free(a->logits);
    free(a->dlogits);
    memset(a, 0, sizeof *a);
}

void bmfm_model_free(bmfm_model *m) {
    free_acts(&m->a);
    bmfm_params_unbind(&m->p);
    bmfm_params_unbind(&m->g);
    bmfm_aligned_free(m->param_mem);
    bmfm_aligned_free(m->grad_mem);
    bmfm_param_table_free(&m->table);
    bmfm_config_free(&m->cfg);
    memset(m, 0, sizeof *m);
}

/* Two passes: first count (base NULL), then assign views. */
static float *take(float *base, int64_t *off, int64_t n) {
    float *p = base ? base + *off : NULL;
    *off += (n + 15) / 16 * 16;
    return p;
}

static void layout_acts(bmfm_acts *a, const bmfm_model_config *c, float *base) {
    int64_t N = a->max_N, B = a->max_B, C = c->C, F = c->F, off = 0;
    int64_t nf = c->expr_kind == BMFM_EXPR_SCALE_ADAPT ? 2 * c->n_sin_basis : c->expr_hidden;
    a->emb = take(base, &off, N * C);
    a->expr_out = take(base, &off, N * C);
    a->feat = take(base, &off, N * nf);
    a->ln_mean = take(base, &off, N);
    a->ln_rstd = take(base, &off, N);
    for (int i = 0; i < a->n_res; i++) a->res[i] = take(base, &off, N * C);
    for (int i = 0; i < a->n_blk; i++) {
        bmfm_block_acts *k = &a->blk[i];
        k->rms1 = take(base, &off, N * C);
        k->rms1_rstd = take(base, &off, N);
        k->qkv = take(base, &off, N * 3 * C);
        k->att = take(base, &off, N * C);
        k->lse = take(base, &off, c->NH * N);
        k->mid = take(base, &off, N * C);
        k->rms2 = take(base, &off, N * C);
        k->rms2_rstd = take(base, &off, N);
        k->fa = take(base, &off, N * F);
        k->fb = take(base, &off, N * F);
        k->sw = take(base, &off, N * F);
    }
    a->z0 = take(base, &off, B * C);
    a->pool = take(base, &off, B * C);
    if (c->wced) {
        a->w_td = take(base, &off, B * C);
        a->w_tg = take(base, &off, B * C);
        a->w_t = take(base, &off, B * C);
        a->w_mean = take(base, &off, B);
        a->w_rstd = take(base, &off, B);
        a->wced_out = take(base, &off, B * c->wced_n_out * c->V);
    }
    if (c->mlm_regression || c->mlm_is_zero) {
        a->m_td = take(base, &off, N * C);
        a->m_tg = take(base, &off, N * C);
        a->m_t = take(base, &off, N * C);
        a->m_mean = take(base, &off, N);
        a->m_rstd = take(base, &off, N);
        a->mlm_reg = take(base, &off, N);
        a->mlm_iz = take(base, &off, N);
    }
    for (int i = 0; i < c->n_labels; i++) {
        a->lab_in[i] = take(base, &off, B * C);
        a->logits[i] = take(base, &off, B * c->labels[i].n_classes);
    }
    if (a->training) {
        a->dres = take(base, &off, N * C);
        a->dtmp = take(base, &off, N * C);
        a->dqkv = take(base, &off, N * 3 * C);
        a->datt = take(base, &off, N * C);
        a->dfa = take(base, &off, N * F);
        a->dfb = take(base, &off, N * F);
        a->dsw = take(base, &off, N * F);
        a->demb = take(base, &off, N * C);
        a->dz0 = take(base, &off, B * C);
        a->dpool = take(base, &off, B * C);
        a->dbc1 = take(base, &off, B * C);
        a->dbc2 = take(base, &off, B * C);
        a->dbc3 = take(base, &off, B * C);
        if (c->wced) a->dwced_out = take(base, &off, B * c->wced_n_out * c->V);
        if (c->mlm_regression || c->mlm_is_zero) {
            a->dmlm_reg = take(base, &off, N);
            a->dmlm_iz = take(base, &off, N);
        }
        for (int i = 0; i < c->n_labels; i++) a->dlogits[i] = take(base, &off, B * c->labels[i].n_classes);
    }
    a->total = off;
}

bmfm_status bmfm_model_alloc_acts(bmfm_model *m, int64_t max_N, int64_t max_B, int training, int recompute,
                                  int keep_hidden) {
    bmfm_acts *a = &m->a;
    const bmfm_model_config *c = &m->cfg;
    if (a->mem && a->max_N >= max_N && a->max_B >= max_B && a->training == training && a->recompute == recompute &&
        a->keep_hidden == keep_hidden)
        return BMFM_OK;
    free_acts(a);
    a->max_N = max_N;
    a->max_B = max_B;
    a->training = training;
    a->recompute = recompute;
    a->keep_hidden = keep_hidden;
    a->n_res = (training || keep_hidden) ? (int)c->NL + 1 : 2;
    a->n_blk = (training && !recompute) ? (int)c->NL : 1;
    a->res = bmfm_calloc((size_t)a->n_res, sizeof *a->res);
    a->blk = bmfm_calloc((size_t)a->n_blk, sizeof *a->blk);
    a->lab_in = bmfm_calloc((size_t)c->n_labels + 1, sizeof *a->lab_in);
    a->logits = bmfm_calloc((size_t)c->n_labels + 1, sizeof *a->logits);
    a->dlogits = bmfm_calloc((size_t)c->n_labels + 1, sizeof *a->dlogits);
    if (!a->res || !a->blk || !a->lab_in || !a->logits || !a->dlogits) goto nomem;
    layout_acts(a, c, NULL);
    a->mem = bmfm_aligned_alloc((size_t)a->total * sizeof(float));
    if (!a->mem) goto nomem;
    layout_acts(a, c, a->mem);
    return BMFM_OK;
nomem:
    free_acts(a);
    return bmfm_error_set(BMFM_E_NOMEM, "out of memory allocating activations for %lld tokens", (long long)max_N);
}

/* ---- forward ---------------------------------------------------------------- */

static float *res_at(const bmfm_acts *a, int l) { return a->res[a->n_res == 2 ? l % 2 : l]; }

static bmfm_block_acts *blk_at(const bmfm_acts *a, int l) { return &a->blk[a->n_blk == 1 ? 0 : l]; }

static void block_forward(bmfm_model *m, int l) {
    const bmfm_model_config *c = &m->cfg;
    const bmfm_block_views *w = &m->p.blocks[l];
    bmfm_block_acts *k = blk_at(&m->a, l);
    int64_t N = m->cur_N, C = c->C, F = c->F;
    const float *in = res_at(&m->a, l);
    float *out = res_at(&m->a, l + 1);
    const float *a_in = in;
    if (l > 0) {
        bmfm_rmsnorm_forward(k->rms1, k->rms1_rstd, in, w->rms1, N, C, c->rms_eps);
        a_in = k->rms1;
    }
    bmfm_matmul_forward(k->qkv, a_in, w->c_attn, NULL, N, C, 3 * C);
    bmfm_attention_forward(k->att, k->lse, k->qkv, m->cur_cu, m->cur_B, N, c->NH, C / c->NH);
    bmfm_matmul_forward(k->mid, k->att, w->proj, NULL, N, C, C);
    bmfm_add_inplace(k->mid, in, N * C);
    bmfm_rmsnorm_forward(k->rms2, k->rms2_rstd, k->mid, w->rms2, N, C, c->rms_eps);
    bmfm_matmul_forward(k->fa, k->rms2, w->fc1, NULL, N, C, F);
    bmfm_matmul_forward(k->fb, k->rms2, w->fc2, NULL, N, C, F);
    bmfm_swiglu_forward(k->sw, k->fa, k->fb, N * F);
    bmfm_matmul_forward(out, k->sw, w->cproj, NULL, N, F, C);
    bmfm_add_inplace(out, k->mid, N * C);
}

static bmfm_status validate(const bmfm_model *m, const bmfm_batch *b) {
    const bmfm_model_config *c = &m->cfg;
    if (b->B < 1 || b->N < 1 || b->N > m->a.max_N || b->B > m->a.max_B || !m->a.mem)
        return bmfm_error_set(BMFM_E_INPUT, "batch of %lld cells / %lld tokens exceeds the activation arena (%lld / %lld)",
                              (long long)b->B, (long long)b->N, (long long)m->a.max_B, (long long)m->a.max_N);
    if (b->cu_seqlens[0] != 0 || b->cu_seqlens[b->B] != b->N)
        return bmfm_error_set(BMFM_E_INPUT, "batch: cu_seqlens must run from 0 to N=%lld", (long long)b->N);
    for (int64_t i = 0; i < b->B; i++)
        if (b->cu_seqlens[i + 1] <= b->cu_seqlens[i])
            return bmfm_error_set(BMFM_E_INPUT, "batch: cell %lld has no tokens", (long long)i);
    for (int64_t n = 0; n < b->N; n++) {
        if (b->gene_ids[n] < 0 || b->gene_ids[n] >= c->V)
            return bmfm_error_set(BMFM_E_INPUT, "batch: token %lld has gene id %d outside [0, %lld)", (long long)n,
                                  b->gene_ids[n], (long long)c->V);
        float x = b->expr[n];
        if (!(x == x)) return bmfm_error_set(BMFM_E_INPUT, "batch: token %lld has a NaN expression", (long long)n);
        if (x <= 0) {
            int32_t idx = bmfm_expr_special_index(x, (int32_t)c->n_special);
            if (idx < 0 || idx >= c->n_spec_rows || (x != 0 && x != (float)(int)x))
                return bmfm_error_set(BMFM_E_INPUT, "batch: token %lld has expression %g, not a special code", (long long)n, x);
        }
    }
    return BMFM_OK;
}

bmfm_status bmfm_encoder_forward(bmfm_model *m, const bmfm_batch *b) {
    BMFM_TRY(validate(m, b));
    const bmfm_model_config *c = &m->cfg;
    bmfm_acts *a = &m->a;
    int64_t N = b->N, C = c->C;
    m->cur_B = b->B;
    m->cur_N = N;
    m->cur_cu = b->cu_seqlens;
    m->cur_ids = b->gene_ids;
    m->cur_expr = b->expr;
    bmfm_embedding_forward(a->emb, b->gene_ids, m->p.gene_emb, N, C);
    if (c->expr_kind == BMFM_EXPR_SCALE_ADAPT)
        bmfm_scale_adapt_forward(a->expr_out, a->feat, b->expr, m->p.basis, m->p.expr_dense, m->p.spec_emb, N,
                                 c->n_sin_basis, C, (int32_t)c->n_special);
    else
        bmfm_mlp_expr_forward(a->expr_out, a->feat, b->expr, m->p.mlp_w1, m->p.mlp_b1, m->p.mlp_w2, m->p.mlp_b2,
                              m->p.spec_emb, N, c->expr_hidden, C, (int32_t)c->n_special);
    bmfm_add_inplace(a->emb, a->expr_out, N * C);
    bmfm_layernorm_forward(res_at(a, 0), a->ln_mean, a->ln_rstd, a->emb, m->p.ln_w, m->p.ln_b, N, C, c->ln_eps);
    for (int l = 0; l < c->NL; l++) block_forward(m, l);
    return BMFM_OK;
}

const float *bmfm_encoder_output(const bmfm_model *m) { return res_at(&m->a, (int)m->cfg.NL); }

const float *bmfm_encoder_hidden(const bmfm_model *m, int l) {
    if (l + 1 == m->cfg.NL) return bmfm_encoder_output(m);
    if (m->a.n_res == 2 || l < -1 || l >= m->cfg.NL) return NULL;
    return m->a.res[l + 1];
}

/* ---- backward --------------------------------------------------------------- */

static void block_backward(bmfm_model *m, int l) {
    const bmfm_model_config *c = &m->cfg;
    const bmfm_block_views *w = &m->p.blocks[l];
    bmfm_block_views *gw = &m->g.blocks[l];
    bmfm_acts *a = &m->a;
    if (a->recompute) block_forward(m, l); /* res[l+1] is rewritten with identical values */
    bmfm_block_acts *k = blk_at(a, l);
    int64_t N = m->cur_N, C = c->C, F = c->F;
    const float *in = res_at(a, l);
    float *d = a->dres; /* gradient w.r.t. the block output, becomes the one w.r.t. its input */
    memset(a->dsw, 0, (size_t)(N * F) * sizeof(float));
    bmfm_matmul_backward(a->dsw, gw->cproj, NULL, d, k->sw, w->cproj, N, F, C);
    memset(a->dfa, 0, (size_t)(N * F) * sizeof(float));
    memset(a->dfb, 0, (size_t)(N * F) * sizeof(float));
    bmfm_swiglu_backward(a->dfa, a->dfb, a->dsw, k->fa, k->fb, N * F);
    memset(a->dtmp, 0, (size_t)(N * C) * sizeof(float));
    bmfm_matmul_backward(a->dtmp, gw->fc1, NULL, a->dfa, k->rms2, w->fc1, N, C, F);
    bmfm_matmul_backward(a->dtmp, gw->fc2, NULL, a->dfb, k->rms2, w->fc2, N, C, F);
    bmfm_rmsnorm_backward(d, gw->rms2, a->dtmp, k->mid, w->rms2, k->rms2_rstd, N, C);
    memset(a->datt, 0, (size_t)(N * C) * sizeof(float));
    bmfm_matmul_backward(a->datt, gw->proj, NULL, d, k->att, w->proj, N, C, C);
    memset(a->dqkv, 0, (size_t)(N * 3 * C) * sizeof(float));
    bmfm_attention_backward(a->dqkv, a->datt, k->qkv, k->att, k->lse, m->cur_cu, m->cur_B, N, c->NH, C / c->NH);
    if (l == 0) {
        bmfm_matmul_backward(d, gw->c_attn, NULL, a->dqkv, in, w->c_attn, N, C, 3 * C);
    } else {
        memset(a->dtmp, 0, (size_t)(N * C) * sizeof(float));
        bmfm_matmul_backward(a->dtmp, gw->c_attn, NULL, a->dqkv, k->rms1, w->c_attn, N, C, 3 * C);
        bmfm_rmsnorm_backward(d, gw->rms1, a->dtmp, in, w->rms1, k->rms1_rstd, N, C);
    }
}

bmfm_status bmfm_encoder_backward(bmfm_model *m) {
    const bmfm_model_config *c = &m->cfg;
    bmfm_acts *a = &m->a;
    if (!a->training || !m->grad_mem)
        return bmfm_error_set(BMFM_E_INTERNAL, "encoder backward without training activations or gradients");
    int64_t N = m->cur_N, C = c->C;
    for (int l = (int)c->NL - 1; l >= 0; l--) block_backward(m, l);
    memset(a->demb, 0, (size_t)(N * C) * sizeof(float));
    bmfm_layernorm_backward(a->demb, m->g.ln_w, m->g.ln_b, a->dres, a->emb, m->p.ln_w, a->ln_mean, a->ln_rstd, N, C);
    bmfm_embedding_backward(m->g.gene_emb, a->demb, m->cur_ids, N, C, c->pad_id);
    if (c->expr_kind == BMFM_EXPR_SCALE_ADAPT)
        bmfm_scale_adapt_backward(m->g.expr_dense, m->g.spec_emb, a->demb, a->feat, m->cur_expr, N, c->n_sin_basis, C,
                                  (int32_t)c->n_special, c->pad_id);
    else
        bmfm_mlp_expr_backward(m->g.mlp_w1, m->g.mlp_b1, m->g.mlp_w2, m->g.mlp_b2, m->g.spec_emb, a->demb, a->feat,
                               m->cur_expr, m->p.mlp_w1, m->p.mlp_b1, m->p.mlp_w2, N, c->expr_hidden, C,
                               (int32_t)c->n_special, c->pad_id);
    return BMFM_OK;
}
