/* heads.c - pooler, head transform, WCED / MLM decoders, label heads (see
 * heads.h). */
#include "model/heads.h"

#include "model/encoder.h"
#include "nn/nn.h"

#include <string.h>

static void gather_rows(float *dst, const float *z, const int64_t *cu, int64_t B, int64_t k, int64_t C) {
    for (int64_t b = 0; b < B; b++) {
        int64_t pos = cu[b] + k;
        if (pos >= cu[b + 1]) pos = cu[b]; /* checked in forward; defensive */
        memcpy(dst + b * C, z + pos * C, (size_t)C * sizeof(float));
    }
}

static void scatter_add_rows(float *dz, const float *src, const int64_t *cu, int64_t B, int64_t k, int64_t C) {
    for (int64_t b = 0; b < B; b++) bmfm_add_inplace(dz + (cu[b] + k) * C, src + b * C, C);
}

static void transform_forward(const bmfm_model *m, float *td, float *tg, float *t, float *mean, float *rstd,
                              const float *in, int64_t R) {
    int64_t C = m->cfg.C;
    bmfm_matmul_forward(td, in, m->p.tr_w, m->p.tr_b, R, C, C);
    bmfm_gelu_forward(tg, td, R * C);
    bmfm_layernorm_forward(t, mean, rstd, tg, m->p.tr_ln_w, m->p.tr_ln_b, R, C, m->cfg.ln_eps);
}

/* dt [R,C] (consumed as scratch) -> din += ... ; dg, dd scratch [R,C]. */
static void transform_backward(bmfm_model *m, float *din, float *dt, float *dg, float *dd, const float *td,
                               const float *tg, const float *mean, const float *rstd, const float *in, int64_t R) {
    int64_t C = m->cfg.C;
    memset(dg, 0, (size_t)(R * C) * sizeof(float));
    bmfm_layernorm_backward(dg, m->g.tr_ln_w, m->g.tr_ln_b, dt, tg, m->p.tr_ln_w, mean, rstd, R, C);
    memset(dd, 0, (size_t)(R * C) * sizeof(float));
    bmfm_gelu_backward(dd, dg, td, R * C);
    bmfm_matmul_backward(din, m->g.tr_w, m->g.tr_b, dd, in, m->p.tr_w, R, C, C);
}

bmfm_status bmfm_heads_forward(bmfm_model *m, bmfm_head_sel sel) {
    const bmfm_model_config *c = &m->cfg;
    bmfm_acts *a = &m->a;
    int64_t B = m->cur_B, N = m->cur_N, C = c->C;
    const float *z = bmfm_encoder_output(m);
    const int64_t *cu = m->cur_cu;
    gather_rows(a->z0, z, cu, B, 0, C);
    bmfm_matmul_forward(a->pool, a->z0, m->p.pool_w, m->p.pool_b, B, C, C);
    bmfm_tanh_forward(a->pool, a->pool, B * C);
    if (sel.wced && c->wced) {
        transform_forward(m, a->w_td, a->w_tg, a->w_t, a->w_mean, a->w_rstd, a->z0, B);
        bmfm_matmul_forward(a->wced_out, a->w_t, m->p.wced_w, m->p.wced_b, B, C, c->wced_n_out * c->V);
    }
    if (sel.mlm && (c->mlm_regression || c->mlm_is_zero)) {
        transform_forward(m, a->m_td, a->m_tg, a->m_t, a->m_mean, a->m_rstd, z, N);
        if (c->mlm_regression) bmfm_matmul_forward(a->mlm_reg, a->m_t, m->p.reg_w, m->p.reg_b, N, C, 1);
        if (c->mlm_is_zero) bmfm_matmul_forward(a->mlm_iz, a->m_t, m->p.iz_w, m->p.iz_b, N, C, 1);
    }
    if (sel.labels) {
        for (int i = 0; i < c->n_labels; i++) {
            const bmfm_label_cfg *l = &c->labels[i];
            if (l->decode_from >= 0) {
                for (int64_t b = 0; b < B; b++)
                    if (cu[b] + l->decode_from >= cu[b + 1])
                        return bmfm_error_set(BMFM_E_INPUT, "label head %s reads token %d but cell %lld has %lld tokens",
                                              l->name, l->decode_from, (long long)b, (long long)(cu[b + 1] - cu[b]));
                gather_rows(a->lab_in[i], z, cu, B, l->decode_from, C);
            } else {
                memcpy(a->lab_in[i], a->pool, (size_t)(B * C) * sizeof(float));
            }
            bmfm_matmul_forward(a->logits[i], a->lab_in[i], m->p.lab_w[i], m->p.lab_b[i], B, C, l->n_classes);
        }
    }
    return BMFM_OK;
}

bmfm_status bmfm_heads_backward(bmfm_model *m, bmfm_head_sel sel) {
    const bmfm_model_config *c = &m->cfg;
    bmfm_acts *a = &m->a;
    if (!a->training || !m->grad_mem)
        return bmfm_error_set(BMFM_E_INTERNAL, "heads backward without training activations or gradients");
    int64_t B = m->cur_B, N = m->cur_N, C = c->C;
    const float *z = bmfm_encoder_output(m);
    const int64_t *cu = m->cur_cu;
    memset(a->dres, 0, (size_t)(N * C) * sizeof(float));
    memset(a->dz0, 0, (size_t)(B * C) * sizeof(float));
    memset(a->dpool, 0, (size_t)(B * C) * sizeof(float));
    int pool_used = 0;
    if (sel.labels) {
        for (int i = 0; i < c->n_labels; i++) {
            const bmfm_label_cfg *l = &c->labels[i];
            memset(a->dbc1, 0, (size_t)(B * C) * sizeof(float));
            bmfm_matmul_backward(a->dbc1, m->g.lab_w[i], m->g.lab_b[i], a->dlogits[i], a->lab_in[i], m->p.lab_w[i], B,
                                 C, l->n_classes);
            if (l->has_grl)
                for (int64_t j = 0; j < B * C; j++) a->dbc1[j] *= -l->grl_coef;
            if (l->decode_from >= 0) {
                scatter_add_rows(a->dres, a->dbc1, cu, B, l->decode_from, C);
            } else {
                bmfm_add_inplace(a->dpool, a->dbc1, B * C);
                pool_used = 1;
            }
        }
    }
    if (pool_used) {
        memset(a->dbc1, 0, (size_t)(B * C) * sizeof(float));
        bmfm_tanh_backward(a->dbc1, a->dpool, a->pool, B * C);
        bmfm_matmul_backward(a->dz0, m->g.pool_w, m->g.pool_b, a->dbc1, a->z0, m->p.pool_w, B, C, C);
    }
    if (sel.wced && c->wced) {
        memset(a->dbc1, 0, (size_t)(B * C) * sizeof(float));
        bmfm_matmul_backward(a->dbc1, m->g.wced_w, m->g.wced_b, a->dwced_out, a->w_t, m->p.wced_w, B, C,
                             c->wced_n_out * c->V);
        transform_backward(m, a->dz0, a->dbc1, a->dbc2, a->dbc3, a->w_td, a->w_tg, a->w_mean, a->w_rstd, a->z0, B);
    }
    scatter_add_rows(a->dres, a->dz0, cu, B, 0, C);
    if (sel.mlm && (c->mlm_regression || c->mlm_is_zero)) {
        /* dtmp, datt, demb are free until the encoder backward starts */
        memset(a->dtmp, 0, (size_t)(N * C) * sizeof(float));
        if (c->mlm_regression) bmfm_matmul_backward(a->dtmp, m->g.reg_w, m->g.reg_b, a->dmlm_reg, a->m_t, m->p.reg_w, N, C, 1);
        if (c->mlm_is_zero) bmfm_matmul_backward(a->dtmp, m->g.iz_w, m->g.iz_b, a->dmlm_iz, a->m_t, m->p.iz_w, N, C, 1);
        transform_backward(m, a->dres, a->dtmp, a->datt, a->demb, a->m_td, a->m_tg, a->m_mean, a->m_rstd, z, N);
    }
    return BMFM_OK;
}
