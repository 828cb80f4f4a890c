/* batch.h - a packed batch of cells for the encoder: B cells, N tokens in
 * total, no padding. Cell b owns tokens [cu_seqlens[b], cu_seqlens[b+1]).
 * Token n has a gene id (int32) and an expression value: the log-normalized
 * value for a gene, exactly 0 for a zero (the zero token), and -(token_id+1)
 * at special positions ([CLS] -> -4, [SEP] -> -2, [CLS_k] -> -6-k, [MASK]
 * -> -5), as the reference collator encodes them (bmfm_reference.md 2.2).
 *
 * Training targets are optional (NULL when unused):
 *   wced_target[B*V]   normalized expression of every vocab gene, -100 = ignore
 *   mlm_target[N]      original value at masked positions, -100 elsewhere
 *   label_class[l][B]  class index for label head l (CE / focal), -100 = ignore (int64, as loss_label.h)
 *   label_dense[l]     [B, K+1] multi-hot + flag (HCE), see loss_label.h
 * The batch does not own its arrays; whoever builds it frees them.
 */
#ifndef BMFM_MODEL_BATCH_H
#define BMFM_MODEL_BATCH_H

#include <stdint.h>

typedef struct bmfm_batch {
    int64_t B, N;
    const int64_t *cu_seqlens; /* [B+1], cu_seqlens[0] = 0, cu_seqlens[B] = N */
    const int32_t *gene_ids;   /* [N] */
    const float *expr;         /* [N] */
    const float *wced_target;  /* [B, V] or NULL */
    const float *mlm_target;   /* [N] or NULL */
    const int64_t *const *label_class; /* [n_labels] of [B], entries may be NULL */
    const float *const *label_dense;   /* [n_labels] of [B, K+1], entries may be NULL */
} bmfm_batch;

#endif
