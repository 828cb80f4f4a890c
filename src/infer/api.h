/* api.h - the public inference entry points (to be moved into include/bmfm.h):
 * options, one call over an in-memory CSR matrix (what the Python module
 * uses through ctypes, so no temporary file is needed), and the result with
 * its accessors. The file-to-file pipeline is in embed.h.
 *
 * The options struct is mirrored field by field in python/bmfm/_lib.py.
 */
#ifndef BMFM_INFER_API_H
#define BMFM_INFER_API_H

#include <stdint.h>

typedef struct bmfm_infer_options {
    const char *model_dir;
    const char *pooling;    /* "first_token" | "mean_pooling" | "pooling_layer" | "<k>" | "a,b,..."; NULL = model default */
    const char *order;      /* gene order "var" (default) | "sorted" | "random" */
    const char *gene_list;  /* allowed genes (e.g. protein-coding list) intersected with the vocab; NULL = the model dir's own list, else all vocab genes */
    int64_t max_length;     /* tokens per cell, specials included (default 1024) */
    int64_t batch_size;     /* cells per forward batch at most (default 8 as the reference; 0 = token budget only) */
    int64_t token_budget;   /* tokens per forward batch at most (default 16384) */
    uint64_t seed;          /* random order */
    int normalize;          /* -1 auto (detect log-normalized input), 1 raw counts, 0 pass through */
    int threads;            /* 0 = OpenMP default */
    int case_insensitive;   /* gene match: exact (0, the reference) or fall back to case-insensitive */
    int predict;            /* run the label heads */
    int want_probs;         /* keep per-class probabilities */
    int progress;           /* progress bar on a terminal */
    int want_logits;        /* keep raw label logits (tests, --logits) */
    const char *var_column; /* gene names from this var column (file input only); NULL = var index */
} bmfm_infer_options;

void bmfm_infer_options_default(bmfm_infer_options *o);

typedef struct bmfm_infer_result bmfm_infer_result;

/* Run inference on n_obs cells given as CSR (indices sorted or not, int32;
 * values float32) with gene names var_names[n_vars]. Returns 0 or a
 * bmfm_status with the message in bmfm_error_message(). */
int bmfm_infer_csr(const bmfm_infer_options *opts, int64_t n_obs, int64_t n_vars,
                   const int64_t *indptr, const int32_t *indices, const float *data,
                   const char *const *var_names, bmfm_infer_result **out);

void bmfm_infer_result_free(bmfm_infer_result *r);
/* Embeddings [rows, cols] row-major (NaN rows for cells without known genes). */
const float *bmfm_infer_result_embedding(const bmfm_infer_result *r, int64_t *rows, int64_t *cols);
int64_t bmfm_infer_result_n_empty(const bmfm_infer_result *r);
int bmfm_infer_result_n_heads(const bmfm_infer_result *r);
/* Head h: returns its label name; n_classes, class names, per-cell predicted
 * class (-1 for empty cells), its probability, and the probabilities
 * [n_obs, n_classes] (NULL unless want_probs). */
const char *bmfm_infer_result_head(const bmfm_infer_result *r, int h, int64_t *n_classes,
                                   const char *const **names, const int32_t **codes,
                                   const float **prob, const float **probs);
/* Raw logits [n_obs, n_classes] of head h (NULL unless want_logits). */
const float *bmfm_infer_result_logits(const bmfm_infer_result *r, int h);

#endif
