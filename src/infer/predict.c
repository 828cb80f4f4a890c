/* predict.c - label-head decoding into obs columns (see predict.h). */
#include "infer/predict.h"

#include "base/alloc.h"
#include "base/log.h"
#include "onto/decode.h"
#include "onto/labels.h"
#include "onto/labelspace.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEVELS 16

/* One ontology head's per-cell decoded terms (-1 = none). */
typedef struct onto_head {
    bmfm_labelspace *ls;
    int64_t *main, *greedy, *call, *coarse;
    int64_t *level[MAX_LEVELS];
    float *call_prob;
} onto_head;

struct bmfm_predict {
    bmfm_infer_model *m;
    bmfm_predict_opts o;
    int64_t n_obs;
    bmfm_ontology *onto;
    bmfm_label_index lix;
    int has_lix;
    onto_head *heads;          /* [n_labels]; ls NULL for flat heads */
    int32_t depths[MAX_LEVELS];
    int n_depths;
    int64_t *coarse;           /* coarse terms */
    int64_t n_coarse;
    double *p, *mass;          /* scratch: [maxK], [n_terms] */
    int64_t *path;
};

static bmfm_status parse_levels(bmfm_predict *p, const char *levels) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", levels);
    char *save = NULL;
    for (char *piece = strtok_r(buf, ";", &save); piece; piece = strtok_r(NULL, ";", &save)) {
        while (isspace((unsigned char)*piece)) piece++;
        char *e = piece + strlen(piece);
        while (e > piece && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*piece) continue;
        if (strspn(piece, "0123456789, ") == strlen(piece)) {
            char *s2 = NULL;
            for (char *d = strtok_r(piece, ", ", &s2); d; d = strtok_r(NULL, ", ", &s2)) {
                if (p->n_depths == MAX_LEVELS)
                    return bmfm_error_set(BMFM_E_INPUT, "--levels: more than %d depths", MAX_LEVELS);
                p->depths[p->n_depths++] = atoi(d);
            }
            continue;
        }
        int64_t t = -1;
        bmfm_label_match how = bmfm_label_map(&p->lix, piece, &t);
        if (!bmfm_label_is_mapped(how) || t < 0)
            return bmfm_error_set(BMFM_E_INPUT, "--levels: '%s' is not a term of %s (%s)", piece,
                                  p->o.ontology, bmfm_label_match_name(how));
        int64_t *c = bmfm_realloc(p->coarse, (size_t)(p->n_coarse + 1) * sizeof *c);
        if (!c) return BMFM_E_NOMEM;
        p->coarse = c;
        p->coarse[p->n_coarse++] = t;
    }
    return BMFM_OK;
}

static int64_t *new_terms(int64_t n) {
    int64_t *a = bmfm_malloc((size_t)(n ? n : 1) * sizeof *a);
    if (a)
        for (int64_t i = 0; i < n; i++) a[i] = -1;
    return a;
}

bmfm_status bmfm_predict_new(bmfm_infer_model *m, const bmfm_predict_opts *o, int64_t n_obs,
                             bmfm_predict **out) {
    *out = NULL;
    bmfm_status st = BMFM_OK;
    bmfm_predict *p = bmfm_calloc(1, sizeof *p);
    if (!p) return BMFM_E_NOMEM;
    p->m = m;
    p->o = *o;
    p->n_obs = n_obs;
    p->heads = bmfm_calloc((size_t)(m->n_labels ? m->n_labels : 1), sizeof *p->heads);
    if (!p->heads) goto nomem;
    int any_onto = 0;
    for (int h = 0; h < m->n_labels; h++) any_onto |= m->labels[h].is_ontology;
    if (o->ontology && !any_onto)
        bmfm_log_warn("%s: no label head of this model is an ontology head; --ontology ignored", m->dir);
    if (o->levels && (!o->ontology || !any_onto)) {
        st = bmfm_error_set(BMFM_E_INPUT, "--levels needs --ontology OBO and a model with an ontology head");
        goto fail;
    }
    if (!o->ontology || !any_onto) {
        *out = p;
        return BMFM_OK;
    }
    if ((st = bmfm_ontology_load(o->ontology, &p->onto))) goto fail;
    int64_t maxK = 1;
    for (int h = 0; h < m->n_labels; h++) {
        if (!m->labels[h].is_ontology) continue;
        bmfm_label_space *s = &m->labels[h];
        if (s->n_classes > maxK) maxK = s->n_classes;
        st = bmfm_labelspace_from_leaves(p->onto, (const char *const *)s->classes, s->n_classes, 1, &p->heads[h].ls);
        if (st) {
            bmfm_error_prefix(st, "head %s", s->name);
            goto fail;
        }
        if (p->heads[h].ls->n_added)
            bmfm_log_warn("head %s: %lld of %lld leaf ids are not live terms of %s (kept as isolated nodes)",
                          s->name, (long long)p->heads[h].ls->n_added, (long long)s->n_classes, o->ontology);
    }
    if ((st = bmfm_label_index_build(p->onto, &p->lix))) goto fail;
    p->has_lix = 1;
    if (o->levels && (st = parse_levels(p, o->levels))) goto fail;
    int64_t nt = p->onto->n_terms;
    p->p = bmfm_malloc((size_t)maxK * sizeof *p->p);
    p->mass = bmfm_malloc((size_t)nt * sizeof *p->mass);
    p->path = bmfm_malloc((size_t)nt * sizeof *p->path);
    if (!p->p || !p->mass || !p->path) goto nomem;
    for (int h = 0; h < m->n_labels; h++) {
        onto_head *oh = &p->heads[h];
        if (!oh->ls) continue;
        if (!(oh->main = new_terms(n_obs)) || !(oh->greedy = new_terms(n_obs)) || !(oh->call = new_terms(n_obs)))
            goto nomem;
        if (p->n_coarse && !(oh->coarse = new_terms(n_obs))) goto nomem;
        for (int d = 0; d < p->n_depths; d++)
            if (!(oh->level[d] = new_terms(n_obs))) goto nomem;
        if (!(oh->call_prob = bmfm_malloc((size_t)(n_obs ? n_obs : 1) * sizeof *oh->call_prob))) goto nomem;
        for (int64_t i = 0; i < n_obs; i++) oh->call_prob[i] = NAN;
    }
    *out = p;
    return BMFM_OK;
nomem:
    st = BMFM_E_NOMEM;
fail:
    bmfm_predict_free(p);
    return st;
}

void bmfm_predict_free(bmfm_predict *p) {
    if (!p) return;
    if (p->heads)
        for (int h = 0; h < p->m->n_labels; h++) {
            onto_head *oh = &p->heads[h];
            bmfm_labelspace_free(oh->ls);
            free(oh->main), free(oh->greedy), free(oh->call), free(oh->coarse), free(oh->call_prob);
            for (int d = 0; d < MAX_LEVELS; d++) free(oh->level[d]);
        }
    free(p->heads);
    if (p->has_lix) bmfm_label_index_free(&p->lix);
    bmfm_ontology_free(p->onto);
    free(p->coarse), free(p->p), free(p->mass), free(p->path);
    free(p);
}

static void on_cell(void *ctx, int h, int64_t row, const float *logits, int64_t K) {
    bmfm_predict *p = ctx;
    onto_head *oh = &p->heads[h];
    if (!oh->ls) return;
    int64_t len;
    bmfm_decode_softmax(logits, K, p->p);
    bmfm_decode_node_mass(oh->ls, p->p, p->mass);
    int64_t leaf = oh->ls->leaf_term[bmfm_decode_argmax(oh->ls, p->p)];
    int64_t greedy = bmfm_decode_greedy(oh->ls, p->mass, 0.0, p->path, &len);
    int64_t call = bmfm_decode_greedy(oh->ls, p->mass, p->o.min_prob, p->path, &len);
    int64_t main = p->o.decode == BMFM_DECODE_GREEDY ? greedy : leaf;
    oh->main[row] = main;
    oh->greedy[row] = greedy;
    oh->call[row] = call;
    oh->call_prob[row] = call >= 0 ? (float)p->mass[call] : NAN;
    for (int d = 0; d < p->n_depths; d++)
        oh->level[d][row] = bmfm_decode_rollup_depth(p->onto, p->mass, main, p->depths[d]);
    if (oh->coarse) oh->coarse[row] = bmfm_decode_rollup_coarse(p->onto, main, p->coarse, p->n_coarse);
}

bmfm_infer_hook bmfm_predict_hook(bmfm_predict *p) {
    bmfm_infer_hook hk = {on_cell, p};
    return hk;
}

/* A per-row term column as a categorical of term ids (names = 0) or names. */
static bmfm_status put_terms(bmfm_predict *p, bmfm_h5ad_edit *e, const char *col, const int64_t *terms,
                             int names) {
    bmfm_status st = BMFM_OK;
    int64_t nt = p->onto->n_terms;
    int32_t *cat_of = bmfm_malloc((size_t)nt * sizeof *cat_of);
    int32_t *codes = bmfm_malloc((size_t)(p->n_obs ? p->n_obs : 1) * sizeof *codes);
    const char **cats = bmfm_malloc((size_t)nt * sizeof *cats);
    if (!cat_of || !codes || !cats) {
        st = BMFM_E_NOMEM;
        goto done;
    }
    for (int64_t t = 0; t < nt; t++) cat_of[t] = -1;
    /* categories in term-index order, so the result does not depend on row order */
    for (int64_t i = 0; i < p->n_obs; i++)
        if (terms[i] >= 0) cat_of[terms[i]] = 0;
    int64_t nc = 0;
    for (int64_t t = 0; t < nt; t++) {
        if (cat_of[t] < 0) continue;
        const char *s = names ? bmfm_ontology_name(p->onto, t) : bmfm_ontology_id(p->onto, t);
        cats[nc] = s && *s ? s : bmfm_ontology_id(p->onto, t);
        cat_of[t] = (int32_t)nc++;
    }
    /* two terms may share a name: fall back to ids then */
    if (names)
        for (int64_t a = 0; a < nc; a++)
            for (int64_t b = a + 1; b < nc; b++)
                if (!strcmp(cats[a], cats[b])) {
                    free(cat_of), free(codes), free(cats);
                    return put_terms(p, e, col, terms, 0);
                }
    for (int64_t i = 0; i < p->n_obs; i++) codes[i] = terms[i] >= 0 ? cat_of[terms[i]] : -1;
    st = bmfm_h5ad_edit_put_obs_categorical(e, col, codes, cats, nc);
done:
    free(cat_of), free(codes), free(cats);
    return st;
}

static bmfm_status put_float_col(bmfm_h5ad_edit *e, const char *col, const float *v, int64_t n) {
    double *d = bmfm_malloc((size_t)(n ? n : 1) * sizeof *d);
    if (!d) return BMFM_E_NOMEM;
    for (int64_t i = 0; i < n; i++) d[i] = v[i];
    bmfm_status st = bmfm_h5ad_edit_put_obs_numeric(e, col, d);
    free(d);
    return st;
}

bmfm_status bmfm_predict_write(bmfm_predict *p, const bmfm_infer_result *r, bmfm_h5ad_edit *e,
                               const char *prefix) {
    char col[512];
    for (int h = 0; h < r->n_heads; h++) {
        const bmfm_head_result *hr = &r->heads[h];
        const bmfm_label_space *s = hr->space;
        onto_head *oh = &p->heads[h];
        if (oh->ls) {
            snprintf(col, sizeof col, "%s%s", prefix, s->name);
            BMFM_TRY(put_terms(p, e, col, oh->main, 0));
            snprintf(col, sizeof col, "%s%s_name", prefix, s->name);
            BMFM_TRY(put_terms(p, e, col, oh->main, 1));
            snprintf(col, sizeof col, "%s%s_greedy", prefix, s->name);
            BMFM_TRY(put_terms(p, e, col, oh->greedy, 0));
            snprintf(col, sizeof col, "%s%s_call", prefix, s->name);
            BMFM_TRY(put_terms(p, e, col, oh->call, 0));
            snprintf(col, sizeof col, "%s%s_call_name", prefix, s->name);
            BMFM_TRY(put_terms(p, e, col, oh->call, 1));
            snprintf(col, sizeof col, "%s%s_call_prob", prefix, s->name);
            BMFM_TRY(put_float_col(e, col, oh->call_prob, r->n_obs));
            for (int d = 0; d < p->n_depths; d++) {
                snprintf(col, sizeof col, "%s%s_level%d", prefix, s->name, p->depths[d]);
                BMFM_TRY(put_terms(p, e, col, oh->level[d], 1));
            }
            if (oh->coarse) {
                snprintf(col, sizeof col, "%s%s_coarse", prefix, s->name);
                BMFM_TRY(put_terms(p, e, col, oh->coarse, 1));
            }
        } else {
            snprintf(col, sizeof col, "%s%s", prefix, s->name);
            BMFM_TRY(bmfm_h5ad_edit_put_obs_categorical(e, col, hr->code, (const char *const *)s->classes,
                                                        s->n_classes));
        }
        /* probability of the leaf-argmax class (the reference's prediction) */
        snprintf(col, sizeof col, "%s%s_prob", prefix, s->name);
        BMFM_TRY(put_float_col(e, col, hr->prob, r->n_obs));
        if (hr->probs) {
            snprintf(col, sizeof col, "%s%s_probs", prefix, s->name);
            BMFM_TRY(bmfm_h5ad_edit_put_obsm(e, col, hr->probs, r->n_obs, s->n_classes));
        }
        if (hr->logits) {
            snprintf(col, sizeof col, "%s%s_logits", prefix, s->name);
            BMFM_TRY(bmfm_h5ad_edit_put_obsm(e, col, hr->logits, r->n_obs, s->n_classes));
        }
    }
    return BMFM_OK;
}
