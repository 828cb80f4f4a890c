/* attention.c - bidirectional multi-head attention over packed
 * variable-length cells (no padding), forward and backward.
 *
 * Layout: qkv[N, 3C] = q | k | v per token, C = NH*HS, head h in columns
 * [h*HS, (h+1)*HS) of each part; out[N, C]; lse[NH, N]. Cell b owns tokens
 * [cu[b], cu[b+1]) and attends to its own tokens only, which is the key
 * padding mask of the reference without the padded keys. Compute follows
 * the real token count of each cell.
 *
 * The reference computes one query row of scores at a time (a plain
 * softmax). The optimized kernels are flash-attention-2 style and never hold
 * more than a tile of scores: the forward keeps a running max and sum per
 * query row over key tiles (online softmax) and saves the log-sum-exp; the
 * backward recomputes the probabilities from the lse, one 16-key (AVX2: 8)
 * chunk at a time, accumulates dQ in registers and dK/dV in transposed
 * per-(cell, head) buffers in a fixed key and query order. Tiled kernels:
 * AVX-512 for HS in {16, 32, 64}, AVX2 for HS in {8, 16, 32} (the models use
 * 32); other shapes and CPUs take a portable per-row path with the same
 * online softmax. Scratch per thread is O(HS * T), never O(T^2); if it cannot
 * be allocated the portable path runs (same results up to rounding).
 *
 * Threads: the forward splits (cell, head, 128-row query block), the
 * backward (cell, head); their outputs are disjoint and every sum has a
 * fixed order, so results do not depend on the thread count.
 */
#include "nn/nn.h"
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/simd.h"

/* ---- reference ------------------------------------------------------------ */

/* One cell (tokens t0..t0+T-1) and head h. p: scratch of T floats. */
static void attn_fwd_ref_one(float *out, float *lse, const float *qkv, int64_t t0, int64_t T,
                             int64_t h, int64_t N, int64_t NH, int64_t HS, float *p)
{
    int64_t C = NH * HS, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int64_t i = 0; i < T; i++) {
        const float *q = qkv + (t0 + i) * C3 + h * HS;
        float mx = -INFINITY;
        for (int64_t j = 0; j < T; j++) {
            const float *k = qkv + (t0 + j) * C3 + C + h * HS;
            float s = 0.0f;
            for (int64_t d = 0; d < HS; d++)
                s += q[d] * k[d];
            p[j] = s * scale;
            if (p[j] > mx)
                mx = p[j];
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < T; j++) {
            p[j] = expf(p[j] - mx);
            sum += p[j];
        }
        float inv = 1.0f / sum;
        float *o = out + (t0 + i) * C + h * HS;
        for (int64_t d = 0; d < HS; d++)
            o[d] = 0.0f;
        for (int64_t j = 0; j < T; j++) {
            const float *v = qkv + (t0 + j) * C3 + 2 * C + h * HS;
            float pj = p[j] * inv;
            for (int64_t d = 0; d < HS; d++)
                o[d] += pj * v[d];
        }
        lse[h * N + t0 + i] = mx + logf(sum);
    }
}

/* Backward of one cell and head, one query row at a time: with P the
 * softmax row, dV_j += P_ij dO_i, dP_ij = dO_i.V_j, dS_ij = P_ij (dP_ij - D_i),
 * D_i = sum_j P_ij dP_ij, dQ_i += scale dS_ij K_j, dK_j += scale dS_ij Q_i.
 * p, dp: scratch of T floats each. */
static void attn_bwd_ref_one(float *dqkv, const float *dout, const float *qkv, const float *lse,
                             int64_t t0, int64_t T, int64_t h, int64_t N, int64_t NH, int64_t HS,
                             float *p, float *dp)
{
    int64_t C = NH * HS, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int64_t i = 0; i < T; i++) {
        const float *q = qkv + (t0 + i) * C3 + h * HS;
        const float *g = dout + (t0 + i) * C + h * HS;
        float l = lse[h * N + t0 + i];
        float D = 0.0f;
        for (int64_t j = 0; j < T; j++) {
            const float *k = qkv + (t0 + j) * C3 + C + h * HS;
            const float *v = qkv + (t0 + j) * C3 + 2 * C + h * HS;
            float s = 0.0f, gv = 0.0f;
            for (int64_t d = 0; d < HS; d++) {
                s += q[d] * k[d];
                gv += g[d] * v[d];
            }
            p[j] = expf(s * scale - l);
            dp[j] = gv;
            D += p[j] * gv;
        }
        float *dq = dqkv + (t0 + i) * C3 + h * HS;
        for (int64_t j = 0; j < T; j++) {
            const float *k = qkv + (t0 + j) * C3 + C + h * HS;
            float *dk = dqkv + (t0 + j) * C3 + C + h * HS;
            float *dv = dqkv + (t0 + j) * C3 + 2 * C + h * HS;
            float ds = p[j] * (dp[j] - D) * scale;
            for (int64_t d = 0; d < HS; d++) {
                dv[d] += p[j] * g[d];
                dq[d] += ds * k[d];
                dk[d] += ds * q[d];
            }
        }
    }
}

static int64_t max_cell_len(const int64_t *cu, int64_t B)
{
    int64_t m = 0;
    for (int64_t b = 0; b < B; b++)
        if (cu[b + 1] - cu[b] > m)
            m = cu[b + 1] - cu[b];
    return m;
}

void bmfm_attention_forward_ref(float *out, float *lse, const float *qkv, const int64_t *cu_seqlens,
                                int64_t B, int64_t N, int64_t NH, int64_t HS)
{
    float *p = malloc(sizeof(float) * (size_t)(max_cell_len(cu_seqlens, B) + 1));
    if (!p)
        return; /* test-only path; nothing sensible to do without memory */
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            attn_fwd_ref_one(out, lse, qkv, cu_seqlens[b], cu_seqlens[b + 1] - cu_seqlens[b], h, N,
                             NH, HS, p);
    free(p);
}

void bmfm_attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *out,
                                 const float *lse, const int64_t *cu_seqlens, int64_t B, int64_t N,
                                 int64_t NH, int64_t HS)
{
    float *p = malloc(sizeof(float) * 2 * (size_t)(max_cell_len(cu_seqlens, B) + 1));
    if (!p)
        return;
    int64_t T = max_cell_len(cu_seqlens, B) + 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++)
            attn_bwd_ref_one(dqkv, dout, qkv, lse, cu_seqlens[b],
                             cu_seqlens[b + 1] - cu_seqlens[b], h, N, NH, HS, p, p + T);
    free(p);
}

/* ---- portable path: per query row, online softmax over key tiles ---------- */

#define KT 64 /* keys per tile of the portable path */

static inline __attribute__((always_inline)) void
attn_fwd_rows_generic(float *out, float *lse, const float *qkv, int64_t t0, int64_t T, int64_t i0,
                      int64_t i1, int64_t h, int64_t N, int64_t NH, int64_t HS)
{
    int64_t C = NH * HS, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    float s[KT], o[HS];
    for (int64_t i = i0; i < i1; i++) {
        const float *q = qkv + (t0 + i) * C3 + h * HS;
        float m = -INFINITY, l = 0.0f;
        for (int64_t d = 0; d < HS; d++)
            o[d] = 0.0f;
        for (int64_t j0 = 0; j0 < T; j0 += KT) {
            int64_t nk = T - j0 < KT ? T - j0 : KT;
            float mt = -INFINITY;
            for (int64_t j = 0; j < nk; j++) {
                const float *k = qkv + (t0 + j0 + j) * C3 + C + h * HS;
                float acc = 0.0f;
                for (int64_t d = 0; d < HS; d++)
                    acc += q[d] * k[d];
                s[j] = acc * scale;
                mt = s[j] > mt ? s[j] : mt;
            }
            float mn = mt > m ? mt : m;
            float alpha = expf(m - mn), lt = 0.0f;
            for (int64_t j = 0; j < nk; j++) {
                s[j] = expf(s[j] - mn);
                lt += s[j];
            }
            l = l * alpha + lt;
            m = mn;
            for (int64_t d = 0; d < HS; d++)
                o[d] *= alpha;
            for (int64_t j = 0; j < nk; j++) {
                const float *v = qkv + (t0 + j0 + j) * C3 + 2 * C + h * HS;
                for (int64_t d = 0; d < HS; d++)
                    o[d] += s[j] * v[d];
            }
        }
        float inv = 1.0f / l;
        float *orow = out + (t0 + i) * C + h * HS;
        for (int64_t d = 0; d < HS; d++)
            orow[d] = o[d] * inv;
        lse[h * N + t0 + i] = m + logf(l);
    }
}

/* Backward without score buffers: D_i = dO_i . O_i, then per key
 * P_ij = exp(s_ij - lse_i) and the updates of the reference. */
static inline __attribute__((always_inline)) void
attn_bwd_generic(float *dqkv, const float *dout, const float *qkv, const float *out,
                 const float *lse, int64_t t0, int64_t T, int64_t h, int64_t N, int64_t NH,
                 int64_t HS)
{
    int64_t C = NH * HS, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int64_t i = 0; i < T; i++) {
        const float *q = qkv + (t0 + i) * C3 + h * HS;
        const float *g = dout + (t0 + i) * C + h * HS;
        const float *o = out + (t0 + i) * C + h * HS;
        float *dq = dqkv + (t0 + i) * C3 + h * HS;
        float l = lse[h * N + t0 + i], D = 0.0f;
        for (int64_t d = 0; d < HS; d++)
            D += g[d] * o[d];
        for (int64_t j = 0; j < T; j++) {
            const float *k = qkv + (t0 + j) * C3 + C + h * HS;
            const float *v = qkv + (t0 + j) * C3 + 2 * C + h * HS;
            float *dk = dqkv + (t0 + j) * C3 + C + h * HS;
            float *dv = dqkv + (t0 + j) * C3 + 2 * C + h * HS;
            float sc = 0.0f, gv = 0.0f;
            for (int64_t d = 0; d < HS; d++) {
                sc += q[d] * k[d];
                gv += g[d] * v[d];
            }
            float p = expf(sc * scale - l);
            float ds = p * (gv - D) * scale;
            for (int64_t d = 0; d < HS; d++) {
                dv[d] += p * g[d];
                dq[d] += ds * k[d];
                dk[d] += ds * q[d];
            }
        }
    }
}

static void attn_fwd_rows_scalar(float *out, float *lse, const float *qkv, int64_t t0, int64_t T,
                                 int64_t i0, int64_t i1, int64_t h, int64_t N, int64_t NH, int64_t HS)
{
    attn_fwd_rows_generic(out, lse, qkv, t0, T, i0, i1, h, N, NH, HS);
}

static BMFM_AVX2 void attn_fwd_rows_avx2(float *out, float *lse, const float *qkv, int64_t t0,
                                         int64_t T, int64_t i0, int64_t i1, int64_t h, int64_t N,
                                         int64_t NH, int64_t HS)
{
    attn_fwd_rows_generic(out, lse, qkv, t0, T, i0, i1, h, N, NH, HS);
}

static void attn_bwd_scalar(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, int64_t t0, int64_t T, int64_t h, int64_t N,
                            int64_t NH, int64_t HS)
{
    attn_bwd_generic(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, HS);
}

static BMFM_AVX2 void attn_bwd_avx2(float *dqkv, const float *dout, const float *qkv,
                                    const float *out, const float *lse, int64_t t0, int64_t T,
                                    int64_t h, int64_t N, int64_t NH, int64_t HS)
{
    attn_bwd_generic(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, HS);
}

/* ---- AVX-512 path ----------------------------------------------------------- */

#define QB 128 /* query rows per forward work unit */
#define FR 8   /* query rows per forward register tile */
#define BR 4   /* query rows per backward register tile */
#define BK 256 /* keys per forward score tile */

/* Leading dimension of the transposed [HS][ld] buffers: the padded length
 * plus one cache line, so that the HS rows do not all fall in the same L1
 * set when Tp is a multiple of 1024 (4 KiB aliasing). */
static inline int64_t ld_of(int64_t T)
{
    return ((T + 15) & ~(int64_t)15) + 16;
}

/* Kt[d * ld + j] = K[j][d] for one cell and head, zero for j in [T, ld). */
static void pack_transposed(float *Kt, const float *src, int64_t C3, int64_t T, int64_t ld,
                            int64_t HS)
{
    for (int64_t j = 0; j < T; j++)
        for (int64_t d = 0; d < HS; d++)
            Kt[d * ld + j] = src[j * C3 + d];
    for (int64_t d = 0; d < HS; d++)
        for (int64_t j = T; j < ld; j++)
            Kt[d * ld + j] = 0.0f;
}

/* dqkv[k and v parts of one cell and head] += the transposed buffers dKt, dVt. */
static void add_transposed_kv(float *dqkv, const float *dKt, const float *dVt, int64_t t0,
                              int64_t T, int64_t h, int64_t NH, int64_t HS, int64_t ld)
{
    int64_t C = NH * HS, C3 = 3 * C;
    for (int64_t j = 0; j < T; j++) {
        float *dk = dqkv + (t0 + j) * C3 + C + h * HS, *dv = dk + C;
        for (int64_t d = 0; d < HS; d++) {
            dk[d] += dKt[d * ld + j];
            dv[d] += dVt[d * ld + j];
        }
    }
}

/* Forward of query rows [i0, i1) of one cell and head; NV = HS/16 vectors
 * per row (1, 2 or 4), R rows per register tile. Kt: packed keys. */
static inline __attribute__((always_inline)) BMFM_AVX512 void
attn_fwd_rows_512(float *out, float *lse, const float *qkv, const float *Kt, int64_t t0, int64_t T,
                  int64_t i0, int64_t i1, int64_t h, int64_t N, int64_t NH, const int NV, const int R)
{
    const int64_t HS = 16 * NV, C = NH * HS, C3 = 3 * C, Tp = (T + 15) & ~(int64_t)15, ld = ld_of(T);
    const __m512 vscale = _mm512_set1_ps(1.0f / sqrtf((float)HS));
    float S[FR][BK] __attribute__((aligned(64)));
    for (int64_t ib = i0; ib < i1; ib += R) {
        const float *q[FR];
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) /* rows past the end repeat the last one, not stored */
            q[r] = qkv + (t0 + (ib + r < i1 ? ib + r : i1 - 1)) * C3 + h * HS;
        __m512 o[FR][4];
        float m[FR], l[FR];
        _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
            m[r] = -INFINITY, l[r] = 0.0f;
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                o[r][v] = _mm512_setzero_ps();
        }
        for (int64_t j0 = 0; j0 < Tp; j0 += BK) {
            int64_t nk = Tp - j0 < BK ? Tp - j0 : BK;
            __m512 mx[FR];
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
                mx[r] = _mm512_set1_ps(-INFINITY);
            /* 32 keys per pass (16 chains of fused multiply-adds, each q
             * broadcast feeding two), then 16 for the rest; every score
             * sums over d in the same order either way */
            int64_t jb = 0;
            for (; jb + 32 <= nk; jb += 32) {
                __m512 acc[FR], acc2[FR];
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
                    acc[r] = _mm512_setzero_ps(), acc2[r] = _mm512_setzero_ps();
                const float *kp = Kt + j0 + jb;
                for (int64_t d = 0; d < HS; d++) {
                    __m512 kv = _mm512_load_ps(kp + d * ld), kv2 = _mm512_load_ps(kp + d * ld + 16);
                    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                        __m512 qb = _mm512_set1_ps(q[r][d]);
                        acc[r] = _mm512_fmadd_ps(qb, kv, acc[r]);
                        acc2[r] = _mm512_fmadd_ps(qb, kv2, acc2[r]);
                    }
                }
                int64_t valid = T - (j0 + jb);
                __mmask16 km = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
                __mmask16 km2 = valid >= 32 ? (__mmask16)0xFFFF
                                : valid > 16 ? (__mmask16)((1u << (valid - 16)) - 1u) : (__mmask16)0;
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                    __m512 sc = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), km,
                                                   _mm512_mul_ps(acc[r], vscale));
                    __m512 sc2 = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), km2,
                                                    _mm512_mul_ps(acc2[r], vscale));
                    _mm512_store_ps(&S[r][jb], sc);
                    _mm512_store_ps(&S[r][jb + 16], sc2);
                    mx[r] = _mm512_max_ps(mx[r], _mm512_max_ps(sc, sc2));
                }
            }
            for (; jb < nk; jb += 16) {
                __m512 acc[FR];
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
                    acc[r] = _mm512_setzero_ps();
                const float *kp = Kt + j0 + jb;
                for (int64_t d = 0; d < HS; d++) {
                    __m512 kv = _mm512_load_ps(kp + d * ld);
                    _Pragma("GCC unroll 8") for (int r = 0; r < R; r++)
                        acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r][d]), kv, acc[r]);
                }
                int64_t valid = T - (j0 + jb);
                __mmask16 km = valid >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << valid) - 1u);
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                    __m512 sc = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), km,
                                                   _mm512_mul_ps(acc[r], vscale));
                    _mm512_store_ps(&S[r][jb], sc);
                    mx[r] = _mm512_max_ps(mx[r], sc);
                }
            }
            _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                float mt = _mm512_reduce_max_ps(mx[r]);
                float mn = mt > m[r] ? mt : m[r];
                __m512 vmn = _mm512_set1_ps(mn);
                __m512 sum = _mm512_setzero_ps();
                for (int64_t jb = 0; jb < nk; jb += 16) {
                    __m512 p = bmfm_exp512(_mm512_sub_ps(_mm512_load_ps(&S[r][jb]), vmn));
                    _mm512_store_ps(&S[r][jb], p);
                    sum = _mm512_add_ps(sum, p);
                }
                float alpha = expf(m[r] - mn);
                l[r] = l[r] * alpha + _mm512_reduce_add_ps(sum);
                m[r] = mn;
                __m512 va = _mm512_set1_ps(alpha);
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                    o[r][v] = _mm512_mul_ps(o[r][v], va);
            }
            int64_t nreal = T - j0 < nk ? T - j0 : nk;
            for (int64_t j = 0; j < nreal; j++) {
                const float *vp = qkv + (t0 + j0 + j) * C3 + 2 * C + h * HS;
                __m512 vv[4];
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                    vv[v] = _mm512_loadu_ps(vp + 16 * v);
                _Pragma("GCC unroll 8") for (int r = 0; r < R; r++) {
                    __m512 pb = _mm512_set1_ps(S[r][j]);
                    _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                        o[r][v] = _mm512_fmadd_ps(pb, vv[v], o[r][v]);
                }
            }
        }
        for (int r = 0; r < R && ib + r < i1; r++) {
            __m512 inv = _mm512_set1_ps(1.0f / l[r]);
            float *orow = out + (t0 + ib + r) * C + h * HS;
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                _mm512_storeu_ps(orow + 16 * v, _mm512_mul_ps(o[r][v], inv));
            lse[h * N + t0 + ib + r] = m[r] + logf(l[r]);
        }
    }
}

/* pack: Kt does not hold this cell's and head's keys yet (the driver keeps
 * them for the thread's next unit of the same cell and head). */
static BMFM_AVX512 void attn_fwd_unit_512(float *out, float *lse, const float *qkv, float *Kt,
                                          int64_t t0, int64_t T, int64_t i0, int64_t i1, int64_t h,
                                          int64_t N, int64_t NH, int64_t HS, int pack)
{
    int64_t C = NH * HS;
    if (pack)
        pack_transposed(Kt, qkv + t0 * 3 * C + C + h * HS, 3 * C, T, ld_of(T), HS);
    if (HS == 16)
        attn_fwd_rows_512(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, 1, 8);
    else if (HS == 32)
        attn_fwd_rows_512(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, 2, 8);
    else
        attn_fwd_rows_512(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, 4, 4);
}

/* One chunk of KV * 16 keys starting at jb for a register tile of BR query
 * rows (see attn_bwd_512_impl). Two key vectors per chunk let every
 * broadcast of q, dO feed two FMAs: the loop is bound by loads (a broadcast
 * is a load), not by FMAs. Every sum runs in the same order for KV = 1 and 2,
 * so the chunk width does not change results. */
static inline __attribute__((always_inline)) BMFM_AVX512 void
attn_bwd_512_chunk(float *dKt, float *dVt, const float *Kt, const float *Vt, int64_t ld, const float *qkv,
                   int64_t t0, int64_t T, int64_t jb, int64_t kcol, int64_t C3, float scale, const float *const *q,
                   const float *const *g, const __m512 *vl, const __m512 *vD, __m512 (*dq)[4], const int NV,
                   const int KV)
{
    const int64_t HS = 16 * NV;
    float dsbuf[BR][32] __attribute__((aligned(64)));
    __m512 s[BR][2], dp[BR][2];
    _Pragma("GCC unroll 8") for (int r = 0; r < BR; r++)
        _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++)
            s[r][c] = _mm512_setzero_ps(), dp[r][c] = _mm512_setzero_ps();
    for (int64_t d = 0; d < HS; d++) {
        __m512 kv[2], vv[2];
        _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++) {
            kv[c] = _mm512_load_ps(Kt + d * ld + jb + 16 * c);
            vv[c] = _mm512_load_ps(Vt + d * ld + jb + 16 * c);
        }
        _Pragma("GCC unroll 8") for (int r = 0; r < BR; r++) {
            __m512 qb = _mm512_set1_ps(q[r][d]), gb = _mm512_set1_ps(g[r][d]);
            _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++) {
                s[r][c] = _mm512_fmadd_ps(qb, kv[c], s[r][c]);
                dp[r][c] = _mm512_fmadd_ps(gb, vv[c], dp[r][c]);
            }
        }
    }
    __m512 p[BR][2], ds[BR][2];
    _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++) {
        int64_t valid = T - (jb + 16 * c);
        __mmask16 km = valid >= 16 ? (__mmask16)0xFFFF : valid <= 0 ? (__mmask16)0 : (__mmask16)((1u << valid) - 1u);
        _Pragma("GCC unroll 8") for (int r = 0; r < BR; r++) {
            p[r][c] = _mm512_maskz_mov_ps(km, bmfm_exp512(_mm512_fmsub_ps(s[r][c], _mm512_set1_ps(scale), vl[r])));
            ds[r][c] = _mm512_mul_ps(_mm512_mul_ps(p[r][c], _mm512_sub_ps(dp[r][c], vD[r])), _mm512_set1_ps(scale));
            _mm512_store_ps(&dsbuf[r][16 * c], ds[r][c]);
        }
    }
    for (int64_t d = 0; d < HS; d++) {
        float *dvp = dVt + d * ld + jb, *dkp = dKt + d * ld + jb;
        __m512 av[2], ak[2];
        _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++)
            av[c] = _mm512_load_ps(dvp + 16 * c), ak[c] = _mm512_load_ps(dkp + 16 * c);
        _Pragma("GCC unroll 8") for (int r = 0; r < BR; r++) {
            __m512 gb = _mm512_set1_ps(g[r][d]), qb = _mm512_set1_ps(q[r][d]);
            _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++) {
                av[c] = _mm512_fmadd_ps(gb, p[r][c], av[c]);
                ak[c] = _mm512_fmadd_ps(qb, ds[r][c], ak[c]);
            }
        }
        _Pragma("GCC unroll 2") for (int c = 0; c < KV; c++)
            _mm512_store_ps(dvp + 16 * c, av[c]), _mm512_store_ps(dkp + 16 * c, ak[c]);
    }
    int64_t nreal = T - jb < 16 * KV ? T - jb : 16 * KV;
    for (int64_t j = 0; j < nreal; j++) {
        const float *kp = qkv + (t0 + jb + j) * C3 + kcol;
        __m512 kv[4];
        _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
            kv[v] = _mm512_loadu_ps(kp + 16 * v);
        _Pragma("GCC unroll 8") for (int r = 0; r < BR; r++) {
            __m512 b = _mm512_set1_ps(dsbuf[r][j]);
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                dq[r][v] = _mm512_fmadd_ps(b, kv[v], dq[r][v]);
        }
    }
}

/* Backward of one cell and head. Scratch: Kt, Vt, dKt, dVt [HS][ld] and
 * zero[HS]. For each register tile of BR query rows and each chunk of 32
 * (then 16) keys: P = exp(S - lse), dP = dO V^T, dS = P (dP - D) scale;
 * dV^T += dO^T P and dK^T += Q^T dS into the transposed buffers, dQ += dS K
 * in registers. */
static inline __attribute__((always_inline)) BMFM_AVX512 void
attn_bwd_512_impl(float *dqkv, const float *dout, const float *qkv, const float *out,
                  const float *lse, int64_t t0, int64_t T, int64_t h, int64_t N, int64_t NH,
                  float *scratch, const int NV)
{
    const int64_t HS = 16 * NV, C = NH * HS, C3 = 3 * C, Tp = (T + 15) & ~(int64_t)15, ld = ld_of(T);
    const float scale = 1.0f / sqrtf((float)HS);
    float *Kt = scratch, *Vt = Kt + HS * ld, *dKt = Vt + HS * ld, *dVt = dKt + HS * ld;
    float *zero = dVt + HS * ld;
    pack_transposed(Kt, qkv + t0 * C3 + C + h * HS, C3, T, ld, HS);
    pack_transposed(Vt, qkv + t0 * C3 + 2 * C + h * HS, C3, T, ld, HS);
    memset(dKt, 0, sizeof(float) * (size_t)(2 * HS * ld + HS));
    for (int64_t ib = 0; ib < T; ib += BR) {
        const float *q[BR], *g[BR];
        __m512 vl[BR], vD[BR], dq[BR][4];
        _Pragma("GCC unroll 8") for (int r = 0; r < BR; r++) {
            int64_t i = ib + r;
            if (i < T) {
                q[r] = qkv + (t0 + i) * C3 + h * HS;
                g[r] = dout + (t0 + i) * C + h * HS;
                const float *o = out + (t0 + i) * C + h * HS;
                __m512 dd = _mm512_setzero_ps();
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                    dd = _mm512_fmadd_ps(_mm512_loadu_ps(g[r] + 16 * v), _mm512_loadu_ps(o + 16 * v), dd);
                vD[r] = _mm512_set1_ps(_mm512_reduce_add_ps(dd));
                vl[r] = _mm512_set1_ps(lse[h * N + t0 + i]);
            } else { /* padding row of the tile: P = exp(-inf) = 0 */
                q[r] = zero, g[r] = zero;
                vD[r] = _mm512_setzero_ps();
                vl[r] = _mm512_set1_ps(INFINITY);
            }
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                dq[r][v] = _mm512_setzero_ps();
        }
        int64_t jb = 0;
        for (; jb + 32 <= Tp; jb += 32)
            attn_bwd_512_chunk(dKt, dVt, Kt, Vt, ld, qkv, t0, T, jb, C + h * HS, C3, scale, q, g, vl, vD, dq, NV, 2);
        if (jb < Tp)
            attn_bwd_512_chunk(dKt, dVt, Kt, Vt, ld, qkv, t0, T, jb, C + h * HS, C3, scale, q, g, vl, vD, dq, NV, 1);
        for (int r = 0; r < BR && ib + r < T; r++) {
            float *dqp = dqkv + (t0 + ib + r) * C3 + h * HS;
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)
                _mm512_storeu_ps(dqp + 16 * v, _mm512_add_ps(_mm512_loadu_ps(dqp + 16 * v), dq[r][v]));
        }
    }
    add_transposed_kv(dqkv, dKt, dVt, t0, T, h, NH, HS, ld);
}

static BMFM_AVX512 void attn_bwd_512(float *dqkv, const float *dout, const float *qkv,
                                     const float *out, const float *lse, int64_t t0, int64_t T,
                                     int64_t h, int64_t N, int64_t NH, int64_t HS, float *scratch)
{
    if (HS == 16)
        attn_bwd_512_impl(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, scratch, 1);
    else if (HS == 32)
        attn_bwd_512_impl(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, scratch, 2);
    else
        attn_bwd_512_impl(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, scratch, 4);
}

/* ---- AVX2 path: the same algorithm with 8-key vectors ----------------------- */

#define AR 4 /* query rows per AVX2 tile (accumulated in row pairs) */

static inline BMFM_AVX2 __m256i mask8(int64_t valid)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int v = valid >= 8 ? 8 : (int)valid;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(v), idx);
}

static inline BMFM_AVX2 float hmax256(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline BMFM_AVX2 float hsum256(__m256 v)
{
    __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

static inline __attribute__((always_inline)) BMFM_AVX2 void
attn_fwd_rows_256(float *out, float *lse, const float *qkv, const float *Kt, int64_t t0, int64_t T,
                  int64_t i0, int64_t i1, int64_t h, int64_t N, int64_t NH, const int NV)
{
    const int64_t HS = 8 * NV, C = NH * HS, C3 = 3 * C, Tp = (T + 7) & ~(int64_t)7, ld = ld_of(T);
    const __m256 vscale = _mm256_set1_ps(1.0f / sqrtf((float)HS));
    float S[AR][BK] __attribute__((aligned(32)));
    float O[AR][64] __attribute__((aligned(32)));
    for (int64_t ib = i0; ib < i1; ib += AR) {
        const float *q[AR];
        float m[AR], l[AR];
        for (int r = 0; r < AR; r++) {
            q[r] = qkv + (t0 + (ib + r < i1 ? ib + r : i1 - 1)) * C3 + h * HS;
            m[r] = -INFINITY, l[r] = 0.0f;
            for (int64_t d = 0; d < HS; d++)
                O[r][d] = 0.0f;
        }
        for (int64_t j0 = 0; j0 < Tp; j0 += BK) {
            int64_t nk = Tp - j0 < BK ? Tp - j0 : BK;
            __m256 mx[AR];
            _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++) mx[r] = _mm256_set1_ps(-INFINITY);
            for (int64_t jb = 0; jb < nk; jb += 8) {
                __m256 acc[AR];
                _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++) acc[r] = _mm256_setzero_ps();
                const float *kp = Kt + j0 + jb;
                for (int64_t d = 0; d < HS; d++) {
                    __m256 kv = _mm256_loadu_ps(kp + d * ld);
                    _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++)
                        acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q[r] + d), kv, acc[r]);
                }
                __m256 km = _mm256_castsi256_ps(mask8(T - (j0 + jb)));
                _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++) {
                    __m256 sc = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_mul_ps(acc[r], vscale), km);
                    _mm256_store_ps(&S[r][jb], sc);
                    mx[r] = _mm256_max_ps(mx[r], sc);
                }
            }
            int64_t nreal = T - j0 < nk ? T - j0 : nk;
            float alpha[AR];
            for (int r = 0; r < AR; r++) {
                float mt = hmax256(mx[r]);
                float mn = mt > m[r] ? mt : m[r];
                __m256 vmn = _mm256_set1_ps(mn), sum = _mm256_setzero_ps();
                for (int64_t jb = 0; jb < nk; jb += 8) {
                    __m256 km = _mm256_castsi256_ps(mask8(nreal - jb));
                    __m256 pv = _mm256_and_ps(km, bmfm_exp256(_mm256_sub_ps(_mm256_load_ps(&S[r][jb]), vmn)));
                    _mm256_store_ps(&S[r][jb], pv);
                    sum = _mm256_add_ps(sum, pv);
                }
                alpha[r] = expf(m[r] - mn);
                l[r] = l[r] * alpha[r] + hsum256(sum);
                m[r] = mn;
            }
            for (int rp = 0; rp < AR; rp += 2) { /* two rows of O in registers */
                __m256 o[2][4];
                _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++) {
                    __m256 va = _mm256_set1_ps(alpha[rp + r]);
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
                        o[r][v] = _mm256_mul_ps(_mm256_load_ps(&O[rp + r][8 * v]), va);
                }
                for (int64_t j = 0; j < nreal; j++) {
                    const float *vp = qkv + (t0 + j0 + j) * C3 + 2 * C + h * HS;
                    __m256 p0 = _mm256_broadcast_ss(&S[rp][j]), p1 = _mm256_broadcast_ss(&S[rp + 1][j]);
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
                        __m256 vv = _mm256_loadu_ps(vp + 8 * v);
                        o[0][v] = _mm256_fmadd_ps(p0, vv, o[0][v]);
                        o[1][v] = _mm256_fmadd_ps(p1, vv, o[1][v]);
                    }
                }
                _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++)
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
                        _mm256_store_ps(&O[rp + r][8 * v], o[r][v]);
            }
        }
        for (int r = 0; r < AR && ib + r < i1; r++) {
            float inv = 1.0f / l[r];
            float *orow = out + (t0 + ib + r) * C + h * HS;
            for (int64_t d = 0; d < HS; d++)
                orow[d] = O[r][d] * inv;
            lse[h * N + t0 + ib + r] = m[r] + logf(l[r]);
        }
    }
}

static BMFM_AVX2 void attn_fwd_unit_256(float *out, float *lse, const float *qkv, float *Kt,
                                        int64_t t0, int64_t T, int64_t i0, int64_t i1, int64_t h,
                                        int64_t N, int64_t NH, int64_t HS, int pack)
{
    int64_t C = NH * HS;
    if (pack)
        pack_transposed(Kt, qkv + t0 * 3 * C + C + h * HS, 3 * C, T, ld_of(T), HS);
    if (HS == 8)
        attn_fwd_rows_256(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, 1);
    else if (HS == 16)
        attn_fwd_rows_256(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, 2);
    else
        attn_fwd_rows_256(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, 4);
}

static inline __attribute__((always_inline)) BMFM_AVX2 void
attn_bwd_256_impl(float *dqkv, const float *dout, const float *qkv, const float *out,
                  const float *lse, int64_t t0, int64_t T, int64_t h, int64_t N, int64_t NH,
                  float *scratch, const int NV)
{
    const int64_t HS = 8 * NV, C = NH * HS, C3 = 3 * C, Tp = (T + 7) & ~(int64_t)7, ld = ld_of(T);
    const __m256 vscale = _mm256_set1_ps(1.0f / sqrtf((float)HS));
    float *Kt = scratch, *Vt = Kt + HS * ld, *dKt = Vt + HS * ld, *dVt = dKt + HS * ld;
    float *zero = dVt + HS * ld;
    pack_transposed(Kt, qkv + t0 * C3 + C + h * HS, C3, T, ld, HS);
    pack_transposed(Vt, qkv + t0 * C3 + 2 * C + h * HS, C3, T, ld, HS);
    memset(dKt, 0, sizeof(float) * (size_t)(2 * HS * ld + HS));
    float dsbuf[AR][8] __attribute__((aligned(32)));
    float DQ[AR][64] __attribute__((aligned(32)));
    for (int64_t ib = 0; ib < T; ib += AR) {
        const float *q[AR], *g[AR];
        __m256 vl[AR], vD[AR];
        for (int r = 0; r < AR; r++) {
            int64_t i = ib + r;
            if (i < T) {
                q[r] = qkv + (t0 + i) * C3 + h * HS;
                g[r] = dout + (t0 + i) * C + h * HS;
                const float *o = out + (t0 + i) * C + h * HS;
                float D = 0.0f;
                for (int64_t d = 0; d < HS; d++)
                    D += g[r][d] * o[d];
                vD[r] = _mm256_set1_ps(D);
                vl[r] = _mm256_set1_ps(lse[h * N + t0 + i]);
            } else {
                q[r] = zero, g[r] = zero;
                vD[r] = _mm256_setzero_ps();
                vl[r] = _mm256_set1_ps(INFINITY);
            }
            for (int64_t d = 0; d < HS; d++)
                DQ[r][d] = 0.0f;
        }
        for (int64_t jb = 0; jb < Tp; jb += 8) {
            __m256 sc[AR], dp[AR];
            _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++)
                sc[r] = _mm256_setzero_ps(), dp[r] = _mm256_setzero_ps();
            for (int64_t d = 0; d < HS; d++) {
                __m256 kv = _mm256_loadu_ps(Kt + d * ld + jb), vv = _mm256_loadu_ps(Vt + d * ld + jb);
                _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++) {
                    sc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(q[r] + d), kv, sc[r]);
                    dp[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(g[r] + d), vv, dp[r]);
                }
            }
            __m256 km = _mm256_castsi256_ps(mask8(T - jb));
            __m256 p[AR], ds[AR];
            _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++) {
                p[r] = _mm256_and_ps(km, bmfm_exp256(_mm256_fmsub_ps(sc[r], vscale, vl[r])));
                ds[r] = _mm256_mul_ps(_mm256_mul_ps(p[r], _mm256_sub_ps(dp[r], vD[r])), vscale);
                _mm256_store_ps(dsbuf[r], ds[r]);
            }
            for (int64_t d = 0; d < HS; d++) {
                float *dvp = dVt + d * ld + jb, *dkp = dKt + d * ld + jb;
                __m256 av = _mm256_loadu_ps(dvp), ak = _mm256_loadu_ps(dkp);
                _Pragma("GCC unroll 4") for (int r = 0; r < AR; r++) {
                    av = _mm256_fmadd_ps(_mm256_broadcast_ss(g[r] + d), p[r], av);
                    ak = _mm256_fmadd_ps(_mm256_broadcast_ss(q[r] + d), ds[r], ak);
                }
                _mm256_storeu_ps(dvp, av);
                _mm256_storeu_ps(dkp, ak);
            }
            int64_t nreal = T - jb < 8 ? T - jb : 8;
            for (int rp = 0; rp < AR; rp += 2) {
                __m256 dq[2][4];
                _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++)
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
                        dq[r][v] = _mm256_load_ps(&DQ[rp + r][8 * v]);
                for (int64_t j = 0; j < nreal; j++) {
                    const float *kp = qkv + (t0 + jb + j) * C3 + C + h * HS;
                    __m256 b0 = _mm256_broadcast_ss(&dsbuf[rp][j]), b1 = _mm256_broadcast_ss(&dsbuf[rp + 1][j]);
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {
                        __m256 kv = _mm256_loadu_ps(kp + 8 * v);
                        dq[0][v] = _mm256_fmadd_ps(b0, kv, dq[0][v]);
                        dq[1][v] = _mm256_fmadd_ps(b1, kv, dq[1][v]);
                    }
                }
                _Pragma("GCC unroll 2") for (int r = 0; r < 2; r++)
                    _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)
                        _mm256_store_ps(&DQ[rp + r][8 * v], dq[r][v]);
            }
        }
        for (int r = 0; r < AR && ib + r < T; r++) {
            float *dqp = dqkv + (t0 + ib + r) * C3 + h * HS;
            for (int64_t d = 0; d < HS; d++)
                dqp[d] += DQ[r][d];
        }
    }
    add_transposed_kv(dqkv, dKt, dVt, t0, T, h, NH, HS, ld);
}

static BMFM_AVX2 void attn_bwd_256(float *dqkv, const float *dout, const float *qkv,
                                   const float *out, const float *lse, int64_t t0, int64_t T,
                                   int64_t h, int64_t N, int64_t NH, int64_t HS, float *scratch)
{
    if (HS == 8)
        attn_bwd_256_impl(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, scratch, 1);
    else if (HS == 16)
        attn_bwd_256_impl(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, scratch, 2);
    else
        attn_bwd_256_impl(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, scratch, 4);
}

/* 2: AVX-512 tiles, 1: AVX2 tiles, 0: the portable per-row loops */
static int tile_path(int64_t HS)
{
    bmfm_isa isa = bmfm_cpu_isa();
    if (isa >= BMFM_ISA_AVX512 && (HS == 16 || HS == 32 || HS == 64))
        return 2;
    if (isa >= BMFM_ISA_AVX2 && (HS == 8 || HS == 16 || HS == 32))
        return 1;
    return 0;
}

/* ---- drivers ---------------------------------------------------------------- */

void bmfm_attention_forward(float *out, float *lse, const float *qkv, const int64_t *cu_seqlens,
                            int64_t B, int64_t N, int64_t NH, int64_t HS)
{
    if (B <= 0 || NH <= 0 || HS <= 0)
        return;
    int64_t Tmax = max_cell_len(cu_seqlens, B), ld = ld_of(Tmax);
    int64_t nqb = (Tmax + QB - 1) / QB, units = B * NH * nqb;
    int path = tile_path(HS);
    bmfm_isa isa = bmfm_cpu_isa();
#pragma omp parallel if (units > 1 && (int64_t)Tmax * Tmax * HS * NH * B > 65536)
    {
        float *Kt = path ? bmfm_nn_scratch(1, sizeof(float) * (size_t)(HS * ld)) : NULL;
        int64_t packed = -1; /* the (cell, head) whose keys Kt holds: units come in
                              * (cell, head, query block) order, so a thread mostly
                              * packs each cell's head once, not once per block
                              * (repacking was 15% of the forward at T = 1024) */
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units; u++) {
            int64_t b = u / (NH * nqb), h = (u / nqb) % NH, qb = u % nqb;
            int64_t t0 = cu_seqlens[b], T = cu_seqlens[b + 1] - t0;
            int64_t i0 = qb * QB, i1 = i0 + QB < T ? i0 + QB : T;
            if (i0 >= T)
                continue;
            int pack = packed != u / nqb;
            packed = u / nqb;
            if (Kt && path == 2)
                attn_fwd_unit_512(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, HS, pack);
            else if (Kt)
                attn_fwd_unit_256(out, lse, qkv, Kt, t0, T, i0, i1, h, N, NH, HS, pack);
            else if (isa >= BMFM_ISA_AVX2)
                attn_fwd_rows_avx2(out, lse, qkv, t0, T, i0, i1, h, N, NH, HS);
            else
                attn_fwd_rows_scalar(out, lse, qkv, t0, T, i0, i1, h, N, NH, HS);
        }
        bmfm_nn_scratch_done(1, Kt); /* NULL (no memory): the portable path ran */
    }
}

void bmfm_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                             const float *lse, const int64_t *cu_seqlens, int64_t B, int64_t N,
                             int64_t NH, int64_t HS)
{
    if (B <= 0 || NH <= 0 || HS <= 0)
        return;
    int64_t Tmax = max_cell_len(cu_seqlens, B), ld = ld_of(Tmax);
    int64_t units = B * NH;
    int path = tile_path(HS);
    bmfm_isa isa = bmfm_cpu_isa();
    size_t scratch_n = (size_t)(4 * HS * ld + HS + 16);
#pragma omp parallel if (units > 1 && (int64_t)Tmax * Tmax * HS * NH * B > 65536)
    {
        float *scratch = path ? bmfm_nn_scratch(1, sizeof(float) * scratch_n) : NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units; u++) {
            int64_t b = u / NH, h = u % NH;
            int64_t t0 = cu_seqlens[b], T = cu_seqlens[b + 1] - t0;
            if (T <= 0)
                continue;
            if (scratch && path == 2)
                attn_bwd_512(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, HS, scratch);
            else if (scratch)
                attn_bwd_256(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, HS, scratch);
            else if (isa >= BMFM_ISA_AVX2)
                attn_bwd_avx2(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, HS);
            else
                attn_bwd_scalar(dqkv, dout, qkv, out, lse, t0, T, h, N, NH, HS);
        }
        bmfm_nn_scratch_done(1, scratch);
    }
}
