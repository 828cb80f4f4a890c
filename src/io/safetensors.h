/* safetensors.h - read and write the safetensors format (the model.safetensors
 * of the released BMFM *.vllm repositories).
 *
 * Layout: 8-byte little-endian header length n, n bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data buffer. Offsets are relative to
 * the start of the data buffer.
 *
 * Reading maps the file (mmap, read-only) and validates every entry at open
 * time: known dtype, byte size = numel * dtype size, offsets inside the
 * buffer. Tensors are read as float32: F32 is copied, BF16 and F16 are
 * converted. Other dtypes (I64, ...) are listed but refused by read_f32.
 * Writing produces F32 tensors only, atomically (temp file + rename).
 * Not a general tensor library: no strided views, no lazy loading API.
 */
#ifndef BMFM_IO_SAFETENSORS_H
#define BMFM_IO_SAFETENSORS_H

#include "base/error.h"
#include "base/strmap.h"

#include <stddef.h>
#include <stdint.h>

#define BMFM_ST_MAX_DIMS 8

typedef enum { BMFM_ST_F32 = 0, BMFM_ST_F16, BMFM_ST_BF16, BMFM_ST_F64, BMFM_ST_I64, BMFM_ST_I32,
               BMFM_ST_I16, BMFM_ST_I8, BMFM_ST_U8, BMFM_ST_BOOL } bmfm_st_dtype;

typedef struct bmfm_st_tensor {
    char *name;
    bmfm_st_dtype dtype;
    int ndim;
    int64_t shape[BMFM_ST_MAX_DIMS];
    int64_t numel;
    size_t begin, end; /* byte offsets in the data buffer */
} bmfm_st_tensor;

typedef struct bmfm_safetensors {
    char *path;
    void *map;
    size_t map_len;
    const uint8_t *data; /* start of the data buffer */
    size_t data_len;
    bmfm_st_tensor *tensors; /* in header order */
    int64_t n;
    bmfm_strmap index; /* name -> position in tensors */
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
} bmfm_safetensors;

bmfm_status bmfm_safetensors_open(bmfm_safetensors *st, const char *path);
void bmfm_safetensors_close(bmfm_safetensors *st);
/* NULL when absent. */
const bmfm_st_tensor *bmfm_safetensors_find(const bmfm_safetensors *st, const char *name);
const char *bmfm_st_dtype_name(bmfm_st_dtype d);
/* Copy (F32) or convert (BF16, F16, F64) the tensor into out[numel]. */
bmfm_status bmfm_safetensors_read_f32(const bmfm_safetensors *st, const bmfm_st_tensor *t, float *out);

typedef struct bmfm_st_item {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[BMFM_ST_MAX_DIMS];
} bmfm_st_item;

/* Write n F32 tensors (in the given order) and an optional "__metadata__"
 * string->string map given as keys[i]/values[i] (n_meta pairs). Atomic. */
bmfm_status bmfm_safetensors_write(const char *path, const bmfm_st_item *items, int64_t n,
                                   const char *const *meta_keys, const char *const *meta_values,
                                   int n_meta);

#endif
