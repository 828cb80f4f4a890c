/* config.h - the model configuration, read from and written to the
 * config.json of a model directory in the layout of the released BMFM-RNA
 * *.vllm repositories (LlamaForMultiTaskConfig.to_dict(), model_type
 * "scllama").
 *
 * Keys read (everything else is kept verbatim in `raw` and written back):
 *   hidden_size, num_hidden_layers, num_attention_heads,
 *   layer_norm_eps (default 1e-12), rms_norm_eps (ours; default 1e-5 as the
 *   reference hard-codes), pad_token_id (default 2; the reference overrides the
 *   yaml's 0 with the tokenizer's [PAD] = 2), vocab_size (fallback for the genes
 *   field), classifier_pooling ("cls" only), intermediate_size is NOT read:
 *   the SwiGLU width is roundup256(int(8C/3)) as in the reference (an
 *   "mlp_hidden_size" key of ours overrides it);
 *   fields[]: field_name, vocab_size, num_special_tokens, is_input,
 *     tokenization_strategy, decode_modes ({"wced": {"logit_outputs": [...]}}
 *     or {"regression": {}, "is_zero": {}}), encoder_kwargs (kind,
 *     n_sin_basis, basis_scale, zero_as_special_token, trainable);
 *   label_columns[]: label_column_name, n_unique_values (null: the size of
 *     the label's label_dict, else the rows of its decoder weight), is_regression_label,
 *     decode_from, gradient_reversal_coefficient, label_ontology,
 *     classifier_depth (must be 1), task_group (must be null).
 * Not supported (clear error): BERT / ModernBERT backbones, tokenized
 * expression fields, multi-layer classifiers, task groups.
 */
#ifndef BMFM_MODEL_CONFIG_H
#define BMFM_MODEL_CONFIG_H

#include "base/error.h"

#include <stdint.h>

typedef enum { BMFM_EXPR_SCALE_ADAPT = 0, BMFM_EXPR_MLP_SPECIAL = 1 } bmfm_expr_kind;

#define BMFM_NAME_MAX 128

typedef struct bmfm_label_cfg {
    char name[BMFM_NAME_MAX];
    int64_t n_classes;     /* output size (1 for regression); 0 = unknown until a checkpoint fills it */
    int decode_from;       /* token position read by the head; -1 = the tanh pooler */
    int is_regression;
    int has_grl;           /* gradient reversal in front of the linear layer */
    float grl_coef;
    char ontology[64];     /* label_ontology or "" */
    char **class_names;    /* [n_classes] from checkpoint_metadata.json label_dict, or NULL */
} bmfm_label_cfg;

typedef struct bmfm_model_config {
    int64_t C, NL, NH, F;
    int64_t V;             /* genes vocabulary (rows of the gene table, WCED width) */
    int64_t n_special;     /* num_special_tokens of the expressions field */
    int64_t n_spec_rows;   /* rows of the special-token table: n_special + 1 (zero token) */
    float ln_eps, rms_eps;
    int pad_id;
    bmfm_expr_kind expr_kind;
    int64_t n_sin_basis;   /* ScaleAdapt: NB */
    double basis_scale;
    int basis_trainable;
    int zero_as_special;
    int64_t expr_hidden;   /* MLP encoder hidden width (128) */
    int wced;              /* WCED decoder on the expressions field */
    int64_t wced_n_out;    /* outputs per gene (len(logit_outputs)), 2 */
    int wced_mse_idx, wced_bce_idx; /* their positions, -1 if absent */
    int mlm_regression, mlm_is_zero;
    int n_labels;
    bmfm_label_cfg *labels;
    char *raw_json;        /* the parsed config.json, re-emitted on save */
    char *metadata_json;   /* checkpoint_metadata.json as read (NULL if none), re-emitted on save */
} bmfm_model_config;

/* Parse config.json text (path is for messages). */
bmfm_status bmfm_config_parse(bmfm_model_config *cfg, const char *json, const char *path);
bmfm_status bmfm_config_load(bmfm_model_config *cfg, const char *path);
/* Write config.json atomically: raw keys kept, ours (above) updated. */
bmfm_status bmfm_config_save(const bmfm_model_config *cfg, const char *path);
/* A config built from sizes (for new models and tests): ScaleAdapt(48, 0.01),
 * no heads; the caller then sets wced / mlm / labels. */
void bmfm_config_default(bmfm_model_config *cfg, int64_t C, int64_t NL, int64_t NH, int64_t V,
                         int64_t n_special);
/* Add a label head (copies name). */
bmfm_status bmfm_config_add_label(bmfm_model_config *cfg, const char *name, int64_t n_classes,
                                  int decode_from, int is_regression, float grl_coef);
/* roundup256(int(8C/3)) */
int64_t bmfm_config_mlp_width(int64_t C);
int bmfm_config_label_index(const bmfm_model_config *cfg, const char *name);
void bmfm_config_free(bmfm_model_config *cfg);

#endif
