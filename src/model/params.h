/* params.h - the parameter table of the encoder and heads: every tensor in
 * one aligned allocation, with a named table of views whose names are the
 * exact state-dict keys of the released BMFM-RNA checkpoints (prefix
 * "model.", bmfm_reference.md section 3.2). The gradient arena uses the same
 * table (same offsets), so optimizer, clipping and zeroing are flat loops.
 *
 * The table depends only on the config: which expression encoder, whether a
 * WCED or MLM head exists, which label heads (GRL heads are named
 * ...decoder.1.*). The ScaleAdapt basis is a buffer: it is in the table (so
 * it is loaded and saved) but marked not trainable. Not here: activations
 * (encoder.h), loading/saving (checkpoint.h).
 */
#ifndef BMFM_MODEL_PARAMS_H
#define BMFM_MODEL_PARAMS_H

#include "base/error.h"
#include "model/config.h"

#include <stdint.h>

typedef struct bmfm_param_info {
    char *name;
    int ndim;
    int64_t shape[2];
    int64_t offset; /* in floats, from the start of the arena (64-byte aligned) */
    int64_t numel;
    int trainable;
} bmfm_param_info;

typedef struct bmfm_param_table {
    bmfm_param_info *info;
    int n;
    int64_t total; /* floats, including alignment padding */
} bmfm_param_table;

typedef struct bmfm_block_views {
    float *c_attn, *proj, *rms1, *rms2, *fc1, *fc2, *cproj; /* rms1 NULL in block 0 */
} bmfm_block_views;

/* Typed views of one arena (parameters or gradients) laid out by the table. */
typedef struct bmfm_params {
    float *base;
    float *gene_emb, *spec_emb;           /* [V,C], [n_spec_rows, C or H1] */
    float *basis, *expr_dense;            /* ScaleAdapt: [NB], [C, 2NB] */
    float *mlp_w1, *mlp_b1, *mlp_w2, *mlp_b2; /* MLP encoder: [H1,1],[H1],[C,H1],[C] */
    float *ln_w, *ln_b;
    bmfm_block_views *blocks;             /* [NL] */
    float *pool_w, *pool_b;
    float *tr_w, *tr_b, *tr_ln_w, *tr_ln_b; /* head transform (NULL without a field decoder) */
    float *wced_w, *wced_b;               /* [n_out*V, C], [n_out*V] */
    float *reg_w, *reg_b, *iz_w, *iz_b;   /* [1,C], [1] */
    float **lab_w, **lab_b;               /* per label: [K, C], [K] */
} bmfm_params;

bmfm_status bmfm_param_table_build(bmfm_param_table *t, const bmfm_model_config *cfg);
void bmfm_param_table_free(bmfm_param_table *t);
int bmfm_param_table_find(const bmfm_param_table *t, const char *name);
/* Bind typed views to an arena of t->total floats laid out by the table. */
bmfm_status bmfm_params_bind(bmfm_params *p, const bmfm_param_table *t, const bmfm_model_config *cfg, float *base);
void bmfm_params_unbind(bmfm_params *p);
/* Number of trainable parameters. */
int64_t bmfm_param_table_count(const bmfm_param_table *t, int trainable_only);

#endif
