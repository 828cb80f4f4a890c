/* vocab.h - map a dataset's genes to a token vocabulary and report coverage.
 *
 * Each dataset gene (var index, or a chosen var column) is resolved to a vocab
 * id: exact symbol match first, then case-insensitive, then (opt-in) through
 * an alias -> approved-symbol table; Ensembl ids (ENSG/ENSMUSG, version
 * suffix stripped) are first turned into symbols with a CELLxGENE gene table.
 * An optional allowed set (e.g. the protein-coding list) drops matches whose
 * vocab token is not in it, like the reference's limit_genes="protein_coding".
 * Several dataset genes may land on one vocab id: downstream code sums them,
 * and the map lists them so the report can say so.
 *
 * Not here: reading vocab files (io/tokenizer_file.h), tokenization of cells.
 */
#ifndef BMFM_DATA_VOCAB_H
#define BMFM_DATA_VOCAB_H

#include "io/dataset.h"
#include "io/tokenizer_file.h"

#include <stdint.h>

typedef enum {
    BMFM_GENE_UNMATCHED = 0,
    BMFM_GENE_EXACT,       /* symbol == token */
    BMFM_GENE_CASE,        /* equal ignoring ASCII case */
    BMFM_GENE_ALIAS,       /* alias/previous symbol -> approved symbol (opt-in) */
    BMFM_GENE_NOT_ALLOWED  /* matched, but the token is outside the allowed set */
} bmfm_gene_match;

typedef struct bmfm_gene_map_options {
    const char *var_column;      /* NULL: the var index */
    int ensembl;                 /* -1 auto (>8 of the first 10 names look like ENSG/ENSMUSG), 0 no, 1 yes */
    const char *ensembl_table;   /* CELLxGENE genes_*.csv[.gz]: id,name,...; NULL: pick by species in ensembl_table_dir */
    const char *ensembl_table_dir; /* holds cellxgene_genes_{homo_sapiens,mus_musculus}_*.csv.gz */
    int case_insensitive;        /* 1: fall back to case-insensitive matching (default) */
    const char *alias_map;       /* JSON(.gz) {alias: approved symbol}; NULL = off (the reference does exact only) */
    const bmfm_token_vocab *allowed; /* NULL = every token allowed; special tokens never match */
} bmfm_gene_map_options;

void bmfm_gene_map_options_default(bmfm_gene_map_options *o);

typedef struct bmfm_gene_map {
    int64_t n_genes;      /* dataset genes (n_vars) */
    int64_t *ids;         /* per dataset gene: vocab id or -1 */
    uint8_t *how;         /* per dataset gene: bmfm_gene_match */
    char **symbols;       /* per dataset gene: the name used for matching (after Ensembl translation; may be NULL) */
    int64_t n_matched, n_exact, n_case, n_alias, n_not_allowed, n_unmatched;
    int ensembl;          /* 1 if names were Ensembl ids */
    char ensembl_table_used[512];
    int64_t n_ensembl_unknown; /* Ensembl ids missing from the table */
    /* duplicates: dataset genes sharing a vocab id, grouped by id (ascending) */
    int64_t n_dup_targets, n_dup_genes;
    int64_t *dup_genes;   /* n_dup_genes dataset gene indices */
} bmfm_gene_map;

bmfm_status bmfm_gene_map_build(bmfm_dataset *ds, const bmfm_token_vocab *v, const bmfm_gene_map_options *o,
                                bmfm_gene_map *out);
void bmfm_gene_map_free(bmfm_gene_map *m);

typedef struct bmfm_gene_coverage {
    int64_t n_cells;        /* cells read */
    int64_t n_empty_cells;  /* cells with no positive counts (left out of the fractions) */
    double total, covered;  /* summed values over all cells, and the mapped part */
    double frac_mean, frac_median, frac_min, frac_max; /* per-cell covered fraction */
    int64_t n_top;
    int64_t *top_genes;     /* most abundant unmatched dataset genes, by total value */
    double *top_totals;
} bmfm_gene_coverage;

/* Stream rows in chunks of `chunk` (0 = 1024) and measure per-cell coverage
 * (fraction of the cell's summed positive values on mapped genes). */
bmfm_status bmfm_gene_coverage_compute(bmfm_dataset *ds, const bmfm_gene_map *m, int64_t chunk, int n_top,
                                       bmfm_gene_coverage *out);
void bmfm_gene_coverage_free(bmfm_gene_coverage *c);

const char *bmfm_gene_match_name(bmfm_gene_match h);

#endif
