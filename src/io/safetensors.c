/* safetensors.c - safetensors reader (mmap) and atomic F32 writer; see
 * safetensors.h. The JSON header is parsed with cJSON. */
#include "io/safetensors.h"

#include "base/alloc.h"
#include "base/fileutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    bmfm_st_dtype dtype;
    int size;
} dtypes[] = {{"F32", BMFM_ST_F32, 4}, {"F16", BMFM_ST_F16, 2}, {"BF16", BMFM_ST_BF16, 2},
              {"F64", BMFM_ST_F64, 8}, {"I64", BMFM_ST_I64, 8}, {"I32", BMFM_ST_I32, 4},
              {"I16", BMFM_ST_I16, 2}, {"I8", BMFM_ST_I8, 1},   {"U8", BMFM_ST_U8, 1},
              {"BOOL", BMFM_ST_BOOL, 1}};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *bmfm_st_dtype_name(bmfm_st_dtype d) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].name;
    return "?";
}

static int dtype_size(bmfm_st_dtype d) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d) return dtypes[i].size;
    return 0;
}

static bmfm_status parse_entry(bmfm_safetensors *st, const cJSON *e, bmfm_st_tensor *t) {
    const char *path = st->path, *name = t->name;
    if (!cJSON_IsObject(e)) return bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s: header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s: needs dtype, shape and data_offsets[2]", path, name);
    int found = 0;
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dt->valuestring, dtypes[i].name) == 0) {
            t->dtype = dtypes[i].dtype;
            found = 1;
        }
    if (!found) return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: tensor %s: unknown dtype %s", path, name, dt->valuestring);
    t->ndim = cJSON_GetArraySize(sh);
    if (t->ndim > BMFM_ST_MAX_DIMS)
        return bmfm_error_set(BMFM_E_UNSUPPORTED, "%s: tensor %s: %d dimensions (max %d)", path, name, t->ndim, BMFM_ST_MAX_DIMS);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        const cJSON *v = cJSON_GetArrayItem(sh, d);
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble) || v->valuedouble > 1e15)
            return bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s: bad shape entry %d", path, name, d);
        t->shape[d] = (int64_t)v->valuedouble;
        t->numel *= t->shape[d];
    }
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, en = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)) || b < 0 || en < b ||
        en > (double)st->data_len)
        return bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s: data_offsets [%.0f, %.0f] outside the %zu-byte data buffer",
                              path, name, b, en, st->data_len);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    if ((int64_t)(t->end - t->begin) != t->numel * dtype_size(t->dtype))
        return bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s: %zu bytes for %lld %s elements", path, name,
                              t->end - t->begin, (long long)t->numel, dt->valuestring);
    return BMFM_OK;
}

bmfm_status bmfm_safetensors_open(bmfm_safetensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    bmfm_status s = BMFM_OK;
    cJSON *root = NULL;
    char *hdr = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return bmfm_error_set(BMFM_E_IO, "%s: cannot open: %s", path, strerror(errno));
    st->path = bmfm_strdup(path);
    if (bmfm_strmap_init(&st->index, 64) != 0 || !st->path) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (sb.st_size < 8) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: %lld bytes, too short for a safetensors file", path, (long long)sb.st_size);
        goto done;
    }
    st->map_len = (size_t)sb.st_size;
    st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot map: %s", path, strerror(errno));
        goto done;
    }
    const uint8_t *p = st->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > st->map_len - 8 || hlen > (100u << 20)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: header length %llu exceeds the file (%zu bytes)", path,
                           (unsigned long long)hlen, st->map_len);
        goto done;
    }
    hdr = bmfm_malloc(hlen + 1);
    if (!hdr) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    memcpy(hdr, p + 8, hlen);
    hdr[hlen] = '\0';
    st->data = p + 8 + hlen;
    st->data_len = st->map_len - 8 - hlen;
    root = cJSON_Parse(hdr);
    if (!cJSON_IsObject(root)) {
        s = bmfm_error_set(BMFM_E_INPUT, "%s: header is not a JSON object", path);
        goto done;
    }
    int64_t cap = cJSON_GetArraySize(root);
    st->tensors = bmfm_calloc((size_t)cap + 1, sizeof *st->tensors);
    if (!st->tensors) {
        s = BMFM_E_NOMEM;
        goto done;
    }
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            st->metadata_json = cJSON_PrintUnformatted(e);
            continue;
        }
        bmfm_st_tensor *t = &st->tensors[st->n];
        t->name = bmfm_strdup(e->string);
        if (!t->name) {
            s = BMFM_E_NOMEM;
            goto done;
        }
        st->n++;
        if ((s = parse_entry(st, e, t)) != BMFM_OK) goto done;
        if (bmfm_strmap_put(&st->index, t->name, st->n - 1, NULL) != 1) {
            s = bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s appears twice in the header", path, t->name);
            goto done;
        }
    }
done:
    close(fd);
    cJSON_Delete(root);
    free(hdr);
    if (s != BMFM_OK) bmfm_safetensors_close(st);
    return s;
}

void bmfm_safetensors_close(bmfm_safetensors *st) {
    if (st->map) munmap(st->map, st->map_len);
    for (int64_t i = 0; i < st->n; i++) free(st->tensors[i].name);
    free(st->tensors);
    if (st->index.keys) bmfm_strmap_free(&st->index);
    free(st->metadata_json);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const bmfm_st_tensor *bmfm_safetensors_find(const bmfm_safetensors *st, const char *name) {
    int64_t i;
    if (!bmfm_strmap_get(&st->index, name, &i)) return NULL;
    return &st->tensors[i];
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

bmfm_status bmfm_safetensors_read_f32(const bmfm_safetensors *st, const bmfm_st_tensor *t, float *out) {
    const uint8_t *src = st->data + t->begin;
    switch (t->dtype) {
    case BMFM_ST_F32: memcpy(out, src, (size_t)t->numel * 4); break;
    case BMFM_ST_BF16:
        for (int64_t i = 0; i < t->numel; i++) {
            uint32_t bits = (uint32_t)(src[2 * i] | (src[2 * i + 1] << 8)) << 16;
            memcpy(&out[i], &bits, 4);
        }
        break;
    case BMFM_ST_F16:
        for (int64_t i = 0; i < t->numel; i++) out[i] = half_to_float((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        break;
    case BMFM_ST_F64:
        for (int64_t i = 0; i < t->numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    default:
        return bmfm_error_set(BMFM_E_INPUT, "%s: tensor %s has dtype %s, expected a float type (F32, BF16, F16)",
                              st->path, t->name, bmfm_st_dtype_name(t->dtype));
    }
    return BMFM_OK;
}

bmfm_status bmfm_safetensors_write(const char *path, const bmfm_st_item *items, int64_t n,
                                   const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    char tmp[4096];
    bmfm_status s = bmfm_atomic_tmp_path(path, tmp, sizeof tmp);
    if (s != BMFM_OK) return s;
    FILE *f = NULL;
    char *hdr = NULL;
    cJSON *root = cJSON_CreateObject();
    if (!root) return bmfm_error_set(BMFM_E_NOMEM, "%s: out of memory building the header", path);
    if (n_meta > 0) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(m, meta_keys[i], meta_values[i]);
    }
    size_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, items[i].name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        int64_t numel = 1;
        for (int d = 0; d < items[i].ndim; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)items[i].shape[d]));
            numel *= items[i].shape[d];
        }
        cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        off += (size_t)numel * 4;
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
    }
    hdr = cJSON_PrintUnformatted(root);
    if (!hdr) {
        s = bmfm_error_set(BMFM_E_NOMEM, "%s: out of memory printing the header", path);
        goto done;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;
    f = fopen(tmp, "wb");
    if (!f) {
        s = bmfm_error_set(BMFM_E_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, hl, f) == hl;
    for (size_t i = hl; i < padded && ok; i++) ok = fputc(' ', f) != EOF;
    for (int64_t i = 0; i < n && ok; i++) {
        int64_t numel = 1;
        for (int d = 0; d < items[i].ndim; d++) numel *= items[i].shape[d];
        ok = fwrite(items[i].data, 4, (size_t)numel, f) == (size_t)numel;
    }
    if (fclose(f) != 0) ok = 0;
    f = NULL;
    if (!ok) {
        s = bmfm_error_set(BMFM_E_IO, "%s: write failed: %s", path, strerror(errno));
        bmfm_atomic_abort(tmp);
        goto done;
    }
    s = bmfm_atomic_commit(tmp, path);
done:
    if (f) {
        fclose(f);
        bmfm_atomic_abort(tmp);
    }
    free(hdr);
    cJSON_Delete(root);
    return s;
}
