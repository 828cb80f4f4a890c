/* nn.h - the CPU kernels of the encoder and heads: forward and backward of
 * each layer, as free functions in the llm.c style (outputs first, then
 * inputs, then dimensions). Tensors are row-major float32; N is the number of
 * rows (packed tokens of all cells of a batch, no padding).
 *
 * Backward functions ACCUMULATE into parameter and input gradients (+=), so
 * residual branches and shared parameters just add up; callers zero the
 * gradient arena once per step. A NULL input-gradient pointer means "not
 * needed" (e.g. the first layer).
 *
 * Each kernel has a plain reference version (`_ref`, the specification,
 * written for clarity) and the optimized one used by the model, chosen at run
 * time (AVX-512 / AVX2 / scalar). Results never depend on the number of
 * threads: every reduction has a fixed partition and order. Per-token kernels
 * (projection forward and dinp, norms, activations, attention per cell) give
 * a cell's rows the same bits whether the cell is alone or in any batch (on
 * AVX2/AVX-512 CPUs; the projections and their weight gradients use own
 * GEMMs there, and OpenBLAS elsewhere).
 *
 * Implementations: matmul.c, gemm.c, matmul_bf16.c, norm.c, activation.c,
 * attention.c, embed.c, expr_encoder.c, cpu.c (one concern per file).
 */
#ifndef BMFM_NN_NN_H
#define BMFM_NN_NN_H

#include <stddef.h>
#include <stdint.h>

/* ---- linear layers (PyTorch layout: weight is [OUT, IN]) ----------------- */
/* out[N,OUT] = inp[N,IN] @ weight^T + bias (bias may be NULL). */
void bmfm_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int64_t N, int64_t IN, int64_t OUT);
/* dinp[N,IN] += dout @ weight; dweight[OUT,IN] += dout^T @ inp; dbias[OUT] += sum_n dout.
 * dinp, dweight or dbias may be NULL (frozen or not needed). */
void bmfm_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int64_t N, int64_t IN, int64_t OUT);
void bmfm_matmul_forward_ref(float *out, const float *inp, const float *weight, const float *bias,
                             int64_t N, int64_t IN, int64_t OUT);
/* Inference option: with BMFM_MATMUL_BF16, bmfm_matmul_forward rounds inputs
 * and weights to bfloat16 and accumulates in float32 (AVX512-BF16 CPUs only;
 * elsewhere the setting stays FP32). Outputs then differ from float32 by
 * ~1e-3 of their scale; backward passes are always float32, so keep FP32 for
 * training. Returns the previous setting. */
typedef enum { BMFM_MATMUL_FP32 = 0, BMFM_MATMUL_BF16 = 1 } bmfm_matmul_precision;
bmfm_matmul_precision bmfm_matmul_set_precision(bmfm_matmul_precision p);
bmfm_matmul_precision bmfm_matmul_get_precision(void);
/* The bfloat16 forward itself; returns 0, or -1 (out untouched) without
 * AVX512-BF16 or memory for the bf16 copies. */
int bmfm_matmul_forward_bf16(float *out, const float *inp, const float *weight, const float *bias,
                             int64_t N, int64_t IN, int64_t OUT);
void bmfm_matmul_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int64_t N, int64_t IN,
                              int64_t OUT);

/* ---- normalisation -------------------------------------------------------- */
/* LayerNorm over C with affine weight/bias; saves mean[N], rstd[N]. */
void bmfm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, int64_t N, int64_t C, float eps);
void bmfm_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int64_t N, int64_t C);
/* RMSNorm: out = scale * x / sqrt(mean(x^2) + eps); saves rstd[N]. */
void bmfm_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *scale, int64_t N,
                          int64_t C, float eps);
void bmfm_rmsnorm_backward(float *dinp, float *dscale, const float *dout, const float *inp,
                           const float *scale, const float *rstd, int64_t N, int64_t C);
/* Plain single-threaded references of the four above (same contracts). */
void bmfm_layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int64_t N, int64_t C,
                                float eps);
void bmfm_layernorm_backward_ref(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, int64_t N, int64_t C);
void bmfm_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *scale,
                              int64_t N, int64_t C, float eps);
void bmfm_rmsnorm_backward_ref(float *dinp, float *dscale, const float *dout, const float *inp,
                               const float *scale, const float *rstd, int64_t N, int64_t C);

/* ---- activations (elementwise over n values) ----------------------------- */
/* SwiGLU: out = silu(a) * b. */
void bmfm_swiglu_forward(float *out, const float *a, const float *b, int64_t n);
void bmfm_swiglu_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                          int64_t n);
/* Exact (erf) GELU, as torch.nn.functional.gelu and HF "gelu". */
void bmfm_gelu_forward(float *out, const float *inp, int64_t n);
void bmfm_gelu_backward(float *dinp, const float *dout, const float *inp, int64_t n);
void bmfm_tanh_forward(float *out, const float *inp, int64_t n);
/* uses the forward output y: dinp += dout * (1 - y^2) */
void bmfm_tanh_backward(float *dinp, const float *dout, const float *out, int64_t n);
void bmfm_leaky_relu_forward(float *out, const float *inp, int64_t n, float slope);
void bmfm_leaky_relu_backward(float *dinp, const float *dout, const float *inp, int64_t n, float slope);
/* out += inp (residual) */
void bmfm_add_inplace(float *out, const float *inp, int64_t n);
/* Plain scalar references (libm expf / erff), the accuracy yardstick of the
 * vectorized versions above. */
void bmfm_swiglu_forward_ref(float *out, const float *a, const float *b, int64_t n);
void bmfm_swiglu_backward_ref(float *da, float *db, const float *dout, const float *a,
                              const float *b, int64_t n);
void bmfm_gelu_forward_ref(float *out, const float *inp, int64_t n);
void bmfm_gelu_backward_ref(float *dinp, const float *dout, const float *inp, int64_t n);

/* ---- attention over packed variable-length cells -------------------------- */
/* qkv[N, 3C] holds q | k | v per token (head h uses columns [h*HS, (h+1)*HS)
 * of each part); cell b owns tokens [cu_seqlens[b], cu_seqlens[b+1]) and
 * attends bidirectionally to its own tokens only (this is exactly the key
 * padding mask of the reference, without the padding). out[N, C] is the
 * concatenation of heads before the output projection. lse[NH, N] keeps the
 * per-row log-sum-exp of the scaled scores for the backward pass. Scores are
 * q.k / sqrt(HS). Never materializes a T x T matrix (online softmax, tiled). */
void bmfm_attention_forward(float *out, float *lse, const float *qkv, const int64_t *cu_seqlens,
                            int64_t B, int64_t N, int64_t NH, int64_t HS);
/* dqkv[N, 3C] += gradients w.r.t. q, k and v, recomputing the probabilities
 * from qkv and lse (flash-attention style). */
void bmfm_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                             const float *lse, const int64_t *cu_seqlens, int64_t B, int64_t N,
                             int64_t NH, int64_t HS);
/* Plain reference: one query row of scores at a time, per cell and head. */
void bmfm_attention_forward_ref(float *out, float *lse, const float *qkv, const int64_t *cu_seqlens,
                                int64_t B, int64_t N, int64_t NH, int64_t HS);
void bmfm_attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *out,
                                 const float *lse, const int64_t *cu_seqlens, int64_t B, int64_t N,
                                 int64_t NH, int64_t HS);

/* ---- embeddings ----------------------------------------------------------- */
/* out[N,C] = table[ids[n]] (ids already validated in [0, V)). */
void bmfm_embedding_forward(float *out, const int32_t *ids, const float *table, int64_t N, int64_t C);
/* dtable[ids[n]] += dout[n]; rows equal to padding_idx (or < 0 for none) get no gradient.
 * Deterministic: rows are accumulated in token order whatever the thread count. */
void bmfm_embedding_backward(float *dtable, const float *dout, const int32_t *ids, int64_t N,
                             int64_t C, int32_t padding_idx);

/* ---- expression encoders (bmfm_reference.md section 2.6) ------------------ */
/* Special-token index of an expression value x <= 0: x == 0 -> n_special
 * (the zero token), else -(int)x - 1 (x = -(token_id+1) encodes a special). */
int32_t bmfm_expr_special_index(float x, int32_t n_special);
/* ScaleAdapt features: for x > 0, feat[n] = [sin(x*b_k) k<NB, cos(x*b_k) k<NB]
 * with the float32 product x*b_k and correctly range-reduced sinf/cosf; rows
 * with x <= 0 are zeros (their output comes from the special table). */
void bmfm_scale_adapt_features(float *feat, const float *x, const float *basis, int64_t N, int64_t NB);
/* out[N,C] = x > 0 ? feat @ dense^T : special[special_index(x)]. */
void bmfm_scale_adapt_forward(float *out, float *feat, const float *x, const float *basis,
                              const float *dense, const float *special, int64_t N, int64_t NB,
                              int64_t C, int32_t n_special);
/* ddense += dout^T feat over continuous rows; dspecial[idx] += dout over special rows
 * (row padding_idx excluded). */
void bmfm_scale_adapt_backward(float *ddense, float *dspecial, const float *dout, const float *feat,
                               const float *x, int64_t N, int64_t NB, int64_t C, int32_t n_special,
                               int32_t padding_idx);
/* The v1 "mlp_with_special_token_embedding" encoder: continuous values
 * dense_2(lrelu(lrelu(dense_1(x)))), specials dense_2(lrelu(E128[idx])).
 * hidden[N, H1] caches the pre-activation of dense_2's input (H1 = 128). */
void bmfm_mlp_expr_forward(float *out, float *hidden, const float *x, const float *w1,
                           const float *b1, const float *w2, const float *b2, const float *special,
                           int64_t N, int64_t H1, int64_t C, int32_t n_special);
void bmfm_mlp_expr_backward(float *dw1, float *db1, float *dw2, float *db2, float *dspecial,
                            const float *dout, const float *hidden, const float *x,
                            const float *w1, const float *b1, const float *w2, int64_t N,
                            int64_t H1, int64_t C, int32_t n_special, int32_t padding_idx);

/* ---- run-time CPU features ------------------------------------------------ */
typedef enum { BMFM_ISA_SCALAR = 0, BMFM_ISA_AVX2 = 1, BMFM_ISA_AVX512 = 2 } bmfm_isa;
bmfm_isa bmfm_cpu_isa(void);
int bmfm_cpu_has_avx512_bf16(void);
/* Force a lower ISA (tests compare paths); returns the previous one. */
bmfm_isa bmfm_set_isa(bmfm_isa isa);

/* ---- threads -------------------------------------------------------------- */
/* Use n OpenMP threads for the kernels (n <= 0: the number of cores). All
 * parallel work of nn, the sgemm tiles included, runs on the OpenMP pool;
 * OpenBLAS is called single-threaded inside it (its own pthread pool would
 * compete for the cores: idle OpenBLAS threads spin after each call). The
 * results are the same for every n. */
void bmfm_nn_set_threads(int n);

#endif
