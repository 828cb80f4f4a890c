/* targets.h - training targets built from a cell's raw counts
 * (bmfm_reference.md 2.7, 4.1):
 *
 *  - WCED targets over the whole genes vocabulary, from the FULL cell (not
 *    the truncated input): the normalized expression ln(1 + c/(S+1)*1e4)
 *    (S = sum of the counts on vocabulary genes, duplicates summed, exactly as
 *    tokenize.h) for every expressed gene, 0 for a vocabulary gene the
 *    dataset has but the cell does not express (the "all_genes" target with
 *    expose_zeros: all), -100 for vocabulary ids the dataset lacks and for
 *    the special ids.
 *  - MLM masking of the expression field (Masker, change 0.15, mask 0.95,
 *    no switch): per non-special position r ~ U(0,1) from a generator seeded
 *    by (seed, cell); r <= 0.15 -> label = original value, and if also
 *    r <= 0.15*0.95 the input becomes [MASK] (-5); label -100 elsewhere.
 *
 * Not here: tokenization (tokenize.h), label targets (onto/labelspace.h).
 */
#ifndef BMFM_DATA_TARGETS_H
#define BMFM_DATA_TARGETS_H

#include "base/error.h"

#include <stdint.h>

/* base[V]: -100 everywhere, 0 at every vocabulary id some var column maps to
 * (var_to_token[j] in [0, V), -1 = not kept). */
void bmfm_wced_base(float *base, int64_t V, const int32_t *var_to_token, int64_t n_vars);

/* out[V] for one cell (CSR row: indices into var, counts): base, then the
 * normalized value of each expressed vocabulary gene. acc[V] is caller
 * scratch of zeros and is left zeroed. Negative counts are an input error. */
bmfm_status bmfm_wced_target_row(float *out, const float *base, int64_t V, const int32_t *var_to_token,
                                 const int32_t *indices, const float *counts, int64_t nnz, double *acc);

typedef struct bmfm_mlm_opts {
    double change_ratio; /* 0.15 */
    double mask_ratio;   /* 0.95 */
    float mask_value;    /* -(id of [MASK] + 1) = -5 */
} bmfm_mlm_opts;

void bmfm_mlm_opts_default(bmfm_mlm_opts *o);
/* Mask one cell's expression values in place (n tokens; specials are the
 * negative values and are never chosen) and write label[n]. Returns the
 * number of positions with a label. */
int64_t bmfm_mlm_mask(float *expr, float *label, int64_t n, const bmfm_mlm_opts *o, uint64_t seed, uint64_t cell);

#endif
