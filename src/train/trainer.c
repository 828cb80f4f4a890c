/* trainer.c - the pretraining loop (trainer.h). */
#include "train/trainer.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/log.h"
#include "base/progress.h"
#include "base/rng.h"
#include "data/targets.h"
#include "data/tokenize.h"
#include "data/vocab.h"
#include "io/dataset.h"
#include "io/tokenizer_file.h"
#include "model/checkpoint.h"
#include "model/encoder.h"
#include "model/heads.h"
#include "model/model.h"
#include "nn/loss_expr.h"
#include "nn/loss_label.h"
#include "nn/nn.h"
#include "onto/labels.h"
#include "onto/labelspace.h"
#include "onto/ontology.h"
#include "train/adamw.h"
#include "train/schedule.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void bmfm_train_opts_default(bmfm_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->hidden = 128;
    o->layers = 4;
    o->heads = 4;
    o->max_length = 512;
    o->steps = 100;
    o->batch_size = 8;
    o->lr = 1e-3;
    o->weight_decay = 0.1;
    o->clip = 0.5;
    o->label_weight = 1.0;
    o->warmup = 10;
    o->val_fraction = 0.05;
    o->val_max_cells = 256;
    o->log_every = 10;
    o->val_every = 0;
    o->checkpoint_every = 0;
    o->seed = 1234;
    o->wced = 1;
    o->save_wced_decoder = 1;
}

/* ---- vocabulary ---------------------------------------------------------- */

/* The BMFM protein_coding layout (tests/ref/make_tokenizer.py): [UNK] [SEP]
 * [PAD] [CLS] [MASK] [CLS_0..CLS_30] [S] [T], genes from 38. */
#define N_BASE_SPECIAL 38

typedef struct vocab {
    bmfm_token_vocab v;
    int64_t n_special;  /* num_special_tokens: 1 + the largest [UNK]/[SEP]/[PAD]/[CLS]/[MASK]/[CLS_k] id */
    int32_t cls, sep, mask, cls0;
} vocab;

static bmfm_status vocab_put(bmfm_token_vocab *v, const char *tok, int special) {
    int64_t id = v->n_ids;
    v->tokens[id] = bmfm_strdup(tok);
    if (!v->tokens[id]) return BMFM_E_NOMEM;
    v->special[id] = (uint8_t)special;
    int r = bmfm_strmap_put(&v->map, tok, id, NULL);
    if (r < 0) return BMFM_E_NOMEM;
    if (r == 0) return bmfm_error_set(BMFM_E_INPUT, "vocabulary: token '%s' appears twice", tok);
    v->n_ids++;
    v->n_tokens++;
    v->n_special += special;
    return BMFM_OK;
}

static bmfm_status vocab_load(const char *path, vocab *out) {
    memset(out, 0, sizeof *out);
    bmfm_token_vocab in;
    BMFM_TRY(bmfm_token_vocab_load(path, &in));
    bmfm_status s = BMFM_OK;
    if (strcmp(in.format, "gene list") == 0) {
        bmfm_token_vocab *v = &out->v;
        int64_t n = N_BASE_SPECIAL + in.n_ids;
        v->tokens = bmfm_calloc((size_t)n, sizeof *v->tokens);
        v->special = bmfm_calloc((size_t)n, 1);
        if (!v->tokens || !v->special || bmfm_strmap_init(&v->map, (size_t)n) != 0) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        snprintf(v->format, sizeof v->format, "tokenizer.json");
        const char *base[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
        for (int i = 0; i < 5 && !s; i++) s = vocab_put(v, base[i], 1);
        for (int k = 0; k < 31 && !s; k++) {
            char nm[16];
            snprintf(nm, sizeof nm, "[CLS_%d]", k);
            s = vocab_put(v, nm, 1);
        }
        if (!s) s = vocab_put(v, "[S]", 1);
        if (!s) s = vocab_put(v, "[T]", 1);
        for (int64_t i = 0; i < in.n_ids && !s; i++)
            if (in.tokens[i]) s = vocab_put(v, in.tokens[i], 0);
        if (s) goto done;
    } else {
        for (int64_t i = 0; i < in.n_ids; i++)
            if (!in.tokens[i]) {
                s = bmfm_error_set(BMFM_E_INPUT, "%s: token id %lld is unused (ids must be contiguous)", path,
                                   (long long)i);
                goto done;
            }
        out->v = in;
        memset(&in, 0, sizeof in);
    }
    int64_t cls = bmfm_token_vocab_id(&out->v, "[CLS]"), sep = bmfm_token_vocab_id(&out->v, "[SEP]");
    int64_t pad = bmfm_token_vocab_id(&out->v, "[PAD]"), mask = bmfm_token_vocab_id(&out->v, "[MASK]");
    if (cls < 0 || sep < 0 || mask < 0 || pad != 2) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: the vocabulary needs [CLS], [SEP], [MASK] and [PAD] = 2", path);
        goto done;
    }
    out->cls = (int32_t)cls;
    out->sep = (int32_t)sep;
    out->mask = (int32_t)mask;
    out->cls0 = (int32_t)bmfm_token_vocab_id(&out->v, "[CLS_0]");
    int64_t mx = cls > sep ? cls : sep;
    if (mask > mx) mx = mask;
    if (pad > mx) mx = pad;
    for (int k = 0; k < 64; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "[CLS_%d]", k);
        int64_t id = bmfm_token_vocab_id(&out->v, nm);
        if (id > mx) mx = id;
    }
    int64_t unk = bmfm_token_vocab_id(&out->v, "[UNK]");
    if (unk > mx) mx = unk;
    out->n_special = mx + 1;
    for (int64_t i = 0; i < out->n_special; i++)
        if (!out->v.special[i]) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: id %lld ('%s') lies among the special tokens but is not one", path,
                               (long long)i, out->v.tokens[i]);
            goto done;
        }
done:
    bmfm_token_vocab_free(&in);
    if (s) bmfm_token_vocab_free(&out->v);
    return s;
}

/* Hugging Face tokenizer.json (WordLevel) of the vocabulary with the
 * template [CLS] ([CLS_0]) $A [SEP] the inference loader reads back. */
static char *tokenizer_json(const vocab *vc, int with_cls0) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int64_t i = 0; i < vc->v.n_ids; i++) {
        if (!vc->v.special[i]) continue;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", (double)i);
        cJSON_AddStringToObject(t, "content", vc->v.tokens[i]);
        cJSON_AddFalseToObject(t, "single_word");
        cJSON_AddFalseToObject(t, "lstrip");
        cJSON_AddFalseToObject(t, "rstrip");
        cJSON_AddFalseToObject(t, "normalized");
        cJSON_AddTrueToObject(t, "special");
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddNullToObject(root, "normalizer");
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "WhitespaceSplit");
    cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(pp, "single");
    const char *seq[4];
    int n = 0;
    seq[n++] = "[CLS]";
    if (with_cls0) seq[n++] = "[CLS_0]";
    seq[n++] = NULL; /* $A */
    seq[n++] = "[SEP]";
    for (int i = 0; i < n; i++) {
        cJSON *it = cJSON_CreateObject();
        cJSON *x = cJSON_AddObjectToObject(it, seq[i] ? "SpecialToken" : "Sequence");
        cJSON_AddStringToObject(x, "id", seq[i] ? seq[i] : "A");
        cJSON_AddNumberToObject(x, "type_id", 0);
        cJSON_AddItemToArray(single, it);
    }
    cJSON *st = cJSON_AddObjectToObject(pp, "special_tokens");
    for (int i = 0; i < n; i++) {
        if (!seq[i]) continue;
        cJSON *e = cJSON_AddObjectToObject(st, seq[i]);
        cJSON_AddStringToObject(e, "id", seq[i]);
        cJSON *ids = cJSON_AddArrayToObject(e, "ids");
        cJSON_AddItemToArray(ids, cJSON_CreateNumber((double)bmfm_token_vocab_id(&vc->v, seq[i])));
        cJSON *toks = cJSON_AddArrayToObject(e, "tokens");
        cJSON_AddItemToArray(toks, cJSON_CreateString(seq[i]));
    }
    cJSON_AddNullToObject(root, "decoder");
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "WordLevel");
    cJSON *vv = cJSON_AddObjectToObject(model, "vocab");
    for (int64_t i = 0; i < vc->v.n_ids; i++) cJSON_AddNumberToObject(vv, vc->v.tokens[i], (double)i);
    cJSON_AddStringToObject(model, "unk_token", "[UNK]");
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* ---- data ---------------------------------------------------------------- */

typedef struct source {
    const char *path;
    bmfm_csr csr;          /* every row */
    int32_t *v2t;          /* var -> token or -1 */
    int64_t n_vars;
    float *base;           /* [V] WCED base row */
    int64_t *term;         /* [n_obs] label term or -1 (NULL: no label column) */
    bmfm_tokenizer *tk;
} source;

typedef struct cellref {
    int32_t src;
    int64_t row;
    int64_t gid; /* index over all files' rows: the random streams of the cell */
} cellref;

typedef struct trainer {
    const bmfm_train_opts *o;
    vocab voc;
    source *src;
    int n_src;
    cellref *cells;        /* train cells then validation cells */
    int64_t n_cells, n_train, n_val;
    bmfm_ontology *onto;
    bmfm_labelspace *ls;
    bmfm_model m;
    int has_labels;
    /* batch buffers */
    bmfm_token_seqs seqs;
    float *wced_t, *lab_t, *mlm_t, *expr;
    double *acc;
    char *tok_json;
} trainer;

static void source_free(source *s) {
    bmfm_csr_free(&s->csr);
    free(s->v2t);
    free(s->base);
    free(s->term);
    bmfm_tokenizer_free(s->tk);
}

/* Read one file whole, map its genes and (when asked) its labels. */
static bmfm_status source_open(trainer *t, source *s, const char *path, bmfm_label_index *lix,
                               int64_t **observed, int64_t *n_obs_total) {
    const bmfm_train_opts *o = t->o;
    bmfm_dataset *ds = NULL;
    bmfm_gene_map gm = {0};
    bmfm_column col = {0};
    bmfm_status st;
    s->path = path;
    if ((st = bmfm_dataset_open(path, NULL, &ds))) return st;
    int64_t n_obs = bmfm_dataset_n_obs(ds);
    s->n_vars = bmfm_dataset_n_vars(ds);
    bmfm_gene_map_options gopt;
    bmfm_gene_map_options_default(&gopt);
    if ((st = bmfm_gene_map_build(ds, &t->voc.v, &gopt, &gm))) goto done;
    if (gm.n_matched == 0) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: no gene overlaps the vocabulary %s (0 of %lld genes)", path, o->vocab,
                            (long long)s->n_vars);
        goto done;
    }
    s->v2t = bmfm_malloc((size_t)(s->n_vars ? s->n_vars : 1) * sizeof *s->v2t);
    s->base = bmfm_malloc((size_t)t->voc.v.n_ids * sizeof *s->base);
    if (!s->v2t || !s->base) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t j = 0; j < s->n_vars; j++) s->v2t[j] = (int32_t)gm.ids[j];
    bmfm_wced_base(s->base, t->voc.v.n_ids, s->v2t, s->n_vars);
    if ((st = bmfm_dataset_read_rows(ds, 0, n_obs, &s->csr))) goto done;
    for (int64_t k = 0; k < s->csr.indptr[n_obs]; k++)
        if (s->csr.data[k] < 0 || s->csr.data[k] != floorf(s->csr.data[k])) {
            st = bmfm_error_set(BMFM_E_INPUT, "%s: X holds %g, not a raw count: pretraining needs raw counts", path,
                                (double)s->csr.data[k]);
            goto done;
        }
    int64_t n_map = 0;
    if (lix) {
        const char *const *names;
        int64_t nc = 0;
        int has = 0;
        if ((st = bmfm_dataset_obs_columns(ds, &names, &nc))) goto done;
        for (int64_t i = 0; i < nc; i++) has |= strcmp(names[i], o->label_column) == 0;
        if (has) {
            if ((st = bmfm_dataset_obs_column(ds, o->label_column, &col))) goto done;
            s->term = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * sizeof *s->term);
            int64_t *ob = bmfm_realloc(*observed, (size_t)(*n_obs_total + n_obs + 1) * sizeof *ob);
            if (!s->term || !ob) {
                st = BMFM_E_NOMEM;
                goto done;
            }
            *observed = ob;
            int64_t n_unmapped = 0;
            for (int64_t i = 0; i < n_obs; i++) {
                char buf[64];
                const char *lab = bmfm_column_text(&col, i, buf, sizeof buf);
                bmfm_label_match how = bmfm_label_map(lix, lab, &s->term[i]);
                if (!bmfm_label_is_mapped(how)) {
                    s->term[i] = -1;
                    n_unmapped += how != BMFM_LABEL_UNKNOWN;
                } else {
                    ob[(*n_obs_total)++] = s->term[i];
                    n_map++;
                }
            }
            if (n_unmapped)
                bmfm_log_warn("%s: %lld labels in obs '%s' match no live ontology term (trained as unknown)", path,
                              (long long)n_unmapped, o->label_column);
        }
    }
    bmfm_log_info("%s: %lld cells, %lld of %lld genes in the vocabulary, %lld labelled", path, (long long)n_obs,
                  (long long)gm.n_matched, (long long)s->n_vars, (long long)n_map);
done:
    bmfm_column_free(&col);
    bmfm_gene_map_free(&gm);
    bmfm_dataset_close(ds);
    return st;
}

/* ---- model config ---------------------------------------------------------- */

static bmfm_status build_config(trainer *t, bmfm_model_config *cfg, int with_wced) {
    const bmfm_train_opts *o = t->o;
    bmfm_config_default(cfg, o->hidden, o->layers, o->heads, t->voc.v.n_ids, t->voc.n_special);
    cfg->wced = with_wced;
    cfg->mlm_regression = cfg->mlm_is_zero = o->mlm;
    bmfm_status s = BMFM_OK;
    if (t->has_labels) {
        if ((s = bmfm_config_add_label(cfg, o->label_column, t->ls->K, 1, 0, 0.0f))) goto fail;
        bmfm_label_cfg *l = &cfg->labels[0];
        snprintf(l->ontology, sizeof l->ontology, "celltypeont");
        l->class_names = bmfm_calloc((size_t)t->ls->K, sizeof(char *));
        if (!l->class_names) goto nomem;
        for (int64_t k = 0; k < t->ls->K; k++)
            if (!(l->class_names[k] = bmfm_strdup(bmfm_ontology_id(t->onto, t->ls->leaf_term[k])))) goto nomem;
    }
    return BMFM_OK;
nomem:
    s = BMFM_E_NOMEM;
fail:
    bmfm_config_free(cfg);
    return s;
}

/* ---- batches --------------------------------------------------------------- */

/* Tokenize cells[0 .. B) into t->seqs and fill the targets. The random gene
 * order (and MLM mask) of a cell uses stream `stream + gid`, so it depends on
 * the cell and the epoch only, not on the batch it lands in. */
static bmfm_status build_batch(trainer *t, const cellref *cells, int64_t B, uint64_t stream, bmfm_batch *b) {
    const bmfm_train_opts *o = t->o;
    int64_t V = t->voc.v.n_ids;
    bmfm_token_seqs_clear(&t->seqs);
    for (int64_t i = 0; i < B; i++) {
        source *s = &t->src[cells[i].src];
        int64_t r = cells[i].row, a = s->csr.indptr[r], e = s->csr.indptr[r + 1];
        BMFM_TRY(bmfm_tokenize_row(s->tk, s->csr.indices + a, s->csr.data + a, e - a,
                                   (int64_t)(stream + (uint64_t)cells[i].gid), &t->seqs));
        if (o->wced)
            BMFM_TRY(bmfm_wced_target_row(t->wced_t + i * V, s->base, V, s->v2t, s->csr.indices + a, s->csr.data + a,
                                          e - a, t->acc));
        if (t->has_labels) {
            int64_t K = t->ls->K;
            float *row = t->lab_t + i * (K + 1);
            bmfm_labelspace_target(t->ls, s->term ? s->term[r] : -1, row, &row[K]);
        }
    }
    int64_t N = bmfm_token_seqs_tokens(&t->seqs);
    memset(b, 0, sizeof *b);
    b->B = B;
    b->N = N;
    b->cu_seqlens = t->seqs.offsets;
    b->gene_ids = t->seqs.ids;
    b->expr = t->seqs.expr;
    if (o->mlm) {
        memcpy(t->expr, t->seqs.expr, (size_t)N * sizeof(float));
        bmfm_mlm_opts mo;
        bmfm_mlm_opts_default(&mo);
        mo.mask_value = -(float)(t->voc.mask + 1);
        for (int64_t i = 0; i < B; i++) {
            int64_t a = t->seqs.offsets[i], e = t->seqs.offsets[i + 1];
            bmfm_mlm_mask(t->expr + a, t->mlm_t + a, e - a, &mo, o->seed ^ 0x6d6c6dULL, stream + (uint64_t)cells[i].gid);
        }
        b->expr = t->expr;
        b->mlm_target = t->mlm_t;
    }
    b->wced_target = o->wced ? t->wced_t : NULL;
    return BMFM_OK;
}

enum { T_WMSE, T_WBCE, T_MMSE, T_MBCE, T_HCE, N_TERMS };

/* Forward + losses (weighted mean; weight 1 for the expression terms,
 * label_weight for HCE); fills the head-output
 * gradients when grad. terms[] gets the unweighted terms (NaN when off);
 * *correct / *labeled count held-out leaf hits when non-NULL. */
static bmfm_status forward_loss(trainer *t, const bmfm_batch *b, int grad, double *terms, double *loss,
                                int64_t *correct, int64_t *labeled) {
    bmfm_model *m = &t->m;
    bmfm_acts *a = &m->a;
    const bmfm_model_config *c = &m->cfg;
    bmfm_head_sel sel = {t->o->wced, t->o->mlm, t->has_labels};
    BMFM_TRY(bmfm_encoder_forward(m, b));
    BMFM_TRY(bmfm_heads_forward(m, sel));
    double lw = t->has_labels ? t->o->label_weight : 0.0;
    double wsum = 2.0 * (t->o->wced != 0) + 2.0 * (t->o->mlm != 0) + lw;
    float w = (float)(1.0 / wsum);
    for (int i = 0; i < N_TERMS; i++) terms[i] = NAN;
    double total = 0;
    if (t->o->wced) {
        float *d = grad ? a->dwced_out : NULL;
        if (d) memset(d, 0, (size_t)(b->B * c->wced_n_out * c->V) * sizeof(float));
        bmfm_wced_loss(&terms[T_WMSE], &terms[T_WBCE], d, a->wced_out, b->wced_target, b->B, c->V, c->wced_n_out,
                       c->wced_mse_idx, c->wced_bce_idx, w, w);
        total += terms[T_WMSE] + terms[T_WBCE];
    }
    if (t->o->mlm) {
        if (grad) {
            memset(a->dmlm_reg, 0, (size_t)b->N * sizeof(float));
            memset(a->dmlm_iz, 0, (size_t)b->N * sizeof(float));
        }
        bmfm_mlm_loss(&terms[T_MMSE], &terms[T_MBCE], grad ? a->dmlm_reg : NULL, grad ? a->dmlm_iz : NULL, a->mlm_reg,
                      a->mlm_iz, b->mlm_target, b->N, w, w);
        total += terms[T_MMSE] + terms[T_MBCE];
    }
    if (t->has_labels) {
        int64_t K = t->ls->K;
        float *d = grad ? a->dlogits[0] : NULL;
        if (d) memset(d, 0, (size_t)(b->B * K) * sizeof(float));
        BMFM_TRY(bmfm_loss_hce(&terms[T_HCE], d, a->logits[0], t->lab_t, b->B, K, (float)(lw / wsum)));
        total += lw * terms[T_HCE];
        if (correct) {
            for (int64_t i = 0; i < b->B; i++) {
                const float *row = t->lab_t + i * (K + 1), *lg = a->logits[0] + i * K;
                if (row[K] == 0) continue;
                int64_t best = 0;
                for (int64_t k = 1; k < K; k++)
                    if (lg[k] > lg[best]) best = k;
                (*labeled)++;
                *correct += row[best] > 0;
            }
        }
    }
    *loss = total / wsum;
    return BMFM_OK;
}

/* Mean held-out losses over the validation cells (fixed gene order). */
static bmfm_status validate(trainer *t, double *terms, double *loss, double *acc, int64_t *n_labeled) {
    int64_t n = t->n_val, B = t->o->batch_size;
    if (t->o->val_max_cells > 0 && n > t->o->val_max_cells) n = t->o->val_max_cells;
    double sum[N_TERMS] = {0}, lsum = 0, wsum = 0;
    int64_t correct = 0, labeled = 0;
    for (int64_t i = 0; i < n; i += B) {
        int64_t nb = i + B <= n ? B : n - i;
        bmfm_batch b;
        double bt[N_TERMS], bl;
        BMFM_TRY(build_batch(t, t->cells + t->n_train + i, nb, 0, &b));
        BMFM_TRY(forward_loss(t, &b, 0, bt, &bl, &correct, &labeled));
        for (int k = 0; k < N_TERMS; k++) sum[k] += bt[k] * (double)nb;
        lsum += bl * (double)nb;
        wsum += (double)nb;
    }
    for (int k = 0; k < N_TERMS; k++) terms[k] = wsum > 0 ? sum[k] / wsum : NAN;
    *loss = wsum > 0 ? lsum / wsum : NAN;
    *acc = labeled ? (double)correct / (double)labeled : NAN;
    *n_labeled = labeled;
    return BMFM_OK;
}

/* ---- saving ------------------------------------------------------------------ */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }


static char *metadata_json(trainer *t, int64_t step, const double *val_terms, double val_loss) {
    const bmfm_train_opts *o = t->o;
    cJSON *root = cJSON_CreateObject();
    cJSON *tc = cJSON_AddObjectToObject(root, "trainer_config");
    cJSON_AddStringToObject(tc, "pooling_method", "first_token");
    cJSON *tr = cJSON_AddObjectToObject(root, "bmfm_pretrain");
    cJSON *files = cJSON_AddArrayToObject(tr, "data");
    for (int i = 0; i < o->n_data; i++) {
        const char *b = strrchr(o->data[i], '/');
        cJSON_AddItemToArray(files, cJSON_CreateString(b ? b + 1 : o->data[i]));
    }
    cJSON_AddNumberToObject(tr, "step", (double)step);
    cJSON_AddNumberToObject(tr, "batch_size", (double)o->batch_size);
    cJSON_AddNumberToObject(tr, "max_length", (double)o->max_length);
    cJSON_AddNumberToObject(tr, "lr", o->lr);
    cJSON_AddNumberToObject(tr, "seed", (double)o->seed);
    cJSON_AddNumberToObject(tr, "train_cells", (double)t->n_train);
    cJSON_AddNumberToObject(tr, "validation_cells", (double)t->n_val);
    if (!isnan(val_loss)) {
        cJSON_AddNumberToObject(tr, "validation_loss", val_loss);
        const char *nm[N_TERMS] = {"wced_mse", "wced_is_zero_bce", "mlm_mse", "mlm_is_zero_bce", "hce"};
        for (int k = 0; k < N_TERMS; k++)
            if (!isnan(val_terms[k])) cJSON_AddNumberToObject(tr, nm[k], val_terms[k]);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

/* The model directory, atomically: everything goes into DIR.tmp-PID, which
 * then replaces DIR. Without the WCED decoder the weights are copied into an
 * inference model of the same architecture first. */
static bmfm_status save_model(trainer *t, int64_t step, const double *val_terms, double val_loss) {
    const bmfm_train_opts *o = t->o;
    char tmp[4096], old[4096], path[4096], sub[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp-%d", o->out, (int)getpid());
    snprintf(old, sizeof old, "%s.old-%d", o->out, (int)getpid());
    rm_tree(tmp);
    bmfm_status s = BMFM_OK;
    bmfm_model inf = {0};
    int have_inf = 0;
    const bmfm_model *src = &t->m;
    if (o->wced && !o->save_wced_decoder) {
        bmfm_model_config cfg;
        if ((s = build_config(t, &cfg, 0))) goto done;
        if ((s = bmfm_model_create(&inf, &cfg))) goto done;
        have_inf = 1;
        for (int i = 0; i < inf.table.n; i++) {
            const bmfm_param_info *pi = &inf.table.info[i];
            int j = bmfm_param_table_find(&t->m.table, pi->name);
            memcpy(inf.param_mem + pi->offset, t->m.param_mem + t->m.table.info[j].offset,
                   (size_t)pi->numel * sizeof(float));
        }
        src = &inf;
    }
    char *meta = metadata_json(t, step, val_terms, val_loss);
    free(((bmfm_model *)src)->cfg.metadata_json);
    ((bmfm_model *)src)->cfg.metadata_json = meta;
    if (mkdir(tmp, 0777) != 0) {
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        goto done;
    }
    if ((s = bmfm_checkpoint_save(src, tmp))) goto done;
    bmfm_path_join(sub, sizeof sub, tmp, "tokenizers");
    mkdir(sub, 0777);
    bmfm_path_join(sub, sizeof sub, tmp, "tokenizers/genes");
    if (mkdir(sub, 0777) != 0) {
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot create directory: %s", sub, strerror(errno));
        goto done;
    }
    bmfm_path_join(path, sizeof path, sub, "tokenizer.json");
    if ((s = bmfm_write_text_atomic(path, t->tok_json))) goto done;
    struct stat sb;
    int existed = stat(o->out, &sb) == 0;
    if (existed && rename(o->out, old) != 0) {
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot move the previous model aside: %s", o->out, strerror(errno));
        goto done;
    }
    if (rename(tmp, o->out) != 0) {
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot rename %s into place: %s", o->out, tmp, strerror(errno));
        if (existed) rename(old, o->out);
        goto done;
    }
    if (existed) rm_tree(old);
done:
    if (s) rm_tree(tmp);
    if (have_inf) bmfm_model_free(&inf);
    return s;
}

/* ---- the run ---------------------------------------------------------------- */

/* DIR may be absent, an empty directory or a model directory (config.json):
 * anything else would be deleted when the new model replaces it. */
static bmfm_status check_out(const char *dir) {
    struct stat sb;
    if (stat(dir, &sb) != 0) return BMFM_OK;
    if (!S_ISDIR(sb.st_mode))
        return bmfm_error_set(BMFM_E_INPUT, "%s: exists and is not a directory; refusing to replace it with a model",
                              dir);
    char path[4096];
    bmfm_path_join(path, sizeof path, dir, "config.json");
    if (bmfm_file_exists(path)) return BMFM_OK;
    DIR *d = opendir(dir);
    if (!d) return bmfm_error_set(BMFM_E_IO, "%s: cannot read directory: %s", dir, strerror(errno));
    int empty = 1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    if (!empty)
        return bmfm_error_set(BMFM_E_INPUT,
                              "%s: a non-empty directory without config.json; refusing to replace it with a model", dir);
    return BMFM_OK;
}

static bmfm_status check_opts(const bmfm_train_opts *o) {
    if (o->n_data < 1) return bmfm_error_set(BMFM_E_INPUT, "pretrain: no training data given");
    if (!o->out || !*o->out) return bmfm_error_set(BMFM_E_INPUT, "pretrain: no output directory given");
    if (!o->vocab) return bmfm_error_set(BMFM_E_INPUT, "pretrain: no vocabulary given");
    if (o->hidden < 1 || o->layers < 1 || o->heads < 1 || o->hidden % o->heads)
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: hidden size %lld must be a positive multiple of heads %lld",
                              (long long)o->hidden, (long long)o->heads);
    if (o->max_length < 4) return bmfm_error_set(BMFM_E_INPUT, "pretrain: max length %lld < 4", (long long)o->max_length);
    if (o->steps < 0 || o->batch_size < 1)
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: steps must be >= 0 and batch size >= 1");
    if (!(o->label_weight > 0))
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: label weight %g must be > 0", o->label_weight);
    if (!(o->lr > 0) || o->weight_decay < 0 || !(o->clip > 0))
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: lr and clip must be > 0, weight decay >= 0");
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: validation fraction %g outside [0, 1)", o->val_fraction);
    if (o->label_column && !o->ontology)
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: --label-column needs --ontology OBO");
    if (!o->wced && !o->mlm && !o->label_column)
        return bmfm_error_set(BMFM_E_INPUT, "pretrain: no objective (WCED, MLM or a label column)");
    return BMFM_OK;
}

bmfm_status bmfm_train_run(const bmfm_train_opts *o, bmfm_train_report *rep) {
    memset(rep, 0, sizeof *rep);
    BMFM_TRY(check_opts(o));
    double t0 = bmfm_now_seconds();
    trainer T = {0}, *t = &T;
    t->o = o;
    bmfm_status st = BMFM_OK;
    bmfm_label_index lix = {0};
    int have_lix = 0, have_model = 0, have_opt = 0;
    int64_t *observed = NULL, n_observed = 0;
    bmfm_adamw opt = {0};
    if (o->threads > 0) {
        omp_set_num_threads(o->threads);
        bmfm_nn_set_threads(o->threads);
    }
    /* the output must be creatable, and replace nothing but a model directory, before any work */
    if ((st = check_out(o->out))) goto done;
    {
        char probe[4096];
        snprintf(probe, sizeof probe, "%s.tmp-%d", o->out, (int)getpid());
        if ((st = bmfm_atomic_tmp_path(probe, probe, sizeof probe))) goto done;
    }
    if ((st = vocab_load(o->vocab, &t->voc))) goto done;
    if (o->label_column) {
        if ((st = bmfm_ontology_load(o->ontology, &t->onto))) goto done;
        if ((st = bmfm_label_index_build(t->onto, &lix))) goto done;
        have_lix = 1;
        if (t->voc.cls0 < 0) {
            st = bmfm_error_set(BMFM_E_INPUT, "%s: a label head reads [CLS_0], which the vocabulary lacks", o->vocab);
            goto done;
        }
    }
    int64_t V = t->voc.v.n_ids;
    t->src = bmfm_calloc((size_t)o->n_data, sizeof *t->src);
    if (!t->src) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int i = 0; i < o->n_data; i++) {
        t->n_src++;
        if ((st = source_open(t, &t->src[i], o->data[i], have_lix ? &lix : NULL, &observed, &n_observed))) goto done;
    }
    if (o->label_column) {
        if (n_observed == 0) {
            st = bmfm_error_set(BMFM_E_INPUT, "no file has a usable obs column '%s' (ontology %s)", o->label_column,
                                o->ontology);
            goto done;
        }
        if ((st = bmfm_labelspace_prune(t->onto, observed, n_observed, &t->ls))) goto done;
        t->has_labels = 1;
        rep->K = t->ls->K;
        rep->n_labeled = n_observed;
        bmfm_log_info("label head '%s': %lld labelled cells, %lld leaf classes of %s", o->label_column,
                      (long long)n_observed, (long long)t->ls->K, o->ontology);
    }
    /* the prefix and tokenizers; cells with at least one vocabulary gene */
    bmfm_tok_opts to;
    memset(&to, 0, sizeof to);
    to.max_length = o->max_length;
    to.order = BMFM_ORDER_RANDOM;
    to.seed = o->seed;
    to.normalize = 1;
    to.prefix[to.n_prefix++] = t->voc.cls;
    if (t->has_labels) to.prefix[to.n_prefix++] = t->voc.cls0;
    to.sep_id = t->voc.sep;
    if (!(t->tok_json = tokenizer_json(&t->voc, t->has_labels))) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    int64_t total = 0;
    for (int i = 0; i < t->n_src; i++) {
        if ((st = bmfm_tokenizer_new(&to, t->src[i].v2t, t->src[i].n_vars, &t->src[i].tk))) goto done;
        total += t->src[i].csr.nrows;
    }
    t->cells = bmfm_malloc((size_t)(total ? total : 1) * sizeof *t->cells);
    if (!t->cells) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    int64_t gid = 0;
    bmfm_rng rng;
    for (int i = 0; i < t->n_src; i++) {
        const source *s = &t->src[i];
        int64_t kept = 0, first = t->n_cells;
        for (int64_t r = 0; r < s->csr.nrows; r++, gid++) {
            int any = 0;
            for (int64_t k = s->csr.indptr[r]; k < s->csr.indptr[r + 1] && !any; k++)
                any = s->v2t[s->csr.indices[k]] >= 0 && s->csr.data[k] > 0;
            if (!any) {
                rep->n_skipped++;
                continue;
            }
            t->cells[t->n_cells].src = i;
            t->cells[t->n_cells].gid = gid;
            t->cells[t->n_cells++].row = r;
            kept++;
        }
        if (o->max_cells_per_file > 0 && kept > o->max_cells_per_file) {
            /* a seeded partial shuffle picks which cells of this file stay */
            bmfm_rng_seed(&rng, o->seed, 0x63617000ULL + (uint64_t)i);
            cellref *c = t->cells + first;
            for (int64_t a = 0; a < o->max_cells_per_file; a++) {
                int64_t j = a + (int64_t)bmfm_rng_below(&rng, (uint64_t)(kept - a));
                cellref x = c[a];
                c[a] = c[j];
                c[j] = x;
            }
            t->n_cells = first + o->max_cells_per_file;
            rep->n_capped += kept - o->max_cells_per_file;
        }
    }
    if (t->n_cells < 2) {
        st = bmfm_error_set(BMFM_E_INPUT, "only %lld cells with a vocabulary gene: nothing to train on",
                            (long long)t->n_cells);
        goto done;
    }
    /* seeded split: a shuffle of all cells; the last n_val are held out */
    bmfm_rng_seed(&rng, o->seed, 0x7370UL);
    for (int64_t i = t->n_cells - 1; i > 0; i--) {
        int64_t j = (int64_t)bmfm_rng_below(&rng, (uint64_t)i + 1);
        cellref x = t->cells[i];
        t->cells[i] = t->cells[j];
        t->cells[j] = x;
    }
    t->n_val = (int64_t)floor(o->val_fraction * (double)t->n_cells);
    t->n_train = t->n_cells - t->n_val;
    rep->n_train = t->n_train;
    rep->n_val = t->n_val;
    bmfm_log_info("%lld training cells, %lld held out, %lld skipped (no vocabulary gene), %lld left out by "
                  "--max-cells-per-file",
                  (long long)t->n_train, (long long)t->n_val, (long long)rep->n_skipped, (long long)rep->n_capped);

    /* model, optimizer, buffers */
    bmfm_model_config cfg;
    if ((st = build_config(t, &cfg, o->wced))) goto done;
    if ((st = bmfm_model_create(&t->m, &cfg))) goto done;
    have_model = 1;
    bmfm_model_init(&t->m, o->seed);
    if ((st = bmfm_model_alloc_grads(&t->m))) goto done;
    int64_t B = o->batch_size;
    if ((st = bmfm_model_alloc_acts(&t->m, B * o->max_length, B, 1, 0, 0))) goto done;
    if ((st = bmfm_adamw_init(&opt, &t->m.table, o->weight_decay))) goto done;
    have_opt = 1;
    rep->params = bmfm_param_table_count(&t->m.table, 1);
    bmfm_log_info("model: hidden %lld, %lld layers, %lld heads, vocabulary %lld, %lld trainable parameters",
                  (long long)o->hidden, (long long)o->layers, (long long)o->heads, (long long)V,
                  (long long)rep->params);
    t->wced_t = bmfm_malloc((size_t)(B * V) * sizeof(float));
    t->acc = bmfm_calloc((size_t)V, sizeof(double));
    t->lab_t = bmfm_malloc((size_t)(B * (t->has_labels ? t->ls->K + 1 : 1)) * sizeof(float));
    t->mlm_t = bmfm_malloc((size_t)(B * o->max_length) * sizeof(float));
    t->expr = bmfm_malloc((size_t)(B * o->max_length) * sizeof(float));
    cellref *batch = bmfm_malloc((size_t)B * sizeof *batch);
    if (!t->wced_t || !t->acc || !t->lab_t || !t->mlm_t || !t->expr || !batch) {
        free(batch);
        st = BMFM_E_NOMEM;
        goto done;
    }

    double vt[N_TERMS], vl = NAN, vacc = NAN;
    for (int k = 0; k < N_TERMS; k++) vt[k] = NAN;
    if (t->n_val > 0) {
        if ((st = validate(t, vt, &vl, &vacc, &rep->val_labeled))) goto batch_done;
        rep->val_first = vl;
        bmfm_log_info("step 0: held-out loss %.5f", vl);
    }
    bmfm_schedule sch = {o->lr, o->warmup, o->decay_steps < 0 ? o->steps : o->decay_steps};
    int64_t pos = t->n_train, epoch = -1;
    cellref *order = bmfm_malloc((size_t)t->n_train * sizeof *order);
    if (!order) {
        st = BMFM_E_NOMEM;
        goto batch_done;
    }
    double win = 0, win_terms[N_TERMS] = {0};
    int64_t win_n = 0, step;
    double tw = bmfm_now_seconds();
    rep->first_loss = rep->last_loss = NAN;
    for (step = 0; step < o->steps; step++) {
        if (o->max_minutes > 0 && bmfm_now_seconds() - t0 > o->max_minutes * 60) {
            bmfm_log_warn("stopping at step %lld: the %.1f minute limit is reached", (long long)step, o->max_minutes);
            break;
        }
        for (int64_t i = 0; i < B; i++) {
            if (pos == t->n_train) { /* new epoch: reshuffle the training cells */
                epoch++;
                memcpy(order, t->cells, (size_t)t->n_train * sizeof *order);
                bmfm_rng_seed(&rng, o->seed, 0x65706f6368ULL + (uint64_t)epoch);
                for (int64_t a = t->n_train - 1; a > 0; a--) {
                    int64_t j = (int64_t)bmfm_rng_below(&rng, (uint64_t)a + 1);
                    cellref x = order[a];
                    order[a] = order[j];
                    order[j] = x;
                }
                pos = 0;
            }
            batch[i] = order[pos++];
        }
        /* a new gene order for each cell every epoch (validation uses epoch "-1") */
        bmfm_batch b;
        double terms[N_TERMS], loss;
        st = build_batch(t, batch, B, (uint64_t)(epoch + 1) * (uint64_t)total, &b);
        if (st) goto loop_done;
        if ((st = forward_loss(t, &b, 1, terms, &loss, NULL, NULL))) goto loop_done;
        if (!isfinite(loss)) {
            st = bmfm_error_set(BMFM_E_INPUT, "step %lld: the loss is %g (diverged; lower --lr)", (long long)step, loss);
            goto loop_done;
        }
        bmfm_model_zero_grads(&t->m);
        bmfm_head_sel sel = {o->wced, o->mlm, t->has_labels};
        if ((st = bmfm_heads_backward(&t->m, sel))) goto loop_done;
        if ((st = bmfm_encoder_backward(&t->m))) goto loop_done;
        double gn = bmfm_grad_clip(&t->m.table, t->m.grad_mem, o->clip);
        double lr = bmfm_schedule_lr(&sch, step);
        bmfm_adamw_step(&opt, t->m.param_mem, t->m.grad_mem, lr);
        win += loss;
        for (int k = 0; k < N_TERMS; k++) win_terms[k] += terms[k];
        win_n++;
        int64_t done_steps = step + 1;
        if (done_steps % (o->log_every > 0 ? o->log_every : 1) == 0 || done_steps == o->steps) {
            double now = bmfm_now_seconds();
            double mean = win / (double)win_n;
            if (isnan(rep->first_loss)) rep->first_loss = mean;
            rep->last_loss = mean;
            char tb[256] = "";
            const char *nm[N_TERMS] = {"wced_mse", "wced_bce", "mlm_mse", "mlm_bce", "hce"};
            for (int k = 0; k < N_TERMS; k++)
                if (!isnan(win_terms[k]))
                    snprintf(tb + strlen(tb), sizeof tb - strlen(tb), " %s %.4f", nm[k], win_terms[k] / (double)win_n);
            bmfm_log_info("step %lld/%lld lr %.3g loss %.5f (%s ) grad-norm %.3g, %.1f cells/s", (long long)done_steps,
                          (long long)o->steps, lr, mean, tb, gn, (double)(win_n * B) / (now - tw));
            win = 0;
            memset(win_terms, 0, sizeof win_terms);
            win_n = 0;
            tw = now;
        }
        if (o->val_every > 0 && done_steps % o->val_every == 0 && done_steps != o->steps && t->n_val > 0) {
            if ((st = validate(t, vt, &vl, &vacc, &rep->val_labeled))) goto loop_done;
            bmfm_log_info("step %lld: held-out loss %.5f", (long long)done_steps, vl);
        }
        if (o->checkpoint_every > 0 && done_steps % o->checkpoint_every == 0 && done_steps != o->steps) {
            if ((st = save_model(t, done_steps, vt, vl))) goto loop_done;
            bmfm_log_info("step %lld: checkpoint written to %s", (long long)done_steps, o->out);
        }
    }
    if (win_n) { /* a partial window (early stop) */
        rep->last_loss = win / (double)win_n;
        if (isnan(rep->first_loss)) rep->first_loss = rep->last_loss;
    }
    rep->steps = step;
    if (t->n_val > 0) {
        if ((st = validate(t, vt, &vl, &vacc, &rep->val_labeled))) goto loop_done;
        bmfm_log_info("step %lld: held-out loss %.5f", (long long)step, vl);
    }
    rep->val_last = vl;
    memcpy(rep->val_terms, vt, sizeof vt);
    rep->val_hce_acc = vacc;
    st = save_model(t, step, vt, vl);
loop_done:
    free(order);
batch_done:
    free(batch);
done:
    rep->seconds = bmfm_now_seconds() - t0;
    if (have_opt) bmfm_adamw_free(&opt);
    if (have_model) bmfm_model_free(&t->m);
    free(t->wced_t);
    free(t->acc);
    free(t->lab_t);
    free(t->mlm_t);
    free(t->expr);
    free(t->tok_json);
    bmfm_token_seqs_free(&t->seqs);
    for (int i = 0; i < t->n_src; i++) source_free(&t->src[i]);
    free(t->src);
    free(t->cells);
    free(observed);
    if (t->ls) bmfm_labelspace_free(t->ls);
    if (have_lix) bmfm_label_index_free(&lix);
    if (t->onto) bmfm_ontology_free(t->onto);
    bmfm_token_vocab_free(&t->voc.v);
    return st;
}
