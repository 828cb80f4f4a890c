/* model.h - the model object: config, parameter table, parameter and
 * gradient arenas, activation arena. Encoder forward/backward is in
 * encoder.h, heads in heads.h, load/save/init in checkpoint.h.
 */
#ifndef BMFM_MODEL_MODEL_H
#define BMFM_MODEL_MODEL_H

#include "base/error.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/params.h"

#include <stdint.h>

/* Activation arena: one allocation, views below, sized for max_N tokens and
 * max_B cells. Block activations exist for every block when training without
 * recomputation, else once (recomputed per block in backward). */
typedef struct bmfm_block_acts {
    float *rms1, *rms1_rstd, *qkv, *att, *lse, *mid, *rms2, *rms2_rstd, *fa, *fb, *sw;
} bmfm_block_acts;

typedef struct bmfm_acts {
    int64_t max_N, max_B;
    int training, recompute, keep_hidden;
    float *mem;
    int64_t total;
    /* embeddings */
    float *emb, *expr_out, *feat, *ln_mean, *ln_rstd;
    float **res;        /* residual stream: res[l] is the input of block l, res[NL] = z */
    int n_res;          /* NL+1, or 2 (ping-pong) in inference without keep_hidden */
    bmfm_block_acts *blk;
    int n_blk;
    /* heads (forward) */
    float *z0, *pool;                         /* [B,C] */
    float *w_td, *w_tg, *w_t, *w_mean, *w_rstd, *wced_out; /* WCED transform on z0 + decoder [B, nout*V] */
    float *m_td, *m_tg, *m_t, *m_mean, *m_rstd, *mlm_reg, *mlm_iz; /* MLM transform on all N */
    float **lab_in, **logits;                 /* per label: [B,C], [B,K] */
    /* backward scratch (training only) */
    float *dres, *dtmp, *dqkv, *datt, *dfa, *dfb, *dsw, *demb;
    float *dz0, *dpool, *dbc1, *dbc2, *dbc3;  /* [B,C] scratch */
    float *dwced_out, *dmlm_reg, *dmlm_iz;    /* gradients of the head outputs (loss fills them) */
    float **dlogits;
} bmfm_acts;

typedef struct bmfm_model {
    bmfm_model_config cfg;
    bmfm_param_table table;
    float *param_mem, *grad_mem; /* grad_mem NULL until bmfm_model_alloc_grads */
    bmfm_params p, g;
    bmfm_acts a;
    int64_t cur_B, cur_N;        /* shape of the last forward */
    const int64_t *cur_cu;
    const int32_t *cur_ids;
    const float *cur_expr;
} bmfm_model;

/* Build the table and a zeroed parameter arena for cfg (the model takes
 * ownership of cfg's allocations). */
bmfm_status bmfm_model_create(bmfm_model *m, bmfm_model_config *cfg);
bmfm_status bmfm_model_alloc_grads(bmfm_model *m);
void bmfm_model_zero_grads(bmfm_model *m);
/* (Re)size the activation arena. training: keep what backward needs;
 * recompute: keep only block inputs and recompute each block in backward;
 * keep_hidden: keep every block output in inference (for --layer). */
bmfm_status bmfm_model_alloc_acts(bmfm_model *m, int64_t max_N, int64_t max_B, int training, int recompute,
                                  int keep_hidden);
void bmfm_model_free(bmfm_model *m);

#endif
