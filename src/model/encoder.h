/* encoder.h - forward and backward of the bidirectional LLaMA encoder of
 * BMFM-RNA v2 over a packed batch (bmfm_reference.md section 3.1):
 *   e = E_gene[g] + ExprEnc(x);  h = LayerNorm(e, eps 1e-12)
 *   block l: h += proj(Attn(l == 0 ? h : RMSNorm_1(h)));  h += SwiGLU(RMSNorm_2(h))
 *   z = h (no final norm).
 * Attention is bidirectional within each cell (cu_seqlens), never across.
 * Backward accumulates into the gradient arena (callers zero it per step)
 * and starts from a.dres, the gradient w.r.t. z that the heads leave there.
 * Not here: the heads (heads.h) and losses.
 */
#ifndef BMFM_MODEL_ENCODER_H
#define BMFM_MODEL_ENCODER_H

#include "model/model.h"

/* Forward through the encoder; z = bmfm_encoder_output(m). Validates ids and
 * special codes. The batch arrays must stay valid until backward. */
bmfm_status bmfm_encoder_forward(bmfm_model *m, const bmfm_batch *b);
/* z[N, C] of the last forward. */
const float *bmfm_encoder_output(const bmfm_model *m);
/* Hidden state after block l (l = -1: the embeddings, l = NL-1: z); NULL if
 * not kept (inference without keep_hidden only keeps z). */
const float *bmfm_encoder_hidden(const bmfm_model *m, int l);
/* Backward from a.dres (gradient w.r.t. z, [N,C]); a.dres is consumed. */
bmfm_status bmfm_encoder_backward(bmfm_model *m);

#endif
