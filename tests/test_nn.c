/* test_nn.c - the CPU kernels of src/nn.
 *
 * - finite differences: every backward against central differences of the
 *   loss L = sum(dout * out) accumulated in double, the forward evaluated in
 *   float with exactly representable perturbations; Richardson-extrapolated
 *   (O(h^4)) so the tolerance can be tight enough that a missing term fails
 *   (the harness is checked on a deliberately corrupted gradient);
 * - optimized versus `_ref` on sizes that exercise threading and SIMD tails,
 *   for every ISA the CPU has;
 * - accumulate semantics (backward adds into prefilled gradients);
 * - packed variable-length attention equals per-cell attention, bit for bit;
 *   projection rows and SwiGLU values are the same alone or in a batch;
 * - bit-identical results with 1 and 2 OpenMP / OpenBLAS threads;
 * - the bf16 projection against a double reference of its rounded operands
 *   (kernel exactness) and against float32 (accuracy);
 * - ScaleAdapt features: float32 product, correctly reduced sin/cos against a
 *   double sin of the exact float product; special-token index rule; padding
 *   row 2 gets no gradient;
 * - PyTorch cross-check via tests/ref/nn_oracle.py.
 */
#include "test_util.h"

#include "base/rng.h"
#include "nn/gemm.h"
#include "nn/nn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers --------------------------------------------------------- */

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
    if (!(e <= tol))
        fail_msg("%s: scaled error %.3g > %.3g", what, e, tol);
}

/* elementwise relative error max |a-b| / (|b| + floor) */
static void assert_rel(const float *a, const float *b, int64_t n, double tol, double floor,
                       const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + floor);
        if (!(e <= tol))
            fail_msg("%s[%lld]: %.9g vs %.9g (rel %.3g > %.3g)", what, (long long)i, a[i], b[i], e,
                     tol);
    }
}

/* swiglu da: the factor sig(a)(1 + a(1 - sig(a))) crosses zero at a = -1.278,
 * so its relative error is measured against the scale |dout * b| as well */
static void assert_swiglu_da(const float *a, const float *b, const float *g, const float *bb,
                             int64_t n, double tol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (fabs((double)b[i]) + fabs((double)g[i] * bb[i]) + 1e-30);
        if (!(e <= tol))
            fail_msg("%s[%lld]: %.9g vs %.9g (rel %.3g > %.3g)", what, (long long)i, a[i], b[i], e, tol);
    }
}

static void assert_same_bits(const float *a, const float *b, int64_t n, const char *what)
{
    if (memcmp(a, b, sizeof(float) * (size_t)n) != 0) {
        for (int64_t i = 0; i < n; i++)
            if (memcmp(a + i, b + i, sizeof(float)))
                fail_msg("%s: differs at %lld (%.9g vs %.9g)", what, (long long)i, a[i], b[i]);
    }
}

static double dot_loss(const float *g, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += (double)g[i] * y[i];
    return s;
}

/* ---- finite-difference harness ---------------------------------------------- */

typedef double (*loss_fn)(void *ctx);

/* Derivative of loss() w.r.t. p[i] by central differences with step h and
 * h/2, Richardson-combined; the steps are the exact float perturbations. */
static double fd_deriv(float *p, int64_t i, double h, loss_fn loss, void *ctx)
{
    float x0 = p[i];
    double d[2];
    for (int s = 0; s < 2; s++) {
        double hs = h / (1 << s) * (1.0 + fabs(x0));
        float xp = (float)(x0 + hs), xm = (float)(x0 - hs);
        p[i] = xp;
        double lp = loss(ctx);
        p[i] = xm;
        double lm = loss(ctx);
        p[i] = x0;
        d[s] = (lp - lm) / ((double)xp - (double)xm);
    }
    return (4 * d[1] - d[0]) / 3;
}

/* Max over i of |fd - grad| / (max|grad| + tiny); 0 for an all-zero gradient. */
static double fd_error(float *p, int64_t n, const float *grad, double h, loss_fn loss, void *ctx)
{
    double scale = 1e-12, worst = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs(grad[i]) > scale)
            scale = fabs(grad[i]);
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(fd_deriv(p, i, h, loss, ctx) - grad[i]) / scale;
        if (!(e <= worst))
            worst = e;
    }
    return worst;
}

#define FD_TOL 2e-3
#define FD_H 1e-2

static void fd_check(const char *what, float *p, int64_t n, const float *grad, loss_fn loss, void *ctx)
{
    double e = fd_error(p, n, grad, FD_H, loss, ctx);
    if (!(e <= FD_TOL))
        fail_msg("%s: finite-difference error %.3g > %g", what, e, FD_TOL);
}

/* ---- layer contexts for the finite differences ------------------------------ */

typedef struct {
    float *x, *w, *b, *y, *g;
    int64_t N, IN, OUT;
} mm_ctx;

static double mm_loss(void *c)
{
    mm_ctx *m = c;
    bmfm_matmul_forward(m->y, m->x, m->w, m->b, m->N, m->IN, m->OUT);
    return dot_loss(m->g, m->y, m->N * m->OUT);
}

typedef struct {
    float *x, *w, *b, *y, *g, *mean, *rstd;
    int64_t N, C;
    int rms;
} norm_ctx;

static double norm_loss(void *c)
{
    norm_ctx *m = c;
    if (m->rms)
        bmfm_rmsnorm_forward(m->y, m->rstd, m->x, m->w, m->N, m->C, 1e-5f);
    else
        bmfm_layernorm_forward(m->y, m->mean, m->rstd, m->x, m->w, m->b, m->N, m->C, 1e-12f);
    return dot_loss(m->g, m->y, m->N * m->C);
}

typedef struct {
    float *a, *b, *y, *g;
    int64_t n;
    int kind; /* 0 swiglu, 1 gelu, 2 tanh, 3 leaky relu */
} act_ctx;

static double act_loss(void *c)
{
    act_ctx *m = c;
    switch (m->kind) {
    case 0: bmfm_swiglu_forward(m->y, m->a, m->b, m->n); break;
    case 1: bmfm_gelu_forward(m->y, m->a, m->n); break;
    case 2: bmfm_tanh_forward(m->y, m->a, m->n); break;
    default: bmfm_leaky_relu_forward(m->y, m->a, m->n, 0.01f); break;
    }
    return dot_loss(m->g, m->y, m->n);
}

typedef struct {
    float *qkv, *y, *lse, *g;
    const int64_t *cu;
    int64_t B, N, NH, HS;
} at_ctx;

static double at_loss(void *c)
{
    at_ctx *m = c;
    bmfm_attention_forward(m->y, m->lse, m->qkv, m->cu, m->B, m->N, m->NH, m->HS);
    return dot_loss(m->g, m->y, m->N * m->NH * m->HS);
}

typedef struct {
    float *x, *w1, *b1, *w2, *b2, *special, *hidden, *y, *g;
    float *feat, *basis, *dense;
    int64_t N, H1, C, NB;
    int32_t n_special;
    int scale_adapt;
} ex_ctx;

static double ex_loss(void *c)
{
    ex_ctx *m = c;
    if (m->scale_adapt)
        bmfm_scale_adapt_forward(m->y, m->feat, m->x, m->basis, m->dense, m->special, m->N, m->NB,
                                 m->C, m->n_special);
    else
        bmfm_mlp_expr_forward(m->y, m->hidden, m->x, m->w1, m->b1, m->w2, m->b2, m->special, m->N,
                              m->H1, m->C, m->n_special);
    return dot_loss(m->g, m->y, m->N * m->C);
}

/* ---- finite-difference tests ------------------------------------------------ */

static void test_fd_matmul(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 11, 0);
    mm_ctx m = {.N = 5, .IN = 7, .OUT = 6};
    m.x = randv(&r, m.N * m.IN, 1), m.w = randv(&r, m.OUT * m.IN, 1), m.b = randv(&r, m.OUT, 1);
    m.g = randv(&r, m.N * m.OUT, 1), m.y = zerov(m.N * m.OUT);
    float *dx = zerov(m.N * m.IN), *dw = zerov(m.OUT * m.IN), *db = zerov(m.OUT);
    bmfm_matmul_backward(dx, dw, db, m.g, m.x, m.w, m.N, m.IN, m.OUT);
    fd_check("matmul dinp", m.x, m.N * m.IN, dx, mm_loss, &m);
    fd_check("matmul dweight", m.w, m.OUT * m.IN, dw, mm_loss, &m);
    fd_check("matmul dbias", m.b, m.OUT, db, mm_loss, &m);
    /* the harness must reject a gradient that is wrong by 1% in one entry */
    dw[3] *= 1.01f;
    assert_true(fd_error(m.w, m.OUT * m.IN, dw, FD_H, mm_loss, &m) > FD_TOL);
    free(m.x), free(m.w), free(m.b), free(m.g), free(m.y), free(dx), free(dw), free(db);
}

static void fd_norm(int rms)
{
    bmfm_rng r;
    bmfm_rng_seed(&r, 12 + rms, 0);
    norm_ctx m = {.N = 4, .C = 9, .rms = rms};
    m.x = randv(&r, m.N * m.C, 1.5f), m.w = randv(&r, m.C, 1), m.b = randv(&r, m.C, 1);
    for (int64_t i = 0; i < m.C; i++)
        m.x[i] += 0.7f; /* a row with a non-zero mean */
    m.g = randv(&r, m.N * m.C, 1), m.y = zerov(m.N * m.C);
    m.mean = zerov(m.N), m.rstd = zerov(m.N);
    float *dx = zerov(m.N * m.C), *dw = zerov(m.C), *db = zerov(m.C);
    norm_loss(&m);
    if (rms) {
        bmfm_rmsnorm_backward(dx, dw, m.g, m.x, m.w, m.rstd, m.N, m.C);
        fd_check("rmsnorm dinp", m.x, m.N * m.C, dx, norm_loss, &m);
        fd_check("rmsnorm dscale", m.w, m.C, dw, norm_loss, &m);
    } else {
        bmfm_layernorm_backward(dx, dw, db, m.g, m.x, m.w, m.mean, m.rstd, m.N, m.C);
        fd_check("layernorm dinp", m.x, m.N * m.C, dx, norm_loss, &m);
        fd_check("layernorm dweight", m.w, m.C, dw, norm_loss, &m);
        fd_check("layernorm dbias", m.b, m.C, db, norm_loss, &m);
    }
    free(m.x), free(m.w), free(m.b), free(m.g), free(m.y), free(m.mean), free(m.rstd), free(dx),
        free(dw), free(db);
}

static void test_fd_layernorm(void **state)
{
    (void)state;
    fd_norm(0);
}

static void test_fd_rmsnorm(void **state)
{
    (void)state;
    fd_norm(1);
}

static void test_fd_activations(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 13, 0);
    for (int kind = 0; kind < 4; kind++) {
        act_ctx m = {.n = 40, .kind = kind};
        m.a = randv(&r, m.n, 2), m.b = randv(&r, m.n, 1), m.g = randv(&r, m.n, 1);
        m.y = zerov(m.n);
        if (kind == 3) /* keep leaky relu away from its kink */
            for (int64_t i = 0; i < m.n; i++)
                if (fabsf(m.a[i]) < 0.1f)
                    m.a[i] = 0.5f;
        float *da = zerov(m.n), *db = zerov(m.n);
        act_loss(&m);
        switch (kind) {
        case 0:
            bmfm_swiglu_backward(da, db, m.g, m.a, m.b, m.n);
            fd_check("swiglu db", m.b, m.n, db, act_loss, &m);
            break;
        case 1: bmfm_gelu_backward(da, m.g, m.a, m.n); break;
        case 2: bmfm_tanh_backward(da, m.g, m.y, m.n); break;
        default: bmfm_leaky_relu_backward(da, m.g, m.a, m.n, 0.01f); break;
        }
        const char *names[] = {"swiglu da", "gelu", "tanh", "leaky relu"};
        fd_check(names[kind], m.a, m.n, da, act_loss, &m);
        free(m.a), free(m.b), free(m.g), free(m.y), free(da), free(db);
    }
}

static void test_fd_attention(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 14, 0);
    int64_t cu[4] = {0, 4, 5, 11};
    at_ctx m = {.cu = cu, .B = 3, .N = 11, .NH = 2, .HS = 4};
    int64_t C = m.NH * m.HS;
    m.qkv = randv(&r, m.N * 3 * C, 1), m.g = randv(&r, m.N * C, 1);
    m.y = zerov(m.N * C), m.lse = zerov(m.NH * m.N);
    float *d = zerov(m.N * 3 * C);
    at_loss(&m);
    bmfm_attention_backward(d, m.g, m.qkv, m.y, m.lse, cu, m.B, m.N, m.NH, m.HS);
    fd_check("attention dqkv", m.qkv, m.N * 3 * C, d, at_loss, &m);
    float *d2 = zerov(m.N * 3 * C);
    bmfm_attention_backward_ref(d2, m.g, m.qkv, m.y, m.lse, cu, m.B, m.N, m.NH, m.HS);
    fd_check("attention_ref dqkv", m.qkv, m.N * 3 * C, d2, at_loss, &m);
    free(m.qkv), free(m.g), free(m.y), free(m.lse), free(d), free(d2);
}

static float *make_basis(int64_t NB)
{
    float *b = malloc(sizeof(float) * (size_t)NB);
    float b0 = (float)(2 * M_PI * 0.01);
    for (int64_t k = 0; k < NB; k++)
        b[k] = b0 * ldexpf(1.0f, (int)k);
    return b;
}

/* expression values with continuous, zero, special and padding (-3) rows */
static const float k_expr_x[] = {1.5f, 0.0f, -4.0f, 0.25f, -3.0f, 3.0f, -6.0f, 0.0f, 2.0f, -4.0f};
#define K_EXPR_N 10

static void test_fd_expr_encoders(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 15, 0);
    ex_ctx m = {.N = K_EXPR_N, .H1 = 6, .C = 5, .NB = 4, .n_special = 6};
    m.x = dupv(k_expr_x, m.N);
    m.g = randv(&r, m.N * m.C, 1), m.y = zerov(m.N * m.C);
    int64_t S = m.n_special + 1;
    /* MLP encoder */
    m.w1 = randv(&r, m.H1, 1), m.b1 = randv(&r, m.H1, 1), m.w2 = randv(&r, m.C * m.H1, 1);
    m.b2 = randv(&r, m.C, 1), m.special = randv(&r, S * m.H1, 1), m.hidden = zerov(m.N * m.H1);
    float *dw1 = zerov(m.H1), *db1 = zerov(m.H1), *dw2 = zerov(m.C * m.H1), *db2 = zerov(m.C);
    float *ds = zerov(S * m.H1);
    ex_loss(&m);
    bmfm_mlp_expr_backward(dw1, db1, dw2, db2, ds, m.g, m.hidden, m.x, m.w1, m.b1, m.w2, m.N, m.H1,
                           m.C, m.n_special, 2);
    fd_check("mlp_expr dw1", m.w1, m.H1, dw1, ex_loss, &m);
    fd_check("mlp_expr db1", m.b1, m.H1, db1, ex_loss, &m);
    fd_check("mlp_expr dw2", m.w2, m.C * m.H1, dw2, ex_loss, &m);
    fd_check("mlp_expr db2", m.b2, m.C, db2, ex_loss, &m);
    for (int64_t j = 0; j < m.H1; j++) /* padding row 2: used (x=-3) but no gradient */
        assert_true(ds[2 * m.H1 + j] == 0.0f);
    for (int64_t j = 0; j < m.H1; j++)
        m.special[2 * m.H1 + j] = 0; /* as nn.Embedding(padding_idx) keeps it */
    float *ds_np = dupv(ds, S * m.H1);
    fd_check("mlp_expr dspecial (rows except padding)", m.special + 3 * m.H1, (S - 3) * m.H1,
             ds_np + 3 * m.H1, ex_loss, &m);
    fd_check("mlp_expr dspecial (rows 0-1)", m.special, 2 * m.H1, ds_np, ex_loss, &m);
    free(dw1), free(db1), free(dw2), free(db2), free(ds), free(ds_np), free(m.w1), free(m.b1),
        free(m.w2), free(m.b2), free(m.special), free(m.hidden);

    /* ScaleAdapt: linear in dense and special, so the check is exact up to rounding */
    m.scale_adapt = 1;
    m.basis = make_basis(m.NB), m.dense = randv(&r, m.C * 2 * m.NB, 1);
    m.special = randv(&r, S * m.C, 1), m.feat = zerov(m.N * 2 * m.NB);
    float *dd = zerov(m.C * 2 * m.NB), *dsp = zerov(S * m.C);
    ex_loss(&m);
    bmfm_scale_adapt_backward(dd, dsp, m.g, m.feat, m.x, m.N, m.NB, m.C, m.n_special, 2);
    fd_check("scale_adapt ddense", m.dense, m.C * 2 * m.NB, dd, ex_loss, &m);
    for (int64_t c = 0; c < m.C; c++)
        assert_true(dsp[2 * m.C + c] == 0.0f);
    fd_check("scale_adapt dspecial rows 0-1", m.special, 2 * m.C, dsp, ex_loss, &m);
    fd_check("scale_adapt dspecial rows 3+", m.special + 3 * m.C, (S - 3) * m.C, dsp + 3 * m.C,
             ex_loss, &m);
    free(dd), free(dsp), free(m.basis), free(m.dense), free(m.special), free(m.feat);
    free(m.x), free(m.g), free(m.y);
}

static void test_embedding(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 16, 0);
    int64_t V = 6, C = 70, N = 9;
    int32_t ids[9] = {1, 2, 5, 1, 0, 2, 5, 1, 3};
    float *table = randv(&r, V * C, 1), *out = zerov(N * C), *g = randv(&r, N * C, 1);
    bmfm_embedding_forward(out, ids, table, N, C);
    for (int64_t n = 0; n < N; n++)
        assert_memory_equal(out + n * C, table + ids[n] * C, sizeof(float) * (size_t)C);
    float *d = zerov(V * C);
    bmfm_embedding_backward(d, g, ids, N, C, 2);
    for (int64_t v = 0; v < V; v++)
        for (int64_t c = 0; c < C; c++) {
            float want = 0.0f; /* token order */
            for (int64_t n = 0; n < N; n++)
                if (ids[n] == v && v != 2)
                    want += g[n * C + c];
            assert_true(d[v * C + c] == want);
        }
    free(table), free(out), free(g), free(d);
}

/* ---- ScaleAdapt numerics and the special-token rule ------------------------- */

static void test_special_index_rule(void **state)
{
    (void)state;
    assert_int_equal(bmfm_expr_special_index(0.0f, 36), 36); /* zero token */
    assert_int_equal(bmfm_expr_special_index(-4.0f, 36), 3); /* [CLS] id 3 */
    assert_int_equal(bmfm_expr_special_index(-2.0f, 36), 1); /* [SEP] */
    assert_int_equal(bmfm_expr_special_index(-3.0f, 36), 2); /* [PAD] */
    assert_int_equal(bmfm_expr_special_index(-5.0f, 36), 4); /* [MASK] */
    assert_int_equal(bmfm_expr_special_index(-6.0f, 36), 5); /* [CLS_0] */
}

static void test_scale_adapt_features(void **state)
{
    (void)state;
    int64_t NB = 48, N = 2000;
    float *basis = make_basis(NB);
    assert_true(basis[0] == 0.06283185631036758f); /* fl32(2*pi*0.01) */
    bmfm_rng r;
    bmfm_rng_seed(&r, 17, 0);
    float *x = malloc(sizeof(float) * (size_t)N);
    for (int64_t n = 0; n < N; n++) /* log-uniform over [1e-3, 1e5] */
        x[n] = (float)pow(10.0, -3 + 8 * bmfm_rng_uniform(&r));
    x[0] = 0.0f, x[1] = -4.0f, x[2] = 1.0f, x[3] = 6.9077554f;
    float *f = zerov(N * 2 * NB);
    bmfm_scale_adapt_features(f, x, basis, N, NB);
    double worst_ulp = 0, max_arg = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < NB; k++) {
            if (x[n] <= 0) {
                assert_true(f[n * 2 * NB + k] == 0.0f && f[n * 2 * NB + NB + k] == 0.0f);
                continue;
            }
            float arg = x[n] * basis[k];
            if (arg > max_arg)
                max_arg = arg;
            double want[2] = {sin((double)arg), cos((double)arg)};
            float got[2] = {f[n * 2 * NB + k], f[n * 2 * NB + NB + k]};
            for (int s = 0; s < 2; s++) {
                float wf = (float)want[s];
                double ulp = fabs((double)nextafterf(fabsf(wf), 2.0f) - fabsf(wf));
                double e = fabs(got[s] - want[s]) / ulp;
                if (e > worst_ulp)
                    worst_ulp = e;
            }
        }
    print_message("scale_adapt: max |arg| %.3g rad, worst error %.3f ulp\n", max_arg, worst_ulp);
    assert_true(max_arg > 1e13);
    assert_true(worst_ulp <= 1.0);
    free(basis), free(x), free(f);
}

/* ---- optimized versus reference, every ISA ---------------------------------- */

static void opt_vs_ref_all(void)
{
    bmfm_rng r;
    bmfm_rng_seed(&r, 21, 0);
    /* matmul */
    {
        int64_t N = 67, IN = 45, OUT = 33;
        float *x = randv(&r, N * IN, 1), *w = randv(&r, OUT * IN, 1), *b = randv(&r, OUT, 1);
        float *g = randv(&r, N * OUT, 1), *o1 = zerov(N * OUT), *o2 = zerov(N * OUT);
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
    /* norms (C not a multiple of 16: SIMD tails) */
    for (int rms = 0; rms < 2; rms++) {
        int64_t N = 300, C = 389;
        float *x = randv(&r, N * C, 2), *w = randv(&r, C, 1), *b = randv(&r, C, 1);
        float *g = randv(&r, N * C, 1);
        float *y1 = zerov(N * C), *y2 = zerov(N * C), *m1 = zerov(N), *m2 = zerov(N);
        float *s1 = zerov(N), *s2 = zerov(N);
        float *dx1 = randv(&r, N * C, 1), *dx2 = dupv(dx1, N * C);
        float *dw1 = randv(&r, C, 1), *dw2 = dupv(dw1, C), *db1 = randv(&r, C, 1), *db2 = dupv(db1, C);
        if (rms) {
            bmfm_rmsnorm_forward(y1, s1, x, w, N, C, 1e-5f);
            bmfm_rmsnorm_forward_ref(y2, s2, x, w, N, C, 1e-5f);
            bmfm_rmsnorm_backward(dx1, dw1, g, x, w, s1, N, C);
            bmfm_rmsnorm_backward_ref(dx2, dw2, g, x, w, s2, N, C);
        } else {
            bmfm_layernorm_forward(y1, m1, s1, x, w, b, N, C, 1e-12f);
            bmfm_layernorm_forward_ref(y2, m2, s2, x, w, b, N, C, 1e-12f);
            bmfm_layernorm_backward(dx1, dw1, db1, g, x, w, m1, s1, N, C);
            bmfm_layernorm_backward_ref(dx2, dw2, db2, g, x, w, m2, s2, N, C);
        }
        assert_close(y1, y2, N * C, 2e-6, "norm out");
        assert_close(s1, s2, N, 2e-6, "norm rstd");
        assert_close(m1, m2, N, 2e-6, "norm mean");
        assert_close(dx1, dx2, N * C, 2e-6, "norm dinp");
        assert_close(dw1, dw2, C, 2e-6, "norm dweight");
        assert_close(db1, db2, C, 2e-6, "norm dbias");
        free(x), free(w), free(b), free(g), free(y1), free(y2), free(m1), free(m2), free(s1),
            free(s2), free(dx1), free(dx2), free(dw1), free(dw2), free(db1), free(db2);
    }
    /* activations: elementwise relative accuracy 1e-6 of the libm reference */
    {
        int64_t n = 40000 + 13;
        float *a = randv(&r, n, 4), *b = randv(&r, n, 1), *g = randv(&r, n, 1);
        for (int64_t i = 0; i < 200; i++) /* the tails of exp and erf */
            a[i] = -40.0f + 0.4f * (float)i;
        float *y1 = zerov(n), *y2 = zerov(n);
        /* into zeros: an accumulated sum can cancel and hide the relative error */
        float *da1 = zerov(n), *da2 = zerov(n), *db1 = zerov(n), *db2 = zerov(n);
        bmfm_swiglu_forward(y1, a, b, n);
        bmfm_swiglu_forward_ref(y2, a, b, n);
        assert_rel(y1, y2, n, 1e-6, 1e-30, "swiglu out");
        bmfm_swiglu_backward(da1, db1, g, a, b, n);
        bmfm_swiglu_backward_ref(da2, db2, g, a, b, n);
        assert_swiglu_da(da1, da2, g, b, n, 1e-6, "swiglu da");
        assert_rel(db1, db2, n, 1e-6, 1e-6, "swiglu db");
        bmfm_gelu_forward(y1, a, n);
        bmfm_gelu_forward_ref(y2, a, n);
        assert_rel(y1, y2, n, 1e-6, 1e-30, "gelu out");
        memset(da1, 0, sizeof(float) * (size_t)n), memset(da2, 0, sizeof(float) * (size_t)n);
        bmfm_gelu_backward(da1, g, a, n);
        bmfm_gelu_backward_ref(da2, g, a, n);
        assert_rel(da1, da2, n, 1e-6, 1e-6, "gelu dinp");
        free(a), free(b), free(g), free(y1), free(y2), free(da1), free(da2), free(db1), free(db2);
    }
    /* attention: cell lengths around the register tiles (4, 8, 16 rows/keys),
     * the 128-row work units and the 256-key score tiles (online softmax
     * across tiles), one token; HS 32, 16, 64 (AVX-512 kernels) and 8 */
    for (int v = 0; v < 4; v++) {
        int64_t NH = v == 1 ? 2 : 3, HS = v == 0 ? 32 : v == 1 ? 8 : v == 2 ? 16 : 64, C = NH * HS;
        int64_t lens[] = {1, 65, 17, 130, 300, 3, 257};
        int64_t B = 7, cu[8] = {0};
        for (int64_t b = 0; b < B; b++)
            cu[b + 1] = cu[b] + lens[b];
        int64_t N = cu[B];
        float *qkv = randv(&r, N * 3 * C, 1.5f), *g = randv(&r, N * C, 1);
        float *o1 = zerov(N * C), *o2 = zerov(N * C), *l1 = zerov(NH * N), *l2 = zerov(NH * N);
        bmfm_attention_forward(o1, l1, qkv, cu, B, N, NH, HS);
        bmfm_attention_forward_ref(o2, l2, qkv, cu, B, N, NH, HS);
        assert_close(o1, o2, N * C, 2e-6, "attention out");
        assert_close(l1, l2, NH * N, 2e-6, "attention lse");
        float *d1 = randv(&r, N * 3 * C, 1), *d2 = dupv(d1, N * 3 * C);
        bmfm_attention_backward(d1, g, qkv, o1, l1, cu, B, N, NH, HS);
        bmfm_attention_backward_ref(d2, g, qkv, o2, l2, cu, B, N, NH, HS);
        assert_close(d1, d2, N * 3 * C, 1e-5, "attention dqkv");
        free(qkv), free(g), free(o1), free(o2), free(l1), free(l2), free(d1), free(d2);
    }
}

static void test_opt_vs_ref(void **state)
{
    (void)state;
    bmfm_isa best = bmfm_cpu_isa();
    for (int isa = BMFM_ISA_SCALAR; isa <= (int)best; isa++) {
        bmfm_set_isa((bmfm_isa)isa);
        print_message("opt vs ref, isa %d\n", isa);
        opt_vs_ref_all();
    }
    bmfm_set_isa(best);
}

/* ---- bfloat16 forward ---------------------------------------------------------- */

static float round_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u);
    u &= 0xFFFF0000u;
    memcpy(&f, &u, 4);
    return f;
}

static void test_matmul_bf16(void **state)
{
    (void)state;
    if (!bmfm_cpu_has_avx512_bf16()) {
        assert_int_equal(bmfm_matmul_set_precision(BMFM_MATMUL_BF16), BMFM_MATMUL_FP32);
        assert_int_equal(bmfm_matmul_get_precision(), BMFM_MATMUL_FP32);
        skip();
    }
    bmfm_rng r;
    bmfm_rng_seed(&r, 61, 0);
    int64_t N = 261, IN = 45, OUT = 70; /* tails of every tile, odd IN */
    float *x = randv(&r, N * IN, 1), *w = randv(&r, OUT * IN, 1), *b = randv(&r, OUT, 1);
    float *y = zerov(N * OUT), *y32 = zerov(N * OUT), *yr = zerov(N * OUT);
    assert_int_equal(bmfm_matmul_forward_bf16(y, x, w, b, N, IN, OUT), 0);
    /* kernel check: double-precision products of the bf16-rounded operands */
    double worst = 0, scale = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < OUT; o++) {
            double acc = b[o];
            for (int64_t k = 0; k < IN; k++)
                acc += (double)round_bf16(x[n * IN + k]) * round_bf16(w[o * IN + k]);
            yr[n * OUT + o] = (float)acc;
            worst = fmax(worst, fabs(acc - y[n * OUT + o]));
            scale = fmax(scale, fabs(acc));
        }
    assert_true(worst / scale < 1e-6);
    /* accuracy against float32, and the run-time switch */
    bmfm_matmul_forward_ref(y32, x, w, b, N, IN, OUT);
    double e = tu_max_scaled_err_f32(y, y32, (size_t)(N * OUT));
    print_message("bf16 matmul: max error %.3g of the output scale (K = %lld)\n", e, (long long)IN);
    assert_true(e < 1e-2 && e > 1e-5);
    assert_int_equal(bmfm_matmul_set_precision(BMFM_MATMUL_BF16), BMFM_MATMUL_FP32);
    float *y2 = zerov(N * OUT);
    bmfm_matmul_forward(y2, x, w, b, N, IN, OUT);
    assert_same_bits(y2, y, N * OUT, "bf16 via bmfm_matmul_forward");
    bmfm_matmul_set_precision(BMFM_MATMUL_FP32);
    bmfm_matmul_forward(y2, x, w, b, N, IN, OUT);
    assert_close(y2, y32, N * OUT, 1e-6, "fp32 after switching back");
    /* thread-count invariance */
    omp_set_num_threads(1);
    bmfm_matmul_forward_bf16(y2, x, w, b, N, IN, OUT);
    omp_set_num_threads(2);
    bmfm_matmul_forward_bf16(yr, x, w, b, N, IN, OUT);
    assert_same_bits(y2, yr, N * OUT, "bf16 1 vs 2 threads");
    free(x), free(w), free(b), free(y), free(y32), free(yr), free(y2);
}

/* ---- accumulate semantics ----------------------------------------------------- */

static void test_backward_accumulates(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 31, 0);
    int64_t N = 23, C = 40, NH = 2, HS = 20;
    int64_t cu[3] = {0, 9, 23};
    float *x = randv(&r, N * C, 1), *w = randv(&r, C * C, 1), *b = randv(&r, C, 1);
    float *g = randv(&r, N * C, 1), *y = zerov(N * C), *m = zerov(N), *s = zerov(N);
    float *qkv = randv(&r, N * 3 * C, 1), *lse = zerov(NH * N);
    /* for each backward: G1 = grad into zeros; calling twice gives 2*G1 */
    for (int op = 0; op < 5; op++) {
        int64_t n = op == 4 ? N * 3 * C : op == 0 ? C * C : N * C;
        float *once = zerov(n), *twice = zerov(n);
        for (int rep = 0; rep < 3; rep++) {
            float *dst = rep == 0 ? once : twice;
            switch (op) {
            case 0: bmfm_matmul_backward(NULL, dst, NULL, g, x, w, N, C, C); break;
            case 1:
                bmfm_layernorm_forward(y, m, s, x, w, b, N, C, 1e-12f);
                bmfm_layernorm_backward(dst, NULL, NULL, g, x, w, m, s, N, C);
                break;
            case 2:
                bmfm_rmsnorm_forward(y, s, x, w, N, C, 1e-5f);
                bmfm_rmsnorm_backward(dst, NULL, g, x, w, s, N, C);
                break;
            case 3: bmfm_swiglu_backward(dst, NULL, g, x, b, N * C); break;
            default:
                bmfm_attention_forward(y, lse, qkv, cu, 2, N, NH, HS);
                bmfm_attention_backward(dst, g, qkv, y, lse, cu, 2, N, NH, HS);
                break;
            }
        }
        for (int64_t i = 0; i < n; i++)
            once[i] *= 2.0f;
        assert_close(twice, once, n, 1e-6, "backward twice");
        free(once), free(twice);
    }
    free(x), free(w), free(b), free(g), free(y), free(m), free(s), free(qkv), free(lse);
}

/* ---- packed attention and thread invariance ------------------------------ */

static void test_attention_packed_equals_per_cell(void **state)
{
    (void)state;
    bmfm_rng r;
    bmfm_rng_seed(&r, 41, 0);
    int64_t NH = 4, HS = 32, C = NH * HS, B = 4;
    int64_t cu[5] = {0, 70, 71, 171, 200};
    int64_t N = cu[B];
    float *qkv = randv(&r, N * 3 * C, 1), *g = randv(&r, N * C, 1);
    float *o = zerov(N * C), *l = zerov(NH * N), *d = zerov(N * 3 * C);
    bmfm_attention_forward(o, l, qkv, cu, B, N, NH, HS);
    bmfm_attention_backward(d, g, qkv, o, l, cu, B, N, NH, HS);
    for (int64_t b = 0; b < B; b++) {
        int64_t T = cu[b + 1] - cu[b], one[2] = {0, T};
        float *ob = zerov(T * C), *lb = zerov(NH * T), *db = zerov(T * 3 * C);
        bmfm_attention_forward(ob, lb, qkv + cu[b] * 3 * C, one, 1, T, NH, HS);
        bmfm_attention_backward(db, g + cu[b] * C, qkv + cu[b] * 3 * C, ob, lb, one, 1, T, NH, HS);
        assert_same_bits(ob, o + cu[b] * C, T * C, "per-cell out");
        for (int64_t h = 0; h < NH; h++)
            assert_same_bits(lb + h * T, l + h * N + cu[b], T, "per-cell lse");
        assert_same_bits(db, d + cu[b] * 3 * C, T * 3 * C, "per-cell dqkv");
        free(ob), free(lb), free(db);
    }
    free(qkv), free(g), free(o), free(l), free(d);
}

/* A row's projection must not depend on the batch around it (a cell gets the
 * same bits alone or in a batch): rows computed in a block of N versus
 * alone/in small groups at several offsets, forward and dinp. Guaranteed by
 * the AVX-512 and AVX2 kernels of gemm.c (same bits from both); OpenBLAS
 * (pre-AVX2 CPUs) does not promise it. */
static void rows_invariant(void)
{
    bmfm_rng r;
    bmfm_rng_seed(&r, 71, 0);
    int64_t shapes[][2] = {{96, 288}, {96, 96}, {200, 70}, {45, 33}};
    int64_t offs[][2] = {{0, 1}, {3, 1}, {5, 2}, {7, 3}, {100, 37}, {13, 150}, {299, 1}};
    for (int sh = 0; sh < 4; sh++) {
        int64_t IN = shapes[sh][0], OUT = shapes[sh][1], N = 300;
        float *x = randv(&r, N * IN, 1), *w = randv(&r, OUT * IN, 1), *b = randv(&r, OUT, 1);
        float *g = randv(&r, N * OUT, 1), *y = zerov(N * OUT), *d = zerov(N * IN);
        bmfm_matmul_forward(y, x, w, b, N, IN, OUT);
        bmfm_matmul_backward(d, NULL, NULL, g, x, w, N, IN, OUT);
        for (int o = 0; o < 7; o++) {
            int64_t r0 = offs[o][0], n = offs[o][1];
            float *y1 = zerov(n * OUT), *d1 = zerov(n * IN);
            bmfm_matmul_forward(y1, x + r0 * IN, w, b, n, IN, OUT);
            bmfm_matmul_backward(d1, NULL, NULL, g + r0 * OUT, x + r0 * IN, w, n, IN, OUT);
            assert_same_bits(y1, y + r0 * OUT, n * OUT, "matmul rows alone vs in a batch");
            assert_same_bits(d1, d + r0 * IN, n * IN, "matmul dinp rows alone vs in a batch");
            free(y1), free(d1);
        }
        free(x), free(w), free(b), free(g), free(y), free(d);
    }
}

/* SwiGLU values must not depend on their position either (vector tails). */
static void swiglu_position_invariant(void)
{
    bmfm_rng r;
    bmfm_rng_seed(&r, 73, 0);
    int64_t n = 101;
    float *a = randv(&r, n, 3), *b = randv(&r, n, 1), *g = randv(&r, n, 1);
    float *y = zerov(n), *da = zerov(n), *db = zerov(n);
    bmfm_swiglu_forward(y, a, b, n);
    bmfm_swiglu_backward(da, db, g, a, b, n);
    for (int64_t off = 1; off < 12; off += 5) {
        float *y1 = zerov(13), *da1 = zerov(13), *db1 = zerov(13);
        bmfm_swiglu_forward(y1, a + off, b + off, 13);
        bmfm_swiglu_backward(da1, db1, g + off, a + off, b + off, 13);
        assert_same_bits(y1, y + off, 13, "swiglu slice");
        assert_same_bits(da1, da + off, 13, "swiglu da slice");
        assert_same_bits(db1, db + off, 13, "swiglu db slice");
        free(y1), free(da1), free(db1);
    }
    free(a), free(b), free(g), free(y), free(da), free(db);
}

static void test_matmul_rows_invariant(void **state)
{
    (void)state;
    bmfm_isa best = bmfm_cpu_isa();
    for (int isa = BMFM_ISA_SCALAR; isa <= (int)best; isa++) {
        bmfm_set_isa((bmfm_isa)isa);
        swiglu_position_invariant();
    }
    bmfm_set_isa(best);
    if (best < BMFM_ISA_AVX2)
        skip();
    rows_invariant();
    if (best >= BMFM_ISA_AVX512) { /* AVX2 path, and the same bits as AVX-512 */
        bmfm_rng r;
        bmfm_rng_seed(&r, 72, 0);
        int64_t N = 50, IN = 70, OUT = 90;
        float *x = randv(&r, N * IN, 1), *w = randv(&r, OUT * IN, 1), *b = randv(&r, OUT, 1);
        float *y1 = zerov(N * OUT), *y2 = zerov(N * OUT);
        bmfm_matmul_forward(y1, x, w, b, N, IN, OUT);
        bmfm_set_isa(BMFM_ISA_AVX2);
        rows_invariant();
        bmfm_matmul_forward(y2, x, w, b, N, IN, OUT);
        bmfm_set_isa(best);
        assert_same_bits(y1, y2, N * OUT, "AVX2 vs AVX-512 projection");
        free(x), free(w), free(b), free(y1), free(y2);
    }
}

/* The double C = A B^T of the pairwise distances (src/eval): each element
 * the k-ordered fma chain from zero, checked bit for bit against fma() in a
 * plain loop, with leading dimensions wider than K, tails of rows (not a
 * multiple of 6) and columns (not a multiple of 32), and K = 1. */
static void test_gemm_f64_nt(void **state)
{
    (void)state;
    if (bmfm_cpu_isa() < BMFM_ISA_AVX512)
        skip(); /* the caller falls back to cblas_dgemm: returns -1 */
    bmfm_rng r;
    bmfm_rng_seed(&r, 77, 0);
    int64_t shapes[][3] = {{256, 1024, 50}, {7, 33, 5}, {13, 70, 1}, {1, 1, 64}, {6, 32, 8}};
    for (int sh = 0; sh < 5; sh++) {
        int64_t M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2], lda = K + 3, ldb = K + 1, ldc = N + 5;
        double *A = malloc(sizeof(double) * (size_t)(M * lda)), *B = malloc(sizeof(double) * (size_t)(N * ldb));
        double *C = malloc(sizeof(double) * (size_t)(M * ldc));
        for (int64_t t = 0; t < M * lda; t++) A[t] = bmfm_rng_normal(&r) * 3.0;
        for (int64_t t = 0; t < N * ldb; t++) B[t] = bmfm_rng_normal(&r);
        for (int64_t t = 0; t < M * ldc; t++) C[t] = -7.0; /* outside the N columns: untouched */
        assert_int_equal(bmfm_gemm_f64_nt(C, ldc, A, lda, B, ldb, M, N, K), 0);
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) {
                double want = 0;
                for (int64_t k = 0; k < K; k++) want = fma(A[i * lda + k], B[j * ldb + k], want);
                if (memcmp(&want, &C[i * ldc + j], sizeof want))
                    fail_msg("gemm_f64_nt %lldx%lldx%lld: C[%lld][%lld] = %.17g, want %.17g", (long long)M,
                             (long long)N, (long long)K, (long long)i, (long long)j, C[i * ldc + j], want);
            }
            for (int64_t j = N; j < ldc; j++) assert_true(C[i * ldc + j] == -7.0);
        }
        free(A), free(B), free(C);
    }
}

/* The weight-gradient GEMM C += A^T B: each element the k-ordered fma chain
 * from its value in C, checked bit for bit against fmaf() in a plain loop,
 * on the AVX-512 and AVX2 paths and with 1 and 2 threads, with tails of
 * rows (not a multiple of 6 or of the 96-row blocks), columns (not a
 * multiple of 64) and tokens (not a multiple of the 128-token chunks), and
 * K = 1. */
static void test_gemm_tn_accumulate(void **state)
{
    (void)state;
    bmfm_isa best = bmfm_cpu_isa();
    if (best < BMFM_ISA_AVX2)
        skip(); /* the caller falls back to OpenBLAS: returns -1 */
    bmfm_rng r;
    bmfm_rng_seed(&r, 78, 0);
    int64_t shapes[][3] = {{1152, 384, 300}, {97, 130, 257}, {7, 70, 5}, {13, 1, 129}, {100, 65, 1}, {6, 64, 128}};
    int prev = omp_get_max_threads();
    for (int sh = 0; sh < 6; sh++) {
        int64_t M = shapes[sh][0], N = shapes[sh][1], K = shapes[sh][2];
        float *A = randv(&r, K * M, 1), *B = randv(&r, K * N, 1), *C0 = randv(&r, M * N, 4);
        float *want = malloc(sizeof(float) * (size_t)(M * N)), *C = malloc(sizeof(float) * (size_t)(M * N));
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float acc = C0[i * N + j];
                for (int64_t k = 0; k < K; k++) acc = fmaf(A[k * M + i], B[k * N + j], acc);
                want[i * N + j] = acc;
            }
        for (int isa = BMFM_ISA_AVX2; isa <= (int)best; isa++)
            for (int th = 1; th <= 2; th++) {
                bmfm_set_isa((bmfm_isa)isa);
                omp_set_num_threads(th);
                memcpy(C, C0, sizeof(float) * (size_t)(M * N));
                assert_int_equal(bmfm_gemm_tn_accumulate(C, A, B, M, N, K), 0);
                for (int64_t t = 0; t < M * N; t++)
                    if (memcmp(&want[t], &C[t], sizeof(float)))
                        fail_msg("gemm_tn %lldx%lldx%lld isa %d threads %d: C[%lld][%lld] = %.9g, want %.9g",
                                 (long long)M, (long long)N, (long long)K, isa, th, (long long)(t / N),
                                 (long long)(t % N), C[t], want[t]);
            }
        free(A), free(B), free(C0), free(want), free(C);
    }
    bmfm_set_isa(best);
    omp_set_num_threads(prev);
}

/* Runs every optimized kernel once; outputs are concatenated into res. */
static int64_t run_all_kernels(float *res)
{
    bmfm_rng r;
    bmfm_rng_seed(&r, 51, 0);
    int64_t N = 300, C = 96, NH = 3, HS = 32, V = 10, NB = 48, S = 7;
    int64_t cu[4] = {0, 100, 101, 300};
    int64_t k = 0;
    float *x = randv(&r, N * C, 1), *w = randv(&r, 3 * C * C, 1), *b = randv(&r, 3 * C, 1);
    float *g = randv(&r, N * 3 * C, 1), *m = zerov(N), *s = zerov(N), *lse = zerov(NH * N);
    float *y = res + k;
    bmfm_matmul_forward(y, x, w, b, N, C, 3 * C), k += N * 3 * C;
    float *qkv = y;
    bmfm_matmul_backward(res + k, res + k + N * C, res + k + N * C + 3 * C * C, g, x, w, N, C, 3 * C);
    k += N * C + 3 * C * C + 3 * C;
    float *att = res + k;
    bmfm_attention_forward(att, lse, qkv, cu, 3, N, NH, HS), k += N * C;
    memcpy(res + k, lse, sizeof(float) * (size_t)(NH * N)), k += NH * N;
    bmfm_attention_backward(res + k, g, qkv, att, lse, cu, 3, N, NH, HS), k += N * 3 * C;
    bmfm_layernorm_forward(res + k, m, s, x, w, b, N, C, 1e-12f), k += N * C;
    bmfm_layernorm_backward(res + k, res + k + N * C, res + k + N * C + C, g, x, w, m, s, N, C);
    k += N * C + 2 * C;
    bmfm_rmsnorm_forward(res + k, s, x, w, N, C, 1e-5f), k += N * C;
    bmfm_rmsnorm_backward(res + k, res + k + N * C, g, x, w, s, N, C), k += N * C + C;
    bmfm_swiglu_forward(res + k, x, g, N * C), k += N * C;
    bmfm_swiglu_backward(res + k, res + k + N * C, g, x, g + N * C, N * C), k += 2 * N * C;
    bmfm_gelu_forward(res + k, x, N * C), k += N * C;
    bmfm_gelu_backward(res + k, g, x, N * C), k += N * C;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N);
    float *ex = malloc(sizeof(float) * (size_t)N);
    for (int64_t n = 0; n < N; n++) {
        ids[n] = (int32_t)((n * 7) % V);
        ex[n] = n % 5 == 0 ? -(float)(n % 4 + 2) : n % 7 == 0 ? 0.0f : (float)(0.01 * n);
    }
    bmfm_embedding_backward(res + k, g, ids, N, C, 2), k += V * C;
    float *basis = make_basis(NB), *feat = zerov(N * 2 * NB);
    bmfm_scale_adapt_forward(res + k, feat, ex, basis, w, w, N, NB, C, (int32_t)S - 1), k += N * C;
    bmfm_scale_adapt_backward(res + k, res + k + C * 2 * NB, g, feat, ex, N, NB, C, (int32_t)S - 1, 2);
    k += C * 2 * NB + S * C;
    free(x), free(w), free(b), free(g), free(m), free(s), free(lse), free(ids), free(ex), free(basis),
        free(feat);
    return k;
}

static void test_thread_invariance(void **state)
{
    (void)state;
    int64_t cap = 4000000;
    float *r1 = zerov(cap), *r2 = zerov(cap);
    int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    int64_t n1 = run_all_kernels(r1);
    assert_true(n1 <= cap);
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    int64_t n2 = run_all_kernels(r2);
    assert_int_equal(openblas_get_num_threads(), 2); /* restored after the sgemm tiles */
    assert_int_equal(n1, n2);
    assert_same_bits(r1, r2, n1, "1 vs 2 threads");
    omp_set_num_threads(prev);
    free(r1), free(r2);
}

/* ---- PyTorch cross-check ---------------------------------------------------- */

typedef struct {
    char name[32];
    float *v;
    int64_t n;
} tensor;

static tensor g_t[64];
static int g_nt;

static const float *T(const char *name, int64_t *n)
{
    for (int i = 0; i < g_nt; i++)
        if (!strcmp(g_t[i].name, name)) {
            if (n)
                *n = g_t[i].n;
            return g_t[i].v;
        }
    fail_msg("oracle tensor %s missing", name);
    return NULL;
}

static void load_oracle(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    int32_t len;
    while (fread(&len, 4, 1, f) == 1 && g_nt < 64) {
        tensor *t = &g_t[g_nt++];
        assert_true(len > 0 && len < 32);
        assert_int_equal(fread(t->name, 1, (size_t)len, f), (size_t)len);
        t->name[len] = 0;
        assert_int_equal(fread(&t->n, 8, 1, f), 1);
        t->v = malloc(sizeof(float) * (size_t)(t->n + 1));
        assert_int_equal(fread(t->v, 4, (size_t)t->n, f), (size_t)t->n);
    }
    fclose(f);
}

static void test_pytorch_oracle(void **state)
{
    (void)state;
    const char *path = tu_scratch("nn_oracle.bin");
    assert_int_equal(tu_python("nn_oracle.py %s", path), 0);
    load_oracle(path);
    int64_t n;
    /* linear */
    int64_t N = 11, IN = 13, OUT = 7;
    float *y = zerov(N * OUT), *dx = zerov(N * IN), *dw = zerov(OUT * IN), *db = zerov(OUT);
    bmfm_matmul_forward(y, T("lin_x", 0), T("lin_w", 0), T("lin_b", 0), N, IN, OUT);
    assert_close(y, T("lin_y", 0), N * OUT, 1e-6, "torch linear");
    bmfm_matmul_backward(dx, dw, db, T("lin_g", 0), T("lin_x", 0), T("lin_w", 0), N, IN, OUT);
    assert_close(dx, T("lin_dx", 0), N * IN, 1e-6, "torch linear dx");
    assert_close(dw, T("lin_dw", 0), OUT * IN, 1e-6, "torch linear dw");
    assert_close(db, T("lin_db", 0), OUT, 1e-6, "torch linear db");
    free(y), free(dx), free(dw), free(db);
    /* norms */
    int64_t C = 48;
    N = 9;
    for (int rms = 0; rms < 2; rms++) {
        const char *p = rms ? "rms_" : "ln_";
        char nm[32];
#define TT(s) (snprintf(nm, sizeof nm, "%s%s", p, s), T(nm, 0))
        float *o = zerov(N * C), *mu = zerov(N), *rs = zerov(N), *dxx = zerov(N * C);
        float *dww = zerov(C), *dbb = zerov(C);
        if (rms) {
            bmfm_rmsnorm_forward(o, rs, TT("x"), TT("w"), N, C, 1e-5f);
            bmfm_rmsnorm_backward(dxx, dww, TT("g"), TT("x"), TT("w"), rs, N, C);
        } else {
            bmfm_layernorm_forward(o, mu, rs, TT("x"), TT("w"), TT("b"), N, C, 1e-12f);
            bmfm_layernorm_backward(dxx, dww, dbb, TT("g"), TT("x"), TT("w"), mu, rs, N, C);
            assert_close(dbb, TT("db"), C, 1e-5, "torch layernorm db");
        }
        assert_close(o, TT("y"), N * C, 1e-5, "torch norm out");
        assert_close(dxx, TT("dx"), N * C, 1e-5, "torch norm dx");
        assert_close(dww, TT("dw"), C, 1e-5, "torch norm dw");
#undef TT
        free(o), free(mu), free(rs), free(dxx), free(dww), free(dbb);
    }
    /* activations */
    const float *a = T("sw_a", &n);
    float *o = zerov(n), *da = zerov(n), *dbv = zerov(n);
    bmfm_swiglu_forward(o, a, T("sw_b", 0), n);
    assert_rel(o, T("sw_y", 0), n, 1e-5, 1e-6, "torch swiglu");
    bmfm_swiglu_backward(da, dbv, T("sw_g", 0), a, T("sw_b", 0), n);
    assert_swiglu_da(da, T("sw_da", 0), T("sw_g", 0), T("sw_b", 0), n, 1e-5, "torch swiglu da");
    assert_rel(dbv, T("sw_db", 0), n, 1e-5, 1e-6, "torch swiglu db");
    memset(da, 0, sizeof(float) * (size_t)n);
    bmfm_gelu_forward(o, T("ge_x", 0), n);
    /* torch's vectorized erf is off by up to ~3e-7 absolute where 1 + erf(z)
     * cancels (z << 0; e.g. x = -3.119: torch -0.00282679, exact -0.00282654,
     * libm erff -0.00282651), hence the absolute floor */
    assert_rel(o, T("ge_y", 0), n, 1e-5, 0.05, "torch gelu");
    bmfm_gelu_backward(da, T("ge_g", 0), T("ge_x", 0), n);
    assert_rel(da, T("ge_dx", 0), n, 1e-5, 0.05, "torch gelu dx");
    memset(da, 0, sizeof(float) * (size_t)n);
    bmfm_tanh_forward(o, T("ge_x", 0), n);
    assert_rel(o, T("th_y", 0), n, 1e-5, 1e-6, "torch tanh");
    bmfm_tanh_backward(da, T("th_g", 0), o, n);
    memset(da, 0, sizeof(float) * (size_t)n);
    /* from torch's y: 1 - y^2 cancels near |y| = 1, one ulp of y moves it ~1e-8 */
    bmfm_tanh_backward(da, T("th_g", 0), T("th_y", 0), n);
    assert_rel(da, T("th_dx", 0), n, 1e-5, 1e-6, "torch tanh dx");
    free(o), free(da), free(dbv);
    /* attention: packed C kernel vs padded + masked torch */
    int64_t nl;
    const float *lens = T("at_lens", &nl);
    int64_t B = nl, NH = 3, HS = 8, cu[16] = {0};
    C = NH * HS;
    for (int64_t b = 0; b < B; b++)
        cu[b + 1] = cu[b] + (int64_t)lens[b];
    N = cu[B];
    float *ao = zerov(N * C), *lse = zerov(NH * N), *aref = zerov(N * C), *lref = zerov(NH * N);
    float *dq = zerov(N * 3 * C), *dqr = zerov(N * 3 * C);
    bmfm_attention_forward(ao, lse, T("at_qkv", 0), cu, B, N, NH, HS);
    assert_close(ao, T("at_y", 0), N * C, 1e-5, "torch attention");
    bmfm_attention_backward(dq, T("at_g", 0), T("at_qkv", 0), ao, lse, cu, B, N, NH, HS);
    assert_close(dq, T("at_dqkv", 0), N * 3 * C, 1e-5, "torch attention dqkv");
    bmfm_attention_forward_ref(aref, lref, T("at_qkv", 0), cu, B, N, NH, HS);
    assert_close(aref, T("at_y", 0), N * C, 1e-5, "torch attention (ref)");
    bmfm_attention_backward_ref(dqr, T("at_g", 0), T("at_qkv", 0), aref, lref, cu, B, N, NH, HS);
    assert_close(dqr, T("at_dqkv", 0), N * 3 * C, 1e-5, "torch attention dqkv (ref)");
    free(ao), free(lse), free(aref), free(lref), free(dq), free(dqr);
    /* ScaleAdapt features vs torch.sin/cos (SLEEF, 1 ulp): within 2 float ulps of 1 */
    const float *sx = T("sa_x", &n);
    float *feat = zerov(n * 96);
    bmfm_scale_adapt_features(feat, sx, T("sa_basis", 0), n, 48);
    const float *tf = T("sa_feat", 0);
    for (int64_t i = 0; i < n * 96; i++)
        if (fabsf(feat[i] - tf[i]) > 2.4e-7f)
            fail_msg("scale_adapt feature %lld: %.9g vs torch %.9g", (long long)i, feat[i], tf[i]);
    free(feat);
    for (int i = 0; i < g_nt; i++)
        free(g_t[i].v);
    g_nt = 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_matmul),
        cmocka_unit_test(test_fd_layernorm),
        cmocka_unit_test(test_fd_rmsnorm),
        cmocka_unit_test(test_fd_activations),
        cmocka_unit_test(test_fd_attention),
        cmocka_unit_test(test_fd_expr_encoders),
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_special_index_rule),
        cmocka_unit_test(test_scale_adapt_features),
        cmocka_unit_test(test_opt_vs_ref),
        cmocka_unit_test(test_matmul_bf16),
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_attention_packed_equals_per_cell),
        cmocka_unit_test(test_matmul_rows_invariant),
        cmocka_unit_test(test_gemm_f64_nt),
        cmocka_unit_test(test_gemm_tn_accumulate),
        cmocka_unit_test(test_thread_invariance),
        cmocka_unit_test(test_pytorch_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
