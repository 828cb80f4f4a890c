/* adamw.c - AdamW and gradient clipping over the flat arenas (adamw.h). */
#include "train/adamw.h"

#include "base/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* nn.Embedding tables are the tensors named *_embeddings.weight (genes,
 * special tokens); every other 2-D weight is an nn.Linear (the expression
 * encoder's dense layers included), as get_weight_decay_groups sorts them by
 * module type. */
int bmfm_adamw_decays(const bmfm_param_info *pi) {
    size_t n = strlen(pi->name), k = strlen("_embeddings.weight");
    int embedding = n >= k && strcmp(pi->name + n - k, "_embeddings.weight") == 0;
    return pi->trainable && pi->ndim == 2 && !embedding;
}

bmfm_status bmfm_adamw_init(bmfm_adamw *o, const bmfm_param_table *t, double weight_decay) {
    memset(o, 0, sizeof *o);
    o->beta1 = 0.9;
    o->beta2 = 0.99;
    o->eps = 1e-8;
    o->weight_decay = weight_decay;
    o->table = t;
    o->total = t->total;
    o->m = bmfm_calloc((size_t)t->total, sizeof(float));
    o->v = bmfm_calloc((size_t)t->total, sizeof(float));
    o->decay = bmfm_calloc((size_t)t->n + 1, 1);
    o->train = bmfm_calloc((size_t)t->n + 1, 1);
    if (!o->m || !o->v || !o->decay || !o->train) {
        bmfm_adamw_free(o);
        return bmfm_error_set(BMFM_E_NOMEM, "adamw: out of memory for %lld moments", (long long)t->total);
    }
    for (int i = 0; i < t->n; i++) {
        o->decay[i] = (uint8_t)bmfm_adamw_decays(&t->info[i]);
        o->train[i] = (uint8_t)(t->info[i].trainable != 0);
    }
    return BMFM_OK;
}

void bmfm_adamw_free(bmfm_adamw *o) {
    free(o->m);
    free(o->v);
    free(o->decay);
    free(o->train);
    memset(o, 0, sizeof *o);
}

void bmfm_adamw_step(bmfm_adamw *o, float *params, const float *grads, double lr) {
    o->step++;
    const double b1 = o->beta1, b2 = o->beta2;
    const double bc1 = 1.0 - pow(b1, (double)o->step);
    const double bc2_sqrt = sqrt(1.0 - pow(b2, (double)o->step));
    const float step_size = (float)(lr / bc1);
    const float fb1 = (float)b1, fb2 = (float)b2, eps = (float)o->eps, fbc2 = (float)bc2_sqrt;
    for (int i = 0; i < o->table->n; i++) {
        if (!o->train[i]) continue;
        const bmfm_param_info *pi = &o->table->info[i];
        float *p = params + pi->offset, *m = o->m + pi->offset, *v = o->v + pi->offset;
        const float *g = grads + pi->offset;
        const float shrink = o->decay[i] ? (float)(1.0 - lr * o->weight_decay) : 1.0f;
        for (int64_t k = 0; k < pi->numel; k++) {
            float gk = g[k];
            p[k] *= shrink;
            m[k] += (1.0f - fb1) * (gk - m[k]); /* exp_avg.lerp_(grad, 1 - beta1) */
            v[k] = v[k] * fb2 + (1.0f - fb2) * (gk * gk);
            float denom = sqrtf(v[k]) / fbc2 + eps;
            p[k] -= step_size * (m[k] / denom);
        }
    }
}

double bmfm_grad_norm(const bmfm_param_table *t, const float *grads) {
    double ss = 0;
    for (int i = 0; i < t->n; i++) {
        const bmfm_param_info *pi = &t->info[i];
        if (!pi->trainable) continue;
        const float *g = grads + pi->offset;
        for (int64_t k = 0; k < pi->numel; k++) ss += (double)g[k] * g[k];
    }
    return sqrt(ss);
}

double bmfm_grad_clip(const bmfm_param_table *t, float *grads, double max_norm) {
    double norm = bmfm_grad_norm(t, grads);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (int i = 0; i < t->n; i++) {
            const bmfm_param_info *pi = &t->info[i];
            if (!pi->trainable) continue;
            float *g = grads + pi->offset;
            for (int64_t k = 0; k < pi->numel; k++) g[k] *= c;
        }
    }
    return norm;
}
