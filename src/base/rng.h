/* rng.h - deterministic random numbers (xoshiro256**, seeded by splitmix64).
 *
 * Every random decision in bmfm (gene order, masking, dropout, CV folds) takes
 * its generator from a (seed, stream) pair, so a cell's draws do not depend on
 * which thread or batch handles it: stream = the cell's global index.
 */
#ifndef BMFM_BASE_RNG_H
#define BMFM_BASE_RNG_H

#include <stdint.h>

typedef struct bmfm_rng {
    uint64_t s[4];
} bmfm_rng;

void bmfm_rng_seed(bmfm_rng *r, uint64_t seed, uint64_t stream);
uint64_t bmfm_rng_u64(bmfm_rng *r);
double bmfm_rng_uniform(bmfm_rng *r);          /* [0, 1), 53 bits */
uint64_t bmfm_rng_below(bmfm_rng *r, uint64_t n); /* uniform integer in [0, n), unbiased */
double bmfm_rng_normal(bmfm_rng *r);            /* standard normal (Box-Muller) */
/* Fisher-Yates shuffle of an int32 array. */
void bmfm_rng_shuffle_i32(bmfm_rng *r, int32_t *a, int64_t n);

#endif
