/* test_nn.c - the CPU kernels of src/nn: optimized versus reference,
 * finite-difference gradients in double, accumulate semantics, packed
 * attention versus per-cell, thread-count invariance, ScaleAdapt numerics,
 * and a PyTorch cross-check (tests/ref/nn_oracle.py). */
#include "test_util.h"

#include "base/rng.h"
#include "nn/nn.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *randv(bmfm_rng *r, int64_t n, float scale)
{
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(bmfm_rng_normal(r) * scale);
    return v;
}

static float *zerov(int64_t n)
{
    return calloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

static float *dupv(const float *a, int64_t n)
{
    float *v = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    memcpy(v, a, sizeof(float) * (size_t)n);
    return v;
}

static void assert_close(const float *a, const float *b, int64_t n, double tol, const char *what)
{
    double e = tu_max_scaled_err_f32(a, b, (size_t)n);
    if (e > tol)
        fail_msg("%s: scaled error %.3g > %.3g", what, e, tol);
}

static void test_matmul_opt_vs_ref(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 1, 0);
    int64_t N = 37, IN = 29, OUT = 23;
    float *x = randv(&r, N * IN, 1), *w = randv(&r, OUT * IN, 1), *b = randv(&r, OUT, 1);
    float *g = randv(&r, N * OUT, 1);
    float *o1 = zerov(N * OUT), *o2 = zerov(N * OUT);
    bmfm_matmul_forward(o1, x, w, b, N, IN, OUT);
    bmfm_matmul_forward_ref(o2, x, w, b, N, IN, OUT);
    assert_close(o1, o2, N * OUT, 1e-6, "matmul fwd");
    float *dx1 = randv(&r, N * IN, 1), *dx2 = dupv(dx1, N * IN);
    float *dw1 = randv(&r, OUT * IN, 1), *dw2 = dupv(dw1, OUT * IN);
    float *db1 = randv(&r, OUT, 1), *db2 = dupv(db1, OUT);
    bmfm_matmul_backward(dx1, dw1, db1, g, x, w, N, IN, OUT);
    bmfm_matmul_backward_ref(dx2, dw2, db2, g, x, w, N, IN, OUT);
    assert_close(dx1, dx2, N * IN, 1e-6, "matmul dinp");
    assert_close(dw1, dw2, OUT * IN, 1e-6, "matmul dweight");
    assert_close(db1, db2, OUT, 1e-6, "matmul dbias");
    free(x), free(w), free(b), free(g), free(o1), free(o2), free(dx1), free(dx2), free(dw1),
        free(dw2), free(db1), free(db2);
}

static void test_attention_opt_vs_ref(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 2, 0);
    int64_t NH = 3, HS = 8, C = NH * HS, B = 3;
    int64_t cu[4] = {0, 5, 6, 26};
    int64_t N = cu[B];
    float *qkv = randv(&r, N * 3 * C, 1), *g = randv(&r, N * C, 1);
    float *o1 = zerov(N * C), *o2 = zerov(N * C), *l1 = zerov(NH * N), *l2 = zerov(NH * N);
    bmfm_attention_forward(o1, l1, qkv, cu, B, N, NH, HS);
    bmfm_attention_forward_ref(o2, l2, qkv, cu, B, N, NH, HS);
    assert_close(o1, o2, N * C, 1e-6, "attention out");
    assert_close(l1, l2, NH * N, 1e-6, "attention lse");
    float *d1 = zerov(N * 3 * C), *d2 = zerov(N * 3 * C);
    bmfm_attention_backward(d1, g, qkv, o1, l1, cu, B, N, NH, HS);
    bmfm_attention_backward_ref(d2, g, qkv, o2, l2, cu, B, N, NH, HS);
    assert_close(d1, d2, N * 3 * C, 1e-5, "attention dqkv");
    free(qkv), free(g), free(o1), free(o2), free(l1), free(l2), free(d1), free(d2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_opt_vs_ref),
        cmocka_unit_test(test_attention_opt_vs_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
