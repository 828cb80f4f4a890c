/* embed.h - the streaming inference pipeline behind `bmfm embed`, `bmfm
 * annotate` and the Python module: read a chunk of rows, tokenize them as
 * the released checkpoints expect, pack cells into batches by a token
 * budget, run the encoder, pool each cell's hidden states into its embedding
 * row and evaluate the label heads (bmfm_reference.md 6.1).
 *
 * Memory is bounded by the chunk and the batch, not by the file (only the
 * outputs, n_obs x dim, are held). A cell's result does not depend on the
 * batch it lands in or the thread count. Cells with no gene in the vocabulary
 * keep their row, filled with NaN, and are counted.
 *
 * Not here: writing the outputs into an .h5ad (cli/embed.c, cli/annotate.c),
 * decoding label heads into names (predict.h).
 */
#ifndef BMFM_INFER_EMBED_H
#define BMFM_INFER_EMBED_H

#include "base/error.h"
#include "base/strmap.h"
#include "data/tokenize.h"
#include "infer/api.h"
#include "io/dataset.h"
#include "io/tokenizer_file.h"
#include "model/model.h"

#include <stdint.h>

/* ---- pooling (layers.py::get_embeddings_from_outputs) -------------------- */
typedef enum {
    BMFM_POOL_FIRST = 0, /* h[0] */
    BMFM_POOL_MEAN,      /* mean of h[1..L-1] (specials after [CLS] included, as the reference) */
    BMFM_POOL_POOLER,    /* tanh(W h[0] + b) */
    BMFM_POOL_INDEX      /* h[k] */
} bmfm_pool_kind;

#define BMFM_POOL_MAX 16
typedef struct bmfm_pooling {
    int n;
    bmfm_pool_kind kind[BMFM_POOL_MAX];
    int index[BMFM_POOL_MAX];
} bmfm_pooling;

/* "first_token" | "mean_pooling" | "pooling_layer" | "<k>" | comma list. */
bmfm_status bmfm_pooling_parse(const char *s, bmfm_pooling *out);
int64_t bmfm_pooling_dim(const bmfm_pooling *p, int64_t C);
/* One cell: h[L, C] its last hidden states, pooled[C] its pooler output (may be
 * NULL when no method needs it). Returns 0, or 1 when an index k >= L (its
 * part is NaN). */
int bmfm_pooling_apply(float *out, const float *h, int64_t L, int64_t C, const float *pooled,
                       const bmfm_pooling *p);

/* ---- a model directory ready for inference ------------------------------ */
typedef struct bmfm_label_space {
    char name[128];
    int64_t n_classes;
    char **classes;        /* class names by index (from label_dict; "0".."K-1" when absent) */
    int is_ontology;       /* label_ontology set in config (leaf ids of an ontology) */
} bmfm_label_space;

typedef struct bmfm_infer_model {
    char *dir;
    bmfm_model model;
    bmfm_token_vocab vocab;     /* tokenizers/genes */
    bmfm_token_vocab allowed;   /* protein-coding list when one is found/given */
    int has_allowed;
    bmfm_tok_opts tok;          /* prefix ([CLS] + [CLS_k]) and [SEP] from the tokenizer template */
    char default_pooling[64];   /* trainer_config.pooling_method, else "first_token" */
    /* Input settings the model was trained with, for models from `bmfm pretrain`
     * (checkpoint_metadata.json "bmfm_pretrain": its max_length, and the random
     * gene order our trainer uses); 0 / "" for released checkpoints, which get
     * the reference inference defaults (1024 tokens, var order). */
    int64_t default_max_length;
    char default_order[16];
    bmfm_label_space *labels;   /* [cfg.n_labels] */
    int n_labels;
} bmfm_infer_model;

/* Load config.json, model.safetensors, checkpoint_metadata.json (label_dict,
 * pooling_method) and tokenizers/genes from dir. gene_list: allowed genes
 * (NULL: dir/protein_coding_genes.json when present, else every vocab gene). */
bmfm_status bmfm_infer_model_load(const char *dir, const char *gene_list, bmfm_infer_model **out);
void bmfm_infer_model_free(bmfm_infer_model *m);

/* ---- the result ---------------------------------------------------------- */
typedef struct bmfm_head_result {
    const bmfm_label_space *space;
    int32_t *code;        /* [n_obs] argmax, -1 for empty cells */
    float *prob;          /* [n_obs] its softmax probability (NaN for empty cells) */
    float *probs;         /* [n_obs, K] or NULL */
    float *logits;        /* [n_obs, K] or NULL */
} bmfm_head_result;

struct bmfm_infer_result {
    int64_t n_obs, dim;
    float *emb;           /* [n_obs, dim] */
    int64_t n_empty;      /* cells without any known gene (NaN rows) */
    int64_t n_truncated;  /* cells with more genes than max_length allowed */
    int64_t n_index_short; /* cells shorter than a pooled index k */
    int n_heads;
    bmfm_head_result *heads;
    bmfm_infer_model *owned_model; /* freed with the result when set */
    char normalize_note[512];      /* what was decided about normalization, and why */
    double seconds;
};

/* Called for every non-empty cell and label head with the head's logits
 * (predict.h decodes ontology heads this way without keeping n_obs x K). */
typedef struct bmfm_infer_hook {
    void (*cell)(void *ctx, int head, int64_t row, const float *logits, int64_t K);
    void *ctx;
} bmfm_infer_hook;

/* Run the pipeline over every row of ds (hook may be NULL). */
bmfm_status bmfm_infer_run(bmfm_infer_model *m, bmfm_dataset *ds, const bmfm_infer_options *o,
                           const bmfm_infer_hook *hook, bmfm_infer_result **out);

#endif
