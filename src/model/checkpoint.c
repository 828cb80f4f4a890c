/* checkpoint.c - load / save / initialise model directories (see
 * checkpoint.h). */
#include "model/checkpoint.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/rng.h"
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && o < n; d++) o += (size_t)snprintf(buf + o, n - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

bmfm_status bmfm_checkpoint_load_weights(bmfm_model *m, const char *path) {
    bmfm_safetensors st;
    BMFM_TRY(bmfm_safetensors_open(&st, path));
    bmfm_status s = BMFM_OK;
    for (int i = 0; i < m->table.n; i++) {
        const bmfm_param_info *pi = &m->table.info[i];
        const bmfm_st_tensor *t = bmfm_safetensors_find(&st, pi->name);
        if (!t) {
            char want[128];
            shape_str(want, sizeof want, pi->ndim, pi->shape);
            s = bmfm_error_set(BMFM_E_INPUT, "%s: missing tensor %s (shape %s)", path, pi->name, want);
            goto done;
        }
        int ok = t->ndim == pi->ndim;
        for (int d = 0; ok && d < pi->ndim; d++) ok = t->shape[d] == pi->shape[d];
        if (!ok) {
            char got[128], want[128];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, pi->ndim, pi->shape);
            s = bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s has shape %s, expected %s (config.json)", path, pi->name, got, want);
            goto done;
        }
        if (t->dtype != BMFM_ST_F32 && t->dtype != BMFM_ST_BF16 && t->dtype != BMFM_ST_F16 && t->dtype != BMFM_ST_F64) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s has dtype %s, expected F32 (or BF16/F16)", path, pi->name,
                               bmfm_st_dtype_name(t->dtype));
            goto done;
        }
        if ((s = bmfm_safetensors_read_f32(&st, t, m->param_mem + pi->offset)) != BMFM_OK) goto done;
    }
    for (int64_t j = 0; j < st.n; j++)
        if (bmfm_param_table_find(&m->table, st.tensors[j].name) < 0) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: unexpected tensor %s (not in the model described by config.json)", path,
                               st.tensors[j].name);
            goto done;
        }
done:
    bmfm_safetensors_close(&st);
    return s;
}

/* label_dict {label: {value: id}} -> class_names of the matching heads. */
static bmfm_status read_label_dict(bmfm_model_config *cfg, const char *text, const char *path) {
    cJSON *root = cJSON_Parse(text);
    bmfm_status s = BMFM_OK;
    if (!cJSON_IsObject(root)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: not a JSON object", path);
        goto done;
    }
    const cJSON *ld = cJSON_GetObjectItemCaseSensitive(root, "label_dict");
    if (!cJSON_IsObject(ld)) {
        const cJSON *hp = cJSON_GetObjectItemCaseSensitive(root, "hyper_parameters");
        ld = cJSON_IsObject(hp) ? cJSON_GetObjectItemCaseSensitive(hp, "label_dict") : NULL;
    }
    if (!cJSON_IsObject(ld)) goto done;
    for (int i = 0; i < cfg->n_labels; i++) {
        bmfm_label_cfg *l = &cfg->labels[i];
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(ld, l->name);
        if (!cJSON_IsObject(d) || l->is_regression) continue;
        if (l->n_classes == 0) l->n_classes = cJSON_GetArraySize(d); /* n_unique_values was null */
        if (cJSON_GetArraySize(d) != l->n_classes) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: label_dict.%s has %d values, the head has %lld outputs", path, l->name,
                               cJSON_GetArraySize(d), (long long)l->n_classes);
            goto done;
        }
        l->class_names = bmfm_calloc((size_t)l->n_classes, sizeof(char *));
        if (!l->class_names) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        for (const cJSON *e = d->child; e; e = e->next) {
            if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)l->n_classes ||
                l->class_names[(int64_t)e->valuedouble]) {
                s = bmfm_error_set(BMFM_E_INPUT, "%s: label_dict.%s[%s] is not a distinct id in [0, %lld)", path, l->name,
                                   e->string, (long long)l->n_classes);
                goto done;
            }
            if (!(l->class_names[(int64_t)e->valuedouble] = bmfm_strdup(e->string))) {
                s = BMFM_E_NOMEM;
                goto done;
            }
        }
    }
done:
    cJSON_Delete(root);
    return s;
}

bmfm_status bmfm_checkpoint_load(bmfm_model *m, const char *dir) {
    char path[4096];
    bmfm_model_config cfg;
    memset(m, 0, sizeof *m);
    if (!bmfm_is_directory(dir)) return bmfm_error_set(BMFM_E_INPUT, "%s: not a model directory", dir);
    bmfm_path_join(path, sizeof path, dir, "config.json");
    BMFM_TRY(bmfm_config_load(&cfg, path));
    bmfm_path_join(path, sizeof path, dir, "checkpoint_metadata.json");
    if (bmfm_file_exists(path)) {
        char *text = NULL;
        size_t len;
        bmfm_status s = bmfm_read_file(path, &text, &len);
        if (s == BMFM_OK) s = read_label_dict(&cfg, text, path);
        if (s == BMFM_OK) cfg.metadata_json = text;
        else free(text);
        if (s != BMFM_OK) {
            bmfm_config_free(&cfg);
            return s;
        }
    }
    bmfm_path_join(path, sizeof path, dir, "model.safetensors");
    for (int i = 0; i < cfg.n_labels; i++) {
        if (cfg.labels[i].n_classes > 0) continue;
        /* neither n_unique_values nor label_dict: the decoder weight tells */
        bmfm_safetensors st;
        char nm[512];
        snprintf(nm, sizeof nm, "model.cls.label_predictions.predictions.label_decoders.%s.%s.weight", cfg.labels[i].name,
                 cfg.labels[i].has_grl ? "decoder.1" : "decoder");
        bmfm_status s = bmfm_safetensors_open(&st, path);
        const bmfm_st_tensor *t = s == BMFM_OK ? bmfm_safetensors_find(&st, nm) : NULL;
        if (t && t->ndim == 2) cfg.labels[i].n_classes = t->shape[0];
        if (s == BMFM_OK) bmfm_safetensors_close(&st);
        if (cfg.labels[i].n_classes <= 0) {
            s = s ? s : bmfm_error_set(BMFM_E_INPUT, "%s: label %s has no n_unique_values, label_dict entry or tensor %s", dir,
                                       cfg.labels[i].name, nm);
            bmfm_config_free(&cfg);
            return s;
        }
    }
    BMFM_TRY(bmfm_model_create(m, &cfg));
    bmfm_status s = bmfm_checkpoint_load_weights(m, path);
    if (s != BMFM_OK) bmfm_model_free(m);
    return s;
}


static bmfm_status save_metadata(const bmfm_model_config *cfg, const char *path) {
    cJSON *root = cfg->metadata_json ? cJSON_Parse(cfg->metadata_json) : NULL;
    if (!root) root = cJSON_CreateObject();
    int any = 0;
    for (int i = 0; i < cfg->n_labels; i++) any |= cfg->labels[i].class_names != NULL;
    if (any) {
        cJSON *ld = cJSON_CreateObject();
        for (int i = 0; i < cfg->n_labels; i++) {
            const bmfm_label_cfg *l = &cfg->labels[i];
            if (!l->class_names) continue;
            cJSON *d = cJSON_AddObjectToObject(ld, l->name);
            for (int64_t k = 0; k < l->n_classes; k++) cJSON_AddNumberToObject(d, l->class_names[k], (double)k);
        }
        cJSON *hp = cJSON_GetObjectItemCaseSensitive(root, "hyper_parameters");
        cJSON *owner = cJSON_IsObject(hp) && cJSON_GetObjectItemCaseSensitive(hp, "label_dict") ? hp : root;
        if (cJSON_GetObjectItemCaseSensitive(owner, "label_dict")) cJSON_ReplaceItemInObjectCaseSensitive(owner, "label_dict", ld);
        else cJSON_AddItemToObject(owner, "label_dict", ld);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return bmfm_error_set(BMFM_E_NOMEM, "%s: out of memory", path);
    bmfm_status s = bmfm_write_text_atomic(path, text);
    free(text);
    return s;
}

bmfm_status bmfm_checkpoint_save(const bmfm_model *m, const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return bmfm_error_set(BMFM_E_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    char path[4096];
    bmfm_st_item *items = bmfm_calloc((size_t)m->table.n, sizeof *items);
    if (!items) return BMFM_E_NOMEM;
    for (int i = 0; i < m->table.n; i++) {
        const bmfm_param_info *pi = &m->table.info[i];
        items[i].name = pi->name;
        items[i].data = m->param_mem + pi->offset;
        items[i].ndim = pi->ndim;
        items[i].shape[0] = pi->shape[0];
        items[i].shape[1] = pi->shape[1];
    }
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    bmfm_path_join(path, sizeof path, dir, "model.safetensors");
    bmfm_status s = bmfm_safetensors_write(path, items, m->table.n, mk, mv, 1);
    free(items);
    if (s != BMFM_OK) return s;
    bmfm_path_join(path, sizeof path, dir, "config.json");
    BMFM_TRY(bmfm_config_save(&m->cfg, path));
    bmfm_path_join(path, sizeof path, dir, "checkpoint_metadata.json");
    return save_metadata(&m->cfg, path);
}

static void fill_uniform(bmfm_rng *r, float *x, int64_t n, double bound) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)((2.0 * bmfm_rng_uniform(r) - 1.0) * bound);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void bmfm_model_init(bmfm_model *m, uint64_t seed) {
    const bmfm_model_config *c = &m->cfg;
    for (int i = 0; i < m->table.n; i++) {
        const bmfm_param_info *pi = &m->table.info[i];
        float *x = m->param_mem + pi->offset;
        bmfm_rng r;
        bmfm_rng_seed(&r, seed, (uint64_t)i);
        const char *nm = pi->name;
        if (strstr(nm, "embeddings.weight") && !strstr(nm, "LayerNorm")) {
            for (int64_t k = 0; k < pi->numel; k++) x[k] = (float)bmfm_rng_normal(&r);
            if (c->pad_id >= 0 && c->pad_id < pi->shape[0]) memset(x + c->pad_id * pi->shape[1], 0, (size_t)pi->shape[1] * sizeof(float));
        } else if (ends_with(nm, ".basis")) {
            float b0 = (float)(2.0 * M_PI * c->basis_scale);
            for (int64_t k = 0; k < pi->numel; k++)
                x[k] = c->basis_trainable ? (float)(bmfm_rng_normal(&r) * (double)b0) : b0 * ldexpf(1.0f, (int)k);
        } else if (ends_with(nm, ".scale") || ends_with(nm, "LayerNorm.weight")) {
            for (int64_t k = 0; k < pi->numel; k++) x[k] = 1.0f;
        } else if (ends_with(nm, "LayerNorm.bias") || strstr(nm, "field_decoders") || strstr(nm, "label_decoders")) {
            if (ends_with(nm, ".bias")) memset(x, 0, (size_t)pi->numel * sizeof(float));
            else fill_uniform(&r, x, pi->numel, 1.0 / sqrt((double)pi->shape[1]));
        } else if (ends_with(nm, ".weight")) {
            fill_uniform(&r, x, pi->numel, 1.0 / sqrt((double)pi->shape[1]));
        } else if (ends_with(nm, ".bias")) {
            /* PyTorch Linear bias: U(+-1/sqrt(fan_in)); fan_in from the weight before it */
            int64_t fan_in = i > 0 && m->table.info[i - 1].ndim == 2 ? m->table.info[i - 1].shape[1] : pi->numel;
            fill_uniform(&r, x, pi->numel, 1.0 / sqrt((double)fan_in));
        }
    }
}
