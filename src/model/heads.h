/* heads.h - forward and backward of the heads on top of the encoder output z
 * (bmfm_reference.md 3.1, 4.1, 4.2, 4.6):
 *   pooler      p = tanh(W_p z[cls] + b_p)              (every model)
 *   transform   t = LayerNorm(GELU(W_t z + b_t), 1e-12) (shared by WCED and MLM)
 *   WCED        o = W_w t[cls] + b_w, [B, n_out*V], gene j -> o[n_out*j + k]
 *               (k = 0 expression, 1 is-zero logit): position 0 only
 *   MLM         regression / is-zero scalars at every position
 *   labels      logits = W_l in + b_l, in = z[cell start + decode_from] (raw
 *               hidden state, 47M) or the pooler output (32M); GRL heads pass
 *               -alpha * gradient back.
 * Outputs land in m->a (wced_out, mlm_reg, mlm_iz, logits[i], pool).
 * Backward reads the gradients of those outputs from m->a (dwced_out,
 * dmlm_reg, dmlm_iz, dlogits[i]; the losses fill them, NULL-able by flags),
 * accumulates parameter gradients and writes the gradient w.r.t. z into
 * m->a.dres (overwritten), ready for bmfm_encoder_backward.
 */
#ifndef BMFM_MODEL_HEADS_H
#define BMFM_MODEL_HEADS_H

#include "model/model.h"

typedef struct bmfm_head_sel {
    int wced, mlm, labels; /* which heads to evaluate (ignored when absent from the model) */
} bmfm_head_sel;

bmfm_status bmfm_heads_forward(bmfm_model *m, bmfm_head_sel sel);
bmfm_status bmfm_heads_backward(bmfm_model *m, bmfm_head_sel sel);

#endif
