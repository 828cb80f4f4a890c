/* config.c - config.json of a model directory (see config.h). */
#include "model/config.h"

#include "base/alloc.h"
#include "base/fileutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t bmfm_config_mlp_width(int64_t C) {
    int64_t h = (int64_t)(2.0 * 4.0 * (double)C / 3.0);
    return (h + 255) / 256 * 256;
}

void bmfm_config_default(bmfm_model_config *cfg, int64_t C, int64_t NL, int64_t NH, int64_t V,
                         int64_t n_special) {
    memset(cfg, 0, sizeof *cfg);
    cfg->C = C;
    cfg->NL = NL;
    cfg->NH = NH;
    cfg->F = bmfm_config_mlp_width(C);
    cfg->V = V;
    cfg->n_special = n_special;
    cfg->n_spec_rows = n_special + 1;
    cfg->ln_eps = 1e-12f;
    cfg->rms_eps = 1e-5f;
    cfg->pad_id = 2;
    cfg->expr_kind = BMFM_EXPR_SCALE_ADAPT;
    cfg->n_sin_basis = 48;
    cfg->basis_scale = 0.01;
    cfg->zero_as_special = 1;
    cfg->expr_hidden = 128;
    cfg->wced_n_out = 2;
    cfg->wced_mse_idx = 0;
    cfg->wced_bce_idx = 1;
}

bmfm_status bmfm_config_add_label(bmfm_model_config *cfg, const char *name, int64_t n_classes,
                                  int decode_from, int is_regression, float grl_coef) {
    bmfm_label_cfg *l = bmfm_realloc(cfg->labels, (size_t)(cfg->n_labels + 1) * sizeof *l);
    if (!l) return BMFM_E_NOMEM;
    cfg->labels = l;
    l = &cfg->labels[cfg->n_labels++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->n_classes = is_regression ? 1 : n_classes;
    l->decode_from = decode_from;
    l->is_regression = is_regression;
    l->has_grl = grl_coef != 0.0f;
    l->grl_coef = grl_coef;
    return BMFM_OK;
}

int bmfm_config_label_index(const bmfm_model_config *cfg, const char *name) {
    for (int i = 0; i < cfg->n_labels; i++)
        if (strcmp(cfg->labels[i].name, name) == 0) return i;
    return -1;
}

void bmfm_config_free(bmfm_model_config *cfg) {
    for (int i = 0; i < cfg->n_labels; i++) {
        if (cfg->labels[i].class_names)
            for (int64_t k = 0; k < cfg->labels[i].n_classes; k++) free(cfg->labels[i].class_names[k]);
        free(cfg->labels[i].class_names);
    }
    free(cfg->labels);
    free(cfg->metadata_json);
    free(cfg->raw_json);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- reading ---------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static bmfm_status get_int(const cJSON *o, const char *k, int64_t *out, int required, const char *path,
                           const char *where) {
    const cJSON *v = get(o, k);
    if (!v || cJSON_IsNull(v)) {
        if (required) return bmfm_error_set(BMFM_E_INPUT, "%s: %s%s is missing", path, where, k);
        return BMFM_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return bmfm_error_set(BMFM_E_INPUT, "%s: %s%s is not an integer", path, where, k);
    *out = (int64_t)v->valuedouble;
    return BMFM_OK;
}

static bmfm_status get_float(const cJSON *o, const char *k, float *out, const char *path, const char *where) {
    const cJSON *v = get(o, k);
    if (!v || cJSON_IsNull(v)) return BMFM_OK;
    if (!cJSON_IsNumber(v)) return bmfm_error_set(BMFM_E_INPUT, "%s: %s%s is not a number", path, where, k);
    *out = (float)v->valuedouble;
    return BMFM_OK;
}

static int get_bool(const cJSON *o, const char *k, int dflt) {
    const cJSON *v = get(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static bmfm_status parse_expr_field(bmfm_model_config *cfg, const cJSON *f, const char *path) {
    const char *w = "fields[expressions].";
    const cJSON *ts = get(f, "tokenization_strategy");
    if (!cJSON_IsString(ts) || strcmp(ts->valuestring, "continuous_value_encoder") != 0)
        return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %stokenization_strategy must be continuous_value_encoder", path, w);
    BMFM_TRY(get_int(f, "num_special_tokens", &cfg->n_special, 1, path, w));
    cfg->n_spec_rows = cfg->n_special + 1;
    const cJSON *ek = get(f, "encoder_kwargs");
    const char *kind = "scale_adapt";
    if (cJSON_IsObject(ek)) {
        const cJSON *k = get(ek, "kind");
        if (cJSON_IsString(k)) kind = k->valuestring;
        BMFM_TRY(get_int(ek, "n_sin_basis", &cfg->n_sin_basis, 0, path, "encoder_kwargs."));
        const cJSON *bs = get(ek, "basis_scale");
        if (cJSON_IsNumber(bs)) cfg->basis_scale = bs->valuedouble;
        cfg->basis_trainable = get_bool(ek, "trainable", 0);
        cfg->zero_as_special = get_bool(ek, "zero_as_special_token", 1);
        const cJSON *sc = get(ek, "sigmoid_centers");
        if (sc && !cJSON_IsNull(sc))
            return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: encoder_kwargs.sigmoid_centers is not supported", path);
        float shift = 0;
        BMFM_TRY(get_float(ek, "shift", &shift, path, "encoder_kwargs."));
        if (shift != 0)
            return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: encoder_kwargs.shift %g is not supported", path, shift);
    }
    if (strcmp(kind, "scale_adapt") == 0) cfg->expr_kind = BMFM_EXPR_SCALE_ADAPT;
    else if (strcmp(kind, "mlp_with_special_token_embedding") == 0 || strcmp(kind, "mlp_with_special_tokens") == 0)
        cfg->expr_kind = BMFM_EXPR_MLP_SPECIAL;
    else return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: expression encoder kind %s is not supported", path, kind);
    const cJSON *dm = get(f, "decode_modes");
    if (cJSON_IsObject(dm)) {
        for (const cJSON *m = dm->child; m; m = m->next) {
            if (strcmp(m->string, "wced") == 0) {
                cfg->wced = 1;
                const cJSON *lo = get(m, "logit_outputs");
                cfg->wced_mse_idx = cfg->wced_bce_idx = -1;
                if (!cJSON_IsArray(lo)) {
                    cfg->wced_n_out = 2;
                    cfg->wced_mse_idx = 0;
                    cfg->wced_bce_idx = 1;
                    continue;
                }
                cfg->wced_n_out = cJSON_GetArraySize(lo);
                for (int i = 0; i < cfg->wced_n_out; i++) {
                    const cJSON *o = cJSON_GetArrayItem(lo, i);
                    if (!cJSON_IsString(o)) continue;
                    if (strcmp(o->valuestring, "mse") == 0) cfg->wced_mse_idx = i;
                    else if (strcmp(o->valuestring, "is_zero_bce") == 0) cfg->wced_bce_idx = i;
                }
            } else if (strcmp(m->string, "regression") == 0) {
                cfg->mlm_regression = 1;
            } else if (strcmp(m->string, "is_zero") == 0) {
                cfg->mlm_is_zero = 1;
            } else {
                return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %sdecode_modes.%s is not supported", path, w, m->string);
            }
        }
    } else if (cJSON_IsArray(dm)) {
        for (const cJSON *m = dm->child; m; m = m->next) {
            if (!cJSON_IsString(m)) continue;
            if (strcmp(m->valuestring, "regression") == 0) cfg->mlm_regression = 1;
            else if (strcmp(m->valuestring, "is_zero") == 0) cfg->mlm_is_zero = 1;
            else if (strcmp(m->valuestring, "wced") == 0) cfg->wced = 1;
            else return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %sdecode_modes %s is not supported", path, w, m->valuestring);
        }
    }
    return BMFM_OK;
}

static bmfm_status parse_label(bmfm_model_config *cfg, const cJSON *l, const char *path) {
    const cJSON *nm = get(l, "label_column_name");
    if (!cJSON_IsString(nm)) return bmfm_error_set(BMFM_E_INPUT, "%s: label_columns entry without label_column_name", path);
    char where[BMFM_NAME_MAX + 32];
    snprintf(where, sizeof where, "label_columns[%s].", nm->valuestring);
    int is_reg = get_bool(l, "is_regression_label", 0);
    int64_t n = is_reg ? 1 : 0, depth = 1, dec = -1; /* 0: unknown, taken from label_dict or the weights */
    BMFM_TRY(get_int(l, "n_unique_values", &n, 0, path, where));
    BMFM_TRY(get_int(l, "classifier_depth", &depth, 0, path, where));
    BMFM_TRY(get_int(l, "decode_from", &dec, 0, path, where));
    if (depth != 1) return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %sclassifier_depth %lld (only 1)", path, where, (long long)depth);
    const cJSON *tg = get(l, "task_group");
    if (tg && !cJSON_IsNull(tg)) return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %stask_group is not supported", path, where);
    if (get_bool(l, "is_multilabel", 0)) return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: %sis_multilabel is not supported", path, where);
    if (n < 0) return bmfm_error_set(BMFM_E_INPUT, "%s: %sn_unique_values %lld", path, where, (long long)n);
    float grl = 0;
    BMFM_TRY(get_float(l, "gradient_reversal_coefficient", &grl, path, where));
    BMFM_TRY(bmfm_config_add_label(cfg, nm->valuestring, n, (int)dec, is_reg, grl));
    const cJSON *on = get(l, "label_ontology");
    if (cJSON_IsString(on)) snprintf(cfg->labels[cfg->n_labels - 1].ontology, 64, "%s", on->valuestring);
    return BMFM_OK;
}

bmfm_status bmfm_config_parse(bmfm_model_config *cfg, const char *json, const char *path) {
    bmfm_config_default(cfg, 0, 0, 0, 0, 0);
    bmfm_status s = BMFM_OK;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: not a JSON object", path);
        goto done;
    }
    const cJSON *mt = get(root, "model_type");
    if (cJSON_IsString(mt) && strcmp(mt->valuestring, "scllama") != 0) {
        s = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: model_type %s is not supported (only scllama)", path, mt->valuestring);
        goto done;
    }
    if ((s = get_int(root, "hidden_size", &cfg->C, 1, path, "")) || (s = get_int(root, "num_hidden_layers", &cfg->NL, 1, path, "")) ||
        (s = get_int(root, "num_attention_heads", &cfg->NH, 1, path, "")))
        goto done;
    int64_t pad = 2, V = 0, F = 0;
    if ((s = get_int(root, "pad_token_id", &pad, 0, path, "")) || (s = get_int(root, "vocab_size", &V, 0, path, "")) ||
        (s = get_int(root, "mlp_hidden_size", &F, 0, path, "")) ||
        (s = get_float(root, "layer_norm_eps", &cfg->ln_eps, path, "")) ||
        (s = get_float(root, "rms_norm_eps", &cfg->rms_eps, path, "")))
        goto done;
    const cJSON *cp = get(root, "classifier_pooling");
    if (cJSON_IsString(cp) && strcmp(cp->valuestring, "cls") != 0) {
        s = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: classifier_pooling %s is not supported (only cls)", path, cp->valuestring);
        goto done;
    }
    cfg->pad_id = (int)pad;
    cfg->V = V;
    cfg->F = F > 0 ? F : bmfm_config_mlp_width(cfg->C);
    if (cfg->C <= 0 || cfg->NL <= 0 || cfg->NH <= 0 || cfg->C % cfg->NH != 0) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: hidden_size %lld is not a positive multiple of num_attention_heads %lld", path,
                           (long long)cfg->C, (long long)cfg->NH);
        goto done;
    }
    const cJSON *fields = get(root, "fields");
    if (!cJSON_IsArray(fields)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: fields is missing", path);
        goto done;
    }
    int have_genes = 0, have_expr = 0;
    for (const cJSON *f = fields->child; f; f = f->next) {
        const cJSON *nm = get(f, "field_name");
        if (!cJSON_IsString(nm)) continue;
        if (!get_bool(f, "is_input", 1)) continue;
        if (strcmp(nm->valuestring, "genes") == 0) {
            have_genes = 1;
            if ((s = get_int(f, "vocab_size", &cfg->V, cfg->V <= 0, path, "fields[genes].")) != BMFM_OK) goto done;
            const cJSON *dm = get(f, "decode_modes");
            if (dm && !cJSON_IsNull(dm) && cJSON_GetArraySize(dm) > 0) {
                s = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: decode modes on the genes field are not supported", path);
                goto done;
            }
        } else if (strcmp(nm->valuestring, "expressions") == 0) {
            have_expr = 1;
            if ((s = parse_expr_field(cfg, f, path)) != BMFM_OK) goto done;
        } else {
            s = bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: input field %s is not supported", path, nm->valuestring);
            goto done;
        }
    }
    if (!have_genes || !have_expr) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: fields must hold genes and expressions", path);
        goto done;
    }
    const cJSON *lc = get(root, "label_columns");
    if (cJSON_IsArray(lc))
        for (const cJSON *l = lc->child; l; l = l->next)
            if ((s = parse_label(cfg, l, path)) != BMFM_OK) goto done;
    cfg->raw_json = bmfm_strdup(json);
    if (!cfg->raw_json) s = BMFM_E_NOMEM;
done:
    cJSON_Delete(root);
    if (s != BMFM_OK) bmfm_config_free(cfg);
    return s;
}

bmfm_status bmfm_config_load(bmfm_model_config *cfg, const char *path) {
    char *text = NULL;
    size_t len;
    memset(cfg, 0, sizeof *cfg);
    BMFM_TRY(bmfm_read_file(path, &text, &len));
    bmfm_status s = bmfm_config_parse(cfg, text, path);
    free(text);
    return s;
}

/* ---- writing ---------------------------------------------------------------- */

static void set_item(cJSON *o, const char *k, cJSON *v) {
    if (get(o, k)) cJSON_ReplaceItemInObjectCaseSensitive(o, k, v);
    else cJSON_AddItemToObject(o, k, v);
}

static cJSON *find_field(cJSON *fields, const char *name) {
    for (cJSON *f = fields->child; f; f = f->next) {
        const cJSON *nm = get(f, "field_name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, name) == 0) return f;
    }
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "field_name", name);
    cJSON_AddItemToArray(fields, f);
    return f;
}

bmfm_status bmfm_config_save(const bmfm_model_config *cfg, const char *path) {
    cJSON *root = cfg->raw_json ? cJSON_Parse(cfg->raw_json) : NULL;
    if (!root) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model_type", "scllama");
        cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
        cJSON_AddItemToArray(arch, cJSON_CreateString("BiomedRnaForSequenceEmbedding"));
        cJSON_AddStringToObject(root, "hidden_act", "gelu");
        cJSON_AddStringToObject(root, "classifier_pooling", "cls");
        cJSON_AddNullToObject(root, "position_embedding_type");
    }
    set_item(root, "hidden_size", cJSON_CreateNumber((double)cfg->C));
    set_item(root, "num_hidden_layers", cJSON_CreateNumber((double)cfg->NL));
    set_item(root, "num_attention_heads", cJSON_CreateNumber((double)cfg->NH));
    set_item(root, "layer_norm_eps", cJSON_CreateNumber(cfg->ln_eps));
    set_item(root, "rms_norm_eps", cJSON_CreateNumber(cfg->rms_eps));
    set_item(root, "pad_token_id", cJSON_CreateNumber(cfg->pad_id));
    set_item(root, "vocab_size", cJSON_CreateNumber((double)cfg->V));
    if (cfg->F != bmfm_config_mlp_width(cfg->C)) set_item(root, "mlp_hidden_size", cJSON_CreateNumber((double)cfg->F));
    cJSON *fields = cJSON_GetObjectItemCaseSensitive(root, "fields");
    if (!cJSON_IsArray(fields)) {
        fields = cJSON_CreateArray();
        set_item(root, "fields", fields);
    }
    cJSON *g = find_field(fields, "genes");
    set_item(g, "vocab_size", cJSON_CreateNumber((double)cfg->V));
    if (!get(g, "tokenization_strategy")) cJSON_AddStringToObject(g, "tokenization_strategy", "tokenize");
    set_item(g, "num_special_tokens", cJSON_CreateNumber((double)cfg->n_special));
    if (!get(g, "is_input")) cJSON_AddTrueToObject(g, "is_input");
    cJSON *e = find_field(fields, "expressions");
    set_item(e, "tokenization_strategy", cJSON_CreateString("continuous_value_encoder"));
    set_item(e, "num_special_tokens", cJSON_CreateNumber((double)cfg->n_special));
    if (!get(e, "is_input")) cJSON_AddTrueToObject(e, "is_input");
    cJSON *ek = cJSON_CreateObject();
    if (cfg->expr_kind == BMFM_EXPR_SCALE_ADAPT) {
        cJSON_AddStringToObject(ek, "kind", "scale_adapt");
        cJSON_AddNumberToObject(ek, "n_sin_basis", (double)cfg->n_sin_basis);
        cJSON_AddNumberToObject(ek, "basis_scale", cfg->basis_scale);
        cJSON_AddBoolToObject(ek, "trainable", cfg->basis_trainable);
    } else {
        cJSON_AddStringToObject(ek, "kind", "mlp_with_special_token_embedding");
    }
    cJSON_AddBoolToObject(ek, "zero_as_special_token", cfg->zero_as_special);
    set_item(e, "encoder_kwargs", ek);
    cJSON *dm = cJSON_CreateObject();
    if (cfg->wced) {
        cJSON *w = cJSON_AddObjectToObject(dm, "wced");
        cJSON_AddStringToObject(w, "vocab_field", "genes");
        cJSON *lo = cJSON_AddArrayToObject(w, "logit_outputs");
        for (int i = 0; i < cfg->wced_n_out; i++)
            cJSON_AddItemToArray(lo, cJSON_CreateString(i == cfg->wced_mse_idx ? "mse" : i == cfg->wced_bce_idx ? "is_zero_bce" : "unused"));
    }
    if (cfg->mlm_regression) cJSON_AddObjectToObject(dm, "regression");
    if (cfg->mlm_is_zero) cJSON_AddObjectToObject(dm, "is_zero");
    set_item(e, "decode_modes", dm);
    set_item(e, "is_masked", cJSON_CreateBool(cfg->mlm_regression || cfg->mlm_is_zero));
    cJSON *lc = cJSON_CreateArray();
    for (int i = 0; i < cfg->n_labels; i++) {
        const bmfm_label_cfg *l = &cfg->labels[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "label_column_name", l->name);
        cJSON_AddNullToObject(o, "task_group");
        cJSON_AddBoolToObject(o, "is_regression_label", l->is_regression);
        cJSON_AddNumberToObject(o, "classifier_depth", 1);
        if (l->has_grl) cJSON_AddNumberToObject(o, "gradient_reversal_coefficient", l->grl_coef);
        else cJSON_AddNullToObject(o, "gradient_reversal_coefficient");
        cJSON_AddNumberToObject(o, "n_unique_values", (double)l->n_classes);
        if (l->ontology[0]) cJSON_AddStringToObject(o, "label_ontology", l->ontology);
        else cJSON_AddNullToObject(o, "label_ontology");
        if (l->decode_from >= 0) cJSON_AddNumberToObject(o, "decode_from", l->decode_from);
        else cJSON_AddNullToObject(o, "decode_from");
        cJSON_AddItemToArray(lc, o);
    }
    set_item(root, "label_columns", lc);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return bmfm_error_set(BMFM_E_NOMEM, "%s: out of memory printing the config", path);
    char tmp[4096];
    bmfm_status s = bmfm_atomic_tmp_path(path, tmp, sizeof tmp);
    if (s == BMFM_OK) {
        FILE *f = fopen(tmp, "w");
        if (!f) {
            s = bmfm_error_set(BMFM_E_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        } else {
            int ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF;
            if (fclose(f) != 0) ok = 0;
            if (!ok) {
                s = bmfm_error_set(BMFM_E_IO, "%s: write failed", path);
                bmfm_atomic_abort(tmp);
            } else {
                s = bmfm_atomic_commit(tmp, path);
            }
        }
    }
    free(text);
    return s;
}
