/* h5ad_lzf.c - read-only support for h5py's LZF filter (HDF5 filter id
 * 32000), which older anndata/scanpy files use (e.g. scvi-tools' test
 * files). libhdf5 does not ship it; Debian has it only as a separate plugin
 * package, so we register a decompressor of our own when no LZF filter is
 * available. The decoder follows liblzf's lzf_d.c (BSD-2), bounds-checked on
 * both buffers.
 *
 * Not here: LZF compression. We never write LZF datasets; objects we add to
 * a legacy file are stored uncompressed, existing ones are left untouched.
 */
#include "io/h5ad_lzf.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>

#define LZF_FILTER_ID 32000

/* Decompress in[0..n_in) into out[0..n_out). Returns the output length,
 * 0 when the output buffer is too small (*too_small set) or the data is corrupt. */
static size_t lzf_decode(const uint8_t *in, size_t n_in, uint8_t *out, size_t n_out, int *too_small) {
    const uint8_t *ip = in, *in_end = in + n_in;
    uint8_t *op = out, *out_end = out + n_out;
    *too_small = 0;
    while (ip < in_end) {
        unsigned ctrl = *ip++;
        if (ctrl < (1u << 5)) {
            ctrl++;
            if ((size_t)(out_end - op) < ctrl) { *too_small = 1; return 0; }
            if ((size_t)(in_end - ip) < ctrl) return 0;
            for (unsigned i = 0; i < ctrl; i++) *op++ = *ip++;
        } else {
            size_t len = ctrl >> 5;
            size_t back = ((size_t)(ctrl & 0x1f) << 8) + 1;
            if (ip >= in_end) return 0;
            if (len == 7) {
                len += *ip++;
                if (ip >= in_end) return 0;
            }
            back += *ip++;
            if ((size_t)(out_end - op) < len + 2) { *too_small = 1; return 0; }
            if ((size_t)(op - out) < back) return 0;
            const uint8_t *ref = op - back;
            for (size_t i = 0; i < len + 2; i++) *op++ = *ref++;
        }
    }
    return (size_t)(op - out);
}

static size_t lzf_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                         size_t *buf_size, void **buf) {
    if (!(flags & H5Z_FLAG_REVERSE)) return 0; /* compression is not supported: fail the write */
    /* h5py stores the uncompressed chunk size in cd_values[2] */
    size_t out_size = cd_nelmts >= 3 && cd_values[2] ? cd_values[2] : *buf_size * 4;
    for (int attempt = 0; attempt < 8; attempt++) {
        uint8_t *out = malloc(out_size ? out_size : 1);
        int too_small;
        if (!out) return 0;
        size_t got = lzf_decode(*buf, nbytes, out, out_size, &too_small);
        if (got > 0) {
            free(*buf);
            *buf = out;
            *buf_size = out_size;
            return got;
        }
        free(out);
        if (!too_small) return 0;
        out_size *= 2;
    }
    return 0;
}

void bmfm_h5_register_lzf(void) {
    static int done;
    if (done) return;
    done = 1;
    if (H5Zfilter_avail(LZF_FILTER_ID) > 0) return;
    static const H5Z_class2_t cls = {
        H5Z_CLASS_T_VERS, LZF_FILTER_ID, 1, 1, "lzf (bmfm, decode only)", NULL, NULL, (H5Z_func_t)lzf_filter,
    };
    H5Zregister(&cls);
}
