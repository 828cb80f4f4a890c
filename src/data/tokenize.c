/* tokenize.c - multifield tokenization of matrix rows (see tokenize.h). */
#include "data/tokenize.h"

#include "base/alloc.h"
#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bmfm_tokenizer {
    bmfm_tok_opts opts;
    int32_t *var_to_token;
    int64_t n_vars;
    int32_t n_tokens;    /* 1 + the largest token id in the map */
    int32_t *slot;       /* token id -> position in the current cell, -1 when absent */
    int32_t *tok;        /* current cell: distinct kept tokens in first-seen var order */
    double *val;         /* their summed values */
    int32_t *perm;       /* order of the kept genes */
    size_t cap;
};

bmfm_status bmfm_gene_order_parse(const char *s, bmfm_gene_order *out) {
    if (!strcmp(s, "var") || !strcmp(s, "none")) *out = BMFM_ORDER_VAR;
    else if (!strcmp(s, "sorted")) *out = BMFM_ORDER_SORTED;
    else if (!strcmp(s, "random")) *out = BMFM_ORDER_RANDOM;
    else
        return bmfm_error_set(BMFM_E_INPUT, "gene order '%s': expected var, sorted or random", s);
    return BMFM_OK;
}

const char *bmfm_gene_order_name(bmfm_gene_order o) {
    switch (o) {
    case BMFM_ORDER_VAR: return "var";
    case BMFM_ORDER_SORTED: return "sorted";
    case BMFM_ORDER_RANDOM: return "random";
    }
    return "?";
}

float bmfm_log_normalize_value(double c, double S) {
    /* numpy's np.log1p(x / S * 10000) with S = sum + 1, then astype(float32) */
    return (float)log1p(c / (S + 1.0) * 10000.0);
}

void bmfm_token_seqs_clear(bmfm_token_seqs *s) {
    s->n_cells = 0;
    if (s->offsets) s->offsets[0] = 0;
}

void bmfm_token_seqs_free(bmfm_token_seqs *s) {
    free(s->offsets);
    free(s->ids);
    free(s->expr);
    free(s->n_genes);
    free(s->n_expressed);
    free(s->row);
    memset(s, 0, sizeof *s);
}

int64_t bmfm_token_seqs_tokens(const bmfm_token_seqs *s) {
    return s->n_cells && s->offsets ? s->offsets[s->n_cells] : 0;
}

/* Grow several arrays that share one capacity (cap stays the smallest reached). */
static bmfm_status grow_all(void **arrs[], const size_t *sizes, int n, size_t *cap, size_t need) {
    if (need <= *cap) return BMFM_OK;
    size_t newcap = 0;
    for (int k = 0; k < n; k++) {
        size_t c = *cap;
        if (bmfm_grow(arrs[k], &c, need, sizes[k]) < 0) return BMFM_E_NOMEM;
        newcap = k == 0 || c < newcap ? c : newcap;
    }
    *cap = newcap;
    return BMFM_OK;
}

static bmfm_status seqs_reserve(bmfm_token_seqs *s, size_t cells, size_t tokens) {
    int first = s->cap_cells == 0;
    void **cell_arrs[] = {(void **)&s->offsets, (void **)&s->n_genes, (void **)&s->n_expressed, (void **)&s->row};
    const size_t cell_sizes[] = {sizeof(int64_t), sizeof(int64_t), sizeof(int64_t), sizeof(int64_t)};
    BMFM_TRY(grow_all(cell_arrs, cell_sizes, 4, &s->cap_cells, cells + 1)); /* offsets has n + 1 */
    if (first) s->offsets[0] = 0;
    void **tok_arrs[] = {(void **)&s->ids, (void **)&s->expr};
    const size_t tok_sizes[] = {sizeof(int32_t), sizeof(float)};
    return grow_all(tok_arrs, tok_sizes, 2, &s->cap_tokens, tokens ? tokens : 1);
}

bmfm_status bmfm_tokenizer_new(const bmfm_tok_opts *opts, const int32_t *var_to_token,
                               int64_t n_vars, bmfm_tokenizer **out) {
    *out = NULL;
    if (opts->n_prefix < 1 || opts->n_prefix > BMFM_TOK_MAX_PREFIX)
        return bmfm_error_set(BMFM_E_INPUT, "tokenizer: %d prefix tokens (expected 1..%d)",
                              opts->n_prefix, BMFM_TOK_MAX_PREFIX);
    if (opts->max_length < opts->n_prefix + 2)
        return bmfm_error_set(BMFM_E_INPUT,
                              "max_length %lld leaves no room for a gene after %d special tokens",
                              (long long)opts->max_length, opts->n_prefix + 1);
    bmfm_tokenizer *tk = bmfm_calloc(1, sizeof *tk);
    if (!tk) return BMFM_E_NOMEM;
    tk->opts = *opts;
    tk->n_vars = n_vars;
    int32_t maxid = -1;
    for (int64_t j = 0; j < n_vars; j++)
        if (var_to_token[j] > maxid) maxid = var_to_token[j];
    tk->n_tokens = maxid + 1;
    tk->var_to_token = bmfm_malloc((size_t)(n_vars ? n_vars : 1) * sizeof(int32_t));
    tk->slot = bmfm_malloc((size_t)(tk->n_tokens ? tk->n_tokens : 1) * sizeof(int32_t));
    if (!tk->var_to_token || !tk->slot) {
        bmfm_tokenizer_free(tk);
        return BMFM_E_NOMEM;
    }
    memcpy(tk->var_to_token, var_to_token, (size_t)n_vars * sizeof(int32_t));
    for (int32_t t = 0; t < tk->n_tokens; t++) tk->slot[t] = -1;
    *out = tk;
    return BMFM_OK;
}

void bmfm_tokenizer_free(bmfm_tokenizer *tk) {
    if (!tk) return;
    free(tk->var_to_token);
    free(tk->slot);
    free(tk->tok);
    free(tk->val);
    free(tk->perm);
    free(tk);
}

const bmfm_tok_opts *bmfm_tokenizer_opts(const bmfm_tokenizer *tk) { return &tk->opts; }

/* Stable descending sort of perm by val (merge sort: qsort is not stable). */
static void sort_desc_stable(int32_t *perm, int32_t *tmp, const double *val, int64_t n) {
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = val[perm[j]] > val[perm[i]] ? perm[j++] : perm[i++];
            while (i < mid) tmp[k++] = perm[i++];
            while (j < hi) tmp[k++] = perm[j++];
        }
        memcpy(perm, tmp, (size_t)n * sizeof *perm);
    }
}

bmfm_status bmfm_tokenize_row(bmfm_tokenizer *tk, const int32_t *indices, const float *values,
                              int64_t nnz, int64_t global_row, bmfm_token_seqs *seqs) {
    const bmfm_tok_opts *o = &tk->opts;
    void **arrs[] = {(void **)&tk->tok, (void **)&tk->val, (void **)&tk->perm};
    const size_t sizes[] = {sizeof(int32_t), sizeof(double), sizeof(int32_t)};
    BMFM_TRY(grow_all(arrs, sizes, 3, &tk->cap, (size_t)nnz * 2 + 1)); /* perm: n + merge buffer */
    /* kept genes, duplicated targets summed at their first var position */
    int64_t n = 0;
    double S = 0.0;
    bmfm_status st = BMFM_OK;
    for (int64_t k = 0; k < nnz; k++) {
        int32_t col = indices[k];
        if (col < 0 || col >= tk->n_vars) {
            st = bmfm_error_set(BMFM_E_INPUT, "row %lld: column %d out of range [0, %lld)",
                                (long long)global_row, col, (long long)tk->n_vars);
            break;
        }
        float v = values[k];
        if (!(v >= 0.0f)) {
            st = bmfm_error_set(BMFM_E_INPUT,
                                "row %lld: value %g in column %d is negative or NaN (%s)",
                                (long long)global_row, (double)v, col,
                                o->normalize ? "raw counts must be >= 0"
                                             : "scaled data is not valid model input");
            break;
        }
        int32_t t = tk->var_to_token[col];
        if (t < 0 || v == 0.0f) continue;
        S += (double)v;
        if (tk->slot[t] >= 0) {
            tk->val[tk->slot[t]] += (double)v;
        } else {
            tk->slot[t] = (int32_t)n;
            tk->tok[n] = t;
            tk->val[n] = (double)v;
            n++;
        }
    }
    for (int64_t i = 0; i < n; i++) tk->slot[tk->tok[i]] = -1;
    if (st) return st;

    for (int64_t i = 0; i < n; i++) tk->perm[i] = (int32_t)i;
    if (o->order == BMFM_ORDER_SORTED) {
        sort_desc_stable(tk->perm, tk->perm + n, tk->val, n);
    } else if (o->order == BMFM_ORDER_RANDOM) {
        bmfm_rng r;
        bmfm_rng_seed(&r, o->seed, (uint64_t)global_row);
        bmfm_rng_shuffle_i32(&r, tk->perm, n);
    }
    int64_t room = o->max_length - o->n_prefix - 1;
    int64_t g = n < room ? n : room;
    int64_t len = g ? o->n_prefix + g + 1 : 0;

    int64_t c = seqs->n_cells;
    int64_t base = c ? seqs->offsets[c] : 0;
    BMFM_TRY(seqs_reserve(seqs, (size_t)c + 1, (size_t)(base + len)));
    int32_t *ids = seqs->ids + base;
    float *ex = seqs->expr + base;
    if (g) {
        for (int i = 0; i < o->n_prefix; i++) {
            ids[i] = o->prefix[i];
            ex[i] = -(float)(o->prefix[i] + 1);
        }
        for (int64_t i = 0; i < g; i++) {
            int32_t p = tk->perm[i];
            ids[o->n_prefix + i] = tk->tok[p];
            ex[o->n_prefix + i] =
                o->normalize ? bmfm_log_normalize_value(tk->val[p], S) : (float)tk->val[p];
        }
        ids[len - 1] = o->sep_id;
        ex[len - 1] = -(float)(o->sep_id + 1);
    }
    seqs->offsets[c + 1] = base + len;
    seqs->n_genes[c] = g;
    seqs->n_expressed[c] = n;
    seqs->row[c] = global_row;
    seqs->n_cells = c + 1;
    return BMFM_OK;
}
