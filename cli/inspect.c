/* inspect.c - `bmfm inspect FILE`: what is in an .h5ad file or a 10x
 * directory, and how well its genes cover a vocabulary.
 *
 * Everything is gathered into one cJSON document; --json prints it, otherwise
 * a human table is rendered from the same document, so both views always
 * agree. Reads the matrix only for the raw-count sample and (with --vocab) the
 * coverage pass, streamed in chunks.
 */
#include "cli.h"

#include "base/alloc.h"
#include "base/strmap.h"
#include "data/rawcheck.h"
#include "data/vocab.h"
#include "io/dataset.h"
#include "io/tokenizer_file.h"

#include <cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "inspect"

#define N_EXAMPLES 3
#define N_TOP_VALUES 5

static void usage(FILE *f) {
    fprintf(f,
            "usage: bmfm inspect FILE [options]\n\n"
            "Describe an .h5ad file or a 10x matrix directory (matrix.mtx[.gz], features.tsv[.gz]\n"
            "or genes.tsv, barcodes.tsv[.gz]): shape, matrix encoding and dtype, stored values,\n"
            "a raw-count guess, layers, raw/X, obsm keys, obs columns (kind, categories, most\n"
            "frequent values), var columns, and with --vocab the gene coverage of a vocabulary.\n\n"
            "options:\n"
            "  --matrix M           X (default), raw (raw/X with raw/var), layers/NAME or NAME\n"
            "  --vocab V            tokenizer.json, vocab.txt, vocab.json, a gene list (one symbol\n"
            "                       a line or a JSON list) or a directory holding one of them\n"
            "  --var-column COL     match genes through this var column instead of the var index\n"
            "  --ensembl            treat gene names as Ensembl ids (default: auto, when more than\n"
            "                       8 of the first 10 look like ENSG/ENSMUSG ids)\n"
            "  --no-ensembl         never treat gene names as Ensembl ids\n"
            "  --gene-table FILE    Ensembl id -> symbol table (CSV: id,name,...; CELLxGENE layout)\n"
            "  --gene-table-dir D   where to find cellxgene_genes_{homo_sapiens,mus_musculus}*.csv.gz\n"
            "                       (default $BMFM_SHARED_DATA/genes, else ../shared/data/genes)\n"
            "  --alias-map FILE     JSON {alias: approved symbol} tried after exact and\n"
            "                       case-insensitive matching (off by default, like BMFM)\n"
            "  --allowed FILE       keep only vocabulary genes also in this list (e.g. the\n"
            "                       protein-coding list, as BMFM's limit_genes=protein_coding)\n"
            "  --exact              no case-insensitive fallback\n"
            "  --top N              unmatched genes to list (default 10)\n"
            "  --sample-rows N      rows read by the raw-count guess (default 1000)\n"
            "  --json               print JSON instead of the table\n"
            "  -q, --quiet / -v, --verbose\n"
            "  -h, --help\n\n"
            "Exit codes: 0 ok, 2 unreadable or invalid input / bad option.\n");
}

static const char *encoding_name(bmfm_x_encoding e) {
    switch (e) {
    case BMFM_X_CSR: return "csr";
    case BMFM_X_CSC: return "csc";
    case BMFM_X_DENSE: return "dense";
    default: return "mtx";
    }
}

static cJSON *string_array(const char *const *names, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(names[i]));
    return a;
}

typedef struct {
    int64_t idx;
    int64_t count;
} value_count;

static int cmp_count_desc(const void *a, const void *b) {
    const value_count *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Summary of one dataframe column: kind, distinct values, most frequent values
 * (label-like columns) or range (numeric), and a few examples. */
static bmfm_status column_json(const bmfm_column *c, int with_top, cJSON **out) {
    cJSON *j = cJSON_CreateObject();
    char buf[64];
    value_count *vc = NULL;
    const char **labels = NULL;
    bmfm_strmap seen = {0};
    bmfm_status s = BMFM_OK;
    cJSON_AddStringToObject(j, "name", c->name);
    cJSON_AddStringToObject(j, "kind", bmfm_column_kind_name(c->kind));
    int64_t missing = 0, n_distinct = 0;
    if (c->kind == BMFM_COL_CATEGORICAL || c->kind == BMFM_COL_STRING) {
        /* label index per row: category code, or first-seen order of strings */
        int64_t cap = c->kind == BMFM_COL_CATEGORICAL ? c->n_categories : c->n;
        vc = bmfm_calloc((size_t)(cap ? cap : 1), sizeof *vc);
        labels = bmfm_calloc((size_t)(cap ? cap : 1), sizeof *labels);
        if (!vc || !labels || (c->kind == BMFM_COL_STRING && bmfm_strmap_init(&seen, (size_t)c->n))) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        if (c->kind == BMFM_COL_CATEGORICAL) {
            n_distinct = c->n_categories;
            for (int64_t k = 0; k < cap; k++) {
                vc[k].idx = k;
                labels[k] = c->categories[k];
            }
        }
        for (int64_t i = 0; i < c->n; i++) {
            int64_t k;
            if (c->kind == BMFM_COL_CATEGORICAL) {
                k = c->codes[i];
                if (k < 0 || k >= c->n_categories) {
                    missing++;
                    continue;
                }
            } else {
                if (!c->strings[i]) {
                    missing++;
                    continue;
                }
                int r = bmfm_strmap_put(&seen, c->strings[i], n_distinct, &k);
                if (r < 0) {
                    s = BMFM_E_NOMEM;
                    goto done;
                }
                if (r == 1) {
                    k = n_distinct++;
                    vc[k].idx = k;
                    labels[k] = c->strings[i];
                }
            }
            vc[k].count++;
        }
        cJSON_AddNumberToObject(j, c->kind == BMFM_COL_CATEGORICAL ? "n_categories" : "n_distinct", (double)n_distinct);
        if (c->kind == BMFM_COL_CATEGORICAL) {
            int64_t used = 0;
            for (int64_t k = 0; k < n_distinct; k++) used += vc[k].count > 0;
            cJSON_AddNumberToObject(j, "n_used_categories", (double)used);
        }
        cJSON *ex = cJSON_AddArrayToObject(j, "examples");
        for (int64_t k = 0; k < n_distinct && k < N_EXAMPLES; k++) cJSON_AddItemToArray(ex, cJSON_CreateString(labels[k]));
        if (with_top) {
            qsort(vc, (size_t)n_distinct, sizeof *vc, cmp_count_desc);
            cJSON *top = cJSON_AddArrayToObject(j, "top");
            for (int64_t k = 0; k < n_distinct && k < N_TOP_VALUES && vc[k].count > 0; k++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "value", labels[vc[k].idx]);
                cJSON_AddNumberToObject(e, "count", (double)vc[k].count);
                cJSON_AddItemToArray(top, e);
            }
        }
    } else {
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t i = 0; i < c->n; i++) {
            double v = c->values[i];
            if (isnan(v)) {
                missing++;
                continue;
            }
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        if (c->n > missing) {
            cJSON_AddNumberToObject(j, "min", mn);
            cJSON_AddNumberToObject(j, "max", mx);
        }
        cJSON *ex = cJSON_AddArrayToObject(j, "examples");
        for (int64_t i = 0; i < c->n && i < N_EXAMPLES; i++) {
            const char *t = bmfm_column_text(c, i, buf, sizeof buf);
            cJSON_AddItemToArray(ex, t ? cJSON_CreateString(t) : cJSON_CreateNull());
        }
    }
    cJSON_AddNumberToObject(j, "n_missing", (double)missing);
done:
    free(vc);
    free(labels);
    if (seen.keys) bmfm_strmap_free(&seen);
    if (s) {
        cJSON_Delete(j);
        j = NULL;
    }
    *out = j;
    return s;
}

static bmfm_status columns_json(bmfm_dataset *ds, int axis, cJSON *parent, const char *key) {
    const char *const *names;
    int64_t n;
    BMFM_TRY(axis ? bmfm_dataset_var_columns(ds, &names, &n) : bmfm_dataset_obs_columns(ds, &names, &n));
    cJSON *arr = cJSON_AddArrayToObject(parent, key);
    for (int64_t i = 0; i < n; i++) {
        bmfm_column c;
        BMFM_TRY(axis ? bmfm_dataset_var_column(ds, names[i], &c) : bmfm_dataset_obs_column(ds, names[i], &c));
        cJSON *cj;
        bmfm_status s = column_json(&c, axis == 0, &cj);
        bmfm_column_free(&c);
        BMFM_TRY(s);
        cJSON_AddItemToArray(arr, cj);
    }
    return BMFM_OK;
}

typedef struct {
    const char *vocab, *var_column, *gene_table, *gene_table_dir, *alias_map, *allowed;
    int ensembl, exact, top;
} gene_opts;

static bmfm_status genes_json(bmfm_dataset *ds, const gene_opts *go, cJSON *root) {
    bmfm_token_vocab v = {0}, allowed = {0};
    bmfm_gene_map gm = {0};
    bmfm_gene_coverage cov = {0};
    bmfm_status s = bmfm_token_vocab_load(go->vocab, &v);
    if (s) return s;
    if (go->allowed && (s = bmfm_token_vocab_load(go->allowed, &allowed))) goto done;
    bmfm_gene_map_options o;
    bmfm_gene_map_options_default(&o);
    o.var_column = go->var_column;
    o.ensembl = go->ensembl;
    o.ensembl_table = go->gene_table;
    o.ensembl_table_dir = go->gene_table_dir;
    o.case_insensitive = !go->exact;
    o.alias_map = go->alias_map;
    o.allowed = go->allowed ? &allowed : NULL;
    if ((s = bmfm_gene_map_build(ds, &v, &o, &gm))) goto done;
    if ((s = bmfm_gene_coverage_compute(ds, &gm, 0, go->top, &cov))) goto done;

    cJSON *g = cJSON_AddObjectToObject(root, "genes");
    cJSON_AddStringToObject(g, "vocab", go->vocab);
    cJSON_AddStringToObject(g, "vocab_format", v.format);
    cJSON_AddNumberToObject(g, "vocab_tokens", (double)v.n_tokens);
    cJSON_AddNumberToObject(g, "vocab_special", (double)v.n_special);
    if (go->allowed) {
        cJSON_AddStringToObject(g, "allowed", go->allowed);
        cJSON_AddNumberToObject(g, "allowed_tokens", (double)allowed.n_tokens);
    }
    cJSON_AddStringToObject(g, "matched_by", go->var_column ? go->var_column : "var index");
    cJSON_AddBoolToObject(g, "ensembl", gm.ensembl);
    if (gm.ensembl) {
        cJSON_AddStringToObject(g, "gene_table", gm.ensembl_table_used);
        cJSON_AddNumberToObject(g, "ensembl_unknown", (double)gm.n_ensembl_unknown);
    }
    cJSON_AddNumberToObject(g, "n_genes", (double)gm.n_genes);
    cJSON_AddNumberToObject(g, "matched", (double)gm.n_matched);
    cJSON_AddNumberToObject(g, "exact", (double)gm.n_exact);
    cJSON_AddNumberToObject(g, "case_insensitive", (double)gm.n_case);
    cJSON_AddNumberToObject(g, "alias", (double)gm.n_alias);
    cJSON_AddNumberToObject(g, "not_allowed", (double)gm.n_not_allowed);
    cJSON_AddNumberToObject(g, "unmatched", (double)gm.n_unmatched);
    cJSON *c = cJSON_AddObjectToObject(g, "coverage");
    cJSON_AddNumberToObject(c, "cells", (double)cov.n_cells);
    cJSON_AddNumberToObject(c, "empty_cells", (double)cov.n_empty_cells);
    cJSON_AddNumberToObject(c, "total", cov.total);
    cJSON_AddNumberToObject(c, "covered", cov.covered);
    cJSON_AddNumberToObject(c, "mean", cov.frac_mean);
    cJSON_AddNumberToObject(c, "median", cov.frac_median);
    cJSON_AddNumberToObject(c, "min", cov.frac_min);
    cJSON_AddNumberToObject(c, "max", cov.frac_max);
    const char *const *var_names;
    if ((s = bmfm_dataset_var_names(ds, &var_names))) goto done;
    cJSON *top = cJSON_AddArrayToObject(g, "top_unmatched");
    for (int64_t i = 0; i < cov.n_top; i++) {
        cJSON *e = cJSON_CreateObject();
        int64_t gi = cov.top_genes[i];
        cJSON_AddStringToObject(e, "gene", var_names[gi]);
        if (gm.symbols[gi] && strcmp(gm.symbols[gi], var_names[gi]))
            cJSON_AddStringToObject(e, "symbol", gm.symbols[gi]);
        cJSON_AddNumberToObject(e, "total", cov.top_totals[i]);
        cJSON_AddItemToArray(top, e);
    }
    cJSON *d = cJSON_AddObjectToObject(g, "duplicates");
    cJSON_AddNumberToObject(d, "vocab_genes", (double)gm.n_dup_targets);
    cJSON_AddNumberToObject(d, "dataset_genes", (double)gm.n_dup_genes);
    cJSON *groups = cJSON_AddArrayToObject(d, "groups");
    for (int64_t k = 0; k < gm.n_dup_genes;) {
        int64_t id = gm.ids[gm.dup_genes[k]];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "token", v.tokens[id]);
        cJSON *genes = cJSON_AddArrayToObject(e, "genes");
        for (; k < gm.n_dup_genes && gm.ids[gm.dup_genes[k]] == id; k++)
            cJSON_AddItemToArray(genes, cJSON_CreateString(var_names[gm.dup_genes[k]]));
        cJSON_AddItemToArray(groups, e);
    }
done:
    bmfm_gene_coverage_free(&cov);
    bmfm_gene_map_free(&gm);
    bmfm_token_vocab_free(&v);
    if (go->allowed) bmfm_token_vocab_free(&allowed);
    return s;
}

static bmfm_status build_report(bmfm_dataset *ds, int64_t sample_rows, const gene_opts *go, cJSON *root) {
    const bmfm_matrix_info *info = bmfm_dataset_info(ds);
    cJSON_AddStringToObject(root, "path", bmfm_dataset_path(ds));
    cJSON_AddStringToObject(root, "source", bmfm_dataset_kind(ds) == BMFM_SOURCE_10X ? "10x" : "h5ad");
    cJSON_AddNumberToObject(root, "n_obs", (double)info->n_obs);
    cJSON_AddNumberToObject(root, "n_vars", (double)info->n_vars);
    cJSON *m = cJSON_AddObjectToObject(root, "matrix");
    cJSON_AddStringToObject(m, "location", info->location);
    cJSON_AddStringToObject(m, "encoding", encoding_name(info->encoding));
    cJSON_AddStringToObject(m, "dtype", info->dtype);
    if (info->index_dtype[0]) cJSON_AddStringToObject(m, "index_dtype", info->index_dtype);
    cJSON_AddNumberToObject(m, "nnz", (double)info->nnz);
    double cells = (double)info->n_obs * (double)info->n_vars;
    cJSON_AddNumberToObject(m, "density", cells > 0 ? (double)info->nnz / cells : 0);

    bmfm_rawcheck rc;
    BMFM_TRY(bmfm_rawcheck_run(ds, sample_rows, &rc));
    cJSON *vals = cJSON_AddObjectToObject(root, "values");
    cJSON_AddStringToObject(vals, "guess", bmfm_values_kind_name(rc.verdict));
    cJSON_AddBoolToObject(vals, "raw_counts", rc.verdict == BMFM_VALUES_RAW);
    cJSON_AddNumberToObject(vals, "rows_sampled", (double)rc.rows_sampled);
    cJSON_AddNumberToObject(vals, "values_sampled", (double)rc.values_sampled);
    cJSON_AddNumberToObject(vals, "min", rc.min);
    cJSON_AddNumberToObject(vals, "max", rc.max);
    cJSON_AddNumberToObject(vals, "fraction_non_integer", rc.frac_non_integer);
    cJSON_AddStringToObject(vals, "reason", rc.reason);

    const char *const *names;
    int64_t n;
    BMFM_TRY(bmfm_dataset_layers(ds, &names, &n));
    cJSON_AddItemToObject(root, "layers", string_array(names, n));
    cJSON_AddBoolToObject(root, "has_raw", bmfm_dataset_has_raw(ds));
    BMFM_TRY(bmfm_dataset_obsm_keys(ds, &names, &n));
    cJSON_AddItemToObject(root, "obsm", string_array(names, n));
    BMFM_TRY(columns_json(ds, 0, root, "obs_columns"));
    BMFM_TRY(columns_json(ds, 1, root, "var_columns"));
    const char *const *vn;
    BMFM_TRY(bmfm_dataset_var_names(ds, &vn));
    cJSON_AddItemToObject(root, "var_index_examples", string_array(vn, info->n_vars < N_EXAMPLES ? info->n_vars : N_EXAMPLES));
    const char *const *on;
    BMFM_TRY(bmfm_dataset_obs_names(ds, &on));
    cJSON_AddItemToObject(root, "obs_index_examples", string_array(on, info->n_obs < N_EXAMPLES ? info->n_obs : N_EXAMPLES));
    if (go->vocab) BMFM_TRY(genes_json(ds, go, root));
    return BMFM_OK;
}

/* ---- human table, rendered from the JSON ---- */

static double num(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static const char *str(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : "";
}

static void print_list(const cJSON *arr, const char *sep) {
    const cJSON *it;
    int first = 1;
    if (cJSON_GetArraySize(arr) == 0) printf("(none)");
    cJSON_ArrayForEach(it, arr) {
        printf("%s%s", first ? "" : sep, cJSON_IsString(it) ? it->valuestring : "NA");
        first = 0;
    }
}

static void print_columns(const cJSON *arr) {
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
        printf("  %-28s %-11s ", str(c, "name"), str(c, "kind"));
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(c, "top");
        if (!isnan(num(c, "n_categories")))
            printf("%6.0f categories  ", num(c, "n_categories"));
        else if (!isnan(num(c, "n_distinct")))
            printf("%6.0f distinct    ", num(c, "n_distinct"));
        else if (!isnan(num(c, "min")))
            printf("range %g .. %g  ", num(c, "min"), num(c, "max"));
        if (cJSON_GetArraySize(top) > 0) {
            const cJSON *e;
            int first = 1;
            cJSON_ArrayForEach(e, top) {
                printf("%s%s (%.0f)", first ? "" : ", ", str(e, "value"), num(e, "count"));
                first = 0;
            }
        } else {
            printf("e.g. ");
            print_list(cJSON_GetObjectItemCaseSensitive(c, "examples"), ", ");
        }
        if (num(c, "n_missing") > 0) printf("  [%.0f missing]", num(c, "n_missing"));
        printf("\n");
    }
}

static void print_report(const cJSON *r) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r, "matrix");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "values");
    printf("file         %s (%s)\n", str(r, "path"), str(r, "source"));
    printf("shape        %.0f cells x %.0f genes\n", num(r, "n_obs"), num(r, "n_vars"));
    printf("matrix       %s  %s %s", str(m, "location"), str(m, "encoding"), str(m, "dtype"));
    if (*str(m, "index_dtype")) printf(" (indices %s)", str(m, "index_dtype"));
    printf("  nnz %.0f  density %.2f%%\n", num(m, "nnz"), 100.0 * num(m, "density"));
    printf("values       %s: %s (%.0f rows sampled)\n", str(v, "guess"), str(v, "reason"), num(v, "rows_sampled"));
    printf("layers       ");
    print_list(cJSON_GetObjectItemCaseSensitive(r, "layers"), ", ");
    printf("\nraw/X        %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "has_raw")) ? "yes" : "no");
    printf("obsm         ");
    print_list(cJSON_GetObjectItemCaseSensitive(r, "obsm"), ", ");
    printf("\nobs index    e.g. ");
    print_list(cJSON_GetObjectItemCaseSensitive(r, "obs_index_examples"), ", ");
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(r, "obs_columns");
    printf("\nobs columns  %d\n", cJSON_GetArraySize(oc));
    print_columns(oc);
    printf("var index    e.g. ");
    print_list(cJSON_GetObjectItemCaseSensitive(r, "var_index_examples"), ", ");
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(r, "var_columns");
    printf("\nvar columns  %d\n", cJSON_GetArraySize(vc));
    print_columns(vc);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(r, "genes");
    if (!g) return;
    printf("genes vs     %s (%s, %.0f tokens, %.0f special)\n", str(g, "vocab"), str(g, "vocab_format"),
           num(g, "vocab_tokens"), num(g, "vocab_special"));
    if (*str(g, "allowed")) printf("  allowed    %s (%.0f genes)\n", str(g, "allowed"), num(g, "allowed_tokens"));
    printf("  matched by %s%s", str(g, "matched_by"),
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "ensembl")) ? " (Ensembl ids via " : "");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "ensembl")))
        printf("%s; %.0f ids not in the table)", str(g, "gene_table"), num(g, "ensembl_unknown"));
    printf("\n  matched    %.0f / %.0f genes (exact %.0f, case-insensitive %.0f, alias %.0f)\n", num(g, "matched"),
           num(g, "n_genes"), num(g, "exact"), num(g, "case_insensitive"), num(g, "alias"));
    printf("  unmatched  %.0f", num(g, "unmatched"));
    if (num(g, "not_allowed") > 0) printf(" (%.0f of them in the vocabulary but not allowed)", num(g, "not_allowed"));
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(g, "coverage");
    printf("\n  coverage   of each cell's counts: mean %.1f%%  median %.1f%%  min %.1f%%  max %.1f%%",
           100 * num(c, "mean"), 100 * num(c, "median"), 100 * num(c, "min"), 100 * num(c, "max"));
    if (num(c, "empty_cells") > 0) printf("  (%.0f empty cells left out)", num(c, "empty_cells"));
    printf("\n  top unmatched by total: ");
    const cJSON *e, *top = cJSON_GetObjectItemCaseSensitive(g, "top_unmatched");
    int first = 1;
    if (cJSON_GetArraySize(top) == 0) printf("(none)");
    cJSON_ArrayForEach(e, top) {
        printf("%s%s", first ? "" : ", ", str(e, "gene"));
        if (*str(e, "symbol")) printf("/%s", str(e, "symbol"));
        printf(" (%g)", num(e, "total"));
        first = 0;
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(g, "duplicates");
    printf("\n  duplicates ");
    if (num(d, "vocab_genes") == 0) {
        printf("none\n");
        return;
    }
    printf("%.0f dataset genes map to %.0f vocabulary genes; their values are summed:", num(d, "dataset_genes"),
           num(d, "vocab_genes"));
    int shown = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "groups")) {
        if (shown++ == 5) {
            printf(" ...");
            break;
        }
        printf(" %s <- ", str(e, "token"));
        print_list(cJSON_GetObjectItemCaseSensitive(e, "genes"), "+");
        printf(";");
    }
    printf("\n");
}

int bmfm_cmd_inspect(int argc, char **argv) {
    enum { O_VOCAB = 256, O_MATRIX, O_VARCOL, O_ENS, O_NOENS, O_TABLE, O_TABLEDIR, O_ALIAS, O_ALLOWED, O_EXACT,
           O_TOP, O_SAMPLE, O_JSON };
    static const struct option opts[] = {
        {"vocab", required_argument, 0, O_VOCAB},       {"matrix", required_argument, 0, O_MATRIX},
        {"var-column", required_argument, 0, O_VARCOL}, {"ensembl", no_argument, 0, O_ENS},
        {"no-ensembl", no_argument, 0, O_NOENS},        {"gene-table", required_argument, 0, O_TABLE},
        {"gene-table-dir", required_argument, 0, O_TABLEDIR}, {"alias-map", required_argument, 0, O_ALIAS},
        {"allowed", required_argument, 0, O_ALLOWED},   {"exact", no_argument, 0, O_EXACT},
        {"top", required_argument, 0, O_TOP},           {"sample-rows", required_argument, 0, O_SAMPLE},
        {"json", no_argument, 0, O_JSON},               {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    gene_opts go = {0};
    go.ensembl = -1;
    go.top = 10;
    const char *matrix = NULL;
    long sample_rows = 1000, top = 10;
    int json = 0, quiet = 0, verbose = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
        switch (c) {
        case O_VOCAB: go.vocab = optarg; break;
        case O_MATRIX: matrix = optarg; break;
        case O_VARCOL: go.var_column = optarg; break;
        case O_ENS: go.ensembl = 1; break;
        case O_NOENS: go.ensembl = 0; break;
        case O_TABLE: go.gene_table = optarg; break;
        case O_TABLEDIR: go.gene_table_dir = optarg; break;
        case O_ALIAS: go.alias_map = optarg; break;
        case O_ALLOWED: go.allowed = optarg; break;
        case O_EXACT: go.exact = 1; break;
        case O_TOP:
            if (bmfm_cli_parse_int(CMD, "--top", optarg, 0, 100000, &top)) return BMFM_EXIT_INPUT;
            go.top = (int)top;
            break;
        case O_SAMPLE:
            if (bmfm_cli_parse_int(CMD, "--sample-rows", optarg, 1, 100000000, &sample_rows)) return BMFM_EXIT_INPUT;
            break;
        case O_JSON: json = 1; break;
        case 'q': quiet = 1; break;
        case 'v': verbose++; break;
        case 'h': usage(stdout); return BMFM_EXIT_OK;
        default: return bmfm_cli_usage_error(CMD, "unknown option");
        }
    }
    bmfm_cli_set_verbosity(quiet, verbose);
    if (optind != argc - 1)
        return bmfm_cli_usage_error(CMD, optind >= argc ? "missing FILE" : "exactly one FILE expected");
    if (!go.vocab && (go.var_column || go.gene_table || go.alias_map || go.allowed))
        return bmfm_cli_usage_error(CMD, "gene-mapping options need --vocab");
    char table_dir[4096];
    if (!go.gene_table_dir) {
        const char *shared = getenv("BMFM_SHARED_DATA");
        snprintf(table_dir, sizeof table_dir, "%s/genes", shared && *shared ? shared : "../shared/data");
        go.gene_table_dir = table_dir;
    }
    bmfm_dataset *ds = NULL;
    bmfm_status s = bmfm_dataset_open(argv[optind], matrix, &ds);
    if (s) return bmfm_cli_fail(CMD, s);
    cJSON *root = cJSON_CreateObject();
    s = build_report(ds, sample_rows, &go, root);
    bmfm_dataset_close(ds);
    if (s) {
        cJSON_Delete(root);
        return bmfm_cli_fail(CMD, s);
    }
    if (json) {
        char *text = cJSON_Print(root);
        if (!text) {
            cJSON_Delete(root);
            return bmfm_cli_fail(CMD, bmfm_error_set(BMFM_E_NOMEM, "out of memory printing JSON"));
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_report(root);
    }
    cJSON_Delete(root);
    return BMFM_EXIT_OK;
}
