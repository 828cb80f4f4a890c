/* tokenize.h - turn rows of a cell-by-gene matrix into the multifield token
 * sequences the released BMFM-RNA checkpoints expect (bmfm_reference.md 0,
 * 1.2, 2.2, 2.3): genes kept through a var -> token map, duplicated targets
 * summed, x = ln(1 + c/(S+1)*1e4) in double rounded to float32 with S the sum
 * of ALL kept counts (before truncation), gene order (var / sorted / random),
 * truncation to max_length keeping the special tokens, and the special
 * positions' expression -(token_id+1).
 *
 * It is not the gene resolver (data/vocab.h builds the var -> token map) and
 * not the batch layout of the encoder (model/batch.h); it fills a packed set
 * of sequences that the inference pipeline hands to the model.
 */
#ifndef BMFM_DATA_TOKENIZE_H
#define BMFM_DATA_TOKENIZE_H

#include "base/error.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    BMFM_ORDER_VAR = 0, /* nonzero genes in var column order (the reference inference() API) */
    BMFM_ORDER_SORTED,  /* by value descending, stable (ties keep var order), as the benchmarks */
    BMFM_ORDER_RANDOM   /* seeded shuffle; stream = the cell's global row index */
} bmfm_gene_order;

/* Parse "var" | "sorted" | "random". */
bmfm_status bmfm_gene_order_parse(const char *s, bmfm_gene_order *out);
const char *bmfm_gene_order_name(bmfm_gene_order o);

#define BMFM_TOK_MAX_PREFIX 40

typedef struct bmfm_tok_opts {
    int64_t max_length;     /* tokens per cell including the specials (the reference default 1024) */
    bmfm_gene_order order;
    uint64_t seed;          /* BMFM_ORDER_RANDOM only */
    int normalize;          /* 1: raw counts -> ln(1 + c/(S+1)*1e4); 0: values pass through */
    int32_t prefix[BMFM_TOK_MAX_PREFIX]; /* [CLS] then [CLS_0..] token ids */
    int n_prefix;
    int32_t sep_id;         /* [SEP] */
} bmfm_tok_opts;

/* Packed sequences of several cells: cell i owns tokens [offsets[i], offsets[i+1]).
 * A cell without any kept gene has n_genes[i] == 0 and no tokens at all (the
 * reference drops such cells; we keep the row in place and the pipeline
 * writes NaN for it). */
typedef struct bmfm_token_seqs {
    int64_t n_cells;
    int64_t *offsets;   /* n_cells + 1 */
    int32_t *ids;       /* gene / special token ids */
    float *expr;        /* expression values; specials hold -(id+1) */
    int64_t *n_genes;   /* genes kept in the sequence (after truncation) */
    int64_t *n_expressed; /* kept genes with a nonzero value before truncation */
    int64_t *row;       /* the global row index of each cell */
    size_t cap_cells, cap_tokens;
} bmfm_token_seqs;

void bmfm_token_seqs_clear(bmfm_token_seqs *s);
void bmfm_token_seqs_free(bmfm_token_seqs *s);
int64_t bmfm_token_seqs_tokens(const bmfm_token_seqs *s);

typedef struct bmfm_tokenizer bmfm_tokenizer;

/* var_to_token[j] is the token id of var column j, or -1 when the gene is not
 * kept (not in the vocabulary or not allowed). Several columns may share a
 * token (their values are summed). The map is copied. */
bmfm_status bmfm_tokenizer_new(const bmfm_tok_opts *opts, const int32_t *var_to_token,
                               int64_t n_vars, bmfm_tokenizer **out);
void bmfm_tokenizer_free(bmfm_tokenizer *tk);
const bmfm_tok_opts *bmfm_tokenizer_opts(const bmfm_tokenizer *tk);

/* Append one cell (a CSR row: column indices and values) to `seqs`.
 * `global_row` seeds the random order. Negative counts are an input error. */
bmfm_status bmfm_tokenize_row(bmfm_tokenizer *tk, const int32_t *indices, const float *values,
                              int64_t nnz, int64_t global_row, bmfm_token_seqs *seqs);

/* The normalization of one value, exposed for tests and the WCED targets:
 * fl32(log1p(c / (S + 1) * 1e4)) in double. */
float bmfm_log_normalize_value(double c, double S);

#endif
