/* adamw.h - AdamW over the flat parameter arena of a model (the optimizer of
 * BaseTrainingModule.configure_optimizers, bmfm_reference.md 5):
 * torch.optim.AdamW semantics (decoupled decay p *= 1 - lr*wd first, then
 * m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)),
 * defaults betas (0.9, 0.99), eps 1e-8. Weight decay applies only to
 * nn.Linear weights: 2-D trainable tensors other than the *_embeddings.weight
 * tables (get_weight_decay_groups); parameters marked not trainable (the ScaleAdapt
 * basis) are never touched. Also global grad-norm clipping as
 * torch.nn.utils.clip_grad_norm_.
 *
 * Not here: the learning-rate schedule (schedule.h), the gradients.
 */
#ifndef BMFM_TRAIN_ADAMW_H
#define BMFM_TRAIN_ADAMW_H

#include "base/error.h"
#include "model/params.h"

#include <stdint.h>

typedef struct bmfm_adamw {
    double beta1, beta2, eps, weight_decay;
    int64_t step;       /* optimizer steps taken */
    int64_t total;      /* floats in the arena */
    float *m, *v;       /* [total] moments */
    uint8_t *decay;     /* [n params] 1 = in the decay group */
    uint8_t *train;     /* [n params] 1 = updated */
    const bmfm_param_table *table;
} bmfm_adamw;

/* 1 if the tensor is in the weight-decay group (a Linear weight). */
int bmfm_adamw_decays(const bmfm_param_info *pi);
bmfm_status bmfm_adamw_init(bmfm_adamw *o, const bmfm_param_table *t, double weight_decay);
void bmfm_adamw_free(bmfm_adamw *o);
/* One step with learning rate lr over params/grads laid out by the table. */
void bmfm_adamw_step(bmfm_adamw *o, float *params, const float *grads, double lr);

/* L2 norm of the trainable gradients (double accumulation, table order). */
double bmfm_grad_norm(const bmfm_param_table *t, const float *grads);
/* clip_grad_norm_(max_norm): scale by max_norm / (norm + 1e-6) when that is
 * below 1. Returns the norm before clipping. */
double bmfm_grad_clip(const bmfm_param_table *t, float *grads, double max_norm);

#endif
