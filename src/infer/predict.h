/* predict.h - label-head outputs as obs columns: for every head the argmax
 * class with its name from the checkpoint's label_dict and its softmax
 * probability (the reference's predictions); for ontology (HCE) heads, given
 * an OBO file, also the term name, the greedy top-down call, the abstaining
 * call (deepest node on the greedy path with mass >= min_prob, missing when
 * even the root has less), and roll-ups to requested depths or coarse types
 * (bmfm_reference.md 6.3). Probabilities of every class only on request.
 *
 * Decoding runs per cell from the pipeline's hook (embed.h), so nothing of
 * size n_obs x K is kept unless --probs asks for it.
 */
#ifndef BMFM_INFER_PREDICT_H
#define BMFM_INFER_PREDICT_H

#include "infer/embed.h"
#include "io/h5ad_write.h"

typedef enum { BMFM_DECODE_LEAF = 0, BMFM_DECODE_GREEDY = 1 } bmfm_decode_mode;

typedef struct bmfm_predict_opts {
    const char *ontology;   /* OBO file for ontology heads; NULL = leaf argmax only */
    bmfm_decode_mode decode; /* what the main column holds for ontology heads */
    double min_prob;        /* tau of the abstaining call */
    const char *levels;     /* "1,2,3" depths and/or coarse types "T cell;B cell;monocyte" */
} bmfm_predict_opts;

typedef struct bmfm_predict bmfm_predict;

bmfm_status bmfm_predict_new(bmfm_infer_model *m, const bmfm_predict_opts *o, int64_t n_obs,
                             bmfm_predict **out);
void bmfm_predict_free(bmfm_predict *p);
/* The hook to give bmfm_infer_run. */
bmfm_infer_hook bmfm_predict_hook(bmfm_predict *p);
/* Write obs columns <prefix><label>[_prob|_name|_greedy|_call|_call_prob|
 * _level<d>|_coarse] and, when r kept probabilities, obsm <prefix><label>_probs. */
bmfm_status bmfm_predict_write(bmfm_predict *p, const bmfm_infer_result *r, bmfm_h5ad_edit *e,
                               const char *prefix);

#endif
