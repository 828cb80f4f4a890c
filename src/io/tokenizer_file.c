/* tokenizer_file.c - vocabulary files (see tokenizer_file.h). */
#include "io/tokenizer_file.h"

#include "base/alloc.h"
#include "base/fileutil.h"
#include "base/log.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VOCAB_ID 100000000 /* far above any gene vocabulary; guards against garbage ids */

typedef struct {
    bmfm_token_vocab *v;
    const char *path;
    size_t cap;
    int64_t n_dup;
} builder;

static int is_bracketed(const char *t) {
    size_t n = strlen(t);
    return n >= 3 && t[0] == '[' && t[n - 1] == ']';
}

static bmfm_status add_token(builder *b, const char *token, int64_t id, int special) {
    bmfm_token_vocab *v = b->v;
    if (id < 0 || id >= MAX_VOCAB_ID)
        return bmfm_error_set(BMFM_E_INPUT, "%s: token '%.60s' has id %lld, outside 0..%d", b->path, token,
                              (long long)id, MAX_VOCAB_ID - 1);
    if (!*token) return bmfm_error_set(BMFM_E_INPUT, "%s: empty token at id %lld", b->path, (long long)id);
    int64_t old;
    if (bmfm_strmap_get(&v->map, token, &old)) {
        if (old == id) { /* added_tokens repeat the vocab entry: just mark it */
            v->special[id] |= (uint8_t)special;
            return BMFM_OK;
        }
        b->n_dup++;
        return BMFM_OK; /* keep the first id of a repeated token */
    }
    if ((size_t)id >= b->cap) {
        size_t old_cap = b->cap;
        if (bmfm_grow((void **)&v->tokens, &b->cap, (size_t)id + 1, sizeof *v->tokens)) return BMFM_E_NOMEM;
        size_t cap2 = old_cap;
        if (bmfm_grow((void **)&v->special, &cap2, b->cap, sizeof *v->special)) return BMFM_E_NOMEM;
        memset(v->tokens + old_cap, 0, (b->cap - old_cap) * sizeof *v->tokens);
        memset(v->special + old_cap, 0, (b->cap - old_cap) * sizeof *v->special);
    }
    if (v->tokens[id])
        return bmfm_error_set(BMFM_E_INPUT, "%s: id %lld is used by both '%.60s' and '%.60s'", b->path, (long long)id,
                              v->tokens[id], token);
    if (!(v->tokens[id] = bmfm_strdup(token))) return BMFM_E_NOMEM;
    if (bmfm_strmap_put(&v->map, token, id, NULL) < 0) return BMFM_E_NOMEM;
    v->special[id] = (uint8_t)(special || is_bracketed(token));
    if (id + 1 > v->n_ids) v->n_ids = id + 1;
    v->n_tokens++;
    return BMFM_OK;
}

static bmfm_status json_id(builder *b, const cJSON *item, const char *token, int64_t *id) {
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble))
        return bmfm_error_set(BMFM_E_INPUT, "%s: id of token '%.60s' is not an integer", b->path, token);
    *id = (int64_t)item->valuedouble;
    return BMFM_OK;
}

/* {token: id, ...} */
static bmfm_status load_object(builder *b, const cJSON *obj, const char *where) {
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        int64_t id = 0;
        if (!it->string) return bmfm_error_set(BMFM_E_INPUT, "%s: %s: entry without a key", b->path, where);
        BMFM_TRY(json_id(b, it, it->string, &id));
        BMFM_TRY(add_token(b, it->string, id, 0));
    }
    return BMFM_OK;
}

static bmfm_status load_tokenizer_json(builder *b, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "WordLevel"))
        return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: model.type is '%s'; only WordLevel gene tokenizers are supported",
                              b->path, type->valuestring);
    if (!cJSON_IsObject(vocab))
        return bmfm_error_set(BMFM_E_INPUT, "%s: model.vocab is missing or not an object {token: id}", b->path);
    BMFM_TRY(load_object(b, vocab, "model.vocab"));
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *it;
    cJSON_ArrayForEach(it, added) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsString(content))
            return bmfm_error_set(BMFM_E_INPUT, "%s: added_tokens entry without a string 'content'", b->path);
        int64_t id = 0;
        BMFM_TRY(json_id(b, idj, content->valuestring, &id));
        BMFM_TRY(add_token(b, content->valuestring, id, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"))));
    }
    return BMFM_OK;
}

static bmfm_status load_list(builder *b, const cJSON *arr) {
    int64_t i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        if (!cJSON_IsString(it))
            return bmfm_error_set(BMFM_E_INPUT, "%s: list entry %lld is not a string", b->path, (long long)i);
        BMFM_TRY(add_token(b, it->valuestring, i, 0));
        i++;
    }
    return BMFM_OK;
}

static bmfm_status load_lines(builder *b, char *text) {
    int64_t line = 0, id = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        line++;
        size_t n = strlen(p);
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t')) p[--n] = '\0';
        if (n == 0) {
            /* only trailing blank lines are allowed: ids are line numbers */
            for (char *q = nl ? nl + 1 : p + n; *q; q++)
                if (*q != '\n' && *q != '\r' && *q != ' ' && *q != '\t')
                    return bmfm_error_set(BMFM_E_INPUT, "%s: line %lld: empty token (ids are line numbers)", b->path,
                                          (long long)line);
            break;
        }
        BMFM_TRY(add_token(b, p, id, 0));
        id++;
        if (!nl) break;
        p = nl + 1;
    }
    return BMFM_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

bmfm_status bmfm_token_vocab_load(const char *path, bmfm_token_vocab *out) {
    memset(out, 0, sizeof *out);
    char file[4096];
    if (bmfm_is_directory(path)) {
        static const char *names[] = {"tokenizer.json", "vocab.json", "vocab.txt"};
        int found = 0;
        for (int i = 0; i < 3 && !found; i++) {
            bmfm_path_join(file, sizeof file, path, names[i]);
            found = bmfm_file_exists(file);
        }
        if (!found)
            return bmfm_error_set(BMFM_E_INPUT, "%s: directory has no tokenizer.json, vocab.json or vocab.txt", path);
    } else {
        snprintf(file, sizeof file, "%s", path);
    }
    builder b = {out, file, 0, 0};
    char *text = NULL;
    cJSON *root = NULL;
    bmfm_status s = bmfm_read_file(file, &text, NULL);
    if (s) goto done;
    if (bmfm_strmap_init(&out->map, 1024)) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    /* vocab.txt starts with "[UNK]" or "[PAD]": the name decides first, then
     * whether the text parses as JSON at all */
    int is_txt = ends_with(file, ".txt") || ends_with(file, ".txt.gz") || ends_with(file, ".tsv");
    int is_json = ends_with(file, ".json") || ends_with(file, ".json.gz");
    if (!is_txt && !is_json && (*p == '{' || *p == '[')) {
        cJSON *probe = cJSON_Parse(p);
        is_json = probe != NULL || *p == '{';
        cJSON_Delete(probe);
    }
    if (is_json) {
        root = cJSON_Parse(p);
        if (!root) {
            const char *at = cJSON_GetErrorPtr();
            s = bmfm_error_set(BMFM_E_INPUT, "%s: invalid JSON near byte %lld", file,
                               at ? (long long)(at - text) : -1LL);
            goto done;
        }
        if (cJSON_IsArray(root)) {
            snprintf(out->format, sizeof out->format, "gene list");
            s = load_list(&b, root);
        } else if (cJSON_GetObjectItemCaseSensitive(root, "model")) {
            snprintf(out->format, sizeof out->format, "tokenizer.json");
            s = load_tokenizer_json(&b, root);
        } else {
            snprintf(out->format, sizeof out->format, "vocab.json");
            s = load_object(&b, root, "vocabulary");
        }
    } else {
        snprintf(out->format, sizeof out->format, "%s",
                 ends_with(file, "vocab.txt") || ends_with(file, "vocab.txt.gz") ? "vocab.txt" : "gene list");
        s = load_lines(&b, text);
    }
    if (s) goto done;
    if (out->n_tokens == 0) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: the vocabulary is empty", file);
        goto done;
    }
    for (int64_t i = 0; i < out->n_ids; i++) out->n_special += out->special[i];
    if (b.n_dup) bmfm_log_warn("%s: %lld repeated tokens ignored (first id kept)", file, (long long)b.n_dup);
done:
    cJSON_Delete(root);
    free(text);
    if (s) bmfm_token_vocab_free(out);
    return s;
}

void bmfm_token_vocab_free(bmfm_token_vocab *v) {
    if (v->tokens)
        for (int64_t i = 0; i < v->n_ids; i++) free(v->tokens[i]);
    free(v->tokens);
    free(v->special);
    if (v->map.keys) bmfm_strmap_free(&v->map);
    memset(v, 0, sizeof *v);
}

int64_t bmfm_token_vocab_id(const bmfm_token_vocab *v, const char *token) {
    int64_t id;
    return bmfm_strmap_get(&v->map, token, &id) ? id : -1;
}
