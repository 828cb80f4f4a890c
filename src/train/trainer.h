/* trainer.h - pretraining of a BMFM-RNA v2 style model on raw-count .h5ad
 * files with our own engine (bmfm_reference.md 2.4-2.7, 4, 5):
 *
 *   cells of one or more files (raw counts; genes resolved to the vocabulary
 *   by name) -> seeded split into train / held-out validation -> each step a
 *   batch of cells in a seeded shuffled order, each cell tokenized in a
 *   seeded random gene order (its nonzero genes, truncated to max_length),
 *   [CLS] (+ [CLS_0] when a label head exists) ... [SEP] -> encoder -> heads
 *   -> losses: WCED all-genes mse + is-zero BCE (targets from the full cell,
 *   data/targets.h), optionally MLM on the expression field, and HCE over the
 *   Cell Ontology leaves observed in a CL-id obs column (the ontology pruned
 *   to the observed types, head read from [CLS_0] as the 47M model) ->
 *   weighted mean sum w_i L_i / sum w_i (weights 1; the HCE weight is an option) -> backward ->
 *   grad-norm clipping -> AdamW (train/adamw.h) with a warmup schedule.
 *   The loss is logged every log_every steps, the held-out loss every
 *   val_every steps and at the end; the model directory is written
 *   atomically (model.safetensors, config.json, checkpoint_metadata.json with
 *   label_dict, tokenizers/genes/tokenizer.json) at checkpoints and at the end.
 *
 * Deterministic for a seed and a step count (the wall-time limit, when used,
 * makes the step count depend on the machine). Files are read whole into
 * memory at start (the shared training files are small); cells without any
 * vocabulary gene are skipped; max_cells_per_file keeps a seeded subset of a
 * large file so that it does not dominate the mix. Not here: resuming from a checkpoint,
 * gradient accumulation, mixed precision, the zero-gene padding of 2.4 (the
 * input holds expressed genes only; zeros are learned through the WCED
 * targets), sequence dropout.
 */
#ifndef BMFM_TRAIN_TRAINER_H
#define BMFM_TRAIN_TRAINER_H

#include "base/error.h"

#include <stdint.h>

typedef struct bmfm_train_opts {
    const char *const *data; /* .h5ad paths */
    int n_data;
    const char *out;         /* model directory */
    const char *vocab;       /* tokenizer.json / vocab file, or a gene list (JSON list / one a line) */
    int64_t hidden, layers, heads, max_length;
    int64_t steps, batch_size;
    double lr, weight_decay, clip;
    double label_weight;         /* weight of the HCE term in sum w_i L_i / sum w_i (default 1, as the 47M model) */
    int64_t warmup, decay_steps; /* decay_steps 0: constant after warmup; -1: decay until `steps` */
    const char *label_column;    /* CL ids (or names); NULL: no label head */
    const char *ontology;        /* OBO for the label head */
    int64_t max_cells_per_file;  /* keep at most this many cells of each file (seeded choice; 0 = all) */
    double val_fraction;
    int64_t val_max_cells;       /* held-out cells evaluated (0 = all) */
    int64_t log_every, val_every, checkpoint_every;
    uint64_t seed;
    int threads;                 /* 0 = leave as is */
    int mlm;                     /* add the MLM objective (regression + is-zero heads) */
    int wced;                    /* WCED objective (default 1) */
    int save_wced_decoder;       /* keep the WCED decoder in the saved model (0: inference-only model) */
    double max_minutes;          /* stop early after this wall time (0 = no limit) */
} bmfm_train_opts;

void bmfm_train_opts_default(bmfm_train_opts *o);

typedef struct bmfm_train_report {
    int64_t steps, n_train, n_val, n_skipped, n_capped, n_labeled, K;
    int64_t params;
    double first_loss, last_loss;  /* mean training loss over the first / last log window */
    double val_first, val_last;    /* held-out loss at step 0 and at the end */
    double val_terms[5];           /* wced mse, wced bce, mlm mse, mlm bce, hce at the end (NaN when off) */
    double val_hce_acc;            /* held-out leaf accuracy of the label head (NaN without labels) */
    int64_t val_labeled;           /* held-out cells with a known label (the accuracy's denominator) */
    double seconds;
} bmfm_train_report;

bmfm_status bmfm_train_run(const bmfm_train_opts *o, bmfm_train_report *rep);

#endif
