/* rng.c - xoshiro256** (Blackman & Vigna) seeded through splitmix64. */
#include "base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void bmfm_rng_seed(bmfm_rng *r, uint64_t seed, uint64_t stream) {
    /* Mix the stream into the seed so neighbouring streams are unrelated. */
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t bmfm_rng_u64(bmfm_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double bmfm_rng_uniform(bmfm_rng *r) { return (double)(bmfm_rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t bmfm_rng_below(bmfm_rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = bmfm_rng_u64(r);
    while (x >= limit);
    return x % n;
}

double bmfm_rng_normal(bmfm_rng *r) {
    double u1, u2;
    do u1 = bmfm_rng_uniform(r);
    while (u1 <= 0.0);
    u2 = bmfm_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void bmfm_rng_shuffle_i32(bmfm_rng *r, int32_t *a, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)bmfm_rng_below(r, (uint64_t)i + 1);
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
