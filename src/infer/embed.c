/* embed.c - the streaming inference pipeline (see embed.h). */
#include "infer/embed.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/log.h"
#include "base/progress.h"
#include "data/rawcheck.h"
#include "data/vocab.h"
#include "model/checkpoint.h"
#include "model/encoder.h"
#include "model/heads.h"
#include "nn/nn.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pooling -------------------------------------------------------------- */

bmfm_status bmfm_pooling_parse(const char *s, bmfm_pooling *out) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return bmfm_error_set(BMFM_E_INPUT, "pooling: empty method");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", []", &save); tok; tok = strtok_r(NULL, ", []", &save)) {
        if (out->n == BMFM_POOL_MAX)
            return bmfm_error_set(BMFM_E_INPUT, "pooling '%s': more than %d methods", s, BMFM_POOL_MAX);
        int i = out->n++;
        char *end;
        long k = strtol(tok, &end, 10);
        if (!strcmp(tok, "first_token") || !strcmp(tok, "cls")) out->kind[i] = BMFM_POOL_FIRST;
        else if (!strcmp(tok, "mean_pooling") || !strcmp(tok, "mean")) out->kind[i] = BMFM_POOL_MEAN;
        else if (!strcmp(tok, "pooling_layer") || !strcmp(tok, "pooler")) out->kind[i] = BMFM_POOL_POOLER;
        else if (*tok && !*end && k >= 0 && k < 1 << 20) {
            out->kind[i] = BMFM_POOL_INDEX;
            out->index[i] = (int)k;
        } else {
            return bmfm_error_set(BMFM_E_INPUT,
                                  "pooling '%s': '%s' is not first_token, mean_pooling, "
                                  "pooling_layer or a token index",
                                  s, tok);
        }
    }
    if (!out->n) return bmfm_error_set(BMFM_E_INPUT, "pooling '%s': no method", s);
    return BMFM_OK;
}

int64_t bmfm_pooling_dim(const bmfm_pooling *p, int64_t C) { return p->n * C; }

int bmfm_pooling_apply(float *out, const float *h, int64_t L, int64_t C, const float *pooled,
                       const bmfm_pooling *p) {
    int short_cell = 0;
    for (int i = 0; i < p->n; i++, out += C) {
        switch (p->kind[i]) {
        case BMFM_POOL_FIRST: memcpy(out, h, (size_t)C * sizeof *out); break;
        case BMFM_POOL_POOLER: memcpy(out, pooled, (size_t)C * sizeof *out); break;
        case BMFM_POOL_INDEX:
            if (p->index[i] < L) {
                memcpy(out, h + (int64_t)p->index[i] * C, (size_t)C * sizeof *out);
            } else {
                for (int64_t c = 0; c < C; c++) out[c] = NAN;
                short_cell = 1;
            }
            break;
        case BMFM_POOL_MEAN: {
            /* positions 1..L-1 (the reference's mask starts after [CLS]); summed
             * in double, so it differs from torch's float32 sum by rounding only */
            for (int64_t c = 0; c < C; c++) {
                double acc = 0.0;
                for (int64_t t = 1; t < L; t++) acc += h[t * C + c];
                out[c] = L > 1 ? (float)(acc / (double)(L - 1)) : NAN;
            }
            break;
        }
        }
    }
    return short_cell;
}

/* ---- model directory ------------------------------------------------------ */

static cJSON *load_json(const char *path, bmfm_status *st) {
    char *text = NULL;
    size_t len = 0;
    *st = bmfm_read_file(path, &text, &len);
    if (*st) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) *st = bmfm_error_set(BMFM_E_INPUT, "%s: not valid JSON", path);
    return j;
}

/* [CLS] [CLS_0..] $A [SEP] from the genes tokenizer's post-processor
 * (TemplateProcessing or BertProcessing), as set_custom_cls_post_processor
 * saves it. */
static bmfm_status read_template(const char *tok_json, const bmfm_token_vocab *v, bmfm_tok_opts *t,
                                 int *found) {
    *found = 0;
    bmfm_status st;
    cJSON *j = load_json(tok_json, &st);
    if (!j) return st;
    cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
    cJSON *single = pp ? cJSON_GetObjectItemCaseSensitive(pp, "single") : NULL;
    if (cJSON_IsArray(single)) {
        int seen_seq = 0, n_after = 0;
        cJSON *it;
        cJSON_ArrayForEach(it, single) {
            cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            if (!sp) {
                seen_seq = 1;
                continue;
            }
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sp, "id"));
            int64_t id = name ? bmfm_token_vocab_id(v, name) : -1;
            if (id < 0) {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: post_processor names '%s', not in the vocabulary",
                                    tok_json, name ? name : "?");
                goto done;
            }
            if (!seen_seq) {
                if (t->n_prefix == BMFM_TOK_MAX_PREFIX) {
                    st = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: more than %d prefix tokens", tok_json,
                                        BMFM_TOK_MAX_PREFIX);
                    goto done;
                }
                t->prefix[t->n_prefix++] = (int32_t)id;
            } else {
                t->sep_id = (int32_t)id;
                n_after++;
            }
        }
        if (t->n_prefix >= 1 && n_after == 1) *found = 1;
        else t->n_prefix = 0;
    } else if (pp) {
        cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls");
        cJSON *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
        if (cJSON_IsArray(cls) && cJSON_IsArray(sep) && cJSON_GetArraySize(cls) == 2 &&
            cJSON_GetArraySize(sep) == 2) {
            t->prefix[0] = (int32_t)cJSON_GetArrayItem(cls, 1)->valuedouble;
            t->n_prefix = 1;
            t->sep_id = (int32_t)cJSON_GetArrayItem(sep, 1)->valuedouble;
            *found = 1;
        }
    }
    st = BMFM_OK;
done:
    cJSON_Delete(j);
    return st;
}

static cJSON *find_key(cJSON *root, const char *key) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(root, key);
    if (x) return x;
    cJSON *hp = cJSON_GetObjectItemCaseSensitive(root, "hyper_parameters");
    return hp ? cJSON_GetObjectItemCaseSensitive(hp, key) : NULL;
}

static bmfm_status read_metadata(bmfm_infer_model *m, const char *path) {
    bmfm_status st = BMFM_OK;
    cJSON *j = NULL;
    if (bmfm_file_exists(path)) {
        j = load_json(path, &st);
        if (!j) return st;
    }
    snprintf(m->default_pooling, sizeof m->default_pooling, "first_token");
    if (j) {
        cJSON *tc = find_key(j, "trainer_config");
        cJSON *pm = tc ? cJSON_GetObjectItemCaseSensitive(tc, "pooling_method") : NULL;
        if (!pm) pm = find_key(j, "pooling_method");
        if (cJSON_IsString(pm)) snprintf(m->default_pooling, sizeof m->default_pooling, "%s", pm->valuestring);
        else if (cJSON_IsNumber(pm)) snprintf(m->default_pooling, sizeof m->default_pooling, "%d", pm->valueint);
        else if (cJSON_IsArray(pm)) {
            char buf[64] = "";
            cJSON *it;
            cJSON_ArrayForEach(it, pm) {
                char one[24];
                if (cJSON_IsNumber(it)) snprintf(one, sizeof one, "%d", it->valueint);
                else snprintf(one, sizeof one, "%s", cJSON_IsString(it) ? it->valuestring : "?");
                if (*buf) strncat(buf, ",", sizeof buf - strlen(buf) - 1);
                strncat(buf, one, sizeof buf - strlen(buf) - 1);
            }
            snprintf(m->default_pooling, sizeof m->default_pooling, "%s", buf);
        }
    }
    cJSON *bp = j ? cJSON_GetObjectItemCaseSensitive(j, "bmfm_pretrain") : NULL;
    if (bp) {
        cJSON *ml = cJSON_GetObjectItemCaseSensitive(bp, "max_length");
        if (cJSON_IsNumber(ml) && ml->valuedouble >= 3) m->default_max_length = (int64_t)ml->valuedouble;
        snprintf(m->default_order, sizeof m->default_order, "random");
    }
    const bmfm_model_config *cfg = &m->model.cfg;
    m->n_labels = cfg->n_labels;
    m->labels = bmfm_calloc((size_t)(cfg->n_labels ? cfg->n_labels : 1), sizeof *m->labels);
    if (!m->labels) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    cJSON *ld = j ? find_key(j, "label_dict") : NULL;
    for (int l = 0; l < cfg->n_labels; l++) {
        bmfm_label_space *s = &m->labels[l];
        snprintf(s->name, sizeof s->name, "%s", cfg->labels[l].name);
        s->n_classes = cfg->labels[l].n_classes;
        s->is_ontology = cfg->labels[l].ontology[0] != 0;
        s->classes = bmfm_calloc((size_t)s->n_classes, sizeof *s->classes);
        if (!s->classes) {
            st = BMFM_E_NOMEM;
            goto done;
        }
        cJSON *d = ld ? cJSON_GetObjectItemCaseSensitive(ld, s->name) : NULL;
        cJSON *it;
        if (d) cJSON_ArrayForEach(it, d) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= (double)s->n_classes) {
                st = bmfm_error_set(BMFM_E_INPUT,
                                    "%s: label_dict[%s][%s] is not a class index below %lld (the "
                                    "head's size in config.json)",
                                    path, s->name, it->string, (long long)s->n_classes);
                goto done;
            }
            int64_t k = (int64_t)it->valuedouble;
            free(s->classes[k]);
            s->classes[k] = bmfm_strdup(it->string);
        }
        for (int64_t k = 0; k < s->n_classes; k++) {
            if (s->classes[k]) continue;
            char num[32];
            snprintf(num, sizeof num, "%lld", (long long)k);
            s->classes[k] = bmfm_strdup(num);
            if (!s->classes[k]) {
                st = BMFM_E_NOMEM;
                goto done;
            }
        }
        if (!d) bmfm_log_warn("%s: no label_dict for head '%s'; classes are reported by index", path, s->name);
    }
done:
    cJSON_Delete(j);
    return st;
}

bmfm_status bmfm_infer_model_load(const char *dir, const char *gene_list, bmfm_infer_model **out) {
    *out = NULL;
    bmfm_status st;
    char path[4096];
    if (!bmfm_is_directory(dir))
        return bmfm_error_set(BMFM_E_INPUT, "%s: not a model directory", dir);
    bmfm_path_join(path, sizeof path, dir, "config.json");
    char w[4096];
    bmfm_path_join(w, sizeof w, dir, "model.safetensors");
    if (!bmfm_file_exists(path) || !bmfm_file_exists(w))
        return bmfm_error_set(BMFM_E_INPUT,
                              "%s: unknown model layout: expected config.json and model.safetensors "
                              "(the released *.vllm layout)",
                              dir);
    bmfm_infer_model *m = bmfm_calloc(1, sizeof *m);
    if (!m) return BMFM_E_NOMEM;
    m->dir = bmfm_strdup(dir);
    st = bmfm_checkpoint_load(&m->model, dir);
    if (st) goto fail;

    char tok[4096], sub[4096];
    bmfm_path_join(sub, sizeof sub, dir, "tokenizers/genes");
    bmfm_path_join(tok, sizeof tok, sub, "tokenizer.json");
    if (!bmfm_is_directory(sub)) {
        st = bmfm_error_set(BMFM_E_INPUT, "%s: unknown model layout: no tokenizers/genes/ vocabulary", dir);
        goto fail;
    }
    st = bmfm_token_vocab_load(sub, &m->vocab);
    if (st) goto fail;
    if (m->vocab.n_ids != m->model.cfg.V) {
        st = bmfm_error_set(BMFM_E_INPUT,
                            "%s: the genes vocabulary has %lld ids but config.json / the gene "
                            "embedding have %lld rows",
                            dir, (long long)m->vocab.n_ids, (long long)m->model.cfg.V);
        goto fail;
    }
    /* special tokens: template when present, else [CLS] + [CLS_0..k-1] up to the
     * largest position a label head reads, + [SEP] */
    int found = 0;
    if (bmfm_file_exists(tok)) {
        st = read_template(tok, &m->vocab, &m->tok, &found);
        if (st) goto fail;
    }
    if (!found) {
        int64_t cls = bmfm_token_vocab_id(&m->vocab, "[CLS]"), sep = bmfm_token_vocab_id(&m->vocab, "[SEP]");
        if (cls < 0 || sep < 0) {
            st = bmfm_error_set(BMFM_E_INPUT, "%s: the genes vocabulary has no [CLS] / [SEP]", sub);
            goto fail;
        }
        m->tok.prefix[0] = (int32_t)cls;
        m->tok.n_prefix = 1;
        m->tok.sep_id = (int32_t)sep;
        int maxpos = 0;
        for (int l = 0; l < m->model.cfg.n_labels; l++)
            if (m->model.cfg.labels[l].decode_from > maxpos) maxpos = m->model.cfg.labels[l].decode_from;
        for (int k = 0; k < maxpos && m->tok.n_prefix < BMFM_TOK_MAX_PREFIX; k++) {
            char name[32];
            snprintf(name, sizeof name, "[CLS_%d]", k);
            int64_t id = bmfm_token_vocab_id(&m->vocab, name);
            if (id < 0) {
                st = bmfm_error_set(BMFM_E_INPUT, "%s: a label head reads position %d but the vocabulary has no %s",
                                    dir, maxpos, name);
                goto fail;
            }
            m->tok.prefix[m->tok.n_prefix++] = (int32_t)id;
        }
    }
    char pc[4096];
    bmfm_path_join(pc, sizeof pc, dir, "protein_coding_genes.json");
    const char *gl = gene_list ? gene_list : (bmfm_file_exists(pc) ? pc : NULL);
    if (gl) {
        st = bmfm_token_vocab_load(gl, &m->allowed);
        if (st) goto fail;
        m->has_allowed = 1;
    }
    bmfm_path_join(path, sizeof path, dir, "checkpoint_metadata.json");
    st = read_metadata(m, path);
    if (st) goto fail;
    *out = m;
    return BMFM_OK;
fail:
    bmfm_infer_model_free(m);
    return st;
}

void bmfm_infer_model_free(bmfm_infer_model *m) {
    if (!m) return;
    for (int l = 0; l < m->n_labels; l++) {
        if (m->labels[l].classes)
            for (int64_t k = 0; k < m->labels[l].n_classes; k++) free(m->labels[l].classes[k]);
        free(m->labels[l].classes);
    }
    free(m->labels);
    bmfm_model_free(&m->model);
    bmfm_token_vocab_free(&m->vocab);
    if (m->has_allowed) bmfm_token_vocab_free(&m->allowed);
    free(m->dir);
    free(m);
}

/* ---- the run ------------------------------------------------------------- */

void bmfm_infer_options_default(bmfm_infer_options *o) {
    memset(o, 0, sizeof *o);
    o->max_length = 0; /* 0: the model's training length (bmfm_pretrain), else 1024 */
    o->batch_size = 8;
    o->token_budget = 16384;
    o->normalize = -1;
    o->predict = 1;
}

static void result_free(bmfm_infer_result *r) {
    if (!r) return;
    for (int h = 0; h < r->n_heads; h++) {
        free(r->heads[h].code);
        free(r->heads[h].prob);
        free(r->heads[h].probs);
        free(r->heads[h].logits);
    }
    free(r->heads);
    free(r->emb);
    bmfm_infer_model_free(r->owned_model);
    free(r);
}

void bmfm_infer_result_free(bmfm_infer_result *r) { result_free(r); }

static bmfm_status result_new(bmfm_infer_model *m, const bmfm_infer_options *o, int64_t n_obs,
                              int64_t dim, bmfm_infer_result **out) {
    bmfm_infer_result *r = bmfm_calloc(1, sizeof *r);
    if (!r) return BMFM_E_NOMEM;
    r->n_obs = n_obs;
    r->dim = dim;
    r->emb = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * (size_t)dim * sizeof(float));
    if (!r->emb) goto nomem;
    if (o->predict && m->n_labels) {
        r->heads = bmfm_calloc((size_t)m->n_labels, sizeof *r->heads);
        if (!r->heads) goto nomem;
        r->n_heads = m->n_labels;
        for (int h = 0; h < r->n_heads; h++) {
            bmfm_head_result *hr = &r->heads[h];
            int64_t K = m->labels[h].n_classes;
            hr->space = &m->labels[h];
            hr->code = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * sizeof *hr->code);
            hr->prob = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * sizeof *hr->prob);
            if (!hr->code || !hr->prob) goto nomem;
            if (o->want_probs && !(hr->probs = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * (size_t)K * sizeof(float))))
                goto nomem;
            if (o->want_logits && !(hr->logits = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * (size_t)K * sizeof(float))))
                goto nomem;
        }
    }
    *out = r;
    return BMFM_OK;
nomem:
    result_free(r);
    return BMFM_E_NOMEM;
}

/* Decide whether values are normalized here (1) or passed through (0). */
static bmfm_status decide_normalize(bmfm_dataset *ds, int requested, char *note, size_t n, int *out) {
    if (requested >= 0) {
        *out = requested;
        snprintf(note, n, "%s (as requested)", requested ? "raw counts, log-normalized" : "values passed through");
        return BMFM_OK;
    }
    bmfm_rawcheck rc;
    BMFM_TRY(bmfm_rawcheck_run(ds, 1000, &rc));
    switch (rc.verdict) {
    case BMFM_VALUES_LOG:
        *out = 0;
        snprintf(note, n, "already log-normalized (%s): values passed through", rc.reason);
        return BMFM_OK;
    case BMFM_VALUES_SCALED:
        return bmfm_error_set(BMFM_E_INPUT,
                              "%s: the matrix holds negative values (%s); the model needs counts or "
                              "log-normalized values (pick another matrix with --layer, or "
                              "--normalize raw|none to force)",
                              bmfm_dataset_path(ds), rc.reason);
    case BMFM_VALUES_NORMALIZED:
        *out = 1;
        bmfm_log_warn("%s: values look normalized but not log-scaled (%s); treating them as counts",
                      bmfm_dataset_path(ds), rc.reason);
        snprintf(note, n, "normalized, not log (%s): treated as counts", rc.reason);
        return BMFM_OK;
    default:
        *out = 1;
        snprintf(note, n, "raw counts (%s): log-normalized", rc.reason);
        return BMFM_OK;
    }
}

static void softmax_row(float *p, const float *z, int64_t K) {
    double mx = -INFINITY, s = 0.0;
    for (int64_t k = 0; k < K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int64_t k = 0; k < K; k++) s += exp((double)z[k] - mx);
    for (int64_t k = 0; k < K; k++) p[k] = (float)(exp((double)z[k] - mx) / s);
}

static bmfm_status run_batch(bmfm_infer_model *m, const bmfm_token_seqs *seqs, int64_t first,
                             int64_t count, const bmfm_pooling *pool, bmfm_infer_result *r,
                             float *pscratch, int64_t *cu, const bmfm_infer_hook *hook) {
    bmfm_model *mod = &m->model;
    int64_t base = seqs->offsets[first];
    for (int64_t b = 0; b <= count; b++) cu[b] = seqs->offsets[first + b] - base;
    bmfm_batch batch = {0};
    batch.B = count;
    batch.N = cu[count];
    batch.cu_seqlens = cu;
    batch.gene_ids = seqs->ids + base;
    batch.expr = seqs->expr + base;
    BMFM_TRY(bmfm_encoder_forward(mod, &batch));
    bmfm_head_sel sel = {0, 0, 1};
    BMFM_TRY(bmfm_heads_forward(mod, sel));
    const float *z = bmfm_encoder_output(mod);
    int64_t C = mod->cfg.C;
    for (int64_t b = 0; b < count; b++) {
        int64_t row = seqs->row[first + b];
        r->n_index_short += bmfm_pooling_apply(r->emb + row * r->dim, z + cu[b] * C, cu[b + 1] - cu[b], C,
                                               mod->a.pool ? mod->a.pool + b * C : NULL, pool);
        for (int h = 0; h < r->n_heads; h++) {
            bmfm_head_result *hr = &r->heads[h];
            int64_t K = hr->space->n_classes;
            const float *lg = mod->a.logits[h] + b * K;
            float *p = hr->probs ? hr->probs + row * K : pscratch;
            softmax_row(p, lg, K);
            int64_t best = 0;
            for (int64_t k = 1; k < K; k++)
                if (lg[k] > lg[best]) best = k;
            hr->code[row] = (int32_t)best;
            hr->prob[row] = p[best];
            if (hr->logits) memcpy(hr->logits + row * K, lg, (size_t)K * sizeof(float));
            if (hook && hook->cell) hook->cell(hook->ctx, h, row, lg, K);
        }
    }
    return BMFM_OK;
}

static void mark_empty(bmfm_infer_result *r, int64_t row) {
    for (int64_t c = 0; c < r->dim; c++) r->emb[row * r->dim + c] = NAN;
    for (int h = 0; h < r->n_heads; h++) {
        bmfm_head_result *hr = &r->heads[h];
        int64_t K = hr->space->n_classes;
        hr->code[row] = -1;
        hr->prob[row] = NAN;
        if (hr->probs)
            for (int64_t k = 0; k < K; k++) hr->probs[row * K + k] = NAN;
        if (hr->logits)
            for (int64_t k = 0; k < K; k++) hr->logits[row * K + k] = NAN;
    }
    r->n_empty++;
}

bmfm_status bmfm_infer_run(bmfm_infer_model *m, bmfm_dataset *ds, const bmfm_infer_options *o,
                           const bmfm_infer_hook *hook, bmfm_infer_result **out) {
    *out = NULL;
    bmfm_status st = BMFM_OK;
    bmfm_infer_result *r = NULL;
    bmfm_tokenizer *tk = NULL;
    bmfm_token_seqs seqs = {0};
    bmfm_csr csr = {0};
    bmfm_gene_map gm = {0};
    int32_t *v2t = NULL;
    float *pscratch = NULL;
    int64_t *cu = NULL;
    const bmfm_model_config *cfg = &m->model.cfg;
    int64_t n_obs = bmfm_dataset_n_obs(ds), n_vars = bmfm_dataset_n_vars(ds);
    double t0 = bmfm_now_seconds();

    bmfm_pooling pool;
    BMFM_TRY(bmfm_pooling_parse(o->pooling ? o->pooling : m->default_pooling, &pool));
    for (int i = 0; i < pool.n; i++)
        if (pool.kind[i] == BMFM_POOL_POOLER && !m->model.p.pool_w)
            return bmfm_error_set(BMFM_E_INPUT, "%s: pooling_layer requested but the model has no pooler", m->dir);
    int64_t max_length = o->max_length > 0 ? o->max_length
                         : m->default_max_length > 0 ? m->default_max_length
                                                     : 1024;
    int64_t budget = o->token_budget > 0 ? o->token_budget : 16384;
    if (budget < max_length) budget = max_length;
    int64_t max_B = o->batch_size > 0 ? o->batch_size : budget / (m->tok.n_prefix + 2);
    if (max_B < 1) max_B = 1;
    /* a batch never holds more than max_B full-length cells: size the activations to that */
    if (max_B * max_length < budget) budget = max_B * max_length;
    if (o->threads > 0) omp_set_num_threads(o->threads);

    /* genes -> vocab ids */
    bmfm_gene_map_options gopt;
    bmfm_gene_map_options_default(&gopt);
    gopt.case_insensitive = o->case_insensitive;
    gopt.var_column = o->var_column;
    gopt.allowed = m->has_allowed ? &m->allowed : NULL;
    st = bmfm_gene_map_build(ds, &m->vocab, &gopt, &gm);
    if (st) goto done;
    if (gm.n_matched == 0) {
        char extra[160] = "";
        if (gm.n_not_allowed)
            snprintf(extra, sizeof extra, "; %lld match but are outside the allowed gene list",
                     (long long)gm.n_not_allowed);
        st = bmfm_error_set(BMFM_E_INPUT,
                            "%s: no gene overlaps the model vocabulary: coverage 0 of %lld genes (0%%) "
                            "against %lld tokens in %s/tokenizers/genes%s (%s; see --var-column%s)",
                            bmfm_dataset_path(ds), (long long)n_vars, (long long)m->vocab.n_tokens, m->dir,
                            extra, o->case_insensitive ? "case-insensitive match" : "exact names",
                            o->case_insensitive ? "" : ", --case-insensitive");
        goto done;
    }
    bmfm_log_info("genes: %lld of %lld in the vocabulary (%lld exact, %lld case-insensitive; %lld "
                  "outside the allowed list); %lld vocabulary ids receive summed duplicates",
                  (long long)gm.n_matched, (long long)n_vars, (long long)gm.n_exact, (long long)gm.n_case,
                  (long long)gm.n_not_allowed, (long long)gm.n_dup_targets);
    v2t = bmfm_malloc((size_t)(n_vars ? n_vars : 1) * sizeof *v2t);
    if (!v2t) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t j = 0; j < n_vars; j++) v2t[j] = (int32_t)gm.ids[j];

    bmfm_tok_opts to = m->tok;
    to.max_length = max_length;
    to.seed = o->seed;
    to.order = BMFM_ORDER_VAR;
    const char *order = o->order ? o->order : m->default_order[0] ? m->default_order : NULL;
    if (order && (st = bmfm_gene_order_parse(order, &to.order))) goto done;
    int normalize = 1;
    char note[512];
    st = decide_normalize(ds, o->normalize, note, sizeof note, &normalize);
    if (st) goto done;
    to.normalize = normalize;
    st = bmfm_tokenizer_new(&to, v2t, n_vars, &tk);
    if (st) goto done;

    st = result_new(m, o, n_obs, bmfm_pooling_dim(&pool, cfg->C), &r);
    if (st) goto done;
    snprintf(r->normalize_note, sizeof r->normalize_note, "%s", note);
    int64_t maxK = 1;
    for (int l = 0; l < m->n_labels; l++)
        if (m->labels[l].n_classes > maxK) maxK = m->labels[l].n_classes;
    pscratch = bmfm_malloc((size_t)maxK * sizeof *pscratch);
    cu = bmfm_malloc((size_t)(max_B + 1) * sizeof *cu);
    if (!pscratch || !cu) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    st = bmfm_model_alloc_acts(&m->model, budget, max_B, 0, 0, 0);
    if (st) goto done;

    bmfm_progress prog;
    bmfm_progress_begin(&prog, "embedding", "cells", n_obs);
    if (!o->progress) prog.enabled = 0;
    int64_t chunk = max_B * 16 > 256 ? max_B * 16 : 256;
    for (int64_t begin = 0; begin < n_obs; begin += chunk) {
        int64_t end = begin + chunk < n_obs ? begin + chunk : n_obs;
        st = bmfm_dataset_read_rows(ds, begin, end, &csr);
        if (st) goto done;
        bmfm_token_seqs_clear(&seqs);
        for (int64_t i = 0; i < end - begin; i++) {
            st = bmfm_tokenize_row(tk, csr.indices + csr.indptr[i], csr.data + csr.indptr[i],
                                   csr.indptr[i + 1] - csr.indptr[i], begin + i, &seqs);
            if (st) {
                bmfm_error_prefix(st, "%s", bmfm_dataset_path(ds));
                goto done;
            }
        }
        /* consecutive non-empty cells, up to max_B cells and `budget` tokens */
        int64_t i = 0;
        while (i < seqs.n_cells) {
            if (seqs.n_genes[i] == 0) {
                mark_empty(r, seqs.row[i]);
                i++;
                continue;
            }
            r->n_truncated += seqs.n_expressed[i] > seqs.n_genes[i];
            int64_t j = i + 1;
            while (j < seqs.n_cells && j - i < max_B && seqs.n_genes[j] > 0 &&
                   seqs.offsets[j + 1] - seqs.offsets[i] <= budget) {
                r->n_truncated += seqs.n_expressed[j] > seqs.n_genes[j];
                j++;
            }
            st = run_batch(m, &seqs, i, j - i, &pool, r, pscratch, cu, hook);
            if (st) goto done;
            i = j;
        }
        bmfm_progress_update(&prog, end);
    }
    bmfm_progress_end(&prog);
    if (r->n_empty)
        bmfm_log_warn("%lld of %lld cells have no gene in the model vocabulary: their rows are NaN",
                      (long long)r->n_empty, (long long)n_obs);
    if (r->n_index_short)
        bmfm_log_warn("%lld cells are shorter than a pooled token index: those parts are NaN",
                      (long long)r->n_index_short);
    r->seconds = bmfm_now_seconds() - t0;
    *out = r;
    r = NULL;
done:
    result_free(r);
    bmfm_tokenizer_free(tk);
    bmfm_token_seqs_free(&seqs);
    bmfm_csr_free(&csr);
    bmfm_gene_map_free(&gm);
    free(v2t);
    free(pscratch);
    free(cu);
    return st;
}

/* ---- result accessors ---------------------------------------------------- */

const float *bmfm_infer_result_embedding(const bmfm_infer_result *r, int64_t *rows, int64_t *cols) {
    *rows = r->n_obs;
    *cols = r->dim;
    return r->emb;
}
int64_t bmfm_infer_result_n_empty(const bmfm_infer_result *r) { return r->n_empty; }
int bmfm_infer_result_n_heads(const bmfm_infer_result *r) { return r->n_heads; }
const char *bmfm_infer_result_head(const bmfm_infer_result *r, int h, int64_t *n_classes,
                                   const char *const **names, const int32_t **codes,
                                   const float **prob, const float **probs) {
    const bmfm_head_result *hr = &r->heads[h];
    *n_classes = hr->space->n_classes;
    *names = (const char *const *)hr->space->classes;
    *codes = hr->code;
    *prob = hr->prob;
    *probs = hr->probs;
    return hr->space->name;
}
const float *bmfm_infer_result_logits(const bmfm_infer_result *r, int h) { return r->heads[h].logits; }
